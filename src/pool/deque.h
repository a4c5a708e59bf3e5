/* pool/deque.h: a Chase-Lev work-stealing deque of `void *` (internal).
 *
 * One owner thread pushes at the bottom and takes from the bottom (LIFO);
 * any number of other threads steal from the top (FIFO), concurrently with
 * the owner and with each other, without locks.  The owner may also call
 * belt__deque_steal() on its own deque (it then takes the oldest element,
 * which is how the pool's work-stealing workers run their own jobs in FIFO
 * order).  See pool/deque.c for the algorithm, its source and its orderings.
 *
 *   operation      who                    may run concurrently with
 *   push, take     the owner only         steal (any number of threads)
 *   steal          anyone                 push, take, steal, size
 *   size           anyone                 everything (a snapshot)
 *   init, destroy  the owner, alone       nothing
 *
 * Elements are opaque non-NULL pointers: NULL is how take and steal say
 * "nothing".  The deque never dereferences them and never frees them.
 */
#ifndef BELT_DEQUE_H
#define BELT_DEQUE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A circular array of 2^k slots.  Retired arrays (after a growth) stay
 * allocated, linked through `prev`, until belt__deque_destroy(): a thief may
 * still be reading a slot of one (pool/deque.c, "Memory"). */
typedef struct belt__deque_array {
    struct belt__deque_array *prev; /* the array this one replaced */
    size_t size;                    /* slots, a power of two */
    _Atomic(void *) slot[];
} belt__deque_array;

typedef struct belt__deque {
    _Alignas(64) _Atomic int64_t top;       /* next index to steal */
    _Alignas(64) _Atomic int64_t bottom;    /* next index to push */
    _Atomic(belt__deque_array *) array;     /* written by the owner only */
    _Atomic unsigned tsan_fence;  /* ThreadSanitizer builds only (pool/deque.c) */
} belt__deque;

/* Initialises an empty deque with room for `capacity` elements before its
 * first growth (rounded up to a power of two, at least 2).  Returns BELT_OK
 * or BELT_ENOMEM (nothing allocated). */
int belt__deque_init(belt__deque *q, size_t capacity);

/* Frees the current and every retired array.  No other operation may run
 * concurrently or later (until a new init).  Elements still in the deque are
 * not freed (they are the caller's). */
void belt__deque_destroy(belt__deque *q);

/* Owner only: pushes x (non-NULL) at the bottom, doubling the array when it
 * is full.  Returns BELT_OK, or BELT_ENOMEM (the array could not grow; x was
 * not pushed and is still the caller's). */
int belt__deque_push(belt__deque *q, void *x);

/* Owner only: takes the newest element, or returns NULL when empty (also
 * when a thief won the race for the last element). */
void *belt__deque_take(belt__deque *q);

/* Anyone: takes the oldest element.  Returns it, or NULL with *lost = 0 when
 * the deque was empty, or NULL with *lost = 1 when another thread took that
 * element first (the deque may still hold others: try again).  lost may be
 * NULL. */
void *belt__deque_steal(belt__deque *q, int *lost);

/* Anyone: the number of elements, as a snapshot (may be stale by the time
 * it returns; never negative). */
size_t belt__deque_size(belt__deque *q);

#endif /* BELT_DEQUE_H */
