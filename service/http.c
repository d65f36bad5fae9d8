/*
 * http.c: libmicrohttpd set-up, request bodies, routing, auth, problem+json
 * errors and suspension of long waits (see http.h).
 *
 * MHD runs an internal polling thread pool on epoll. A request's life:
 *   1. first access-handler call (headers only): create a struct http_req,
 *      route it, check auth, Content-Type and Content-Length. Nothing is
 *      queued yet (queueing on the first call loses keep-alive in 0.9.75),
 *      except a 413 for a declared Content-Length over the cap.
 *   2. body calls: append to req->body up to the cap.
 *   3. final call: answer an early error, or run the handler. A handler that
 *      calls http_suspend is parked with MHD_suspend_connection and called
 *      again after http_wake resumes it.
 *
 * Locking: srv->lock guards srv->reqs (every live request) and
 * srv->shutting_down. req->lock guards req->suspended and req->wake_pending.
 * Order: srv->lock before req->lock; the timers lock before req->lock (timer
 * callbacks call http_wake). Nothing here calls out while holding req->lock
 * except MHD_suspend/resume_connection, which do not block.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "jobd/util.h"
#include "log.h"
#include "metrics.h"
#include "timers.h"

/* GnuTLS priorities of HTTPS: its defaults, but TLS 1.2 and 1.3 only. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define MAX_HEADERS    6
#define MAX_SEGS       8
/*
 * libmicrohttpd's memory per connection (headers, query arguments, read
 * buffer). Its 32 KiB default cannot hold a request with a few hundred query
 * arguments, and a request that overflows it gets no answer at all. Pages are
 * only touched as a request needs them.
 */
#define HTTP_CONN_MEMORY (1024 * 1024)
#define MAX_URI_BYTES    65536 /* longer: 414 */
#define MAX_HEADER_BYTES 32768 /* all header names and values together; more: 431 */
#define MAX_HEADER_COUNT 100   /* more headers: 431 */

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_config cfg;
    int port;
    pthread_mutex_t lock;
    struct http_req *reqs; /* every live request, for shutdown */
    bool shutting_down;
    atomic_uint_fast64_t next_id;
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    char *raw_path; /* the path as sent (before percent-decoding), from the URI log callback */
    bool begun;     /* the headers' call has been handled */
    uint64_t id;
    const struct http_route *route;
    char method[16];
    char *params[HTTP_MAX_PARAMS];
    int n_params;

    char *body;
    size_t body_len, body_cap;
    bool body_too_large;

    /* An error found before the handler runs, answered on the final call. */
    unsigned early_status;
    const char *early_slug, *early_title, *early_field;
    char early_detail[200];
    char allow[64];

    int calls;
    bool responded;
    bool want_suspend;
    void *state;
    void (*state_free)(void *);

    struct {
        char *name, *value;
    } hdrs[MAX_HEADERS];
    int n_hdrs;

    http_stream_fn stream_fn;
    void *stream_arg;
    void (*stream_free)(void *);

    pthread_mutex_t lock;
    bool suspended;
    bool wake_pending;
    struct timer timer;
    int64_t deadline;      /* 0: none */
    struct timespec began; /* for the latency metric */
    unsigned status;       /* of the answer queued, 0 before */

    struct http_req *prev, *next;
};

/* ---- small helpers ---- */

static void req_early(struct http_req *req, unsigned status, const char *slug, const char *title,
                      const char *field, const char *detail) {
    if (req->early_status)
        return;
    req->early_status = status;
    req->early_slug = slug;
    req->early_title = title;
    req->early_field = field;
    snprintf(req->early_detail, sizeof req->early_detail, "%s", detail);
}

static int split_path(char *path, char **segs, int max) {
    int n = 0;
    char *save = NULL;

    if (path[0] != '/')
        return -1;
    /* A trailing or doubled slash is not a route of ours. */
    if (strstr(path, "//") || (path[1] && path[strlen(path) - 1] == '/'))
        return -1;
    for (char *tok = strtok_r(path + 1, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        segs[n++] = tok;
    }
    return n;
}

/* Does `pattern` match the segments? Fill m's params when `fill` (new strings). */
static bool route_match(const char *pattern, char **segs, int n, struct http_match *m, bool fill) {
    char buf[128];
    char *psegs[MAX_SEGS];
    int pn, np = 0;

    snprintf(buf, sizeof buf, "%s", pattern);
    pn = split_path(buf, psegs, MAX_SEGS);
    if (pn != n)
        return false;
    for (int i = 0; i < n; i++) {
        if (strcmp(psegs[i], "{}") == 0) {
            if (fill && np < HTTP_MAX_PARAMS)
                m->params[np++] = strdup(segs[i]);
            continue;
        }
        if (strcmp(psegs[i], segs[i]) != 0)
            return false;
    }
    if (fill)
        m->n_params = np;
    return true;
}

int http_route_find(const struct http_route *routes, size_t n_routes, const char *method,
                    const char *path, struct http_match *m) {
    char *copy = strdup(path);
    char *segs[MAX_SEGS];
    int n;

    memset(m, 0, sizeof *m);
    if (!copy)
        return -ENOMEM;
    n = split_path(copy, segs, MAX_SEGS);
    for (size_t i = 0; n >= 0 && i < n_routes; i++) {
        const struct http_route *r = &routes[i];
        if (!route_match(r->pattern, segs, n, m, false))
            continue;
        size_t used = strlen(m->allow);
        m->path_known = true;
        snprintf(m->allow + used, sizeof m->allow - used, "%s%s", used ? ", " : "", r->method);
        if (!m->route && strcmp(r->method, method) == 0) {
            m->route = r;
            route_match(r->pattern, segs, n, m, true);
        }
    }
    free(copy);
    for (int i = 0; i < m->n_params; i++) {
        if (!m->params[i]) {
            http_match_free(m);
            return -ENOMEM;
        }
    }
    return 0;
}

void http_match_free(struct http_match *m) {
    for (int i = 0; i < m->n_params; i++)
        free(m->params[i]);
    m->n_params = 0;
}

static void route_request(struct http_req *req, const char *url) {
    const struct http_config *cfg = &req->srv->cfg;
    struct http_match m;

    if (http_route_find(cfg->routes, cfg->n_routes, req->method, url, &m) < 0) {
        req_early(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    req->route = m.route;
    snprintf(req->allow, sizeof req->allow, "%s", m.allow);
    for (int i = 0; i < m.n_params; i++)
        req->params[i] = m.params[i]; /* ownership moves to req */
    req->n_params = m.n_params;
    if (!m.path_known)
        req_early(req, 404, "not-found", "Not found", NULL, "no such path");
    else if (!req->route)
        req_early(req, 405, "method-not-allowed", "Method not allowed", NULL,
                  "this path does not take that method");
}

/* Compare in time that depends on the lengths only, never on where they differ. */
static bool token_equal(const char *given, const char *want) {
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);

    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)(want[i] ^ (i < gl ? given[i] : 0));
    return diff == 0;
}

/*
 * Every /v1 path needs the token, known or not, so an anonymous client
 * cannot even probe which paths exist. A failed check replaces any 404/405.
 */
static void check_auth(struct http_req *req, const char *url) {
    const struct http_config *cfg = &req->srv->cfg;
    const char *want = cfg->token, *also = NULL;
    const char *h;
    bool needed =
        req->route ? req->route->auth : strncmp(url, "/v1/", 4) == 0 || strcmp(url, "/v1") == 0;

    if (req->route && req->route->cluster) {
        want = cfg->cluster_token; /* the users' token is no good here */
    } else if (cfg->peer) {
        also = cfg->cluster_token;
        if (!want) {
            want = also;
            also = NULL;
        }
    }
    if (!want || !needed)
        return;
    h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization");
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
        while (*h == ' ')
            h++;
        /* Both compared, so the time taken does not tell which one matched. */
        bool ok = token_equal(h, want);
        ok |= also && token_equal(h, also);
        if (ok)
            return;
    }
    req->early_status = 0;
    req_early(req, 401, "unauthorized", "Unauthorized", NULL,
              h ? "the bearer token is wrong"
                : "this jobd needs a bearer token: Authorization: Bearer TOKEN");
}

static bool json_content_type(const char *ct) {
    size_t n;

    if (!ct || !*ct)
        return true;
    n = strcspn(ct, "; ");
    if ((n == 16 && strncasecmp(ct, "application/json", n) == 0) ||
        (n == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", n) == 0))
        return true;
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

struct header_tally {
    size_t bytes, count;
};

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value) {
    struct header_tally *t = cls;

    t->bytes += strlen(key) + (value ? strlen(value) : 0);
    t->count++;
    return MHD_YES;
}

/* Too many or too big headers: 431, as problem+json (the first check wins over routing). */
static void check_header_size(struct http_req *req) {
    struct header_tally t = {0, 0};

    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, tally_header, &t);
    if (t.bytes > MAX_HEADER_BYTES || t.count > MAX_HEADER_COUNT) {
        req->early_status = 0;
        req_early(req, 431, "headers-too-large", "Request header fields too large", NULL,
                  "at most 100 headers of 32768 bytes in all");
    }
}

static int64_t body_limit(const struct http_req *req) {
    const struct http_config *cfg = &req->srv->cfg;

    if (req->route && req->route->big_body && cfg->max_big_body > 0)
        return cfg->max_big_body;
    return cfg->max_body;
}

static void check_body_headers(struct http_req *req) {
    const char *ct, *cl;

    if (!req->route || !req->route->body)
        return;
    ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type");
    if (!json_content_type(ct))
        req_early(req, 415, "unsupported-media-type", "Unsupported media type", NULL,
                  "send the body as application/json");
    cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        if (*end == '\0' && v > (unsigned long long)body_limit(req))
            req->body_too_large = true;
    }
}

/* ---- responses ---- */

static void queue(struct http_req *req, unsigned status, struct MHD_Response *resp,
                  const char *content_type) {
    req->status = status;
    if (!resp) {
        log_error("http: cannot create a response for request %llu", (unsigned long long)req->id);
        req->responded = true;
        return;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    char rid[24];
    snprintf(rid, sizeof rid, "%llu", (unsigned long long)req->id);
    MHD_add_response_header(resp, "X-Request-Id", rid);
    for (int i = 0; i < req->n_hdrs; i++)
        MHD_add_response_header(resp, req->hdrs[i].name, req->hdrs[i].value);
    if (MHD_queue_response(req->conn, status, resp) != MHD_YES)
        log_warn("http: cannot queue a %u response for request %llu", status,
                 (unsigned long long)req->id);
    MHD_destroy_response(resp);
    req->responded = true;
}

void http_respond_buf(struct http_req *req, unsigned status, const char *content_type, char *body,
                      size_t len) {
    struct MHD_Response *resp;

    if (req->responded) {
        free(body);
        return;
    }
    resp = MHD_create_response_from_buffer(len, body ? body : (char *)"",
                                           body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp)
        free(body);
    queue(req, status, resp, content_type);
}

void http_respond_json(struct http_req *req, unsigned status, json_t *body) {
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    if (!s) {
        http_problem(req, 500, "internal", "Internal error", NULL, "cannot render the answer");
        return;
    }
    http_respond_buf(req, status, "application/json", s, strlen(s));
}

void http_respond_empty(struct http_req *req, unsigned status) {
    http_respond_buf(req, status, NULL, NULL, 0);
}

void http_respond_fd(struct http_req *req, unsigned status, const char *content_type, int fd,
                     uint64_t offset, uint64_t size) {
    struct MHD_Response *resp;

    if (req->responded) {
        close(fd);
        return;
    }
    resp = MHD_create_response_from_fd_at_offset64(size, fd, offset);
    if (!resp)
        close(fd);
    queue(req, status, resp, content_type);
}

static void problem_v(struct http_req *req, unsigned status, const char *slug, const char *title,
                      const char *field, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
static void problem_v(struct http_req *req, unsigned status, const char *slug, const char *title,
                      const char *field, const char *fmt, va_list ap) {
    char detail[1024];
    char type[96];
    json_t *o;
    char *s;

    vsnprintf(detail, sizeof detail, fmt, ap);
    snprintf(type, sizeof type, "urn:jobd:problem:%s", slug);
    o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", (int)status,
                  "detail", detail);
    if (o && field)
        json_object_set_new(o, "field", json_string(field));
    if (!o) /* detail was not valid UTF-8 (it may quote user input) */
        o = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", (int)status,
                      "detail", title);
    s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        http_respond_empty(req, status);
        return;
    }
    http_respond_buf(req, status, "application/problem+json", s, strlen(s));
}

void http_problem(struct http_req *req, unsigned status, const char *slug, const char *title,
                  const char *field, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    problem_v(req, status, slug, title, field, fmt, ap);
    va_end(ap);
}

static void answer_early(struct http_req *req) {
    if (req->early_status == 405)
        http_add_header(req, "Allow", req->allow);
    if (req->early_status == 401)
        http_add_header(req, "WWW-Authenticate", "Bearer");
    if (req->early_status == 503)
        http_add_header(req, "Retry-After", "5");
    /* After a request too big to read, the connection's state is not worth keeping. */
    if (req->early_status == 414 || req->early_status == 431)
        http_add_header(req, "Connection", "close");
    http_problem(req, req->early_status, req->early_slug, req->early_title, req->early_field, "%s",
                 req->early_detail);
}

void http_add_header(struct http_req *req, const char *name, const char *value) {
    if (req->n_hdrs == MAX_HEADERS)
        return;
    req->hdrs[req->n_hdrs].name = strdup(name);
    req->hdrs[req->n_hdrs].value = strdup(value);
    if (!req->hdrs[req->n_hdrs].name || !req->hdrs[req->n_hdrs].value) {
        free(req->hdrs[req->n_hdrs].name);
        free(req->hdrs[req->n_hdrs].value);
        return;
    }
    req->n_hdrs++;
}

/* ---- suspension ---- */

void http_suspend(struct http_req *req) {
    req->want_suspend = true;
}

void http_wake(struct http_req *req) {
    pthread_mutex_lock(&req->lock);
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
    } else {
        req->wake_pending = true;
    }
    pthread_mutex_unlock(&req->lock);
}

static void timer_wake(void *arg) {
    http_wake(arg);
}

void http_wake_at(struct http_req *req, int64_t deadline) {
    req->deadline = deadline;
    if (timers_add(req->srv->cfg.timers, &req->timer, deadline, timer_wake, req) < 0)
        http_wake(req); /* no memory for a timer: answer now rather than never */
}

bool http_shutting_down(const struct http_req *req) {
    struct http_server *srv = req->srv;
    bool s;

    pthread_mutex_lock(&srv->lock);
    s = srv->shutting_down;
    pthread_mutex_unlock(&srv->lock);
    return s;
}

bool http_req_expired(const struct http_req *req) {
    if (req->deadline && jobd_mono_ms() >= req->deadline)
        return true;
    return http_shutting_down(req);
}

/*
 * Park the connection unless a wake already arrived. Return true when
 * parked, false when the caller should try again at once.
 */
static bool park(struct http_req *req) {
    bool parked;

    pthread_mutex_lock(&req->lock);
    if (req->wake_pending) {
        req->wake_pending = false;
        parked = false;
    } else {
        MHD_suspend_connection(req->conn);
        req->suspended = true;
        parked = true;
    }
    pthread_mutex_unlock(&req->lock);
    return parked;
}

static void run_handler(struct http_req *req) {
    for (int spins = 0;; spins++) {
        req->want_suspend = false;
        req->route->fn(req);
        req->calls++;
        if (req->responded)
            return;
        if (!req->want_suspend) {
            http_problem(req, 500, "internal", "Internal error", NULL,
                         "the handler gave no answer");
            return;
        }
        if (park(req))
            return;
        if (spins > 1000) {
            http_problem(req, 500, "internal", "Internal error", NULL, "the handler never settles");
            return;
        }
    }
}

/* ---- streams ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    struct http_req *req = cls;

    for (int spins = 0; spins < 1000; spins++) {
        ssize_t n = req->stream_fn(req, req->stream_arg, pos, buf, max);
        if (n > 0)
            return n;
        if (n == HTTP_STREAM_END)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (n < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (park(req))
            return 0;
    }
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

void http_respond_stream(struct http_req *req, unsigned status, const char *content_type,
                         http_stream_fn fn, void *arg, void (*free_fn)(void *)) {
    struct MHD_Response *resp;

    req->stream_fn = fn;
    req->stream_arg = arg;
    req->stream_free = free_fn;
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_reader, req, NULL);
    queue(req, status, resp, content_type);
}

/* ---- MHD callbacks ---- */

static struct http_req *req_new(struct http_server *srv, struct MHD_Connection *conn,
                                const char *method) {
    struct http_req *req = calloc(1, sizeof *req);

    if (!req)
        return NULL;
    req->srv = srv;
    req->conn = conn;
    req->id = atomic_fetch_add(&srv->next_id, 1) + 1;
    clock_gettime(CLOCK_MONOTONIC, &req->began);
    snprintf(req->method, sizeof req->method, "%s", method);
    pthread_mutex_init(&req->lock, NULL);
    timer_init(&req->timer);
    pthread_mutex_lock(&srv->lock);
    req->next = srv->reqs;
    if (srv->reqs)
        srv->reqs->prev = req;
    srv->reqs = req;
    if (srv->shutting_down)
        req_early(req, 503, "shutting-down", "Service unavailable", NULL, "jobd is shutting down");
    pthread_mutex_unlock(&srv->lock);
    return req;
}

static void req_free(struct http_req *req) {
    struct http_server *srv = req->srv;

    free(req->raw_path);
    /* First stop everyone who could still wake us, then unlink, then free. */
    if (req->state_free && req->state)
        req->state_free(req->state);
    if (req->stream_free && req->stream_arg)
        req->stream_free(req->stream_arg);
    timers_cancel(srv->cfg.timers, &req->timer);
    pthread_mutex_lock(&srv->lock);
    if (req->prev)
        req->prev->next = req->next;
    else
        srv->reqs = req->next;
    if (req->next)
        req->next->prev = req->prev;
    pthread_mutex_unlock(&srv->lock);
    for (int i = 0; i < req->n_params; i++)
        free(req->params[i]);
    for (int i = 0; i < req->n_hdrs; i++) {
        free(req->hdrs[i].name);
        free(req->hdrs[i].value);
    }
    free(req->body);
    pthread_mutex_destroy(&req->lock);
    free(req);
}

/*
 * Called with the request's URI as sent, before anything is decoded: make
 * the request here, keeping its raw path for routing.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    struct http_server *srv = cls;
    struct http_req *req = req_new(srv, conn, "");

    if (req) {
        size_t n = strcspn(uri, "?");
        req->raw_path = strndup(uri, n);
        if (strlen(uri) > MAX_URI_BYTES)
            req_early(req, 414, "uri-too-long", "URI too long", NULL,
                      "the request target is longer than 65536 bytes");
    }
    return req;
}

/*
 * A deadline for each request to arrive whole (headers and body), so a
 * client that sends a byte now and then cannot hold a connection for ever:
 * libmicrohttpd's timeout only counts idle time. Armed when a connection
 * opens and again after each answer; a request that has arrived disarms it.
 * The guard belongs to the connection (its socket context).
 */
struct conn_guard {
    struct http_server *srv;
    int fd;
    struct timer timer;
};

static void guard_fire(void *arg) {
    struct conn_guard *g = arg;

    /* Runs under the timers lock, which the closing callback takes first. */
    (void)shutdown(g->fd, SHUT_RDWR);
}

static struct conn_guard *guard_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void guard_arm(struct conn_guard *g) {
    if (g)
        timers_add(g->srv->cfg.timers, &g->timer,
                   jobd_mono_ms() + (int64_t)g->srv->cfg.connection_timeout * 1000, guard_fire, g);
}

static void guard_disarm(struct conn_guard *g) {
    if (g)
        timers_cancel(g->srv->cfg.timers, &g->timer);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    struct http_server *srv = cls;
    struct conn_guard *g = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        g = calloc(1, sizeof *g);
        if (!g || !ci) {
            free(g);
            return;
        }
        g->srv = srv;
        g->fd = ci->connect_fd;
        timer_init(&g->timer);
        *socket_context = g;
        guard_arm(g);
    } else if (g) {
        guard_disarm(g);
        free(g);
        *socket_context = NULL;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    struct http_req *req = *con_cls;

    /* The next request on this connection gets a deadline of its own. */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        guard_arm(guard_of(conn));

    if (req) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double secs = (double)(now.tv_sec - req->began.tv_sec) +
                      (double)(now.tv_nsec - req->began.tv_nsec) / 1e9;
        metrics_http(req->route, req->status, secs);
        if (req->srv->cfg.access_log)
            log_request((unsigned long long)req->id, req->method,
                        req->raw_path ? req->raw_path : "?", req->status, secs);
        if (req->status >= 500)
            log_warn("http: request %llu %s answered %u after %.3f s", (unsigned long long)req->id,
                     req->method, req->status, secs);
        req_free(req);
    }
    *con_cls = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    struct http_server *srv = cls;
    struct http_req *req = *con_cls;

    if (!req || !req->begun) {
        if (!req) {
            req = req_new(srv, conn, method);
            if (!req)
                return MHD_NO;
            *con_cls = req;
        }
        req->begun = true;
        snprintf(req->method, sizeof req->method, "%s", method);
        /*
         * Route on the path as sent: decoded, "j1%2Fstdout" would read as two
         * segments and "%2F" would become a separator it is not.
         */
        route_request(req, req->raw_path ? req->raw_path : url);
        check_auth(req, req->raw_path ? req->raw_path : url);
        check_header_size(req);
        check_body_headers(req);
        if (req->body_too_large && !req->early_status) {
            /* Declared too large: answer now; MHD closes the connection after it. */
            http_problem(req, 413, "body-too-large", "Request body too large", NULL,
                         "the body is over the limit of %lld bytes", (long long)body_limit(req));
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->responded || req->early_status || req->body_too_large)
            return MHD_YES;
        if (req->body_len + n > (size_t)body_limit(req)) {
            req->body_too_large = true;
            free(req->body);
            req->body = NULL;
            req->body_len = req->body_cap = 0;
            return MHD_YES;
        }
        if (req->body_len + n > req->body_cap) {
            size_t cap = req->body_cap ? req->body_cap : 4096;
            while (cap < req->body_len + n)
                cap *= 2;
            char *nb = realloc(req->body, cap);
            if (!nb) {
                req_early(req, 500, "internal", "Internal error", NULL, "out of memory");
                return MHD_YES;
            }
            req->body = nb;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        return MHD_YES;
    }

    /* The request has arrived whole: it may now take as long as it needs. */
    guard_disarm(guard_of(conn));
    if (req->responded)
        return MHD_YES;
    if (req->early_status) {
        answer_early(req);
        return MHD_YES;
    }
    if (req->body_too_large) {
        http_problem(req, 413, "body-too-large", "Request body too large", NULL,
                     "the body is over the limit of %lld bytes", (long long)body_limit(req));
        return MHD_YES;
    }
    run_handler(req);
    return MHD_YES;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Percent-decoding of paths and query values, in place. "%00" is left as it
 * is: a NUL would cut a C string short and make "j1%00x" read as "j1".
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s) {
    char *w = s;

    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];

    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    log_warn("http: %s", buf);
}

int http_start(const struct http_config *cfg, struct http_server **out) {
    struct http_server *srv = calloc(1, sizeof *srv);
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *info;
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    bool use_tls = cfg->tls_cert != NULL;

    if (!srv)
        return -ENOMEM;
    if (use_tls) {
        if (!cfg->tls_key) {
            log_error("http: a TLS certificate needs its key");
            free(srv);
            return -EINVAL;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            log_error("http: this libmicrohttpd was built without TLS: cannot serve HTTPS");
            free(srv);
            return -ENOTSUP;
        }
        /* MHD wants PEM text, not file names; it does not change them (the casts drop const). */
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cfg->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)cfg->tls_key};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
        tls[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    srv->cfg = *cfg;
    pthread_mutex_init(&srv->lock, NULL);
    memset(&ss, 0, sizeof ss);
    if (strchr(cfg->host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)cfg->port);
        inet_pton(AF_INET6, cfg->host, &a6->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)cfg->port);
        inet_pton(AF_INET, cfg->host, &a4->sin_addr);
    }
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)cfg->port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, MHD_OPTION_SOCK_ADDR, &ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)cfg->connection_timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!srv->daemon) {
        int err = errno ? errno : EADDRINUSE;
        if (use_tls)
            log_error("http: cannot serve HTTPS on %s:%d (%s); if the address is free, the TLS "
                      "certificate or key was refused (see above: both PEM, and a matching pair)",
                      cfg->host, cfg->port, strerror(err));
        else
            log_error("http: cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(err));
        pthread_mutex_destroy(&srv->lock);
        free(srv);
        return -err;
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->port;
    *out = srv;
    return 0;
}

int http_port(const struct http_server *srv) {
    return srv->port;
}

void http_begin_shutdown(struct http_server *srv) {
    pthread_mutex_lock(&srv->lock);
    srv->shutting_down = true;
    for (struct http_req *r = srv->reqs; r; r = r->next)
        http_wake(r);
    pthread_mutex_unlock(&srv->lock);
}

void http_stop(struct http_server *srv) {
    if (!srv)
        return;
    http_begin_shutdown(srv);
    MHD_stop_daemon(srv->daemon);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

/* ---- accessors ---- */

void *http_app(const struct http_req *req) {
    return req->srv->cfg.app;
}

const char *http_method(const struct http_req *req) {
    return req->method;
}

const char *http_param(const struct http_req *req, int i) {
    return i >= 0 && i < req->n_params ? req->params[i] : "";
}

const char *http_query(const struct http_req *req, const char *key) {
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(const struct http_req *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_body(const struct http_req *req, size_t *len) {
    *len = req->body_len;
    return req->body ? req->body : "";
}

uint64_t http_req_id(const struct http_req *req) {
    return req->id;
}

bool http_first_call(const struct http_req *req) {
    return req->calls == 0;
}

void http_set_state(struct http_req *req, void *state, void (*free_fn)(void *)) {
    req->state = state;
    req->state_free = free_fn;
}

void *http_state(const struct http_req *req) {
    return req->state;
}
