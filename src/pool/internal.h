/* pool/internal.h: the pool's representation, shared by pool/pool.c (create,
 * submit, stop, the SHARED and PER_WORKER worker loop) and pool/steal.c
 * (the STEALING worker loop and its sleep/wake protocol).  Internal: never
 * installed.  What guards what is listed in pool/pool.c's essay.
 */
#ifndef BELT_POOL_INTERNAL_H
#define BELT_POOL_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "belt/chan.h"
#include "belt/pool.h"
#include "pool/deque.h"
#include "exec/exec.h"
#include "pool/hooks.h"
#include "pool/policy.h"

/* Batching (see pool/pool.c): up to this many jobs per receive, results of
 * quick jobs (under BELT__POOL_QUICK_NS) sent together. */
#define BELT__POOL_BATCH 16
#define BELT__POOL_QUICK_NS 1000000 /* 1 ms */

/* One worker.  Aligned to a cache line so that workers' counters do not
 * share one. */
typedef struct pool_worker {
    alignas(64) _Atomic unsigned load; /* queued + running (not SHARED) */
    _Atomic int64_t busy_ns;           /* written only by this worker */
    belt_chan *jobs;   /* own inbox channel, or the SHARED one */
    belt_pool *pool;
    unsigned index;
    double speed;      /* > 0; set before the first submit (set_speeds) */
    pthread_t thread;  /* valid for index < pool->started */
    /* STEALING only (pool/steal.c): */
    belt__deque deque;          /* owner: this worker; thieves: the others */
    bool has_deque;             /* deque initialised (immutable) */
    _Atomic uint32_t wake_seq;  /* futex word: bumped to wake this worker */
    _Atomic bool sleeping;      /* announced asleep, not yet claimed */
    /* Function pools only (see "Function pools" in pool/pool.c): a batch of
     * job values taken at once, and the results fn writes for them.
     * Owned by this worker; allocated by create. */
    unsigned char *fn_jobs;     /* BELT__POOL_BATCH * job_size bytes */
    unsigned char *fn_results;  /* BELT__POOL_BATCH * res_size bytes, or
                                 * NULL without a results channel */
} pool_worker;

struct belt_pool {
    const belt__policy *policy;
    void *pstate;               /* guarded by pick_lock (victim(): see
                                 * pool/steal.c) */
    pthread_mutex_t pick_lock;
    unsigned n;                 /* workers */
    unsigned started;           /* threads started; written by create only */
    size_t cap;                 /* capacity of each job channel */
    pool_worker *workers;       /* n of them */
    belt_chan *shared;          /* SHARED: the job channel; else NULL */
    belt_chan *results;         /* our reference (NULL: a function pool
                                 * without results) */
    belt_pool_fn *fn;           /* NULL: an exec pool (belt_job jobs) */
    void *fn_ctx;               /* fn's first argument */
    size_t job_size;            /* function pools: the job value's size */
    size_t res_size;            /* function pools: results' elem_size, or 0 */
    belt_chan *joined;          /* closed once every worker is joined */
    belt__cancel cancel;
    _Atomic bool closing;       /* shutdown or cancel began */
    _Atomic bool join_claimed;  /* someone is (or was) joining */
    _Atomic unsigned nsleepers; /* STEALING: workers announced asleep */
    _Atomic uint64_t steals;    /* STEALING: jobs taken from another worker */
};

/* pool/pool.c: runs r (a job taken by worker w) with w's speed applied, adds
 * its attempts to *busy and publishes w->busy_ns.  Can't fail. */
void belt__pool_run(belt_pool *p, pool_worker *w, belt_result *r,
                    int64_t *busy);

/* pool/pool.c: sends a worker's finished results (frees those a closed results
 * channel refuses). */
void belt__pool_flush(belt_pool *p, belt_result **done, size_t n);

/* pool/pool.c: the load view's accessor over p->workers. */
unsigned belt__pool_worker_load(const void *ctx, unsigned i);

/* pool/steal.c: the STEALING worker thread (arg: its pool_worker). */
void *belt__pool_steal_main(void *arg);

/* pool/steal.c: a job was just sent to worker i's inbox: wakes a sleeping
 * worker to take it (i itself if asleep, else any sleeper, who may steal
 * it).  Any thread; can't fail. */
void belt__pool_steal_notify(belt_pool *p, unsigned i);

/* pool/steal.c: wakes every worker (after the job channels are closed, so
 * that sleepers see it and exit).  Can't fail. */
void belt__pool_steal_wake_all(belt_pool *p);

#endif /* BELT_POOL_INTERNAL_H */
