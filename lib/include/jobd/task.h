/*
 * jobd/task.h: in-process tasks.
 *
 * A task is a C function that jobd runs for a job whose spec names it
 * ({"task": "name", "args": ...}), on a worker thread of jobd (executor
 * "thread") or in a forked child (executor "process"):
 *
 *     static int hello(const json_t *args, jobd_task *t)
 *     {
 *         jobd_task_printf(t, "hello, %s\n", json_string_value(json_object_get(args, "who")));
 *         jobd_task_set_result(t, json_pack("{s:b}", "greeted", 1));
 *         return 0;
 *     }
 *
 * The return value is the job's exit code: 0 succeeds, anything else fails
 * the job (1..255; a value outside that range counts as 1). A task that runs
 * long should check jobd_task_cancelled() now and then and return soon after
 * it turns true: cancel and timeout are cooperative on threads. A task that
 * ignores them is abandoned after the job's kill_grace (its job ends, its
 * thread is reported as stuck until the function returns).
 *
 * A plugin is a shared library (--plugin path.so) that defines
 *
 *     int jobd_plugin_init(void);
 *
 * which calls jobd_task_register for each of its tasks and returns 0 (or a
 * negative errno to make jobd refuse to start).
 */
#ifndef JOBD_TASK_H
#define JOBD_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct jobd_task jobd_task;

/* Run the task. `args` is borrowed (valid for the call). Return the exit code. */
typedef int (*jobd_task_fn)(const json_t *args, jobd_task *t);

/*
 * Check a task's args at submit time (optional). Return 0 when they are
 * acceptable, or -1 after writing the rule broken into `field` (a path
 * below "args", e.g. "seconds"; may be left empty) and `msg`.
 */
typedef int (*jobd_task_check_fn)(const json_t *args, char *field, size_t field_len, char *msg,
                                  size_t msg_len);

struct jobd_task_def {
    const char *name;        /* [A-Za-z0-9_.-]{1,64}; unique */
    const char *description; /* one line */
    jobd_task_fn fn;
    jobd_task_check_fn check; /* NULL: any args */
};

/*
 * Add a task to the registry (copies the strings). Return 0, -EEXIST when
 * the name is taken, -EINVAL for a bad name or missing fn, -ENOMEM.
 * Thread-safe, but meant for start-up.
 */
int jobd_task_register(const struct jobd_task_def *def);

/* Look a task up. The result is borrowed and valid until jobd_task_registry_clear. */
const struct jobd_task_def *jobd_task_lookup(const char *name);

/* Number of registered tasks, and the i-th in name order (borrowed). */
size_t jobd_task_count(void);
const struct jobd_task_def *jobd_task_at(size_t i);

/* Forget every task (for tests and shutdown). */
void jobd_task_registry_clear(void);

/* ---- for task functions ---- */

/* Write to the job's stdout (printf) or stderr (eprintf). Return bytes written or -errno. */
int jobd_task_printf(jobd_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int jobd_task_eprintf(jobd_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write raw bytes to stream 1 (stdout) or 2 (stderr). Return len or -errno. */
int jobd_task_write(jobd_task *t, int stream, const void *buf, size_t len);

/* Set the job's JSON result; steals `result` (NULL clears it). */
void jobd_task_set_result(jobd_task *t, json_t *result);

/* Say why the task failed (shown as the job's `error`). */
void jobd_task_set_error(jobd_task *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The job's id ("j42"). Borrowed, valid during the task. */
const char *jobd_task_id(const jobd_task *t);

/* True once the job was cancelled or timed out: return soon. */
bool jobd_task_cancelled(const jobd_task *t);

/*
 * Sleep up to `seconds`, waking early on cancel. Return 0 after the full
 * sleep, -ECANCELED when cancelled.
 */
int jobd_task_sleep(jobd_task *t, double seconds);

/* The task running on this thread, or NULL outside a task. */
jobd_task *jobd_task_current(void);

#endif
