/* exec/exec.h: the executor: runs one job (all its attempts) in the calling
 * thread.  Internal; used by the pool's workers and by belt_run_job().
 *
 * Files: exec/exec.c (attempts, retries and backoff, the built-in kinds,
 * belt_run_job), exec/spawn.c (one attempt of an exec job: posix_spawn, the
 * wait loop, the kill sequence), exec/output.c (where a process's stdout and
 * stderr go: the output modes), exec/cancel.c (the cancel token), exec/job.c
 * (results, job defaults, durations).  exec/internal.h is what those files share.
 *
 * The executor keeps no global state: everything lives in the call's own
 * stack frame, the result it fills, and the caller's cancel token.  It never
 * prints (except the job's own output in LINES mode), exits or aborts.
 */
#ifndef BELT_EXEC_H
#define BELT_EXEC_H

#include <stdatomic.h>
#include <stdbool.h>

#include "belt/job.h"

/* ---- names (exec/job.c) --------------------------------------------------- */

#define BELT__COUNT1(s, name) +1
#define BELT__NKINDS (0 BELT_JOB_KIND_MAP(BELT__COUNT1))
#define BELT__NOUTPUTS (0 BELT_OUTPUT_MODE_MAP(BELT__COUNT1))

/* The names of belt_job_kind and belt_output_mode (belt/job.h's maps),
 * indexed by value and NULL-terminated, for loaders that look a name up or
 * list the names in an error. */
extern const char *const belt__kind_names[BELT__NKINDS + 1];
extern const char *const belt__output_names[BELT__NOUTPUTS + 1];

/* ---- the cancel token (exec/cancel.c) ------------------------------------ */

/* A cancel token shared by a pool and its workers.  Cancelling sets the flag
 * and makes wake_fd (an eventfd) readable, so a worker that sleeps in
 * poll()/ppoll() on a child's pipes, on a pidfd, in a sleep job or in a retry
 * backoff wakes at once.  Never polled by sleeping: always waited on.
 *
 * The eventfd is written once and never read, so it stays readable (level
 * triggered) for every waiter, present and future.  The flag is the truth;
 * wake_fd only wakes: waiters re-check the flag after waking. */
typedef struct belt__cancel {
    _Atomic int canceled; /* 0, then 1 forever; set before wake_fd is written */
    int wake_fd;          /* eventfd, O_CLOEXEC | O_NONBLOCK */
} belt__cancel;

/* Initialises the token; BELT_OK or BELT_ESYS (no eventfd; errno says why,
 * and c->wake_fd is -1). */
int belt__cancel_init(belt__cancel *c);
/* Cancels: sets the flag and wakes every waiter.  Idempotent; can't fail.
 * Async-signal-safe (an atomic store and a write()), so a signal handler
 * may call it. */
void belt__cancel_fire(belt__cancel *c);
/* True once fired.  NULL gives false. */
bool belt__cancel_fired(belt__cancel *c);
/* Closes the eventfd.  No waiter may still use the token. */
void belt__cancel_destroy(belt__cancel *c);

/* Runs job (every attempt, with retries and backoff) and returns a new
 * result, or NULL if memory ran out.  cancel may be NULL.  When cancel fires
 * the running attempt is stopped (SIGTERM to the process group, SIGKILL
 * after the job's grace period), the child is reaped, and the result has
 * status BELT_JOB_CANCELED; a job whose token has already fired is not
 * started (CANCELED, 0 attempts).  No child process outlives this call. */
belt_result *belt__exec_job(const belt_job *job, int worker,
                            belt__cancel *cancel);

/* The same, filling r, a result from belt_result_new(r->job's job) that the
 * caller may have stamped already (a non-zero queued_ns is kept).  Can't
 * fail: when memory runs out mid-way, r says so (status ERROR, error "out
 * of memory" when that much could be allocated). */
void belt__exec_job_into(belt_result *r, const belt_job *job, int worker,
                         belt__cancel *cancel);

#endif /* BELT_EXEC_H */
