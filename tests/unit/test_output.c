/*
 * test_output.c: capped per-stream output files (service/output.c).
 *
 * The reference model: without a cap the file is the stream; with cap C it
 * is the first C/2 bytes followed by the last C - C/2 bytes once the stream
 * is longer than C. Streams are written in chunks of varied sizes and
 * compared byte for byte with the model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"

/*
 * Most tests here are about the file (head, tail, ring): they open writers
 * that never keep a stream in memory. test_inline_* test the memory mode.
 */
static struct output_writer *open_file_writer(const char *dir, const char *id, enum output_stream s,
                                              int64_t cap) {
    struct output_writer *w = output_writer_open(dir, id, s, cap);
    if (w)
        output_writer_set_inline(w, false);
    return w;
}
#define output_writer_open open_file_writer

struct tdir {
    char path[PATH_MAX];
};

static int setup(void **state) {
    struct tdir *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(d->path, sizeof(d->path), "%s/jobd-output-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(d->path) == NULL) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

static int teardown(void **state) {
    struct tdir *d = *state;
    DIR *dir = opendir(d->path);
    if (dir != NULL) {
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.' &&
                (de->d_name[1] == '\0' || (de->d_name[1] == '.' && de->d_name[2] == '\0')))
                continue;
            char p[PATH_MAX + 256];
            snprintf(p, sizeof(p), "%s/%s", d->path, de->d_name);
            unlink(p);
        }
        closedir(dir);
    }
    rmdir(d->path);
    free(d);
    return 0;
}

/* Count the entries of a directory, without "." and "..". */
static int count_entries(const char *path) {
    DIR *dir = opendir(path);
    assert_non_null(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(dir);
    return n;
}

/* A stream of n bytes that never repeats with a short period. */
static unsigned char *make_stream(size_t n, unsigned seed) {
    unsigned char *b = malloc(n ? n : 1);
    assert_non_null(b);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)x;
    }
    return b;
}

/* Read a whole stream file; *len gets its size. */
static unsigned char *slurp(const char *dir, const char *id, enum output_stream s, size_t *len) {
    int64_t size = output_size(dir, id, s);
    assert_true(size >= 0);
    unsigned char *b = malloc((size_t)size + 1);
    assert_non_null(b);
    ssize_t n = output_read(dir, id, s, 0, b, (size_t)size + 1);
    assert_int_equal(n, size);
    *len = (size_t)size;
    return b;
}

/* Write n bytes in chunks of growing sizes through a writer with cap, check the final file. */
static void check_capped(const char *dir, size_t n, int64_t cap, unsigned seed) {
    unsigned char *src = make_stream(n, seed);
    struct output_writer *w = output_writer_open(dir, "j1", OUTPUT_STDOUT, cap);
    assert_non_null(w);
    size_t off = 0, chunk = 1;
    while (off < n) {
        size_t k = chunk < n - off ? chunk : n - off;
        assert_int_equal(output_writer_append(w, src + off, k), 0);
        off += k;
        chunk = chunk * 3 + 1;
        if (chunk > 70000)
            chunk = 7;
    }
    assert_int_equal(output_writer_finish(w), 0);
    assert_int_equal(output_writer_total(w), (int64_t)n);
    bool over = cap > 0 && (int64_t)n > cap;
    assert_int_equal(output_writer_truncated(w), over);

    size_t len;
    unsigned char *got = slurp(dir, "j1", OUTPUT_STDOUT, &len);
    if (!over) {
        assert_int_equal(len, n);
        assert_memory_equal(got, src, n);
    } else {
        size_t head = (size_t)cap / 2, tail = (size_t)cap - head;
        assert_int_equal(len, (size_t)cap);
        assert_memory_equal(got, src, head);
        assert_memory_equal(got + head, src + n - tail, tail);
    }
    assert_int_equal(output_writer_readable(w), (int64_t)len);
    output_writer_close(w);
    free(got);
    free(src);
    output_remove(dir, "j1");
}

static void test_path(void **state) {
    (void)state;
    char buf[64];
    assert_int_equal(output_path("/d", "j7", OUTPUT_STDOUT, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/d/j7.stdout");
    assert_int_equal(output_path("/d", "j7", OUTPUT_STDERR, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/d/j7.stderr");
    assert_int_equal(output_path("/d", "j7", OUTPUT_STDERR, buf, 12), -ENAMETOOLONG);
}

static void test_no_cap(void **state) {
    struct tdir *d = *state;
    check_capped(d->path, 0, 0, 1);
    check_capped(d->path, 1, 0, 2);
    check_capped(d->path, 300000, 0, 3);
    check_capped(d->path, 300000, -1, 4);
}

static void test_cap_sizes(void **state) {
    struct tdir *d = *state;
    static const int64_t caps[] = {1, 2, 3, 10, 11, 4096, 100001};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        int64_t cap = caps[c];
        const size_t sizes[] = {1,
                                (size_t)cap / 2,
                                (size_t)cap - 1,
                                (size_t)cap,
                                (size_t)cap + 1,
                                (size_t)cap + 2,
                                (size_t)cap + (size_t)cap / 2,
                                2 * (size_t)cap,
                                2 * (size_t)cap + 1,
                                7 * (size_t)cap + 3,
                                (size_t)cap + 250000};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            if (sizes[i] == 0)
                continue;
            check_capped(d->path, sizes[i], cap, (unsigned)(c * 100 + i));
        }
    }
}

/* A single append far larger than the cap: only its last bytes reach the ring. */
static void test_cap_one_big_append(void **state) {
    struct tdir *d = *state;
    size_t n = 1000003;
    unsigned char *src = make_stream(n, 42);
    struct output_writer *w = output_writer_open(d->path, "j2", OUTPUT_STDERR, 1000);
    assert_non_null(w);
    assert_int_equal(output_writer_append(w, src, n), 0);
    assert_int_equal(output_writer_readable(w), 500);
    assert_int_equal(output_writer_finish(w), 0);
    size_t len;
    unsigned char *got = slurp(d->path, "j2", OUTPUT_STDERR, &len);
    assert_int_equal(len, 1000);
    assert_memory_equal(got, src, 500);
    assert_memory_equal(got + 500, src + n - 500, 500);
    assert_true(output_writer_truncated(w));
    assert_int_equal(output_writer_total(w), (int64_t)n);
    output_writer_close(w);
    free(got);
    free(src);
    /* finish leaves no temporary file behind */
    assert_int_equal(count_entries(d->path), 1);
}

/* After every append, the readable prefix as it stands must be a prefix of the final file. */
static void check_readable_prefix(const char *dir, int64_t cap, size_t n) {
    unsigned char *src = make_stream(n, 7);
    struct output_writer *w = output_writer_open(dir, "j3", OUTPUT_STDOUT, cap);
    assert_non_null(w);
    size_t nsnap = 0;
    unsigned char **snaps = calloc(n + 1, sizeof(*snaps));
    int64_t *lens = calloc(n + 1, sizeof(*lens));
    assert_true(snaps && lens);
    int64_t last = 0;
    size_t off = 0, chunk = 1;
    while (off < n) {
        size_t k = chunk < n - off ? chunk : n - off;
        assert_int_equal(output_writer_append(w, src + off, k), 0);
        off += k;
        chunk = chunk % 13 + 1;
        int64_t r = output_writer_readable(w);
        assert_true(r >= last); /* never shrinks */
        last = r;
        snaps[nsnap] = malloc((size_t)r + 1);
        assert_non_null(snaps[nsnap]);
        assert_int_equal(output_read(dir, "j3", OUTPUT_STDOUT, 0, snaps[nsnap], (size_t)r), r);
        lens[nsnap++] = r;
    }
    assert_int_equal(output_writer_finish(w), 0);
    assert_true(output_writer_readable(w) >= last);
    size_t len;
    unsigned char *fin = slurp(dir, "j3", OUTPUT_STDOUT, &len);
    assert_int_equal((int64_t)len, output_writer_readable(w));
    for (size_t i = 0; i < nsnap; i++) {
        assert_true(lens[i] <= (int64_t)len);
        assert_memory_equal(snaps[i], fin, (size_t)lens[i]);
        free(snaps[i]);
    }
    free(snaps);
    free(lens);
    free(fin);
    free(src);
    output_writer_close(w);
    output_remove(dir, "j3");
}

static void test_readable_is_prefix(void **state) {
    struct tdir *d = *state;
    check_readable_prefix(d->path, 0, 500);
    check_readable_prefix(d->path, 64, 40);  /* under the cap */
    check_readable_prefix(d->path, 64, 64);  /* exactly at it */
    check_readable_prefix(d->path, 64, 65);  /* one over */
    check_readable_prefix(d->path, 64, 500); /* far over */
    check_readable_prefix(d->path, 65, 500);
}

static void test_lazy_creation(void **state) {
    struct tdir *d = *state;
    struct output_writer *w = output_writer_open(d->path, "j4", OUTPUT_STDOUT, 0);
    assert_non_null(w);
    assert_int_equal(count_entries(d->path), 0);
    assert_int_equal(output_writer_append(w, "", 0), 0);
    assert_int_equal(count_entries(d->path), 0);
    assert_int_equal(output_writer_finish(w), 0);
    assert_int_equal(count_entries(d->path), 0);
    assert_int_equal(output_writer_readable(w), 0);
    assert_false(output_writer_truncated(w));
    output_writer_close(w);
    assert_int_equal(output_size(d->path, "j4", OUTPUT_STDOUT), 0);
    char buf[8];
    assert_int_equal(output_read(d->path, "j4", OUTPUT_STDOUT, 0, buf, sizeof(buf)), 0);

    w = output_writer_open(d->path, "j4", OUTPUT_STDERR, 0);
    assert_int_equal(output_writer_append(w, "x", 1), 0);
    assert_int_equal(count_entries(d->path), 1);
    struct stat st;
    char path[PATH_MAX];
    assert_int_equal(output_path(d->path, "j4", OUTPUT_STDERR, path, sizeof(path)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    output_writer_finish(w);
    output_writer_close(w);
}

static void test_new_attempt_truncates(void **state) {
    struct tdir *d = *state;
    struct output_writer *w = output_writer_open(d->path, "j5", OUTPUT_STDOUT, 0);
    assert_int_equal(output_writer_append(w, "first attempt\n", 14), 0);
    assert_int_equal(output_writer_finish(w), 0);
    output_writer_close(w);
    assert_int_equal(output_size(d->path, "j5", OUTPUT_STDOUT), 14);

    /* Opening alone changes nothing; the first byte truncates. */
    w = output_writer_open(d->path, "j5", OUTPUT_STDOUT, 0);
    assert_int_equal(output_size(d->path, "j5", OUTPUT_STDOUT), 14);
    assert_int_equal(output_writer_append(w, "2nd", 3), 0);
    assert_int_equal(output_size(d->path, "j5", OUTPUT_STDOUT), 3);
    assert_int_equal(output_writer_finish(w), 0);
    output_writer_close(w);
    char buf[16];
    assert_int_equal(output_read(d->path, "j5", OUTPUT_STDOUT, 0, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "2nd", 3);

    /* An attempt that prints nothing leaves no file of an older attempt. */
    w = output_writer_open(d->path, "j5", OUTPUT_STDOUT, 0);
    assert_int_equal(output_writer_finish(w), 0);
    output_writer_close(w);
    assert_int_equal(output_size(d->path, "j5", OUTPUT_STDOUT), 0);
    assert_int_equal(count_entries(d->path), 0);
}

static void test_read_offsets(void **state) {
    struct tdir *d = *state;
    struct output_writer *w = output_writer_open(d->path, "j6", OUTPUT_STDOUT, 0);
    assert_int_equal(output_writer_append(w, "0123456789", 10), 0);
    char buf[16];
    assert_int_equal(output_read(d->path, "j6", OUTPUT_STDOUT, 0, buf, 4), 4);
    assert_memory_equal(buf, "0123", 4);
    assert_int_equal(output_read(d->path, "j6", OUTPUT_STDOUT, 7, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "789", 3);
    assert_int_equal(output_read(d->path, "j6", OUTPUT_STDOUT, 10, buf, sizeof(buf)), 0);
    assert_int_equal(output_read(d->path, "j6", OUTPUT_STDOUT, 1000, buf, sizeof(buf)), 0);
    assert_int_equal(output_read(d->path, "j6", OUTPUT_STDOUT, -1, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(output_read(d->path, "j6", OUTPUT_STDOUT, 3, buf, 0), 0);
    assert_int_equal(output_size(d->path, "j6", OUTPUT_STDOUT), 10);
    assert_int_equal(output_size(d->path, "j6", OUTPUT_STDERR), 0);
    output_writer_finish(w);
    output_writer_close(w);
}

static void test_remove(void **state) {
    struct tdir *d = *state;
    for (int s = OUTPUT_STDOUT; s <= OUTPUT_STDERR; s++) {
        struct output_writer *w = output_writer_open(d->path, "j8", (enum output_stream)s, 0);
        assert_int_equal(output_writer_append(w, "abc", 3), 0);
        output_writer_finish(w);
        output_writer_close(w);
    }
    assert_int_equal(count_entries(d->path), 2);
    output_remove(d->path, "j8");
    assert_int_equal(count_entries(d->path), 0);
    output_remove(d->path, "j8"); /* missing files are fine */
    output_remove(d->path, "j999");
}

/* A directory that cannot hold the file: the error is reported and bytes are counted. */
static void test_write_error(void **state) {
    struct tdir *d = *state;
    char sub[PATH_MAX + 8];
    snprintf(sub, sizeof(sub), "%s/none", d->path);
    struct output_writer *w = output_writer_open(sub, "j9", OUTPUT_STDOUT, 0);
    assert_non_null(w);
    assert_int_equal(output_writer_append(w, "abc", 3), -ENOENT);
    assert_int_equal(output_writer_append(w, "de", 2), -ENOENT);
    assert_int_equal(output_writer_total(w), 5);
    assert_int_equal(output_writer_readable(w), 0);
    assert_true(output_writer_truncated(w));
    assert_int_equal(output_writer_finish(w), -ENOENT);
    output_writer_close(w);
}

/* Writers leave no descriptor open once closed. */
static void test_no_fd_leak(void **state) {
    struct tdir *d = *state;
    int before = count_entries("/proc/self/fd");
    for (int i = 0; i < 50; i++) {
        struct output_writer *w = output_writer_open(d->path, "j10", OUTPUT_STDOUT, 10);
        assert_int_equal(output_writer_append(w, "0123456789abcdefghij", 20), 0);
        if (i % 2 == 0)
            assert_int_equal(output_writer_finish(w), 0);
        output_writer_close(w);
    }
    assert_int_equal(count_entries("/proc/self/fd"), before);
    /* and open files are close-on-exec */
    struct output_writer *w = output_writer_open(d->path, "j11", OUTPUT_STDOUT, 0);
    assert_int_equal(output_writer_append(w, "x", 1), 0);
    DIR *dir = opendir("/proc/self/fd");
    assert_non_null(dir);
    struct dirent *de;
    int checked = 0;
    while ((de = readdir(dir)) != NULL) {
        int fd = atoi(de->d_name);
        if (fd <= 2 || fd == dirfd(dir))
            continue;
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strstr(target, "j11.stdout") != NULL) {
            assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
            checked++;
        }
    }
    closedir(dir);
    assert_int_equal(checked, 1);
    output_writer_finish(w);
    output_writer_close(w);
}

#undef output_writer_open

/* A small stream stays in memory: no file, the bytes from output_writer_inline. */
static void test_inline_small(void **state) {
    const char *dir = ((struct tdir *)*state)->path;
    char path[PATH_MAX];
    struct output_writer *w = output_writer_open(dir, "j9", OUTPUT_STDOUT, 0);
    size_t len = 1;
    assert_non_null(w);
    output_writer_set_fresh(w);
    assert_null(output_writer_inline(w, &len));
    assert_int_equal(len, 0);
    assert_int_equal(output_writer_append(w, "hello ", 6), 0);
    assert_int_equal(output_writer_append(w, "world", 5), 0);
    const char *d = output_writer_inline(w, &len);
    assert_non_null(d);
    assert_int_equal(len, 11);
    assert_memory_equal(d, "hello world", 11);
    assert_int_equal(output_writer_readable(w), 11);
    assert_int_equal(output_writer_finish(w), 0);
    assert_non_null(output_writer_inline(w, &len));
    assert_int_equal(output_writer_total(w), 11);
    assert_false(output_writer_truncated(w));
    assert_int_equal(output_path(dir, "j9", OUTPUT_STDOUT, path, sizeof path), 0);
    assert_int_equal(access(path, F_OK), -1); /* no file was made */
    output_writer_close(w);
}

/* Past OUTPUT_INLINE_MAX the stream spills: all of it, in order, in the file. */
static void test_inline_spills(void **state) {
    const char *dir = ((struct tdir *)*state)->path;
    size_t n = OUTPUT_INLINE_MAX + 100, len;
    char *src = malloc(n), *back = malloc(n);
    assert_non_null(src);
    assert_non_null(back);
    for (size_t i = 0; i < n; i++)
        src[i] = (char)('a' + i % 26);
    struct output_writer *w = output_writer_open(dir, "j8", OUTPUT_STDERR, 0);
    assert_int_equal(output_writer_append(w, src, 1000), 0);
    assert_non_null(output_writer_inline(w, &len));
    assert_int_equal(output_writer_append(w, src + 1000, n - 1000), 0);
    assert_null(output_writer_inline(w, &len)); /* in the file now */
    assert_int_equal(output_writer_finish(w), 0);
    output_writer_close(w);
    assert_int_equal(output_size(dir, "j8", OUTPUT_STDERR), (int64_t)n);
    assert_int_equal(output_read(dir, "j8", OUTPUT_STDERR, 0, back, n), (ssize_t)n);
    assert_memory_equal(src, back, n);
    /* A later attempt that stays small removes the earlier attempt's file. */
    w = output_writer_open(dir, "j8", OUTPUT_STDERR, 0);
    assert_int_equal(output_writer_append(w, "x", 1), 0);
    assert_int_equal(output_writer_finish(w), 0);
    output_writer_close(w);
    assert_int_equal(output_size(dir, "j8", OUTPUT_STDERR), 0);
    free(src);
    free(back);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test_setup_teardown(test_no_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cap_one_big_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readable_is_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_attempt_truncates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_fd_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_spills, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
