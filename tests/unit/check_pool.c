/* check_pool.c: tests of the worker pool (include/belt/pool.h,
 * src/pool/pool.c) with real threads and the real executor, using built-in
 * noop and sleep jobs (and one `sleep` process for cancel).
 *
 * TCases:
 *   api       options, invalid arguments, workers = 0, policy names, busy
 *             time, thread counts, pthread_create failing part-way
 *   dispatch  exactly one result per job for every policy (many noop jobs,
 *             a bitmap of seq), round-robin order, least-loaded and
 *             power-of-two spreading long jobs over idle workers;
 *             join-idle-queue serving idle workers first; work-stealing
 *             moving jobs queued behind a long one to idle workers (the
 *             pool's steal counter), and waking parked workers for each of
 *             many one-at-a-time jobs (a lost wake-up would time out);
 *             per-worker speed factors
 *   stop      shutdown finishes queued jobs; cancel stops running and queued
 *             jobs promptly; cancel wakes a blocked submit and a waiting
 *             shutdown; idempotence and every order of shutdown/cancel/free;
 *             a results channel closed by the caller
 *
 * Sleeps here only stage a scenario (give a thread time to block, a job time
 * to start); the pool itself never sleeps.  Thread counts come from
 * /proc/self/task: a joined thread may linger there for a moment after
 * pthread_join returns (the kernel wakes the joiner before it reaps the
 * task), so tu_wait_threads() allows it a bounded grace.
 */
#include "test_util.h"

#include <dirent.h>
#include <math.h>

#include "belt/job.h"
#include "belt/pool.h"
#include "pool/hooks.h"

static const char *const all_policies[] = { "shared", "round-robin", "random",
    "least-loaded", "power-of-two", "power-of-d", "join-idle-queue",
    "work-stealing" };
#define N_POLICIES ((int)(sizeof all_policies / sizeof all_policies[0]))

/* ---- helpers ------------------------------------------------------------ */

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int tu_wait_threads(int want);

static void *record_tid(void *arg)
{
    *(pid_t *)arg = gettid();
    return NULL;
}

/* The thread count to come back to.  Starts and joins one thread first:
 * ThreadSanitizer starts its own background thread at the first
 * pthread_create, which must not count as the pool's.  Then waits (bounded)
 * for that thread's task to be reaped before counting. */
static int thread_baseline(void)
{
    pid_t tid = 0;
    pthread_t t;
    char path[64];
    tu_spawn(&t, record_tid, &tid);
    tu_join(t);
    snprintf(path, sizeof path, "/proc/self/task/%d", (int)tid);
    for (int i = 0; i < 2000 && access(path, F_OK) == 0; i++)
        tu_sleep_ms(1);
    return thread_count();
}

/* Waits (bounded) until the process has `want` threads; returns the count. */
static int tu_wait_threads(int want)
{
    int n = thread_count();
    for (int i = 0; i < 2000 && n != want; i++) {
        tu_sleep_ms(1);
        n = thread_count();
    }
    return n;
}

static belt_chan *new_results(void)
{
    belt_chan *ch = belt_chan_unbounded(sizeof(belt_result *));
    ck_assert_ptr_nonnull(ch);
    return ch;
}

static belt_pool *new_pool(const char *policy, unsigned workers, size_t cap,
                           belt_chan *results)
{
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.policy = policy;
    o.workers = workers;
    o.queue_capacity = cap;
    o.seed = 17;
    o.d = 3;
    belt_pool *p = NULL;
    ck_assert_rc(belt_pool_create(&p, &o, results), BELT_OK);
    ck_assert_ptr_nonnull(p);
    return p;
}

static void sleep_job(belt_job *j, uint64_t seq, int64_t ns)
{
    belt_job_init(j);
    j->kind = BELT_JOB_SLEEP;
    j->duration_ns = ns;
    j->seq = seq;
}

static void noop_job(belt_job *j, uint64_t seq)
{
    belt_job_init(j);
    j->kind = BELT_JOB_NOOP;
    j->seq = seq;
}

static belt_result *recv_result(belt_chan *results)
{
    belt_result *r = NULL;
    ck_assert_rc(belt_chan_recv_timeout(results, &r, 20 * TU_SEC), BELT_OK);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* Receives exactly n results (then asserts nothing more is there), checks
 * each against `want` status and frees it.  Returns how many had run (at
 * least one attempt). */
static int drain_expect(belt_chan *results, int n, belt_job_status want)
{
    int ran = 0;
    for (int i = 0; i < n; i++) {
        belt_result *r = recv_result(results);
        ck_assert_msg(r->status == want, "result %d: status %s, want %s", i,
                      belt_job_status_name(r->status),
                      belt_job_status_name(want));
        ran += r->attempts > 0;
        belt_result_free(r);
    }
    belt_result *extra;
    ck_assert_rc(belt_chan_try_recv(results, &extra), BELT_EMPTY);
    return ran;
}

/* ---- api ---------------------------------------------------------------- */

START_TEST(test_options_init)
{
    belt_pool_options o;
    memset(&o, 0xab, sizeof o);
    belt_pool_options_init(&o);
    ck_assert_uint_eq(o.workers, 0);
    ck_assert_str_eq(o.policy, "shared");
    ck_assert_uint_eq(o.queue_capacity, 0);
    ck_assert_uint_eq(o.seed, 0);
    ck_assert_uint_eq(o.d, 0);
    for (size_t i = 0; i < sizeof o.reserved / sizeof o.reserved[0]; i++)
        ck_assert_ptr_null(o.reserved[i]); /* the ABI rule of belt/pool.h */
    belt_pool_options_init(NULL); /* no-op */
}
END_TEST

START_TEST(test_invalid_arguments)
{
    belt_chan *res = new_results();
    belt_chan *ints = belt_chan_unbounded(sizeof(int));
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 2;
    belt_pool *sentinel = (belt_pool *)&o, *p = sentinel;
    int before = thread_baseline();

    ck_assert_rc(belt_pool_create(NULL, &o, res), BELT_EINVAL);
    ck_assert_rc(belt_pool_create(&p, NULL, res), BELT_EINVAL);
    ck_assert_rc(belt_pool_create(&p, &o, NULL), BELT_EINVAL);
    ck_assert_rc(belt_pool_create(&p, &o, ints), BELT_EINVAL);
    o.policy = "fastest";
    ck_assert_rc(belt_pool_create(&p, &o, res), BELT_EINVAL);
    o.policy = "";
    ck_assert_rc(belt_pool_create(&p, &o, res), BELT_EINVAL);
    o.policy = "shared";
    o.workers = BELT_POOL_MAX_WORKERS + 1;
    ck_assert_rc(belt_pool_create(&p, &o, res), BELT_EINVAL);
    o.workers = 2;
    o.queue_capacity = SIZE_MAX;
    ck_assert_rc(belt_pool_create(&p, &o, res), BELT_EINVAL);
    o.policy = "round-robin";
    ck_assert_rc(belt_pool_create(&p, &o, res), BELT_EINVAL);
    ck_assert_ptr_eq(p, sentinel);
    ck_assert_int_eq(thread_count(), before);

    /* NULL pools everywhere else. */
    belt_job j;
    noop_job(&j, 0);
    ck_assert_rc(belt_pool_submit(NULL, &j), BELT_EINVAL);
    ck_assert_rc(belt_pool_shutdown(NULL), BELT_EINVAL);
    ck_assert_rc(belt_pool_cancel(NULL), BELT_EINVAL);
    ck_assert_uint_eq(belt_pool_workers(NULL), 0);
    int64_t busy[2];
    ck_assert_uint_eq(belt_pool_busy(NULL, busy, 2), 0);
    belt_pool_free(NULL);

    o.queue_capacity = 0;
    p = new_pool("random", 2, 0, res);
    ck_assert_rc(belt_pool_submit(p, NULL), BELT_EINVAL);
    belt_pool_free(p);
    ck_assert_rc(belt_chan_try_recv(res, &p), BELT_EMPTY);
    belt_chan_free(ints);
    belt_chan_free(res);
}
END_TEST

START_TEST(test_zero_workers_uses_cpus)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_gt(cpus, 0);
    belt_chan *res = new_results();
    int before = thread_baseline();
    belt_pool *p = new_pool(NULL, 0, 0, res);
    ck_assert_uint_eq(belt_pool_workers(p), (unsigned)cpus);
    ck_assert_int_eq(thread_count(), before + (int)cpus);
    ck_assert_str_eq(belt__pool_policy_name(p), "shared");
    belt_pool_free(p);
    ck_assert_int_eq(tu_wait_threads(before), before);
    belt_chan_free(res);
}
END_TEST

START_TEST(test_policy_names)
{
    const char *const *names = belt_pool_policy_names();
    int n = 0;
    for (; names[n]; n++)
        ;
    ck_assert_int_eq(n, N_POLICIES);
    for (int i = 0; i < N_POLICIES; i++) {
        int found = 0;
        for (int k = 0; k < n; k++)
            found |= strcmp(names[k], all_policies[i]) == 0;
        ck_assert_msg(found, "%s not listed", all_policies[i]);
    }
}
END_TEST

/* Every policy: threads appear at create and are all gone after free. */
START_TEST(test_no_thread_leak)
{
    const char *policy = all_policies[_i];
    belt_chan *res = new_results();
    int before = thread_baseline();
    belt_pool *p = new_pool(policy, 3, 0, res);
    ck_assert_int_eq(thread_count(), before + 3);
    belt_job jobs[20];
    for (int i = 0; i < 20; i++) {
        noop_job(&jobs[i], (uint64_t)i);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    ck_assert_int_eq(tu_wait_threads(before), before);
    belt_pool_free(p);
    drain_expect(res, 20, BELT_JOB_OK);
    ck_assert_int_eq(thread_count(), before);
    belt_chan_free(res);
}
END_TEST

struct failing_create {
    int calls, fail_at; /* the fail_at-th call (1-based) fails */
};

static int failing_create_fn(void *ctx, pthread_t *t, void *(*start)(void *),
                             void *arg)
{
    struct failing_create *f = ctx;
    if (++f->calls == f->fail_at)
        return EAGAIN;
    return pthread_create(t, NULL, start, arg);
}

START_TEST(test_thread_create_fails)
{
    const char *policy = _i == 0 ? "shared" : "least-loaded";
    belt_chan *res = new_results();
    int before = thread_baseline();
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.policy = policy;
    o.workers = 4;
    for (int fail_at = 1; fail_at <= 4; fail_at++) {
        struct failing_create f = { 0, fail_at };
        belt_pool *p = NULL;
        errno = 0;
        ck_assert_rc(belt__pool_create_with(&p, &o, res, failing_create_fn, &f),
                     BELT_ESYS);
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(f.calls, fail_at);
        ck_assert_int_eq(tu_wait_threads(before), before);
    }
    struct failing_create ok = { 0, 99 };
    belt_pool *p = NULL;
    ck_assert_rc(belt__pool_create_with(&p, &o, res, failing_create_fn, &ok),
                 BELT_OK);
    ck_assert_rc(belt__pool_create_with(&p, &o, res, NULL, NULL), BELT_EINVAL);
    belt_pool_free(p);
    ck_assert_rc(belt_chan_try_recv(res, &p), BELT_EMPTY);
    belt_chan_free(res);
}
END_TEST

START_TEST(test_busy_time)
{
    belt_chan *res = new_results();
    belt_pool *p = new_pool("round-robin", 2, 0, res);
    belt_job jobs[4];
    for (int i = 0; i < 4; i++) {
        sleep_job(&jobs[i], (uint64_t)i, 20 * TU_MS);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    int64_t busy[3] = { -1, -1, -1 };
    ck_assert_uint_eq(belt_pool_busy(p, busy, 3), 2);
    ck_assert_int_eq(busy[2], -1); /* only n workers written */
    for (int i = 0; i < 2; i++) /* round-robin: two 20 ms jobs each */
        ck_assert_msg(busy[i] >= 40 * TU_MS && busy[i] < 5 * TU_SEC,
                      "worker %d busy %lld ns", i, (long long)busy[i]);
    ck_assert_uint_eq(belt_pool_busy(p, NULL, 0), 2);
    belt_pool_free(p);
    drain_expect(res, 4, BELT_JOB_OK);
    belt_chan_free(res);
}
END_TEST

/* ---- dispatch ----------------------------------------------------------- */

struct drainer {
    belt_chan *results;
    const belt_job *jobs;
    long n;
    unsigned workers;
    unsigned char *seen;  /* bitmap by seq */
    long got, dup, bad;
    long per_worker[16];
};

static void *drainer_main(void *arg)
{
    struct drainer *d = arg;
    belt_result *r;
    while (d->got < d->n &&
           belt_chan_recv_timeout(d->results, &r, 20 * TU_SEC) == BELT_OK) {
        d->got++;
        uint64_t s = r->seq;
        if (!TU_CHECK(s < (uint64_t)d->n && r->job == &d->jobs[s],
                      "result seq %llu job %p", (unsigned long long)s,
                      (const void *)r->job)) {
            d->bad++;
        } else if (d->seen[s / 8] & (1u << (s % 8))) {
            d->dup++;
        } else {
            d->seen[s / 8] |= (unsigned char)(1u << (s % 8));
        }
        if (TU_CHECK(r->worker >= 0 && (unsigned)r->worker < d->workers,
                     "worker %d", r->worker))
            d->per_worker[r->worker]++;
        TU_CHECK(r->status == BELT_JOB_OK && r->attempts == 1,
                 "status %s attempts %u", belt_job_status_name(r->status),
                 r->attempts);
        TU_CHECK(r->queued_ns > 0 && r->queued_ns <= r->started_ns &&
                     r->started_ns <= r->ended_ns,
                 "times %lld %lld %lld", (long long)r->queued_ns,
                 (long long)r->started_ns, (long long)r->ended_ns);
        belt_result_free(r);
    }
    return NULL;
}

/* Every policy: many noop jobs, each yields exactly one result. */
START_TEST(test_exactly_one_result_each)
{
    const char *policy = all_policies[_i];
    const unsigned W = 4;
    long n = tu_scaled(100000, 2000);
    belt_job *jobs = calloc((size_t)n, sizeof *jobs);
    ck_assert_ptr_nonnull(jobs);
    for (long i = 0; i < n; i++)
        noop_job(&jobs[i], (uint64_t)i);

    belt_chan *res = new_results();
    belt_pool *p = new_pool(policy, W, 0, res);
    struct drainer d = { .results = res, .jobs = jobs, .n = n, .workers = W };
    d.seen = calloc((size_t)n / 8 + 1, 1);
    pthread_t t;
    tu_spawn(&t, drainer_main, &d);
    for (long i = 0; i < n; i++)
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    tu_join(t);
    tu_assert_threads_ok();

    ck_assert_int_eq(d.got, n);
    ck_assert_int_eq(d.dup, 0);
    ck_assert_int_eq(d.bad, 0);
    for (long s = 0; s < n; s++)
        ck_assert_msg(d.seen[s / 8] & (1u << (s % 8)), "no result for %ld", s);
    belt_result *extra;
    ck_assert_rc(belt_chan_try_recv(res, &extra), BELT_EMPTY);
    long sum = 0;
    for (unsigned w = 0; w < W; w++) {
        sum += d.per_worker[w];
        ck_assert_uint_eq(belt__pool_load(p, w), 0);
    }
    ck_assert_int_eq(sum, n);
    if (strcmp(policy, "shared") != 0) /* every queue was used */
        for (unsigned w = 0; w < W; w++)
            ck_assert_int_gt(d.per_worker[w], 0);
    ck_assert_rc(belt_pool_submit(p, &jobs[0]), BELT_CLOSED);
    belt_pool_free(p);
    belt_chan_free(res);
    free(d.seen);
    free(jobs);
}
END_TEST

/* Several threads submit at once (the pool serialises picks). */
struct submitter {
    belt_pool *p;
    const belt_job *jobs;
    long n;
};

static void *submit_all(void *arg)
{
    struct submitter *s = arg;
    for (long i = 0; i < s->n; i++)
        if (!TU_CHECK_RC(belt_pool_submit(s->p, &s->jobs[i]), BELT_OK))
            break;
    return NULL;
}

START_TEST(test_concurrent_submitters)
{
    const char *policy = all_policies[_i];
    enum { THREADS = 3 };
    long per = tu_scaled(20000, 500), n = per * THREADS;
    belt_job *jobs = calloc((size_t)n, sizeof *jobs);
    ck_assert_ptr_nonnull(jobs);
    for (long i = 0; i < n; i++)
        noop_job(&jobs[i], (uint64_t)i);
    belt_chan *res = new_results();
    belt_pool *p = new_pool(policy, 2, 4, res);

    struct drainer d = { .results = res, .jobs = jobs, .n = n, .workers = 2 };
    d.seen = calloc((size_t)n / 8 + 1, 1);
    pthread_t dt, t[THREADS];
    struct submitter subs[THREADS];
    tu_spawn(&dt, drainer_main, &d);
    for (int k = 0; k < THREADS; k++) {
        subs[k] = (struct submitter){ p, jobs + k * per, per };
        tu_spawn(&t[k], submit_all, &subs[k]);
    }
    for (int k = 0; k < THREADS; k++)
        tu_join(t[k]);
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    tu_join(dt);
    tu_assert_threads_ok();
    ck_assert_int_eq(d.got, n);
    ck_assert_int_eq(d.dup + d.bad, 0);
    belt_pool_free(p);
    belt_chan_free(res);
    free(d.seen);
    free(jobs);
}
END_TEST

/* One job at a time: round-robin hands job i to worker i mod n. */
START_TEST(test_round_robin_order)
{
    const unsigned W = 3;
    belt_chan *res = new_results();
    belt_pool *p = new_pool("round-robin", W, 0, res);
    belt_job j;
    noop_job(&j, 0);
    for (unsigned i = 0; i < 10 * W; i++) {
        ck_assert_rc(belt_pool_submit(p, &j), BELT_OK);
        belt_result *r = recv_result(res);
        ck_assert_int_eq(r->worker, (int)(i % W));
        belt_result_free(r);
    }
    /* Many queued at once: still i mod n (big queues, nothing blocks). */
    belt_job jobs[12];
    for (int i = 0; i < 12; i++) {
        sleep_job(&jobs[i], (uint64_t)i, TU_MS);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    for (int i = 0; i < 12; i++) {
        belt_result *r = recv_result(res);
        ck_assert_int_eq(r->worker, (int)((r->seq + 10 * W) % W));
        belt_result_free(r);
    }
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* Load-aware policies put long jobs on idle workers first: loads are
 * counted at submit, so this is deterministic without waiting. */
START_TEST(test_load_aware_spread)
{
    const char *policy = _i == 0 ? "least-loaded" : "power-of-two";
    const unsigned W = _i == 0 ? 4 : 2; /* power-of-two, n = 2: sees both */
    belt_chan *res = new_results();
    belt_pool *p = new_pool(policy, W, 0, res);
    belt_job jobs[8];
    for (unsigned i = 0; i < 2 * W; i++) {
        sleep_job(&jobs[i], i, 60 * TU_SEC);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
        /* After i+1 jobs every load is floor or ceil of (i+1)/W. */
        for (unsigned w = 0; w < W; w++) {
            unsigned l = belt__pool_load(p, w);
            ck_assert_msg(l == (i + 1) / W || l == (i + 1 + W - 1) / W,
                          "after %u jobs worker %u has load %u", i + 1, w, l);
        }
    }
    for (unsigned w = 0; w < W; w++)
        ck_assert_uint_eq(belt__pool_load(p, w), 2);
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    int per[8] = { 0 };
    for (unsigned i = 0; i < 2 * W; i++) {
        belt_result *r = recv_result(res);
        ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
        per[r->worker]++;
        belt_result_free(r);
    }
    for (unsigned w = 0; w < W; w++) {
        ck_assert_int_eq(per[w], 2);
        ck_assert_uint_eq(belt__pool_load(p, w), 0);
    }
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* join-idle-queue: at start every worker is idle, so the first W jobs go
 * to workers 0..W-1 in order; a worker that finished its job rejoins the
 * idle queue (before its result is sent) behind those never picked. */
START_TEST(test_jiq_idle_first)
{
    enum { W = 3 };
    belt_chan *res = new_results();
    belt_pool *p = new_pool("join-idle-queue", W, 0, res);
    belt_job quick, longj[W + 1];
    noop_job(&quick, 100);
    ck_assert_rc(belt_pool_submit(p, &quick), BELT_OK); /* -> worker 0 */
    belt_result *r = recv_result(res);
    ck_assert_int_eq(r->worker, 0);
    belt_result_free(r);
    /* Idle queue now: 1, 2, 0. */
    for (unsigned i = 0; i < W; i++) {
        sleep_job(&longj[i], i, 60 * TU_SEC);
        ck_assert_rc(belt_pool_submit(p, &longj[i]), BELT_OK);
    }
    for (unsigned w = 0; w < W; w++)
        ck_assert_uint_eq(belt__pool_load(p, w), 1);
    /* Idle queue empty: the next job goes to some worker at random. */
    sleep_job(&longj[W], W, 60 * TU_SEC);
    ck_assert_rc(belt_pool_submit(p, &longj[W]), BELT_OK);
    unsigned total = 0;
    for (unsigned w = 0; w < W; w++)
        total += belt__pool_load(p, w);
    ck_assert_uint_eq(total, W + 1);
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    int per[W] = { 0 };
    for (unsigned i = 0; i < W + 1; i++) {
        r = recv_result(res);
        ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
        if (r->seq < W) /* seq i went to worker (i + 1) % W */
            ck_assert_int_eq(r->worker, (int)((r->seq + 1) % W));
        per[r->worker]++;
        belt_result_free(r);
    }
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* work-stealing with mixed lengths: job 0 is long and lands on worker 0
 * (round-robin), and so do jobs 4, 8, ...  Whoever runs job 0 (worker 0,
 * or a thief that took it first) is worker L; while L sleeps, the others,
 * done with their own short jobs, must steal the jobs queued for L (seq =
 * L mod W). */
START_TEST(test_steal_mixed_lengths)
{
    enum { W = 4, N = 40 };
    belt_chan *res = new_results();
    belt_pool *p = new_pool("work-stealing", W, 0, res);
    belt_job jobs[N];
    for (int i = 0; i < N; i++)
        sleep_job(&jobs[i], (uint64_t)i,
                  i == 0 ? (tu_sanitized() ? 2000 : 600) * TU_MS : 2 * TU_MS);
    for (int i = 0; i < N; i++)
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    int seen[N] = { 0 }, ran_on[N], moved = 0;
    for (int i = 0; i < N; i++) {
        belt_result *r = recv_result(res);
        ck_assert_int_eq(r->status, BELT_JOB_OK);
        ck_assert_uint_lt(r->seq, N);
        seen[r->seq]++;
        ck_assert_int_ge(r->worker, 0);
        ck_assert_int_lt(r->worker, W);
        ran_on[r->seq] = r->worker;
        belt_result_free(r);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
    int L = ran_on[0];
    for (int i = 1; i < N; i++)
        if (i % W == L)
            moved += ran_on[i] != L;
    ck_assert_int_gt(moved, 0);
    ck_assert_uint_ge(belt__pool_steals(p), (uint64_t)moved);
    for (unsigned w = 0; w < W; w++)
        ck_assert_uint_eq(belt__pool_load(p, w), 0);
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    belt_result *extra;
    ck_assert_rc(belt_chan_try_recv(res, &extra), BELT_EMPTY);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* Parked workers wake for each job: one job at a time, each waited for,
 * so every worker parks between jobs.  A lost wake-up hangs recv_result
 * (20 s) and fails the test. */
START_TEST(test_steal_wakes_parked)
{
    enum { W = 3 };
    long n = tu_scaled(400, 50);
    belt_chan *res = new_results();
    belt_pool *p = new_pool("work-stealing", W, 0, res);
    belt_job job;
    for (long i = 0; i < n; i++) {
        if (i % 2)
            noop_job(&job, (uint64_t)i);
        else
            sleep_job(&job, (uint64_t)i, 100000); /* 0.1 ms */
        ck_assert_rc(belt_pool_submit(p, &job), BELT_OK);
        belt_result *r = recv_result(res);
        ck_assert_uint_eq(r->seq, (uint64_t)i);
        ck_assert_int_eq(r->status, BELT_JOB_OK);
        belt_result_free(r);
    }
    /* Two at a time: one lands on a busy worker's inbox; a parked one must
     * be woken to take it (or the busy one takes it after). */
    belt_job two[2];
    for (long i = 0; i < n / 4; i++) {
        sleep_job(&two[0], 0, 1 * TU_MS);
        sleep_job(&two[1], 1, 1 * TU_MS);
        ck_assert_rc(belt_pool_submit(p, &two[0]), BELT_OK);
        ck_assert_rc(belt_pool_submit(p, &two[1]), BELT_OK);
        belt_result_free(recv_result(res));
        belt_result_free(recv_result(res));
    }
    belt_pool_free(p);
    belt_result *extra;
    ck_assert_rc(belt_chan_try_recv(res, &extra), BELT_EMPTY);
    belt_chan_free(res);
}
END_TEST

/* Speed factors: a sleep job on a worker of speed f takes duration / f.
 * Bounds are one-sided where timing is noisy: a slowed worker takes at
 * least the stretched time; a sped-up one at least the shortened time and
 * clearly less than the full one. */
START_TEST(test_speeds)
{
    const char *policy = _i == 0 ? "round-robin" : "work-stealing";
    belt_chan *res = new_results();
    belt_pool *p = new_pool(policy, 2, 0, res);
    ck_assert_rc(belt__pool_set_speeds(NULL, NULL), BELT_EINVAL);
    ck_assert_rc(belt__pool_set_speeds(p, (double[]){ 1.0, 0.0 }),
                 BELT_EINVAL);
    ck_assert_rc(belt__pool_set_speeds(p, (double[]){ -1.0, 1.0 }),
                 BELT_EINVAL);
    ck_assert_rc(belt__pool_set_speeds(p, (double[]){ 1.0, NAN }),
                 BELT_EINVAL);
    ck_assert_rc(belt__pool_set_speeds(p, (double[]){ 0.25, 4.0 }), BELT_OK);
    belt_job slow, fast;
    sleep_job(&slow, 0, 20 * TU_MS);  /* worker 0: 80 ms */
    sleep_job(&fast, 1, 2 * TU_SEC);  /* worker 1: 500 ms */
    ck_assert_rc(belt_pool_submit(p, &slow), BELT_OK);
    ck_assert_rc(belt_pool_submit(p, &fast), BELT_OK);
    for (int i = 0; i < 2; i++) {
        belt_result *r = recv_result(res);
        ck_assert_int_eq(r->status, BELT_JOB_OK);
        ck_assert_ptr_eq(r->job, r->seq == 0 ? &slow : &fast);
        if (r->worker == 0) /* speed 0.25 */
            ck_assert_int_ge(r->duration_ns, 4 * r->job->duration_ns);
        else {               /* speed 4 */
            ck_assert_int_ge(r->duration_ns, r->job->duration_ns / 4);
            ck_assert_int_lt(r->duration_ns, r->job->duration_ns);
        }
        belt_result_free(r);
    }
    /* The job itself is unchanged. */
    ck_assert_int_eq(slow.duration_ns, 20 * TU_MS);
    ck_assert_int_eq(fast.duration_ns, 2 * TU_SEC);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* ---- stop --------------------------------------------------------------- */

START_TEST(test_shutdown_finishes_queued)
{
    const char *policy = all_policies[_i];
    enum { N = 20 };
    belt_chan *res = new_results();
    belt_pool *p = new_pool(policy, 2, 16, res);
    belt_job jobs[N];
    for (int i = 0; i < N; i++) {
        sleep_job(&jobs[i], (uint64_t)i, 5 * TU_MS);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    ck_assert_rc(belt_pool_submit(p, &jobs[0]), BELT_CLOSED);
    ck_assert_int_eq(drain_expect(res, N, BELT_JOB_OK), N);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* Cancel during long jobs: running and queued ones all come back CANCELED,
 * promptly. */
START_TEST(test_cancel_long_jobs)
{
    const char *policy = all_policies[_i];
    enum { N = 10 };
    belt_chan *res = new_results();
    int before = thread_baseline();
    belt_pool *p = new_pool(policy, 2, 8, res);
    belt_job jobs[N];
    for (int i = 0; i < N; i++) {
        sleep_job(&jobs[i], (uint64_t)i, 60 * TU_SEC);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    tu_sleep_ms(tu_sanitized() ? 300 : 100); /* let two of them start */
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    int64_t took = tu_now_ns() - t0;
    ck_assert_msg(took < (int64_t)(tu_timeout(1) * TU_SEC),
                  "cancel took %lld ms", (long long)(took / TU_MS));
    ck_assert_int_eq(tu_wait_threads(before), before);
    int ran = drain_expect(res, N, BELT_JOB_CANCELED);
    ck_assert_int_ge(ran, 1);  /* were running: stopped */
    ck_assert_int_le(ran, 2);  /* the rest never started */
    ck_assert_rc(belt_pool_submit(p, &jobs[0]), BELT_CLOSED);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* Cancel stops a running child process too (the executor kills its group). */
START_TEST(test_cancel_process_job)
{
    static char *const argv[] = { "sleep", "60", NULL };
    belt_chan *res = new_results();
    belt_pool *p = new_pool("round-robin", 1, 0, res);
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    j.kill_grace_ns = 200 * TU_MS;
    ck_assert_rc(belt_pool_submit(p, &j), BELT_OK);
    tu_sleep_ms(tu_sanitized() ? 300 : 100);
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    ck_assert_int_lt(tu_now_ns() - t0, (int64_t)(tu_timeout(2) * TU_SEC));
    belt_result *r = recv_result(res);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    belt_result_free(r);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

struct blocked_submit {
    belt_pool *p;
    belt_job *jobs;
    int n;
    atomic_int accepted;
    int last_rc;
};

static void *submit_until_refused(void *arg)
{
    struct blocked_submit *b = arg;
    for (int i = 0; i < b->n; i++) {
        int rc = belt_pool_submit(b->p, &b->jobs[i]);
        b->last_rc = rc;
        if (rc != BELT_OK)
            break;
        atomic_fetch_add(&b->accepted, 1);
    }
    return NULL;
}

/* A submit blocked on a full queue wakes on cancel; one job running and
 * one queued come back CANCELED, and submitting stops with BELT_CLOSED. */
START_TEST(test_cancel_wakes_blocked_submit)
{
    const char *policy = _i == 0 ? "shared"
                         : _i == 1 ? "round-robin"
                                   : "work-stealing";
    enum { N = 8 };
    belt_chan *res = new_results();
    belt_pool *p = new_pool(policy, 1, 1, res);
    belt_job jobs[N];
    for (int i = 0; i < N; i++)
        sleep_job(&jobs[i], (uint64_t)i, 60 * TU_SEC);
    struct blocked_submit b = { .p = p, .jobs = jobs, .n = N, .last_rc = 1 };
    pthread_t t;
    tu_spawn(&t, submit_until_refused, &b);
    tu_sleep_ms(tu_sanitized() ? 400 : 150); /* 1 runs, 1 queued, 1 blocks */
    ck_assert_int_eq(atomic_load(&b.accepted), 2);
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    tu_join(t);
    ck_assert_int_lt(tu_now_ns() - t0, (int64_t)(tu_timeout(1) * TU_SEC));
    ck_assert_rc(b.last_rc, BELT_CLOSED);
    /* The blocked submit may have completed if the worker, answering
     * CANCELED, made room before the close: then its job is answered too. */
    int accepted = atomic_load(&b.accepted);
    ck_assert_int_ge(accepted, 2);
    ck_assert_int_le(accepted, 3);
    ck_assert_int_eq(drain_expect(res, accepted, BELT_JOB_CANCELED), 1);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

static void *shutdown_thread(void *arg)
{
    TU_CHECK_RC(belt_pool_shutdown(arg), BELT_OK);
    return NULL;
}

/* Cancel while another thread's shutdown waits for long jobs: both return
 * promptly; the shutdown does not return before the workers are joined. */
START_TEST(test_cancel_during_shutdown)
{
    enum { N = 4 };
    belt_chan *res = new_results();
    int before = thread_baseline();
    belt_pool *p = new_pool(_i == 0   ? "shared"
                            : _i == 1 ? "least-loaded"
                                      : "work-stealing",
                            2, 0, res);
    belt_job jobs[N];
    for (int i = 0; i < N; i++) {
        sleep_job(&jobs[i], (uint64_t)i, 60 * TU_SEC);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    pthread_t t;
    tu_spawn(&t, shutdown_thread, p);
    tu_sleep_ms(tu_sanitized() ? 300 : 100);
    ck_assert_rc(belt_pool_submit(p, &jobs[0]), BELT_CLOSED);
    int64_t t0 = tu_now_ns();
    ck_assert_rc(belt_pool_cancel(p), BELT_OK);
    tu_join(t);
    ck_assert_int_lt(tu_now_ns() - t0, (int64_t)(tu_timeout(1) * TU_SEC));
    tu_assert_threads_ok();
    ck_assert_int_eq(tu_wait_threads(before), before);
    drain_expect(res, N, BELT_JOB_CANCELED);
    belt_pool_free(p);
    belt_chan_free(res);
}
END_TEST

/* Every order of shutdown, cancel and free, repeated, is fine. */
START_TEST(test_stop_orders)
{
    belt_chan *res = new_results();
    belt_job jobs[10];
    for (int i = 0; i < 10; i++)
        noop_job(&jobs[i], (uint64_t)i);
    for (int order = 0; order < 4; order++) {
        belt_pool *p = new_pool(order % 2 ? "random" : "shared", 2, 0, res);
        for (int i = 0; i < 10; i++)
            ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
        switch (order) {
        case 0: /* shutdown, shutdown, cancel */
            ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
            ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
            ck_assert_rc(belt_pool_cancel(p), BELT_OK);
            drain_expect(res, 10, BELT_JOB_OK);
            break;
        case 1: /* cancel, cancel, shutdown: each job OK or CANCELED */
            ck_assert_rc(belt_pool_cancel(p), BELT_OK);
            ck_assert_rc(belt_pool_cancel(p), BELT_OK);
            ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
            for (int i = 0; i < 10; i++) {
                belt_result *r = recv_result(res);
                ck_assert(r->status == BELT_JOB_OK ||
                          r->status == BELT_JOB_CANCELED);
                belt_result_free(r);
            }
            break;
        case 2: /* free of a running pool finishes the queue */
            break;
        case 3: /* shutdown then free */
            ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
            break;
        }
        ck_assert_rc(belt_pool_submit(p, &jobs[0]), order == 2 ? BELT_OK
                                                               : BELT_CLOSED);
        belt_pool_free(p);
        if (order >= 2)
            drain_expect(res, order == 2 ? 11 : 10, BELT_JOB_OK);
    }
    belt_chan_free(res);
}
END_TEST

/* The caller closes the results channel: results that can't be sent are
 * freed by the pool (ASan checks the leak), jobs still all run. */
START_TEST(test_results_closed_by_caller)
{
    belt_chan *res = new_results();
    belt_pool *p = new_pool("round-robin", 2, 0, res);
    belt_chan_close(res);
    belt_job jobs[50];
    for (int i = 0; i < 50; i++) {
        noop_job(&jobs[i], (uint64_t)i);
        ck_assert_rc(belt_pool_submit(p, &jobs[i]), BELT_OK);
    }
    belt_pool_free(p);
    belt_result *r;
    ck_assert_rc(belt_chan_try_recv(res, &r), BELT_CLOSED);
    belt_chan_free(res);
}
END_TEST

/* The pool holds its own reference: the caller may drop its reference to
 * the results channel early (it then gets no results, but nothing breaks). */
START_TEST(test_results_ref_held)
{
    belt_chan *res = new_results();
    belt_pool *p = new_pool("shared", 2, 0, res);
    belt_chan *mine = belt_chan_ref(res);
    belt_chan_free(res);
    belt_job j;
    noop_job(&j, 1);
    ck_assert_rc(belt_pool_submit(p, &j), BELT_OK);
    ck_assert_rc(belt_pool_shutdown(p), BELT_OK);
    drain_expect(mine, 1, BELT_JOB_OK);
    belt_pool_free(p);
    belt_chan_free(mine);
}
END_TEST

/* ======================================================================== main */

static void setup(void)
{
    tu_reset_failures();
}

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");

    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_test(tc, test_options_init);
    tcase_add_test(tc, test_invalid_arguments);
    tcase_add_test(tc, test_zero_workers_uses_cpus);
    tcase_add_test(tc, test_policy_names);
    tcase_add_loop_test(tc, test_no_thread_leak, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_thread_create_fails, 0, 2);
    tcase_add_test(tc, test_busy_time);
    suite_add_tcase(s, tc);

    tc = tcase_create("dispatch");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_loop_test(tc, test_exactly_one_result_each, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_concurrent_submitters, 0, N_POLICIES);
    tcase_add_test(tc, test_round_robin_order);
    tcase_add_loop_test(tc, test_load_aware_spread, 0, 2);
    tcase_add_test(tc, test_jiq_idle_first);
    tcase_add_test(tc, test_steal_mixed_lengths);
    tcase_add_test(tc, test_steal_wakes_parked);
    tcase_add_loop_test(tc, test_speeds, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("stop");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, tu_timeout(10));
    tcase_add_loop_test(tc, test_shutdown_finishes_queued, 0, N_POLICIES);
    tcase_add_loop_test(tc, test_cancel_long_jobs, 0, N_POLICIES);
    tcase_add_test(tc, test_cancel_process_job);
    tcase_add_loop_test(tc, test_cancel_wakes_blocked_submit, 0, 3);
    tcase_add_loop_test(tc, test_cancel_during_shutdown, 0, 3);
    tcase_add_test(tc, test_stop_orders);
    tcase_add_test(tc, test_results_closed_by_caller);
    tcase_add_test(tc, test_results_ref_held);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pool_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
