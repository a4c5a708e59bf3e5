/* cli/parallel.h: the pieces of `belt run COMMAND ...`, GNU parallel's
 * command line (internal, never installed).
 *
 *   parallel_template.c  the command template: replacement strings ({},
 *                        {.}, {/}, {//}, {/.}, {#}, {%}, {n}, {n.} ...),
 *                        context replace (-X, -N), GNU parallel's quoting
 *   parallel_input.c     input sources (:::, :::+, ::::, ::::+, -a, stdin),
 *                        their product in parallel's order, -0/-d, --colsep
 *   parallel_pipe.c      --pipe and --pipepart: blocks of records, and the
 *                        long-lived processes of --round-robin
 *   parallel_joblog.c    reading a --joblog for --resume, --resume-failed
 *                        and --retry-failed
 *   quick.c              the run: jobs from records, the engine's source,
 *                        --dry-run, --halt, parallel's exit status
 *
 * The reference for all of them is GNU parallel 20221122 (Debian's
 * `parallel` package): its man page, parallel_tutorial(7) and the Perl
 * source /usr/bin/parallel, whose rules each file restates in its essay.
 */
#ifndef BELT_CLI_PARALLEL_H
#define BELT_CLI_PARALLEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app/report.h"
#include "util/buf.h"

/* ---- values --------------------------------------------------------------- */

/* One argument: len bytes at p (not NUL-terminated; may hold NULs).  The
 * same type result records take their input arguments in (app/report.h). */
typedef belt__report_arg belt__par_val;

/* ---- the command template (parallel_template.c) ------------------------- */

/* The replacement strings, in the order of belt__par_names' entries. */
typedef enum belt__rpl_kind {
    BELT__RPL_ARG = 0,    /* {}    the argument */
    BELT__RPL_NOEXT,      /* {.}   without its extension */
    BELT__RPL_BASE,       /* {/}   basename */
    BELT__RPL_DIR,        /* {//}  dirname */
    BELT__RPL_BASENOEXT,  /* {/.}  basename without extension */
    BELT__RPL_SEQ,        /* {#}   the job's sequence number */
    BELT__RPL_SLOT,       /* {%}   the job slot */
    BELT__RPL_N
} belt__rpl_kind;

/* The text of each replacement string: "{}", "{.}" ... by default; -I,
 * --extensionreplace, --basenamereplace, --dirnamereplace,
 * --basenameextensionreplace, --seqreplace and --slotreplace change one.
 * A string that starts with '{' and ends with '}' also has positional
 * forms: "{3.}" is {.} of the third argument, "{-1}" the last one. */
typedef struct belt__par_names {
    const char *s[BELT__RPL_N];
} belt__par_names;

/* Fills n with the default strings.  Can't fail. */
void belt__par_names_default(belt__par_names *n);

typedef struct belt__par_tpl belt__par_tpl;

/* Template flags. */
#define BELT__TPL_CONTEXT 1u   /* -X, -N: repeat the word around {} per arg */
#define BELT__TPL_QUOTE_ALL 2u /* -q: quote every word, not the arguments */
#define BELT__TPL_NO_APPEND 4u /* --pipe, --tagstring: no " {}" appended
                                * when there is no replacement string */
#define BELT__TPL_RAW 8u       /* never quote (--tagstring) */

/* Compiles the command words[0..nwords) (joined with spaces, as parallel
 * joins them) into *out.  With no replacement string in it, " {}" is
 * appended (unless BELT__TPL_NO_APPEND); no words at all is the command
 * "{}" (each argument is a command).  Returns BELT_OK, or BELT_ENOMEM
 * (*out untouched). */
int belt__par_tpl_new(belt__par_tpl **out, char *const *words, size_t nwords,
                      const belt__par_names *names, unsigned flags);

/* Frees.  NULL is a no-op. */
void belt__par_tpl_free(belt__par_tpl *t);

/* Whether the template holds the replacement string k.  Can't fail. */
bool belt__par_tpl_uses(const belt__par_tpl *t, belt__rpl_kind k);

/* Whether arguments are quoted: false when the command starts with a
 * replacement string ("{} ::: 'echo a'": the input is the command), as in
 * parallel.  Can't fail. */
bool belt__par_tpl_quotes_args(const belt__par_tpl *t);

/* As args of belt__par_expand (with nargs 0): no argument at all (-N0),
 * where a replacement string gives nothing, not even ''. */
extern const belt__par_val belt__par_noarg[1];

/* Appends to out the command for one job: the arguments args[0..nargs)
 * (all columns of all its records, in order; none is one empty argument,
 * and belt__par_noarg none at all),
 * its sequence number (from 1) and job slot.  Running out of memory sets
 * out->oom. */
void belt__par_expand(const belt__par_tpl *t, const belt__par_val *args,
                      size_t nargs, uint64_t seq, unsigned slot,
                      belt__buf *out);

/* How many bytes one more argument v adds to the command (exact unless
 * positional replacement strings are involved, which add nothing here):
 * what -m, -X and --xargs use to fill a command line.  Can't fail. */
size_t belt__par_arg_cost(const belt__par_tpl *t, belt__par_val v);

/* The value of replacement string k for argument s[0..n), unquoted,
 * appended to out: {.} drops the extension, {/} the directory, {//} is
 * File::Basename's dirname, {/.} both; ARG is s itself.  SEQ and SLOT are
 * not for this.  Running out of memory sets out->oom. */
void belt__par_value(belt__buf *out, belt__rpl_kind k, const char *s,
                     size_t n);

/* ---- input sources (parallel_input.c) ----------------------------------- */

/* One input source as the command line gives it. */
typedef struct belt__par_source {
    const char *name;      /* a file (`::::`, -a; "-" is stdin), or NULL */
    char *const *vals;     /* name NULL: the values of a `:::` list */
    size_t nvals;
    bool linked;           /* after `:::+` or `::::+`: linked to the source
                            * before it */
} belt__par_source;

typedef struct belt__par_input_opts {
    const char *delim;     /* what ends an item: "\n", "\0" (-0) or -d's */
    size_t delim_len;      /* at least 1 */
    const char *colsep;    /* --colsep, or NULL */
    bool skip_blank;       /* -r: skip items of only blanks */
    int stop_fd;           /* readable: stop waiting for input; -1: none */
} belt__par_input_opts;

typedef struct belt__par_input belt__par_input;

/* Opens the sources specs[0..n) (which must outlive the input; so must
 * o->delim and o->colsep).  Returns BELT_OK with *out set; BELT_ESYS when a
 * file cannot be opened, BELT_EINVAL for a bad --colsep, BELT_ENOMEM; with
 * a message naming the file or the expression in msg. */
int belt__par_input_new(belt__par_input **out,
                        const belt__par_source *specs, size_t n,
                        const belt__par_input_opts *o, char *msg,
                        size_t msg_size);

/* The next record: its values (every column of every source, in source
 * order) in *vals[0..*n), valid until the next call.  Returns 1; 0 at the
 * end; BELT_ESYS (errno set) for a read error; BELT_ECANCELED when the stop
 * fd became readable; BELT_ENOMEM.  One thread at a time. */
int belt__par_input_next(belt__par_input *in, const belt__par_val **vals,
                         size_t *n);

/* Whether one of the sources reads fd (0: stdin).  Can't fail. */
bool belt__par_input_reads_fd(const belt__par_input *in, int fd);

/* Whether reading may wait for a writer: a source that is not a `:::`
 * list or a regular file (a pipe, a terminal).  Can't fail. */
bool belt__par_input_may_block(const belt__par_input *in);

/* Closes what it opened and frees.  NULL is a no-op. */
void belt__par_input_free(belt__par_input *in);

/* ---- --pipe, --pipepart, --round-robin (parallel_pipe.c) ----------------- */

typedef struct belt__par_pipe_opts {
    int64_t block;            /* --block: bytes per block (> 0) */
    unsigned records;         /* -N: records per block; 0: by size */
    const char *recstart, *recend; /* what starts / ends a record (bytes) */
    size_t recstart_len, recend_len;
    int stop_fd;              /* readable: stop waiting; -1: none */
} belt__par_pipe_opts;

typedef struct belt__par_blocks belt__par_blocks;

/* A splitter of the stream fd (not owned) into --pipe blocks; o's strings
 * are copied.  BELT_OK, or BELT_ENOMEM. */
int belt__par_blocks_new(belt__par_blocks **out, int fd,
                         const belt__par_pipe_opts *o);

/* The next block in *p[0..*n), valid until the next call.  Returns 1, 0 at
 * the end, BELT_ESYS (errno) for a read error, BELT_ECANCELED when the stop
 * fd became readable, BELT_ENOMEM. */
int belt__par_blocks_next(belt__par_blocks *b, const char **p, size_t *n);

void belt__par_blocks_free(belt__par_blocks *b);

/* The --pipepart cuts of the regular file fd of `size` bytes for blocks of
 * `block` bytes: a malloc'd array pos[0..npos) starting with 0 and ending
 * with size (block i is [pos[i], pos[i+1])).  BELT_OK, BELT_ESYS (errno:
 * a read failed) or BELT_ENOMEM. */
int belt__par_split_file(int fd, int64_t size, int64_t block,
                         const belt__par_pipe_opts *o, int64_t **pos,
                         size_t *npos);

/* A new anonymous file (close-on-exec, fd >= 3) holding p[0..n), or
 * holding the bytes [off, off+len) of the file src: the stdin of one
 * block's job.  Returns the fd, or -1 with errno set. */
int belt__par_block_file(const char *p, size_t n);
int belt__par_part_file(int src, int64_t off, int64_t len);

/* --round-robin: writes the block p[0..len) whole to the first of the
 * non-blocking pipe write ends fds[0..n) (n <= 64), starting at *turn,
 * that has room, and moves *turn past it.  A pipe whose reader is gone is
 * marked in dead[] (and the rest of a block it was taking is dropped).
 * Returns BELT_OK, BELT_CLOSED (every pipe is dead), BELT_ECANCELED
 * (stop_fd became readable) or BELT_ESYS. */
int belt__par_rr_write(const int *fds, size_t n, size_t *turn, bool *dead,
                       const char *p, size_t len, int stop_fd);

/* ---- job logs read back (parallel_joblog.c) ----------------------------- */

typedef struct belt__par_joblog belt__par_joblog;

/* Reads the --joblog at path.  A job is done when its Seq has a line, or,
 * with only_ok, a line with Exitval and Signal 0; with want_commands the
 * command of each job that did not end so is kept (--retry-failed).  A
 * missing file is BELT_OK with *out NULL (nothing done).  Errors, with a
 * message naming the file in msg: BELT_ESYS (unreadable), BELT_EINVAL (a
 * line that is not a job line), BELT_ENOMEM. */
int belt__par_joblog_read(belt__par_joblog **out, const char *path,
                          bool only_ok, bool want_commands, char *msg,
                          size_t msg_size);

/* Whether job seq (from 1) is done.  NULL: nothing is.  Can't fail. */
bool belt__par_joblog_done(const belt__par_joblog *j, uint64_t seq);

/* The highest Seq in the log (0 for NULL or none).  Can't fail. */
uint64_t belt__par_joblog_max_seq(const belt__par_joblog *j);

/* The command of job seq that did not succeed (want_commands), with its
 * newlines back, or NULL.  Owned by j.  Can't fail. */
const char *belt__par_joblog_command(const belt__par_joblog *j, uint64_t seq);

void belt__par_joblog_free(belt__par_joblog *j);

/* ---- sizes, durations and escapes (parallel_template.c) --------------- */

/* Parses a size as parallel's --block does: a decimal number (a fraction
 * allowed) with an optional suffix, k/m/g/t (powers of 1000) or K/M/G/T and
 * Ki/Mi/Gi/Ti (powers of 1024), and an optional leading '-' (--block -N:
 * N blocks per job slot).  Returns BELT_OK with *out set, or BELT_EINVAL. */
int belt__par_parse_size(const char *s, int64_t *out);

/* Parses a duration as parallel's --timeout and --delay do: seconds ("2.5")
 * or numbers with units d, h, m, s ("1h30m", "90s"), and belt's forms
 * ("500ms", "2m30s").  Returns BELT_OK with ns in *out, or BELT_EINVAL. */
int belt__par_parse_duration(const char *s, int64_t *out);

/* Turns the escapes parallel allows into bytes, appended to out.  For -d
 * and --tagstring (its unquote_printf): \t, \n, \r and octal \NNN or \N;
 * for --recstart and --recend (record): \0, \r, \n, \t, \', \" and \\.
 * Anything else stays as written.  Running out of memory sets out->oom. */
void belt__par_unescape(belt__buf *out, const char *s, bool record);

#endif /* BELT_CLI_PARALLEL_H */
