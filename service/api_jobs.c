/*
 * api_jobs.c: the /v1/jobs handlers. They parse and answer; the scheduler
 * decides. Long waits arm a scheduler watch (and a deadline) and suspend
 * the request, so a waiting client holds memory, not a thread.
 *
 * Each request that may wait owns a struct job_req (its handler state),
 * freed when the request completes; freeing disarms its watch first.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "exec_remote.h"
#include "jobd/spec.h"
#include "jobd/util.h"
#include "output.h"
#include "scheduler.h"
#include "store.h"
#include "task_impl.h"

#define MAX_WAIT_S    300
#define DEFAULT_LIMIT 100
#define MAX_LIMIT     1000
#define MAX_IDEM_KEY  255

enum phase { PH_START, PH_COMMIT, PH_WAIT, PH_STREAM };

struct job_req {
    struct http_req *req;
    struct sched *s;
    struct sched_watch watch;
    enum phase phase;
    int64_t num;
    int status;   /* result of an asynchronous scheduler call */
    bool done;    /* that call has completed */
    bool created; /* 201 rather than 200 */
    double wait;  /* seconds */
    int64_t deadline;
    /* stdout/stderr */
    int stream;
    int64_t offset;
    /* listing */
    int64_t since;
    /* submissions waiting for an earlier one with the same Idempotency-Key */
    int retries;
    /* output of an ended job kept in its row (loaded once) */
    char *ended_out;
    size_t ended_len;
    bool ended_loaded;
};

static struct app *app_of(struct http_req *req) {
    return http_app(req);
}

static void job_req_free(void *arg) {
    struct job_req *jr = arg;

    sched_unwatch(jr->s, &jr->watch);
    free(jr->ended_out);
    free(jr);
}

static struct job_req *job_req_get(struct http_req *req) {
    struct job_req *jr = http_state(req);

    if (jr)
        return jr;
    jr = calloc(1, sizeof *jr);
    if (!jr)
        return NULL;
    jr->req = req;
    jr->s = app_of(req)->sched;
    sched_watch_init(&jr->watch, api_wake, req);
    http_set_state(req, jr, job_req_free);
    return jr;
}

/* Completion of sched_submit / sched_cancel / sched_delete. Runs under the scheduler lock. */
static void on_sched_done(void *arg, int status) {
    struct job_req *jr = arg;

    jr->status = status;
    jr->done = true;
    http_wake(jr->req);
}

/* ---- parameters ---- */

/* Parse a number of seconds in [0, max]. Return 0, or -1 after answering 400. */
static int param_seconds(struct http_req *req, const char *key, double max, double *out) {
    const char *v = http_query(req, key);
    char *end;
    double d;

    *out = 0;
    if (!v)
        return 0;
    errno = 0;
    d = strtod(v, &end);
    /* Digits only: strtod would also take " 5", "+5", "0x5" and "inf". */
    if (errno || end == v || *end || !(d >= 0 && d <= max) || !strchr("0123456789.", v[0]) ||
        strpbrk(v, "xXpPnN")) {
        http_problem(req, 400, "invalid-parameter", "Invalid parameter", key,
                     "%s: must be a number of seconds from 0 to %g", key, max);
        return -1;
    }
    *out = d;
    return 0;
}

/* Parse an integer in [lo, hi]; absent gives `dflt`. Return 0, or -1 after answering 400. */
static int param_int(struct http_req *req, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                     int64_t *out) {
    const char *v = http_query(req, key);
    char *end;
    long long n;

    *out = dflt;
    if (!v)
        return 0;
    errno = 0;
    n = strtoll(v, &end, 10);
    /* strtoll also takes " 5" and "+5": a number here is digits, or '-' and digits. */
    if (errno || end == v || *end || n < lo || n > hi || !strchr("-0123456789", v[0]) || !v[0]) {
        http_problem(req, 400, "invalid-parameter", "Invalid parameter", key,
                     "%s: must be an integer from %lld to %lld", key, (long long)lo, (long long)hi);
        return -1;
    }
    *out = n;
    return 0;
}

static int param_bool(struct http_req *req, const char *key, bool *out) {
    const char *v = http_query(req, key);

    *out = false;
    if (!v)
        return 0;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || *v == '\0') {
        *out = true;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        return 0;
    http_problem(req, 400, "invalid-parameter", "Invalid parameter", key,
                 "%s: must be true or false", key);
    return -1;
}

static void not_found(struct http_req *req, const char *id) {
    http_problem(req, 404, "not-found", "Not found", NULL, "no job %s", id);
}

/* ---- validation beyond the spec's own rules ---- */

/* Depth of a JSON value (a scalar is 1), stopping early past `limit`. */
static int json_depth(const json_t *v, int limit) {
    int deepest = 0;

    if (limit <= 0)
        return 1;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            int d = json_depth(e, limit - 1);
            if (d > deepest)
                deepest = d;
            if (deepest >= limit)
                break;
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e) {
            int d = json_depth(e, limit - 1);
            if (d > deepest)
                deepest = d;
            if (deepest >= limit)
                break;
        }
    }
    return deepest + 1;
}

#define MAX_ARGS_DEPTH 512 /* nesting of a task's args; the store's JSON functions stop at 2000 */

int api_check_spec(const struct config *cfg, const struct jobd_spec *spec, struct jobd_error *err) {
    if (spec->args && json_depth(spec->args, MAX_ARGS_DEPTH + 1) > MAX_ARGS_DEPTH)
        return jobd_error_set(err, "args", "is nested more than %d levels deep", MAX_ARGS_DEPTH);
    if (spec->kind == JOBD_SPEC_TASK && jobd_task_check_spec(spec->task, spec->args, err) < 0)
        return -EINVAL;
    if (spec->executor == JOBD_EXEC_REMOTE) {
        if (!cfg || !cfg->cluster_token)
            return jobd_error_set(err, "executor",
                                  "'remote' needs worker nodes, and this jobd takes none (it "
                                  "has no cluster token); use 'process' or 'thread'");
        if (spec->labels && json_object_size(spec->labels) > JOBD_MAX_LABELS - EXEC_REMOTE_LABELS)
            return jobd_error_set(err, "labels",
                                  "a remote job can have at most %d labels (jobd adds %d of "
                                  "its own on the node)",
                                  JOBD_MAX_LABELS - EXEC_REMOTE_LABELS, EXEC_REMOTE_LABELS);
    }
    return 0;
}

/* ---- answering with a job ---- */

static void respond_doc(struct http_req *req, unsigned status, char *doc) {
    http_respond_buf(req, status, "application/json", doc, strlen(doc));
}

/*
 * Answer with job jr->num once it has ended, or when the deadline passes, or
 * at once when there is no wait. Suspends the request otherwise.
 */
static void answer_job(struct http_req *req, struct job_req *jr, unsigned status) {
    char *doc = NULL;
    bool final = false;
    int armed = 1;
    int rc;

    if (jr->wait > 0 && !http_req_expired(req))
        armed = sched_watch_job(jr->s, &jr->watch, jr->num);
    rc = sched_get_doc(jr->s, jr->num, &doc, &final);
    if (rc < 0) {
        sched_unwatch(jr->s, &jr->watch);
        if (rc == -ENOENT) {
            char id[JOBD_MAX_ID_BYTES];
            jobd_format_id(jr->num, id, sizeof id);
            not_found(req, id);
        } else {
            api_internal(req, rc);
        }
        return;
    }
    if (final || armed != 0 || http_req_expired(req)) {
        sched_unwatch(jr->s, &jr->watch);
        if (status == 201) {
            char loc[96];
            char id[JOBD_MAX_ID_BYTES];
            jobd_format_id(jr->num, id, sizeof id);
            snprintf(loc, sizeof loc, "/v1/jobs/%s", id);
            http_add_header(req, "Location", loc);
        }
        respond_doc(req, status, doc);
        return;
    }
    free(doc);
    if (jr->phase != PH_WAIT) {
        jr->phase = PH_WAIT;
        http_wake_at(req, jr->deadline);
    }
    http_suspend(req);
}

/* ---- POST /v1/jobs ---- */

static bool idem_key_ok(const char *k) {
    size_t n = strlen(k);

    if (n == 0 || n > MAX_IDEM_KEY)
        return false;
    for (; *k; k++)
        if (*k < 0x21 || *k > 0x7e)
            return false;
    return true;
}

static void create_first(struct http_req *req, struct job_req *jr) {
    struct jobd_spec spec;
    struct jobd_error err;
    json_error_t jerr;
    const char *key = http_header(req, "Idempotency-Key");
    size_t len;
    const char *body = http_body(req, &len);
    json_t *in;
    int rc;

    if (param_seconds(req, "wait", MAX_WAIT_S, &jr->wait) < 0)
        return;
    if (key && !idem_key_ok(key)) {
        http_problem(req, 400, "invalid-header", "Invalid header", "Idempotency-Key",
                     "Idempotency-Key: must be 1 to %d printable ASCII characters", MAX_IDEM_KEY);
        return;
    }
    if (len == 0) {
        http_problem(req, 400, "invalid-json", "Malformed JSON", NULL,
                     "the body is empty; send a job spec as a JSON object");
        return;
    }
    in = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!in) {
        http_problem(req, 400, "invalid-json", "Malformed JSON", NULL, "line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        return;
    }
    rc = jobd_spec_parse(in, &spec, &err);
    json_decref(in);
    if (rc < 0) {
        if (err.field[0])
            http_problem(req, 400, "invalid-spec", "Invalid job spec", err.field, "%s: %s",
                         err.field, err.message);
        else
            http_problem(req, 400, "invalid-spec", "Invalid job spec", NULL, "%s", err.message);
        return;
    }
    if (api_check_spec(app_of(req)->cfg, &spec, &err) < 0) {
        http_problem(req, 400, "invalid-spec", "Invalid job spec", err.field, "%s: %s", err.field,
                     err.message);
        jobd_spec_free(&spec);
        return;
    }
    jr->deadline = jobd_mono_ms() + (int64_t)(jr->wait * 1000);
    rc = sched_submit(jr->s, &spec, key, &jr->num, on_sched_done, jr);
    switch (rc) {
    case 0:
        jr->phase = PH_COMMIT;
        jr->created = true;
        http_suspend(req);
        return;
    case 1:
        jr->created = false;
        answer_job(req, jr, 200);
        return;
    case -EAGAIN:
        http_add_header(req, "Retry-After", "1");
        http_problem(req, 429, "queue-full", "Too many queued jobs", NULL,
                     "the queue holds --max-queued=%d jobs; retry later",
                     app_of(req)->cfg->max_queued);
        return;
    case -ESHUTDOWN:
        http_add_header(req, "Retry-After", "5");
        http_problem(req, 503, "shutting-down", "Service unavailable", NULL,
                     "jobd is shutting down");
        return;
    case -EEXIST:
        http_problem(req, 409, "idempotency-conflict", "Conflict", "Idempotency-Key",
                     "Idempotency-Key: this key was used for a different job spec");
        return;
    case -EBUSY:
        /*
         * The first request with this key is being committed right now (a
         * matter of milliseconds): look again shortly, then answer like it.
         */
        if (http_shutting_down(req) || jr->retries >= 2000) {
            http_add_header(req, "Retry-After", "1");
            http_problem(req, 409, "idempotency-in-progress", "Conflict", "Idempotency-Key",
                         "Idempotency-Key: the first request with this key is still being "
                         "stored");
            return;
        }
        jr->retries++;
        http_wake_at(req, jobd_mono_ms() + 5);
        http_suspend(req);
        return;
    default:
        api_internal(req, rc);
    }
}

void api_jobs_create(struct http_req *req) {
    struct job_req *jr = job_req_get(req);

    if (!jr) {
        api_internal(req, -ENOMEM);
        return;
    }
    switch (jr->phase) {
    case PH_START:
        create_first(req, jr);
        return;
    case PH_COMMIT:
        if (!jr->done) {
            http_suspend(req);
            return;
        }
        if (jr->status < 0) {
            http_add_header(req, "Retry-After", "5");
            http_problem(req, 503, "store-unavailable", "Service unavailable", NULL,
                         "the job could not be stored (%s); nothing was accepted",
                         store_strerror(jr->status));
            return;
        }
        answer_job(req, jr, jr->created ? 201 : 200);
        return;
    default:
        answer_job(req, jr, jr->created ? 201 : 200);
    }
}

/* ---- GET /v1/jobs/{id} ---- */

/* The job number of the path's id, or -1 after answering 404. */
static int64_t path_num(struct http_req *req) {
    int64_t num = jobd_parse_id(http_param(req, 0));

    if (num <= 0)
        not_found(req, http_param(req, 0));
    return num;
}

void api_jobs_get(struct http_req *req) {
    struct job_req *jr = job_req_get(req);

    if (!jr) {
        api_internal(req, -ENOMEM);
        return;
    }
    if (jr->phase == PH_START) {
        jr->num = path_num(req);
        if (jr->num <= 0)
            return;
        if (param_seconds(req, "wait", MAX_WAIT_S, &jr->wait) < 0)
            return;
        jr->deadline = jobd_mono_ms() + (int64_t)(jr->wait * 1000);
    }
    answer_job(req, jr, 200);
}

/* ---- POST /v1/jobs/{id}/cancel ---- */

void api_jobs_cancel(struct http_req *req) {
    struct job_req *jr = job_req_get(req);
    int rc;

    if (!jr) {
        api_internal(req, -ENOMEM);
        return;
    }
    if (jr->phase == PH_START) {
        jr->num = path_num(req);
        if (jr->num <= 0)
            return;
        rc = sched_cancel(jr->s, jr->num, on_sched_done, jr);
        if (rc == 0) {
            jr->phase = PH_COMMIT;
            http_suspend(req);
            return;
        }
        if (rc == -ENOENT) {
            not_found(req, http_param(req, 0));
            return;
        }
        if (rc == -EALREADY) {
            http_problem(req, 409, "already-ended", "Conflict", NULL, "job %s has already ended",
                         http_param(req, 0));
            return;
        }
        if (rc < 0) {
            api_internal(req, rc);
            return;
        }
    } else if (!jr->done) {
        http_suspend(req);
        return;
    }
    answer_job(req, jr, 202);
}

/* ---- DELETE /v1/jobs/{id} ---- */

void api_jobs_delete(struct http_req *req) {
    struct job_req *jr = job_req_get(req);
    int rc;

    if (!jr) {
        api_internal(req, -ENOMEM);
        return;
    }
    if (jr->phase == PH_START) {
        jr->num = path_num(req);
        if (jr->num <= 0)
            return;
        rc = sched_delete(jr->s, jr->num, on_sched_done, jr);
        if (rc == -ENOENT) {
            not_found(req, http_param(req, 0));
        } else if (rc == -EBUSY) {
            http_problem(req, 409, "still-active", "Conflict", NULL,
                         "job %s is still queued or running; cancel it first", http_param(req, 0));
        } else if (rc < 0) {
            api_internal(req, rc);
        } else {
            jr->phase = PH_COMMIT;
            http_suspend(req);
        }
        return;
    }
    if (!jr->done) {
        http_suspend(req);
        return;
    }
    if (jr->status < 0)
        http_problem(req, 503, "store-unavailable", "Service unavailable", NULL,
                     "the job could not be removed (%s)", store_strerror(jr->status));
    else
        http_respond_empty(req, 204);
}

/* ---- GET /v1/jobs/{id}/stdout, /stderr ---- */

/*
 * The output of an ended job: from its row when it was small, else from its
 * file. Loads the row's copy once per request. Return 0, or -ENOENT when the
 * job is gone.
 */
static int ended_output(struct job_req *jr, struct store *st) {
    int rc;

    if (jr->ended_loaded)
        return 0;
    rc = store_get_output(st, jr->num, jr->stream, &jr->ended_out, &jr->ended_len);
    if (rc < 0)
        return rc;
    jr->ended_loaded = true;
    return 0;
}

/* Copy what an ended job has at `off`: a count, 0 at the end, or a negative errno. */
static ssize_t read_ended(struct job_req *jr, struct app *app, int64_t off, char *buf, size_t max) {
    char id[JOBD_MAX_ID_BYTES];
    int rc = ended_output(jr, app->store);

    if (rc < 0)
        return rc == -ENOENT ? 0 : rc;
    if (jr->ended_out) {
        if (off < 0 || (uint64_t)off >= jr->ended_len)
            return 0;
        size_t k = jr->ended_len - (size_t)off < max ? jr->ended_len - (size_t)off : max;
        memcpy(buf, jr->ended_out + off, k);
        return (ssize_t)k;
    }
    jobd_format_id(jr->num, id, sizeof id);
    return output_read(app->out_dir, id, jr->stream, off, buf, max);
}

static ssize_t follow_read(struct http_req *req, void *arg, uint64_t pos, char *buf, size_t max) {
    struct job_req *jr = arg;
    struct app *app = app_of(req);
    char id[JOBD_MAX_ID_BYTES];
    int64_t off = jr->offset + (int64_t)pos;
    int64_t readable;
    bool ended;
    ssize_t n;

    if (sched_watch_job(jr->s, &jr->watch, jr->num) == 0 &&
        sched_output_read(jr->s, jr->num, jr->stream, off, buf, max, &n, &readable, &ended) == 0) {
        /* Active: held in memory (n >= 0), or in the file up to readable (n == -1). */
        if (n > 0) {
            sched_unwatch(jr->s, &jr->watch);
            return n;
        }
        if (n < 0 && off < readable) {
            size_t want = (size_t)(readable - off) < max ? (size_t)(readable - off) : max;
            sched_unwatch(jr->s, &jr->watch);
            jobd_format_id(jr->num, id, sizeof id);
            n = output_read(app->out_dir, id, jr->stream, off, buf, want);
            return n > 0 ? n : n == 0 ? HTTP_STREAM_END : -1;
        }
        if (!ended && !http_shutting_down(req))
            return 0; /* the watch wakes us when it grows or ends */
    }
    /* Ended (or shutting down): what is there, then the end. */
    sched_unwatch(jr->s, &jr->watch);
    n = read_ended(jr, app, off, buf, max);
    return n > 0 ? n : n == 0 ? HTTP_STREAM_END : -1;
}

static void output_handler(struct http_req *req, int stream) {
    struct job_req *jr = job_req_get(req);
    struct app *app;
    char *doc = NULL;
    bool final = false, follow;
    char id[JOBD_MAX_ID_BYTES];
    char path[4200];
    int64_t readable, size;
    bool ended;
    int rc, fd;

    if (!jr) {
        api_internal(req, -ENOMEM);
        return;
    }
    app = app_of(req);
    jr->num = path_num(req);
    if (jr->num <= 0)
        return;
    jr->stream = stream;
    if (param_int(req, "offset", 0, INT64_MAX, 0, &jr->offset) < 0 ||
        param_bool(req, "follow", &follow) < 0)
        return;
    rc = sched_get_doc(jr->s, jr->num, &doc, &final);
    free(doc);
    if (rc == -ENOENT) {
        not_found(req, http_param(req, 0));
        return;
    }
    if (rc < 0) {
        api_internal(req, rc);
        return;
    }
    if (follow) {
        jr->phase = PH_STREAM;
        /* The stream's state is jr itself, freed with the request. */
        http_respond_stream(req, 200, "application/octet-stream", follow_read, jr, NULL);
        return;
    }
    jobd_format_id(jr->num, id, sizeof id);
    {
        /* A small stream is answered from memory: the job's, or its row's. */
        char *mem = malloc(OUTPUT_INLINE_MAX);
        ssize_t n = -1;
        if (!mem) {
            api_internal(req, -ENOMEM);
            return;
        }
        rc = sched_output_read(jr->s, jr->num, stream, jr->offset, mem, OUTPUT_INLINE_MAX, &n,
                               &readable, &ended);
        if (rc == -ENOENT) {
            if (ended_output(jr, app->store) == 0 && jr->ended_out) {
                n = 0;
                if ((uint64_t)jr->offset < jr->ended_len) {
                    n = (ssize_t)(jr->ended_len - (size_t)jr->offset);
                    memcpy(mem, jr->ended_out + jr->offset, (size_t)n);
                }
            }
            readable = output_size(app->out_dir, id, stream);
        }
        if (n >= 0) {
            http_respond_buf(req, 200, "application/octet-stream", mem, (size_t)n);
            return;
        }
        free(mem);
    }
    fd = -1;
    if (jr->offset < readable && output_path(app->out_dir, id, stream, path, sizeof path) == 0)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* Past the end, nothing written, or removed under us: an empty answer. */
        http_respond_buf(req, 200, "application/octet-stream", NULL, 0);
        return;
    }
    size = readable - jr->offset;
    http_respond_fd(req, 200, "application/octet-stream", fd, (uint64_t)jr->offset, (uint64_t)size);
}

void api_jobs_stdout(struct http_req *req) {
    output_handler(req, OUTPUT_STDOUT);
}

void api_jobs_stderr(struct http_req *req) {
    output_handler(req, OUTPUT_STDERR);
}

/* ---- GET /v1/jobs ---- */

/* A growing JSON text: the listing is built by joining stored documents. */
struct strbuf {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct strbuf *sb, const char *s, size_t n) {
    if (sb->oom)
        return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 4096;
        while (cap < sb->len + n + 1)
            cap *= 2;
        char *nb = realloc(sb->buf, cap);
        if (!nb) {
            sb->oom = true;
            return;
        }
        sb->buf = nb;
        sb->cap = cap;
    }
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_str(struct strbuf *sb, const char *s) {
    sb_add(sb, s, strlen(s));
}

struct list_walk {
    struct strbuf *sb;
    int count;
    int limit; /* rows to emit; one more row only tells that a next page exists */
    int64_t last_num, last_seq;
    bool more;
};

static int list_row(void *arg, const struct store_row *row) {
    struct list_walk *w = arg;

    if (w->count == w->limit) {
        w->more = true;
        return 1;
    }
    if (w->count++)
        sb_str(w->sb, ",");
    sb_str(w->sb, row->doc);
    w->last_num = row->num;
    w->last_seq = row->seq;
    return 0;
}

/* Parse the listing filters into q. Return 0, or -1 after answering 400. */
static int list_filters(struct http_req *req, struct store_query *q, enum jobd_state *states,
                        char *label_key, size_t klen) {
    const char *v;
    int64_t limit;

    if (param_int(req, "limit", 1, MAX_LIMIT, DEFAULT_LIMIT, &limit) < 0)
        return -1;
    q->limit = (int)limit;
    v = http_query(req, "state");
    if (v) {
        char buf[256];
        char *save = NULL;
        snprintf(buf, sizeof buf, "%s", v);
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (q->n_states == JOBD_STATE_COUNT || jobd_state_parse(t, &states[q->n_states]) < 0) {
                http_problem(req, 400, "invalid-parameter", "Invalid parameter", "state",
                             "state: must be a comma-separated list of queued, running, "
                             "succeeded, failed, cancelled, timed_out");
                return -1;
            }
            q->n_states++;
        }
        if (q->n_states == 0) {
            http_problem(req, 400, "invalid-parameter", "Invalid parameter", "state",
                         "state: must name at least one state");
            return -1;
        }
        q->states = states;
    }
    q->name = http_query(req, "name");
    q->batch = http_query(req, "batch");
    v = http_query(req, "label");
    if (v) {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v || (size_t)(eq - v) >= klen) {
            http_problem(req, 400, "invalid-parameter", "Invalid parameter", "label",
                         "label: must be KEY=VALUE");
            return -1;
        }
        memcpy(label_key, v, (size_t)(eq - v));
        label_key[eq - v] = '\0';
        q->label_key = label_key;
        q->label_value = eq + 1;
    }
    v = http_query(req, "cursor");
    if (v) {
        q->before_num = jobd_parse_id(v);
        if (q->before_num <= 0) {
            http_problem(req, 400, "invalid-parameter", "Invalid parameter", "cursor",
                         "cursor: must be a next_cursor value from an earlier page");
            return -1;
        }
    }
    return 0;
}

static void list_answer(struct http_req *req, struct job_req *jr, const struct store_query *q) {
    struct strbuf sb = {0};
    struct list_walk w = {.sb = &sb, .limit = q->limit};
    int64_t pub = sched_published_seq(jr->s);
    char tail[128];
    char cursor[JOBD_MAX_ID_BYTES];
    int rc;

    /* Ask for one row more than the page to learn whether another page follows. */
    struct store_query qq = *q;
    qq.limit = q->limit + 1;
    sb_str(&sb, "{\"jobs\":[");
    rc = store_query(app_of(req)->store, &qq, list_row, &w);
    if (rc < 0 && rc != -ENOENT) {
        free(sb.buf);
        api_internal(req, rc);
        return;
    }
    if (q->by_seq) {
        if (w.count == 0 && !http_req_expired(req) && jr->wait > 0) {
            /* Nothing yet: wait for the next published change. */
            free(sb.buf);
            if (sched_watch_seq(jr->s, &jr->watch, pub) == 1) {
                http_suspend(req);
                http_wake(req);
                return;
            }
            if (jr->phase != PH_WAIT) {
                jr->phase = PH_WAIT;
                http_wake_at(req, jr->deadline);
            }
            http_suspend(req);
            return;
        }
        sched_unwatch(jr->s, &jr->watch);
        snprintf(tail, sizeof tail, "],\"next_cursor\":null,\"seq\":%lld}",
                 (long long)(w.count ? w.last_seq : (pub > jr->since ? pub : jr->since)));
    } else if (w.more) {
        jobd_format_id(w.last_num, cursor, sizeof cursor);
        snprintf(tail, sizeof tail, "],\"next_cursor\":\"%s\",\"seq\":%lld}", cursor,
                 (long long)pub);
    } else {
        snprintf(tail, sizeof tail, "],\"next_cursor\":null,\"seq\":%lld}", (long long)pub);
    }
    sb_str(&sb, tail);
    if (sb.oom) {
        free(sb.buf);
        api_internal(req, -ENOMEM);
        return;
    }
    http_respond_buf(req, 200, "application/json", sb.buf, sb.len);
}

void api_jobs_list(struct http_req *req) {
    struct job_req *jr = job_req_get(req);
    struct store_query q;
    enum jobd_state states[JOBD_STATE_COUNT];
    char label_key[JOBD_MAX_LABEL_KEY + 1];

    if (!jr) {
        api_internal(req, -ENOMEM);
        return;
    }
    memset(&q, 0, sizeof q);
    if (list_filters(req, &q, states, label_key, sizeof label_key) < 0)
        return;
    if (http_query(req, "since")) {
        if (param_int(req, "since", 0, INT64_MAX, 0, &jr->since) < 0)
            return;
        if (http_query(req, "cursor")) {
            http_problem(req, 400, "invalid-parameter", "Invalid parameter", "cursor",
                         "cursor: cannot be combined with since");
            return;
        }
        q.by_seq = true;
        q.since_seq = jr->since;
        if (jr->phase == PH_START) {
            if (param_seconds(req, "wait", MAX_WAIT_S, &jr->wait) < 0)
                return;
            jr->deadline = jobd_mono_ms() + (int64_t)(jr->wait * 1000);
        }
    } else if (http_query(req, "wait")) {
        http_problem(req, 400, "invalid-parameter", "Invalid parameter", "wait",
                     "wait: only applies to a blocking query with since");
        return;
    }
    list_answer(req, jr, &q);
}
