/* pool/policy/power_of_d.c: "power-of-d" and "power-of-two", sample d workers
 * at random and join the least loaded of them.
 *
 * Source: Mitzenmacher, "The Power of Two Choices in Randomized Load
 * Balancing", IEEE TPDS 12(10), 2001 (and Vvedenskaya, Dobrushin, Karpelevich,
 * 1996): with d >= 2 choices the fraction of queues holding at least k jobs
 * falls doubly exponentially in k (lambda^((d^k - 1)/(d - 1))) instead of
 * geometrically (lambda^k) for d = 1, at O(d) cost per job instead of JSQ's
 * O(n).  "power-of-two" is this policy with d fixed at 2.
 *
 * Sampling: the d workers are distinct (sampling without replacement, the
 * usual implementation; Mitzenmacher's analysis samples with replacement,
 * which differs by O(d^2/n)).  d >= n samples everyone, i.e. JSQ with random
 * tie-breaks; d = 1 is "random".  d = 2 takes a fast path (two draws, no
 * array); larger d does a partial Fisher-Yates shuffle of d positions of a
 * permutation of 0..n-1 kept in the state (any permutation is as good as
 * the identity for the next shuffle, so it is never reset).  Ties between
 * samples go to the one drawn first, which is itself uniformly random.
 *
 * State: the xorshift64* generator, d, and for d > 2 the permutation.  Only
 * the owner's pick() touches it (pool/policy.h): no lock, no atomic.
 */
#include "pool/policy.h"

#include <stdlib.h>

#include "belt/error.h"

typedef struct pod_state {
    belt__rng rng;
    unsigned n, d;  /* 1 <= d <= n */
    unsigned *perm; /* d > 2: a permutation of 0..n-1; else NULL */
} pod_state;

static int pod_new(void **state, unsigned nworkers, uint64_t seed,
                   unsigned d)
{
    if (nworkers == 0)
        return BELT_EINVAL;
    if (d == 0)
        d = 2;
    if (d > nworkers)
        d = nworkers;
    pod_state *s = malloc(sizeof *s);
    if (s == NULL)
        return BELT_ENOMEM;
    s->perm = NULL;
    if (d > 2) {
        s->perm = malloc(sizeof *s->perm * nworkers);
        if (s->perm == NULL) {
            free(s);
            return BELT_ENOMEM;
        }
        for (unsigned i = 0; i < nworkers; i++)
            s->perm[i] = i;
    }
    belt__rng_seed(&s->rng, seed);
    s->n = nworkers;
    s->d = d;
    *state = s;
    return BELT_OK;
}

static int pod_init(void **state, unsigned nworkers, uint64_t seed,
                    const belt__policy_params *params)
{
    return pod_new(state, nworkers, seed, params ? params->d : 2);
}

static int pod2_init(void **state, unsigned nworkers, uint64_t seed,
                     const belt__policy_params *params)
{
    (void)params;
    return pod_new(state, nworkers, seed, 2);
}

static unsigned pod_pick(void *state, const belt__load_view *view)
{
    pod_state *s = state;
    unsigned n = s->n;
    if (s->d == 1)
        return belt__rng_below(&s->rng, n);
    if (s->d == 2) {
        /* Two distinct workers a != b, each pair equally likely. */
        unsigned a = belt__rng_below(&s->rng, n);
        unsigned b = belt__rng_below(&s->rng, n - 1);
        if (b >= a)
            b++;
        return belt__view_load(view, b) < belt__view_load(view, a) ? b : a;
    }
    /* Partial Fisher-Yates: perm[0..d) becomes a uniform sample of d. */
    unsigned best = 0, best_load = 0;
    for (unsigned k = 0; k < s->d; k++) {
        unsigned j = k + belt__rng_below(&s->rng, n - k);
        unsigned w = s->perm[j];
        s->perm[j] = s->perm[k];
        s->perm[k] = w;
        unsigned l = belt__view_load(view, w);
        if (k == 0 || l < best_load) {
            best = w;
            best_load = l;
        }
    }
    return best;
}

static void pod_free(void *state)
{
    pod_state *s = state;
    if (s != NULL) {
        free(s->perm);
        free(s);
    }
}

const belt__policy belt__policy_power_of_d = {
    .name = "power-of-d",
    .topology = BELT__TOPO_PER_WORKER,
    .init = pod_init,
    .pick = pod_pick,
    .free = pod_free,
};

const belt__policy belt__policy_power_of_two = {
    .name = "power-of-two",
    .topology = BELT__TOPO_PER_WORKER,
    .init = pod2_init,
    .pick = pod_pick,
    .free = pod_free,
};
