/*
 * test_util.c: clocks, timestamps and job ids (lib/util.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "jobd/spec.h"
#include "jobd/util.h"

static const struct {
    int64_t num;
    const char *id;
} ids[] = {
    {1, "j1"},   {9, "j9"},     {10, "ja"},     {35, "jz"},
    {36, "j10"}, {1295, "jzz"}, {1296, "j100"}, {INT64_MAX, "j1y2p0ij32e8e7"},
};

static void test_format_id(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char buf[JOBD_MAX_ID_BYTES];
        jobd_format_id(ids[i].num, buf, sizeof(buf));
        assert_string_equal(buf, ids[i].id);
    }
}

static void test_format_id_not_a_job_number(void **state) {
    (void)state;
    char buf[JOBD_MAX_ID_BYTES] = "x";
    jobd_format_id(0, buf, sizeof(buf));
    assert_string_equal(buf, "");
    strcpy(buf, "x");
    jobd_format_id(-5, buf, sizeof(buf));
    assert_string_equal(buf, "");
    strcpy(buf, "x");
    jobd_format_id(INT64_MIN, buf, sizeof(buf));
    assert_string_equal(buf, "");
}

static void test_format_id_truncates(void **state) {
    (void)state;
    char buf[8];
    memset(buf, 'x', sizeof(buf));
    jobd_format_id(1296, buf, 3);
    assert_string_equal(buf, "j1");
    assert_int_equal(buf[3], 'x');
    jobd_format_id(1296, buf, 1);
    assert_string_equal(buf, "");
    buf[0] = 'y';
    jobd_format_id(1296, buf, 0);
    assert_int_equal(buf[0], 'y');
}

static void test_parse_id(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_int_equal(jobd_parse_id(ids[i].id), ids[i].num);
}

static void test_parse_id_rejects(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "j",
        "j0",
        "j00",
        "j01",
        "J1",
        "jA",
        "j1A",
        "1",
        "k1",
        "j-1",
        "j+1",
        "j 1",
        " j1",
        "j1 ",
        "j1\n",
        "j1.",
        "j_1",
        "j\xc3\xa9",
        "j1y2p0ij32e8e8",  /* INT64_MAX + 1 */
        "j1y2p0ij32e8e7z", /* INT64_MAX * 36 + 35 */
        "jzzzzzzzzzzzzz",  /* 14 digits */
        "jzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (jobd_parse_id(bad[i]) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(jobd_parse_id(NULL), -1);
}

static void test_id_round_trip(void **state) {
    (void)state;
    for (int64_t n = 1; n < 100000; n += 7) {
        char buf[JOBD_MAX_ID_BYTES];
        jobd_format_id(n, buf, sizeof(buf));
        assert_int_equal(jobd_parse_id(buf), n);
    }
    for (int shift = 0; shift < 63; shift++) {
        char buf[JOBD_MAX_ID_BYTES];
        int64_t n = (int64_t)1 << shift;
        jobd_format_id(n, buf, sizeof(buf));
        assert_int_equal(jobd_parse_id(buf), n);
        jobd_format_id(INT64_MAX - n, buf, sizeof(buf));
        assert_int_equal(jobd_parse_id(buf), INT64_MAX - n);
    }
}

static void test_format_time(void **state) {
    (void)state;
    static const struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1, "1970-01-01T00:00:00.001Z"},
        {999, "1970-01-01T00:00:00.999Z"},
        {1000, "1970-01-01T00:00:01.000Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {-1000, "1969-12-31T23:59:59.000Z"},
        {-1001, "1969-12-31T23:59:58.999Z"},
        {1795779657123, "2026-11-27T11:40:57.123Z"},
        {951868799999, "2000-02-29T23:59:59.999Z"},
        {253402300799999, "9999-12-31T23:59:59.999Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[32];
        jobd_format_time(cases[i].ms, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
    }
}

static void test_format_time_small_buffer(void **state) {
    (void)state;
    char buf[11];
    jobd_format_time(1795779657123, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-27");
}

static void test_format_time_out_of_range(void **state) {
    (void)state;
    /* Far years print with more digits and still fit 32 bytes. */
    char buf[32];
    jobd_format_time(INT64_MAX, buf, sizeof(buf));
    assert_string_equal(buf, "292278994-08-17T07:12:55.807Z");
    jobd_format_time(INT64_MIN, buf, sizeof(buf));
    assert_int_equal(buf[strlen(buf) - 1], 'Z');
}

static void test_clocks(void **state) {
    (void)state;
    int64_t now = jobd_now_ms();
    assert_true(now > 1577836800000); /* after 2020-01-01 */
    assert_true(now < 4102444800000); /* before 2100-01-01 */
    int64_t a = jobd_mono_ms();
    int64_t b = jobd_mono_ms();
    assert_true(a > 0);
    assert_true(b >= a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_id),
        cmocka_unit_test(test_format_id_not_a_job_number),
        cmocka_unit_test(test_format_id_truncates),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_parse_id_rejects),
        cmocka_unit_test(test_id_round_trip),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_format_time_small_buffer),
        cmocka_unit_test(test_format_time_out_of_range),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
