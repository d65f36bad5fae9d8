/*
 * scheduler.h: the one owner of job state.
 *
 * Every job that is queued or running lives in the scheduler's table; ended
 * jobs live in the store only. Every change of a job (submit, start, end,
 * retry, cancel, delete) is made here, under the scheduler lock, takes the
 * next change number (seq), is rendered into the job document, and is handed
 * to the store; only when the store has committed it is the change
 * "published": readers see the new document and watchers are woken. So a
 * 201 means the job is on disk, and nobody ever sees a state that a crash
 * could take back.
 */
#ifndef JOBD_SCHEDULER_H
#define JOBD_SCHEDULER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobd/job.h"
#include "jobd/spec.h"

struct sched;
struct store;
struct config;

struct sched_config {
    const struct config *cfg;
    struct store *store;
    const char *out_dir; /* <data>/out */
    int64_t last_num;    /* from store_open */
    int64_t last_seq;
    const char *instance_id; /* this jobd's persistent id (labels of its remote jobs) */
};

/* Create the scheduler and its executor. Return 0 or a negative errno. */
int sched_create(const struct sched_config *sc, struct sched **out);

/*
 * Recover from the store: queued jobs are queued again, jobs that were
 * running are killed (what is left of their process group) and failed as
 * "interrupted", or requeued when retries remain. Then start dispatching.
 */
int sched_start(struct sched *s);

/*
 * Shut down: stop dispatching, let running jobs finish for up to `grace_s`,
 * stop the rest (recorded as interrupted, or requeued when retries remain),
 * wait until every change is committed. Queued jobs stay queued in the store.
 */
void sched_shutdown(struct sched *s, double grace_s);

/* Free everything (after sched_shutdown and before store_close). */
void sched_destroy(struct sched *s);

/* Completion of an asynchronous request: status 0 or a negative errno. */
typedef void (*sched_done_fn)(void *arg, int status);

/*
 * Submit a job. `spec` is stolen (freed by the scheduler even on failure).
 * Returns:
 *   0          accepted: *num is its number; done(arg, status) is called once,
 *              on another thread, after the store committed it (status 0) or
 *              failed (-ENOSPC, -EIO: the job is gone).
 *   1          an earlier job with the same idempotency key and spec: *num is it;
 *              done is never called.
 *   -EAGAIN    the queue is full.          -ESHUTDOWN  shutting down.
 *   -EEXIST    the key was used with a different spec.
 *   -EBUSY     the key's first request is still being committed.
 *   other negative errno: an internal error. done is never called on errors.
 */
int sched_submit(struct sched *s, struct jobd_spec *spec, const char *idem_key, int64_t *num,
                 sched_done_fn done, void *arg);

/*
 * The published document of a job (a new string, the caller frees it), and
 * whether it is in a final state. Return 0, -ENOENT, or a negative errno.
 */
int sched_get_doc(struct sched *s, int64_t num, char **doc, bool *final);

/*
 * Cancel. Return 0 when done(arg, status) will be called once the change is
 * committed (a queued job becomes cancelled); 1 when the request was passed
 * to the executor and there is nothing to wait for (a running job); -ENOENT;
 * -EALREADY when the job has already ended.
 */
int sched_cancel(struct sched *s, int64_t num, sched_done_fn done, void *arg);

/*
 * Forget an ended job and its output. Return 0 when done(arg, status) will
 * be called after the commit; -ENOENT; -EBUSY while the job is active.
 */
int sched_delete(struct sched *s, int64_t num, sched_done_fn done, void *arg);

/*
 * Watches: one-shot wake-ups for long polls. fn(arg) runs on some other
 * thread with the scheduler lock held: it must only wake someone up.
 */
struct sched_watch {
    void (*fn)(void *arg);
    void *arg;
    /* private */
    struct sched_watch *prev, *next;
    void *owner; /* the job, or the scheduler for a global watch; NULL when not armed */
};

void sched_watch_init(struct sched_watch *w, void (*fn)(void *), void *arg);

/*
 * Arm w to fire at the next published change of job `num` or when its output
 * grows. Return 0 when armed, 1 when the job has already ended (not armed),
 * -ENOENT when the job is not active (ended long ago, or unknown).
 */
int sched_watch_job(struct sched *s, struct sched_watch *w, int64_t num);

/*
 * Arm w to fire when a change after `since` is published. Return 0 when
 * armed, 1 when one is already published (not armed).
 */
int sched_watch_seq(struct sched *s, struct sched_watch *w, int64_t since);

/* Disarm (idempotent). After it returns, fn is not running and will not run. */
void sched_unwatch(struct sched *s, struct sched_watch *w);

/* The highest published change number. */
int64_t sched_published_seq(struct sched *s);

/*
 * How much of a stream of job `num` can be read now, and whether the job has
 * ended. Return 0, or -ENOENT when the job is not active (then it has ended:
 * read the whole file).
 */
int sched_output_state(struct sched *s, int64_t num, int stream, int64_t *readable, bool *ended);

/*
 * Read a stream of an active job. Return 0 with *readable and *ended; when
 * the stream is small and held in memory, up to `max` bytes from `offset` are
 * copied into buf and *n is their count (0 at the end of what exists now);
 * otherwise *n is -1 and the caller reads the file, up to *readable. Return
 * -ENOENT when the job is not active (it has ended: see store_get_output).
 */
int sched_output_read(struct sched *s, int64_t num, int stream, int64_t offset, char *buf,
                      size_t max, ssize_t *n, int64_t *readable, bool *ended);

/* Counters for /healthz and /metrics. */
struct sched_stats {
    int queued;
    int running;         /* all executors */
    int running_process; /* children */
    int running_thread;  /* tasks on worker threads */
    int running_remote;  /* attempts on worker nodes */
    int nodes_ready, nodes_draining, nodes_down;
    int threads;       /* size of the task thread pool */
    int stuck_threads; /* workers stuck in an abandoned task */
    int64_t seq;       /* highest published change */
};
void sched_stats(struct sched *s, struct sched_stats *st);

/* ---- worker nodes ---- */

/* A node's registration or heartbeat (POST /v1/nodes), checked by the caller. */
struct sched_node_reg {
    const char *id;
    const char *url;
    const json_t *labels; /* object of strings, or NULL */
    int capacity;
    const char *version; /* or NULL */
};

/*
 * Register a node, or take its heartbeat: *doc is its document (a new
 * reference), *created says whether it is new. A down node is ready again;
 * a draining one stays draining. Return 0, -ENOTSUP when this jobd takes no
 * nodes (no cluster token), -ESHUTDOWN, -ENOMEM.
 */
int sched_node_register(struct sched *s, const struct sched_node_reg *r, json_t **doc,
                        bool *created);

/*
 * Node changes (a node joined, changed, went down or came back, was drained
 * or forgotten) take a change number (seq) like job changes. Call fn, in seq
 * order, for each of the last few hundred with after < seq <= upto: its
 * document, or {"id"} when it was forgotten (deleted). fn runs with the
 * scheduler lock held: it must only copy. Return 0 or fn's non-zero.
 */
int sched_node_events(struct sched *s, int64_t after, int64_t upto,
                      int (*fn)(void *arg, int64_t seq, bool deleted, const char *doc), void *arg);

/* Every node's document, in id order (*arr a new array). Return 0 or -ENOMEM. */
int sched_nodes_list(struct sched *s, json_t **arr);

/* One node's document. Return 0, -ENOENT, -ENOMEM. */
int sched_node_get(struct sched *s, const char *id, json_t **doc);

/* Send the node no new work. Return 0 with its document, -ENOENT, -ENOMEM. */
int sched_node_drain(struct sched *s, const char *id, json_t **doc);

/* Forget a node. Return 0, -ENOENT, or -EBUSY while attempts run on it (*running of them). */
int sched_node_delete(struct sched *s, const char *id, int *running);

/* ---- batches ---- */

#define SCHED_MAX_BATCH 100000 /* jobs in one batch */

/*
 * Submit `n` jobs as one batch, at most `concurrency` of them running at once.
 * specs[0..n-1] are stolen (freed by the scheduler even on failure; the array
 * itself stays the caller's). All of them are committed in one transaction.
 * Returns 0 and *batch_num, then done(arg, status) after the commit (status 0,
 * or a negative errno when nothing was stored); -EAGAIN when the queue has no
 * room for n more; -ESHUTDOWN; -ENOMEM.
 */
int sched_submit_batch(struct sched *s, struct jobd_spec *specs, size_t n, int concurrency,
                       const char *name, int64_t *batch_num, sched_done_fn done, void *arg);

/*
 * The batch document: {"id","name","concurrency","total","counts":{state:n},
 * "done","jobs":[ids],"created_at"}. *doc is a new reference. Return 0,
 * -ENOENT, or -errno.
 */
int sched_get_batch(struct sched *s, int64_t num, json_t **doc);

/*
 * Arm w to fire when every job of the batch has ended (or at shutdown).
 * Return 0 when armed, 1 when they all have already (not armed), -ENOENT
 * while the batch is still being stored.
 */
int sched_watch_batch(struct sched *s, struct sched_watch *w, int64_t num);

/* Cancel every job of the batch that has not ended. Return 0 or -ENOENT. */
int sched_cancel_batch(struct sched *s, int64_t num);

/* Batch ids are "b" + base 36, like job ids; -1 when not a batch id. */
void sched_format_batch_id(int64_t num, char *buf, size_t len);
int64_t sched_parse_batch_id(const char *id);

#endif
