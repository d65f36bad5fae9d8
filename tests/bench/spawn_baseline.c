/*
 * spawn_baseline.c: the raw process-spawning rate that jobd is measured
 * against. It runs a command (default /bin/true) N times with posix_spawn,
 * keeping C children in flight at once (C plays the part of jobd's
 * --max-procs). Each child gets stdin from /dev/null, its stdout and stderr
 * on two close-on-exec pipes, and its own process group, as a jobd job does.
 * Both pipes of every child are drained together with one poll loop until
 * EOF, then the child is reaped with waitpid.
 *
 * It does none of jobd's bookkeeping (no HTTP, no store, no output files),
 * so its jobs/s is the ceiling that jobd's rate is divided by.
 *
 * Output: one human line on stderr and one result line on stdout:
 *   spawn_baseline: n=N c=C seconds=S jobs_per_s=R failures=F
 * Exit status 0 when every child ran and exited 0, 1 otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* One child in flight. fd[i] is -1 once stream i reached EOF; pid is 0 when the slot is free. */
struct slot {
    pid_t pid;
    int fd[2];
};

struct opts {
    long count;       /* children to run in all */
    long concurrency; /* children in flight at once */
    const char *path; /* program to run */
};

/* A small clean environment, like the one jobd gives its jobs. */
static char *child_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "LANG=C.UTF-8", NULL};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f) {
    fprintf(f, "usage: spawn_baseline [-n COUNT] [-c CONCURRENCY] [-p PROGRAM]\n"
               "  -n, --count N        children to run (default 20000)\n"
               "  -c, --concurrency C  children in flight at once (default 2)\n"
               "  -p, --program PATH   program to run without arguments (default /bin/true)\n");
}

static int parse_long(const char *s, long min, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

/*
 * Start one child in slot `s`. Return 0, or -1 after printing why (the slot
 * stays free and its descriptors closed).
 */
static int spawn_one(const struct opts *o, const posix_spawnattr_t *attr, struct slot *s) {
    int out[2] = {-1, -1}, err[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    bool fa_ready = false;
    int rc = -1;

    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
        fprintf(stderr, "spawn_baseline: pipe2: %s\n", strerror(errno));
        goto out;
    }
    int e = posix_spawn_file_actions_init(&fa);
    if (e != 0) {
        fprintf(stderr, "spawn_baseline: posix_spawn_file_actions_init: %s\n", strerror(e));
        goto out;
    }
    fa_ready = true;
    /* dup2 clears close-on-exec on the target; the pipe ends themselves close at exec. */
    if ((e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
        (e = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) != 0 ||
        (e = posix_spawn_file_actions_adddup2(&fa, err[1], 2)) != 0) {
        fprintf(stderr, "spawn_baseline: posix_spawn_file_actions: %s\n", strerror(e));
        goto out;
    }
    char *argv[] = {(char *)o->path, NULL};
    pid_t pid;
    e = posix_spawn(&pid, o->path, &fa, attr, argv, child_env);
    if (e != 0) {
        fprintf(stderr, "spawn_baseline: posix_spawn %s: %s\n", o->path, strerror(e));
        goto out;
    }
    s->pid = pid;
    s->fd[0] = out[0];
    s->fd[1] = err[0];
    out[0] = err[0] = -1;
    rc = 0;
out:
    if (fa_ready)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 2; i++) {
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    return rc;
}

/* Reap the child of slot `s` after both its pipes hit EOF. Return true if it exited 0. */
static bool reap_one(struct slot *s) {
    int status;
    pid_t r;
    do {
        r = waitpid(s->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    s->pid = 0;
    if (r < 0) {
        fprintf(stderr, "spawn_baseline: waitpid: %s\n", strerror(errno));
        return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv) {
    struct opts o = {.count = 20000, .concurrency = 2, .path = "/bin/true"};
    static const struct option longopts[] = {{"count", required_argument, NULL, 'n'},
                                             {"concurrency", required_argument, NULL, 'c'},
                                             {"program", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:c:p:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            if (parse_long(optarg, 1, &o.count) != 0) {
                fprintf(stderr, "spawn_baseline: bad count: %s\n", optarg);
                return 2;
            }
            break;
        case 'c':
            if (parse_long(optarg, 1, &o.concurrency) != 0 || o.concurrency > 4096) {
                fprintf(stderr, "spawn_baseline: bad concurrency: %s (1..4096)\n", optarg);
                return 2;
            }
            break;
        case 'p':
            o.path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (o.concurrency > o.count)
        o.concurrency = o.count;

    /* Each child leads its own process group and starts with default signals, as jobd's do. */
    posix_spawnattr_t attr;
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    int e = posix_spawnattr_init(&attr);
    if (e == 0)
        e = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
    if (e == 0)
        e = posix_spawnattr_setpgroup(&attr, 0);
    if (e == 0)
        e = posix_spawnattr_setsigmask(&attr, &empty);
    if (e == 0)
        e = posix_spawnattr_setsigdefault(&attr, &all);
    if (e != 0) {
        fprintf(stderr, "spawn_baseline: posix_spawnattr: %s\n", strerror(e));
        return 1;
    }

    size_t nslots = (size_t)o.concurrency;
    struct slot *slots = calloc(nslots, sizeof *slots);
    struct pollfd *pfds = calloc(2 * nslots, sizeof *pfds);
    size_t *pslot = calloc(2 * nslots, sizeof *pslot); /* pfds[i] belongs to slots[pslot[i]] */
    if (slots == NULL || pfds == NULL || pslot == NULL) {
        fprintf(stderr, "spawn_baseline: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nslots; i++)
        slots[i].fd[0] = slots[i].fd[1] = -1;

    long started = 0, done = 0, failures = 0, running = 0;
    char buf[4096];
    double t0 = now_s();

    while (done < o.count) {
        /* Fill every free slot while there is work left. */
        for (size_t i = 0; i < nslots && started < o.count; i++) {
            if (slots[i].pid != 0)
                continue;
            started++;
            if (spawn_one(&o, &attr, &slots[i]) != 0) {
                failures++;
                done++;
                continue;
            }
            running++;
        }
        if (running == 0)
            continue;

        nfds_t n = 0;
        for (size_t i = 0; i < nslots; i++) {
            for (int k = 0; k < 2; k++) {
                if (slots[i].pid != 0 && slots[i].fd[k] >= 0) {
                    pfds[n].fd = slots[i].fd[k];
                    pfds[n].events = POLLIN;
                    pfds[n].revents = 0;
                    pslot[n] = i;
                    n++;
                }
            }
        }
        if (poll(pfds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "spawn_baseline: poll: %s\n", strerror(errno));
            return 1;
        }
        for (nfds_t j = 0; j < n; j++) {
            if (pfds[j].revents == 0)
                continue;
            struct slot *s = &slots[pslot[j]];
            int k = s->fd[0] == pfds[j].fd ? 0 : 1;
            ssize_t r = read(pfds[j].fd, buf, sizeof buf);
            if (r > 0 || (r < 0 && (errno == EINTR || errno == EAGAIN)))
                continue;
            if (r < 0)
                fprintf(stderr, "spawn_baseline: read: %s\n", strerror(errno));
            close(s->fd[k]);
            s->fd[k] = -1;
            if (s->fd[0] < 0 && s->fd[1] < 0) {
                if (!reap_one(s))
                    failures++;
                running--;
                done++;
            }
        }
    }

    double secs = now_s() - t0;
    double rate = secs > 0 ? (double)o.count / secs : 0.0;
    fprintf(stderr, "spawn_baseline: %ld x %s, %ld in flight: %.3f s, %.1f jobs/s, %ld failed\n",
            o.count, o.path, o.concurrency, secs, rate, failures);
    printf("spawn_baseline: n=%ld c=%ld seconds=%.3f jobs_per_s=%.1f failures=%ld\n", o.count,
           o.concurrency, secs, rate, failures);
    posix_spawnattr_destroy(&attr);
    free(slots);
    free(pfds);
    free(pslot);
    return failures == 0 ? 0 : 1;
}
