/*
 * format.c: jobctl's human output (format.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"
#include "jobd/job.h"
#include "jobd/spec.h"

const char *const list_headers[LIST_COLS] = {"ID",       "NAME", "STATE", "EXIT",
                                             "EXECUTOR", "NODE", "AGE",   "DURATION"};

void fmt_duration(int64_t ms, char *buf, size_t len) {
    long long s = ms / 1000;

    if (ms < 0)
        snprintf(buf, len, "-");
    else if (ms < 1000)
        snprintf(buf, len, "%lldms", (long long)ms);
    else if (ms < 10000)
        snprintf(buf, len, "%lld.%llds", s, (long long)(ms % 1000) / 100);
    else if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%02llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

void fmt_age(int64_t ms, char *buf, size_t len) {
    long long s = ms > 0 ? ms / 1000 : 0;

    if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm", s / 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh", s / 3600);
    else
        snprintf(buf, len, "%lldd", s / 86400);
}

int64_t parse_time_ms(const char *s) {
    struct tm tm;
    int y, mo, d, h, mi, sec, ms = 0, n = 0;
    time_t t;

    if (!s)
        return -1;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return -1;
    s += n;
    if (*s == '.') {
        int digits = 0;
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*s - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(s, "Z") != 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return (int64_t)t * 1000 + ms;
}

void fmt_shell_word(const char *s, char *buf, size_t len) {
    size_t n = strlen(buf);
    bool plain = *s != '\0';

    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%",
                       *p) != NULL;
    if (plain) {
        snprintf(buf + n, len > n ? len - n : 0, "%s", s);
        return;
    }
    /* 'it'\''s': single quotes, each quote closed, escaped and reopened. */
    if (n + 1 < len)
        buf[n++] = '\'';
    for (; *s && n + 1 < len; s++) {
        if (*s == '\'') {
            if (n + 4 >= len)
                break;
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *s;
        }
    }
    if (n + 1 < len)
        buf[n++] = '\'';
    buf[n < len ? n : len - 1] = '\0';
}

/* ---- tables ---- */

struct table {
    size_t ncols, nrows, cap;
    char **cells; /* (nrows + 1) * ncols, the headers first */
};

struct table *table_new(size_t ncols, const char *const *headers) {
    struct table *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->ncols = ncols;
    if (table_add(t, headers) < 0) {
        free(t);
        return NULL;
    }
    t->nrows = 0; /* the headers are row -1, in effect */
    return t;
}

int table_add(struct table *t, const char *const *cells) {
    size_t base;
    size_t used = t->cells ? (t->nrows + 1) * t->ncols : 0;

    if (used + t->ncols > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : t->ncols * 16;
        char **nc;
        while (cap < used + t->ncols)
            cap *= 2;
        nc = realloc(t->cells, cap * sizeof *nc);
        if (!nc)
            return -ENOMEM;
        t->cells = nc;
        t->cap = cap;
    }
    base = used;
    for (size_t i = 0; i < t->ncols; i++) {
        t->cells[base + i] = strdup(cells[i] ? cells[i] : "-");
        if (!t->cells[base + i]) {
            while (i-- > 0)
                free(t->cells[base + i]);
            return -ENOMEM;
        }
    }
    if (used)
        t->nrows++;
    return 0;
}

/* Width in characters of UTF-8 text (continuation bytes do not count). */
static size_t text_width(const char *s) {
    size_t w = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

void table_print(const struct table *t, FILE *out) {
    size_t *w = calloc(t->ncols, sizeof *w);

    if (!w)
        return;
    for (size_t r = 0; r <= t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t cw = text_width(t->cells[r * t->ncols + c]);
            if (cw > w[c])
                w[c] = cw;
        }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            fputs(cell, out);
            if (c + 1 < t->ncols)
                fprintf(out, "%*s", (int)(w[c] - text_width(cell) + 2), "");
        }
        fputc('\n', out);
    }
    free(w);
}

void table_free(struct table *t) {
    if (!t)
        return;
    for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

/* ---- jobs ---- */

static const char *str(const json_t *job, const char *k) {
    return json_string_value(json_object_get(job, k));
}

/* The run time of a job: finished - started, or now - started while it runs; -1 if never. */
static int64_t run_ms(const json_t *job, int64_t now_ms) {
    int64_t st = parse_time_ms(str(job, "started_at"));
    int64_t fin = parse_time_ms(str(job, "finished_at"));

    if (st < 0)
        return -1;
    if (fin < 0)
        return now_ms > st ? now_ms - st : 0;
    return fin > st ? fin - st : 0;
}

static void fmt_exit(const json_t *job, char *buf, size_t len) {
    json_t *code = json_object_get(job, "exit_code");
    const char *sig = str(job, "signal");

    if (sig)
        snprintf(buf, len, "%s", sig);
    else if (json_is_integer(code))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(code));
    else
        snprintf(buf, len, "-");
}

void fmt_list_row(const json_t *job, int64_t now_ms, char cells[LIST_COLS][128]) {
    int64_t created = parse_time_ms(str(job, "created_at"));
    const char *s;

    snprintf(cells[0], 128, "%s", (s = str(job, "id")) ? s : "-");
    snprintf(cells[1], 128, "%s", (s = str(job, "name")) ? s : "-");
    snprintf(cells[2], 128, "%s", (s = str(job, "state")) ? s : "-");
    fmt_exit(job, cells[3], 128);
    snprintf(cells[4], 128, "%s", (s = str(job, "executor")) ? s : "-");
    snprintf(cells[5], 128, "%s", (s = str(job, "node")) ? s : "-");
    if (created >= 0)
        fmt_age(now_ms - created, cells[6], 128);
    else
        snprintf(cells[6], 128, "-");
    fmt_duration(run_ms(job, now_ms), cells[7], 128);
}

static void line(FILE *out, const char *key, const char *val) {
    if (val && *val)
        fprintf(out, "%-10s %s\n", key, val);
}

static void time_line(FILE *out, const char *key, const json_t *job, const char *field,
                      int64_t now_ms) {
    const char *s = str(job, field);
    int64_t t = parse_time_ms(s);
    char age[32], buf[96];

    if (!s)
        return;
    if (t < 0) {
        line(out, key, s);
        return;
    }
    fmt_age(now_ms - t, age, sizeof age);
    snprintf(buf, sizeof buf, "%s (%s ago)", s, age);
    line(out, key, buf);
}

static void map_line(FILE *out, const char *key, const json_t *obj) {
    const char *k;
    json_t *v;
    char buf[1024] = "";
    size_t n = 0;

    if (!json_is_object(obj) || json_object_size(obj) == 0)
        return;
    json_object_foreach((json_t *)obj, k, v) {
        n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0, "%s%s=%s", n ? " " : "",
                              k, json_string_value(v) ? json_string_value(v) : "?");
        if (n >= sizeof buf)
            break;
    }
    line(out, key, buf);
}

void fmt_job(FILE *out, const json_t *job, int64_t now_ms) {
    char buf[2048] = "", tmp[64];
    json_t *cmd = json_object_get(job, "command"), *v, *lim;
    size_t i;

    line(out, "ID:", str(job, "id"));
    line(out, "Name:", str(job, "name"));
    line(out, "State:", str(job, "state"));
    line(out, "Waiting:", str(job, "waiting"));
    fmt_exit(job, tmp, sizeof tmp);
    if (strcmp(tmp, "-") != 0)
        line(out, "Exit:", tmp);
    line(out, "Error:", str(job, "error"));
    if (json_is_array(cmd)) {
        json_array_foreach(cmd, i, v) {
            if (i && strlen(buf) + 1 < sizeof buf)
                strcat(buf, " ");
            fmt_shell_word(json_string_value(v) ? json_string_value(v) : "", buf, sizeof buf);
        }
        line(out, "Command:", buf);
    }
    line(out, "Shell:", str(job, "shell"));
    line(out, "Task:", str(job, "task"));
    v = json_object_get(job, "args");
    if (str(job, "task") && v && !json_is_null(v)) {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        if (text) {
            /* At most 200 bytes, cut before a UTF-8 continuation byte. */
            size_t cut = strlen(text);
            if (cut > 200) {
                cut = 200;
                while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
                    cut--;
                snprintf(buf, sizeof buf, "%.*s...", (int)cut, text);
            } else {
                snprintf(buf, sizeof buf, "%s", text);
            }
            line(out, "Args:", buf);
            free(text);
        }
    }
    line(out, "Executor:", str(job, "executor"));
    line(out, "Node:", str(job, "node"));
    line(out, "Batch:", str(job, "batch"));
    line(out, "Cwd:", str(job, "cwd"));
    map_line(out, "Env:", json_object_get(job, "env"));
    map_line(out, "Labels:", json_object_get(job, "labels"));
    map_line(out, "Selector:", json_object_get(job, "node_selector"));
    time_line(out, "Created:", job, "created_at", now_ms);
    time_line(out, "Started:", job, "started_at", now_ms);
    time_line(out, "Finished:", job, "finished_at", now_ms);
    if (run_ms(job, now_ms) >= 0) {
        fmt_duration(run_ms(job, now_ms), tmp, sizeof tmp);
        line(out, "Duration:", tmp);
    }
    v = json_object_get(job, "timeout");
    if (json_is_number(v)) {
        fmt_duration((int64_t)(json_number_value(v) * 1000), tmp, sizeof tmp);
        line(out, "Timeout:", tmp);
    }
    v = json_object_get(job, "pid");
    if (json_is_integer(v)) {
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        line(out, "Pid:", tmp);
    }
    snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(job, "attempts")),
             json_integer_value(json_object_get(job, "retries")) + 1);
    line(out, "Attempts:", tmp);
    snprintf(buf, sizeof buf,
             "stdout %" JSON_INTEGER_FORMAT " bytes%s, stderr %" JSON_INTEGER_FORMAT " bytes%s",
             json_integer_value(json_object_get(job, "stdout_bytes")),
             json_is_true(json_object_get(job, "stdout_truncated")) ? " (truncated)" : "",
             json_integer_value(json_object_get(job, "stderr_bytes")),
             json_is_true(json_object_get(job, "stderr_truncated")) ? " (truncated)" : "");
    line(out, "Output:", buf);
    lim = json_object_get(job, "limits");
    if (json_is_object(lim)) {
        const char *k;
        size_t n = 0;
        buf[0] = '\0';
        json_object_foreach(lim, k, v) {
            if (json_is_integer(v))
                n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0,
                                      "%s%s=%" JSON_INTEGER_FORMAT, n ? " " : "", k,
                                      json_integer_value(v));
        }
        line(out, "Limits:", buf);
    }
}

/* ---- nodes ---- */

const char *const node_headers[NODE_COLS] = {"ID",     "STATE",    "URL", "RUNNING/CAPACITY",
                                             "LABELS", "LAST SEEN"};

/* "k=v,k2=v2" of a labels object (borrowed) into buf, "..." at the end when cut; "-" when none. */
static void fmt_labels(const json_t *labels, char *buf, size_t len) {
    const char *k;
    json_t *v;
    size_t n = 0;

    buf[0] = '\0';
    if (!json_is_object(labels) || json_object_size(labels) == 0) {
        snprintf(buf, len, "-");
        return;
    }
    json_object_foreach((json_t *)labels, k, v) {
        const char *val = json_string_value(v);
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s=%s", n ? "," : "", k,
                              val ? val : "?");
        if (n >= len) {
            if (len > 4)
                memcpy(buf + len - 4, "...", 4);
            return;
        }
    }
}

void fmt_node_row(const json_t *node, int64_t now_ms, char cells[NODE_COLS][256]) {
    int64_t seen = parse_time_ms(str(node, "last_seen"));
    const char *s;
    char age[32];

    snprintf(cells[0], 256, "%s", (s = str(node, "id")) ? s : "-");
    snprintf(cells[1], 256, "%s", (s = str(node, "state")) ? s : "-");
    snprintf(cells[2], 256, "%s", (s = str(node, "url")) ? s : "-");
    snprintf(cells[3], 256, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(node, "running")),
             json_integer_value(json_object_get(node, "capacity")));
    fmt_labels(json_object_get(node, "labels"), cells[4], 256);
    if (seen >= 0) {
        fmt_age(now_ms - seen, age, sizeof age);
        snprintf(cells[5], 256, "%s ago", age);
    } else {
        snprintf(cells[5], 256, "-");
    }
}

void fmt_node(FILE *out, const json_t *node, int64_t now_ms) {
    char tmp[96];

    line(out, "ID:", str(node, "id"));
    line(out, "State:", str(node, "state"));
    line(out, "URL:", str(node, "url"));
    map_line(out, "Labels:", json_object_get(node, "labels"));
    snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(node, "running")),
             json_integer_value(json_object_get(node, "capacity")));
    line(out, "Running:", tmp);
    line(out, "Version:", str(node, "version"));
    time_line(out, "Joined:", node, "registered_at", now_ms);
    time_line(out, "Last seen:", node, "last_seen", now_ms);
}

/* ---- batches ---- */

static json_int_t count(const json_t *batch, const char *state) {
    return json_integer_value(json_object_get(json_object_get(batch, "counts"), state));
}

void fmt_batch_progress(const json_t *batch, char *buf, size_t len) {
    static const char *const bad[] = {"failed", "cancelled", "timed_out"};
    json_int_t ok = count(batch, "succeeded"), running = count(batch, "running"), done = ok;
    const char *id = str(batch, "id");
    size_t n;

    for (size_t i = 0; i < 3; i++)
        done += count(batch, bad[i]);
    n = (size_t)snprintf(buf, len,
                         "%s: %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                         " done (succeeded %" JSON_INTEGER_FORMAT,
                         id ? id : "?", done, json_integer_value(json_object_get(batch, "total")),
                         ok);
    for (size_t i = 0; i < 3; i++)
        if (count(batch, bad[i]) > 0 && n < len)
            n += (size_t)snprintf(buf + n, len - n, ", %s %" JSON_INTEGER_FORMAT,
                                  i == 2 ? "timed out" : bad[i], count(batch, bad[i]));
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n, ")");
    if (running > 0 && n < len)
        snprintf(buf + n, len - n, ", %" JSON_INTEGER_FORMAT " running", running);
}

void fmt_batch(FILE *out, const json_t *batch, int64_t now_ms) {
    static const char *const states[] = {"queued", "running",   "succeeded",
                                         "failed", "cancelled", "timed_out"};
    static const char *const keys[] = {
        "Queued:", "Running:", "Succeeded:", "Failed:", "Cancelled:", "Timed out:"};
    char tmp[96];

    line(out, "ID:", str(batch, "id"));
    line(out, "Name:", str(batch, "name"));
    line(out, "Done:", json_is_true(json_object_get(batch, "done")) ? "yes" : "no");
    snprintf(tmp, sizeof tmp,
             "%" JSON_INTEGER_FORMAT ", at most %" JSON_INTEGER_FORMAT " running at a time",
             json_integer_value(json_object_get(batch, "total")),
             json_integer_value(json_object_get(batch, "concurrency")));
    line(out, "Jobs:", tmp);
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, count(batch, states[i]));
        line(out, keys[i], tmp);
    }
    time_line(out, "Created:", batch, "created_at", now_ms);
}

int batch_exit_status(const json_t *batch) {
    if (!json_is_true(json_object_get(batch, "done")))
        return -1;
    return count(batch, "succeeded") == json_integer_value(json_object_get(batch, "total")) ? 0 : 1;
}

int job_exit_status(const json_t *job, int cancel_signal) {
    const char *state = str(job, "state");
    const char *sig = str(job, "signal");
    json_t *code = json_object_get(job, "exit_code");
    enum jobd_state s;
    int signo = 0;

    if (!state || jobd_state_parse(state, &s) < 0 || !jobd_state_is_final(s))
        return -1;
    if (sig && jobd_signal_parse(sig, &signo) < 0)
        signo = 0;
    switch (s) {
    case JOBD_SUCCEEDED:
        return 0;
    case JOBD_TIMED_OUT:
        return 124;
    case JOBD_CANCELLED:
        if (cancel_signal > 0)
            return 128 + cancel_signal;
        if (signo > 0)
            return 128 + signo;
        if (json_is_integer(code) && json_integer_value(code) > 0)
            return (int)(json_integer_value(code) & 255);
        return 130;
    default:
        break;
    }
    if (signo > 0)
        return 128 + signo;
    if (json_is_integer(code)) {
        int c = (int)(json_integer_value(code) & 255);
        return c ? c : 1;
    }
    return 127;
}

/* Length of the well-formed UTF-8 sequence at p (n bytes left), or 0 if it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    /* The second byte's range excludes overlongs and surrogates (RFC 3629). */
    if (p[0] == 0xE0)
        lo = 0xA0;
    else if (p[0] == 0xED)
        hi = 0x9F;
    else if (p[0] == 0xF0)
        lo = 0x90;
    else if (p[0] == 0xF4)
        hi = 0x8F;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

char *utf8_sanitize(const char *p, size_t n, size_t *outlen) {
    const unsigned char *u = (const unsigned char *)p;
    char *out = malloc(n * 3 + 1);
    size_t o = 0;

    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq(u + i, n - i);
        if (len == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, u + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}
