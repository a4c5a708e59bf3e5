/* check_sched.c: unit tests of the dependency scheduler (belt_sched_* in
 * include/belt/config.h).
 *
 * No job is really run: a test takes jobs from belt_sched_next(), makes up
 * a result with the status it wants, and reports it with belt_sched_done().
 * Most tests drive the dispatch loop of config.h (run_all below) with a
 * given pool capacity, finishing jobs in hand-out order, and compare the
 * transcript ("id status" per job, with the error of unrun ones).
 *
 * TCases:
 *   core    order, dependencies (globs, per matrix point, waiting jobs
 *           listed before what they wait for), skip propagation and its
 *           messages, counters, bogus calls.
 *   resume  --resume files: ok ids skipped, earlier resumes' markers,
 *           junk lines, missing and unreadable files.
 *   stop    halt_on_error (option and config) and cancel.
 *   limits  1,000,000 jobs through the scheduler in bounded memory, with
 *           and without per-point dependencies.
 */
/* test_util.h has helpers for threaded tests that this file does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_util.h"
#pragma GCC diagnostic pop

#include "belt/config.h"
#include "belt/sched.h"

#include <inttypes.h>
#include <sys/stat.h>

static belt_config *load(const char *json)
{
    belt_config_error err;
    char msg[1024];
    belt_config *cfg = belt_config_load_string(json, "t.json", &err);
    ck_assert_msg(cfg != NULL, "%s",
                  belt_config_error_format(&err, msg, sizeof msg));
    return cfg;
}

static belt_sched *sched(const belt_config *cfg, const belt_sched_options *o)
{
    belt_config_error err;
    char msg[1024];
    belt_sched *s = belt_sched_new(cfg, o, &err);
    ck_assert_msg(s != NULL, "%s",
                  belt_config_error_format(&err, msg, sizeof msg));
    return s;
}

static void finish(belt_sched *s, const belt_job *j, belt_job_status st)
{
    belt_result *r = belt_result_new(j);
    ck_assert_ptr_nonnull(r);
    r->status = st;
    r->attempts = 1;
    belt_sched_done(s, r);
    belt_result_free(r);
}

/* Takes the next job and checks its id (NULL: none is ready). */
static const belt_job *expect_next(belt_sched *s, const char *id)
{
    const belt_job *j = belt_sched_next(s);
    if (id == NULL) {
        ck_assert_msg(j == NULL, "got job \"%s\", want none", j ? j->id : "");
        return NULL;
    }
    ck_assert_msg(j != NULL, "got no job, want \"%s\"", id);
    ck_assert_str_eq(j->id, id);
    return j;
}

/* Takes the next unrun result, checks it, reports it done. */
static void expect_unrun(belt_sched *s, const char *id, belt_job_status st,
                         const char *error)
{
    belt_result *r = belt_sched_next_unrun(s);
    ck_assert_msg(r != NULL, "no unrun result, want \"%s\"", id);
    ck_assert_str_eq(r->job->id, id);
    ck_assert_str_eq(belt_job_status_name(r->status), belt_job_status_name(st));
    ck_assert_str_eq(r->error, error);
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_int_eq(r->worker, -1);
    ck_assert_uint_eq(r->seq, r->job->seq);
    belt_sched_done(s, r);
    belt_result_free(r);
}

/* ---- the dispatch loop -------------------------------------------------- */

/* Status for a job: "fail:<id>" etc. in a spec string. */
typedef struct outcome {
    const char *failed[8];
    belt_job_status status[8];
} outcome;

static belt_job_status outcome_of(const outcome *o, const char *id)
{
    for (int i = 0; o != NULL && i < 8 && o->failed[i] != NULL; i++)
        if (strcmp(o->failed[i], id) == 0)
            return o->status[i];
    return BELT_JOB_OK;
}

/* Runs every job through the loop of config.h with `cap` in flight,
 * finishing them oldest first; returns the transcript. */
static char *run_all(belt_sched *s, unsigned cap, const outcome *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    const belt_job *inflight[64];
    unsigned n = 0;
    ck_assert_uint_le(cap, 64);
    int guard = 0;
    while (!belt_sched_finished(s)) {
        ck_assert_int_lt(guard++, 100000);
        belt_result *u;
        const belt_job *j;
        while ((u = belt_sched_next_unrun(s)) != NULL) {
            fprintf(out, "%s %s (%s)\n", u->job->id,
                    belt_job_status_name(u->status), u->error);
            belt_sched_done(s, u);
            belt_result_free(u);
        }
        while (n < cap && (j = belt_sched_next(s)) != NULL)
            inflight[n++] = j;
        if (n == 0)
            continue;
        ck_assert_uint_eq(belt_sched_running(s), n);
        j = inflight[0];
        memmove(inflight, inflight + 1, --n * sizeof *inflight);
        belt_job_status st = outcome_of(o, j->id);
        fprintf(out, "%s %s\n", j->id, belt_job_status_name(st));
        finish(s, j, st);
    }
    ck_assert_uint_eq(belt_sched_running(s), 0);
    ck_assert_ptr_null(belt_sched_next(s));
    ck_assert_ptr_null(belt_sched_next_unrun(s));
    fclose(out);
    return text;
}

#define ck_assert_transcript(got, want)                                        \
    ck_assert_msg(strcmp((got), (want)) == 0, "transcript:\n%s\nwant:\n%s",    \
                  (got), (want))

/* ---- core --------------------------------------------------------------- */

START_TEST(test_order_no_deps)
{
    belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"},"
                            " {\"id\": \"m-{i}\", \"kind\": \"noop\", \"matrix\": {\"i\": [1, 2, 3]}},"
                            " {\"id\": \"z\", \"run\": \"x\"}]}");
    belt_sched *s = sched(cfg, NULL);
    const char *ids[] = { "a", "m-1", "m-2", "m-3", "z" };
    const belt_job *js[5];
    for (int i = 0; i < 5; i++) {
        js[i] = expect_next(s, ids[i]);
        ck_assert_uint_eq(js[i]->seq, (uint64_t)i);
        ck_assert_uint_eq(belt_sched_running(s), (uint64_t)i + 1);
    }
    expect_next(s, NULL);
    ck_assert_ptr_null(belt_sched_next_unrun(s));
    ck_assert(!belt_sched_finished(s));
    for (int i = 4; i >= 0; i--)
        finish(s, js[i], BELT_JOB_OK);
    ck_assert(belt_sched_finished(s));
    ck_assert_uint_eq(belt_sched_running(s), 0);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_issue_example)
{
    belt_config *cfg = load(
        "{\"workers\": 4, \"policy\": \"shared\","
        " \"defaults\": {\"timeout\": \"30s\", \"retries\": 0, \"env\": {\"LC_ALL\": \"C\"}},"
        " \"jobs\": ["
        "  {\"id\": \"fetch-{n}\", \"run\": \"echo {n}\", \"matrix\": {\"n\": [1, 2, 3]}},"
        "  {\"id\": \"nap\", \"kind\": \"sleep\", \"duration\": \"50ms\"},"
        "  {\"id\": \"report\", \"argv\": [\"echo\", \"done\"], \"after\": [\"fetch-*\", \"nap\"]}]}");
    belt_sched *s = sched(cfg, NULL);
    const belt_job *f1 = expect_next(s, "fetch-1");
    const belt_job *f2 = expect_next(s, "fetch-2");
    const belt_job *f3 = expect_next(s, "fetch-3");
    const belt_job *nap = expect_next(s, "nap");
    expect_next(s, NULL);
    finish(s, f1, BELT_JOB_OK);
    finish(s, nap, BELT_JOB_OK);
    finish(s, f3, BELT_JOB_OK);
    expect_next(s, NULL);
    finish(s, f2, BELT_JOB_OK);
    const belt_job *r = expect_next(s, "report");
    ck_assert_str_eq(r->argv[0], "echo");
    ck_assert_str_eq(r->env[0], "LC_ALL=C");
    ck_assert_int_eq(r->timeout_ns, 30 * TU_SEC);
    ck_assert_uint_eq(r->seq, 4);
    finish(s, r, BELT_JOB_OK);
    ck_assert(belt_sched_finished(s));
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_waiter_listed_first)
{
    /* "report" comes first in the file but waits: the cursor passes it and
     * it is handed out when ready, before later-listed ready jobs. */
    belt_config *cfg = load(
        "{\"jobs\": ["
        "  {\"id\": \"report\", \"run\": \"x\", \"after\": [\"build\"]},"
        "  {\"id\": \"build\", \"run\": \"x\"},"
        "  {\"id\": \"c\", \"run\": \"x\"},"
        "  {\"id\": \"d\", \"run\": \"x\"}]}");
    belt_sched *s = sched(cfg, NULL);
    const belt_job *b = expect_next(s, "build");
    finish(s, b, BELT_JOB_OK);
    expect_next(s, "report");
    expect_next(s, "c");
    expect_next(s, "d");
    expect_next(s, NULL);
    belt_sched_free(s); /* frees the jobs still out */
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_per_point_after)
{
    belt_config *cfg = load(
        "{\"jobs\": ["
        "  {\"id\": \"use-{n}\", \"run\": \"use {n}\", \"after\": [\"fetch-{n}\"],"
        "   \"matrix\": {\"n\": [1, 2, 3]}},"
        "  {\"id\": \"fetch-{n}\", \"run\": \"fetch {n}\", \"matrix\": {\"n\": [1, 2, 3]}}]}");
    belt_sched *s = sched(cfg, NULL);
    const belt_job *f1 = expect_next(s, "fetch-1");
    const belt_job *f2 = expect_next(s, "fetch-2");
    const belt_job *f3 = expect_next(s, "fetch-3");
    expect_next(s, NULL);
    finish(s, f2, BELT_JOB_OK);
    const belt_job *u2 = expect_next(s, "use-2");
    expect_next(s, NULL);
    finish(s, f1, BELT_JOB_FAILED);
    expect_next(s, NULL);
    expect_unrun(s, "use-1", BELT_JOB_SKIPPED,
                 "dependency \"fetch-1\" failed (status failed)");
    ck_assert_ptr_null(belt_sched_next_unrun(s));
    finish(s, f3, BELT_JOB_OK);
    const belt_job *u3 = expect_next(s, "use-3");
    finish(s, u2, BELT_JOB_OK);
    finish(s, u3, BELT_JOB_OK);
    ck_assert(belt_sched_finished(s));
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_partial_keys)
{
    /* The pattern uses one of two matrix keys: every (os, *) point waits
     * for build-os; a failed build skips just that row. */
    belt_config *cfg = load(
        "{\"jobs\": ["
        "  {\"id\": \"build-{os}\", \"run\": \"x\", \"matrix\": {\"os\": [\"linux\", \"mac\"]}},"
        "  {\"id\": \"test-{os}-{n}\", \"run\": \"x\", \"after\": [\"build-{os}\"],"
        "   \"matrix\": {\"os\": [\"linux\", \"mac\"], \"n\": [1, 2]}}]}");
    belt_sched *s = sched(cfg, NULL);
    outcome o = { { "build-linux" }, { BELT_JOB_ERROR } };
    char *t = run_all(s, 4, &o);
    ck_assert_transcript(t,
        "build-linux error\n"
        "test-linux-1 skipped (dependency \"build-linux\" failed (status error))\n"
        "test-linux-2 skipped (dependency \"build-linux\" failed (status error))\n"
        "build-mac ok\n"
        "test-mac-1 ok\n"
        "test-mac-2 ok\n");
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

static const char *chain_json =
    "{\"jobs\": ["
    "  {\"id\": \"a\", \"run\": \"x\"},"
    "  {\"id\": \"b\", \"run\": \"x\", \"after\": [\"a\"]},"
    "  {\"id\": \"c\", \"run\": \"x\", \"after\": [\"b\"]},"
    "  {\"id\": \"d\", \"run\": \"x\"},"
    "  {\"id\": \"e\", \"run\": \"x\", \"after\": [\"c\", \"d\"]},"
    "  {\"id\": \"f\", \"run\": \"x\", \"after\": [\"d\"]}]}";

START_TEST(test_skip_chain)
{
    belt_config *cfg = load(chain_json);
    belt_sched *s = sched(cfg, NULL);
    outcome o = { { "a" }, { BELT_JOB_TIMEOUT } };
    char *t = run_all(s, 1, &o);
    ck_assert_transcript(t,
        "a timeout\n"
        "b skipped (dependency \"a\" failed (status timeout))\n"
        "c skipped (dependency \"b\" failed (status skipped))\n"
        "d ok\n"
        "e skipped (dependency \"c\" failed (status skipped))\n"
        "f ok\n");
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_all_ok_chain)
{
    belt_config *cfg = load(chain_json);
    belt_sched *s = sched(cfg, NULL);
    char *t = run_all(s, 8, NULL);
    ck_assert_transcript(t, "a ok\nd ok\nb ok\nf ok\nc ok\ne ok\n");
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_non_ok_statuses_skip)
{
    belt_job_status sts[] = { BELT_JOB_FAILED, BELT_JOB_TIMEOUT,
                              BELT_JOB_ERROR, BELT_JOB_CANCELED };
    for (size_t i = 0; i < 4; i++) {
        belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"},"
                                " {\"id\": \"b\", \"run\": \"x\", \"after\": \"a\"}]}");
        belt_sched *s = sched(cfg, NULL);
        finish(s, expect_next(s, "a"), sts[i]);
        char want[128];
        snprintf(want, sizeof want, "dependency \"a\" failed (status %s)",
                 belt_job_status_name(sts[i]));
        expect_unrun(s, "b", BELT_JOB_SKIPPED, want);
        ck_assert(belt_sched_finished(s));
        belt_sched_free(s);
        belt_config_free(cfg);
    }
}
END_TEST

START_TEST(test_glob_after_skip)
{
    /* A glob over a matrix: one failed point skips the waiter; the other
     * points still run. */
    belt_config *cfg = load(
        "{\"jobs\": ["
        "  {\"id\": \"fetch-{n}\", \"run\": \"x\", \"matrix\": {\"n\": [1, 2, 3]}},"
        "  {\"id\": \"report\", \"run\": \"x\", \"after\": [\"fetch-*\"]},"
        "  {\"id\": \"late\", \"run\": \"x\", \"after\": [\"rep*\"]}]}");
    belt_sched *s = sched(cfg, NULL);
    outcome o = { { "fetch-2" }, { BELT_JOB_FAILED } };
    char *t = run_all(s, 2, &o);
    ck_assert_transcript(t,
        "fetch-1 ok\n"
        "fetch-2 failed\n"
        "report skipped (dependency \"fetch-2\" failed (status failed))\n"
        "late skipped (dependency \"report\" failed (status skipped))\n"
        "fetch-3 ok\n");
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_bogus_done)
{
    belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"},"
                            " {\"id\": \"b\", \"run\": \"x\"}]}");
    belt_sched *s = sched(cfg, NULL);
    belt_sched_done(s, NULL);
    belt_sched_done(NULL, NULL);
    /* A job that is not out (built by the caller) is ignored. */
    belt_job *mine = belt_config_job_at(cfg, 1);
    finish(s, mine, BELT_JOB_FAILED);
    belt_config_job_free(mine);
    const belt_job *a = expect_next(s, "a");
    /* Same seq as a job that is out, but not the scheduler's pointer. */
    mine = belt_config_job_at(cfg, 0);
    finish(s, mine, BELT_JOB_FAILED);
    belt_config_job_free(mine);
    ck_assert_uint_eq(belt_sched_running(s), 1);
    belt_result *r = belt_result_new(a);
    r->status = BELT_JOB_OK;
    belt_sched_done(s, r);
    belt_sched_done(s, r); /* twice: the second is ignored */
    belt_result_free(r);
    ck_assert_uint_eq(belt_sched_running(s), 0);
    ck_assert(!belt_sched_finished(s));
    finish(s, expect_next(s, "b"), BELT_JOB_OK);
    ck_assert(belt_sched_finished(s));
    belt_sched_free(s);
    belt_sched_free(NULL);
    ck_assert(belt_sched_finished(NULL));
    ck_assert_uint_eq(belt_sched_running(NULL), 0);
    ck_assert_ptr_null(belt_sched_next(NULL));
    ck_assert_ptr_null(belt_sched_next_unrun(NULL));
    belt_sched_cancel(NULL, "x");
    ck_assert_ptr_null(belt_sched_new(NULL, NULL, NULL));
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_jobs_independent_of_config_text)
{
    /* Jobs are valid until done, and carry the config's values. */
    belt_config *cfg = load(
        "{\"defaults\": {\"retries\": 3, \"cwd\": \"/w\"}, \"jobs\": ["
        "  {\"id\": \"x-{n}\", \"argv\": [\"p\", \"{n}\"], \"stdin\": \"in-{n}\","
        "   \"matrix\": {\"n\": [7]}}]}");
    belt_sched *s = sched(cfg, NULL);
    const belt_job *j = expect_next(s, "x-7");
    ck_assert_str_eq(j->argv[1], "7");
    ck_assert_ptr_null(j->argv[2]);
    ck_assert_str_eq(j->stdin_path, "in-7");
    ck_assert_str_eq(j->cwd, "/w");
    ck_assert_uint_eq(j->retries, 3);
    ck_assert_ptr_null(j->user);
    finish(s, j, BELT_JOB_OK);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

/* ---- resume ------------------------------------------------------------- */

static char resume_dir[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void resume_setup(void)
{
    strcpy(resume_dir, "/tmp/belt-sched-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(resume_dir));
}

static void resume_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", resume_dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_resume)
{
    belt_config *cfg = load(
        "{\"jobs\": ["
        "  {\"id\": \"a\", \"run\": \"x\"},"
        "  {\"id\": \"b\", \"run\": \"x\"},"
        "  {\"id\": \"c\", \"run\": \"x\", \"after\": [\"a\"]},"
        "  {\"id\": \"fetch-{n}\", \"run\": \"x\", \"matrix\": {\"n\": [1, 2]}},"
        "  {\"id\": \"d\", \"run\": \"x\", \"after\": [\"e\"]},"
        "  {\"id\": \"e\", \"run\": \"x\"}]}");
    char path[128];
    snprintf(path, sizeof path, "%s/results.jsonl", resume_dir);
    write_file(path,
               "{\"id\": \"a\", \"status\": \"ok\", \"exit_code\": 0}\n"
               "{\"id\": \"b\", \"status\": \"failed\", \"exit_code\": 1}\n"
               "\n"
               "{\"id\": \"nosuchjob\", \"status\": \"ok\"}\n"
               "{\"id\": \"fetch-2\", \"status\": \"ok\"}\n"
               "{\"id\": \"e\", \"status\": \"skipped\", \"error\": \"already ok in old.jsonl\"}\n"
               "{\"id\": \"d\", \"status\": \"skipped\", \"error\": \"dependency \\\"x\\\" failed\"}\n"
               "{\"id\": \"fetch-1\", \"sta");
    belt_sched_options o = { .resume_path = path };
    belt_sched *s = sched(cfg, &o);
    char *t = run_all(s, 1, NULL);
    char want[1024];
    snprintf(want, sizeof want,
             "a skipped (already ok in %s)\n"
             "b ok\n"
             "c ok\n"
             "fetch-1 ok\n"
             "fetch-2 skipped (already ok in %s)\n"
             "d ok\n"
             "e skipped (already ok in %s)\n",
             path, path, path);
    ck_assert_transcript(t, want);
    ck_assert_int_eq(strncmp(BELT_SCHED_RESUMED_PREFIX, "already ok in ", 14), 0);
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_resume_missing_file)
{
    belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"}]}");
    char path[128];
    snprintf(path, sizeof path, "%s/none.jsonl", resume_dir);
    belt_sched_options o = { .resume_path = path };
    belt_sched *s = sched(cfg, &o);
    char *t = run_all(s, 1, NULL);
    ck_assert_transcript(t, "a ok\n");
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_resume_unreadable)
{
    belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"}]}");
    belt_sched_options o = { .resume_path = resume_dir }; /* a directory */
    belt_config_error err;
    ck_assert_ptr_null(belt_sched_new(cfg, &o, &err));
    ck_assert_str_eq(err.source, resume_dir);
    ck_assert_msg(strncmp(err.text, "cannot read the resume file: ", 29) == 0,
                  "%s", err.text);
    ck_assert_ptr_null(belt_sched_new(cfg, &o, NULL));
    belt_config_free(cfg);
}
END_TEST

/* A file that is not belt's results (a job log, a config, garbage) is an
 * error naming the file and the line, never "nothing done yet". */
START_TEST(test_resume_not_results)
{
    belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"}]}");
    static const char *const bad[] = {
        "{\"id\": \"a\", \"status\": \"ok\"}\nnot json at all\n",
        "{\"id\": \"a\", \"status\": \"ok\"}\n[1, 2]\n",
        "{\"id\": \"a\", \"status\": \"ok\"}\n{\"id\": 5, \"status\": \"ok\"}\n",
        "Seq\tHost\tStarttime\n1\t:\t1.0\n",
    };
    char path[128];
    snprintf(path, sizeof path, "%s/bad.jsonl", resume_dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i]);
        belt_sched_options o = { .resume_path = path };
        belt_config_error err;
        ck_assert_ptr_null(belt_sched_new(cfg, &o, &err));
        ck_assert_str_eq(err.source, path);
        ck_assert_msg(strstr(err.text, i < 3 ? "line 2 " : "line 1 ") != NULL &&
                      strstr(err.text, "not a result line") != NULL,
                      "%zu: %s", i, err.text);
    }
    belt_config_free(cfg);
}
END_TEST

/* ---- stop --------------------------------------------------------------- */

START_TEST(test_halt_on_error)
{
    belt_config *cfg = load(
        "{\"jobs\": ["
        "  {\"id\": \"j-{n}\", \"run\": \"x\", \"matrix\": {\"n\": [1, 2, 3, 4, 5]}},"
        "  {\"id\": \"after-2\", \"run\": \"x\", \"after\": [\"j-2\"]}]}");
    belt_sched_options o = { .halt_on_error = true };
    belt_sched *s = sched(cfg, &o);
    outcome oc = { { "j-2" }, { BELT_JOB_FAILED } };
    char *t = run_all(s, 2, &oc);
    ck_assert_transcript(t,
        "j-1 ok\n"
        "j-2 failed\n"
        "j-4 canceled (halted after \"j-2\" failed (status failed))\n"
        "j-5 canceled (halted after \"j-2\" failed (status failed))\n"
        "after-2 skipped (dependency \"j-2\" failed (status failed))\n"
        "j-3 ok\n"); /* was already out: its result still counts */
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_halt_from_config)
{
    belt_config *cfg = load(
        "{\"halt_on_error\": true, \"jobs\": ["
        "  {\"id\": \"a\", \"run\": \"x\"}, {\"id\": \"b\", \"run\": \"x\"}]}");
    belt_sched *s = sched(cfg, NULL);
    outcome oc = { { "a" }, { BELT_JOB_TIMEOUT } };
    char *t = run_all(s, 1, &oc);
    ck_assert_transcript(t,
        "a timeout\n"
        "b canceled (halted after \"a\" failed (status timeout))\n");
    free(t);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_cancel)
{
    belt_config *cfg = load(chain_json);
    belt_sched *s = sched(cfg, NULL);
    const belt_job *a = expect_next(s, "a");
    const belt_job *d = expect_next(s, "d");
    belt_sched_cancel(s, "interrupted (SIGINT)");
    belt_sched_cancel(s, "second reason is ignored");
    expect_next(s, NULL);
    /* a fails after the cancel: its dependents are skipped, not canceled. */
    finish(s, a, BELT_JOB_FAILED);
    expect_unrun(s, "b", BELT_JOB_SKIPPED,
                 "dependency \"a\" failed (status failed)");
    expect_unrun(s, "c", BELT_JOB_SKIPPED,
                 "dependency \"b\" failed (status skipped)");
    expect_unrun(s, "e", BELT_JOB_SKIPPED,
                 "dependency \"c\" failed (status skipped)");
    expect_unrun(s, "f", BELT_JOB_CANCELED, "interrupted (SIGINT)");
    ck_assert_ptr_null(belt_sched_next_unrun(s));
    ck_assert(!belt_sched_finished(s));
    finish(s, d, BELT_JOB_CANCELED);
    ck_assert(belt_sched_finished(s));
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_cancel_null_reason)
{
    belt_config *cfg = load("{\"jobs\": [{\"id\": \"a\", \"run\": \"x\"}]}");
    belt_sched *s = sched(cfg, NULL);
    belt_sched_cancel(s, NULL);
    expect_unrun(s, "a", BELT_JOB_CANCELED, "canceled");
    ck_assert(belt_sched_finished(s));
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

/* A matrix of n jobs "<prefix>-<a>-<b>" (1000 x n/1000) as JSON text. */
static char *matrix_json(long n, bool with_deps)
{
    long inner = n / 1000;
    size_t cap = (size_t)inner * 8 + 20000;
    char *vals = malloc(cap), *outer = malloc(20000);
    size_t off = 0, off2 = 0;
    for (long i = 0; i < inner; i++)
        off += (size_t)sprintf(vals + off, "%s%ld", i ? "," : "", i);
    for (long i = 0; i < 1000; i++)
        off2 += (size_t)sprintf(outer + off2, "%s%ld", i ? "," : "", i);
    char *text = malloc(3 * cap + 40000);
    if (with_deps)
        sprintf(text,
                "{\"jobs\": ["
                " {\"id\": \"use-{a}-{b}\", \"kind\": \"noop\", \"after\": [\"make-{a}-{b}\"],"
                "  \"matrix\": {\"a\": [%s], \"b\": [%s]}},"
                " {\"id\": \"make-{a}-{b}\", \"kind\": \"noop\","
                "  \"matrix\": {\"a\": [%s], \"b\": [%s]}}]}",
                outer, vals, outer, vals);
    else
        sprintf(text,
                "{\"jobs\": [{\"id\": \"t-{a}-{b}\", \"kind\": \"noop\","
                " \"matrix\": {\"a\": [%s], \"b\": [%s]}}]}",
                outer, vals);
    free(vals);
    free(outer);
    return text;
}

/* Runs every job with up to 64 in flight, failing none; returns the peak
 * RSS growth over rss0 and checks hand-out counts. */
static size_t drain(belt_sched *s, uint64_t total, size_t rss0)
{
    const belt_job *q[64];
    unsigned n = 0, head = 0;
    uint64_t handed = 0, loops = 0;
    size_t peak = 0;
    while (!belt_sched_finished(s)) {
        belt_result *u;
        while ((u = belt_sched_next_unrun(s)) != NULL) {
            belt_sched_done(s, u);
            belt_result_free(u);
            ck_abort_msg("unexpected unrun result");
        }
        const belt_job *j;
        while (n < 64 && (j = belt_sched_next(s)) != NULL) {
            q[(head + n) % 64] = j;
            n++;
            handed++;
        }
        if (n == 0)
            continue;
        finish(s, q[head], BELT_JOB_OK);
        head = (head + 1) % 64;
        n--;
        if ((++loops & 0x3fff) == 0) {
            size_t r = tu_rss_bytes();
            if (r > rss0 && r - rss0 > peak)
                peak = r - rss0;
        }
    }
    ck_assert_uint_eq(handed, total);
    return peak;
}

START_TEST(test_million_jobs)
{
    long n = tu_scaled(1000000, 10000);
    char *json = matrix_json(n, false);
    size_t rss0 = tu_rss_bytes();
    int64_t t0 = tu_now_ns();
    belt_config *cfg = load(json);
    free(json);
    uint64_t total = belt_config_job_count(cfg);
    ck_assert_uint_eq(total, (uint64_t)(n / 1000) * 1000);
    belt_sched *s = sched(cfg, NULL);
    size_t growth = drain(s, total, rss0);
    double secs = (double)(tu_now_ns() - t0) / 1e9;
    /* Not under sanitizers: ASan quarantines freed memory (256 MiB), so
     * RSS says nothing about our own use there. */
    ck_assert_msg(tu_sanitized() || growth < (size_t)64 << 20, "RSS grew by %zu MiB", growth >> 20);
    ck_assert_msg(secs < tu_timeout(30), "took %.1f s", secs);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

START_TEST(test_million_jobs_with_deps)
{
    /* n/2 "use" points, each waiting for its own "make" point (listed
     * after it): the worst order for the cursor. */
    long n = tu_scaled(1000000, 10000) / 2;
    char *json = matrix_json(n, true);
    size_t rss0 = tu_rss_bytes();
    int64_t t0 = tu_now_ns();
    belt_config *cfg = load(json);
    free(json);
    uint64_t total = belt_config_job_count(cfg);
    ck_assert_uint_eq(total, 2 * (uint64_t)(n / 1000) * 1000);
    belt_sched *s = sched(cfg, NULL);
    size_t growth = drain(s, total, rss0);
    double secs = (double)(tu_now_ns() - t0) / 1e9;
    /* Not under sanitizers: ASan quarantines freed memory (256 MiB), so
     * RSS says nothing about our own use there. */
    ck_assert_msg(tu_sanitized() || growth < (size_t)64 << 20, "RSS grew by %zu MiB", growth >> 20);
    ck_assert_msg(secs < tu_timeout(30), "took %.1f s", secs);
    belt_sched_free(s);
    belt_config_free(cfg);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_order_no_deps);
    tcase_add_test(tc, test_issue_example);
    tcase_add_test(tc, test_waiter_listed_first);
    tcase_add_test(tc, test_per_point_after);
    tcase_add_test(tc, test_partial_keys);
    tcase_add_test(tc, test_skip_chain);
    tcase_add_test(tc, test_all_ok_chain);
    tcase_add_test(tc, test_non_ok_statuses_skip);
    tcase_add_test(tc, test_glob_after_skip);
    tcase_add_test(tc, test_bogus_done);
    tcase_add_test(tc, test_jobs_independent_of_config_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("resume");
    tcase_add_checked_fixture(tc, resume_setup, resume_teardown);
    tcase_add_test(tc, test_resume);
    tcase_add_test(tc, test_resume_missing_file);
    tcase_add_test(tc, test_resume_unreadable);
    tcase_add_test(tc, test_resume_not_results);
    suite_add_tcase(s, tc);

    tc = tcase_create("stop");
    tcase_add_test(tc, test_halt_on_error);
    tcase_add_test(tc, test_halt_from_config);
    tcase_add_test(tc, test_cancel);
    tcase_add_test(tc, test_cancel_null_reason);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, tu_timeout(90));
    tcase_add_test(tc, test_million_jobs);
    tcase_add_test(tc, test_million_jobs_with_deps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sched_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
