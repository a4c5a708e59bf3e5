/* run_output.c: where `belt run` writes what happened.
 *
 * The results file gets one JSON line per job.  Lines collect in a buffer
 * while the engine takes the results that are already waiting, and go out
 * in one write(2) (belt__out_write_lines) before the engine waits for anything
 * again, or at 64 KiB: a finished job's line is in the file as soon as
 * belt has nothing else to take, so a crash or a SIGKILL loses nothing
 * that was reported finished (no stdio buffer holds lines across a wait),
 * and thousands of tiny jobs cost one system call per batch, not per job.  "-"
 * means fd 1.  When the results file is the same file as --resume (same device
 * and inode), it is opened for appending and the jobs skipped as already done
 * are not written again: the file then holds every run's lines, and resuming
 * from it again works (the scheduler looks for any "ok" line per id).
 *
 * --keep-order: results are written in seq (config or input) order.  A
 * result that ends early waits in a reorder buffer, a binary min-heap of
 * pending entries keyed by seq; after every insertion the heap is drained
 * while its top is the next seq to write.  Each seq is put exactly once
 * (every job gets one result: ran, skipped or canceled), so the buffer
 * always drains completely at the end.  What is held: config mode, the
 * serialised line; quick mode, the result itself with its spooled output
 * (two open fds), which is why quick mode bounds the buffer (run.c).
 *
 * The job log (--joblog) is GNU parallel's format (app/report.c), one
 * flushed line per job that ran, written as parallel writes it: in
 * completion order, or with -k in job order, together with the job's
 * output and result line.
 *
 * Grouped output (command mode): each job's stdout, then its stderr, copied
 * from the executor's spool files to fd 1 and 2 as one block each.  Only the
 * engine thread writes to fds 1 and 2, so two jobs' blocks never interleave.
 * With --tag/--tagstring every line starts with the job's tag, inserted as
 * parallel's print_normal inserts it (after every \r or \n that more output
 * follows).  A write to stdout that fails (EPIPE: the reader went away, as
 * in `belt run ... | head -2`) marks stdout closed and the engine stops the
 * run.  The progress line is erased before anything is written to the
 * terminal.
 *
 * The default results file (belt-results.jsonl, config mode) of an earlier
 * run is never overwritten: it is renamed to belt-results.jsonl.1 (the
 * first free number), and stderr says so.  A --results FILE the user names
 * is theirs to overwrite, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/run.h"
#include "util/buf.h"
#include "util/fd.h"

struct belt__out {
    int res_fd;              /* results, or -1 */
    bool res_own;            /* close res_fd at the end */
    bool res_failed;         /* a write failed; later ones are dropped */
    bool appending;          /* results file is the --resume file */
    const char *res_name;
    FILE *joblog;
    bool joblog_failed;
    const char *joblog_name;
    bool keep_order;
    char *buf;               /* lines not yet written (belt__out_write_lines) */
    size_t blen, bcap;
    bool stdout_closed;      /* copying a job's output to fd 1 failed */
    uint64_t next_seq;       /* keep-order: the next seq to write */
    belt__pending *heap;     /* keep-order: min-heap on seq */
    size_t n, cap;
    belt__progress *progress;
};

/* The default results file of an earlier run is never overwritten: it is
 * renamed to the first free "NAME.1", "NAME.2", ..., and stderr says so.
 * Returns 0, or -1 after printing why. */
static int keep_earlier(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    if (st.st_size == 0)
        return 0; /* nothing to lose */
    char to[4096];
    for (unsigned n = 1; n < 100000; n++) {
        snprintf(to, sizeof to, "%s.%u", path, n);
        if (access(to, F_OK) == 0)
            continue;
        if (rename(path, to) != 0) {
            fprintf(stderr, "belt run: cannot keep the earlier results %s "
                    "as %s: %s (give --results FILE)\n", path, to,
                    strerror(errno));
            return -1;
        }
        fprintf(stderr, "belt run: kept the results of the earlier run as "
                "%s\n", to);
        return 0;
    }
    fprintf(stderr, "belt run: %s.1 to .99999 all exist: give --results "
            "FILE\n", path);
    return -1;
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int belt__out_open(belt__out **out, const belt__run_opts *o,
                   const char *results_path, bool keep_order,
                   belt__progress *progress)
{
    belt__out *w = calloc(1, sizeof *w);
    if (w == NULL) {
        fprintf(stderr, "belt run: out of memory\n");
        return -1;
    }
    w->res_fd = -1;
    w->keep_order = keep_order;
    w->progress = progress;
    if (results_path && strcmp(results_path, "-") == 0) {
        w->res_fd = STDOUT_FILENO;
        w->res_name = "standard output";
    } else if (results_path) {
        w->appending = o->resume_path && same_file(results_path,
                                                   o->resume_path);
        if (!w->appending && o->results_default &&
            keep_earlier(results_path) != 0) {
            free(w);
            return -1;
        }
        w->res_fd = open(results_path,
                         O_WRONLY | O_CREAT | O_CLOEXEC |
                             (w->appending ? O_APPEND : O_TRUNC),
                         0666);
        if (w->res_fd < 0) {
            fprintf(stderr, "belt run: cannot open results file %s: %s\n",
                    results_path, strerror(errno));
            free(w);
            return -1;
        }
        w->res_own = true;
        w->res_name = results_path;
    }
    if (o->joblog_path) {
        w->joblog_name = o->joblog_path;
        w->joblog = strcmp(o->joblog_path, "-") == 0
                        ? stdout
                        : fopen(o->joblog_path, o->joblog_append ? "ae"
                                                                 : "we");
        if (w->joblog == NULL) {
            fprintf(stderr, "belt run: cannot open job log %s: %s\n",
                    o->joblog_path, strerror(errno));
            if (w->res_own)
                close(w->res_fd);
            free(w);
            return -1;
        }
        /* Appending (--resume, --joblog +FILE): a header only in a new
         * file, as parallel writes it. */
        bool fresh = !o->joblog_append || w->joblog == stdout ||
                     (fseeko(w->joblog, 0, SEEK_END) == 0 &&
                      ftello(w->joblog) == 0);
        if (fresh && belt__joblog_header(w->joblog) != 0)
            w->joblog_failed = true;
    }
    *out = w;
    return 0;
}

bool belt__out_appends(const belt__out *w)
{
    return w->appending;
}

int belt__out_record(belt__out *w, const belt_result *r, bool resumed,
                     belt__pending *p)
{
    return belt__out_record_args(w, r, resumed, NULL, NULL, 0, p);
}

int belt__out_record_args(belt__out *w, const belt_result *r, bool resumed,
                          const char *run, const belt__report_arg *args,
                          size_t nargs, belt__pending *p)
{
    if (p->line != NULL || (resumed && w->appending))
        return 0;
    p->line = belt__report_result_line_args(r, run, args, nargs, &p->len);
    if (p->line != NULL)
        return 0;
    belt__progress_clear(w->progress);
    fprintf(stderr, "belt run: out of memory writing the result of %s\n",
            r->job && r->job->id ? r->job->id : "a job");
    return -1;
}

#define FLUSH_AT (64 * 1024)

/* Writes `len` bytes of results now.  Returns 0 or -1 (printed once). */
static int write_results(belt__out *w, const char *text, size_t len)
{
    if (len == 0 || w->res_fd < 0 || w->res_failed)
        return w->res_failed ? -1 : 0;
    if (w->res_fd == STDOUT_FILENO && isatty(STDOUT_FILENO))
        belt__progress_clear(w->progress);
    if (belt__write_full(w->res_fd, text, len, -1) == BELT_OK)
        return 0;
    belt__progress_clear(w->progress);
    fprintf(stderr, "belt run: writing results to %s: %s\n", w->res_name,
            strerror(errno));
    w->res_failed = true;
    return -1;
}

int belt__out_write_lines(belt__out *w)
{
    if (w == NULL)
        return 0;
    int rc = write_results(w, w->buf, w->blen);
    w->blen = 0;
    return rc;
}

static void joblog_failed(belt__out *w);

/* Writes p (into the buffer, or now) and frees what it holds. */
static int emit(belt__out *w, belt__pending *p)
{
    int rc = 0;
    if (p->line && w->res_fd >= 0 && !w->res_failed) {
        if (w->blen + p->len > FLUSH_AT)
            rc |= belt__out_write_lines(w);
        if (p->len <= FLUSH_AT &&
            belt__reserve(&w->buf, &w->bcap, w->blen + p->len) ==
                0) {
            memcpy(w->buf + w->blen, p->line, p->len);
            w->blen += p->len;
        } else {
            rc |= belt__out_write_lines(w); /* keep the order of lines */
            rc |= write_results(w, p->line, p->len);
        }
    }
    free(p->line);
    p->line = NULL;
    if (p->log_line) {
        if (w->joblog && !w->joblog_failed &&
            (fwrite(p->log_line, 1, p->log_len, w->joblog) != p->log_len ||
             fflush(w->joblog) != 0))
            joblog_failed(w);
        free(p->log_line);
        p->log_line = NULL;
    }
    if (p->r) {
        /* Grouped output may go to the same fd: the lines before it first. */
        rc |= belt__out_write_lines(w);
        belt__progress_clear(w->progress);
        if (!w->stdout_closed &&
            belt__copy_group_output(p->r, p->tag, p->tag_len) != 0) {
            w->stdout_closed = true;
            rc = -1;
        }
        belt_result_free(p->r);
        p->r = NULL;
    }
    free(p->tag);
    p->tag = NULL;
    return rc;
}

static void heap_swap(belt__pending *a, belt__pending *b)
{
    belt__pending t = *a;
    *a = *b;
    *b = t;
}

static void heap_push(belt__out *w, belt__pending p)
{
    size_t i = w->n++;
    w->heap[i] = p;
    while (i > 0 && w->heap[(i - 1) / 2].seq > w->heap[i].seq) {
        heap_swap(&w->heap[(i - 1) / 2], &w->heap[i]);
        i = (i - 1) / 2;
    }
}

static belt__pending heap_pop(belt__out *w)
{
    belt__pending top = w->heap[0];
    w->heap[0] = w->heap[--w->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->n && w->heap[l].seq < w->heap[m].seq)
            m = l;
        if (r < w->n && w->heap[r].seq < w->heap[m].seq)
            m = r;
        if (m == i)
            break;
        heap_swap(&w->heap[i], &w->heap[m]);
        i = m;
    }
    return top;
}

int belt__out_put(belt__out *w, belt__pending p)
{
    if (!w->keep_order)
        return emit(w, &p);
    if (w->n == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 64;
        belt__pending *nh = realloc(w->heap, ncap * sizeof *nh);
        if (nh == NULL) {
            /* Cannot hold it: write it out of order rather than lose it. */
            return emit(w, &p);
        }
        w->heap = nh;
        w->cap = ncap;
    }
    heap_push(w, p);
    int rc = 0;
    while (w->n > 0 && w->heap[0].seq <= w->next_seq) {
        belt__pending q = heap_pop(w);
        if (q.seq == w->next_seq)
            w->next_seq++;
        rc |= emit(w, &q);
    }
    return rc;
}

size_t belt__out_held(const belt__out *w)
{
    return w->n;
}

bool belt__out_stdout_closed(const belt__out *w)
{
    return w != NULL && w->stdout_closed;
}

void belt__out_joblog(belt__out *w, const belt_result *r)
{
    belt__out_joblog_seq(w, r, r->seq + 1, NULL);
}

/* Writes r's job-log line to f.  0, or -1 with errno set. */
static int joblog_to(FILE *f, const belt_result *r, uint64_t seq,
                     const char *command)
{
    uint64_t receive = r->out_len;
    struct stat st;
    if (r->out_fd >= 0 && fstat(r->out_fd, &st) == 0)
        receive = (uint64_t)st.st_size;
    char *cmd = command ? NULL : r->job ? belt__job_command(r->job) : NULL;
    int rc = belt__joblog_line_seq(f, r, seq, command ? command : cmd,
                                   receive);
    free(cmd);
    return rc;
}

static void joblog_failed(belt__out *w)
{
    belt__progress_clear(w->progress);
    fprintf(stderr, "belt run: writing job log %s: %s\n", w->joblog_name,
            strerror(errno));
    w->joblog_failed = true;
}

void belt__out_joblog_seq(belt__out *w, const belt_result *r, uint64_t seq,
                          const char *command)
{
    if (w->joblog == NULL || w->joblog_failed || r->attempts == 0)
        return;
    if (joblog_to(w->joblog, r, seq, command) != 0)
        joblog_failed(w);
}

void belt__out_joblog_pending(belt__out *w, const belt_result *r,
                              uint64_t seq, const char *command,
                              belt__pending *p)
{
    if (!w->keep_order) {
        belt__out_joblog_seq(w, r, seq, command);
        return;
    }
    if (w->joblog == NULL || w->joblog_failed || r->attempts == 0)
        return;
    /* -k: the line waits with the job's output, as parallel writes its
     * job log when it prints a job. */
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (m == NULL || joblog_to(m, r, seq, command) != 0) {
        if (m)
            fclose(m);
        free(text);
        joblog_failed(w);
        return;
    }
    fclose(m);
    p->log_line = text;
    p->log_len = len;
}

int belt__out_close(belt__out *w)
{
    if (w == NULL)
        return 0;
    int rc = 0;
    /* Normally empty: every seq came.  After an error, write what is held
     * in order anyway. */
    while (w->n > 0) {
        belt__pending q = heap_pop(w);
        rc |= emit(w, &q);
    }
    rc |= belt__out_write_lines(w);
    free(w->buf);
    free(w->heap);
    if (w->res_own && close(w->res_fd) != 0 && !w->res_failed) {
        fprintf(stderr, "belt run: closing results file %s: %s\n",
                w->res_name, strerror(errno));
        rc = -1;
    }
    if (w->res_failed)
        rc = -1;
    if (w->joblog && w->joblog != stdout && fclose(w->joblog) != 0 &&
        !w->joblog_failed) {
        fprintf(stderr, "belt run: closing job log %s: %s\n", w->joblog_name,
                strerror(errno));
        rc = -1;
    }
    if (w->joblog == stdout)
        fflush(stdout);
    if (w->joblog_failed)
        rc = -1;
    free(w);
    return rc;
}

void belt__add_tagged(belt__buf *b, const char *p, size_t n, const char *tag,
                      size_t tl, bool *at_start)
{
    size_t i = 0;
    while (i < n) {
        if (*at_start) {
            belt__buf_add(b, tag, tl);
            *at_start = false;
        }
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        if (j < n) {
            j++; /* the line break; the tag goes before what follows it */
            *at_start = true;
        }
        belt__buf_add(b, p + i, j - i);
        i = j;
    }
}

/* Writes n bytes at p to out, tagged (belt__add_tagged).  Returns 0 or -1
 * (errno). */
static int put_tagged(int out, const char *p, size_t n, const char *tag,
                      size_t tl, bool *at_start)
{
    belt__buf b = {0};
    belt__add_tagged(&b, p, n, tag, tl, at_start);
    int rc = 0;
    if (b.oom) {
        errno = ENOMEM;
        rc = -1;
    } else if (b.len > 0 &&
               belt__write_full(out, b.p, b.len, -1) != BELT_OK) {
        rc = -1;
    }
    belt__buf_free(&b);
    return rc;
}

/* Copies everything from fd (from offset 0) to out, tagged when tag is
 * not NULL.  Returns 0, or -1 when writing to out failed (errno). */
static int copy_fd(int fd, int out, const char *tag, size_t tl)
{
    char buf[65536];
    off_t off = 0;
    bool at_start = true;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        off += n;
        int rc = tag ? put_tagged(out, buf, (size_t)n, tag, tl, &at_start)
                     : (belt__write_full(out, buf, (size_t)n, -1) == BELT_OK
                            ? 0 : -1);
        if (rc != 0)
            return -1;
    }
}

static int copy_mem(const char *p, size_t n, int out, const char *tag,
                    size_t tl)
{
    bool at_start = true;
    if (tag)
        return put_tagged(out, p, n, tag, tl, &at_start);
    return belt__write_full(out, p, n, -1) == BELT_OK ? 0 : -1;
}

int belt__copy_group_output(belt_result *r, const char *tag, size_t tag_len)
{
    int rc = 0;
    if (r->out_fd >= 0)
        rc = copy_fd(r->out_fd, STDOUT_FILENO, tag, tag_len);
    else if (r->out && r->out_len)
        rc = copy_mem(r->out, r->out_len, STDOUT_FILENO, tag, tag_len);
    /* stderr: a reader that went away there is nothing to stop for */
    if (r->err_fd >= 0)
        (void)copy_fd(r->err_fd, STDERR_FILENO, tag, tag_len);
    else if (r->err && r->err_len)
        (void)copy_mem(r->err, r->err_len, STDERR_FILENO, tag, tag_len);
    return rc;
}
