/* pool/steal.c: the worker loop of a STEALING pool ("work-stealing") and
 * the sleep/wake protocol that lets its idle workers block.
 *
 * Where jobs are.  Submit sends each job to the inbox (bounded channel) of
 * the worker pick() names, as for PER_WORKER.  Each worker owns a Chase-Lev
 * deque (pool/deque.c).  Between jobs the owner moves what its inbox holds
 * into its deque (owner push), as long as the deque holds fewer than `cap`
 * jobs (the inbox capacity): so a worker holds at most about 2 * cap queued
 * jobs and submit's backpressure still works.  A worker runs, in this order:
 *   1. its own deque, oldest first (it calls steal() on its own deque: FIFO,
 *      fair to latency; experiment/sim.h models the same order);
 *   2. a steal round: up to n - 1 times, ask the policy's victim() and take
 *      the oldest job of that victim's deque, else of its inbox (the inbox
 *      is an MPMC channel, so a thief may receive from it: jobs that arrive
 *      while their owner runs a long job are stealable at once);
 *   3. else it parks (below).
 * Every job is taken exactly once: a deque element by whoever advances its
 * top (or the owner's take), a channel element by its one receiver.
 * victim() is called without pick_lock: work-stealing's victim() touches
 * only the thief's own rng (pool/policy.h, pool/policy/work_stealing.c), so
 * thieves never queue behind submitters or each other.
 *
 * Loads.  submit adds 1 to the chosen worker's load; a thief moves 1 from
 * the victim's load to its own when it steals; a worker subtracts 1 when a
 * job is done, before sending its result (as in pool/pool.c).
 *
 * Parking: an eventcount per worker.  Worker w's futex word is wake_seq;
 * `sleeping` says w is announced asleep and unclaimed; p->nsleepers counts
 * the announced.  To park, w:
 *   a. reads s = wake_seq;
 *   b. announces: sleeping = true, then nsleepers++ (seq_cst RMWs);
 *   c. re-checks everything: its inbox, its deque, and every other
 *      worker's deque and inbox, in a full scan (not the random round);
 *      if it finds a job it un-announces and runs it;
 *   d. else, if its inbox is closed and drained, it un-announces and exits;
 *   e. else futex_wait(&wake_seq, s), then un-announces (sleeping = false,
 *      nsleepers--) and goes back to the top of the loop.
 * Whoever makes work appear notifies: a submitter after its send succeeds
 * (belt__pool_steal_notify, one wake), an owner after pushing k jobs into
 * its deque (k wakes, minus one if its deque was empty before: that job is
 * the owner's own next one).  Notifying is: read nsleepers with a seq_cst
 * RMW (fetch_add of 0); if 0, nothing; else claim a sleeper, the target
 * worker first, by a CAS of
 * its `sleeping` from true to false (so two notifiers never spend their
 * wake on the same sleeper), bump its wake_seq and futex_wake it.
 *
 * No lost wake-up.  Suppose w parks for good in (e) while a job J sits in
 * some inbox or deque.  J was put there after w's scan in (c) read that
 * place (else w would have taken it), by a send (submit) or a push (owner).
 *   - Push: the owner's push is followed by its RMW of nsleepers; w's
 *     increment (an RMW too) is followed by its scan's loads of the deque's
 *     top and bottom.  RMWs of one atomic are totally ordered and each
 *     reads the value the previous one wrote: if the owner's comes first,
 *     w's reads from it (or from a later RMW in the same release sequence),
 *     so the push happens-before w's scan, which sees bottom advanced (J
 *     visible); if w's comes first, the owner reads nsleepers >= 1.  So the
 *     owner saw nsleepers > 0 and claimed some sleeper v (w itself, or
 *     another).  (RMWs rather than a fence pair: the same guarantee, and
 *     ThreadSanitizer understands them.)
 *   - Send: the inbox is read and written under its channel's lock; if w's
 *     try_recv locked after the send, it saw J; else w's announcement
 *     happens-before the submitter's load of nsleepers, which sees it.
 *   In both cases a sleeper v was claimed and its wake_seq bumped after v
 *   read s (v was announced, and announcing follows (a)), so v's futex_wait
 *   returns at once or is woken, and v runs its loop again, ending in a full
 *   scan (c) before it can park: J is found by v, or by someone earlier.
 *   The only exception is the owner's own next job (the "minus one"): the
 *   owner is awake and looks at its deque before parking.  Claiming fails
 *   only for sleepers already claimed, i.e. already woken.  If the claim
 *   scan finds no one (nsleepers counted a worker that un-announced in (c)
 *   or (e)), that worker is awake and will scan again before parking.
 * Stop: after closing every inbox, stop() bumps every worker's wake_seq and
 * wakes it (belt__pool_steal_wake_all), so a parked worker re-checks, sees
 * its inbox closed, drains and exits; one that read s before the bump finds
 * futex_wait returning at once.
 *
 * Exit.  A worker exits when its inbox is closed and drained, its deque is
 * empty and a full scan finds nothing anywhere.  Jobs accepted before the
 * close are in some inbox or deque; every owner drains its own before
 * exiting, so each gets exactly one result (cancel: CANCELED, as in pool/pool.c).
 */
#include <linux/futex.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "belt/error.h"
#include "pool/internal.h"

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    /* EINTR/EAGAIN: the caller re-checks everything anyway. */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL,
            NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL,
            0);
}

static void wake(pool_worker *w)
{
    atomic_fetch_add_explicit(&w->wake_seq, 1, memory_order_seq_cst);
    futex_wake(&w->wake_seq);
}

/* Claims and wakes one sleeper, `prefer` first; false if none. */
static bool wake_one(belt_pool *p, unsigned prefer)
{
    for (unsigned k = 0; k < p->n; k++) {
        unsigned j = prefer + k;
        if (j >= p->n)
            j -= p->n;
        pool_worker *v = &p->workers[j];
        bool yes = true;
        if (atomic_load_explicit(&v->sleeping, memory_order_relaxed) &&
            atomic_compare_exchange_strong_explicit(
                &v->sleeping, &yes, false, memory_order_seq_cst,
                memory_order_relaxed)) {
            wake(v);
            return true;
        }
    }
    return false;
}

/* New work became visible (k jobs near worker `prefer`): wake up to k
 * sleepers.  See "No lost wake-up" for the RMW. */
static void notify(belt_pool *p, unsigned prefer, unsigned k)
{
    /* An RMW, not a plain load: it reads the latest value of nsleepers. */
    while (k-- > 0 && atomic_fetch_add_explicit(&p->nsleepers, 0,
                                                memory_order_seq_cst) > 0)
        if (!wake_one(p, prefer))
            break;
}

void belt__pool_steal_notify(belt_pool *p, unsigned i)
{
    notify(p, i, 1);
}

void belt__pool_steal_wake_all(belt_pool *p)
{
    for (unsigned i = 0; i < p->n; i++)
        wake(&p->workers[i]);
}

/* The oldest job of deque q, retrying while other threads win races for
 * it (each lost race means someone else took a job: lock-free progress). */
static belt_result *steal_from(belt__deque *q)
{
    int lost;
    belt_result *r;
    do
        r = belt__deque_steal(q, &lost);
    while (r == NULL && lost);
    return r;
}

/* Moves worker w's inbox into its deque while the deque holds fewer than
 * cap jobs.  Jobs the deque cannot take (out of memory) go to held[], which
 * the owner runs first.  Sets *closed when the inbox is closed and drained.
 * Notifies sleepers of the jobs now stealable. */
static void refill(belt_pool *p, pool_worker *w, belt_result **held,
                   size_t *nheld, bool *closed)
{
    size_t size = belt__deque_size(&w->deque);
    bool was_empty = size == 0;
    unsigned pushed = 0;
    while (size < p->cap && *nheld == 0) {
        belt_result *batch[BELT__POOL_BATCH];
        size_t max = p->cap - size;
        if (max > BELT__POOL_BATCH)
            max = BELT__POOL_BATCH;
        int got = belt_chan_recv_many(w->jobs, batch, max, 0);
        if (got <= 0) {
            if (got == BELT_CLOSED)
                *closed = true;
            break;
        }
        for (int k = 0; k < got; k++) {
            if (*nheld == 0 &&
                belt__deque_push(&w->deque, batch[k]) == BELT_OK)
                pushed++;
            else
                held[(*nheld)++] = batch[k];
        }
        size += (size_t)got;
    }
    if (pushed > (unsigned)was_empty)
        notify(p, w->index, pushed - (unsigned)was_empty);
}

/* Takes the oldest job of worker v (deque, then inbox) for thief w, moving
 * the load; NULL if v has none. */
static belt_result *rob(belt_pool *p, pool_worker *w, pool_worker *v)
{
    belt_result *r = steal_from(&v->deque);
    if (r == NULL && belt_chan_try_recv(v->jobs, &r) != BELT_OK)
        r = NULL;
    if (r != NULL) {
        atomic_fetch_sub_explicit(&v->load, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->steals, 1, memory_order_relaxed);
    }
    return r;
}

/* A steal round: up to n - 1 victims named by the policy. */
static belt_result *steal_round(belt_pool *p, pool_worker *w)
{
    belt__load_view view = {
        .n = p->n, .loads = NULL, .load_fn = belt__pool_worker_load,
        .ctx = p->workers,
    };
    for (unsigned k = 0; k + 1 < p->n; k++) {
        unsigned v = p->policy->victim(p->pstate, w->index, &view);
        if (v >= p->n || v == w->index)
            break;
        belt_result *r = rob(p, w, &p->workers[v]);
        if (r != NULL)
            return r;
    }
    return NULL;
}

/* Step (c): own inbox, own deque, then every other worker in turn. */
static belt_result *full_scan(belt_pool *p, pool_worker *w, bool *closed)
{
    belt_result *r = NULL;
    int rc = belt_chan_try_recv(w->jobs, &r);
    if (rc == BELT_OK)
        return r;
    if (rc == BELT_CLOSED)
        *closed = true;
    if ((r = steal_from(&w->deque)) != NULL)
        return r;
    for (unsigned k = 1; k < p->n; k++) {
        unsigned j = w->index + k;
        if (j >= p->n)
            j -= p->n;
        if ((r = rob(p, w, &p->workers[j])) != NULL)
            return r;
    }
    return NULL;
}

enum { PARK_FOUND, PARK_WOKEN, PARK_EXIT };

/* Steps (a) to (e) of "Parking". */
static int park(belt_pool *p, pool_worker *w, belt_result **out,
                bool *closed)
{
    uint32_t s = atomic_load_explicit(&w->wake_seq, memory_order_acquire);
    atomic_store_explicit(&w->sleeping, true, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->nsleepers, 1, memory_order_seq_cst);
    int how = PARK_WOKEN;
    if ((*out = full_scan(p, w, closed)) != NULL)
        how = PARK_FOUND;
    else if (*closed)
        how = PARK_EXIT;
    else
        futex_wait(&w->wake_seq, s);
    atomic_store_explicit(&w->sleeping, false, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&p->nsleepers, 1, memory_order_seq_cst);
    return how;
}

void *belt__pool_steal_main(void *arg)
{
    pool_worker *w = arg;
    belt_pool *p = w->pool;
    int64_t busy = 0;
    char name[16];

    snprintf(name, sizeof name, "belt-w%u", w->index);
    pthread_setname_np(pthread_self(), name); /* cosmetic; may fail */

    belt_result *held[BELT__POOL_BATCH], *done[BELT__POOL_BATCH];
    size_t nheld = 0, ndone = 0;
    bool closed = false; /* own inbox closed and drained */
    for (;;) {
        belt_result *r = NULL;
        if (!closed && nheld == 0)
            refill(p, w, held, &nheld, &closed);
        if (nheld > 0) {
            r = held[0];
            for (size_t k = 1; k < nheld; k++)
                held[k - 1] = held[k];
            nheld--;
        }
        if (r == NULL)
            r = steal_from(&w->deque);
        if (r == NULL)
            r = steal_round(p, w);
        if (r == NULL) {
            /* About to park: nothing may wait in done[]. */
            belt__pool_flush(p, done, ndone);
            ndone = 0;
            int how = park(p, w, &r, &closed);
            if (how == PARK_EXIT)
                break;
            if (how == PARK_WOKEN)
                continue;
        }
        belt__pool_run(p, w, r, &busy);
        atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
        done[ndone++] = r;
        /* Quick results wait for company only while more local work is
         * ready (as pool/pool.c's batches do); else they go out now. */
        if (r->duration_ns > BELT__POOL_QUICK_NS ||
            ndone == BELT__POOL_BATCH || belt__deque_size(&w->deque) == 0) {
            belt__pool_flush(p, done, ndone);
            ndone = 0;
        }
    }
    belt__pool_flush(p, done, ndone);
    return NULL;
}
