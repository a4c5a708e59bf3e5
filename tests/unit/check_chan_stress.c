/* check_chan_stress.c: stress tests of belt's channels and select.
 *
 * TCases:
 *   stress  many producers and consumers over every flavour (rendezvous, 1,
 *           4, 1024, unbounded) and four ways of sending/receiving (blocking,
 *           with timeouts, try-then-block, select): nothing lost or
 *           duplicated, FIFO per producer; close racing with send, recv and
 *           select; linearizability of try_recv; one-shot channels; ping-pong
 *           through disconnection; select over mixed channels.
 *   limits  more threads than cores (16 producers, 16 consumers), and every
 *           thread pinned to CPU 0.
 *
 * Every element is a uint64_t (producer << 32 | sequence).  Consumers mark a
 * bitmap (an atomic byte per element; marking twice is a duplicate, unmarked
 * at the end is a loss) and check that the sequences they see from each
 * producer increase.
 *
 * Ideas ported (in our own words) from Go's runtime/chan_test.go
 * (TestSelectStress, TestMultiConsumer, TestNonblockRecvRace) and
 * crossbeam-channel's tests (stress_oneshot, stress_iter,
 * stress_timeout_two_threads, linearizable, mpmc).  Counts are moderate and
 * go through tu_scaled() (BELT_TEST_SCALE, sanitizer builds).
 */
#include "test_util.h"

#define TAG(p, s) (((uint64_t)(p) << 32) | (uint64_t)(s))
#define TAG_P(v) ((uint32_t)((v) >> 32))
#define TAG_S(v) ((uint32_t)(v))

static belt_chan *make_u64(size_t cap)
{
    belt_chan *ch = tu_make_chan(cap, sizeof(uint64_t));
    ck_assert_msg(ch != NULL, "creating %s failed", tu_cap_name(cap));
    return ch;
}

/* ---- the ways to send and receive --------------------------------------- */

enum mode { MODE_BLOCK, MODE_TIMEOUT, MODE_TRY, MODE_SELECT, N_MODES };

static const char *mode_name(int m)
{
    static const char *names[] = { "blocking", "timeout", "try", "select" };
    return names[m];
}

/* Sends v by `mode`; returns BELT_OK or BELT_CLOSED (anything else is
 * recorded as a failure and returned).  `idle` is a channel no one ever
 * uses, an extra arm for select. */
static int send_by(int mode, belt_chan *ch, belt_chan *idle, uint64_t v, uint64_t *rng)
{
    int rc;
    switch (mode) {
    case MODE_BLOCK:
        rc = belt_chan_send(ch, &v);
        break;
    case MODE_TIMEOUT:
        do
            rc = belt_chan_send_timeout(ch, &v, (int64_t)(1 + tu_rand(rng) % 2000) * 1000);
        while (rc == BELT_TIMEOUT);
        break;
    case MODE_TRY:
        rc = belt_chan_try_send(ch, &v);
        if (rc == BELT_FULL)
            rc = belt_chan_send(ch, &v);
        break;
    default: {
        uint64_t junk;
        belt_op ops[3] = { belt_op_recv(idle, &junk), belt_op_send(ch, &v),
                           belt_op_recv(NULL, &junk) };
        int r = belt_select(ops, 3, -1);
        if (!TU_CHECK(r == 1, "select send returned %d", r))
            return BELT_EINVAL;
        rc = ops[1].status;
        break;
    }
    }
    TU_CHECK(rc == BELT_OK || rc == BELT_CLOSED, "send (%s) returned %s", mode_name(mode),
             belt_err_name(rc));
    return rc;
}

/* Receives into *v by `mode`; BELT_OK or BELT_CLOSED. */
static int recv_by(int mode, belt_chan *ch, belt_chan *idle, uint64_t *v, uint64_t *rng)
{
    int rc;
    switch (mode) {
    case MODE_BLOCK:
        rc = belt_chan_recv(ch, v);
        break;
    case MODE_TIMEOUT:
        do
            rc = belt_chan_recv_timeout(ch, v, (int64_t)(1 + tu_rand(rng) % 2000) * 1000);
        while (rc == BELT_TIMEOUT);
        break;
    case MODE_TRY:
        rc = belt_chan_try_recv(ch, v);
        if (rc == BELT_EMPTY)
            rc = belt_chan_recv(ch, v);
        break;
    default: {
        uint64_t junk;
        belt_op ops[2] = { belt_op_recv(ch, v), belt_op_recv(idle, &junk) };
        int r = belt_select(ops, 2, -1);
        if (!TU_CHECK(r == 0, "select recv returned %d", r))
            return BELT_EINVAL;
        rc = ops[0].status;
        break;
    }
    }
    TU_CHECK(rc == BELT_OK || rc == BELT_CLOSED, "recv (%s) returned %s", mode_name(mode),
             belt_err_name(rc));
    return rc;
}

/* ---- many producers, many consumers ------------------------------------- */

struct mpmc {
    belt_chan *ch, *idle;
    int nprod, ncons;
    uint32_t per_prod;
    int mode;
    _Atomic unsigned char *seen;   /* nprod * per_prod */
    atomic_long received;
};

struct worker {
    struct mpmc *m;
    int id;
};

static void *mpmc_producer(void *p)
{
    struct worker *w = p;
    struct mpmc *m = w->m;
    uint64_t rng = (uint64_t)w->id * 7777 + 1;
    for (uint32_t s = 0; s < m->per_prod; s++)
        if (send_by(m->mode, m->ch, m->idle, TAG(w->id, s), &rng) != BELT_OK) {
            TU_FAIL("producer %d: send %u failed", w->id, s);
            break;
        }
    TU_CHECK_RC(belt_chan_sender_done(m->ch), BELT_OK);
    return NULL;
}

static void *mpmc_consumer(void *p)
{
    struct worker *w = p;
    struct mpmc *m = w->m;
    uint64_t rng = (uint64_t)w->id * 31337 + 5;
    int64_t *last = malloc(sizeof *last * (size_t)m->nprod);
    if (!TU_CHECK(last != NULL, "malloc"))
        return NULL;
    for (int i = 0; i < m->nprod; i++)
        last[i] = -1;
    uint64_t v;
    long n = 0;
    while (recv_by(m->mode, m->ch, m->idle, &v, &rng) == BELT_OK) {
        uint32_t pr = TAG_P(v), s = TAG_S(v);
        if (!TU_CHECK(pr < (uint32_t)m->nprod && s < m->per_prod,
                      "garbage element %#llx", (unsigned long long)v))
            continue;
        TU_CHECK((int64_t)s > last[pr], "consumer %d: producer %u's seq %u after %lld",
                 w->id, pr, s, (long long)last[pr]);
        last[pr] = s;
        TU_CHECK(atomic_fetch_add(&m->seen[(size_t)pr * m->per_prod + s], 1) == 0,
                 "element (%u, %u) received twice", pr, s);
        n++;
    }
    atomic_fetch_add(&m->received, n);
    free(last);
    return NULL;
}

/* Runs nprod producers and ncons consumers over a channel of capacity `cap`
 * (SIZE_MAX: unbounded), `total` elements in all; the channel is closed by
 * the last producer's sender_done. */
static void run_mpmc(size_t cap, int mode, int nprod, int ncons, long total)
{
    struct mpmc m = { .ch = make_u64(cap), .idle = make_u64(0), .nprod = nprod,
                      .ncons = ncons, .mode = mode };
    m.per_prod = (uint32_t)(total / nprod);
    size_t n = (size_t)nprod * m.per_prod;
    m.seen = calloc(n, 1);
    ck_assert_ptr_nonnull(m.seen);
    ck_assert_rc(belt_chan_add_senders(m.ch, (size_t)nprod), BELT_OK);
    struct worker *w = calloc((size_t)(nprod + ncons), sizeof *w);
    pthread_t *t = calloc((size_t)(nprod + ncons), sizeof *t);
    ck_assert(w && t);
    for (int i = 0; i < ncons; i++) {
        w[i] = (struct worker){ &m, i };
        tu_spawn(&t[i], mpmc_consumer, &w[i]);
    }
    for (int i = 0; i < nprod; i++) {
        w[ncons + i] = (struct worker){ &m, i };
        tu_spawn(&t[ncons + i], mpmc_producer, &w[ncons + i]);
    }
    for (int i = 0; i < nprod + ncons; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    ck_assert_msg(atomic_load(&m.received) == (long)n,
                  "%s, %s: received %ld of %zu", tu_cap_name(cap), mode_name(mode),
                  atomic_load(&m.received), n);
    for (size_t i = 0; i < n; i++)
        ck_check(atomic_load(&m.seen[i]) == 1, "element (%zu, %zu) lost",
                 i / m.per_prod, i % m.per_prod);
    ck_assert(belt_chan_is_closed(m.ch));
    ck_assert_uint_eq(belt_chan_len(m.ch), 0);
    free((void *)m.seen);
    free(w);
    free(t);
    belt_chan_free(m.ch);
    belt_chan_free(m.idle);
}

/* 4 producers, 4 consumers, each flavour x each mode. */
START_TEST(test_mpmc)
{
    size_t cap = tu_caps[_i / N_MODES];
    int mode = _i % N_MODES;
    long total = tu_scaled(cap == 0 ? 40000 : 100000, 4000);
    run_mpmc(cap, mode, 4, 4, total);
}
END_TEST

/* One producer, one consumer (the SPSC fast paths), each flavour. */
START_TEST(test_spsc)
{
    run_mpmc(tu_caps[_i], MODE_BLOCK, 1, 1, tu_scaled(100000, 5000));
}
END_TEST

/* More threads than cores: 16 producers, 16 consumers. */
START_TEST(test_threads_outnumber_cores)
{
    size_t cap = tu_caps[_i];
    run_mpmc(cap, _i % 2 ? MODE_SELECT : MODE_BLOCK, 16, 16,
             tu_scaled(cap == 0 ? 32000 : 64000, 3200));
}
END_TEST

/* Every thread pinned to one CPU (CPU 0 unless the process may not use it):
 * threads that spin instead of parking, or wait for a thread that cannot
 * run, would stall here.  The main thread pins itself first; threads it
 * creates inherit the mask. */
START_TEST(test_pinned_to_one_cpu)
{
    cpu_set_t old;
    ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof old, &old), 0);
    ck_assert_int_eq(tu_pin_self_one_cpu(), 0);
    size_t cap = tu_caps[_i / 2];
    int mode = _i % 2 ? MODE_SELECT : MODE_TIMEOUT;
    run_mpmc(cap, mode, 4, 4, tu_scaled(20000, 2000));
    run_mpmc(cap, MODE_TRY, 8, 2, tu_scaled(10000, 1000));
    ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof old, &old), 0);
}
END_TEST

/* ---- close racing with send and recv ------------------------------------ */

struct crace {
    belt_chan *ch, *idle;
    int nprod, mode;
    uint32_t max;
    atomic_uint *sent_ok;          /* per producer: sends that returned OK */
    _Atomic unsigned char *seen;   /* nprod * max */
    atomic_long received;
};

struct cworker {
    struct crace *c;
    int id;
};

static void *crace_producer(void *p)
{
    struct cworker *w = p;
    struct crace *c = w->c;
    uint64_t rng = (uint64_t)w->id + 99;
    for (uint32_t s = 0; s < c->max; s++) {
        int rc = send_by(c->mode, c->ch, c->idle, TAG(w->id, s), &rng);
        if (rc != BELT_OK) {
            /* once a send said CLOSED, the channel stays closed: later
             * sends fail too (the element is out of range if it got in) */
            TU_CHECK(belt_chan_is_closed(c->ch), "send said CLOSED on an open channel");
            uint64_t v = TAG(w->id, c->max);
            TU_CHECK_RC(belt_chan_try_send(c->ch, &v), BELT_CLOSED);
            break;
        }
        atomic_store(&c->sent_ok[w->id], s + 1);
    }
    return NULL;
}

static void *crace_consumer(void *p)
{
    struct cworker *w = p;
    struct crace *c = w->c;
    uint64_t rng = (uint64_t)w->id + 12345;
    int64_t last[8];
    for (int i = 0; i < 8; i++)
        last[i] = -1;
    uint64_t v;
    long n = 0;
    while (recv_by(c->mode, c->ch, c->idle, &v, &rng) == BELT_OK) {
        uint32_t pr = TAG_P(v), s = TAG_S(v);
        if (!TU_CHECK(pr < (uint32_t)c->nprod && s < c->max, "garbage %#llx",
                      (unsigned long long)v))
            continue;
        TU_CHECK((int64_t)s > last[pr], "producer %u: seq %u after %lld", pr, s,
                 (long long)last[pr]);
        last[pr] = s;
        TU_CHECK(atomic_fetch_add(&c->seen[(size_t)pr * c->max + s], 1) == 0,
                 "(%u, %u) received twice", pr, s);
        n++;
    }
    TU_CHECK(belt_chan_is_closed(c->ch), "recv gave CLOSED on an open channel");
    atomic_fetch_add(&c->received, n);
    return NULL;
}

/* Producers send until CLOSED, consumers receive until CLOSED, the main
 * thread closes at a random moment.  Afterwards exactly the elements whose
 * send returned OK were received, each once: a send that returned CLOSED
 * delivered nothing, and none that returned OK was dropped by the close. */
START_TEST(test_close_race)
{
    size_t cap = tu_caps[_i / N_MODES];
    int mode = _i % N_MODES;
    enum { NP = 3, NC = 3 };
    const int rounds = (int)tu_scaled(30, 5);
    uint64_t rng = 42 + (uint64_t)_i;
    for (int round = 0; round < rounds; round++) {
        struct crace c = { .ch = make_u64(cap), .idle = make_u64(0), .nprod = NP,
                           .mode = mode, .max = 4000 };
        atomic_uint sent_ok[NP];
        for (int i = 0; i < NP; i++)
            atomic_init(&sent_ok[i], 0);
        c.sent_ok = sent_ok;
        c.seen = calloc((size_t)NP * c.max, 1);
        ck_assert_ptr_nonnull(c.seen);
        struct cworker w[NP + NC];
        pthread_t t[NP + NC];
        for (int i = 0; i < NP + NC; i++) {
            w[i] = (struct cworker){ &c, i < NP ? i : i - NP };
            tu_spawn(&t[i], i < NP ? crace_producer : crace_consumer, &w[i]);
        }
        tu_sleep_ns((int64_t)(tu_rand(&rng) % 3000) * 1000);
        belt_chan_close(c.ch);
        for (int i = 0; i < NP + NC; i++)
            tu_join(t[i]);
        tu_assert_threads_ok();
        long want = 0;
        for (int p = 0; p < NP; p++) {
            uint32_t ok = atomic_load(&sent_ok[p]);
            want += ok;
            for (uint32_t s = 0; s < c.max; s++) {
                unsigned char got = atomic_load(&c.seen[(size_t)p * c.max + s]);
                ck_check(got == (s < ok),
                         "%s/%s round %d: producer %d seq %u: %s (sends OK: %u)",
                         tu_cap_name(cap), mode_name(mode), round, p, s,
                         got ? "received but its send failed" : "sent but lost", ok);
            }
        }
        ck_assert_int_eq(atomic_load(&c.received), want);
        free((void *)c.seen);
        belt_chan_free(c.ch);
        belt_chan_free(c.idle);
    }
}
END_TEST

/* close racing with threads that are just going to sleep: receivers on an
 * empty channel and senders on a full one must all wake with CLOSED (a lost
 * wake-up hangs this test). */
struct blocker {
    belt_chan *ch;
    int mode, send;
    int rc;
};

static void *blocker_fn(void *p)
{
    struct blocker *b = p;
    uint64_t rng = (uint64_t)(uintptr_t)p, v = 1;
    if (b->send)
        b->rc = send_by(b->mode, b->ch, NULL, v, &rng);
    else
        b->rc = recv_by(b->mode, b->ch, NULL, &v, &rng);
    return NULL;
}

START_TEST(test_close_wakes_all_race)
{
    size_t cap = tu_caps[_i / N_MODES];
    int mode = _i % N_MODES;
    const int rounds = (int)tu_scaled(60, 10);
    uint64_t rng = 7 + (uint64_t)_i;
    enum { NR = 3, NS = 3 };
    for (int round = 0; round < rounds; round++) {
        belt_chan *er = make_u64(cap), *fs = make_u64(cap);
        int ns = cap == SIZE_MAX ? 0 : NS;   /* unbounded sends never block */
        uint64_t v = 0;
        for (size_t i = 0; i < cap && cap != SIZE_MAX; i++)
            ck_assert_rc(belt_chan_send(fs, &v), BELT_OK);
        struct blocker b[NR + NS];
        pthread_t t[NR + NS];
        for (int i = 0; i < NR + ns; i++) {
            b[i] = (struct blocker){ i < NR ? er : fs, mode, i >= NR, 0 };
            tu_spawn(&t[i], blocker_fn, &b[i]);
        }
        tu_sleep_ns((int64_t)(tu_rand(&rng) % 300) * 1000);
        belt_chan_close(er);
        belt_chan_close(fs);
        for (int i = 0; i < NR + ns; i++) {
            tu_join(t[i]);
            ck_assert_rc(b[i].rc, BELT_CLOSED);
        }
        tu_assert_threads_ok();
        if (cap != SIZE_MAX)
            ck_assert_uint_eq(belt_chan_len(fs), cap);
        belt_chan_free(er);
        belt_chan_free(fs);
    }
}
END_TEST

/* The last receiver_done racing with blocked senders: they all get CLOSED;
 * the last sender_done racing with blocked receivers: likewise. */
START_TEST(test_disconnect_race)
{
    size_t cap = tu_caps[_i];
    const int rounds = (int)tu_scaled(60, 10);
    uint64_t rng = 3 + (uint64_t)_i;
    enum { N = 4 };
    for (int round = 0; round < rounds; round++) {
        belt_chan *a = make_u64(cap), *b = make_u64(cap);
        ck_assert_rc(belt_chan_add_receivers(a, 2), BELT_OK);
        ck_assert_rc(belt_chan_add_senders(b, 2), BELT_OK);
        uint64_t v = 0;
        for (size_t i = 0; i < cap && cap != SIZE_MAX; i++)
            ck_assert_rc(belt_chan_send(a, &v), BELT_OK);
        int ns = cap == SIZE_MAX ? 0 : N;
        struct blocker bl[2 * N];
        pthread_t t[2 * N];
        for (int i = 0; i < N + ns; i++) {
            bl[i] = (struct blocker){ i < N ? b : a, (int)(tu_rand(&rng) % N_MODES), i >= N,
                                      0 };
            tu_spawn(&t[i], blocker_fn, &bl[i]);
        }
        tu_sleep_ns((int64_t)(tu_rand(&rng) % 300) * 1000);
        ck_assert_rc(belt_chan_receiver_done(a), BELT_OK);
        ck_assert_rc(belt_chan_sender_done(b), BELT_OK);
        ck_assert_rc(belt_chan_receiver_done(a), BELT_OK);
        ck_assert_rc(belt_chan_sender_done(b), BELT_OK);
        for (int i = 0; i < N + ns; i++) {
            tu_join(t[i]);
            ck_assert_rc(bl[i].rc, BELT_CLOSED);
        }
        tu_assert_threads_ok();
        belt_chan_free(a);
        belt_chan_free(b);
    }
}
END_TEST

/* ---- crossbeam-style stress --------------------------------------------- */

/* linearizable: THREADS threads each send one element then try_recv; since
 * every thread's own send completed first, the channel can never look empty
 * to that try_recv. */
struct lin_arg {
    belt_chan *ch;
    int n;
};

static void *lin_thread(void *p)
{
    struct lin_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        uint64_t v = (uint64_t)i;
        if (!TU_CHECK_RC(belt_chan_send(a->ch, &v), BELT_OK))
            return NULL;
        int rc = belt_chan_try_recv(a->ch, &v);
        if (!TU_CHECK(rc == BELT_OK, "iteration %d: try_recv after a send gave %s", i,
                      belt_err_name(rc)))
            return NULL;
    }
    return NULL;
}

START_TEST(test_linearizable)
{
    enum { THREADS = 4 };
    static const size_t caps[] = { THREADS, 1024, SIZE_MAX };
    belt_chan *ch = make_u64(caps[_i]);
    struct lin_arg a = { ch, (int)tu_scaled(25000, 2000) };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        tu_spawn(&t[i], lin_thread, &a);
    for (int i = 0; i < THREADS; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    belt_chan_free(ch);
}
END_TEST

/* stress_oneshot: many short-lived channels, one element each, the two
 * sides in different threads; the thread holds its own reference and drops
 * it right after its operation, racing with the main thread's free. */
struct oneshot {
    belt_chan *ch;   /* the thread's reference */
    int send;
    uint64_t v;
    int rc;
};

static void *oneshot_fn(void *p)
{
    struct oneshot *o = p;
    o->rc = o->send ? belt_chan_send(o->ch, &o->v) : belt_chan_recv(o->ch, &o->v);
    belt_chan_free(o->ch);
    return NULL;
}

START_TEST(test_stress_oneshot)
{
    size_t cap = tu_caps[_i];
    const int n = (int)tu_scaled(3000, 300);
    for (int i = 0; i < n; i++) {
        belt_chan *ch = make_u64(cap);
        struct oneshot o = { belt_chan_ref(ch), i % 2, (uint64_t)i, 0 };
        pthread_t t;
        tu_spawn(&t, oneshot_fn, &o);
        uint64_t v = (uint64_t)i;
        if (o.send) {
            ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
            ck_check(v == (uint64_t)i, "got %llu", (unsigned long long)v);
        } else {
            ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        }
        belt_chan_free(ch);
        tu_join(t);
        ck_assert_rc(o.rc, BELT_OK);
        ck_check(o.v == (uint64_t)i, "thread got %llu", (unsigned long long)o.v);
    }
}
END_TEST

/* stress_iter: a requester drains responses with try_recv and asks for more
 * through a request channel; it stops after COUNT responses and calls
 * sender_done, which ends the responder's `while (recv == OK)` loop. */
struct iter_arg {
    belt_chan *req, *resp;
    long count;
};

static void *iter_requester(void *p)
{
    struct iter_arg *a = p;
    long got = 0;
    uint64_t v;
    for (;;) {
        int rc;
        while ((rc = belt_chan_try_recv(a->resp, &v)) == BELT_OK) {
            got += (long)v;
            if (got == a->count)
                goto done;
        }
        if (!TU_CHECK(rc == BELT_EMPTY, "try_recv: %s", belt_err_name(rc)))
            goto done;
        uint64_t one = 1;
        if (!TU_CHECK_RC(belt_chan_send(a->req, &one), BELT_OK))
            goto done;
    }
done:
    TU_CHECK_RC(belt_chan_sender_done(a->req), BELT_OK);
    return NULL;
}

START_TEST(test_stress_iter)
{
    size_t cap = tu_caps[_i] == 0 ? 1 : tu_caps[_i];   /* try_recv needs a buffer */
    struct iter_arg a = { make_u64(1), make_u64(cap), tu_scaled(20000, 1000) };
    ck_assert_rc(belt_chan_add_senders(a.req, 1), BELT_OK);
    pthread_t t;
    tu_spawn(&t, iter_requester, &a);
    uint64_t v;
    long requests = 0;
    while (belt_chan_recv(a.req, &v) == BELT_OK) {
        requests++;
        uint64_t one = 1;
        /* the requester may already be gone; responses then just pile up
         * (or the send fails with FULL on a full bounded channel) */
        int rc = belt_chan_try_send(a.resp, &one);
        ck_check(rc == BELT_OK || rc == BELT_FULL, "try_send response: %s", belt_err_name(rc));
    }
    tu_join(t);
    tu_assert_threads_ok();
    ck_assert_int_ge(requests, 1);
    belt_chan_free(a.req);
    belt_chan_free(a.resp);
}
END_TEST

/* stress_timeout_two_threads: a sender and a receiver that only use short
 * timeouts and retry, each sleeping now and then; every element arrives
 * once, in order. */
struct tt_arg {
    belt_chan *ch;
    long n;
};

static void *tt_sender(void *p)
{
    struct tt_arg *a = p;
    for (long i = 0; i < a->n; i++) {
        if (i % 2 == 0)
            tu_sleep_ns(50 * 1000);
        uint64_t v = (uint64_t)i;
        int rc;
        while ((rc = belt_chan_send_timeout(a->ch, &v, 1 * TU_MS)) == BELT_TIMEOUT)
            ;
        if (!TU_CHECK_RC(rc, BELT_OK))
            return NULL;
    }
    return NULL;
}

START_TEST(test_stress_timeout_two_threads)
{
    static const size_t caps[] = { 0, 1, 2, SIZE_MAX };
    struct tt_arg a = { make_u64(caps[_i]), tu_scaled(2000, 200) };
    pthread_t t;
    tu_spawn(&t, tt_sender, &a);
    for (long i = 0; i < a.n; i++) {
        if (i % 2 == 1)
            tu_sleep_ns(50 * 1000);
        uint64_t v;
        int rc;
        while ((rc = belt_chan_recv_timeout(a.ch, &v, 1 * TU_MS)) == BELT_TIMEOUT)
            ;
        ck_assert_rc(rc, BELT_OK);
        ck_check(v == (uint64_t)i, "got %llu, want %ld", (unsigned long long)v, i);
    }
    tu_join(t);
    tu_assert_threads_ok();
    uint64_t v;
    ck_assert_rc(belt_chan_try_recv(a.ch, &v), BELT_EMPTY);
    belt_chan_free(a.ch);
}
END_TEST

/* Go's TestNonblockRecvRace with plain try_recv: a channel with one element
 * is closed concurrently; try_recv gets the element or CLOSED, never EMPTY. */
struct nbr {
    belt_chan *ch;
    int rc;
};

static void *nbr_fn(void *p)
{
    struct nbr *a = p;
    uint64_t v;
    a->rc = belt_chan_try_recv(a->ch, &v);
    return NULL;
}

START_TEST(test_nonblock_recv_race)
{
    const int n = (int)tu_scaled(3000, 300);
    for (int i = 0; i < n; i++) {
        belt_chan *ch = make_u64(i % 2 ? 1 : SIZE_MAX);
        uint64_t v = 1;
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        struct nbr a = { ch, 0 };
        pthread_t t;
        tu_spawn(&t, nbr_fn, &a);
        belt_chan_close(ch);
        int rc = belt_chan_recv(ch, &v);
        tu_join(t);
        ck_check(a.rc == BELT_OK || a.rc == BELT_CLOSED,
                 "iteration %d: try_recv on a non-empty channel being closed gave %s", i,
                 belt_err_name(a.rc));
        ck_check((a.rc == BELT_OK) != (rc == BELT_OK), "iteration %d: %s and %s", i,
                 belt_err_name(a.rc), belt_err_name(rc));
        belt_chan_free(ch);
    }
}
END_TEST

/* Go's TestMultiConsumer: 23 workers forward from q to r; a producer feeds q;
 * count and sum match.  r is closed by the workers' sender_done. */
struct mc_arg {
    belt_chan *q, *r;
};

static void *mc_worker(void *p)
{
    struct mc_arg *a = p;
    uint64_t v;
    while (belt_chan_recv(a->q, &v) == BELT_OK)
        if (!TU_CHECK_RC(belt_chan_send(a->r, &v), BELT_OK))
            break;
    TU_CHECK_RC(belt_chan_sender_done(a->r), BELT_OK);
    return NULL;
}

struct mc_prod {
    belt_chan *q;
    long n;
    uint64_t sum;
};

static void *mc_producer(void *p)
{
    struct mc_prod *a = p;
    static const uint64_t pn[] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31 };
    for (long i = 0; i < a->n; i++) {
        uint64_t v = pn[i % 11] * (uint64_t)(i + 1);
        a->sum += v;
        if (!TU_CHECK_RC(belt_chan_send(a->q, &v), BELT_OK))
            break;
    }
    belt_chan_close(a->q);
    return NULL;
}

START_TEST(test_multi_consumer)
{
    enum { NWORK = 23 };
    static const size_t caps[] = { 0, NWORK * 3, SIZE_MAX };
    struct mc_arg a = { make_u64(caps[_i]), make_u64(caps[_i]) };
    ck_assert_rc(belt_chan_add_senders(a.r, NWORK), BELT_OK);
    pthread_t t[NWORK], tp;
    for (int i = 0; i < NWORK; i++)
        tu_spawn(&t[i], mc_worker, &a);
    struct mc_prod pr = { a.q, tu_scaled(20000, 1000), 0 };
    tu_spawn(&tp, mc_producer, &pr);
    long n = 0;
    uint64_t sum = 0, v;
    while (belt_chan_recv(a.r, &v) == BELT_OK) {
        n++;
        sum += v;
    }
    tu_join(tp);
    for (int i = 0; i < NWORK; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    ck_assert_int_eq(n, pr.n);
    ck_assert_uint_eq(sum, pr.sum);
    belt_chan_free(a.q);
    belt_chan_free(a.r);
}
END_TEST

/* Happens-before under load: 4 producers send pointers to plain structs
 * they just wrote, 4 consumers read and free them. */
struct hb_msg {
    uint32_t p, s;
    uint64_t words[6];
};

struct hb_arg {
    belt_chan *ch;
    int id;
    long n;
    atomic_long *count;
};

static void *hb_producer(void *p)
{
    struct hb_arg *a = p;
    for (long i = 0; i < a->n; i++) {
        struct hb_msg *m = malloc(sizeof *m);
        if (!TU_CHECK(m != NULL, "malloc"))
            break;
        m->p = (uint32_t)a->id;
        m->s = (uint32_t)i;
        for (int k = 0; k < 6; k++)
            m->words[k] = TAG(a->id, i) * 3 + (uint64_t)k;
        if (!TU_CHECK_RC(belt_chan_send(a->ch, &m), BELT_OK)) {
            free(m);
            break;
        }
    }
    TU_CHECK_RC(belt_chan_sender_done(a->ch), BELT_OK);
    return NULL;
}

static void *hb_consumer(void *p)
{
    struct hb_arg *a = p;
    struct hb_msg *m;
    long n = 0;
    while (belt_chan_recv(a->ch, &m) == BELT_OK) {
        for (int k = 0; k < 6; k++)
            TU_CHECK(m->words[k] == TAG(m->p, m->s) * 3 + (uint64_t)k,
                     "message (%u, %u) word %d corrupted", m->p, m->s, k);
        free(m);
        n++;
    }
    atomic_fetch_add(a->count, n);
    return NULL;
}

START_TEST(test_happens_before_stress)
{
    enum { P = 4, C = 4 };
    belt_chan *ch = tu_make_chan(tu_caps[_i], sizeof(struct hb_msg *));
    ck_assert_ptr_nonnull(ch);
    ck_assert_rc(belt_chan_add_senders(ch, P), BELT_OK);
    atomic_long count = 0;
    long n = tu_scaled(10000, 1000);
    struct hb_arg a[P + C];
    pthread_t t[P + C];
    for (int i = 0; i < P + C; i++) {
        a[i] = (struct hb_arg){ ch, i, n, &count };
        tu_spawn(&t[i], i < P ? hb_producer : hb_consumer, &a[i]);
    }
    for (int i = 0; i < P + C; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    ck_assert_int_eq(atomic_load(&count), P * n);
    belt_chan_free(ch);
}
END_TEST

/* ---- select stress ------------------------------------------------------ */

/* Go's TestSelectStress: four channels (two rendezvous, capacities 2 and 3).
 * Per channel: a plain sender of N, a plain receiver of N; plus one thread
 * that select-sends N to each channel and one that select-receives N from
 * each, switching an arm off (NULL channel) once its N are done. */
enum { SS_K = 4 };

struct ss {
    belt_chan *c[SS_K];
    long n;
    uint64_t recv_sum[SS_K];   /* by the plain receivers */
    uint64_t sel_sum[SS_K];    /* by the select receiver */
};

struct ss_arg {
    struct ss *s;
    int k;
};

static void *ss_plain_sender(void *p)
{
    struct ss_arg *a = p;
    for (long i = 0; i < a->s->n; i++) {
        uint64_t v = (uint64_t)i;
        if (!TU_CHECK_RC(belt_chan_send(a->s->c[a->k], &v), BELT_OK))
            break;
    }
    return NULL;
}

static void *ss_plain_receiver(void *p)
{
    struct ss_arg *a = p;
    for (long i = 0; i < a->s->n; i++) {
        uint64_t v;
        if (!TU_CHECK_RC(belt_chan_recv(a->s->c[a->k], &v), BELT_OK))
            break;
        a->s->recv_sum[a->k] += v;
    }
    return NULL;
}

static void *ss_select_sender(void *p)
{
    struct ss *s = p;
    long sent[SS_K] = { 0 };
    uint64_t v[SS_K];
    belt_op ops[SS_K];
    for (int k = 0; k < SS_K; k++) {
        v[k] = 0;
        ops[k] = belt_op_send(s->c[k], &v[k]);
    }
    for (long left = SS_K * s->n; left > 0; left--) {
        int r = belt_select(ops, SS_K, -1);
        if (!TU_CHECK(r >= 0 && r < SS_K && ops[r].status == BELT_OK, "select send: %d", r))
            return NULL;
        sent[r]++;
        v[r] = (uint64_t)sent[r];
        if (sent[r] == s->n)
            ops[r].chan = NULL;
    }
    return NULL;
}

static void *ss_select_receiver(void *p)
{
    struct ss *s = p;
    long got[SS_K] = { 0 };
    uint64_t out[SS_K];
    belt_op ops[SS_K];
    for (int k = 0; k < SS_K; k++)
        ops[k] = belt_op_recv(s->c[k], &out[k]);
    for (long left = SS_K * s->n; left > 0; left--) {
        int r = belt_select(ops, SS_K, -1);
        if (!TU_CHECK(r >= 0 && r < SS_K && ops[r].status == BELT_OK, "select recv: %d", r))
            return NULL;
        s->sel_sum[r] += out[r];
        if (++got[r] == s->n)
            ops[r].chan = NULL;
    }
    return NULL;
}

START_TEST(test_select_stress)
{
    struct ss s = { { make_u64(0), make_u64(0), make_u64(2), make_u64(3) },
                    tu_scaled(10000, 500), { 0 }, { 0 } };
    struct ss_arg a[SS_K];
    pthread_t ts[SS_K], tr[SS_K], tss, tsr;
    for (int k = 0; k < SS_K; k++) {
        a[k] = (struct ss_arg){ &s, k };
        tu_spawn(&ts[k], ss_plain_sender, &a[k]);
        tu_spawn(&tr[k], ss_plain_receiver, &a[k]);
    }
    tu_spawn(&tss, ss_select_sender, &s);
    tu_spawn(&tsr, ss_select_receiver, &s);
    for (int k = 0; k < SS_K; k++) {
        tu_join(ts[k]);
        tu_join(tr[k]);
    }
    tu_join(tss);
    tu_join(tsr);
    tu_assert_threads_ok();
    /* per channel: the plain sender sent 0..n-1, the select sender 0..n-1 */
    uint64_t want = (uint64_t)s.n * (uint64_t)(s.n - 1);
    for (int k = 0; k < SS_K; k++) {
        ck_assert_uint_eq(s.recv_sum[k] + s.sel_sum[k], want);
        ck_assert_uint_eq(belt_chan_len(s.c[k]), 0);
        belt_chan_free(s.c[k]);
    }
}
END_TEST

/* Select over mixed channels (rendezvous, 1, 16, unbounded) on both sides:
 * producers select-send to any channel, consumers select-receive from any;
 * each channel is closed by its producers' sender_done; consumers switch off
 * the arms of closed, drained channels.  No loss, no duplication, FIFO per
 * producer.  With `close_early`, the main thread closes every channel at a
 * random moment instead, racing with the blocked selects. */
enum { MX_K = 4, MX_P = 4, MX_C = 4 };

struct mx {
    belt_chan *c[MX_K];
    uint32_t max;
    int close_early;
    atomic_uint sent_ok[MX_P];
    _Atomic unsigned char *seen;   /* MX_P * max */
    atomic_long received;
};

struct mx_arg {
    struct mx *m;
    int id;
};

static void *mx_producer(void *p)
{
    struct mx_arg *a = p;
    struct mx *m = a->m;
    for (uint32_t s = 0; s < m->max; s++) {
        uint64_t v = TAG(a->id, s);
        belt_op ops[MX_K];
        for (int k = 0; k < MX_K; k++)
            ops[k] = belt_op_send(m->c[k], &v);
        int r = belt_select(ops, MX_K, -1);
        if (!TU_CHECK(r >= 0 && r < MX_K, "select send returned %d", r))
            break;
        if (ops[r].status == BELT_CLOSED) {
            TU_CHECK(m->close_early, "send arm closed before the producers finished");
            break;
        }
        atomic_store(&m->sent_ok[a->id], s + 1);
    }
    if (!m->close_early)
        for (int k = 0; k < MX_K; k++)
            TU_CHECK_RC(belt_chan_sender_done(m->c[k]), BELT_OK);
    return NULL;
}

static void *mx_consumer(void *p)
{
    struct mx_arg *a = p;
    struct mx *m = a->m;
    uint64_t out[MX_K];
    belt_op ops[MX_K];
    for (int k = 0; k < MX_K; k++)
        ops[k] = belt_op_recv(m->c[k], &out[k]);
    int64_t last[MX_P][MX_K];   /* per producer and channel */
    for (int i = 0; i < MX_P; i++)
        for (int k = 0; k < MX_K; k++)
            last[i][k] = -1;
    long n = 0;
    for (int open = MX_K; open > 0;) {
        int r = belt_select(ops, MX_K, -1);
        if (!TU_CHECK(r >= 0 && r < MX_K, "select recv returned %d", r))
            break;
        if (ops[r].status == BELT_CLOSED) {
            ops[r].chan = NULL;
            open--;
            continue;
        }
        uint64_t v = out[r];
        uint32_t pr = TAG_P(v), s = TAG_S(v);
        if (!TU_CHECK(pr < MX_P && s < m->max, "garbage %#llx", (unsigned long long)v))
            continue;
        /* FIFO per producer holds within each channel (across channels a
         * later element may overtake an earlier one) */
        TU_CHECK((int64_t)s > last[pr][r], "channel %d: producer %u's seq %u after %lld", r,
                 pr, s, (long long)last[pr][r]);
        last[pr][r] = s;
        TU_CHECK(atomic_fetch_add(&m->seen[(size_t)pr * m->max + s], 1) == 0,
                 "(%u, %u) received twice", pr, s);
        n++;
    }
    atomic_fetch_add(&m->received, n);
    return NULL;
}

START_TEST(test_select_mixed_channels)
{
    int close_early = _i;
    const int rounds = close_early ? (int)tu_scaled(20, 4) : 1;
    uint64_t rng = 1234;
    for (int round = 0; round < rounds; round++) {
        struct mx m = { { make_u64(0), make_u64(1), make_u64(16), make_u64(SIZE_MAX) },
                        close_early ? 3000u : (uint32_t)tu_scaled(20000, 1000),
                        close_early, { 0 }, NULL, 0 };
        for (int k = 0; k < MX_K; k++)
            ck_assert_rc(belt_chan_add_senders(m.c[k], MX_P), BELT_OK);
        m.seen = calloc((size_t)MX_P * m.max, 1);
        ck_assert_ptr_nonnull(m.seen);
        struct mx_arg a[MX_P + MX_C];
        pthread_t t[MX_P + MX_C];
        for (int i = 0; i < MX_P + MX_C; i++) {
            a[i] = (struct mx_arg){ &m, i < MX_P ? i : i - MX_P };
            tu_spawn(&t[i], i < MX_P ? mx_producer : mx_consumer, &a[i]);
        }
        if (close_early) {
            tu_sleep_ns((int64_t)(tu_rand(&rng) % 3000) * 1000);
            for (int k = 0; k < MX_K; k++)
                belt_chan_close(m.c[k]);
        }
        for (int i = 0; i < MX_P + MX_C; i++)
            tu_join(t[i]);
        tu_assert_threads_ok();
        long want = 0;
        for (int p = 0; p < MX_P; p++) {
            uint32_t ok = atomic_load(&m.sent_ok[p]);
            want += ok;
            for (uint32_t s = 0; s < m.max; s++) {
                unsigned char got = atomic_load(&m.seen[(size_t)p * m.max + s]);
                ck_check(got == (s < ok), "round %d: producer %d seq %u: %s (sends OK: %u)",
                         round, p, s, got ? "received but not sent" : "lost", ok);
            }
        }
        ck_assert_int_eq(atomic_load(&m.received), want);
        free((void *)m.seen);
        for (int k = 0; k < MX_K; k++)
            belt_chan_free(m.c[k]);
    }
}
END_TEST

/* ==================================================================== main */

static void setup(void)
{
    tu_reset_failures();
}

static Suite *stress_suite(void)
{
    Suite *s = suite_create("chan_stress");

    TCase *tc = tcase_create("stress");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_loop_test(tc, test_mpmc, 0, TU_NCAPS * N_MODES);
    tcase_add_loop_test(tc, test_spsc, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_close_race, 0, TU_NCAPS * N_MODES);
    tcase_add_loop_test(tc, test_close_wakes_all_race, 0, TU_NCAPS * N_MODES);
    tcase_add_loop_test(tc, test_disconnect_race, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_linearizable, 0, 3);
    tcase_add_loop_test(tc, test_stress_oneshot, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_stress_iter, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_stress_timeout_two_threads, 0, 4);
    tcase_add_test(tc, test_nonblock_recv_race);
    tcase_add_loop_test(tc, test_multi_consumer, 0, 3);
    tcase_add_loop_test(tc, test_happens_before_stress, 0, TU_NCAPS);
    tcase_add_test(tc, test_select_stress);
    tcase_add_loop_test(tc, test_select_mixed_channels, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_loop_test(tc, test_threads_outnumber_cores, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_pinned_to_one_cpu, 0, TU_NCAPS * 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
