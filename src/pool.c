/* pool.c: the worker pool: N threads, job channels, one results channel.
 *
 * What it is for: running jobs on worker threads for `belt run` and library
 * users, with the dispatch policy chosen by name (policy.h), graceful
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
 *
 * Load.  Each worker has an atomic load = queued + running jobs, which the
 * policies read through a belt__load_view.  The dispatcher adds 1 before it
 * sends (under pick_lock, so concurrent submitters see each other's picks)
 * and takes it back if the send fails; the worker subtracts 1 when the job
 * is done, before sending the result, so a caller that has received every
 * result sees every load at 0.  Loads are relaxed atomics: they are hints
 * for the policy, and the channels already order the job's data.  Only
 * PER_WORKER pools keep loads (a SHARED pool has nothing to choose).
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
 *      BELT_CLOSED and exit;
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
 *   pstate (the policy instance)                    pick_lock
 *   workers[i].load                                 atomic (see Load)
 *   workers[i].busy_ns                              atomic, written only by
 *                                                   worker i
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
#include "exec.h"
#include "policy.h"

/* Default queue depth per worker.  Deep enough that the dispatcher and the
 * workers rarely have to park and wake each other (which costs more than a
 * noop job); see belt_pool_options. */
#define DEFAULT_DEPTH 64u

/* One worker.  Aligned to a cache line so that workers' counters do not
 * share one. */
typedef struct pool_worker {
    alignas(64) _Atomic unsigned load; /* queued + running (PER_WORKER) */
    _Atomic int64_t busy_ns;           /* written only by this worker */
    belt_chan *jobs;   /* own channel (PER_WORKER) or the shared one */
    belt_pool *pool;
    unsigned index;
    pthread_t thread;  /* valid for index < pool->started */
} pool_worker;

struct belt_pool {
    const belt__policy *policy;
    void *pstate;               /* guarded by pick_lock */
    pthread_mutex_t pick_lock;
    unsigned n;                 /* workers */
    unsigned started;           /* threads started; written by create only */
    pool_worker *workers;       /* n of them */
    belt_chan *shared;          /* SHARED: the job channel; else NULL */
    belt_chan *results;         /* our reference */
    belt_chan *joined;          /* closed once every worker is joined */
    belt__cancel cancel;
    _Atomic bool closing;       /* shutdown or cancel began */
    _Atomic bool join_claimed;  /* someone is (or was) joining */
};

/* ---- helpers ----------------------------------------------------------- */

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The load view's accessor over the pool's counters. */
static unsigned worker_load(const void *ctx, unsigned i)
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

/* ---- the worker ----------------------------------------------------------- */

/* Sends a worker's finished results; those the caller's closed `results`
 * refuses nobody will receive, so they are ours to free. */
static void flush_results(belt_pool *p, belt_result **done, size_t n)
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
 * per job: on 2 cores with more threads than cores, wake-ups and context
 * switches are most of the cost of a noop job.  To keep load balancing
 * fair, a worker on the shared queue takes only its share (queued / workers,
 * at least 1), so it never hoards jobs another worker could start; a
 * per-worker queue holds only jobs already assigned to this worker.  And a
 * worker batches only after a quick job (under BELT__POOL_QUICK_NS): one
 * running real commands takes one job at a time, so the queue capacity the
 * caller chose stays the backpressure it gets, and a job that ran long has
 * its result sent at once, never held back behind others. */
#define BELT__POOL_BATCH 16
#define BELT__POOL_QUICK_NS 1000000 /* 1 ms */

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
            /* Runs the job, or, once the token fired, answers CANCELED
             * with 0 attempts without running it.  Can't fail. */
            belt__exec_job_into(r, r->job, (int)w->index, &p->cancel);
            /* Busy time is the attempts' own measured durations (backoff
             * waits between retries are idle); no extra clock reads. */
            for (unsigned i = 0; i < r->attempts; i++)
                busy += r->attempt_log[i].duration_ns;
            atomic_store_explicit(&w->busy_ns, busy, memory_order_relaxed);
            if (per_worker)
                atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
            done[ndone++] = r;
            quick = r->duration_ns <= BELT__POOL_QUICK_NS;
            if (!quick) {
                flush_results(p, done, ndone);
                ndone = 0;
            }
        }
        flush_results(p, done, ndone);
    }
    return NULL;
}

/* ---- create and free ----------------------------------------------------- */

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
        if (p->shared == NULL)
            for (unsigned i = 0; i < p->n; i++)
                belt_chan_free(p->workers[i].jobs);
        free(p->workers);
    }
    belt_chan_free(p->shared);
    belt_chan_free(p->joined);
    belt_chan_free(p->results);
    free(p);
}

int belt__pool_create_with(belt_pool **out, const belt_pool_options *o,
                           belt_chan *results, belt__thread_create_fn create,
                           void *create_ctx)
{
    if (out == NULL || o == NULL || results == NULL || create == NULL)
        return BELT_EINVAL;
    if (belt_chan_elem_size(results) != sizeof(belt_result *))
        return BELT_EINVAL;
    if (o->workers > BELT_POOL_MAX_WORKERS)
        return BELT_EINVAL;
    const belt__policy *pol =
        belt__policy_find(o->policy != NULL ? o->policy : "shared");
    if (pol == NULL)
        return BELT_EINVAL;

    unsigned n = o->workers;
    if (n == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n = cpus < 1 ? 1u
            : cpus > (long)BELT_POOL_MAX_WORKERS ? BELT_POOL_MAX_WORKERS
                                                 : (unsigned)cpus;
    }
    bool shared = pol->topology == BELT__TOPO_SHARED;
    size_t cap = o->queue_capacity;
    if (cap == 0)
        cap = shared ? (size_t)DEFAULT_DEPTH * n : DEFAULT_DEPTH;
    if (cap > SIZE_MAX / sizeof(belt_result *))
        return BELT_EINVAL;

    belt_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return BELT_ENOMEM;
    p->policy = pol;
    p->n = n;
    atomic_init(&p->closing, false);
    atomic_init(&p->join_claimed, false);
    p->results = belt_chan_ref(results);

    size_t wbytes = sizeof *p->workers * n; /* a multiple of 64 */
    p->workers = aligned_alloc(alignof(pool_worker), wbytes);
    if (p->workers == NULL) {
        pool_destroy(p, false, false);
        return BELT_ENOMEM;
    }
    memset(p->workers, 0, wbytes);

    belt__policy_params params = { .d = o->d };
    uint64_t seed = o->seed;
    if (seed == 0) /* "any": differs between runs and between pools */
        seed = (uint64_t)now_ns(CLOCK_MONOTONIC) ^ (uint64_t)(uintptr_t)p;
    int rc = pol->init(&p->pstate, n, seed, &params);
    if (rc != BELT_OK) {
        p->pstate = NULL;
        pool_destroy(p, false, false);
        return rc;
    }
    if ((rc = pthread_mutex_init(&p->pick_lock, NULL)) != 0) {
        pool_destroy(p, false, false);
        errno = rc;
        return BELT_ESYS;
    }
    if (belt__cancel_init(&p->cancel) != BELT_OK) {
        int e = errno;
        pool_destroy(p, true, false);
        errno = e;
        return BELT_ESYS;
    }

    p->joined = belt_chan_bounded(1, 1);
    if (p->joined == NULL)
        goto nomem;
    if (shared) {
        p->shared = belt_chan_bounded(cap, sizeof(belt_result *));
        if (p->shared == NULL)
            goto nomem;
    }
    for (unsigned i = 0; i < n; i++) {
        pool_worker *w = &p->workers[i];
        atomic_init(&w->load, 0);
        atomic_init(&w->busy_ns, 0);
        w->pool = p;
        w->index = i;
        w->jobs = shared ? p->shared
                         : belt_chan_bounded(cap, sizeof(belt_result *));
        if (w->jobs == NULL)
            goto nomem;
    }

    for (unsigned i = 0; i < n; i++) {
        pool_worker *w = &p->workers[i];
        rc = create(create_ctx, &w->thread, worker_main, w);
        if (rc != 0) {
            /* Stop and join the ones already running; none has a job. */
            close_job_channels(p);
            for (unsigned k = 0; k < p->started; k++)
                pthread_join(p->workers[k].thread, NULL);
            pool_destroy(p, true, true);
            errno = rc;
            return BELT_ESYS;
        }
        p->started = i + 1;
    }
    *out = p;
    return BELT_OK;

nomem:
    pool_destroy(p, true, true);
    return BELT_ENOMEM;
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

void belt_pool_options_init(belt_pool_options *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->policy = "shared";
}

/* ---- submit ----------------------------------------------------------------- */

int belt_pool_submit(belt_pool *p, const belt_job *job)
{
    if (p == NULL || job == NULL)
        return BELT_EINVAL;
    /* Fast refusal once stopping; a stop that begins after this check is
     * caught by the send below, which fails on a closed channel. */
    if (atomic_load_explicit(&p->closing, memory_order_acquire))
        return BELT_CLOSED;
    belt_result *r = belt_result_new(job);
    if (r == NULL)
        return BELT_ENOMEM;
    r->queued_ns = now_ns(CLOCK_REALTIME);

    pool_worker *w = NULL;
    belt_chan *ch = p->shared;
    if (ch == NULL) {
        belt__load_view view = {
            .n = p->n, .loads = NULL, .load_fn = worker_load,
            .ctx = p->workers,
        };
        pthread_mutex_lock(&p->pick_lock);
        unsigned i = p->policy->pick(p->pstate, &view);
        if (i >= p->n) /* a policy bug must not become a wild write */
            i %= p->n;
        w = &p->workers[i];
        atomic_fetch_add_explicit(&w->load, 1, memory_order_relaxed);
        pthread_mutex_unlock(&p->pick_lock);
        ch = w->jobs;
    }
    int rc = belt_chan_send(ch, &r);
    if (rc != BELT_OK) {
        if (w != NULL)
            atomic_fetch_sub_explicit(&w->load, 1, memory_order_relaxed);
        belt_result_free(r);
        return rc == BELT_ENOMEM ? BELT_ENOMEM : BELT_CLOSED;
    }
    return BELT_OK;
}

/* ---- stopping ---------------------------------------------------------------- */

/* See "Stopping" at the top.  Returns once every worker has exited. */
static void stop(belt_pool *p, bool cancel)
{
    atomic_store_explicit(&p->closing, true, memory_order_release);
    if (cancel)
        belt__cancel_fire(&p->cancel); /* before the close: see step 2 */
    close_job_channels(p);
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

/* ---- queries ------------------------------------------------------------------- */

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
    return worker_load(p->workers, i);
}

const char *belt__pool_policy_name(const belt_pool *p)
{
    return p != NULL ? p->policy->name : NULL;
}

const char *const *belt_pool_policy_names(void)
{
    return belt__policy_names();
}
