/* check_config.c: unit tests of the config loader (include/belt/config.h).
 *
 * TCases:
 *   invalid  data-driven: every folder tests/configs/invalid/<case>/ holds a
 *            config.json that must fail to load, and an `error` file with
 *            the expected one-line message (belt_config_error_format() of
 *            the error, the source being "config.json").  One test per
 *            folder, found when the program starts.
 *   valid    data-driven: every tests/configs/valid/<case>/ holds a
 *            config.json that must load, and an `expected` file: a header
 *            line with the top-level settings, then one line per expanded
 *            job (dump_job() below: every field that differs from
 *            belt_job_init()'s defaults), in expansion order.
 *   core     the API around the data: error formatting, files, workers,
 *            accessors, matrix order, placeholders, NULL handling.
 *   limits   a 1,000,000-point matrix loaded and iterated in bounded memory.
 *
 * Folders are found under $srcdir (set by `make check`; else ".").
 */
/* test_util.h has helpers for threaded tests that this file does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_util.h"
#pragma GCC diagnostic pop

#include "belt/config.h"
#include "belt/sched.h"

#include <dirent.h>
#include <inttypes.h>
#include <sys/stat.h>

#define MAX_CASES 256

static char *invalid_cases[MAX_CASES];
static int n_invalid;
static char *valid_cases[MAX_CASES];
static int n_valid;

static const char *srcdir(void)
{
    const char *s = getenv("srcdir");
    return s != NULL && *s != '\0' ? s : ".";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the sub-folders of tests/configs/<kind> into names (sorted). */
static int list_cases(const char *kind, char **names)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/configs/%s", srcdir(), kind);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < MAX_CASES) {
        if (e->d_name[0] == '.')
            continue;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return n;
}

/* Reads a whole file (NUL-terminated); NULL if it cannot. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t k;
    while (buf != NULL && (k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
            } else {
                buf = nb;
            }
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[len] = '\0';
    return buf;
}

static char *case_file(const char *kind, const char *name, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/configs/%s/%s/%s", srcdir(), kind,
             name, file);
    char *s = slurp(path);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    return s;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* ---- invalid ------------------------------------------------------------ */

START_TEST(test_invalid_case)
{
    const char *name = invalid_cases[_i];
    char *json = case_file("invalid", name, "config.json");
    char *want = case_file("invalid", name, "error");
    chomp(want);
    belt_config_error err;
    belt_config *cfg = belt_config_load_string(json, "config.json", &err);
    char got[1024];
    belt_config_error_format(&err, got, sizeof got);
    ck_assert_msg(cfg == NULL, "%s: loaded, but should fail with: %s", name,
                  want);
    ck_assert_msg(strcmp(got, want) == 0, "%s:\n  got:  %s\n  want: %s", name,
                  got, want);
    ck_assert_msg(strchr(got, '\n') == NULL, "%s: message is not one line",
                  name);
    /* Loading with err == NULL fails the same way, and does not crash. */
    ck_assert_ptr_null(belt_config_load_string(json, NULL, NULL));
    free(json);
    free(want);
}
END_TEST

/* ---- valid: dumping jobs ------------------------------------------------ */

static const char *kind_name(belt_job_kind k)
{
    static const char *const n[] = { "exec", "sleep", "spin", "noop" };
    return (unsigned)k < 4 ? n[k] : "?";
}

static const char *output_name(belt_output_mode m)
{
    static const char *const n[] = { "capture", "files", "group",
                                     "lines", "inherit", "discard" };
    return (unsigned)m < 6 ? n[m] : "?";
}

/* Appends one line describing job j: fields that differ from defaults. */
static void dump_job(FILE *out, const belt_job *j)
{
    belt_job d;
    belt_job_init(&d);
    fprintf(out, "%" PRIu64 " id=%s kind=%s", j->seq, j->id, kind_name(j->kind));
    if (j->run != NULL)
        fprintf(out, " run=<%s>", j->run);
    if (j->argv != NULL) {
        fprintf(out, " argv=");
        for (char *const *a = j->argv; *a != NULL; a++)
            fprintf(out, "<%s>", *a);
    }
    if (j->env != NULL) {
        fprintf(out, " env=");
        for (char *const *e = j->env; *e != NULL; e++)
            fprintf(out, "<%s>", *e);
    }
    if (j->cwd != NULL)
        fprintf(out, " cwd=<%s>", j->cwd);
    if (j->stdin_path != NULL)
        fprintf(out, " stdin=<%s>", j->stdin_path);
    if (j->duration_ns != d.duration_ns)
        fprintf(out, " duration_ns=%" PRId64, j->duration_ns);
    if (j->timeout_ns != d.timeout_ns)
        fprintf(out, " timeout_ns=%" PRId64, j->timeout_ns);
    if (j->kill_grace_ns != d.kill_grace_ns)
        fprintf(out, " kill_grace_ns=%" PRId64, j->kill_grace_ns);
    if (j->retries != d.retries)
        fprintf(out, " retries=%u", j->retries);
    if (j->retry_delay_ns != d.retry_delay_ns)
        fprintf(out, " retry_delay_ns=%" PRId64, j->retry_delay_ns);
    if (j->retry_max_delay_ns != d.retry_max_delay_ns)
        fprintf(out, " retry_max_delay_ns=%" PRId64, j->retry_max_delay_ns);
    if (j->output != d.output)
        fprintf(out, " output=%s", output_name(j->output));
    if (j->output_limit != d.output_limit)
        fprintf(out, " output_limit=%zu", j->output_limit);
    if (j->output_dir != NULL)
        fprintf(out, " output_dir=<%s>", j->output_dir);
    if (j->user != NULL)
        fprintf(out, " user=set");
    fputc('\n', out);
}

/* The whole dump of cfg, into a malloc'ed string. */
static char *dump_config(const belt_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    fprintf(out, "# workers=%d percent=%d policy=%s results=%s halt_on_error=%d jobs=%" PRIu64 "\n",
            belt_config_workers_percent(cfg) ? -2 : belt_config_workers(cfg),
            belt_config_workers_percent(cfg),
            belt_config_policy(cfg) ? belt_config_policy(cfg) : "-",
            belt_config_results(cfg) ? belt_config_results(cfg) : "-",
            (int)belt_config_halt_on_error(cfg), belt_config_job_count(cfg));
    for (uint64_t i = 0; i < belt_config_job_count(cfg); i++) {
        belt_job *j = belt_config_job_at(cfg, i);
        ck_assert_ptr_nonnull(j);
        ck_assert_uint_eq(j->seq, i);
        dump_job(out, j);
        belt_config_job_free(j);
    }
    fclose(out);
    return text;
}

START_TEST(test_valid_case)
{
    const char *name = valid_cases[_i];
    char *json = case_file("valid", name, "config.json");
    char *want = case_file("valid", name, "expected");
    belt_config_error err;
    belt_config *cfg = belt_config_load_string(json, "config.json", &err);
    char msg[1024];
    ck_assert_msg(cfg != NULL, "%s: %s", name,
                  belt_config_error_format(&err, msg, sizeof msg));
    char *got = dump_config(cfg);
    if (strcmp(got, want) != 0) {
        /* Show the first differing line. */
        const char *g = got, *w = want;
        int line = 1;
        while (*g && *g == *w) {
            if (*g == '\n')
                line++;
            g++;
            w++;
        }
        while (g > got && g[-1] != '\n')
            g--;
        while (w > want && w[-1] != '\n')
            w--;
        ck_abort_msg("%s: line %d differs:\n  got:  %.*s\n  want: %.*s", name,
                     line, (int)strcspn(g, "\n"), g, (int)strcspn(w, "\n"), w);
    }
    /* A scheduler can be built over it. */
    belt_sched *s = belt_sched_new(cfg, NULL, &err);
    ck_assert_ptr_nonnull(s);
    belt_sched_free(s);
    free(got);
    belt_config_free(cfg);
    free(json);
    free(want);
}
END_TEST

/* ---- core --------------------------------------------------------------- */

static belt_config *load_ok(const char *json)
{
    belt_config_error err;
    char msg[1024];
    belt_config *cfg = belt_config_load_string(json, "t.json", &err);
    ck_assert_msg(cfg != NULL, "%s",
                  belt_config_error_format(&err, msg, sizeof msg));
    return cfg;
}

static void expect_error(const char *json, const char *want)
{
    belt_config_error err;
    char msg[1024];
    belt_config *cfg = belt_config_load_string(json, "t.json", &err);
    ck_assert_msg(cfg == NULL, "loaded; want %s", want);
    belt_config_error_format(&err, msg, sizeof msg);
    ck_assert_msg(strcmp(msg, want) == 0, "\n  got:  %s\n  want: %s", msg, want);
}

START_TEST(test_error_format)
{
    belt_config_error e;
    memset(&e, 0, sizeof e);
    char buf[1024];
    strcpy(e.source, "jobs.json");
    strcpy(e.text, "boom");
    ck_assert_str_eq(belt_config_error_format(&e, buf, sizeof buf),
                     "jobs.json: boom");
    strcpy(e.path, "jobs[3].timeout");
    ck_assert_str_eq(belt_config_error_format(&e, buf, sizeof buf),
                     "jobs.json: jobs[3].timeout: boom");
    e.line = 14;
    ck_assert_str_eq(belt_config_error_format(&e, buf, sizeof buf),
                     "jobs.json:14: jobs[3].timeout: boom");
    e.column = 9;
    ck_assert_str_eq(belt_config_error_format(&e, buf, sizeof buf),
                     "jobs.json:14:9: jobs[3].timeout: boom");
    /* Cut, but always terminated. */
    char small[8];
    belt_config_error_format(&e, small, sizeof small);
    ck_assert_str_eq(small, "jobs.js");
    ck_assert_ptr_eq(belt_config_error_format(&e, small, 0), small);
    ck_assert_str_eq(belt_config_error_format(NULL, buf, sizeof buf),
                     "unknown error");
}
END_TEST

START_TEST(test_load_file)
{
    char dir[] = "/tmp/belt-config-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/jobs.json", dir);

    belt_config_error err;
    char msg[1024];
    ck_assert_ptr_null(belt_config_load(path, &err));
    belt_config_error_format(&err, msg, sizeof msg);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
             path);
    ck_assert_str_eq(msg, want);
    ck_assert_int_eq(err.line, 0);

    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"jobs\": [{\"id\": \"a\", \"run\": \"true\"},\n"
          "          {\"id\": \"b\", \"run\": \"true\", \"timeout\": \"x\"}]}\n",
          f);
    fclose(f);
    ck_assert_ptr_null(belt_config_load(path, &err));
    belt_config_error_format(&err, msg, sizeof msg);
    snprintf(want, sizeof want,
             "%s:2:49: jobs[1].timeout: expected a duration like \"30s\"", path);
    ck_assert_str_eq(msg, want);

    f = fopen(path, "w");
    fputs("{\"jobs\": [{\"id\": \"a\", \"run\": \"true\"}]}", f);
    fclose(f);
    belt_config *cfg = belt_config_load(path, &err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(belt_config_job_count(cfg), 1);
    belt_config_free(cfg);

    /* A NUL byte inside the file is a JSON error, not a silent cut. */
    f = fopen(path, "w");
    fputs("{\"jobs\": [{\"id\": \"a\", \"run\": \"true\"}]}", f);
    fputc('\0', f);
    fputs("garbage", f);
    fclose(f);
    ck_assert_ptr_null(belt_config_load(path, &err));

    /* A directory cannot be read as a config. */
    ck_assert_ptr_null(belt_config_load(dir, &err));
    ck_assert_ptr_null(belt_config_load(NULL, &err));
    ck_assert_ptr_null(belt_config_load_string(NULL, NULL, &err));
    ck_assert_str_eq(err.source, "<string>");
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_default_source)
{
    belt_config_error err;
    ck_assert_ptr_null(belt_config_load_string("{", NULL, &err));
    ck_assert_str_eq(err.source, "<string>");
    ck_assert_int_eq(err.line, 1);
    ck_assert_str_eq(err.path, "");
}
END_TEST

START_TEST(test_parse_workers)
{
    unsigned n = 77;
    ck_assert_int_eq(belt_parse_workers("4", 8, &n), BELT_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(belt_parse_workers("0", 8, &n), BELT_OK);
    ck_assert_uint_eq(n, 8);
    ck_assert_int_eq(belt_parse_workers("50%", 8, &n), BELT_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(belt_parse_workers("1%", 8, &n), BELT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(belt_parse_workers("200%", 3, &n), BELT_OK);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(belt_parse_workers("4096", 8, &n), BELT_OK);
    ck_assert_uint_eq(n, 4096);
    n = 77;
    const char *bad[] = { "", "-1", "4097", "0%", "1001%", "4x", "x", " 4",
                          "%", "4 ", "99999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(belt_parse_workers(bad[i], 8, &n) == BELT_EINVAL,
                      "accepted \"%s\"", bad[i]);
        ck_assert_uint_eq(n, 77);
    }
    ck_assert_int_eq(belt_parse_workers("4", 0, &n), BELT_EINVAL);
    ck_assert_int_eq(belt_parse_workers(NULL, 8, &n), BELT_EINVAL);
}
END_TEST

START_TEST(test_workers_forms)
{
    belt_config *cfg = load_ok("{\"jobs\": [{\"run\": \"true\"}]}");
    ck_assert_int_eq(belt_config_workers(cfg), -1);
    ck_assert_ptr_null(belt_config_policy(cfg));
    ck_assert_ptr_null(belt_config_results(cfg));
    ck_assert(!belt_config_halt_on_error(cfg));
    belt_config_free(cfg);

    cfg = load_ok("{\"workers\": 0, \"jobs\": [{\"run\": \"true\"}]}");
    ck_assert_int_eq(belt_config_workers(cfg), 0);
    belt_config_free(cfg);

    cfg = load_ok("{\"workers\": \"0\", \"jobs\": [{\"run\": \"true\"}]}");
    ck_assert_int_eq(belt_config_workers(cfg), 0);
    belt_config_free(cfg);

    cfg = load_ok("{\"workers\": \"3\", \"jobs\": [{\"run\": \"true\"}]}");
    ck_assert_int_eq(belt_config_workers(cfg), 3);
    belt_config_free(cfg);

    cfg = load_ok("{\"workers\": \"100%\", \"jobs\": [{\"run\": \"true\"}]}");
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(belt_config_workers_percent(cfg), 100);
    ck_assert_int_eq(belt_config_workers(cfg), ncpu > 0 ? ncpu : 1);
    belt_config_free(cfg);

    cfg = load_ok("{\"workers\": \"1%\", \"jobs\": [{\"run\": \"true\"}]}");
    ck_assert_int_eq(belt_config_workers(cfg), 1);
    belt_config_free(cfg);

    expect_error("{\"workers\": 4097, \"jobs\": [{\"run\": \"true\"}]}",
                 "t.json:1:13: workers: must be between 1 and 4096 (got 4097)");
    expect_error("{\"workers\": \"1001%\", \"jobs\": [{\"run\": \"true\"}]}",
                 "t.json:1:13: workers: a percentage must be between 1% and 1000% (got \"1001%\")");
}
END_TEST

START_TEST(test_policies)
{
    const char *names[] = { "shared", "round-robin", "random", "least-loaded",
                            "power-of-two" };
    for (size_t i = 0; i < 5; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"policy\": \"%s\", \"jobs\": [{\"run\": \"true\"}]}", names[i]);
        belt_config *cfg = load_ok(json);
        ck_assert_str_eq(belt_config_policy(cfg), names[i]);
        belt_config_free(cfg);
    }
    expect_error("{\"policy\": \"round_robin\", \"jobs\": [{\"run\": \"true\"}]}",
                 "t.json:1:12: policy: unknown policy \"round_robin\" (did you mean \"round-robin\"?)");
    expect_error("{\"policy\": \"Shared\", \"jobs\": [{\"run\": \"true\"}]}",
                 "t.json:1:12: policy: unknown policy \"Shared\" (did you mean \"shared\"?)");
}
END_TEST

/* Ids of every job of cfg, joined by spaces. */
static char *all_ids(const belt_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    for (uint64_t i = 0; i < belt_config_job_count(cfg); i++) {
        belt_job *j = belt_config_job_at(cfg, i);
        fprintf(out, "%s%s", i ? " " : "", j->id);
        belt_config_job_free(j);
    }
    fclose(out);
    return text;
}

START_TEST(test_matrix_order)
{
    belt_config *cfg = load_ok(
        "{\"jobs\": [{\"id\": \"x\", \"run\": \"true\"},"
        " {\"id\": \"{a}{b}{c}\", \"run\": \"true\","
        "  \"matrix\": {\"a\": [1, 2], \"b\": [\"x\", \"y\", \"z\"], \"c\": [true]}},"
        " {\"id\": \"y\", \"run\": \"true\"}]}");
    ck_assert_uint_eq(belt_config_job_count(cfg), 8);
    char *ids = all_ids(cfg);
    ck_assert_str_eq(ids, "x 1xtrue 1ytrue 1ztrue 2xtrue 2ytrue 2ztrue y");
    free(ids);
    ck_assert_ptr_null(belt_config_job_at(cfg, 8));
    ck_assert_ptr_null(belt_config_job_at(cfg, UINT64_MAX));
    ck_assert_ptr_null(belt_config_job_at(NULL, 0));
    belt_config_job_free(NULL);
    belt_config_free(cfg);
    belt_config_free(NULL);
}
END_TEST

START_TEST(test_placeholder_rules)
{
    belt_config *cfg = load_ok(
        "{\"jobs\": [{\"id\": \"{{id}}-{n}\", \"matrix\": {\"n\": [\"a b\", \"$x\"]},"
        " \"run\": \"echo {n} {} ${HOME} {{n}} {{m}} {n}{n} }} {{ { } {n\"}]}");
    belt_job *j = belt_config_job_at(cfg, 0);
    ck_assert_str_eq(j->id, "{id}-a b");
    ck_assert_str_eq(j->run, "echo a b {} ${HOME} {n} {m} a ba b } { { } {n");
    belt_config_job_free(j);
    j = belt_config_job_at(cfg, 1);
    ck_assert_str_eq(j->id, "{id}-$x");
    belt_config_job_free(j);
    belt_config_free(cfg);
}
END_TEST

/* In a matrix job, "{name}" naming no matrix key is an error wherever it is
 * (issue 12: a typo would run with the braces in it); "${name}" is the
 * shell's. */
START_TEST(test_placeholder_typo)
{
    expect_error("{\"jobs\": [{\"id\": \"t-{n}\", \"matrix\": {\"n\": [1, 2]},"
                 " \"run\": \"echo {m}\"}]}",
                 "t.json:1:59: jobs[0].run: unknown placeholder {m} (matrix "
                 "names: {n}; write {{ and }} for literal braces)");
    expect_error("{\"jobs\": [{\"id\": \"t-{n}\", \"matrix\": {\"n\": [1, 2]},"
                 " \"argv\": [\"echo\", \"{nn}\"]}]}",
                 "t.json:1:69: jobs[0].argv[1]: unknown placeholder {nn} (did "
                 "you mean {n}?; write {{ and }} for literal braces)");
    belt_config *cfg = load_ok(
        "{\"jobs\": [{\"id\": \"t-{n}\", \"matrix\": {\"n\": [1, 2]},"
        " \"run\": \"echo ${m} {{m}}\", \"cwd\": \"d{n}\"}]}");
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_no_shared_state)
{
    /* Two configs at once are independent; freeing one leaves the other. */
    belt_config *a = load_ok("{\"jobs\": [{\"id\": \"a-{n}\", \"run\": \"{n}\", \"matrix\": {\"n\": [1, 2]}}]}");
    belt_config *b = load_ok("{\"jobs\": [{\"id\": \"b\", \"run\": \"x\"}]}");
    belt_config_free(b);
    belt_job *j = belt_config_job_at(a, 1);
    ck_assert_str_eq(j->id, "a-2");
    ck_assert_str_eq(j->run, "2");
    belt_config_job_free(j);
    belt_config_free(a);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

START_TEST(test_million_matrix)
{
    long n = tu_scaled(1000000, 10000);
    char json[512];
    /* 1000 x (n / 1000) points. */
    long outer = 1000, inner = n / 1000;
    char *vals = malloc((size_t)inner * 8 + 16);
    size_t off = 0;
    for (long i = 0; i < inner; i++)
        off += (size_t)sprintf(vals + off, "%s%ld", i ? "," : "", i);
    char *outer_vals = malloc((size_t)outer * 8 + 16);
    size_t off2 = 0;
    for (long i = 0; i < outer; i++)
        off2 += (size_t)sprintf(outer_vals + off2, "%s%ld", i ? "," : "", i);
    size_t size = off + off2 + sizeof json;
    char *text = malloc(size);
    snprintf(text, size,
             "{\"jobs\": [{\"id\": \"t-{a}-{b}\", \"kind\": \"noop\","
             " \"matrix\": {\"a\": [%s], \"b\": [%s]}},"
             " {\"id\": \"after\", \"kind\": \"noop\", \"after\": [\"t-999-*\"]}]}",
             outer_vals, vals);
    free(vals);
    free(outer_vals);

    size_t rss0 = tu_rss_bytes();
    int64_t t0 = tu_now_ns();
    belt_config *cfg = load_ok(text);
    free(text);
    uint64_t total = (uint64_t)(outer * inner) + 1;
    ck_assert_uint_eq(belt_config_job_count(cfg), total);
    size_t peak = tu_rss_bytes();
    for (uint64_t i = 0; i < total; i++) {
        belt_job *j = belt_config_job_at(cfg, i);
        ck_assert_ptr_nonnull(j);
        if (i == total - 2) {
            char want[64];
            snprintf(want, sizeof want, "t-999-%ld", inner - 1);
            ck_assert_str_eq(j->id, want);
        }
        belt_config_job_free(j);
        if ((i & 0xffff) == 0) {
            size_t r = tu_rss_bytes();
            if (r > peak)
                peak = r;
        }
    }
    double secs = (double)(tu_now_ns() - t0) / 1e9;
    size_t growth = peak > rss0 ? peak - rss0 : 0;
    /* Not under sanitizers: ASan quarantines freed memory (256 MiB), so
     * RSS says nothing about our own use there. */
    ck_assert_msg(tu_sanitized() || growth < (size_t)64 << 20,
                  "RSS grew by %zu MiB for %" PRIu64 " jobs", growth >> 20, total);
    ck_assert_msg(secs < tu_timeout(20), "took %.1f s", secs);
    belt_config_free(cfg);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");

    TCase *tc = tcase_create("invalid");
    if (n_invalid > 0)
        tcase_add_loop_test(tc, test_invalid_case, 0, n_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("valid");
    if (n_valid > 0)
        tcase_add_loop_test(tc, test_valid_case, 0, n_valid);
    suite_add_tcase(s, tc);

    tc = tcase_create("core");
    tcase_add_test(tc, test_error_format);
    tcase_add_test(tc, test_load_file);
    tcase_add_test(tc, test_default_source);
    tcase_add_test(tc, test_parse_workers);
    tcase_add_test(tc, test_workers_forms);
    tcase_add_test(tc, test_policies);
    tcase_add_test(tc, test_matrix_order);
    tcase_add_test(tc, test_placeholder_rules);
    tcase_add_test(tc, test_placeholder_typo);
    tcase_add_test(tc, test_no_shared_state);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, tu_timeout(60));
    tcase_add_test(tc, test_million_matrix);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    n_invalid = list_cases("invalid", invalid_cases);
    n_valid = list_cases("valid", valid_cases);
    if (n_invalid < 25 || n_valid < 5) {
        fprintf(stderr,
                "check_config: found %d invalid and %d valid cases under %s/tests/configs\n",
                n_invalid, n_valid, srcdir());
        return 1;
    }
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    for (int i = 0; i < n_invalid; i++)
        free(invalid_cases[i]);
    for (int i = 0; i < n_valid; i++)
        free(valid_cases[i]);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
