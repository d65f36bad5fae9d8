/*
 * test_jobctl_cli.c: jobctl's command line (client/cli.c): commands and
 * aliases, options before and after the command, values, errors with
 * EXIT_USAGE, the job spec built from options (commands and tasks), the
 * batch commands and their files (JSON array or JSON lines), the node
 * commands and remote jobs, and the help texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAXARGS 32

/* Parse a NULL-terminated list of words (argv[0] is added). */
static int parse(struct cli *c, char *msg, const char *first, ...) {
    static char *argv[MAXARGS];
    va_list ap;
    int argc = 0;

    argv[argc++] = "jobctl";
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return cli_parse(argc, argv, c, msg, 256);
}

static void test_run_command_after_dashdash(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "run", "--timeout", "5m", "-e", "A=1", "-eB=2", "--", "ls",
                           "-l", "--json", NULL),
                     0);
    assert_int_equal(c.cmd, CMD_RUN);
    assert_int_equal(c.argc, 3);
    assert_string_equal(c.argv[0], "ls");
    assert_string_equal(c.argv[1], "-l");
    assert_string_equal(c.argv[2], "--json"); /* after --, the command's own */
    assert_false(c.json);
    assert_true(c.has_timeout);
    assert_true(c.timeout == 300.0);
    assert_int_equal(c.n_env, 2);
    assert_string_equal(c.env[1], "B=2");
    cli_free(&c);
}

static void test_run_first_word_starts_the_command(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "run", "--name", "n", "sh", "-c", "exit 3", NULL), 0);
    assert_int_equal(c.argc, 3);
    assert_string_equal(c.argv[1], "-c");
    assert_string_equal(c.name, "n");
    cli_free(&c);
}

static void test_global_options_anywhere(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "--server", "http://h:1", "list", "--json", "--token=t",
                           "--state", "failed,timed_out", "-n", "7", NULL),
                     0);
    assert_int_equal(c.cmd, CMD_LIST);
    assert_string_equal(c.server, "http://h:1");
    assert_string_equal(c.token, "t");
    assert_true(c.json);
    assert_string_equal(c.state, "failed,timed_out");
    assert_int_equal(c.list_limit, 7);
    cli_free(&c);
}

static void test_aliases_and_ids(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "get", "j1", NULL), 0);
    assert_int_equal(c.cmd, CMD_STATUS);
    assert_string_equal(c.id, "j1");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "logs", "j2", "-f", "--stderr", NULL), 0);
    assert_int_equal(c.cmd, CMD_LOGS);
    assert_true(c.follow);
    assert_true(c.err_stream);
    assert_string_equal(c.id, "j2");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "wait", "--timeout", "1.5", "j3", NULL), 0);
    assert_true(c.wait_timeout == 1.5);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "wait", "j3", NULL), 0);
    assert_true(c.wait_timeout < 0);
    cli_free(&c);
}

/* Usage errors: input and the start of the message. */
static const struct {
    const char *args[6];
    const char *msg;
} bad[] = {
    {{NULL}, "no command given"},
    {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
    {{"run", NULL}, "run: no command given"},
    {{"run", "--shell", "x", "ls", NULL}, "run: give one of COMMAND, --shell STRING, --task"},
    {{"run", "--task", "echo", "ls", NULL}, "run: give one of COMMAND"},
    {{"submit", "--task", "echo", "--shell", "x", NULL}, "submit: give one of COMMAND"},
    {{"submit", "--args", "{}", "true", NULL}, "submit: --args is the input of a task"},
    {{"run", "--executor", "gpu", "--task", "echo", NULL}, "--executor: 'gpu' is not process,"},
    {{"submit", "--node-selector", "gpu", "true", NULL}, "--node-selector: 'gpu' is not K=V"},
    {{"submit", "--node-selector", "=yes", "true", NULL}, "--node-selector: '=yes' is not K=V"},
    {{"nodes", "n1", NULL}, "nodes: unexpected argument 'n1'"},
    {{"nodes", "--state", "ready", NULL}, "nodes: unknown option --state"},
    {{"node", NULL}, "node: expected one NODE id, got 0"},
    {{"drain", "n1", "n2", NULL}, "drain: expected one NODE id, got 2"},
    {{"nodes", "rm", NULL}, "nodes rm: expected one NODE id, got 0"},
    {{"list", "--node-selector", "a=b", NULL}, "list: unknown option --node-selector"},
    {{"run", "--task", NULL}, "run: option --task needs a value"},
    {{"tasks", "echo", NULL}, "tasks: unexpected argument 'echo'"},
    {{"tasks", "--wait", NULL}, "tasks: unknown option --wait"},
    {{"batch", NULL}, "batch: expected one FILE (- for stdin), got 0"},
    {{"batch", "a.json", "b.json", NULL}, "batch: expected one FILE (- for stdin), got 2"},
    {{"batch", "-c", "0", "f", NULL}, "--concurrency: '0' is not an integer 1..100000"},
    {{"batch", "--concurrency", "100001", "f", NULL}, "--concurrency: '100001' is not"},
    {{"batch", "--timeout", "5", "f", NULL}, "batch: --timeout is for --wait"},
    {{"batch", "--shell", "x", "f", NULL}, "batch: unknown option --shell"},
    {{"batch", "status", NULL}, "batch status: expected one batch ID, got 0"},
    {{"batch", "status", "--timeout", "x", "b1", NULL}, "--timeout: 'x' is not a number"},
    {{"batch", "cancel", "--wait", "b1", NULL}, "batch cancel: unknown option --wait"},
    {{"batch", "cancel", "b1", "b2", NULL}, "batch cancel: expected one batch ID, got 2"},
    {{"help", "batch", "frob", NULL}, "help: unknown command 'batch frob'"},
    {{"status", NULL}, "status: expected one job ID"},
    {{"status", "j1", "j2", NULL}, "status: expected one job ID"},
    {{"list", "--bogus", NULL}, "list: unknown option --bogus"},
    {{"list", "-z", NULL}, "list: unknown option -z"},
    {{"list", "--limit", NULL}, "list: option --limit needs a value"},
    {{"list", "--limit", "0", NULL}, "--limit: '0' is not a positive integer"},
    {{"list", "--json=yes", NULL}, "list: option --json takes no value"},
    {{"list", "--label", "novalue", NULL}, "--label: 'novalue' is not K=V"},
    {{"run", "--timeout", "soon", "true", NULL}, "--timeout: 'soon' is not a number"},
    {{"run", "--retries", "1.5", "true", NULL}, "--retries: '1.5' is not an integer"},
    {{"run", "--memory", "12X", "true", NULL}, "--memory: '12X' is not a size"},
    {{"run", "-e", "=x", "true", NULL}, "--env: '=x' is not K=V or K"},
    {{"logs", "--follow", "--timeout", "3", "j1", NULL}, "logs: unknown option --timeout"},
    {{"status", "--stderr", "j1", NULL}, "status: unknown option --stderr"},
    {{"help", "nope", NULL}, "help: unknown command 'nope'"},
    {{"--version", NULL}, NULL}, /* fine */
};

static void test_usage_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[8] = {"jobctl"};
        int argc = 1;
        struct cli c;
        char msg[256];
        for (int k = 0; bad[i].args[k]; k++)
            argv[argc++] = (char *)bad[i].args[k];
        int rc = cli_parse(argc, argv, &c, msg, sizeof msg);
        if (!bad[i].msg) {
            assert_int_equal(rc, 0);
        } else {
            if (rc != EXIT_USAGE || strncmp(msg, bad[i].msg, strlen(bad[i].msg)) != 0)
                fail_msg("case %zu: rc %d, message '%s', expected '%s'", i, rc, msg, bad[i].msg);
        }
        cli_free(&c);
    }
}

static void test_task_options_make_a_task_spec(void **state) {
    struct cli c;
    char msg[256];
    struct jobd_error err;
    json_t *spec;
    (void)state;
    assert_int_equal(parse(&c, msg, "run", "--task", "echo", "--args", "{\"a\": [1, null]}",
                           "--executor", "process", "--timeout", "9", NULL),
                     0);
    assert_int_equal(c.cmd, CMD_RUN);
    assert_string_equal(c.task, "echo");
    assert_string_equal(c.executor, "process");
    assert_int_equal(c.argc, 0);
    assert_null(c.argv);
    spec = cli_spec(&c, NULL, 0, &err);
    assert_non_null(spec);
    assert_string_equal(json_string_value(json_object_get(spec, "task")), "echo");
    assert_string_equal(json_string_value(json_object_get(spec, "executor")), "process");
    json_t *args = json_object_get(spec, "args");
    assert_true(json_is_null(json_array_get(json_object_get(args, "a"), 1)));
    assert_null(json_object_get(spec, "command"));
    json_decref(spec);
    cli_free(&c);
    /* Any JSON value is an input; no --args sends none. */
    assert_int_equal(parse(&c, msg, "submit", "--task", "sleep", "--args", "3", NULL), 0);
    spec = cli_spec(&c, NULL, 0, &err);
    assert_int_equal(json_integer_value(json_object_get(spec, "args")), 3);
    json_decref(spec);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "submit", "--task", "sleep", NULL), 0);
    spec = cli_spec(&c, NULL, 0, &err);
    assert_null(json_object_get(spec, "args"));
    json_decref(spec);
    cli_free(&c);
}

/* Spec errors of tasks: args that are not JSON, a bad name, thread for a command. */
static void test_task_spec_errors_name_the_field(void **state) {
    static const struct {
        const char *args[8];
        const char *field, *msg;
    } cases[] = {
        {{"run", "--task", "echo", "--args", "{bad", NULL}, "args", "not JSON"},
        {{"run", "--task", "echo", "--args", "{\"a\":1,\"a\":2}", NULL}, "args", "not JSON"},
        {{"run", "--task", "bad name!", NULL}, "task", NULL},
        {{"run", "--executor", "thread", "--", "true", NULL}, "executor", "thread runs tasks"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[10] = {"jobctl"};
        int argc = 1;
        struct cli c;
        char msg[256];
        struct jobd_error err;
        for (int k = 0; cases[i].args[k]; k++)
            argv[argc++] = (char *)cases[i].args[k];
        assert_int_equal(cli_parse(argc, argv, &c, msg, sizeof msg), 0);
        json_t *spec = cli_spec(&c, NULL, 0, &err);
        if (spec || strcmp(err.field, cases[i].field) != 0 ||
            (cases[i].msg && !strstr(err.message, cases[i].msg)))
            fail_msg("case %zu: field '%s' (%s), expected '%s'", i, err.field, err.message,
                     cases[i].field);
        cli_free(&c);
    }
}

static void test_batch_commands(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "batch", "--wait", "-c", "4", "--name", "nightly", "--timeout",
                           "2m", "-", NULL),
                     0);
    assert_int_equal(c.cmd, CMD_BATCH);
    assert_string_equal(c.file, "-");
    assert_int_equal(c.concurrency, 4);
    assert_string_equal(c.batch_name, "nightly");
    assert_null(c.name); /* the batch's name, not a job's */
    assert_true(c.wait);
    assert_true(c.wait_timeout == 120);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "--json", "batch", "specs.jsonl", NULL), 0);
    assert_int_equal(c.cmd, CMD_BATCH);
    assert_string_equal(c.file, "specs.jsonl");
    assert_int_equal(c.concurrency, 0);
    assert_false(c.wait);
    assert_true(c.wait_timeout < 0);
    cli_free(&c);
    /* The subcommand word comes right after "batch"; a file of that name is ./status. */
    assert_int_equal(parse(&c, msg, "batch", "status", "--wait", "b12", "--json", NULL), 0);
    assert_int_equal(c.cmd, CMD_BATCH_STATUS);
    assert_string_equal(c.id, "b12");
    assert_true(c.wait);
    assert_true(c.json);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "batch", "cancel", "b3", NULL), 0);
    assert_int_equal(c.cmd, CMD_BATCH_CANCEL);
    assert_string_equal(c.id, "b3");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "batch", "./status", NULL), 0);
    assert_int_equal(c.cmd, CMD_BATCH);
    assert_string_equal(c.file, "./status");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "list", "--batch", "b3", NULL), 0);
    assert_string_equal(c.list_batch, "b3");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "tasks", "--json", NULL), 0);
    assert_int_equal(c.cmd, CMD_TASKS);
    cli_free(&c);
    /* Help of a subcommand: two words, or --help after it. */
    assert_int_equal(parse(&c, msg, "help", "batch", "cancel", NULL), 0);
    assert_int_equal(c.cmd, CMD_HELP);
    assert_string_equal(c.topic, "batch cancel");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "batch", "status", "--help", NULL), 0);
    assert_true(c.help);
    assert_int_equal(c.cmd, CMD_BATCH_STATUS);
    cli_free(&c);
    assert_int_equal(cli_cmd_lookup("batch status"), CMD_BATCH_STATUS);
    assert_string_equal(cli_cmd_name(CMD_BATCH_CANCEL), "batch cancel");
}

static void test_node_commands(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "nodes", "--json", NULL), 0);
    assert_int_equal(c.cmd, CMD_NODES);
    assert_true(c.json);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "node", "n0123456789abcdef", NULL), 0);
    assert_int_equal(c.cmd, CMD_NODE);
    assert_string_equal(c.id, "n0123456789abcdef");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "drain", "gpu-1", "--json", NULL), 0);
    assert_int_equal(c.cmd, CMD_DRAIN);
    assert_string_equal(c.id, "gpu-1");
    cli_free(&c);
    /* The subcommand word comes right after "nodes", as for "batch". */
    assert_int_equal(parse(&c, msg, "nodes", "rm", "gpu-1", NULL), 0);
    assert_int_equal(c.cmd, CMD_NODES_RM);
    assert_string_equal(c.id, "gpu-1");
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "help", "nodes", "rm", NULL), 0);
    assert_string_equal(c.topic, "nodes rm");
    cli_free(&c);
    assert_int_equal(cli_cmd_lookup("nodes rm"), CMD_NODES_RM);
    assert_string_equal(cli_cmd_name(CMD_DRAIN), "drain");
}

static void test_remote_spec_from_options(void **state) {
    struct cli c;
    char msg[256];
    struct jobd_error err;
    json_t *spec, *sel;
    (void)state;
    assert_int_equal(parse(&c, msg, "submit", "--executor", "remote", "--node-selector", "gpu=yes",
                           "--node-selector", "zone=a=b", "--", "nvidia-smi", NULL),
                     0);
    assert_int_equal(c.n_node_selector, 2);
    spec = cli_spec(&c, NULL, 0, &err);
    assert_non_null(spec);
    assert_string_equal(json_string_value(json_object_get(spec, "executor")), "remote");
    sel = json_object_get(spec, "node_selector");
    assert_int_equal(json_object_size(sel), 2);
    assert_string_equal(json_string_value(json_object_get(sel, "gpu")), "yes");
    assert_string_equal(json_string_value(json_object_get(sel, "zone")), "a=b");
    json_decref(spec);
    cli_free(&c);
    /* A selector key breaks the label rules: the field is named before any traffic. */
    assert_int_equal(
        parse(&c, msg, "run", "--executor", "remote", "--node-selector", "bad key=1", "true", NULL),
        0);
    spec = cli_spec(&c, NULL, 0, &err);
    assert_null(spec);
    assert_non_null(strstr(err.field, "node_selector"));
    cli_free(&c);
}

/*
 * Batch files, as data: the input, then the specs expected (their lines, 0
 * for the array form), or the error's field and the start of its message.
 */
static const struct {
    const char *in;
    size_t n;
    size_t lines[3];
    const char *field, *msg;
} batch_files[] = {
    {"[{\"command\":[\"true\"]}, {\"task\":\"echo\",\"args\":1}]", 2, {0, 0}, NULL, NULL},
    {"\n  [\n{\"shell\":\"x\"}\n]\n", 1, {0}, NULL, NULL},
    {"{\"command\":[\"a\"]}\r\n\r\n  \t\n{\"shell\":\"x\"}\n", 2, {1, 4}, NULL, NULL},
    {"\n{\"shell\":\"x\"}\n{\"task\":\"echo\"}", 2, {2, 3}, NULL, NULL}, /* no final newline */
    /* JSON lines: the bad line is named. */
    {"{\"command\":[\"a\"]}\n{bad\n{\"shell\":\"x\"}\n", 0, {0}, "", "line 2: not JSON: "},
    {"{\"command\":[\"a\"]} {\"command\":[\"b\"]}\n", 0, {0}, "", "line 1: not JSON: "},
    {"{\"shell\":\"a\",\"shell\":\"b\"}\n", 0, {0}, "", "line 1: not JSON: duplicate"},
    {"{\"shell\":\"a\"}\n\n[1]\n", 0, {0}, "jobs[1]", "line 3: a job spec must be a JSON object"},
    {"\n{\"shell\":\"a\"}\n{\"shell\":\"a\",\"timeout\":-1}\n",
     0,
     {0},
     "jobs[1].timeout",
     "line 3: timeout: "},
    {"{\"shell\":\"a\",\"bogus\":1}\n", 0, {0}, "jobs[0].bogus", "line 1: bogus: "},
    /* The array form: jansson's line and column, or the spec's index. */
    {"[{\"shell\":\"a\"},\n {\"shell\":", 0, {0}, "", "line 2, column "},
    {"[{\"shell\":\"a\"}, 3]", 0, {0}, "jobs[1]", "jobs[1]: a job spec must be a JSON object"},
    {"[{\"command\":[1]}]", 0, {0}, "jobs[0].command[0]", "jobs[0].command[0]: "},
    /* Nothing to submit. */
    {"", 0, {0}, "jobs", "no job specs found"},
    {"\n \n\n", 0, {0}, "jobs", "no job specs found"},
    {"[]", 0, {0}, "jobs", "no job specs found"},
};

static void test_batch_files(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof batch_files / sizeof batch_files[0]; i++) {
        struct jobd_error err;
        size_t *lines = NULL;
        json_t *specs = cli_batch_specs(batch_files[i].in, strlen(batch_files[i].in), &lines, &err);
        if (!batch_files[i].msg) {
            if (!specs)
                fail_msg("case %zu: %s (field '%s')", i, err.message, err.field);
            assert_int_equal(json_array_size(specs), batch_files[i].n);
            for (size_t k = 0; k < batch_files[i].n; k++) {
                assert_true(json_is_object(json_array_get(specs, k)));
                if (lines[k] != batch_files[i].lines[k])
                    fail_msg("case %zu: spec %zu on line %zu, expected %zu", i, k, lines[k],
                             batch_files[i].lines[k]);
            }
            json_decref(specs);
            free(lines);
            continue;
        }
        if (specs || strcmp(err.field, batch_files[i].field) != 0 ||
            strncmp(err.message, batch_files[i].msg, strlen(batch_files[i].msg)) != 0)
            fail_msg("case %zu: field '%s', message '%s'; expected '%s', '%s'", i, err.field,
                     err.message, batch_files[i].field, batch_files[i].msg);
        assert_null(lines);
    }
}

static void test_help_flags(void **state) {
    struct cli c;
    char msg[256];
    (void)state;
    assert_int_equal(parse(&c, msg, "run", "--help", NULL), 0);
    assert_true(c.help);
    assert_int_equal(c.cmd, CMD_RUN);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "-h", NULL), 0);
    assert_true(c.help);
    assert_int_equal(c.cmd, CMD_NONE);
    cli_free(&c);
    assert_int_equal(parse(&c, msg, "help", "get", NULL), 0);
    assert_int_equal(c.cmd, CMD_HELP);
    assert_string_equal(c.topic, "get");
    cli_free(&c);
}

static void test_seconds_and_sizes(void **state) {
    double d;
    int64_t n;
    (void)state;
    assert_int_equal(cli_parse_seconds("90", &d), 0);
    assert_true(d == 90);
    assert_int_equal(cli_parse_seconds("1.5m", &d), 0);
    assert_true(d == 90);
    assert_int_equal(cli_parse_seconds("2h", &d), 0);
    assert_true(d == 7200);
    assert_int_equal(cli_parse_seconds("-1", &d), 0);
    assert_true(d == -1);
    assert_int_equal(cli_parse_seconds("1x", &d), -1);
    assert_int_equal(cli_parse_seconds("1ms", &d), -1);
    assert_int_equal(cli_parse_seconds("", &d), -1);
    assert_int_equal(cli_parse_seconds("inf", &d), -1);
    assert_int_equal(cli_parse_size("512", &n), 0);
    assert_int_equal(n, 512);
    assert_int_equal(cli_parse_size("64K", &n), 0);
    assert_int_equal(n, 65536);
    assert_int_equal(cli_parse_size("2G", &n), 0);
    assert_int_equal(n, 2147483648LL);
    assert_int_equal(cli_parse_size("1MiB", &n), 0);
    assert_int_equal(n, 1048576);
    assert_int_equal(cli_parse_size("9999999999T", &n), -1);
    assert_int_equal(cli_parse_size("1Q", &n), -1);
}

static void test_spec_from_options(void **state) {
    struct cli c;
    char msg[256];
    struct jobd_error err;
    json_t *spec;
    (void)state;
    setenv("JOBCTL_TEST_VAR", "from-env", 1);
    assert_int_equal(parse(&c, msg, "submit", "-e", "A=1", "-e", "JOBCTL_TEST_VAR", "-l", "team=x",
                           "--timeout", "2.5", "--retries", "2", "--priority", "-3", "--memory",
                           "1G", "--open-files", "64", "--kill-signal", "INT", "--cwd", "/tmp",
                           "--name", "nm", "--", "echo", "hi", NULL),
                     0);
    spec = cli_spec(&c, "in\n", 3, &err);
    assert_non_null(spec);
    assert_string_equal(json_string_value(json_array_get(json_object_get(spec, "command"), 1)),
                        "hi");
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "env"), "A")), "1");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(spec, "env"), "JOBCTL_TEST_VAR")),
        "from-env");
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "labels"), "team")),
                        "x");
    assert_true(json_real_value(json_object_get(spec, "timeout")) == 2.5);
    assert_int_equal(json_integer_value(json_object_get(spec, "retries")), 2);
    assert_int_equal(json_integer_value(json_object_get(spec, "priority")), -3);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(spec, "limits"), "memory_bytes")),
        1073741824LL);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(spec, "limits"), "open_files")), 64);
    assert_string_equal(json_string_value(json_object_get(spec, "stdin")), "in\n");
    assert_null(json_object_get(spec, "shell"));
    json_decref(spec);
    cli_free(&c);
}

/* Spec errors are caught before any traffic, naming the field. */
static const struct {
    const char *opt, *val, *field;
} bad_spec[] = {
    {"--timeout", "-1", "timeout"},           {"--priority", "101", "priority"},
    {"--retries", "-2", "retries"},           {"--cwd", "relative", "cwd"},
    {"--kill-signal", "NOPE", "kill_signal"}, {"--memory", "-5", "limits.memory_bytes"},
    {"-e", "UNSET_IN_JOBCTL_TESTS", "env"},
};

static void test_spec_errors_name_the_field(void **state) {
    (void)state;
    unsetenv("UNSET_IN_JOBCTL_TESTS");
    for (size_t i = 0; i < sizeof bad_spec / sizeof bad_spec[0]; i++) {
        struct cli c;
        char msg[256];
        struct jobd_error err;
        assert_int_equal(parse(&c, msg, "run", bad_spec[i].opt, bad_spec[i].val, "true", NULL), 0);
        json_t *spec = cli_spec(&c, NULL, 0, &err);
        if (spec || strcmp(err.field, bad_spec[i].field) != 0)
            fail_msg("%s %s: field '%s' (%s), expected '%s'", bad_spec[i].opt, bad_spec[i].val,
                     err.field, err.message, bad_spec[i].field);
        cli_free(&c);
    }
}

static void test_spec_stdin_must_be_utf8(void **state) {
    struct cli c;
    char msg[256];
    struct jobd_error err;
    (void)state;
    assert_int_equal(parse(&c, msg, "run", "--shell", "cat", NULL), 0);
    assert_null(cli_spec(&c, "\xff\xfe", 2, &err));
    assert_string_equal(err.field, "stdin");
    json_t *spec = cli_spec(&c, NULL, 0, &err);
    assert_string_equal(json_string_value(json_object_get(spec, "shell")), "cat");
    json_decref(spec);
    cli_free(&c);
}

/* Read what a writer function printed. */
static char *capture(void (*fn)(FILE *, enum cli_cmd), enum cli_cmd cmd) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(f, cmd);
    fclose(f);
    return buf;
}

static void man_writer(FILE *f, enum cli_cmd cmd) {
    (void)cmd;
    cli_man(f);
}

static void test_help_texts(void **state) {
    (void)state;
    char *all = capture(cli_help, CMD_NONE);
    assert_non_null(strstr(all, "Exit status:"));
    assert_non_null(strstr(all, "  69  cannot connect"));
    assert_non_null(strstr(all, "status, get"));
    assert_non_null(strstr(all, "  tasks "));
    assert_non_null(strstr(all, "  batch status "));
    assert_non_null(strstr(all, "batch --wait: some jobs failed"));
    assert_non_null(strstr(all, "  nodes rm "));
    assert_non_null(strstr(all, "  drain "));
    assert_non_null(strstr(all, "the node still runs jobs (nodes rm)"));
    free(all);
    for (int cmd = CMD_RUN; cmd < CMD_COUNT; cmd++) {
        char *h = capture(cli_help, (enum cli_cmd)cmd);
        char want[64];
        snprintf(want, sizeof want, "usage: jobctl %s", cli_cmd_name((enum cli_cmd)cmd));
        assert_non_null(strstr(h, want));
        assert_non_null(strstr(h, "--server URL"));
        free(h);
    }
    char *run = capture(cli_help, CMD_RUN);
    assert_non_null(strstr(run, "--idempotency-key KEY"));
    assert_non_null(strstr(run, "--task NAME"));
    assert_non_null(strstr(run, "--executor EXEC"));
    assert_non_null(strstr(run, "--node-selector K=V"));
    assert_null(strstr(run, "--follow"));
    assert_null(strstr(run, "--concurrency"));
    free(run);
    char *batch = capture(cli_help, CMD_BATCH);
    assert_non_null(strstr(batch, "usage: jobctl batch [options] FILE|-"));
    assert_non_null(strstr(batch, "-c, --concurrency N"));
    assert_non_null(strstr(batch, "-w, --wait"));
    free(batch);
    char *man = capture(man_writer, CMD_NONE);
    assert_non_null(strstr(man, ".TH JOBCTL 1"));
    assert_non_null(strstr(man, ".SS \"logs\""));
    assert_non_null(strstr(man, ".SS \"batch status\""));
    assert_non_null(strstr(man, ".SS \"nodes rm\""));
    assert_non_null(strstr(man, "\\-\\-stderr"));
    free(man);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_command_after_dashdash),
        cmocka_unit_test(test_run_first_word_starts_the_command),
        cmocka_unit_test(test_global_options_anywhere),
        cmocka_unit_test(test_aliases_and_ids),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_help_flags),
        cmocka_unit_test(test_seconds_and_sizes),
        cmocka_unit_test(test_spec_from_options),
        cmocka_unit_test(test_spec_errors_name_the_field),
        cmocka_unit_test(test_spec_stdin_must_be_utf8),
        cmocka_unit_test(test_help_texts),
        cmocka_unit_test(test_task_options_make_a_task_spec),
        cmocka_unit_test(test_task_spec_errors_name_the_field),
        cmocka_unit_test(test_batch_commands),
        cmocka_unit_test(test_batch_files),
        cmocka_unit_test(test_node_commands),
        cmocka_unit_test(test_remote_spec_from_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
