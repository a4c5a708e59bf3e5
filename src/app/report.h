/* app/report.h: turning results into the things people read: JSON Lines result
 * records, GNU parallel's job log, and summary statistics.  Internal (belt__
 * names), used by `belt run`; no state outside the objects it hands out.
 *
 * Times in records are ISO 8601 UTC with milliseconds
 * ("2025-01-31T12:00:00.123Z"); durations are milliseconds with three
 * decimals (microsecond resolution).  See belt-run(1), RESULTS.
 */
#ifndef BELT_REPORT_H
#define BELT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "belt/job.h"

/* ---- JSON Lines ------------------------------------------------------- */

/* One input argument of a command-mode job (`belt run CMD ::: ARGS`):
 * len bytes at p, not NUL-terminated. */
typedef struct belt__report_arg {
    const char *p;
    size_t len;
} belt__report_arg;

/* Serialises r as one compact JSON object followed by '\n' (keys: id, seq,
 * run or argv (what the job ran; none for built-in kinds), args (only when
 * given: the input arguments of a command-mode job), status, exit_code,
 * signal, attempts, worker, queued, started, ended, duration_ms, stdout, stderr, [stdout_path, stderr_path,
 * stdout_truncated, stderr_truncated,] error, attempt_log).  r->job must be
 * valid (its id is read).  Bytes that are not UTF-8 become U+FFFD; NUL bytes
 * are kept (as \u0000).  Returns a malloc'd string the caller frees and its
 * length in *len, or NULL (nothing allocated) when memory runs out. */
char *belt__report_result_line(const belt_result *r, size_t *len);

/* Appends the same record (with its '\n') to the malloc'd buffer *buf
 * (length *len, capacity *cap; NULL, 0, 0 to start), growing it as
 * belt__reserve() does, so a caller writing many records can reuse one
 * buffer.  The buffer stays NUL-terminated.  Returns 0 with *len advanced,
 * or -1 when memory runs out: *len unchanged, the buffer cut back there, and
 * the buffer (possibly moved: see *buf and *cap) still the caller's to
 * free. */
int belt__report_result_append(char **buf, size_t *len, size_t *cap,
                               const belt_result *r);

/* The same two with "run" given (NULL: the job's run or argv; a command's
 * jobs may run through another shell or directly, and the record shows the
 * command as written) and the job's input arguments args[0..nargs) in an
 * "args" array (args NULL: no "args" key). */
int belt__report_result_append_args(char **buf, size_t *len, size_t *cap,
                                    const belt_result *r, const char *run,
                                    const belt__report_arg *args,
                                    size_t nargs);
char *belt__report_result_line_args(const belt_result *r, const char *run,
                                    const belt__report_arg *args,
                                    size_t nargs, size_t *len);

/* Serialises a job (for --dry-run) the same way: seq, id, kind, run or argv,
 * env, cwd, stdin, duration_ms, timeout_ms, retries, output.  Returns a
 * malloc'd line or NULL when memory runs out. */
char *belt__report_job_line(const belt_job *job, size_t *len);

/* Formats a CLOCK_REALTIME time in nanoseconds as ISO 8601 UTC with
 * milliseconds into buf (at least 32 bytes).  Returns buf.  Can't fail. */
char *belt__format_time(int64_t ns, char *buf, size_t size);

/* The command a job runs, for logs: `run` as is, `argv` shell-quoted and
 * joined with spaces, "belt:sleep 1.5s" for built-in kinds.  Returns a
 * malloc'd string or NULL when memory runs out. */
char *belt__job_command(const belt_job *job);



/* ---- GNU parallel's --joblog format ------------------------------------ */

/* Writes the header line "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\t
 * Exitval\tSignal\tCommand".  Returns 0, or -1 with errno set. */
int belt__joblog_header(FILE *f);

/* Writes one job-log line for r (Seq is r->seq + 1, Host ":", Starttime in
 * epoch seconds with 3 decimals, JobRuntime "%10.3f" seconds, Send 0,
 * Receive = bytes of stdout, Exitval as parallel's: the exit code, 0 when
 * a signal killed the job, -1 when belt did (timeout, cancel) or it never
 * exited; Signal; Command with newlines written as NUL, as parallel does)
 * and flushes it.  `command` may be NULL (then "-").  Returns 0, or -1
 * with errno set. */
int belt__joblog_line(FILE *f, const belt_result *r, const char *command,
                      uint64_t receive_bytes);

/* The same with Seq given (command mode: parallel's job number, which
 * --resume leaves gaps in). */
int belt__joblog_line_seq(FILE *f, const belt_result *r, uint64_t seq,
                          const char *command, uint64_t receive_bytes);

/* ---- summary statistics --------------------------------------------- */

/* Counts per status, and a log-linear histogram of job durations (3%
 * precision, fixed size: the memory does not grow with the number of jobs).
 * Not thread-safe: one owner. */
typedef struct belt__runstats belt__runstats;

/* Returns new, empty statistics, or NULL when memory runs out. */
belt__runstats *belt__runstats_new(void);

/* Frees.  NULL is a no-op. */
void belt__runstats_free(belt__runstats *s);

/* Counts r.  `resumed` marks a job skipped because a previous run already
 * did it (counted as "resumed", which is a success).  Durations and busy
 * time only count jobs that ran (attempts > 0).  Can't fail. */
void belt__runstats_add(belt__runstats *s, const belt_result *r, bool resumed);

/* Results counted with status st (resumed ones count under "resumed", not
 * under SKIPPED). */
uint64_t belt__runstats_count(const belt__runstats *s, belt_job_status st);
uint64_t belt__runstats_resumed(const belt__runstats *s);
uint64_t belt__runstats_total(const belt__runstats *s);
/* Results that are neither ok nor resumed. */
uint64_t belt__runstats_unsuccessful(const belt__runstats *s);

/* The p-quantile (0 < p <= 1) of the durations of jobs that ran, in ns
 * (bucket midpoint; 0 when none ran). */
int64_t belt__runstats_quantile(const belt__runstats *s, double p);

/* Writes the end-of-run summary (two or three lines, each starting with
 * "belt: ") to out: counts per status, wall time, jobs/s, p50/p99 duration,
 * and per-worker busy share (busy_ns[i] / wall_ns for each of `workers`
 * workers; busy_ns may be NULL to leave that line out). */
void belt__runstats_summary(const belt__runstats *s, FILE *out, int64_t wall_ns,
                         const int64_t *busy_ns, unsigned workers);

/* Formats a duration in ns for humans ("850us", "12.3ms", "4.20s",
 * "3m05s", "2h01m") into buf.  Returns buf. */
char *belt__report_duration(int64_t ns, char *buf, size_t size);

#endif /* BELT_REPORT_H */
