/*
 * test_fuzz_regressions.c: the fuzz targets' checks (tests/fuzz/fuzz_checks.c)
 * in the normal build, without libFuzzer.
 *
 * Two kinds of cases. Every seed of tests/fuzz/corpus/<target>/ runs through
 * its target's check, so the seeds stay valid and the properties stay true
 * for them. And each input that once made a fuzz target fail is kept here,
 * named after what broke, next to its copy in the corpus: a fix that comes
 * undone fails this test in `make test` (and under ASan in `make
 * test-asan`), not only in a fuzzing run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_checks.h"
#include "tasks_builtin.h"

#ifndef JOBD_FUZZ_CORPUS
#error "JOBD_FUZZ_CORPUS must name tests/fuzz/corpus"
#endif

/* A check of fuzz_checks.h, with the output check's directory bound. */
typedef int (*check_fn)(const uint8_t *data, size_t size);

static char out_dir[PATH_MAX];

static int check_output(const uint8_t *data, size_t size) {
    return fuzz_check_output(out_dir, data, size);
}

/* One input that once failed a check: the target, and the bytes. */
struct regression {
    const char *name; /* what broke */
    check_fn check;
    const char *data;
    size_t size;
};

#define CASE(name, check, lit)                                                                     \
    { name, check, lit, sizeof(lit) - 1 }

/* Add each new one above the end marker. */
static const struct regression regressions[] = {
    /*
     * Cap 30000 (head 15000): the stream stayed in memory up to 16384 bytes,
     * all readable, then spilled on the next byte and readable fell back to
     * the head. Readers had been shown bytes past the head, which the tail
     * overwrites once the stream passes the cap (service/output.c,
     * inline_fits). Also corpus/fuzz_output/regress_inline_past_head.
     */
    CASE("output: inline stream shown past its head, then taken back at the spill", check_output,
         "\x20\x30\x75\xff\xe3\xe3\xe3"),
    {NULL, NULL, NULL, 0},
};

/* Read a whole file into a new buffer; NULL on failure. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rbe");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n == cap) {
            uint8_t *p = realloc(buf, cap = cap ? cap * 2 : 4096);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Run `check` on every file of corpus/<target>; fail on the first that fails it. */
static void run_corpus(const char *target, check_fn check) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/%s", JOBD_FUZZ_CORPUS, target);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX * 2];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        size_t len = 0;
        uint8_t *data = read_file(path, &len);
        assert_non_null(data);
        int rc = check(data, len);
        free(data);
        if (rc != 0)
            fail_msg("%s fails its check", path);
        seen++;
    }
    closedir(d);
    assert_true(seen > 0);
}

static void test_corpus_spec(void **state) {
    run_corpus("fuzz_spec", fuzz_check_spec);
}

static void test_corpus_batch(void **state) {
    run_corpus("fuzz_batch", fuzz_check_batch);
}

static void test_corpus_route(void **state) {
    run_corpus("fuzz_route", fuzz_check_route);
}

static void test_corpus_output(void **state) {
    run_corpus("fuzz_output", check_output);
}

static void test_corpus_node(void **state) {
    run_corpus("fuzz_node", fuzz_check_node);
}

static void test_regressions(void **state) {
    for (const struct regression *r = regressions; r->name != NULL; r++) {
        if (r->check((const uint8_t *)r->data, r->size) != 0)
            fail_msg("regression: %s", r->name);
    }
}

static int setup(void **state) {
    const char *tmp = getenv("TMPDIR");
    snprintf(out_dir, sizeof(out_dir), "%s/jobd-fuzz-reg-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(out_dir) == NULL)
        return -1;
    /* Task specs are checked against the builtin tasks, as jobd does. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || tasks_builtin_register() != 0)
        return -1;
    return 0;
}

static int teardown(void **state) {
    curl_global_cleanup();
    return rmdir(out_dir) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_spec),  cmocka_unit_test(test_corpus_batch),
        cmocka_unit_test(test_corpus_route), cmocka_unit_test(test_corpus_output),
        cmocka_unit_test(test_corpus_node),  cmocka_unit_test(test_regressions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
