/* pipeline/stage_fn.c: the worker loop of function stages (plugins and
 * builtins): one C call per item, in the worker thread, no process.
 *
 * Each worker: sets up its own context (the plugin's init, or the
 * builtin's), then takes one batch at a time from the stage's channel,
 * calls the function for each item with belt__out_emit as `emit`, and
 * hands the outputs on (unordered: into its current output batch, sent
 * when full and flushed whenever the input channel is empty; ordered: as
 * one chain per input batch to the stage's reorder buffer).  A non-zero
 * return takes back that item's outputs and writes a dead letter.
 *
 * Timing: the clock is read once per batch, not per item: each item of a
 * batch is counted in the histogram with the batch's mean item time.
 * Busy time (busy_ns, and the workers_busy gauge) leaves out the time
 * spent blocked on a full channel downstream (belt__out.blocked_ns,
 * belt__out.busy): that is the next stage's slowness, not this one's.
 * Outputs of a batch that took over SLOW_BATCH_NS are flushed at once.
 */
#include "pipeline/internal.h"
#include "util/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* A batch that took longer than this sends its outputs at once (else
 * they wait for a full batch or for the input to run dry). */
#define SLOW_BATCH_NS ((int64_t)50 * 1000000)

static void fail_item(belt__stage *st, void *ctx, const char *item, size_t len,
                      int code)
{
    const char *why = st->fs.strerror_fn != NULL ? st->fs.strerror_fn(ctx, code)
                                                 : NULL;
    char reason[512], extra[64];
    if (why != NULL)
        snprintf(reason, sizeof reason, "%s", why);
    else
        snprintf(reason, sizeof reason, "%s returned %d",
                 st->cfg->kind == BELT__STAGE_PLUGIN ? "plugin" : "builtin", code);
    snprintf(extra, sizeof extra, "\"code\": %d", code);
    belt__dead_letter(st->p, st, item, len, reason, extra);
}

static void *fn_worker(void *arg)
{
    belt__stage *st = arg;
    belt__pipeline *p = st->p;
    const belt__stage_config *sc = st->cfg;
    int w = atomic_fetch_add(&st->next_worker, 1);
    void *ctx = NULL;
    bool have_ctx = false;
    int rc = 0;

    if (st->fs.init_cfg != NULL)
        rc = st->fs.init_cfg(sc, w, &ctx);
    else if (st->fs.init != NULL)
        rc = st->fs.init(sc->arg != NULL ? sc->arg : "", &ctx);
    if (rc != 0) {
        const char *why = st->fs.strerror_fn != NULL ? st->fs.strerror_fn(NULL, rc)
                                                     : NULL;
        belt__pipe_fail(p, BELT__PIPE_ERROR, "stage %s: init failed (%s)", sc->name,
                        why != NULL ? why : "returned non-zero");
        goto done;
    }
    have_ctx = true;

    belt__out o;
    belt__out_init(&o, p, st, st->out, st->ro != NULL);
    o.cut_nl = sc->kind == BELT__STAGE_PLUGIN; /* builtins pass lines on */
    belt_stage_fn *fn = st->fs.fn;
    for (;;) {
        belt__pbatch *b;
        if (belt__out_recv(&o, st->in, st->ro == NULL, &b) != BELT_OK)
            break;
        atomic_fetch_add_explicit(&st->c.busy, 1, memory_order_relaxed);
        o.busy = &st->c.busy; /* lowered while a send blocks */
        atomic_fetch_add_explicit(&st->c.in, b->n, memory_order_relaxed);
        int64_t t0 = belt__now_mono(), blocked0 = o.blocked_ns;
        uint64_t filtered = 0;
        for (uint32_t i = 0; i < b->n && o.err == 0; i++) {
            size_t len;
            const char *item = belt__batch_item(b, i, &len);
            uint64_t before = o.emitted;
            belt__out_begin(&o);
            int res = fn(ctx, item, len, belt__out_emit, &o);
            if (o.err != 0)
                break;
            if (res != 0) {
                belt__out_discard(&o);
                fail_item(st, ctx, item, len, res);
            } else if (o.emitted == before) {
                filtered++;
            }
            belt__out_between(&o);
        }
        int64_t dt = belt__now_mono() - t0 - (o.blocked_ns - blocked0);
        atomic_fetch_add_explicit(&st->c.filtered, filtered, memory_order_relaxed);
        atomic_fetch_add_explicit(&st->c.busy_ns, dt, memory_order_relaxed);
        belt__scount_time(&st->c, b->n ? dt / b->n : 0, b->n);
        o.busy = NULL;
        atomic_fetch_sub_explicit(&st->c.busy, 1, memory_order_relaxed);
        if (st->ro != NULL && o.err == 0 &&
            belt__reorder_put(st->ro, b->seq, belt__out_take_chain(&o)) != BELT_OK)
            o.err = BELT_CLOSED;
        else if (st->ro == NULL && dt > SLOW_BATCH_NS)
            belt__out_flush(&o); /* a slow function: let its outputs go */
        belt__batch_put(&p->pool, b);
        if (o.err != 0 || belt__pipe_stopping(p))
            break;
    }
    if (st->ro == NULL)
        belt__out_flush(&o);
    belt__out_release(&o);
done:
    if (have_ctx && st->fs.fini != NULL)
        st->fs.fini(ctx);
    belt__edge_receiver_done(st->in);
    belt_chan_sender_done(st->out->ch);
    return NULL;
}

int belt__stage_fn_start(belt__stage *st)
{
    return belt__stage_workers(st, fn_worker);
}
