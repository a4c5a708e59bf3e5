/* app/plot.c: gnuplot scripts and plots of an experiment.
 *
 * What it writes into DIR (each script runs on its own: `cd DIR && gnuplot
 * latency.gp` makes latency.svg, `gnuplot -e "fmt='png'" latency.gp`
 * latency.png):
 *
 *   latency.dat, latency.gp     mean and p99 sojourn time against load, one
 *                               line per policy (two panels, log y), with
 *                               the closed-form curves of experiment/out.c
 *                               dashed where they exist (M/M/1 for random,
 *                               M/M/c for shared); only when the sweep has
 *                               at least two loads
 *   utilization.dat, .gp        per-worker utilisation at the highest load,
 *                               one bar per worker and policy
 *
 * Which points go in a figure: the rows are grouped by everything but the
 * policy and the load (workers, service, speeds, ...); the figures show
 * the first group, in sweep order, and later groups get latency-2.gp,
 * utilization-2.gp and so on (at most 8 groups are drawn).
 *
 * gnuplot runs as a child process (posix_spawnp, in DIR through
 * posix_spawn_file_actions_addchdir_np, stdout to /dev/null, stderr
 * inherited) and is reaped with waitpid before the next one starts.  When
 * it is not installed, the scripts and data are still written and the
 * caller is told (BELT_ENOENT).  The theory curves are computed in C on a
 * fine grid of loads, not by gnuplot, so the numbers are the ones the tests
 * check.
 */
#include "experiment/experiment.h"

#include "belt/error.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_GROUPS 8
#define MAX_POLICIES 32

/* True if rows a and b differ only in policy and load. */
static bool same_group(const belt__exp_row *a, const belt__exp_row *b)
{
    const belt__exp_point *p = a->pt, *q = b->pt;
    if (p->workers != q->workers || p->d != q->d || p->arrival != q->arrival ||
        p->jobs != q->jobs || p->max_time != q->max_time ||
        p->warmup != q->warmup || p->seed != q->seed || p->repeat != q->repeat ||
        strcmp(p->service_text, q->service_text) != 0 ||
        (p->speeds == NULL) != (q->speeds == NULL))
        return false;
    if (p->speeds != NULL)
        for (unsigned w = 0; w < p->workers; w++)
            if (p->speeds[w] != q->speeds[w])
                return false;
    return true;
}

/* The distinct policies among rows[idx[0..n)], in order of appearance. */
static size_t policies(const belt__exp_row *rows, const size_t *idx, size_t n,
                       const char **out)
{
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = rows[idx[i]].pt->policy;
        size_t k = 0;
        while (k < np && strcmp(out[k], p) != 0)
            k++;
        if (k == np && np < MAX_POLICIES)
            out[np++] = p;
    }
    return np;
}

static int cmp_load(const void *a, const void *b)
{
    const belt__exp_row *x = *(const belt__exp_row *const *)a;
    const belt__exp_row *y = *(const belt__exp_row *const *)b;
    return (x->pt->load > y->pt->load) - (x->pt->load < y->pt->load);
}

static FILE *open_in(const char *dir, const char *name, char *msg,
                     size_t msg_size)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        snprintf(msg, msg_size, "cannot write %s: %s", path, strerror(errno));
    return f;
}

static int close_in(FILE *f, const char *dir, const char *name, char *msg,
                    size_t msg_size)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        return belt__errf(msg, msg_size, BELT_ESYS,
                          "cannot write %s/%s: %s", dir, name,
                          strerror(errno));
    }
    return BELT_OK;
}

/* The header every script starts with: the terminal from `fmt`. */
static void gp_head(FILE *f, const char *base, int w, int h)
{
    fprintf(f,
            "# Made by belt experiment.  `gnuplot %s.gp` writes %s.svg;\n"
            "# `gnuplot -e \"fmt='png'\" %s.gp` writes %s.png.\n"
            "if (!exists(\"fmt\")) fmt = 'svg'\n"
            "if (fmt eq 'png') {\n"
            "    set terminal pngcairo size %d,%d font 'sans,10' background rgb 'white'\n"
            "} else {\n"
            "    set terminal svg size %d,%d dynamic font 'sans,11' background rgb 'white'\n"
            "}\n"
            "set output '%s.'.fmt\n"
            "set grid lc rgb '#dddddd'\n"
            "set border lc rgb '#555555'\n",
            base, base, base, base, w, h, w, h, base);
}

/* Closes the data file *f (called name) and opens base.gp in its place
 * (name is then "base.gp"), starting it with the head for a w x h plot.
 * Returns BELT_OK, or an error from close_in() / BELT_ESYS with msg set. */
static int data_to_script(FILE **f, const char *dir, char *name,
                          size_t name_size, const char *base, int w, int h,
                          char *msg, size_t msg_size)
{
    int rc = close_in(*f, dir, name, msg, msg_size);
    if (rc != BELT_OK)
        return rc;
    snprintf(name, name_size, "%s.gp", base);
    if ((*f = open_in(dir, name, msg, msg_size)) == NULL)
        return BELT_ESYS;
    gp_head(*f, base, w, h);
    return BELT_OK;
}

/* latency.dat: one block per policy (rows sorted by load): load, mean,
 * p99; then, per policy with a closed form, a block of the curve on a fine
 * grid: load, mean, p99.  Returns the number of blocks written. */
static int latency(const char *dir, const char *base, const belt__experiment *e,
                   const belt__exp_row *rows, const size_t *idx, size_t n,
                   char *msg, size_t msg_size)
{
    const char *pol[MAX_POLICIES];
    size_t np = policies(rows, idx, n, pol);
    const belt__exp_row **sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL) {
        return belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
    }
    char name[64];
    snprintf(name, sizeof name, "%s.dat", base);
    FILE *f = open_in(dir, name, msg, msg_size);
    if (f == NULL) {
        free(sorted);
        return BELT_ESYS;
    }
    double lo = INFINITY, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, rows[idx[i]].pt->load);
        hi = fmax(hi, rows[idx[i]].pt->load);
    }
    /* Blocks: measured per policy, then theory per policy that has it. */
    int theory_block[MAX_POLICIES];
    int nblocks = 0;
    for (size_t k = 0; k < np; k++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (strcmp(rows[idx[i]].pt->policy, pol[k]) == 0)
                sorted[m++] = &rows[idx[i]];
        qsort(sorted, m, sizeof *sorted, cmp_load);
        fprintf(f, "# %s: load sojourn_mean sojourn_p99\n", pol[k]);
        for (size_t i = 0; i < m; i++)
            fprintf(f, "%.9g %.9g %.9g\n", sorted[i]->pt->load,
                    sorted[i]->v[BELT__M_SOJOURN_MEAN],
                    sorted[i]->v[BELT__M_SOJOURN_P99]);
        fputs("\n\n", f);
        nblocks++;
    }
    for (size_t k = 0; k < np; k++) {
        theory_block[k] = -1;
        const belt__exp_row *r0 = NULL;
        for (size_t i = 0; i < n && r0 == NULL; i++)
            if (strcmp(rows[idx[i]].pt->policy, pol[k]) == 0)
                r0 = &rows[idx[i]];
        if (r0 == NULL || !isfinite(r0->theory_mean))
            continue;
        belt__exp_point pt = *r0->pt;
        fprintf(f, "# %s, theory: load sojourn_mean sojourn_p99\n", pol[k]);
        double top = fmin(hi, 0.995);
        for (int s = 0; s <= 200; s++) {
            pt.load = lo + (top - lo) * s / 200.0;
            double mean, p99;
            belt__exp_theory(&pt, &mean, &p99);
            if (!isfinite(mean))
                continue;
            fprintf(f, "%.9g %.9g ", pt.load, mean);
            if (isfinite(p99))
                fprintf(f, "%.9g\n", p99);
            else
                fputs("NaN\n", f);
        }
        fputs("\n\n", f);
        theory_block[k] = nblocks++;
    }
    free(sorted);
    int rc = data_to_script(&f, dir, name, sizeof name, base, 1100, 460, msg,
                            msg_size);
    if (rc != BELT_OK)
        return rc;
    const belt__exp_point *p0 = rows[idx[0]].pt;
    fprintf(f,
            "set multiplot layout 1,2 title \"%s: %u workers, %s, %s arrivals\"\n"
            "set xlabel 'load (utilisation of the pool)'\n"
            "set logscale y\n"
            "set key top left font ',9'\n"
            "set style data linespoints\n",
            e->mode == BELT__EXP_LIVE ? "live" : "simulated", p0->workers,
            p0->service_text, belt__arrival_name(p0->arrival));
    for (int panel = 0; panel < 2; panel++) {
        fprintf(f, "set ylabel '%s sojourn time (s)'\nplot ",
                panel == 0 ? "mean" : "p99");
        for (size_t k = 0; k < np; k++)
            fprintf(f, "%s'%s.dat' index %zu using 1:%d lw 2 pt 7 ps 0.6 lc %zu title '%s'",
                    k ? ", \\\n     " : "", base, k, panel == 0 ? 2 : 3, k + 1,
                    pol[k]);
        for (size_t k = 0; k < np; k++) {
            if (theory_block[k] < 0)
                continue;
            bool random = strcmp(pol[k], "shared") != 0;
            if (panel == 1 && !random)
                continue; /* no closed-form p99 for M/M/c here */
            fprintf(f, ", \\\n     '%s.dat' index %d using 1:%d with lines dt 2 lw 1.5 lc %zu title '%s (theory, %s)'",
                    base, theory_block[k], panel == 0 ? 2 : 3, k + 1, pol[k],
                    random ? "M/M/1" : "M/M/c");
        }
        fputc('\n', f);
    }
    fputs("unset multiplot\n", f);
    return close_in(f, dir, name, msg, msg_size);
}

/* utilization.dat: per worker, the utilisation under each policy at the
 * group's highest load. */
static int utilization(const char *dir, const char *base,
                       const belt__exp_row *rows, const size_t *idx, size_t n,
                       char *msg, size_t msg_size)
{
    const char *pol[MAX_POLICIES];
    size_t np = policies(rows, idx, n, pol);
    const belt__exp_row *pick[MAX_POLICIES] = { 0 };
    for (size_t i = 0; i < n; i++) {
        const belt__exp_row *r = &rows[idx[i]];
        for (size_t k = 0; k < np; k++)
            if (strcmp(r->pt->policy, pol[k]) == 0 &&
                (pick[k] == NULL || r->pt->load > pick[k]->pt->load))
                pick[k] = r;
    }
    unsigned workers = rows[idx[0]].pt->workers;
    char name[64];
    snprintf(name, sizeof name, "%s.dat", base);
    FILE *f = open_in(dir, name, msg, msg_size);
    if (f == NULL)
        return BELT_ESYS;
    fputs("worker", f);
    for (size_t k = 0; k < np; k++)
        fprintf(f, " %s", pol[k]);
    fputc('\n', f);
    for (unsigned w = 0; w < workers; w++) {
        fprintf(f, "%u", w);
        for (size_t k = 0; k < np; k++)
            fprintf(f, " %.6f", pick[k]->util != NULL ? pick[k]->util[w] : 0.0);
        fputc('\n', f);
    }
    int rc = data_to_script(&f, dir, name, sizeof name, base, 1000, 420, msg,
                            msg_size);
    if (rc != BELT_OK)
        return rc;
    unsigned every = workers <= 32 ? 1 : (workers + 15) / 16;
    fprintf(f,
            "set title \"per-worker utilisation at load %.3g (%u workers, %s)\"\n"
            "set style data histograms\n"
            "set style histogram clustered gap 1\n"
            "set style fill solid 0.85 border -1\n"
            "set boxwidth 0.9\n"
            "set yrange [0:1.05]\n"
            "set ylabel 'busy time / makespan'\n"
            "set xlabel 'worker'\n"
            "set key outside right top font ',9'\n"
            "plot for [i=2:%zu] '%s.dat' using i:xtic(int($1) %% %u == 0 ? stringcolumn(1) : '') title columnheader(i)\n",
            pick[0] ? pick[0]->pt->load : 0.0, workers,
            rows[idx[0]].pt->service_text, np + 1, base, every);
    return close_in(f, dir, name, msg, msg_size);
}

/* Runs gnuplot [-e fmt='png'] script in dir and reaps it.  BELT_OK,
 * BELT_ENOENT (no gnuplot), BELT_ESYS (it failed; msg). */
static int gnuplot(const char *dir, const char *script, const char *fmt,
                   char *msg, size_t msg_size)
{
    char set[32];
    snprintf(set, sizeof set, "fmt='%s'", fmt);
    char *argv[] = { "gnuplot", "-e", set, (char *)script, NULL };
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        return belt__errf(msg, msg_size, BELT_ESYS,
                          "cannot run gnuplot: out of memory");
    }
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int err = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err == ENOENT) {
        snprintf(msg, msg_size,
                 "gnuplot is not installed (Debian: apt-get install gnuplot-nox): "
                 "no plots made; the scripts and data are in %s (*.gp, *.dat)",
                 dir);
        return BELT_ENOENT;
    }
    if (err != 0) {
        return belt__errf(msg, msg_size, BELT_ESYS,
                          "cannot run gnuplot: %s", strerror(err));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            return belt__errf(msg, msg_size, BELT_ESYS,
                              "waiting for gnuplot: %s", strerror(errno));
        }
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        return belt__errf(msg, msg_size, BELT_ESYS,
                          "gnuplot failed on %s/%s (%s)", dir, script,
                          fmt);
    }
    return BELT_OK;
}

int belt__exp_plot(const char *dir, const belt__experiment *e,
                   const belt__exp_row *rows, size_t n, bool run_gnuplot,
                   char *msg, size_t msg_size)
{
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    int *group = malloc((n ? n : 1) * sizeof *group);
    char (*scripts)[64] = malloc(2 * MAX_GROUPS * sizeof *scripts);
    if (idx == NULL || group == NULL || scripts == NULL) {
        free(idx);
        free(group);
        free(scripts);
        return belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
    }
    /* Group the rows: group[i] is the first row of i's group. */
    for (size_t i = 0; i < n; i++) {
        group[i] = (int)i;
        for (size_t j = 0; j < i; j++)
            if (group[j] == (int)j && same_group(&rows[i], &rows[j])) {
                group[i] = (int)j;
                break;
            }
    }
    int rc = BELT_OK;
    size_t nscripts = 0, g = 0;
    for (size_t first = 0; first < n && g < MAX_GROUPS && rc == BELT_OK; first++) {
        if (group[first] != (int)first)
            continue;
        size_t m = 0;
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = first; i < n; i++)
            if (group[i] == (int)first) {
                idx[m++] = i;
                lo = fmin(lo, rows[i].pt->load);
                hi = fmax(hi, rows[i].pt->load);
            }
        g++;
        char base[32];
        if (hi > lo && hi > 0) {
            snprintf(base, sizeof base, g == 1 ? "latency" : "latency-%zu", g);
            rc = latency(dir, base, e, rows, idx, m, msg, msg_size);
            if (rc == BELT_OK)
                snprintf(scripts[nscripts++], 64, "%s.gp", base);
        }
        if (rc == BELT_OK) {
            snprintf(base, sizeof base, g == 1 ? "utilization" : "utilization-%zu", g);
            rc = utilization(dir, base, rows, idx, m, msg, msg_size);
            if (rc == BELT_OK)
                snprintf(scripts[nscripts++], 64, "%s.gp", base);
        }
    }
    for (size_t s = 0; s < nscripts && run_gnuplot && rc == BELT_OK; s++) {
        rc = gnuplot(dir, scripts[s], "svg", msg, msg_size);
        if (rc == BELT_OK)
            rc = gnuplot(dir, scripts[s], "png", msg, msg_size);
    }
    free(idx);
    free(group);
    free(scripts);
    return rc;
}
