/* pool_fn.c: belt's function pool in the Go worker-pool shape
 * (`scripts/bench pool`; peers bench/peers/go/poolsq, bench/peers/glib/poolsq.c).
 *
 * N jobs computing i*i for i in 1..N: a producer thread sends the numbers
 * to a function pool of W workers ("shared" policy, the Go jobs channel's
 * counterpart), each worker squares its number, results travel over a
 * bounded reply channel of capacity 1024 and the main thread sums them
 * (uint64, wrapping) and checks the sum against a plain loop's.
 *   --mode single   one call per job: belt_pool_send, belt_chan_recv
 *   --mode batch    batches of 256: belt_pool_send_many, belt_chan_recv_many
 * The clock runs from starting the producer to the last result summed;
 * creating and freeing the pool are outside it.  Prints one CSV line:
 *     belt-<mode>,<workers>,<jobs>,<seconds>,<jobs per second>
 * Exit status 0, 1 on any failure or a wrong sum, 2 on a bad argument.
 */
#define _POSIX_C_SOURCE 200809L
#include <belt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 256

typedef struct {
    belt_pool *pool;
    uint64_t n;
    int batch;
    int rc;
} producer_arg;

static void square(void *ctx, const void *job, void *result, unsigned worker)
{
    (void)ctx;
    (void)worker;
    uint64_t x;
    memcpy(&x, job, sizeof x);
    x *= x;
    memcpy(result, &x, sizeof x);
}

static void *produce(void *arg)
{
    producer_arg *a = arg;
    uint64_t buf[BATCH];
    a->rc = BELT_OK;
    if (!a->batch) {
        for (uint64_t i = 1; i <= a->n && a->rc == BELT_OK; i++)
            a->rc = belt_pool_send(a->pool, &i);
        return NULL;
    }
    for (uint64_t i = 1; i <= a->n && a->rc == BELT_OK;) {
        size_t k = 0;
        while (k < BATCH && i <= a->n)
            buf[k++] = i++;
        a->rc = belt_pool_send_many(a->pool, buf, k, NULL);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000;
    unsigned workers = 4;
    int batch = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            workers = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            if (strcmp(m, "batch") == 0)
                batch = 1;
            else if (strcmp(m, "single") != 0)
                goto usage;
        } else
            goto usage;
    }
    if (n < 1 || workers < 1)
        goto usage;

    belt_chan *results = belt_chan_bounded(1024, sizeof(uint64_t));
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = workers;
    belt_pool *pool;
    if (results == NULL || belt_pool_create_fn(&pool, &o, sizeof(uint64_t),
                                               square, NULL, results) != BELT_OK) {
        fprintf(stderr, "pool_fn: cannot create the pool\n");
        return 1;
    }
    producer_arg a = { .pool = pool, .n = n, .batch = batch };
    pthread_t th;
    double t0 = now();
    if (pthread_create(&th, NULL, produce, &a) != 0) {
        fprintf(stderr, "pool_fn: cannot start the producer\n");
        return 1;
    }
    uint64_t sum = 0, got = 0, buf[BATCH];
    while (got < n) {
        if (batch) {
            int m = belt_chan_recv_many(results, buf, BATCH, -1);
            if (m <= 0)
                break;
            for (int k = 0; k < m; k++)
                sum += buf[k];
            got += (uint64_t)m;
        } else {
            if (belt_chan_recv(results, &buf[0]) != BELT_OK)
                break;
            sum += buf[0];
            got++;
        }
    }
    double secs = now() - t0;
    pthread_join(th, NULL);
    belt_pool_shutdown(pool);
    belt_pool_free(pool);
    belt_chan_free(results);

    uint64_t want = 0;
    for (uint64_t i = 1; i <= n; i++)
        want += i * i;
    if (a.rc != BELT_OK || got != n || sum != want) {
        fprintf(stderr, "pool_fn: wrong result (rc %d, %" PRIu64 " of %" PRIu64
                        " results, sum %" PRIu64 ", want %" PRIu64 ")\n",
                a.rc, got, n, sum, want);
        return 1;
    }
    printf("belt-%s,%u,%" PRIu64 ",%.6f,%.0f\n", batch ? "batch" : "single",
           workers, n, secs, (double)n / secs);
    return 0;
usage:
    fprintf(stderr, "usage: pool_fn [--mode single|batch] [--jobs N] [--workers W]\n");
    return 2;
}
