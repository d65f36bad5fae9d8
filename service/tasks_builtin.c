/*
 * tasks_builtin.c: the builtin tasks sleep, echo and http (see tasks_builtin.h).
 *
 * Each task parses its args with the same function its check uses, so a job
 * that reaches a task without a check at submit time (a recovered job, a
 * direct call) fails with the same message instead of misbehaving.
 *
 * The http task drives one libcurl easy handle through a private multi
 * handle, polled in slices of HTTP_POLL_MS so that a cancel is seen within
 * that time even when the server sends nothing (curl_easy_perform would wait
 * up to a second between progress callbacks). All of its state lives on the
 * task's own thread; nothing here is shared between threads.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>

#include "jobd/task.h"
#include "tasks_builtin.h"

#define SLEEP_MAX_SECONDS 31622400.0 /* 366 days */

#define HTTP_URL_MAX        8192   /* bytes of args.url */
#define HTTP_METHOD_MAX     32     /* bytes of args.method */
#define HTTP_HEADERS_MAX    64     /* entries of args.headers */
#define HTTP_HEADER_NAME    256    /* bytes of a header name */
#define HTTP_HEADER_VALUE   8192   /* bytes of a header value */
#define HTTP_EXPECT_MAX     64     /* entries of args.expect */
#define HTTP_TIMEOUT_DEF    30.0   /* seconds, default of args.timeout */
#define HTTP_TIMEOUT_MAX    3600.0 /* seconds */
#define HTTP_CONNECT_MAX_MS 30000L /* connect timeout, when shorter than args.timeout */
#define HTTP_MAX_REDIRS     10L    /* with follow_redirects */
#define HTTP_POLL_MS        50     /* longest wait between two looks at the cancel flag */
#define HTTP_RESP_HEADERS   128    /* response headers kept in the result */
#define HTTP_RESP_HDR_BYTES 65536  /* bytes of response headers kept in the result */

/*
 * Write "field" and the formatted rule into a check function's buffers and
 * return -1, the check's failure value.
 */
static int fail(char *field, size_t field_len, char *msg, size_t msg_len, const char *f,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail(char *field, size_t field_len, char *msg, size_t msg_len, const char *f,
                const char *fmt, ...) {
    va_list ap;

    if (field_len > 0)
        snprintf(field, field_len, "%s", f);
    if (msg_len > 0) {
        va_start(ap, fmt);
        vsnprintf(msg, msg_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Reject the first key of `obj` that is not in the NULL-terminated list `names`. */
static int check_fields(const json_t *obj, const char *const *names, char *field, size_t field_len,
                        char *msg, size_t msg_len) {
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        const char *const *n = names;
        while (*n != NULL && strcmp(*n, key) != 0)
            n++;
        /* A key with a NUL in it ("seconds\u0000x") is not "seconds". */
        if (*n == NULL || strlen(key) != json_object_iter_key_len(it))
            return fail(field, field_len, msg, msg_len, key, "unknown field");
    }
    return 0;
}

/* ---- sleep ---- */

static const char *const sleep_fields[] = {"seconds", NULL};

static int sleep_parse(const json_t *args, double *seconds, char *field, size_t field_len,
                       char *msg, size_t msg_len) {
    if (!json_is_object(args))
        return fail(field, field_len, msg, msg_len, "", "must be an object: {\"seconds\": n}");
    if (check_fields(args, sleep_fields, field, field_len, msg, msg_len) < 0)
        return -1;
    const json_t *s = json_object_get(args, "seconds");
    if (s == NULL)
        return fail(field, field_len, msg, msg_len, "seconds", "is required");
    if (!json_is_number(s))
        return fail(field, field_len, msg, msg_len, "seconds", "must be a number");
    double v = json_number_value(s);
    if (!(v >= 0 && v <= SLEEP_MAX_SECONDS))
        return fail(field, field_len, msg, msg_len, "seconds", "must be between 0 and %.0f",
                    SLEEP_MAX_SECONDS);
    *seconds = v;
    return 0;
}

static int sleep_check(const json_t *args, char *field, size_t field_len, char *msg,
                       size_t msg_len) {
    double seconds;
    return sleep_parse(args, &seconds, field, field_len, msg, msg_len);
}

static int sleep_run(const json_t *args, jobd_task *t) {
    char field[64] = "", msg[192] = "";
    double seconds = 0;

    if (sleep_parse(args, &seconds, field, sizeof(field), msg, sizeof(msg)) < 0) {
        jobd_task_set_error(t, "args%s%s: %s", field[0] ? "." : "", field, msg);
        return 1;
    }
    if (jobd_task_sleep(t, seconds) == -ECANCELED) {
        jobd_task_set_error(t, "cancelled");
        return 1;
    }
    return 0;
}

/* ---- echo ---- */

static int echo_run(const json_t *args, jobd_task *t) {
    json_t *copy = args != NULL ? json_deep_copy(args) : json_null();
    char *text = json_dumps(args != NULL ? args : copy, JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = 1;

    if (copy == NULL || text == NULL) {
        jobd_task_set_error(t, "echo: out of memory");
        goto out;
    }
    int w = jobd_task_printf(t, "%s\n", text);
    if (w < 0) {
        jobd_task_set_error(t, "echo: cannot write output: %s", strerror(-w));
        goto out;
    }
    jobd_task_set_result(t, copy);
    copy = NULL;
    rc = 0;
out:
    json_decref(copy);
    free(text);
    return rc;
}

/* ---- http ---- */

/* A parsed http request. Pointers borrow from the args. */
struct http_req {
    const char *url;
    const char *method;    /* uppercase token */
    const json_t *headers; /* object of strings, or NULL */
    const char *body;      /* NULL when absent; may contain NUL bytes */
    size_t body_len;
    double timeout;            /* seconds */
    bool follow;               /* follow redirects */
    const json_t *expect_list; /* array of statuses, or NULL for the range */
    int expect_lo, expect_hi;  /* the range when expect_list is NULL */
    const char *expect_text;   /* args.expect as given when a string; NULL otherwise */
};

static const char *const http_fields[] = {"url",     "method", "headers",          "body",
                                          "timeout", "expect", "follow_redirects", NULL};

/* RFC 9110 tchar: the characters of a header name. */
static bool tchar(unsigned char c) {
    return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_token(const char *s, size_t max) {
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || !tchar((unsigned char)s[n]))
            return false;
    return n > 0;
}

/* Parse "200" or "200-299" into [lo, hi], each 100..599. Return 0 or -1. */
static int parse_range(const char *s, int *lo, int *hi) {
    size_t n = strlen(s);

    if (n != 3 && !(n == 7 && s[3] == '-'))
        return -1;
    for (size_t i = 0; i < n; i++)
        if (i != 3 && !isdigit((unsigned char)s[i]))
            return -1;
    int a = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    int b = n == 3 ? a : (s[4] - '0') * 100 + (s[5] - '0') * 10 + (s[6] - '0');
    if (a < 100 || b > 599 || a > b)
        return -1;
    *lo = a;
    *hi = b;
    return 0;
}

static int http_parse_expect(const json_t *e, struct http_req *r, char *field, size_t field_len,
                             char *msg, size_t msg_len) {
    static const char rule[] =
        "must be a status (\"404\"), a range (\"200-299\") or an array of statuses 100..599";

    if (e == NULL) {
        r->expect_lo = 200;
        r->expect_hi = 299;
        r->expect_text = "200-299";
        return 0;
    }
    if (json_is_string(e)) {
        if (parse_range(json_string_value(e), &r->expect_lo, &r->expect_hi) < 0)
            return fail(field, field_len, msg, msg_len, "expect", "%s", rule);
        r->expect_text = json_string_value(e);
        return 0;
    }
    if (!json_is_array(e))
        return fail(field, field_len, msg, msg_len, "expect", "%s", rule);
    if (json_array_size(e) == 0 || json_array_size(e) > HTTP_EXPECT_MAX)
        return fail(field, field_len, msg, msg_len, "expect", "must list 1 to %d statuses",
                    HTTP_EXPECT_MAX);
    for (size_t i = 0; i < json_array_size(e); i++) {
        const json_t *s = json_array_get(e, i);
        if (!json_is_integer(s) || json_integer_value(s) < 100 || json_integer_value(s) > 599) {
            char f[32];
            snprintf(f, sizeof(f), "expect[%zu]", i);
            return fail(field, field_len, msg, msg_len, f, "must be an integer status 100..599");
        }
    }
    r->expect_list = e;
    return 0;
}

static int http_parse_headers(const json_t *h, char *field, size_t field_len, char *msg,
                              size_t msg_len) {
    const char *name;
    json_t *v;

    if (!json_is_object(h))
        return fail(field, field_len, msg, msg_len, "headers",
                    "must be an object of header names to strings");
    if (json_object_size(h) > HTTP_HEADERS_MAX)
        return fail(field, field_len, msg, msg_len, "headers", "must have at most %d entries",
                    HTTP_HEADERS_MAX);
    json_object_foreach((json_t *)h, name, v) {
        char f[HTTP_HEADER_NAME + 16];
        snprintf(f, sizeof(f), "headers.%s", name);
        if (!is_token(name, HTTP_HEADER_NAME))
            return fail(field, field_len, msg, msg_len, f,
                        "is not a header name (letters, digits and !#$%%&'*+-.^_`|~, at most %d)",
                        HTTP_HEADER_NAME);
        if (!json_is_string(v))
            return fail(field, field_len, msg, msg_len, f, "must be a string");
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (n > HTTP_HEADER_VALUE)
            return fail(field, field_len, msg, msg_len, f, "must be at most %d bytes",
                        HTTP_HEADER_VALUE);
        if (strlen(s) != n || strpbrk(s, "\r\n") != NULL)
            return fail(field, field_len, msg, msg_len, f,
                        "must not contain CR, LF or NUL characters");
    }
    return 0;
}

static int http_parse_url(const char *url, char *field, size_t field_len, char *msg,
                          size_t msg_len) {
    static const char rule[] = "must be an http:// or https:// URL";
    CURLU *u;
    CURLUcode uc;
    char *scheme = NULL;
    int rc = 0;

    if (strlen(url) > HTTP_URL_MAX)
        return fail(field, field_len, msg, msg_len, "url", "must be at most %d bytes",
                    HTTP_URL_MAX);
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return fail(field, field_len, msg, msg_len, "url", "%s", rule);
    u = curl_url();
    if (u == NULL)
        return fail(field, field_len, msg, msg_len, "url", "cannot be checked: out of memory");
    uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        rc = fail(field, field_len, msg, msg_len, "url", "is not a valid URL: %s",
                  curl_url_strerror(uc));
        goto out;
    }
    uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc != CURLUE_OK || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        rc = fail(field, field_len, msg, msg_len, "url", "%s", rule);
out:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* Parse and check the args of http into r. Return 0, or -1 with field and msg filled. */
static int http_parse(const json_t *args, struct http_req *r, char *field, size_t field_len,
                      char *msg, size_t msg_len) {
    const json_t *v;

    memset(r, 0, sizeof(*r));
    if (!json_is_object(args))
        return fail(field, field_len, msg, msg_len, "", "must be an object: {\"url\": ...}");
    if (check_fields(args, http_fields, field, field_len, msg, msg_len) < 0)
        return -1;

    v = json_object_get(args, "url");
    if (v == NULL)
        return fail(field, field_len, msg, msg_len, "url", "is required");
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
        return fail(field, field_len, msg, msg_len, "url", "must be a string");
    r->url = json_string_value(v);
    if (http_parse_url(r->url, field, field_len, msg, msg_len) < 0)
        return -1;

    r->method = "GET";
    v = json_object_get(args, "method");
    if (v != NULL) {
        const char *m = json_is_string(v) ? json_string_value(v) : "";
        size_t n = 0;
        while (m[n] != '\0' && n <= HTTP_METHOD_MAX &&
               ((m[n] >= 'A' && m[n] <= 'Z') ||
                (n > 0 && (isdigit((unsigned char)m[n]) || m[n] == '-' || m[n] == '_'))))
            n++;
        if (n == 0 || n > HTTP_METHOD_MAX || m[n] != '\0')
            return fail(field, field_len, msg, msg_len, "method",
                        "must be an uppercase method name such as GET or POST");
        r->method = m;
    }

    v = json_object_get(args, "headers");
    if (v != NULL) {
        if (http_parse_headers(v, field, field_len, msg, msg_len) < 0)
            return -1;
        r->headers = v;
    }

    v = json_object_get(args, "body");
    if (v != NULL) {
        if (!json_is_string(v))
            return fail(field, field_len, msg, msg_len, "body", "must be a string");
        if (strcmp(r->method, "HEAD") == 0)
            return fail(field, field_len, msg, msg_len, "body", "is not allowed with HEAD");
        r->body = json_string_value(v);
        r->body_len = json_string_length(v);
    }

    r->timeout = HTTP_TIMEOUT_DEF;
    v = json_object_get(args, "timeout");
    if (v != NULL) {
        if (!json_is_number(v))
            return fail(field, field_len, msg, msg_len, "timeout", "must be a number of seconds");
        r->timeout = json_number_value(v);
        if (!(r->timeout > 0 && r->timeout <= HTTP_TIMEOUT_MAX))
            return fail(field, field_len, msg, msg_len, "timeout",
                        "must be more than 0 and at most %.0f seconds", HTTP_TIMEOUT_MAX);
    }

    v = json_object_get(args, "follow_redirects");
    if (v != NULL) {
        if (!json_is_boolean(v))
            return fail(field, field_len, msg, msg_len, "follow_redirects", "must be a boolean");
        r->follow = json_is_true(v);
    }

    return http_parse_expect(json_object_get(args, "expect"), r, field, field_len, msg, msg_len);
}

static int http_check(const json_t *args, char *field, size_t field_len, char *msg,
                      size_t msg_len) {
    struct http_req r;
    return http_parse(args, &r, field, field_len, msg, msg_len);
}

static bool http_expected(const struct http_req *r, long status) {
    if (r->expect_list == NULL)
        return status >= r->expect_lo && status <= r->expect_hi;
    for (size_t i = 0; i < json_array_size(r->expect_list); i++)
        if (json_integer_value(json_array_get(r->expect_list, i)) == status)
            return true;
    return false;
}

/* Describe the expected statuses ("200-299", "200, 204") into buf. */
static void http_expect_text(const struct http_req *r, char *buf, size_t len) {
    size_t used = 0;

    buf[0] = '\0';
    if (r->expect_list == NULL) {
        snprintf(buf, len, "%s", r->expect_text);
        return;
    }
    for (size_t i = 0; i < json_array_size(r->expect_list) && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%d", i ? ", " : "",
                         (int)json_integer_value(json_array_get(r->expect_list, i)));
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* The state of one http run, shared by the curl callbacks (all on the task's thread). */
struct http_run {
    jobd_task *t;
    json_t *headers;     /* response headers of the last response, lowercased names */
    size_t header_bytes; /* kept in `headers` */
    int write_err;       /* a negative errno when the body could not be written */
};

/* A JSON string of n bytes; bytes that are not valid UTF-8 become '?'. Return new, or NULL. */
static json_t *header_string(const char *s, size_t n) {
    json_t *v = json_stringn(s, n);
    if (v != NULL)
        return v;
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 && s[i] != '\0' ? s[i] : '?';
    v = json_stringn(copy, n);
    free(copy);
    return v;
}

/* Collect one header line of the response into run->headers. */
static size_t http_on_header(char *buf, size_t size, size_t nitems, void *ud) {
    struct http_run *run = ud;
    size_t len = size * nitems, n = len, name_len;
    char name[HTTP_HEADER_NAME + 1];
    const char *colon, *value;

    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response: forget the previous one */
        json_object_clear(run->headers);
        run->header_bytes = 0;
        return len;
    }
    while (n > 0 && (buf[n - 1] == '\r' || buf[n - 1] == '\n'))
        n--;
    colon = memchr(buf, ':', n);
    if (colon == NULL)
        return len;
    name_len = (size_t)(colon - buf);
    if (name_len == 0 || name_len > HTTP_HEADER_NAME)
        return len;
    for (size_t i = 0; i < name_len; i++) {
        if (!tchar((unsigned char)buf[i]))
            return len;
        name[i] = (char)tolower((unsigned char)buf[i]);
    }
    name[name_len] = '\0';
    value = colon + 1;
    while (value < buf + n && (*value == ' ' || *value == '\t'))
        value++;
    while (n > 0 && buf + n > value && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    size_t value_len = (size_t)(buf + n - value);

    if (run->header_bytes + name_len + value_len > HTTP_RESP_HDR_BYTES)
        return len;
    json_t *old = json_object_get(run->headers, name);
    json_t *v;
    if (old != NULL) { /* a repeated header: join the values as HTTP allows */
        size_t old_len = json_string_length(old);
        char *joined = malloc(old_len + 2 + value_len);
        if (joined == NULL)
            return 0;
        memcpy(joined, json_string_value(old), old_len);
        memcpy(joined + old_len, ", ", 2);
        memcpy(joined + old_len + 2, value, value_len);
        v = header_string(joined, old_len + 2 + value_len);
        free(joined);
    } else {
        if (json_object_size(run->headers) >= HTTP_RESP_HEADERS)
            return len;
        v = header_string(value, value_len);
    }
    if (v == NULL || json_object_set_new(run->headers, name, v) != 0)
        return 0; /* out of memory: abort the transfer */
    run->header_bytes += name_len + value_len;
    return len;
}

/* Stream the response body to the job's stdout. */
static size_t http_on_body(char *buf, size_t size, size_t nitems, void *ud) {
    struct http_run *run = ud;
    size_t len = size * nitems;

    if (len == 0)
        return 0;
    int rc = jobd_task_write(run->t, 1, buf, len);
    if (rc < 0) {
        run->write_err = rc;
        return 0;
    }
    return len;
}

static int http_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow) {
    struct http_run *run = ud;
    return jobd_task_cancelled(run->t) ? 1 : 0;
}

/* libcurl 7.88 does not open its sockets close-on-exec: do it for it. */
static curl_socket_t http_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/*
 * Add the request headers of args.headers to *list, plus "Expect:" (no
 * 100-continue wait) when there is a body and the user set no Expect.
 * Return 0 or -ENOMEM (*list keeps what was added).
 */
static int http_build_headers(const struct http_req *r, struct curl_slist **list) {
    bool has_expect = false;
    const char *name;
    json_t *v;

    if (r->headers != NULL) {
        json_object_foreach((json_t *)r->headers, name, v) {
            const char *s = json_string_value(v);
            size_t n = strlen(name) + strlen(s) + 3;
            char *line = malloc(n);
            if (line == NULL)
                return -ENOMEM;
            /* "Name;" is libcurl's way to send a header with an empty value. */
            if (s[0] == '\0')
                snprintf(line, n, "%s;", name);
            else
                snprintf(line, n, "%s: %s", name, s);
            struct curl_slist *l = curl_slist_append(*list, line);
            free(line);
            if (l == NULL)
                return -ENOMEM;
            *list = l;
            if (strcasecmp(name, "Expect") == 0)
                has_expect = true;
        }
    }
    if (r->body != NULL && !has_expect) {
        struct curl_slist *l = curl_slist_append(*list, "Expect:");
        if (l == NULL)
            return -ENOMEM;
        *list = l;
    }
    return 0;
}

/* Set an option or fail the run with the option's name. */
#define SETOPT(e, opt, val)                                                                        \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt((e), (opt), (val));                                         \
        if (c_ != CURLE_OK) {                                                                      \
            jobd_task_set_error(t, "http: cannot set %s: %s", #opt, curl_easy_strerror(c_));       \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

static int http_run(const json_t *args, jobd_task *t) {
    char field[64] = "", msg[192] = "", errbuf[CURL_ERROR_SIZE] = "";
    struct http_req r;
    struct http_run run = {.t = t};
    struct curl_slist *hdrs = NULL;
    CURL *e = NULL;
    CURLM *m = NULL;
    CURLcode res = CURLE_OK;
    bool added = false, done = false;
    int rc = 1;

    if (http_parse(args, &r, field, sizeof(field), msg, sizeof(msg)) < 0) {
        jobd_task_set_error(t, "args%s%s: %s", field[0] ? "." : "", field, msg);
        return 1;
    }
    run.headers = json_object();
    e = curl_easy_init();
    m = curl_multi_init();
    if (run.headers == NULL || e == NULL || m == NULL) {
        jobd_task_set_error(t, "http: cannot create a transfer: out of memory");
        goto out;
    }
    if (http_build_headers(&r, &hdrs) < 0) {
        jobd_task_set_error(t, "http: out of memory");
        goto out;
    }

    long timeout_ms = (long)(r.timeout * 1000);
    if (timeout_ms < 1)
        timeout_ms = 1;
    SETOPT(e, CURLOPT_URL, r.url);
    SETOPT(e, CURLOPT_NOSIGNAL, 1L);
    SETOPT(e, CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(e, CURLOPT_FOLLOWLOCATION, r.follow ? 1L : 0L);
    SETOPT(e, CURLOPT_MAXREDIRS, HTTP_MAX_REDIRS);
    SETOPT(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS,
           timeout_ms < HTTP_CONNECT_MAX_MS ? timeout_ms : HTTP_CONNECT_MAX_MS);
    SETOPT(e, CURLOPT_USERAGENT, "jobd/" JOBD_VERSION);
    SETOPT(e, CURLOPT_HTTPHEADER, hdrs);
    SETOPT(e, CURLOPT_OPENSOCKETFUNCTION, http_open_socket);
    SETOPT(e, CURLOPT_HEADERFUNCTION, http_on_header);
    SETOPT(e, CURLOPT_HEADERDATA, &run);
    SETOPT(e, CURLOPT_WRITEFUNCTION, http_on_body);
    SETOPT(e, CURLOPT_WRITEDATA, &run);
    SETOPT(e, CURLOPT_NOPROGRESS, 0L);
    SETOPT(e, CURLOPT_XFERINFOFUNCTION, http_on_progress);
    SETOPT(e, CURLOPT_XFERINFODATA, &run);

    bool is_get = strcmp(r.method, "GET") == 0, is_post = strcmp(r.method, "POST") == 0;
    if (strcmp(r.method, "HEAD") == 0) {
        SETOPT(e, CURLOPT_NOBODY, 1L);
    } else if (r.body != NULL || is_post) {
        SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r.body_len);
        SETOPT(e, CURLOPT_POSTFIELDS, r.body != NULL ? r.body : "");
        if (!is_post)
            SETOPT(e, CURLOPT_CUSTOMREQUEST, r.method);
    } else if (!is_get) {
        SETOPT(e, CURLOPT_CUSTOMREQUEST, r.method);
    }

    CURLMcode mc = curl_multi_add_handle(m, e);
    if (mc != CURLM_OK) {
        jobd_task_set_error(t, "http: %s", curl_multi_strerror(mc));
        goto out;
    }
    added = true;
    for (;;) {
        int running = 0;
        mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK || running == 0)
            break;
        if (jobd_task_cancelled(t))
            break;
        mc = curl_multi_poll(m, NULL, 0, HTTP_POLL_MS, NULL);
        if (mc != CURLM_OK)
            break;
    }
    if (jobd_task_cancelled(t)) {
        jobd_task_set_error(t, "cancelled");
        goto out;
    }
    if (mc != CURLM_OK) {
        jobd_task_set_error(t, "http: %s", curl_multi_strerror(mc));
        goto out;
    }
    CURLMsg *cm;
    int left;
    while ((cm = curl_multi_info_read(m, &left)) != NULL) {
        if (cm->msg == CURLMSG_DONE && cm->easy_handle == e) {
            res = cm->data.result;
            done = true;
        }
    }
    if (!done) {
        jobd_task_set_error(t, "http: the transfer ended without a result");
        goto out;
    }
    if (res == CURLE_WRITE_ERROR && run.write_err < 0) {
        jobd_task_set_error(t, "http: cannot write the response body: %s",
                            strerror(-run.write_err));
        goto out;
    }
    if (res != CURLE_OK) {
        jobd_task_set_error(t, "http: %s", errbuf[0] ? errbuf : curl_easy_strerror(res));
        goto out;
    }

    long status = 0;
    curl_off_t elapsed_us = 0;
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
        curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &elapsed_us) != CURLE_OK) {
        jobd_task_set_error(t, "http: cannot read the response status");
        goto out;
    }
    json_t *result = json_pack("{s:I, s:O, s:I}", "status", (json_int_t)status, "headers",
                               run.headers, "elapsed_ms", (json_int_t)(elapsed_us / 1000));
    if (result == NULL) {
        jobd_task_set_error(t, "http: out of memory");
        goto out;
    }
    jobd_task_set_result(t, result);
    if (!http_expected(&r, status)) {
        char expect[HTTP_EXPECT_MAX * 5 + 8];
        http_expect_text(&r, expect, sizeof(expect));
        jobd_task_set_error(t, "HTTP %ld is not an expected status (%s)", status, expect);
        goto out;
    }
    rc = 0;
out:
    if (added)
        curl_multi_remove_handle(m, e);
    curl_multi_cleanup(m);
    curl_easy_cleanup(e);
    curl_slist_free_all(hdrs);
    json_decref(run.headers);
    return rc;
}

/* ---- registration ---- */

static const struct jobd_task_def builtins[] = {
    {"sleep", "Wait {\"seconds\": n}; cancellable.", sleep_run, sleep_check},
    {"echo", "Return args as the result and print them as JSON.", echo_run, NULL},
    {"http", "Make an HTTP request {url, method, headers, body, timeout, expect}.", http_run,
     http_check},
};

int tasks_builtin_register(void) {
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        int rc = jobd_task_register(&builtins[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
