/*
 * jobd/spec.h: the job spec (the body of POST /v1/jobs) as a C value, its
 * validation, and its JSON codec.
 *
 * A spec is parsed once, at the edge, into a struct jobd_spec that the rest
 * of jobd trusts: every field has been checked against its type, its range
 * and its size bound. A spec that fails validation is described by a struct
 * jobd_error naming the offending field path (`command[2]`, `env.PATH`,
 * `limits.memory_bytes`) and the rule it broke (`must be a string`).
 */
#ifndef JOBD_SPEC_H
#define JOBD_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobd/job.h"

/* Size bounds enforced by jobd_spec_parse. */
#define JOBD_MAX_ARGV       4096            /* entries of command */
#define JOBD_MAX_ARG_BYTES  (128 * 1024)    /* bytes of one argv entry, of shell, of cwd */
#define JOBD_MAX_ENV        1024            /* entries of env */
#define JOBD_MAX_ENV_BYTES  (32 * 1024)     /* bytes of one env value */
#define JOBD_MAX_NAME_BYTES 256             /* bytes of name */
#define JOBD_MAX_LABELS     64              /* entries of labels and of node_selector */
#define JOBD_MAX_LABEL_KEY  128             /* bytes of a label key */
#define JOBD_MAX_LABEL_VAL  256             /* bytes of a label value */
#define JOBD_MAX_RETRIES    100             /* retries */
#define JOBD_MAX_TIMEOUT    (366.0 * 86400) /* seconds; timeout, retry_delay */
#define JOBD_MAX_KILL_GRACE 3600.0          /* seconds */
#define JOBD_MAX_EXIT_CODES 256             /* entries of retry_exit_codes */
#define JOBD_MAX_ID_BYTES   64              /* a job id, with its NUL */

/* A validation error: which field, and which rule it broke. */
struct jobd_error {
    char field[128];   /* path of the field, "" when the whole document is at fault */
    char message[256]; /* the rule, in words: "must be a string" */
};

/* Fill an error; `field` may be NULL. Returns -EINVAL for convenience. */
int jobd_error_set(struct jobd_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Check a labels object (a job's labels or node_selector, a worker node's
 * labels): at most JOBD_MAX_LABELS entries; keys of 1 to JOBD_MAX_LABEL_KEY
 * bytes of A-Z a-z 0-9 _ . / -; values strings of at most JOBD_MAX_LABEL_VAL
 * bytes without NUL. Return 0, or -EINVAL after filling err (its field is
 * `field`, or `field`.KEY for one entry).
 */
int jobd_labels_check(const json_t *v, const char *field, struct jobd_error *err);

enum jobd_spec_kind { JOBD_SPEC_COMMAND = 0, JOBD_SPEC_SHELL, JOBD_SPEC_TASK };

/* Resource limits; -1 means "not set" for every field. */
struct jobd_limits {
    int64_t cpu_seconds;  /* RLIMIT_CPU */
    int64_t memory_bytes; /* RLIMIT_AS */
    int64_t open_files;   /* RLIMIT_NOFILE */
    int64_t output_bytes; /* cap of each of stdout and stderr (head and tail kept) */
};

/*
 * A validated job spec. Every pointer is owned by the spec and freed by
 * jobd_spec_free. Absent optional fields are NULL (pointers), 0 (counts),
 * or the documented default.
 */
struct jobd_spec {
    enum jobd_spec_kind kind;
    char **argv; /* command: argc strings plus a NULL; NULL unless kind is COMMAND */
    size_t argc;
    char *shell;                 /* NULL unless kind is SHELL */
    char *task;                  /* NULL unless kind is TASK */
    json_t *args;                /* task input, any JSON; NULL when absent */
    enum jobd_executor executor; /* default: process for command/shell, thread for task */
    char *stdin_data;            /* may contain NUL bytes; NULL when absent */
    size_t stdin_len;
    char **env; /* "KEY=VALUE" strings plus a NULL; NULL when absent */
    size_t envc;
    char *cwd;             /* NULL: the data directory's default */
    double timeout;        /* seconds, 0 = none */
    int kill_signal;       /* default SIGTERM */
    double kill_grace;     /* seconds, default 5 */
    int retries;           /* default 0 */
    double retry_delay;    /* seconds, default 1 */
    int *retry_exit_codes; /* NULL: retry any failure */
    size_t n_retry_exit_codes;
    int priority;          /* -100..100, default 0 */
    char *name;            /* NULL when absent */
    json_t *labels;        /* object of strings, NULL when absent */
    json_t *node_selector; /* object of strings, NULL when absent */
    struct jobd_limits limits;
};

/* Set every field of *spec to its default (an empty, invalid spec). */
void jobd_spec_init(struct jobd_spec *spec);

/*
 * Validate `in` (borrowed) and fill *out. Unknown fields are rejected, and a
 * JSON null counts as an absent field. On success return 0 and *out owns
 * its contents. On failure return -EINVAL (or -ENOMEM if memory runs out,
 * with an error on field ""), fill *err, and leave *out empty (nothing to
 * free, though jobd_spec_free on it is harmless).
 */
int jobd_spec_parse(const json_t *in, struct jobd_spec *out, struct jobd_error *err);

/*
 * Render a spec as JSON: every spec field is present, with its default
 * filled in, or null when it does not apply. Return a new reference, or
 * NULL if memory runs out. jobd_spec_parse accepts the result and yields an
 * equal spec.
 */
json_t *jobd_spec_to_json(const struct jobd_spec *spec);

/* Free what a spec owns and reset it to jobd_spec_init's state. */
void jobd_spec_free(struct jobd_spec *spec);

/* Signal names: "SIGTERM" or "TERM" (either) <-> number. Parse returns 0 or -EINVAL. */
int jobd_signal_parse(const char *name, int *signo);
/* "SIGTERM" for 15; NULL for an unknown number. */
const char *jobd_signal_name(int signo);

#endif
