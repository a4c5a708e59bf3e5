/* pipeline/stage_stream.c: stream stages: one long-lived process per worker;
 * items go to its stdin a line at a time, each line it writes is an item.
 *
 * Each worker has two threads around its child (spawned before any thread
 * starts, so "command not found" fails the start):
 *
 *   writer  takes batches from the stage's channel, all that are queued
 *           (up to BELT__BURST; 2 when the stage has several workers, so
 *           that one does not take the others' share), and writes them
 *           with one writev (a batch is its items' lines already) to the
 *           child's stdin (waiting in poll() with the NOW token); at the end
 *           of the input it closes the child's stdin and tells the reader
 *           (an eventfd).
 *   reader  owns the child: poll() on its stdout, its pidfd, the NOW token
 *           and the writer's eventfd; splits what it reads into items and
 *           sends them on in bursts (belt__out's burst mode: a 256 KiB
 *           read makes dozens of batches, handed over with one wake-up;
 *           a partial batch and the burst go when the pipe is empty, at
 *           once if the program has nothing left to work on, else within
 *           LINGER_NS, unless more output fills the burst first); when
 *           the child exits it kills the rest of its group, reads what is
 *           left and reaps it.
 *
 * A program that misbehaves must not hang belt:
 *   - it exits before its input ends (head -n 1): the writer's next write
 *     fails with EPIPE (SIGPIPE is blocked in pipeline threads), or it
 *     finds the child gone with items still to give: the pipeline fails
 *     with "stage X: program exited early ..." and stops;
 *   - it exits non-zero: the pipeline fails with its status;
 *   - its input has ended, it is still alive, items are outstanding
 *     (written minus lines read > 0) and it has written nothing for
 *     stall_timeout: the typical block-buffered program that waits for
 *     something after EOF before it exits.  The reader fails the pipeline
 *     with a hint (stdbuf -oL, line buffering) and kills it.
 * The stall rule needs the end of input: while input still flows, a quiet
 * program is indistinguishable from a filter that drops lines.
 *
 * Shared between the two threads of a worker: `written`, `gone`, `exit_ws`
 * (atomics); `in_fd` belongs to the writer, the rest of the proc to the
 * reader.  Statistics: items_in counts lines written, items_out lines
 * read; busy time is the time the worker had items outstanding (measured
 * by the reader between its wake-ups); no item-time histogram (outputs
 * are not tied to inputs).
 */
#include "pipeline/internal.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fd.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* The reader's read() size: a pipe holds up to 1 MiB (pipeline/proc.c);
 * the more a read takes, the fewer wake-ups on both sides. */
#define READ_BYTES ((size_t)256 * 1024)
/* How long a reader may hold output (less than a burst) while its program
 * is still working, to pass it on in bigger bursts: each burst costs the
 * next stage a wake-up and its program a write; a program writing 4 KiB at
 * a time (stdio) would otherwise cost both per 4 KiB.  A latency bound,
 * like TCP's Nagle delay or Kafka's linger.ms; not a poll for a state. */
#define LINGER_NS ((int64_t)1000000)

typedef struct sworker {
    belt__stage *st;
    belt__proc pr;             /* the reader's (in_fd moved to the writer) */
    int in_fd;                 /* the writer's */
    int input_fd;              /* eventfd: the writer closed stdin */
    _Atomic uint64_t written;  /* lines written to the child */
    _Atomic int gone;          /* the child has exited */
    _Atomic int exit_ws;
} sworker;

static void early_exit(sworker *w, uint64_t pending)
{
    belt__stage *st = w->st;
    char how[64] = "exited";
    if (atomic_load(&w->gone)) {
        char ws[48];
        belt__wstatus_text(atomic_load(&w->exit_ws), ws, sizeof ws);
        snprintf(how, sizeof how, "exited (%s)", ws);
    }
    belt__pipe_fail(st->p, BELT__PIPE_ERROR,
                    "stage %s: program %s after reading %llu items, with %llu "
                    "more to give it: a stream program must read its input to "
                    "the end (it exited early)",
                    st->cfg->name, how,
                    (unsigned long long)atomic_load(&w->written),
                    (unsigned long long)pending);
}

static void *writer_main(void *arg)
{
    sworker *w = arg;
    belt__stage *st = w->st;
    belt__pipeline *p = st->p;
    /* Whatever batches are queued (a burst), in one writev: a batch is
     * its items' lines already. */
    belt__pbatch *b[BELT__BURST];
    struct iovec iov[BELT__BURST];
    /* With several workers, one writer must not take the others' share. */
    size_t max = st->cfg->workers > 1 ? 2 : BELT__BURST;
    for (;;) {
        int k = belt__edge_recv_many(st->in, b, max, false);
        if (k <= 0)
            break;
        uint64_t n = 0;
        for (int i = 0; i < k; i++) {
            n += b[i]->n;
            iov[i] = (struct iovec){ .iov_base = b[i]->data, .iov_len = b[i]->len };
        }
        atomic_fetch_add_explicit(&st->c.in, n, memory_order_relaxed);
        int rc = belt__writev_full(w->in_fd, iov, k, p->now.wake_fd);
        for (int i = 0; i < k; i++)
            belt__batch_put(&p->pool, b[i]);
        if (rc == BELT_EIO) {
            early_exit(w, n);
            break;
        }
        if (rc != BELT_OK)
            break;
        atomic_fetch_add_explicit(&w->written, n, memory_order_relaxed);
    }
    close(w->in_fd);
    w->in_fd = -1;
    uint64_t one = 1;
    ssize_t k = write(w->input_fd, &one, sizeof one);
    (void)k;
    belt__edge_receiver_done(st->in);
    return NULL;
}

/* Emits the complete lines of buf[0..n), keeping a cut line in carry:
 * BELT_OK, BELT_ENOMEM (a line too long) or BELT_CLOSED (stopping). */
static int emit_lines(belt__out *o, belt__buf *carry, const char *buf, size_t n,
                      uint64_t *lines)
{
    const char *cur = buf, *end = buf + n;
    if (carry->len > 0) {
        /* The line the last read cut ends in this one (or not yet). */
        const char *nl = memchr(cur, '\n', n);
        size_t part = nl != NULL ? (size_t)(nl - cur) : n;
        belt__buf_add(carry, cur, part);
        if (carry->oom || carry->len > BELT__MAX_ITEM)
            return BELT_ENOMEM;
        if (nl == NULL)
            return BELT_OK;
        int rc = belt__out_emit(o, carry->p, carry->len);
        belt__buf_clear(carry);
        (*lines)++;
        if (rc != 0 || belt__out_between(o) != 0)
            return BELT_CLOSED;
        cur = nl + 1;
    }
    while (cur < end) {
        size_t used;
        uint32_t k;
        int rc = belt__out_lines(o, cur, (size_t)(end - cur), &used, &k);
        *lines += k;
        if (rc != 0)
            return rc == BELT_ENOMEM ? BELT_ENOMEM : BELT_CLOSED;
        if (used == 0) {
            belt__buf_add(carry, cur, (size_t)(end - cur));
            return carry->oom || carry->len > BELT__MAX_ITEM ? BELT_ENOMEM : BELT_OK;
        }
        cur += used;
    }
    return BELT_OK;
}

static void *reader_main(void *arg)
{
    sworker *w = arg;
    belt__stage *st = w->st;
    belt__pipeline *p = st->p;
    const belt__stage_config *sc = st->cfg;
    belt__out o;
    belt__out_init(&o, p, st, st->out, false);
    o.number = p->cfg->ordered; /* ordered: one worker, the edge's one sender */
    o.burst_mode = true;
    belt__buf carry = { 0 };
    char *buf = malloc(READ_BYTES);
    uint64_t lines = 0;
    bool exited = false, input_done = false, eof = false, stalled = false;
    bool early = false;
    bool failed = buf == NULL;
    int64_t last_out = belt__now_mono(), input_done_at = 0, last_wake = last_out;
    bool was_busy = false;
    int64_t linger_at = 0;     /* held output goes by then (0: none held) */

    while (!failed && !(exited && eof)) {
        struct pollfd pf[4];
        int n = 0, i_out = -1, i_pid = -1, i_in = -1;
        pf[n++] = (struct pollfd){ .fd = p->now.wake_fd, .events = POLLIN };
        if (!eof) {
            i_out = n;
            pf[n++] = (struct pollfd){ .fd = w->pr.out_fd, .events = POLLIN };
        }
        if (!exited) {
            i_pid = n;
            pf[n++] = (struct pollfd){ .fd = w->pr.pidfd, .events = POLLIN };
        }
        if (!input_done) {
            i_in = n;
            pf[n++] = (struct pollfd){ .fd = w->input_fd, .events = POLLIN };
        }
        uint64_t outstanding_now = atomic_load_explicit(&w->written, memory_order_relaxed);
        outstanding_now = outstanding_now > lines ? outstanding_now - lines : 0;
        int timeout = -1;
        int64_t stall_at = INT64_MAX;
        if (input_done && !exited && outstanding_now > 0 && sc->stall_ns > 0) {
            int64_t from = last_out > input_done_at ? last_out : input_done_at;
            stall_at = belt__add_sat(from, sc->stall_ns);
            int64_t left = stall_at - belt__now_mono();
            timeout = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        if (linger_at != 0) {
            int64_t left = linger_at - belt__now_mono();
            int t = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
            timeout = timeout < 0 || t < timeout ? t : timeout;
        }
        int k = poll(pf, (nfds_t)n, timeout);
        int64_t now = belt__now_mono();
        /* Busy accounting: outstanding items mean the program is working. */
        if (was_busy)
            atomic_fetch_add_explicit(&st->c.busy_ns, now - last_wake, memory_order_relaxed);
        last_wake = now;
        if (k < 0 && errno != EINTR && errno != EAGAIN) {
            belt__pipe_fail(p, BELT__PIPE_ERROR, "stage %s: poll: %s", sc->name,
                            strerror(errno));
            break;
        }
        if (belt__cancel_fired(&p->now))
            break;
        if (i_in >= 0 && pf[i_in].revents != 0) {
            input_done = true;
            input_done_at = now;
        }
        if (i_out >= 0 && pf[i_out].revents != 0) {
            for (;;) {
                ssize_t r = read(w->pr.out_fd, buf, READ_BYTES);
                if (r > 0) {
                    last_out = now;
                    int rc = emit_lines(&o, &carry, buf, (size_t)r, &lines);
                    if (rc == BELT_ENOMEM)
                        belt__pipe_fail(p, BELT__PIPE_ERROR,
                                        "stage %s: an output line longer than %zu MiB",
                                        sc->name, BELT__MAX_ITEM >> 20);
                    if (rc != BELT_OK) {
                        failed = true;
                        break;
                    }
                    continue;
                }
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && errno == EAGAIN) {
                    /* Nothing more for now.  While the program still has
                     * input to work on, more output is coming: hold what
                     * we have (a burst) for at most LINGER_NS; else, or
                     * then, send it on. */
                    bool held = o.nburst > 0 || (o.cur != NULL && o.cur->n > 0);
                    if (held && !input_done &&
                        atomic_load_explicit(&w->written, memory_order_relaxed) > lines) {
                        if (linger_at == 0)
                            linger_at = now + LINGER_NS;
                        if (now < linger_at)
                            break;
                    }
                    linger_at = 0;
                    if (belt__out_flush(&o) != 0)
                        failed = true;
                    break;
                }
                eof = true; /* EOF or an error: no more output */
                if (carry.len > 0) {
                    belt__out_emit(&o, carry.p, carry.len);
                    lines++;
                    belt__buf_clear(&carry);
                }
                break;
            }
        }
        if (!failed && linger_at != 0 && now >= linger_at) {
            linger_at = 0;
            if (belt__out_flush(&o) != 0)
                failed = true;
        }
        if (i_pid >= 0 && pf[i_pid].revents != 0) {
            exited = true;
            /* Its leftovers go now (the zombie pins the group id), so that
             * the pipe reaches EOF even if a grandchild held it. */
            kill(-w->pr.pid, SIGKILL);
            /* Input it never read: it exited early.  Then let go of the
             * pipe, so that the writer's next write fails (EPIPE). */
            int unread = 0;
            if (w->pr.peek_fd >= 0 && ioctl(w->pr.peek_fd, FIONREAD, &unread) == 0 &&
                unread > 0 && !belt__pipe_stopping(p)) {
                belt__pipe_fail(p, BELT__PIPE_ERROR,
                                "stage %s: program exited with %d bytes of its "
                                "input unread, after reading some of %llu items: "
                                "a stream program must read its input to the end "
                                "(it exited early)",
                                sc->name, unread,
                                (unsigned long long)atomic_load(&w->written));
                early = true;
            }
            close(w->pr.peek_fd);
            w->pr.peek_fd = -1;
        }
        uint64_t wr = atomic_load_explicit(&w->written, memory_order_relaxed);
        bool busy = wr > lines;
        if (busy != was_busy)
            atomic_fetch_add_explicit(&st->c.busy, busy ? 1 : -1, memory_order_relaxed);
        was_busy = busy;
        if (stall_at != INT64_MAX && now >= stall_at && !exited) {
            stalled = true;
            char d[32];
            belt__format_duration(sc->stall_ns, d, sizeof d);
            belt__pipe_fail(p, BELT__PIPE_ERROR,
                            "stage %s: program produced no output for %s with %llu "
                            "items outstanding after its input ended; it may "
                            "block-buffer its stdout: try stdbuf -oL, or line "
                            "buffering in the program (python3 -u, sed -u, grep "
                            "--line-buffered, fflush() in awk)",
                            sc->name, d, (unsigned long long)(wr - lines));
            break;
        }
    }
    if (was_busy)
        atomic_fetch_sub_explicit(&st->c.busy, 1, memory_order_relaxed);
    belt__out_flush(&o);
    belt__out_release(&o);
    belt__buf_free(&carry);
    free(buf);
    int ws = 0;
    belt__proc_finish(&w->pr, &ws);
    atomic_store(&w->exit_ws, ws);
    atomic_store(&w->gone, 1);
    if (exited && !stalled && !early && !belt__pipe_stopping(p) &&
        !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        char how[64];
        belt__wstatus_text(ws, how, sizeof how);
        belt__pipe_fail(p, BELT__PIPE_ERROR, "stage %s: program failed (%s)%s",
                        sc->name, how,
                        WIFEXITED(ws) && WEXITSTATUS(ws) == 127 && sc->run != NULL
                            ? " (command not found?)" : "");
    }
    belt_chan_sender_done(st->out->ch);
    return NULL;
}

/* The workers' state lives as long as the pipeline: it is kept in a list
 * freed by belt__pipeline_free through the stage (see below). */
typedef struct sworkers {
    size_t n;
    sworker w[];
} sworkers;

int belt__stage_stream_start(belt__stage *st)
{
    belt__pipeline *p = st->p;
    const belt__stage_config *sc = st->cfg;
    size_t n = (size_t)sc->workers;
    sworkers *ws = calloc(1, sizeof *ws + n * sizeof(sworker));
    if (ws == NULL)
        return BELT_ENOMEM;
    ws->n = n;
    st->priv = ws;
    for (size_t i = 0; i < n; i++) {
        sworker *w = &ws->w[i];
        w->st = st;
        w->in_fd = -1;
        w->input_fd = -1;
        w->pr.pid = -1;
        w->pr.pidfd = w->pr.in_fd = w->pr.out_fd = w->pr.peek_fd = -1;
    }
    char msg[512];
    for (size_t i = 0; i < n; i++) {
        sworker *w = &ws->w[i];
        char **argv = belt__stage_argv(sc, NULL, 0);
        if (argv == NULL)
            return BELT_ENOMEM;
        int rc = belt__proc_spawn(&w->pr, argv, true, true, true, msg, sizeof msg);
        free(argv);
        if (rc != BELT_OK) {
            belt__pipe_note(p, BELT__PIPE_ERROR, "stage %s: %s", sc->name, msg);
            return rc;
        }
        w->in_fd = w->pr.in_fd;
        w->pr.in_fd = -1;
        w->input_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->input_fd < 0) {
            belt__pipe_note(p, BELT__PIPE_ERROR, "stage %s: eventfd: %s", sc->name,
                            strerror(errno));
            return BELT_ESYS;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int rc = belt__pipe_thread(p, reader_main, &ws->w[i]);
        if (rc == BELT_OK)
            rc = belt__pipe_thread(p, writer_main, &ws->w[i]);
        if (rc != BELT_OK) {
            belt__pipe_note(p, BELT__PIPE_ERROR, "stage %s: cannot start a worker",
                            sc->name);
            return rc;
        }
    }
    return BELT_OK;
}

void belt__stage_stream_free(belt__stage *st)
{
    sworkers *ws = st->priv;
    if (ws == NULL)
        return;
    for (size_t i = 0; i < ws->n; i++) {
        sworker *w = &ws->w[i];
        int status;
        if (w->in_fd >= 0)
            close(w->in_fd);
        if (w->input_fd >= 0)
            close(w->input_fd);
        belt__proc_finish(&w->pr, &status); /* children never started */
    }
    free(ws);
    st->priv = NULL;
}
