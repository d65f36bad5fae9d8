/*
 * client.c: the jobd client library (jobd/client.h) over libcurl and jansson.
 *
 * A handle owns one easy handle, reused for every plain request so that the
 * connection stays alive between calls (curl_easy_reset keeps live
 * connections). A follow opens easy handles of its own, driven by a multi
 * handle in the caller's thread, so the plain handle stays free for a cancel
 * or a get from the follow's tick. Nothing here has global state except the
 * curl_global_init guard.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "jobd/client.h"
#include "jobd/job.h"
#include "jobd/util.h"

#define DEFAULT_CONNECT_MS 10000L
#define DEFAULT_TIMEOUT_MS 60000L
#define POLL_MAX_S         120.0        /* one long-poll of a wait; the server allows 300 */
#define MAX_ANSWER         (256L << 20) /* bytes of one buffered answer */
#define MAX_ERROR_BODY     (64 * 1024)  /* bytes kept of an error answer of a follow */
#define PAGE_MAX           1000         /* the server's largest page */
#define FOLLOW_TICK_MS     250          /* longest wait between two ticks of a follow */

struct jobd_client {
    char *url;  /* base, no trailing slash */
    char *auth; /* "Authorization: Bearer ..." or NULL */
    char *ua;
    char *ca_file; /* CURLOPT_CAINFO, or NULL: the system's store */
    long connect_ms, timeout_ms;
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
};

/* A growing buffer of answer bytes, always NUL-terminated when non-empty. */
struct buf {
    char *p;
    size_t len, cap, max;
    bool oom, too_big;
};

/* What one request learned: the status and the headers we care about. */
struct resp {
    long status;
    char ctype[128];
    double retry_after;
    struct buf body;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init_once(void) {
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int jobd_client_global_init(void) {
    pthread_once(&global_once, global_init_once);
    return global_rc == CURLE_OK ? 0 : -EIO;
}

/* ---- errors ---- */

static void err_clear(struct jobd_client_error *err) {
    if (err)
        memset(err, 0, sizeof *err);
}

static int fail(struct jobd_client_error *err, enum jobd_client_errkind kind, int code,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(struct jobd_client_error *err, enum jobd_client_errkind kind, int code,
                const char *fmt, ...) {
    va_list ap;

    if (!err)
        return code;
    err->kind = kind;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

static void copy_str(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "");
}

/* ---- buffers and callbacks ---- */

static int buf_add(struct buf *b, const char *p, size_t n) {
    if (b->oom || b->too_big)
        return -1;
    if (b->max && b->len + n > b->max) {
        b->too_big = true;
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *np;
        while (cap < b->len + n + 1)
            cap *= 2;
        np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return -1;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static size_t body_cb(char *p, size_t size, size_t n, void *arg) {
    struct resp *r = arg;

    return buf_add(&r->body, p, size * n) == 0 ? size * n : 0;
}

/* Trim a header value of its surrounding blanks into dst. */
static void header_value(const char *v, size_t n, char *dst, size_t dlen) {
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= dlen)
        n = dlen - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t header_cb(char *p, size_t size, size_t n, void *arg) {
    struct resp *r = arg;
    size_t len = size * n;
    char tmp[64];

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* A new answer (after a 100 Continue, say): forget the last one's headers. */
        r->ctype[0] = '\0';
        r->retry_after = 0;
    } else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
        header_value(p + 13, len - 13, r->ctype, sizeof r->ctype);
    } else if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        header_value(p + 12, len - 12, tmp, sizeof tmp);
        r->retry_after = strtod(tmp, NULL);
    }
    return len;
}

/* ---- handles ---- */

struct jobd_client *jobd_client_new(const struct jobd_client_options *opts,
                                    struct jobd_client_error *err) {
    struct jobd_client *c = NULL;
    const char *url;
    size_t n;

    err_clear(err);
    if (!opts || !opts->url || !*opts->url) {
        fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no server URL given");
        return NULL;
    }
    if (jobd_client_global_init() < 0) {
        fail(err, JOBD_CLIENT_ERR_TRANSPORT, -EIO, "libcurl cannot be initialised");
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    url = opts->url;
    n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    if (strstr(url, "://")) {
        if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
            fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL,
                 "server URL %s: only http:// and https:// are supported", url);
            goto fail;
        }
        c->url = strndup(url, n);
    } else if (asprintf(&c->url, "http://%.*s", (int)n, url) < 0) {
        c->url = NULL;
    }
    if (!c->url)
        goto nomem;
    if (opts->token && *opts->token) {
        if (strpbrk(opts->token, "\r\n")) {
            fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "the token holds a line break");
            goto fail;
        }
        if (asprintf(&c->auth, "Authorization: Bearer %s", opts->token) < 0) {
            c->auth = NULL;
            goto nomem;
        }
    }
    c->ua = strdup(opts->user_agent ? opts->user_agent : "jobd-client/" JOBD_VERSION);
    if (!c->ua)
        goto nomem;
    if (opts->ca_file && *opts->ca_file) {
        c->ca_file = strdup(opts->ca_file);
        if (!c->ca_file)
            goto nomem;
    }
    c->connect_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_MS;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->easy = curl_easy_init();
    if (!c->easy) {
        fail(err, JOBD_CLIENT_ERR_TRANSPORT, -EIO, "libcurl cannot create a handle");
        goto fail;
    }
    return c;
nomem:
    fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
fail:
    jobd_client_free(c);
    return NULL;
}

void jobd_client_free(struct jobd_client *c) {
    if (!c)
        return;
    if (c->easy)
        curl_easy_cleanup(c->easy);
    free(c->url);
    free(c->auth);
    free(c->ua);
    free(c->ca_file);
    free(c);
}

const char *jobd_client_url(const struct jobd_client *c) {
    return c->url;
}

/*
 * Set what every request of ours needs on an easy handle: no signals,
 * timeouts (timeout_ms 0: none), http(s) only, keepalive, headers, and the
 * CA file that verifies an https:// server (peer and host checks stay on,
 * as libcurl's defaults are). Return 0 or the first failing CURLcode.
 */
static CURLcode setup_easy(struct jobd_client *c, CURL *e, const char *url, long timeout_ms,
                           struct curl_slist *hdrs, char *errbuf) {
    CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_URL, url);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    SET(CURLOPT_USERAGENT, c->ua);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_TCP_KEEPIDLE, 30L);
    SET(CURLOPT_TCP_KEEPINTVL, 10L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
#undef SET
    errbuf[0] = '\0';
    return rc;
}

/* Headers of a request: a new list, or NULL if memory runs out. */
static struct curl_slist *make_headers(const struct jobd_client *c, bool json_body,
                                       const char *idem_key) {
    struct curl_slist *h = NULL, *t;
    char line[320];

#define ADD(s)                                                                                     \
    do {                                                                                           \
        t = curl_slist_append(h, s);                                                               \
        if (!t)                                                                                    \
            goto nomem;                                                                            \
        h = t;                                                                                     \
    } while (0)
    ADD("Accept: application/json, application/problem+json, */*");
    ADD("Expect:");
    if (json_body)
        ADD("Content-Type: application/json");
    if (c->auth)
        ADD(c->auth);
    if (idem_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", idem_key);
        ADD(line);
    }
#undef ADD
    return h;
nomem:
    curl_slist_free_all(h);
    return NULL;
}

/* Map a failed transfer to our error. */
static int transport_error(struct jobd_client *c, CURLcode rc, const char *errbuf,
                           struct jobd_client_error *err) {
    const char *why = errbuf && *errbuf ? errbuf : curl_easy_strerror(rc);
    int code;

    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        code = -ECONNREFUSED;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        code = -ETIMEDOUT;
        break;
    case CURLE_OUT_OF_MEMORY:
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        if (err)
            err->curl_code = (int)rc;
        if (rc == CURLE_PEER_FAILED_VERIFICATION)
            return fail(err, JOBD_CLIENT_ERR_TLS, -EIO,
                        "TLS: cannot verify the certificate of %s: %s", c->url, why);
        return fail(err, JOBD_CLIENT_ERR_TLS, -EIO, "TLS with %s failed: %s", c->url, why);
    default:
        code = -EIO;
    }
    if (err)
        err->curl_code = (int)rc;
    if (code == -ECONNREFUSED)
        return fail(err, JOBD_CLIENT_ERR_TRANSPORT, code, "cannot connect to %s: %s", c->url, why);
    return fail(err, JOBD_CLIENT_ERR_TRANSPORT, code, "%s: %s", c->url, why);
}

/* Fill err from an error answer (problem+json, or anything else) of status `status`. */
static int http_error(long status, const char *ctype, const char *body, size_t len,
                      double retry_after, struct jobd_client_error *err) {
    json_t *p = NULL;

    if (!err)
        return -EREMOTEIO;
    err->status = status;
    err->retry_after = retry_after;
    if (body && len && strstr(ctype, "json"))
        p = json_loadb(body, len, 0, NULL);
    if (json_is_object(p)) {
        copy_str(err->type, sizeof err->type, json_string_value(json_object_get(p, "type")));
        copy_str(err->title, sizeof err->title, json_string_value(json_object_get(p, "title")));
        copy_str(err->detail, sizeof err->detail, json_string_value(json_object_get(p, "detail")));
        copy_str(err->field, sizeof err->field, json_string_value(json_object_get(p, "field")));
    } else if (body && len) {
        /* Not a problem document: keep the first line of whatever it was. */
        size_t n = strcspn(body, "\r\n");
        snprintf(err->detail, sizeof err->detail, "%.*s", (int)(n < 200 ? n : 200), body);
    }
    json_decref(p);
    if (!err->title[0])
        copy_str(err->title, sizeof err->title, status >= 500 ? "Server error" : "Request failed");
    return fail(err, JOBD_CLIENT_ERR_HTTP, -EREMOTEIO, "%s (HTTP %ld)%s%s", err->title, status,
                err->detail[0] ? ": " : "", err->detail);
}

/*
 * One request on the handle's easy handle. `path` starts with "/". `body`
 * (borrowed, may be NULL) is sent as JSON with method POST; `method` may
 * also be "GET" or "DELETE". `extra_ms` extends the transfer timeout (a
 * long-poll). On 2xx return 0 with the answer in *r (the caller frees
 * r->body.p); otherwise fill err and return the error (r->body freed).
 */
static int request(struct jobd_client *c, const char *method, const char *path, const char *body,
                   size_t body_len, const char *idem_key, long extra_ms, struct resp *r,
                   struct jobd_client_error *err) {
    struct curl_slist *hdrs = NULL;
    char *url = NULL;
    CURLcode rc;
    bool post = strcmp(method, "POST") == 0;
    int ret;

    memset(r, 0, sizeof *r);
    r->body.max = MAX_ANSWER;
    if (asprintf(&url, "%s%s", c->url, path) < 0)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    hdrs = make_headers(c, post, idem_key);
    if (!hdrs) {
        ret = fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
        goto out;
    }
    curl_easy_reset(c->easy);
    rc = setup_easy(c, c->easy, url, c->timeout_ms + extra_ms, hdrs, c->errbuf);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, body_cb);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, r);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_cb);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, r);
    if (rc == CURLE_OK && post) {
        rc = curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        if (rc == CURLE_OK)
            rc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body ? body : "");
    } else if (rc == CURLE_OK && strcmp(method, "GET") != 0) {
        rc = curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
    }
    if (rc != CURLE_OK) {
        ret = fail(err, JOBD_CLIENT_ERR_TRANSPORT, -EIO, "libcurl refused an option: %s",
                   curl_easy_strerror(rc));
        goto out;
    }
    rc = curl_easy_perform(c->easy);
    if (rc == CURLE_WRITE_ERROR && r->body.oom) {
        ret = fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
        goto out;
    }
    if (rc == CURLE_WRITE_ERROR && r->body.too_big) {
        ret = fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO, "%s %s: the answer is over %ld bytes",
                   method, path, MAX_ANSWER);
        goto out;
    }
    if (rc != CURLE_OK) {
        ret = transport_error(c, rc, c->errbuf, err);
        goto out;
    }
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->status >= 200 && r->status < 300) {
        ret = 0;
        goto out;
    }
    if (r->status >= 400)
        ret = http_error(r->status, r->ctype, r->body.p, r->body.len, r->retry_after, err);
    else
        ret = fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO, "%s %s: unexpected HTTP status %ld",
                   method, path, r->status);
out:
    if (ret < 0) {
        free(r->body.p);
        r->body.p = NULL;
        r->body.len = 0;
    }
    curl_slist_free_all(hdrs);
    free(url);
    return ret;
}

/* Parse a JSON object answer; return a new reference or NULL with err filled. */
static json_t *answer_object(struct resp *r, const char *what, struct jobd_client_error *err) {
    json_error_t jerr;
    json_t *v = r->body.len ? json_loadb(r->body.p, r->body.len, JSON_ALLOW_NUL, &jerr) : NULL;

    free(r->body.p);
    r->body.p = NULL;
    if (!json_is_object(v)) {
        json_decref(v);
        fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO, "%s: the answer is not a JSON object", what);
        return NULL;
    }
    return v;
}

/* base + ID + suffix, with the id escaped: a new string, or NULL. */
static char *id_path(struct jobd_client *c, const char *base, const char *id, const char *suffix) {
    char *esc, *p = NULL;

    esc = curl_easy_escape(c->easy, id, 0);
    if (!esc)
        return NULL;
    if (asprintf(&p, "%s%s%s", base, esc, suffix) < 0)
        p = NULL;
    curl_free(esc);
    return p;
}

/* "/v1/jobs/ID" + suffix, with the id escaped: a new string, or NULL. */
static char *job_path(struct jobd_client *c, const char *id, const char *suffix) {
    return id_path(c, "/v1/jobs/", id, suffix);
}

static int check_id(const char *id, struct jobd_client_error *err) {
    if (!id || !*id)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no job id given");
    return 0;
}

/* "/v1/batches/ID" + suffix, with the id escaped: a new string, or NULL. */
static char *batch_path(struct jobd_client *c, const char *id, const char *suffix) {
    return id_path(c, "/v1/batches/", id, suffix);
}

static int check_batch_id(const char *id, struct jobd_client_error *err) {
    if (!id || !*id)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no batch id given");
    return 0;
}

static int check_wait(double wait, struct jobd_client_error *err) {
    if (!(wait >= 0 && wait <= 300))
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "wait must be 0..300 seconds");
    return 0;
}

/* ---- calls ---- */

int jobd_client_healthz(struct jobd_client *c, json_t **out, struct jobd_client_error *err) {
    struct resp r;
    json_t *v;
    int rc;

    err_clear(err);
    rc = request(c, "GET", "/healthz", NULL, 0, NULL, 0, &r, err);
    if (rc < 0)
        return rc;
    v = answer_object(&r, "GET /healthz", err);
    if (!v)
        return -EPROTO;
    if (out)
        *out = v;
    else
        json_decref(v);
    return 0;
}

int jobd_client_submit_json(struct jobd_client *c, const json_t *spec,
                            const struct jobd_submit_options *opts, json_t **job,
                            struct jobd_client_error *err) {
    const char *key = opts ? opts->idempotency_key : NULL;
    double wait = opts ? opts->wait : 0;
    char path[64] = "/v1/jobs";
    struct resp r;
    char *body;
    json_t *v;
    int rc;

    err_clear(err);
    if (!json_is_object(spec))
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "the job spec must be a JSON object");
    if (key && (!*key || strpbrk(key, "\r\n") || strlen(key) > 255))
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL,
                    "the idempotency key must be 1 to 255 printable characters");
    if (!(wait >= 0 && wait <= 300))
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "wait must be 0..300 seconds");
    if (wait > 0)
        snprintf(path, sizeof path, "/v1/jobs?wait=%.3f", wait);
    body = json_dumps(spec, JSON_COMPACT);
    if (!body)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "POST", path, body, strlen(body), key, (long)(wait * 1000), &r, err);
    free(body);
    if (rc < 0)
        return rc;
    v = answer_object(&r, "POST /v1/jobs", err);
    if (!v)
        return -EPROTO;
    if (job)
        *job = v;
    else
        json_decref(v);
    return r.status == 201 ? 0 : 1;
}

int jobd_client_submit(struct jobd_client *c, const struct jobd_spec *spec,
                       const struct jobd_submit_options *opts, json_t **job,
                       struct jobd_client_error *err) {
    json_t *o;
    int rc;

    err_clear(err);
    if (!spec)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no job spec given");
    o = jobd_spec_to_json(spec);
    if (!o)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL,
                    "the spec cannot be rendered as JSON (a string is not UTF-8, or memory ran "
                    "out)");
    rc = jobd_client_submit_json(c, o, opts, job, err);
    json_decref(o);
    return rc;
}

/*
 * GET the document at path(c, id, "?wait=W") (W 0: no wait), checked by
 * answer(); a new document in *doc. Shared by jobs and batches.
 */
static int get_doc(struct jobd_client *c, const char *id, double wait,
                   char *(*path_of)(struct jobd_client *, const char *, const char *),
                   json_t *(*answer)(struct resp *, const char *, struct jobd_client_error *),
                   json_t **doc, struct jobd_client_error *err) {
    char suffix[48] = "";
    struct resp r;
    char *path;
    json_t *v;
    int rc;

    if (wait > 0)
        snprintf(suffix, sizeof suffix, "?wait=%.3f", wait);
    path = path_of(c, id, suffix);
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "GET", path, NULL, 0, NULL, (long)(wait * 1000), &r, err);
    if (rc == 0) {
        v = answer(&r, path, err);
        if (!v)
            rc = -EPROTO;
        else
            *doc = v;
    }
    free(path);
    return rc;
}

/* GET /v1/jobs/ID?wait=W; a new job document in *job. */
static int get_job(struct jobd_client *c, const char *id, double wait, json_t **job,
                   struct jobd_client_error *err) {
    return get_doc(c, id, wait, job_path, answer_object, job, err);
}

int jobd_client_get(struct jobd_client *c, const char *id, json_t **job,
                    struct jobd_client_error *err) {
    json_t *v = NULL;
    int rc;

    err_clear(err);
    if ((rc = check_id(id, err)) < 0)
        return rc;
    rc = get_job(c, id, 0, &v, err);
    if (rc < 0)
        return rc;
    if (job)
        *job = v;
    else
        json_decref(v);
    return 0;
}

static bool job_is_final(const json_t *job) {
    enum jobd_state s;

    return jobd_job_state(job, &s) == 0 && jobd_state_is_final(s);
}

/*
 * Long-poll `get` (get_job or get_batch) until `done` says the document is
 * final or `timeout` seconds pass (< 0: no limit), POLL_MAX_S at a time.
 * Return 0 (done) or 1 (timed out) with the last document in *out (new;
 * dropped when out is NULL), or a negative errno.
 */
static int poll_until(struct jobd_client *c, const char *id, double timeout,
                      int (*get)(struct jobd_client *, const char *, double, json_t **,
                                 struct jobd_client_error *),
                      bool (*done)(const json_t *), json_t **out, struct jobd_client_error *err) {
    int64_t deadline = timeout >= 0 ? jobd_mono_ms() + (int64_t)(timeout * 1000) : -1;
    json_t *last = NULL;
    int rc;

    for (;;) {
        double w = POLL_MAX_S;
        int64_t start = jobd_mono_ms();
        json_t *v = NULL;

        if (deadline >= 0) {
            double left = (double)(deadline - start) / 1000.0;
            w = left < 0 ? 0 : (left < w ? left : w);
        }
        rc = get(c, id, w, &v, err);
        if (rc < 0) {
            json_decref(last);
            return rc;
        }
        json_decref(last);
        last = v;
        if (done(last)) {
            rc = 0;
            break;
        }
        if (deadline >= 0 && jobd_mono_ms() >= deadline) {
            rc = 1;
            break;
        }
        if (jobd_mono_ms() - start < 50) {
            /* The server answered at once without the end (it is shutting down?): do not spin. */
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (out)
        *out = last;
    else
        json_decref(last);
    return rc;
}

static bool job_done(const json_t *job) {
    return job_is_final(job);
}

int jobd_client_wait(struct jobd_client *c, const char *id, double timeout, json_t **job,
                     struct jobd_client_error *err) {
    int rc;

    err_clear(err);
    if ((rc = check_id(id, err)) < 0)
        return rc;
    return poll_until(c, id, timeout, get_job, job_done, job, err);
}

int jobd_client_cancel(struct jobd_client *c, const char *id, json_t **job,
                       struct jobd_client_error *err) {
    struct resp r;
    char *path;
    json_t *v;
    int rc;

    err_clear(err);
    if ((rc = check_id(id, err)) < 0)
        return rc;
    path = job_path(c, id, "/cancel");
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "POST", path, NULL, 0, NULL, 0, &r, err);
    if (rc == 0) {
        v = answer_object(&r, path, err);
        if (!v)
            rc = -EPROTO;
        else if (job)
            *job = v;
        else
            json_decref(v);
    }
    free(path);
    return rc;
}

int jobd_client_delete(struct jobd_client *c, const char *id, struct jobd_client_error *err) {
    struct resp r;
    char *path;
    int rc;

    err_clear(err);
    if ((rc = check_id(id, err)) < 0)
        return rc;
    path = job_path(c, id, "");
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "DELETE", path, NULL, 0, NULL, 0, &r, err);
    if (rc == 0)
        free(r.body.p);
    free(path);
    return rc;
}

/* Append "&key=escaped" (or "?key=...") to *q. Return 0 or -ENOMEM. */
static int query_add(struct jobd_client *c, char **q, const char *key, const char *val) {
    char *esc, *nq = NULL;

    if (!val)
        return 0;
    esc = curl_easy_escape(c->easy, val, 0);
    if (!esc)
        return -ENOMEM;
    if (asprintf(&nq, "%s%c%s=%s", *q, strchr(*q, '?') ? '&' : '?', key, esc) < 0)
        nq = NULL;
    curl_free(esc);
    if (!nq)
        return -ENOMEM;
    free(*q);
    *q = nq;
    return 0;
}

int jobd_client_list_page(struct jobd_client *c, const struct jobd_list_query *q, json_t **page,
                          struct jobd_client_error *err) {
    char *path = strdup("/v1/jobs");
    char limit[24];
    struct resp r;
    json_t *v;
    int rc = 0;

    err_clear(err);
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    if (q) {
        if (q->limit < 0 || q->limit > PAGE_MAX) {
            free(path);
            return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "limit must be 1..%d", PAGE_MAX);
        }
        snprintf(limit, sizeof limit, "%d", q->limit);
        if (query_add(c, &path, "state", q->state) < 0 ||
            query_add(c, &path, "name", q->name) < 0 ||
            query_add(c, &path, "label", q->label) < 0 ||
            query_add(c, &path, "cursor", q->cursor) < 0 ||
            query_add(c, &path, "batch", q->batch) < 0 ||
            query_add(c, &path, "limit", q->limit ? limit : NULL) < 0) {
            free(path);
            return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
        }
    }
    rc = request(c, "GET", path, NULL, 0, NULL, 0, &r, err);
    if (rc == 0) {
        v = answer_object(&r, "GET /v1/jobs", err);
        if (!v || !json_is_array(json_object_get(v, "jobs"))) {
            json_decref(v);
            rc = fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO,
                      "GET /v1/jobs: the answer has no jobs array");
        } else if (page) {
            *page = v;
        } else {
            json_decref(v);
        }
    }
    free(path);
    return rc;
}

int jobd_client_list_each(struct jobd_client *c, const struct jobd_list_query *q, size_t max,
                          jobd_job_fn fn, void *arg, struct jobd_client_error *err) {
    struct jobd_list_query pq = {0};
    char *cursor = NULL;
    size_t seen = 0;
    int rc = 0;

    err_clear(err);
    if (!fn)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no callback given");
    if (q)
        pq = *q;
    for (;;) {
        json_t *page = NULL, *jobs, *job;
        const char *next;
        size_t i;
        int size = q && q->limit ? q->limit : PAGE_MAX;

        if (max && max - seen < (size_t)size)
            size = (int)(max - seen);
        pq.limit = size;
        pq.cursor = cursor ? cursor : (q ? q->cursor : NULL);
        rc = jobd_client_list_page(c, &pq, &page, err);
        if (rc < 0)
            break;
        jobs = json_object_get(page, "jobs");
        json_array_foreach(jobs, i, job) {
            rc = fn(arg, job);
            seen++;
            if (rc != 0 || (max && seen >= max))
                break;
        }
        next = json_string_value(json_object_get(page, "next_cursor"));
        free(cursor);
        cursor = NULL;
        if (rc == 0 && next && (!max || seen < max)) {
            cursor = strdup(next);
            if (!cursor)
                rc = fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
        }
        json_decref(page);
        if (rc != 0 || !cursor)
            break;
    }
    free(cursor);
    return rc;
}

static const char *stream_name(enum jobd_stream s) {
    return s == JOBD_STDERR ? "stderr" : "stdout";
}

int jobd_client_read_output(struct jobd_client *c, const char *id, enum jobd_stream stream,
                            int64_t offset, char **data, size_t *len,
                            struct jobd_client_error *err) {
    char suffix[64];
    struct resp r;
    char *path;
    int rc;

    err_clear(err);
    if ((rc = check_id(id, err)) < 0)
        return rc;
    if (offset < 0)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "offset must be >= 0");
    snprintf(suffix, sizeof suffix, "/%s?offset=%lld", stream_name(stream), (long long)offset);
    path = job_path(c, id, suffix);
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "GET", path, NULL, 0, NULL, 0, &r, err);
    free(path);
    if (rc < 0)
        return rc;
    if (!r.body.p) {
        r.body.p = calloc(1, 1);
        if (!r.body.p)
            return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    }
    *data = r.body.p;
    *len = r.body.len;
    return 0;
}

/* ---- tasks ---- */

int jobd_client_tasks(struct jobd_client *c, json_t **out, struct jobd_client_error *err) {
    struct resp r;
    json_t *v;
    int rc;

    err_clear(err);
    rc = request(c, "GET", "/v1/tasks", NULL, 0, NULL, 0, &r, err);
    if (rc < 0)
        return rc;
    v = answer_object(&r, "GET /v1/tasks", err);
    if (!v)
        return -EPROTO;
    if (!json_is_array(json_object_get(v, "tasks"))) {
        json_decref(v);
        return fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO,
                    "GET /v1/tasks: the answer has no tasks array");
    }
    if (out)
        *out = v;
    else
        json_decref(v);
    return 0;
}

/* ---- batches ---- */

/*
 * Take the batch document of a 2xx answer to `what` (r->body is consumed):
 * a new reference with an id, counts and done, or NULL with err filled.
 */
static json_t *answer_batch(struct resp *r, const char *what, struct jobd_client_error *err) {
    json_t *v = answer_object(r, what, err);

    if (v && (!json_is_string(json_object_get(v, "id")) ||
              !json_is_object(json_object_get(v, "counts")) ||
              !json_is_boolean(json_object_get(v, "done")))) {
        json_decref(v);
        fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO, "%s: the answer is not a batch", what);
        return NULL;
    }
    return v;
}

/* Hand a new batch document to the caller's *batch, or drop it. */
static void give(json_t *v, json_t **out) {
    if (out)
        *out = v;
    else
        json_decref(v);
}

int jobd_client_batch_submit_json(struct jobd_client *c, const json_t *body, double wait,
                                  json_t **batch, struct jobd_client_error *err) {
    char path[64] = "/v1/batches";
    struct resp r;
    char *text;
    json_t *v;
    int rc;

    err_clear(err);
    if (!json_is_object(body))
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "the batch must be a JSON object");
    if ((rc = check_wait(wait, err)) < 0)
        return rc;
    if (wait > 0)
        snprintf(path, sizeof path, "/v1/batches?wait=%.3f", wait);
    text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "POST", path, text, strlen(text), NULL, (long)(wait * 1000), &r, err);
    free(text);
    if (rc < 0)
        return rc;
    v = answer_batch(&r, "POST /v1/batches", err);
    if (!v)
        return -EPROTO;
    give(v, batch);
    return 0;
}

int jobd_client_batch_submit(struct jobd_client *c, const json_t *jobs,
                             const struct jobd_batch_options *opts, json_t **batch,
                             struct jobd_client_error *err) {
    json_t *body;
    int rc;

    err_clear(err);
    if (!json_is_array(jobs) || json_array_size(jobs) == 0)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL,
                    "the jobs of a batch must be a non-empty JSON array");
    if (opts && opts->concurrency < 0)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "concurrency must be >= 1");
    body = json_object();
    /* json_object_set takes a reference of its own: `jobs` stays the caller's, unchanged. */
    if (!body || json_object_set(body, "jobs", (json_t *)jobs) != 0 ||
        (opts && opts->concurrency > 0 &&
         json_object_set_new(body, "concurrency", json_integer(opts->concurrency)) != 0)) {
        json_decref(body);
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    }
    if (opts && opts->name) {
        json_t *name = json_string(opts->name);
        if (!name) {
            json_decref(body);
            return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "the batch name is not UTF-8");
        }
        if (json_object_set_new(body, "name", name) != 0) {
            json_decref(body);
            return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
        }
    }
    rc = jobd_client_batch_submit_json(c, body, opts ? opts->wait : 0, batch, err);
    json_decref(body);
    return rc;
}

/* GET /v1/batches/ID?wait=W; a new batch document in *batch. */
static int get_batch(struct jobd_client *c, const char *id, double wait, json_t **batch,
                     struct jobd_client_error *err) {
    return get_doc(c, id, wait, batch_path, answer_batch, batch, err);
}

int jobd_client_batch_get(struct jobd_client *c, const char *id, double wait, json_t **batch,
                          struct jobd_client_error *err) {
    json_t *v = NULL;
    int rc;

    err_clear(err);
    if ((rc = check_batch_id(id, err)) < 0 || (rc = check_wait(wait, err)) < 0)
        return rc;
    rc = get_batch(c, id, wait, &v, err);
    if (rc < 0)
        return rc;
    give(v, batch);
    return 0;
}

static bool batch_done(const json_t *batch) {
    return json_is_true(json_object_get(batch, "done"));
}

int jobd_client_batch_wait(struct jobd_client *c, const char *id, double timeout, json_t **batch,
                           struct jobd_client_error *err) {
    int rc;

    err_clear(err);
    if ((rc = check_batch_id(id, err)) < 0)
        return rc;
    return poll_until(c, id, timeout, get_batch, batch_done, batch, err);
}

int jobd_client_batch_cancel(struct jobd_client *c, const char *id, json_t **batch,
                             struct jobd_client_error *err) {
    struct resp r;
    char *path;
    json_t *v;
    int rc;

    err_clear(err);
    if ((rc = check_batch_id(id, err)) < 0)
        return rc;
    path = batch_path(c, id, "/cancel");
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, "POST", path, NULL, 0, NULL, 0, &r, err);
    if (rc == 0) {
        v = answer_batch(&r, path, err);
        if (!v)
            rc = -EPROTO;
        else
            give(v, batch);
    }
    free(path);
    return rc;
}

/* ---- nodes ---- */

/* "/v1/nodes/ID" + suffix, with the id escaped: a new string, or NULL. */
static char *node_path(struct jobd_client *c, const char *id, const char *suffix) {
    return id_path(c, "/v1/nodes/", id, suffix);
}

static int check_node_id(const char *id, struct jobd_client_error *err) {
    if (!id || !*id)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no node id given");
    return 0;
}

/*
 * Take the node document of a 2xx answer to `what` (r->body is consumed):
 * a new reference with a string id and state, or NULL with err filled.
 */
static json_t *answer_node(struct resp *r, const char *what, struct jobd_client_error *err) {
    json_t *v = answer_object(r, what, err);

    if (v && (!json_is_string(json_object_get(v, "id")) ||
              !json_is_string(json_object_get(v, "state")))) {
        json_decref(v);
        fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO, "%s: the answer is not a node", what);
        return NULL;
    }
    return v;
}

int jobd_client_nodes(struct jobd_client *c, json_t **out, struct jobd_client_error *err) {
    struct resp r;
    json_t *v;
    int rc;

    err_clear(err);
    rc = request(c, "GET", "/v1/nodes", NULL, 0, NULL, 0, &r, err);
    if (rc < 0)
        return rc;
    v = answer_object(&r, "GET /v1/nodes", err);
    if (!v)
        return -EPROTO;
    if (!json_is_array(json_object_get(v, "nodes"))) {
        json_decref(v);
        return fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO,
                    "GET /v1/nodes: the answer has no nodes array");
    }
    give(v, out);
    return 0;
}

/*
 * One request without a body on node `id`: `method` on /v1/nodes/ID +
 * suffix. With want_doc the answer must be a node document, stored (new)
 * in *node, or dropped when node is NULL; without, the answer is dropped.
 */
static int node_call(struct jobd_client *c, const char *method, const char *id, const char *suffix,
                     json_t **node, bool want_doc, struct jobd_client_error *err) {
    struct resp r;
    char *path;
    json_t *v;
    int rc;

    err_clear(err);
    if ((rc = check_node_id(id, err)) < 0)
        return rc;
    path = node_path(c, id, suffix);
    if (!path)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    rc = request(c, method, path, NULL, 0, NULL, 0, &r, err);
    if (rc == 0 && want_doc) {
        v = answer_node(&r, path, err);
        if (!v)
            rc = -EPROTO;
        else
            give(v, node);
    } else if (rc == 0) {
        free(r.body.p);
    }
    free(path);
    return rc;
}

int jobd_client_node_get(struct jobd_client *c, const char *id, json_t **node,
                         struct jobd_client_error *err) {
    return node_call(c, "GET", id, "", node, true, err);
}

int jobd_client_node_drain(struct jobd_client *c, const char *id, json_t **node,
                           struct jobd_client_error *err) {
    return node_call(c, "POST", id, "/drain", node, true, err);
}

int jobd_client_node_delete(struct jobd_client *c, const char *id, struct jobd_client_error *err) {
    return node_call(c, "DELETE", id, "", NULL, false, err);
}

/* ---- follow ---- */

/* One followed stream: its easy handle and what it learned. */
struct follow_stream {
    CURL *e;
    enum jobd_stream which;
    jobd_output_fn fn;
    void *arg;
    struct resp r; /* status and headers; body only of an error answer */
    struct curl_slist *hdrs;
    char *url;
    bool added, done, stopped;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
};

static size_t follow_cb(char *p, size_t size, size_t n, void *arg) {
    struct follow_stream *fs = arg;
    size_t len = size * n;

    if (!fs->r.status)
        curl_easy_getinfo(fs->e, CURLINFO_RESPONSE_CODE, &fs->r.status);
    if (fs->r.status < 200 || fs->r.status >= 300) {
        /* Keep the head of an error answer for its problem details. */
        buf_add(&fs->r.body, p, len);
        return len;
    }
    if (fs->fn(fs->arg, fs->which, p, len) != 0) {
        fs->stopped = true;
        return 0;
    }
    return len;
}

static int follow_setup(struct jobd_client *c, const char *id, int64_t offset,
                        struct follow_stream *fs) {
    char suffix[80];
    char *path;
    CURLcode rc;

    snprintf(suffix, sizeof suffix, "/%s?follow=true&offset=%lld", stream_name(fs->which),
             (long long)offset);
    path = job_path(c, id, suffix);
    if (!path)
        return -ENOMEM;
    if (asprintf(&fs->url, "%s%s", c->url, path) < 0)
        fs->url = NULL;
    free(path);
    fs->hdrs = make_headers(c, false, NULL);
    fs->e = curl_easy_init();
    fs->r.body.max = MAX_ERROR_BODY;
    if (!fs->url || !fs->hdrs || !fs->e)
        return -ENOMEM;
    /* No transfer timeout: a job may be silent for hours; keepalive notices a dead peer. */
    rc = setup_easy(c, fs->e, fs->url, 0, fs->hdrs, fs->errbuf);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(fs->e, CURLOPT_WRITEFUNCTION, follow_cb);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(fs->e, CURLOPT_WRITEDATA, fs);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(fs->e, CURLOPT_HEADERFUNCTION, header_cb);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(fs->e, CURLOPT_HEADERDATA, &fs->r);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(fs->e, CURLOPT_PRIVATE, fs);
    return rc == CURLE_OK ? 0 : -EIO;
}

/* The outcome of a finished stream: 0, or an error filled into err. */
static int follow_result(struct jobd_client *c, struct follow_stream *fs,
                         struct jobd_client_error *err) {
    if (fs->stopped)
        return fail(err, JOBD_CLIENT_ERR_CALLBACK, -ECANCELED, "stopped by the output callback");
    if (fs->result != CURLE_OK && fs->r.body.oom)
        return fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
    if (fs->result != CURLE_OK)
        return transport_error(c, fs->result, fs->errbuf, err);
    curl_easy_getinfo(fs->e, CURLINFO_RESPONSE_CODE, &fs->r.status);
    if (fs->r.status >= 400)
        return http_error(fs->r.status, fs->r.ctype, fs->r.body.p, fs->r.body.len,
                          fs->r.retry_after, err);
    if (fs->r.status < 200 || fs->r.status >= 300)
        return fail(err, JOBD_CLIENT_ERR_PROTOCOL, -EPROTO, "%s: unexpected HTTP status %ld",
                    fs->url, fs->r.status);
    return 0;
}

int jobd_client_follow(struct jobd_client *c, const char *id,
                       const struct jobd_follow_options *opts, jobd_output_fn fn, void *arg,
                       struct jobd_client_error *err) {
    struct jobd_follow_options dflt = {.streams = {true, true}, .wake_fd = -1};
    struct follow_stream fs[2];
    CURLM *m = NULL;
    int rc = 0, active = 0;

    err_clear(err);
    memset(fs, 0, sizeof fs);
    if ((rc = check_id(id, err)) < 0)
        return rc;
    if (!fn)
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no output callback given");
    if (!opts)
        opts = &dflt;
    if (!opts->streams[0] && !opts->streams[1])
        return fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "no stream to follow");
    m = curl_multi_init();
    if (!m) {
        rc = fail(err, JOBD_CLIENT_ERR_NOMEM, -ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        if (!opts->streams[i])
            continue;
        if (opts->offset[i] < 0) {
            rc = fail(err, JOBD_CLIENT_ERR_USAGE, -EINVAL, "offset must be >= 0");
            goto out;
        }
        fs[i].which = (enum jobd_stream)i;
        fs[i].fn = fn;
        fs[i].arg = arg;
        rc = follow_setup(c, id, opts->offset[i], &fs[i]);
        if (rc < 0) {
            rc = fail(err, JOBD_CLIENT_ERR_NOMEM, rc, "cannot set up the follow of %s",
                      stream_name(fs[i].which));
            goto out;
        }
        if (curl_multi_add_handle(m, fs[i].e) != CURLM_OK) {
            rc = fail(err, JOBD_CLIENT_ERR_TRANSPORT, -EIO, "libcurl refused a handle");
            goto out;
        }
        fs[i].added = true;
        active++;
    }
    while (active > 0) {
        struct curl_waitfd wfd = {.fd = opts->wake_fd, .events = CURL_WAIT_POLLIN};
        CURLMsg *msg;
        CURLMcode mc;
        int running = 0, left;

        mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            rc = fail(err, JOBD_CLIENT_ERR_TRANSPORT, -EIO, "libcurl: %s", curl_multi_strerror(mc));
            goto out;
        }
        while ((msg = curl_multi_info_read(m, &left))) {
            struct follow_stream *done = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&done);
            done->result = msg->data.result;
            done->done = true;
            curl_multi_remove_handle(m, done->e);
            done->added = false;
            active--;
            rc = follow_result(c, done, err);
            if (rc < 0)
                goto out; /* one stream failed: stop the other too */
        }
        if (active == 0)
            break;
        mc = curl_multi_poll(m, opts->wake_fd >= 0 ? &wfd : NULL, opts->wake_fd >= 0 ? 1 : 0,
                             FOLLOW_TICK_MS, NULL);
        if (mc != CURLM_OK) {
            rc = fail(err, JOBD_CLIENT_ERR_TRANSPORT, -EIO, "libcurl: %s", curl_multi_strerror(mc));
            goto out;
        }
        if (opts->tick && opts->tick(arg) != 0) {
            rc = fail(err, JOBD_CLIENT_ERR_CALLBACK, -ECANCELED, "stopped by the tick callback");
            goto out;
        }
    }
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (fs[i].added)
            curl_multi_remove_handle(m, fs[i].e);
        if (fs[i].e)
            curl_easy_cleanup(fs[i].e);
        curl_slist_free_all(fs[i].hdrs);
        free(fs[i].url);
        free(fs[i].r.body.p);
    }
    if (m)
        curl_multi_cleanup(m);
    return rc;
}

/* ---- job documents ---- */

const char *jobd_job_str(const json_t *job, const char *field) {
    return json_string_value(json_object_get(job, field));
}

int jobd_job_state(const json_t *job, enum jobd_state *state) {
    const char *s = jobd_job_str(job, "state");

    if (!s)
        return -EINVAL;
    return jobd_state_parse(s, state);
}
