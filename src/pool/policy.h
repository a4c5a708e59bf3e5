/* pool/policy.h: the dispatch-policy interface, shared by the live pool
 * (pool/pool.c) and, later, the discrete-event simulator of `belt experiment`;
 * and, at the end, the few pool/pool.c internals that tests reach.  Internal: never installed.
 *
 * A policy decides, for each job, which worker gets it.  It sees the world
 * only through a belt__load_view: the number of workers and the current load
 * (queued + running jobs) of each.  The pool backs the view with its atomic
 * per-worker counters; a simulator backs it with its own virtual-time queue
 * lengths.  Because a policy touches nothing else (no clock, no channel, no
 * global state), the same code runs live and simulated, and a seeded policy
 * makes the same choices for the same sequence of views.
 *
 *   topology SHARED      one queue every worker pulls from; pick() is never
 *                        called (the work-conserving baseline, "shared")
 *   topology PER_WORKER  one queue per worker; pick() chooses the queue
 *                        (and idle(w), if present, hears when w runs dry)
 *   topology STEALING    one deque per worker; pick() chooses where a job
 *                        lands, victim() whom an idle worker robs
 *
 * Threads: a policy instance is not thread-safe.  Its owner serialises
 * pick() calls (the pool holds its pick lock; the simulator is one thread).
 * A view's loads may change while pick() runs (live mode): a policy reads
 * each load it needs once and decides on those reads.
 *
 * Randomness: each instance owns a belt__rng (util/rng.h: xorshift64*),
 * seeded from the seed given to init(); no global or thread-local state.
 */
#ifndef BELT_POLICY_H
#define BELT_POLICY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "belt/pool.h"
#include "util/rng.h"

/* ---- the load view ---------------------------------------------------- */

/* What a policy may know about the workers.  Loads come from `loads` when it
 * is non-NULL (a plain array of n, the simulator's fast path), else from
 * load_fn(ctx, i).  Either way a load is "queued + running" for worker i. */
typedef struct belt__load_view {
    unsigned n;                                   /* number of workers, > 0 */
    const unsigned *loads;                        /* n loads, or NULL */
    unsigned (*load_fn)(const void *ctx, unsigned i); /* used if !loads */
    const void *ctx;                              /* load_fn's argument */
} belt__load_view;

/* The load of worker i (< v->n) as the view reports it now. */
static inline unsigned belt__view_load(const belt__load_view *v, unsigned i)
{
    return v->loads ? v->loads[i] : v->load_fn(v->ctx, i);
}

/* ---- the policy interface --------------------------------------------- */

typedef enum belt__topology {
    BELT__TOPO_SHARED = 0,  /* one MPMC queue for all workers */
    BELT__TOPO_PER_WORKER,  /* one queue per worker, chosen by pick() */
    BELT__TOPO_STEALING     /* one deque per worker; pick() chooses where a
                             * new job lands, an idle worker whose own deque
                             * is empty steals the oldest job of the worker
                             * victim() names (work stealing) */
} belt__topology;

/* Tunables; a zeroed struct (or NULL) means every default. */
typedef struct belt__policy_params {
    unsigned d; /* power-of-d: workers sampled per job; 0: 2.  Clamped to n */
} belt__policy_params;

typedef struct belt__policy {
    const char *name;        /* as in the config's "policy" */
    belt__topology topology;
    /* Creates an instance for nworkers (> 0) workers in *state (which may
     * be set to NULL for a stateless policy).  params may be NULL.  Returns
     * BELT_OK, BELT_EINVAL (nworkers 0) or BELT_ENOMEM; on failure *state is
     * untouched and nothing is allocated. */
    int (*init)(void **state, unsigned nworkers, uint64_t seed,
                const belt__policy_params *params);
    /* Returns the worker (< view->n) for the next job.  view->n is the
     * nworkers given to init().  Can't fail. */
    unsigned (*pick)(void *state, const belt__load_view *view);
    /* Frees what init() allocated.  NULL state is a no-op. */
    void (*free)(void *state);
    /* Optional (NULL: not needed).  Worker w (< n) has just become idle: it
     * finished a job and its own queue is empty (join-idle-queue uses it to
     * join the idle queue).  Called by the owner under the same
     * serialisation as pick().  Can't fail. */
    void (*idle)(void *state, unsigned w);
    /* STEALING topology only (NULL otherwise).  Idle worker `thief` (< n)
     * found its own deque empty: returns the worker to try to steal from
     * (!= thief), or view->n for "none worth trying".  The caller may call
     * it again after a failed steal, at most view->n - 1 times per attempt.
     * Threads: unlike pick(), victim() must touch only state belonging to
     * `thief` (e.g. a per-thief rng), so that the live pool calls it from
     * each worker thread for itself without pick_lock, concurrently with
     * pick() and with other thieves (pool/policy/work_stealing.c); the
     * simulator calls it from its one thread.  Can't fail. */
    unsigned (*victim)(void *state, unsigned thief,
                       const belt__load_view *view);
} belt__policy;

/* The cursor of round-robin placement (round-robin, and where
 * work-stealing puts new jobs): next < n. */
typedef struct belt__rr {
    unsigned next, n;
} belt__rr;

/* The worker whose turn it is; advances the cursor.  Can't fail. */
static inline unsigned belt__rr_next(belt__rr *c)
{
    unsigned i = c->next;
    c->next = i + 1 == c->n ? 0 : i + 1;
    return i;
}

/* The policies, one per file (policy_<name>.c). */
extern const belt__policy belt__policy_shared;       /* pool/policy/shared.c */
extern const belt__policy belt__policy_round_robin;  /* pool/policy/round_robin.c */
extern const belt__policy belt__policy_random;       /* pool/policy/random.c */
extern const belt__policy belt__policy_least_loaded; /* pool/policy/least_loaded.c */
extern const belt__policy belt__policy_power_of_d;   /* pool/policy/power_of_d.c */
extern const belt__policy belt__policy_power_of_two; /* pool/policy/power_of_d.c, d = 2 */
extern const belt__policy belt__policy_jiq;          /* pool/policy/join_idle_queue.c */
extern const belt__policy belt__policy_work_stealing; /* pool/policy/work_stealing.c */

/* pool/policy/registry.c: the registry. */

/* The policy called `name`, or NULL if there is none (or name is NULL). */
const belt__policy *belt__policy_find(const char *name);

/* NULL-terminated list of every registered policy's name.  Static storage;
 * can't fail. */
const char *const *belt__policy_names(void);

#endif /* BELT_POLICY_H */
