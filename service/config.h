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
};

/*
 * Parse argv and the environment (JOBD_TOKEN). Return 0 to run, 1 when
 * --help or --version was handled (exit 0), or -1 after printing a message
 * to `err` (exit 2). On 0 the caller frees with config_free.
 */
int config_parse(struct config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* True when listen_host is a loopback address. */
bool config_is_loopback(const struct config *cfg);

void config_free(struct config *cfg);

#endif
