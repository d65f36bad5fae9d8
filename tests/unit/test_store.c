/*
 * test_store.c: unit tests of service/store.c, the SQLite job store.
 *
 * Each test gets a fresh directory under /tmp (removed afterwards) and talks
 * to the store only through store.h, plus a separate SQLite connection where
 * a test needs to look at the file itself. Threads other than the test's own
 * never call cmocka: they record what happened and the test thread asserts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "store.h"
#include "jobd/spec.h"

/* ---- fixtures and helpers ---- */

struct fixture {
    char dir[64];
    char db[96];
};

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(path);
}

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/jobd-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof(f->db), "%s/jobd.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static struct store *open_store(const char *dir, struct store_info *info) {
    char err[256] = "";
    struct store *st = NULL;
    struct store_info tmp;
    int rc = store_open(dir, &st, info != NULL ? info : &tmp, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "store_open: %d %s\n", rc, err);
    }
    assert_int_equal(rc, 0);
    assert_non_null(st);
    return st;
}

/* A job row with buffers of its own. */
struct tjob {
    struct store_op op;
    char id[32];
    char spec[64];
    char doc[512];
    sem_t done;
    int status;
};

/* Fill j as a PUT of job `num`. `labels` is a JSON object text or NULL. */
static void tjob_init(struct tjob *j, int64_t num, enum jobd_state state, int64_t seq,
                      const char *name, const char *batch, const char *labels) {
    memset(&j->op, 0, sizeof(j->op));
    snprintf(j->id, sizeof(j->id), "j%lld", (long long)num);
    snprintf(j->spec, sizeof(j->spec), "{\"shell\":\"echo %lld\"}", (long long)num);
    snprintf(j->doc, sizeof(j->doc), "{\"id\":\"%s\",\"state\":\"%s\",\"seq\":%lld,\"labels\":%s}",
             j->id, jobd_state_name(state), (long long)seq, labels != NULL ? labels : "{}");
    j->op.kind = STORE_PUT;
    j->op.row.num = num;
    j->op.row.id = j->id;
    j->op.row.state = state;
    j->op.row.seq = seq;
    j->op.row.name = name;
    j->op.row.batch = batch;
    j->op.row.created_ms = 1000 + num;
    j->op.row.finished_ms = jobd_state_is_final(state) ? 2000 + num : 0;
    j->op.row.spec = j->spec;
    j->op.row.doc = j->doc;
}

static void tjob_done(void *arg, int status) {
    struct tjob *j = arg;
    j->status = status;
    sem_post(&j->done);
}

static void tjob_enqueue(struct store *st, struct tjob *j) {
    assert_int_equal(sem_init(&j->done, 0, 0), 0);
    j->status = 1;
    j->op.done = tjob_done;
    j->op.arg = j;
    store_enqueue(st, &j->op);
}

static int tjob_wait(struct tjob *j) {
    while (sem_wait(&j->done) != 0) {
        assert_int_equal(errno, EINTR);
    }
    sem_destroy(&j->done);
    return j->status;
}

static int put_sync(struct store *st, struct tjob *j) {
    tjob_enqueue(st, j);
    return tjob_wait(j);
}

static int put(struct store *st, int64_t num, enum jobd_state state, int64_t seq, const char *name,
               const char *batch, const char *labels) {
    struct tjob j;
    tjob_init(&j, num, state, seq, name, batch, labels);
    return put_sync(st, &j);
}

static int del(struct store *st, int64_t num) {
    struct tjob j;
    memset(&j.op, 0, sizeof(j.op));
    j.op.kind = STORE_DELETE;
    j.op.row.num = num;
    return put_sync(st, &j);
}

/* The numbers of the rows a walk visited. */
struct seen {
    int64_t num[2048];
    int64_t seq[2048];
    enum jobd_state state[2048];
    int n;
};

static int collect(void *arg, const struct store_row *row) {
    struct seen *s = arg;
    if (s->n >= 2048) {
        return -E2BIG;
    }
    s->num[s->n] = row->num;
    s->seq[s->n] = row->seq;
    s->state[s->n] = row->state;
    s->n++;
    return 0;
}

static struct seen *run_query(struct store *st, const struct store_query *q) {
    struct seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(store_query(st, q, collect, s), 0);
    return s;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fault hook is read by the writer thread: set it atomically. */
static void set_hook(int (*hook)(void)) {
    __atomic_store_n(&store_fault_hook, hook, __ATOMIC_RELEASE);
}

/* ---- schema, rows, idempotency ---- */

static void test_open_creates_schema(void **state) {
    struct fixture *f = *state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/a/b", f->dir);
    struct store_info info = {-1, -1};
    struct store *st = open_store(dir, &info);
    assert_int_equal(info.last_num, 0);
    assert_int_equal(info.last_seq, 0);

    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    /* Every descriptor of the store is close-on-exec. */
    int found = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[300];
        char target[512];
        snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0) {
            continue;
        }
        target[n] = '\0';
        if (strstr(target, "/jobd.db") != NULL) {
            int flags = fcntl(atoi(e->d_name), F_GETFD);
            assert_true(flags >= 0);
            assert_true(flags & FD_CLOEXEC);
            found++;
        }
    }
    closedir(d);
    assert_true(found >= 3); /* jobd.db, -wal, -shm */

    char path[160];
    snprintf(path, sizeof(path), "%s/jobd.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT group_concat(name, ',') FROM (SELECT name FROM "
                                        "sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY "
                                        "name)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0),
                        "batches,jobs,jobs_batch,jobs_finished,jobs_name,jobs_seq,jobs_state,meta,"
                        "nodes");
    sqlite3_finalize(s);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key='schema_version'", -1, &s, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), 2);
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    store_close(st);

    /* A second open of the same directory finds the schema as it is. */
    st = open_store(dir, &info);
    store_close(st);
}

static void test_open_refuses_other_schema_version(void **state) {
    struct fixture *f = *state;
    store_close(open_store(f->dir, NULL));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db, "UPDATE meta SET value=3 WHERE key='schema_version'", 0, 0, 0), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    struct store *st = NULL;
    struct store_info info;
    char err[256] = "";
    assert_int_equal(store_open(f->dir, &st, &info, err, sizeof(err)), -EPROTONOSUPPORT);
    assert_null(st);
    assert_non_null(strstr(err, "schema version 3"));
}

/* ---- worker nodes ---- */

struct tnode {
    struct store_op op;
    sem_t done;
    int status;
};

static void tnode_done(void *arg, int status) {
    struct tnode *n = arg;
    n->status = status;
    sem_post(&n->done);
}

static int node_op(struct store *st, enum store_op_kind kind, const struct store_node *node) {
    struct tnode n;
    memset(&n, 0, sizeof(n));
    n.op.kind = kind;
    n.op.node = *node;
    n.op.done = tnode_done;
    n.op.arg = &n;
    assert_int_equal(sem_init(&n.done, 0, 0), 0);
    store_enqueue(st, &n.op);
    while (sem_wait(&n.done) != 0)
        assert_int_equal(errno, EINTR);
    sem_destroy(&n.done);
    return n.status;
}

struct node_list {
    char ids[8][80];
    char states[8][16];
    char labels[8][80];
    int capacity[8];
    int n;
};

static int collect_node(void *arg, const struct store_node *n) {
    struct node_list *l = arg;
    assert_true(l->n < 8);
    snprintf(l->ids[l->n], sizeof(l->ids[0]), "%s %s %s", n->id, n->url,
             n->version ? n->version : "-");
    snprintf(l->states[l->n], sizeof(l->states[0]), "%s", n->state);
    snprintf(l->labels[l->n], sizeof(l->labels[0]), "%s", n->labels);
    l->capacity[l->n++] = n->capacity;
    return 0;
}

static void test_nodes_put_load_delete(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    struct store_node a = {"nb", "http://b:1", "{\"gpu\":\"yes\"}", "ready", "0.1.0", 4, 5};
    struct store_node b = {"na", "http://a:1", "{}", "draining", NULL, 1, 6};
    struct store_node bad = {"nc", NULL, "{}", "ready", NULL, 1, 7};
    struct node_list l;

    assert_int_equal(node_op(st, STORE_PUT_NODE, &a), 0);
    assert_int_equal(node_op(st, STORE_PUT_NODE, &b), 0);
    /* An incomplete row is refused on its own. */
    assert_int_not_equal(node_op(st, STORE_PUT_NODE, &bad), 0);
    a.state = "down";
    a.capacity = 8;
    assert_int_equal(node_op(st, STORE_PUT_NODE, &a), 0);
    store_close(st);

    st = open_store(f->dir, NULL);
    memset(&l, 0, sizeof(l));
    assert_int_equal(store_load_nodes(st, collect_node, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.ids[0], "na http://a:1 -");
    assert_string_equal(l.states[0], "draining");
    assert_string_equal(l.ids[1], "nb http://b:1 0.1.0");
    assert_string_equal(l.states[1], "down");
    assert_string_equal(l.labels[1], "{\"gpu\":\"yes\"}");
    assert_int_equal(l.capacity[1], 8);
    assert_int_equal(node_op(st, STORE_DELETE_NODE, &b), 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(store_load_nodes(st, collect_node, &l), 0);
    assert_int_equal(l.n, 1);
    store_close(st);
}

static int remote_row(void *arg, const struct store_row *row) {
    char *out = arg;
    snprintf(out, 128, "%s %s %s", row->id, row->node ? row->node : "-",
             row->remote_id ? row->remote_id : "-");
    return 0;
}

static void test_remote_columns(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    struct tjob j;
    char got[128] = "";

    tjob_init(&j, 7, JOBD_RUNNING, 3, NULL, NULL, NULL);
    j.op.row.node = "n1";
    j.op.row.remote_id = "j42";
    assert_int_equal(put_sync(st, &j), 0);
    assert_int_equal(store_load_active(st, remote_row, got), 0);
    assert_string_equal(got, "j7 n1 j42");
    tjob_init(&j, 7, JOBD_QUEUED, 4, NULL, NULL, NULL);
    assert_int_equal(put_sync(st, &j), 0);
    assert_int_equal(store_load_active(st, remote_row, got), 0);
    assert_string_equal(got, "j7 - -");
    store_close(st);
}

/* A store made by a jobd before worker nodes (schema 1) is migrated, its jobs kept. */
static void test_migrates_schema_1(void **state) {
    struct fixture *f = *state;
    sqlite3 *db = NULL;
    char got[128] = "";
    struct node_list l;

    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER);"
                     "CREATE TABLE jobs(num INTEGER PRIMARY KEY, id TEXT NOT NULL, state TEXT NOT "
                     "NULL, seq INTEGER NOT NULL, priority INTEGER NOT NULL, name TEXT, batch "
                     "TEXT, idem_key TEXT UNIQUE, created_ms INTEGER, finished_ms INTEGER, pid "
                     "INTEGER, pid_start INTEGER, spec TEXT NOT NULL, doc TEXT NOT NULL, "
                     "out_stdout BLOB, out_stderr BLOB);"
                     "CREATE TABLE batches(num INTEGER PRIMARY KEY, id TEXT NOT NULL, name TEXT, "
                     "concurrency INTEGER NOT NULL, total INTEGER NOT NULL, created_ms INTEGER "
                     "NOT NULL);"
                     "INSERT INTO meta VALUES ('schema_version', 1), ('last_num', 9), "
                     "('last_seq', 9);"
                     "INSERT INTO jobs(num, id, state, seq, priority, spec, doc) VALUES "
                     "(9, 'j9', 'queued', 9, 0, '{}', '{}');",
                     0, 0, 0),
        SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    struct store_info info;
    struct store *st = open_store(f->dir, &info);
    assert_int_equal(info.last_num, 9);
    assert_int_equal(store_load_active(st, remote_row, got), 0);
    assert_string_equal(got, "j9 - -");
    memset(&l, 0, sizeof(l));
    assert_int_equal(store_load_nodes(st, collect_node, &l), 0);
    assert_int_equal(l.n, 0);
    store_close(st);
}

static void test_put_get_replace_delete(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    char *doc = NULL;
    assert_int_equal(store_get_doc(st, 1, &doc), -ENOENT);
    assert_null(doc);

    struct tjob j;
    tjob_init(&j, 1, JOBD_QUEUED, 1, "build", NULL, NULL);
    assert_int_equal(put_sync(st, &j), 0);
    assert_int_equal(store_get_doc(st, 1, &doc), 0);
    assert_string_equal(doc, j.doc);
    free(doc);

    tjob_init(&j, 1, JOBD_SUCCEEDED, 2, "build", NULL, NULL);
    assert_int_equal(put_sync(st, &j), 0);
    assert_int_equal(store_get_doc(st, 1, &doc), 0);
    assert_non_null(strstr(doc, "\"succeeded\""));
    free(doc);
    struct store_query q = {.limit = 10};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->state[0], JOBD_SUCCEEDED);
    assert_int_equal(s->seq[0], 2);
    free(s);

    assert_int_equal(del(st, 1), 0);
    assert_int_equal(store_get_doc(st, 1, &doc), -ENOENT);
    /* Deleting what is not there is not an error. */
    assert_int_equal(del(st, 1), 0);
    store_close(st);
}

static void test_idempotency_lookup(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    struct tjob j;
    tjob_init(&j, 7, JOBD_QUEUED, 3, NULL, NULL, NULL);
    j.op.row.idem_key = "key-1";
    assert_int_equal(put_sync(st, &j), 0);

    int64_t num = 0;
    char *spec = NULL;
    assert_int_equal(store_find_idem(st, "key-1", &num, &spec), 0);
    assert_int_equal(num, 7);
    assert_string_equal(spec, j.spec);
    free(spec);
    assert_int_equal(store_find_idem(st, "key-2", &num, &spec), -ENOENT);
    assert_null(spec);

    /* Another job with the same key is rejected alone; the first one stays. */
    struct tjob a, b;
    tjob_init(&a, 8, JOBD_QUEUED, 4, NULL, NULL, NULL);
    a.op.row.idem_key = "key-1";
    tjob_init(&b, 9, JOBD_QUEUED, 5, NULL, NULL, NULL);
    tjob_enqueue(st, &a);
    tjob_enqueue(st, &b);
    assert_int_equal(tjob_wait(&a), -EEXIST);
    assert_int_equal(tjob_wait(&b), 0);
    assert_int_equal(store_find_idem(st, "key-1", &num, NULL), 0);
    assert_int_equal(num, 7);
    char *doc = NULL;
    assert_int_equal(store_get_doc(st, 8, &doc), -ENOENT);
    assert_int_equal(store_get_doc(st, 9, &doc), 0);
    free(doc);
    store_close(st);
}

/* ---- queries ---- */

/*
 * 40 jobs: num 1..40, seq = 100 - num (so seq order is the reverse of num
 * order), states cycling queued, running, succeeded, failed; names "even" and
 * "odd"; batch "b1" for num % 5 == 0; labels env=prod for num % 3 == 0,
 * a dotted key and a key with a quote on a few.
 */
static void fill_query_jobs(struct store *st) {
    static const enum jobd_state states[] = {JOBD_QUEUED, JOBD_RUNNING, JOBD_SUCCEEDED,
                                             JOBD_FAILED};
    struct tjob *j = calloc(40, sizeof(*j));
    assert_non_null(j);
    for (int i = 0; i < 40; i++) {
        int64_t num = i + 1;
        const char *labels = num % 3 == 0 ? "{\"env\":\"prod\"}" : "{\"env\":\"dev\"}";
        if (num == 4) {
            labels = "{\"a.b\":\"x\",\"q\\\"k\":\"y\"}";
        }
        if (num == 5) {
            labels = "{\"a\":{\"b\":\"x\"},\"q\":\"y\",\"env\":\"prod\"}";
        }
        tjob_init(&j[i], num, states[i % 4], 100 - num, num % 2 ? "odd" : "even",
                  num % 5 == 0 ? "b1" : NULL, labels);
        tjob_enqueue(st, &j[i]);
    }
    for (int i = 0; i < 40; i++) {
        assert_int_equal(tjob_wait(&j[i]), 0);
    }
    free(j);
}

static void test_query_order_limit_paging(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    fill_query_jobs(st);

    struct store_query q = {.limit = 5};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(s->num[i], 40 - i);
    }
    free(s);

    /* Page through all 40 with a cursor: no gap, no duplicate. */
    int64_t expect = 40;
    int pages = 0;
    q.limit = 7;
    for (;;) {
        s = run_query(st, &q);
        for (int i = 0; i < s->n; i++) {
            assert_int_equal(s->num[i], expect--);
        }
        int n = s->n;
        if (n > 0) {
            q.before_num = s->num[n - 1];
        }
        free(s);
        pages++;
        if (n < q.limit) {
            break;
        }
    }
    assert_int_equal(expect, 0);
    assert_int_equal(pages, 6);

    /* Bad arguments. */
    q.limit = 0;
    assert_int_equal(store_query(st, &q, collect, NULL), -EINVAL);
    q.limit = 1002;
    assert_int_equal(store_query(st, &q, collect, NULL), -EINVAL);
    store_close(st);
}

static void test_query_filters(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    fill_query_jobs(st);

    /* One state. */
    enum jobd_state running = JOBD_RUNNING;
    struct store_query q = {.states = &running, .n_states = 1, .limit = 100};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 10);
    for (int i = 0; i < s->n; i++) {
        assert_int_equal(s->state[i], JOBD_RUNNING);
        assert_int_equal(s->num[i], 38 - 4 * i);
    }
    free(s);

    /* Two states (repeated in the list), newest first across both, paged. */
    enum jobd_state two[] = {JOBD_FAILED, JOBD_QUEUED, JOBD_FAILED};
    q = (struct store_query){.states = two, .n_states = 3, .limit = 6};
    int64_t prev = 41;
    int total = 0;
    for (;;) {
        s = run_query(st, &q);
        for (int i = 0; i < s->n; i++) {
            assert_true(s->num[i] < prev);
            assert_true(s->state[i] == JOBD_FAILED || s->state[i] == JOBD_QUEUED);
            prev = s->num[i];
        }
        total += s->n;
        int n = s->n;
        free(s);
        if (n < q.limit) {
            break;
        }
        q.before_num = prev;
    }
    assert_int_equal(total, 20);

    /* Name, combined with a state. */
    q = (struct store_query){.name = "odd", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 20);
    free(s);
    enum jobd_state done = JOBD_SUCCEEDED;
    q = (struct store_query){.name = "odd", .states = &done, .n_states = 1, .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 10); /* succeeded jobs are num 3, 7, 11, ...: all odd */
    for (int i = 0; i < s->n; i++) {
        assert_int_equal(s->num[i] % 4, 3);
    }
    free(s);
    q.name = "even";
    s = run_query(st, &q);
    assert_int_equal(s->n, 0);
    free(s);
    q = (struct store_query){.name = "nobody", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 0);
    free(s);

    /* Batch. */
    q = (struct store_query){.batch = "b1", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 8);
    for (int i = 0; i < s->n; i++) {
        assert_int_equal(s->num[i], 40 - 5 * i);
    }
    free(s);

    /* Labels: a plain key, a key with a dot, a key with a quote. */
    q = (struct store_query){.label_key = "env", .label_value = "prod", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 14); /* 3, 6, ... 39 and 5 */
    for (int i = 0; i < s->n; i++) {
        assert_true(s->num[i] % 3 == 0 || s->num[i] == 5);
    }
    free(s);
    q = (struct store_query){.label_key = "a.b", .label_value = "x", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 1); /* not job 5, whose labels.a.b is nested */
    assert_int_equal(s->num[0], 4);
    free(s);
    q = (struct store_query){.label_key = "q\"k", .label_value = "y", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->num[0], 4);
    free(s);
    q = (struct store_query){.label_key = "q\"k')--", .label_value = "y", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 0);
    free(s);
    q = (struct store_query){
        .label_key = "env", .label_value = "prod", .batch = "b1", .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 3); /* 30, 15, 5 */
    assert_int_equal(s->num[0], 30);
    assert_int_equal(s->num[2], 5);
    free(s);
    store_close(st);
}

static void test_query_by_seq(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    fill_query_jobs(st);

    /* seq = 100 - num: seq order is num descending; since 80 means num < 20. */
    struct store_query q = {.by_seq = true, .since_seq = 80, .limit = 5};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 5);
    for (int i = 0; i < s->n; i++) {
        assert_int_equal(s->seq[i], 81 + i);
    }
    free(s);

    /* A change moves a job to the end of the change order. */
    assert_int_equal(put(st, 30, JOBD_SUCCEEDED, 100, "even", NULL, NULL), 0);
    q = (struct store_query){.by_seq = true, .since_seq = 95, .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 5);
    assert_int_equal(s->seq[0], 96);
    assert_int_equal(s->num[4], 30);
    assert_int_equal(s->seq[4], 100);
    free(s);

    /* With a state filter and a label. */
    enum jobd_state queued = JOBD_QUEUED;
    q = (struct store_query){.by_seq = true,
                             .since_seq = 0,
                             .states = &queued,
                             .n_states = 1,
                             .label_key = "env",
                             .label_value = "prod",
                             .limit = 100};
    s = run_query(st, &q);
    /* queued: num 1, 5, 9, ...; of those prod: 9, 21, 33 and 5; seq order is num descending */
    assert_int_equal(s->n, 4);
    assert_int_equal(s->num[0], 33);
    assert_int_equal(s->num[1], 21);
    assert_int_equal(s->num[2], 9);
    assert_int_equal(s->num[3], 5);
    free(s);

    q = (struct store_query){.by_seq = true, .since_seq = 100, .limit = 100};
    s = run_query(st, &q);
    assert_int_equal(s->n, 0);
    free(s);
    store_close(st);
}

static void test_counters_survive_delete_and_reopen(void **state) {
    struct fixture *f = *state;
    struct store_info info;
    struct store *st = open_store(f->dir, &info);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(put(st, i, JOBD_SUCCEEDED, 10 * i, NULL, NULL, NULL), 0);
    }
    assert_int_equal(del(st, 5), 0);
    assert_int_equal(del(st, 4), 0);
    store_close(st);

    st = open_store(f->dir, &info);
    assert_int_equal(info.last_num, 5);
    assert_int_equal(info.last_seq, 50);
    /* Writing a lower number later never lowers the counters. */
    assert_int_equal(put(st, 2, JOBD_FAILED, 7, NULL, NULL, NULL), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(del(st, i), 0);
    }
    store_close(st);
    st = open_store(f->dir, &info);
    assert_int_equal(info.last_num, 5);
    assert_int_equal(info.last_seq, 50);
    store_close(st);
}

/* ---- the writer ---- */

#define GC_THREADS 8
#define GC_PER     250

struct gc_arg {
    struct store *st;
    int t;
    int failures;
};

static void *gc_thread(void *p) {
    struct gc_arg *a = p;
    struct tjob *j = malloc(sizeof(*j));
    if (j == NULL) {
        a->failures++;
        return NULL;
    }
    for (int i = 0; i < GC_PER; i++) {
        int64_t num = (int64_t)a->t * GC_PER + i + 1;
        tjob_init(j, num, JOBD_QUEUED, num, "gc", NULL, NULL);
        /* Like a request handler: submit, then wait for the commit. */
        if (sem_init(&j->done, 0, 0) != 0) {
            a->failures++;
            break;
        }
        j->op.done = tjob_done;
        j->op.arg = j;
        store_enqueue(a->st, &j->op);
        while (sem_wait(&j->done) != 0) {
        }
        sem_destroy(&j->done);
        if (j->status != 0) {
            a->failures++;
        }
    }
    free(j);
    return NULL;
}

static void test_group_commit(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    uint64_t before = store_commit_count(st);
    pthread_t th[GC_THREADS];
    struct gc_arg args[GC_THREADS];
    int64_t t0 = mono_ms();
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (struct gc_arg){st, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, gc_thread, &args[i]), 0);
    }
    for (int i = 0; i < GC_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    int64_t ms = mono_ms() - t0;
    uint64_t txns = store_commit_count(st) - before;
    int ops = GC_THREADS * GC_PER;
    fprintf(stderr,
            "group commit: %d ops from %d threads in %llu transactions, %lld ms (%.1f ops/txn)\n",
            ops, GC_THREADS, (unsigned long long)txns, (long long)ms, (double)ops / (double)txns);
    assert_true(txns < (uint64_t)ops);
    assert_true(txns > 0);

    struct store_query q = {.name = "gc", .limit = 1000};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 1000);
    assert_int_equal(s->num[0], ops);
    free(s);
    store_close(st);
}

/* A done callback that enqueues the next link of a chain. */
struct chain {
    struct store *st;
    struct tjob j;
    int64_t next;
    int64_t last;
    int status;
    sem_t finished;
};

static void chain_done(void *arg, int status) {
    struct chain *c = arg;
    if (status != 0 || c->next > c->last) {
        c->status = status;
        sem_post(&c->finished);
        return;
    }
    tjob_init(&c->j, c->next, JOBD_QUEUED, c->next, NULL, NULL, NULL);
    c->j.op.done = chain_done;
    c->j.op.arg = c;
    c->next++;
    store_enqueue(c->st, &c->j.op);
}

static void test_done_may_enqueue(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    struct chain *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->st = st;
    c->next = 1;
    c->last = 50;
    assert_int_equal(sem_init(&c->finished, 0, 0), 0);
    chain_done(c, 0);
    assert_int_equal(sem_wait(&c->finished), 0);
    assert_int_equal(c->status, 0);
    struct store_query q = {.limit = 100};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 50);
    free(s);
    sem_destroy(&c->finished);
    free(c);
    store_close(st);
}

static int hook_enospc(void) {
    return -ENOSPC;
}

static int hook_eio(void) {
    return -EIO;
}

static void test_fault_hook_enospc(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    assert_int_equal(put(st, 1, JOBD_QUEUED, 1, NULL, NULL, NULL), 0);

    set_hook(hook_enospc);
    /* Without retry: fails at once, and nothing of the transaction is stored. */
    struct tjob a, b;
    tjob_init(&a, 2, JOBD_QUEUED, 2, NULL, NULL, NULL);
    tjob_init(&b, 1, JOBD_RUNNING, 3, NULL, NULL, NULL);
    tjob_enqueue(st, &a);
    tjob_enqueue(st, &b);
    assert_int_equal(tjob_wait(&a), -ENOSPC);
    assert_int_equal(tjob_wait(&b), -ENOSPC);
    char *doc = NULL;
    assert_int_equal(store_get_doc(st, 2, &doc), -ENOENT);
    assert_int_equal(store_get_doc(st, 1, &doc), 0);
    assert_non_null(strstr(doc, "\"queued\""));
    free(doc);

    /* With retry: waits, then lands once the disk has room again. */
    struct tjob r1, r2;
    tjob_init(&r1, 3, JOBD_QUEUED, 4, NULL, NULL, NULL);
    tjob_init(&r2, 4, JOBD_QUEUED, 5, NULL, NULL, NULL);
    r1.op.retry = true;
    r2.op.retry = true;
    tjob_enqueue(st, &r1);
    tjob_enqueue(st, &r2);
    usleep(300 * 1000);
    assert_int_equal(sem_trywait(&r1.done), -1);
    assert_int_equal(store_get_doc(st, 3, &doc), -ENOENT);
    /* A new operation without retry joins the retried transaction and fails with it. */
    tjob_init(&a, 5, JOBD_QUEUED, 6, NULL, NULL, NULL);
    tjob_enqueue(st, &a);
    assert_int_equal(tjob_wait(&a), -ENOSPC);
    uint64_t commits = store_commit_count(st);
    set_hook(NULL);
    tjob_init(&a, 6, JOBD_QUEUED, 7, NULL, NULL, NULL);
    tjob_enqueue(st, &a);
    assert_int_equal(tjob_wait(&r1), 0);
    assert_int_equal(tjob_wait(&r2), 0);
    assert_int_equal(tjob_wait(&a), 0);
    assert_true(store_commit_count(st) <= commits + 2);
    for (int n = 3; n <= 6; n++) {
        assert_int_equal(store_get_doc(st, n, &doc), n == 5 ? -ENOENT : 0);
        free(doc);
        doc = NULL;
    }
    store_close(st);
}

static void test_close_cancels_failing_retries(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    set_hook(hook_eio);
    struct tjob r;
    tjob_init(&r, 1, JOBD_QUEUED, 1, NULL, NULL, NULL);
    r.op.retry = true;
    tjob_enqueue(st, &r);
    usleep(100 * 1000);
    int64_t t0 = mono_ms();
    store_close(st);
    assert_true(mono_ms() - t0 < 1500); /* close does not wait out the backoff */
    assert_int_equal(tjob_wait(&r), -ECANCELED);
    set_hook(NULL);
    struct store_info info;
    st = open_store(f->dir, &info);
    assert_int_equal(info.last_num, 0);
    store_close(st);
}

/* A hook that holds the writer inside its transaction until released. */
static sem_t hook_entered;
static sem_t hook_release;

static int hook_block(void) {
    sem_post(&hook_entered);
    while (sem_wait(&hook_release) != 0) {
    }
    return 0;
}

static void test_reads_do_not_wait_for_writer(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    assert_int_equal(put(st, 1, JOBD_QUEUED, 1, NULL, NULL, NULL), 0);
    assert_int_equal(sem_init(&hook_entered, 0, 0), 0);
    assert_int_equal(sem_init(&hook_release, 0, 0), 0);
    set_hook(hook_block);
    struct tjob j;
    tjob_init(&j, 1, JOBD_RUNNING, 2, NULL, NULL, NULL);
    tjob_enqueue(st, &j);
    assert_int_equal(sem_wait(&hook_entered), 0);

    /* The writer holds the write lock with an uncommitted change. */
    int64_t t0 = mono_ms();
    char *doc = NULL;
    assert_int_equal(store_get_doc(st, 1, &doc), 0);
    assert_non_null(strstr(doc, "\"queued\""));
    free(doc);
    struct store_query q = {.limit = 10};
    struct seen *s = run_query(st, &q);
    assert_int_equal(s->n, 1);
    assert_int_equal(s->state[0], JOBD_QUEUED);
    free(s);
    assert_true(mono_ms() - t0 < 1000);

    set_hook(NULL);
    assert_int_equal(sem_post(&hook_release), 0);
    assert_int_equal(tjob_wait(&j), 0);
    assert_int_equal(store_get_doc(st, 1, &doc), 0);
    assert_non_null(strstr(doc, "\"running\""));
    free(doc);
    sem_destroy(&hook_entered);
    sem_destroy(&hook_release);
    store_close(st);
}

/* ---- recovery ---- */

#define KILL_AFTER 300 /* acknowledged operations before the child kills itself */

static int ack_fd = -1;
static int acks;

static void child_done(void *arg, int status) {
    struct tjob *j = arg;
    if (status != 0) {
        _exit(3);
    }
    int64_t num = j->op.row.num;
    if (write(ack_fd, &num, sizeof(num)) != (ssize_t)sizeof(num)) {
        _exit(4);
    }
    if (++acks == KILL_AFTER) {
        kill(getpid(), SIGKILL);
    }
}

/* The child: open the store, write without end, and be killed while writing. */
static void child_main(const char *dir) {
    struct store *st = NULL;
    struct store_info info;
    char err[256];
    if (store_open(dir, &st, &info, err, sizeof(err)) != 0) {
        _exit(2);
    }
    struct tjob *j = calloc(20000, sizeof(*j));
    if (j == NULL) {
        _exit(2);
    }
    for (int i = 0; i < 20000; i++) {
        tjob_init(&j[i], i + 1, JOBD_QUEUED, i + 1, NULL, NULL, NULL);
        j[i].op.done = child_done;
        j[i].op.arg = &j[i];
        store_enqueue(st, &j[i].op);
        if (i % 16 == 15) {
            usleep(100);
        }
    }
    sleep(60);
    _exit(5);
}

static void test_store_left_by_killed_process(void **state) {
    struct fixture *f = *state;
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        ack_fd = fds[1];
        child_main(f->dir);
    }
    close(fds[1]);
    int64_t *acked = calloc(KILL_AFTER + 1, sizeof(*acked));
    assert_non_null(acked);
    int n = 0;
    int64_t num;
    ssize_t r;
    while ((r = read(fds[0], &num, sizeof(num))) == (ssize_t)sizeof(num)) {
        assert_true(n <= KILL_AFTER);
        acked[n++] = num;
    }
    assert_int_equal(r, 0);
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(n, KILL_AFTER);

    /* The child left its WAL behind; everything it acknowledged is there. */
    struct stat sb;
    char wal[128];
    snprintf(wal, sizeof(wal), "%s-wal", f->db);
    assert_int_equal(stat(wal, &sb), 0);
    struct store_info info;
    struct store *st = open_store(f->dir, &info);
    for (int i = 0; i < n; i++) {
        char *doc = NULL;
        assert_int_equal(store_get_doc(st, acked[i], &doc), 0);
        free(doc);
        assert_true(info.last_num >= acked[i]);
        assert_true(info.last_seq >= acked[i]);
    }
    fprintf(stderr, "killed process: %d acknowledged, last_num %lld after reopen\n", n,
            (long long)info.last_num);
    /* New numbers start above everything the killed process used. */
    assert_int_equal(put(st, info.last_num + 1, JOBD_QUEUED, info.last_seq + 1, NULL, NULL, NULL),
                     0);
    store_close(st);
    free(acked);
}

static void test_load_active_and_expired(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    fill_query_jobs(st); /* finished_ms = 2000 + num for ended jobs */

    struct seen *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(store_load_active(st, collect, s), 0);
    assert_int_equal(s->n, 20);
    for (int i = 0; i < s->n; i++) {
        assert_true(s->state[i] == JOBD_QUEUED || s->state[i] == JOBD_RUNNING);
        assert_true(i == 0 || s->num[i] > s->num[i - 1]);
    }
    free(s);

    s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(store_load_expired(st, 2000 + 20, 100, collect, s), 0);
    assert_int_equal(s->n, 9); /* ended jobs 3, 4, 7, 8, 11, 12, 15, 16, 19 */
    for (int i = 0; i < s->n; i++) {
        assert_true(s->num[i] < 20);
        assert_true(s->state[i] == JOBD_SUCCEEDED || s->state[i] == JOBD_FAILED);
        assert_true(i == 0 || s->num[i] > s->num[i - 1]);
    }
    free(s);
    s = calloc(1, sizeof(*s));
    assert_non_null(s);
    assert_int_equal(store_load_expired(st, 1LL << 40, 4, collect, s), 0);
    assert_int_equal(s->n, 4);
    assert_int_equal(s->num[0], 3);
    free(s);
    store_close(st);
}

static int stop_walk(void *arg, const struct store_row *row) {
    int *n = arg;
    return ++*n == 2 ? 42 : 0;
}

static void test_walk_stops_on_nonzero(void **state) {
    struct fixture *f = *state;
    struct store *st = open_store(f->dir, NULL);
    fill_query_jobs(st);
    int n = 0;
    struct store_query q = {.limit = 10};
    assert_int_equal(store_query(st, &q, stop_walk, &n), 42);
    assert_int_equal(n, 2);
    n = 0;
    assert_int_equal(store_load_active(st, stop_walk, &n), 42);
    store_close(st);
}

/* ---- the cost of a page ---- */

/*
 * Every connection the store opens gets a profile callback (through an
 * auto-extension) that records the virtual machine steps of the last listing
 * query and its SQL. A page must take the same number of steps whatever the
 * number of rows stored.
 */
static char traced_sql[4096];
static int traced_steps;

static int trace_cb(unsigned type, void *ctx, void *p, void *x) {
    sqlite3_stmt *stmt = p;
    const char *sql = sqlite3_sql(stmt);
    if (type == SQLITE_TRACE_PROFILE && sql != NULL && strstr(sql, "LIMIT ?7") != NULL) {
        traced_steps = sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_VM_STEP, 0);
        snprintf(traced_sql, sizeof(traced_sql), "%s", sql);
    }
    return 0;
}

static int trace_ext(sqlite3 *db, const char **err, const struct sqlite3_api_routines *api) {
    return sqlite3_trace_v2(db, SQLITE_TRACE_PROFILE, trace_cb, NULL);
}

struct cost_case {
    const char *what;
    struct store_query q;
    int steps;
};

static enum jobd_state st_done = JOBD_SUCCEEDED;
static enum jobd_state st_two[] = {JOBD_QUEUED, JOBD_SUCCEEDED};

static void measure(struct store *st, struct cost_case *c, int n, bool record, int64_t top,
                    const char *db) {
    for (int i = 0; i < n; i++) {
        struct store_query q = c[i].q;
        if (q.before_num < 0) {
            q.before_num = top + q.before_num; /* relative to the newest job */
        }
        if (q.by_seq) {
            q.since_seq = top + q.since_seq; /* seq = num here */
        }
        traced_steps = -1;
        struct seen *s = run_query(st, &q);
        assert_int_equal(s->n, q.limit);
        free(s);
        assert_true(traced_steps > 0);
        if (record) {
            c[i].steps = traced_steps;
            continue;
        }
        fprintf(stderr, "page cost: %-28s %5d steps with 100 rows, %5d with %lld rows\n", c[i].what,
                c[i].steps, traced_steps, (long long)top);
        assert_int_equal(traced_steps, c[i].steps);
        /* Show the plan (for the record) from a connection of our own. */
        sqlite3 *conn = NULL;
        assert_int_equal(sqlite3_open_v2(db, &conn, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        char eqp[4200];
        snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", traced_sql);
        sqlite3_stmt *stmt = NULL;
        assert_int_equal(sqlite3_prepare_v2(conn, eqp, -1, &stmt, NULL), SQLITE_OK);
        /*
         * No full scan of jobs, except the rowid scan of the unfiltered page
         * (which stops after `limit` rows). Several states merge one sorted
         * arm per state; the sort there holds at most `limit` rows per arm.
         */
        while (sqlite3_step(stmt) == SQLITE_ROW) {
            const char *detail = (const char *)sqlite3_column_text(stmt, 3);
            fprintf(stderr, "    plan: %s\n", detail);
            if (c[i].q.n_states > 0 || c[i].q.by_seq) {
                assert_null(strstr(detail, "SCAN jobs"));
            }
            if (c[i].q.by_seq) {
                assert_non_null(strstr(detail, "jobs_seq"));
            }
        }
        sqlite3_finalize(stmt);
        assert_int_equal(sqlite3_close(conn), SQLITE_OK);
    }
}

/* Write jobs from..to (states cycle queued, running, succeeded) in one go. */
static void bulk_put(struct store *st, int64_t from, int64_t to) {
    static const enum jobd_state cycle[] = {JOBD_QUEUED, JOBD_RUNNING, JOBD_SUCCEEDED};
    size_t n = (size_t)(to - from + 1);
    struct tjob *j = calloc(n, sizeof(*j));
    assert_non_null(j);
    for (size_t i = 0; i < n; i++) {
        int64_t num = from + (int64_t)i;
        tjob_init(&j[i], num, cycle[num % 3], num, "bulk", NULL, NULL);
        tjob_enqueue(st, &j[i]);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(tjob_wait(&j[i]), 0);
    }
    free(j);
}

static void test_page_cost_does_not_grow(void **state) {
    struct fixture *f = *state;
    assert_int_equal(sqlite3_auto_extension((void (*)(void))trace_ext), SQLITE_OK);
    struct store *st = open_store(f->dir, NULL);
    struct cost_case c[] = {
        {"newest first", {.limit = 20}, 0},
        {"newest first, cursor", {.limit = 20, .before_num = -10}, 0},
        {"state=succeeded", {.states = &st_done, .n_states = 1, .limit = 20}, 0},
        {"state=succeeded, cursor",
         {.states = &st_done, .n_states = 1, .limit = 20, .before_num = -10},
         0},
        {"state=queued,succeeded", {.states = st_two, .n_states = 2, .limit = 20}, 0},
        {"state=queued,succeeded, cursor",
         {.states = st_two, .n_states = 2, .limit = 20, .before_num = -10},
         0},
        {"since=last-40", {.by_seq = true, .since_seq = -40, .limit = 20}, 0},
        {"since=last-40, state=queued,succeeded",
         {.by_seq = true, .since_seq = -40, .states = st_two, .n_states = 2, .limit = 20},
         0},
        {"since=last-40, name=bulk",
         {.by_seq = true, .since_seq = -40, .name = "bulk", .limit = 20},
         0},
    };
    int n = (int)(sizeof(c) / sizeof(c[0]));
    bulk_put(st, 1, 100);
    measure(st, c, n, true, 100, f->db);
    bulk_put(st, 101, 30000);
    measure(st, c, n, false, 30000, f->db);
    store_close(st);
    assert_int_equal(sqlite3_cancel_auto_extension((void (*)(void))trace_ext), 1);
}

static int count_job(void *arg, int64_t num, const char *id) {
    int64_t *last = arg;
    assert_true(num > *last); /* oldest first */
    assert_int_equal(id[0], 'j');
    *last = num;
    return 0;
}

/* A batch row and its jobs go in as one chain: one transaction, all or none. */
static void test_batch_chain(void **state) {
    struct fixture *f = *state;
    struct store_info info;
    struct store *st = open_store(f->dir, NULL);
    struct tjob jobs[3];
    struct tjob b;
    int counts[JOBD_STATE_COUNT];

    memset(&b.op, 0, sizeof(b.op));
    b.op.kind = STORE_PUT_BATCH;
    b.op.batch = (struct store_batch){10, "ba", "nightly", 2, 3, 1234};
    assert_int_equal(sem_init(&b.done, 0, 0), 0);
    b.op.done = tjob_done;
    b.op.arg = &b;
    struct store_op *prev = &b.op;
    for (int i = 0; i < 3; i++) {
        tjob_init(&jobs[i], 11 + i, i == 0 ? JOBD_SUCCEEDED : JOBD_QUEUED, 20 + i, NULL, "ba",
                  NULL);
        assert_int_equal(sem_init(&jobs[i].done, 0, 0), 0);
        jobs[i].op.done = tjob_done;
        jobs[i].op.arg = &jobs[i];
        prev->next = &jobs[i].op;
        prev = &jobs[i].op;
    }
    prev->next = NULL;
    uint64_t before = store_commit_count(st);
    store_enqueue_chain(st, &b.op);
    assert_int_equal(tjob_wait(&b), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tjob_wait(&jobs[i]), 0);
    assert_int_equal(store_commit_count(st) - before, 1);

    struct store_batch got;
    char id[JOBD_MAX_ID_BYTES], name[64];
    assert_int_equal(store_get_batch(st, 10, &got, id, name, sizeof name), 0);
    assert_string_equal(got.id, "ba");
    assert_string_equal(got.name, "nightly");
    assert_int_equal(got.concurrency, 2);
    assert_int_equal(got.total, 3);
    assert_int_equal(got.created_ms, 1234);
    assert_int_equal(store_get_batch(st, 99, &got, id, name, sizeof name), -ENOENT);
    assert_int_equal(store_batch_counts(st, "ba", counts), 0);
    assert_int_equal(counts[JOBD_SUCCEEDED], 1);
    assert_int_equal(counts[JOBD_QUEUED], 2);
    assert_int_equal(counts[JOBD_FAILED], 0);
    int64_t last = 0;
    assert_int_equal(store_batch_jobs(st, "ba", count_job, &last), 0);
    assert_int_equal(last, 13);
    store_close(st);

    /* The batch's number counts as used: ids never repeat. */
    st = open_store(f->dir, &info);
    assert_true(info.last_num >= 13);
    store_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_refuses_other_schema_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_get_replace_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_lookup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_order_limit_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_by_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_survive_delete_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_may_enqueue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_hook_enospc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_cancels_failing_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_do_not_wait_for_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_left_by_killed_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_active_and_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_stops_on_nonzero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_cost_does_not_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodes_put_load_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_schema_1, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
