/* pool/policy/least_loaded.c: "least-loaded", join the shortest queue (JSQ).
 *
 * Source: join-the-shortest-queue (Winston, "Optimality of the shortest line
 * discipline", J. Appl. Prob. 14, 1977: optimal for identical exponential
 * servers).  Each job goes to a worker whose load (queued + running) is the
 * smallest of all n, read from the view once per worker: O(n) per job.
 *
 * Ties: the scan starts one past where the previous pick started, so among
 * equally loaded workers the choice rotates (an idle pool is used round-robin
 * rather than always worker 0).  Whatever the start, the result's load equals
 * the minimum of the loads read in that scan: it never picks a worker whose
 * load is higher than another's as read.
 *
 * State: the rotating start, < n.  Only the owner's pick() touches it: no
 * lock, no atomic.  (Live loads are the pool's relaxed atomics: a snapshot
 * that may be stale by a job or two; that is inherent to JSQ in a real
 * system, and the pool serialises picks so its own increments are seen.)
 */
#include "pool/policy.h"

#include <stdlib.h>

#include "belt/error.h"

typedef struct least_state {
    unsigned start; /* < n */
    unsigned n;
} least_state;

static int least_init(void **state, unsigned nworkers, uint64_t seed,
                      const belt__policy_params *params)
{
    (void)seed;
    (void)params;
    if (nworkers == 0)
        return BELT_EINVAL;
    least_state *s = malloc(sizeof *s);
    if (s == NULL)
        return BELT_ENOMEM;
    s->start = 0;
    s->n = nworkers;
    *state = s;
    return BELT_OK;
}

static unsigned least_pick(void *state, const belt__load_view *view)
{
    least_state *s = state;
    unsigned n = s->n, i = s->start, best = i;
    unsigned best_load = belt__view_load(view, i);
    s->start = i + 1 == n ? 0 : i + 1;
    for (unsigned k = 1; k < n && best_load > 0; k++) {
        if (++i == n)
            i = 0;
        unsigned l = belt__view_load(view, i);
        if (l < best_load) {
            best_load = l;
            best = i;
        }
    }
    return best;
}

static void least_free(void *state)
{
    free(state);
}

const belt__policy belt__policy_least_loaded = {
    .name = "least-loaded",
    .topology = BELT__TOPO_PER_WORKER,
    .init = least_init,
    .pick = least_pick,
    .free = least_free,
};
