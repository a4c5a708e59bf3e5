/* chan/internal.h: the channel's representation, shared by chan/chan.c (send,
 * receive, close), chan/buffer.c (the ring and block-list buffers) and
 * chan/select.c (select).  Internal: never installed.
 *
 * Locking: everything in struct belt_chan below `lock` is guarded by it,
 * except the fields marked atomic, which are also written only under the lock
 * but may be read without it (len, is_closed).  A thread never holds two
 * channel locks at once, so there is no lock order to respect.
 *
 * Invariants (under the lock):
 *   - if recvq holds a live entry (its waiter still WAITING), the buffer is
 *     empty: a sender would have handed its element to that receiver;
 *   - if sendq holds a live entry, the buffer is full (for a rendezvous
 *     channel: always "full");
 *   - once closed, no entry is ever linked again, and none is left linked.
 * Dead entries (their waiter was claimed elsewhere or aborted) may linger in
 * a queue until a counterpart or their owner unlinks them.
 */
#ifndef BELT_CHAN_INTERNAL_H
#define BELT_CHAN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "belt/chan.h"
#include "chan/park.h"

/* One operation of one blocked thread, linked into a channel's sendq or
 * recvq.  Lives on the blocked thread's stack. */
typedef struct belt__entry {
    struct belt__entry *prev, *next; /* guarded by the channel's lock */
    belt__waiter *w;                 /* the owner's waiter */
    void *elem;                      /* send: source; recv: destination */
    size_t index;                    /* the op's index in a select, else 0 */
    bool linked;                     /* guarded by the channel's lock */
} belt__entry;

typedef struct belt__queue {
    belt__entry *head, *tail;
} belt__queue;

/* A block of the unbounded flavour's linked list of slots. */
typedef struct belt__block {
    struct belt__block *next;
    size_t bytes; /* mapping size */
    unsigned char slots[];
} belt__block;

enum { BELT__ARRAY, BELT__ZERO, BELT__LIST };

struct belt_chan {
    pthread_mutex_t lock;
    size_t elem_size; /* immutable */
    size_t cap;       /* immutable; BELT_CHAN_UNBOUNDED for the list flavour */
    int flavor;       /* immutable */
    _Atomic size_t refs;

    _Atomic size_t count; /* buffered elements (written under lock) */
    _Atomic bool closed;  /* written under lock */
    belt__queue sendq, recvq;
    size_t senders, receivers; /* registered, for disconnection */

    /* BELT__ARRAY: a ring of cap slots. */
    unsigned char *ring;
    size_t head; /* slot of the oldest element */

    /* BELT__LIST: blocks of block_slots slots; the list runs from the head
     * block (oldest) to the tail block.  One emptied block is kept spare so
     * that a channel oscillating around a block boundary does not map and
     * unmap at every step. */
    belt__block *hblock, *tblock, *spare;
    size_t hpos, tpos; /* next slot to read in hblock / write in tblock */
    size_t block_slots;
};

/* Copies one element; the pointer-sized case compiles to one move. */
static inline void belt__copy(void *dst, const void *src, size_t size)
{
    if (size == sizeof(void *))
        memcpy(dst, src, sizeof(void *));
    else
        memcpy(dst, src, size);
}

/* chan/buffer.c: the buffer of the array and list flavours.  All need the lock. */
int belt__chbuf_init(belt_chan *ch);
void belt__chbuf_destroy(belt_chan *ch);
bool belt__chbuf_full(const belt_chan *ch);
/* Appends a copy of elem; BELT_OK or BELT_ENOMEM (list only).  The caller has
 * checked !belt__chbuf_full(). */
int belt__chbuf_push(belt_chan *ch, const void *elem);
/* Removes the oldest element into out; the caller has checked count > 0. */
void belt__chbuf_pop(belt_chan *ch, void *out);

/* chan/chan.c: queue helpers and the non-blocking halves of send and receive. */
void belt__queue_push(belt__queue *q, belt__entry *e);
void belt__queue_unlink(belt__queue *q, belt__entry *e);
/* True if q holds an entry whose waiter is not `self` and still waiting. */
bool belt__queue_has_live(const belt__queue *q, const belt__waiter *self);

/* A hand-off decided under the lock and finished after it is dropped:
 * copy dst <- src (if dst is set), then complete the claimed peer. */
typedef struct belt__handoff {
    belt__entry *peer; /* claimed entry to complete, or NULL: nothing to do */
    void *dst;
    const void *src;
} belt__handoff;

/* Tries to send without blocking; the caller holds ch->lock, keeps it, and
 * calls belt__handoff_finish(h) after unlocking.  Returns BELT_OK,
 * BELT_CLOSED, BELT_ENOMEM, or BELT_FULL (nothing happened). */
int belt__try_send_locked(belt_chan *ch, const void *elem, belt__handoff *h);
/* Tries to receive without blocking, as above.  Returns BELT_OK, BELT_CLOSED
 * (closed and drained) or BELT_EMPTY (nothing happened). */
int belt__try_recv_locked(belt_chan *ch, void *out, belt__handoff *h);
/* Finishes a hand-off outside the lock; no-op if there is none. */
void belt__handoff_finish(belt_chan *ch, belt__handoff *h);

/* Lock helpers (pthread mutexes never fail here: the mutex is valid and of
 * the adaptive kind, which does no error checking). */
static inline void belt__lock(belt_chan *ch) { pthread_mutex_lock(&ch->lock); }
static inline void belt__unlock(belt_chan *ch) { pthread_mutex_unlock(&ch->lock); }

#endif /* BELT_CHAN_INTERNAL_H */
