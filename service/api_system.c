/*
 * api_system.c: GET /healthz and the routing table of the whole API.
 */
#include "app.h"
#include "scheduler.h"

void api_healthz(struct http_req *req) {
    struct app *app = http_app(req);
    struct sched_stats st;

    sched_stats(app->sched, &st);
    http_respond_json(req, 200,
                      json_pack("{s:s, s:s, s:i, s:i}", "status", "ok", "version", JOBD_VERSION,
                                "queued", st.queued, "running", st.running));
}

const struct http_route api_routes[] = {
    {"GET", "/healthz", api_healthz, false, false},
    {"POST", "/v1/jobs", api_jobs_create, true, true},
    {"GET", "/v1/jobs", api_jobs_list, true, false},
    {"GET", "/v1/jobs/{}", api_jobs_get, true, false},
    {"DELETE", "/v1/jobs/{}", api_jobs_delete, true, false},
    {"POST", "/v1/jobs/{}/cancel", api_jobs_cancel, true, false},
    {"GET", "/v1/jobs/{}/stdout", api_jobs_stdout, true, false},
    {"GET", "/v1/jobs/{}/stderr", api_jobs_stderr, true, false},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
