/* experiment/experiment.h: `belt experiment` configs: loading, validation, and
 * the expansion of a sweep into points; and live mode, which measures one
 * point on a real pool.  Internal: never installed; every name is belt__.
 *
 * An experiment config (belt-experiment(1)):
 *
 *   {
 *     "mode": "simulate",                       live | simulate
 *     "workers": 100,
 *     "policy": ["random", "power-of-two", "shared"],
 *     "d": 2,                                   power-of-d's sample size
 *     "arrival": {"process": "poisson", "load": [0.5, 0.9, 0.99]},
 *     "service": {"dist": "exponential", "mean": "1ms"},
 *     "speeds": [2, 1, 1, 1],                   per worker, repeated
 *     "jobs": 1000000, "max_time": "60s", "warmup": 0.1,
 *     "seed": 1, "repeat": 1,
 *     "command": "sleep {service}",             live: run this per job
 *     "spin": false,                            live: spin, not sleep
 *     "live": {"jobs": 2000, "workers": 4}      overrides for live mode
 *   }
 *
 * Sweeps: a value that is a list where one value is expected is a sweep
 * axis ("speeds" is a list already: a list of lists sweeps it; "service"
 * may be a list of objects, and a list inside "service" sweeps that
 * parameter).  The points are the cartesian product of the axes, in
 * nested-loop order over the axes in document order, the first varying
 * slowest; each point runs `repeat` times with seeds seed, seed+1, ...
 *
 * Errors are belt_config_error's "source:line:col: path: text", with the
 * path of the offending value in the file as written (an axis item as
 * arrival.load[3], a value from "live" as live.jobs).
 */
#ifndef BELT_EXPERIMENT_H
#define BELT_EXPERIMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "belt/config.h"
#include "experiment/sim.h"

typedef enum belt__exp_mode {
    BELT__EXP_SIMULATE = 0,
    BELT__EXP_LIVE
} belt__exp_mode;

/* At most this many sweep axes, points, and values in a "speeds" list. */
#define BELT__EXP_MAX_AXES 16
#define BELT__EXP_MAX_POINTS 100000u
#define BELT__EXP_MAX_REPEAT 1000u

/* One point of the sweep, every value concrete. */
typedef struct belt__exp_point {
    size_t index;             /* 0-based, in sweep order */
    char *policy;             /* a registered policy name */
    unsigned workers;         /* 1 .. BELT_POOL_MAX_WORKERS */
    unsigned d;               /* power-of-d; 0: the policy's default */
    belt__arrival_kind arrival;
    double load;              /* offered utilisation (given, or computed
                               * from `rate`); 0 for batch and trace */
    double rate;              /* jobs per second (given, or computed from
                               * `load`); 0 for batch and trace */
    char *trace_path;         /* trace file as resolved (relative paths are
                               * taken from the config's directory), or NULL */
    belt__trace trace;        /* loaded when trace_path is set (owned) */
    belt__dist service;       /* all but trace */
    char *service_text;       /* "exponential(mean=0.001)"; the file name
                               * for a trace */
    double *speeds;           /* `workers` factors, or NULL: all 1 */
    uint64_t jobs;            /* jobs to admit (trace: 0 = all of it) */
    double max_time;          /* seconds: admit no job arriving later; 0:
                               * no cap */
    double warmup;            /* fraction of the first jobs left out of the
                               * latency statistics, in [0, 1) */
    uint64_t seed;            /* seed of repeat 0 */
    unsigned repeat;          /* runs of this point, >= 1 */
    char *command;            /* live: per-job command, or NULL */
    bool spin;                /* live: spin jobs instead of sleep */
    bool overload;            /* open-loop load >= 1 (capped, warned) */
} belt__exp_point;

/* The simulator's workload of point pt (arrival, rate, service, trace,
 * jobs, max_time, warmup; no progress callback) into *w.  w->trace borrows
 * pt's.  Can't fail. */
void belt__exp_workload(const belt__exp_point *pt, belt__workload *w);

typedef struct belt__experiment {
    char *source;             /* the config's file name */
    belt__exp_mode mode;
    char *description;        /* or NULL */
    size_t naxes;
    char *axis_name[BELT__EXP_MAX_AXES]; /* "policy", "arrival.load" ... */
    size_t npoints;
    belt__exp_point *points;
    char **warnings;          /* one line each, for stderr */
    size_t nwarnings;
} belt__experiment;

/* What the command line overrides; zeroed: nothing. */
typedef struct belt__exp_overrides {
    int mode;                 /* -1: the config's; else a belt__exp_mode */
    uint64_t jobs;            /* 0: the config's */
    bool have_seed;
    uint64_t seed;
} belt__exp_overrides;

/* Fills o with "nothing overridden".  Can't fail. */
void belt__exp_overrides_init(belt__exp_overrides *o);

/* Loads, validates and expands the experiment config at path (the overrides
 * are applied before validation: --jobs can make an overloaded config
 * acceptable).  Returns the experiment (free with belt__experiment_free())
 * or NULL with *err filled (err may be NULL); on failure nothing stays
 * allocated.  Also validates each point's service distribution and, for a
 * trace, the trace file (its error names the file and the line). */
belt__experiment *belt__experiment_load(const char *path,
                                        const belt__exp_overrides *ov,
                                        belt_config_error *err);

/* Same, from a NUL-terminated string; `source` names it in errors (NULL:
 * "<string>"); relative trace paths are taken from the current directory. */
belt__experiment *belt__experiment_load_string(const char *json,
                                               const char *source,
                                               const belt__exp_overrides *ov,
                                               belt_config_error *err);

/* Frees everything.  NULL is a no-op. */
void belt__experiment_free(belt__experiment *e);

/* "live" or "simulate". */
const char *belt__exp_mode_name(belt__exp_mode m);

/* ---- live mode (experiment/live.c) -------------------------------------- */

/* What live mode measures besides the point's result: where its time
 * goes beyond the requested service. */
typedef struct belt__live_extra {
    double lateness_mean;     /* mean of submit - planned arrival (s): the
                               * arrival thread's timer lateness */
    double overrun_mean;      /* mean of measured - requested service (s):
                               * sleep slack, wake-up, executor */
    uint64_t failed;          /* jobs whose status was not ok */
} belt__live_extra;

/* Runs one repeat of point pt on a real pool (see experiment/live.c) with this
 * seed, calling progress (may be NULL) from the calling thread as results
 * come. Blocks for the length of the workload.  On success fills *out (free
 * with belt__point_result_free) and *extra (may be NULL) and returns BELT_OK.
 * Returns BELT_ENOTSUP for a point with speeds and a command (see
 * experiment/live.c), BELT_EINVAL
 * (NULL, no job to run, more than 10,000,000 jobs), BELT_ENOMEM, BELT_ESYS
 * (a thread could not start; errno), or a belt_pool_create()/submit error;
 * *out is then zeroed.  Every thread it starts is joined. */
int belt__live_run(const belt__exp_point *pt, uint64_t seed,
                   belt__sim_progress_fn progress, void *ctx,
                   belt__point_result *out, belt__live_extra *extra);

/* ---- results and plots (the program's side: experiment/out.c,
 * app/plot.c; src/cli/experiment.c drives them) ------------------ */

/* The scalar measurements of a point, in output order (CSV columns). */
typedef enum belt__exp_metric {
    BELT__M_SOJOURN_MEAN = 0, BELT__M_SOJOURN_P50, BELT__M_SOJOURN_P90,
    BELT__M_SOJOURN_P99, BELT__M_SOJOURN_P999, BELT__M_SOJOURN_MAX,
    BELT__M_WAIT_MEAN, BELT__M_WAIT_P50, BELT__M_WAIT_P90, BELT__M_WAIT_P99,
    BELT__M_WAIT_P999,
    BELT__M_SERVICE_MEAN, BELT__M_SERVICE_P50, BELT__M_SERVICE_P90,
    BELT__M_SERVICE_P99, BELT__M_SERVICE_P999,
    BELT__M_UTILIZATION, BELT__M_THROUGHPUT, BELT__M_MAKESPAN, BELT__M_JAIN,
    BELT__M_QLEN_MEAN, BELT__M_QLEN_MAX, BELT__M_STEALS, BELT__M_JOBS,
    BELT__M_COUNT
} belt__exp_metric;

/* One output row: a point's measurements, averaged over its repeats. */
typedef struct belt__exp_row {
    const belt__exp_point *pt;
    unsigned runs;                  /* repeats measured (0: not run) */
    double v[BELT__M_COUNT];        /* mean over the repeats */
    double ci[BELT__M_COUNT];       /* 95% CI half-width; NAN if runs < 2 */
    double *util;                   /* per worker, mean over repeats */
    double late, overrun;           /* live mode: belt__live_extra means;
                                     * NAN in simulate mode */
    double theory_mean, theory_p99; /* closed form where one exists (see
                                     * belt__exp_theory), else NAN */
    double wall;                    /* seconds of wall time for the point */
} belt__exp_row;

/* The CSV column name of m ("sojourn_mean", "utilization", ...). */
const char *belt__exp_metric_name(belt__exp_metric m);

/* Fills row from the nres results of its repeats (res[0..nres), extras
 * may be NULL: simulate mode).  Allocates row->util (free with
 * belt__exp_row_free).  Returns BELT_OK or BELT_ENOMEM. */
int belt__exp_row_fill(belt__exp_row *row, const belt__exp_point *pt,
                       const belt__point_result *res,
                       const belt__live_extra *extras, unsigned nres);

/* Frees row->util.  Can't fail. */
void belt__exp_row_free(belt__exp_row *row);

/* Closed-form mean and p99 sojourn for point pt, where queueing theory
 * has them: Poisson arrivals, exponential service, equal speeds, load < 1;
 * "random" (and any policy with 1 worker): each worker is an M/M/1 queue at
 * rate λ/n, mean 1/(μ - λ/n), p99 ln(100)/(μ - λ/n); "shared": M/M/c, mean
 * E[S] + C(c, a) E[S] / (c (1 - ρ)) with Erlang's C formula (no p99: NAN).
 * Others: NAN.  Can't fail. */
void belt__exp_theory(const belt__exp_point *pt, double *mean, double *p99);

/* Erlang's C formula: the probability that a job waits in an M/M/c queue
 * with c servers and offered load a = λ/μ (< c).  Can't fail. */
double belt__erlang_c(unsigned c, double a);

/* Writes DIR/results.csv and DIR/results.json for the rows (one per point,
 * in sweep order).  Returns BELT_OK, or BELT_ESYS with errno set and a
 * message in msg. */
int belt__exp_write(const char *dir, const belt__experiment *e,
                    const belt__exp_row *rows, size_t n, char *msg,
                    size_t msg_size);

/* Writes the gnuplot scripts and data (DIR/NAME.gp, DIR/NAME.dat) and, when
 * run_gnuplot, runs gnuplot on each (posix_spawnp, reaped) to make .svg and
 * .png files.  Returns BELT_OK; BELT_ENOENT when gnuplot is not installed
 * (scripts and data are still written; msg says so); BELT_ESYS when a file
 * could not be written or gnuplot failed (msg says which). */
int belt__exp_plot(const char *dir, const belt__experiment *e,
                   const belt__exp_row *rows, size_t n, bool run_gnuplot,
                   char *msg, size_t msg_size);

#endif /* BELT_EXPERIMENT_H */
