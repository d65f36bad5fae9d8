/*
 * exec_thread.h: the thread executor. A fixed pool of worker threads runs
 * in-process tasks (jobd/task.h) and reports through the same callbacks as
 * the process executor (exec_process.h): started (pid 0), output, exited.
 *
 * Cancel and timeout are cooperative: the task sees jobd_task_cancelled().
 * A task still running kill_grace seconds later is abandoned: its job is
 * reported ended (EXEC_CANCELLED or EXEC_TIMED_OUT) and its thread counts as
 * stuck until the function finally returns; output it writes meanwhile is
 * dropped. The pool serves on with its other threads.
 */
#ifndef JOBD_EXEC_THREAD_H
#define JOBD_EXEC_THREAD_H

#include <stdint.h>

#include "exec_process.h"

struct exec_thread;

struct exec_thread_config {
    const char *out_dir;
    int threads;
};

/* Start the workers and the watchdog. Return 0 or a negative errno. */
int exec_thread_create(const struct exec_thread_config *cfg, const struct exec_callbacks *cb,
                       void *ctx, struct exec_thread **out);

/*
 * Queue a task attempt (thread-safe). run->spec is borrowed until `exited`.
 * Return 0, -ENOENT for an unknown task, -ESHUTDOWN after stop.
 */
int exec_thread_start(struct exec_thread *ex, const struct exec_run *run);

/* Cancel an attempt (thread-safe; unknown numbers are ignored). Never calls back inline. */
void exec_thread_cancel(struct exec_thread *ex, int64_t num);

/* Cancel every attempt with a grace of at most grace_ms, and refuse new ones. */
void exec_thread_stop_all(struct exec_thread *ex, int64_t grace_ms);

/* Workers stuck in an abandoned task now. */
int exec_thread_stuck(struct exec_thread *ex);

/* Join the workers (stuck ones are left behind: the process is exiting) and free. */
void exec_thread_destroy(struct exec_thread *ex);

#endif
