/*
 * main.c: jobd's entry point: flags, wiring, signals and shutdown.
 *
 * Start: parse flags, block the signals we handle (every thread inherits the
 * mask), open the store, create the scheduler (and its executor), recover,
 * start HTTP, print where we listen. Then wait for SIGTERM/SIGINT with
 * sigwait. Stop: HTTP answers 503 and wakes every waiting request, the
 * scheduler lets running jobs finish for --shutdown-grace then stops them,
 * the store commits what is left, exit 0.
 */
#include <errno.h>
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include "app.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "node_agent.h"
#include "plugin.h"
#include "tasks_builtin.h"
#include "scheduler.h"
#include "store.h"
#include "jobd/task.h"
#include "timers.h"

/*
 * Each waiting client holds a socket: raise the soft descriptor limit to the
 * hard one so that --max-connections is reachable.
 */
static void raise_fd_limit(void) {
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("jobd: cannot raise the descriptor limit: %s", strerror(errno));
    }
}

/*
 * Take <data>/jobd.lock for the life of the process, so two jobds never share
 * a data directory (they would run each other's jobs). The descriptor is
 * close-on-exec, so jobs never hold the lock. Return the fd or -1.
 */
static int lock_data_dir(const char *dir) {
    char path[4200];
    int fd;

    snprintf(path, sizeof path, "%s/jobd.lock", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("jobd: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            log_error("jobd: another jobd is using the data directory %s", dir);
        else
            log_error("jobd: cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * This jobd's persistent id, "n" + 16 hex digits, kept in <data>/instance-id
 * (made on the first start from /dev/urandom). A node joins under it; a
 * coordinator labels its remote jobs with it. Return 0 or -1 after logging.
 */
static int instance_id(const char *dir, char *id, size_t len) {
    char path[4200], buf[64];
    unsigned char rnd[8];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/instance-id", dir);
    f = fopen(path, "re");
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        if (strlen(buf) == 17 && buf[0] == 'n' && strspn(buf + 1, "0123456789abcdef") == 16) {
            snprintf(id, len, "%s", buf);
            return 0;
        }
        log_warn("jobd: %s is malformed; making a new id", path);
    }
    f = fopen("/dev/urandom", "re");
    if (!f || fread(rnd, 1, sizeof rnd, f) != sizeof rnd) {
        log_error("jobd: cannot read /dev/urandom: %s", strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(buf, sizeof buf, "n");
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(buf + 1 + 2 * i, sizeof buf - 1 - 2 * i, "%02x", rnd[i]);
    f = fopen(path, "wxe");
    if (!f || fprintf(f, "%s\n", buf) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        log_error("jobd: cannot write %s: %s", path, strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(id, len, "%s", buf);
    return 0;
}

/* The URL the coordinator reaches this node at, when --advertise is not given. */
static void default_advertise(const struct config *cfg, int port, char *buf, size_t len) {
    const char *scheme = cfg->tls_cert ? "https" : "http";
    char host[256];

    if (config_is_loopback(cfg)) {
        snprintf(buf, len, "%s://%s:%d", scheme,
                 strchr(cfg->listen_host, ':') ? "[::1]" : "127.0.0.1", port);
    } else if (strcmp(cfg->listen_host, "0.0.0.0") == 0 || strcmp(cfg->listen_host, "::") == 0) {
        /*
         * The address the hostname resolves to, when it is not a loopback
         * one: in a container that is its address on its network (from the
         * /etc/hosts the engine writes), reachable without any DNS alias.
         * Else the hostname itself.
         */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
        char addr[INET6_ADDRSTRLEN + 2] = "";
        if (gethostname(host, sizeof host) < 0 || !host[0])
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        if (getaddrinfo(host, NULL, &hints, &ai) == 0) {
            for (struct addrinfo *a = ai; a && !addr[0]; a = a->ai_next) {
                if (a->ai_family == AF_INET) {
                    const struct in_addr *in = &((struct sockaddr_in *)a->ai_addr)->sin_addr;
                    if ((ntohl(in->s_addr) >> 24) != 127 && strcmp(cfg->listen_host, "::") != 0)
                        inet_ntop(AF_INET, in, addr, sizeof addr);
                } else if (a->ai_family == AF_INET6 && strcmp(cfg->listen_host, "::") == 0) {
                    const struct in6_addr *in6 = &((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
                    char a6[INET6_ADDRSTRLEN];
                    if (!IN6_IS_ADDR_LOOPBACK(in6) && !IN6_IS_ADDR_LINKLOCAL(in6) &&
                        inet_ntop(AF_INET6, in6, a6, sizeof a6))
                        snprintf(addr, sizeof addr, "[%s]", a6);
                }
            }
            freeaddrinfo(ai);
        }
        snprintf(buf, len, "%s://%s:%d", scheme, addr[0] ? addr : host, port);
    } else if (strchr(cfg->listen_host, ':')) {
        snprintf(buf, len, "%s://[%s]:%d", scheme, cfg->listen_host, port);
    } else {
        snprintf(buf, len, "%s://%s:%d", scheme, cfg->listen_host, port);
    }
}

int main(int argc, char **argv) {
    struct config cfg;
    struct app app;
    struct store *store = NULL;
    struct store_info info;
    struct sched *sched = NULL;
    struct timers *timers = NULL;
    struct http_server *http = NULL;
    struct http_config hc;
    struct sched_config sc;
    struct node_agent *agent = NULL;
    sigset_t set;
    char err[512], iid[64], advertise[1100];
    int rc, sig = 0, status = 1, lock_fd = -1;
    bool curl_ready = false;

    rc = config_parse(&cfg, argc, argv, stdout, stderr);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_set_json(cfg.log_json);
    json_object_seed(0);
    store_commit_hook = metrics_store_commit; /* before the store's writer starts */
    raise_fd_limit();

    /* Signals: handled by sigwait in this thread only; children get a clean mask. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&app, 0, sizeof app);
    app.cfg = &cfg;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("jobd: cannot initialise libcurl");
        goto out;
    }
    curl_ready = true;
    rc = tasks_builtin_register();
    if (rc < 0) {
        log_error("jobd: cannot register the builtin tasks: %s", strerror(-rc));
        goto out;
    }
    for (int i = 0; i < cfg.n_plugins; i++) {
        char perr[512];
        rc = plugin_load(cfg.plugins[i], perr, sizeof perr);
        if (rc < 0) {
            log_error("jobd: %s", perr);
            fprintf(stderr, "jobd: %s\n", perr);
            goto out;
        }
        log_info("jobd: loaded plugin %s", cfg.plugins[i]);
    }
    lock_fd = lock_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        goto out;
    snprintf(app.out_dir, sizeof app.out_dir, "%s/out", cfg.data_dir);
    if (mkdir(app.out_dir, 0700) < 0 && errno != EEXIST) {
        log_error("jobd: cannot create %s: %s", app.out_dir, strerror(errno));
        goto out;
    }
    rc = store_open(cfg.data_dir, &store, &info, err, sizeof err);
    if (rc < 0) {
        log_error("jobd: cannot open the store in %s: %s", cfg.data_dir, err);
        goto out;
    }
    app.store = store;
    if (instance_id(cfg.data_dir, iid, sizeof iid) < 0)
        goto out;
    memset(&sc, 0, sizeof sc);
    sc.instance_id = iid;
    sc.cfg = &cfg;
    sc.store = store;
    sc.out_dir = app.out_dir;
    sc.last_num = info.last_num;
    sc.last_seq = info.last_seq;
    rc = sched_create(&sc, &sched);
    if (rc < 0) {
        log_error("jobd: cannot start the scheduler: %s", strerror(-rc));
        goto out;
    }
    app.sched = sched;
    rc = sched_start(sched);
    if (rc < 0)
        goto out;
    rc = timers_create(&timers);
    if (rc < 0) {
        log_error("jobd: cannot start the timer thread: %s", strerror(-rc));
        goto out;
    }

    memset(&hc, 0, sizeof hc);
    hc.host = cfg.listen_host;
    hc.port = cfg.listen_port;
    hc.token = cfg.token;
    hc.max_body = cfg.max_body;
    hc.max_big_body = cfg.max_batch_body;
    hc.access_log = cfg.access_log;
    hc.threads = cfg.http_threads;
    hc.max_connections = cfg.max_connections;
    hc.connection_timeout = cfg.connection_timeout;
    hc.routes = api_routes;
    metrics_set_routes(api_routes, api_n_routes);
    hc.n_routes = api_n_routes;
    hc.app = &app;
    hc.timers = timers;
    hc.tls_cert = cfg.tls_cert;
    hc.tls_key = cfg.tls_key;
    hc.cluster_token = cfg.cluster_token;
    /*
     * A node takes the cluster token from its coordinator, and requires a
     * token off loopback even without a users' token. On loopback without a
     * users' token it is as open as any jobd there.
     */
    hc.peer = cfg.join != NULL && (cfg.token || !config_is_loopback(&cfg));
    rc = http_start(&hc, &http);
    if (rc < 0)
        goto out;

    if (strchr(cfg.listen_host, ':'))
        printf("jobd: listening on %s://[%s]:%d\n", cfg.tls_cert ? "https" : "http",
               cfg.listen_host, http_port(http));
    else
        printf("jobd: listening on %s://%s:%d\n", cfg.tls_cert ? "https" : "http", cfg.listen_host,
               http_port(http));
    printf("jobd: data in %s\n", cfg.data_dir);
    fflush(stdout);
    if (cfg.join) {
        struct node_agent_config ac = {
            .join = cfg.join,
            .id = iid,
            .url = cfg.advertise,
            .labels = cfg.labels,
            .n_labels = cfg.n_labels,
            .capacity = cfg.capacity,
            .cluster_token = cfg.cluster_token,
            .cacert = cfg.cacert,
        };
        if (!ac.url) {
            default_advertise(&cfg, http_port(http), advertise, sizeof advertise);
            ac.url = advertise;
        }
        rc = node_agent_start(&ac, &agent);
        if (rc < 0) {
            log_error("jobd: cannot start joining %s: %s", cfg.join, strerror(-rc));
            goto out;
        }
        log_info("jobd: node %s joins %s, reachable at %s", iid, cfg.join, ac.url);
    }
    log_info("jobd %s started (max-procs %d, threads %d, auth %s, tls %s, jobs run as %s)",
             JOBD_VERSION, cfg.max_procs, cfg.threads, cfg.token ? "on" : "off",
             cfg.tls_cert ? "on" : "off", cfg.run_as ? cfg.run_as->user : "jobd's user");

    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        log_info("jobd: SIGHUP ignored");
    log_info("jobd: %s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = 0;

out:
    node_agent_stop(agent);
    if (http)
        http_begin_shutdown(http);
    if (sched)
        sched_shutdown(sched, status == 0 ? cfg.shutdown_grace : 0);
    http_stop(http);
    timers_destroy(timers);
    sched_destroy(sched);
    if (store)
        store_close(store);
    if (status == 0)
        log_info("jobd: stopped");
    if (lock_fd >= 0)
        close(lock_fd);
    jobd_task_registry_clear();
    if (curl_ready)
        curl_global_cleanup();
    config_free(&cfg);
    return status;
}
