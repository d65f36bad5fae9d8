/*
 * fuzz_batch.c: libFuzzer target for the body of POST /v1/batches, checked
 * spec by spec as api_batches.c does (fuzz_check_batch), with the builtin
 * tasks registered so that task specs get their args checked.
 */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_checks.h"
#include "tasks_builtin.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || tasks_builtin_register() != 0) {
        fprintf(stderr, "fuzz_batch: cannot set up the builtin tasks\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check_batch(data, size) != 0)
        abort();
    return 0;
}
