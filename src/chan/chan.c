/* chan/chan.c: creating, sending on, receiving from and closing channels.
 *
 * Design.  One mutex per channel guards a buffer (a ring, a list of blocks,
 * or nothing for rendezvous) and two wait queues of blocked operations,
 * sendq and recvq: the structure of Go's runtime/chan.go.  An operation that
 * finds a counterpart blocked in the opposite queue hands the element over
 * directly, with no trip through the buffer and exactly one wake-up:
 *   send:  a waiting receiver?      copy into its destination, complete it;
 *          else room in the buffer? append;  else block in sendq.
 *   recv:  something buffered?      take the oldest, then move the element
 *                                   of the first blocked sender (if any)
 *                                   into the freed slot and complete it;
 *          a blocked sender (rendezvous)?  copy from it directly;
 *          closed?                  BELT_CLOSED;  else block in recvq.
 * This keeps FIFO order per sender and the invariants in chan/internal.h.
 *
 * Blocked operations are entries on the blocked thread's stack pointing at
 * its waiter (chan/park.h).  A counterpart must *claim* the waiter before it
 * may complete the operation; a claim fails when the owner already completed
 * another arm of a select or gave up on a timeout, and then the entry is
 * dead: it is unlinked and skipped.  This is what makes select and timeouts
 * correct without holding more than one lock at a time.
 *
 * Wake-ups happen after the lock is dropped (as Go's closechan does); the
 * claimed owner cannot return before it is completed, so its entry and
 * buffers stay valid until then.  The element copy into a claimed receiver
 * is also done outside the lock.
 *
 * Why a lock and not a lock-free ring: with select, timeouts, close and
 * rendezvous all in one structure, a short critical section is far easier
 * to get right, and with an adaptive mutex and direct hand-off it is also
 * fast on the small core counts belt runs on (see doc/benchmarks.md).
 */
#include "chan/internal.h"

#include <stdlib.h>

/* ---- wait queues ----------------------------------------------------- */

void belt__queue_push(belt__queue *q, belt__entry *e)
{
    e->next = NULL;
    e->prev = q->tail;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    e->linked = true;
}

void belt__queue_unlink(belt__queue *q, belt__entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    e->prev = e->next = NULL;
    e->linked = false;
}

bool belt__queue_has_live(const belt__queue *q, const belt__waiter *self)
{
    for (belt__entry *e = q->head; e; e = e->next)
        if (e->w != self && belt__waiter_is_waiting(e->w))
            return true;
    return false;
}

/* Unlinks entries from the front of q until one whose waiter it can claim,
 * and returns that one (now unlinked and claimed), or NULL.  Dead entries
 * met on the way are unlinked for good. */
static belt__entry *queue_claim(belt__queue *q)
{
    belt__entry *e;
    while ((e = q->head) != NULL) {
        belt__queue_unlink(q, e);
        if (belt__waiter_claim(e->w))
            return e;
    }
    return NULL;
}

/* ---- creation and lifetime ------------------------------------------- */

static belt_chan *chan_new(int flavor, size_t cap, size_t elem_size)
{
    if (elem_size == 0 || elem_size > BELT_CHAN_MAX_ELEM)
        return NULL;
    if (flavor == BELT__ARRAY && cap > SIZE_MAX / elem_size)
        return NULL;
    belt_chan *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->flavor = flavor;
    ch->cap = cap;
    ch->elem_size = elem_size;
    atomic_init(&ch->refs, 1);
    atomic_init(&ch->count, 0);
    atomic_init(&ch->closed, false);

    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0) {
        free(ch);
        return NULL;
    }
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    /* glibc's adaptive mutex spins briefly before sleeping: channel critical
     * sections are a few dozen instructions long. */
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int rc = pthread_mutex_init(&ch->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        free(ch);
        return NULL;
    }
    if (belt__chbuf_init(ch) != BELT_OK) {
        pthread_mutex_destroy(&ch->lock);
        free(ch);
        return NULL;
    }
    return ch;
}

belt_chan *belt_chan_bounded(size_t capacity, size_t elem_size)
{
    return chan_new(capacity ? BELT__ARRAY : BELT__ZERO, capacity, elem_size);
}

belt_chan *belt_chan_unbounded(size_t elem_size)
{
    return chan_new(BELT__LIST, BELT_CHAN_UNBOUNDED, elem_size);
}

belt_chan *belt_chan_ref(belt_chan *ch)
{
    if (ch)
        atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
    return ch;
}

void belt_chan_free(belt_chan *ch)
{
    if (!ch)
        return;
    /* acq_rel: the last dropper must see every other holder's writes. */
    if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
        return;
    belt__chbuf_destroy(ch);
    pthread_mutex_destroy(&ch->lock);
    free(ch);
}

/* ---- the non-blocking halves ----------------------------------------- */

void belt__handoff_finish(belt_chan *ch, belt__handoff *h)
{
    if (!h->peer)
        return;
    if (h->dst)
        belt__copy(h->dst, h->src, ch->elem_size);
    belt__waiter_complete(h->peer->w, h->peer->index, BELT_OK);
}

int belt__try_send_locked(belt_chan *ch, const void *elem, belt__handoff *h)
{
    h->peer = NULL;
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return BELT_CLOSED;
    belt__entry *r = queue_claim(&ch->recvq);
    if (r) {
        /* Copy into the receiver after the unlock: it is claimed and
         * cannot go away before it is completed. */
        h->peer = r;
        h->dst = r->elem;
        h->src = elem;
        return BELT_OK;
    }
    if (belt__chbuf_full(ch))
        return BELT_FULL;
    return belt__chbuf_push(ch, elem);
}

int belt__try_recv_locked(belt_chan *ch, void *out, belt__handoff *h)
{
    h->peer = NULL;
    if (atomic_load_explicit(&ch->count, memory_order_relaxed) > 0) {
        belt__chbuf_pop(ch, out);
        /* A slot is free: move the first blocked sender's element in. */
        belt__entry *s = queue_claim(&ch->sendq);
        if (s) {
            belt__chbuf_push(ch, s->elem); /* array flavour: cannot fail */
            h->peer = s;
            h->dst = NULL;
        }
        return BELT_OK;
    }
    belt__entry *s = queue_claim(&ch->sendq);
    if (s) {
        h->peer = s;
        h->dst = out;
        h->src = s->elem;
        return BELT_OK;
    }
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return BELT_CLOSED;
    return BELT_EMPTY;
}

/* ---- blocking -------------------------------------------------------- */

/* Waits for the caller's entry e, already linked in q (the caller has
 * released the lock), until it completes or the deadline passes. */
static int wait_entry(belt_chan *ch, belt__queue *q, belt__entry *e,
                      const struct timespec *deadline)
{
    if (!belt__waiter_park(e->w, deadline)) {
        if (belt__waiter_abort(e->w)) {
            belt__lock(ch);
            if (e->linked)
                belt__queue_unlink(q, e);
            belt__unlock(ch);
            return BELT_TIMEOUT;
        }
        /* Claimed just as we gave up: the hand-off is under way. */
        belt__waiter_park(e->w, NULL);
    }
    return e->w->status;
}

/* One operation that may block: kind is BELT_OP_SEND or BELT_OP_RECV.
 * (A crossbeam-style spin-and-retry before linking the entry was tried and
 * measured: with more threads than cores (4+4 on 2) it cost pool
 * throughput up to 2.5x and bought the channel benchmark nothing, so a
 * blocked operation only spins in belt__waiter_park().) */
static int chan_op(belt_chan *ch, int kind, void *elem, int64_t timeout_ns)
{
    if (!ch || !elem)
        return BELT_EINVAL;
    belt__handoff h;
    int not_ready = kind == BELT_OP_SEND ? BELT_FULL : BELT_EMPTY;
    belt__lock(ch);
    int rc = kind == BELT_OP_SEND ? belt__try_send_locked(ch, elem, &h)
                                  : belt__try_recv_locked(ch, elem, &h);
    if (rc != not_ready || timeout_ns == 0) {
        belt__unlock(ch);
        belt__handoff_finish(ch, &h);
        return rc;
    }
    struct timespec ts;
    if (timeout_ns > 0)
        belt__deadline(&ts, timeout_ns);
    belt__waiter w;
    belt__waiter_init(&w);
    belt__entry e = {.w = &w, .elem = elem};
    belt__queue *q = kind == BELT_OP_SEND ? &ch->sendq : &ch->recvq;
    belt__queue_push(q, &e);
    belt__unlock(ch);
    return wait_entry(ch, q, &e, timeout_ns > 0 ? &ts : NULL);
}

int belt_chan_send(belt_chan *ch, const void *elem)
{
    return chan_op(ch, BELT_OP_SEND, (void *)elem, -1);
}

int belt_chan_recv(belt_chan *ch, void *out)
{
    return chan_op(ch, BELT_OP_RECV, out, -1);
}

int belt_chan_try_send(belt_chan *ch, const void *elem)
{
    return chan_op(ch, BELT_OP_SEND, (void *)elem, 0);
}

int belt_chan_try_recv(belt_chan *ch, void *out)
{
    return chan_op(ch, BELT_OP_RECV, out, 0);
}

int belt_chan_send_timeout(belt_chan *ch, const void *elem, int64_t timeout_ns)
{
    return chan_op(ch, BELT_OP_SEND, (void *)elem, timeout_ns);
}

int belt_chan_recv_timeout(belt_chan *ch, void *out, int64_t timeout_ns)
{
    return chan_op(ch, BELT_OP_RECV, out, timeout_ns);
}

/* ---- batches --------------------------------------------------------- */

int belt_chan_recv_many(belt_chan *ch, void *out, size_t max,
                        int64_t timeout_ns)
{
    if (!ch || !out || max == 0)
        return BELT_EINVAL;
    if (max > INT32_MAX)
        max = INT32_MAX;
    unsigned char *dst = out;
    /* The first element, waiting if need be (spin, then park). */
    int rc = chan_op(ch, BELT_OP_RECV, dst, timeout_ns);
    if (rc != BELT_OK)
        return rc;
    size_t n = 1;
    if (max == 1 || atomic_load_explicit(&ch->count, memory_order_relaxed) == 0)
        return 1;
    /* The rest: whatever is buffered, under one lock.  A pop that also
     * refilled from a blocked sender must complete it after the unlock, so
     * the batch ends there. */
    belt__handoff h = {0};
    belt__lock(ch);
    while (n < max &&
           atomic_load_explicit(&ch->count, memory_order_relaxed) > 0) {
        belt__try_recv_locked(ch, dst + n * ch->elem_size, &h);
        n++;
        if (h.peer)
            break;
    }
    belt__unlock(ch);
    belt__handoff_finish(ch, &h);
    return (int)n;
}

int belt_chan_send_many(belt_chan *ch, const void *elems, size_t n,
                        size_t *sent)
{
    size_t done = 0;
    int rc = BELT_OK;
    if (!ch || (!elems && n > 0)) {
        rc = BELT_EINVAL;
        goto out;
    }
    const unsigned char *src = elems;
    while (done < n) {
        belt__handoff h;
        belt__lock(ch);
        /* Fill the buffer (or hand to waiting receivers: one hand-off per
         * lock round trip, since it must be finished after the unlock). */
        while (done < n) {
            rc = belt__try_send_locked(ch, src + done * ch->elem_size, &h);
            if (rc != BELT_OK)
                break;
            done++;
            if (h.peer)
                break;
        }
        belt__unlock(ch);
        if (rc == BELT_OK) {
            belt__handoff_finish(ch, &h);
            continue;
        }
        if (rc != BELT_FULL)
            break;
        /* Full: wait for room for the next one. */
        rc = chan_op(ch, BELT_OP_SEND, (void *)(src + done * ch->elem_size), -1);
        if (rc != BELT_OK)
            break;
        done++;
    }
out:
    if (sent)
        *sent = done;
    return rc;
}

/* ---- close and disconnection ----------------------------------------- */

/* Closes under the lock and returns the claimed entries, chained through
 * their next pointers, for the caller to complete after unlocking. */
static belt__entry *close_locked(belt_chan *ch)
{
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return NULL;
    atomic_store_explicit(&ch->closed, true, memory_order_release);
    belt__entry *woken = NULL;
    belt__queue *qs[2] = {&ch->recvq, &ch->sendq};
    for (int i = 0; i < 2; i++) {
        belt__entry *e;
        while ((e = qs[i]->head) != NULL) {
            belt__queue_unlink(qs[i], e);
            if (belt__waiter_claim(e->w)) {
                e->next = woken;
                woken = e;
            }
        }
    }
    return woken;
}

static void wake_closed(belt__entry *woken)
{
    while (woken) {
        belt__entry *next = woken->next; /* read before the owner may go */
        belt__waiter_complete(woken->w, woken->index, BELT_CLOSED);
        woken = next;
    }
}

void belt_chan_close(belt_chan *ch)
{
    if (!ch)
        return;
    belt__lock(ch);
    belt__entry *woken = close_locked(ch);
    belt__unlock(ch);
    wake_closed(woken);
}

/* Adds n to *count (senders or receivers) unless the channel is closed. */
static int add_parties(belt_chan *ch, size_t *count, size_t n)
{
    if (!ch)
        return BELT_EINVAL;
    belt__lock(ch);
    int rc = BELT_OK;
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        rc = BELT_CLOSED;
    else
        *count += n;
    belt__unlock(ch);
    return rc;
}

/* One party done; the last one closes the channel. */
static int party_done(belt_chan *ch, size_t *count)
{
    belt__entry *woken = NULL;
    belt__lock(ch);
    if (*count == 0) {
        belt__unlock(ch);
        return BELT_EINVAL;
    }
    if (--*count == 0)
        woken = close_locked(ch);
    belt__unlock(ch);
    wake_closed(woken);
    return BELT_OK;
}

int belt_chan_add_senders(belt_chan *ch, size_t n)
{
    return ch ? add_parties(ch, &ch->senders, n) : BELT_EINVAL;
}

int belt_chan_sender_done(belt_chan *ch)
{
    return ch ? party_done(ch, &ch->senders) : BELT_EINVAL;
}

int belt_chan_add_receivers(belt_chan *ch, size_t n)
{
    return ch ? add_parties(ch, &ch->receivers, n) : BELT_EINVAL;
}

int belt_chan_receiver_done(belt_chan *ch)
{
    return ch ? party_done(ch, &ch->receivers) : BELT_EINVAL;
}

/* ---- inspection ------------------------------------------------------ */

size_t belt_chan_len(const belt_chan *ch)
{
    return ch ? atomic_load_explicit(&ch->count, memory_order_relaxed) : 0;
}

size_t belt_chan_capacity(const belt_chan *ch)
{
    return ch ? ch->cap : 0;
}

size_t belt_chan_elem_size(const belt_chan *ch)
{
    return ch ? ch->elem_size : 0;
}

bool belt_chan_is_closed(const belt_chan *ch)
{
    return ch && atomic_load_explicit(&ch->closed, memory_order_acquire);
}
