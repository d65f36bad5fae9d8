/*
 * api_system.c: GET /healthz and the routing table of the whole API.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "jobd/task.h"
#include "metrics.h"
#include "scheduler.h"

void api_internal(struct http_req *req, int rc) {
    http_problem(req, rc == -ENOMEM ? 503 : 500, "internal", "Internal error", NULL, "%s",
                 strerror(-rc));
}

void api_wake(void *req) {
    http_wake(req);
}

void api_healthz(struct http_req *req) {
    struct app *app = http_app(req);
    struct sched_stats st;

    sched_stats(app->sched, &st);
    /*
     * Stuck task threads do not make jobd unhealthy (it serves on with the
     * others), but they are reported so a person can look.
     */
    json_t *doc =
        json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "status", "ok", "version", JOBD_VERSION,
                  "queued", st.queued, "running", st.running, "threads", st.threads, "threads_busy",
                  st.running_thread, "threads_stuck", st.stuck_threads);
    /* A coordinator counts its nodes (a down node does not make it unhealthy). */
    if (doc && app->cfg->cluster_token && !app->cfg->join)
        json_object_set_new(doc, "nodes",
                            json_pack("{s:i, s:i, s:i}", "ready", st.nodes_ready, "draining",
                                      st.nodes_draining, "down", st.nodes_down));
    http_respond_json(req, 200, doc);
}

/* GET /v1/tasks: the registry, in name order. */
void api_tasks_list(struct http_req *req) {
    json_t *arr = json_array();
    size_t n = jobd_task_count();

    for (size_t i = 0; arr && i < n; i++) {
        const struct jobd_task_def *d = jobd_task_at(i);
        if (d)
            json_array_append_new(arr, json_pack("{s:s, s:s}", "name", d->name, "description",
                                                 d->description ? d->description : ""));
    }
    http_respond_json(req, 200, arr ? json_pack("{s:o}", "tasks", arr) : NULL);
}

/* GET /metrics: Prometheus text format. */
void api_metrics(struct http_req *req) {
    struct app *app = http_app(req);
    struct sched_stats st;
    size_t len = 0;
    char *buf;

    sched_stats(app->sched, &st);
    buf = metrics_render(&st, &len);
    if (!buf) {
        http_problem(req, 503, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    http_respond_buf(req, 200, "text/plain; version=0.0.4", buf, len);
}

/* The contract, embedded at build time (openapi_data.c, generated). */
extern const unsigned char openapi_yaml[];
extern const size_t openapi_yaml_len;

void api_openapi(struct http_req *req) {
    char *copy = malloc(openapi_yaml_len);

    if (!copy) {
        http_problem(req, 503, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    memcpy(copy, openapi_yaml, openapi_yaml_len);
    http_respond_buf(req, 200, "application/yaml", copy, openapi_yaml_len);
}

/*
 * method, path, handler, needs the token, takes a JSON body, takes a big body,
 * needs the cluster token instead
 */
const struct http_route api_routes[] = {
    {"GET", "/healthz", api_healthz, false, false, false, false},
    {"POST", "/v1/jobs", api_jobs_create, true, true, false, false},
    {"GET", "/v1/jobs", api_jobs_list, true, false, false, false},
    {"GET", "/v1/jobs/{}", api_jobs_get, true, false, false, false},
    {"DELETE", "/v1/jobs/{}", api_jobs_delete, true, false, false, false},
    {"POST", "/v1/jobs/{}/cancel", api_jobs_cancel, true, false, false, false},
    {"GET", "/v1/jobs/{}/stdout", api_jobs_stdout, true, false, false, false},
    {"GET", "/v1/jobs/{}/stderr", api_jobs_stderr, true, false, false, false},
    {"GET", "/v1/openapi.yaml", api_openapi, true, false, false, false},
    {"GET", "/v1/tasks", api_tasks_list, true, false, false, false},
    {"POST", "/v1/batches", api_batches_create, true, true, true, false},
    {"GET", "/v1/batches/{}", api_batches_get, true, false, false, false},
    {"POST", "/v1/batches/{}/cancel", api_batches_cancel, true, false, false, false},
    {"GET", "/metrics", api_metrics, true, false, false, false},
    {"GET", "/v1/events", api_events, true, false, false, false},
    {"POST", "/v1/nodes", api_nodes_register, true, true, false, true},
    {"GET", "/v1/nodes", api_nodes_list, true, false, false, false},
    {"GET", "/v1/nodes/{}", api_nodes_get, true, false, false, false},
    {"DELETE", "/v1/nodes/{}", api_nodes_delete, true, false, false, false},
    {"POST", "/v1/nodes/{}/drain", api_nodes_drain, true, false, false, false},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
