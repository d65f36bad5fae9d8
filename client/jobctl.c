/*
 * jobctl.c: main and the commands of jobctl, the command-line client of
 * jobd, built on the client library (jobd/client.h) only.
 *
 * The command line is parsed by cli.c and human output is shaped by
 * format.c; this file talks to the server, prints, and chooses the exit
 * status (cli.h lists the codes). Errors of jobctl itself are one line on
 * stderr starting with "jobctl: ".
 *
 * `run` is the one with moving parts: it submits, follows stdout and stderr
 * at once (jobd_client_follow: two streams, one thread), and turns SIGINT
 * and SIGTERM into a cancel of the job. The signal handler only counts and
 * writes a byte to a self-pipe that wakes the follow loop; the loop's tick
 * sends the cancel.
 *
 * `batch --wait` on a terminal long-polls the batch in short slices
 * (PROGRESS_POLL_S) to redraw its progress line; elsewhere it makes one
 * jobd_client_batch_wait and prints the summary once.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"
#include "jobd/client.h"
#include "jobd/util.h"

#define PROGRESS_POLL_S 0.5 /* seconds between two redraws of the progress line of batch --wait */

/* ---- errors ---- */

/* The exit status for a failed library call. */
static int exit_for(const struct jobd_client_error *e) {
    switch (e->code) {
    case -ECONNREFUSED:
    case -ETIMEDOUT:
    case -EIO:
        return EXIT_UNAVAILABLE;
    case -ENOMEM:
        return EXIT_OSERR;
    case -EINVAL:
        return EXIT_USAGE;
    case -ECANCELED:
        return 130;
    case -EREMOTEIO:
        switch (e->status) {
        case 400:
        case 413:
        case 415:
        case 422:
            return EXIT_DATAERR;
        case 401:
        case 403:
            return EXIT_NOPERM;
        case 404:
            return EXIT_NOTFOUND;
        case 409:
            return EXIT_REFUSED;
        case 429:
        case 503:
            return EXIT_TEMPFAIL;
        default:
            return EXIT_SOFTWARE;
        }
    default:
        return EXIT_SOFTWARE;
    }
}

/* Print a failed call as "jobctl: ..." and return its exit status. */
static int report(const struct jobd_client_error *e) {
    int code = exit_for(e);

    switch (code) {
    case EXIT_DATAERR:
        if (e->field[0])
            fprintf(stderr, "jobctl: %s: %s (field: %s)\n", e->title, e->detail, e->field);
        else
            fprintf(stderr, "jobctl: %s: %s\n", e->title, e->detail);
        break;
    case EXIT_NOPERM:
        fprintf(stderr, "jobctl: unauthorized: %s (check --token or JOBD_TOKEN)\n",
                e->detail[0] ? e->detail : e->message);
        break;
    case EXIT_NOTFOUND:
        fprintf(stderr, "jobctl: not found: %s\n", e->detail[0] ? e->detail : e->message);
        break;
    case EXIT_UNAVAILABLE:
        if (e->kind == JOBD_CLIENT_ERR_TLS)
            fprintf(stderr,
                    "jobctl: %s (check that jobd serves https there, and give the CA of its "
                    "certificate with --cacert FILE or JOBD_CACERT)\n",
                    e->message);
        else
            fprintf(stderr, "jobctl: %s (is jobd running there? see --server or JOBD_URL)\n",
                    e->message);
        break;
    case EXIT_TEMPFAIL:
        if (e->retry_after > 0)
            fprintf(stderr, "jobctl: %s; retry in %g s\n", e->message, e->retry_after);
        else
            fprintf(stderr, "jobctl: %s\n", e->message);
        break;
    default:
        fprintf(stderr, "jobctl: %s\n", e->message);
    }
    return code;
}

static int local_spec_error(const struct jobd_error *e) {
    if (e->field[0])
        fprintf(stderr, "jobctl: invalid job spec: %s: %s (field: %s)\n", e->field, e->message,
                e->field);
    else
        fprintf(stderr, "jobctl: invalid job spec: %s\n", e->message);
    return e->field[0] || strcmp(e->message, "out of memory") != 0 ? EXIT_DATAERR : EXIT_OSERR;
}

static void print_json(const json_t *v) {
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (s) {
        puts(s);
        free(s);
    }
}

/* ---- reading stdin ---- */

/* Read all of fd into a new buffer. Return 0, or -errno. */
static int read_all(int fd, char **out, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);

    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/*
 * The job's stdin: --stdin FILE (or - for ours), or for `run`, our stdin
 * when it is not a terminal. *data stays NULL when there is none. Return 0
 * or an exit status after a message.
 */
static int job_stdin(const struct cli *cli, char **data, size_t *len) {
    int fd = -1, rc;
    bool own = false;

    *data = NULL;
    *len = 0;
    if (cli->stdin_file && strcmp(cli->stdin_file, "-") != 0) {
        fd = open(cli->stdin_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "jobctl: --stdin %s: %s\n", cli->stdin_file, strerror(errno));
            return EXIT_NOTFOUND;
        }
        own = true;
    } else if (cli->stdin_file ||
               (cli->cmd == CMD_RUN && !cli->task && !isatty(0) && fcntl(0, F_GETFD) >= 0)) {
        fd = 0;
    } else {
        return 0;
    }
    rc = read_all(fd, data, len);
    if (own)
        close(fd);
    if (rc < 0) {
        fprintf(stderr, "jobctl: reading the job's stdin: %s\n", strerror(-rc));
        return rc == -ENOMEM ? EXIT_OSERR : EXIT_NOTFOUND;
    }
    return 0;
}

/* ---- run ---- */

static volatile sig_atomic_t sig_count;
static volatile sig_atomic_t sig_last;
static int wake_pipe[2] = {-1, -1};

static void on_signal(int signo) {
    int saved = errno;
    char b = 1;

    sig_last = signo;
    sig_count++;
    if (wake_pipe[1] >= 0 && write(wake_pipe[1], &b, 1) < 0) {
        /* The pipe is full: the loop is awake already. */
    }
    errno = saved;
}

struct run_state {
    struct jobd_client *c;
    const char *id;
    bool quiet;        /* --json: discard the output */
    bool cancel_sent;  /* we asked for a cancel */
    int cancel_signal; /* the signal that made us cancel */
    bool write_failed;
};

static int run_output(void *arg, enum jobd_stream stream, const char *data, size_t len) {
    struct run_state *rs = arg;
    FILE *f = stream == JOBD_STDERR ? stderr : stdout;

    if (rs->quiet || rs->write_failed)
        return 0;
    if (fwrite(data, 1, len, f) != len || fflush(f) != 0)
        rs->write_failed = true; /* keep following, so the job still ends normally */
    return 0;
}

/* Send the cancel once a signal came; stop at the second signal. */
static int run_tick(void *arg) {
    struct run_state *rs = arg;
    struct jobd_client_error err;
    char drain[64];

    while (read(wake_pipe[0], drain, sizeof drain) > 0) {
    }
    if (sig_count >= 2)
        return 1;
    if (sig_count == 1 && !rs->cancel_sent) {
        rs->cancel_sent = true;
        rs->cancel_signal = sig_last;
        fprintf(stderr, "jobctl: cancelling job %s (interrupt again to stop waiting)\n", rs->id);
        if (jobd_client_cancel(rs->c, rs->id, NULL, &err) < 0 && err.status != 409)
            report(&err);
    }
    return 0;
}

static int setup_signals(void) {
    struct sigaction sa;

    if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    return 0;
}

static int cmd_run(struct jobd_client *c, const struct cli *cli) {
    struct jobd_submit_options so = {.idempotency_key = cli->idem_key};
    struct jobd_follow_options fo = {.streams = {true, true}, .tick = run_tick};
    struct jobd_client_error err;
    struct jobd_error serr;
    struct run_state rs = {.c = c, .quiet = cli->json};
    json_t *spec, *job = NULL;
    char *in = NULL;
    size_t inlen = 0;
    char id[JOBD_MAX_ID_BYTES];
    int rc, status;

    if ((rc = job_stdin(cli, &in, &inlen)) != 0)
        return rc;
    spec = cli_spec(cli, in, inlen, &serr);
    free(in);
    if (!spec)
        return local_spec_error(&serr);
    if (setup_signals() < 0) {
        json_decref(spec);
        fprintf(stderr, "jobctl: cannot create a pipe: %s\n", strerror(errno));
        return EXIT_OSERR;
    }
    fo.wake_fd = wake_pipe[0];
    rc = jobd_client_submit_json(c, spec, &so, &job, &err);
    json_decref(spec);
    if (rc < 0)
        return report(&err);
    snprintf(id, sizeof id, "%s", jobd_job_str(job, "id") ? jobd_job_str(job, "id") : "");
    json_decref(job);
    job = NULL;
    rs.id = id;
    /* A signal during the submission cancels the job now that it has an id. */
    run_tick(&rs);
    if (sig_count >= 2)
        return 128 + sig_last;
    rc = jobd_client_follow(c, id, &fo, run_output, &rs, &err);
    if (rc == -ECANCELED && sig_count >= 2)
        return 128 + sig_last;
    if (rc < 0 && err.status != 404)
        return report(&err);
    /* The streams end with the job; this look is immediate unless the server stopped early. */
    rc = jobd_client_wait(c, id, -1, &job, &err);
    if (rc < 0)
        return report(&err);
    status = job_exit_status(job, rs.cancel_sent ? rs.cancel_signal : 0);
    if (cli->json) {
        print_json(job);
    } else {
        const char *state = jobd_job_str(job, "state");
        const char *why = jobd_job_str(job, "error");
        if (status == EXIT_NOTRUN && strcmp(state, "failed") == 0)
            fprintf(stderr, "jobctl: job %s could not run: %s\n", id, why ? why : "unknown error");
        else if (strcmp(state, "timed_out") == 0)
            fprintf(stderr, "jobctl: job %s %s\n", id, why ? why : "timed out");
        else if (strcmp(state, "cancelled") == 0)
            fprintf(stderr, "jobctl: job %s was cancelled\n", id);
    }
    json_decref(job);
    return status;
}

/* ---- the other commands ---- */

static int cmd_submit(struct jobd_client *c, const struct cli *cli) {
    struct jobd_submit_options so = {.idempotency_key = cli->idem_key};
    struct jobd_client_error err;
    struct jobd_error serr;
    struct jobd_spec spec;
    json_t *js, *job = NULL;
    char *in = NULL;
    size_t inlen = 0;
    int rc;

    if ((rc = job_stdin(cli, &in, &inlen)) != 0)
        return rc;
    js = cli_spec(cli, in, inlen, &serr);
    free(in);
    if (!js)
        return local_spec_error(&serr);
    /* cli_spec checked it already; the struct is what the library submits. */
    rc = jobd_spec_parse(js, &spec, &serr);
    json_decref(js);
    if (rc < 0)
        return local_spec_error(&serr);
    rc = jobd_client_submit(c, &spec, &so, &job, &err);
    jobd_spec_free(&spec);
    if (rc < 0)
        return report(&err);
    if (cli->json)
        print_json(job);
    else
        printf("%s\n", jobd_job_str(job, "id"));
    json_decref(job);
    return 0;
}

static int cmd_status(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *job = NULL;

    if (jobd_client_get(c, cli->id, &job, &err) < 0)
        return report(&err);
    if (cli->json)
        print_json(job);
    else
        fmt_job(stdout, job, jobd_now_ms());
    json_decref(job);
    return 0;
}

static int cmd_wait(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *job = NULL;
    int rc, status;

    rc = jobd_client_wait(c, cli->id, cli->wait_timeout, &job, &err);
    if (rc < 0)
        return report(&err);
    status = rc == 1 ? EXIT_TEMPFAIL : job_exit_status(job, 0);
    if (cli->json) {
        print_json(job);
    } else if (rc == 1) {
        fprintf(stderr, "jobctl: job %s is still %s after %g s\n", cli->id,
                jobd_job_str(job, "state"), cli->wait_timeout);
    } else {
        char exitbuf[LIST_COLS][128];
        const char *why = jobd_job_str(job, "error");
        fmt_list_row(job, jobd_now_ms(), exitbuf);
        printf("%s %s (exit %s, %s)%s%s\n", cli->id, jobd_job_str(job, "state"), exitbuf[3],
               exitbuf[7], why ? ": " : "", why ? why : "");
    }
    json_decref(job);
    return status;
}

struct logs_state {
    bool json;
};

static int logs_output(void *arg, enum jobd_stream stream, const char *data, size_t len) {
    struct logs_state *ls = arg;

    if (ls->json) {
        size_t n;
        char *clean = utf8_sanitize(data, len, &n);
        json_t *o = clean ? json_pack("{s:s,s:s%}", "stream",
                                      stream == JOBD_STDERR ? "stderr" : "stdout", "data", clean, n)
                          : NULL;
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        free(clean);
        json_decref(o);
        if (!s)
            return 1;
        printf("%s\n", s);
        free(s);
        fflush(stdout);
        return 0;
    }
    if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
        return 1;
    return 0;
}

static int cmd_logs(struct jobd_client *c, const struct cli *cli) {
    enum jobd_stream which = cli->err_stream ? JOBD_STDERR : JOBD_STDOUT;
    struct jobd_client_error err;
    struct logs_state ls = {.json = cli->json};
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (cli->follow) {
        struct jobd_follow_options fo = {.wake_fd = -1};
        fo.streams[which] = true;
        rc = jobd_client_follow(c, cli->id, &fo, logs_output, &ls, &err);
        if (rc == -ECANCELED) {
            fprintf(stderr, "jobctl: cannot write the output: %s\n", strerror(errno));
            return EXIT_OSERR;
        }
        return rc < 0 ? report(&err) : 0;
    }
    if (jobd_client_read_output(c, cli->id, which, 0, &data, &len, &err) < 0)
        return report(&err);
    if (cli->json) {
        size_t n;
        char *clean = utf8_sanitize(data, len, &n);
        json_t *o = clean ? json_pack("{s:s,s:s,s:I,s:s%}", "id", cli->id, "stream",
                                      which == JOBD_STDERR ? "stderr" : "stdout", "bytes",
                                      (json_int_t)len, "data", clean, n)
                          : NULL;
        free(clean);
        if (o)
            print_json(o);
        json_decref(o);
        rc = o ? 0 : EXIT_OSERR;
    } else {
        rc = fwrite(data, 1, len, stdout) == len ? 0 : EXIT_OSERR;
    }
    free(data);
    return rc;
}

static int cmd_cancel(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *job = NULL;

    if (jobd_client_cancel(c, cli->id, &job, &err) < 0)
        return report(&err);
    if (cli->json)
        print_json(job);
    else
        printf("%s: cancel requested (state: %s)\n", cli->id, jobd_job_str(job, "state"));
    json_decref(job);
    return 0;
}

static int cmd_rm(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;

    if (jobd_client_delete(c, cli->id, &err) < 0)
        return report(&err);
    if (cli->json) {
        json_t *o = json_pack("{s:s,s:b}", "id", cli->id, "deleted", 1);
        if (o)
            print_json(o);
        json_decref(o);
    } else
        printf("%s removed\n", cli->id);
    return 0;
}

struct list_state {
    bool json;
    json_t *array;
    struct table *table;
    int64_t now;
};

static int list_one(void *arg, json_t *job) {
    struct list_state *ls = arg;

    if (ls->json)
        return json_array_append(ls->array, job) == 0 ? 0 : -ENOMEM;
    char cells[LIST_COLS][128];
    const char *row[LIST_COLS];
    fmt_list_row(job, ls->now, cells);
    for (int i = 0; i < LIST_COLS; i++)
        row[i] = cells[i];
    return table_add(ls->table, row);
}

static int cmd_list(struct jobd_client *c, const struct cli *cli) {
    struct jobd_list_query q = {.state = cli->state,
                                .name = cli->list_name,
                                .label = cli->label,
                                .limit = (int)cli->page_size,
                                .batch = cli->list_batch};
    struct list_state ls = {.json = cli->json, .now = jobd_now_ms()};
    struct jobd_client_error err;
    int rc;

    if (cli->json)
        ls.array = json_array();
    else
        ls.table = table_new(LIST_COLS, list_headers);
    if (!ls.array && !ls.table) {
        fputs("jobctl: out of memory\n", stderr);
        return EXIT_OSERR;
    }
    rc = jobd_client_list_each(c, &q, cli->all ? 0 : (size_t)cli->list_limit, list_one, &ls, &err);
    if (rc == 0) {
        if (cli->json)
            print_json(ls.array);
        else
            table_print(ls.table, stdout);
    } else if (rc > 0 || rc == -ENOMEM) {
        fputs("jobctl: out of memory\n", stderr);
        rc = EXIT_OSERR;
    } else {
        rc = report(&err);
    }
    json_decref(ls.array);
    table_free(ls.table);
    return rc;
}

static int cmd_health(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *h = NULL;

    if (jobd_client_healthz(c, &h, &err) < 0)
        return report(&err);
    if (cli->json)
        print_json(h);
    else
        printf("%s: jobd %s at %s\n", jobd_job_str(h, "status") ? jobd_job_str(h, "status") : "?",
               jobd_job_str(h, "version") ? jobd_job_str(h, "version") : "?", jobd_client_url(c));
    json_decref(h);
    return 0;
}

static int cmd_tasks(struct jobd_client *c, const struct cli *cli) {
    static const char *const headers[] = {"NAME", "DESCRIPTION"};
    struct jobd_client_error err;
    json_t *doc = NULL, *tasks, *t;
    struct table *tb;
    size_t i;
    int rc = 0;

    if (jobd_client_tasks(c, &doc, &err) < 0)
        return report(&err);
    tasks = json_object_get(doc, "tasks");
    if (cli->json) {
        print_json(tasks);
        json_decref(doc);
        return 0;
    }
    tb = table_new(2, headers);
    if (!tb)
        rc = EXIT_OSERR;
    json_array_foreach(tasks, i, t) {
        const char *desc = jobd_job_str(t, "description");
        const char *row[2] = {jobd_job_str(t, "name"), desc && *desc ? desc : NULL};
        if (rc == 0 && table_add(tb, row) < 0)
            rc = EXIT_OSERR;
    }
    if (rc == 0)
        table_print(tb, stdout);
    else
        fputs("jobctl: out of memory\n", stderr);
    table_free(tb);
    json_decref(doc);
    return rc;
}

/*
 * Tell, after a 400 on a spec of a batch ("jobs[3].timeout"), the line of
 * FILE it came from (lines[i] of the i-th spec, 0 when unknown).
 */
static void note_spec_line(const struct jobd_client_error *e, const size_t *lines, size_t n,
                           const char *file) {
    unsigned long idx;

    if (e->status != 400 || !lines || sscanf(e->field, "jobs[%lu]", &idx) != 1 || idx >= n ||
        !lines[idx])
        return;
    fprintf(stderr, "jobctl: jobs[%lu] is the spec on line %zu of %s\n", idx, lines[idx], file);
}

/*
 * The end of `batch --wait` and `batch status --wait`: wait for batch `id`
 * to be done (redrawing a progress line when stdout is a terminal and not
 * --json), print the summary or the batch, and return the exit status: 0
 * every job succeeded, 1 some did not, 75 the --timeout passed first, or
 * that of an error.
 */
static int batch_wait(struct jobd_client *c, const struct cli *cli, const char *id) {
    bool live = !cli->json && isatty(1);
    int64_t deadline =
        cli->wait_timeout >= 0 ? jobd_mono_ms() + (int64_t)(cli->wait_timeout * 1000) : -1;
    struct jobd_client_error err;
    json_t *batch = NULL;
    char progress[256];
    int rc, status;

    if (!live) {
        rc = jobd_client_batch_wait(c, id, cli->wait_timeout, &batch, &err);
    } else {
        for (bool first = true;; first = false) {
            int64_t start = jobd_mono_ms();
            double w = first ? 0 : PROGRESS_POLL_S; /* the first line at once */
            json_t *b = NULL;

            if (deadline >= 0 && (double)(deadline - start) / 1000.0 < w)
                w = deadline > start ? (double)(deadline - start) / 1000.0 : 0;
            rc = jobd_client_batch_get(c, id, w, &b, &err);
            if (rc < 0)
                break;
            json_decref(batch);
            batch = b;
            fmt_batch_progress(batch, progress, sizeof progress);
            /* \033[K clears what is left of a longer earlier line. */
            printf("\r%s\033[K", progress);
            fflush(stdout);
            if (json_is_true(json_object_get(batch, "done"))) {
                rc = 0;
                break;
            }
            if (deadline >= 0 && jobd_mono_ms() >= deadline) {
                rc = 1;
                break;
            }
            if (jobd_mono_ms() - start < 50) {
                /* The server answered at once (shutting down?): do not spin. */
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
        if (batch)
            putchar('\n');
    }
    if (rc < 0) {
        json_decref(batch);
        return report(&err);
    }
    status = rc == 1 ? EXIT_TEMPFAIL : batch_exit_status(batch);
    if (cli->json) {
        print_json(batch);
    } else {
        if (!live) {
            fmt_batch_progress(batch, progress, sizeof progress);
            printf("%s\n", progress);
        }
        if (rc == 1)
            fprintf(stderr, "jobctl: batch %s is not done after %g s\n", id, cli->wait_timeout);
        else if (status != 0)
            fprintf(stderr,
                    "jobctl: some jobs of batch %s did not succeed: see `jobctl list --batch %s "
                    "--state failed,cancelled,timed_out`\n",
                    id, id);
    }
    json_decref(batch);
    return status;
}

static int cmd_batch(struct jobd_client *c, const struct cli *cli) {
    struct jobd_batch_options bo = {.concurrency = (int)cli->concurrency, .name = cli->batch_name};
    const char *file = strcmp(cli->file, "-") == 0 ? "stdin" : cli->file;
    struct jobd_client_error err;
    struct jobd_error serr;
    json_t *specs, *batch = NULL;
    size_t *lines = NULL, len = 0;
    char *text = NULL, id[JOBD_MAX_ID_BYTES];
    int fd = 0, rc;

    if (strcmp(cli->file, "-") != 0) {
        fd = open(cli->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "jobctl: %s: %s\n", cli->file, strerror(errno));
            return EXIT_NOTFOUND;
        }
    }
    rc = read_all(fd, &text, &len);
    if (fd > 0)
        close(fd);
    if (rc < 0) {
        fprintf(stderr, "jobctl: reading %s: %s\n", file, strerror(-rc));
        return rc == -ENOMEM ? EXIT_OSERR : EXIT_NOTFOUND;
    }
    specs = cli_batch_specs(text, len, &lines, &serr);
    free(text);
    if (!specs) {
        if (!serr.field[0] && strcmp(serr.message, "out of memory") == 0) {
            fputs("jobctl: out of memory\n", stderr);
            return EXIT_OSERR;
        }
        if (serr.field[0])
            fprintf(stderr, "jobctl: invalid batch in %s: %s (field: %s)\n", file, serr.message,
                    serr.field);
        else
            fprintf(stderr, "jobctl: invalid batch in %s: %s\n", file, serr.message);
        return EXIT_DATAERR;
    }
    rc = jobd_client_batch_submit(c, specs, &bo, &batch, &err);
    if (rc < 0) {
        rc = report(&err);
        note_spec_line(&err, lines, json_array_size(specs), file);
        goto out;
    }
    snprintf(id, sizeof id, "%s", jobd_job_str(batch, "id"));
    if (cli->wait)
        rc = batch_wait(c, cli, id);
    else if (cli->json)
        print_json(batch);
    else
        printf("%s\n", id);
out:
    json_decref(batch);
    json_decref(specs);
    free(lines);
    return rc;
}

static int cmd_batch_status(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *batch = NULL;

    if (cli->wait)
        return batch_wait(c, cli, cli->id);
    if (jobd_client_batch_get(c, cli->id, 0, &batch, &err) < 0)
        return report(&err);
    if (cli->json)
        print_json(batch);
    else
        fmt_batch(stdout, batch, jobd_now_ms());
    json_decref(batch);
    return 0;
}

static int cmd_batch_cancel(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *batch = NULL;

    if (jobd_client_batch_cancel(c, cli->id, &batch, &err) < 0)
        return report(&err);
    if (cli->json) {
        print_json(batch);
    } else {
        /* Queued jobs end at once; running ones once they have stopped. */
        json_int_t running =
            json_integer_value(json_object_get(json_object_get(batch, "counts"), "running"));
        if (running > 0)
            printf("%s: cancel requested (%" JSON_INTEGER_FORMAT " jobs still running)\n", cli->id,
                   running);
        else
            printf("%s: cancel requested\n", cli->id);
    }
    json_decref(batch);
    return 0;
}

/* ---- nodes ---- */

static int cmd_nodes(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *doc = NULL, *nodes, *node;
    struct table *tb;
    int64_t now = jobd_now_ms();
    size_t i;
    int rc = 0;

    if (jobd_client_nodes(c, &doc, &err) < 0)
        return report(&err);
    nodes = json_object_get(doc, "nodes");
    if (cli->json) {
        print_json(nodes);
        json_decref(doc);
        return 0;
    }
    tb = table_new(NODE_COLS, node_headers);
    if (!tb)
        rc = EXIT_OSERR;
    json_array_foreach(nodes, i, node) {
        char cells[NODE_COLS][256];
        const char *row[NODE_COLS];
        if (rc != 0)
            break;
        fmt_node_row(node, now, cells);
        for (int k = 0; k < NODE_COLS; k++)
            row[k] = cells[k];
        if (table_add(tb, row) < 0)
            rc = EXIT_OSERR;
    }
    if (rc == 0)
        table_print(tb, stdout);
    else
        fputs("jobctl: out of memory\n", stderr);
    table_free(tb);
    json_decref(doc);
    return rc;
}

static int cmd_node(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *node = NULL;

    if (jobd_client_node_get(c, cli->id, &node, &err) < 0)
        return report(&err);
    if (cli->json)
        print_json(node);
    else
        fmt_node(stdout, node, jobd_now_ms());
    json_decref(node);
    return 0;
}

static int cmd_drain(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;
    json_t *node = NULL;
    json_int_t running;

    if (jobd_client_node_drain(c, cli->id, &node, &err) < 0)
        return report(&err);
    running = json_integer_value(json_object_get(node, "running"));
    if (cli->json)
        print_json(node);
    else if (running > 0)
        printf("%s: %s (%" JSON_INTEGER_FORMAT " jobs still running)\n", cli->id,
               jobd_job_str(node, "state"), running);
    else
        printf("%s: %s\n", cli->id, jobd_job_str(node, "state"));
    json_decref(node);
    return 0;
}

static int cmd_nodes_rm(struct jobd_client *c, const struct cli *cli) {
    struct jobd_client_error err;

    if (jobd_client_node_delete(c, cli->id, &err) < 0)
        return report(&err);
    if (cli->json) {
        json_t *o = json_pack("{s:s,s:b}", "id", cli->id, "deleted", 1);
        if (o)
            print_json(o);
        json_decref(o);
    } else {
        printf("%s removed\n", cli->id);
    }
    return 0;
}

int main(int argc, char **argv) {
    struct jobd_client_options o = {0};
    struct jobd_client_error err;
    struct jobd_client *c;
    struct cli cli;
    char msg[512];
    int rc;

    rc = cli_parse(argc, argv, &cli, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "jobctl: %s\n", msg);
        if (cli.cmd != CMD_NONE)
            fprintf(stderr, "Try `jobctl help %s`.\n", cli_cmd_name(cli.cmd));
        cli_free(&cli);
        return rc;
    }
    if (cli.man || cli.version || cli.help || cli.cmd == CMD_HELP) {
        if (cli.man)
            cli_man(stdout);
        else if (cli.version)
            printf("jobctl %s\n", JOBD_VERSION);
        else if (cli.cmd == CMD_HELP)
            cli_help(stdout, cli.topic ? cli_cmd_lookup(cli.topic) : CMD_NONE);
        else
            cli_help(stdout, cli.cmd);
        cli_free(&cli);
        return fflush(stdout) == 0 ? 0 : EXIT_OSERR;
    }
    o.url = cli.server ? cli.server : getenv("JOBD_URL");
    if (!o.url || !*o.url)
        o.url = JOBCTL_DEFAULT_URL;
    o.token = cli.token ? cli.token : getenv("JOBD_TOKEN");
    o.ca_file = cli.cacert ? cli.cacert : getenv("JOBD_CACERT");
    o.connect_timeout_ms = (long)(cli.connect_timeout * 1000);
    o.user_agent = "jobctl/" JOBD_VERSION;
    c = jobd_client_new(&o, &err);
    if (!c) {
        rc = report(&err);
        cli_free(&cli);
        return rc;
    }
    switch (cli.cmd) {
    case CMD_RUN:
        rc = cmd_run(c, &cli);
        break;
    case CMD_SUBMIT:
        rc = cmd_submit(c, &cli);
        break;
    case CMD_STATUS:
        rc = cmd_status(c, &cli);
        break;
    case CMD_WAIT:
        rc = cmd_wait(c, &cli);
        break;
    case CMD_LOGS:
        rc = cmd_logs(c, &cli);
        break;
    case CMD_CANCEL:
        rc = cmd_cancel(c, &cli);
        break;
    case CMD_RM:
        rc = cmd_rm(c, &cli);
        break;
    case CMD_LIST:
        rc = cmd_list(c, &cli);
        break;
    case CMD_HEALTH:
        rc = cmd_health(c, &cli);
        break;
    case CMD_TASKS:
        rc = cmd_tasks(c, &cli);
        break;
    case CMD_BATCH:
        rc = cmd_batch(c, &cli);
        break;
    case CMD_BATCH_STATUS:
        rc = cmd_batch_status(c, &cli);
        break;
    case CMD_BATCH_CANCEL:
        rc = cmd_batch_cancel(c, &cli);
        break;
    case CMD_NODES:
        rc = cmd_nodes(c, &cli);
        break;
    case CMD_NODE:
        rc = cmd_node(c, &cli);
        break;
    case CMD_DRAIN:
        rc = cmd_drain(c, &cli);
        break;
    case CMD_NODES_RM:
        rc = cmd_nodes_rm(c, &cli);
        break;
    default:
        rc = EXIT_USAGE;
    }
    jobd_client_free(c);
    cli_free(&cli);
    if (fflush(stdout) != 0 && rc == 0)
        rc = EXIT_OSERR;
    return rc;
}
