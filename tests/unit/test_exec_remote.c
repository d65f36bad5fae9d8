/*
 * test_exec_remote.c: the remote executor (service/exec_remote.c).
 *
 * The pure helpers (exec_remote_node_spec, exec_remote_parse_doc,
 * exec_remote_parse_list) are tested as tables of documents; the executor
 * thread is tested against a fake node: a libmicrohttpd daemon on
 * 127.0.0.1, port 0, in this process, that keeps a few jobs in memory,
 * answers the node API the executor uses (POST /v1/jobs with
 * Idempotency-Key, blocking GET /v1/jobs?since=, GET /v1/jobs/{id},
 * /stdout and /stderr, POST /cancel), records what it was asked, and
 * misbehaves on request (503s, a 400, garbage polls). The test changes a
 * job's state on the fake and checks what the callbacks report.
 *
 * Every wait is bounded (WAIT_MS); callbacks record under a mutex.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "exec_remote.h"
#include "jobd/util.h"
#include "output.h"

#define WAIT_MS 5000
#define COORD   "n0123456789abcdef"
#define TOKEN   "sekrit-token"
#define T_START "2026-01-02T03:04:05.678Z"
#define T_END   "2026-01-02T03:04:07.001Z"

/* ---- the fake node ---- */

struct fjob {
    char rid[16];
    char coord[64], job[64], attempt[16];
    char state[16];
    int exit_code; /* -1: null */
    char signal[16];
    char error[128];
    char out[2][256];
    int64_t seq;
    char key[160];
};

struct fake {
    struct MHD_Daemon *d;
    char url[64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fjob jobs[16];
    int njobs;
    int64_t seq;
    /* script */
    int post_fail;         /* answer 503 to this many POSTs first */
    int post_status;       /* answer every POST with this status and a problem */
    const char *new_state; /* state of a new job */
    const char *new_out;   /* its stdout */
    bool garbage;          /* poll answers are garbage */
    bool cancel_ends;      /* a cancel makes the job cancelled */
    /* log */
    int posts;
    char keys[8][160];
    char auth[128];
    int polls, first_polls;
    int cancels;
    char cancel_rid[8][16];
    int outs;
};

struct conn {
    char *body;
    size_t len;
};

static void fake_bump(struct fake *f, struct fjob *j) {
    j->seq = ++f->seq;
    pthread_cond_broadcast(&f->cv);
}

static json_t *fake_doc(const struct fjob *j) {
    bool final = strcmp(j->state, "queued") != 0 && strcmp(j->state, "running") != 0;
    return json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, "
                     "s:b, s:b, s:I}",
                     "id", j->rid, "state", j->state, "labels", "jobd.coordinator", j->coord,
                     "jobd.job", j->job, "jobd.attempt", j->attempt, "exit_code",
                     j->exit_code >= 0 ? json_integer(j->exit_code) : json_null(), "signal",
                     j->signal[0] ? json_string(j->signal) : json_null(), "error",
                     j->error[0] ? json_string(j->error) : json_null(), "result",
                     final && strcmp(j->state, "succeeded") == 0 ? json_pack("{s:i}", "n", 42)
                                                                 : json_null(),
                     "started_at", json_string(T_START), "finished_at",
                     final ? json_string(T_END) : json_null(), "stdout_bytes",
                     (json_int_t)strlen(j->out[0]), "stderr_bytes", (json_int_t)strlen(j->out[1]),
                     "stdout_truncated", 0, "stderr_truncated", 0, "seq", (json_int_t)j->seq);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const char *body, size_t len) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok;

    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Reply with a JSON value (stolen). */
static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *v) {
    char *t = json_dumps(v, JSON_COMPACT);
    enum MHD_Result ok = reply(c, status, "application/json", t, strlen(t));

    free(t);
    json_decref(v);
    return ok;
}

static struct fjob *fake_find(struct fake *f, const char *rid) {
    for (int i = 0; i < f->njobs; i++)
        if (strcmp(f->jobs[i].rid, rid) == 0)
            return &f->jobs[i];
    return NULL;
}

static enum MHD_Result fake_post_job(struct fake *f, struct MHD_Connection *c, struct conn *cn) {
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    json_t *spec, *labels;
    struct fjob *j = NULL;

    if (f->posts < 8)
        snprintf(f->keys[f->posts], sizeof f->keys[0], "%s", key ? key : "");
    f->posts++;
    snprintf(f->auth, sizeof f->auth, "%s", auth ? auth : "");
    if (f->post_fail > 0) {
        f->post_fail--;
        return reply(c, 503, "application/problem+json", "{\"title\":\"busy\"}", 16);
    }
    if (f->post_status)
        return reply_json(c, (unsigned)f->post_status,
                          json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                                    "Bad Request", "status", f->post_status, "detail",
                                    "command: must be an array of strings"));
    for (int i = 0; key && i < f->njobs; i++)
        if (strcmp(f->jobs[i].key, key) == 0)
            return reply_json(c, 200, fake_doc(&f->jobs[i]));
    spec = json_loadb(cn->body ? cn->body : "", cn->len, 0, NULL);
    labels = json_object_get(spec, "labels");
    j = &f->jobs[f->njobs++];
    memset(j, 0, sizeof *j);
    snprintf(j->rid, sizeof j->rid, "r%d", f->njobs);
    snprintf(j->coord, sizeof j->coord, "%s",
             json_string_value(json_object_get(labels, "jobd.coordinator")) ?: "");
    snprintf(j->job, sizeof j->job, "%s",
             json_string_value(json_object_get(labels, "jobd.job")) ?: "");
    snprintf(j->attempt, sizeof j->attempt, "%s",
             json_string_value(json_object_get(labels, "jobd.attempt")) ?: "");
    snprintf(j->state, sizeof j->state, "%s", f->new_state ? f->new_state : "running");
    j->exit_code = strcmp(j->state, "succeeded") == 0 ? 0 : -1;
    snprintf(j->out[0], sizeof j->out[0], "%s", f->new_out ? f->new_out : "");
    snprintf(j->key, sizeof j->key, "%s", key ? key : "");
    json_decref(spec);
    fake_bump(f, j);
    return reply_json(c, 201, fake_doc(j));
}

static enum MHD_Result fake_list(struct fake *f, struct MHD_Connection *c) {
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    const char *wait = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    const char *label = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "label");
    static const char *const garbage[] = {"not json",
                                          "{\"jobs\":5,\"seq\":1}",
                                          "{\"jobs\":[],\"seq\":-1}",
                                          "[1,2,3]",
                                          "{\"jobs\":[{\"id\":\"r1\",\"state\":\"running\"}]",
                                          "{\"seq\":7}",
                                          ""};
    json_t *jobs;
    int64_t s;

    if (!since) {
        f->first_polls++;
    } else {
        f->polls++;
    }
    if (f->garbage) {
        const char *g = garbage[(f->polls + f->first_polls) % 7];
        return reply(c, 200, "application/json", g, strlen(g));
    }
    if (!label || strcmp(label, "jobd.coordinator=" COORD) != 0)
        return reply(c, 400, "text/plain", "bad label", 9);
    if (!since)
        return reply_json(c, 200, json_pack("{s:[], s:I}", "jobs", "seq", (json_int_t)f->seq));
    s = atoll(since);
    /* A short blocking query: at most 300 ms, whatever wait says. */
    if (wait && f->seq <= s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 300 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (f->seq <= s && !f->garbage)
            if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) != 0)
                break;
    }
    jobs = json_array();
    for (int i = 0; i < f->njobs; i++)
        if (f->jobs[i].seq > s && strcmp(f->jobs[i].coord, COORD) == 0)
            json_array_append_new(jobs, fake_doc(&f->jobs[i]));
    return reply_json(
        c, 200,
        json_pack("{s:o, s:I}", "jobs", jobs, "seq", (json_int_t)(f->seq > s ? f->seq : s)));
}

static enum MHD_Result fake_handle(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **con_cls) {
    struct fake *f = cls;
    struct conn *cn = *con_cls;
    char rid[16], what[16];
    enum MHD_Result ok;

    (void)version;
    if (!cn) {
        *con_cls = calloc(1, sizeof *cn);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*upload_size) {
        cn->body = realloc(cn->body, cn->len + *upload_size);
        memcpy(cn->body + cn->len, upload_data, *upload_size);
        cn->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&f->mu);
    if (strcmp(method, "POST") == 0 && strcmp(url, "/v1/jobs") == 0) {
        ok = fake_post_job(f, c, cn);
    } else if (strcmp(method, "GET") == 0 && strcmp(url, "/v1/jobs") == 0) {
        ok = fake_list(f, c);
    } else if (sscanf(url, "/v1/jobs/%15[^/]/%15s", rid, what) == 2) {
        struct fjob *j = fake_find(f, rid);
        if (!j) {
            ok = reply(c, 404, "application/problem+json", "{}", 2);
        } else if (strcmp(method, "POST") == 0 && strcmp(what, "cancel") == 0) {
            if (f->cancels < 8)
                snprintf(f->cancel_rid[f->cancels], sizeof f->cancel_rid[0], "%s", rid);
            f->cancels++;
            if (f->cancel_ends && strcmp(j->state, "running") == 0) {
                snprintf(j->state, sizeof j->state, "cancelled");
                snprintf(j->signal, sizeof j->signal, "SIGTERM");
                fake_bump(f, j);
            }
            ok = reply_json(c, 202, fake_doc(j));
        } else if (strcmp(what, "stdout") == 0 || strcmp(what, "stderr") == 0) {
            const char *o = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "offset");
            const char *out = j->out[what[3] == 'e' ? 1 : 0];
            size_t off = o ? (size_t)atoll(o) : 0;
            f->outs++;
            if (off > strlen(out))
                off = strlen(out);
            ok = reply(c, 200, "application/octet-stream", out + off, strlen(out) - off);
        } else {
            ok = reply(c, 404, "application/problem+json", "{}", 2);
        }
    } else if (strcmp(method, "GET") == 0 && sscanf(url, "/v1/jobs/%15s", rid) == 1) {
        struct fjob *j = fake_find(f, rid);
        ok = j ? reply_json(c, 200, fake_doc(j))
               : reply(c, 404, "application/problem+json", "{\"detail\":\"no such job\"}", 24);
    } else {
        ok = reply(c, 404, "text/plain", "", 0);
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static void fake_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
    struct conn *cn = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (cn) {
        free(cn->body);
        free(cn);
    }
    *con_cls = NULL;
}

static struct fake *fake_start(void) {
    struct fake *f = calloc(1, sizeof *f);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    const union MHD_DaemonInfo *info;

    assert_non_null(f);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                            NULL, NULL, fake_handle, f, MHD_OPTION_SOCK_ADDR, &sa,
                            MHD_OPTION_NOTIFY_COMPLETED, fake_completed, f, MHD_OPTION_END);
    assert_non_null(f->d);
    info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u", (unsigned)info->port);
    return f;
}

static void fake_stop(struct fake *f) {
    pthread_mutex_lock(&f->mu);
    f->garbage = true; /* wakes blocked polls */
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    MHD_stop_daemon(f->d);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Add a job as if someone had submitted it. Return its index. */
static int fake_add(struct fake *f, const char *coord, const char *job, const char *attempt,
                    const char *state, const char *out) {
    pthread_mutex_lock(&f->mu);
    int i = f->njobs++;
    struct fjob *j = &f->jobs[i];
    memset(j, 0, sizeof *j);
    snprintf(j->rid, sizeof j->rid, "r%d", f->njobs);
    snprintf(j->coord, sizeof j->coord, "%s", coord);
    snprintf(j->job, sizeof j->job, "%s", job);
    snprintf(j->attempt, sizeof j->attempt, "%s", attempt);
    snprintf(j->state, sizeof j->state, "%s", state);
    j->exit_code = strcmp(state, "succeeded") == 0 ? 0 : -1;
    snprintf(j->out[0], sizeof j->out[0], "%s", out);
    fake_bump(f, j);
    pthread_mutex_unlock(&f->mu);
    return i;
}

/* End job i on the fake. */
static void fake_end(struct fake *f, int i, const char *state, int exit_code, const char *error,
                     const char *out, const char *err) {
    pthread_mutex_lock(&f->mu);
    struct fjob *j = &f->jobs[i];
    snprintf(j->state, sizeof j->state, "%s", state);
    j->exit_code = exit_code;
    snprintf(j->error, sizeof j->error, "%s", error ? error : "");
    snprintf(j->out[0], sizeof j->out[0], "%s", out);
    snprintf(j->out[1], sizeof j->out[1], "%s", err);
    fake_bump(f, j);
    pthread_mutex_unlock(&f->mu);
}

static void fake_touch(struct fake *f, int i) {
    pthread_mutex_lock(&f->mu);
    fake_bump(f, &f->jobs[i]);
    pthread_mutex_unlock(&f->mu);
}

/* Read an int field of the fake under its lock. */
#define FAKE_GET(f, field)                                                                         \
    ({                                                                                             \
        pthread_mutex_lock(&(f)->mu);                                                              \
        __typeof__((f)->field) v_ = (f)->field;                                                    \
        pthread_mutex_unlock(&(f)->mu);                                                            \
        v_;                                                                                        \
    })

/* Wait up to WAIT_MS for an expression over the fake's fields to hold. */
#define FAKE_WAIT(f, expr)                                                                         \
    ({                                                                                             \
        bool ok_ = false;                                                                          \
        for (int64_t end_ = jobd_mono_ms() + WAIT_MS; !ok_ && jobd_mono_ms() < end_;) {            \
            pthread_mutex_lock(&(f)->mu);                                                          \
            ok_ = (expr);                                                                          \
            pthread_mutex_unlock(&(f)->mu);                                                        \
            if (!ok_)                                                                              \
                usleep(10000);                                                                     \
        }                                                                                          \
        ok_;                                                                                       \
    })

/* ---- what the callbacks report ---- */

struct rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int dispatched;
    char rid[JOBD_MAX_ID_BYTES];
    int outputs;
    int exited;
    int exit_attempt;
    struct exec_result res;
    char out[2][1024];
    size_t out_len[2];
    char result[256];
    int refused;
    int ref_status;
    char detail[512];
    int seen;
};

static struct rec rec;

static void on_dispatched(void *ctx, int64_t num, int attempt, const char *rid) {
    (void)ctx;
    (void)num;
    (void)attempt;
    pthread_mutex_lock(&rec.mu);
    rec.dispatched++;
    snprintf(rec.rid, sizeof rec.rid, "%s", rid);
    pthread_cond_broadcast(&rec.cv);
    pthread_mutex_unlock(&rec.mu);
}

static void on_output(void *ctx, int64_t num, int attempt, int stream, int64_t readable,
                      const void *data, size_t len) {
    (void)ctx;
    (void)num;
    (void)attempt;
    (void)stream;
    (void)data;
    assert_true(readable >= 0);
    assert_true(data == NULL || (int64_t)len == readable);
    pthread_mutex_lock(&rec.mu);
    rec.outputs++;
    pthread_cond_broadcast(&rec.cv);
    pthread_mutex_unlock(&rec.mu);
}

static void on_exited(void *ctx, int64_t num, int attempt, const struct exec_result *res) {
    (void)ctx;
    (void)num;
    pthread_mutex_lock(&rec.mu);
    rec.exited++;
    rec.exit_attempt = attempt;
    rec.res = *res;
    rec.res.result_json = NULL;
    for (int i = 0; i < 2; i++) {
        rec.res.inline_out[i] = NULL;
        rec.out_len[i] = res->inline_len[i] < sizeof rec.out[i] ? res->inline_len[i] : 0;
        if (res->inline_out[i])
            memcpy(rec.out[i], res->inline_out[i], rec.out_len[i]);
    }
    snprintf(rec.result, sizeof rec.result, "%s", res->result_json ? res->result_json : "");
    pthread_cond_broadcast(&rec.cv);
    pthread_mutex_unlock(&rec.mu);
}

static void on_refused(void *ctx, int64_t num, int attempt, int status, const char *detail) {
    (void)ctx;
    (void)num;
    (void)attempt;
    pthread_mutex_lock(&rec.mu);
    rec.refused++;
    rec.ref_status = status;
    snprintf(rec.detail, sizeof rec.detail, "%s", detail);
    pthread_cond_broadcast(&rec.cv);
    pthread_mutex_unlock(&rec.mu);
}

static void on_seen(void *ctx, const char *node_id) {
    (void)ctx;
    assert_string_equal(node_id, "node1");
    pthread_mutex_lock(&rec.mu);
    rec.seen++;
    pthread_cond_broadcast(&rec.cv);
    pthread_mutex_unlock(&rec.mu);
}

#define REC_WAIT(expr)                                                                             \
    ({                                                                                             \
        bool ok_;                                                                                  \
        int64_t end_ = jobd_mono_ms() + WAIT_MS;                                                   \
        pthread_mutex_lock(&rec.mu);                                                               \
        while (!(ok_ = (expr)) && jobd_mono_ms() < end_) {                                         \
            struct timespec ts_;                                                                   \
            clock_gettime(CLOCK_REALTIME, &ts_);                                                   \
            ts_.tv_nsec += 20 * 1000000L;                                                          \
            if (ts_.tv_nsec >= 1000000000L) {                                                      \
                ts_.tv_sec++;                                                                      \
                ts_.tv_nsec -= 1000000000L;                                                        \
            }                                                                                      \
            pthread_cond_timedwait(&rec.cv, &rec.mu, &ts_);                                        \
        }                                                                                          \
        pthread_mutex_unlock(&rec.mu);                                                             \
        ok_;                                                                                       \
    })

#define REC_GET(field)                                                                             \
    ({                                                                                             \
        pthread_mutex_lock(&rec.mu);                                                               \
        __typeof__(rec.field) v_ = rec.field;                                                      \
        pthread_mutex_unlock(&rec.mu);                                                             \
        v_;                                                                                        \
    })

static const struct exec_remote_callbacks callbacks = {on_dispatched, on_output, on_exited,
                                                       on_refused, on_seen};

/* ---- fixture ---- */

struct fx {
    struct fake *f;
    struct exec_remote *er;
    char dir[64];
};

static int setup(void **state) {
    struct fx *x = calloc(1, sizeof *x);
    struct exec_remote_config cfg = {0};

    memset(&rec, 0, sizeof rec);
    pthread_mutex_init(&rec.mu, NULL);
    pthread_cond_init(&rec.cv, NULL);
    snprintf(x->dir, sizeof x->dir, "/tmp/test_exec_remote.XXXXXX");
    if (!mkdtemp(x->dir))
        return -1;
    x->f = fake_start();
    cfg.out_dir = x->dir;
    cfg.coordinator_id = COORD;
    cfg.cluster_token = TOKEN;
    cfg.poll_wait_s = 0.3;
    if (exec_remote_create(&cfg, &callbacks, NULL, &x->er) != 0)
        return -1;
    *state = x;
    return 0;
}

static int teardown(void **state) {
    struct fx *x = *state;
    char cmd[128];

    exec_remote_stop(x->er);
    exec_remote_destroy(x->er);
    fake_stop(x->f);
    snprintf(cmd, sizeof cmd, "rm -rf %s", x->dir);
    if (system(cmd) != 0)
        return -1;
    pthread_cond_destroy(&rec.cv);
    pthread_mutex_destroy(&rec.mu);
    free(x);
    return 0;
}

static char *node_spec_text(const char *job_id, int attempt) {
    json_t *spec = json_pack("{s:[s,s], s:s, s:i}", "command", "echo", "hi", "executor", "remote",
                             "retries", 2);
    char *t = exec_remote_node_spec(spec, COORD, job_id, attempt);

    json_decref(spec);
    assert_non_null(t);
    return t;
}

static void start_job(struct fx *x, int64_t num, int attempt) {
    struct exec_remote_run run = {0};
    char *spec;

    run.num = num;
    jobd_format_id(num, run.id, sizeof run.id);
    run.attempt = attempt;
    run.node_id = "node1";
    run.node_url = x->f->url;
    spec = node_spec_text(run.id, attempt);
    run.spec_json = spec;
    assert_int_equal(exec_remote_start(x->er, &run), 0);
    free(spec);
}

static int64_t epoch_ms(int y, int mo, int d, int h, int mi, int s, int ms) {
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- pure helpers ---- */

static void test_node_spec(void **state) {
    (void)state;
    json_t *spec =
        json_pack("{s:[s], s:s, s:{s:s}, s:{s:s}, s:i, s:f, s:[i], s:f}", "command", "true",
                  "executor", "remote", "node_selector", "gpu", "yes", "labels", "team", "infra",
                  "retries", 3, "retry_delay", 1.5, "retry_exit_codes", 2, "timeout", 10.0);
    char *t = exec_remote_node_spec(spec, COORD, "j2a", 7);
    json_t *o = json_loads(t, 0, NULL);

    assert_non_null(o);
    assert_null(json_object_get(o, "executor"));
    assert_null(json_object_get(o, "node_selector"));
    assert_null(json_object_get(o, "retries"));
    assert_null(json_object_get(o, "retry_delay"));
    assert_null(json_object_get(o, "retry_exit_codes"));
    assert_true(json_real_value(json_object_get(o, "timeout")) == 10.0);
    json_t *l = json_object_get(o, "labels");
    assert_string_equal(json_string_value(json_object_get(l, "team")), "infra");
    assert_string_equal(json_string_value(json_object_get(l, "jobd.coordinator")), COORD);
    assert_string_equal(json_string_value(json_object_get(l, "jobd.job")), "j2a");
    assert_string_equal(json_string_value(json_object_get(l, "jobd.attempt")), "7");
    assert_int_equal(json_object_size(l), 4);
    /* The caller's spec is not changed. */
    assert_string_equal(json_string_value(json_object_get(spec, "executor")), "remote");
    assert_int_equal(json_object_size(json_object_get(spec, "labels")), 1);
    json_decref(o);
    free(t);
    json_decref(spec);

    /* Another executor stays; labels null (canonical) or absent are created. */
    spec = json_pack("{s:s, s:s, s:n}", "task", "sleep", "executor", "thread", "labels");
    t = exec_remote_node_spec(spec, COORD, "j1", 1);
    o = json_loads(t, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "executor")), "thread");
    assert_int_equal(json_object_size(json_object_get(o, "labels")), 3);
    json_decref(o);
    free(t);
    json_decref(spec);

    assert_null(exec_remote_node_spec(NULL, COORD, "j1", 1));
    spec = json_array();
    assert_null(exec_remote_node_spec(spec, COORD, "j1", 1));
    json_decref(spec);
}

static int parse_text(const char *text, struct exec_remote_doc *d) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    int rc = exec_remote_parse_doc(v, COORD, d);

    json_decref(v);
    return rc;
}

static void test_parse_doc_good(void **state) {
    struct exec_remote_doc d;
    (void)state;

    assert_int_equal(parse_text("{\"id\":\"j3\",\"state\":\"failed\",\"exit_code\":3,"
                                "\"signal\":null,\"error\":\"exited with code 3\","
                                "\"result\":{\"a\":[1,2]},\"seq\":99,"
                                "\"labels\":{\"jobd.coordinator\":\"" COORD "\","
                                "\"jobd.job\":\"j7\",\"jobd.attempt\":\"2\"},"
                                "\"started_at\":\"" T_START "\",\"finished_at\":\"" T_END "\","
                                "\"stdout_bytes\":12,\"stderr_bytes\":0,"
                                "\"stdout_truncated\":true,\"stderr_truncated\":false}",
                                &d),
                     0);
    assert_string_equal(d.remote_id, "j3");
    assert_int_equal(d.state, JOBD_FAILED);
    assert_int_equal(d.seq, 99);
    assert_string_equal(d.job_id, "j7");
    assert_int_equal(d.attempt, 2);
    assert_true(d.ours);
    assert_int_equal(d.res.end, EXEC_EXITED);
    assert_int_equal(d.res.exit_code, 3);
    assert_int_equal(d.res.signal, 0);
    assert_string_equal(d.res.error, "exited with code 3");
    assert_string_equal(d.res.result_json, "{\"a\":[1,2]}");
    assert_true(d.res.started_ms == epoch_ms(2026, 1, 2, 3, 4, 5, 678));
    assert_true(d.res.finished_ms == epoch_ms(2026, 1, 2, 3, 4, 7, 1));
    assert_true(d.res.out_total[0] == 12 && d.res.out_total[1] == 0);
    assert_true(d.res.out_truncated[0] && !d.res.out_truncated[1]);
    exec_remote_doc_free(&d);

    /* Killed by a signal, named. */
    assert_int_equal(parse_text("{\"id\":\"j3\",\"state\":\"failed\",\"exit_code\":null,"
                                "\"signal\":\"SIGKILL\",\"labels\":{\"jobd.coordinator\":\"x\"}}",
                                &d),
                     0);
    assert_false(d.ours);
    assert_int_equal(d.res.end, EXEC_EXITED);
    assert_int_equal(d.res.signal, 9);
    assert_int_equal(d.res.exit_code, -1);
    exec_remote_doc_free(&d);

    /* Failed without an exit status: it could not start there. */
    assert_int_equal(
        parse_text("{\"id\":\"j3\",\"state\":\"failed\",\"error\":\"interrupted\"}", &d), 0);
    assert_int_equal(d.res.end, EXEC_START_FAILED);
    assert_string_equal(d.res.error, "interrupted");
    exec_remote_doc_free(&d);

    /* succeeded, timed_out, cancelled; offsets in timestamps. */
    assert_int_equal(parse_text("{\"id\":\"a.b-c_d\",\"state\":\"succeeded\",\"exit_code\":7,"
                                "\"error\":\"note\",\"started_at\":\"2026-01-02T05:04:05+02:00\"}",
                                &d),
                     0);
    assert_int_equal(d.res.end, EXEC_EXITED);
    assert_int_equal(d.res.exit_code, 0);
    assert_string_equal(d.res.error, "note");
    assert_true(d.res.started_ms == epoch_ms(2026, 1, 2, 3, 4, 5, 0));
    exec_remote_doc_free(&d);
    assert_int_equal(parse_text("{\"id\":\"j3\",\"state\":\"timed_out\",\"signal\":15}", &d), 0);
    assert_int_equal(d.res.end, EXEC_TIMED_OUT);
    assert_int_equal(d.res.signal, 15);
    exec_remote_doc_free(&d);
    assert_int_equal(parse_text("{\"id\":\"j3\",\"state\":\"cancelled\"}", &d), 0);
    assert_int_equal(d.res.end, EXEC_CANCELLED);
    exec_remote_doc_free(&d);

    /* Not final: no result is parsed. */
    assert_int_equal(parse_text("{\"id\":\"j3\",\"state\":\"running\",\"result\":[1]}", &d), 0);
    assert_int_equal(d.state, JOBD_RUNNING);
    assert_null(d.result_json);
    exec_remote_doc_free(&d);
}

static void test_parse_doc_bad(void **state) {
    static const char *const unusable[] = {
        "null",
        "[]",
        "\"j1\"",
        "{}",
        "{\"state\":\"running\"}",
        "{\"id\":5,\"state\":\"running\"}",
        "{\"id\":\"\",\"state\":\"running\"}",
        "{\"id\":\"../x\",\"state\":\"running\"}",
        "{\"id\":\"j1?x=1\",\"state\":\"running\"}",
        "{\"id\":\"j1/cancel\",\"state\":\"running\"}",
        "{\"id\":\"..\",\"state\":\"running\"}",
        ("{\"id\":\"jaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
         "\"state\":\"running\"}"),
        "{\"id\":\"j1\"}",
        "{\"id\":\"j1\",\"state\":\"exploded\"}",
        "{\"id\":\"j1\",\"state\":3}",
        "{\"id\":\"j1\",\"state\":null}",
    };
    struct exec_remote_doc d;
    (void)state;

    for (size_t i = 0; i < sizeof unusable / sizeof unusable[0]; i++) {
        if (parse_text(unusable[i], &d) != -EINVAL)
            fail_msg("accepted: %s", unusable[i]);
        exec_remote_doc_free(&d);
    }

    /* Wrong types and absurd values are ignored, field by field. */
    assert_int_equal(parse_text("{\"id\":\"j1\",\"state\":\"failed\",\"exit_code\":\"3\","
                                "\"signal\":\"SIGNOPE\",\"error\":42,\"seq\":-5,"
                                "\"labels\":[\"jobd.job\"],\"started_at\":\"yesterday\","
                                "\"finished_at\":\"2026-13-40T99:99:99Z\",\"stdout_bytes\":-1,"
                                "\"stderr_bytes\":\"9\",\"stdout_truncated\":\"yes\"}",
                                &d),
                     0);
    assert_int_equal(d.seq, 0);
    assert_string_equal(d.job_id, "");
    assert_int_equal(d.attempt, 0);
    assert_false(d.ours);
    assert_int_equal(d.res.end, EXEC_START_FAILED);
    assert_int_equal(d.res.exit_code, -1);
    assert_int_equal(d.res.signal, 0);
    assert_true(d.res.started_ms == 0 && d.res.finished_ms == 0);
    assert_true(d.res.out_total[0] == 0 && d.res.out_total[1] == 0);
    assert_false(d.res.out_truncated[0]);
    exec_remote_doc_free(&d);

    assert_int_equal(parse_text("{\"id\":\"j1\",\"state\":\"failed\",\"exit_code\":"
                                "99999999999999999,\"signal\":100000,"
                                "\"labels\":{\"jobd.attempt\":\"0\",\"jobd.job\":7,"
                                "\"jobd.coordinator\":null}}",
                                &d),
                     0);
    assert_int_equal(d.res.exit_code, -1);
    assert_int_equal(d.res.signal, 0);
    assert_int_equal(d.attempt, 0);
    assert_false(d.ours);
    exec_remote_doc_free(&d);
    static const char *const attempts[] = {"-1", "1e3", "01", "99999999999", " 1", "1 ", ""};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        char t[256];
        snprintf(t, sizeof t,
                 "{\"id\":\"j1\",\"state\":\"running\",\"labels\":{\"jobd.attempt\":"
                 "\"%s\"}}",
                 attempts[i]);
        assert_int_equal(parse_text(t, &d), 0);
        if (d.attempt != 0)
            fail_msg("attempt label \"%s\" read as %d", attempts[i], d.attempt);
        exec_remote_doc_free(&d);
    }

    /* A huge error is cut at a character boundary. */
    {
        size_t n = 4000;
        char *e = malloc(n * 2 + 1);
        for (size_t i = 0; i < n; i++)
            memcpy(e + 2 * i, "\xc3\xa9", 2); /* é */
        e[2 * n] = '\0';
        json_t *v = json_pack("{s:s, s:s, s:s}", "id", "j1", "state", "failed", "error", e);
        assert_int_equal(exec_remote_parse_doc(v, COORD, &d), 0);
        size_t len = strlen(d.res.error);
        assert_true(len > 200 && len < sizeof d.res.error && len % 2 == 0);
        json_t *s = json_string(d.res.error); /* NULL when not valid UTF-8 */
        assert_non_null(s);
        json_decref(s);
        exec_remote_doc_free(&d);
        json_decref(v);
        free(e);
    }
}

struct list_seen {
    int n;
    char ids[8][JOBD_MAX_ID_BYTES];
};

static int list_fn(void *arg, const struct exec_remote_doc *d) {
    struct list_seen *s = arg;
    if (s->n < 8)
        snprintf(s->ids[s->n], sizeof s->ids[0], "%s", d->remote_id);
    s->n++;
    return 0;
}

static void test_parse_list(void **state) {
    static const char *const bad[] = {
        "",
        "nope",
        "[]",
        "{}",
        "{\"jobs\":[]}",
        "{\"seq\":3}",
        "{\"jobs\":{},\"seq\":3}",
        "{\"jobs\":[],\"seq\":\"3\"}",
        "{\"jobs\":[],\"seq\":-3}",
        "{\"jobs\":[],\"seq\":3",
        "{\"jobs\":[],\"seq\":3,\"seq\":4}",
    };
    const char *good = "{\"jobs\":[{\"id\":\"j1\",\"state\":\"running\"},{\"id\":7},"
                       "\"junk\",{\"id\":\"j2\",\"state\":\"succeeded\"}],"
                       "\"next_cursor\":null,\"seq\":41}";
    struct list_seen s = {0};
    int64_t seq = -1;
    (void)state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seq = -1;
        if (exec_remote_parse_list(bad[i], strlen(bad[i]), COORD, list_fn, &s, &seq) != -EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(s.n, 0);
        assert_int_equal(seq, -1);
    }
    assert_int_equal(exec_remote_parse_list(NULL, 0, COORD, list_fn, &s, &seq), -EINVAL);
    assert_int_equal(exec_remote_parse_list(good, strlen(good), COORD, list_fn, &s, &seq), 0);
    assert_int_equal(seq, 41);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.ids[0], "j1");
    assert_string_equal(s.ids[1], "j2");
    /* Not NUL-terminated: only len bytes count. */
    char buf[64];
    memcpy(buf, "{\"jobs\":[],\"seq\":5}GARBAGE", 26);
    assert_int_equal(exec_remote_parse_list(buf, 19, COORD, NULL, NULL, &seq), 0);
    assert_int_equal(seq, 5);
}

/* ---- the executor against the fake node ---- */

static void test_dispatch_exited(void **state) {
    struct fx *x = *state;

    x->f->new_out = "hello\n";
    exec_remote_set_node(x->er, "node1", x->f->url);
    start_job(x, 1, 1);
    assert_true(REC_WAIT(rec.dispatched == 1));
    assert_string_equal(rec.rid, "r1");
    assert_true(REC_WAIT(rec.outputs >= 1)); /* "hello\n" copied while it runs */
    assert_int_equal(REC_GET(exited), 0);
    fake_end(x->f, 0, "failed", 3, "exited with code 3", "hello\nworld\n", "oops");
    assert_true(REC_WAIT(rec.exited == 1));
    assert_int_equal(rec.exit_attempt, 1);
    assert_int_equal(rec.res.end, EXEC_EXITED);
    assert_int_equal(rec.res.exit_code, 3);
    assert_int_equal(rec.res.signal, 0);
    assert_string_equal(rec.res.error, "exited with code 3");
    assert_true(rec.res.started_ms == epoch_ms(2026, 1, 2, 3, 4, 5, 678));
    assert_true(rec.res.finished_ms == epoch_ms(2026, 1, 2, 3, 4, 7, 1));
    assert_true(rec.res.out_total[0] == 12 && rec.res.out_total[1] == 4);
    assert_int_equal(rec.out_len[0], 12);
    assert_memory_equal(rec.out[0], "hello\nworld\n", 12);
    assert_int_equal(rec.out_len[1], 4);
    assert_memory_equal(rec.out[1], "oops", 4);
    assert_true(REC_GET(seen) > 0);
    assert_int_equal(FAKE_GET(x->f, posts), 1);
    assert_string_equal(x->f->keys[0], COORD "-j1-1");
    assert_string_equal(x->f->auth, "Bearer " TOKEN);
    assert_int_equal(FAKE_GET(x->f, first_polls), 1);
    /* Nothing more about it. */
    usleep(300000);
    assert_int_equal(REC_GET(exited), 1);
    assert_int_equal(REC_GET(dispatched), 1);
    assert_int_equal(FAKE_GET(x->f, cancels), 0);
}

static void test_dispatch_retried(void **state) {
    struct fx *x = *state;

    x->f->post_fail = 1;
    x->f->new_state = "succeeded";
    x->f->new_out = "ok";
    exec_remote_set_node(x->er, "node1", x->f->url);
    start_job(x, 5, 2);
    assert_true(REC_WAIT(rec.exited == 1));
    assert_int_equal(rec.dispatched, 1);
    assert_int_equal(rec.exit_attempt, 2);
    assert_int_equal(rec.res.end, EXEC_EXITED);
    assert_int_equal(rec.res.exit_code, 0);
    assert_string_equal(rec.result, "{\"n\":42}");
    assert_int_equal(rec.out_len[0], 2);
    assert_memory_equal(rec.out[0], "ok", 2);
    assert_int_equal(FAKE_GET(x->f, posts), 2);
    assert_int_equal(FAKE_GET(x->f, njobs), 1);
    assert_string_equal(x->f->keys[0], COORD "-j5-2");
    assert_string_equal(x->f->keys[1], COORD "-j5-2");
}

static void test_refused(void **state) {
    struct fx *x = *state;

    x->f->post_status = 400;
    exec_remote_set_node(x->er, "node1", x->f->url);
    start_job(x, 2, 1);
    assert_true(REC_WAIT(rec.refused == 1));
    assert_int_equal(rec.ref_status, 400);
    assert_string_equal(rec.detail, "command: must be an array of strings");
    usleep(300000);
    assert_int_equal(REC_GET(dispatched), 0);
    assert_int_equal(REC_GET(exited), 0);
    assert_int_equal(FAKE_GET(x->f, posts), 1);
}

static void test_fence_late_doc(void **state) {
    struct fx *x = *state;

    exec_remote_set_node(x->er, "node1", x->f->url);
    assert_true(REC_WAIT(rec.seen >= 2)); /* the seq is known; blocking polls run */
    /* A running attempt of ours that nobody follows: cancelled, once. */
    int i = fake_add(x->f, COORD, "j9", "1", "running", "");
    assert_true(FAKE_WAIT(x->f, x->f->cancels == 1));
    assert_string_equal(x->f->cancel_rid[0], x->f->jobs[i].rid);
    fake_touch(x->f, i);
    int seen = REC_GET(seen);
    assert_true(REC_WAIT(rec.seen >= seen + 2));
    assert_int_equal(FAKE_GET(x->f, cancels), 1);
    /* An ended one is left alone. */
    fake_add(x->f, COORD, "j10", "1", "succeeded", "");
    seen = REC_GET(seen);
    assert_true(REC_WAIT(rec.seen >= seen + 2));
    assert_int_equal(FAKE_GET(x->f, cancels), 1);
}

static void test_abandon(void **state) {
    struct fx *x = *state;

    exec_remote_set_node(x->er, "node1", x->f->url);
    start_job(x, 3, 1);
    assert_true(REC_WAIT(rec.dispatched == 1));
    exec_remote_abandon(x->er, 3, 2); /* another attempt: ignored */
    exec_remote_abandon(x->er, 3, 1);
    assert_true(FAKE_WAIT(x->f, x->f->cancels == 1));
    assert_string_equal(x->f->cancel_rid[0], "r1");
    /* Its late end is not reported. */
    fake_end(x->f, 0, "failed", 1, NULL, "late", "");
    int seen = REC_GET(seen);
    assert_true(REC_WAIT(rec.seen >= seen + 2));
    assert_int_equal(REC_GET(exited), 0);
    assert_int_equal(FAKE_GET(x->f, cancels), 1);
}

static void test_cancel_relayed(void **state) {
    struct fx *x = *state;

    x->f->cancel_ends = true;
    exec_remote_set_node(x->er, "node1", x->f->url);
    start_job(x, 4, 1);
    exec_remote_cancel(x->er, 4); /* before the remote id is known: sent once it is */
    exec_remote_cancel(x->er, 999);
    assert_true(REC_WAIT(rec.exited == 1));
    assert_int_equal(rec.dispatched, 1);
    assert_int_equal(rec.res.end, EXEC_CANCELLED);
    assert_int_equal(rec.res.signal, 15);
    assert_int_equal(FAKE_GET(x->f, cancels), 1);
    assert_string_equal(x->f->cancel_rid[0], "r1");
}

static void test_garbage_polls(void **state) {
    struct fx *x = *state;

    x->f->garbage = true;
    exec_remote_set_node(x->er, "node1", x->f->url);
    start_job(x, 6, 1); /* waits for the node's seq: never dispatched meanwhile */
    usleep(1600000);
    assert_int_equal(REC_GET(seen), 0);
    assert_true(FAKE_GET(x->f, first_polls) >= 2); /* retried, with a backoff */
    assert_true(FAKE_GET(x->f, first_polls) <= 5);
    assert_int_equal(FAKE_GET(x->f, posts), 0);
    /* The node heals: seen again, and the attempt goes out. */
    pthread_mutex_lock(&x->f->mu);
    x->f->garbage = false;
    pthread_mutex_unlock(&x->f->mu);
    assert_true(REC_WAIT(rec.seen > 0));
    assert_true(REC_WAIT(rec.dispatched == 1));
}

static void test_resume(void **state) {
    struct fx *x = *state;
    struct exec_remote_run run = {.num = 8, .id = "j8", .attempt = 3, .node_id = "node1"};

    fake_add(x->f, COORD, "j8", "3", "succeeded", "from before");
    run.node_url = x->f->url; /* a node it was not told about: learnt from the run */
    run.remote_id = "r1";
    assert_int_equal(exec_remote_resume(x->er, &run), 0);
    assert_true(REC_WAIT(rec.exited == 1));
    assert_int_equal(rec.res.exit_code, 0);
    assert_int_equal(rec.out_len[0], 11);
    assert_memory_equal(rec.out[0], "from before", 11);
    assert_int_equal(rec.dispatched, 0);

    /* A remote id the node does not know: refused with 404. */
    run.num = 9;
    run.remote_id = "r77";
    assert_int_equal(exec_remote_resume(x->er, &run), 0);
    assert_true(REC_WAIT(rec.refused == 1));
    assert_int_equal(rec.ref_status, 404);
    run.remote_id = "r1/../x";
    assert_int_equal(exec_remote_resume(x->er, &run), -EINVAL);
}

static void test_stop(void **state) {
    struct fx *x = *state;
    struct exec_remote_run run = {
        .num = 1, .id = "j1", .attempt = 1, .node_id = "node1", .spec_json = "{}"};

    run.node_url = x->f->url;
    exec_remote_stop(x->er);
    assert_int_equal(exec_remote_start(x->er, &run), -ESHUTDOWN);
    run.remote_id = "r1";
    assert_int_equal(exec_remote_resume(x->er, &run), -ESHUTDOWN);
    exec_remote_cancel(x->er, 1);
    exec_remote_set_node(x->er, "node1", x->f->url);
    usleep(200000);
    assert_int_equal(FAKE_GET(x->f, first_polls), 0);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    json_object_seed(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_spec),
        cmocka_unit_test(test_parse_doc_good),
        cmocka_unit_test(test_parse_doc_bad),
        cmocka_unit_test(test_parse_list),
        cmocka_unit_test_setup_teardown(test_dispatch_exited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fence_late_doc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_relayed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_polls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
