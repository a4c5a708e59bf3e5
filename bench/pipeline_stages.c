/* pipeline_stages.c: the three plugin stages of `scripts/bench pipeline`
 * part 3 (belt/stage.h), built as a shared library that both belt (as three
 * `plugin` stages) and bench/pipeline_floor.c (one loop, one thread) load.
 *
 *   bench_incr   the item is a decimal number: emit number + 1
 *   bench_tag    emit the item followed by "," and its FNV-1a hash in hex
 *   bench_untag  emit the item up to its last ","
 *
 * So the three together turn "41" into "42": cheap, allocation-free work,
 * so that the benchmark measures what moving an item costs.
 *
 *   cc -shared -fPIC -O2 -I include -o pipeline_stages.so \
 *       bench/pipeline_stages.c
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "belt/stage.h"

BELT_STAGE_DECLARE(bench_incr);
BELT_STAGE_DECLARE(bench_tag);
BELT_STAGE_DECLARE(bench_untag);

belt_stage_fn bench_incr, bench_tag, bench_untag;

int bench_incr(void *ctx, const char *in, size_t in_len,
               belt_stage_emit *emit, void *emit_ctx)
{
    (void)ctx;
    uint64_t v = 0;
    for (size_t i = 0; i < in_len; i++) {
        if (in[i] < '0' || in[i] > '9')
            return 1;
        v = v * 10 + (uint64_t)(in[i] - '0');
    }
    char buf[24];
    size_t n = sizeof buf;
    v++;
    do {
        buf[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    emit(emit_ctx, buf + n, sizeof buf - n);
    return 0;
}

int bench_tag(void *ctx, const char *in, size_t in_len,
              belt_stage_emit *emit, void *emit_ctx)
{
    (void)ctx;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < in_len; i++)
        h = (h ^ (unsigned char)in[i]) * 16777619u;
    char buf[128];
    if (in_len > sizeof buf - 10)
        return 1;
    memcpy(buf, in, in_len);
    static const char hex[] = "0123456789abcdef";
    buf[in_len] = ',';
    for (int i = 0; i < 8; i++)
        buf[in_len + 1 + (size_t)i] = hex[(h >> (28 - 4 * i)) & 15];
    emit(emit_ctx, buf, in_len + 9);
    return 0;
}

int bench_untag(void *ctx, const char *in, size_t in_len,
                belt_stage_emit *emit, void *emit_ctx)
{
    (void)ctx;
    size_t n = in_len;
    while (n > 0 && in[n - 1] != ',')
        n--;
    if (n == 0)
        return 1;
    emit(emit_ctx, in, n - 1);
    return 0;
}
