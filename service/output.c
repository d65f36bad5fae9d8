/*
 * output.c: per-job stdout/stderr files, with an optional cap that keeps the
 * head and the tail of a stream.
 *
 * Layout of a capped file (cap C, head H = C/2, tail T = C - H). Byte number i
 * of the stream (counting from 0) goes to file offset
 *
 *     i                      when i < H          (the head, written once)
 *     H + (i - H) % T        otherwise           (the ring, overwritten)
 *
 * so the file never grows past C. While no more than C bytes have come, the
 * file is simply the stream. Once more have come, the ring holds the last T
 * bytes, rotated: the oldest of them is at ring position (total - H) % T.
 * output_writer_finish rotates the ring into order by copying the file into
 * a temporary file in the same directory (with a bounded buffer) and renaming
 * it over the original, so a reader sees either the old or the new inode,
 * never a half-rotated one.
 *
 * Readable prefix: a reader is only told about bytes that will still be at
 * the same offset in the final file. Without a cap that is every byte
 * written. With a cap, bytes past the head may later be overwritten by the
 * ring or moved by the rotation, so while the job runs only the head (at most
 * H bytes) is readable; after finish the whole file is.
 *
 * Files are created on the first byte with mode 0600 and O_CLOEXEC. A writer
 * belongs to one thread; readers open the file by path and need no lock.
 */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Size of the buffer used to rotate the ring at finish. */
#define OUTPUT_COPY_BUF (64 * 1024)

struct output_writer {
    char path[PATH_MAX];
    int fd;           /* -1 until the first byte, and after finish */
    int64_t cap;      /* <= 0: no cap */
    int64_t head;     /* cap / 2 */
    int64_t tail;     /* cap - head: size of the ring */
    int64_t total;    /* bytes appended in all */
    int64_t readable; /* prefix of the final file that readers may read */
    int err;          /* first write error (negative errno), then bytes are dropped */
    bool truncated;
    bool finished;
    bool fresh;     /* no earlier attempt's file can exist */
    bool inline_ok; /* small streams may stay in memory (inline_fits the cap) */
    char *mem;      /* the inline bytes, while no file exists */
    size_t mem_len;
};

/*
 * Whether a stream under this cap may be kept in memory. Readers are shown
 * every inline byte (readable is the inline length), so the inline bytes
 * must stay where they are in the final file: they must fit in the head,
 * which the cap never drops. With a head shorter than OUTPUT_INLINE_MAX, a
 * stream kept inline past its head would, on spilling, take back bytes
 * readers had already been shown (readable falls to the head) and then
 * overwrite them with the tail.
 */
static bool inline_fits(int64_t cap) {
    return cap <= 0 || cap / 2 >= OUTPUT_INLINE_MAX;
}

const void *output_writer_inline(const struct output_writer *w, size_t *len) {
    if (w->fd >= 0 || w->mem_len == 0 || w->err < 0) {
        *len = 0;
        return NULL;
    }
    *len = w->mem_len;
    return w->mem;
}

void output_writer_set_inline(struct output_writer *w, bool on) {
    w->inline_ok = on && inline_fits(w->cap);
}

void output_writer_set_fresh(struct output_writer *w) {
    w->fresh = true;
}

static const char *const stream_ext[2] = {"stdout", "stderr"};

int output_path(const char *dir, const char *id, enum output_stream s, char *buf, size_t len) {
    int n = snprintf(buf, len, "%s/%s.%s", dir, id, stream_ext[s == OUTPUT_STDERR ? 1 : 0]);
    if (n < 0 || (size_t)n >= len)
        return -ENAMETOOLONG;
    return 0;
}

struct output_writer *output_writer_open(const char *dir, const char *id, enum output_stream s,
                                         int64_t cap) {
    struct output_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->fd = -1;
    if (output_path(dir, id, s, w->path, sizeof(w->path)) < 0)
        w->err = -ENAMETOOLONG;
    if (cap > 0) {
        w->cap = cap;
        w->head = cap / 2;
        w->tail = cap - w->head;
    }
    w->inline_ok = inline_fits(cap);
    return w;
}

/* Write all of buf at off, retrying short writes and EINTR. Return 0 or -errno. */
static int pwrite_all(int fd, const void *buf, size_t len, int64_t off) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Read exactly len bytes at off. Return 0, -EIO on a short file, or -errno. */
static int pread_all(int fd, void *buf, size_t len, int64_t off) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

/* Write stream bytes [pos, pos + len) of a capped stream at their file offsets. */
static int write_capped(struct output_writer *w, const char *p, size_t len, int64_t pos) {
    int rc;
    if (pos < w->head) {
        size_t k = len;
        if ((int64_t)k > w->head - pos)
            k = (size_t)(w->head - pos);
        if ((rc = pwrite_all(w->fd, p, k, pos)) < 0)
            return rc;
        p += k;
        len -= k;
        pos += (int64_t)k;
    }
    if ((int64_t)len > w->tail) {
        /* Only the last `tail` bytes of this chunk survive in the ring. */
        size_t skip = len - (size_t)w->tail;
        p += skip;
        len -= skip;
        pos += (int64_t)skip;
    }
    while (len > 0) {
        int64_t rp = (pos - w->head) % w->tail;
        size_t k = len;
        if ((int64_t)k > w->tail - rp)
            k = (size_t)(w->tail - rp);
        if ((rc = pwrite_all(w->fd, p, k, w->head + rp)) < 0)
            return rc;
        p += k;
        len -= k;
        pos += (int64_t)k;
    }
    return 0;
}

static int append_file(struct output_writer *w, const void *buf, size_t len);

int output_writer_append(struct output_writer *w, const void *buf, size_t len) {
    if (len == 0)
        return w->err;
    if (w->fd < 0 && w->inline_ok && w->err == 0 && !w->finished &&
        w->mem_len + len <= OUTPUT_INLINE_MAX) {
        if (w->mem == NULL && (w->mem = malloc(OUTPUT_INLINE_MAX)) == NULL) {
            w->inline_ok = false; /* no memory for it: go to the file */
        } else {
            memcpy(w->mem + w->mem_len, buf, len);
            w->mem_len += len;
            w->total += (int64_t)len;
            w->readable = w->total;
            return 0;
        }
    }
    if (w->mem_len > 0) {
        /* Spill: what was kept in memory goes to the file first. */
        size_t m = w->mem_len;
        w->mem_len = 0;
        w->total -= (int64_t)m;
        int rc = append_file(w, w->mem, m);
        if (rc < 0) {
            /* This chunk is dropped too, but it was written by the job: count it. */
            w->total += (int64_t)len;
            w->truncated = true;
            return rc;
        }
    }
    return append_file(w, buf, len);
}

/* Append to the file (creating it on the first byte). */
static int append_file(struct output_writer *w, const void *buf, size_t len) {
    int64_t pos = w->total;
    w->total += (int64_t)len;
    if (w->cap > 0 && w->total > w->cap)
        w->truncated = true;
    if (w->finished && w->err == 0)
        w->err = -EINVAL;
    if (w->err < 0) {
        w->truncated = true; /* bytes are being dropped */
        return w->err;
    }
    if (w->fd < 0) {
        w->fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w->fd < 0) {
            w->err = -errno;
            w->truncated = true;
            return w->err;
        }
    }
    int rc;
    if (w->cap <= 0) {
        rc = pwrite_all(w->fd, buf, len, pos);
        if (rc == 0)
            w->readable = w->total;
    } else {
        rc = write_capped(w, buf, len, pos);
        if (rc == 0)
            w->readable = w->total < w->head ? w->total : w->head;
    }
    if (rc < 0) {
        w->err = rc;
        w->truncated = true;
    }
    return rc;
}

int64_t output_writer_readable(const struct output_writer *w) {
    return w->readable;
}

int64_t output_writer_total(const struct output_writer *w) {
    return w->total;
}

bool output_writer_truncated(const struct output_writer *w) {
    return w->truncated;
}

/* Copy [off, off + len) of in to the end of out (at *out_off) through buf. */
static int copy_range(int in, int out, int64_t off, int64_t len, int64_t *out_off, char *buf) {
    while (len > 0) {
        size_t k = len > OUTPUT_COPY_BUF ? OUTPUT_COPY_BUF : (size_t)len;
        int rc = pread_all(in, buf, k, off);
        if (rc == 0)
            rc = pwrite_all(out, buf, k, *out_off);
        if (rc < 0)
            return rc;
        off += (int64_t)k;
        len -= (int64_t)k;
        *out_off += (int64_t)k;
    }
    return 0;
}

/*
 * Rewrite the file as head, then the ring from its oldest byte (at ring
 * position r) to its end, then the ring's start up to r. Return 0 or -errno.
 */
static int rotate_ring(struct output_writer *w, int64_t r) {
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof(tmp), "%s.XXXXXX", w->path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    char *buf = malloc(OUTPUT_COPY_BUF);
    if (buf == NULL)
        return -ENOMEM;
    int rc = 0;
    bool created = false;
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    created = true;
    int64_t off = 0;
    if ((rc = copy_range(w->fd, fd, 0, w->head, &off, buf)) < 0 ||
        (rc = copy_range(w->fd, fd, w->head + r, w->tail - r, &off, buf)) < 0 ||
        (rc = copy_range(w->fd, fd, w->head, r, &off, buf)) < 0)
        goto out;
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, w->path) < 0)
        rc = -errno;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0 && created)
        (void)unlink(tmp);
    free(buf);
    return rc;
}

int output_writer_finish(struct output_writer *w) {
    if (w->finished)
        return w->err;
    w->finished = true;
    if (w->fd < 0) {
        /*
         * Nothing in a file for this attempt (nothing written, or all of it
         * inline): no file, not even a previous attempt's.
         */
        if (w->err == 0 && !w->fresh && unlink(w->path) < 0 && errno != ENOENT)
            w->err = -errno;
        return w->err;
    }
    if (w->err == 0) {
        if (w->cap > 0 && w->total > w->cap) {
            int64_t r = (w->total - w->head) % w->tail;
            int rc = r == 0 ? 0 : rotate_ring(w, r);
            if (rc < 0)
                w->err = rc;
            else
                w->readable = w->cap;
        } else {
            w->readable = w->total;
        }
    }
    if (close(w->fd) < 0 && w->err == 0)
        w->err = -errno;
    w->fd = -1;
    return w->err;
}

void output_writer_close(struct output_writer *w) {
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    free(w->mem);
    free(w);
}

ssize_t output_read(const char *dir, const char *id, enum output_stream s, int64_t offset,
                    void *buf, size_t len) {
    char path[PATH_MAX];
    int rc = output_path(dir, id, s, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (offset < 0)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    size_t got = 0;
    ssize_t ret = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)offset + (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ret = -errno;
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return ret < 0 ? ret : (ssize_t)got;
}

int64_t output_size(const char *dir, const char *id, enum output_stream s) {
    char path[PATH_MAX];
    int rc = output_path(dir, id, s, path, sizeof(path));
    if (rc < 0)
        return rc;
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    return (int64_t)st.st_size;
}

void output_remove(const char *dir, const char *id) {
    char path[PATH_MAX];
    for (int s = OUTPUT_STDOUT; s <= OUTPUT_STDERR; s++) {
        if (output_path(dir, id, (enum output_stream)s, path, sizeof(path)) == 0)
            (void)unlink(path);
    }
}
