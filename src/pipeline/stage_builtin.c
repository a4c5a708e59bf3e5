/* pipeline/stage_builtin.c: the builtin stages, written as plugin-style
 * functions (belt/stage.h) run by pipeline/stage_fn.c:
 *
 *   identity   passes every item on unchanged (benchmarks, tests);
 *   grep       keeps the items an extended regular expression matches (or,
 *              with "invert", does not match).  Each worker compiles its
 *              own regex_t (glibc's regexec serialises callers of one
 *              regex_t on a lock) and matches a NUL-terminated copy of the
 *              item in a per-worker buffer (REG_STARTEND would avoid the
 *              copy, but sanitizers' regexec interceptors ignore it and
 *              read the string up to a NUL, past the item);
 *   sample     keeps one item in `every` (the 1st, the every+1-th, ... of
 *              each worker's input) or each item with probability `rate`,
 *              drawn from a splitmix64 stream seeded with seed + worker
 *              index (reproducible with one worker).
 */
#include "pipeline/internal.h"
#include "util/rng.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- identity ----------------------------------------------------------- */

static int identity_fn(void *ctx, const char *in, size_t len,
                       belt_stage_emit *emit, void *ectx)
{
    (void)ctx;
    emit(ectx, in, len);
    return 0;
}

/* ---- grep --------------------------------------------------------------- */

typedef struct grep_ctx {
    regex_t re;
    bool invert;
    char *buf;                 /* the item, NUL-terminated */
    size_t cap;
} grep_ctx;

int belt__grep_check(const char *pattern, char *msg, size_t size)
{
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &re, msg, size);
        return BELT_ECONFIG;
    }
    regfree(&re);
    return BELT_OK;
}

static int grep_init(const belt__stage_config *sc, int worker, void **ctx)
{
    (void)worker;
    grep_ctx *g = calloc(1, sizeof *g);
    if (g == NULL)
        return -1;
    if (regcomp(&g->re, sc->pattern, REG_EXTENDED | REG_NOSUB) != 0) {
        free(g);
        return -1;
    }
    g->invert = sc->invert;
    *ctx = g;
    return 0;
}

static void grep_fini(void *ctx)
{
    grep_ctx *g = ctx;
    regfree(&g->re);
    free(g->buf);
    free(g);
}

static int grep_fn(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
                   void *ectx)
{
    grep_ctx *g = ctx;
    if (len + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 256;
        while (cap < len + 1)
            cap *= 2;
        char *b = realloc(g->buf, cap);
        if (b == NULL)
            return BELT_ENOMEM; /* a dead letter: "builtin returned -6" */
        g->buf = b;
        g->cap = cap;
    }
    memcpy(g->buf, in, len);
    g->buf[len] = '\0';
    bool hit = regexec(&g->re, g->buf, 0, NULL, 0) == 0;
    if (hit != g->invert)
        emit(ectx, in, len);
    return 0;
}

/* ---- sample ------------------------------------------------------------- */

typedef struct sample_ctx {
    uint64_t every, count, state;
    double rate;
} sample_ctx;

static int sample_init(const belt__stage_config *sc, int worker, void **ctx)
{
    sample_ctx *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    s->every = sc->every;
    s->rate = sc->rate;
    s->state = sc->seed + (uint64_t)worker;
    *ctx = s;
    return 0;
}

static void sample_fini(void *ctx)
{
    free(ctx);
}

static int sample_fn(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
                     void *ectx)
{
    sample_ctx *s = ctx;
    bool keep;
    if (s->every > 0)
        keep = s->count++ % s->every == 0;
    else
        keep = (double)(belt__splitmix64(&s->state) >> 11) * 0x1.0p-53 < s->rate;
    if (keep)
        emit(ectx, in, len);
    return 0;
}

void belt__builtin_fns(const belt__stage_config *sc, belt__fnstage *fs)
{
    memset(fs, 0, sizeof *fs);
    switch (sc->builtin) {
    case BELT__BI_IDENTITY:
        fs->fn = identity_fn;
        break;
    case BELT__BI_GREP:
        fs->fn = grep_fn;
        fs->init_cfg = grep_init;
        fs->fini = grep_fini;
        break;
    default:
        fs->fn = sample_fn;
        fs->init_cfg = sample_init;
        fs->fini = sample_fini;
        break;
    }
}
