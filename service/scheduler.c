/*
 * scheduler.c: job table, priority queue, state machine, waiters, retries
 * and retention (see scheduler.h for the publish-after-commit rule).
 *
 * Locking: s->lock guards everything in struct sched and every struct job:
 * the tables, the ready heap, the delayed list, counters, watches, and the
 * fields of each job. It is the only lock here. Lock order, outermost first:
 *   s->lock -> executor inbox lock (exec_proc_start/cancel)
 *   s->lock -> store queue lock (store_enqueue)
 *   s->lock -> an HTTP request's lock (watch callbacks, done callbacks)
 * Callbacks from the executor thread and from the store's writer thread take
 * s->lock themselves; they are never called with it held.
 *
 * A job's memory: created by sched_submit (or recovery), in the table while
 * queued or running, removed from the table when its final state is
 * published, and freed when, in addition, no store operation of it is in
 * flight (job->pending == 0).
 */
#include "scheduler.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "exec_process.h"
#include "exec_remote.h"
#include "exec_thread.h"
#include "jobd/util.h"
#include "log.h"
#include "metrics.h"
#include "output.h"
#include "store.h"
#include "task_impl.h"

#define MAX_BACKOFF_S      3600.0 /* cap of the retry backoff (unless retry_delay is larger) */
#define RETENTION_EVERY_MS 60000  /* how often ended jobs are swept */
#define RETENTION_BATCH    1000   /* jobs removed per sweep step */
#define DOC_CACHE          4096   /* documents of recently ended jobs kept in memory */
#define NODE_EVENTS        256    /* recent node changes kept for GET /v1/events */

/* A priority queue of ready jobs: highest priority first, then the oldest. */
struct jheap {
    struct job **v;
    size_t len, cap;
};

/* The executors a job can run on, each with its own capacity and queue. */
enum pool { POOL_PROCESS = 0, POOL_THREAD, POOL_REMOTE, POOL_COUNT };

/*
 * A batch in memory while it has active jobs. At most `concurrency` of its
 * jobs are "released" (in a pool's ready heap, or running) at once; its other
 * ready jobs wait in `pending`.
 */
struct batch {
    int64_t num;
    char id[JOBD_MAX_ID_BYTES];
    char *name;
    int concurrency;
    int total;
    int64_t created_ms;
    int released;
    struct jheap pending;
    struct job *members; /* active jobs, through job->bnext */
    int n_members;
    bool committed; /* its row is on disk */
    bool failed;    /* its transaction failed: it never existed */
    struct sched_watch *watches;
    struct batch *hash_next;
};

/*
 * Ready remote jobs, one heap per distinct node_selector: dispatch looks at
 * the first job of each group, so jobs that no node can take cost nothing
 * per dispatch however many of them wait. A group without jobs is freed.
 */
struct selgroup {
    char *key;    /* the selector's canonical JSON text, "" for none */
    char *reason; /* why its jobs wait, as told to them; NULL when they do not */
    struct jheap heap;
    struct selgroup *next;
};

enum node_state { NODE_READY, NODE_DRAINING, NODE_DOWN };

static const char *const node_state_names[] = {"ready", "draining", "down"};

/*
 * A worker node (DESIGN.md, "Worker nodes"), known from its registration
 * (and from the store after a restart). `running` counts the remote attempts
 * handed to it and not yet ended, lost or abandoned.
 */
struct node {
    char id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char *url;
    json_t *labels; /* object of strings, never NULL; not shared with other threads */
    char *version;  /* NULL when the node did not say */
    int capacity;
    int running;
    uint64_t dispatched; /* attempts sent to it since this jobd started: breaks ties */
    enum node_state state;
    int64_t registered_ms;
    int64_t last_seen_ms;   /* wall clock, for the document */
    int64_t last_seen_mono; /* monotonic, for --node-timeout */
    struct node *next;      /* s->nodes, in id order */
};

struct job {
    int64_t num;
    char id[JOBD_MAX_ID_BYTES];
    struct jobd_spec spec;
    char *spec_json; /* canonical spec, the store's `spec` column */
    char *spec_doc;  /* the spec as JSON text without the braces, for every render */
    char *idem_key;  /* NULL when none */

    /* The scheduler's view, changed under s->lock and then committed. */
    enum jobd_state state;
    int attempts;
    int64_t created_ms, started_ms, finished_ms;
    int exit_code; /* -1: none */
    int signal;    /* 0: none */
    char *error;
    int64_t pid, pid_start;
    int64_t out_total[2];
    bool out_truncated[2];
    int64_t out_readable[2]; /* live, not persisted */
    char *live[2];           /* a small stream's bytes, held in memory (output.h), or NULL */
    size_t live_len[2];
    bool live_file[2]; /* the stream of this attempt is in its file */
    bool starting;     /* handed to the executor, not yet ended */
    bool cancel_requested;
    int64_t not_before;               /* mono ms: retry backoff; 0 when ready */
    char *result;                     /* a task's result as compact JSON text, or NULL */
    struct batch *batch;              /* NULL when not in a batch */
    bool released;                    /* counts against its batch's concurrency */
    char batch_id[JOBD_MAX_ID_BYTES]; /* "" when not in a batch */
    struct job *bnext, **bprevp;      /* the batch's active members */
    struct jheap *heap;               /* the heap it is in, NULL when none */

    /* Remote jobs: the node of the current attempt ("" when none) and its id there. */
    char node_id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char *remote_id; /* NULL until the node accepted the attempt */
    char *waiting;   /* why a queued remote job is not dispatched, NULL when it is not waiting */
    char *sel_key;   /* canonical text of its node_selector (made once), for its selgroup */

    /* The published view. */
    bool visible;
    char *doc;
    enum jobd_state pub_state;
    int64_t pub_seq;

    int pending;   /* store operations in flight */
    bool in_table; /* reachable through the tables */
    size_t heap_slot;
    struct sched_watch *watches;
    struct job *hash_next, *idem_next, *delayed_next;
};

enum change_kind { CH_SUBMIT, CH_UPDATE, CH_DELETE, CH_BATCH };

/*
 * The fields of a job that change, copied at the moment of a change so the
 * document can be rendered later on the store's writer thread, outside the
 * scheduler lock. The job's other fields (id, spec, batch, created_ms) never
 * change and the job outlives its changes, so the render reads them there.
 */
struct snapshot {
    enum jobd_state state;
    int attempts;
    int64_t started_ms, finished_ms;
    int exit_code, signal;
    char *error;  /* owned */
    char *result; /* owned JSON text, NULL when none */
    int64_t pid;
    int64_t out_total[2];
    bool out_truncated[2];
    char *out[2]; /* small streams, kept in the row; owned */
    size_t out_len[2];
    char node_id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char *remote_id; /* owned */
    char *waiting;   /* owned */
};

/* One change on its way through the store. */
struct change {
    struct store_op op;
    struct sched *s;
    enum change_kind kind;
    struct change *chain_next; /* while a chain is being built */
    struct job *job;           /* NULL for a delete and a batch */
    struct snapshot *snap;     /* the job's fields at this change (CH_SUBMIT, CH_UPDATE) */
    struct batch *batch;       /* CH_BATCH only */
    char *doc;                 /* owned until published */
    enum jobd_state state;
    int64_t seq;
    sched_done_fn done;
    void *arg;
    char id[JOBD_MAX_ID_BYTES];
};

struct sched {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* the sched thread's wake-up; also signalled when counts drop */
    const struct config *cfg;
    struct store *store;
    char *out_dir;
    struct exec_proc *exec;
    struct exec_thread *threads;
    struct exec_remote *remote; /* NULL when this jobd takes no nodes (no cluster token) */
    char instance_id[64];
    struct node *nodes;      /* in id order */
    struct selgroup *groups; /* ready remote jobs (s->ready[POOL_REMOTE] stays empty) */
    int64_t next_node_check; /* mono ms */
    /* The latest node changes, oldest first from node_ev_next (a ring), for /v1/events. */
    struct {
        int64_t seq;
        char *doc; /* NULL: an empty slot */
        bool deleted;
    } node_ev[NODE_EVENTS];
    size_t node_ev_next;

    int64_t last_num, last_seq, pub_seq;
    struct job **table; /* by num, chained */
    size_t table_size, table_count;
    struct job **idem; /* by idempotency key, chained */
    size_t idem_size;
    struct jheap ready[POOL_COUNT];
    struct job *delayed;    /* waiting for their retry backoff */
    struct batch **batches; /* by num, chained; active batches only */
    size_t batches_size;

    int queued;              /* queued jobs, including delayed and not yet committed */
    int running[POOL_COUNT]; /* handed to an executor */
    int pending;             /* store operations in flight */
    struct sched_watch *global_watches;

    /*
     * Documents of recently ended jobs (direct-mapped by number), so that a
     * waiter woken by a job's end, and a GET soon after, need no store read.
     */
    struct {
        int64_t num;
        char *doc;
    } cache[DOC_CACHE];

    bool stopping; /* no more dispatching */
    bool thread_stop;
    pthread_t thread;
    bool thread_started;
    int64_t next_retention;
};

/* ---- tables ---- */

static size_t hash_num(int64_t num, size_t size) {
    return (size_t)((uint64_t)num * 0x9E3779B97F4A7C15ull >> 20) & (size - 1);
}

static size_t hash_str(const char *s, size_t size) {
    uint64_t h = 1469598103934665603ull;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h & (size - 1);
}

static struct job *find(struct sched *s, int64_t num) {
    for (struct job *j = s->table[hash_num(num, s->table_size)]; j; j = j->hash_next)
        if (j->num == num)
            return j;
    return NULL;
}

static struct job *find_idem(struct sched *s, const char *key) {
    for (struct job *j = s->idem[hash_str(key, s->idem_size)]; j; j = j->idem_next)
        if (strcmp(j->idem_key, key) == 0)
            return j;
    return NULL;
}

static int table_grow(struct sched *s) {
    size_t nsize = s->table_size * 2;
    struct job **nt = calloc(nsize, sizeof *nt);

    if (!nt)
        return -ENOMEM;
    for (size_t i = 0; i < s->table_size; i++) {
        struct job *j = s->table[i];
        while (j) {
            struct job *next = j->hash_next;
            size_t h = hash_num(j->num, nsize);
            j->hash_next = nt[h];
            nt[h] = j;
            j = next;
        }
    }
    free(s->table);
    s->table = nt;
    s->table_size = nsize;
    return 0;
}

static int table_insert(struct sched *s, struct job *j) {
    size_t h;

    if (s->table_count + 1 > s->table_size && table_grow(s) < 0)
        return -ENOMEM;
    h = hash_num(j->num, s->table_size);
    j->hash_next = s->table[h];
    s->table[h] = j;
    s->table_count++;
    if (j->idem_key) {
        size_t k = hash_str(j->idem_key, s->idem_size);
        j->idem_next = s->idem[k];
        s->idem[k] = j;
    }
    j->in_table = true;
    return 0;
}

static void table_remove(struct sched *s, struct job *j) {
    struct job **pp;

    if (!j->in_table)
        return;
    for (pp = &s->table[hash_num(j->num, s->table_size)]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == j) {
            *pp = j->hash_next;
            break;
        }
    }
    if (j->idem_key) {
        for (pp = &s->idem[hash_str(j->idem_key, s->idem_size)]; *pp; pp = &(*pp)->idem_next) {
            if (*pp == j) {
                *pp = j->idem_next;
                break;
            }
        }
    }
    s->table_count--;
    j->in_table = false;
}

/* ---- ready heap ---- */

static bool runs_before(const struct job *a, const struct job *b) {
    if (a->spec.priority != b->spec.priority)
        return a->spec.priority > b->spec.priority;
    return a->num < b->num;
}

static void heap_put(struct jheap *h, size_t i, struct job *j) {
    h->v[i] = j;
    j->heap_slot = i;
}

static void heap_sift_up(struct jheap *h, size_t i, struct job *j) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!runs_before(j, h->v[parent]))
            break;
        heap_put(h, i, h->v[parent]);
        i = parent;
    }
    heap_put(h, i, j);
}

static int heap_push(struct jheap *h, struct job *j) {
    if (h->len == h->cap) {
        size_t ncap = h->cap ? h->cap * 2 : 256;
        struct job **nv = realloc(h->v, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        h->v = nv;
        h->cap = ncap;
    }
    j->heap = h;
    heap_sift_up(h, h->len++, j);
    return 0;
}

static void heap_fix_down(struct jheap *h, size_t i) {
    struct job *j = h->v[i];

    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct job *best = j;
        if (l < h->len && runs_before(h->v[l], best)) {
            m = l;
            best = h->v[l];
        }
        if (r < h->len && runs_before(h->v[r], best))
            m = r;
        if (m == i)
            break;
        heap_put(h, i, h->v[m]);
        i = m;
    }
    heap_put(h, i, j);
}

/* Take j out of whatever heap it is in (nothing when none). */
static void heap_remove(struct job *j) {
    struct jheap *h = j->heap;
    size_t i = j->heap_slot;
    struct job *last;

    if (!h || i >= h->len || h->v[i] != j)
        return;
    j->heap = NULL;
    j->heap_slot = SIZE_MAX;
    last = h->v[--h->len];
    if (last == j)
        return;
    heap_put(h, i, last);
    heap_fix_down(h, i);
    heap_sift_up(h, last->heap_slot, last);
}

static struct job *heap_pop(struct jheap *h) {
    struct job *top;

    if (h->len == 0)
        return NULL;
    top = h->v[0];
    heap_remove(top);
    return top;
}

static enum pool pool_of(const struct job *j) {
    switch (j->spec.executor) {
    case JOBD_EXEC_THREAD:
        return POOL_THREAD;
    case JOBD_EXEC_REMOTE:
        return POOL_REMOTE;
    default:
        return POOL_PROCESS;
    }
}

/* ---- batches ---- */

static size_t batch_slot(struct sched *s, int64_t num) {
    return hash_num(num, s->batches_size);
}

static struct batch *find_batch(struct sched *s, int64_t num) {
    for (struct batch *b = s->batches[batch_slot(s, num)]; b; b = b->hash_next)
        if (b->num == num)
            return b;
    return NULL;
}

static void batch_insert(struct sched *s, struct batch *b) {
    size_t h = batch_slot(s, b->num);
    b->hash_next = s->batches[h];
    s->batches[h] = b;
}

static void batch_free(struct sched *s, struct batch *b) {
    for (struct batch **pp = &s->batches[batch_slot(s, b->num)]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == b) {
            *pp = b->hash_next;
            break;
        }
    }
    free(b->pending.v);
    free(b->name);
    free(b);
}

static void batch_add_member(struct batch *b, struct job *j) {
    j->batch = b;
    j->bnext = b->members;
    if (b->members)
        b->members->bprevp = &j->bnext;
    j->bprevp = &b->members;
    b->members = j;
    b->n_members++;
}

static void fire_all(struct sched *s, struct sched_watch **head);

/* Drop an ended (or never stored) job from its batch; free the batch when it is over. */
static void batch_remove_member(struct sched *s, struct job *j) {
    struct batch *b = j->batch;

    if (!b || !j->bprevp)
        return;
    *j->bprevp = j->bnext;
    if (j->bnext)
        j->bnext->bprevp = j->bprevp;
    j->bnext = NULL;
    j->bprevp = NULL;
    j->batch = NULL;
    if (--b->n_members == 0 && (b->committed || b->failed)) {
        fire_all(s, &b->watches);
        batch_free(s, b);
    }
}

static void push_ready(struct sched *s, struct job *j);

/* Queue a ready job: into its pool, or into its batch's pending heap when the batch is full. */
static void make_ready(struct sched *s, struct job *j) {
    struct batch *b = j->batch;

    if (b && !j->released) {
        if (b->released >= b->concurrency) {
            if (heap_push(&b->pending, j) < 0)
                log_error("scheduler: out of memory queueing job %s", j->id);
            return;
        }
        b->released++;
        j->released = true;
    }
    push_ready(s, j);
}

/* Give a job's batch slot back and let the batch's next ready jobs in. */
static void unrelease(struct sched *s, struct job *j) {
    struct batch *b = j->batch;

    if (!b || !j->released)
        return;
    j->released = false;
    b->released--;
    while (b->released < b->concurrency && b->pending.len > 0) {
        struct job *n = heap_pop(&b->pending);
        b->released++;
        n->released = true;
        push_ready(s, n);
    }
}

void sched_format_batch_id(int64_t num, char *buf, size_t len) {
    jobd_format_id(num, buf, len);
    if (buf[0])
        buf[0] = 'b';
}

int64_t sched_parse_batch_id(const char *id) {
    char buf[JOBD_MAX_ID_BYTES];

    if (!id || id[0] != 'b' || strlen(id) >= sizeof buf)
        return -1;
    snprintf(buf, sizeof buf, "j%s", id + 1);
    return jobd_parse_id(buf);
}

static void delayed_remove(struct sched *s, struct job *j) {
    for (struct job **pp = &s->delayed; *pp; pp = &(*pp)->delayed_next) {
        if (*pp == j) {
            *pp = j->delayed_next;
            j->delayed_next = NULL;
            return;
        }
    }
}

/* ---- documents ---- */

/* The JSON text of a string, or null. Return a new string or NULL. */
static char *json_text_or_null(const char *str) {
    json_t *v;
    char *t;

    if (!str)
        return strdup("null");
    v = json_string(str);
    if (!v) /* not UTF-8: say so rather than fail the change */
        v = json_string("(error text is not valid UTF-8)");
    t = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return t;
}

static void time_text(int64_t ms, char *buf, size_t len) {
    if (ms <= 0) {
        snprintf(buf, len, "null");
        return;
    }
    buf[0] = '"';
    jobd_format_time(ms, buf + 1, len - 2);
    strcat(buf, "\"");
}

/*
 * Render the job resource from its constant fields (the spec's text was made
 * once, in j->spec_doc) and a snapshot of the others, as text: no JSON tree
 * is built for the common fields. Safe without the scheduler lock. Return a
 * new string, or NULL if memory runs out.
 */
static char *render(const struct job *j, const struct snapshot *sn, int64_t seq) {
    const char *sig = sn->signal ? jobd_signal_name(sn->signal) : NULL;
    char *error = json_text_or_null(sn->error);
    char *waiting = json_text_or_null(sn->waiting);
    char node[EXEC_REMOTE_NODE_ID_MAX + 3];
    const char *result = sn->result;
    char exit_code[16], signal[32], pid[24], batch[JOBD_MAX_ID_BYTES + 2];
    char created[48], started[48], finished[48];
    char *out = NULL;
    int n;

    if (!error || !waiting || !j->spec_doc) {
        free(error);
        free(waiting);
        return NULL;
    }
    /* Node ids are checked at registration: nothing in them needs escaping. */
    if (sn->node_id[0])
        snprintf(node, sizeof node, "\"%s\"", sn->node_id);
    else
        snprintf(node, sizeof node, "null");
    if (sn->exit_code >= 0)
        snprintf(exit_code, sizeof exit_code, "%d", sn->exit_code);
    else
        snprintf(exit_code, sizeof exit_code, "null");
    if (sig)
        snprintf(signal, sizeof signal, "\"%s\"", sig);
    else if (sn->signal)
        snprintf(signal, sizeof signal, "%d", sn->signal);
    else
        snprintf(signal, sizeof signal, "null");
    if (sn->pid > 0)
        snprintf(pid, sizeof pid, "%lld", (long long)sn->pid);
    else
        snprintf(pid, sizeof pid, "null");
    if (j->batch_id[0])
        snprintf(batch, sizeof batch, "\"%s\"", j->batch_id);
    else
        snprintf(batch, sizeof batch, "null");
    time_text(j->created_ms, created, sizeof created);
    time_text(sn->started_ms, started, sizeof started);
    time_text(sn->finished_ms, finished, sizeof finished);
    /* id and state first: they are what a person looks for. */
    n = asprintf(&out,
                 "{\"id\":\"%s\",\"state\":\"%s\",%s,\"exit_code\":%s,\"signal\":%s,"
                 "\"error\":%s,\"result\":%s,\"pid\":%s,\"node\":%s,\"waiting\":%s,\"attempts\":%d,"
                 "\"batch\":%s,\"created_at\":%s,\"started_at\":%s,\"finished_at\":%s,"
                 "\"stdout_bytes\":%lld,\"stderr_bytes\":%lld,\"stdout_truncated\":%s,"
                 "\"stderr_truncated\":%s,\"seq\":%lld}",
                 j->id, jobd_state_name(sn->state), j->spec_doc, exit_code, signal, error,
                 result ? result : "null", pid, node, waiting, sn->attempts, batch, created,
                 started, finished, (long long)sn->out_total[0], (long long)sn->out_total[1],
                 sn->out_truncated[0] ? "true" : "false", sn->out_truncated[1] ? "true" : "false",
                 (long long)seq);
    free(error);
    free(waiting);
    return n < 0 ? NULL : out;
}

/*
 * The spec as the inside of a JSON object ("\"command\":[...],...", no braces),
 * made once per job for render. Return a new string or NULL.
 */
static char *spec_doc_text(const json_t *spec_obj) {
    char *t = spec_obj ? json_dumps(spec_obj, JSON_COMPACT) : NULL;
    size_t len;

    if (!t)
        return NULL;
    len = strlen(t);
    if (len < 2 || t[0] != '{' || t[len - 1] != '}') {
        free(t);
        return NULL;
    }
    memmove(t, t + 1, len - 2);
    t[len - 2] = '\0';
    return t;
}

static void snapshot_free(struct snapshot *sn) {
    if (!sn)
        return;
    free(sn->out[0]);
    free(sn->out[1]);
    free(sn->error);
    free(sn->result);
    free(sn->remote_id);
    free(sn->waiting);
    free(sn);
}

/* Copy the changing fields of j. Return NULL if memory runs out. Caller holds the lock. */
static struct snapshot *snapshot_take(const struct job *j) {
    struct snapshot *sn = calloc(1, sizeof *sn);

    if (!sn)
        return NULL;
    sn->state = j->state;
    sn->attempts = j->attempts;
    sn->started_ms = j->started_ms;
    sn->finished_ms = j->finished_ms;
    sn->exit_code = j->exit_code;
    sn->signal = j->signal;
    sn->pid = j->pid;
    for (int i = 0; i < 2; i++) {
        sn->out_total[i] = j->out_total[i];
        sn->out_truncated[i] = j->out_truncated[i];
        if (j->live[i] && j->live_len[i] > 0 && !j->live_file[i]) {
            sn->out[i] = malloc(j->live_len[i]);
            if (!sn->out[i]) {
                snapshot_free(sn);
                return NULL;
            }
            memcpy(sn->out[i], j->live[i], j->live_len[i]);
            sn->out_len[i] = j->live_len[i];
        }
    }
    memcpy(sn->node_id, j->node_id, sizeof sn->node_id);
    if ((j->error && !(sn->error = strdup(j->error))) ||
        (j->result && !(sn->result = strdup(j->result))) ||
        (j->remote_id && !(sn->remote_id = strdup(j->remote_id))) ||
        (j->waiting && !(sn->waiting = strdup(j->waiting)))) {
        snapshot_free(sn);
        return NULL;
    }
    return sn;
}

/* ---- watches ---- */

void sched_watch_init(struct sched_watch *w, void (*fn)(void *), void *arg) {
    memset(w, 0, sizeof *w);
    w->fn = fn;
    w->arg = arg;
}

/* The watch's `owner` is the head of the list it is on. */
static void watch_link(struct sched_watch **head, struct sched_watch *w) {
    w->prev = NULL;
    w->next = *head;
    if (*head)
        (*head)->prev = w;
    *head = w;
    w->owner = head;
}

static void watch_unlink(struct sched *s, struct sched_watch *w) {
    struct sched_watch **head;

    if (!w->owner)
        return;
    head = w->owner;
    if (w->prev)
        w->prev->next = w->next;
    else
        *head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->owner = NULL;
}

static void fire_all(struct sched *s, struct sched_watch **head) {
    while (*head) {
        struct sched_watch *w = *head;
        watch_unlink(s, w);
        w->fn(w->arg);
    }
}

int sched_watch_job(struct sched *s, struct sched_watch *w, int64_t num) {
    struct job *j;
    int rc;

    pthread_mutex_lock(&s->lock);
    watch_unlink(s, w);
    j = find(s, num);
    if (!j || !j->visible) {
        rc = -ENOENT;
    } else if (jobd_state_is_final(j->pub_state)) {
        rc = 1;
    } else {
        watch_link(&j->watches, w);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_watch_seq(struct sched *s, struct sched_watch *w, int64_t since) {
    int rc;

    pthread_mutex_lock(&s->lock);
    watch_unlink(s, w);
    if (s->pub_seq > since || s->stopping) {
        rc = 1;
    } else {
        watch_link(&s->global_watches, w);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void sched_unwatch(struct sched *s, struct sched_watch *w) {
    pthread_mutex_lock(&s->lock);
    watch_unlink(s, w);
    pthread_mutex_unlock(&s->lock);
}

int64_t sched_published_seq(struct sched *s) {
    int64_t v;

    pthread_mutex_lock(&s->lock);
    v = s->pub_seq;
    pthread_mutex_unlock(&s->lock);
    return v;
}

/* ---- changes ---- */

static void live_reset(struct job *j);

static void job_free(struct job *j) {
    free(j->result);
    free(j->sel_key);
    free(j->remote_id);
    free(j->waiting);
    live_reset(j);
    free(j->spec_doc);
    jobd_spec_free(&j->spec);
    free(j->spec_json);
    free(j->idem_key);
    free(j->error);
    free(j->doc);
    free(j);
}

/* Free a job that is out of the table and has nothing in flight. */
static void job_release(struct job *j) {
    if (!j->in_table && j->pending == 0)
        job_free(j);
}

static size_t cache_slot(int64_t num) {
    return hash_num(num, DOC_CACHE);
}

/* Keep doc (stolen) as the document of ended job num. Caller holds the lock. */
static void cache_put(struct sched *s, int64_t num, char *doc) {
    size_t i = cache_slot(num);

    free(s->cache[i].doc);
    s->cache[i].num = num;
    s->cache[i].doc = doc;
}

static void cache_drop(struct sched *s, int64_t num) {
    size_t i = cache_slot(num);

    if (s->cache[i].num == num && s->cache[i].doc) {
        free(s->cache[i].doc);
        s->cache[i].doc = NULL;
        s->cache[i].num = 0;
    }
}

static void publish(struct sched *s, struct change *ch) {
    struct job *j = ch->job;

    if (ch->seq > j->pub_seq) {
        free(j->doc);
        j->doc = ch->doc;
        ch->doc = NULL;
        j->pub_state = ch->state;
        j->pub_seq = ch->seq;
    }
    if (ch->seq > s->pub_seq)
        s->pub_seq = ch->seq;
    fire_all(s, &j->watches);
    fire_all(s, &s->global_watches);
    if (jobd_state_is_final(j->pub_state)) {
        metrics_job_ended(j->spec.executor, j->pub_state,
                          ch->snap && ch->snap->started_ms > 0
                              ? (double)(ch->snap->finished_ms - ch->snap->started_ms) / 1000.0
                              : -1);
        table_remove(s, j);
        batch_remove_member(s, j);
        cache_put(s, j->num, j->doc);
        j->doc = NULL;
    }
}

static void dispatch(struct sched *s);

/* The store's prepare hook: render the document (writer thread, no scheduler lock). */
static int change_prepare(struct store_op *op) {
    struct change *ch = op->arg;

    if (!ch->doc) {
        ch->doc = render(ch->job, ch->snap, ch->seq);
        if (!ch->doc)
            return -ENOMEM;
    }
    op->row.doc = ch->doc;
    return 0;
}

static void change_done(void *arg, int status) {
    struct change *ch = arg;
    struct sched *s = ch->s;
    struct job *j = ch->job;

    pthread_mutex_lock(&s->lock);
    switch (ch->kind) {
    case CH_SUBMIT:
        j->pending--;
        if (status == 0) {
            j->visible = true;
            metrics_job_submitted(j->spec.executor);
            publish(s, ch);
            if (j->state == JOBD_QUEUED && j->not_before == 0 && !j->starting && !j->heap)
                make_ready(s, j);
            dispatch(s);
        } else {
            table_remove(s, j);
            batch_remove_member(s, j);
            s->queued--;
            job_release(j);
        }
        break;
    case CH_BATCH:
        if (status == 0) {
            ch->batch->committed = true;
        } else {
            ch->batch->failed = true;
            if (ch->batch->n_members == 0)
                batch_free(s, ch->batch);
        }
        break;
    case CH_UPDATE:
        j->pending--;
        /* A skipped change was made moot by a later one in the same commit, which publishes. */
        if ((status == 0 || status == -ECANCELED) && ch->doc)
            publish(s, ch);
        job_release(j);
        break;
    case CH_DELETE:
        if (status == 0) {
            cache_drop(s, ch->op.row.num);
            output_remove(s->out_dir, ch->id);
        }
        break;
    }
    if (ch->done)
        ch->done(ch->arg, status);
    s->pending--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    free(ch->doc);
    snapshot_free(ch->snap);
    free(ch);
}

/*
 * Record the job's current state as a change: next seq, render, and return
 * it ready for the store (not yet queued). Caller holds s->lock. Return NULL
 * if memory runs out.
 */
static struct change *make_change(struct sched *s, struct job *j, enum change_kind kind,
                                  sched_done_fn done, void *arg) {
    struct change *ch = calloc(1, sizeof *ch);
    int64_t seq = s->last_seq + 1;

    if (!ch)
        goto oom;
    ch->snap = snapshot_take(j);
    if (!ch->snap)
        goto oom;
    s->last_seq = seq;
    ch->s = s;
    ch->kind = kind;
    ch->job = j;
    ch->state = j->state;
    ch->seq = seq;
    ch->done = done;
    ch->arg = arg;
    ch->op.kind = STORE_PUT;
    ch->op.retry = kind != CH_SUBMIT;
    /*
     * What an answer promises waits for the disk: a submission (201) and a
     * change someone waits for (a cancel's 202). Executors' updates (running,
     * ended) only need to survive a crash of jobd.
     */
    ch->op.durable = kind == CH_SUBMIT || done != NULL;
    /* A later change of the job in the same commit makes an update moot. */
    ch->op.supersedable = kind == CH_UPDATE;
    ch->op.prepare = change_prepare;
    ch->op.done = change_done;
    ch->op.arg = ch;
    ch->op.row = (struct store_row){
        .num = j->num,
        .id = j->id,
        .state = j->state,
        .seq = seq,
        .priority = j->spec.priority,
        .name = j->spec.name,
        .batch = j->batch_id[0] ? j->batch_id : NULL,
        .idem_key = j->idem_key,
        .created_ms = j->created_ms,
        .finished_ms = j->finished_ms,
        .pid = j->pid,
        .pid_start = j->pid_start,
        .spec = j->spec_json,
        .doc = NULL, /* change_prepare renders it on the writer thread */
        .out = {ch->snap->out[0], ch->snap->out[1]},
        .out_len = {ch->snap->out_len[0], ch->snap->out_len[1]},
        .node = ch->snap->node_id[0] ? ch->snap->node_id : NULL,
        .remote_id = ch->snap->remote_id,
    };
    j->pending++;
    s->pending++;
    return ch;
oom:
    free(ch);
    log_error("scheduler: out of memory recording a change of job %s", j->id);
    return NULL;
}

/* make_change, then hand it to the store. Return 0 or -ENOMEM. */
static int change_job(struct sched *s, struct job *j, enum change_kind kind, sched_done_fn done,
                      void *arg) {
    struct change *ch = make_change(s, j, kind, done, arg);

    if (!ch)
        return -ENOMEM;
    store_enqueue(s->store, &ch->op);
    return 0;
}

/* ---- executor callbacks ---- */

static int pool_limit(struct sched *s, enum pool p) {
    if (p == POOL_PROCESS)
        return s->cfg->max_procs;
    if (p == POOL_REMOTE)
        return 0; /* the nodes' capacities govern: see dispatch_remote */
    return s->cfg->threads - exec_thread_stuck(s->threads);
}

static void set_error(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Hand one ready job to its executor. Return false when the executor refused it. */
static bool start_job(struct sched *s, struct job *j, enum pool p) {
    struct exec_run run;
    int rc;

    s->queued--;
    s->running[p]++;
    j->starting = true;
    j->attempts++;
    j->out_readable[0] = j->out_readable[1] = 0;
    memset(&run, 0, sizeof run);
    run.num = j->num;
    memcpy(run.id, j->id, sizeof run.id);
    run.spec = &j->spec;
    run.attempt = j->attempts;
    run.output_cap =
        j->spec.limits.output_bytes > 0 ? j->spec.limits.output_bytes : s->cfg->max_output;
    rc = p == POOL_THREAD ? exec_thread_start(s->threads, &run) : exec_proc_start(s->exec, &run);
    if (rc == 0) {
        if (j->cancel_requested) {
            if (p == POOL_THREAD)
                exec_thread_cancel(s->threads, j->num);
            else
                exec_proc_cancel(s->exec, j->num);
        }
        return true;
    }
    j->starting = false;
    s->running[p]--;
    if (rc == -ENOENT) {
        /* A task that this jobd does not have (a plugin missing since it was queued). */
        j->state = JOBD_FAILED;
        j->finished_ms = jobd_now_ms();
        set_error(j, "no such task '%s' on this jobd", j->spec.task ? j->spec.task : "");
        unrelease(s, j);
        change_job(s, j, CH_UPDATE, NULL, NULL);
        return true;
    }
    /* The executor is stopping: leave the job queued for the next start. */
    j->attempts--;
    s->queued++;
    if (heap_push(&s->ready[p], j) < 0)
        log_error("scheduler: out of memory queueing job %s", j->id);
    return false;
}

static void dispatch_remote(struct sched *s);

static void dispatch(struct sched *s) {
    if (s->stopping)
        return;
    dispatch_remote(s);
    for (int p = 0; p < POOL_COUNT; p++) {
        int limit = pool_limit(s, (enum pool)p);
        while (s->running[p] < limit && s->ready[p].len > 0) {
            struct job *j = heap_pop(&s->ready[p]);
            if (!start_job(s, j, (enum pool)p))
                break;
        }
    }
}

/* Forget the held output of the last attempt (a new one starts). */
static void live_reset(struct job *j) {
    for (int i = 0; i < 2; i++) {
        free(j->live[i]);
        j->live[i] = NULL;
        j->live_len[i] = 0;
        j->live_file[i] = false;
    }
}

/* Hold a small stream's bytes: data has len bytes, of which live_len are held already. */
static void live_update(struct job *j, int i, const void *data, size_t len) {
    if (!data) {
        free(j->live[i]);
        j->live[i] = NULL;
        j->live_len[i] = 0;
        j->live_file[i] = true; /* spilled: readers read the file */
        return;
    }
    if (len <= j->live_len[i])
        return;
    char *n = realloc(j->live[i], len);
    if (!n) {
        log_error("scheduler: out of memory holding the output of job %s", j->id);
        return;
    }
    memcpy(n + j->live_len[i], (const char *)data + j->live_len[i], len - j->live_len[i]);
    j->live[i] = n;
    j->live_len[i] = len;
}

/* A new attempt runs: forget what the last one left. Caller holds the lock. */
static void mark_running(struct job *j, int64_t pid, int64_t pid_start, int64_t started_ms) {
    j->state = JOBD_RUNNING;
    j->pid = pid;
    j->pid_start = pid_start;
    j->started_ms = started_ms;
    j->finished_ms = 0;
    j->exit_code = -1;
    j->signal = 0;
    free(j->error);
    j->error = NULL;
    live_reset(j);
}

static void on_started(void *ctx, int64_t num, pid_t pid, int64_t pid_start, int64_t started_ms) {
    struct sched *s = ctx;
    struct job *j;

    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (j && jobd_state_can_transition(j->state, JOBD_RUNNING)) {
        mark_running(j, pid, pid_start, started_ms);
        change_job(s, j, CH_UPDATE, NULL, NULL);
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_output(void *ctx, int64_t num, int stream, int64_t readable, const void *data,
                      size_t len) {
    struct sched *s = ctx;
    struct job *j;

    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (j && stream >= 0 && stream < 2) {
        live_update(j, stream, data, len);
        j->out_readable[stream] = readable;
        fire_all(s, &j->watches);
    }
    pthread_mutex_unlock(&s->lock);
}

static bool exit_code_retryable(const struct job *j, int code) {
    if (!j->spec.retry_exit_codes)
        return true;
    for (size_t i = 0; i < j->spec.n_retry_exit_codes; i++)
        if (j->spec.retry_exit_codes[i] == code)
            return code >= 0;
    return false;
}

static void set_error(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct job *j, const char *fmt, ...) {
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(j->error);
    j->error = strdup(buf);
}

static double backoff_s(const struct job *j) {
    double d = j->spec.retry_delay;
    double cap = j->spec.retry_delay > MAX_BACKOFF_S ? j->spec.retry_delay : MAX_BACKOFF_S;

    for (int i = 1; i < j->attempts && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

/* Requeue a failed attempt after its backoff. Caller holds the lock. */
static void requeue(struct sched *s, struct job *j, double delay_s) {
    j->state = JOBD_QUEUED;
    /* A queued job with a node is one whose dispatch is recorded (see start_remote). */
    j->node_id[0] = '\0';
    free(j->remote_id);
    j->remote_id = NULL;
    s->queued++;
    if (delay_s <= 0 || s->stopping) {
        j->not_before = 0;
        make_ready(s, j);
        return;
    }
    j->not_before = jobd_mono_ms() + (int64_t)(delay_s * 1000);
    j->delayed_next = s->delayed;
    s->delayed = j;
    pthread_cond_broadcast(&s->cond);
}

static struct node *find_node(struct sched *s, const char *id);

/* Take a remote attempt off its node's count. Caller holds the lock. */
static void node_release(struct sched *s, struct job *j) {
    struct node *n = j->node_id[0] ? find_node(s, j->node_id) : NULL;

    if (n && n->running > 0)
        n->running--;
}

/* An attempt is over: decide the job's next state. Caller holds the lock. */
static void attempt_ended(struct sched *s, struct job *j, const struct exec_result *res) {
    bool retry = false;
    enum jobd_state to = JOBD_FAILED;

    s->running[pool_of(j)]--;
    if (pool_of(j) == POOL_REMOTE)
        node_release(s, j);
    j->starting = false;
    unrelease(s, j);
    free(j->result);
    j->result = NULL;
    if (res->result_json) {
        /* Kept as text (no JSON value is shared between threads); checked once here. */
        json_t *v = json_loads(res->result_json, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (v)
            j->result = strdup(res->result_json);
        else
            log_warn("scheduler: job %s returned a result that is not JSON", j->id);
        json_decref(v);
    }
    j->finished_ms = res->finished_ms;
    if (res->started_ms > 0 && j->started_ms == 0)
        j->started_ms = res->started_ms;
    j->exit_code = res->exit_code;
    j->signal = res->signal;
    for (int i = 0; i < 2; i++) {
        j->out_total[i] = res->out_total[i];
        j->out_truncated[i] = res->out_truncated[i];
        if (res->inline_out[i])
            live_update(j, i, res->inline_out[i], res->inline_len[i]);
        else if (res->out_total[i] > 0)
            live_update(j, i, NULL, 0);
    }
    free(j->error);
    j->error = NULL;
    bool retries_left = j->attempts <= j->spec.retries;
    switch (res->end) {
    case EXEC_EXITED:
        if (res->exit_code == 0 && res->signal == 0) {
            to = JOBD_SUCCEEDED;
            /* Succeeded, yet something to say (output lost on a full disk, a task's note). */
            if (res->error[0])
                set_error(j, "%s", res->error);
        } else if (j->cancel_requested) {
            to = JOBD_CANCELLED;
            set_error(j, "cancelled");
        } else if (res->signal) {
            const char *name = jobd_signal_name(res->signal);
            set_error(j, "killed by signal %s", name ? name : "?");
            retry = retries_left && !j->spec.retry_exit_codes;
        } else {
            if (res->error[0])
                set_error(j, "%s", res->error);
            else
                set_error(j, "exited with code %d", res->exit_code);
            retry = retries_left && exit_code_retryable(j, res->exit_code);
        }
        break;
    case EXEC_START_FAILED:
        set_error(j, "%s", res->error);
        if (j->cancel_requested)
            to = JOBD_CANCELLED;
        else
            retry = retries_left && !j->spec.retry_exit_codes;
        break;
    case EXEC_TIMED_OUT:
        to = JOBD_TIMED_OUT;
        set_error(j, "timed out after %g s", j->spec.timeout);
        break;
    case EXEC_CANCELLED:
        if (j->cancel_requested) {
            to = JOBD_CANCELLED;
            set_error(j, "cancelled");
        } else {
            /* Stopped by a shutdown of jobd. */
            set_error(j, "interrupted");
            retry = retries_left;
        }
        break;
    }
    if (retry && !j->cancel_requested) {
        j->finished_ms = 0;
        requeue(s, j, s->stopping ? 0 : backoff_s(j));
    } else {
        j->state = to;
    }
    change_job(s, j, CH_UPDATE, NULL, NULL);
    dispatch(s);
}

static void on_exited(void *ctx, int64_t num, const struct exec_result *res) {
    struct sched *s = ctx;
    struct job *j;

    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (j)
        attempt_ended(s, j, res);
    else
        log_error("scheduler: exit of unknown job number %lld", (long long)num);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* ---- worker nodes and remote attempts ---- */

static struct node *find_node(struct sched *s, const char *id) {
    for (struct node *n = s->nodes; n; n = n->next)
        if (strcmp(n->id, id) == 0)
            return n;
    return NULL;
}

/* Whether the node's labels include every label of the selector (NULL: any node). */
static bool node_matches(const struct node *n, const json_t *selector) {
    const char *key;
    json_t *want;

    if (!selector)
        return true;
    json_object_foreach((json_t *)selector, key, want) {
        json_t *have = json_object_get(n->labels, key);
        if (!have || !json_equal(have, want))
            return false;
    }
    return true;
}

/*
 * The ready node with room that matches j, least running first (the load
 * spreads), then the one sent the fewest so far; NULL when none. *matched says whether any ready
 * node matches.
 */
static struct node *pick_node(struct sched *s, const struct job *j, bool *matched) {
    struct node *best = NULL;

    *matched = false;
    for (struct node *n = s->nodes; n; n = n->next) {
        if (n->state != NODE_READY || !node_matches(n, j->spec.node_selector))
            continue;
        *matched = true;
        if (n->running >= n->capacity)
            continue;
        if (!best || n->running < best->running ||
            (n->running == best->running && n->dispatched < best->dispatched))
            best = n;
    }
    return best;
}

/* Why the jobs of g wait: no ready node matches, or (matched) every one that does is full. */
static char *waiting_reason(const struct selgroup *g, bool matched) {
    bool sel = g->key[0] != '\0';
    char *why = NULL;
    int n;

    if (matched)
        n = asprintf(&why, "every %s node is full", sel ? "matching" : "ready");
    else if (sel)
        n = asprintf(&why, "no ready node matches node_selector %s", g->key);
    else
        n = asprintf(&why, "no ready node");
    return n < 0 ? NULL : why;
}

/* Say on the job why it waits (NULL: it does not), publishing a change when that changes. */
static void set_waiting(struct sched *s, struct job *j, const char *why) {
    if ((!why && !j->waiting) || (why && j->waiting && strcmp(j->waiting, why) == 0))
        return;
    free(j->waiting);
    j->waiting = why ? strdup(why) : NULL;
    if (j->visible)
        change_job(s, j, CH_UPDATE, NULL, NULL);
}

/* The group of ready remote jobs with j's selector (made when missing), or NULL. Lock held. */
static struct selgroup *remote_group(struct sched *s, struct job *j) {
    struct selgroup *g;

    if (!j->sel_key) {
        j->sel_key = j->spec.node_selector
                         ? json_dumps(j->spec.node_selector, JSON_COMPACT | JSON_SORT_KEYS)
                         : strdup("");
        if (!j->sel_key)
            return NULL;
    }
    for (g = s->groups; g; g = g->next)
        if (strcmp(g->key, j->sel_key) == 0)
            return g;
    g = calloc(1, sizeof *g);
    if (!g || !(g->key = strdup(j->sel_key))) {
        free(g);
        return NULL;
    }
    g->next = s->groups;
    s->groups = g;
    return g;
}

/*
 * Put a ready job (its batch place taken) into its pool's heap, or a remote
 * one into its selector group's, where it learns why the group waits. Lock held.
 */
static void push_ready(struct sched *s, struct job *j) {
    struct selgroup *g = pool_of(j) == POOL_REMOTE ? remote_group(s, j) : NULL;
    struct jheap *h = g ? &g->heap : &s->ready[pool_of(j)];

    if ((pool_of(j) == POOL_REMOTE && !g) || heap_push(h, j) < 0) {
        log_error("scheduler: out of memory queueing job %s", j->id);
        return;
    }
    if (g && g->reason)
        set_waiting(s, j, g->reason);
}

/* No node takes the first job of g now: tell its jobs why, once per new reason. Lock held. */
static void group_waits(struct sched *s, struct selgroup *g, bool matched) {
    char *why = waiting_reason(g, matched);

    if (!why || (g->reason && strcmp(g->reason, why) == 0)) {
        free(why);
        return;
    }
    free(g->reason);
    g->reason = why;
    for (size_t i = 0; i < g->heap.len; i++)
        set_waiting(s, g->heap.v[i], why);
}

static void selgroup_free(struct selgroup *g) {
    free(g->key);
    free(g->reason);
    free(g->heap.v);
    free(g);
}

/* The job, when `attempt` is its current remote attempt; else NULL (a late word: ignore it). */
static struct job *remote_attempt(struct sched *s, int64_t num, int attempt) {
    struct job *j = find(s, num);

    if (!j || pool_of(j) != POOL_REMOTE || !j->starting || j->attempts != attempt)
        return NULL;
    return j;
}

static void attempt_lost(struct sched *s, struct job *j);

/* Hand the current attempt of j to the remote executor: a dispatch, or a resume. Lock held. */
static void send_remote(struct sched *s, struct job *j, bool resume) {
    struct node *n = find_node(s, j->node_id);
    struct exec_remote_run run;
    char *body = NULL;
    int rc;

    if (!n) {
        attempt_lost(s, j); /* forgotten (DELETE) in the meantime */
        return;
    }
    memset(&run, 0, sizeof run);
    run.num = j->num;
    memcpy(run.id, j->id, sizeof run.id);
    run.attempt = j->attempts;
    run.node_id = n->id;
    run.node_url = n->url;
    run.output_cap =
        j->spec.limits.output_bytes > 0 ? j->spec.limits.output_bytes : s->cfg->max_output;
    if (resume && j->remote_id) {
        run.remote_id = j->remote_id;
        rc = exec_remote_resume(s->remote, &run);
    } else {
        json_t *spec = json_loads(j->spec_json, 0, NULL);
        body = spec ? exec_remote_node_spec(spec, s->instance_id, j->id, j->attempts) : NULL;
        json_decref(spec);
        run.spec_json = body;
        rc = body ? exec_remote_start(s->remote, &run) : -ENOMEM;
        free(body);
    }
    if (rc < 0) {
        /* Shutting down: the attempt is recorded, and the next start sends it again. */
        if (rc != -ESHUTDOWN)
            log_error("scheduler: cannot send job %s to node %s: %s", j->id, n->id, strerror(-rc));
        return;
    }
    if (j->cancel_requested)
        exec_remote_cancel(s->remote, j->num);
}

struct dispatch_ctx {
    struct sched *s;
    int64_t num;
    int attempt;
};

/* The record of where an attempt goes is on disk: now send it. Called with the lock held. */
static void dispatch_committed(void *arg, int status) {
    struct dispatch_ctx *dc = arg;
    struct sched *s = dc->s;
    struct job *j = remote_attempt(s, dc->num, dc->attempt);

    if (j && !j->remote_id && !s->stopping && status == 0)
        send_remote(s, j, false);
    free(dc);
}

/* Start the next attempt of ready job j on node n. Lock held. */
static void start_remote(struct sched *s, struct job *j, struct node *n) {
    struct dispatch_ctx *dc = malloc(sizeof *dc);

    s->queued--;
    s->running[POOL_REMOTE]++;
    n->running++;
    n->dispatched++;
    j->starting = true;
    j->attempts++;
    snprintf(j->node_id, sizeof j->node_id, "%s", n->id);
    free(j->remote_id);
    j->remote_id = NULL;
    free(j->waiting);
    j->waiting = NULL;
    j->out_readable[0] = j->out_readable[1] = 0;
    /*
     * Record the node and the attempt before anything is sent, so that after
     * a crash the same attempt goes to the same node under the same
     * Idempotency-Key (which the node answers with the job it already has).
     */
    if (dc) {
        *dc = (struct dispatch_ctx){s, j->num, j->attempts};
        if (change_job(s, j, CH_UPDATE, dispatch_committed, dc) == 0)
            return;
        free(dc);
    }
    send_remote(s, j, false); /* out of memory: send it unrecorded rather than not at all */
}

/*
 * Start ready remote jobs while nodes take them: each time, the first job of
 * each selector group is offered a node, and the one that runs first (by
 * priority, then age) among those that found one starts. Lock held.
 */
static void dispatch_remote(struct sched *s) {
    if (!s->remote)
        return;
    for (;;) {
        struct selgroup *best = NULL;
        struct node *best_node = NULL;
        for (struct selgroup *g = s->groups; g; g = g->next) {
            if (g->heap.len == 0)
                continue;
            bool matched;
            struct node *n = pick_node(s, g->heap.v[0], &matched);
            if (!n)
                group_waits(s, g, matched);
            else if (!best || runs_before(g->heap.v[0], best->heap.v[0])) {
                best = g;
                best_node = n;
            }
        }
        if (!best)
            break;
        free(best->reason);
        best->reason = NULL;
        start_remote(s, heap_pop(&best->heap), best_node);
    }
    for (struct selgroup **pp = &s->groups; *pp;) {
        struct selgroup *g = *pp;
        if (g->heap.len == 0) {
            *pp = g->next;
            selgroup_free(g);
        } else {
            pp = &g->next;
        }
    }
}

/*
 * The current attempt of j is lost with its node: retry it while retries
 * remain, else the job fails with "node lost". Lock held.
 */
static void attempt_lost(struct sched *s, struct job *j) {
    if (j->starting) {
        exec_remote_abandon(s->remote, j->num, j->attempts);
        s->running[POOL_REMOTE]--;
        node_release(s, j);
        j->starting = false;
    }
    unrelease(s, j);
    if (j->cancel_requested) {
        j->state = JOBD_CANCELLED;
        j->finished_ms = jobd_now_ms();
        set_error(j, "cancelled (its node was lost)");
    } else if (j->attempts <= j->spec.retries) {
        set_error(j, "node lost");
        requeue(s, j, 0);
    } else {
        j->state = JOBD_FAILED;
        j->finished_ms = jobd_now_ms();
        set_error(j, "node lost");
    }
    change_job(s, j, CH_UPDATE, NULL, NULL);
}

static void on_remote_dispatched(void *ctx, int64_t num, int attempt, const char *remote_id) {
    struct sched *s = ctx;
    struct job *j;

    pthread_mutex_lock(&s->lock);
    j = remote_attempt(s, num, attempt);
    if (j && !j->remote_id && jobd_state_can_transition(j->state, JOBD_RUNNING)) {
        j->remote_id = strdup(remote_id);
        mark_running(j, 0, 0, jobd_now_ms());
        /*
         * Not durable, and need not be: should a crash take this change back,
         * the recorded dispatch is sent again to the same node under the
         * same Idempotency-Key, and the node answers with this very job.
         */
        change_job(s, j, CH_UPDATE, NULL, NULL);
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_remote_output(void *ctx, int64_t num, int attempt, int stream, int64_t readable,
                             const void *data, size_t len) {
    struct sched *s = ctx;
    struct job *j;

    pthread_mutex_lock(&s->lock);
    j = remote_attempt(s, num, attempt);
    if (j && stream >= 0 && stream < 2) {
        live_update(j, stream, data, len);
        j->out_readable[stream] = readable;
        fire_all(s, &j->watches);
    }
    pthread_mutex_unlock(&s->lock);
}

static void on_remote_exited(void *ctx, int64_t num, int attempt, const struct exec_result *res) {
    struct sched *s = ctx;
    struct job *j;

    pthread_mutex_lock(&s->lock);
    j = remote_attempt(s, num, attempt);
    if (j) {
        /* The node's clock says when it really started. */
        if (res->started_ms > 0)
            j->started_ms = res->started_ms;
        attempt_ended(s, j, res);
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_remote_refused(void *ctx, int64_t num, int attempt, int http_status,
                              const char *detail) {
    struct sched *s = ctx;
    struct exec_result res;
    struct job *j;

    memset(&res, 0, sizeof res);
    res.end = EXEC_START_FAILED;
    res.exit_code = -1;
    res.finished_ms = jobd_now_ms();
    pthread_mutex_lock(&s->lock);
    j = remote_attempt(s, num, attempt);
    if (j) {
        snprintf(res.error, sizeof res.error, "node %s refused the job (HTTP %d): %s", j->node_id,
                 http_status, detail && *detail ? detail : "no reason given");
        attempt_ended(s, j, &res);
    }
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void on_node_seen(void *ctx, const char *node_id) {
    struct sched *s = ctx;
    struct node *n;

    pthread_mutex_lock(&s->lock);
    n = find_node(s, node_id);
    if (n) {
        n->last_seen_mono = jobd_mono_ms();
        n->last_seen_ms = jobd_now_ms();
    }
    pthread_mutex_unlock(&s->lock);
}

/* A node row on its way to the store. */
struct node_op {
    struct store_op op;
    struct sched *s;
    char *doc; /* the node's document at this change (the event) */
    char *labels;
    char id[EXEC_REMOTE_NODE_ID_MAX + 1];
    char *url, *version;
};

static void node_op_done(void *arg, int status) {
    struct node_op *no = arg;
    struct sched *s = no->s;

    if (status != 0)
        log_error("scheduler: node %s not stored: %s", no->id, store_strerror(status));
    pthread_mutex_lock(&s->lock);
    /*
     * Published like a job's change: the store commits in order, so every
     * change numbered before this one is published by now.
     */
    if (no->doc) {
        size_t i = s->node_ev_next;
        free(s->node_ev[i].doc);
        s->node_ev[i].seq = no->op.row.seq;
        s->node_ev[i].doc = no->doc;
        s->node_ev[i].deleted = no->op.kind == STORE_DELETE_NODE;
        no->doc = NULL;
        s->node_ev_next = (i + 1) % NODE_EVENTS;
    }
    if (no->op.row.seq > s->pub_seq)
        s->pub_seq = no->op.row.seq;
    fire_all(s, &s->global_watches);
    s->pending--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    free(no->doc);
    free(no->labels);
    free(no->url);
    free(no->version);
    free(no);
}

static json_t *node_doc(const struct node *n);

/* Store the node as it is now (or its removal), a change with a seq of its own. Lock held. */
static void persist_node(struct sched *s, const struct node *n, bool remove, bool durable) {
    struct node_op *no = calloc(1, sizeof *no);
    json_t *doc = remove ? json_pack("{s:s}", "id", n->id) : node_doc(n);

    if (doc && no)
        no->doc = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!no || !no->doc) {
        free(no);
        goto oom;
    }
    no->s = s;
    no->op.row.seq = ++s->last_seq;
    snprintf(no->id, sizeof no->id, "%s", n->id);
    no->op.kind = remove ? STORE_DELETE_NODE : STORE_PUT_NODE;
    no->op.node.id = no->id;
    if (!remove) {
        no->labels = json_dumps(n->labels, JSON_COMPACT | JSON_SORT_KEYS);
        no->url = strdup(n->url);
        no->version = n->version ? strdup(n->version) : NULL;
        if (!no->labels || !no->url || (n->version && !no->version)) {
            free(no->doc);
            free(no->labels);
            free(no->url);
            free(no->version);
            free(no);
            goto oom;
        }
        no->op.node = (struct store_node){
            no->id,      no->url,     no->labels,      node_state_names[n->state],
            no->version, n->capacity, n->registered_ms};
    }
    no->op.retry = true;
    no->op.durable = durable;
    no->op.done = node_op_done;
    no->op.arg = no;
    s->pending++;
    store_enqueue(s->store, &no->op);
    return;
oom:
    log_error("scheduler: out of memory storing node %s", n->id);
}

static void node_free(struct node *n) {
    if (!n)
        return;
    json_decref(n->labels);
    free(n->url);
    free(n->version);
    free(n);
}

/* Put n into the list in id order. */
static void node_insert(struct sched *s, struct node *n) {
    struct node **pp = &s->nodes;

    while (*pp && strcmp((*pp)->id, n->id) < 0)
        pp = &(*pp)->next;
    n->next = *pp;
    *pp = n;
}

/* The node's document (a new reference, or NULL if memory runs out). Lock held. */
static json_t *node_doc(const struct node *n) {
    char seen[40], reg[40];

    jobd_format_time(n->last_seen_ms, seen, sizeof seen);
    jobd_format_time(n->registered_ms, reg, sizeof reg);
    /* A copy of the labels: a document leaves the lock, and no JSON value is shared. */
    return json_pack("{s:s, s:s, s:s, s:o, s:i, s:i, s:s, s:s, s:s?}", "id", n->id, "url", n->url,
                     "state", node_state_names[n->state], "labels", json_deep_copy(n->labels),
                     "capacity", n->capacity, "running", n->running, "last_seen", seen,
                     "registered_at", reg, "version", n->version);
}

/* The node went quiet for --node-timeout: it is down, and so are its attempts. Lock held. */
static void node_down(struct sched *s, struct node *n) {
    int lost = 0;

    n->state = NODE_DOWN;
    persist_node(s, n, false, false);
    for (size_t i = 0; i < s->table_size; i++) {
        for (struct job *j = s->table[i]; j; j = j->hash_next) {
            if (pool_of(j) == POOL_REMOTE && j->starting && strcmp(j->node_id, n->id) == 0) {
                attempt_lost(s, j);
                lost++;
            }
        }
    }
    log_warn("scheduler: node %s (%s) not heard from for %g s: down, %d job(s) lost", n->id, n->url,
             s->cfg->node_timeout, lost);
    dispatch(s);
}

static void check_nodes(struct sched *s, int64_t now) {
    int64_t timeout_ms = (int64_t)(s->cfg->node_timeout * 1000);

    for (struct node *n = s->nodes; n; n = n->next)
        if (n->state != NODE_DOWN && now - n->last_seen_mono > timeout_ms)
            node_down(s, n);
}

int sched_node_register(struct sched *s, const struct sched_node_reg *r, json_t **doc,
                        bool *created) {
    struct node *n;
    bool changed = false, url_changed = false;
    json_t *labels = r->labels ? json_deep_copy(r->labels) : json_object();
    int rc = 0;

    if (!labels)
        return -ENOMEM;
    pthread_mutex_lock(&s->lock);
    if (!s->remote) {
        rc = -ENOTSUP;
        goto out;
    }
    if (s->stopping) {
        rc = -ESHUTDOWN;
        goto out;
    }
    n = find_node(s, r->id);
    *created = !n;
    if (!n) {
        n = calloc(1, sizeof *n);
        if (!n || !(n->url = strdup(r->url))) {
            free(n);
            rc = -ENOMEM;
            goto out;
        }
        snprintf(n->id, sizeof n->id, "%s", r->id);
        n->labels = labels;
        labels = NULL;
        n->capacity = r->capacity;
        n->version = r->version ? strdup(r->version) : NULL;
        n->state = NODE_READY;
        n->registered_ms = jobd_now_ms();
        node_insert(s, n);
        changed = url_changed = true;
        log_info("scheduler: node %s joined at %s (capacity %d)", n->id, n->url, n->capacity);
    } else {
        if (strcmp(n->url, r->url) != 0) {
            char *u = strdup(r->url);
            if (!u) {
                rc = -ENOMEM;
                goto out;
            }
            /*
             * A node restarted on another address, or two nodes started from
             * copies of one data directory (they would take turns here).
             */
            log_warn("scheduler: node %s moved from %s to %s (if it keeps moving back and forth, "
                     "two nodes share one instance-id)",
                     n->id, n->url, r->url);
            free(n->url);
            n->url = u;
            changed = url_changed = true;
        }
        if (!json_equal(n->labels, labels)) {
            json_decref(n->labels);
            n->labels = labels;
            labels = NULL;
            changed = true;
        }
        if (n->capacity != r->capacity) {
            n->capacity = r->capacity;
            changed = true;
        }
        if ((r->version || n->version) &&
            (!r->version || !n->version || strcmp(r->version, n->version) != 0)) {
            free(n->version);
            n->version = r->version ? strdup(r->version) : NULL;
            changed = true;
        }
        if (n->state == NODE_DOWN) {
            n->state = NODE_READY;
            changed = true;
            log_info("scheduler: node %s is back at %s", n->id, n->url);
        }
    }
    n->last_seen_mono = jobd_mono_ms();
    n->last_seen_ms = jobd_now_ms();
    if (changed)
        persist_node(s, n, false, *created);
    if (url_changed)
        exec_remote_set_node(s->remote, n->id, n->url);
    *doc = node_doc(n);
    if (!*doc)
        rc = -ENOMEM;
    dispatch(s);
out:
    pthread_mutex_unlock(&s->lock);
    json_decref(labels);
    return rc;
}

int sched_node_events(struct sched *s, int64_t after, int64_t upto,
                      int (*fn)(void *arg, int64_t seq, bool deleted, const char *doc), void *arg) {
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < NODE_EVENTS && rc == 0; k++) {
        size_t i = (s->node_ev_next + k) % NODE_EVENTS;
        if (s->node_ev[i].doc && s->node_ev[i].seq > after && s->node_ev[i].seq <= upto)
            rc = fn(arg, s->node_ev[i].seq, s->node_ev[i].deleted, s->node_ev[i].doc);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_nodes_list(struct sched *s, json_t **arr) {
    json_t *a = json_array();
    int rc = a ? 0 : -ENOMEM;

    pthread_mutex_lock(&s->lock);
    for (struct node *n = s->nodes; n && rc == 0; n = n->next)
        if (json_array_append_new(a, node_doc(n)) < 0)
            rc = -ENOMEM;
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        json_decref(a);
        return rc;
    }
    *arr = a;
    return 0;
}

int sched_node_get(struct sched *s, const char *id, json_t **doc) {
    struct node *n;
    int rc = -ENOENT;

    pthread_mutex_lock(&s->lock);
    n = find_node(s, id);
    if (n) {
        *doc = node_doc(n);
        rc = *doc ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_node_drain(struct sched *s, const char *id, json_t **doc) {
    struct node *n;
    int rc = -ENOENT;

    pthread_mutex_lock(&s->lock);
    n = find_node(s, id);
    if (n) {
        if (n->state == NODE_READY) {
            n->state = NODE_DRAINING;
            persist_node(s, n, false, true);
            log_info("scheduler: node %s is draining (%d running)", n->id, n->running);
        }
        *doc = node_doc(n);
        rc = *doc ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_node_delete(struct sched *s, const char *id, int *running) {
    struct node **pp, *n = NULL;
    int rc = -ENOENT;

    pthread_mutex_lock(&s->lock);
    for (pp = &s->nodes; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            n = *pp;
            break;
        }
    }
    if (n && n->running > 0) {
        *running = n->running;
        rc = -EBUSY;
    } else if (n) {
        *pp = n->next;
        persist_node(s, n, true, true);
        exec_remote_set_node(s->remote, n->id, NULL);
        log_info("scheduler: node %s forgotten", n->id);
        node_free(n);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int load_node(void *arg, const struct store_node *sn) {
    struct sched *s = arg;
    struct node *n = calloc(1, sizeof *n);

    if (!n)
        return -ENOMEM;
    snprintf(n->id, sizeof n->id, "%s", sn->id);
    n->url = strdup(sn->url);
    n->labels = json_loads(sn->labels, 0, NULL);
    n->version = sn->version ? strdup(sn->version) : NULL;
    n->capacity = sn->capacity > 0 ? sn->capacity : 1;
    n->registered_ms = sn->registered_ms;
    n->state = strcmp(sn->state, "draining") == 0 ? NODE_DRAINING
               : strcmp(sn->state, "down") == 0   ? NODE_DOWN
                                                  : NODE_READY;
    /* Liveness is measured anew: every node gets a full --node-timeout to speak up. */
    n->last_seen_mono = jobd_mono_ms();
    n->last_seen_ms = jobd_now_ms();
    if (!n->url || !json_is_object(n->labels)) {
        node_free(n);
        log_error("scheduler: stored node %s is unreadable; it must register again", sn->id);
        return 0;
    }
    /* The remote executor hears of it after recovery (see sched_start). */
    node_insert(s, n);
    return 0;
}

/*
 * Recovery of a remote job that had an attempt under way (lock held): follow
 * it again, or send it again to the same node under the same key. Return
 * true when handled here.
 */
static bool recover_remote(struct sched *s, struct job *j, const struct store_row *row) {
    struct node *n;

    if (pool_of(j) != POOL_REMOTE || !row->node || !s->remote)
        return false;
    snprintf(j->node_id, sizeof j->node_id, "%s", row->node);
    if (row->remote_id)
        j->remote_id = strdup(row->remote_id);
    n = find_node(s, j->node_id);
    if (!n) {
        if (j->state == JOBD_QUEUED) {
            j->node_id[0] = '\0';
            return false; /* dispatch never got under way: queue it as usual */
        }
        attempt_lost(s, j);
        return true;
    }
    if (j->state == JOBD_QUEUED && j->attempts == 0)
        return false;
    s->running[POOL_REMOTE]++;
    n->running++;
    j->starting = true;
    if (n->state == NODE_DOWN) {
        attempt_lost(s, j); /* nothing would ever mark it lost otherwise */
        return true;
    }
    if (j->batch && !j->released) {
        j->released = true; /* it holds one of its batch's running places */
        j->batch->released++;
    }
    send_remote(s, j, j->state == JOBD_RUNNING && j->remote_id);
    return true;
}

/* ---- public API ---- */

int sched_submit(struct sched *s, struct jobd_spec *spec, const char *idem_key, int64_t *num,
                 sched_done_fn done, void *arg) {
    struct job *j = NULL;
    json_t *sj = NULL;
    char *spec_json = NULL;
    int rc;

    sj = jobd_spec_to_json(spec);
    spec_json = sj ? json_dumps(sj, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    if (!spec_json) {
        rc = -ENOMEM;
        goto fail;
    }

    if (idem_key) {
        int64_t onum = 0;
        char *ospec = NULL;
        /* An idempotency key of an ended job: answer from the store. */
        rc = store_find_idem(s->store, idem_key, &onum, &ospec);
        if (rc == 0) {
            rc = strcmp(ospec, spec_json) == 0 ? 1 : -EEXIST;
            free(ospec);
            if (rc == 1)
                *num = onum;
            goto fail;
        }
        if (rc != -ENOENT)
            goto fail;
    }

    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        rc = -ESHUTDOWN;
        goto unlock_fail;
    }
    if (idem_key) {
        struct job *o = find_idem(s, idem_key);
        if (o) {
            if (!o->visible)
                rc = -EBUSY;
            else if (strcmp(o->spec_json, spec_json) == 0)
                rc = 1;
            else
                rc = -EEXIST;
            if (rc == 1)
                *num = o->num;
            goto unlock_fail;
        }
    }
    if (s->queued >= s->cfg->max_queued) {
        rc = -EAGAIN;
        goto unlock_fail;
    }
    j = calloc(1, sizeof *j);
    if (!j || (idem_key && !(j->idem_key = strdup(idem_key)))) {
        rc = -ENOMEM;
        goto unlock_fail;
    }
    j->num = ++s->last_num;
    jobd_format_id(j->num, j->id, sizeof j->id);
    j->spec = *spec;
    jobd_spec_init(spec);
    j->spec_json = spec_json;
    spec_json = NULL;
    j->spec_doc = spec_doc_text(sj);
    if (!j->spec_doc) {
        rc = -ENOMEM;
        goto unlock_fail;
    }
    j->state = JOBD_QUEUED;
    j->pub_state = JOBD_QUEUED;
    j->created_ms = jobd_now_ms();
    j->exit_code = -1;
    j->heap_slot = SIZE_MAX;
    rc = table_insert(s, j);
    if (rc < 0)
        goto unlock_fail;
    rc = change_job(s, j, CH_SUBMIT, done, arg);
    if (rc < 0) {
        table_remove(s, j);
        goto unlock_fail;
    }
    s->queued++;
    *num = j->num;
    pthread_mutex_unlock(&s->lock);
    json_decref(sj);
    return 0;

unlock_fail:
    pthread_mutex_unlock(&s->lock);
    if (j)
        job_free(j);
    jobd_spec_free(spec); /* empty once moved into j */
    free(spec_json);
    json_decref(sj);
    return rc;
fail:
    jobd_spec_free(spec);
    free(spec_json);
    json_decref(sj);
    return rc;
}

int sched_get_doc(struct sched *s, int64_t num, char **doc, bool *final) {
    struct job *j;
    int rc;

    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (j && j->visible && j->doc) {
        *doc = strdup(j->doc);
        *final = jobd_state_is_final(j->pub_state);
        pthread_mutex_unlock(&s->lock);
        return *doc ? 0 : -ENOMEM;
    }
    if (!j && s->cache[cache_slot(num)].num == num && s->cache[cache_slot(num)].doc) {
        *doc = strdup(s->cache[cache_slot(num)].doc);
        *final = true;
        pthread_mutex_unlock(&s->lock);
        return *doc ? 0 : -ENOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    /*
     * Not in the table: ended, so the store has its last word. In the table
     * but not yet visible: either its submission is still being committed
     * (the store has nothing: 404) or it has just been committed and is about
     * to be published (an idempotent twin found it in the store): the row is
     * what will be published.
     */
    rc = store_get_doc(s->store, num, doc);
    if (rc == 0)
        *final = !j; /* only ended jobs leave the table */
    return rc;
}

/* Cancel one visible job. Caller holds the lock. Same returns as sched_cancel. */
static int cancel_locked(struct sched *s, struct job *j, sched_done_fn done, void *arg) {
    if (jobd_state_is_final(j->state))
        return -EALREADY;
    if (j->starting || j->state == JOBD_RUNNING) {
        j->cancel_requested = true;
        if (pool_of(j) == POOL_THREAD)
            exec_thread_cancel(s->threads, j->num);
        else if (pool_of(j) == POOL_REMOTE)
            exec_remote_cancel(s->remote, j->num); /* relayed to its node */
        else
            exec_proc_cancel(s->exec, j->num);
        return 1;
    }
    /* Queued, ready or waiting for a retry: it ends now. */
    heap_remove(j);
    delayed_remove(s, j);
    unrelease(s, j);
    j->not_before = 0;
    s->queued--;
    j->cancel_requested = true;
    j->state = JOBD_CANCELLED;
    j->finished_ms = jobd_now_ms();
    set_error(j, "cancelled");
    return change_job(s, j, CH_UPDATE, done, arg);
}

int sched_cancel(struct sched *s, int64_t num, sched_done_fn done, void *arg) {
    struct job *j;
    int rc;

    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (!j || !j->visible) {
        pthread_mutex_unlock(&s->lock);
        if (j)
            return -ENOENT;
        char *doc = NULL;
        rc = store_get_doc(s->store, num, &doc);
        free(doc);
        return rc == 0 ? -EALREADY : rc;
    }
    rc = cancel_locked(s, j, done, arg);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_delete(struct sched *s, int64_t num, sched_done_fn done, void *arg) {
    struct change *ch;
    char *doc = NULL;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = find(s, num) ? -EBUSY : 0;
    pthread_mutex_unlock(&s->lock);
    if (rc < 0)
        return rc;
    rc = store_get_doc(s->store, num, &doc);
    free(doc);
    if (rc < 0)
        return rc;
    ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->s = s;
    ch->kind = CH_DELETE;
    ch->done = done;
    ch->arg = arg;
    jobd_format_id(num, ch->id, sizeof ch->id);
    ch->op.kind = STORE_DELETE;
    ch->op.durable = done != NULL;
    ch->op.row.num = num;
    ch->op.row.id = ch->id;
    ch->op.done = change_done;
    ch->op.arg = ch;
    pthread_mutex_lock(&s->lock);
    cache_drop(s, num);
    s->pending++;
    store_enqueue(s->store, &ch->op);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int sched_output_read(struct sched *s, int64_t num, int stream, int64_t offset, char *buf,
                      size_t max, ssize_t *n, int64_t *readable, bool *ended) {
    struct job *j;
    int rc = -ENOENT;

    *n = -1;
    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (j && j->visible) {
        /* Output shows once the attempt's start is published, never before. */
        bool shown = j->pub_state != JOBD_QUEUED;
        *readable = shown ? j->out_readable[stream] : 0;
        *ended = jobd_state_is_final(j->pub_state);
        if (!j->live_file[stream]) {
            size_t have = shown ? j->live_len[stream] : 0;
            *readable = (int64_t)have;
            *n = 0;
            if (offset >= 0 && (uint64_t)offset < have) {
                size_t k = have - (size_t)offset < max ? have - (size_t)offset : max;
                memcpy(buf, j->live[stream] + offset, k);
                *n = (ssize_t)k;
            }
        }
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_output_state(struct sched *s, int64_t num, int stream, int64_t *readable, bool *ended) {
    struct job *j;
    int rc = -ENOENT;

    pthread_mutex_lock(&s->lock);
    j = find(s, num);
    if (j && j->visible) {
        /* Output shows once the attempt's start is published, never before. */
        *readable = j->pub_state == JOBD_QUEUED ? 0 : j->out_readable[stream];
        *ended = jobd_state_is_final(j->pub_state);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void sched_stats(struct sched *s, struct sched_stats *st) {
    pthread_mutex_lock(&s->lock);
    st->queued = s->queued;
    st->running_process = s->running[POOL_PROCESS];
    st->running_thread = s->running[POOL_THREAD];
    st->running_remote = s->running[POOL_REMOTE];
    st->running = st->running_process + st->running_thread + st->running_remote;
    st->nodes_ready = st->nodes_draining = st->nodes_down = 0;
    for (struct node *n = s->nodes; n; n = n->next) {
        if (n->state == NODE_READY)
            st->nodes_ready++;
        else if (n->state == NODE_DRAINING)
            st->nodes_draining++;
        else
            st->nodes_down++;
    }
    st->seq = s->pub_seq;
    pthread_mutex_unlock(&s->lock);
    st->threads = s->cfg->threads;
    st->stuck_threads = exec_thread_stuck(s->threads);
}

/* ---- the scheduler thread: retry backoff and retention ---- */

struct expired {
    int64_t *nums;
    size_t n, cap;
};

static int collect_expired(void *arg, const struct store_row *row) {
    struct expired *e = arg;

    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 64;
        int64_t *nn = realloc(e->nums, ncap * sizeof *nn);
        if (!nn)
            return -ENOMEM;
        e->nums = nn;
        e->cap = ncap;
    }
    e->nums[e->n++] = row->num;
    return 0;
}

/* Remove ended jobs past the retention. Called without the lock. */
static void sweep_retention(struct sched *s) {
    int64_t before = jobd_now_ms() - (int64_t)(s->cfg->retention * 1000);
    struct expired e = {0};

    if (store_load_expired(s->store, before, RETENTION_BATCH, collect_expired, &e) < 0) {
        free(e.nums);
        return;
    }
    for (size_t i = 0; i < e.n; i++)
        sched_delete(s, e.nums[i], NULL, NULL);
    if (e.n)
        log_info("scheduler: retention removed %zu ended jobs", e.n);
    free(e.nums);
}

static void *sched_main(void *arg) {
    struct sched *s = arg;
    int64_t retention_every = (int64_t)(s->cfg->retention * 1000 / 4);

    if (retention_every > RETENTION_EVERY_MS)
        retention_every = RETENTION_EVERY_MS;
    if (retention_every < 500)
        retention_every = 500;
    pthread_mutex_lock(&s->lock);
    while (!s->thread_stop) {
        int64_t now = jobd_mono_ms();
        int64_t next = s->next_retention;

        for (struct job **pp = &s->delayed; *pp;) {
            struct job *j = *pp;
            if (j->not_before <= now) {
                *pp = j->delayed_next;
                j->delayed_next = NULL;
                j->not_before = 0;
                make_ready(s, j);
                continue;
            }
            if (j->not_before < next)
                next = j->not_before;
            pp = &j->delayed_next;
        }
        if (s->nodes && now >= s->next_node_check) {
            int64_t every = (int64_t)(s->cfg->node_timeout * 250);
            s->next_node_check = now + (every < 100 ? 100 : every);
            check_nodes(s, now);
        }
        if (s->nodes && s->next_node_check < next)
            next = s->next_node_check;
        dispatch(s);
        if (now >= s->next_retention) {
            s->next_retention = now + retention_every;
            pthread_mutex_unlock(&s->lock);
            sweep_retention(s);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        int64_t wait = next - now;
        struct timespec ts;
        jobd_mono_after(wait, &ts);
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- life cycle ---- */

int sched_create(const struct sched_config *sc, struct sched **out) {
    static const struct exec_callbacks cbs = {on_started, on_output, on_exited};
    static const struct exec_remote_callbacks rcbs = {
        on_remote_dispatched, on_remote_output, on_remote_exited, on_remote_refused, on_node_seen};
    struct sched *s = calloc(1, sizeof *s);
    struct exec_config ec;
    struct exec_thread_config tc;
    pthread_condattr_t ca;
    int rc;

    if (!s)
        return -ENOMEM;
    s->cfg = sc->cfg;
    s->store = sc->store;
    s->last_num = sc->last_num;
    s->last_seq = sc->last_seq;
    s->pub_seq = sc->last_seq;
    s->out_dir = strdup(sc->out_dir);
    s->table_size = 1024;
    s->table = calloc(s->table_size, sizeof *s->table);
    s->idem_size = 1024;
    s->idem = calloc(s->idem_size, sizeof *s->idem);
    s->batches_size = 256;
    s->batches = calloc(s->batches_size, sizeof *s->batches);
    if (!s->out_dir || !s->table || !s->idem || !s->batches) {
        rc = -ENOMEM;
        goto fail;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    memset(&ec, 0, sizeof ec);
    ec.out_dir = s->out_dir;
    ec.default_cwd = sc->cfg->data_dir;
    ec.path_env = "/usr/local/bin:/usr/bin:/bin";
    ec.run_as = sc->cfg->run_as;
    rc = exec_proc_create(&ec, &cbs, s, &s->exec);
    if (rc < 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        goto fail;
    }
    tc.out_dir = s->out_dir;
    tc.threads = sc->cfg->threads;
    rc = exec_thread_create(&tc, &cbs, s, &s->threads);
    if (rc < 0) {
        exec_proc_destroy(s->exec);
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        goto fail;
    }
    snprintf(s->instance_id, sizeof s->instance_id, "%s", sc->instance_id ? sc->instance_id : "");
    if (sc->cfg->cluster_token) {
        /* A coordinator: nodes may join. Each blocking poll waits half the node timeout. */
        struct exec_remote_config rc_cfg = {
            .out_dir = s->out_dir,
            .coordinator_id = s->instance_id,
            .cluster_token = sc->cfg->cluster_token,
            .cacert = sc->cfg->cacert,
            .poll_wait_s = sc->cfg->node_timeout / 2 > 25 ? 25 : sc->cfg->node_timeout / 2,
        };
        rc = exec_remote_create(&rc_cfg, &rcbs, s, &s->remote);
        if (rc < 0) {
            exec_thread_destroy(s->threads);
            exec_proc_destroy(s->exec);
            pthread_cond_destroy(&s->cond);
            pthread_mutex_destroy(&s->lock);
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    free(s->out_dir);
    free(s->table);
    free(s->idem);
    free(s->batches);
    free(s);
    return rc;
}

/* Parse our own RFC 3339 output back into epoch ms (0 when absent or malformed). */
static int64_t parse_time(const json_t *v) {
    const char *str = json_string_value(v);
    struct tm tm;
    const char *rest;
    int ms = 0;

    if (!str)
        return 0;
    memset(&tm, 0, sizeof tm);
    rest = strptime(str, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return 0;
    if (*rest == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Rebuild a job from its row. Return a new job, or NULL after logging why. */
static struct job *job_from_row(const struct store_row *row) {
    struct job *j = calloc(1, sizeof *j);
    struct jobd_error err;
    json_t *spec = NULL, *doc = NULL;

    if (!j)
        return NULL;
    jobd_spec_init(&j->spec);
    j->num = row->num;
    snprintf(j->id, sizeof j->id, "%s", row->id);
    j->heap_slot = SIZE_MAX;
    j->exit_code = -1;
    spec = json_loads(row->spec, 0, NULL);
    doc = json_loads(row->doc, 0, NULL);
    if (!spec || !doc || jobd_spec_parse(spec, &j->spec, &err) < 0) {
        log_error("scheduler: job %s has an unreadable stored spec; it is dropped from the queue",
                  row->id);
        goto fail;
    }
    j->spec_json = strdup(row->spec);
    json_t *sj = jobd_spec_to_json(&j->spec);
    j->spec_doc = spec_doc_text(sj);
    json_decref(sj);
    j->doc = strdup(row->doc);
    if (row->idem_key)
        j->idem_key = strdup(row->idem_key);
    if (!j->spec_json || !j->spec_doc || !j->doc || (row->idem_key && !j->idem_key))
        goto fail;
    j->state = row->state;
    j->pub_state = row->state;
    j->pub_seq = row->seq;
    j->visible = true;
    j->created_ms = row->created_ms;
    j->pid = row->pid;
    j->pid_start = row->pid_start;
    j->attempts = (int)json_integer_value(json_object_get(doc, "attempts"));
    j->started_ms = parse_time(json_object_get(doc, "started_at"));
    if (json_is_integer(json_object_get(doc, "exit_code")))
        j->exit_code = (int)json_integer_value(json_object_get(doc, "exit_code"));
    if (json_is_string(json_object_get(doc, "signal")))
        jobd_signal_parse(json_string_value(json_object_get(doc, "signal")), &j->signal);
    if (json_is_string(json_object_get(doc, "error")))
        j->error = strdup(json_string_value(json_object_get(doc, "error")));
    if (row->batch)
        snprintf(j->batch_id, sizeof j->batch_id, "%s", row->batch);
    json_decref(spec);
    json_decref(doc);
    return j;
fail:
    json_decref(spec);
    json_decref(doc);
    job_free(j);
    return NULL;
}

static int recover_row(void *arg, const struct store_row *row) {
    struct sched *s = arg;
    struct job *j = job_from_row(row);

    if (!j)
        return 0;
    if (table_insert(s, j) < 0) {
        job_free(j);
        return -ENOMEM;
    }
    if (row->batch) {
        int64_t bnum = sched_parse_batch_id(row->batch);
        struct batch *b = bnum > 0 ? find_batch(s, bnum) : NULL;
        if (!b && bnum > 0) {
            struct store_batch sb;
            char id[JOBD_MAX_ID_BYTES], name[JOBD_MAX_NAME_BYTES + 1];
            b = calloc(1, sizeof *b);
            if (b && store_get_batch(s->store, bnum, &sb, id, name, sizeof name) == 0) {
                b->num = bnum;
                snprintf(b->id, sizeof b->id, "%s", id);
                b->name = sb.name ? strdup(sb.name) : NULL;
                b->concurrency = sb.concurrency > 0 ? sb.concurrency : 1;
                b->total = sb.total;
                b->created_ms = sb.created_ms;
                b->committed = true;
                batch_insert(s, b);
            } else {
                log_error("scheduler: batch %s of job %s is missing; the job runs on its own",
                          row->batch, j->id);
                free(b);
                b = NULL;
            }
        }
        if (b)
            batch_add_member(b, j);
    }
    if (recover_remote(s, j, row))
        return 0;
    if (j->state == JOBD_QUEUED) {
        s->queued++;
        make_ready(s, j);
        return 0;
    }
    /* It was running when jobd died: clean up after it. */
    if (j->pid > 0) {
        int n = exec_kill_leftover_group((pid_t)j->pid, j->pid_start);
        if (n > 0)
            log_info("scheduler: killed %d leftover process(es) of job %s", n, j->id);
    }
    j->pid = 0;
    j->pid_start = 0;
    set_error(j, "interrupted");
    if (j->attempts <= j->spec.retries) {
        j->state = JOBD_QUEUED;
        s->queued++;
        make_ready(s, j);
    } else {
        j->state = JOBD_FAILED;
        j->finished_ms = jobd_now_ms();
    }
    return change_job(s, j, CH_UPDATE, NULL, NULL);
}

static void wait_until(struct sched *s, int64_t deadline);

int sched_start(struct sched *s) {
    int64_t deadline;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = store_load_nodes(s->store, load_node, s);
    if (rc < 0 && rc != -ENOENT)
        log_error("scheduler: cannot load worker nodes from the store: %s", strerror(-rc));
    rc = store_load_active(s->store, recover_row, s);
    if (rc < 0 && rc != -ENOENT) {
        pthread_mutex_unlock(&s->lock);
        log_error("scheduler: cannot load jobs from the store: %s", strerror(-rc));
        return rc;
    }
    /*
     * Only now poll the nodes: every remote attempt under way has been
     * resumed, so a first answer cannot mistake one for an abandoned attempt.
     */
    for (struct node *n = s->nodes; n && s->remote; n = n->next)
        exec_remote_set_node(s->remote, n->id, n->url);
    if (s->queued || s->table_count)
        log_info("scheduler: recovered %zu active jobs (%d queued)", s->table_count, s->queued);
    s->next_retention = jobd_mono_ms() + 1000;
    rc = pthread_create(&s->thread, NULL, sched_main, s);
    if (rc != 0) {
        pthread_mutex_unlock(&s->lock);
        return -rc;
    }
    s->thread_started = true;
    /*
     * Let recovery's changes ("interrupted", requeued) commit before anyone
     * can ask: HTTP starts after this returns.
     */
    deadline = jobd_mono_ms() + 30000;
    while (s->pending > 0 && jobd_mono_ms() < deadline)
        wait_until(s, deadline);
    dispatch(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Wait on s->cond until `deadline` (mono ms). Caller holds the lock. */
static void wait_until(struct sched *s, int64_t deadline) {
    int64_t wait = deadline - jobd_mono_ms();
    struct timespec ts;

    if (wait <= 0)
        return;
    if (wait > 200)
        wait = 200;
    jobd_mono_after(wait, &ts);
    pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

static int running_total(struct sched *s) {
    return s->running[POOL_PROCESS] + s->running[POOL_THREAD];
}

void sched_shutdown(struct sched *s, double grace_s) {
    int64_t deadline = jobd_mono_ms() + (int64_t)(grace_s * 1000);

    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    fire_all(s, &s->global_watches);
    while (running_total(s) > 0 && jobd_mono_ms() < deadline)
        wait_until(s, deadline);
    if (running_total(s) > 0) {
        log_info("scheduler: stopping %d running job(s)", running_total(s));
        pthread_mutex_unlock(&s->lock);
        exec_proc_stop_all(s->exec, 5000);
        exec_thread_stop_all(s->threads, 5000);
        pthread_mutex_lock(&s->lock);
        /* SIGKILL (or abandonment) follows within the capped grace; give it slack. */
        deadline = jobd_mono_ms() + 30000;
        while (running_total(s) > 0 && jobd_mono_ms() < deadline)
            wait_until(s, deadline);
    }
    s->thread_stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    /* Remote attempts keep running on their nodes: the next start follows them again. */
    if (s->remote)
        exec_remote_stop(s->remote);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    s->thread_started = false;
    pthread_mutex_lock(&s->lock);
    deadline = jobd_mono_ms() + 30000;
    while (s->pending > 0 && jobd_mono_ms() < deadline)
        wait_until(s, deadline);
    pthread_mutex_unlock(&s->lock);
}

void sched_destroy(struct sched *s) {
    if (!s)
        return;
    exec_proc_destroy(s->exec);
    exec_thread_destroy(s->threads);
    if (s->remote)
        exec_remote_destroy(s->remote);
    while (s->nodes) {
        struct node *n = s->nodes;
        s->nodes = n->next;
        node_free(n);
    }
    for (size_t i = 0; i < NODE_EVENTS; i++)
        free(s->node_ev[i].doc);
    while (s->groups) {
        struct selgroup *g = s->groups;
        s->groups = g->next;
        selgroup_free(g);
    }
    for (size_t i = 0; i < s->batches_size; i++) {
        while (s->batches[i])
            batch_free(s, s->batches[i]);
    }
    free(s->batches);
    for (size_t i = 0; i < DOC_CACHE; i++)
        free(s->cache[i].doc);
    for (size_t i = 0; i < s->table_size; i++) {
        struct job *j = s->table[i];
        while (j) {
            struct job *next = j->hash_next;
            job_free(j);
            j = next;
        }
    }
    free(s->table);
    free(s->idem);
    for (int p = 0; p < POOL_COUNT; p++)
        free(s->ready[p].v);
    free(s->out_dir);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- batches: API ---- */

int sched_submit_batch(struct sched *s, struct jobd_spec *specs, size_t n, int concurrency,
                       const char *name, int64_t *batch_num, sched_done_fn done, void *arg) {
    struct batch *b = NULL;
    struct change *bch = NULL, *first = NULL, **tail = &first;
    struct job **jobs = NULL;
    size_t made = 0;
    int rc = 0;

    if (n == 0 || n > SCHED_MAX_BATCH || concurrency < 1)
        rc = -EINVAL;
    jobs = rc == 0 ? calloc(n, sizeof *jobs) : NULL;
    if (rc == 0 && !jobs)
        rc = -ENOMEM;
    /* Render the canonical specs outside the lock. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *sj = jobd_spec_to_json(&specs[i]);
        struct job *j = calloc(1, sizeof *j);
        if (!j || !sj || !(j->spec_json = json_dumps(sj, JSON_COMPACT | JSON_SORT_KEYS))) {
            json_decref(sj);
            free(j);
            rc = -ENOMEM;
            break;
        }
        j->spec_doc = spec_doc_text(sj);
        json_decref(sj);
        if (!j->spec_doc) {
            job_free(j);
            rc = -ENOMEM;
            break;
        }
        j->spec = specs[i];
        jobd_spec_init(&specs[i]);
        j->state = JOBD_QUEUED;
        j->pub_state = JOBD_QUEUED;
        j->exit_code = -1;
        j->heap_slot = SIZE_MAX;
        jobs[made++] = j;
    }
    if (rc < 0)
        goto fail_unlocked;

    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        rc = -ESHUTDOWN;
        goto fail_locked;
    }
    if ((size_t)s->queued + n > (size_t)s->cfg->max_queued) {
        rc = -EAGAIN;
        goto fail_locked;
    }
    b = calloc(1, sizeof *b);
    bch = calloc(1, sizeof *bch);
    if (!b || !bch || (name && !(b->name = strdup(name)))) {
        rc = -ENOMEM;
        goto fail_locked;
    }
    b->num = ++s->last_num;
    sched_format_batch_id(b->num, b->id, sizeof b->id);
    b->concurrency = concurrency;
    b->total = (int)n;
    b->created_ms = jobd_now_ms();
    batch_insert(s, b);
    bch->s = s;
    bch->kind = CH_BATCH;
    bch->batch = b;
    bch->op.kind = STORE_PUT_BATCH;
    bch->op.durable = true;
    bch->op.batch =
        (struct store_batch){b->num, b->id, b->name, b->concurrency, b->total, b->created_ms};
    bch->op.done = change_done;
    bch->op.arg = bch;
    s->pending++;
    *tail = bch;
    tail = &bch->chain_next;
    for (size_t i = 0; i < n; i++) {
        struct job *j = jobs[i];
        struct change *ch;
        j->num = ++s->last_num;
        jobd_format_id(j->num, j->id, sizeof j->id);
        j->created_ms = b->created_ms;
        snprintf(j->batch_id, sizeof j->batch_id, "%s", b->id);
        if (table_insert(s, j) < 0) {
            rc = -ENOMEM;
            break;
        }
        batch_add_member(b, j);
        jobs[i] = NULL;
        s->queued++;
        /* The caller hears once, after the last job: all of them are then committed. */
        ch = make_change(s, j, CH_SUBMIT, i + 1 == n ? done : NULL, i + 1 == n ? arg : NULL);
        if (!ch) {
            rc = -ENOMEM;
            break;
        }
        *tail = ch;
        tail = &ch->chain_next;
    }
    if (rc < 0) {
        /*
         * Out of memory half way: nothing has reached the store yet, so undo
         * everything made so far. Every job inserted is a member of b.
         */
        for (struct change *c = first, *next; c; c = next) {
            next = c->chain_next;
            if (c->kind == CH_SUBMIT)
                c->job->pending--;
            s->pending--;
            free(c->doc);
            snapshot_free(c->snap);
            free(c);
        }
        while (b->members) {
            struct job *j = b->members;
            table_remove(s, j);
            batch_remove_member(s, j); /* b is neither committed nor failed: it stays */
            s->queued--;
            job_free(j);
        }
        batch_free(s, b);
        pthread_mutex_unlock(&s->lock);
        goto fail_unlocked;
    }
    /* Link the store operations in chain order and queue them as one. */
    for (struct change *c = first; c; c = c->chain_next)
        c->op.next = c->chain_next ? &c->chain_next->op : NULL;
    store_enqueue_chain(s->store, &first->op);
    *batch_num = b->num;
    pthread_mutex_unlock(&s->lock);
    free(jobs);
    return 0;

fail_locked:
    if (b) {
        free(b->name);
        free(b);
    }
    free(bch);
    pthread_mutex_unlock(&s->lock);
fail_unlocked:
    for (size_t i = 0; i < made; i++)
        if (jobs[i])
            job_free(jobs[i]);
    for (size_t i = 0; i < n; i++)
        jobd_spec_free(&specs[i]);
    free(jobs);
    return rc;
}

struct id_list {
    json_t *ids;
};

static int add_id(void *arg, int64_t num, const char *id) {
    struct id_list *l = arg;

    return json_array_append_new(l->ids, json_string(id)) == 0 ? 0 : -ENOMEM;
}

int sched_get_batch(struct sched *s, int64_t num, json_t **doc) {
    struct store_batch sb;
    char id[JOBD_MAX_ID_BYTES], name[JOBD_MAX_NAME_BYTES + 1], ts[40];
    int counts[JOBD_STATE_COUNT];
    struct id_list l;
    json_t *o, *c;
    int rc, active;

    rc = store_get_batch(s->store, num, &sb, id, name, sizeof name);
    if (rc < 0)
        return rc;
    rc = store_batch_counts(s->store, id, counts);
    if (rc < 0)
        return rc;
    l.ids = json_array();
    c = json_object();
    if (!l.ids || !c) {
        json_decref(l.ids);
        json_decref(c);
        return -ENOMEM;
    }
    rc = store_batch_jobs(s->store, id, add_id, &l);
    if (rc < 0) {
        json_decref(l.ids);
        json_decref(c);
        return rc;
    }
    for (int i = 0; i < JOBD_STATE_COUNT; i++) {
        json_object_set_new(c, jobd_state_name((enum jobd_state)i), json_integer(counts[i]));
    }
    active = counts[JOBD_QUEUED] + counts[JOBD_RUNNING];
    jobd_format_time(sb.created_ms, ts, sizeof ts);
    o = json_pack("{s:s, s:s?, s:i, s:i, s:o, s:b, s:o, s:s}", "id", id, "name", sb.name,
                  "concurrency", sb.concurrency, "total", sb.total, "counts", c, "done",
                  active == 0, "jobs", l.ids, "created_at", ts);
    if (!o)
        return -ENOMEM;
    *doc = o;
    return 0;
}

int sched_watch_batch(struct sched *s, struct sched_watch *w, int64_t num) {
    struct batch *b;
    int rc;

    pthread_mutex_lock(&s->lock);
    watch_unlink(s, w);
    b = find_batch(s, num);
    if (!b || !b->committed) {
        rc = b ? -ENOENT : 1;
    } else if (s->stopping) {
        rc = 1;
    } else {
        watch_link(&b->watches, w);
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int sched_cancel_batch(struct sched *s, int64_t num) {
    struct batch *b;

    pthread_mutex_lock(&s->lock);
    b = find_batch(s, num);
    if (b && b->committed) {
        /* cancel_locked never removes a member at once: removal waits for the publish. */
        for (struct job *j = b->members; j; j = j->bnext)
            if (j->visible)
                cancel_locked(s, j, NULL, NULL);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}
