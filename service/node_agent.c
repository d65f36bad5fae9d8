/*
 * node_agent.c: join a coordinator and heartbeat (see node_agent.h).
 */
#include "node_agent.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "jobd/util.h"
#include "log.h"

#define ANSWER_MAX      ((size_t)64 * 1024) /* bytes of the coordinator's answer we read */
#define DEFAULT_EVERY_S 5.0                 /* heartbeat interval until the coordinator names one */
#define MIN_EVERY_S     0.1
#define MAX_EVERY_S     60.0
#define FIRST_BACKOFF_S 0.5

struct node_agent {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop; /* guarded by lock */
    pthread_t thread;
    char *endpoint; /* <join>/v1/nodes */
    char *body;     /* the registration, JSON */
    char *auth;     /* "Authorization: Bearer ..." */
    char *cacert;
    char *join;
};

struct answer {
    char *buf;
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
    struct answer *a = arg;
    size_t len = size * n;

    if (a->len + len > ANSWER_MAX)
        return 0; /* too big: fail the transfer */
    char *nb = realloc(a->buf, a->len + len + 1);
    if (!nb)
        return 0;
    memcpy(nb + a->len, data, len);
    a->len += len;
    nb[a->len] = '\0';
    a->buf = nb;
    return len;
}

static bool stopping(struct node_agent *a) {
    bool v;

    pthread_mutex_lock(&a->lock);
    v = a->stop;
    pthread_mutex_unlock(&a->lock);
    return v;
}

/* Sockets close-on-exec, like every descriptor jobd opens. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr) {
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* libcurl's progress callback: cut the exchange short when stopping. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    return stopping(arg) ? 1 : 0;
}

/*
 * One registration or heartbeat. Return the HTTP status (0 when no answer),
 * with the coordinator's heartbeat interval in *every (when it named one) and
 * a short reason in why.
 */
static long beat(struct node_agent *a, double *every, char *why, size_t whylen) {
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct answer ans = {NULL, 0};
    long status = 0;
    CURLcode rc;

    why[0] = '\0';
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, a->auth);
    curl_easy_setopt(c, CURLOPT_URL, a->endpoint);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->body);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    if (a->cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, a->cacert);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        json_t *doc = ans.buf ? json_loads(ans.buf, 0, NULL) : NULL;
        json_t *iv = json_object_get(doc, "heartbeat_interval");
        if (status == 200 || status == 201) {
            if (json_is_number(iv))
                *every = json_number_value(iv);
        } else {
            const char *d = json_string_value(json_object_get(doc, "detail"));
            snprintf(why, whylen, "HTTP %ld: %.300s", status, d ? d : "no detail");
        }
        json_decref(doc);
    }
    free(ans.buf);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* Wait up to s seconds, or until stop. Return true when stopping. */
static bool nap(struct node_agent *a, double s) {
    struct timespec ts;
    bool stop;

    jobd_mono_after((int64_t)(s * 1000), &ts);
    pthread_mutex_lock(&a->lock);
    while (!a->stop && pthread_cond_timedwait(&a->cond, &a->lock, &ts) == 0)
        ;
    stop = a->stop;
    pthread_mutex_unlock(&a->lock);
    return stop;
}

static void *agent_main(void *arg) {
    struct node_agent *a = arg;
    double every = DEFAULT_EVERY_S, backoff = FIRST_BACKOFF_S;
    char why[400], last_why[400] = "";
    bool was_ok = false;

    while (!stopping(a)) {
        long status = beat(a, &every, why, sizeof why);
        if (every < MIN_EVERY_S || every != every)
            every = MIN_EVERY_S;
        if (every > MAX_EVERY_S)
            every = MAX_EVERY_S;
        if (status == 200 || status == 201) {
            if (!was_ok || status == 201)
                log_info("node: %s coordinator %s (heartbeat every %g s)",
                         status == 201 ? "joined" : "in touch with", a->join, every);
            was_ok = true;
            last_why[0] = '\0';
            backoff = FIRST_BACKOFF_S;
            if (nap(a, every))
                break;
            continue;
        }
        if (stopping(a))
            break;
        /* Say it once per change, not once per try. */
        if (was_ok || strcmp(why, last_why) != 0)
            log_warn("node: coordinator %s: %s; trying again", a->join, why);
        snprintf(last_why, sizeof last_why, "%s", why);
        was_ok = false;
        if (nap(a, backoff))
            break;
        backoff = backoff * 2 < every ? backoff * 2 : every;
    }
    return NULL;
}

/* The registration body: id, url, labels, capacity, version. */
static char *registration(const struct node_agent_config *cfg) {
    json_t *labels = json_object();
    json_t *o;
    char *text = NULL;

    if (!labels)
        return NULL;
    for (int i = 0; i < cfg->n_labels; i++) {
        const char *eq = strchr(cfg->labels[i], '=');
        char key[256];
        if (!eq || (size_t)(eq - cfg->labels[i]) >= sizeof key)
            continue; /* checked by config_parse */
        memcpy(key, cfg->labels[i], (size_t)(eq - cfg->labels[i]));
        key[eq - cfg->labels[i]] = '\0';
        json_object_set_new(labels, key, json_string(eq + 1));
    }
    o = json_pack("{s:s, s:s, s:o, s:i, s:s}", "id", cfg->id, "url", cfg->url, "labels", labels,
                  "capacity", cfg->capacity, "version", JOBD_VERSION);
    if (o)
        text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static void agent_free(struct node_agent *a) {
    if (a->auth) {
        explicit_bzero(a->auth, strlen(a->auth));
        free(a->auth);
    }
    free(a->endpoint);
    free(a->body);
    free(a->cacert);
    free(a->join);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

int node_agent_start(const struct node_agent_config *cfg, struct node_agent **out) {
    struct node_agent *a = calloc(1, sizeof *a);
    pthread_condattr_t ca;
    size_t jl;
    int rc;

    if (!a)
        return -ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    jl = strlen(cfg->join);
    while (jl > 0 && cfg->join[jl - 1] == '/')
        jl--;
    if (asprintf(&a->endpoint, "%.*s/v1/nodes", (int)jl, cfg->join) < 0)
        a->endpoint = NULL;
    if (asprintf(&a->auth, "Authorization: Bearer %s", cfg->cluster_token) < 0)
        a->auth = NULL;
    a->join = strndup(cfg->join, jl);
    a->body = registration(cfg);
    a->cacert = cfg->cacert ? strdup(cfg->cacert) : NULL;
    if (!a->endpoint || !a->auth || !a->join || !a->body || (cfg->cacert && !a->cacert)) {
        agent_free(a);
        return -ENOMEM;
    }
    rc = pthread_create(&a->thread, NULL, agent_main, a);
    if (rc != 0) {
        agent_free(a);
        return -rc;
    }
    *out = a;
    return 0;
}

void node_agent_stop(struct node_agent *a) {
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    agent_free(a);
}
