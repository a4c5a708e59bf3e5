/* engine.c: the engine of `belt run`: it feeds a pool and collects its
 * results, for both config mode (run.c) and command mode (quick.c), which
 * hand it their jobs through a belt__source (run.h).
 *
 * The engine is one thread, the dispatcher, and it owns everything: the
 * scheduler, the pool, the results channel, the output files.  Its loop:
 *
 *   1. write the results of jobs that will not run (skipped, canceled);
 *   2. submit ready jobs while fewer than `cap` are in flight (2 per worker,
 *      more with the shared queue, 1 per worker with --halt-on-error: see
 *      in_flight_cap());
 *   3. wait for one result (or a new job from the input, in command mode) with a
 *      timeout that is the time until the progress line is due, take every
 *      other result already there, and write them all.
 *
 * Why it cannot deadlock: the results channel is unbounded, so a worker
 * never blocks handing back a result, and the pool is created with job
 * queues of `cap` slots each.  A queue holds only jobs in flight, and the
 * engine never has `cap` or more in flight, so belt_pool_submit()
 * never finds a full queue and never blocks: the engine is always either
 * doing short work or waiting on the results channel.  That bound also
 * keeps every worker fed (one job running, one waiting each) while the
 * scheduler holds only jobs in flight.
 *
 * Jobs are submitted as copies (a `slot`: the copy plus the original job)
 * so the CLI's --timeout and --retries can override the config's values
 * without touching jobs the scheduler owns.  When a result comes back the
 * engine points r->job back at the original, serialises the record, and only
 * then calls belt_sched_done(), which frees the job.
 *
 * Command mode (quick.c) adds hooks, all called on this thread: prepare()
 * just before a job is submitted (its job slot, environment, a --timeout
 * percentage), info() before a result is written (the job log's Seq and
 * command, the record's arguments, the tag of its output lines), halt()
 * after done() (GNU parallel's --halt: stop dispatching, or also cancel the
 * running jobs).  Job output that cannot be written because stdout was
 * closed stops the run like an interrupt and the engine returns
 * BELT__EXIT_STDOUT_CLOSED; with --line-buffer, where the workers write to
 * stdout themselves, the engine notices the same from POLLERR on fd 1.
 * Every canceled result, whether it was running, queued in the pool or
 * never handed out, gets the one message "canceled: <why the run stopped>".
 *
 * Interruption (run_signal.c): the signal thread wakes the engine by sending
 * NULL on the results channel.  The engine then stops dispatching, cancels
 * the scheduler (every job not handed out becomes a "canceled" record),
 * calls belt_pool_cancel() (running jobs' process groups get SIGTERM, then
 * SIGKILL after their grace period; every job in flight comes back as a
 * result), writes everything and exits 128 + the signal number.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "belt/error.h"
#include "belt/pool.h"
#include "cli/run.h"
#include "util/clock.h"

/* A submitted job: our copy (with CLI overrides) and the source's job. */
struct slot {
    belt_job copy;          /* first: a result's job pointer is &slot->copy */
    const belt_job *orig;
};

struct engine {
    const belt__run_opts *o;
    belt__source *src;
    belt_chan *results;     /* belt_result *; NULL = wake-up from signals */
    belt_pool *pool;
    belt__sig *sig;
    belt__runstats *stats;
    belt__out *out;
    belt__progress progress;
    uint64_t in_flight;     /* submitted, result not yet taken */
    uint64_t submitted, taken; /* counters, to see whether a turn moved */
    bool stopping;          /* dispatch no more */
    bool canceled;          /* belt_pool_cancel() called */
    bool failed_io;         /* a results write failed */
    bool feed_open;         /* command mode: the feed may bring more */
    bool want_lines;        /* results file open */
    bool stdout_closed;     /* job output could not be written: stopped */
    const char *stop_why;   /* why the run was stopped, or NULL */
};

/* Stops dispatching; with cancel_running, also cancels the pool. */
static void engine_stop(struct engine *e, const char *why, bool cancel_running)
{
    if (!e->stopping) {
        e->stopping = true;
        e->stop_why = why;
        if (e->src->cancel)
            e->src->cancel(e->src->ctx, why);
    }
    if (cancel_running && e->pool && !e->canceled) {
        e->canceled = true;
        belt_pool_cancel(e->pool);
    }
}

/* Takes a result: counts, logs, writes (or holds) its record, reports it
 * done to the source, frees it (or hands it to the output for its grouped
 * output).  from_pool: r->job is a slot to unwrap. */
static void engine_take(struct engine *e, belt_result *r, bool from_pool)
{
    if (from_pool) {
        struct slot *s = (struct slot *)(void *)r->job;
        r->job = s->orig;
        free(s);
        e->in_flight--;
    }
    e->taken++;
    belt__job_info info = {0};
    if (e->src->info)
        e->src->info(e->src->ctx, r, &info);
    /* One wording for every job the stop caught: running, queued in the
     * pool, or never handed out. */
    if (r->status == BELT_JOB_CANCELED && e->stop_why) {
        size_t n = strlen(e->stop_why) + sizeof "canceled: ";
        char *msg = malloc(n);
        if (msg) {
            snprintf(msg, n, "canceled: %s", e->stop_why);
            free(r->error);
            r->error = msg;
        }
    }
    bool resumed = e->src->resumed && e->src->resumed(r);
    belt__runstats_add(e->stats, r, resumed);
    belt__pending p = {.seq = r->seq, .tag = info.tag, .tag_len = info.tag_len};
    belt__out_joblog_pending(e->out, r,
                             info.log_seq ? info.log_seq : r->seq + 1,
                             info.command, &p);
    if (e->want_lines &&
        belt__out_record_args(e->out, r, resumed, info.command, info.args,
                              info.nargs, &p) != 0)
        e->failed_io = true;
    if (e->o->command_mode && !e->o->quiet &&
        (r->status == BELT_JOB_ERROR || r->status == BELT_JOB_TIMEOUT) &&
        r->error) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt: job %s: %s\n",
                r->job && r->job->id ? r->job->id : "?", r->error);
    }
    bool bad = !resumed && r->status != BELT_JOB_OK;

    e->src->done(e->src->ctx, r);
    r->job = NULL;
    if (e->src->group_output)
        p.r = r;
    else
        belt_result_free(r);
    if (belt__out_put(e->out, p) != 0 && !e->failed_io) {
        e->failed_io = true;
        if (belt__out_stdout_closed(e->out)) {
            e->stdout_closed = true;
            engine_stop(e, "stdout was closed", true);
        } else {
            engine_stop(e, "results could not be written", true);
        }
    }
    if (bad && e->src->halt_in_engine && e->o->halt_on_error)
        engine_stop(e, "halted after a job did not succeed", false);
    if (e->src->halt) {
        int h = e->src->halt(e->src->ctx);
        if (h > 0)
            engine_stop(e, "halted (--halt)", h > 1);
    }
}

/* --line-buffer: the executor writes to fd 1 itself; a pipe whose reader
 * went away shows as POLLERR on its write end. */
static void engine_watch_stdout(struct engine *e)
{
    if (!e->src->watch_stdout || e->stdout_closed)
        return;
    struct pollfd pf = {.fd = STDOUT_FILENO, .events = 0};
    if (poll(&pf, 1, 0) == 1 && (pf.revents & POLLERR)) {
        e->stdout_closed = true;
        engine_stop(e, "stdout was closed", true);
    }
}

/* Submits one job (a copy with the CLI's overrides). */
static void engine_submit(struct engine *e, const belt_job *job)
{
    struct slot *s = malloc(sizeof *s);
    if (s == NULL) {
        belt_result *r = belt_result_new(job);
        if (r) {
            r->error = strdup("out of memory");
            engine_take(e, r, false);
        }
        return;
    }
    s->copy = *job;
    s->orig = job;
    if (e->o->have_timeout)
        s->copy.timeout_ns = e->o->timeout_ns;
    if (e->o->have_retries) {
        s->copy.retries = e->o->retries;
        if (e->o->command_mode)
            s->copy.retry_delay_ns = e->o->retry_delay_ns;
    }
    if (e->src->prepare)
        e->src->prepare(e->src->ctx, job, &s->copy);
    e->in_flight++;
    e->submitted++;
    int rc = belt_pool_submit(e->pool, &s->copy);
    if (rc != BELT_OK) {
        /* Not taken: give it a result of our own. */
        belt_result *r = belt_result_new(&s->copy);
        if (r == NULL) {
            e->in_flight--;
            free(s);
            return;
        }
        r->status = rc == BELT_CLOSED ? BELT_JOB_CANCELED : BELT_JOB_ERROR;
        r->error = strdup(rc == BELT_CLOSED ? "canceled before it started"
                                            : belt_strerror(rc));
        engine_take(e, r, true);
    }
}

/* How many jobs may be in flight (submitted, result not taken).  Queues
 * hold only jobs in flight, so a queue of this capacity is never full.
 *   - 2 per worker: one running, one waiting, so no worker idles while the
 *     engine turns around;
 *   - with the shared queue, at least SHARED_WINDOW: short jobs (noop,
 *     sleep 1ms, `true`) then come back in batches and the engine and the
 *     workers wake each other up far less often (3-4x the throughput for
 *     noop jobs).  Any free worker takes the next job from a shared queue,
 *     so a deeper one delays nobody;
 *   - per-worker policies keep 2 per worker: a deep queue behind one
 *     worker's long job would hold jobs that another worker could run;
 *   - --halt-on-error: 1 per worker, so that no job sits in a queue,
 *     already handed out, when another one fails. */
#define SHARED_WINDOW 64

static uint64_t in_flight_cap(const belt__run_opts *o,
                              const belt__source *src)
{
    uint64_t w = o->workers;
    if (src->max_in_flight)
        return src->max_in_flight;
    if (o->halt_on_error)
        return w;
    if (o->policy == NULL || strcmp(o->policy, "shared") == 0)
        return 2 * w > SHARED_WINDOW ? 2 * w : SHARED_WINDOW;
    return 2 * w;
}

/* True while the engine may submit one more job. */
static bool engine_room(const struct engine *e, uint64_t cap)
{
    if (e->stopping || e->in_flight >= cap)
        return false;
    size_t win = e->src->order_window;
    return win == 0 || e->in_flight + belt__out_held(e->out) < win;
}

/* Takes the next job from the source, or NULL. */
static const belt_job *engine_next(struct engine *e)
{
    if (e->src->next)
        return e->src->next(e->src->ctx);
    if (!e->feed_open)
        return NULL;
    belt_job *job;
    int rc = belt_chan_try_recv(e->src->feed, &job);
    if (rc == BELT_OK)
        return job;
    if (rc == BELT_CLOSED)
        e->feed_open = false;
    return NULL;
}

/* Handles a value received on the results channel. */
static void engine_received(struct engine *e, belt_result *r)
{
    if (r != NULL)
        engine_take(e, r, true);
    /* NULL: a wake-up from the signal thread; the loop looks at it. */
}

int belt__run_engine(const belt__run_opts *o, belt__source *src)
{
    struct engine e;
    memset(&e, 0, sizeof e);
    e.o = o;
    e.src = src;
    e.feed_open = src->feed != NULL;
    int status = 0;
    int64_t t0 = belt__now_mono();
    bool show = !o->quiet && (o->progress > 0 ||
                              (o->progress == 0 && isatty(STDERR_FILENO)));
    belt__progress_init(&e.progress, show, src->total, t0);
    e.progress.bar = o->command_mode && o->cmd.bar;

    const char *results_path = o->results_path;
    if (results_path == NULL && o->config_path)
        results_path = "belt-results.jsonl";
    e.want_lines = results_path != NULL;
    if (belt__out_open(&e.out, o, results_path, o->keep_order,
                       &e.progress) != 0)
        return 2;

    e.stats = belt__runstats_new();
    e.results = belt_chan_unbounded(sizeof(belt_result *));
    if (e.stats == NULL || e.results == NULL) {
        fprintf(stderr, "belt run: out of memory\n");
        belt__runstats_free(e.stats);
        belt_chan_free(e.results);
        belt__out_close(e.out);
        return 1;
    }

    uint64_t cap = in_flight_cap(o, src);
    belt_pool_options po;
    belt_pool_options_init(&po);
    po.workers = o->workers;
    po.policy = o->policy;
    po.queue_capacity = (size_t)cap; /* submit never blocks: see the essay */
    /* Signals first: the workers must inherit the blocked mask. */
    if (belt__sig_start(&e.sig, e.results) != 0) {
        fprintf(stderr, "belt run: cannot set up signal handling: %s\n",
                strerror(errno));
        e.sig = NULL; /* run on, without the graceful interrupt */
    }

    int rc = belt_pool_create(&e.pool, &po, e.results);
    if (rc != BELT_OK) {
        fprintf(stderr, "belt run: cannot start %u workers: %s\n",
                o->workers, belt_strerror(rc));
        belt__runstats_free(e.stats);
        belt_chan_free(e.results);
        belt__out_close(e.out);
        belt__sig_stop(e.sig);
        return rc == BELT_EINVAL ? 2 : 1;
    }

    bool stuck = false;
    for (;;) {
        int signo = belt__sig_caught(e.sig);
        if (signo && !e.canceled) {
            belt__progress_clear(&e.progress);
            if (!o->quiet)
                fprintf(stderr, "belt: %s: stopping, canceling %" PRIu64
                        " job%s in flight (again to kill at once)\n",
                        signo == SIGINT ? "interrupted" : "terminated",
                        e.in_flight, e.in_flight == 1 ? "" : "s");
            engine_stop(&e, signo == SIGINT ? "interrupted by SIGINT"
                                            : "terminated by SIGTERM", true);
        }

        /* 1. jobs that will not run; 2. jobs that may run now. */
        uint64_t moved = e.taken + e.submitted;
        if (src->unrun) {
            belt_result *u;
            while ((u = src->unrun(src->ctx)) != NULL)
                engine_take(&e, u, false);
        }
        bool room = false;
        while ((room = engine_room(&e, cap))) {
            const belt_job *job = engine_next(&e);
            if (job == NULL)
                break;
            engine_submit(&e, job);
        }

        if (e.in_flight == 0) {
            if (src->next) {
                if (src->finished(src->ctx))
                    break;
                if (e.taken + e.submitted != moved)
                    continue; /* something moved: look again */
                /* Nothing running, ready or unrun, and not finished: the
                 * scheduler would never move again. */
                stuck = true;
                break;
            }
            if (!e.feed_open || e.stopping)
                break;
        }

        /* About to wait: the lines taken so far go out first. */
        if (belt__out_write_lines(e.out) != 0 && !e.failed_io) {
            e.failed_io = true;
            engine_stop(&e, "results could not be written", true);
        }
        int64_t now = belt__now_mono();
        int64_t wait = belt__progress_wait_ns(&e.progress, now);
        belt_result *r = NULL;
        if (src->feed && e.feed_open && room) {
            /* Quick mode with room: wait for a result or an input line. */
            belt_job *job = NULL;
            belt_op ops[2] = {belt_op_recv(e.results, &r),
                              belt_op_recv(src->feed, &job)};
            int i = belt_select(ops, 2, wait);
            if (i == 0 && ops[0].status == BELT_OK)
                engine_received(&e, r);
            else if (i == 1 && ops[1].status == BELT_OK)
                engine_submit(&e, job);
            else if (i == 1)
                e.feed_open = false;
        } else if (belt_chan_recv_timeout(e.results, &r, wait) == BELT_OK) {
            engine_received(&e, r);
        }
        /* Take everything else that is already there. */
        while (belt_chan_try_recv(e.results, &r) == BELT_OK)
            engine_received(&e, r);
        engine_watch_stdout(&e);
        /* In flight = running + queued; at most `workers` run. */
        belt__progress_draw(&e.progress, e.stats,
                            e.in_flight < o->workers ? e.in_flight
                                                     : o->workers,
                            belt__now_mono(), false);
    }
    if (stuck) {
        belt__progress_clear(&e.progress);
        fprintf(stderr, "belt run: internal error: jobs remain but none can "
                "run (scheduler stalled)\n");
        status = 1;
    }

    int64_t wall = belt__now_mono() - t0;
    unsigned nw = belt_pool_workers(e.pool);
    int64_t *busy = nw ? calloc(nw, sizeof *busy) : NULL;
    belt_pool_shutdown(e.pool);
    if (busy)
        belt_pool_busy(e.pool, busy, nw);
    belt_pool_free(e.pool);
    int signo = belt__sig_caught(e.sig);
    belt__sig_stop(e.sig);
    /* Only wake-ups can be left; results were all taken. */
    belt_result *left;
    while (belt_chan_try_recv(e.results, &left) == BELT_OK)
        if (left)
            belt_result_free(left);
    belt_chan_free(e.results);

    if (belt__out_close(e.out) != 0)
        e.failed_io = true;
    src->io_failed = e.failed_io;
    belt__progress_clear(&e.progress);
    bool summary = !o->quiet && (o->command_mode
                                     ? o->progress > 0
                                     : o->config_path || isatty(STDERR_FILENO));
    if (summary)
        belt__runstats_summary(e.stats, stderr, wall, busy, nw);
    free(busy);

    if (signo)
        status = 128 + signo;
    else if (e.stdout_closed)
        status = BELT__EXIT_STDOUT_CLOSED;
    else if (status == 0 &&
             (e.failed_io || belt__runstats_unsuccessful(e.stats) > 0))
        status = 1;
    belt__runstats_free(e.stats);
    return status;
}

