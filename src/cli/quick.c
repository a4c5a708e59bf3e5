/* quick.c: command mode, `belt run COMMAND ...`: GNU parallel's command
 * line on belt's engine.
 *
 *   belt run -j4 'gzip {}' ::: *.log          parallel's own words
 *   find . -name '*.log' | belt run -j4 gzip  arguments from stdin
 *   belt run --pipe --block 1M wc -l < big    blocks of records on stdin
 *
 * The pieces (parallel.h): the command template (parallel_template.c), the
 * input sources and their product (parallel_input.c), blocks for --pipe
 * and --pipepart (parallel_pipe.c), job logs read back for --resume
 * (parallel_joblog.c).  This file puts them together, in the order GNU
 * parallel 20221122 does (its CommandLine::populate, should_we_halt,
 * halt, spreadstdin and the EXIT STATUS section of parallel(1)).
 *
 * Jobs.  Where reading may wait (stdin from a pipe or a terminal), or the
 * jobs must be paced (--delay) or fed (--round-robin), a reader thread
 * (the producer) turns records into jobs and sends them over a bounded
 * channel, the engine's feed; the engine (engine.c) waits on the feed and
 * its results together with belt_select().  Otherwise (::: lists, regular
 * files, jobs made in advance) the engine asks for each job on its own
 * thread (the source's next()), which saves a thread wake-up per job.  A job
 * takes one record, -n/-N records, or with -m, -X, --xargs as many as fit
 * in one command line (MAX_LINE bytes, the most Linux passes as the one
 * argument of `sh -c`), each job's length added up from
 * belt__par_arg_cost() and checked on the finished command.  -m and -X also
 * spread the arguments over the job slots when they all fit in fewer
 * commands than there are slots (parallel: "-m or -X and EOF => Spread the
 * arguments over all jobslots"), once.  Each job gets parallel's sequence
 * number ({#}, $PARALLEL_SEQ, the job log's Seq), counted before --resume
 * skips what a job log says is done (with --shuf, after the shuffle, as
 * parallel numbers them); the engine's own seq stays dense (the order -k
 * writes in).  With --shuf, --bar, --eta, and --halt with a
 * percentage, every job is made first (parallel also reads all input
 * then), so that the total is known and --shuf can shuffle.
 *
 * The producer waits with poll() on its input and on an eventfd the engine
 * writes to stop it (interrupt, --halt, a closed stdout), so it is always
 * joined.  With --delay the feed is a rendezvous channel: a send completes
 * when the engine takes the job, which (one job in flight per worker) is
 * when it starts, and the producer then waits the delay on the eventfd.
 *
 * Job slots ({%}, $PARALLEL_JOBSLOT) are handed out by the engine thread
 * just before a job is submitted (the prepare hook) as parallel hands them
 * out: from a queue of free slots, where a finished job's slot goes to the
 * back, and a new number when the queue is empty.  In command mode at
 * most one job per worker is in flight, so slot numbers stay within -j, a
 * --halt soon leaves no job waiting in a queue, and --delay spaces starts.
 * A command that uses {%} is expanded again there, with its slot.
 *
 * --pipe, --pipepart: each block becomes an anonymous file that the job
 * reads as its stdin (parallel_pipe.c).  --round-robin starts up to -j jobs
 * that read pipes instead, and the producer writes each block whole to one
 * of them; a job's read end is closed when its result comes back.
 *
 * Results and exit status (engine thread, in done()): a job fails when it
 * exits non-zero, is killed, times out or cannot start.  --halt counts
 * failures, successes or both and asks the engine to stop soon (no new
 * jobs) or now (the running ones are canceled, and their output dropped, as
 * parallel kills them).  The exit status is parallel's: 0, the number of
 * failed jobs up to 100, 101 for more; with --halt ...,fail=1 or done=1 the
 * status of the job that triggered it (128 + its signal); with a
 * percentage the percentage of failed jobs; interrupted 130 or 143 (belt's),
 * and a closed stdout kills belt with SIGPIPE, as it kills parallel.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "belt/error.h"
#include "cli/parallel.h"
#include "cli/run.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/cpu.h"
#include "util/fd.h"
#include "util/rng.h"

#define FEED_CAP 64
/* The longest command: Linux's MAX_ARG_STRLEN (32 pages) less its NUL,
 * since the command is the one argument of `sh -c`. */
#define MAX_LINE (32 * 4096 - 1)
#define RR_MAX 64              /* --round-robin: most jobs fed at once */
#define RUNTIMES 999           /* --timeout N%: runtimes kept for the median */

/* One command-mode job and the memory its pointers use. */
struct qjob {
    belt_job job;              /* first: a result's job pointer is &qjob->job */
    char id[24];
    uint64_t seq1;             /* parallel's sequence number, from 1 */
    unsigned slot;             /* job slot, 0 until submitted */
    char *cmd;                 /* the command (through /bin/sh) */
    belt__report_arg *args;    /* copies of its input arguments */
    size_t nargs;
    char *argmem;
    int in_fd;                 /* stdin (--pipe, --round-robin), or -1 */
    char in_path[32];
    char **argv;               /* the command run directly, or NULL */
    char *argbuf;
    char *sh_argv[4];          /* SHELL -c CMD when SHELL is not /bin/sh */
    char *env[4];
    char env_seq[40], env_slot[40], env_pid[40];
};

/* A record kept for a later job (-n, -X: grouping, and giving one back). */
struct rec {
    char *mem;
    belt__par_val *v;
    size_t n;
};

/* The last command name looked up in PATH (one per thread). */
struct path_cache {
    char name[256];
    bool found;
};

struct quick {
    belt__run_opts *o;
    char shell[4096];          /* what runs the commands */
    bool shell_is_sh;          /* /bin/sh: the executor's own `run` */
    struct path_cache paths;   /* the producer's */
    const belt__cmd_opts *c;
    belt__par_tpl *tpl;        /* the command */
    belt__par_tpl *tag_tpl;    /* --tag / --tagstring, or NULL */
    belt__par_input *in;
    belt__par_source stdin_src;
    belt__par_joblog *log;     /* --resume, --resume-failed, --retry-failed */
    belt__buf delim;           /* -d, unescaped */
    belt__buf recstart, recend;
    belt_output_mode mode;
    size_t max_line;

    /* the producer (or the main thread, before the engine starts) */
    belt_chan *feed;
    int stop_fd;
    pthread_t thread;
    bool thread_started;
    uint64_t next_seq;         /* parallel's seq of the last job made */
    uint64_t next_dense;       /* the engine's seq of the next job */
    int gen_error;             /* an error code, message in gen_msg */
    char gen_msg[512];
    unsigned max_recs;         /* records per job; 0: as many as fit */
    bool spread_done;
    struct rec *pend;          /* records read but not yet in a job */
    size_t npend, cappend, pend_head;
    struct rec *grp;           /* the job being filled */
    size_t ngrp, capgrp;
    belt__par_val *flat;
    size_t capflat;
    bool input_done;
    bool gen_done;             /* next() mode: no more jobs */
    uint64_t retry_seq;        /* --retry-failed: the next seq to look at */
    belt__par_blocks *blocks;  /* --pipe */
    int pipe_fd;
    bool pipe_own;
    int64_t *parts;            /* --pipepart */
    size_t nparts, next_part;
    struct qjob **all;         /* every job, made in advance, or NULL */
    size_t nall, sent;

    /* the engine thread */
    unsigned *slots;           /* free slots, a ring */
    size_t slot_head, slot_n, slot_cap;
    unsigned max_slot;
    uint64_t completed, failed;
    uint64_t total;            /* jobs in all, when known (halt %) */
    int halt;                  /* 0, 1 soon, 2 now */
    bool halt_status_set;
    int halt_status;
    int64_t *runtimes;         /* successful runtimes (--timeout N%) */
    size_t nrt, rt_next;
    int64_t median_ns;
};

/* ---- jobs ------------------------------------------------------------ */

static void free_job(struct qjob *j)
{
    if (j == NULL)
        return;
    if (j->in_fd >= 0)
        close(j->in_fd);
    free(j->argv);
    free(j->argbuf);
    free(j->cmd);
    free(j->args);
    free(j->argmem);
    free(j);
}

/* Copies v[0..n) into one new block: *out points at n values in *mem.
 * BELT_OK, or BELT_ENOMEM (nothing allocated). */
static int copy_vals(const belt__par_val *v, size_t n, belt__par_val **out,
                     char **mem)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += v[i].len;
    *out = malloc((n ? n : 1) * sizeof **out);
    *mem = malloc(bytes + 1);
    if (*out == NULL || *mem == NULL) {
        free(*out);
        free(*mem);
        *out = NULL;
        *mem = NULL;
        return BELT_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(*mem + off, v[i].p, v[i].len);
        (*out)[i] = (belt__par_val){*mem + off, v[i].len};
        off += v[i].len;
    }
    return BELT_OK;
}

/* Builds the command of j into a new string.  NULL when memory runs out. */
static char *expand(struct quick *q, const belt__par_tpl *t,
                    const belt__par_val *args, size_t nargs, uint64_t seq,
                    unsigned slot, const char *suffix)
{
    belt__buf b = {0};
    belt__par_expand(t, args, nargs, seq, slot, &b);
    if (suffix)
        belt__buf_adds(&b, suffix);
    (void)q;
    if (b.oom) {
        belt__buf_free(&b);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

/* ---- which program runs a command ---------------------------------------- */

/* Whether name is a Bourne-family shell (parallel quotes for these; belt
 * runs csh, fish and rc users' commands with /bin/sh instead). */
static bool bourne(const char *name)
{
    static const char *const shells[] = {
        "sh", "bash", "dash", "ash", "ksh", "ksh93", "mksh", "pdksh", "lksh",
        "posh", "yash", "zsh", "rbash", "busybox", NULL,
    };
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (*base == '-')
        base++;
    for (size_t i = 0; shells[i]; i++)
        if (strcmp(base, shells[i]) == 0)
            return true;
    return false;
}

/* The shell GNU parallel would use: $PARALLEL_SHELL, else the nearest
 * ancestor process that is a shell (parallel's parent_shell), else $SHELL,
 * else /bin/sh; one that is not a Bourne shell gives /bin/sh. */
static void pick_shell(char *out, size_t size)
{
    const char *env = getenv("PARALLEL_SHELL");
    if (env && *env) {
        snprintf(out, size, "%s", bourne(env) ? env : "/bin/sh");
        return;
    }
    pid_t pid = getppid();
    for (int depth = 0; pid > 1 && depth < 64; depth++) {
        char path[64], cmd[256];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", (long)pid);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            break;
        size_t n = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        cmd[n] = '\0'; /* argv[0] ends at the first NUL */
        if (n > 0 && bourne(cmd)) {
            char exe[4096];
            snprintf(path, sizeof path, "/proc/%ld/exe", (long)pid);
            ssize_t l = readlink(path, exe, sizeof exe - 1);
            if (l > 0) {
                exe[l] = '\0';
                snprintf(out, size, "%s", bourne(exe) ? exe : "/bin/sh");
                return;
            }
            break;
        }
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
        f = fopen(path, "re");
        if (f == NULL)
            break;
        char stat[512];
        n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        const char *rp = strrchr(stat, ')'); /* the name may hold spaces */
        long ppid = 0;
        if (rp == NULL || sscanf(rp + 1, " %*c %ld", &ppid) != 1)
            break;
        pid = (pid_t)ppid;
    }
    env = getenv("SHELL");
    snprintf(out, size, "%s", env && *env && bourne(env) ? env : "/bin/sh");
}

/* Shell words and keywords that must not be run as programs. */
static bool shell_builtin(const char *w, size_t n)
{
    static const char *const names[] = {
        ":", ".", "[", "[[", "]]", "{", "}", "!", "alias", "bg", "bind",
        "break", "builtin", "caller", "case", "cd", "chdir", "command",
        "compgen", "complete", "compopt", "continue", "coproc", "declare",
        "dirs", "disown", "do", "done", "echo", "elif", "else", "enable",
        "esac", "eval", "exec", "exit", "export", "fc", "fg", "fi", "for",
        "function", "getopts", "hash", "help", "history", "if", "in", "jobs",
        "kill", "let", "local", "logout", "mapfile", "popd", "printf",
        "pushd", "pwd", "read", "readarray", "readonly", "return", "select",
        "set", "shift", "shopt", "source", "suspend", "test", "then", "time",
        "times", "trap", "type", "typeset", "ulimit", "umask", "unalias",
        "unset", "until", "wait", "while", NULL,
    };
    for (size_t i = 0; names[i]; i++)
        if (strlen(names[i]) == n && memcmp(names[i], w, n) == 0)
            return true;
    return false;
}

/* Whether the program name[0..n) is an executable file in PATH. */
static bool in_path(struct path_cache *pc, const char *name, size_t n)
{
    if (n == 0 || n >= sizeof pc->name)
        return false;
    if (pc->name[0] && strlen(pc->name) == n && memcmp(pc->name, name, n) == 0)
        return pc->found;
    memcpy(pc->name, name, n);
    pc->name[n] = '\0';
    pc->found = false;
    struct stat st;
    if (memchr(name, '/', n)) {
        pc->found = stat(pc->name, &st) == 0 && S_ISREG(st.st_mode) &&
                    access(pc->name, X_OK) == 0;
        return pc->found;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    char full[4096];
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t dl = colon ? (size_t)(colon - path) : strlen(path);
        int k = snprintf(full, sizeof full, "%.*s/%s", (int)dl,
                         dl ? path : ".", pc->name);
        if (k > 0 && (size_t)k < sizeof full && stat(full, &st) == 0 &&
            S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
            pc->found = true;
            break;
        }
        path += dl;
        if (*path == ':')
            path++;
    }
    return pc->found;
}

/* Sets j->job's command from j->cmd.  A command of plain words (letters,
 * digits, -_./,:@%+= and single spaces: nothing the shell would expand,
 * split or redirect) whose program is in PATH and is not a shell builtin
 * runs directly, as the shell would run it, without starting a shell
 * first: half the cost of a short job (`belt run true ::: ...`).  Anything
 * else runs through the shell.  False when memory runs out. */
static bool set_command(struct quick *q, struct qjob *j, struct path_cache *pc)
{
    free(j->argv);
    free(j->argbuf);
    j->argv = NULL;
    j->argbuf = NULL;
    j->job.run = NULL;
    j->job.argv = NULL;
    const char *c = j->cmd;
    size_t len = strlen(c), words = 0;
    bool plain = len > 0;
    for (size_t i = 0; i < len && plain; i++) {
        unsigned char ch = (unsigned char)c[i];
        plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                (ch >= '0' && ch <= '9') || strchr("-_./,:@%+= ", ch) != NULL;
        if (ch != ' ' && (i == 0 || c[i - 1] == ' '))
            words++;
    }
    size_t first = plain ? strcspn(c, " ") : 0;
    if (plain && words > 0 && first > 0 && !memchr(c, '=', first) &&
        !shell_builtin(c, first) && in_path(pc, c, first)) {
        j->argbuf = strdup(c);
        j->argv = malloc((words + 1) * sizeof *j->argv);
        if (j->argbuf == NULL || j->argv == NULL)
            return false;
        size_t k = 0;
        for (char *p = strtok(j->argbuf, " "); p; p = strtok(NULL, " "))
            j->argv[k++] = p;
        j->argv[k] = NULL;
        j->job.argv = j->argv;
        return true;
    }
    if (q->shell_is_sh) {
        j->job.run = j->cmd;
        return true;
    }
    j->sh_argv[0] = q->shell;
    j->sh_argv[1] = (char *)"-c";
    j->sh_argv[2] = j->cmd;
    j->sh_argv[3] = NULL;
    j->job.argv = j->sh_argv;
    return true;
}

/* A job for the arguments args[0..nargs) (copied) and the command cmd
 * (taken; NULL: expanded here).  NULL when memory runs out (cmd freed). */
static struct qjob *make_job(struct quick *q, const belt__par_val *args,
                             size_t nargs, uint64_t seq, char *cmd, int in_fd)
{
    struct qjob *j = calloc(1, sizeof *j);
    if (j == NULL)
        goto fail;
    j->in_fd = -1;
    if (nargs > 0 && copy_vals(args, nargs, &j->args, &j->argmem) != BELT_OK)
        goto fail;
    j->nargs = nargs;
    j->seq1 = seq;
    if (cmd == NULL)
        cmd = expand(q, q->tpl, args, nargs, seq, 0, NULL);
    if (cmd == NULL)
        goto fail;
    j->cmd = cmd;
    cmd = NULL;
    belt_job_init(&j->job);
    j->job.seq = q->next_dense++;
    snprintf(j->id, sizeof j->id, "%" PRIu64, seq);
    j->job.id = j->id;
    j->job.kind = BELT_JOB_EXEC;
    if (!set_command(q, j, &q->paths))
        goto fail;
    j->job.output = q->mode;
    if (in_fd >= 0) {
        j->in_fd = in_fd;
        snprintf(j->in_path, sizeof j->in_path, "/proc/self/fd/%d", in_fd);
        j->job.stdin_path = j->in_path;
    }
    return j;

fail:
    free(cmd);
    if (j) {
        j->in_fd = -1;
        free_job(j);
    }
    if (in_fd >= 0)
        close(in_fd);
    return NULL;
}

/* ---- records and groups (the producer) ----------------------------------- */

static void rec_free(struct rec *r)
{
    free(r->mem);
    free(r->v);
    r->mem = NULL;
    r->v = NULL;
}

static int rec_copy(struct rec *r, const belt__par_val *v, size_t n)
{
    r->n = n;
    return copy_vals(v, n, &r->v, &r->mem);
}

/* Gives r back: it is the next record read. */
static int unget(struct quick *q, struct rec r)
{
    if (q->npend == q->cappend) {
        size_t nc = q->cappend ? q->cappend * 2 : 16;
        struct rec *np = malloc(nc * sizeof *np);
        if (np == NULL)
            return BELT_ENOMEM;
        for (size_t i = 0; i < q->npend; i++)
            np[i] = q->pend[(q->pend_head + i) % q->cappend];
        free(q->pend);
        q->pend = np;
        q->cappend = nc;
        q->pend_head = 0;
    }
    q->pend_head = (q->pend_head + q->cappend - 1) % q->cappend;
    q->pend[q->pend_head] = r;
    q->npend++;
    return BELT_OK;
}

/* The next record: 1, 0 at the end, or an error code (gen_msg set). */
static int get_rec(struct quick *q, struct rec *r)
{
    if (q->npend > 0) {
        *r = q->pend[q->pend_head];
        q->pend_head = (q->pend_head + 1) % q->cappend;
        q->npend--;
        return 1;
    }
    if (q->input_done)
        return 0;
    const belt__par_val *v;
    size_t n;
    int rc = belt__par_input_next(q->in, &v, &n);
    if (rc == 0)
        q->input_done = true;
    if (rc <= 0) {
        if (rc == BELT_ESYS)
            snprintf(q->gen_msg, sizeof q->gen_msg, "reading input: %s",
                     strerror(errno));
        return rc;
    }
    return rec_copy(r, v, n) == BELT_OK ? 1 : BELT_ENOMEM;
}

static int grp_push(struct quick *q, struct rec r)
{
    if (q->ngrp == q->capgrp) {
        size_t nc = q->capgrp ? q->capgrp * 2 : 8;
        struct rec *ng = realloc(q->grp, nc * sizeof *ng);
        if (ng == NULL)
            return BELT_ENOMEM;
        q->grp = ng;
        q->capgrp = nc;
    }
    q->grp[q->ngrp++] = r;
    return BELT_OK;
}

/* The values of the group, flat.  NULL when memory runs out. */
static belt__par_val *flatten(struct quick *q, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < q->ngrp; i++)
        total += q->grp[i].n;
    if (total > q->capflat) {
        belt__par_val *nf = realloc(q->flat, total * sizeof *nf);
        if (nf == NULL)
            return NULL;
        q->flat = nf;
        q->capflat = total;
    }
    size_t k = 0;
    for (size_t i = 0; i < q->ngrp; i++)
        for (size_t m = 0; m < q->grp[i].n; m++)
            q->flat[k++] = q->grp[i].v[m];
    *n = total;
    static belt__par_val none[1];
    return q->flat ? q->flat : none;
}

static size_t expanded_len(struct quick *q, uint64_t seq)
{
    size_t n;
    belt__par_val *v = flatten(q, &n);
    if (v == NULL)
        return SIZE_MAX;
    belt__buf b = {0};
    belt__par_expand(q->tpl, v, n, seq, 1, &b);
    size_t len = b.oom ? SIZE_MAX : b.len;
    belt__buf_free(&b);
    return len;
}

/* Fills q->grp with the records of the next job.  1, 0 at the end, or an
 * error code. */
static int fill_group(struct quick *q, uint64_t seq)
{
    q->ngrp = 0;
    bool by_len = q->max_recs != 1;
    size_t len = 0;
    bool eof = false;
    int rc;
    while (q->max_recs == 0 || q->ngrp < q->max_recs) {
        struct rec r;
        rc = get_rec(q, &r);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            eof = true;
            break;
        }
        if ((rc = grp_push(q, r)) != BELT_OK) {
            rec_free(&r);
            return rc;
        }
        if (!by_len)
            continue;
        if (q->ngrp == 1) {
            len = expanded_len(q, seq);
        } else {
            for (size_t i = 0; i < r.n; i++)
                len += belt__par_arg_cost(q->tpl, r.v[i]);
        }
        if (len > q->max_line && q->ngrp > 1) {
            if ((rc = unget(q, q->grp[--q->ngrp])) != BELT_OK)
                return rc;
            break;
        }
    }
    if (q->ngrp == 0)
        return 0;
    if (!eof && (q->c->X || q->c->m) && !q->spread_done) {
        /* Is the input empty after this job?  (parallel: arg_queue->empty) */
        struct rec r;
        rc = get_rec(q, &r);
        if (rc < 0)
            return rc;
        if (rc == 0)
            eof = true;
        else if ((rc = unget(q, r)) != BELT_OK)
            return rc;
    }
    if ((q->c->X || q->c->m) && !q->spread_done && eof && q->ngrp > 1) {
        /* Everything fits: spread it over the job slots, once. */
        q->spread_done = true;
        size_t per = (q->ngrp + q->o->workers - 1) / q->o->workers;
        q->max_recs = (unsigned)per;
        while (q->ngrp > per)
            if ((rc = unget(q, q->grp[--q->ngrp])) != BELT_OK)
                return rc;
    }
    if (by_len) {
        while (q->ngrp > 1 && expanded_len(q, seq) > q->max_line)
            if ((rc = unget(q, q->grp[--q->ngrp])) != BELT_OK)
                return rc;
    }
    return 1;
}

static void grp_clear(struct quick *q)
{
    for (size_t i = 0; i < q->ngrp; i++)
        rec_free(&q->grp[i]);
    q->ngrp = 0;
}

/* ---- the generator: the next job of any kind ---------------------------- */

/* Makes the next job into *out: 1, 0 when there are no more, or an error
 * code (with gen_msg).  Skips what --resume says is done. */
static int gen_next(struct quick *q, struct qjob **out)
{
    const belt__cmd_opts *c = q->c;
    if (q->all) {
        if (q->sent >= q->nall)
            return 0;
        *out = q->all[q->sent];
        q->all[q->sent++] = NULL;
        return 1;
    }
    for (;;) {
        if (c->retry_failed) {
            /* The commands of the failed jobs, as the job log has them. */
            uint64_t max = belt__par_joblog_max_seq(q->log);
            while (++q->retry_seq <= max) {
                const char *cmd = belt__par_joblog_command(q->log, q->retry_seq);
                if (cmd == NULL || belt__par_joblog_done(q->log, q->retry_seq))
                    continue;
                char *copy = strdup(cmd);
                belt__par_val v = {cmd, strlen(cmd)};
                *out = copy ? make_job(q, &v, 1, q->retry_seq, copy, -1) : NULL;
                return *out ? 1 : BELT_ENOMEM;
            }
            return 0;
        }
        if (c->pipe && !c->pipepart) {
            const char *p;
            size_t n;
            int rc = belt__par_blocks_next(q->blocks, &p, &n);
            if (rc <= 0) {
                if (rc == BELT_ESYS)
                    snprintf(q->gen_msg, sizeof q->gen_msg,
                             "reading input: %s", strerror(errno));
                return rc;
            }
            uint64_t seq = ++q->next_seq;
            if (belt__par_joblog_done(q->log, seq))
                continue;
            int fd = belt__par_block_file(p, n);
            if (fd < 0) {
                snprintf(q->gen_msg, sizeof q->gen_msg,
                         "cannot hold a block: %s", strerror(errno));
                return BELT_ESYS;
            }
            *out = make_job(q, NULL, 0, seq, NULL, fd);
            return *out ? 1 : BELT_ENOMEM;
        }
        if (c->pipepart) {
            if (q->next_part + 1 >= q->nparts)
                return 0;
            int64_t a = q->parts[q->next_part], b = q->parts[q->next_part + 1];
            q->next_part++;
            uint64_t seq = ++q->next_seq;
            if (belt__par_joblog_done(q->log, seq))
                continue;
            int fd = belt__par_part_file(q->pipe_fd, a, b - a);
            if (fd < 0) {
                snprintf(q->gen_msg, sizeof q->gen_msg,
                         "cannot read a part of %s: %s", c->src[0].name,
                         strerror(errno));
                return BELT_ESYS;
            }
            *out = make_job(q, NULL, 0, seq, NULL, fd);
            return *out ? 1 : BELT_ENOMEM;
        }
        uint64_t seq = q->next_seq + 1;
        int rc = fill_group(q, seq);
        if (rc <= 0)
            return rc;
        q->next_seq = seq;
        if (belt__par_joblog_done(q->log, seq)) {
            grp_clear(q);
            continue;
        }
        size_t n;
        belt__par_val *v = flatten(q, &n);
        if (c->no_args) {
            v = (belt__par_val *)belt__par_noarg;
            n = 0;
        }
        *out = v ? make_job(q, v, n, seq, NULL, -1) : NULL;
        grp_clear(q);
        return *out ? 1 : BELT_ENOMEM;
    }
}

/* Makes every job now (--shuf, --bar, --eta, --halt N%). */
static int gen_all(struct quick *q)
{
    size_t cap = 0;
    struct qjob **all = NULL;
    size_t n = 0;
    int rc;
    struct qjob *j;
    while ((rc = gen_next(q, &j)) == 1) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            struct qjob **na = realloc(all, nc * sizeof *na);
            if (na == NULL) {
                free_job(j);
                rc = BELT_ENOMEM;
                break;
            }
            all = na;
            cap = nc;
        }
        all[n++] = j;
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            free_job(all[i]);
        free(all);
        return rc;
    }
    if (q->c->shuf && n > 1) {
        belt__rng rng;
        belt__rng_seed(&rng, (uint64_t)belt__now_real() ^
                                 ((uint64_t)getpid() << 32));
        for (size_t i = n - 1; i > 0; i--) {
            size_t k = (size_t)(belt__rng_next(&rng) % (i + 1));
            struct qjob *t = all[i];
            all[i] = all[k];
            all[k] = t;
        }
        /* As in parallel, the jobs are numbered ({#}, the job log's Seq,
         * -k's order) after the shuffle. */
        bool renumber = belt__par_tpl_uses(q->tpl, BELT__RPL_SEQ) &&
                        !q->c->retry_failed;
        for (size_t i = 0; i < n; i++) {
            struct qjob *j = all[i];
            j->job.seq = i;
            j->seq1 = i + 1;
            snprintf(j->id, sizeof j->id, "%zu", i + 1);
            char *cmd = renumber ? expand(q, q->tpl, j->args, j->nargs,
                                          j->seq1, 0, NULL)
                                 : NULL;
            if (cmd != NULL) {
                free(j->cmd);
                j->cmd = cmd;
                if (!set_command(q, j, &q->paths))
                    rc = BELT_ENOMEM;
            }
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            free_job(all[i]);
        free(all);
        return rc;
    }
    q->all = all ? all : calloc(1, sizeof *all);
    q->nall = n;
    q->sent = 0;
    q->total = n;
    return q->all ? BELT_OK : BELT_ENOMEM;
}

/* ---- the producer thread ------------------------------------------------ */

/* Waits ns on the stop fd.  False when told to stop. */
static bool pause_ns(struct quick *q, int64_t ns)
{
    int64_t end = belt__now_mono() + ns;
    for (;;) {
        int64_t left = end - belt__now_mono();
        if (left <= 0)
            return true;
        struct pollfd pf = {.fd = q->stop_fd, .events = POLLIN};
        int ms = (int)((left + 999999) / 1000000);
        int k = poll(&pf, 1, ms);
        if (k > 0)
            return false;
        if (k < 0 && errno != EINTR)
            return true;
    }
}

static bool send_job(struct quick *q, struct qjob *j)
{
    belt_job *jp = &j->job;
    if (belt_chan_send(q->feed, &jp) != BELT_OK) { /* closed: stop */
        free_job(j);
        return false;
    }
    return true;
}

/* --round-robin: up to -j jobs, each reading a pipe; blocks go to them. */
static void produce_round_robin(struct quick *q)
{
    int wfd[RR_MAX];
    bool dead[RR_MAX] = {false};
    size_t n = 0, turn = 0;
    size_t slots = q->o->workers < RR_MAX ? q->o->workers : RR_MAX;
    for (;;) {
        const char *p;
        size_t len;
        int rc = belt__par_blocks_next(q->blocks, &p, &len);
        if (rc <= 0) {
            if (rc == BELT_ESYS) {
                q->gen_error = rc;
                snprintf(q->gen_msg, sizeof q->gen_msg, "reading input: %s",
                         strerror(errno));
            } else if (rc < 0 && rc != BELT_ECANCELED) {
                q->gen_error = rc;
            }
            break;
        }
        if (n < slots) {
            int fds[2];
            if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
                q->gen_error = BELT_ESYS;
                snprintf(q->gen_msg, sizeof q->gen_msg, "cannot make a pipe: %s",
                         strerror(errno));
                break;
            }
            (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
            int rfd = belt__fd_above_stdio(fds[0]);
            struct qjob *j = rfd >= 0 ? make_job(q, NULL, 0, ++q->next_seq,
                                                 NULL, rfd)
                                      : NULL;
            if (j == NULL) {
                close(fds[1]);
                q->gen_error = BELT_ENOMEM;
                break;
            }
            if (!send_job(q, j)) {
                close(fds[1]);
                break;
            }
            wfd[n++] = fds[1];
            if (belt__write_full(fds[1], p, len, q->stop_fd) != BELT_OK)
                dead[n - 1] = true;
            continue;
        }
        rc = belt__par_rr_write(wfd, n, &turn, dead, p, len, q->stop_fd);
        if (rc != BELT_OK)
            break;
    }
    for (size_t i = 0; i < n; i++)
        close(wfd[i]);
}

static void *producer_main(void *arg)
{
    struct quick *q = arg;
    if (q->c->round_robin && q->c->pipe && !q->c->pipepart) {
        produce_round_robin(q);
    } else {
        for (;;) {
            struct qjob *j;
            int rc = gen_next(q, &j);
            if (rc <= 0) {
                if (rc < 0 && rc != BELT_ECANCELED)
                    q->gen_error = rc;
                break;
            }
            if (!send_job(q, j))
                break;
            if (q->c->delay_ns > 0 && !pause_ns(q, q->c->delay_ns))
                break;
        }
    }
    belt_chan_close(q->feed); /* the engine sees the end of the input */
    return NULL;
}

/* ---- jobs made on the engine thread ------------------------------------- */

/* When no input can keep a read waiting (::: lists, regular files, a job
 * log, jobs made in advance) the engine asks for each job itself (the
 * source's next()), without the producer thread and the channel between
 * them: a short job then costs no thread wake-up on top of its spawn. */
static const belt_job *quick_next(void *ctx)
{
    struct quick *q = ctx;
    if (q->gen_done)
        return NULL;
    struct qjob *j = NULL;
    int rc = gen_next(q, &j);
    if (rc <= 0) {
        q->gen_done = true;
        if (rc < 0 && rc != BELT_ECANCELED)
            q->gen_error = rc;
        return NULL;
    }
    return &j->job;
}

static bool quick_finished(void *ctx)
{
    return ((struct quick *)ctx)->gen_done;
}

/* ---- the engine's hooks (engine thread) -------------------------------- */

static unsigned take_slot(struct quick *q)
{
    if (q->slot_n == 0)
        return ++q->max_slot;
    unsigned s = q->slots[q->slot_head];
    q->slot_head = (q->slot_head + 1) % q->slot_cap;
    q->slot_n--;
    return s;
}

static void free_slot(struct quick *q, unsigned s)
{
    if (s == 0)
        return;
    if (q->slot_n == q->slot_cap) {
        size_t nc = q->slot_cap ? q->slot_cap * 2 : 16;
        unsigned *ns = malloc(nc * sizeof *ns);
        if (ns == NULL)
            return; /* the slot number is not reused: harmless */
        for (size_t i = 0; i < q->slot_n; i++)
            ns[i] = q->slots[(q->slot_head + i) % q->slot_cap];
        free(q->slots);
        q->slots = ns;
        q->slot_cap = nc;
        q->slot_head = 0;
    }
    q->slots[(q->slot_head + q->slot_n) % q->slot_cap] = s;
    q->slot_n++;
}

static void quick_prepare(void *ctx, const belt_job *job, belt_job *copy)
{
    struct quick *q = ctx;
    struct qjob *j = (struct qjob *)(void *)job;
    j->slot = take_slot(q);
    snprintf(j->env_seq, sizeof j->env_seq, "PARALLEL_SEQ=%" PRIu64, j->seq1);
    snprintf(j->env_slot, sizeof j->env_slot, "PARALLEL_JOBSLOT=%u", j->slot);
    snprintf(j->env_pid, sizeof j->env_pid, "PARALLEL_PID=%ld",
             (long)getpid());
    j->env[0] = j->env_seq;
    j->env[1] = j->env_slot;
    j->env[2] = j->env_pid;
    j->env[3] = NULL;
    copy->env = j->env;
    if (belt__par_tpl_uses(q->tpl, BELT__RPL_SLOT) && !q->c->retry_failed) {
        char *cmd = expand(q, q->tpl, j->args, j->nargs, j->seq1, j->slot,
                           NULL);
        struct path_cache pc = {{0}, false};
        if (cmd != NULL) {
            free(j->cmd);
            j->cmd = cmd;
            if (set_command(q, j, &pc)) {
                copy->run = j->job.run;
                copy->argv = j->job.argv;
            }
        }
    }
    if (q->c->timeout_pct > 0 && q->median_ns > 0)
        copy->timeout_ns = (int64_t)(q->c->timeout_pct * (double)q->median_ns);
}

static void quick_info(void *ctx, const belt_result *r, belt__job_info *out)
{
    struct quick *q = ctx;
    const struct qjob *j = (const struct qjob *)(const void *)r->job;
    out->log_seq = j->seq1;
    out->command = j->cmd;
    static const belt__report_arg none[1];
    out->args = j->args ? j->args : none;
    out->nargs = j->nargs;
    if (q->tag_tpl) {
        out->tag = expand(q, q->tag_tpl, j->args, j->nargs, j->seq1, j->slot,
                          "\t");
        out->tag_len = out->tag ? strlen(out->tag) : 0;
    }
}

/* The status parallel's should_we_halt takes for a job: its exit status,
 * 128 + a signal, -1 (255) when parallel killed it. */
static int job_status(const belt_result *r)
{
    if (r->status == BELT_JOB_TIMEOUT)
        return 255;
    if (r->exit_code > 0)
        return r->exit_code;
    if (r->signal > 0)
        return 128 + r->signal;
    return r->status == BELT_JOB_OK ? 0 : 255;
}

static void median_add(struct quick *q, int64_t ns)
{
    if (q->runtimes == NULL &&
        (q->runtimes = malloc(RUNTIMES * sizeof *q->runtimes)) == NULL)
        return;
    q->runtimes[q->rt_next] = ns;
    q->rt_next = (q->rt_next + 1) % RUNTIMES;
    if (q->nrt < RUNTIMES)
        q->nrt++;
    /* the median of what is kept: a small selection, no sort of all */
    int64_t tmp[RUNTIMES];
    memcpy(tmp, q->runtimes, q->nrt * sizeof *tmp);
    size_t k = q->nrt / 2, lo = 0, hi = q->nrt - 1;
    while (lo < hi) {
        int64_t pivot = tmp[(lo + hi) / 2];
        size_t i = lo, m = hi;
        while (i <= m) {
            while (tmp[i] < pivot) i++;
            while (tmp[m] > pivot) m--;
            if (i <= m) {
                int64_t t = tmp[i];
                tmp[i] = tmp[m];
                tmp[m] = t;
                i++;
                if (m == 0)
                    break;
                m--;
            }
        }
        if (k <= m)
            hi = m;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    q->median_ns = tmp[k];
}

static void quick_done(void *ctx, belt_result *r)
{
    struct quick *q = ctx;
    struct qjob *j = (struct qjob *)(void *)r->job;
    free_slot(q, j->slot);
    const belt__cmd_opts *c = q->c;
    if (r->status == BELT_JOB_CANCELED) {
        /* Stopped by --halt now or an interrupt: parallel kills these and
         * prints nothing of them. */
        if (r->out_fd >= 0)
            close(r->out_fd);
        if (r->err_fd >= 0)
            close(r->err_fd);
        r->out_fd = r->err_fd = -1;
        free_job(j);
        return;
    }
    q->completed++;
    bool failed = r->status != BELT_JOB_OK;
    if (failed)
        q->failed++;
    else if (c->timeout_pct > 0)
        median_add(q, r->duration_ns);
    if (c->halt_when > 0 && q->halt == 0) {
        uint64_t limit = 0;
        bool counts = false;
        if (c->halt_why == 1 && failed) {
            limit = q->failed;
            counts = true;
        } else if (c->halt_why == 2 && !failed) {
            limit = q->completed - q->failed;
            counts = true;
        } else if (c->halt_why == 3) {
            limit = q->completed;
            counts = true;
        }
        if (counts && !q->o->quiet)
            fprintf(stderr, "belt: this job %s: %s\n",
                    c->halt_why == 3 ? "finished"
                    : failed ? "failed" : "succeeded", j->cmd);
        double need = c->halt_pct ? c->halt_value * (double)q->total
                                  : c->halt_value;
        if (counts && (double)limit >= need) {
            if (c->halt_why == 2) {
                q->halt_status = 0;
            } else if (!c->halt_pct && c->halt_value == 1) {
                q->halt_status = job_status(r);
            } else if (c->halt_pct) {
                q->halt_status = (int)ceil((double)q->failed /
                                           (double)(q->total ? q->total : 1) *
                                           100.0);
            } else {
                q->halt_status = q->failed < 101 ? (int)q->failed : 101;
            }
            q->halt_status_set = true;
            q->halt = c->halt_when;
            if (q->halt == 1 && !q->o->quiet)
                fprintf(stderr, "belt: starting no more jobs\n");
        }
    }
    free_job(j);
}

static int quick_halt(void *ctx)
{
    return ((struct quick *)ctx)->halt;
}

static void quick_cancel(void *ctx, const char *why)
{
    (void)why;
    struct quick *q = ctx;
    q->gen_done = true; /* next() mode: no more jobs (engine thread) */
    uint64_t one = 1;
    if (q->stop_fd >= 0) {
        ssize_t n = write(q->stop_fd, &one, sizeof one);
        (void)n;
    }
    if (q->feed)
        belt_chan_close(q->feed);
}

/* Makes sure `window` finished jobs can hold their two spool files each:
 * raises the soft RLIMIT_NOFILE towards the hard one, or shrinks the
 * window.  Returns the window to use. */
static size_t fit_window(size_t window, size_t cap)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return cap;
    rlim_t need = (rlim_t)window * 4 + 64;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need
                          ? need : rl.rlim_max;
        struct rlimit nr = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nr) == 0)
            rl.rlim_cur = want;
        if (rl.rlim_cur < need)
            window = rl.rlim_cur > 64 + 4 ? (size_t)(rl.rlim_cur - 64) / 4 : 1;
    }
    return window ? window : 1;
}

/* ---- --dry-run -------------------------------------------------------- */

static int dry_run(struct quick *q)
{
    belt__buf out = {0};
    int rc;
    struct qjob *j;
    unsigned w = q->o->workers ? q->o->workers : 1;
    while ((rc = gen_next(q, &j)) == 1) {
        if (belt__par_tpl_uses(q->tpl, BELT__RPL_SLOT) && !q->c->retry_failed) {
            /* The slot parallel's dry run gives: jobs "finish" in turn. */
            char *cmd = expand(q, q->tpl, j->args, j->nargs, j->seq1,
                               (unsigned)((j->seq1 - 1) % w) + 1, NULL);
            if (cmd) {
                free(j->cmd);
                j->cmd = cmd;
            }
        }
        if (q->tag_tpl) {
            /* parallel prints the command as the job's output: tagged */
            char *tag = expand(q, q->tag_tpl, j->args, j->nargs, j->seq1,
                               (unsigned)((j->seq1 - 1) % w) + 1, "\t");
            bool at_start = true;
            if (tag)
                belt__add_tagged(&out, j->cmd, strlen(j->cmd), tag,
                                 strlen(tag), &at_start);
            else
                out.oom = true;
            free(tag);
        } else {
            belt__buf_adds(&out, j->cmd);
        }
        belt__buf_addc(&out, '\n');
        free_job(j);
        if (out.len >= 65536 || out.oom) {
            if (out.oom || belt__write_full(STDOUT_FILENO, out.p, out.len,
                                            -1) != BELT_OK)
                break;
            belt__buf_clear(&out);
        }
    }
    int status = 0;
    if (out.oom) {
        fprintf(stderr, "belt run: out of memory\n");
        status = 1;
    } else if (out.len > 0 &&
               belt__write_full(STDOUT_FILENO, out.p, out.len, -1) != BELT_OK) {
        status = errno == EPIPE ? BELT__EXIT_STDOUT_CLOSED : 1;
        if (status == 1)
            fprintf(stderr, "belt run: writing to stdout: %s\n",
                    strerror(errno));
    }
    if (rc < 0) {
        fprintf(stderr, "belt run: %s\n",
                q->gen_msg[0] ? q->gen_msg : belt_strerror(rc));
        status = 1;
    }
    belt__buf_free(&out);
    return status;
}

/* ---- setting up ------------------------------------------------------- */

static bool regular_fd(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

/* Opens the input: -a, ::: and :::: sources, or stdin.  0 or 2 (printed). */
static int open_input(struct quick *q)
{
    const belt__cmd_opts *c = q->c;
    char msg[600];
    const belt__par_source *src = c->src;
    size_t n = c->nsrc;
    if (n == 0) {
        q->stdin_src = (belt__par_source){.name = "-"};
        src = &q->stdin_src;
        n = 1;
    }
    belt__par_input_opts io = {
        .delim = q->delim.p ? q->delim.p : (q->o->null_sep ? "" : "\n"),
        .delim_len = q->delim.p ? q->delim.len : 1,
        .colsep = c->colsep,
        .skip_blank = c->skip_blank,
        .stop_fd = q->stop_fd,
    };
    if (belt__par_input_new(&q->in, src, n, &io, msg, sizeof msg) != BELT_OK) {
        fprintf(stderr, "belt run: %s\n", msg);
        return 2;
    }
    return 0;
}

/* --pipe / --pipepart: the splitter or the parts.  0 or 2 (printed). */
static int open_pipe(struct quick *q)
{
    const belt__cmd_opts *c = q->c;
    belt__par_pipe_opts po = {
        .block = c->block_set && c->block > 0 ? c->block : 1024 * 1024,
        .records = c->max_replace_args ? c->max_replace_args : c->max_args,
        .recstart = belt__buf_str(&q->recstart),
        .recstart_len = q->recstart.len,
        .recend = belt__buf_str(&q->recend),
        .recend_len = q->recend.len,
        .stop_fd = q->stop_fd,
    };
    if (c->pipepart) {
        if (c->nsrc != 1 || c->src[0].name == NULL ||
            strcmp(c->src[0].name, "-") == 0) {
            fprintf(stderr, "belt run: --pipepart needs one -a FILE, a file "
                    "it can seek in\n");
            return 2;
        }
        const char *path = c->src[0].name;
        q->pipe_fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (q->pipe_fd < 0 || fstat(q->pipe_fd, &st) != 0) {
            fprintf(stderr, "belt run: --pipepart: cannot open %s: %s\n",
                    path, strerror(errno));
            return 2;
        }
        q->pipe_own = true;
        if (!S_ISREG(st.st_mode)) {
            fprintf(stderr, "belt run: --pipepart only works on files it can "
                    "seek in; %s is not one\n", path);
            return 2;
        }
        int64_t block = c->block_set ? c->block : -10;
        if (c->round_robin)
            block = -1;
        if (block < 0)
            block = 1 + (int64_t)st.st_size / (int64_t)q->o->workers / -block;
        if (belt__par_split_file(q->pipe_fd, (int64_t)st.st_size, block, &po,
                                 &q->parts, &q->nparts) != BELT_OK) {
            fprintf(stderr, "belt run: --pipepart: reading %s: %s\n", path,
                    strerror(errno));
            return 2;
        }
        return 0;
    }
    q->pipe_fd = STDIN_FILENO;
    if (c->nsrc > 0) {
        if (c->nsrc != 1 || c->src[0].name == NULL) {
            fprintf(stderr, "belt run: --pipe reads stdin or one -a FILE\n");
            return 2;
        }
        if (strcmp(c->src[0].name, "-") != 0) {
            q->pipe_fd = open(c->src[0].name, O_RDONLY | O_CLOEXEC);
            if (q->pipe_fd < 0) {
                fprintf(stderr, "belt run: cannot open %s: %s\n",
                        c->src[0].name, strerror(errno));
                return 2;
            }
            q->pipe_own = true;
        }
    }
    if (belt__par_blocks_new(&q->blocks, q->pipe_fd, &po) != BELT_OK) {
        fprintf(stderr, "belt run: out of memory\n");
        return 1;
    }
    return 0;
}

static void quick_free(struct quick *q)
{
    if (q->feed) {
        belt_job *jp;
        while (belt_chan_try_recv(q->feed, &jp) == BELT_OK)
            free_job((struct qjob *)(void *)jp);
        belt_chan_free(q->feed);
    }
    for (size_t i = q->sent; q->all && i < q->nall; i++)
        free_job(q->all[i]);
    free(q->all);
    for (size_t i = 0; i < q->npend; i++)
        rec_free(&q->pend[(q->pend_head + i) % q->cappend]);
    free(q->pend);
    grp_clear(q);
    free(q->grp);
    free(q->flat);
    belt__par_input_free(q->in);
    belt__par_blocks_free(q->blocks);
    if (q->pipe_own)
        close(q->pipe_fd);
    free(q->parts);
    belt__par_tpl_free(q->tpl);
    belt__par_tpl_free(q->tag_tpl);
    belt__par_joblog_free(q->log);
    belt__buf_free(&q->delim);
    belt__buf_free(&q->recstart);
    belt__buf_free(&q->recend);
    if (q->stop_fd >= 0)
        close(q->stop_fd);
    free(q->slots);
    free(q->runtimes);
}

/* The exit status parallel gives (the EXIT STATUS of parallel(1)). */
static int exit_status(const struct quick *q)
{
    if (q->halt_status_set)
        return q->halt_status;
    if (q->c->halt_when > 0 && q->c->halt_pct)
        return (int)ceil((double)q->failed /
                         (double)(q->completed ? q->completed : 1) * 100.0);
    return q->failed < 101 ? (int)q->failed : 101;
}

int belt__run_quick(belt__run_opts *o)
{
    const belt__cmd_opts *c = &o->cmd;
    struct quick q;
    memset(&q, 0, sizeof q);
    q.o = o;
    q.c = c;
    q.stop_fd = -1;
    q.pipe_fd = -1;
    q.max_line = MAX_LINE;
    int status = 2;
    pick_shell(q.shell, sizeof q.shell);
    q.shell_is_sh = strcmp(q.shell, "/bin/sh") == 0;

    belt__par_names names = c->names;
    unsigned flags = 0;
    if (c->X || c->max_replace_args)
        flags |= BELT__TPL_CONTEXT;
    if (c->quote)
        flags |= BELT__TPL_QUOTE_ALL;
    if (c->pipe || c->pipepart)
        flags |= BELT__TPL_NO_APPEND;
    char *one[1] = {(char *)o->command};
    char *const *words = o->command ? one : c->words;
    size_t nwords = o->command ? 1 : c->nwords;
    if ((c->pipe || c->pipepart) && nwords == 0) {
        fprintf(stderr, "belt run: --pipe and --pipepart need a command to "
                "feed (as in 'belt run --pipe wc -l')\n");
        return 2;
    }
    if (belt__par_tpl_new(&q.tpl, words, nwords, &names, flags) != BELT_OK)
        goto nomem;
    if (c->tag || c->tagstring) {
        belt__buf ts = {0};
        belt__par_unescape(&ts, c->tagstring ? c->tagstring : names.s[0],
                           false);
        char *tw[1] = {(char *)belt__buf_str(&ts)};
        int rc = ts.oom ? BELT_ENOMEM
                        : belt__par_tpl_new(&q.tag_tpl, tw, 1, &names,
                                            (flags & BELT__TPL_CONTEXT) |
                                                BELT__TPL_RAW |
                                                BELT__TPL_NO_APPEND);
        belt__buf_free(&ts);
        if (rc != BELT_OK)
            goto nomem;
    }
    if (c->delim) {
        belt__par_unescape(&q.delim, c->delim, false);
        if (q.delim.oom)
            goto nomem;
        if (q.delim.len == 0) {
            fprintf(stderr, "belt run: -d: an empty delimiter\n");
            goto out;
        }
    } else if (o->null_sep) {
        belt__buf_add(&q.delim, "", 1);
    }
    if (c->recstart)
        belt__par_unescape(&q.recstart, c->recstart, true);
    if (c->recend)
        belt__par_unescape(&q.recend, c->recend, true);
    else if (!c->recstart)
        belt__buf_add(&q.recend, "\n", 1);
    if (q.recstart.oom || q.recend.oom)
        goto nomem;

    q.mode = o->line_buffer ? BELT_OUTPUT_LINES
             : c->ungroup   ? BELT_OUTPUT_INHERIT
                            : BELT_OUTPUT_GROUP;
    if (q.tag_tpl)
        q.mode = BELT_OUTPUT_GROUP; /* tagged lines: belt copies the output */
    q.max_recs = c->no_args ? 1
                 : c->max_replace_args ? c->max_replace_args
                 : c->max_args       ? c->max_args
                 : (c->X || c->m || c->xargs) ? 0 : 1;

    if (c->resume || c->resume_failed || c->retry_failed) {
        char msg[600];
        const char *path = o->joblog_path + (o->joblog_path[0] == '+');
        if (belt__par_joblog_read(&q.log, path, !c->resume, c->retry_failed,
                                  msg, sizeof msg) != BELT_OK) {
            fprintf(stderr, "belt run: %s\n", msg);
            goto out;
        }
    }

    q.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (q.stop_fd < 0) {
        fprintf(stderr, "belt run: cannot start: %s\n", strerror(errno));
        status = 1;
        goto out;
    }
    if (c->retry_failed) {
        /* the job log has the commands: no input */
    } else if (c->pipe || c->pipepart) {
        if ((status = open_pipe(&q)) != 0)
            goto out;
    } else {
        if ((status = open_input(&q)) != 0)
            goto out;
        if (belt__par_input_reads_fd(q.in, STDIN_FILENO) &&
            isatty(STDIN_FILENO) && !o->quiet) {
            if (nwords == 0) {
                fprintf(stderr, "belt run: no command, no config and no "
                        "input: try 'belt run CONFIG.json', 'belt run "
                        "COMMAND ::: ARGS...' or 'belt run --help'\n");
                status = 2;
                goto out;
            }
            fprintf(stderr, "belt run: reading the arguments of '%s' from "
                    "the terminal, one per line (end with Ctrl-D); to give "
                    "them on the command line, put them after :::\n",
                    words[0]);
        }
    }
    if (c->pipe && !c->pipepart && c->round_robin && o->dry_run) {
        fprintf(stderr, "belt run: --dry-run with --round-robin: nothing to "
                "show (the jobs' commands do not depend on the blocks)\n");
    }

    if (o->dry_run) {
        status = dry_run(&q);
        goto out;
    }
    bool need_all = c->shuf || c->bar || c->eta ||
                    (c->halt_when > 0 && c->halt_pct);
    if (need_all && !(c->pipe && c->round_robin)) {
        int rc = gen_all(&q);
        if (rc < 0 && rc != BELT_ECANCELED) {
            fprintf(stderr, "belt run: %s\n",
                    q.gen_msg[0] ? q.gen_msg : belt_strerror(rc));
            status = 1;
            goto out;
        }
    }

    /* A producer thread only where reading may wait (stdin from a pipe or
     * a terminal) or the producer paces or feeds the jobs (--delay,
     * --round-robin); else the engine makes each job itself. */
    bool round_robin = c->pipe && !c->pipepart && c->round_robin;
    bool may_block = q.all == NULL && !c->retry_failed && !c->pipepart &&
                     (q.in ? belt__par_input_may_block(q.in)
                           : !regular_fd(q.pipe_fd));
    bool threaded = may_block || round_robin || c->delay_ns > 0;
    if (threaded) {
        q.feed = belt_chan_bounded(c->delay_ns > 0 ? 0
                                   : c->pipe || c->pipepart ? 2 : FEED_CAP,
                                   sizeof(belt_job *));
        if (q.feed == NULL)
            goto nomem;
        int err = pthread_create(&q.thread, NULL, producer_main, &q);
        if (err != 0) {
            fprintf(stderr, "belt run: cannot start the input reader: %s\n",
                    strerror(err));
            status = 1;
            goto out;
        }
        q.thread_started = true;
    }

    size_t cap = o->workers;
    belt__source src = {
        .ctx = &q,
        .feed = q.feed,
        .next = threaded ? NULL : quick_next,
        .finished = threaded ? NULL : quick_finished,
        .done = quick_done,
        .cancel = quick_cancel,
        .prepare = quick_prepare,
        .info = quick_info,
        .halt = quick_halt,
        .total = q.all ? q.nall : 0,
        .group_output = q.mode == BELT_OUTPUT_GROUP,
        .halt_in_engine = true,
        .order_window = o->keep_order ? fit_window(cap + 256, cap) : 0,
        .max_in_flight = cap,
        .watch_stdout = q.mode == BELT_OUTPUT_LINES,
    };
    status = belt__run_engine(o, &src);
    if (q.thread_started) {
        quick_cancel(&q, NULL);
        pthread_join(q.thread, NULL);
        q.thread_started = false;
    }

    if (q.gen_error && q.gen_error != BELT_ECANCELED) {
        fprintf(stderr, "belt run: %s\n",
                q.gen_msg[0] ? q.gen_msg : belt_strerror(q.gen_error));
        if (status == 0)
            status = 1;
    }
    if (status == 130 || status == 143 || status == BELT__EXIT_STDOUT_CLOSED)
        goto out;
    int ps = exit_status(&q);
    if (ps == 0 && (src.io_failed || q.gen_error))
        ps = 1; /* the results file or job log failed, a read error */
    status = ps;
    goto out;

nomem:
    fprintf(stderr, "belt run: out of memory\n");
    status = 1;
out:
    if (q.thread_started) {
        quick_cancel(&q, NULL);
        pthread_join(q.thread, NULL);
    }
    quick_free(&q);
    return status;
}
