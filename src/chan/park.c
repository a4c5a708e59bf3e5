/* chan/park.c: claiming, completing and parking a waiter (see chan/park.h for
 * the protocol).
 *
 * Parking is a bounded spin followed by a futex wait on the `done` word, the
 * way crossbeam's Backoff hands over to thread parking: a hand-off that
 * arrives within a microsecond or so costs no system call, and a waiter that
 * waits longer sleeps in the kernel and burns no CPU.  The spin is bounded
 * (BELT__SPIN_LIMIT pause instructions in total) and never calls
 * sched_yield(): with more threads than cores, yielding spinners steal the
 * CPU from the very thread they wait for.
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
#include <sys/syscall.h>
#include <unistd.h>

#ifndef BELT__SPIN_LIMIT
#define BELT__SPIN_LIMIT 6 /* 2^0 + ... + 2^6 = 127 pauses at most */
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

bool belt__waiter_park(belt__waiter *w, const struct timespec *deadline)
{
    for (int step = 0; step <= BELT__SPIN_LIMIT; step++) {
        if (atomic_load_explicit(&w->done, memory_order_acquire) == 1)
            return true;
        for (int i = 0; i < (1 << step); i++)
            belt__cpu_relax();
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

