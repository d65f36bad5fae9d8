/*
 * bare_mhd.c: the smallest libmicrohttpd server that does what jobd does for
 * GET /v1/jobs/{id}, used as the baseline for jobd's read throughput. It is
 * set up the way jobd's http.c is meant to be (internal polling thread,
 * epoll, a thread pool, a connection limit and timeout) and answers with a
 * job document of about the same size as jobd's, built with json_pack and
 * serialised with json_dumps on every request. There is no routing table,
 * no auth, no scheduler lock and no store: what jobd costs beyond this
 * server is what the ratio measures.
 *
 * It follows the keep-alive rule of STYLE.md: the handler returns MHD_YES on
 * the first call for a request and queues its response on the second, so
 * connections stay open between requests.
 *
 * On start it prints `listening on http://127.0.0.1:PORT` (flushed) and then
 * serves until SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

/* The part of the path before the job id. */
#define JOBS_PREFIX "/v1/jobs/"
/* Ids longer than this are answered 404, as jobd answers malformed ids. */
#define MAX_ID_BYTES 32

struct opts {
    const char *host;
    unsigned port;
    unsigned threads;
    unsigned max_connections;
    unsigned connection_timeout;
    int allow_suspend; /* set MHD_ALLOW_SUSPEND_RESUME, as jobd must for its long polls */
    int static_body;   /* serve one document built at start: the ceiling of MHD alone */
};

/* With --static-body, the document every request gets (for any id); NULL otherwise. */
static char *static_doc;

/* Write the RFC 3339 UTC time `ms` (milliseconds since the epoch) into buf. */
static void format_time(char buf[32], long long ms) {
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

/*
 * Build the job document for `id`, shaped like jobd's (every field present,
 * null where it does not apply). Return a new string the caller frees with
 * free(), or NULL if memory runs out.
 */
static char *job_body(const char *id) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char created[32], started[32], finished[32];
    format_time(created, ms - 7);
    format_time(started, ms - 5);
    format_time(finished, ms - 2);

    json_t *doc = json_pack(
        "{s:s, s:s, s:[s], s:n, s:n, s:n, s:s, s:n, s:n, s:n, s:n, s:s, s:I, s:I, s:I, s:n,"
        " s:I, s:n, s:{}, s:n, s:{s:n, s:n, s:n, s:I}, s:I, s:n, s:n, s:n, s:I, s:n, s:I, s:n,"
        " s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:I}",
        "id", id, "state", "succeeded", "command", "/bin/true", "shell", "task", "args", "executor",
        "process", "stdin", "env", "cwd", "timeout", "kill_signal", "SIGTERM", "kill_grace",
        (json_int_t)5, "retries", (json_int_t)0, "retry_delay", (json_int_t)1, "retry_exit_codes",
        "priority", (json_int_t)0, "name", "labels", "node_selector", "limits", "cpu_seconds",
        "memory_bytes", "open_files", "output_bytes", (json_int_t)67108864, "exit_code",
        (json_int_t)0, "signal", "error", "result", "pid", (json_int_t)123456, "node", "attempts",
        (json_int_t)1, "batch", "created_at", created, "started_at", started, "finished_at",
        finished, "stdout_bytes", (json_int_t)0, "stderr_bytes", (json_int_t)0, "stdout_truncated",
        0, "stderr_truncated", 0, "seq", (json_int_t)40003);
    if (doc == NULL)
        return NULL;
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

/* Queue a response with `body` (a new string, freed by MHD). Return MHD_NO if it fails. */
static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
                              char *body) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (ok == MHD_YES)
        ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result not_found(struct MHD_Connection *c) {
    char *body = strdup("{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
                        "\"detail\":\"no such path or job\"}");
    if (body == NULL)
        return MHD_NO;
    return answer(c, MHD_HTTP_NOT_FOUND, "application/problem+json", body);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    static int seen; /* marks a request whose first call has been made */
    (void)cls;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        /* First call, headers only: answering now would lose keep-alive. */
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        /* A body nobody asked for: take it and drop it. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    size_t plen = strlen(JOBS_PREFIX);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 || strncmp(url, JOBS_PREFIX, plen) != 0)
        return not_found(c);
    const char *id = url + plen;
    size_t idlen = strlen(id);
    if (idlen == 0 || idlen > MAX_ID_BYTES || strchr(id, '/') != NULL)
        return not_found(c);
    if (static_doc != NULL) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(static_doc), static_doc, MHD_RESPMEM_PERSISTENT);
        if (r == NULL)
            return MHD_NO;
        enum MHD_Result ok =
            MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (ok == MHD_YES)
            ok = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ok;
    }
    char *body = job_body(id);
    if (body == NULL)
        return MHD_NO;
    return answer(c, MHD_HTTP_OK, "application/json", body);
}

static void usage(FILE *f) {
    fprintf(f, "usage: bare_mhd [--host ADDR] [--port PORT] [--threads N]\n"
               "                [--max-connections N] [--connection-timeout SECONDS]\n"
               "                [--allow-suspend] [--static-body]\n"
               "  --host ADDR               IPv4 address to listen on (default 127.0.0.1)\n"
               "  --port PORT               0 picks an ephemeral port (default 0)\n"
               "  --threads N               libmicrohttpd thread pool size (default 2)\n"
               "  --max-connections N       connection limit (default 1024)\n"
               "  --connection-timeout S    idle connection timeout (default 60)\n"
               "  --allow-suspend           also set MHD_ALLOW_SUSPEND_RESUME (jobd sets it)\n"
               "  --static-body             build the document once and serve it to every\n"
               "                            request: libmicrohttpd's own ceiling\n");
}

static int parse_uint(const char *s, unsigned max, unsigned *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int main(int argc, char **argv) {
    struct opts o = {.host = "127.0.0.1",
                     .port = 0,
                     .threads = 2,
                     .max_connections = 1024,
                     .connection_timeout = 60};
    static const struct option longopts[] = {{"host", required_argument, NULL, 'H'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"max-connections", required_argument, NULL, 'm'},
                                             {"connection-timeout", required_argument, NULL, 'T'},
                                             {"allow-suspend", no_argument, NULL, 'S'},
                                             {"static-body", no_argument, NULL, 'B'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "H:p:t:m:T:SBh", longopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'H':
            o.host = optarg;
            break;
        case 'p':
            bad = parse_uint(optarg, 65535, &o.port);
            break;
        case 't':
            bad = parse_uint(optarg, 256, &o.threads) || o.threads == 0;
            break;
        case 'm':
            bad = parse_uint(optarg, 1000000, &o.max_connections) || o.max_connections == 0;
            break;
        case 'T':
            bad = parse_uint(optarg, 86400, &o.connection_timeout);
            break;
        case 'S':
            o.allow_suspend = 1;
            break;
        case 'B':
            o.static_body = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            for (const struct option *lo = longopts; lo->name != NULL; lo++) {
                if (lo->val == ch) {
                    fprintf(stderr, "bare_mhd: bad value for --%s: %s\n", lo->name, optarg);
                    break;
                }
            }
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bare_mhd: not an IPv4 address: %s\n", o.host);
        return 2;
    }

    /* Seed jansson's hash before threads exist; block the stop signals so only sigwait sees them.
     */
    json_object_seed(0);
    if (o.static_body && (static_doc = job_body("j1")) == NULL) {
        fprintf(stderr, "bare_mhd: out of memory\n");
        return 1;
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    int e = pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if (e != 0) {
        fprintf(stderr, "bare_mhd: pthread_sigmask: %s\n", strerror(e));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (o.allow_suspend)
        flags |= MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, o.threads, MHD_OPTION_CONNECTION_LIMIT, o.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, o.connection_timeout, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
        MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bare_mhd: cannot listen on %s:%u\n", o.host, o.port);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        fprintf(stderr, "bare_mhd: cannot learn the bound port\n");
        MHD_stop_daemon(d);
        return 1;
    }
    printf("listening on http://%s:%u\n", o.host, (unsigned)info->port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    fprintf(stderr, "bare_mhd: %s, stopping\n", strsignal(sig));
    MHD_stop_daemon(d);
    free(static_doc);
    return 0;
}
