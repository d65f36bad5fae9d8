/*
 * cli.c: jobctl's commands, options, help text and parser (cli.h).
 *
 * The help of each command lives in one place, the commands[] and opts[]
 * tables below; `--help`, `jobctl help CMD` and the man page are all
 * rendered from them, so they cannot disagree.
 */
#include <errno.h>
#include <math.h> /* isfinite, a macro: no libm */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define B(c)      (1u << (c))
#define SPEC_CMDS (B(CMD_RUN) | B(CMD_SUBMIT))
#define WAIT_CMDS (B(CMD_BATCH) | B(CMD_BATCH_STATUS))
#define ALL_CMDS  (~0u)

struct command {
    enum cli_cmd cmd;
    const char *name; /* one word, or "batch WORD" for the subcommands of batch */
    const char *alias;
    const char *usage;   /* after "jobctl " */
    const char *summary; /* one line */
    const char *text;    /* paragraphs, '\n'-separated lines */
};

static const struct command commands[] = {
    {CMD_RUN, "run", NULL, "run [options] [--] COMMAND [ARG...]",
     "Run a command as a job, stream its output, exit with its exit code",
     "Submits COMMAND as a job, writes the job's stdout and stderr to jobctl's own\n"
     "stdout and stderr as they are produced, and exits with the job's exit code:\n"
     "128+N when the job was killed by signal N, 124 when it timed out (like\n"
     "coreutils timeout), 127 when it could not start (the reason is shown).\n"
     "Instead of COMMAND, --shell STRING runs a shell line, and --task NAME with\n"
     "--args JSON runs one of jobd's in-process tasks (see `jobctl tasks`).\n"
     "When jobctl's stdin is not a terminal it becomes the job's stdin (or use\n"
     "--stdin FILE; tasks read no stdin). Ctrl-C (SIGINT) or SIGTERM cancels the\n"
     "job, and jobctl exits once the job has ended (130 or 143); a second Ctrl-C\n"
     "leaves at once.\n"
     "--executor remote runs the job on one of jobd's worker nodes (see `jobctl\n"
     "nodes`), one whose labels match every --node-selector K=V; until such a\n"
     "node has room the job stays queued (`jobctl status` says why).\n"
     "With --json nothing is streamed: the final job is printed as JSON (its\n"
     "output stays readable with `jobctl logs`)."},
    {CMD_SUBMIT, "submit", NULL, "submit [options] [--] COMMAND [ARG...]",
     "Submit a job and print its id",
     "Submits COMMAND (or --shell STRING, or --task NAME --args JSON) as a job and\n"
     "prints its id, without waiting. With --idempotency-key, submitting again with\n"
     "the same key and the same options gives the first job instead of a new one."},
    {CMD_STATUS, "status", "get", "status [options] ID", "Show a job",
     "Shows the job's state, exit code, times and spec (`get` is the same)."},
    {CMD_WAIT, "wait", NULL, "wait [options] ID",
     "Wait for a job to end and exit with its exit code",
     "Waits until the job has ended, shows it, and exits like `run` does with the\n"
     "job's exit code (0, the code, 128+signal, 124 timed out, 127 could not start;\n"
     "a cancelled job: 128+the signal that stopped it, 130 if it never ran).\n"
     "With --timeout, gives up after S seconds with status 75."},
    {CMD_LOGS, "logs", NULL, "logs [options] ID", "Print a job's output",
     "Prints what the job wrote to stdout (--stderr: to stderr) so far; with -f,\n"
     "keeps printing as the job writes, until it has ended."},
    {CMD_CANCEL, "cancel", NULL, "cancel [options] ID", "Cancel a job",
     "Cancels the job: a queued job ends at once; a running one gets its kill\n"
     "signal, then SIGKILL after its kill grace. A job that has already ended is\n"
     "refused (status 1)."},
    {CMD_RM, "rm", NULL, "rm [options] ID", "Forget an ended job and its output",
     "Deletes an ended job and its output. A queued or running job is refused\n"
     "(status 1): cancel it first."},
    {CMD_LIST, "list", "ls", "list [options]", "List jobs, newest first",
     "Lists jobs, newest first, as a table (ID NAME STATE EXIT EXECUTOR NODE AGE\n"
     "DURATION), fetching as many pages as needed. EXIT is the exit code, or the\n"
     "signal that killed the job. With --json, prints a JSON array of jobs."},
    {CMD_TASKS, "tasks", NULL, "tasks [options]", "List the in-process tasks jobd can run",
     "Lists the tasks a job may name with --task (jobd's builtins, such as echo,\n"
     "sleep and http, and those of its --plugin libraries) as a table (NAME\n"
     "DESCRIPTION). With --json, prints a JSON array of {name, description}."},
    {CMD_BATCH, "batch", NULL, "batch [options] FILE|-", "Submit many jobs at once as a batch",
     "Submits the job specs in FILE (- for stdin) as one batch: all of them are\n"
     "accepted, or none. FILE holds a JSON array of specs, or JSON lines: one spec\n"
     "per line, blank lines skipped. A spec is the body of POST /v1/jobs, such as\n"
     "{\"command\": [\"gzip\", \"a.log\"]} or {\"task\": \"echo\", \"args\": {\"n\": 1}}.\n"
     "Every spec is checked before anything is sent, and a bad one is shown with\n"
     "its line (status 65). Prints the batch id (with --json, the batch).\n"
     "With --wait, waits until every job has ended, keeping a progress line up to\n"
     "date when stdout is a terminal, then prints a summary (with --json, the\n"
     "batch) and exits 0 when every job succeeded, 1 when some failed, were\n"
     "cancelled or timed out, 75 when --timeout passed first. Ctrl-C stops the\n"
     "waiting, not the batch (`jobctl batch cancel ID` does).\n"
     "`jobctl list --batch ID` lists the batch's jobs. A FILE named status or\n"
     "cancel is given as ./status or ./cancel."},
    {CMD_BATCH_STATUS, "batch status", NULL, "batch status [options] ID",
     "Show a batch, or wait for its end",
     "Shows the batch: its jobs by state and whether all have ended (--json: the\n"
     "batch document). With --wait, waits as `jobctl batch --wait` does and exits\n"
     "the same way."},
    {CMD_BATCH_CANCEL, "batch cancel", NULL, "batch cancel [options] ID",
     "Cancel the jobs of a batch that have not ended",
     "Cancels every queued or running job of the batch, as `jobctl cancel` does\n"
     "for one job; jobs that have ended stay as they are. Cancelling a batch whose\n"
     "jobs have all ended is not an error."},
    {CMD_NODES, "nodes", NULL, "nodes [options]", "List the worker nodes",
     "Lists the worker nodes of jobd (other jobd processes started with --join\n"
     "that run its jobs of --executor remote) as a table (ID STATE URL\n"
     "RUNNING/CAPACITY LABELS LAST SEEN), in id order. STATE is ready, draining\n"
     "(gets no new jobs) or down (not heard from for jobd's --node-timeout).\n"
     "With --json, prints a JSON array of nodes."},
    {CMD_NODE, "node", NULL, "node [options] NODE", "Show a worker node",
     "Shows the node's state, URL, labels, capacity, running jobs, and when it\n"
     "joined and was last heard from (--json: the node document). `jobctl list\n"
     "--json` shows each job's node."},
    {CMD_DRAIN, "drain", NULL, "drain [options] NODE", "Send a worker node no new jobs",
     "Drains the node: the jobs it runs finish there, and it gets no new ones,\n"
     "even after it heartbeats again. Prints the node's state (--json: the node\n"
     "document). `jobctl nodes rm NODE` forgets it once it runs nothing."},
    {CMD_NODES_RM, "nodes rm", NULL, "nodes rm [options] NODE", "Forget a worker node",
     "Removes the node from jobd's list. A node that still runs jobs is refused\n"
     "(status 1): drain it and wait until it runs nothing. A node process that is\n"
     "still alive joins again as a new node at its next heartbeat."},
    {CMD_HEALTH, "health", NULL, "health [options]", "Check that jobd answers",
     "Asks jobd's /healthz (no token needed) and prints its status and version."},
    {CMD_HELP, "help", NULL, "help [COMMAND]", "Show the help of a command",
     "Shows the help of COMMAND, or the overview."},
};

enum opt_id {
    O_HELP,
    O_SERVER,
    O_TOKEN,
    O_CACERT,
    O_JSON,
    O_CONNECT_TIMEOUT,
    O_VERSION,
    O_HELP_MAN,
    O_SHELL,
    O_ENV,
    O_CWD,
    O_STDIN,
    O_TIMEOUT,
    O_KILL_SIGNAL,
    O_KILL_GRACE,
    O_RETRIES,
    O_RETRY_DELAY,
    O_PRIORITY,
    O_NAME,
    O_LABEL,
    O_IDEM,
    O_OUTPUT_BYTES,
    O_MEMORY,
    O_CPU,
    O_FILES,
    O_WAIT_TIMEOUT,
    O_FOLLOW,
    O_STDERR,
    O_STATE,
    O_LIMIT,
    O_LNAME,
    O_LLABEL,
    O_ALL,
    O_PAGE_SIZE,
    O_TASK,
    O_ARGS,
    O_EXECUTOR,
    O_LBATCH,
    O_WAIT,
    O_BWAIT_TIMEOUT,
    O_CONCURRENCY,
    O_BNAME,
    O_NODE_SELECTOR,
};

struct opt {
    enum opt_id id;
    const char *lng;
    char shrt;
    const char *arg; /* NULL: a flag */
    unsigned cmds;   /* bits of the commands it applies to; CMD_NONE: before the command */
    const char *help;
};

#define GLOBAL_CMDS ALL_CMDS

/* Global options first: cli_help lists them apart. */
static const struct opt opts[] = {
    {O_SERVER, "server", 0, "URL", GLOBAL_CMDS,
     "jobd to talk to (default: $JOBD_URL, else " JOBCTL_DEFAULT_URL ")"},
    {O_TOKEN, "token", 0, "TOKEN", GLOBAL_CMDS, "bearer token (default: $JOBD_TOKEN)"},
    {O_CACERT, "cacert", 0, "FILE", GLOBAL_CMDS,
     "CA certificates (PEM) of an https:// server (default: $JOBD_CACERT)"},
    {O_JSON, "json", 0, NULL, GLOBAL_CMDS, "print JSON documents instead of text"},
    {O_CONNECT_TIMEOUT, "connect-timeout", 0, "S", GLOBAL_CMDS,
     "give up connecting after S seconds (default 10)"},
    {O_HELP, "help", 'h', NULL, GLOBAL_CMDS, "show this help"},
    {O_VERSION, "version", 0, NULL, B(CMD_NONE), "show jobctl's version"},
    {O_HELP_MAN, "help-man", 0, NULL, B(CMD_NONE), "write the man page jobctl(1) in roff"},

    {O_SHELL, "shell", 0, "STRING", SPEC_CMDS, "run STRING with /bin/sh -c instead of COMMAND"},
    {O_TASK, "task", 0, "NAME", SPEC_CMDS,
     "run the in-process task NAME instead of COMMAND (see `jobctl tasks`)"},
    {O_ARGS, "args", 0, "JSON", SPEC_CMDS, "the task's input, any JSON value (with --task)"},
    {O_EXECUTOR, "executor", 0, "EXEC", SPEC_CMDS,
     "process, thread (tasks only; their default) or remote (a worker node)"},
    {O_NODE_SELECTOR, "node-selector", 0, "K=V", SPEC_CMDS,
     "with --executor remote: only on nodes with this label (repeatable)"},
    {O_ENV, "env", 'e', "K=V", SPEC_CMDS,
     "set an environment variable (repeatable); a bare K takes jobctl's value"},
    {O_CWD, "cwd", 0, "DIR", SPEC_CMDS, "working directory (an absolute path on the server)"},
    {O_STDIN, "stdin", 0, "FILE", SPEC_CMDS, "the job's stdin from FILE (- for jobctl's stdin)"},
    {O_TIMEOUT, "timeout", 0, "S", SPEC_CMDS, "stop the job after S seconds (90, 1.5, 5m, 2h)"},
    {O_KILL_SIGNAL, "kill-signal", 0, "SIG", SPEC_CMDS,
     "signal sent first on cancel or timeout (default SIGTERM)"},
    {O_KILL_GRACE, "kill-grace", 0, "S", SPEC_CMDS,
     "seconds between the kill signal and SIGKILL (default 5)"},
    {O_RETRIES, "retries", 0, "N", SPEC_CMDS, "retry a failed job up to N times"},
    {O_RETRY_DELAY, "retry-delay", 0, "S", SPEC_CMDS,
     "first delay between attempts, doubled each time (default 1)"},
    {O_PRIORITY, "priority", 0, "N", SPEC_CMDS, "-100..100, higher runs first (default 0)"},
    {O_NAME, "name", 0, "NAME", SPEC_CMDS, "a name for people and for `list --name`"},
    {O_LABEL, "label", 'l', "K=V", SPEC_CMDS, "a label (repeatable)"},
    {O_IDEM, "idempotency-key", 0, "KEY", SPEC_CMDS,
     "make the submission safe to retry: the same KEY gives the same job"},
    {O_OUTPUT_BYTES, "output-bytes", 0, "BYTES", SPEC_CMDS,
     "cap of each output stream; head and tail are kept (K, M, G suffixes)"},
    {O_MEMORY, "memory", 0, "BYTES", SPEC_CMDS, "address space limit (K, M, G suffixes)"},
    {O_CPU, "cpu-seconds", 0, "N", SPEC_CMDS, "CPU time limit in seconds"},
    {O_FILES, "open-files", 0, "N", SPEC_CMDS, "limit of open files"},

    {O_WAIT_TIMEOUT, "timeout", 0, "S", B(CMD_WAIT), "give up after S seconds (exit status 75)"},
    {O_FOLLOW, "follow", 'f', NULL, B(CMD_LOGS), "keep printing new output until the job ends"},
    {O_STDERR, "stderr", 0, NULL, B(CMD_LOGS), "print the job's stderr instead of its stdout"},
    {O_STATE, "state", 0, "S[,S...]", B(CMD_LIST),
     "only jobs in these states (queued, running, succeeded, failed, cancelled, timed_out)"},
    {O_LIMIT, "limit", 'n', "N", B(CMD_LIST), "show at most N jobs (default 100)"},
    {O_ALL, "all", 'a', NULL, B(CMD_LIST), "show every job (no limit)"},
    {O_LNAME, "name", 0, "NAME", B(CMD_LIST), "only jobs with this name"},
    {O_LLABEL, "label", 'l', "K=V", B(CMD_LIST), "only jobs with this label"},
    {O_PAGE_SIZE, "page-size", 0, "N", B(CMD_LIST),
     "jobs per request, 1..1000 (default: up to 1000)"},
    {O_LBATCH, "batch", 0, "ID", B(CMD_LIST), "only the jobs of this batch"},
    {O_CONCURRENCY, "concurrency", 'c', "N", B(CMD_BATCH),
     "run at most N of the batch's jobs at a time, 1..100000 (default: all)"},
    {O_BNAME, "name", 0, "NAME", B(CMD_BATCH), "a name for the batch, for people"},
    {O_WAIT, "wait", 'w', NULL, WAIT_CMDS,
     "wait until every job has ended (exit 0: all succeeded, 1: not all)"},
    {O_BWAIT_TIMEOUT, "timeout", 0, "S", WAIT_CMDS,
     "with --wait: stop waiting after S seconds (exit status 75)"},
};

#define N_OPTS     (sizeof opts / sizeof opts[0])
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char exit_text[] =
    "   0  success (run, wait: the job succeeded; batch --wait: every job did)\n"
    "   1  the server refused: the job has already ended (cancel), is still\n"
    "      active (rm), the node still runs jobs (nodes rm), or the idempotency\n"
    "      key was used for another spec;\n"
    "      batch --wait: some jobs failed, were cancelled or timed out\n"
    "   2  usage: bad command line\n"
    "  65  invalid job spec, batch file or parameter (the field or line is shown)\n"
    "  66  no such job, batch or node, or an input file cannot be read\n"
    "  69  cannot connect to jobd, it did not answer in time, or TLS failed\n"
    "      (its certificate is not trusted: see --cacert)\n"
    "  70  server error, or an answer jobctl does not understand\n"
    "  71  local failure (out of memory)\n"
    "  75  try again later: queue full or jobd shutting down; the --timeout of\n"
    "      wait or batch --wait passed\n"
    "  77  unauthorized: missing or wrong token\n"
    "run and wait pass the job's exit code through: N when it exited with N,\n"
    "128+N when killed by signal N, 124 when it timed out, 127 when it could not\n"
    "start, 130 (143) when Ctrl-C (SIGTERM) to `run` cancelled it; a job cancelled\n"
    "otherwise gives 128+the signal that stopped it, or 130 if it never ran.\n";

static const char overview_text[] =
    "jobctl runs and watches jobs on a jobd server: `jobctl run -- make test` runs\n"
    "the command remotely as if it ran here. It talks to --server (or $JOBD_URL,\n"
    "default " JOBCTL_DEFAULT_URL ") with --token (or $JOBD_TOKEN); an https://\n"
    "server's certificate is checked against --cacert (or $JOBD_CACERT).\n";

const char *cli_cmd_name(enum cli_cmd cmd) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].cmd == cmd)
            return commands[i].name;
    return NULL;
}

enum cli_cmd cli_cmd_lookup(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0 ||
            (commands[i].alias && strcmp(commands[i].alias, name) == 0))
            return commands[i].cmd;
    return CMD_NONE;
}

static const struct command *command_of(enum cli_cmd cmd) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].cmd == cmd)
            return &commands[i];
    return NULL;
}

/* ---- help ---- */

static void opt_label(const struct opt *o, char *buf, size_t n) {
    if (o->shrt)
        snprintf(buf, n, "-%c, --%s%s%s", o->shrt, o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
    else
        snprintf(buf, n, "    --%s%s%s", o->lng, o->arg ? " " : "", o->arg ? o->arg : "");
}

static void help_opts(FILE *out, unsigned mask, bool global) {
    char label[64];

    for (size_t i = 0; i < N_OPTS; i++) {
        bool is_global = opts[i].cmds == GLOBAL_CMDS;
        if (is_global != global || !(opts[i].cmds & mask))
            continue;
        opt_label(&opts[i], label, sizeof label);
        if (strlen(label) > 26)
            fprintf(out, "  %s\n  %-26s  %s\n", label, "", opts[i].help);
        else
            fprintf(out, "  %-26s  %s\n", label, opts[i].help);
    }
}

void cli_help(FILE *out, enum cli_cmd cmd) {
    const struct command *c = command_of(cmd);

    if (!c) {
        fprintf(out, "usage: jobctl [global options] COMMAND [options] [ARGS]\n\n%s\nCommands:\n",
                overview_text);
        for (size_t i = 0; i < N_COMMANDS; i++) {
            char name[32];
            snprintf(name, sizeof name, "%s%s%s", commands[i].name, commands[i].alias ? ", " : "",
                     commands[i].alias ? commands[i].alias : "");
            fprintf(out, "  %-14s  %s\n", name, commands[i].summary);
        }
        fputs("\nGlobal options (before or after the command):\n", out);
        help_opts(out, B(CMD_NONE), true);
        help_opts(out, B(CMD_NONE), false);
        fputs("\nEnvironment:\n"
              "  JOBD_URL     the server, when --server is not given\n"
              "  JOBD_TOKEN   the bearer token, when --token is not given\n"
              "  JOBD_CACERT  the CA file of an https:// server, when --cacert is not given\n"
              "               (neither: the system's CAs)\n"
              "\nExit status:\n",
              out);
        fputs(exit_text, out);
        fputs("\n`jobctl help COMMAND` or `jobctl COMMAND --help` shows a command's options.\n",
              out);
        return;
    }
    fprintf(out, "usage: jobctl %s\n\n%s.\n\n%s\n", c->usage, c->summary, c->text);
    if (cmd != CMD_HELP) {
        bool any = false;
        for (size_t i = 0; i < N_OPTS; i++)
            any = any || (opts[i].cmds != GLOBAL_CMDS && (opts[i].cmds & B(cmd)));
        if (any) {
            fputs("\nOptions:\n", out);
            help_opts(out, B(cmd), false);
        }
    }
    fputs("\nGlobal options:\n", out);
    help_opts(out, B(cmd), true);
    fputs("\nExit status: see `jobctl --help`.\n", out);
}

/* Write text escaped for roff: backslashes, dashes, and a leading dot or quote. */
static void roff(FILE *out, const char *s) {
    bool bol = true;

    for (; *s; s++) {
        if (bol && (*s == '.' || *s == '\''))
            fputs("\\&", out);
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
        bol = *s == '\n';
    }
}

static void man_opts(FILE *out, unsigned mask, bool global) {
    char label[64];

    for (size_t i = 0; i < N_OPTS; i++) {
        bool is_global = opts[i].cmds == GLOBAL_CMDS;
        if (is_global != global || !(opts[i].cmds & mask))
            continue;
        opt_label(&opts[i], label, sizeof label);
        fputs(".TP\n.B ", out);
        roff(out, label[0] == ' ' ? label + 4 : label);
        fputs("\n", out);
        roff(out, opts[i].help);
        fputs("\n", out);
    }
}

void cli_man(FILE *out) {
    fputs(".TH JOBCTL 1 \"\" \"jobctl " JOBD_VERSION "\" \"User Commands\"\n"
          ".SH NAME\njobctl \\- run and watch jobs on a jobd server\n"
          ".SH SYNOPSIS\n.B jobctl\n[global options] COMMAND [options] [ARGS]\n"
          ".SH DESCRIPTION\n",
          out);
    roff(out, overview_text);
    fputs(".SH COMMANDS\n", out);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct command *c = &commands[i];
        fputs(".SS \"", out);
        roff(out, c->name);
        if (c->alias) {
            fputs(", ", out);
            roff(out, c->alias);
        }
        fputs("\"\n.B jobctl ", out);
        roff(out, c->usage);
        fputs("\n.PP\n", out);
        roff(out, c->summary);
        fputs(".\n", out);
        roff(out, c->text);
        fputs("\n", out);
        man_opts(out, B(c->cmd), false);
    }
    fputs(".SH GLOBAL OPTIONS\n", out);
    man_opts(out, B(CMD_NONE), true);
    man_opts(out, B(CMD_NONE), false);
    fputs(".SH ENVIRONMENT\n.TP\n.B JOBD_URL\nthe server, when \\-\\-server is not given\n"
          ".TP\n.B JOBD_TOKEN\nthe bearer token, when \\-\\-token is not given\n"
          ".TP\n.B JOBD_CACERT\nthe CA file of an https:// server, when \\-\\-cacert is not "
          "given\n"
          ".SH EXIT STATUS\n.nf\n",
          out);
    roff(out, exit_text);
    fputs(".fi\n.SH SEE ALSO\n.BR jobd (8)\n", out);
}

/* ---- parsing ---- */

static int usage_err(char *msg, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int usage_err(char *msg, size_t n, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_parse_seconds(const char *s, double *out) {
    char *end;
    double d, mult = 1;

    errno = 0;
    d = strtod(s, &end);
    if (errno || end == s || !isfinite(d))
        return -1;
    if (*end) {
        switch (*end) {
        case 's':
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return -1;
        }
        if (end[1])
            return -1;
    }
    *out = d * mult;
    return 0;
}

static int parse_int(const char *s, int64_t *out) {
    char *end;
    long long n;

    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = n;
    return 0;
}

int cli_parse_size(const char *s, int64_t *out) {
    char *end;
    long long n;
    int shift = 0;

    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        case 't':
        case 'T':
            shift = 40;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'i' || *end == 'B')
            end += *end == 'i' && end[1] == 'B' ? 2 : 1;
        if (*end)
            return -1;
    }
    if (n > (INT64_MAX >> shift) || n < (INT64_MIN >> shift))
        return -1;
    *out = (int64_t)n * ((int64_t)1 << shift);
    return 0;
}

static int push(const char ***arr, size_t *n, const char *v) {
    const char **na = realloc(*arr, (*n + 1) * sizeof **arr);

    if (!na)
        return -1;
    na[(*n)++] = v;
    *arr = na;
    return 0;
}

/* Apply option o with value v (NULL for a flag) to c. Return 0 or EXIT_USAGE. */
static int apply(struct cli *c, const struct opt *o, const char *v, char *msg, size_t n) {
    double d;
    int64_t i;

#define SECONDS(field, has)                                                                        \
    do {                                                                                           \
        if (cli_parse_seconds(v, &d) < 0)                                                          \
            return usage_err(msg, n, "--%s: '%s' is not a number of seconds", o->lng, v);          \
        c->field = d;                                                                              \
        c->has = true;                                                                             \
    } while (0)
#define INTEGER(field, has)                                                                        \
    do {                                                                                           \
        if (parse_int(v, &i) < 0)                                                                  \
            return usage_err(msg, n, "--%s: '%s' is not an integer", o->lng, v);                   \
        c->field = i;                                                                              \
        c->has = true;                                                                             \
    } while (0)
    switch (o->id) {
    case O_HELP:
        c->help = true;
        break;
    case O_VERSION:
        c->version = true;
        break;
    case O_HELP_MAN:
        c->man = true;
        break;
    case O_SERVER:
        c->server = v;
        break;
    case O_TOKEN:
        c->token = v;
        break;
    case O_CACERT:
        c->cacert = v;
        break;
    case O_JSON:
        c->json = true;
        break;
    case O_CONNECT_TIMEOUT:
        if (cli_parse_seconds(v, &d) < 0 || d <= 0)
            return usage_err(msg, n, "--%s: '%s' is not a positive number of seconds", o->lng, v);
        c->connect_timeout = d;
        break;
    case O_SHELL:
        c->shell = v;
        break;
    case O_ENV:
        if (!*v || *v == '=')
            return usage_err(msg, n, "--env: '%s' is not K=V or K", v);
        if (push(&c->env, &c->n_env, v) < 0)
            return usage_err(msg, n, "out of memory");
        break;
    case O_LABEL:
        if (!strchr(v, '=') || *v == '=')
            return usage_err(msg, n, "--label: '%s' is not K=V", v);
        if (push(&c->labels, &c->n_labels, v) < 0)
            return usage_err(msg, n, "out of memory");
        break;
    case O_CWD:
        c->cwd = v;
        break;
    case O_STDIN:
        c->stdin_file = v;
        break;
    case O_TIMEOUT:
        SECONDS(timeout, has_timeout);
        break;
    case O_KILL_SIGNAL:
        c->kill_signal = v;
        break;
    case O_KILL_GRACE:
        SECONDS(kill_grace, has_kill_grace);
        break;
    case O_RETRIES:
        INTEGER(retries, has_retries);
        break;
    case O_RETRY_DELAY:
        SECONDS(retry_delay, has_retry_delay);
        break;
    case O_PRIORITY:
        INTEGER(priority, has_priority);
        break;
    case O_NAME:
        c->name = v;
        break;
    case O_IDEM:
        c->idem_key = v;
        break;
    case O_OUTPUT_BYTES:
    case O_MEMORY:
    case O_CPU:
    case O_FILES: {
        enum cli_limit l = o->id == O_OUTPUT_BYTES ? LIM_OUTPUT
                           : o->id == O_MEMORY     ? LIM_MEMORY
                           : o->id == O_CPU        ? LIM_CPU
                                                   : LIM_FILES;
        int rc = l == LIM_OUTPUT || l == LIM_MEMORY ? cli_parse_size(v, &i) : parse_int(v, &i);
        if (rc < 0)
            return usage_err(msg, n, "--%s: '%s' is not %s", o->lng, v,
                             l == LIM_OUTPUT || l == LIM_MEMORY ? "a size" : "an integer");
        c->limit[l] = i;
        c->has_limit[l] = true;
        break;
    }
    case O_WAIT_TIMEOUT:
        if (cli_parse_seconds(v, &d) < 0 || d < 0)
            return usage_err(msg, n, "--timeout: '%s' is not a number of seconds >= 0", v);
        c->wait_timeout = d;
        break;
    case O_FOLLOW:
        c->follow = true;
        break;
    case O_STDERR:
        c->err_stream = true;
        break;
    case O_STATE:
        c->state = v;
        break;
    case O_LIMIT:
        if (parse_int(v, &i) < 0 || i < 1)
            return usage_err(msg, n, "--limit: '%s' is not a positive integer", v);
        c->list_limit = (long)(i > 1000000000 ? 1000000000 : i);
        break;
    case O_ALL:
        c->all = true;
        break;
    case O_LNAME:
        c->list_name = v;
        break;
    case O_LLABEL:
        if (!strchr(v, '=') || *v == '=')
            return usage_err(msg, n, "--label: '%s' is not K=V", v);
        c->label = v;
        break;
    case O_PAGE_SIZE:
        if (parse_int(v, &i) < 0 || i < 1 || i > 1000)
            return usage_err(msg, n, "--page-size: '%s' is not an integer 1..1000", v);
        c->page_size = (long)i;
        break;
    case O_TASK:
        c->task = v;
        break;
    case O_ARGS:
        c->args = v;
        break;
    case O_EXECUTOR:
        if (strcmp(v, "process") != 0 && strcmp(v, "thread") != 0 && strcmp(v, "remote") != 0)
            return usage_err(msg, n, "--executor: '%s' is not process, thread or remote", v);
        c->executor = v;
        break;
    case O_NODE_SELECTOR:
        if (!strchr(v, '=') || *v == '=')
            return usage_err(msg, n, "--node-selector: '%s' is not K=V", v);
        if (push(&c->node_selector, &c->n_node_selector, v) < 0)
            return usage_err(msg, n, "out of memory");
        break;
    case O_LBATCH:
        c->list_batch = v;
        break;
    case O_WAIT:
        c->wait = true;
        break;
    case O_BWAIT_TIMEOUT:
        if (cli_parse_seconds(v, &d) < 0 || d < 0)
            return usage_err(msg, n, "--timeout: '%s' is not a number of seconds >= 0", v);
        c->wait_timeout = d;
        break;
    case O_CONCURRENCY:
        if (parse_int(v, &i) < 0 || i < 1 || i > 100000)
            return usage_err(msg, n, "--concurrency: '%s' is not an integer 1..100000", v);
        c->concurrency = (long)i;
        break;
    case O_BNAME:
        c->batch_name = v;
        break;
    }
#undef SECONDS
#undef INTEGER
    return 0;
}

static const struct opt *find_long(enum cli_cmd cmd, const char *name, size_t len) {
    for (size_t i = 0; i < N_OPTS; i++)
        if ((opts[i].cmds & B(cmd)) && strlen(opts[i].lng) == len &&
            strncmp(opts[i].lng, name, len) == 0)
            return &opts[i];
    return NULL;
}

static const struct opt *find_short(enum cli_cmd cmd, char ch) {
    for (size_t i = 0; i < N_OPTS; i++)
        if ((opts[i].cmds & B(cmd)) && opts[i].shrt == ch)
            return &opts[i];
    return NULL;
}

/*
 * Parse the options of `cmd` from argv[*i]. Positionals are collected in
 * pos; for run/submit (and before the command) the first positional ends
 * the options. Return 0 or EXIT_USAGE.
 */
static int parse_opts(struct cli *c, enum cli_cmd cmd, int argc, char **argv, int *i,
                      const char ***pos, size_t *npos, char *msg, size_t n) {
    const char *where = cmd == CMD_NONE ? "jobctl" : cli_cmd_name(cmd);
    bool stop_at_pos = cmd == CMD_NONE || cmd == CMD_RUN || cmd == CMD_SUBMIT;

    while (*i < argc) {
        const char *a = argv[*i];
        const struct opt *o;
        int rc;

        if (strcmp(a, "--") == 0) {
            (*i)++;
            if (stop_at_pos)
                return 0;
            while (*i < argc)
                if (push(pos, npos, argv[(*i)++]) < 0)
                    return usage_err(msg, n, "out of memory");
            return 0;
        }
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            o = find_long(cmd, a + 2, len);
            if (!o)
                return usage_err(msg, n, "%s: unknown option --%.*s", where, (int)len, a + 2);
            (*i)++;
            if (!o->arg && eq)
                return usage_err(msg, n, "%s: option --%s takes no value", where, o->lng);
            const char *val = eq ? eq + 1 : NULL;
            if (o->arg && !eq) {
                if (*i >= argc)
                    return usage_err(msg, n, "%s: option --%s needs a value (%s)", where, o->lng,
                                     o->arg);
                val = argv[(*i)++];
            }
            rc = apply(c, o, val, msg, n);
            if (rc)
                return rc;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            (*i)++;
            for (const char *p = a + 1; *p; p++) {
                const char *v = NULL;
                o = find_short(cmd, *p);
                if (!o)
                    return usage_err(msg, n, "%s: unknown option -%c", where, *p);
                if (o->arg) {
                    if (p[1]) {
                        v = p + 1;
                    } else {
                        if (*i >= argc)
                            return usage_err(msg, n, "%s: option -%c needs a value (%s)", where, *p,
                                             o->arg);
                        v = argv[(*i)++];
                    }
                }
                rc = apply(c, o, v, msg, n);
                if (rc)
                    return rc;
                if (v)
                    break;
            }
            continue;
        }
        if (stop_at_pos)
            return 0;
        if (push(pos, npos, a) < 0)
            return usage_err(msg, n, "out of memory");
        (*i)++;
    }
    return 0;
}

int cli_parse(int argc, char **argv, struct cli *out, char *msg, size_t n) {
    const char **pos = NULL;
    size_t npos = 0;
    int i = 1, rc;
    const char *name;

    memset(out, 0, sizeof *out);
    out->wait_timeout = -1;
    out->list_limit = 100;
    msg[0] = '\0';
    rc = parse_opts(out, CMD_NONE, argc, argv, &i, &pos, &npos, msg, n);
    if (rc || out->help || out->version || out->man)
        goto done;
    if (i >= argc) {
        rc = usage_err(msg, n, "no command given (try `jobctl --help`)");
        goto done;
    }
    name = argv[i++];
    out->cmd = cli_cmd_lookup(name);
    if (out->cmd == CMD_NONE) {
        rc = usage_err(msg, n, "unknown command '%s' (try `jobctl --help`)", name);
        goto done;
    }
    /*
     * "batch status ID", "batch cancel ID" and "nodes rm ID": the subcommand
     * comes right after its command.
     */
    if (out->cmd == CMD_BATCH && i < argc &&
        (strcmp(argv[i], "status") == 0 || strcmp(argv[i], "cancel") == 0)) {
        out->cmd = argv[i][0] == 's' ? CMD_BATCH_STATUS : CMD_BATCH_CANCEL;
        name = cli_cmd_name(out->cmd);
        i++;
    } else if (out->cmd == CMD_NODES && i < argc && strcmp(argv[i], "rm") == 0) {
        out->cmd = CMD_NODES_RM;
        name = cli_cmd_name(out->cmd);
        i++;
    }
    rc = parse_opts(out, out->cmd, argc, argv, &i, &pos, &npos, msg, n);
    if (rc || out->help)
        goto done;
    switch (out->cmd) {
    case CMD_RUN:
    case CMD_SUBMIT: {
        int kinds;
        out->argv = argv + i;
        out->argc = argc - i;
        kinds = (out->argc > 0) + (out->shell != NULL) + (out->task != NULL);
        if (kinds == 0)
            rc = usage_err(msg, n,
                           "%s: no command given (COMMAND [ARG...], --shell STRING or --task NAME)",
                           name);
        else if (kinds > 1)
            rc = usage_err(msg, n, "%s: give one of COMMAND, --shell STRING, --task NAME", name);
        else if (out->args && !out->task)
            rc = usage_err(msg, n, "%s: --args is the input of a task: give --task NAME", name);
        if (out->argc == 0)
            out->argv = NULL;
        break;
    }
    case CMD_BATCH:
        if (npos != 1)
            rc = usage_err(msg, n, "%s: expected one FILE (- for stdin), got %zu arguments", name,
                           npos);
        else
            out->file = pos[0];
        if (!rc && out->wait_timeout >= 0 && !out->wait)
            rc = usage_err(msg, n, "%s: --timeout is for --wait", name);
        break;
    case CMD_BATCH_STATUS:
    case CMD_BATCH_CANCEL:
        if (npos != 1)
            rc = usage_err(msg, n, "%s: expected one batch ID, got %zu arguments", name, npos);
        else
            out->id = pos[0];
        if (!rc && out->wait_timeout >= 0 && !out->wait)
            rc = usage_err(msg, n, "%s: --timeout is for --wait", name);
        break;
    case CMD_STATUS:
    case CMD_WAIT:
    case CMD_LOGS:
    case CMD_CANCEL:
    case CMD_RM:
        if (npos != 1)
            rc = usage_err(msg, n, "%s: expected one job ID, got %zu arguments", name, npos);
        else
            out->id = pos[0];
        break;
    case CMD_NODE:
    case CMD_DRAIN:
    case CMD_NODES_RM:
        if (npos != 1)
            rc = usage_err(msg, n, "%s: expected one NODE id, got %zu arguments", name, npos);
        else
            out->id = pos[0];
        break;
    case CMD_NODES:
    case CMD_LIST:
    case CMD_HEALTH:
    case CMD_TASKS:
        if (npos)
            rc = usage_err(msg, n, "%s: unexpected argument '%s'", name, pos[0]);
        break;
    case CMD_HELP: {
        /* One word, or two for a subcommand ("help batch status"). */
        char two[64];
        const char *topic = npos ? pos[0] : NULL;
        if (npos == 2) {
            snprintf(two, sizeof two, "%s %s", pos[0], pos[1]);
            topic = two;
        }
        if (npos > 2)
            rc = usage_err(msg, n, "help: expected at most one command name");
        else if (topic && cli_cmd_lookup(topic) == CMD_NONE)
            rc = usage_err(msg, n, "help: unknown command '%s'", topic);
        else
            out->topic = npos == 2 ? cli_cmd_name(cli_cmd_lookup(topic)) : topic;
        break;
    }
    default:
        break;
    }
done:
    free(pos);
    return rc;
}

void cli_free(struct cli *c) {
    free(c->env);
    free(c->labels);
    free(c->node_selector);
    c->env = NULL;
    c->labels = NULL;
    c->node_selector = NULL;
    c->n_env = c->n_labels = c->n_node_selector = 0;
}

/* ---- the spec ---- */

/* Set key to a new value; a NULL value means memory ran out. */
static int set_new(json_t *o, const char *key, json_t *v) {
    return v ? json_object_set_new(o, key, v) : -1;
}

static json_t *seconds_value(double d) {
    if (d > -1e15 && d < 1e15 && d == (double)(long long)d)
        return json_integer((json_int_t)d);
    return json_real(d);
}

static json_t *kv_object(const char **kvs, size_t n, bool from_env, const char *field,
                         struct jobd_error *err) {
    json_t *o = json_object();

    for (size_t i = 0; o && i < n; i++) {
        const char *eq = strchr(kvs[i], '=');
        char key[256];
        const char *val;
        size_t klen = eq ? (size_t)(eq - kvs[i]) : strlen(kvs[i]);

        if (klen >= sizeof key) {
            jobd_error_set(err, field, "a key of %zu bytes is too long", klen);
            json_decref(o);
            return NULL;
        }
        memcpy(key, kvs[i], klen);
        key[klen] = '\0';
        val = eq ? eq + 1 : (from_env ? getenv(key) : NULL);
        if (!val) {
            jobd_error_set(err, field, "%s is not set in jobctl's environment", key);
            json_decref(o);
            return NULL;
        }
        json_t *s = json_string(val);
        if (!s) {
            jobd_error_set(err, field, "the value of %s is not UTF-8", key);
            json_decref(o);
            return NULL;
        }
        if (json_object_set_new(o, key, s) != 0) {
            jobd_error_set(err, field, "the key %s is not UTF-8", key);
            json_decref(o);
            return NULL;
        }
    }
    if (!o)
        jobd_error_set(err, NULL, "out of memory");
    return o;
}

json_t *cli_spec(const struct cli *c, const char *stdin_data, size_t len, struct jobd_error *err) {
    static const char *const limit_names[LIM_COUNT] = {"output_bytes", "memory_bytes",
                                                       "cpu_seconds", "open_files"};
    json_t *o = json_object(), *v;
    struct jobd_spec spec;

    memset(err, 0, sizeof *err);
    if (!o)
        goto nomem;
    if (c->shell) {
        v = json_string(c->shell);
        if (!v) {
            jobd_error_set(err, "shell", "must be UTF-8 text");
            goto fail;
        }
        if (json_object_set_new(o, "shell", v) != 0)
            goto nomem;
    } else if (c->task) {
        v = json_string(c->task);
        if (!v) {
            jobd_error_set(err, "task", "must be UTF-8 text");
            goto fail;
        }
        if (json_object_set_new(o, "task", v) != 0)
            goto nomem;
        if (c->args) {
            json_error_t jerr;
            v = json_loads(c->args, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
            if (!v) {
                jobd_error_set(err, "args", "not JSON: %s (column %d)", jerr.text, jerr.column);
                goto fail;
            }
            if (json_object_set_new(o, "args", v) != 0)
                goto nomem;
        }
    } else {
        json_t *a = json_array();
        if (!a || json_object_set_new(o, "command", a) != 0)
            goto nomem;
        for (int i = 0; i < c->argc; i++) {
            v = json_string(c->argv[i]);
            if (!v) {
                jobd_error_set(err, "command", "argument %d is not UTF-8 text", i);
                goto fail;
            }
            if (json_array_append_new(a, v) != 0)
                goto nomem;
        }
    }
    if (stdin_data) {
        v = json_stringn(stdin_data, len);
        if (!v) {
            jobd_error_set(err, "stdin", "must be UTF-8 text (%zu bytes read)", len);
            goto fail;
        }
        if (json_object_set_new(o, "stdin", v) != 0)
            goto nomem;
    }
    if (c->n_env) {
        v = kv_object(c->env, c->n_env, true, "env", err);
        if (!v || json_object_set_new(o, "env", v) != 0)
            goto fail;
    }
    if (c->n_labels) {
        v = kv_object(c->labels, c->n_labels, false, "labels", err);
        if (!v || json_object_set_new(o, "labels", v) != 0)
            goto fail;
    }
    if (c->n_node_selector) {
        v = kv_object(c->node_selector, c->n_node_selector, false, "node_selector", err);
        if (!v || json_object_set_new(o, "node_selector", v) != 0)
            goto fail;
    }
#define STR(key, val)                                                                              \
    do {                                                                                           \
        if (val) {                                                                                 \
            v = json_string(val);                                                                  \
            if (!v) {                                                                              \
                jobd_error_set(err, key, "must be UTF-8 text");                                    \
                goto fail;                                                                         \
            }                                                                                      \
            if (json_object_set_new(o, key, v) != 0)                                               \
                goto nomem;                                                                        \
        }                                                                                          \
    } while (0)
    STR("executor", c->executor);
    STR("cwd", c->cwd);
    STR("kill_signal", c->kill_signal);
    STR("name", c->name);
#undef STR
    if ((c->has_timeout && set_new(o, "timeout", seconds_value(c->timeout)) != 0) ||
        (c->has_kill_grace && set_new(o, "kill_grace", seconds_value(c->kill_grace)) != 0) ||
        (c->has_retry_delay && set_new(o, "retry_delay", seconds_value(c->retry_delay)) != 0) ||
        (c->has_retries && set_new(o, "retries", json_integer(c->retries)) != 0) ||
        (c->has_priority && set_new(o, "priority", json_integer(c->priority)) != 0))
        goto nomem;
    for (int l = 0; l < LIM_COUNT; l++) {
        json_t *lim;
        if (!c->has_limit[l])
            continue;
        lim = json_object_get(o, "limits");
        if (!lim && set_new(o, "limits", json_object()) != 0)
            goto nomem;
        lim = json_object_get(o, "limits");
        if (set_new(lim, limit_names[l], json_integer(c->limit[l])) != 0)
            goto nomem;
    }
    /* Check it here, so that a bad value is shown with its field before any traffic. */
    if (jobd_spec_parse(o, &spec, err) < 0)
        goto fail;
    jobd_spec_free(&spec);
    return o;
nomem:
    jobd_error_set(err, NULL, "out of memory");
fail:
    json_decref(o);
    return NULL;
}

/* ---- batch files ---- */

/*
 * Check the spec (borrowed) at `index` of a batch, found on `line` (0 when
 * unknown). Return 0, or -EINVAL with *err naming the spec and its field.
 */
static int check_batch_spec(const json_t *spec, size_t index, size_t line, struct jobd_error *err) {
    struct jobd_error e;
    struct jobd_spec s;
    char field[sizeof err->field + 64], where[48]; /* jobd_error_set truncates field */

    if (line)
        snprintf(where, sizeof where, "line %zu", line);
    else
        snprintf(where, sizeof where, "jobs[%zu]", index);
    if (!json_is_object(spec)) {
        snprintf(field, sizeof field, "jobs[%zu]", index);
        return jobd_error_set(err, field, "%s: a job spec must be a JSON object", where);
    }
    if (jobd_spec_parse(spec, &s, &e) < 0) {
        if (e.field[0])
            snprintf(field, sizeof field, "jobs[%zu].%s", index, e.field);
        else
            snprintf(field, sizeof field, "jobs[%zu]", index);
        if (line)
            return jobd_error_set(err, field, "%s: %s%s%s", where, e.field, e.field[0] ? ": " : "",
                                  e.message);
        return jobd_error_set(err, field, "%s: %s", field, e.message);
    }
    jobd_spec_free(&s);
    return 0;
}

/* Whether the n bytes at p hold only blanks (a blank line of JSON lines). */
static bool blank(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    return true;
}

json_t *cli_batch_specs(const char *text, size_t len, size_t **lines, struct jobd_error *err) {
    json_t *arr = NULL, *spec;
    json_error_t jerr;
    size_t *at = NULL, n = 0, cap = 0, k = 0;

    memset(err, 0, sizeof *err);
    while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n'))
        k++;
    if (k < len && text[k] == '[') {
        /* The array form: one JSON document. */
        arr = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!arr) {
            jobd_error_set(err, NULL, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
            return NULL;
        }
        n = json_array_size(arr);
        at = calloc(n ? n : 1, sizeof *at);
        if (!at)
            goto nomem;
    } else {
        /* JSON lines: one spec per line. */
        size_t lineno = 0;
        arr = json_array();
        if (!arr)
            goto nomem;
        for (const char *p = text, *end = text + len; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
            lineno++;
            if (!blank(p, ll)) {
                spec = json_loadb(p, ll, JSON_REJECT_DUPLICATES, &jerr);
                if (!spec) {
                    jobd_error_set(err, NULL, "line %zu: not JSON: %s (column %d)", lineno,
                                   jerr.text, jerr.column);
                    goto fail;
                }
                if (n == cap) {
                    size_t *na = realloc(at, (cap ? cap * 2 : 64) * sizeof *at);
                    if (!na) {
                        json_decref(spec);
                        goto nomem;
                    }
                    at = na;
                    cap = cap ? cap * 2 : 64;
                }
                if (json_array_append_new(arr, spec) != 0)
                    goto nomem;
                at[n++] = lineno;
            }
            p += ll + 1;
        }
    }
    if (n == 0) {
        jobd_error_set(err, "jobs", "no job specs found");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (check_batch_spec(json_array_get(arr, i), i, at[i], err) < 0)
            goto fail;
    if (lines)
        *lines = at;
    else
        free(at);
    return arr;
nomem:
    jobd_error_set(err, NULL, "out of memory");
fail:
    free(at);
    json_decref(arr);
    return NULL;
}
