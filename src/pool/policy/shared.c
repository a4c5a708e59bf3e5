/* pool/policy/shared.c: "shared", one MPMC queue that every worker pulls from.
 *
 * Source: the central queue of an M/M/c system (Erlang, 1917; Erlang C for
 * the waiting probability): a job waits only while every worker is busy, so
 * this is the work-conserving baseline the per-worker policies are measured
 * against.  libuv's threadpool and Go's worker-pool idiom (one jobs channel,
 * N goroutines) have this shape.
 *
 * There is nothing to decide per job: the topology is BELT__TOPO_SHARED and
 * whichever worker is free first takes the next job, so the pool (and the
 * simulator) never call pick().  It exists, returning 0, only so that every
 * vtable is complete.  Stateless: no locks, no atomics.
 */
#include "pool/policy.h"

#include "belt/error.h"

static int shared_init(void **state, unsigned nworkers, uint64_t seed,
                       const belt__policy_params *params)
{
    (void)seed;
    (void)params;
    if (nworkers == 0)
        return BELT_EINVAL;
    *state = NULL;
    return BELT_OK;
}

static unsigned shared_pick(void *state, const belt__load_view *view)
{
    (void)state;
    (void)view;
    return 0;
}

static void shared_free(void *state)
{
    (void)state;
}

const belt__policy belt__policy_shared = {
    .name = "shared",
    .topology = BELT__TOPO_SHARED,
    .init = shared_init,
    .pick = shared_pick,
    .free = shared_free,
};
