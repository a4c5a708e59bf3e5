/* check_job.c: unit tests of exec/job.c: job defaults, results, status names
 * and duration parsing (include/belt/job.h).
 *
 * TCases:
 *   core       belt_job_init, belt_result_new/free, belt_job_status_name
 *   durations  belt_parse_duration: a table of good inputs with their value
 *              and of bad inputs (which must leave *out untouched)
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "belt/error.h"
#include "belt/job.h"

#define TU_MS ((int64_t)1000000)
#define TU_SEC ((int64_t)1000000000)

#define ck_assert_rc(got, want)                                                \
    do {                                                                       \
        int rc_ = (got);                                                       \
        ck_assert_msg(rc_ == (want), "%s: got %s, want %s", #got,              \
                      belt_err_name(rc_), belt_err_name(want));                \
    } while (0)

/* ---- core --------------------------------------------------------------- */

START_TEST(test_job_init)
{
    belt_job j;
    memset(&j, 0xab, sizeof j);
    belt_job_init(&j);
    ck_assert_int_eq(j.kind, BELT_JOB_EXEC);
    ck_assert_int_eq(j.output, BELT_OUTPUT_CAPTURE);
    ck_assert_uint_eq(j.output_limit, 1u << 20);
    ck_assert_int_eq(j.timeout_ns, 0);
    ck_assert_int_eq(j.kill_grace_ns, 2 * TU_SEC);
    ck_assert_uint_eq(j.retries, 0);
    ck_assert_int_eq(j.retry_delay_ns, 100 * TU_MS);
    ck_assert_int_eq(j.retry_max_delay_ns, 30 * TU_SEC);
    ck_assert_ptr_null(j.id);
    ck_assert_ptr_null(j.run);
    ck_assert_ptr_null(j.argv);
    ck_assert_ptr_null(j.env);
    ck_assert_ptr_null(j.cwd);
    ck_assert_ptr_null(j.stdin_path);
    ck_assert_ptr_null(j.output_dir);
    ck_assert_ptr_null(j.user);
    ck_assert_uint_eq(j.seq, 0);
    ck_assert_int_eq(j.duration_ns, 0);
}
END_TEST

START_TEST(test_result_new)
{
    belt_job j;
    int user;
    belt_job_init(&j);
    j.seq = 42;
    j.user = &user;
    belt_result *r = belt_result_new(&j);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_eq(r->job, &j);
    ck_assert_uint_eq(r->seq, 42);
    ck_assert_ptr_eq(r->user, &user);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_int_eq(r->exit_code, -1);
    ck_assert_int_eq(r->signal, 0);
    ck_assert_int_eq(r->worker, -1);
    ck_assert_int_eq(r->out_fd, -1);
    ck_assert_int_eq(r->err_fd, -1);
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_ptr_null(r->attempt_log);
    ck_assert_ptr_null(r->out);
    ck_assert_ptr_null(r->err);
    ck_assert_ptr_null(r->error);
    belt_result_free(r);

    r = belt_result_new(NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_null(r->job);
    ck_assert_uint_eq(r->seq, 0);
    belt_result_free(r);
    belt_result_free(NULL); /* no-op */
}
END_TEST

START_TEST(test_result_free_owns_everything)
{
    /* Under ASan a leak of any of these fails the test. */
    belt_result *r = belt_result_new(NULL);
    ck_assert_ptr_nonnull(r);
    r->out = strdup("o");
    r->err = strdup("e");
    r->out_path = strdup("/x.out");
    r->err_path = strdup("/x.err");
    r->error = strdup("boom");
    r->attempt_log = calloc(2, sizeof *r->attempt_log);
    r->out_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    r->err_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(r->out_fd, 0);
    ck_assert_int_ge(r->err_fd, 0);
    int ofd = r->out_fd, efd = r->err_fd;
    belt_result_free(r);
    ck_assert_int_eq(fcntl(ofd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(fcntl(efd, F_GETFD), -1);
}
END_TEST

START_TEST(test_status_names)
{
    ck_assert_str_eq(belt_job_status_name(BELT_JOB_OK), "ok");
    ck_assert_str_eq(belt_job_status_name(BELT_JOB_FAILED), "failed");
    ck_assert_str_eq(belt_job_status_name(BELT_JOB_TIMEOUT), "timeout");
    ck_assert_str_eq(belt_job_status_name(BELT_JOB_SKIPPED), "skipped");
    ck_assert_str_eq(belt_job_status_name(BELT_JOB_ERROR), "error");
    ck_assert_str_eq(belt_job_status_name(BELT_JOB_CANCELED), "canceled");
    ck_assert_str_eq(belt_job_status_name((belt_job_status)99), "unknown");
    ck_assert_str_eq(belt_job_status_name((belt_job_status)-1), "unknown");
}
END_TEST

START_TEST(test_kind_and_output_names)
{
    ck_assert_str_eq(belt_job_kind_name(BELT_JOB_EXEC), "exec");
    ck_assert_str_eq(belt_job_kind_name(BELT_JOB_SLEEP), "sleep");
    ck_assert_str_eq(belt_job_kind_name(BELT_JOB_SPIN), "spin");
    ck_assert_str_eq(belt_job_kind_name(BELT_JOB_NOOP), "noop");
    ck_assert_str_eq(belt_job_kind_name((belt_job_kind)7), "unknown");
    ck_assert_str_eq(belt_output_mode_name(BELT_OUTPUT_CAPTURE), "capture");
    ck_assert_str_eq(belt_output_mode_name(BELT_OUTPUT_FILES), "files");
    ck_assert_str_eq(belt_output_mode_name(BELT_OUTPUT_GROUP), "group");
    ck_assert_str_eq(belt_output_mode_name(BELT_OUTPUT_LINES), "lines");
    ck_assert_str_eq(belt_output_mode_name(BELT_OUTPUT_INHERIT), "inherit");
    ck_assert_str_eq(belt_output_mode_name(BELT_OUTPUT_DISCARD), "discard");
    ck_assert_str_eq(belt_output_mode_name((belt_output_mode)-1), "unknown");
}
END_TEST

/* The ABI rule (belt/pool.h): the init functions leave the reserved
 * fields zero, so that a later field taking their place means "as
 * before". */
START_TEST(test_reserved_zero)
{
    belt_job j;
    memset(&j, 0xA5, sizeof j);
    belt_job_init(&j);
    for (size_t i = 0; i < sizeof j.reserved / sizeof j.reserved[0]; i++)
        ck_assert_ptr_null(j.reserved[i]);
    belt_result *r = belt_result_new(&j);
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < sizeof r->reserved / sizeof r->reserved[0]; i++)
        ck_assert_ptr_null(r->reserved[i]);
    belt_result_free(r);
}
END_TEST

/* ---- durations ---------------------------------------------------------- */

static const struct {
    const char *text;
    int64_t ns;
} good[] = {
    { "500ms", 500 * TU_MS },
    { "1.5s", 1500 * TU_MS },
    { "2m", 120 * TU_SEC },
    { "1h", 3600 * TU_SEC },
    { "10", 10 * TU_SEC },
    { "0s", 0 },
    { "0", 0 },
    { "0.25", 250 * TU_MS },
    { "30s", 30 * TU_SEC },
    { "1ns", 1 },
    { "1us", 1000 },
    { "1\xc2\xb5s", 1000 },
    { "2.5us", 2500 },
    { "1ms", TU_MS },
    { ".5s", 500 * TU_MS },
    { "5.s", 5 * TU_SEC },
    { "007s", 7 * TU_SEC },
    { "1h30m", 5400 * TU_SEC },
    { "1m0.5s", 60 * TU_SEC + 500 * TU_MS },
    { "1s500ms", 1500 * TU_MS },
    { "0.1h", 360 * TU_SEC },
    { "1.9ns", 1 },                     /* truncated to whole ns */
    { "0.0000000001s", 0 },
    { "0.333333333333333333333s", 333333333 },
    { "1.000000000000000000000001h", 3600 * TU_SEC },
    { "9223372036854775807ns", INT64_MAX },
    { "9223372036.854775807s", INT64_MAX },
    { "2562047h", 2562047LL * 3600 * TU_SEC },
};

static const char *const bad[] = {
    "", "-1s", "+1s", "-0", "5x", "1e999s", "1e3", "1e3s", " 1s", "1s ",
    "1 s", "s", "ms", ".", ".s", "1..5s", "1.5.5s", "1h1", "1ss", "1sm",
    "nan", "inf", "infinity", "0x10s", "1,5s", "1S", "1H", "1d", "1y",
    "9223372036854775808ns", "9223372036.854775808s", "2562048h",
    "99999999999999999999s", "99999999999999999999999999999ns",
    "2562047h2562047h", "1h\n", "\t1s",
};

START_TEST(test_parse_good)
{
    int64_t v = -7;
    int rc = belt_parse_duration(good[_i].text, &v);
    ck_assert_msg(rc == BELT_OK, "\"%s\": got %s", good[_i].text, belt_err_name(rc));
    ck_assert_msg(v == good[_i].ns, "\"%s\": got %lld ns, want %lld",
                  good[_i].text, (long long)v, (long long)good[_i].ns);
}
END_TEST

START_TEST(test_parse_bad)
{
    int64_t v = -7;
    int rc = belt_parse_duration(bad[_i], &v);
    ck_assert_msg(rc == BELT_EINVAL, "\"%s\": got %s, want EINVAL", bad[_i],
                  belt_err_name(rc));
    ck_assert_msg(v == -7, "\"%s\": *out changed to %lld", bad[_i], (long long)v);
}
END_TEST

START_TEST(test_parse_null)
{
    int64_t v = -7;
    ck_assert_rc(belt_parse_duration(NULL, &v), BELT_EINVAL);
    ck_assert_int_eq(v, -7);
    ck_assert_rc(belt_parse_duration("1s", NULL), BELT_EINVAL);
}
END_TEST

static Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_job_init);
    tcase_add_test(tc, test_result_new);
    tcase_add_test(tc, test_result_free_owns_everything);
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_kind_and_output_names);
    tcase_add_test(tc, test_reserved_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("durations");
    tcase_add_loop_test(tc, test_parse_good, 0, (int)(sizeof good / sizeof good[0]));
    tcase_add_loop_test(tc, test_parse_bad, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, test_parse_null);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(job_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
