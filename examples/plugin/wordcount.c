/*
 * wordcount.c: an example jobd task plugin.
 *
 * Build it as a shared library and load it with `jobd --plugin
 * jobd_wordcount.so`; then
 *
 *     POST /v1/jobs {"task": "wordcount", "args": {"text": "one two\nthree\n"}}
 *
 * prints "2 lines, 3 words, 14 bytes" and ends with the result
 * {"lines": 2, "words": 3, "bytes": 14}. Counting is that of wc(1): lines
 * are newline characters, words are runs of non-blank bytes.
 *
 * A plugin defines jobd_plugin_init, which registers its tasks; jobd_task_*
 * are resolved from the jobd executable when the plugin is loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "jobd/task.h"

/* Check at submit time that args are {"text": string} and nothing else. */
static int wordcount_check(const json_t *args, char *field, size_t field_len, char *msg,
                           size_t msg_len) {
    const char *key;
    json_t *v;

    if (!json_is_object(args)) {
        snprintf(field, field_len, "%s", "");
        snprintf(msg, msg_len, "must be an object: {\"text\": \"...\"}");
        return -1;
    }
    json_object_foreach((json_t *)args, key, v) {
        if (strcmp(key, "text") != 0) {
            snprintf(field, field_len, "%s", key);
            snprintf(msg, msg_len, "unknown field");
            return -1;
        }
    }
    v = json_object_get(args, "text");
    if (!json_is_string(v)) {
        snprintf(field, field_len, "text");
        snprintf(msg, msg_len, v == NULL ? "is required" : "must be a string");
        return -1;
    }
    return 0;
}

static int wordcount(const json_t *args, jobd_task *t) {
    const json_t *text = json_object_get(args, "text");
    size_t lines = 0, words = 0, bytes;
    int in_word = 0;

    if (!json_is_string(text)) {
        jobd_task_set_error(t, "args.text: must be a string");
        return 1;
    }
    const char *s = json_string_value(text);
    bytes = json_string_length(text);
    for (size_t i = 0; i < bytes; i++) {
        char c = s[i];
        int blank = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
        if (c == '\n')
            lines++;
        if (!blank && !in_word)
            words++;
        in_word = !blank;
    }

    json_t *result = json_pack("{s:I, s:I, s:I}", "lines", (json_int_t)lines, "words",
                               (json_int_t)words, "bytes", (json_int_t)bytes);
    if (result == NULL) {
        jobd_task_set_error(t, "wordcount: out of memory");
        return 1;
    }
    jobd_task_set_result(t, result);
    if (jobd_task_printf(t, "%zu lines, %zu words, %zu bytes\n", lines, words, bytes) < 0) {
        jobd_task_set_error(t, "wordcount: cannot write output");
        return 1;
    }
    return 0;
}

int jobd_plugin_init(void);

int jobd_plugin_init(void) {
    static const struct jobd_task_def def = {
        .name = "wordcount",
        .description = "Count lines, words and bytes of {\"text\": \"...\"}, like wc.",
        .fn = wordcount,
        .check = wordcount_check,
    };
    return jobd_task_register(&def);
}
