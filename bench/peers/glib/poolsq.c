/* poolsq.c: the GLib peer of bench/pool_fn.c (`scripts/bench pool`).
 *
 * GLib's worker pool computing i*i for i in 1..N: a producer thread
 * (g_thread_new) pushes the numbers into a GThreadPool of --workers
 * exclusive threads (started at creation, as belt's are; the pool's own
 * queue is the jobs queue); each pool thread squares its number and pushes
 * the square on a GAsyncQueue (unbounded: GLib has no bounded queue, so
 * this is the one place the shape differs from the Go peer's reply channel
 * of capacity 1024); the main thread pops N squares and sums them (uint64,
 * wrapping), then checks the sum against the same sum computed in a plain
 * loop.  Numbers and squares travel as the data pointers themselves (no
 * allocation per job; neither can be NULL, which GLib's queues refuse,
 * since i >= 1; needs 64-bit pointers for N above 65535, checked).
 *
 * The clock runs from starting the producer to the last square summed;
 * creating and freeing the pool are outside it.  Prints one CSV line
 * without a header:
 *     glib,<workers>,<jobs>,<seconds>,<jobs per second>
 * Exit status 0, 1 on any failure (a failed push exits at once) or a wrong sum, 2 on a bad argument.
 * Build: cc -O2 poolsq.c $(pkg-config --cflags --libs glib-2.0)
 */
#include <glib.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    GThreadPool *pool;
    gint64 n;
} producer_arg;

static void square(gpointer data, gpointer user_data)
{
    GAsyncQueue *results = user_data;
    guint64 i = GPOINTER_TO_SIZE(data);
    g_async_queue_push(results, GSIZE_TO_POINTER((gsize)(i * i)));
}

static gpointer produce(gpointer data)
{
    producer_arg *a = data;
    GError *err = NULL;
    for (gint64 i = 1; i <= a->n; i++) {
        if (!g_thread_pool_push(a->pool, GSIZE_TO_POINTER((gsize)i), &err)) {
            /* The main thread would wait for squares that never come. */
            fprintf(stderr, "glib-poolsq: push: %s\n", err->message);
            exit(1);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    gint64 n = 1000000, workers = 4;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        gint64 *dst = strcmp(argv[i], "--jobs") == 0      ? &n
                      : strcmp(argv[i], "--workers") == 0 ? &workers
                                                          : NULL;
        if (dst == NULL || v == NULL || (*dst = g_ascii_strtoll(v, NULL, 10)) < 1) {
            fprintf(stderr, "usage: glib-poolsq [--jobs N] [--workers W]\n");
            return 2;
        }
        i++;
    }
    if (sizeof(gpointer) < 8 && n > 65535) {
        fprintf(stderr, "glib-poolsq: squares above 2^32 need 64-bit pointers\n");
        return 2;
    }

    GAsyncQueue *results = g_async_queue_new();
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(square, results, (gint)workers,
                                          TRUE, &err);
    if (pool == NULL) {
        fprintf(stderr, "glib-poolsq: g_thread_pool_new: %s\n", err->message);
        return 1;
    }

    producer_arg a = {pool, n};
    gint64 t0 = g_get_monotonic_time();
    GThread *producer = g_thread_new("producer", produce, &a);
    guint64 sum = 0;
    for (gint64 got = 0; got < n; got++)
        sum += (guint64)GPOINTER_TO_SIZE(g_async_queue_pop(results));
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;
    g_thread_join(producer);

    g_thread_pool_free(pool, FALSE, TRUE);
    g_async_queue_unref(results);

    guint64 want = 0;
    for (guint64 i = 1; i <= (guint64)n; i++)
        want += i * i;
    if (sum != want) {
        fprintf(stderr, "glib-poolsq: sum %" PRIu64 ", want %" PRIu64 "\n",
                (uint64_t)sum, (uint64_t)want);
        return 1;
    }
    printf("glib,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%.6f,%.0f\n",
           workers, n, secs, (double)n / secs);
    return 0;
}
