/*
 * exec_process.h: the process executor. It runs job attempts as child
 * processes, each the leader of its own process group, and reports back
 * through callbacks. It never decides a job's state: the scheduler does.
 *
 * One executor thread owns everything here: it spawns children (in a vfork
 * child that only calls async-signal-safe functions: setpgid, setrlimit,
 * setgroups/setresgid/setresuid for --run-as, chdir, dup2, close_range,
 * execve), drains stdout and stderr of every
 * child together through epoll into output writers, writes stdin from
 * memory, reaps exits through pidfds, and runs timeouts and kill-grace
 * timers. Other threads talk to it only through exec_proc_start and
 * exec_proc_cancel, which queue a request and wake it.
 *
 * A task spec (JOBD_SPEC_TASK, see jobd/task.h) runs in a fork()ed child,
 * not a vfork()ed one: the child calls the task function, which is
 * arbitrary C code, with stdin on /dev/null, its output on fds 1 and 2 and
 * a result pipe on fd 3 (every fd above 3 closed). The child sends one JSON
 * document back through the result pipe and exits with the task's return
 * value (0..255; another non-zero value counts as 1). A crash kills only
 * the child: the attempt ends as EXEC_EXITED with `signal` set. Timeout and
 * cancel are the same as for commands: kill_signal to the child's group,
 * then SIGKILL after kill_grace (the task is not asked to return first).
 *
 * Callbacks run on the executor thread with no executor lock held, in this
 * order for one attempt: started (once, unless the command could not start),
 * output (zero or more times), exited (exactly once).
 */
#ifndef JOBD_EXEC_PROCESS_H
#define JOBD_EXEC_PROCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobd/spec.h"

struct exec_proc;

/* One attempt to run. */
struct exec_run {
    int64_t num;                  /* job number, the key in callbacks */
    char id[JOBD_MAX_ID_BYTES];   /* job id, names the output files */
    const struct jobd_spec *spec; /* borrowed: must stay valid until `exited` is called */
    int64_t output_cap;           /* bytes per stream, <= 0 for none */
    int attempt;                  /* 1 for the job's first attempt */
};

enum exec_end {
    EXEC_EXITED,       /* exited or killed by a signal on its own */
    EXEC_START_FAILED, /* could not start: `error` says why (bad cwd, not found...) */
    EXEC_TIMED_OUT,    /* stopped because it ran past spec->timeout */
    EXEC_CANCELLED,    /* stopped by exec_proc_cancel */
};

struct exec_result {
    enum exec_end end;
    int exit_code; /* -1 when it did not exit normally */
    int signal;    /* the signal that killed it, 0 if none */
    /*
     * Why it failed, "" if no reason is known. For a task that ran: the text
     * the task gave jobd_task_set_error (even with exit code 0), or what went
     * wrong with its result ("task result too large", "bad task result: ...").
     */
    char error[256];
    /*
     * A task's result document as JSON text, or NULL; borrowed for the call.
     * It is the value the task gave jobd_task_set_result (any JSON type,
     * compact encoding), NULL when the task set none (or set JSON null), when
     * it is not a task, or when the child sent no complete result (killed,
     * crashed, or its result was over 16 MiB: then `error` says so).
     */
    const char *result_json;
    int64_t started_ms, finished_ms; /* wall clock */
    int64_t out_total[2];            /* bytes written per stream (output_stream order) */
    bool out_truncated[2];
    const void *inline_out[2]; /* a stream kept in memory (no file), or NULL; borrowed */
    size_t inline_len[2];
};

struct exec_callbacks {
    /* The child exists: pid (== its process group) and its start time in clock ticks. */
    void (*started)(void *ctx, int64_t num, pid_t pid, int64_t pid_start, int64_t started_ms);
    /*
     * A stream grew: `readable` bytes of it can be read now. While the stream
     * is small enough to be kept in memory (output.h), `data` holds all of
     * it (`len` bytes, borrowed for the call, only ever growing); once it is
     * in its file, data is NULL and readers read the file.
     */
    void (*output)(void *ctx, int64_t num, int stream, int64_t readable, const void *data,
                   size_t len);
    /* The attempt is over and its process group is gone. */
    void (*exited)(void *ctx, int64_t num, const struct exec_result *res);
};

struct run_as; /* config.h */

struct exec_config {
    const char *out_dir;     /* where output files go */
    const char *default_cwd; /* cwd when the spec has none */
    const char *path_env;    /* PATH given to jobs */
    /*
     * Borrowed for the executor's life; NULL: children keep jobd's user.
     * Else every child (command or task) switches to run_as's groups, gid
     * and uid before it changes directory, so a job's cwd is checked with
     * the job's own rights, and a job without a cwd starts in run_as->home
     * instead of default_cwd.
     */
    const struct run_as *run_as;
};

/* Create the executor and start its thread. Return 0 or a negative errno. */
int exec_proc_create(const struct exec_config *cfg, const struct exec_callbacks *cb, void *ctx,
                     struct exec_proc **out);

/* Queue an attempt to start (thread-safe). Return 0, or -ESHUTDOWN after stop. */
int exec_proc_start(struct exec_proc *ep, const struct exec_run *run);

/*
 * Ask a running attempt to stop (thread-safe): kill_signal to its group, then
 * SIGKILL after kill_grace. Its `exited` reports EXEC_CANCELLED. Unknown
 * numbers are ignored (the attempt may have just ended).
 */
void exec_proc_cancel(struct exec_proc *ep, int64_t num);

/* Stop every running attempt as a cancel would, with at most `grace_ms` for each. */
void exec_proc_stop_all(struct exec_proc *ep, int64_t grace_ms);

/* Number of attempts running now. */
int exec_proc_running(struct exec_proc *ep);

/* Join the thread (after every attempt has exited) and free. */
void exec_proc_destroy(struct exec_proc *ep);

/*
 * Kill what is left of a process group from a previous run of jobd: every
 * process whose process group is `pgid` and that started at or after
 * `pid_start` (clock ticks since boot, as in /proc/PID/stat), so a reused pid
 * is never hit. Return the number of processes signalled.
 */
int exec_kill_leftover_group(pid_t pgid, int64_t pid_start);

/* Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or -1. */
int64_t exec_process_start_time(pid_t pid);

#endif
