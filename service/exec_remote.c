/*
 * exec_remote.c: the remote executor (see exec_remote.h).
 *
 * Threads and locks. One thread (remote_main) owns every node, attempt and
 * transfer, and the libcurl multi handle that drives the transfers. Other
 * threads only append requests to the inbox and wake the thread with
 * curl_multi_wakeup (the one multi call that is thread-safe). er->lock
 * guards the inbox, er->stop, er->stopped and er->quit, and nothing else;
 * no callback is ever called with it held, so a callback may call back into
 * this API.
 *
 * The loop: take the inbox and apply it, start whatever is due (a node's
 * poll, a dispatch, the read of a resumed attempt's document, a cancel, an
 * output stream), drive the multi handle, handle the finished transfers,
 * then sleep in curl_multi_poll until a socket is ready, a timer is due, or
 * the inbox wakes it. Nothing blocks on one node: every exchange is a
 * transfer in the multi handle, with a connect timeout and (except output
 * streams, which last as long as the job) a total timeout.
 *
 * Ordering against a node's sequence numbers. A node's poll starts with
 * `?limit=1` to learn its seq; dispatches to it and document reads of
 * resumed attempts wait until then, so every change after them is seen by
 * a later `since` query. The answer to that first query is used for its seq
 * only (no fencing from it: the scheduler may not have resumed everything
 * yet).
 *
 * An attempt's life: dispatch (or resume) until the node's id of it is
 * known; its output streams start once it is seen running (or final); once
 * a final document is seen, each stream is read to its end (a follow
 * request made after the job ended returns the rest and ends); then the
 * writers are finished, `exited` is called and the attempt is forgotten.
 * Hostile answers are bounded: bodies up to BODY_MAX bytes, documents
 * checked field by field (exec_remote_parse_doc), remote ids restricted to
 * characters that are safe in a URL path.
 */
#include "exec_remote.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "jobd/job.h"
#include "jobd/util.h"
#include "log.h"
#include "output.h"

#define BODY_MAX           ((size_t)64 << 20) /* bytes of an answer kept for parsing */
#define DETAIL_MAX         512                /* bytes of a refusal's detail */
#define RESULT_MAX         ((size_t)16 << 20) /* bytes of a result, as for local tasks */
#define REQ_TIMEOUT_MS     10000L             /* a request other than a poll or a stream */
#define CONNECT_TIMEOUT_MS 5000L
#define POLL_EXTRA_MS      10000L /* a poll's timeout beyond its wait */
#define POLL_LIMIT         1000   /* documents per poll answer (halved for huge answers) */
#define BACKOFF_MIN_MS     500
#define BACKOFF_MAX_MS     5000
#define RETRY_MS           1000 /* dispatch and cancel retries */
#define STREAM_TRIES_FINAL 5    /* failed reads of an ended stream before its rest is given up */
#define FENCE_MAX          256  /* remote ids a node remembers having fenced */
#define IDLE_MS            1000 /* longest sleep when nothing is due */
#define STALL_S            30L  /* an ended job's stream that sends nothing this long is broken */
#define STREAM_DELAY_MS    100  /* a job seen running this long gets its output followed */

enum xkind { X_POLL, X_DISPATCH, X_DOC, X_STREAM, X_CANCEL };

struct node;
struct attempt;

/* One transfer in the multi handle. */
struct xfer {
    enum xkind kind;
    struct exec_remote *er;
    CURL *h;
    struct curl_slist *hdr;
    char *url;
    struct node *node; /* X_POLL */
    struct attempt *a; /* X_DISPATCH, X_DOC, X_STREAM, X_CANCEL of a tracked attempt */
    int stream;        /* X_STREAM */
    bool after_final;  /* X_STREAM: started once the attempt was known to have ended */
    bool first;        /* X_POLL: the query that learns the node's seq */
    int64_t started;   /* mono ms */
    char *body;        /* the answer so far (not for streams) */
    size_t len, cap;
    bool too_big;
    struct xfer *next, **prevp; /* er->xfers */
};

struct node {
    char id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char *url;
    bool seq_known;
    int64_t seq;
    int limit;
    struct xfer *poll;
    int64_t poll_at; /* mono ms */
    int backoff_ms;
    char fenced[FENCE_MAX][JOBD_MAX_ID_BYTES]; /* a ring of remote ids told to cancel */
    int fence_next;
    struct node *next;
};

struct stream {
    struct output_writer *w;
    struct xfer *x;
    int64_t copied;   /* bytes received, the offset of the next request */
    int64_t retry_at; /* mono ms */
    int backoff_ms;
    int fails_final; /* failed reads since the attempt was known to have ended */
    bool done;
    bool lost; /* gave up on the rest */
};

struct attempt {
    int64_t num;
    char id[JOBD_MAX_ID_BYTES];
    int attempt;
    char node_id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char rid[JOBD_MAX_ID_BYTES]; /* "" until known */
    char *spec_json;             /* NULL for a resumed attempt */
    bool resumed;                /* its document must be read once (X_DOC) */
    bool doc_read;
    struct xfer *req; /* the dispatch or document read in flight */
    int64_t req_at;
    int req_backoff;
    bool cancel_wanted, cancel_done;
    struct xfer *cancel_x;
    int64_t cancel_at;
    bool running_seen;
    int64_t running_at; /* mono ms when running_seen was set */
    bool final;
    struct exec_remote_doc fin; /* the final document, once seen */
    struct stream s[2];
    struct attempt *next;
};

enum rkind { R_START, R_RESUME, R_CANCEL, R_ABANDON, R_SET_NODE };

struct request {
    enum rkind kind;
    int64_t num;
    int attempt;
    char node_id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char *url;
    struct attempt *a; /* R_START, R_RESUME: made by the caller */
    struct request *next;
};

struct exec_remote {
    /* Fixed at create. */
    struct exec_remote_callbacks cb;
    void *ctx;
    char *out_dir, *coord, *coord_enc, *token_hdr, *cacert;
    double wait_s;
    CURLM *multi;
    pthread_t thread;
    bool thread_started;

    /* Under lock. */
    pthread_mutex_t lock;
    pthread_cond_t stopped_cv;
    struct request *inbox, **inbox_tail;
    bool stop, stopped, quit;

    /* The thread's own. */
    struct node *nodes;
    struct attempt *attempts;
    struct xfer *xfers;
};

/* ---- small pure helpers ---- */

/*
 * Copy `src` into dst (cap bytes with the NUL), cutting at a character
 * boundary of UTF-8 text so the copy stays valid UTF-8 when src was.
 */
static void copy_text(char *dst, size_t cap, const char *src, size_t len) {
    size_t n = len < cap - 1 ? len : cap - 1;

    if (n < len)
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A remote id is safe to put in a URL path: 1..63 of [A-Za-z0-9._-]. */
static bool rid_ok(const char *s) {
    size_t n = strlen(s);

    if (n == 0 || n >= JOBD_MAX_ID_BYTES)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int digits(const char *s, int n) {
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.fff]Z" (or an offset "+HH:MM") into epoch ms.
 * Return 0 when absent or malformed.
 */
static int64_t parse_rfc3339(const json_t *v) {
    const char *s = json_string_value(v);
    int y, mo, d, h, mi, sec, ms = 0, off = 0;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t i = 19;

    if (!s || strlen(s) < 20)
        return 0;
    y = digits(s, 4);
    mo = digits(s + 5, 2);
    d = digits(s + 8, 2);
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
        s[16] != ':' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 ||
        h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return 0;
    if (s[i] == '.') {
        int k = 0;
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            if (k < 3)
                ms = ms * 10 + (s[i] - '0');
            k++;
            i++;
        }
        if (k == 0)
            return 0;
        for (; k < 3; k++)
            ms *= 10;
    }
    if ((s[i] == 'Z' || s[i] == 'z') && s[i + 1] == '\0') {
        off = 0;
    } else if ((s[i] == '+' || s[i] == '-') && strlen(s + i) == 6 && s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return 0;
        off = (oh * 60 + om) * (s[i] == '+' ? 1 : -1);
    } else {
        return 0;
    }
    int64_t t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec -
                (int64_t)off * 60;
    return t < 0 ? 0 : t * 1000 + ms;
}

static int64_t int_field(const json_t *o, const char *key, int64_t min, int64_t max, int64_t dflt) {
    const json_t *v = json_object_get(o, key);
    json_int_t i;

    if (!json_is_integer(v))
        return dflt;
    i = json_integer_value(v);
    return i >= min && i <= max ? i : dflt;
}

/* ---- pure helpers of the header ---- */

char *exec_remote_node_spec(const json_t *spec, const char *coordinator_id, const char *job_id,
                            int attempt) {
    static const char *const dropped[] = {"node_selector", "retries", "retry_delay",
                                          "retry_exit_codes"};
    json_t *o = json_is_object(spec) ? json_deep_copy(spec) : NULL;
    json_t *labels, *ex;
    char num[16];
    char *out = NULL;

    if (!o)
        return NULL;
    ex = json_object_get(o, "executor");
    if (json_is_string(ex) && strcmp(json_string_value(ex), "remote") == 0)
        json_object_del(o, "executor");
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        json_object_del(o, dropped[i]);
    labels = json_object_get(o, "labels");
    if (!json_is_object(labels)) {
        labels = json_object();
        if (!labels || json_object_set_new(o, "labels", labels) != 0)
            goto done;
    }
    snprintf(num, sizeof num, "%d", attempt);
    if (json_object_set_new(labels, EXEC_REMOTE_LABEL_COORD, json_string(coordinator_id)) != 0 ||
        json_object_set_new(labels, EXEC_REMOTE_LABEL_JOB, json_string(job_id)) != 0 ||
        json_object_set_new(labels, EXEC_REMOTE_LABEL_ATTEMPT, json_string(num)) != 0)
        goto done;
    out = json_dumps(o, JSON_COMPACT);
done:
    json_decref(o);
    return out;
}

void exec_remote_doc_free(struct exec_remote_doc *d) {
    if (!d)
        return;
    free(d->result_json);
    d->result_json = NULL;
    d->res.result_json = NULL;
}

/* Fill d->res from a final document. */
static void parse_final(const json_t *doc, struct exec_remote_doc *d) {
    struct exec_result *r = &d->res;
    const json_t *v;
    const char *names[2] = {"stdout", "stderr"};

    r->exit_code = (int)int_field(doc, "exit_code", 0, 255, -1);
    r->signal = 0;
    v = json_object_get(doc, "signal");
    if (json_is_string(v)) {
        int sig;
        if (jobd_signal_parse(json_string_value(v), &sig) == 0)
            r->signal = sig;
    } else {
        r->signal = (int)int_field(doc, "signal", 1, 64, 0);
    }
    v = json_object_get(doc, "error");
    if (json_is_string(v))
        copy_text(r->error, sizeof r->error, json_string_value(v), strlen(json_string_value(v)));
    v = json_object_get(doc, "result");
    if (v && !json_is_null(v)) {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (t && strlen(t) <= RESULT_MAX) {
            d->result_json = t;
        } else {
            free(t);
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "task result too large");
        }
    }
    r->result_json = d->result_json;
    r->started_ms = parse_rfc3339(json_object_get(doc, "started_at"));
    r->finished_ms = parse_rfc3339(json_object_get(doc, "finished_at"));
    for (int i = 0; i < 2; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s_bytes", names[i]);
        r->out_total[i] = int_field(doc, key, 0, INT64_MAX, 0);
        snprintf(key, sizeof key, "%s_truncated", names[i]);
        r->out_truncated[i] = json_is_true(json_object_get(doc, key));
    }
    switch (d->state) {
    case JOBD_SUCCEEDED:
        r->end = EXEC_EXITED;
        r->exit_code = 0;
        r->signal = 0;
        break;
    case JOBD_FAILED:
        if (r->signal > 0 || r->exit_code > 0) {
            r->end = EXEC_EXITED;
        } else {
            /* Failed without an exit status (could not start, interrupted...). */
            r->end = EXEC_START_FAILED;
            r->exit_code = -1;
            if (!r->error[0])
                snprintf(r->error, sizeof r->error, "failed on its node");
        }
        break;
    case JOBD_TIMED_OUT:
        r->end = EXEC_TIMED_OUT;
        break;
    default:
        r->end = EXEC_CANCELLED;
        break;
    }
}

int exec_remote_parse_doc(const json_t *doc, const char *coordinator_id,
                          struct exec_remote_doc *out) {
    const json_t *v, *labels;

    memset(out, 0, sizeof *out);
    out->res.exit_code = -1;
    if (!json_is_object(doc))
        return -EINVAL;
    v = json_object_get(doc, "id");
    if (!json_is_string(v) || !rid_ok(json_string_value(v)))
        return -EINVAL;
    snprintf(out->remote_id, sizeof out->remote_id, "%s", json_string_value(v));
    v = json_object_get(doc, "state");
    if (!json_is_string(v) || jobd_state_parse(json_string_value(v), &out->state) != 0)
        return -EINVAL;
    out->seq = int_field(doc, "seq", 0, INT64_MAX, 0);
    labels = json_object_get(doc, "labels");
    if (json_is_object(labels)) {
        v = json_object_get(labels, EXEC_REMOTE_LABEL_JOB);
        if (json_is_string(v) && strlen(json_string_value(v)) < sizeof out->job_id)
            snprintf(out->job_id, sizeof out->job_id, "%s", json_string_value(v));
        v = json_object_get(labels, EXEC_REMOTE_LABEL_ATTEMPT);
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            size_t n = strlen(s);
            int a = n >= 1 && n <= 9 && s[0] != '0' ? digits(s, (int)n) : -1;
            out->attempt = a > 0 ? a : 0;
        }
        v = json_object_get(labels, EXEC_REMOTE_LABEL_COORD);
        out->ours = json_is_string(v) && coordinator_id &&
                    strcmp(json_string_value(v), coordinator_id) == 0;
    }
    if (jobd_state_is_final(out->state))
        parse_final(doc, out);
    return 0;
}

int exec_remote_parse_list(const char *body, size_t len, const char *coordinator_id,
                           int (*fn)(void *arg, const struct exec_remote_doc *d), void *arg,
                           int64_t *seq) {
    json_t *root = body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *jobs = json_object_get(root, "jobs");
    json_t *s = json_object_get(root, "seq");
    size_t i;
    json_t *doc;
    int rc = 0;

    if (!json_is_array(jobs) || !json_is_integer(s) || json_integer_value(s) < 0) {
        json_decref(root);
        return -EINVAL;
    }
    *seq = json_integer_value(s);
    json_array_foreach(jobs, i, doc) {
        struct exec_remote_doc d;
        if (exec_remote_parse_doc(doc, coordinator_id, &d) == 0 && fn)
            rc = fn(arg, &d);
        exec_remote_doc_free(&d);
        if (rc != 0)
            break;
    }
    json_decref(root);
    return rc;
}

/* ---- transfers ---- */

/* Why a request failed, in words (a static buffer: the executor thread only). */
static const char *why(CURLcode cc, long code) {
    static __thread char buf[64];

    if (cc != CURLE_OK)
        return curl_easy_strerror(cc);
    snprintf(buf, sizeof buf, "HTTP status %ld", code);
    return buf;
}

static size_t body_write(char *p, size_t size, size_t n, void *arg) {
    struct xfer *x = arg;
    size_t len = size * n;

    if (len > BODY_MAX - x->len) {
        x->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (x->len + len + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + len + 1)
            cap *= 2;
        char *b = realloc(x->body, cap);
        if (!b)
            return 0;
        x->body = b;
        x->cap = cap;
    }
    memcpy(x->body + x->len, p, len);
    x->len += len;
    x->body[x->len] = '\0';
    return len;
}

static size_t stream_write(char *p, size_t size, size_t n, void *arg) {
    struct xfer *x = arg;
    struct exec_remote *er = x->er;
    struct attempt *a = x->a;
    struct stream *st = &a->s[x->stream];
    size_t len = size * n;
    long code = 0;

    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200)
        return len; /* an error answer's body: not output */
    if (st->w && output_writer_append(st->w, p, len) < 0)
        log_warn("exec_remote: job %s: cannot store %s copied from node %s", a->id,
                 x->stream ? "stderr" : "stdout", a->node_id);
    st->copied += (int64_t)len;
    st->backoff_ms = 0;
    if (er->cb.output && st->w) {
        size_t ilen = 0;
        const void *d = output_writer_inline(st->w, &ilen);
        er->cb.output(er->ctx, a->num, a->attempt, x->stream, output_writer_readable(st->w), d,
                      d ? ilen : 0);
    }
    return len;
}

/* libcurl 7.88 opens sockets without close-on-exec; this opens them with it. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr) {
    (void)arg;
    (void)purpose;
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static void xfer_free(struct xfer *x) {
    if (!x)
        return;
    if (x->h) {
        curl_multi_remove_handle(x->er->multi, x->h);
        curl_easy_cleanup(x->h);
    }
    if (x->prevp) {
        *x->prevp = x->next;
        if (x->next)
            x->next->prevp = x->prevp;
    }
    curl_slist_free_all(x->hdr);
    free(x->url);
    free(x->body);
    free(x);
}

static bool add_header(struct xfer *x, const char *h) {
    struct curl_slist *l = curl_slist_append(x->hdr, h);

    if (!l)
        return false;
    x->hdr = l;
    return true;
}

/*
 * Start a transfer: GET url, or POST `post` (len bytes, borrowed until the
 * transfer is freed) when post is not NULL. `key` is an Idempotency-Key or
 * NULL. timeout_ms 0: none. Return the transfer, or NULL after logging why.
 */
static struct xfer *xfer_start(struct exec_remote *er, enum xkind kind, char *url, const char *post,
                               size_t len, const char *key, long timeout_ms) {
    struct xfer *x = calloc(1, sizeof *x);
    CURL *h = NULL;
    char kh[256];
    bool ok;

    if (!x || !url)
        goto fail;
    x->kind = kind;
    x->er = er;
    x->started = jobd_mono_ms();
    x->url = url;
    url = NULL;
    h = curl_easy_init();
    if (!h)
        goto fail;
    x->h = h;
    ok = (!er->token_hdr || add_header(x, er->token_hdr)) && add_header(x, "Expect:");
    if (ok && post)
        ok = add_header(x, "Content-Type: application/json");
    if (ok && key) {
        snprintf(kh, sizeof kh, "Idempotency-Key: %s", key);
        ok = add_header(x, kh);
    }
    if (!ok)
        goto fail;
    ok = curl_easy_setopt(h, CURLOPT_URL, x->url) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_PRIVATE, x) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdr) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket) == CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, kind == X_STREAM ? stream_write : body_write) ==
             CURLE_OK &&
         curl_easy_setopt(h, CURLOPT_WRITEDATA, x) == CURLE_OK;
    if (ok && er->cacert)
        ok = curl_easy_setopt(h, CURLOPT_CAINFO, er->cacert) == CURLE_OK;
    if (ok && post)
        ok = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_POSTFIELDS, post) == CURLE_OK;
    if (!ok || curl_multi_add_handle(er->multi, h) != CURLM_OK)
        goto fail;
    x->next = er->xfers;
    if (er->xfers)
        er->xfers->prevp = &x->next;
    x->prevp = &er->xfers;
    er->xfers = x;
    return x;
fail:
    log_error("exec_remote: cannot start a request: out of memory or libcurl setup failed");
    free(url);
    if (x) {
        if (x->h) {
            curl_easy_cleanup(x->h);
            x->h = NULL;
        }
        xfer_free(x);
    }
    return NULL;
}

static char *url_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *url_printf(const char *fmt, ...) {
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* ---- nodes and attempts ---- */

static struct node *node_find(struct exec_remote *er, const char *id) {
    for (struct node *n = er->nodes; n; n = n->next)
        if (strcmp(n->id, id) == 0)
            return n;
    return NULL;
}

static struct attempt *attempt_find(struct exec_remote *er, int64_t num) {
    for (struct attempt *a = er->attempts; a; a = a->next)
        if (a->num == num)
            return a;
    return NULL;
}

static int backoff_next(int *b) {
    *b = *b <= 0 ? BACKOFF_MIN_MS : (*b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *b * 2);
    return *b;
}

static void attempt_free(struct attempt *a) {
    for (int i = 0; i < 2; i++)
        if (a->s[i].w)
            output_writer_close(a->s[i].w);
    exec_remote_doc_free(&a->fin);
    free(a->spec_json);
    free(a);
}

/*
 * Let a dispatch or document read in flight finish on its own, its answer
 * unheeded: aborting it would cost its keep-alive connection.
 */
static void req_detach(struct attempt *a) {
    if (a->req)
        a->req->a = NULL;
    a->req = NULL;
}

/* Abort every transfer of an attempt (but its request: see req_detach), unlink and free it. */
static void attempt_forget(struct exec_remote *er, struct attempt *a) {
    req_detach(a);
    xfer_free(a->cancel_x);
    for (int i = 0; i < 2; i++)
        xfer_free(a->s[i].x);
    for (struct attempt **pp = &er->attempts; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    attempt_free(a);
}

/* Remember a remote id that needs no fencing (told to cancel, or known to have ended). */
static void fence_remember(struct node *n, const char *rid) {
    snprintf(n->fenced[n->fence_next], JOBD_MAX_ID_BYTES, "%s", rid);
    n->fence_next = (n->fence_next + 1) % FENCE_MAX;
}

/* POST a cancel nobody waits for (an abandoned attempt, a fenced document). */
static void cancel_orphan(struct exec_remote *er, const char *url, const char *rid) {
    struct node *n;

    xfer_start(er, X_CANCEL, url_printf("%s/v1/jobs/%s/cancel", url, rid), "", 0, NULL,
               REQ_TIMEOUT_MS);
    for (n = er->nodes; n; n = n->next)
        if (strcmp(n->url, url) == 0)
            fence_remember(n, rid);
}

static bool fenced(const struct node *n, const char *rid) {
    for (int i = 0; i < FENCE_MAX; i++)
        if (strcmp(n->fenced[i], rid) == 0)
            return true;
    return false;
}

static void node_free(struct exec_remote *er, struct node *n) {
    (void)er;
    xfer_free(n->poll);
    free(n->url);
    free(n);
}

/* The attempt is over and its streams are copied: report it and forget it. */
static void attempt_exit(struct exec_remote *er, struct attempt *a) {
    struct exec_result res = a->fin.res;
    char *inline_copy[2] = {NULL, NULL};
    int64_t num = a->num;
    int attempt = a->attempt;

    for (int i = 0; i < 2; i++) {
        struct stream *st = &a->s[i];
        res.inline_out[i] = NULL;
        res.inline_len[i] = 0;
        if (st->lost)
            res.out_truncated[i] = true;
        if (!st->w)
            continue;
        if (output_writer_finish(st->w) < 0 || output_writer_truncated(st->w))
            res.out_truncated[i] = true;
        size_t len;
        const void *d = output_writer_inline(st->w, &len);
        if (d && len > 0 && (inline_copy[i] = malloc(len)) != NULL) {
            memcpy(inline_copy[i], d, len);
            res.inline_out[i] = inline_copy[i];
            res.inline_len[i] = len;
        }
        output_writer_close(st->w);
        st->w = NULL;
    }
    /* An older poll answer that still says "running" must not fence it. */
    struct node *n = a->rid[0] ? node_find(er, a->node_id) : NULL;
    if (n)
        fence_remember(n, a->rid);
    /* The result text outlives the attempt for the call. */
    char *result = a->fin.result_json;
    a->fin.result_json = NULL;
    res.result_json = result;
    attempt_forget(er, a);
    if (er->cb.exited)
        er->cb.exited(er->ctx, num, attempt, &res);
    free(result);
    free(inline_copy[0]);
    free(inline_copy[1]);
}

/* Report the attempt as exited once it has ended and both streams are read. */
static void attempt_check(struct exec_remote *er, struct attempt *a) {
    if (a->final && a->s[0].done && a->s[1].done)
        attempt_exit(er, a);
}

/* The attempt is over for a reason of the node's other than an end: refuse it. */
static void attempt_refuse(struct exec_remote *er, struct attempt *a, int status,
                           const char *detail) {
    int64_t num = a->num;
    int attempt = a->attempt;
    char d[DETAIL_MAX];

    snprintf(d, sizeof d, "%s", detail);
    for (int i = 0; i < 2; i++)
        if (a->s[i].w)
            output_writer_finish(a->s[i].w); /* removes an earlier attempt's file */
    attempt_forget(er, a);
    if (er->cb.refused)
        er->cb.refused(er->ctx, num, attempt, status, d);
}

static struct attempt *doc_match(struct exec_remote *er, const struct node *n,
                                 const struct exec_remote_doc *d) {
    for (struct attempt *a = er->attempts; a; a = a->next) {
        if (strcmp(a->node_id, n->id) != 0)
            continue;
        if (a->rid[0]) {
            if (strcmp(a->rid, d->remote_id) == 0)
                return a;
        } else if (d->ours && d->attempt == a->attempt && strcmp(d->job_id, a->id) == 0) {
            return a;
        }
    }
    return NULL;
}

/*
 * What a node's document of a job says. A document of ours that matches no
 * attempt is fenced. May call callbacks and forget the attempt.
 */
static void handle_doc(struct exec_remote *er, struct node *n, const struct exec_remote_doc *d,
                       bool may_fence) {
    struct attempt *a = doc_match(er, n, d);

    if (!a) {
        if (may_fence && d->ours && !jobd_state_is_final(d->state) && !fenced(n, d->remote_id)) {
            log_warn("exec_remote: node %s runs job %s (%s attempt %d) that this coordinator "
                     "gave up on: cancelling it",
                     n->id, d->remote_id, d->job_id[0] ? d->job_id : "?", d->attempt);
            cancel_orphan(er, n->url, d->remote_id);
        }
        return;
    }
    if (a->final)
        return;
    if (!a->rid[0]) {
        snprintf(a->rid, sizeof a->rid, "%s", d->remote_id);
        if (a->req && a->req->kind == X_DISPATCH)
            req_detach(a);
        if (er->cb.dispatched)
            er->cb.dispatched(er->ctx, a->num, a->attempt, a->rid);
        /* The callback may have queued an abandon: it is applied later, before any other. */
    }
    if (d->state == JOBD_RUNNING && !a->running_seen) {
        a->running_seen = true;
        a->running_at = jobd_mono_ms();
    }
    if (!jobd_state_is_final(d->state))
        return;
    a->final = true;
    a->fin = *d;
    a->fin.result_json = d->result_json ? strdup(d->result_json) : NULL;
    a->fin.res.result_json = a->fin.result_json;
    if (d->result_json && !a->fin.result_json)
        log_warn("exec_remote: job %s: result dropped: out of memory", a->id);
    for (int i = 0; i < 2; i++) {
        struct stream *st = &a->s[i];
        if (st->done)
            continue;
        if (d->res.out_total[i] == 0 ||
            (!d->res.out_truncated[i] && !st->x && st->copied >= d->res.out_total[i])) {
            xfer_free(st->x);
            st->x = NULL;
            st->done = true;
        } else if (!st->x) {
            st->retry_at = 0;
        }
    }
    attempt_check(er, a);
}

/* ---- starting what is due ---- */

static void start_poll(struct exec_remote *er, struct node *n) {
    char *url;
    long timeout;

    if (!n->seq_known) {
        url = url_printf("%s/v1/jobs?limit=1&label=%s", n->url, er->coord_enc);
        timeout = REQ_TIMEOUT_MS;
    } else {
        url = url_printf("%s/v1/jobs?since=%lld&wait=%.3f&label=%s&limit=%d", n->url,
                         (long long)n->seq, er->wait_s, er->coord_enc, n->limit);
        timeout = (long)(er->wait_s * 1000) + POLL_EXTRA_MS;
    }
    n->poll = xfer_start(er, X_POLL, url, NULL, 0, NULL, timeout);
    if (n->poll) {
        n->poll->node = n;
        n->poll->first = !n->seq_known;
    } else {
        n->poll_at = jobd_mono_ms() + backoff_next(&n->backoff_ms);
    }
}

static void start_attempt_req(struct exec_remote *er, struct attempt *a, struct node *n,
                              int64_t now) {
    if (!a->rid[0] && a->spec_json) {
        char key[EXEC_REMOTE_NODE_ID_MAX + 2 * JOBD_MAX_ID_BYTES + 32];
        snprintf(key, sizeof key, "%s-%s-%d", er->coord, a->id, a->attempt);
        a->req = xfer_start(er, X_DISPATCH, url_printf("%s/v1/jobs", n->url), a->spec_json,
                            strlen(a->spec_json), key, REQ_TIMEOUT_MS);
    } else if (a->resumed && !a->doc_read && a->rid[0]) {
        a->req = xfer_start(er, X_DOC, url_printf("%s/v1/jobs/%s", n->url, a->rid), NULL, 0, NULL,
                            REQ_TIMEOUT_MS);
    } else {
        return;
    }
    if (a->req)
        a->req->a = a;
    else
        a->req_at = now + RETRY_MS;
}

static void start_stream(struct exec_remote *er, struct attempt *a, struct node *n, int i,
                         int64_t now) {
    struct stream *st = &a->s[i];

    st->x = xfer_start(er, X_STREAM,
                       url_printf("%s/v1/jobs/%s/%s?offset=%lld&follow=true", n->url, a->rid,
                                  i ? "stderr" : "stdout", (long long)st->copied),
                       NULL, 0, NULL, 0);
    if (!st->x) {
        st->retry_at = now + backoff_next(&st->backoff_ms);
        return;
    }
    st->x->a = a;
    st->x->stream = i;
    st->x->after_final = a->final;
    /* The job has ended: the node sends the rest at once, or something is wrong. */
    if (a->final && (curl_easy_setopt(st->x->h, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK ||
                     curl_easy_setopt(st->x->h, CURLOPT_LOW_SPEED_TIME, STALL_S) != CURLE_OK))
        log_warn("exec_remote: job %s: cannot bound the read of its %s", a->id,
                 i ? "stderr" : "stdout");
}

/* Start what is due; return the mono ms of the next thing that will be. */
static int64_t start_due(struct exec_remote *er, int64_t now) {
    int64_t next = now + IDLE_MS;

    for (struct node *n = er->nodes; n; n = n->next) {
        if (!n->poll && now >= n->poll_at)
            start_poll(er, n);
        if (!n->poll && n->poll_at < next)
            next = n->poll_at;
    }
    for (struct attempt *a = er->attempts; a; a = a->next) {
        struct node *n = node_find(er, a->node_id);
        if (!n || !n->seq_known)
            continue;
        if (!a->req && now >= a->req_at)
            start_attempt_req(er, a, n, now);
        if (!a->req && a->req_at > now && a->req_at < next &&
            (!a->rid[0] || (a->resumed && !a->doc_read)))
            next = a->req_at;
        if (!a->rid[0])
            continue;
        if (a->cancel_wanted && !a->cancel_done && !a->final && !a->cancel_x) {
            if (now >= a->cancel_at) {
                a->cancel_x =
                    xfer_start(er, X_CANCEL, url_printf("%s/v1/jobs/%s/cancel", n->url, a->rid), "",
                               0, NULL, REQ_TIMEOUT_MS);
                if (a->cancel_x)
                    a->cancel_x->a = a;
                else
                    a->cancel_at = now + RETRY_MS;
            } else if (a->cancel_at < next) {
                next = a->cancel_at;
            }
        }
        if (!a->running_seen && !a->final)
            continue;
        /* Most jobs are over in a moment: follow only those that run on. */
        if (!a->final && now < a->running_at + STREAM_DELAY_MS) {
            if (a->running_at + STREAM_DELAY_MS < next)
                next = a->running_at + STREAM_DELAY_MS;
            continue;
        }
        for (int i = 0; i < 2; i++) {
            struct stream *st = &a->s[i];
            if (st->done || st->x)
                continue;
            if (now >= st->retry_at)
                start_stream(er, a, n, i, now);
            if (!st->x && st->retry_at < next)
                next = st->retry_at;
        }
    }
    return next;
}

/* ---- finished transfers ---- */

struct poll_walk {
    struct exec_remote *er;
    struct node *n;
    int docs;
};

static int poll_doc(void *arg, const struct exec_remote_doc *d) {
    struct poll_walk *w = arg;
    w->docs++;
    handle_doc(w->er, w->n, d, true);
    return 0;
}

static void poll_done(struct exec_remote *er, struct xfer *x, CURLcode cc, long code) {
    struct node *n = x->node;
    struct poll_walk w = {er, n, 0};
    int64_t seq = 0;
    bool ok = false;

    n->poll = NULL;
    if (cc == CURLE_OK && code == 200) {
        /* The first answer gives the seq only (see the top of this file). */
        ok = exec_remote_parse_list(x->body, x->len, er->coord, x->first ? NULL : poll_doc, &w,
                                    &seq) == 0;
    }
    if (ok) {
        n->seq = seq;
        n->seq_known = true;
        n->backoff_ms = 0;
        n->poll_at = 0;
        /* An empty answer long before its wait: a node that does not block; do not spin. */
        if (!x->first && w.docs == 0 && jobd_mono_ms() - x->started < (int64_t)(er->wait_s * 500))
            n->poll_at = jobd_mono_ms() + BACKOFF_MIN_MS;
        if (n->limit < POLL_LIMIT)
            n->limit = n->limit * 2 > POLL_LIMIT ? POLL_LIMIT : n->limit * 2;
        xfer_free(x);
        if (er->cb.node_seen)
            er->cb.node_seen(er->ctx, n->id);
        return;
    }
    if (x->too_big) {
        n->limit = n->limit > 1 ? n->limit / 2 : 1;
        log_warn("exec_remote: node %s: poll answer over %zu bytes; asking for %d jobs at a time",
                 n->id, BODY_MAX, n->limit);
    } else if (n->backoff_ms == 0) {
        log_warn("exec_remote: node %s: poll failed: %s", n->id,
                 cc == CURLE_OK && code == 200 ? "the answer is not a job list" : why(cc, code));
    }
    n->poll_at = jobd_mono_ms() + backoff_next(&n->backoff_ms);
    xfer_free(x);
}

/* The words of a refusal: problem+json "detail", else the body's text. */
static void refusal_detail(const struct xfer *x, long code, char *buf, size_t len) {
    json_t *root = x->body ? json_loadb(x->body, x->len, 0, NULL) : NULL;
    const char *d = json_string_value(json_object_get(root, "detail"));

    if (!d)
        d = json_string_value(json_object_get(root, "title"));
    if (d && *d) {
        copy_text(buf, len, d, strlen(d));
    } else if (x->body && x->len > 0) {
        size_t n = x->len < len - 1 ? x->len : len - 1;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)x->body[i];
            buf[i] = c >= 0x20 && c < 0x7f ? (char)c : (c == '\n' || c == '\t' ? ' ' : '?');
        }
        buf[n] = '\0';
    } else {
        snprintf(buf, len, "HTTP status %ld", code);
    }
    json_decref(root);
}

static bool retryable(CURLcode cc, long code) {
    return cc != CURLE_OK || code == 408 || code == 429 || code >= 500 || code < 200;
}

static void req_done(struct exec_remote *er, struct xfer *x, CURLcode cc, long code) {
    struct attempt *a = x->a;
    struct node *n = node_find(er, a->node_id);
    bool dispatch = x->kind == X_DISPATCH;

    a->req = NULL;
    if (cc == CURLE_OK && (code == 200 || code == 201)) {
        json_t *root = json_loadb(x->body ? x->body : "", x->len, JSON_REJECT_DUPLICATES, NULL);
        struct exec_remote_doc d;
        int rc = exec_remote_parse_doc(root, er->coord, &d);
        json_decref(root);
        if (rc == 0 && a->rid[0] && strcmp(d.remote_id, a->rid) != 0)
            rc = -EINVAL;
        if (rc == 0) {
            xfer_free(x);
            if (er->cb.node_seen && n)
                er->cb.node_seen(er->ctx, n->id);
            a->doc_read = true;
            if (n) {
                struct exec_remote_doc dd = d;
                /* It answers our request: it is this attempt's, whatever its labels say. */
                if (!a->rid[0]) {
                    dd.ours = true;
                    snprintf(dd.job_id, sizeof dd.job_id, "%s", a->id);
                    dd.attempt = a->attempt;
                }
                handle_doc(er, n, &dd, false);
            }
            exec_remote_doc_free(&d);
            return;
        }
        exec_remote_doc_free(&d);
        log_warn("exec_remote: job %s: node %s answered %s with a document that is not a job's",
                 a->id, a->node_id, dispatch ? "a dispatch" : "a read");
        a->req_at = jobd_mono_ms() + (dispatch ? RETRY_MS : backoff_next(&a->req_backoff));
        xfer_free(x);
        return;
    }
    if (retryable(cc, code)) {
        if (a->req_backoff == 0)
            log_warn("exec_remote: job %s: %s on node %s failed (%s), retrying", a->id,
                     dispatch ? "dispatch" : "read", a->node_id, why(cc, code));
        a->req_at = jobd_mono_ms() + (dispatch ? RETRY_MS : backoff_next(&a->req_backoff));
        if (dispatch)
            a->req_backoff = RETRY_MS;
        xfer_free(x);
        return;
    }
    char detail[DETAIL_MAX];
    if (!dispatch && code == 404)
        snprintf(detail, sizeof detail, "node %s has no job %s any more", a->node_id, a->rid);
    else
        refusal_detail(x, code, detail, sizeof detail);
    xfer_free(x);
    if (n && er->cb.node_seen)
        er->cb.node_seen(er->ctx, n->id);
    attempt_refuse(er, a, (int)code, detail);
}

static void stream_done(struct exec_remote *er, struct xfer *x, CURLcode cc, long code) {
    struct attempt *a = x->a;
    int i = x->stream;
    struct stream *st = &a->s[i];
    bool after_final = x->after_final;

    st->x = NULL;
    xfer_free(x);
    if (cc == CURLE_OK && code == 404) {
        st->done = true; /* the node has no such stream (or job) any more */
    } else if (cc == CURLE_OK && code == 200) {
        /*
         * A follow ends when the job has ended (or the node stops). Done when
         * it was asked after the end was known, or when it brought every byte
         * the final document counts; else read on (at once once ended).
         */
        if (after_final ||
            (a->final && !a->fin.res.out_truncated[i] && st->copied >= a->fin.res.out_total[i]))
            st->done = true;
        else
            st->retry_at = a->final ? 0 : jobd_mono_ms() + backoff_next(&st->backoff_ms);
    } else if (a->final && ++st->fails_final >= STREAM_TRIES_FINAL) {
        log_warn("exec_remote: job %s: the rest of its %s on node %s cannot be read (%s)", a->id,
                 i ? "stderr" : "stdout", a->node_id, why(cc, code));
        st->done = true;
        st->lost = true;
    } else {
        st->retry_at = jobd_mono_ms() + backoff_next(&st->backoff_ms);
    }
    attempt_check(er, a);
}

static void cancel_done(struct exec_remote *er, struct xfer *x, CURLcode cc, long code) {
    struct attempt *a = x->a;

    (void)er;
    if (!a) {
        if (cc != CURLE_OK || code >= 300)
            log_warn("exec_remote: cancel at %s failed (%s)", x->url, why(cc, code));
        xfer_free(x);
        return;
    }
    a->cancel_x = NULL;
    if (retryable(cc, code))
        a->cancel_at = jobd_mono_ms() + RETRY_MS;
    else
        a->cancel_done = true;
    xfer_free(x);
}

static void handle_done(struct exec_remote *er, CURL *h, CURLcode cc) {
    struct xfer *x = NULL;
    long code = 0;

    curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&x);
    if (!x)
        return;
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    switch (x->kind) {
    case X_POLL:
        poll_done(er, x, cc, code);
        break;
    case X_DISPATCH:
    case X_DOC:
        if (x->a)
            req_done(er, x, cc, code);
        else
            xfer_free(x); /* detached: its attempt no longer needs the answer */
        break;
    case X_STREAM:
        stream_done(er, x, cc, code);
        break;
    case X_CANCEL:
        cancel_done(er, x, cc, code);
        break;
    }
}

/* ---- the inbox ---- */

static void request_free(struct request *r) {
    if (r->a)
        attempt_free(r->a);
    free(r->url);
    free(r);
}

/* Drop an attempt on the scheduler's word; the node is told to cancel it. */
static void attempt_abandon(struct exec_remote *er, struct attempt *a) {
    struct node *n = node_find(er, a->node_id);

    if (a->rid[0] && !a->final && n)
        cancel_orphan(er, n->url, a->rid);
    attempt_forget(er, a);
}

static void apply(struct exec_remote *er, struct request *r) {
    struct attempt *a;
    struct node *n;

    switch (r->kind) {
    case R_START:
    case R_RESUME:
        a = attempt_find(er, r->num);
        if (a) {
            log_warn("exec_remote: job %s: attempt %d started while attempt %d was not abandoned",
                     r->a->id, r->a->attempt, a->attempt);
            attempt_abandon(er, a);
        }
        if (!node_find(er, r->a->node_id) && r->url) {
            n = calloc(1, sizeof *n);
            if (n) {
                snprintf(n->id, sizeof n->id, "%s", r->a->node_id);
                n->url = r->url;
                r->url = NULL;
                n->limit = POLL_LIMIT;
                n->next = er->nodes;
                er->nodes = n;
            }
        }
        r->a->next = er->attempts;
        er->attempts = r->a;
        r->a = NULL;
        break;
    case R_CANCEL:
        a = attempt_find(er, r->num);
        if (a)
            a->cancel_wanted = true;
        break;
    case R_ABANDON:
        a = attempt_find(er, r->num);
        if (a && a->attempt == r->attempt)
            attempt_abandon(er, a);
        break;
    case R_SET_NODE:
        n = node_find(er, r->node_id);
        if (!r->url) {
            if (n) {
                for (struct node **pp = &er->nodes; *pp; pp = &(*pp)->next) {
                    if (*pp == n) {
                        *pp = n->next;
                        break;
                    }
                }
                node_free(er, n);
            }
            break;
        }
        if (n && strcmp(n->url, r->url) == 0)
            break;
        if (!n) {
            n = calloc(1, sizeof *n);
            if (!n) {
                log_error("exec_remote: node %s: out of memory", r->node_id);
                break;
            }
            snprintf(n->id, sizeof n->id, "%s", r->node_id);
            n->limit = POLL_LIMIT;
            n->next = er->nodes;
            er->nodes = n;
        } else {
            xfer_free(n->poll);
            n->poll = NULL;
            n->poll_at = 0;
            n->backoff_ms = 0;
            free(n->url);
        }
        n->url = r->url;
        r->url = NULL;
        break;
    }
}

/* Take the inbox (and the stop flags) under the lock. */
static struct request *take_inbox(struct exec_remote *er, bool *stop, bool *quit) {
    struct request *r;

    pthread_mutex_lock(&er->lock);
    r = er->inbox;
    er->inbox = NULL;
    er->inbox_tail = &er->inbox;
    *stop = er->stop;
    *quit = er->quit;
    pthread_mutex_unlock(&er->lock);
    return r;
}

static void drop_everything(struct exec_remote *er) {
    while (er->attempts)
        attempt_forget(er, er->attempts);
    while (er->nodes) {
        struct node *n = er->nodes;
        er->nodes = n->next;
        node_free(er, n);
    }
    while (er->xfers)
        xfer_free(er->xfers);
}

static void *remote_main(void *arg) {
    struct exec_remote *er = arg;

    for (;;) {
        bool stop, quit;
        struct request *r = take_inbox(er, &stop, &quit);

        while (r) {
            struct request *next = r->next;
            if (!stop)
                apply(er, r);
            request_free(r);
            r = next;
        }
        if (stop) {
            drop_everything(er);
            pthread_mutex_lock(&er->lock);
            er->stopped = true;
            pthread_cond_broadcast(&er->stopped_cv);
            pthread_mutex_unlock(&er->lock);
            if (quit)
                break;
            /* Stopped: wait for destroy. */
            curl_multi_poll(er->multi, NULL, 0, IDLE_MS, NULL);
            continue;
        }
        int64_t now = jobd_mono_ms();
        int64_t next = start_due(er, now);
        int running = 0;
        CURLMsg *m;
        int left;

        curl_multi_perform(er->multi, &running);
        while ((m = curl_multi_info_read(er->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE)
                handle_done(er, m->easy_handle, m->data.result);
        }
        /* What handle_done made due (a retry at 0, a poll) starts on the next turn. */
        now = jobd_mono_ms();
        next = start_due(er, now);
        int64_t wait = next - jobd_mono_ms();
        if (wait < 0)
            wait = 0;
        curl_multi_poll(er->multi, NULL, 0, (int)(wait > IDLE_MS ? IDLE_MS : wait), NULL);
    }
    return NULL;
}

/* ---- public ---- */

static void queue(struct exec_remote *er, struct request *r) {
    *er->inbox_tail = r;
    er->inbox_tail = &r->next;
}

void exec_remote_destroy(struct exec_remote *er) {
    if (!er)
        return;
    if (er->thread_started) {
        pthread_mutex_lock(&er->lock);
        er->stop = true;
        er->quit = true;
        pthread_mutex_unlock(&er->lock);
        curl_multi_wakeup(er->multi);
        pthread_join(er->thread, NULL);
    }
    drop_everything(er);
    while (er->inbox) {
        struct request *r = er->inbox;
        er->inbox = r->next;
        request_free(r);
    }
    if (er->multi)
        curl_multi_cleanup(er->multi);
    pthread_mutex_destroy(&er->lock);
    pthread_cond_destroy(&er->stopped_cv);
    free(er->out_dir);
    free(er->coord);
    free(er->coord_enc);
    if (er->token_hdr) {
        explicit_bzero(er->token_hdr, strlen(er->token_hdr));
        free(er->token_hdr);
    }
    free(er->cacert);
    free(er);
}

/* Percent-encode "jobd.coordinator=<id>" for a query. Return a new string or NULL. */
static char *label_query(const char *coord) {
    size_t n = strlen(EXEC_REMOTE_LABEL_COORD) + 3 + strlen(coord) * 3 + 1;
    char *out = malloc(n), *p = out;
    static const char hex[] = "0123456789ABCDEF";

    if (!out)
        return NULL;
    p += sprintf(p, "%s%%3D", EXEC_REMOTE_LABEL_COORD);
    for (const unsigned char *s = (const unsigned char *)coord; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            *s == '.' || *s == '_' || *s == '-' || *s == '~') {
            *p++ = (char)*s;
        } else {
            *p++ = '%';
            *p++ = hex[*s >> 4];
            *p++ = hex[*s & 15];
        }
    }
    *p = '\0';
    return out;
}

int exec_remote_create(const struct exec_remote_config *cfg, const struct exec_remote_callbacks *cb,
                       void *ctx, struct exec_remote **out) {
    struct exec_remote *er = calloc(1, sizeof *er);
    pthread_condattr_t ca;
    int rc;

    if (!er)
        return -ENOMEM;
    pthread_mutex_init(&er->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&er->stopped_cv, &ca);
    pthread_condattr_destroy(&ca);
    er->inbox_tail = &er->inbox;
    er->cb = *cb;
    er->ctx = ctx;
    er->wait_s = cfg->poll_wait_s > 0 ? cfg->poll_wait_s : 30;
    er->out_dir = strdup(cfg->out_dir ? cfg->out_dir : ".");
    er->coord = strdup(cfg->coordinator_id ? cfg->coordinator_id : "");
    er->coord_enc = er->coord ? label_query(er->coord) : NULL;
    rc = 0;
    if (cfg->cluster_token &&
        asprintf(&er->token_hdr, "Authorization: Bearer %s", cfg->cluster_token) < 0) {
        er->token_hdr = NULL;
        rc = -ENOMEM;
    }
    er->cacert = cfg->cacert ? strdup(cfg->cacert) : NULL;
    er->multi = curl_multi_init();
    if (rc < 0 || !er->out_dir || !er->coord || !er->coord_enc || (cfg->cacert && !er->cacert) ||
        !er->multi) {
        exec_remote_destroy(er);
        return -ENOMEM;
    }
    rc = pthread_create(&er->thread, NULL, remote_main, er);
    if (rc != 0) {
        exec_remote_destroy(er);
        return -rc;
    }
    er->thread_started = true;
    *out = er;
    return 0;
}

/* Make an attempt from a run, with its writers. Return NULL if memory runs out. */
static struct attempt *attempt_new(struct exec_remote *er, const struct exec_remote_run *run,
                                   bool fresh) {
    struct attempt *a = calloc(1, sizeof *a);

    if (!a)
        return NULL;
    a->num = run->num;
    snprintf(a->id, sizeof a->id, "%s", run->id);
    a->attempt = run->attempt;
    snprintf(a->node_id, sizeof a->node_id, "%s", run->node_id ? run->node_id : "");
    for (int i = 0; i < 2; i++) {
        a->s[i].w = output_writer_open(er->out_dir, a->id, (enum output_stream)i, run->output_cap);
        if (!a->s[i].w) {
            attempt_free(a);
            return NULL;
        }
        if (fresh)
            output_writer_set_fresh(a->s[i].w);
    }
    return a;
}

static int submit(struct exec_remote *er, const struct exec_remote_run *run, bool resume) {
    struct request *r;
    struct attempt *a;

    if (!run->node_id || !run->node_id[0] || strlen(run->node_id) > EXEC_REMOTE_NODE_ID_MAX)
        return -EINVAL;
    if (resume ? (!run->remote_id || !rid_ok(run->remote_id)) : !run->spec_json)
        return -EINVAL;
    r = calloc(1, sizeof *r);
    a = attempt_new(er, run, !resume && run->attempt == 1);
    if (!r || !a)
        goto nomem;
    if (resume) {
        snprintf(a->rid, sizeof a->rid, "%s", run->remote_id);
        a->resumed = true;
    } else if (!(a->spec_json = strdup(run->spec_json))) {
        goto nomem;
    }
    if (run->node_url && !(r->url = strdup(run->node_url)))
        goto nomem;
    r->kind = resume ? R_RESUME : R_START;
    r->num = run->num;
    r->a = a;
    pthread_mutex_lock(&er->lock);
    if (er->stop) {
        pthread_mutex_unlock(&er->lock);
        request_free(r);
        return -ESHUTDOWN;
    }
    queue(er, r);
    pthread_mutex_unlock(&er->lock);
    curl_multi_wakeup(er->multi);
    return 0;
nomem:
    if (a)
        attempt_free(a);
    if (r) {
        r->a = NULL;
        request_free(r);
    }
    return -ENOMEM;
}

int exec_remote_start(struct exec_remote *er, const struct exec_remote_run *run) {
    return submit(er, run, false);
}

int exec_remote_resume(struct exec_remote *er, const struct exec_remote_run *run) {
    return submit(er, run, true);
}

/* Queue a small request; dropped after stop or when memory runs out (logged). */
static void post_simple(struct exec_remote *er, enum rkind kind, int64_t num, int attempt,
                        const char *node_id, const char *url) {
    struct request *r = calloc(1, sizeof *r);

    if (!r || (url && !(r->url = strdup(url)))) {
        log_error("exec_remote: out of memory: a request about job %lld is lost", (long long)num);
        free(r);
        return;
    }
    r->kind = kind;
    r->num = num;
    r->attempt = attempt;
    if (node_id)
        snprintf(r->node_id, sizeof r->node_id, "%s", node_id);
    pthread_mutex_lock(&er->lock);
    if (er->stop) {
        pthread_mutex_unlock(&er->lock);
        request_free(r);
        return;
    }
    queue(er, r);
    pthread_mutex_unlock(&er->lock);
    curl_multi_wakeup(er->multi);
}

void exec_remote_set_node(struct exec_remote *er, const char *node_id, const char *url) {
    if (!node_id || strlen(node_id) > EXEC_REMOTE_NODE_ID_MAX)
        return;
    post_simple(er, R_SET_NODE, 0, 0, node_id, url);
}

void exec_remote_cancel(struct exec_remote *er, int64_t num) {
    post_simple(er, R_CANCEL, num, 0, NULL, NULL);
}

void exec_remote_abandon(struct exec_remote *er, int64_t num, int attempt) {
    post_simple(er, R_ABANDON, num, attempt, NULL, NULL);
}

void exec_remote_stop(struct exec_remote *er) {
    pthread_mutex_lock(&er->lock);
    er->stop = true;
    pthread_mutex_unlock(&er->lock);
    curl_multi_wakeup(er->multi);
    if (!er->thread_started || pthread_equal(pthread_self(), er->thread))
        return;
    pthread_mutex_lock(&er->lock);
    while (!er->stopped)
        pthread_cond_wait(&er->stopped_cv, &er->lock);
    pthread_mutex_unlock(&er->lock);
}
