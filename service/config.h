/*
 * config.h: jobd's settings, from flags and the environment.
 *
 * config_parse fills a struct config once in main, before any thread
 * starts; after that the struct is read-only and shared by every module.
 */
#ifndef JOBD_CONFIG_H
#define JOBD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * The user jobs run as (--run-as), resolved once at start from the user
 * database. Process children switch to it before execve (exec_process.c).
 */
struct run_as {
    char *user;    /* the name given, owned */
    uid_t uid;     /* the user's id */
    gid_t gid;     /* its primary group */
    gid_t *groups; /* its supplementary groups (getgrouplist: includes gid), owned */
    int n_groups;  /* entries in groups, >= 1 */
    char *home;    /* cwd (and HOME) of jobs without a cwd: the user's home directory
                    * when it exists, else "/"; owned */
};

struct config {
    char listen_host[256]; /* numeric address: 127.0.0.1, ::1, 0.0.0.0 */
    int listen_port;       /* 0: an ephemeral port */
    char *data_dir;        /* absolute path, owned */
    char *token;           /* users' bearer token, owned; NULL when none */
    bool insecure;         /* allow a non-loopback address without a token */
    int max_procs;
    int max_queued;
    int64_t max_body;
    int64_t max_output;
    double retention;      /* seconds */
    double shutdown_grace; /* seconds */
    int http_threads;
    int threads;          /* task worker threads */
    const char **plugins; /* --plugin paths (borrowed from argv), n_plugins of them */
    int n_plugins;
    int64_t max_batch_body; /* body cap of POST /v1/batches */
    int max_connections;
    int connection_timeout; /* seconds */
    bool log_json;
    bool access_log;       /* one log line per request */
    struct run_as *run_as; /* owned; NULL: jobs run as jobd's own user */
    char *tls_cert;        /* PEM text of --tls-cert, owned; NULL: plain HTTP */
    char *tls_key;         /* PEM text of --tls-key, owned; set exactly when tls_cert is */

    /* Worker nodes (see DESIGN.md "Worker nodes"). */
    char *cluster_token; /* --cluster-token-file / JOBD_CLUSTER_TOKEN, owned; NULL: none */
    const char *join;    /* --join URL of the coordinator (borrowed from argv); NULL: not a node */
    const char *advertise; /* --advertise URL (borrowed); NULL: made at start (main.c) */
    const char **labels;   /* --label K=V (borrowed from argv), n_labels of them */
    int n_labels;
    int capacity;        /* --capacity: remote jobs this node takes at once */
    double node_timeout; /* seconds without a word before a node is down */
    const char *cacert;  /* --cacert FILE for jobd's own HTTPS requests (borrowed); NULL: system */
};

/*
 * Parse argv and the environment (JOBD_TOKEN, which is then removed from the
 * environment so nothing jobd runs in-process can read it). Read the token
 * and TLS files, resolve --run-as (only root may use it). Return 0 to run, 1
 * when --help or --version was handled (exit 0), or -1 after printing a
 * message to `err` (exit 2). On 0 the caller frees with config_free.
 */
int config_parse(struct config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* True when listen_host is a loopback address. */
bool config_is_loopback(const struct config *cfg);

void config_free(struct config *cfg);

/*
 * Whether u (len bytes) is a worker node's URL: http:// or https:// with a
 * host, at most 1024 bytes, no spaces or control characters, no query,
 * fragment or trailing slash. For --advertise and POST /v1/nodes alike.
 */
bool config_node_url_ok(const char *u, size_t len);

#endif
