/*
 * api_events.c: GET /v1/events, a server-sent-events stream of job and node
 * changes.
 *
 * Each published change of a job is one event: `id` is the change's seq,
 * `event` is "job", `data` the job document. A change of a worker node
 * (joined, drained, down, back, forgotten) takes a seq too and is an event
 * "node" with the node document (or "node_deleted" with {"id"}); the last
 * few hundred of those are kept in memory, not in the store. A client that reconnects with
 * `Last-Event-ID: N` (or `?since=N`) gets every job changed after N, in
 * change order, then the live stream: the events are read from the store
 * with the same query as GET /v1/jobs?since=, so nothing is missed between
 * two connections (a job changed twice shows its latest state once). A
 * comment line every 15 s keeps idle connections (and proxies) alive.
 *
 * The stream's state is a struct events_req owned by the request; the
 * scheduler watch in it wakes the request when a change is published.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "jobd/util.h"
#include "scheduler.h"
#include "store.h"

#define EVENTS_BATCH     100   /* rows read from the store per refill */
#define EVENTS_KEEPALIVE 15000 /* ms between keep-alive comments */

struct events_req {
    struct http_req *req;
    struct sched *s;
    struct store *st;
    struct sched_watch watch;
    int64_t since; /* last seq sent */
    char *buf;     /* pending text */
    size_t len, off, cap;
    int64_t last_write; /* mono ms */
};

static void events_free(void *arg) {
    struct events_req *er = arg;

    sched_unwatch(er->s, &er->watch);
    free(er->buf);
    free(er);
}

static int append(struct events_req *er, const char *s, size_t n) {
    if (er->len + n > er->cap) {
        size_t cap = er->cap ? er->cap : 8192;
        while (cap < er->len + n)
            cap *= 2;
        char *nb = realloc(er->buf, cap);
        if (!nb)
            return -ENOMEM;
        er->buf = nb;
        er->cap = cap;
    }
    memcpy(er->buf + er->len, s, n);
    er->len += n;
    return 0;
}

static int add_event(struct events_req *er, int64_t seq, const char *kind, const char *doc) {
    char head[64];
    int n = snprintf(head, sizeof head, "id: %lld\nevent: %s\ndata: ", (long long)seq, kind);

    if (append(er, head, (size_t)n) < 0 || append(er, doc, strlen(doc)) < 0 ||
        append(er, "\n\n", 2) < 0)
        return -ENOMEM;
    er->since = seq;
    return 0;
}

/* Node changes of one refill, merged into the job changes by seq. */
struct node_evs {
    int64_t seq[EVENTS_BATCH];
    char *doc[EVENTS_BATCH];
    bool deleted[EVENTS_BATCH];
    size_t n, next;
};

static int copy_node_event(void *arg, int64_t seq, bool deleted, const char *doc) {
    struct node_evs *ne = arg;

    if (ne->n == EVENTS_BATCH)
        return 1; /* the rest comes with the next refill */
    ne->doc[ne->n] = strdup(doc);
    if (!ne->doc[ne->n])
        return -ENOMEM;
    ne->seq[ne->n] = seq;
    ne->deleted[ne->n++] = deleted;
    return 0;
}

/* Emit the node changes numbered before `seq`. */
static int flush_nodes(struct events_req *er, struct node_evs *ne, int64_t seq) {
    for (; ne->next < ne->n && ne->seq[ne->next] < seq; ne->next++) {
        size_t i = ne->next;
        if (add_event(er, ne->seq[i], ne->deleted[i] ? "node_deleted" : "node", ne->doc[i]) < 0)
            return -ENOMEM;
    }
    return 0;
}

struct refill {
    struct events_req *er;
    struct node_evs *ne;
    int64_t upto; /* rows after this seq wait for the next refill */
    int rows;
};

static int add_row(void *arg, const struct store_row *row) {
    struct refill *r = arg;

    if (row->seq > r->upto)
        return 1;
    r->rows++;
    if (flush_nodes(r->er, r->ne, row->seq) < 0)
        return -ENOMEM;
    return add_event(r->er, row->seq, "job", row->doc);
}

/*
 * Fill er->buf with the changes after er->since and up to `pub` (the last
 * published: a change numbered after it may be published before one
 * numbered before it is), job rows from the store and node changes from the
 * scheduler, in seq order. Return 0 or a negative errno.
 */
static int refill(struct events_req *er, int64_t pub) {
    struct node_evs *ne = calloc(1, sizeof *ne);
    struct refill r = {er, ne, pub, 0};
    struct store_query q;
    int rc;

    if (!ne)
        return -ENOMEM;
    rc = sched_node_events(er->s, er->since, pub, copy_node_event, ne);
    if (rc == 1) /* more node changes than one refill takes: stop the rows where they stop */
        r.upto = ne->seq[ne->n - 1];
    if (rc >= 0) {
        memset(&q, 0, sizeof q);
        q.by_seq = true;
        q.since_seq = er->since;
        q.limit = EVENTS_BATCH;
        rc = store_query(er->st, &q, add_row, &r);
        if (rc == -ENOENT)
            rc = 0;
    }
    /*
     * A full page of rows may have more after it: the node changes numbered
     * after its last row wait. Otherwise every node change taken is due.
     */
    if (rc >= 0 && (rc == 1 || r.rows < EVENTS_BATCH) && flush_nodes(er, ne, INT64_MAX) < 0)
        rc = -ENOMEM;
    for (size_t i = 0; i < ne->n; i++)
        free(ne->doc[i]);
    free(ne);
    return rc < 0 ? rc : 0;
}

static ssize_t events_read(struct http_req *req, void *arg, uint64_t pos, char *out, size_t max) {
    struct events_req *er = arg;
    int64_t now;
    int rc;

    if (er->off == er->len) {
        er->off = er->len = 0;
        for (int round = 0; round < 8 && er->len == 0; round++) {
            /* Arm first, then look: a change published in between wakes us. */
            int64_t pub = sched_published_seq(er->s);
            rc = sched_watch_seq(er->s, &er->watch, er->since);
            if (refill(er, pub) < 0)
                return -1;
            if (er->len > 0 || rc == 0)
                break;
            /* Changes were published but their jobs are gone (deleted): skip them. */
            if (pub > er->since)
                er->since = pub;
        }
        now = jobd_mono_ms();
        if (er->len == 0 && now - er->last_write >= EVENTS_KEEPALIVE &&
            append(er, ": keep-alive\n\n", 14) < 0)
            return -1;
        if (er->len == 0) {
            if (http_shutting_down(req))
                return HTTP_STREAM_END;
            http_wake_at(req, er->last_write + EVENTS_KEEPALIVE);
            return 0;
        }
        sched_unwatch(er->s, &er->watch);
        er->last_write = now;
    }
    size_t k = er->len - er->off < max ? er->len - er->off : max;
    memcpy(out, er->buf + er->off, k);
    er->off += k;
    return (ssize_t)k;
}

void api_events(struct http_req *req) {
    struct app *app = http_app(req);
    struct events_req *er;
    const char *last = http_header(req, "Last-Event-ID");
    const char *since = http_query(req, "since");
    const char *v = last ? last : since;
    int64_t start = -1;

    if (v) {
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < 0) {
            http_problem(req, 400, "invalid-parameter", "Invalid parameter",
                         last ? "Last-Event-ID" : "since",
                         "%s: must be a change number (seq) from 0 up",
                         last ? "Last-Event-ID" : "since");
            return;
        }
        start = n;
    }
    er = calloc(1, sizeof *er);
    if (!er) {
        http_problem(req, 503, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    er->req = req;
    er->s = app->sched;
    er->st = app->store;
    /* Without a starting point, only what changes from now on. */
    er->since = start >= 0 ? start : sched_published_seq(app->sched);
    er->last_write = jobd_mono_ms();
    sched_watch_init(&er->watch, api_wake, req);
    http_set_state(req, er, events_free);
    http_add_header(req, "Cache-Control", "no-cache");
    http_respond_stream(req, 200, "text/event-stream", events_read, er, NULL);
}
