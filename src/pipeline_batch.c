/* pipeline_batch.c: batches of items, the edges that carry them, and the
 * output side of a worker (belt__out).
 *
 * Why batches: a channel operation costs a lock round trip and, when the
 * other side sleeps, a futex wake; a plugin stage function costs a few
 * nanoseconds.  Moving items 256 at a time (or 64 KiB of text) makes the
 * channel cost per item negligible, which is what lets three plugin stages
 * pass millions of items a second.  Items inside a batch are stored back
 * to back in one buffer with an array of end offsets, so an item costs a
 * memcpy and no malloc.
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
 */
#include "pipeline_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 4096
#define KEEP_BYTES ((size_t)1 << 20)

/* ---- the pool -------------------------------------------------------------------- */

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

int belt__batch_add(belt__pbatch *b, const char *s, size_t len)
{
    if (len > BELT__MAX_ITEM || b->len + len > UINT32_MAX)
        return BELT_ENOMEM;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return BELT_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->data + b->len, s, len);
    b->len += len;
    b->end[b->n++] = (uint32_t)b->len;
    return BELT_OK;
}

/* ---- edges ------------------------------------------------------------------------ */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

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
        int64_t t0 = mono_ns();
        if (busy != NULL)
            atomic_fetch_sub_explicit(busy, 1, memory_order_relaxed);
        rc = belt_chan_send(e->ch, &b);
        if (busy != NULL)
            atomic_fetch_add_explicit(busy, 1, memory_order_relaxed);
        int64_t dt = mono_ns() - t0;
        atomic_fetch_add_explicit(&e->full_ns, dt, memory_order_relaxed);
        *blocked_ns += dt;
    }
    if (rc != BELT_OK) {
        atomic_fetch_sub_explicit(&e->queued, n, memory_order_relaxed);
        belt__batch_put(&p->pool, b);
    }
    return rc;
}

int belt__edge_recv(belt__edge *e, belt__pbatch **b, bool nonblock)
{
    int rc = nonblock ? belt_chan_try_recv(e->ch, b) : belt_chan_recv(e->ch, b);
    if (rc == BELT_OK)
        atomic_fetch_sub_explicit(&e->queued, (*b)->n, memory_order_relaxed);
    return rc;
}

/* ---- the output side of a worker -------------------------------------------- */

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

int belt__out_emit(void *arg, const char *data, size_t len)
{
    belt__out *o = arg;
    if (o->err != 0)
        return o->err;
    if (o->cur == NULL) {
        if ((o->cur = belt__batch_get(&o->p->pool)) == NULL)
            return o->err = BELT_ENOMEM;
        o->mark_n = 0;
        o->mark_len = 0;
    }
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
    return o->err;
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
    while (o->head != NULL) {
        belt__pbatch *b = o->head;
        o->head = b->next;
        belt__batch_put(&o->p->pool, b);
    }
    o->tail = NULL;
}

/* ---- statistics ------------------------------------------------------------------- */

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
