/* app/broker/submit.h: the submitting side of belt across machines (internal).
 *
 * `belt run --broker URL` publishes a run's jobs to <ns>:jobs and collects
 * their results from <ns>:run:<run>:results (keys and fields:
 * app/broker/broker.h). A belt__submit is one run: two connections, one for each of two threads:
 *
 *   the owner thread    publish, progress, cancel, wake, finish
 *   the collector       collect (XREAD BLOCK from its own cursor, no group)
 *
 * Every job published is remembered in an in-flight table (job key -> the
 * caller's job pointer and the job's stream id) under a mutex; collect hands
 * out the first result of each key and removes the key, so a job that was
 * delivered twice and finished twice is reported once (the later results
 * are counted as duplicates and dropped).
 *
 * Errors: BELT_OK or a negative BELT_E... code, with one sentence in
 * (msg, n) where the function takes them (app/broker/broker.h's codes:
 * BELT_EIO the connection, BELT_ECONFIG password/db rejected, BELT_EINVAL, BELT_ENOMEM).
 */
#ifndef BELT_BROKER_SUBMIT_H
#define BELT_BROKER_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "belt/job.h"
#include "app/broker/broker.h"

typedef struct belt__submit belt__submit;

typedef struct belt__submit_options {
    const belt__broker_url *url; /* required; copied */
    const char *ns;              /* key prefix; NULL: "belt" */
    unsigned max_deliveries;     /* per job; 0: 3 */
    uint64_t total;              /* jobs in the run (for <ns>:runs) */
    int64_t connect_timeout_ns;  /* <= 0: app/broker/broker.h's default (5 s) */
    const belt__broker_keys *keys; /* sign jobs with keys[0], take only
                                  * results signed with one of them (copied);
                                  * NULL or none: --insecure */
    const char *results_path;    /* absolute path of the results file, kept
                                  * in the run's record (for resume); may be
                                  * NULL */
    const char *config_path;     /* likewise, informational; may be NULL */
    bool resume;                 /* continue the crashed run of this host
                                  * whose results file is results_path, if
                                  * there is one (see belt__submit_open) */
} belt__submit_options;

/* How long the result stream of a run lives after its submitter was last
 * heard from: a crashed run's stream expires then (a finished or canceled
 * one is deleted at once).  `belt run --broker --resume` within that time
 * continues the run. */
#define BELT__SUBMIT_RESULTS_TTL_S 86400

/* Connects twice (owner and collector connections), creates the consumer
 * group (XGROUP CREATE <ns>:jobs workers 0 MKSTREAM) if missing, makes a run
 * id ("<unix s>-<host>-<pid>"), records the run in <ns>:runs (state
 * "running") and creates its result stream with an expiry of
 * BELT__SUBMIT_RESULTS_TTL_S, renewed by belt__submit_progress().
 *
 * With o->resume, first looks in <ns>:runs for a run of this host in state
 * "running" whose results file is o->results_path, whose submitter process
 * is gone and whose result stream still exists (the newest if several):
 * then that run is continued instead (belt__submit_adopted() says so).  Its
 * jobs still in <ns>:jobs and its results not yet collected are looked up
 * once, and publish() does not publish those jobs again: it waits for their
 * results (see there).  When that run's submitter still lives, BELT_EBUSY.
 *
 * On success stores the submitter in *out.  On failure nothing is left
 * allocated or written and msg says why (belt__broker_connect()'s codes:
 * BELT_EIO unreachable, BELT_ECONFIG password/db, BELT_EINVAL a too long
 * namespace, BELT_EBUSY the run to resume is still running, BELT_ENOMEM,
 * BELT_ESYS no pipe). */
int belt__submit_open(belt__submit **out, const belt__submit_options *o,
                      char *msg, size_t n);

/* The run id.  Valid until belt__submit_close().  Can't fail. */
const char *belt__submit_run_id(const belt__submit *s);

/* True when open() continued a crashed run (o->resume); *pending (may be
 * NULL) gets how many of its jobs were found still out (queued, running or
 * with an uncollected result).  Can't fail. */
bool belt__submit_adopted(const belt__submit *s, uint64_t *pending);

/* Owner thread.  Publishes count jobs in one pipelined round trip (XADD
 * <ns>:jobs, app/broker/broker.h's belt__broker_xadd_jobs): jobs[i] is
 * serialised (it may be a temporary copy; its id is the job key and must be
 * unique in the run) and orig[i] is what collect hands back for it (the
 * caller's pointer, never dereferenced here).  Keys are entered in the
 * in-flight table before anything is sent, so a result can never come back
 * unknown.  A job of an adopted run that was found out already is not sent
 * again: its key only gets its orig, and if its result came already, that
 * result is made ready for belt__submit_take_ready().  Stores in *published how many jobs, from the first, are known to
 * be in the stream (all of them on success).  When the connection is down it
 * first tries to reconnect once (no waiting).  Returns BELT_OK; BELT_EIO when
 * the connection is lost (retry jobs[*published..] later: the others may or
 * may not have been added, at-least-once); BELT_ECONFIG (reconnect refused),
 * BELT_EBUSY (an error reply, e.g. Redis out of memory), BELT_ENOMEM,
 * BELT_EINVAL (a job without id).  Keys not published stay in the table. */
int belt__submit_publish(belt__submit *s, const belt_job *const *jobs,
                         const belt_job *const *orig, size_t count,
                         size_t *published, char *msg, size_t n);

/* Owner thread, after publish(): moves up to max results made ready by
 * publish() (jobs of an adopted run whose result had come before the job
 * was handed over) into out and returns how many.  Can't fail. */
typedef struct belt__submit_item belt__submit_item;
size_t belt__submit_take_ready(belt__submit *s, belt__submit_item **out,
                               size_t max);

/* Owner thread.  Job `key` will not be published in this run (a --resume
 * found it done): an adopted run forgets it.  Can't fail. */
void belt__submit_forget(belt__submit *s, const char *key);

/* One result handed out by collect. */
struct belt__submit_item {
    const belt_job *job; /* orig[i] of the publish that sent it */
    belt_result *r;      /* decoded: status, exit_code, signal, attempts,
                          * times, duration, error, stdout/stderr text;
                          * r->job == job, r->seq == job's seq, worker -1.
                          * The caller owns it (belt_result_free()) */
    char *line;          /* the worker's JSON Lines record with its '\n', to
                          * write through unchanged; NULL when the broker
                          * only gave a dead-letter reason (serialise r) */
    size_t len;
    belt__broker_id entry; /* the result-stream entry it came from */
    bool entry_last;     /* the last item made of that entry: once it is
                          * written, belt__submit_written(entry) */
};

/* Frees an item and its line (not its result, which the caller took over,
 * unless `with_result`).  NULL is a no-op. */
void belt__submit_item_free(belt__submit_item *it, bool with_result);

/* Owner thread: every item taken so far up to and including the one with
 * entry_last and this entry id is written to the results file (write(2)
 * returned).  The collector then trims the result stream up to there (XTRIM
 * MINID, pipelined with its next read), so a result leaves Redis only once
 * it is in the file: a submitter killed at any moment loses none (resume
 * reads them again).  Can't fail. */
void belt__submit_written(belt__submit *s, const belt__broker_id *entry);

/* Collector thread.  Waits up to about 2 s (less when woken by
 * belt__submit_wake()) for results on the run's result stream, reading from
 * its own cursor (XREAD COUNT BLOCK, no consumer group), and stores up to max
 * new items (malloc'd; the caller frees them) in out, *got of them; max must
 * be at least BELT__BROKER_RECORDS_MAX (an entry's records are taken whole;
 * smaller is BELT_EINVAL).  Entries are trimmed as belt__submit_written()
 * allows.  With keys, an entry not signed with one of them is refused
 * (counted, see belt__submit_refused()), and its jobs end as ERROR results
 * "its result was refused: <why>" rather than wait forever.  A result for a key not in flight
 * (a second delivery, or after a cancel) is dropped and counted.  A
 * dead-letter entry without a result record (fields key, reason,
 * deliveries) becomes an ERROR result "dead-lettered after N deliveries:
 * <reason>", and a worker's note that it refused the job (fields refused,
 * reason, worker: its signature did not verify there) an ERROR result
 * "refused by worker W: <reason>".  A lost connection is
 * re-established with backoff (waiting on the stop pipe, so a wake ends the
 * wait) and reading resumes from the cursor: nothing is lost, and what is
 * read twice is deduplicated.  Returns BELT_OK (*got may be 0),
 * BELT_ECANCELED once belt__submit_wake() was called and nothing more is
 * to be read, BELT_ECONFIG when a reconnect is refused for good,
 * BELT_ENOMEM.  msg says why. */
int belt__submit_collect(belt__submit *s, belt__submit_item **out,
                         size_t max, size_t *got, char *msg, size_t n);

/* Owner thread.  Makes a blocked collect return: sets the stop flag,
 * writes the stop pipe, and XADDs a `stop` entry to the result stream (if
 * that fails, collect notices within its block time).  Can't fail. */
void belt__submit_wake(belt__submit *s);

/* Owner thread.  Rewrites the run's record in <ns>:runs with the counts
 * so far ("done", "failed"), at most once a second (now_ns: any monotonic
 * clock).  Errors are ignored (the record is informational).  Can't
 * fail. */
void belt__submit_progress(belt__submit *s, uint64_t done, uint64_t failed,
                           int64_t now_ns);

/* Owner thread, after the collector stopped.  Takes every job still in
 * flight out of the table and removes its entry from <ns>:jobs (XDEL: not
 * yet delivered ones never run; a worker already running one finishes it
 * and its result is dropped).  Calls fn(ctx, orig) for each, in no
 * particular order.  Returns how many.  Errors talking to Redis are
 * ignored (the jobs are still reported to fn). */
size_t belt__submit_cancel(belt__submit *s,
                           void (*fn)(void *ctx, const belt_job *orig),
                           void *ctx);

/* Owner thread, after the collector stopped.  Marks the run `state`
 * ("done" or "canceled") in <ns>:runs with the final counts and deletes
 * the result stream (workers then skip the run's jobs they still read, and
 * late results re-create nothing: they XADD with NOMKSTREAM).
 * Returns BELT_OK, or BELT_EIO/BELT_EBUSY with msg (nothing else
 * changes). */
int belt__submit_finish(belt__submit *s, const char *state, uint64_t done,
                        uint64_t failed, char *msg, size_t n);

/* Results dropped as duplicates so far (any thread).  Can't fail. */
uint64_t belt__submit_duplicates(const belt__submit *s);

/* Result entries refused so far for their signature (any thread), and the
 * reason of the first one in why (when the count is not 0).  Can't fail. */
uint64_t belt__submit_refused(belt__submit *s, char *why, size_t n);

/* Owner thread.  Counts the workers of the namespace whose heartbeat in
 * <ns>:workers is at most max_age_s seconds old, into *live.  BELT_OK, or
 * BELT_EIO (msg). */
int belt__submit_workers(belt__submit *s, int64_t max_age_s, size_t *live,
                         char *msg, size_t n);

/* Closes both connections and frees s (and any items still in flight: their
 * orig pointers are forgotten).  NULL is a no-op. */
void belt__submit_close(belt__submit *s);

#endif /* BELT_BROKER_SUBMIT_H */
