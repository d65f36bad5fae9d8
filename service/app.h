/*
 * app.h: what the API handlers share, set up once in main and read-only
 * afterwards (each module behind it guards its own state).
 */
#ifndef JOBD_APP_H
#define JOBD_APP_H

#include "config.h"
#include "http.h"

struct sched;
struct store;

struct app {
    const struct config *cfg;
    struct sched *sched;
    struct store *store;
    char out_dir[4096];
};

/* The routing table of every handler (api_jobs.c, api_system.c). */
extern const struct http_route api_routes[];
extern const size_t api_n_routes;

/*
 * Checks of a parsed spec that need the service (tasks registered, executors
 * available; cfg may be NULL: no worker nodes). Return 0, or -EINVAL after
 * filling err.
 */
struct jobd_spec;
struct jobd_error;
int api_check_spec(const struct config *cfg, const struct jobd_spec *spec, struct jobd_error *err);

/* Answer 500 (503 when out of memory) for an internal failure rc (a negative errno). */
void api_internal(struct http_req *req, int rc);

/* A scheduler watch callback that wakes the request `req` (an http_req). */
void api_wake(void *req);

/* Handlers, one file per resource. */
void api_jobs_create(struct http_req *req);
void api_jobs_list(struct http_req *req);
void api_jobs_get(struct http_req *req);
void api_jobs_cancel(struct http_req *req);
void api_jobs_delete(struct http_req *req);
void api_jobs_stdout(struct http_req *req);
void api_jobs_stderr(struct http_req *req);
void api_healthz(struct http_req *req);
void api_openapi(struct http_req *req);
void api_tasks_list(struct http_req *req);
void api_metrics(struct http_req *req);
void api_events(struct http_req *req);
void api_batches_create(struct http_req *req);
void api_batches_get(struct http_req *req);
void api_batches_cancel(struct http_req *req);
void api_nodes_register(struct http_req *req);
void api_nodes_list(struct http_req *req);
void api_nodes_get(struct http_req *req);
void api_nodes_delete(struct http_req *req);
void api_nodes_drain(struct http_req *req);

#endif
