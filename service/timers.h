/*
 * timers.h: one thread that calls functions at monotonic deadlines.
 *
 * Callers own their struct timer. A callback runs on the timer thread WITH
 * the timers lock held, so after timers_cancel returns the callback is not
 * running and will not run. Hence a callback must be short, must not call
 * timers_* itself, and may take only locks that nobody holds while calling
 * timers_add or timers_cancel.
 */
#ifndef JOBD_TIMERS_H
#define JOBD_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timers;

struct timer {
    int64_t deadline; /* jobd_mono_ms() time */
    void (*fn)(void *arg);
    void *arg;
    size_t slot; /* private: index in the heap, or SIZE_MAX when not armed */
};

/* Initialise a timer as not armed. */
void timer_init(struct timer *t);

/* Start the thread. Return 0 or a negative errno. */
int timers_create(struct timers **out);

/* Arm (or re-arm) t to call fn(arg) at `deadline`. Return 0 or -ENOMEM. */
int timers_add(struct timers *tm, struct timer *t, int64_t deadline, void (*fn)(void *), void *arg);

/* Disarm t if armed. Idempotent. */
void timers_cancel(struct timers *tm, struct timer *t);

/* Stop the thread (pending timers never fire) and free. */
void timers_destroy(struct timers *tm);

#endif
