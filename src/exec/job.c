/* exec/job.c: job defaults, results, status names and duration parsing.
 *
 * belt_parse_duration() reads Go's time.ParseDuration syntax without the
 * sign: one or more <decimal><unit> terms ("1h30m", "1.5s"), or a single
 * bare decimal taken as seconds.  It works in integers only: the integer
 * part is multiplied by the unit with overflow checks, and the fraction is
 * computed exactly from at most 15 of its digits (later digits are worth
 * less than a hundredth of a nanosecond even for hours), then truncated to
 * whole nanoseconds.  No floating point, so "1e999s" or "nan" cannot sneak
 * in through strtod.
 */
#include "belt/job.h"
#include "belt/error.h"
#include "exec/exec.h"
#include "util/clock.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>


void belt_job_init(belt_job *job)
{
    memset(job, 0, sizeof *job);
    job->kind = BELT_JOB_EXEC;
    job->output = BELT_OUTPUT_CAPTURE;
    job->output_limit = (size_t)1 << 20;
    job->kill_grace_ns = 2 * BELT__NS_PER_S;
    job->retry_delay_ns = 100 * BELT__NS_PER_MS;
    job->retry_max_delay_ns = 30 * BELT__NS_PER_S;
}

belt_result *belt_result_new(const belt_job *job)
{
    belt_result *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->job = job;
    r->status = BELT_JOB_ERROR;
    r->exit_code = -1;
    r->worker = -1;
    r->out_fd = -1;
    r->err_fd = -1;
    if (job != NULL) {
        r->seq = job->seq;
        r->user = job->user;
    }
    return r;
}

void belt_result_free(belt_result *r)
{
    if (r == NULL)
        return;
    free(r->attempt_log);
    free(r->out);
    free(r->err);
    free(r->out_path);
    free(r->err_path);
    free(r->error);
    if (r->out_fd >= 0)
        close(r->out_fd);
    if (r->err_fd >= 0)
        close(r->err_fd);
    free(r);
}

/* ---- names -------------------------------------------------------------- */

/* Each map's order is its enum's: a name out of place fails to compile. */
#define CHECK_KIND(s, name) _Static_assert((int)BELT_JOB_##s == (int)belt__kind_pos_##s, name);
#define POS(s, name) belt__kind_pos_##s,
enum { BELT_JOB_KIND_MAP(POS) };
#undef POS
BELT_JOB_KIND_MAP(CHECK_KIND)
#define CHECK_OUTPUT(s, name) _Static_assert((int)BELT_OUTPUT_##s == (int)belt__out_pos_##s, name);
#define POS(s, name) belt__out_pos_##s,
enum { BELT_OUTPUT_MODE_MAP(POS) };
#undef POS
BELT_OUTPUT_MODE_MAP(CHECK_OUTPUT)
#define CHECK_STATUS(s, name) _Static_assert((int)BELT_JOB_##s == (int)belt__st_pos_##s, name);
#define POS(s, name) belt__st_pos_##s,
enum { BELT_JOB_STATUS_MAP(POS) };
#undef POS
BELT_JOB_STATUS_MAP(CHECK_STATUS)

#define NAME(s, name) name,
const char *const belt__kind_names[BELT__NKINDS + 1] = {
    BELT_JOB_KIND_MAP(NAME) NULL
};
const char *const belt__output_names[BELT__NOUTPUTS + 1] = {
    BELT_OUTPUT_MODE_MAP(NAME) NULL
};
static const char *const status_names[] = { BELT_JOB_STATUS_MAP(NAME) };
#undef NAME

const char *belt_job_status_name(belt_job_status s)
{
    return (unsigned)s < sizeof status_names / sizeof status_names[0]
               ? status_names[s] : "unknown";
}

const char *belt_job_kind_name(belt_job_kind k)
{
    return (unsigned)k < BELT__NKINDS ? belt__kind_names[k] : "unknown";
}

const char *belt_output_mode_name(belt_output_mode m)
{
    return (unsigned)m < BELT__NOUTPUTS ? belt__output_names[m] : "unknown";
}

/* ---- durations ---------------------------------------------------------- */

/* A unit as a power of ten times a small multiplier, so that the fraction
 * can be computed without overflow: unit = mult * 10^exp10 ns. */
struct unit {
    const char *name;
    uint64_t mult;
    int exp10;
};

static const struct unit units[] = {
    { "ns", 1, 0 },
    { "us", 1, 3 },
    { "\xc2\xb5s", 1, 3 }, /* µs, U+00B5 MICRO SIGN */
    { "\xce\xbcs", 1, 3 }, /* μs, U+03BC GREEK SMALL LETTER MU */
    { "ms", 1, 6 },
    { "s", 1, 9 },
    { "m", 60, 9 },
    { "h", 3600, 9 },
};

static const uint64_t pow10_table[] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
    10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
    100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull,
};

#define MAX_FRAC_DIGITS 15

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Longest unit name that prefixes p ("ms" before "m"), or NULL. */
static const struct unit *match_unit(const char *p, size_t *len)
{
    const struct unit *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].name);
        if (n > best_len && strncmp(p, units[i].name, n) == 0) {
            best = &units[i];
            best_len = n;
        }
    }
    *len = best_len;
    return best;
}

/* Adds b to *acc; false on overflow past INT64_MAX. */
static int add_ns(uint64_t *acc, uint64_t b)
{
    if (b > (uint64_t)INT64_MAX || *acc > (uint64_t)INT64_MAX - b)
        return 0;
    *acc += b;
    return 1;
}

int belt_parse_duration(const char *text, int64_t *out)
{
    if (text == NULL || out == NULL || *text == '\0')
        return BELT_EINVAL;
    const char *p = text;
    uint64_t total = 0;
    int terms = 0;
    while (*p != '\0') {
        /* integer part */
        uint64_t ip = 0;
        int idigits = 0, overflow = 0;
        while (is_digit(*p)) {
            unsigned d = (unsigned)(*p - '0');
            if (ip > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                ip = ip * 10 + d;
            idigits++;
            p++;
        }
        /* fraction */
        uint64_t fp = 0;
        int fdigits = 0, fall = 0;
        if (*p == '.') {
            p++;
            while (is_digit(*p)) {
                if (fdigits < MAX_FRAC_DIGITS) {
                    fp = fp * 10 + (uint64_t)(*p - '0');
                    fdigits++;
                }
                fall++;
                p++;
            }
        }
        if (idigits == 0 && fall == 0)
            return BELT_EINVAL; /* "", "s", ".", "-1s", "+1s" ... */
        if (overflow)
            return BELT_EINVAL;
        size_t ulen;
        const struct unit *u;
        if (*p == '\0' && terms == 0) {
            static const struct unit seconds = { "", 1, 9 };
            u = &seconds; /* a bare number: seconds */
            ulen = 0;
        } else {
            u = match_unit(p, &ulen);
            if (u == NULL)
                return BELT_EINVAL; /* "5x", "1e9s", "1 s", "10 " */
        }
        p += ulen;
        /* integer part times the unit */
        uint64_t unit_ns = u->mult * pow10_table[u->exp10];
        if (ip != 0 && ip > (uint64_t)INT64_MAX / unit_ns)
            return BELT_EINVAL;
        if (!add_ns(&total, ip * unit_ns))
            return BELT_EINVAL;
        /* fraction fp / 10^fdigits times mult * 10^exp10, truncated:
         * fp < 10^15 and mult <= 3600, so fp * mult < 3.6e18 fits. */
        if (fdigits > 0) {
            uint64_t f = fp * u->mult;
            if (u->exp10 >= fdigits)
                f *= pow10_table[u->exp10 - fdigits];
            else
                f /= pow10_table[fdigits - u->exp10];
            if (!add_ns(&total, f))
                return BELT_EINVAL;
        }
        terms++;
    }
    *out = (int64_t)total;
    return BELT_OK;
}
