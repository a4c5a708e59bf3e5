/* pipeline/batch.c: batches of items, the edges that carry them, and the
 * output side of a worker (belt__out).
 *
 * Why batches: a channel operation costs a lock round trip and, when the
 * other side sleeps, a futex wake; a plugin stage function costs a few
 * nanoseconds.  Moving items 256 at a time (or 64 KiB of text) makes the
 * channel cost per item negligible, which is what lets three plugin stages
 * pass millions of items a second.  Items inside a batch are stored back
 * to back in one buffer, each followed by a '\n', with an array of end
 * offsets, so an item costs a memcpy and no malloc, and a batch is already
 * the text a stream stage's program or the sink file must get: it is
 * written as it is (writev), never copied item by item.  Lines read from a
 * pipe or a file go in the same way, a run of lines with one memcpy
 * (belt__batch_add_lines): the only per-line work is finding its '\n' (a
 * word at a time) and storing its end offset.
 *
 * Spare batches go back to a per-pipeline pool (a mutex-guarded stack of
 * at most POOL_MAX batches; one lock per batch, not per item) so that the
 * steady state allocates nothing.  A batch whose buffer grew beyond
 * KEEP_BYTES (a very long line) gives that buffer back to malloc.
 *
 * belt__out: a worker appends outputs to its current batch with
 * belt__out_emit (the plugin ABI's emit).  The batch is never sent in the
 * middle of an input item, so the outputs of a failed item can be taken
 * back (belt__out_discard); between items a full batch is sent (unordered)
 * or chained (ordered: the chain goes to the stage's reorder buffer).  The
 * worker flushes a partial batch when it would otherwise wait for input.
 * In burst mode (see pipeline/internal.h) full batches are held, at most
 * BELT__BURST of them, and sent together: a read() of a few hundred KiB
 * makes dozens of batches, and sending them one by one to a parked
 * receiver costs a futex wake-up each, and a small write to the next
 * program each, which is most of what a stream pipeline costs.  For the
 * same reason a burst sender that finds the channel full waits for it to
 * drain to half (belt__edge_send_many, the room protocol described at
 * belt__edge) instead of being woken for every batch a slow receiver
 * takes.
 */
#include "pipeline/internal.h"
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 4096
#define KEEP_BYTES ((size_t)1 << 20)

/* ---- the pool ----------------------------------------------------------- */

int belt__bpool_init(belt__bpool *bp, uint32_t items)
{
    bp->free = NULL;
    bp->nfree = 0;
    bp->items = items;
    return pthread_mutex_init(&bp->mu, NULL) == 0 ? BELT_OK : BELT_ESYS;
}

static void batch_destroy(belt__pbatch *b)
{
    if (b != NULL) {
        free(b->data);
        free(b);
    }
}

void belt__bpool_destroy(belt__bpool *bp)
{
    while (bp->free != NULL) {
        belt__pbatch *b = bp->free;
        bp->free = b->next;
        batch_destroy(b);
    }
    bp->nfree = 0;
    pthread_mutex_destroy(&bp->mu);
}

belt__pbatch *belt__batch_get(belt__bpool *bp)
{
    pthread_mutex_lock(&bp->mu);
    belt__pbatch *b = bp->free;
    if (b != NULL) {
        bp->free = b->next;
        bp->nfree--;
    }
    pthread_mutex_unlock(&bp->mu);
    if (b == NULL) {
        /* The header and the offsets in one block. */
        b = malloc(sizeof *b + (size_t)bp->items * sizeof(uint32_t));
        if (b == NULL)
            return NULL;
        b->cap_items = bp->items;
        b->end = (uint32_t *)(b + 1);
        b->data = NULL;
        b->cap = 0;
    }
    b->next = NULL;
    b->seq = 0;
    b->n = 0;
    b->len = 0;
    return b;
}

void belt__batch_put(belt__bpool *bp, belt__pbatch *b)
{
    if (b == NULL)
        return;
    if (b->cap > KEEP_BYTES) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    pthread_mutex_lock(&bp->mu);
    if (bp->nfree < POOL_MAX) {
        b->next = bp->free;
        bp->free = b;
        bp->nfree++;
        b = NULL;
    }
    pthread_mutex_unlock(&bp->mu);
    batch_destroy(b);
}

/* Grows b's buffer for `more` bytes after b->len: BELT_OK or BELT_ENOMEM
 * (offsets are 32 bits: a batch stays below 4 GiB). */
static int grow(belt__pbatch *b, size_t more)
{
    if (more > UINT32_MAX || b->len + more > UINT32_MAX)
        return BELT_ENOMEM;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
        return BELT_ENOMEM;
    b->data = d;
    b->cap = cap;
    return BELT_OK;
}

/* Makes room for `more` bytes after b->len: BELT_OK or BELT_ENOMEM. */
static inline int reserve(belt__pbatch *b, size_t more)
{
    return more <= b->cap - b->len ? BELT_OK : grow(b, more);
}

int belt__batch_add(belt__pbatch *b, const char *s, size_t len)
{
    if (len > BELT__MAX_ITEM || reserve(b, len + 1) != BELT_OK)
        return BELT_ENOMEM;
    if (len > 0)
        memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len++] = '\n';
    b->end[b->n++] = (uint32_t)b->len;
    return BELT_OK;
}

/* Word-at-a-time newline search (the classic "has zero byte" trick, in
 * its exact form: no carry crosses a byte): the top bit of each byte of w
 * that is '\n'.  Lines are often a few bytes long, and one memchr call
 * per line cost more than the search itself. */
static inline uint64_t nl_mask(uint64_t w)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
    uint64_t t = w ^ 0x0a0a0a0a0a0a0a0aULL; /* 0 where '\n' */
    return ~(((t & low7) + low7) | t | low7);
}

int belt__batch_add_lines(belt__pbatch *b, const char *s, size_t n,
                          uint32_t max_items, size_t *used, uint32_t *lines)
{
    /* First the offsets (into end[], past b->n: not yet items), then one
     * copy of the whole run. */
    size_t pos = 0, i = 0, base = b->len;
    uint32_t k = 0;
    *used = 0;
    *lines = 0;
    if (max_items > b->cap_items)
        max_items = b->cap_items;
    if (b->n >= max_items || base >= BELT__BATCH_BYTES)
        return BELT_OK;
    uint32_t room = max_items - b->n;
    /* Lines this long are no items for this path (belt__batch_add says
     * why); any complete line within n is short enough. */
    if (n > BELT__MAX_ITEM)
        n = BELT__MAX_ITEM;
    bool stop = false;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 8 <= n && !stop; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        for (uint64_t m = nl_mask(w); m != 0 && !stop; m &= m - 1) {
            pos = i + (size_t)(__builtin_ctzll(m) >> 3) + 1;
            b->end[b->n + k++] = (uint32_t)(base + pos);
            stop = k == room || base + pos >= BELT__BATCH_BYTES;
        }
    }
#endif
    while (i < n && !stop) {
        const char *nl = memchr(s + i, '\n', n - i);
        if (nl == NULL)
            break;
        pos = i = (size_t)(nl - s) + 1;
        b->end[b->n + k++] = (uint32_t)(base + pos);
        stop = k == room || base + pos >= BELT__BATCH_BYTES;
    }
    if (k == 0)
        return BELT_OK;
    if (reserve(b, pos) != BELT_OK)
        return BELT_ENOMEM;
    memcpy(b->data + base, s, pos);
    b->len += pos;
    b->n += k;
    *used = pos;
    *lines = k;
    return BELT_OK;
}

/* ---- edges -------------------------------------------------------------- */

int belt__edge_send(belt__pipeline *p, belt__edge *e, belt__pbatch *b)
{
    int64_t ignored = 0;
    return belt__edge_send_t(p, e, b, &ignored, NULL);
}

int belt__edge_send_t(belt__pipeline *p, belt__edge *e, belt__pbatch *b,
                      int64_t *blocked_ns, _Atomic int *busy)
{
    uint32_t n = b->n;
    atomic_fetch_add_explicit(&e->queued, n, memory_order_relaxed);
    int rc = belt_chan_try_send(e->ch, &b);
    if (rc == BELT_FULL) {
        /* Blocked by a full channel: the consumer is the slow one. */
        int64_t t0 = belt__now_mono();
        if (busy != NULL)
            atomic_fetch_sub_explicit(busy, 1, memory_order_relaxed);
        rc = belt_chan_send(e->ch, &b);
        if (busy != NULL)
            atomic_fetch_add_explicit(busy, 1, memory_order_relaxed);
        int64_t dt = belt__now_mono() - t0;
        atomic_fetch_add_explicit(&e->full_ns, dt, memory_order_relaxed);
        *blocked_ns += dt;
    }
    if (rc != BELT_OK) {
        atomic_fetch_sub_explicit(&e->queued, n, memory_order_relaxed);
        belt__batch_put(&p->pool, b);
    }
    return rc;
}

int belt__edge_init_room(belt__edge *e)
{
    atomic_init(&e->room_waiting, 0);
    if (pthread_mutex_init(&e->room_mu, NULL) != 0)
        return BELT_ESYS;
    if (pthread_cond_init(&e->room_cv, NULL) != 0) {
        pthread_mutex_destroy(&e->room_mu);
        return BELT_ESYS;
    }
    e->room_init = true;
    return BELT_OK;
}

void belt__edge_destroy_room(belt__edge *e)
{
    if (e->room_init) {
        pthread_cond_destroy(&e->room_cv);
        pthread_mutex_destroy(&e->room_mu);
        e->room_init = false;
    }
}

/* Wakes e's waiting senders.  Taking room_mu orders this after a sender's
 * check of the predicate (it is waiting, or will see the new state); the
 * broadcast comes after the unlock, so that a woken sender does not block
 * at once on the mutex we still hold. */
static void room_wake(belt__edge *e)
{
    pthread_mutex_lock(&e->room_mu);
    pthread_mutex_unlock(&e->room_mu);
    pthread_cond_broadcast(&e->room_cv);
}

void belt__edge_close(belt__edge *e)
{
    belt_chan_close(e->ch);
    room_wake(e);
}

void belt__edge_receiver_done(belt__edge *e)
{
    belt_chan_receiver_done(e->ch);
    if (belt_chan_is_closed(e->ch))
        room_wake(e);
}

/* After a receive: wakes the senders waiting for room, if there is. */
static void room_after_recv(belt__edge *e)
{
    /* A read-modify-write, not a load (and no fence, which TSan cannot
     * follow): RMWs of room_waiting are totally ordered.  Either this one
     * comes after a sender's increment in room_wait and sees it waiting,
     * or the sender's increment reads from it (acq_rel: a release
     * sequence) and then sees the length this receive left. */
    if (atomic_fetch_add_explicit(&e->room_waiting, 0,
                                  memory_order_acq_rel) > 0 &&
        belt_chan_len(e->ch) <= belt_chan_capacity(e->ch) / 2)
        room_wake(e);
}

/* Waits until e's channel is at most half full: BELT_OK, or BELT_CLOSED. */
static int room_wait(belt__edge *e)
{
    size_t half = belt_chan_capacity(e->ch) / 2;
    pthread_mutex_lock(&e->room_mu);
    /* Pairs with the RMW in room_after_recv. */
    atomic_fetch_add_explicit(&e->room_waiting, 1, memory_order_acq_rel);
    while (belt_chan_len(e->ch) > half && !belt_chan_is_closed(e->ch))
        pthread_cond_wait(&e->room_cv, &e->room_mu);
    atomic_fetch_sub_explicit(&e->room_waiting, 1, memory_order_relaxed);
    bool closed = belt_chan_is_closed(e->ch);
    pthread_mutex_unlock(&e->room_mu);
    return closed ? BELT_CLOSED : BELT_OK;
}

/* Channels this small (or a rendezvous) block in the channel instead. */
#define ROOM_MIN_CAP 4

int belt__edge_send_many(belt__pipeline *p, belt__edge *e, belt__pbatch **b,
                         size_t n, int64_t *blocked_ns)
{
    uint64_t items = 0;
    for (size_t i = 0; i < n; i++)
        items += b[i]->n;
    atomic_fetch_add_explicit(&e->queued, items, memory_order_relaxed);
    /* What fits now goes under as few locks as possible; the time spent
     * waiting for room is time blocked by a full channel. */
    size_t cap = belt_chan_capacity(e->ch), sent = 0;
    int rc = BELT_OK;
    while (rc == BELT_OK && sent < n) {
        size_t len = belt_chan_len(e->ch), room = cap > len ? cap - len : 0;
        if (room > 0) {
            size_t k = 0;
            rc = belt_chan_send_many(e->ch, b + sent, room < n - sent ? room : n - sent, &k);
            sent += k;
            continue;
        }
        int64_t t0 = belt__now_mono();
        if (cap >= ROOM_MIN_CAP && e->room_init) {
            rc = room_wait(e);
        } else {
            size_t k = 0;
            rc = belt_chan_send_many(e->ch, b + sent, n - sent, &k);
            sent += k;
        }
        int64_t dt = belt__now_mono() - t0;
        atomic_fetch_add_explicit(&e->full_ns, dt, memory_order_relaxed);
        *blocked_ns += dt;
    }
    if (rc != BELT_OK) {
        for (size_t i = sent; i < n; i++) {
            atomic_fetch_sub_explicit(&e->queued, b[i]->n, memory_order_relaxed);
            belt__batch_put(&p->pool, b[i]);
        }
    }
    return rc;
}

int belt__edge_recv(belt__edge *e, belt__pbatch **b, bool nonblock)
{
    int rc = nonblock ? belt_chan_try_recv(e->ch, b) : belt_chan_recv(e->ch, b);
    if (rc == BELT_OK) {
        atomic_fetch_sub_explicit(&e->queued, (*b)->n, memory_order_relaxed);
        room_after_recv(e);
    }
    return rc;
}

int belt__edge_recv_many(belt__edge *e, belt__pbatch **b, size_t max,
                         bool nonblock)
{
    int k = belt_chan_recv_many(e->ch, b, max, nonblock ? 0 : -1);
    if (k <= 0)
        return k == 0 ? BELT_CLOSED : k;
    uint64_t items = 0;
    for (int i = 0; i < k; i++)
        items += b[i]->n;
    atomic_fetch_sub_explicit(&e->queued, items, memory_order_relaxed);
    room_after_recv(e);
    return k;
}

/* ---- the output side of a worker ---------------------------------------- */

void belt__out_init(belt__out *o, belt__pipeline *p, belt__stage *st,
                    belt__edge *e, bool chain_mode)
{
    memset(o, 0, sizeof *o);
    o->p = p;
    o->st = st;
    o->edge = e;
    o->chain_mode = chain_mode;
}

static int out_push(belt__out *o);

static bool full(const belt__out *o)
{
    return o->cur != NULL &&
           (o->cur->n >= o->edge->batch_items || o->cur->len >= BELT__BATCH_BYTES);
}

/* Makes sure o has a current batch: 0 or o->err. */
static int out_cur(belt__out *o)
{
    if (o->cur == NULL) {
        if ((o->cur = belt__batch_get(&o->p->pool)) == NULL)
            return o->err = BELT_ENOMEM;
        o->mark_n = 0;
        o->mark_len = 0;
    }
    return 0;
}

int belt__out_emit(void *arg, const char *data, size_t len)
{
    belt__out *o = arg;
    if (o->err != 0)
        return o->err;
    if (out_cur(o) != 0)
        return o->err;
    if (o->cur->n == o->cur->cap_items) {
        /* One input fanned out past a batch: close this one mid-item (its
         * outputs can no longer all be taken back; see belt__out_discard). */
        if (out_push(o) != BELT_OK)
            return o->err;
        return belt__out_emit(arg, data, len);
    }
    if (o->cut_nl) {
        const char *nl = memchr(data, '\n', len);
        if (nl != NULL)
            len = (size_t)(nl - data);
    }
    if (belt__batch_add(o->cur, data, len) != BELT_OK)
        return o->err = BELT_ENOMEM;
    o->emitted++;
    return 0;
}

int belt__out_lines(belt__out *o, const char *s, size_t n, size_t *used,
                    uint32_t *lines)
{
    *used = 0;
    *lines = 0;
    /* A full cur (left so by belt__out_emit) goes first. */
    if (belt__out_between(o) != 0 || out_cur(o) != 0)
        return o->err;
    if (belt__batch_add_lines(o->cur, s, n, o->edge->batch_items, used, lines) != BELT_OK)
        return o->err = BELT_ENOMEM;
    o->emitted += *lines;
    const char *nl;
    if (*used == 0 && (nl = memchr(s, '\n', n)) != NULL) {
        /* A line that cannot be an item where cur stands (too long):
         * belt__out_emit's belt__batch_add fails it (BELT_ENOMEM). */
        if (belt__out_emit(o, s, (size_t)(nl - s)) != 0)
            return o->err;
        *used = (size_t)(nl - s) + 1;
        *lines = 1;
    }
    return belt__out_between(o);
}

void belt__out_begin(belt__out *o)
{
    if (o->cur != NULL) {
        o->mark_n = o->cur->n;
        o->mark_len = o->cur->len;
    } else {
        o->mark_n = 0;
        o->mark_len = 0;
    }
}

void belt__out_discard(belt__out *o)
{
    if (o->cur == NULL)
        return;
    o->emitted -= o->cur->n - o->mark_n;
    o->cur->n = o->mark_n;
    o->cur->len = o->mark_len;
}

/* Sends what waits in o's burst. */
static int burst_send(belt__out *o)
{
    uint32_t n = o->nburst;
    o->nburst = 0;
    if (n > 0 &&
        belt__edge_send_many(o->p, o->edge, o->burst, n, &o->blocked_ns) != BELT_OK)
        o->err = BELT_CLOSED;
    return o->err;
}

/* Sends or chains cur. */
static int out_push(belt__out *o)
{
    belt__pbatch *b = o->cur;
    o->cur = NULL;
    /* Counted once per batch: one atomic add, not one per item. */
    if (o->st != NULL)
        atomic_fetch_add_explicit(&o->st->c.out, b->n, memory_order_relaxed);
    if (o->chain_mode) {
        if (o->tail != NULL)
            o->tail->next = b;
        else
            o->head = b;
        o->tail = b;
        return BELT_OK;
    }
    if (o->number)
        b->seq = o->edge->next_seq++;
    if (o->burst_mode) {
        o->burst[o->nburst++] = b;
        return o->nburst == BELT__BURST ? burst_send(o) : o->err;
    }
    if (belt__edge_send_t(o->p, o->edge, b, &o->blocked_ns, o->busy) != BELT_OK)
        o->err = BELT_CLOSED;
    return o->err;
}

int belt__out_between(belt__out *o)
{
    if (o->err == 0 && full(o))
        out_push(o);
    return o->err;
}

int belt__out_flush(belt__out *o)
{
    if (o->err == 0 && o->cur != NULL && o->cur->n > 0)
        out_push(o);
    if (o->err == 0)
        burst_send(o);
    return o->err;
}

int belt__out_recv(belt__out *o, belt__edge *in, bool flush_first,
                   belt__pbatch **b)
{
    int r = belt__edge_recv(in, b, true);
    if (r != BELT_EMPTY)
        return r;
    if (flush_first && belt__out_flush(o) != 0)
        return o->err;
    return belt__edge_recv(in, b, false);
}

belt__pbatch *belt__out_take_chain(belt__out *o)
{
    belt__out_flush(o);
    belt__pbatch *h = o->head;
    o->head = o->tail = NULL;
    return h;
}

void belt__out_release(belt__out *o)
{
    belt__batch_put(&o->p->pool, o->cur);
    o->cur = NULL;
    for (uint32_t i = 0; i < o->nburst; i++)
        belt__batch_put(&o->p->pool, o->burst[i]);
    o->nburst = 0;
    while (o->head != NULL) {
        belt__pbatch *b = o->head;
        o->head = b->next;
        belt__batch_put(&o->p->pool, b);
    }
    o->tail = NULL;
}

/* ---- statistics --------------------------------------------------------- */

static int bucket_of(int64_t t)
{
    if (t <= 1)
        return 0;
    int b = 63 - __builtin_clzll((unsigned long long)t);
    return b < BELT__HIST_BUCKETS ? b : BELT__HIST_BUCKETS - 1;
}

void belt__scount_time(belt__scount *c, int64_t t, uint64_t n)
{
    if (n == 0)
        return;
    if (t < 0)
        t = 0;
    atomic_fetch_add_explicit(&c->hist[bucket_of(t)], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->timed, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->time_sum, t * (int64_t)n, memory_order_relaxed);
}

int64_t belt__hist_quantile(const uint64_t *hist, double q)
{
    uint64_t total = 0;
    for (int i = 0; i < BELT__HIST_BUCKETS; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    if (q <= 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)((double)total * q);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < BELT__HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank)
            return (int64_t)1 << (i + 1);
    }
    return (int64_t)1 << BELT__HIST_BUCKETS;
}
