/* check_select.c: tests of belt_select() with belt_op_send()/belt_op_recv().
 *
 * TCases:
 *   core    what completes and what does not: only the chosen op has an
 *           effect, try/timeout/forever, closed channels, NULL-channel arms,
 *           rendezvous pairing (never with itself), wake-ups, fairness.
 *   errors  invalid arguments.
 *   limits  many arms; CPU use of a blocked select.
 *
 * Ideas ported (in our own words) from Go's runtime/chan_test.go
 * (TestSelfSelect, TestSelectDuplicateChannel, TestNonblockRecvRace,
 * TestSelectFairness, TestPseudoRandomSend) and crossbeam-channel's
 * tests/select.rs (fairness, disconnected, timeout, both ops on one channel).
 */
#include "test_util.h"

#include <math.h>

static belt_chan *make_u64(size_t cap)
{
    belt_chan *ch = tu_make_chan(cap, sizeof(uint64_t));
    ck_assert_msg(ch != NULL, "creating %s failed", tu_cap_name(cap));
    return ch;
}

/* A thread running one select over up to 8 ops. */
struct sel_thread {
    belt_op ops[8];
    size_t n;
    int64_t timeout_ns;
    int rc;
    atomic_int done;
};

static void *sel_thread_fn(void *p)
{
    struct sel_thread *s = p;
    s->rc = belt_select(s->ops, s->n, s->timeout_ns);
    atomic_store(&s->done, 1);
    return NULL;
}

/* A thread doing one plain operation. */
struct plain_op {
    belt_chan *ch;
    int send;
    int64_t delay_ns;
    uint64_t val;
    int rc;
};

static void *plain_op_fn(void *p)
{
    struct plain_op *o = p;
    if (o->delay_ns > 0)
        tu_sleep_ns(o->delay_ns);
    o->rc = o->send ? belt_chan_send(o->ch, &o->val) : belt_chan_recv(o->ch, &o->val);
    return NULL;
}

/* ===================================================================== core */

START_TEST(test_op_builders)
{
    belt_chan *ch = make_u64(1);
    uint64_t a = 1, b = 2;
    belt_op s = belt_op_send(ch, &a);
    belt_op r = belt_op_recv(ch, &b);
    ck_assert_ptr_eq(s.chan, ch);
    ck_assert_ptr_eq(s.elem, &a);
    ck_assert_int_eq(s.kind, BELT_OP_SEND);
    ck_assert_ptr_eq(r.chan, ch);
    ck_assert_ptr_eq(r.elem, &b);
    ck_assert_int_eq(r.kind, BELT_OP_RECV);
    belt_op n = belt_op_recv(NULL, &b);
    ck_assert_ptr_null(n.chan);
    belt_chan_free(ch);
}
END_TEST

/* A single ready op among unready ones is the one chosen. */
START_TEST(test_select_picks_ready_one)
{
    belt_chan *c[4] = { make_u64(0), make_u64(1), make_u64(4), make_u64(SIZE_MAX) };
    for (int ready = 1; ready < 4; ready++) {
        uint64_t v = 100 + (uint64_t)ready;
        ck_assert_rc(belt_chan_send(c[ready], &v), BELT_OK);
        uint64_t out[4] = { 0, 0, 0, 0 };
        belt_op ops[4];
        for (int i = 0; i < 4; i++) {
            ops[i] = belt_op_recv(c[i], &out[i]);
            ops[i].status = 12345;
        }
        int r = belt_select(ops, 4, 0);
        ck_assert_int_eq(r, ready);
        ck_assert_rc(ops[r].status, BELT_OK);
        ck_assert_uint_eq(out[ready], 100 + (uint64_t)ready);
        for (int i = 0; i < 4; i++) {
            if (i != ready)
                ck_assert_uint_eq(out[i], 0);
            ck_assert_uint_eq(belt_chan_len(c[i]), 0);
        }
    }
    /* and a ready send among unready sends: c[1] full, c[0] no receiver */
    uint64_t v = 7;
    ck_assert_rc(belt_chan_send(c[1], &v), BELT_OK);
    uint64_t w[3] = { 1, 2, 3 };
    belt_op ops[3] = { belt_op_send(c[0], &w[0]), belt_op_send(c[1], &w[1]),
                       belt_op_send(c[2], &w[2]) };
    ck_assert_int_eq(belt_select(ops, 3, 0), 2);
    ck_assert_rc(ops[2].status, BELT_OK);
    ck_assert_uint_eq(belt_chan_len(c[1]), 1);
    ck_assert_uint_eq(belt_chan_len(c[2]), 1);
    ck_assert_rc(belt_chan_recv(c[2], &v), BELT_OK);
    ck_assert_uint_eq(v, 3);
    for (int i = 0; i < 4; i++)
        belt_chan_free(c[i]);
}
END_TEST

/* When several recv arms are ready only the chosen one takes an element;
 * the other channels keep theirs.  Repeated, the totals add up. */
START_TEST(test_select_only_chosen_recv_has_effect)
{
    enum { K = 3, PER = 50 };
    belt_chan *c[K] = { make_u64(PER), make_u64(PER), make_u64(SIZE_MAX) };
    for (int i = 0; i < K; i++)
        for (uint64_t j = 0; j < PER; j++) {
            uint64_t v = (uint64_t)i * 1000 + j;
            ck_assert_rc(belt_chan_send(c[i], &v), BELT_OK);
        }
    uint64_t taken[K] = { 0 };
    for (int round = 0; round < K * PER; round++) {
        uint64_t out[K] = { UINT64_MAX, UINT64_MAX, UINT64_MAX };
        belt_op ops[K];
        for (int i = 0; i < K; i++)
            ops[i] = belt_op_recv(c[i], &out[i]);
        int r = belt_select(ops, K, 0);
        ck_assert_int_ge(r, 0);
        ck_assert_int_lt(r, K);
        ck_assert_rc(ops[r].status, BELT_OK);
        ck_assert_uint_eq(out[r], (uint64_t)r * 1000 + taken[r]);   /* FIFO too */
        taken[r]++;
        for (int i = 0; i < K; i++) {
            if (i != r)
                ck_assert_uint_eq(out[i], UINT64_MAX);
            ck_assert_uint_eq(belt_chan_len(c[i]), PER - taken[i]);
        }
    }
    uint64_t out[K];
    belt_op ops[K];
    for (int i = 0; i < K; i++)
        ops[i] = belt_op_recv(c[i], &out[i]);
    ck_assert_rc(belt_select(ops, K, 0), BELT_TIMEOUT);
    for (int i = 0; i < K; i++)
        belt_chan_free(c[i]);
}
END_TEST

/* Same for send arms: exactly one channel gains an element per select. */
START_TEST(test_select_only_chosen_send_has_effect)
{
    enum { K = 3, CAPC = 40 };
    belt_chan *c[K] = { make_u64(CAPC), make_u64(CAPC), make_u64(CAPC) };
    for (int round = 0; round < K * CAPC; round++) {
        uint64_t v[K];
        belt_op ops[K];
        size_t before[K];
        for (int i = 0; i < K; i++) {
            v[i] = (uint64_t)round * 10 + (uint64_t)i;
            ops[i] = belt_op_send(c[i], &v[i]);
            before[i] = belt_chan_len(c[i]);
        }
        int r = belt_select(ops, K, 0);
        ck_assert_int_ge(r, 0);
        ck_assert_rc(ops[r].status, BELT_OK);
        for (int i = 0; i < K; i++)
            ck_assert_uint_eq(belt_chan_len(c[i]), before[i] + (i == r));
    }
    /* all full now: nothing is ready */
    uint64_t v = 0;
    belt_op ops[K];
    for (int i = 0; i < K; i++) {
        ops[i] = belt_op_send(c[i], &v);
        ck_assert_uint_eq(belt_chan_len(c[i]), CAPC);
    }
    ck_assert_rc(belt_select(ops, K, 0), BELT_TIMEOUT);
    /* each channel got its elements in round order, tagged with its index */
    for (int i = 0; i < K; i++) {
        uint64_t prev = 0;
        for (int j = 0; j < CAPC; j++) {
            ck_assert_rc(belt_chan_recv(c[i], &v), BELT_OK);
            ck_assert_uint_eq(v % 10, (uint64_t)i);
            if (j > 0)
                ck_assert_uint_gt(v, prev);
            prev = v;
        }
        belt_chan_free(c[i]);
    }
}
END_TEST

/* A mix of send and recv arms: one completes, the rest have no effect. */
START_TEST(test_select_mixed_send_recv)
{
    belt_chan *a = make_u64(2), *b = make_u64(2);
    uint64_t v = 5, out = 0;
    ck_assert_rc(belt_chan_send(b, &v), BELT_OK);   /* b: 1 element; a: empty */
    int counts[2] = { 0, 0 };
    for (int i = 0; i < 200; i++) {
        uint64_t s = 9;
        belt_op ops[2] = { belt_op_send(a, &s), belt_op_recv(b, &out) };
        int r = belt_select(ops, 2, 0);
        ck_assert_int_ge(r, 0);
        ck_assert_rc(ops[r].status, BELT_OK);
        counts[r]++;
        if (r == 0) {
            ck_assert_uint_eq(belt_chan_len(a), 1);
            ck_assert_uint_eq(belt_chan_len(b), 1);
            ck_assert_rc(belt_chan_recv(a, &out), BELT_OK);   /* restore */
            ck_assert_uint_eq(out, 9);
        } else {
            ck_assert_uint_eq(out, 5);
            ck_assert_uint_eq(belt_chan_len(a), 0);
            ck_assert_uint_eq(belt_chan_len(b), 0);
            ck_assert_rc(belt_chan_send(b, &v), BELT_OK);     /* restore */
        }
    }
    /* both ready each time: both should have been taken at times */
    ck_assert_int_gt(counts[0], 0);
    ck_assert_int_gt(counts[1], 0);
    belt_chan_free(a);
    belt_chan_free(b);
}
END_TEST

/* Timeout 0 is a try: TIMEOUT when nothing is ready, with no effect. */
START_TEST(test_select_try_none_ready)
{
    belt_chan *c[3] = { make_u64(0), make_u64(1), make_u64(SIZE_MAX) };
    uint64_t v = 1, out = 77;
    ck_assert_rc(belt_chan_send(c[1], &v), BELT_OK);    /* c[1] full */
    belt_op ops[4] = { belt_op_recv(c[0], &out), belt_op_send(c[1], &v),
                       belt_op_recv(c[2], &out), belt_op_send(c[0], &v) };
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_select(ops, 4, 0), BELT_TIMEOUT);
    ck_assert_msg(tu_now_ns() - t0 < 2 * TU_SEC, "a try select blocked");
    ck_assert_uint_eq(out, 77);
    ck_assert_uint_eq(belt_chan_len(c[1]), 1);
    ck_assert_uint_eq(belt_chan_len(c[2]), 0);
    /* no ops at all, timeout 0 */
    ck_assert_rc(belt_select(ops, 0, 0), BELT_TIMEOUT);
    ck_assert_rc(belt_select(NULL, 0, 0), BELT_TIMEOUT);
    for (int i = 0; i < 3; i++)
        belt_chan_free(c[i]);
}
END_TEST

/* A positive timeout: TIMEOUT after at least that long (loose upper bound);
 * also for n == 0 (a sleep) and for arms whose channels are all NULL. */
START_TEST(test_select_timeout)
{
    belt_chan *c[2] = { make_u64(0), make_u64(3) };
    uint64_t out = 0;
    const int64_t to = 50 * TU_MS;
    belt_op ops[2] = { belt_op_recv(c[0], &out), belt_op_recv(c[1], &out) };
    belt_op nulls[2] = { belt_op_recv(NULL, &out), belt_op_send(NULL, &out) };
    struct { belt_op *ops; size_t n; } cases[] = { { ops, 2 }, { ops, 0 }, { nulls, 2 } };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t t0 = tu_now_ns();
        ck_assert_rc(belt_select(cases[k].ops, cases[k].n, to), BELT_TIMEOUT);
        int64_t el = tu_now_ns() - t0;
        ck_assert_msg(el >= to, "case %zu: select timed out after %lld ns < %lld ns", k,
                      (long long)el, (long long)to);
        ck_assert_msg(el < to + 2 * TU_SEC, "case %zu: took %lld ns", k, (long long)el);
    }
    belt_chan_free(c[0]);
    belt_chan_free(c[1]);
}
END_TEST

/* A negative timeout waits until an arm becomes ready: a send arriving
 * later on one channel of each flavour completes a blocked select recv. */
START_TEST(test_select_waits_forever)
{
    size_t cap = tu_caps[_i];
    belt_chan *idle = make_u64(1), *ch = make_u64(cap);
    struct sel_thread s = { .n = 2, .timeout_ns = -1 };
    uint64_t out[2] = { 0, 0 };
    s.ops[0] = belt_op_recv(idle, &out[0]);
    s.ops[1] = belt_op_recv(ch, &out[1]);
    pthread_t t;
    tu_spawn(&t, sel_thread_fn, &s);
    tu_sleep_ms(50);
    ck_assert_msg(!atomic_load(&s.done), "select returned with nothing ready");
    uint64_t v = 4711;
    ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    tu_join(t);
    ck_assert_int_eq(s.rc, 1);
    ck_assert_rc(s.ops[1].status, BELT_OK);
    ck_assert_uint_eq(out[1], 4711);
    ck_assert_uint_eq(out[0], 0);

    /* and a blocked select send on a full/rendezvous channel, completed by
     * a later receive (unbounded: sends are always ready) */
    if (cap != SIZE_MAX) {
        uint64_t fill = 1;
        for (size_t i = 0; i < cap; i++)
            ck_assert_rc(belt_chan_send(ch, &fill), BELT_OK);
        ck_assert_rc(belt_chan_send(idle, &fill), BELT_OK);   /* idle full */
        struct sel_thread s2 = { .n = 2, .timeout_ns = -1 };
        uint64_t w[2] = { 10, 20 };
        s2.ops[0] = belt_op_send(idle, &w[0]);
        s2.ops[1] = belt_op_send(ch, &w[1]);
        tu_spawn(&t, sel_thread_fn, &s2);
        tu_sleep_ms(50);
        ck_assert(!atomic_load(&s2.done));
        for (size_t i = 0; i < cap; i++) {
            ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
            ck_assert_uint_eq(v, 1);
        }
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, 20);
        tu_join(t);
        ck_assert_int_eq(s2.rc, 1);
        ck_assert_rc(s2.ops[1].status, BELT_OK);
        ck_assert_uint_eq(belt_chan_len(idle), 1);
    }
    belt_chan_free(idle);
    belt_chan_free(ch);
}
END_TEST

/* A closed channel is ready: recv arms drain buffered elements first (OK),
 * then complete with CLOSED; send arms complete with CLOSED at once. */
START_TEST(test_select_closed_is_ready)
{
    size_t cap = tu_caps[_i];
    belt_chan *idle = make_u64(0), *ch = make_u64(cap);
    size_t nbuf = cap == SIZE_MAX ? 3 : (cap < 3 ? cap : 3);
    for (uint64_t i = 0; i < nbuf; i++)
        ck_assert_rc(belt_chan_send(ch, &i), BELT_OK);
    belt_chan_close(ch);
    uint64_t out = 0;
    for (uint64_t i = 0; i < nbuf; i++) {
        belt_op ops[2] = { belt_op_recv(idle, &out), belt_op_recv(ch, &out) };
        ck_assert_int_eq(belt_select(ops, 2, -1), 1);
        ck_assert_rc(ops[1].status, BELT_OK);
        ck_assert_uint_eq(out, i);
    }
    out = 999;
    belt_op ops[2] = { belt_op_recv(idle, &out), belt_op_recv(ch, &out) };
    ck_assert_int_eq(belt_select(ops, 2, -1), 1);
    ck_assert_rc(ops[1].status, BELT_CLOSED);
    ck_assert_uint_eq(out, 999);
    ck_assert_int_eq(belt_select(ops, 2, 0), 1);       /* also as a try */
    ck_assert_rc(ops[1].status, BELT_CLOSED);

    uint64_t v = 5;
    belt_op sops[2] = { belt_op_send(idle, &v), belt_op_send(ch, &v) };
    ck_assert_int_eq(belt_select(sops, 2, -1), 1);
    ck_assert_rc(sops[1].status, BELT_CLOSED);
    ck_assert_int_eq(belt_select(sops, 2, 0), 1);
    ck_assert_rc(sops[1].status, BELT_CLOSED);
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    belt_chan_free(idle);
    belt_chan_free(ch);
}
END_TEST

/* An arm with a NULL channel is never ready, even when its twin arm on a
 * real channel is; all-NULL arms time out. */
START_TEST(test_select_null_chan_arm)
{
    belt_chan *ch = make_u64(SIZE_MAX);
    uint64_t v = 1, out = 0;
    for (int i = 0; i < 200; i++)
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    for (int i = 0; i < 200; i++) {
        belt_op ops[4] = { belt_op_recv(NULL, &out), belt_op_send(NULL, &v),
                           belt_op_recv(ch, &out), belt_op_recv(NULL, &out) };
        ck_assert_int_eq(belt_select(ops, 4, -1), 2);
        ck_assert_rc(ops[2].status, BELT_OK);
    }
    belt_op nulls[2] = { belt_op_recv(NULL, &out), belt_op_send(NULL, &v) };
    ck_assert_rc(belt_select(nulls, 2, 0), BELT_TIMEOUT);
    ck_assert_rc(belt_select(nulls, 2, 10 * TU_MS), BELT_TIMEOUT);
    belt_chan_free(ch);
}
END_TEST

/* A send and a receive on the same rendezvous channel in one select never
 * pair with each other: with no other thread it must time out. */
START_TEST(test_select_rendezvous_no_self_pair)
{
    belt_chan *c = make_u64(0);
    uint64_t v = 1, out = 0;
    belt_op ops[2] = { belt_op_send(c, &v), belt_op_recv(c, &out) };
    ck_assert_rc(belt_select(ops, 2, 0), BELT_TIMEOUT);
    ck_assert_rc(belt_select(ops, 2, 50 * TU_MS), BELT_TIMEOUT);
    belt_op rev[2] = { belt_op_recv(c, &out), belt_op_send(c, &v) };
    ck_assert_rc(belt_select(rev, 2, 50 * TU_MS), BELT_TIMEOUT);
    ck_assert_uint_eq(out, 0);
    belt_chan_free(c);
}
END_TEST

/* A select send in one thread and a select recv in another on a rendezvous
 * channel pair up, every time. */
struct pair_arg {
    belt_chan *c, *idle;
    int n;
    int send;
};

static void *pair_thread(void *p)
{
    struct pair_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        uint64_t v = (uint64_t)i, out = UINT64_MAX, junk = 0;
        belt_op ops[2];
        if (a->send) {
            ops[0] = belt_op_recv(a->idle, &junk);
            ops[1] = belt_op_send(a->c, &v);
        } else {
            ops[0] = belt_op_recv(a->c, &out);
            ops[1] = belt_op_recv(a->idle, &junk);
        }
        int r = belt_select(ops, 2, -1);
        int want = a->send ? 1 : 0;
        if (!TU_CHECK(r == want, "select returned %d, want %d", r, want))
            return NULL;
        TU_CHECK_RC(ops[want].status, BELT_OK);
        if (!a->send)
            TU_CHECK(out == (uint64_t)i, "received %llu, want %d", (unsigned long long)out, i);
    }
    return NULL;
}

START_TEST(test_select_rendezvous_pair)
{
    belt_chan *c = make_u64(0), *idle = make_u64(0);
    const int n = (int)tu_scaled(5000, 200);
    struct pair_arg s = { c, idle, n, 1 }, r = { c, idle, n, 0 };
    pthread_t ts, tr;
    tu_spawn(&ts, pair_thread, &s);
    tu_spawn(&tr, pair_thread, &r);
    tu_join(ts);
    tu_join(tr);
    tu_assert_threads_ok();
    belt_chan_free(c);
    belt_chan_free(idle);
}
END_TEST

/* A select and a plain operation pair on a rendezvous channel, both ways. */
START_TEST(test_select_rendezvous_with_plain)
{
    belt_chan *c = make_u64(0), *idle = make_u64(0);
    /* select recv, plain send (sender arrives later) */
    struct plain_op o = { .ch = c, .send = 1, .delay_ns = 20 * TU_MS, .val = 61 };
    pthread_t t;
    tu_spawn(&t, plain_op_fn, &o);
    uint64_t out = 0, junk = 0;
    belt_op ops[2] = { belt_op_recv(idle, &junk), belt_op_recv(c, &out) };
    ck_assert_int_eq(belt_select(ops, 2, -1), 1);
    ck_assert_uint_eq(out, 61);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);

    /* select send, plain recv (receiver arrives later) */
    o = (struct plain_op){ .ch = c, .send = 0, .delay_ns = 20 * TU_MS };
    tu_spawn(&t, plain_op_fn, &o);
    uint64_t v = 62;
    belt_op sops[2] = { belt_op_send(c, &v), belt_op_recv(idle, &junk) };
    ck_assert_int_eq(belt_select(sops, 2, -1), 0);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);
    ck_assert_uint_eq(o.val, 62);

    /* the plain side first, already blocked: the select is a try */
    o = (struct plain_op){ .ch = c, .send = 1, .val = 63 };
    tu_spawn(&t, plain_op_fn, &o);
    int r = BELT_TIMEOUT;
    for (int i = 0; i < 5000 && r == BELT_TIMEOUT; i++) {
        belt_op rops[1] = { belt_op_recv(c, &out) };
        r = belt_select(rops, 1, 0);
        if (r == BELT_TIMEOUT)
            tu_sleep_ms(1);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_eq(out, 63);
    tu_join(t);
    belt_chan_free(c);
    belt_chan_free(idle);
}
END_TEST

/* A select that timed out leaves no offer behind: its send is not taken
 * later and its receive does not swallow a later element. */
START_TEST(test_select_timeout_leaves_no_trace)
{
    size_t cap = tu_caps[_i];
    belt_chan *c = make_u64(cap);
    uint64_t v = 1, out = 0;
    if (cap != SIZE_MAX) {
        for (size_t i = 0; i < cap; i++)
            ck_assert_rc(belt_chan_send(c, &v), BELT_OK);
        for (int i = 0; i < 10; i++) {
            uint64_t w = 500 + (uint64_t)i;
            belt_op ops[1] = { belt_op_send(c, &w) };
            ck_assert_rc(belt_select(ops, 1, 200 * 1000), BELT_TIMEOUT);
        }
        ck_assert_uint_eq(belt_chan_len(c), cap);
        for (size_t i = 0; i < cap; i++) {
            ck_assert_rc(belt_chan_recv(c, &out), BELT_OK);
            ck_assert_uint_eq(out, 1);
        }
        ck_assert_rc(belt_chan_try_recv(c, &out), BELT_EMPTY);
    }
    for (int i = 0; i < 10; i++) {
        belt_op ops[1] = { belt_op_recv(c, &out) };
        ck_assert_rc(belt_select(ops, 1, 200 * 1000), BELT_TIMEOUT);
    }
    /* a plain receiver now gets a plain sender's element, not lost to the
     * timed-out selects */
    struct plain_op o = { .ch = c, .send = 0 };
    pthread_t t;
    tu_spawn(&t, plain_op_fn, &o);
    v = 4242;
    ck_assert_rc(belt_chan_send(c, &v), BELT_OK);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);
    ck_assert_uint_eq(o.val, 4242);
    belt_chan_free(c);
}
END_TEST

/* Go's TestSelfSelect: two threads each select {send c <- id; recv c}.  They
 * pair with each other; on a rendezvous channel a thread never receives its
 * own id.  Both orders of the arms are used. */
struct self_arg {
    belt_chan *c;
    uint64_t id;
    int n;
    int rendezvous;
};

static void *self_select_thread(void *p)
{
    struct self_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        uint64_t mine = a->id, got = UINT64_MAX;
        belt_op ops[2];
        int send_idx = i % 2;
        ops[send_idx] = belt_op_send(a->c, &mine);
        ops[1 - send_idx] = belt_op_recv(a->c, &got);
        int r = belt_select(ops, 2, -1);
        if (!TU_CHECK(r == 0 || r == 1, "select returned %d", r))
            return NULL;
        TU_CHECK_RC(ops[r].status, BELT_OK);
        if (r != send_idx && a->rendezvous)
            TU_CHECK(got != a->id, "thread %llu received its own element",
                     (unsigned long long)a->id);
    }
    return NULL;
}

START_TEST(test_self_select)
{
    static const size_t caps[] = { 0, 1, 10 };
    size_t cap = caps[_i];
    belt_chan *c = make_u64(cap);
    const int n = (int)tu_scaled(2000, 200);
    struct self_arg a[2] = { { c, 1, n, cap == 0 }, { c, 2, n, cap == 0 } };
    pthread_t t[2];
    tu_spawn(&t[0], self_select_thread, &a[0]);
    tu_spawn(&t[1], self_select_thread, &a[1]);
    tu_join(t[0]);
    tu_join(t[1]);
    tu_assert_threads_ok();
    belt_chan_free(c);
}
END_TEST

/* Go's TestSelectDuplicateChannel: a select with the same channel in two
 * arms, woken through a third, must dequeue itself cleanly, so that a
 * later receiver on the duplicated channel is still woken. */
struct dup_arg {
    belt_chan *c, *d, *e;
    uint64_t out[3];
    int rc;
};

static void *dup_select_thread(void *p)
{
    struct dup_arg *a = p;
    belt_op ops[3] = { belt_op_recv(a->c, &a->out[0]), belt_op_recv(a->c, &a->out[1]),
                       belt_op_recv(a->d, &a->out[2]) };
    a->rc = belt_select(ops, 3, -1);
    uint64_t nine = 9;
    TU_CHECK_RC(belt_chan_send(a->e, &nine), BELT_OK);
    return NULL;
}

START_TEST(test_select_duplicate_channel)
{
    struct dup_arg a = { make_u64(0), make_u64(0), make_u64(0), { 0, 0, 0 }, 0 };
    pthread_t ta, tb;
    tu_spawn(&ta, dup_select_thread, &a);
    tu_sleep_ms(10);          /* let A queue on c first */
    struct plain_op b = { .ch = a.c, .send = 0 };
    tu_spawn(&tb, plain_op_fn, &b);
    tu_sleep_ms(10);          /* and B queue on c behind it */
    uint64_t v = 7;
    ck_assert_rc(belt_chan_send(a.d, &v), BELT_OK);   /* wakes A through d */
    ck_assert_rc(belt_chan_recv(a.e, &v), BELT_OK);   /* A is done */
    ck_assert_uint_eq(v, 9);
    v = 8;
    ck_assert_rc(belt_chan_send(a.c, &v), BELT_OK);   /* must reach B */
    tu_join(tb);
    tu_join(ta);
    tu_assert_threads_ok();
    ck_assert_int_eq(a.rc, 2);
    ck_assert_uint_eq(a.out[2], 7);
    ck_assert_rc(b.rc, BELT_OK);
    ck_assert_uint_eq(b.val, 8);
    belt_chan_free(a.c);
    belt_chan_free(a.d);
    belt_chan_free(a.e);
}
END_TEST

/* The same channel twice in one select, buffered: one element satisfies
 * exactly one of the two arms. */
START_TEST(test_select_same_channel_twice)
{
    belt_chan *c = make_u64(4);
    for (int i = 0; i < 100; i++) {
        uint64_t v = (uint64_t)i, o1 = UINT64_MAX, o2 = UINT64_MAX;
        ck_assert_rc(belt_chan_send(c, &v), BELT_OK);
        belt_op ops[2] = { belt_op_recv(c, &o1), belt_op_recv(c, &o2) };
        int r = belt_select(ops, 2, -1);
        ck_assert_int_ge(r, 0);
        ck_assert_uint_eq(r == 0 ? o1 : o2, (uint64_t)i);
        ck_assert_uint_eq(r == 0 ? o2 : o1, UINT64_MAX);
        ck_assert_uint_eq(belt_chan_len(c), 0);
    }
    belt_chan_free(c);
}
END_TEST

/* close wakes a select blocked on recv arms (the closed arm reports CLOSED)
 * and one blocked on send arms. */
START_TEST(test_select_close_wakes)
{
    size_t cap = tu_caps[_i];
    belt_chan *c[3] = { make_u64(0), make_u64(cap), make_u64(1) };
    uint64_t out[3] = { 5, 5, 5 };
    struct sel_thread s = { .n = 3, .timeout_ns = -1 };
    for (int i = 0; i < 3; i++)
        s.ops[i] = belt_op_recv(c[i], &out[i]);
    pthread_t t;
    tu_spawn(&t, sel_thread_fn, &s);
    tu_sleep_ms(30);
    ck_assert(!atomic_load(&s.done));
    belt_chan_close(c[1]);
    tu_join(t);
    ck_assert_int_eq(s.rc, 1);
    ck_assert_rc(s.ops[1].status, BELT_CLOSED);
    ck_assert_uint_eq(out[1], 5);
    for (int i = 0; i < 3; i++)
        belt_chan_free(c[i]);

    if (cap == SIZE_MAX)
        return;   /* an unbounded send arm is always ready */
    belt_chan *d[2] = { make_u64(cap), make_u64(0) };
    uint64_t v = 1;
    for (size_t i = 0; i < cap; i++)
        ck_assert_rc(belt_chan_send(d[0], &v), BELT_OK);
    struct sel_thread s2 = { .n = 2, .timeout_ns = 3600 * TU_SEC };
    s2.ops[0] = belt_op_send(d[0], &v);
    s2.ops[1] = belt_op_send(d[1], &v);
    tu_spawn(&t, sel_thread_fn, &s2);
    tu_sleep_ms(30);
    ck_assert(!atomic_load(&s2.done));
    belt_chan_close(d[0]);
    tu_join(t);
    ck_assert_int_eq(s2.rc, 0);
    ck_assert_rc(s2.ops[0].status, BELT_CLOSED);
    ck_assert_uint_eq(belt_chan_len(d[0]), cap);
    belt_chan_free(d[0]);
    belt_chan_free(d[1]);
}
END_TEST

/* The last sender_done wakes a select blocked on a recv arm; the last
 * receiver_done wakes a select blocked on a send arm. */
START_TEST(test_select_disconnect_wakes)
{
    belt_chan *c = make_u64(0), *idle = make_u64(0);
    ck_assert_rc(belt_chan_add_senders(c, 1), BELT_OK);
    uint64_t out = 3, junk = 0;
    struct sel_thread s = { .n = 2, .timeout_ns = -1 };
    s.ops[0] = belt_op_recv(idle, &junk);
    s.ops[1] = belt_op_recv(c, &out);
    pthread_t t;
    tu_spawn(&t, sel_thread_fn, &s);
    tu_sleep_ms(30);
    ck_assert_rc(belt_chan_sender_done(c), BELT_OK);
    tu_join(t);
    ck_assert_int_eq(s.rc, 1);
    ck_assert_rc(s.ops[1].status, BELT_CLOSED);
    belt_chan_free(c);

    c = make_u64(0);
    ck_assert_rc(belt_chan_add_receivers(c, 1), BELT_OK);
    uint64_t v = 1;
    struct sel_thread s2 = { .n = 2, .timeout_ns = -1 };
    s2.ops[0] = belt_op_recv(idle, &junk);
    s2.ops[1] = belt_op_send(c, &v);
    tu_spawn(&t, sel_thread_fn, &s2);
    tu_sleep_ms(30);
    ck_assert_rc(belt_chan_receiver_done(c), BELT_OK);
    tu_join(t);
    ck_assert_int_eq(s2.rc, 1);
    ck_assert_rc(s2.ops[1].status, BELT_CLOSED);
    belt_chan_free(c);
    belt_chan_free(idle);
}
END_TEST

/* Fairness (Go's TestSelectFairness, crossbeam's select fairness): k arms
 * that are always ready, `trials` selects; each arm's count must lie within
 * t of trials/k, where t comes from Hoeffding's inequality with a union
 * bound over the arms: P(some |X_i - trials/k| >= t) <= 2k exp(-2 t^2 /
 * trials) = 1e-6.  For 10,000 trials and 2 arms that is 5000 +- 270, for 3
 * arms 3333 +- 279: an unbiased choice fails with probability < 1e-6, a
 * "first ready arm" choice fails always. */
static long fairness_slack(long trials, int k)
{
    return (long)ceil(sqrt((double)trials / 2.0 * log(2.0 * k / 1e-6)));
}

static void check_share(const long *count, int k, long trials, const char *what)
{
    long slack = fairness_slack(trials, k);
    for (int i = 0; i < k; i++)
        ck_assert_msg(labs(count[i] - trials / k) <= slack,
                      "%s: arm %d chosen %ld of %ld times (want %ld +- %ld)", what, i,
                      count[i], trials, trials / k, slack);
}

START_TEST(test_select_fairness_recv)
{
    const long trials = 10000;
    for (int k = 2; k <= 3; k++) {
        belt_chan *c[3] = { make_u64(1), make_u64(4), make_u64(SIZE_MAX) };
        for (int i = 0; i < k; i++) {
            uint64_t v = (uint64_t)i;
            ck_assert_rc(belt_chan_send(c[i], &v), BELT_OK);
        }
        long count[3] = { 0, 0, 0 };
        for (long n = 0; n < trials; n++) {
            uint64_t out[3];
            belt_op ops[3];
            for (int i = 0; i < k; i++)
                ops[i] = belt_op_recv(c[i], &out[i]);
            int r = belt_select(ops, (size_t)k, -1);
            ck_check(r >= 0 && r < k, "select returned %d", r);
            ck_check(out[r] == (uint64_t)r, "arm %d received %llu", r,
                     (unsigned long long)out[r]);
            count[r]++;
            ck_assert_rc(belt_chan_send(c[r], &out[r]), BELT_OK);   /* ready again */
        }
        check_share(count, k, trials, k == 2 ? "2 recv arms" : "3 recv arms");
        for (int i = 0; i < 3; i++)
            belt_chan_free(c[i]);
    }
}
END_TEST

/* The same for send arms (the idea of Go's TestPseudoRandomSend): two
 * channels with room, and a send and a recv arm both ready. */
START_TEST(test_select_fairness_send)
{
    const long trials = 10000;
    belt_chan *c[2] = { make_u64(2), make_u64(SIZE_MAX) };
    long count[2] = { 0, 0 };
    for (long n = 0; n < trials; n++) {
        uint64_t v[2] = { 0, 1 }, out;
        belt_op ops[2] = { belt_op_send(c[0], &v[0]), belt_op_send(c[1], &v[1]) };
        int r = belt_select(ops, 2, 0);
        ck_check(r == 0 || r == 1, "select returned %d", r);
        count[r]++;
        ck_assert_rc(belt_chan_recv(c[r], &out), BELT_OK);
        ck_check(out == (uint64_t)r, "arm %d sent %llu", r, (unsigned long long)out);
    }
    check_share(count, 2, trials, "2 send arms");

    /* one send arm (room in c[0]) and one recv arm (an element in c[1]) */
    uint64_t one = 1;
    ck_assert_rc(belt_chan_send(c[1], &one), BELT_OK);
    count[0] = count[1] = 0;
    for (long n = 0; n < trials; n++) {
        uint64_t v = 0, out = 0;
        belt_op ops[2] = { belt_op_send(c[0], &v), belt_op_recv(c[1], &out) };
        int r = belt_select(ops, 2, 0);
        ck_check(r == 0 || r == 1, "select returned %d", r);
        count[r]++;
        if (r == 0)
            ck_assert_rc(belt_chan_recv(c[0], &out), BELT_OK);
        else
            ck_assert_rc(belt_chan_send(c[1], &out), BELT_OK);
    }
    check_share(count, 2, trials, "a send and a recv arm");
    belt_chan_free(c[0]);
    belt_chan_free(c[1]);
}
END_TEST

/* Go's TestNonblockRecvRace: a channel holds one element and is closed
 * concurrently; a try-select recv on it is ready whatever the interleaving
 * (it gets the element or CLOSED, never TIMEOUT), and exactly one of it and
 * the main thread's recv gets the element. */
struct nbr_arg {
    belt_chan *c;
    int rc, status;
    uint64_t out;
};

static void *nbr_thread(void *p)
{
    struct nbr_arg *a = p;
    belt_op ops[1] = { belt_op_recv(a->c, &a->out) };
    a->rc = belt_select(ops, 1, 0);
    a->status = ops[0].status;
    return NULL;
}

START_TEST(test_nonblock_recv_race)
{
    const int n = (int)tu_scaled(2000, 200);
    for (int i = 0; i < n; i++) {
        belt_chan *c = make_u64(1);
        uint64_t v = 1;
        ck_assert_rc(belt_chan_send(c, &v), BELT_OK);
        struct nbr_arg a = { c, 0, 0, 0 };
        pthread_t t;
        tu_spawn(&t, nbr_thread, &a);
        belt_chan_close(c);
        uint64_t out = 0;
        int rc = belt_chan_recv(c, &out);
        tu_join(t);
        ck_assert_msg(a.rc == 0, "iteration %d: try-select on a non-empty channel "
                      "being closed returned %s", i, belt_err_name(a.rc));
        ck_assert_msg((a.status == BELT_OK) != (rc == BELT_OK),
                      "iteration %d: select got %s, recv got %s", i,
                      belt_err_name(a.status), belt_err_name(rc));
        ck_assert(a.status == BELT_OK || a.status == BELT_CLOSED);
        ck_assert(rc == BELT_OK || rc == BELT_CLOSED);
        belt_chan_free(c);
    }
}
END_TEST

/* Happens-before through select: plain struct written, pointer sent by a
 * select send, received by a select recv, read (ThreadSanitizer watches). */
struct hb_msg {
    long a, b[8];
    char s[24];
};

struct hb_arg {
    belt_chan *c, *idle;
    int n;
};

static void *hb_select_sender(void *p)
{
    struct hb_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        struct hb_msg *m = malloc(sizeof *m);
        if (!TU_CHECK(m != NULL, "malloc"))
            return NULL;
        m->a = i;
        for (int k = 0; k < 8; k++)
            m->b[k] = i * 8 + k;
        snprintf(m->s, sizeof m->s, "m%d", i);
        uint64_t junk;
        belt_op ops[2] = { belt_op_send(a->c, &m), belt_op_recv(a->idle, &junk) };
        if (!TU_CHECK(belt_select(ops, 2, -1) == 0, "select send failed")) {
            free(m);
            return NULL;
        }
    }
    return NULL;
}

START_TEST(test_select_happens_before)
{
    size_t cap = tu_caps[_i];
    belt_chan *c = tu_make_chan(cap, sizeof(struct hb_msg *)), *idle = make_u64(0);
    ck_assert_ptr_nonnull(c);
    struct hb_arg a = { c, idle, (int)tu_scaled(3000, 200) };
    pthread_t t;
    tu_spawn(&t, hb_select_sender, &a);
    int bad = 0;
    for (int i = 0; i < a.n; i++) {
        struct hb_msg *m = NULL;
        uint64_t junk;
        belt_op ops[2] = { belt_op_recv(idle, &junk), belt_op_recv(c, &m) };
        ck_assert_int_eq(belt_select(ops, 2, -1), 1);
        char want[24];
        snprintf(want, sizeof want, "m%d", i);
        bad += m->a != i;
        for (int k = 0; k < 8; k++)
            bad += m->b[k] != i * 8 + k;
        bad += strcmp(m->s, want) != 0;
        free(m);
    }
    tu_join(t);
    tu_assert_threads_ok();
    ck_assert_int_eq(bad, 0);
    belt_chan_free(c);
    belt_chan_free(idle);
}
END_TEST

/* A small version of the mixed-channel stress: two plain producers per
 * channel, two select consumers over all channels; nothing lost or
 * duplicated.  (check_chan_stress has the big one.) */
enum { MIX_K = 4 };

struct mix_arg {
    belt_chan **c;
    int id;
    int n;
    _Atomic unsigned char *seen;   /* [MIX_K * 2 * n] */
    long got;
};

static void *mix_producer(void *p)
{
    struct mix_arg *a = p;
    belt_chan *ch = a->c[a->id / 2];
    for (int i = 0; i < a->n; i++) {
        uint64_t v = (uint64_t)a->id * (uint64_t)a->n + (uint64_t)i;
        if (!TU_CHECK_RC(belt_chan_send(ch, &v), BELT_OK))
            break;
    }
    TU_CHECK_RC(belt_chan_sender_done(ch), BELT_OK);
    return NULL;
}

static void *mix_consumer(void *p)
{
    struct mix_arg *a = p;
    uint64_t out[MIX_K];
    belt_op ops[MIX_K];
    for (int i = 0; i < MIX_K; i++)
        ops[i] = belt_op_recv(a->c[i], &out[i]);
    int open = MIX_K;
    while (open > 0) {
        int r = belt_select(ops, MIX_K, -1);
        if (!TU_CHECK(r >= 0 && r < MIX_K, "select returned %d", r))
            return NULL;
        if (ops[r].status == BELT_CLOSED) {
            ops[r].chan = NULL;   /* switch the arm off */
            open--;
            continue;
        }
        uint64_t v = out[r];
        uint64_t total = (uint64_t)MIX_K * 2 * (uint64_t)a->n;
        if (!TU_CHECK(v < total, "value %llu out of range", (unsigned long long)v))
            continue;
        TU_CHECK(v / (uint64_t)a->n / 2 == (uint64_t)r, "value %llu came from channel %d",
                 (unsigned long long)v, r);
        TU_CHECK(atomic_fetch_add(&a->seen[v], 1) == 0, "value %llu received twice",
                 (unsigned long long)v);
        a->got++;
    }
    return NULL;
}

START_TEST(test_select_many_channels_no_loss)
{
    const int n = (int)tu_scaled(10000, 500);
    belt_chan *c[MIX_K] = { make_u64(0), make_u64(1), make_u64(16), make_u64(SIZE_MAX) };
    for (int i = 0; i < MIX_K; i++)
        ck_assert_rc(belt_chan_add_senders(c[i], 2), BELT_OK);
    size_t total = (size_t)MIX_K * 2 * (size_t)n;
    _Atomic unsigned char *seen = calloc(total, 1);
    ck_assert_ptr_nonnull(seen);
    struct mix_arg prod[MIX_K * 2], cons[2];
    pthread_t tp[MIX_K * 2], tc[2];
    for (int i = 0; i < 2; i++) {
        cons[i] = (struct mix_arg){ c, i, n, seen, 0 };
        tu_spawn(&tc[i], mix_consumer, &cons[i]);
    }
    for (int i = 0; i < MIX_K * 2; i++) {
        prod[i] = (struct mix_arg){ c, i, n, seen, 0 };
        tu_spawn(&tp[i], mix_producer, &prod[i]);
    }
    for (int i = 0; i < MIX_K * 2; i++)
        tu_join(tp[i]);
    for (int i = 0; i < 2; i++)
        tu_join(tc[i]);
    tu_assert_threads_ok();
    ck_assert_int_eq(cons[0].got + cons[1].got, (long)total);
    for (size_t i = 0; i < total; i++)
        ck_assert_msg(atomic_load(&seen[i]) == 1, "value %zu lost", i);
    free((void *)seen);
    for (int i = 0; i < MIX_K; i++)
        belt_chan_free(c[i]);
}
END_TEST

/* =================================================================== errors */

START_TEST(test_select_einval)
{
    belt_chan *c = make_u64(2);
    uint64_t v = 1, out = 0;
    ck_assert_rc(belt_chan_send(c, &v), BELT_OK);   /* c ready for recv and send */

    /* ops NULL with n > 0 */
    ck_assert_rc(belt_select(NULL, 1, 0), BELT_EINVAL);
    ck_assert_rc(belt_select(NULL, 3, -1), BELT_EINVAL);
    ck_assert_rc(belt_select(NULL, 1, 10 * TU_MS), BELT_EINVAL);

    /* n == 0 with a negative timeout would block forever */
    belt_op none[1];
    ck_assert_rc(belt_select(none, 0, -1), BELT_EINVAL);
    ck_assert_rc(belt_select(NULL, 0, -1), BELT_EINVAL);

    /* a bad kind, alone or next to a ready op: EINVAL and no effect */
    const int bad_kinds[] = { 0, 3, -1, 42 };
    for (size_t k = 0; k < sizeof bad_kinds / sizeof bad_kinds[0]; k++) {
        belt_op op = belt_op_recv(c, &out);
        op.kind = bad_kinds[k];
        ck_assert_rc(belt_select(&op, 1, 0), BELT_EINVAL);
        ck_assert_rc(belt_select(&op, 1, -1), BELT_EINVAL);
        belt_op ops[2] = { belt_op_recv(c, &out), op };
        ck_assert_rc(belt_select(ops, 2, -1), BELT_EINVAL);
        belt_op ops2[2] = { op, belt_op_send(c, &v) };
        ck_assert_rc(belt_select(ops2, 2, -1), BELT_EINVAL);
        ck_assert_uint_eq(belt_chan_len(c), 1);
        ck_assert_uint_eq(out, 0);
    }

    /* a NULL elem on an op with a channel */
    belt_op r = belt_op_recv(c, NULL);
    belt_op s = belt_op_send(c, NULL);
    ck_assert_rc(belt_select(&r, 1, 0), BELT_EINVAL);
    ck_assert_rc(belt_select(&s, 1, -1), BELT_EINVAL);
    belt_op mixed[2] = { belt_op_recv(c, &out), belt_op_send(c, NULL) };
    ck_assert_rc(belt_select(mixed, 2, -1), BELT_EINVAL);
    ck_assert_uint_eq(belt_chan_len(c), 1);
    ck_assert_uint_eq(out, 0);
    belt_chan_free(c);
}
END_TEST

/* =================================================================== limits */

/* Many arms: 256 channels, only one becomes ready (from another thread). */
START_TEST(test_select_many_arms)
{
    enum { K = 256 };
    belt_chan *c[K];
    belt_op ops[K];
    uint64_t out[K];
    for (int i = 0; i < K; i++) {
        c[i] = make_u64(tu_caps[i % TU_NCAPS]);
        ops[i] = belt_op_recv(c[i], &out[i]);
    }
    for (int round = 0; round < 20; round++) {
        int which = (round * 97 + 13) % K;
        struct plain_op o = { .ch = c[which], .send = 1, .val = (uint64_t)round,
                              .delay_ns = round % 2 ? 2 * TU_MS : 0 };
        pthread_t t;
        tu_spawn(&t, plain_op_fn, &o);
        int r = belt_select(ops, K, -1);
        tu_join(t);
        ck_assert_int_eq(r, which);
        ck_assert_rc(ops[r].status, BELT_OK);
        ck_assert_uint_eq(out[r], (uint64_t)round);
        ck_assert_rc(o.rc, BELT_OK);
    }
    for (int i = 0; i < K; i++)
        belt_chan_free(c[i]);
}
END_TEST

/* A thread blocked in select for ~1 s burns well under 10 ms of CPU (50 ms
 * in sanitizer builds, which slow the spin phase down several times). */
struct cpu_sel {
    belt_chan *c[3];
    int rc;
    int64_t cpu_ns, wall_ns;
};

static void *cpu_sel_thread(void *p)
{
    struct cpu_sel *a = p;
    uint64_t out[3];
    belt_op ops[3];
    for (int i = 0; i < 3; i++)
        ops[i] = belt_op_recv(a->c[i], &out[i]);
    int64_t c0 = tu_thread_cpu_ns(), w0 = tu_now_ns();
    a->rc = belt_select(ops, 3, -1);
    a->cpu_ns = tu_thread_cpu_ns() - c0;
    a->wall_ns = tu_now_ns() - w0;
    return NULL;
}

START_TEST(test_blocked_select_burns_no_cpu)
{
    struct cpu_sel a = { { make_u64(0), make_u64(4), make_u64(SIZE_MAX) }, 0, 0, 0 };
    pthread_t t;
    tu_spawn(&t, cpu_sel_thread, &a);
    tu_sleep_ms(1000);
    uint64_t v = 1;
    ck_assert_rc(belt_chan_send(a.c[0], &v), BELT_OK);
    tu_join(t);
    ck_assert_int_eq(a.rc, 0);
    ck_assert(a.wall_ns >= 500 * TU_MS);
    const int64_t bound = (tu_sanitized() ? 50 : 10) * TU_MS;
    ck_assert_msg(a.cpu_ns < bound, "select blocked %lld ms and used %lld us of CPU",
                  (long long)(a.wall_ns / TU_MS), (long long)(a.cpu_ns / 1000));
    for (int i = 0; i < 3; i++)
        belt_chan_free(a.c[i]);
}
END_TEST

/* ==================================================================== main */

static void setup(void)
{
    tu_reset_failures();
}

static Suite *select_suite(void)
{
    Suite *s = suite_create("select");

    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_op_builders);
    tcase_add_test(tc, test_select_picks_ready_one);
    tcase_add_test(tc, test_select_only_chosen_recv_has_effect);
    tcase_add_test(tc, test_select_only_chosen_send_has_effect);
    tcase_add_test(tc, test_select_mixed_send_recv);
    tcase_add_test(tc, test_select_try_none_ready);
    tcase_add_test(tc, test_select_timeout);
    tcase_add_loop_test(tc, test_select_waits_forever, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_select_closed_is_ready, 0, TU_NCAPS);
    tcase_add_test(tc, test_select_null_chan_arm);
    tcase_add_test(tc, test_select_rendezvous_no_self_pair);
    tcase_add_test(tc, test_select_rendezvous_pair);
    tcase_add_test(tc, test_select_rendezvous_with_plain);
    tcase_add_loop_test(tc, test_select_timeout_leaves_no_trace, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_self_select, 0, 3);
    tcase_add_test(tc, test_select_duplicate_channel);
    tcase_add_test(tc, test_select_same_channel_twice);
    tcase_add_loop_test(tc, test_select_close_wakes, 0, TU_NCAPS);
    tcase_add_test(tc, test_select_disconnect_wakes);
    tcase_add_test(tc, test_select_fairness_recv);
    tcase_add_test(tc, test_select_fairness_send);
    tcase_add_test(tc, test_nonblock_recv_race);
    tcase_add_loop_test(tc, test_select_happens_before, 0, TU_NCAPS);
    tcase_add_test(tc, test_select_many_channels_no_loss);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_test(tc, test_select_einval);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_select_many_arms);
    tcase_add_test(tc, test_blocked_select_burns_no_cpu);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(select_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
