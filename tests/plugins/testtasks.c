/*
 * testtasks.c: a task plugin for tests only (jobd_testtasks.so).
 *
 *   crash          dies of SIGSEGV (run it under the process executor).
 *   spin           {"seconds": n} busy-loops n seconds, ignoring cancellation.
 *   counter        {"n": n} adds 1 to a counter of the plugin n times, under a
 *                  mutex; result {"increments": n}.
 *   counter_total  result {"total": the counter}, to check that totals are exact.
 *
 * `counter` does a plain read-modify-write under `counter_lock`: were the
 * lock missing, ThreadSanitizer would say so and totals would come out short.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "jobd/task.h"

#define SPIN_MAX_SECONDS 3600.0
#define COUNTER_MAX_N    100000000

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t counter; /* guarded by counter_lock */

static int crash(const json_t *args, jobd_task *t) {
    /* Restore the default action first: a sanitizer's handler would turn this into an exit. */
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int spin_check(const json_t *args, char *field, size_t field_len, char *msg,
                      size_t msg_len) {
    const json_t *s = json_object_get(args, "seconds");
    if (!json_is_number(s) || json_number_value(s) < 0 || json_number_value(s) > SPIN_MAX_SECONDS) {
        snprintf(field, field_len, "seconds");
        snprintf(msg, msg_len, "must be a number of seconds, 0..%.0f", SPIN_MAX_SECONDS);
        return -1;
    }
    return 0;
}

static int spin(const json_t *args, jobd_task *t) {
    double until = now() + json_number_value(json_object_get(args, "seconds"));
    volatile uint64_t turns = 0;

    while (now() < until) /* never looks at jobd_task_cancelled, on purpose */
        turns++;
    jobd_task_printf(t, "spun %llu turns\n", (unsigned long long)turns);
    return 0;
}

static int counter_check(const json_t *args, char *field, size_t field_len, char *msg,
                         size_t msg_len) {
    const json_t *n = json_object_get(args, "n");
    if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > COUNTER_MAX_N) {
        snprintf(field, field_len, "n");
        snprintf(msg, msg_len, "must be an integer 0..%d", COUNTER_MAX_N);
        return -1;
    }
    return 0;
}

static int counter_run(const json_t *args, jobd_task *t) {
    json_int_t n = json_integer_value(json_object_get(args, "n"));

    for (json_int_t i = 0; i < n; i++) {
        pthread_mutex_lock(&counter_lock);
        int64_t v = counter;
        counter = v + 1;
        pthread_mutex_unlock(&counter_lock);
    }
    jobd_task_set_result(t, json_pack("{s:I}", "increments", n));
    return 0;
}

static int counter_total(const json_t *args, jobd_task *t) {
    pthread_mutex_lock(&counter_lock);
    int64_t v = counter;
    pthread_mutex_unlock(&counter_lock);
    jobd_task_set_result(t, json_pack("{s:I}", "total", (json_int_t)v));
    return 0;
}

int jobd_plugin_init(void);

int jobd_plugin_init(void) {
    static const struct jobd_task_def defs[] = {
        {"crash", "Die of SIGSEGV (tests).", crash, NULL},
        {"spin", "Busy-loop {\"seconds\": n}, ignoring cancel (tests).", spin, spin_check},
        {"counter", "Add 1 to a shared counter {\"n\": n} times (tests).", counter_run,
         counter_check},
        {"counter_total", "The shared counter's value (tests).", counter_total, NULL},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        int rc = jobd_task_register(&defs[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
