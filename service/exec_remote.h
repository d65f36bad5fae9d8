/*
 * exec_remote.h: the remote executor. It runs job attempts on worker nodes
 * (other jobd processes started with --join) through their ordinary REST
 * API, and reports back through callbacks. Like the other executors it never
 * decides a job's state: the scheduler does, and it alone decides which node
 * an attempt goes to and when a node is down.
 *
 * One thread owns everything here and drives every HTTP exchange through one
 * libcurl multi handle, so neither nodes nor attempts in flight cost a thread:
 *
 *  - dispatch: POST {node}/v1/jobs with the attempt's spec (already rewritten
 *    for the node by the scheduler: see exec_remote_node_spec) and the header
 *    `Idempotency-Key: <coordinator>-<job id>-<attempt>`, so a dispatch
 *    retried after a network error never runs an attempt twice. Network
 *    errors, 429 and 5xx are retried (same key) every second until the
 *    scheduler abandons the attempt; another 4xx is a refusal.
 *  - polling: one blocking query per node, GET {node}/v1/jobs?since=SEQ&
 *    wait=S&label=jobd.coordinator=<coordinator>&limit=1000, which learns of
 *    every change of this coordinator's jobs on that node. The first query to
 *    a node (since unknown) is `?limit=1&label=...` to learn its current seq;
 *    an attempt resumed after a restart is read once with GET
 *    {node}/v1/jobs/{remote id} so nothing that happened before is missed.
 *    A node document is matched to an attempt by its labels jobd.job and
 *    jobd.attempt. A document of this coordinator that matches no current
 *    attempt and has not ended is a late attempt that was given up on: the
 *    node is told to cancel it (fencing).
 *  - output: while an attempt runs, GET {node}/v1/jobs/{rid}/stdout (and
 *    /stderr) ?offset=N&follow=true copies the bytes as they grow into this
 *    jobd's own output writers (output.h, no cap: the node capped them), and
 *    reports them through `output`. A broken stream is resumed at its
 *    offset. When the node says the attempt has ended, the streams are read
 *    to their end before `exited` is called, so the output is complete.
 *  - cancel: POST {node}/v1/jobs/{rid}/cancel (after the dispatch answer if
 *    the remote id is not known yet).
 *
 * Every request carries `Authorization: Bearer <cluster token>` when one is
 * set, and CURLOPT_CAINFO when cacert is set (https nodes).
 *
 * Callbacks run on the executor thread with no executor lock held. For one
 * attempt: dispatched (at most once), output (zero or more times), then
 * exactly one of exited / refused, unless the attempt was abandoned first
 * (then nothing more). Every callback carries the attempt number: the
 * scheduler ignores one about an attempt it has given up on (a late answer
 * racing exec_remote_abandon).
 */
#ifndef JOBD_EXEC_REMOTE_H
#define JOBD_EXEC_REMOTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "exec_process.h"
#include "jobd/spec.h"

struct exec_remote;

#define EXEC_REMOTE_NODE_ID_MAX 64 /* bytes of a node id, without the NUL */

/* Labels the coordinator adds to every spec it sends to a node. */
#define EXEC_REMOTE_LABEL_COORD   "jobd.coordinator"
#define EXEC_REMOTE_LABEL_JOB     "jobd.job"
#define EXEC_REMOTE_LABEL_ATTEMPT "jobd.attempt"
#define EXEC_REMOTE_LABELS        3 /* how many */

struct exec_remote_config {
    const char *out_dir;        /* where copied output goes (as for the other executors) */
    const char *coordinator_id; /* this jobd's instance id: labels and idempotency keys */
    const char *cluster_token;  /* bearer token for nodes, NULL for none */
    const char *cacert;         /* CA file for https nodes, NULL for the system's */
    double poll_wait_s;         /* the `wait` of a blocking query (> 0) */
};

/* One attempt to run on (or resume from) a node. Strings are copied. */
struct exec_remote_run {
    int64_t num;                /* job number, the key in callbacks */
    char id[JOBD_MAX_ID_BYTES]; /* job id: names the output files, label jobd.job */
    int attempt;                /* 1 for the first; label jobd.attempt */
    const char *node_id;
    const char *node_url;  /* "http://host:port" without a trailing slash */
    const char *spec_json; /* the body to POST (exec_remote_node_spec); unused by resume */
    const char *remote_id; /* resume only: the node's id of the attempt */
    /*
     * Cap of each copied stream (<= 0: none), as for a local attempt: the
     * node caps its own copy, and this keeps a node that sends more than it
     * should from filling this jobd's disk.
     */
    int64_t output_cap;
};

struct exec_remote_callbacks {
    /* The node accepted the attempt: its id there (borrowed for the call). */
    void (*dispatched)(void *ctx, int64_t num, int attempt, const char *remote_id);
    /* As exec_callbacks.output: a stream grew (data: all of it while small, else NULL). */
    void (*output)(void *ctx, int64_t num, int attempt, int stream, int64_t readable,
                   const void *data, size_t len);
    /*
     * The attempt ended on the node and its output is copied. res carries the
     * node's exit code, signal, error, result, timestamps and output sizes.
     */
    void (*exited)(void *ctx, int64_t num, int attempt, const struct exec_result *res);
    /* The node refused the attempt (a 4xx other than 429): why, in words. */
    void (*refused)(void *ctx, int64_t num, int attempt, int http_status, const char *detail);
    /* A request to the node succeeded: it is alive (for --node-timeout). */
    void (*node_seen)(void *ctx, const char *node_id);
};

/* Start the thread. Return 0 or a negative errno. */
int exec_remote_create(const struct exec_remote_config *cfg, const struct exec_remote_callbacks *cb,
                       void *ctx, struct exec_remote **out);

/*
 * Tell the executor about a node (thread-safe): poll it from now on (a new
 * or changed url), or with url NULL forget it (its attempts must have been
 * abandoned). Polling continues while the scheduler counts it down: its
 * answers (node_seen) are how it comes back.
 */
void exec_remote_set_node(struct exec_remote *er, const char *node_id, const char *url);

/*
 * Dispatch an attempt (thread-safe). Return 0, -EINVAL (no node id, no
 * spec), -ENOMEM, or -ESHUTDOWN. The POST waits until the node's first poll
 * has answered (its seq is known), so no change of the attempt is missed. A
 * node not told about with exec_remote_set_node is learnt from run->node_url.
 * Starting a job number whose earlier attempt was not abandoned abandons it.
 */
int exec_remote_start(struct exec_remote *er, const struct exec_remote_run *run);

/*
 * Follow an attempt that was already dispatched (its remote id is known),
 * after a restart of this jobd. Output is copied again from offset 0. Return
 * as exec_remote_start (-EINVAL also for a remote id that is not 1..63 of
 * [A-Za-z0-9._-]). If the node no longer has the job, `refused` reports it
 * with status 404. Call it for every attempt to follow before telling the
 * executor about their nodes, or a poll may fence (cancel) one of them.
 */
int exec_remote_resume(struct exec_remote *er, const struct exec_remote_run *run);

/* Relay a cancel to the node (thread-safe; unknown numbers are ignored). */
void exec_remote_cancel(struct exec_remote *er, int64_t num);

/*
 * Give up on an attempt (thread-safe): no callback about it follows once this
 * is processed, and the node is told to cancel it when it can be reached.
 */
void exec_remote_abandon(struct exec_remote *er, int64_t num, int attempt);

/*
 * Stop: abort every transfer (attempts stay running on their nodes) and refuse
 * new ones. When called from another thread than the executor's, it returns
 * once the executor has dropped everything: no callback follows.
 */
void exec_remote_stop(struct exec_remote *er);

/* Join the thread and free. */
void exec_remote_destroy(struct exec_remote *er);

/*
 * Pure helpers (no executor), shared with the scheduler, tests and fuzzers.
 */

/*
 * The spec a node gets for an attempt: `spec` (a job's canonical spec as a
 * JSON object) with executor "remote" replaced by the default of its kind
 * (dropped), node_selector, retries, retry_delay and retry_exit_codes
 * removed (the coordinator retries), and the three labels added. Return a
 * new string or NULL if memory runs out.
 */
char *exec_remote_node_spec(const json_t *spec, const char *coordinator_id, const char *job_id,
                            int attempt);

/* What a node's job document says, checked. */
struct exec_remote_doc {
    char remote_id[JOBD_MAX_ID_BYTES];
    enum jobd_state state;
    int64_t seq;
    char job_id[JOBD_MAX_ID_BYTES]; /* label jobd.job, "" when absent */
    int attempt;                    /* label jobd.attempt, 0 when absent */
    bool ours;                      /* label jobd.coordinator is this coordinator */
    struct exec_result res;         /* when final: what `exited` reports (no output) */
    char *result_json;              /* owned by the doc (res.result_json points here) */
};

/*
 * Parse one job document from a node (hostile input: anything may be
 * missing, of the wrong type, or absurd). Return 0, or -EINVAL when it is
 * not a usable job document (no string id, unknown state). Free with
 * exec_remote_doc_free even on error.
 */
int exec_remote_parse_doc(const json_t *doc, const char *coordinator_id,
                          struct exec_remote_doc *out);
void exec_remote_doc_free(struct exec_remote_doc *d);

/*
 * Parse the body of a node's answer to a list or blocking query
 * ({"jobs":[...],"seq":N}). Sets *seq, then calls fn (unless NULL) for each
 * usable job document (skipping unusable ones; the document is borrowed for
 * the call); a non-zero return of fn stops the walk and is returned. Return
 * 0, or -EINVAL when the body is not such an answer at all (then fn is never
 * called and *seq is unchanged).
 */
int exec_remote_parse_list(const char *body, size_t len, const char *coordinator_id,
                           int (*fn)(void *arg, const struct exec_remote_doc *d), void *arg,
                           int64_t *seq);

#endif
