/* pipeline/engine.c: the pipeline engine: wiring, threads, stopping, errors,
 * dead letters, statistics.
 *
 * Wiring: edge[i] is the bounded channel into stage i, edge[nstages] the
 * one into the sink.  Each carries pointers to batches (pipeline/batch.c).
 * The channels' sender and receiver counts do the shutdown: the source is
 * edge[0]'s one sender; stage i's workers (a stream stage's reader threads)
 * are edge[i+1]'s senders and its workers (writers) edge[i]'s receivers;
 * the sink is the last edge's receiver.  When the source ends, edge[0]
 * closes once drained, stage 0's workers end, edge[1] closes when the last
 * of them is done, and so on down to the sink: a clean end needs no
 * coordinator.  If every receiver of an edge quits early, the edge closes
 * and its senders get BELT_CLOSED instead of blocking forever.
 *
 * Stopping: belt__pipeline_stop() only stores a flag and writes eventfds
 * (async-signal-safe).  DRAIN fires `drain`: the source stops reading and
 * the chain ends as above.  NOW also fires `now`: every poll() on a child
 * wakes and kills it, and the monitor thread (which sleeps in poll() on
 * `now` and on its own eventfd) closes every channel and stops the reorder
 * buffers, so every blocked send and receive returns BELT_CLOSED.  Errors
 * inside the pipeline (halt_on_error, a stalled stream program, a sink
 * that cannot be written) record their message and stop NOW.
 *
 * Finishing: each pipeline thread, as it returns, counts itself under `mu`
 * and signals `cv`; belt__pipeline_wait() waits on `cv` (CLOCK_MONOTONIC
 * timed wait, no polling) until all have, then wakes and joins the monitor,
 * joins everything, and computes the outcome.
 *
 * Locks: mu guards the thread list, the exit count, the outcome and the
 * first error; dl_mu guards the dead-letter file.  Counters are relaxed
 * atomics (each exact on its own; a snapshot is a set of separate reads).
 */
#include "pipeline/internal.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/clock.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- creating ----------------------------------------------------------- */

/* Items per batch into a stage: per-item stages share work item by item;
 * others get at least four batches of room in their channel. */
static uint32_t batch_items_for(const belt__pipeline_config *cfg,
                                const belt__stage_config *s)
{
    if (s->kind == BELT__STAGE_ITEM)
        return 1;
    size_t b = s->capacity / 4;
    if (b < 1)
        b = s->capacity == 0 ? cfg->batch : 1;
    if (b > cfg->batch)
        b = cfg->batch;
    return (uint32_t)b;
}

belt__pipeline *belt__pipeline_create(const belt__pipeline_config *cfg)
{
    if (cfg == NULL || cfg->nstages == 0)
        return NULL;
    belt__pipeline *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cfg = cfg;
    p->nstages = cfg->nstages;
    p->monitor_fd = -1;
    p->drain.wake_fd = p->now.wake_fd = -1;
    p->outcome = BELT__PIPE_RUNNING;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->dl_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Everything below is released by belt__pipeline_free(), whatever
     * part of it was made: one exit for every failure. */
    size_t nth = 2; /* source, sink */
    if (belt__bpool_init(&p->pool, (uint32_t)cfg->batch) != BELT_OK)
        goto fail;
    p->stage = calloc(p->nstages, sizeof *p->stage);
    p->edge = calloc(p->nstages + 1, sizeof *p->edge);
    if (p->stage == NULL || p->edge == NULL)
        goto fail;
    for (size_t i = 0; i <= p->nstages; i++) {
        belt__edge *e = &p->edge[i];
        size_t cap;
        if (i < p->nstages) {
            const belt__stage_config *s = &cfg->stages[i];
            e->batch_items = batch_items_for(cfg, s);
            cap = s->capacity == 0 ? 0
                                   : (s->capacity + e->batch_items - 1) / e->batch_items;
            nth += (size_t)s->workers * (s->kind == BELT__STAGE_STREAM ? 2 : 1);
        } else {
            /* Into the sink: room for a burst (see belt__out). */
            e->batch_items = (uint32_t)cfg->batch;
            cap = BELT__BURST;
        }
        e->ch = belt_chan_bounded(cap, sizeof(belt__pbatch *));
        if (e->ch == NULL || belt__edge_init_room(e) != BELT_OK)
            goto fail;
    }
    for (size_t i = 0; i < p->nstages; i++) {
        belt__stage *st = &p->stage[i];
        st->p = p;
        st->cfg = &cfg->stages[i];
        st->index = i;
        st->in = &p->edge[i];
        st->out = &p->edge[i + 1];
        if (cfg->ordered && st->cfg->kind != BELT__STAGE_STREAM &&
            (st->ro = belt__reorder_new(p, st, cfg->reorder_window)) == NULL)
            goto fail;
    }
    p->cap_th = nth;
    if ((p->th = calloc(nth, sizeof *p->th)) == NULL ||
        belt__cancel_init(&p->drain) != BELT_OK ||
        belt__cancel_init(&p->now) != BELT_OK ||
        (p->monitor_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        goto fail;
    return p;

fail:
    p->finished = 1; /* nothing to wait for */
    p->joined = true;
    belt__pipeline_free(p);
    return NULL;
}

/* ---- errors ------------------------------------------------------------- */

static void record(belt__pipeline *p, int outcome, const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    pthread_mutex_lock(&p->mu);
    if (p->error == NULL) {
        p->error = strdup(buf);
        p->error_outcome = outcome;
    }
    pthread_mutex_unlock(&p->mu);
}

static void raise_now(belt__pipeline *p)
{
    atomic_store(&p->stop_req, BELT__STOPREQ_NOW);
    belt__cancel_fire(&p->drain);
    belt__cancel_fire(&p->now);
}

void belt__pipe_fail(belt__pipeline *p, int outcome, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(p, outcome, fmt, ap);
    va_end(ap);
    raise_now(p);
}

void belt__pipe_note(belt__pipeline *p, int outcome, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(p, outcome, fmt, ap);
    va_end(ap);
}

/* ---- dead letters ------------------------------------------------------- */

void belt__dead_letter(belt__pipeline *p, belt__stage *st, const char *item,
                       size_t len, const char *reason, const char *extra)
{
    atomic_fetch_add_explicit(&st->c.failed, 1, memory_order_relaxed);
    belt__buf b = { 0 };
    belt__buf_adds(&b, "{\"stage\": ");
    belt__json_add_str(&b, st->cfg->name, strlen(st->cfg->name));
    belt__buf_adds(&b, ", \"item\": ");
    belt__json_add_str(&b, item, len);
    belt__buf_adds(&b, ", \"reason\": ");
    belt__json_add_str(&b, reason, strlen(reason));
    if (extra != NULL) {
        belt__buf_adds(&b, ", ");
        belt__buf_adds(&b, extra);
    }
    belt__buf_adds(&b, "}\n");
    bool failed = b.oom;
    int e = ENOMEM;
    pthread_mutex_lock(&p->dl_mu);
    if (!failed && p->dl_file == NULL) {
        p->dl_file = fopen(p->cfg->dead_letter, "we");
        failed = p->dl_file == NULL;
        e = errno;
    }
    if (!failed) {
        failed = fwrite(b.p, 1, b.len, p->dl_file) != b.len ||
                 fflush(p->dl_file) != 0;
        e = errno;
    }
    pthread_mutex_unlock(&p->dl_mu);
    belt__buf_free(&b);
    if (failed) {
        belt__pipe_fail(p, BELT__PIPE_ERROR, "cannot write dead-letter file %s: %s",
                        p->cfg->dead_letter, strerror(e));
        return;
    }
    atomic_fetch_add_explicit(&p->dead, 1, memory_order_relaxed);
    if (p->cfg->halt_on_error)
        belt__pipe_fail(p, BELT__PIPE_HALTED,
                        "stage %s: an item failed (%s); stopping (halt_on_error)",
                        st->cfg->name, reason);
}

/* ---- threads ------------------------------------------------------------ */

typedef struct tramp {
    belt__pipeline *p;
    void *(*fn)(void *);
    void *arg;
} tramp;

static void *trampoline(void *a)
{
    tramp t = *(tramp *)a;
    free(a);
    t.fn(t.arg);
    pthread_mutex_lock(&t.p->mu);
    t.p->exited++;
    pthread_cond_broadcast(&t.p->cv);
    pthread_mutex_unlock(&t.p->mu);
    return NULL;
}

/* pthread_create with every signal blocked in the new thread. */
static int create_blocked(pthread_t *th, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(th, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return BELT_ESYS;
    }
    return BELT_OK;
}

int belt__pipe_thread(belt__pipeline *p, void *(*fn)(void *), void *arg)
{
    tramp *t = malloc(sizeof *t);
    if (t == NULL)
        return BELT_ENOMEM;
    *t = (tramp){ p, fn, arg };
    pthread_mutex_lock(&p->mu);
    int rc = p->nth < p->cap_th ? create_blocked(&p->th[p->nth], trampoline, t)
                                : BELT_EINVAL;
    if (rc == BELT_OK)
        p->nth++;
    pthread_mutex_unlock(&p->mu);
    if (rc != BELT_OK)
        free(t);
    return rc;
}

int belt__stage_workers(belt__stage *st, void *(*fn)(void *))
{
    for (int i = 0; i < st->cfg->workers; i++) {
        int rc = belt__pipe_thread(st->p, fn, st);
        if (rc != BELT_OK) {
            belt__pipe_note(st->p, BELT__PIPE_ERROR, "stage %s: cannot start a worker",
                            st->cfg->name);
            return rc;
        }
    }
    return BELT_OK;
}

/* The monitor: turns a NOW stop into closed channels. */
static void *monitor(void *arg)
{
    belt__pipeline *p = arg;
    for (;;) {
        struct pollfd pf[2] = { { .fd = p->now.wake_fd, .events = POLLIN },
                                { .fd = p->monitor_fd, .events = POLLIN } };
        if (poll(pf, 2, -1) < 0 && errno != EINTR && errno != EAGAIN)
            break;
        if (belt__cancel_fired(&p->now)) {
            for (size_t i = 0; i <= p->nstages; i++)
                belt__edge_close(&p->edge[i]);
            for (size_t i = 0; i < p->nstages; i++)
                if (p->stage[i].ro != NULL)
                    belt__reorder_stop(p->stage[i].ro);
            break;
        }
        if (pf[1].revents != 0)
            break; /* the pipeline finished */
    }
    return NULL;
}

/* ---- running ------------------------------------------------------------ */

int belt__pipeline_start(belt__pipeline *p)
{
    if (p == NULL || p->started)
        return BELT_EINVAL;
    p->started = true;
    p->t_start = belt__now_mono();
    const belt__pipeline_config *cfg = p->cfg;

    /* Load plugins and set up builtins before any thread exists. */
    for (size_t i = 0; i < p->nstages; i++) {
        belt__stage *st = &p->stage[i];
        char msg[512];
        if (st->cfg->kind == BELT__STAGE_PLUGIN &&
            belt__plugin_load(st->cfg, &st->fs, msg, sizeof msg) != BELT_OK) {
            belt__pipe_note(p, BELT__PIPE_ERROR, "stage %s: %s", st->cfg->name, msg);
            p->finished = 1;
            p->joined = true;
            p->outcome = BELT__PIPE_ERROR;
            return BELT_ECONFIG;
        }
        if (st->cfg->kind == BELT__STAGE_BUILTIN)
            belt__builtin_fns(st->cfg, &st->fs);
    }

    /* Shutdown by disconnection (see the top of the file). */
    belt_chan_add_senders(p->edge[0].ch, 1);
    for (size_t i = 0; i < p->nstages; i++) {
        size_t w = (size_t)cfg->stages[i].workers;
        belt_chan_add_receivers(p->edge[i].ch, w);
        belt_chan_add_senders(p->edge[i + 1].ch, w);
    }
    belt_chan_add_receivers(p->edge[p->nstages].ch, 1);

    if (create_blocked(&p->monitor, monitor, p) != BELT_OK) {
        belt__pipe_note(p, BELT__PIPE_ERROR, "cannot start a thread: %s",
                        strerror(errno));
        p->finished = 1;
        p->joined = true;
        p->outcome = BELT__PIPE_ERROR;
        return BELT_ESYS;
    }
    p->monitor_started = true;

    int rc = belt__sink_start(p);
    for (size_t i = p->nstages; rc == BELT_OK && i-- > 0;) {
        belt__stage *st = &p->stage[i];
        switch (st->cfg->kind) {
        case BELT__STAGE_ITEM: rc = belt__stage_item_start(st); break;
        case BELT__STAGE_STREAM: rc = belt__stage_stream_start(st); break;
        default: rc = belt__stage_fn_start(st); break;
        }
    }
    if (rc == BELT_OK)
        rc = belt__source_start(p);
    if (rc != BELT_OK) {
        /* The stage recorded why; make sure everything started stops. */
        belt__pipe_fail(p, BELT__PIPE_ERROR, "cannot start the pipeline: %s",
                        belt_strerror(rc));
        return rc;
    }
    return BELT_OK;
}

static int compute_outcome(belt__pipeline *p)
{
    if (p->error != NULL)
        return p->error_outcome;
    if (atomic_load(&p->user_stop))
        return BELT__PIPE_STOPPED;
    if (atomic_load(&p->dead) > 0)
        return BELT__PIPE_FAILED_ITEMS;
    return BELT__PIPE_OK;
}

int belt__pipeline_wait(belt__pipeline *p, int64_t timeout_ns)
{
    if (p == NULL)
        return BELT_EINVAL;
    pthread_mutex_lock(&p->mu);
    if (p->joined) {
        int o = p->outcome;
        pthread_mutex_unlock(&p->mu);
        return o;
    }
    struct timespec dl;
    if (timeout_ns > 0) {
        int64_t t = belt__now_mono() + timeout_ns;
        dl.tv_sec = (time_t)(t / 1000000000);
        dl.tv_nsec = (long)(t % 1000000000);
    }
    while (p->exited < p->nth) {
        if (timeout_ns == 0)
            break;
        if (timeout_ns < 0)
            pthread_cond_wait(&p->cv, &p->mu);
        else if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT)
            break;
    }
    if (p->exited < p->nth) {
        pthread_mutex_unlock(&p->mu);
        return BELT__PIPE_RUNNING;
    }
    pthread_mutex_unlock(&p->mu);

    /* Every pipeline thread has returned: join them and the monitor. */
    for (size_t i = 0; i < p->nth; i++)
        pthread_join(p->th[i], NULL);
    if (p->monitor_started) {
        uint64_t one = 1;
        ssize_t w = write(p->monitor_fd, &one, sizeof one);
        (void)w;
        pthread_join(p->monitor, NULL);
        p->monitor_started = false;
    }
    pthread_mutex_lock(&p->dl_mu);
    if (p->dl_file != NULL) {
        fclose(p->dl_file);
        p->dl_file = NULL;
    }
    pthread_mutex_unlock(&p->dl_mu);
    atomic_store(&p->t_end, belt__now_mono());
    pthread_mutex_lock(&p->mu);
    p->outcome = compute_outcome(p);
    p->joined = true;
    int o = p->outcome;
    pthread_mutex_unlock(&p->mu);
    atomic_store(&p->finished, 1);
    return o;
}

int belt__pipeline_run(belt__pipeline *p)
{
    int rc = belt__pipeline_start(p);
    int o = belt__pipeline_wait(p, -1);
    return rc == BELT_OK ? o : rc;
}

void belt__pipeline_stop(belt__pipeline *p, belt__stop_mode mode)
{
    if (p == NULL || atomic_load(&p->finished))
        return;
    atomic_store(&p->user_stop, 1);
    if (mode == BELT__STOP_NOW) {
        raise_now(p);
    } else {
        int none = BELT__STOPREQ_NONE;
        atomic_compare_exchange_strong(&p->stop_req, &none, BELT__STOPREQ_DRAIN);
        belt__cancel_fire(&p->drain);
    }
}

const char *belt__pipeline_error(const belt__pipeline *p)
{
    if (p == NULL)
        return NULL;
    belt__pipeline *q = (belt__pipeline *)p;
    pthread_mutex_lock(&q->mu);
    const char *e = q->error;
    pthread_mutex_unlock(&q->mu);
    return e;
}

void belt__pipeline_free(belt__pipeline *p)
{
    if (p == NULL)
        return;
    if (p->started && !p->joined) {
        belt__pipeline_stop(p, BELT__STOP_NOW);
        belt__pipeline_wait(p, -1);
    }
    if (p->monitor_started) {
        uint64_t one = 1;
        ssize_t w = write(p->monitor_fd, &one, sizeof one);
        (void)w;
        pthread_join(p->monitor, NULL);
    }
    if (p->stage != NULL) {
        for (size_t i = 0; i < p->nstages; i++) {
            belt__reorder_free(p->stage[i].ro);
            belt__stage_stream_free(&p->stage[i]);
            if (p->stage[i].cfg != NULL && p->stage[i].cfg->kind == BELT__STAGE_PLUGIN)
                belt__plugin_unload(&p->stage[i].fs);
        }
    }
    if (p->edge != NULL) {
        for (size_t i = 0; i <= p->nstages; i++) {
            belt__pbatch *b;
            /* Whatever a stop left in the channels. */
            while (p->edge[i].ch != NULL && belt_chan_try_recv(p->edge[i].ch, &b) == BELT_OK)
                belt__batch_put(&p->pool, b);
            belt_chan_free(p->edge[i].ch);
            belt__edge_destroy_room(&p->edge[i]);
        }
    }
    if (p->dl_file != NULL)
        fclose(p->dl_file);
    free(p->stage);
    free(p->edge);
    free(p->th);
    free(p->error);
    if (p->monitor_fd >= 0)
        close(p->monitor_fd);
    if (p->drain.wake_fd >= 0)
        belt__cancel_destroy(&p->drain);
    if (p->now.wake_fd >= 0)
        belt__cancel_destroy(&p->now);
    belt__bpool_destroy(&p->pool);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->dl_mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

/* ---- statistics --------------------------------------------------------- */

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void belt__pipeline_stats_get(const belt__pipeline *cp, belt__pipeline_stats *st)
{
    belt__pipeline *p = (belt__pipeline *)cp; /* atomics are read only */
    bool fin = atomic_load(&p->finished) != 0;
    st->finished = fin;
    st->source_items = LD(p->source_items);
    st->sink_items = LD(p->sink_items);
    st->dead_letters = LD(p->dead);
    st->sink_full_ns = LD(p->edge[p->nstages].full_ns);
    int64_t t0 = LD(p->t_start), t1 = fin ? LD(p->t_end) : belt__now_mono();
    st->elapsed_ns = t0 > 0 ? t1 - t0 : 0;
    st->nstages = p->nstages;
    for (size_t i = 0; st->stage != NULL && i < p->nstages; i++) {
        belt__stage *s = &p->stage[i];
        belt__stage_stats *o = &st->stage[i];
        o->name = s->cfg->name;
        o->kind = belt__stage_kind_name(s->cfg);
        o->workers = s->cfg->workers;
        o->workers_busy = LD(s->c.busy);
        o->items_in = LD(s->c.in);
        o->items_out = LD(s->c.out);
        o->failed = LD(s->c.failed);
        o->filtered = LD(s->c.filtered);
        if (s->cfg->kind == BELT__STAGE_STREAM) {
            /* Outputs are not tied to inputs: the net loss, once known. */
            uint64_t done = o->failed + o->items_out;
            o->filtered = fin && o->items_in > done ? o->items_in - done : 0;
        }
        o->queued = LD(s->in->queued);
        o->capacity = s->cfg->capacity;
        o->chan_len = belt_chan_len(s->in->ch);
        o->chan_cap = belt_chan_capacity(s->in->ch);
        o->busy_ns = LD(s->c.busy_ns);
        o->full_ns = LD(s->in->full_ns);
        for (int b = 0; b < BELT__HIST_BUCKETS; b++)
            o->hist[b] = LD(s->c.hist[b]);
        o->timed = LD(s->c.timed);
        o->time_sum_ns = LD(s->c.time_sum);
    }
}
