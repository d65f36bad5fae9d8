/*
 * metrics.c: see metrics.h. All state is in static arrays of relaxed
 * atomics: one writer of a cell at a time is not assumed, and no lock is
 * taken, so recording costs a few atomic adds on the hot paths.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "scheduler.h"

#define MAX_ROUTES 32

/* The statuses jobd answers; anything else is counted as "other". */
static const unsigned statuses[] = {200, 201, 202, 204, 400, 401, 404, 405, 408,
                                    409, 413, 414, 415, 429, 431, 500, 503};
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1)

/* Histogram bounds, seconds. */
static const double http_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     5,    30};
#define N_HTTP_B (sizeof http_bounds / sizeof http_bounds[0])
static const double job_bounds[] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 1800, 3600};
#define N_JOB_B (sizeof job_bounds / sizeof job_bounds[0])
static const double store_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                      0.01,   0.025,   0.05,   0.1,   0.5,    1};
#define N_STORE_B (sizeof store_bounds / sizeof store_bounds[0])

struct histogram {
    atomic_uint_fast64_t buckets[16]; /* cumulative is computed at render */
    atomic_uint_fast64_t count;
    _Atomic double sum; /* updated with a CAS loop */
};

static const struct http_route *route_table;
static size_t n_route_table;

static atomic_uint_fast64_t http_count[MAX_ROUTES + 1][N_STATUS];
static struct histogram http_latency;
static atomic_uint_fast64_t submitted[JOBD_EXEC_COUNT];
static atomic_uint_fast64_t ended[JOBD_EXEC_COUNT][JOBD_STATE_COUNT];
static struct histogram job_duration;
static struct histogram store_commit;
static atomic_uint_fast64_t store_ops;

void metrics_set_routes(const struct http_route *routes, size_t n) {
    route_table = routes;
    n_route_table = n < MAX_ROUTES ? n : MAX_ROUTES;
}

static void observe(struct histogram *h, const double *bounds, size_t nb, double v) {
    size_t i = 0;
    double old;

    while (i < nb && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    old = atomic_load_explicit(&h->sum, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum, &old, old + v, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

void metrics_http(const struct http_route *route, unsigned status, double seconds) {
    size_t r = MAX_ROUTES, s = N_STATUS - 1;

    if (route && route_table && route >= route_table && route < route_table + n_route_table)
        r = (size_t)(route - route_table);
    for (size_t i = 0; i < N_STATUS - 1; i++) {
        if (statuses[i] == status) {
            s = i;
            break;
        }
    }
    atomic_fetch_add_explicit(&http_count[r][s], 1, memory_order_relaxed);
    observe(&http_latency, http_bounds, N_HTTP_B, seconds);
}

void metrics_job_submitted(enum jobd_executor e) {
    if ((unsigned)e < JOBD_EXEC_COUNT)
        atomic_fetch_add_explicit(&submitted[e], 1, memory_order_relaxed);
}

void metrics_job_ended(enum jobd_executor e, enum jobd_state st, double seconds) {
    if ((unsigned)e < JOBD_EXEC_COUNT && (unsigned)st < JOBD_STATE_COUNT)
        atomic_fetch_add_explicit(&ended[e][st], 1, memory_order_relaxed);
    if (seconds >= 0)
        observe(&job_duration, job_bounds, N_JOB_B, seconds);
}

void metrics_store_commit(double seconds, int ops) {
    observe(&store_commit, store_bounds, N_STORE_B, seconds);
    atomic_fetch_add_explicit(&store_ops, (uint64_t)(ops > 0 ? ops : 0), memory_order_relaxed);
}

/* A growing text buffer; on allocation failure it stays failed. */
struct buf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...) {
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static void put_histogram(struct buf *b, const char *name, const char *help, struct histogram *h,
                          const double *bounds, size_t nb) {
    uint64_t cum = 0;

    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < nb; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&h->buckets[nb], memory_order_relaxed);
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(b, "%s_sum %.6f\n", name, atomic_load_explicit(&h->sum, memory_order_relaxed));
    put(b, "%s_count %llu\n", name,
        (unsigned long long)atomic_load_explicit(&h->count, memory_order_relaxed));
}

char *metrics_render(const struct sched_stats *st, size_t *len) {
    struct buf b = {0};

    put(&b, "# HELP jobd_jobs_submitted_total Jobs accepted, by executor.\n"
            "# TYPE jobd_jobs_submitted_total counter\n");
    for (int e = 0; e < JOBD_EXEC_COUNT; e++)
        put(&b, "jobd_jobs_submitted_total{executor=\"%s\"} %llu\n",
            jobd_executor_name((enum jobd_executor)e),
            (unsigned long long)atomic_load_explicit(&submitted[e], memory_order_relaxed));
    put(&b, "# HELP jobd_jobs_ended_total Jobs that reached a final state, by state and executor.\n"
            "# TYPE jobd_jobs_ended_total counter\n");
    for (int e = 0; e < JOBD_EXEC_COUNT; e++) {
        for (int s = JOBD_SUCCEEDED; s < JOBD_STATE_COUNT; s++)
            put(&b, "jobd_jobs_ended_total{executor=\"%s\",state=\"%s\"} %llu\n",
                jobd_executor_name((enum jobd_executor)e), jobd_state_name((enum jobd_state)s),
                (unsigned long long)atomic_load_explicit(&ended[e][s], memory_order_relaxed));
    }
    put(&b,
        "# HELP jobd_jobs_queued Jobs waiting to run.\n# TYPE jobd_jobs_queued gauge\n"
        "jobd_jobs_queued %d\n",
        st->queued);
    put(&b,
        "# HELP jobd_jobs_running Jobs running, by executor.\n# TYPE jobd_jobs_running gauge\n"
        "jobd_jobs_running{executor=\"process\"} %d\n"
        "jobd_jobs_running{executor=\"thread\"} %d\n"
        "jobd_jobs_running{executor=\"remote\"} %d\n",
        st->running_process, st->running_thread, st->running_remote);
    put(&b,
        "# HELP jobd_nodes Worker nodes known to this coordinator, by state.\n"
        "# TYPE jobd_nodes gauge\n"
        "jobd_nodes{state=\"ready\"} %d\njobd_nodes{state=\"draining\"} %d\n"
        "jobd_nodes{state=\"down\"} %d\n",
        st->nodes_ready, st->nodes_draining, st->nodes_down);
    put_histogram(&b, "jobd_job_duration_seconds", "Time from start to end of job attempts.",
                  &job_duration, job_bounds, N_JOB_B);
    put(&b, "# HELP jobd_http_requests_total HTTP requests, by route and status.\n"
            "# TYPE jobd_http_requests_total counter\n");
    for (size_t r = 0; r <= MAX_ROUTES; r++) {
        const char *method = "", *pattern = "unmatched";
        if (r < MAX_ROUTES && r >= n_route_table)
            continue;
        if (r < MAX_ROUTES) {
            method = route_table[r].method;
            pattern = route_table[r].pattern;
        }
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t v = atomic_load_explicit(&http_count[r][s], memory_order_relaxed);
            char code[8];
            if (!v)
                continue;
            if (s < N_STATUS - 1)
                snprintf(code, sizeof code, "%u", statuses[s]);
            else
                snprintf(code, sizeof code, "other");
            put(&b, "jobd_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} %llu\n",
                method, pattern, code, (unsigned long long)v);
        }
    }
    put_histogram(&b, "jobd_http_request_duration_seconds", "Time to answer HTTP requests.",
                  &http_latency, http_bounds, N_HTTP_B);
    put_histogram(&b, "jobd_store_commit_seconds", "Time of store transactions.", &store_commit,
                  store_bounds, N_STORE_B);
    put(&b,
        "# HELP jobd_store_operations_total Rows written by the store.\n"
        "# TYPE jobd_store_operations_total counter\njobd_store_operations_total %llu\n",
        (unsigned long long)atomic_load_explicit(&store_ops, memory_order_relaxed));
    put(&b,
        "# HELP jobd_task_threads Size of the task thread pool.\n"
        "# TYPE jobd_task_threads gauge\njobd_task_threads %d\n",
        st->threads);
    put(&b,
        "# HELP jobd_task_threads_stuck Task threads stuck in an abandoned task.\n"
        "# TYPE jobd_task_threads_stuck gauge\njobd_task_threads_stuck %d\n",
        st->stuck_threads);
    put(&b,
        "# HELP jobd_changes_total Job changes published (the last seq).\n"
        "# TYPE jobd_changes_total counter\njobd_changes_total %lld\n",
        (long long)st->seq);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
