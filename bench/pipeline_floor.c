/* pipeline_floor.c: the no-channel floor of `scripts/bench pipeline` part 3.
 *
 *   pipeline_floor STAGES.so N OUT
 *
 * Loads the same shared library that belt's three `plugin` stages use
 * (bench/pipeline_stages.c) and runs its three functions on the items
 * "1" .. "N" in one loop on one thread: each item is formatted as belt's
 * range source would, passed through bench_incr, bench_tag and bench_untag
 * by chaining their emit callbacks directly, and written as a line to OUT
 * (buffered stdio, as a file sink).  No channels, no batches, no threads:
 * what is left of belt's time beyond this is the cost of moving items
 * between stages.  Prints "items,seconds,items_per_s" on stdout.
 *
 *   cc -O2 -I include -o pipeline_floor bench/pipeline_floor.c -ldl
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt/stage.h"

struct hop {
    belt_stage_fn *fn;     /* the next stage, or NULL: the sink */
    struct hop *next;
    FILE *out;
    unsigned long long emitted;
};

static int hop_emit(void *ctx, const char *data, size_t len)
{
    struct hop *h = ctx;
    if (h->fn == NULL) {
        fwrite(data, 1, len, h->out);
        putc('\n', h->out);
        h->emitted++;
        return 0;
    }
    return h->fn(NULL, data, len, hop_emit, h->next);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: pipeline_floor STAGES.so N OUT\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "pipeline_floor: %s\n", dlerror());
        return 1;
    }
    static const char *const names[3] = {"bench_incr", "bench_tag",
                                         "bench_untag"};
    /* Spelled out, not belt_stage_fn *: cppcheck misreads function typedefs. */
    int (*fn[3])(void *, const char *, size_t, belt_stage_emit *, void *);
    for (int i = 0; i < 3; i++) {
        void *sym = dlsym(lib, names[i]);
        if (sym == NULL) {
            fprintf(stderr, "pipeline_floor: %s\n", dlerror());
            return 1;
        }
        /* POSIX: a data pointer from dlsym converts to a function pointer. */
        memcpy(&fn[i], &sym, sizeof sym);
    }
    unsigned long long n = strtoull(argv[2], NULL, 10);
    FILE *out = fopen(argv[3], "w");
    if (out == NULL) {
        perror(argv[3]);
        return 1;
    }
    /* hops[0] feeds stage 2, hops[1] stage 3, hops[2] is the sink. */
    struct hop hops[3] = {
        {fn[1], &hops[1], out, 0},
        {fn[2], &hops[2], out, 0},
        {NULL, NULL, out, 0},
    };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long long failed = 0;
    for (unsigned long long i = 1; i <= n; i++) {
        char item[24];
        int len = snprintf(item, sizeof item, "%llu", i);
        if (fn[0](NULL, item, (size_t)len, hop_emit, &hops[0]) != 0)
            failed++;
    }
    if (fclose(out) != 0) {
        perror(argv[3]);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (hops[2].emitted != n || failed) {
        fprintf(stderr, "pipeline_floor: %llu of %llu items out, %llu "
                "failed\n", hops[2].emitted, n, failed);
        return 1;
    }
    printf("%llu,%.6f,%.0f\n", n, s, s > 0 ? (double)n / s : 0);
    dlclose(lib);
    return 0;
}
