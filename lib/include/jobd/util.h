/*
 * jobd/util.h: small helpers shared by the service and the client: clocks,
 * RFC 3339 timestamps, and job id formatting.
 */
#ifndef JOBD_UTIL_H
#define JOBD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall clock in milliseconds since the Unix epoch. */
int64_t jobd_now_ms(void);

/* Monotonic clock in milliseconds (for deadlines and durations). */
int64_t jobd_mono_ms(void);

/*
 * Fill *ts with the CLOCK_MONOTONIC time `ms` milliseconds from now (ms <= 0:
 * now), for pthread_cond_timedwait on a condition variable whose clock is
 * CLOCK_MONOTONIC.
 */
void jobd_mono_after(int64_t ms, struct timespec *ts);

/* Format `ms` (Unix epoch milliseconds) as "2026-11-27T11:40:57.123Z" into buf (>= 32 bytes). */
void jobd_format_time(int64_t ms, char *buf, size_t len);

/*
 * Job ids are "j" followed by the job number in lowercase base 36 (j1, jz, j10...):
 * short, opaque to users, and never reused. Format into buf (>= JOBD_MAX_ID_BYTES).
 */
void jobd_format_id(int64_t num, char *buf, size_t len);

/* Parse an id. Return the job number (> 0), or -1 when `id` is not a job id. */
int64_t jobd_parse_id(const char *id);

#endif
