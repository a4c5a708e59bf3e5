/* belt/stage.h: the plugin ABI of belt pipelines: a pipeline stage written
 * as a C function in a shared library.
 *
 * A pipeline config names a plugin stage as
 *     {"name": "score", "plugin": "./libscore.so", "symbol": "score",
 *      "arg": "model=small", "workers": 2}
 * belt dlopen()s the library (RTLD_NOW | RTLD_LOCAL) once per pipeline and
 * looks up, for symbol "score":
 *
 *   score            the stage function (belt_stage_fn), required;
 *   score_belt_abi   a `const int` equal to the BELT_STAGE_ABI the plugin was
 *                    built against, required: write BELT_STAGE_DECLARE(score)
 *                    once in the plugin's source.  A missing or different
 *                    value is a config error (nothing runs);
 *   score_init       optional (belt_stage_init_fn): called once per worker,
 *                    in that worker's thread, before its first item;
 *   score_fini       optional (belt_stage_fini_fn): called once per worker,
 *                    in that worker's thread, after its last item (also when
 *                    the pipeline stops early), if init succeeded;
 *   score_strerror   optional (belt_stage_strerror_fn): the message for a
 *                    failed item, written to the dead-letter file.
 *
 * Items.  An item is a line of the pipeline's input without its newline
 * (any bytes but '\n'; not NUL-terminated: use in_len).  The function is
 * called once per item and passes 0, 1 or more output items downstream by
 * calling emit(emit_ctx, data, len): 0 calls filter the item out, several
 * fan it out.  An output item must not contain '\n' (belt cuts it there:
 * the part after the first '\n' is dropped); it may be empty.
 *
 * Results.  The function returns 0 when the item succeeded (its emitted
 * outputs go on), or any non-zero value when it failed: its outputs are
 * discarded, the input item goes to the dead-letter file with the stage's
 * name and the reason (score_strerror(ctx, code) when the plugin has it,
 * else "plugin returned <code>"), and the pipeline goes on (or stops, with
 * "halt_on_error": true).
 *
 * Ownership.  `in` is valid only during the call (do not keep the pointer).
 * emit copies the bytes before it returns; the plugin keeps ownership of
 * what it passes.  The string `arg` given to init is valid only during the
 * call.  ctx is the plugin's: belt only passes it back.
 *
 * Threads.  A stage with "workers": n runs n threads.  Each worker has its
 * own ctx (from its own init call), and calls fn with that ctx only from its
 * own thread, one item at a time; so fn runs concurrently in different
 * workers, with different ctxs, and must not touch mutable state shared
 * between them without its own locking.  Without an init function ctx is
 * NULL in every call.
 *
 * emit returns 0, or a negative value when belt can take no more output
 * (the pipeline is stopping, or memory ran out); the function should then
 * return at once (its return value is then ignored).
 *
 * What a plugin must not do: call exit(), longjmp out of fn, unload itself,
 * or block forever (a stage's "timeout" does not apply to plugins: belt
 * cannot interrupt a C function).  belt does not catch crashes in plugins.
 */
#ifndef BELT_STAGE_H
#define BELT_STAGE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this ABI.  Raised whenever a type below changes. */
#define BELT_STAGE_ABI 1

/* Passes one output item (len bytes at data, copied) downstream.  Returns 0,
 * or a negative value when no more output is wanted (see above). */
typedef int belt_stage_emit(void *emit_ctx, const char *data, size_t len);

/* The stage function: processes the item in[0 .. in_len), calling emit for
 * each output item.  Returns 0 on success, non-zero for a failed item. */
typedef int belt_stage_fn(void *ctx, const char *in, size_t in_len,
                          belt_stage_emit *emit, void *emit_ctx);

/* Optional per-worker set-up: arg is the stage's "arg" string ("" when the
 * config has none).  Stores the worker's context in *ctx and returns 0;
 * non-zero fails the pipeline's start (a message from strerror(NULL, code)
 * when the plugin has one). */
typedef int belt_stage_init_fn(const char *arg, void **ctx);

/* Optional per-worker tear-down of what init made.  Can't fail. */
typedef void belt_stage_fini_fn(void *ctx);

/* Optional: a static or ctx-owned message for the non-zero code that fn
 * (or init, with ctx NULL) returned; it must stay valid until the next call
 * in the same worker.  May return NULL ("plugin returned <code>"). */
typedef const char *belt_stage_strerror_fn(void *ctx, int code);

/* Put once in a plugin's source, at file scope, for each stage function
 * (name: the function's name, the config's "symbol"):
 *     BELT_STAGE_DECLARE(score);
 * It defines the exported constant score_belt_abi that belt checks. */
#define BELT_STAGE_DECLARE(name)                                              \
    extern const int name##_belt_abi;                                         \
    const int name##_belt_abi = BELT_STAGE_ABI

#ifdef __cplusplus
}
#endif

#endif /* BELT_STAGE_H */
