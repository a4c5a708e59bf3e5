/* upper.c: an example plugin stage for belt pipelines (belt/stage.h).
 *
 * Two stage functions in one shared library:
 *
 *   upper   upper-cases each item (ASCII letters) and passes it on: the
 *           smallest useful stage, no state, no init;
 *   reject  fails every item that contains the stage's "arg" text (so it
 *           goes to the dead-letter file with the reason below) and passes
 *           the others on unchanged: shows init (one context per worker,
 *           made from "arg"), fini and strerror.
 *
 * Build (make does it too, into configs/pipelines/plugins/.libs/upper.so):
 *     cc -shared -fPIC -O2 -I include -o upper.so \
 *         configs/pipelines/plugins/upper.c
 * and use it in a pipeline config:
 *     {"name": "shout", "plugin": "./upper.so", "symbol": "upper"}
 *     {"name": "drop-admin", "plugin": "./upper.so", "symbol": "reject",
 *      "arg": "/wp-admin", "workers": 2}
 */
#include <stdlib.h>
#include <string.h>

#include "belt/stage.h"

BELT_STAGE_DECLARE(upper);
BELT_STAGE_DECLARE(reject);

int upper(void *ctx, const char *in, size_t in_len, belt_stage_emit *emit,
          void *emit_ctx);
int reject(void *ctx, const char *in, size_t in_len, belt_stage_emit *emit,
           void *emit_ctx);
int reject_init(const char *arg, void **ctx);
void reject_fini(void *ctx);
const char *reject_strerror(void *ctx, int code);

/* ---- upper ------------------------------------------------------------- */

int upper(void *ctx, const char *in, size_t in_len, belt_stage_emit *emit,
          void *emit_ctx)
{
    char small[512];
    (void)ctx;
    if (in_len == 0) {
        emit(emit_ctx, in, 0); /* an empty item stays empty */
        return 0;
    }
    char *out = in_len <= sizeof small ? small : malloc(in_len);
    if (out == NULL)
        return 1; /* the item goes to the dead letters: "plugin returned 1" */
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        out[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    emit(emit_ctx, out, in_len); /* copies; a negative return: stopping */
    if (out != small)
        free(out);
    return 0;
}

/* ---- reject ------------------------------------------------------------ */

#define REJECT_MATCHED 1
#define REJECT_NO_ARG 2

struct reject_ctx {
    char *needle;
    size_t len;
};

/* Called once in each worker's thread: each worker gets its own copy. */
int reject_init(const char *arg, void **ctx)
{
    if (arg[0] == '\0')
        return REJECT_NO_ARG;
    struct reject_ctx *c = malloc(sizeof *c);
    size_t len = strlen(arg);
    if (c == NULL || (c->needle = malloc(len + 1)) == NULL) {
        free(c);
        return REJECT_NO_ARG;
    }
    memcpy(c->needle, arg, len + 1);
    c->len = len;
    *ctx = c;
    return 0;
}

void reject_fini(void *ctx)
{
    struct reject_ctx *c = ctx;
    free(c->needle);
    free(c);
}

int reject(void *ctx, const char *in, size_t in_len, belt_stage_emit *emit,
           void *emit_ctx)
{
    const struct reject_ctx *c = ctx;
    for (size_t i = 0; i + c->len <= in_len; i++)
        if (memcmp(in + i, c->needle, c->len) == 0)
            return REJECT_MATCHED; /* a dead letter, with the reason below */
    emit(emit_ctx, in, in_len);
    return 0;
}

const char *reject_strerror(void *ctx, int code)
{
    (void)ctx;
    switch (code) {
    case REJECT_MATCHED: return "contains the rejected text";
    case REJECT_NO_ARG: return "reject needs \"arg\": the text to reject";
    default: return NULL;
    }
}
