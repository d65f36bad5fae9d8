/*
 * exec_thread.c: the thread executor (see exec_thread.h).
 *
 * Threads: `threads` workers run tasks; one watchdog thread turns timeouts
 * and cancel requests into jobd_task_cancel, and abandons a task that is
 * still running kill_grace seconds later.
 *
 * Locking (two kinds of lock, always taken in this order):
 *   ex->lock    guards the run queue, the active list, ex->stuck, ex->stop,
 *               and the control fields of every struct trun (picked,
 *               cancel_req, why, deadlines, reported).
 *   r->wlock    guards one run's output writers. The worker holds it while
 *               it appends; whoever reports the run holds it while it
 *               finishes the writers and sets them to NULL, after which
 *               writes are dropped.
 * No callback is ever called with either lock held. Exactly one thread
 * reports a run (calls `exited`): the worker when the task returns, or the
 * watchdog when it abandons the task; `reported` under ex->lock decides.
 */
#include "exec_thread.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobd/util.h"
#include "log.h"
#include "output.h"
#include "task_impl.h"

struct trun {
    struct exec_thread *ex;
    int64_t num;
    char id[JOBD_MAX_ID_BYTES];
    const struct jobd_task_def *def;
    json_t *args; /* own reference: the job may be gone before an abandoned task returns */
    double timeout, kill_grace;
    int64_t output_cap;

    /* Under ex->lock. */
    bool picked;
    bool cancel_req;
    int64_t cancel_grace_ms; /* grace for a cancel request; -1: the spec's */
    enum exec_end why;       /* EXEC_EXITED until cancelled or timed out */
    int64_t timeout_at;      /* mono ms, 0: none */
    int64_t grace_at;        /* mono ms, 0: not signalled */
    bool reported;
    bool returned;                /* the worker is done with it (after an abandon) */
    bool abandon_reported;        /* the watchdog is done with it (after an abandon) */
    struct trun *qnext;           /* run queue */
    struct trun *anext, **aprevp; /* active list */

    int64_t started_ms;
    jobd_task task;
    pthread_mutex_t wlock;
    struct output_writer *w[2];
};

struct exec_thread {
    pthread_mutex_t lock;
    pthread_cond_t work;     /* workers wait here for runs */
    pthread_cond_t watchdog; /* the watchdog waits here for deadlines */
    struct trun *qhead, **qtail;
    struct trun *active;
    int stuck;
    bool stop; /* refuse new runs */
    bool quit; /* threads exit */
    struct exec_callbacks cb;
    void *ctx;
    char *out_dir;
    int n_workers;
    pthread_t *workers;
    pthread_t watchdog_thread;
};

static int64_t sec_ms(double s) {
    int64_t ms = (int64_t)(s * 1000.0 + 0.5);
    return s > 0 && ms == 0 ? 1 : ms; /* a tiny timeout is still a timeout */
}

static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline) {
    int64_t wait = deadline - jobd_mono_ms();
    struct timespec ts;

    if (wait <= 0)
        return;
    jobd_mono_after(wait, &ts);
    pthread_cond_timedwait(c, m, &ts);
}

/* ---- output ---- */

static int task_write(jobd_task *t, int stream, const void *buf, size_t len) {
    struct trun *r = t->ctx;
    struct exec_thread *ex = r->ex;
    int s = stream == 2 ? OUTPUT_STDERR : OUTPUT_STDOUT;
    int rc = (int)len;

    if (stream != 1 && stream != 2)
        return -EINVAL;
    /*
     * The callback runs under wlock: the inline bytes it is shown belong to
     * the writer (lock order: wlock, then the scheduler's lock).
     */
    pthread_mutex_lock(&r->wlock);
    if (r->w[s]) {
        int wrc = output_writer_append(r->w[s], buf, len);
        if (wrc < 0) {
            rc = wrc;
        } else if (ex->cb.output) {
            size_t ilen;
            const void *d = output_writer_inline(r->w[s], &ilen);
            ex->cb.output(ex->ctx, r->num, s, output_writer_readable(r->w[s]), d, ilen);
        }
    }
    pthread_mutex_unlock(&r->wlock);
    return rc;
}

static const struct jobd_task_ops task_ops = {task_write};

/* ---- reporting ---- */

static void free_run(struct trun *r) {
    for (int i = 0; i < 2; i++)
        if (r->w[i])
            output_writer_close(r->w[i]);
    jobd_task_destroy(&r->task);
    json_decref(r->args);
    pthread_mutex_destroy(&r->wlock);
    free(r);
}

/*
 * Finish the writers and call `exited`. The caller has set r->reported under
 * ex->lock, so it is the only one here.
 */
static void report(struct trun *r, enum exec_end end, int rc, bool ran) {
    struct exec_thread *ex = r->ex;
    struct exec_result res;
    char *result = NULL;
    char *inline_copy[2] = {NULL, NULL};

    memset(&res, 0, sizeof res);
    res.end = end;
    res.exit_code = -1;
    res.started_ms = r->started_ms;
    res.finished_ms = jobd_now_ms();
    pthread_mutex_lock(&r->wlock);
    for (int i = 0; i < 2; i++) {
        if (!r->w[i])
            continue;
        if (output_writer_finish(r->w[i]) < 0)
            res.out_truncated[i] = true;
        res.out_total[i] = output_writer_total(r->w[i]);
        res.out_truncated[i] |= output_writer_truncated(r->w[i]);
        size_t len;
        const void *d = output_writer_inline(r->w[i], &len);
        if (d != NULL && (inline_copy[i] = malloc(len)) != NULL) {
            memcpy(inline_copy[i], d, len);
            res.inline_out[i] = inline_copy[i];
            res.inline_len[i] = len;
        }
        output_writer_close(r->w[i]);
        r->w[i] = NULL;
    }
    pthread_mutex_unlock(&r->wlock);
    if (ran && end == EXEC_EXITED) {
        res.exit_code = rc == 0 ? 0 : (rc >= 1 && rc <= 255 ? rc : 1);
        snprintf(res.error, sizeof res.error, "%s", r->task.error);
        if (r->task.result)
            result = json_dumps(r->task.result, JSON_COMPACT | JSON_ENCODE_ANY);
        res.result_json = result;
    } else if (end == EXEC_CANCELLED || end == EXEC_TIMED_OUT) {
        if (ran && r->task.error[0])
            snprintf(res.error, sizeof res.error, "%s", r->task.error);
    }
    ex->cb.exited(ex->ctx, r->num, &res);
    free(result);
    free(inline_copy[0]);
    free(inline_copy[1]);
}

static void active_remove(struct trun *r) {
    if (!r->aprevp)
        return;
    *r->aprevp = r->anext;
    if (r->anext)
        r->anext->aprevp = r->aprevp;
    r->anext = NULL;
    r->aprevp = NULL;
}

/* ---- workers ---- */

static void run_one(struct exec_thread *ex, struct trun *r) {
    int rc;
    enum exec_end why;
    bool cancelled_early;

    pthread_mutex_lock(&ex->lock);
    cancelled_early = r->cancel_req;
    if (cancelled_early) {
        r->reported = true;
        active_remove(r);
    } else {
        r->picked = true;
        if (r->timeout > 0)
            r->timeout_at = jobd_mono_ms() + sec_ms(r->timeout);
        pthread_cond_signal(&ex->watchdog);
    }
    pthread_mutex_unlock(&ex->lock);
    if (cancelled_early) {
        report(r, EXEC_CANCELLED, 0, false);
        free_run(r);
        return;
    }

    r->started_ms = jobd_now_ms();
    if (ex->cb.started)
        ex->cb.started(ex->ctx, r->num, 0, 0, r->started_ms);
    jobd_task_enter(&r->task);
    rc = r->def->fn(r->args, &r->task);
    jobd_task_leave();

    pthread_mutex_lock(&ex->lock);
    if (r->reported) {
        /* The watchdog gave up on it and reported it; this thread is free again. */
        bool last;
        ex->stuck--;
        r->returned = true;
        last = r->abandon_reported;
        pthread_mutex_unlock(&ex->lock);
        log_info("exec_thread: the abandoned task of job %s returned; its thread serves again",
                 r->id);
        if (last)
            free_run(r);
        return;
    }
    r->reported = true;
    why = r->why;
    active_remove(r);
    pthread_mutex_unlock(&ex->lock);
    report(r, why, rc, true);
    free_run(r);
}

static void *worker_main(void *arg) {
    struct exec_thread *ex = arg;

    pthread_mutex_lock(&ex->lock);
    for (;;) {
        struct trun *r = ex->qhead;
        if (!r) {
            if (ex->quit)
                break;
            pthread_cond_wait(&ex->work, &ex->lock);
            continue;
        }
        ex->qhead = r->qnext;
        if (!ex->qhead)
            ex->qtail = &ex->qhead;
        pthread_mutex_unlock(&ex->lock);
        run_one(ex, r);
        pthread_mutex_lock(&ex->lock);
    }
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

/* ---- watchdog ---- */

static void *watchdog_main(void *arg) {
    struct exec_thread *ex = arg;

    pthread_mutex_lock(&ex->lock);
    while (!ex->quit) {
        int64_t now = jobd_mono_ms();
        int64_t next = now + 60000;
        struct trun *abandon = NULL;

        for (struct trun *r = ex->active, *nr; r; r = nr) {
            nr = r->anext;
            if (!r->picked || r->reported)
                continue;
            if (r->why == EXEC_EXITED &&
                (r->cancel_req || (r->timeout_at && now >= r->timeout_at))) {
                int64_t grace = sec_ms(r->kill_grace);
                r->why = r->cancel_req ? EXEC_CANCELLED : EXEC_TIMED_OUT;
                if (r->cancel_req && r->cancel_grace_ms >= 0 && r->cancel_grace_ms < grace)
                    grace = r->cancel_grace_ms;
                r->grace_at = now + grace;
                jobd_task_cancel(&r->task);
            }
            if (r->grace_at && now >= r->grace_at) {
                /* It ignored the cancel for its whole grace: give up on it. */
                r->reported = true;
                ex->stuck++;
                active_remove(r);
                r->qnext = abandon; /* reuse the queue link: it is not queued */
                abandon = r;
                continue;
            }
            if (r->why == EXEC_EXITED && r->timeout_at && r->timeout_at < next)
                next = r->timeout_at;
            if (r->grace_at && r->grace_at < next)
                next = r->grace_at;
        }
        if (abandon) {
            pthread_mutex_unlock(&ex->lock);
            while (abandon) {
                struct trun *r = abandon;
                abandon = r->qnext;
                log_warn("exec_thread: task %s of job %s ignored its %s for %g s; its thread is "
                         "stuck until it returns",
                         r->def->name, r->id, r->why == EXEC_CANCELLED ? "cancel" : "timeout",
                         r->kill_grace);
                report(r, r->why, 0, true);
                pthread_mutex_lock(&ex->lock);
                r->abandon_reported = true;
                bool last = r->returned;
                pthread_mutex_unlock(&ex->lock);
                if (last)
                    free_run(r);
            }
            pthread_mutex_lock(&ex->lock);
            continue;
        }
        cond_wait_until(&ex->watchdog, &ex->lock, next);
    }
    pthread_mutex_unlock(&ex->lock);
    return NULL;
}

/* ---- public ---- */

int exec_thread_create(const struct exec_thread_config *cfg, const struct exec_callbacks *cb,
                       void *ctx, struct exec_thread **out) {
    struct exec_thread *ex = calloc(1, sizeof *ex);
    pthread_condattr_t ca;
    int rc;

    if (!ex)
        return -ENOMEM;
    ex->out_dir = strdup(cfg->out_dir);
    ex->workers = calloc((size_t)cfg->threads, sizeof *ex->workers);
    if (!ex->out_dir || !ex->workers) {
        free(ex->out_dir);
        free(ex->workers);
        free(ex);
        return -ENOMEM;
    }
    ex->cb = *cb;
    ex->ctx = ctx;
    ex->qtail = &ex->qhead;
    pthread_mutex_init(&ex->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ex->work, &ca);
    pthread_cond_init(&ex->watchdog, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&ex->watchdog_thread, NULL, watchdog_main, ex);
    if (rc != 0) {
        exec_thread_destroy(ex);
        return -rc;
    }
    for (int i = 0; i < cfg->threads; i++) {
        rc = pthread_create(&ex->workers[i], NULL, worker_main, ex);
        if (rc != 0) {
            exec_thread_destroy(ex);
            return -rc;
        }
        ex->n_workers++;
    }
    *out = ex;
    return 0;
}

int exec_thread_start(struct exec_thread *ex, const struct exec_run *run) {
    const struct jobd_task_def *def = jobd_task_lookup(run->spec->task ? run->spec->task : "");
    struct trun *r;

    if (!def)
        return -ENOENT;
    r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    if (jobd_task_init(&r->task) < 0) {
        free(r);
        return -ENOMEM;
    }
    r->ex = ex;
    r->num = run->num;
    snprintf(r->id, sizeof r->id, "%s", run->id);
    r->def = def;
    /* A copy of its own: no JSON value is shared with the scheduler's threads. */
    r->args = run->spec->args ? json_deep_copy(run->spec->args) : json_null();
    if (!r->args) {
        jobd_task_destroy(&r->task);
        free(r);
        return -ENOMEM;
    }
    r->timeout = run->spec->timeout;
    r->kill_grace = run->spec->kill_grace;
    r->output_cap = run->output_cap;
    r->cancel_grace_ms = -1;
    r->why = EXEC_EXITED;
    r->task.ops = &task_ops;
    r->task.ctx = r;
    snprintf(r->task.id, sizeof r->task.id, "%s", run->id);
    pthread_mutex_init(&r->wlock, NULL);
    for (int i = 0; i < 2; i++) {
        r->w[i] = output_writer_open(ex->out_dir, run->id, (enum output_stream)i, run->output_cap);
        if (!r->w[i]) {
            free_run(r);
            return -ENOMEM;
        }
        if (run->attempt == 1)
            output_writer_set_fresh(r->w[i]);
    }
    pthread_mutex_lock(&ex->lock);
    if (ex->stop) {
        pthread_mutex_unlock(&ex->lock);
        free_run(r);
        return -ESHUTDOWN;
    }
    *ex->qtail = r;
    ex->qtail = &r->qnext;
    r->anext = ex->active;
    if (ex->active)
        ex->active->aprevp = &r->anext;
    r->aprevp = &ex->active;
    ex->active = r;
    pthread_cond_signal(&ex->work);
    pthread_mutex_unlock(&ex->lock);
    return 0;
}

void exec_thread_cancel(struct exec_thread *ex, int64_t num) {
    pthread_mutex_lock(&ex->lock);
    for (struct trun *r = ex->active; r; r = r->anext) {
        if (r->num == num && !r->reported) {
            r->cancel_req = true;
            pthread_cond_signal(&ex->watchdog);
        }
    }
    pthread_mutex_unlock(&ex->lock);
}

void exec_thread_stop_all(struct exec_thread *ex, int64_t grace_ms) {
    pthread_mutex_lock(&ex->lock);
    ex->stop = true;
    for (struct trun *r = ex->active; r; r = r->anext) {
        if (!r->reported) {
            r->cancel_req = true;
            r->cancel_grace_ms = grace_ms;
        }
    }
    pthread_cond_signal(&ex->watchdog);
    pthread_mutex_unlock(&ex->lock);
}

int exec_thread_stuck(struct exec_thread *ex) {
    int n;

    pthread_mutex_lock(&ex->lock);
    n = ex->stuck;
    pthread_mutex_unlock(&ex->lock);
    return n;
}

void exec_thread_destroy(struct exec_thread *ex) {
    int stuck;

    if (!ex)
        return;
    pthread_mutex_lock(&ex->lock);
    ex->stop = true;
    ex->quit = true;
    stuck = ex->stuck;
    pthread_cond_broadcast(&ex->work);
    pthread_cond_signal(&ex->watchdog);
    pthread_mutex_unlock(&ex->lock);
    if (ex->watchdog_thread)
        pthread_join(ex->watchdog_thread, NULL);
    if (stuck > 0) {
        /*
         * A stuck worker may return at any time and touch ex: leave it all
         * in place. The process is about to exit.
         */
        log_warn("exec_thread: %d worker(s) still stuck in abandoned tasks at exit", stuck);
        for (int i = 0; i < ex->n_workers; i++)
            pthread_detach(ex->workers[i]);
        return;
    }
    for (int i = 0; i < ex->n_workers; i++)
        pthread_join(ex->workers[i], NULL);
    free(ex->workers);
    free(ex->out_dir);
    pthread_cond_destroy(&ex->work);
    pthread_cond_destroy(&ex->watchdog);
    pthread_mutex_destroy(&ex->lock);
    free(ex);
}
