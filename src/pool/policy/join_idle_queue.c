/* pool/policy/join_idle_queue.c: "join-idle-queue": a job goes to a worker
 * that has reported itself idle, if there is one; else to a random worker.
 *
 * Source: Y. Lu, Q. Xie, G. Kliot, A. Geller, J. R. Larus and A. Greenberg,
 * "Join-Idle-Queue: A Novel Load Balancing Algorithm for Dynamically
 * Scalable Web Services", Performance 2011.  There, many dispatchers each
 * keep an "I-queue" of idle servers; a server that becomes idle joins one
 * I-queue; a dispatcher sends a job to the head of its I-queue (removing
 * it), or to a random server when its I-queue is empty.  belt has one
 * dispatcher per pool (the pool's pick lock serialises submitters), so this
 * is the paper's JIQ with a single I-queue: no load is read on the dispatch
 * path (the point of JIQ: idleness is reported by the servers, off the
 * critical path), only the idle() reports.
 *
 * State: the idle queue, a FIFO ring of n worker ids, and in_queue[w]
 * saying whether w is in it, so each worker is queued at most once (an
 * idle() for a worker already queued is a no-op) and the ring never holds
 * more than n ids.  At init every worker is idle and queued in order
 * 0..n-1.  The rng serves the random fallback.  Only the owner touches the
 * state (pool/policy.h: pick() and idle() are serialised by the pool's pick
 * lock, or run in the simulator's one thread): no lock, no atomic.
 *
 * Invariants: count <= n; the ring's ids are distinct; in_queue[w] is 1
 * exactly for the ids in the ring.
 */
#include "pool/policy.h"

#include <stdlib.h>

#include "belt/error.h"

typedef struct jiq_state {
    belt__rng rng;
    unsigned n;
    unsigned head, count;    /* ring: ids at ring[(head + k) % n], k < count */
    unsigned *ring;          /* n slots */
    unsigned char *in_queue; /* n flags */
} jiq_state;

static void jiq_free(void *state)
{
    jiq_state *s = state;
    if (s != NULL) {
        free(s->ring);
        free(s->in_queue);
        free(s);
    }
}

static int jiq_init(void **state, unsigned nworkers, uint64_t seed,
                    const belt__policy_params *params)
{
    (void)params;
    if (nworkers == 0)
        return BELT_EINVAL;
    jiq_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return BELT_ENOMEM;
    s->ring = malloc(sizeof *s->ring * nworkers);
    s->in_queue = malloc(nworkers);
    if (s->ring == NULL || s->in_queue == NULL) {
        jiq_free(s);
        return BELT_ENOMEM;
    }
    for (unsigned i = 0; i < nworkers; i++) {
        s->ring[i] = i;
        s->in_queue[i] = 1;
    }
    s->n = nworkers;
    s->head = 0;
    s->count = nworkers;
    belt__rng_seed(&s->rng, seed);
    *state = s;
    return BELT_OK;
}

static unsigned jiq_pick(void *state, const belt__load_view *view)
{
    jiq_state *s = state;
    (void)view;
    if (s->count == 0)
        return belt__rng_below(&s->rng, s->n);
    unsigned w = s->ring[s->head];
    s->head = s->head + 1 == s->n ? 0 : s->head + 1;
    s->count--;
    s->in_queue[w] = 0;
    return w;
}

static void jiq_idle(void *state, unsigned w)
{
    jiq_state *s = state;
    if (w >= s->n || s->in_queue[w])
        return;
    unsigned tail = s->head + s->count;
    if (tail >= s->n)
        tail -= s->n;
    s->ring[tail] = w;
    s->count++;
    s->in_queue[w] = 1;
}

const belt__policy belt__policy_jiq = {
    .name = "join-idle-queue",
    .topology = BELT__TOPO_PER_WORKER,
    .init = jiq_init,
    .pick = jiq_pick,
    .free = jiq_free,
    .idle = jiq_idle,
};
