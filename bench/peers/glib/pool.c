/* pool.c: the GLib peer of bench/pool_noop.c (`scripts/bench run`).
 *
 * GLib's own worker pool doing the same work as belt's: a GThreadPool of
 * --workers exclusive threads (started at creation, as belt's are), whose
 * internal queue is the jobs queue; each job is a noop carrying its id
 * (1..N, as the pool's data pointer), and its thread function pushes the
 * reply (the id, ok) on a GAsyncQueue.  The main thread pushes --jobs jobs,
 * then pops every reply and checks it (each id exactly once).
 *
 * The clock runs from the first push to the last reply popped; creating the
 * pool and freeing it are outside it.  Prints one CSV line without a header:
 *     glib,<workers>,<jobs>,<seconds>,<jobs per second>
 * Exit status 0, or 1 on any failure or a wrong result.
 * Build: cc -O2 pool.c $(pkg-config --cflags --libs glib-2.0)
 */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replies are id << 1 | ok, so that no reply is NULL (which GAsyncQueue
 * refuses). */
static void run_job(gpointer data, gpointer user_data)
{
    GAsyncQueue *replies = user_data;
    guintptr id = GPOINTER_TO_SIZE(data);
    g_async_queue_push(replies, GSIZE_TO_POINTER(id << 1 | 1u));
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
            fprintf(stderr, "usage: glib-pool [--jobs N] [--workers W]\n");
            return 2;
        }
        i++;
    }

    GAsyncQueue *replies = g_async_queue_new();
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(run_job, replies, (gint)workers,
                                          TRUE, &err);
    if (pool == NULL) {
        fprintf(stderr, "glib-pool: g_thread_pool_new: %s\n", err->message);
        return 1;
    }
    unsigned char *seen = g_malloc0((gsize)n + 1);

    gint64 t0 = g_get_monotonic_time();
    for (gint64 i = 1; i <= n; i++) {
        if (!g_thread_pool_push(pool, GSIZE_TO_POINTER((gsize)i), &err)) {
            fprintf(stderr, "glib-pool: push: %s\n", err->message);
            return 1;
        }
    }
    gint64 bad = 0;
    for (gint64 i = 0; i < n; i++) {
        guintptr r = GPOINTER_TO_SIZE(g_async_queue_pop(replies));
        guintptr id = r >> 1;
        if (!(r & 1u) || id < 1 || id > (guintptr)n || seen[id]++ != 0)
            bad++;
    }
    double secs = (double)(g_get_monotonic_time() - t0) / 1e6;

    g_thread_pool_free(pool, FALSE, TRUE);
    g_async_queue_unref(replies);
    g_free(seen);
    if (bad != 0) {
        fprintf(stderr, "glib-pool: %" G_GINT64_FORMAT " wrong results\n", bad);
        return 1;
    }
    printf("glib,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%.6f,%.0f\n",
           workers, n, secs, (double)n / secs);
    return 0;
}
