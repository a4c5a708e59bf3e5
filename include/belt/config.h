/* belt/config.h: loading a JSON job config and expanding its jobs (the
 * scheduler that runs them in dependency order is belt/sched.h).
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
 * belt_config_free().  On any error the caller still owns what it passed
 * in.  No function here prints or exits, and none keeps global state:
 * distinct configs may be used from distinct threads, and one config may
 * be shared read-only by several threads.
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
/* Most retries a job may have ("retries"; `belt run --retries`). */
#define BELT_CONFIG_MAX_RETRIES 100

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
 * the online CPUs of the machine it runs on (at least 1).  Can't fail. */
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

#ifdef __cplusplus
}
#endif

#endif /* BELT_CONFIG_H */
