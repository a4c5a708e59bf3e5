/* pipeline/engine.c: `belt run PIPELINE.json` and `belt validate` for pipeline
 * configs: the command-line face of the pipeline engine (src/pipeline/pipeline.h).
 *
 * A config whose top-level object has a "pipeline" key is a pipeline
 * config; run.c and validate.c hand such a file to this file's functions.
 * Loading checks everything the engine can check before it starts (stage
 * kinds, plugins and their symbols, the source file, the sink and the
 * dead-letter file: pipeline/pipeline.h), so every config error is exit status
 * 2 with one "file:line:col: json.path: message" line, and nothing runs.
 *
 * Threads.  Three threads of this file's making take part in a run:
 *
 *   - the main thread starts the pipeline and then blocks in
 *     belt__pipeline_wait() until it has finished (every engine thread
 *     joined, every child reaped);
 *   - the signal thread (run_signal.c, shared with `belt run` of job
 *     configs) turns the first SIGINT/SIGTERM into a NULL message on the
 *     `wake` channel; on the second it kills every child's process group
 *     and _exit()s 130/143 at once;
 *   - the monitor thread owns the terminal.  It waits on `wake` with a
 *     timeout: the redraw interval when the live display is on, forever
 *     when it is off (then it only ever wakes for a message).  A NULL
 *     message is a signal: it asks the engine to drain
 *     (belt__pipeline_stop(DRAIN): the source stops reading, items in
 *     flight go on to the sink) and says so on stderr.  The DONE message
 *     (a pointer to a static byte, sent by the main thread once the
 *     pipeline finished) ends it.  There is no polling: each thread blocks
 *     on one channel or condition variable with a predicate.
 *
 * The monitor is the only thread that writes to stderr while the pipeline
 * runs; the main thread writes the summary only after joining it.
 *
 * The live display (stderr a terminal, or --progress): one line per stage
 * plus a header, redrawn in place (cursor up, erase to end of line) at
 * most PL_TICK_NS apart:
 *
 *   belt: 4.2s  source 41234  sink 40100  dead 3
 *     fetch   per-item  in  41200  out  41100  busy 8/8  chan 58/64 ▇
 *
 * The bottleneck.  The engine counts, per stage, the time its producers
 * spent blocked because the channel into it was full (full_ns), and the
 * same for the sink.  A slow stage fills its inbound channel, and by
 * backpressure the channels upstream of it fill too, so the bottleneck is
 * the most downstream stage (or the sink) whose inbound channel was full
 * at least PL_BOTTLENECK_SHARE of the run.  full_ns sums over the
 * producer threads (the previous stage's workers), so the share is taken
 * per producer: full_ns / (producers * elapsed), capped at 100%.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "belt/chan.h"
#include "belt/config.h"
#include "belt/error.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "pipeline/pipeline.h"
#include "app/report.h"

#define PL_TICK_NS 200000000LL       /* live display: 5 redraws per second */
#define PL_BOTTLENECK_SHARE 0.5      /* full at least half the time */

/* ---- options ------------------------------------------------------------ */

typedef struct pl_opts {
    const char *config_path;
    const char *dead_letter;     /* --dead-letter, or NULL */
    bool quiet;
    int progress;                /* 1 --progress, 0 --no-progress, -1 auto */
    bool halt_on_error;
} pl_opts;

enum { PL_PROGRESS = 256, PL_NO_PROGRESS, PL_DEAD_LETTER, PL_HALT };

static const struct option pl_options[] = {
    {"quiet", no_argument, NULL, 'q'},
    {"progress", no_argument, NULL, PL_PROGRESS},
    {"no-progress", no_argument, NULL, PL_NO_PROGRESS},
    {"dead-letter", required_argument, NULL, PL_DEAD_LETTER},
    {"halt-on-error", no_argument, NULL, PL_HALT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The options of `belt run` that mean nothing for a pipeline, with why. */
static const char *pl_not_applicable(const char *opt)
{
    static const struct { const char *name, *why; } tab[] = {
        {"-j", "a pipeline sets \"workers\" per stage in its config"},
        {"--workers", "a pipeline sets \"workers\" per stage in its config"},
        {"--policy", "each stage's workers share its inbound channel"},
        {"--results", "a pipeline writes its items to its \"sink\" and its "
                      "failures to --dead-letter"},
        {"--resume", "a pipeline has no job ids to resume"},
        {"--joblog", "a pipeline has no jobs to log"},
        {"--dry-run", "check a pipeline config with 'belt validate'"},
        {"--timeout", "set \"timeout\" on a per-item stage"},
        {"--retries", "a failed item goes to the dead-letter file"},
        {"-k", "set \"ordered\": true in the config"},
        {"--keep-order", "set \"ordered\": true in the config"},
        {"--command", "quick mode takes no config"},
        {NULL, NULL},
    };
    for (size_t i = 0; tab[i].name; i++) {
        size_t n = strlen(tab[i].name);
        if (strncmp(opt, tab[i].name, n) == 0 &&
            (opt[n] == '\0' || opt[n] == '=' || (n == 2 && opt[1] != '-')))
            return tab[i].why;
    }
    return NULL;
}

/* Parses argv.  Returns -1 to go on, or an exit status. */
static int pl_parse(int argc, char **argv, pl_opts *o)
{
    memset(o, 0, sizeof *o);
    o->progress = -1;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":qh", pl_options, NULL)) != -1) {
        switch (c) {
        case 'q': o->quiet = true; break;
        case PL_PROGRESS: o->progress = 1; break;
        case PL_NO_PROGRESS: o->progress = 0; break;
        case PL_DEAD_LETTER: o->dead_letter = optarg; break;
        case PL_HALT: o->halt_on_error = true; break;
        case 'h':
            fputs("usage: belt run [options] PIPELINE.json\n"
                  "\n"
                  "Runs a pipeline config (a JSON object with a \"pipeline\" "
                  "key; see\nbelt-pipeline(5)): items flow from the "
                  "source through the stages\nto the sink.\n"
                  "\n"
                  "options:\n"
                  "  -q, --quiet          no live display and no summary\n"
                  "      --progress       show the live per-stage display "
                  "even when stderr\n"
                  "                       is not a terminal\n"
                  "      --no-progress    no live display (the summary "
                  "stays)\n"
                  "      --dead-letter FILE  where failed items go (instead "
                  "of the config's\n"
                  "                       \"dead_letter\")\n"
                  "      --halt-on-error  stop at the first failed item\n"
                  "  -h, --help           show this help\n"
                  "\n"
                  "SIGINT/SIGTERM stop the source and drain the items in "
                  "flight to the\nsink; a second one kills at once.\n"
                  "\n"
                  "exit status: 0 every item reached the sink, 1 some item "
                  "failed (dead\nletters) or a stage failed, 2 usage or "
                  "config error (nothing run),\n130/143 interrupted.\n",
                  stdout);
            return 0;
        case ':':
            return belt__cli_bad_option("run", c, argv, pl_options);
        default: {
            char word[64];
            const char *arg = argv[optind - 1];
            if (optopt && optopt < 256) {
                snprintf(word, sizeof word, "-%c", optopt);
                arg = word;
            }
            const char *why = pl_not_applicable(arg);
            if (why)
                fprintf(stderr, "belt run: %s does not apply to a pipeline "
                        "config: %s\n", arg, why);
            else
                return belt__cli_bad_option("run", c, argv, pl_options);
            return 2;
        }
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "belt run: one PIPELINE config at a time\n");
        return 2;
    }
    o->config_path = argv[optind];
    return -1;
}

/* --dead-letter FILE: the same check the loader makes of the config's
 * (an existing file must be writable, else its directory).  0, or -1 after
 * printing why. */
static int check_writable(const char *path)
{
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) == 0)
            return 0;
    } else {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            dir[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        if (access(dir, W_OK | X_OK) == 0)
            return 0;
    }
    fprintf(stderr, "belt run: --dead-letter: cannot write %s: %s\n", path,
            strerror(errno));
    return -1;
}

/* ---- display helpers ---------------------------------------------------- */

/* The share of the run that the producers into a channel spent blocked on
 * it (see the essay), 0..1. */
static double full_share(int64_t full_ns, int producers, int64_t elapsed)
{
    if (elapsed <= 0 || producers <= 0)
        return 0;
    double s = (double)full_ns / ((double)producers * (double)elapsed);
    return s > 1 ? 1 : s < 0 ? 0 : s;
}

/* Threads that send into stage i's channel (i == nstages: the sink). */
static int producers_of(const belt__pipeline_stats *st, size_t i)
{
    return i == 0 ? 1 : st->stage[i - 1].workers;
}

/* The bottleneck: index of the most downstream stage (nstages: the sink)
 * whose inbound channel was full at least PL_BOTTLENECK_SHARE of the run,
 * or -1; *share gets its share (or the highest share seen when -1). */
static long find_bottleneck(const belt__pipeline_stats *st, double *share)
{
    long best = -1;
    double hi = 0;
    for (size_t i = 0; i <= st->nstages; i++) {
        int64_t f = i < st->nstages ? st->stage[i].full_ns : st->sink_full_ns;
        double s = full_share(f, producers_of(st, i), st->elapsed_ns);
        if (s >= PL_BOTTLENECK_SHARE) {
            best = (long)i;
            *share = s;
        } else if (best < 0 && s > hi) {
            hi = s;
        }
    }
    if (best < 0)
        *share = hi;
    return best;
}

static bool utf8_terminal(void)
{
    const char *v[] = {getenv("LC_ALL"), getenv("LC_CTYPE"), getenv("LANG")};
    for (size_t i = 0; i < 3; i++)
        if (v[i] && *v[i])
            return strstr(v[i], "UTF-8") || strstr(v[i], "utf8") ||
                   strstr(v[i], "UTF8") || strstr(v[i], "utf-8");
    return false;
}

static unsigned term_width(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
        return ws.ws_col;
    return 100;
}

/* The fill bar for queued/capacity: one of 8 block heights (UTF-8), or a
 * digit 0-8 elsewhere. */
static const char *fill_bar(uint64_t queued, size_t cap, bool utf8,
                            char *buf, size_t size)
{
    static const char *const blocks[] = {" ", "▁", "▂", "▃", "▄", "▅",
                                         "▆", "▇", "█"};
    unsigned level = 0;
    if (cap > 0) {
        uint64_t q = queued > cap ? cap : queued;
        level = (unsigned)((q * 8 + cap - 1) / cap);
    }
    if (utf8)
        snprintf(buf, size, "%s", blocks[level]);
    else
        snprintf(buf, size, "%u", level);
    return buf;
}

/* ---- the monitor thread ----------------------------------------------- */

typedef struct pl_run {
    const belt__pipeline_config *cfg;
    belt__pipeline *p;
    belt_chan *wake;          /* void *: NULL = signal, &pl_done = end */
    bool display, quiet, utf8;
    unsigned drawn;           /* lines of the display on screen */
    belt__stage_stats *stage; /* snapshot buffer, nstages entries */
    bool interrupted;         /* the monitor acted on the first signal */
} pl_run;

static const char pl_done = 0;

static void display_clear(pl_run *r)
{
    if (r->drawn == 0)
        return;
    fprintf(stderr, "\r\033[%uA\033[J", r->drawn);
    fflush(stderr);
    r->drawn = 0;
}

/* Cuts line to the terminal's width (counting UTF-8 characters, not
 * bytes) and writes it with an erase-to-end and a newline. */
static void display_line(const char *line, unsigned width)
{
    unsigned cols = 0;
    size_t i = 0;
    for (; line[i]; i++) {
        if (((unsigned char)line[i] & 0xC0) != 0x80 && ++cols >= width)
            break;
    }
    fprintf(stderr, "%.*s\033[K\n", (int)i, line);
}

static void display_draw(pl_run *r)
{
    belt__pipeline_stats st = {.stage = r->stage};
    belt__pipeline_stats_get(r->p, &st);
    unsigned width = term_width();
    char line[512], d[32], bar[8];
    if (r->drawn)
        fprintf(stderr, "\r\033[%uA", r->drawn);
    snprintf(line, sizeof line, "belt: %s  source %" PRIu64 "  sink %" PRIu64
             "  dead %" PRIu64 "%s", belt__report_duration(st.elapsed_ns, d,
             sizeof d), st.source_items, st.sink_items, st.dead_letters,
             r->interrupted ? "  (draining)" : "");
    display_line(line, width);
    int namew = 5;
    for (size_t i = 0; i < st.nstages; i++) {
        int n = (int)strlen(st.stage[i].name);
        if (n > namew)
            namew = n < 16 ? n : 16;
    }
    for (size_t i = 0; i < st.nstages; i++) {
        const belt__stage_stats *s = &st.stage[i];
        char chan[48];
        if (s->capacity)
            snprintf(chan, sizeof chan, "%" PRIu64 "/%zu %s", s->queued,
                     s->capacity, fill_bar(s->queued, s->capacity, r->utf8,
                                           bar, sizeof bar));
        else
            snprintf(chan, sizeof chan, "rendezvous");
        snprintf(line, sizeof line, "  %-*.*s %-8s in %9" PRIu64 "  out %9"
                 PRIu64 "  busy %d/%d  chan %s", namew, namew, s->name,
                 s->kind, s->items_in, s->items_out, s->workers_busy,
                 s->workers, chan);
        display_line(line, width);
    }
    fflush(stderr);
    r->drawn = (unsigned)st.nstages + 1;
}

static void *monitor_main(void *arg)
{
    pl_run *r = arg;
    for (;;) {
        if (r->display)
            display_draw(r);
        void *msg = NULL;
        int rc = belt_chan_recv_timeout(r->wake, &msg,
                                        r->display ? PL_TICK_NS : -1);
        if (rc == BELT_TIMEOUT)
            continue;
        if (rc != BELT_OK || msg == &pl_done)
            break;
        /* NULL: the first SIGINT/SIGTERM (the second never comes here). */
        if (!r->interrupted) {
            belt__pipeline_stats st = {.stage = r->stage};
            belt__pipeline_stats_get(r->p, &st);
            r->interrupted = true;
            belt__pipeline_stop(r->p, BELT__STOP_DRAIN);
            if (!r->quiet) {
                display_clear(r);
                fprintf(stderr, "belt: interrupted: source stopped after %"
                        PRIu64 " items, draining what is in flight to the "
                        "sink (again to kill at once)\n", st.source_items);
            }
        }
    }
    display_clear(r);
    return NULL;
}

/* ---- the summary -------------------------------------------------------- */

static void summary(const belt__pipeline_config *cfg,
                    const belt__pipeline_stats *st, FILE *out)
{
    char d[32], m[32], q[32];
    fprintf(out, "belt: pipeline %s in %s: %" PRIu64 " items from the source, %"
            PRIu64 " to the sink, %" PRIu64 " dead letter%s\n",
            st->finished ? "finished" : "stopped",
            belt__report_duration(st->elapsed_ns, d, sizeof d),
            st->source_items, st->sink_items, st->dead_letters,
            st->dead_letters == 1 ? "" : "s");
    int namew = 5;
    for (size_t i = 0; i < st->nstages; i++) {
        int n = (int)strlen(st->stage[i].name);
        if (n > namew)
            namew = n < 24 ? n : 24;
    }
    fprintf(out, "  %-*s %-8s %7s %10s %10s %9s %7s %5s %8s %8s %6s\n",
            namew, "stage", "kind", "workers", "in", "out", "filtered",
            "failed", "busy", "mean", "p99", "full");
    for (size_t i = 0; i < st->nstages; i++) {
        const belt__stage_stats *s = &st->stage[i];
        double busy = st->elapsed_ns > 0 && s->workers > 0
                          ? (double)s->busy_ns /
                                ((double)s->workers * (double)st->elapsed_ns)
                          : 0;
        if (busy > 1)
            busy = 1;
        if (s->timed) {
            belt__report_duration(s->time_sum_ns / (int64_t)s->timed, m,
                                  sizeof m);
            belt__report_duration(belt__hist_quantile(s->hist, 0.99), q,
                                  sizeof q);
        } else {
            snprintf(m, sizeof m, "-");
            snprintf(q, sizeof q, "-");
        }
        fprintf(out, "  %-*.*s %-8s %7d %10" PRIu64 " %10" PRIu64 " %9" PRIu64
                " %7" PRIu64 " %4.0f%% %8s %8s %5.0f%%\n", namew, namew,
                s->name, s->kind, s->workers, s->items_in, s->items_out,
                s->filtered, s->failed, 100 * busy, m, q,
                100 * full_share(s->full_ns, producers_of(st, i),
                                 st->elapsed_ns));
    }
    double share = 0;
    long b = find_bottleneck(st, &share);
    if (b >= 0 && (size_t)b < st->nstages)
        fprintf(out, "bottleneck: stage %s (inbound channel full %.0f%% of "
                "the time)\n", st->stage[b].name, 100 * share);
    else if (b >= 0)
        fprintf(out, "bottleneck: the sink (its inbound channel full %.0f%% "
                "of the time)\n", 100 * share);
    else
        fprintf(out, "no bottleneck: no inbound channel was full more than "
                "%.0f%% of the time (the source sets the pace)\n",
                100 * share);
    if (st->dead_letters)
        fprintf(out, "dead letters: %s\n", cfg->dead_letter);
}

/* ---- belt run PIPELINE.json --------------------------------------------- */

static int load(const char *path, belt__pipeline_config **cfg)
{
    belt_config_error err;
    memset(&err, 0, sizeof err);
    if (belt__pipeline_load(path, cfg, &err) != BELT_OK) {
        char line[1400];
        fprintf(stderr, "%s\n", belt_config_error_format(&err, line,
                                                         sizeof line));
        return -1;
    }
    return 0;
}

int belt__cli_run_pipeline(int argc, char **argv)
{
    pl_opts o;
    int rc = pl_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    belt__pipeline_config *cfg = NULL;
    if (load(o.config_path, &cfg) != 0)
        return 2;
    if (o.dead_letter) {
        char *dl = strdup(o.dead_letter);
        if (dl == NULL || check_writable(o.dead_letter) != 0) {
            free(dl);
            belt__pipeline_config_free(cfg);
            return 2;
        }
        free(cfg->dead_letter);
        cfg->dead_letter = dl;
    }
    if (o.halt_on_error)
        cfg->halt_on_error = true;

    pl_run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.quiet = o.quiet;
    r.display = !o.quiet && (o.progress == 1 ||
                             (o.progress == -1 && isatty(STDERR_FILENO)));
    r.utf8 = utf8_terminal();
    r.stage = calloc(cfg->nstages, sizeof *r.stage);
    r.wake = belt_chan_unbounded(sizeof(void *));
    r.p = r.stage && r.wake ? belt__pipeline_create(cfg) : NULL;
    if (r.p == NULL) {
        fprintf(stderr, "belt run: out of memory\n");
        belt_chan_free(r.wake);
        free(r.stage);
        belt__pipeline_config_free(cfg);
        return 1;
    }

    /* Signals first: every thread started afterwards (the engine's, the
     * monitor) inherits the blocked mask, so they reach the signal
     * thread. */
    belt__sig *sig = NULL;
    if (belt__sig_start(&sig, r.wake) != 0) {
        fprintf(stderr, "belt run: cannot set up signal handling: %s\n",
                strerror(errno));
        sig = NULL;
    }
    int status;
    rc = belt__pipeline_start(r.p);
    if (rc != BELT_OK) {
        const char *why = belt__pipeline_error(r.p);
        fprintf(stderr, "belt run: %s: cannot start the pipeline: %s\n",
                o.config_path, why ? why : belt_strerror(rc));
        status = 1;
        goto out;
    }
    pthread_t mon;
    bool have_mon = pthread_create(&mon, NULL, monitor_main, &r) == 0;
    int outcome = belt__pipeline_wait(r.p, -1);
    if (have_mon) {
        const void *done = &pl_done;
        belt_chan_send(r.wake, &done);
        pthread_join(mon, NULL);
    }
    int signo = belt__sig_caught(sig);

    belt__pipeline_stats st = {.stage = r.stage};
    belt__pipeline_stats_get(r.p, &st);
    const char *why = belt__pipeline_error(r.p);
    if ((outcome == BELT__PIPE_ERROR || outcome == BELT__PIPE_HALTED) && why)
        fprintf(stderr, "belt run: %s\n", why);
    if (!o.quiet) {
        summary(cfg, &st, stderr);
        if (signo)
            fprintf(stderr, "belt: %s: %" PRIu64 " items reached the sink, %"
                    PRIu64 " dead letter%s; the source had produced %" PRIu64
                    "\n", signo == SIGINT ? "interrupted" : "terminated",
                    st.sink_items, st.dead_letters,
                    st.dead_letters == 1 ? "" : "s", st.source_items);
    }
    if (signo)
        status = 128 + signo;
    else if (outcome == BELT__PIPE_OK)
        status = 0;
    else
        status = 1;
out:
    belt__pipeline_free(r.p);
    belt__sig_stop(sig);
    belt_chan_free(r.wake);
    free(r.stage);
    belt__pipeline_config_free(cfg);
    return status;
}

/* ---- belt validate PIPELINE.json --------------------------------------- */

int belt__cli_validate_pipeline(const char *path)
{
    belt__pipeline_config *cfg = NULL;
    if (load(path, &cfg) != 0)
        return 2;
    printf("%s: ok (pipeline of %zu stage%s:", path, cfg->nstages,
           cfg->nstages == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->nstages; i++)
        printf(" %s%s (%s x%d)", i ? "-> " : "", cfg->stages[i].name,
               belt__stage_kind_name(&cfg->stages[i]),
               cfg->stages[i].workers);
    printf(")\n");
    belt__pipeline_config_free(cfg);
    return 0;
}
