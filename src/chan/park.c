/* chan/park.c: claiming, completing and parking a waiter (see chan/park.h for
 * the protocol).
 *
 * Waiting is a three-stage backoff, the shape of crossbeam-channel's
 * utils.rs Backoff (spin, then snooze) handing over to thread parking:
 *   1. spin: BELT__SPIN_LIMIT rounds of 2^step pause instructions (127 in
 *      all), re-checking `done` between rounds.  A hand-off that arrives
 *      within a microsecond or so costs no system call at all.
 *   2. yield: at most BELT__YIELD_LIMIT sched_yield() calls, re-checking
 *      `done` after each.  With more threads than cores (4+4 on 2) or every
 *      thread pinned to one CPU, the counterpart we wait for is often
 *      runnable on *our* CPU; a yield lets it run and complete us, which is
 *      far cheaper than a futex sleep and wake-up.  The count is small and
 *      fixed: crossbeam issues #821 and #1031 show what unbounded yielding
 *      does when many waiters share a CPU (they yield to each other and
 *      starve the one thread that could make progress).
 *   3. park: a futex wait on `done`, so a thread that waits longer burns no
 *      CPU (tests/unit/check_chan.c: test_blocked_thread_burns_no_cpu).
 * When the calling thread may run on one CPU only (its affinity mask, read
 * once per thread), stage 1 is skipped: no counterpart can run while we
 * spin, so every pause would be wasted.
 *
 * No system call on the waking side unless the owner is asleep: complete()
 * exchanges `done` to 1 and calls FUTEX_WAKE only if it saw 2 ("asleep"),
 * which the owner sets with a CAS just before the futex wait.  This is the
 * "is anybody parked" check of crossbeam's SyncWaker (waker.rs, is_empty),
 * kept per waiter rather than per channel.
 *
 * Memory ordering: the claimer writes index/status (and the element, in the
 * owner's buffer) with plain stores and then exchanges done to 1 with release
 * ordering; the owner reads done with acquire ordering before it reads any of
 * them.  The claim CAS is acq_rel so that a claimer also sees what the owner
 * wrote before it linked its entries (the element of a blocked send).
 */
#include "chan/park.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef BELT__SPIN_LIMIT
#define BELT__SPIN_LIMIT 6 /* 2^0 + ... + 2^6 = 127 pauses at most */
#endif
#ifndef BELT__YIELD_LIMIT
#define BELT__YIELD_LIMIT 4 /* sched_yield() calls before the futex */
#endif

void belt__waiter_init(belt__waiter *w)
{
    atomic_init(&w->sel, BELT__SEL_WAITING);
    atomic_init(&w->done, 0);
    w->index = 0;
    w->status = 0;
}

bool belt__waiter_claim(belt__waiter *w)
{
    uint32_t expected = BELT__SEL_WAITING;
    return atomic_compare_exchange_strong_explicit(
        &w->sel, &expected, BELT__SEL_CLAIMED, memory_order_acq_rel,
        memory_order_acquire);
}

bool belt__waiter_abort(belt__waiter *w)
{
    uint32_t expected = BELT__SEL_WAITING;
    return atomic_compare_exchange_strong_explicit(
        &w->sel, &expected, BELT__SEL_ABORTED, memory_order_acq_rel,
        memory_order_acquire);
}

bool belt__waiter_is_waiting(belt__waiter *w)
{
    return atomic_load_explicit(&w->sel, memory_order_acquire) ==
           BELT__SEL_WAITING;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val,
                  const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL,
                   FUTEX_BITSET_MATCH_ANY);
}

void belt__waiter_complete(belt__waiter *w, size_t index, int status)
{
    w->index = index;
    w->status = status;
    /* Release: publish index, status and the moved element to the owner. */
    uint32_t old = atomic_exchange_explicit(&w->done, 1, memory_order_acq_rel);
    if (old == 2)
        futex(&w->done, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* True if the calling thread may run on one CPU only; computed once per
 * thread (a thread's affinity rarely changes after it starts waiting on
 * channels, and a stale answer only costs a few wasted pauses or yields). */
static bool single_cpu(void)
{
    static _Thread_local int cached; /* 0 unknown, 1 one CPU, 2 several */
    if (cached == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        cached = sched_getaffinity(0, sizeof set, &set) == 0 &&
                         CPU_COUNT(&set) == 1
                     ? 1
                     : 2;
    }
    return cached == 1;
}

static bool is_done(belt__waiter *w)
{
    /* Acquire: pairs with complete()'s release; see the essay. */
    return atomic_load_explicit(&w->done, memory_order_acquire) == 1;
}

bool belt__waiter_park(belt__waiter *w, const struct timespec *deadline)
{
    if (!single_cpu()) {
        for (int step = 0; step <= BELT__SPIN_LIMIT; step++) {
            if (is_done(w))
                return true;
            for (int i = 0; i < (1 << step); i++)
                belt__cpu_relax();
        }
    }
    for (int i = 0; i < BELT__YIELD_LIMIT; i++) {
        if (is_done(w))
            return true;
        sched_yield();
    }
    for (;;) {
        uint32_t expected = 0;
        /* Announce that we are about to sleep so that complete() wakes us. */
        if (!atomic_compare_exchange_strong_explicit(
                &w->done, &expected, 2, memory_order_acq_rel,
                memory_order_acquire) &&
            expected == 1)
            return true;
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so
         * spurious wake-ups do not stretch the total wait. */
        long rc = futex(&w->done, FUTEX_WAIT_BITSET_PRIVATE, 2, deadline);
        if (atomic_load_explicit(&w->done, memory_order_acquire) == 1)
            return true;
        if (rc == -1 && errno == ETIMEDOUT)
            return false;
        if (deadline && belt__deadline_passed(deadline))
            return false;
    }
}

