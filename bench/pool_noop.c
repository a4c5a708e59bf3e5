/* pool_noop.c: `scripts/bench run`'s in-process pool benchmark for belt.
 *
 * The library path of `belt run`, without the config and the JSON Lines
 * writer: a pool (policy "shared" unless --policy says otherwise) of
 * --workers threads and an unbounded results channel; the main thread
 * submits --jobs noop jobs (kind BELT_JOB_NOOP, the job's seq is its id,
 * 1..N), then receives every result, checks it (status ok, each id exactly
 * once) and frees it.  That is the shape of the Go peer (bench/peers/go/pool:
 * a jobs channel, N goroutines, a results channel buffered for every
 * result) and of the GLib peer (bench/peers/glib/pool.c: GThreadPool,
 * replies on a GAsyncQueue), which do the same work.
 *
 * With --window W it instead keeps at most W jobs in flight, receiving (and
 * freeing) one result before each further submit.  Not the peers' shape: a
 * diagnostic showing what the pool costs when freed results are reused
 * instead of the heap growing by one result per job.
 *
 * The clock runs from the first submit to the last result freed; building
 * the job array (belt must be handed jobs that outlive their results, the
 * peers' jobs are plain values) and starting and joining the threads are
 * outside it.  Prints one CSV line without a header:
 *     belt,<workers>,<jobs>,<seconds>,<jobs per second>
 * (belt-window<W> instead of belt with --window).
 * Exit status 0, or 1 on any failure or a wrong result (message on stderr).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: pool_noop [--jobs N] [--workers W] "
                    "[--policy NAME] [--window W]\n");
    return 2;
}

static int parse_count(const char *s, unsigned long long *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    *out = strtoull(s, &end, 10);
    return *end == '\0' ? 0 : -1;
}

/* Receives up to max results in one batch (belt_chan_recv_many: one lock
 * round trip for what is buffered), checks each (ok, id in 1..n, not seen
 * before; else counts it in *bad) and frees them.  Returns how many it got,
 * or -1 if the receive failed (message on stderr). */
static int collect(belt_chan *results, unsigned long long n, size_t max,
                   unsigned char *seen, unsigned long long *bad)
{
    belt_result *rs[64];
    if (max > 64)
        max = 64;
    int got = belt_chan_recv_many(results, rs, max, -1);
    if (got < 0) {
        fprintf(stderr, "pool_noop: recv: %s\n", belt_strerror(got));
        return -1;
    }
    for (int i = 0; i < got; i++) {
        belt_result *r = rs[i];
        if (r->status != BELT_JOB_OK || r->seq == 0 || r->seq > n ||
            seen[r->seq]++ != 0)
            (*bad)++;
        belt_result_free(r);
    }
    return got;
}

int main(int argc, char **argv)
{
    unsigned long long n = 1000000, workers = 4, window = 0;
    const char *policy = "shared";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--jobs") == 0) {
            if (parse_count(v, &n) != 0 || n == 0)
                return usage();
        } else if (strcmp(argv[i], "--workers") == 0) {
            if (parse_count(v, &workers) != 0 || workers == 0 ||
                workers > BELT_POOL_MAX_WORKERS)
                return usage();
        } else if (strcmp(argv[i], "--window") == 0) {
            if (parse_count(v, &window) != 0)
                return usage();
        } else if (strcmp(argv[i], "--policy") == 0) {
            if (v == NULL)
                return usage();
            policy = v;
        } else {
            return usage();
        }
        i++;
    }

    belt_job *jobs = malloc(n * sizeof *jobs);
    unsigned char *seen = calloc(n + 1, 1);
    if (jobs == NULL || seen == NULL) {
        fprintf(stderr, "pool_noop: out of memory\n");
        return 1;
    }
    for (unsigned long long i = 0; i < n; i++) {
        belt_job_init(&jobs[i]);
        jobs[i].kind = BELT_JOB_NOOP;
        jobs[i].seq = i + 1;
    }

    belt_chan *results = belt_chan_unbounded(sizeof(belt_result *));
    if (results == NULL) {
        fprintf(stderr, "pool_noop: out of memory\n");
        return 1;
    }
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = (unsigned)workers;
    o.policy = policy;
    belt_pool *pool;
    int rc = belt_pool_create(&pool, &o, results);
    if (rc != BELT_OK) {
        fprintf(stderr, "pool_noop: belt_pool_create: %s\n",
                belt_strerror(rc));
        return 1;
    }

    double t0 = now_s();
    unsigned long long bad = 0, got = 0;
    for (unsigned long long i = 0; i < n; i++) {
        if (window != 0 && i - got >= window) {
            int k = collect(results, n, 64, seen, &bad);
            if (k < 0)
                return 1;
            got += (unsigned long long)k;
        }
        rc = belt_pool_submit(pool, &jobs[i]);
        if (rc != BELT_OK) {
            fprintf(stderr, "pool_noop: submit: %s\n", belt_strerror(rc));
            return 1;
        }
    }
    while (got < n) {
        int k = collect(results, n, (size_t)(n - got < 64 ? n - got : 64),
                        seen, &bad);
        if (k < 0)
            return 1;
        got += (unsigned long long)k;
    }
    double secs = now_s() - t0;

    belt_pool_free(pool);
    belt_chan_free(results);
    free(seen);
    free(jobs);
    if (bad != 0) {
        fprintf(stderr, "pool_noop: %llu wrong results\n", bad);
        return 1;
    }
    if (window != 0)
        printf("belt-window%llu", window);
    else
        printf("belt");
    printf(",%llu,%llu,%.6f,%.0f\n", workers, n, secs, (double)n / secs);
    return 0;
}
