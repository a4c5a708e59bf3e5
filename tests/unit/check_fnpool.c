/* check_fnpool.c: tests of function pools (include/belt/pool.h:
 * belt_pool_create_fn, belt_pool_send, belt_pool_send_many).
 *
 * Every policy computes i*i for N jobs and the sum of the results must be
 * exact (a lost, duplicated or corrupted job changes it); job values of 1
 * byte to 4 KiB are checked byte for byte in fn; cancel with a deep queue
 * must return without running the queue; many producers feed a reply
 * channel of capacity 1.  Coordination in tests is by channels and
 * condition variables, never by sleeping.
 */
#include "test_util.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "belt/chan.h"
#include "belt/pool.h"
#include "pool/internal.h" /* the cancel token, for test_cancel_deep_queue */

static const char *const all_policies[] = {
    "shared", "round-robin", "random", "least-loaded", "power-of-two",
    "power-of-d", "join-idle-queue", "work-stealing",
};
#define N_POLICIES ((int)(sizeof all_policies / sizeof all_policies[0]))

typedef struct {
    unsigned workers;
    _Atomic uint64_t calls;
    _Atomic int bad_worker;
} sq_ctx;

static void square(void *ctx, const void *job, void *result, unsigned worker)
{
    sq_ctx *c = ctx;
    uint64_t x;
    memcpy(&x, job, sizeof x);
    if (worker >= c->workers)
        atomic_store(&c->bad_worker, 1);
    atomic_fetch_add_explicit(&c->calls, 1, memory_order_relaxed);
    if (result != NULL) {
        uint64_t y = x * x;
        memcpy(result, &y, sizeof y);
    }
}

static uint64_t sum_squares(uint64_t n)
{
    uint64_t s = 0;
    for (uint64_t i = 1; i <= n; i++)
        s += i * i;
    return s;
}

typedef struct {
    belt_pool *p;
    uint64_t from, to; /* inclusive */
    size_t batch;      /* 0: belt_pool_send per job */
    int rc;
} producer;

static void *produce(void *arg)
{
    producer *pr = arg;
    uint64_t buf[256];
    size_t k = 0;
    pr->rc = BELT_OK;
    for (uint64_t i = pr->from; i <= pr->to; i++) {
        if (pr->batch == 0) {
            pr->rc = belt_pool_send(pr->p, &i);
            TU_CHECK(pr->rc == BELT_OK, "send %llu: rc %d",
                     (unsigned long long)i, pr->rc);
            if (pr->rc != BELT_OK)
                return NULL;
            continue;
        }
        buf[k++] = i;
        if (k == pr->batch || i == pr->to) {
            size_t sent = 0;
            pr->rc = belt_pool_send_many(pr->p, buf, k, &sent);
            if (pr->rc != BELT_OK || sent != k) {
                if (pr->rc == BELT_OK)
                    pr->rc = BELT_EINVAL;
                return NULL;
            }
            k = 0;
        }
    }
    return NULL;
}

/* Runs n jobs through a pool of `workers` with `policy`, from nprod
 * producer threads, results on a channel of capacity rcap, received one by
 * one (batch 0) or in batches; checks the exact sum. */
static void run_squares(const char *policy, unsigned workers, uint64_t n,
                        unsigned nprod, size_t batch, size_t rcap)
{
    belt_chan *res = belt_chan_bounded(rcap, sizeof(uint64_t));
    ck_assert_ptr_nonnull(res);
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = workers;
    o.policy = policy;
    o.seed = 42;
    sq_ctx c = { .workers = workers };
    belt_pool *p = NULL;
    ck_assert_rc(belt_pool_create_fn(&p, &o, sizeof(uint64_t), square, &c,
                                     res),
                 BELT_OK);
    ck_assert_uint_eq(belt_pool_workers(p), workers);

    tu_reset_failures();
    producer pr[16];
    pthread_t th[16];
    ck_assert_uint_le(nprod, 16);
    for (unsigned k = 0; k < nprod; k++) {
        pr[k] = (producer){ .p = p, .from = 1 + n * k / nprod,
                            .to = n * (k + 1) / nprod, .batch = batch };
        tu_spawn(&th[k], produce, &pr[k]);
    }
    uint64_t sum = 0, got = 0, buf[256];
    while (got < n) {
        if (batch == 0) {
            uint64_t y;
            ck_assert_rc(belt_chan_recv(res, &y), BELT_OK);
            sum += y;
            got++;
        } else {
            int m = belt_chan_recv_many(res, buf, 256, -1);
            ck_assert_int_gt(m, 0);
            for (int k = 0; k < m; k++)
                sum += buf[k];
            got += (uint64_t)m;
        }
    }
    for (unsigned k = 0; k < nprod; k++) {
        tu_join(th[k]);
        ck_assert_rc(pr[k].rc, BELT_OK);
    }
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    tu_assert_threads_ok();
    ck_assert_uint_eq(got, n);
    ck_assert_uint_eq(sum, sum_squares(n));
    ck_assert_uint_eq(atomic_load(&c.calls), n);
    ck_assert_int_eq(atomic_load(&c.bad_worker), 0);
    uint64_t extra;
    ck_assert_rc(belt_chan_try_recv(res, &extra), BELT_EMPTY);
    ck_assert_rc(belt_pool_send(p, &extra), BELT_CLOSED);
    belt_pool_free(p);
    belt_chan_free(res);
}

START_TEST(test_every_policy_single)
{
    run_squares(all_policies[_i], 4, (uint64_t)tu_scaled(100000, 5000), 1, 0,
                1024);
}
END_TEST

START_TEST(test_every_policy_batch)
{
    run_squares(all_policies[_i], 3, (uint64_t)tu_scaled(100000, 5000), 2,
                256, 1024);
}
END_TEST

START_TEST(test_many_producers_cap1)
{
    run_squares(all_policies[_i], 4, (uint64_t)tu_scaled(40000, 4000), 8, 0,
                1);
}
END_TEST

START_TEST(test_results_null)
{
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 3;
    o.policy = all_policies[_i];
    sq_ctx c = { .workers = 3 };
    belt_pool *p = NULL;
    ck_assert_rc(belt_pool_create_fn(&p, &o, sizeof(uint64_t), square, &c,
                                     NULL),
                 BELT_OK);
    uint64_t n = 20000;
    for (uint64_t i = 1; i <= n; i++)
        ck_assert_rc(belt_pool_send(p, &i), BELT_OK);
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    ck_assert_uint_eq(atomic_load(&c.calls), n);
    ck_assert_int_eq(atomic_load(&c.bad_worker), 0);
    belt_pool_free(p);
}
END_TEST

/* Job sizes: each job is size bytes, byte k = (seq * 31 + k) & 0xff with
 * seq in the first 4 bytes (or the single byte); fn checks every byte and
 * answers seq. */
typedef struct {
    size_t size;
    _Atomic int bad;
} sz_ctx;

static void check_bytes(void *ctx, const void *job, void *result,
                        unsigned worker)
{
    (void)worker;
    sz_ctx *c = ctx;
    const unsigned char *b = job;
    uint32_t seq = 0;
    if (c->size >= 4)
        memcpy(&seq, b, 4);
    else
        seq = b[0];
    for (size_t k = 4; k < c->size; k++)
        if (b[k] != (unsigned char)((seq * 31u + k) & 0xffu))
            atomic_store(&c->bad, 1);
    memcpy(result, &seq, sizeof seq);
}

START_TEST(test_job_sizes)
{
    static const size_t sizes[] = { 1, 8, 64, 1000, 4096 };
    size_t size = sizes[_i];
    belt_chan *res = belt_chan_unbounded(sizeof(uint32_t));
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 2;
    sz_ctx c = { .size = size };
    belt_pool *p = NULL;
    ck_assert_rc(belt_pool_create_fn(&p, &o, size, check_bytes, &c, res),
                 BELT_OK);
    unsigned char *job = malloc(size);
    ck_assert_ptr_nonnull(job);
    uint32_t n = size == 1 ? 256 : 3000;
    uint64_t want = 0;
    for (uint32_t seq = 0; seq < n; seq++) {
        if (size >= 4)
            memcpy(job, &seq, 4);
        else
            job[0] = (unsigned char)seq;
        for (size_t k = 4; k < size; k++)
            job[k] = (unsigned char)((seq * 31u + k) & 0xffu);
        ck_assert_rc(belt_pool_send(p, job), BELT_OK);
        memset(job, 0xee, size); /* copied: reusing the buffer is fine */
        want += seq;
    }
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    uint64_t sum = 0;
    uint32_t r;
    for (uint32_t k = 0; k < n; k++) {
        ck_assert_rc(belt_chan_try_recv(res, &r), BELT_OK);
        sum += r;
    }
    ck_assert_rc(belt_chan_try_recv(res, &r), BELT_EMPTY);
    ck_assert_uint_eq(sum, want);
    ck_assert_int_eq(atomic_load(&c.bad), 0);
    free(job);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

START_TEST(test_send_many_counts)
{
    belt_chan *res = belt_chan_unbounded(sizeof(uint64_t));
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 2;
    o.policy = all_policies[_i];
    sq_ctx c = { .workers = 2 };
    belt_pool *p = NULL;
    ck_assert_rc(belt_pool_create_fn(&p, &o, sizeof(uint64_t), square, &c,
                                     res),
                 BELT_OK);
    uint64_t jobs[1000];
    for (int i = 0; i < 1000; i++)
        jobs[i] = (uint64_t)i + 1;
    size_t sent = 99;
    ck_assert_rc(belt_pool_send_many(p, jobs, 0, &sent), BELT_OK);
    ck_assert_uint_eq(sent, 0);
    ck_assert_rc(belt_pool_send_many(p, jobs, 1000, &sent), BELT_OK);
    ck_assert_uint_eq(sent, 1000);
    ck_assert_rc(belt_pool_send_many(p, jobs, 1000, NULL), BELT_OK);
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    sent = 99;
    ck_assert_rc(belt_pool_send_many(p, jobs, 10, &sent), BELT_CLOSED);
    ck_assert_uint_eq(sent, 0);
    uint64_t sum = 0, y;
    int got = 0;
    while (belt_chan_try_recv(res, &y) == BELT_OK) {
        sum += y;
        got++;
    }
    ck_assert_int_eq(got, 2000);
    ck_assert_uint_eq(sum, 2 * sum_squares(1000));
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* Cancel with a deep queue: fn blocks until the pool's cancel token fires
 * (poll on its eventfd, which stays readable once written), so the calls
 * running when cancel begins finish only after it has begun; the queue
 * holds 100k jobs; cancel must return without running them. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned entered;
    belt_pool *_Atomic pool;
    _Atomic uint64_t calls;
} gate_ctx;

static void gated(void *ctx, const void *job, void *result, unsigned worker)
{
    (void)job;
    (void)worker;
    gate_ctx *g = ctx;
    pthread_mutex_lock(&g->lock);
    g->entered++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    belt_pool *p = atomic_load(&g->pool);
    struct pollfd pfd = { .fd = p->cancel.wake_fd, .events = POLLIN };
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    atomic_fetch_add(&g->calls, 1);
    if (result != NULL)
        memset(result, 0, sizeof(uint64_t));
}

START_TEST(test_cancel_deep_queue)
{
    belt_chan *res = belt_chan_unbounded(sizeof(uint64_t));
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 2;
    o.policy = all_policies[_i];
    o.queue_capacity = 200000;
    gate_ctx g = { .entered = 0 };
    pthread_mutex_init(&g.lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    belt_pool *p = NULL;
    ck_assert_rc(belt_pool_create_fn(&p, &o, sizeof(uint64_t), gated, &g,
                                     res),
                 BELT_OK);
    atomic_store(&g.pool, p); /* before the first send */
    uint64_t n = 100000;
    for (uint64_t i = 0; i < n; i++)
        ck_assert_rc(belt_pool_send(p, &i), BELT_OK);
    /* Wait until at least one call is running (blocked on the token). */
    pthread_mutex_lock(&g.lock);
    while (g.entered == 0)
        pthread_cond_wait(&g.cond, &g.lock);
    pthread_mutex_unlock(&g.lock);
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    uint64_t calls = atomic_load(&g.calls);
    /* The running calls finished; the deep queue did not run: only what
     * the two workers had already taken (a batch each) may have. */
    ck_assert_uint_ge(calls, 1);
    ck_assert_uint_le(calls, 2 * BELT__POOL_BATCH);
    uint64_t y, got = 0;
    while (belt_chan_try_recv(res, &y) == BELT_OK)
        got++;
    ck_assert_uint_eq(got, calls);
    ck_assert_rc(belt_pool_send(p, &y), BELT_CLOSED);
    belt_pool_free(p);
    belt_chan_free(res);
    pthread_cond_destroy(&g.cond);
    pthread_mutex_destroy(&g.lock);
}
END_TEST

START_TEST(test_einval)
{
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 1;
    sq_ctx c = { .workers = 1 };
    belt_pool *p = (belt_pool *)&c; /* must stay untouched */
    ck_assert_rc(belt_pool_create_fn(NULL, &o, 8, square, &c, NULL),
                 BELT_EINVAL);
    ck_assert_rc(belt_pool_create_fn(&p, NULL, 8, square, &c, NULL),
                 BELT_EINVAL);
    ck_assert_rc(belt_pool_create_fn(&p, &o, 8, NULL, &c, NULL), BELT_EINVAL);
    ck_assert_rc(belt_pool_create_fn(&p, &o, 0, square, &c, NULL),
                 BELT_EINVAL);
    ck_assert_rc(belt_pool_create_fn(&p, &o, BELT_CHAN_MAX_ELEM + 1, square,
                                     &c, NULL),
                 BELT_EINVAL);
    o.policy = "no-such-policy";
    ck_assert_rc(belt_pool_create_fn(&p, &o, 8, square, &c, NULL),
                 BELT_EINVAL);
    ck_assert_ptr_eq(p, (belt_pool *)&c);
    o.policy = NULL;
    ck_assert_rc(belt_pool_create_fn(&p, &o, BELT_CHAN_MAX_ELEM, square, &c,
                                     NULL),
                 BELT_OK);
    belt_job job;
    belt_job_init(&job);
    ck_assert_rc(belt_pool_submit(p, &job), BELT_EINVAL);
    ck_assert_rc(belt_pool_send(p, NULL), BELT_EINVAL);
    ck_assert_rc(belt_pool_send(NULL, &job), BELT_EINVAL);
    belt_pool_free(p);

    /* send on an exec pool */
    belt_chan *res = belt_chan_unbounded(sizeof(belt_result *));
    ck_assert_rc(belt_pool_create(&p, &o, res), BELT_OK);
    uint64_t x = 1;
    ck_assert_rc(belt_pool_send(p, &x), BELT_EINVAL);
    ck_assert_rc(belt_pool_send_many(p, &x, 1, NULL), BELT_EINVAL);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

static Suite *fnpool_suite(void)
{
    Suite *s = suite_create("fnpool");
    TCase *tc = tcase_create("fnpool");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_loop_test(tc, test_every_policy_single, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_every_policy_batch, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_many_producers_cap1, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_results_null, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_job_sizes, 0, 5);
    tcase_add_loop_test(tc, test_send_many_counts, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_cancel_deep_queue, 0, N_POLICIES);
    tcase_add_test(tc, test_einval);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fnpool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
