/* pipeline/internal.h: what the pipeline engine's files share
 * (pipeline/engine.c, pipeline/batch.c, pipeline/reorder.c, pipeline/proc.c,
 * stage_*.c).  Not for the rest of belt: use pipeline/pipeline.h.
 *
 * Threads of a running pipeline: one source thread; per stage, one thread
 * per worker (a stream worker has two: a writer feeding the program's
 * stdin and a reader that owns the child); one sink thread; one monitor
 * thread that turns a stop request into closed channels.  All of them are
 * started with every signal blocked, so signals go to the CLI's threads
 * and a write to a closed pipe gives EPIPE instead of killing belt.
 */
#ifndef BELT_PIPELINE_INTERNAL_H
#define BELT_PIPELINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "belt/chan.h"
#include "belt/stage.h"
#include "exec/exec.h"
#include "pipeline/pipeline.h"

/* A batch closes at this many bytes of item text, whatever its count. */
#define BELT__BATCH_BYTES ((size_t)64 * 1024)
/* A single item may be at most this long (a longer line is an error). */
#define BELT__MAX_ITEM ((size_t)64 * 1024 * 1024)

/* ---- batches (pipeline/batch.c) ----------------------------------------- */

/* Items stored back to back, each followed by a '\n' (items never hold
 * one): item i is data[i ? end[i-1] : 0 .. end[i] - 1), and data[0..len)
 * is the batch as text lines, ready to be written to a pipe or a file as
 * it is.  A batch is owned by exactly one thread at a time; sending its
 * pointer on a channel hands it over. */
typedef struct belt__pbatch {
    struct belt__pbatch *next; /* free list, or a chain of outputs */
    uint64_t seq;              /* ordered mode: its number on its edge */
    uint32_t n, cap_items;
    uint32_t *end;
    char *data;
    size_t len, cap;
} belt__pbatch;

/* A pipeline's pool of spare batches (mutex-guarded stack, bounded). */
typedef struct belt__bpool {
    pthread_mutex_t mu;
    belt__pbatch *free; /* guarded by mu */
    size_t nfree;       /* guarded by mu */
    uint32_t items;     /* cap_items of every batch */
} belt__bpool;

int belt__bpool_init(belt__bpool *bp, uint32_t items);
void belt__bpool_destroy(belt__bpool *bp);
/* An empty batch (n 0, len 0), or NULL when memory runs out. */
belt__pbatch *belt__batch_get(belt__bpool *bp);
/* Gives b (and nothing chained to it) back.  NULL is a no-op. */
void belt__batch_put(belt__bpool *bp, belt__pbatch *b);
/* Appends an item (s[0..len), no '\n' in it) and its '\n'; BELT_OK or
 * BELT_ENOMEM (b unchanged).  b->n < b->cap_items. */
int belt__batch_add(belt__pbatch *b, const char *s, size_t len);
/* Appends the complete lines at the start of s[0..n) (each up to and
 * including its '\n') as items, with one copy: as many as fit below
 * max_items items in b (b->n < max_items <= b->cap_items) and until b->len
 * reaches BELT__BATCH_BYTES.  Stores the bytes taken (through the last
 * '\n' taken; 0 when s holds no '\n') in *used and the lines in *lines.
 * BELT_OK, or BELT_ENOMEM (b unchanged, *used and *lines 0). */
int belt__batch_add_lines(belt__pbatch *b, const char *s, size_t n,
                          uint32_t max_items, size_t *used, uint32_t *lines);

static inline const char *belt__batch_item(const belt__pbatch *b, uint32_t i,
                                           size_t *len)
{
    uint32_t s = i ? b->end[i - 1] : 0;
    *len = b->end[i] - s - 1;
    return b->data + s;
}

/* ---- edges -------------------------------------------------------------- */

/* The channel into a stage (or into the sink), carrying belt__pbatch *.
 *
 * Room (belt__edge_send_many only): a burst sender that finds ch full does
 * not block in the channel, where it would be woken for every slot a
 * receiver frees and send one batch per wake-up (a futex round trip per
 * batch, the whole time a slow stage holds the pipeline back).  It waits
 * on room_cv until ch is at most half full (or closed), then sends a burst
 * again: hysteresis, as a pipe's reader is woken per buffer, not per byte.
 * Protocol: the sender raises room_waiting (an acq_rel RMW), then reads
 * ch's length, under room_mu, and waits on room_cv while it is above half
 * and ch is open; a receiver, after taking batches, reads room_waiting
 * with an acq_rel RMW (+0), and if a sender waits and ch is at most half
 * full, it broadcasts room_cv under room_mu.  RMWs of one variable are
 * totally ordered, so the sender either sees the new length or is seen
 * waiting and woken.  Closing ch (belt__edge_close, the last
 * belt__edge_receiver_done) broadcasts too. */
typedef struct belt__edge {
    belt_chan *ch;
    uint32_t batch_items;      /* producers close batches at this count */
    _Atomic uint64_t queued;   /* items in ch (relaxed; for stats) */
    _Atomic int64_t full_ns;   /* producers' time blocked on a full ch */
    uint64_t next_seq;         /* ordered mode: only one thread sends */
    pthread_mutex_t room_mu;
    pthread_cond_t room_cv;    /* ch went down to half full, or closed */
    _Atomic int room_waiting;  /* senders waiting on room_cv */
    bool room_init;            /* room_mu and room_cv exist */
} belt__edge;

/* Sets up e's room wait (e zeroed, ch set): BELT_OK or BELT_ESYS. */
int belt__edge_init_room(belt__edge *e);
/* Frees e's room wait (and not ch).  No sender may wait. */
void belt__edge_destroy_room(belt__edge *e);
/* Closes e's channel and wakes its waiting senders.  Can't fail. */
void belt__edge_close(belt__edge *e);
/* One receiver of e is done (belt_chan_receiver_done); the last one closes
 * the channel and wakes its waiting senders. */
void belt__edge_receiver_done(belt__edge *e);

/* Sends b on e (blocking while full; the time blocked is counted).  On
 * BELT_CLOSED (the pipeline is stopping) b is given back to the pool. */
int belt__edge_send(belt__pipeline *p, belt__edge *e, belt__pbatch *b);
/* The same, adding the time it was blocked to *blocked_ns; a busy gauge
 * (not NULL) is lowered by one while it is blocked. */
int belt__edge_send_t(belt__pipeline *p, belt__edge *e, belt__pbatch *b,
                      int64_t *blocked_ns, _Atomic int *busy);
/* Sends b[0..n) on e in order with as few lock round trips and wake-ups
 * as the channel allows (blocking while full; the time blocked is added to
 * *blocked_ns and e->full_ns).  On BELT_CLOSED the batches not sent are
 * given back to the pool. */
int belt__edge_send_many(belt__pipeline *p, belt__edge *e, belt__pbatch **b,
                         size_t n, int64_t *blocked_ns);
/* Receives a batch: BELT_OK, BELT_CLOSED (drained and closed), or
 * BELT_EMPTY when nonblock and nothing is there. */
int belt__edge_recv(belt__edge *e, belt__pbatch **b, bool nonblock);
/* Receives at least one batch and whatever else is queued, at most max,
 * into b[0..): their number, or BELT_CLOSED (drained and closed), or
 * BELT_EMPTY when nonblock and nothing is there. */
int belt__edge_recv_many(belt__edge *e, belt__pbatch **b, size_t max,
                         bool nonblock);

/* ---- stages ------------------------------------------------------------- */

typedef struct belt__stage belt__stage;
typedef struct belt__reorder belt__reorder;

/* A stage's counters (relaxed atomics: each is exact on its own). */
typedef struct belt__scount {
    _Atomic uint64_t in, out, failed, filtered, timed;
    _Atomic int64_t busy_ns, time_sum;
    _Atomic int busy;
    _Atomic uint64_t hist[BELT__HIST_BUCKETS];
} belt__scount;

/* Adds n items that took t ns each to the histogram. */
void belt__scount_time(belt__scount *c, int64_t t, uint64_t n);

/* A function stage (plugin or builtin): one call per item. */
typedef struct belt__fnstage {
    belt_stage_fn *fn;
    belt_stage_init_fn *init;
    belt_stage_fini_fn *fini;
    belt_stage_strerror_fn *strerror_fn;
    /* builtins: per-worker set-up from the stage's config (instead of
     * init); worker is the 0-based worker index. */
    int (*init_cfg)(const belt__stage_config *sc, int worker, void **ctx);
    void *dl;                  /* dlopen handle (plugin) */
} belt__fnstage;

struct belt__stage {
    belt__pipeline *p;
    const belt__stage_config *cfg;
    size_t index;
    belt__edge *in, *out;
    belt__reorder *ro;         /* ordered mode, else NULL */
    belt__fnstage fs;
    belt__scount c;
    _Atomic int next_worker;   /* hands out worker indices */
    void *priv;                /* the kind's own state (stream workers) */
};

/* Where a worker's outputs go.  Items are appended to cur; between input
 * items, a full cur is sent on (unordered) or chained for the reorder
 * buffer (ordered).  Only its worker thread touches it.
 *
 * Burst mode (the source and stream readers, which turn one read() into
 * many batches): full batches wait in burst[] and go downstream together
 * (belt__edge_send_many) when BELT__BURST of them are ready or at
 * belt__out_flush, so the next thread wakes once per burst rather than
 * once per batch, and a stream writer downstream writes them with one
 * writev. */
#define BELT__BURST 16
typedef struct belt__out {
    belt__pipeline *p;
    belt__stage *st;           /* counts items_out; NULL for the source */
    belt__edge *edge;
    bool chain_mode;           /* ordered: keep outputs in head..tail */
    bool number;               /* ordered, single sender: stamp edge seqs */
    bool cut_nl;               /* outputs may hold '\n' (plugins): cut there */
    uint64_t emitted;          /* items emitted so far (filter detection) */
    belt__pbatch *cur;
    belt__pbatch *head, *tail;
    bool burst_mode;
    uint32_t nburst;           /* full batches waiting in burst */
    belt__pbatch *burst[BELT__BURST];
    uint32_t mark_n;           /* cur's n and len before the current item */
    size_t mark_len;
    int err;                   /* first error (BELT_CLOSED, BELT_ENOMEM) */
    int64_t blocked_ns;        /* time its sends spent blocked (a full
                                  channel downstream: not busy time) */
    _Atomic int *busy;         /* a gauge its worker holds raised around
                                  sends (function stages), or NULL */
} belt__out;

void belt__out_init(belt__out *o, belt__pipeline *p, belt__stage *st,
                    belt__edge *e, bool chain_mode);
/* The belt_stage_emit for o: appends an item (cut at its first '\n').
 * Returns 0 or a negative code (o->err) when the pipeline is stopping. */
int belt__out_emit(void *o, const char *data, size_t len);
/* Emits the complete lines at the start of s[0..n) (each without its
 * '\n') as items, filling at most the current batch (then sending it on if
 * full, as belt__out_between does): call it again with the rest.  Stores
 * the bytes taken in *used (0: no complete line in s) and the items in
 * *lines.  Returns 0, or o->err (BELT_CLOSED, BELT_ENOMEM). */
int belt__out_lines(belt__out *o, const char *s, size_t n, size_t *used,
                    uint32_t *lines);
/* Marks the start of an input item (for belt__out_discard). */
void belt__out_begin(belt__out *o);
/* Drops what was emitted since belt__out_begin (a failed item). */
void belt__out_discard(belt__out *o);
/* Between items: sends (or chains) cur if it is full.  Returns o->err. */
int belt__out_between(belt__out *o);
/* Sends (or chains) cur if it holds anything, and sends the burst.
 * Returns o->err. */
int belt__out_flush(belt__out *o);
/* A per-item stage's next batch from edge in: taken at once when one is
 * there; else what o holds is flushed first (unless the stage reorders,
 * flush_first false), so that nothing produced waits while the stage
 * does, and then it waits.  Returns BELT_OK with *b set, or anything else
 * when the stage should stop (the edge closed or was stopped, or the
 * flush failed). */
int belt__out_recv(belt__out *o, belt__edge *in, bool flush_first,
                   belt__pbatch **b);
/* Chain mode: takes the chain (flushing cur into it first). */
belt__pbatch *belt__out_take_chain(belt__out *o);
/* Gives back anything o still holds. */
void belt__out_release(belt__out *o);

/* ---- ordered mode (pipeline/reorder.c) ---------------------------------- */

belt__reorder *belt__reorder_new(belt__pipeline *p, belt__stage *st,
                                 size_t window);
void belt__reorder_free(belt__reorder *r);
/* Hands over the chain of outputs of input batch seq (NULL: none).  May
 * block while seq is a window or more ahead of the oldest unreleased
 * batch; may send batches downstream.  Returns BELT_OK or BELT_CLOSED
 * (stopping: the chain was given back). */
int belt__reorder_put(belt__reorder *r, uint64_t seq, belt__pbatch *chain);
/* Wakes every thread blocked in belt__reorder_put (stop NOW). */
void belt__reorder_stop(belt__reorder *r);

/* ---- the pipeline ------------------------------------------------------- */

enum { BELT__STOPREQ_NONE, BELT__STOPREQ_DRAIN, BELT__STOPREQ_NOW };

struct belt__pipeline {
    const belt__pipeline_config *cfg;
    size_t nstages;
    belt__stage *stage;
    belt__edge *edge;          /* nstages + 1: edge[i] into stage i,
                                  edge[nstages] into the sink */
    belt__bpool pool;
    belt__cancel drain;        /* fired by any stop: the source stops */
    belt__cancel now;          /* fired by stop NOW: children killed */
    int monitor_fd;            /* eventfd: wakes the monitor thread */
    _Atomic int stop_req;      /* BELT__STOPREQ_* (only ever raised) */
    _Atomic int user_stop;     /* belt__pipeline_stop() was called */
    _Atomic int finished;

    /* Threads: mu guards everything below up to `error`. */
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* signalled when a thread exits */
    pthread_t *th;
    size_t nth, cap_th;
    size_t exited;
    bool started, joined;
    pthread_t monitor;
    bool monitor_started;
    int outcome;
    char *error;               /* first error message (mu) */
    int error_outcome;         /* HALTED or ERROR (mu) */

    /* Dead letters (dl_mu). */
    pthread_mutex_t dl_mu;
    void *dl_file;             /* FILE *, opened on the first one */
    _Atomic uint64_t dead;

    _Atomic uint64_t source_items, sink_items;
    _Atomic int64_t t_start, t_end;
};

/* Records the first error (printf-style) with its outcome (HALTED or
 * ERROR) and requests a stop NOW.  Any thread. */
void belt__pipe_fail(belt__pipeline *p, int outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error like belt__pipe_fail, without stopping (what is
 * in flight still finishes). */
void belt__pipe_note(belt__pipeline *p, int outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True once a stop NOW was requested. */
static inline bool belt__pipe_stopping(belt__pipeline *p)
{
    return atomic_load_explicit(&p->stop_req, memory_order_relaxed) ==
           BELT__STOPREQ_NOW;
}

/* Writes a dead letter for item[0..len) of stage st with reason; extra is
 * a JSON fragment of more members (e.g. "\"exit\": 1") or NULL.  With
 * halt_on_error, also fails the pipeline (HALTED).  Any thread. */
void belt__dead_letter(belt__pipeline *p, belt__stage *st, const char *item,
                       size_t len, const char *reason, const char *extra);

/* Starts a pipeline thread running fn(arg) with every signal blocked.
 * BELT_OK or BELT_ESYS/BELT_ENOMEM (errno set). */
int belt__pipe_thread(belt__pipeline *p, void *(*fn)(void *), void *arg);

/* Starts the stage's cfg->workers threads running fn(st).  BELT_OK, or the
 * error of the first that could not start (the pipeline's error says so). */
int belt__stage_workers(belt__stage *st, void *(*fn)(void *));

/* ---- the stage kinds ---------------------------------------------------- */

/* Each prepares what its stage needs before threads start (BELT_OK, or a
 * negative code with the pipeline's error set), then starts its threads. */
int belt__source_start(belt__pipeline *p);      /* pipeline/ends.c */
int belt__sink_start(belt__pipeline *p);        /* pipeline/ends.c */
int belt__stage_fn_start(belt__stage *st);      /* pipeline/stage_fn.c */
int belt__stage_item_start(belt__stage *st);    /* pipeline/stage_item.c */
int belt__stage_stream_start(belt__stage *st);  /* pipeline/stage_stream.c */
/* Frees a stream stage's workers (after every thread was joined). */
void belt__stage_stream_free(belt__stage *st);
/* pipeline/stage_plugin.c: loads st's plugin into st->fs.  On failure fills
 * msg (dlerror text) and returns BELT_ECONFIG. */
int belt__plugin_load(const belt__stage_config *sc, belt__fnstage *fs,
                      char *msg, size_t size);
void belt__plugin_unload(belt__fnstage *fs);
/* pipeline/stage_builtin.c: fills fs with the builtin's functions. */
void belt__builtin_fns(const belt__stage_config *sc, belt__fnstage *fs);
/* pipeline/stage_builtin.c: BELT_OK, or BELT_ECONFIG with regerror text in msg. */
int belt__grep_check(const char *pattern, char *msg, size_t size);

/* ---- processes (pipeline/proc.c) ---------------------------------------- */

typedef struct belt__proc {
    pid_t pid;
    int pidfd;
    int in_fd;                 /* our end of its stdin, or -1 */
    int out_fd;                /* our end of its stdout, or -1 */
    int peek_fd;               /* keep_peek: a copy of the child's end of
                                  its stdin (FIONREAD: input left unread) */
} belt__proc;

/* Spawns argv (argv[0] looked up in PATH) in its own process group, with a
 * pipe to its stdin if want_in (else /dev/null) and from its stdout if
 * want_out (else belt's stdout); stderr is belt's.  Our ends are
 * O_NONBLOCK and close-on-exec.  Returns BELT_OK, or BELT_ESYS with msg
 * filled ("command not found: x"). */
int belt__proc_spawn(belt__proc *pr, char *const *argv, bool want_in,
                     bool want_out, bool keep_peek, char *msg, size_t size);
/* Kills what is left of its group, reaps it, closes its fds and stores
 * the wait status.  Idempotent. */
void belt__proc_finish(belt__proc *pr, int *wstatus);
/* Describes a wait status: "exit 1", "signal 9 (Killed)". */
void belt__wstatus_text(int wstatus, char *buf, size_t size);
/* Builds the argv of a stage's command (sh -c run, or argv), with "{}"
 * replaced by item (shell-quoted in run) when item is not NULL.  The
 * result is one allocation (free() it); NULL when memory runs out. */
char **belt__stage_argv(const belt__stage_config *sc, const char *item,
                        size_t len);

#endif /* BELT_PIPELINE_INTERNAL_H */
