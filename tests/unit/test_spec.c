/*
 * test_spec.c: validation and JSON codec of the job spec (lib/spec.c).
 *
 * Most cases are data: a document and the error it must produce (field path
 * and a phrase of the message), or a document that must be accepted. Every
 * accepted document also goes through jobd_spec_to_json and back. Documents
 * are written with ' for " to stay readable; load() swaps them.
 *
 * The allocator of libjobd is wrapped at link time (-Wl,--wrap=malloc...) and
 * handed to jansson, so one test can fail each allocation of a parse in turn
 * and check that nothing leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobd/spec.h"

/* ---- allocator seam ------------------------------------------------------ */

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);

static long fail_at = -1; /* index of the allocation to fail, -1 for none */
static long n_allocs;     /* allocations seen since fail_at was set */
static long live;         /* allocations not yet freed */

static bool inject_failure(void) {
    return fail_at >= 0 && n_allocs++ == fail_at;
}

void *__wrap_malloc(size_t size) {
    if (inject_failure())
        return NULL;
    void *p = __real_malloc(size);
    live += p != NULL;
    return p;
}

void *__wrap_calloc(size_t n, size_t size) {
    if (inject_failure())
        return NULL;
    void *p = __real_calloc(n, size);
    live += p != NULL;
    return p;
}

void *__wrap_realloc(void *p, size_t size) {
    if (inject_failure())
        return NULL;
    void *q = __real_realloc(p, size);
    if (p == NULL && q != NULL)
        live++;
    return q;
}

void __wrap_free(void *p) {
    live -= p != NULL;
    __real_free(p);
}

static void *json_alloc(size_t size) {
    return __wrap_malloc(size);
}

static void json_free(void *p) {
    __wrap_free(p);
}

/* ---- helpers ------------------------------------------------------------- */

/* Load JSON written with ' for ", accepting any value and \u0000 in strings. */
static json_t *load(const char *text) {
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    for (size_t i = 0; i <= n; i++)
        buf[i] = text[i] == '\'' ? '"' : text[i];
    json_error_t jerr;
    json_t *v = json_loads(buf, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (v == NULL)
        fail_msg("bad test JSON %s: %s", buf, jerr.text);
    free(buf);
    return v;
}

/* A string of n copies of c. */
static json_t *repeat(char c, size_t n) {
    char *buf = malloc(n + 1);
    assert_non_null(buf);
    memset(buf, c, n);
    buf[n] = '\0';
    json_t *s = json_stringn(buf, n);
    assert_non_null(s);
    free(buf);
    return s;
}

/* Set doc.key to v (stolen), and return doc. */
static json_t *with(json_t *doc, const char *key, json_t *v) {
    assert_non_null(v);
    assert_int_equal(json_object_set_new(doc, key, v), 0);
    return doc;
}

static bool same_str(const char *a, const char *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_strv(char **a, char **b, size_t n) {
    if ((a == NULL) != (b == NULL))
        return false;
    for (size_t i = 0; a != NULL && i <= n; i++) {
        if (!same_str(a[i], b[i]))
            return false;
    }
    return true;
}

static bool same_json(const json_t *a, const json_t *b) {
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && json_equal(a, b));
}

static bool spec_equal(const struct jobd_spec *a, const struct jobd_spec *b) {
    return a->kind == b->kind && a->argc == b->argc && same_strv(a->argv, b->argv, a->argc) &&
           same_str(a->shell, b->shell) && same_str(a->task, b->task) &&
           same_json(a->args, b->args) && a->executor == b->executor &&
           a->stdin_len == b->stdin_len && (a->stdin_data == NULL) == (b->stdin_data == NULL) &&
           (a->stdin_data == NULL || memcmp(a->stdin_data, b->stdin_data, a->stdin_len) == 0) &&
           a->envc == b->envc && same_strv(a->env, b->env, a->envc) && same_str(a->cwd, b->cwd) &&
           a->timeout == b->timeout && a->kill_signal == b->kill_signal &&
           a->kill_grace == b->kill_grace && a->retries == b->retries &&
           a->retry_delay == b->retry_delay && a->n_retry_exit_codes == b->n_retry_exit_codes &&
           (a->retry_exit_codes == NULL) == (b->retry_exit_codes == NULL) &&
           (a->retry_exit_codes == NULL || memcmp(a->retry_exit_codes, b->retry_exit_codes,
                                                  a->n_retry_exit_codes * sizeof(int)) == 0) &&
           a->priority == b->priority && same_str(a->name, b->name) &&
           same_json(a->labels, b->labels) && same_json(a->node_selector, b->node_selector) &&
           memcmp(&a->limits, &b->limits, sizeof(a->limits)) == 0;
}

/* Whether s holds nothing, as jobd_spec_init leaves it. */
static bool spec_is_empty(const struct jobd_spec *s) {
    struct jobd_spec empty;
    jobd_spec_init(&empty);
    return spec_equal(s, &empty);
}

/* Render s, parse it back, and check the result equals s and renders the same. */
static void check_round_trip(const struct jobd_spec *s) {
    json_t *j = jobd_spec_to_json(s);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 19);
    struct jobd_spec back;
    struct jobd_error err;
    if (jobd_spec_parse(j, &back, &err) != 0) {
        char *text = json_dumps(j, JSON_COMPACT);
        fail_msg("rendered spec rejected: %s: %s in %s", err.field, err.message, text);
    }
    assert_true(spec_equal(s, &back));
    json_t *j2 = jobd_spec_to_json(&back);
    assert_non_null(j2);
    assert_true(json_equal(j, j2));
    json_decref(j2);
    json_decref(j);
    jobd_spec_free(&back);
}

/* Parse doc (stolen); it must be accepted, and survive a round trip. */
static void expect_ok_json(json_t *doc, struct jobd_spec *out) {
    struct jobd_error err;
    int rc = jobd_spec_parse(doc, out, &err);
    if (rc != 0) {
        char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("rejected %.200s: %s: %s", text, err.field, err.message);
    }
    json_decref(doc);
    check_round_trip(out);
}

static void expect_ok(const char *text) {
    struct jobd_spec s;
    expect_ok_json(load(text), &s);
    jobd_spec_free(&s);
}

/*
 * Parse doc (stolen); it must be rejected on `field` with a message that
 * contains `phrase`, and leave the spec empty.
 */
static void expect_error_json(json_t *doc, const char *field, const char *phrase) {
    struct jobd_spec s;
    struct jobd_error err;
    int rc = jobd_spec_parse(doc, &s, &err);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    if (rc != -EINVAL)
        fail_msg("accepted %.200s (rc %d), expected %s: %s", text, rc, field, phrase);
    if (strcmp(err.field, field) != 0 || strstr(err.message, phrase) == NULL)
        fail_msg("%.200s: got \"%s: %s\", expected \"%s: ...%s...\"", text, err.field, err.message,
                 field, phrase);
    assert_true(spec_is_empty(&s));
    free(text);
}

static void expect_error(const char *text, const char *field, const char *phrase) {
    expect_error_json(load(text), field, phrase);
}

/* ---- tables -------------------------------------------------------------- */

struct bad_case {
    const char *doc;
    const char *field;
    const char *phrase; /* part of the message */
};

/* Documents that must be rejected, with the field and the rule. */
static const struct bad_case bad_cases[] = {
    /* the document */
    {"[]", "", "must be an object"},
    {"'x'", "", "must be an object"},
    {"1", "", "must be an object"},
    {"null", "", "must be an object"},
    {"{}", "command", "exactly one of command, shell, task is required"},
    {"{'command':null,'shell':null,'task':null}", "command", "exactly one of"},
    {"{'name':'x'}", "command", "exactly one of"},
    {"{'command':['ls'],'shell':'ls'}", "command", "mutually exclusive"},
    {"{'command':['ls'],'task':'echo'}", "command", "mutually exclusive"},
    {"{'shell':'ls','task':'echo'}", "command", "mutually exclusive"},
    {"{'command':['ls'],'shell':'ls','task':'echo'}", "command", "mutually exclusive"},
    {"{'command':['ls'],'bogus':1}", "bogus", "unknown field"},
    {"{'command':['ls'],'Command':['ls']}", "Command", "unknown field"},
    {"{'command':['ls'],'limit':{}}", "limit", "unknown field"},
    {"{'command':['ls'],'':1}", "", "unknown field"},
    {"{'bogus':null}", "bogus", "unknown field"},
    {"{'retries':-1,'bogus':1}", "bogus", "unknown field"},
    /* command */
    {"{'command':'ls'}", "command", "must be an array of strings"},
    {"{'command':{}}", "command", "must be an array of strings"},
    {"{'command':[]}", "command", "must not be empty"},
    {"{'command':['']}", "command[0]", "must not be empty"},
    {"{'command':[1]}", "command[0]", "must be a string"},
    {"{'command':['ls',1]}", "command[1]", "must be a string"},
    {"{'command':['ls','a',null]}", "command[2]", "must be a string"},
    {"{'command':['ls','a',['b']]}", "command[2]", "must be a string"},
    {"{'command':['l\\u0000s']}", "command[0]", "must not contain NUL bytes"},
    {"{'command':['ls','a\\u0000']}", "command[1]", "must not contain NUL bytes"},
    /* shell */
    {"{'shell':''}", "shell", "must not be empty"},
    {"{'shell':['ls']}", "shell", "must be a string"},
    {"{'shell':'ls\\u0000'}", "shell", "must not contain NUL bytes"},
    /* task */
    {"{'task':''}", "task", "must not be empty"},
    {"{'task':'a b'}", "task", "must be a task name"},
    {"{'task':'a/b'}", "task", "must be a task name"},
    {"{'task':'\\u00e9cho'}", "task", "must be a task name"},
    {"{'task':'echo\\u0000'}", "task", "must not contain NUL bytes"},
    {"{'task':1}", "task", "must be a string"},
    /* args */
    {"{'command':['ls'],'args':{}}", "args", "only allowed with task"},
    {"{'shell':'ls','args':1}", "args", "only allowed with task"},
    /* executor */
    {"{'command':['ls'],'executor':'thread'}", "executor", "thread runs tasks only"},
    {"{'shell':'ls','executor':'thread'}", "executor", "thread runs tasks only"},
    {"{'command':['ls'],'executor':'Process'}", "executor", "must be one of process, thread"},
    {"{'command':['ls'],'executor':''}", "executor", "must be one of"},
    {"{'command':['ls'],'executor':'process\\u0000'}", "executor", "must be one of"},
    {"{'task':'echo','executor':'local'}", "executor", "must be one of"},
    /* stdin */
    {"{'command':['cat'],'stdin':['x']}", "stdin", "must be a string"},
    /* env */
    {"{'command':['ls'],'env':['A=1']}", "env", "must be an object of strings"},
    {"{'command':['ls'],'env':'A=1'}", "env", "must be an object of strings"},
    {"{'command':['ls'],'env':{'A':1}}", "env.A", "must be a string"},
    {"{'command':['ls'],'env':{'A':null}}", "env.A", "must be a string"},
    {"{'command':['ls'],'env':{'':'x'}}", "env", "names must not be empty"},
    {"{'command':['ls'],'env':{'A=B':'x'}}", "env.A=B", "must not contain '='"},
    {"{'command':['ls'],'env':{'=':'x'}}", "env.=", "must not contain '='"},
    {"{'command':['ls'],'env':{'A':'x\\u0000y'}}", "env.A", "must not contain NUL bytes"},
    /* cwd */
    {"{'command':['ls'],'cwd':''}", "cwd", "must not be empty"},
    {"{'command':['ls'],'cwd':'tmp'}", "cwd", "must be an absolute path"},
    {"{'command':['ls'],'cwd':'./tmp'}", "cwd", "must be an absolute path"},
    {"{'command':['ls'],'cwd':'/tm\\u0000p'}", "cwd", "must not contain NUL bytes"},
    {"{'command':['ls'],'cwd':1}", "cwd", "must be a string"},
    /* timeout */
    {"{'command':['ls'],'timeout':0}", "timeout",
     "must be a number of seconds > 0 and <= 31622400"},
    {"{'command':['ls'],'timeout':0.0}", "timeout", "> 0 and <= 31622400"},
    {"{'command':['ls'],'timeout':-1}", "timeout", "> 0 and <= 31622400"},
    {"{'command':['ls'],'timeout':31622400.5}", "timeout", "> 0 and <= 31622400"},
    {"{'command':['ls'],'timeout':31622401}", "timeout", "> 0 and <= 31622400"},
    {"{'command':['ls'],'timeout':1e300}", "timeout", "> 0 and <= 31622400"},
    {"{'command':['ls'],'timeout':'10'}", "timeout", "must be a number"},
    {"{'command':['ls'],'timeout':true}", "timeout", "must be a number"},
    /* kill_signal */
    {"{'command':['ls'],'kill_signal':'sigterm'}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':'term'}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':'SIGFOO'}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':'SIG'}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':''}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':'15'}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':'SIGTERM\\u0000'}", "kill_signal", "signal name"},
    {"{'command':['ls'],'kill_signal':' SIGTERM'}", "kill_signal", "must be a signal name"},
    {"{'command':['ls'],'kill_signal':0}", "kill_signal", "or a number 1..64"},
    {"{'command':['ls'],'kill_signal':65}", "kill_signal", "or a number 1..64"},
    {"{'command':['ls'],'kill_signal':-9}", "kill_signal", "or a number 1..64"},
    {"{'command':['ls'],'kill_signal':15.0}", "kill_signal", "or a number 1..64"},
    {"{'command':['ls'],'kill_signal':true}", "kill_signal", "must be a signal name"},
    /* kill_grace */
    {"{'command':['ls'],'kill_grace':-0.5}", "kill_grace",
     "must be a number of seconds >= 0 and <= 3600"},
    {"{'command':['ls'],'kill_grace':-1}", "kill_grace", ">= 0 and <= 3600"},
    {"{'command':['ls'],'kill_grace':3600.5}", "kill_grace", ">= 0 and <= 3600"},
    {"{'command':['ls'],'kill_grace':3601}", "kill_grace", ">= 0 and <= 3600"},
    {"{'command':['ls'],'kill_grace':'5'}", "kill_grace", "must be a number"},
    {"{'command':['ls'],'kill_grace':false}", "kill_grace", "must be a number"},
    /* retries */
    {"{'command':['ls'],'retries':-1}", "retries", "must be an integer 0..100"},
    {"{'command':['ls'],'retries':101}", "retries", "must be an integer 0..100"},
    {"{'command':['ls'],'retries':3.0}", "retries", "must be an integer"},
    {"{'command':['ls'],'retries':1.5}", "retries", "must be an integer"},
    {"{'command':['ls'],'retries':'3'}", "retries", "must be an integer"},
    {"{'command':['ls'],'retries':true}", "retries", "must be an integer"},
    {"{'command':['ls'],'retries':9223372036854775807}", "retries", "must be an integer"},
    /* retry_delay */
    {"{'command':['ls'],'retry_delay':-1}", "retry_delay", ">= 0 and <= 31622400"},
    {"{'command':['ls'],'retry_delay':31622400.1}", "retry_delay", ">= 0 and <= 31622400"},
    {"{'command':['ls'],'retry_delay':'1'}", "retry_delay", "must be a number"},
    /* retry_exit_codes */
    {"{'command':['ls'],'retry_exit_codes':1}", "retry_exit_codes", "must be an array"},
    {"{'command':['ls'],'retry_exit_codes':{}}", "retry_exit_codes", "must be an array"},
    {"{'command':['ls'],'retry_exit_codes':[]}", "retry_exit_codes", "must not be empty"},
    {"{'command':['ls'],'retry_exit_codes':[0]}", "retry_exit_codes[0]",
     "must be an integer 1..255"},
    {"{'command':['ls'],'retry_exit_codes':[1,256]}", "retry_exit_codes[1]",
     "must be an integer 1..255"},
    {"{'command':['ls'],'retry_exit_codes':[1,1.0]}", "retry_exit_codes[1]", "must be an integer"},
    {"{'command':['ls'],'retry_exit_codes':[1,'2']}", "retry_exit_codes[1]", "must be an integer"},
    {"{'command':['ls'],'retry_exit_codes':[1,2,null]}", "retry_exit_codes[2]", "integer"},
    {"{'command':['ls'],'retry_exit_codes':[-1]}", "retry_exit_codes[0]", "integer 1..255"},
    /* priority */
    {"{'command':['ls'],'priority':-101}", "priority", "must be an integer -100..100"},
    {"{'command':['ls'],'priority':101}", "priority", "must be an integer -100..100"},
    {"{'command':['ls'],'priority':1.0}", "priority", "must be an integer"},
    {"{'command':['ls'],'priority':'1'}", "priority", "must be an integer"},
    /* name */
    {"{'command':['ls'],'name':''}", "name", "must not be empty"},
    {"{'command':['ls'],'name':1}", "name", "must be a string"},
    {"{'command':['ls'],'name':'a\\u0000b'}", "name", "must not contain NUL bytes"},
    /* labels */
    {"{'command':['ls'],'labels':[]}", "labels", "must be an object of strings"},
    {"{'command':['ls'],'labels':'a=b'}", "labels", "must be an object of strings"},
    {"{'command':['ls'],'labels':{'a':1}}", "labels.a", "must be a string"},
    {"{'command':['ls'],'labels':{'a':null}}", "labels.a", "must be a string"},
    {"{'command':['ls'],'labels':{'':'x'}}", "labels", "keys must not be empty"},
    {"{'command':['ls'],'labels':{'a b':'x'}}", "labels.a b", "key must contain only"},
    {"{'command':['ls'],'labels':{'a=b':'x'}}", "labels.a=b", "key must contain only"},
    {"{'command':['ls'],'labels':{'\\u00e9':'x'}}", "labels.\xc3\xa9", "key must contain only"},
    {"{'command':['ls'],'labels':{'a':'x\\u0000'}}", "labels.a", "must not contain NUL bytes"},
    /* node_selector */
    {"{'command':['ls'],'node_selector':[]}", "node_selector", "must be an object of strings"},
    {"{'command':['ls'],'node_selector':{'zone':2}}", "node_selector.zone", "must be a string"},
    {"{'command':['ls'],'node_selector':{'':'x'}}", "node_selector", "keys must not be empty"},
    {"{'command':['ls'],'node_selector':{'a:b':'x'}}", "node_selector.a:b", "key must contain"},
    /* limits */
    {"{'command':['ls'],'limits':[]}", "limits", "must be an object"},
    {"{'command':['ls'],'limits':1}", "limits", "must be an object"},
    {"{'command':['ls'],'limits':{'foo':1}}", "limits.foo", "unknown field"},
    {"{'command':['ls'],'limits':{'cpu_seconds':1,'memory':1}}", "limits.memory", "unknown field"},
    {"{'command':['ls'],'limits':{'cpu_seconds':0}}", "limits.cpu_seconds",
     "must be an integer 1..2147483648"},
    {"{'command':['ls'],'limits':{'cpu_seconds':2147483649}}", "limits.cpu_seconds",
     "must be an integer 1..2147483648"},
    {"{'command':['ls'],'limits':{'cpu_seconds':10.0}}", "limits.cpu_seconds",
     "must be an integer"},
    {"{'command':['ls'],'limits':{'cpu_seconds':'10'}}", "limits.cpu_seconds",
     "must be an integer"},
    {"{'command':['ls'],'limits':{'memory_bytes':1048575}}", "limits.memory_bytes",
     "must be an integer >= 1048576"},
    {"{'command':['ls'],'limits':{'memory_bytes':-1}}", "limits.memory_bytes", ">= 1048576"},
    {"{'command':['ls'],'limits':{'memory_bytes':true}}", "limits.memory_bytes", "integer"},
    {"{'command':['ls'],'limits':{'open_files':15}}", "limits.open_files",
     "must be an integer 16..1048576"},
    {"{'command':['ls'],'limits':{'open_files':1048577}}", "limits.open_files",
     "must be an integer 16..1048576"},
    {"{'command':['ls'],'limits':{'output_bytes':1023}}", "limits.output_bytes",
     "must be an integer 1024..1099511627776"},
    {"{'command':['ls'],'limits':{'output_bytes':1099511627777}}", "limits.output_bytes",
     "must be an integer 1024..1099511627776"},
};

/* Documents that must be accepted (and survive a round trip). */
static const char *const good_cases[] = {
    "{'command':['ls']}",
    "{'command':['ls','','-l']}",
    "{'command':['ls'],'shell':null,'task':null}",
    "{'shell':'echo hi | wc -c'}",
    "{'task':'echo'}",
    "{'task':'my-task_v1.2'}",
    "{'task':'echo','args':{'a':[1,2,{'b':null}]}}",
    "{'task':'echo','args':'text'}",
    "{'task':'echo','args':[]}",
    "{'task':'echo','args':0}",
    "{'task':'echo','args':null}",
    "{'command':['ls'],'args':null}",
    "{'task':'echo','executor':'thread'}",
    "{'task':'echo','executor':'process'}",
    "{'task':'echo','executor':'remote'}",
    "{'command':['ls'],'executor':'process'}",
    "{'command':['ls'],'executor':'remote'}",
    "{'shell':'ls','executor':'remote'}",
    "{'command':['cat'],'stdin':''}",
    "{'command':['cat'],'stdin':'a\\u0000b\\n\\u00e9'}",
    "{'command':['ls'],'env':{}}",
    "{'command':['ls'],'env':{'A':'','B-c.d':'x=y','\\u00e9':'\\u00e9'}}",
    "{'command':['ls'],'cwd':'/'}",
    "{'command':['ls'],'cwd':'/tmp/a b'}",
    "{'command':['ls'],'timeout':0.001}",
    "{'command':['ls'],'timeout':1}",
    "{'command':['ls'],'timeout':31622400}",
    "{'command':['ls'],'timeout':31622400.0}",
    "{'command':['ls'],'timeout':2.5}",
    "{'command':['ls'],'kill_signal':'SIGKILL'}",
    "{'command':['ls'],'kill_signal':'KILL'}",
    "{'command':['ls'],'kill_signal':'SIGINT'}",
    "{'command':['ls'],'kill_signal':1}",
    "{'command':['ls'],'kill_signal':40}",
    "{'command':['ls'],'kill_signal':64}",
    "{'command':['ls'],'kill_grace':0}",
    "{'command':['ls'],'kill_grace':0.25}",
    "{'command':['ls'],'kill_grace':3600}",
    "{'command':['ls'],'kill_grace':3600.0}",
    "{'command':['ls'],'retries':0}",
    "{'command':['ls'],'retries':100}",
    "{'command':['ls'],'retry_delay':0}",
    "{'command':['ls'],'retry_delay':0.1}",
    "{'command':['ls'],'retry_delay':31622400}",
    "{'command':['ls'],'retry_exit_codes':[1]}",
    "{'command':['ls'],'retry_exit_codes':[255,1,1]}",
    "{'command':['ls'],'priority':-100}",
    "{'command':['ls'],'priority':100}",
    "{'command':['ls'],'priority':0}",
    "{'command':['ls'],'name':'x'}",
    "{'command':['ls'],'name':'nightly \\u00e9t\\u00e9 build'}",
    "{'command':['ls'],'labels':{}}",
    "{'command':['ls'],'labels':{'app':'web','tier.example.com/name-x_Y9':''}}",
    "{'command':['ls'],'node_selector':{'zone':'eu-1'}}",
    "{'command':['ls'],'limits':{}}",
    "{'command':['ls'],'limits':{'cpu_seconds':null,'memory_bytes':null,'open_files':null,"
    "'output_bytes':null}}",
    "{'command':['ls'],'limits':{'cpu_seconds':1,'memory_bytes':1048576,'open_files':16,"
    "'output_bytes':1024}}",
    "{'command':['ls'],'limits':{'cpu_seconds':2147483648,'memory_bytes':9223372036854775807,"
    "'open_files':1048576,'output_bytes':1099511627776}}",
    /* every optional field null means absent */
    "{'command':['ls'],'args':null,'executor':null,'stdin':null,'env':null,'cwd':null,"
    "'timeout':null,'kill_signal':null,'kill_grace':null,'retries':null,'retry_delay':null,"
    "'retry_exit_codes':null,'priority':null,'name':null,'labels':null,'node_selector':null,"
    "'limits':null}",
    /* everything at once */
    "{'command':['/bin/sh','-c','exit 3'],'executor':'remote','stdin':'in','env':{'B':'2',"
    "'A':'1'},'cwd':'/srv','timeout':60,'kill_signal':'INT','kill_grace':2.5,'retries':3,"
    "'retry_delay':0.5,'retry_exit_codes':[3,75],'priority':7,'name':'n','labels':{'k':'v'},"
    "'node_selector':{'gpu':'yes'},'limits':{'cpu_seconds':10,'open_files':64}}",
};

static void test_bad_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++)
        expect_error(bad_cases[i].doc, bad_cases[i].field, bad_cases[i].phrase);
}

static void test_good_cases(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++)
        expect_ok(good_cases[i]);
}

/*
 * Wrong types. For each field, a value of every JSON type it does not accept
 * must be rejected on that field.
 */
enum { T_BOOL = 1, T_INT = 2, T_REAL = 4, T_STRING = 8, T_ARRAY = 16, T_OBJECT = 32 };

static void test_wrong_types(void **state) {
    (void)state;
    static const struct {
        int type;
        const char *value;
    } samples[] = {
        {T_BOOL, "true"},   {T_BOOL, "false"},  {T_INT, "1"},     {T_REAL, "1.5"},
        {T_STRING, "'/x'"}, {T_ARRAY, "['x']"}, {T_OBJECT, "{}"}, {T_OBJECT, "{'k':'v'}"},
    };
    static const struct {
        const char *base;  /* document the field is added to */
        const char *field; /* top-level field set to the sample */
        int accepts;       /* types that are not wrong */
    } fields[] = {
        {"{}", "command", T_ARRAY},
        {"{}", "shell", T_STRING},
        {"{}", "task", T_STRING},
        {"{'command':['ls']}", "executor", T_STRING},
        {"{'command':['ls']}", "stdin", T_STRING},
        {"{'command':['ls']}", "env", T_OBJECT},
        {"{'command':['ls']}", "cwd", T_STRING},
        {"{'command':['ls']}", "timeout", T_INT | T_REAL},
        {"{'command':['ls']}", "kill_signal", T_STRING | T_INT},
        {"{'command':['ls']}", "kill_grace", T_INT | T_REAL},
        {"{'command':['ls']}", "retries", T_INT},
        {"{'command':['ls']}", "retry_delay", T_INT | T_REAL},
        {"{'command':['ls']}", "retry_exit_codes", T_ARRAY},
        {"{'command':['ls']}", "priority", T_INT},
        {"{'command':['ls']}", "name", T_STRING},
        {"{'command':['ls']}", "labels", T_OBJECT},
        {"{'command':['ls']}", "node_selector", T_OBJECT},
        {"{'command':['ls']}", "limits", T_OBJECT},
    };
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
            if (fields[f].accepts & samples[i].type)
                continue;
            json_t *doc = with(load(fields[f].base), fields[f].field, load(samples[i].value));
            expect_error_json(doc, fields[f].field, "must be");
        }
    }
    /* members and elements */
    static const struct {
        const char *doc; /* with @ where the sample goes */
        const char *field;
        int accepts;
    } members[] = {
        {"{'command':['ls',@]}", "command[1]", T_STRING},
        {"{'command':['ls'],'env':{'A':@}}", "env.A", T_STRING},
        {"{'command':['ls'],'labels':{'a':@}}", "labels.a", T_STRING},
        {"{'command':['ls'],'node_selector':{'a':@}}", "node_selector.a", T_STRING},
        {"{'command':['ls'],'retry_exit_codes':[1,@]}", "retry_exit_codes[1]", T_INT},
        {"{'command':['ls'],'limits':{'cpu_seconds':@}}", "limits.cpu_seconds", T_INT},
        {"{'command':['ls'],'limits':{'memory_bytes':@}}", "limits.memory_bytes", T_INT},
        {"{'command':['ls'],'limits':{'open_files':@}}", "limits.open_files", T_INT},
        {"{'command':['ls'],'limits':{'output_bytes':@}}", "limits.output_bytes", T_INT},
    };
    for (size_t m = 0; m < sizeof(members) / sizeof(members[0]); m++) {
        for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
            if (members[m].accepts & samples[i].type)
                continue;
            const char *doc = members[m].doc;
            const char *at = strchr(doc, '@');
            char text[256];
            snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - doc), doc, samples[i].value,
                     at + 1);
            expect_error(text, members[m].field, "must be");
        }
    }
}

/* ---- size bounds: just inside and just outside ---------------------------- */

static void test_command_bounds(void **state) {
    (void)state;
    for (size_t n = JOBD_MAX_ARGV; n <= JOBD_MAX_ARGV + 1; n++) {
        json_t *argv = json_array();
        assert_non_null(argv);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(json_array_append_new(argv, json_string("a")), 0);
        json_t *doc = with(json_object(), "command", argv);
        if (n == JOBD_MAX_ARGV) {
            struct jobd_spec s;
            expect_ok_json(doc, &s);
            assert_int_equal(s.argc, n);
            assert_null(s.argv[n]);
            jobd_spec_free(&s);
        } else {
            expect_error_json(doc, "command", "at most 4096 entries");
        }
    }
    struct jobd_spec s;
    json_t *argv = json_pack("[so]", "ls", repeat('a', JOBD_MAX_ARG_BYTES));
    expect_ok_json(with(json_object(), "command", argv), &s);
    assert_int_equal(strlen(s.argv[1]), JOBD_MAX_ARG_BYTES);
    jobd_spec_free(&s);
    argv = json_pack("[so]", "ls", repeat('a', JOBD_MAX_ARG_BYTES + 1));
    expect_error_json(with(json_object(), "command", argv), "command[1]",
                      "must be at most 131072 bytes");
}

/* A string field of at most max bytes: max bytes are accepted, max + 1 rejected. */
static void check_string_bound(const char *base, const char *field, size_t max,
                               const char *phrase) {
    struct jobd_spec s;
    expect_ok_json(with(load(base), field, repeat('a', max)), &s);
    jobd_spec_free(&s);
    expect_error_json(with(load(base), field, repeat('a', max + 1)), field, phrase);
}

static void test_string_bounds(void **state) {
    (void)state;
    check_string_bound("{}", "shell", JOBD_MAX_ARG_BYTES, "must be at most 131072 bytes");
    check_string_bound("{}", "task", JOBD_MAX_NAME_BYTES, "must be at most 256 bytes");
    check_string_bound("{'command':['ls']}", "name", JOBD_MAX_NAME_BYTES,
                       "must be at most 256 bytes");
    /* cwd must start with '/' */
    json_t *cwd = repeat('a', JOBD_MAX_ARG_BYTES);
    char *p = (char *)json_string_value(cwd);
    p[0] = '/';
    struct jobd_spec s;
    expect_ok_json(with(load("{'command':['ls']}"), "cwd", json_string(p)), &s);
    jobd_spec_free(&s);
    json_decref(cwd);
    cwd = repeat('a', JOBD_MAX_ARG_BYTES + 1);
    p = (char *)json_string_value(cwd);
    p[0] = '/';
    expect_error_json(with(load("{'command':['ls']}"), "cwd", json_string(p)), "cwd",
                      "at most 131072 bytes");
    json_decref(cwd);
}

static void test_stdin_bounds(void **state) {
    (void)state;
    size_t max = 64 * 1024 * 1024;
    struct jobd_spec s;
    json_t *doc = with(load("{'command':['cat']}"), "stdin", repeat('x', max));
    struct jobd_error err;
    assert_int_equal(jobd_spec_parse(doc, &s, &err), 0);
    assert_int_equal(s.stdin_len, max);
    jobd_spec_free(&s);
    json_decref(doc);
    expect_error_json(with(load("{'command':['cat']}"), "stdin", repeat('x', max + 1)), "stdin",
                      "must be at most 67108864 bytes");
}

/* An object of n entries "k<i>": value. */
static json_t *object_of(size_t n, json_t *value) {
    json_t *o = json_object();
    assert_non_null(o);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%zu", i);
        assert_int_equal(json_object_set(o, key, value), 0);
    }
    json_decref(value);
    return o;
}

/* An object with one member: a key of key_len bytes of c, and value (stolen). */
static json_t *one_member(char c, size_t key_len, json_t *value) {
    json_t *key = repeat(c, key_len);
    json_t *o = json_object();
    assert_non_null(o);
    assert_int_equal(json_object_set_new(o, json_string_value(key), value), 0);
    json_decref(key);
    return o;
}

static void test_env_bounds(void **state) {
    (void)state;
    const char *base = "{'command':['ls']}";
    struct jobd_spec s;
    expect_ok_json(with(load(base), "env", object_of(JOBD_MAX_ENV, json_string("v"))), &s);
    assert_int_equal(s.envc, JOBD_MAX_ENV);
    assert_null(s.env[JOBD_MAX_ENV]);
    jobd_spec_free(&s);
    expect_error_json(with(load(base), "env", object_of(JOBD_MAX_ENV + 1, json_string("v"))), "env",
                      "at most 1024 entries");

    expect_ok_json(with(load(base), "env", one_member('K', 256, json_string("v"))), &s);
    assert_int_equal(strlen(s.env[0]), 258);
    jobd_spec_free(&s);
    /* the path is cut to fit jobd_error's field */
    char path[128];
    json_t *big = repeat('K', 257);
    snprintf(path, sizeof(path), "env.%s", json_string_value(big));
    json_decref(big);
    expect_error_json(with(load(base), "env", one_member('K', 257, json_string("v"))), path,
                      "name must be at most 256 bytes");

    json_t *env = json_object();
    assert_int_equal(json_object_set_new(env, "V", repeat('v', JOBD_MAX_ENV_BYTES)), 0);
    expect_ok_json(with(load(base), "env", env), &s);
    jobd_spec_free(&s);
    env = json_object();
    assert_int_equal(json_object_set_new(env, "V", repeat('v', JOBD_MAX_ENV_BYTES + 1)), 0);
    expect_error_json(with(load(base), "env", env), "env.V", "must be at most 32768 bytes");
}

static void check_labels_bounds(const char *field) {
    const char *base = "{'command':['ls']}";
    struct jobd_spec s;
    char path[300];
    expect_ok_json(with(load(base), field, object_of(JOBD_MAX_LABELS, json_string("v"))), &s);
    jobd_spec_free(&s);
    expect_error_json(with(load(base), field, object_of(JOBD_MAX_LABELS + 1, json_string("v"))),
                      field, "at most 64 entries");

    expect_ok_json(with(load(base), field, one_member('k', JOBD_MAX_LABEL_KEY, json_string(""))),
                   &s);
    jobd_spec_free(&s);
    json_t *key = repeat('k', JOBD_MAX_LABEL_KEY + 1);
    snprintf(path, sizeof(path), "%s.%s", field, json_string_value(key));
    path[127] = '\0';
    json_decref(key);
    expect_error_json(
        with(load(base), field, one_member('k', JOBD_MAX_LABEL_KEY + 1, json_string(""))), path,
        "key must be at most 128 bytes");

    expect_ok_json(with(load(base), field, one_member('k', 1, repeat('v', JOBD_MAX_LABEL_VAL))),
                   &s);
    jobd_spec_free(&s);
    snprintf(path, sizeof(path), "%s.k", field);
    expect_error_json(
        with(load(base), field, one_member('k', 1, repeat('v', JOBD_MAX_LABEL_VAL + 1))), path,
        "must be at most 256 bytes");
}

static void test_labels_bounds(void **state) {
    (void)state;
    check_labels_bounds("labels");
    check_labels_bounds("node_selector");
}

static void test_exit_codes_bounds(void **state) {
    (void)state;
    for (size_t n = JOBD_MAX_EXIT_CODES; n <= JOBD_MAX_EXIT_CODES + 1; n++) {
        json_t *codes = json_array();
        for (size_t i = 0; i < n; i++)
            assert_int_equal(json_array_append_new(codes, json_integer(1 + (int)(i % 255))), 0);
        json_t *doc = with(load("{'command':['ls']}"), "retry_exit_codes", codes);
        if (n == JOBD_MAX_EXIT_CODES) {
            struct jobd_spec s;
            expect_ok_json(doc, &s);
            assert_int_equal(s.n_retry_exit_codes, n);
            assert_int_equal(s.retry_exit_codes[n - 1], 1);
            jobd_spec_free(&s);
        } else {
            expect_error_json(doc, "retry_exit_codes", "at most 256 entries");
        }
    }
}

/* ---- values and defaults --------------------------------------------------- */

static struct jobd_spec parse_ok(const char *text) {
    struct jobd_spec s;
    expect_ok_json(load(text), &s);
    return s;
}

static void test_defaults(void **state) {
    (void)state;
    struct jobd_spec s = parse_ok("{'command':['ls','-l']}");
    assert_int_equal(s.kind, JOBD_SPEC_COMMAND);
    assert_int_equal(s.argc, 2);
    assert_string_equal(s.argv[0], "ls");
    assert_string_equal(s.argv[1], "-l");
    assert_null(s.argv[2]);
    assert_null(s.shell);
    assert_null(s.task);
    assert_null(s.args);
    assert_int_equal(s.executor, JOBD_EXEC_PROCESS);
    assert_null(s.stdin_data);
    assert_null(s.env);
    assert_int_equal(s.envc, 0);
    assert_null(s.cwd);
    assert_true(s.timeout == 0);
    assert_int_equal(s.kill_signal, SIGTERM);
    assert_true(s.kill_grace == 5);
    assert_int_equal(s.retries, 0);
    assert_true(s.retry_delay == 1);
    assert_null(s.retry_exit_codes);
    assert_int_equal(s.priority, 0);
    assert_null(s.name);
    assert_null(s.labels);
    assert_null(s.node_selector);
    assert_int_equal(s.limits.cpu_seconds, -1);
    assert_int_equal(s.limits.memory_bytes, -1);
    assert_int_equal(s.limits.open_files, -1);
    assert_int_equal(s.limits.output_bytes, -1);
    jobd_spec_free(&s);

    s = parse_ok("{'shell':'true'}");
    assert_int_equal(s.kind, JOBD_SPEC_SHELL);
    assert_string_equal(s.shell, "true");
    assert_null(s.argv);
    assert_int_equal(s.executor, JOBD_EXEC_PROCESS);
    jobd_spec_free(&s);

    s = parse_ok("{'task':'sleep','args':{'seconds':1}}");
    assert_int_equal(s.kind, JOBD_SPEC_TASK);
    assert_string_equal(s.task, "sleep");
    assert_int_equal(s.executor, JOBD_EXEC_THREAD);
    assert_int_equal(json_integer_value(json_object_get(s.args, "seconds")), 1);
    jobd_spec_free(&s);
}

static void test_values(void **state) {
    (void)state;
    struct jobd_spec s =
        parse_ok("{'command':['ls'],'executor':'remote','stdin':'a\\u0000b','env':{'B':'2','A':'1',"
                 "'AB':'y','A-':'x','A_':'z'},'cwd':'/srv','timeout':30,'kill_signal':'INT',"
                 "'kill_grace':0.5,'retries':3,'retry_delay':2,'retry_exit_codes':[75,3],"
                 "'priority':-7,'name':'n','labels':{'k':'v'},'node_selector':{'gpu':'1'},"
                 "'limits':{'memory_bytes':2097152,'output_bytes':4096}}");
    assert_int_equal(s.executor, JOBD_EXEC_REMOTE);
    assert_int_equal(s.stdin_len, 3);
    assert_memory_equal(s.stdin_data, "a\0b", 3);
    /* sorted by name, not by the "K=V" string: "A" < "A-" < "AB" < "A_" < "B" */
    assert_int_equal(s.envc, 5);
    assert_string_equal(s.env[0], "A=1");
    assert_string_equal(s.env[1], "A-=x");
    assert_string_equal(s.env[2], "AB=y");
    assert_string_equal(s.env[3], "A_=z");
    assert_string_equal(s.env[4], "B=2");
    assert_null(s.env[5]);
    assert_string_equal(s.cwd, "/srv");
    assert_true(s.timeout == 30.0);
    assert_int_equal(s.kill_signal, SIGINT);
    assert_true(s.kill_grace == 0.5);
    assert_int_equal(s.retries, 3);
    assert_true(s.retry_delay == 2.0);
    assert_int_equal(s.n_retry_exit_codes, 2);
    assert_int_equal(s.retry_exit_codes[0], 75);
    assert_int_equal(s.retry_exit_codes[1], 3);
    assert_int_equal(s.priority, -7);
    assert_string_equal(s.name, "n");
    assert_string_equal(json_string_value(json_object_get(s.labels, "k")), "v");
    assert_string_equal(json_string_value(json_object_get(s.node_selector, "gpu")), "1");
    assert_int_equal(s.limits.cpu_seconds, -1);
    assert_int_equal(s.limits.memory_bytes, 2097152);
    assert_int_equal(s.limits.open_files, -1);
    assert_int_equal(s.limits.output_bytes, 4096);
    jobd_spec_free(&s);

    s = parse_ok("{'command':['ls'],'kill_signal':'SIGKILL','env':{},'labels':{}}");
    assert_int_equal(s.kill_signal, SIGKILL);
    assert_null(s.env); /* empty objects are stored as absent */
    assert_null(s.labels);
    jobd_spec_free(&s);
    s = parse_ok("{'command':['ls'],'kill_signal':9}");
    assert_int_equal(s.kill_signal, 9);
    jobd_spec_free(&s);
}

/* A parse that fails after filling several fields must leave *out empty. */
static void test_failure_leaves_out_empty(void **state) {
    (void)state;
    struct jobd_spec s;
    struct jobd_error err;
    json_t *doc = load("{'command':['a','b'],'stdin':'x','env':{'A':'1'},'cwd':'/',"
                       "'retry_exit_codes':[1],'name':'n','labels':{'a':'b'},"
                       "'limits':{'open_files':1}}");
    assert_int_equal(jobd_spec_parse(doc, &s, &err), -EINVAL);
    assert_string_equal(err.field, "limits.open_files");
    assert_true(spec_is_empty(&s));
    jobd_spec_free(&s); /* harmless */
    jobd_spec_free(&s);
    json_decref(doc);
}

/* ---- rendering ------------------------------------------------------------- */

static void check_renders(const char *spec_text, const char *expected_text) {
    struct jobd_spec s = parse_ok(spec_text);
    json_t *got = jobd_spec_to_json(&s);
    json_t *want = load(expected_text);
    if (!json_equal(got, want)) {
        char *text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("%s renders as %s", spec_text, text);
    }
    json_decref(got);
    json_decref(want);
    jobd_spec_free(&s);
}

static void test_to_json(void **state) {
    (void)state;
    check_renders("{'command':['ls']}",
                  "{'command':['ls'],'shell':null,'task':null,'args':null,'executor':'process',"
                  "'stdin':null,'env':{},'cwd':null,'timeout':null,'kill_signal':'SIGTERM',"
                  "'kill_grace':5,'retries':0,'retry_delay':1,'retry_exit_codes':null,"
                  "'priority':0,'name':null,'labels':{},'node_selector':{},"
                  "'limits':{'cpu_seconds':null,'memory_bytes':null,'open_files':null,"
                  "'output_bytes':null}}");
    check_renders("{'task':'echo','args':[1],'env':{'Z':'1','A':'2'},'timeout':1.5,"
                  "'kill_signal':'HUP','kill_grace':0.25,'retry_delay':30.0,"
                  "'retry_exit_codes':[2],'labels':{'a':'b'},'limits':{'open_files':100}}",
                  "{'command':null,'shell':null,'task':'echo','args':[1],'executor':'thread',"
                  "'stdin':null,'env':{'A':'2','Z':'1'},'cwd':null,'timeout':1.5,"
                  "'kill_signal':'SIGHUP','kill_grace':0.25,'retries':0,'retry_delay':30,"
                  "'retry_exit_codes':[2],'priority':0,'name':null,'labels':{'a':'b'},"
                  "'node_selector':{},'limits':{'cpu_seconds':null,'memory_bytes':null,"
                  "'open_files':100,'output_bytes':null}}");
    check_renders("{'shell':'x','kill_signal':40,'stdin':'\\u0000'}",
                  "{'command':null,'shell':'x','task':null,'args':null,'executor':'process',"
                  "'stdin':'\\u0000','env':{},'cwd':null,'timeout':null,'kill_signal':40,"
                  "'kill_grace':5,'retries':0,'retry_delay':1,'retry_exit_codes':null,"
                  "'priority':0,'name':null,'labels':{},'node_selector':{},"
                  "'limits':{'cpu_seconds':null,'memory_bytes':null,'open_files':null,"
                  "'output_bytes':null}}");
}

/* A spec built by hand (not parsed) renders and parses back equal. */
static void test_round_trip_built_spec(void **state) {
    (void)state;
    struct jobd_spec s;
    jobd_spec_init(&s);
    s.kind = JOBD_SPEC_TASK;
    s.task = malloc(5);
    assert_non_null(s.task);
    memcpy(s.task, "echo", 5);
    s.executor = JOBD_EXEC_REMOTE;
    s.timeout = 0.1;
    s.kill_grace = 0;
    s.retry_delay = 1e-3;
    s.priority = 100;
    s.limits.output_bytes = (int64_t)1 << 40;
    check_round_trip(&s);
    jobd_spec_free(&s);
    assert_true(spec_is_empty(&s));
}

/* ---- errors and signals ------------------------------------------------------ */

static void test_error_set(void **state) {
    (void)state;
    struct jobd_error err;
    assert_int_equal(jobd_error_set(&err, NULL, "x %d", 1), -EINVAL);
    assert_string_equal(err.field, "");
    assert_string_equal(err.message, "x 1");
    assert_int_equal(jobd_error_set(&err, "a.b", "%s", "m"), -EINVAL);
    assert_string_equal(err.field, "a.b");
}

/* A long unknown key of 2-byte characters is cut at a character boundary. */
static void test_error_field_stays_utf8(void **state) {
    (void)state;
    char key[401];
    for (int i = 0; i < 200; i++)
        memcpy(key + 2 * i, "\xc3\xa9", 2);
    key[400] = '\0';
    json_t *doc = json_pack("{s[s]si}", "command", "ls", key, 1);
    assert_non_null(doc);
    struct jobd_spec s;
    struct jobd_error err;
    assert_int_equal(jobd_spec_parse(doc, &s, &err), -EINVAL);
    assert_int_equal(strlen(err.field), 126);
    json_t *field = json_string(err.field);
    assert_non_null(field); /* valid UTF-8 */
    json_decref(field);
    assert_string_equal(err.message, "unknown field");
    json_decref(doc);

    /* and a 3-byte character cut after its first or second byte */
    for (int shift = 0; shift < 3; shift++) {
        char k[300];
        memset(k, 'a', (size_t)shift + 1);
        size_t n = (size_t)shift + 1;
        while (n + 3 < sizeof(k) - 1) {
            memcpy(k + n, "\xe2\x82\xac", 3);
            n += 3;
        }
        k[n] = '\0';
        doc = json_pack("{s[s]si}", "command", "ls", k, 1);
        assert_non_null(doc);
        assert_int_equal(jobd_spec_parse(doc, &s, &err), -EINVAL);
        field = json_string(err.field);
        assert_non_null(field);
        json_decref(field);
        assert_true(strlen(err.field) >= 125);
        json_decref(doc);
    }
}

/* Keys with NUL bytes cannot be written in JSON text jansson accepts, but can be built. */
static void test_keys_with_nul(void **state) {
    (void)state;
    json_t *doc = load("{'command':['ls']}");
    assert_int_equal(json_object_setn_new(doc, "name\0x", 6, json_string("n")), 0);
    expect_error_json(doc, "name", "unknown field");

    json_t *env = json_object();
    assert_int_equal(json_object_setn_new(env, "A\0B", 3, json_string("v")), 0);
    expect_error_json(with(load("{'command':['ls']}"), "env", env), "env.A",
                      "name must not contain NUL bytes");

    json_t *labels = json_object();
    assert_int_equal(json_object_setn_new(labels, "a\0b", 3, json_string("v")), 0);
    expect_error_json(with(load("{'command':['ls']}"), "labels", labels), "labels.a",
                      "key must contain only");

    json_t *limits = json_object();
    assert_int_equal(json_object_setn_new(limits, "open_files\0", 11, json_integer(20)), 0);
    expect_error_json(with(load("{'command':['ls']}"), "limits", limits), "limits.open_files",
                      "unknown field");
}

static void test_signals(void **state) {
    (void)state;
    static const char *const names[] = {
        "HUP",  "INT",  "QUIT", "ILL",  "TRAP",   "ABRT", "BUS",   "FPE",  "KILL", "USR1",
        "SEGV", "USR2", "PIPE", "ALRM", "TERM",   "CHLD", "CONT",  "STOP", "TSTP", "TTIN",
        "TTOU", "URG",  "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO",   "SYS",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char full[16];
        snprintf(full, sizeof(full), "SIG%s", names[i]);
        int a = -1, b = -2;
        assert_int_equal(jobd_signal_parse(names[i], &a), 0);
        assert_int_equal(jobd_signal_parse(full, &b), 0);
        assert_int_equal(a, b);
        assert_string_equal(jobd_signal_name(a), full);
    }
    int sig = 0;
    assert_int_equal(jobd_signal_parse("TERM", &sig), 0);
    assert_int_equal(sig, SIGTERM);
    assert_int_equal(jobd_signal_parse("SIGKILL", &sig), 0);
    assert_int_equal(sig, SIGKILL);
    static const char *const bad[] = {"",           "SIG", "term",     "sigterm", "SIGterm",
                                      "SIGSIGTERM", "15",  "SIGRTMIN", "POLL",    "TERM "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(jobd_signal_parse(bad[i], &sig), -EINVAL);
    assert_int_equal(jobd_signal_parse(NULL, &sig), -EINVAL);
    assert_null(jobd_signal_name(0));
    assert_null(jobd_signal_name(40));
    assert_null(jobd_signal_name(-1));
    assert_string_equal(jobd_signal_name(SIGTERM), "SIGTERM");
}

/* ---- running out of memory ---------------------------------------------------- */

static const char *const oom_doc =
    "{'command':['/bin/sh','-c','x'],'stdin':'in','env':{'B':'2','A':'1'},'cwd':'/srv',"
    "'retry_exit_codes':[3,75],'name':'n','labels':{'k':'v'},'node_selector':{'gpu':'yes'},"
    "'limits':{'cpu_seconds':10}}";

static const char *const oom_task_doc = "{'task':'echo','args':{'a':[1,2,{'b':'c'}]}}";

/* Fail each allocation of a parse in turn: each must fail cleanly, without a leak. */
static void check_parse_oom(const char *text) {
    json_t *doc = load(text);
    long n;
    for (n = 0;; n++) {
        struct jobd_spec s;
        struct jobd_error err;
        long before = live;
        fail_at = n;
        n_allocs = 0;
        int rc = jobd_spec_parse(doc, &s, &err);
        fail_at = -1;
        if (rc == 0) {
            assert_true(n_allocs <= n);
            jobd_spec_free(&s);
            assert_int_equal(live, before);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_string_equal(err.field, "");
        assert_string_equal(err.message, "out of memory");
        assert_true(spec_is_empty(&s));
        assert_int_equal(live, before);
    }
    assert_true(n >= 8);
    json_decref(doc);
}

static void test_parse_out_of_memory(void **state) {
    (void)state;
    check_parse_oom(oom_doc);
    check_parse_oom(oom_task_doc);
}

/* Fail each allocation of a rendering in turn: NULL each time, without a leak. */
static void check_to_json_oom(const char *text) {
    struct jobd_spec s = parse_ok(text);
    long n;
    for (n = 0;; n++) {
        long before = live;
        fail_at = n;
        n_allocs = 0;
        json_t *j = jobd_spec_to_json(&s);
        fail_at = -1;
        if (j != NULL) {
            assert_true(n_allocs <= n);
            json_decref(j);
            assert_int_equal(live, before);
            break;
        }
        assert_int_equal(live, before);
    }
    assert_true(n >= 20);
    jobd_spec_free(&s);
}

static void test_to_json_out_of_memory(void **state) {
    (void)state;
    check_to_json_oom(oom_doc);
    check_to_json_oom(oom_task_doc);
}

int main(void) {
    /* Route jansson through the counted allocator before any JSON value exists. */
    json_set_alloc_funcs(json_alloc, json_free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_cases),
        cmocka_unit_test(test_good_cases),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_command_bounds),
        cmocka_unit_test(test_string_bounds),
        cmocka_unit_test(test_stdin_bounds),
        cmocka_unit_test(test_env_bounds),
        cmocka_unit_test(test_labels_bounds),
        cmocka_unit_test(test_exit_codes_bounds),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_failure_leaves_out_empty),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test(test_round_trip_built_spec),
        cmocka_unit_test(test_error_set),
        cmocka_unit_test(test_error_field_stays_utf8),
        cmocka_unit_test(test_keys_with_nul),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_parse_out_of_memory),
        cmocka_unit_test(test_to_json_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
