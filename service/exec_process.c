/*
 * exec_process.c: the process executor (see exec_process.h for the contract).
 *
 * Threads, ownership and locks:
 *
 * - The executor thread owns every attempt (struct attempt) and everything
 *   an attempt holds: the child's pid, its pidfd, the parent ends of its
 *   stdin/stdout/stderr pipes (and of a task's result pipe), its output
 *   writers, a task's result buffer and its timers. It also
 *   owns the epoll set, the read buffer and /dev/null. No other thread ever
 *   touches them, so they need no lock.
 * - ep->lock guards the inbox (a FIFO of start, cancel and stop-all requests),
 *   ep->stopping, ep->quit and ep->n_running, and nothing else. Another thread
 *   appends a request under the lock and then writes to the eventfd; the
 *   executor thread takes the whole inbox under the lock and handles it with
 *   the lock released. It is the only lock in this file, and no callback is
 *   ever called while holding it, so callbacks may call exec_proc_start and
 *   exec_proc_cancel (but not exec_proc_destroy, which joins the thread).
 *
 * Invariants:
 *
 * - Every child leads its own process group (pid == pgid). Its pid is reaped
 *   only after its exit was seen on the pidfd and the whole group was sent
 *   SIGKILL, so until then the group id cannot be reused and a signal sent
 *   to -pid never reaches a stranger. Every child is reaped: no zombie.
 * - Everything is opened close-on-exec, and each child closes every fd above
 *   2 before execve, so a child holds only its own three streams (a task
 *   child: those and its result pipe on fd 3, itself close-on-exec).
 * - An attempt is freed only between epoll batches (after the `done` list is
 *   handled), so an epoll event that points to it is never dangling; a
 *   watch whose fd was closed earlier in the batch is recognised by fd == -1.
 *
 * Spawning: argv, envp and the executable's path are built in the parent,
 * then vfork(). The child calls nothing but raw system calls (no libc
 * wrapper that a sanitizer could intercept, no malloc, no locks), stores the
 * failing step and errno in memory the parent reads once vfork returns, and
 * exits with 127 on failure. With --run-as the child switches to that
 * user (groups, gid, uid: raw calls, never glibc's set*id wrappers, which
 * signal every thread of the process) after its limits and before chdir;
 * a task child does the same. All signals are blocked across vfork so no
 * handler of jobd ever runs in the child; the child resets every disposition
 * to SIG_DFL (an ignored SIGPIPE must not reach the job) and unblocks them
 * just before execve. ThreadSanitizer turns vfork into fork, so under TSan
 * the child also sends its report through a close-on-exec pipe.
 *
 * Tasks: a task spec runs its C function in a child made with fork(), not
 * vfork(): the child runs arbitrary code, and glibc's fork leaves malloc
 * and stdio usable in it (a lock another thread held at the fork stays
 * held, so a task must not need jobd's own locks). The task is looked up in
 * the parent. The child sets itself up as a command's child does (own
 * group, default signals, cwd if the spec has one, stdin from /dev/null,
 * its output on 1 and 2, every fd above 3 closed, then rlimits), reporting
 * a failed step through the report pipe and closing it once set-up is done;
 * the parent waits for that EOF, so a set-up failure is EXEC_START_FAILED
 * as for a command. Then the child calls the function with a struct
 * jobd_task whose output goes straight to fds 1 and 2, writes one JSON
 * document {"exit", "result", "error"} to the result pipe on fd 3 and
 * _exits with the task's exit code. The parent reads that pipe through
 * epoll like stdout and stderr, into memory (at most TASK_RESULT_MAX
 * bytes), and the attempt is over only once the pipe is at EOF too. A crash
 * only kills the child; timeout and cancel signal its group as for commands.
 */
#include "exec_process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"    /* struct run_as */
#include "task_impl.h" /* struct jobd_task: an executor fills it (not installed) */
#include "jobd/task.h"
#include "jobd/util.h"
#include "output.h"

#if defined(__SANITIZE_THREAD__)
#define EXEC_FORK_COPIES 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EXEC_FORK_COPIES 1
#endif
#endif
#ifndef EXEC_FORK_COPIES
#define EXEC_FORK_COPIES 0
#endif

/* The 32-bit id calls where the plain ones take 16-bit ids (i386, arm). */
#ifdef SYS_setgroups32
#define SYS_SETGROUPS SYS_setgroups32
#define SYS_SETRESGID SYS_setresgid32
#define SYS_SETRESUID SYS_setresuid32
#else
#define SYS_SETGROUPS SYS_setgroups
#define SYS_SETRESGID SYS_setresgid
#define SYS_SETRESUID SYS_setresuid
#endif

#define DEFAULT_PATH    "/usr/local/bin:/usr/bin:/bin"
#define READ_BUF        (128 * 1024)  /* bytes per read() from a child's pipe */
#define READ_BUDGET     (1024 * 1024) /* bytes read from one pipe per loop turn, for fairness */
#define DRAIN_MS        1000          /* how long to wait for EOF after the child exited */
#define MAX_EVENTS      64
#define TASK_RESULT_MAX (16 * 1024 * 1024) /* bytes of a task's result document */
#define TASK_RESULT_FD  3                  /* where a task child writes its result document */
#define KERNEL_NSIG     64                 /* signals 1..64 on Linux */
#define SIGSET_LONGS    (KERNEL_NSIG / (8 * (int)sizeof(unsigned long))) /* a kernel sigset_t */

enum watch_kind { W_EVENT = 0, W_PIDFD, W_STDIN, W_STDOUT, W_STDERR, W_RESULT };

/* What an epoll event points to: an attempt (NULL for the eventfd) and which of its fds. */
struct watch {
    struct attempt *a;
    enum watch_kind kind;
};

/* One running attempt. Owned by the executor thread. */
struct attempt {
    struct attempt *prev, *next; /* ep->attempts */
    struct attempt *next_dirty;  /* ep->dirty, when `dirty` */
    struct attempt *next_done;   /* ep->done, when `done` */
    int64_t num;
    char id[JOBD_MAX_ID_BYTES];
    const struct jobd_spec *spec; /* borrowed until `exited` */
    pid_t pid;                    /* also the process group */
    int pidfd, in_fd, out_fd[2];  /* -1 once closed */
    int res_fd;                   /* a task's result pipe; -1 once closed, and for commands */
    size_t in_off;                /* stdin bytes written so far */
    struct output_writer *w[2];
    int64_t reported[2]; /* readable last given to cb->output */
    struct watch watch[6];
    char *res_buf;           /* a task's result document so far (not NUL-terminated) */
    size_t res_len, res_cap; /* res_len <= TASK_RESULT_MAX */
    const char *res_error;   /* static text: why the result document was dropped, or NULL */
    enum exec_end end;
    bool stopping;  /* kill_signal sent (cancel, timeout or stop-all) */
    bool killed;    /* SIGKILL sent to the group */
    bool reaped;    /* waitpid done */
    bool status_ok; /* `status` holds the wait status */
    bool dirty;
    bool done;
    int status;
    int64_t timeout_at, kill_at, drain_until; /* monotonic ms, 0 = none */
    int64_t started_ms;                       /* wall clock */
};

enum req_kind { REQ_START, REQ_CANCEL, REQ_STOP_ALL };

struct request {
    struct request *next;
    enum req_kind kind;
    struct exec_run run; /* REQ_START */
    int64_t num;         /* REQ_CANCEL */
    int64_t grace_ms;    /* REQ_STOP_ALL */
};

struct exec_proc {
    char *out_dir, *default_cwd, *path_env;
    struct exec_callbacks cb;
    void *ctx;
    pthread_t thread;
    int epfd, evfd, devnull;
    struct watch ev_watch;

    pthread_mutex_t lock;                    /* guards the four fields below */
    struct request *inbox_head, *inbox_tail; /* FIFO of requests */
    bool stopping;                           /* stop_all or destroy called: no new starts */
    bool quit;                               /* destroy called: exit once idle */
    int n_running;                           /* accepted starts whose `exited` is not yet called */

    /* Executor thread only. */
    struct attempt *attempts;
    struct attempt *dirty;
    struct attempt *done;
    char *buf; /* READ_BUF bytes */
    unsigned int max_fd;
    uint64_t ignored_sigs;       /* signals jobd ignores (bit sig-1): reset in each child */
    const struct run_as *run_as; /* borrowed (exec_config); NULL: children keep jobd's user */
};

/* ---- child side ---------------------------------------------------------------------------- */

enum child_step {
    STEP_OK = 0,
    STEP_SETPGID,
    STEP_SIGNALS,
    STEP_USER,
    STEP_CHDIR,
    STEP_RLIMIT,
    STEP_STDIO,
    STEP_CLOSE,
    STEP_EXEC,
};

/* Everything the child needs, built before vfork. */
struct child_plan {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int fds[3]; /* become 0, 1, 2; all >= 3 */
    int n_limits;
    struct {
        int resource;
        struct {
            uint64_t cur, max; /* the kernel's struct rlimit64 */
        } lim;
    } limits[3];
    unsigned int max_fd;         /* for closing by hand when close_range is missing */
    int report_fd;               /* write end of the report pipe, or -1 when vfork shares memory */
    const uint64_t *ignored;     /* signals to reset before execve (bit sig-1), or NULL: all */
    const struct run_as *run_as; /* the user to switch to, or NULL: stay jobd's */
};

/* What went wrong in the child: a step, its errno, and a detail (the limit's index). */
struct child_report {
    int step;
    int err;
    int detail;
};

static _Noreturn void child_fail(const struct child_plan *p, volatile struct child_report *rep,
                                 int step, int err, int detail) {
    rep->step = step;
    rep->err = err;
    rep->detail = detail;
    if (p->report_fd >= 0) {
        struct child_report r = {step, err, detail};
        (void)syscall(SYS_write, p->report_fd, &r, sizeof(r));
    }
    for (;;)
        (void)syscall(SYS_exit_group, 127);
}

/* Close fds [lo, hi] in the child, with close_range or one by one. */
static int child_close_range(unsigned int lo, unsigned int hi, unsigned int max_fd) {
    if (lo > hi)
        return 0;
    if (syscall(SYS_close_range, lo, hi, 0) == 0)
        return 0;
    if (errno != ENOSYS)
        return -1;
    for (unsigned int fd = lo; fd <= hi && fd < max_fd; fd++)
        (void)syscall(SYS_close, fd);
    return 0;
}

/* Set every signal's disposition to SIG_DFL in the child. Return 0, or -1 with errno. */
/*
 * Reset signal dispositions to SIG_DFL: all of them, or only those in
 * `only` (bit sig-1). Before execve only ignored signals need it: execve
 * itself resets every caught signal, but an ignored one stays ignored.
 */
static int child_reset_signals_in(const uint64_t *only) {
    /* A kernel struct sigaction of zeros is SIG_DFL, no flags, empty mask, on every layout. */
    unsigned long kact[8] = {0};
    for (int sig = 1; sig <= KERNEL_NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP)
            continue;
        if (only != NULL && !(*only & ((uint64_t)1 << (sig - 1))))
            continue;
        if (syscall(SYS_rt_sigaction, sig, kact, NULL, (size_t)(KERNEL_NSIG / 8)) < 0 &&
            errno != EINVAL)
            return -1;
    }
    return 0;
}

/* Unblock every signal in the child. Return 0, or -1 with errno. */
static int child_unblock_signals(void) {
    unsigned long empty[SIGSET_LONGS] = {0};
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, empty, NULL, (size_t)(KERNEL_NSIG / 8)) < 0)
        return -1;
    return 0;
}

/* Close every fd from `lo` up, except `keep` (when keep >= lo). Return 0, or -1 with errno. */
static int child_close_from(unsigned int lo, int keep, unsigned int max_fd) {
    if (keep >= (int)lo) {
        if (child_close_range(lo, (unsigned int)keep - 1, max_fd) < 0)
            return -1;
        return child_close_range((unsigned int)keep + 1, ~0U, max_fd);
    }
    return child_close_range(lo, ~0U, max_fd);
}

/*
 * Switch the child to the --run-as user: its supplementary groups, then its
 * group, then its user (real, effective and saved ids alike, so there is no
 * way back). Raw system calls only: glibc's setgroups, setgid and setuid
 * wrappers signal every thread of the process to change them all, which
 * must not happen in a vfork child sharing jobd's memory. The kernel call
 * changes the calling thread only, which is the whole child. The groups
 * array was built in the parent. Return 0 (also when there is no run-as
 * user), or -1 with errno.
 */
static int child_switch_user(const struct run_as *ra) {
    if (ra == NULL)
        return 0;
    if (syscall(SYS_SETGROUPS, (long)ra->n_groups, ra->groups) < 0 ||
        syscall(SYS_SETRESGID, (long)ra->gid, (long)ra->gid, (long)ra->gid) < 0 ||
        syscall(SYS_SETRESUID, (long)ra->uid, (long)ra->uid, (long)ra->uid) < 0)
        return -1;
    return 0;
}

/*
 * The child between vfork and execve. Only raw system calls: they are
 * async-signal-safe and no sanitizer intercepts them. Limits are set while
 * the child may still raise them (so they mean the same with --run-as), the
 * user is switched before chdir (so the job's cwd is checked with the job's
 * rights).
 */
static _Noreturn void child_run(const struct child_plan *p, volatile struct child_report *rep) {
    if (syscall(SYS_setpgid, 0, 0) < 0)
        child_fail(p, rep, STEP_SETPGID, errno, 0);

    if (child_reset_signals_in(p->ignored) < 0)
        child_fail(p, rep, STEP_SIGNALS, errno, 0);

    for (int i = 0; i < p->n_limits; i++) {
        if (syscall(SYS_prlimit64, 0, p->limits[i].resource, &p->limits[i].lim, NULL) < 0)
            child_fail(p, rep, STEP_RLIMIT, errno, i);
    }

    if (child_switch_user(p->run_as) < 0)
        child_fail(p, rep, STEP_USER, errno, 0);

    if (syscall(SYS_chdir, p->cwd) < 0)
        child_fail(p, rep, STEP_CHDIR, errno, 0);

    for (int i = 0; i < 3; i++) {
        if (syscall(SYS_dup3, p->fds[i], i, 0) < 0)
            child_fail(p, rep, STEP_STDIO, errno, 0);
    }

    if (child_close_from(3, p->report_fd, p->max_fd) < 0)
        child_fail(p, rep, STEP_CLOSE, errno, 0);

    if (child_unblock_signals() < 0)
        child_fail(p, rep, STEP_SIGNALS, errno, 0);

    (void)syscall(SYS_execve, p->path, p->argv, p->envp);
    child_fail(p, rep, STEP_EXEC, errno, 0);
}

/*
 * vfork and run the child. The child never returns from here; the parent
 * gets the pid (or -1 and errno) once the child has called execve or exited.
 */
static pid_t spawn_child(const struct child_plan *p, volatile struct child_report *rep) {
    /* Block every signal, glibc's internal ones too, so no handler runs in the child. */
    unsigned long all[SIGSET_LONGS], old[SIGSET_LONGS];
    memset(all, 0xff, sizeof(all));
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, all, old, (size_t)(KERNEL_NSIG / 8)) < 0)
        return -1;
    pid_t pid = vfork();
    if (pid == 0)
        child_run(p, rep);
    int saved = errno;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, (size_t)(KERNEL_NSIG / 8)) < 0)
        abort(); /* cannot happen: the same call just worked */
    errno = saved;
    return pid;
}

/* ---- task child side ------------------------------------------------------------------------ */

/* Everything a task child needs, prepared before fork. */
struct task_plan {
    struct child_plan base; /* cwd (NULL: stay), fds 0..2, limits, max_fd, report_fd; no exec */
    int result_fd;          /* the write end of the result pipe; becomes fd 3 */
    const struct jobd_task_def *def;
    const json_t *args;
    const char *id;
    char **envp; /* the job's clean environment, as for commands */
};

/* Report a failed set-up step to the parent through the report pipe and exit. */
static _Noreturn void task_child_fail(const struct task_plan *tp, int step, int err, int detail) {
    struct child_report r = {step, err, detail};
    (void)syscall(SYS_write, tp->base.report_fd, &r, sizeof(r));
    _exit(127);
}

/* Write all of buf to fd, retrying EINTR and short writes. Return 0 or -errno. */
static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* jobd_task_ops.write in a task child: streams 1 and 2 are the child's own fds 1 and 2. */
static int task_child_write(jobd_task *t, int stream, const void *buf, size_t len) {
    (void)t;
    int rc = write_all(stream, buf, len);
    return rc < 0 ? rc : (int)len;
}

/* The task's error text as a new JSON string; bytes that are not ASCII become '?' if needed. */
static json_t *task_error_json(const char *error) {
    json_t *s = json_string(error);
    if (s != NULL)
        return s;
    char ascii[sizeof(((jobd_task *)0)->error)];
    size_t i = 0;
    for (; error[i] != '\0' && i + 1 < sizeof(ascii); i++)
        ascii[i] = (unsigned char)error[i] < 0x80 ? error[i] : '?';
    ascii[i] = '\0';
    return json_string(ascii);
}

/*
 * Send the task's outcome as one JSON document on TASK_RESULT_FD:
 * {"exit": code, "result": <result or null>, "error": "<error or empty>"}.
 * When it cannot be encoded or is over TASK_RESULT_MAX, send a document
 * with no result that says so instead, and fail (exit code 1) a task that
 * had succeeded. Return the exit code.
 */
static int task_child_send(const jobd_task *t, int code) {
    const char *trouble = NULL;
    json_t *doc =
        json_pack("{s:i, s:O, s:o}", "exit", code, "result",
                  t->result != NULL ? t->result : json_null(), "error", task_error_json(t->error));
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (text == NULL)
        trouble = "cannot encode the task result";
    else if (strlen(text) > TASK_RESULT_MAX)
        trouble = "task result too large";
    if (trouble != NULL) {
        char small[128];
        code = code != 0 ? code : 1;
        int n = snprintf(small, sizeof(small), "{\"exit\":%d,\"result\":null,\"error\":\"%s\"}",
                         code, trouble);
        (void)write_all(TASK_RESULT_FD, small, (size_t)n);
    } else {
        (void)write_all(TASK_RESULT_FD, text, strlen(text)); /* EPIPE: the parent gave up */
    }
    free(text);
    json_decref(doc);
    return code;
}

/* Run the task function in the child and send its outcome. Return the exit code. */
static int task_child_call(const struct task_plan *tp) {
    static const struct jobd_task_ops ops = {task_child_write};
    jobd_task t;

    /* Drop what jobd had buffered in stdio: a flush here would put it into the job's output. */
    __fpurge(stdout);
    __fpurge(stderr);
    if (jobd_task_init(&t) < 0) {
        static const char doc[] =
            "{\"exit\":1,\"result\":null,\"error\":\"cannot set up the task\"}";
        (void)write_all(TASK_RESULT_FD, doc, sizeof(doc) - 1);
        return 1;
    }
    t.ops = &ops;
    snprintf(t.id, sizeof(t.id), "%s", tp->id);
    jobd_task_enter(&t);
    int rc = tp->def->fn(tp->args, &t);
    jobd_task_leave();
    /* Output the task wrote with stdio (printf) rather than jobd_task_printf goes out too. */
    (void)fflush(stdout);
    (void)fflush(stderr);
    int code = rc == 0 ? 0 : rc >= 1 && rc <= 255 ? rc : 1;
    return task_child_send(&t, code);
}

/*
 * The task child after fork. fork (not vfork) copied the parent, and glibc
 * makes malloc and stdio usable in the child, so this is ordinary C; what
 * another thread of jobd held locked at the fork stays locked here, though.
 * Set-up failures go to the parent through the report pipe, which the child
 * closes once set-up is done (the parent waits for that EOF).
 */
static _Noreturn void task_child_run(const struct task_plan *tp) {
    const struct child_plan *p = &tp->base;
    if (setpgid(0, 0) < 0)
        task_child_fail(tp, STEP_SETPGID, errno, 0);
    if (child_reset_signals_in(NULL) < 0)
        task_child_fail(tp, STEP_SIGNALS, errno, 0);
    /*
     * As for a command, before chdir. The child then holds a copy of jobd's
     * memory (tokens, TLS key) as another user: keep it non-dumpable (the
     * kernel does so when the ids change, unless fs.suid_dumpable is 1), so
     * that user's other processes cannot ptrace it or read its memory.
     */
    if (child_switch_user(p->run_as) < 0)
        task_child_fail(tp, STEP_USER, errno, 0);
    if (p->run_as != NULL && prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) < 0)
        task_child_fail(tp, STEP_USER, errno, 0);
    if (p->cwd != NULL && chdir(p->cwd) < 0)
        task_child_fail(tp, STEP_CHDIR, errno, 0);
    /* Sources are all >= 4 but fds[0] (/dev/null, >= 3), which is placed before fd 3 is. */
    for (int i = 0; i < 3; i++) {
        if (dup3(p->fds[i], i, 0) < 0)
            task_child_fail(tp, STEP_STDIO, errno, 0);
    }
    if (dup3(tp->result_fd, TASK_RESULT_FD, O_CLOEXEC) < 0)
        task_child_fail(tp, STEP_STDIO, errno, 0);
    if (child_close_from(TASK_RESULT_FD + 1, p->report_fd, p->max_fd) < 0)
        task_child_fail(tp, STEP_CLOSE, errno, 0);
    /* Limits come after the fds: RLIMIT_NOFILE below 4 would forbid fd 3. */
    for (int i = 0; i < p->n_limits; i++) {
        if (syscall(SYS_prlimit64, 0, p->limits[i].resource, &p->limits[i].lim, NULL) < 0)
            task_child_fail(tp, STEP_RLIMIT, errno, i);
    }
    if (child_unblock_signals() < 0)
        task_child_fail(tp, STEP_SIGNALS, errno, 0);
    (void)close(p->report_fd);
    /* jobd's own environment (and its tokens) must not reach the task. */
    environ = tp->envp;
    _exit(task_child_call(tp));
}

/* fork and start the task child. Return its pid, or -1 and errno. */
static pid_t fork_task_child(const struct task_plan *tp) {
    /* As for vfork: no handler of jobd may run in the child before it resets them. */
    unsigned long all[SIGSET_LONGS], old[SIGSET_LONGS];
    memset(all, 0xff, sizeof(all));
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, all, old, (size_t)(KERNEL_NSIG / 8)) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0)
        task_child_run(tp);
    int saved = errno;
    if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, (size_t)(KERNEL_NSIG / 8)) < 0)
        abort(); /* cannot happen: the same call just worked */
    errno = saved;
    return pid;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static void close_fd(int *fd) {
    if (*fd >= 0) {
        (void)close(*fd);
        *fd = -1;
    }
}

/*
 * Make sure fd is >= lowest (so dup3 onto the fds below never clobbers a
 * source), keeping it close-on-exec. Return 0 or -errno.
 */
static int move_fd_up(int *fd, int lowest) {
    if (*fd >= lowest)
        return 0;
    int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, lowest);
    if (nfd < 0)
        return -errno;
    (void)close(*fd);
    *fd = nfd;
    return 0;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static void wake(struct exec_proc *ep) {
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(ep->evfd, &one, sizeof(one));
        if (n >= 0 || errno == EAGAIN) /* EAGAIN: the counter is full, a wake-up is pending */
            return;
        if (errno != EINTR)
            abort(); /* an eventfd write cannot fail otherwise */
    }
}

/* Reap pid, retrying EINTR. Return true with *status when reaped. */
static bool reap(pid_t pid, int *status) {
    for (;;) {
        pid_t r = waitpid(pid, status, 0);
        if (r == pid)
            return true;
        if (r < 0 && errno == EINTR)
            continue;
        return false; /* ECHILD: someone else reaped it (SIGCHLD set to SIG_IGN?) */
    }
}

/*
 * Signal a process group. Failure is not actionable: ESRCH means the group
 * is gone already, EPERM that a member changed credentials (setuid), and
 * the leader is reaped through its pidfd either way.
 */
static void signal_group(pid_t pgid, int sig) {
    (void)kill(-pgid, sig);
}

static int64_t seconds_to_ms(double s) {
    if (s <= 0)
        return 0;
    int64_t ms = (int64_t)(s * 1000.0 + 0.5);
    return ms > 0 ? ms : 1; /* a tiny timeout is still a timeout, not "none" */
}

/*
 * Look `name` up in the colon-separated `path` as execvp does, relative
 * entries (and empty ones, meaning ".") taken from `cwd`. The first regular
 * executable file wins; failing that, the first regular file (so execve
 * reports why it cannot run). Return a new string, or NULL when nothing is
 * found or memory runs out (*nomem tells which).
 */
static char *path_lookup(const char *path, const char *name, const char *cwd, bool *nomem) {
    *nomem = false;
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > NAME_MAX)
        return NULL;
    char *fallback = NULL;
    const char *s = path;
    for (;;) {
        const char *e = strchr(s, ':');
        size_t dlen = e ? (size_t)(e - s) : strlen(s);
        char *cand = NULL;
        int n;
        if (dlen == 0)
            n = asprintf(&cand, "%s/%s", cwd, name);
        else if (s[0] == '/')
            n = asprintf(&cand, "%.*s/%s", (int)dlen, s, name);
        else
            n = asprintf(&cand, "%s/%.*s/%s", cwd, (int)dlen, s, name);
        if (n < 0) {
            *nomem = true;
            free(fallback);
            return NULL;
        }
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(cand, X_OK) == 0) {
                free(fallback);
                return cand;
            }
            if (fallback == NULL) {
                fallback = cand;
                cand = NULL;
            }
        }
        free(cand);
        if (e == NULL)
            break;
        s = e + 1;
    }
    return fallback;
}

/* The index in envp of the variable named like `kv` ("KEY=..."), or -1. */
static int env_find(char **envp, int n, const char *kv) {
    const char *eq = strchr(kv, '=');
    size_t klen = eq ? (size_t)(eq - kv) : strlen(kv);
    for (int i = 0; i < n; i++) {
        if (strncmp(envp[i], kv, klen) == 0 && envp[i][klen] == '=')
            return i;
    }
    return -1;
}

/* ---- /proc ---------------------------------------------------------------------------------- */

/*
 * Read /proc/PID/stat: state (field 3), process group (field 5) and start
 * time (field 22). Fields are counted after the last ')' because the
 * command name may hold spaces and parentheses. Return 0 or -errno.
 */
static int read_proc_stat(pid_t pid, char *state, int64_t *pgrp, int64_t *start) {
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            (void)close(fd);
            return -e;
        }
        if (n == 0 || (got += (size_t)n) == sizeof(buf) - 1)
            break;
    }
    (void)close(fd);
    buf[got] = '\0';
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ' || p[2] == '\0')
        return -EINVAL;
    p += 2;
    if (state)
        *state = *p;
    /* p is at field 3; walk to fields 5 and 22. */
    for (int field = 3; field <= 22; field++) {
        char *end;
        if (field == 3) {
            end = strchr(p, ' ');
            if (end == NULL)
                return -EINVAL;
        } else {
            errno = 0;
            long long v = strtoll(p, &end, 10);
            if (end == p || errno != 0)
                return -EINVAL;
            if (field == 5 && pgrp)
                *pgrp = v;
            if (field == 22) {
                if (start)
                    *start = v;
                return 0;
            }
        }
        p = end;
        while (*p == ' ')
            p++;
    }
    return -EINVAL;
}

int64_t exec_process_start_time(pid_t pid) {
    int64_t start;
    if (pid <= 0 || read_proc_stat(pid, NULL, NULL, &start) < 0)
        return -1;
    return start;
}

int exec_kill_leftover_group(pid_t pgid, int64_t pid_start) {
    if (pgid <= 1)
        return 0;
    /* A live leader with another start time means the group id now belongs to someone else. */
    char lstate;
    int64_t lpgrp, lstart;
    if (read_proc_stat(pgid, &lstate, &lpgrp, &lstart) == 0 && lpgrp == pgid && lstart != pid_start)
        return 0;
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    int count = 0;
    pid_t self = getpid();
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL)
            break;
        char *end;
        long v = strtol(de->d_name, &end, 10);
        if (end == de->d_name || *end != '\0' || v <= 0 || v > INT_MAX || v == self)
            continue;
        char state;
        int64_t pgrp, start;
        if (read_proc_stat((pid_t)v, &state, &pgrp, &start) < 0)
            continue; /* gone meanwhile */
        if (pgrp != pgid || start < pid_start || state == 'Z' || state == 'X')
            continue;
        if (kill((pid_t)v, SIGKILL) == 0)
            count++;
    }
    (void)closedir(d);
    return count;
}

/* ---- attempts ------------------------------------------------------------------------------- */

static int watch_add(struct exec_proc *ep, struct attempt *a, enum watch_kind kind, int fd,
                     uint32_t events) {
    a->watch[kind].a = a;
    a->watch[kind].kind = kind;
    struct epoll_event ev = {.events = events, .data.ptr = &a->watch[kind]};
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    return 0;
}

/* Remove fd from epoll (if it was added) and close it. */
static void watch_close(struct exec_proc *ep, int *fd) {
    if (*fd < 0)
        return;
    /* ENOENT for an fd not added yet (a failed spawn); close removes it anyway. */
    (void)epoll_ctl(ep->epfd, EPOLL_CTL_DEL, *fd, NULL);
    close_fd(fd);
}

static void mark_done_if_over(struct exec_proc *ep, struct attempt *a) {
    if (a->done || !a->reaped || a->out_fd[0] >= 0 || a->out_fd[1] >= 0 || a->res_fd >= 0)
        return;
    a->done = true;
    a->next_done = ep->done;
    ep->done = a;
}

static void mark_dirty(struct exec_proc *ep, struct attempt *a) {
    if (a->dirty)
        return;
    a->dirty = true;
    a->next_dirty = ep->dirty;
    ep->dirty = a;
}

static void free_attempt(struct attempt *a) {
    if (a == NULL)
        return;
    for (int s = 0; s < 2; s++)
        output_writer_close(a->w[s]);
    free(a->res_buf);
    free(a);
}

/* Tell the scheduler an attempt that never started is over. */
static void report_start_failure(struct exec_proc *ep, const struct exec_run *run,
                                 const char *error) {
    struct exec_result res;
    memset(&res, 0, sizeof(res));
    res.end = EXEC_START_FAILED;
    res.exit_code = -1;
    snprintf(res.error, sizeof(res.error), "%s", error);
    res.started_ms = res.finished_ms = jobd_now_ms();
    pthread_mutex_lock(&ep->lock);
    ep->n_running--;
    pthread_mutex_unlock(&ep->lock);
    ep->cb.exited(ep->ctx, run->num, &res);
}

static const char *rlimit_name(int resource) {
    switch (resource) {
    case RLIMIT_CPU:
        return "RLIMIT_CPU";
    case RLIMIT_AS:
        return "RLIMIT_AS";
    case RLIMIT_NOFILE:
        return "RLIMIT_NOFILE";
    default:
        return "?";
    }
}

static void describe_child_failure(const struct child_plan *p, const struct child_report *r,
                                   char *err, size_t len) {
    const char *why = strerror(r->err);
    switch (r->step) {
    case STEP_SETPGID:
        snprintf(err, len, "cannot create a process group: %s", why);
        break;
    case STEP_SIGNALS:
        snprintf(err, len, "cannot reset signals: %s", why);
        break;
    case STEP_USER:
        snprintf(err, len, "cannot switch to user %s (uid %u): %s",
                 p->run_as ? p->run_as->user : "?", p->run_as ? (unsigned)p->run_as->uid : 0U, why);
        break;
    case STEP_CHDIR:
        snprintf(err, len, "cannot change directory to %s: %s", p->cwd, why);
        break;
    case STEP_RLIMIT:
        snprintf(err, len, "cannot set %s to %llu: %s", rlimit_name(p->limits[r->detail].resource),
                 (unsigned long long)p->limits[r->detail].lim.cur, why);
        break;
    case STEP_STDIO:
        snprintf(err, len, "cannot set up standard streams: %s", why);
        break;
    case STEP_CLOSE:
        snprintf(err, len, "cannot close descriptors: %s", why);
        break;
    default:
        snprintf(err, len, "cannot execute %s: %s", p->path, why);
        break;
    }
}

/*
 * Build the child's environment: PATH, HOME, LANG, then the spec's entries,
 * which replace a default of the same name. Return a new array of borrowed
 * and owned strings (*owned lists the owned ones for freeing), or NULL if
 * memory runs out.
 */
static char **build_env(const struct exec_proc *ep, const struct jobd_spec *spec, const char *cwd,
                        char *owned[2]) {
    static char lang[] = "LANG=C.UTF-8";
    char **envp = calloc(3 + spec->envc + 1, sizeof(char *));
    if (envp == NULL)
        return NULL;
    owned[0] = owned[1] = NULL;
    if (asprintf(&owned[0], "PATH=%s", ep->path_env) < 0 ||
        asprintf(&owned[1], "HOME=%s", cwd) < 0) {
        owned[0] = owned[1] = NULL; /* asprintf leaves them undefined on failure */
        free(envp);
        return NULL;
    }
    int n = 0;
    envp[n++] = owned[0];
    envp[n++] = owned[1];
    envp[n++] = lang;
    for (size_t i = 0; spec->env != NULL && i < spec->envc && spec->env[i] != NULL; i++) {
        if (strchr(spec->env[i], '=') == NULL)
            continue;
        int at = env_find(envp, n, spec->env[i]);
        envp[at >= 0 ? at : n++] = spec->env[i];
    }
    envp[n] = NULL;
    return envp;
}

/* Copy the spec's resource limits into the plan. */
static void plan_limits(struct child_plan *plan, const struct jobd_spec *spec) {
    const struct {
        int64_t v;
        int resource;
    } lims[3] = {{spec->limits.cpu_seconds, RLIMIT_CPU},
                 {spec->limits.memory_bytes, RLIMIT_AS},
                 {spec->limits.open_files, RLIMIT_NOFILE}};
    for (int i = 0; i < 3; i++) {
        if (lims[i].v < 0)
            continue;
        plan->limits[plan->n_limits].resource = lims[i].resource;
        plan->limits[plan->n_limits].lim.cur = (uint64_t)lims[i].v;
        plan->limits[plan->n_limits].lim.max = (uint64_t)lims[i].v;
        plan->n_limits++;
    }
}

/* Read a child's set-up report until EOF (set-up done: STEP_OK) or a failure record. */
static void read_report(int fd, struct child_report *r) {
    ssize_t n;
    do
        n = read(fd, r, sizeof(*r));
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(*r))
        r->step = STEP_OK;
}

/*
 * Fork the child of a task attempt. Like spawn, which calls it: on success
 * fill a's pid and fds (res_fd too) and return 0; on failure fill err and
 * return -1 with nothing left open and any child reaped.
 */
static int spawn_task(struct exec_proc *ep, struct attempt *a, char *err, size_t errlen) {
    const struct jobd_spec *spec = a->spec;
    int child_out[2] = {-1, -1}, child_res = -1, report[2] = {-1, -1};
    int rc = -1;
    char *owned_env[2] = {NULL, NULL};
    struct task_plan tp;
    memset(&tp, 0, sizeof(tp));

    tp.def = jobd_task_lookup(spec->task);
    if (tp.def == NULL) {
        snprintf(err, errlen, "no such task: %s", spec->task ? spec->task : "");
        return -1;
    }
    tp.args = spec->args;
    tp.id = a->id;
    tp.base.cwd = spec->cwd ? spec->cwd : ep->default_cwd;
    tp.envp = build_env(ep, spec, tp.base.cwd ? tp.base.cwd : "/", owned_env);
    if (tp.envp == NULL) {
        snprintf(err, errlen, "cannot start: out of memory");
        return -1;
    }
    tp.base.max_fd = ep->max_fd;
    tp.base.run_as = ep->run_as;
    plan_limits(&tp.base, spec);

    /* Parent ends non-blocking; child ends moved above 3 so dup3 onto 0..3 clobbers none. */
    int pfd[2];
    for (int s = 0; s < 3; s++) {
        if (pipe2(pfd, O_CLOEXEC) < 0)
            goto syserr;
        int *parent_end = s < 2 ? &a->out_fd[s] : &a->res_fd;
        int *child_end = s < 2 ? &child_out[s] : &child_res;
        *parent_end = pfd[0];
        *child_end = pfd[1];
        if (set_nonblock(*parent_end) < 0 || move_fd_up(child_end, TASK_RESULT_FD + 1) < 0)
            goto syserr;
    }
    if (pipe2(report, O_CLOEXEC) < 0 || move_fd_up(&report[1], TASK_RESULT_FD + 1) < 0)
        goto syserr;
    tp.base.fds[0] = ep->devnull;
    tp.base.fds[1] = child_out[0];
    tp.base.fds[2] = child_out[1];
    tp.base.report_fd = report[1];
    tp.result_fd = child_res;

    a->started_ms = jobd_now_ms();
    pid_t pid = fork_task_child(&tp);
    if (pid < 0)
        goto syserr;
    close_fd(&child_out[0]);
    close_fd(&child_out[1]);
    close_fd(&child_res);
    close_fd(&report[1]);
    struct child_report r = {STEP_OK, 0, 0};
    read_report(report[0], &r);
    if (r.step != STEP_OK) {
        int status;
        (void)reap(pid, &status);
        describe_child_failure(&tp.base, &r, err, errlen);
        goto out;
    }
    a->pid = pid;

    a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (a->pidfd < 0 || watch_add(ep, a, W_PIDFD, a->pidfd, EPOLLIN) < 0 ||
        watch_add(ep, a, W_STDOUT, a->out_fd[0], EPOLLIN) < 0 ||
        watch_add(ep, a, W_STDERR, a->out_fd[1], EPOLLIN) < 0 ||
        watch_add(ep, a, W_RESULT, a->res_fd, EPOLLIN) < 0) {
        int e = errno, status;
        signal_group(pid, SIGKILL);
        (void)reap(pid, &status);
        a->pid = 0;
        errno = e;
        goto syserr;
    }
    rc = 0;
    goto out;

syserr:
    snprintf(err, errlen, "cannot start: %s", strerror(errno));
out:
    if (rc < 0) {
        watch_close(ep, &a->pidfd);
        watch_close(ep, &a->out_fd[0]);
        watch_close(ep, &a->out_fd[1]);
        watch_close(ep, &a->res_fd);
    }
    close_fd(&child_out[0]);
    close_fd(&child_out[1]);
    close_fd(&child_res);
    close_fd(&report[0]);
    close_fd(&report[1]);
    free(tp.envp);
    free(owned_env[0]);
    free(owned_env[1]);
    return rc;
}

/*
 * Spawn the child of attempt a. On success fill a's pid and fds and return
 * 0. On failure fill err (the job's `error`) and return -1; nothing is left
 * open and any child is reaped.
 */
static int spawn(struct exec_proc *ep, struct attempt *a, char *err, size_t errlen) {
    const struct jobd_spec *spec = a->spec;
    const char *cwd = spec->cwd ? spec->cwd : ep->default_cwd ? ep->default_cwd : "/";
    char *owned_env[2] = {NULL, NULL};
    char *resolved = NULL;
    char **envp = NULL;
    char *shell_argv[4] = {"sh", "-c", spec->shell, NULL};
    int child_in = -1, child_out[2] = {-1, -1}, report[2] = {-1, -1};
    int rc = -1;
    struct child_plan plan;
    memset(&plan, 0, sizeof(plan));

    if (spec->kind == JOBD_SPEC_TASK)
        return spawn_task(ep, a, err, errlen);
    if (spec->kind == JOBD_SPEC_COMMAND && (spec->argv == NULL || spec->argv[0] == NULL)) {
        snprintf(err, errlen, "empty command");
        return -1;
    }
    if (spec->kind == JOBD_SPEC_SHELL && spec->shell == NULL) {
        snprintf(err, errlen, "empty shell command");
        return -1;
    }

    envp = build_env(ep, spec, cwd, owned_env);
    if (envp == NULL)
        goto nomem;
    if (spec->kind == JOBD_SPEC_SHELL) {
        plan.path = "/bin/sh";
        plan.argv = shell_argv;
    } else {
        const char *name = spec->argv[0];
        if (strchr(name, '/') != NULL) {
            plan.path = name;
        } else {
            bool nomem; /* envp[0] is always PATH, the default or the spec's */
            resolved = path_lookup(envp[0] + 5, name, cwd, &nomem);
            if (resolved == NULL) {
                if (nomem)
                    goto nomem;
                snprintf(err, errlen, "command not found: %s", name);
                goto out;
            }
            plan.path = resolved;
        }
        plan.argv = spec->argv;
    }
    plan.envp = envp;
    plan.cwd = cwd;
    plan.max_fd = ep->max_fd;
    plan.report_fd = -1;
    plan.ignored = &ep->ignored_sigs;
    plan.run_as = ep->run_as;
    plan_limits(&plan, spec);

    /* Pipes: parent ends non-blocking, child ends moved above 2. All close-on-exec. */
    int pfd[2];
    for (int s = 0; s < 2; s++) {
        if (pipe2(pfd, O_CLOEXEC) < 0)
            goto syserr;
        a->out_fd[s] = pfd[0];
        child_out[s] = pfd[1];
        if (set_nonblock(a->out_fd[s]) < 0 || move_fd_up(&child_out[s], 3) < 0)
            goto syserr;
    }
    if (spec->stdin_data != NULL && spec->stdin_len > 0) {
        if (pipe2(pfd, O_CLOEXEC) < 0)
            goto syserr;
        child_in = pfd[0];
        a->in_fd = pfd[1];
        if (set_nonblock(a->in_fd) < 0 || move_fd_up(&child_in, 3) < 0)
            goto syserr;
        plan.fds[0] = child_in;
    } else {
        plan.fds[0] = ep->devnull;
    }
    plan.fds[1] = child_out[0];
    plan.fds[2] = child_out[1];
    if (EXEC_FORK_COPIES) {
        if (pipe2(report, O_CLOEXEC) < 0)
            goto syserr;
        plan.report_fd = report[1];
    }

    volatile struct child_report rep = {STEP_OK, 0, 0};
    a->started_ms = jobd_now_ms();
    pid_t pid = spawn_child(&plan, &rep);
    if (pid < 0)
        goto syserr;
    close_fd(&child_in);
    close_fd(&child_out[0]);
    close_fd(&child_out[1]);
    struct child_report r = {rep.step, rep.err, rep.detail};
    if (report[0] >= 0) {
        close_fd(&report[1]);
        read_report(report[0], &r); /* EOF: execve succeeded */
    }
    if (r.step != STEP_OK) {
        int status;
        (void)reap(pid, &status);
        describe_child_failure(&plan, &r, err, errlen);
        goto out;
    }
    a->pid = pid;

    a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (a->pidfd < 0 || watch_add(ep, a, W_PIDFD, a->pidfd, EPOLLIN) < 0 ||
        watch_add(ep, a, W_STDOUT, a->out_fd[0], EPOLLIN) < 0 ||
        watch_add(ep, a, W_STDERR, a->out_fd[1], EPOLLIN) < 0 ||
        (a->in_fd >= 0 && watch_add(ep, a, W_STDIN, a->in_fd, EPOLLOUT) < 0)) {
        int e = errno, status;
        signal_group(pid, SIGKILL);
        (void)reap(pid, &status);
        a->pid = 0;
        errno = e;
        goto syserr;
    }
    rc = 0;
    goto out;

nomem:
    snprintf(err, errlen, "cannot start: out of memory");
    goto out;
syserr:
    snprintf(err, errlen, "cannot start: %s", strerror(errno));
out:
    if (rc < 0) {
        watch_close(ep, &a->pidfd);
        watch_close(ep, &a->in_fd);
        watch_close(ep, &a->out_fd[0]);
        watch_close(ep, &a->out_fd[1]);
    }
    close_fd(&child_in);
    close_fd(&child_out[0]);
    close_fd(&child_out[1]);
    close_fd(&report[0]);
    close_fd(&report[1]);
    free(resolved);
    free(owned_env[0]);
    free(owned_env[1]);
    free(envp);
    return rc;
}

static void start_attempt(struct exec_proc *ep, const struct exec_run *run) {
    char err[256];
    struct attempt *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        report_start_failure(ep, run, "cannot start: out of memory");
        return;
    }
    a->num = run->num;
    snprintf(a->id, sizeof(a->id), "%s", run->id);
    a->spec = run->spec;
    a->pidfd = a->in_fd = a->out_fd[0] = a->out_fd[1] = a->res_fd = -1;
    a->end = EXEC_EXITED;
    for (int s = 0; s < 2; s++) {
        a->w[s] = output_writer_open(ep->out_dir, a->id, (enum output_stream)s, run->output_cap);
        if (a->w[s] != NULL && run->attempt == 1)
            output_writer_set_fresh(a->w[s]);
        if (a->w[s] == NULL) {
            free_attempt(a);
            report_start_failure(ep, run, "cannot start: out of memory");
            return;
        }
    }
    if (spawn(ep, a, err, sizeof(err)) < 0) {
        free_attempt(a);
        report_start_failure(ep, run, err);
        return;
    }
    int64_t now = jobd_mono_ms();
    int64_t t = seconds_to_ms(a->spec->timeout);
    a->timeout_at = t > 0 ? now + t : 0;
    a->next = ep->attempts;
    if (ep->attempts)
        ep->attempts->prev = a;
    ep->attempts = a;
    ep->cb.started(ep->ctx, a->num, a->pid, exec_process_start_time(a->pid), a->started_ms);
}

/*
 * Stop an attempt: kill_signal to its group now, SIGKILL after grace_ms.
 * The first reason given sticks (a cancel does not turn a timeout into a
 * cancel); a later request may only shorten the grace.
 */
static void stop_attempt(struct attempt *a, enum exec_end why, int64_t grace_ms, int64_t now) {
    if (a->reaped || a->killed)
        return;
    if (!a->stopping) {
        a->stopping = true;
        a->end = why;
        a->timeout_at = 0;
        int sig = a->spec->kill_signal > 0 ? a->spec->kill_signal : SIGTERM;
        if (sig != SIGKILL && grace_ms > 0) {
            signal_group(a->pid, sig);
            a->kill_at = now + grace_ms;
            return;
        }
    } else if (grace_ms > 0) {
        if (now + grace_ms < a->kill_at)
            a->kill_at = now + grace_ms;
        return;
    }
    signal_group(a->pid, SIGKILL);
    a->killed = true;
    a->kill_at = 0;
}

static struct attempt *find_attempt(struct exec_proc *ep, int64_t num) {
    for (struct attempt *a = ep->attempts; a != NULL; a = a->next) {
        if (a->num == num && !a->reaped)
            return a;
    }
    return NULL;
}

/* The child exited: kill what is left of its group, then reap it. */
static void on_child_exit(struct exec_proc *ep, struct attempt *a) {
    watch_close(ep, &a->pidfd);
    signal_group(a->pid, SIGKILL);
    a->status_ok = reap(a->pid, &a->status);
    a->reaped = true;
    a->timeout_at = a->kill_at = 0;
    a->drain_until = jobd_mono_ms() + DRAIN_MS;
    watch_close(ep, &a->in_fd);
    mark_done_if_over(ep, a);
}

static void read_stream(struct exec_proc *ep, struct attempt *a, int s) {
    size_t budget = READ_BUDGET;
    while (a->out_fd[s] >= 0 && budget > 0) {
        ssize_t n = read(a->out_fd[s], ep->buf, READ_BUF);
        if (n > 0) {
            (void)output_writer_append(a->w[s], ep->buf, (size_t)n); /* on error it drops bytes */
            if (output_writer_readable(a->w[s]) != a->reported[s])
                mark_dirty(ep, a);
            budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        watch_close(ep, &a->out_fd[s]); /* EOF, or an error that will not go away */
        mark_done_if_over(ep, a);
    }
}

/*
 * Append to a task's result document. Over TASK_RESULT_MAX (or out of
 * memory) drop it, remember why, and return -1: the caller closes the pipe,
 * so a child still writing dies of SIGPIPE.
 */
static int result_append(struct attempt *a, const char *buf, size_t n) {
    if (n > TASK_RESULT_MAX - a->res_len) {
        a->res_error = "task result too large";
        goto drop;
    }
    if (a->res_len + n > a->res_cap) {
        size_t cap = a->res_cap ? a->res_cap : READ_BUF;
        while (cap < a->res_len + n)
            cap *= 2;
        if (cap > TASK_RESULT_MAX)
            cap = TASK_RESULT_MAX;
        char *grown = realloc(a->res_buf, cap);
        if (grown == NULL) {
            a->res_error = "task result lost: out of memory";
            goto drop;
        }
        a->res_buf = grown;
        a->res_cap = cap;
    }
    memcpy(a->res_buf + a->res_len, buf, n);
    a->res_len += n;
    return 0;
drop:
    free(a->res_buf);
    a->res_buf = NULL;
    a->res_len = a->res_cap = 0;
    return -1;
}

static void read_result(struct exec_proc *ep, struct attempt *a) {
    size_t budget = READ_BUDGET;
    while (a->res_fd >= 0 && budget > 0) {
        ssize_t n = read(a->res_fd, ep->buf, READ_BUF);
        if (n > 0 && result_append(a, ep->buf, (size_t)n) == 0) {
            budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        watch_close(ep, &a->res_fd); /* EOF, dropped, or an error that will not go away */
        mark_done_if_over(ep, a);
    }
}

static void write_stdin(struct exec_proc *ep, struct attempt *a) {
    const struct jobd_spec *spec = a->spec;
    while (a->in_fd >= 0 && a->in_off < spec->stdin_len) {
        ssize_t n = write(a->in_fd, spec->stdin_data + a->in_off, spec->stdin_len - a->in_off);
        if (n > 0) {
            a->in_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        break; /* EPIPE: the job closed its stdin; stop writing */
    }
    watch_close(ep, &a->in_fd); /* all written (the job sees EOF), or the job is not reading */
}

static void handle_event(struct exec_proc *ep, const struct epoll_event *ev) {
    struct watch *w = ev->data.ptr;
    if (w->kind == W_EVENT) {
        uint64_t v;
        while (read(ep->evfd, &v, sizeof(v)) < 0 && errno == EINTR) {
        }
        return;
    }
    struct attempt *a = w->a;
    switch (w->kind) {
    case W_PIDFD:
        if (a->pidfd >= 0)
            on_child_exit(ep, a);
        break;
    case W_STDIN:
        if (a->in_fd >= 0)
            write_stdin(ep, a);
        break;
    case W_STDOUT:
        read_stream(ep, a, 0);
        break;
    case W_STDERR:
        read_stream(ep, a, 1);
        break;
    case W_RESULT:
        read_result(ep, a);
        break;
    default:
        break;
    }
}

/* Handle every queued request, in order. */
static void handle_inbox(struct exec_proc *ep) {
    pthread_mutex_lock(&ep->lock);
    struct request *r = ep->inbox_head;
    ep->inbox_head = ep->inbox_tail = NULL;
    bool quit = ep->quit;
    pthread_mutex_unlock(&ep->lock);
    while (r != NULL) {
        struct request *next = r->next;
        int64_t now = jobd_mono_ms();
        switch (r->kind) {
        case REQ_START:
            start_attempt(ep, &r->run);
            break;
        case REQ_CANCEL: {
            struct attempt *a = find_attempt(ep, r->num);
            if (a != NULL)
                stop_attempt(a, EXEC_CANCELLED, seconds_to_ms(a->spec->kill_grace), now);
            break;
        }
        case REQ_STOP_ALL:
            for (struct attempt *a = ep->attempts; a != NULL; a = a->next) {
                int64_t g = seconds_to_ms(a->spec->kill_grace);
                stop_attempt(a, EXEC_CANCELLED, g < r->grace_ms ? g : r->grace_ms, now);
            }
            break;
        }
        free(r);
        r = next;
    }
    if (quit) {
        /* destroy with attempts still running: stop them at once rather than leak them. */
        int64_t now = jobd_mono_ms();
        for (struct attempt *a = ep->attempts; a != NULL; a = a->next)
            stop_attempt(a, EXEC_CANCELLED, 0, now);
    }
}

/* Fire due timers and return the next deadline (monotonic ms), or 0 for none. */
static int64_t run_timers(struct exec_proc *ep, int64_t now) {
    int64_t next = 0;
    for (struct attempt *a = ep->attempts; a != NULL; a = a->next) {
        if (a->timeout_at && now >= a->timeout_at)
            stop_attempt(a, EXEC_TIMED_OUT, seconds_to_ms(a->spec->kill_grace), now);
        if (a->kill_at && now >= a->kill_at) {
            signal_group(a->pid, SIGKILL);
            a->killed = true;
            a->kill_at = 0;
        }
        if (a->drain_until && now >= a->drain_until && !a->done) {
            /* A process that left the group (setsid) still holds the pipes: stop waiting. */
            watch_close(ep, &a->out_fd[0]);
            watch_close(ep, &a->out_fd[1]);
            watch_close(ep, &a->res_fd);
            mark_done_if_over(ep, a);
        }
        const int64_t ts[3] = {a->timeout_at, a->kill_at, a->done ? 0 : a->drain_until};
        for (int i = 0; i < 3; i++) {
            if (ts[i] && (next == 0 || ts[i] < next))
                next = ts[i];
        }
    }
    return next;
}

static void report_output(struct exec_proc *ep) {
    while (ep->dirty != NULL) {
        struct attempt *a = ep->dirty;
        ep->dirty = a->next_dirty;
        a->dirty = false;
        for (int s = 0; s < 2; s++) {
            int64_t r = output_writer_readable(a->w[s]);
            if (r != a->reported[s]) {
                size_t len;
                const void *d = output_writer_inline(a->w[s], &len);
                a->reported[s] = r;
                ep->cb.output(ep->ctx, a->num, s, r, d, len);
            }
        }
    }
}

/*
 * Read a finished task's result document: put its error text (or what is
 * wrong with the document) into res->error and return its result as new
 * compact JSON text that the caller frees, or NULL when there is none.
 */
static char *task_outcome(const struct attempt *a, struct exec_result *res) {
    bool exited = a->status_ok && WIFEXITED(a->status);
    if (a->res_error != NULL) {
        snprintf(res->error, sizeof(res->error), "%s", a->res_error);
        return NULL;
    }
    if (a->res_len == 0) {
        /* Killed before it could send one, or the task ended the child itself. */
        if (exited)
            snprintf(res->error, sizeof(res->error), "the task exited without sending a result");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(a->res_buf, a->res_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(doc)) {
        /* A child killed while writing leaves half a document: the signal tells why. */
        if (exited)
            snprintf(res->error, sizeof(res->error), "bad task result: %s",
                     doc == NULL ? jerr.text : "not a JSON object");
        json_decref(doc);
        return NULL;
    }
    const char *error = json_string_value(json_object_get(doc, "error"));
    if (error != NULL && error[0] != '\0')
        snprintf(res->error, sizeof(res->error), "%s", error);
    json_t *result = json_object_get(doc, "result");
    char *text = NULL;
    if (result != NULL && !json_is_null(result)) {
        text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL && res->error[0] == '\0')
            snprintf(res->error, sizeof(res->error), "task result lost: out of memory");
    }
    json_decref(doc);
    return text;
}

static void finish_attempt(struct exec_proc *ep, struct attempt *a) {
    struct exec_result res;
    char *inline_copy[2] = {NULL, NULL};
    memset(&res, 0, sizeof(res));
    res.end = a->end;
    res.exit_code = -1;
    char *result_json = a->spec->kind == JOBD_SPEC_TASK ? task_outcome(a, &res) : NULL;
    res.result_json = result_json;
    if (a->status_ok && WIFEXITED(a->status))
        res.exit_code = WEXITSTATUS(a->status);
    else if (a->status_ok && WIFSIGNALED(a->status))
        res.signal = WTERMSIG(a->status);
    else if (!a->status_ok && res.error[0] == '\0')
        snprintf(res.error, sizeof(res.error), "exit status lost: the child was reaped elsewhere");
    for (int s = 0; s < 2; s++) {
        int rc = output_writer_finish(a->w[s]);
        if (rc < 0 && res.error[0] == '\0')
            snprintf(res.error, sizeof(res.error), "cannot write %s: %s",
                     s == OUTPUT_STDOUT ? "stdout" : "stderr", strerror(-rc));
        res.out_total[s] = output_writer_total(a->w[s]);
        res.out_truncated[s] = output_writer_truncated(a->w[s]);
        size_t len;
        const void *d = output_writer_inline(a->w[s], &len);
        int64_t r = output_writer_readable(a->w[s]);
        if (r != a->reported[s]) {
            a->reported[s] = r;
            ep->cb.output(ep->ctx, a->num, s, r, d, len);
        }
        /* The writer goes with the attempt, before `exited`: keep a copy. */
        if (d != NULL && (inline_copy[s] = malloc(len)) != NULL) {
            memcpy(inline_copy[s], d, len);
            res.inline_out[s] = inline_copy[s];
            res.inline_len[s] = len;
        } else if (d != NULL && res.error[0] == '\0') {
            snprintf(res.error, sizeof(res.error), "cannot keep the output: out of memory");
        }
    }
    res.started_ms = a->started_ms;
    res.finished_ms = jobd_now_ms();

    if (a->prev)
        a->prev->next = a->next;
    else
        ep->attempts = a->next;
    if (a->next)
        a->next->prev = a->prev;
    pthread_mutex_lock(&ep->lock);
    ep->n_running--;
    pthread_mutex_unlock(&ep->lock);
    int64_t num = a->num;
    free_attempt(a);
    ep->cb.exited(ep->ctx, num, &res);
    free(result_json);
    free(inline_copy[0]);
    free(inline_copy[1]);
}

static void *executor_main(void *arg) {
    struct exec_proc *ep = arg;
    struct epoll_event evs[MAX_EVENTS];
    int64_t next = 0;
    for (;;) {
        int timeout = -1;
        if (next) {
            int64_t d = next - jobd_mono_ms();
            timeout = d <= 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
        }
        int n = epoll_wait(ep->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno != EINTR)
                abort(); /* EBADF/EFAULT/EINVAL: a bug here */
            n = 0;
        }
        for (int i = 0; i < n; i++)
            handle_event(ep, &evs[i]);
        handle_inbox(ep);
        next = run_timers(ep, jobd_mono_ms());
        report_output(ep);
        while (ep->done != NULL) {
            struct attempt *a = ep->done;
            ep->done = a->next_done;
            finish_attempt(ep, a);
        }
        if (ep->attempts == NULL) {
            pthread_mutex_lock(&ep->lock);
            bool leave = ep->quit && ep->inbox_head == NULL;
            pthread_mutex_unlock(&ep->lock);
            if (leave)
                break;
        }
    }
    return NULL;
}

/* ---- public API ------------------------------------------------------------------------------ */

int exec_proc_create(const struct exec_config *cfg, const struct exec_callbacks *cb, void *ctx,
                     struct exec_proc **out) {
    *out = NULL;
    if (cfg == NULL || cfg->out_dir == NULL || cb == NULL || cb->started == NULL ||
        cb->output == NULL || cb->exited == NULL)
        return -EINVAL;
    int rc = -ENOMEM;
    struct exec_proc *ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return -ENOMEM;
    ep->epfd = ep->evfd = ep->devnull = -1;
    ep->cb = *cb;
    ep->ctx = ctx;
    ep->out_dir = strdup(cfg->out_dir);
    ep->path_env = strdup(cfg->path_env ? cfg->path_env : DEFAULT_PATH);
    ep->run_as = cfg->run_as;
    /* jobd's own default (its data directory) is closed to the run-as user. */
    const char *dflt_cwd = cfg->run_as ? cfg->run_as->home : cfg->default_cwd;
    ep->default_cwd = dflt_cwd ? strdup(dflt_cwd) : NULL;
    ep->buf = malloc(READ_BUF);
    if (ep->out_dir == NULL || ep->path_env == NULL || ep->buf == NULL ||
        (dflt_cwd && ep->default_cwd == NULL))
        goto fail;
    if ((rc = pthread_mutex_init(&ep->lock, NULL)) != 0) {
        rc = -rc;
        goto fail;
    }
    /*
     * Which signals jobd ignores, so children reset just those (execve resets
     * caught ones itself). SIGPIPE always: jobd ignores it, maybe not yet.
     */
    ep->ignored_sigs = (uint64_t)1 << (SIGPIPE - 1);
    for (int sig = 1; sig <= KERNEL_NSIG; sig++) {
        struct sigaction old;
        /* glibc hides its own signals (32, 33) from sigaction: reset those always. */
        if (sigaction(sig, NULL, &old) != 0 || old.sa_handler == SIG_IGN)
            ep->ignored_sigs |= (uint64_t)1 << (sig - 1);
    }
    struct rlimit rl;
    ep->max_fd = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < UINT_MAX)
        ep->max_fd = (unsigned int)rl.rlim_cur;

    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    ep->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ep->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (ep->epfd < 0 || ep->evfd < 0 || ep->devnull < 0 || move_fd_up(&ep->devnull, 3) < 0) {
        rc = -errno;
        goto fail_lock;
    }
    ep->ev_watch.a = NULL;
    ep->ev_watch.kind = W_EVENT;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &ep->ev_watch};
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, ep->evfd, &ev) < 0) {
        rc = -errno;
        goto fail_lock;
    }

    /* The thread starts with every signal blocked: they belong to jobd's other threads. */
    sigset_t all, old;
    sigfillset(&all);
    if ((rc = pthread_sigmask(SIG_SETMASK, &all, &old)) != 0) {
        rc = -rc;
        goto fail_lock;
    }
    rc = pthread_create(&ep->thread, NULL, executor_main, ep);
    if (pthread_sigmask(SIG_SETMASK, &old, NULL) != 0)
        abort(); /* restoring a mask just read cannot fail */
    if (rc != 0) {
        rc = -rc;
        goto fail_lock;
    }
    (void)pthread_setname_np(ep->thread, "jobd-exec");
    *out = ep;
    return 0;

fail_lock:
    pthread_mutex_destroy(&ep->lock);
fail:
    close_fd(&ep->epfd);
    close_fd(&ep->evfd);
    close_fd(&ep->devnull);
    free(ep->out_dir);
    free(ep->path_env);
    free(ep->default_cwd);
    free(ep->buf);
    free(ep);
    return rc;
}

/* Append a request; return -ESHUTDOWN (and free it) if starts are closed and it is a start. */
static int push(struct exec_proc *ep, struct request *r) {
    pthread_mutex_lock(&ep->lock);
    if (r->kind == REQ_START) {
        if (ep->stopping) {
            pthread_mutex_unlock(&ep->lock);
            free(r);
            return -ESHUTDOWN;
        }
        ep->n_running++;
    }
    if (r->kind == REQ_STOP_ALL)
        ep->stopping = true;
    if (ep->inbox_tail)
        ep->inbox_tail->next = r;
    else
        ep->inbox_head = r;
    ep->inbox_tail = r;
    pthread_mutex_unlock(&ep->lock);
    wake(ep);
    return 0;
}

int exec_proc_start(struct exec_proc *ep, const struct exec_run *run) {
    if (run == NULL || run->spec == NULL)
        return -EINVAL;
    struct request *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->kind = REQ_START;
    r->run = *run;
    return push(ep, r);
}

void exec_proc_cancel(struct exec_proc *ep, int64_t num) {
    struct request *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return; /* out of memory: the attempt still ends on its own or at its timeout */
    r->kind = REQ_CANCEL;
    r->num = num;
    (void)push(ep, r);
}

void exec_proc_stop_all(struct exec_proc *ep, int64_t grace_ms) {
    struct request *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        /* Still refuse new starts; destroy will kill what runs. */
        pthread_mutex_lock(&ep->lock);
        ep->stopping = true;
        pthread_mutex_unlock(&ep->lock);
        return;
    }
    r->kind = REQ_STOP_ALL;
    r->grace_ms = grace_ms < 0 ? 0 : grace_ms;
    (void)push(ep, r);
}

int exec_proc_running(struct exec_proc *ep) {
    pthread_mutex_lock(&ep->lock);
    int n = ep->n_running;
    pthread_mutex_unlock(&ep->lock);
    return n;
}

void exec_proc_destroy(struct exec_proc *ep) {
    if (ep == NULL)
        return;
    pthread_mutex_lock(&ep->lock);
    ep->stopping = true;
    ep->quit = true;
    pthread_mutex_unlock(&ep->lock);
    wake(ep);
    pthread_join(ep->thread, NULL);
    pthread_mutex_destroy(&ep->lock);
    close_fd(&ep->epfd);
    close_fd(&ep->evfd);
    close_fd(&ep->devnull);
    free(ep->out_dir);
    free(ep->path_env);
    free(ep->default_cwd);
    free(ep->buf);
    free(ep);
}
