/*
 * jobctl: the command-line client of jobd.
 *
 * Only `--version` and `--help` exist so far; the commands that talk to a
 * jobd arrive with the client library.
 */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out) {
    fputs("usage: jobctl [--version] [--help]\n"
          "\n"
          "The job commands (run, submit, status, logs, ...) are not built yet.\n",
          out);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("jobctl %s\n", JOBD_VERSION);
        return 0;
    }
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return 2;
}
