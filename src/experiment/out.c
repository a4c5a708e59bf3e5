/* experiment/out.c: an experiment's results: repeats averaged into rows,
 * the closed-form curves of queueing theory, and DIR/results.csv and
 * DIR/results.json.
 *
 * Rows.  Each point ran `repeat` times (different seeds); a row holds the
 * mean of every scalar over the repeats and, with two or more, the
 * half-width of its 95% confidence interval (Student's t, experiment/hist.c).
 * Quantiles are averaged like the rest: the row's p99 is the mean of the
 * repeats' p99s.
 *
 * Theory (belt__exp_theory): the textbook closed forms, used to overlay
 * plots and to check the simulator (tests/unit/check_experiment.c):
 *   - random dispatch of a Poisson stream of rate λ over n workers splits
 *     it into n Poisson streams of rate λ/n, so each worker is M/M/1 with
 *     sojourn time exponential of rate μ - λ/n: mean 1/(μ - λ/n), p99
 *     ln(100)/(μ - λ/n) (Kleinrock, Queueing Systems vol. 1, 1975, §3.2);
 *   - one shared FIFO queue is M/M/c: mean E[S] + C(c, a) E[S]/(c - a),
 *     a = λ E[S], with Erlang's C formula computed from Erlang B by the
 *     stable recurrence B(k) = a B(k-1) / (k + a B(k-1)),
 *     C = B / (1 - (a/c)(1 - B)) (Kleinrock §3.5).
 *
 * Files.  CSV: a header line, then one line per point, in sweep order;
 * numbers with %.9g (times in seconds); text fields quoted when they hold a
 * comma or quote.  JSON: {"experiment": ..., "points": [{...}, ...]} with
 * the same names plus per-worker "util" and "ci95" objects; a value that is
 * not defined (NAN: CI of one run, theory where there is none) is empty in
 * CSV and null in JSON.  The CSV holds nothing that varies between runs of
 * the same simulated experiment (the JSON's "wall" does), so that the same
 * config and seed give the same results.csv byte for byte.  Both files are
 * written to a temporary name and renamed, so a reader never sees half a file.
 */
#include "experiment/experiment.h"

#include "belt/error.h"
#include "experiment/hist.h"
#include "util/json.h"
#include "util/err.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const metric_names[BELT__M_COUNT] = {
    "sojourn_mean", "sojourn_p50", "sojourn_p90", "sojourn_p99",
    "sojourn_p999", "sojourn_max",
    "wait_mean", "wait_p50", "wait_p90", "wait_p99", "wait_p999",
    "service_mean", "service_p50", "service_p90", "service_p99",
    "service_p999",
    "utilization", "throughput", "makespan", "jain", "qlen_mean", "qlen_max",
    "steals", "jobs_done",
};

const char *belt__exp_metric_name(belt__exp_metric m)
{
    return (unsigned)m < BELT__M_COUNT ? metric_names[m] : "unknown";
}

static double metric(const belt__point_result *r, belt__exp_metric m)
{
    switch (m) {
    case BELT__M_SOJOURN_MEAN: return r->sojourn.mean;
    case BELT__M_SOJOURN_P50: return r->sojourn.p50;
    case BELT__M_SOJOURN_P90: return r->sojourn.p90;
    case BELT__M_SOJOURN_P99: return r->sojourn.p99;
    case BELT__M_SOJOURN_P999: return r->sojourn.p999;
    case BELT__M_SOJOURN_MAX: return r->sojourn.max;
    case BELT__M_WAIT_MEAN: return r->wait.mean;
    case BELT__M_WAIT_P50: return r->wait.p50;
    case BELT__M_WAIT_P90: return r->wait.p90;
    case BELT__M_WAIT_P99: return r->wait.p99;
    case BELT__M_WAIT_P999: return r->wait.p999;
    case BELT__M_SERVICE_MEAN: return r->service.mean;
    case BELT__M_SERVICE_P50: return r->service.p50;
    case BELT__M_SERVICE_P90: return r->service.p90;
    case BELT__M_SERVICE_P99: return r->service.p99;
    case BELT__M_SERVICE_P999: return r->service.p999;
    case BELT__M_UTILIZATION: return r->util_mean;
    case BELT__M_THROUGHPUT: return r->throughput;
    case BELT__M_MAKESPAN: return r->makespan;
    case BELT__M_JAIN: return r->jain;
    case BELT__M_QLEN_MEAN: return r->qlen_mean;
    case BELT__M_QLEN_MAX: return r->qlen_max;
    case BELT__M_STEALS: return (double)r->steals;
    case BELT__M_JOBS: return (double)r->jobs;
    default: return NAN;
    }
}

/* ---- rows --------------------------------------------------------------- */

int belt__exp_row_fill(belt__exp_row *row, const belt__exp_point *pt,
                       const belt__point_result *res,
                       const belt__live_extra *extras, unsigned nres)
{
    memset(row, 0, sizeof *row);
    row->pt = pt;
    row->runs = nres;
    row->late = row->overrun = NAN;
    belt__exp_theory(pt, &row->theory_mean, &row->theory_p99);
    double *x = malloc((nres ? nres : 1) * sizeof *x);
    row->util = calloc(pt->workers, sizeof *row->util);
    if (x == NULL || row->util == NULL) {
        free(x);
        free(row->util);
        row->util = NULL;
        return BELT_ENOMEM;
    }
    for (int m = 0; m < BELT__M_COUNT; m++) {
        for (unsigned i = 0; i < nres; i++)
            x[i] = metric(&res[i], (belt__exp_metric)m);
        row->v[m] = row->ci[m] = NAN;
        if (nres > 0)
            belt__ci95(x, nres, &row->v[m], &row->ci[m]);
    }
    for (unsigned w = 0; w < pt->workers; w++) {
        double s = 0;
        for (unsigned i = 0; i < nres; i++)
            s += res[i].util != NULL && w < res[i].n ? res[i].util[w] : 0;
        row->util[w] = nres ? s / nres : 0;
    }
    if (extras != NULL && nres > 0) {
        double l = 0, o = 0;
        for (unsigned i = 0; i < nres; i++) {
            l += extras[i].lateness_mean;
            o += extras[i].overrun_mean;
        }
        row->late = l / nres;
        row->overrun = o / nres;
    }
    free(x);
    return BELT_OK;
}

void belt__exp_row_free(belt__exp_row *row)
{
    if (row != NULL) {
        free(row->util);
        row->util = NULL;
    }
}

/* ---- theory ------------------------------------------------------------- */

double belt__erlang_c(unsigned c, double a)
{
    if (c == 0 || !(a >= 0))
        return NAN;
    if (a >= c)
        return 1.0;
    double b = 1.0;
    for (unsigned k = 1; k <= c; k++)
        b = a * b / ((double)k + a * b);
    double rho = a / c;
    return b / (1.0 - rho * (1.0 - b));
}

void belt__exp_theory(const belt__exp_point *pt, double *mean, double *p99)
{
    *mean = *p99 = NAN;
    if (pt->arrival != BELT__ARRIVAL_POISSON ||
        pt->service.kind != BELT__DIST_EXPONENTIAL || pt->speeds != NULL)
        return;
    double es = belt__dist_mean(&pt->service);
    double rho = pt->load;
    if (!(es > 0) || !(rho > 0 && rho < 1))
        return;
    unsigned n = pt->workers;
    if (n == 1 || strcmp(pt->policy, "random") == 0) {
        /* M/M/1 at λ/n: μ - λ/n = (1 - ρ)/E[S]. */
        *mean = es / (1 - rho);
        *p99 = log(100.0) * es / (1 - rho);
    } else if (strcmp(pt->policy, "shared") == 0) {
        double a = rho * n;
        *mean = es + belt__erlang_c(n, a) * es / ((double)n - a);
    }
}

/* ---- files -------------------------------------------------------------- */

static void csv_text(FILE *f, const char *s)
{
    if (strpbrk(s, ",\"\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.9g", v);
    else
        fputc(',', f);
}

/* s as a JSON string (util/json.h), or null when it cannot be allocated
 * (the file's write error is what the caller checks; this can't fail). */
static void json_str(FILE *f, const char *s)
{
    belt__buf b = { 0 };
    belt__json_add_str(&b, s, strlen(s));
    if (b.oom)
        fputs("null", f);
    else
        fwrite(b.p, 1, b.len, f);
    belt__buf_free(&b);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

/* , "key": v */
static void json_key_num(FILE *f, const char *key, double v)
{
    fprintf(f, ", \"%s\": ", key);
    json_num(f, v);
}

/* "[2,1,1,1]" for speeds, "" when all 1. */
static void speeds_text(char *buf, size_t size, const belt__exp_point *pt)
{
    buf[0] = '\0';
    if (pt->speeds == NULL || size < 8)
        return;
    size_t len = 0;
    for (unsigned w = 0; w < pt->workers && len + 24 < size; w++)
        len += (size_t)snprintf(buf + len, size - len, "%s%g", w ? " " : "",
                                pt->speeds[w]);
}

/* The main metrics also get a CI column in the CSV. */
static const belt__exp_metric ci_cols[] = {
    BELT__M_SOJOURN_MEAN, BELT__M_SOJOURN_P99, BELT__M_WAIT_MEAN,
    BELT__M_UTILIZATION, BELT__M_THROUGHPUT,
};
#define N_CI (sizeof ci_cols / sizeof ci_cols[0])

static void write_csv(FILE *f, const belt__experiment *e,
                      const belt__exp_row *rows, size_t n)
{
    fputs("point,mode,policy,workers,d,arrival,load,rate,service,speeds,"
          "jobs,max_time,warmup,seed,repeat", f);
    for (int m = 0; m < BELT__M_COUNT; m++)
        fprintf(f, ",%s", metric_names[m]);
    for (size_t c = 0; c < N_CI; c++)
        fprintf(f, ",%s_ci95", metric_names[ci_cols[c]]);
    fputs(",theory_sojourn_mean,theory_sojourn_p99,live_submit_late,"
          "live_service_overrun\n", f);
    for (size_t i = 0; i < n; i++) {
        const belt__exp_row *r = &rows[i];
        const belt__exp_point *pt = r->pt;
        fprintf(f, "%zu,%s,", pt->index, belt__exp_mode_name(e->mode));
        csv_text(f, pt->policy);
        fprintf(f, ",%u,%u,%s", pt->workers, pt->d, belt__arrival_name(pt->arrival));
        csv_num(f, pt->load);
        csv_num(f, pt->rate);
        fputc(',', f);
        csv_text(f, pt->service_text);
        char sp[512];
        speeds_text(sp, sizeof sp, pt);
        fputc(',', f);
        csv_text(f, sp);
        fprintf(f, ",%llu", (unsigned long long)pt->jobs);
        csv_num(f, pt->max_time);
        csv_num(f, pt->warmup);
        fprintf(f, ",%llu,%u", (unsigned long long)pt->seed, pt->repeat);
        for (int m = 0; m < BELT__M_COUNT; m++)
            csv_num(f, r->v[m]);
        for (size_t c = 0; c < N_CI; c++)
            csv_num(f, r->ci[ci_cols[c]]);
        csv_num(f, r->theory_mean);
        csv_num(f, r->theory_p99);
        csv_num(f, r->late);
        csv_num(f, r->overrun);
        fputc('\n', f);
    }
}

static void write_json(FILE *f, const belt__experiment *e,
                       const belt__exp_row *rows, size_t n)
{
    fputs("{\"experiment\": {\"source\": ", f);
    json_str(f, e->source);
    fputs(", \"mode\": ", f);
    json_str(f, belt__exp_mode_name(e->mode));
    if (e->description != NULL) {
        fputs(", \"description\": ", f);
        json_str(f, e->description);
    }
    fputs(", \"axes\": [", f);
    for (size_t a = 0; a < e->naxes; a++) {
        fputs(a ? ", " : "", f);
        json_str(f, e->axis_name[a]);
    }
    fputs("]},\n \"points\": [\n", f);
    for (size_t i = 0; i < n; i++) {
        const belt__exp_row *r = &rows[i];
        const belt__exp_point *pt = r->pt;
        fprintf(f, "  {\"point\": %zu, \"policy\": ", pt->index);
        json_str(f, pt->policy);
        fprintf(f, ", \"workers\": %u, \"d\": %u, \"arrival\": \"%s\", \"load\": ",
                pt->workers, pt->d, belt__arrival_name(pt->arrival));
        json_num(f, pt->load);
        json_key_num(f, "rate", pt->rate);
        fputs(", \"service\": ", f);
        json_str(f, pt->service_text);
        fputs(", \"speeds\": ", f);
        if (pt->speeds == NULL) {
            fputs("null", f);
        } else {
            fputc('[', f);
            for (unsigned w = 0; w < pt->workers; w++)
                fprintf(f, "%s%g", w ? ", " : "", pt->speeds[w]);
            fputc(']', f);
        }
        fprintf(f, ", \"jobs\": %llu, \"max_time\": ", (unsigned long long)pt->jobs);
        json_num(f, pt->max_time);
        json_key_num(f, "warmup", pt->warmup);
        fprintf(f, ", \"seed\": %llu, \"repeat\": %u, \"runs\": %u",
                (unsigned long long)pt->seed, pt->repeat, r->runs);
        for (int m = 0; m < BELT__M_COUNT; m++) {
            fprintf(f, ", \"%s\": ", metric_names[m]);
            json_num(f, r->v[m]);
        }
        json_key_num(f, "theory_sojourn_mean", r->theory_mean);
        json_key_num(f, "theory_sojourn_p99", r->theory_p99);
        json_key_num(f, "live_submit_late", r->late);
        json_key_num(f, "live_service_overrun", r->overrun);
        json_key_num(f, "wall", r->wall);
        fputs(",\n   \"ci95\": {", f);
        for (int m = 0; m < BELT__M_COUNT; m++) {
            fprintf(f, "%s\"%s\": ", m ? ", " : "", metric_names[m]);
            json_num(f, r->ci[m]);
        }
        fputs("},\n   \"util\": [", f);
        for (unsigned w = 0; w < pt->workers; w++) {
            fputs(w ? ", " : "", f);
            json_num(f, r->util != NULL ? r->util[w] : NAN);
        }
        fprintf(f, "]}%s\n", i + 1 < n ? "," : "");
    }
    fputs(" ]\n}\n", f);
}

/* Writes DIR/name through DIR/name.tmp and a rename. */
static int write_file(const char *dir, const char *name,
                      void (*fn)(FILE *, const belt__experiment *,
                                 const belt__exp_row *, size_t),
                      const belt__experiment *e, const belt__exp_row *rows,
                      size_t n, char *msg, size_t msg_size)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return belt__errf(msg, msg_size, BELT_ESYS,
                          "cannot write %s: %s", tmp, strerror(errno));
    }
    fn(f, e, rows, n);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        int err = errno;
        snprintf(msg, msg_size, "cannot write %s: %s", tmp, strerror(err));
        remove(tmp);
        return BELT_ESYS;
    }
    if (rename(tmp, path) != 0) {
        snprintf(msg, msg_size, "cannot rename %s: %s", tmp, strerror(errno));
        remove(tmp);
        return BELT_ESYS;
    }
    return BELT_OK;
}

int belt__exp_write(const char *dir, const belt__experiment *e,
                    const belt__exp_row *rows, size_t n, char *msg,
                    size_t msg_size)
{
    int rc = write_file(dir, "results.csv", write_csv, e, rows, n, msg, msg_size);
    if (rc == BELT_OK)
        rc = write_file(dir, "results.json", write_json, e, rows, n, msg,
                        msg_size);
    return rc;
}
