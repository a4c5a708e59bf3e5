/* experiment/experiment.c: `belt experiment CONFIG`: run a load-balancing
 * experiment, live or simulated, and write its results and plots.
 *
 * The command loads and fully validates the experiment
 * (src/experiment/experiment.c: every point of the sweep, every distribution,
 * every trace line) before it runs anything, so bad input exits 2 with one
 * message and no output. Then, point by point in sweep order, repeat by
 * repeat, it runs the simulator (experiment/sim.c) or a live pool
 * (experiment/live.c), folds the repeats into one row (experiment/out.c), and
 * at the end writes DIR/results.csv, DIR/results.json and the plots
 * (app/plot.c), and prints a summary table on stdout.
 *
 * Progress: when stderr is a terminal (and not --quiet), one line redrawn
 * in place: points done/total, the current point, and jobs per second of
 * the run so far.  It is drawn from the simulator's progress callback
 * (every 2^16 jobs) or live mode's (every 256 results), at most 10 times a
 * second, so nothing here waits or runs on a timer.
 *
 * Exit status: 0 done; 1 a run or writing an output failed; 2 usage or
 * config error (nothing run).  Without gnuplot the plots are skipped with a
 * note on stderr and the status stays 0.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "belt/error.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "experiment/experiment.h"
#include "experiment/sim.h"
#include "util/clock.h"
#include "util/err.h"

static void usage(FILE *out)
{
    fputs(
        "usage: belt experiment [options] CONFIG\n"
        "\n"
        "Runs the load-balancing experiment described by the JSON file CONFIG:\n"
        "every point of its sweep (any parameter given as a list), each `repeat`\n"
        "times, in a discrete-event simulation or live on a real pool, and writes\n"
        "DIR/results.csv, DIR/results.json and plots (with gnuplot) to DIR.\n"
        "\n"
        "options:\n"
        "  -o, --out DIR        where results go (default: belt-experiment-NAME,\n"
        "                       NAME the config's file name without .json)\n"
        "      --mode MODE      live or simulate (default: the config's \"mode\",\n"
        "                       else simulate)\n"
        "      --jobs N         jobs per run, instead of the config's \"jobs\"\n"
        "      --seed N         seed of the first repeat, instead of the config's\n"
        "  -q, --quiet          no progress line and no summary table\n"
        "      --no-plot        write no plots\n"
        "  -h, --help           show this help\n"
        "\n"
        "exit status: 0 done, 1 a run or an output failed, 2 usage or config\n"
        "error (nothing run).  See belt-experiment(1).\n",
        out);
}

enum { OPT_MODE = 256, OPT_JOBS, OPT_SEED, OPT_NO_PLOT };

static const struct option options[] = {
    {"out", required_argument, NULL, 'o'},
    {"mode", required_argument, NULL, OPT_MODE},
    {"jobs", required_argument, NULL, OPT_JOBS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"quiet", no_argument, NULL, 'q'},
    {"no-plot", no_argument, NULL, OPT_NO_PLOT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- progress ----------------------------------------------------------- */

typedef struct progress {
    bool enabled, drawn;
    size_t point, npoints;    /* current point (0-based), points in all */
    const belt__exp_point *pt;
    uint64_t jobs_before;     /* jobs of the finished runs */
    uint64_t jobs_now;        /* of the current run */
    int64_t start_ns, last_ns;
} progress;

static void draw(progress *p, bool force)
{
    if (!p->enabled)
        return;
    int64_t now = belt__now_mono();
    if (!force && now - p->last_ns < BELT__PROGRESS_INTERVAL_NS)
        return;
    p->last_ns = now;
    double secs = (double)(now - p->start_ns) / 1e9;
    double rate = secs > 0 ? (double)(p->jobs_before + p->jobs_now) / secs : 0;
    char line[200], r[32];
    if (rate >= 1e6)
        snprintf(r, sizeof r, "%.2fM", rate / 1e6);
    else if (rate >= 1e3)
        snprintf(r, sizeof r, "%.1fk", rate / 1e3);
    else
        snprintf(r, sizeof r, "%.0f", rate);
    snprintf(line, sizeof line,
             "belt: point %zu/%zu (%s, %u workers, load %.3g), %s jobs/s",
             p->point + 1, p->npoints, p->pt->policy, p->pt->workers,
             p->pt->load, r);
    line[79] = '\0';
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->drawn = true;
}

static void clear(progress *p)
{
    if (p->enabled && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = false;
    }
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    progress *p = ctx;
    p->jobs_now = done;
    draw(p, false);
}

/* ---- the summary table -------------------------------------------------- */

/* "850ns", "12.3us", "4.56ms", "1.23s". */
static const char *fmt_time(double s, char *buf, size_t size)
{
    double a = fabs(s);
    if (!isfinite(s))
        snprintf(buf, size, "-");
    else if (a < 1e-6)
        snprintf(buf, size, "%.0fns", s * 1e9);
    else if (a < 1e-3)
        snprintf(buf, size, "%.3gus", s * 1e6);
    else if (a < 1)
        snprintf(buf, size, "%.3gms", s * 1e3);
    else
        snprintf(buf, size, "%.3gs", s);
    return buf;
}

static void print_table(FILE *out, const belt__experiment *e,
                        const belt__exp_row *rows, size_t n)
{
    bool live = e->mode == BELT__EXP_LIVE;
    bool theory = false;
    for (size_t i = 0; i < n; i++)
        theory |= isfinite(rows[i].theory_mean);
    fprintf(out, "%-15s %7s %6s %10s %10s %10s %10s %6s %11s",
            "policy", "workers", "load", "sojourn", "p50", "p99", "wait",
            "util", "jobs/s");
    if (theory)
        fprintf(out, " %10s", "theory");
    if (live)
        fprintf(out, " %10s %10s", "late", "overrun");
    fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        const belt__exp_row *r = &rows[i];
        char a[32], b[32], c[32], d[32];
        fprintf(out, "%-15s %7u %6.3g %10s %10s %10s %10s %6.3f %11.1f",
                r->pt->policy, r->pt->workers, r->pt->load,
                fmt_time(r->v[BELT__M_SOJOURN_MEAN], a, sizeof a),
                fmt_time(r->v[BELT__M_SOJOURN_P50], b, sizeof b),
                fmt_time(r->v[BELT__M_SOJOURN_P99], c, sizeof c),
                fmt_time(r->v[BELT__M_WAIT_MEAN], d, sizeof d),
                r->v[BELT__M_UTILIZATION], r->v[BELT__M_THROUGHPUT]);
        if (theory)
            fprintf(out, " %10s", fmt_time(r->theory_mean, a, sizeof a));
        if (live)
            fprintf(out, " %10s %10s", fmt_time(r->late, a, sizeof a),
                    fmt_time(r->overrun, b, sizeof b));
        fputc('\n', out);
    }
    if (live)
        fputs("(live: late = mean submit time - planned arrival; overrun = "
              "mean measured - requested service)\n", out);
}

/* ---- running ------------------------------------------------------------ */

/* Runs every repeat of one point into row.  Returns BELT_OK or an error
 * with a message in msg. */
static int run_point(const belt__experiment *e, const belt__exp_point *pt,
                     belt__exp_row *row, progress *pr, char *msg,
                     size_t msg_size)
{
    belt__point_result *res = calloc(pt->repeat, sizeof *res);
    belt__live_extra *ex = calloc(pt->repeat, sizeof *ex);
    if (res == NULL || ex == NULL) {
        free(res);
        free(ex);
        return belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
    }
    int64_t t0 = belt__now_mono();
    unsigned done = 0;
    int rc = BELT_OK;
    for (unsigned k = 0; k < pt->repeat && rc == BELT_OK; k++) {
        uint64_t seed = pt->seed + k;
        pr->jobs_now = 0;
        if (e->mode == BELT__EXP_LIVE) {
            rc = belt__live_run(pt, seed, on_progress, pr, &res[k], &ex[k]);
        } else {
            belt__workload w;
            belt__exp_workload(pt, &w);
            w.progress = on_progress;
            w.progress_ctx = pr;
            belt__policy_params pp = { .d = pt->d };
            rc = belt__sim_run(belt__policy_find(pt->policy), &pp, pt->workers,
                               pt->speeds, &w, seed, &res[k]);
        }
        if (rc == BELT_OK) {
            pr->jobs_before += res[k].jobs;
            pr->jobs_now = 0;
            done++;
        }
    }
    uint64_t failed = 0;
    for (unsigned k = 0; k < done; k++)
        failed += ex[k].failed;
    if (failed > 0) {
        bool drawn = pr->drawn;
        clear(pr);
        fprintf(stderr, "belt experiment: warning: point %zu: %" PRIu64
                        " live job%s did not succeed (status not ok)\n",
                pt->index + 1, failed, failed == 1 ? "" : "s");
        if (drawn)
            draw(pr, true);
    }
    if (rc != BELT_OK) {
        snprintf(msg, msg_size, "point %zu (%s, %u workers): %s run failed: %s%s",
                 pt->index + 1, pt->policy, pt->workers,
                 belt__exp_mode_name(e->mode), belt_strerror(rc),
                 rc == BELT_ESYS ? " (see errno)" : "");
    } else if ((rc = belt__exp_row_fill(row, pt, res,
                                        e->mode == BELT__EXP_LIVE ? ex : NULL,
                                        done)) != BELT_OK) {
        snprintf(msg, msg_size, "out of memory");
    }
    row->wall = (double)(belt__now_mono() - t0) / 1e9;
    for (unsigned k = 0; k < pt->repeat; k++)
        belt__point_result_free(&res[k]);
    free(res);
    free(ex);
    return rc;
}

/* mkdir -p. */
static int make_dir(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* The default DIR: belt-experiment-NAME. */
static void default_out(const char *config, char *buf, size_t size)
{
    const char *base = strrchr(config, '/');
    base = base ? base + 1 : config;
    size_t len = strlen(base);
    if (len > 5 && strcmp(base + len - 5, ".json") == 0)
        len -= 5;
    snprintf(buf, size, "belt-experiment-%.*s", (int)len, base);
}

/* Refuses what live mode cannot do, before anything runs. */
static bool live_ok(const belt__experiment *e)
{
    if (e->mode != BELT__EXP_LIVE)
        return true;
    for (size_t i = 0; i < e->npoints; i++) {
        const belt__exp_point *pt = &e->points[i];
        if (pt->speeds != NULL && pt->command != NULL) {
            fprintf(stderr,
                    "belt experiment: %s: point %zu: live mode cannot scale a "
                    "\"command\" by worker \"speeds\" (use sleep or spin "
                    "jobs, or --mode simulate)\n",
                    e->source, i + 1);
            return false;
        }
        if (pt->jobs > 10000000u && pt->max_time <= 0) {
            fprintf(stderr,
                    "belt experiment: %s: point %zu: live mode runs at most "
                    "10,000,000 jobs per run (use --jobs)\n",
                    e->source, i + 1);
            return false;
        }
    }
    return true;
}

int belt__cli_experiment(int argc, char **argv)
{
    const char *out_dir = NULL;
    bool quiet = false, plot = true;
    belt__exp_overrides ov;
    belt__exp_overrides_init(&ov);
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":o:qh", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            out_dir = optarg;
            break;
        case OPT_MODE:
            if (strcmp(optarg, "live") == 0) {
                ov.mode = BELT__EXP_LIVE;
            } else if (strcmp(optarg, "simulate") == 0) {
                ov.mode = BELT__EXP_SIMULATE;
            } else {
                fprintf(stderr, "belt experiment: --mode: expected live or "
                                "simulate (got '%s')\n", optarg);
                return 2;
            }
            break;
        case OPT_JOBS:
            if (!parse_u64(optarg, UINT64_C(10000000000), &ov.jobs) || ov.jobs == 0) {
                fprintf(stderr, "belt experiment: --jobs: expected a number "
                                "of jobs, at least 1 (got '%s')\n", optarg);
                return 2;
            }
            break;
        case OPT_SEED:
            if (!parse_u64(optarg, INT64_MAX, &ov.seed)) {
                fprintf(stderr, "belt experiment: --seed: expected a "
                                "non-negative integer (got '%s')\n", optarg);
                return 2;
            }
            ov.have_seed = true;
            break;
        case 'q':
            quiet = true;
            break;
        case OPT_NO_PLOT:
            plot = false;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return belt__cli_bad_option("experiment", c, argv, options);
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, optind >= argc
                            ? "belt experiment: missing CONFIG; try 'belt "
                              "experiment --help'\n"
                            : "belt experiment: one CONFIG only; try 'belt "
                              "experiment --help'\n");
        return 2;
    }
    const char *config = argv[optind];

    belt_config_error err;
    belt__experiment *e = belt__experiment_load(config, &ov, &err);
    if (e == NULL) {
        char line[1200];
        fprintf(stderr, "belt experiment: %s\n",
                belt_config_error_format(&err, line, sizeof line));
        return 2;
    }
    if (!live_ok(e)) {
        belt__experiment_free(e);
        return 2;
    }
    char dbuf[4200];
    if (out_dir == NULL) {
        default_out(config, dbuf, sizeof dbuf);
        out_dir = dbuf;
    }
    if (make_dir(out_dir) != 0) {
        fprintf(stderr, "belt experiment: cannot create %s: %s\n", out_dir,
                strerror(errno));
        belt__experiment_free(e);
        return 2;
    }
    for (size_t i = 0; i < e->nwarnings; i++)
        fprintf(stderr, "belt experiment: %s\n", e->warnings[i]);

    belt__exp_row *rows = calloc(e->npoints, sizeof *rows);
    if (rows == NULL) {
        fprintf(stderr, "belt experiment: out of memory\n");
        belt__experiment_free(e);
        return 1;
    }
    progress pr = { .enabled = !quiet && isatty(STDERR_FILENO),
                    .npoints = e->npoints };
    pr.start_ns = belt__now_mono();
    pr.last_ns = pr.start_ns - BELT__PROGRESS_INTERVAL_NS;
    int status = 0;
    char msg[1200];
    size_t ran = 0;
    for (size_t i = 0; i < e->npoints; i++) {
        pr.point = i;
        pr.pt = &e->points[i];
        draw(&pr, true);
        if (run_point(e, &e->points[i], &rows[i], &pr, msg, sizeof msg) != BELT_OK) {
            clear(&pr);
            fprintf(stderr, "belt experiment: %s\n", msg);
            status = 1;
            break;
        }
        ran++;
    }
    clear(&pr);

    if (ran > 0) {
        if (belt__exp_write(out_dir, e, rows, ran, msg, sizeof msg) != BELT_OK) {
            fprintf(stderr, "belt experiment: %s\n", msg);
            status = 1;
        }
        if (plot) {
            int rc = belt__exp_plot(out_dir, e, rows, ran, true, msg, sizeof msg);
            if (rc == BELT_ENOENT) {
                fprintf(stderr, "belt experiment: %s\n", msg);
            } else if (rc != BELT_OK) {
                fprintf(stderr, "belt experiment: %s\n", msg);
                status = 1;
            }
        }
        if (!quiet) {
            print_table(stdout, e, rows, ran);
            fprintf(stderr, "belt experiment: %zu point%s (%s), results in "
                            "%s/results.csv and %s/results.json\n",
                    ran, ran == 1 ? "" : "s", belt__exp_mode_name(e->mode),
                    out_dir, out_dir);
        }
    }
    for (size_t i = 0; i < e->npoints; i++)
        belt__exp_row_free(&rows[i]);
    free(rows);
    belt__experiment_free(e);
    return status;
}
