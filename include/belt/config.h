/* belt/config.h: loading a JSON job config, expanding its jobs, and
 * scheduling them in dependency order.
 *
 * A config (see belt.json(5) and configs/belt.schema.json) has top-level
 * "workers", "policy", "defaults" and "jobs" (plus "results",
 * "halt_on_error", "description" and "$schema").  Each entry of "jobs" is a
 * job *template*; a template with a "matrix" expands to the cartesian
 * product of its matrix values, substituted into {name} placeholders of id,
 * run, argv items, env values, cwd, stdin, output_dir and after patterns.
 * Expansion is lazy: a 1,000,000-point matrix is never held in memory as
 * 1,000,000 jobs.
 *
 * Expansion order (a job's `seq`): templates in the order of "jobs"; within
 * a matrix template, the points in nested-loop order over the matrix keys in
 * the order they appear in the JSON object, the first key varying slowest.
 * {"a": [1, 2], "b": ["x", "y"]} gives a=1 b=x, a=1 b=y, a=2 b=x, a=2 b=y.
 *
 * Placeholders: "{name}" where name is a matrix key of the job is replaced
 * by the value (strings as they are, numbers as JSON writes them, booleans
 * as true/false).  "{{" and "}}" stand for literal braces.  Any other brace
 * text ("{}", "${HOME}", "{print $1}") is left as it is, except in "id",
 * where "{x}" naming no matrix key is an error.
 *
 * Ids: a job without "id" gets "job-<i>" (i: its index in "jobs"), or for a
 * matrix job "job-<i>-<p>" (p: the point's 0-based index in expansion order
 * within the job).  A matrix job's own id must use every matrix key that
 * has more than one value, so that its points' ids differ.
 *
 * Dependencies: "after" lists patterns over job ids, matched with fnmatch(3)
 * (no flags: "*" also matches "/").  A pattern is first substituted per
 * matrix point, so "after": ["fetch-{n}"] pairs point n with fetch-n.  A
 * pattern without glob characters (* ? [ \) must name an existing job
 * exactly; a glob pattern never matches the job's own ids (nor other points
 * of its own matrix); every pattern must match at least one job.  Cycles are
 * detected between job templates: a template that (through any of its
 * points) waits for another template's jobs may not be waited for, directly
 * or not, by that template.
 *
 * Errors are reported as jansson reports JSON errors, plus the JSON path:
 *     jobs.json:14:9: jobs[3].timeout: expected a duration like "30s"
 * The line and column are jansson's for malformed JSON; for the other
 * errors they are those of the offending value (or key, for unknown keys),
 * found by rescanning the text.
 *
 * Ownership: belt_config_load() returns a config the caller frees with
 * belt_config_free().  Jobs handed out by the scheduler (to run, or inside an
 * unrun result) are owned by the scheduler and stay valid until the caller
 * passes their result to belt_sched_done(); so write out (or serialise) a
 * result first, then report it done.  The scheduler thus holds only the jobs
 * in flight, and memory stays bounded however many jobs a matrix expands to.
 * On any error the caller still owns what it passed in.  No function here
 * prints or exits, and none keeps global state: distinct configs and
 * schedulers may be used from distinct threads; one config may be shared
 * read-only by several threads; a scheduler is used by one thread at a time.
 */
#ifndef BELT_CONFIG_H
#define BELT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "belt/job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most jobs a config may expand to (all matrices together). */
#define BELT_CONFIG_MAX_JOBS 10000000u

/* The limits of "workers" (besides 0, all CPUs). */
#define BELT_CONFIG_MAX_WORKERS 4096

/* The start of the error text of an unrun result for a job that the resume
 * file says already succeeded: "already ok in <file>" (status SKIPPED). */
#define BELT_SCHED_RESUMED_PREFIX "already ok in "

typedef struct belt_config belt_config;

/* Where and why loading failed. */
typedef struct belt_config_error {
    char source[256]; /* file name, or "<string>" */
    int line;         /* 1-based; 0 if unknown */
    int column;       /* 1-based, in characters; 0 if unknown */
    char path[256];   /* JSON path, e.g. "jobs[3].timeout"; "" for the root */
    char text[512];   /* what is wrong, with a hint ("did you mean ...?") */
} belt_config_error;

/* Formats err as one line into buf (at most size bytes, always
 * NUL-terminated when size > 0; longer text is cut).  The shape is
 *     source:line:column: path: text
 * where ":line:column" is left out when line is 0, ":column" when column is
 * 0, and "path: " when path is empty.  Returns buf.  Can't fail. */
char *belt_config_error_format(const belt_config_error *err, char *buf,
                               size_t size);

/* Loads and fully validates the config in the file at path (types, unknown
 * keys, durations, worker count, policy, matrices, duplicate ids, unknown or
 * cyclic dependencies).  On success returns a config the caller frees with
 * belt_config_free().  On failure returns NULL and fills *err (err may be
 * NULL if the caller does not care): an unreadable file gives line 0 and
 * the system's message; running out of memory gives "out of memory". */
belt_config *belt_config_load(const char *path, belt_config_error *err);

/* Same, from a NUL-terminated string; `source` names it in errors (NULL:
 * "<string>").  The string is not kept. */
belt_config *belt_config_load_string(const char *json, const char *source,
                                     belt_config_error *err);

/* Frees the config.  NULL is a no-op.  No scheduler over it may remain. */
void belt_config_free(belt_config *cfg);

/* "workers" as written: -1 when the config does not set it, 0 for "all
 * CPUs", else the count.  When it is a percentage ("50%"), the count for
 * this machine's online CPUs (at least 1).  Can't fail. */
int belt_config_workers(const belt_config *cfg);

/* The percentage when "workers" was written as one ("50%" gives 50), else
 * 0.  Can't fail. */
int belt_config_workers_percent(const belt_config *cfg);

/* Parses a worker count as the config and the CLI's -j accept it: "N" (1 to
 * BELT_CONFIG_MAX_WORKERS), "0" (all of ncpu), or "P%" (1 to 1000 percent
 * of ncpu, rounded down, at least 1).  Stores the count in *out and returns
 * BELT_OK; returns BELT_EINVAL for anything else (or ncpu 0), leaving *out
 * untouched.  Can't fail otherwise. */
int belt_parse_workers(const char *text, unsigned ncpu, unsigned *out);

/* "policy", or NULL when the config does not set it.  Valid as long as cfg;
 * always one of belt_pool_policy_names(). */
const char *belt_config_policy(const belt_config *cfg);

/* "results" (the results file path), or NULL when not set.  Valid as long
 * as cfg. */
const char *belt_config_results(const belt_config *cfg);

/* "halt_on_error" (false when not set).  Can't fail. */
bool belt_config_halt_on_error(const belt_config *cfg);

/* Total number of jobs after matrix expansion (at least 1, at most
 * BELT_CONFIG_MAX_JOBS).  Can't fail. */
uint64_t belt_config_job_count(const belt_config *cfg);

/* Builds job number `seq` (0-based expansion order) with belt_job_init()
 * defaults, then the config's defaults, then the job's own values; its seq
 * is `seq`, its user pointer NULL.  The job and all its strings are one
 * allocation owned by the caller, freed with belt_config_job_free().
 * Returns NULL if seq >= belt_config_job_count() or memory runs out.  This is
 * what --dry-run iterates over: one job at a time, in O(1) memory. */
belt_job *belt_config_job_at(const belt_config *cfg, uint64_t seq);

/* Frees a job from belt_config_job_at().  NULL is a no-op.  Not for jobs
 * handed out by a scheduler (belt_sched_done() frees those). */
void belt_config_job_free(belt_job *job);

/* ---- the scheduler: which job runs next ------------------------------ */

typedef struct belt_sched belt_sched;

/* What the CLI adds on top of the config.  Zero/NULL: nothing. */
typedef struct belt_sched_options {
    const char *resume_path; /* JSON Lines results: skip jobs whose id has
                              * status "ok" there (or an earlier resume's
                              * "skipped" + BELT_SCHED_RESUMED_PREFIX line);
                              * a file that does not exist counts as empty;
                              * lines that are not JSON objects with a
                              * string "id" are ignored (e.g. the torn last
                              * line of a killed run) */
    bool halt_on_error;      /* stop handing out jobs after a failure (or'ed
                              * with the config's "halt_on_error") */
} belt_sched_options;

/* Creates a scheduler over cfg's jobs (cfg must outlive it); opt may be
 * NULL.  Jobs found ok in the resume file count as succeeded for their
 * dependents.  Returns NULL and fills *err (err may be NULL) on failure:
 * unreadable resume file (source is its path, line 0, the system's
 * message), or out of memory. */
belt_sched *belt_sched_new(const belt_config *cfg,
                           const belt_sched_options *opt,
                           belt_config_error *err);

/* The next job that may run now (every job it waits for succeeded or was
 * already ok), lowest seq first, or NULL if none is ready at the moment (or
 * memory ran out building it: it stays ready, try again), or after a cancel.
 * The job's seq is its expansion index; it stays valid until its result is
 * passed to belt_sched_done(). */
const belt_job *belt_sched_next(belt_sched *s);

/* A result for a job that will not run, or NULL if there is none now (or
 * memory ran out: try again).  Status SKIPPED with error `dependency "X"
 * failed (status S)` (a job it waits for did not succeed; S is that job's
 * status, "skipped" along a chain), SKIPPED with error
 * BELT_SCHED_RESUMED_PREFIX "<resume file>", or CANCELED with the cancel
 * reason (halt_on_error: `halted after "X" failed (status S)`).  Attempts 0,
 * worker -1, times 0.  The caller owns the result (belt_result_free()) and
 * must pass it to belt_sched_done() like a run job's, which frees its job.
 * Call it until NULL before waiting for running jobs: belt_sched_next() may
 * queue unrun results while it looks for a ready job. */
belt_result *belt_sched_next_unrun(belt_sched *s);

/* Records the result of a job handed out by belt_sched_next() or carried by
 * a result from belt_sched_next_unrun(), and frees that job (r->job is
 * dangling afterwards; r itself stays the caller's).  A run job's status
 * decides its dependents: OK lets them run, anything else skips them (and
 * with halt_on_error cancels every job not yet handed out).  r->job must be
 * the pointer s handed out; a result whose job is not out (r->seq unknown,
 * already done, or a job from belt_config_job_at()) is ignored, as is NULL.
 * Can't fail. */
void belt_sched_done(belt_sched *s, const belt_result *r);

/* True when every job has been handed out (to run or as unrun) and every
 * one of them has been recorded done.  Can't fail. */
bool belt_sched_finished(const belt_sched *s);

/* Jobs handed out (run or unrun) and not yet recorded done.  Can't fail. */
uint64_t belt_sched_running(const belt_sched *s);

/* Stops handing out jobs: belt_sched_next() returns NULL from now on, and
 * every job not yet handed out becomes an unrun result, CANCELED with
 * reason `why` (copied; NULL: "canceled"), or SKIPPED if that was already
 * decided.  Jobs already out are still recorded with belt_sched_done().
 * Only the first cancel's reason counts.  Can't fail (if the copy cannot be
 * made, the reason is "canceled"). */
void belt_sched_cancel(belt_sched *s, const char *why);

/* Frees the scheduler and any job still out.  NULL is a no-op. */
void belt_sched_free(belt_sched *s);

/* Usage: a dispatch loop, with N the pool's capacity.
 *
 *     while (!belt_sched_finished(s)) {
 *         belt_result *u;  const belt_job *j;
 *         while ((u = belt_sched_next_unrun(s)) != NULL) {
 *             report(u); belt_sched_done(s, u); belt_result_free(u);
 *         }
 *         while (inflight < N && (j = belt_sched_next(s)) != NULL) {
 *             submit(j); inflight++;
 *         }
 *         if (inflight == 0) continue;   // unrun results may have appeared
 *         r = receive(); inflight--;
 *         report(r); belt_sched_done(s, r); belt_result_free(r);
 *     }
 */

#ifdef __cplusplus
}
#endif

#endif /* BELT_CONFIG_H */
