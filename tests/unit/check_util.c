/* check_util.c: unit tests of src/util/, the helpers every module shares.
 *
 * TCases:
 *   buf      appends, printf of any length, reserve, clear, free
 *   clock    belt__format_duration, belt__timespec, belt__add_sat,
 *            deadlines
 *   json     the string writers against jansson's json_dumps on random
 *            bytes (invalid UTF-8, NULs, control bytes), the escape reader
 *            on every valid and several invalid escapes, UTF-8 lengths,
 *            belt__put_i64 against snprintf
 *   shell    belt__sh_quote / belt__sh_word / belt__sh_quote_parallel,
 *            checked by running the words
 *   path     belt__path_dir / belt__path_resolve(_buf)
 *            through /bin/sh
 *   suggest  typos found, far words refused
 *   fd       belt__write_full through a full non-blocking pipe, and its
 *            wake fd
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "belt/error.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fd.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/path.h"
#include "util/shell.h"
#include "util/suggest.h"

/* ---- buf ---------------------------------------------------------------- */

START_TEST(test_buf_append)
{
    belt__buf b = { 0 };
    ck_assert_str_eq(belt__buf_str(&b), "");
    belt__buf_adds(&b, "ab");
    belt__buf_addc(&b, 'c');
    belt__buf_add(&b, "d\0e", 3);
    ck_assert_uint_eq(b.len, 6);
    ck_assert_int_eq(memcmp(b.p, "abcd\0e", 7), 0);
    belt__buf_clear(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(belt__buf_str(&b), "");
    /* printf output longer than the small stack buffer it tries first. */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    belt__buf_addf(&b, "<%s|%d>", big, 42);
    ck_assert_uint_eq(b.len, 999 + 5);
    ck_assert_int_eq(b.p[0], '<');
    ck_assert_str_eq(b.p + 1000, "|42>");
    ck_assert(!b.oom);
    ck_assert(belt__buf_reserve(&b, 5000));
    ck_assert_uint_gt(b.cap - b.len, 5000);
    belt__buf_free(&b);
    ck_assert_ptr_null(b.p);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_oom)
{
    belt__buf b = { 0 };
    belt__buf_adds(&b, "keep");
    ck_assert(!belt__buf_reserve(&b, SIZE_MAX - 2));
    ck_assert(b.oom);
    belt__buf_adds(&b, "dropped");
    ck_assert_str_eq(belt__buf_str(&b), "keep");
    belt__buf_free(&b);
    ck_assert(!b.oom);
}
END_TEST

/* ---- clock -------------------------------------------------------------- */

START_TEST(test_clock)
{
    char d[32];
    belt__format_duration(2 * BELT__NS_PER_S, d, sizeof d);
    ck_assert_str_eq(d, "2s");
    belt__format_duration(200 * BELT__NS_PER_MS, d, sizeof d);
    ck_assert_str_eq(d, "200ms");
    belt__format_duration(750, d, sizeof d);
    ck_assert_str_eq(d, "750ns");
    belt__format_duration(1500 * BELT__NS_PER_MS + 1, d, sizeof d);
    ck_assert_str_eq(d, "1.500s");

    struct timespec ts = belt__timespec(3 * BELT__NS_PER_S + 7);
    ck_assert_int_eq(ts.tv_sec, 3);
    ck_assert_int_eq(ts.tv_nsec, 7);
    ts = belt__timespec(-5);
    ck_assert_int_eq(ts.tv_sec, 0);
    ck_assert_int_eq(ts.tv_nsec, 0);

    ck_assert_int_eq(belt__add_sat(INT64_MAX - 1, 5), INT64_MAX);
    ck_assert_int_eq(belt__add_sat(10, -3), 10);
    ck_assert_int_eq(belt__add_sat(10, 3), 13);

    int64_t a = belt__now_mono(), b = belt__now_mono();
    ck_assert_int_le(a, b);
    ck_assert_int_gt(belt__now_real(), (int64_t)1600000000 * BELT__NS_PER_S);

    struct timespec dl;
    belt__deadline(&dl, 0);
    ck_assert(belt__deadline_passed(&dl));
    belt__deadline(&dl, 3600 * BELT__NS_PER_S);
    ck_assert(!belt__deadline_passed(&dl));
    ck_assert_int_lt(dl.tv_nsec, 1000000000);
    belt__deadline(&dl, INT64_MAX); /* clamped, not overflowed */
    ck_assert_int_gt(dl.tv_sec, 0);
}
END_TEST

/* ---- json --------------------------------------------------------------- */

/* What jansson writes for the n bytes at s, with invalid UTF-8 replaced
 * by U+FFFD first (the repair belt__json_add_str documents). */
static char *ref_dump(const unsigned char *s, size_t n)
{
    belt__buf fixed = { 0 };
    size_t i = 0;
    while (i < n) {
        size_t l = belt__utf8_len(s + i, n - i);
        if (l == 0) {
            belt__buf_add(&fixed, "\xEF\xBF\xBD", 3);
            i++;
        } else {
            belt__buf_add(&fixed, (const char *)s + i, l);
            i += l;
        }
    }
    json_t *j = json_stringn(fixed.p != NULL ? fixed.p : "", fixed.len);
    ck_assert_ptr_nonnull(j);
    char *out = json_dumps(j, JSON_ENCODE_ANY);
    json_decref(j);
    belt__buf_free(&fixed);
    return out;
}

START_TEST(test_json_writers_match_jansson)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    unsigned char s[96];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % 97) % sizeof s;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Mostly text, with every kind of special byte mixed in. */
            unsigned r = (unsigned)(x >> 32);
            s[i] = r % 4 == 0 ? (unsigned char)(r >> 8)
                 : r % 4 == 1 ? "\"\\\n\t\r\b\f\x01\x7f/"[(r >> 8) % 10]
                 : r % 4 == 2 ? "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"[(r >> 8) % 9]
                              : (unsigned char)('a' + (r >> 8) % 26);
        }
        char *want = ref_dump(s, n);
        belt__buf b = { 0 };
        belt__buf_adds(&b, "<");
        belt__json_add_str(&b, (const char *)s, n);
        ck_assert(!b.oom);
        ck_assert_msg(strcmp(b.p + 1, want) == 0, "round %d: %s, not %s",
                      round, b.p + 1, want);
        belt__buf_free(&b);

        /* The NUL-terminated writer, on what stays valid UTF-8 up to the
         * first NUL, must agree too; invalid input is refused. */
        char z[sizeof s + 1];
        memcpy(z, s, n);
        z[n] = '\0';
        size_t len = belt__json_str_len(z);
        size_t zn = strlen(z);
        size_t valid = 0;
        while (valid < zn) {
            size_t l = belt__utf8_len((const unsigned char *)z + valid, zn - valid);
            if (l == 0)
                break;
            valid += l;
        }
        if (valid < zn) {
            ck_assert_uint_eq(len, SIZE_MAX);
        } else {
            char *w = malloc(len + 2);
            char *end = belt__json_put_str(w, z);
            ck_assert_uint_eq((size_t)(end - w), len + 2);
            char *want0 = ref_dump((const unsigned char *)z, zn);
            ck_assert_int_eq(memcmp(w, want0, len + 2), 0);
            ck_assert_uint_eq(strlen(want0), len + 2);
            free(want0);
            free(w);
        }
        free(want);
    }
}
END_TEST

START_TEST(test_json_unescape)
{
    static const struct {
        const char *in;
        uint32_t cp;
        size_t used;
    } ok[] = {
        { "n", '\n', 1 },   { "t", '\t', 1 },   { "r", '\r', 1 },
        { "b", '\b', 1 },   { "f", '\f', 1 },   { "/", '/', 1 },
        { "\\", '\\', 1 },  { "\"", '"', 1 },   { "u0041", 'A', 5 },
        { "u00e9x", 0xE9, 5 }, { "u20AC", 0x20AC, 5 }, { "u0000", 0, 5 },
        { "uD83D\\uDE00", 0x1F600, 11 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const unsigned char *s = (const unsigned char *)ok[i].in;
        uint32_t cp = 12345;
        const unsigned char *e = belt__json_unescape(s, s + strlen(ok[i].in), &cp);
        ck_assert_msg(e != NULL, "%s", ok[i].in);
        ck_assert_uint_eq(cp, ok[i].cp);
        ck_assert_uint_eq((size_t)(e - s), ok[i].used);
        /* NUL-terminated form: the same. */
        ck_assert_ptr_eq(belt__json_unescape(s, NULL, &cp), e);
    }
    static const char *const bad[] = {
        "x", "u12", "u12G4", "uDE00", "uD83D", "uD83Dx", "uD83D\\u0041", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const unsigned char *s = (const unsigned char *)bad[i];
        uint32_t cp;
        ck_assert_msg(belt__json_unescape(s, s + strlen(bad[i]), &cp) == NULL,
                      "%s", bad[i]);
        ck_assert_msg(belt__json_unescape(s, NULL, &cp) == NULL, "%s", bad[i]);
    }
    /* end cuts a valid escape short. */
    const unsigned char *s = (const unsigned char *)"u0041";
    uint32_t cp;
    ck_assert_ptr_null(belt__json_unescape(s, s + 3, &cp));
}
END_TEST

START_TEST(test_utf8)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x800 ? 1 : 97)) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        char w[4];
        size_t n = (size_t)(belt__utf8_put(w, cp) - w);
        ck_assert_uint_eq(n, belt__utf8_size(cp));
        ck_assert_uint_eq(belt__utf8_len((const unsigned char *)w, n), n);
    }
    /* Overlong, surrogate, above U+10FFFF, truncated, stray continuation. */
    static const char *const bad[] = { "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80",
                                       "\xF4\x90\x80\x80", "\xE2\x82", "\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_uint_eq(belt__utf8_len((const unsigned char *)bad[i],
                                         strlen(bad[i])), 0);
}
END_TEST

START_TEST(test_put_i64)
{
    int64_t v[] = { 0, 1, -1, 9, 10, 99, 100, -100, 123456789, INT64_MAX,
                    INT64_MIN, INT64_MIN + 1, 1000000000000LL };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char w[24], want[24];
        *belt__put_i64(w, v[i]) = '\0';
        snprintf(want, sizeof want, "%" PRId64, v[i]);
        ck_assert_str_eq(w, want);
    }
    uint64_t x = 1;
    for (int i = 0; i < 10000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int64_t n = (int64_t)(x >> (i % 60));
        char w[24], want[24];
        *belt__put_i64(w, n) = '\0';
        snprintf(want, sizeof want, "%" PRId64, n);
        ck_assert_str_eq(w, want);
    }
}
END_TEST

START_TEST(test_hash)
{
    /* FNV-1a of "" is its offset basis; the finaliser spreads it. */
    ck_assert(belt__hash("", 0) != 0);
    ck_assert(belt__hash("a", 1) != belt__hash("b", 1));
    ck_assert(belt__hash("ab", 2) != belt__hash("ba", 2));
    ck_assert_uint_eq(belt__hash("job-1", 5), belt__hash("job-1x", 5));
}
END_TEST

/* ---- shell -------------------------------------------------------------- */

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
        belt__buf b = { 0 };
        belt__sh_quote(&b, nasty[i], strlen(nasty[i]));
        ck_assert(!b.oom);
        ck_assert_uint_eq(strlen(b.p), b.len);
        ck_assert_str_eq(sh_roundtrip(b.p), nasty[i]);
        /* A word is quoted only when it has to be, and means the same. */
        belt__buf_clear(&b);
        belt__sh_word(&b, nasty[i], strlen(nasty[i]));
        ck_assert_str_eq(sh_roundtrip(b.p), nasty[i]);
        ck_assert_int_eq(b.p[0] != '\'', belt__sh_plain(nasty[i], strlen(nasty[i])));
        belt__buf_free(&b);
    }
}
END_TEST

/* GNU parallel's quoting: the exact bytes parallel --dry-run prints (taken
 * from parallel 20221122), and each means its input to /bin/sh. */
START_TEST(test_shell_quote_parallel)
{
    static const char *const cases[][2] = {
        {"a", "a"}, {"b c", "'b c'"}, {"d'e", "'d'\"'\"'e'"}, {"", "''"},
        {"x$y", "'x$y'"}, {"a/b.c", "a/b.c"}, {"~", "'~'"}, {"a=b", "'a=b'"},
        {"'", "\"'\""}, {"''", "\"'\"''\"'\""}, {"a'", "'a'\"'\""},
        {"'a", "\"'\"'a'"}, {"-x", "-x"}, {"+y_Z9", "+y_Z9"}, {"@", "'@'"},
        {"a\\b", "'a\\b'"}, {"\xc3\xa9", "'\xc3\xa9'"}, {"new\nline", "'new\nline'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        belt__buf b = { 0 };
        belt__sh_quote_parallel(&b, cases[i][0], strlen(cases[i][0]));
        ck_assert(!b.oom);
        ck_assert_str_eq(b.p, cases[i][1]);
        ck_assert_uint_eq(strlen(b.p), b.len);
        ck_assert_str_eq(sh_roundtrip(b.p), cases[i][0]);
        ck_assert_int_eq(belt__sh_parallel_bare(cases[i][0], strlen(cases[i][0])),
                         strcmp(b.p, cases[i][0]) == 0);
        belt__buf_free(&b);
    }
}
END_TEST

/* ---- path --------------------------------------------------------------- */

START_TEST(test_path)
{
    char *d;
    ck_assert_int_eq(belt__path_dir("configs/x.json", &d), BELT_OK);
    ck_assert_str_eq(d, "configs");
    free(d);
    ck_assert_int_eq(belt__path_dir("/x.json", &d), BELT_OK);
    ck_assert_str_eq(d, "/");
    free(d);
    ck_assert_int_eq(belt__path_dir("x.json", &d), BELT_OK);
    ck_assert_ptr_null(d);
    char *p = strdup("out/a.txt");
    ck_assert_int_eq(belt__path_resolve(&p, "cfg"), BELT_OK);
    ck_assert_str_eq(p, "cfg/out/a.txt");
    ck_assert_int_eq(belt__path_resolve(&p, "other"), BELT_OK); /* relative */
    ck_assert_str_eq(p, "other/cfg/out/a.txt");
    free(p);
    p = strdup("/abs");
    ck_assert_int_eq(belt__path_resolve(&p, "cfg"), BELT_OK);
    ck_assert_str_eq(p, "/abs");
    ck_assert_int_eq(belt__path_resolve(&p, NULL), BELT_OK);
    free(p);
    p = strdup("rel");
    ck_assert_int_eq(belt__path_resolve(&p, "/"), BELT_OK);
    ck_assert_str_eq(p, "/rel");
    free(p);
    belt__buf b = { 0 };
    belt__buf_adds(&b, "id");
    size_t at = b.len;
    belt__buf_adds(&b, "logs");
    belt__path_resolve_buf(&b, at, "sub");
    ck_assert_str_eq(b.p, "idsub/logs");
    at = b.len;
    belt__buf_adds(&b, "/tmp");
    belt__path_resolve_buf(&b, at, "sub");
    ck_assert_str_eq(b.p, "idsub/logs/tmp");
    belt__buf_free(&b);
}
END_TEST

/* ---- suggest ------------------------------------------------------------ */

START_TEST(test_suggest)
{
    static const char *const names[] = { "workers", "policy", "results",
                                         "timeout", "retries", NULL };
    ck_assert_str_eq(belt__suggest("wokers", names), "workers");
    ck_assert_str_eq(belt__suggest("WORKERS", names), "workers");
    ck_assert_str_eq(belt__suggest("retires", names), "retries"); /* swap */
    ck_assert_str_eq(belt__suggest("polcy", names), "policy");
    ck_assert_ptr_null(belt__suggest("banana", names));
    ck_assert_ptr_null(belt__suggest("x", names));
    ck_assert_ptr_null(belt__suggest("", names));
    static const char *const none[] = { NULL };
    ck_assert_ptr_null(belt__suggest("workers", none));
}
END_TEST

/* ---- fd ----------------------------------------------------------------- */

START_TEST(test_write_full)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    int cap = fcntl(p[1], F_GETPIPE_SZ);
    ck_assert_int_gt(cap, 0);
    /* Fill the pipe, then ask for more than fits: with a wake fd that is
     * already readable the write gives up instead of waiting forever. */
    char *blob = calloc(1, (size_t)cap * 2);
    ck_assert_int_eq(belt__write_full(p[1], blob, (size_t)cap, -1), BELT_OK);
    int wake[2];
    ck_assert_int_eq(pipe(wake), 0);
    ck_assert_int_eq(write(wake[1], "x", 1), 1);
    ck_assert_int_eq(belt__write_full(p[1], blob, 100, wake[0]), BELT_ECANCELED);
    /* A reader gone: EIO with errno EPIPE (SIGPIPE ignored here). */
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    errno = 0;
    ck_assert_int_eq(belt__write_full(p[1], blob, 10, -1), BELT_EIO);
    ck_assert_int_eq(errno, EPIPE);
    close(p[1]);
    close(wake[0]);
    close(wake[1]);
    free(blob);

    /* wait_readable: the fd's data, or the wake fd, whichever comes. */
    int q[2];
    ck_assert_int_eq(pipe(q), 0);
    ck_assert_int_eq(pipe(wake), 0);
    ck_assert_int_eq(write(wake[1], "x", 1), 1);
    ck_assert_int_eq(belt__wait_readable(q[0], wake[0]), BELT_ECANCELED);
    ck_assert_int_eq(write(q[1], "y", 1), 1);
    ck_assert_int_eq(belt__wait_readable(q[0], -1), BELT_OK);
    close(q[0]);
    close(q[1]);
    close(wake[0]);
    close(wake[1]);

    /* fd_above_stdio leaves high fds alone. */
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 3);
    ck_assert_int_eq(belt__fd_above_stdio(fd), fd);
    close(fd);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("buf");
    tcase_add_test(tc, test_buf_append);
    tcase_add_test(tc, test_buf_oom);
    suite_add_tcase(s, tc);
    tc = tcase_create("clock");
    tcase_add_test(tc, test_clock);
    suite_add_tcase(s, tc);
    tc = tcase_create("json");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_json_writers_match_jansson);
    tcase_add_test(tc, test_json_unescape);
    tcase_add_test(tc, test_utf8);
    tcase_add_test(tc, test_put_i64);
    tcase_add_test(tc, test_hash);
    suite_add_tcase(s, tc);
    tc = tcase_create("shell");
    tcase_add_test(tc, test_shell_quote);
    tcase_add_test(tc, test_shell_quote_parallel);
    suite_add_tcase(s, tc);
    tc = tcase_create("path");
    tcase_add_test(tc, test_path);
    suite_add_tcase(s, tc);
    tc = tcase_create("suggest");
    tcase_add_test(tc, test_suggest);
    suite_add_tcase(s, tc);
    tc = tcase_create("fd");
    tcase_add_test(tc, test_write_full);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(util_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
