/* bench_chan.c: `belt bench chan`, the channel throughput benchmark.
 *
 * What it measures: the wall-clock time to move M one-word messages (an
 * 8-byte integer, as crossbeam's `Message([usize; 1])`) through belt channels
 * in six traffic patterns, each at four capacities.  The matrix is the one of
 * crossbeam-channel's benchmarks/ folder (crossbeam-channel.rs, mpsc.rs,
 * go.go), so the numbers line up with the peers in bench/peers/ (Go channels,
 * Rust std::sync::mpsc, crossbeam-channel), which do exactly the same work:
 *
 *   seq          one thread sends all M, then receives all M
 *   spsc         1 sender thread, 1 receiver thread
 *   mpsc         THREADS senders (M/THREADS each), 1 receiver
 *   mpmc         THREADS senders, THREADS receivers, one channel
 *   select_rx    THREADS channels, one sender thread on each; one receiver
 *                selecting over the THREADS receive operations
 *   select_both  THREADS threads each selecting a send over the THREADS
 *                channels, THREADS threads each selecting a receive
 *
 * Capacities: 0 (rendezvous), 1, N (= M, crossbeam's `bounded(MESSAGES)`:
 * never full) and unbounded.  seq is skipped ("n/a") at 0 and 1, where a
 * lone thread sending before receiving would block forever.  THREADS is 4 and
 * M defaults to crossbeam's 5,000,000, rounded down to a multiple of THREADS.
 *
 * How a case runs: the channels are created, every thread is started and
 * parks at a start gate; when all have arrived the main thread opens the gate
 * and reads CLOCK_MONOTONIC, joins every thread and reads it again.  Thread
 * creation is thus outside the time; channel teardown is too.  seq runs on
 * the main thread.
 *
 * Termination and checking: senders are registered with
 * belt_chan_add_senders() and call belt_chan_sender_done() when finished, so
 * receivers simply receive until BELT_CLOSED (a select arm whose channel
 * reports closed is switched off by setting its chan to NULL).  A message is
 * (sender << 40 | sequence); every receiver counts, sums the sequence numbers
 * and checks that, per channel and per sender, sequence numbers only grow
 * (the FIFO-per-sender promise of belt/chan.h).  After the joins the totals
 * must match exactly and every channel must be drained, otherwise the case
 * fails with a message naming what was lost, duplicated or reordered, and
 * the program exits 1.  A case that does not finish within --timeout seconds
 * is reported as a hang (deadlock, lost wake-up or lost message) and the
 * benchmark stops at once: its threads are still blocked, so nothing can be
 * freed.  Errors returned by belt calls are reported with their names.
 *
 * Output: a table, one row per case, one column per capacity, in seconds
 * (3 decimals); with --csv, `case,cap,seconds` lines, the format the peers
 * print and scripts/bench joins on.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "belt/chan.h"
#include "cli/cli.h"

enum { THREADS = 4 };
#define DEFAULT_MESSAGES ((size_t)5000000)
#define SEQ_SHIFT 40
#define SEQ_MASK ((UINT64_C(1) << SEQ_SHIFT) - 1)

enum bench_case { CASE_SEQ, CASE_SPSC, CASE_MPSC, CASE_MPMC, CASE_SELECT_RX,
                  CASE_SELECT_BOTH, NCASES };
static const char *const case_names[NCASES] = {
    "seq", "spsc", "mpsc", "mpmc", "select_rx", "select_both"
};

enum bench_cap { CAP_0, CAP_1, CAP_N, CAP_UNBOUNDED, NCAPS };
static const char *const cap_names[NCAPS] = { "0", "1", "N", "unbounded" };

/* ---- one receiver's tally ----------------------------------------------- */

/* What a receiver saw.  Owned by its thread until joined. */
struct tally {
    uint64_t count;
    uint64_t sum;                        /* of sequence numbers */
    uint64_t reordered;
    uint64_t bad_sender;                 /* sender id out of range */
    uint64_t next[THREADS][THREADS];     /* [channel][sender]: lowest allowed */
};

static inline void tally_add(struct tally *t, size_t chan, uint64_t msg)
{
    uint64_t sender = msg >> SEQ_SHIFT, seq = msg & SEQ_MASK;

    if (sender >= THREADS) {
        t->bad_sender++;
        return;
    }
    if (seq < t->next[chan][sender])
        t->reordered++;
    t->next[chan][sender] = seq + 1;
    t->count++;
    t->sum += seq;
}

/* ---- one run of one case ------------------------------------------------ */

enum role { ROLE_SEND, ROLE_RECV, ROLE_SELECT_SEND, ROLE_SELECT_RECV };
static const char *const role_names[] = {
    "sender", "receiver", "select-sender", "select-receiver"
};

struct run;

struct worker {
    struct run *run;
    pthread_t tid;
    bool started;
    enum role role;
    int id;             /* sender id (message tag) or receiver number */
    size_t chan;        /* ROLE_SEND / ROLE_RECV: which channel */
    /* results, read by the main thread after the join */
    struct tally tally;
    int err;            /* first belt error, BELT_OK if none */
    const char *err_op; /* which call returned it */
};

/* The start gate: workers check in and wait for `go`; the main thread waits
 * until all have checked in, then opens it.  go: 0 wait, 1 run, -1 abort
 * (thread creation failed). */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;        /* protected by mu */
    int go;             /* protected by mu */
};

struct run {
    size_t per_sender;                  /* messages each sender sends */
    size_t nchan;
    belt_chan *chan[THREADS];
    struct gate gate;
    int nworkers;
    struct worker w[2 * THREADS];
};

/* Unblocks everyone after a worker failed, so the case ends (and fails)
 * instead of hanging. */
static void run_abort(struct run *r)
{
    for (size_t i = 0; i < r->nchan; i++)
        belt_chan_close(r->chan[i]);
}

static void worker_fail(struct worker *w, const char *op, int err)
{
    if (w->err == BELT_OK) {
        w->err = err;
        w->err_op = op;
    }
    run_abort(w->run);
}

static inline uint64_t message(int sender, size_t seq)
{
    return ((uint64_t)sender << SEQ_SHIFT) | (uint64_t)seq;
}

static void do_send(struct worker *w)
{
    struct run *r = w->run;
    belt_chan *ch = r->chan[w->chan];
    int rc;

    for (size_t i = 0; i < r->per_sender; i++) {
        uint64_t m = message(w->id, i);
        if ((rc = belt_chan_send(ch, &m)) != BELT_OK) {
            worker_fail(w, "belt_chan_send", rc);
            return;
        }
    }
    if ((rc = belt_chan_sender_done(ch)) != BELT_OK)
        worker_fail(w, "belt_chan_sender_done", rc);
}

static void do_recv(struct worker *w)
{
    belt_chan *ch = w->run->chan[w->chan];
    uint64_t m;
    int rc;

    while ((rc = belt_chan_recv(ch, &m)) == BELT_OK)
        tally_add(&w->tally, w->chan, m);
    if (rc != BELT_CLOSED)
        worker_fail(w, "belt_chan_recv", rc);
}

static void do_select_send(struct worker *w)
{
    struct run *r = w->run;
    belt_op ops[THREADS];
    uint64_t m = 0;
    int rc;

    for (size_t c = 0; c < r->nchan; c++)
        ops[c] = belt_op_send(r->chan[c], &m);
    for (size_t i = 0; i < r->per_sender; i++) {
        m = message(w->id, i);
        rc = belt_select(ops, r->nchan, -1);
        if (rc < 0) {
            worker_fail(w, "belt_select", rc);
            return;
        }
        if (ops[rc].status != BELT_OK) {
            worker_fail(w, "belt_select (send arm)", ops[rc].status);
            return;
        }
    }
    for (size_t c = 0; c < r->nchan; c++)
        if ((rc = belt_chan_sender_done(r->chan[c])) != BELT_OK)
            worker_fail(w, "belt_chan_sender_done", rc);
}

static void do_select_recv(struct worker *w)
{
    struct run *r = w->run;
    belt_op ops[THREADS];
    uint64_t m[THREADS];
    size_t open = r->nchan;
    int rc;

    for (size_t c = 0; c < r->nchan; c++)
        ops[c] = belt_op_recv(r->chan[c], &m[c]);
    while (open > 0) {
        rc = belt_select(ops, r->nchan, -1);
        if (rc < 0) {
            worker_fail(w, "belt_select", rc);
            return;
        }
        if (ops[rc].status == BELT_OK) {
            tally_add(&w->tally, (size_t)rc, m[rc]);
        } else if (ops[rc].status == BELT_CLOSED) {
            ops[rc].chan = NULL;        /* a NULL arm is never ready */
            open--;
        } else {
            worker_fail(w, "belt_select (recv arm)", ops[rc].status);
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct gate *g = &w->run->gate;
    int go;

    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    while (g->go == 0)
        pthread_cond_wait(&g->cv, &g->mu);
    go = g->go;
    pthread_mutex_unlock(&g->mu);
    if (go < 0)
        return NULL;

    switch (w->role) {
    case ROLE_SEND: do_send(w); break;
    case ROLE_RECV: do_recv(w); break;
    case ROLE_SELECT_SEND: do_select_send(w); break;
    case ROLE_SELECT_RECV: do_select_recv(w); break;
    }
    return NULL;
}

/* ---- running and checking a case ---------------------------------------- */

struct options {
    size_t messages;
    bool want_case[NCASES];
    bool want_cap[NCAPS];
    bool csv;
    double timeout;     /* seconds per case */
};

enum outcome { OUT_OK, OUT_FAILED, OUT_HUNG };

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static belt_chan *make_chan(enum bench_cap cap, size_t messages)
{
    switch (cap) {
    case CAP_0: return belt_chan_bounded(0, sizeof(uint64_t));
    case CAP_1: return belt_chan_bounded(1, sizeof(uint64_t));
    case CAP_N: return belt_chan_bounded(messages, sizeof(uint64_t));
    default: return belt_chan_unbounded(sizeof(uint64_t));
    }
}

static void add_worker(struct run *r, enum role role, int id, size_t chan)
{
    struct worker *w = &r->w[r->nworkers++];

    memset(w, 0, sizeof *w);
    w->run = r;
    w->role = role;
    w->id = id;
    w->chan = chan;
    w->err = BELT_OK;
}

/* Fills r with the channels and workers of `c`, registering the senders.
 * Returns BELT_OK or the failing call's code (reported by the caller). */
static int plan_case(struct run *r, enum bench_case c, size_t messages,
                     const char **what)
{
    size_t senders_per_chan;
    int rc;

    r->nchan = (c == CASE_SELECT_RX || c == CASE_SELECT_BOTH) ? THREADS : 1;
    r->per_sender = (c == CASE_SPSC) ? messages : messages / THREADS;
    senders_per_chan = (c == CASE_SPSC || c == CASE_SELECT_RX) ? 1 : THREADS;

    for (size_t i = 0; i < r->nchan; i++) {
        if ((rc = belt_chan_add_senders(r->chan[i], senders_per_chan)) != BELT_OK) {
            *what = "belt_chan_add_senders";
            return rc;
        }
    }
    switch (c) {
    case CASE_SPSC:
        add_worker(r, ROLE_SEND, 0, 0);
        add_worker(r, ROLE_RECV, 0, 0);
        break;
    case CASE_MPSC:
    case CASE_MPMC:
        for (int t = 0; t < THREADS; t++)
            add_worker(r, ROLE_SEND, t, 0);
        for (int t = 0; t < (c == CASE_MPMC ? THREADS : 1); t++)
            add_worker(r, ROLE_RECV, t, 0);
        break;
    case CASE_SELECT_RX:
        for (int t = 0; t < THREADS; t++)
            add_worker(r, ROLE_SEND, t, (size_t)t);
        add_worker(r, ROLE_SELECT_RECV, 0, 0);
        break;
    case CASE_SELECT_BOTH:
        for (int t = 0; t < THREADS; t++)
            add_worker(r, ROLE_SELECT_SEND, t, 0);
        for (int t = 0; t < THREADS; t++)
            add_worker(r, ROLE_SELECT_RECV, t, 0);
        break;
    default:
        break;
    }
    return BELT_OK;
}

/* seq, on the calling thread.  Returns OUT_OK with *secs set, or OUT_FAILED
 * after reporting. */
static enum outcome run_seq(belt_chan *ch, size_t messages, const char *label,
                            double *secs, struct tally *t)
{
    double t0 = mono_now();
    uint64_t m;
    int rc;

    for (size_t i = 0; i < messages; i++) {
        m = message(0, i);
        if ((rc = belt_chan_send(ch, &m)) != BELT_OK) {
            fprintf(stderr, "belt bench chan: %s: message %zu: belt_chan_send: %s\n",
                    label, i, belt_strerror(rc));
            return OUT_FAILED;
        }
    }
    for (size_t i = 0; i < messages; i++) {
        if ((rc = belt_chan_recv(ch, &m)) != BELT_OK) {
            fprintf(stderr, "belt bench chan: %s: message %zu: belt_chan_recv: %s\n",
                    label, i, belt_strerror(rc));
            return OUT_FAILED;
        }
        tally_add(t, 0, m);
    }
    *secs = mono_now() - t0;
    return OUT_OK;
}

/* Starts r's workers, opens the gate, joins them (each join bounded by the
 * timeout).  Returns OUT_OK with *secs set, OUT_FAILED, or OUT_HUNG (threads
 * still blocked: r must not be freed). */
static enum outcome run_threads(struct run *r, const char *label, double timeout,
                                double *secs)
{
    struct gate *g = &r->gate;
    struct timespec deadline;
    double t0;
    int rc, created = 0, hung = 0;

    for (int i = 0; i < r->nworkers; i++) {
        rc = pthread_create(&r->w[i].tid, NULL, worker_main, &r->w[i]);
        if (rc != 0) {
            fprintf(stderr, "belt bench chan: %s: pthread_create: %s\n",
                    label, strerror(rc));
            break;
        }
        r->w[i].started = true;
        created++;
    }

    pthread_mutex_lock(&g->mu);
    while (created == r->nworkers && g->arrived < created)
        pthread_cond_wait(&g->cv, &g->mu);
    g->go = (created == r->nworkers) ? 1 : -1;
    t0 = mono_now();
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);

    /* The timeout covers the whole case; pthread_timedjoin_np wants a
     * CLOCK_REALTIME deadline. */
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)timeout;
    deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (int i = 0; i < created; i++) {
        rc = pthread_timedjoin_np(r->w[i].tid, NULL, &deadline);
        if (rc == ETIMEDOUT) {
            hung++;
            continue;
        }
        if (rc != 0) {
            fprintf(stderr, "belt bench chan: %s: pthread_join: %s\n", label,
                    strerror(rc));
            hung++;
            continue;
        }
        r->w[i].started = false;
    }
    *secs = mono_now() - t0;

    if (hung > 0) {
        fprintf(stderr, "belt bench chan: %s: HANG: %d of %d threads still blocked "
                "after %.0f s (deadlock, lost wake-up or lost message)\n",
                label, hung, created, timeout);
        /* The counts are a racy snapshot, read only as a diagnostic: those
         * threads are blocked inside the channel, not counting. */
        for (int i = 0; i < created; i++)
            if (r->w[i].started)
                fprintf(stderr, "  %s %d: blocked, %" PRIu64 " received so far\n",
                        role_names[r->w[i].role], r->w[i].id, r->w[i].tally.count);
        for (size_t c = 0; c < r->nchan; c++)
            fprintf(stderr, "  channel %zu: len %zu, %s\n", c,
                    belt_chan_len(r->chan[c]),
                    belt_chan_is_closed(r->chan[c]) ? "closed" : "open");
        return OUT_HUNG;
    }
    return created == r->nworkers ? OUT_OK : OUT_FAILED;
}

/* Compares what was received with what was sent; reports and returns false
 * on any difference. */
static bool check_totals(const char *label, const struct tally *t,
                         uint64_t senders, uint64_t per_sender)
{
    uint64_t want = senders * per_sender;
    uint64_t want_sum = senders * (per_sender * (per_sender - 1) / 2);
    bool ok = true;

    if (t->count != want) {
        fprintf(stderr, "belt bench chan: %s: received %" PRIu64 " of %" PRIu64
                " messages (%s %" PRIu64 ")\n", label, t->count, want,
                t->count < want ? "LOST" : "DUPLICATED",
                t->count < want ? want - t->count : t->count - want);
        ok = false;
    } else if (t->sum != want_sum) {
        fprintf(stderr, "belt bench chan: %s: received the right number of messages "
                "but not the ones sent (checksum %" PRIu64 ", want %" PRIu64 ")\n",
                label, t->sum, want_sum);
        ok = false;
    }
    if (t->reordered > 0) {
        fprintf(stderr, "belt bench chan: %s: %" PRIu64 " messages out of per-sender "
                "order\n", label, t->reordered);
        ok = false;
    }
    if (t->bad_sender > 0) {
        fprintf(stderr, "belt bench chan: %s: %" PRIu64 " corrupt messages\n",
                label, t->bad_sender);
        ok = false;
    }
    return ok;
}

/* After a case every channel must be empty: closed-and-drained for the
 * threaded cases, merely empty for seq. */
static bool check_drained(const char *label, belt_chan *const *chans, size_t n,
                          int want)
{
    bool ok = true;
    uint64_t m;

    for (size_t c = 0; c < n; c++) {
        int rc = belt_chan_try_recv(chans[c], &m);
        if (rc != want) {
            fprintf(stderr, "belt bench chan: %s: channel %zu after the run: "
                    "try_recv gave %s, want %s%s\n", label, c, belt_err_name(rc),
                    belt_err_name(want),
                    rc == BELT_OK ? " (a message was left over: duplicated?)" : "");
            ok = false;
        }
    }
    return ok;
}

/* Runs one (case, capacity).  Returns the outcome; *secs on OUT_OK. */
static enum outcome run_case(enum bench_case c, enum bench_cap cap,
                             const struct options *o, double *secs)
{
    char label[64];
    struct run *r;
    struct tally total;
    enum outcome out;
    uint64_t senders;
    const char *what = NULL;
    int rc;

    snprintf(label, sizeof label, "%s cap %s", case_names[c], cap_names[cap]);
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        fprintf(stderr, "belt bench chan: %s: out of memory\n", label);
        return OUT_FAILED;
    }
    r->nchan = (c == CASE_SELECT_RX || c == CASE_SELECT_BOTH) ? THREADS : 1;
    for (size_t i = 0; i < r->nchan; i++) {
        r->chan[i] = make_chan(cap, o->messages);
        if (r->chan[i] == NULL) {
            fprintf(stderr, "belt bench chan: %s: creating the channel failed "
                    "(out of memory?)\n", label);
            out = OUT_FAILED;
            goto done;
        }
    }

    memset(&total, 0, sizeof total);
    if (c == CASE_SEQ) {
        out = run_seq(r->chan[0], o->messages, label, secs, &total);
        if (out == OUT_OK && (!check_totals(label, &total, 1, o->messages) ||
                              !check_drained(label, r->chan, 1, BELT_EMPTY)))
            out = OUT_FAILED;
        goto done;
    }

    if ((rc = plan_case(r, c, o->messages, &what)) != BELT_OK) {
        fprintf(stderr, "belt bench chan: %s: %s: %s\n", label, what,
                belt_strerror(rc));
        out = OUT_FAILED;
        goto done;
    }
    pthread_mutex_init(&r->gate.mu, NULL);
    pthread_cond_init(&r->gate.cv, NULL);
    out = run_threads(r, label, o->timeout, secs);
    if (out == OUT_HUNG)
        return out;     /* threads still inside the channels: leak r */
    pthread_mutex_destroy(&r->gate.mu);
    pthread_cond_destroy(&r->gate.cv);

    senders = 0;
    for (int i = 0; i < r->nworkers; i++) {
        struct worker *w = &r->w[i];
        if (w->err != BELT_OK) {
            fprintf(stderr, "belt bench chan: %s: %s %d: %s: %s\n", label,
                    role_names[w->role], w->id, w->err_op, belt_strerror(w->err));
            out = OUT_FAILED;
        }
        if (w->role == ROLE_SEND || w->role == ROLE_SELECT_SEND)
            senders++;
        total.count += w->tally.count;
        total.sum += w->tally.sum;
        total.reordered += w->tally.reordered;
        total.bad_sender += w->tally.bad_sender;
    }
    if (out == OUT_OK && (!check_totals(label, &total, senders, r->per_sender) ||
                          !check_drained(label, r->chan, r->nchan, BELT_CLOSED)))
        out = OUT_FAILED;

done:
    for (size_t i = 0; i < r->nchan; i++)
        belt_chan_free(r->chan[i]);
    free(r);
    return out;
}

/* ---- options and output ------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: belt bench chan [--messages N] [--case LIST] [--cap LIST] [--csv]\n"
        "                       [--timeout SECONDS]\n"
        "\n"
        "Times crossbeam-channel's benchmark matrix on belt channels: cases\n"
        "seq, spsc, mpsc, mpmc, select_rx, select_both (%d threads per side,\n"
        "8-byte messages) at capacities 0 (rendezvous), 1, N (= messages) and\n"
        "unbounded.\n"
        "\n"
        "  --messages N   messages per case (default %zu; rounded down to a\n"
        "                 multiple of %d)\n"
        "  --case LIST    only these cases (comma-separated)\n"
        "  --cap LIST     only these capacities: 0, 1, N, unbounded\n"
        "  --csv          print case,cap,seconds lines instead of a table\n"
        "  --timeout S    a case running longer is reported as a hang and the\n"
        "                 benchmark exits 1 (default: 60 s + 1 s per 10,000\n"
        "                 messages)\n"
        "\n"
        "Exit status: 0 when every case ran and every message arrived once and in\n"
        "order, 1 when a case failed or hung, 2 on a usage error.\n",
        THREADS, DEFAULT_MESSAGES, THREADS);
}

/* Parses a comma-separated list of names into want[]; false on an unknown
 * name (reported). */
static bool parse_list(const char *arg, const char *const *names, int n,
                       bool *want, const char *what)
{
    char buf[256];
    char *save = NULL;

    if (strlen(arg) >= sizeof buf) {
        fprintf(stderr, "belt bench chan: %s list too long\n", what);
        return false;
    }
    strcpy(buf, arg);
    for (int i = 0; i < n; i++)
        want[i] = false;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        int i;
        for (i = 0; i < n; i++)
            if (strcmp(tok, names[i]) == 0)
                break;
        if (i == n) {
            fprintf(stderr, "belt bench chan: unknown %s '%s' (one of:", what, tok);
            for (int j = 0; j < n; j++)
                fprintf(stderr, " %s", names[j]);
            fprintf(stderr, ")\n");
            return false;
        }
        want[i] = true;
    }
    return true;
}

/* Returns the option's value (from "--opt=value" or the next argument), or
 * NULL if `arg` is not `name`.  *missing is set when the value is absent. */
static const char *opt_value(int argc, char **argv, int *i, const char *name,
                             bool *missing)
{
    size_t len = strlen(name);
    const char *arg = argv[*i];

    if (strncmp(arg, name, len) != 0)
        return NULL;
    if (arg[len] == '=')
        return arg + len + 1;
    if (arg[len] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static bool parse_options(int argc, char **argv, struct options *o, int *status)
{
    bool timeout_set = false;

    o->messages = DEFAULT_MESSAGES;
    o->csv = false;
    for (int i = 0; i < NCASES; i++)
        o->want_case[i] = true;
    for (int i = 0; i < NCAPS; i++)
        o->want_cap[i] = true;

    for (int i = 1; i < argc; i++) {
        bool missing = false;
        const char *v;
        char *end;

        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            *status = 0;
            return false;
        } else if (strcmp(argv[i], "--csv") == 0) {
            o->csv = true;
        } else if ((v = opt_value(argc, argv, &i, "--messages", &missing)) != NULL) {
            unsigned long long n;
            errno = 0;
            n = strtoull(v, &end, 10);
            if (errno != 0 || end == v || *end != '\0' || v[0] == '-' ||
                n < THREADS || n > SEQ_MASK) {
                fprintf(stderr, "belt bench chan: --messages wants a number from "
                        "%d to %" PRIu64 ", not '%s'\n", THREADS, SEQ_MASK, v);
                *status = 2;
                return false;
            }
            o->messages = (size_t)n;
        } else if ((v = opt_value(argc, argv, &i, "--timeout", &missing)) != NULL) {
            o->timeout = strtod(v, &end);
            if (end == v || *end != '\0' || !(o->timeout > 0) || o->timeout > 1e7) {
                fprintf(stderr, "belt bench chan: --timeout wants seconds > 0, "
                        "not '%s'\n", v);
                *status = 2;
                return false;
            }
            timeout_set = true;
        } else if ((v = opt_value(argc, argv, &i, "--case", &missing)) != NULL) {
            if (!parse_list(v, case_names, NCASES, o->want_case, "case")) {
                *status = 2;
                return false;
            }
        } else if ((v = opt_value(argc, argv, &i, "--cap", &missing)) != NULL) {
            if (!parse_list(v, cap_names, NCAPS, o->want_cap, "cap")) {
                *status = 2;
                return false;
            }
        } else {
            if (missing)
                fprintf(stderr, "belt bench chan: %s needs a value\n", argv[i]);
            else
                fprintf(stderr, "belt bench chan: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            *status = 2;
            return false;
        }
    }
    o->messages -= o->messages % THREADS;
    if (!timeout_set)
        o->timeout = 60.0 + (double)o->messages / 10000.0;
    return true;
}

static bool case_applies(enum bench_case c, enum bench_cap cap)
{
    return !(c == CASE_SEQ && (cap == CAP_0 || cap == CAP_1));
}

static void print_table(const struct options *o, double secs[NCASES][NCAPS],
                        enum outcome outs[NCASES][NCAPS], bool ran[NCASES][NCAPS])
{
    static const char *const headers[NCAPS] = {
        "bounded(0)", "bounded(1)", "bounded(N)", "unbounded"
    };

    printf("belt channels: %zu messages, %d threads per side, seconds per case\n\n",
           o->messages, THREADS);
    printf("%-12s", "case");
    for (int k = 0; k < NCAPS; k++)
        if (o->want_cap[k])
            printf(" %11s", headers[k]);
    printf("\n");
    for (int c = 0; c < NCASES; c++) {
        if (!o->want_case[c])
            continue;
        printf("%-12s", case_names[c]);
        for (int k = 0; k < NCAPS; k++) {
            if (!o->want_cap[k])
                continue;
            if (!case_applies((enum bench_case)c, (enum bench_cap)k))
                printf(" %11s", "n/a");
            else if (!ran[c][k])
                printf(" %11s", "-");
            else if (outs[c][k] != OUT_OK)
                printf(" %11s", outs[c][k] == OUT_HUNG ? "HANG" : "FAILED");
            else
                printf(" %11.3f", secs[c][k]);
        }
        printf("\n");
    }
}

int belt__cli_bench_chan(int argc, char **argv)
{
    struct options o;
    double secs[NCASES][NCAPS] = {{0}};
    enum outcome outs[NCASES][NCAPS];
    bool ran[NCASES][NCAPS] = {{false}};
    bool progress = !isatty(STDOUT_FILENO) ? false : isatty(STDERR_FILENO);
    int status = 0;

    if (!parse_options(argc, argv, &o, &status))
        return status;
    if (o.csv)
        printf("case,cap,seconds\n");

    /* Capacity-major, as crossbeam's runs. */
    for (int k = 0; k < NCAPS; k++) {
        for (int c = 0; c < NCASES; c++) {
            enum outcome out;

            if (!o.want_cap[k] || !o.want_case[c])
                continue;
            if (!case_applies((enum bench_case)c, (enum bench_cap)k)) {
                if (o.csv)
                    printf("%s,%s,n/a\n", case_names[c], cap_names[k]);
                continue;
            }
            if (progress && !o.csv)
                fprintf(stderr, "\r%-11s cap %-9s ...", case_names[c], cap_names[k]);
            out = run_case((enum bench_case)c, (enum bench_cap)k, &o, &secs[c][k]);
            outs[c][k] = out;
            ran[c][k] = true;
            if (out != OUT_OK)
                status = 1;
            if (o.csv) {
                if (out == OUT_OK)
                    printf("%s,%s,%.6f\n", case_names[c], cap_names[k], secs[c][k]);
                else
                    printf("%s,%s,%s\n", case_names[c], cap_names[k],
                           out == OUT_HUNG ? "HANG" : "FAILED");
                fflush(stdout);
            }
            if (out == OUT_HUNG)
                goto stop;  /* its threads are stuck: nothing else is reliable */
        }
    }
stop:
    if (progress && !o.csv)
        fprintf(stderr, "\r%40s\r", "");
    if (!o.csv)
        print_table(&o, secs, outs, ran);
    if (status != 0)
        fprintf(stderr, "belt bench chan: FAILED (see above)\n");
    fflush(stdout);
    return status;
}
