/*
 * timers.c: a binary min-heap of caller-owned timers and one thread that
 * sleeps on a condition variable until the earliest deadline.
 *
 * Locking: tm->lock guards the heap, every armed timer's `slot`, and `stop`.
 * Callbacks run with tm->lock held (see timers.h for what that allows).
 */
#include "timers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "jobd/util.h"

struct timers {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when the earliest deadline changes or on stop */
    struct timer **heap;
    size_t len, cap;
    bool stop;
    pthread_t thread;
};

void timer_init(struct timer *t) {
    t->deadline = 0;
    t->fn = NULL;
    t->arg = NULL;
    t->slot = SIZE_MAX;
}

static void heap_set(struct timers *tm, size_t i, struct timer *t) {
    tm->heap[i] = t;
    t->slot = i;
}

static void sift_up(struct timers *tm, size_t i) {
    struct timer *t = tm->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (tm->heap[parent]->deadline <= t->deadline)
            break;
        heap_set(tm, i, tm->heap[parent]);
        i = parent;
    }
    heap_set(tm, i, t);
}

static void sift_down(struct timers *tm, size_t i) {
    struct timer *t = tm->heap[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = t->deadline;
        if (l < tm->len && tm->heap[l]->deadline < best) {
            m = l;
            best = tm->heap[l]->deadline;
        }
        if (r < tm->len && tm->heap[r]->deadline < best)
            m = r;
        if (m == i)
            break;
        heap_set(tm, i, tm->heap[m]);
        i = m;
    }
    heap_set(tm, i, t);
}

/* Remove the timer at slot i. Caller holds the lock. */
static void heap_remove(struct timers *tm, size_t i) {
    struct timer *t = tm->heap[i];

    t->slot = SIZE_MAX;
    tm->len--;
    if (i == tm->len)
        return;
    struct timer *moved = tm->heap[tm->len];
    heap_set(tm, i, moved);
    sift_down(tm, i);
    sift_up(tm, moved->slot);
}

static void *timers_main(void *arg) {
    struct timers *tm = arg;

    pthread_mutex_lock(&tm->lock);
    while (!tm->stop) {
        int64_t now = jobd_mono_ms();
        if (tm->len > 0 && tm->heap[0]->deadline <= now) {
            struct timer *t = tm->heap[0];
            heap_remove(tm, 0);
            t->fn(t->arg);
            continue;
        }
        if (tm->len == 0) {
            pthread_cond_wait(&tm->cond, &tm->lock);
        } else {
            int64_t wait = tm->heap[0]->deadline - now;
            struct timespec ts;
            jobd_mono_after(wait, &ts);
            pthread_cond_timedwait(&tm->cond, &tm->lock, &ts);
        }
    }
    pthread_mutex_unlock(&tm->lock);
    return NULL;
}

int timers_create(struct timers **out) {
    struct timers *tm = calloc(1, sizeof *tm);
    pthread_condattr_t ca;
    int rc;

    if (!tm)
        return -ENOMEM;
    pthread_mutex_init(&tm->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tm->cond, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&tm->thread, NULL, timers_main, tm);
    if (rc != 0) {
        pthread_cond_destroy(&tm->cond);
        pthread_mutex_destroy(&tm->lock);
        free(tm);
        return -rc;
    }
    *out = tm;
    return 0;
}

int timers_add(struct timers *tm, struct timer *t, int64_t deadline, void (*fn)(void *),
               void *arg) {
    pthread_mutex_lock(&tm->lock);
    if (t->slot != SIZE_MAX)
        heap_remove(tm, t->slot);
    if (tm->len == tm->cap) {
        size_t ncap = tm->cap ? tm->cap * 2 : 64;
        struct timer **nh = realloc(tm->heap, ncap * sizeof *nh);
        if (!nh) {
            pthread_mutex_unlock(&tm->lock);
            return -ENOMEM;
        }
        tm->heap = nh;
        tm->cap = ncap;
    }
    t->deadline = deadline;
    t->fn = fn;
    t->arg = arg;
    tm->heap[tm->len] = t;
    t->slot = tm->len++;
    sift_up(tm, t->slot);
    if (t->slot == 0)
        pthread_cond_signal(&tm->cond);
    pthread_mutex_unlock(&tm->lock);
    return 0;
}

void timers_cancel(struct timers *tm, struct timer *t) {
    pthread_mutex_lock(&tm->lock);
    if (t->slot != SIZE_MAX)
        heap_remove(tm, t->slot);
    pthread_mutex_unlock(&tm->lock);
}

void timers_destroy(struct timers *tm) {
    if (!tm)
        return;
    pthread_mutex_lock(&tm->lock);
    tm->stop = true;
    pthread_cond_signal(&tm->cond);
    pthread_mutex_unlock(&tm->lock);
    pthread_join(tm->thread, NULL);
    for (size_t i = 0; i < tm->len; i++)
        tm->heap[i]->slot = SIZE_MAX;
    free(tm->heap);
    pthread_cond_destroy(&tm->cond);
    pthread_mutex_destroy(&tm->lock);
    free(tm);
}
