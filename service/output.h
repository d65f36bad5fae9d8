/*
 * output.h: per-job stdout/stderr files under <data>/out/.
 *
 * A writer appends one stream of one job attempt to `<dir>/<id>.stdout` (or
 * `.stderr`), creating the file on the first byte (a job that prints nothing
 * costs no file). With a cap C, the file keeps the first C/2 bytes (the head)
 * and the last C - C/2 bytes (the tail, since the end is where errors are):
 * while the job runs, the tail is written into a ring region after the head;
 * output_writer_finish puts the ring in order. Readers only read the first
 * `readable` bytes, which is always a prefix of the final file.
 *
 * Small streams stay in memory: until a stream passes OUTPUT_INLINE_MAX
 * bytes, no file is created at all and output_writer_inline gives the bytes
 * (the scheduler keeps them, and the store puts them in the job's row). A
 * stream that grows past it "spills": everything goes to the file, as above.
 * Creating a file is the most expensive part of a short job, and most jobs
 * print little.
 *
 * A writer is used by one thread (an executor). Readers are independent and
 * open the file by path.
 */
#ifndef JOBD_OUTPUT_H
#define JOBD_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum output_stream { OUTPUT_STDOUT = 0, OUTPUT_STDERR = 1 };

#define OUTPUT_INLINE_MAX (16 * 1024) /* bytes of a stream kept in memory instead of a file */

struct output_writer;

/* Path of a stream's file into buf. Return 0 or -ENAMETOOLONG. */
int output_path(const char *dir, const char *id, enum output_stream s, char *buf, size_t len);

/*
 * Start a writer for a new attempt: any previous file of this stream is
 * truncated on the first write (the file holds the latest attempt).
 * cap <= 0 means no cap. Return a new writer (free with output_writer_close)
 * or NULL if memory runs out.
 */
struct output_writer *output_writer_open(const char *dir, const char *id, enum output_stream s,
                                         int64_t cap);

/*
 * Say that no earlier attempt can have left a file (a job's first attempt),
 * so finishing a writer that got no bytes need not remove one.
 */
void output_writer_set_fresh(struct output_writer *w);

/* Keep small streams in memory (the default) or always write the file. Before any append. */
void output_writer_set_inline(struct output_writer *w, bool on);

/* Append bytes. Return 0 or a negative errno (the writer then drops further bytes). */
int output_writer_append(struct output_writer *w, const void *buf, size_t len);

/*
 * The stream's bytes while it is small enough to be kept in memory (never
 * written to a file), or NULL once it spilled to its file (or is empty).
 * Borrowed: valid until the next append or close.
 */
const void *output_writer_inline(const struct output_writer *w, size_t *len);

/* Bytes a reader may read now (a prefix of the final file, or of the inline bytes). */
int64_t output_writer_readable(const struct output_writer *w);
/* Bytes the job wrote in all, kept or not. */
int64_t output_writer_total(const struct output_writer *w);
/* True once bytes were dropped by the cap. */
bool output_writer_truncated(const struct output_writer *w);

/* Put the tail in order and sync nothing (output is not durable). Return 0 or -errno. */
int output_writer_finish(struct output_writer *w);

/* Close and free (calls nothing else; call finish first to order the tail). */
void output_writer_close(struct output_writer *w);

/*
 * Read up to len bytes at offset from a stream's file. Return the count
 * (0 at end or when the file does not exist), or a negative errno.
 */
ssize_t output_read(const char *dir, const char *id, enum output_stream s, int64_t offset,
                    void *buf, size_t len);

/* Size of a stream's file (0 when it does not exist). */
int64_t output_size(const char *dir, const char *id, enum output_stream s);

/* Remove both files of a job (missing files are fine). */
void output_remove(const char *dir, const char *id);

#endif
