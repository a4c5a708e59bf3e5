/* util/clock.h: the one clock of belt, and spans of time in nanoseconds.
 * Internal: never installed.
 *
 * Every duration in belt is an int64_t of nanoseconds measured on
 * CLOCK_MONOTONIC; timestamps written into results are CLOCK_REALTIME
 * nanoseconds since the epoch.  The helpers below are the only place that
 * calls clock_gettime() (Redis keeps one monotonic.c for the same reason).
 * Every function here can't fail and is async-signal-safe, so a signal
 * handler may stamp its signal with belt__now_mono().
 */
#ifndef BELT_UTIL_CLOCK_H
#define BELT_UTIL_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define BELT__NS_PER_US ((int64_t)1000)
#define BELT__NS_PER_MS ((int64_t)1000000)
#define BELT__NS_PER_S ((int64_t)1000000000)

/* Nanoseconds on clock id (CLOCK_MONOTONIC, CLOCK_REALTIME,
 * CLOCK_THREAD_CPUTIME_ID, ...). */
int64_t belt__clock_ns(clockid_t id);

/* CLOCK_MONOTONIC nanoseconds: for spans and deadlines. */
int64_t belt__now_mono(void);

/* CLOCK_REALTIME nanoseconds since the epoch: for timestamps in reports. */
int64_t belt__now_real(void);

/* a + b for a time and a non-negative span, saturating at INT64_MAX; a
 * span <= 0 leaves a as it is. */
int64_t belt__add_sat(int64_t a, int64_t b);

/* ns (>= 0; negative counts as 0) as a struct timespec: a relative span,
 * or an absolute time on whichever clock ns was read from. */
struct timespec belt__timespec(int64_t ns);

/* The CLOCK_MONOTONIC time timeout_ns (>= 0) from now, as a timespec for
 * pthread_cond_timedwait (with a monotonic condattr), futex waits and
 * ppoll deadlines.  Absurd timeouts are clamped (2^40 s) rather than
 * overflowing time_t. */
void belt__deadline(struct timespec *out, int64_t timeout_ns);

/* Whether CLOCK_MONOTONIC has reached deadline. */
bool belt__deadline_passed(const struct timespec *deadline);

/* Writes a short human form of a span ("200ms", "2s", "1.5s", "750ns")
 * into buf (truncated to size). */
void belt__format_duration(int64_t ns, char *buf, size_t size);

#endif /* BELT_UTIL_CLOCK_H */
