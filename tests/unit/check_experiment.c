/* check_experiment.c: experiment configs (src/experiment/experiment.c):
 * defaults, sweep expansion and its order, the "live" overrides, command-line
 * overrides, and invalid configs with the exact path and message they
 * report; and the closed forms of experiment/out.c (Erlang C, M/M/1).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "belt/error.h"
#include "experiment/experiment.h"
#include <check.h>

/* Loads text; on failure *err is filled. */
static belt__experiment *load(const char *text, const belt__exp_overrides *ov,
                              belt_config_error *err)
{
    return belt__experiment_load_string(text, "exp.json", ov, err);
}

static belt__experiment *load_ok(const char *text)
{
    belt_config_error err;
    belt__experiment *e = load(text, NULL, &err);
    if (e == NULL) {
        char line[1200];
        ck_abort_msg("unexpected error: %s",
                     belt_config_error_format(&err, line, sizeof line));
    }
    return e;
}

/* Asserts that text fails with this path and a text containing `want`. */
static void load_bad(const char *text, const belt__exp_overrides *ov,
                     const char *path, const char *want, int line)
{
    belt_config_error err;
    belt__experiment *e = load(text, ov, &err);
    ck_assert_msg(e == NULL, "loaded, expected an error about %s", path);
    char buf[1200];
    belt_config_error_format(&err, buf, sizeof buf);
    ck_assert_msg(strcmp(err.path, path) == 0, "path %s, want %s (%s)",
                  err.path, path, buf);
    ck_assert_msg(strstr(err.text, want) != NULL, "text '%s' lacks '%s'",
                  err.text, want);
    if (line > 0)
        ck_assert_msg(err.line == line, "line %d, want %d (%s)", err.line,
                      line, buf);
}

#define BASE                                                                  \
    "\"arrival\": {\"process\": \"poisson\", \"load\": 0.5},"                 \
    "\"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}"

START_TEST(test_defaults)
{
    belt__experiment *e = load_ok("{\"workers\": 4, " BASE "}");
    ck_assert_int_eq(e->mode, BELT__EXP_SIMULATE);
    ck_assert_uint_eq(e->npoints, 1);
    ck_assert_uint_eq(e->naxes, 0);
    const belt__exp_point *p = &e->points[0];
    ck_assert_str_eq(p->policy, "shared");
    ck_assert_uint_eq(p->workers, 4);
    ck_assert_uint_eq(p->repeat, 1);
    ck_assert_uint_eq(p->seed, 1);
    ck_assert_uint_eq(p->jobs, 100000);
    ck_assert(p->speeds == NULL);
    ck_assert_int_eq(p->arrival, BELT__ARRIVAL_POISSON);
    ck_assert_int_eq(p->service.kind, BELT__DIST_EXPONENTIAL);
    /* load 0.5 of 4 workers at 1ms: 2000 jobs/s. */
    ck_assert_double_eq_tol(p->rate, 2000.0, 1e-9);
    ck_assert_uint_eq(e->nwarnings, 0);
    belt__experiment_free(e);
}
END_TEST

START_TEST(test_sweep_order)
{
    belt__experiment *e = load_ok(
        "{\"workers\": [2, 4], \"policy\": [\"random\", \"shared\"],"
        " \"arrival\": {\"load\": [0.5, 0.7, 0.9]},"
        " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"},"
        " \"repeat\": 3, \"seed\": 7, \"jobs\": 1000}");
    ck_assert_uint_eq(e->npoints, 12);
    ck_assert_uint_eq(e->naxes, 3);
    ck_assert_str_eq(e->axis_name[0], "workers");
    ck_assert_str_eq(e->axis_name[1], "policy");
    ck_assert_str_eq(e->axis_name[2], "arrival.load");
    /* First axis slowest, last fastest. */
    ck_assert_uint_eq(e->points[0].workers, 2);
    ck_assert_str_eq(e->points[0].policy, "random");
    ck_assert_double_eq(e->points[0].load, 0.5);
    ck_assert_double_eq(e->points[1].load, 0.7);
    ck_assert_str_eq(e->points[3].policy, "shared");
    ck_assert_double_eq(e->points[3].load, 0.5);
    ck_assert_uint_eq(e->points[6].workers, 4);
    ck_assert_str_eq(e->points[11].policy, "shared");
    ck_assert_double_eq(e->points[11].load, 0.9);
    for (size_t i = 0; i < e->npoints; i++) {
        ck_assert_uint_eq(e->points[i].index, i);
        ck_assert_uint_eq(e->points[i].repeat, 3);
        ck_assert_uint_eq(e->points[i].seed, 7);
        ck_assert_uint_eq(e->points[i].jobs, 1000);
    }
    belt__experiment_free(e);
}
END_TEST

START_TEST(test_service_and_speed_axes)
{
    belt__experiment *e = load_ok(
        "{\"workers\": 4, \"arrival\": {\"load\": 0.5},"
        " \"service\": [{\"dist\": \"exponential\", \"mean\": \"1ms\"},"
        "               {\"dist\": \"constant\", \"value\": \"2ms\"}],"
        " \"speeds\": [[2, 1], [1]]}");
    ck_assert_uint_eq(e->npoints, 4);
    ck_assert_int_eq(e->points[0].service.kind, BELT__DIST_EXPONENTIAL);
    ck_assert_int_eq(e->points[2].service.kind, BELT__DIST_CONSTANT);
    /* A shorter speeds list repeats over the workers. */
    const double *s = e->points[0].speeds;
    ck_assert(s != NULL);
    ck_assert(s[0] == 2 && s[1] == 1 && s[2] == 2 && s[3] == 1);
    ck_assert(e->points[1].speeds[3] == 1);
    /* Load is of the whole pool's capacity: speeds 2,1,2,1 at 1ms. */
    ck_assert_double_eq_tol(e->points[0].rate, 0.5 * 6 / 0.001, 1e-6);
    belt__experiment_free(e);

    e = load_ok("{\"workers\": 2, \"arrival\": {\"load\": 0.5},"
                " \"service\": {\"dist\": \"exponential\","
                "               \"mean\": [\"1ms\", \"2ms\", \"4ms\"]}}");
    ck_assert_uint_eq(e->npoints, 3);
    ck_assert_str_eq(e->axis_name[0], "service.mean");
    ck_assert_double_eq_tol(belt__dist_mean(&e->points[2].service), 0.004, 1e-12);
    belt__experiment_free(e);
}
END_TEST

static const char *live_cfg =
    "{\"workers\": 16, \"jobs\": 100000, " BASE ","
    " \"live\": {\"workers\": 4, \"jobs\": 500}}";

START_TEST(test_live_object)
{
    belt__experiment *e = load_ok(live_cfg);
    ck_assert_uint_eq(e->points[0].workers, 16);
    ck_assert_uint_eq(e->points[0].jobs, 100000);
    belt__experiment_free(e);

    belt__exp_overrides ov;
    belt__exp_overrides_init(&ov);
    ov.mode = BELT__EXP_LIVE;
    belt_config_error err;
    e = load(live_cfg, &ov, &err);
    ck_assert(e != NULL);
    ck_assert_int_eq(e->mode, BELT__EXP_LIVE);
    ck_assert_uint_eq(e->points[0].workers, 4);
    ck_assert_uint_eq(e->points[0].jobs, 500);
    belt__experiment_free(e);

    /* An error in a live value is reported at live.<key>. */
    load_bad("{\"workers\": 4, " BASE ", \"live\": {\"workers\": 0}}", &ov,
             "live.workers", "at least 1", 0);
    /* "live" may hold only what live mode can override. */
    load_bad("{\"workers\": 4, " BASE ", \"live\": {\"mode\": \"live\"}}",
             NULL, "live", "unknown key \"mode\"", 0);
}
END_TEST

START_TEST(test_overrides)
{
    belt__exp_overrides ov;
    belt__exp_overrides_init(&ov);
    ov.jobs = 123;
    ov.have_seed = true;
    ov.seed = 99;
    belt_config_error err;
    belt__experiment *e = load("{\"workers\": 4, \"jobs\": 5, \"seed\": 3, " BASE "}",
                               &ov, &err);
    ck_assert(e != NULL);
    ck_assert_uint_eq(e->points[0].jobs, 123);
    ck_assert_uint_eq(e->points[0].seed, 99);
    belt__experiment_free(e);
}
END_TEST

START_TEST(test_overload)
{
    /* Uncapped: an error at the load. */
    load_bad("{\"workers\": 4,\n \"arrival\": {\"load\": [0.5, 1.2]},\n"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "arrival.load[1]", "grows without bound", 2);
    /* Capped by jobs (or --jobs): a warning, and the point is marked. */
    belt__experiment *e = load_ok(
        "{\"workers\": 4, \"jobs\": 1000, \"arrival\": {\"load\": [0.5, 1.2]},"
        " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}");
    ck_assert_uint_eq(e->nwarnings, 1);
    ck_assert(strstr(e->warnings[0], "grows without bound") != NULL);
    ck_assert(!e->points[0].overload);
    ck_assert(e->points[1].overload);
    belt__experiment_free(e);
    belt__exp_overrides ov;
    belt__exp_overrides_init(&ov);
    ov.jobs = 50;
    belt_config_error err;
    e = load("{\"workers\": 1, \"arrival\": {\"load\": 1},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             &ov, &err);
    ck_assert(e != NULL);
    ck_assert(e->points[0].overload);
    belt__experiment_free(e);
    /* A rate that overloads counts too. */
    load_bad("{\"workers\": 1, \"arrival\": {\"rate\": 5000},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "arrival.rate", "grows without bound", 0);
}
END_TEST

START_TEST(test_invalid)
{
    load_bad("{\"workers\": 0, " BASE "}", NULL, "workers", "at least 1", 1);
    load_bad("{\"workers\": [4, 0], " BASE "}", NULL, "workers[1]", "at least 1", 0);
    load_bad("{\"workers\": 4, \"policy\": \"randm\", " BASE "}", NULL, "policy",
             "unknown policy \"randm\" (did you mean \"random\"?)", 0);
    load_bad("{\"workers\": 4, \"policy\": [\"shared\", \"powr-of-two\"], " BASE "}",
             NULL, "policy[1]", "did you mean \"power-of-two\"", 0);
    load_bad("{\"worker\": 4, " BASE "}", NULL, "",
             "unknown key \"worker\" (did you mean \"workers\"?)", 0);
    load_bad("{\"workers\": 4, \"duration\": \"1s\", " BASE "}", NULL, "",
             "did you mean \"max_time\"", 0);
    load_bad("{\"workers\": 4, \"mode\": \"simulated\", " BASE "}", NULL, "mode",
             "did you mean \"simulate\"", 0);
    load_bad("{\"workers\": 4, \"arrival\": {\"process\": \"poison\", \"load\": 0.5},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "arrival.process", "did you mean \"poisson\"", 0);
    load_bad("{\"workers\": 4, \"arrival\": {\"load\": 0.5, \"rate\": 10},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "arrival", "both \"load\" and \"rate\"", 0);
    load_bad("{\"workers\": 4, \"arrival\": {\"load\": []},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "arrival.load", "empty list", 0);
    load_bad("{\"workers\": 4, \"arrival\": {\"load\": -0.5},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "arrival.load", "must be > 0", 0);
    load_bad("{\"workers\": 4, \"arrival\": {\"process\": \"batch\"},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}",
             NULL, "", "batch arrivals need \"jobs\"", 0);
    load_bad("{\"workers\": 4, \"arrival\": {\"load\": 0.5}}", NULL, "",
             "missing \"service\"", 0);
    load_bad("{\"workers\": 4, \"speeds\": [1, 0], " BASE "}", NULL, "speeds[1]",
             "must be > 0", 0);
    load_bad("{\"workers\": 2, \"speeds\": [1, 1, 1], " BASE "}", NULL, "speeds",
             "3 speeds for 2 workers", 0);
    load_bad("{\"workers\": 4, \"repeat\": 0, " BASE "}", NULL, "repeat",
             "between 1 and", 0);
    load_bad("{\"workers\": 4, \"warmup\": 1.5, " BASE "}", NULL, "warmup",
             "[0, 1)", 0);
    load_bad("[1, 2]", NULL, "", "expected an object", 0);
    load_bad("{\"workers\": 4,\n  \"jobs\": }", NULL, "", "", 2);
}
END_TEST

START_TEST(test_invalid_service)
{
    /* Distribution parameters: the error names the parameter. */
    belt_config_error err;
    belt__experiment *e = load(
        "{\"workers\": 4, \"arrival\": {\"load\": 0.5},\n"
        " \"service\": {\"dist\": \"pareto\", \"alpha\": -1, \"min\": \"1ms\","
        " \"max\": \"1s\"}}", NULL, &err);
    ck_assert(e == NULL);
    ck_assert_int_eq(err.line, 2);
    ck_assert_msg(strstr(err.path, "service") != NULL, "path %s", err.path);
    ck_assert_msg(strstr(err.text, "alpha") != NULL ||
                  strstr(err.path, "alpha") != NULL, "text %s", err.text);
    e = load("{\"workers\": 4, \"arrival\": {\"load\": 0.5},"
             " \"service\": {\"dist\": \"exponentail\", \"mean\": \"1ms\"}}",
             NULL, &err);
    ck_assert(e == NULL);
    ck_assert_msg(strstr(err.text, "exponentail") != NULL, "text %s", err.text);
    /* An item of a service axis. */
    e = load("{\"workers\": 4, \"arrival\": {\"load\": 0.5},"
             " \"service\": {\"dist\": \"exponential\", \"mean\": [\"1ms\", \"-1ms\"]}}",
             NULL, &err);
    ck_assert(e == NULL);
    ck_assert_msg(strstr(err.path, "service") != NULL, "path %s", err.path);
}
END_TEST

START_TEST(test_trace)
{
    char dir[] = "/tmp/check_experiment.XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char path[256], cfg[512];
    snprintf(path, sizeof path, "%s/t.csv", dir);
    FILE *f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs("arrival,service\n0,0.001\n0.002,0.001\n0.003\n", f);
    fclose(f);
    snprintf(cfg, sizeof cfg,
             "{\"workers\": 2, \"arrival\": {\"process\": \"trace\", \"file\": \"%s\"}}",
             path);
    belt_config_error err;
    belt__experiment *e = load(cfg, NULL, &err);
    ck_assert(e == NULL);
    ck_assert_str_eq(err.path, "arrival.file");
    ck_assert_msg(strstr(err.text, ":4:") != NULL, "no line number: %s", err.text);

    f = fopen(path, "w");
    ck_assert(f != NULL);
    fputs("0,0.001\n0.002,0.001\n0.003,0.002\n", f);
    fclose(f);
    e = load(cfg, NULL, &err);
    ck_assert(e != NULL);
    ck_assert_uint_eq(e->points[0].trace.n, 3);
    ck_assert_uint_eq(e->points[0].jobs, 3);
    belt__experiment_free(e);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_theory)
{
    /* One server: P(wait) = ρ.  Two servers at a = 1: C = 1/3. */
    ck_assert_double_eq_tol(belt__erlang_c(1, 0.7), 0.7, 1e-12);
    ck_assert_double_eq_tol(belt__erlang_c(2, 1.0), 1.0 / 3, 1e-12);
    /* c = 10, a = 8: 0.409 (Kleinrock's tables). */
    ck_assert_double_eq_tol(belt__erlang_c(10, 8.0), 0.4092, 5e-4);
    belt__experiment *e = load_ok(
        "{\"workers\": 4, \"policy\": [\"random\", \"shared\", \"round-robin\"],"
        " \"arrival\": {\"load\": 0.8},"
        " \"service\": {\"dist\": \"exponential\", \"mean\": \"1ms\"}}");
    double mean, p99;
    belt__exp_theory(&e->points[0], &mean, &p99);
    ck_assert_double_eq_tol(mean, 0.005, 1e-12);          /* E[S]/(1-ρ) */
    ck_assert_double_eq_tol(p99, log(100) * 0.005, 1e-12);
    belt__exp_theory(&e->points[1], &mean, &p99);
    /* M/M/4 at a = 3.2: C = 0.5964, W = E[S] + C E[S]/(c - a). */
    ck_assert_double_eq_tol(mean, 0.001 + 0.5964 * 0.001 / 0.8, 2e-6);
    ck_assert(isnan(p99));
    belt__exp_theory(&e->points[2], &mean, &p99);
    ck_assert(isnan(mean));
    belt__experiment_free(e);
}
END_TEST

static Suite *experiment_suite(void)
{
    Suite *s = suite_create("experiment");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_sweep_order);
    tcase_add_test(tc, test_service_and_speed_axes);
    tcase_add_test(tc, test_live_object);
    tcase_add_test(tc, test_overrides);
    tcase_add_test(tc, test_overload);
    tcase_add_test(tc, test_invalid);
    tcase_add_test(tc, test_invalid_service);
    tcase_add_test(tc, test_trace);
    suite_add_tcase(s, tc);
    tc = tcase_create("theory");
    tcase_add_test(tc, test_theory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(experiment_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
