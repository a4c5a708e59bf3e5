/* check_policy.c: unit tests of the dispatch policies (src/policy*.c)
 * through their vtables, with fake load views: no threads, no pool.
 *
 * TCases:
 *   registry  names, lookup, topology, init errors, the RNG helpers
 *   picks     each policy's decision rule: round-robin order, random
 *             uniformity (chi-square, fixed seed) and reproducibility,
 *             least-loaded always at the minimum, power-of-d reads exactly d
 *             distinct workers and joins the least loaded of them;
 *             join-idle-queue serves idle workers first, each at most once,
 *             then random; work-stealing lands jobs round-robin and names
 *             victims other than the thief, deterministically per seed
 *
 * The "recording" view below logs which workers a pick() read, so a test
 * can check a sampling policy against the loads it actually saw.
 */
#include "test_util.h"

#include <math.h>

#include "pool/policy.h"

/* ---- fake views --------------------------------------------------------- */

#define MAXW 64

/* A view over an array that records every index read. */
struct rec_view {
    unsigned loads[MAXW];
    unsigned reads[4 * MAXW];
    unsigned nreads;
};

static unsigned rec_load(const void *ctx, unsigned i)
{
    struct rec_view *r = (struct rec_view *)(uintptr_t)ctx;
    if (TU_CHECK(r->nreads < 4 * MAXW, "more than %d reads in one pick",
                 4 * MAXW))
        r->reads[r->nreads++] = i;
    return r->loads[i];
}

static belt__load_view rec_view_of(struct rec_view *r, unsigned n)
{
    belt__load_view v = { .n = n, .loads = NULL, .load_fn = rec_load, .ctx = r };
    return v;
}

static void *new_policy(const char *name, unsigned n, uint64_t seed, unsigned d)
{
    const belt__policy *pol = belt__policy_find(name);
    ck_assert_msg(pol != NULL, "no policy %s", name);
    belt__policy_params params = { .d = d };
    void *st = NULL;
    ck_assert_rc(pol->init(&st, n, seed, &params), BELT_OK);
    return st;
}

/* ---- registry ----------------------------------------------------------- */

START_TEST(test_names_and_lookup)
{
    static const char *const want[] = { "shared", "round-robin", "random",
        "least-loaded", "power-of-two", "power-of-d", "join-idle-queue",
        "work-stealing" };
    const char *const *names = belt__policy_names();
    size_t k = 0;
    for (; names[k] != NULL; k++) {
        const belt__policy *p = belt__policy_find(names[k]);
        ck_assert_ptr_nonnull(p);
        ck_assert_str_eq(p->name, names[k]);
        ck_assert_ptr_nonnull(p->init);
        ck_assert_ptr_nonnull(p->pick);
        ck_assert_ptr_nonnull(p->free);
        ck_assert_int_eq(p->topology,
                         strcmp(names[k], "shared") == 0 ? BELT__TOPO_SHARED
                         : strcmp(names[k], "work-stealing") == 0
                             ? BELT__TOPO_STEALING
                             : BELT__TOPO_PER_WORKER);
        /* victim() exactly for STEALING; idle() only for join-idle-queue. */
        ck_assert_int_eq(p->victim != NULL,
                         p->topology == BELT__TOPO_STEALING);
        ck_assert_int_eq(p->idle != NULL,
                         strcmp(names[k], "join-idle-queue") == 0);
    }
    ck_assert_uint_eq(k, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < k; i++)
        ck_assert_ptr_nonnull(belt__policy_find(want[i]));
    /* The public list is the same list. */
    ck_assert_ptr_eq(belt_pool_policy_names(), names);
    ck_assert_ptr_null(belt__policy_find(NULL));
    ck_assert_ptr_null(belt__policy_find(""));
    ck_assert_ptr_null(belt__policy_find("Random"));
    ck_assert_ptr_null(belt__policy_find("power-of-three"));
}
END_TEST

START_TEST(test_init_zero_workers)
{
    for (const char *const *n = belt__policy_names(); *n; n++) {
        const belt__policy *p = belt__policy_find(*n);
        void *st = (void *)&st; /* must stay untouched */
        ck_assert_rc(p->init(&st, 0, 1, NULL), BELT_EINVAL);
        ck_assert_ptr_eq(st, (void *)&st);
        /* NULL params mean the defaults. */
        st = NULL;
        ck_assert_rc(p->init(&st, 3, 1, NULL), BELT_OK);
        p->free(st);
        p->free(NULL);
    }
}
END_TEST

START_TEST(test_rng)
{
    belt__rng a, b, z;
    belt__rng_seed(&a, 7);
    belt__rng_seed(&b, 7);
    belt__rng_seed(&z, 0);
    ck_assert_uint_ne(z.s, 0);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        ck_assert_uint_eq(belt__rng_next(&a), belt__rng_next(&b));
        unsigned x = belt__rng_below(&z, 5);
        ck_assert_uint_lt(x, 5);
        ck_assert_uint_eq(belt__rng_below(&z, 1), 0);
    }
    belt__rng_seed(&b, 8);
    for (int i = 0; i < 10; i++)
        differ += belt__rng_next(&a) != belt__rng_next(&b);
    ck_assert_int_gt(differ, 0);
}
END_TEST

/* ---- picks -------------------------------------------------------------- */

START_TEST(test_round_robin_order)
{
    static const unsigned ns[] = { 1, 3, 7 };
    for (size_t k = 0; k < 3; k++) {
        unsigned n = ns[k];
        void *st = new_policy("round-robin", n, 1, 0);
        unsigned loads[MAXW] = { 0 };
        loads[0] = 100; /* ignored */
        belt__load_view v = { .n = n, .loads = loads };
        for (unsigned i = 0; i < 5 * n; i++)
            ck_assert_uint_eq(belt__policy_round_robin.pick(st, &v), i % n);
        belt__policy_round_robin.free(st);
    }
}
END_TEST

START_TEST(test_random_uniform)
{
    enum { N = 8, PICKS = 80000 };
    void *st = new_policy("random", N, 12345, 0);
    unsigned loads[N] = { 0 };
    loads[3] = 50; /* ignored by random */
    belt__load_view v = { .n = N, .loads = loads };
    long count[N] = { 0 };
    for (int i = 0; i < PICKS; i++) {
        unsigned w = belt__policy_random.pick(st, &v);
        ck_assert_uint_lt(w, N);
        count[w]++;
    }
    belt__policy_random.free(st);
    double e = (double)PICKS / N, chi2 = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_int_gt(count[i], 0);
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    /* 7 degrees of freedom: P(chi2 > 24.3) = 0.001.  The seed is fixed, so
     * this is deterministic; the loose bound only guards against a broken
     * generator or a biased reduction. */
    ck_assert_msg(chi2 < 24.3, "chi-square %.2f too large", chi2);
}
END_TEST

START_TEST(test_random_reproducible)
{
    unsigned loads[10] = { 0 };
    belt__load_view v = { .n = 10, .loads = loads };
    void *a = new_policy("random", 10, 99, 0);
    void *b = new_policy("random", 10, 99, 0);
    void *c = new_policy("random", 10, 100, 0);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        unsigned x = belt__policy_random.pick(a, &v);
        ck_assert_uint_eq(x, belt__policy_random.pick(b, &v));
        differ += x != belt__policy_random.pick(c, &v);
    }
    ck_assert_int_gt(differ, 500); /* unrelated streams: ~900 expected */
    belt__policy_random.free(a);
    belt__policy_random.free(b);
    belt__policy_random.free(c);
}
END_TEST

START_TEST(test_least_loaded_is_minimum)
{
    uint64_t rs = 42;
    for (unsigned n = 1; n <= 16; n++) {
        void *st = new_policy("least-loaded", n, 1, 0);
        for (int t = 0; t < 2000; t++) {
            struct rec_view r = { .nreads = 0 };
            unsigned min = UINT32_MAX;
            for (unsigned i = 0; i < n; i++) {
                r.loads[i] = (unsigned)(tu_rand(&rs) % 5);
                if (r.loads[i] < min)
                    min = r.loads[i];
            }
            belt__load_view v = rec_view_of(&r, n);
            unsigned w = belt__policy_least_loaded.pick(st, &v);
            ck_assert_uint_lt(w, n);
            /* Never a worker with more load than another one. */
            ck_assert_uint_eq(r.loads[w], min);
            /* Each worker read at most once (one consistent snapshot). */
            ck_assert_uint_le(r.nreads, n);
        }
        belt__policy_least_loaded.free(st);
    }
}
END_TEST

START_TEST(test_least_loaded_ties_rotate)
{
    enum { N = 5 };
    void *st = new_policy("least-loaded", N, 1, 0);
    unsigned loads[N] = { 2, 2, 2, 2, 2 };
    belt__load_view v = { .n = N, .loads = loads };
    int seen[N] = { 0 };
    for (int i = 0; i < N; i++)
        seen[belt__policy_least_loaded.pick(st, &v)]++;
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
    /* A single less-loaded worker wins wherever the scan starts. */
    loads[3] = 1;
    for (int i = 0; i < 3 * N; i++)
        ck_assert_uint_eq(belt__policy_least_loaded.pick(st, &v), 3);
    belt__policy_least_loaded.free(st);
}
END_TEST

/* Checks `trials` picks of a power-of-d instance against random loads: it
 * reads exactly `expect_d` distinct workers, and picks one of them with the
 * smallest load among those it read. */
static void check_pod(const char *name, unsigned n, unsigned d,
                      unsigned expect_d, int trials)
{
    const belt__policy *pol = belt__policy_find(name);
    void *st = new_policy(name, n, 2024, d);
    uint64_t rs = 7;
    for (int t = 0; t < trials; t++) {
        struct rec_view r = { .nreads = 0 };
        for (unsigned i = 0; i < n; i++)
            r.loads[i] = (unsigned)(tu_rand(&rs) % 8);
        belt__load_view v = rec_view_of(&r, n);
        unsigned w = pol->pick(st, &v);
        ck_assert_uint_lt(w, n);
        if (expect_d == 1) { /* d = 1 needs no load at all */
            ck_assert_uint_le(r.nreads, 1);
            continue;
        }
        ck_assert_uint_eq(r.nreads, expect_d);
        int picked_was_read = 0;
        for (unsigned a = 0; a < r.nreads; a++) {
            for (unsigned b = a + 1; b < r.nreads; b++)
                ck_assert_uint_ne(r.reads[a], r.reads[b]); /* distinct */
            ck_assert_uint_le(r.loads[w], r.loads[r.reads[a]]); /* lesser */
            picked_was_read |= r.reads[a] == w;
        }
        ck_assert(picked_was_read);
    }
    pol->free(st);
}

START_TEST(test_power_of_two_picks_lesser)
{
    check_pod("power-of-two", 2, 0, 2, 1000);
    check_pod("power-of-two", 10, 0, 2, 5000);
    check_pod("power-of-two", 10, 9, 2, 100); /* d is fixed at 2 */
    check_pod("power-of-d", 10, 0, 2, 1000);  /* default d = 2 */
}
END_TEST

START_TEST(test_power_of_d_samples_d)
{
    check_pod("power-of-d", 10, 3, 3, 3000);
    check_pod("power-of-d", 33, 8, 8, 3000);
    check_pod("power-of-d", 6, 6, 6, 1000);
    check_pod("power-of-d", 4, 10, 4, 1000); /* clamped to n: JSQ */
    check_pod("power-of-d", 5, 1, 1, 1000);  /* d = 1: random */
}
END_TEST

/* With loads 0, 1, ..., n-1 and two distinct samples, worker i wins when it
 * is sampled with a worker above it: P(i) = 2 (n-1-i) / (n (n-1)); the most
 * loaded worker never wins. */
START_TEST(test_power_of_two_distribution)
{
    enum { N = 10, PICKS = 90000 };
    void *st = new_policy("power-of-two", N, 5, 0);
    unsigned loads[N];
    for (unsigned i = 0; i < N; i++)
        loads[i] = i;
    belt__load_view v = { .n = N, .loads = loads };
    long count[N] = { 0 };
    for (int t = 0; t < PICKS; t++)
        count[belt__policy_power_of_two.pick(st, &v)]++;
    belt__policy_power_of_two.free(st);
    ck_assert_int_eq(count[N - 1], 0);
    for (int i = 0; i < N - 1; i++) {
        double p = 2.0 * (N - 1 - i) / (N * (N - 1.0));
        double mean = p * PICKS, sd = sqrt(PICKS * p * (1 - p));
        ck_assert_msg(fabs(count[i] - mean) < 5 * sd,
                      "worker %d: %ld picks, expected %.0f +- %.0f", i,
                      count[i], mean, sd);
    }
}
END_TEST

/* The array and the function forms of a view drive a seeded policy to the
 * same choices (what makes live and simulated runs comparable). */
START_TEST(test_view_forms_agree)
{
    static const char *const names[] = { "random", "least-loaded",
                                          "power-of-two" };
    for (int k = 0; k < 3; k++) {
        const belt__policy *pol = belt__policy_find(names[k]);
        void *a = new_policy(names[k], 12, 3, 0);
        void *b = new_policy(names[k], 12, 3, 0);
        struct rec_view r = { .nreads = 0 };
        uint64_t rs = 11;
        for (int t = 0; t < 500; t++) {
            for (unsigned i = 0; i < 12; i++)
                r.loads[i] = (unsigned)(tu_rand(&rs) % 4);
            r.nreads = 0;
            belt__load_view vf = rec_view_of(&r, 12);
            belt__load_view va = { .n = 12, .loads = r.loads };
            ck_assert_uint_eq(pol->pick(a, &va), pol->pick(b, &vf));
        }
        pol->free(a);
        pol->free(b);
    }
}
END_TEST

/* ---- join-idle-queue and work-stealing ---------------------------------- */

/* At start every worker is idle: the first n picks are 0..n-1, each once,
 * in order, whatever the loads say. */
START_TEST(test_jiq_initially_all_idle)
{
    enum { N = 6 };
    const belt__policy *pol = belt__policy_find("join-idle-queue");
    void *st = new_policy("join-idle-queue", N, 1, 0);
    struct rec_view r = { .nreads = 0 };
    for (unsigned i = 0; i < N; i++)
        r.loads[i] = N - i; /* must be ignored */
    belt__load_view v = rec_view_of(&r, N);
    for (unsigned i = 0; i < N; i++)
        ck_assert_uint_eq(pol->pick(st, &v), i);
    ck_assert_uint_eq(r.nreads, 0); /* JIQ reads no load */
    pol->free(st);
}
END_TEST

/* Idle reports are served first, oldest first, each worker at most once
 * however often it reports; an empty idle queue falls back to random. */
START_TEST(test_jiq_idle_first_once)
{
    enum { N = 8 };
    const belt__policy *pol = belt__policy_find("join-idle-queue");
    void *st = new_policy("join-idle-queue", N, 5, 0);
    belt__load_view v = { .n = N, .loads = (unsigned[N]){ 0 } };
    for (unsigned i = 0; i < N; i++)
        pol->pick(st, &v); /* empty the initial idle queue */
    pol->idle(st, 5);
    pol->idle(st, 2);
    pol->idle(st, 5); /* already queued: no-op */
    pol->idle(st, 7);
    pol->idle(st, 2);
    pol->idle(st, N); /* out of range: ignored */
    ck_assert_uint_eq(pol->pick(st, &v), 5);
    ck_assert_uint_eq(pol->pick(st, &v), 2);
    ck_assert_uint_eq(pol->pick(st, &v), 7);
    /* Re-joining after being picked works again. */
    pol->idle(st, 5);
    ck_assert_uint_eq(pol->pick(st, &v), 5);
    /* Now random: all workers hit, roughly uniformly. */
    enum { PICKS = 8000 };
    long count[N] = { 0 };
    for (int k = 0; k < PICKS; k++) {
        unsigned w = pol->pick(st, &v);
        ck_assert_uint_lt(w, N);
        count[w]++;
    }
    for (unsigned i = 0; i < N; i++)
        ck_assert_msg(count[i] > PICKS / N / 2, "worker %u: %ld picks", i,
                      count[i]);
    pol->free(st);
}
END_TEST

/* Same seed, same sequence of picks and idle reports: same choices. */
START_TEST(test_jiq_reproducible)
{
    enum { N = 5 };
    const belt__policy *pol = belt__policy_find("join-idle-queue");
    void *a = new_policy("join-idle-queue", N, 9, 0);
    void *b = new_policy("join-idle-queue", N, 9, 0);
    belt__load_view v = { .n = N, .loads = (unsigned[N]){ 0 } };
    uint64_t rs = 3;
    for (int k = 0; k < 1000; k++) {
        if (tu_rand(&rs) % 3 == 0) {
            unsigned w = (unsigned)(tu_rand(&rs) % N);
            pol->idle(a, w);
            pol->idle(b, w);
        }
        ck_assert_uint_eq(pol->pick(a, &v), pol->pick(b, &v));
    }
    pol->free(a);
    pol->free(b);
}
END_TEST

/* work-stealing: jobs land round-robin; a victim is never the thief, every
 * other worker is chosen (roughly uniformly), and the sequence per thief
 * depends only on the seed, not on other thieves' calls. */
START_TEST(test_steal_pick_and_victim)
{
    enum { N = 5, CALLS = 5000 };
    const belt__policy *pol = belt__policy_find("work-stealing");
    void *st = new_policy("work-stealing", N, 42, 0);
    belt__load_view v = { .n = N, .loads = (unsigned[N]){ 0 } };
    for (unsigned i = 0; i < 3 * N; i++)
        ck_assert_uint_eq(pol->pick(st, &v), i % N);
    for (unsigned thief = 0; thief < N; thief++) {
        long count[N] = { 0 };
        for (int k = 0; k < CALLS; k++) {
            unsigned w = pol->victim(st, thief, &v);
            ck_assert_uint_lt(w, N);
            ck_assert_uint_ne(w, thief);
            count[w]++;
        }
        for (unsigned i = 0; i < N; i++)
            if (i != thief)
                ck_assert_msg(count[i] > CALLS / (N - 1) / 2,
                              "thief %u robbed %u only %ld times", thief, i,
                              count[i]);
    }
    pol->free(st);

    /* Determinism per seed and per thief: interleaving other thieves'
     * calls does not change thief 1's sequence. */
    void *a = new_policy("work-stealing", N, 7, 0);
    void *b = new_policy("work-stealing", N, 7, 0);
    void *c = new_policy("work-stealing", N, 8, 0);
    int differ = 0;
    for (int k = 0; k < 200; k++) {
        pol->victim(b, 3, &v);
        pol->victim(b, 0, &v);
        unsigned x = pol->victim(a, 1, &v);
        ck_assert_uint_eq(x, pol->victim(b, 1, &v));
        differ += x != pol->victim(c, 1, &v);
    }
    ck_assert_int_gt(differ, 0);
    pol->free(a);
    pol->free(b);
    pol->free(c);

    /* One worker: nobody to rob. */
    void *one = new_policy("work-stealing", 1, 1, 0);
    belt__load_view v1 = { .n = 1, .loads = (unsigned[1]){ 0 } };
    ck_assert_uint_eq(pol->victim(one, 0, &v1), 1);
    ck_assert_uint_eq(pol->pick(one, &v1), 0);
    pol->free(one);
}
END_TEST

/* ======================================================================= main */

static void setup(void)
{
    tu_reset_failures();
}

static void teardown(void)
{
    tu_assert_threads_ok();
}

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");

    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_test(tc, test_names_and_lookup);
    tcase_add_test(tc, test_init_zero_workers);
    tcase_add_test(tc, test_rng);
    suite_add_tcase(s, tc);

    tc = tcase_create("picks");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_test(tc, test_round_robin_order);
    tcase_add_test(tc, test_random_uniform);
    tcase_add_test(tc, test_random_reproducible);
    tcase_add_test(tc, test_least_loaded_is_minimum);
    tcase_add_test(tc, test_least_loaded_ties_rotate);
    tcase_add_test(tc, test_power_of_two_picks_lesser);
    tcase_add_test(tc, test_power_of_d_samples_d);
    tcase_add_test(tc, test_power_of_two_distribution);
    tcase_add_test(tc, test_view_forms_agree);
    tcase_add_test(tc, test_jiq_initially_all_idle);
    tcase_add_test(tc, test_jiq_idle_first_once);
    tcase_add_test(tc, test_jiq_reproducible);
    tcase_add_test(tc, test_steal_pick_and_victim);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
