/*
 * jobd/client.h: a small C client of the jobd REST API, over libcurl and
 * jansson.
 *
 * A struct jobd_client is one connection to one jobd: a base URL, an
 * optional bearer token, timeouts, and a libcurl handle that keeps the
 * connection alive between calls. Typical use:
 *
 *     struct jobd_client_error err;
 *     struct jobd_client_options o = {.url = "http://127.0.0.1:8080"};
 *     struct jobd_client *c = jobd_client_new(&o, &err);
 *     json_t *job = NULL;
 *     if (c && jobd_client_submit_json(c, spec, NULL, &job, &err) >= 0 &&
 *         jobd_client_wait(c, json_string_value(json_object_get(job, "id")), -1, &job, &err) == 0)
 *         ...;
 *
 * Jobs, pages, batches, tasks, nodes and health answers are the server's JSON
 * documents, returned as jansson values (see tests/API_NOTES.md and
 * openapi/openapi.yaml for their fields).
 *
 * Ownership follows jansson's words: a *new* reference or buffer belongs to
 * the caller, who releases it (json_decref, free, jobd_client_free); a
 * *borrowed* pointer stays the caller's and is only read during the call.
 * When a function that returns a new value through `json_t **out` fails,
 * *out is left untouched.
 *
 * Errors: every call returns 0 (or a documented positive value) on success,
 * or a negative errno-style code and fills the struct jobd_client_error
 * (which may be NULL when the caller does not care):
 *   -EINVAL        a bad argument (err->message says which)
 *   -ENOMEM        memory ran out
 *   -ECONNREFUSED  the server could not be reached (refused, no route, unknown host)
 *   -ETIMEDOUT     the connect or transfer timeout passed
 *   -EIO           another transport failure (err->curl_code, err->message); kind
 *                  JOBD_CLIENT_ERR_TLS when it was TLS (an untrusted certificate...)
 *   -EREMOTEIO     the server answered with an error status: err->status and the
 *                  problem details (type, title, detail, field) it sent
 *   -EPROTO        the server's answer is not what the API promises
 *   -ECANCELED     a callback of the caller asked to stop
 * The library prints nothing, and never calls exit or abort.
 *
 * Threads: a handle is used by one thread at a time; use one handle per
 * thread. curl_global_init is done once, by the first jobd_client_new (or
 * jobd_client_global_init), through pthread_once. Every curl handle is set
 * with CURLOPT_NOSIGNAL; on Linux libcurl sends with MSG_NOSIGNAL, so no
 * SIGPIPE reaches the program from the library.
 */
#ifndef JOBD_CLIENT_H
#define JOBD_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobd/spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What went wrong in the last failed call. */
enum jobd_client_errkind {
    JOBD_CLIENT_ERR_NONE = 0,
    JOBD_CLIENT_ERR_USAGE,     /* a bad argument */
    JOBD_CLIENT_ERR_NOMEM,     /* out of memory */
    JOBD_CLIENT_ERR_TRANSPORT, /* libcurl failed: see curl_code and message */
    JOBD_CLIENT_ERR_HTTP,      /* the server answered an error status: see status, title... */
    JOBD_CLIENT_ERR_PROTOCOL,  /* the answer could not be understood */
    JOBD_CLIENT_ERR_CALLBACK,  /* a callback stopped the call */
    JOBD_CLIENT_ERR_TLS,       /* TLS failed (certificate not trusted, handshake): code -EIO */
};

/*
 * The error of a failed call. Strings are always NUL-terminated, empty when
 * unknown, and truncated to fit.
 */
struct jobd_client_error {
    enum jobd_client_errkind kind;
    int code;           /* the negative return value */
    long status;        /* HTTP status of an error answer; 0 when there was none */
    int curl_code;      /* CURLcode of a transport failure; 0 otherwise */
    char type[128];     /* problem "type", e.g. "urn:jobd:problem:invalid-spec" */
    char title[128];    /* problem "title", e.g. "Invalid job spec" */
    char detail[512];   /* problem "detail", e.g. "command[1]: must be a string" */
    char field[128];    /* problem "field", e.g. "command[1]"; "" when none */
    double retry_after; /* seconds from a Retry-After header (429, 503); 0 when none */
    char message[640];  /* one line for people, always set: what failed and why */
};

/* Options of jobd_client_new. Zero-initialise, then set what you need. */
struct jobd_client_options {
    const char *url;         /* base URL, "http://host:port" (a bare "host:port" gets http://) */
    const char *token;       /* bearer token for /v1; NULL or "" for none */
    long connect_timeout_ms; /* 0: 10 s */
    long timeout_ms;         /* whole request, excluding long-poll waits; 0: 60 s */
    const char *user_agent;  /* NULL: "jobd-client/VERSION" */
    /*
     * For https:// URLs: a PEM file of the certificate authorities to trust
     * (a self-signed server certificate is its own CA). NULL or "": the
     * system's CA store. The server's certificate is always verified,
     * host name or IP address included.
     */
    const char *ca_file;
};

/* The two output streams of a job. */
enum jobd_stream { JOBD_STDOUT = 0, JOBD_STDERR = 1 };

/*
 * Do curl_global_init once for the process (pthread_once). jobd_client_new
 * calls it; call it yourself from main before starting threads if other
 * code of yours uses libcurl too. Return 0, or -EIO if libcurl fails.
 */
int jobd_client_global_init(void);

/*
 * Create a client. `opts` is borrowed (its strings are copied). Return a new
 * handle, freed with jobd_client_free, or NULL with *err filled (-EINVAL for
 * a missing or unusable URL, -ENOMEM, -EIO when libcurl cannot start). No
 * network traffic happens here.
 */
struct jobd_client *jobd_client_new(const struct jobd_client_options *opts,
                                    struct jobd_client_error *err);

/* Free a handle and everything it holds; NULL is allowed. */
void jobd_client_free(struct jobd_client *c);

/* The base URL in use (normalised, without a trailing slash); borrowed from c. */
const char *jobd_client_url(const struct jobd_client *c);

/* GET /healthz: a *new* {"status":"ok","version":...} in *out. */
int jobd_client_healthz(struct jobd_client *c, json_t **out, struct jobd_client_error *err);

/* Options of a submission; NULL means all defaults. */
struct jobd_submit_options {
    const char *idempotency_key; /* borrowed; NULL for none */
    double wait;                 /* seconds (0..300) to wait for the end before answering */
};

/*
 * POST /v1/jobs with a raw JSON spec (borrowed). On success store the *new*
 * job document in *job (which may be NULL if the caller does not want it) and
 * return 0 when a job was created (201), or 1 when the idempotency key named
 * a job submitted earlier (200). An invalid spec is -EREMOTEIO with status
 * 400 and err->field naming the field.
 */
int jobd_client_submit_json(struct jobd_client *c, const json_t *spec,
                            const struct jobd_submit_options *opts, json_t **job,
                            struct jobd_client_error *err);

/* The same for a spec struct (borrowed), rendered with jobd_spec_to_json. */
int jobd_client_submit(struct jobd_client *c, const struct jobd_spec *spec,
                       const struct jobd_submit_options *opts, json_t **job,
                       struct jobd_client_error *err);

/* GET /v1/jobs/{id}: the *new* job document in *job. A missing job is -EREMOTEIO, status 404. */
int jobd_client_get(struct jobd_client *c, const char *id, json_t **job,
                    struct jobd_client_error *err);

/*
 * Wait for job `id` to end: long-polls (GET ?wait=) in a loop until the job
 * is in a final state or `timeout` seconds pass (timeout < 0: no deadline;
 * 0: one look). Each poll's transfer timeout is the client's timeout plus
 * the poll's wait. Return 0 when the job has ended, 1 when the deadline
 * passed first; either way the *new* latest job document is in *job (which
 * may be NULL).
 */
int jobd_client_wait(struct jobd_client *c, const char *id, double timeout, json_t **job,
                     struct jobd_client_error *err);

/*
 * POST /v1/jobs/{id}/cancel. On success the *new* job document (as the
 * cancel left it: a running job is usually still "running") is in *job,
 * which may be NULL. An ended job is -EREMOTEIO with status 409.
 */
int jobd_client_cancel(struct jobd_client *c, const char *id, json_t **job,
                       struct jobd_client_error *err);

/* DELETE /v1/jobs/{id}: forget an ended job and its output. An active job is status 409. */
int jobd_client_delete(struct jobd_client *c, const char *id, struct jobd_client_error *err);

/* Filters of a listing. Zero-initialise; every string is borrowed and may be NULL. */
struct jobd_list_query {
    const char *state;  /* "failed" or "failed,timed_out" */
    const char *name;   /* exact name */
    const char *label;  /* "KEY=VALUE" */
    const char *cursor; /* start after this page cursor (a next_cursor) */
    int limit;          /* jobs per page, 1..1000; 0: the server's default (100) for one
                           page, 1000 for jobd_client_list_each */
    const char *batch;  /* only the jobs of this batch ("b12") */
};

/*
 * GET /v1/jobs: one page, newest first. The *new* answer
 * {"jobs":[...],"next_cursor":null|"...","seq":N} is in *page.
 */
int jobd_client_list_page(struct jobd_client *c, const struct jobd_list_query *q, json_t **page,
                          struct jobd_client_error *err);

/*
 * Called once per job of a listing with a *borrowed* job document (valid
 * during the call only; json_incref it to keep it). Return 0 to go on, or
 * any other value to stop.
 */
typedef int (*jobd_job_fn)(void *arg, json_t *job);

/*
 * Walk every job matching q, newest first, following next_cursor from page
 * to page (q->limit is the page size), until `max` jobs were seen (max 0:
 * no bound) or the listing ends. Return 0 when the walk ended, the
 * callback's value when it stopped the walk, or a negative error. Jobs
 * submitted during the walk are not shown; jobs deleted during it may be
 * missing.
 */
int jobd_client_list_each(struct jobd_client *c, const struct jobd_list_query *q, size_t max,
                          jobd_job_fn fn, void *arg, struct jobd_client_error *err);

/*
 * GET /v1/jobs/{id}/stdout (or stderr) from byte `offset`: what has been
 * written so far. On success *data is a *new* buffer of *len bytes (plus a
 * NUL not counted in *len, so text can be used as a string; the bytes may
 * hold NULs), freed with free().
 */
int jobd_client_read_output(struct jobd_client *c, const char *id, enum jobd_stream stream,
                            int64_t offset, char **data, size_t *len,
                            struct jobd_client_error *err);

/*
 * Called with each piece of output as it arrives: `data` is *borrowed* and
 * NOT NUL-terminated. Return 0 to go on, any other value to stop the follow
 * (which then returns -ECANCELED).
 */
typedef int (*jobd_output_fn)(void *arg, enum jobd_stream stream, const char *data, size_t len);

/* Options of jobd_client_follow; NULL means both streams from offset 0. */
struct jobd_follow_options {
    bool streams[2];   /* which streams to follow, indexed by enum jobd_stream */
    int64_t offset[2]; /* where each starts */
    /*
     * Called after each wait of the loop: at most 250 ms apart, and at once
     * when wake_fd becomes readable (tick must then drain wake_fd, or the
     * loop spins). Return 0 to go on, or any other value to stop
     * (-ECANCELED). It may use the same client handle for other calls
     * (cancel, get). NULL: never called.
     */
    int (*tick)(void *arg);
    int wake_fd; /* a descriptor (a self-pipe) that wakes the loop; -1 for none */
};

/*
 * Stream the output of job `id` (GET .../stdout?follow=true, and stderr) to
 * `fn` as it is written, the selected streams at once in this thread (the
 * curl multi interface), until the job has ended and everything was sent.
 * Only the connect timeout applies (a job may be silent for hours); TCP
 * keepalive notices a dead server. Return 0 when every stream ended
 * normally. When `fn` or `tick` returns non-zero, the follow stops and
 * returns -ECANCELED. When one stream fails, the others are stopped too.
 * Bytes delivered before a failure stay delivered.
 */
int jobd_client_follow(struct jobd_client *c, const char *id,
                       const struct jobd_follow_options *opts, jobd_output_fn fn, void *arg,
                       struct jobd_client_error *err);

/* GET /v1/tasks: the *new* {"tasks":[{"name":...,"description":...},...]} in *out, in name order.
 */
int jobd_client_tasks(struct jobd_client *c, json_t **out, struct jobd_client_error *err);

/*
 * Batches. A batch document is the server's JSON object {"id":"b12",
 * "name":null|"...","concurrency":N,"total":N,"counts":{"queued":N,
 * "running":N,"succeeded":N,"failed":N,"cancelled":N,"timed_out":N},
 * "done":bool,"jobs":["j1",...],"created_at":"..."}.
 */

/* Options of jobd_client_batch_submit; NULL means all defaults. */
struct jobd_batch_options {
    int concurrency;  /* at most this many jobs run at a time, 1..100000; 0: all of them */
    const char *name; /* borrowed; NULL for none */
    double wait;      /* seconds (0..300) to wait for every job to end before answering */
};

/*
 * POST /v1/batches with the job specs `jobs` (borrowed: a non-empty JSON
 * array of spec objects, not modified). All the jobs are stored, or none.
 * On success return 0 with the *new* batch document in *batch (which may be
 * NULL). A bad spec is -EREMOTEIO with status 400 and err->field naming it
 * ("jobs[3].timeout"); a full queue is status 429 (err->retry_after).
 */
int jobd_client_batch_submit(struct jobd_client *c, const json_t *jobs,
                             const struct jobd_batch_options *opts, json_t **batch,
                             struct jobd_client_error *err);

/*
 * The same with the raw body (borrowed): {"jobs":[...], "concurrency":N,
 * "name":"..."}, sent as it is; `wait` as in struct jobd_batch_options.
 */
int jobd_client_batch_submit_json(struct jobd_client *c, const json_t *body, double wait,
                                  json_t **batch, struct jobd_client_error *err);

/*
 * GET /v1/batches/{id}: the *new* batch document in *batch. With `wait` > 0
 * (seconds, up to 300) the server answers once every job has ended ("done"
 * is true) or when the wait has passed. A missing batch is -EREMOTEIO,
 * status 404.
 */
int jobd_client_batch_get(struct jobd_client *c, const char *id, double wait, json_t **batch,
                          struct jobd_client_error *err);

/*
 * Wait for every job of batch `id` to end: long-polls in a loop until the
 * batch is done or `timeout` seconds pass (timeout < 0: no deadline; 0: one
 * look), as jobd_client_wait does for a job. Return 0 when the batch is
 * done, 1 when the deadline passed first; either way the *new* latest batch
 * document is in *batch (which may be NULL).
 */
int jobd_client_batch_wait(struct jobd_client *c, const char *id, double timeout, json_t **batch,
                           struct jobd_client_error *err);

/*
 * POST /v1/batches/{id}/cancel: cancel every job of the batch that has not
 * ended (a done batch is accepted too, unchanged). On success the *new*
 * batch document, as the cancel left it, is in *batch (which may be NULL).
 */
int jobd_client_batch_cancel(struct jobd_client *c, const char *id, json_t **batch,
                             struct jobd_client_error *err);

/*
 * Worker nodes (the jobd processes that run a coordinator's `remote` jobs).
 * A node document is the server's JSON object {"id":"n3f9a0c1d2e4b5a69",
 * "url":"http://node-1:8081","state":"ready"|"draining"|"down",
 * "labels":{...},"capacity":N,"running":N,"last_seen":"...",
 * "registered_at":"...","version":null|"..."}. These calls need the users'
 * token, as the job calls do; nodes register themselves (POST /v1/nodes,
 * with the cluster token), which this library does not do.
 */

/* GET /v1/nodes: the *new* {"nodes":[node,...]} in *out (which may be NULL), in id order. */
int jobd_client_nodes(struct jobd_client *c, json_t **out, struct jobd_client_error *err);

/*
 * GET /v1/nodes/{id}: the *new* node document in *node (which may be NULL).
 * An unknown node is -EREMOTEIO, status 404.
 */
int jobd_client_node_get(struct jobd_client *c, const char *id, json_t **node,
                         struct jobd_client_error *err);

/*
 * POST /v1/nodes/{id}/drain: the node gets no new jobs and finishes those
 * it runs. On success the *new* node document (state "draining") is in
 * *node, which may be NULL. An unknown node is status 404.
 */
int jobd_client_node_drain(struct jobd_client *c, const char *id, json_t **node,
                           struct jobd_client_error *err);

/*
 * DELETE /v1/nodes/{id}: forget a node. A node that still runs jobs is
 * -EREMOTEIO with status 409 (drain it and wait); an unknown one, 404.
 */
int jobd_client_node_delete(struct jobd_client *c, const char *id, struct jobd_client_error *err);

/*
 * Helpers over a job document (borrowed). jobd_job_str returns a string
 * field borrowed from the document, or NULL when it is absent or not a
 * string. jobd_job_state parses "state"; it returns 0, or -EINVAL.
 */
const char *jobd_job_str(const json_t *job, const char *field);
int jobd_job_state(const json_t *job, enum jobd_state *state);

#ifdef __cplusplus
}
#endif

#endif
