/* pipeline/pipeline.h: belt pipelines: a source, a chain of stages, a sink,
 * joined by bounded channels.  Internal (the CLI's `belt run`/`belt validate`
 * on a pipeline config and the tests use it); every name is belt__.
 *
 * Files: pipeline/config.c (loading and checking a config: this header's
 * belt__pipeline_config), pipeline/engine.c (the engine: threads, wiring,
 * stop, errors, dead letters, stats), pipeline/batch.c (batches, edges, a
 * worker's output side), pipeline/ends.c (source and sink),
 * pipeline/reorder.c (ordered mode), pipeline/stage_fn.c (the worker loop of
 * plugin and builtin stages), pipeline/stage_plugin.c,
 * pipeline/stage_builtin.c, pipeline/stage_item.c, pipeline/stage_stream.c
 * (the stage kinds), pipeline/proc.c (spawning processes). pipeline/internal.h is what those share.
 *
 * ---- The config (the "pipeline" object of a JSON file) -------------------
 *
 *   {"pipeline": {
 *      "source": {"file": "in.txt"} | {"command": "sh text"} |
 *                {"stdin": true} | {"range": {"from": 1, "to": 100, "step": 1}},
 *      "stages": [ stage, ... ],          at least one
 *      "sink":   {"file": "out.txt"} | {"stdout": true} | {"command": "sh text"},
 *                                         (default: stdout)
 *      "ordered": false,                  keep source order at the sink
 *      "reorder_window": 256,             ordered mode: batches per stage
 *      "halt_on_error": false,
 *      "dead_letter": "path",             default: see below
 *      "batch": 256                       most items per batch on an edge
 *   }, "description": "...", "$schema": "..."}
 *
 * A stage: {"name": "fetch", "workers": 1, "capacity": 64, then ONE of
 *   "run": "sh text" | "argv": ["prog", "arg", ...]  with
 *       "mode": "per-item" (default) | "stream", "timeout": "30s",
 *       "stall_timeout": "10s" (stream only);
 *   "plugin": "path.so", "symbol": "fn", "arg": "text";
 *   "builtin": "identity" | "grep" | "sample", with
 *       grep:   "pattern": "ERE" (regcomp REG_EXTENDED|REG_NOSUB),
 *               "invert": false;
 *       sample: "every": N (keep item 1, N+1, 2N+1, ... of each worker's
 *               input) or "rate": p in (0, 1] with "seed": integer
 *               (default 1): keep each item with probability p.
 * }
 * "name" defaults to "stage<i>" (1-based); names must be distinct.
 * "workers" is 1 .. BELT__PIPE_MAX_WORKERS; "capacity" (items buffered in
 * the channel into the stage) 0 .. BELT__PIPE_MAX_CAPACITY, default 64 for
 * a per-item stage (each item is a process: a few in hand are plenty) and
 * 4096 for the others (16 batches of 256: with fewer slots the threads
 * hand over nearly every batch by parking and waking each other, which
 * measured 2.4x slower for three identity stages with more threads than
 * cores).
 *
 * Paths (source/sink file, plugin, dead_letter) are relative to the current
 * directory, as commands are; commands run in the current directory with
 * belt's environment.  Per-item "run" strings get the item substituted for
 * every "{}" (shell-quoted: the item is one word to sh); "argv" items get
 * it substituted for "{}" verbatim (no shell).  The item is also the
 * child's stdin, with a trailing newline.
 *
 * Dead letters go to "dead_letter"; by default, with a file sink, to
 * "<sink file>.dead.jsonl", else to "belt-dead-letters.jsonl" in the
 * current directory.  The file is created only when the first item fails.
 * One JSON object a line:
 *   {"stage": "fetch", "item": "the input line", "reason": "exit 1",
 *    "exit": 1}            (per-item: exit code; or "signal": 9;
 *                           plugin: "code": n; timeout: "reason": "timed
 *                           out after 30s")
 *
 * Checks at load time (belt__pipeline_load; the CLI exits 2, nothing runs):
 * JSON and types, unknown keys (did you mean), an unknown "mode" or
 * "builtin" (did you mean), a stage with none or two of run/argv/plugin/
 * builtin, a grep pattern that does not compile (regerror text), a plugin
 * that dlopen() cannot load or without its symbol or ABI constant (dlerror
 * text; see belt/stage.h), a source file that does not exist or cannot be
 * read, a sink file or dead-letter file that cannot be written (its
 * directory must exist and be writable; an existing file must be writable),
 * "ordered": true with a stream stage of more than one worker (a stream
 * program's output lines are not tied to its input lines, so order across
 * workers cannot be restored), and "reorder_window": 0 in ordered mode (no
 * finished batch could ever be released: a deadlock).
 * Capacity 0 is legal: the channel into that stage is a rendezvous (a batch
 * is handed from a producer thread straight to a free worker).  It cannot
 * deadlock here because a pipeline is a chain without cycles in which every
 * hand-off is between different threads, each of which only waits on its
 * own input, its own output, or its own child process.
 *
 * ---- How items move ---------------------------------------------------------
 *
 * Items travel in batches (up to "batch" items or 64 KiB of text per
 * batch; a per-item stage takes batches of 1 so that its workers share the
 * load item by item).  An edge's channel holds batches; its capacity in
 * batches is ceil(capacity / batch size), 0 staying 0.  A producer flushes
 * a partial batch whenever it would otherwise wait for input (so a slow
 * command source still streams).  Memory is thus bounded by, per stage,
 * (channel batches + 2 per worker) batches, plus BELT__BURST per stream
 * worker and for the source (held to be sent, or written, together),
 * whatever the input's length.
 *
 * Ordered mode: each batch on an edge carries a sequence number (0, 1, 2,
 * ... per edge).  A stage's workers take batches in any order; the outputs
 * of one input batch are handed to the stage's reorder buffer, which
 * releases them downstream strictly in input sequence and re-batches them
 * with fresh sequence numbers.  A filtered input releases an empty slot, so
 * tracking never stalls; a fan-out just adds items to its slot.  The
 * window ("reorder_window" batches) bounds the buffer: a worker that
 * finishes a batch "window" or more ahead of the oldest unfinished one
 * waits until that one is released, and so stops taking input: upstream
 * fills up and blocks (backpressure), memory stays bounded.  A single
 * worker stage (including every ordered stream stage) releases directly.
 *
 * ---- Counting -----------------------------------------------------------------
 *
 * Per stage: items_in (taken from its channel), items_out (sent on),
 * failed (gone to dead letters), filtered (inputs that succeeded with no
 * output).  For per-item, plugin and builtin stages
 *     items_in = succeeded + failed, filtered <= succeeded
 * and, without fan-out, items_out = items_in - failed - filtered.  A stream
 * stage cannot tie outputs to inputs: at the end its filtered is
 * max(0, items_in - failed - items_out).  For a pipeline without fan-out
 * that ran to the end:
 *     source.items = sink.items + dead_letters + sum of stages' filtered.
 */
#ifndef BELT_PIPELINE_H
#define BELT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "belt/config.h"

#define BELT__PIPE_MAX_STAGES 64
#define BELT__PIPE_MAX_WORKERS 1024
#define BELT__PIPE_MAX_CAPACITY 1000000
#define BELT__PIPE_DEFAULT_CAPACITY 64         /* per-item stages */
#define BELT__PIPE_DEFAULT_CAPACITY_FAST 4096  /* every other kind */
#define BELT__PIPE_DEFAULT_BATCH 256
#define BELT__PIPE_DEFAULT_WINDOW 256
#define BELT__PIPE_DEFAULT_STALL_NS ((int64_t)10 * 1000000000)

/* ---- the parsed config -------------------------------------------------- */

typedef enum belt__src_kind {
    BELT__SRC_FILE, BELT__SRC_COMMAND, BELT__SRC_STDIN, BELT__SRC_RANGE
} belt__src_kind;

typedef enum belt__sink_kind {
    BELT__SNK_STDOUT, BELT__SNK_FILE, BELT__SNK_COMMAND
} belt__sink_kind;

typedef enum belt__stage_kind {
    BELT__STAGE_ITEM,    /* per-item: a process per item */
    BELT__STAGE_STREAM,  /* one long-lived process per worker */
    BELT__STAGE_PLUGIN,  /* a C function from a shared library */
    BELT__STAGE_BUILTIN
} belt__stage_kind;

typedef enum belt__builtin {
    BELT__BI_IDENTITY, BELT__BI_GREP, BELT__BI_SAMPLE
} belt__builtin;

typedef struct belt__stage_config {
    char *name;
    belt__stage_kind kind;
    int workers;              /* >= 1 */
    size_t capacity;          /* items in the channel into the stage */
    /* ITEM, STREAM: exactly one of run (for sh -c) and argv is set. */
    char *run;
    char **argv;              /* NULL-terminated */
    int64_t timeout_ns;       /* ITEM: per item; 0: none */
    int64_t stall_ns;         /* STREAM: no-output stall limit */
    /* PLUGIN */
    char *plugin, *symbol, *arg;
    /* BUILTIN */
    belt__builtin builtin;
    char *pattern;            /* grep: ERE */
    bool invert;              /* grep: keep non-matching lines */
    uint64_t every;           /* sample: keep 1 in every; 0: use rate */
    double rate;              /* sample: keep probability */
    uint64_t seed;            /* sample */
} belt__stage_config;

typedef struct belt__pipeline_config {
    char *source_name;        /* the config file, for messages */
    belt__src_kind src;
    char *src_path;           /* FILE */
    char *src_command;        /* COMMAND (sh -c) */
    int64_t range_from, range_to, range_step; /* RANGE: to inclusive */
    belt__stage_config *stages;
    size_t nstages;
    belt__sink_kind sink;
    char *sink_path;          /* FILE */
    char *sink_command;       /* COMMAND (sh -c) */
    bool ordered;
    size_t reorder_window;    /* batches */
    bool halt_on_error;
    char *dead_letter;        /* always set after loading (the default) */
    size_t batch;             /* most items per batch */
} belt__pipeline_config;

/* True when the JSON text (len bytes) is a pipeline config: an object with
 * a "pipeline" key.  Malformed JSON gives false (the job loader then
 * reports the syntax error).  Can't fail. */
bool belt__pipeline_is_config(const char *text, size_t len);

/* Same for a file: false also when it cannot be read. */
bool belt__pipeline_is_config_file(const char *path);

/* Loads and fully checks (see the top of this file) the pipeline config in
 * the file at path.  On success stores a config in *out that the caller
 * frees with belt__pipeline_config_free() and returns BELT_OK.  On failure
 * returns BELT_ECONFIG (or BELT_ENOMEM) with *err filled as
 * belt_config_load() fills it (print it with belt_config_error_format());
 * *out is NULL. */
int belt__pipeline_load(const char *path, belt__pipeline_config **out,
                        belt_config_error *err);

/* Same from a NUL-terminated string; source names it in errors (NULL:
 * "<string>"). */
int belt__pipeline_load_string(const char *json, const char *source,
                               belt__pipeline_config **out,
                               belt_config_error *err);

/* Frees a config.  NULL is a no-op. */
void belt__pipeline_config_free(belt__pipeline_config *cfg);

/* The display name of a stage's kind: "per-item", "stream", "plugin",
 * "identity", "grep", "sample".  Static string; can't fail. */
const char *belt__stage_kind_name(const belt__stage_config *s);

/* ---- running ------------------------------------------------------------ */

typedef struct belt__pipeline belt__pipeline;

/* How a finished pipeline ended (belt__pipeline_wait's result). */
typedef enum belt__pipe_outcome {
    BELT__PIPE_RUNNING = -1, /* not finished yet */
    BELT__PIPE_OK = 0,       /* everything reached the sink; no dead letter */
    BELT__PIPE_FAILED_ITEMS, /* ran to the end; some items are dead letters */
    BELT__PIPE_HALTED,       /* halt_on_error: stopped at the first failure */
    BELT__PIPE_STOPPED,      /* belt__pipeline_stop() was called */
    BELT__PIPE_ERROR         /* belt__pipeline_error() says what: a stalled
                                or early-exiting stream program, an unwritable
                                sink, a source that failed, a plugin init
                                that failed, out of memory */
} belt__pipe_outcome;

/* How belt__pipeline_stop() stops. */
typedef enum belt__stop_mode {
    BELT__STOP_DRAIN,    /* the source stops reading; what is in flight
                            finishes and reaches the sink */
    BELT__STOP_NOW       /* children are killed, channels closed; what is
                            in flight is dropped (counted as not arrived) */
} belt__stop_mode;

/* Creates a pipeline for cfg (which must outlive it; it is only read).
 * Nothing starts yet.  Returns NULL when memory runs out. */
belt__pipeline *belt__pipeline_create(const belt__pipeline_config *cfg);

/* Starts every thread (source, stage workers, sink) and returns at once.
 * Returns BELT_OK, or a negative code when the pipeline could not start
 * (belt__pipeline_error() says why; whatever had started is stopped and
 * joined, and the pipeline can only be freed).  Call once. */
int belt__pipeline_start(belt__pipeline *p);

/* Waits up to timeout_ns (negative: forever, 0: just look) for the
 * pipeline to finish.  Returns its outcome (>= 0) once finished (every
 * thread joined, every child reaped, the sink flushed and closed), or
 * BELT__PIPE_RUNNING on timeout.  Blocks on a condition variable, never
 * polls.  May be called again after it finished (same outcome).  Only one
 * thread may wait at a time. */
int belt__pipeline_wait(belt__pipeline *p, int64_t timeout_ns);

/* Convenience: start + wait forever.  Returns the outcome, or a negative
 * code if it could not start. */
int belt__pipeline_run(belt__pipeline *p);

/* Requests a stop.  Async-signal-safe and thread-safe (atomic stores and
 * a write() to an eventfd), so a signal handler or a signal-handling
 * thread may call it; returns at once.  A second call may turn a DRAIN
 * into NOW (never the reverse).  Does nothing once the pipeline finished. */
void belt__pipeline_stop(belt__pipeline *p, belt__stop_mode mode);

/* The message that explains a BELT__PIPE_ERROR or BELT__PIPE_HALTED
 * outcome (or a failed start), naming the stage, e.g.
 *   stage parse: program produced no output for 10s with 37 items
 *   outstanding; it may block-buffer its stdout: try stdbuf -oL or line
 *   buffering
 * NULL when there is none.  Valid until the pipeline is freed. */
const char *belt__pipeline_error(const belt__pipeline *p);

/* Frees the pipeline.  If it is still running it is stopped (NOW) and
 * waited for first.  NULL is a no-op. */
void belt__pipeline_free(belt__pipeline *p);

/* ---- statistics (for the live display and the summary) ------------------ */

/* Item-time histogram: bucket b counts items that took [2^b, 2^(b+1)) ns
 * (bucket 0 also counts 0 ns). */
#define BELT__HIST_BUCKETS 48

typedef struct belt__stage_stats {
    const char *name;         /* the config's; valid while the config is */
    const char *kind;         /* belt__stage_kind_name() */
    int workers;
    int workers_busy;         /* now processing an item (or batch; stream:
                                 with items outstanding); a function
                                 stage's worker blocked on a full channel
                                 downstream is not counted */
    uint64_t items_in, items_out, failed, filtered;
    uint64_t queued;          /* items in the channel into the stage now */
    size_t capacity;          /* the configured capacity, in items */
    size_t chan_len, chan_cap; /* the same channel in batches */
    int64_t busy_ns;          /* summed over workers: time spent on items,
                                 not counting time blocked on a full channel
                                 downstream; stream stages: time with items
                                 outstanding in the program */
    int64_t full_ns;          /* time producers spent blocked because this
                                 stage's channel was full (the bottleneck
                                 signal: high means this stage is slow) */
    uint64_t hist[BELT__HIST_BUCKETS]; /* item times; for plugin and
                                 builtin stages each item of a batch counts
                                 the batch's mean item time (no clock in
                                 the per-item loop) */
    uint64_t timed;           /* items in hist */
    int64_t time_sum_ns;      /* sum of item times (for the mean) */
} belt__stage_stats;

typedef struct belt__pipeline_stats {
    uint64_t source_items;    /* items the source produced */
    uint64_t sink_items;      /* items written to the sink */
    uint64_t dead_letters;    /* items written to the dead-letter file */
    int64_t sink_full_ns;     /* last stage blocked on the sink's channel */
    int64_t elapsed_ns;       /* since start (until the end once finished) */
    bool finished;
    size_t nstages;
    belt__stage_stats *stage; /* caller's array of nstages (see below) */
} belt__pipeline_stats;

/* Fills *st with a snapshot of the counters.  st->stage must point to an
 * array of at least cfg->nstages entries (st->nstages is set).  Any
 * thread, any time between create and free; the counters are read one by
 * one (relaxed atomics), so a snapshot taken while running may be a few
 * items inconsistent; after the pipeline finished it is exact.  Can't
 * fail. */
void belt__pipeline_stats_get(const belt__pipeline *p, belt__pipeline_stats *st);

/* The q-quantile (0 < q <= 1) of a histogram, as the upper bound of the
 * bucket it falls in (so p99 is an over-estimate by at most 2x); 0 for an
 * empty histogram.  Can't fail. */
int64_t belt__hist_quantile(const uint64_t *hist, double q);

#endif /* BELT_PIPELINE_H */
