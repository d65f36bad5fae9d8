/*
 * config.c: command-line flags and environment of jobd (see config.h).
 */
#include "config.h"

#include "jobd/spec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEM_MAX (1 << 20) /* bytes of a --tls-cert or --tls-key file */

static const char usage_text[] =
    "usage: jobd [options]\n"
    "\n"
    "Runs jobs submitted over a REST API (see README.md).\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT         address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
    "  --data-dir DIR             store and job output (default ./jobd-data)\n"
    "  --token-file FILE          bearer token users must send (or env JOBD_TOKEN)\n"
    "  --insecure                 allow a non-loopback address without a token\n"
    "  --tls-cert FILE            serve HTTPS with this PEM certificate (chain); needs --tls-key\n"
    "  --tls-key FILE             the PEM private key of --tls-cert (keep it mode 0600)\n"
    "  --run-as USER              run jobs as USER, its group and its supplementary groups\n"
    "                             (jobd must run as root; the data directory must be 0700)\n"
    "  --max-procs N              child processes running at once (default 4 x cores)\n"
    "  --max-queued N             queued jobs before submissions get 429 (default 100000)\n"
    "  --max-body BYTES           largest request body (default 1048576)\n"
    "  --max-output BYTES         default cap of each output stream (default 67108864)\n"
    "  --retention SECONDS        keep ended jobs this long (default 604800)\n"
    "  --shutdown-grace SECONDS   time running jobs get on SIGTERM (default 10)\n"
    "  --http-threads N           HTTP worker threads (default 2)\n"
    "  --threads N                task worker threads (default: the number of cores)\n"
    "  --plugin PATH.so           load tasks from a shared library (repeatable)\n"
    "  --max-batch-body BYTES     largest POST /v1/batches body (default 67108864)\n"
    "  --max-connections N        open connections at most (default 4096)\n"
    "  --connection-timeout SECS  idle connection timeout (default 60)\n"
    "  --log-format plain|json    log line format on stderr (default plain)\n"
    "  --access-log               log every request (id, method, path, status, time)\n"
    "\n"
    "worker nodes:\n"
    "  --cluster-token-file FILE  token shared by a coordinator and its nodes (or env\n"
    "                             JOBD_CLUSTER_TOKEN); a jobd with one accepts nodes\n"
    "  --node-timeout SECONDS     a node not heard from this long is down (default 15)\n"
    "  --join URL                 run as a worker node of the coordinator at URL\n"
    "  --advertise URL            where the coordinator reaches this node (default:\n"
    "                             http://ADDRESS:PORT of the hostname on 0.0.0.0 or ::,\n"
    "                             http://127.0.0.1:PORT on loopback)\n"
    "  --label KEY=VALUE          a label of this node, for node_selector (repeatable)\n"
    "  --capacity N               remote jobs this node runs at once (default --max-procs)\n"
    "  --cacert FILE              CA certificates for jobd's own HTTPS requests\n"
    "\n"
    "  --version                  print the version and exit\n"
    "  --help                     print this help and exit\n";

enum {
    OPT_LISTEN = 256,
    OPT_DATA_DIR,
    OPT_TOKEN_FILE,
    OPT_INSECURE,
    OPT_MAX_PROCS,
    OPT_MAX_QUEUED,
    OPT_MAX_BODY,
    OPT_MAX_OUTPUT,
    OPT_RETENTION,
    OPT_SHUTDOWN_GRACE,
    OPT_HTTP_THREADS,
    OPT_MAX_CONNS,
    OPT_CONN_TIMEOUT,
    OPT_LOG_FORMAT,
    OPT_ACCESS_LOG,
    OPT_THREADS,
    OPT_PLUGIN,
    OPT_MAX_BATCH_BODY,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_RUN_AS,
    OPT_CLUSTER_TOKEN_FILE,
    OPT_NODE_TIMEOUT,
    OPT_JOIN,
    OPT_ADVERTISE,
    OPT_LABEL,
    OPT_CAPACITY,
    OPT_CACERT,
    OPT_VERSION,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"max-procs", required_argument, NULL, OPT_MAX_PROCS},
    {"max-queued", required_argument, NULL, OPT_MAX_QUEUED},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
    {"retention", required_argument, NULL, OPT_RETENTION},
    {"shutdown-grace", required_argument, NULL, OPT_SHUTDOWN_GRACE},
    {"http-threads", required_argument, NULL, OPT_HTTP_THREADS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNS},
    {"connection-timeout", required_argument, NULL, OPT_CONN_TIMEOUT},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"access-log", no_argument, NULL, OPT_ACCESS_LOG},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {"max-batch-body", required_argument, NULL, OPT_MAX_BATCH_BODY},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"run-as", required_argument, NULL, OPT_RUN_AS},
    {"cluster-token-file", required_argument, NULL, OPT_CLUSTER_TOKEN_FILE},
    {"node-timeout", required_argument, NULL, OPT_NODE_TIMEOUT},
    {"join", required_argument, NULL, OPT_JOIN},
    {"advertise", required_argument, NULL, OPT_ADVERTISE},
    {"label", required_argument, NULL, OPT_LABEL},
    {"capacity", required_argument, NULL, OPT_CAPACITY},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Parse an integer in [lo, hi]. Return 0 or -1 after a message naming the flag. */
static int parse_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out,
                     FILE *err) {
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(err, "jobd: --%s: must be an integer from %lld to %lld, not '%s'\n", flag,
                (long long)lo, (long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *flag, const char *s, double lo, double hi, double *out,
                         FILE *err) {
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(err, "jobd: --%s: must be a number of seconds from %g to %g, not '%s'\n", flag, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Split "HOST:PORT", "[v6]:PORT" or a bare "HOST" into the config. */
static int parse_listen(struct config *cfg, const char *s, FILE *err) {
    const char *host = s;
    size_t hlen;
    const char *port = NULL;
    int64_t p;
    unsigned char addr[sizeof(struct in6_addr)];
    char hostbuf[256];

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            goto bad;
        host = s + 1;
        hlen = (size_t)(close - host);
        if (close[1] == ':')
            port = close + 2;
        else if (close[1])
            goto bad;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon && strchr(s, ':') == colon) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
        } else {
            hlen = strlen(s);
        }
    }
    if (hlen == 0 || hlen >= sizeof hostbuf)
        goto bad;
    memcpy(hostbuf, host, hlen);
    hostbuf[hlen] = '\0';
    if (strcmp(hostbuf, "localhost") == 0)
        strcpy(hostbuf, "127.0.0.1");
    if (inet_pton(AF_INET, hostbuf, addr) != 1 && inet_pton(AF_INET6, hostbuf, addr) != 1) {
        fprintf(err, "jobd: --listen: '%s' is not a numeric IPv4 or IPv6 address\n", hostbuf);
        return -1;
    }
    strcpy(cfg->listen_host, hostbuf);
    if (port) {
        if (parse_int("listen", port, 0, 65535, &p, err) < 0)
            return -1;
        cfg->listen_port = (int)p;
    }
    return 0;
bad:
    fprintf(err, "jobd: --listen: expected HOST:PORT, not '%s'\n", s);
    return -1;
}

/* Warn when a file holding a secret can be read by other users than its owner. */
static void warn_if_shared(int fd, const char *flag, const char *path, FILE *err) {
    struct stat st;

    if (fstat(fd, &st) == 0 && (st.st_mode & 077))
        fprintf(err,
                "jobd: warning: --%s: %s can be read by other users (mode %04o); chmod 600 it\n",
                flag, path, (unsigned)(st.st_mode & 07777));
}

/* Read a token file: its first line, without trailing whitespace. */
static char *read_token_file(const char *flag, const char *path, FILE *err) {
    FILE *f = fopen(path, "re");
    char buf[4096], *tok;
    size_t n;

    if (!f) {
        fprintf(err, "jobd: --%s: cannot open %s: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    warn_if_shared(fileno(f), flag, path, err);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (n == 0) {
        fprintf(err, "jobd: --%s: %s is empty\n", flag, path);
        return NULL;
    }
    tok = strdup(buf);
    explicit_bzero(buf, sizeof buf);
    return tok;
}

/*
 * Read a whole PEM file for --tls-cert or --tls-key. Return a new
 * NUL-terminated string (free it with free), or NULL after a message naming
 * the flag: the file cannot be read, is over PEM_MAX bytes, or does not hold
 * `marker` (the PEM header expected in it).
 */
static char *read_pem_file(const char *flag, const char *path, const char *marker, FILE *err) {
    FILE *f = fopen(path, "re");
    struct stat st;
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (!f) {
        fprintf(err, "jobd: --%s: cannot open %s: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    if (strcmp(flag, "tls-key") == 0)
        warn_if_shared(fileno(f), flag, path, err);
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_MAX) {
        fprintf(err, "jobd: --%s: %s is not a regular file of at most %d bytes\n", flag, path,
                PEM_MAX);
        goto fail;
    }
    cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        fprintf(err, "jobd: --%s: out of memory\n", flag);
        goto fail;
    }
    n = fread(buf, 1, cap - 1, f);
    if (ferror(f)) {
        fprintf(err, "jobd: --%s: cannot read %s: %s\n", flag, path, strerror(errno));
        goto fail;
    }
    buf[n] = '\0';
    if (strlen(buf) != n || !strstr(buf, marker)) {
        fprintf(err, "jobd: --%s: %s is not a PEM file with a %s block\n", flag, path, marker);
        goto fail;
    }
    fclose(f);
    return buf;
fail:
    if (buf) {
        explicit_bzero(buf, cap);
        free(buf);
    }
    fclose(f);
    return NULL;
}

static void free_secret(char **s) {
    if (*s) {
        explicit_bzero(*s, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

static void run_as_free(struct run_as *ra) {
    if (!ra)
        return;
    free(ra->user);
    free(ra->groups);
    free(ra->home);
    free(ra);
}

/*
 * Resolve --run-as USER: its uid, primary gid, supplementary groups and home
 * directory. Only root can switch users, so refuse when jobd is not root.
 * Return a new struct run_as, or NULL after a message.
 */
static struct run_as *resolve_run_as(const char *user, FILE *err) {
    struct run_as *ra = NULL;
    struct passwd pw, *found = NULL;
    char *buf = NULL;
    long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    size_t bufsz = sz > 0 ? (size_t)sz : 16384;
    struct stat st;
    int rc, n = 16;

    if (geteuid() != 0) {
        fprintf(err,
                "jobd: --run-as %s: jobd must run as root to switch jobs to another user, "
                "but it runs as uid %u\n",
                user, (unsigned)geteuid());
        return NULL;
    }
    for (;;) {
        char *nb = realloc(buf, bufsz);
        if (!nb)
            goto nomem;
        buf = nb;
        rc = getpwnam_r(user, &pw, buf, bufsz, &found);
        if (rc != ERANGE || bufsz >= (1u << 24))
            break;
        bufsz *= 2;
    }
    if (rc != 0 || !found) {
        if (rc != 0)
            fprintf(err, "jobd: --run-as %s: cannot look the user up: %s\n", user, strerror(rc));
        else
            fprintf(err, "jobd: --run-as %s: no such user\n", user);
        goto fail;
    }
    ra = calloc(1, sizeof *ra);
    if (!ra)
        goto nomem;
    ra->uid = pw.pw_uid;
    ra->gid = pw.pw_gid;
    ra->user = strdup(user);
    ra->home =
        strdup(pw.pw_dir && stat(pw.pw_dir, &st) == 0 && S_ISDIR(st.st_mode) ? pw.pw_dir : "/");
    if (!ra->user || !ra->home)
        goto nomem;
    for (;;) {
        int got = n;
        gid_t *ng = realloc(ra->groups, (size_t)n * sizeof *ng);
        if (!ng)
            goto nomem;
        ra->groups = ng;
        if (getgrouplist(user, pw.pw_gid, ra->groups, &got) >= 0) {
            ra->n_groups = got;
            break;
        }
        if (got <= n) { /* no bigger count to try: give up rather than loop */
            fprintf(err, "jobd: --run-as %s: cannot list the user's groups\n", user);
            goto fail;
        }
        n = got;
    }
    free(buf);
    return ra;
nomem:
    fprintf(err, "jobd: --run-as %s: out of memory\n", user);
fail:
    free(buf);
    run_as_free(ra);
    return NULL;
}

/* True when `ra` may create, remove or rename entries of the directory `st`. */
static bool run_as_can_write(const struct stat *st, const struct run_as *ra) {
    if (st->st_uid == ra->uid)
        return true; /* the owner can always chmod its way in */
    for (int i = 0; i < ra->n_groups; i++) {
        if (st->st_gid == ra->groups[i])
            return (st->st_mode & S_IWGRP) != 0;
    }
    return (st->st_mode & S_IWOTH) != 0;
}

/*
 * With --run-as, jobs must not reach jobd's data: the data directory must be
 * owned by jobd's user with no access for group or others (0700), and no
 * directory above it may be writable by the run-as user (else it could move
 * the data directory away and put its own in its place), unless that
 * directory is sticky (/tmp). Return 0, or -1 after a message.
 */
static int check_data_dir_private(const char *dir, const struct run_as *ra, FILE *err) {
    struct stat st;
    char *path = strdup(dir);
    int rc = -1;

    if (!path) {
        fprintf(err, "jobd: out of memory\n");
        return -1;
    }
    if (stat(dir, &st) < 0) {
        fprintf(err, "jobd: data directory %s: %s\n", dir, strerror(errno));
        goto out;
    }
    if (st.st_uid != geteuid()) {
        fprintf(err,
                "jobd: --run-as %s: the data directory %s belongs to uid %u, not to jobd's "
                "user (uid %u): jobs could change it\n",
                ra->user, dir, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if (st.st_mode & 077) {
        fprintf(err,
                "jobd: --run-as %s: the data directory %s is open to other users (mode %04o), "
                "so jobs could read or change it: chmod 700 %s\n",
                ra->user, dir, (unsigned)(st.st_mode & 07777), dir);
        goto out;
    }
    for (char *slash = strrchr(path, '/'); slash; slash = strrchr(path, '/')) {
        if (slash == path)
            slash[1] = '\0'; /* the root directory itself */
        else
            *slash = '\0';
        if (stat(path, &st) < 0) {
            fprintf(err, "jobd: %s: %s\n", path, strerror(errno));
            goto out;
        }
        if (run_as_can_write(&st, ra) && !(st.st_mode & S_ISVTX)) {
            fprintf(err,
                    "jobd: --run-as %s: %s, above the data directory, is writable by that "
                    "user, so its jobs could replace the data directory: use a data "
                    "directory whose parents only root can change\n",
                    ra->user, path);
            goto out;
        }
        if (slash == path)
            break;
    }
    rc = 0;
out:
    free(path);
    return rc;
}

/*
 * Remove JOBD_TOKEN from the environment, so in-process tasks and plugins
 * cannot read it with getenv. Overwrite its value first: unsetenv only
 * drops the pointer, and the text would stay in memory (and in
 * /proc/PID/environ, readable by processes of jobd's user). No thread
 * exists yet, so changing the environment is safe.
 */
static void scrub_env_token(const char *name) {
    char *v = getenv(name);

    if (v)
        explicit_bzero(v, strlen(v));
    unsetenv(name);
}

/* A token from its file, else from the environment variable `env`. Return 0 or -1. */
static int load_token(const char *flag, const char *file, const char *env, char **out, FILE *err) {
    if (file) {
        *out = read_token_file(flag, file, err);
        if (!*out)
            return -1;
    } else if (getenv(env) && *getenv(env)) {
        *out = strdup(getenv(env));
        if (!*out)
            return -1;
    }
    scrub_env_token(env);
    return 0;
}

/* True for an http:// or https:// URL with a host. */
static bool is_http_url(const char *u) {
    const char *rest = strncmp(u, "http://", 7) == 0    ? u + 7
                       : strncmp(u, "https://", 8) == 0 ? u + 8
                                                        : NULL;
    return rest && *rest && *rest != '/' && strlen(u) <= 1024 && !strpbrk(u, " \t\r\n");
}

/* Check --label KEY=VALUE by the rules of job labels. Return 0, or -1 after a message. */
static int check_label_flag(const char *kv, FILE *err) {
    const char *eq = strchr(kv, '=');
    struct jobd_error e;
    json_t *o = json_object();
    int rc = -1;

    if (!eq) {
        fprintf(err, "jobd: --label %s: must be KEY=VALUE\n", kv);
    } else if (!o ||
               json_object_setn_new_nocheck(o, kv, (size_t)(eq - kv), json_string(eq + 1)) < 0) {
        fprintf(err, "jobd: --label %s: not valid UTF-8, or out of memory\n", kv);
    } else if (jobd_labels_check(o, "--label", &e) < 0) {
        fprintf(err, "jobd: --label %s: %s\n", kv, e.message);
    } else {
        rc = 0;
    }
    json_decref(o);
    return rc;
}

bool config_node_url_ok(const char *u, size_t len) {
    if (strlen(u) != len || len == 0 || !is_http_url(u) || u[len - 1] == '/')
        return false;
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#')
            return false;
    return true;
}
int config_parse(struct config *cfg, int argc, char **argv, FILE *out, FILE *err) {
    const char *data_dir = "./jobd-data";
    const char *token_file = NULL;
    const char *tls_cert = NULL, *tls_key = NULL, *run_as = NULL, *cluster_token_file = NULL;
    bool capacity_set = false;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t v;
    int c;

    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    cfg->max_procs = (int)(ncpu > 0 ? 4 * ncpu : 4);
    cfg->max_queued = 100000;
    cfg->max_body = 1 << 20;
    cfg->max_output = 64 << 20;
    cfg->retention = 7 * 86400;
    cfg->shutdown_grace = 10;
    cfg->http_threads = 2;
    cfg->threads = (int)(ncpu > 0 ? ncpu : 2);
    cfg->max_batch_body = (int64_t)64 << 20;
    cfg->max_connections = 4096;
    cfg->connection_timeout = 60;
    cfg->node_timeout = 15;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            if (parse_listen(cfg, optarg, err) < 0)
                goto fail;
            break;
        case OPT_DATA_DIR:
            data_dir = optarg;
            break;
        case OPT_TOKEN_FILE:
            token_file = optarg;
            break;
        case OPT_INSECURE:
            cfg->insecure = true;
            break;
        case OPT_MAX_PROCS:
            if (parse_int("max-procs", optarg, 1, 65536, &v, err) < 0)
                goto fail;
            cfg->max_procs = (int)v;
            break;
        case OPT_MAX_QUEUED:
            if (parse_int("max-queued", optarg, 1, 100000000, &v, err) < 0)
                goto fail;
            cfg->max_queued = (int)v;
            break;
        case OPT_MAX_BODY:
            if (parse_int("max-body", optarg, 1024, (int64_t)1 << 30, &v, err) < 0)
                goto fail;
            cfg->max_body = v;
            break;
        case OPT_MAX_OUTPUT:
            if (parse_int("max-output", optarg, 1024, (int64_t)1 << 40, &v, err) < 0)
                goto fail;
            cfg->max_output = v;
            break;
        case OPT_RETENTION:
            if (parse_seconds("retention", optarg, 1, 1e10, &cfg->retention, err) < 0)
                goto fail;
            break;
        case OPT_SHUTDOWN_GRACE:
            if (parse_seconds("shutdown-grace", optarg, 0, 86400, &cfg->shutdown_grace, err) < 0)
                goto fail;
            break;
        case OPT_HTTP_THREADS:
            if (parse_int("http-threads", optarg, 1, 256, &v, err) < 0)
                goto fail;
            cfg->http_threads = (int)v;
            break;
        case OPT_MAX_CONNS:
            if (parse_int("max-connections", optarg, 16, 1000000, &v, err) < 0)
                goto fail;
            cfg->max_connections = (int)v;
            break;
        case OPT_CONN_TIMEOUT:
            if (parse_int("connection-timeout", optarg, 1, 86400, &v, err) < 0)
                goto fail;
            cfg->connection_timeout = (int)v;
            break;
        case OPT_THREADS:
            if (parse_int("threads", optarg, 1, 1024, &v, err) < 0)
                goto fail;
            cfg->threads = (int)v;
            break;
        case OPT_PLUGIN: {
            const char **np = realloc(cfg->plugins, (size_t)(cfg->n_plugins + 1) * sizeof *np);
            if (!np)
                goto fail;
            cfg->plugins = np;
            cfg->plugins[cfg->n_plugins++] = optarg;
            break;
        }
        case OPT_MAX_BATCH_BODY:
            if (parse_int("max-batch-body", optarg, 1024, (int64_t)1 << 32, &v, err) < 0)
                goto fail;
            cfg->max_batch_body = v;
            break;
        case OPT_TLS_CERT:
            tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            tls_key = optarg;
            break;
        case OPT_RUN_AS:
            if (!*optarg) {
                fprintf(err, "jobd: --run-as: needs a user name\n");
                goto fail;
            }
            run_as = optarg;
            break;
        case OPT_CLUSTER_TOKEN_FILE:
            cluster_token_file = optarg;
            break;
        case OPT_NODE_TIMEOUT:
            if (parse_seconds("node-timeout", optarg, 0.5, 86400, &cfg->node_timeout, err) < 0)
                goto fail;
            break;
        case OPT_JOIN:
            if (!is_http_url(optarg)) {
                fprintf(err, "jobd: --join: must be an http:// or https:// URL, not '%s'\n",
                        optarg);
                goto fail;
            }
            cfg->join = optarg;
            break;
        case OPT_ADVERTISE:
            /* The coordinator's rule for a node's URL (POST /v1/nodes), checked here first. */
            if (!config_node_url_ok(optarg, strlen(optarg))) {
                fprintf(err,
                        "jobd: --advertise: must be an http:// or https:// URL of at most 1024 "
                        "bytes, without a query or a trailing slash, not '%s'\n",
                        optarg);
                goto fail;
            }
            cfg->advertise = optarg;
            break;
        case OPT_LABEL: {
            const char **nl;
            if (check_label_flag(optarg, err) < 0)
                goto fail;
            if (cfg->n_labels >= JOBD_MAX_LABELS) {
                fprintf(err, "jobd: --label: at most %d labels\n", JOBD_MAX_LABELS);
                goto fail;
            }
            nl = realloc(cfg->labels, (size_t)(cfg->n_labels + 1) * sizeof *nl);
            if (!nl)
                goto fail;
            cfg->labels = nl;
            cfg->labels[cfg->n_labels++] = optarg;
            break;
        }
        case OPT_CAPACITY:
            if (parse_int("capacity", optarg, 1, 100000, &v, err) < 0)
                goto fail;
            cfg->capacity = (int)v;
            capacity_set = true;
            break;
        case OPT_CACERT:
            if (access(optarg, R_OK) < 0) {
                fprintf(err, "jobd: --cacert: cannot read %s: %s\n", optarg, strerror(errno));
                goto fail;
            }
            cfg->cacert = optarg;
            break;
        case OPT_ACCESS_LOG:
            cfg->access_log = true;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "json") == 0) {
                cfg->log_json = true;
            } else if (strcmp(optarg, "plain") != 0) {
                fprintf(err, "jobd: --log-format: must be plain or json, not '%s'\n", optarg);
                goto fail;
            }
            break;
        case OPT_VERSION:
            fprintf(out, "jobd %s\n", JOBD_VERSION);
            config_free(cfg);
            return 1;
        case OPT_HELP:
            fputs(usage_text, out);
            config_free(cfg);
            return 1;
        default:
            if (optopt)
                fprintf(err, "jobd: option needs a value or is unknown: %s\n", argv[optind - 1]);
            else
                fprintf(err, "jobd: unknown option: %s\n", argv[optind - 1]);
            fputs("Try 'jobd --help'.\n", err);
            goto fail;
        }
    }
    if (optind < argc) {
        fprintf(err, "jobd: unexpected argument: %s\nTry 'jobd --help'.\n", argv[optind]);
        goto fail;
    }

    if (run_as) {
        cfg->run_as = resolve_run_as(run_as, err);
        if (!cfg->run_as)
            goto fail;
    }
    if (load_token("token-file", token_file, "JOBD_TOKEN", &cfg->token, err) < 0 ||
        load_token("cluster-token-file", cluster_token_file, "JOBD_CLUSTER_TOKEN",
                   &cfg->cluster_token, err) < 0)
        goto fail;
    if (cfg->token && cfg->cluster_token && strcmp(cfg->token, cfg->cluster_token) == 0) {
        fprintf(err, "jobd: the cluster token must differ from the users' token: a node "
                     "could otherwise do all a user can\n");
        goto fail;
    }
    if (cfg->join && !cfg->cluster_token) {
        fprintf(err, "jobd: --join needs the cluster token (--cluster-token-file or "
                     "JOBD_CLUSTER_TOKEN)\n");
        goto fail;
    }
    if (!cfg->join && (cfg->advertise || cfg->n_labels || capacity_set)) {
        fprintf(err, "jobd: --advertise, --label and --capacity describe a worker node: they "
                     "need --join\n");
        goto fail;
    }
    if (!capacity_set)
        cfg->capacity = cfg->max_procs;
    if (!tls_cert != !tls_key) {
        fprintf(err, "jobd: --tls-cert and --tls-key go together: give both, or neither\n");
        goto fail;
    }
    if (tls_cert) {
        cfg->tls_cert = read_pem_file("tls-cert", tls_cert, "-----BEGIN CERTIFICATE-----", err);
        if (!cfg->tls_cert)
            goto fail;
        cfg->tls_key = read_pem_file("tls-key", tls_key, "PRIVATE KEY-----", err);
        if (!cfg->tls_key)
            goto fail;
    }
    /* A node's API is guarded by the cluster token (its one client is the coordinator). */
    if (!cfg->token && !cfg->insecure && !config_is_loopback(cfg) && !cfg->join) {
        fprintf(err,
                "jobd: refusing to listen on %s without a token: anyone who can reach it could "
                "run commands. Set --token-file or JOBD_TOKEN, or pass --insecure.\n",
                cfg->listen_host);
        goto fail;
    }

    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
        fprintf(err, "jobd: cannot create data directory %s: %s\n", data_dir, strerror(errno));
        goto fail;
    }
    cfg->data_dir = realpath(data_dir, NULL);
    if (!cfg->data_dir) {
        fprintf(err, "jobd: data directory %s: %s\n", data_dir, strerror(errno));
        goto fail;
    }
    if (cfg->run_as && check_data_dir_private(cfg->data_dir, cfg->run_as, err) < 0)
        goto fail;
    return 0;
fail:
    config_free(cfg);
    return -1;
}

bool config_is_loopback(const struct config *cfg) {
    return strncmp(cfg->listen_host, "127.", 4) == 0 || strcmp(cfg->listen_host, "::1") == 0;
}

void config_free(struct config *cfg) {
    free_secret(&cfg->token);
    free_secret(&cfg->tls_key);
    free_secret(&cfg->cluster_token);
    free(cfg->labels);
    cfg->labels = NULL;
    cfg->n_labels = 0;
    free(cfg->tls_cert);
    run_as_free(cfg->run_as);
    free(cfg->data_dir);
    free(cfg->plugins);
    cfg->tls_cert = NULL;
    cfg->run_as = NULL;
    cfg->data_dir = NULL;
    cfg->plugins = NULL;
    cfg->n_plugins = 0;
}
