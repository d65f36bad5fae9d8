/*
 * format.h: jobctl's human output: durations and ages, aligned tables, the
 * rows of `list` and `nodes`, the views of `status`, `node` and `batch
 * status`, the progress line of `batch --wait`, and the exit status that
 * `run` and `wait` derive from a job (and `batch --wait` from a batch).
 * Pure functions of their inputs (the current time is a parameter), tested
 * alone (tests/unit/test_jobctl_format.c).
 */
#ifndef JOBCTL_FORMAT_H
#define JOBCTL_FORMAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A duration in milliseconds: "850ms", "2.5s", "42s", "1m05s", "3h07m", "2d04h"; "-" if < 0. */
void fmt_duration(int64_t ms, char *buf, size_t len);

/* How long ago, coarsely: "5s", "3m", "2h", "4d" ("0s" for the future). */
void fmt_age(int64_t ms, char *buf, size_t len);

/* Parse "2026-11-27T11:40:57.123Z" (RFC 3339 UTC) into epoch ms; -1 when not such a time. */
int64_t parse_time_ms(const char *s);

/* Quote one argument for a POSIX shell when it needs it, appending to buf (truncating). */
void fmt_shell_word(const char *s, char *buf, size_t len);

/*
 * An aligned text table: columns as wide as their widest cell (counted in
 * UTF-8 characters), two spaces apart, the last column not padded.
 */
struct table;

/* A new table with n columns and these headers (borrowed, copied); NULL if memory runs out. */
struct table *table_new(size_t ncols, const char *const *headers);
/* Add a row of ncols cells (borrowed, copied; NULL prints as "-"). Return 0 or -ENOMEM. */
int table_add(struct table *t, const char *const *cells);
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

#define LIST_COLS 8
extern const char *const list_headers[LIST_COLS];

/*
 * The cells of a job (borrowed) in `list`: ID NAME STATE EXIT EXECUTOR NODE
 * AGE DURATION, written into cells[i] (each of cell_len bytes). now_ms is
 * the current wall clock.
 */
void fmt_list_row(const json_t *job, int64_t now_ms, char cells[LIST_COLS][128]);

/* Write the human view of a job (borrowed): "Field:  value" lines. */
void fmt_job(FILE *out, const json_t *job, int64_t now_ms);

#define NODE_COLS 6
extern const char *const node_headers[NODE_COLS];

/*
 * The cells of a node document (borrowed) in `nodes`: ID STATE URL
 * RUNNING/CAPACITY LABELS ("k=v,k2=v2", cut with "..." past the cell) and
 * LAST SEEN ("5s ago"), written into cells[i] (each of 256 bytes). now_ms is
 * the current wall clock.
 */
void fmt_node_row(const json_t *node, int64_t now_ms, char cells[NODE_COLS][256]);

/* Write the human view of a node (borrowed): "Field:  value" lines. */
void fmt_node(FILE *out, const json_t *node, int64_t now_ms);

/*
 * One line on a batch document (borrowed), as `batch --wait` shows its
 * progress: "b12: 340/1000 done (succeeded 330, failed 10), 12 running".
 * Failed, cancelled and timed out appear when not zero; running when jobs
 * run. Truncated to len.
 */
void fmt_batch_progress(const json_t *batch, char *buf, size_t len);

/* Write the human view of a batch (borrowed): "Field:  value" lines. */
void fmt_batch(FILE *out, const json_t *batch, int64_t now_ms);

/*
 * The exit status of `batch --wait` for a batch (borrowed) that is done: 0
 * when every job succeeded, 1 when some did not. A batch not done gives -1.
 */
int batch_exit_status(const json_t *batch);

/*
 * The exit status of jobctl for a job that has ended (borrowed): its exit
 * code; 128+N when killed by signal N; 124 timed out; 127 when it never ran
 * (no exit code and no signal). For a cancelled job: 128+cancel_signal when
 * jobctl itself cancelled it on that signal (cancel_signal > 0), else
 * 128+its signal, else its exit code if non-zero, else 130. An active job
 * gives -1.
 */
int job_exit_status(const json_t *job, int cancel_signal);

/*
 * Copy n bytes of p as valid UTF-8: every byte that does not belong to a
 * well-formed sequence becomes U+FFFD. Return a new NUL-terminated buffer
 * (free it) with its length in *outlen, or NULL if memory runs out.
 */
char *utf8_sanitize(const char *p, size_t n, size_t *outlen);

#endif
