/*
 * http.h: the HTTP layer over libmicrohttpd.
 *
 * It owns the daemon, request bodies (capped), the routing table, bearer
 * auth, problem+json errors, and connection suspension. Handlers (api_*.c)
 * see a struct http_req: they read the request, and either answer with one
 * of the http_respond_* calls, or call http_suspend and return; the handler
 * is then called again, on an MHD thread, after someone calls http_wake (or
 * the deadline given to http_wake_at passes). A suspended request costs
 * memory, not a thread.
 *
 * Handlers run on MHD threads and must never block: no disk waits beyond a
 * quick read, no sleeps, no joins.
 */
#ifndef JOBD_HTTP_H
#define JOBD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http_server;
struct http_req;
struct timers;

typedef void (*http_handler_fn)(struct http_req *req);

/* A route: method and a path pattern whose "{}" segments match one path segment each. */
struct http_route {
    const char *method;
    const char *pattern; /* "/v1/jobs/{}/stdout" */
    http_handler_fn fn;
    bool auth;     /* needs the bearer token when one is configured */
    bool body;     /* takes a JSON body (checks Content-Type) */
    bool big_body; /* its body may be up to max_big_body instead of max_body */
    bool cluster;  /* needs the cluster token instead of the users' (POST /v1/nodes) */
};

struct http_config {
    const char *host;
    int port;
    const char *token; /* NULL: no auth */
    /*
     * The cluster token: the only one a `cluster` route takes (NULL: such
     * routes check nothing here and refuse by themselves). When `peer` is
     * set (a worker node, whose client is its coordinator), the other routes
     * that need auth take it too, and need it even without a users' token.
     */
    const char *cluster_token;
    bool peer;
    int64_t max_body;
    int64_t max_big_body;
    bool access_log; /* log_request for each request */
    int threads;
    int max_connections;
    int connection_timeout;
    const struct http_route *routes;
    size_t n_routes;
    void *app; /* handed to handlers through http_app */
    struct timers *timers;
    /*
     * HTTPS: PEM text (not paths) of the certificate chain and its private
     * key, borrowed until http_stop; both NULL for plain HTTP.
     */
    const char *tls_cert;
    const char *tls_key;
};

#define HTTP_MAX_PARAMS 4

/* The outcome of routing a method and path (see http_route_find). */
struct http_match {
    const struct http_route *route; /* NULL when no route takes this method on this path */
    bool path_known;                /* some route has this path (so: 405, not 404) */
    char allow[64];                 /* the methods of this path, "GET, DELETE" */
    char *params[HTTP_MAX_PARAMS];  /* the "{}" segments: new strings */
    int n_params;
};

/*
 * Route `method` and `path` through a table. A pure function (no server),
 * for the daemon and for tests and fuzzers. Return 0 (then free m's params
 * with http_match_free), or -ENOMEM.
 */
int http_route_find(const struct http_route *routes, size_t n_routes, const char *method,
                    const char *path, struct http_match *m);
void http_match_free(struct http_match *m);

/* Start listening. Return 0 or a negative errno after logging why. */
int http_start(const struct http_config *cfg, struct http_server **out);

/* The port actually bound (useful with port 0). */
int http_port(const struct http_server *srv);

/*
 * Begin shutting down: new requests get 503, and every suspended request is
 * woken with http_req_expired() true, so waits and streams finish now.
 */
void http_begin_shutdown(struct http_server *srv);

/* Stop the daemon (after http_begin_shutdown) and free. */
void http_stop(struct http_server *srv);

/* ---- for handlers ---- */

void *http_app(const struct http_req *req);
const char *http_method(const struct http_req *req);
/* The i-th "{}" segment of the route, percent-decoded. */
const char *http_param(const struct http_req *req, int i);
/* A query argument, or NULL. */
const char *http_query(const struct http_req *req, const char *key);
/* A request header, or NULL. */
const char *http_header(const struct http_req *req, const char *name);
/* The body (not NUL-terminated) and its length. */
const char *http_body(const struct http_req *req, size_t *len);
/* A request id for logs. */
uint64_t http_req_id(const struct http_req *req);
/* True on the first call of the handler for this request. */
bool http_first_call(const struct http_req *req);

/* Per-request handler state: freed with `fn` when the request completes. */
void http_set_state(struct http_req *req, void *state, void (*free_fn)(void *));
void *http_state(const struct http_req *req);

/* Add a response header (copied) to the next response. */
void http_add_header(struct http_req *req, const char *name, const char *value);

/* Answers; each may be called once per request. Bodies are stolen. */
void http_respond_json(struct http_req *req, unsigned status, json_t *body);
void http_respond_buf(struct http_req *req, unsigned status, const char *content_type, char *body,
                      size_t len);
void http_respond_empty(struct http_req *req, unsigned status);
/* Answer `size` bytes of a file from `offset`; fd is stolen (closed by MHD). */
void http_respond_fd(struct http_req *req, unsigned status, const char *content_type, int fd,
                     uint64_t offset, uint64_t size);

/*
 * Answer an RFC 9457 problem. `slug` names the type ("invalid-spec"), field
 * may be NULL. The detail is formatted.
 */
void http_problem(struct http_req *req, unsigned status, const char *slug, const char *title,
                  const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * A streamed answer (chunked). read(req, arg, pos, buf, max) returns a byte
 * count > 0, 0 when no bytes are ready now (it must have arranged for
 * http_wake first, typically with a watch plus http_wake_at), or
 * HTTP_STREAM_END. free_fn(arg) runs when the stream is done.
 */
#define HTTP_STREAM_END ((ssize_t)-1)
typedef ssize_t (*http_stream_fn)(struct http_req *req, void *arg, uint64_t pos, char *buf,
                                  size_t max);
void http_respond_stream(struct http_req *req, unsigned status, const char *content_type,
                         http_stream_fn fn, void *arg, void (*free_fn)(void *));

/* Park the request: the handler returns and is called again after a wake. */
void http_suspend(struct http_req *req);

/* Wake a request (thread-safe, any thread, idempotent; never blocks). */
void http_wake(struct http_req *req);

/* Wake the request at `deadline` (jobd_mono_ms); replaces an earlier deadline. */
void http_wake_at(struct http_req *req, int64_t deadline);

/* True when the server is shutting down or the request's wake_at deadline passed. */
bool http_req_expired(const struct http_req *req);

/* True when the server is shutting down. */
bool http_shutting_down(const struct http_req *req);

#endif
