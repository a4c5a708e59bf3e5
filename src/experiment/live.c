/* experiment/live.c: live mode of `belt experiment`: one sweep point measured
 * on a real belt pool.
 *
 * What it is for: the simulator (experiment/sim.c) says what a policy does in
 * theory; live mode says what belt's implementation really does, overheads
 * included, measured the same way (belt__point_result), so the two can be
 * compared point by point.
 *
 * How a run goes:
 *   1. The workload is drawn up front, from the seed, by the simulator's
 *      own generator (belt__jobgen, experiment/sim.h: same streams, same order):
 *      arrival times
 *      (Poisson: exponential gaps of mean 1/rate; rate: evenly spaced;
 *      batch: all at 0; trace: the trace's) and service times (the point's
 *      distribution, or the trace's), until `jobs` jobs or the `max_time`
 *      cap.  One job per arrival: a built-in sleep (default) or spin job of
 *      the sampled duration, or the config's command with "{service}"
 *      replaced by the duration in seconds.
 *   2. A pool is started with the point's policy, workers, d and seed; its
 *      queues are deep enough that submit does not block (up to 65536 per
 *      queue), and its results channel is unbounded.
 *   3. The arrival thread submits job i at T0 + arrival[i], sleeping with
 *      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) in between: that is
 *      pacing, not coordination (a late wake-up only delays a submit, and
 *      that lateness is measured).  After the last job it sends NULL on the
 *      results channel.
 *   4. The calling thread receives every result.  The NULL tells it how
 *      many jobs were submitted (the send orders the count's write before
 *      the read); it stops when it has that many results, then shuts the
 *      pool down and joins the arrival thread.
 *   5. The result: per job, sojourn = end - (T0 + arrival), wait = start -
 *      (T0 + arrival), service = end - start, from the executor's
 *      CLOCK_REALTIME stamps and the realtime instant of T0 (read next to
 *      the monotonic one); per worker, busy time and jobs from each result's
 *      worker; queue length = jobs arrived and not yet started, integrated
 *      over time.  Scheduling overhead comes out as two means: submit
 *      lateness (the submit's stamp - the planned arrival) and service
 *      overrun (measured - requested service: timer slack, wake-up,
 *      executor).
 *
 * Worker speeds: which worker runs a job is not known when it is
 * submitted, so the pool itself scales sleep and spin jobs
 * (belt__pool_set_speeds: a job of duration d takes d / speed on a worker
 * of that speed), as the simulator does.  Commands cannot be scaled: a
 * point with both "speeds" and "command" returns BELT_ENOTSUP.
 *
 * Threads: the caller's thread and one arrival thread, always joined.  The
 * arrays of the workload are written before the thread starts and only
 * read afterwards; `submitted` is written by the arrival thread before it
 * sends NULL and read by the collector after receiving it.
 */
#include "experiment/experiment.h"

#include "belt/error.h"
#include "belt/pool.h"
#include "util/buf.h"
#include "pool/hooks.h"
#include "util/clock.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define MAX_LIVE_JOBS 10000000u

#define MAX_QUEUE 65536u

typedef struct live_run {
    size_t n;              /* jobs drawn */
    double *arrival;       /* n, seconds from T0 */
    double *service;       /* n, requested seconds */
    belt_job *jobs;        /* n */
    char **cmd;            /* n commands, or NULL */
    belt_pool *pool;
    belt_chan *results;
    int64_t t0_mono, t0_real;
    size_t submitted;      /* see the top: written before the NULL */
    int submit_error;      /* first submit failure, or BELT_OK */
} live_run;

/* ---- step 1: the workload ----------------------------------------------- */

/* Draws the point's jobs with the simulator's generator (experiment/sim.h), so
 * that a live and a simulated run of one seed see the same jobs: their
 * difference is then the implementation's, not sampling noise. */
static int draw(live_run *r, const belt__exp_point *pt, uint64_t seed)
{
    belt__workload wl;
    belt__exp_workload(pt, &wl);
    belt__jobgen g;
    belt__jobgen_init(&g, &wl, seed);
    belt__trace w = { .n = 0 };
    size_t cap = 0;
    int rc = BELT_OK;
    double a, s;
    while (belt__jobgen_next(&g, &a, &s)) {
        if (w.n >= MAX_LIVE_JOBS) {
            rc = BELT_EINVAL;
            break;
        }
        if ((rc = belt__trace_append(&w, &cap, a, s)) != BELT_OK)
            break;
    }
    /* r owns what was drawn, even on failure (freed with r). */
    r->n = w.n;
    r->arrival = w.arrival;
    r->service = w.service;
    if (rc != BELT_OK)
        return rc;
    return r->n > 0 ? BELT_OK : BELT_EINVAL;
}

static int make_jobs(live_run *r, const belt__exp_point *pt)
{
    r->jobs = calloc(r->n, sizeof *r->jobs);
    if (r->jobs == NULL)
        return BELT_ENOMEM;
    if (pt->command != NULL && (r->cmd = calloc(r->n, sizeof *r->cmd)) == NULL)
        return BELT_ENOMEM;
    for (size_t i = 0; i < r->n; i++) {
        belt_job *j = &r->jobs[i];
        belt_job_init(j);
        j->seq = i;
        j->output = BELT_OUTPUT_DISCARD;
        if (pt->command == NULL) {
            j->kind = pt->spin ? BELT_JOB_SPIN : BELT_JOB_SLEEP;
            j->duration_ns = (int64_t)llround(r->service[i] * 1e9);
            continue;
        }
        /* "{service}": the sampled duration in seconds. */
        belt__buf b = { 0 };
        char secs[32];
        snprintf(secs, sizeof secs, "%.6f", r->service[i]);
        for (const char *c = pt->command; *c != '\0';) {
            if (strncmp(c, "{service}", 9) == 0) {
                belt__buf_adds(&b, secs);
                c += 9;
            } else {
                belt__buf_addc(&b, *c++);
            }
        }
        if (b.oom) {
            belt__buf_free(&b);
            return BELT_ENOMEM;
        }
        r->cmd[i] = b.p;
        j->kind = BELT_JOB_EXEC;
        j->run = r->cmd[i];
    }
    return BELT_OK;
}

/* ---- step 3: the arrival thread ----------------------------------------- */

static void *arrivals(void *arg)
{
    live_run *r = arg;
    size_t i = 0;
    int rc = BELT_OK;
    for (; i < r->n; i++) {
        int64_t at = r->t0_mono + (int64_t)llround(r->arrival[i] * 1e9);
        struct timespec ts = belt__timespec(at);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        if ((rc = belt_pool_submit(r->pool, &r->jobs[i])) != BELT_OK)
            break;
    }
    r->submitted = i;
    r->submit_error = rc;
    belt_result *end = NULL;
    /* The results channel is unbounded: this send cannot block or fail
     * while the collector holds its reference. */
    (void)belt_chan_send(r->results, &end);
    return NULL;
}

/* ---- step 5: the measurements ------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Time-average and maximum of the number of jobs arrived and not started,
 * over [0, span]: arrivals are sorted; starts are sorted here. */
static void queue_length(const double *arr, double *start, size_t n,
                         double span, double *mean, double *max)
{
    qsort(start, n, sizeof *start, cmp_double);
    double area = 0, last = 0;
    long q = 0, qmax = 0;
    size_t i = 0, j = 0;
    while (i < n || j < n) {
        bool is_start = j < n && (i == n || start[j] <= arr[i]);
        double t = is_start ? start[j] : arr[i];
        area += (double)q * (t - last);
        last = t;
        if (is_start) {
            q--;
            j++;
        } else {
            q++;
            i++;
        }
        if (q > qmax)
            qmax = q;
    }
    *mean = span > 0 ? area / span : 0;
    *max = (double)qmax;
}

static int measure(live_run *r, belt_result **res, const belt__exp_point *pt,
                   belt__point_result *out, belt__live_extra *extra)
{
    size_t n = r->submitted;
    int rc = belt__point_result_alloc(out, pt->workers);
    if (rc != BELT_OK)
        return rc;
    belt__hist hs, hw, hv;
    double *start = malloc((n ? n : 1) * sizeof *start);
    if (start == NULL || belt__hist_init(&hs) != BELT_OK) {
        free(start);
        belt__point_result_free(out);
        return BELT_ENOMEM;
    }
    if (belt__hist_init(&hw) != BELT_OK || belt__hist_init(&hv) != BELT_OK) {
        belt__hist_free(&hs);
        belt__hist_free(&hw);
        free(start);
        belt__point_result_free(out);
        return BELT_ENOMEM;
    }
    size_t skip = (size_t)((double)n * pt->warmup);
    double makespan = 0, late = 0, over = 0;
    double *busy = calloc(pt->workers, sizeof *busy);
    uint64_t failed = 0;
    for (size_t i = 0; i < n && busy != NULL; i++) {
        const belt_result *x = res[i];
        double st = (double)(x->started_ns - r->t0_real) / 1e9;
        double en = (double)(x->ended_ns - r->t0_real) / 1e9;
        double q = (double)(x->queued_ns - r->t0_real) / 1e9;
        start[i] = st;
        if (en > makespan)
            makespan = en;
        late += q - r->arrival[i];
        double f = 1.0;
        if (pt->speeds != NULL && x->worker >= 0 && (unsigned)x->worker < pt->workers)
            f = pt->speeds[x->worker];
        over += (en - st) - r->service[i] / f;
        if (x->status != BELT_JOB_OK)
            failed++;
        if (x->worker >= 0 && (unsigned)x->worker < pt->workers) {
            busy[x->worker] += en - st;
            out->done[x->worker]++;
        }
        if (i >= skip) {
            belt__hist_add(&hs, en - r->arrival[i]);
            belt__hist_add(&hw, st - r->arrival[i]);
            belt__hist_add(&hv, en - st);
        }
    }
    out->jobs = n;
    out->measured = n > skip ? n - skip : 0;
    belt__hist_summary(&hs, &out->sojourn);
    belt__hist_summary(&hw, &out->wait);
    belt__hist_summary(&hv, &out->service);
    out->makespan = makespan;
    double span = n > 0 ? makespan - r->arrival[0] : 0;
    out->throughput = span > 0 ? (double)n / span : 0;
    double sum = 0;
    for (unsigned w = 0; busy != NULL && w < pt->workers; w++) {
        out->util[w] = makespan > 0 ? busy[w] / makespan : 0;
        sum += out->util[w];
    }
    out->util_mean = sum / pt->workers;
    out->jain = belt__jain(out->util, pt->workers);
    queue_length(r->arrival, start, n, makespan, &out->qlen_mean, &out->qlen_max);
    if (extra != NULL) {
        extra->lateness_mean = n ? late / (double)n : 0;
        extra->overrun_mean = n ? over / (double)n : 0;
        extra->failed = failed;
    }
    belt__hist_free(&hs);
    belt__hist_free(&hw);
    belt__hist_free(&hv);
    free(start);
    if (busy == NULL) {
        belt__point_result_free(out);
        return BELT_ENOMEM;
    }
    free(busy);
    return BELT_OK;
}

/* ---- the run ------------------------------------------------------------ */

static void run_free(live_run *r)
{
    if (r->cmd != NULL)
        for (size_t i = 0; i < r->n; i++)
            free(r->cmd[i]);
    free(r->cmd);
    free(r->jobs);
    free(r->arrival);
    free(r->service);
}

int belt__live_run(const belt__exp_point *pt, uint64_t seed,
                   belt__sim_progress_fn progress, void *ctx,
                   belt__point_result *out, belt__live_extra *extra)
{
    if (pt == NULL || out == NULL)
        return BELT_EINVAL;
    memset(out, 0, sizeof *out);
    if (extra != NULL)
        memset(extra, 0, sizeof *extra);
    if (pt->speeds != NULL && pt->command != NULL)
        return BELT_ENOTSUP;
    live_run r = { 0 };
    int rc = draw(&r, pt, seed);
    if (rc == BELT_OK)
        rc = make_jobs(&r, pt);
    belt_result **res = NULL;
    if (rc == BELT_OK && (res = calloc(r.n, sizeof *res)) == NULL)
        rc = BELT_ENOMEM;
    if (rc == BELT_OK && (r.results = belt_chan_unbounded(sizeof(belt_result *))) == NULL)
        rc = BELT_ENOMEM;
    /* Timer slack: Linux lets a sleep end up to 50us late by default, per
     * sleep; threads inherit the slack of the thread that creates them, so
     * the pool's workers and the arrival thread get 1ns, and the caller's
     * own slack is put back afterwards. */
    int old_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    if (old_slack > 0)
        prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    if (rc == BELT_OK) {
        belt_pool_options o;
        belt_pool_options_init(&o);
        o.workers = pt->workers;
        o.policy = pt->policy;
        o.d = pt->d;
        o.seed = belt__sim_policy_seed(seed);
        o.queue_capacity = r.n < MAX_QUEUE ? r.n : MAX_QUEUE;
        rc = belt_pool_create(&r.pool, &o, r.results);
        if (rc == BELT_OK && pt->speeds != NULL &&
            (rc = belt__pool_set_speeds(r.pool, pt->speeds)) != BELT_OK) {
            belt_pool_free(r.pool);
            r.pool = NULL;
        }
    }
    if (rc != BELT_OK) {
        if (old_slack > 0)
            prctl(PR_SET_TIMERSLACK, (unsigned long)old_slack, 0, 0, 0);
        free(res);
        belt_chan_free(r.results);
        run_free(&r);
        return rc;
    }

    /* T0 a little ahead, so that the first arrival is not already late. */
    int64_t m0 = belt__clock_ns(CLOCK_MONOTONIC), rl = belt__clock_ns(CLOCK_REALTIME);
    r.t0_mono = m0 + 20000000;
    r.t0_real = rl + 20000000;
    pthread_t th;
    int err = pthread_create(&th, NULL, arrivals, &r);
    if (old_slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)old_slack, 0, 0, 0);
    if (err != 0) {
        belt_pool_free(r.pool);
        free(res);
        belt_chan_free(r.results);
        run_free(&r);
        errno = err;
        return BELT_ESYS;
    }
    size_t got = 0;
    bool all_sent = false;
    while (!all_sent || got < r.submitted) {
        belt_result *x = NULL;
        if (belt_chan_recv(r.results, &x) != BELT_OK)
            break;
        if (x == NULL) {
            all_sent = true;
            continue;
        }
        if (x->seq < r.n && res[x->seq] == NULL) {
            res[x->seq] = x;
            got++;
        } else {
            belt_result_free(x);
        }
        if (progress != NULL && (got & 255) == 0)
            progress(ctx, got, r.n);
    }
    pthread_join(th, NULL);
    belt_pool_shutdown(r.pool);
    uint64_t steals = belt__pool_steals(r.pool);
    belt_pool_free(r.pool);
    if (progress != NULL)
        progress(ctx, got, r.n);

    rc = r.submit_error;
    if (rc == BELT_OK && got < r.submitted)
        rc = BELT_EIO;
    if (rc == BELT_OK)
        rc = measure(&r, res, pt, out, extra);
    if (rc == BELT_OK)
        out->steals = steals;
    for (size_t i = 0; i < r.n; i++)
        belt_result_free(res[i]);
    free(res);
    belt_chan_free(r.results);
    run_free(&r);
    return rc;
}
