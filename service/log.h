/*
 * log.h: jobd's log lines on stderr, plain ("2026-11-27T11:40:57.123Z info store: ...")
 * or one JSON object per line. Thread-safe: each line is one write(2).
 * Never pass a token to these functions.
 */
#ifndef JOBD_LOG_H
#define JOBD_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Choose the format once, before threads start. */
void log_set_json(bool json);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * One request's line: plain "request 42 GET /v1/jobs 200 0.35ms", or in JSON
 * mode an object with request_id, method, path, status and ms fields. The
 * path is logged without its query string; headers (tokens) never are.
 */
void log_request(unsigned long long id, const char *method, const char *path, unsigned status,
                 double seconds);

#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
