/* quick.c: `belt run --command CMD`, the quick mode for people coming from
 * xargs -P and GNU parallel.
 *
 *   find . -name '*.log' | belt run -j 4 --command 'gzip {}'
 *
 * One job per input line (or NUL-terminated item with -0), read from stdin
 * or from -a FILE.  The job runs CMD through /bin/sh with every "{}"
 * replaced by the line quoted for the shell: inside single quotes, each '
 * written as '\'' .  That quoting is complete for POSIX sh: inside single
 * quotes nothing is special, so spaces, quotes, $, `, ;, |, globs and
 * newlines in the input reach the command as one literal argument, however
 * many times {} appears, and composed commands ("echo a; echo {}") work as
 * written.  Without "{}" the quoted line is appended after a space, as
 * parallel does.
 *
 * Output is GNU parallel's default: each job's stdout and stderr are spooled
 * by the executor (BELT_OUTPUT_GROUP: unlinked temporary files, so no size
 * limit from RAM and nothing left behind even after SIGKILL) and copied to
 * belt's stdout and stderr as one block each when the job ends, so output of
 * two jobs never mixes and stdout is never merged into stderr.  With -k the
 * blocks come in input order (run_output.c's reorder buffer; the engine caps
 * how many finished jobs may wait, since each holds two open files).  With
 * --line-buffer the executor passes whole lines through as they come
 * (BELT_OUTPUT_LINES).  No results file unless --results is given.
 *
 * Reading input must not stall the engine (input may trickle in from a
 * slow pipe), so a reader thread reads it and sends ready-made jobs over a
 * bounded channel, the engine's "feed"; the engine waits on the feed and the
 * results channel together with belt_select().  The reader waits with
 * poll() on the input and on an eventfd, so the engine can stop it at any
 * moment (interrupt, --halt-on-error) and join it: no thread is abandoned.
 * The bounded feed gives back-pressure: the reader is at most FEED_CAP jobs
 * ahead of the pool, so a million-line input runs in bounded memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "belt/error.h"
#include "cli/run.h"
#include "util/buf.h"
#include "util/cpu.h"
#include "util/shell.h"

#define FEED_CAP 64

/* One quick-mode job and the memory its pointers use. */
struct qjob {
    belt_job job;          /* first: a result's job pointer is &qjob->job */
    char id[24];
    char *cmd;
};

struct qreader {
    int fd;
    char sep;              /* '\n' or '\0' */
    char *buf;             /* read buffer: [start, len) not yet split */
    size_t start, len, cap;
    bool eof;
    int stop_fd;           /* eventfd: readable once the engine says stop */
    const char *name;      /* for messages */
};

struct quick {
    const belt__run_opts *o;
    struct qreader rd;
    belt_chan *feed;       /* struct qjob * (as belt_job *) */
    pthread_t thread;
    bool thread_started;
    uint64_t next_seq;     /* reader thread only */
    int read_error;        /* errno of a failed read, set by the reader */
};

char *belt__quick_substitute(const char *cmd, const char *arg, size_t arg_len)
{
    belt__buf b = { 0 };
    bool placed = false;
    const char *p = cmd;
    for (;;) {
        const char *hole = strstr(p, "{}");
        belt__buf_add(&b, p, hole ? (size_t)(hole - p) : strlen(p));
        if (hole == NULL)
            break;
        belt__sh_quote(&b, arg, arg_len);
        placed = true;
        p = hole + 2;
    }
    if (!placed) {
        belt__buf_addc(&b, ' ');
        belt__sh_quote(&b, arg, arg_len);
    }
    if (b.oom) {
        belt__buf_free(&b);
        return NULL;
    }
    return b.p != NULL ? b.p : strdup("");
}

/* Next item into *item (not terminated; valid until the next call).
 * Returns 1, 0 at the end of the input, -1 on a read error (errno) and -2
 * when told to stop.  With wait, poll()s on the input and the stop fd. */
static int qreader_next(struct qreader *rd, char **item, size_t *item_len,
                        bool wait)
{
    for (;;) {
        char *nl = rd->len > rd->start
                       ? memchr(rd->buf + rd->start, rd->sep,
                                rd->len - rd->start)
                       : NULL;
        if (nl) {
            *item = rd->buf + rd->start;
            *item_len = (size_t)(nl - *item);
            rd->start = (size_t)(nl - rd->buf) + 1;
            return 1;
        }
        if (rd->eof) {
            if (rd->len > rd->start) { /* a last line without a newline */
                *item = rd->buf + rd->start;
                *item_len = rd->len - rd->start;
                rd->start = rd->len;
                return 1;
            }
            return 0;
        }
        /* Make room: move the partial item to the front, grow if full. */
        if (rd->start > 0) {
            memmove(rd->buf, rd->buf + rd->start, rd->len - rd->start);
            rd->len -= rd->start;
            rd->start = 0;
        }
        if (rd->len == rd->cap) {
            size_t ncap = rd->cap ? rd->cap * 2 : 65536;
            char *nb = realloc(rd->buf, ncap);
            if (nb == NULL) {
                errno = ENOMEM;
                return -1;
            }
            rd->buf = nb;
            rd->cap = ncap;
        }
        if (wait) {
            struct pollfd pf[2] = {{.fd = rd->fd, .events = POLLIN},
                                   {.fd = rd->stop_fd, .events = POLLIN}};
            int n = poll(pf, 2, -1);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return -1;
            if (pf[1].revents)
                return -2;
        }
        ssize_t n = read(rd->fd, rd->buf + rd->len, rd->cap - rd->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            rd->eof = true;
        rd->len += (size_t)n;
    }
}

/* Builds the job for one item.  NULL when memory runs out. */
static struct qjob *make_job(struct quick *q, const char *item, size_t len)
{
    struct qjob *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    /* A NUL inside a line cannot reach the shell: the line ends there. */
    const char *nul = memchr(item, '\0', len);
    if (nul)
        len = (size_t)(nul - item);
    j->cmd = belt__quick_substitute(q->o->command, item, len);
    if (j->cmd == NULL) {
        free(j);
        return NULL;
    }
    belt_job_init(&j->job);
    j->job.seq = q->next_seq++;
    snprintf(j->id, sizeof j->id, "%" PRIu64, j->job.seq + 1);
    j->job.id = j->id;
    j->job.kind = BELT_JOB_EXEC;
    j->job.run = j->cmd;
    j->job.output = q->o->line_buffer ? BELT_OUTPUT_LINES : BELT_OUTPUT_GROUP;
    return j;
}

static void free_job(struct qjob *j)
{
    if (j) {
        free(j->cmd);
        free(j);
    }
}

static void *reader_main(void *arg)
{
    struct quick *q = arg;
    for (;;) {
        char *item;
        size_t len;
        int rc = qreader_next(&q->rd, &item, &len, true);
        if (rc == 0 || rc == -2)
            break;
        if (rc < 0) {
            q->read_error = errno ? errno : EIO;
            break;
        }
        struct qjob *j = make_job(q, item, len);
        if (j == NULL) {
            q->read_error = ENOMEM;
            break;
        }
        belt_job *jp = &j->job;
        if (belt_chan_send(q->feed, &jp) != BELT_OK) { /* closed: stop */
            free_job(j);
            break;
        }
    }
    belt_chan_close(q->feed); /* the engine sees the end of the input */
    return NULL;
}

static void quick_done(void *ctx, belt_result *r)
{
    (void)ctx;
    free_job((struct qjob *)(void *)r->job);
}

static void quick_cancel(void *ctx, const char *why)
{
    (void)why;
    struct quick *q = ctx;
    uint64_t one = 1;
    ssize_t n = write(q->rd.stop_fd, &one, sizeof one);
    (void)n;
    belt_chan_close(q->feed);
}

/* Makes sure `window` finished jobs can hold their two spool files each:
 * raises the soft RLIMIT_NOFILE towards the hard one, or shrinks the
 * window.  Returns the window to use. */
static size_t fit_window(size_t window, size_t cap)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return cap;
    /* Each job in flight or held: 2 spool fds, plus pipes while running. */
    rlim_t need = (rlim_t)window * 4 + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need
                          ? need : rl.rlim_max;
        struct rlimit nr = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nr) == 0)
            rl.rlim_cur = want;
        if (rl.rlim_cur < need)
            window = rl.rlim_cur > 64 + 4 ? (size_t)(rl.rlim_cur - 64) / 4 : 1;
    }
    return window ? window : 1;
}

static int quick_dry_run(struct quick *q)
{
    for (;;) {
        char *item;
        size_t len;
        int rc = qreader_next(&q->rd, &item, &len, false);
        if (rc == 0)
            break;
        if (rc < 0) {
            fprintf(stderr, "belt run: reading %s: %s\n", q->rd.name,
                    strerror(errno));
            return 1;
        }
        struct qjob *j = make_job(q, item, len);
        char *line = NULL;
        size_t ll = 0;
        if (j) {
            if (q->o->have_timeout)
                j->job.timeout_ns = q->o->timeout_ns;
            if (q->o->have_retries)
                j->job.retries = q->o->retries;
            line = belt__report_job_line(&j->job, &ll);
        }
        free_job(j);
        if (line == NULL) {
            fprintf(stderr, "belt run: out of memory\n");
            return 1;
        }
        fwrite(line, 1, ll, stdout);
        free(line);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "belt run: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

int belt__run_quick(belt__run_opts *o)
{
    if (o->workers_arg == NULL)
        o->workers = belt__cpu_count();
    if (o->command[0] == '\0') {
        fprintf(stderr, "belt run: --command: empty command\n");
        return 2;
    }

    struct quick q;
    memset(&q, 0, sizeof q);
    q.o = o;
    q.rd.sep = o->null_sep ? '\0' : '\n';
    q.rd.stop_fd = -1;
    if (o->arg_file && strcmp(o->arg_file, "-") != 0) {
        q.rd.fd = open(o->arg_file, O_RDONLY | O_CLOEXEC);
        q.rd.name = o->arg_file;
        if (q.rd.fd < 0) {
            fprintf(stderr, "belt run: -a: cannot open %s: %s\n", o->arg_file,
                    strerror(errno));
            return 2;
        }
    } else {
        q.rd.fd = STDIN_FILENO;
        q.rd.name = "standard input";
        if (isatty(STDIN_FILENO) && !o->quiet)
            fprintf(stderr, "belt run: reading input lines from the terminal "
                    "(end with Ctrl-D)\n");
    }

    int status;
    if (o->dry_run) {
        status = quick_dry_run(&q);
        goto out;
    }

    q.rd.stop_fd = eventfd(0, EFD_CLOEXEC);
    q.feed = belt_chan_bounded(FEED_CAP, sizeof(belt_job *));
    if (q.rd.stop_fd < 0 || q.feed == NULL) {
        fprintf(stderr, "belt run: cannot start: %s\n",
                q.feed ? strerror(errno) : "out of memory");
        status = 1;
        goto out;
    }
    int err = pthread_create(&q.thread, NULL, reader_main, &q);
    if (err != 0) {
        fprintf(stderr, "belt run: cannot start the input reader: %s\n",
                strerror(err));
        status = 1;
        goto out;
    }
    q.thread_started = true;

    size_t cap = 2 * (size_t)o->workers;
    belt__source src = {
        .ctx = &q,
        .feed = q.feed,
        .done = quick_done,
        .cancel = quick_cancel,
        .group_output = !o->line_buffer,
        .halt_in_engine = true,
        .order_window = o->keep_order ? fit_window(cap + 256, cap) : 0,
    };
    status = belt__run_engine(o, &src);

out:
    if (q.thread_started) {
        quick_cancel(&q, NULL);
        pthread_join(q.thread, NULL);
    }
    if (q.feed) {
        belt_job *jp;
        while (belt_chan_try_recv(q.feed, &jp) == BELT_OK)
            free_job((struct qjob *)(void *)jp);
        belt_chan_free(q.feed);
    }
    if (q.read_error && status == 0) {
        fprintf(stderr, "belt run: reading %s: %s\n", q.rd.name,
                strerror(q.read_error));
        status = 1;
    } else if (q.read_error) {
        fprintf(stderr, "belt run: reading %s: %s\n", q.rd.name,
                strerror(q.read_error));
    }
    if (q.rd.stop_fd >= 0)
        close(q.rd.stop_fd);
    if (q.rd.fd != STDIN_FILENO)
        close(q.rd.fd);
    free(q.rd.buf);
    return status;
}
