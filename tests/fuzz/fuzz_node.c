/*
 * fuzz_node.c: libFuzzer target for what a worker node answers the
 * coordinator (exec_remote_parse_list, exec_remote_parse_doc) and for the
 * spec rewrite (exec_remote_node_spec); the check is fuzz_check_node.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check_node(data, size) != 0)
        abort();
    return 0;
}
