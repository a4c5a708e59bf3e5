/* check_pipeline.c: unit tests of belt pipelines (src/pipeline*.c,
 * src/stage_*.c): the config loader (good and bad configs), and runs of
 * whole pipelines with every stage kind: counts conserved (no item lost or
 * duplicated), ordered output exactly in order through filters and
 * fan-outs with several workers, dead letters, halt_on_error, misbehaving
 * stream programs (exit early, block-buffer) reported without hanging,
 * stops, and bounded memory.  And the engine's parts on their own: batches
 * of lines (their layout, belt__batch_add_lines), a worker's output in
 * burst mode, an edge's wait for room, belt__writev_full.
 *
 * The plugin stages come from tests/unit/plugin_test.c, built as
 * $top_builddir/tests/unit/.libs/plugin_test.so.  Sizes shrink with
 * BELT_TEST_SCALE and under sanitizers (test_util.h).
 */
#include "test_util.h"

#include "util/buf.h"
#include "util/fd.h"
#include "pipeline/pipeline.h"
#include "pipeline/internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* ---- helpers ------------------------------------------------------------ */

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/belt-pipe-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *plugin(void)
{
    static char path[1024];
    const char *top = getenv("top_builddir");
    snprintf(path, sizeof path, "%s/tests/unit/.libs/plugin_test.so", top ? top : ".");
    return path;
}

/* Writes text to dir/name; returns the path (static buffer per call site). */
static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Reads dir/name as lines (caller frees each and the array). */
static char **read_lines(const char *name, size_t *n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    *n = 0;
    if (f == NULL)
        return NULL;
    size_t cap = 1024;
    char **v = malloc(cap * sizeof *v);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        if (*n == cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof *v);
            ck_assert_ptr_nonnull(nv);
            v = nv;
        }
        v[(*n)++] = strdup(line);
    }
    free(line);
    fclose(f);
    return v;
}

static void free_lines(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct run {
    belt__pipeline_config *cfg;
    belt__pipeline *p;
    int outcome;
    belt__pipeline_stats st;
    belt__stage_stats ss[8];
    char error[1024];
} run;

/* Loads the config (printf-style), which must be valid. */
static void vload(run *r, const char *fmt, va_list ap)
{
    char json[8192];
    vsnprintf(json, sizeof json, fmt, ap);
    memset(r, 0, sizeof *r);
    belt_config_error err;
    int rc = belt__pipeline_load_string(json, "test.json", &r->cfg, &err);
    if (rc != BELT_OK) {
        char buf[1024];
        ck_abort_msg("config rejected: %s\n%s",
                     belt_config_error_format(&err, buf, sizeof buf), json);
    }
    r->p = belt__pipeline_create(r->cfg);
    ck_assert_ptr_nonnull(r->p);
}

static void load(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void load(run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vload(r, fmt, ap);
    va_end(ap);
}

static void finish(run *r)
{
    r->st.stage = r->ss;
    belt__pipeline_stats_get(r->p, &r->st);
    const char *e = belt__pipeline_error(r->p);
    snprintf(r->error, sizeof r->error, "%s", e != NULL ? e : "");
    belt__pipeline_free(r->p);
    belt__pipeline_config_free(r->cfg);
    r->p = NULL;
    r->cfg = NULL;
}

/* Loads, runs to the end, takes the stats, frees. */
static void run_json(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_json(run *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vload(r, fmt, ap);
    va_end(ap);
    r->outcome = belt__pipeline_run(r->p);
    finish(r);
}

static uint64_t filtered_sum(const run *r)
{
    uint64_t f = 0;
    for (size_t i = 0; i < r->st.nstages; i++)
        f += r->ss[i].filtered;
    return f;
}

/* ---- config ------------------------------------------------------------- */

START_TEST(test_config_good)
{
    write_file("in.txt", "a\nb\n");
    char json[16384];
    snprintf(json, sizeof json,
             "{\"pipeline\": {\"source\": {\"file\": \"%s/in.txt\"},\n"
             " \"stages\": [\n"
             "  {\"name\": \"fetch\", \"workers\": 8, \"run\": \"echo {}\", \"timeout\": \"2s\"},\n"
             "  {\"name\": \"parse\", \"run\": \"cat\", \"mode\": \"stream\", \"capacity\": 0},\n"
             "  {\"name\": \"up\", \"plugin\": \"%s\", \"symbol\": \"t_upper\", \"arg\": \"x\"},\n"
             "  {\"builtin\": \"grep\", \"pattern\": \"^a\", \"invert\": true},\n"
             "  {\"builtin\": \"sample\", \"rate\": 0.5, \"seed\": 3},\n"
             "  {\"builtin\": \"identity\", \"argv\": null}\n"
             " ], \"sink\": {\"file\": \"%s/out.txt\"}, \"ordered\": true}}",
             dir, plugin(), dir);
    /* argv: null is a type error; drop that stage first. */
    belt_config_error err;
    belt__pipeline_config *pc = NULL;
    ck_assert_int_eq(belt__pipeline_load_string(json, "g.json", &pc, &err), BELT_ECONFIG);
    ck_assert_ptr_null(pc);
    char *cut = strstr(json, ",\n  {\"builtin\": \"identity\"");
    ck_assert_ptr_nonnull(cut);
    memmove(cut, strstr(cut, "\n ], "), strlen(strstr(cut, "\n ], ")) + 1);
    int rc = belt__pipeline_load_string(json, "g.json", &pc, &err);
    char buf[1024];
    ck_assert_msg(rc == BELT_OK, "%s", belt_config_error_format(&err, buf, sizeof buf));
    ck_assert_uint_eq(pc->nstages, 5);
    ck_assert_int_eq(pc->src, BELT__SRC_FILE);
    ck_assert_int_eq(pc->sink, BELT__SNK_FILE);
    ck_assert(pc->ordered);
    ck_assert_int_eq(pc->stages[0].kind, BELT__STAGE_ITEM);
    ck_assert_int_eq(pc->stages[0].workers, 8);
    ck_assert_int_eq(pc->stages[0].timeout_ns, 2000000000);
    ck_assert_uint_eq(pc->stages[0].capacity, BELT__PIPE_DEFAULT_CAPACITY);
    ck_assert_int_eq(pc->stages[1].kind, BELT__STAGE_STREAM);
    ck_assert_uint_eq(pc->stages[1].capacity, 0);
    ck_assert_uint_eq(pc->stages[3].capacity, BELT__PIPE_DEFAULT_CAPACITY_FAST);
    ck_assert_int_eq(pc->stages[2].kind, BELT__STAGE_PLUGIN);
    ck_assert_str_eq(pc->stages[2].symbol, "t_upper");
    ck_assert_str_eq(pc->stages[3].name, "stage4");
    ck_assert_str_eq(belt__stage_kind_name(&pc->stages[3]), "grep");
    ck_assert(pc->stages[3].invert);
    ck_assert_double_eq(pc->stages[4].rate, 0.5);
    ck_assert_uint_eq(pc->stages[4].seed, 3);
    char dl[256];
    snprintf(dl, sizeof dl, "%s/out.txt.dead.jsonl", dir);
    ck_assert_str_eq(pc->dead_letter, dl);
    belt__pipeline_config_free(pc);

    ck_assert(belt__pipeline_is_config("{\"pipeline\": {}}", 16));
    ck_assert(!belt__pipeline_is_config("{\"jobs\": []}", 12));
    ck_assert(!belt__pipeline_is_config("{nope", 5));
}
END_TEST

/* One bad config and a piece of its expected message. */
static const struct {
    const char *stages; /* the "stages" array; %s: the plugin path */
    const char *extra;  /* more pipeline keys, or "" */
    const char *want;
} bad[] = {
    { "[{\"run\": \"cat\", \"mode\": \"strem\"}]", "",
      "unknown stage mode \"strem\" (did you mean \"stream\"?)" },
    { "[{\"builtin\": \"grpe\", \"pattern\": \"x\"}]", "",
      "unknown builtin stage \"grpe\" (did you mean \"grep\"?)" },
    { "[{\"plugn\": \"x.so\"}]", "", "unknown key \"plugn\" (did you mean \"plugin\"?)" },
    { "[{\"name\": \"n\"}]", "", "a stage needs one of: run, argv, plugin, builtin" },
    { "[{\"run\": \"cat\", \"plugin\": \"x.so\"}]", "", "has both \"run\" and \"plugin\"" },
    { "[{\"plugin\": \"/nonexistent/libx.so\", \"symbol\": \"f\"}]", "",
      "cannot load plugin: /nonexistent/libx.so: cannot open shared object file" },
    { "[{\"plugin\": \"%s\", \"symbol\": \"t_nothere\"}]", "",
      "symbol \"t_nothere\" not found in plugin" },
    { "[{\"plugin\": \"%s\", \"symbol\": \"t_noabi\"}]", "",
      "t_noabi_belt_abi\" not found" },
    { "[{\"plugin\": \"%s\"}]", "", "needs \"symbol\"" },
    { "[{\"builtin\": \"grep\", \"pattern\": \"a(\"}]", "", "bad regular expression" },
    { "[{\"builtin\": \"sample\"}]", "", "needs one of \"every\"" },
    { "[{\"builtin\": \"identity\", \"capacity\": -1}]", "", "must be between 0 and" },
    { "[{\"builtin\": \"identity\", \"workers\": 0}]", "", "must be between 1 and" },
    { "[{\"builtin\": \"identity\", \"timeout\": \"1s\"}]", "",
      "\"timeout\" does not apply to a builtin stage" },
    { "[{\"run\": \"cat\", \"timeout\": \"soon\"}]", "", "expected a duration" },
    { "[{\"name\": \"a\", \"builtin\": \"identity\"}, {\"name\": \"a\", \"builtin\": \"identity\"}]",
      "", "stage name \"a\" is used twice" },
    { "[]", "", "expected a non-empty array of stages" },
    { "[{\"builtin\": \"identity\"}]", ", \"ordered\": true, \"reorder_window\": 0",
      "would deadlock" },
    { "[{\"run\": \"cat\", \"mode\": \"stream\", \"workers\": 2}]", ", \"ordered\": true",
      "must have 1 worker" },
    { "[{\"builtin\": \"identity\"}]", ", \"sink\": {\"file\": \"/nonexistent/dir/out\"}",
      "cannot write sink file /nonexistent/dir/out: directory /nonexistent/dir does not exist" },
    { "[{\"builtin\": \"identity\"}]", ", \"dead_letter\": \"/proc/nope/dead\"",
      "cannot write dead-letter file" },
    { "[{\"builtin\": \"identity\"}]", ", \"sink\": {\"file\": \"a\", \"stdout\": true}",
      "sink has both" },
    { "[{\"builtin\": \"identity\"}]", ", \"odered\": true",
      "unknown key \"odered\" (did you mean \"ordered\"?)" },
};

START_TEST(test_config_bad)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char stages[512], json[2048];
        snprintf(stages, sizeof stages, bad[i].stages, plugin());
        snprintf(json, sizeof json,
                 "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": 3}},\n"
                 "  \"stages\": %s%s}}", stages, bad[i].extra);
        belt_config_error err;
        belt__pipeline_config *pc = (belt__pipeline_config *)1;
        int rc = belt__pipeline_load_string(json, "bad.json", &pc, &err);
        char buf[1024];
        belt_config_error_format(&err, buf, sizeof buf);
        ck_assert_msg(rc == BELT_ECONFIG, "case %zu: accepted: %s", i, json);
        ck_assert_ptr_null(pc);
        ck_assert_msg(strstr(buf, bad[i].want) != NULL, "case %zu: got %s\nwant %s", i,
                      buf, bad[i].want);
        ck_assert_msg(strncmp(buf, "bad.json:", 9) == 0, "case %zu: %s", i, buf);
    }
    /* A missing source file; an error's location. */
    belt_config_error err;
    belt__pipeline_config *pc;
    const char *j = "{\"pipeline\": {\n  \"source\": {\"file\": \"/nonexistent/in\"},\n"
                    "  \"stages\": [{\"builtin\": \"identity\"}]}}";
    ck_assert_int_eq(belt__pipeline_load_string(j, "s.json", &pc, &err), BELT_ECONFIG);
    char buf[1024];
    belt_config_error_format(&err, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "s.json:2:") == buf &&
                  strstr(buf, "pipeline.source.file: cannot read source file "
                              "/nonexistent/in: No such file or directory") != NULL,
                  "%s", buf);
    ck_assert_int_eq(belt__pipeline_load_string("{\"pipeline\": [", "m.json", &pc, &err),
                     BELT_ECONFIG);
    ck_assert_int_eq(belt__pipeline_load("/nonexistent.json", &pc, &err), BELT_ENOENT);
}
END_TEST

START_TEST(test_hist_quantile)
{
    uint64_t h[BELT__HIST_BUCKETS] = { 0 };
    ck_assert_int_eq(belt__hist_quantile(h, 0.99), 0);
    h[10] = 99; /* [1024, 2048) */
    h[20] = 1;
    ck_assert_int_eq(belt__hist_quantile(h, 0.5), 2048);
    ck_assert_int_eq(belt__hist_quantile(h, 0.99), 2048);
    ck_assert_int_eq(belt__hist_quantile(h, 1.0), 1 << 21);
}
END_TEST

/* ---- builtin and plugin pipelines --------------------------------------- */

START_TEST(test_identity_conserved)
{
    long n = tu_scaled(200000, 2000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"builtin\": \"identity\", \"workers\": 2},"
                 " {\"builtin\": \"identity\", \"capacity\": 0},"
                 " {\"builtin\": \"identity\", \"workers\": 3, \"capacity\": 16}],"
                 " \"sink\": {\"file\": \"%s/out\"}}}", n, dir);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    ck_assert_uint_eq(r.st.source_items, (uint64_t)n);
    ck_assert_uint_eq(r.st.sink_items, (uint64_t)n);
    ck_assert_uint_eq(r.st.dead_letters, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(r.ss[i].items_in, (uint64_t)n);
        ck_assert_uint_eq(r.ss[i].items_out, (uint64_t)n);
        ck_assert_uint_eq(r.ss[i].timed, (uint64_t)n);
        ck_assert_uint_eq(r.ss[i].queued, 0);
    }
    size_t nl;
    char **v = read_lines("out", &nl);
    ck_assert_uint_eq(nl, (size_t)n);
    /* Every number exactly once. */
    char *seen = calloc((size_t)n + 1, 1);
    for (size_t i = 0; i < nl; i++) {
        long x = atol(v[i]);
        ck_assert(x >= 1 && x <= n && !seen[x]);
        seen[x] = 1;
    }
    free(seen);
    free_lines(v, nl);
}
END_TEST

/* Expected output of grep even | dup: i, ib for every even i. */
static void check_even_dup(char **v, size_t nl, long n, bool ordered)
{
    ck_assert_uint_eq(nl, (size_t)n / 2 * 2);
    if (ordered) {
        size_t k = 0;
        for (long i = 2; i <= n; i += 2) {
            char a[32], b[32];
            snprintf(a, sizeof a, "%ld", i);
            snprintf(b, sizeof b, "%ldb", i);
            ck_assert_msg(strcmp(v[k], a) == 0, "line %zu: %s, want %s", k, v[k], a);
            ck_assert_msg(strcmp(v[k + 1], b) == 0, "line %zu: %s, want %s", k + 1,
                          v[k + 1], b);
            k += 2;
        }
        return;
    }
    char **want = malloc(nl * sizeof *want);
    size_t k = 0;
    for (long i = 2; i <= n; i += 2) {
        char a[32];
        snprintf(a, sizeof a, "%ld", i);
        want[k++] = strdup(a);
        snprintf(a, sizeof a, "%ldb", i);
        want[k++] = strdup(a);
    }
    qsort(want, k, sizeof *want, cmp_str);
    qsort(v, nl, sizeof *v, cmp_str);
    for (size_t i = 0; i < nl; i++)
        ck_assert_str_eq(v[i], want[i]);
    free_lines(want, k);
}

static void filter_fanout(bool ordered)
{
    long n = tu_scaled(60000, 2000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"name\": \"even\", \"builtin\": \"grep\","
                 "   \"pattern\": \"[02468]$\", \"workers\": 3, \"capacity\": 40},"
                 " {\"name\": \"dup\", \"plugin\": \"%s\", \"symbol\": \"t_dup\","
                 "   \"workers\": 3, \"capacity\": 8},"
                 " {\"name\": \"id\", \"builtin\": \"identity\", \"workers\": 2}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"ordered\": %s,"
                 " \"reorder_window\": 3, \"batch\": 7}}",
             n, plugin(), dir, ordered ? "true" : "false");
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    ck_assert_uint_eq(r.st.source_items, (uint64_t)n);
    ck_assert_uint_eq(r.ss[0].filtered, (uint64_t)(n - n / 2));
    ck_assert_uint_eq(r.ss[0].items_out, (uint64_t)(n / 2));
    ck_assert_uint_eq(r.ss[1].items_in, (uint64_t)(n / 2));
    ck_assert_uint_eq(r.ss[1].items_out, (uint64_t)(n / 2 * 2));
    ck_assert_uint_eq(r.st.sink_items, (uint64_t)(n / 2 * 2));
    size_t nl;
    char **v = read_lines("out", &nl);
    check_even_dup(v, nl, n, ordered);
    free_lines(v, nl);
}

START_TEST(test_ordered_filter_fanout)
{
    filter_fanout(true);
}
END_TEST

START_TEST(test_unordered_filter_fanout)
{
    filter_fanout(false);
}
END_TEST

START_TEST(test_plugin_ctx_sample)
{
    long n = tu_scaled(20000, 1000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"builtin\": \"sample\", \"every\": 10},"
                 " {\"plugin\": \"%s\", \"symbol\": \"t_upper\", \"workers\": 3}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"ordered\": true}}",
             n, plugin(), dir);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    size_t nl;
    char **v = read_lines("out", &nl);
    ck_assert_uint_eq(nl, (size_t)(n + 9) / 10);
    for (size_t i = 0; i < nl; i++)
        ck_assert_int_eq(atol(v[i]), (long)(1 + 10 * i));
    ck_assert_uint_eq(r.st.source_items, r.st.sink_items + filtered_sum(&r));
    free_lines(v, nl);
}
END_TEST

START_TEST(test_plugin_dead_letters)
{
    char text[4096] = "";
    size_t bad_n = 0, good_n = 0;
    for (int i = 0; i < 100; i++) {
        char line[32];
        snprintf(line, sizeof line, i % 7 == 3 ? "bad \"%d\"\n" : "ok%d\n", i);
        strcat(text, line);
        if (i % 7 == 3)
            bad_n++;
        else
            good_n++;
    }
    write_file("in", text);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"file\": \"%s/in\"},"
                 " \"stages\": [{\"name\": \"check\", \"plugin\": \"%s\","
                 "   \"symbol\": \"t_fail\", \"workers\": 2}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"dead_letter\": \"%s/dead\"}}",
             dir, plugin(), dir, dir);
    ck_assert_msg(r.outcome == BELT__PIPE_FAILED_ITEMS, "%d %s", r.outcome, r.error);
    ck_assert_uint_eq(r.st.dead_letters, bad_n);
    ck_assert_uint_eq(r.ss[0].failed, bad_n);
    ck_assert_uint_eq(r.st.sink_items, good_n);
    ck_assert_uint_eq(r.st.source_items,
                      r.st.sink_items + r.st.dead_letters + filtered_sum(&r));
    size_t nl, nd;
    char **v = read_lines("out", &nl);
    char **d = read_lines("dead", &nd);
    ck_assert_uint_eq(nl, good_n);
    for (size_t i = 0; i < nl; i++)
        ck_assert_msg(strncmp(v[i], "ok", 2) == 0, "%s", v[i]); /* no "partial" */
    ck_assert_uint_eq(nd, bad_n);
    for (size_t i = 0; i < nd; i++) {
        ck_assert_msg(strstr(d[i], "{\"stage\": \"check\", \"item\": \"bad \\\"") == d[i],
                      "%s", d[i]);
        ck_assert_msg(strstr(d[i], "\"reason\": \"bad item\", \"code\": 7}") != NULL,
                      "%s", d[i]);
    }
    free_lines(v, nl);
    free_lines(d, nd);
}
END_TEST

START_TEST(test_halt_on_error)
{
    long n = tu_scaled(100000, 5000);
    run r;
    /* t_fail fails items containing "bad": none in a range, so grep a
     * source command's output instead. */
    run_json(&r, "{\"pipeline\": {\"source\": {\"command\": \"seq 1 %ld | sed 's/^500$/bad/'\"},"
                 " \"stages\": [{\"name\": \"check\", \"plugin\": \"%s\","
                 "   \"symbol\": \"t_fail\", \"workers\": 2}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"halt_on_error\": true}}",
             n, plugin(), dir);
    ck_assert_msg(r.outcome == BELT__PIPE_HALTED, "%d %s", r.outcome, r.error);
    ck_assert_msg(strstr(r.error, "stage check: an item failed (bad item)") != NULL, "%s",
                  r.error);
    ck_assert_uint_eq(r.st.dead_letters, 1);
    ck_assert_uint_le(r.st.sink_items, (uint64_t)n - 1);
}
END_TEST

START_TEST(test_plugin_init_fails)
{
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": 10}},"
                 " \"stages\": [{\"name\": \"m\", \"plugin\": \"%s\", \"symbol\": \"t_badinit\"}],"
                 " \"sink\": {\"file\": \"%s/out\"}}}", plugin(), dir);
    ck_assert_int_eq(r.outcome, BELT__PIPE_ERROR);
    ck_assert_msg(strstr(r.error, "stage m: init failed (no model)") != NULL, "%s", r.error);
}
END_TEST

/* ---- process stages ----------------------------------------------------- */

START_TEST(test_item_stage)
{
    write_file("in", "a\nit's\nb c\n\n$HOME\n");
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"file\": \"%s/in\"},"
                 " \"stages\": [{\"run\": \"echo x{}; echo y{}\", \"workers\": 3},"
                 " {\"argv\": [\"sed\", \"s/^/<{}>/\"], \"workers\": 2}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"ordered\": true}}", dir, dir);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    size_t nl;
    char **v = read_lines("out", &nl);
    const char *want[] = { "<xa>xa", "<ya>ya", "<xit's>xit's", "<yit's>yit's",
                           "<xb c>xb c", "<yb c>yb c", "<x>x", "<y>y",
                           "<x$HOME>x$HOME", "<y$HOME>y$HOME" };
    ck_assert_uint_eq(nl, 10);
    for (size_t i = 0; i < nl; i++)
        ck_assert_str_eq(v[i], want[i]);
    ck_assert_uint_eq(r.ss[0].items_in, 5);
    ck_assert_uint_eq(r.ss[0].items_out, 10);
    ck_assert_uint_eq(r.ss[0].timed, 5);
    free_lines(v, nl);
}
END_TEST

START_TEST(test_item_fail_timeout)
{
    run r;
    int64_t t0 = tu_now_ns();
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": 12}},"
                 " \"stages\": [{\"name\": \"w\", \"workers\": 4, \"timeout\": \"300ms\","
                 "   \"run\": \"case {} in 3) exit 3;; 5) exec sleep 20;; 7) kill -9 $$;; "
                 "9) exit 0;; esac; echo {}\"}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"dead_letter\": \"%s/dead\"}}",
             dir, dir);
    ck_assert_msg(r.outcome == BELT__PIPE_FAILED_ITEMS, "%d %s", r.outcome, r.error);
    ck_assert_msg(tu_now_ns() - t0 < 15 * 1000000000LL, "the timeout did not kill");
    ck_assert_uint_eq(r.st.dead_letters, 3);
    ck_assert_uint_eq(r.ss[0].filtered, 1);
    ck_assert_uint_eq(r.st.sink_items, 8);
    ck_assert_uint_eq(r.st.source_items,
                      r.st.sink_items + r.st.dead_letters + filtered_sum(&r));
    size_t nd;
    char **d = read_lines("dead", &nd);
    ck_assert_uint_eq(nd, 3);
    qsort(d, nd, sizeof *d, cmp_str);
    ck_assert_str_eq(d[0], "{\"stage\": \"w\", \"item\": \"3\", \"reason\": \"exit 3\", "
                           "\"exit\": 3}");
    ck_assert_str_eq(d[1], "{\"stage\": \"w\", \"item\": \"5\", \"reason\": \"timed out "
                           "after 300ms\", \"timeout\": true}");
    ck_assert_msg(strstr(d[2], "\"item\": \"7\", \"reason\": \"signal 9") != NULL &&
                  strstr(d[2], "\"signal\": 9}") != NULL, "%s", d[2]);
    free_lines(d, nd);
}
END_TEST

START_TEST(test_stream_stages)
{
    long n = tu_scaled(100000, 2000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"run\": \"cat\", \"mode\": \"stream\", \"workers\": 2},"
                 " {\"argv\": [\"sed\", \"s/1/one/\"], \"mode\": \"stream\"},"
                 " {\"run\": \"grep -v 7\", \"mode\": \"stream\", \"workers\": 2}],"
                 " \"sink\": {\"file\": \"%s/out\"}}}", n, dir);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    size_t nl;
    char **v = read_lines("out", &nl);
    char **want = malloc((size_t)n * sizeof *want);
    size_t k = 0;
    for (long i = 1; i <= n; i++) {
        char a[32], b[40];
        snprintf(a, sizeof a, "%ld", i);
        if (strchr(a, '7') != NULL)
            continue;
        char *one = strchr(a, '1');
        if (one != NULL) {
            *one = '\0';
            snprintf(b, sizeof b, "%sone%s", a, one + 1);
        } else {
            snprintf(b, sizeof b, "%s", a);
        }
        want[k++] = strdup(b);
    }
    ck_assert_uint_eq(nl, k);
    qsort(want, k, sizeof *want, cmp_str);
    qsort(v, nl, sizeof *v, cmp_str);
    for (size_t i = 0; i < nl; i++)
        ck_assert_str_eq(v[i], want[i]);
    ck_assert_uint_eq(r.ss[2].filtered, (uint64_t)n - k);
    ck_assert_uint_eq(r.st.source_items, r.st.sink_items + filtered_sum(&r));
    free_lines(want, k);
    free_lines(v, nl);
}
END_TEST

START_TEST(test_stream_ordered)
{
    long n = tu_scaled(40000, 2000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"builtin\": \"grep\", \"pattern\": \"[02468]$\", \"workers\": 2},"
                 " {\"run\": \"cat\", \"mode\": \"stream\"},"
                 " {\"plugin\": \"%s\", \"symbol\": \"t_dup\", \"workers\": 3}],"
                 " \"sink\": {\"file\": \"%s/out\"}, \"ordered\": true}}", n, plugin(), dir);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    size_t nl;
    char **v = read_lines("out", &nl);
    check_even_dup(v, nl, n, true);
    free_lines(v, nl);
}
END_TEST

START_TEST(test_stream_exits_early)
{
    long n = tu_scaled(200000, 50000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"name\": \"first\", \"run\": \"head -n 1\", \"mode\": \"stream\"}],"
                 " \"sink\": {\"file\": \"%s/out\"}}}", n, dir);
    ck_assert_int_eq(r.outcome, BELT__PIPE_ERROR);
    ck_assert_msg(strstr(r.error, "stage first: program exited") == r.error &&
                  strstr(r.error, "(it exited early)") != NULL, "%s", r.error);
}
END_TEST

START_TEST(test_stream_block_buffered)
{
    run r;
    int64_t t0 = tu_now_ns();
    /* perl block-buffers a pipe and holds its output while it sleeps after
     * the end of its input. */
    run_json(&r, "{\"pipeline\": {\"source\": {\"command\": \"printf 'a\\\\nb\\\\n'\"},"
                 " \"stages\": [{\"name\": \"parse\", \"mode\": \"stream\","
                 "   \"argv\": [\"perl\", \"-ne\", \"print; END { sleep 60 }\"],"
                 "   \"stall_timeout\": \"300ms\"}],"
                 " \"sink\": {\"file\": \"%s/out\"}}}", dir);
    ck_assert_int_eq(r.outcome, BELT__PIPE_ERROR);
    ck_assert_msg(strstr(r.error, "stage parse: program produced no output for 300ms "
                                  "with 2 items outstanding") == r.error &&
                  strstr(r.error, "stdbuf -oL") != NULL, "%s", r.error);
    ck_assert_msg(tu_now_ns() - t0 < 30 * 1000000000LL, "stalled pipeline not stopped");
}
END_TEST

START_TEST(test_stream_not_found)
{
    run r;
    load(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": 10}},"
             " \"stages\": [{\"name\": \"x\", \"argv\": [\"/nonexistent/prog\"],"
             "   \"mode\": \"stream\", \"workers\": 2}, {\"builtin\": \"identity\"}],"
             " \"sink\": {\"file\": \"%s/out\"}}}", dir);
    ck_assert_int_lt(belt__pipeline_start(r.p), 0);
    ck_assert_int_eq(belt__pipeline_wait(r.p, -1), BELT__PIPE_ERROR);
    finish(&r);
    ck_assert_msg(strstr(r.error, "stage x: command not found: /nonexistent/prog") != NULL,
                  "%s", r.error);
}
END_TEST

START_TEST(test_command_source_sink)
{
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"command\": \"printf 'x\\\\ny\\\\nz'\"},"
                 " \"stages\": [{\"builtin\": \"identity\"}],"
                 " \"sink\": {\"command\": \"cat > %s/out\"}, \"ordered\": true}}", dir);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    size_t nl;
    char **v = read_lines("out", &nl);
    ck_assert_uint_eq(nl, 3);
    ck_assert_str_eq(v[0], "x");
    ck_assert_str_eq(v[2], "z");
    free_lines(v, nl);
}
END_TEST

/* ---- stopping ----------------------------------------------------------- */

START_TEST(test_stop_drain)
{
    run r;
    load(&r, "{\"pipeline\": {\"source\": {\"command\": \"yes\"},"
             " \"stages\": [{\"builtin\": \"identity\", \"workers\": 2},"
             " {\"run\": \"cat\", \"mode\": \"stream\"}],"
             " \"sink\": {\"file\": \"%s/out\"}}}", dir);
    ck_assert_int_eq(belt__pipeline_start(r.p), BELT_OK);
    /* Until something has gone all the way through (a loaded machine may
     * take a while to start the processes). */
    belt__stage_stats ss[2];
    belt__pipeline_stats st = { .stage = ss };
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(belt__pipeline_wait(r.p, 50 * 1000000LL), BELT__PIPE_RUNNING);
        belt__pipeline_stats_get(r.p, &st);
        if (st.sink_items > 0)
            break;
    }
    belt__pipeline_stop(r.p, BELT__STOP_DRAIN);
    ck_assert_int_eq(belt__pipeline_wait(r.p, -1), BELT__PIPE_STOPPED);
    finish(&r);
    ck_assert_uint_gt(r.st.source_items, 0);
    ck_assert_uint_eq(r.st.sink_items, r.st.source_items); /* drained: none lost */
    ck_assert_str_eq(r.error, "");
}
END_TEST

START_TEST(test_stop_now)
{
    run r;
    int64_t t0 = tu_now_ns();
    load(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": 100}},"
             " \"stages\": [{\"run\": \"sleep 20\", \"workers\": 2},"
             " {\"run\": \"cat\", \"mode\": \"stream\"}],"
             " \"sink\": {\"file\": \"%s/out\"}, \"ordered\": true}}", dir);
    ck_assert_int_eq(belt__pipeline_start(r.p), BELT_OK);
    ck_assert_int_eq(belt__pipeline_wait(r.p, 200 * 1000000LL), BELT__PIPE_RUNNING);
    belt__pipeline_stop(r.p, BELT__STOP_NOW);
    ck_assert_int_eq(belt__pipeline_wait(r.p, -1), BELT__PIPE_STOPPED);
    finish(&r);
    ck_assert_uint_eq(r.st.sink_items, 0);
    ck_assert_msg(tu_now_ns() - t0 < 15 * 1000000000LL, "stop NOW did not kill");
}
END_TEST

/* Waits (50 ms steps, at most ~20 s) until the first stage has taken an
 * item; false if the run ended first. */
static bool wait_first_in(run *r, belt__pipeline_stats *st)
{
    for (int i = 0; i < 400; i++) {
        if (belt__pipeline_wait(r->p, 50 * 1000000LL) != BELT__PIPE_RUNNING)
            return false;
        belt__pipeline_stats_get(r->p, st);
        if (st->stage[0].items_in > 0)
            return true;
    }
    return false;
}

/* A fast endless command source into a slow per-item stage: a DRAIN stop
 * must stop the source at once, not after the rest of its read chunk has
 * gone through the stage at the stage's pace (thousands of items).  The
 * bound is a hang detector, far above the few items in flight. */
START_TEST(test_stop_drain_fast_source)
{
    run r;
    load(&r, "{\"pipeline\": {\"source\": {\"command\":"
             " \"i=0; while :; do i=$((i + 1)); echo $i; done\"},"
             " \"stages\": [{\"run\": \"sleep 0.02; echo {}\", \"workers\": 2,"
             " \"capacity\": 4}],"
             " \"sink\": {\"file\": \"%s/out\"}}}", dir);
    ck_assert_int_eq(belt__pipeline_start(r.p), BELT_OK);
    belt__stage_stats ss[1];
    belt__pipeline_stats st = { .stage = ss };
    ck_assert(wait_first_in(&r, &st));
    belt__pipeline_stop(r.p, BELT__STOP_DRAIN);
    int o = belt__pipeline_wait(r.p, (int64_t)(tu_timeout(20) * 1e9));
    if (o == BELT__PIPE_RUNNING) {
        belt__pipeline_stop(r.p, BELT__STOP_NOW);
        belt__pipeline_wait(r.p, -1);
    }
    finish(&r);
    ck_assert_msg(o == BELT__PIPE_STOPPED, "a DRAIN stop did not end (outcome %d)", o);
    ck_assert_uint_gt(r.st.source_items, 0);
    ck_assert_uint_eq(r.st.sink_items, r.st.source_items); /* drained: none lost */
    /* Only what was in flight: far less than a 64 KiB read chunk's lines. */
    ck_assert_uint_lt(r.st.source_items, 1000);
    ck_assert_str_eq(r.error, "");
}
END_TEST

/* A slow stage's outputs reach the sink while its input is still coming
 * (not when a batch of 256 has filled or the input ended): the sink count
 * is seen above 0 while the stage has not yet taken every item, or (a
 * stream stage takes all 40 into its pipe at once) below the total. */
static void check_streams_out(const char *stage)
{
    const uint64_t n = 40;
    run r;
    load(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %llu}},"
             " \"stages\": [%s],"
             " \"sink\": {\"file\": \"%s/out\"}}}", (unsigned long long)n, stage, dir);
    ck_assert_int_eq(belt__pipeline_start(r.p), BELT_OK);
    belt__stage_stats ss[1];
    memset(ss, 0, sizeof ss); /* filled by stats_get; zeroed for cppcheck */
    belt__pipeline_stats st = { .stage = ss };
    bool early = false;
    while (!early && belt__pipeline_wait(r.p, 10 * 1000000LL) == BELT__PIPE_RUNNING) {
        belt__pipeline_stats_get(r.p, &st);
        /* items_in first: a sink count read after it is at least as new. */
        uint64_t in = ss[0].items_in;
        belt__pipeline_stats_get(r.p, &st);
        early = st.sink_items > 0 && (in < n || st.sink_items < n);
    }
    ck_assert_int_eq(belt__pipeline_wait(r.p, -1), BELT__PIPE_OK);
    finish(&r);
    ck_assert_uint_eq(r.st.sink_items, n);
    ck_assert_msg(early, "%s: nothing reached the sink before the stage took "
                  "its last input, and then everything at once", stage);
}

START_TEST(test_item_output_prompt)
{
    check_streams_out("{\"run\": \"sleep 0.02; echo {}\", \"capacity\": 2}");
}
END_TEST

START_TEST(test_stream_output_prompt)
{
    check_streams_out("{\"mode\": \"stream\", \"capacity\": 2, \"run\":"
                      " \"while read -r l; do sleep 0.02; echo $l; done\"}");
}
END_TEST

/* busy_ns and the workers_busy gauge leave out the time a function stage
 * was blocked on a full channel downstream.  An identity stage feeding a
 * slow per-item stage (capacity 1) gets all 30 items in one batch and then
 * spends the run blocked sending them: its gauge reads 0 while it is
 * inside that batch (it read 1 when blocked sends counted as busy), and
 * its busy time is a small share of the run (the slow stage makes it last
 * >= 30 x 20 ms). */
START_TEST(test_busy_excludes_blocked)
{
    run r;
    load(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": 30}},"
             " \"stages\": [{\"name\": \"id\", \"builtin\": \"identity\"},"
             " {\"run\": \"sleep 0.02; echo {}\", \"capacity\": 1}],"
             " \"sink\": {\"file\": \"%s/out\"}}}", dir);
    ck_assert_int_eq(belt__pipeline_start(r.p), BELT_OK);
    belt__stage_stats a[2], b[2];
    memset(a, 0, sizeof a); /* filled by stats_get; zeroed for cppcheck */
    memset(b, 0, sizeof b);
    belt__pipeline_stats sa = { .stage = a }, sb = { .stage = b };
    bool idle_blocked = false;
    while (belt__pipeline_wait(r.p, 10 * 1000000LL) == BELT__PIPE_RUNNING) {
        belt__pipeline_stats_get(r.p, &sa);
        belt__pipeline_stats_get(r.p, &sb);
        /* a's items_in, then b's gauge, then b's items_out: when the gauge
         * was read, the worker had its last batch and was not done. */
        if (a[0].items_in == 30 && b[0].workers_busy == 0 && b[0].items_out < 30)
            idle_blocked = true;
    }
    ck_assert_int_eq(belt__pipeline_wait(r.p, -1), BELT__PIPE_OK);
    finish(&r);
    ck_assert_uint_eq(r.st.sink_items, 30);
    ck_assert_int_gt(r.ss[1].full_ns, 0); /* identity was blocked on it */
    ck_assert_msg(idle_blocked, "identity counted busy while blocked on a send");
    ck_assert_msg(r.ss[0].busy_ns < r.st.elapsed_ns / 2,
                  "identity busy %lld ns of %lld ns", (long long)r.ss[0].busy_ns,
                  (long long)r.st.elapsed_ns);
}
END_TEST

/* ---- memory ------------------------------------------------------------- */

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* 10 million items (numbers) through three stages at default capacities. */
START_TEST(test_memory_bounded)
{
    long n = tu_scaled(10000000, 100000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"range\": {\"from\": 1, \"to\": %ld}},"
                 " \"stages\": [{\"builtin\": \"identity\"}, {\"builtin\": \"sample\","
                 " \"every\": 1}, {\"builtin\": \"identity\", \"workers\": 2}],"
                 " \"sink\": {\"file\": \"/dev/null\"}}}", n);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    ck_assert_uint_eq(r.st.sink_items, (uint64_t)n);
    long kib = peak_rss_kib();
    printf("memory: %ld items through 3 stages, peak RSS %ld KiB, %.0f items/s\n", n,
           kib, (double)n / ((double)r.st.elapsed_ns / 1e9));
    if (!tu_sanitized())
        ck_assert_msg(kib < 64 * 1024, "peak RSS %ld KiB", kib);
}
END_TEST

/* Lines of 100 bytes from a command (100 MB of text at scale 1). */
START_TEST(test_memory_long_lines)
{
    long n = tu_scaled(1000000, 20000);
    run r;
    run_json(&r, "{\"pipeline\": {\"source\": {\"command\": \"yes %0100d | head -n %ld\"},"
                 " \"stages\": [{\"builtin\": \"identity\"}, {\"builtin\": \"sample\","
                 " \"every\": 1}, {\"builtin\": \"identity\", \"workers\": 2}],"
                 " \"sink\": {\"file\": \"/dev/null\"}}}", 0, n);
    ck_assert_msg(r.outcome == BELT__PIPE_OK, "%d %s", r.outcome, r.error);
    ck_assert_uint_eq(r.st.sink_items, (uint64_t)n);
    long kib = peak_rss_kib();
    printf("memory: %ld lines of 100 bytes through 3 stages, peak RSS %ld KiB\n", n, kib);
    if (!tu_sanitized())
        ck_assert_msg(kib < 64 * 1024, "peak RSS %ld KiB", kib);
}
END_TEST

/* ---- the engine's parts ------------------------------------------------- */

/* A pipeline shell with what batches, edges and outputs use: the pool,
 * the NOW token, and one edge of capacity cap (in batches). */
typedef struct rig {
    belt__pipeline p;
    belt__edge e;
} rig;

static void rig_init(rig *g, size_t cap, uint32_t batch_items)
{
    memset(g, 0, sizeof *g);
    ck_assert_int_eq(belt__bpool_init(&g->p.pool, 256), BELT_OK);
    ck_assert_int_eq(belt__cancel_init(&g->p.now), BELT_OK);
    g->e.ch = belt_chan_bounded(cap, sizeof(belt__pbatch *));
    ck_assert_ptr_nonnull(g->e.ch);
    ck_assert_int_eq(belt__edge_init_room(&g->e), BELT_OK);
    g->e.batch_items = batch_items;
}

static void rig_free(rig *g)
{
    belt__pbatch *b;
    while (belt_chan_try_recv(g->e.ch, &b) == BELT_OK)
        belt__batch_put(&g->p.pool, b);
    belt_chan_free(g->e.ch);
    belt__edge_destroy_room(&g->e);
    belt__cancel_destroy(&g->p.now);
    belt__bpool_destroy(&g->p.pool);
}

/* Appends batch b's items, each with a '\n', to t (checked against the
 * batch's own text, which must be the same). */
static void batch_text(const belt__pbatch *b, belt__buf *t)
{
    size_t start = t->len;
    for (uint32_t i = 0; i < b->n; i++) {
        size_t len;
        const char *s = belt__batch_item(b, i, &len);
        ck_assert_ptr_null(memchr(s, '\n', len));
        belt__buf_add(t, s, len);
        belt__buf_addc(t, '\n');
    }
    ck_assert_uint_eq(t->len - start, b->len);
    ck_assert_int_eq(memcmp(t->p + start, b->data, b->len), 0);
}

START_TEST(test_batch_lines)
{
    rig g;
    rig_init(&g, 4, 256);
    belt__pbatch *b = belt__batch_get(&g.p.pool);
    ck_assert_ptr_nonnull(b);
    /* Empty lines, a long one, and a cut last line (not taken). */
    const char *text = "a\n\nbcd\n\n\nefghij\nklm";
    size_t used;
    uint32_t lines;
    ck_assert_int_eq(belt__batch_add(b, "x", 1), BELT_OK);
    ck_assert_int_eq(belt__batch_add(b, "", 0), BELT_OK);
    ck_assert_int_eq(belt__batch_add_lines(b, text, strlen(text), 256, &used, &lines),
                     BELT_OK);
    ck_assert_uint_eq(used, strlen(text) - 3);
    ck_assert_uint_eq(lines, 6);
    ck_assert_uint_eq(b->n, 8);
    belt__buf t = { 0 };
    batch_text(b, &t);
    ck_assert_str_eq(belt__buf_str(&t), "x\n\na\n\nbcd\n\n\nefghij\n");
    /* No complete line: nothing taken. */
    ck_assert_int_eq(belt__batch_add_lines(b, "klm", 3, 256, &used, &lines), BELT_OK);
    ck_assert_uint_eq(used, 0);
    ck_assert_uint_eq(lines, 0);
    ck_assert_uint_eq(b->n, 8);
    /* max_items stops it (and is capped at the batch's room). */
    ck_assert_int_eq(belt__batch_add_lines(b, "1\n2\n3\n", 6, 10, &used, &lines), BELT_OK);
    ck_assert_uint_eq(lines, 2);
    ck_assert_uint_eq(used, 4);
    ck_assert_uint_eq(b->n, 10);
    ck_assert_int_eq(belt__batch_add_lines(b, "3\n", 2, 10, &used, &lines), BELT_OK);
    ck_assert_uint_eq(lines, 0);
    belt__batch_put(&g.p.pool, b);

    /* BELT__BATCH_BYTES: it stops at the first line that reaches it. */
    b = belt__batch_get(&g.p.pool);
    size_t line = 1000, n = 100 * line;
    char *big = malloc(n);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i++)
        big[i] = i % line == line - 1 ? '\n' : (char)('a' + i / line % 26);
    ck_assert_int_eq(belt__batch_add_lines(b, big, n, 256, &used, &lines), BELT_OK);
    size_t want = (BELT__BATCH_BYTES + line - 1) / line;
    ck_assert_uint_eq(lines, want);
    ck_assert_uint_eq(used, want * line);
    ck_assert_uint_ge(b->len, BELT__BATCH_BYTES);
    belt__buf_clear(&t);
    batch_text(b, &t);
    ck_assert_int_eq(memcmp(t.p, big, used), 0);
    belt__batch_put(&g.p.pool, b);

    /* Every byte value around the '\n's (the search goes a word at a
     * time: bytes next to 0x0a, like 0x0b and 0x8a, must not count). */
    unsigned char all[4096];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)(i * 7 + i / 256);
    all[sizeof all - 1] = '\n';
    size_t nls = 0;
    for (size_t i = 0; i < sizeof all; i++)
        nls += all[i] == '\n';
    b = belt__batch_get(&g.p.pool);
    ck_assert_int_eq(belt__batch_add_lines(b, (const char *)all, sizeof all, 256, &used,
                                           &lines), BELT_OK);
    ck_assert_uint_eq(used, sizeof all);
    ck_assert_uint_eq(lines, nls);
    belt__buf_clear(&t);
    batch_text(b, &t);
    ck_assert_int_eq(memcmp(t.p, all, sizeof all), 0);
    belt__batch_put(&g.p.pool, b);
    free(big);
    belt__buf_free(&t);
    rig_free(&g);
}
END_TEST

START_TEST(test_out_lines_burst)
{
    rig g;
    rig_init(&g, 64, 16);
    belt__out o;
    belt__out_init(&o, &g.p, NULL, &g.e, false);
    o.burst_mode = true;
    o.number = true;
    /* 1000 numbered lines fed in uneven pieces, as reads would cut them. */
    belt__buf in = { 0 };
    for (int i = 0; i < 1000; i++)
        belt__buf_addf(&in, "%d\n", i);
    ck_assert(!in.oom);
    size_t pos = 0, piece = 1;
    uint64_t lines = 0;
    bool sent_before_flush = false;
    belt__buf carry = { 0 };
    while (pos < in.len) {
        size_t n = piece < in.len - pos ? piece : in.len - pos;
        belt__buf_add(&carry, in.p + pos, n);
        pos += n;
        piece = piece * 3 % 97 + 1;
        size_t off = 0;
        for (;;) {
            size_t used;
            uint32_t k;
            ck_assert_int_eq(belt__out_lines(&o, carry.p + off, carry.len - off, &used, &k), 0);
            lines += k;
            if (used == 0)
                break;
            off += used;
        }
        memmove(carry.p, carry.p + off, carry.len - off);
        carry.len -= off;
        /* Full batches wait for a burst: a sent batch means a whole burst. */
        size_t queued = belt_chan_len(g.e.ch);
        ck_assert(queued % BELT__BURST == 0);
        sent_before_flush |= queued > 0;
    }
    ck_assert_uint_eq(carry.len, 0);
    ck_assert_uint_eq(lines, 1000);
    ck_assert_uint_eq(o.emitted, 1000);
    ck_assert(sent_before_flush); /* 1000 / 16 batches: more than a burst */
    ck_assert_int_eq(belt__out_flush(&o), 0);
    ck_assert_uint_eq(o.nburst, 0);
    ck_assert_ptr_null(o.cur);
    /* Everything arrives in order, in batches of at most 16 items. */
    belt__buf out = { 0 };
    belt__pbatch *b[BELT__BURST];
    uint64_t seq = 0;
    int k;
    while ((k = belt__edge_recv_many(&g.e, b, BELT__BURST, true)) > 0) {
        for (int i = 0; i < k; i++) {
            ck_assert_uint_le(b[i]->n, 16);
            ck_assert_uint_eq(b[i]->seq, seq++);
            batch_text(b[i], &out);
            belt__batch_put(&g.p.pool, b[i]);
        }
    }
    ck_assert_int_eq(k, BELT_EMPTY);
    ck_assert_uint_eq(atomic_load(&g.e.queued), 0);
    ck_assert_uint_eq(out.len, in.len);
    ck_assert_int_eq(memcmp(out.p, in.p, in.len), 0);
    belt__out_release(&o);
    belt__buf_free(&in);
    belt__buf_free(&out);
    belt__buf_free(&carry);
    rig_free(&g);
}
END_TEST

/* A burst sender for test_edge_room: sends `total` batches of one item
 * (its number) in bursts of 5. */
typedef struct room_sender {
    rig *g;
    int total;
    int rc;
} room_sender;

static void *room_send_main(void *arg)
{
    room_sender *s = arg;
    int64_t blocked = 0;
    s->rc = BELT_OK;
    for (int i = 0; i < s->total && s->rc == BELT_OK; i += 5) {
        belt__pbatch *b[5];
        int n = s->total - i < 5 ? s->total - i : 5;
        for (int j = 0; j < n; j++) {
            b[j] = belt__batch_get(&s->g->p.pool);
            char num[16];
            int len = snprintf(num, sizeof num, "%d", i + j);
            ck_assert_int_eq(belt__batch_add(b[j], num, (size_t)len), BELT_OK);
        }
        s->rc = belt__edge_send_many(&s->g->p, &s->g->e, b, (size_t)n, &blocked);
    }
    return NULL;
}

START_TEST(test_edge_room)
{
    /* A slow receiver: the sender waits for room (half the channel) and
     * everything arrives once, in order. */
    rig g;
    rig_init(&g, 8, 256);
    int total = (int)tu_scaled(20000, 2000);
    room_sender s = { &g, total, 0 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, room_send_main, &s), 0);
    for (int want = 0; want < total;) {
        belt__pbatch *b[3];
        int k = belt__edge_recv_many(&g.e, b, want % 2 ? 3 : 1, false);
        ck_assert_int_gt(k, 0);
        for (int i = 0; i < k; i++, want++) {
            size_t len;
            const char *item = belt__batch_item(b[i], 0, &len);
            char num[16];
            snprintf(num, sizeof num, "%d", want);
            ck_assert_uint_eq(len, strlen(num));
            ck_assert_int_eq(memcmp(item, num, len), 0);
            belt__batch_put(&g.p.pool, b[i]);
        }
    }
    pthread_join(th, NULL);
    ck_assert_int_eq(s.rc, BELT_OK);
    ck_assert_uint_eq(belt_chan_len(g.e.ch), 0);
    rig_free(&g);

    /* A full channel that closes (a stop): the sender gets BELT_CLOSED and
     * what it could not send goes back to the pool. */
    rig_init(&g, 8, 256);
    room_sender f = { &g, 1000, 0 };
    ck_assert_int_eq(pthread_create(&th, NULL, room_send_main, &f), 0);
    belt__pbatch *b;
    ck_assert_int_eq(belt__edge_recv(&g.e, &b, false), BELT_OK); /* it runs */
    belt__batch_put(&g.p.pool, b);
    belt__edge_close(&g.e);
    pthread_join(th, NULL);
    ck_assert_int_eq(f.rc, BELT_CLOSED);
    rig_free(&g);

    /* The last receiver leaving closes it too. */
    rig_init(&g, 8, 256);
    belt_chan_add_receivers(g.e.ch, 1);
    room_sender r = { &g, 1000, 0 };
    ck_assert_int_eq(pthread_create(&th, NULL, room_send_main, &r), 0);
    ck_assert_int_eq(belt__edge_recv(&g.e, &b, false), BELT_OK);
    belt__batch_put(&g.p.pool, b);
    belt__edge_receiver_done(&g.e);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.rc, BELT_CLOSED);
    rig_free(&g);
}
END_TEST

typedef struct drain {
    int fd;
    belt__buf got;
} drain;

static void *drain_main(void *arg)
{
    drain *d = arg;
    char buf[1000]; /* small reads: the writer meets a full pipe often */
    ssize_t k;
    while ((k = read(d->fd, buf, sizeof buf)) > 0)
        belt__buf_add(&d->got, buf, (size_t)k);
    return NULL;
}

START_TEST(test_writev_all)
{
    rig g;
    rig_init(&g, 1, 1);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    (void)fcntl(fds[1], F_SETPIPE_SZ, 4096);
    ck_assert_int_eq(fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK), 0);
    drain d = { fds[0], { 0 } };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, drain_main, &d), 0);
    /* Buffers of uneven sizes (empty ones too), more than the pipe holds:
     * partial writes cut them anywhere. */
    enum { NIOV = 40 };
    static char data[NIOV][3000];
    struct iovec iov[NIOV];
    belt__buf want = { 0 };
    for (int i = 0; i < NIOV; i++) {
        size_t len = (size_t)(i * 577 % 3000);
        if (i % 7 == 3)
            len = 0;
        memset(data[i], 'A' + i % 26, len);
        if (len > 0)
            data[i][len - 1] = (char)('0' + i % 10);
        iov[i] = (struct iovec){ .iov_base = data[i], .iov_len = len };
        belt__buf_add(&want, data[i], len);
    }
    ck_assert_int_eq(belt__writev_full(fds[1], iov, NIOV, g.p.now.wake_fd), BELT_OK);
    close(fds[1]);
    pthread_join(th, NULL);
    close(fds[0]);
    ck_assert_uint_eq(d.got.len, want.len);
    ck_assert_int_eq(memcmp(d.got.p, want.p, want.len), 0);
    belt__buf_free(&d.got);
    belt__buf_free(&want);
    rig_free(&g);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_good);
    tcase_add_test(tc, test_config_bad);
    tcase_add_test(tc, test_hist_quantile);
    suite_add_tcase(s, tc);

    tc = tcase_create("engine");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_batch_lines);
    tcase_add_test(tc, test_out_lines_burst);
    tcase_add_test(tc, test_edge_room);
    tcase_add_test(tc, test_writev_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("functions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_identity_conserved);
    tcase_add_test(tc, test_ordered_filter_fanout);
    tcase_add_test(tc, test_unordered_filter_fanout);
    tcase_add_test(tc, test_plugin_ctx_sample);
    tcase_add_test(tc, test_plugin_dead_letters);
    tcase_add_test(tc, test_halt_on_error);
    tcase_add_test(tc, test_plugin_init_fails);
    suite_add_tcase(s, tc);

    tc = tcase_create("processes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(40));
    tcase_add_test(tc, test_item_stage);
    tcase_add_test(tc, test_item_fail_timeout);
    tcase_add_test(tc, test_stream_stages);
    tcase_add_test(tc, test_stream_ordered);
    tcase_add_test(tc, test_stream_exits_early);
    tcase_add_test(tc, test_stream_block_buffered);
    tcase_add_test(tc, test_stream_not_found);
    tcase_add_test(tc, test_command_source_sink);
    tcase_add_test(tc, test_stop_drain);
    tcase_add_test(tc, test_stop_now);
    tcase_add_test(tc, test_stop_drain_fast_source);
    tcase_add_test(tc, test_item_output_prompt);
    tcase_add_test(tc, test_stream_output_prompt);
    tcase_add_test(tc, test_busy_excludes_blocked);
    suite_add_tcase(s, tc);

    tc = tcase_create("scale");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(120));
    tcase_add_test(tc, test_memory_bounded);
    tcase_add_test(tc, test_memory_long_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    (void)tu_fail; /* test_util.h helpers this file does not need */
    (void)tu_reset_failures;
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
