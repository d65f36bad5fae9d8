/*
 * spec.c: validation and JSON codec of the job spec (jobd/spec.h).
 *
 * jobd_spec_parse is the one door through which a job spec enters jobd, so it
 * checks everything: the type, range and size of each field, the fields that
 * exclude each other, and the fields it does not know. It builds the spec in
 * a local value and hands it over only when every check has passed, so a
 * failure at any point frees what was built and leaves the caller's spec
 * empty. Checks run in a fixed order (unknown fields, then the choice of
 * command, shell or task, then each field in the order of struct jobd_spec),
 * so one document always yields the same error.
 *
 * jobd_spec_to_json is its inverse: jobd_spec_parse(jobd_spec_to_json(s))
 * equals s. To keep that true, an empty env, labels or node_selector object
 * is stored as absent (NULL), and absent ones are rendered as {}.
 *
 * Error messages are written to read well after "FIELD: ", as the API shows
 * them ("retries: must be an integer 0..100").
 */
#include "jobd/spec.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MAX_STDIN     (64 * 1024 * 1024)  /* bytes of stdin */
#define SPEC_MAX_ENV_KEY   256                 /* bytes of an env name */
#define SPEC_MAX_TASK      JOBD_MAX_NAME_BYTES /* bytes of a task name */
#define SPEC_MAX_SIGNAL    64                  /* SIGRTMAX on Linux */
#define SPEC_DEFAULT_GRACE 5.0                 /* seconds of kill_grace */
#define SPEC_DEFAULT_DELAY 1.0                 /* seconds of retry_delay */
#define SPEC_PATH_BYTES    512                 /* a field path before jobd_error_set truncates it */

/* Every top-level field a spec may have. */
static const char *const spec_fields[] = {
    "command",     "shell",
    "task",        "args",
    "executor",    "stdin",
    "env",         "cwd",
    "timeout",     "kill_signal",
    "kill_grace",  "retries",
    "retry_delay", "retry_exit_codes",
    "priority",    "name",
    "labels",      "node_selector",
    "limits",
};

/* Every field of limits. */
static const char *const limit_fields[] = {"cpu_seconds", "memory_bytes", "open_files",
                                           "output_bytes"};

/* The signals a spec may name, with the "SIG" prefix that jobd_signal_name returns. */
static const struct {
    const char *name;
    int signo;
} signals[] = {
    {"SIGHUP", SIGHUP},       {"SIGINT", SIGINT},   {"SIGQUIT", SIGQUIT},   {"SIGILL", SIGILL},
    {"SIGTRAP", SIGTRAP},     {"SIGABRT", SIGABRT}, {"SIGBUS", SIGBUS},     {"SIGFPE", SIGFPE},
    {"SIGKILL", SIGKILL},     {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV},   {"SIGUSR2", SIGUSR2},
    {"SIGPIPE", SIGPIPE},     {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},   {"SIGCHLD", SIGCHLD},
    {"SIGCONT", SIGCONT},     {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP},   {"SIGTTIN", SIGTTIN},
    {"SIGTTOU", SIGTTOU},     {"SIGURG", SIGURG},   {"SIGXCPU", SIGXCPU},   {"SIGXFSZ", SIGXFSZ},
    {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGIO", SIGIO},
    {"SIGSYS", SIGSYS},
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * If the string of n bytes at s was cut in the middle of a UTF-8 sequence,
 * cut it before that sequence, so that it stays valid UTF-8 (json_string
 * refuses anything else, and errors end up in JSON replies).
 */
static void utf8_trim(char *s, size_t n) {
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

int jobd_error_set(struct jobd_error *err, const char *field, const char *fmt, ...) {
    if (err == NULL)
        return -EINVAL;
    int n = snprintf(err->field, sizeof(err->field), "%s", field != NULL ? field : "");
    if (n < 0)
        err->field[0] = '\0';
    else if ((size_t)n >= sizeof(err->field))
        utf8_trim(err->field, sizeof(err->field) - 1);
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    if (n < 0)
        err->message[0] = '\0';
    else if ((size_t)n >= sizeof(err->message))
        utf8_trim(err->message, sizeof(err->message) - 1);
    return -EINVAL;
}

static int oom(struct jobd_error *err) {
    jobd_error_set(err, NULL, "out of memory");
    return -ENOMEM;
}

int jobd_signal_parse(const char *name, int *signo) {
    if (name == NULL)
        return -EINVAL;
    for (size_t i = 0; i < ARRAY_LEN(signals); i++) {
        if (strcmp(name, signals[i].name) == 0 || strcmp(name, signals[i].name + 3) == 0) {
            *signo = signals[i].signo;
            return 0;
        }
    }
    return -EINVAL;
}

const char *jobd_signal_name(int signo) {
    for (size_t i = 0; i < ARRAY_LEN(signals); i++) {
        if (signals[i].signo == signo)
            return signals[i].name;
    }
    return NULL;
}

void jobd_spec_init(struct jobd_spec *spec) {
    memset(spec, 0, sizeof(*spec));
    spec->kind = JOBD_SPEC_COMMAND;
    spec->executor = JOBD_EXEC_PROCESS;
    spec->kill_signal = SIGTERM;
    spec->kill_grace = SPEC_DEFAULT_GRACE;
    spec->retry_delay = SPEC_DEFAULT_DELAY;
    spec->limits.cpu_seconds = -1;
    spec->limits.memory_bytes = -1;
    spec->limits.open_files = -1;
    spec->limits.output_bytes = -1;
}

static void free_strv(char **v) {
    if (v == NULL)
        return;
    for (char **p = v; *p != NULL; p++)
        free(*p);
    free(v);
}

void jobd_spec_free(struct jobd_spec *spec) {
    if (spec == NULL)
        return;
    free_strv(spec->argv);
    free(spec->shell);
    free(spec->task);
    json_decref(spec->args);
    free(spec->stdin_data);
    free_strv(spec->env);
    free(spec->cwd);
    free(spec->retry_exit_codes);
    free(spec->name);
    json_decref(spec->labels);
    json_decref(spec->node_selector);
    jobd_spec_init(spec);
}

/* ---- parsing helpers ---------------------------------------------------- */

/* A copy of n bytes at s, NUL-terminated; NULL if malloc fails. */
static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* The field `name` of `in` (borrowed), or NULL when it is absent or null. */
static const json_t *get_field(const json_t *in, const char *name) {
    const json_t *v = json_object_get(in, name);
    return json_is_null(v) ? NULL : v;
}

/* Whether `key` is one of the n names. */
static bool known(const char *key, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, names[i]) == 0)
            return true;
    }
    return false;
}

/*
 * Reject the first key of object `obj` that is not one of the n names, with
 * the field path prefix + key. jansson's iterators take a non-const object
 * but do not change it.
 */
static int check_unknown(const json_t *obj, const char *prefix, const char *const *names, size_t n,
                         struct jobd_error *err) {
    json_t *o = (json_t *)obj;
    for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
        const char *key = json_object_iter_key(it);
        if (!known(key, names, n) || strlen(key) != json_object_iter_key_len(it)) {
            char path[SPEC_PATH_BYTES];
            snprintf(path, sizeof(path), "%s%s", prefix, key);
            return jobd_error_set(err, path, "unknown field");
        }
    }
    return 0;
}

/*
 * Check that v is a string of min..max bytes, without NUL bytes unless
 * allow_nul. On success set *s (borrowed from v) and *len.
 */
static int get_string(const json_t *v, const char *field, size_t min, size_t max, bool allow_nul,
                      const char **s, size_t *len, struct jobd_error *err) {
    *s = NULL;
    *len = 0;
    if (!json_is_string(v))
        return jobd_error_set(err, field, "must be a string");
    const char *str = json_string_value(v);
    size_t n = json_string_length(v);
    if (n < min)
        return jobd_error_set(err, field, "must not be empty");
    if (n > max)
        return jobd_error_set(err, field, "must be at most %zu bytes", max);
    if (!allow_nul && memchr(str, '\0', n) != NULL)
        return jobd_error_set(err, field, "must not contain NUL bytes");
    *s = str;
    *len = n;
    return 0;
}

/* As get_string, into a new copy in *out. */
static int copy_string(const json_t *v, const char *field, size_t min, size_t max, char **out,
                       struct jobd_error *err) {
    const char *s;
    size_t n;
    int rc = get_string(v, field, min, max, false, &s, &n, err);
    if (rc != 0)
        return rc;
    *out = dup_bytes(s, n);
    return *out != NULL ? 0 : oom(err);
}

/* Check that v is an integer in lo..hi (hi == INT64_MAX: no upper bound). */
static int get_int(const json_t *v, const char *field, json_int_t lo, json_int_t hi,
                   json_int_t *out, struct jobd_error *err) {
    *out = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i >= lo && i <= hi) {
            *out = i;
            return 0;
        }
    }
    if (hi == INT64_MAX)
        return jobd_error_set(err, field, "must be an integer >= %lld", (long long)lo);
    return jobd_error_set(err, field, "must be an integer %lld..%lld", (long long)lo,
                          (long long)hi);
}

/*
 * Check that v is a number (integer or real) of seconds in lo..hi, or in
 * (lo..hi] when lo_open.
 */
static int get_seconds(const json_t *v, const char *field, double lo, bool lo_open, double hi,
                       double *out, struct jobd_error *err) {
    if (json_is_number(v)) {
        double d = json_number_value(v);
        if ((lo_open ? d > lo : d >= lo) && d <= hi) {
            *out = d;
            return 0;
        }
    }
    return jobd_error_set(err, field, "must be a number of seconds %s %.0f and <= %.0f",
                          lo_open ? ">" : ">=", lo, hi);
}

/* Whether c may appear in a label key. */
static bool label_key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '/' || c == '-';
}

/* Whether c may appear in a task name. */
static bool task_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* The path of member `key` of `parent`: "parent.key", or "parent" when key is empty. */
static void member_path(char *buf, size_t len, const char *parent, const char *key) {
    if (key[0] == '\0')
        snprintf(buf, len, "%s", parent);
    else
        snprintf(buf, len, "%s.%s", parent, key);
}

/* ---- one function per field, or family of fields ------------------------ */

static int parse_command(const json_t *v, struct jobd_spec *s, struct jobd_error *err) {
    if (!json_is_array(v))
        return jobd_error_set(err, "command", "must be an array of strings");
    size_t n = json_array_size(v);
    if (n == 0)
        return jobd_error_set(err, "command", "must not be empty");
    if (n > JOBD_MAX_ARGV)
        return jobd_error_set(err, "command", "must have at most %d entries", JOBD_MAX_ARGV);
    s->argv = calloc(n + 1, sizeof(char *));
    if (s->argv == NULL)
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof(path), "command[%zu]", i);
        int rc = copy_string(json_array_get(v, i), path, i == 0 ? 1 : 0, JOBD_MAX_ARG_BYTES,
                             &s->argv[i], err);
        if (rc != 0)
            return rc;
        s->argc = i + 1;
    }
    return 0;
}

static int parse_task(const json_t *v, struct jobd_spec *s, struct jobd_error *err) {
    int rc = copy_string(v, "task", 1, SPEC_MAX_TASK, &s->task, err);
    if (rc != 0)
        return rc;
    for (const char *p = s->task; *p != '\0'; p++) {
        if (!task_char(*p))
            return jobd_error_set(err, "task", "must be a task name of A-Z a-z 0-9 _ . -");
    }
    return 0;
}

/* Order "K=V" strings by K alone: '=' ends the key, so it sorts first. */
static int env_cmp(const void *a, const void *b) {
    const unsigned char *x = *(const unsigned char *const *)a;
    const unsigned char *y = *(const unsigned char *const *)b;
    for (;; x++, y++) {
        unsigned cx = *x == '=' ? 0 : *x;
        unsigned cy = *y == '=' ? 0 : *y;
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (cx == 0)
            return 0;
    }
}

static int parse_env(const json_t *v, struct jobd_spec *s, struct jobd_error *err) {
    if (!json_is_object(v))
        return jobd_error_set(err, "env", "must be an object of strings");
    size_t n = json_object_size(v);
    if (n > JOBD_MAX_ENV)
        return jobd_error_set(err, "env", "must have at most %d entries", JOBD_MAX_ENV);
    if (n == 0)
        return 0;
    s->env = calloc(n + 1, sizeof(char *));
    if (s->env == NULL)
        return oom(err);
    json_t *o = (json_t *)v; /* jansson iterators do not change the object */
    size_t i = 0;
    for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        char path[SPEC_PATH_BYTES];
        member_path(path, sizeof(path), "env", key);
        if (klen == 0)
            return jobd_error_set(err, "env", "names must not be empty");
        if (klen > SPEC_MAX_ENV_KEY)
            return jobd_error_set(err, path, "name must be at most %d bytes", SPEC_MAX_ENV_KEY);
        if (strlen(key) != klen)
            return jobd_error_set(err, path, "name must not contain NUL bytes");
        if (strchr(key, '=') != NULL)
            return jobd_error_set(err, path, "name must not contain '='");
        const char *val;
        size_t vlen;
        int rc = get_string(json_object_iter_value(it), path, 0, JOBD_MAX_ENV_BYTES, false, &val,
                            &vlen, err);
        if (rc != 0)
            return rc;
        char *kv = malloc(klen + 1 + vlen + 1);
        if (kv == NULL)
            return oom(err);
        memcpy(kv, key, klen);
        kv[klen] = '=';
        memcpy(kv + klen + 1, val, vlen);
        kv[klen + 1 + vlen] = '\0';
        s->env[i++] = kv;
        s->envc = i;
    }
    qsort(s->env, s->envc, sizeof(char *), env_cmp);
    return 0;
}

static int parse_kill_signal(const json_t *v, struct jobd_spec *s, struct jobd_error *err) {
    if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v) &&
        jobd_signal_parse(json_string_value(v), &s->kill_signal) == 0)
        return 0;
    if (json_is_integer(v) && json_integer_value(v) >= 1 &&
        json_integer_value(v) <= SPEC_MAX_SIGNAL) {
        s->kill_signal = (int)json_integer_value(v);
        return 0;
    }
    return jobd_error_set(err, "kill_signal",
                          "must be a signal name like SIGTERM or TERM, or a number 1..%d",
                          SPEC_MAX_SIGNAL);
}

static int parse_exit_codes(const json_t *v, struct jobd_spec *s, struct jobd_error *err) {
    if (!json_is_array(v))
        return jobd_error_set(err, "retry_exit_codes", "must be an array of integers 1..255");
    size_t n = json_array_size(v);
    if (n == 0)
        return jobd_error_set(err, "retry_exit_codes",
                              "must not be empty (leave it out to retry any failure)");
    if (n > JOBD_MAX_EXIT_CODES)
        return jobd_error_set(err, "retry_exit_codes", "must have at most %d entries",
                              JOBD_MAX_EXIT_CODES);
    s->retry_exit_codes = calloc(n, sizeof(int));
    if (s->retry_exit_codes == NULL)
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        char path[48];
        snprintf(path, sizeof(path), "retry_exit_codes[%zu]", i);
        json_int_t code;
        int rc = get_int(json_array_get(v, i), path, 1, 255, &code, err);
        if (rc != 0)
            return rc;
        s->retry_exit_codes[i] = (int)code;
        s->n_retry_exit_codes = i + 1;
    }
    return 0;
}

/*
 * Check a labels-like object (labels, node_selector) and store a copy of it
 * in *out, or NULL when it is empty.
 */
int jobd_labels_check(const json_t *v, const char *field, struct jobd_error *err) {
    if (!json_is_object(v))
        return jobd_error_set(err, field, "must be an object of strings");
    if (json_object_size(v) > JOBD_MAX_LABELS)
        return jobd_error_set(err, field, "must have at most %d entries", JOBD_MAX_LABELS);
    json_t *o = (json_t *)v; /* jansson iterators do not change the object */
    for (void *it = json_object_iter(o); it != NULL; it = json_object_iter_next(o, it)) {
        const char *key = json_object_iter_key(it);
        size_t klen = json_object_iter_key_len(it);
        char path[SPEC_PATH_BYTES];
        member_path(path, sizeof(path), field, key);
        if (klen == 0)
            return jobd_error_set(err, field, "keys must not be empty");
        if (klen > JOBD_MAX_LABEL_KEY)
            return jobd_error_set(err, path, "key must be at most %d bytes", JOBD_MAX_LABEL_KEY);
        for (size_t i = 0; i < klen; i++) {
            if (!label_key_char(key[i]))
                return jobd_error_set(err, path, "key must contain only A-Z a-z 0-9 _ . / -");
        }
        const char *val;
        size_t vlen;
        int rc = get_string(json_object_iter_value(it), path, 0, JOBD_MAX_LABEL_VAL, false, &val,
                            &vlen, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_labels(const json_t *v, const char *field, json_t **out, struct jobd_error *err) {
    int rc = jobd_labels_check(v, field, err);

    if (rc != 0)
        return rc;
    if (json_object_size(v) == 0)
        return 0;
    *out = json_deep_copy(v);
    return *out != NULL ? 0 : oom(err);
}

/* One limit: its name, where it goes, and its range. */
struct limit_rule {
    const char *name;
    size_t offset;
    json_int_t lo, hi;
};

static const struct limit_rule limit_rules[] = {
    {"cpu_seconds", offsetof(struct jobd_limits, cpu_seconds), 1, (json_int_t)1 << 31},
    {"memory_bytes", offsetof(struct jobd_limits, memory_bytes), 1024 * 1024, INT64_MAX},
    {"open_files", offsetof(struct jobd_limits, open_files), 16, 1048576},
    {"output_bytes", offsetof(struct jobd_limits, output_bytes), 1024, (json_int_t)1 << 40},
};

static int parse_limits(const json_t *v, struct jobd_limits *lim, struct jobd_error *err) {
    if (!json_is_object(v))
        return jobd_error_set(err, "limits", "must be an object");
    int rc = check_unknown(v, "limits.", limit_fields, ARRAY_LEN(limit_fields), err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < ARRAY_LEN(limit_rules); i++) {
        const struct limit_rule *r = &limit_rules[i];
        const json_t *f = get_field(v, r->name);
        if (f == NULL)
            continue;
        char path[48];
        snprintf(path, sizeof(path), "limits.%s", r->name);
        json_int_t val;
        rc = get_int(f, path, r->lo, r->hi, &val, err);
        if (rc != 0)
            return rc;
        *(int64_t *)((char *)lim + r->offset) = val;
    }
    return 0;
}

/* Check the choice of command, shell or task, and parse the one chosen. */
static int parse_kind(const json_t *in, struct jobd_spec *s, struct jobd_error *err) {
    const json_t *command = get_field(in, "command");
    const json_t *shell = get_field(in, "shell");
    const json_t *task = get_field(in, "task");
    int count = (command != NULL) + (shell != NULL) + (task != NULL);
    if (count == 0)
        return jobd_error_set(err, "command", "exactly one of command, shell, task is required");
    if (count > 1)
        return jobd_error_set(err, "command",
                              "command, shell, task are mutually exclusive: give exactly one");
    if (command != NULL) {
        s->kind = JOBD_SPEC_COMMAND;
        return parse_command(command, s, err);
    }
    if (shell != NULL) {
        s->kind = JOBD_SPEC_SHELL;
        return copy_string(shell, "shell", 1, JOBD_MAX_ARG_BYTES, &s->shell, err);
    }
    s->kind = JOBD_SPEC_TASK;
    return parse_task(task, s, err);
}

/* Parse every field of `in` into s, which was initialized; s may be partly filled on failure. */
static int parse_fields(const json_t *in, struct jobd_spec *s, struct jobd_error *err) {
    int rc = check_unknown(in, "", spec_fields, ARRAY_LEN(spec_fields), err);
    if (rc != 0)
        return rc;
    rc = parse_kind(in, s, err);
    if (rc != 0)
        return rc;

    const json_t *v = get_field(in, "args");
    if (v != NULL) {
        if (s->kind != JOBD_SPEC_TASK)
            return jobd_error_set(err, "args", "is only allowed with task");
        s->args = json_deep_copy(v);
        if (s->args == NULL)
            return oom(err);
    }

    s->executor = s->kind == JOBD_SPEC_TASK ? JOBD_EXEC_THREAD : JOBD_EXEC_PROCESS;
    if ((v = get_field(in, "executor")) != NULL) {
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            jobd_executor_parse(json_string_value(v), &s->executor) != 0)
            return jobd_error_set(err, "executor", "must be one of process, thread, remote");
        if (s->executor == JOBD_EXEC_THREAD && s->kind != JOBD_SPEC_TASK)
            return jobd_error_set(err, "executor", "thread runs tasks only");
    }

    if ((v = get_field(in, "stdin")) != NULL) {
        const char *data;
        rc = get_string(v, "stdin", 0, SPEC_MAX_STDIN, true, &data, &s->stdin_len, err);
        if (rc != 0)
            return rc;
        s->stdin_data = dup_bytes(data, s->stdin_len);
        if (s->stdin_data == NULL)
            return oom(err);
    }

    if ((v = get_field(in, "env")) != NULL && (rc = parse_env(v, s, err)) != 0)
        return rc;

    if ((v = get_field(in, "cwd")) != NULL) {
        rc = copy_string(v, "cwd", 1, JOBD_MAX_ARG_BYTES, &s->cwd, err);
        if (rc != 0)
            return rc;
        if (s->cwd[0] != '/')
            return jobd_error_set(err, "cwd", "must be an absolute path");
    }

    if ((v = get_field(in, "timeout")) != NULL &&
        (rc = get_seconds(v, "timeout", 0, true, JOBD_MAX_TIMEOUT, &s->timeout, err)) != 0)
        return rc;
    if ((v = get_field(in, "kill_signal")) != NULL && (rc = parse_kill_signal(v, s, err)) != 0)
        return rc;
    if ((v = get_field(in, "kill_grace")) != NULL &&
        (rc = get_seconds(v, "kill_grace", 0, false, JOBD_MAX_KILL_GRACE, &s->kill_grace, err)) !=
            0)
        return rc;

    json_int_t i;
    if ((v = get_field(in, "retries")) != NULL) {
        if ((rc = get_int(v, "retries", 0, JOBD_MAX_RETRIES, &i, err)) != 0)
            return rc;
        s->retries = (int)i;
    }
    if ((v = get_field(in, "retry_delay")) != NULL &&
        (rc = get_seconds(v, "retry_delay", 0, false, JOBD_MAX_TIMEOUT, &s->retry_delay, err)) != 0)
        return rc;
    if ((v = get_field(in, "retry_exit_codes")) != NULL && (rc = parse_exit_codes(v, s, err)) != 0)
        return rc;
    if ((v = get_field(in, "priority")) != NULL) {
        if ((rc = get_int(v, "priority", -100, 100, &i, err)) != 0)
            return rc;
        s->priority = (int)i;
    }
    if ((v = get_field(in, "name")) != NULL &&
        (rc = copy_string(v, "name", 1, JOBD_MAX_NAME_BYTES, &s->name, err)) != 0)
        return rc;
    if ((v = get_field(in, "labels")) != NULL &&
        (rc = parse_labels(v, "labels", &s->labels, err)) != 0)
        return rc;
    if ((v = get_field(in, "node_selector")) != NULL &&
        (rc = parse_labels(v, "node_selector", &s->node_selector, err)) != 0)
        return rc;
    if ((v = get_field(in, "limits")) != NULL && (rc = parse_limits(v, &s->limits, err)) != 0)
        return rc;
    return 0;
}

int jobd_spec_parse(const json_t *in, struct jobd_spec *out, struct jobd_error *err) {
    struct jobd_spec s;
    jobd_spec_init(&s);
    jobd_spec_init(out);
    int rc;
    if (!json_is_object(in)) {
        rc = jobd_error_set(err, NULL, "must be an object");
        goto out;
    }
    rc = parse_fields(in, &s, err);
    if (rc == 0)
        *out = s;
out:
    if (rc != 0)
        jobd_spec_free(&s);
    return rc;
}

/* ---- rendering ----------------------------------------------------------- */

/* A number of seconds as JSON: an integer when it is whole, so 30 prints as 30, not 30.0. */
static json_t *seconds_json(double d) {
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && (double)(json_int_t)d == d)
        return json_integer((json_int_t)d);
    return json_real(d);
}

static json_t *string_or_null(const char *s) {
    return s != NULL ? json_string(s) : json_null();
}

static json_t *int_or_null(int64_t v) {
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *strv_json(char **v, size_t n) {
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *env_json(char **env, size_t n) {
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL ||
            json_object_setn_new(o, env[i], (size_t)(eq - env[i]), json_string(eq + 1)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *exit_codes_json(const int *codes, size_t n) {
    if (codes == NULL)
        return json_null();
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(a, json_integer(codes[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *limits_json(const struct jobd_limits *lim) {
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "cpu_seconds", int_or_null(lim->cpu_seconds)) != 0 ||
        json_object_set_new(o, "memory_bytes", int_or_null(lim->memory_bytes)) != 0 ||
        json_object_set_new(o, "open_files", int_or_null(lim->open_files)) != 0 ||
        json_object_set_new(o, "output_bytes", int_or_null(lim->output_bytes)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A copy of a labels-like object, or {} when it is absent. */
static json_t *labels_json(const json_t *labels) {
    return labels != NULL ? json_deep_copy(labels) : json_object();
}

/*
 * Also returns NULL when a string of the spec is not valid UTF-8, which a
 * spec from jobd_spec_parse never has.
 */
json_t *jobd_spec_to_json(const struct jobd_spec *s) {
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const char *sig = jobd_signal_name(s->kill_signal);
    bool task = s->kind == JOBD_SPEC_TASK;
    /* json_object_set_new steals its value even when it fails, and fails on a NULL value. */
    if (json_object_set_new(o, "command",
                            s->kind == JOBD_SPEC_COMMAND ? strv_json(s->argv, s->argc)
                                                         : json_null()) != 0 ||
        json_object_set_new(o, "shell",
                            string_or_null(s->kind == JOBD_SPEC_SHELL ? s->shell : NULL)) != 0 ||
        json_object_set_new(o, "task", string_or_null(task ? s->task : NULL)) != 0 ||
        json_object_set_new(o, "args",
                            task && s->args != NULL ? json_deep_copy(s->args) : json_null()) != 0 ||
        json_object_set_new(o, "executor", string_or_null(jobd_executor_name(s->executor))) != 0 ||
        json_object_set_new(o, "stdin",
                            s->stdin_data != NULL ? json_stringn(s->stdin_data, s->stdin_len)
                                                  : json_null()) != 0 ||
        json_object_set_new(o, "env", env_json(s->env, s->envc)) != 0 ||
        json_object_set_new(o, "cwd", string_or_null(s->cwd)) != 0 ||
        json_object_set_new(o, "timeout",
                            s->timeout > 0 ? seconds_json(s->timeout) : json_null()) != 0 ||
        json_object_set_new(o, "kill_signal",
                            sig != NULL ? json_string(sig) : json_integer(s->kill_signal)) != 0 ||
        json_object_set_new(o, "kill_grace", seconds_json(s->kill_grace)) != 0 ||
        json_object_set_new(o, "retries", json_integer(s->retries)) != 0 ||
        json_object_set_new(o, "retry_delay", seconds_json(s->retry_delay)) != 0 ||
        json_object_set_new(o, "retry_exit_codes",
                            exit_codes_json(s->retry_exit_codes, s->n_retry_exit_codes)) != 0 ||
        json_object_set_new(o, "priority", json_integer(s->priority)) != 0 ||
        json_object_set_new(o, "name", string_or_null(s->name)) != 0 ||
        json_object_set_new(o, "labels", labels_json(s->labels)) != 0 ||
        json_object_set_new(o, "node_selector", labels_json(s->node_selector)) != 0 ||
        json_object_set_new(o, "limits", limits_json(&s->limits)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}
