/*
 * fuzz_output.c: libFuzzer target for output files (service/output.c): each
 * input is a program of writer operations run in a private directory under
 * $TMPDIR (fuzz_check_output), which is emptied after every input and
 * removed at exit.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz_checks.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX];

static void remove_dir(void) {
    (void)rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/jobd-fuzz-output-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("fuzz_output: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_check_output(dir, data, size) != 0)
        abort();
    return 0;
}
