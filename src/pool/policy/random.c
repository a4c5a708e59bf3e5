/* pool/policy/random.c: "random", a worker chosen uniformly at random per job.
 *
 * Source: random (Bernoulli) splitting of a Poisson stream: each worker then
 * sees a Poisson stream of rate lambda/n and behaves as an independent M/M/1
 * queue (for exponential service), mean sojourn 1/(mu - lambda/n); see
 * Harchol-Balter, "Performance Modeling and Design of Computer Systems"
 * (2013), ch. 24.  It is the d = 1 case of power-of-d and the reference curve
 * `belt experiment` overlays for it.
 *
 * State: the instance's xorshift64* generator (pool/policy.h), seeded at init;
 * it ignores loads.  Only the owner's pick() touches it: no lock, no atomic.
 */
#include "pool/policy.h"

#include <stdlib.h>

#include "belt/error.h"

typedef struct random_state {
    belt__rng rng;
    unsigned n;
} random_state;

static int random_init(void **state, unsigned nworkers, uint64_t seed,
                       const belt__policy_params *params)
{
    (void)params;
    if (nworkers == 0)
        return BELT_EINVAL;
    random_state *s = malloc(sizeof *s);
    if (s == NULL)
        return BELT_ENOMEM;
    belt__rng_seed(&s->rng, seed);
    s->n = nworkers;
    *state = s;
    return BELT_OK;
}

static unsigned random_pick(void *state, const belt__load_view *view)
{
    random_state *s = state;
    (void)view;
    return belt__rng_below(&s->rng, s->n);
}

static void random_free(void *state)
{
    free(state);
}

const belt__policy belt__policy_random = {
    .name = "random",
    .topology = BELT__TOPO_PER_WORKER,
    .init = random_init,
    .pick = random_pick,
    .free = random_free,
};
