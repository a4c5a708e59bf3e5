/* chan/park.h: the waiter a blocked channel operation parks on (internal).
 *
 * A thread that must block in a channel operation (or a select over several)
 * puts one belt__waiter on its stack and links one entry per operation into
 * the channels' wait queues.  Another thread that can complete one of those
 * operations first *claims* the waiter (a compare-and-swap on `sel`, so at
 * most one operation of a select ever completes), moves the element, and then
 * *completes* it: it writes `index` and `status` and publishes them with a
 * release store to `done`, waking the owner if it went to sleep.  This is the
 * Context/selected protocol of crossbeam-channel with Go's direct hand-off.
 *
 *   sel:  WAITING --claim (a counterpart)--> CLAIMED
 *         WAITING --abort (the owner: timeout, or select saw a race)--> ABORTED
 *   done: 0 --owner about to sleep--> 2;  0 or 2 --complete--> 1
 *
 * Lifetime: once a waiter is claimed, its owner does not return before `done`
 * is 1, so the claimer may use the waiter and the entry until it completes
 * it.  complete() touches the waiter's memory only through one atomic
 * exchange; the futex wake that may follow is a system call on the address
 * and is harmless if the owner has already returned (a spurious wake-up for
 * whoever waits there next, which every futex user tolerates).
 */
#ifndef BELT_PARK_H
#define BELT_PARK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/clock.h"

enum {
    BELT__SEL_WAITING = 0,
    BELT__SEL_ABORTED = 1,
    BELT__SEL_CLAIMED = 2
};

typedef struct belt__waiter {
    _Atomic uint32_t sel;   /* claim state, see above */
    _Atomic uint32_t done;  /* futex word: 0 pending, 1 done, 2 owner asleep */
    size_t index;           /* written by the claimer before done = 1 */
    int status;             /* ditto: BELT_OK or BELT_CLOSED */
} belt__waiter;

/* Resets w to WAITING / not done.  Only the owner calls it, before w is
 * linked anywhere. */
void belt__waiter_init(belt__waiter *w);

/* A counterpart tries to claim w; true if it now owns the right (and the
 * duty) to complete it.  Caller holds the lock of the channel whose queue the
 * entry was found in. */
bool belt__waiter_claim(belt__waiter *w);

/* The owner tries to give up waiting; true if nobody had claimed w. */
bool belt__waiter_abort(belt__waiter *w);

/* True while nobody has claimed or aborted w (a racy hint for "is this entry
 * live"). */
bool belt__waiter_is_waiting(belt__waiter *w);

/* The claimer hands the result to the owner and wakes it.  After this call
 * the claimer must not touch w or its entries again. */
void belt__waiter_complete(belt__waiter *w, size_t index, int status);

/* The owner waits until w is completed or, if deadline is non-NULL, until
 * CLOCK_MONOTONIC passes *deadline.  Spins briefly, then sleeps on a futex.
 * Returns true if completed, false on timeout (then the owner must abort or,
 * failing that, call again with deadline NULL). */
bool belt__waiter_park(belt__waiter *w, const struct timespec *deadline);

/* A CPU pause hint for short spins. */
static inline void belt__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif /* BELT_PARK_H */
