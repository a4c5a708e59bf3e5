/* util/clock.c: reading the clocks, and spans as text (util/clock.h). */
#include "util/clock.h"

#include <stdio.h>

int64_t belt__clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * BELT__NS_PER_S + ts.tv_nsec;
}

int64_t belt__now_mono(void)
{
    return belt__clock_ns(CLOCK_MONOTONIC);
}

int64_t belt__now_real(void)
{
    return belt__clock_ns(CLOCK_REALTIME);
}

int64_t belt__add_sat(int64_t a, int64_t b)
{
    if (b <= 0)
        return a;
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

struct timespec belt__timespec(int64_t ns)
{
    if (ns < 0)
        ns = 0;
    struct timespec ts = { (time_t)(ns / BELT__NS_PER_S),
                           (long)(ns % BELT__NS_PER_S) };
    return ts;
}

void belt__deadline(struct timespec *out, int64_t timeout_ns)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    if (timeout_ns < 0)
        timeout_ns = 0;
    int64_t sec = timeout_ns / BELT__NS_PER_S;
    int64_t nsec = out->tv_nsec + timeout_ns % BELT__NS_PER_S;
    if (nsec >= BELT__NS_PER_S) {
        sec++;
        nsec -= BELT__NS_PER_S;
    }
    if (sec > (int64_t)1 << 40)
        sec = (int64_t)1 << 40;
    out->tv_sec += (time_t)sec;
    out->tv_nsec = (long)nsec;
}

bool belt__deadline_passed(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

void belt__format_duration(int64_t ns, char *buf, size_t size)
{
    if (ns % BELT__NS_PER_S == 0)
        snprintf(buf, size, "%llds", (long long)(ns / BELT__NS_PER_S));
    else if (ns % BELT__NS_PER_MS == 0 && ns < 10 * BELT__NS_PER_S)
        snprintf(buf, size, "%lldms", (long long)(ns / BELT__NS_PER_MS));
    else if (ns < BELT__NS_PER_MS)
        snprintf(buf, size, "%lldns", (long long)ns);
    else
        snprintf(buf, size, "%.3fs", (double)ns / 1e9);
}
