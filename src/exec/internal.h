/* exec/internal.h: what the executor's files (exec/exec.c, exec/spawn.c,
 * exec/output.c) share.  Not for the rest of belt: use exec/exec.h. */
#ifndef BELT_EXEC_INTERNAL_H
#define BELT_EXEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/exec.h"
#include "util/clock.h"
#include "util/fd.h"

#define BELT__DEFAULT_OUTPUT_LIMIT ((size_t)1 << 20)
#define BELT__DEFAULT_KILL_GRACE_NS (2 * BELT__NS_PER_S)
#define BELT__DEFAULT_RETRY_MAX_NS (30 * BELT__NS_PER_S)

/* ---- exec/exec.c: time, errors, waiting --------------------------------- */


/* Replaces r->error with a formatted message.  When memory runs out the
 * error is left NULL (the status still tells what happened). */
void belt__set_error(belt_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


/* ---- exec/output.c: where a child's stdout or stderr goes --------------- */

/* One output stream of one attempt.  Owned by the attempt's stack frame;
 * only its thread touches it. */
typedef struct belt__sink {
    int stream;            /* 1 (stdout) or 2 (stderr) */
    belt_output_mode mode;
    int child_fd;          /* becomes the child's fd `stream`; -1: inherit */
    bool keep_child_fd;    /* GROUP: child_fd is the spool handed over */
    int read_fd;           /* CAPTURE, LINES: our end of the pipe, or -1 */
    size_t pipe_size;      /* read_fd's capacity: the drain bound */
    char *buf;             /* CAPTURE: kept output; LINES: a partial line */
    size_t len, cap;
    size_t limit;          /* CAPTURE: bytes to keep */
    bool truncated;        /* CAPTURE: output was dropped */
    bool write_failed;     /* LINES: belt's own fd failed; drop the rest */
    char *path;            /* FILES: the file's name */
} belt__sink;

/* Makes s an empty sink for stream 1 or 2.  Can't fail. */
void belt__sink_init(belt__sink *s, int stream);
/* Creates what job->output needs for this stream (pipe, file, spool).
 * Returns 0, or -1 with r->error set (s is then still safe to close). */
int belt__sink_open(belt__sink *s, const belt_job *job, belt_result *r);
/* After a successful spawn: closes the parent's copy of the child's end
 * (except a GROUP spool, which the result gets). */
void belt__sink_spawned(belt__sink *s);
/* Reads what is there (one read()): keeps, passes or drops it by mode.
 * Closes read_fd at EOF or on an error.  Never blocks (read_fd is
 * O_NONBLOCK). */
void belt__sink_read(belt__sink *s);
/* After the child exited: reads what is buffered in the pipe without
 * waiting (at most one pipe capacity, so a writer that escaped the kill
 * can't keep us here), then closes read_fd. */
void belt__sink_drain(belt__sink *s);
/* Hands the stream's output to r (out/err, *_len, *_truncated, *_path,
 * *_fd by mode), replacing what r had; LINES writes a last partial line. */
void belt__sink_finish(belt__sink *s, belt_result *r);
/* Releases whatever s still holds.  Idempotent. */
void belt__sink_close(belt__sink *s);

/* ---- exec/spawn.c: one attempt of an exec job --------------------------- */

/* A job's command, prepared once for all its attempts. */
typedef struct belt__cmd {
    const char *path;      /* file given to posix_spawn(p) */
    char *const *argv;     /* sh_argv, or the job's argv */
    char *sh_argv[4];      /* "sh", "-c", run, NULL */
    char **envp;           /* environ, or an owned array of borrowed strings */
    bool owns_envp;
    bool use_path;         /* posix_spawnp (argv jobs) */
    bool via_shell;        /* `run` job: exit 127 means "not found" */
} belt__cmd;

/* Checks job's command and builds its environment.  Returns 0, or -1 with
 * r->error set (bad job; nothing to release). */
int belt__cmd_prepare(belt__cmd *c, const belt_job *job, belt_result *r);
void belt__cmd_release(belt__cmd *c);

/* Runs one attempt of exec job `job`: fills *a (status, exit code, signal,
 * times), r->error, and r's output fields for the job's output mode.  The
 * child and every fd opened are gone when it returns.  Can't fail: failures
 * are an attempt with status ERROR. */
void belt__exec_attempt(const belt_job *job, const belt__cmd *cmd,
                        belt__cancel *cancel, belt_result *r,
                        belt_attempt *a);

#endif /* BELT_EXEC_INTERNAL_H */
