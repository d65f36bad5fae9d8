/*
 * fuzz_checks.c: the properties checked by the fuzz targets (fuzz_checks.h).
 *
 * Each check is written as a model of what the code under test promises,
 * independent of how it does it: the spec codec must round-trip, the router
 * must agree with a naive matcher over the same table, an id has exactly one
 * spelling, and an output file must hold exactly the bytes that the cap
 * keeps. The checks print the first property that fails and return -1; they
 * never abort, so a unit test can run them as well as a fuzzer.
 */
#include "fuzz_checks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "exec_remote.h"
#include "http.h"
#include "jobd/spec.h"
#include "jobd/util.h"
#include "output.h"
#include "scheduler.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz check failed: " __VA_ARGS__);                                        \
        fputc('\n', stderr);                                                                       \
        rc = -1;                                                                                   \
        goto out;                                                                                  \
    } while (0)

/* Whether the NUL-terminated s is valid UTF-8 (what json_string accepts). */
static bool utf8_ok(const char *s) {
    json_t *v = json_string(s);
    json_decref(v);
    return v != NULL;
}

/* A compact rendering with sorted keys, for comparing documents; NULL if v is NULL. */
static char *render(const json_t *v) {
    return v != NULL ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
}

/* ---- spec ---------------------------------------------------------------- */

/* The invariants of an accepted spec that its rendering alone would not show. */
static int spec_invariants(const struct jobd_spec *s) {
    int rc = 0;

    if ((s->kind == JOBD_SPEC_COMMAND) != (s->argv != NULL) ||
        (s->kind == JOBD_SPEC_SHELL) != (s->shell != NULL) ||
        (s->kind == JOBD_SPEC_TASK) != (s->task != NULL))
        FAIL("spec: kind %d does not match which of argv, shell, task is set", (int)s->kind);
    if (s->argv != NULL && (s->argc == 0 || s->argv[s->argc] != NULL || s->argv[0][0] == '\0'))
        FAIL("spec: argv of %zu entries is not a non-empty NULL-terminated vector", s->argc);
    if (s->args != NULL && s->kind != JOBD_SPEC_TASK)
        FAIL("spec: args without a task");
    if ((s->env == NULL) != (s->envc == 0) || (s->env != NULL && s->env[s->envc] != NULL))
        FAIL("spec: env of %zu entries is not a NULL-terminated vector", s->envc);
    for (size_t i = 0; i < s->envc; i++) {
        if (strchr(s->env[i], '=') == NULL || s->env[i][0] == '=')
            FAIL("spec: env[%zu] is not KEY=VALUE", i);
    }
    if ((s->retry_exit_codes == NULL) != (s->n_retry_exit_codes == 0))
        FAIL("spec: retry_exit_codes and its count disagree");
    if (s->priority < -100 || s->priority > 100 || s->retries < 0 ||
        s->retries > JOBD_MAX_RETRIES || s->timeout < 0 || s->kill_grace < 0)
        FAIL("spec: a number is out of its range");
    if ((s->labels != NULL && json_object_size(s->labels) == 0) ||
        (s->node_selector != NULL && json_object_size(s->node_selector) == 0))
        FAIL("spec: an empty labels or node_selector object is stored instead of NULL");
out:
    return rc;
}

/* Parse one JSON value as a spec and check the round trip. */
static int spec_round_trip(const json_t *in) {
    struct jobd_spec s1, s2;
    struct jobd_error err;
    json_t *j1 = NULL, *j2 = NULL;
    char *r1 = NULL, *r2 = NULL;
    int rc = 0;

    jobd_spec_init(&s1);
    jobd_spec_init(&s2);
    memset(&err, 0, sizeof(err));
    int prc = jobd_spec_parse(in, &s1, &err);
    if (prc == -ENOMEM)
        goto out;
    if (prc != 0) {
        if (prc != -EINVAL)
            FAIL("spec: parse returned %d, not 0, -EINVAL or -ENOMEM", prc);
        if (memchr(err.field, '\0', sizeof(err.field)) == NULL ||
            memchr(err.message, '\0', sizeof(err.message)) == NULL)
            FAIL("spec: error not NUL-terminated");
        if (!utf8_ok(err.field) || !utf8_ok(err.message))
            FAIL("spec: error is not valid UTF-8: field '%s' message '%s'", err.field, err.message);
        if (err.message[0] == '\0')
            FAIL("spec: error with an empty message (field '%s')", err.field);
        goto out;
    }
    if ((rc = spec_invariants(&s1)) != 0)
        goto out;
    j1 = jobd_spec_to_json(&s1);
    r1 = render(j1);
    if (r1 == NULL)
        FAIL("spec: an accepted spec does not render");
    prc = jobd_spec_parse(j1, &s2, &err);
    if (prc != 0)
        FAIL("spec: its own rendering is rejected: %s: %s\n%s", err.field, err.message, r1);
    j2 = jobd_spec_to_json(&s2);
    r2 = render(j2);
    if (r2 == NULL)
        FAIL("spec: the re-parsed spec does not render");
    if (strcmp(r1, r2) != 0)
        FAIL("spec: renderings differ\nfirst:  %s\nsecond: %s", r1, r2);
out:
    free(r1);
    free(r2);
    json_decref(j1);
    json_decref(j2);
    jobd_spec_free(&s1);
    jobd_spec_free(&s2);
    return rc;
}

int fuzz_check_spec(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *in =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (in == NULL)
        return 0;
    int rc = spec_round_trip(in);
    json_decref(in);
    return rc;
}

/* ---- batch --------------------------------------------------------------- */

/* The limits of api_batches.c. */
#define BATCH_MAX_CONCURRENCY 100000
#define BATCH_MAX_NAME        JOBD_MAX_NAME_BYTES

/* Check the specs of `jobs` (an array) as create_first in api_batches.c does. */
static int batch_jobs(const json_t *jobs) {
    size_t n = json_array_size(jobs);
    struct jobd_spec *specs = NULL;
    size_t parsed = 0;
    int rc = 0;

    if (n == 0 || n > SCHED_MAX_BATCH)
        return 0;
    specs = calloc(n, sizeof(*specs));
    if (specs == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        struct jobd_error err;
        memset(&err, 0, sizeof(err));
        jobd_spec_init(&specs[i]);
        parsed = i + 1;
        int prc = jobd_spec_parse(json_array_get(jobs, i), &specs[i], &err);
        if (prc == 0)
            prc = api_check_spec(NULL, &specs[i], &err);
        if (prc == -ENOMEM)
            goto out;
        if (prc == 0)
            continue;
        if (prc != -EINVAL)
            FAIL("batch: jobs[%zu] rejected with %d, not -EINVAL", i, prc);
        char field[160];
        if (err.field[0])
            snprintf(field, sizeof(field), "jobs[%zu].%s", i, err.field);
        else
            snprintf(field, sizeof(field), "jobs[%zu]", i);
        if (!utf8_ok(field) || !utf8_ok(err.message))
            FAIL("batch: error is not valid UTF-8: field '%s' message '%s'", field, err.message);
        if (err.message[0] == '\0')
            FAIL("batch: error with an empty message (field '%s')", field);
        goto out;
    }
    /* Every accepted spec must also round-trip, as the store renders it. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *j = jobd_spec_to_json(&specs[i]);
        if (j == NULL)
            FAIL("batch: jobs[%zu] was accepted but does not render", i);
        rc = spec_round_trip(j);
        json_decref(j);
    }
out:
    for (size_t k = 0; k < parsed; k++)
        jobd_spec_free(&specs[k]);
    free(specs);
    return rc;
}

int fuzz_check_batch(const uint8_t *data, size_t size) {
    json_error_t jerr;
    json_t *in =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    const char *key;
    json_t *v;
    int rc = 0;

    if (in == NULL)
        return 0;
    if (json_is_array(in)) {
        rc = batch_jobs(in);
        goto out;
    }
    if (!json_is_object(in))
        goto out;
    json_object_foreach(in, key, v) {
        if (strcmp(key, "jobs") != 0 && strcmp(key, "concurrency") != 0 && strcmp(key, "name") != 0)
            goto out;
    }
    v = json_object_get(in, "concurrency");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_integer(v) || json_integer_value(v) < 1 ||
         json_integer_value(v) > BATCH_MAX_CONCURRENCY))
        goto out;
    v = json_object_get(in, "name");
    if (v != NULL && !json_is_null(v) &&
        (!json_is_string(v) || json_string_length(v) == 0 ||
         json_string_length(v) > BATCH_MAX_NAME ||
         strlen(json_string_value(v)) != json_string_length(v)))
        goto out;
    v = json_object_get(in, "jobs");
    if (json_is_array(v))
        rc = batch_jobs(v);
out:
    json_decref(in);
    return rc;
}

/* ---- route --------------------------------------------------------------- */

/* Whether one path segment of a request matches one of a pattern. */
static bool seg_match(const char *pat, size_t plen, const char *seg, size_t slen) {
    if (plen == 2 && memcmp(pat, "{}", 2) == 0)
        return slen > 0;
    return plen == slen && memcmp(pat, seg, slen) == 0;
}

/*
 * A naive matcher: the path and the pattern, both "/a/b/c", have as many
 * segments and each pair matches. The path must not have empty segments
 * (no "//", no trailing "/").
 */
static bool naive_match(const char *pattern, const char *path) {
    if (path[0] != '/' || pattern[0] != '/')
        return false;
    const char *p = pattern + 1, *s = path + 1;
    for (;;) {
        size_t plen = strcspn(p, "/"), slen = strcspn(s, "/");
        if (!seg_match(p, plen, s, slen))
            return false;
        p += plen;
        s += slen;
        if (*p == '\0' || *s == '\0')
            return *p == '\0' && *s == '\0';
        p++;
        s++;
    }
}

/* An id spelled by jobd_format_id/sched_format_batch_id must be the only spelling of its number. */
static int id_spelling(const char *seg) {
    char buf[JOBD_MAX_ID_BYTES];
    int rc = 0;

    int64_t num = jobd_parse_id(seg);
    if (num == 0 || num < -1)
        FAIL("route: jobd_parse_id(\"%s\") = %lld", seg, (long long)num);
    if (num > 0) {
        jobd_format_id(num, buf, sizeof(buf));
        if (strcmp(buf, seg) != 0)
            FAIL("route: jobd_parse_id(\"%s\") = %lld, which is spelled \"%s\"", seg,
                 (long long)num, buf);
    }
    num = sched_parse_batch_id(seg);
    if (num == 0 || num < -1)
        FAIL("route: sched_parse_batch_id(\"%s\") = %lld", seg, (long long)num);
    if (num > 0) {
        sched_format_batch_id(num, buf, sizeof(buf));
        if (strcmp(buf, seg) != 0)
            FAIL("route: sched_parse_batch_id(\"%s\") = %lld, which is spelled \"%s\"", seg,
                 (long long)num, buf);
    }
    enum jobd_state st;
    if (jobd_state_parse(seg, &st) == 0 &&
        (jobd_state_name(st) == NULL || strcmp(jobd_state_name(st), seg) != 0))
        FAIL("route: state \"%s\" parses to %d", seg, (int)st);
out:
    return rc;
}

/* Check the spelling of every piece of `s` between separators in `seps`. */
static int pieces_spelling(const char *s, const char *seps) {
    char *copy = strdup(s);
    char *save = NULL;
    int rc = 0;

    if (copy == NULL)
        return 0;
    for (char *t = strtok_r(copy, seps, &save); t != NULL && rc == 0;
         t = strtok_r(NULL, seps, &save))
        rc = id_spelling(t);
    free(copy);
    return rc;
}

int fuzz_check_route(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    struct http_match m;
    bool have_match = false;
    int rc = 0;

    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0'; /* a NUL in the input ends it, as it would end MHD's decoded URL */
    char *method = buf;
    char *path = strchr(buf, ' ');
    if (path == NULL)
        path = buf + strlen(buf);
    else
        *path++ = '\0';
    char *query = strchr(path, '?');
    if (query != NULL)
        *query++ = '\0';

    if (http_route_find(api_routes, api_n_routes, method, path, &m) != 0)
        goto out; /* -ENOMEM */
    have_match = true;

    /* The model: the first route of the method whose pattern matches, and every matching method. */
    const struct http_route *want = NULL;
    char allow[256] = "";
    bool known = false;
    for (size_t i = 0; i < api_n_routes; i++) {
        if (!naive_match(api_routes[i].pattern, path))
            continue;
        known = true;
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "",
                 api_routes[i].method);
        if (want == NULL && strcmp(api_routes[i].method, method) == 0)
            want = &api_routes[i];
    }
    if (m.route != want)
        FAIL("route: %s %s routed to %s %s, expected %s %s", method, path,
             m.route ? m.route->method : "-", m.route ? m.route->pattern : "-",
             want ? want->method : "-", want ? want->pattern : "-");
    if (m.path_known != known)
        FAIL("route: %s: path_known %d, expected %d", path, m.path_known, known);
    if (strcmp(m.allow, allow) != 0)
        FAIL("route: %s: allow \"%s\", expected \"%s\"", path, m.allow, allow);

    /* The parameters, put back into the pattern, must give the path again. */
    if (m.route != NULL) {
        char rebuilt[PATH_MAX * 2] = "";
        size_t used = 0;
        int np = 0;
        for (const char *p = m.route->pattern; *p != '\0';) {
            if (strncmp(p, "{}", 2) == 0) {
                if (np >= m.n_params || m.params[np] == NULL)
                    FAIL("route: %s: %d parameters for %s", path, m.n_params, m.route->pattern);
                used +=
                    (size_t)snprintf(rebuilt + used, sizeof(rebuilt) - used, "%s", m.params[np++]);
                p += 2;
            } else if (used + 1 < sizeof(rebuilt)) {
                rebuilt[used++] = *p++;
                rebuilt[used] = '\0';
            } else {
                p++;
            }
            if (used >= sizeof(rebuilt))
                goto out; /* too long to compare; the router handled it */
        }
        if (np != m.n_params)
            FAIL("route: %s: %d parameters, pattern %s has %d", path, m.n_params, m.route->pattern,
                 np);
        if (strcmp(rebuilt, path) != 0)
            FAIL("route: parameters of %s rebuild %s", path, rebuilt);
    } else if (m.n_params != 0) {
        FAIL("route: %s: %d parameters without a route", path, m.n_params);
    }

    if ((rc = pieces_spelling(path, "/")) != 0)
        goto out;
    if (query != NULL)
        rc = pieces_spelling(query, "&=,");
out:
    if (have_match)
        http_match_free(&m);
    free(buf);
    return rc;
}

/* ---- output -------------------------------------------------------------- */

#define OUT_ID         "j1"
#define OUT_MAX_TOTAL  (256 * 1024) /* bytes appended in one program, at most */
#define OUT_READ_CHUNK 65535        /* bytes of one read, at most */

/* A reader of the program's bytes; reads past the end give zeros. */
struct prog {
    const uint8_t *p;
    size_t n, pos;
};

static unsigned prog_u8(struct prog *g) {
    return g->pos < g->n ? g->p[g->pos++] : 0;
}

static unsigned prog_u16(struct prog *g) {
    unsigned lo = prog_u8(g);
    return lo | prog_u8(g) << 8;
}

static uint32_t prog_u32(struct prog *g) {
    uint32_t lo = prog_u16(g);
    return lo | (uint32_t)prog_u16(g) << 16;
}

/*
 * Every stream is the same OUT_MAX_TOTAL bytes, each a hash of its
 * position, so that a byte at the wrong offset shows. Computed once.
 */
static const uint8_t *stream_bytes(void) {
    static uint8_t *bytes;
    if (bytes == NULL && (bytes = malloc(OUT_MAX_TOTAL)) != NULL) {
        for (uint64_t i = 0; i < OUT_MAX_TOTAL; i++) {
            uint64_t x = i * 0x9E3779B97F4A7C15ull;
            x ^= x >> 29;
            x *= 0xBF58476D1CE4E5B9ull;
            x ^= x >> 32;
            bytes[i] = (uint8_t)x;
        }
    }
    return bytes;
}

/* What the final file holds: the stream, or its head and tail once it passed the cap. */
struct out_model {
    const uint8_t *stream;
    int64_t cap, head, tail; /* cap <= 0: none */
    int64_t total;
};

static int64_t model_size(const struct out_model *md) {
    return md->cap > 0 && md->total > md->cap ? md->cap : md->total;
}

/* Which stream byte ends up at offset off of the final file. */
static int64_t stream_index(const struct out_model *md, int64_t off) {
    if (md->cap <= 0 || md->total <= md->cap || off < md->head)
        return off;
    return md->total - md->tail + (off - md->head);
}

/*
 * Read [off, off + len) with output_read and compare with the model, where
 * `size` is the size the file has and `final` says whether to compare with
 * the final file (after finish) or the stream's prefix (while running).
 */
static int check_read(const char *dir, enum output_stream st, const struct out_model *md,
                      int64_t size, bool final, int64_t off, size_t len) {
    static uint8_t buf[OUT_READ_CHUNK];
    int rc = 0;
    if (len > sizeof(buf))
        len = sizeof(buf);
    ssize_t got = output_read(dir, OUT_ID, st, off, buf, len);
    int64_t want = off >= size ? 0 : size - off < (int64_t)len ? size - off : (int64_t)len;
    if (got < 0 || (final && got != want) || (!final && got < want))
        FAIL("output: read %zu at %lld of %lld bytes gave %zd, expected %lld", len, (long long)off,
             (long long)size, got, (long long)want);
    for (int64_t k = 0; k < want;) {
        /* Compare runs of bytes that are contiguous in the stream. */
        int64_t run = want - k;
        int64_t o = off + k;
        if (final && md->cap > 0 && md->total > md->cap && o < md->head && o + run > md->head)
            run = md->head - o;
        const uint8_t *e = &md->stream[final ? stream_index(md, o) : o];
        if (memcmp(buf + k, e, (size_t)run) != 0) {
            while (buf[k] == *e) {
                k++;
                e++;
            }
            FAIL("output: byte %lld of the file is %u, expected %u (total %lld, cap %lld)",
                 (long long)(off + k), buf[k], *e, (long long)md->total, (long long)md->cap);
        }
        k += run;
    }
out:
    return rc;
}

/* Remove whatever the program left in dir; fail if there was more than the stream's files. */
static int empty_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        (void)unlink(path);
        fprintf(stderr, "fuzz check failed: output: %s was left behind\n", e->d_name);
        rc = -1;
    }
    closedir(d);
    return rc;
}

/*
 * The program: a flags byte, a 32-bit cap, then operations (one byte each,
 * some with operands) until 0xff or the end; after 0xff, pairs of 24-bit
 * offset and 16-bit length to read from the final file.
 *
 * Flags: bit 0 stderr, bit 1 no inline, bit 2 set_fresh, bit 3 a previous
 * attempt left a file, bits 4-5 the cap's kind (none, < 512, < 64 KiB,
 * negative). Operations by their low two bits: 0 append an 8-bit length
 * (16-bit with bit 2); 1 append op >> 2 bytes; 2 read a 16-bit length at a
 * 16-bit offset of the readable prefix; 3 append up to a boundary (the
 * inline limit, the cap, the head, the cap plus the tail; or one past it).
 */
int fuzz_check_output(const char *dir, const uint8_t *data, size_t size) {
    struct prog g = {data, size, 0};
    struct out_model md = {0};
    struct output_writer *w = NULL;
    int64_t seen = 0; /* the most bytes readers were told they may read */
    int rc = 0;

    md.stream = stream_bytes();
    if (md.stream == NULL)
        return 0;
    unsigned flags = prog_u8(&g);
    uint32_t capv = prog_u32(&g);
    enum output_stream st = (flags & 1) ? OUTPUT_STDERR : OUTPUT_STDOUT;
    bool no_inline = flags & 2, stale = flags & 8, fresh = (flags & 4) && !stale;
    switch ((flags >> 4) & 3) {
    case 0:
        md.cap = 0;
        break;
    case 1:
        md.cap = capv % 512;
        break;
    case 2:
        md.cap = capv % 65536;
        break;
    default:
        md.cap = -(int64_t)capv - 1;
    }
    if (md.cap > 0) {
        md.head = md.cap / 2;
        md.tail = md.cap - md.head;
    }
    /* Inline bytes must fit in the head, where they stay (output.c, inline_fits). */
    bool inline_allowed = !no_inline && (md.cap <= 0 || md.cap / 2 >= OUTPUT_INLINE_MAX);

    if (stale) {
        char path[PATH_MAX];
        if (output_path(dir, OUT_ID, st, path, sizeof(path)) != 0)
            FAIL("output: path too long");
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "stale bytes of an earlier attempt", 33) != 33)
            FAIL("output: cannot write %s: %s", path, strerror(errno));
        close(fd);
    }
    w = output_writer_open(dir, OUT_ID, st, md.cap);
    if (w == NULL)
        goto out;
    if (no_inline)
        output_writer_set_inline(w, false);
    if (fresh)
        output_writer_set_fresh(w);

    while (g.pos < g.n) {
        unsigned op = prog_u8(&g);
        if (op == 0xff)
            break;
        int64_t len;
        if ((op & 3) == 0) {
            len = (op & 4) ? prog_u16(&g) : prog_u8(&g);
        } else if ((op & 3) == 1) {
            len = op >> 2;
        } else if ((op & 3) == 3) {
            int64_t marks[] = {OUTPUT_INLINE_MAX, md.cap, md.head, md.cap + md.tail};
            int64_t mark = marks[(op >> 2) & 3] + ((op >> 4) & 1);
            len = mark > md.total ? mark - md.total : 1;
        } else {
            /* Read the readable prefix while the writer runs. */
            int64_t off = prog_u16(&g);
            size_t rlen = prog_u16(&g);
            size_t ilen;
            const uint8_t *in = output_writer_inline(w, &ilen);
            int64_t readable = output_writer_readable(w);
            if (readable < 0 || readable > md.total)
                FAIL("output: readable %lld of %lld", (long long)readable, (long long)md.total);
            if (in != NULL) {
                if (!inline_allowed || (int64_t)ilen != md.total || readable != md.total ||
                    memcmp(in, md.stream, ilen) != 0)
                    FAIL("output: inline %zu bytes of %lld differ (allowed %d)", ilen,
                         (long long)md.total, inline_allowed);
            } else if (md.total > 0) {
                if (md.cap > 0 && readable > md.head)
                    FAIL("output: readable %lld past the head %lld of a running capped stream",
                         (long long)readable, (long long)md.head);
                if (off > readable)
                    off = readable;
                if (check_read(dir, st, &md, readable, false, off, rlen) != 0)
                    FAIL("output: while running");
            }
            continue;
        }
        if (len <= 0 || md.total + len > OUT_MAX_TOTAL)
            continue;
        int arc = output_writer_append(w, md.stream + md.total, (size_t)len);
        if (arc != 0)
            FAIL("output: append of %lld at %lld failed: %s", (long long)len, (long long)md.total,
                 strerror(-arc));
        md.total += len;
        if (output_writer_total(w) != md.total)
            FAIL("output: total %lld, expected %lld", (long long)output_writer_total(w),
                 (long long)md.total);
        /* What readers may read only grows: they never have to take bytes back. */
        int64_t readable = output_writer_readable(w);
        if (readable < seen)
            FAIL("output: readable went back from %lld to %lld (total %lld, cap %lld)",
                 (long long)seen, (long long)readable, (long long)md.total, (long long)md.cap);
        seen = readable;
    }

    int frc = output_writer_finish(w);
    if (frc != 0)
        FAIL("output: finish failed: %s", strerror(-frc));
    bool cut = md.cap > 0 && md.total > md.cap;
    if (output_writer_truncated(w) != cut)
        FAIL("output: truncated %d, expected %d (total %lld, cap %lld)", output_writer_truncated(w),
             cut, (long long)md.total, (long long)md.cap);
    /* Every byte readers were shown is where they saw it in the final file. */
    if (cut && seen > md.head)
        FAIL("output: readers were shown %lld bytes, but the final file keeps only %lld of "
             "them (cap %lld, total %lld)",
             (long long)seen, (long long)md.head, (long long)md.cap, (long long)md.total);
    size_t ilen;
    const uint8_t *in = output_writer_inline(w, &ilen);
    int64_t fsize = output_size(dir, OUT_ID, st);
    int64_t want_size = model_size(&md);
    bool want_inline = inline_allowed && md.total > 0 && md.total <= OUTPUT_INLINE_MAX;
    if ((in != NULL) != want_inline)
        FAIL("output: inline %s for %lld bytes (allowed %d)", in ? "kept" : "not kept",
             (long long)md.total, inline_allowed);
    if (in != NULL) {
        if ((int64_t)ilen != md.total || memcmp(in, md.stream, ilen) != 0)
            FAIL("output: inline %zu bytes of %lld differ", ilen, (long long)md.total);
        if (fsize != 0)
            FAIL("output: an inline stream left a file of %lld bytes", (long long)fsize);
        want_size = 0; /* no file: readers get nothing from output_read */
    } else {
        if (fsize != want_size)
            FAIL("output: file of %lld bytes, expected %lld (total %lld, cap %lld)",
                 (long long)fsize, (long long)want_size, (long long)md.total, (long long)md.cap);
        if (md.total > 0 && output_writer_readable(w) != want_size)
            FAIL("output: readable %lld after finish, expected %lld",
                 (long long)output_writer_readable(w), (long long)want_size);
    }

    /* The whole file, then a few edges, then the program's own reads. */
    for (int64_t off = 0; off < want_size; off += OUT_READ_CHUNK) {
        if (check_read(dir, st, &md, want_size, true, off, OUT_READ_CHUNK) != 0)
            FAIL("output: after finish");
    }
    int64_t edges[] = {0, md.head - 1, md.head, want_size - 1, want_size, want_size + 7};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++) {
        if (edges[i] >= 0 && check_read(dir, st, &md, want_size, true, edges[i], 3) != 0)
            FAIL("output: at an edge");
    }
    char one;
    if (output_read(dir, OUT_ID, st, -1, &one, 1) != -EINVAL)
        FAIL("output: a negative offset is not -EINVAL");
    while (g.pos < g.n) {
        uint32_t off = prog_u16(&g);
        off |= (uint32_t)prog_u8(&g) << 16;
        size_t rlen = prog_u16(&g);
        if (check_read(dir, st, &md, want_size, true, off, rlen) != 0)
            FAIL("output: after finish");
    }
out:
    output_writer_close(w);
    output_remove(dir, OUT_ID);
    if (empty_dir(dir) != 0)
        rc = -1;
    return rc;
}

/* ---- node answers ------------------------------------------------------- */

#define NODE_COORD "n00000000000000aa"

/* Whether s (cap bytes of storage) is NUL-terminated within cap. */
static bool bounded(const char *s, size_t cap) {
    return memchr(s, '\0', cap) != NULL;
}

/* The properties of one accepted node document. */
static int node_doc_ok(const struct exec_remote_doc *d) {
    int rc = 0;
    const struct exec_result *r = &d->res;
    json_t *v = NULL;

    if (!bounded(d->remote_id, sizeof d->remote_id) || d->remote_id[0] == '\0')
        FAIL("node: empty or unterminated remote id");
    for (const char *p = d->remote_id; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
            FAIL("node: remote id \"%s\" is not safe in a URL path", d->remote_id);
    if (strcmp(d->remote_id, ".") == 0 || strcmp(d->remote_id, "..") == 0)
        FAIL("node: remote id \"%s\" is a path step", d->remote_id);
    if ((int)d->state < 0 || d->state >= JOBD_STATE_COUNT)
        FAIL("node: state %d out of range", (int)d->state);
    if (d->seq < 0 || d->attempt < 0)
        FAIL("node: negative seq %lld or attempt %d", (long long)d->seq, d->attempt);
    if (!bounded(d->job_id, sizeof d->job_id) || !utf8_ok(d->job_id))
        FAIL("node: job label unterminated or not UTF-8");
    if (!bounded(r->error, sizeof r->error) || !utf8_ok(r->error))
        FAIL("node: error unterminated or not UTF-8");
    if (r->result_json != d->result_json)
        FAIL("node: res.result_json does not point at the doc's result");
    if (!jobd_state_is_final(d->state)) {
        if (d->result_json)
            FAIL("node: a result for a job that has not ended");
        goto out;
    }
    if (d->result_json) {
        v = json_loads(d->result_json, JSON_DECODE_ANY, NULL);
        if (!v || json_is_null(v))
            FAIL("node: result \"%.40s\" is not a JSON value", d->result_json);
    }
    if (r->exit_code < -1 || r->exit_code > 255 || r->signal < 0 || r->signal > 64)
        FAIL("node: exit code %d or signal %d out of range", r->exit_code, r->signal);
    if (r->started_ms < 0 || r->finished_ms < 0 || r->out_total[0] < 0 || r->out_total[1] < 0)
        FAIL("node: negative time or size");
    switch (d->state) {
    case JOBD_SUCCEEDED:
        if (r->end != EXEC_EXITED || r->exit_code != 0 || r->signal != 0)
            FAIL("node: succeeded is not an exit with code 0");
        break;
    case JOBD_FAILED:
        if (r->end == EXEC_EXITED && r->exit_code <= 0 && r->signal == 0)
            FAIL("node: failed reported as a clean exit");
        if (r->end == EXEC_START_FAILED && (r->error[0] == '\0' || r->exit_code != -1))
            FAIL("node: a start failure without a reason");
        if (r->end != EXEC_EXITED && r->end != EXEC_START_FAILED)
            FAIL("node: failed reported as %d", (int)r->end);
        break;
    case JOBD_TIMED_OUT:
        if (r->end != EXEC_TIMED_OUT)
            FAIL("node: timed_out reported as %d", (int)r->end);
        break;
    default:
        if (r->end != EXEC_CANCELLED)
            FAIL("node: cancelled reported as %d", (int)r->end);
        break;
    }
out:
    json_decref(v);
    return rc;
}

struct node_walk {
    int n, bad;
};

static int node_walk_fn(void *arg, const struct exec_remote_doc *d) {
    struct node_walk *w = arg;
    w->n++;
    if (node_doc_ok(d) != 0)
        w->bad++;
    return 0;
}

int fuzz_check_node(const uint8_t *data, size_t size) {
    struct node_walk w = {0, 0};
    struct exec_remote_doc d;
    int64_t seq = -7;
    json_t *root = NULL, *jobs, *el, *labels;
    char *spec = NULL;
    json_t *sj = NULL;
    int lrc, accepted = 0, rc = 0;
    size_t i;

    lrc = exec_remote_parse_list((const char *)data, size, NODE_COORD, node_walk_fn, &w, &seq);
    if (lrc != 0 && lrc != -EINVAL)
        FAIL("node: parse_list returned %d", lrc);
    if (lrc == -EINVAL && (seq != -7 || w.n != 0))
        FAIL("node: a refused list set seq or yielded documents");
    if (lrc == 0 && seq < 0)
        FAIL("node: a list with seq %lld", (long long)seq);
    if (w.bad)
        goto out_fail;

    root = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!root)
        goto out;
    if (exec_remote_parse_doc(root, NODE_COORD, &d) == 0 && node_doc_ok(&d) != 0) {
        exec_remote_doc_free(&d);
        goto out_fail;
    }
    exec_remote_doc_free(&d);
    jobs = json_object_get(root, "jobs");
    json_array_foreach(jobs, i, el) {
        int r = exec_remote_parse_doc(el, NODE_COORD, &d);
        exec_remote_doc_free(&d);
        if (r == 0)
            accepted++;
        else if (r != -EINVAL)
            FAIL("node: parse_doc returned %d", r);
    }
    if (lrc == 0 && accepted != w.n)
        FAIL("node: the list yielded %d documents, parse_doc accepts %d", w.n, accepted);

    /* The spec rewrite, on any object. */
    if (json_is_object(root)) {
        spec = exec_remote_node_spec(root, NODE_COORD, "j1z", 12);
        sj = spec ? json_loads(spec, JSON_REJECT_DUPLICATES, NULL) : NULL;
        if (!sj)
            FAIL("node: node_spec gave no JSON object");
        labels = json_object_get(sj, "labels");
        if (!json_is_object(labels) ||
            strcmp(json_string_value(json_object_get(labels, "jobd.coordinator")) ?: "",
                   NODE_COORD) != 0 ||
            strcmp(json_string_value(json_object_get(labels, "jobd.job")) ?: "", "j1z") != 0 ||
            strcmp(json_string_value(json_object_get(labels, "jobd.attempt")) ?: "", "12") != 0)
            FAIL("node: node_spec labels are wrong");
        if (json_object_get(sj, "node_selector") || json_object_get(sj, "retries") ||
            json_object_get(sj, "retry_delay") || json_object_get(sj, "retry_exit_codes"))
            FAIL("node: node_spec kept a coordinator-only field");
        el = json_object_get(sj, "executor");
        if (json_is_string(el) && strcmp(json_string_value(el), "remote") == 0)
            FAIL("node: node_spec kept executor remote");
    }
out:
    free(spec);
    json_decref(sj);
    json_decref(root);
    return rc;
out_fail:
    rc = -1;
    goto out;
}
