/* check_chan.c: unit tests of belt's channels against include/belt/chan.h.
 *
 * TCases:
 *   core    behaviour of each flavour: FIFO, len/capacity, try_*, blocking,
 *           rendezvous hand-off, timeouts, close, disconnection, ref/free,
 *           happens-before, element sizes.  Most tests are loop tests over
 *           tu_caps[] (rendezvous, 1, 4, 1024, unbounded).
 *   errors  every function's error cases, creation limits, error strings.
 *   limits  maximum element size, large capacities, CPU use of blocked
 *           threads, memory given back by a drained unbounded channel.
 *
 * Ideas ported (in our own words) from Go's runtime/chan_test.go (TestChan)
 * and crossbeam-channel's tests (len, try_recv, recv_timeout,
 * disconnect_wakes_sender/receiver, drops, channel_through_channel).
 *
 * Sleeps in these tests only give another thread time to block; no assertion
 * depends on a sleep being long enough, except that a thread we expect to be
 * blocked must not have finished (it cannot, if the channel is correct).
 */
#include "test_util.h"

#include <limits.h>
#include <sys/resource.h>

#define CAP (tu_caps[_i])

/* A thread doing one channel operation on a uint64_t, for "does it block",
 * "does close wake it" tests. */
enum op { OP_SEND, OP_RECV, OP_SEND_TIMEOUT, OP_RECV_TIMEOUT };

struct one_op {
    belt_chan *ch;
    enum op op;
    int64_t timeout_ns;
    uint64_t val;       /* send: value sent; recv: value received */
    int rc;
    atomic_int done;    /* set after the operation returned */
};

static void *one_op_thread(void *p)
{
    struct one_op *o = p;
    switch (o->op) {
    case OP_SEND:
        o->rc = belt_chan_send(o->ch, &o->val);
        break;
    case OP_RECV:
        o->rc = belt_chan_recv(o->ch, &o->val);
        break;
    case OP_SEND_TIMEOUT:
        o->rc = belt_chan_send_timeout(o->ch, &o->val, o->timeout_ns);
        break;
    case OP_RECV_TIMEOUT:
        o->rc = belt_chan_recv_timeout(o->ch, &o->val, o->timeout_ns);
        break;
    }
    atomic_store(&o->done, 1);
    return NULL;
}

/* Sends `n` values start, start+1, ... then returns. */
struct seq_sender {
    belt_chan *ch;
    uint64_t start, n;
    int64_t delay_ns;   /* sleep before the first send */
    int done_after;     /* call belt_chan_sender_done() at the end */
};

static void *seq_sender_thread(void *p)
{
    struct seq_sender *s = p;
    if (s->delay_ns > 0)
        tu_sleep_ns(s->delay_ns);
    for (uint64_t i = 0; i < s->n; i++) {
        uint64_t v = s->start + i;
        int rc = belt_chan_send(s->ch, &v);
        if (!TU_CHECK_RC(rc, BELT_OK))
            break;
    }
    if (s->done_after)
        TU_CHECK_RC(belt_chan_sender_done(s->ch), BELT_OK);
    return NULL;
}

static belt_chan *make_u64(size_t cap)
{
    belt_chan *ch = tu_make_chan(cap, sizeof(uint64_t));
    ck_assert_msg(ch != NULL, "creating %s failed", tu_cap_name(cap));
    return ch;
}

/* ===================================================================== core */

/* Elements come out in the order they went in, len tracks the count. */
START_TEST(test_fifo)
{
    belt_chan *ch = make_u64(CAP);
    enum { N = 100 };
    if (CAP == 0) {
        pthread_t t;
        struct seq_sender s = { ch, 1000, N, 0, 0 };
        tu_spawn(&t, seq_sender_thread, &s);
        for (uint64_t i = 0; i < N; i++) {
            uint64_t v = 0;
            ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
            ck_assert_uint_eq(v, 1000 + i);
            ck_assert_uint_eq(belt_chan_len(ch), 0);
        }
        tu_join(t);
        tu_assert_threads_ok();
    } else {
        size_t n = CAP < N ? CAP : N;
        for (int round = 0; round < 3; round++) {
            for (size_t i = 0; i < n; i++) {
                uint64_t v = round * 1000 + i;
                ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
                ck_assert_uint_eq(belt_chan_len(ch), i + 1);
            }
            for (size_t i = 0; i < n; i++) {
                uint64_t v = 0;
                ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
                ck_assert_uint_eq(v, round * 1000 + i);
                ck_assert_uint_eq(belt_chan_len(ch), n - i - 1);
            }
        }
    }
    belt_chan_free(ch);
}
END_TEST

/* capacity(), elem_size(), and len() across many wrap-arounds of a ring
 * (crossbeam's `len`). */
START_TEST(test_len_capacity)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_uint_eq(belt_chan_capacity(ch), CAP == SIZE_MAX ? BELT_CHAN_UNBOUNDED : CAP);
    ck_assert_uint_eq(belt_chan_elem_size(ch), sizeof(uint64_t));
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    ck_assert(!belt_chan_is_closed(ch));
    if (CAP != 0) {
        size_t cap = CAP == SIZE_MAX ? 50 : CAP;
        uint64_t next_in = 0, next_out = 0;
        /* keep between 0 and cap elements, moving the ring's indices round
         * many times */
        for (int i = 0; i < 400; i++) {
            size_t want = (size_t)(i * 7919) % (cap + 1);
            while (belt_chan_len(ch) < want) {
                ck_assert_rc(belt_chan_try_send(ch, &next_in), BELT_OK);
                next_in++;
            }
            while (belt_chan_len(ch) > want) {
                uint64_t v;
                ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_OK);
                ck_check(v == next_out, "got %llu, want %llu", (unsigned long long)v,
                         (unsigned long long)next_out);
                next_out++;
            }
            ck_assert_uint_eq(belt_chan_len(ch), want);
            ck_assert_uint_eq(next_in - next_out, want);
        }
        if (CAP != SIZE_MAX) {
            while (belt_chan_len(ch) < cap) {
                ck_assert_rc(belt_chan_try_send(ch, &next_in), BELT_OK);
                next_in++;
            }
            ck_assert_rc(belt_chan_try_send(ch, &next_in), BELT_FULL);
            ck_assert_uint_eq(belt_chan_len(ch), cap);
        }
    }
    belt_chan_free(ch);
}
END_TEST

/* try_recv: EMPTY, then the element once sent, then CLOSED after close and
 * drain (crossbeam's try_recv). */
START_TEST(test_try_recv)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 77;
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_EMPTY);
    ck_assert_uint_eq(v, 77);   /* untouched */

    pthread_t t;
    struct seq_sender s = { ch, 5, 1, 0, 0 };
    tu_spawn(&t, seq_sender_thread, &s);
    /* for a rendezvous channel the sender must be waiting before try_recv
     * can succeed: poll (bounded) until it does */
    int rc = BELT_EMPTY;
    for (int i = 0; i < 5000 && rc == BELT_EMPTY; i++) {
        rc = belt_chan_try_recv(ch, &v);
        if (rc == BELT_EMPTY)
            tu_sleep_ms(1);
    }
    ck_assert_rc(rc, BELT_OK);
    ck_assert_uint_eq(v, 5);
    tu_join(t);
    tu_assert_threads_ok();
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_EMPTY);
    belt_chan_close(ch);
    v = 99;
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_CLOSED);
    ck_assert_uint_eq(v, 99);
    belt_chan_free(ch);
}
END_TEST

/* try_send: FULL on a full bounded channel and on a rendezvous channel with
 * no receiver; succeeds on a rendezvous channel once a receiver waits;
 * unbounded never says FULL. */
START_TEST(test_try_send)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 1;
    if (CAP == SIZE_MAX) {
        for (v = 0; v < 10000; v++)
            ck_assert_rc(belt_chan_try_send(ch, &v), BELT_OK);
        ck_assert_uint_eq(belt_chan_len(ch), 10000);
    } else {
        for (size_t i = 0; i < CAP; i++)
            ck_assert_rc(belt_chan_try_send(ch, &v), BELT_OK);
        ck_assert_rc(belt_chan_try_send(ch, &v), BELT_FULL);
        ck_assert_rc(belt_chan_send_timeout(ch, &v, 0), BELT_FULL);
        ck_assert_uint_eq(belt_chan_len(ch), CAP);
        if (CAP == 0) {
            /* with a receiver blocked in recv, try_send hands over */
            struct one_op o = { .ch = ch, .op = OP_RECV };
            pthread_t t;
            tu_spawn(&t, one_op_thread, &o);
            int rc = BELT_FULL;
            v = 4242;
            for (int i = 0; i < 5000 && rc == BELT_FULL; i++) {
                rc = belt_chan_try_send(ch, &v);
                if (rc == BELT_FULL)
                    tu_sleep_ms(1);
            }
            ck_assert_rc(rc, BELT_OK);
            tu_join(t);
            ck_assert_rc(o.rc, BELT_OK);
            ck_assert_uint_eq(o.val, 4242);
            ck_assert_rc(belt_chan_try_send(ch, &v), BELT_FULL);
        }
    }
    belt_chan_free(ch);
}
END_TEST

/* A receive on an empty channel blocks until a send (Go's TestChan). */
START_TEST(test_recv_blocks_on_empty)
{
    belt_chan *ch = make_u64(CAP);
    struct one_op o = { .ch = ch, .op = OP_RECV };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    tu_sleep_ms(50);
    ck_assert_msg(!atomic_load(&o.done), "recv on an empty channel returned");
    uint64_t v = 31337;
    ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);
    ck_assert_uint_eq(o.val, 31337);
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    belt_chan_free(ch);
}
END_TEST

/* A send on a full bounded channel blocks until a receive; on a rendezvous
 * channel until a receiver takes the element; on an unbounded channel never.
 * (Go's TestChan.) */
START_TEST(test_send_blocks_on_full)
{
    belt_chan *ch = make_u64(CAP);
    if (CAP == SIZE_MAX) {
        /* never blocks: a single thread can send a lot */
        for (uint64_t v = 0; v < 100000; v++)
            ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        ck_assert_uint_eq(belt_chan_len(ch), 100000);
        belt_chan_free(ch);
        return;
    }
    for (uint64_t v = 0; v < CAP; v++)
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    struct one_op o = { .ch = ch, .op = OP_SEND, .val = 999 };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    tu_sleep_ms(50);
    ck_assert_msg(!atomic_load(&o.done), "send on a full %s channel returned",
                  tu_cap_name(CAP));
    ck_assert_uint_eq(belt_chan_len(ch), CAP);
    uint64_t v;
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
    ck_assert_uint_eq(v, CAP == 0 ? 999 : 0);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);
    /* the rest, in order, with the blocked send's element last */
    for (uint64_t i = 1; i < CAP; i++) {
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, i);
    }
    if (CAP > 0) {
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, 999);
    }
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_EMPTY);
    belt_chan_free(ch);
}
END_TEST

/* Rendezvous: a send completes only after a receiver took the element; the
 * order "receiver got it" -> "sender returned" holds on every hand-off. */
struct rv_arg {
    belt_chan *ch;
    int n;
    atomic_int received;     /* count of elements the receiver has taken */
};

static void *rv_sender(void *p)
{
    struct rv_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        uint64_t v = (uint64_t)i;
        if (!TU_CHECK_RC(belt_chan_send(a->ch, &v), BELT_OK))
            return NULL;
        /* the element we just sent has been taken: the receiver's recv
         * returned (or is returning) it.  It may not have bumped the
         * counter yet, so only check it is not behind by more than one. */
        int r = atomic_load(&a->received);
        TU_CHECK(r >= i, "send %d returned but receiver had taken only %d", i, r);
    }
    return NULL;
}

START_TEST(test_rendezvous_handoff)
{
    belt_chan *ch = make_u64(0);
    ck_assert_uint_eq(belt_chan_capacity(ch), 0);
    uint64_t v = 5;
    ck_assert_rc(belt_chan_try_send(ch, &v), BELT_FULL);

    /* one send, checked with a flag */
    struct one_op o = { .ch = ch, .op = OP_SEND, .val = 123 };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    tu_sleep_ms(100);
    ck_assert_msg(!atomic_load(&o.done),
                  "send on a rendezvous channel completed with no receiver");
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
    ck_assert_uint_eq(v, 123);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);

    /* many hand-offs: a send never returns before its element is taken */
    struct rv_arg a = { .ch = ch, .n = (int)tu_scaled(20000, 1000) };
    tu_spawn(&t, rv_sender, &a);
    for (int i = 0; i < a.n; i++) {
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_check(v == (uint64_t)i, "got %llu, want %d", (unsigned long long)v, i);
        atomic_store(&a.received, i + 1);
    }
    tu_join(t);
    tu_assert_threads_ok();
    belt_chan_free(ch);
}
END_TEST

/* recv_timeout on an empty channel gives TIMEOUT after at least the time
 * given (and not absurdly more); 0 behaves as try_recv. */
START_TEST(test_recv_timeout_empty)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 8;
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 0), BELT_EMPTY);
    const int64_t to = 50 * TU_MS;
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, to), BELT_TIMEOUT);
    int64_t el = tu_now_ns() - t0;
    ck_assert_msg(el >= to, "recv_timeout returned after %lld ns, before its %lld ns",
                  (long long)el, (long long)to);
    ck_assert_msg(el < to + 2 * TU_SEC, "recv_timeout took %lld ns", (long long)el);
    ck_assert_uint_eq(v, 8);
    /* a tiny timeout also times out */
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 1), BELT_TIMEOUT);
    if (CAP != 0) {
        v = 9;
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        v = 0;
        ck_assert_rc(belt_chan_recv_timeout(ch, &v, 0), BELT_OK);
        ck_assert_uint_eq(v, 9);
    }
    belt_chan_free(ch);
}
END_TEST

/* recv_timeout returns the element when it arrives in time; a negative
 * timeout waits for as long as it takes (crossbeam's recv_timeout). */
START_TEST(test_recv_timeout_gets_element)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 0;
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 1 * TU_MS), BELT_TIMEOUT);
    pthread_t t;
    struct seq_sender s = { ch, 40, 2, 50 * TU_MS, 0 };
    tu_spawn(&t, seq_sender_thread, &s);
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 30 * TU_SEC), BELT_OK);
    ck_assert_uint_eq(v, 40);
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, -1), BELT_OK);
    ck_assert_uint_eq(v, 41);
    tu_join(t);
    tu_assert_threads_ok();
    belt_chan_free(ch);
}
END_TEST

/* send_timeout on a full channel (or rendezvous with no receiver) times out;
 * 0 gives FULL; with a receiver arriving in time it succeeds; unbounded
 * never times out. */
START_TEST(test_send_timeout)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 3;
    if (CAP == SIZE_MAX) {
        ck_assert_rc(belt_chan_send_timeout(ch, &v, 0), BELT_OK);
        ck_assert_rc(belt_chan_send_timeout(ch, &v, 10 * TU_MS), BELT_OK);
        ck_assert_rc(belt_chan_send_timeout(ch, &v, -1), BELT_OK);
        ck_assert_uint_eq(belt_chan_len(ch), 3);
        belt_chan_free(ch);
        return;
    }
    for (size_t i = 0; i < CAP; i++)
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    ck_assert_rc(belt_chan_send_timeout(ch, &v, 0), BELT_FULL);
    const int64_t to = 50 * TU_MS;
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_chan_send_timeout(ch, &v, to), BELT_TIMEOUT);
    int64_t el = tu_now_ns() - t0;
    ck_assert_msg(el >= to, "send_timeout returned after %lld ns, before %lld ns",
                  (long long)el, (long long)to);
    ck_assert_msg(el < to + 2 * TU_SEC, "send_timeout took %lld ns", (long long)el);
    ck_assert_uint_eq(belt_chan_len(ch), CAP);

    /* a receiver comes after 50 ms: a long send_timeout succeeds */
    struct one_op o = { .ch = ch, .op = OP_SEND_TIMEOUT, .timeout_ns = 30 * TU_SEC,
                        .val = 555 };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    tu_sleep_ms(50);
    for (size_t i = 0; i < CAP; i++) {
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, 3);
    }
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
    ck_assert_uint_eq(v, 555);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);
    belt_chan_free(ch);
}
END_TEST

/* Timed-out operations leave nothing behind: after many timed-out sends on a
 * rendezvous/full channel, a receiver gets nothing stale, and after many
 * timed-out receives a later send is not swallowed. */
START_TEST(test_timeout_leaves_no_trace)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 1;
    for (int i = 0; i < 20; i++)
        ck_assert_rc(belt_chan_recv_timeout(ch, &v, 100 * 1000), BELT_TIMEOUT);
    if (CAP != SIZE_MAX) {
        uint64_t fill = 7;
        for (size_t i = 0; i < CAP; i++)
            ck_assert_rc(belt_chan_send(ch, &fill), BELT_OK);
        for (int i = 0; i < 20; i++) {
            v = 100 + (uint64_t)i;
            ck_assert_rc(belt_chan_send_timeout(ch, &v, 100 * 1000), BELT_TIMEOUT);
        }
        ck_assert_uint_eq(belt_chan_len(ch), CAP);
        for (size_t i = 0; i < CAP; i++) {
            ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
            ck_assert_uint_eq(v, 7);
        }
        ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_EMPTY);
    }
    /* the channel still works both ways */
    struct one_op o = { .ch = ch, .op = OP_RECV };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    v = 8080;
    ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_OK);
    ck_assert_uint_eq(o.val, 8080);
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_EMPTY);
    belt_chan_free(ch);
}
END_TEST

/* close is idempotent, and is_closed reports it. */
START_TEST(test_close_idempotent)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert(!belt_chan_is_closed(ch));
    belt_chan_close(ch);
    ck_assert(belt_chan_is_closed(ch));
    belt_chan_close(ch);
    belt_chan_close(ch);
    ck_assert(belt_chan_is_closed(ch));
    uint64_t v;
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_CLOSED);
    belt_chan_free(ch);
}
END_TEST

/* After close every send variant fails with CLOSED (even on a full channel,
 * CLOSED rather than FULL or TIMEOUT) and nothing is added. */
START_TEST(test_close_then_send_fails)
{
    belt_chan *ch = make_u64(CAP);
    uint64_t v = 1;
    size_t pre = CAP == SIZE_MAX ? 3 : CAP;
    for (size_t i = 0; i < pre; i++)
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    belt_chan_close(ch);
    v = 2;
    ck_assert_rc(belt_chan_send(ch, &v), BELT_CLOSED);
    ck_assert_rc(belt_chan_try_send(ch, &v), BELT_CLOSED);
    ck_assert_rc(belt_chan_send_timeout(ch, &v, 0), BELT_CLOSED);
    ck_assert_rc(belt_chan_send_timeout(ch, &v, 10 * TU_MS), BELT_CLOSED);
    ck_assert_rc(belt_chan_send_timeout(ch, &v, -1), BELT_CLOSED);
    ck_assert_uint_eq(belt_chan_len(ch), pre);
    for (size_t i = 0; i < pre; i++) {
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, 1);
    }
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_CLOSED);
    belt_chan_free(ch);
}
END_TEST

/* Receivers drain buffered elements in order after close, then every
 * receive variant gives CLOSED and leaves `out` untouched. */
START_TEST(test_close_drains_then_closed)
{
    belt_chan *ch = make_u64(CAP);
    size_t n = CAP == SIZE_MAX ? 1000 : CAP;
    for (uint64_t i = 0; i < n; i++)
        ck_assert_rc(belt_chan_send(ch, &i), BELT_OK);
    belt_chan_close(ch);
    ck_assert_uint_eq(belt_chan_len(ch), n);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = UINT64_MAX;
        int rc;
        switch (i % 3) {
        case 0: rc = belt_chan_recv(ch, &v); break;
        case 1: rc = belt_chan_try_recv(ch, &v); break;
        default: rc = belt_chan_recv_timeout(ch, &v, 10 * TU_MS); break;
        }
        ck_assert_rc(rc, BELT_OK);
        ck_assert_uint_eq(v, i);
    }
    uint64_t v = 0xABCD;
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_CLOSED);
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_CLOSED);
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 0), BELT_CLOSED);
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 10 * TU_MS), BELT_CLOSED);
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, -1), BELT_CLOSED);
    ck_assert_uint_eq(v, 0xABCD);
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    belt_chan_free(ch);
}
END_TEST

/* close wakes every thread blocked in recv / recv_timeout on an empty
 * channel (Go's TestChan "close unblocks receive"). */
START_TEST(test_close_wakes_receivers)
{
    belt_chan *ch = make_u64(CAP);
    enum { N = 6 };
    struct one_op o[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct one_op){ .ch = ch, .val = 4444 };
        o[i].op = i % 2 ? OP_RECV_TIMEOUT : OP_RECV;
        /* far beyond the test's limit; one as large as it gets */
        o[i].timeout_ns = i == 1 ? INT64_MAX : 3600 * TU_SEC;
        tu_spawn(&t[i], one_op_thread, &o[i]);
    }
    tu_sleep_ms(50);
    for (int i = 0; i < N; i++)
        ck_assert_msg(!atomic_load(&o[i].done), "receiver %d returned early", i);
    belt_chan_close(ch);
    for (int i = 0; i < N; i++) {
        tu_join(t[i]);
        ck_assert_rc(o[i].rc, BELT_CLOSED);
        ck_assert_uint_eq(o[i].val, 4444);
    }
    belt_chan_free(ch);
}
END_TEST

/* close wakes every thread blocked in send / send_timeout on a full channel
 * (or a rendezvous channel): all get CLOSED and none of their elements gets
 * in; the buffered ones can still be drained. */
START_TEST(test_close_wakes_senders)
{
    if (CAP == SIZE_MAX)
        return;   /* an unbounded send never blocks */
    belt_chan *ch = make_u64(CAP);
    for (uint64_t i = 0; i < CAP; i++)
        ck_assert_rc(belt_chan_send(ch, &i), BELT_OK);
    enum { N = 6 };
    struct one_op o[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct one_op){ .ch = ch, .val = 1000 + (uint64_t)i };
        o[i].op = i % 2 ? OP_SEND_TIMEOUT : OP_SEND;
        o[i].timeout_ns = i == 1 ? INT64_MAX : 3600 * TU_SEC;
        tu_spawn(&t[i], one_op_thread, &o[i]);
    }
    tu_sleep_ms(50);
    for (int i = 0; i < N; i++)
        ck_assert_msg(!atomic_load(&o[i].done), "sender %d returned early", i);
    belt_chan_close(ch);
    for (int i = 0; i < N; i++) {
        tu_join(t[i]);
        ck_assert_rc(o[i].rc, BELT_CLOSED);
    }
    ck_assert_uint_eq(belt_chan_len(ch), CAP);
    for (uint64_t i = 0; i < CAP; i++) {
        uint64_t v;
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, i);
    }
    uint64_t v;
    ck_assert_rc(belt_chan_recv(ch, &v), BELT_CLOSED);
    belt_chan_free(ch);
}
END_TEST

/* Disconnection: registered senders each send K and call sender_done; the
 * last one closes, so a `while (recv == OK)` consumer ends after the last
 * element, having seen them all. */
START_TEST(test_last_sender_done_closes)
{
    belt_chan *ch = make_u64(CAP);
    enum { P = 3 };
    const uint64_t K = (uint64_t)tu_scaled(2000, 100);
    ck_assert_rc(belt_chan_add_senders(ch, P), BELT_OK);
    pthread_t t[P];
    struct seq_sender s[P];
    for (int i = 0; i < P; i++) {
        s[i] = (struct seq_sender){ ch, (uint64_t)i * 1000000, K, 0, 1 };
        tu_spawn(&t[i], seq_sender_thread, &s[i]);
    }
    uint64_t count = 0, v, next[P] = { 0 };
    while (belt_chan_recv(ch, &v) == BELT_OK) {
        uint64_t p = v / 1000000, seq = v % 1000000;
        ck_check(p < P, "bad producer %llu", (unsigned long long)p);
        ck_check(seq == next[p], "producer %llu: got seq %llu, want %llu",
                 (unsigned long long)p, (unsigned long long)seq,
                 (unsigned long long)next[p]);
        next[p]++;
        count++;
    }
    ck_assert_uint_eq(count, P * K);
    ck_assert(belt_chan_is_closed(ch));
    for (int i = 0; i < P; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    /* no sender is registered any more */
    ck_assert_rc(belt_chan_sender_done(ch), BELT_EINVAL);
    belt_chan_free(ch);
}
END_TEST

/* The last sender_done wakes a receiver blocked on an empty channel
 * (crossbeam's disconnect_wakes_receiver). */
START_TEST(test_disconnect_wakes_receiver)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_rc(belt_chan_add_senders(ch, 2), BELT_OK);
    struct one_op o = { .ch = ch, .op = OP_RECV, .val = 6 };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    tu_sleep_ms(50);
    ck_assert_rc(belt_chan_sender_done(ch), BELT_OK);
    ck_assert(!belt_chan_is_closed(ch));
    tu_sleep_ms(20);
    ck_assert_msg(!atomic_load(&o.done), "receiver woke with a sender left");
    ck_assert_rc(belt_chan_sender_done(ch), BELT_OK);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_CLOSED);
    ck_assert_uint_eq(o.val, 6);
    ck_assert(belt_chan_is_closed(ch));
    belt_chan_free(ch);
}
END_TEST

/* The last receiver_done wakes a sender blocked on a full channel with
 * CLOSED (crossbeam's disconnect_wakes_sender); later sends fail too. */
START_TEST(test_disconnect_wakes_sender)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_rc(belt_chan_add_receivers(ch, 1), BELT_OK);
    uint64_t v = 1;
    if (CAP == SIZE_MAX) {
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        ck_assert_rc(belt_chan_receiver_done(ch), BELT_OK);
        ck_assert(belt_chan_is_closed(ch));
        ck_assert_rc(belt_chan_send(ch, &v), BELT_CLOSED);
        belt_chan_free(ch);
        return;
    }
    for (size_t i = 0; i < CAP; i++)
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
    struct one_op o = { .ch = ch, .op = OP_SEND, .val = 2 };
    pthread_t t;
    tu_spawn(&t, one_op_thread, &o);
    tu_sleep_ms(50);
    ck_assert(!atomic_load(&o.done));
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_OK);
    tu_join(t);
    ck_assert_rc(o.rc, BELT_CLOSED);
    ck_assert(belt_chan_is_closed(ch));
    ck_assert_rc(belt_chan_try_send(ch, &v), BELT_CLOSED);
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_EINVAL);
    belt_chan_free(ch);
}
END_TEST

/* Registration bookkeeping: done without registration is EINVAL; the count
 * goes down one by one; registering on a closed channel is CLOSED. */
START_TEST(test_registration_counts)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_rc(belt_chan_sender_done(ch), BELT_EINVAL);
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_EINVAL);
    ck_assert(!belt_chan_is_closed(ch));   /* EINVAL did nothing */

    ck_assert_rc(belt_chan_add_senders(ch, 2), BELT_OK);
    ck_assert_rc(belt_chan_add_senders(ch, 1), BELT_OK);
    ck_assert_rc(belt_chan_add_receivers(ch, 2), BELT_OK);
    ck_assert_rc(belt_chan_sender_done(ch), BELT_OK);
    ck_assert_rc(belt_chan_sender_done(ch), BELT_OK);
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_OK);
    ck_assert(!belt_chan_is_closed(ch));
    ck_assert_rc(belt_chan_sender_done(ch), BELT_OK);   /* the last sender */
    ck_assert(belt_chan_is_closed(ch));
    ck_assert_rc(belt_chan_sender_done(ch), BELT_EINVAL);
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_OK);  /* still registered */
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_EINVAL);
    ck_assert_rc(belt_chan_add_senders(ch, 1), BELT_CLOSED);
    ck_assert_rc(belt_chan_add_receivers(ch, 1), BELT_CLOSED);
    ck_assert_rc(belt_chan_sender_done(ch), BELT_EINVAL);   /* nothing registered */
    belt_chan_free(ch);

    /* the receiver side closes too */
    ch = make_u64(CAP);
    ck_assert_rc(belt_chan_add_receivers(ch, 1), BELT_OK);
    ck_assert_rc(belt_chan_receiver_done(ch), BELT_OK);
    ck_assert(belt_chan_is_closed(ch));
    belt_chan_free(ch);
}
END_TEST

/* ref/free: the channel lives until the last reference is dropped, across
 * threads; ref(NULL) is NULL. */
struct ref_arg {
    belt_chan *ch;   /* the thread owns one reference */
    int n;
};

static void *ref_consumer(void *p)
{
    struct ref_arg *a = p;
    uint64_t v, count = 0;
    while (belt_chan_recv(a->ch, &v) == BELT_OK) {
        TU_CHECK(v == count, "got %llu, want %llu", (unsigned long long)v,
                 (unsigned long long)count);
        count++;
    }
    TU_CHECK(count == (uint64_t)a->n, "received %llu of %d", (unsigned long long)count,
             a->n);
    belt_chan_free(a->ch);
    return NULL;
}

START_TEST(test_ref_free)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_ptr_eq(belt_chan_ref(ch), ch);
    belt_chan_free(ch);             /* one reference left */
    uint64_t v = 1;
    if (CAP != 0) {
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
    }
    ck_assert_uint_eq(belt_chan_elem_size(ch), 8);

    /* hand a reference to a consumer; drop ours while it still runs */
    struct ref_arg a = { belt_chan_ref(ch), (int)tu_scaled(5000, 100) };
    pthread_t t;
    tu_spawn(&t, ref_consumer, &a);
    for (uint64_t i = 0; i < (uint64_t)a.n; i++)
        ck_assert_rc(belt_chan_send(ch, &i), BELT_OK);
    belt_chan_close(ch);
    belt_chan_free(ch);             /* the consumer still holds one */
    tu_join(t);
    tu_assert_threads_ok();

    ck_assert_ptr_null(belt_chan_ref(NULL));
    belt_chan_free(NULL);
}
END_TEST

/* Happens-before: a sender fills a plain (non-atomic) struct and sends a
 * pointer to it; the receiver reads every field.  ThreadSanitizer reports a
 * data race here if send/recv lack release/acquire ordering. */
struct hb_msg {
    int id;
    long fields[15];
    char text[40];
    double d;
};

struct hb_arg {
    belt_chan *ch;
    int producer, n;
};

static void *hb_producer(void *p)
{
    struct hb_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        struct hb_msg *m = malloc(sizeof *m);
        if (!TU_CHECK(m != NULL, "malloc failed"))
            break;
        m->id = a->producer * 1000000 + i;
        for (int k = 0; k < 15; k++)
            m->fields[k] = (long)m->id * 31 + k;
        snprintf(m->text, sizeof m->text, "message %d", m->id);
        m->d = m->id * 0.5;
        if (!TU_CHECK_RC(belt_chan_send(a->ch, &m), BELT_OK)) {
            free(m);
            break;
        }
    }
    TU_CHECK_RC(belt_chan_sender_done(a->ch), BELT_OK);
    return NULL;
}

START_TEST(test_happens_before)
{
    belt_chan *ch = tu_make_chan(CAP, sizeof(struct hb_msg *));
    ck_assert_ptr_nonnull(ch);
    enum { P = 2 };
    const int n = (int)tu_scaled(5000, 200);
    ck_assert_rc(belt_chan_add_senders(ch, P), BELT_OK);
    struct hb_arg a[P];
    pthread_t t[P];
    for (int i = 0; i < P; i++) {
        a[i] = (struct hb_arg){ ch, i, n };
        tu_spawn(&t[i], hb_producer, &a[i]);
    }
    struct hb_msg *m;
    int count = 0, bad = 0;
    while (belt_chan_recv(ch, &m) == BELT_OK) {
        char want[40];
        snprintf(want, sizeof want, "message %d", m->id);
        for (int k = 0; k < 15; k++)
            bad += m->fields[k] != (long)m->id * 31 + k;
        bad += strcmp(m->text, want) != 0;
        bad += m->d != m->id * 0.5;
        free(m);
        count++;
    }
    for (int i = 0; i < P; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(count, P * n);
    belt_chan_free(ch);
}
END_TEST

/* Element sizes 1, 3, 8, 64, 4096 and the maximum round-trip exactly through
 * each flavour; recv writes exactly elem_size bytes. */
static const size_t elem_sizes[] = { 1, 3, 8, 64, 4096, BELT_CHAN_MAX_ELEM };
#define N_ELEM_SIZES ((int)(sizeof elem_sizes / sizeof elem_sizes[0]))

static void fill_pattern(unsigned char *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)((i * 131u + seed * 17u + (i >> 8)) ^ (seed >> 3));
}

struct bytes_sender {
    belt_chan *ch;
    size_t size;
    int n;
};

static void *bytes_sender_thread(void *p)
{
    struct bytes_sender *s = p;
    unsigned char *buf = malloc(s->size);
    if (!TU_CHECK(buf != NULL, "malloc"))
        return NULL; /* cppcheck-suppress memleak ; buf is NULL here */
    for (int i = 0; i < s->n; i++) {
        fill_pattern(buf, s->size, (unsigned)i);
        if (!TU_CHECK_RC(belt_chan_send(s->ch, buf), BELT_OK))
            break;
    }
    free(buf);
    return NULL;
}

START_TEST(test_elem_sizes)
{
    size_t cap = tu_caps[_i % TU_NCAPS];
    size_t size = elem_sizes[_i / TU_NCAPS];
    if (cap == 1024 && size == BELT_CHAN_MAX_ELEM)
        cap = 16;   /* keep the buffer at 1 MiB, not 64 MiB */
    belt_chan *ch = tu_make_chan(cap, size);
    ck_assert_msg(ch != NULL, "%s with elem_size %zu", tu_cap_name(cap), size);
    ck_assert_uint_eq(belt_chan_elem_size(ch), size);
    const int n = 20;
    enum { CANARY = 64 };
    unsigned char *want = malloc(size), *got = malloc(size + CANARY);
    ck_assert(want && got);
    pthread_t t;
    struct bytes_sender s = { ch, size, n };
    tu_spawn(&t, bytes_sender_thread, &s);
    for (int i = 0; i < n; i++) {
        memset(got, 0xEE, size + CANARY);
        ck_assert_rc(belt_chan_recv(ch, got), BELT_OK);
        fill_pattern(want, size, (unsigned)i);
        ck_assert_msg(memcmp(got, want, size) == 0,
                      "element %d of size %zu corrupted (%s)", i, size, tu_cap_name(cap));
        for (int k = 0; k < CANARY; k++)
            ck_assert_msg(got[size + k] == 0xEE, "recv wrote past elem_size %zu", size);
    }
    tu_join(t);
    tu_assert_threads_ok();
    free(want);
    free(got);
    belt_chan_free(ch);
}
END_TEST

/* A channel sent through a channel (crossbeam's channel_through_channel):
 * the receiver of the channel uses it and drops its reference. */
struct ctc_arg {
    belt_chan *meta;   /* carries belt_chan* */
    int n;
};

static void *ctc_thread(void *p)
{
    struct ctc_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        belt_chan *c;
        if (!TU_CHECK_RC(belt_chan_recv(a->meta, &c), BELT_OK))
            return NULL;
        uint64_t v = (uint64_t)i;
        TU_CHECK_RC(belt_chan_send(c, &v), BELT_OK);
        belt_chan_free(c);
    }
    return NULL;
}

START_TEST(test_channel_through_channel)
{
    belt_chan *meta = tu_make_chan(CAP, sizeof(belt_chan *));
    ck_assert_ptr_nonnull(meta);
    struct ctc_arg a = { meta, (int)tu_scaled(1000, 50) };
    pthread_t t;
    tu_spawn(&t, ctc_thread, &a);
    for (int i = 0; i < a.n; i++) {
        belt_chan *c = belt_chan_bounded(i % 2, sizeof(uint64_t));   /* 0 or 1 */
        ck_assert_ptr_nonnull(c);
        belt_chan *r = belt_chan_ref(c);   /* reference handed to the thread */
        ck_assert_rc(belt_chan_send(meta, &r), BELT_OK);
        uint64_t v;
        ck_assert_rc(belt_chan_recv(c, &v), BELT_OK);
        ck_assert_uint_eq(v, (uint64_t)i);
        belt_chan_free(c);
    }
    tu_join(t);
    tu_assert_threads_ok();
    belt_chan_free(meta);
}
END_TEST

/* Go's TestChan: 100 values through a channel with a concurrent sender come
 * out uncorrupted and in order; 4 senders x 1000 values all arrive. */
START_TEST(test_go_chan_counts)
{
    belt_chan *ch = make_u64(CAP);
    pthread_t t[4];
    struct seq_sender s1 = { ch, 0, 100, 0, 0 };
    tu_spawn(&t[0], seq_sender_thread, &s1);
    for (uint64_t i = 0; i < 100; i++) {
        uint64_t v;
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, i);
    }
    tu_join(t[0]);

    struct seq_sender s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (struct seq_sender){ ch, (uint64_t)i * 1000, 1000, 0, 0 };
        tu_spawn(&t[i], seq_sender_thread, &s[i]);
    }
    unsigned char seen[4000] = { 0 };
    for (int i = 0; i < 4000; i++) {
        uint64_t v;
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_check(v < 4000, "value %llu out of range", (unsigned long long)v);
        ck_check(!seen[v], "value %llu received twice", (unsigned long long)v);
        seen[v] = 1;
    }
    for (int i = 0; i < 4; i++)
        tu_join(t[i]);
    tu_assert_threads_ok();
    uint64_t v;
    ck_assert_rc(belt_chan_try_recv(ch, &v), BELT_EMPTY);
    belt_chan_free(ch);
}
END_TEST

/* Freeing a channel that still holds elements discards them without leaking
 * (ASan's leak checker watches; the analogue of crossbeam's `drops`).  Also
 * frees a channel that is closed, and one that was never used. */
START_TEST(test_free_with_buffered)
{
    belt_chan *ch = make_u64(CAP);
    size_t n = CAP == SIZE_MAX ? 100000 : CAP;
    for (uint64_t i = 0; i < n; i++)
        ck_assert_rc(belt_chan_send(ch, &i), BELT_OK);
    /* take a few out so an unbounded channel's head is mid-block */
    for (size_t i = 0; i < n / 3; i++) {
        uint64_t v;
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
    }
    belt_chan_free(ch);

    ch = make_u64(CAP);
    belt_chan_close(ch);
    belt_chan_free(ch);
    belt_chan_free(make_u64(CAP));
}
END_TEST

/* =================================================================== errors */

/* Every function with a NULL channel: EINVAL, 0, NULL or a no-op. */
START_TEST(test_null_channel)
{
    uint64_t v = 0;
    ck_assert_rc(belt_chan_send(NULL, &v), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv(NULL, &v), BELT_EINVAL);
    ck_assert_rc(belt_chan_try_send(NULL, &v), BELT_EINVAL);
    ck_assert_rc(belt_chan_try_recv(NULL, &v), BELT_EINVAL);
    ck_assert_rc(belt_chan_send_timeout(NULL, &v, 0), BELT_EINVAL);
    ck_assert_rc(belt_chan_send_timeout(NULL, &v, 1000), BELT_EINVAL);
    ck_assert_rc(belt_chan_send_timeout(NULL, &v, -1), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv_timeout(NULL, &v, 0), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv_timeout(NULL, &v, 1000), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv_timeout(NULL, &v, -1), BELT_EINVAL);
    ck_assert_rc(belt_chan_add_senders(NULL, 1), BELT_EINVAL);
    ck_assert_rc(belt_chan_add_receivers(NULL, 1), BELT_EINVAL);
    ck_assert_rc(belt_chan_sender_done(NULL), BELT_EINVAL);
    ck_assert_rc(belt_chan_receiver_done(NULL), BELT_EINVAL);
    ck_assert_uint_eq(belt_chan_len(NULL), 0);
    ck_assert_uint_eq(belt_chan_capacity(NULL), 0);
    ck_assert_uint_eq(belt_chan_elem_size(NULL), 0);
    ck_assert_ptr_null(belt_chan_ref(NULL));
    belt_chan_close(NULL);
    belt_chan_free(NULL);
    /* NULL elem and NULL channel together: still EINVAL */
    ck_assert_rc(belt_chan_send(NULL, NULL), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv(NULL, NULL), BELT_EINVAL);
}
END_TEST

/* NULL element pointers: EINVAL from every send/recv variant, nothing
 * happens (per flavour, on an open channel). */
START_TEST(test_null_elem)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_rc(belt_chan_send(ch, NULL), BELT_EINVAL);
    ck_assert_rc(belt_chan_try_send(ch, NULL), BELT_EINVAL);
    ck_assert_rc(belt_chan_send_timeout(ch, NULL, 0), BELT_EINVAL);
    ck_assert_rc(belt_chan_send_timeout(ch, NULL, 1000), BELT_EINVAL);
    ck_assert_rc(belt_chan_send_timeout(ch, NULL, -1), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv(ch, NULL), BELT_EINVAL);
    ck_assert_rc(belt_chan_try_recv(ch, NULL), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv_timeout(ch, NULL, 0), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv_timeout(ch, NULL, 1000), BELT_EINVAL);
    ck_assert_rc(belt_chan_recv_timeout(ch, NULL, -1), BELT_EINVAL);
    ck_assert_uint_eq(belt_chan_len(ch), 0);
    ck_assert(!belt_chan_is_closed(ch));
    /* with an element buffered, a NULL recv must not consume it */
    if (CAP != 0) {
        uint64_t v = 12;
        ck_assert_rc(belt_chan_send(ch, &v), BELT_OK);
        ck_assert_rc(belt_chan_recv(ch, NULL), BELT_EINVAL);
        ck_assert_rc(belt_chan_try_recv(ch, NULL), BELT_EINVAL);
        ck_assert_uint_eq(belt_chan_len(ch), 1);
        v = 0;
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
        ck_assert_uint_eq(v, 12);
    }
    belt_chan_free(ch);
}
END_TEST

/* elem_size 0 or above BELT_CHAN_MAX_ELEM: NULL, for every flavour. */
START_TEST(test_bad_elem_size)
{
    const size_t bad[] = { 0, BELT_CHAN_MAX_ELEM + 1, BELT_CHAN_MAX_ELEM * 2, SIZE_MAX };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_ptr_null(belt_chan_unbounded(bad[i]));
        ck_assert_ptr_null(belt_chan_bounded(0, bad[i]));
        ck_assert_ptr_null(belt_chan_bounded(1, bad[i]));
        ck_assert_ptr_null(belt_chan_bounded(16, bad[i]));
    }
}
END_TEST

/* capacity * elem_size overflowing size_t: NULL. */
START_TEST(test_capacity_overflow)
{
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX, 1 + 1));
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX, 8));
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX / 2 + 1, 2));
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX / 64 + 1, 64));
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX / 4096 + 1, 4096));
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX / BELT_CHAN_MAX_ELEM + 1, BELT_CHAN_MAX_ELEM));
    ck_assert_ptr_null(belt_chan_bounded(((size_t)1 << 62) + 1, 4));
}
END_TEST

/* A product that fits size_t but cannot be allocated gives NULL (out of
 * memory) rather than crashing.  Skipped in sanitizer builds: ASan and TSan
 * abort on a huge allocation by default (allocator_may_return_null=0), which
 * says nothing about the library. */
START_TEST(test_capacity_too_big_for_memory)
{
#ifdef TU_SANITIZED
    return;
#else
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX / 8 - 1024, 8));
    ck_assert_ptr_null(belt_chan_bounded(SIZE_MAX / 16 / BELT_CHAN_MAX_ELEM, BELT_CHAN_MAX_ELEM));
#endif
}
END_TEST

/* belt_strerror / belt_err_name for every code in the X-macro list, and for
 * unknown codes. */
START_TEST(test_error_strings)
{
    struct { int code; const char *name, *msg; } all[] = {
#define XX(name, value, msg) { BELT_##name, #name, msg },
        BELT_ERRNO_MAP(XX)
#undef XX
    };
    size_t n = sizeof all / sizeof all[0];
    ck_assert_uint_ge(n, 7);
    for (size_t i = 0; i < n; i++) {
        const char *m = belt_strerror(all[i].code);
        const char *nm = belt_err_name(all[i].code);
        ck_assert_ptr_nonnull(m);
        ck_assert_ptr_nonnull(nm);
        ck_assert_str_eq(m, all[i].msg);
        ck_assert_str_eq(nm, all[i].name);
        ck_assert_str_ne(m, "unknown error");
        ck_assert_str_ne(nm, "UNKNOWN");
        ck_assert_uint_gt(strlen(m), 0);
        ck_assert_int_le(all[i].code, 0);
        for (size_t j = 0; j < i; j++) {
            ck_assert_int_ne(all[i].code, all[j].code);
            ck_assert_str_ne(belt_strerror(all[j].code), m);
            ck_assert_str_ne(belt_err_name(all[j].code), nm);
        }
    }
    /* the codes the channel API uses, by hand */
    ck_assert_int_eq(BELT_OK, 0);
    ck_assert_str_eq(belt_err_name(BELT_CLOSED), "CLOSED");
    ck_assert_str_eq(belt_err_name(BELT_EMPTY), "EMPTY");
    ck_assert_str_eq(belt_err_name(BELT_FULL), "FULL");
    ck_assert_str_eq(belt_err_name(BELT_TIMEOUT), "TIMEOUT");
    ck_assert_str_eq(belt_err_name(BELT_EINVAL), "EINVAL");
    ck_assert_str_eq(belt_err_name(BELT_ENOMEM), "ENOMEM");
    ck_assert_str_eq(belt_strerror(BELT_CLOSED), "channel closed");
    const int unknown[] = { 1, 7, -14, -1000, 12345, INT_MIN, INT_MAX };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int known = 0;
        for (size_t j = 0; j < n; j++)
            known |= all[j].code == unknown[i];
        if (known)
            continue;
        ck_assert_str_eq(belt_strerror(unknown[i]), "unknown error");
        ck_assert_str_eq(belt_err_name(unknown[i]), "UNKNOWN");
    }
}
END_TEST

/* =================================================================== limits */

/* The largest element size works for every flavour, and one byte more is
 * refused (covered in errors). */
START_TEST(test_max_elem_size)
{
    size_t cap = tu_caps[_i] == 1024 ? 8 : tu_caps[_i];
    belt_chan *ch = tu_make_chan(cap, BELT_CHAN_MAX_ELEM);
    ck_assert_ptr_nonnull(ch);
    unsigned char *a = malloc(BELT_CHAN_MAX_ELEM), *b = malloc(BELT_CHAN_MAX_ELEM);
    ck_assert(a && b);
    fill_pattern(a, BELT_CHAN_MAX_ELEM, 99);
    if (cap == 0) {
        ck_assert_rc(belt_chan_try_send(ch, a), BELT_FULL);
    } else {
        size_t n = cap == SIZE_MAX ? 40 : cap;   /* 40 x 64 KiB unbounded */
        for (size_t i = 0; i < n; i++) {
            fill_pattern(a, BELT_CHAN_MAX_ELEM, (unsigned)i);
            ck_assert_rc(belt_chan_send(ch, a), BELT_OK);
        }
        for (size_t i = 0; i < n; i++) {
            ck_assert_rc(belt_chan_recv(ch, b), BELT_OK);
            fill_pattern(a, BELT_CHAN_MAX_ELEM, (unsigned)i);
            ck_assert(memcmp(a, b, BELT_CHAN_MAX_ELEM) == 0);
        }
    }
    free(a);
    free(b);
    belt_chan_free(ch);
}
END_TEST

/* A large bounded channel fills to exactly its capacity. */
START_TEST(test_large_capacity)
{
    const size_t cap = 100000;
    belt_chan *ch = belt_chan_bounded(cap, sizeof(uint32_t));
    ck_assert_ptr_nonnull(ch);
    ck_assert_uint_eq(belt_chan_capacity(ch), cap);
    for (uint32_t i = 0; i < cap; i++)
        ck_assert_rc(belt_chan_try_send(ch, &i), BELT_OK);
    uint32_t x = 0;
    ck_assert_rc(belt_chan_try_send(ch, &x), BELT_FULL);
    ck_assert_uint_eq(belt_chan_len(ch), cap);
    for (uint32_t i = 0; i < cap; i++) {
        ck_assert_rc(belt_chan_try_recv(ch, &x), BELT_OK);
        ck_check(x == i, "got %u, want %u", x, i);
    }
    ck_assert_rc(belt_chan_try_recv(ch, &x), BELT_EMPTY);
    belt_chan_free(ch);
}
END_TEST

/* A thread blocked for ~1 s uses well under 10 ms of CPU: blocked threads
 * park instead of spinning.  Measured inside each blocked thread with
 * CLOCK_THREAD_CPUTIME_ID.  Five threads block at once: recv on an empty
 * rendezvous / bounded / unbounded channel, send on a full bounded channel,
 * send on a rendezvous channel.  The bound is 50 ms in sanitizer builds,
 * where every atomic and futex call in the short spin phase before parking
 * is instrumented and several times slower. */
struct cpu_arg {
    belt_chan *ch;
    int send;
    int rc;
    int64_t cpu_ns, wall_ns;
};

static void *cpu_thread(void *p)
{
    struct cpu_arg *a = p;
    uint64_t v = 1;
    int64_t c0 = tu_thread_cpu_ns(), w0 = tu_now_ns();
    a->rc = a->send ? belt_chan_send(a->ch, &v) : belt_chan_recv(a->ch, &v);
    a->cpu_ns = tu_thread_cpu_ns() - c0;
    a->wall_ns = tu_now_ns() - w0;
    return NULL;
}

START_TEST(test_blocked_thread_burns_no_cpu)
{
    enum { N = 5 };
    struct cpu_arg a[N] = {
        { .ch = make_u64(0), .send = 0 },
        { .ch = make_u64(4), .send = 0 },
        { .ch = make_u64(SIZE_MAX), .send = 0 },
        { .ch = make_u64(2), .send = 1 },
        { .ch = make_u64(0), .send = 1 },
    };
    uint64_t v = 0;
    ck_assert_rc(belt_chan_send(a[3].ch, &v), BELT_OK);
    ck_assert_rc(belt_chan_send(a[3].ch, &v), BELT_OK);
    pthread_t t[N];
    for (int i = 0; i < N; i++)
        tu_spawn(&t[i], cpu_thread, &a[i]);
    tu_sleep_ms(1000);
    for (int i = 0; i < N; i++) {
        if (a[i].send)
            ck_assert_rc(belt_chan_recv(a[i].ch, &v), BELT_OK);
        else
            ck_assert_rc(belt_chan_send(a[i].ch, &v), BELT_OK);
    }
    const int64_t bound = (tu_sanitized() ? 50 : 10) * TU_MS;
    for (int i = 0; i < N; i++) {
        tu_join(t[i]);
        ck_assert_rc(a[i].rc, BELT_OK);
        ck_assert_msg(a[i].wall_ns >= 500 * TU_MS, "thread %d did not block", i);
        ck_assert_msg(a[i].cpu_ns < bound,
                      "thread %d (%s in %s) blocked %lld ms but used %lld us of CPU",
                      i, a[i].send ? "send" : "recv",
                      tu_cap_name(belt_chan_capacity(a[i].ch) == BELT_CHAN_UNBOUNDED
                                      ? SIZE_MAX : belt_chan_capacity(a[i].ch)),
                      (long long)(a[i].wall_ns / TU_MS), (long long)(a[i].cpu_ns / 1000));
        belt_chan_free(a[i].ch);
    }
}
END_TEST

/* The same with a timed wait: a thread in recv_timeout(1 s) parks too. */
START_TEST(test_timed_wait_burns_no_cpu)
{
    belt_chan *ch = make_u64(4);
    int64_t c0 = tu_thread_cpu_ns();
    uint64_t v;
    ck_assert_rc(belt_chan_recv_timeout(ch, &v, 1 * TU_SEC), BELT_TIMEOUT);
    int64_t cpu = tu_thread_cpu_ns() - c0;
    const int64_t bound = (tu_sanitized() ? 50 : 10) * TU_MS;
    ck_assert_msg(cpu < bound, "recv_timeout(1 s) used %lld us of CPU",
                  (long long)(cpu / 1000));
    belt_chan_free(ch);
}
END_TEST

/* An unbounded channel gives its memory back as it drains: push 10 million
 * 8-byte elements (80 MB of payload), pop them all, and the resident set
 * returns to within 16 MiB of where it was before the fill, while the peak
 * was far above it.  Done in the test's own thread so every block comes from
 * and goes back to one malloc arena.  Skipped in sanitizer builds: ASan keeps
 * freed memory in a quarantine (256 MiB by default) and the sanitizer
 * allocators return pages to the OS lazily, so RSS says nothing there. */
START_TEST(test_unbounded_gives_memory_back)
{
#ifdef TU_SANITIZED
    return;
#else
    const uint64_t n = (uint64_t)tu_scaled(10000000, 2000000);
    belt_chan *ch = make_u64(SIZE_MAX);
    /* warm up: one small round so first-use allocations are counted in
     * the baseline */
    for (uint64_t i = 0; i < 1000; i++)
        ck_assert_rc(belt_chan_send(ch, &i), BELT_OK);
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t v;
        ck_assert_rc(belt_chan_recv(ch, &v), BELT_OK);
    }
    size_t rss0 = tu_rss_bytes();
    ck_assert_uint_gt(rss0, 0);
    for (uint64_t i = 0; i < n; i++)
        if (belt_chan_send(ch, &i) != BELT_OK)
            ck_abort_msg("send %llu failed", (unsigned long long)i);
    ck_assert_uint_eq(belt_chan_len(ch), n);
    size_t peak = tu_rss_bytes();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v;
        if (belt_chan_recv(ch, &v) != BELT_OK || v != i)
            ck_abort_msg("recv %llu failed or out of order", (unsigned long long)i);
    }
    size_t rss1 = tu_rss_bytes();
    const size_t MiB = 1024 * 1024;
    ck_assert_msg(peak > rss0 + n * 8 / 2,
                  "peak RSS %zu MiB not above start %zu MiB by half the payload",
                  peak / MiB, rss0 / MiB);
    ck_assert_msg(rss1 <= rss0 + 16 * MiB,
                  "after draining, RSS is %zu MiB; %zu MiB before the fill, peak %zu MiB",
                  rss1 / MiB, rss0 / MiB, peak / MiB);
    belt_chan_free(ch);
#endif
}
END_TEST

/* Out of memory: with the address space limited (RLIMIT_AS, in this forked
 * test process only), an unbounded channel's send fails with BELT_ENOMEM
 * instead of crashing, the caller keeps its element, everything sent before
 * is still received in order, and creating a channel too big to allocate
 * gives NULL.  Skipped in sanitizer builds, whose runtimes reserve terabytes
 * of address space for shadow memory, and when the limit cannot be set. */
START_TEST(test_unbounded_enomem)
{
#ifdef TU_SANITIZED
    return;
#else
    struct rlimit old;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    size_t vsz = 0;
    {
        char buf[128];
        int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        unsigned long pages = 0;
        ck_assert_int_eq(sscanf(buf, "%lu", &pages), 1);
        vsz = (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
    }
    belt_chan *ch = belt_chan_unbounded(4096);
    ck_assert_ptr_nonnull(ch);
    unsigned char *elem = malloc(4096), *out = malloc(4096);
    ck_assert(elem && out);
    struct rlimit lim = old;
    lim.rlim_cur = vsz + 64 * 1024 * 1024;
    if ((old.rlim_max != RLIM_INFINITY && lim.rlim_cur > old.rlim_max) ||
        setrlimit(RLIMIT_AS, &lim) != 0) {
        /* Cannot lower the limit usefully here: nothing to test. */
        free(elem);
        free(out);
        belt_chan_free(ch);
        return;
    }
    ck_assert_ptr_null(belt_chan_bounded(1024 * 1024, 4096));   /* 4 GiB */
    ck_assert_ptr_null(belt_chan_bounded(128 * 1024 * 1024, 8)); /* 1 GiB */
    long sent = 0;
    int rc = BELT_OK;
    while (sent < 1000000) {
        memset(elem, (int)(sent & 0xFF), 4096);
        rc = belt_chan_send(ch, elem);
        if (rc != BELT_OK)
            break;
        sent++;
    }
    ck_assert_rc(rc, BELT_ENOMEM);
    ck_assert_int_gt(sent, 100);
    ck_assert_uint_eq(belt_chan_len(ch), (size_t)sent);
    ck_assert_rc(belt_chan_try_send(ch, elem), BELT_ENOMEM);
    ck_assert_rc(belt_chan_send_timeout(ch, elem, 1000), BELT_ENOMEM);
    /* everything sent comes out intact; after draining, sends work again */
    for (long i = 0; i < sent; i++) {
        ck_assert_rc(belt_chan_recv(ch, out), BELT_OK);
        ck_check(out[0] == (unsigned char)(i & 0xFF) && out[4095] == out[0],
                 "element %ld corrupted", i);
    }
    ck_assert_rc(belt_chan_try_recv(ch, out), BELT_EMPTY);
    ck_assert_rc(belt_chan_send(ch, elem), BELT_OK);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    free(elem);
    free(out);
    belt_chan_free(ch);
#endif
}
END_TEST

/* ==================================================================== main */

static void setup(void)
{
    tu_reset_failures();
}

/* ---- batches: recv_many / send_many ---------------------------------- */

struct many_sender {
    belt_chan *ch;
    uint64_t n;
};

static void *many_sender_thread(void *arg)
{
    struct many_sender *m = arg;
    uint64_t buf[37];
    uint64_t next = 0;
    while (next < m->n) {
        size_t k = 0;
        while (k < 37 && next < m->n)
            buf[k++] = next++;
        size_t sent = 0;
        TU_CHECK_RC(belt_chan_send_many(m->ch, buf, k, &sent), BELT_OK);
        TU_CHECK(sent == k, "sent %zu of %zu", sent, k);
    }
    belt_chan_sender_done(m->ch);
    return NULL;
}

/* Every flavour: a batch sender and a batch receiver move 20,000 elements in
 * order, none lost or duplicated, and recv_many never returns more than
 * asked; then recv_many on the closed, drained channel gives CLOSED. */
START_TEST(test_many_roundtrip)
{
    belt_chan *ch = make_u64(CAP);
    ck_assert_rc(belt_chan_add_senders(ch, 1), BELT_OK);
    struct many_sender m = { ch, 20000 };
    pthread_t t;
    tu_spawn(&t, many_sender_thread, &m);
    uint64_t expect = 0, out[16];
    for (;;) {
        int got = belt_chan_recv_many(ch, out, 16, -1);
        if (got == BELT_CLOSED)
            break;
        ck_assert_int_ge(got, 1);
        ck_assert_int_le(got, 16);
        for (int i = 0; i < got; i++)
            ck_assert_uint_eq(out[i], expect++);
    }
    tu_join(t);
    tu_assert_threads_ok();
    ck_assert_uint_eq(expect, 20000);
    ck_assert_int_eq(belt_chan_recv_many(ch, out, 16, 0), BELT_CLOSED);
    belt_chan_free(ch);
}
END_TEST

/* recv_many takes what is buffered, at most max, without waiting for more;
 * with timeout 0 on an empty channel it is EMPTY; bad arguments EINVAL;
 * send_many on a closed channel reports how many went through (none). */
START_TEST(test_many_limits)
{
    belt_chan *ch = belt_chan_bounded(8, sizeof(uint64_t));
    ck_assert_ptr_nonnull(ch);
    uint64_t in[5] = {1, 2, 3, 4, 5}, out[8] = {0};
    size_t sent = 99;
    ck_assert_rc(belt_chan_send_many(ch, in, 5, &sent), BELT_OK);
    ck_assert_uint_eq(sent, 5);
    ck_assert_int_eq(belt_chan_recv_many(ch, out, 3, -1), 3);
    ck_assert_uint_eq(out[0], 1);
    ck_assert_uint_eq(out[2], 3);
    ck_assert_int_eq(belt_chan_recv_many(ch, out, 8, 0), 2);
    ck_assert_uint_eq(out[1], 5);
    ck_assert_int_eq(belt_chan_recv_many(ch, out, 8, 0), BELT_EMPTY);
    ck_assert_int_eq(belt_chan_recv_many(ch, out, 8, 1000000), BELT_TIMEOUT);
    ck_assert_int_eq(belt_chan_recv_many(ch, out, 0, 0), BELT_EINVAL);
    ck_assert_int_eq(belt_chan_recv_many(NULL, out, 1, 0), BELT_EINVAL);
    ck_assert_int_eq(belt_chan_send_many(NULL, in, 1, &sent), BELT_EINVAL);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(belt_chan_send_many(ch, in, 0, &sent), BELT_OK);
    belt_chan_close(ch);
    ck_assert_int_eq(belt_chan_send_many(ch, in, 5, &sent), BELT_CLOSED);
    ck_assert_uint_eq(sent, 0);
    belt_chan_free(ch);
}
END_TEST

static Suite *chan_suite(void)
{
    Suite *s = suite_create("chan");

    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_loop_test(tc, test_fifo, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_many_roundtrip, 0, TU_NCAPS);
    tcase_add_test(tc, test_many_limits);
    tcase_add_loop_test(tc, test_len_capacity, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_try_recv, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_try_send, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_recv_blocks_on_empty, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_send_blocks_on_full, 0, TU_NCAPS);
    tcase_add_test(tc, test_rendezvous_handoff);
    tcase_add_loop_test(tc, test_recv_timeout_empty, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_recv_timeout_gets_element, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_send_timeout, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_timeout_leaves_no_trace, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_close_idempotent, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_close_then_send_fails, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_close_drains_then_closed, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_close_wakes_receivers, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_close_wakes_senders, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_last_sender_done_closes, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_disconnect_wakes_receiver, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_disconnect_wakes_sender, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_registration_counts, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_ref_free, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_happens_before, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_elem_sizes, 0, TU_NCAPS * N_ELEM_SIZES);
    tcase_add_loop_test(tc, test_channel_through_channel, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_go_chan_counts, 0, TU_NCAPS);
    tcase_add_loop_test(tc, test_free_with_buffered, 0, TU_NCAPS);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_test(tc, test_null_channel);
    tcase_add_loop_test(tc, test_null_elem, 0, TU_NCAPS);
    tcase_add_test(tc, test_bad_elem_size);
    tcase_add_test(tc, test_capacity_overflow);
    tcase_add_test(tc, test_capacity_too_big_for_memory);
    tcase_add_test(tc, test_error_strings);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_loop_test(tc, test_max_elem_size, 0, TU_NCAPS);
    tcase_add_test(tc, test_large_capacity);
    tcase_add_test(tc, test_blocked_thread_burns_no_cpu);
    tcase_add_test(tc, test_timed_wait_burns_no_cpu);
    tcase_add_test(tc, test_unbounded_gives_memory_back);
    tcase_add_test(tc, test_unbounded_enomem);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chan_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
