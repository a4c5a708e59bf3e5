/* belt/sched.h: running a config's jobs in dependency order.
 *
 * A scheduler hands out the jobs of a loaded config (belt/config.h) as they
 * become ready: a job is ready once every job its "after" patterns match
 * has succeeded.  A job whose dependency did not succeed is never run: it
 * comes back as an unrun result (SKIPPED), as do jobs a resume file says
 * already succeeded, and, after a cancel (or halt_on_error), every job not
 * yet handed out (CANCELED).
 *
 * Ownership: jobs handed out by the scheduler (to run, or inside an unrun
 * result) are owned by the scheduler and stay valid until the caller passes
 * their result to belt_sched_done(); so write out (or serialise) a result
 * first, then report it done.  The scheduler thus holds only the jobs in
 * flight, and memory stays bounded however many jobs a matrix expands to.
 * On any error the caller still owns what it passed in.  No function here
 * prints or exits, and none keeps global state: distinct schedulers may be
 * used from distinct threads; a scheduler is used by one thread at a time.
 */
#ifndef BELT_SCHED_H
#define BELT_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "belt/config.h"
#include "belt/job.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The start of the error text of an unrun result for a job that the resume
 * file says already succeeded: "already ok in <file>" (status SKIPPED). */
#define BELT_SCHED_RESUMED_PREFIX "already ok in "

typedef struct belt_sched belt_sched;

/* What the CLI adds on top of the config.  Zero/NULL: nothing; a zeroed
 * struct ({0}) is the defaults. */
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
    void *reserved[4];       /* zero: room to grow (the ABI rule of
                              * belt/pool.h) */
} belt_sched_options;

/* Creates a scheduler over cfg's jobs (cfg must outlive it); opt may be
 * NULL.  Jobs found ok in the resume file count as succeeded for their
 * dependents.  A missing resume file means nothing was done yet.  Returns
 * NULL and fills *err (err may be NULL) on failure: a resume file that
 * cannot be read (source is its path, line 0, the system's message) or
 * holds a line that is not a result record (a JSON object with string "id"
 * and "status"; a last, unterminated line that does not parse is taken as
 * an interrupted write and ignored), or out of memory. */
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

#endif /* BELT_SCHED_H */
