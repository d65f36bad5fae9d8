/*
 * api_system.c: GET /healthz and the routing table of the whole API.
 */
#include <stdlib.h>
#include <string.h>

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

const struct http_route api_routes[] = {
    {"GET", "/healthz", api_healthz, false, false},
    {"POST", "/v1/jobs", api_jobs_create, true, true},
    {"GET", "/v1/jobs", api_jobs_list, true, false},
    {"GET", "/v1/jobs/{}", api_jobs_get, true, false},
    {"DELETE", "/v1/jobs/{}", api_jobs_delete, true, false},
    {"POST", "/v1/jobs/{}/cancel", api_jobs_cancel, true, false},
    {"GET", "/v1/jobs/{}/stdout", api_jobs_stdout, true, false},
    {"GET", "/v1/jobs/{}/stderr", api_jobs_stderr, true, false},
    {"GET", "/v1/openapi.yaml", api_openapi, true, false},
};

const size_t api_n_routes = sizeof api_routes / sizeof api_routes[0];
