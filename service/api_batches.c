/*
 * api_batches.c: /v1/batches: many jobs in one request and one transaction,
 * at most `concurrency` of them running at a time.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "jobd/spec.h"
#include "jobd/util.h"
#include "scheduler.h"
#include "store.h"

#define MAX_WAIT_S      300
#define MAX_CONCURRENCY 100000
#define MAX_BATCH_NAME  JOBD_MAX_NAME_BYTES

struct batch_req {
    struct http_req *req;
    struct sched *s;
    struct sched_watch watch;
    int64_t num;
    double wait;
    int64_t deadline;
    bool committing, done, waiting;
    int status;
    unsigned answer_status;
};

static void batch_req_free(void *arg) {
    struct batch_req *br = arg;

    sched_unwatch(br->s, &br->watch);
    free(br);
}

static struct batch_req *batch_req_get(struct http_req *req) {
    struct batch_req *br = http_state(req);
    struct app *app = http_app(req);

    if (br)
        return br;
    br = calloc(1, sizeof *br);
    if (!br)
        return NULL;
    br->req = req;
    br->s = app->sched;
    sched_watch_init(&br->watch, api_wake, req);
    http_set_state(req, br, batch_req_free);
    return br;
}

static void on_committed(void *arg, int status) {
    struct batch_req *br = arg;

    br->status = status;
    br->done = true;
    http_wake(br->req);
}

/* Answer with the batch document, now or (with a wait) once all its jobs have ended. */
static void answer_batch(struct http_req *req, struct batch_req *br) {
    json_t *doc = NULL;
    int armed = 1;
    int rc;

    if (br->wait > 0 && !http_req_expired(req)) {
        armed = sched_watch_batch(br->s, &br->watch, br->num);
        if (armed == 0) {
            if (!br->waiting) {
                br->waiting = true;
                http_wake_at(req, br->deadline);
            }
            http_suspend(req);
            return;
        }
    }
    sched_unwatch(br->s, &br->watch);
    rc = sched_get_batch(br->s, br->num, &doc);
    if (rc == -ENOENT) {
        char id[JOBD_MAX_ID_BYTES];
        sched_format_batch_id(br->num, id, sizeof id);
        http_problem(req, 404, "not-found", "Not found", NULL, "no batch %s", id);
        return;
    }
    if (rc < 0) {
        api_internal(req, rc);
        return;
    }
    if (br->answer_status == 201) {
        char loc[96];
        snprintf(loc, sizeof loc, "/v1/batches/%s", json_string_value(json_object_get(doc, "id")));
        http_add_header(req, "Location", loc);
    }
    http_respond_json(req, br->answer_status ? br->answer_status : 200, doc);
}

static int param_wait(struct http_req *req, struct batch_req *br) {
    const char *v = http_query(req, "wait");
    char *end;

    br->wait = 0;
    if (v) {
        errno = 0;
        br->wait = strtod(v, &end);
        if (errno || end == v || *end || !(br->wait >= 0 && br->wait <= MAX_WAIT_S)) {
            http_problem(req, 400, "invalid-parameter", "Invalid parameter", "wait",
                         "wait: must be a number of seconds from 0 to %d", MAX_WAIT_S);
            return -1;
        }
    }
    br->deadline = jobd_mono_ms() + (int64_t)(br->wait * 1000);
    return 0;
}

static void bad_body(struct http_req *req, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_body(struct http_req *req, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field && *field)
        http_problem(req, 400, "invalid-spec", "Invalid batch", field, "%s: %s", field, msg);
    else
        http_problem(req, 400, "invalid-spec", "Invalid batch", NULL, "%s", msg);
}

/* Parse and submit. Returns after answering, or after http_suspend. */
static void create_first(struct http_req *req, struct batch_req *br) {
    size_t len, n, i;
    const char *body = http_body(req, &len);
    json_error_t jerr;
    json_t *in, *jobs, *v;
    const char *key;
    struct jobd_spec *specs = NULL;
    struct jobd_error err;
    int concurrency;
    const char *name = NULL;
    int rc;

    if (param_wait(req, br) < 0)
        return;
    in = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!in) {
        http_problem(req, 400, "invalid-json", "Malformed JSON", NULL, "line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        return;
    }
    if (!json_is_object(in)) {
        bad_body(req, NULL, "the body must be an object {\"jobs\": [spec, ...], ...}");
        goto out;
    }
    for (void *it = json_object_iter(in); it; it = json_object_iter_next(in, it)) {
        key = json_object_iter_key(it);
        /* A key with a NUL in it ("jobs\u0000x") is none of ours. */
        if ((strcmp(key, "jobs") != 0 && strcmp(key, "concurrency") != 0 &&
             strcmp(key, "name") != 0) ||
            strlen(key) != json_object_iter_key_len(it)) {
            bad_body(req, key, "unknown field");
            goto out;
        }
    }
    jobs = json_object_get(in, "jobs");
    if (!json_is_array(jobs) || json_array_size(jobs) == 0) {
        bad_body(req, "jobs", "must be a non-empty array of job specs");
        goto out;
    }
    n = json_array_size(jobs);
    if (n > SCHED_MAX_BATCH) {
        bad_body(req, "jobs", "must hold at most %d job specs", SCHED_MAX_BATCH);
        goto out;
    }
    concurrency = (int)n;
    v = json_object_get(in, "concurrency");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > MAX_CONCURRENCY) {
            bad_body(req, "concurrency", "must be an integer from 1 to %d", MAX_CONCURRENCY);
            goto out;
        }
        concurrency = (int)json_integer_value(v);
    }
    v = json_object_get(in, "name");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > MAX_BATCH_NAME ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            bad_body(req, "name", "must be a string of 1 to %d bytes", MAX_BATCH_NAME);
            goto out;
        }
        name = json_string_value(v);
    }
    specs = calloc(n, sizeof *specs);
    if (!specs) {
        api_internal(req, -ENOMEM);
        goto out;
    }
    for (i = 0; i < n; i++) {
        jobd_spec_init(&specs[i]);
        rc = jobd_spec_parse(json_array_get(jobs, i), &specs[i], &err);
        if (rc == 0)
            rc = api_check_spec(((struct app *)http_app(req))->cfg, &specs[i], &err);
        if (rc < 0) {
            char field[160];
            if (err.field[0])
                snprintf(field, sizeof field, "jobs[%zu].%s", i, err.field);
            else
                snprintf(field, sizeof field, "jobs[%zu]", i);
            bad_body(req, field, "%s", err.message);
            for (size_t k = 0; k <= i; k++)
                jobd_spec_free(&specs[k]);
            goto out;
        }
    }
    rc = sched_submit_batch(br->s, specs, n, concurrency, name, &br->num, on_committed, br);
    switch (rc) {
    case 0:
        br->committing = true;
        br->answer_status = 201;
        http_suspend(req);
        break;
    case -EAGAIN:
        http_add_header(req, "Retry-After", "1");
        http_problem(req, 429, "queue-full", "Too many queued jobs", NULL,
                     "the queue has no room for %zu more jobs (--max-queued=%d); retry later", n,
                     ((struct app *)http_app(req))->cfg->max_queued);
        break;
    case -ESHUTDOWN:
        http_add_header(req, "Retry-After", "5");
        http_problem(req, 503, "shutting-down", "Service unavailable", NULL,
                     "jobd is shutting down");
        break;
    default:
        api_internal(req, rc);
    }
out:
    free(specs);
    json_decref(in);
}

void api_batches_create(struct http_req *req) {
    struct batch_req *br = batch_req_get(req);

    if (!br) {
        api_internal(req, -ENOMEM);
        return;
    }
    if (!br->committing) {
        create_first(req, br);
        return;
    }
    if (!br->done) {
        http_suspend(req);
        return;
    }
    if (br->status < 0) {
        http_add_header(req, "Retry-After", "5");
        http_problem(req, 503, "store-unavailable", "Service unavailable", NULL,
                     "the batch could not be stored (%s); nothing was accepted",
                     store_strerror(br->status));
        return;
    }
    answer_batch(req, br);
}

static int64_t path_batch(struct http_req *req) {
    int64_t num = sched_parse_batch_id(http_param(req, 0));

    if (num <= 0)
        http_problem(req, 404, "not-found", "Not found", NULL, "no batch %s", http_param(req, 0));
    return num;
}

void api_batches_get(struct http_req *req) {
    struct batch_req *br = batch_req_get(req);

    if (!br) {
        api_internal(req, -ENOMEM);
        return;
    }
    if (http_first_call(req)) {
        br->num = path_batch(req);
        if (br->num <= 0 || param_wait(req, br) < 0)
            return;
    }
    answer_batch(req, br);
}

void api_batches_cancel(struct http_req *req) {
    struct batch_req *br = batch_req_get(req);

    if (!br) {
        api_internal(req, -ENOMEM);
        return;
    }
    br->num = path_batch(req);
    if (br->num <= 0)
        return;
    sched_cancel_batch(br->s, br->num);
    br->answer_status = 202;
    answer_batch(req, br);
}
