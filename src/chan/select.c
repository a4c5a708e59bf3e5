/* chan/select.c: belt_select(), waiting on several send and receive
 * operations at once and completing exactly one.
 *
 * Algorithm (crossbeam-channel's select with Go's random polling order):
 *   1. Poll: visit the ops in a random order; lock each channel in turn and
 *      try the op without blocking.  The first that completes (a closed
 *      channel counts: it completes with BELT_CLOSED) is the result.  The
 *      random order is what makes select fair: no arm starves.
 *   2. If none was ready and the caller allows waiting: link one entry per
 *      op, all pointing at one waiter, into the channels' queues, again in
 *      random order and one lock at a time.  Under each lock, check first
 *      whether the op became ready since step 1; if so, stop registering and
 *      try to abort our own waiter: if that works, unlink everything and go
 *      back to 1; if it fails, a counterpart has already claimed us.
 *   3. Park until a counterpart claims and completes one entry, or the
 *      deadline passes (then abort; if the abort fails we were claimed at the
 *      last moment and wait for the hand-off to finish).
 *   4. Unlink the entries that are still linked, one lock at a time.
 * The claim CAS on the single waiter (chan/park.h) is what guarantees that
 * exactly one op completes even though other threads may find our entries in
 * several queues at once.  A thread never holds two channel locks, so there is
 * no lock ordering (unlike Go, which locks all channels of a select at once).
 *
 * A send and a receive on the same rendezvous channel in one select must not
 * pair with each other: in step 1 our own entries are not linked yet, and in
 * step 2 belt__queue_has_live() ignores entries of our own waiter.  A
 * counterpart that unlinks one of our entries while we still register cannot
 * be ourselves, because we only claim others' entries in step 1.
 *
 * Randomness comes from a per-thread xorshift generator: thread-local, so no
 * state is shared between threads or between the channels of different
 * owners.
 */
#include "chan/internal.h"
#include "util/rng.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define BELT__SELECT_STACK 16 /* ops handled without malloc */

belt_op belt_op_send(belt_chan *ch, const void *elem)
{
    belt_op op = {.chan = ch, .elem = (void *)elem, .kind = BELT_OP_SEND,
                  .status = BELT_OK};
    return op;
}

belt_op belt_op_recv(belt_chan *ch, void *out)
{
    belt_op op = {.chan = ch, .elem = out, .kind = BELT_OP_RECV,
                  .status = BELT_OK};
    return op;
}

/* The calling thread's generator for select's random start (util/rng.h),
 * seeded on first use from its own address and the clock. */
static uint64_t rand_next(void)
{
    static _Thread_local belt__rng rng;
    if (rng.s == 0)
        belt__rng_seed(&rng, (uint64_t)(uintptr_t)&rng ^
                                 (uint64_t)belt__now_mono());
    return belt__rng_next(&rng);
}

/* Fills order with a random permutation of 0..n-1 (Fisher-Yates). */
static void shuffle(size_t *order, size_t n)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rand_next() % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* Tries op without blocking.  Returns 1 if it completed (op->status set),
 * 0 if not ready, or BELT_ENOMEM. */
static int try_op(belt_op *op)
{
    belt_chan *ch = op->chan;
    belt__handoff h;
    belt__lock(ch);
    int rc = op->kind == BELT_OP_SEND ? belt__try_send_locked(ch, op->elem, &h)
                                      : belt__try_recv_locked(ch, op->elem, &h);
    belt__unlock(ch);
    belt__handoff_finish(ch, &h);
    if (rc == BELT_FULL || rc == BELT_EMPTY)
        return 0;
    if (rc == BELT_ENOMEM)
        return BELT_ENOMEM;
    op->status = rc;
    return 1;
}

/* Under ch's lock: could op complete now, not counting our own entries? */
static bool ready_locked(const belt_op *op, const belt__waiter *self)
{
    belt_chan *ch = op->chan;
    if (atomic_load_explicit(&ch->closed, memory_order_relaxed))
        return true;
    if (op->kind == BELT_OP_SEND)
        return !belt__chbuf_full(ch) || belt__queue_has_live(&ch->recvq, self);
    return atomic_load_explicit(&ch->count, memory_order_relaxed) > 0 ||
           belt__queue_has_live(&ch->sendq, self);
}

static belt__queue *queue_of(const belt_op *op)
{
    return op->kind == BELT_OP_SEND ? &op->chan->sendq : &op->chan->recvq;
}

/* Unlinks our entries that are still linked. */
static void unregister(belt_op *ops, belt__entry *entries, const size_t *order,
                       size_t registered)
{
    for (size_t k = 0; k < registered; k++) {
        size_t i = order[k];
        belt_chan *ch = ops[i].chan;
        if (!ch)
            continue;
        belt__lock(ch);
        if (entries[i].linked)
            belt__queue_unlink(queue_of(&ops[i]), &entries[i]);
        belt__unlock(ch);
    }
}

static int validate(const belt_op *ops, size_t n, int64_t timeout_ns)
{
    if (n > 0 && !ops)
        return BELT_EINVAL;
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        live += ops[i].chan != NULL;
        if (ops[i].kind != BELT_OP_SEND && ops[i].kind != BELT_OP_RECV)
            return BELT_EINVAL;
        if (ops[i].chan && !ops[i].elem)
            return BELT_EINVAL;
    }
    /* Nothing could ever complete: waiting forever would be a deadlock. */
    if (live == 0 && timeout_ns < 0)
        return BELT_EINVAL;
    return BELT_OK;
}

/* Sleeps until the deadline: select over no ready-able op. */
static void sleep_until(const struct timespec *deadline)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, deadline, NULL) ==
           EINTR)
        ;
}

static int select_wait(belt_op *ops, size_t n, int64_t timeout_ns,
                       size_t *order, belt__entry *entries)
{
    struct timespec ts, *deadline = NULL;
    if (timeout_ns > 0) {
        belt__deadline(&ts, timeout_ns);
        deadline = &ts;
    }
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        live += ops[i].chan != NULL;

    for (;;) {
        /* 1. Poll in random order. */
        shuffle(order, n);
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            if (!ops[i].chan)
                continue;
            int rc = try_op(&ops[i]);
            if (rc < 0)
                return rc;
            if (rc == 1)
                return (int)i;
        }
        if (timeout_ns == 0 || (deadline && belt__deadline_passed(deadline)))
            return BELT_TIMEOUT;
        if (live == 0) {
            /* Only nil arms (validate() ensured a deadline). */
            sleep_until(deadline);
            return BELT_TIMEOUT;
        }

        /* 2. Register, watching for an op that became ready meanwhile. */
        belt__waiter w;
        belt__waiter_init(&w);
        size_t registered = 0;
        bool raced = false;
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            belt_chan *ch = ops[i].chan;
            if (!ch) {
                registered++;
                continue;
            }
            belt__entry *e = &entries[i];
            e->w = &w;
            e->elem = ops[i].elem;
            e->index = i;
            e->linked = false;
            belt__lock(ch);
            if (ready_locked(&ops[i], &w)) {
                belt__unlock(ch);
                raced = true;
                break;
            }
            belt__queue_push(queue_of(&ops[i]), e);
            belt__unlock(ch);
            registered++;
        }

        /* 3. Wait (or resolve the race). */
        bool completed;
        if (raced)
            completed = !belt__waiter_abort(&w);
        else
            completed = belt__waiter_park(&w, deadline) || !belt__waiter_abort(&w);
        if (completed)
            belt__waiter_park(&w, NULL); /* returns at once if already done */

        /* 4. Unlink what is still linked. */
        unregister(ops, entries, order, registered);
        if (completed) {
            ops[w.index].status = w.status;
            return (int)w.index;
        }
        if (!raced)
            return BELT_TIMEOUT;
        /* raced and aborted: poll again. */
    }
}

int belt_select(belt_op *ops, size_t n, int64_t timeout_ns)
{
    int rc = validate(ops, n, timeout_ns);
    if (rc != BELT_OK)
        return rc;
    if (n == 0) {
        if (timeout_ns > 0) {
            struct timespec ts;
            belt__deadline(&ts, timeout_ns);
            sleep_until(&ts);
        }
        return BELT_TIMEOUT;
    }
    if (n > (size_t)INT32_MAX)
        return BELT_EINVAL;
    size_t order_buf[BELT__SELECT_STACK];
    belt__entry entry_buf[BELT__SELECT_STACK];
    size_t *order = order_buf;
    belt__entry *entries = entry_buf;
    if (n > BELT__SELECT_STACK) {
        order = malloc(n * sizeof *order);
        entries = malloc(n * sizeof *entries);
        if (!order || !entries) {
            free(order);
            free(entries);
            return BELT_ENOMEM;
        }
    }
    rc = select_wait(ops, n, timeout_ns, order, entries);
    if (order != order_buf) {
        free(order);
        free(entries);
    }
    return rc;
}
