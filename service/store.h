/*
 * store.h: SQLite persistence of jobs (WAL mode) with group commit.
 *
 * One writer thread owns the write connection. Other threads hand it
 * operations (struct store_op) with store_enqueue; the writer takes every
 * operation waiting, applies them all in ONE transaction, commits (with a
 * disk sync when an operation is `durable`), then calls each operation's
 * `done` callback in enqueue order. Concurrent submissions therefore share
 * one disk sync. Reads go through a small pool of read-only connections and
 * never wait for the writer (WAL readers see the last commit).
 *
 * A job row holds indexed columns for the queries the API needs, `spec`
 * (the canonical spec JSON, for recovery and idempotency checks) and `doc`
 * (the job resource exactly as the API renders it, so reads copy text
 * instead of rebuilding JSON).
 *
 * On-disk format: table `jobs` and table `meta` (key, value). Changing a
 * column means bumping meta.schema_version and migrating in store_open.
 */
#ifndef JOBD_STORE_H
#define JOBD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobd/job.h"

struct store;

/* One job row. Strings are borrowed by the functions that read a row. */
struct store_row {
    int64_t num;    /* primary key; the id is derived from it */
    const char *id; /* "j..." */
    enum jobd_state state;
    int64_t seq; /* last change number of this job */
    int priority;
    const char *name;     /* may be NULL */
    const char *batch;    /* may be NULL */
    const char *idem_key; /* Idempotency-Key, may be NULL; unique when set */
    int64_t created_ms;
    int64_t finished_ms; /* 0 while not ended */
    int64_t pid;         /* process group of the running attempt, 0 if none */
    int64_t pid_start;   /* start time of that process (clock ticks since boot), 0 if none */
    const char *spec;    /* canonical spec JSON */
    const char *doc;     /* job resource JSON */
    const void *out[2];  /* stdout, stderr kept in the row (small ones), NULL when in files */
    size_t out_len[2];
    const char *node;      /* remote job: the node of its current attempt, NULL if none */
    const char *remote_id; /* remote job: the node's id of that attempt, NULL until known */
};

enum store_op_kind {
    STORE_PUT,         /* insert or replace the row `row` */
    STORE_DELETE,      /* delete the row with number `row.num` */
    STORE_PUT_BATCH,   /* insert or replace the batch `batch` */
    STORE_PUT_NODE,    /* insert or replace the worker node `node` */
    STORE_DELETE_NODE, /* delete the worker node `node.id` */
};

/* A worker node as kept (its liveness is not: it is measured anew after a restart). */
struct store_node {
    const char *id;
    const char *url;
    const char *labels;  /* JSON object text */
    const char *state;   /* "ready", "draining", "down" */
    const char *version; /* may be NULL */
    int capacity;
    int64_t registered_ms;
};

/* A batch: a group of jobs submitted together, at most `concurrency` running at once. */
struct store_batch {
    int64_t num;
    const char *id;   /* "b..." */
    const char *name; /* may be NULL */
    int concurrency;
    int total;
    int64_t created_ms;
};

/*
 * An operation for the writer. The caller allocates it and owns it; it must
 * stay valid until `done` is called. Strings in `row` must stay valid until
 * then too (the caller usually points them into buffers it owns).
 * `done(arg, status)` runs on the writer thread after the commit: status is
 * 0, or a negative errno (-EIO, -ENOSPC) when the transaction failed.
 * When `retry` is set, a failed transaction does not fail this operation: it
 * is retried (with a delay) until it commits or the store closes (status
 * -ECANCELED then). Operations without `retry` fail at once.
 */
struct store_op {
    enum store_op_kind kind;
    struct store_row row;
    struct store_batch batch; /* STORE_PUT_BATCH only */
    struct store_node node;   /* STORE_PUT_NODE, STORE_DELETE_NODE only (with row.seq: the
                                 change number of the node's change, kept in meta) */
    bool retry;
    /*
     * The commit that holds this operation waits for the disk (fsync):
     * set it for what an answer promises is on disk (a 201). A transaction
     * of only non-durable operations is committed without the sync: it
     * survives a crash of jobd, and a power loss may take back its last
     * few changes (recovery then treats the jobs as interrupted).
     */
    bool durable;
    /*
     * A PUT that a later PUT of the same row in the same transaction makes
     * moot may be skipped: it is neither prepared nor written, `skipped` is
     * set, and `done` is still called (with 0) in its turn.
     */
    bool supersedable;
    bool skipped;
    /*
     * Called on the writer thread just before the row is written, to fill
     * what is costly to make (row.doc); NULL when the row is complete. Return
     * 0, or a negative errno that fails this operation alone.
     */
    int (*prepare)(struct store_op *op);
    void (*done)(void *arg, int status);
    void *arg;
    struct store_op *next; /* owned by the store while queued */
};

/* Counters recovered from the store at open. */
struct store_info {
    int64_t last_num; /* highest job number ever used (also of deleted jobs) */
    int64_t last_seq; /* highest change number ever used */
};

/*
 * Open (creating if needed) `<dir>/jobd.db`, set WAL mode, create the schema,
 * and start the writer thread. On failure return a negative errno and write a
 * message into errbuf.
 */
int store_open(const char *dir, struct store **out, struct store_info *info, char *errbuf,
               size_t errlen);

/* Finish every queued operation, stop the writer, close all connections. */
void store_close(struct store *st);

/* Queue an operation (thread-safe, never blocks on disk). */
void store_enqueue(struct store *st, struct store_op *op);

/*
 * Queue a chain of operations linked through `next` (the last one's next is
 * NULL). The chain is appended at once, so it lands in one transaction: all
 * of it commits or none (unless a single row is rejected on its own).
 */
void store_enqueue_chain(struct store *st, struct store_op *first);

/*
 * Batches. store_get_batch fills *b with strings in the caller's buffers
 * (id: JOBD_MAX_ID_BYTES, name: name_len). Return 0, -ENOENT or -errno.
 */
int store_get_batch(struct store *st, int64_t num, struct store_batch *b, char *id, char *name,
                    size_t name_len);
/*
 * A job's stream (0 stdout, 1 stderr) as kept in its row. Return 0 with
 * *data a new buffer (free it), or *data NULL when the stream is in its file
 * (or empty); -ENOENT when there is no such job; another negative errno.
 */
int store_get_output(struct store *st, int64_t num, int stream, char **data, size_t *len);

/* Count the batch's jobs by state into counts[JOBD_STATE_COUNT]. Return 0 or -errno. */
int store_batch_counts(struct store *st, const char *batch_id, int *counts);
/* Call fn(arg, num, id) for each job of the batch, oldest first. Return 0 or fn's non-zero. */
int store_batch_jobs(struct store *st, const char *batch_id,
                     int (*fn)(void *arg, int64_t num, const char *id), void *arg);

/*
 * Reads. Each returns 0, -ENOENT when nothing matches, or another negative
 * errno on a database error. Returned strings are new: the caller frees them.
 */
int store_get_doc(struct store *st, int64_t num, char **doc);
int store_find_idem(struct store *st, const char *key, int64_t *num, char **spec);

/* A listing query; unset filters are NULL / 0. */
struct store_query {
    const enum jobd_state *states; /* filter: any of these states */
    int n_states;
    const char *name;      /* filter: exact name */
    const char *label_key; /* filter: labels[label_key] == label_value */
    const char *label_value;
    const char *batch;  /* filter: batch id */
    int64_t before_num; /* page cursor: only jobs with num < before_num (0: none) */
    int64_t since_seq;  /* when >= 0 and `by_seq`: only seq > since_seq, in seq order */
    bool by_seq;        /* order by seq ascending instead of num descending */
    int limit;          /* 1..1001 (a page of 1000, plus one row to see a next page) */
};

/*
 * Call fn(arg, row) for every row of the query, in order, at most `limit`
 * rows; `row` and its strings are valid during the call only. A non-zero
 * return from fn stops the walk and is returned.
 */
int store_query(struct store *st, const struct store_query *q,
                int (*fn)(void *arg, const struct store_row *row), void *arg);

/* Call fn for every job in state queued or running (for recovery at start). */
int store_load_active(struct store *st, int (*fn)(void *arg, const struct store_row *row),
                      void *arg);

/* Call fn for every ended job with finished_ms < before_ms, at most `limit` (for retention). */
int store_load_expired(struct store *st, int64_t before_ms, int limit,
                       int (*fn)(void *arg, const struct store_row *row), void *arg);

/* Call fn for every worker node kept, in id order. Return 0 or fn's non-zero, or -errno. */
int store_load_nodes(struct store *st, int (*fn)(void *arg, const struct store_node *n), void *arg);

/* A store failure in words, for answers and logs ("the disk is full"). */
const char *store_strerror(int status);

/*
 * Test seam: when set, the writer calls this before COMMIT and, if it returns
 * a negative errno, fails the transaction with it (as a full disk would).
 */
extern int (*store_fault_hook)(void);

/* When set, called on the writer thread after each transaction with its duration and size. */
extern void (*store_commit_hook)(double seconds, int ops);

/* For tests: the number of transactions the writer has committed so far. */
uint64_t store_commit_count(struct store *st);

#endif
