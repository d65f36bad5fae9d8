/* example.c: submit a job to jobd, wait for its end, print its state and output.
 * Build: cc example.c $(pkg-config --cflags --libs jobd-client)
 * Run:   JOBD_URL=http://127.0.0.1:8080 ./a.out   (JOBD_TOKEN too, if jobd has one) */
#include <stdio.h>
#include <stdlib.h>
#include <jobd/client.h>

int main(void) {
    const char *url = getenv("JOBD_URL");
    struct jobd_client_options o = {.url = url ? url : "http://127.0.0.1:8080",
                                    .token = getenv("JOBD_TOKEN")};
    struct jobd_client_error err;
    struct jobd_client *c = jobd_client_new(&o, &err);
    json_t *spec = json_pack("{s:s}", "shell", "echo hello from $(uname -s)");
    json_t *job = NULL, *done = NULL;
    char *out = NULL;
    size_t len = 0;

    if (!c || jobd_client_submit_json(c, spec, NULL, &job, &err) < 0 ||
        jobd_client_wait(c, jobd_job_str(job, "id"), 60, &done, &err) < 0 ||
        jobd_client_read_output(c, jobd_job_str(job, "id"), JOBD_STDOUT, 0, &out, &len, &err) < 0) {
        fprintf(stderr, "example: %s\n", err.message);
        return 1;
    }
    printf("%s %s: %.*s", jobd_job_str(done, "id"), jobd_job_str(done, "state"), (int)len, out);
    free(out);
    json_decref(done);
    json_decref(job);
    json_decref(spec);
    jobd_client_free(c);
    return 0;
}
