/* pool/policy/round_robin.c: "round-robin", workers 0, 1, ..., n-1, 0, 1, ... in turn.
 *
 * Source: the classic cyclic (round-robin) assignment, e.g. the "cyclic
 * splitting" of arrivals in Harchol-Balter's "Performance Modeling and Design
 * of Computer Systems" (2013), ch. 24.  It ignores load: with equal job sizes
 * it balances perfectly, with variable sizes a worker stuck on a long job
 * keeps receiving its share.
 *
 * State: the index of the next worker, always < n.  Only the owner's pick()
 * touches it (see pool/policy.h), so it is a plain field: no lock, no atomic.
 */
#include "pool/policy.h"

#include <stdlib.h>

#include "belt/error.h"


static int rr_init(void **state, unsigned nworkers, uint64_t seed,
                   const belt__policy_params *params)
{
    (void)seed;
    (void)params;
    if (nworkers == 0)
        return BELT_EINVAL;
    belt__rr *s = malloc(sizeof *s);
    if (s == NULL)
        return BELT_ENOMEM;
    s->next = 0;
    s->n = nworkers;
    *state = s;
    return BELT_OK;
}

static unsigned rr_pick(void *state, const belt__load_view *view)
{
    (void)view;
    return belt__rr_next(state);
}

static void rr_free(void *state)
{
    free(state);
}

const belt__policy belt__policy_round_robin = {
    .name = "round-robin",
    .topology = BELT__TOPO_PER_WORKER,
    .init = rr_init,
    .pick = rr_pick,
    .free = rr_free,
};
