/*
 * test_jobctl_format.c: jobctl's human output (client/format.c): durations,
 * ages, times, shell quoting, table alignment, list rows, the status view
 * (of a task too), the batch progress line and view, exit statuses derived
 * from jobs and batches, node rows and the node view, and UTF-8 repair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

static void test_durations(void **state) {
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {-1, "-"},           {0, "0ms"},          {999, "999ms"},       {1000, "1.0s"},
        {2549, "2.5s"},      {9999, "9.9s"},      {10000, "10s"},       {59999, "59s"},
        {60000, "1m00s"},    {65000, "1m05s"},    {3599000, "59m59s"},  {3600000, "1h00m"},
        {11220000, "3h07m"}, {86400000, "1d00h"}, {187200000, "2d04h"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        fmt_duration(cases[i].ms, buf, sizeof buf);
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("%lld ms: '%s', expected '%s'", (long long)cases[i].ms, buf, cases[i].want);
    }
}

static void test_ages(void **state) {
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {-5000, "0s"},    {0, "0s"},       {59999, "59s"},    {60000, "1m"},
        {3599999, "59m"}, {3600000, "1h"}, {86399999, "23h"}, {86400000 * 3LL, "3d"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        fmt_age(cases[i].ms, buf, sizeof buf);
        if (strcmp(buf, cases[i].want) != 0)
            fail_msg("%lld ms: '%s', expected '%s'", (long long)cases[i].ms, buf, cases[i].want);
    }
}

static void test_parse_time(void **state) {
    (void)state;
    assert_int_equal(parse_time_ms("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(parse_time_ms("2026-11-27T11:40:57.123Z"), 1795779657123LL);
    assert_int_equal(parse_time_ms("2026-11-27T11:40:57Z"), 1795779657000LL);
    assert_int_equal(parse_time_ms("2026-11-27T11:40:57.1Z"), 1795779657100LL);
    assert_int_equal(parse_time_ms("2026-11-27 11:40:57Z"), -1);
    assert_int_equal(parse_time_ms("2026-11-27T11:40:57.123+01:00"), -1);
    assert_int_equal(parse_time_ms("2026-13-27T11:40:57.123Z"), -1);
    assert_int_equal(parse_time_ms(NULL), -1);
}

static void test_shell_words(void **state) {
    char buf[64];
    (void)state;
    buf[0] = '\0';
    fmt_shell_word("ls", buf, sizeof buf);
    assert_string_equal(buf, "ls");
    buf[0] = '\0';
    fmt_shell_word("a b", buf, sizeof buf);
    assert_string_equal(buf, "'a b'");
    buf[0] = '\0';
    fmt_shell_word("it's", buf, sizeof buf);
    assert_string_equal(buf, "'it'\\''s'");
    buf[0] = '\0';
    fmt_shell_word("", buf, sizeof buf);
    assert_string_equal(buf, "''");
    strcpy(buf, "x ");
    fmt_shell_word("--name=a", buf, sizeof buf);
    assert_string_equal(buf, "x --name=a");
    char small[6] = "";
    fmt_shell_word("abcdefgh", small, sizeof small);
    assert_string_equal(small, "abcde");
}

static char *print_table(struct table *t) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    table_print(t, f);
    fclose(f);
    return buf;
}

static void test_table_alignment(void **state) {
    const char *h[3] = {"ID", "NAME", "STATE"};
    const char *r1[3] = {"j1", "a-long-name", "running"};
    const char *r2[3] = {"j100", NULL, "succeeded"};
    const char *r3[3] = {"j2", "h\xc3\xa9llo", "failed"}; /* 5 characters, 6 bytes */
    struct table *t = table_new(3, h);
    (void)state;
    assert_non_null(t);
    assert_int_equal(table_add(t, r1), 0);
    assert_int_equal(table_add(t, r2), 0);
    assert_int_equal(table_add(t, r3), 0);
    char *out = print_table(t);
    assert_string_equal(out, "ID    NAME         STATE\n"
                             "j1    a-long-name  running\n"
                             "j100  -            succeeded\n"
                             "j2    h\xc3\xa9llo        failed\n");
    free(out);
    table_free(t);
}

static void test_table_headers_only(void **state) {
    const char *h[2] = {"ID", "STATE"};
    struct table *t = table_new(2, h);
    (void)state;
    char *out = print_table(t);
    assert_string_equal(out, "ID  STATE\n");
    free(out);
    table_free(t);
}

static json_t *job(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void test_list_row(void **state) {
    char cells[LIST_COLS][128];
    int64_t now = parse_time_ms("2026-11-27T12:00:00.000Z");
    (void)state;
    json_t *j = job("{\"id\":\"j7\",\"name\":\"build\",\"state\":\"succeeded\",\"exit_code\":0,"
                    "\"signal\":null,\"executor\":\"process\",\"node\":null,"
                    "\"created_at\":\"2026-11-27T11:55:00.000Z\","
                    "\"started_at\":\"2026-11-27T11:55:01.000Z\","
                    "\"finished_at\":\"2026-11-27T11:56:06.000Z\"}");
    fmt_list_row(j, now, cells);
    const char *want[LIST_COLS] = {"j7", "build", "succeeded", "0", "process", "-", "5m", "1m05s"};
    for (int i = 0; i < LIST_COLS; i++)
        assert_string_equal(cells[i], want[i]);
    json_decref(j);

    /* Running: the duration grows with now; killed: EXIT names the signal. */
    j = job("{\"id\":\"j8\",\"name\":null,\"state\":\"running\",\"exit_code\":null,\"signal\":null,"
            "\"executor\":\"process\",\"created_at\":\"2026-11-27T11:59:58.000Z\","
            "\"started_at\":\"2026-11-27T11:59:58.500Z\",\"finished_at\":null}");
    fmt_list_row(j, now, cells);
    assert_string_equal(cells[1], "-");
    assert_string_equal(cells[3], "-");
    assert_string_equal(cells[6], "2s");
    assert_string_equal(cells[7], "1.5s");
    json_decref(j);
    j = job("{\"id\":\"j9\",\"state\":\"failed\",\"exit_code\":null,\"signal\":\"SIGKILL\","
            "\"created_at\":\"2026-11-27T11:00:00.000Z\",\"started_at\":null}");
    fmt_list_row(j, now, cells);
    assert_string_equal(cells[3], "SIGKILL");
    assert_string_equal(cells[6], "1h");
    assert_string_equal(cells[7], "-");
    json_decref(j);
}

static void test_status_view(void **state) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;
    json_t *j = job("{\"id\":\"j3\",\"state\":\"failed\",\"exit_code\":3,\"signal\":null,"
                    "\"error\":\"exited with code 3\",\"command\":[\"sh\",\"-c\",\"exit 3\"],"
                    "\"executor\":\"process\",\"labels\":{\"team\":\"data\"},\"attempts\":1,"
                    "\"retries\":0,\"stdout_bytes\":4,\"stderr_bytes\":0,"
                    "\"created_at\":\"2026-11-27T11:59:00.000Z\","
                    "\"started_at\":\"2026-11-27T11:59:00.000Z\","
                    "\"finished_at\":\"2026-11-27T11:59:02.000Z\"}");
    fmt_job(f, j, parse_time_ms("2026-11-27T12:00:00.000Z"));
    fclose(f);
    assert_non_null(strstr(buf, "ID:        j3\n"));
    assert_non_null(strstr(buf, "Exit:      3\n"));
    assert_non_null(strstr(buf, "Command:   sh -c 'exit 3'\n"));
    assert_non_null(strstr(buf, "Labels:    team=data\n"));
    assert_non_null(strstr(buf, "Finished:  2026-11-27T11:59:02.000Z (58s ago)\n"));
    assert_non_null(strstr(buf, "Duration:  2.0s\n"));
    assert_non_null(strstr(buf, "Error:     exited with code 3\n"));
    assert_null(strstr(buf, "Name:")); /* absent fields are left out */
    assert_null(strstr(buf, "Waiting:"));
    free(buf);
    json_decref(j);
}

static void test_exit_status(void **state) {
    static const struct {
        const char *doc;
        int cancel_signal;
        int want;
    } cases[] = {
        {"{\"state\":\"succeeded\",\"exit_code\":0}", 0, 0},
        {"{\"state\":\"failed\",\"exit_code\":3}", 0, 3},
        {"{\"state\":\"failed\",\"exit_code\":256}", 0, 1},
        {"{\"state\":\"failed\",\"exit_code\":null,\"signal\":\"SIGKILL\"}", 0, 137},
        {"{\"state\":\"failed\",\"exit_code\":null,\"signal\":null,\"error\":\"command not "
         "found\"}",
         0, 127},
        {"{\"state\":\"timed_out\",\"exit_code\":null,\"signal\":\"SIGTERM\"}", 0, 124},
        {"{\"state\":\"cancelled\",\"signal\":\"SIGTERM\"}", 2, 130},
        {"{\"state\":\"cancelled\",\"signal\":\"SIGTERM\"}", 15, 143},
        {"{\"state\":\"cancelled\",\"signal\":\"SIGKILL\"}", 0, 137},
        {"{\"state\":\"cancelled\",\"exit_code\":null,\"signal\":null}", 0, 130},
        {"{\"state\":\"running\"}", 0, -1},
        {"{}", 0, -1},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = job(cases[i].doc);
        int got = job_exit_status(j, cases[i].cancel_signal);
        if (got != cases[i].want)
            fail_msg("%s: %d, expected %d", cases[i].doc, got, cases[i].want);
        json_decref(j);
    }
}

static void test_batch_progress_and_status(void **state) {
    char buf[256];
    json_t *b = json_loads("{\"id\":\"b12\",\"total\":1000,\"done\":false,\"counts\":{\"queued\":"
                           "648,\"running\":12,\"succeeded\":330,\"failed\":10,\"cancelled\":0,"
                           "\"timed_out\":0}}",
                           0, NULL);
    (void)state;
    assert_non_null(b);
    fmt_batch_progress(b, buf, sizeof buf);
    assert_string_equal(buf, "b12: 340/1000 done (succeeded 330, failed 10), 12 running");
    assert_int_equal(batch_exit_status(b), -1);
    /* Done, with every kind of failure, nothing running. */
    json_t *counts = json_object_get(b, "counts");
    json_object_set_new(counts, "queued", json_integer(0));
    json_object_set_new(counts, "running", json_integer(0));
    json_object_set_new(counts, "succeeded", json_integer(985));
    json_object_set_new(counts, "cancelled", json_integer(3));
    json_object_set_new(counts, "timed_out", json_integer(2));
    json_object_set_new(b, "done", json_true());
    fmt_batch_progress(b, buf, sizeof buf);
    assert_string_equal(buf,
                        "b12: 1000/1000 done (succeeded 985, failed 10, cancelled 3, timed out 2)");
    assert_int_equal(batch_exit_status(b), 1);
    json_object_set_new(counts, "succeeded", json_integer(1000));
    json_object_set_new(counts, "failed", json_integer(0));
    json_object_set_new(counts, "cancelled", json_integer(0));
    json_object_set_new(counts, "timed_out", json_integer(0));
    fmt_batch_progress(b, buf, sizeof buf);
    assert_string_equal(buf, "b12: 1000/1000 done (succeeded 1000)");
    assert_int_equal(batch_exit_status(b), 0);
    /* A short buffer truncates, NUL-terminated. */
    fmt_batch_progress(b, buf, 10);
    assert_string_equal(buf, "b12: 1000");
    json_decref(b);
}

static void test_batch_view(void **state) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    json_t *b = json_loads("{\"id\":\"b3\",\"name\":\"thumbs\",\"concurrency\":4,\"total\":10,"
                           "\"done\":false,\"counts\":{\"queued\":5,\"running\":2,"
                           "\"succeeded\":3,\"failed\":0,\"cancelled\":0,\"timed_out\":0},"
                           "\"created_at\":\"2026-11-27T12:00:00.000Z\"}",
                           0, NULL);
    (void)state;
    assert_non_null(b);
    fmt_batch(f, b, parse_time_ms("2026-11-27T12:00:05.000Z"));
    fclose(f);
    assert_non_null(strstr(out, "ID:        b3\n"));
    assert_non_null(strstr(out, "Name:      thumbs\n"));
    assert_non_null(strstr(out, "Done:      no\n"));
    assert_non_null(strstr(out, "Jobs:      10, at most 4 running at a time\n"));
    assert_non_null(strstr(out, "Queued:    5\n"));
    assert_non_null(strstr(out, "Timed out: 0\n"));
    assert_non_null(strstr(out, "(5s ago)"));
    free(out);
    json_decref(b);
}

static void test_node_row_and_view(void **state) {
    char cells[NODE_COLS][256];
    int64_t now = parse_time_ms("2026-11-27T12:00:00.000Z");
    char *out = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;
    json_t *n = job("{\"id\":\"n0123456789abcdef\",\"url\":\"http://node-1:8081\","
                    "\"state\":\"draining\",\"labels\":{\"gpu\":\"yes\",\"zone\":\"a\"},"
                    "\"capacity\":4,\"running\":1,\"last_seen\":\"2026-11-27T11:59:57.000Z\","
                    "\"registered_at\":\"2026-11-27T10:00:00.000Z\",\"version\":null}");
    fmt_node_row(n, now, cells);
    const char *want[NODE_COLS] = {"n0123456789abcdef", "draining", "http://node-1:8081", "1/4",
                                   "gpu=yes,zone=a",    "3s ago"};
    for (int i = 0; i < NODE_COLS; i++)
        assert_string_equal(cells[i], want[i]);
    f = open_memstream(&out, &len);
    fmt_node(f, n, now);
    fclose(f);
    assert_non_null(strstr(out, "ID:        n0123456789abcdef\n"));
    assert_non_null(strstr(out, "State:     draining\n"));
    assert_non_null(strstr(out, "Labels:    gpu=yes zone=a\n"));
    assert_non_null(strstr(out, "Running:   1 of 4\n"));
    assert_non_null(strstr(out, "Last seen: 2026-11-27T11:59:57.000Z (3s ago)\n"));
    assert_null(strstr(out, "Version:")); /* null is left out */
    free(out);
    json_decref(n);

    /* No labels is "-"; labels past the cell end in "...". */
    n = job("{\"id\":\"n1\",\"state\":\"down\",\"labels\":{},\"capacity\":1,\"running\":0}");
    fmt_node_row(n, now, cells);
    assert_string_equal(cells[4], "-");
    assert_string_equal(cells[5], "-");
    json_decref(n);
    json_t *labels = json_object();
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "key%02d", i);
        json_object_set_new(labels, key, json_string("value"));
    }
    n = json_pack("{s:s,s:o}", "id", "n2", "labels", labels);
    fmt_node_row(n, now, cells);
    assert_int_equal(strlen(cells[4]), 255);
    assert_string_equal(cells[4] + 252, "...");
    json_decref(n);
}

static void test_status_view_of_a_task(void **state) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    json_t *job =
        json_pack("{s:s, s:s, s:s, s:{s:i}, s:s, s:i, s:i}", "id", "j7", "state", "succeeded",
                  "task", "echo", "args", "n", 1, "batch", "b2", "attempts", 1, "retries", 0);
    (void)state;
    fmt_job(f, job, 0);
    fclose(f);
    assert_non_null(strstr(out, "Task:      echo\n"));
    assert_non_null(strstr(out, "Args:      {\"n\":1}\n"));
    assert_non_null(strstr(out, "Batch:     b2\n"));
    free(out);
    json_decref(job);
}

static void test_utf8_sanitize(void **state) {
    size_t n;
    char *s;
    (void)state;
    s = utf8_sanitize("h\xc3\xa9", 3, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "h\xc3\xa9", 3);
    free(s);
    s = utf8_sanitize("a\xff"
                      "b",
                      3, &n);
    assert_string_equal(s, "a\xef\xbf\xbd"
                           "b");
    free(s);
    s = utf8_sanitize("\xc3", 1, &n); /* cut short */
    assert_string_equal(s, "\xef\xbf\xbd");
    free(s);
    s = utf8_sanitize("\xed\xa0\x80", 3, &n); /* a surrogate */
    assert_int_equal(n, 9);
    free(s);
    s = utf8_sanitize("a\0b", 3, &n);
    assert_int_equal(n, 3);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_ages),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_shell_words),
        cmocka_unit_test(test_table_alignment),
        cmocka_unit_test(test_table_headers_only),
        cmocka_unit_test(test_list_row),
        cmocka_unit_test(test_status_view),
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_utf8_sanitize),
        cmocka_unit_test(test_batch_progress_and_status),
        cmocka_unit_test(test_batch_view),
        cmocka_unit_test(test_status_view_of_a_task),
        cmocka_unit_test(test_node_row_and_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
