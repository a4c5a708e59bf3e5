/* run.c: `belt run`: options, and config mode.
 *
 * Two modes share one engine.  Config mode (`belt run jobs.json`) takes its
 * jobs from the config's scheduler (belt_sched_*: dependency order, resume,
 * halt-on-error); quick mode (`belt run --command CMD`, quick.c) makes one
 * job per input line.  A belt__source (run.h) hides the difference.
 *
 * The engine they share is engine.c.
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
        "      --key-file FILE  sign the jobs, and take only results signed, with\n"
        "                       the key in FILE (belt keygen; default\n"
        "                       $BELT_KEY_FILE); the workers need the same file\n"
        "      --insecure       run without a key: unsigned jobs, any result\n"
        "      --resume FILE    with --broker: also continue the run that a killed\n"
        "                       submitter left with results file FILE\n"
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
        "See belt-run(1).\n",
        out);
}

enum {
    OPT_POLICY = 256, OPT_RESULTS, OPT_RESUME, OPT_JOBLOG, OPT_DRY_RUN,
    OPT_HALT, OPT_TIMEOUT, OPT_RETRIES, OPT_COMMAND, OPT_LINE_BUFFER,
    OPT_BROKER, OPT_NAMESPACE, OPT_MAX_DELIVERIES, OPT_KEY_FILE, OPT_INSECURE
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
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

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
        case OPT_KEY_FILE: o->key_file = optarg; break;
        case OPT_INSECURE: o->insecure = true; break;
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
        default:
            return belt__cli_bad_option("run", c, argv, run_options);
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
    if (!o->broker && (o->broker_ns || o->max_deliveries || o->key_file ||
                       o->insecure)) {
        fprintf(stderr, "belt run: %s only applies with --broker URL\n",
                o->broker_ns ? "--namespace" : o->max_deliveries
                ? "--max-deliveries" : o->key_file ? "--key-file"
                : "--insecure");
        return 2;
    }
    return -1;
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
