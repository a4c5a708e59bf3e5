/* check_sim.c: unit tests for the experiment simulator (experiment/sim.c) and
 * trace loading (experiment/trace.c).
 *
 * Theory checks.  Each compares a simulated mean with a closed form at 5
 * standard errors.  The standard error of a run's mean sojourn time is not
 * sigma/sqrt(N) (successive jobs' sojourns are correlated), so it was
 * measured: the standard deviation, across independent seeds, of the mean
 * from runs of 1,000,000 jobs (10% warm-up) with exactly the configuration
 * of the test (30 seeds each; the table below, units of the mean service
 * time 1/mu = 1 s).  A run of N jobs, R seeds averaged, then has standard
 * error SD_1M * sqrt(1e6 / (N R)) (the long-run variance of a mean falls as
 * 1/N once N is far beyond the relaxation time, a few hundred jobs here).
 *
 *   configuration                         SD_1M of the mean sojourn
 *   random, 10 workers, load 0.5 (M/M/1)  0.0058  (30 seeds of 1M jobs;
 *                                                  30 others: 0.0064)
 *   random, 10 workers, load 0.8 (M/M/1)  0.044   (30 seeds; 30 others:
 *                                                  0.043)
 *   shared, 10 workers, load 0.8 (M/M/10) 0.0052  (30 seeds; 40 others:
 *                                                  0.0039)
 *   shared, 4 workers, load 0.8 (M/M/4)   0.0133  (30 seeds)
 *   power-of-two, 100 workers, load 0.9   0.0215  (5 seeds of 4M jobs)
 *   power-of-d, d 3, 100 workers, load 0.9 0.0103 (6 seeds of 2M jobs)
 * and of the M/M/1 sojourn's median and 99th percentile (30 seeds of 1M):
 * load 0.5: p50 0.0040, p99 0.047; load 0.8: p50 0.030, p99 0.31.
 *
 * The seeds are fixed, so every check is deterministic; 5 standard errors
 * leave room for the error of those SD estimates (about 15% from 30
 * seeds) and still fail a simulator off by 1-2% (M/M/1 at 0.5, Erlang C)
 * to 5% (power-of-two).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "belt/error.h"
#include "experiment/sim.h"
/* test_util.h has helpers for threaded tests that this file does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_util.h"
#pragma GCC diagnostic pop

/* ---- helpers ------------------------------------------------------------ */

static belt__dist exp_dist(double mean)
{
    belt__dist d;
    ck_assert_rc(belt__dist_init(&d, BELT__DIST_EXPONENTIAL, mean, 0, 0,
                                 NULL, 0),
                 BELT_OK);
    return d;
}

static belt__dist const_dist(double v)
{
    belt__dist d;
    ck_assert_rc(belt__dist_init(&d, BELT__DIST_CONSTANT, v, 0, 0, NULL, 0),
                 BELT_OK);
    return d;
}

static const belt__policy *policy(const char *name)
{
    const belt__policy *p = belt__policy_find(name);
    ck_assert_msg(p != NULL, "policy %s not registered", name);
    return p;
}

/* A Poisson workload at `load` on n unit-speed workers. */
static belt__workload poisson(double load, belt__dist service, unsigned n,
                              uint64_t jobs)
{
    belt__workload w = { .arrival = BELT__ARRIVAL_POISSON,
                         .service = service,
                         .jobs = jobs,
                         .warmup = 0.1 };
    w.rate = belt__rate_for_load(load, &w.service, n, NULL);
    return w;
}

/* Mean of `field` over R seeds (1..R), with run and job counts scaled. */
typedef struct means {
    double sojourn, wait, service, util, p50, p99;
} means;

static means run_seeds_pp(const char *pol, const belt__policy_params *pp,
                          unsigned n, const belt__workload *w, int reps)
{
    means m = { 0 };
    for (int r = 0; r < reps; r++) {
        belt__point_result res;
        ck_assert_rc(belt__sim_run(policy(pol), pp, n, NULL, w,
                                   (uint64_t)r + 1, &res),
                     BELT_OK);
        m.sojourn += res.sojourn.mean / reps;
        m.p50 += res.sojourn.p50 / reps;
        m.p99 += res.sojourn.p99 / reps;
        m.wait += res.wait.mean / reps;
        m.service += res.service.mean / reps;
        m.util += res.util_mean / reps;
        belt__point_result_free(&res);
    }
    return m;
}

static means run_seeds(const char *pol, unsigned n, const belt__workload *w,
                       int reps)
{
    return run_seeds_pp(pol, NULL, n, w, reps);
}

/* The standard error of a mean from `jobs` x `reps` (see the header). */
static double std_err(double sd_1m, uint64_t jobs, int reps)
{
    return sd_1m * sqrt(1e6 / ((double)jobs * reps));
}

/* Erlang C: probability that an arrival waits in M/M/c with offered load a
 * = lambda / mu < c. */
static double erlang_c(unsigned c, double a)
{
    double term = 1.0, sum = 0.0; /* a^k / k! */
    for (unsigned k = 0; k < c; k++) {
        sum += term;
        term *= a / (k + 1);
    }
    double top = term * c / (c - a);
    return top / (sum + top);
}

/* ---- theory ------------------------------------------------------------- */

/* Random dispatch splits a Poisson stream into n independent Poisson
 * streams of rate lambda/n: n M/M/1 queues, mean sojourn 1/(mu - lambda/n)
 * = 1/(1 - load) for mu = 1.  The M/M/1 sojourn time is exponential with
 * rate mu - lambda/n, so its q-quantile is -ln(1 - q) / (1 - load); the
 * percentiles get the histogram's error bound (0.1%) on top of 5 standard
 * errors. */
START_TEST(test_mm1_random)
{
    static const struct {
        double load, sd_1m, sd_p50, sd_p99;
    } cases[] = { { 0.5, 0.0058, 0.0040, 0.047 },
                  { 0.8, 0.044, 0.030, 0.31 } };
    uint64_t jobs = (uint64_t)tu_scaled(1000000, 200000);
    int reps = 4;
    for (int i = 0; i < 2; i++) {
        belt__workload w = poisson(cases[i].load, exp_dist(1.0), 10, jobs);
        means m = run_seeds("random", 10, &w, reps);
        double want = 1.0 / (1.0 - cases[i].load);
        double p50 = log(2.0) * want, p99 = log(100.0) * want;
        double tol50 = 5.0 * std_err(cases[i].sd_p50, jobs, reps) +
                       BELT__HIST_REL_ERROR * p50;
        double tol99 = 5.0 * std_err(cases[i].sd_p99, jobs, reps) +
                       BELT__HIST_REL_ERROR * p99;
        ck_assert_msg(fabs(m.p50 - p50) <= tol50,
                      "M/M/1 load %.1f: median sojourn %.5f, theory %.5f, "
                      "tolerance %.5f",
                      cases[i].load, m.p50, p50, tol50);
        ck_assert_msg(fabs(m.p99 - p99) <= tol99,
                      "M/M/1 load %.1f: p99 sojourn %.5f, theory %.5f, "
                      "tolerance %.5f",
                      cases[i].load, m.p99, p99, tol99);
        double tol = 5.0 * std_err(cases[i].sd_1m, jobs, reps);
        ck_assert_msg(fabs(m.sojourn - want) <= tol,
                      "M/M/1 load %.1f: mean sojourn %.5f, theory %.5f, "
                      "tolerance %.5f",
                      cases[i].load, m.sojourn, want, tol);
        ck_assert_msg(fabs(m.util - cases[i].load) < 0.01,
                      "utilisation %.4f at load %.1f", m.util, cases[i].load);
    }
}
END_TEST

/* The shared queue is M/M/c: mean wait C(c, a) / (c mu - lambda), sojourn
 * that plus 1/mu (Erlang C).  wait = sojourn - service, so the wait mean's
 * standard error is at most the sojourn's plus the service mean's, and the
 * latter is sd(S) / sqrt(measured jobs) = 1 / sqrt(0.9 N R) (independent
 * exponential services of variance 1). */
START_TEST(test_mmc_shared)
{
    static const struct {
        unsigned c;
        double sd_1m;
    } cases[] = { { 10, 0.0052 }, { 4, 0.0133 } };
    uint64_t jobs = (uint64_t)tu_scaled(1000000, 200000);
    int reps = 4;
    for (int i = 0; i < 2; i++) {
        unsigned c = cases[i].c;
        belt__workload w = poisson(0.8, exp_dist(1.0), c, jobs);
        means m = run_seeds("shared", c, &w, reps);
        double a = 0.8 * c;
        double wq = erlang_c(c, a) / (c - a);
        double tol = 5.0 * std_err(cases[i].sd_1m, jobs, reps);
        double tol_wait = tol + 5.0 / sqrt(0.9 * (double)jobs * reps);
        ck_assert_msg(fabs(m.wait - wq) <= tol_wait,
                      "M/M/%u: mean wait %.5f, Erlang C %.5f, tol %.5f", c,
                      m.wait, wq, tol_wait);
        ck_assert_msg(fabs(m.sojourn - (wq + 1.0)) <= tol,
                      "M/M/%u: mean sojourn %.5f, Erlang C %.5f, tol %.5f", c,
                      m.sojourn, wq + 1.0, tol);
    }
}
END_TEST

/* Power of d choices (Mitzenmacher 2001, Vvedenskaya et al. 1996): as
 * n -> infinity the mean sojourn (units 1/mu) tends to
 *   T = Σ_{i>=1} rho^((d^i - d)/(d - 1))      (d = 2: Σ rho^(2^i - 2)),
 * at rho = 0.9: 2.61406 for d = 2, 2.02786 for d = 3 (random dispatch:
 * 10).  At finite n the mean is above the limit by O(1/n) (mean-field
 * error, Gast 2017); measured: d = 2 (5 seeds of 4M jobs) +0.031 at
 * n = 100, +0.009 at 300, +0.001 at 1000 (each +-0.005); d = 3 (6 seeds
 * of 2M) +0.027 at 100, +0.005 at 300, -0.005 at 1000 (+-0.003): about
 * 3/n.  The test allows 5/n for that, plus 5 standard errors.  d = 3 goes
 * through "power-of-d" with belt__policy_params, d = 2 through
 * "power-of-two". */
START_TEST(test_power_of_d_asymptotic)
{
    static const struct {
        const char *policy;
        unsigned d;
        double limit, sd_1m;
    } cases[] = { { "power-of-two", 2, 2.614057, 0.0215 },
                  { "power-of-d", 3, 2.027856, 0.0103 } };
    unsigned n = 100;
    double rho = 0.9;
    uint64_t jobs = (uint64_t)tu_scaled(2000000, 400000);
    int reps = 2;
    for (int i = 0; i < 2; i++) {
        double d = cases[i].d, limit = 0.0;
        for (int k = 1; k < 40; k++)
            limit += pow(rho, (pow(d, k) - d) / (d - 1.0));
        ck_assert(fabs(limit - cases[i].limit) < 1e-5);
        belt__policy_params pp = { .d = cases[i].d };
        belt__workload w = poisson(rho, exp_dist(1.0), n, jobs);
        means m = run_seeds_pp(cases[i].policy, &pp, n, &w, reps);
        double tol = 5.0 / n + 5.0 * std_err(cases[i].sd_1m, jobs, reps);
        ck_assert_msg(fabs(m.sojourn - limit) <= tol,
                      "%s d=%u n=%u rho=%.2f: mean sojourn %.5f, limit "
                      "%.5f, tolerance %.5f",
                      cases[i].policy, cases[i].d, n, rho, m.sojourn, limit,
                      tol);
    }
}
END_TEST

/* ---- determinism -------------------------------------------------------- */

static int same_result(const belt__point_result *a,
                       const belt__point_result *b)
{
    return a->jobs == b->jobs && a->n == b->n &&
           memcmp(&a->sojourn, &b->sojourn, sizeof a->sojourn) == 0 &&
           memcmp(&a->wait, &b->wait, sizeof a->wait) == 0 &&
           memcmp(&a->service, &b->service, sizeof a->service) == 0 &&
           memcmp(&a->makespan, &b->makespan, sizeof a->makespan) == 0 &&
           memcmp(&a->qlen_mean, &b->qlen_mean, sizeof a->qlen_mean) == 0 &&
           a->steals == b->steals &&
           memcmp(a->util, b->util, a->n * sizeof *a->util) == 0 &&
           memcmp(a->done, b->done, a->n * sizeof *a->done) == 0;
}

START_TEST(test_determinism_all_policies)
{
    const char *const *names = belt__policy_names();
    belt__dist d;
    ck_assert_rc(belt__dist_init(&d, BELT__DIST_LOGNORMAL, 1e-3, 1.0, 0,
                                 NULL, 0),
                 BELT_OK);
    for (size_t i = 0; names[i] != NULL; i++) {
        belt__workload w = poisson(0.9, d, 16, 20000);
        belt__point_result a, b, c;
        ck_assert_rc(belt__sim_run(policy(names[i]), NULL, 16, NULL, &w, 5,
                                   &a),
                     BELT_OK);
        ck_assert_rc(belt__sim_run(policy(names[i]), NULL, 16, NULL, &w, 5,
                                   &b),
                     BELT_OK);
        ck_assert_rc(belt__sim_run(policy(names[i]), NULL, 16, NULL, &w, 6,
                                   &c),
                     BELT_OK);
        ck_assert_msg(same_result(&a, &b), "%s: same seed, different result",
                      names[i]);
        ck_assert_msg(!same_result(&a, &c) &&
                          a.sojourn.mean != c.sojourn.mean,
                      "%s: different seeds, same result", names[i]);
        belt__point_result_free(&a);
        belt__point_result_free(&b);
        belt__point_result_free(&c);
    }
}
END_TEST

/* ---- conservation ------------------------------------------------------- */

/* Every registered policy (the list is the registry's, so policies added
 * later are covered) under Poisson, batch and heterogeneous-speed loads:
 * every job completes once, utilisation in [0, 1], the summaries are
 * consistent. */
START_TEST(test_all_policies_conserve)
{
    const char *const *names = belt__policy_names();
    double speeds[12];
    for (int i = 0; i < 12; i++)
        speeds[i] = i < 4 ? 2.0 : i < 8 ? 1.0 : 0.5;
    belt__dist bim;
    ck_assert_rc(belt__dist_init(&bim, BELT__DIST_BIMODAL, 1e-3, 0.1, 0.01,
                                 NULL, 0),
                 BELT_OK);
    for (size_t i = 0; names[i] != NULL; i++) {
        const belt__policy *p = policy(names[i]);
        for (int k = 0; k < 3; k++) {
            uint64_t jobs = 30000;
            belt__workload w = poisson(0.95, bim, 12, jobs);
            const double *sp = NULL;
            if (k == 1) {
                w.arrival = BELT__ARRIVAL_BATCH;
                w.warmup = 0.0;
            }
            if (k == 2) {
                sp = speeds;
                w.rate = belt__rate_for_load(0.95, &bim, 12, sp);
            }
            belt__point_result r;
            ck_assert_rc(belt__sim_run(p, NULL, 12, sp, &w, 9, &r), BELT_OK);
            uint64_t done = 0;
            for (unsigned j = 0; j < r.n; j++) {
                done += r.done[j];
                ck_assert_msg(r.util[j] >= 0.0 && r.util[j] <= 1.0,
                              "%s case %d: util[%u] = %g", names[i], k, j,
                              r.util[j]);
            }
            ck_assert_msg(r.jobs == jobs && done == jobs,
                          "%s case %d: %llu jobs, %llu done, want %llu",
                          names[i], k, (unsigned long long)r.jobs,
                          (unsigned long long)done,
                          (unsigned long long)jobs);
            uint64_t warm = (uint64_t)(w.warmup * (double)jobs);
            ck_assert(r.measured == jobs - warm && r.wait.count == r.measured);
            ck_assert(fabs(r.sojourn.mean - (r.wait.mean + r.service.mean)) <=
                      1e-9 * r.sojourn.mean);
            ck_assert(r.wait.min >= 0.0 && r.qlen_max >= r.qlen_mean);
            ck_assert(r.jain > 0.0 && r.jain <= 1.0 + 1e-12);
            ck_assert(r.throughput > 0.0 && r.makespan > 0.0);
            if (p->topology != BELT__TOPO_STEALING)
                ck_assert(r.steals == 0);
            belt__point_result_free(&r);
        }
    }
}
END_TEST

/* Work stealing (any registered STEALING policy) steals under imbalance:
 * round-robin-like landing of bimodal jobs leaves idle workers next to
 * queues.  Skipped (passes) when no such policy is registered. */
START_TEST(test_stealing_steals)
{
    const char *const *names = belt__policy_names();
    for (size_t i = 0; names[i] != NULL; i++) {
        const belt__policy *p = policy(names[i]);
        if (p->topology != BELT__TOPO_STEALING)
            continue;
        belt__dist bim;
        ck_assert_rc(belt__dist_init(&bim, BELT__DIST_BIMODAL, 1e-3, 0.1,
                                     0.05, NULL, 0),
                     BELT_OK);
        belt__workload w = poisson(0.7, bim, 8, 20000);
        belt__point_result r;
        ck_assert_rc(belt__sim_run(p, NULL, 8, NULL, &w, 3, &r), BELT_OK);
        ck_assert_msg(r.steals > 0, "%s: no steals", names[i]);
        belt__point_result_free(&r);
    }
}
END_TEST

/* Batch of N constant jobs on the shared queue: makespan N s / n exactly,
 * waits 0, 1, ..., every worker busy all the time. */
START_TEST(test_batch_constant_makespan)
{
    belt__workload w = { .arrival = BELT__ARRIVAL_BATCH,
                         .service = const_dist(1.0),
                         .jobs = 1000 };
    belt__point_result r;
    ck_assert_rc(belt__sim_run(policy("shared"), NULL, 10, NULL, &w, 1, &r),
                 BELT_OK);
    ck_assert(r.makespan == 100.0);
    ck_assert(r.util_mean == 1.0 && r.jain == 1.0);
    ck_assert(r.wait.max == 99.0 && r.sojourn.max == 100.0);
    ck_assert(fabs(r.wait.mean - 49.5) < 1e-9);
    ck_assert(r.qlen_max == 990.0);
    for (unsigned i = 0; i < 10; i++)
        ck_assert(r.done[i] == 100);
    belt__point_result_free(&r);
}
END_TEST

/* A speed-2 worker runs constant jobs in half the time: shared queue, 2
 * workers {2, 1}, 300 batch jobs of 1 s: 200 and 100 jobs, makespan 100. */
START_TEST(test_speeds_honoured)
{
    const double speeds[2] = { 2.0, 1.0 };
    belt__workload w = { .arrival = BELT__ARRIVAL_BATCH,
                         .service = const_dist(1.0),
                         .jobs = 300 };
    belt__point_result r;
    ck_assert_rc(belt__sim_run(policy("shared"), NULL, 2, speeds, &w, 1, &r),
                 BELT_OK);
    ck_assert(r.done[0] == 200 && r.done[1] == 100);
    ck_assert(r.makespan == 100.0);
    ck_assert(r.service.min == 0.5 && r.service.max == 1.0);
    belt__point_result_free(&r);
    /* Round-robin ignores speed: 50 jobs each; the fast one is done at 25. */
    w.jobs = 100;
    ck_assert_rc(belt__sim_run(policy("round-robin"), NULL, 2, speeds, &w, 1,
                               &r),
                 BELT_OK);
    ck_assert(r.done[0] == 50 && r.done[1] == 50);
    ck_assert(r.makespan == 50.0 && r.util[0] == 0.5 && r.util[1] == 1.0);
    ck_assert(fabs(r.jain - 0.9) < 1e-12); /* 1.5^2 / (2 * 1.25) */
    belt__point_result_free(&r);
}
END_TEST

/* Fixed-rate arrivals slower than the service never wait. */
START_TEST(test_rate_arrivals_and_cap)
{
    belt__workload w = { .arrival = BELT__ARRIVAL_RATE,
                         .rate = 100.0,
                         .service = const_dist(0.005),
                         .jobs = 1000 };
    belt__point_result r;
    ck_assert_rc(belt__sim_run(policy("random"), NULL, 1, NULL, &w, 1, &r),
                 BELT_OK);
    ck_assert(r.wait.max == 0.0 && r.qlen_max == 0.0);
    ck_assert(fabs(r.makespan - (999 * 0.01 + 0.005)) < 1e-9);
    ck_assert(fabs(r.util_mean - 0.005 * 1000 / r.makespan) < 1e-9);
    belt__point_result_free(&r);

    /* Overload (load 2) capped by time: jobs arriving after 10 s are not
     * admitted (rate 20/s on 1 worker: 201 jobs at t = 0, 0.05, ..., 10),
     * and all admitted ones run. */
    w.rate = 20.0;
    w.service = const_dist(0.1);
    w.max_time = 10.0;
    ck_assert_rc(belt__sim_run(policy("shared"), NULL, 1, NULL, &w, 1, &r),
                 BELT_OK);
    ck_assert_msg(r.jobs == 201, "%llu jobs", (unsigned long long)r.jobs);
    ck_assert(fabs(r.makespan - 20.1) < 1e-9);
    belt__point_result_free(&r);
}
END_TEST

START_TEST(test_rate_for_load)
{
    belt__dist d = exp_dist(0.002);
    ck_assert(fabs(belt__rate_for_load(0.5, &d, 10, NULL) - 2500.0) < 1e-9);
    const double sp[3] = { 1.0, 2.0, 0.5 };
    ck_assert(fabs(belt__rate_for_load(0.9, &d, 3, sp) - 0.9 * 3.5 / 0.002) <
              1e-9);
    belt__dist z = const_dist(0.0);
    ck_assert(belt__rate_for_load(0.5, &z, 10, NULL) == 0.0);
    ck_assert_str_eq(belt__arrival_name(BELT__ARRIVAL_TRACE), "trace");
    ck_assert_str_eq(belt__arrival_name((belt__arrival_kind)9), "unknown");
}
END_TEST

static uint64_t progress_calls, progress_last;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)ctx;
    progress_calls++;
    progress_last = done;
    ck_assert(total == 200000);
}

START_TEST(test_warmup_and_progress)
{
    belt__workload w = poisson(0.5, exp_dist(1.0), 4, 200000);
    w.warmup = 0.5;
    w.progress = on_progress;
    progress_calls = progress_last = 0;
    belt__point_result r;
    ck_assert_rc(belt__sim_run(policy("least-loaded"), NULL, 4, NULL, &w, 1,
                               &r),
                 BELT_OK);
    ck_assert(r.measured == 100000 && r.jobs == 200000);
    ck_assert(progress_calls == 200000 / 65536 + 1 && progress_last == 200000);
    belt__point_result_free(&r);
}
END_TEST

START_TEST(test_bad_arguments)
{
    const belt__policy *p = policy("random");
    belt__workload w = poisson(0.5, exp_dist(1.0), 4, 100);
    belt__point_result r;
    ck_assert_rc(belt__sim_run(p, NULL, 0, NULL, &w, 1, &r), BELT_EINVAL);
    ck_assert(r.util == NULL && r.jobs == 0);
    ck_assert_rc(belt__sim_run(NULL, NULL, 4, NULL, &w, 1, &r), BELT_EINVAL);
    ck_assert_rc(belt__sim_run(p, NULL, 4, NULL, NULL, 1, &r), BELT_EINVAL);
    ck_assert_rc(belt__sim_run(p, NULL, 4, NULL, &w, 1, NULL), BELT_EINVAL);
    const double bad[4] = { 1, 0, 1, 1 };
    ck_assert_rc(belt__sim_run(p, NULL, 4, bad, &w, 1, &r), BELT_EINVAL);
    belt__workload v = w;
    v.rate = 0.0;
    ck_assert_rc(belt__sim_run(p, NULL, 4, NULL, &v, 1, &r), BELT_EINVAL);
    v = w;
    v.jobs = 0;
    ck_assert_rc(belt__sim_run(p, NULL, 4, NULL, &v, 1, &r), BELT_EINVAL);
    v = w;
    v.warmup = 1.0;
    ck_assert_rc(belt__sim_run(p, NULL, 4, NULL, &v, 1, &r), BELT_EINVAL);
    v = w;
    v.arrival = BELT__ARRIVAL_TRACE;
    ck_assert_rc(belt__sim_run(p, NULL, 4, NULL, &v, 1, &r), BELT_EINVAL);
    belt__point_result_free(&r); /* zeroed: no-op */
    belt__point_result_free(NULL);
}
END_TEST

/* ---- traces ------------------------------------------------------------- */

/* Writes `text` to a fresh temporary file; returns its path (static
 * buffer per call site is the caller's). */
static void write_tmp(char *path, size_t size, const char *suffix,
                      const char *text)
{
    snprintf(path, size, "/tmp/belt-check-sim-XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    ck_assert_msg(fd >= 0, "mkstemps");
    size_t len = strlen(text);
    ck_assert(write(fd, text, len) == (ssize_t)len);
    close(fd);
}

static int load_text(const char *suffix, const char *text, belt__trace *t,
                     char *msg, size_t msg_size, char *path, size_t psize)
{
    write_tmp(path, psize, suffix, text);
    int rc = belt__trace_load(path, t, msg, msg_size);
    unlink(path);
    return rc;
}

START_TEST(test_trace_good)
{
    char path[128], msg[256] = "";
    belt__trace t;
    ck_assert_rc(load_text(".csv",
                           "# a comment\n"
                           "arrival,service\n"
                           "0,1\n"
                           "\n"
                           "0.5, \"1s\"\r\n"
                           "600ms,1\n",
                           &t, msg, sizeof msg, path, sizeof path),
                 BELT_OK);
    ck_assert(t.n == 3);
    ck_assert(t.arrival[1] == 0.5 && t.service[1] == 1.0);
    ck_assert(fabs(t.arrival[2] - 0.6) < 1e-12);

    /* Replay on one worker: sojourns 1, 1.5, 2.4; makespan 3. */
    belt__workload w = { .arrival = BELT__ARRIVAL_TRACE, .trace = &t };
    belt__point_result r;
    ck_assert_rc(belt__sim_run(policy("shared"), NULL, 1, NULL, &w, 1, &r),
                 BELT_OK);
    ck_assert(r.jobs == 3 && r.makespan == 3.0);
    ck_assert(fabs(r.sojourn.mean - (1.0 + 1.5 + 2.4) / 3) < 1e-12);
    ck_assert(fabs(r.throughput - 1.0) < 1e-12);
    belt__point_result_free(&r);
    w.jobs = 2; /* a prefix of the trace */
    ck_assert_rc(belt__sim_run(policy("random"), NULL, 1, NULL, &w, 1, &r),
                 BELT_OK);
    ck_assert(r.jobs == 2 && r.makespan == 2.0);
    belt__point_result_free(&r);
    belt__trace_free(&t);
    belt__trace_free(&t);

    ck_assert_rc(load_text(".jsonl",
                           "# jobs\n"
                           "{\"arrival\": 0, \"service\": \"2ms\"}\n"
                           "  {\"arrival\": \"1ms\", \"service\": 0.5}\n",
                           &t, msg, sizeof msg, path, sizeof path),
                 BELT_OK);
    ck_assert(t.n == 2 && fabs(t.service[0] - 0.002) < 1e-15 &&
              fabs(t.arrival[1] - 0.001) < 1e-15 && t.service[1] == 0.5);
    belt__trace_free(&t);
}
END_TEST

START_TEST(test_trace_bad)
{
    static const struct {
        const char *suffix, *text, *error; /* error after "PATH:" */
    } cases[] = {
        { ".csv", "0,1\n1,1\n2\n",
          ":3: expected 2 fields (arrival,service), got 1" },
        { ".csv", "0,1\n1,1,1\n", ":2: expected 2 fields" },
        { ".csv", "a,b\n0,1\nx,1\n", ":3: arrival: expected a number" },
        { ".csv", "0,1\n0.7,1\n0.5,1\n",
          ":3: arrival 0.5 is before the previous arrival 0.7" },
        { ".csv", "0,-1\n", ":1: service -1: must be >= 0" },
        { ".csv", "0,1\n1,soon\n", ":2: service: expected" },
        { ".jsonl", "{\"arrival\":0,\"service\":1}\n{\"arrival\":1}\n",
          ":2: missing \"service\"" },
        { ".jsonl", "{\"arrival\":0,\"service\":1}\n{oops\n",
          ":2: invalid JSON" },
        { ".jsonl", "{\"arrival\":1,\"service\":1}\n[1]\n",
          ":2: expected an object" },
        { ".jsonl",
          "{\"arrival\":1,\"service\":1}\n{\"arrival\":0,\"service\":1}\n",
          ":2: arrival 0 is before" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128], msg[256] = "";
        belt__trace t;
        int rc = load_text(cases[i].suffix, cases[i].text, &t, msg,
                           sizeof msg, path, sizeof path);
        ck_assert_msg(rc == BELT_ECONFIG, "case %zu: rc %d", i, rc);
        ck_assert_msg(strncmp(msg, path, strlen(path)) == 0 &&
                          strstr(msg, cases[i].error) != NULL,
                      "case %zu: message \"%s\" lacks \"%s\"", i, msg,
                      cases[i].error);
        ck_assert(t.n == 0 && t.arrival == NULL);
    }
    char path[128], msg[256];
    belt__trace t;
    ck_assert_rc(load_text(".csv", "# nothing\n\n", &t, msg, sizeof msg,
                           path, sizeof path),
                 BELT_ECONFIG);
    ck_assert(strstr(msg, "no jobs") != NULL);
    ck_assert_rc(belt__trace_load("/nonexistent/belt/trace.csv", &t, msg,
                                  sizeof msg),
                 BELT_ENOENT);
    ck_assert(strstr(msg, "/nonexistent/belt/trace.csv: ") == msg);
}
END_TEST

static Suite *sim_suite(void)
{
    Suite *s = suite_create("sim");
    TCase *tc = tcase_create("theory");
    tcase_set_timeout(tc, tu_timeout(60));
    tcase_add_test(tc, test_mm1_random);
    tcase_add_test(tc, test_mmc_shared);
    tcase_add_test(tc, test_power_of_d_asymptotic);
    suite_add_tcase(s, tc);

    tc = tcase_create("model");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_determinism_all_policies);
    tcase_add_test(tc, test_all_policies_conserve);
    tcase_add_test(tc, test_stealing_steals);
    tcase_add_test(tc, test_batch_constant_makespan);
    tcase_add_test(tc, test_speeds_honoured);
    tcase_add_test(tc, test_rate_arrivals_and_cap);
    tcase_add_test(tc, test_rate_for_load);
    tcase_add_test(tc, test_warmup_and_progress);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("trace");
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_test(tc, test_trace_good);
    tcase_add_test(tc, test_trace_bad);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
