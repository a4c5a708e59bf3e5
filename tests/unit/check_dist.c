/* check_dist.c: unit tests for the experiment's distributions
 * (experiment/dist.c) and statistics (experiment/hist.c).
 *
 * Statistical checks compare sample moments with closed forms at 5
 * standard errors, the standard error computed from the sample itself
 * (sigma / sqrt(N) for the mean, sqrt((m4 - s^4) / N) for the variance,
 * m4 the sample fourth central moment).  The seeds are fixed, so each check
 * is deterministic; a sampler with the wrong mean or variance by more than a
 * few tenths of a percent fails.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "experiment/dist.h"
#include "experiment/hist.h"
/* test_util.h has helpers for threaded tests that this file does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_util.h"
#pragma GCC diagnostic pop

/* ---- distributions ------------------------------------------------------ */

typedef struct moments {
    double mean, var, m4; /* sample mean, variance, 4th central moment */
    double min, max;
} moments;

static moments sample(const belt__dist *d, uint64_t seed, long n)
{
    belt__rng r;
    belt__rng_seed(&r, seed);
    double *x = malloc((size_t)n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    moments m = { 0 };
    for (long i = 0; i < n; i++) {
        x[i] = belt__dist_sample(d, &r);
        m.mean += x[i];
        if (i == 0 || x[i] < m.min)
            m.min = x[i];
        if (i == 0 || x[i] > m.max)
            m.max = x[i];
    }
    m.mean /= (double)n;
    for (long i = 0; i < n; i++) {
        double e = (x[i] - m.mean) * (x[i] - m.mean);
        m.var += e;
        m.m4 += e * e;
    }
    m.var /= (double)(n - 1);
    m.m4 /= (double)n;
    free(x);
    return m;
}

static void check_moments(const belt__dist *d, long n, double lo, double hi)
{
    char name[128];
    belt__dist_describe(d, name, sizeof name);
    moments m = sample(d, 42, n);
    double mean = belt__dist_mean(d), var = belt__dist_var(d);
    double se_mean = sqrt(var / (double)n);
    double se_var = sqrt(fmax(m.m4 - m.var * m.var, 0.0) / (double)n);
    ck_assert_msg(fabs(m.mean - mean) <= 5.0 * se_mean + 1e-9 * mean,
                  "%s: sample mean %.9g, expected %.9g (se %.3g)", name,
                  m.mean, mean, se_mean);
    ck_assert_msg(fabs(m.var - var) <=
                      5.0 * se_var + 1e-9 * (var + mean * mean),
                  "%s: sample variance %.9g, expected %.9g (se %.3g)", name,
                  m.var, var, se_var);
    ck_assert_msg(m.min >= lo && m.max <= hi,
                  "%s: samples in [%g, %g], support [%g, %g]", name, m.min,
                  m.max, lo, hi);
}

static belt__dist make(belt__dist_kind k, double a, double b, double c)
{
    belt__dist d;
    char msg[128];
    int rc = belt__dist_init(&d, k, a, b, c, msg, sizeof msg);
    ck_assert_msg(rc == BELT_OK, "belt__dist_init: %s", msg);
    return d;
}

START_TEST(test_dist_moments)
{
    long n = tu_scaled(1000000, 100000);
    belt__dist d = make(BELT__DIST_CONSTANT, 0.002, 0, 0);
    check_moments(&d, n, 0.002, 0.002);
    ck_assert(belt__dist_var(&d) == 0.0 && belt__dist_scv(&d) == 0.0);
    d = make(BELT__DIST_UNIFORM, 0.001, 0.003, 0);
    check_moments(&d, n, 0.001, 0.003);
    d = make(BELT__DIST_EXPONENTIAL, 0.001, 0, 0);
    check_moments(&d, n, 0.0, INFINITY);
    ck_assert(fabs(belt__dist_scv(&d) - 1.0) < 1e-12);
    d = make(BELT__DIST_LOGNORMAL, 0.001, 0.5, 0);
    check_moments(&d, n, 0.0, INFINITY);
    ck_assert(fabs(belt__dist_mean(&d) - 0.001) < 1e-15);
    d = make(BELT__DIST_PARETO, 1.5, 1.0, 100.0);
    check_moments(&d, n, 1.0, 100.0);
    d = make(BELT__DIST_PARETO, 2.0, 1.0, 10.0); /* k == alpha branch */
    check_moments(&d, n, 1.0, 10.0);
    d = make(BELT__DIST_BIMODAL, 0.001, 0.1, 0.01);
    check_moments(&d, n, 0.001, 0.1);
    ck_assert(fabs(belt__dist_mean(&d) - (0.99 * 0.001 + 0.01 * 0.1)) <
              1e-15);
}
END_TEST

START_TEST(test_dist_same_seed_same_samples)
{
    belt__dist d = make(BELT__DIST_LOGNORMAL, 1.0, 1.0, 0);
    belt__rng a, b;
    belt__rng_seed(&a, 7);
    belt__rng_seed(&b, 7);
    for (int i = 0; i < 1000; i++) {
        double x = belt__dist_sample(&d, &a), y = belt__dist_sample(&d, &b);
        ck_check(memcmp(&x, &y, sizeof x) == 0, "sample %d differs", i);
    }
}
END_TEST

static belt__dist parse_ok(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    ck_assert_msg(j != NULL, "bad test JSON %s", text);
    belt__dist d;
    char msg[256] = "";
    int rc = belt__dist_from_json(&d, j, "service", msg, sizeof msg);
    json_decref(j);
    ck_assert_msg(rc == BELT_OK, "%s: %s", text, msg);
    return d;
}

START_TEST(test_dist_json_good)
{
    belt__dist d = parse_ok("{\"dist\":\"exponential\",\"mean\":\"1ms\"}");
    ck_assert_int_eq(d.kind, BELT__DIST_EXPONENTIAL);
    ck_assert(fabs(d.p[0] - 0.001) < 1e-15);
    d = parse_ok("{\"dist\":\"uniform\",\"min\":\"1ms\",\"max\":0.003}");
    ck_assert_int_eq(d.kind, BELT__DIST_UNIFORM);
    ck_assert(fabs(d.p[0] - 0.001) < 1e-15 && d.p[1] == 0.003);
    d = parse_ok("{\"dist\":\"lognormal\",\"mean\":\"1ms\",\"sigma\":1}");
    ck_assert_int_eq(d.kind, BELT__DIST_LOGNORMAL);
    ck_assert(d.p[1] == 1.0);
    d = parse_ok("{\"dist\":\"pareto\",\"alpha\":1.1,\"min\":\"10us\","
                 "\"max\":\"100ms\"}");
    ck_assert_int_eq(d.kind, BELT__DIST_PARETO);
    ck_assert(d.p[0] == 1.1 && fabs(d.p[1] - 1e-5) < 1e-18 &&
              fabs(d.p[2] - 0.1) < 1e-15);
    d = parse_ok("{\"dist\":\"bounded-pareto\",\"alpha\":2,\"min\":1,"
                 "\"max\":2}");
    ck_assert_int_eq(d.kind, BELT__DIST_PARETO);
    d = parse_ok("{\"dist\":\"bimodal\",\"short\":\"1ms\",\"long\":\"100ms\","
                 "\"p_long\":0.01}");
    ck_assert_int_eq(d.kind, BELT__DIST_BIMODAL);
    ck_assert(d.p[2] == 0.01);
    d = parse_ok("{\"dist\":\"constant\",\"value\":\"2ms\"}");
    ck_assert_int_eq(d.kind, BELT__DIST_CONSTANT);
    ck_assert(fabs(d.p[0] - 0.002) < 1e-15);
    d = parse_ok("{\"dist\":\"constant\",\"mean\":0.5}");
    ck_assert(d.p[0] == 0.5);
    ck_assert_str_eq(belt__dist_name(BELT__DIST_PARETO), "pareto");
    ck_assert_str_eq(belt__dist_name((belt__dist_kind)99), "unknown");
    char buf[64];
    belt__dist_describe(&d, buf, sizeof buf);
    ck_assert_str_eq(buf, "constant(value=0.5)");
}
END_TEST

START_TEST(test_dist_json_bad)
{
    static const struct {
        const char *json, *error;
    } cases[] = {
        { "{\"dist\":\"pareto\",\"alpha\":0,\"min\":1,\"max\":2}",
          "service.alpha: must be > 0" },
        { "{\"dist\":\"pareto\",\"alpha\":1,\"min\":2,\"max\":2}",
          "service.max: must be > min" },
        { "{\"dist\":\"pareto\",\"alpha\":1,\"min\":0,\"max\":2}",
          "service.min: must be > 0" },
        { "{\"dist\":\"exponential\",\"mean\":0}",
          "service.mean: must be > 0" },
        { "{\"dist\":\"exponential\",\"mean\":-1}",
          "service.mean: must be >= 0" },
        { "{\"dist\":\"exponential\",\"mean\":\"soon\"}",
          "service.mean: expected a duration" },
        { "{\"dist\":\"exponential\"}", "service: missing \"mean\"" },
        { "{\"dist\":\"exponential\",\"mean\":1,\"sigma\":1}",
          "service.sigma: unknown key for exponential (expected mean)" },
        { "{\"dist\":\"gauss\",\"mean\":1}",
          "service.dist: unknown distribution \"gauss\"" },
        { "{\"mean\":1}", "service: missing \"dist\"" },
        { "{\"dist\":3}", "service.dist: expected a string" },
        { "[1]", "service: expected an object" },
        { "{\"dist\":\"uniform\",\"min\":2,\"max\":1}",
          "service.max: must be >= min" },
        { "{\"dist\":\"lognormal\",\"mean\":1,\"sigma\":-1}",
          "service.sigma: must be >= 0" },
        { "{\"dist\":\"lognormal\",\"mean\":1,\"sigma\":\"1ms\"}",
          "service.sigma: expected a number" },
        { "{\"dist\":\"bimodal\",\"short\":1,\"long\":2,\"p_long\":1.5}",
          "service.p_long: must be in [0, 1]" },
        { "{\"dist\":\"bimodal\",\"short\":3,\"long\":2,\"p_long\":0.5}",
          "service.long: must be >= short" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        ck_assert_ptr_nonnull(j);
        belt__dist d = { .kind = BELT__DIST_CONSTANT, .p = { 9, 9, 9, 9 } };
        char msg[256] = "";
        int rc = belt__dist_from_json(&d, j, "service", msg, sizeof msg);
        json_decref(j);
        ck_assert_msg(rc == BELT_ECONFIG, "%s: got %d", cases[i].json, rc);
        ck_assert_msg(strstr(msg, cases[i].error) != NULL,
                      "%s: message \"%s\" lacks \"%s\"", cases[i].json, msg,
                      cases[i].error);
        ck_assert_msg(d.p[0] == 9 && d.kind == BELT__DIST_CONSTANT,
                      "%s: *d changed on failure", cases[i].json);
    }
    /* belt__dist_init rejects non-finite values and bad kinds too. */
    belt__dist d;
    char msg[64];
    ck_assert_int_eq(belt__dist_init(&d, BELT__DIST_EXPONENTIAL, NAN, 0, 0,
                                     msg, sizeof msg),
                     BELT_ECONFIG);
    ck_assert_int_eq(belt__dist_init(&d, (belt__dist_kind)42, 1, 1, 1, msg,
                                     sizeof msg),
                     BELT_ECONFIG);
}
END_TEST

/* ---- histogram ---------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The exact nearest-rank quantile of sorted x[0..n). */
static double exact_quantile(const double *x, size_t n, double q)
{
    double r = ceil(q * (double)n);
    size_t k = r < 1.0 ? 1 : (size_t)r;
    return x[(k > n ? n : k) - 1];
}

START_TEST(test_hist_quantiles_within_bound)
{
    size_t n = (size_t)tu_scaled(200000, 20000);
    double *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    belt__hist h;
    ck_assert_rc(belt__hist_init(&h), BELT_OK);
    belt__dist d = make(BELT__DIST_LOGNORMAL, 1e-3, 2.0, 0);
    belt__rng r;
    belt__rng_seed(&r, 3);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = i % 1000 == 0 ? 0.0 : belt__dist_sample(&d, &r);
        sum += x[i];
        belt__hist_add(&h, x[i]);
    }
    qsort(x, n, sizeof *x, cmp_double);
    static const double qs[] = { 0.0,  0.0005, 0.001, 0.01, 0.1, 0.25, 0.5,
                                 0.75, 0.9,    0.99,  0.999, 0.9999, 1.0 };
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double want = exact_quantile(x, n, qs[i]);
        double got = belt__hist_value_at(&h, qs[i]);
        ck_assert_msg(fabs(got - want) <= BELT__HIST_REL_ERROR * want,
                      "q %g: histogram %.9g, exact %.9g", qs[i], got, want);
    }
    belt__summary s;
    belt__hist_summary(&h, &s);
    ck_assert(s.count == n);
    ck_assert(fabs(s.mean - sum / (double)n) <= 1e-12 * s.mean);
    ck_assert(s.min == x[0] && s.max == x[n - 1]);
    ck_assert(fabs(s.p50 - exact_quantile(x, n, 0.5)) <=
              BELT__HIST_REL_ERROR * s.p50);
    ck_assert(fabs(s.p999 - exact_quantile(x, n, 0.999)) <=
              BELT__HIST_REL_ERROR * s.p999);
    ck_assert(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 &&
              s.p999 <= s.max);
    belt__hist_free(&h);
    belt__hist_free(&h); /* zeroed: no-op */
    free(x);
}
END_TEST

START_TEST(test_hist_merge_and_edges)
{
    belt__hist a, b, all;
    ck_assert_rc(belt__hist_init(&a), BELT_OK);
    ck_assert_rc(belt__hist_init(&b), BELT_OK);
    ck_assert_rc(belt__hist_init(&all), BELT_OK);
    belt__summary s;
    belt__hist_summary(&a, &s);
    ck_assert(s.count == 0 && s.mean == 0.0 && s.max == 0.0);
    ck_assert(belt__hist_value_at(&a, 0.5) == 0.0);
    for (int i = 0; i < 1000; i++) {
        double v = 1e-6 * (i + 1);
        belt__hist_add(i % 2 ? &a : &b, v);
        belt__hist_add(&all, v);
    }
    belt__hist_merge(&a, &b);
    ck_assert(a.count == all.count && a.zero == all.zero);
    ck_assert(memcmp(a.counts, all.counts,
                     BELT__HIST_BUCKETS * sizeof *a.counts) == 0);
    ck_assert(a.min == all.min && a.max == all.max);
    /* Out of range: negative counts as 0, huge goes to the top bucket and
     * is reported as the exact maximum. */
    belt__hist_reset(&a);
    ck_assert(a.count == 0 && a.counts != NULL);
    belt__hist_add(&a, -1.0);
    belt__hist_add(&a, 1e12);
    belt__hist_summary(&a, &s);
    ck_assert(s.count == 2 && s.min == 0.0 && s.max == 1e12);
    ck_assert(belt__hist_value_at(&a, 0.5) == 0.0);
    ck_assert(belt__hist_value_at(&a, 1.0) == 1e12);
    belt__hist_free(&a);
    belt__hist_free(&b);
    belt__hist_free(&all);
}
END_TEST

/* ---- confidence intervals and fairness ---------------------------------- */

START_TEST(test_ci95_and_t)
{
    /* Published two-sided 95% t values. */
    ck_assert(fabs(belt__student_t975(1) - 12.7062) < 1e-3);
    ck_assert(fabs(belt__student_t975(4) - 2.7764) < 1e-3);
    ck_assert(fabs(belt__student_t975(30) - 2.0423) < 1e-3);
    ck_assert(fabs(belt__student_t975(31) - 2.0395) < 1e-3);
    ck_assert(fabs(belt__student_t975(60) - 2.0003) < 1e-3);
    ck_assert(fabs(belt__student_t975(120) - 1.9799) < 1e-3);
    ck_assert(fabs(belt__student_t975(0) - 1.95996) < 1e-4);
    for (unsigned df = 1; df < 500; df++)
        ck_check(belt__student_t975(df + 1) < belt__student_t975(df),
                 "t not decreasing at df %u", df);

    const double x[] = { 1, 2, 3, 4, 5 };
    double m = 0, hw = 0;
    ck_assert_rc(belt__ci95(x, 5, &m, &hw), BELT_OK);
    ck_assert(fabs(m - 3.0) < 1e-12);
    /* s = sqrt(2.5), t(4) = 2.776445: half-width 1.963243 */
    ck_assert(fabs(hw - 2.776445 * sqrt(2.5) / sqrt(5.0)) < 1e-5);
    ck_assert_rc(belt__ci95(x, 1, &m, &hw), BELT_OK);
    ck_assert(m == 1.0 && isnan(hw));
    ck_assert_rc(belt__ci95(x, 0, &m, &hw), BELT_EINVAL);
    ck_assert_rc(belt__ci95(NULL, 3, &m, &hw), BELT_EINVAL);
}
END_TEST

START_TEST(test_jain)
{
    const double eq[] = { 0.5, 0.5, 0.5, 0.5 };
    const double one[] = { 0.0, 0.9, 0.0, 0.0 };
    const double zero[] = { 0.0, 0.0 };
    ck_assert(fabs(belt__jain(eq, 4) - 1.0) < 1e-15);
    ck_assert(fabs(belt__jain(one, 4) - 0.25) < 1e-15);
    ck_assert(belt__jain(zero, 2) == 1.0);
    ck_assert(belt__jain(NULL, 0) == 1.0);
}
END_TEST

static Suite *dist_suite(void)
{
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_dist_moments);
    tcase_add_test(tc, test_dist_same_seed_same_samples);
    tcase_add_test(tc, test_dist_json_good);
    tcase_add_test(tc, test_dist_json_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("stats");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_hist_quantiles_within_bound);
    tcase_add_test(tc, test_hist_merge_and_edges);
    tcase_add_test(tc, test_ci95_and_t);
    tcase_add_test(tc, test_jain);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dist_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
