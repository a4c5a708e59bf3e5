/* experiment/hist.c: the latency histogram and the summary statistics of experiment/hist.h.
 *
 * Histogram: log-linear buckets in the manner of HdrHistogram (Gil Tene,
 * hdrhistogram.org), but indexed straight from the IEEE-754 bits of the
 * value: the exponent picks the power of two, the top 9 mantissa bits the
 * sub-bucket (belt__hist_index in experiment/hist.h).  Bucket i covers
 * [2^e (1 + s/512), 2^e (1 + (s+1)/512)) with e = i/512 + MIN_EXP,
 * s = i % 512.  A quantile is its bucket's midpoint: for a value x in that
 * bucket the error is at most half the width, 2^e / 1024 <= x / 1024.  The
 * midpoint is then clamped to the exact [min, max], which only moves it
 * closer.  Quantiles use the nearest-rank definition (the value of rank
 * ceil(q * count) in sorted order).
 *
 * Invariants: count = zero + Σ counts[]; min <= max when count > 0.
 *
 * Confidence intervals: Student's t (two-sided 95%), exact table for 1..30
 * degrees of freedom (to 7 digits), the Cornish-Fisher expansion beyond
 * (Abramowitz and Stegun 26.7.5; error below 1e-5 at 31 and falling).
 */
#include "experiment/hist.h"

#include <math.h>
#include <stdlib.h>

#include "belt/error.h"

int belt__hist_init(belt__hist *h)
{
    *h = (belt__hist){ 0 };
    h->counts = calloc(BELT__HIST_BUCKETS, sizeof *h->counts);
    return h->counts != NULL ? BELT_OK : BELT_ENOMEM;
}

void belt__hist_free(belt__hist *h)
{
    if (h == NULL)
        return;
    free(h->counts);
    *h = (belt__hist){ 0 };
}

void belt__hist_reset(belt__hist *h)
{
    uint64_t *c = h->counts;
    if (c != NULL)
        memset(c, 0, BELT__HIST_BUCKETS * sizeof *c);
    *h = (belt__hist){ 0 };
    h->counts = c;
}

void belt__hist_merge(belt__hist *dst, const belt__hist *src)
{
    if (src->count == 0)
        return;
    for (size_t i = 0; i < BELT__HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->zero += src->zero;
    dst->count += src->count;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
}

/* The value reported for bucket i (midpoint, clamped to [min, max]). */
static double bucket_value(const belt__hist *h, size_t i)
{
    if (i == BELT__HIST_BUCKETS - 1)
        return h->max;
    int e = (int)(i >> BELT__HIST_SUB_BITS) + BELT__HIST_MIN_EXP;
    double sub = (double)(i & ((1u << BELT__HIST_SUB_BITS) - 1));
    double v = ldexp(1.0 + (sub + 0.5) / (double)(1u << BELT__HIST_SUB_BITS),
                     e);
    if (v < h->min)
        v = h->min;
    if (v > h->max)
        v = h->max;
    return v;
}

/* Rank (1-based) of the q-quantile among count values. */
static uint64_t rank_of(double q, uint64_t count)
{
    if (!(q > 0.0))
        return 1;
    if (q >= 1.0)
        return count;
    double r = ceil(q * (double)count);
    uint64_t k = r < 1.0 ? 1 : (uint64_t)r;
    return k > count ? count : k;
}

/* Values for the sorted ranks[0..n) (non-decreasing) into out[], in one
 * walk over the buckets. */
static void quantiles(const belt__hist *h, const uint64_t *ranks, double *out,
                      int n)
{
    int k = 0;
    uint64_t seen = h->zero;
    while (k < n && ranks[k] <= seen)
        out[k++] = h->min;
    for (size_t i = 0; i < BELT__HIST_BUCKETS && k < n; i++) {
        if (h->counts[i] == 0)
            continue;
        seen += h->counts[i];
        while (k < n && ranks[k] <= seen)
            out[k++] = bucket_value(h, i);
    }
    while (k < n)
        out[k++] = h->max;
}

double belt__hist_value_at(const belt__hist *h, double q)
{
    if (h->count == 0)
        return 0.0;
    uint64_t r = rank_of(q, h->count);
    double v;
    quantiles(h, &r, &v, 1);
    return v;
}

void belt__hist_summary(const belt__hist *h, belt__summary *s)
{
    *s = (belt__summary){ 0 };
    if (h->count == 0)
        return;
    double n = (double)h->count;
    s->count = h->count;
    s->mean = h->sum / n;
    double var = h->sumsq / n - s->mean * s->mean;
    s->stddev = var > 0.0 ? sqrt(var) : 0.0;
    s->min = h->min;
    s->max = h->max;
    uint64_t ranks[4] = { rank_of(0.5, h->count), rank_of(0.9, h->count),
                          rank_of(0.99, h->count), rank_of(0.999, h->count) };
    double v[4];
    quantiles(h, ranks, v, 4);
    s->p50 = v[0];
    s->p90 = v[1];
    s->p99 = v[2];
    s->p999 = v[3];
}

double belt__student_t975(unsigned df)
{
    static const double table[30] = {
        12.7062047, 4.3026527, 3.1824463, 2.7764451, 2.5705818, 2.4469119,
        2.3646243,  2.3060041, 2.2621572, 2.2281389, 2.2009852, 2.1788128,
        2.1603687,  2.1447867, 2.1314495, 2.1199053, 2.1098155, 2.1009220,
        2.0930241,  2.0859634, 2.0796138, 2.0738731, 2.0686576, 2.0638986,
        2.0595386,  2.0555294, 2.0518305, 2.0484071, 2.0452296, 2.0422725,
    };
    const double z = 1.959963985;
    if (df == 0)
        return z;
    if (df <= 30)
        return table[df - 1];
    double v = (double)df, z2 = z * z, z3 = z2 * z, z5 = z3 * z2,
           z7 = z5 * z2;
    return z + (z3 + z) / (4.0 * v) +
           (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v) +
           (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) /
               (384.0 * v * v * v);
}

int belt__ci95(const double *x, size_t n, double *mean, double *half_width)
{
    if (x == NULL || n == 0 || mean == NULL || half_width == NULL)
        return BELT_EINVAL;
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m += x[i];
    m /= (double)n;
    *mean = m;
    if (n == 1) {
        *half_width = NAN;
        return BELT_OK;
    }
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    double s = sqrt(ss / (double)(n - 1));
    unsigned df = n - 1 > 1000000u ? 1000000u : (unsigned)(n - 1);
    *half_width = belt__student_t975(df) * s / sqrt((double)n);
    return BELT_OK;
}

double belt__jain(const double *x, size_t n)
{
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += x[i] * x[i];
    }
    if (n == 0 || s2 == 0.0)
        return 1.0;
    return s * s / ((double)n * s2);
}
