/* pipeline/stage_item.c: per-item stages: one process per item.
 *
 * For each item the worker builds the command (the item substituted for
 * "{}", shell-quoted in a "run" string), spawns it with the item and a
 * '\n' on its stdin, and collects its stdout.  One poll() loop moves both
 * pipes (so a program that writes a lot before reading cannot deadlock
 * against us) and watches the child's pidfd, the pipeline's NOW token and
 * the item's deadline.  The child's stdout ends when the child exits: the
 * rest is read without waiting (a background process that kept the pipe
 * open cannot hold the worker).  Exit 0: each output line is an item
 * downstream (a last line without '\n' too); none means filtered.  Else
 * the item is a dead letter with its exit code or signal; a timeout kills
 * the process group (SIGKILL) and is a dead letter "timed out after N".
 *
 * The item's outputs are kept in a buffer until the child exits 0 (at most
 * MAX_OUTPUT bytes: more is a failure), so a failed item sends nothing;
 * then they are sent on at once (one batch per item: the process costs
 * far more than the send), so a slow stage's results flow to the sink as
 * they are made.
 * A spawn that fails (command not found) fails the whole pipeline: every
 * other item would fail the same way.
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
#include <sys/wait.h>
#include <unistd.h>

#define MAX_OUTPUT ((size_t)64 * 1024 * 1024)

enum item_end { END_EXITED, END_TIMEOUT, END_STOPPED, END_TOO_BIG, END_ERROR };

/* Reads what is there from the child's stdout into b; false at EOF/error. */
static bool read_some(int fd, belt__buf *b, bool *too_big)
{
    char chunk[16384];
    for (;;) {
        ssize_t k = read(fd, chunk, sizeof chunk);
        if (k > 0) {
            belt__buf_add(b, chunk, (size_t)k);
            if (b->len > MAX_OUTPUT || b->oom) {
                *too_big = true;
                return false;
            }
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        return k < 0 && errno == EAGAIN;
    }
}

/* Runs one item's process.  Fills *ws and the output in outb. */
static enum item_end run_item(belt__stage *st, const char *item, size_t len,
                              belt__buf *outb, int *ws, char *msg, size_t msz)
{
    belt__pipeline *p = st->p;
    const belt__stage_config *sc = st->cfg;
    char **argv = belt__stage_argv(sc, item, len);
    if (argv == NULL) {
        snprintf(msg, msz, "out of memory");
        return END_ERROR;
    }
    belt__proc pr;
    int rc = belt__proc_spawn(&pr, argv, true, true, false, msg, msz);
    free(argv);
    if (rc != BELT_OK)
        return END_ERROR;

    /* The input: the item and a newline. */
    belt__buf in = { 0 };
    belt__buf_add(&in, item, len);
    belt__buf_addc(&in, '\n');
    size_t off = 0;
    int64_t deadline = sc->timeout_ns > 0 ? belt__add_sat(belt__now_mono(), sc->timeout_ns)
                                          : INT64_MAX;
    bool exited = false, too_big = false;
    enum item_end end = END_EXITED;
    while (!exited) {
        struct pollfd pf[4];
        int n = 0, i_in = -1, i_out = -1;
        pf[n++] = (struct pollfd){ .fd = pr.pidfd, .events = POLLIN };
        pf[n++] = (struct pollfd){ .fd = p->now.wake_fd, .events = POLLIN };
        if (pr.in_fd >= 0) {
            i_in = n;
            pf[n++] = (struct pollfd){ .fd = pr.in_fd, .events = POLLOUT };
        }
        if (pr.out_fd >= 0) {
            i_out = n;
            pf[n++] = (struct pollfd){ .fd = pr.out_fd, .events = POLLIN };
        }
        int timeout = -1;
        if (deadline != INT64_MAX) {
            int64_t left = deadline - belt__now_mono();
            timeout = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        int k = poll(pf, (nfds_t)n, timeout);
        if (k < 0 && errno != EINTR && errno != EAGAIN) {
            snprintf(msg, msz, "poll: %s", strerror(errno));
            end = END_ERROR;
            break;
        }
        if (belt__cancel_fired(&p->now)) {
            end = END_STOPPED;
            break;
        }
        if (i_in >= 0 && pf[i_in].revents != 0) {
            ssize_t w = write(pr.in_fd, in.p + off, in.len - off);
            if (w > 0)
                off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == in.len) {
                close(pr.in_fd); /* done, or it does not read stdin (EPIPE) */
                pr.in_fd = -1;
            }
        }
        if (i_out >= 0 && pf[i_out].revents != 0 && !read_some(pr.out_fd, outb, &too_big)) {
            close(pr.out_fd);
            pr.out_fd = -1;
            if (too_big) {
                end = END_TOO_BIG;
                break;
            }
        }
        if (pf[0].revents != 0)
            exited = true;
        else if (belt__now_mono() >= deadline) {
            end = END_TIMEOUT;
            break;
        }
    }
    if (exited) {
        /* Its group goes before it is reaped; then what it wrote. */
        kill(-pr.pid, SIGKILL);
        if (pr.out_fd >= 0)
            read_some(pr.out_fd, outb, &too_big);
        if (too_big)
            end = END_TOO_BIG;
    }
    belt__buf_free(&in);
    belt__proc_finish(&pr, ws);
    return end;
}

static void *item_worker(void *arg)
{
    belt__stage *st = arg;
    belt__pipeline *p = st->p;
    const belt__stage_config *sc = st->cfg;
    belt__out o;
    belt__out_init(&o, p, st, st->out, st->ro != NULL);
    belt__buf outb = { 0 };
    char msg[512];
    bool stop = false;

    while (!stop) {
        belt__pbatch *b;
        if (belt__out_recv(&o, st->in, st->ro == NULL, &b) != BELT_OK)
            break;
        atomic_fetch_add_explicit(&st->c.in, b->n, memory_order_relaxed);
        for (uint32_t i = 0; i < b->n && !stop; i++) {
            size_t len;
            const char *item = belt__batch_item(b, i, &len);
            atomic_fetch_add_explicit(&st->c.busy, 1, memory_order_relaxed);
            int64_t t0 = belt__now_mono();
            int ws = 0;
            belt__buf_clear(&outb);
            outb.len = 0;
            enum item_end end = run_item(st, item, len, &outb, &ws, msg, sizeof msg);
            int64_t dt = belt__now_mono() - t0;
            atomic_fetch_add_explicit(&st->c.busy_ns, dt, memory_order_relaxed);
            belt__scount_time(&st->c, dt, 1);
            atomic_fetch_sub_explicit(&st->c.busy, 1, memory_order_relaxed);

            char reason[600], extra[64];
            extra[0] = '\0';
            switch (end) {
            case END_STOPPED:
                stop = true;
                continue;
            case END_ERROR:
                belt__pipe_fail(p, BELT__PIPE_ERROR, "stage %s: %s", sc->name, msg);
                stop = true;
                continue;
            case END_TIMEOUT: {
                char d[32];
                belt__format_duration(sc->timeout_ns, d, sizeof d);
                snprintf(reason, sizeof reason, "timed out after %s", d);
                snprintf(extra, sizeof extra, "\"timeout\": true");
                break;
            }
            case END_TOO_BIG:
                snprintf(reason, sizeof reason, "output larger than %zu MiB",
                         MAX_OUTPUT >> 20);
                break;
            default:
                if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0) {
                    /* Success: every line is an item. */
                    const char *s = belt__buf_str(&outb), *e = s + outb.len;
                    uint64_t before = o.emitted;
                    while (s < e && o.err == 0) {
                        const char *nl = memchr(s, '\n', (size_t)(e - s));
                        const char *stop_at = nl != NULL ? nl : e;
                        belt__out_emit(&o, s, (size_t)(stop_at - s));
                        s = nl != NULL ? nl + 1 : e;
                    }
                    if (o.emitted == before)
                        atomic_fetch_add_explicit(&st->c.filtered, 1,
                                                  memory_order_relaxed);
                    /* Sent at once, not when a batch fills: an item costs
                     * a process, a send is nothing next to it, and a
                     * worker whose input never runs dry would otherwise
                     * hold its outputs until 256 of them were done. */
                    if (belt__out_flush(&o) != 0)
                        stop = true;
                    continue;
                }
                belt__wstatus_text(ws, reason, sizeof reason);
                if (WIFEXITED(ws)) {
                    snprintf(extra, sizeof extra, "\"exit\": %d", WEXITSTATUS(ws));
                    if (WEXITSTATUS(ws) == 127 && sc->run != NULL)
                        snprintf(reason, sizeof reason, "exit 127 (command not found?)");
                } else if (WIFSIGNALED(ws)) {
                    snprintf(extra, sizeof extra, "\"signal\": %d", WTERMSIG(ws));
                }
                break;
            }
            belt__dead_letter(p, st, item, len, reason, extra[0] ? extra : NULL);
        }
        if (!stop && st->ro != NULL &&
            belt__reorder_put(st->ro, b->seq, belt__out_take_chain(&o)) != BELT_OK)
            stop = true;
        belt__batch_put(&p->pool, b);
        if (o.err != 0 || belt__pipe_stopping(p))
            stop = true;
    }
    if (st->ro == NULL)
        belt__out_flush(&o);
    belt__out_release(&o);
    belt__buf_free(&outb);
    belt__edge_receiver_done(st->in);
    belt_chan_sender_done(st->out->ch);
    return NULL;
}

int belt__stage_item_start(belt__stage *st)
{
    return belt__stage_workers(st, item_worker);
}
