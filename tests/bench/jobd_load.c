/*
 * jobd_load.c: a load generator for a running jobd. It submits N jobs
 * (each {"command":["/bin/true"]}, or the body given with --spec, such as
 * {"task":"echo","args":{"i":0}}) with POST /v1/jobs?wait=S, keeping K
 * requests in flight through one libcurl multi handle driven by this one
 * thread, and checks that every answer is 201 with state "succeeded".
 * Because each request waits for its job's end, K in-flight requests keep up to K jobs
 * queued or running in jobd, and the rate measured is the rate of durable,
 * finished jobs.
 *
 * The clock runs from the first submit to the moment the last job is
 * answered as ended. Output: progress and failures on stderr, and one
 * result line on stdout:
 *   jobd_load: n=N k=K seconds=S jobs_per_s=R failures=F p50_ms=A p99_ms=B last_id=ID
 * Exit status 0 when every job succeeded, 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

/* Failures described on stderr one by one; the rest are only counted. */
#define MAX_REPORTED_FAILURES 5
/* Longest job id kept from an answer. */
#define MAX_ID_BYTES 64

static const char default_spec[] = "{\"command\":[\"/bin/true\"]}";

struct opts {
    const char *url;  /* base URL, e.g. http://127.0.0.1:8080 */
    long count;       /* jobs to submit */
    long inflight;    /* requests in flight at once (K) */
    long wait_s;      /* ?wait= of each submit */
    long timeout_s;   /* whole-transfer timeout of each request */
    char *token;      /* bearer token, or NULL */
    const char *spec; /* body of every submit: a JSON object */
};

/* One request slot; `body` collects the answer of the request in flight. */
struct req {
    CURL *h;
    char *body;
    size_t len, cap;
    double started; /* monotonic seconds when this request was added */
};

struct stats {
    long answered, failures, reported;
    double *latency; /* seconds, one per answered request */
    char last_id[MAX_ID_BYTES];
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp) {
    struct req *r = userp;
    size_t n = size * nmemb;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 2048;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL)
            return 0; /* makes libcurl fail the transfer with CURLE_WRITE_ERROR */
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

static void fail(struct stats *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Count a failure and describe the first few on stderr. */
static void fail(struct stats *st, const char *fmt, ...) {
    st->failures++;
    if (st->reported++ >= MAX_REPORTED_FAILURES)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("jobd_load: failure: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Judge one finished transfer: 201 and state "succeeded", else a failure. */
static void check_answer(struct req *r, CURLcode result, struct stats *st) {
    if (result != CURLE_OK) {
        fail(st, "transfer: %s", curl_easy_strerror(result));
        return;
    }
    long status = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 201) {
        fail(st, "status %ld: %.200s", status, r->body ? r->body : "");
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(r->body ? r->body : "", r->len, 0, &jerr);
    if (doc == NULL) {
        fail(st, "answer is not JSON: %s", jerr.text);
        return;
    }
    const char *state = json_string_value(json_object_get(doc, "state"));
    const char *id = json_string_value(json_object_get(doc, "id"));
    if (state == NULL || strcmp(state, "succeeded") != 0)
        fail(st, "job %s ended %s, not succeeded", id ? id : "?", state ? state : "(no state)");
    else if (id != NULL)
        snprintf(st->last_id, sizeof st->last_id, "%s", id);
    json_decref(doc);
}

/* Set up a handle for the submit URL once; it is reused for every request of its slot. */
static int setup_handle(struct req *r, const char *submit_url, const struct curl_slist *headers,
                        const struct opts *o) {
    r->h = curl_easy_init();
    if (r->h == NULL)
        return -1;
    CURLcode c = CURLE_OK;
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_URL, submit_url);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_CONNECTTIMEOUT, 10L);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_TIMEOUT, o->timeout_s);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, headers);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_POSTFIELDS, o->spec);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_POSTFIELDSIZE, (long)strlen(o->spec));
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, on_body);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
    if (c == CURLE_OK)
        c = curl_easy_setopt(r->h, CURLOPT_PRIVATE, r);
    if (c != CURLE_OK) {
        fprintf(stderr, "jobd_load: curl_easy_setopt: %s\n", curl_easy_strerror(c));
        return -1;
    }
    return 0;
}

static int submit(CURLM *m, struct req *r) {
    r->len = 0;
    r->started = now_s();
    CURLMcode mc = curl_multi_add_handle(m, r->h);
    if (mc != CURLM_OK) {
        fprintf(stderr, "jobd_load: curl_multi_add_handle: %s\n", curl_multi_strerror(mc));
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Read a token from `path`, without its trailing newline. Return a new string or NULL. */
static char *read_token(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "jobd_load: cannot open token file %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n == 0) {
        fprintf(stderr, "jobd_load: token file %s is empty\n", path);
        return NULL;
    }
    return strdup(buf);
}

static void usage(FILE *f) {
    fprintf(
        f, "usage: jobd_load --url URL [-n COUNT] [-c C] [-k INFLIGHT] [--wait S]\n"
           "                 [--timeout S] [--spec JSON] [--token TOKEN | --token-file FILE]\n"
           "  --url URL           jobd's base URL, e.g. http://127.0.0.1:8080\n"
           "  -n, --count N       jobs to submit (default 20000)\n"
           "  -c, --concurrency C jobd's --max-procs; sets the default of -k to 2 x C (default 2)\n"
           "  -k, --inflight K    requests in flight at once (default 2 x C)\n"
           "  --wait S            ?wait= of each submit, seconds (default 60)\n"
           "  --timeout S         transfer timeout of each request (default wait + 30)\n"
           "  --spec JSON         body of every submit, a job spec object\n"
           "                      (default {\"command\":[\"/bin/true\"]};\n"
           "                      e.g. {\"task\":\"echo\",\"args\":{\"i\":0}})\n"
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

int main(int argc, char **argv) {
    struct opts o = {
        .count = 20000, .inflight = 0, .wait_s = 60, .timeout_s = 0, .spec = default_spec};
    long conc = 2;
    const char *token_file = NULL;
    enum { OPT_URL = 256, OPT_WAIT, OPT_TIMEOUT, OPT_TOKEN, OPT_TOKEN_FILE, OPT_SPEC };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"count", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {"inflight", required_argument, NULL, 'k'},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"spec", required_argument, NULL, OPT_SPEC},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "n:c:k:h", longopts, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case OPT_URL:
            o.url = optarg;
            break;
        case 'n':
            bad = parse_long(optarg, 1, 100000000, &o.count);
            break;
        case 'c':
            bad = parse_long(optarg, 1, 4096, &conc);
            break;
        case 'k':
            bad = parse_long(optarg, 1, 8192, &o.inflight);
            break;
        case OPT_WAIT:
            bad = parse_long(optarg, 0, 300, &o.wait_s);
            break;
        case OPT_TIMEOUT:
            bad = parse_long(optarg, 1, 86400, &o.timeout_s);
            break;
        case OPT_TOKEN:
            free(o.token);
            o.token = strdup(optarg);
            break;
        case OPT_TOKEN_FILE:
            token_file = optarg;
            break;
        case OPT_SPEC:
            o.spec = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "jobd_load: bad number: %s\n", optarg);
            return 2;
        }
    }
    if (optind != argc || o.url == NULL) {
        usage(stderr);
        return 2;
    }
    {
        /* Refuse a spec that is not a JSON object here rather than count N 400s. */
        json_error_t jerr;
        json_t *spec = json_loads(o.spec, 0, &jerr);
        bool parsed = spec != NULL, is_object = json_is_object(spec);
        json_decref(spec);
        if (!is_object) {
            fprintf(stderr, "jobd_load: --spec must be a JSON object%s%s\n", parsed ? "" : ": ",
                    parsed ? "" : jerr.text);
            return 2;
        }
    }
    if (o.inflight == 0)
        o.inflight = 2 * conc;
    if (o.inflight > o.count)
        o.inflight = o.count;
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
        fprintf(stderr, "jobd_load: curl_global_init: %s\n", curl_easy_strerror(gc));
        return 1;
    }

    int rc = 1;
    CURLM *m = NULL;
    struct curl_slist *headers = NULL;
    char *submit_url = NULL, *auth = NULL;
    size_t nreq = (size_t)o.inflight;
    struct req *reqs = calloc(nreq, sizeof *reqs);
    struct stats st = {.latency = calloc((size_t)o.count, sizeof(double))};
    if (reqs == NULL || st.latency == NULL)
        goto out;

    const char *slash = o.url[0] != '\0' && o.url[strlen(o.url) - 1] == '/' ? "" : "/";
    if (asprintf(&submit_url, "%s%sv1/jobs?wait=%ld", o.url, slash, o.wait_s) < 0) {
        submit_url = NULL;
        goto out;
    }
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (h != NULL)
        headers = h;
    if (h != NULL && (h = curl_slist_append(headers, "Expect:")) != NULL)
        headers = h;
    if (h != NULL && o.token != NULL) {
        if (asprintf(&auth, "Authorization: Bearer %s", o.token) < 0) {
            auth = NULL;
            goto out;
        }
        if ((h = curl_slist_append(headers, auth)) != NULL)
            headers = h;
    }
    if (h == NULL) {
        fprintf(stderr, "jobd_load: out of memory\n");
        goto out;
    }

    m = curl_multi_init();
    if (m == NULL) {
        fprintf(stderr, "jobd_load: curl_multi_init failed\n");
        goto out;
    }
    /* Keep one connection per slot, so every request after the first reuses one. */
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, o.inflight);
    for (size_t i = 0; i < nreq; i++) {
        if (setup_handle(&reqs[i], submit_url, headers, &o) != 0)
            goto out;
    }

    long submitted = 0;
    double t0 = now_s(), t_end = t0, next_progress = t0 + 5;
    for (size_t i = 0; i < nreq && submitted < o.count; i++, submitted++) {
        if (submit(m, &reqs[i]) != 0)
            goto out;
    }
    while (st.answered < o.count) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            fprintf(stderr, "jobd_load: curl_multi_perform: %s\n", curl_multi_strerror(mc));
            goto out;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct req *r = NULL;
            CURL *done = msg->easy_handle;
            CURLcode result = msg->data.result;
            curl_easy_getinfo(done, CURLINFO_PRIVATE, (char **)&r);
            curl_multi_remove_handle(m, done);
            double t = now_s();
            st.latency[st.answered++] = t - r->started;
            check_answer(r, result, &st);
            t_end = t;
            if (submitted < o.count) {
                submitted++;
                if (submit(m, r) != 0)
                    goto out;
            }
        }
        if (st.answered >= o.count)
            break;
        double t = now_s();
        if (t >= next_progress) {
            fprintf(stderr, "jobd_load: %ld/%ld answered, %ld failed, %.0f jobs/s so far\n",
                    st.answered, o.count, st.failures, (double)st.answered / (t - t0));
            next_progress = t + 5;
        }
        mc = curl_multi_poll(m, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) {
            fprintf(stderr, "jobd_load: curl_multi_poll: %s\n", curl_multi_strerror(mc));
            goto out;
        }
    }

    double secs = t_end - t0;
    double rate = secs > 0 ? (double)o.count / secs : 0.0;
    qsort(st.latency, (size_t)st.answered, sizeof(double), cmp_double);
    double p50 = st.latency[(st.answered - 1) / 2] * 1000;
    double p99 = st.latency[(st.answered - 1) * 99 / 100] * 1000;
    fprintf(stderr,
            "jobd_load: %ld jobs, %ld in flight: %.3f s, %.1f jobs/s, %ld failed, "
            "latency p50 %.2f ms p99 %.2f ms\n",
            o.count, o.inflight, secs, rate, st.failures, p50, p99);
    printf("jobd_load: n=%ld k=%ld seconds=%.3f jobs_per_s=%.1f failures=%ld p50_ms=%.2f "
           "p99_ms=%.2f last_id=%s\n",
           o.count, o.inflight, secs, rate, st.failures, p50, p99,
           st.last_id[0] ? st.last_id : "-");
    rc = st.failures == 0 ? 0 : 1;
out:
    for (size_t i = 0; reqs != NULL && i < nreq; i++) {
        if (reqs[i].h != NULL) {
            if (m != NULL)
                curl_multi_remove_handle(m, reqs[i].h);
            curl_easy_cleanup(reqs[i].h);
        }
        free(reqs[i].body);
    }
    if (m != NULL)
        curl_multi_cleanup(m);
    curl_slist_free_all(headers);
    free(reqs);
    free(st.latency);
    free(submit_url);
    free(auth);
    free(o.token);
    curl_global_cleanup();
    return rc;
}
