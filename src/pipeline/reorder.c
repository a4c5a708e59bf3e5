/* pipeline/reorder.c: ordered mode: a stage's reorder buffer.
 *
 * Every batch on an edge of an ordered pipeline has a sequence number
 * (0, 1, 2, ...) given by the edge's single sender.  A stage's workers take
 * batches in any order and finish them in any order; each hands the chain
 * of outputs of input batch s (possibly empty: everything filtered or
 * failed) to belt__reorder_put(s).  The buffer releases chains strictly in
 * the order of s and sends their items on, re-batched, with fresh sequence
 * numbers of the outgoing edge.  This is the classic reorder buffer of a
 * pipelined processor, one per stage, so sequence numbers never need
 * sub-indices for fan-out: a fan-out only makes a chain longer.
 *
 * Window: slot s % window holds the chain of s.  A put for s >= next +
 * window (next: the oldest unreleased sequence) waits until next has moved
 * on; its worker takes no more input meanwhile, so the stage's inbound
 * channel fills and upstream blocks: backpressure, memory bounded by
 * window chains.  The worker holding `next` never waits (window >= 1), so
 * this cannot deadlock.
 *
 * Releasing: one thread at a time (the `releasing` flag) sends, so the
 * outgoing edge has a single sender and its sequence numbers stay in
 * order.  The thread whose put made `next` ready becomes the releaser: it
 * takes every ready chain under the lock, sends them without the lock
 * (sending may block on a full channel), and loops until nothing is ready;
 * puts that arrive meanwhile just fill their slots.  Small chains (a
 * filter) are merged into a pending batch that is sent when full or when
 * nothing more is ready.
 *
 * Lock: mu guards next, slot[], ready[], releasing, stopped; `pending` and
 * the edge's next_seq belong to the releaser (releasing == true).
 */
#include "pipeline/internal.h"

#include <stdlib.h>

struct belt__reorder {
    belt__pipeline *p;
    belt__edge *out;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* next advanced, or stopped */
    size_t window;
    uint64_t next;          /* mu */
    belt__pbatch **slot;    /* mu */
    bool *ready;            /* mu */
    bool releasing;         /* mu */
    bool stopped;           /* mu */
    belt__pbatch *pending;  /* the releaser's */
};

belt__reorder *belt__reorder_new(belt__pipeline *p, belt__stage *st,
                                 size_t window)
{
    belt__reorder *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->p = p;
    r->out = st->out;
    r->window = window;
    r->slot = calloc(window, sizeof *r->slot);
    r->ready = calloc(window, sizeof *r->ready);
    if (r->slot == NULL || r->ready == NULL) {
        free(r->slot);
        free(r->ready);
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    return r;
}

static void free_chain(belt__pipeline *p, belt__pbatch *b)
{
    while (b != NULL) {
        belt__pbatch *next = b->next;
        belt__batch_put(&p->pool, b);
        b = next;
    }
}

void belt__reorder_free(belt__reorder *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->window; i++)
        free_chain(r->p, r->slot[i]);
    belt__batch_put(&r->p->pool, r->pending);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->slot);
    free(r->ready);
    free(r);
}

void belt__reorder_stop(belt__reorder *r)
{
    pthread_mutex_lock(&r->mu);
    r->stopped = true;
    pthread_mutex_unlock(&r->mu);
    pthread_cond_broadcast(&r->cv);
}

/* Releaser only: sends b with the next sequence number of the edge. */
static int send_seq(belt__reorder *r, belt__pbatch *b)
{
    b->next = NULL;
    b->seq = r->out->next_seq++;
    return belt__edge_send(r->p, r->out, b);
}

static int flush_pending(belt__reorder *r)
{
    belt__pbatch *b = r->pending;
    r->pending = NULL;
    if (b == NULL || b->n == 0) {
        belt__batch_put(&r->p->pool, b);
        return BELT_OK;
    }
    return send_seq(r, b);
}

/* Releaser only: sends the items of chain in order.  On an error the rest
 * of the chain is given back. */
static int release_chain(belt__reorder *r, belt__pbatch *chain)
{
    const uint32_t limit = r->out->batch_items;
    int rc = BELT_OK;
    while (chain != NULL && rc == BELT_OK) {
        belt__pbatch *b = chain;
        chain = b->next;
        b->next = NULL;
        if (b->n == 0) {
            belt__batch_put(&r->p->pool, b);
            continue;
        }
        if (2 * b->n >= limit || 2 * b->len >= BELT__BATCH_BYTES) {
            if ((rc = flush_pending(r)) == BELT_OK)
                rc = send_seq(r, b);
            else
                belt__batch_put(&r->p->pool, b);
            continue;
        }
        for (uint32_t i = 0; i < b->n && rc == BELT_OK; i++) {
            if (r->pending != NULL &&
                (r->pending->n >= limit || r->pending->len >= BELT__BATCH_BYTES))
                rc = flush_pending(r);
            if (rc == BELT_OK && r->pending == NULL &&
                (r->pending = belt__batch_get(&r->p->pool)) == NULL)
                rc = BELT_ENOMEM;
            if (rc == BELT_OK) {
                size_t len;
                const char *s = belt__batch_item(b, i, &len);
                rc = belt__batch_add(r->pending, s, len);
            }
        }
        belt__batch_put(&r->p->pool, b);
    }
    free_chain(r->p, chain);
    return rc;
}

int belt__reorder_put(belt__reorder *r, uint64_t seq, belt__pbatch *chain)
{
    pthread_mutex_lock(&r->mu);
    while (!r->stopped && seq >= r->next + r->window)
        pthread_cond_wait(&r->cv, &r->mu);
    if (r->stopped) {
        pthread_mutex_unlock(&r->mu);
        free_chain(r->p, chain);
        return BELT_CLOSED;
    }
    size_t i = (size_t)(seq % r->window);
    r->slot[i] = chain;
    r->ready[i] = true;
    if (r->releasing || seq != r->next) {
        pthread_mutex_unlock(&r->mu);
        return BELT_OK;
    }
    r->releasing = true;
    int rc = BELT_OK;
    for (;;) {
        belt__pbatch *head = NULL, *tail = NULL;
        bool advanced = false;
        while (r->ready[r->next % r->window]) {
            size_t k = (size_t)(r->next % r->window);
            belt__pbatch *c = r->slot[k];
            r->slot[k] = NULL;
            r->ready[k] = false;
            r->next++;
            advanced = true;
            if (c == NULL)
                continue;
            if (tail != NULL)
                tail->next = c;
            else
                head = c;
            tail = c;
            while (tail->next != NULL)
                tail = tail->next;
        }
        if (advanced)
            pthread_cond_broadcast(&r->cv);
        bool stopped = r->stopped;
        if (head == NULL && (r->pending == NULL || rc != BELT_OK || stopped))
            break;
        pthread_mutex_unlock(&r->mu);
        if (rc == BELT_OK && !stopped)
            rc = head != NULL ? release_chain(r, head) : flush_pending(r);
        else
            free_chain(r->p, head);
        pthread_mutex_lock(&r->mu);
    }
    r->releasing = false;
    pthread_mutex_unlock(&r->mu);
    return rc == BELT_OK ? BELT_OK : BELT_CLOSED;
}
