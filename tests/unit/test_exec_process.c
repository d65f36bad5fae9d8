/*
 * test_exec_process.c: the process executor (service/exec_process.c) with
 * real children: exits, signals, start failures, stdin, large output on
 * both streams, caps, timeouts, cancel, stray processes, descriptors, the
 * environment, rlimits, zombies and descriptor leaks; and task specs, which
 * run a C function registered here in a forked child.
 *
 * Each test gets its own executor and output directory. Callbacks record
 * into a table under a mutex; the test thread waits on a condition
 * variable for `exited`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "exec_process.h"
#include "jobd/spec.h"
#include "jobd/task.h"
#include "jobd/util.h"
#include "output.h"

#define MAX_NUM 4096

struct record {
    bool started, exited;
    int started_calls, exited_calls, outputs_outside; /* outputs before started or after exited */
    pid_t pid;
    int64_t pid_start, started_ms;
    int64_t readable[2];
    bool readable_shrank;
    struct exec_result res; /* res.result_json points to result_json */
    char *result_json;      /* a copy of what `exited` was given */
    char *inline_out[2];    /* copies of the streams kept in memory (no file) */
    size_t inline_len[2];
};

struct harness {
    char dir[PATH_MAX];
    struct exec_proc *ep;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct record rec[MAX_NUM];
    int exited_count;
    /* chain mode: each exit starts the next job until `chain_left` runs out */
    const struct jobd_spec *chain_spec;
    int64_t chain_next;
    int chain_left;
};

static struct harness *H;

static void cb_started(void *ctx, int64_t num, pid_t pid, int64_t pid_start, int64_t started_ms) {
    struct harness *h = ctx;
    pthread_mutex_lock(&h->lock);
    struct record *r = &h->rec[num];
    r->started = true;
    r->started_calls++;
    r->pid = pid;
    r->pid_start = pid_start;
    r->started_ms = started_ms;
    pthread_mutex_unlock(&h->lock);
}

static void cb_output(void *ctx, int64_t num, int stream, int64_t readable, const void *data,
                      size_t len) {
    struct harness *h = ctx;
    pthread_mutex_lock(&h->lock);
    struct record *r = &h->rec[num];
    if (!r->started || r->exited)
        r->outputs_outside++;
    if (readable < r->readable[stream])
        r->readable_shrank = true;
    r->readable[stream] = readable;
    pthread_mutex_unlock(&h->lock);
}

static void cb_exited(void *ctx, int64_t num, const struct exec_result *res) {
    struct harness *h = ctx;
    pthread_mutex_lock(&h->lock);
    struct record *r = &h->rec[num];
    r->exited = true;
    r->exited_calls++;
    r->res = *res;
    free(r->result_json);
    r->result_json = res->result_json ? strdup(res->result_json) : NULL;
    if (res->result_json != NULL && r->result_json == NULL)
        abort();
    r->res.result_json = r->result_json; /* the executor's copy is borrowed for the call only */
    for (int i = 0; i < 2; i++) {
        free(r->inline_out[i]);
        r->inline_out[i] = NULL;
        r->inline_len[i] = 0;
        if (res->inline_out[i]) {
            r->inline_out[i] = malloc(res->inline_len[i] + 1);
            if (!r->inline_out[i])
                abort();
            memcpy(r->inline_out[i], res->inline_out[i], res->inline_len[i]);
            r->inline_len[i] = res->inline_len[i];
        }
        r->res.inline_out[i] = r->inline_out[i];
    }
    h->exited_count++;
    bool chain = h->chain_spec != NULL && h->chain_left > 0;
    int64_t next = 0;
    if (chain) {
        h->chain_left--;
        next = h->chain_next++;
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (chain) {
        /* Callbacks may start attempts: no executor lock is held here. */
        struct exec_run run = {.num = next, .spec = h->chain_spec};
        jobd_format_id(next, run.id, sizeof(run.id));
        if (exec_proc_start(h->ep, &run) != 0)
            abort();
    }
}

static const struct exec_callbacks callbacks = {cb_started, cb_output, cb_exited};

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static void rm_dir(const char *path) {
    DIR *dir = opendir(path);
    if (dir != NULL) {
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char p[PATH_MAX + 256];
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
            unlink(p);
        }
        closedir(dir);
    }
    rmdir(path);
}

static struct harness *harness_new(const char *path_env) {
    struct harness *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    const char *tmp = getenv("TMPDIR");
    snprintf(h->dir, sizeof(h->dir), "%s/jobd-exec-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(h->dir));
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    struct exec_config cfg = {.out_dir = h->dir, .default_cwd = h->dir, .path_env = path_env};
    assert_int_equal(exec_proc_create(&cfg, &callbacks, h, &h->ep), 0);
    return h;
}

static void harness_free(struct harness *h) {
    if (h == NULL)
        return;
    if (h->ep != NULL) {
        exec_proc_stop_all(h->ep, 0);
        /* wait for every attempt so destroy is called as its contract asks */
        for (int i = 0; i < 3000 && exec_proc_running(h->ep) > 0; i++)
            usleep(10000);
        exec_proc_destroy(h->ep);
    }
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    rm_dir(h->dir);
    for (int i = 0; i < MAX_NUM; i++) {
        free(h->rec[i].result_json);
        free(h->rec[i].inline_out[0]);
        free(h->rec[i].inline_out[1]);
    }
    free(h);
}

static int setup(void **state) {
    H = harness_new(NULL);
    *state = H;
    return 0;
}

static int teardown(void **state) {
    harness_free(*state);
    H = NULL;
    return 0;
}

static void spec_cmd(struct jobd_spec *s, char **argv) {
    jobd_spec_init(s);
    s->kind = JOBD_SPEC_COMMAND;
    s->argv = argv;
    s->argc = 0;
    while (argv[s->argc] != NULL)
        s->argc++;
}

static void spec_sh(struct jobd_spec *s, const char *script) {
    jobd_spec_init(s);
    s->kind = JOBD_SPEC_SHELL;
    s->shell = (char *)script;
}

static void start(struct harness *h, int64_t num, const struct jobd_spec *spec, int64_t cap) {
    struct exec_run run = {.num = num, .spec = spec, .output_cap = cap};
    jobd_format_id(num, run.id, sizeof(run.id));
    assert_int_equal(exec_proc_start(h->ep, &run), 0);
}

/* Wait until `num` has exited (at most `secs`); return its record. */
static struct record *wait_exit(struct harness *h, int64_t num, int secs) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += secs;
    pthread_mutex_lock(&h->lock);
    while (!h->rec[num].exited) {
        if (pthread_cond_timedwait(&h->cond, &h->lock, &until) == ETIMEDOUT)
            break;
    }
    bool ok = h->rec[num].exited;
    pthread_mutex_unlock(&h->lock);
    assert_true(ok);
    struct record *r = &h->rec[num];
    assert_int_equal(r->exited_calls, 1);
    assert_int_equal(r->outputs_outside, 0);
    assert_false(r->readable_shrank);
    return r;
}

static void wait_started(struct harness *h, int64_t num) {
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&h->lock);
        bool s = h->rec[num].started;
        pthread_mutex_unlock(&h->lock);
        if (s)
            return;
        usleep(10000);
    }
    fail_msg("job %lld never started", (long long)num);
}

static struct record *run(struct harness *h, int64_t num, const struct jobd_spec *spec,
                          int64_t cap) {
    start(h, num, spec, cap);
    return wait_exit(h, num, 60);
}

/* The whole stdout (or stderr) of a job as a NUL-terminated string. */
/* A stream's bytes: the copy `exited` was given when it stayed in memory, else its file. */
static char *out_of(struct harness *h, int64_t num, enum output_stream s, size_t *len) {
    char id[JOBD_MAX_ID_BYTES];
    struct record *r = &h->rec[num];
    if (r->inline_out[s] != NULL) {
        char *b = malloc(r->inline_len[s] + 1);
        assert_non_null(b);
        memcpy(b, r->inline_out[s], r->inline_len[s]);
        b[r->inline_len[s]] = '\0';
        if (len)
            *len = r->inline_len[s];
        return b;
    }
    jobd_format_id(num, id, sizeof(id));
    int64_t size = output_size(h->dir, id, s);
    assert_true(size >= 0);
    char *b = malloc((size_t)size + 1);
    assert_non_null(b);
    assert_int_equal(output_read(h->dir, id, s, 0, b, (size_t)size), size);
    b[size] = '\0';
    if (len)
        *len = (size_t)size;
    return b;
}

/* Processes (not zombies) whose process group is pgid. */
static int group_members(pid_t pgid) {
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        size_t k = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[k] = '\0';
        char *p = strrchr(buf, ')');
        char st;
        long ppid, pgrp;
        if (p && sscanf(p + 1, " %c %ld %ld", &st, &ppid, &pgrp) == 3 && pgrp == pgid && st != 'Z')
            n++;
    }
    closedir(d);
    return n;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_exit_zero(void **state) {
    struct harness *h = *state;
    char *argv[] = {"true", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    int64_t before = jobd_now_ms();
    struct record *r = run(h, 1, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 0);
    assert_int_equal(r->res.signal, 0);
    assert_string_equal(r->res.error, "");
    assert_int_equal(r->started_calls, 1);
    assert_true(r->pid > 0);
    assert_true(r->pid_start > 0);
    assert_true(r->started_ms >= before);
    assert_int_equal(r->res.started_ms, r->started_ms);
    assert_true(r->res.finished_ms >= r->res.started_ms);
    assert_int_equal(r->res.out_total[0], 0);
    assert_int_equal(r->res.out_total[1], 0);
    assert_int_equal(exec_proc_running(h->ep), 0);
    /* reaped: the pid is no child of ours any more */
    assert_int_equal(waitpid(r->pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_exit_three(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "echo out; echo err >&2; exit 3");
    struct record *r = run(h, 2, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 3);
    assert_int_equal(r->res.signal, 0);
    assert_int_equal(r->res.out_total[0], 4);
    assert_int_equal(r->res.out_total[1], 4);
    assert_int_equal(r->readable[0], 4);
    assert_int_equal(r->readable[1], 4);
    char *o = out_of(h, 2, OUTPUT_STDOUT, NULL), *e = out_of(h, 2, OUTPUT_STDERR, NULL);
    assert_string_equal(o, "out\n");
    assert_string_equal(e, "err\n");
    free(o);
    free(e);
}

static void test_killed_by_signal(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "kill -SEGV $$");
    struct record *r = run(h, 3, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, -1);
    assert_int_equal(r->res.signal, SIGSEGV);
}

static void test_command_not_found(void **state) {
    struct harness *h = *state;
    char *argv[] = {"jobd-no-such-command", "x", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    struct record *r = run(h, 4, &s, 0);
    assert_int_equal(r->res.end, EXEC_START_FAILED);
    assert_string_equal(r->res.error, "command not found: jobd-no-such-command");
    assert_false(r->started);
    assert_int_equal(exec_proc_running(h->ep), 0);
}

/* The lookup uses the job's PATH, not jobd's. */
static void test_lookup_uses_job_path(void **state) {
    struct harness *h = *state;
    char *argv[] = {"true", NULL};
    char *env[] = {"PATH=/nonexistent", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    s.env = env;
    s.envc = 1;
    struct record *r = run(h, 5, &s, 0);
    assert_int_equal(r->res.end, EXEC_START_FAILED);
    assert_string_equal(r->res.error, "command not found: true");

    /* a relative PATH entry is taken from the job's cwd */
    char script[PATH_MAX + 16];
    snprintf(script, sizeof(script), "%s/hello", h->dir);
    FILE *f = fopen(script, "we");
    assert_non_null(f);
    fputs("#!/bin/sh\necho hi\n", f);
    fclose(f);
    assert_int_equal(chmod(script, 0700), 0);
    char *argv2[] = {"hello", NULL};
    char *env2[] = {"PATH=/nonexistent:.", NULL};
    spec_cmd(&s, argv2);
    s.env = env2;
    s.envc = 1;
    r = run(h, 6, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 0);
    char *o = out_of(h, 6, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "hi\n");
    free(o);
}

static void test_bad_cwd(void **state) {
    struct harness *h = *state;
    char *argv[] = {"/bin/true", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    s.cwd = "/nope";
    struct record *r = run(h, 7, &s, 0);
    assert_int_equal(r->res.end, EXEC_START_FAILED);
    assert_string_equal(r->res.error,
                        "cannot change directory to /nope: No such file or directory");
    assert_false(r->started);
    assert_int_equal(r->res.exit_code, -1);
}

static void test_cannot_execute(void **state) {
    struct harness *h = *state;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/noexec", h->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    char *argv[] = {path, NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    struct record *r = run(h, 8, &s, 0);
    assert_int_equal(r->res.end, EXEC_START_FAILED);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "cannot execute %s: Permission denied", path);
    assert_string_equal(r->res.error, want); /* even root needs an x bit to execute */
    assert_false(r->started);
}

static void test_stdin_round_trip(void **state) {
    struct harness *h = *state;
    size_t n = 3 * 1024 * 1024 + 17; /* far more than a pipe holds */
    char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 7 + i / 251);
    char *argv[] = {"cat", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    s.stdin_data = data;
    s.stdin_len = n;
    struct record *r = run(h, 9, &s, 0);
    assert_int_equal(r->res.exit_code, 0);
    assert_int_equal(r->res.out_total[0], (int64_t)n);
    size_t len;
    char *o = out_of(h, 9, OUTPUT_STDOUT, &len);
    assert_int_equal(len, n);
    assert_memory_equal(o, data, n);
    free(o);

    /* a job that does not read its stdin is fine too (EPIPE stops the writer) */
    spec_sh(&s, "exec 0<&-; echo closed");
    s.stdin_data = data;
    s.stdin_len = n;
    r = run(h, 10, &s, 0);
    assert_int_equal(r->res.exit_code, 0);
    free(data);

    /* no stdin: /dev/null */
    spec_sh(&s, "wc -c");
    r = run(h, 11, &s, 0);
    o = out_of(h, 11, OUTPUT_STDOUT, NULL);
    assert_int_equal(atoi(o), 0);
    free(o);
}

static void test_big_output_both_streams(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    /* Both streams written at the same time by two processes. */
    spec_sh(&s, "head -c 10485760 /dev/zero & head -c 10485761 /dev/zero >&2; wait");
    struct record *r = run(h, 12, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 0);
    assert_int_equal(r->res.out_total[0], 10485760);
    assert_int_equal(r->res.out_total[1], 10485761);
    assert_false(r->res.out_truncated[0]);
    assert_int_equal(r->readable[0], 10485760);
    assert_int_equal(r->readable[1], 10485761);
    char id[JOBD_MAX_ID_BYTES];
    jobd_format_id(12, id, sizeof(id));
    assert_int_equal(output_size(h->dir, id, OUTPUT_STDOUT), 10485760);
    assert_int_equal(output_size(h->dir, id, OUTPUT_STDERR), 10485761);
}

static void test_output_cap(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "seq 1 100000; echo small >&2");
    struct record *r = run(h, 13, &s, 1000);
    /* the expected stream */
    size_t cap = 8 * 100000, n = 0;
    char *want = malloc(cap);
    assert_non_null(want);
    for (int i = 1; i <= 100000; i++)
        n += (size_t)snprintf(want + n, cap - n, "%d\n", i);
    assert_int_equal(r->res.out_total[0], (int64_t)n);
    assert_true(r->res.out_truncated[0]);
    assert_false(r->res.out_truncated[1]);
    assert_int_equal(r->readable[0], 1000);
    size_t len;
    char *o = out_of(h, 13, OUTPUT_STDOUT, &len);
    assert_int_equal(len, 1000);
    assert_memory_equal(o, want, 500);
    assert_memory_equal(o + 500, want + n - 500, 500);
    free(o);
    free(want);
    o = out_of(h, 13, OUTPUT_STDERR, NULL);
    assert_string_equal(o, "small\n");
    free(o);
}

static void test_timeout_with_grace(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "trap '' TERM; sleep 30");
    s.timeout = 0.3;
    s.kill_grace = 0.5;
    int64_t t0 = jobd_mono_ms();
    struct record *r = run(h, 14, &s, 0);
    int64_t took = jobd_mono_ms() - t0;
    assert_int_equal(r->res.end, EXEC_TIMED_OUT);
    assert_int_equal(r->res.signal, SIGKILL);
    assert_true(took >= 750);
    assert_true(took < 5000);
    assert_int_equal(group_members(r->pid), 0);

    /* a job that honours SIGTERM ends at once */
    spec_sh(&s, "sleep 30");
    s.timeout = 0.2;
    t0 = jobd_mono_ms();
    r = run(h, 15, &s, 0);
    took = jobd_mono_ms() - t0;
    assert_int_equal(r->res.end, EXEC_TIMED_OUT);
    assert_int_equal(r->res.signal, SIGTERM);
    assert_true(took < 3000);
}

static void test_cancel(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "sleep 30");
    start(h, 16, &s, 0);
    wait_started(h, 16);
    exec_proc_cancel(h->ep, 16);
    exec_proc_cancel(h->ep, 999); /* unknown: ignored */
    struct record *r = wait_exit(h, 16, 10);
    assert_int_equal(r->res.end, EXEC_CANCELLED);
    assert_int_equal(r->res.signal, SIGTERM);

    /* cancel with a custom signal, ignored: SIGKILL after the grace */
    spec_sh(&s, "trap '' INT; sleep 30");
    s.kill_signal = SIGINT;
    s.kill_grace = 0.3;
    start(h, 17, &s, 0);
    wait_started(h, 17);
    usleep(100000); /* let the shell set its trap */
    exec_proc_cancel(h->ep, 17);
    r = wait_exit(h, 17, 10);
    assert_int_equal(r->res.end, EXEC_CANCELLED);
    assert_int_equal(r->res.signal, SIGKILL);

    /* a cancel during a timeout's grace keeps TIMED_OUT */
    spec_sh(&s, "trap '' TERM; sleep 30");
    s.timeout = 0.1;
    s.kill_grace = 1;
    start(h, 18, &s, 0);
    usleep(500000);
    exec_proc_cancel(h->ep, 18);
    r = wait_exit(h, 18, 10);
    assert_int_equal(r->res.end, EXEC_TIMED_OUT);
    assert_int_equal(r->res.signal, SIGKILL);
}

static void test_stop_all(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "trap '' TERM; sleep 30");
    s.kill_grace = 20;
    start(h, 19, &s, 0);
    start(h, 20, &s, 0);
    wait_started(h, 19);
    wait_started(h, 20);
    usleep(100000);
    int64_t t0 = jobd_mono_ms();
    exec_proc_stop_all(h->ep, 200);
    struct record *a = wait_exit(h, 19, 10), *b = wait_exit(h, 20, 10);
    assert_true(jobd_mono_ms() - t0 < 5000);
    assert_int_equal(a->res.end, EXEC_CANCELLED);
    assert_int_equal(b->res.end, EXEC_CANCELLED);
    assert_int_equal(a->res.signal, SIGKILL);
    struct exec_run run = {.num = 21, .spec = &s};
    assert_int_equal(exec_proc_start(h->ep, &run), -ESHUTDOWN);
}

/* A job that leaves a process in its group: the group is killed when the leader exits. */
static void test_daemon_in_group_is_killed(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "sleep 100 & exit 0");
    int64_t t0 = jobd_mono_ms();
    struct record *r = run(h, 22, &s, 0);
    assert_true(jobd_mono_ms() - t0 < 900); /* not the drain time-out: the sleep was killed */
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 0);
    for (int i = 0; i < 100 && group_members(r->pid) > 0; i++)
        usleep(10000);
    assert_int_equal(group_members(r->pid), 0);
    assert_int_equal(exec_kill_leftover_group(r->pid, r->pid_start), 0);
}

/* A grandchild that left the group (setsid) and holds stdout open does not hold the attempt. */
static void test_escaped_grandchild(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "setsid sh -c 'echo $$; exec sleep 30' & sleep 0.3; exit 0");
    int64_t t0 = jobd_mono_ms();
    struct record *r = run(h, 23, &s, 0);
    int64_t took = jobd_mono_ms() - t0;
    assert_int_equal(r->res.exit_code, 0);
    assert_true(took >= 1000);
    assert_true(took < 5000);
    char *o = out_of(h, 23, OUTPUT_STDOUT, NULL);
    pid_t escaped = (pid_t)atoi(o);
    free(o);
    assert_true(escaped > 0);
    assert_int_equal(kill(escaped, SIGKILL), 0);
}

static void test_only_stdio_fds(void **state) {
    struct harness *h = *state;
    /* A descriptor without close-on-exec (as libcurl leaves them) must not leak either. */
    int leaky = open("/dev/null", O_RDONLY);
    assert_true(leaky >= 0);
    struct jobd_spec s;
    spec_sh(&s, "ls /proc/$$/fd");
    struct record *r = run(h, 24, &s, 0);
    close(leaky);
    assert_int_equal(r->res.exit_code, 0);
    char *o = out_of(h, 24, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "0\n1\n2\n");
    free(o);
}

static void test_clean_env(void **state) {
    struct harness *h = *state;
    assert_int_equal(setenv("JOBD_TEST_SECRET", "hunter2", 1), 0);
    char *argv[] = {"env", NULL};
    char *env[] = {"FOO=bar", "LANG=en_US.UTF-8", "EMPTY=", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    s.env = env;
    s.envc = 3;
    struct record *r = run(h, 25, &s, 0);
    unsetenv("JOBD_TEST_SECRET");
    assert_int_equal(r->res.exit_code, 0);
    char *o = out_of(h, 25, OUTPUT_STDOUT, NULL);
    char want[PATH_MAX + 200];
    snprintf(want, sizeof(want),
             "PATH=/usr/local/bin:/usr/bin:/bin\nHOME=%s\nLANG=en_US.UTF-8\nFOO=bar\nEMPTY=\n",
             h->dir);
    assert_string_equal(o, want);
    assert_null(strstr(o, "JOBD_TEST_SECRET"));
    free(o);

    /* HOME is the job's cwd */
    spec_cmd(&s, argv);
    s.cwd = "/";
    r = run(h, 26, &s, 0);
    o = out_of(h, 26, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "PATH=/usr/local/bin:/usr/bin:/bin\nHOME=/\nLANG=C.UTF-8\n");
    free(o);
}

static void test_rlimits(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_sh(&s, "ulimit -n; ulimit -t; ulimit -v");
    s.limits.open_files = 37;
    s.limits.cpu_seconds = 5;
    s.limits.memory_bytes = 1024L * 1024 * 1024;
    struct record *r = run(h, 27, &s, 0);
    assert_int_equal(r->res.exit_code, 0);
    char *o = out_of(h, 27, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "37\n5\n1048576\n");
    free(o);
}

/* jobd ignores SIGPIPE and blocks signals in threads; its jobs see neither. */
static void test_signal_state_reset(void **state) {
    struct harness *h = *state;
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    assert_int_equal(sigaction(SIGPIPE, &ign, &old), 0);
    char *argv[] = {"grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    struct record *r = run(h, 28, &s, 0);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    assert_int_equal(r->res.exit_code, 0);
    char *o = out_of(h, 28, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    free(o);
}

static void test_burst_no_zombie(void **state) {
    struct harness *h = *state;
    char *argv[] = {"true", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    for (int i = 0; i < 200; i++)
        start(h, 100 + i, &s, 0);
    for (int i = 0; i < 200; i++) {
        struct record *r = wait_exit(h, 100 + i, 60);
        assert_int_equal(r->res.exit_code, 0);
    }
    assert_int_equal(exec_proc_running(h->ep), 0);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/* Spawn rate with two attempts at a time: each exit starts the next from the callback. */
static void test_spawn_rate(void **state) {
    struct harness *h = *state;
    char *argv[] = {"/bin/true", NULL};
    struct jobd_spec s;
    spec_cmd(&s, argv);
    const int total = 1000;
    pthread_mutex_lock(&h->lock);
    h->chain_spec = &s;
    h->chain_next = 1002;
    h->chain_left = total - 2;
    pthread_mutex_unlock(&h->lock);
    int64_t t0 = jobd_mono_ms();
    start(h, 1000, &s, 0);
    start(h, 1001, &s, 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 100;
    pthread_mutex_lock(&h->lock);
    while (h->exited_count < total &&
           pthread_cond_timedwait(&h->cond, &h->lock, &until) != ETIMEDOUT) {
    }
    int done = h->exited_count;
    h->chain_spec = NULL;
    pthread_mutex_unlock(&h->lock);
    int64_t ms = jobd_mono_ms() - t0;
    assert_int_equal(done, total);
    for (int i = 1000; i < 1000 + total; i++)
        assert_int_equal(h->rec[i].res.exit_code, 0);
    print_message("spawn rate: %d jobs of /bin/true, 2 at a time, in %lld ms: %.0f jobs/s\n", total,
                  (long long)ms, total * 1000.0 / (double)(ms ? ms : 1));
}

/* Every start, success or failure, leaves no descriptor behind, and destroy closes all. */
static void test_no_fd_leak(void **state) {
    (void)state;
    int before = count_fds();
    struct harness *h = harness_new("/usr/bin:/bin");
    char *ok[] = {"true", NULL}, *missing[] = {"jobd-missing", NULL};
    struct jobd_spec a, b, c, d;
    spec_cmd(&a, ok);
    spec_cmd(&b, missing);
    spec_cmd(&c, ok);
    c.cwd = "/nope";
    spec_sh(&d, "echo x; echo y >&2; cat >/dev/null");
    d.stdin_data = "hello";
    d.stdin_len = 5;
    for (int i = 0; i < 20; i++) {
        start(h, 4 * i + 1, &a, 0);
        start(h, 4 * i + 2, &b, 0);
        start(h, 4 * i + 3, &c, 0);
        start(h, 4 * i + 4, &d, 8);
    }
    for (int i = 1; i <= 80; i++)
        wait_exit(h, i, 60);
    harness_free(h);
    assert_int_equal(count_fds(), before);
}

static void test_start_time(void **state) {
    (void)state;
    int64_t t = exec_process_start_time(getpid());
    assert_true(t > 0);
    assert_int_equal(exec_process_start_time(getpid()), t);
    assert_int_equal(exec_process_start_time(0), -1);
    assert_int_equal(exec_process_start_time(INT_MAX), -1);
}

static void test_kill_leftover_group(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", "sleep 100 & sleep 100 & wait", (char *)NULL);
        _exit(127);
    }
    (void)setpgid(pid, pid);
    for (int i = 0; i < 500 && group_members(pid) < 3; i++)
        usleep(10000);
    assert_int_equal(group_members(pid), 3);
    int64_t start_ticks = exec_process_start_time(pid);
    assert_true(start_ticks > 0);
    /* a group whose leader started at another time is someone else's */
    assert_int_equal(exec_kill_leftover_group(pid, start_ticks + 1), 0);
    assert_int_equal(exec_kill_leftover_group(pid, start_ticks - 1), 0);
    assert_int_equal(group_members(pid), 3);
    assert_int_equal(exec_kill_leftover_group(pid, start_ticks), 3);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    for (int i = 0; i < 100 && group_members(pid) > 0; i++)
        usleep(10000);
    assert_int_equal(group_members(pid), 0);
}

/* ---- tasks under the process executor ------------------------------------------------------ */

/* Prints to both streams (through the API and through stdio) and sets a result from its args. */
static int task_hello(const json_t *args, jobd_task *t) {
    if (jobd_task_current() != t)
        return 99;
    jobd_task_printf(t, "hello %s\n", jobd_task_id(t));
    jobd_task_eprintf(t, "warning %d\n", 7);
    printf("via stdio\n"); /* flushed by the executor after the task returns */
    jobd_task_set_result(t, json_pack("{s:O, s:s}", "args", args, "id", jobd_task_id(t)));
    return 0;
}

static int task_fail3(const json_t *args, jobd_task *t) {
    jobd_task_printf(t, "trying\n");
    jobd_task_set_error(t, "bad input: %s", json_string_value(json_object_get(args, "what")));
    return 3;
}

static int task_segv(const json_t *args, jobd_task *t) {
    jobd_task_printf(t, "about to crash\n");
    raise(SIGSEGV);
    return 0;
}

/* Sleeps args.seconds; with args.ignore_term it ignores SIGTERM first and says "ready". */
static int task_sleep(const json_t *args, jobd_task *t) {
    if (json_is_true(json_object_get(args, "ignore_term"))) {
        signal(SIGTERM, SIG_IGN);
        jobd_task_printf(t, "ready\n");
    }
    return jobd_task_sleep(t, json_number_value(json_object_get(args, "seconds"))) == 0 ? 0 : 1;
}

/* Lists its open fds (but the one listing them), its stdin and its cwd. */
static int task_fds(const json_t *args, jobd_task *t) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 2;
    struct dirent *de;
    int fds[64], n = 0;
    while ((de = readdir(d)) != NULL && n < 64) {
        if (de->d_name[0] != '.' && atoi(de->d_name) != dirfd(d))
            fds[n++] = atoi(de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) { /* readdir order is not promised: sort */
        for (int j = i + 1; j < n; j++) {
            if (fds[j] < fds[i]) {
                int x = fds[i];
                fds[i] = fds[j];
                fds[j] = x;
            }
        }
    }
    for (int i = 0; i < n; i++)
        jobd_task_printf(t, "%d\n", fds[i]);
    char in[PATH_MAX] = "", cwd[PATH_MAX] = "";
    ssize_t k = readlink("/proc/self/fd/0", in, sizeof(in) - 1);
    if (k > 0)
        in[k] = '\0';
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return 2;
    int cloexec = fcntl(3, F_GETFD);
    jobd_task_set_result(t, json_pack("{s:s, s:s, s:b}", "stdin", in, "cwd", cwd, "fd3_cloexec",
                                      cloexec >= 0 && (cloexec & FD_CLOEXEC)));
    return 0;
}

/* Returns args.rc, sets no result; with args.error sets that error. */
static int task_rc(const json_t *args, jobd_task *t) {
    const char *e = json_string_value(json_object_get(args, "error"));
    if (e != NULL)
        jobd_task_set_error(t, "%s", e);
    return (int)json_integer_value(json_object_get(args, "rc"));
}

/* A result document of 17 MiB: the child refuses to send it. */
static int task_big_result(const json_t *args, jobd_task *t) {
    size_t n = 17u << 20;
    char *s = malloc(n + 1);
    if (s == NULL)
        return 2;
    memset(s, 'x', n);
    s[n] = '\0';
    jobd_task_set_result(t, json_string(s));
    free(s);
    return 0;
}

/* Writes 17 MiB on the result pipe by itself: the parent stops reading at 16 MiB. */
static int task_rogue_result(const json_t *args, jobd_task *t) {
    static char chunk[65536];
    memset(chunk, ' ', sizeof(chunk));
    for (int i = 0; i < 17 * 16; i++) {
        if (write(3, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            return 2;
    }
    return 0;
}

/* Leaves a process in its group and returns. */
static int task_spawner(const json_t *args, jobd_task *t) {
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sleep", "sleep", "100", (char *)NULL);
        _exit(127);
    }
    jobd_task_printf(t, "%d\n", (int)pid);
    return pid > 0 ? 0 : 2;
}

static void register_test_tasks(void) {
    const struct jobd_task_def defs[] = {
        {"t_hello", "print and set a result", task_hello, NULL},
        {"t_fail3", "fail with 3 and an error", task_fail3, NULL},
        {"t_segv", "crash", task_segv, NULL},
        {"t_sleep", "sleep", task_sleep, NULL},
        {"t_fds", "list fds", task_fds, NULL},
        {"t_rc", "return args.rc", task_rc, NULL},
        {"t_big", "a too large result", task_big_result, NULL},
        {"t_rogue", "write junk on the result pipe", task_rogue_result, NULL},
        {"t_spawner", "leave a process behind", task_spawner, NULL},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        if (jobd_task_register(&defs[i]) != 0)
            abort();
    }
}

/* A task spec; args is parsed from JSON text (NULL: none) and freed by spec_task_free. */
static void spec_task(struct jobd_spec *s, const char *task, const char *args) {
    jobd_spec_init(s);
    s->kind = JOBD_SPEC_TASK;
    s->executor = JOBD_EXEC_PROCESS;
    s->task = (char *)task;
    s->args = args ? json_loads(args, JSON_DECODE_ANY, NULL) : NULL;
    assert_true(args == NULL || s->args != NULL);
}

static void spec_task_free(struct jobd_spec *s) {
    json_decref(s->args);
    s->args = NULL;
}

static void test_task_result_and_output(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_hello", "{\"n\": [1, 2.5, \"é\"]}");
    fputs("(buffered by the parent, never in a job's output) ", stdout); /* no flush */
    struct record *r = run(h, 40, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 0);
    assert_int_equal(r->res.signal, 0);
    assert_string_equal(r->res.error, "");
    assert_true(r->started);
    assert_true(r->pid > 0);
    char id[JOBD_MAX_ID_BYTES], want[200];
    jobd_format_id(40, id, sizeof(id));
    snprintf(want, sizeof(want), "{\"args\":{\"n\":[1,2.5,\"é\"]},\"id\":\"%s\"}", id);
    assert_non_null(r->res.result_json);
    assert_string_equal(r->res.result_json, want);
    char *o = out_of(h, 40, OUTPUT_STDOUT, NULL), *e = out_of(h, 40, OUTPUT_STDERR, NULL);
    snprintf(want, sizeof(want), "hello %s\nvia stdio\n", id);
    assert_string_equal(o, want);
    assert_string_equal(e, "warning 7\n");
    assert_int_equal(r->res.out_total[0], (int64_t)strlen(o));
    assert_int_equal(r->readable[1], 10);
    free(o);
    free(e);
    fflush(stdout);
    assert_int_equal(waitpid(r->pid, NULL, WNOHANG), -1); /* reaped */
    spec_task_free(&s);

    /* no args, no result */
    spec_task(&s, "t_rc", NULL);
    r = run(h, 41, &s, 0);
    assert_int_equal(r->res.exit_code, 0);
    assert_null(r->res.result_json);
    assert_string_equal(r->res.error, "");
}

static void test_task_failure_and_error(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_fail3", "{\"what\": \"the moon\"}");
    struct record *r = run(h, 42, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 3);
    assert_int_equal(r->res.signal, 0);
    assert_string_equal(r->res.error, "bad input: the moon");
    assert_null(r->res.result_json);
    char *o = out_of(h, 42, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "trying\n");
    free(o);
    spec_task_free(&s);

    /* exit codes outside 1..255 count as 1; an error with success is still reported */
    const struct {
        const char *args;
        int code;
        const char *error;
    } cases[] = {
        {"{\"rc\": 255}", 255, ""},
        {"{\"rc\": 256}", 1, ""},
        {"{\"rc\": -1}", 1, ""},
        {"{\"rc\": 0, \"error\": \"odd but fine\"}", 0, "odd but fine"},
    };
    for (int i = 0; i < 4; i++) {
        spec_task(&s, "t_rc", cases[i].args);
        r = run(h, 43 + i, &s, 0);
        assert_int_equal(r->res.end, EXEC_EXITED);
        assert_int_equal(r->res.exit_code, cases[i].code);
        assert_string_equal(r->res.error, cases[i].error);
        spec_task_free(&s);
    }

    /* an error that is not UTF-8 still travels (as ASCII) */
    json_t *bad = json_object();
    assert_non_null(bad);
    json_object_set_new(bad, "rc", json_integer(2));
    json_object_set_new(bad, "error", json_stringn_nocheck("caf\xe9!", 5));
    spec_task(&s, "t_rc", NULL);
    s.args = bad;
    r = run(h, 47, &s, 0);
    assert_int_equal(r->res.exit_code, 2);
    assert_string_equal(r->res.error, "caf?!");
    spec_task_free(&s);
}

/* Regression guard for the point of running tasks in a child: a crash is the job's, not jobd's. */
static void test_task_crash_is_a_signal(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_segv", NULL);
    struct record *r = run(h, 50, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, -1);
    assert_int_equal(r->res.signal, SIGSEGV);
    assert_null(r->res.result_json);
    assert_string_equal(r->res.error, "");
    char *o = out_of(h, 50, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "about to crash\n");
    free(o);
    /* and the executor carries on */
    spec_task_free(&s);
    spec_task(&s, "t_hello", "1");
    r = run(h, 51, &s, 0);
    assert_int_equal(r->res.exit_code, 0);
    char id[JOBD_MAX_ID_BYTES], want[100];
    jobd_format_id(51, id, sizeof(id));
    snprintf(want, sizeof(want), "{\"args\":1,\"id\":\"%s\"}", id);
    assert_string_equal(r->res.result_json, want);
    spec_task_free(&s);
}

static void test_task_start_failures(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_nope", NULL);
    struct record *r = run(h, 52, &s, 0);
    assert_int_equal(r->res.end, EXEC_START_FAILED);
    assert_string_equal(r->res.error, "no such task: t_nope");
    assert_false(r->started);
    assert_null(r->res.result_json);

    spec_task(&s, "t_hello", NULL);
    s.cwd = "/nope";
    r = run(h, 53, &s, 0);
    assert_int_equal(r->res.end, EXEC_START_FAILED);
    assert_string_equal(r->res.error,
                        "cannot change directory to /nope: No such file or directory");
    assert_false(r->started);
    assert_int_equal(exec_proc_running(h->ep), 0);
}

static void test_task_cancel_and_timeout(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_sleep", "{\"seconds\": 30}");
    start(h, 54, &s, 0);
    wait_started(h, 54);
    int64_t t0 = jobd_mono_ms();
    exec_proc_cancel(h->ep, 54);
    struct record *r = wait_exit(h, 54, 10);
    assert_true(jobd_mono_ms() - t0 < 3000);
    assert_int_equal(r->res.end, EXEC_CANCELLED);
    assert_int_equal(r->res.signal, SIGTERM);
    assert_null(r->res.result_json);

    s.timeout = 0.2;
    t0 = jobd_mono_ms();
    r = run(h, 55, &s, 0);
    assert_int_equal(r->res.end, EXEC_TIMED_OUT);
    assert_int_equal(r->res.signal, SIGTERM);
    assert_true(jobd_mono_ms() - t0 < 3000);
    spec_task_free(&s);

    /* a task that ignores kill_signal gets SIGKILL after kill_grace */
    spec_task(&s, "t_sleep", "{\"seconds\": 30, \"ignore_term\": true}");
    s.kill_grace = 0.3;
    start(h, 56, &s, 0);
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&h->lock);
        int64_t ready = h->rec[56].readable[0];
        pthread_mutex_unlock(&h->lock);
        if (ready > 0)
            break;
        usleep(10000);
    }
    t0 = jobd_mono_ms();
    exec_proc_cancel(h->ep, 56);
    r = wait_exit(h, 56, 10);
    int64_t took = jobd_mono_ms() - t0;
    assert_int_equal(r->res.end, EXEC_CANCELLED);
    assert_int_equal(r->res.signal, SIGKILL);
    assert_true(took >= 250);
    assert_true(took < 5000);
    assert_int_equal(group_members(r->pid), 0);
    spec_task_free(&s);

    /* a short sleep just succeeds */
    spec_task(&s, "t_sleep", "{\"seconds\": 0.05}");
    r = run(h, 57, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 0);
    spec_task_free(&s);
}

/* The child holds 0..2 and its result pipe on 3 (close-on-exec), stdin is /dev/null. */
static void test_task_only_stdio_and_result_fds(void **state) {
    struct harness *h = *state;
    int leaky = open("/dev/null", O_RDONLY); /* not close-on-exec, as libcurl leaves them */
    assert_true(leaky >= 0);
    struct jobd_spec s;
    spec_task(&s, "t_fds", NULL);
    struct record *r = run(h, 58, &s, 0);
    close(leaky);
    assert_int_equal(r->res.exit_code, 0);
    char *o = out_of(h, 58, OUTPUT_STDOUT, NULL);
    assert_string_equal(o, "0\n1\n2\n3\n");
    free(o);
    char want[PATH_MAX + 100];
    /* without a cwd in the spec the task runs in the default directory, as commands do */
    snprintf(want, sizeof(want), "{\"stdin\":\"/dev/null\",\"cwd\":\"%s\",\"fd3_cloexec\":true}",
             h->dir);
    assert_string_equal(r->res.result_json, want);

    s.cwd = h->dir;
    r = run(h, 59, &s, 0);
    snprintf(want, sizeof(want), "{\"stdin\":\"/dev/null\",\"cwd\":\"%s\",\"fd3_cloexec\":true}",
             h->dir);
    assert_string_equal(r->res.result_json, want);
    spec_task_free(&s);
}

static void test_task_result_too_large(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_big", NULL);
    struct record *r = run(h, 60, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.exit_code, 1);
    assert_string_equal(r->res.error, "task result too large");
    assert_null(r->res.result_json);
    spec_task_free(&s);

    /* junk written on the result pipe by the task itself: the parent stops at the cap */
    spec_task(&s, "t_rogue", NULL);
    r = run(h, 61, &s, 0);
    assert_int_equal(r->res.end, EXEC_EXITED);
    assert_int_equal(r->res.signal, SIGPIPE);
    assert_string_equal(r->res.error, "task result too large");
    assert_null(r->res.result_json);
    spec_task_free(&s);
}

static void test_task_group_is_killed(void **state) {
    struct harness *h = *state;
    struct jobd_spec s;
    spec_task(&s, "t_spawner", NULL);
    int64_t t0 = jobd_mono_ms();
    struct record *r = run(h, 62, &s, 0);
    assert_true(jobd_mono_ms() - t0 < 900); /* not the drain time-out */
    assert_int_equal(r->res.exit_code, 0);
    for (int i = 0; i < 100 && group_members(r->pid) > 0; i++)
        usleep(10000);
    assert_int_equal(group_members(r->pid), 0);
    spec_task_free(&s);
}

/* Many tasks at once, mixed with commands: every one ends right, no zombie, no fd left. */
static void test_task_burst_no_leak(void **state) {
    (void)state;
    int before = count_fds();
    struct harness *h = harness_new(NULL);
    struct jobd_spec task, crash, missing, cmd;
    spec_task(&task, "t_hello", "{\"k\": true}");
    spec_task(&crash, "t_segv", NULL);
    spec_task(&missing, "t_nope", NULL);
    spec_sh(&cmd, "echo cmd");
    for (int i = 0; i < 30; i++) {
        start(h, 4 * i + 1, &task, 0);
        start(h, 4 * i + 2, &crash, 0);
        start(h, 4 * i + 3, &missing, 0);
        start(h, 4 * i + 4, &cmd, 0);
    }
    for (int i = 0; i < 30; i++) {
        struct record *r = wait_exit(h, 4 * i + 1, 60);
        char id[JOBD_MAX_ID_BYTES], want[100];
        jobd_format_id(4 * i + 1, id, sizeof(id));
        snprintf(want, sizeof(want), "{\"args\":{\"k\":true},\"id\":\"%s\"}", id);
        assert_string_equal(r->res.result_json, want);
        assert_int_equal(wait_exit(h, 4 * i + 2, 60)->res.signal, SIGSEGV);
        assert_int_equal(wait_exit(h, 4 * i + 3, 60)->res.end, EXEC_START_FAILED);
        r = wait_exit(h, 4 * i + 4, 60);
        assert_int_equal(r->res.exit_code, 0);
        assert_null(r->res.result_json);
    }
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    harness_free(h);
    spec_task_free(&task);
    spec_task_free(&crash);
    spec_task_free(&missing);
    assert_int_equal(count_fds(), before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exit_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_three, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_by_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_uses_job_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_cwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cannot_execute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdin_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_output_both_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_output_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_with_grace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_in_group_is_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaped_grandchild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_stdio_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rlimits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signal_state_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_no_zombie, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_rate, setup, teardown),
        cmocka_unit_test(test_no_fd_leak),
        cmocka_unit_test(test_start_time),
        cmocka_unit_test(test_kill_leftover_group),
        cmocka_unit_test_setup_teardown(test_task_result_and_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_failure_and_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_crash_is_a_signal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_start_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_cancel_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_only_stdio_and_result_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_result_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_task_group_is_killed, setup, teardown),
        cmocka_unit_test(test_task_burst_no_leak),
    };
    register_test_tasks();
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    jobd_task_registry_clear();
    return failed;
}
