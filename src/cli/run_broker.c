/* run_broker.c: `belt run CONFIG --broker URL`: the jobs of a config run on
 * `belt worker` processes anywhere, through Redis Streams.
 *
 * The same source (run.h: the config's scheduler, with --resume and
 * halt-on-error) and the same output (results file, job log, progress line,
 * summary) as the local engine in run.c; only the pool is replaced by the
 * broker (src/app/broker/submit.c).  Two threads:
 *
 *   the dispatcher (this one) takes ready jobs from the scheduler, publishes
 *     them in batches (one pipelined round trip per batch of up to BATCH
 *     jobs), and takes results from the `results` channel: counts, logs,
 *     writes the worker's record as it came, reports the job done to the
 *     scheduler (which may make dependents ready);
 *   the collector reads the run's result stream (XREAD BLOCK) and sends each
 *     first result of a job on the channel (duplicates are dropped by the
 *     submitter).  When it stops for good it sends the address of
 *     engine.col_end, after setting col_rc/col_msg (the channel orders the
 *     writes before the dispatcher's reads).
 *
 * The signal thread (run_signal.c) sends NULL on the same channel, so the
 * dispatcher sleeps in exactly one place, belt_chan_recv_timeout(), with a
 * timeout that is the earlier of the next progress redraw and the next
 * publish retry.  Nothing polls.
 *
 * At most WINDOW jobs are out (published, or waiting to be published again
 * after a lost connection) at a time: enough for many remote workers, and it
 * bounds what the broker and this process hold however large the config.
 * A publish that fails with the connection lost keeps the unconfirmed jobs
 * in `retry` and tries again after a backoff (100 ms doubling to 2 s); a
 * result for a job in `retry` (its XADD did get through) takes it out.
 *
 * Interrupt (SIGINT/SIGTERM): the dispatcher stops publishing, cancels the
 * scheduler, stops the collector, takes the results already received,
 * removes the jobs still queued in the broker (belt__submit_cancel: XDEL),
 * writes them as "canceled", marks the run canceled in <ns>:runs, deletes
 * its result stream and exits 130/143.  Jobs already running on workers
 * are not stopped; their results are dropped.
 *
 * Keys: jobs are signed and results checked with the key of --key-file or
 * $BELT_KEY_FILE; without one belt refuses to start unless --insecure (then
 * it warns once).  Results a worker signed with another key are refused and
 * reported once.
 *
 * Written, then trimmed: after every write of result lines (before each
 * wait) the dispatcher tells the submitter how far the results file is
 * written, and only that much of the result stream is trimmed; with
 * --resume (the results file appended to) a run whose submitter was killed
 * is continued, with the same run id, by belt__submit_open() (the results
 * file's torn last line, if the kill cut one, is cut off first).
 *
 * No workers: when no result has come for NO_WORKER_NS while jobs are out,
 * the dispatcher looks at the workers' heartbeats and says once that none
 * is alive (and again once one is), and keeps waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "belt/chan.h"
#include "belt/error.h"
#include "app/broker/submit.h"
#include "cli/run.h"
#include "util/clock.h"

#define WINDOW 4096          /* jobs out at once (see the essay) */
#define BATCH 512            /* jobs per pipelined publish */
#define COLLECT_MAX 512      /* results per collector read */
#define RETRY_FIRST_NS 100000000LL
#define RETRY_CAP_NS 2000000000LL
#define NO_WORKER_NS 3000000000LL  /* silence before heartbeats are looked at */
#define HEARTBEAT_FRESH_S 10       /* a heartbeat this old still counts */

struct bengine {
    const belt__run_opts *o;
    belt__source *src;
    belt__submit *sub;
    belt_chan *results;      /* belt__submit_item *, NULL wake-ups, &col_end */
    belt__sig *sig;
    belt__out *out;
    belt__runstats *stats;
    belt__progress progress;

    uint64_t in_flight;      /* published, no result yet */
    uint64_t taken, published, failed;
    bool stopping;           /* no more publishing */
    bool failed_io;
    bool broken;             /* the broker is gone for good */
    int exit_status;         /* set by a fatal error, else 0 */

    /* Jobs not yet confirmed in the stream: copies (with CLI overrides)
     * and the scheduler's originals, in order. */
    belt_job *copies;
    const belt_job **origs;
    size_t n_retry;
    int64_t retry_at_ns, retry_delay_ns;
    bool said_lost;

    /* Trimming: the entry of the last item taken whose entry is done. */
    belt__broker_id taken_entry;
    bool have_taken_entry;

    /* No workers: when results last came, when heartbeats are looked at
     * next, and what was said. */
    int64_t last_result_ns, next_hb_check_ns;
    bool said_no_workers;
    uint64_t said_refused;

    /* The collector. */
    pthread_t col_thread;
    bool col_started;
    char col_end;            /* its address is the "collector ended" marker */
    int col_rc;
    char col_msg[512];
};

/* ---- the collector thread ----------------------------------------------- */

static void *collector_main(void *arg)
{
    struct bengine *e = arg;
    belt__submit_item *items[COLLECT_MAX];
    for (;;) {
        size_t got = 0;
        int rc = belt__submit_collect(e->sub, items, COLLECT_MAX, &got,
                                      e->col_msg, sizeof e->col_msg);
        for (size_t i = 0; i < got; i++)
            if (belt_chan_send(e->results, &items[i]) != BELT_OK)
                belt__submit_item_free(items[i], true);
        if (rc != BELT_OK) {
            e->col_rc = rc;
            void *mark = &e->col_end;
            (void)belt_chan_send(e->results, &mark);
            return NULL;
        }
    }
}

/* ---- taking results ----------------------------------------------------- */

/* Writes r (owned) for its job, with `line` (owned, may be NULL: then r is
 * serialised here), and reports it done to the scheduler. */
static void take(struct bengine *e, belt_result *r, char *line, size_t len)
{
    e->taken++;
    bool resumed = e->src->resumed && e->src->resumed(r);
    if (resumed && r->job != NULL)
        belt__submit_forget(e->sub, r->job->id);
    belt__runstats_add(e->stats, r, resumed);
    if (!resumed && r->status != BELT_JOB_OK)
        e->failed++;
    belt__out_joblog(e->out, r);
    belt__pending p = {.seq = r->seq, .line = line, .len = len};
    if (belt__out_record(e->out, r, resumed, &p) != 0)
        e->failed_io = true;
    e->src->done(e->src->ctx, r);
    r->job = NULL;
    belt_result_free(r);
    if (belt__out_put(e->out, p) != 0)
        e->failed_io = true;
}

/* Drops orig from the retry list if it is there.  True if it was. */
static bool retry_forget(struct bengine *e, const belt_job *orig)
{
    for (size_t i = 0; i < e->n_retry; i++)
        if (e->origs[i] == orig) {
            memmove(&e->copies[i], &e->copies[i + 1],
                    (e->n_retry - i - 1) * sizeof e->copies[0]);
            memmove(&e->origs[i], &e->origs[i + 1],
                    (e->n_retry - i - 1) * sizeof e->origs[0]);
            e->n_retry--;
            return true;
        }
    return false;
}

static void take_item(struct bengine *e, belt__submit_item *it)
{
    if (!(e->n_retry > 0 && retry_forget(e, it->job)))
        e->in_flight--;
    belt_result *r = it->r;
    char *line = it->line;
    size_t len = it->len;
    if (it->entry_last) {
        e->taken_entry = it->entry;
        e->have_taken_entry = true;
    }
    it->line = NULL;
    belt__submit_item_free(it, false);
    e->last_result_ns = belt__now_mono();
    if (e->said_no_workers) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt run: --broker: worker up: results are coming\n");
        e->said_no_workers = false;
    }
    take(e, r, line, len);
}

/* A canceled record for a job that was out (cancel and shutdown paths). */
static void take_canceled(void *ctx, const belt_job *orig)
{
    struct bengine *e = ctx;
    belt_result *r = belt_result_new(orig);
    if (r == NULL)
        return;
    r->job = orig;
    r->status = BELT_JOB_CANCELED;
    r->error = strdup("canceled: the run was stopped before its result "
                      "came back");
    e->in_flight--;
    take(e, r, NULL, 0);
}

/* Handles one value from the channel. */
static void received(struct bengine *e, void *v)
{
    if (v == NULL)
        return; /* the signal thread: the loop looks at the signal */
    if (v == &e->col_end) {
        e->col_started = false; /* it returned: join below */
        pthread_join(e->col_thread, NULL);
        if (e->col_rc != BELT_ECANCELED && !e->stopping) {
            belt__progress_clear(&e->progress);
            fprintf(stderr, "belt run: --broker: %s\n", e->col_msg);
            e->broken = true;
            e->exit_status = 1;
        }
        return;
    }
    take_item(e, v);
}

/* ---- publishing --------------------------------------------------------- */

/* Publishes what is in the retry list now. */
static void publish(struct bengine *e, int64_t now)
{
    const belt_job *jobs[BATCH];
    size_t n = e->n_retry;
    if (n > BATCH)
        n = BATCH;
    for (size_t i = 0; i < n; i++)
        jobs[i] = &e->copies[i];
    size_t done = 0;
    char msg[512];
    int rc = belt__submit_publish(e->sub, jobs, e->origs, n, &done, msg,
                                  sizeof msg);
    if (done > 0) {
        memmove(e->copies, e->copies + done,
                (e->n_retry - done) * sizeof e->copies[0]);
        memmove(e->origs, e->origs + done,
                (e->n_retry - done) * sizeof e->origs[0]);
        e->n_retry -= done;
        e->in_flight += done;
        e->published += done;
    }
    /* Jobs of an adopted run whose result had come already. */
    belt__submit_item *ready[BATCH];
    size_t nready;
    while ((nready = belt__submit_take_ready(e->sub, ready, BATCH)) > 0)
        for (size_t i = 0; i < nready; i++)
            take_item(e, ready[i]);
    if (rc == BELT_OK) {
        if (e->said_lost && !e->o->quiet) {
            belt__progress_clear(&e->progress);
            fprintf(stderr, "belt run: --broker: connected again\n");
        }
        e->said_lost = false;
        e->retry_delay_ns = 0;
        return;
    }
    if (rc == BELT_EIO) {
        if (!e->said_lost && !e->o->quiet) {
            belt__progress_clear(&e->progress);
            fprintf(stderr, "belt run: --broker: %s; retrying\n", msg);
        }
        e->said_lost = true;
        e->retry_delay_ns = e->retry_delay_ns ? 2 * e->retry_delay_ns
                                              : RETRY_FIRST_NS;
        if (e->retry_delay_ns > RETRY_CAP_NS)
            e->retry_delay_ns = RETRY_CAP_NS;
        e->retry_at_ns = now + e->retry_delay_ns;
        return;
    }
    belt__progress_clear(&e->progress);
    fprintf(stderr, "belt run: --broker: %s\n", msg);
    e->broken = true;
    e->exit_status = 1;
}

/* Moves ready jobs from the scheduler to the retry list (then published). */
static void gather(struct bengine *e)
{
    while (!e->stopping && e->n_retry < BATCH &&
           e->in_flight + e->n_retry < WINDOW) {
        const belt_job *job = e->src->next(e->src->ctx);
        if (job == NULL)
            break;
        belt_job *c = &e->copies[e->n_retry];
        *c = *job;
        if (e->o->have_timeout)
            c->timeout_ns = e->o->timeout_ns;
        if (e->o->have_retries)
            c->retries = e->o->retries;
        e->origs[e->n_retry++] = job;
    }
}

/* ---- files ------------------------------------------------------------- */

/* The absolute form of path (its folder resolved, so the same file gets the
 * same name from any working directory) into out; false when it has none
 * ("-", or a folder that does not exist). */
static bool abs_path(const char *path, char *out, size_t n)
{
    if (path == NULL || strcmp(path, "-") == 0)
        return false;
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dl = slash ? (size_t)(slash - path) : 0;
    char head[PATH_MAX];
    if (dl >= sizeof head)
        return false;
    memcpy(head, path, dl);
    head[dl] = '\0';
    if (realpath(slash == path ? "/" : slash ? head : ".", dir) == NULL)
        return false;
    return snprintf(out, n, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir,
                    base) < (int)n;
}

/* A submitter killed in the middle of a write may leave the results file
 * with a torn last line; appending after it would glue the next line to
 * it.  Cuts the file back to its last newline (the torn result is still in
 * the result stream: it was not trimmed, see the essay). */
static void cut_torn_line(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    off_t end = fstat(fd, &st) == 0 ? st.st_size : 0;
    char buf[4096];
    off_t keep = end;
    while (keep > 0) {
        off_t from = keep > (off_t)sizeof buf ? keep - (off_t)sizeof buf : 0;
        ssize_t k = pread(fd, buf, (size_t)(keep - from), from);
        if (k <= 0)
            break;
        ssize_t i = k;
        while (i > 0 && buf[i - 1] != '\n')
            i--;
        if (i > 0) {
            keep = from + i;
            break;
        }
        keep = from;
    }
    if (keep < end && ftruncate(fd, keep) == 0)
        fprintf(stderr, "belt run: %s: cut a torn last line (%lld bytes)\n",
                path, (long long)(end - keep));
    close(fd);
}

/* ---- the loop ----------------------------------------------------------- */

/* Says what a user waiting for results would want to know: once, that no
 * worker has a heartbeat (looked at after NO_WORKER_NS without results
 * while jobs are out, then every NO_WORKER_NS), and once more when one has
 * again; once, that results were refused for their signature. */
static void watch(struct bengine *e, int64_t now)
{
    char why[400];
    uint64_t refused = belt__submit_refused(e->sub, why, sizeof why);
    if (refused > 0 && e->said_refused == 0) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt run: --broker: refused a result entry not "
                "signed with our key: %s\n", why);
        e->said_refused = refused;
    }
    if (e->in_flight == 0 || now < e->next_hb_check_ns)
        return;
    e->next_hb_check_ns = now + NO_WORKER_NS;
    if (now - e->last_result_ns < NO_WORKER_NS && !e->said_no_workers)
        return;
    size_t live = 0;
    char msg[300];
    if (belt__submit_workers(e->sub, HEARTBEAT_FRESH_S, &live, msg,
                             sizeof msg) != BELT_OK)
        return; /* the connection: publish() and collect() say so */
    const char *ns = e->o->broker_ns ? e->o->broker_ns
                                     : BELT__BROKER_DEFAULT_NS;
    if (live == 0 && !e->said_no_workers) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt run: --broker: no worker has a heartbeat in "
                "%s:workers (start one: belt worker --broker URL%s%s); "
                "%" PRIu64 " job%s waiting\n", ns,
                e->o->broker_ns ? " --namespace " : "",
                e->o->broker_ns ? e->o->broker_ns : "", e->in_flight,
                e->in_flight == 1 ? "" : "s");
        e->said_no_workers = true;
    } else if (live > 0 && e->said_no_workers) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt run: --broker: %zu worker%s up\n", live,
                live == 1 ? "" : "s");
        e->said_no_workers = false;
    }
}

/* The shorter of two waits (wait < 0: none yet; w < 0: now). */
static int64_t sooner(int64_t wait, int64_t w)
{
    if (w < 0)
        w = 0;
    return wait < 0 || w < wait ? w : wait;
}

static void stop_collector(struct bengine *e)
{
    if (!e->col_started)
        return;
    belt__submit_wake(e->sub);
    pthread_join(e->col_thread, NULL);
    e->col_started = false;
}

int belt__run_broker(const belt__run_opts *o, belt__source *src)
{
    belt__broker_url url;
    char msg[768];
    if (belt__broker_url_parse(o->broker, &url, msg, sizeof msg) !=
        BELT_OK) {
        fprintf(stderr, "belt run: --broker: %s\n", msg);
        return 2;
    }
    struct bengine *e = calloc(1, sizeof *e);
    if (e)
        e->copies = calloc(BATCH, sizeof *e->copies);
    if (e)
        e->origs = calloc(BATCH, sizeof *e->origs);
    if (e == NULL || e->copies == NULL || e->origs == NULL) {
        fprintf(stderr, "belt run: out of memory\n");
        if (e) {
            free(e->copies);
            free(e->origs);
        }
        free(e);
        return 1;
    }
    e->o = o;
    e->src = src;

    belt__broker_keys keys;
    int rc = belt__broker_keys_choose(&keys, o->key_file, o->insecure, msg,
                                      sizeof msg);
    if (rc != BELT_OK) {
        fprintf(stderr, "belt run: %s\n", msg);
        free(e->copies);
        free(e->origs);
        free(e);
        return 2;
    }
    if (keys.count == 0)
        fprintf(stderr, "belt run: " BELT__BROKER_INSECURE_WARNING "\n");
    const char *results_path = o->results_path;
    if (results_path == NULL)
        results_path = "belt-results.jsonl";
    char abs_results[PATH_MAX + 8], abs_config[PATH_MAX + 8];
    bool have_results = abs_path(results_path, abs_results,
                                 sizeof abs_results);
    char abs_resume[PATH_MAX + 8];
    /* Continuing a run means appending to its results file. */
    bool resume = o->resume_path != NULL && have_results &&
                  abs_path(o->resume_path, abs_resume, sizeof abs_resume) &&
                  strcmp(abs_resume, abs_results) == 0;
    belt__submit_options so = {
        .url = &url,
        .ns = o->broker_ns,
        .max_deliveries = o->max_deliveries,
        .total = src->total,
        .keys = &keys,
        .results_path = have_results ? abs_results : NULL,
        .config_path = abs_path(o->config_path, abs_config, sizeof abs_config)
                           ? abs_config : NULL,
        .resume = resume,
    };
    rc = belt__submit_open(&e->sub, &so, msg, sizeof msg);
    belt__broker_keys_wipe(&keys);
    if (rc != BELT_OK) {
        fprintf(stderr, "belt run: --broker: %s\n", msg);
        free(e->copies);
        free(e->origs);
        free(e);
        return rc == BELT_ENOMEM || rc == BELT_ESYS ? 1 : 2;
    }
    uint64_t pending = 0;
    if (belt__submit_adopted(e->sub, &pending)) {
        cut_torn_line(results_path);
        if (!o->quiet)
            fprintf(stderr, "belt run: --broker: continuing run %s (%" PRIu64
                    " of its jobs still out)\n", belt__submit_run_id(e->sub),
                    pending);
    }

    int64_t t0 = belt__now_mono();
    e->last_result_ns = t0;
    e->next_hb_check_ns = t0 + NO_WORKER_NS;
    belt__progress_init(&e->progress, !o->quiet && isatty(STDERR_FILENO),
                        src->total, t0);
    int status = 0;
    if (belt__out_open(&e->out, o, results_path, o->keep_order,
                       &e->progress) != 0) {
        status = 2;
        goto close_sub;
    }
    e->stats = belt__runstats_new();
    e->results = belt_chan_unbounded(sizeof(void *));
    if (e->stats == NULL || e->results == NULL) {
        fprintf(stderr, "belt run: out of memory\n");
        status = 1;
        goto close_out;
    }
    if (belt__sig_start(&e->sig, e->results) != 0) {
        fprintf(stderr, "belt run: cannot set up signal handling: %s\n",
                strerror(errno));
        e->sig = NULL;
    }
    if (pthread_create(&e->col_thread, NULL, collector_main, e) != 0) {
        fprintf(stderr, "belt run: cannot start a thread\n");
        status = 1;
        goto close_sig;
    }
    e->col_started = true;
    if (!o->quiet && !e->progress.enabled && o->config_path)
        fprintf(stderr, "belt: run %s on %s\n", belt__submit_run_id(e->sub),
                belt__broker_url_describe(&url, msg, sizeof msg));

    bool stuck = false;
    for (;;) {
        int signo = belt__sig_caught(e->sig);
        if ((signo || e->broken) && !e->stopping) {
            belt__progress_clear(&e->progress);
            if (signo && !o->quiet)
                fprintf(stderr, "belt: %s: stopping, canceling %" PRIu64
                        " job%s out on the broker\n",
                        signo == SIGINT ? "interrupted" : "terminated",
                        e->in_flight + e->n_retry,
                        e->in_flight + e->n_retry == 1 ? "" : "s");
            e->stopping = true;
            src->cancel(src->ctx, signo == SIGINT ? "interrupted by SIGINT"
                                : signo ? "terminated by SIGTERM"
                                        : "the broker connection failed");
            break;
        }

        uint64_t moved = e->taken + e->published;
        belt_result *u;
        while ((u = src->unrun(src->ctx)) != NULL)
            take(e, u, NULL, 0);
        gather(e);
        int64_t now = belt__now_mono();
        if (e->n_retry > 0 && now >= e->retry_at_ns)
            publish(e, now);
        if (e->broken)
            continue;

        if (e->in_flight + e->n_retry == 0) {
            if (src->finished(src->ctx))
                break;
            if (e->taken + e->published != moved)
                continue;
            stuck = true;
            break;
        }

        /* About to wait: the lines taken so far go out first, and the
         * result stream may be trimmed up to them. */
        if (belt__out_write_lines(e->out) != 0)
            e->failed_io = true;
        else if (e->have_taken_entry && belt__out_held(e->out) == 0) {
            belt__submit_written(e->sub, &e->taken_entry);
            e->have_taken_entry = false;
        }
        now = belt__now_mono();
        watch(e, now);
        int64_t wait = belt__progress_wait_ns(&e->progress, now);
        if (e->in_flight > 0)
            wait = sooner(wait, e->next_hb_check_ns - now);
        if (e->n_retry > 0)
            wait = sooner(wait, e->retry_at_ns - now);
        void *v = NULL;
        if (belt_chan_recv_timeout(e->results, &v, wait) == BELT_OK)
            received(e, v);
        while (belt_chan_try_recv(e->results, &v) == BELT_OK)
            received(e, v);
        now = belt__now_mono();
        belt__progress_draw(&e->progress, e->stats, e->in_flight, now, false);
        belt__submit_progress(e->sub, e->taken, e->failed, now);
    }

    /* Stop the collector; take what it had already sent. */
    stop_collector(e);
    watch(e, belt__now_mono()); /* a refusal not said yet */
    void *v;
    while (belt_chan_try_recv(e->results, &v) == BELT_OK)
        if (v != NULL && v != &e->col_end)
            take_item(e, v);
    if (e->stopping) {
        /* Jobs out on the broker, and jobs never confirmed published. */
        belt__submit_cancel(e->sub, take_canceled, e);
        while (e->n_retry > 0) {
            const belt_job *orig = e->origs[--e->n_retry];
            e->in_flight++; /* take_canceled counts it out */
            take_canceled(e, orig);
        }
        belt_result *u;
        while ((u = src->unrun(src->ctx)) != NULL)
            take(e, u, NULL, 0);
    }
    if (stuck) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt run: internal error: jobs remain but none can "
                "run (scheduler stalled)\n");
        status = 1;
    }
    int signo = belt__sig_caught(e->sig);
    if (belt__submit_finish(e->sub, e->stopping ? "canceled" : "done",
                            e->taken, e->failed, msg, sizeof msg) !=
        BELT_OK) {
        belt__progress_clear(&e->progress);
        fprintf(stderr, "belt run: --broker: could not mark the run done: "
                "%s\n", msg);
    }
    uint64_t dups = belt__submit_duplicates(e->sub);
    int64_t wall = belt__now_mono() - t0;
    belt__progress_clear(&e->progress);
    if (!o->quiet) {
        belt__runstats_summary(e->stats, stderr, wall, NULL, 0);
        if (dups > 0)
            fprintf(stderr, "belt: %" PRIu64 " duplicate result%s (jobs "
                    "delivered more than once) ignored\n", dups,
                    dups == 1 ? "" : "s");
    }
    if (signo)
        status = 128 + signo;
    else if (status == 0 && e->exit_status)
        status = e->exit_status;
close_sig:
    stop_collector(e);
    belt__sig_stop(e->sig);
    while (belt_chan_try_recv(e->results, &v) == BELT_OK)
        if (v != NULL && v != &e->col_end)
            belt__submit_item_free(v, true);
close_out:
    if (belt__out_close(e->out) != 0)
        e->failed_io = true;
    if (status == 0 && (e->failed_io ||
                        (e->stats && belt__runstats_unsuccessful(e->stats) > 0)))
        status = 1;
    belt__runstats_free(e->stats);
    belt_chan_free(e->results);
close_sub:
    belt__submit_close(e->sub);
    free(e->copies);
    free(e->origs);
    free(e);
    return status;
}
