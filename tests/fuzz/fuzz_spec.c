/*
 * fuzz_spec.c: libFuzzer target for the job spec parser and codec
 * (jobd_spec_parse, jobd_spec_to_json); the check is fuzz_check_spec.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check_spec(data, size) != 0)
        abort();
    return 0;
}
