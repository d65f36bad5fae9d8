/*
 * cli.h: jobctl's command line: the commands, their options and help text
 * (defined once, shown by `--help`, `jobctl help CMD` and the man page), the
 * parser that turns argv into a struct cli, the job spec the options
 * describe, and jobctl's exit codes.
 *
 * Nothing here talks to a server or prints except the help and man page
 * writers, so the parser is tested alone (tests/unit/test_jobctl_cli.c).
 */
#ifndef JOBCTL_CLI_H
#define JOBCTL_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jobd/spec.h"

/*
 * Exit codes of jobctl's own failures, after sysexits.h, so that they
 * rarely clash with the job exit codes that `run` and `wait` pass through.
 */
#define EXIT_REFUSED     1   /* the server refused (409 conflict) */
#define EXIT_SOMEFAILED  1   /* batch --wait: some jobs failed, were cancelled or timed out */
#define EXIT_USAGE       2   /* bad command line */
#define EXIT_DATAERR     65  /* invalid job spec or parameter (400) */
#define EXIT_NOTFOUND    66  /* no such job, batch or node (404), or an input file cannot be read */
#define EXIT_UNAVAILABLE 69  /* cannot connect to jobd, or the connection timed out */
#define EXIT_SOFTWARE    70  /* server error (5xx), or an answer jobctl cannot understand */
#define EXIT_OSERR       71  /* local failure: out of memory, a pipe */
#define EXIT_TEMPFAIL    75  /* try again: queue full (429), shutting down (503), wait timed out */
#define EXIT_NOPERM      77  /* unauthorized (401/403): missing or wrong token */
#define EXIT_TIMEDOUT    124 /* run/wait: the job timed out (like coreutils timeout) */
#define EXIT_NOTRUN      127 /* run/wait: the job could not start */

#define JOBCTL_DEFAULT_URL "http://127.0.0.1:8080"

enum cli_cmd {
    CMD_NONE = 0,
    CMD_RUN,
    CMD_SUBMIT,
    CMD_STATUS,
    CMD_WAIT,
    CMD_LOGS,
    CMD_CANCEL,
    CMD_RM,
    CMD_LIST,
    CMD_HEALTH,
    CMD_TASKS,
    CMD_BATCH,
    CMD_BATCH_STATUS, /* "batch status ID" */
    CMD_BATCH_CANCEL, /* "batch cancel ID" */
    CMD_NODES,
    CMD_NODE,
    CMD_DRAIN,
    CMD_NODES_RM, /* "nodes rm ID" */
    CMD_HELP,
    CMD_COUNT
};

/* Bits of the resource limits given on the command line. */
enum cli_limit { LIM_OUTPUT = 0, LIM_MEMORY, LIM_CPU, LIM_FILES, LIM_COUNT };

/*
 * A parsed command line. Strings are borrowed from argv; the arrays (env,
 * labels, node_selector) are owned and freed by cli_free.
 */
struct cli {
    enum cli_cmd cmd;
    bool help;         /* --help: show the command's help (or the overview) */
    bool version;      /* --version */
    bool man;          /* --help-man: write the man page */
    const char *topic; /* help TOPIC */
    /* global */
    const char *server; /* NULL: JOBD_URL, then the default */
    const char *token;  /* NULL: JOBD_TOKEN */
    const char *cacert; /* --cacert FILE; NULL: JOBD_CACERT, then the system's CAs */
    bool json;
    double connect_timeout; /* seconds; 0: the library's default */
    /* the job (run, submit) */
    char **argv; /* the command after the options, NULL-terminated; borrowed */
    int argc;
    const char *shell;
    const char **env; /* "K=V" or "K" (value from jobctl's environment) */
    size_t n_env;
    const char **labels; /* "K=V" */
    size_t n_labels;
    const char **node_selector; /* "K=V" */
    size_t n_node_selector;
    const char *task, *args; /* --task NAME, --args JSON (text, parsed by cli_spec) */
    const char *executor;    /* "process", "thread" or "remote"; NULL: the server's default */
    const char *cwd, *stdin_file, *kill_signal, *name, *idem_key;
    bool has_timeout, has_kill_grace, has_retries, has_retry_delay, has_priority;
    double timeout, kill_grace, retry_delay;
    int64_t retries, priority;
    bool has_limit[LIM_COUNT];
    int64_t limit[LIM_COUNT];
    /* commands on one job, batch or node */
    const char *id;
    double wait_timeout; /* wait --timeout, batch --timeout; < 0: none */
    bool follow, err_stream;
    /* list */
    const char *state, *list_name, *label;
    long list_limit; /* jobs to show */
    bool all;
    long page_size; /* jobs per request; 0: chosen from list_limit */
    const char *list_batch;
    /* batch */
    const char *file;       /* batch FILE; "-" for stdin */
    const char *batch_name; /* batch --name */
    long concurrency;       /* 0: the server's default (all at once) */
    bool wait;              /* batch --wait, batch status --wait */
};

/*
 * Parse argv (borrowed: *out points into it). Return 0, or EXIT_USAGE with
 * a one-line message (without "jobctl: ") in msg. On success with
 * out->help, out->version or out->man set, the rest may be incomplete.
 * Call cli_free on *out either way.
 */
int cli_parse(int argc, char **argv, struct cli *out, char *msg, size_t msglen);

void cli_free(struct cli *c);

/* The command's name ("run", "batch status"), or NULL for CMD_NONE. */
const char *cli_cmd_name(enum cli_cmd cmd);

/*
 * Look up a command name or alias ("get" is status; "batch status" is one
 * name). Return CMD_NONE if unknown.
 */
enum cli_cmd cli_cmd_lookup(const char *name);

/* Write the help of a command (CMD_NONE: the overview with the exit codes). */
void cli_help(FILE *out, enum cli_cmd cmd);

/* Write the man page jobctl(1), in roff, from the same text as the help. */
void cli_man(FILE *out);

/*
 * Build the JSON job spec the options describe (run, submit), with `stdin`
 * (borrowed, `len` bytes, may be NULL) as the job's stdin, and check it with
 * jobd_spec_parse. Return a new reference, or NULL with *err naming the
 * field at fault ("timeout", "stdin": not UTF-8, ...).
 */
json_t *cli_spec(const struct cli *c, const char *stdin_data, size_t len, struct jobd_error *err);

/*
 * Parse the job specs of `jobctl batch`: `text` (borrowed, `len` bytes) is
 * either a JSON array of spec objects (its first non-blank byte is '[') or
 * JSON lines, one spec object per line, blank lines skipped. Each spec is
 * checked with jobd_spec_parse. Return a new reference to a non-empty JSON
 * array of the specs. When `lines` is not NULL, *lines is set to a new array
 * (freed with free()) of the 1-based line of each spec, all 0 for the array
 * form. On failure return NULL with *err: the message names the line
 * ("line 3: ...") where it is known, and the field is "jobs[N]..." for a
 * bad spec, "" for bad JSON; *lines is untouched.
 */
json_t *cli_batch_specs(const char *text, size_t len, size_t **lines, struct jobd_error *err);

/* Parse "90", "1.5", "90s", "5m", "2h", "1d" into seconds. Return 0 or -1. Negatives pass. */
int cli_parse_seconds(const char *s, double *out);

/* Parse "1048576", "512K", "64M", "2G", "1T" (powers of 1024). Return 0 or -1. Negatives pass. */
int cli_parse_size(const char *s, int64_t *out);

#endif
