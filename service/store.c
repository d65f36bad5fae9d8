/*
 * store.c: SQLite persistence of jobs (WAL mode) with group commit.
 *
 * The database is `<dir>/jobd.db`, opened once read-write (the write
 * connection) and STORE_READERS more times read-only (the read pool). All
 * connections are opened with SQLITE_OPEN_NOMUTEX: each is used by one thread
 * at a time, which the locks below guarantee. SQLite's unix VFS opens the
 * database, its -wal and its -shm with O_CLOEXEC (robust_open() adds it when
 * the platform defines it, as Linux does), so no store descriptor leaks into a
 * child; the unit test checks this through /proc/self/fd.
 *
 * Writing. store_enqueue appends a struct store_op to a FIFO. The writer
 * thread, the only user of the write connection and of its prepared
 * statements, takes every queued operation at once, applies them inside one
 * BEGIN IMMEDIATE ... COMMIT (synchronous=FULL, one disk sync per group, when
 * an operation is `durable`; synchronous=NORMAL, no sync, otherwise), then
 * calls each operation's done() in enqueue order, with no lock held, so a
 * done() may call store_enqueue again. When the transaction fails it is rolled
 * back: operations without `retry` fail with a negative errno, the others go
 * back to the front of the FIFO and the writer tries again after a delay
 * (STORE_RETRY_MIN_MS doubling up to STORE_RETRY_MAX_MS); operations queued
 * meanwhile join that next transaction. A row the database rejects on its own
 * (a duplicate idem_key, a value too big) fails only its own operation.
 *
 * Reading. Each reader connection has its own mutex; a reader takes the first
 * free one (trylock, round robin) or else waits for one. WAL readers see the
 * last commit and never wait for the writer.
 *
 * Locks. `qlock` guards the FIFO (head, tail), `closing` and `stopped`;
 * `qcond` (CLOCK_MONOTONIC) wakes the writer. readers[i].lock guards
 * readers[i].db and its statements. No function holds two of these locks at
 * once. The writer's connection, its statements and `status` belong to the
 * writer thread alone (between store_open and the join in store_close).
 */
#include "store.h"
#include "jobd/spec.h"
#include "jobd/util.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STORE_READERS      4    /* read-only connections in the pool */
#define STORE_BUSY_MS      5000 /* busy_timeout of every connection */
#define STORE_RETRY_MIN_MS 50   /* first delay before retrying a failed transaction */
#define STORE_RETRY_MAX_MS 2000 /* the delay doubles up to this */
#define STORE_SCHEMA       2    /* meta.schema_version this code reads and writes */
#define STORE_MAX_LIMIT                                                                            \
    1001 /* largest store_query limit: a page of 1000 plus one to see a next page */

/* The columns of a job row, in the order row_from_stmt reads them. */
#define JOB_COLUMNS                                                                                \
    "num, id, state, seq, priority, name, batch, idem_key, created_ms, finished_ms, pid, "         \
    "pid_start, spec, doc, node, remote_id"

int (*store_fault_hook)(void);
void (*store_commit_hook)(double seconds, int ops);

struct reader {
    pthread_mutex_t lock;
    sqlite3 *db;
    sqlite3_stmt *get_doc;
    sqlite3_stmt *find_idem;
    sqlite3_stmt *load_active;
    sqlite3_stmt *load_expired;
    sqlite3_stmt *get_batch;
    sqlite3_stmt *get_output;
    sqlite3_stmt *batch_counts;
    sqlite3_stmt *batch_jobs;
};

struct store {
    char *path; /* <dir>/jobd.db */

    /* Writer thread only. */
    sqlite3 *wdb;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *put;
    sqlite3_stmt *del;
    sqlite3_stmt *meta_max;
    sqlite3_stmt *put_batch;
    sqlite3_stmt *put_node, *del_node;
    sqlite3_stmt *sync_full, *sync_normal;
    bool synced;       /* the connection is in synchronous=FULL now */
    int64_t max_num;   /* highest job or batch number written or found at open */
    int64_t max_seq;   /* highest change number likewise */
    int *status;       /* per-operation status of the current transaction */
    size_t status_cap; /* entries allocated in status */
    int64_t *last_put; /* open-addressing set of row numbers, to find superseded PUTs */
    size_t last_put_cap;

    /* Guarded by qlock. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    struct store_op *head;
    struct store_op *tail;
    bool closing; /* store_close was called */
    bool stopped; /* the writer has returned */

    pthread_t writer;
    bool qlock_init;
    bool qcond_init;
    atomic_uint_fast64_t commits; /* transactions committed */
    atomic_uint next_reader;      /* round-robin start of the reader search */
    struct reader readers[STORE_READERS];
    int readers_init; /* readers whose lock is initialized */
};

/* Map an SQLite result code to a negative errno. */
static int sqlite_errno(int rc) {
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    default:
        return -EIO;
    }
}

__attribute__((format(printf, 3, 4))) static void set_err(char *errbuf, size_t errlen,
                                                          const char *fmt, ...) {
    if (errbuf != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
}

/* Prepare `sql` on db as a long-lived statement. Return an SQLite result code. */
static int prepare_persistent(sqlite3 *db, const char *sql, sqlite3_stmt **stmt) {
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmt, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "store: cannot prepare \"%s\": %s\n", sql, sqlite3_errmsg(db));
    }
    return rc;
}

/* Run one statement that returns no row we need (step to the end). */
static int exec_sql(sqlite3 *db, const char *sql, char *errbuf, size_t errlen) {
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        set_err(errbuf, errlen, "store: \"%s\" failed: %s", sql,
                msg != NULL ? msg : sqlite3_errstr(rc));
    }
    sqlite3_free(msg);
    return rc;
}

/* mkdir -p `dir` with mode 0700 for the directories it creates. Return 0 or -errno. */
static int mkdir_p(const char *dir, char *errbuf, size_t errlen) {
    int ret = 0;
    char *p = strdup(dir);
    if (p == NULL) {
        ret = -ENOMEM;
        goto out;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') {
            continue;
        }
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            ret = -errno;
            set_err(errbuf, errlen, "store: cannot create %s: %s", p, strerror(errno));
            goto out;
        }
        *s = c;
        if (c == '\0') {
            break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        ret = -errno;
        set_err(errbuf, errlen, "store: cannot stat %s: %s", dir, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(sb.st_mode)) {
        ret = -ENOTDIR;
        set_err(errbuf, errlen, "store: %s: %s", dir, strerror(ENOTDIR));
    }
out:
    free(p);
    return ret;
}

/* Open one connection on st->path and set its busy timeout. Return 0 or -errno. */
static int open_conn(struct store *st, int flags, sqlite3 **out, char *errbuf, size_t errlen) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(st->path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_err(errbuf, errlen, "store: cannot open %s: %s", st->path,
                db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    rc = sqlite3_extended_result_codes(db, 1);
    if (rc == SQLITE_OK) {
        rc = sqlite3_busy_timeout(db, STORE_BUSY_MS);
    }
    if (rc != SQLITE_OK) {
        set_err(errbuf, errlen, "store: cannot configure %s: %s", st->path, sqlite3_errmsg(db));
        goto fail;
    }
    *out = db;
    return 0;
fail:
    if (db != NULL && sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "store: cannot close %s: %s\n", st->path, sqlite3_errmsg(db));
    }
    return sqlite_errno(rc);
}

/* Read one integer with `sql` (one row, one column) into *v; no row leaves *v alone. */
static int query_int(sqlite3 *db, const char *sql, int64_t *v, char *errbuf, size_t errlen) {
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        goto fail;
    }
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
            *v = sqlite3_column_int64(stmt, 0);
        }
        rc = sqlite3_step(stmt);
    }
    if (rc != SQLITE_DONE) {
        goto fail;
    }
    rc = sqlite3_finalize(stmt);
    stmt = NULL;
    if (rc != SQLITE_OK) {
        goto fail;
    }
    return 0;
fail:
    set_err(errbuf, errlen, "store: \"%s\" failed: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(stmt); /* returns the error already reported */
    return sqlite_errno(rc);
}

/*
 * Set up the write connection: WAL, synchronous=FULL, the schema (created
 * when missing, refused when of another version), and the counters.
 */
static int setup_schema(struct store *st, struct store_info *info, char *errbuf, size_t errlen) {
    sqlite3 *db = st->wdb;
    int ret = 0;
    sqlite3_stmt *stmt = NULL;

    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
    }
    if (rc != SQLITE_ROW) {
        set_err(errbuf, errlen, "store: cannot set WAL mode on %s: %s", st->path,
                sqlite3_errmsg(db));
        ret = sqlite_errno(rc);
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(stmt, 0);
    if (mode == NULL || strcmp(mode, "wal") != 0) {
        set_err(errbuf, errlen, "store: %s: journal mode is %s, not wal", st->path,
                mode != NULL ? mode : "unknown");
        ret = -ENOTSUP;
        goto out;
    }
    rc = sqlite3_finalize(stmt);
    stmt = NULL;
    if (rc != SQLITE_OK) {
        set_err(errbuf, errlen, "store: cannot set WAL mode on %s: %s", st->path,
                sqlite3_errmsg(db));
        ret = sqlite_errno(rc);
        goto out;
    }
    rc = exec_sql(db, "PRAGMA synchronous=FULL", errbuf, errlen);
    if (rc == SQLITE_OK) {
        rc = exec_sql(db, "BEGIN IMMEDIATE", errbuf, errlen);
    }
    if (rc != SQLITE_OK) {
        ret = sqlite_errno(rc);
        goto out;
    }

    int64_t have_meta = 0;
    int64_t version = STORE_SCHEMA;
    ret = query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'meta'",
                    &have_meta, errbuf, errlen);
    if (ret == 0 && have_meta) {
        ret = query_int(db, "SELECT value FROM meta WHERE key = 'schema_version'", &version, errbuf,
                        errlen);
    }
    if (ret != 0) {
        goto out;
    }
    if (ret == 0 && have_meta && version == 1) {
        /* Version 1 had no worker nodes: add their columns and table (below). */
        rc = exec_sql(db,
                      "ALTER TABLE jobs ADD COLUMN node TEXT;"
                      "ALTER TABLE jobs ADD COLUMN remote_id TEXT;"
                      "UPDATE meta SET value = 2 WHERE key = 'schema_version';",
                      errbuf, errlen);
        if (rc != SQLITE_OK) {
            ret = sqlite_errno(rc);
            goto out;
        }
        version = STORE_SCHEMA;
    }
    if (version != STORE_SCHEMA) {
        set_err(errbuf, errlen, "store: %s has schema version %lld, this jobd reads version %d",
                st->path, (long long)version, STORE_SCHEMA);
        ret = -EPROTONOSUPPORT;
        goto out;
    }
    rc = exec_sql(db,
                  "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER);"
                  "CREATE TABLE IF NOT EXISTS jobs("
                  " num INTEGER PRIMARY KEY, id TEXT NOT NULL, state TEXT NOT NULL,"
                  " seq INTEGER NOT NULL, priority INTEGER NOT NULL, name TEXT, batch TEXT,"
                  " idem_key TEXT UNIQUE, created_ms INTEGER, finished_ms INTEGER, pid INTEGER,"
                  " pid_start INTEGER, spec TEXT NOT NULL, doc TEXT NOT NULL,"
                  " out_stdout BLOB, out_stderr BLOB, node TEXT, remote_id TEXT);"
                  "CREATE INDEX IF NOT EXISTS jobs_seq ON jobs(seq);"
                  "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, num);"
                  /* Partial: most jobs have no name or batch, and cost these nothing. */
                  "CREATE INDEX IF NOT EXISTS jobs_name ON jobs(name, num)"
                  " WHERE name IS NOT NULL;"
                  "CREATE INDEX IF NOT EXISTS jobs_batch ON jobs(batch, num)"
                  " WHERE batch IS NOT NULL;"
                  "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_ms)"
                  " WHERE finished_ms > 0;"
                  "CREATE TABLE IF NOT EXISTS batches("
                  " num INTEGER PRIMARY KEY, id TEXT NOT NULL, name TEXT,"
                  " concurrency INTEGER NOT NULL, total INTEGER NOT NULL,"
                  " created_ms INTEGER NOT NULL);"
                  "CREATE TABLE IF NOT EXISTS nodes("
                  " id TEXT PRIMARY KEY, url TEXT NOT NULL, labels TEXT NOT NULL,"
                  " state TEXT NOT NULL, version TEXT, capacity INTEGER NOT NULL,"
                  " registered_ms INTEGER NOT NULL);"
                  "INSERT OR IGNORE INTO meta(key, value) VALUES"
                  " ('schema_version', 2), ('last_num', 0), ('last_seq', 0);",
                  errbuf, errlen);
    if (rc != SQLITE_OK) {
        ret = sqlite_errno(rc);
        goto out;
    }
    struct store_info in = {0, 0};
    ret = query_int(db, "SELECT value FROM meta WHERE key = 'last_num'", &in.last_num, errbuf,
                    errlen);
    if (ret == 0) {
        int64_t n = 0;
        ret = query_int(db, "SELECT max(num) FROM jobs", &n, errbuf, errlen);
        in.last_num = n > in.last_num ? n : in.last_num;
        if (ret == 0)
            ret = query_int(db, "SELECT max(num) FROM batches", &n, errbuf, errlen);
        in.last_num = n > in.last_num ? n : in.last_num;
    }
    if (ret == 0) {
        ret = query_int(db, "SELECT value FROM meta WHERE key = 'last_seq'", &in.last_seq, errbuf,
                        errlen);
    }
    if (ret == 0) {
        int64_t n = 0;
        ret = query_int(db, "SELECT max(seq) FROM jobs", &n, errbuf, errlen);
        in.last_seq = n > in.last_seq ? n : in.last_seq;
    }
    if (ret != 0) {
        goto out;
    }
    rc = exec_sql(db, "COMMIT", errbuf, errlen);
    if (rc != SQLITE_OK) {
        ret = sqlite_errno(rc);
        goto out;
    }
    st->max_num = in.last_num;
    st->max_seq = in.last_seq;
    if (info != NULL) {
        *info = in;
    }
out:
    /* Still in the transaction only after a failure. */
    if (!sqlite3_get_autocommit(db) && exec_sql(db, "ROLLBACK", NULL, 0) != SQLITE_OK) {
        fprintf(stderr, "store: rollback failed: %s\n", sqlite3_errmsg(db));
    }
    sqlite3_finalize(stmt); /* NULL or a statement whose error is reported */
    return ret;
}

static int prepare_writer(struct store *st) {
    static const char put_sql[] =
        "INSERT INTO jobs(" JOB_COLUMNS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
        "?12, ?13, ?14, ?17, ?18) ON CONFLICT(num) DO UPDATE SET id = excluded.id, state = "
        "excluded.state, "
        "out_stdout = ?15, out_stderr = ?16, "
        "seq = excluded.seq, priority = excluded.priority, name = excluded.name, "
        "batch = excluded.batch, idem_key = excluded.idem_key, created_ms = excluded.created_ms, "
        "finished_ms = excluded.finished_ms, pid = excluded.pid, pid_start = excluded.pid_start, "
        "spec = excluded.spec, doc = excluded.doc, node = excluded.node, "
        "remote_id = excluded.remote_id";
    sqlite3 *db = st->wdb;
    int rc = prepare_persistent(db, "BEGIN IMMEDIATE", &st->begin);
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, "COMMIT", &st->commit);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, "ROLLBACK", &st->rollback);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, put_sql, &st->put);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, "DELETE FROM jobs WHERE num = ?1", &st->del);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, "PRAGMA synchronous=FULL", &st->sync_full);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, "PRAGMA synchronous=NORMAL", &st->sync_normal);
    }
    st->synced = true;
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db,
                                "INSERT OR REPLACE INTO batches(num, id, name, concurrency, total,"
                                " created_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                                &st->put_batch);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db,
                                "INSERT OR REPLACE INTO nodes(id, url, labels, state, version,"
                                " capacity, registered_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                &st->put_node);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db, "DELETE FROM nodes WHERE id = ?1", &st->del_node);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(db,
                                "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) "
                                "DO UPDATE SET value = max(value, excluded.value)",
                                &st->meta_max);
    }
    return rc == SQLITE_OK ? 0 : sqlite_errno(rc);
}

static int prepare_reader(struct reader *r) {
    int rc = prepare_persistent(r->db, "SELECT doc FROM jobs WHERE num = ?1", &r->get_doc);
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db, "SELECT num, spec FROM jobs WHERE idem_key = ?1",
                                &r->find_idem);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db, "SELECT out_stdout, out_stderr FROM jobs WHERE num = ?1",
                                &r->get_output);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db,
                                "SELECT " JOB_COLUMNS " FROM jobs"
                                " WHERE state IN ('queued', 'running') ORDER BY num",
                                &r->load_active);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db,
                                "SELECT " JOB_COLUMNS " FROM jobs WHERE finished_ms > 0"
                                " AND finished_ms < ?1 ORDER BY finished_ms LIMIT ?2",
                                &r->load_expired);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db,
                                "SELECT id, name, concurrency, total, created_ms FROM batches"
                                " WHERE num = ?1",
                                &r->get_batch);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db,
                                "SELECT state, count(*) FROM jobs WHERE batch = ?1 GROUP BY state",
                                &r->batch_counts);
    }
    if (rc == SQLITE_OK) {
        rc = prepare_persistent(r->db, "SELECT num, id FROM jobs WHERE batch = ?1 ORDER BY num",
                                &r->batch_jobs);
    }
    return rc == SQLITE_OK ? 0 : sqlite_errno(rc);
}

/* Finalize a cached statement; a failure only repeats the statement's last error. */
static void finalize(sqlite3_stmt **stmt) {
    sqlite3_finalize(*stmt);
    *stmt = NULL;
}

static void close_conn(sqlite3 **db, const char *path) {
    if (*db != NULL && sqlite3_close(*db) != SQLITE_OK) {
        fprintf(stderr, "store: cannot close %s: %s\n", path, sqlite3_errmsg(*db));
    }
    *db = NULL;
}

/* Free everything store_open set up, after the writer has stopped. */
static void store_free(struct store *st) {
    for (int i = 0; i < STORE_READERS; i++) {
        struct reader *r = &st->readers[i];
        finalize(&r->get_doc);
        finalize(&r->find_idem);
        finalize(&r->load_active);
        finalize(&r->load_expired);
        finalize(&r->get_batch);
        finalize(&r->get_output);
        finalize(&r->batch_counts);
        finalize(&r->batch_jobs);
        close_conn(&r->db, st->path);
    }
    for (int i = 0; i < st->readers_init; i++) {
        pthread_mutex_destroy(&st->readers[i].lock);
    }
    finalize(&st->begin);
    finalize(&st->commit);
    finalize(&st->rollback);
    finalize(&st->put);
    finalize(&st->del);
    finalize(&st->meta_max);
    finalize(&st->put_batch);
    finalize(&st->put_node);
    finalize(&st->del_node);
    finalize(&st->sync_full);
    finalize(&st->sync_normal);
    /* The last connection to close checkpoints the WAL and removes it. */
    close_conn(&st->wdb, st->path);
    if (st->qcond_init) {
        pthread_cond_destroy(&st->qcond);
    }
    if (st->qlock_init) {
        pthread_mutex_destroy(&st->qlock);
    }
    free(st->status);
    free(st->last_put);
    free(st->path);
    free(st);
}

/* Bind text or NULL. */
static int bind_text(sqlite3_stmt *stmt, int i, const char *s) {
    if (s == NULL) {
        return sqlite3_bind_null(stmt, i);
    }
    return sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
}

/* Run one bound write statement to its end and reset it. Return an SQLite result code. */
static int step_write(sqlite3_stmt *stmt) {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt); /* repeats the step's error, already in rc */
    if (sqlite3_clear_bindings(stmt) != SQLITE_OK && rc == SQLITE_DONE) {
        rc = SQLITE_ERROR;
    }
    return rc;
}

/* What an operation does, for messages: "write of job 12", "delete of node n1". */
static const char *op_what(const struct store_op *op, char *buf, size_t len) {
    switch (op->kind) {
    case STORE_PUT:
    case STORE_DELETE:
        snprintf(buf, len, "%s of job %lld", op->kind == STORE_PUT ? "write" : "delete",
                 (long long)op->row.num);
        break;
    case STORE_PUT_BATCH:
        snprintf(buf, len, "write of batch %lld", (long long)op->batch.num);
        break;
    case STORE_PUT_NODE:
    case STORE_DELETE_NODE:
        snprintf(buf, len, "%s of node %.64s", op->kind == STORE_PUT_NODE ? "write" : "delete",
                 op->node.id ? op->node.id : "?");
        break;
    }
    return buf;
}

/*
 * Apply one operation inside the open transaction. Return SQLITE_DONE, or the
 * SQLite code of the failure. *maxnum and *maxseq grow with a written row.
 */
static int apply_op(struct store *st, const struct store_op *op, int64_t *maxnum, int64_t *maxseq) {
    if (op->kind == STORE_DELETE) {
        int rc = sqlite3_bind_int64(st->del, 1, op->row.num);
        return rc == SQLITE_OK ? step_write(st->del) : rc;
    }
    if (op->kind == STORE_PUT_NODE || op->kind == STORE_DELETE_NODE) {
        const struct store_node *n = &op->node;
        bool put = op->kind == STORE_PUT_NODE;
        sqlite3_stmt *s = put ? st->put_node : st->del_node;
        int rc = n->id && (!put || (n->url && n->labels && n->state)) ? bind_text(s, 1, n->id)
                                                                      : SQLITE_MISUSE;
        if (put) {
            if (rc == SQLITE_OK)
                rc = bind_text(s, 2, n->url);
            if (rc == SQLITE_OK)
                rc = bind_text(s, 3, n->labels);
            if (rc == SQLITE_OK)
                rc = bind_text(s, 4, n->state);
            if (rc == SQLITE_OK)
                rc = bind_text(s, 5, n->version);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int(s, 6, n->capacity);
            if (rc == SQLITE_OK)
                rc = sqlite3_bind_int64(s, 7, n->registered_ms);
        }
        if (rc != SQLITE_OK) {
            sqlite3_clear_bindings(s);
            return rc;
        }
        rc = step_write(s);
        /* Node rows hold no seq column: the number of the change lives in meta alone. */
        if (rc == SQLITE_DONE)
            *maxseq = op->row.seq > *maxseq ? op->row.seq : *maxseq;
        return rc;
    }
    if (op->kind == STORE_PUT_BATCH) {
        const struct store_batch *b = &op->batch;
        sqlite3_stmt *s = st->put_batch;
        int rc = b->id ? sqlite3_bind_int64(s, 1, b->num) : SQLITE_MISUSE;
        if (rc == SQLITE_OK)
            rc = bind_text(s, 2, b->id);
        if (rc == SQLITE_OK)
            rc = bind_text(s, 3, b->name);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(s, 4, b->concurrency);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int(s, 5, b->total);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(s, 6, b->created_ms);
        if (rc != SQLITE_OK) {
            sqlite3_clear_bindings(s);
            return rc;
        }
        rc = step_write(s);
        if (rc == SQLITE_DONE)
            *maxnum = b->num > *maxnum ? b->num : *maxnum;
        return rc;
    }
    const struct store_row *r = &op->row;
    const char *state = jobd_state_name(r->state);
    if (state == NULL || r->id == NULL || r->spec == NULL || r->doc == NULL) {
        return SQLITE_MISUSE;
    }
    sqlite3_stmt *s = st->put;
    int rc = sqlite3_bind_int64(s, 1, r->num);
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 2, r->id);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 3, state);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 4, r->seq);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int(s, 5, r->priority);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 6, r->name);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 7, r->batch);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 8, r->idem_key);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 9, r->created_ms);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 10, r->finished_ms);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 11, r->pid);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(s, 12, r->pid_start);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 13, r->spec);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 14, r->doc);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 17, r->node);
    }
    if (rc == SQLITE_OK) {
        rc = bind_text(s, 18, r->remote_id);
    }
    for (int k = 0; k < 2 && rc == SQLITE_OK; k++) {
        rc = r->out[k] != NULL
                 ? sqlite3_bind_blob(s, 15 + k, r->out[k], (int)r->out_len[k], SQLITE_STATIC)
                 : sqlite3_bind_null(s, 15 + k);
    }
    if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(s); /* cannot fail */
        return rc;
    }
    rc = step_write(s);
    if (rc == SQLITE_DONE) {
        *maxnum = r->num > *maxnum ? r->num : *maxnum;
        *maxseq = r->seq > *maxseq ? r->seq : *maxseq;
    }
    return rc;
}

/* True for a failure that concerns one row only, not the transaction. */
static bool row_error(int rc) {
    int p = rc & 0xff;
    return p == SQLITE_CONSTRAINT || p == SQLITE_TOOBIG || p == SQLITE_MISUSE ||
           p == SQLITE_MISMATCH || p == SQLITE_RANGE;
}

static int meta_max(struct store *st, const char *key, int64_t v) {
    int rc = sqlite3_bind_text(st->meta_max, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(st->meta_max, 2, v);
    }
    return rc == SQLITE_OK ? step_write(st->meta_max) : rc;
}

/*
 * Write the `n` operations of `batch` in one transaction. Return 0 after a
 * commit, with st->status[i] the result of operation i (0, or -EEXIST,
 * -E2BIG, -EINVAL for a row rejected alone); or a negative errno when the
 * transaction failed and was rolled back.
 */
/*
 * Mark each supersedable PUT that a later PUT of the same row follows in
 * this batch as skipped. Walks the batch backwards through an array of it
 * (the list is singly linked), remembering the rows already seen.
 */
static void mark_superseded(struct store *st, struct store_op *batch, size_t n) {
    size_t cap = 16;
    struct store_op **ops;

    while (cap < 2 * n)
        cap *= 2;
    if (cap > st->last_put_cap) {
        int64_t *np = realloc(st->last_put, cap * sizeof *np);
        if (np == NULL)
            return; /* only an optimisation */
        st->last_put = np;
        st->last_put_cap = cap;
    }
    ops = malloc(n * sizeof *ops);
    if (ops == NULL)
        return;
    memset(st->last_put, 0, cap * sizeof *st->last_put);
    size_t i = 0;
    for (struct store_op *op = batch; op != NULL; op = op->next)
        ops[i++] = op;
    while (i-- > 0) {
        struct store_op *op = ops[i];
        op->skipped = false;
        if (op->kind != STORE_PUT || op->row.num <= 0)
            continue;
        size_t h = (size_t)((uint64_t)op->row.num * 0x9E3779B97F4A7C15ull >> 17) & (cap - 1);
        while (st->last_put[h] != 0 && st->last_put[h] != op->row.num)
            h = (h + 1) & (cap - 1);
        if (st->last_put[h] == op->row.num)
            op->skipped = op->supersedable;
        else
            st->last_put[h] = op->row.num;
    }
    free(ops);
}

static int write_batch(struct store *st, struct store_op *batch) {
    int ret = 0;
    int64_t maxnum = 0;
    int64_t maxseq = 0;
    size_t n = 0;
    for (struct store_op *op = batch; op != NULL; op = op->next)
        n++;
    mark_superseded(st, batch, n);
    /* Wait for the disk only when an answer promises it (see store_op.durable). */
    bool durable = false;
    for (struct store_op *op = batch; op != NULL && !durable; op = op->next)
        durable = op->durable;
    if (durable != st->synced) {
        int prc = step_write(durable ? st->sync_full : st->sync_normal);
        if (prc != SQLITE_DONE && prc != SQLITE_ROW) {
            fprintf(stderr, "store: cannot set synchronous: %s\n", sqlite3_errmsg(st->wdb));
            return sqlite_errno(prc);
        }
        st->synced = durable;
    }
    int rc = step_write(st->begin);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "store: begin failed: %s\n", sqlite3_errmsg(st->wdb));
        return sqlite_errno(rc);
    }
    size_t i = 0;
    bool write_meta = false;
    char what[128];
    for (struct store_op *op = batch; op != NULL; op = op->next, i++) {
        /* Deleted rows, and node rows (no seq column), leave their numbers to meta alone. */
        write_meta |=
            op->kind == STORE_DELETE || op->kind == STORE_PUT_NODE || op->kind == STORE_DELETE_NODE;
        if (op->skipped) {
            st->status[i] = 0;
            continue;
        }
        if (op->prepare != NULL && (st->status[i] = op->prepare(op)) != 0) {
            fprintf(stderr, "store: write of job %lld not prepared: %s\n", (long long)op->row.num,
                    strerror(-st->status[i]));
            continue;
        }
        rc = apply_op(st, op, &maxnum, &maxseq);
        if (rc == SQLITE_DONE) {
            st->status[i] = 0;
        } else if (row_error(rc)) {
            fprintf(stderr, "store: %s rejected: %s\n", op_what(op, what, sizeof what),
                    (rc & 0xff) == SQLITE_MISUSE ? "incomplete row" : sqlite3_errstr(rc));
            st->status[i] = (rc & 0xff) == SQLITE_CONSTRAINT ? -EEXIST
                            : (rc & 0xff) == SQLITE_TOOBIG   ? -E2BIG
                                                             : -EINVAL;
        } else {
            fprintf(stderr, "store: %s failed: %s\n", op_what(op, what, sizeof what),
                    sqlite3_errmsg(st->wdb));
            ret = sqlite_errno(rc);
            goto rollback;
        }
    }
    /*
     * meta only has to remember numbers that no row remembers any more: the
     * highest ones ever used are written when rows are deleted (store_open
     * takes the maximum of meta and of the rows).
     */
    st->max_num = maxnum > st->max_num ? maxnum : st->max_num;
    st->max_seq = maxseq > st->max_seq ? maxseq : st->max_seq;
    rc = SQLITE_DONE;
    if (write_meta) {
        rc = meta_max(st, "last_num", st->max_num);
        if (rc == SQLITE_DONE)
            rc = meta_max(st, "last_seq", st->max_seq);
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "store: update of meta failed: %s\n", sqlite3_errmsg(st->wdb));
        ret = sqlite_errno(rc);
        goto rollback;
    }
    int (*hook)(void) = __atomic_load_n(&store_fault_hook, __ATOMIC_ACQUIRE);
    if (hook != NULL && (ret = hook()) < 0) {
        fprintf(stderr, "store: commit failed: %s (fault hook)\n", strerror(-ret));
        goto rollback;
    }
    ret = 0;
    rc = step_write(st->commit);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "store: commit failed: %s\n", sqlite3_errmsg(st->wdb));
        ret = sqlite_errno(rc);
        goto rollback;
    }
    return 0;
rollback:
    /* After some errors (a full disk) SQLite has already rolled back. */
    if (!sqlite3_get_autocommit(st->wdb) && (rc = step_write(st->rollback)) != SQLITE_DONE) {
        fprintf(stderr, "store: rollback failed: %s\n", sqlite3_errmsg(st->wdb));
    }
    return ret;
}

/* Make st->status hold at least n entries. Return 0 or -ENOMEM. */
static int reserve_status(struct store *st, size_t n) {
    if (n <= st->status_cap) {
        return 0;
    }
    size_t cap = st->status_cap ? st->status_cap : 64;
    while (cap < n) {
        cap *= 2;
    }
    int *p = realloc(st->status, cap * sizeof(*p));
    if (p == NULL) {
        fprintf(stderr, "store: cannot allocate the status of %zu operations\n", n);
        return -ENOMEM;
    }
    st->status = p;
    st->status_cap = cap;
    return 0;
}

static struct timespec deadline_after(int64_t ms) {
    struct timespec ts;
    jobd_mono_after(ms, &ts);
    return ts;
}

/*
 * After a failed transaction: fail the operations without retry (and, when
 * the store is closing, those with it too), and put the others back at the
 * front of the FIFO in their order. Return true when some were put back.
 */
static bool requeue_failed(struct store *st, struct store_op *batch, int err, bool closing) {
    struct store_op *again = NULL;
    struct store_op *last = NULL;
    struct store_op **tailp = &again;
    struct store_op *failed = NULL;
    struct store_op **ftailp = &failed;
    for (struct store_op *op = batch, *next; op != NULL; op = next) {
        next = op->next;
        op->next = NULL;
        if (op->retry && !closing) {
            *tailp = op;
            tailp = &op->next;
            last = op;
        } else {
            *ftailp = op;
            ftailp = &op->next;
        }
    }
    if (again != NULL) {
        pthread_mutex_lock(&st->qlock);
        last->next = st->head;
        if (st->head == NULL) {
            st->tail = last;
        }
        st->head = again;
        pthread_mutex_unlock(&st->qlock);
    }
    for (struct store_op *op = failed, *next; op != NULL; op = next) {
        next = op->next;
        op->next = NULL;
        op->done(op->arg, op->retry ? -ECANCELED : err);
    }
    return again != NULL;
}

static void *writer_main(void *arg) {
    struct store *st = arg;
    int64_t delay = 0;  /* backoff after failures in a row; 0 after a success */
    bool pause = false; /* wait `delay` before the next attempt (retries are queued) */

    pthread_mutex_lock(&st->qlock);
    for (;;) {
        if (pause && !st->closing) {
            struct timespec until = deadline_after(delay);
            while (!st->closing && pthread_cond_timedwait(&st->qcond, &st->qlock, &until) == 0) {
            }
        }
        while (st->head == NULL && !st->closing) {
            pthread_cond_wait(&st->qcond, &st->qlock);
        }
        if (st->head == NULL) {
            break;
        }
        struct store_op *batch = st->head;
        st->head = NULL;
        st->tail = NULL;
        bool closing = st->closing;
        pthread_mutex_unlock(&st->qlock);

        size_t n = 0;
        for (struct store_op *op = batch; op != NULL; op = op->next) {
            n++;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int err = reserve_status(st, n);
        if (err == 0) {
            err = write_batch(st, batch);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (store_commit_hook != NULL)
            store_commit_hook(
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, (int)n);
        if (err == 0) {
            atomic_fetch_add(&st->commits, 1);
            delay = 0;
            pause = false;
            size_t i = 0;
            for (struct store_op *op = batch, *next; op != NULL; op = next, i++) {
                next = op->next; /* done() may free or requeue op */
                op->next = NULL;
                op->done(op->arg, st->status[i]);
            }
        } else {
            delay = delay == 0 ? STORE_RETRY_MIN_MS : delay * 2;
            delay = delay > STORE_RETRY_MAX_MS ? STORE_RETRY_MAX_MS : delay;
            fprintf(stderr, "store: %zu operations not written (%s); %s\n", n, strerror(-err),
                    closing ? "store closing, giving up" : "retrying those that may be retried");
            pause = requeue_failed(st, batch, err, closing);
        }
        pthread_mutex_lock(&st->qlock);
    }
    st->stopped = true;
    pthread_mutex_unlock(&st->qlock);
    return NULL;
}

int store_open(const char *dir, struct store **out, struct store_info *info, char *errbuf,
               size_t errlen) {
    int ret = 0;
    *out = NULL;
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        set_err(errbuf, errlen, "store: out of memory");
        return -ENOMEM;
    }
    atomic_init(&st->commits, 0);
    atomic_init(&st->next_reader, 0);
    ret = mkdir_p(dir, errbuf, errlen);
    if (ret != 0) {
        goto fail;
    }
    size_t len = strlen(dir) + sizeof("/jobd.db");
    st->path = malloc(len);
    if (st->path == NULL) {
        ret = -ENOMEM;
        set_err(errbuf, errlen, "store: out of memory");
        goto fail;
    }
    snprintf(st->path, len, "%s/jobd.db", dir);

    ret = open_conn(st, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &st->wdb, errbuf, errlen);
    if (ret == 0) {
        ret = setup_schema(st, info, errbuf, errlen);
    }
    if (ret == 0 && (ret = prepare_writer(st)) != 0) {
        set_err(errbuf, errlen, "store: cannot prepare statements on %s: %s", st->path,
                sqlite3_errmsg(st->wdb));
    }
    if (ret != 0) {
        goto fail;
    }
    for (int i = 0; i < STORE_READERS; i++) {
        struct reader *r = &st->readers[i];
        int err = pthread_mutex_init(&r->lock, NULL);
        if (err != 0) {
            ret = -err;
            set_err(errbuf, errlen, "store: cannot create a lock: %s", strerror(err));
            goto fail;
        }
        st->readers_init++;
        ret = open_conn(st, SQLITE_OPEN_READONLY, &r->db, errbuf, errlen);
        if (ret == 0 && (ret = prepare_reader(r)) != 0) {
            set_err(errbuf, errlen, "store: cannot prepare statements on %s: %s", st->path,
                    sqlite3_errmsg(r->db));
        }
        if (ret != 0) {
            goto fail;
        }
    }

    int err = pthread_mutex_init(&st->qlock, NULL);
    st->qlock_init = err == 0;
    pthread_condattr_t ca;
    if (err == 0 && (err = pthread_condattr_init(&ca)) == 0) {
        err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (err == 0) {
            err = pthread_cond_init(&st->qcond, &ca);
        }
        pthread_condattr_destroy(&ca);
        st->qcond_init = err == 0;
    }
    if (err == 0) {
        err = pthread_create(&st->writer, NULL, writer_main, st);
    }
    if (err != 0) {
        ret = -err;
        set_err(errbuf, errlen, "store: cannot start the writer thread: %s", strerror(err));
        goto fail;
    }
    /* A name only helps debugging; failing to set it changes nothing. */
    (void)pthread_setname_np(st->writer, "jobd-store");
    *out = st;
    return 0;

fail:
    store_free(st);
    return ret;
}

void store_close(struct store *st) {
    if (st == NULL) {
        return;
    }
    pthread_mutex_lock(&st->qlock);
    st->closing = true;
    pthread_cond_broadcast(&st->qcond);
    pthread_mutex_unlock(&st->qlock);
    int err = pthread_join(st->writer, NULL);
    if (err != 0) {
        /* Only a programming error (a second close) gets here; freeing could crash. */
        fprintf(stderr, "store: cannot join the writer thread: %s\n", strerror(err));
        return;
    }
    store_free(st);
}

void store_enqueue(struct store *st, struct store_op *op) {
    op->next = NULL;
    pthread_mutex_lock(&st->qlock);
    if (st->stopped) {
        pthread_mutex_unlock(&st->qlock);
        char what[128];
        fprintf(stderr, "store: %s after close\n", op_what(op, what, sizeof what));
        op->done(op->arg, -ECANCELED);
        return;
    }
    if (st->tail == NULL) {
        st->head = op;
        pthread_cond_signal(&st->qcond);
    } else {
        st->tail->next = op;
    }
    st->tail = op;
    pthread_mutex_unlock(&st->qlock);
}

void store_enqueue_chain(struct store *st, struct store_op *first) {
    struct store_op *last = first;

    if (first == NULL)
        return;
    while (last->next != NULL)
        last = last->next;
    pthread_mutex_lock(&st->qlock);
    if (st->stopped) {
        pthread_mutex_unlock(&st->qlock);
        fprintf(stderr, "store: write of a chain after close\n");
        for (struct store_op *op = first, *next; op != NULL; op = next) {
            next = op->next;
            op->done(op->arg, -ECANCELED);
        }
        return;
    }
    if (st->tail == NULL) {
        st->head = first;
        pthread_cond_signal(&st->qcond);
    } else {
        st->tail->next = first;
    }
    st->tail = last;
    pthread_mutex_unlock(&st->qlock);
}

uint64_t store_commit_count(struct store *st) {
    return atomic_load(&st->commits);
}

/* Take a reader connection: the first free one, else wait for one. */
static struct reader *reader_get(struct store *st) {
    unsigned start = atomic_fetch_add(&st->next_reader, 1);
    for (unsigned i = 0; i < STORE_READERS; i++) {
        struct reader *r = &st->readers[(start + i) % STORE_READERS];
        if (pthread_mutex_trylock(&r->lock) == 0) {
            return r;
        }
    }
    struct reader *r = &st->readers[start % STORE_READERS];
    pthread_mutex_lock(&r->lock);
    return r;
}

static void reader_put(struct reader *r) {
    pthread_mutex_unlock(&r->lock);
}

/* The end of a read: reset the statement (ending its read transaction). */
static void read_done(sqlite3_stmt *stmt) {
    sqlite3_reset(stmt);          /* repeats an error already handled */
    sqlite3_clear_bindings(stmt); /* cannot fail */
}

/* Fill `row` from the current result row of `stmt` (JOB_COLUMNS). Return 0 or -errno. */
static int row_from_stmt(sqlite3_stmt *stmt, struct store_row *row) {
    static const int text_cols[] = {1, 2, 5, 6, 7, 12, 13, 14, 15};
    const char *text[16] = {NULL};
    for (size_t i = 0; i < sizeof(text_cols) / sizeof(text_cols[0]); i++) {
        int c = text_cols[i];
        text[c] = (const char *)sqlite3_column_text(stmt, c);
        if (text[c] == NULL && sqlite3_column_type(stmt, c) != SQLITE_NULL) {
            fprintf(stderr, "store: out of memory reading a job row\n");
            return -ENOMEM;
        }
    }
    row->num = sqlite3_column_int64(stmt, 0);
    if (text[1] == NULL || text[2] == NULL || text[12] == NULL || text[13] == NULL) {
        fprintf(stderr, "store: job %lld has a NULL column\n", (long long)row->num);
        return -EIO;
    }
    if (jobd_state_parse(text[2], &row->state) != 0) {
        fprintf(stderr, "store: job %lld has unknown state \"%s\"\n", (long long)row->num, text[2]);
        return -EIO;
    }
    row->id = text[1];
    row->seq = sqlite3_column_int64(stmt, 3);
    row->priority = sqlite3_column_int(stmt, 4);
    row->name = text[5];
    row->batch = text[6];
    row->idem_key = text[7];
    row->created_ms = sqlite3_column_int64(stmt, 8);
    row->finished_ms = sqlite3_column_int64(stmt, 9);
    row->pid = sqlite3_column_int64(stmt, 10);
    row->pid_start = sqlite3_column_int64(stmt, 11);
    row->spec = text[12];
    row->doc = text[13];
    row->node = text[14];
    row->remote_id = text[15];
    return 0;
}

/* Step `stmt` to its end, calling fn for each row. Does not reset stmt. */
static int walk_rows(sqlite3 *db, sqlite3_stmt *stmt, const char *what,
                     int (*fn)(void *arg, const struct store_row *row), void *arg) {
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct store_row row;
        int ret = row_from_stmt(stmt, &row);
        if (ret == 0) {
            ret = fn(arg, &row);
        }
        if (ret != 0) {
            return ret;
        }
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "store: %s failed: %s\n", what, sqlite3_errmsg(db));
        return sqlite_errno(rc);
    }
    return 0;
}

/* Report a bind failure on a reader and map it. */
static int bind_failed(sqlite3 *db, const char *what, int rc) {
    fprintf(stderr, "store: %s: cannot bind a parameter: %s\n", what, sqlite3_errmsg(db));
    return sqlite_errno(rc);
}

int store_get_doc(struct store *st, int64_t num, char **doc) {
    int ret = 0;
    *doc = NULL;
    struct reader *r = reader_get(st);
    int rc = sqlite3_bind_int64(r->get_doc, 1, num);
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "get job", rc);
        goto out;
    }
    rc = sqlite3_step(r->get_doc);
    if (rc == SQLITE_DONE) {
        ret = -ENOENT;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        fprintf(stderr, "store: get job %lld failed: %s\n", (long long)num, sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
        goto out;
    }
    const char *text = (const char *)sqlite3_column_text(r->get_doc, 0);
    *doc = text != NULL ? strdup(text) : NULL;
    if (*doc == NULL) {
        fprintf(stderr, "store: get job %lld: out of memory\n", (long long)num);
        ret = -ENOMEM;
    }
out:
    read_done(r->get_doc);
    reader_put(r);
    return ret;
}

int store_find_idem(struct store *st, const char *key, int64_t *num, char **spec) {
    int ret = 0;
    if (spec != NULL) {
        *spec = NULL;
    }
    struct reader *r = reader_get(st);
    int rc = sqlite3_bind_text(r->find_idem, 1, key, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "idempotency lookup", rc);
        goto out;
    }
    rc = sqlite3_step(r->find_idem);
    if (rc == SQLITE_DONE) {
        ret = -ENOENT;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        fprintf(stderr, "store: idempotency lookup failed: %s\n", sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
        goto out;
    }
    *num = sqlite3_column_int64(r->find_idem, 0);
    if (spec != NULL) {
        const char *text = (const char *)sqlite3_column_text(r->find_idem, 1);
        *spec = text != NULL ? strdup(text) : NULL;
        if (*spec == NULL) {
            fprintf(stderr, "store: idempotency lookup: out of memory\n");
            ret = -ENOMEM;
        }
    }
out:
    read_done(r->find_idem);
    reader_put(r);
    return ret;
}

/* A growing SQL string; `failed` is set once an append did not fit. */
struct sqlbuf {
    char buf[4096];
    size_t len;
    bool failed;
};

static void sql_add(struct sqlbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->failed || b->len + n >= sizeof(b->buf)) {
        b->failed = true;
        return;
    }
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

/*
 * Parameter numbers of store_query's SQL. A number may appear in several
 * places (each arm of a UNION ALL) and is bound once.
 */
enum {
    P_NAME = 1,
    P_BATCH,
    P_LABEL_KEY,
    P_LABEL_VALUE,
    P_BEFORE,
    P_SINCE,
    P_LIMIT,
    P_STATE0 /* ?8, ?9, ...: the states */
};

/*
 * Append the filters other than state, each starting with " AND". In seq
 * order the seq index must drive the walk (a blocking query asks for the few
 * changes after a recent seq): a unary + keeps SQLite from choosing the
 * state, name or batch index instead and sorting all their jobs by seq.
 */
static void sql_filters(struct sqlbuf *b, const struct store_query *q) {
    if (q->name != NULL) {
        sql_add(b, q->by_seq ? " AND +name = ?1" : " AND name = ?1");
    }
    if (q->batch != NULL) {
        sql_add(b, q->by_seq ? " AND +batch = ?2" : " AND batch = ?2");
    }
    if (q->label_key != NULL) {
        /* json_each yields the label keys as they are: no JSON path quoting to get wrong. */
        sql_add(b, " AND EXISTS (SELECT 1 FROM json_each(jobs.doc, '$.labels') AS l"
                   " WHERE l.key = ?3 AND l.type = 'text' AND l.value = ?4)");
    }
    if (q->before_num > 0) {
        sql_add(b, " AND num < ?5");
    }
    if (q->by_seq && q->since_seq >= 0) {
        sql_add(b, " AND seq > ?6");
    }
}

/*
 * Build the SQL of a query. Newest first with several states is a UNION ALL
 * of one index range scan per state (each at most `limit` rows), merged: an
 * IN list would read every row of those states to sort them.
 */
static int build_query(const struct store_query *q, const enum jobd_state *states, int n,
                       struct sqlbuf *b) {
    char p[32];
    if (q->by_seq || n <= 1) {
        sql_add(b, "SELECT " JOB_COLUMNS " FROM jobs WHERE 1");
        if (n > 0) {
            sql_add(b, q->by_seq ? " AND +state IN (" : " AND state IN (");
            for (int i = 0; i < n; i++) {
                snprintf(p, sizeof(p), "%s?%d", i ? ", " : "", P_STATE0 + i);
                sql_add(b, p);
            }
            sql_add(b, ")");
        }
        sql_filters(b, q);
        sql_add(b, q->by_seq ? " ORDER BY seq LIMIT ?7" : " ORDER BY num DESC LIMIT ?7");
    } else {
        for (int i = 0; i < n; i++) {
            sql_add(b, i ? " UNION ALL " : "");
            sql_add(b, "SELECT * FROM (SELECT " JOB_COLUMNS " FROM jobs WHERE state = ");
            snprintf(p, sizeof(p), "?%d", P_STATE0 + i);
            sql_add(b, p);
            sql_filters(b, q);
            sql_add(b, " ORDER BY num DESC LIMIT ?7)");
        }
        sql_add(b, " ORDER BY num DESC LIMIT ?7");
    }
    return b->failed ? -E2BIG : 0;
}

static int bind_query(sqlite3_stmt *stmt, const struct store_query *q,
                      const enum jobd_state *states, int n) {
    int rc = SQLITE_OK;
    if (q->name != NULL) {
        rc = sqlite3_bind_text(stmt, P_NAME, q->name, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && q->batch != NULL) {
        rc = sqlite3_bind_text(stmt, P_BATCH, q->batch, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK && q->label_key != NULL) {
        rc = sqlite3_bind_text(stmt, P_LABEL_KEY, q->label_key, -1, SQLITE_STATIC);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_text(stmt, P_LABEL_VALUE, q->label_value, -1, SQLITE_STATIC);
        }
    }
    if (rc == SQLITE_OK && q->before_num > 0) {
        rc = sqlite3_bind_int64(stmt, P_BEFORE, q->before_num);
    }
    if (rc == SQLITE_OK && q->by_seq && q->since_seq >= 0) {
        rc = sqlite3_bind_int64(stmt, P_SINCE, q->since_seq);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int(stmt, P_LIMIT, q->limit);
    }
    for (int i = 0; rc == SQLITE_OK && i < n; i++) {
        rc = sqlite3_bind_text(stmt, P_STATE0 + i, jobd_state_name(states[i]), -1, SQLITE_STATIC);
    }
    return rc;
}

int store_query(struct store *st, const struct store_query *q,
                int (*fn)(void *arg, const struct store_row *row), void *arg) {
    if (q->limit < 1 || q->limit > STORE_MAX_LIMIT || q->n_states < 0 ||
        (q->n_states > 0 && q->states == NULL) ||
        (q->label_key != NULL && q->label_value == NULL)) {
        return -EINVAL;
    }
    /* Distinct states, in enum order: a repeated state would repeat rows. */
    enum jobd_state states[JOBD_STATE_COUNT];
    bool seen[JOBD_STATE_COUNT] = {false};
    for (int i = 0; i < q->n_states; i++) {
        if ((int)q->states[i] < 0 || q->states[i] >= JOBD_STATE_COUNT) {
            return -EINVAL;
        }
        seen[q->states[i]] = true;
    }
    int n = 0;
    for (int s = 0; s < JOBD_STATE_COUNT; s++) {
        if (seen[s]) {
            states[n++] = (enum jobd_state)s;
        }
    }
    struct sqlbuf *b = malloc(sizeof(*b));
    if (b == NULL) {
        return -ENOMEM;
    }
    b->len = 0;
    b->failed = false;
    b->buf[0] = '\0';
    int ret = build_query(q, states, n, b);
    if (ret != 0) {
        fprintf(stderr, "store: query too long\n");
        free(b);
        return ret;
    }

    sqlite3_stmt *stmt = NULL;
    struct reader *r = reader_get(st);
    int rc = sqlite3_prepare_v2(r->db, b->buf, (int)b->len + 1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "store: cannot prepare \"%s\": %s\n", b->buf, sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
        goto out;
    }
    rc = bind_query(stmt, q, states, n);
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "query", rc);
        goto out;
    }
    ret = walk_rows(r->db, stmt, "query", fn, arg);
out:
    sqlite3_finalize(stmt); /* NULL or a statement whose error is reported */
    reader_put(r);
    free(b);
    return ret;
}

int store_load_active(struct store *st, int (*fn)(void *arg, const struct store_row *row),
                      void *arg) {
    struct reader *r = reader_get(st);
    int ret = walk_rows(r->db, r->load_active, "loading active jobs", fn, arg);
    read_done(r->load_active);
    reader_put(r);
    return ret;
}

int store_load_nodes(struct store *st, int (*fn)(void *arg, const struct store_node *n),
                     void *arg) {
    struct reader *r = reader_get(st);
    sqlite3_stmt *stmt = NULL;
    int ret = 0, rc;

    /* Rare (once at start): not worth a persistent statement. */
    rc = sqlite3_prepare_v2(r->db,
                            "SELECT id, url, labels, state, version, capacity, registered_ms"
                            " FROM nodes ORDER BY id",
                            -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        ret = sqlite_errno(rc);
        goto out;
    }
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        struct store_node n = {
            .id = (const char *)sqlite3_column_text(stmt, 0),
            .url = (const char *)sqlite3_column_text(stmt, 1),
            .labels = (const char *)sqlite3_column_text(stmt, 2),
            .state = (const char *)sqlite3_column_text(stmt, 3),
            .version = (const char *)sqlite3_column_text(stmt, 4),
            .capacity = sqlite3_column_int(stmt, 5),
            .registered_ms = sqlite3_column_int64(stmt, 6),
        };
        if (!n.id || !n.url || !n.labels || !n.state)
            continue;
        ret = fn(arg, &n);
        if (ret != 0)
            goto out;
    }
    if (rc != SQLITE_DONE)
        ret = sqlite_errno(rc);
out:
    sqlite3_finalize(stmt);
    reader_put(r);
    return ret;
}

int store_load_expired(struct store *st, int64_t before_ms, int limit,
                       int (*fn)(void *arg, const struct store_row *row), void *arg) {
    int ret = 0;
    struct reader *r = reader_get(st);
    int rc = sqlite3_bind_int64(r->load_expired, 1, before_ms);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int(r->load_expired, 2, limit);
    }
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "loading expired jobs", rc);
        goto out;
    }
    ret = walk_rows(r->db, r->load_expired, "loading expired jobs", fn, arg);
out:
    read_done(r->load_expired);
    reader_put(r);
    return ret;
}

int store_get_batch(struct store *st, int64_t num, struct store_batch *b, char *id, char *name,
                    size_t name_len) {
    int ret = 0;
    struct reader *r = reader_get(st);
    int rc = sqlite3_bind_int64(r->get_batch, 1, num);
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "get batch", rc);
        goto out;
    }
    rc = sqlite3_step(r->get_batch);
    if (rc == SQLITE_DONE) {
        ret = -ENOENT;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        fprintf(stderr, "store: get batch %lld failed: %s\n", (long long)num,
                sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
        goto out;
    }
    const char *tid = (const char *)sqlite3_column_text(r->get_batch, 0);
    const char *tname = (const char *)sqlite3_column_text(r->get_batch, 1);
    snprintf(id, JOBD_MAX_ID_BYTES, "%s", tid ? tid : "");
    b->num = num;
    b->id = id;
    b->name = NULL;
    if (tname && name && name_len) {
        snprintf(name, name_len, "%s", tname);
        b->name = name;
    }
    b->concurrency = sqlite3_column_int(r->get_batch, 2);
    b->total = sqlite3_column_int(r->get_batch, 3);
    b->created_ms = sqlite3_column_int64(r->get_batch, 4);
out:
    read_done(r->get_batch);
    reader_put(r);
    return ret;
}

int store_batch_counts(struct store *st, const char *batch_id, int *counts) {
    int ret = 0;
    struct reader *r = reader_get(st);
    int rc = bind_text(r->batch_counts, 1, batch_id);

    for (int i = 0; i < JOBD_STATE_COUNT; i++)
        counts[i] = 0;
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "count batch", rc);
        goto out;
    }
    while ((rc = sqlite3_step(r->batch_counts)) == SQLITE_ROW) {
        enum jobd_state state;
        const char *name = (const char *)sqlite3_column_text(r->batch_counts, 0);
        if (name && jobd_state_parse(name, &state) == 0)
            counts[state] = sqlite3_column_int(r->batch_counts, 1);
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "store: count batch %s failed: %s\n", batch_id, sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
    }
out:
    read_done(r->batch_counts);
    reader_put(r);
    return ret;
}

int store_batch_jobs(struct store *st, const char *batch_id,
                     int (*fn)(void *arg, int64_t num, const char *id), void *arg) {
    int ret = 0;
    struct reader *r = reader_get(st);
    int rc = bind_text(r->batch_jobs, 1, batch_id);

    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "list batch", rc);
        goto out;
    }
    while ((rc = sqlite3_step(r->batch_jobs)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(r->batch_jobs, 1);
        ret = fn(arg, sqlite3_column_int64(r->batch_jobs, 0), id ? id : "");
        if (ret != 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "store: list batch %s failed: %s\n", batch_id, sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
    }
out:
    read_done(r->batch_jobs);
    reader_put(r);
    return ret;
}

int store_get_output(struct store *st, int64_t num, int stream, char **data, size_t *len) {
    int ret = 0;
    struct reader *r = reader_get(st);
    int rc = sqlite3_bind_int64(r->get_output, 1, num);

    *data = NULL;
    *len = 0;
    if (rc != SQLITE_OK) {
        ret = bind_failed(r->db, "get output", rc);
        goto out;
    }
    rc = sqlite3_step(r->get_output);
    if (rc == SQLITE_DONE) {
        ret = -ENOENT;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        fprintf(stderr, "store: get output of job %lld failed: %s\n", (long long)num,
                sqlite3_errmsg(r->db));
        ret = sqlite_errno(rc);
        goto out;
    }
    int col = stream == 1 ? 1 : 0;
    if (sqlite3_column_type(r->get_output, col) != SQLITE_NULL) {
        const void *b = sqlite3_column_blob(r->get_output, col);
        int n = sqlite3_column_bytes(r->get_output, col);
        *data = malloc(n > 0 ? (size_t)n : 1);
        if (*data == NULL) {
            ret = -ENOMEM;
            goto out;
        }
        if (n > 0)
            memcpy(*data, b, (size_t)n);
        *len = (size_t)n;
    }
out:
    read_done(r->get_output);
    reader_put(r);
    return ret;
}

const char *store_strerror(int status) {
    switch (status) {
    case -ENOSPC:
        return "the disk is full";
    case -EBUSY:
        return "the database is locked by another process";
    case -EACCES:
        return "the database cannot be written";
    case -ENOMEM:
        return "out of memory";
    default:
        return strerror(-status);
    }
}
