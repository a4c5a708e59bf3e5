/* pipeline/ends.c: the source and the sink of a pipeline, one thread each.
 *
 * Source: reads lines (a file, stdin, a command's stdout) or counts (a
 * range) and sends them in batches on edge[0].  A line is everything up to
 * a '\n' (not included); a last line without '\n' is an item too; a line
 * longer than BELT__MAX_ITEM fails the pipeline.  It flushes a partial
 * batch whenever a read returns less than it asked for (the writer has no
 * more for now), so a slow command source streams item by item while a
 * file moves in full batches.  Lines go into batches a batch at a time
 * (belt__out_lines: one memcpy per batch), and batches downstream in
 * bursts (belt__out's burst mode).  It stops when `drain` fires, at the
 * next batch of lines (the rest of a read chunk is dropped, uncounted:
 * sending it would take a chunk of lines at the first stage's pace), sends
 * the batches it holds (those items are counted), and a command source is
 * killed (its group) and reaped.  Reads from pipes
 * and stdin wait in poll() together with the drain token.
 *
 * Sink: receives batches from the last edge (all that are queued, up to
 * BELT__BURST at a time) and copies each, its items' lines as they are,
 * into a 256 KiB buffer (one memcpy per batch), which it writes out when
 * full and
 * whenever the channel is empty (so a slow pipeline's output appears as it
 * comes).  A write error (EPIPE, ENOSPC) fails the pipeline.  A command
 * sink gets EOF on its stdin at the end and is waited for; a non-zero exit
 * is reported (without dropping anything: everything was written).
 */
#include "pipeline/internal.h"
#include "util/buf.h"
#include "util/fd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define READ_CHUNK ((size_t)256 * 1024)
#define WRITE_BUF ((size_t)256 * 1024)

/* ---- the source --------------------------------------------------------- */

typedef struct source {
    belt__pipeline *p;
    belt__out out;
    belt__buf carry;           /* a line cut by a read boundary */
} source;

/* Emits the complete lines of buf[0..n) (and keeps the rest in carry). */
static int split_lines(source *s, const char *buf, size_t n)
{
    const char *cur = buf, *end = buf + n;
    while (cur < end) {
        /* A stop: the rest of the chunk is dropped (never counted).  Going
         * on would push up to a chunk of lines through a full channel at
         * the first stage's pace.  (Checked a batch of lines at a time.) */
        if (belt__cancel_fired(&s->p->drain))
            return BELT_CLOSED;
        size_t used = 0;
        uint32_t k = 0;
        int rc = BELT_OK;
        if (s->carry.len > 0) {
            /* The line the last read cut: it ends here, or not yet. */
            const char *nl = memchr(cur, '\n', (size_t)(end - cur));
            used = nl != NULL ? (size_t)(nl - cur) : (size_t)(end - cur);
            belt__buf_add(&s->carry, cur, used);
            if (nl != NULL && !s->carry.oom && s->carry.len <= BELT__MAX_ITEM) {
                rc = belt__out_emit(&s->out, s->carry.p, s->carry.len);
                if (rc == 0)
                    rc = belt__out_between(&s->out);
                belt__buf_clear(&s->carry);
                used++;
                k = 1;
            }
        } else {
            /* A batch of lines at a time, with one copy. */
            rc = belt__out_lines(&s->out, cur, (size_t)(end - cur), &used, &k);
            if (rc == 0 && used == 0) {
                belt__buf_add(&s->carry, cur, (size_t)(end - cur));
                used = (size_t)(end - cur);
            }
        }
        if (s->carry.len > BELT__MAX_ITEM) {
            belt__pipe_fail(s->p, BELT__PIPE_ERROR,
                            "source: a line longer than %zu MiB",
                            BELT__MAX_ITEM >> 20);
            return BELT_ENOMEM;
        }
        if (s->carry.oom || rc == BELT_ENOMEM) {
            belt__pipe_fail(s->p, BELT__PIPE_ERROR, "source: out of memory");
            return BELT_ENOMEM;
        }
        if (rc != 0) /* stopping: what went into cur is not counted */
            return BELT_CLOSED;
        atomic_fetch_add_explicit(&s->p->source_items, k, memory_order_relaxed);
        cur += used;
    }
    return BELT_OK;
}

static bool draining(belt__pipeline *p)
{
    return belt__cancel_fired(&p->drain);
}

/* Reads fd to EOF.  poll_it: wait in poll() with the drain token. */
static void read_fd(source *s, int fd, bool poll_it)
{
    char *buf = malloc(READ_CHUNK);
    if (buf == NULL) {
        belt__pipe_fail(s->p, BELT__PIPE_ERROR, "source: out of memory");
        return;
    }
    while (!draining(s->p)) {
        if (poll_it) {
            struct pollfd pf[2] = { { .fd = fd, .events = POLLIN },
                                    { .fd = s->p->drain.wake_fd, .events = POLLIN } };
            if (poll(pf, 2, -1) < 0 && errno != EINTR && errno != EAGAIN) {
                belt__pipe_fail(s->p, BELT__PIPE_ERROR, "source: poll: %s",
                                strerror(errno));
                break;
            }
            if (draining(s->p))
                break;
            if (pf[0].revents == 0)
                continue;
        }
        ssize_t k = read(fd, buf, READ_CHUNK);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k < 0) {
            belt__pipe_fail(s->p, BELT__PIPE_ERROR, "source: read: %s", strerror(errno));
            break;
        }
        if (k == 0) {
            if (s->carry.len > 0) {
                if (belt__out_emit(&s->out, s->carry.p, s->carry.len) == 0)
                    atomic_fetch_add_explicit(&s->p->source_items, 1,
                                              memory_order_relaxed);
                belt__buf_clear(&s->carry);
            }
            break;
        }
        if (split_lines(s, buf, (size_t)k) != BELT_OK)
            break;
        if ((size_t)k < READ_CHUNK && belt__out_flush(&s->out) != 0)
            break;
    }
    free(buf);
}

static void read_range(source *s)
{
    const belt__pipeline_config *c = s->p->cfg;
    char num[24];
    for (int64_t v = c->range_from; v <= c->range_to; v += c->range_step) {
        if (draining(s->p))
            return; /* what cur holds is counted: source_main sends it */
        /* Decimal digits from the end (snprintf was a tenth of the cost of
         * a pipeline of three plugin stages). */
        char *e = num + sizeof num, *d = e;
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        do {
            *--d = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (v < 0)
            *--d = '-';
        if (belt__out_emit(&s->out, d, (size_t)(e - d)) != 0)
            return;
        atomic_fetch_add_explicit(&s->p->source_items, 1, memory_order_relaxed);
        if (belt__out_between(&s->out) != 0)
            return;
        if (c->range_to - v < c->range_step)
            break;
    }
}

static void run_command(source *s)
{
    belt__pipeline *p = s->p;
    belt__proc pr;
    char msg[512];
    char *argv[] = { "sh", "-c", p->cfg->src_command, NULL };
    if (belt__proc_spawn(&pr, argv, false, true, false, msg, sizeof msg) != BELT_OK) {
        belt__pipe_fail(p, BELT__PIPE_ERROR, "source: %s", msg);
        return;
    }
    read_fd(s, pr.out_fd, true);
    bool drained = draining(p);
    if (!drained) {
        /* EOF: wait for the command's exit (or a stop). */
        struct pollfd pf[2] = { { .fd = pr.pidfd, .events = POLLIN },
                                { .fd = p->drain.wake_fd, .events = POLLIN } };
        while (poll(pf, 2, -1) < 0 && (errno == EINTR || errno == EAGAIN))
            ;
        drained = pf[0].revents == 0;
    }
    int ws;
    belt__proc_finish(&pr, &ws);
    if (!drained && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        char st[64];
        belt__wstatus_text(ws, st, sizeof st);
        belt__pipe_note(p, BELT__PIPE_ERROR, "source command failed (%s)", st);
    }
}

static void *source_main(void *arg)
{
    belt__pipeline *p = arg;
    source s = { .p = p };
    belt__out_init(&s.out, p, NULL, &p->edge[0], false);
    s.out.number = p->cfg->ordered;
    /* Bursts of batches: fewer wake-ups of the first stage, which gets
     * them all at once (see belt__out).  Not for a range, whose items come
     * at a CPU's pace: its batches go one by one, as soon as full, so the
     * stages start on them at once. */
    s.out.burst_mode = p->cfg->src != BELT__SRC_RANGE;
    switch (p->cfg->src) {
    case BELT__SRC_FILE: {
        int fd = open(p->cfg->src_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            belt__pipe_fail(p, BELT__PIPE_ERROR, "cannot open source %s: %s",
                            p->cfg->src_path, strerror(errno));
            break;
        }
        read_fd(&s, fd, false);
        close(fd);
        break;
    }
    case BELT__SRC_STDIN:
        read_fd(&s, 0, true);
        break;
    case BELT__SRC_COMMAND:
        run_command(&s);
        break;
    default:
        read_range(&s);
        break;
    }
    belt__out_flush(&s.out);
    belt__out_release(&s.out);
    belt__buf_free(&s.carry);
    belt_chan_sender_done(p->edge[0].ch);
    return NULL;
}

int belt__source_start(belt__pipeline *p)
{
    int rc = belt__pipe_thread(p, source_main, p);
    if (rc != BELT_OK)
        belt__pipe_note(p, BELT__PIPE_ERROR, "cannot start the source thread");
    return rc;
}

/* ---- the sink ----------------------------------------------------------- */

typedef struct sink {
    belt__pipeline *p;
    int fd;
    char *buf;
    size_t len;
    int err;                   /* errno of a failed write, or 0 */
} sink;

static const char *sink_name(const belt__pipeline_config *c)
{
    return c->sink == BELT__SNK_FILE ? c->sink_path
           : c->sink == BELT__SNK_STDOUT ? "stdout" : "the sink command";
}

static void sink_flush(sink *k)
{
    if (k->len == 0 || k->err != 0)
        return;
    /* A command's pipe is non-blocking: the wait for room also ends when
     * the pipeline is stopped NOW.  A file or stdout is written blocking. */
    int rc = belt__write_full(k->fd, k->buf, k->len, k->p->now.wake_fd);
    if (rc == BELT_ECANCELED) {
        k->err = ECANCELED;
        k->len = 0;
        return;
    }
    if (rc != BELT_OK) {
        k->err = errno != 0 ? errno : EIO;
        belt__pipe_fail(k->p, BELT__PIPE_ERROR, "cannot write to %s: %s",
                        sink_name(k->p->cfg), strerror(k->err));
    }
    k->len = 0;
}

/* A batch is its items' lines already: one copy (or a write) for all. */
static void sink_batch(sink *k, const belt__pbatch *b)
{
    if (k->len + b->len > WRITE_BUF)
        sink_flush(k);
    if (k->err == 0 && b->len > WRITE_BUF) { /* huge items: write them through */
        char *old = k->buf;
        k->buf = b->data;
        k->len = b->len;
        sink_flush(k);
        k->buf = old;
    } else if (k->err == 0 && b->len > 0) {
        memcpy(k->buf + k->len, b->data, b->len);
        k->len += b->len;
    }
    if (k->err == 0)
        atomic_fetch_add_explicit(&k->p->sink_items, b->n, memory_order_relaxed);
}

static void *sink_main(void *arg)
{
    belt__pipeline *p = arg;
    const belt__pipeline_config *c = p->cfg;
    belt__edge *in = &p->edge[p->nstages];
    sink k = { .p = p, .fd = -1 };
    belt__proc pr = { .pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = -1, .peek_fd = -1 };
    char msg[512];

    k.buf = malloc(WRITE_BUF);
    if (k.buf == NULL) {
        belt__pipe_fail(p, BELT__PIPE_ERROR, "sink: out of memory");
        goto out;
    }
    if (c->sink == BELT__SNK_FILE) {
        k.fd = open(c->sink_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (k.fd < 0) {
            belt__pipe_fail(p, BELT__PIPE_ERROR, "cannot open sink %s: %s",
                            c->sink_path, strerror(errno));
            goto out;
        }
    } else if (c->sink == BELT__SNK_STDOUT) {
        k.fd = 1;
    } else {
        char *argv[] = { "sh", "-c", c->sink_command, NULL };
        if (belt__proc_spawn(&pr, argv, true, false, false, msg, sizeof msg) != BELT_OK) {
            belt__pipe_fail(p, BELT__PIPE_ERROR, "sink: %s", msg);
            goto out;
        }
        k.fd = pr.in_fd;
    }

    for (;;) {
        belt__pbatch *b[BELT__BURST];
        int n = belt__edge_recv_many(in, b, BELT__BURST, true);
        if (n == BELT_EMPTY) {
            sink_flush(&k); /* nothing more for now: let it out */
            n = belt__edge_recv_many(in, b, BELT__BURST, false);
        }
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            sink_batch(&k, b[i]);
            belt__batch_put(&p->pool, b[i]);
        }
        if (k.err != 0)
            break;
    }
    sink_flush(&k);

    if (c->sink == BELT__SNK_FILE && k.fd >= 0 && close(k.fd) != 0 && k.err == 0)
        belt__pipe_fail(p, BELT__PIPE_ERROR, "cannot write to %s: %s", c->sink_path,
                        strerror(errno));
    if (pr.pid > 0) {
        /* EOF to the command, then wait for it (or a stop NOW). */
        close(pr.in_fd);
        pr.in_fd = -1;
        struct pollfd pf[2] = { { .fd = pr.pidfd, .events = POLLIN },
                                { .fd = p->now.wake_fd, .events = POLLIN } };
        while (poll(pf, 2, -1) < 0 && (errno == EINTR || errno == EAGAIN))
            ;
        bool exited = pf[0].revents != 0;
        int ws;
        belt__proc_finish(&pr, &ws);
        if (exited && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
            char st[64];
            belt__wstatus_text(ws, st, sizeof st);
            belt__pipe_note(p, BELT__PIPE_ERROR, "sink command failed (%s)", st);
        }
    }
out:
    free(k.buf);
    belt__edge_receiver_done(in);
    return NULL;
}

int belt__sink_start(belt__pipeline *p)
{
    int rc = belt__pipe_thread(p, sink_main, p);
    if (rc != BELT_OK)
        belt__pipe_note(p, BELT__PIPE_ERROR, "cannot start the sink thread");
    return rc;
}
