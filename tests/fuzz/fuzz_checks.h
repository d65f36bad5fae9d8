/*
 * fuzz_checks.h: the properties the libFuzzer targets check, as plain
 * functions, so that a unit test can run the same checks on the inputs that
 * once broke them (tests/unit/test_fuzz_regressions.c).
 *
 * Each check takes the raw bytes of one input and returns 0 when every
 * property held, or -1 after printing to stderr which one failed. A fuzz
 * target aborts on -1; memory errors are left to the sanitizers. Inputs
 * that are not what the check wants (invalid JSON, say) pass.
 */
#ifndef JOBD_FUZZ_CHECKS_H
#define JOBD_FUZZ_CHECKS_H

#include <stddef.h>
#include <stdint.h>

/*
 * The bytes as a JSON document, through jobd_spec_parse. An accepted spec
 * must render (jobd_spec_to_json), the rendering must parse again, and the
 * second rendering must equal the first. A rejected one must name its
 * field and rule in valid UTF-8, as they go into problem+json replies.
 */
int fuzz_check_spec(const uint8_t *data, size_t size);

/*
 * The bytes as the body of POST /v1/batches: an object {"jobs": [...],
 * "concurrency", "name"} checked as api_batches.c does, or a bare array of
 * specs. Each spec goes through jobd_spec_parse and api_check_spec with
 * field paths "jobs[i].field", which must be valid UTF-8. Needs the builtin
 * tasks registered (tasks_builtin_register) for task specs to pass.
 */
int fuzz_check_batch(const uint8_t *data, size_t size);

/*
 * The bytes as "METHOD /path?query": the method is everything before the
 * first space, the path what follows up to '?', the query the rest. Checks
 * http_route_find against the API's routing table, and that every path
 * segment and id-like query value that jobd_parse_id or
 * sched_parse_batch_id accepts has exactly that spelling.
 */
int fuzz_check_route(const uint8_t *data, size_t size);

/*
 * The bytes as a program of output_writer operations on one stream in
 * directory `dir` (which must exist and be empty): a cap, then appends of
 * various lengths with reads of the readable prefix in between, then
 * finish and reads at various offsets, each compared with a model of the
 * stream kept in memory. Leaves `dir` empty; fails if anything is left in it.
 */
int fuzz_check_output(const char *dir, const uint8_t *data, size_t size);

/*
 * The bytes as a worker node's answer (service/exec_remote.c): through
 * exec_remote_parse_list as a list or blocking-query body, and through
 * exec_remote_parse_doc as one job document (and each element of its
 * "jobs"). Every document accepted must be safe to act on: a remote id that
 * is safe in a URL path, a state in range, bounded NUL-terminated strings
 * in valid UTF-8, a result that is JSON, an outcome consistent with the
 * state. The list must yield exactly the elements parse_doc accepts. An
 * object also goes through exec_remote_node_spec, whose output must carry
 * the three labels and none of the dropped fields.
 */
int fuzz_check_node(const uint8_t *data, size_t size);

#endif
