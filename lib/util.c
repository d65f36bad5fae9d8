/*
 * util.c: clocks, RFC 3339 timestamps and job ids (jobd/util.h).
 *
 * A job id is "j" followed by the job number in lowercase base 36, with no
 * leading zeros; jobd_parse_id accepts exactly the strings jobd_format_id
 * produces for numbers 1..INT64_MAX and nothing else, so an id has a single
 * spelling and can be compared as a string.
 */
#include "jobd/util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char base36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Read clock `id` in milliseconds. The clocks used here cannot fail on Linux; 0 if one does. */
static int64_t clock_ms(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t jobd_now_ms(void) {
    return clock_ms(CLOCK_REALTIME);
}

int64_t jobd_mono_ms(void) {
    return clock_ms(CLOCK_MONOTONIC);
}

/*
 * Times before 1970 are rounded down to the millisecond, as the seconds are.
 * If the time cannot be broken down (a year out of range), buf is set to "".
 * Years past 9999 print with more than four digits.
 */
void jobd_format_time(int64_t ms, char *buf, size_t len) {
    if (len == 0)
        return;
    int64_t secs = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        buf[0] = '\0';
        return;
    }
    int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
    if (n < 0)
        buf[0] = '\0';
}

/*
 * Only numbers > 0 are job numbers: for any other num, buf is set to "" (an
 * id that jobd_parse_id rejects). The id is truncated to fit len.
 */
void jobd_format_id(int64_t num, char *buf, size_t len) {
    if (len == 0)
        return;
    if (num <= 0) {
        buf[0] = '\0';
        return;
    }
    char digits[16]; /* INT64_MAX has 13 base-36 digits */
    size_t n = 0;
    uint64_t v = (uint64_t)num;
    while (v > 0) {
        digits[n++] = base36[v % 36];
        v /= 36;
    }
    size_t out = 0;
    if (out + 1 < len)
        buf[out++] = 'j';
    while (n > 0 && out + 1 < len)
        buf[out++] = digits[--n];
    buf[out] = '\0';
}

int64_t jobd_parse_id(const char *id) {
    if (id == NULL || id[0] != 'j' || id[1] == '\0' || id[1] == '0')
        return -1;
    int64_t num = 0;
    for (const char *p = id + 1; *p != '\0'; p++) {
        int d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'z')
            d = *p - 'a' + 10;
        else
            return -1;
        if (num > (INT64_MAX - d) / 36)
            return -1;
        num = num * 36 + d;
    }
    return num;
}

void jobd_mono_after(int64_t ms, struct timespec *ts) {
    if (clock_gettime(CLOCK_MONOTONIC, ts) != 0) {
        ts->tv_sec = 0;
        ts->tv_nsec = 0;
    }
    if (ms <= 0)
        return;
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}
