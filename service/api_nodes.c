/*
 * api_nodes.c: /v1/nodes: worker nodes join and heartbeat (with the cluster
 * token), people list, drain and forget them (with the users' token).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "exec_remote.h"
#include "jobd/spec.h"
#include "scheduler.h"

#define MAX_CAPACITY 100000
#define MAX_VERSION  64

static void bad_node(struct http_req *req, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_node(struct http_req *req, const char *field, const char *fmt, ...) {
    char detail[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    http_problem(req, 400, "invalid-node", "Invalid node registration", field, "%s: %s",
                 field ? field : "body", detail);
}

/* A node id: 1..64 of [A-Za-z0-9._-], starting with a letter or digit. */
static bool node_id_ok(const char *id, size_t len) {
    if (len == 0 || len > EXEC_REMOTE_NODE_ID_MAX || strlen(id) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* POST /v1/nodes: a node joins, or says it is still there. */
void api_nodes_register(struct http_req *req) {
    struct app *app = http_app(req);
    struct sched_node_reg reg;
    json_error_t jerr;
    struct jobd_error jerr_labels;
    json_t *in, *v, *doc = NULL;
    const char *key, *body;
    size_t len;
    bool created = false;
    int rc;

    if (!app->cfg->cluster_token) {
        http_problem(req, 403, "no-cluster", "Not a coordinator", NULL,
                     "this jobd takes no worker nodes: start it with --cluster-token-file (or "
                     "JOBD_CLUSTER_TOKEN) to accept them");
        return;
    }
    body = http_body(req, &len);
    in = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!in) {
        http_problem(req, 400, "invalid-json", "Malformed JSON", NULL, "line %d, column %d: %s",
                     jerr.line, jerr.column, jerr.text);
        return;
    }
    memset(&reg, 0, sizeof reg);
    if (!json_is_object(in)) {
        bad_node(req, NULL, "must be an object {\"id\", \"url\", \"labels\", \"capacity\"}");
        goto out;
    }
    json_object_foreach(in, key, v) {
        if (strcmp(key, "id") != 0 && strcmp(key, "url") != 0 && strcmp(key, "labels") != 0 &&
            strcmp(key, "capacity") != 0 && strcmp(key, "version") != 0) {
            bad_node(req, key, "unknown field");
            goto out;
        }
    }
    v = json_object_get(in, "id");
    if (!json_is_string(v) || !node_id_ok(json_string_value(v), json_string_length(v))) {
        bad_node(req, "id",
                 "must be 1 to %d characters of A-Z a-z 0-9 . _ -, starting with a letter or "
                 "digit",
                 EXEC_REMOTE_NODE_ID_MAX);
        goto out;
    }
    reg.id = json_string_value(v);
    v = json_object_get(in, "url");
    if (!json_is_string(v) || !config_node_url_ok(json_string_value(v), json_string_length(v))) {
        bad_node(req, "url",
                 "must be an http:// or https:// URL of at most 1024 bytes, without a query or "
                 "a trailing slash");
        goto out;
    }
    reg.url = json_string_value(v);
    v = json_object_get(in, "capacity");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_CAPACITY) {
        bad_node(req, "capacity", "must be an integer from 1 to %d", MAX_CAPACITY);
        goto out;
    }
    reg.capacity = (int)json_integer_value(v);
    v = json_object_get(in, "labels");
    if (v && !json_is_null(v)) {
        if (jobd_labels_check(v, "labels", &jerr_labels) < 0) {
            bad_node(req, jerr_labels.field, "%s", jerr_labels.message);
            goto out;
        }
        reg.labels = v;
    }
    v = json_object_get(in, "version");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > MAX_VERSION ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            bad_node(req, "version", "must be a string of at most %d bytes", MAX_VERSION);
            goto out;
        }
        reg.version = json_string_value(v);
    }
    rc = sched_node_register(app->sched, &reg, &doc, &created);
    if (rc == -ESHUTDOWN) {
        http_problem(req, 503, "shutting-down", "Shutting down", NULL, "jobd is shutting down");
    } else if (rc < 0) {
        api_internal(req, rc);
    } else {
        /* The node heartbeats at a third of the timeout, so one lost heartbeat is not fatal. */
        json_object_set_new(doc, "node_timeout", json_real(app->cfg->node_timeout));
        json_object_set_new(doc, "heartbeat_interval", json_real(app->cfg->node_timeout / 3));
        http_respond_json(req, created ? 201 : 200, doc);
    }
out:
    json_decref(in);
}

void api_nodes_list(struct http_req *req) {
    struct app *app = http_app(req);
    json_t *arr = NULL;
    int rc = sched_nodes_list(app->sched, &arr);

    if (rc < 0) {
        api_internal(req, rc);
        return;
    }
    http_respond_json(req, 200, json_pack("{s:o}", "nodes", arr));
}

static void no_such_node(struct http_req *req) {
    http_problem(req, 404, "not-found", "Not found", NULL, "no node with id '%.64s'",
                 http_param(req, 0));
}

void api_nodes_get(struct http_req *req) {
    struct app *app = http_app(req);
    json_t *doc = NULL;
    int rc = sched_node_get(app->sched, http_param(req, 0), &doc);

    if (rc == -ENOENT)
        no_such_node(req);
    else if (rc < 0)
        api_internal(req, rc);
    else
        http_respond_json(req, 200, doc);
}

void api_nodes_drain(struct http_req *req) {
    struct app *app = http_app(req);
    json_t *doc = NULL;
    int rc = sched_node_drain(app->sched, http_param(req, 0), &doc);

    if (rc == -ENOENT)
        no_such_node(req);
    else if (rc < 0)
        api_internal(req, rc);
    else
        http_respond_json(req, 202, doc);
}

void api_nodes_delete(struct http_req *req) {
    struct app *app = http_app(req);
    int running = 0;
    int rc = sched_node_delete(app->sched, http_param(req, 0), &running);

    if (rc == -ENOENT)
        no_such_node(req);
    else if (rc == -EBUSY)
        http_problem(req, 409, "node-busy", "Node busy", NULL,
                     "node '%.64s' still runs %d job(s): drain it and wait for them to end",
                     http_param(req, 0), running);
    else if (rc < 0)
        api_internal(req, rc);
    else
        http_respond_empty(req, 204);
}
