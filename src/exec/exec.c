/* exec/exec.c: the executor's front: a job's attempts, retries and backoff,
 * the built-in kinds (noop, sleep, spin), and belt_run_job().
 *
 * Attempts: attempt 1 runs at once; after a FAILED or TIMEOUT attempt, while
 * retries are left, the executor waits a backoff delay and tries again.
 * ERROR (belt could not run it: the same would happen again) and CANCELED
 * end the job.  Every attempt is appended to the result's attempt_log; the
 * result's status, codes, duration and output are the last attempt's.
 *
 * Backoff: the k-th retry's delay is d = retry_delay_ns * 2^(k-1), capped at
 * retry_max_delay_ns (30 s when unset), with "equal jitter" (AWS's term):
 * the wait is d/2 plus a uniform random part of up to d/2.  Unlike "full
 * jitter" (uniform in [0, d]) this keeps at least half the delay, so a
 * retry is never immediate by chance, while still spreading out jobs that
 * failed together.  The random numbers come from a splitmix64 state local
 * to the call, seeded from the clock, the job's seq and the worker (no
 * global state, no locks).
 *
 * Waiting (backoff, sleep jobs) is a ppoll() on the cancel token's eventfd
 * with the remaining time as timeout, so cancel ends it at once; without a
 * token it is clock_nanosleep() to an absolute CLOCK_MONOTONIC deadline.
 *
 * Spin jobs burn the worker thread's CPU until it has used duration_ns of
 * CPU time (CLOCK_THREAD_CPUTIME_ID), looking at the cancel flag and the
 * clocks between chunks of about 50 µs of arithmetic.
 */
#include "exec/internal.h"
#include "util/rng.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers shared by the executor's files ----------------------- */

void belt__set_error(belt_result *r, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    free(r->error);
    r->error = NULL;
    if (n < 0)
        return;
    char *msg = malloc((size_t)n + 1);
    if (msg == NULL)
        return;
    if ((size_t)n < sizeof small) {
        memcpy(msg, small, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    r->error = msg;
}

/* ---- waiting ------------------------------------------------------------ */

/* Waits until the CLOCK_MONOTONIC deadline, or until cancel fires.  Returns
 * true if canceled (checked first: a fired token returns at once). */
static bool wait_until(belt__cancel *cancel, int64_t deadline)
{
    for (;;) {
        if (belt__cancel_fired(cancel))
            return true;
        int64_t now = belt__now_mono();
        if (now >= deadline)
            return false;
        if (cancel != NULL && cancel->wake_fd >= 0) {
            int64_t d = deadline - now;
            struct timespec ts = belt__timespec(d);
            struct pollfd p = { .fd = cancel->wake_fd, .events = POLLIN };
            if (ppoll(&p, 1, &ts, NULL) >= 0 || errno == EINTR || errno == EAGAIN)
                continue;
            /* ppoll itself failed (ENOMEM): sleep without the wake-up rather
             * than spin; cancel is seen at the deadline. */
        }
        struct timespec abs = belt__timespec(deadline);
        (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
    }
}

/* The wait before retry number `k` (1 for the first retry). */
static int64_t backoff_ns(const belt_job *job, unsigned k, uint64_t *rng)
{
    int64_t cap = job->retry_max_delay_ns > 0 ? job->retry_max_delay_ns
                                              : BELT__DEFAULT_RETRY_MAX_NS;
    int64_t d = job->retry_delay_ns;
    if (d <= 0)
        return 0;
    if (d > cap)
        d = cap;
    for (unsigned i = 1; i < k && d < cap; i++)
        d = d > cap / 2 ? cap : d * 2;
    int64_t half = d / 2;
    return half + (int64_t)(belt__splitmix64(rng) % (uint64_t)(d - half + 1));
}

/* ---- built-in kinds ----------------------------------------------------- */

static void set_timeout_error(belt_result *r, const belt_job *job)
{
    char d[32];
    belt__format_duration(job->timeout_ns, d, sizeof d);
    belt__set_error(r, "timed out after %s", d);
}

static void run_sleep(const belt_job *job, belt__cancel *cancel,
                      belt_result *r, belt_attempt *a, int64_t t0)
{
    int64_t end = belt__add_sat(t0, job->duration_ns);
    int64_t tdl = job->timeout_ns > 0 ? belt__add_sat(t0, job->timeout_ns)
                                      : INT64_MAX;
    bool timeout_first = tdl < end;
    if (wait_until(cancel, timeout_first ? tdl : end)) {
        a->status = BELT_JOB_CANCELED;
        belt__set_error(r, "canceled");
    } else if (timeout_first) {
        a->status = BELT_JOB_TIMEOUT;
        set_timeout_error(r, job);
    } else {
        a->status = BELT_JOB_OK;
        a->exit_code = 0;
    }
}

static void run_spin(const belt_job *job, belt__cancel *cancel,
                     belt_result *r, belt_attempt *a, int64_t t0)
{
    int64_t cpu_end = belt__add_sat(belt__clock_ns(CLOCK_THREAD_CPUTIME_ID),
                                    job->duration_ns);
    int64_t tdl = job->timeout_ns > 0 ? belt__add_sat(t0, job->timeout_ns)
                                      : INT64_MAX;
    uint64_t x = (uint64_t)t0;
    for (;;) {
        /* Relaxed would do (we only need to see it eventually); the acquire
         * load costs nothing on x86 and keeps one definition of "fired". */
        if (belt__cancel_fired(cancel)) {
            a->status = BELT_JOB_CANCELED;
            belt__set_error(r, "canceled");
            return;
        }
        if (belt__clock_ns(CLOCK_THREAD_CPUTIME_ID) >= cpu_end) {
            a->status = BELT_JOB_OK;
            a->exit_code = 0;
            return;
        }
        if (tdl != INT64_MAX && belt__now_mono() >= tdl) {
            a->status = BELT_JOB_TIMEOUT;
            set_timeout_error(r, job);
            return;
        }
        for (int i = 0; i < 50000; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            __asm__ __volatile__("" : "+r"(x)); /* keep the loop */
        }
    }
}

/* One attempt of any kind.  Fills *a and r's error and output fields. */
static void run_attempt(const belt_job *job, const belt__cmd *cmd,
                        belt__cancel *cancel, belt_result *r, belt_attempt *a)
{
    if (job->kind == BELT_JOB_EXEC) {
        belt__exec_attempt(job, cmd, cancel, r, a);
        return;
    }
    a->status = BELT_JOB_ERROR;
    a->exit_code = -1;
    a->signal = 0;
    a->started_ns = belt__now_real();
    if (job->kind == BELT_JOB_NOOP) {
        /* A noop takes no measurable time: one clock read, not four.  On a
         * VM a clock read costs ~60 ns, as much as the rest of the job's
         * trip through the pool (see doc/benchmarks.md, the pool benchmark). */
        a->status = BELT_JOB_OK;
        a->exit_code = 0;
        a->ended_ns = a->started_ns;
        a->duration_ns = 0;
        return;
    }
    int64_t t0 = belt__now_mono();
    if (job->kind == BELT_JOB_SLEEP) {
        run_sleep(job, cancel, r, a, t0);
    } else {
        run_spin(job, cancel, r, a, t0);
    }
    a->ended_ns = belt__now_real();
    a->duration_ns = belt__now_mono() - t0;
}

/* ---- the job ------------------------------------------------------------ */

/* Drops the previous attempt's output and message. */
static void clear_attempt_fields(belt_result *r)
{
    free(r->out);
    free(r->err);
    free(r->out_path);
    free(r->err_path);
    free(r->error);
    r->out = r->err = r->out_path = r->err_path = r->error = NULL;
    r->out_len = r->err_len = 0;
    r->out_truncated = r->err_truncated = false;
    if (r->out_fd >= 0)
        close(r->out_fd);
    if (r->err_fd >= 0)
        close(r->err_fd);
    r->out_fd = r->err_fd = -1;
}

/* Ends a job that ran no attempt. */
static void no_attempt(belt_result *r, belt_job_status status)
{
    r->status = status;
    r->exit_code = -1;
    r->signal = 0;
    r->attempts = 0;
    r->started_ns = r->ended_ns = belt__now_real();
    if (r->queued_ns == 0)
        r->queued_ns = r->started_ns;
    r->duration_ns = 0;
}

void belt__exec_job_into(belt_result *r, const belt_job *job, int worker,
                         belt__cancel *cancel)
{
    r->worker = worker;
    if (job == NULL) {
        belt__set_error(r, "no job");
        no_attempt(r, BELT_JOB_ERROR);
        return;
    }
    if (belt__cancel_fired(cancel)) {
        belt__set_error(r, "canceled before it started");
        no_attempt(r, BELT_JOB_CANCELED);
        return;
    }
    switch (job->kind) {
    case BELT_JOB_EXEC:
    case BELT_JOB_NOOP:
        break;
    case BELT_JOB_SLEEP:
    case BELT_JOB_SPIN:
        if (job->duration_ns < 0) {
            belt__set_error(r, "negative duration");
            no_attempt(r, BELT_JOB_ERROR);
            return;
        }
        break;
    default:
        belt__set_error(r, "unknown job kind %d", (int)job->kind);
        no_attempt(r, BELT_JOB_ERROR);
        return;
    }
    belt__cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    if (job->kind == BELT_JOB_EXEC && belt__cmd_prepare(&cmd, job, r) != 0) {
        no_attempt(r, BELT_JOB_ERROR);
        return;
    }

    uint64_t rng = 0; /* seeded at the first retry: most jobs never need it */
    unsigned max_attempts = job->retries == UINT_MAX ? UINT_MAX : job->retries + 1;
    size_t log_cap = 0;
    for (;;) {
        if (r->attempts == log_cap) {
            size_t want = log_cap ? log_cap * 2 : (max_attempts < 4 ? max_attempts : 4);
            belt_attempt *log = realloc(r->attempt_log, want * sizeof *log);
            if (log == NULL) {
                if (r->attempts == 0)
                    no_attempt(r, BELT_JOB_ERROR);
                else
                    r->status = BELT_JOB_ERROR;
                belt__set_error(r, "out of memory");
                break;
            }
            r->attempt_log = log;
            log_cap = want;
        }
        belt_attempt *a = &r->attempt_log[r->attempts];
        clear_attempt_fields(r);
        run_attempt(job, &cmd, cancel, r, a);
        r->attempts++;
        if (r->attempts == 1) {
            r->started_ns = a->started_ns;
            if (r->queued_ns == 0)
                r->queued_ns = a->started_ns;
        }
        r->status = a->status;
        r->exit_code = a->exit_code;
        r->signal = a->signal;
        r->ended_ns = a->ended_ns;
        r->duration_ns = a->duration_ns;

        if ((a->status != BELT_JOB_FAILED && a->status != BELT_JOB_TIMEOUT) ||
            r->attempts >= max_attempts)
            break;
        if (rng == 0)
            rng = ((uint64_t)belt__now_mono() ^ (job->seq * 0x9E3779B97F4A7C15ull) ^
                   ((uint64_t)(unsigned)worker << 32)) | 1;
        int64_t wait = backoff_ns(job, r->attempts, &rng);
        if (wait_until(cancel, belt__add_sat(belt__now_mono(), wait))) {
            r->status = BELT_JOB_CANCELED;
            belt__set_error(r, "canceled while waiting to retry (after %u attempt%s)",
                            r->attempts, r->attempts == 1 ? "" : "s");
            r->ended_ns = belt__now_real();
            break;
        }
    }
    belt__cmd_release(&cmd);
}

belt_result *belt__exec_job(const belt_job *job, int worker, belt__cancel *cancel)
{
    belt_result *r = belt_result_new(job);
    if (r != NULL)
        belt__exec_job_into(r, job, worker, cancel);
    return r;
}

belt_result *belt_run_job(const belt_job *job, int worker)
{
    return belt__exec_job(job, worker, NULL);
}
