/* pool/policy/work_stealing.c: "work-stealing": each worker owns a deque; new
 * jobs land round-robin; a worker that runs out of jobs steals the oldest job
 * of a randomly chosen other worker.
 *
 * Source: randomized work stealing, R. D. Blumofe and C. E. Leiserson,
 * "Scheduling Multithreaded Computations by Work Stealing", JACM 46(5), 1999
 * (victims chosen uniformly at random; thieves take the oldest work, from
 * the top of the victim's deque), with the deque of Chase and Lev as made
 * correct for C11 by Lê, Pop, Cohen and Zappa Nardelli (PPoPP 2013), which
 * the live pool uses (src/pool/deque.c).  belt's jobs arrive from outside the
 * workers, so where a new job lands is a choice of ours: round-robin, which
 * spreads arrivals evenly and, unlike random placement, never piles a burst
 * on one worker; stealing then corrects what round-robin cannot see (job
 * lengths).  The owner runs its own jobs oldest first (FIFO, fair to
 * latency) in both the pool and the simulator; see pool/steal.c and experiment/sim.h.
 *
 * victim(): a worker other than the thief, uniformly at random (loads are
 * not read: a steal attempt that finds the victim empty costs a few atomic
 * loads, and the caller tries up to n - 1 victims).  With one worker there
 * is nobody to steal from: it returns view->n.
 *
 * State and threads: `next` (pick's round-robin cursor) is touched only by
 * pick(), which the owner serialises (pool/policy.h).  Each thief has its own
 * xorshift64* generator, seeded from (seed, thief), in its own cache line,
 * touched only by victim(state, thief, ...) calls for that thief: so the
 * live pool calls victim() from each worker thread for itself without any
 * lock, concurrently with pick() and with other thieves (the deviation from
 * "serialised like pick()" that pool/policy.h documents), and a simulator gets
 * the same victim sequence per thief for the same seed, whatever the
 * interleaving of thieves.
 */
#include "pool/policy.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"

typedef struct steal_rng {
    alignas(64) belt__rng rng; /* one thief's; one cache line each */
} steal_rng;

typedef struct steal_state {
    alignas(64) belt__rr place; /* pick(): where new jobs go */
    steal_rng *thief;           /* place.n of them */
} steal_state;

static void steal_free(void *state)
{
    steal_state *s = state;
    if (s != NULL) {
        free(s->thief);
        free(s);
    }
}

static int steal_init(void **state, unsigned nworkers, uint64_t seed,
                      const belt__policy_params *params)
{
    (void)params;
    if (nworkers == 0)
        return BELT_EINVAL;
    steal_state *s = aligned_alloc(alignof(steal_state), sizeof *s);
    if (s == NULL)
        return BELT_ENOMEM;
    memset(s, 0, sizeof *s);
    s->thief = aligned_alloc(alignof(steal_rng), sizeof *s->thief * nworkers);
    if (s->thief == NULL) {
        free(s);
        return BELT_ENOMEM;
    }
    for (unsigned i = 0; i < nworkers; i++)
        belt__rng_seed(&s->thief[i].rng,
                       seed ^ ((uint64_t)(i + 1) * 0xD1B54A32D192ED03ull));
    s->place.n = nworkers;
    s->place.next = 0;
    *state = s;
    return BELT_OK;
}

static unsigned steal_pick(void *state, const belt__load_view *view)
{
    steal_state *s = state;
    (void)view;
    return belt__rr_next(&s->place);
}

static unsigned steal_victim(void *state, unsigned thief,
                             const belt__load_view *view)
{
    steal_state *s = state;
    unsigned n = s->place.n;
    if (n < 2 || thief >= n)
        return view->n;
    unsigned v = belt__rng_below(&s->thief[thief].rng, n - 1);
    return v >= thief ? v + 1 : v;
}

const belt__policy belt__policy_work_stealing = {
    .name = "work-stealing",
    .topology = BELT__TOPO_STEALING,
    .init = steal_init,
    .pick = steal_pick,
    .free = steal_free,
    .victim = steal_victim,
};
