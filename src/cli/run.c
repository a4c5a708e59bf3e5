/* run.c: `belt run`: options, config mode, and the engine that feeds a pool
 * and collects its results.
 *
 * Two modes share one engine.  Config mode (`belt run jobs.json`) takes its
 * jobs from the config's scheduler (belt_sched_*: dependency order, resume,
 * halt-on-error); quick mode (`belt run --command CMD`, quick.c) makes one
 * job per input line.  A belt__source (run.h) hides the difference.
 *
 * The engine is one thread, the dispatcher, and it owns everything: the
 * scheduler, the pool, the results channel, the output files.  Its loop:
 *
 *   1. write the results of jobs that will not run (skipped, canceled);
 *   2. submit ready jobs while fewer than `cap` are in flight (2 per worker,
 *      more with the shared queue, 1 per worker with --halt-on-error: see
 *      in_flight_cap());
 *   3. wait for one result (or a new input line, in quick mode) with a
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
 * Interruption (run_signal.c): the signal thread wakes the engine by sending
 * NULL on the results channel.  The engine then stops dispatching, cancels
 * the scheduler (every job not handed out becomes a "canceled" record),
 * calls belt_pool_cancel() (running jobs' process groups get SIGTERM, then
 * SIGKILL after their grace period; every job in flight comes back as a
 * result), writes everything and exits 128 + the signal number.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "belt/config.h"
#include "belt/sched.h"
#include "belt/error.h"
#include "belt/pool.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "util/cpu.h"
#include "util/suggest.h"
#include "util/clock.h"

/* ---- options ------------------------------------------------------------ */

static void run_usage(FILE *out)
{
    fputs(
        "usage: belt run [options] CONFIG\n"
        "       belt run [options] --command CMD [-a FILE]   (quick mode)\n"
        "       belt run [options] PIPELINE.json   (belt run PIPELINE.json -h)\n"
        "\n"
        "Runs the jobs of the JSON config CONFIG (see belt.json(5)) on a pool of\n"
        "workers and writes one JSON line per job to the results file.  Quick mode\n"
        "runs CMD once per line of standard input (or of FILE), as xargs -P and GNU\n"
        "parallel do, with each job's output grouped on belt's stdout and stderr.\n"
        "\n"
        "options:\n"
        "  -j, --workers N      worker threads: N, 0 for one per CPU, or P% of the\n"
        "                       CPUs (default: the config's \"workers\", else one per CPU)\n"
        "      --policy P       how jobs are spread over workers: shared (default),\n"
        "                       round-robin, random, least-loaded, power-of-two,\n"
        "                       power-of-d, join-idle-queue, work-stealing\n"
        "      --results FILE   where result lines go (default belt-results.jsonl in\n"
        "                       config mode, none in quick mode; - for stdout)\n"
        "      --resume FILE    skip jobs whose id has status \"ok\" in FILE, the\n"
        "                       results of an earlier run\n"
        "      --joblog FILE    also write GNU parallel's --joblog format to FILE\n"
        "      --dry-run        print the expanded jobs as JSON Lines, run nothing\n"
        "      --halt-on-error  start no new job after one did not succeed\n"
        "  -k, --keep-order     write results (quick mode: output) in job order\n"
        "  -q, --quiet          no progress line and no summary on stderr\n"
        "      --timeout DUR    timeout of every job (\"500ms\", \"30s\", \"2m\"; 0: none)\n"
        "      --retries N      retries of every job after a failure or timeout\n"
        "\n"
        "across machines (config mode; see belt worker --help, belt status):\n"
        "      --broker URL     run the jobs on `belt worker` processes through\n"
        "                       the Redis at URL: redis://[[user]:password@]host\n"
        "                       [:port][/db] or unix:///path/redis.sock (password\n"
        "                       also from $BELT_REDIS_PASSWORD); -j and --policy\n"
        "                       are then the workers' business\n"
        "      --namespace P    prefix of the broker's keys (default \"belt\")\n"
        "      --max-deliveries N  deliveries of a job before it is dead-lettered\n"
        "                       (a worker died running it each time; default 3)\n"
        "\n"
        "quick mode:\n"
        "      --command CMD    run CMD (through /bin/sh) once per input line; each\n"
        "                       {} is replaced by the line, shell-quoted; without {}\n"
        "                       the line is appended\n"
        "  -a, --arg-file FILE  read input lines from FILE instead of stdin\n"
        "  -0, --null           input items end with NUL instead of newline\n"
        "      --line-buffer    pass output through line by line as it comes\n"
        "                       instead of one block per job\n"
        "\n"
        "  -h, --help           show this help\n"
        "\n"
        "exit status: 0 every job ok, 1 some job did not succeed, 2 usage or\n"
        "config error (nothing run), 130/143 interrupted by SIGINT/SIGTERM.\n"
        "See belt(1).\n",
        out);
}

enum {
    OPT_POLICY = 256, OPT_RESULTS, OPT_RESUME, OPT_JOBLOG, OPT_DRY_RUN,
    OPT_HALT, OPT_TIMEOUT, OPT_RETRIES, OPT_COMMAND, OPT_LINE_BUFFER,
    OPT_BROKER, OPT_NAMESPACE, OPT_MAX_DELIVERIES
};

static const struct option run_options[] = {
    {"workers", required_argument, NULL, 'j'},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"resume", required_argument, NULL, OPT_RESUME},
    {"joblog", required_argument, NULL, OPT_JOBLOG},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"halt-on-error", no_argument, NULL, OPT_HALT},
    {"keep-order", no_argument, NULL, 'k'},
    {"quiet", no_argument, NULL, 'q'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"command", required_argument, NULL, OPT_COMMAND},
    {"arg-file", required_argument, NULL, 'a'},
    {"null", no_argument, NULL, '0'},
    {"line-buffer", no_argument, NULL, OPT_LINE_BUFFER},
    {"broker", required_argument, NULL, OPT_BROKER},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"max-deliveries", required_argument, NULL, OPT_MAX_DELIVERIES},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void unknown_option(const char *arg)
{
    const char *names[sizeof run_options / sizeof run_options[0]];
    size_t n = 0;
    for (const struct option *o = run_options; o->name; o++)
        names[n++] = o->name;
    names[n] = NULL;

    char word[300];
    snprintf(word, sizeof word, "%s", arg);
    char *eq = strchr(word, '=');
    if (eq)
        *eq = '\0';
    const char *bare = word;
    while (*bare == '-')
        bare++;
    const char *hint = arg[0] == '-' && arg[1] == '-' ? belt__suggest(bare, names)
                                                      : NULL;
    if (hint)
        fprintf(stderr, "belt run: unknown option '%s' (did you mean '--%s'?)"
                        "; try 'belt run --help'\n", word, hint);
    else
        fprintf(stderr, "belt run: unknown option '%s'; try 'belt run "
                        "--help'\n", word);
}

int belt__parse_workers(const char *text, unsigned *out, char *msg,
                        size_t msg_size)
{
    if (belt_parse_workers(text, belt__cpu_count(), out) != BELT_OK) {
        snprintf(msg, msg_size, "-j/--workers: expected a count from 1 to %d, "
                 "0 for one per CPU, or a percentage of the CPUs from 1%% to "
                 "1000%%, not '%s'", BELT_CONFIG_MAX_WORKERS, text);
        return -1;
    }
    return 0;
}

/* Checks a policy name against the pool's list.  0, or -1 after printing. */
static int check_policy(const char *policy, const char *where)
{
    const char *const *names = belt_pool_policy_names();
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(names[i], policy) == 0)
            return 0;
    const char *hint = names ? belt__suggest(policy, names) : NULL;
    fprintf(stderr, "belt run: %s: unknown policy '%s'", where, policy);
    if (hint)
        fprintf(stderr, " (did you mean '%s'?)", hint);
    fprintf(stderr, "; policies are:");
    for (size_t i = 0; names && names[i]; i++)
        fprintf(stderr, " %s", names[i]);
    fputc('\n', stderr);
    return -1;
}

/* Parses argv into o.  Returns -1 to go on, or an exit status. */
static int parse_run_args(int argc, char **argv, belt__run_opts *o)
{
    memset(o, 0, sizeof *o);
    opterr = 0;
    optind = 1;
    int c;
    char msg[256];
    while ((c = getopt_long(argc, argv, ":j:kqa:0h", run_options, NULL)) !=
           -1) {
        switch (c) {
        case 'j':
            o->workers_arg = optarg;
            if (belt__parse_workers(optarg, &o->workers, msg, sizeof msg)) {
                fprintf(stderr, "belt run: %s\n", msg);
                return 2;
            }
            break;
        case OPT_POLICY: o->policy = optarg; break;
        case OPT_RESULTS: o->results_path = optarg; break;
        case OPT_RESUME: o->resume_path = optarg; break;
        case OPT_JOBLOG: o->joblog_path = optarg; break;
        case OPT_DRY_RUN: o->dry_run = true; break;
        case OPT_HALT: o->halt_on_error = true; break;
        case 'k': o->keep_order = true; break;
        case 'q': o->quiet = true; break;
        case OPT_TIMEOUT:
            if (strcmp(optarg, "0") == 0) {
                o->timeout_ns = 0;
            } else if (belt_parse_duration(optarg, &o->timeout_ns) !=
                       BELT_OK) {
                fprintf(stderr, "belt run: --timeout: expected a duration "
                        "like \"30s\", \"500ms\" or \"2m\", not '%s'\n",
                        optarg);
                return 2;
            }
            o->have_timeout = true;
            break;
        case OPT_RETRIES: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end || errno || optarg[0] == '-' ||
                v > 1000) {
                fprintf(stderr, "belt run: --retries: expected a number from "
                        "0 to 1000, not '%s'\n", optarg);
                return 2;
            }
            o->retries = (unsigned)v;
            o->have_retries = true;
            break;
        }
        case OPT_COMMAND: o->command = optarg; break;
        case 'a': o->arg_file = optarg; break;
        case '0': o->null_sep = true; break;
        case OPT_LINE_BUFFER: o->line_buffer = true; break;
        case OPT_BROKER: o->broker = optarg; break;
        case OPT_NAMESPACE: o->broker_ns = optarg; break;
        case OPT_MAX_DELIVERIES: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (end == optarg || *end || errno || optarg[0] == '-' ||
                v < 1 || v > 1000) {
                fprintf(stderr, "belt run: --max-deliveries: expected a "
                        "number from 1 to 1000, not '%s'\n", optarg);
                return 2;
            }
            o->max_deliveries = (unsigned)v;
            break;
        }
        case 'h':
            run_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "belt run: option '%s' needs a value; try 'belt "
                    "run --help'\n", argv[optind - 1]);
            return 2;
        default:
            unknown_option(optopt && optopt < 256
                               ? (snprintf(msg, sizeof msg, "-%c", optopt),
                                  msg)
                               : argv[optind - 1]);
            return 2;
        }
    }
    int npos = argc - optind;
    if (o->command) {
        if (npos > 0) {
            fprintf(stderr, "belt run: --command takes its input from stdin "
                    "or -a FILE, not from '%s'\n", argv[optind]);
            return 2;
        }
        if (o->resume_path) {
            fprintf(stderr, "belt run: --resume needs a config (quick mode "
                    "has no job ids to match)\n");
            return 2;
        }
        if (o->results_path && strcmp(o->results_path, "-") == 0) {
            fprintf(stderr, "belt run: --results -: in quick mode stdout "
                    "carries the jobs' output; give a file\n");
            return 2;
        }
    } else {
        if (o->arg_file || o->null_sep || o->line_buffer) {
            fprintf(stderr, "belt run: %s only applies to quick mode "
                    "(--command)\n", o->arg_file ? "-a/--arg-file"
                    : o->null_sep ? "-0/--null" : "--line-buffer");
            return 2;
        }
        if (npos == 0) {
            fprintf(stderr, "belt run: missing CONFIG (a JSON job file), or "
                    "--command CMD for quick mode; try 'belt run --help'\n");
            return 2;
        }
        if (npos > 1) {
            fprintf(stderr, "belt run: one CONFIG at a time, got '%s' and "
                    "'%s'\n", argv[optind], argv[optind + 1]);
            return 2;
        }
        o->config_path = argv[optind];
    }
    if (o->policy && check_policy(o->policy, "--policy") != 0)
        return 2;
    if (o->broker && (o->command || o->workers_arg || o->policy)) {
        fprintf(stderr, "belt run: --broker: %s does not apply (%s)\n",
                o->command ? "quick mode (--command)"
                : o->workers_arg ? "-j/--workers" : "--policy",
                o->command ? "the broker runs config jobs"
                           : "the workers choose: belt worker -j N");
        return 2;
    }
    if (!o->broker && (o->broker_ns || o->max_deliveries)) {
        fprintf(stderr, "belt run: %s only applies with --broker URL\n",
                o->broker_ns ? "--namespace" : "--max-deliveries");
        return 2;
    }
    return -1;
}

/* ---- the engine -------------------------------------------------------- */

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
    bool feed_open;         /* quick mode: the feed may bring more */
    bool want_lines;        /* results file open */
};

/* Stops dispatching; with cancel_running, also cancels the pool. */
static void engine_stop(struct engine *e, const char *why, bool cancel_running)
{
    if (!e->stopping) {
        e->stopping = true;
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
    bool resumed = e->src->resumed && e->src->resumed(r);
    belt__runstats_add(e->stats, r, resumed);
    belt__out_joblog(e->out, r);

    belt__pending p = {.seq = r->seq};
    if (e->want_lines && !(resumed && belt__out_appends(e->out))) {
        p.line = belt__report_result_line(r, &p.len);
        if (p.line == NULL) {
            belt__progress_clear(&e->progress);
            fprintf(stderr, "belt run: out of memory writing the result of "
                    "%s\n", r->job && r->job->id ? r->job->id : "a job");
            e->failed_io = true;
        }
    }
    if (e->o->command && !e->o->quiet &&
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
        engine_stop(e, "results could not be written", true);
    }
    if (bad && e->src->halt_in_engine && e->o->halt_on_error)
        engine_stop(e, "halted after a job did not succeed", false);
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
    if (e->o->have_retries)
        s->copy.retries = e->o->retries;
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

static uint64_t in_flight_cap(const belt__run_opts *o)
{
    uint64_t w = o->workers;
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
    belt__progress_init(&e.progress, !o->quiet && isatty(STDERR_FILENO),
                        src->total, t0);

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

    uint64_t cap = in_flight_cap(o);
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
    belt__progress_clear(&e.progress);
    bool summary = !o->quiet && (o->config_path || isatty(STDERR_FILENO));
    if (summary)
        belt__runstats_summary(e.stats, stderr, wall, busy, nw);
    free(busy);

    if (signo)
        status = 128 + signo;
    else if (status == 0 &&
             (e.failed_io || belt__runstats_unsuccessful(e.stats) > 0))
        status = 1;
    belt__runstats_free(e.stats);
    return status;
}

/* ---- config mode -------------------------------------------------------- */

static const belt_job *cfg_next(void *ctx)
{
    return belt_sched_next(ctx);
}

static belt_result *cfg_unrun(void *ctx)
{
    return belt_sched_next_unrun(ctx);
}

static void cfg_done(void *ctx, belt_result *r)
{
    belt_sched_done(ctx, r);
}

static bool cfg_finished(void *ctx)
{
    return belt_sched_finished(ctx);
}

static void cfg_cancel(void *ctx, const char *why)
{
    belt_sched_cancel(ctx, why);
}

/* The scheduler marks jobs already ok in the --resume file as SKIPPED with
 * an error starting with BELT_SCHED_RESUMED_PREFIX (belt/config.h). */
static bool cfg_resumed(const belt_result *r)
{
    static const char prefix[] = BELT_SCHED_RESUMED_PREFIX;
    return r->status == BELT_JOB_SKIPPED && r->attempts == 0 && r->error &&
           strncmp(r->error, prefix, sizeof prefix - 1) == 0;
}

/* --dry-run: prints every job of the config in expansion (seq) order, one
 * at a time (O(1) memory however large the matrix), with the CLI's
 * overrides applied.  Returns the exit status. */
static int dry_run(const belt__run_opts *o, const belt_config *cfg)
{
    uint64_t n = belt_config_job_count(cfg);
    for (uint64_t seq = 0; seq < n; seq++) {
        belt_job *job = belt_config_job_at(cfg, seq);
        char *line = NULL;
        size_t len = 0;
        if (job) {
            if (o->have_timeout)
                job->timeout_ns = o->timeout_ns;
            if (o->have_retries)
                job->retries = o->retries;
            line = belt__report_job_line(job, &len);
        }
        belt_config_job_free(job);
        if (line == NULL) {
            fprintf(stderr, "belt run: out of memory\n");
            return 1;
        }
        size_t w = fwrite(line, 1, len, stdout);
        free(line);
        if (w != len)
            break;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "belt run: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static int run_config(belt__run_opts *o)
{
    belt_config_error err;
    char line[1400];
    memset(&err, 0, sizeof err);
    belt_config *cfg = belt_config_load(o->config_path, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", belt_config_error_format(&err, line,
                                                         sizeof line));
        return 2;
    }
    if (o->workers_arg == NULL) {
        int w = belt_config_workers(cfg);
        o->workers = w > 0 ? (unsigned)w : belt__cpu_count();
    }
    if (o->policy == NULL)
        o->policy = belt_config_policy(cfg);
    if (o->policy && check_policy(o->policy, o->config_path) != 0) {
        belt_config_free(cfg);
        return 2;
    }

    if (o->dry_run) {
        int status = dry_run(o, cfg);
        belt_config_free(cfg);
        return status;
    }
    if (o->results_path == NULL)
        o->results_path = belt_config_results(cfg);
    if (belt_config_halt_on_error(cfg))
        o->halt_on_error = true;

    belt_sched_options so;
    memset(&so, 0, sizeof so);
    so.resume_path = o->resume_path;
    so.halt_on_error = o->halt_on_error;
    memset(&err, 0, sizeof err);
    belt_sched *s = belt_sched_new(cfg, &so, &err);
    if (s == NULL) {
        fprintf(stderr, "%s\n", belt_config_error_format(&err, line,
                                                         sizeof line));
        belt_config_free(cfg);
        return 2;
    }

    belt__source src = {
        .ctx = s,
        .next = cfg_next,
        .unrun = cfg_unrun,
        .done = cfg_done,
        .finished = cfg_finished,
        .cancel = cfg_cancel,
        .resumed = cfg_resumed,
        .total = belt_config_job_count(cfg),
    };
    int status = o->broker ? belt__run_broker(o, &src) /* run_broker.c */
                           : belt__run_engine(o, &src);
    belt_sched_free(s);
    belt_config_free(cfg);
    return status;
}

int belt__cli_run(int argc, char **argv)
{
    if (belt__cli_pipeline_requested(argc, argv))
        return belt__cli_run_pipeline(argc, argv); /* pipeline/engine.c */
    belt__run_opts o;
    int rc = parse_run_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.command)
        return belt__run_quick(&o);
    return run_config(&o);
}
