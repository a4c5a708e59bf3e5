/* experiment/sim.h: the discrete-event simulator of `belt experiment` ("mode":
 * "simulate"), its workloads and its per-point results (which the live mode
 * fills too).  Internal: never installed.
 *
 * A run simulates `workers` servers in virtual time (seconds) under one
 * dispatch policy, driven only through the pool/policy.h vtable, so the code
 * that dispatches live is the code simulated:
 *
 *   SHARED      one FIFO queue; a job arriving with a worker idle starts on
 *               the worker that has been idle longest (at the start: worker
 *               0 first), else waits; a worker that finishes takes the
 *               oldest waiting job.  pick() and idle() are never called.
 *   PER_WORKER  pick() chooses the worker whose FIFO queue the job joins;
 *               idle(w), if the policy has it, is called when w finishes a
 *               job and its queue is empty (not at the start: init() must
 *               take every worker as idle).
 *   STEALING    pick() chooses the deque a job lands in.  The owner runs
 *               its own deque in FIFO order (oldest first: fair to sojourn
 *               times, whereas Chase-Lev's LIFO owner order favours cache
 *               locality the simulator does not model).  A worker that
 *               finishes with an empty deque, and one idle worker woken when
 *               a job lands in a busy worker's deque (the live pool wakes one
 *               sleeper per push), try to steal: they ask victim() up to n-1
 *               times and take the oldest queued job of the first victim
 *               that has one (no victim() calls when no job is queued
 *               anywhere).  A thief that finds nothing stays idle until
 *               the next such event.  The woken worker is the one idle
 *               longest.  Steals take no virtual time.  idle(w) is called
 *               like PER_WORKER's (after a failed steal) if the policy has
 *               it.
 *
 * The load view handed to pick() and victim() is a plain array: loads[i] =
 * jobs queued at i + the one running on i (0 or 1).  A job of service s on a
 * worker of speed f runs for s / f.  Ties in time are broken
 * deterministically: completions before arrivals at the same instant, then
 * by worker number.
 *
 * Determinism: results depend only on the arguments.  Three belt__rng
 * streams, seeded from `seed` through distinct constants, give the arrival
 * times, the service times and the policy's seed, so changing the policy
 * does not change the job sequence (common random numbers across policies).
 * No global state; runs in different threads are independent.
 *
 * Cost: O(log n) per job (a binary heap of busy workers' completion
 * times), plus the policy's pick() (and victim() calls when stealing); no
 * allocation per job (queues are rings that grow by doubling).  Measured
 * (scripts/bench sim, 100 workers, load 0.9): about 10 million jobs per
 * second of one core for random and power-of-two, some 700 instructions
 * per job.
 *
 * Time-average queue length counts jobs waiting (not running), summed over
 * all queues; it and utilisation are averages over the run's span, from
 * the first arrival to the last completion.
 */
#ifndef BELT_SIM_H
#define BELT_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "experiment/dist.h"
#include "pool/policy.h"
#include "experiment/hist.h"

/* ---- traces ------------------------------------------------------------ */

/* A recorded workload: n jobs with arrival times (seconds from the trace's
 * start, non-decreasing) and service times (seconds of work at speed 1). */
typedef struct belt__trace {
    size_t n;
    double *arrival; /* n values (owned) */
    double *service; /* n values (owned) */
} belt__trace;

/* Loads a trace from `path`: CSV ("arrival,service" per line; an optional
 * header line whose first field is not a number; blank lines and lines
 * starting with '#' skipped) or JSON Lines ({"arrival": .., "service": ..}
 * per line), chosen by the first non-blank, non-comment character ('{':
 * JSON Lines).  Each time is a number of seconds or a duration string
 * ("1.5ms", quoted in JSON; in CSV with or without double quotes).
 * Arrivals must be non-decreasing; times must be >= 0; a trace must hold at
 * least one job.  On success fills *t (free with belt__trace_free) and
 * returns BELT_OK.  On failure *t is zeroed and returns BELT_ENOENT or
 * BELT_EIO (cannot open/read; msg "PATH: strerror"), BELT_ECONFIG (msg
 * "PATH:LINE: what is wrong", e.g. "trace.csv:17: expected 2 fields
 * (arrival,service), got 1" or "trace.csv:9: arrival 0.5 is before the
 * previous arrival 0.7"), or BELT_ENOMEM. */
int belt__trace_load(const char *path, belt__trace *t, char *msg,
                     size_t msg_size);

/* Appends one job to t (no checks), growing the arrays by doubling; *cap
 * is their capacity, 0 for a zeroed trace (the caller keeps it between
 * calls).  For building a trace in memory (e.g. a live run's sampled
 * workload).  Returns BELT_OK or BELT_ENOMEM (t unchanged and still valid,
 * to be freed with belt__trace_free). */
int belt__trace_append(belt__trace *t, size_t *cap, double arrival,
                       double service);

/* Frees t's arrays and zeroes *t.  NULL or zeroed t: no-op. */
void belt__trace_free(belt__trace *t);

/* ---- workloads ---------------------------------------------------------- */

typedef enum belt__arrival_kind {
    BELT__ARRIVAL_POISSON = 0, /* exponential gaps of mean 1/rate (the
                                * first job too, from t = 0) */
    BELT__ARRIVAL_BATCH,       /* every job at t = 0 */
    BELT__ARRIVAL_RATE,        /* fixed gap 1/rate, first job at t = 0 */
    BELT__ARRIVAL_TRACE        /* arrivals and services from a trace */
} belt__arrival_kind;

/* "poisson", "batch", "rate", "trace"; "unknown" otherwise.  Can't fail. */
const char *belt__arrival_name(belt__arrival_kind kind);

/* Progress callback: `done` of `total` jobs have completed (total is the
 * planned number of jobs; a max_time cap may end the run before).  Called
 * from the simulating thread every 2^16 completions and once at the end. */
typedef void (*belt__sim_progress_fn)(void *ctx, uint64_t done,
                                      uint64_t total);

typedef struct belt__workload {
    belt__arrival_kind arrival;
    double rate;          /* POISSON, RATE: jobs per second, > 0 */
    belt__dist service;   /* all but TRACE: service times at speed 1 */
    const belt__trace *trace; /* TRACE: borrowed, not copied */
    uint64_t jobs;        /* jobs to admit, > 0 (TRACE: 0 = the whole
                           * trace, else at most the trace's n) */
    double max_time;      /* > 0: admit no job arriving after this virtual
                           * time (a cap for loads >= 1); 0: no cap.
                           * Admitted jobs always run to completion. */
    double warmup;        /* in [0, 1): the first floor(warmup * planned
                           * jobs) jobs by arrival order (planned: `jobs`,
                           * or the trace's length) are left out of the
                           * sojourn, wait and service statistics (not of
                           * utilisation, throughput or queue lengths) */
    belt__sim_progress_fn progress; /* NULL: none */
    void *progress_ctx;
} belt__workload;

/* The Poisson/fixed rate that makes the pool's utilisation `load`:
 * lambda = load * Σ speeds / E[S] (speeds NULL: all 1, so lambda =
 * load * n / E[S]).
 * Returns 0 when E[S] is 0 or n is 0.  Can't fail. */
double belt__rate_for_load(double load, const belt__dist *service, unsigned n,
                           const double *speeds);

/* ---- the jobs of a workload --------------------------------------------- */

/* The sequence of jobs (arrival, service) a workload and a seed give: what
 * belt__sim_run() simulates, and what live mode (experiment/live.c) submits to
 * a real pool, so that a live and a simulated run of one seed see the same
 * jobs (common random numbers).  Arrival and service times come from two
 * streams seeded from `seed`, so they do not depend on the policy. */
typedef struct belt__jobgen {
    const belt__workload *w;  /* borrowed */
    belt__rng ra, rs;         /* arrival and service streams */
    uint64_t total;           /* planned jobs: w->jobs, or the trace's n */
    uint64_t k;               /* jobs given so far */
    double t, inv_rate;       /* last arrival; 1 / w->rate */
} belt__jobgen;

/* Starts g on w (borrowed; its arrival, rate, service, trace, jobs and
 * max_time must be valid as belt__sim_run() checks them).  Can't fail. */
void belt__jobgen_init(belt__jobgen *g, const belt__workload *w,
                       uint64_t seed);

/* Stores the next job's arrival time (seconds from 0, non-decreasing) and
 * service time (at speed 1) and returns 1; returns 0 when the planned jobs
 * are all given or the next one would arrive after w->max_time. */
int belt__jobgen_next(belt__jobgen *g, double *arrival, double *service);

/* The seed the simulator gives its policy instance for run seed `seed`
 * (live mode seeds its pool's policy with it too, so random dispatch makes
 * the same choices).  Never 0. */
uint64_t belt__sim_policy_seed(uint64_t seed);

/* ---- results ------------------------------------------------------------ */

/* One sweep point's measurements (simulated or live).  Times in seconds. */
typedef struct belt__point_result {
    uint64_t jobs;          /* jobs completed (all, warm-up included) */
    uint64_t measured;      /* jobs in the sojourn/wait/service summaries */
    belt__summary sojourn;  /* completion - arrival */
    belt__summary wait;     /* start - arrival */
    belt__summary service;  /* completion - start (service / speed) */
    double makespan;        /* last completion (from t = 0) */
    double throughput;      /* jobs / (makespan - first arrival) */
    double util_mean;       /* mean of util[] */
    double jain;            /* Jain's index of util[] */
    double qlen_mean;       /* jobs waiting (not running), summed over all
                             * queues, time-averaged over the span [first
                             * arrival, makespan] */
    double qlen_max;        /* its maximum */
    uint64_t steals;        /* STEALING: successful steals; else 0 */
    unsigned n;             /* workers: length of util[] and done[] */
    double *util;           /* per worker: busy time / span (owned) */
    uint64_t *done;         /* per worker: jobs completed (owned) */
} belt__point_result;

/* Zeroes *r and allocates util[] and done[] for n workers (zero-filled).
 * Returns BELT_OK or BELT_ENOMEM (*r zeroed, nothing allocated). */
int belt__point_result_alloc(belt__point_result *r, unsigned n);

/* Frees r's arrays and zeroes *r.  NULL or zeroed r: no-op. */
void belt__point_result_free(belt__point_result *r);

/* ---- the simulator ------------------------------------------------------ */

/* Simulates workload w on `workers` (> 0) workers of the given speeds
 * (speeds NULL: all 1; else `workers` values > 0) under policy pol (params
 * pp, may be NULL), with random streams derived from seed.  On success
 * fills *out (the caller frees it with belt__point_result_free) and returns
 * BELT_OK.  Returns BELT_EINVAL (NULL argument, workers 0, a speed <= 0 or
 * not finite, rate <= 0 for POISSON/RATE, jobs 0 for non-TRACE, TRACE
 * without a trace, warmup outside [0, 1), max_time < 0, a policy without
 * init/free (or pick, unless SHARED; or victim, if STEALING)), an error of
 * pol->init(), or BELT_ENOMEM; *out is then zeroed and nothing is left
 * allocated.  Same arguments, same results, bit for bit. */
int belt__sim_run(const belt__policy *pol, const belt__policy_params *pp,
                  unsigned workers, const double *speeds,
                  const belt__workload *w, uint64_t seed,
                  belt__point_result *out);

#endif /* BELT_SIM_H */
