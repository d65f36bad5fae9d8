/*
 * batch_load.c: submit N in-process tasks to a running jobd as ONE batch and
 * time them to the end. It builds the body
 *   {"jobs":[{"task":"echo","args":{"i":0}}, ..., {"task":"echo","args":{"i":N-1}}]}
 * (with "executor":"process" in each spec when --executor process is given),
 * sends it as POST /v1/batches, then long-polls GET /v1/batches/{id}?wait=S
 * until the answer says "done": true. The clock runs from just before the
 * POST to that answer, so the rate covers parsing and validating the batch,
 * storing it durably, running every task and storing every end.
 *
 * Afterwards, outside the clock, it reads the first and the last job of the
 * batch and checks that each succeeded with the result its task should give
 * (for echo: the args, so result.i is an integer from 0 to N-1).
 *
 * Output: progress and failures on stderr, and one result line on stdout:
 *   batch_load: n=N executor=E seconds=S post_s=P jobs_per_s=R failures=F
 *               succeeded=A failed=B ... batch_id=ID last_id=ID
 * (the per-state counts come from the batch document). Exit status 0 when
 * every job succeeded, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

/* Longest job or batch id kept from an answer. */
#define MAX_ID_BYTES 64
/* Longest task or executor name accepted on the command line. */
#define MAX_NAME_BYTES 64

struct opts {
    const char *url;      /* base URL, e.g. http://127.0.0.1:8080 */
    long count;           /* jobs in the batch */
    long concurrency;     /* the batch's "concurrency", 0 to leave it out (= all) */
    long wait_s;          /* ?wait= of each GET */
    long timeout_s;       /* whole-transfer timeout of each request */
    long deadline_s;      /* give up when the batch has not ended after this long */
    const char *task;     /* task name */
    const char *executor; /* "executor" of each spec, or NULL to leave it out */
    char *token;          /* bearer token, or NULL */
};

/* A growable byte buffer: request bodies and answers. */
struct buf {
    char *p;
    size_t len, cap;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int buf_add(struct buf *b, const char *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_str(struct buf *b, const char *s) {
    return buf_add(b, s, strlen(s));
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    size_t n = size * nmemb;
    /* A short count makes libcurl fail the transfer with CURLE_WRITE_ERROR. */
    return buf_add(userp, data, n) == 0 ? n : 0;
}

/* A name safe to paste into JSON between quotes: letters, digits, '_', '-', '.'. */
static bool plain_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME_BYTES)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Build the POST /v1/batches body into `b`. */
static int build_body(struct buf *b, const struct opts *o) {
    char spec[256];
    if (buf_str(b, "{\"jobs\":[") != 0)
        return -1;
    for (long i = 0; i < o->count; i++) {
        int n;
        if (o->executor != NULL)
            n = snprintf(spec, sizeof spec,
                         "%s{\"task\":\"%s\",\"executor\":\"%s\",\"args\":{\"i\":%ld}}",
                         i ? "," : "", o->task, o->executor, i);
        else
            n = snprintf(spec, sizeof spec, "%s{\"task\":\"%s\",\"args\":{\"i\":%ld}}",
                         i ? "," : "", o->task, i);
        if (n < 0 || (size_t)n >= sizeof spec || buf_add(b, spec, (size_t)n) != 0)
            return -1;
    }
    if (buf_str(b, "]") != 0)
        return -1;
    if (o->concurrency > 0) {
        int n = snprintf(spec, sizeof spec, ",\"concurrency\":%ld", o->concurrency);
        if (n < 0 || (size_t)n >= sizeof spec || buf_add(b, spec, (size_t)n) != 0)
            return -1;
    }
    return buf_str(b, "}");
}

/*
 * One request on the reused handle `h`: GET `url`, or POST `body` when it is
 * not NULL. The answer lands in `ans`; its status in *status. Returns the
 * parsed JSON answer (NULL after describing the problem on stderr).
 */
static json_t *request(CURL *h, const char *url, const struct buf *body, struct buf *ans,
                       long *status) {
    ans->len = 0;
    if (ans->p != NULL)
        ans->p[0] = '\0';
    *status = 0;
    CURLcode c = curl_easy_setopt(h, CURLOPT_URL, url);
    if (c == CURLE_OK && body != NULL) {
        c = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
        if (c == CURLE_OK)
            c = curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->p);
    } else if (c == CURLE_OK) {
        c = curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    if (c == CURLE_OK)
        c = curl_easy_perform(h);
    if (c != CURLE_OK) {
        fprintf(stderr, "batch_load: %s %s: %s\n", body ? "POST" : "GET", url,
                curl_easy_strerror(c));
        return NULL;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    json_error_t jerr;
    json_t *doc = json_loadb(ans->p ? ans->p : "", ans->len, 0, &jerr);
    if (doc == NULL)
        fprintf(stderr, "batch_load: %s %s: status %ld, answer is not JSON (%s): %.200s\n",
                body ? "POST" : "GET", url, *status, jerr.text, ans->p ? ans->p : "");
    return doc;
}

/* Read a token from `path`, without its trailing newline. Return a new string or NULL. */
static char *read_token(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "batch_load: cannot open token file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n == 0) {
        fprintf(stderr, "batch_load: token file %s is empty\n", path);
        return NULL;
    }
    return strdup(buf);
}

static void usage(FILE *f) {
    fprintf(f, "usage: batch_load --url URL [-n COUNT] [--task NAME] [--executor NAME]\n"
               "                  [--concurrency C] [--wait S] [--timeout S] [--deadline S]\n"
               "                  [--token TOKEN | --token-file FILE]\n"
               "  --url URL           jobd's base URL, e.g. http://127.0.0.1:8080\n"
               "  -n, --count N       jobs in the batch (default 10000)\n"
               "  --task NAME         task of every job, given args {\"i\": index} (default echo)\n"
               "  --executor NAME     \"executor\" of every spec, e.g. process (default: none,\n"
               "                      i.e. jobd's task threads)\n"
               "  --concurrency C     the batch's concurrency (default: not sent, i.e. all)\n"
               "  --wait S            ?wait= of each GET /v1/batches/{id} (default 60)\n"
               "  --timeout S         transfer timeout of each request (default wait + 30)\n"
               "  --deadline S        give up when the batch has not ended after S (default 600)\n"
               "  --token TOKEN       bearer token (default: $JOBD_TOKEN if set)\n"
               "  --token-file FILE   read the bearer token from FILE\n");
}

static int parse_long(const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Check one job of the batch after the run: succeeded, with result.i in [0, n). */
static int check_job(CURL *h, const char *base, const char *id, long n, struct buf *ans) {
    char *url = NULL;
    if (asprintf(&url, "%sv1/jobs/%s", base, id) < 0)
        return -1;
    long status;
    json_t *doc = request(h, url, NULL, ans, &status);
    int rc = -1;
    if (doc == NULL) {
        /* described by request() */
    } else if (status != 200) {
        fprintf(stderr, "batch_load: GET %s: status %ld: %.200s\n", url, status, ans->p);
    } else {
        const char *state = json_string_value(json_object_get(doc, "state"));
        json_t *i = json_object_get(json_object_get(doc, "result"), "i");
        if (state == NULL || strcmp(state, "succeeded") != 0)
            fprintf(stderr, "batch_load: job %s ended %s, not succeeded\n", id,
                    state ? state : "(no state)");
        else if (!json_is_integer(i) || json_integer_value(i) < 0 || json_integer_value(i) >= n)
            fprintf(stderr, "batch_load: job %s has no result {\"i\": 0..%ld}: %.200s\n", id, n - 1,
                    ans->p);
        else
            rc = 0;
    }
    json_decref(doc);
    free(url);
    return rc;
}

int main(int argc, char **argv) {
    struct opts o = {.count = 10000, .wait_s = 60, .deadline_s = 600, .task = "echo"};
    const char *token_file = NULL;
    enum {
        OPT_URL = 256,
        OPT_TASK,
        OPT_EXECUTOR,
        OPT_CONCURRENCY,
        OPT_WAIT,
        OPT_TIMEOUT,
        OPT_DEADLINE,
        OPT_TOKEN,
        OPT_TOKEN_FILE
    };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"count", required_argument, NULL, 'n'},
        {"task", required_argument, NULL, OPT_TASK},
        {"executor", required_argument, NULL, OPT_EXECUTOR},
        {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case OPT_URL:
            o.url = optarg;
            break;
        case 'n':
            bad = parse_long(optarg, 1, 100000, &o.count);
            break;
        case OPT_TASK:
            o.task = optarg;
            bad = !plain_name(optarg);
            break;
        case OPT_EXECUTOR:
            o.executor = optarg;
            bad = !plain_name(optarg);
            break;
        case OPT_CONCURRENCY:
            bad = parse_long(optarg, 1, 100000, &o.concurrency);
            break;
        case OPT_WAIT:
            bad = parse_long(optarg, 1, 300, &o.wait_s);
            break;
        case OPT_TIMEOUT:
            bad = parse_long(optarg, 1, 86400, &o.timeout_s);
            break;
        case OPT_DEADLINE:
            bad = parse_long(optarg, 1, 86400, &o.deadline_s);
            break;
        case OPT_TOKEN:
            free(o.token);
            o.token = strdup(optarg);
            break;
        case OPT_TOKEN_FILE:
            token_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "batch_load: bad value: %s\n", optarg);
            return 2;
        }
    }
    if (optind != argc || o.url == NULL) {
        usage(stderr);
        return 2;
    }
    if (o.timeout_s == 0)
        o.timeout_s = o.wait_s + 30;
    if (token_file != NULL) {
        free(o.token);
        if ((o.token = read_token(token_file)) == NULL)
            return 2;
    } else if (o.token == NULL && getenv("JOBD_TOKEN") != NULL && *getenv("JOBD_TOKEN") != '\0') {
        o.token = strdup(getenv("JOBD_TOKEN"));
    }

    signal(SIGPIPE, SIG_IGN);
    CURLcode gc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (gc != CURLE_OK) {
        fprintf(stderr, "batch_load: curl_global_init: %s\n", curl_easy_strerror(gc));
        return 1;
    }

    int rc = 1;
    CURL *h = NULL;
    struct curl_slist *headers = NULL;
    char *base = NULL, *post_url = NULL, *get_url = NULL, *auth = NULL;
    struct buf body = {0}, ans = {0};
    json_t *doc = NULL;

    const char *slash = o.url[0] != '\0' && o.url[strlen(o.url) - 1] == '/' ? "" : "/";
    if (asprintf(&base, "%s%s", o.url, slash) < 0 ||
        asprintf(&post_url, "%sv1/batches", base) < 0) {
        fprintf(stderr, "batch_load: out of memory\n");
        goto out;
    }
    if (build_body(&body, &o) != 0) {
        fprintf(stderr, "batch_load: out of memory building the batch\n");
        goto out;
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    if (hl != NULL)
        headers = hl;
    if (hl != NULL && (hl = curl_slist_append(headers, "Expect:")) != NULL)
        headers = hl;
    if (hl != NULL && o.token != NULL) {
        if (asprintf(&auth, "Authorization: Bearer %s", o.token) < 0) {
            auth = NULL;
            hl = NULL;
        } else if ((hl = curl_slist_append(headers, auth)) != NULL) {
            headers = hl;
        }
    }
    if (hl == NULL) {
        fprintf(stderr, "batch_load: out of memory\n");
        goto out;
    }
    h = curl_easy_init();
    if (h == NULL) {
        fprintf(stderr, "batch_load: curl_easy_init failed\n");
        goto out;
    }
    CURLcode c = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c == CURLE_OK)
        c = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    if (c == CURLE_OK)
        c = curl_easy_setopt(h, CURLOPT_TIMEOUT, o.timeout_s);
    if (c == CURLE_OK)
        c = curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (c == CURLE_OK)
        c = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    if (c == CURLE_OK)
        c = curl_easy_setopt(h, CURLOPT_WRITEDATA, &ans);
    if (c != CURLE_OK) {
        fprintf(stderr, "batch_load: curl_easy_setopt: %s\n", curl_easy_strerror(c));
        goto out;
    }
    fprintf(stderr, "batch_load: %ld %s jobs%s%s, body %zu bytes\n", o.count, o.task,
            o.executor ? ", executor " : "", o.executor ? o.executor : "", body.len);

    /* ---- the measured part: POST, then long-poll until done */
    long status;
    double t0 = now_s();
    doc = request(h, post_url, &body, &ans, &status);
    double t_post = now_s();
    if (doc == NULL)
        goto out;
    if (status != 201) {
        fprintf(stderr, "batch_load: POST %s: status %ld: %.300s\n", post_url, status, ans.p);
        goto out;
    }
    const char *bid = json_string_value(json_object_get(doc, "id"));
    char batch_id[MAX_ID_BYTES];
    if (bid == NULL || !plain_name(bid)) {
        fprintf(stderr, "batch_load: the POST answer has no usable id: %.200s\n", ans.p);
        goto out;
    }
    snprintf(batch_id, sizeof batch_id, "%s", bid);
    if (asprintf(&get_url, "%sv1/batches/%s?wait=%ld", base, batch_id, o.wait_s) < 0) {
        get_url = NULL;
        goto out;
    }
    double t_end = t_post;
    while (!json_is_true(json_object_get(doc, "done"))) {
        if (now_s() - t0 > (double)o.deadline_s) {
            fprintf(stderr, "batch_load: batch %s has not ended after %ld s\n", batch_id,
                    o.deadline_s);
            goto out;
        }
        json_decref(doc);
        doc = request(h, get_url, NULL, &ans, &status);
        t_end = now_s();
        if (doc == NULL)
            goto out;
        if (status != 200) {
            fprintf(stderr, "batch_load: GET %s: status %ld: %.300s\n", get_url, status, ans.p);
            goto out;
        }
        json_t *counts = json_object_get(doc, "counts");
        fprintf(stderr, "batch_load: %.1f s: %lld queued, %lld running, %lld succeeded\n",
                t_end - t0, json_integer_value(json_object_get(counts, "queued")),
                json_integer_value(json_object_get(counts, "running")),
                json_integer_value(json_object_get(counts, "succeeded")));
    }
    /* ---- end of the measured part */

    double secs = t_end - t0;
    double rate = secs > 0 ? (double)o.count / secs : 0.0;
    json_t *counts = json_object_get(doc, "counts");
    json_t *jobs = json_object_get(doc, "jobs");
    json_int_t total = json_integer_value(json_object_get(doc, "total"));
    json_int_t succeeded = json_integer_value(json_object_get(counts, "succeeded"));
    long failures = (long)(o.count - succeeded);
    if (!json_is_object(counts) || total != o.count) {
        fprintf(stderr, "batch_load: the batch document is not as expected: total %lld\n",
                (long long)total);
        failures = failures > 0 ? failures : 1;
    }
    if (failures > 0)
        fprintf(stderr, "batch_load: failure: %ld of %ld jobs did not succeed\n", failures,
                o.count);

    /* Outside the clock: the first and last job really ran the task. */
    char last_id[MAX_ID_BYTES] = "-";
    size_t njobs = json_array_size(jobs);
    if (njobs != (size_t)o.count) {
        fprintf(stderr, "batch_load: the batch lists %zu jobs, not %ld\n", njobs, o.count);
        failures = failures > 0 ? failures : 1;
    } else {
        const char *first = json_string_value(json_array_get(jobs, 0));
        const char *last = json_string_value(json_array_get(jobs, njobs - 1));
        if (first == NULL || last == NULL || check_job(h, base, first, o.count, &ans) != 0 ||
            check_job(h, base, last, o.count, &ans) != 0) {
            failures = failures > 0 ? failures : 1;
        } else {
            snprintf(last_id, sizeof last_id, "%s", last);
        }
    }

    char state_counts[512] = "";
    size_t used = 0;
    const char *key;
    json_t *v;
    json_object_foreach(counts, key, v) {
        int n = snprintf(state_counts + used, sizeof state_counts - used, " %s=%lld", key,
                         (long long)json_integer_value(v));
        if (n < 0 || (size_t)n >= sizeof state_counts - used)
            break;
        used += (size_t)n;
    }
    fprintf(stderr,
            "batch_load: %ld %s jobs in one batch%s%s: accepted in %.3f s, all ended in %.3f s, "
            "%.1f jobs/s, %ld failed\n",
            o.count, o.task, o.executor ? ", executor " : "", o.executor ? o.executor : "",
            t_post - t0, secs, rate, failures);
    printf("batch_load: n=%ld executor=%s seconds=%.3f post_s=%.3f jobs_per_s=%.1f "
           "failures=%ld%s batch_id=%s last_id=%s\n",
           o.count, o.executor ? o.executor : "thread", secs, t_post - t0, rate, failures,
           state_counts, batch_id, last_id);
    rc = failures == 0 ? 0 : 1;
out:
    json_decref(doc);
    if (h != NULL)
        curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    free(body.p);
    free(ans.p);
    free(base);
    free(post_url);
    free(get_url);
    free(auth);
    free(o.token);
    curl_global_cleanup();
    return rc;
}
