/* belt/chan.h: typed-by-size channels between threads, with close,
 * disconnection, timeouts and select.
 *
 * A channel carries elements of a fixed size (1 byte to BELT_CHAN_MAX_ELEM
 * bytes), copied by value, between any number of sending and receiving
 * threads (MPMC).  Three flavours share one API:
 *
 *   belt_chan_bounded(n, size), n > 0   a ring of n slots: send blocks while full
 *   belt_chan_bounded(0, size)          rendezvous: a send completes only when a
 *                                       receiver has taken the element
 *   belt_chan_unbounded(size)           linked blocks: send never blocks; memory
 *                                       is given back as the channel drains
 *
 * Guarantees: no element is lost or duplicated; elements from one sender are
 * received in the order they were sent; everything a thread wrote before a
 * send is visible to the thread that receives that element (send
 * happens-before the matching receive completes).  A blocked thread spins for
 * a short bounded time and then parks on a futex: it burns no CPU while it
 * waits.
 *
 * Closing: belt_chan_close() is idempotent.  After it, every send fails with
 * BELT_CLOSED (the element stays with the caller); receivers first drain what
 * is buffered and then get BELT_CLOSED; every blocked thread wakes.
 *
 * Disconnection (as Rust's mpsc and crossbeam): register senders with
 * belt_chan_add_senders() and have each call belt_chan_sender_done() when it
 * will send no more; when the count of registered senders drops to zero the
 * channel is closed, so a consumer loop
 *     while (belt_chan_recv(ch, &x) == BELT_OK) ...
 * ends after the last element.  Likewise belt_chan_add_receivers() /
 * belt_chan_receiver_done(): when the last registered receiver is done the
 * channel is closed, so senders get BELT_CLOSED instead of blocking forever.
 * Channels whose counts were never raised above zero are only closed by
 * belt_chan_close().
 *
 * Ownership and freeing: a channel is reference counted.  It starts with one
 * reference, owned by the creator.  belt_chan_ref() adds one; belt_chan_free()
 * drops one and frees the channel when the last is dropped.  Whoever drops the
 * last reference must make sure no thread is still inside a call on the
 * channel (in practice: every thread that uses a channel holds a reference,
 * and drops it when done).  Elements still buffered when the channel is freed
 * are discarded (they are plain bytes; if they are pointers to memory you own,
 * drain the channel first).
 *
 * Errors: every function that takes a channel returns BELT_EINVAL for a NULL
 * channel or NULL element pointer; nothing in this library aborts or prints.
 * On any error from a send, the caller still owns the element it passed in.
 *
 * Timeouts are in nanoseconds, measured on CLOCK_MONOTONIC: 0 means "try, do
 * not block", negative means "wait forever".
 *
 * Concurrency: every function here may be called from any thread at any time
 * on a channel the caller holds a reference to, concurrently with any other
 * function here, except belt_chan_free() dropping the last reference.
 */
#ifndef BELT_CHAN_H
#define BELT_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "belt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct belt_chan belt_chan;

/* Largest element size a channel accepts, in bytes. */
#define BELT_CHAN_MAX_ELEM ((size_t)65536)

/* What belt_chan_capacity() returns for an unbounded channel. */
#define BELT_CHAN_UNBOUNDED SIZE_MAX

/* Creates a bounded channel of `capacity` elements of `elem_size` bytes;
 * capacity 0 makes a rendezvous channel.  The caller owns the one reference.
 * Returns NULL when elem_size is 0 or above BELT_CHAN_MAX_ELEM, when
 * capacity * elem_size overflows, or when memory runs out. */
belt_chan *belt_chan_bounded(size_t capacity, size_t elem_size);

/* Creates an unbounded channel of elements of `elem_size` bytes.  Sends never
 * block (they fail with BELT_ENOMEM only if memory runs out).  The caller owns
 * the one reference.  Returns NULL for a bad elem_size or out of memory. */
belt_chan *belt_chan_unbounded(size_t elem_size);

/* Adds a reference to ch and returns ch (NULL if ch is NULL).  Can't fail. */
belt_chan *belt_chan_ref(belt_chan *ch);

/* Drops one reference; the last one frees the channel and anything still
 * buffered.  NULL is a no-op.  Can't fail. */
void belt_chan_free(belt_chan *ch);

/* Sends the element at `elem` (elem_size bytes, copied), blocking while the
 * channel is full (for a rendezvous channel: until a receiver takes it).
 * Returns BELT_OK, BELT_CLOSED if the channel is or becomes closed (the
 * element was not sent), BELT_ENOMEM (unbounded, out of memory), BELT_EINVAL. */
int belt_chan_send(belt_chan *ch, const void *elem);

/* Receives one element into `out` (elem_size bytes), blocking while the
 * channel is empty.  Returns BELT_OK, BELT_CLOSED once the channel is closed
 * and drained (out untouched), or BELT_EINVAL. */
int belt_chan_recv(belt_chan *ch, void *out);

/* Like belt_chan_send() but never blocks: BELT_FULL when it would block
 * (for a rendezvous channel: when no receiver is waiting). */
int belt_chan_try_send(belt_chan *ch, const void *elem);

/* Like belt_chan_recv() but never blocks: BELT_EMPTY when nothing is there. */
int belt_chan_try_recv(belt_chan *ch, void *out);

/* Like belt_chan_send() but gives up after timeout_ns: BELT_TIMEOUT (a
 * timeout of 0 returns BELT_FULL as try_send does). */
int belt_chan_send_timeout(belt_chan *ch, const void *elem, int64_t timeout_ns);

/* Like belt_chan_recv() but gives up after timeout_ns: BELT_TIMEOUT (a timeout
 * of 0 returns BELT_EMPTY as try_recv does). */
int belt_chan_recv_timeout(belt_chan *ch, void *out, int64_t timeout_ns);

/* Batch receive: waits as belt_chan_recv_timeout() does until at least one
 * element is there, then takes up to `max` elements in all, in order, into
 * out[0 .. n) (out holds max * elem_size bytes), without blocking for the
 * rest.  Returns n >= 1, or BELT_CLOSED (closed and drained), BELT_TIMEOUT,
 * BELT_EMPTY (timeout 0 and nothing there) or BELT_EINVAL (max 0, NULLs).
 * One lock round trip for the whole batch: the cheap way to drain a busy
 * channel. */
int belt_chan_recv_many(belt_chan *ch, void *out, size_t max,
                        int64_t timeout_ns);

/* Batch send: sends elems[0 .. n) in order, blocking as belt_chan_send()
 * does whenever the channel is full, with as few lock round trips as the
 * buffer allows.  Stores the number sent in *sent (may be NULL) and returns
 * BELT_OK when all n were sent, else the error that stopped it (BELT_CLOSED,
 * BELT_ENOMEM, BELT_EINVAL); elements from *sent on stay the caller's. */
int belt_chan_send_many(belt_chan *ch, const void *elems, size_t n,
                        size_t *sent);

/* Closes the channel and wakes every blocked thread.  Idempotent; NULL is a
 * no-op.  Can't fail. */
void belt_chan_close(belt_chan *ch);

/* Registers n more senders.  BELT_EINVAL if ch is NULL, BELT_CLOSED if the
 * channel is already closed (nothing registered). */
int belt_chan_add_senders(belt_chan *ch, size_t n);

/* One registered sender is done; the last one closes the channel.
 * BELT_EINVAL if ch is NULL or no sender is registered. */
int belt_chan_sender_done(belt_chan *ch);

/* Registers n more receivers; see belt_chan_add_senders(). */
int belt_chan_add_receivers(belt_chan *ch, size_t n);

/* One registered receiver is done; the last one closes the channel, so
 * senders get BELT_CLOSED.  BELT_EINVAL if none is registered. */
int belt_chan_receiver_done(belt_chan *ch);

/* Number of elements buffered now (0 for rendezvous; a snapshot that may be
 * stale as soon as it returns).  0 for NULL. */
size_t belt_chan_len(const belt_chan *ch);

/* Capacity given at creation, or BELT_CHAN_UNBOUNDED.  0 for NULL. */
size_t belt_chan_capacity(const belt_chan *ch);

/* Element size given at creation.  0 for NULL. */
size_t belt_chan_elem_size(const belt_chan *ch);

/* True once the channel is closed (by close or by disconnection). */
bool belt_chan_is_closed(const belt_chan *ch);

/* ---- select ---------------------------------------------------------- */

enum belt_op_kind { BELT_OP_SEND = 1, BELT_OP_RECV = 2 };

/* One arm of a select.  Build it with belt_op_send()/belt_op_recv().  An op
 * whose chan is NULL is never ready (as a nil channel in Go's select), which
 * lets a caller switch an arm off without rebuilding the array. */
typedef struct belt_op {
    belt_chan *chan;
    void *elem;   /* send: the element to send; recv: where to store it */
    int kind;     /* enum belt_op_kind */
    int status;   /* out: set on the op that completed: BELT_OK or BELT_CLOSED */
} belt_op;

/* A send arm: send *elem on ch. */
belt_op belt_op_send(belt_chan *ch, const void *elem);

/* A receive arm: receive from ch into out. */
belt_op belt_op_recv(belt_chan *ch, void *out);

/* Waits until exactly one of the n ops completes, performs it, and returns
 * its index; that op's status is BELT_OK, or BELT_CLOSED when it completed
 * because its channel is closed (a closed channel is always ready: a receive
 * gets BELT_CLOSED once it is drained, a send gets BELT_CLOSED at once).
 * No other op has any effect.  When several are ready one is chosen at random,
 * so no arm starves.  A send and a receive on the same rendezvous channel in
 * one select never pair with each other.
 * timeout_ns: 0 means try once, negative means wait forever.
 * Returns the index (>= 0), BELT_TIMEOUT if nothing completed in time, or
 * BELT_EINVAL (ops NULL with n > 0, a bad kind, a NULL elem on a non-NULL
 * channel, or no op with a channel and a negative timeout, which would block
 * forever), BELT_ENOMEM (an unbounded send ran out of memory, or n > 16 and
 * the bookkeeping could not be allocated). */
int belt_select(belt_op *ops, size_t n, int64_t timeout_ns);

#ifdef __cplusplus
}
#endif

#endif /* BELT_CHAN_H */
