/* squares.c: the Go worker-pool idiom with libbelt.  A producer sends
 * 1..100, four workers square them, main sums the results (338350). */
#include <belt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

static void square(void *ctx, const void *job, void *result, unsigned worker)
{
    (void)ctx;
    (void)worker;
    uint64_t x = *(const uint64_t *)job;
    *(uint64_t *)result = x * x;
}

static void *produce(void *pool)
{
    for (uint64_t i = 1; i <= 100; i++)
        if (belt_pool_send(pool, &i) != BELT_OK) /* copied: &i is reusable */
            break;
    return NULL;
}

int main(void)
{
    belt_chan *results = belt_chan_bounded(1024, sizeof(uint64_t));
    belt_pool_options o;
    belt_pool_options_init(&o);
    o.workers = 4;
    belt_pool *pool;
    if (results == NULL ||
        belt_pool_create_fn(&pool, &o, sizeof(uint64_t), square, NULL,
                            results) != BELT_OK) {
        fprintf(stderr, "squares: cannot start the pool\n");
        return 1;
    }
    pthread_t producer;
    pthread_create(&producer, NULL, produce, pool);
    uint64_t sum = 0, r;
    for (int n = 0; n < 100 && belt_chan_recv(results, &r) == BELT_OK; n++)
        sum += r; /* one result per job */
    pthread_join(producer, NULL);
    belt_pool_shutdown(pool); /* every accepted job has run */
    belt_pool_free(pool);
    belt_chan_free(results);
    printf("%llu\n", (unsigned long long)sum);
    return sum == 338350 ? 0 : 1;
}
