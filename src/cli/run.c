/* run.c: `belt run`: options, and config mode.
 *
 * Two modes share one engine.  Config mode (`belt run jobs.json`) takes its
 * jobs from the config's scheduler (belt_sched_*: dependency order, resume,
 * halt-on-error); command mode (`belt run COMMAND ::: ARGS`, GNU parallel's
 * command line, quick.c) makes jobs from input records.  A belt__source
 * (run.h) hides the difference; the engine they share is engine.c.
 *
 * Which mode: the options are read up to the first operand, as GNU
 * parallel reads them (Getopt::Long with require_order: `belt run -j2 echo
 * -n x` gives -n to echo).  If that operand is the only one and names a
 * readable file starting with '{' (a JSON object), it is a config, and the
 * words after it are read as options too (`belt run jobs.json -j 8`).
 * Anything else is a command: its words, then `:::`, `:::+`, `::::` and
 * `::::+` groups.  A pipeline config (a "pipeline" key) has its own parser
 * (cli/pipeline.c).
 *
 * Options the two modes spell alike but GNU parallel means differently
 * follow the mode: -q is --quote for a command and --quiet for a config;
 * --resume is parallel's flag (with --joblog) for a command and takes the
 * results FILE of a config (`--resume FILE` before a config's path also
 * works: the word after --resume is its FILE when the one after that is a
 * config); --halt-on-error takes parallel's value when one follows; -j 0 is
 * "as many as possible" (256) for a command and one per CPU for a config;
 * --retries N counts attempts (parallel) for a command and retries for a
 * config, with the one limit 100 either way.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "belt/config.h"
#include "belt/sched.h"
#include "belt/error.h"
#include "belt/pool.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "util/cpu.h"
#include "util/suggest.h"
#include "util/clock.h"
#include "pipeline/pipeline.h"

/* ---- options ------------------------------------------------------------ */

static void run_usage(FILE *out)
{
    fputs(
        "usage: belt run [options] COMMAND [ARGS...] [::: ARGS | :::: FILES]...\n"
        "       belt run [options] COMMAND...    (arguments from stdin)\n"
        "       belt run [options] CONFIG.json   (jobs of a config; belt.json(5))\n"
        "       belt run [options] PIPELINE.json (belt run PIPELINE.json -h)\n"
        "\n"
        "Config or command: a single operand that names a .json file, or a\n"
        "readable file whose text starts with '{' (a JSON object), is a config;\n"
        "anything else is a command,\n"
        "run through /bin/sh once per argument as GNU parallel runs it: the same\n"
        "command lines, replacement strings, quoting, output and exit status.\n"
        "Options before the command belong to belt; after a config they may\n"
        "also follow it.\n"
        "\n"
        "common options:\n"
        "  -j, --jobs N         jobs at once: N, N% of the CPUs, +N or -N CPUs,\n"
        "                       0 for as many as possible (configs: 0 is one per\n"
        "                       CPU; default: the config's \"workers\", else one\n"
        "                       per CPU); also -P, --workers\n"
        "      --policy P       how jobs are spread over workers: shared (default),\n"
        "                       round-robin, random, least-loaded, power-of-two,\n"
        "                       power-of-d, join-idle-queue, work-stealing\n"
        "      --results FILE   where JSON result lines go (default belt-results.jsonl\n"
        "                       for a config, kept as .1, .2 ... on the next run;\n"
        "                       none for a command; - for stdout with a config)\n"
        "      --joblog FILE    GNU parallel's job log (+FILE appends)\n"
        "      --dry-run        print what would run (a config: JSON Lines)\n"
        "  -k, --keep-order     output (results) in input order\n"
        "      --quiet          no progress, summary or notices on stderr\n"
        "      --timeout DUR    kill a job after DUR (\"30s\", \"2m\", \"1.5\"; a\n"
        "                       command also N%: of the median runtime); 0: none\n"
        "      --retries N      a command: run a failing job up to N times in all;\n"
        "                       a config: retries after the first attempt (0-100)\n"
        "      --halt WHEN,WHY=N  stop: WHEN now|soon, WHY fail|success|done,\n"
        "                       N a count or a percentage (also 0, 1, 2, -1, -2)\n"
        "\n"
        "a command (GNU parallel's options; see belt-run(1), COMING FROM GNU\n"
        "PARALLEL):\n"
        "  ::: A B ...          arguments; :::: FILE... reads them from files;\n"
        "                       :::+ and ::::+ link to the source before; several\n"
        "                       sources combine as every combination\n"
        "  -a, --arg-file FILE  arguments from FILE (repeatable)\n"
        "  -0, --null, -d, --delimiter D   what ends an argument\n"
        "  -C, --colsep REGEX   split each argument into columns {1} {2} ...\n"
        "  -n, --max-args N     N arguments per job; -N N: the same, with context\n"
        "  -m, -X, --xargs      as many arguments per job as fit (-X: repeat the\n"
        "                       word around {}); -r: skip blank arguments\n"
        "  -I R, -i             R (or {}) is the replacement string\n"
        "                       ({} {.} {/} {//} {/.} {#} {%} {n} {n.} {n/} ...;\n"
        "                       none in the command: the arguments are appended)\n"
        "  -q, --quote          quote the command's words, not the arguments\n"
        "      --tag, --tagstring S  start each output line with the args, or S\n"
        "      --line-buffer    output line by line; -u, --ungroup: as it comes\n"
        "      --delay DUR, --shuf, --bar, --eta, --progress\n"
        "      --resume, --resume-failed, --retry-failed   with --joblog\n"
        "      --pipe, --pipepart -a FILE   blocks of input to each job's stdin:\n"
        "                       --block SIZE, -N records, --recstart S, --recend S,\n"
        "                       --round-robin\n"
        "      --command CMD    CMD as one word (belt's older quick mode)\n"
        "\n"
        "a config:\n"
        "      --resume FILE    skip jobs whose id has status \"ok\" in FILE, the\n"
        "                       results of an earlier run\n"
        "      --halt-on-error  start no new job after one did not succeed\n"
        "  -q, --quiet          no progress line and no summary\n"
        "      --broker URL     run the jobs on `belt worker` processes through\n"
        "                       the Redis at URL: redis://[[user]:password@]host\n"
        "                       [:port][/db] or unix:///path/redis.sock (password\n"
        "                       also from $BELT_REDIS_PASSWORD); -j and --policy\n"
        "                       are then the workers' business\n"
        "      --namespace P    prefix of the broker's keys (default \"belt\")\n"
        "      --max-deliveries N  deliveries of a job before it is dead-lettered\n"
        "                       (a worker died running it each time; default 3)\n"
        "      --key-file FILE  sign the jobs, and take only results signed, with\n"
        "                       the key in FILE (belt keygen; default\n"
        "                       $BELT_KEY_FILE); the workers need the same file\n"
        "      --insecure       run without a key: unsigned jobs, any result\n"
        "      --resume FILE    with --broker: also continue the run that a killed\n"
        "                       submitter left with results file FILE\n"
        "\n"
        "  -h, --help           show this help\n"
        "\n"
        "exit status, a command: 0 every job ok, 1-100 the number of failed jobs,\n"
        "101 more (with --halt: as GNU parallel), 2 usage error, 130/143\n"
        "interrupted; a closed stdout stops belt as SIGPIPE stops parallel.\n"
        "A config: 0 every job ok, 1 some job did not succeed, 2 usage or config\n"
        "error (nothing run), 130/143 interrupted.  See belt-run(1).\n",
        out);
}

enum {
    OPT_POLICY = 256, OPT_RESULTS, OPT_RESUME, OPT_JOBLOG, OPT_DRY_RUN,
    OPT_HALT_ON_ERROR, OPT_HALT, OPT_TIMEOUT, OPT_RETRIES, OPT_COMMAND,
    OPT_LINE_BUFFER, OPT_BROKER, OPT_NAMESPACE, OPT_MAX_DELIVERIES,
    OPT_QUIET, OPT_QUOTE, OPT_RESUME_FAILED, OPT_RETRY_FAILED, OPT_XARGS,
    OPT_ER, OPT_BNR, OPT_DNR, OPT_BNER, OPT_SEQR, OPT_SLOTR, OPT_TAG,
    OPT_TAGSTRING, OPT_GROUP, OPT_DELAY, OPT_SHUF, OPT_BAR, OPT_ETA,
    OPT_PROGRESS, OPT_NO_PROGRESS, OPT_PIPE, OPT_PIPEPART, OPT_BLOCK,
    OPT_RECSTART, OPT_RECEND, OPT_ROUND_ROBIN, OPT_IGNORED, OPT_ARG_SEP,
    OPT_ARG_FILE_SEP, OPT_REMOTE, OPT_DEAD_LETTER, OPT_KEY_FILE, OPT_INSECURE
};

static const struct option run_options[] = {
    {"jobs", required_argument, NULL, 'j'},
    {"workers", required_argument, NULL, 'j'},
    {"max-procs", required_argument, NULL, 'j'},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"results", required_argument, NULL, OPT_RESULTS},
    {"resume", optional_argument, NULL, OPT_RESUME},
    {"resume-failed", no_argument, NULL, OPT_RESUME_FAILED},
    {"retry-failed", no_argument, NULL, OPT_RETRY_FAILED},
    {"joblog", required_argument, NULL, OPT_JOBLOG},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"dryrun", no_argument, NULL, OPT_DRY_RUN},
    {"halt-on-error", optional_argument, NULL, OPT_HALT_ON_ERROR},
    {"halt", required_argument, NULL, OPT_HALT},
    {"keep-order", no_argument, NULL, 'k'},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"quote", no_argument, NULL, OPT_QUOTE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"command", required_argument, NULL, OPT_COMMAND},
    {"arg-file", required_argument, NULL, 'a'},
    {"null", no_argument, NULL, '0'},
    {"delimiter", required_argument, NULL, 'd'},
    {"colsep", required_argument, NULL, 'C'},
    {"col-sep", required_argument, NULL, 'C'},
    {"max-args", required_argument, NULL, 'n'},
    {"max-replace-args", required_argument, NULL, 'N'},
    {"xargs", no_argument, NULL, OPT_XARGS},
    {"replace", optional_argument, NULL, 'i'},
    {"extensionreplace", required_argument, NULL, OPT_ER},
    {"er", required_argument, NULL, OPT_ER},
    {"basenamereplace", required_argument, NULL, OPT_BNR},
    {"bnr", required_argument, NULL, OPT_BNR},
    {"dirnamereplace", required_argument, NULL, OPT_DNR},
    {"dnr", required_argument, NULL, OPT_DNR},
    {"basenameextensionreplace", required_argument, NULL, OPT_BNER},
    {"bner", required_argument, NULL, OPT_BNER},
    {"seqreplace", required_argument, NULL, OPT_SEQR},
    {"slotreplace", required_argument, NULL, OPT_SLOTR},
    {"tag", no_argument, NULL, OPT_TAG},
    {"tagstring", required_argument, NULL, OPT_TAGSTRING},
    {"line-buffer", no_argument, NULL, OPT_LINE_BUFFER},
    {"linebuffer", no_argument, NULL, OPT_LINE_BUFFER},
    {"lb", no_argument, NULL, OPT_LINE_BUFFER},
    {"ungroup", no_argument, NULL, 'u'},
    {"group", no_argument, NULL, OPT_GROUP},
    {"delay", required_argument, NULL, OPT_DELAY},
    {"shuf", no_argument, NULL, OPT_SHUF},
    {"bar", no_argument, NULL, OPT_BAR},
    {"eta", no_argument, NULL, OPT_ETA},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"pipe", no_argument, NULL, OPT_PIPE},
    {"spreadstdin", no_argument, NULL, OPT_PIPE},
    {"pipepart", no_argument, NULL, OPT_PIPEPART},
    {"pipe-part", no_argument, NULL, OPT_PIPEPART},
    {"block", required_argument, NULL, OPT_BLOCK},
    {"block-size", required_argument, NULL, OPT_BLOCK},
    {"recstart", required_argument, NULL, OPT_RECSTART},
    {"recend", required_argument, NULL, OPT_RECEND},
    {"round-robin", no_argument, NULL, OPT_ROUND_ROBIN},
    {"roundrobin", no_argument, NULL, OPT_ROUND_ROBIN},
    {"no-run-if-empty", no_argument, NULL, 'r'},
    {"will-cite", no_argument, NULL, OPT_IGNORED},
    {"no-notice", no_argument, NULL, OPT_IGNORED},
    {"arg-sep", required_argument, NULL, OPT_ARG_SEP},
    {"arg-file-sep", required_argument, NULL, OPT_ARG_FILE_SEP},
    {"sshlogin", required_argument, NULL, OPT_REMOTE},
    {"sshloginfile", required_argument, NULL, OPT_REMOTE},
    {"slf", required_argument, NULL, OPT_REMOTE},
    {"broker", required_argument, NULL, OPT_BROKER},
    {"namespace", required_argument, NULL, OPT_NAMESPACE},
    {"max-deliveries", required_argument, NULL, OPT_MAX_DELIVERIES},
    {"dead-letter", required_argument, NULL, OPT_DEAD_LETTER},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define SHORT_OPTS ":hj:P:kqa:0d:C:n:N:XmI:i::ruS:"

int belt__parse_workers(const char *text, unsigned *out, char *msg,
                        size_t msg_size)
{
    if (belt_parse_workers(text, belt__cpu_count(), out) != BELT_OK) {
        snprintf(msg, msg_size, "-j/--workers: expected a count from 1 to %d, "
                 "0 for one per CPU, or a percentage of the CPUs from 1%% to "
                 "1000%%, not '%s'", BELT_CONFIG_MAX_WORKERS, text);
        return -1;
    }
    return 0;
}

/* Most jobs at once for a command's -j 0 ("as many as possible"). */
#define JOBS_UNLIMITED 256u

/* -j of a command, as GNU parallel reads it: N, N% of the CPUs, +N and -N
 * CPUs (at least 1), 0 for as many as possible.  0, or -1 with msg. */
static int parse_jobs(const char *text, belt__run_opts *o, char *msg,
                      size_t msg_size)
{
    unsigned ncpu = belt__cpu_count();
    char *end;
    errno = 0;
    if (text[0] == '+' || text[0] == '-') {
        long v = strtol(text + 1, &end, 10);
        if (end != text + 1 && *end == '\0' && errno == 0 && v >= 0 &&
            v <= BELT_CONFIG_MAX_WORKERS) {
            long n = text[0] == '+' ? (long)ncpu + v : (long)ncpu - v;
            o->workers = n < 1 ? 1 : n > BELT_CONFIG_MAX_WORKERS
                                         ? BELT_CONFIG_MAX_WORKERS
                                         : (unsigned)n;
            return 0;
        }
    } else if (strcmp(text, "0") == 0) {
        o->workers = JOBS_UNLIMITED;
        o->cmd.jobs_unlimited = true;
        return 0;
    } else if (belt_parse_workers(text, ncpu, &o->workers) == BELT_OK) {
        return 0;
    }
    snprintf(msg, msg_size, "-j/--jobs: expected N (1 to %d), N%% of the "
             "CPUs, +N or -N (CPUs plus or minus N), or 0 (as many as "
             "possible), not '%s'", BELT_CONFIG_MAX_WORKERS, text);
    return -1;
}

/* --halt as parallel's parse_halt: "never", "now,fail=1", "soon,success=5%",
 * "done=...", and the old 0, 1, 2, -1, -2 and "N%". */
static int parse_halt(const char *text, belt__cmd_opts *c)
{
    static const struct { const char *old, *now; } alias[] = {
        {"0", "never"}, {"1", "soon,fail=1"}, {"2", "now,fail=1"},
        {"-1", "soon,success=1"}, {"-2", "now,success=1"}, {NULL, NULL},
    };
    char buf[128];
    const char *t = text;
    for (size_t i = 0; alias[i].old; i++)
        if (strcmp(text, alias[i].old) == 0)
            t = alias[i].now;
    size_t tl = strlen(t);
    if (tl > 1 && tl < 20 && t[tl - 1] == '%' &&
        strspn(t, "0123456789") == tl - 1) {
        snprintf(buf, sizeof buf, "soon,fail=%s", t);
        t = buf;
    }
    if (strcmp(t, "never") == 0) {
        c->halt_when = 0;
        return 0;
    }
    int when;
    if (strncmp(t, "soon,", 5) == 0)
        when = 1;
    else if (strncmp(t, "now,", 4) == 0)
        when = 2;
    else
        return -1;
    t += when == 1 ? 5 : 4;
    int why;
    if (strncmp(t, "fail=", 5) == 0) {
        why = 1;
        t += 5;
    } else if (strncmp(t, "success=", 8) == 0) {
        why = 2;
        t += 8;
    } else if (strncmp(t, "done=", 5) == 0) {
        why = 3;
        t += 5;
    } else {
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long v = strtoul(t, &end, 10);
    if (end == t || errno != 0 || t[0] == '-' || v > 1000000000UL)
        return -1;
    bool pct = false;
    if (*end == '%') {
        pct = true;
        end++;
        if (v < 1 || v > 100)
            return -1;
    }
    if (*end != '\0' || (!pct && v < 1))
        return -1;
    c->halt_when = when;
    c->halt_why = why;
    c->halt_pct = pct;
    c->halt_value = pct ? (double)v / 100.0 : (double)v;
    return 0;
}

/* A small count option (-n, -N): 1 or more. */
static int parse_count(const char *name, const char *text, unsigned *out)
{
    int64_t v;
    if (belt__par_parse_size(text, &v) != BELT_OK || v < 1 || v > 1000000000) {
        fprintf(stderr, "belt run: %s: expected a count of 1 or more, not "
                "'%s'\n", name, text);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* Checks a policy name against the pool's list.  0, or -1 after printing. */
static int check_policy(const char *policy, const char *where)
{
    const char *const *names = belt_pool_policy_names();
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp(names[i], policy) == 0)
            return 0;
    const char *hint = names ? belt__suggest(policy, names) : NULL;
    fprintf(stderr, "belt run: %s: unknown policy '%s'", where, policy);
    if (hint)
        fprintf(stderr, " (did you mean '%s'?)", hint);
    fprintf(stderr, "; policies are:");
    for (size_t i = 0; names && names[i]; i++)
        fprintf(stderr, " %s", names[i]);
    fputc('\n', stderr);
    return -1;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n > t && strcmp(s + n - t, tail) == 0;
}

/* Whether path is a config (the rule `belt run --help` states): a name
 * ending in ".json" (readable or not: a typo gets the loader's message, not
 * a command that runs nothing), or a readable regular file whose first
 * non-blank byte is '{'. */
static bool is_config_file(const char *path)
{
    struct stat st;
    if (path == NULL)
        return false;
    if (ends_with(path, ".json"))
        return true;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    int ch;
    while ((ch = getc(f)) != EOF && (ch == ' ' || ch == '\t' || ch == '\n' ||
                                     ch == '\r'))
        ;
    fclose(f);
    return ch == '{';
}

/* Before a config's path, whether the word after --resume is its FILE
 * (belt's --resume FILE) rather than a command (parallel's --resume): the
 * word after it is a config, or it is a results file by name (.jsonl,
 * .json) or by content (a regular file of JSON lines). */
static bool looks_like_results(const char *word, const char *next)
{
    if ((next && is_config_file(next)) || ends_with(word, ".jsonl") ||
        ends_with(word, ".json"))
        return true;
    struct stat st;
    if (stat(word, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    FILE *f = fopen(word, "re");
    int ch = f ? getc(f) : EOF;
    if (f)
        fclose(f);
    return ch == '{';
}

/* What the parser keeps besides the options: where the command starts, and
 * the first option that only a command takes (for config mode's error). */
struct parse_state {
    bool config_pass;        /* parsing what follows a config's path */
    const char *cmd_only;    /* first command-only option seen */
    const char *arg_sep, *arg_file_sep;
    bool saw_q;              /* -q: --quote for a command, --quiet for a config */
    const char **arg_files;  /* -a, in order */
    size_t n_arg_files;
    const char *pipeline_only; /* an option only a pipeline config takes */
};

static void cmd_only(struct parse_state *ps, const char *name)
{
    if (ps->cmd_only == NULL)
        ps->cmd_only = name;
}

/* Handles one option c (from getopt_long).  Returns -1 to go on, or an exit
 * status. */
static int take_option(int c, int argc, char **argv, belt__run_opts *o,
                       struct parse_state *ps)
{
    belt__cmd_opts *cm = &o->cmd;
    char msg[300];
    switch (c) {
    case 'j':
    case 'P':
        o->workers_arg = optarg;
        break;
    case OPT_POLICY: o->policy = optarg; break;
    case OPT_RESULTS: o->results_path = optarg; break;
    case OPT_RESUME:
        if (optarg) {
            o->resume_path = optarg;
        } else if (ps->config_pass ||
                   (optind < argc && argv[optind][0] != '-' &&
                    looks_like_results(argv[optind], argc - optind > 1
                                                         ? argv[optind + 1]
                                                         : NULL))) {
            /* belt's --resume FILE, before or after a config */
            if (optind >= argc) {
                fprintf(stderr, "belt run: option '--resume' needs a value "
                        "with a config; try 'belt run --help'\n");
                return 2;
            }
            o->resume_path = argv[optind++];
        } else {
            cm->resume = true; /* parallel's --resume (with --joblog) */
            cmd_only(ps, "--resume without FILE");
        }
        break;
    case OPT_RESUME_FAILED:
        cm->resume_failed = true;
        cmd_only(ps, "--resume-failed");
        break;
    case OPT_RETRY_FAILED:
        cm->retry_failed = true;
        cmd_only(ps, "--retry-failed");
        break;
    case OPT_JOBLOG: o->joblog_path = optarg; break;
    case OPT_DRY_RUN: o->dry_run = true; break;
    case OPT_HALT_ON_ERROR: {
        /* belt's flag, or parallel's --halt-on-error VAL */
        const char *val = optarg;
        if (val == NULL && optind < argc && !ps->config_pass) {
            belt__cmd_opts probe = {0};
            if (parse_halt(argv[optind], &probe) == 0)
                val = argv[optind++];
        }
        if (val == NULL) {
            o->halt_on_error = true;
            break;
        }
        optarg = (char *)val;
    }
        /* fall through */
    case OPT_HALT:
        if (parse_halt(optarg, cm) != 0) {
            fprintf(stderr, "belt run: --halt: expected WHEN,WHY=N (WHEN "
                    "now or soon, WHY fail, success or done, N a count or "
                    "a percentage like 5%%), never, or 0, 1, 2, -1, -2; not "
                    "'%s'\n", optarg);
            return 2;
        }
        if (cm->halt_when == 1 && cm->halt_why == 1 && !cm->halt_pct &&
            cm->halt_value == 1)
            o->halt_on_error = true; /* the same for a config */
        else if (cm->halt_when > 0)
            cmd_only(ps, "--halt (other than soon,fail=1)");
        break;
    case 'k': o->keep_order = true; break;
    case 'q': ps->saw_q = true; break;
    case OPT_QUIET: o->quiet = true; break;
    case OPT_QUOTE:
        cm->quote = true;
        cmd_only(ps, "--quote");
        break;
    case OPT_TIMEOUT: {
        size_t tl = strlen(optarg);
        if (tl > 1 && optarg[tl - 1] == '%') {
            char *end;
            double pct = strtod(optarg, &end);
            if (end != optarg + tl - 1 || !(pct > 0) || pct > 1e6) {
                fprintf(stderr, "belt run: --timeout: expected a duration or "
                        "a percentage like 200%%, not '%s'\n", optarg);
                return 2;
            }
            cm->timeout_pct = pct / 100.0;
            cmd_only(ps, "--timeout N%");
            break;
        }
        if (strcmp(optarg, "0") == 0) {
            o->timeout_ns = 0;
        } else if (belt__par_parse_duration(optarg, &o->timeout_ns) !=
                       BELT_OK || o->timeout_ns <= 0) {
            fprintf(stderr, "belt run: --timeout: expected a duration "
                    "like \"30s\", \"500ms\", \"2m\" or \"1.5\" (seconds), "
                    "not '%s'\n", optarg);
            return 2;
        }
        o->have_timeout = true;
        break;
    }
    case OPT_RETRIES: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(optarg, &end, 10);
        if (end == optarg || *end || errno || optarg[0] == '-' ||
            v > BELT_CONFIG_MAX_RETRIES) {
            fprintf(stderr, "belt run: --retries: expected a number from "
                    "0 to %d, not '%s'\n", BELT_CONFIG_MAX_RETRIES, optarg);
            return 2;
        }
        o->retries = (unsigned)v;
        o->have_retries = true;
        break;
    }
    case OPT_COMMAND: o->command = optarg; break;
    case 'a':
        if (ps->n_arg_files < (size_t)argc)
            ps->arg_files[ps->n_arg_files++] = optarg;
        cmd_only(ps, "-a/--arg-file");
        break;
    case '0': o->null_sep = true; cmd_only(ps, "-0/--null"); break;
    case 'd': cm->delim = optarg; cmd_only(ps, "-d/--delimiter"); break;
    case 'C': cm->colsep = optarg; cmd_only(ps, "--colsep"); break;
    case 'n':
        if (parse_count("-n/--max-args", optarg, &cm->max_args) != 0)
            return 2;
        cmd_only(ps, "-n/--max-args");
        break;
    case 'N':
        if (strcmp(optarg, "0") == 0) {
            cm->no_args = true; /* -N0: one record per job, none shown */
            cm->max_replace_args = 0;
        } else if (parse_count("-N/--max-replace-args", optarg,
                               &cm->max_replace_args) != 0) {
            return 2;
        }
        cmd_only(ps, "-N");
        break;
    case 'X': cm->X = true; cmd_only(ps, "-X"); break;
    case 'm': cm->m = true; cmd_only(ps, "-m"); break;
    case OPT_XARGS: cm->xargs = true; cmd_only(ps, "--xargs"); break;
    case 'i':
        /* parallel's -i/--replace takes an optional value the Perl way:
         * the next word, when it does not start with '-' */
        if (optarg == NULL && !ps->config_pass && optind < argc &&
            argv[optind][0] != '-' && strcmp(argv[optind], ":::") != 0)
            optarg = argv[optind++];
        /* fall through */
    case 'I':
        cm->names.s[BELT__RPL_ARG] = optarg && *optarg ? optarg : "{}";
        cmd_only(ps, "-I/--replace");
        break;
    case OPT_ER: cm->names.s[BELT__RPL_NOEXT] = optarg; cmd_only(ps, "--extensionreplace"); break;
    case OPT_BNR: cm->names.s[BELT__RPL_BASE] = optarg; cmd_only(ps, "--basenamereplace"); break;
    case OPT_DNR: cm->names.s[BELT__RPL_DIR] = optarg; cmd_only(ps, "--dirnamereplace"); break;
    case OPT_BNER: cm->names.s[BELT__RPL_BASENOEXT] = optarg; cmd_only(ps, "--basenameextensionreplace"); break;
    case OPT_SEQR: cm->names.s[BELT__RPL_SEQ] = optarg; cmd_only(ps, "--seqreplace"); break;
    case OPT_SLOTR: cm->names.s[BELT__RPL_SLOT] = optarg; cmd_only(ps, "--slotreplace"); break;
    case OPT_TAG: cm->tag = true; cmd_only(ps, "--tag"); break;
    case OPT_TAGSTRING: cm->tagstring = optarg; cmd_only(ps, "--tagstring"); break;
    case OPT_LINE_BUFFER: o->line_buffer = true; cmd_only(ps, "--line-buffer"); break;
    case 'u': cm->ungroup = true; cmd_only(ps, "-u/--ungroup"); break;
    case OPT_GROUP: break; /* the default */
    case OPT_DELAY:
        if (belt__par_parse_duration(optarg, &cm->delay_ns) != BELT_OK) {
            fprintf(stderr, "belt run: --delay: expected a duration like "
                    "\"0.5\" or \"2s\", not '%s'\n", optarg);
            return 2;
        }
        cmd_only(ps, "--delay");
        break;
    case OPT_SHUF: cm->shuf = true; cmd_only(ps, "--shuf"); break;
    case OPT_BAR: cm->bar = true; cmd_only(ps, "--bar"); break;
    case OPT_ETA: cm->eta = true; cmd_only(ps, "--eta"); break;
    case OPT_PROGRESS: cm->progress = true; o->progress = 1; break;
    case OPT_NO_PROGRESS:
        o->progress = -1;
        ps->pipeline_only = "--no-progress";
        break;
    case OPT_PIPE: cm->pipe = true; cmd_only(ps, "--pipe"); break;
    case OPT_PIPEPART: cm->pipepart = true; cmd_only(ps, "--pipepart"); break;
    case OPT_BLOCK:
        if (belt__par_parse_size(optarg, &cm->block) != BELT_OK ||
            cm->block == 0) {
            fprintf(stderr, "belt run: --block: expected a size like 1M, "
                    "500k or -4 (blocks per job slot), not '%s'\n", optarg);
            return 2;
        }
        cm->block_set = true;
        cmd_only(ps, "--block");
        break;
    case OPT_RECSTART: cm->recstart = optarg; cmd_only(ps, "--recstart"); break;
    case OPT_RECEND: cm->recend = optarg; cmd_only(ps, "--recend"); break;
    case OPT_ROUND_ROBIN: cm->round_robin = true; cmd_only(ps, "--round-robin"); break;
    case 'r': cm->skip_blank = true; cmd_only(ps, "-r"); break;
    case OPT_IGNORED: break;
    case OPT_ARG_SEP: ps->arg_sep = optarg; break;
    case OPT_ARG_FILE_SEP: ps->arg_file_sep = optarg; break;
    case 'S':
    case OPT_REMOTE:
        fprintf(stderr, "belt run: remote hosts (-S, --sshlogin) are not "
                "supported: run `belt worker` on each machine and `belt run "
                "CONFIG --broker URL` (see belt-run(1), COMING FROM GNU "
                "PARALLEL)\n");
        return 2;
    case OPT_BROKER: o->broker = optarg; break;
    case OPT_NAMESPACE: o->broker_ns = optarg; break;
    case OPT_KEY_FILE: o->key_file = optarg; break;
    case OPT_INSECURE: o->insecure = true; break;
    case OPT_MAX_DELIVERIES: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(optarg, &end, 10);
        if (end == optarg || *end || errno || optarg[0] == '-' ||
            v < 1 || v > 1000) {
            fprintf(stderr, "belt run: --max-deliveries: expected a "
                    "number from 1 to 1000, not '%s'\n", optarg);
            return 2;
        }
        o->max_deliveries = (unsigned)v;
        break;
    }
    case OPT_DEAD_LETTER:
        ps->pipeline_only = "--dead-letter";
        break;
    case 'h':
        run_usage(stdout);
        return 0;
    default:
        return belt__cli_bad_option("run", c, argv, run_options);
    }
    (void)msg;
    return -1;
}

/* Runs getopt_long over argv[0..argc).  require_order: stop at the first
 * operand (a command's options come before it).  Returns -1 to go on, or
 * an exit status. */
static int parse_pass(int argc, char **argv, belt__run_opts *o,
                      struct parse_state *ps, bool require_order)
{
    opterr = 0;
    optind = 0; /* a full reset: the previous pass's state goes */
    int c;
    const char *shortopts = require_order ? "+" SHORT_OPTS : SHORT_OPTS;
    while ((c = getopt_long(argc, argv, shortopts, run_options, NULL)) != -1) {
        int rc = take_option(c, argc, argv, o, ps);
        if (rc >= 0)
            return rc;
    }
    return -1;
}

static bool is_sep(const struct parse_state *ps, const char *a, bool *file,
                   bool *linked)
{
    const char *as = ps->arg_sep ? ps->arg_sep : ":::";
    const char *fs = ps->arg_file_sep ? ps->arg_file_sep : "::::";
    size_t al = strlen(as), fl = strlen(fs);
    if (strncmp(a, fs, fl) == 0 && (a[fl] == '\0' || strcmp(a + fl, "+") == 0)) {
        *file = true;
        *linked = a[fl] == '+';
        return true;
    }
    if (strncmp(a, as, al) == 0 && (a[al] == '\0' || strcmp(a + al, "+") == 0)) {
        *file = false;
        *linked = a[al] == '+';
        return true;
    }
    return false;
}

/* Splits the operands argv[from..argc) into the command's words and its
 * input sources (-a files first, then the ::: and :::: groups).  0, or -1
 * when memory runs out. */
static int split_operands(int argc, char **argv, int from,
                          struct parse_state *ps, belt__cmd_opts *c)
{
    size_t max = ps->n_arg_files + (size_t)(argc - from) + 1;
    c->src = calloc(max, sizeof *c->src);
    if (c->src == NULL)
        return -1;
    for (size_t i = 0; i < ps->n_arg_files; i++)
        c->src[c->nsrc++] = (belt__par_source){.name = ps->arg_files[i]};
    int i = from;
    bool file, linked;
    while (i < argc && !is_sep(ps, argv[i], &file, &linked))
        i++;
    c->words = argv + from;
    c->nwords = (size_t)(i - from);
    while (i < argc) {
        is_sep(ps, argv[i], &file, &linked);
        int g = ++i;
        bool f2, l2;
        while (i < argc && !is_sep(ps, argv[i], &f2, &l2))
            i++;
        if (file) {
            for (int k = g; k < i; k++)
                c->src[c->nsrc++] = (belt__par_source){
                    .name = argv[k], .linked = linked};
        } else {
            c->src[c->nsrc++] = (belt__par_source){
                .vals = argv + g, .nvals = (size_t)(i - g), .linked = linked};
        }
    }
    return 0;
}

#define RUN_PIPELINE (-2)

/* Parses argv into o.  Returns -1 to go on, RUN_PIPELINE for a pipeline
 * config, or an exit status. */
static int parse_run_args(int argc, char **argv, belt__run_opts *o)
{
    memset(o, 0, sizeof *o);
    belt__par_names_default(&o->cmd.names);
    struct parse_state ps = {0};
    ps.arg_files = calloc((size_t)argc + 1, sizeof *ps.arg_files);
    if (ps.arg_files == NULL) {
        fprintf(stderr, "belt run: out of memory\n");
        return 1;
    }
    int rc = parse_pass(argc, argv, o, &ps, true);
    if (rc >= 0)
        goto done;
    int first = optind;
    /* "--" ended the options: what follows is a command. */
    bool dashdash = first > 1 && strcmp(argv[first - 1], "--") == 0;
    if (!o->command && first < argc && !dashdash &&
        is_config_file(argv[first])) {
        if (belt__pipeline_is_config_file(argv[first])) {
            rc = RUN_PIPELINE; /* cli/pipeline.c reads the options */
            goto done;
        }
        belt__run_opts save = *o;
        struct parse_state ps2 = ps;
        ps2.config_pass = true;
        int n2 = argc - first;
        char **argv2 = calloc((size_t)n2 + 1, sizeof *argv2);
        if (argv2 == NULL) {
            fprintf(stderr, "belt run: out of memory\n");
            rc = 1;
            goto done;
        }
        argv2[0] = argv[0];
        for (int i = first + 1; i < argc; i++)
            argv2[i - first] = argv[i];
        rc = parse_pass(n2, argv2, o, &ps2, false);
        int left = n2 - optind;
        const char *extra = left > 0 ? argv2[optind] : NULL;
        free(argv2);
        if (rc >= 0)
            goto done;
        if (left == 0) {
            ps = ps2;
            o->config_path = argv[first];
        } else if (ends_with(argv[first], ".json")) {
            fprintf(stderr, "belt run: one CONFIG at a time, got '%s' and "
                    "more ('%s'); to run a command, give the command first\n",
                    argv[first], extra);
            rc = 2;
            goto done;
        } else {
            *o = save; /* more operands: a command after all */
        }
    }
    if (o->config_path == NULL) {
        o->command_mode = true;
        if (split_operands(argc, argv, first, &ps, &o->cmd) != 0) {
            fprintf(stderr, "belt run: out of memory\n");
            rc = 1;
            goto done;
        }
    }
    rc = -1;
done:
    if (rc == -1) {
        if (ps.saw_q) {
            if (o->command_mode)
                o->cmd.quote = true;
            else
                o->quiet = true;
        }
        if (!o->command_mode && ps.cmd_only) {
            fprintf(stderr, "belt run: %s only applies to a command, not to "
                    "a config\n", ps.cmd_only);
            rc = 2;
        } else if (ps.pipeline_only) {
            fprintf(stderr, "belt run: %s only applies to a pipeline "
                    "config\n", ps.pipeline_only);
            rc = 2;
        }
    }
    free(ps.arg_files);
    return rc;
}

/* The checks that need the whole command line.  -1 to go on, or 2. */
static int check_run_args(belt__run_opts *o)
{
    char msg[300];
    belt__cmd_opts *c = &o->cmd;
    if (o->command_mode) {
        if (o->command && c->nwords > 0) {
            fprintf(stderr, "belt run: --command takes the command as one "
                    "word; '%s' is a second one (arguments go after :::)\n",
                    c->words[0]);
            return 2;
        }
        if (o->command && o->command[0] == '\0') {
            fprintf(stderr, "belt run: --command: empty command\n");
            return 2;
        }
        if (o->workers_arg && parse_jobs(o->workers_arg, o, msg,
                                         sizeof msg) != 0) {
            fprintf(stderr, "belt run: %s\n", msg);
            return 2;
        }
        if (!o->workers_arg)
            o->workers = belt__cpu_count();
        if (o->resume_path) {
            fprintf(stderr, "belt run: --resume FILE needs a config; with a "
                    "command, --resume reruns what --joblog FILE lacks\n");
            return 2;
        }
        if ((c->resume || c->resume_failed || c->retry_failed) &&
            o->joblog_path == NULL) {
            fprintf(stderr, "belt run: --resume, --resume-failed and "
                    "--retry-failed need --joblog FILE\n");
            return 2;
        }
        if (o->joblog_path && o->joblog_path[0] == '+') {
            o->joblog_append = true;
            o->joblog_path++;
        }
        if (c->resume || c->resume_failed || c->retry_failed)
            o->joblog_append = true;
        if (o->results_path && strcmp(o->results_path, "-") == 0) {
            fprintf(stderr, "belt run: --results -: stdout carries the "
                    "jobs' output; give a file\n");
            return 2;
        }
        if (o->broker) {
            fprintf(stderr, "belt run: --broker runs the jobs of a config "
                    "(the workers choose: belt worker -j N)\n");
            return 2;
        }
        if (c->pipepart)
            c->pipe = true;
        if (o->have_retries) {
            /* parallel counts attempts: --retries 3 is 3 tries in all */
            o->retries = o->retries > 0 ? o->retries - 1 : 0;
            o->retry_delay_ns = 0;
        }
        if (o->progress == 0)
            o->progress = c->bar || c->eta || c->progress ? 1 : -1;
        if (o->halt_on_error && c->halt_when == 0) {
            c->halt_when = 1;
            c->halt_why = 1;
            c->halt_value = 1;
        }
        o->halt_on_error = false; /* command mode halts in quick.c */
        if (o->line_buffer && (c->tag || c->tagstring) && !o->quiet)
            fprintf(stderr, "belt run: --tag with --line-buffer: each job's "
                    "tagged lines come as one block when it ends\n");
    } else {
        if (o->workers_arg &&
            belt__parse_workers(o->workers_arg, &o->workers, msg,
                                sizeof msg) != 0) {
            fprintf(stderr, "belt run: %s\n", msg);
            return 2;
        }
        if (o->joblog_path && o->joblog_path[0] == '+') {
            o->joblog_append = true;
            o->joblog_path++;
        }
    }
    if (o->policy && check_policy(o->policy, "--policy") != 0)
        return 2;
    if (o->broker && (o->workers_arg || o->policy)) {
        fprintf(stderr, "belt run: --broker: %s does not apply (the workers "
                "choose: belt worker -j N)\n",
                o->workers_arg ? "-j/--workers" : "--policy");
        return 2;
    }
    if (!o->broker && (o->broker_ns || o->max_deliveries || o->key_file ||
                       o->insecure)) {
        fprintf(stderr, "belt run: %s only applies with --broker URL\n",
                o->broker_ns ? "--namespace" : o->max_deliveries
                ? "--max-deliveries" : o->key_file ? "--key-file"
                : "--insecure");
        return 2;
    }
    return -1;
}

/* ---- config mode -------------------------------------------------------- */

static const belt_job *cfg_next(void *ctx)
{
    return belt_sched_next(ctx);
}

static belt_result *cfg_unrun(void *ctx)
{
    return belt_sched_next_unrun(ctx);
}

static void cfg_done(void *ctx, belt_result *r)
{
    belt_sched_done(ctx, r);
}

static bool cfg_finished(void *ctx)
{
    return belt_sched_finished(ctx);
}

static void cfg_cancel(void *ctx, const char *why)
{
    belt_sched_cancel(ctx, why);
}

/* The scheduler marks jobs already ok in the --resume file as SKIPPED with
 * an error starting with BELT_SCHED_RESUMED_PREFIX (belt/config.h). */
static bool cfg_resumed(const belt_result *r)
{
    static const char prefix[] = BELT_SCHED_RESUMED_PREFIX;
    return r->status == BELT_JOB_SKIPPED && r->attempts == 0 && r->error &&
           strncmp(r->error, prefix, sizeof prefix - 1) == 0;
}

/* --dry-run: prints every job of the config in expansion (seq) order, one
 * at a time (O(1) memory however large the matrix), with the CLI's
 * overrides applied.  Returns the exit status. */
static int dry_run(const belt__run_opts *o, const belt_config *cfg)
{
    uint64_t n = belt_config_job_count(cfg);
    for (uint64_t seq = 0; seq < n; seq++) {
        belt_job *job = belt_config_job_at(cfg, seq);
        char *line = NULL;
        size_t len = 0;
        if (job) {
            if (o->have_timeout)
                job->timeout_ns = o->timeout_ns;
            if (o->have_retries)
                job->retries = o->retries;
            line = belt__report_job_line(job, &len);
        }
        belt_config_job_free(job);
        if (line == NULL) {
            fprintf(stderr, "belt run: out of memory\n");
            return 1;
        }
        size_t w = fwrite(line, 1, len, stdout);
        free(line);
        if (w != len)
            break;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "belt run: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

static int run_config(belt__run_opts *o)
{
    belt_config_error err;
    char line[1400];
    memset(&err, 0, sizeof err);
    belt_config *cfg = belt_config_load(o->config_path, &err);
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", belt_config_error_format(&err, line,
                                                         sizeof line));
        return 2;
    }
    if (o->workers_arg == NULL) {
        int w = belt_config_workers(cfg);
        o->workers = w > 0 ? (unsigned)w : belt__cpu_count();
    }
    if (o->policy == NULL)
        o->policy = belt_config_policy(cfg);
    if (o->policy && check_policy(o->policy, o->config_path) != 0) {
        belt_config_free(cfg);
        return 2;
    }

    if (o->dry_run) {
        int status = dry_run(o, cfg);
        belt_config_free(cfg);
        return status;
    }
    if (o->results_path == NULL)
        o->results_path = belt_config_results(cfg);
    if (o->results_path == NULL) {
        o->results_path = "belt-results.jsonl";
        o->results_default = true; /* an earlier run's is kept, as .1 */
    }
    if (belt_config_halt_on_error(cfg))
        o->halt_on_error = true;

    belt_sched_options so;
    memset(&so, 0, sizeof so);
    so.resume_path = o->resume_path;
    so.halt_on_error = o->halt_on_error;
    memset(&err, 0, sizeof err);
    belt_sched *s = belt_sched_new(cfg, &so, &err);
    if (s == NULL) {
        fprintf(stderr, "%s\n", belt_config_error_format(&err, line,
                                                         sizeof line));
        belt_config_free(cfg);
        return 2;
    }

    belt__source src = {
        .ctx = s,
        .next = cfg_next,
        .unrun = cfg_unrun,
        .done = cfg_done,
        .finished = cfg_finished,
        .cancel = cfg_cancel,
        .resumed = cfg_resumed,
        .total = belt_config_job_count(cfg),
    };
    int status = o->broker ? belt__run_broker(o, &src) /* run_broker.c */
                           : belt__run_engine(o, &src);
    belt_sched_free(s);
    belt_config_free(cfg);
    return status;
}

int belt__cli_run(int argc, char **argv)
{
    belt__run_opts o;
    int rc = parse_run_args(argc, argv, &o);
    if (rc == RUN_PIPELINE) {
        free(o.cmd.src);
        return belt__cli_run_pipeline(argc, argv); /* cli/pipeline.c */
    }
    if (rc == -1)
        rc = check_run_args(&o);
    if (rc == -1)
        rc = o.command_mode ? belt__run_quick(&o) : run_config(&o);
    free(o.cmd.src);
    if (rc == BELT__EXIT_STDOUT_CLOSED && o.command_mode) {
        /* As parallel ends when its stdout goes away: by SIGPIPE (the
         * jobs were stopped and reaped already). */
        fflush(stderr);
        signal(SIGPIPE, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        raise(SIGPIPE);
    }
    return rc;
}
