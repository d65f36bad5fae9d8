/*
 * fuzz_route.c: libFuzzer target for the router (http_route_find over the
 * API's table) and the id parsers applied to path segments and query
 * values; the check is fuzz_check_route.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check_route(data, size) != 0)
        abort();
    return 0;
}
