/* cli/run.h: the pieces of `belt run` shared by its files (internal).
 *
 *   run.c        options, config mode
 *   engine.c     the engine both modes run on (dispatch/collect loop)
 *   quick.c      command mode: GNU parallel's command line (the pieces it
 *                puts together are parallel_*.c, parallel.h)
 *   progress.c   the live progress line
 *   run_signal.c SIGINT/SIGTERM plumbing (self-pipe and a thread)
 *   run_output.c results file, job log, reorder buffer, grouped output
 *   validate.c   `belt validate`
 *   pipeline.c   `belt run`/`belt validate` of pipeline configs
 */
#ifndef BELT_CLI_RUN_H
#define BELT_CLI_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "belt/chan.h"
#include "belt/job.h"
#include "app/report.h"
#include "cli/parallel.h"
#include "util/buf.h"

/* ---- options ------------------------------------------------------------ */

/* What a command (`belt run COMMAND ...`, GNU parallel's command line) adds
 * to the options; see quick.c and parallel.h. */
typedef struct belt__cmd_opts {
    char **words;             /* the command's words (argv's), or none */
    size_t nwords;
    belt__par_source *src;    /* -a files, then the ::: and :::: groups, in
                               * order; none: stdin */
    size_t nsrc;
    char **lists;             /* storage behind `src` (owned) */
    const char *delim;        /* -d as given, or NULL */
    const char *colsep;       /* --colsep */
    bool skip_blank;          /* -r */
    unsigned max_args;        /* -n */
    unsigned max_replace_args; /* -N */
    bool no_args;             /* -N0: a record per job, its values unused */
    bool X, m, xargs;
    belt__par_names names;    /* -I, --extensionreplace, ... */
    bool quote;               /* -q, --quote */
    bool tag;
    const char *tagstring;
    bool ungroup;             /* -u */
    int halt_when;            /* 0 never, 1 soon, 2 now */
    int halt_why;             /* 1 fail, 2 success, 3 done */
    double halt_value;        /* a count, or a fraction with halt_pct */
    bool halt_pct;
    double timeout_pct;       /* --timeout N%: the fraction; 0: none */
    int64_t delay_ns;         /* --delay */
    bool shuf;
    bool resume, resume_failed, retry_failed;
    bool bar, eta, progress;
    bool pipe, pipepart, round_robin;
    int64_t block;            /* --block (negative: blocks per slot) */
    bool block_set;
    const char *recstart, *recend; /* as given */
    bool jobs_unlimited;      /* -j 0 */
} belt__cmd_opts;

typedef struct belt__run_opts {
    const char *config_path;  /* config mode; NULL in command mode */
    const char *workers_arg;  /* -j as given, or NULL */
    const char *policy;       /* --policy, or NULL */
    const char *results_path; /* --results, or NULL (see belt-run(1)) */
    bool results_default;     /* results_path is the default name: an
                               * earlier run's file is kept (run_output.c) */
    const char *resume_path;  /* --resume FILE (config mode) */
    const char *joblog_path;  /* --joblog (a leading '+': append) */
    bool joblog_append;       /* append to the job log, header only if new */
    const char *command;      /* --command CMD */
    bool command_mode;        /* a command, not a config */
    bool dry_run, halt_on_error, keep_order, quiet;
    bool line_buffer;         /* command mode: BELT_OUTPUT_LINES */
    bool null_sep;            /* command mode: -0, inputs end with NUL */
    int progress;             /* 1: progress line and summary on stderr;
                               * 0: only on a terminal (config mode);
                               * -1: none (command mode without --bar) */
    bool have_timeout;
    int64_t timeout_ns;       /* --timeout; 0 disables timeouts */
    bool have_retries;
    unsigned retries;         /* --retries: retries after the first attempt */
    int64_t retry_delay_ns;   /* with have_retries: first backoff; 0: at
                               * once (command mode, as parallel) */
    unsigned workers;         /* resolved worker count (>= 1) */
    const char *broker;       /* --broker URL: run on `belt worker`s through
                               * Redis (run_broker.c), or NULL: locally */
    const char *broker_ns;    /* --namespace, or NULL ("belt") */
    unsigned max_deliveries;  /* --max-deliveries, or 0 (the default, 3) */
    const char *key_file;     /* --key-file, or NULL ($BELT_KEY_FILE) */
    bool insecure;            /* --insecure: unsigned broker jobs */
    belt__cmd_opts cmd;       /* command mode */
} belt__run_opts;

/* Resolves "-j" text: "N", "0" (online CPUs) or "P%" (of online CPUs, at
 * least 1).  Returns 0 and stores the count, or -1 with a message in msg. */
int belt__parse_workers(const char *text, unsigned *out, char *msg,
                        size_t msg_size);

/* ---- the engine -------------------------------------------------------- */

/* What a command-mode job adds to its result's record, log and output. */
typedef struct belt__job_info {
    uint64_t log_seq;               /* the job log's Seq (0: r->seq + 1) */
    const char *command;            /* the command as written, for the job
                                     * log and the record's "run", or NULL
                                     * (the job's run or argv) */
    const belt__report_arg *args;   /* input arguments for the record, or
                                     * NULL */
    size_t nargs;
    char *tag;                      /* malloc'd tag of its output lines, or
                                     * NULL; the engine frees it */
    size_t tag_len;
} belt__job_info;

/* Exit status of `belt run` when stdout was closed under it (as a shell
 * reports a process killed by SIGPIPE). */
#define BELT__EXIT_STDOUT_CLOSED 141

/* Where jobs come from.  Exactly one of next/feed is set. */
typedef struct belt__source {
    void *ctx;
    /* A job ready to run now, or NULL (config mode: the scheduler). */
    const belt_job *(*next)(void *ctx);
    /* Or: a channel of `belt_job *` (command mode), closed after the last. */
    belt_chan *feed;
    /* A result for a job that will not run, or NULL.  May be NULL. */
    belt_result *(*unrun)(void *ctx);
    /* r is written out: its job may be freed now.  r->job is dangling
     * afterwards; r stays the engine's. */
    void (*done)(void *ctx, belt_result *r);
    /* next mode: true once every job has been handed out and done. */
    bool (*finished)(void *ctx);
    /* Stop handing out jobs (interrupt, halt).  May be NULL. */
    void (*cancel)(void *ctx, const char *why);
    /* True if r is a job skipped because a previous run did it. */
    bool (*resumed)(const belt_result *r);
    uint64_t total;        /* jobs in all; 0 when not known in advance */
    bool group_output;     /* copy each job's output to stdout/stderr */
    bool halt_in_engine;   /* the engine (not the source) halts on error */
    size_t order_window;   /* keep-order: most results held; 0: no limit */
    /* Command mode (quick.c); each may be NULL / 0. */
    /* Just before job is submitted, on the engine thread: may change the
     * copy that runs (command, env, timeout). */
    void (*prepare)(void *ctx, const belt_job *job, belt_job *copy);
    /* What r's job adds to its record, log line and output, asked before
     * anything of r is written (r->job valid). */
    void (*info)(void *ctx, const belt_result *r, belt__job_info *out);
    /* After done(): 0 go on, 1 start no more jobs, 2 also stop the running
     * ones (GNU parallel's --halt soon / now). */
    int (*halt)(void *ctx);
    size_t max_in_flight;  /* most jobs submitted and not back; 0: the
                            * engine's own rule (in_flight_cap) */
    bool watch_stdout;     /* --line-buffer: a closed stdout stops the run */
    bool io_failed;        /* set by the engine: the results file, job log
                            * or output could not be written */
} belt__source;

/* Runs every job of src on a pool per o, writing results, job log,
 * progress and summary.  Returns the exit status (0, 1, 130, 143, or
 * BELT__EXIT_STDOUT_CLOSED when job output could not be written because
 * nobody reads stdout any more). */
int belt__run_engine(const belt__run_opts *o, belt__source *src);

/* Runs every job of src (next mode: a config's scheduler) on remote
 * workers through the Redis broker o->broker (run_broker.c), writing
 * results, job log, progress and summary as belt__run_engine() does.
 * Returns the exit status (0, 1, 2 when the broker cannot be reached or
 * refuses us, 130, 143). */
int belt__run_broker(const belt__run_opts *o, belt__source *src);

/* ---- command mode -------------------------------------------------------- */

/* `belt run COMMAND ...` (and --command CMD): runs o->cmd's jobs as GNU
 * parallel would (quick.c).  Returns the exit status: parallel's (0, the
 * failures up to 101, --halt's), 2 for a usage error, 130/143 when
 * interrupted, BELT__EXIT_STDOUT_CLOSED when stdout went away. */
int belt__run_quick(belt__run_opts *o);

/* ---- pipelines (pipeline/engine.c) -------------------------------------- */

/* `belt run [options] PIPELINE.json`: the same argv as belt__cli_run().
 * Returns the exit status (0, 1, 2, 130, 143). */
int belt__cli_run_pipeline(int argc, char **argv);

/* `belt validate` of one pipeline config: prints "PATH: ok (...)" on stdout
 * or the error on stderr.  Returns 0 or 2. */
int belt__cli_validate_pipeline(const char *path);

/* ---- progress line ----------------------------------------------------- */

typedef struct belt__progress {
    bool enabled;
    bool bar;              /* draw a bar (--bar) before the counts */
    bool drawn;            /* a line is on screen */
    uint64_t total;        /* 0: unknown */
    int64_t start_ns;      /* CLOCK_MONOTONIC */
    int64_t last_draw_ns;
} belt__progress;

#define BELT__PROGRESS_INTERVAL_NS 100000000LL /* at most 10 redraws/s */

void belt__progress_init(belt__progress *p, bool enabled, uint64_t total,
                         int64_t now_ns);
/* How long the engine may wait before the next redraw is due: -1 (forever)
 * when disabled. */
int64_t belt__progress_wait_ns(const belt__progress *p, int64_t now_ns);
/* Redraws if due (or if force). */
void belt__progress_draw(belt__progress *p, const belt__runstats *st,
                         uint64_t running, int64_t now_ns, bool force);
/* Erases the line (before other output goes to the terminal). */
void belt__progress_clear(belt__progress *p);

/* ---- signals ------------------------------------------------------------ */

typedef struct belt__sig belt__sig;

/* A second signal sooner than this after the first, and the same signal,
 * is the first one delivered again, not a second request. */
#define BELT__SIG_REPEAT_NS 20000000LL

/* Installs SIGINT/SIGTERM handlers (and a no-op SIGPIPE handler, so writes
 * to a closed pipe fail with EPIPE instead of killing belt and orphaning
 * jobs) and starts the thread that reads the self-pipe.  On the first
 * signal the thread records it and sends a NULL element on `wake` (a
 * channel of belt_result *) so the engine looks; on the second it kills the
 * process groups of belt's children with SIGKILL and exits at once.  A
 * repeat of the first signal within BELT__SIG_REPEAT_NS of it counts as the
 * same one (GNU timeout forwards each signal twice: run_signal.c).
 * Returns 0, or -1 with errno set. */
int belt__sig_start(belt__sig **out, belt_chan *wake);
/* The first signal caught, or 0.  Any thread. */
int belt__sig_caught(belt__sig *s);
/* Stops the thread, restores the handlers, frees.  NULL is a no-op. */
void belt__sig_stop(belt__sig *s);
/* Sends SIGKILL to the process group of every child of this process. */
void belt__kill_children(void);

/* ---- output: results file, job log, reorder buffer --------------------- */

typedef struct belt__out belt__out;

/* One finished job waiting to be written: its JSON line (may be NULL) and,
 * in command mode, its result with the grouped output to copy out. */
typedef struct belt__pending {
    uint64_t seq;
    char *line;
    size_t len;
    belt_result *r;
    char *tag;             /* malloc'd: r's output lines are tagged; or NULL */
    size_t tag_len;
    char *log_line;        /* malloc'd -k job-log line, or NULL */
    size_t log_len;
} belt__pending;

/* Opens what o asks for: the results file (fd 1 for "-"; appended to when it
 * is the --resume file), the job log.  Returns 0, or -1 after printing why. */
int belt__out_open(belt__out **out, const belt__run_opts *o,
                   const char *results_path, bool keep_order,
                   belt__progress *progress);
/* True when the results file is the --resume file (appended to; jobs
 * skipped as already done are not written again). */
bool belt__out_appends(const belt__out *w);
/* Fills p->line with r's result record unless it has one already, or
 * r was resumed from the file being appended to (its line is there).
 * Returns 0, or -1 when memory ran out (said on stderr; p->line NULL). */
int belt__out_record(belt__out *w, const belt_result *r, bool resumed,
                     belt__pending *p);
/* Takes p (its line and result): writes it (into the buffer that
 * belt__out_write_lines() empties), or holds it until every earlier seq was
 * written (keep-order).  Returns 0, or -1 on a write error (printed once;
 * later writes are dropped). */
int belt__out_put(belt__out *w, belt__pending p);
/* Writes the buffered result lines: the engine calls it before every wait.
 * Returns 0, or -1 on a write error (printed once). */
int belt__out_write_lines(belt__out *w);
/* Results held for ordering now. */
size_t belt__out_held(const belt__out *w);
/* The same with "run" given (NULL: the job's) and the job's input
 * arguments in the record ("args"; NULL: none). */
int belt__out_record_args(belt__out *w, const belt_result *r, bool resumed,
                          const char *run, const belt__report_arg *args,
                          size_t nargs, belt__pending *p);
/* Writes a job-log line for r (if a job log is open): Seq r->seq + 1 and
 * the job's command; or Seq seq and command (NULL: the job's). */
void belt__out_joblog(belt__out *w, const belt_result *r);
void belt__out_joblog_seq(belt__out *w, const belt_result *r, uint64_t seq,
                          const char *command);
/* The job-log line of r as belt__out_joblog_seq() writes it, but with -k
 * kept in p to be written with it, in job order. */
void belt__out_joblog_pending(belt__out *w, const belt_result *r,
                              uint64_t seq, const char *command,
                              belt__pending *p);
/* True once copying a job's output to stdout failed (EPIPE: nobody reads
 * it any more).  Can't fail. */
bool belt__out_stdout_closed(const belt__out *w);
/* Writes whatever is still held (in seq order), closes, frees.  Returns 0
 * or -1 if any write failed. */
int belt__out_close(belt__out *w);
/* Appends p[0..n) to b with tag[0..tl) at the start of every line, as
 * parallel's print_normal tags output: before the first byte when
 * *at_start, and after every \r or \n that more bytes follow (*at_start
 * carries that over to the next call).  Running out of memory sets
 * b->oom. */
void belt__add_tagged(belt__buf *b, const char *p, size_t n, const char *tag,
                      size_t tl, bool *at_start);
/* Copies a result's grouped output (spooled fds, or captured text) to fds 1
 * and 2 as one block each, every line starting with tag[0..tag_len) when
 * tag is not NULL.  Returns 0, or -1 when writing to fd 1 failed (errno;
 * EPIPE: the reader is gone). */
int belt__copy_group_output(belt_result *r, const char *tag, size_t tag_len);

#endif /* BELT_CLI_RUN_H */
