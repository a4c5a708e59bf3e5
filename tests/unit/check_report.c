/* check_report.c: unit tests of app/report.c, the result records, job log and
 * statistics that `belt run` writes (src/app/report.h).
 *
 * TCases:
 *   records    belt__report_result_line: keys, nulls, UTF-8 repair, NULs,
 *              attempt_log; belt__report_job_line; belt__format_time
 *   differential
 *              records are written directly, without jansson, but must be
 *              byte for byte what the jansson builder they replaced made:
 *              that builder is kept here (ref_result_line) and compared
 *              with belt__report_result_line (and the append form) on
 *              seeded random results (random bytes, invalid UTF-8, NULs,
 *              control characters; any time, duration, status, exit code,
 *              signal, attempt log), on every byte value at every offset,
 *              and belt__format_time with gmtime_r + snprintf
 *   quoting    belt__job_command (util/shell.h's quoting is tested in
 *              check_util.c)
 *   joblog     header and line layout of GNU parallel's --joblog
 *   stats      counts, quantiles of the log-linear histogram (3% error)
 */
#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt/job.h"
#include "app/report.h"
/* test_util.h has helpers for threaded tests that this file does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_util.h"
#pragma GCC diagnostic pop

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

/* ---- the reference: the jansson builder records used to come from ------- */

/* The differential test compares belt__report_result_line with this, which
 * is app/report.c's jansson-based builder as it was before records were
 * written directly (kept verbatim but for names): a json_t object dumped with
 * json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(12)).  The record format is
 * defined by what this produced. */

static size_t ref_utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static json_t *ref_json_bytes(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, l;
    while (i < n && (l = ref_utf8_seq_len(u + i, n - i)) != 0)
        i += l;
    if (i == n)
        return json_stringn_nocheck(s, n);
    char *buf = malloc(n * 3 + 1);
    if (buf == NULL)
        return NULL;
    size_t o = 0;
    i = 0;
    while (i < n) {
        l = ref_utf8_seq_len(u + i, n - i);
        if (l == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, l);
            o += l;
            i += l;
        }
    }
    json_t *j = json_stringn_nocheck(buf, o);
    free(buf);
    return j;
}

static json_t *ref_str_or_null(const char *s)
{
    return s ? ref_json_bytes(s, strlen(s)) : json_null();
}

static char *ref_format_time(int64_t ns, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    time_t secs = (time_t)(ns / 1000000000);
    int ms = (int)((ns % 1000000000) / 1000000);
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, size, "?");
        return buf;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ms);
    return buf;
}

static json_t *ref_time(int64_t ns)
{
    char buf[48];
    if (ns <= 0)
        return json_null();
    return json_string(ref_format_time(ns, buf, sizeof buf));
}

static json_t *ref_ms(int64_t ns)
{
    int64_t us = ns >= 0 ? (ns + 500) / 1000 : (ns - 500) / 1000;
    return json_real((double)us / 1000.0);
}

static int ref_set(json_t *obj, const char *key, json_t *value)
{
    if (value == NULL)
        return -1;
    return json_object_set_new_nocheck(obj, key, value);
}

static char *ref_dump_line(json_t *obj, size_t *len)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(obj);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line == NULL) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return line;
}

static json_t *ref_exit_code(int exit_code)
{
    return exit_code >= 0 ? json_integer(exit_code) : json_null();
}

static json_t *ref_signal(int sig)
{
    return sig > 0 ? json_integer(sig) : json_null();
}

static char *ref_result_line(const belt_result *r, size_t *len)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const char *id = r->job && r->job->id ? r->job->id : "";
    bool ran = r->attempts > 0;
    int rc = 0;
    rc |= ref_set(o, "id", ref_json_bytes(id, strlen(id)));
    rc |= ref_set(o, "seq", json_integer((json_int_t)r->seq));
    rc |= ref_set(o, "status", json_string(belt_job_status_name(r->status)));
    rc |= ref_set(o, "exit_code", ref_exit_code(r->exit_code));
    rc |= ref_set(o, "signal", ref_signal(r->signal));
    rc |= ref_set(o, "attempts", json_integer(r->attempts));
    rc |= ref_set(o, "worker", r->worker >= 0 ? json_integer(r->worker)
                                              : json_null());
    rc |= ref_set(o, "queued", ref_time(r->queued_ns));
    rc |= ref_set(o, "started", ref_time(r->started_ns));
    rc |= ref_set(o, "ended", ref_time(r->ended_ns));
    rc |= ref_set(o, "duration_ms", ran ? ref_ms(r->duration_ns)
                                        : json_null());
    rc |= ref_set(o, "stdout", r->out ? ref_json_bytes(r->out, r->out_len)
                                      : json_null());
    rc |= ref_set(o, "stderr", r->err ? ref_json_bytes(r->err, r->err_len)
                                      : json_null());
    if (r->out_path)
        rc |= ref_set(o, "stdout_path", ref_str_or_null(r->out_path));
    if (r->err_path)
        rc |= ref_set(o, "stderr_path", ref_str_or_null(r->err_path));
    if (r->out_truncated)
        rc |= ref_set(o, "stdout_truncated", json_true());
    if (r->err_truncated)
        rc |= ref_set(o, "stderr_truncated", json_true());
    rc |= ref_set(o, "error", ref_str_or_null(r->error));

    json_t *log = json_array();
    rc |= ref_set(o, "attempt_log", log);
    for (unsigned i = 0; rc == 0 && log && r->attempt_log &&
                         i < r->attempts; i++) {
        const belt_attempt *a = &r->attempt_log[i];
        json_t *ao = json_object();
        if (ao == NULL || json_array_append_new(log, ao) != 0) {
            rc = -1;
            break;
        }
        rc |= ref_set(ao, "status",
                      json_string(belt_job_status_name(a->status)));
        rc |= ref_set(ao, "exit_code", ref_exit_code(a->exit_code));
        rc |= ref_set(ao, "signal", ref_signal(a->signal));
        rc |= ref_set(ao, "started", ref_time(a->started_ns));
        rc |= ref_set(ao, "ended", ref_time(a->ended_ns));
        rc |= ref_set(ao, "duration_ms", ref_ms(a->duration_ns));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return ref_dump_line(o, len);
}

/* ---- random results for the differential test --------------------------- */

/* Byte strings built from pieces chosen to hit every path of the string
 * writer: runs of plain ASCII (long enough for the 8-byte steps, ending at
 * every offset), each escape, other control characters, DEL, '/', valid
 * 2-, 3- and 4-byte UTF-8, and invalid sequences of every kind. */
static size_t rand_piece(uint64_t *st, char *p)
{
    static const char *const pieces[] = {
        "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x7f", "\x1f", "\x01",
        "\x0b", "\x1b",
        "\xc3\xa9", "\xc2\x80", "\xdf\xbf",                     /* 2 bytes */
        "\xe2\x82\xac", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xee\x80\x80",
        "\xed\x9f\xbf",                                          /* 3 bytes */
        "\xf0\x9f\x98\x80", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", /* 4 */
        "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf",  /* invalid */
        "\xf0\x80\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80", "\xf8", "\xfe", "\xff", "\xc3", "\xe2\x82",
        "\xf0\x9f\x98", "\xc3\x28", "\xe2\x28\xa1", "\xf0\x28\x8c\x28",
    };
    uint64_t x = tu_rand(st);
    switch (x % 8) {
    case 0: case 1: case 2: {        /* plain ASCII run, 1..40 bytes */
        size_t n = 1 + (size_t)(x >> 8) % 40;
        for (size_t i = 0; i < n; i++)
            p[i] = (char)(0x20 + tu_rand(st) % 0x5f);
        for (size_t i = 0; i < n; i++)
            if (p[i] == '"' || p[i] == '\\')
                p[i] = 'q';
        return n;
    }
    case 3:                          /* NUL */
        p[0] = '\0';
        return 1;
    case 4: {                        /* any byte */
        p[0] = (char)(x >> 8);
        return 1;
    }
    default: {
        const char *s = pieces[(x >> 8) % (sizeof pieces / sizeof pieces[0])];
        size_t n = strlen(s);
        memcpy(p, s, n);
        return n;
    }
    }
}

/* A malloc'd string of random pieces, its length in *len (NUL-terminated
 * after it); with `text`, NULs are left out (ids, paths, messages). */
static char *rand_bytes(uint64_t *st, size_t *len, bool text)
{
    size_t want;
    uint64_t x = tu_rand(st);
    switch (x % 6) {
    case 0: want = 0; break;
    case 1: want = 1 + (x >> 8) % 8; break;
    case 2: case 3: want = (x >> 8) % 64; break;
    case 4: want = (x >> 8) % 400; break;
    default: want = (x >> 8) % 3000; break;
    }
    char *s = malloc(want + 64);
    ck_assert_ptr_nonnull(s);
    size_t n = 0;
    while (n < want) {
        char piece[48];
        size_t l = rand_piece(st, piece);
        for (size_t i = 0; i < l; i++)
            if (!text || piece[i] != '\0')
                s[n++] = piece[i];
    }
    s[n] = '\0';
    *len = n;
    return s;
}

static char *rand_text_or_null(uint64_t *st)
{
    if (tu_rand(st) % 3 == 0)
        return NULL;
    size_t n;
    return rand_bytes(st, &n, true);
}

/* Times: unset, negative, around the epoch, now-ish, near second
 * boundaries, and the far end of int64_t. */
static int64_t rand_time(uint64_t *st)
{
    uint64_t x = tu_rand(st);
    switch (x % 10) {
    case 0: return 0;
    case 1: return -(int64_t)(tu_rand(st) >> 1);
    case 2: return (int64_t)(tu_rand(st) % 4000000000ull);
    case 3: return INT64_MAX - (int64_t)(tu_rand(st) % 1000000000000ull);
    case 4: return (int64_t)(tu_rand(st) >> 1);
    case 5: return 1700000000000000000LL +
                   (int64_t)(tu_rand(st) % 100000) * 1000000000 - 1 +
                   (int64_t)(tu_rand(st) % 3);
    default: return 1600000000000000000LL +
                    (int64_t)(tu_rand(st) % 400000000000000000ull);
    }
}

/* Durations: zero, below a millisecond, rounding edges at the microsecond,
 * large (>1e9 ms, >1e12 ms), negative.  Kept 500 ns inside int64_t: the
 * reference rounds with ns + 500, which overflows beyond. */
static int64_t rand_duration(uint64_t *st)
{
    uint64_t x = tu_rand(st);
    int64_t us = (int64_t)(tu_rand(st) % 2000000);
    switch (x % 12) {
    case 0: return 0;
    case 1: return (int64_t)(tu_rand(st) % 1000000);
    case 2: return us * 1000 + 499 + (int64_t)(tu_rand(st) % 3);
    case 3: return -(us * 1000 + 499 + (int64_t)(tu_rand(st) % 3));
    case 4: return (int64_t)(tu_rand(st) % 2000000000000000ull); /* ~1e9 ms */
    case 5: return 999999999999000 + (int64_t)(tu_rand(st) % 2000);
    case 6: return (int64_t)(tu_rand(st) >> 1) % (INT64_MAX - 500);
    case 7: return -((int64_t)(tu_rand(st) >> 1) % (INT64_MAX - 500));
    case 8: return INT64_MAX - 500 - (int64_t)(tu_rand(st) % 100000);
    case 9: /* exact multiples of 1 ms, 1 s, 1e12 us and more */
        return (int64_t)(tu_rand(st) % 100000) *
               (int64_t)(x % 3 == 0 ? 1000000 : x % 3 == 1 ? 1000000000
                                                           : 1000000000000);
    default: return (int64_t)(tu_rand(st) % 100000000000ull);
    }
}

static int rand_exit(uint64_t *st)
{
    static const int v[] = {-1, 0, 1, 2, 127, 255, -1, 0};
    return v[tu_rand(st) % 8];
}

static int rand_signal(uint64_t *st)
{
    static const int v[] = {0, 0, 0, 9, 15, 1, -1, 64};
    return v[tu_rand(st) % 8];
}

static belt_job_status rand_status(uint64_t *st)
{
    uint64_t x = tu_rand(st) % 9;
    return (belt_job_status)(x <= BELT_JOB_CANCELED ? x : x == 8 ? 99 : 0);
}

/* A random result for `job` (whose id the caller set). */
static belt_result *rand_result(uint64_t *st, const belt_job *job)
{
    belt_result *r = belt_result_new(job);
    ck_assert_ptr_nonnull(r);
    uint64_t x = tu_rand(st);
    r->seq = x % 4 == 0 ? tu_rand(st) : x % 4 == 1 ? UINT64_MAX
                                                   : tu_rand(st) % 100000;
    r->status = rand_status(st);
    r->exit_code = rand_exit(st);
    r->signal = rand_signal(st);
    r->attempts = (unsigned)(tu_rand(st) % 6);
    static const int workers[] = {-1, 0, 7, 3};
    r->worker = workers[tu_rand(st) % 4];
    r->queued_ns = rand_time(st);
    r->started_ns = rand_time(st);
    r->ended_ns = rand_time(st);
    r->duration_ns = rand_duration(st);
    if (tu_rand(st) % 4 != 0)
        r->out = rand_bytes(st, &r->out_len, false);
    if (tu_rand(st) % 4 != 0)
        r->err = rand_bytes(st, &r->err_len, false);
    r->out_truncated = tu_rand(st) % 5 == 0;
    r->err_truncated = tu_rand(st) % 5 == 0;
    if (tu_rand(st) % 4 == 0)
        r->out_path = rand_text_or_null(st);
    if (tu_rand(st) % 4 == 0)
        r->err_path = rand_text_or_null(st);
    r->error = rand_text_or_null(st);
    if (r->attempts > 0 && tu_rand(st) % 5 != 0) {
        r->attempt_log = calloc(r->attempts, sizeof *r->attempt_log);
        ck_assert_ptr_nonnull(r->attempt_log);
        for (unsigned i = 0; i < r->attempts; i++) {
            belt_attempt *a = &r->attempt_log[i];
            a->status = rand_status(st);
            a->exit_code = rand_exit(st);
            a->signal = rand_signal(st);
            a->started_ns = rand_time(st);
            a->ended_ns = rand_time(st);
            a->duration_ns = rand_duration(st);
        }
    }
    return r;
}

/* Prints where two lines first differ, with some context, bytes escaped. */
static void show_diff(const char *what, const char *a, size_t al,
                      const char *b, size_t bl)
{
    size_t i = 0;
    while (i < al && i < bl && a[i] == b[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "%s: lengths %zu and %zu, first difference at %zu\n",
            what, al, bl, i);
    const char *s[2] = {a, b};
    const size_t l[2] = {al, bl};
    for (int k = 0; k < 2; k++) {
        fprintf(stderr, "  %s: ", k == 0 ? "new" : "ref");
        for (size_t j = from; j < l[k] && j < i + 40; j++) {
            unsigned char c = (unsigned char)s[k][j];
            if (c >= 0x20 && c < 0x7f)
                fputc(c, stderr);
            else
                fprintf(stderr, "<%02x>", c);
        }
        fputc('\n', stderr);
    }
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

/* ---- differential ------------------------------------------------------- */

/* Random results: the direct writer must give exactly the reference's bytes;
 * appending to a reused buffer must give the same bytes again. */
START_TEST(test_result_line_differential)
{
    uint64_t st = 0xbe17c0de5eedull;
    long n = tu_scaled(20000, 2000);
    char *acc = NULL;
    size_t acc_len = 0, acc_cap = 0;
    long compared = 0;
    for (long k = 0; k < n; k++) {
        belt_job job;
        belt_job_init(&job);
        size_t idl;
        char *id = tu_rand(&st) % 8 == 0 ? NULL : rand_bytes(&st, &idl, true);
        job.id = id;
        belt_result *r = rand_result(&st, tu_rand(&st) % 10 == 0 ? NULL
                                                                 : &job);
        size_t len = 0, ref_len = 0;
        char *line = belt__report_result_line(r, &len);
        char *ref = ref_result_line(r, &ref_len);
        ck_assert_ptr_nonnull(line);
        ck_assert_ptr_nonnull(ref);
        if (len != ref_len || memcmp(line, ref, len) != 0)
            show_diff("result line", line, len, ref, ref_len);
        ck_assert_msg(len == ref_len && memcmp(line, ref, len) == 0,
                      "record %ld differs from jansson's", k);
        ck_assert_uint_eq(strlen(line), len);

        if (k % 64 == 0)
            acc_len = 0;
        size_t before = acc_len;
        ck_assert_int_eq(belt__report_result_append(&acc, &acc_len, &acc_cap,
                                                    r), 0);
        ck_assert_uint_eq(acc_len - before, len);
        ck_assert(memcmp(acc + before, line, len) == 0);
        ck_assert_int_eq(acc[acc_len], '\0');
        compared++;
        free(line);
        free(ref);
        belt_result_free(r);
        free(id);
    }
    free(acc);
    ck_assert_int_eq(compared, n);
}
END_TEST

/* Every byte value, alone and inside plain text at each offset of an
 * 8-byte word, against the reference. */
START_TEST(test_result_line_every_byte)
{
    belt_job job;
    belt_job_init(&job);
    job.id = "bytes";
    belt_result *r = belt_result_new(&job);
    r->out = malloc(64);
    ck_assert_ptr_nonnull(r->out);
    for (int c = 0; c < 256; c++) {
        for (size_t at = 0; at < 20; at++) {
            size_t n = at + 1 + (size_t)c % 13;
            memset(r->out, 'a', n);
            r->out[at] = (char)c;
            r->out[n] = '\0';
            r->out_len = n;
            size_t len, ref_len;
            char *line = belt__report_result_line(r, &len);
            char *ref = ref_result_line(r, &ref_len);
            ck_assert_ptr_nonnull(line);
            ck_assert_ptr_nonnull(ref);
            if (len != ref_len || memcmp(line, ref, len) != 0)
                show_diff("byte", line, len, ref, ref_len);
            ck_assert_msg(len == ref_len && memcmp(line, ref, len) == 0,
                          "byte 0x%02x at %zu", c, at);
            free(line);
            free(ref);
        }
    }
    belt_result_free(r);
}
END_TEST

/* The escapes themselves (what the reference does, spelt out). */
START_TEST(test_result_line_escapes)
{
    belt_job job;
    belt_job_init(&job);
    job.id = "a/b\x7f";
    belt_result *r = belt_result_new(&job);
    static const char raw[] = "\"\\\b\f\n\r\t\x01\x0b\x1f\0/";
    r->out = malloc(sizeof raw);
    memcpy(r->out, raw, sizeof raw);
    r->out_len = sizeof raw - 1;
    size_t len;
    char *line = belt__report_result_line(r, &len);
    ck_assert_ptr_nonnull(strstr(line, "{\"id\":\"a/b\x7f\","));
    ck_assert_ptr_nonnull(strstr(
        line, "\"stdout\":\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u000B\\u001F"
              "\\u0000/\","));
    free(line);
    belt_result_free(r);
}
END_TEST

/* duration_ms text for ns, from a record. */
static void ms_text(int64_t ns, char *out, size_t size)
{
    belt_job job;
    belt_job_init(&job);
    belt_result *r = belt_result_new(&job);
    r->attempts = 1;
    r->duration_ns = ns;
    size_t len;
    char *line = belt__report_result_line(r, &len);
    ck_assert_ptr_nonnull(line);
    const char *at = strstr(line, "\"duration_ms\":");
    ck_assert_ptr_nonnull(at);
    at += strlen("\"duration_ms\":");
    size_t n = strcspn(at, ",");
    ck_assert_uint_lt(n, size);
    memcpy(out, at, n);
    out[n] = '\0';
    free(line);
    belt_result_free(r);
}

START_TEST(test_result_line_ms)
{
    static const struct {
        int64_t ns;
        const char *want;
    } cases[] = {
        {0, "0.0"},
        {499, "0.0"},
        {500, "0.001"},
        {-499, "0.0"},
        {-500, "-0.001"},
        {5000000, "5.0"},
        {5100000, "5.1"},
        {5120000, "5.12"},
        {1234567890, "1234.568"},
        {999999999999499, "999999999.999"},
        {999999999999500, "1000000000.0"},
        {1234567890125000, "1234567890.12"}, /* a tie in binary: to even */
        {1234567890135000, "1234567890.13"},
        {1000000000000000000, "1e12"},
        {-1000000000000000000, "-1e12"},
        {100000000000000000, "100000000000.0"},
        {INT64_MAX, "9.22337203685e12"},
        /* The reference overflows here (ns - 500); the writer does not. */
        {INT64_MIN, "-9.22337203685e12"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64];
        ms_text(cases[i].ns, got, sizeof got);
        ck_assert_msg(strcmp(got, cases[i].want) == 0, "%lld ns: %s, not %s",
                      (long long)cases[i].ns, got, cases[i].want);
    }
}
END_TEST

/* belt__format_time against gmtime_r + snprintf, for any time and any
 * buffer size. */
START_TEST(test_format_time_differential)
{
    uint64_t st = 0x71e5eedull;
    static const int64_t edges[] = {
        0, 1, -1, 999999, 1000000, -999999, -1000000, -1500000,
        -1000000000, -1000000001, 86399999999999, 86400000000000,
        951782400000000000, 951868799999999999, 4107542400000000000,
        INT64_MAX, INT64_MIN, INT64_MIN + 1, -86400000000000,
    };
    long n = tu_scaled(200000, 20000);
    for (long k = 0; k < n + (long)(sizeof edges / sizeof edges[0]); k++) {
        int64_t ns;
        if (k < (long)(sizeof edges / sizeof edges[0]))
            ns = edges[k];
        else if (k % 3 == 0)
            ns = (int64_t)tu_rand(&st);
        else
            ns = rand_time(&st);
        char got[48], want[48];
        size_t size = k % 16 == 0 ? (size_t)(tu_rand(&st) % 30) : sizeof got;
        memset(got, 'x', sizeof got);
        memset(want, 'x', sizeof want);
        ck_assert_ptr_eq(belt__format_time(ns, got, size), got);
        ref_format_time(ns, want, size);
        ck_assert_msg(memcmp(got, want, sizeof got) == 0,
                      "%lld (size %zu): %.*s, not %.*s", (long long)ns, size,
                      (int)size, got, (int)size, want);
    }
}
END_TEST

/* ---- quoting ------------------------------------------------------------ */

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

/* ---- joblog ------------------------------------------------------------- */

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
    /* (killed by a signal it did not get from belt: Exitval 0, as
     * parallel's $? >> 8) */
    fclose(f);
    ck_assert_str_eq(text,
                     "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\t"
                     "Exitval\tSignal\tCommand\n"
                     "5\t:\t1700000000.123\t     2.500\t0\t12\t0\t15\t"
                     "echo a");
    /* The newline in the command became NUL (as parallel writes it). */
    size_t hl = strlen(text);
    ck_assert_uint_eq(size, hl + 1 + strlen("echo b") + 1);
    ck_assert_str_eq(text + hl + 1, "echo b\n");
    free(text);
    belt_result_free(r);
}
END_TEST

/* ---- stats -------------------------------------------------------------- */

START_TEST(test_stats)
{
    belt__runstats *s = belt__runstats_new();
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(belt__runstats_quantile(s, 0.5), 0);
    belt_result r;
    memset(&r, 0, sizeof r);
    /* 1..1000 ms, all ok: p50 ~ 500 ms, p99 ~ 990 ms. */
    r.attempts = 1;
    for (int i = 1; i <= 1000; i++) {
        r.status = BELT_JOB_OK;
        r.duration_ns = i * MS;
        belt__runstats_add(s, &r, false);
    }
    int64_t p50 = belt__runstats_quantile(s, 0.5);
    int64_t p99 = belt__runstats_quantile(s, 0.99);
    ck_assert_msg(p50 > 485 * MS && p50 < 515 * MS, "p50 %lld", (long long)p50);
    ck_assert_msg(p99 > 960 * MS && p99 < 1020 * MS, "p99 %lld", (long long)p99);
    /* Tiny durations land in the linear buckets. */
    belt__runstats *t = belt__runstats_new();
    r.duration_ns = 3000;
    belt__runstats_add(t, &r, false);
    ck_assert_int_eq(belt__runstats_quantile(t, 1.0), 3500);
    belt__runstats_free(t);

    r.status = BELT_JOB_FAILED;
    belt__runstats_add(s, &r, false);
    r.status = BELT_JOB_SKIPPED;
    r.attempts = 0;
    belt__runstats_add(s, &r, true);  /* resumed */
    belt__runstats_add(s, &r, false); /* skipped */
    ck_assert_uint_eq(belt__runstats_total(s), 1003);
    ck_assert_uint_eq(belt__runstats_count(s, BELT_JOB_OK), 1000);
    ck_assert_uint_eq(belt__runstats_count(s, BELT_JOB_SKIPPED), 1);
    ck_assert_uint_eq(belt__runstats_resumed(s), 1);
    ck_assert_uint_eq(belt__runstats_unsuccessful(s), 2);

    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int64_t busy[2] = {500 * MS, 1000 * MS};
    belt__runstats_summary(s, f, 2000 * MS, busy, 2);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "1003 jobs in 2.00s (501.5 jobs/s): "
                                       "1000 ok, 1 failed, 1 skipped, "
                                       "1 resumed\n"));
    ck_assert_ptr_nonnull(strstr(text, "p50 "));
    ck_assert_ptr_nonnull(strstr(text, "worker busy: 0:25% 1:50%\n"));
    free(text);
    belt__runstats_free(s);
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
    tc = tcase_create("differential");
    tcase_add_test(tc, test_result_line_differential);
    tcase_add_test(tc, test_result_line_every_byte);
    tcase_add_test(tc, test_result_line_escapes);
    tcase_add_test(tc, test_result_line_ms);
    tcase_add_test(tc, test_format_time_differential);
    tcase_set_timeout(tc, tu_timeout(60));
    suite_add_tcase(s, tc);
    tc = tcase_create("quoting");
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
