/*
 * metrics.h: counters and histograms for GET /metrics (Prometheus text).
 *
 * Every recording function is lock-free (relaxed atomics) and may be called
 * from any thread; metrics_render reads a consistent-enough snapshot (each
 * number is exact, the set of them is not taken at one instant).
 */
#ifndef JOBD_METRICS_H
#define JOBD_METRICS_H

#include <stddef.h>

#include "jobd/job.h"

struct http_route;
struct sched_stats;

/* Say which routes exist (once, before threads start): their order names them. */
void metrics_set_routes(const struct http_route *routes, size_t n);

/* A request finished: its route (NULL when none matched), status and duration. */
void metrics_http(const struct http_route *route, unsigned status, double seconds);

void metrics_job_submitted(enum jobd_executor e);
void metrics_job_ended(enum jobd_executor e, enum jobd_state s, double seconds);

/* A store transaction committed (or failed) after `seconds`. */
void metrics_store_commit(double seconds, int ops);

/*
 * Render everything, with the gauges of `st`, as Prometheus text. Return a
 * new string (free it) and its length, or NULL if memory runs out.
 */
char *metrics_render(const struct sched_stats *st, size_t *len);

#endif
