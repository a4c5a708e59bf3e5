/* experiment/hist.h: latency recording and summary statistics for `belt
 * experiment` (simulated and live).  Internal: never installed.
 *
 * belt__hist records non-negative durations (seconds) in fixed memory
 * whatever the number of samples: a log-linear histogram in the manner of
 * HdrHistogram (Gil Tene), indexed straight from the bits of the double.
 * Each power of two [2^e, 2^(e+1)) is split into 512 equal sub-buckets, so
 * a bucket's width is at most 2^-9 of its lower bound; a quantile is
 * reported as its bucket's midpoint (clamped to the exact min and max), so
 * it is within 2^-10 < 0.1% (relative) of the exact nearest-rank quantile
 * of the recorded values.  Range: 2^-40 s (~0.9 ps) to 2^31 s (~68 years);
 * smaller values (0 included) count in a "zero" bucket reported as the exact
 * minimum, larger ones in the top bucket reported as the exact maximum.
 * Count, sum (for the exact mean), sum of squares, min and max are exact.
 * Adding is O(1) with no branch on the data beyond the range clamp.
 * Memory: 71 * 512 * 8 bytes = 284 KiB per histogram.
 *
 * Not thread-safe: one writer per histogram (merge per-thread histograms).
 */
#ifndef BELT_STATS_H
#define BELT_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BELT__HIST_SUB_BITS 9  /* 512 sub-buckets per power of two */
#define BELT__HIST_MIN_EXP (-40) /* smallest power of two kept: 2^-40 s */
#define BELT__HIST_MAX_EXP 30    /* values >= 2^31 s land in the top bucket */
#define BELT__HIST_BUCKETS                                                    \
    ((size_t)(BELT__HIST_MAX_EXP - BELT__HIST_MIN_EXP + 1)                    \
     << BELT__HIST_SUB_BITS)
/* The relative error bound of belt__hist_value_at (2^-10). */
#define BELT__HIST_REL_ERROR 0.0009765625

typedef struct belt__hist {
    uint64_t *counts; /* BELT__HIST_BUCKETS counters (owned) */
    uint64_t zero;    /* values below 2^MIN_EXP (0 included) */
    uint64_t count;
    double sum, sumsq, min, max; /* min/max meaningful when count > 0 */
} belt__hist;

/* Summary of one set of durations (seconds).  All zero when count is 0. */
typedef struct belt__summary {
    uint64_t count;
    double mean, stddev; /* exact (from the sums); stddev is the population
                          * standard deviation */
    double min, p50, p90, p99, p999, max; /* quantiles within 0.1% */
} belt__summary;

/* Makes *h an empty histogram.  Returns BELT_OK or BELT_ENOMEM (*h is then
 * zeroed: belt__hist_free on it is a no-op). */
int belt__hist_init(belt__hist *h);

/* Frees h's buckets and zeroes *h.  A zeroed or NULL h is a no-op. */
void belt__hist_free(belt__hist *h);

/* Empties h (keeps its memory).  Can't fail. */
void belt__hist_reset(belt__hist *h);

/* The bucket of a value >= 2^MIN_EXP, from its IEEE-754 bits: (exponent -
 * MIN_EXP) * 512 + top 9 mantissa bits, clamped to the top bucket. */
static inline size_t belt__hist_index(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int64_t e = (int64_t)(bits >> 52) - 1023 - BELT__HIST_MIN_EXP;
    size_t i = ((size_t)e << BELT__HIST_SUB_BITS) |
               (size_t)((bits >> (52 - BELT__HIST_SUB_BITS)) &
                        ((1u << BELT__HIST_SUB_BITS) - 1));
    return i < BELT__HIST_BUCKETS ? i : BELT__HIST_BUCKETS - 1;
}

/* Records one value v (seconds; negative or NaN counts as 0).  O(1); can't
 * fail. */
static inline void belt__hist_add(belt__hist *h, double v)
{
    if (!(v > 0.0))
        v = 0.0;
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (h->count == 0 || v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
    h->sumsq += v * v;
    if (v < 0x1.0p-40)
        h->zero++;
    else
        h->counts[belt__hist_index(v)]++;
}

/* Adds everything recorded in src to dst (src unchanged).  Can't fail. */
void belt__hist_merge(belt__hist *dst, const belt__hist *src);

/* The q-quantile (0 <= q <= 1) by nearest rank: the value of rank
 * ceil(q * count) (at least 1) in sorted order, within
 * BELT__HIST_REL_ERROR relative.  0 when h is empty.  Can't fail.  (Not
 * "belt__hist_quantile": pipeline/pipeline.h has that name for its own histogram.) */
double belt__hist_value_at(const belt__hist *h, double q);

/* Fills *s from h (one pass over the buckets for all quantiles).  Can't
 * fail. */
void belt__hist_summary(const belt__hist *h, belt__summary *s);

/* ---- across repeats --------------------------------------------------- */

/* The 0.975 quantile of Student's t with df >= 1 degrees of freedom (exact
 * table to df 30, then the Cornish-Fisher expansion; within 1e-3).  The
 * normal 1.959964 for df 0 ("infinite").  Can't fail. */
double belt__student_t975(unsigned df);

/* Sample mean of x[0..n) in *mean and the half-width of its 95% confidence
 * interval (t_{0.975,n-1} * s / sqrt(n), s the sample standard deviation)
 * in *half_width; with n == 1 the half-width is NAN (undefined: print it as
 * empty or "nan").  Returns BELT_OK, or BELT_EINVAL for n == 0 or NULL
 * pointers (outputs untouched). */
int belt__ci95(const double *x, size_t n, double *mean, double *half_width);

/* Jain's fairness index (Σx)² / (n Σx²) of x[0..n): 1 when all are equal,
 * 1/n when one has everything.  1 for n == 0 or all zero.  Jain, Chiu,
 * Hawe, DEC-TR-301, 1984.  Can't fail. */
double belt__jain(const double *x, size_t n);

#endif /* BELT_STATS_H */
