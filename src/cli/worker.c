/* worker.c: `belt worker --broker URL`: serve jobs from a Redis broker.
 *
 * Options in, one engine out: this file parses the command line, connects
 * (startup errors: one message, exit 2), and hands over to the worker
 * engine (src/app/broker/worker.c), which runs until asked to stop.
 *
 * Signals.  SIGINT and SIGTERM are blocked before the engine starts any
 * thread, so every thread inherits the mask and the kernel keeps them for
 * a signalfd that one small thread reads (poll() on the signalfd and on an
 * eventfd that says "the engine has returned").  The first signal asks the
 * engine to stop gracefully (read no more jobs, finish the running ones,
 * publish and acknowledge their results, exit 0); the second kills: the
 * jobs' process groups get SIGKILL at once (belt__kill_children, as `belt
 * run` does), their entries stay unacknowledged and go to other workers
 * after the visibility timeout, and belt exits 128 + the signal number.
 * The executor gives jobs an empty signal mask, so they see neither.
 * SIGPIPE is ignored: a write to a Redis connection that died fails with
 * EPIPE, which the engine handles by reconnecting.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "belt/error.h"
#include "belt/job.h"
#include "app/broker/broker.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "util/clock.h"

static void worker_usage(FILE *out)
{
    fputs(
        "usage: belt worker --broker URL [options]\n"
        "\n"
        "Serves jobs that `belt run CONFIG --broker URL` publishes: reads them\n"
        "from the Redis stream <namespace>:jobs as one consumer of the group\n"
        "\"workers\", runs them on a local pool of N workers (the same executor\n"
        "as local runs), and sends each result back to the run, with this\n"
        "machine's host name and the worker's id.  Runs until SIGINT/SIGTERM.\n"
        "\n"
        "options:\n"
        "      --broker URL     redis://[[user]:password@]host[:port][/db] or\n"
        "                       unix:///path/redis.sock[?db=N]; the password may\n"
        "                       come from $BELT_REDIS_PASSWORD (or $REDISCLI_AUTH)\n"
        "  -j, --workers N      jobs run at once: N, 0 for one per CPU (default),\n"
        "                       or P% of the CPUs\n"
        "      --namespace P    prefix of the broker's keys (default \"belt\")\n"
        "      --visibility DUR a job not acknowledged for DUR is taken over by\n"
        "                       another worker (default 30s; keep it above the\n"
        "                       jobs' timeouts: long jobs refresh their claim)\n"
        "      --max-deliveries N  for jobs that do not say: deliveries before a\n"
        "                       job is dead-lettered (default 3)\n"
        "      --prefetch N     jobs read ahead beyond the free workers (default:\n"
        "                       auto, about 20 ms of work per worker by the mean\n"
        "                       job time: none for long jobs, up to 1024 for tiny\n"
        "                       ones)\n"
        "      --id NAME        consumer name (default HOST:PID); must be unique\n"
        "      --key-file FILE  run only jobs signed with a key in FILE (belt\n"
        "                       keygen; default $BELT_KEY_FILE), sign results with\n"
        "                       its first key; refused jobs are dead-lettered\n"
        "      --insecure       run without a key: run unsigned jobs (warned)\n"
        "  -q, --quiet          no messages on stderr except errors\n"
        "  -h, --help           show this help\n"
        "\n"
        "signals: the first SIGINT/SIGTERM stops reading jobs, lets running\n"
        "ones finish and acknowledges them (exit 0); a second one kills the\n"
        "jobs, which other workers then run again (exit 130/143).\n"
        "exit status: 0 stopped, 1 failed (e.g. the password was changed),\n"
        "2 usage error or no connection at start.  See belt-worker(1).\n",
        out);
}

enum { OPT_BROKER = 256, OPT_NAMESPACE, OPT_VISIBILITY, OPT_MAXDEL,
       OPT_PREFETCH, OPT_ID, OPT_KEY_FILE, OPT_INSECURE };

static const struct option worker_options[] = {
    {"broker", required_argument, NULL, OPT_BROKER},
    {"workers", required_argument, NULL, 'j'},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"visibility", required_argument, NULL, OPT_VISIBILITY},
    {"max-deliveries", required_argument, NULL, OPT_MAXDEL},
    {"prefetch", required_argument, NULL, OPT_PREFETCH},
    {"id", required_argument, NULL, OPT_ID},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses a count in [lo, hi]; 0 or -1. */
static int parse_count(const char *s, unsigned long lo, unsigned long hi,
                       unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v < lo ||
        v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static void log_stderr(void *ctx, const char *msg)
{
    (void)ctx;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    fprintf(stderr, "belt worker: %s %s\n", ts, msg);
}

/* ---- signals ------------------------------------------------------------ */

typedef struct sig_state {
    int sfd;                 /* signalfd for INT and TERM */
    int done_fd;             /* eventfd: the engine returned */
    belt__broker_worker *w;
    _Atomic int killed_by;   /* the second signal, or 0 */
    bool quiet;
} sig_state;

static void *sig_thread(void *arg)
{
    sig_state *s = arg;
    int caught = 0, first = 0;
    int64_t first_ns = 0;
    for (;;) {
        struct pollfd p[2] = { { .fd = s->sfd, .events = POLLIN },
                               { .fd = s->done_fd, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        struct signalfd_siginfo si;
        if (read(s->sfd, &si, sizeof si) != (ssize_t)sizeof si)
            continue;
        /* signalfd has no arrival stamp: the read time stands in (a signal
         * already pending when the repeat came is merged by the kernel). */
        int64_t now = belt__now_mono();
        if (caught > 0 && (int)si.ssi_signo == first &&
            now - first_ns < BELT__SIG_REPEAT_NS)
            continue; /* the same request, forwarded twice (run_signal.c) */
        if (++caught == 1) {
            first = (int)si.ssi_signo;
            first_ns = now;
            if (!s->quiet)
                fprintf(stderr, "belt worker: %s: finishing the running "
                        "jobs (again to kill them)\n",
                        strsignal((int)si.ssi_signo));
            belt__broker_worker_stop(s->w);
        } else {
            atomic_store(&s->killed_by, (int)si.ssi_signo);
            belt__broker_worker_abandon(s->w); /* publish nothing more */
            belt__kill_children();
            belt__broker_worker_kill(s->w);
        }
    }
    return NULL;
}

int belt__cli_worker(int argc, char **argv)
{
    const char *url_text = NULL, *ns = NULL, *id = NULL, *key_file = NULL;
    unsigned slots = 0, max_del = 0, prefetch = BELT__BROKER_PREFETCH_AUTO;
    int64_t visibility = 0;
    bool quiet = false, insecure = false;
    char msg[512];
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qh", worker_options, NULL)) !=
           -1) {
        switch (c) {
        case OPT_BROKER: url_text = optarg; break;
        case OPT_NAMESPACE:
            if (optarg[0] == '\0' || strlen(optarg) > 200) {
                fprintf(stderr, "belt worker: --namespace: expected a key "
                        "prefix of 1 to 200 bytes\n");
                return 2;
            }
            ns = optarg;
            break;
        case OPT_ID:
            if (optarg[0] == '\0' || strlen(optarg) > 200) {
                fprintf(stderr, "belt worker: --id: expected a name of 1 to "
                        "200 bytes\n");
                return 2;
            }
            id = optarg;
            break;
        case 'j':
            if (belt__parse_workers(optarg, &slots, msg, sizeof msg)) {
                fprintf(stderr, "belt worker: %s\n", msg);
                return 2;
            }
            break;
        case OPT_VISIBILITY:
            if (belt_parse_duration(optarg, &visibility) != BELT_OK ||
                visibility < INT64_C(10000000)) {
                fprintf(stderr, "belt worker: --visibility: expected a "
                        "duration of at least 10ms like \"30s\" or \"2m\", "
                        "not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_MAXDEL:
            if (parse_count(optarg, 1, 1000000, &max_del)) {
                fprintf(stderr, "belt worker: --max-deliveries: expected a "
                        "number from 1 to 1000000, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_PREFETCH:
            if (parse_count(optarg, 0, 100000, &prefetch)) {
                fprintf(stderr, "belt worker: --prefetch: expected a number "
                        "from 0 to 100000, not '%s'\n", optarg);
                return 2;
            }
            break;
        case OPT_KEY_FILE: key_file = optarg; break;
        case OPT_INSECURE: insecure = true; break;
        case 'q': quiet = true; break;
        case 'h': worker_usage(stdout); return 0;
        default:
            return belt__cli_bad_option("worker", c, argv, worker_options);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "belt worker: unexpected argument '%s'; try 'belt "
                "worker --help'\n", argv[optind]);
        return 2;
    }
    if (url_text == NULL) {
        fprintf(stderr, "belt worker: --broker URL is required (e.g. "
                "--broker redis://127.0.0.1:6379); try 'belt worker "
                "--help'\n");
        return 2;
    }
    belt__broker_url url;
    if (belt__broker_url_parse(url_text, &url, msg, sizeof msg) != BELT_OK) {
        fprintf(stderr, "belt worker: --broker %s\n", msg);
        return 2;
    }
    belt__broker_keys keys;
    if (belt__broker_keys_choose(&keys, key_file, insecure, msg, sizeof msg) !=
        BELT_OK) {
        fprintf(stderr, "belt worker: %s\n", msg);
        return 2;
    }
    if (keys.count == 0)
        fprintf(stderr, "belt worker: " BELT__BROKER_INSECURE_WARNING "\n");

    /* Before any thread exists: INT and TERM go to the signalfd, SIGPIPE
     * is ignored (see the essay). */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);
    pthread_sigmask(SIG_BLOCK, &set, &old);

    belt__broker_worker_options o;
    belt__broker_worker_options_init(&o);
    o.url = &url;
    o.ns = ns;
    o.slots = slots;
    o.prefetch = prefetch;
    o.visibility_ns = visibility;
    o.max_deliveries = max_del;
    o.id = id;
    o.keys = &keys;
    o.log = quiet ? NULL : log_stderr;
    belt__broker_worker *w = NULL;
    int status = 2;
    int rc = belt__broker_worker_create(&w, &o, msg, sizeof msg);
    belt__broker_keys_wipe(&keys); /* the worker keeps keyed contexts only */
    if (rc != BELT_OK) {
        fprintf(stderr, "belt worker: %s\n", msg);
        goto out;
    }
    sig_state s = { .sfd = signalfd(-1, &set, SFD_CLOEXEC),
                    .done_fd = eventfd(0, EFD_CLOEXEC), .w = w,
                    .quiet = quiet };
    pthread_t th;
    if (s.sfd < 0 || s.done_fd < 0 ||
        pthread_create(&th, NULL, sig_thread, &s) != 0) {
        fprintf(stderr, "belt worker: cannot set up signal handling: %s\n",
                strerror(errno));
        if (s.sfd >= 0)
            close(s.sfd);
        if (s.done_fd >= 0)
            close(s.done_fd);
        belt__broker_worker_free(w);
        status = 1;
        goto out;
    }
    rc = belt__broker_worker_run(w, msg, sizeof msg);
    uint64_t one = 1;
    if (write(s.done_fd, &one, sizeof one) < 0)
        belt__broker_worker_kill(w); /* cannot happen with an eventfd */
    pthread_join(th, NULL);
    close(s.sfd);
    close(s.done_fd);
    belt__broker_worker_stats st;
    belt__broker_worker_get_stats(w, &st);
    int killed = atomic_load(&s.killed_by);
    if (rc != BELT_OK) {
        fprintf(stderr, "belt worker: %s\n", msg);
        status = 1;
    } else if (killed != 0) {
        status = 128 + killed;
    } else {
        status = 0;
    }
    if (!quiet)
        fprintf(stderr, "belt worker: %s: %llu jobs done, %llu reclaimed, "
                "%llu dead-lettered, %llu refused, %llu skipped, %llu "
                "reconnects\n",
                belt__broker_worker_id(w), (unsigned long long)st.done,
                (unsigned long long)st.reclaimed, (unsigned long long)st.dead,
                (unsigned long long)st.refused, (unsigned long long)st.skipped,
                (unsigned long long)st.reconnects);
    belt__broker_worker_free(w);
out:
    /* The mask stays: a signal that came after the signal thread ended must
     * not kill belt on its way out with the wrong status. */
    (void)old;
    sigaction(SIGPIPE, &old_pipe, NULL);
    return status;
}
