/* pool/hooks.h: what the pool offers beyond belt/pool.h, to belt itself:
 * live experiments (experiment/live.c: per-worker speeds, loads, steals)
 * and the unit tests (a seam to make thread creation fail).  Internal:
 * never installed; implemented in pool/pool.c and pool/steal.c.
 */
#ifndef BELT_POOL_HOOKS_H
#define BELT_POOL_HOOKS_H

#include <pthread.h>
#include <stdint.h>

#include "belt/pool.h"

/* ---- pool/pool.c internals (for tests and the CLI's summaries) ---------- */

/* pthread_create's shape, plus a context: the seam through which tests make
 * thread creation fail part-way. */
typedef int (*belt__thread_create_fn)(void *ctx, pthread_t *thread,
                                      void *(*start)(void *), void *arg);

/* belt_pool_create() with `create` starting the worker threads (called once
 * per worker, in order; a non-zero return is an errno value and makes the
 * pool join the started ones and return BELT_ESYS).  Same contract
 * otherwise; BELT_EINVAL also for a NULL create. */
int belt__pool_create_with(belt_pool **out, const belt_pool_options *o,
                           belt_chan *results, belt__thread_create_fn create,
                           void *create_ctx);

/* Worker i's current load (queued + running; kept by PER_WORKER and
 * STEALING policies only, else 0).  0 for a NULL pool or i out of range.  A snapshot. */
unsigned belt__pool_load(const belt_pool *p, unsigned i);

/* The name of the pool's policy ("shared" when none was given); NULL for a
 * NULL pool. */
const char *belt__pool_policy_name(const belt_pool *p);

/* Per-worker speed factors for live experiments: a built-in `sleep` or
 * `spin` job of duration d runs for d / speeds[i] on worker i (the result's
 * `worker` field says which worker ran a job; its duration_ns is the scaled
 * time actually taken).  Exec and noop jobs are not affected.  speeds holds
 * belt_pool_workers(p) finite values > 0; NULL resets every speed to 1.
 * Must be called before the first belt_pool_submit() (the submit's channel
 * send is what publishes the speeds to the workers).  Returns BELT_OK, or
 * BELT_EINVAL (p NULL, a speed not finite or <= 0: nothing changed). */
int belt__pool_set_speeds(belt_pool *p, const double *speeds);

/* How many jobs workers of a "work-stealing" pool have taken from another
 * worker's deque or inbox so far (0 for other topologies and NULL).  A
 * snapshot. */
uint64_t belt__pool_steals(const belt_pool *p);

#endif /* BELT_POOL_HOOKS_H */
