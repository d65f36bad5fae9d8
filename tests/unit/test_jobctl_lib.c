/*
 * test_jobctl_lib.c: the client library (lib/client.c) without a server:
 * handle options, argument checks, and transport errors against a closed
 * port. What it does against a real jobd is covered by
 * tests/integration/test_jobctl.py through jobctl.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jobd/client.h"

/* A loopback port that nothing listens on: bound, then closed. */
static int closed_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_new_checks_the_url(void **state) {
    struct jobd_client_error err;
    struct jobd_client_options o = {0};
    struct jobd_client *c;
    (void)state;
    assert_null(jobd_client_new(&o, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_int_equal(err.kind, JOBD_CLIENT_ERR_USAGE);
    o.url = "ftp://example.org";
    assert_null(jobd_client_new(&o, &err));
    assert_int_equal(err.code, -EINVAL);
    assert_non_null(strstr(err.message, "only http:// and https://"));
    o.url = "127.0.0.1:8080/";
    c = jobd_client_new(&o, &err);
    assert_non_null(c);
    assert_string_equal(jobd_client_url(c), "http://127.0.0.1:8080");
    jobd_client_free(c);
    o.url = "https://h.example:9/base//";
    o.token = "a\nb";
    assert_null(jobd_client_new(&o, &err));
    assert_int_equal(err.code, -EINVAL);
    jobd_client_free(NULL);
}

static void test_arguments_are_checked(void **state) {
    struct jobd_client_error err;
    struct jobd_client_options o = {.url = "http://127.0.0.1:1"};
    struct jobd_client *c = jobd_client_new(&o, &err);
    json_t *arr = json_array();
    (void)state;
    assert_non_null(c);
    assert_int_equal(jobd_client_get(c, "", NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_cancel(c, NULL, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_submit_json(c, arr, NULL, NULL, &err), -EINVAL);
    struct jobd_submit_options so = {.wait = 301};
    json_t *spec = json_pack("{s:[s]}", "command", "true");
    assert_int_equal(jobd_client_submit_json(c, spec, &so, NULL, &err), -EINVAL);
    so.wait = 0;
    so.idempotency_key = "a\r\nX-Evil: 1";
    assert_int_equal(jobd_client_submit_json(c, spec, &so, NULL, &err), -EINVAL);
    struct jobd_follow_options fo = {.wake_fd = -1};
    assert_int_equal(jobd_client_follow(c, "j1", &fo, NULL, NULL, &err), -EINVAL);
    struct jobd_list_query q = {.limit = 1001};
    assert_int_equal(jobd_client_list_page(c, &q, NULL, &err), -EINVAL);
    char *data;
    size_t len;
    assert_int_equal(jobd_client_read_output(c, "j1", JOBD_STDOUT, -1, &data, &len, &err), -EINVAL);
    /* Batches: an empty or non-array list of specs, a missing id, a wait out of range. */
    assert_int_equal(jobd_client_batch_submit(c, arr, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.message, "non-empty JSON array"));
    assert_int_equal(jobd_client_batch_submit(c, spec, NULL, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_batch_submit_json(c, arr, 0, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_batch_get(c, "", 0, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.message, "no batch id"));
    assert_int_equal(jobd_client_batch_get(c, "b1", 301, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_batch_get(c, "b1", -1, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_batch_wait(c, NULL, 1, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_batch_cancel(c, NULL, NULL, &err), -EINVAL);
    json_t *jobs = json_pack("[O]", spec);
    struct jobd_batch_options bo = {.concurrency = -1};
    assert_int_equal(jobd_client_batch_submit(c, jobs, &bo, NULL, &err), -EINVAL);
    bo.concurrency = 1;
    bo.wait = 400;
    assert_int_equal(jobd_client_batch_submit(c, jobs, &bo, NULL, &err), -EINVAL);
    /* Nodes: a missing id. */
    assert_int_equal(jobd_client_node_get(c, "", NULL, &err), -EINVAL);
    assert_non_null(strstr(err.message, "no node id"));
    assert_int_equal(jobd_client_node_drain(c, NULL, NULL, &err), -EINVAL);
    assert_int_equal(jobd_client_node_delete(c, NULL, &err), -EINVAL);
    /* The caller's array is borrowed: still one reference, unchanged. */
    assert_int_equal(jobs->refcount, 1);
    assert_int_equal(json_array_size(jobs), 1);
    json_decref(jobs);
    json_decref(spec);
    json_decref(arr);
    jobd_client_free(c);
}

static int no_output(void *arg, enum jobd_stream s, const char *d, size_t n) {
    (void)arg, (void)s, (void)d, (void)n;
    return 0;
}

static void test_cannot_connect(void **state) {
    char url[64];
    struct jobd_client_error err;
    struct jobd_client_options o = {.url = url, .connect_timeout_ms = 2000};
    struct jobd_client *c;
    json_t *v = NULL;
    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", closed_port());
    c = jobd_client_new(&o, &err);
    assert_non_null(c);
    assert_int_equal(jobd_client_healthz(c, &v, &err), -ECONNREFUSED);
    assert_null(v);
    assert_int_equal(err.kind, JOBD_CLIENT_ERR_TRANSPORT);
    assert_int_equal(err.status, 0);
    assert_true(err.curl_code != 0);
    assert_non_null(strstr(err.message, "cannot connect to"));
    assert_int_equal(jobd_client_wait(c, "j1", 1, &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_follow(c, "j1", NULL, no_output, NULL, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_tasks(c, &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_batch_wait(c, "b1", 1, &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_batch_cancel(c, "b1", &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_nodes(c, &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_node_get(c, "n1", &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_node_drain(c, "n1", &v, &err), -ECONNREFUSED);
    assert_int_equal(jobd_client_node_delete(c, "n1", &err), -ECONNREFUSED);
    assert_null(v);
    jobd_client_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_checks_the_url),
        cmocka_unit_test(test_arguments_are_checked),
        cmocka_unit_test(test_cannot_connect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
