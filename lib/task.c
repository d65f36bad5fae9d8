/*
 * task.c: the task registry and the API that task functions call.
 *
 * The registry is an array of pointers to heap copies of struct
 * jobd_task_def, kept sorted by name, so jobd_task_at lists tasks in name
 * order and jobd_task_lookup is a binary search. Entries are separate
 * allocations so that a pointer returned by lookup stays valid while the
 * array grows; only jobd_task_registry_clear frees them.
 *
 * Locking: `registry_lock` guards `registry`, `n_tasks` and `cap_tasks`, and
 * nothing else. No other lock is taken while it is held, and no task or
 * check function runs under it.
 *
 * A jobd_task belongs to its executor (lib/task_impl.h). The only fields
 * another thread touches are `cancelled` (an atomic) and the pair
 * sleep_lock/sleep_cond that jobd_task_cancel uses to wake jobd_task_sleep.
 * The current task of a thread is a _Thread_local pointer set by
 * jobd_task_enter.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobd/task.h"
#include "task_impl.h"

#define TASK_NAME_MAX  64   /* bytes of a task name, without its NUL */
#define TASK_PRINTF_SZ 1024 /* stack buffer of jobd_task_printf; longer output goes to the heap */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct jobd_task_def **registry; /* sorted by name; each entry owned */
static size_t n_tasks, cap_tasks;

static _Thread_local jobd_task *current_task;

/* ---- registry ---- */

static bool valid_name(const char *name) {
    size_t n = 0;

    if (name == NULL)
        return false;
    for (const char *p = name; *p != '\0'; p++, n++) {
        char c = *p;
        if (n >= TASK_NAME_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n > 0;
}

static void free_def(struct jobd_task_def *d) {
    if (d == NULL)
        return;
    free((char *)d->name);
    free((char *)d->description);
    free(d);
}

/*
 * Binary search for `name`. Return its index when found (and set *found), or
 * the index where it would be inserted. Call with registry_lock held.
 */
static size_t find_locked(const char *name, bool *found) {
    size_t lo = 0, hi = n_tasks;

    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, registry[mid]->name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int jobd_task_register(const struct jobd_task_def *def) {
    struct jobd_task_def *d;
    bool found;
    size_t at;
    int rc = 0;

    if (def == NULL || def->fn == NULL || !valid_name(def->name))
        return -EINVAL;
    d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->name = strdup(def->name);
    d->description = strdup(def->description != NULL ? def->description : "");
    d->fn = def->fn;
    d->check = def->check;
    if (d->name == NULL || d->description == NULL) {
        free_def(d);
        return -ENOMEM;
    }

    pthread_mutex_lock(&registry_lock);
    at = find_locked(d->name, &found);
    if (found) {
        rc = -EEXIST;
        goto out;
    }
    if (n_tasks == cap_tasks) {
        size_t cap = cap_tasks ? cap_tasks * 2 : 16;
        struct jobd_task_def **grown = realloc(registry, cap * sizeof(*grown));
        if (grown == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        registry = grown;
        cap_tasks = cap;
    }
    memmove(registry + at + 1, registry + at, (n_tasks - at) * sizeof(*registry));
    registry[at] = d;
    n_tasks++;
    d = NULL;
out:
    pthread_mutex_unlock(&registry_lock);
    free_def(d);
    return rc;
}

const struct jobd_task_def *jobd_task_lookup(const char *name) {
    const struct jobd_task_def *d = NULL;
    bool found;
    size_t at;

    if (name == NULL)
        return NULL;
    pthread_mutex_lock(&registry_lock);
    at = find_locked(name, &found);
    if (found)
        d = registry[at];
    pthread_mutex_unlock(&registry_lock);
    return d;
}

size_t jobd_task_count(void) {
    size_t n;

    pthread_mutex_lock(&registry_lock);
    n = n_tasks;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

const struct jobd_task_def *jobd_task_at(size_t i) {
    const struct jobd_task_def *d = NULL;

    pthread_mutex_lock(&registry_lock);
    if (i < n_tasks)
        d = registry[i];
    pthread_mutex_unlock(&registry_lock);
    return d;
}

void jobd_task_registry_clear(void) {
    struct jobd_task_def **old;
    size_t n;

    pthread_mutex_lock(&registry_lock);
    old = registry;
    n = n_tasks;
    registry = NULL;
    n_tasks = cap_tasks = 0;
    pthread_mutex_unlock(&registry_lock);
    for (size_t i = 0; i < n; i++)
        free_def(old[i]);
    free(old);
}

/*
 * Copy a check function's field path below "args" into `out`: "" gives
 * "args", "[2]" gives "args[2]", anything else "args.<sub>".
 */
static void args_path(char *out, size_t len, const char *sub) {
    if (sub[0] == '\0')
        snprintf(out, len, "args");
    else if (sub[0] == '[')
        snprintf(out, len, "args%s", sub);
    else
        snprintf(out, len, "args.%s", sub);
}

int jobd_task_check_spec(const char *task, const json_t *args, struct jobd_error *err) {
    const struct jobd_task_def *d = jobd_task_lookup(task);
    char sub[sizeof(err->field)] = "";
    char msg[sizeof(err->message)] = "";
    char path[sizeof(err->field) + 8];

    if (d == NULL)
        return jobd_error_set(err, "task", "no such task '%s' (GET /v1/tasks lists them)",
                              task != NULL ? task : "");
    if (d->check == NULL || d->check(args, sub, sizeof(sub), msg, sizeof(msg)) == 0)
        return 0;
    sub[sizeof(sub) - 1] = '\0';
    msg[sizeof(msg) - 1] = '\0';
    args_path(path, sizeof(path), sub);
    return jobd_error_set(err, path, "%s", msg[0] != '\0' ? msg : "is not valid for this task");
}

/* ---- the life of a jobd_task (executors) ---- */

int jobd_task_init(jobd_task *t) {
    pthread_condattr_t ca;
    int rc;

    memset(t, 0, sizeof(*t));
    atomic_init(&t->cancelled, false);
    rc = pthread_condattr_init(&ca);
    if (rc != 0)
        return -rc;
    rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&t->sleep_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -rc;
    rc = pthread_mutex_init(&t->sleep_lock, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&t->sleep_cond);
        return -rc;
    }
    return 0;
}

void jobd_task_destroy(jobd_task *t) {
    if (t == NULL)
        return;
    json_decref(t->result);
    t->result = NULL;
    pthread_cond_destroy(&t->sleep_cond);
    pthread_mutex_destroy(&t->sleep_lock);
}

void jobd_task_cancel(jobd_task *t) {
    /*
     * The flag is set before the lock is taken: a sleeper either sees it when
     * it checks under the lock, or is already waiting and gets the broadcast.
     */
    atomic_store(&t->cancelled, true);
    pthread_mutex_lock(&t->sleep_lock);
    pthread_cond_broadcast(&t->sleep_cond);
    pthread_mutex_unlock(&t->sleep_lock);
}

void jobd_task_enter(jobd_task *t) {
    current_task = t;
}

void jobd_task_leave(void) {
    current_task = NULL;
}

jobd_task *jobd_task_current(void) {
    return current_task;
}

/* ---- for task functions ---- */

int jobd_task_write(jobd_task *t, int stream, const void *buf, size_t len) {
    if (t == NULL || (stream != 1 && stream != 2) || (buf == NULL && len > 0))
        return -EINVAL;
    if (len > INT_MAX)
        return -EOVERFLOW;
    if (t->ops == NULL || t->ops->write == NULL)
        return -ENOSYS;
    if (len == 0)
        return 0;
    return t->ops->write(t, stream, buf, len);
}

/* Format into a stack buffer, or a heap one when the output is longer, and write it. */
static int task_vprintf(jobd_task *t, int stream, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static int task_vprintf(jobd_task *t, int stream, const char *fmt, va_list ap) {
    char small[TASK_PRINTF_SZ];
    char *big = NULL;
    va_list again;
    int n, rc;

    if (t == NULL || fmt == NULL)
        return -EINVAL;
    va_copy(again, ap);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n < 0) {
        rc = -EINVAL;
        goto out;
    }
    if ((size_t)n < sizeof(small)) {
        rc = jobd_task_write(t, stream, small, (size_t)n);
        goto out;
    }
    big = malloc((size_t)n + 1);
    if (big == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    if (vsnprintf(big, (size_t)n + 1, fmt, again) != n) {
        rc = -EINVAL;
        goto out;
    }
    rc = jobd_task_write(t, stream, big, (size_t)n);
out:
    va_end(again);
    free(big);
    return rc;
}

int jobd_task_printf(jobd_task *t, const char *fmt, ...) {
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = task_vprintf(t, 1, fmt, ap);
    va_end(ap);
    return rc;
}

int jobd_task_eprintf(jobd_task *t, const char *fmt, ...) {
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = task_vprintf(t, 2, fmt, ap);
    va_end(ap);
    return rc;
}

void jobd_task_set_result(jobd_task *t, json_t *result) {
    if (t == NULL) {
        json_decref(result);
        return;
    }
    if (t->result == result)
        return;
    json_decref(t->result);
    t->result = result;
}

/* Cut s (of length n, NUL at s[n]) before a UTF-8 sequence that the cut left incomplete. */
static void utf8_trim(char *s, size_t n) {
    size_t i = n;

    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

void jobd_task_set_error(jobd_task *t, const char *fmt, ...) {
    va_list ap;
    int n;

    if (t == NULL)
        return;
    if (fmt == NULL) {
        t->error[0] = '\0';
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(t->error, sizeof(t->error), fmt, ap);
    va_end(ap);
    if (n < 0)
        t->error[0] = '\0';
    else if ((size_t)n >= sizeof(t->error))
        utf8_trim(t->error, sizeof(t->error) - 1);
}

const char *jobd_task_id(const jobd_task *t) {
    return t != NULL ? t->id : "";
}

bool jobd_task_cancelled(const jobd_task *t) {
    return t != NULL && atomic_load(&((jobd_task *)t)->cancelled);
}

int jobd_task_sleep(jobd_task *t, double seconds) {
    struct timespec deadline;
    int rc = 0;

    if (t == NULL)
        return -EINVAL;
    if (!(seconds > 0)) /* also NaN */
        seconds = 0;
    if (seconds > 1e9) /* about 31 years: keeps tv_sec far from overflow */
        seconds = 1e9;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    time_t whole = (time_t)seconds;
    deadline.tv_sec += whole;
    deadline.tv_nsec += (long)((seconds - (double)whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&t->sleep_lock);
    for (;;) {
        if (atomic_load(&t->cancelled)) {
            rc = -ECANCELED;
            break;
        }
        int w = pthread_cond_timedwait(&t->sleep_cond, &t->sleep_lock, &deadline);
        if (w == ETIMEDOUT) {
            rc = atomic_load(&t->cancelled) ? -ECANCELED : 0;
            break;
        }
    }
    pthread_mutex_unlock(&t->sleep_lock);
    return rc;
}
