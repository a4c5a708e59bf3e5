/* pool/pool.c: the worker pool: N threads, job channels, one results channel.
 *
 * What it is for: running jobs on worker threads for `belt run` and library
 * users, with the dispatch policy chosen by name (pool/policy.h), graceful
 * shutdown, cancel, and per-worker load and busy-time counters.
 *
 * Topology.  A SHARED policy gets one bounded MPMC channel that every worker
 * receives from (libuv's threadpool and the Go jobs-channel idiom).  A
 * PER_WORKER policy gets one bounded channel per worker; submit asks the
 * policy for a worker and sends on that worker's channel (many submitters
 * may send, one worker receives).  The element travelling on a job channel
 * is the job's belt_result *, allocated by submit: it points at the job, it
 * carries queued_ns stamped at submit, and because it exists before the job
 * is accepted, a worker can always answer with it: "one accepted job, one
 * result" holds even when memory runs out (submit then refuses the job with
 * BELT_ENOMEM instead).  The same pointer then travels on the caller's
 * results channel, filled by the executor (belt__exec_job_into).
 * A STEALING policy ("work-stealing") gets per-worker channels too (the
 * inboxes), plus one Chase-Lev deque per worker, and its workers run
 * belt__pool_steal_main: owners move their inbox into their deque, idle
 * workers steal from others' deques and inboxes, and a worker with nothing
 * anywhere parks on its own futex word until a submit or a push wakes it.
 * That loop, its wake-up protocol and the proof that no wake-up is lost are
 * in pool/steal.c; the structs both files share are in pool/internal.h.
 *
 * Function pools (belt_pool_create_fn).  The same topologies, policies,
 * loads and stop path, with job values on the job channels instead of
 * belt_result pointers: send copies the caller's job_size bytes into the
 * channel the policy picks (pick_worker, shared with submit), and
 * fn_worker_main takes up to BELT__POOL_BATCH of them into its own buffer
 * with one receive, calls fn on each with a result slot in its own result
 * buffer, and sends the batch's results with one belt_chan_send_many.  So
 * a busy worker allocates nothing and makes no system call per job (the
 * channels park only when a side has nothing to do).  Cancel drops what a
 * worker receives after the token fired, unrun and unanswered; calls of fn
 * already running finish first, because stop() joins.  Work-stealing
 * without deques: an idle worker takes the oldest jobs queued at another
 * worker's inbox (half of it, at most a batch), and when every inbox is
 * empty it blocks in belt_select over all of them, so a job sent to any
 * inbox wakes some worker; the select's arms switch off as inboxes close
 * and drain, and the worker exits when none is left.
 *
 * Idle reports.  A PER_WORKER policy with an idle() hook (join-idle-queue)
 * hears from a worker whose load just dropped to 0: the worker takes
 * pick_lock and, if its load is still 0 (loads only rise under pick_lock,
 * so that read is exact), calls idle(pstate, i).  This happens before the
 * job's result is sent.
 *
 * Speeds.  belt__pool_set_speeds() gives worker i a speed factor: a sleep
 * or spin job runs for duration / speed there (belt__pool_run hands the
 * executor a scaled copy of the job).  Set before the first submit; the
 * submit's channel send publishes it to the workers.
 *
 * Load.  Each worker has an atomic load = queued + running jobs, which the
 * policies read through a belt__load_view.  The dispatcher adds 1 before it
 * sends (under pick_lock, so concurrent submitters see each other's picks)
 * and takes it back if the send fails; the worker subtracts 1 when the job
 * is done, before sending the result, so a caller that has received every
 * result sees every load at 0.  Loads are relaxed atomics: they are hints
 * for the policy, and the channels already order the job's data.  Only
 * PER_WORKER and STEALING pools keep loads (a SHARED pool has nothing to
 * choose); in a STEALING pool a thief moves 1 from the victim's load to its
 * own when it steals.
 *
 * Stopping.  shutdown and cancel share one path, stop():
 *   1. set `closing`: a submit that has not yet passed its check fails
 *      fast (otherwise, between steps 2 and 3, workers answering CANCELED at
 *      full speed would keep making room for a busy submitter);
 *   2. cancel only: fire the belt__cancel token before closing, so that a
 *      worker that receives a queued job from now on answers CANCELED
 *      without running it (belt__exec_job_into checks the token), and
 *      running jobs are stopped;
 *   3. close every job channel: a blocked submit wakes with BELT_CLOSED
 *      (or completes, if a worker made room first: its job is then
 *      accepted and answered), workers drain what is buffered and then see
 *      BELT_CLOSED and exit (STEALING: stop() then wakes every parked
 *      worker; each drains its inbox and deque, and exits once a full scan
 *      finds nothing anywhere);
 *   4. the first caller to claim `join_claimed` joins every worker and then
 *      closes the `joined` channel; any other caller (a cancel while a
 *      shutdown joins, two shutdowns) blocks receiving from `joined` until it
 *      is closed.  So every stop returns only after every worker has exited,
 *      pthread_join runs once per thread, and nothing waits but in a channel
 *      operation or pthread_join.
 * Every job accepted before the close is in a channel that some worker
 * drains before exiting, hence gets exactly one result.
 *
 * What guards what:
 *   policy, n, workers[], shared, results, cancel   immutable after create
 *   pstate (the policy instance)                    pick_lock; except
 *                                                   victim(), called by
 *                                                   each thief for itself
 *                                                   (pool/policy.h)
 *   workers[i].speed                                written before the
 *                                                   first submit only
 *   workers[i].load                                 atomic (see Load)
 *   workers[i].busy_ns                              atomic, written only by
 *                                                   worker i
 *   workers[i].deque, wake_seq, sleeping,
 *   nsleepers, steals                               see pool/steal.c
 *   closing, join_claimed                           atomics (see Stopping)
 *   the threads' pthread_t                          written by create, read
 *                                                   by the one joiner
 */
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "belt/error.h"
#include "belt/pool.h"
#include "exec/exec.h"
#include "pool/policy.h"
#include "pool/internal.h"
#include "util/clock.h"
#include "util/cpu.h"

/* Default queue depth per worker.  Deep enough that the dispatcher and the
 * workers rarely have to park and wake each other (which costs more than a
 * noop job); see belt_pool_options. */
#define DEFAULT_DEPTH 64u

/* pool_worker and struct belt_pool: pool/internal.h. */

/* ---- helpers ----------------------------------------------------------- */

/* The load view's accessor over the pool's counters. */
unsigned belt__pool_worker_load(const void *ctx, unsigned i)
{
    const pool_worker *w = ctx;
    return atomic_load_explicit(&w[i].load, memory_order_relaxed);
}

static void close_job_channels(belt_pool *p)
{
    if (p->shared != NULL) {
        belt_chan_close(p->shared);
        return;
    }
    for (unsigned i = 0; i < p->n; i++)
        belt_chan_close(p->workers[i].jobs);
}

/* ---- the worker --------------------------------------------------------- */

/* Sends a worker's finished results; those the caller's closed `results`
 * refuses nobody will receive, so they are ours to free. */
void belt__pool_flush(belt_pool *p, belt_result **done, size_t n)
{
    size_t sent = 0;
    if (n == 0)
        return;
    /* The send publishes everything the executor wrote into each result. */
    belt_chan_send_many(p->results, done, n, &sent);
    for (size_t i = sent; i < n; i++)
        belt_result_free(done[i]);
}

/* Batching.  A worker takes up to BELT__POOL_BATCH jobs per receive and
 * sends the results of quick jobs together, so that a stream of tiny jobs
 * costs one lock round trip (and at most one wake-up) per batch instead of
 * per job: with more threads than cores, wake-ups and context
 * switches are most of the cost of a noop job.  To keep load balancing
 * fair, a worker on the shared queue takes only its share (queued / workers,
 * at least 1), so it never hoards jobs another worker could start; a
 * per-worker queue holds only jobs already assigned to this worker.  And a
 * worker batches only after a quick job (under BELT__POOL_QUICK_NS): one
 * running real commands takes one job at a time, so the queue capacity the
 * caller chose stays the backpressure it gets, and a job that ran long has
 * its result sent at once, never held back behind others. */
/* (BELT__POOL_BATCH and BELT__POOL_QUICK_NS are in pool/internal.h.) */

void belt__pool_run(belt_pool *p, pool_worker *w, belt_result *r,
                    int64_t *busy)
{
    const belt_job *job = r->job;
    /* Speed factor: a sleep or spin job runs for duration / speed.  The
     * executor gets a scaled copy of the job; the result keeps pointing at
     * the caller's job. */
    if (job != NULL && w->speed != 1.0 &&
        (job->kind == BELT_JOB_SLEEP || job->kind == BELT_JOB_SPIN) &&
        job->duration_ns > 0) {
        belt_job scaled = *job;
        double d = (double)job->duration_ns / w->speed;
        scaled.duration_ns = d >= 9.2e18 ? INT64_MAX : (int64_t)d;
        belt__exec_job_into(r, &scaled, (int)w->index, &p->cancel);
        r->job = job;
    } else {
        /* Runs the job, or, once the token fired, answers CANCELED with 0
         * attempts without running it.  Can't fail. */
        belt__exec_job_into(r, job, (int)w->index, &p->cancel);
    }
    /* Busy time is the attempts' own measured durations (backoff waits
     * between retries are idle); no extra clock reads. */
    for (unsigned i = 0; i < r->attempts; i++)
        *busy += r->attempt_log[i].duration_ns;
    atomic_store_explicit(&w->busy_ns, *busy, memory_order_relaxed);
}

/* PER_WORKER: worker w's load just dropped to 0.  With an idle() hook, tell
 * the policy, unless a submitter picked w meanwhile: loads rise only under
 * pick_lock, so a 0 read under it is exact. */
static void report_idle(belt_pool *p, pool_worker *w)
{
    pthread_mutex_lock(&p->pick_lock);
    if (atomic_load_explicit(&w->load, memory_order_relaxed) == 0)
        p->policy->idle(p->pstate, w->index);
    pthread_mutex_unlock(&p->pick_lock);
}

static void *worker_main(void *arg)
{
    pool_worker *w = arg;
    belt_pool *p = w->pool;
    bool per_worker = p->shared == NULL;
    int64_t busy = 0;
    char name[16];

    snprintf(name, sizeof name, "belt-w%u", w->index);
    pthread_setname_np(pthread_self(), name); /* cosmetic; may fail */

    belt_result *batch[BELT__POOL_BATCH], *done[BELT__POOL_BATCH];
    bool quick = false; /* did the last job take under BELT__POOL_QUICK_NS? */
    for (;;) {
        size_t max = quick ? BELT__POOL_BATCH : 1;
        if (quick && !per_worker) {
            max = belt_chan_len(w->jobs) / p->n;
            if (max < 1)
                max = 1;
            if (max > BELT__POOL_BATCH)
                max = BELT__POOL_BATCH;
        }
        int got = belt_chan_recv_many(w->jobs, batch, max, -1);
        if (got < 0)
            break;
        size_t ndone = 0;
        for (int k = 0; k < got; k++) {
            belt_result *r = batch[k];
            belt__pool_run(p, w, r, &busy);
            if (per_worker &&
                atomic_fetch_sub_explicit(&w->load, 1,
                                          memory_order_relaxed) == 1 &&
                p->policy->idle != NULL)
                report_idle(p, w);
            done[ndone++] = r;
            quick = r->duration_ns <= BELT__POOL_QUICK_NS;
            if (!quick) {
                belt__pool_flush(p, done, ndone);
                ndone = 0;
            }
        }
        belt__pool_flush(p, done, ndone);
    }
    return NULL;
}

/* ---- the function-pool worker ------------------------------------------- */

/* Work-stealing for a function pool: worker w's inbox is empty, so it takes
 * the oldest batch queued at another worker (starting at a rotating victim),
 * without blocking.  Returns how many jobs it took into w->fn_jobs (moving
 * their load to w), or 0. */
static int fn_steal(belt_pool *p, pool_worker *w, unsigned *victim)
{
    for (unsigned k = 1; k < p->n; k++) {
        pool_worker *v = &p->workers[(w->index + *victim + k) % p->n];
        size_t max = belt_chan_len(v->jobs) / 2;
        if (max < 1)
            max = 1;
        if (max > BELT__POOL_BATCH)
            max = BELT__POOL_BATCH;
        int got = belt_chan_recv_many(v->jobs, w->fn_jobs, max, 0);
        if (got > 0) {
            *victim = (*victim + k) % p->n;
            atomic_fetch_sub_explicit(&v->load, (unsigned)got,
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&w->load, (unsigned)got,
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&p->steals, (uint64_t)got,
                                      memory_order_relaxed);
            return got;
        }
    }
    return 0;
}

/* Work-stealing, nothing anywhere: blocks in a select over every inbox
 * until one has a job (taking it into w->fn_jobs[0]) or all are closed and
 * drained.  Returns 1, or BELT_CLOSED.  A select arm whose channel is
 * closed and drained is switched off (chan NULL); ops holds p->n arms. */
static int fn_wait_any(belt_pool *p, pool_worker *w, belt_op *ops)
{
    for (;;) {
        int live = 0;
        for (unsigned i = 0; i < p->n; i++)
            live += ops[i].chan != NULL;
        if (live == 0)
            return BELT_CLOSED;
        int i = belt_select(ops, p->n, -1);
        if (i < 0)
            return BELT_CLOSED; /* ENOMEM for the bookkeeping: give up */
        if (ops[i].status == BELT_OK) {
            pool_worker *v = &p->workers[i];
            if (v != w) {
                atomic_fetch_sub_explicit(&v->load, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
                atomic_fetch_add_explicit(&p->steals, 1, memory_order_relaxed);
            }
            return 1;
        }
        ops[i].chan = NULL; /* closed and drained */
    }
}

/* A function pool's worker: takes a batch of job values, calls fn on each
 * (unless the pool was canceled: then queued jobs are dropped unrun),
 * sends the batch's results in one call, and repeats until its channel is
 * closed and drained.  No allocation and no system call per job: a batch
 * costs one receive and one send (each a lock round trip at most, a
 * wake-up only when the other side sleeps) and two vDSO clock reads. */
static void *fn_worker_main(void *arg)
{
    pool_worker *w = arg;
    belt_pool *p = w->pool;
    bool per_worker = p->shared == NULL;
    bool stealing = p->policy->topology == BELT__TOPO_STEALING;
    int64_t busy = 0;
    unsigned victim = 0;
    belt_op *ops = NULL;
    char name[16];

    snprintf(name, sizeof name, "belt-f%u", w->index);
    pthread_setname_np(pthread_self(), name); /* cosmetic; may fail */
    if (stealing) {
        /* Made once; if there is no memory for it, this worker just
         * does not steal (its own inbox is all it needs for correctness). */
        ops = malloc(sizeof *ops * p->n);
        if (ops != NULL)
            for (unsigned i = 0; i < p->n; i++)
                ops[i] = belt_op_recv(p->workers[i].jobs, w->fn_jobs);
    }

    for (;;) {
        size_t max = BELT__POOL_BATCH;
        if (!per_worker) {
            /* The shared queue: take only a fair share (see Batching). */
            max = belt_chan_len(w->jobs) / p->n;
            if (max < 1)
                max = 1;
            if (max > BELT__POOL_BATCH)
                max = BELT__POOL_BATCH;
        }
        int got;
        if (ops != NULL) {
            got = belt_chan_recv_many(w->jobs, w->fn_jobs, max, 0);
            if (got == BELT_EMPTY || got == BELT_CLOSED)
                got = fn_steal(p, w, &victim);
            if (got == 0)
                got = fn_wait_any(p, w, ops);
        } else {
            got = belt_chan_recv_many(w->jobs, w->fn_jobs, max, -1);
        }
        if (got <= 0)
            break;
        if (!belt__cancel_fired(&p->cancel)) {
            int64_t t0 = belt__clock_ns(CLOCK_MONOTONIC);
            for (int k = 0; k < got; k++)
                p->fn(p->fn_ctx, w->fn_jobs + (size_t)k * p->job_size,
                      w->fn_results != NULL
                          ? w->fn_results + (size_t)k * p->res_size
                          : NULL,
                      w->index);
            busy += belt__clock_ns(CLOCK_MONOTONIC) - t0;
            atomic_store_explicit(&w->busy_ns, busy, memory_order_relaxed);
        } else {
            got = -got; /* dropped unrun: no results */
        }
        if (per_worker) {
            unsigned n = (unsigned)(got < 0 ? -got : got);
            if (atomic_fetch_sub_explicit(&w->load, n,
                                          memory_order_relaxed) == n &&
                p->policy->idle != NULL)
                report_idle(p, w);
        }
        /* Results of jobs that ran; a closed results channel refuses them
         * and they are simply not delivered (they hold no resources). */
        if (got > 0 && w->fn_results != NULL)
            belt_chan_send_many(p->results, w->fn_results, (size_t)got, NULL);
    }
    free(ops);
    return NULL;
}

/* ---- create and free ---------------------------------------------------- */

/* Frees everything create allocated; threads must be joined (or none
 * started).  Safe on a partly built pool (NULL channels, no pstate). */
static void pool_destroy(belt_pool *p, bool mutex_ok, bool cancel_ok)
{
    if (p->pstate != NULL)
        p->policy->free(p->pstate);
    if (mutex_ok)
        pthread_mutex_destroy(&p->pick_lock);
    if (cancel_ok)
        belt__cancel_destroy(&p->cancel);
    if (p->workers != NULL) {
        for (unsigned i = 0; i < p->n; i++) {
            if (p->shared == NULL)
                belt_chan_free(p->workers[i].jobs);
            if (p->workers[i].has_deque)
                belt__deque_destroy(&p->workers[i].deque);
            free(p->workers[i].fn_jobs);
            free(p->workers[i].fn_results);
        }
        free(p->workers);
    }
    belt_chan_free(p->shared);
    belt_chan_free(p->joined);
    belt_chan_free(p->results);
    free(p);
}

/* Creates an exec pool (fn NULL: jobs are belt_result *, results belt_result
 * *) or a function pool (jobs are job_size-byte values; results, when
 * there is a channel, are its elem_size).  The callers checked the
 * arguments that differ between the two. */
static int pool_create(belt_pool **out, const belt_pool_options *o,
                       belt_chan *results, size_t job_size, belt_pool_fn *fn,
                       void *fn_ctx, belt__thread_create_fn create,
                       void *create_ctx)
{
    if (o->workers > BELT_POOL_MAX_WORKERS)
        return BELT_EINVAL;
    const belt__policy *pol =
        belt__policy_find(o->policy != NULL ? o->policy : "shared");
    if (pol == NULL)
        return BELT_EINVAL;

    unsigned n = o->workers;
    if (n == 0) {
        unsigned cpus = belt__cpu_count();
        n = cpus > BELT_POOL_MAX_WORKERS ? BELT_POOL_MAX_WORKERS : cpus;
    }
    bool shared = pol->topology == BELT__TOPO_SHARED;
    size_t cap = o->queue_capacity;
    if (cap == 0)
        cap = shared ? (size_t)DEFAULT_DEPTH * n : DEFAULT_DEPTH;
    size_t elem = fn != NULL ? job_size : sizeof(belt_result *);
    if (cap > SIZE_MAX / elem)
        return BELT_EINVAL;

    belt_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return BELT_ENOMEM;
    p->policy = pol;
    p->n = n;
    p->cap = cap;
    atomic_init(&p->closing, false);
    atomic_init(&p->join_claimed, false);
    atomic_init(&p->nsleepers, 0);
    atomic_init(&p->steals, 0);
    p->results = results != NULL ? belt_chan_ref(results) : NULL;
    p->fn = fn;
    p->fn_ctx = fn_ctx;
    p->job_size = job_size;
    p->res_size = fn != NULL && results != NULL ? belt_chan_elem_size(results)
                                                : 0;

    /* From here every failure goes to `fail`, which releases what was
     * made (pool_destroy() is told whether the lock and the cancel token
     * exist) and returns rc, restoring errno for BELT_ESYS. */
    int rc = BELT_ENOMEM, sys_errno = 0;
    bool have_lock = false, have_cancel = false;
    size_t wbytes = sizeof *p->workers * n; /* a multiple of 64 */
    p->workers = aligned_alloc(alignof(pool_worker), wbytes);
    if (p->workers == NULL)
        goto fail;
    memset(p->workers, 0, wbytes);

    belt__policy_params params = { .d = o->d };
    uint64_t seed = o->seed;
    if (seed == 0) /* "any": differs between runs and between pools */
        seed = (uint64_t)belt__clock_ns(CLOCK_MONOTONIC) ^ (uint64_t)(uintptr_t)p;
    if ((rc = pol->init(&p->pstate, n, seed, &params)) != BELT_OK) {
        p->pstate = NULL;
        goto fail;
    }
    if ((sys_errno = pthread_mutex_init(&p->pick_lock, NULL)) != 0) {
        rc = BELT_ESYS;
        goto fail;
    }
    have_lock = true;
    if (belt__cancel_init(&p->cancel) != BELT_OK) {
        sys_errno = errno;
        rc = BELT_ESYS;
        goto fail;
    }
    have_cancel = true;

    rc = BELT_ENOMEM;
    if ((p->joined = belt_chan_bounded(1, 1)) == NULL)
        goto fail;
    if (shared && (p->shared = belt_chan_bounded(cap, elem)) == NULL)
        goto fail;
    for (unsigned i = 0; i < n; i++) {
        pool_worker *w = &p->workers[i];
        atomic_init(&w->load, 0);
        atomic_init(&w->busy_ns, 0);
        atomic_init(&w->wake_seq, 0);
        atomic_init(&w->sleeping, false);
        w->pool = p;
        w->index = i;
        w->speed = 1.0;
        w->jobs = shared ? p->shared : belt_chan_bounded(cap, elem);
        if (w->jobs == NULL)
            goto fail;
        if (fn != NULL) {
            w->fn_jobs = malloc(BELT__POOL_BATCH * job_size);
            if (w->fn_jobs == NULL)
                goto fail;
            if (p->res_size > 0 &&
                (w->fn_results = malloc(BELT__POOL_BATCH * p->res_size)) ==
                    NULL)
                goto fail;
        } else if (pol->topology == BELT__TOPO_STEALING) {
            /* Room for a full inbox's worth plus a batch: it never grows
             * unless cap is huge (then it starts at 1024 and doubles). */
            size_t dcap = cap < 1024 ? cap + BELT__POOL_BATCH : 1024;
            if (belt__deque_init(&w->deque, dcap) != BELT_OK)
                goto fail;
            w->has_deque = true;
        }
    }
    void *(*main_fn)(void *) = fn != NULL ? fn_worker_main
                               : pol->topology == BELT__TOPO_STEALING
                                   ? belt__pool_steal_main
                                   : worker_main;

    for (unsigned i = 0; i < n; i++) {
        pool_worker *w = &p->workers[i];
        if ((sys_errno = create(create_ctx, &w->thread, main_fn, w)) != 0) {
            /* Stop and join the ones already running; none has a job. */
            close_job_channels(p);
            if (p->policy->topology == BELT__TOPO_STEALING && fn == NULL)
                belt__pool_steal_wake_all(p);
            for (unsigned k = 0; k < p->started; k++)
                pthread_join(p->workers[k].thread, NULL);
            rc = BELT_ESYS;
            goto fail;
        }
        p->started = i + 1;
    }
    *out = p;
    return BELT_OK;

fail:
    pool_destroy(p, have_lock, have_cancel);
    if (rc == BELT_ESYS)
        errno = sys_errno;
    return rc;
}

int belt__pool_create_with(belt_pool **out, const belt_pool_options *o,
                           belt_chan *results, belt__thread_create_fn create,
                           void *create_ctx)
{
    if (out == NULL || o == NULL || results == NULL || create == NULL)
        return BELT_EINVAL;
    if (belt_chan_elem_size(results) != sizeof(belt_result *))
        return BELT_EINVAL;
    return pool_create(out, o, results, 0, NULL, NULL, create, create_ctx);
}

static int create_pthread(void *ctx, pthread_t *thread,
                          void *(*start)(void *), void *arg)
{
    (void)ctx;
    return pthread_create(thread, NULL, start, arg);
}

int belt_pool_create(belt_pool **out, const belt_pool_options *o,
                     belt_chan *results)
{
    return belt__pool_create_with(out, o, results, create_pthread, NULL);
}

int belt_pool_create_fn(belt_pool **out, const belt_pool_options *o,
                        size_t job_size, belt_pool_fn *fn, void *ctx,
                        belt_chan *results)
{
    if (out == NULL || o == NULL || fn == NULL || job_size == 0 ||
        job_size > BELT_CHAN_MAX_ELEM)
        return BELT_EINVAL;
    return pool_create(out, o, results, job_size, fn, ctx, create_pthread,
                       NULL);
}

void belt_pool_options_init(belt_pool_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->policy = "shared";
}

/* ---- submit ------------------------------------------------------------- */

/* A per-worker or stealing pool: asks the policy for a worker, counts the
 * job in its load (under pick_lock, so concurrent senders see each other's
 * picks) and returns it; the caller takes the load back if its send fails.
 * A shared pool: NULL (send on p->shared). */
static pool_worker *pick_worker(belt_pool *p)
{
    if (p->shared != NULL)
        return NULL;
    belt__load_view view = {
        .n = p->n, .loads = NULL, .load_fn = belt__pool_worker_load,
        .ctx = p->workers,
    };
    pthread_mutex_lock(&p->pick_lock);
    unsigned i = p->policy->pick(p->pstate, &view);
    if (i >= p->n) /* a policy bug must not become a wild write */
        i %= p->n;
    pool_worker *w = &p->workers[i];
    atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->pick_lock);
    return w;
}

int belt_pool_submit(belt_pool *p, const belt_job *job)
{
    if (p == NULL || job == NULL || p->fn != NULL)
        return BELT_EINVAL;
    /* Fast refusal once stopping; a stop that begins after this check is
     * caught by the send below, which fails on a closed channel. */
    if (atomic_load_explicit(&p->closing, memory_order_acquire))
        return BELT_CLOSED;
    belt_result *r = belt_result_new(job);
    if (r == NULL)
        return BELT_ENOMEM;
    r->queued_ns = belt__clock_ns(CLOCK_REALTIME);

    pool_worker *w = pick_worker(p);
    belt_chan *ch = w != NULL ? w->jobs : p->shared;
    int rc = belt_chan_send(ch, &r);
    if (rc != BELT_OK) {
        if (w != NULL)
            atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
        belt_result_free(r);
        return rc == BELT_ENOMEM ? BELT_ENOMEM : BELT_CLOSED;
    }
    /* r may already be done and freed: only w is used from here. */
    if (p->policy->topology == BELT__TOPO_STEALING)
        belt__pool_steal_notify(p, w->index);
    return BELT_OK;
}

int belt_pool_send(belt_pool *p, const void *job)
{
    if (p == NULL || job == NULL || p->fn == NULL)
        return BELT_EINVAL;
    if (atomic_load_explicit(&p->closing, memory_order_acquire))
        return BELT_CLOSED;
    pool_worker *w = pick_worker(p);
    int rc = belt_chan_send(w != NULL ? w->jobs : p->shared, job);
    if (rc != BELT_OK) {
        if (w != NULL)
            atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
        return BELT_CLOSED;
    }
    return BELT_OK;
}

int belt_pool_send_many(belt_pool *p, const void *jobs, size_t n,
                        size_t *sent)
{
    if (sent != NULL)
        *sent = 0;
    if (p == NULL || (jobs == NULL && n > 0) || p->fn == NULL)
        return BELT_EINVAL;
    if (atomic_load_explicit(&p->closing, memory_order_acquire))
        return BELT_CLOSED;
    if (p->shared != NULL) {
        /* One channel: the whole batch in as few lock round trips as the
         * buffer allows. */
        int rc = belt_chan_send_many(p->shared, jobs, n, sent);
        return rc == BELT_OK ? BELT_OK : BELT_CLOSED;
    }
    /* Per-worker queues: the policy places each job (it may balance on
     * loads that change with every one). */
    const unsigned char *j = jobs;
    for (size_t i = 0; i < n; i++) {
        int rc = belt_pool_send(p, j + i * p->job_size);
        if (rc != BELT_OK)
            return rc;
        if (sent != NULL)
            *sent = i + 1;
    }
    return BELT_OK;
}

/* ---- stopping ----------------------------------------------------------- */

/* See "Stopping" at the top.  Returns once every worker has exited. */
static void stop(belt_pool *p, bool cancel)
{
    atomic_store_explicit(&p->closing, true, memory_order_release);
    if (cancel)
        belt__cancel_fire(&p->cancel); /* before the close: see step 2 */
    close_job_channels(p);
    if (p->policy->topology == BELT__TOPO_STEALING && p->fn == NULL)
        belt__pool_steal_wake_all(p); /* parked workers see the close (3) */
    if (!atomic_exchange_explicit(&p->join_claimed, true,
                                  memory_order_acq_rel)) {
        for (unsigned i = 0; i < p->started; i++)
            pthread_join(p->workers[i].thread, NULL);
        belt_chan_close(p->joined);
    } else {
        /* Someone else joins; its close of `joined` wakes us (nothing is
         * ever sent on it, so this returns BELT_CLOSED). */
        unsigned char dummy;
        belt_chan_recv(p->joined, &dummy);
    }
}

int belt_pool_shutdown(belt_pool *p)
{
    if (p == NULL)
        return BELT_EINVAL;
    stop(p, false);
    return BELT_OK;
}

int belt_pool_cancel(belt_pool *p)
{
    if (p == NULL)
        return BELT_EINVAL;
    stop(p, true);
    return BELT_OK;
}

void belt_pool_free(belt_pool *p)
{
    if (p == NULL)
        return;
    stop(p, false); /* a no-op wait if already stopped */
    pool_destroy(p, true, true);
}

/* ---- queries ------------------------------------------------------------ */

unsigned belt_pool_workers(const belt_pool *p)
{
    return p != NULL ? p->n : 0;
}

unsigned belt_pool_busy(const belt_pool *p, int64_t *busy_ns, unsigned n)
{
    if (p == NULL)
        return 0;
    for (unsigned i = 0; busy_ns != NULL && i < n && i < p->n; i++)
        busy_ns[i] = atomic_load_explicit(&p->workers[i].busy_ns,
                                          memory_order_relaxed);
    return p->n;
}

unsigned belt__pool_load(const belt_pool *p, unsigned i)
{
    if (p == NULL || i >= p->n)
        return 0;
    return belt__pool_worker_load(p->workers, i);
}

const char *belt__pool_policy_name(const belt_pool *p)
{
    return p != NULL ? p->policy->name : NULL;
}

int belt__pool_set_speeds(belt_pool *p, const double *speeds)
{
    if (p == NULL)
        return BELT_EINVAL;
    for (unsigned i = 0; speeds != NULL && i < p->n; i++)
        if (!(speeds[i] > 0.0 && speeds[i] <= 1e300)) /* NaN, inf too */
            return BELT_EINVAL;
    for (unsigned i = 0; i < p->n; i++)
        p->workers[i].speed = speeds != NULL ? speeds[i] : 1.0;
    return BELT_OK;
}

uint64_t belt__pool_steals(const belt_pool *p)
{
    return p != NULL ? atomic_load_explicit(&p->steals, memory_order_relaxed)
                     : 0;
}

const char *const *belt_pool_policy_names(void)
{
    return belt__policy_names();
}
