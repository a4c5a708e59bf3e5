/* belt/pool.h: a pool of worker threads that run jobs and reply on a channel.
 *
 * The shape (what `belt run` is built on, and what library users get):
 *
 *     belt_chan *results = belt_chan_unbounded(sizeof(belt_result *));
 *     belt_pool_options o; belt_pool_options_init(&o); o.workers = 4;
 *     belt_pool *p;  belt_pool_create(&p, &o, results);
 *     for (...) belt_pool_submit(p, &jobs[i]);      // dispatcher side
 *     ... belt_chan_recv(results, &r) ... belt_result_free(r);
 *     belt_pool_shutdown(p);  belt_pool_free(p);
 *
 * The dispatcher (the caller of submit) sends each job over a job channel
 * chosen by the policy; each worker runs jobs and sends one belt_result* per
 * job on the results channel, which the caller owns and drains.  Every job
 * that submit accepted (BELT_OK) gets exactly one result, whether it ran,
 * failed, or was canceled; a job that submit refused gets none.
 *
 * Policies (`policy` option, same names as the config's "policy"):
 *   "shared"        one MPMC job channel all workers pull from (default)
 *   "round-robin"   per-worker channels, chosen in turn
 *   "random"        per-worker channels, chosen uniformly at random
 *   "least-loaded"  the worker with the fewest queued + running jobs
 *   "power-of-two"  two workers sampled at random, the less loaded one
 *   "power-of-d"    `d` workers sampled at random, the least loaded one
 *   "join-idle-queue"  a worker that reported itself idle (each worker
 *                   joins the idle queue when its queue runs dry), else one
 *                   at random
 *   "work-stealing" per-worker deques, jobs placed round-robin; a worker
 *                   with nothing to do takes the oldest job queued at a
 *                   random other worker; idle workers block (no polling)
 * belt_pool_policy_names() lists what this build has.
 *
 * Draining: workers block sending on a full bounded results channel, so the
 * caller must keep receiving (or use an unbounded results channel) while
 * jobs run, and also while belt_pool_shutdown() waits.
 *
 * Threads: belt_pool_submit() may be called from several threads at once;
 * belt_pool_shutdown() and belt_pool_cancel() from any thread, also while
 * another thread is blocked in submit or in shutdown.  belt_pool_free() must
 * not run concurrently with any other call on the same pool.  Every worker
 * thread is joined by belt_pool_shutdown(), belt_pool_cancel() or
 * belt_pool_free(); every child process a job starts is reaped before its
 * result is sent.  No call here busy-waits; pools share no state.
 *
 * ABI (the rule for every public struct of libbelt, until 1.0 and after):
 *   - Structs the caller allocates and fills (belt_pool_options, belt_job,
 *     belt_sched_options) are prepared with their _init() function, or
 *     zeroed, before the caller sets fields.  Each ends with reserved
 *     fields that must stay zero.  A later version adds a field by taking
 *     reserved space, with zero meaning "as before", so sizes and offsets
 *     of existing fields never change and a program built against an
 *     older header keeps working with a newer library.
 *   - Structs belt allocates (belt_result) end with reserved fields too,
 *     for the same reason; callers never allocate them themselves, except
 *     through belt_result_new().
 *   - Everything else is opaque (belt_chan, belt_pool, belt_config,
 *     belt_sched), like jansson's json_t.
 *   - belt_op and belt_config_error are fixed: arrays of belt_op are
 *     passed to select, and belt_config_error mirrors jansson's
 *     json_error_t.  A change to them is a new soname.
 *   - The soname (-version-info in Makefile.am) changes when any of this
 *     is broken.
 */
#ifndef BELT_POOL_H
#define BELT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "belt/chan.h"
#include "belt/job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct belt_pool belt_pool;

/* Most worker threads a pool accepts. */
#define BELT_POOL_MAX_WORKERS 4096u

typedef struct belt_pool_options {
    unsigned workers;      /* 0: the number of online CPUs; at most
                            * BELT_POOL_MAX_WORKERS */
    const char *policy;    /* NULL: "shared" */
    size_t queue_capacity; /* per job channel; 0: the default, 64 * workers
                            * (shared) or 64 (per-worker).  submit blocks
                            * while the chosen channel is full */
    uint64_t seed;         /* for the random policies; 0: any (time-based) */
    unsigned d;            /* "power-of-d": workers sampled; 0: 2 */
    void *reserved[4];     /* zero (see "ABI" above) */
} belt_pool_options;

/* Fills o with the defaults above (reserved fields zero).  Can't fail. */
void belt_pool_options_init(belt_pool_options *o);

/* Starts a pool of worker threads.  `results` is a channel of belt_result *
 * (elem_size must be sizeof(belt_result *)); the pool takes its own
 * reference (dropped by belt_pool_free()) and sends one result per accepted
 * job on it.  The pool never closes `results`; if the caller closes it, the
 * results that can no longer be sent are freed.
 * On success stores the pool in *out and returns BELT_OK.  On failure
 * returns BELT_EINVAL (out, o or results NULL, wrong elem_size, workers
 * above BELT_POOL_MAX_WORKERS, unknown policy, a queue_capacity too large to
 * address), BELT_ENOMEM, or BELT_ESYS (a thread, mutex or eventfd could not
 * be created; errno says why; any threads started were joined); *out is
 * then untouched and nothing is left allocated. */
int belt_pool_create(belt_pool **out, const belt_pool_options *o,
                     belt_chan *results);

/* Hands job to a worker chosen by the policy, blocking while that worker's
 * queue (or the shared queue) is full.  The job is not copied: it must stay
 * valid and unchanged until its result is received.  The result's
 * queued_ns is stamped here.  Returns BELT_OK (exactly one result will
 * come), or, with the job not taken and no result to come: BELT_CLOSED
 * (shutdown or cancel began, also while submit was blocked), BELT_ENOMEM
 * (its result could not be allocated), BELT_EINVAL (p or job NULL). */
int belt_pool_submit(belt_pool *p, const belt_job *job);

/* ---- function pools: the Go worker-pool idiom ------------------------
 *
 *     typedef struct { uint64_t sum; } acc;
 *     static void square(void *ctx, const void *job, void *result, unsigned w)
 *     { uint64_t x = *(const uint64_t *)job; *(uint64_t *)result = x * x; }
 *     belt_chan *res = belt_chan_bounded(1024, sizeof(uint64_t));
 *     belt_pool_create_fn(&p, &o, sizeof(uint64_t), square, NULL, res);
 *     ... a producer: belt_pool_send(p, &i) ...; main: belt_chan_recv(res, &r)
 *
 * A function pool runs fn on each job instead of a belt_job.  Jobs are
 * values of job_size bytes, copied into the pool's queues by send, so the
 * caller may reuse its buffer at once.  Workers take jobs in batches, call
 * fn(ctx, job, result, worker) for each (worker in [0, workers)), and send
 * each batch's results with one channel call: no heap allocation and no
 * system call per job while the workers are busy.  Every policy works
 * (work-stealing: an idle worker takes the oldest jobs queued at another
 * worker, and blocks in a select over every queue when all are empty).
 * belt_pool_shutdown(), belt_pool_cancel(), belt_pool_free(),
 * belt_pool_workers() and belt_pool_busy() work as for exec pools;
 * belt_pool_submit() on a function pool, and send on an exec pool, return
 * BELT_EINVAL. */

/* Runs one job on a worker thread.  `job` points at the pool's copy of the
 * job value (job_size bytes), valid during the call.  `result` points at a
 * buffer the pool owns, of the results channel's elem_size bytes, which fn
 * fills; it is sent once fn returns.  It is NULL when the pool has no
 * results channel.  fn must not call shutdown, cancel or free on its own
 * pool. */
typedef void belt_pool_fn(void *ctx, const void *job, void *result,
                          unsigned worker);

/* Starts a function pool of o->workers threads (o as for
 * belt_pool_create()).  `results` may be NULL (nothing is sent); otherwise
 * the pool takes its own reference (dropped by belt_pool_free()) and sends,
 * on it, exactly one result of its elem_size per job that ran, blocking
 * while it is full (so keep receiving while jobs run, and during
 * shutdown).  The pool never closes it; if the caller does, results that
 * can no longer be sent are dropped.  ctx is passed to fn untouched and
 * stays the caller's.
 * Returns BELT_OK and stores the pool in *out, or: BELT_EINVAL (out, o or
 * fn NULL, job_size 0 or above BELT_CHAN_MAX_ELEM, workers above
 * BELT_POOL_MAX_WORKERS, an unknown policy, a queue_capacity too large),
 * BELT_ENOMEM, or BELT_ESYS (a thread could not be started; errno says
 * why); *out is then untouched and nothing is left allocated or running. */
int belt_pool_create_fn(belt_pool **out, const belt_pool_options *o,
                        size_t job_size, belt_pool_fn *fn, void *ctx,
                        belt_chan *results);

/* Copies job (job_size bytes) into the queue the policy picks, blocking
 * while it is full.  Any thread, many at once.  Returns BELT_OK (the job
 * will run, unless the pool is canceled first), BELT_CLOSED (shutdown or
 * cancel began, also while send was blocked; the job is not taken), or
 * BELT_EINVAL (p or job NULL, or p is not a function pool). */
int belt_pool_send(belt_pool *p, const void *job);

/* Sends jobs[0 .. n) (n values of job_size bytes, contiguous) in order, as
 * belt_pool_send() each, with as few queue operations as the policy allows
 * (one per batch on "shared").  Stores the number accepted in *sent (may be
 * NULL) and returns BELT_OK when all n were, else the error that stopped it
 * (BELT_CLOSED, BELT_EINVAL); jobs from *sent on were not taken. */
int belt_pool_send_many(belt_pool *p, const void *jobs, size_t n,
                        size_t *sent);

/* Graceful shutdown: takes no more jobs, lets the workers finish every job
 * already submitted (their results are sent), and joins the workers.
 * Blocks until every worker has exited, including when another thread's
 * shutdown or cancel does the joining.  Idempotent; a cancel during or after
 * it is allowed.  Returns BELT_OK, or BELT_EINVAL for NULL. */
int belt_pool_shutdown(belt_pool *p);

/* Cancel: takes no more jobs, runs none of the queued ones (each gets a
 * result with status CANCELED and 0 attempts), terminates running jobs
 * (process groups get SIGTERM, then SIGKILL after their grace period; sleep
 * and spin jobs stop at once; they get status CANCELED), and joins the
 * workers.  Wakes a submit blocked on a full queue (it returns BELT_CLOSED)
 * and hurries a shutdown in progress.  Not async-signal-safe (it joins).
 * Idempotent.  Function pools: queued jobs are dropped unrun and get no
 * result; calls of fn already running finish before cancel returns.
 * Returns BELT_OK, or BELT_EINVAL for NULL. */
int belt_pool_cancel(belt_pool *p);

/* Number of worker threads.  0 for NULL.  Can't fail. */
unsigned belt_pool_workers(const belt_pool *p);

/* Per-worker busy time so far (time spent running jobs, CLOCK_MONOTONIC),
 * in nanoseconds: fills busy_ns[0 .. min(n, workers)) and returns the number
 * of workers (0 for NULL p; busy_ns may be NULL when n is 0).  A snapshot:
 * each entry is updated by its worker after every job.  Can't fail. */
unsigned belt_pool_busy(const belt_pool *p, int64_t *busy_ns, unsigned n);

/* Shuts down (as belt_pool_shutdown(), so it waits for queued jobs) if not
 * yet done, then frees the pool and drops its reference to the results
 * channel (results already sent stay there).  NULL is a no-op. */
void belt_pool_free(belt_pool *p);

/* NULL-terminated list of the policy names this build knows, in static
 * storage.  Can't fail. */
const char *const *belt_pool_policy_names(void);

#ifdef __cplusplus
}
#endif

#endif /* BELT_POOL_H */
