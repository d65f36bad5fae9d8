/*
 * test_job.c: the job state machine and the wire names of states and
 * executors (lib/job.c). The transition test walks the whole from x to table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jobd/job.h"

#define Q JOBD_QUEUED
#define R JOBD_RUNNING
#define S JOBD_SUCCEEDED
#define F JOBD_FAILED
#define C JOBD_CANCELLED
#define T JOBD_TIMED_OUT

/* The allowed moves, written out independently of the table in job.c. */
static const struct {
    enum jobd_state from, to;
} allowed[] = {
    {Q, R}, {Q, C}, {Q, F}, {R, S}, {R, F}, {R, C}, {R, T}, {R, Q},
};

static bool is_allowed(enum jobd_state from, enum jobd_state to) {
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (allowed[i].from == from && allowed[i].to == to)
            return true;
    }
    return false;
}

static void test_transition_table(void **state) {
    (void)state;
    int n_true = 0;
    for (int from = 0; from < JOBD_STATE_COUNT; from++) {
        for (int to = 0; to < JOBD_STATE_COUNT; to++) {
            bool got = jobd_state_can_transition(from, to);
            if (got != is_allowed(from, to))
                fail_msg("%s -> %s: got %d", jobd_state_name(from), jobd_state_name(to), got);
            n_true += got;
        }
    }
    assert_int_equal(n_true, 8);
}

static void test_nothing_leaves_a_final_state(void **state) {
    (void)state;
    for (int from = 0; from < JOBD_STATE_COUNT; from++) {
        if (!jobd_state_is_final(from))
            continue;
        for (int to = 0; to < JOBD_STATE_COUNT; to++)
            assert_false(jobd_state_can_transition(from, to));
    }
}

static void test_no_self_transition(void **state) {
    (void)state;
    for (int s = 0; s < JOBD_STATE_COUNT; s++)
        assert_false(jobd_state_can_transition(s, s));
}

static void test_out_of_range_transitions(void **state) {
    (void)state;
    assert_false(jobd_state_can_transition(JOBD_STATE_COUNT, Q));
    assert_false(jobd_state_can_transition(Q, JOBD_STATE_COUNT));
    assert_false(jobd_state_can_transition((enum jobd_state) - 1, R));
    assert_false(jobd_state_can_transition(Q, (enum jobd_state) - 1));
    assert_false(jobd_state_can_transition((enum jobd_state)1000, (enum jobd_state)1000));
}

static void test_is_final(void **state) {
    (void)state;
    assert_false(jobd_state_is_final(Q));
    assert_false(jobd_state_is_final(R));
    assert_true(jobd_state_is_final(S));
    assert_true(jobd_state_is_final(F));
    assert_true(jobd_state_is_final(C));
    assert_true(jobd_state_is_final(T));
    assert_false(jobd_state_is_final(JOBD_STATE_COUNT));
    assert_false(jobd_state_is_final((enum jobd_state) - 1));
}

static void test_state_names(void **state) {
    (void)state;
    static const char *const names[JOBD_STATE_COUNT] = {
        "queued", "running", "succeeded", "failed", "cancelled", "timed_out",
    };
    for (int s = 0; s < JOBD_STATE_COUNT; s++) {
        assert_string_equal(jobd_state_name(s), names[s]);
        enum jobd_state got = JOBD_STATE_COUNT;
        assert_int_equal(jobd_state_parse(names[s], &got), 0);
        assert_int_equal(got, s);
    }
    assert_null(jobd_state_name(JOBD_STATE_COUNT));
    assert_null(jobd_state_name((enum jobd_state) - 1));
}

static void test_state_parse_rejects(void **state) {
    (void)state;
    static const char *const bad[] = {"",          "Queued",   "QUEUED", "queued ", " queued",
                                      "timed-out", "timedout", "done",   "queue"};
    enum jobd_state out = JOBD_RUNNING;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(jobd_state_parse(bad[i], &out), -EINVAL);
    assert_int_equal(jobd_state_parse(NULL, &out), -EINVAL);
    assert_int_equal(out, JOBD_RUNNING);
}

static void test_executor_names(void **state) {
    (void)state;
    static const char *const names[JOBD_EXEC_COUNT] = {"process", "thread", "remote"};
    for (int e = 0; e < JOBD_EXEC_COUNT; e++) {
        assert_string_equal(jobd_executor_name(e), names[e]);
        enum jobd_executor got = JOBD_EXEC_COUNT;
        assert_int_equal(jobd_executor_parse(names[e], &got), 0);
        assert_int_equal(got, e);
    }
    assert_null(jobd_executor_name(JOBD_EXEC_COUNT));
    assert_null(jobd_executor_name((enum jobd_executor) - 1));
    enum jobd_executor out = JOBD_EXEC_REMOTE;
    assert_int_equal(jobd_executor_parse("Process", &out), -EINVAL);
    assert_int_equal(jobd_executor_parse("", &out), -EINVAL);
    assert_int_equal(jobd_executor_parse("threads", &out), -EINVAL);
    assert_int_equal(jobd_executor_parse(NULL, &out), -EINVAL);
    assert_int_equal(out, JOBD_EXEC_REMOTE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_nothing_leaves_a_final_state),
        cmocka_unit_test(test_no_self_transition),
        cmocka_unit_test(test_out_of_range_transitions),
        cmocka_unit_test(test_is_final),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_state_parse_rejects),
        cmocka_unit_test(test_executor_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
