/* test_util.h: small helpers shared by belt's Check programs.
 *
 * - Failure reporting from worker threads.  ck_assert() is only meant for the
 *   thread running the test, so worker threads record their first failure
 *   with TU_CHECK() and the test thread calls tu_assert_threads_ok() after
 *   joining them.  A worker that hits a failed TU_CHECK() keeps going (or
 *   returns, as the caller decides) so that every thread can still be joined.
 * - Scaling.  Iteration counts go through tu_scaled(): the factor is
 *   $BELT_TEST_SCALE when set (a positive number, e.g. 0.1 for a tenth of the
 *   work), else 0.25 in a sanitizer build (ASan and TSan make these tests 5-15x
 *   slower), else 1.  Per-test time limits go through tu_timeout(), which
 *   grows them in sanitizer builds (Check also honours CK_TIMEOUT_MULTIPLIER).
 * - Time, sleeping, CPU time, resident memory, CPU pinning.
 *
 * Everything is static: each test program includes this header once.
 */
#ifndef BELT_TEST_UTIL_H
#define BELT_TEST_UTIL_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "belt/chan.h"
#include "belt/error.h"

/* ---- sanitizer detection ------------------------------------------------ */

#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#undef TU_ASAN
#define TU_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#undef TU_TSAN
#define TU_TSAN 1
#endif
#endif
#if defined(TU_ASAN) || defined(TU_TSAN)
#define TU_SANITIZED 1
#endif

static inline int tu_sanitized(void)
{
#ifdef TU_SANITIZED
    return 1;
#else
    return 0;
#endif
}

/* ---- scaling ------------------------------------------------------------ */

static inline double tu_scale(void)
{
    const char *s = getenv("BELT_TEST_SCALE");
    if (s != NULL && *s != '\0') {
        char *end;
        double f = strtod(s, &end);
        if (end != s && f > 0.0)
            return f;
    }
    return tu_sanitized() ? 0.25 : 1.0;
}

/* n scaled by tu_scale(), but never below `min`. */
static inline long tu_scaled(long n, long min)
{
    double v = (double)n * tu_scale();
    long r = v > 4e18 ? (long)4e18 : (long)v;
    return r < min ? min : r;
}

/* A per-test time limit in seconds, longer in sanitizer builds. */
static inline double tu_timeout(double seconds)
{
    return tu_sanitized() ? seconds * 6.0 : seconds;
}

/* ---- failures in worker threads ----------------------------------------- */

static atomic_int tu_failures;
static pthread_mutex_t tu_fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char tu_fail_msg[512];

static void tu_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tu_fail(const char *file, int line, const char *fmt, ...)
{
    if (atomic_fetch_add(&tu_failures, 1) == 0) {
        va_list ap;
        pthread_mutex_lock(&tu_fail_lock);
        int k = snprintf(tu_fail_msg, sizeof tu_fail_msg, "%s:%d: ", file, line);
        if (k < 0)
            k = 0;
        if ((size_t)k < sizeof tu_fail_msg) {
            va_start(ap, fmt);
            vsnprintf(tu_fail_msg + k, sizeof tu_fail_msg - (size_t)k, fmt, ap);
            va_end(ap);
        }
        pthread_mutex_unlock(&tu_fail_lock);
    }
}

/* Records a failure (first one wins) when cond is false; evaluates to cond. */
#define TU_CHECK(cond, ...)                                                    \
    ((cond) ? 1 : (tu_fail(__FILE__, __LINE__, __VA_ARGS__), 0))

/* Records a failure unconditionally. */
#define TU_FAIL(...) tu_fail(__FILE__, __LINE__, __VA_ARGS__)

/* Records a failure when `got` != `want` for belt status codes. */
#define TU_CHECK_RC(got, want)                                                 \
    TU_CHECK((got) == (want), "%s: got %s, want %s", #got,                     \
             belt_err_name(got), belt_err_name(want))

static inline int tu_thread_failed(void)
{
    return atomic_load(&tu_failures) != 0;
}

static void tu_reset_failures(void)
{
    atomic_store(&tu_failures, 0);
    tu_fail_msg[0] = '\0';
}

#define tu_assert_threads_ok()                                                 \
    do {                                                                       \
        pthread_mutex_lock(&tu_fail_lock);                                     \
        int tu_n_ = atomic_load(&tu_failures);                                 \
        char tu_m_[sizeof tu_fail_msg];                                        \
        memcpy(tu_m_, tu_fail_msg, sizeof tu_m_);                              \
        pthread_mutex_unlock(&tu_fail_lock);                                   \
        ck_assert_msg(tu_n_ == 0, "%d failure(s) in worker threads; first: %s",\
                      tu_n_, tu_m_);                                           \
    } while (0)

/* Asserts a belt status code, printing names on failure (test thread).
 * Written as an `if` rather than with ck_assert_msg(): a passing ck_assert
 * records its location through a pipe to the parent (a system call), which
 * would dominate the tight loops of these tests. */
#define ck_assert_rc(got, want)                                                \
    do {                                                                       \
        int tu_g_ = (got), tu_w_ = (want);                                     \
        if (tu_g_ != tu_w_)                                                    \
            ck_abort_msg("%s: got %s (%d), want %s (%d)", #got,                \
                         belt_err_name(tu_g_), tu_g_, belt_err_name(tu_w_),    \
                         tu_w_);                                               \
    } while (0)

/* A cheap assertion for loops (see ck_assert_rc). */
#define ck_check(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond))                                                           \
            ck_abort_msg(__VA_ARGS__);                                         \
    } while (0)

/* ---- threads ------------------------------------------------------------ */

#define tu_spawn(thr, fn, arg)                                                 \
    ck_assert_msg(pthread_create((thr), NULL, (fn), (arg)) == 0,               \
                  "pthread_create failed")

#define tu_join(thr) ck_assert_msg(pthread_join((thr), NULL) == 0, "pthread_join failed")

/* Pins the calling thread to one CPU: the lowest-numbered one it may run on
 * now (CPU 0 on an unrestricted machine; a container's cpuset may exclude
 * CPU 0).  Threads created afterwards inherit the mask.  Returns 0 or an
 * errno value. */
static inline int tu_pin_self_one_cpu(void)
{
    cpu_set_t cur, set;
    int rc = pthread_getaffinity_np(pthread_self(), sizeof cur, &cur);
    if (rc != 0)
        return rc;
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &cur))
        cpu++;
    if (cpu == CPU_SETSIZE)
        return EINVAL;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* ---- time --------------------------------------------------------------- */

#define TU_MS ((int64_t)1000000)
#define TU_SEC ((int64_t)1000000000)

static inline int64_t tu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * TU_SEC + ts.tv_nsec;
}

static inline int64_t tu_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * TU_SEC + ts.tv_nsec;
}

static inline void tu_sleep_ns(int64_t ns)
{
    struct timespec ts = { (time_t)(ns / TU_SEC), (long)(ns % TU_SEC) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static inline void tu_sleep_ms(int64_t ms)
{
    tu_sleep_ns(ms * TU_MS);
}

/* ---- memory ------------------------------------------------------------- */

/* Resident set size in bytes (from /proc/self/statm), or 0 if unknown.
 * Uses open/read rather than stdio so that measuring does not allocate on
 * the heap it is measuring. */
static inline size_t tu_rss_bytes(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long size = 0, resident = 0;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2)
        return 0;
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- random numbers (per-thread state, no global state) ----------------- */

static inline uint64_t tu_rand(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- channel flavours --------------------------------------------------- */

/* The capacities the flavour-parameterised tests run over.  SIZE_MAX stands
 * for an unbounded channel. */
static const size_t tu_caps[] = { 0, 1, 4, 1024, SIZE_MAX };
#define TU_NCAPS ((int)(sizeof tu_caps / sizeof tu_caps[0]))

static inline belt_chan *tu_make_chan(size_t cap, size_t elem_size)
{
    return cap == SIZE_MAX ? belt_chan_unbounded(elem_size)
                           : belt_chan_bounded(cap, elem_size);
}

static inline const char *tu_cap_name(size_t cap)
{
    static char buf[4][32];
    static atomic_uint next;
    char *b = buf[atomic_fetch_add(&next, 1) % 4];
    if (cap == SIZE_MAX)
        return "unbounded";
    if (cap == 0)
        return "rendezvous";
    snprintf(b, sizeof buf[0], "bounded(%zu)", cap);
    return b;
}

#endif /* BELT_TEST_UTIL_H */
