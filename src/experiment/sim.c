/* experiment/sim.c: the discrete-event simulator of `belt experiment` (experiment/sim.h).
 *
 * Model: n workers (servers) of speeds f[i]; jobs arrive in virtual time
 * with a service demand s (seconds at speed 1) and run non-preemptively for
 * s / f[i] on the worker that takes them.  Where a job waits and which
 * worker takes it is decided only by the policy's vtable (pool/policy.h): see
 * the topology table in experiment/sim.h.
 *
 * Algorithm: a classic next-event simulation with two event sources, so no
 * general event list is needed:
 *   - the next arrival: one pending job, generated on demand from the
 *     arrival and service streams (or the trace);
 *   - the next completion: a binary min-heap of (completion time, worker)
 *     holding every busy worker exactly once.
 * Each step takes the earlier of the two (a completion first on a tie; heap
 * ties go to the lower worker number), so the order of events, and hence
 * every result, is a function of the inputs alone.  A completion that hands
 * its worker a new job replaces the heap's top and sifts it down (one
 * O(log n) operation per job); an idle worker getting a job is pushed.
 *
 * Queues are rings of job records that double when full (no allocation per
 * job in steady state).  SHARED uses one ring and a FIFO list of idle
 * workers (doubly linked through idle_prev/idle_next, so a STEALING owner
 * that gets a job can leave the list in O(1)); PER_WORKER and STEALING use
 * one ring per worker.  loads[i] (queued + running at i) is kept exactly,
 * and is the array behind the policy's load view.
 *
 * Statistics: sojourn, wait and service times go into belt__hist recorders
 * (fixed memory) except for the first `warm` jobs by arrival order (the
 * warm-up).  The number of waiting jobs is integrated over time for its
 * time average; per-worker busy time gives utilisation.
 *
 * Invariants (checked by tests/unit/check_sim.c through their consequences):
 *   - a worker is in the heap iff it runs a job iff (PER_WORKER/STEALING)
 *     loads[w] > 0, and is in the idle list iff it is not (SHARED and
 *     STEALING);
 *   - `waiting` = Σ ring lengths; every admitted job completes exactly once.
 *
 * Threads: none; a run owns all its state, so runs in different threads are
 * independent (the policy instance is created and freed by the run).
 */
#include "experiment/sim.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"

/* Stream seeds: distinct constants xor'ed into the run's seed. */
#define SEED_ARRIVAL 0xA22B0C5D3E4F6071ull
#define SEED_SERVICE 0x5E2F1CE0DEADBEA7ull
#define SEED_POLICY 0x9011C7D1B2A39485ull

#define PROGRESS_MASK 0xFFFFull /* progress callback every 2^16 jobs */

typedef struct sim_job {
    double arrival; /* virtual time it arrived */
    double service; /* demand at speed 1 */
    uint64_t seq;   /* arrival order, from 0 */
} sim_job;

typedef struct ring {
    sim_job *buf;
    size_t head, len, mask; /* capacity mask + 1 is a power of two */
} ring;

typedef struct running {
    double arrival, start, end;
    uint64_t seq;
} running;

typedef struct heap_ent {
    double t;
    unsigned w;
} heap_ent;

typedef struct sim {
    unsigned n;
    belt__topology topo;
    const belt__policy *pol;
    void *ps;
    belt__load_view view;
    unsigned *loads;  /* queued + running per worker */
    const double *speed; /* NULL: all 1 */
    ring *q;          /* SHARED: 1 ring; else n */
    running *cur;     /* per worker: the job it runs */
    double *busy;     /* per worker: busy time so far */
    uint64_t *done;   /* per worker: completions */
    heap_ent *heap;
    unsigned hn;
    unsigned *idle_next, *idle_prev; /* FIFO idle list; n = none */
    unsigned idle_head, idle_tail;
    unsigned char *is_idle;          /* for assertions: in the idle list */
    uint64_t waiting, qmax, steals, completed, warm;
    double area, tlast;
    belt__hist h_soj, h_wait, h_serv;
} sim;

/* ---- rings ------------------------------------------------------------- */

static int ring_init(ring *r, size_t cap)
{
    r->buf = malloc(cap * sizeof *r->buf);
    r->head = r->len = 0;
    r->mask = cap - 1;
    return r->buf != NULL ? BELT_OK : BELT_ENOMEM;
}

static int ring_grow(ring *r)
{
    size_t cap = r->mask + 1;
    sim_job *b = malloc(2 * cap * sizeof *b);
    if (b == NULL)
        return BELT_ENOMEM;
    size_t first = cap - r->head; /* elements from head to the end */
    if (first > r->len)
        first = r->len;
    memcpy(b, r->buf + r->head, first * sizeof *b);
    memcpy(b + first, r->buf, (r->len - first) * sizeof *b);
    free(r->buf);
    r->buf = b;
    r->head = 0;
    r->mask = 2 * cap - 1;
    return BELT_OK;
}

static inline int ring_push(ring *r, const sim_job *j)
{
    if (r->len > r->mask) {
        int rc = ring_grow(r);
        if (rc != BELT_OK)
            return rc;
    }
    r->buf[(r->head + r->len) & r->mask] = *j;
    r->len++;
    return BELT_OK;
}

/* The oldest job; r must be non-empty. */
static inline sim_job ring_pop(ring *r)
{
    sim_job j = r->buf[r->head];
    r->head = (r->head + 1) & r->mask;
    r->len--;
    return j;
}

/* ---- the completion heap ------------------------------------------------ */

static inline int ent_less(heap_ent a, heap_ent b)
{
    return a.t < b.t || (a.t == b.t && a.w < b.w);
}

static inline void heap_sift_down(heap_ent *h, unsigned n, unsigned i)
{
    heap_ent e = h[i];
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && ent_less(h[c + 1], h[c]))
            c++;
        if (!ent_less(h[c], e))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static inline void heap_push(sim *s, double t, unsigned w)
{
    heap_ent e = { t, w };
    unsigned i = s->hn++;
    while (i > 0) {
        unsigned p = (i - 1) / 2;
        if (!ent_less(e, s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = e;
}

static inline void heap_pop(sim *s)
{
    if (--s->hn > 0) {
        s->heap[0] = s->heap[s->hn];
        heap_sift_down(s->heap, s->hn, 0);
    }
}

static inline void heap_replace_top(sim *s, double t)
{
    s->heap[0].t = t;
    heap_sift_down(s->heap, s->hn, 0);
}

/* ---- the idle list (SHARED, STEALING) ----------------------------------- */

static void idle_append(sim *s, unsigned w)
{
    assert(!s->is_idle[w]);
    s->is_idle[w] = 1;
    s->idle_next[w] = s->n;
    s->idle_prev[w] = s->idle_tail;
    if (s->idle_tail == s->n)
        s->idle_head = w;
    else
        s->idle_next[s->idle_tail] = w;
    s->idle_tail = w;
}

static void idle_remove(sim *s, unsigned w)
{
    assert(s->is_idle[w]);
    unsigned p = s->idle_prev[w], nx = s->idle_next[w];
    if (p == s->n)
        s->idle_head = nx;
    else
        s->idle_next[p] = nx;
    if (nx == s->n)
        s->idle_tail = p;
    else
        s->idle_prev[nx] = p;
    s->is_idle[w] = 0;
}

/* ---- events ------------------------------------------------------------- */

/* Starts job j on worker w at time t; returns its completion time.  The
 * caller puts w in the heap (push or replace-top). */
static inline double start_job(sim *s, unsigned w, const sim_job *j, double t)
{
    double end = t + (s->speed ? j->service / s->speed[w] : j->service);
    running *r = &s->cur[w];
    r->arrival = j->arrival;
    r->start = t;
    r->end = end;
    r->seq = j->seq;
    return end;
}

/* Advances the queue-length integral to time t. */
static inline void advance(sim *s, double t)
{
    s->area += (double)s->waiting * (t - s->tlast);
    s->tlast = t;
}

/* Idle worker `thief` tries to steal (STEALING): up to n-1 victim() calls;
 * takes the oldest queued job of the first victim that has one.  On success
 * fills *j and returns 1 (loads and waiting updated, thief's load 1).  When
 * no job waits anywhere the attempt is skipped without calling victim():
 * it could only fail, and skipping it keeps light loads cheap. */
static int try_steal(sim *s, unsigned thief, sim_job *j)
{
    if (s->waiting == 0)
        return 0; /* nothing queued anywhere: every victim would fail */
    for (unsigned k = 0; k + 1 < s->n; k++) {
        unsigned v = s->pol->victim(s->ps, thief, &s->view);
        if (v >= s->n)
            return 0;
        if (v != thief && s->q[v].len > 0) {
            *j = ring_pop(&s->q[v]);
            s->loads[v]--;
            s->loads[thief] = 1;
            s->waiting--;
            s->steals++;
            return 1;
        }
    }
    return 0;
}

/* The worker at the heap's top completes its job at time t. */
static void complete(sim *s)
{
    unsigned w = s->heap[0].w;
    double t = s->heap[0].t;
    const running *r = &s->cur[w];
    advance(s, t);
    if (r->seq >= s->warm) {
        belt__hist_add(&s->h_soj, t - r->arrival);
        belt__hist_add(&s->h_wait, r->start - r->arrival);
        belt__hist_add(&s->h_serv, t - r->start);
    }
    s->busy[w] += t - r->start;
    s->done[w]++;
    s->completed++;

    sim_job j;
    ring *q = s->topo == BELT__TOPO_SHARED ? &s->q[0] : &s->q[w];
    if (q->len > 0) {
        j = ring_pop(q);
        s->waiting--;
        if (s->topo != BELT__TOPO_SHARED)
            s->loads[w]--;
        heap_replace_top(s, start_job(s, w, &j, t));
        return;
    }
    if (s->topo == BELT__TOPO_STEALING && try_steal(s, w, &j)) {
        heap_replace_top(s, start_job(s, w, &j, t));
        return;
    }
    heap_pop(s);
    s->loads[w] = 0;
    if (s->topo != BELT__TOPO_SHARED && s->pol->idle != NULL)
        s->pol->idle(s->ps, w);
    if (s->topo != BELT__TOPO_PER_WORKER)
        idle_append(s, w);
}

/* Job j arrives at time j->arrival.  Returns BELT_OK or BELT_ENOMEM. */
static int arrive(sim *s, const sim_job *j)
{
    double t = j->arrival;
    advance(s, t);
    if (s->topo == BELT__TOPO_SHARED) {
        if (s->idle_head != s->n) {
            unsigned w = s->idle_head;
            idle_remove(s, w);
            s->loads[w] = 1;
            heap_push(s, start_job(s, w, j, t), w);
            return BELT_OK;
        }
        int rc = ring_push(&s->q[0], j);
        if (rc != BELT_OK)
            return rc;
        if (++s->waiting > s->qmax)
            s->qmax = s->waiting;
        return BELT_OK;
    }

    unsigned w = s->pol->pick(s->ps, &s->view);
    if (w >= s->n)
        w = s->n - 1; /* a broken policy must not corrupt memory */
    if (s->loads[w] == 0) {
        if (s->topo == BELT__TOPO_STEALING)
            idle_remove(s, w);
        s->loads[w] = 1;
        heap_push(s, start_job(s, w, j, t), w);
        return BELT_OK;
    }
    int rc = ring_push(&s->q[w], j);
    if (rc != BELT_OK)
        return rc;
    s->loads[w]++;
    if (++s->waiting > s->qmax)
        s->qmax = s->waiting;
    if (s->topo == BELT__TOPO_STEALING && s->idle_head != s->n) {
        /* The push wakes the longest-idle worker, which tries to steal. */
        unsigned thief = s->idle_head;
        sim_job st;
        if (try_steal(s, thief, &st)) {
            idle_remove(s, thief);
            heap_push(s, start_job(s, thief, &st, t), thief);
        }
    }
    return BELT_OK;
}

/* ---- set-up and tear-down ----------------------------------------------- */

static void sim_free(sim *s)
{
    if (s->pol != NULL && s->ps != NULL)
        s->pol->free(s->ps);
    if (s->q != NULL) {
        unsigned nq = s->topo == BELT__TOPO_SHARED ? 1 : s->n;
        for (unsigned i = 0; i < nq; i++)
            free(s->q[i].buf);
    }
    free(s->q);
    free(s->loads);
    free(s->cur);
    free(s->busy);
    free(s->done);
    free(s->heap);
    free(s->idle_next);
    free(s->idle_prev);
    free(s->is_idle);
    belt__hist_free(&s->h_soj);
    belt__hist_free(&s->h_wait);
    belt__hist_free(&s->h_serv);
}

static int sim_init(sim *s, const belt__policy *pol,
                    const belt__policy_params *pp, unsigned n,
                    const double *speeds, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->topo = pol->topology;
    s->speed = speeds;
    s->idle_head = s->idle_tail = n;
    unsigned nq = s->topo == BELT__TOPO_SHARED ? 1 : n;
    s->q = calloc(nq, sizeof *s->q);
    s->loads = calloc(n, sizeof *s->loads);
    s->cur = calloc(n, sizeof *s->cur);
    s->busy = calloc(n, sizeof *s->busy);
    s->done = calloc(n, sizeof *s->done);
    s->heap = calloc(n, sizeof *s->heap);
    s->idle_next = calloc(n, sizeof *s->idle_next);
    s->idle_prev = calloc(n, sizeof *s->idle_prev);
    s->is_idle = calloc(n, sizeof *s->is_idle);
    if (s->q == NULL || s->loads == NULL || s->cur == NULL ||
        s->busy == NULL || s->done == NULL || s->heap == NULL ||
        s->idle_next == NULL || s->idle_prev == NULL || s->is_idle == NULL)
        return BELT_ENOMEM;
    for (unsigned i = 0; i < nq; i++)
        if (ring_init(&s->q[i], nq == 1 ? 1024 : 16) != BELT_OK)
            return BELT_ENOMEM;
    if (belt__hist_init(&s->h_soj) != BELT_OK ||
        belt__hist_init(&s->h_wait) != BELT_OK ||
        belt__hist_init(&s->h_serv) != BELT_OK)
        return BELT_ENOMEM;
    if (s->topo != BELT__TOPO_PER_WORKER)
        for (unsigned i = 0; i < n; i++)
            idle_append(s, i);
    s->view = (belt__load_view){ .n = n, .loads = s->loads };
    void *ps = NULL;
    int rc = pol->init(&ps, n, belt__sim_policy_seed(seed), pp);
    if (rc != BELT_OK)
        return rc;
    s->pol = pol;
    s->ps = ps;
    return BELT_OK;
}

static int check_args(const belt__policy *pol, unsigned workers,
                      const double *speeds, const belt__workload *w,
                      const belt__point_result *out)
{
    if (pol == NULL || w == NULL || out == NULL || workers == 0)
        return BELT_EINVAL;
    if (pol->init == NULL || pol->free == NULL ||
        (pol->topology != BELT__TOPO_SHARED && pol->pick == NULL) ||
        (pol->topology == BELT__TOPO_STEALING && pol->victim == NULL))
        return BELT_EINVAL;
    if (speeds != NULL)
        for (unsigned i = 0; i < workers; i++)
            if (!(speeds[i] > 0.0) || !isfinite(speeds[i]))
                return BELT_EINVAL;
    if (!(w->warmup >= 0.0 && w->warmup < 1.0) || !(w->max_time >= 0.0))
        return BELT_EINVAL;
    switch (w->arrival) {
    case BELT__ARRIVAL_POISSON:
    case BELT__ARRIVAL_RATE:
        if (!(w->rate > 0.0) || !isfinite(w->rate))
            return BELT_EINVAL;
        /* fall through */
    case BELT__ARRIVAL_BATCH:
        if (w->jobs == 0)
            return BELT_EINVAL;
        return BELT_OK;
    case BELT__ARRIVAL_TRACE:
        if (w->trace == NULL || w->trace->n == 0 ||
            w->trace->arrival == NULL || w->trace->service == NULL)
            return BELT_EINVAL;
        return BELT_OK;
    }
    return BELT_EINVAL;
}

/* ---- the run ------------------------------------------------------------ */

/* Generates job k (arrival order) into *j; returns 0 when there is no job k
 * (past the cap). */
void belt__jobgen_init(belt__jobgen *g, const belt__workload *w,
                       uint64_t seed)
{
    *g = (belt__jobgen){ .w = w, .total = w->jobs, .inv_rate = 1.0 / w->rate };
    if (w->arrival == BELT__ARRIVAL_TRACE &&
        (g->total == 0 || g->total > w->trace->n))
        g->total = w->trace->n;
    belt__rng_seed(&g->ra, seed ^ SEED_ARRIVAL);
    belt__rng_seed(&g->rs, seed ^ SEED_SERVICE);
}

int belt__jobgen_next(belt__jobgen *g, double *arrival, double *service)
{
    const belt__workload *w = g->w;
    uint64_t k = g->k;
    if (k >= g->total)
        return 0;
    switch (w->arrival) {
    case BELT__ARRIVAL_POISSON: /* first arrival after one gap too */
        g->t += -log(belt__rng_unit(&g->ra)) * g->inv_rate;
        break;
    case BELT__ARRIVAL_RATE:
        g->t = (double)k / w->rate;
        break;
    case BELT__ARRIVAL_BATCH:
        g->t = 0.0;
        break;
    case BELT__ARRIVAL_TRACE:
        g->t = w->trace->arrival[k];
        break;
    }
    if (w->max_time > 0.0 && g->t > w->max_time)
        return 0;
    *arrival = g->t;
    *service = w->arrival == BELT__ARRIVAL_TRACE
                   ? w->trace->service[k]
                   : belt__dist_sample(&w->service, &g->rs);
    g->k = k + 1;
    return 1;
}

uint64_t belt__sim_policy_seed(uint64_t seed)
{
    uint64_t s = seed ^ SEED_POLICY;
    return s ? s : 1; /* 0 means "any seed" to a pool */
}

/* The next job of g into *j (its seq is its index); 1, or 0 at the end. */
static int gen_next(belt__jobgen *g, sim_job *j)
{
    j->seq = g->k;
    return belt__jobgen_next(g, &j->arrival, &j->service);
}

int belt__sim_run(const belt__policy *pol, const belt__policy_params *pp,
                  unsigned workers, const double *speeds,
                  const belt__workload *w, uint64_t seed,
                  belt__point_result *out)
{
    int rc = check_args(pol, workers, speeds, w, out);
    if (rc != BELT_OK) {
        if (out != NULL)
            *out = (belt__point_result){ 0 };
        return rc;
    }
    *out = (belt__point_result){ 0 };

    belt__jobgen g;
    belt__jobgen_init(&g, w, seed);

    sim s;
    rc = sim_init(&s, pol, pp, workers, speeds, seed);
    if (rc == BELT_OK)
        rc = belt__point_result_alloc(out, workers);
    if (rc != BELT_OK) {
        sim_free(&s);
        return rc;
    }
    s.warm = (uint64_t)(w->warmup * (double)g.total);

    sim_job next;
    int have = gen_next(&g, &next);
    double first = have ? next.arrival : 0.0;
    while (have || s.hn > 0) {
        if (s.hn > 0 && (!have || s.heap[0].t <= next.arrival)) {
            complete(&s);
            if (w->progress != NULL && (s.completed & PROGRESS_MASK) == 0)
                w->progress(w->progress_ctx, s.completed, g.total);
            continue;
        }
        rc = arrive(&s, &next);
        if (rc != BELT_OK)
            break;
        have = gen_next(&g, &next);
    }
    if (rc != BELT_OK) {
        sim_free(&s);
        belt__point_result_free(out);
        return rc;
    }
    if (w->progress != NULL)
        w->progress(w->progress_ctx, s.completed, g.total);

    /* Results. */
    double makespan = s.tlast;
    out->jobs = s.completed;
    out->makespan = makespan;
    belt__hist_summary(&s.h_soj, &out->sojourn);
    belt__hist_summary(&s.h_wait, &out->wait);
    belt__hist_summary(&s.h_serv, &out->service);
    out->measured = out->sojourn.count;
    double span = makespan - first;
    out->throughput = span > 0.0 ? (double)s.completed / span : 0.0;
    double usum = 0.0;
    for (unsigned i = 0; i < workers; i++) {
        out->util[i] = span > 0.0 ? s.busy[i] / span : 0.0;
        if (out->util[i] > 1.0) /* rounding of the busy-time sum */
            out->util[i] = 1.0;
        usum += out->util[i];
        out->done[i] = s.done[i];
    }
    out->util_mean = usum / workers;
    out->jain = belt__jain(out->util, workers);
    out->qlen_mean = span > 0.0 ? s.area / span : 0.0;
    out->qlen_max = (double)s.qmax;
    out->steals = s.steals;
    sim_free(&s);
    return BELT_OK;
}

/* ---- results and names -------------------------------------------------- */

int belt__point_result_alloc(belt__point_result *r, unsigned n)
{
    *r = (belt__point_result){ 0 };
    r->util = calloc(n ? n : 1, sizeof *r->util);
    r->done = calloc(n ? n : 1, sizeof *r->done);
    if (r->util == NULL || r->done == NULL) {
        free(r->util);
        free(r->done);
        *r = (belt__point_result){ 0 };
        return BELT_ENOMEM;
    }
    r->n = n;
    return BELT_OK;
}

void belt__point_result_free(belt__point_result *r)
{
    if (r == NULL)
        return;
    free(r->util);
    free(r->done);
    *r = (belt__point_result){ 0 };
}

const char *belt__arrival_name(belt__arrival_kind kind)
{
    static const char *const names[] = { "poisson", "batch", "rate",
                                         "trace" };
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind]
                                                           : "unknown";
}

double belt__rate_for_load(double load, const belt__dist *service, unsigned n,
                           const double *speeds)
{
    double m = belt__dist_mean(service);
    if (!(m > 0.0) || n == 0)
        return 0.0;
    double cap = 0.0;
    for (unsigned i = 0; i < n; i++)
        cap += speeds ? speeds[i] : 1.0;
    return load * cap / m;
}
