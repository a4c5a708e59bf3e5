/* check_report.c: unit tests of report.c, the result records, job log and
 * statistics that `belt run` writes (src/report.h).
 *
 * TCases:
 *   records    belt__report_result_line: keys, nulls, UTF-8 repair, NULs,
 *              attempt_log; belt__report_job_line; belt__format_time
 *   quoting    belt__shell_quote_append and belt__job_command, checked by
 *              running the quoted text through /bin/sh
 *   joblog     header and line layout of GNU parallel's --joblog
 *   stats      counts, quantiles of the log-linear histogram (3% error)
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/job.h"
#include "report.h"

#define MS ((int64_t)1000000)

/* Parses the line back, checking it is one JSON object ending in '\n'. */
static json_t *parse_line(const char *line, size_t len)
{
    ck_assert_uint_gt(len, 2);
    ck_assert_int_eq(line[len - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', len - 1));
    json_error_t e;
    json_t *j = json_loadb(line, len, JSON_ALLOW_NUL, &e);
    ck_assert_msg(j != NULL, "not JSON: %s: %s", e.text, line);
    ck_assert(json_is_object(j));
    return j;
}

/* ---- records ------------------------------------------------------------ */

START_TEST(test_result_line_ok)
{
    belt_job job;
    belt_job_init(&job);
    job.id = "build-1";
    job.run = "make";
    job.seq = 7;
    belt_result *r = belt_result_new(&job);
    ck_assert_ptr_nonnull(r);
    r->status = BELT_JOB_OK;
    r->exit_code = 0;
    r->attempts = 1;
    r->worker = 2;
    r->queued_ns = 1700000000000000000LL;
    r->started_ns = r->queued_ns + 5 * MS;
    r->ended_ns = r->started_ns + 1234567890LL;
    r->duration_ns = 1234567890LL;
    r->out = strdup("hi\n");
    r->out_len = 3;
    r->err = strdup("");
    r->attempt_log = calloc(1, sizeof *r->attempt_log);
    r->attempt_log[0].status = BELT_JOB_OK;
    r->attempt_log[0].exit_code = 0;
    r->attempt_log[0].duration_ns = 1234567890LL;

    size_t len;
    char *line = belt__report_result_line(r, &len);
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_eq(strlen(line), len);
    json_t *j = parse_line(line, len);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "build-1");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "seq")), 7);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "exit_code")), 0);
    ck_assert(json_is_null(json_object_get(j, "signal")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "worker")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(j, "queued")),
                     "2023-11-14T22:13:20.000Z");
    ck_assert_str_eq(json_string_value(json_object_get(j, "started")),
                     "2023-11-14T22:13:20.005Z");
    ck_assert_double_eq_tol(
        json_real_value(json_object_get(j, "duration_ms")), 1234.568, 1e-9);
    ck_assert_str_eq(json_string_value(json_object_get(j, "stdout")), "hi\n");
    ck_assert_str_eq(json_string_value(json_object_get(j, "stderr")), "");
    ck_assert(json_is_null(json_object_get(j, "error")));
    ck_assert_ptr_null(json_object_get(j, "stdout_truncated"));
    json_t *log = json_object_get(j, "attempt_log");
    ck_assert_uint_eq(json_array_size(log), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(log, 0),
                                                       "status")), "ok");
    /* Three decimals exactly, not 1234.5678900000001. */
    ck_assert_ptr_nonnull(strstr(line, "\"duration_ms\":1234.568,"));
    json_decref(j);
    free(line);
    belt_result_free(r);
}
END_TEST

START_TEST(test_result_line_unrun)
{
    belt_job job;
    belt_job_init(&job);
    job.id = "publish";
    belt_result *r = belt_result_new(&job);
    r->status = BELT_JOB_SKIPPED;
    r->error = strdup("dependency \"x\" failed (status failed)");
    size_t len;
    char *line = belt__report_result_line(r, &len);
    json_t *j = parse_line(line, len);
    const char *nulls[] = {"exit_code", "signal", "worker", "queued", "started",
                           "ended", "duration_ms", "stdout", "stderr"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        ck_assert_msg(json_is_null(json_object_get(j, nulls[i])),
                      "%s should be null", nulls[i]);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "attempts")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "error")),
                     "dependency \"x\" failed (status failed)");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "attempt_log")), 0);
    json_decref(j);
    free(line);
    belt_result_free(r);
}
END_TEST

START_TEST(test_result_line_bytes)
{
    belt_job job;
    belt_job_init(&job);
    job.id = "b\xffid";
    belt_result *r = belt_result_new(&job);
    r->status = BELT_JOB_FAILED;
    r->signal = 9;
    static const char raw[] = "a\xff" "b\0c\xe2\x82\xac\xed\xa0\x80\xc0\xaf";
    r->out = malloc(sizeof raw);
    memcpy(r->out, raw, sizeof raw);
    r->out_len = sizeof raw - 1;
    r->out_truncated = true;
    r->out_path = strdup("out/x.out");
    size_t len;
    char *line = belt__report_result_line(r, &len);
    json_t *j = parse_line(line, len);
    json_t *out = json_object_get(j, "stdout");
    /* a U+FFFD b NUL c EURO, then the surrogate (3 bytes) and the overlong
     * form (2 bytes) each byte replaced. */
    static const char want[] = "a\xef\xbf\xbd" "b\0c\xe2\x82\xac"
                               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                               "\xef\xbf\xbd\xef\xbf\xbd";
    ck_assert_uint_eq(json_string_length(out), sizeof want - 1);
    ck_assert(memcmp(json_string_value(out), want, sizeof want - 1) == 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")),
                     "b\xef\xbf\xbdid");
    ck_assert(json_is_true(json_object_get(j, "stdout_truncated")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "stdout_path")),
                     "out/x.out");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "signal")), 9);
    json_decref(j);
    free(line);
    belt_result_free(r);
}
END_TEST

START_TEST(test_job_line)
{
    char *argv[] = {"echo", "a b", NULL};
    char *env[] = {"A=1", "B=x=y", NULL};
    belt_job job;
    belt_job_init(&job);
    job.id = "j";
    job.argv = argv;
    job.env = env;
    job.timeout_ns = 1500 * MS;
    job.retries = 2;
    size_t len;
    char *line = belt__report_job_line(&job, &len);
    json_t *j = parse_line(line, len);
    ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "exec");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "argv")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(j, "env"), "B")), "x=y");
    ck_assert_double_eq_tol(json_real_value(json_object_get(j, "timeout_ms")),
                            1500, 1e-9);
    ck_assert_str_eq(json_string_value(json_object_get(j, "output")),
                     "capture");
    json_decref(j);
    free(line);

    belt_job_init(&job);
    job.id = "nap";
    job.kind = BELT_JOB_SLEEP;
    job.duration_ns = 50 * MS;
    line = belt__report_job_line(&job, &len);
    j = parse_line(line, len);
    ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "sleep");
    ck_assert_double_eq_tol(json_real_value(json_object_get(j, "duration_ms")),
                            50, 1e-9);
    ck_assert(json_is_null(json_object_get(j, "timeout_ms")));
    json_decref(j);
    free(line);
}
END_TEST

START_TEST(test_format_time)
{
    char buf[48];
    ck_assert_str_eq(belt__format_time(0, buf, sizeof buf),
                     "1970-01-01T00:00:00.000Z");
    ck_assert_str_eq(belt__format_time(951782400999999999LL, buf, sizeof buf),
                     "2000-02-29T00:00:00.999Z");
}
END_TEST

/* ---- quoting -------------------------------------------------------------- */

/* Runs `printf '%s' QUOTED` through /bin/sh and returns what it printed. */
static char *sh_roundtrip(const char *quoted)
{
    char *cmd = NULL;
    ck_assert_int_ge(asprintf(&cmd, "printf '%%s' %s", quoted), 0);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    free(cmd);
    return out;
}

START_TEST(test_shell_quote)
{
    const char *nasty[] = {
        "plain", "", "with space", "it's", "'", "''", "\"dq\"", "$HOME",
        "$(echo no)", "`echo no`", "a; echo INJECTED", "back\\slash", "*",
        "new\nline", "tab\there", "~", "!x", "{}", "-n",
    };
    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        char *buf = NULL;
        size_t len = 0, cap = 0;
        ck_assert_int_eq(belt__shell_quote_append(&buf, &len, &cap, nasty[i],
                                                  strlen(nasty[i])), 0);
        ck_assert_uint_eq(strlen(buf), len);
        ck_assert_str_eq(sh_roundtrip(buf), nasty[i]);
        free(buf);
    }
}
END_TEST

START_TEST(test_job_command)
{
    char *argv[] = {"printf", "%s|", "a b", "it's", "plain-word", NULL};
    belt_job job;
    belt_job_init(&job);
    job.argv = argv;
    char *cmd = belt__job_command(&job);
    ck_assert_str_eq(cmd, "printf '%s|' 'a b' 'it'\\''s' plain-word");
    free(cmd);

    belt_job_init(&job);
    job.run = "echo hi; exit 2";
    cmd = belt__job_command(&job);
    ck_assert_str_eq(cmd, "echo hi; exit 2");
    free(cmd);

    belt_job_init(&job);
    job.kind = BELT_JOB_NOOP;
    cmd = belt__job_command(&job);
    ck_assert_str_eq(cmd, "belt:noop");
    free(cmd);
}
END_TEST

/* ---- joblog ------------------------------------------------------------------ */

START_TEST(test_joblog)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ck_assert_int_eq(belt__joblog_header(f), 0);
    belt_job job;
    belt_job_init(&job);
    belt_result *r = belt_result_new(&job);
    r->seq = 4;
    r->status = BELT_JOB_FAILED;
    r->exit_code = -1;
    r->signal = 15;
    r->attempts = 1;
    r->started_ns = 1700000000123000000LL;
    r->ended_ns = r->started_ns + 2500 * MS;
    ck_assert_int_eq(belt__joblog_line(f, r, "echo a\necho b", 12), 0);
    fclose(f);
    ck_assert_str_eq(text,
                     "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\t"
                     "Exitval\tSignal\tCommand\n"
                     "5\t:\t1700000000.123\t     2.500\t0\t12\t-1\t15\t"
                     "echo a");
    /* The newline in the command became NUL (as parallel writes it). */
    size_t hl = strlen(text);
    ck_assert_uint_eq(size, hl + 1 + strlen("echo b") + 1);
    ck_assert_str_eq(text + hl + 1, "echo b\n");
    free(text);
    belt_result_free(r);
}
END_TEST

/* ---- stats ---------------------------------------------------------------- */

START_TEST(test_stats)
{
    belt__stats *s = belt__stats_new();
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(belt__stats_quantile(s, 0.5), 0);
    belt_result r;
    memset(&r, 0, sizeof r);
    /* 1..1000 ms, all ok: p50 ~ 500 ms, p99 ~ 990 ms. */
    r.attempts = 1;
    for (int i = 1; i <= 1000; i++) {
        r.status = BELT_JOB_OK;
        r.duration_ns = i * MS;
        belt__stats_add(s, &r, false);
    }
    int64_t p50 = belt__stats_quantile(s, 0.5);
    int64_t p99 = belt__stats_quantile(s, 0.99);
    ck_assert_msg(p50 > 485 * MS && p50 < 515 * MS, "p50 %lld", (long long)p50);
    ck_assert_msg(p99 > 960 * MS && p99 < 1020 * MS, "p99 %lld", (long long)p99);
    /* Tiny durations land in the linear buckets. */
    belt__stats *t = belt__stats_new();
    r.duration_ns = 3000;
    belt__stats_add(t, &r, false);
    ck_assert_int_eq(belt__stats_quantile(t, 1.0), 3500);
    belt__stats_free(t);

    r.status = BELT_JOB_FAILED;
    belt__stats_add(s, &r, false);
    r.status = BELT_JOB_SKIPPED;
    r.attempts = 0;
    belt__stats_add(s, &r, true);  /* resumed */
    belt__stats_add(s, &r, false); /* skipped */
    ck_assert_uint_eq(belt__stats_total(s), 1003);
    ck_assert_uint_eq(belt__stats_count(s, BELT_JOB_OK), 1000);
    ck_assert_uint_eq(belt__stats_count(s, BELT_JOB_SKIPPED), 1);
    ck_assert_uint_eq(belt__stats_resumed(s), 1);
    ck_assert_uint_eq(belt__stats_unsuccessful(s), 2);

    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int64_t busy[2] = {500 * MS, 1000 * MS};
    belt__stats_summary(s, f, 2000 * MS, busy, 2);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "1003 jobs in 2.00s (501.5 jobs/s): "
                                       "1000 ok, 1 failed, 1 skipped, "
                                       "1 resumed\n"));
    ck_assert_ptr_nonnull(strstr(text, "p50 "));
    ck_assert_ptr_nonnull(strstr(text, "worker busy: 0:25% 1:50%\n"));
    free(text);
    belt__stats_free(s);
}
END_TEST

START_TEST(test_durations)
{
    char b[32];
    ck_assert_str_eq(belt__report_duration(850000, b, sizeof b), "850us");
    ck_assert_str_eq(belt__report_duration(12300000, b, sizeof b), "12.3ms");
    ck_assert_str_eq(belt__report_duration(4200000000LL, b, sizeof b), "4.20s");
    ck_assert_str_eq(belt__report_duration(185000000000LL, b, sizeof b),
                     "3m05s");
    ck_assert_str_eq(belt__report_duration(7260000000000LL, b, sizeof b),
                     "2h01m");
}
END_TEST

static Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("records");
    tcase_add_test(tc, test_result_line_ok);
    tcase_add_test(tc, test_result_line_unrun);
    tcase_add_test(tc, test_result_line_bytes);
    tcase_add_test(tc, test_job_line);
    tcase_add_test(tc, test_format_time);
    suite_add_tcase(s, tc);
    tc = tcase_create("quoting");
    tcase_add_test(tc, test_shell_quote);
    tcase_add_test(tc, test_job_command);
    suite_add_tcase(s, tc);
    tc = tcase_create("joblog");
    tcase_add_test(tc, test_joblog);
    suite_add_tcase(s, tc);
    tc = tcase_create("stats");
    tcase_add_test(tc, test_stats);
    tcase_add_test(tc, test_durations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(report_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
