/*
 * log.c: see log.h. The format flag is set before threads start and only
 * read afterwards, so it needs no lock.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobd/util.h"

static bool log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_json(bool json) {
    log_json = json;
}

void log_msg(enum log_level lvl, const char *fmt, ...) {
    char msg[2048];
    char ts[40];
    char line[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    jobd_format_time(jobd_now_ms(), ts, sizeof ts);

    if (log_json) {
        json_t *o = json_pack("{s:s, s:s, s:s}", "time", ts, "level", level_names[lvl], "msg", msg);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!s)
            return;
        n = snprintf(line, sizeof line, "%s\n", s);
        free(s);
    } else {
        n = snprintf(line, sizeof line, "%s %s %s\n", ts, level_names[lvl], msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    /* One write per line keeps lines whole between threads; a failed log write is dropped. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}

void log_request(unsigned long long id, const char *method, const char *path, unsigned status,
                 double seconds) {
    char ts[40];
    char line[4096];
    int n;

    if (!log_json) {
        log_msg(LOG_INFO, "request %llu %s %s %u %.2fms", id, method, path, status,
                seconds * 1000.0);
        return;
    }
    jobd_format_time(jobd_now_ms(), ts, sizeof ts);
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:f}", "time", ts, "level", "info",
                          "msg", "request", "request_id", (json_int_t)id, "method", method, "path",
                          path, "status", (int)status, "ms", seconds * 1000.0);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return;
    n = snprintf(line, sizeof line, "%s\n", s);
    free(s);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return;
}
