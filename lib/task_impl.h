/*
 * task_impl.h: the inside of a jobd_task, for executors (not installed).
 *
 * An executor fills a struct jobd_task, points `ops` at functions that put
 * output where the job's output goes, sets it current on the running thread
 * with jobd_task_enter, calls the task function, then jobd_task_leave.
 * Fields are owned by the executor; `result` and `error` are filled by the
 * task through the public API.
 */
#ifndef JOBD_TASK_IMPL_H
#define JOBD_TASK_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "jobd/spec.h"
#include "jobd/task.h"

struct jobd_task_ops {
    /* Append bytes to stream 1 or 2. Return len or a negative errno. */
    int (*write)(jobd_task *t, int stream, const void *buf, size_t len);
};

struct jobd_task {
    const struct jobd_task_ops *ops;
    void *ctx; /* the executor's */
    char id[JOBD_MAX_ID_BYTES];
    atomic_bool cancelled;      /* set by any thread; read by the task */
    pthread_mutex_t sleep_lock; /* with sleep_cond: wakes jobd_task_sleep on cancel */
    pthread_cond_t sleep_cond;
    json_t *result;  /* set by the task; owned */
    char error[256]; /* set by the task; "" when none */
};

/* Initialise (ops, ctx and id set by the caller afterwards). Return 0 or -errno. */
int jobd_task_init(jobd_task *t);
/* Release result and the sync objects. */
void jobd_task_destroy(jobd_task *t);
/* Mark cancelled and wake a jobd_task_sleep (any thread). */
void jobd_task_cancel(jobd_task *t);
/* Make t the current task of this thread (NULL to clear). */
void jobd_task_enter(jobd_task *t);
void jobd_task_leave(void);

/*
 * Validate a task spec's args at submit time: the task must exist and its
 * check (if any) accept the args. Return 0, or -EINVAL after filling err with
 * field "task" (unknown task) or "args[.sub]" and the rule.
 */
int jobd_task_check_spec(const char *task, const json_t *args, struct jobd_error *err);

#endif
