/* belt/job.h: what a job is, and what running it produced.
 *
 * A belt_job describes one unit of work: a command (through /bin/sh or as an
 * argv vector, no shell), or a built-in kind that runs no process (sleep,
 * spin, noop).  A belt_result says what happened: status, exit code or
 * signal, every attempt, timing, captured output, and belt's own error
 * message when it could not run the job at all.
 *
 * Ownership: the caller owns a belt_job and every string in it, and must keep
 * it alive until the job's result has been received; belt never modifies a
 * job.  A belt_result is allocated by belt and owned by whoever received it
 * from a results channel; free it with belt_result_free().
 *
 * Times: *_ns timestamps in results are CLOCK_REALTIME nanoseconds since the
 * epoch (for reports); durations are measured on CLOCK_MONOTONIC.
 *
 * How an exec job's process is run (Linux >= 5.3, glibc >= 2.34):
 *   - posix_spawn() (posix_spawnp() for argv: PATH lookup uses belt's own
 *     PATH, not one set in job->env), in a new process group whose id is the
 *     child's pid, with an empty signal mask and default dispositions for
 *     INT, QUIT, TERM, PIPE, CHLD, ALRM, USR1, USR2 (HUP is left alone so
 *     that `nohup belt ...` still works).
 *   - Only fds 0, 1 and 2 are open in the child; stdin is /dev/null unless
 *     stdin_path is set.  The environment is belt's `environ` (read at spawn
 *     time: do not setenv() while jobs run) plus job->env.
 *   - Waiting uses a pidfd in one poll() with the output pipes and the
 *     cancel token: nothing busy-waits or polls by sleeping.  The program
 *     must not reap children it did not start (no waitpid(-1), SIGCHLD not
 *     SIG_IGN).
 *   - When the child exits, the rest of its process group gets SIGKILL and
 *     belt stops reading its pipes once what was buffered at exit is read:
 *     a job that leaves background processes behind can neither keep them
 *     running nor hold the job open.  (Processes that left the group with
 *     setsid()/setpgid() are out of reach.)
 *   - Timeout or cancel: SIGTERM to the process group, then SIGKILL to the
 *     group kill_grace_ns later if the child is still running.
 */
#ifndef BELT_JOB_H
#define BELT_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum belt_job_kind {
    BELT_JOB_EXEC = 0, /* run a command: `run` through /bin/sh, or `argv` */
    BELT_JOB_SLEEP,    /* wait duration_ns without using CPU */
    BELT_JOB_SPIN,     /* keep one CPU busy for duration_ns of the worker
                        * thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a
                        * loaded machine stretches it as it would real work */
    BELT_JOB_NOOP      /* do nothing, succeed */
} belt_job_kind;

/* Where an exec job's stdout and stderr go. */
typedef enum belt_output_mode {
    BELT_OUTPUT_CAPTURE = 0, /* into the result, up to output_limit bytes each */
    BELT_OUTPUT_FILES,       /* into files under output_dir */
    BELT_OUTPUT_GROUP,       /* spooled to unlinked temporary files (no size
                              * limit) handed over in the result's out_fd and
                              * err_fd; the receiver writes each to belt's own
                              * stdout/stderr as one block per job (GNU
                              * parallel's --group), so two jobs never mix */
    BELT_OUTPUT_LINES,       /* whole lines passed to belt's fd 1 and 2 as
                              * they come, one write() per batch of complete
                              * lines (GNU parallel's --line-buffer); a last
                              * unterminated line is written when the job
                              * ends; a line longer than 1 MiB is written in
                              * pieces */
    BELT_OUTPUT_INHERIT,     /* the child writes to belt's stdout/stderr */
    BELT_OUTPUT_DISCARD      /* /dev/null */
} belt_output_mode;

typedef enum belt_job_status {
    BELT_JOB_OK = 0,   /* exit code 0 (or a built-in kind that finished) */
    BELT_JOB_FAILED,   /* non-zero exit code, or killed by a signal */
    BELT_JOB_TIMEOUT,  /* killed because it ran past its timeout */
    BELT_JOB_SKIPPED,  /* not run: a dependency did not succeed, or --resume */
    BELT_JOB_ERROR,    /* belt could not run it (e.g. command not found) */
    BELT_JOB_CANCELED  /* not run or stopped because the run was canceled */
} belt_job_status;

/* The names of the three enumerations above, as configs, result records
 * and the broker's wire format spell them: XX(SUFFIX, "name") in enum
 * order (one list each, so that no table can drift from its enum; job.c
 * checks the order at compile time). */
#define BELT_JOB_KIND_MAP(XX)                                                 \
    XX(EXEC, "exec") XX(SLEEP, "sleep") XX(SPIN, "spin") XX(NOOP, "noop")
#define BELT_OUTPUT_MODE_MAP(XX)                                              \
    XX(CAPTURE, "capture") XX(FILES, "files") XX(GROUP, "group")              \
    XX(LINES, "lines") XX(INHERIT, "inherit") XX(DISCARD, "discard")
#define BELT_JOB_STATUS_MAP(XX)                                               \
    XX(OK, "ok") XX(FAILED, "failed") XX(TIMEOUT, "timeout")                  \
    XX(SKIPPED, "skipped") XX(ERROR, "error") XX(CANCELED, "canceled")

typedef struct belt_job {
    const char *id;          /* unique id, for results and dependencies */
    belt_job_kind kind;
    const char *run;         /* shell command (kind EXEC), or NULL */
    char *const *argv;       /* NULL-terminated argv (kind EXEC), or NULL.
                              * Exactly one of run and argv is set */
    char *const *env;        /* NULL-terminated "NAME=value" additions, or
                              * NULL.  One replaces an inherited variable of
                              * the same name; a later entry replaces an
                              * earlier one */
    const char *cwd;         /* working directory, or NULL: belt's own */
    const char *stdin_path;  /* file to read stdin from; NULL: /dev/null */
    int64_t duration_ns;     /* SLEEP and SPIN; must not be negative */
    int64_t timeout_ns;      /* <= 0: none.  Counted from the start of each
                              * attempt; applies to SLEEP and SPIN too */
    int64_t kill_grace_ns;   /* after SIGTERM, SIGKILL this much later.
                              * 0: 2 s; negative: SIGKILL at once */
    unsigned retries;        /* extra attempts after a FAILED or TIMEOUT
                              * attempt (ERROR and CANCELED are final) */
    int64_t retry_delay_ns;  /* first backoff delay d; doubles after each
                              * retry up to retry_max_delay_ns.  "Equal
                              * jitter": the wait is uniform in [d/2, d].
                              * <= 0: retry at once */
    int64_t retry_max_delay_ns; /* cap of the backoff delay; <= 0: 30 s */
    belt_output_mode output;
    size_t output_limit;     /* CAPTURE: bytes kept per stream; 0: 1 MiB.
                              * Output beyond it is read and dropped */
    const char *output_dir;  /* FILES: directory (created if missing) for
                              * <id>.out / <id>.err.  In the file name the id
                              * keeps [A-Za-z0-9._-], other bytes and a
                              * leading '.' become '_' (NULL id: "job-<seq>");
                              * each attempt truncates the files */
    uint64_t seq;            /* caller's sequence number, copied to result */
    void *user;              /* caller's pointer, copied to the result */
    void *reserved[4];       /* zero: room to grow (the ABI rule of
                              * belt/pool.h) */
} belt_job;

/* Fills job with the defaults: kind EXEC, CAPTURE, 1 MiB limit, no timeout,
 * 2 s kill grace, no retries, 100 ms first backoff, 30 s backoff cap; every
 * pointer NULL.  Can't fail. */
void belt_job_init(belt_job *job);

/* One attempt at running a job. */
typedef struct belt_attempt {
    belt_job_status status;
    int exit_code;        /* -1 if the process did not exit normally */
    int signal;           /* terminating signal, or 0 */
    int64_t started_ns, ended_ns; /* CLOCK_REALTIME */
    int64_t duration_ns;  /* CLOCK_MONOTONIC */
} belt_attempt;

/* A result describes the whole job: status, exit_code, signal, duration and
 * output are those of the last attempt (earlier ones are in attempt_log);
 * started_ns is the start of the first attempt, ended_ns the end of the last
 * one (or of the last backoff wait, if canceled there). */
typedef struct belt_result {
    const belt_job *job;  /* the job that was run (owned by the caller) */
    uint64_t seq;         /* job->seq */
    void *user;           /* job->user */
    belt_job_status status; /* of the last attempt; CANCELED if canceled
                           * during a backoff wait or before the first one */
    int exit_code;        /* of the last attempt; -1 if none */
    int signal;           /* of the last attempt; 0 if none */
    unsigned attempts;    /* how many attempts ran: 0 for skipped, for a job
                           * canceled before it started, and for a job belt
                           * rejected before trying (no command, bad env
                           * entry, unknown kind, negative duration) */
    int worker;           /* index of the worker that ran it, -1 if none */
    int64_t queued_ns, started_ns, ended_ns; /* CLOCK_REALTIME; the executor
                           * keeps a non-zero queued_ns set by the pool, else
                           * sets it to started_ns */
    int64_t duration_ns;  /* of the last attempt, CLOCK_MONOTONIC */
    belt_attempt *attempt_log; /* every attempt, `attempts` of them */
    char *out, *err;      /* CAPTURE: NUL-terminated output (may hold NULs;
                           * use the lengths), "" if none; NULL in other
                           * modes or when no process was started */
    size_t out_len, err_len;
    bool out_truncated, err_truncated; /* CAPTURE: limit reached */
    char *out_path, *err_path; /* FILES: where the output went */
    int out_fd, err_fd;   /* GROUP: the spooled output, an unlinked temporary
                           * file open for reading at offset 0 (so nothing is
                           * left behind even if belt is killed); the receiver
                           * copies it out.  -1 otherwise.  Closed by
                           * belt_result_free(). */
    char *error;          /* belt's own message, else NULL.  Set when status
                           * is ERROR ("command not found: foo", "cannot
                           * change directory to X: ..."), SKIPPED, CANCELED
                           * or TIMEOUT ("timed out after 500ms"), and for a
                           * FAILED `run` job that exited 127, which is how
                           * /bin/sh reports a missing command ("command not
                           * found (exit 127)") */
    void *reserved[4];    /* zero: room to grow (the ABI rule of
                           * belt/pool.h) */
} belt_result;

/* Allocates a zeroed result for job with status ERROR, exit_code -1,
 * worker -1, out_fd/err_fd -1 and seq/user copied (job may be NULL: seq 0,
 * user NULL).  Returns NULL when memory runs out. */
belt_result *belt_result_new(const belt_job *job);

/* Frees a result and everything it owns (strings, attempt_log, and closes
 * out_fd/err_fd when >= 0; never the job).  Only for results made by
 * belt_result_new() or belt.  NULL is a no-op. */
void belt_result_free(belt_result *r);

/* "ok", "failed", "timeout", "skipped", "error", "canceled"
 * (BELT_JOB_STATUS_MAP); "unknown" for anything else.  Can't fail. */
const char *belt_job_status_name(belt_job_status s);

/* "exec", "sleep", "spin", "noop" (BELT_JOB_KIND_MAP); "unknown" for
 * anything else.  Can't fail. */
const char *belt_job_kind_name(belt_job_kind k);

/* "capture", "files", "group", "lines", "inherit", "discard"
 * (BELT_OUTPUT_MODE_MAP); "unknown" for anything else.  Can't fail. */
const char *belt_output_mode_name(belt_output_mode m);

/* Runs one job in the calling thread with the executor a pool's workers
 * use (exec, sleep, spin, noop; retries, timeout, output) and returns its
 * result, owned by the caller (free it with belt_result_free(); `worker` is
 * recorded in it), or NULL when memory runs out.  Blocks until the job and
 * all its attempts are done; every child it started has been reaped. */
belt_result *belt_run_job(const belt_job *job, int worker);

/* Parses a duration: a decimal number with a unit ns, us (or µs), ms, s, m,
 * h ("500ms", "1.5s", ".5s", "2m"), several of them in a row as in Go
 * ("1h30m", "1m0.5s"), or one bare number of seconds ("10", "0.25").  No
 * sign, exponent or spaces.  Fractions are truncated to whole nanoseconds.
 * Stores nanoseconds in *out and returns BELT_OK; returns BELT_EINVAL for
 * anything else (NULL, empty, negative, unknown unit, more than INT64_MAX
 * ns), leaving *out untouched. */
int belt_parse_duration(const char *text, int64_t *out);

#ifdef __cplusplus
}
#endif

#endif /* BELT_JOB_H */
