/*
 * test_task.c: the task registry and task API (lib/task.c), the builtin
 * tasks (service/tasks_builtin.c) and the plugin loader (service/plugin.c).
 *
 * Tasks run directly here, through a jobd_task whose ops capture output in
 * memory (struct capture), the way an executor would run them. The http task
 * talks to a small HTTP/1.1 server on 127.0.0.1 that this file starts on a
 * thread (struct server): it answers canned responses by path, holds /slow
 * open to test timeouts and cancel, and records the last request under its
 * lock. Plugins come from PLUGIN_DIR (the build's plugins directory).
 *
 * cmocka is not thread-safe: helper threads never assert, they only record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "jobd/task.h"
#include "jobd/util.h"
#include "plugin.h"
#include "task_impl.h"
#include "tasks_builtin.h"

#ifndef PLUGIN_DIR
#error "PLUGIN_DIR must name the directory of the test plugins"
#endif

/* ---- capturing ops ---- */

struct capture {
    char *out[3]; /* [1] stdout, [2] stderr; NUL-terminated */
    size_t len[3];
    int fail; /* when negative, every write fails with it */
};

static int cap_write(jobd_task *t, int stream, const void *buf, size_t len) {
    struct capture *c = t->ctx;
    if (c->fail < 0)
        return c->fail;
    char *p = realloc(c->out[stream], c->len[stream] + len + 1);
    if (p == NULL)
        return -ENOMEM;
    memcpy(p + c->len[stream], buf, len);
    c->len[stream] += len;
    p[c->len[stream]] = '\0';
    c->out[stream] = p;
    return (int)len;
}

static const struct jobd_task_ops cap_ops = {cap_write};

static const char *cap_str(const struct capture *c, int stream) {
    return c->out[stream] != NULL ? c->out[stream] : "";
}

static void cap_free(struct capture *c) {
    free(c->out[1]);
    free(c->out[2]);
    memset(c, 0, sizeof(*c));
}

/* Prepare t as an executor would, writing into c. */
static void task_setup(jobd_task *t, struct capture *c, const char *id) {
    memset(c, 0, sizeof(*c));
    assert_int_equal(jobd_task_init(t), 0);
    t->ops = &cap_ops;
    t->ctx = c;
    snprintf(t->id, sizeof(t->id), "%s", id);
}

/* Run task `name` on this thread with args (may be NULL). Return its exit code. */
static int run_named(const char *name, const json_t *args, jobd_task *t) {
    const struct jobd_task_def *d = jobd_task_lookup(name);
    if (d == NULL)
        return -1000;
    jobd_task_enter(t);
    int rc = d->fn(args, t);
    jobd_task_leave();
    return rc;
}

/* Parse JSON text for a test (aborts the test on a typo). */
static json_t *J(const char *text) {
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
    if (v == NULL)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return v;
}

/* ---- registry ---- */

static int fn_ok(const json_t *args, jobd_task *t) {
    return 0;
}

static int fn_other(const json_t *args, jobd_task *t) {
    return 7;
}

static int teardown_registry(void **state) {
    jobd_task_registry_clear();
    return 0;
}

static int setup_builtins(void **state) {
    jobd_task_registry_clear();
    return tasks_builtin_register();
}

static void test_register_lookup_order(void **state) {
    char name[16] = "zeta", desc[32] = "the last one";
    struct jobd_task_def d = {name, desc, fn_ok, NULL};

    assert_int_equal(jobd_task_register(&d), 0);
    /* The registry keeps copies: changing the caller's strings changes nothing. */
    strcpy(name, "alpha");
    strcpy(desc, "the first one");
    assert_int_equal(jobd_task_register(&d), 0);
    strcpy(name, "mid.dle-1_x");
    assert_int_equal(jobd_task_register(&d), 0);
    strcpy(name, "XXX");

    assert_int_equal(jobd_task_count(), 3);
    assert_string_equal(jobd_task_at(0)->name, "alpha");
    assert_string_equal(jobd_task_at(1)->name, "mid.dle-1_x");
    assert_string_equal(jobd_task_at(2)->name, "zeta");
    assert_null(jobd_task_at(3));

    const struct jobd_task_def *z = jobd_task_lookup("zeta");
    assert_non_null(z);
    assert_string_equal(z->description, "the last one");
    assert_ptr_equal(z->fn, fn_ok);
    assert_null(z->check);
    assert_null(jobd_task_lookup("XXX"));
    assert_null(jobd_task_lookup("zet"));
    assert_null(jobd_task_lookup(""));
    assert_null(jobd_task_lookup(NULL));

    /* A borrowed def stays where it was while the registry grows. */
    for (int i = 0; i < 100; i++) {
        char n[16];
        snprintf(n, sizeof(n), "t%03d", i);
        struct jobd_task_def more = {n, NULL, fn_ok, NULL};
        assert_int_equal(jobd_task_register(&more), 0);
    }
    assert_ptr_equal(jobd_task_lookup("zeta"), z);
    assert_string_equal(z->name, "zeta");
    assert_int_equal(jobd_task_count(), 103);
    for (size_t i = 1; i < jobd_task_count(); i++)
        assert_true(strcmp(jobd_task_at(i - 1)->name, jobd_task_at(i)->name) < 0);
    assert_string_equal(jobd_task_lookup("t042")->description, "");
}

static void test_register_duplicate(void **state) {
    struct jobd_task_def a = {"same", "first", fn_ok, NULL};
    struct jobd_task_def b = {"same", "second", fn_other, NULL};

    assert_int_equal(jobd_task_register(&a), 0);
    assert_int_equal(jobd_task_register(&b), -EEXIST);
    assert_int_equal(jobd_task_count(), 1);
    assert_string_equal(jobd_task_lookup("same")->description, "first");
    assert_ptr_equal(jobd_task_lookup("same")->fn, fn_ok);
}

static void test_register_bad_names(void **state) {
    static const char *const bad[] = {"", "a b", "a/b", "caf\xc3\xa9", "tab\t", "x:y", "\"q\""};
    char longest[66];

    assert_int_equal(jobd_task_register(NULL), -EINVAL);
    struct jobd_task_def nofn = {"nofn", "", NULL, NULL};
    assert_int_equal(jobd_task_register(&nofn), -EINVAL);
    struct jobd_task_def noname = {NULL, "", fn_ok, NULL};
    assert_int_equal(jobd_task_register(&noname), -EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jobd_task_def d = {bad[i], "", fn_ok, NULL};
        assert_int_equal(jobd_task_register(&d), -EINVAL);
    }
    memset(longest, 'n', 65);
    longest[65] = '\0';
    struct jobd_task_def d = {longest, "", fn_ok, NULL};
    assert_int_equal(jobd_task_register(&d), -EINVAL);
    longest[64] = '\0';
    assert_int_equal(jobd_task_register(&d), 0);
    assert_int_equal(jobd_task_count(), 1);
    assert_non_null(jobd_task_lookup(longest));
}

static void test_registry_clear(void **state) {
    struct jobd_task_def d = {"gone", "", fn_ok, NULL};

    assert_int_equal(jobd_task_register(&d), 0);
    jobd_task_registry_clear();
    assert_int_equal(jobd_task_count(), 0);
    assert_null(jobd_task_lookup("gone"));
    assert_null(jobd_task_at(0));
    assert_int_equal(jobd_task_register(&d), 0);
    assert_non_null(jobd_task_lookup("gone"));
}

/* ---- output, result, error, id ---- */

static void test_printf_to_streams(void **state) {
    struct capture c;
    jobd_task t;

    task_setup(&t, &c, "j42");
    assert_int_equal(jobd_task_printf(&t, "x=%d %s\n", 42, "ok"), 8);
    assert_int_equal(jobd_task_eprintf(&t, "warn %c", '!'), 6);
    assert_int_equal(jobd_task_write(&t, 1, "raw\0z", 5), 5);
    assert_int_equal(jobd_task_write(&t, 2, "", 0), 0);
    assert_int_equal(jobd_task_write(&t, 3, "x", 1), -EINVAL);
    assert_int_equal(jobd_task_write(&t, 0, "x", 1), -EINVAL);
    assert_int_equal(jobd_task_write(NULL, 1, "x", 1), -EINVAL);
    assert_int_equal(c.len[1], 13);
    assert_memory_equal(c.out[1], "x=42 ok\nraw\0z", 13);
    assert_string_equal(cap_str(&c, 2), "warn !");
    assert_string_equal(jobd_task_id(&t), "j42");
    jobd_task_destroy(&t);
    cap_free(&c);
}

static void test_printf_big_outputs(void **state) {
    static const size_t sizes[] = {1022, 1023, 1024, 1025, 4096, 1 << 20, 5 << 20};
    struct capture c;
    jobd_task t;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        char *s = malloc(n + 1);
        assert_non_null(s);
        for (size_t k = 0; k < n; k++)
            s[k] = (char)('a' + k % 26);
        s[n] = '\0';
        task_setup(&t, &c, "j1");
        /* A prefix from the format itself, so both halves of the output are checked. */
        assert_int_equal(jobd_task_printf(&t, "<%s>", s), (int)n + 2);
        assert_int_equal(c.len[1], n + 2);
        assert_int_equal(c.out[1][0], '<');
        assert_memory_equal(c.out[1] + 1, s, n);
        assert_int_equal(c.out[1][n + 1], '>');
        assert_int_equal(jobd_task_eprintf(&t, "%s", s), (int)n);
        assert_memory_equal(c.out[2], s, n);
        jobd_task_destroy(&t);
        cap_free(&c);
        free(s);
    }
}

static void test_write_errors(void **state) {
    static const struct jobd_task_ops no_write = {NULL};
    struct capture c;
    jobd_task t;

    task_setup(&t, &c, "j1");
    c.fail = -ENOSPC;
    assert_int_equal(jobd_task_printf(&t, "%s", "lost"), -ENOSPC);
    assert_int_equal(jobd_task_write(&t, 2, "lost", 4), -ENOSPC);
    t.ops = NULL;
    assert_int_equal(jobd_task_printf(&t, "x"), -ENOSYS);
    t.ops = &no_write;
    assert_int_equal(jobd_task_write(&t, 1, "x", 1), -ENOSYS);
    jobd_task_destroy(&t);
}

static void test_set_result_steals(void **state) {
    struct capture c;
    jobd_task t;

    task_setup(&t, &c, "j1");
    assert_null(t.result);
    json_t *a = json_object();
    json_incref(a); /* our own reference, to watch the task's */
    jobd_task_set_result(&t, a);
    assert_int_equal(a->refcount, 2);
    jobd_task_set_result(&t, a); /* the same value again: still one reference held */
    assert_int_equal(a->refcount, 2);
    json_t *b = json_integer(5);
    jobd_task_set_result(&t, b); /* a is released */
    assert_int_equal(a->refcount, 1);
    assert_ptr_equal(t.result, b);
    jobd_task_set_result(&t, NULL);
    assert_null(t.result);
    jobd_task_set_result(&t, json_string("kept")); /* freed by destroy (ASan would tell) */
    jobd_task_destroy(&t);
    json_decref(a);
    jobd_task_set_result(NULL, json_true()); /* steals even without a task */
}

static void test_set_error(void **state) {
    struct capture c;
    jobd_task t;
    char big[600];

    task_setup(&t, &c, "j1");
    assert_string_equal(t.error, "");
    jobd_task_set_error(&t, "bad %s at %d", "thing", 3);
    assert_string_equal(t.error, "bad thing at 3");
    /* A long message is cut at a character boundary: it must stay valid UTF-8. */
    big[0] = 'x';
    for (size_t i = 1; i + 2 < sizeof(big); i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof(big) - 1] = '\0';
    jobd_task_set_error(&t, "%s", big);
    assert_true(strlen(t.error) < sizeof(t.error));
    assert_true(strlen(t.error) >= sizeof(t.error) - 2);
    json_t *s = json_string(t.error);
    assert_non_null(s);
    json_decref(s);
    jobd_task_destroy(&t);
}

/* ---- the current task ---- */

/* Deep in a call chain: log through the thread's current task. */
static int helper_logs(const char *what) {
    jobd_task *t = jobd_task_current();
    if (t == NULL)
        return -1;
    return jobd_task_printf(t, "helper in %s: %s\n", jobd_task_id(t), what);
}

static void *current_elsewhere(void *arg) {
    *(jobd_task **)arg = jobd_task_current();
    return NULL;
}

static jobd_task *seen_in_other_thread = (jobd_task *)1;

static int fn_uses_current(const json_t *args, jobd_task *t) {
    pthread_t th;
    if (helper_logs("deep") < 0)
        return 1;
    if (pthread_create(&th, NULL, current_elsewhere, &seen_in_other_thread) != 0)
        return 2;
    pthread_join(th, NULL);
    return jobd_task_current() == t ? 0 : 3;
}

static void test_current_is_thread_local(void **state) {
    struct jobd_task_def d = {"cur", "", fn_uses_current, NULL};
    struct capture c;
    jobd_task t;

    assert_int_equal(jobd_task_register(&d), 0);
    assert_null(jobd_task_current());
    task_setup(&t, &c, "j7");
    assert_int_equal(run_named("cur", NULL, &t), 0);
    assert_string_equal(cap_str(&c, 1), "helper in j7: deep\n");
    assert_null(seen_in_other_thread);
    assert_null(jobd_task_current());
    assert_int_equal(helper_logs("outside"), -1);
    jobd_task_destroy(&t);
    cap_free(&c);
}

/* ---- cancel and sleep ---- */

struct sleeper {
    jobd_task *t;
    double seconds;
    int rc;
    int64_t ms;
};

static void *sleeper_main(void *arg) {
    struct sleeper *s = arg;
    int64_t start = jobd_mono_ms();
    s->rc = jobd_task_sleep(s->t, s->seconds);
    s->ms = jobd_mono_ms() - start;
    return NULL;
}

static void test_cancel_wakes_sleep(void **state) {
    struct capture c;
    jobd_task t;
    pthread_t th;

    task_setup(&t, &c, "j1");
    assert_false(jobd_task_cancelled(&t));
    struct sleeper s = {&t, 20.0, 1, 0};
    assert_int_equal(pthread_create(&th, NULL, sleeper_main, &s), 0);
    usleep(30 * 1000);
    jobd_task_cancel(&t);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(s.rc, -ECANCELED);
    /* A bound, not a speed test: woken long before the 20 s were up (~50 ms expected). */
    assert_true(s.ms < 10000);
    print_message("cancel woke the sleeper after %lld ms\n", (long long)s.ms);
    assert_true(jobd_task_cancelled(&t));
    /* Once cancelled, a sleep returns at once. */
    assert_int_equal(jobd_task_sleep(&t, 20.0), -ECANCELED);
    jobd_task_destroy(&t);
    assert_false(jobd_task_cancelled(NULL));
}

static void test_sleep_full_time(void **state) {
    struct capture c;
    jobd_task t;

    task_setup(&t, &c, "j1");
    int64_t start = jobd_mono_ms();
    assert_int_equal(jobd_task_sleep(&t, 0.06), 0);
    assert_true(jobd_mono_ms() - start >= 59);
    assert_int_equal(jobd_task_sleep(&t, 0), 0);
    assert_int_equal(jobd_task_sleep(&t, -5), 0);
    assert_int_equal(jobd_task_sleep(&t, NAN), 0);
    assert_int_equal(jobd_task_sleep(NULL, 1), -EINVAL);
    jobd_task_destroy(&t);
}

/* A cancel that comes before the sleep starts must not be lost. */
static void test_cancel_before_sleep_races(void **state) {
    for (int i = 0; i < 200; i++) {
        struct capture c;
        jobd_task t;
        pthread_t th;
        task_setup(&t, &c, "j1");
        struct sleeper s = {&t, 20.0, 1, 0};
        assert_int_equal(pthread_create(&th, NULL, sleeper_main, &s), 0);
        jobd_task_cancel(&t);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(s.rc, -ECANCELED);
        assert_true(s.ms < 10000);
        jobd_task_destroy(&t);
    }
}

/* ---- check_spec ---- */

static int check_top(const json_t *args, char *field, size_t fl, char *msg, size_t ml) {
    if (json_is_object(args))
        return 0;
    snprintf(field, fl, "%s", "");
    snprintf(msg, ml, "must be an object");
    return -1;
}

static int check_sub(const json_t *args, char *field, size_t fl, char *msg, size_t ml) {
    if (json_is_array(args)) {
        snprintf(field, fl, "[1]");
        snprintf(msg, ml, "must be a number");
    } else {
        snprintf(field, fl, "limits.size");
        snprintf(msg, ml, "must be at most %d", 10);
    }
    return -1;
}

static int check_silent(const json_t *args, char *field, size_t fl, char *msg, size_t ml) {
    return -1;
}

static void test_check_spec(void **state) {
    struct jobd_task_def top = {"top", "", fn_ok, check_top};
    struct jobd_task_def sub = {"sub", "", fn_ok, check_sub};
    struct jobd_task_def silent = {"silent", "", fn_ok, check_silent};
    struct jobd_task_def any = {"any", "", fn_ok, NULL};
    struct jobd_error err;

    assert_int_equal(jobd_task_register(&top), 0);
    assert_int_equal(jobd_task_register(&sub), 0);
    assert_int_equal(jobd_task_register(&silent), 0);
    assert_int_equal(jobd_task_register(&any), 0);

    assert_int_equal(jobd_task_check_spec("nope", NULL, &err), -EINVAL);
    assert_string_equal(err.field, "task");
    assert_string_equal(err.message, "no such task 'nope' (GET /v1/tasks lists them)");

    assert_int_equal(jobd_task_check_spec("any", NULL, &err), 0);
    json_t *obj = J("{\"a\": 1}"), *arr = J("[1, \"x\"]");
    assert_int_equal(jobd_task_check_spec("top", obj, &err), 0);
    assert_int_equal(jobd_task_check_spec("top", NULL, &err), -EINVAL);
    assert_string_equal(err.field, "args");
    assert_string_equal(err.message, "must be an object");
    assert_int_equal(jobd_task_check_spec("sub", obj, &err), -EINVAL);
    assert_string_equal(err.field, "args.limits.size");
    assert_string_equal(err.message, "must be at most 10");
    assert_int_equal(jobd_task_check_spec("sub", arr, &err), -EINVAL);
    assert_string_equal(err.field, "args[1]");
    assert_int_equal(jobd_task_check_spec("silent", obj, &err), -EINVAL);
    assert_string_equal(err.field, "args");
    assert_string_equal(err.message, "is not valid for this task");
    json_decref(obj);
    json_decref(arr);
}

/* ---- builtins: echo and sleep ---- */

static void test_builtins_listed(void **state) {
    assert_int_equal(jobd_task_count(), 3);
    assert_string_equal(jobd_task_at(0)->name, "echo");
    assert_string_equal(jobd_task_at(1)->name, "http");
    assert_string_equal(jobd_task_at(2)->name, "sleep");
    for (size_t i = 0; i < 3; i++)
        assert_true(strlen(jobd_task_at(i)->description) > 10);
    assert_int_equal(tasks_builtin_register(), -EEXIST);
}

static void test_echo(void **state) {
    static const char *const cases[][2] = {
        {"{\"b\": [true, null], \"a\": 1.5}", "{\"b\":[true,null],\"a\":1.5}\n"},
        {"\"caf\\u00e9\"", "\"caf\xc3\xa9\"\n"},
        {"[]", "[]\n"},
        {"7", "7\n"},
    };
    struct capture c;
    jobd_task t;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *args = J(cases[i][0]);
        task_setup(&t, &c, "j1");
        assert_int_equal(run_named("echo", args, &t), 0);
        assert_string_equal(cap_str(&c, 1), cases[i][1]);
        assert_non_null(t.result);
        assert_ptr_not_equal(t.result, args); /* a copy: args are only borrowed */
        assert_true(json_equal(t.result, args));
        assert_string_equal(t.error, "");
        json_decref(args);
        jobd_task_destroy(&t);
        cap_free(&c);
    }

    task_setup(&t, &c, "j1");
    assert_int_equal(run_named("echo", NULL, &t), 0);
    assert_string_equal(cap_str(&c, 1), "null\n");
    assert_true(json_is_null(t.result));
    jobd_task_destroy(&t);
    cap_free(&c);

    task_setup(&t, &c, "j1");
    c.fail = -EIO;
    json_t *args = J("{}");
    assert_int_equal(run_named("echo", args, &t), 1);
    assert_string_equal(t.error, "echo: cannot write output: Input/output error");
    json_decref(args);
    jobd_task_destroy(&t);
}

static void test_sleep_builtin(void **state) {
    struct capture c;
    jobd_task t;

    json_t *args = J("{\"seconds\": 0.01}");
    task_setup(&t, &c, "j1");
    assert_int_equal(run_named("sleep", args, &t), 0);
    assert_string_equal(t.error, "");
    jobd_task_destroy(&t);

    json_decref(args);
    args = J("{\"seconds\": 30}");
    task_setup(&t, &c, "j1");
    jobd_task_cancel(&t);
    int64_t start = jobd_mono_ms();
    assert_int_equal(run_named("sleep", args, &t), 1);
    assert_true(jobd_mono_ms() - start < 10000);
    assert_string_equal(t.error, "cancelled");
    jobd_task_destroy(&t);
    json_decref(args);

    /* Args that the check would have refused fail the job with the same words. */
    args = J("{\"seconds\": \"1\"}");
    task_setup(&t, &c, "j1");
    assert_int_equal(run_named("sleep", args, &t), 1);
    assert_string_equal(t.error, "args.seconds: must be a number");
    jobd_task_destroy(&t);
    json_decref(args);
}

/* One check case: args as JSON text ("" for absent), the expected field and message. */
struct check_case {
    const char *args;
    const char *field; /* NULL: accepted */
    const char *message;
};

static void run_check_cases(const char *task, const struct check_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        struct jobd_error err = {"", ""};
        json_t *args = cases[i].args[0] ? J(cases[i].args) : NULL;
        int rc = jobd_task_check_spec(task, args, &err);
        json_decref(args);
        if (cases[i].field == NULL) {
            if (rc != 0)
                fail_msg("%s %s: refused (%s: %s)", task, cases[i].args, err.field, err.message);
            continue;
        }
        if (rc != -EINVAL || strcmp(err.field, cases[i].field) != 0 ||
            strstr(err.message, cases[i].message) == NULL)
            fail_msg("%s %s: got %d '%s' '%s', want '%s' '%s'", task, cases[i].args, rc, err.field,
                     err.message, cases[i].field, cases[i].message);
    }
}

static void test_sleep_check(void **state) {
    static const struct check_case cases[] = {
        {"{\"seconds\": 0}", NULL, NULL},
        {"{\"seconds\": 1.5}", NULL, NULL},
        {"{\"seconds\": 31622400}", NULL, NULL},
        {"", "args", "must be an object"},
        {"[1]", "args", "must be an object"},
        {"{}", "args.seconds", "is required"},
        {"{\"seconds\": \"1\"}", "args.seconds", "must be a number"},
        {"{\"seconds\": null}", "args.seconds", "must be a number"},
        {"{\"seconds\": -1}", "args.seconds", "must be between 0 and 31622400"},
        {"{\"seconds\": 31622401}", "args.seconds", "must be between 0 and 31622400"},
        {"{\"seconds\": 1, \"x\": 2}", "args.x", "unknown field"},
    };
    run_check_cases("sleep", cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_http_check(void **state) {
    static const struct check_case cases[] = {
        {"{\"url\": \"http://example.com/\"}", NULL, NULL},
        {"{\"url\": \"HTTPS://example.com:8443/a?b=c\", \"method\": \"PATCH\", "
         "\"headers\": {\"X-A\": \"1\", \"Empty\": \"\"}, \"body\": \"x\", \"timeout\": 0.5, "
         "\"expect\": [200, 201], \"follow_redirects\": true}",
         NULL, NULL},
        {"{\"url\": \"http://h/\", \"expect\": \"404\"}", NULL, NULL},
        {"{\"url\": \"http://h/\", \"expect\": \"100-599\"}", NULL, NULL},
        {"{\"url\": \"http://h/\", \"timeout\": 3600}", NULL, NULL},
        {"", "args", "must be an object"},
        {"\"http://h/\"", "args", "must be an object"},
        {"{}", "args.url", "is required"},
        {"{\"url\": 5}", "args.url", "must be a string"},
        {"{\"url\": \"ftp://h/\"}", "args.url", "must be an http:// or https:// URL"},
        {"{\"url\": \"file:///etc/passwd\"}", "args.url", "must be an http:// or https:// URL"},
        {"{\"url\": \"h/x\"}", "args.url", "must be an http:// or https:// URL"},
        {"{\"url\": \"http://\"}", "args.url", "is not a valid URL"},
        {"{\"url\": \"http://a b/\"}", "args.url", "is not a valid URL"},
        {"{\"url\": \"http://h/\", \"methd\": \"GET\"}", "args.methd", "unknown field"},
        {"{\"url\": \"http://h/\", \"method\": \"get\"}", "args.method", "uppercase method"},
        {"{\"url\": \"http://h/\", \"method\": \"\"}", "args.method", "uppercase method"},
        {"{\"url\": \"http://h/\", \"method\": \"GET /x\"}", "args.method", "uppercase method"},
        {"{\"url\": \"http://h/\", \"method\": 1}", "args.method", "uppercase method"},
        {"{\"url\": \"http://h/\", \"headers\": []}", "args.headers", "must be an object"},
        {"{\"url\": \"http://h/\", \"headers\": {\"A\": 1}}", "args.headers.A", "must be a string"},
        {"{\"url\": \"http://h/\", \"headers\": {\"A B\": \"1\"}}", "args.headers.A B",
         "is not a header name"},
        {"{\"url\": \"http://h/\", \"headers\": {\"A\": \"x\\r\\nB: y\"}}", "args.headers.A",
         "must not contain CR, LF or NUL"},
        {"{\"url\": \"http://h/\", \"body\": {}}", "args.body", "must be a string"},
        {"{\"url\": \"http://h/\", \"method\": \"HEAD\", \"body\": \"x\"}", "args.body",
         "not allowed with HEAD"},
        {"{\"url\": \"http://h/\", \"timeout\": 0}", "args.timeout", "more than 0"},
        {"{\"url\": \"http://h/\", \"timeout\": 3601}", "args.timeout", "at most 3600"},
        {"{\"url\": \"http://h/\", \"timeout\": \"5\"}", "args.timeout", "must be a number"},
        {"{\"url\": \"http://h/\", \"expect\": []}", "args.expect", "must list 1 to 64"},
        {"{\"url\": \"http://h/\", \"expect\": [200, 99]}", "args.expect[1]", "100..599"},
        {"{\"url\": \"http://h/\", \"expect\": [200.5]}", "args.expect[0]", "100..599"},
        {"{\"url\": \"http://h/\", \"expect\": \"299-200\"}", "args.expect", "a range"},
        {"{\"url\": \"http://h/\", \"expect\": \"2xx\"}", "args.expect", "a range"},
        {"{\"url\": \"http://h/\", \"expect\": \"200-600\"}", "args.expect", "a range"},
        {"{\"url\": \"http://h/\", \"expect\": 200}", "args.expect", "a range"},
        {"{\"url\": \"http://h/\", \"follow_redirects\": 1}", "args.follow_redirects",
         "must be a boolean"},
    };
    run_check_cases("http", cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- a small HTTP server for the http task ---- */

struct server {
    int lfd;
    int stop[2]; /* a byte on stop[1] ends the server */
    int port;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the fields below */
    char method[16];
    char path[64];
    char body[256];
    char custom[128]; /* the request's X-Custom header */
    int requests;
};

static struct server srv;

/* Wait until fd is readable or the server is told to stop. Return 1, 0 on timeout, -1 on stop. */
static int srv_wait(int fd, int ms) {
    struct pollfd p[2] = {{fd, POLLIN, 0}, {srv.stop[0], POLLIN, 0}};
    int n = poll(p, 2, ms);
    if (n <= 0)
        return 0;
    if (p[1].revents)
        return -1;
    return 1;
}

static void srv_send(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

static void srv_reply(int fd, const char *status, const char *extra, const char *body,
                      size_t body_len) {
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\nConnection: close\r\n\r\n", status,
                     extra, body_len);
    srv_send(fd, head, (size_t)n);
    srv_send(fd, body, body_len);
}

/* Find header `name` in the request head; copy its value into out. */
static void srv_header(const char *head, const char *name, char *out, size_t len) {
    size_t nl = strlen(name);
    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            snprintf(out, len, "%.*s", (int)n, v);
            return;
        }
    }
}

static void srv_handle(int fd) {
    char req[8192], cl[32], method[16] = "", path[64] = "";
    size_t len = 0;
    char *end = NULL;

    while (end == NULL && len < sizeof(req) - 1) {
        if (srv_wait(fd, 5000) <= 0)
            return;
        ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (end == NULL || sscanf(req, "%15s %63s", method, path) != 2)
        return;
    srv_header(req, "Content-Length", cl, sizeof(cl));
    size_t want = (size_t)strtoul(cl, NULL, 10), head_len = (size_t)(end + 4 - req);
    while (len - head_len < want && len < sizeof(req) - 1) {
        if (srv_wait(fd, 5000) <= 0)
            return;
        ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
    }
    req[len] = '\0';

    pthread_mutex_lock(&srv.lock);
    srv.requests++;
    snprintf(srv.method, sizeof(srv.method), "%s", method);
    snprintf(srv.path, sizeof(srv.path), "%s", path);
    snprintf(srv.body, sizeof(srv.body), "%.*s", (int)(len - head_len), req + head_len);
    srv_header(req, "X-Custom", srv.custom, sizeof(srv.custom));
    char body[512];
    snprintf(body, sizeof(body), "%s %s [%s]\n", method, srv.body, srv.custom);
    pthread_mutex_unlock(&srv.lock);

    if (strcmp(path, "/ok") == 0) {
        srv_reply(fd, "200 OK",
                  "Content-Type: text/plain\r\nX-Test: Yes \r\nX-Dup: a\r\nX-Dup: b\r\n", "hello\n",
                  6);
    } else if (strcmp(path, "/missing") == 0) {
        srv_reply(fd, "404 Not Found", "", "nope\n", 5);
    } else if (strcmp(path, "/echo") == 0) {
        srv_reply(fd, "200 OK", "", body, strlen(body));
    } else if (strcmp(path, "/redirect") == 0) {
        srv_reply(fd, "302 Found", "Location: /ok\r\n", "", 0);
    } else if (strcmp(path, "/ftp-redirect") == 0) {
        srv_reply(fd, "302 Found", "Location: ftp://127.0.0.1/x\r\n", "", 0);
    } else if (strcmp(path, "/big") == 0) {
        size_t n = 1 << 20;
        char *big = malloc(n);
        if (big == NULL)
            return;
        for (size_t i = 0; i < n; i++)
            big[i] = (char)('A' + i % 23);
        srv_reply(fd, "200 OK", "", big, n);
        free(big);
    } else if (strcmp(path, "/slow") == 0) {
        /* Say nothing until the client gives up (or 10 s pass). */
        char sink[256];
        for (int waited = 0; waited < 10000; waited += 100) {
            int w = srv_wait(fd, 100);
            if (w < 0 || (w > 0 && recv(fd, sink, sizeof(sink), 0) <= 0))
                return;
        }
        srv_reply(fd, "200 OK", "", "late\n", 5);
    } else {
        srv_reply(fd, "500 Internal Server Error", "", "", 0);
    }
}

static void *srv_main(void *arg) {
    for (;;) {
        int w = srv_wait(srv.lfd, -1);
        if (w < 0)
            return NULL;
        int fd = accept4(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        srv_handle(fd);
        close(fd);
    }
}

/* A loopback port where nothing listens (bound, then closed). */
static int dead_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int setup_http(void **state) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);

    if (setup_builtins(state) < 0)
        return -1;
    pthread_mutex_init(&srv.lock, NULL);
    srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(srv.lfd, 16) < 0 || getsockname(srv.lfd, (struct sockaddr *)&a, &al) < 0 ||
        pipe2(srv.stop, O_CLOEXEC) < 0)
        return -1;
    srv.port = ntohs(a.sin_port);
    return pthread_create(&srv.thread, NULL, srv_main, NULL) == 0 ? 0 : -1;
}

static int teardown_http(void **state) {
    if (write(srv.stop[1], "x", 1) != 1)
        return -1;
    pthread_join(srv.thread, NULL);
    close(srv.lfd);
    close(srv.stop[0]);
    close(srv.stop[1]);
    pthread_mutex_destroy(&srv.lock);
    jobd_task_registry_clear();
    return 0;
}

/* Run http with args formatted from fmt ("%d" gets the server's port). */
static int run_http(jobd_task *t, struct capture *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_http(jobd_task *t, struct capture *c, const char *fmt, ...) {
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    json_t *args = J(text);
    struct jobd_error err;
    if (jobd_task_check_spec("http", args, &err) != 0)
        fail_msg("check refused %s: %s: %s", text, err.field, err.message);
    task_setup(t, c, "j9");
    int rc = run_named("http", args, t);
    json_decref(args);
    return rc;
}

static void test_http_get(void **state) {
    struct capture c;
    jobd_task t;

    assert_int_equal(run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/ok\"}", srv.port), 0);
    assert_string_equal(t.error, "");
    assert_string_equal(cap_str(&c, 1), "hello\n");
    assert_int_equal(json_integer_value(json_object_get(t.result, "status")), 200);
    json_t *h = json_object_get(t.result, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "x-test")), "Yes");
    assert_string_equal(json_string_value(json_object_get(h, "content-type")), "text/plain");
    assert_string_equal(json_string_value(json_object_get(h, "x-dup")), "a, b");
    assert_null(json_object_get(h, "X-Test"));
    json_t *ms = json_object_get(t.result, "elapsed_ms");
    assert_true(json_is_integer(ms) && json_integer_value(ms) >= 0);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.method, "GET");
    assert_string_equal(srv.path, "/ok");
    pthread_mutex_unlock(&srv.lock);
    jobd_task_destroy(&t);
    cap_free(&c);
}

static void test_http_unexpected_status(void **state) {
    struct capture c;
    jobd_task t;

    assert_int_equal(run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/missing\"}", srv.port), 1);
    assert_string_equal(t.error, "HTTP 404 is not an expected status (200-299)");
    assert_int_equal(json_integer_value(json_object_get(t.result, "status")), 404);
    assert_string_equal(cap_str(&c, 1), "nope\n");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/missing\", \"expect\": [200, 204]}",
                              srv.port),
                     1);
    assert_string_equal(t.error, "HTTP 404 is not an expected status (200, 204)");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/missing\", \"expect\": [410, 404]}",
                              srv.port),
                     0);
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/missing\", \"expect\": \"400-499\"}",
                              srv.port),
                     0);
    assert_string_equal(t.error, "");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(
        run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/ok\", \"expect\": \"404\"}", srv.port),
        1);
    assert_string_equal(t.error, "HTTP 200 is not an expected status (404)");
    jobd_task_destroy(&t);
    cap_free(&c);
}

static void test_http_methods_and_body(void **state) {
    struct capture c;
    jobd_task t;

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/echo\", \"method\": \"POST\", "
                              "\"body\": \"a=1&b=2\", \"headers\": {\"X-Custom\": \"v 1\"}}",
                              srv.port),
                     0);
    assert_string_equal(cap_str(&c, 1), "POST a=1&b=2 [v 1]\n");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/echo\", \"method\": \"PUT\", "
                              "\"body\": \"{}\"}",
                              srv.port),
                     0);
    assert_string_equal(cap_str(&c, 1), "PUT {} []\n");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/echo\", \"method\": \"DELETE\"}",
                              srv.port),
                     0);
    assert_string_equal(cap_str(&c, 1), "DELETE  []\n");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(
        run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/echo\", \"method\": \"POST\"}", srv.port),
        0);
    assert_string_equal(cap_str(&c, 1), "POST  []\n");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(
        run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/ok\", \"method\": \"HEAD\"}", srv.port),
        0);
    assert_string_equal(cap_str(&c, 1), "");
    assert_int_equal(json_integer_value(json_object_get(t.result, "status")), 200);
    pthread_mutex_lock(&srv.lock);
    assert_string_equal(srv.method, "HEAD");
    pthread_mutex_unlock(&srv.lock);
    jobd_task_destroy(&t);
    cap_free(&c);
}

static void test_http_redirects(void **state) {
    struct capture c;
    jobd_task t;

    /* Not followed unless asked: the 302 itself is the answer. */
    assert_int_equal(run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/redirect\"}", srv.port), 1);
    assert_string_equal(t.error, "HTTP 302 is not an expected status (200-299)");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(t.result, "headers"), "location")),
        "/ok");
    jobd_task_destroy(&t);
    cap_free(&c);

    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/redirect\", "
                              "\"follow_redirects\": true}",
                              srv.port),
                     0);
    assert_string_equal(cap_str(&c, 1), "hello\n");
    /* Only the final response's headers are reported. */
    json_t *h = json_object_get(t.result, "headers");
    assert_null(json_object_get(h, "location"));
    assert_string_equal(json_string_value(json_object_get(h, "x-test")), "Yes");
    jobd_task_destroy(&t);
    cap_free(&c);

    /* A redirect may not leave http and https. */
    assert_int_equal(run_http(&t, &c,
                              "{\"url\": \"http://127.0.0.1:%d/ftp-redirect\", "
                              "\"follow_redirects\": true}",
                              srv.port),
                     1);
    assert_true(strncmp(t.error, "http: ", 6) == 0);
    print_message("ftp redirect: %s\n", t.error);
    jobd_task_destroy(&t);
    cap_free(&c);
}

static void test_http_big_body(void **state) {
    struct capture c;
    jobd_task t;

    assert_int_equal(run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/big\"}", srv.port), 0);
    assert_int_equal(c.len[1], 1 << 20);
    for (size_t i = 0; i < c.len[1]; i++)
        if (c.out[1][i] != (char)('A' + i % 23))
            fail_msg("byte %zu of the body differs", i);
    jobd_task_destroy(&t);
    cap_free(&c);
}

static void test_http_transport_errors(void **state) {
    struct capture c;
    jobd_task t;

    assert_int_equal(run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/x\"}", dead_port()), 1);
    assert_true(strncmp(t.error, "http: ", 6) == 0);
    assert_non_null(strstr(t.error, "onnect"));
    assert_null(t.result);
    jobd_task_destroy(&t);
    cap_free(&c);

    /* The job's output refuses the body. */
    json_t *args = json_pack("{s:s}", "url", "http://127.0.0.1/big");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/big", srv.port);
    json_object_set_new(args, "url", json_string(url));
    task_setup(&t, &c, "j1");
    c.fail = -ENOSPC;
    assert_int_equal(run_named("http", args, &t), 1);
    assert_string_equal(t.error, "http: cannot write the response body: No space left on device");
    jobd_task_destroy(&t);
    json_decref(args);
}

static void test_http_timeout(void **state) {
    struct capture c;
    jobd_task t;

    int64_t start = jobd_mono_ms();
    assert_int_equal(
        run_http(&t, &c, "{\"url\": \"http://127.0.0.1:%d/slow\", \"timeout\": 0.3}", srv.port), 1);
    int64_t ms = jobd_mono_ms() - start;
    assert_true(strncmp(t.error, "http: ", 6) == 0);
    assert_non_null(strstr(t.error, "timed out"));
    assert_true(ms >= 250 && ms < 9000); /* the server would have answered after 10 s */
    print_message("timeout: %s (%lld ms)\n", t.error, (long long)ms);
    jobd_task_destroy(&t);
    cap_free(&c);
}

struct http_runner {
    jobd_task *t;
    json_t *args;
    int rc;
    int64_t ms;
};

static void *http_runner_main(void *arg) {
    struct http_runner *r = arg;
    int64_t start = jobd_mono_ms();
    r->rc = run_named("http", r->args, r->t);
    r->ms = jobd_mono_ms() - start;
    return NULL;
}

static void test_http_cancel(void **state) {
    struct capture c;
    jobd_task t;
    pthread_t th;
    char url[128];

    pthread_mutex_lock(&srv.lock);
    int before = srv.requests;
    pthread_mutex_unlock(&srv.lock);

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", srv.port);
    struct http_runner r = {&t, json_pack("{s:s, s:i}", "url", url, "timeout", 60), -1, 0};
    assert_non_null(r.args);
    task_setup(&t, &c, "j1");
    assert_int_equal(pthread_create(&th, NULL, http_runner_main, &r), 0);
    /* Cancel once the server holds the request. */
    for (int i = 0; i < 500; i++) {
        pthread_mutex_lock(&srv.lock);
        int now = srv.requests;
        pthread_mutex_unlock(&srv.lock);
        if (now > before)
            break;
        usleep(10 * 1000);
    }
    usleep(50 * 1000);
    int64_t cancelled_at = jobd_mono_ms();
    jobd_task_cancel(&t);
    assert_int_equal(pthread_join(th, NULL), 0);
    int64_t after_cancel = jobd_mono_ms() - cancelled_at;
    assert_int_equal(r.rc, 1);
    assert_string_equal(t.error, "cancelled");
    assert_true(r.ms < 9000); /* a bound: the server would have answered after 10 s */
    print_message("http cancel returned %lld ms after the cancel\n", (long long)after_cancel);
    json_decref(r.args);
    jobd_task_destroy(&t);
    cap_free(&c);
}

/* ---- plugins ---- */

static void test_plugin_wordcount(void **state) {
    char err[512];
    struct capture c;
    jobd_task t;
    struct jobd_error e;

    assert_int_equal(plugin_load(PLUGIN_DIR "/jobd_wordcount.so", err, sizeof(err)), 0);
    assert_string_equal(err, "");
    const struct jobd_task_def *d = jobd_task_lookup("wordcount");
    assert_non_null(d);
    assert_non_null(d->check);

    json_t *args = J("{\"text\": \"one two\\nthree \\n\\n  four\"}");
    assert_int_equal(jobd_task_check_spec("wordcount", args, &e), 0);
    task_setup(&t, &c, "j3");
    assert_int_equal(run_named("wordcount", args, &t), 0);
    assert_int_equal(json_integer_value(json_object_get(t.result, "lines")), 3);
    assert_int_equal(json_integer_value(json_object_get(t.result, "words")), 4);
    assert_int_equal(json_integer_value(json_object_get(t.result, "bytes")), 22);
    assert_string_equal(cap_str(&c, 1), "3 lines, 4 words, 22 bytes\n");
    jobd_task_destroy(&t);
    cap_free(&c);
    json_decref(args);

    static const struct check_case cases[] = {
        {"{\"text\": \"\"}", NULL, NULL},
        {"", "args", "must be an object"},
        {"{}", "args.text", "is required"},
        {"{\"text\": 1}", "args.text", "must be a string"},
        {"{\"text\": \"a\", \"txt\": \"b\"}", "args.txt", "unknown field"},
    };
    run_check_cases("wordcount", cases, sizeof(cases) / sizeof(cases[0]));

    /* Loading it again: its task is already there. */
    assert_int_equal(plugin_load(PLUGIN_DIR "/jobd_wordcount.so", err, sizeof(err)), -EEXIST);
    assert_string_equal(err, "plugin " PLUGIN_DIR
                             "/jobd_wordcount.so failed to register its tasks: File exists");
}

static void test_plugin_load_failures(void **state) {
    char err[512];

    assert_int_equal(plugin_load(PLUGIN_DIR "/no_such_plugin.so", err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "cannot load plugin " PLUGIN_DIR
                             "/no_such_plugin.so: No such file or directory");

    assert_int_equal(plugin_load("no_such_plugin_here.so", err, sizeof(err)), -ENOENT);
    assert_string_equal(err,
                        "cannot load plugin no_such_plugin_here.so: No such file or directory");

    assert_int_equal(plugin_load(PLUGIN_DIR "/jobd_badplugin.so", err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "plugin " PLUGIN_DIR
                             "/jobd_badplugin.so failed to register its tasks: Invalid argument");

    assert_int_equal(plugin_load(PLUGIN_DIR "/jobd_noinit.so", err, sizeof(err)), -ENOEXEC);
    assert_string_equal(err, "plugin " PLUGIN_DIR "/jobd_noinit.so has no jobd_plugin_init");

    /* Not a shared library at all: this test's source. */
    assert_int_equal(plugin_load(__FILE__, err, sizeof(err)), -ELIBBAD);
    assert_true(strncmp(err, "cannot load plugin " __FILE__ ": ", strlen(__FILE__) + 21) == 0);
    print_message("%s\n", err);

    assert_int_equal(plugin_load("", err, sizeof(err)), -EINVAL);
    assert_int_equal(jobd_task_count(), 0);
}

struct counter_worker {
    int runs, n;
    int failures;
};

static void *counter_worker_main(void *arg) {
    struct counter_worker *w = arg;
    json_t *args = json_pack("{s:i}", "n", w->n);
    for (int i = 0; i < w->runs; i++) {
        struct capture c = {0};
        jobd_task t;
        if (args == NULL || jobd_task_init(&t) < 0) {
            w->failures++;
            continue;
        }
        t.ops = &cap_ops;
        t.ctx = &c;
        if (run_named("counter", args, &t) != 0 ||
            json_integer_value(json_object_get(t.result, "increments")) != w->n)
            w->failures++;
        jobd_task_destroy(&t);
        cap_free(&c);
    }
    json_decref(args);
    return NULL;
}

static json_int_t counter_total(void) {
    struct capture c;
    jobd_task t;
    task_setup(&t, &c, "j0");
    assert_int_equal(run_named("counter_total", NULL, &t), 0);
    json_int_t v = json_integer_value(json_object_get(t.result, "total"));
    jobd_task_destroy(&t);
    cap_free(&c);
    return v;
}

/* Many threads run the test plugin's counter task at once: the total is exact. */
static void test_plugin_counter_threads(void **state) {
    enum { THREADS = 8 };
    struct counter_worker w[THREADS];
    pthread_t th[THREADS];
    char err[512];

    assert_int_equal(plugin_load(PLUGIN_DIR "/jobd_testtasks.so", err, sizeof(err)), 0);
    assert_non_null(jobd_task_lookup("crash"));
    assert_non_null(jobd_task_lookup("spin"));
    json_int_t before = counter_total();
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct counter_worker){20, 2000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, counter_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    assert_int_equal(counter_total() - before, (json_int_t)THREADS * 20 * 2000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_register_lookup_order, teardown_registry),
        cmocka_unit_test_teardown(test_register_duplicate, teardown_registry),
        cmocka_unit_test_teardown(test_register_bad_names, teardown_registry),
        cmocka_unit_test_teardown(test_registry_clear, teardown_registry),
        cmocka_unit_test(test_printf_to_streams),
        cmocka_unit_test(test_printf_big_outputs),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_set_result_steals),
        cmocka_unit_test(test_set_error),
        cmocka_unit_test_teardown(test_current_is_thread_local, teardown_registry),
        cmocka_unit_test(test_cancel_wakes_sleep),
        cmocka_unit_test(test_sleep_full_time),
        cmocka_unit_test(test_cancel_before_sleep_races),
        cmocka_unit_test_teardown(test_check_spec, teardown_registry),
        cmocka_unit_test_setup_teardown(test_builtins_listed, setup_builtins, teardown_registry),
        cmocka_unit_test_setup_teardown(test_echo, setup_builtins, teardown_registry),
        cmocka_unit_test_setup_teardown(test_sleep_builtin, setup_builtins, teardown_registry),
        cmocka_unit_test_setup_teardown(test_sleep_check, setup_builtins, teardown_registry),
        cmocka_unit_test_setup_teardown(test_http_check, setup_builtins, teardown_registry),
        cmocka_unit_test_teardown(test_plugin_wordcount, teardown_registry),
        cmocka_unit_test_teardown(test_plugin_load_failures, teardown_registry),
        cmocka_unit_test_teardown(test_plugin_counter_threads, teardown_registry),
    };
    const struct CMUnitTest http_tests[] = {
        cmocka_unit_test(test_http_get),
        cmocka_unit_test(test_http_unexpected_status),
        cmocka_unit_test(test_http_methods_and_body),
        cmocka_unit_test(test_http_redirects),
        cmocka_unit_test(test_http_big_body),
        cmocka_unit_test(test_http_transport_errors),
        cmocka_unit_test(test_http_timeout),
        cmocka_unit_test(test_http_cancel),
    };

    signal(SIGPIPE, SIG_IGN);
    /* libcurl honours proxy variables: the test server is on loopback, reach it directly. */
    static const char *const proxies[] = {"http_proxy",  "https_proxy", "HTTP_PROXY",
                                          "HTTPS_PROXY", "all_proxy",   "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        unsetenv(proxies[i]);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    json_object_seed(0);
    int failed = cmocka_run_group_tests_name("task", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("http task", http_tests, setup_http, teardown_http);
    curl_global_cleanup();
    return failed;
}
