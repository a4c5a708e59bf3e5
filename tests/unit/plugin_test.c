/* plugin_test.c: plugin stages for check_pipeline (built as the loadable
 * module tests/unit/.libs/plugin_test.so; see belt/stage.h for the ABI).
 *
 *   t_upper   upper-cases ASCII letters; has init/fini with a per-worker
 *             context (ASan finds a leak if fini is not called) that
 *             counts items
 *   t_dup     fans out: emits the item, then the item with "b" appended
 *   t_fail    fails items containing "bad" (strerror: "bad item")
 *   t_noabi   a stage function without BELT_STAGE_DECLARE
 *   t_badinit init fails (strerror gives "no model")
 */
#include "belt/stage.h"

#include <stdlib.h>
#include <string.h>

typedef struct upper_ctx {
    unsigned long items;
    char buf[4096];
} upper_ctx;

BELT_STAGE_DECLARE(t_upper);

int t_upper_init(const char *arg, void **ctx);
void t_upper_fini(void *ctx);
int t_upper(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
            void *ectx);

int t_upper_init(const char *arg, void **ctx)
{
    (void)arg;
    upper_ctx *u = calloc(1, sizeof *u);
    if (u == NULL)
        return 1;
    *ctx = u;
    return 0;
}

void t_upper_fini(void *ctx)
{
    free(ctx);
}

int t_upper(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
            void *ectx)
{
    upper_ctx *u = ctx;
    if (u == NULL || len > sizeof u->buf)
        return 2;
    u->items++;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        u->buf[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    emit(ectx, u->buf, len); /* a negative result: stopping; nothing to undo */
    return 0;
}

BELT_STAGE_DECLARE(t_dup);
int t_dup(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
          void *ectx);

int t_dup(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
          void *ectx)
{
    (void)ctx;
    char b[256];
    if (len + 1 > sizeof b)
        return 1;
    if (emit(ectx, in, len) < 0)
        return 0;
    memcpy(b, in, len);
    b[len] = 'b';
    emit(ectx, b, len + 1);
    return 0;
}

BELT_STAGE_DECLARE(t_fail);
int t_fail(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
           void *ectx);
const char *t_fail_strerror(void *ctx, int code);

int t_fail(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
           void *ectx)
{
    (void)ctx;
    if (memmem(in, len, "bad", 3) != NULL) {
        emit(ectx, "partial", 7); /* must be taken back */
        return 7;
    }
    emit(ectx, in, len);
    return 0;
}

const char *t_fail_strerror(void *ctx, int code)
{
    (void)ctx;
    return code == 7 ? "bad item" : NULL;
}

int t_noabi(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
            void *ectx);

int t_noabi(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
            void *ectx)
{
    (void)ctx;
    emit(ectx, in, len);
    return 0;
}

BELT_STAGE_DECLARE(t_badinit);
int t_badinit_init(const char *arg, void **ctx);
const char *t_badinit_strerror(void *ctx, int code);
int t_badinit(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
              void *ectx);

int t_badinit_init(const char *arg, void **ctx)
{
    (void)arg;
    *ctx = NULL;
    return 3;
}

const char *t_badinit_strerror(void *ctx, int code)
{
    (void)ctx;
    return code == 3 ? "no model" : NULL;
}

int t_badinit(void *ctx, const char *in, size_t len, belt_stage_emit *emit,
              void *ectx)
{
    (void)ctx;
    emit(ectx, in, len);
    return 0;
}
