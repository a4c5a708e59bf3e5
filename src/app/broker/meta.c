/* app/broker/meta.c: the few numbers of a result, as a short text field beside
 * the JSON record, so the submitter need not parse the record.
 *
 * A worker publishes each result as the JSON Lines record `belt run` writes
 * (written through unchanged into the results file) and, in a field "meta",
 * what the submitter's bookkeeping needs: status, exit code, signal,
 * attempts, the three timestamps and the duration.  Parsing a record back
 * with jansson cost the submitter about 85,000 instructions per result
 * (callgrind, a noop job); these numbers take a few hundred.  The record is
 * still parsed when the result carries text the submitter uses (stdout,
 * stderr or an error message: shown on the terminal, counted in the job
 * log), which the last number says; and when "meta" is absent (an older
 * worker) or malformed.
 *
 * Format: "1 <status> <exit> <signal> <attempts> <queued> <started>
 * <ended> <duration> <text>": a version, the status by name (names are
 * stable across versions, enum values need not be), then decimal integers
 * (times in ns since the epoch, exit -1 for none, text 0 or 1), separated by
 * single spaces.
 *
 * Pure functions, no state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "app/broker/broker.h"

/* Appends " <v>" in decimal at p; returns the end. */
static char *put_i(char *p, int64_t v)
{
    char tmp[24];
    int k = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    *p++ = ' ';
    if (v < 0)
        *p++ = '-';
    while (k)
        *p++ = tmp[--k];
    return p;
}

int belt__broker_meta_format(const belt_result *r, char *buf, size_t n)
{
    /* Digits by hand: snprintf cost more than the rest of the worker's
     * publishing per job (callgrind). */
    const char *name = belt_job_status_name(r->status);
    size_t nl = strlen(name);
    if (n < 2 + nl + 8 * 22 + 3)
        return BELT_EINVAL;
    bool text = (r->out && r->out_len) || (r->err && r->err_len) ||
                r->error != NULL;
    char *p = buf;
    *p++ = '1';
    *p++ = ' ';
    memcpy(p, name, nl);
    p += nl;
    p = put_i(p, r->exit_code);
    p = put_i(p, r->signal);
    p = put_i(p, r->attempts);
    p = put_i(p, r->queued_ns);
    p = put_i(p, r->started_ns);
    p = put_i(p, r->ended_ns);
    p = put_i(p, r->duration_ns);
    p = put_i(p, text);
    *p = '\0';
    return BELT_OK;
}

/* Reads one space-terminated (or final) decimal integer at *p. */
static bool take_int(const char **p, const char *end, int64_t *v)
{
    const char *s = *p;
    bool neg = s < end && *s == '-';
    if (neg)
        s++;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    uint64_t x = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    if (x > (uint64_t)INT64_MAX)
        return false;
    if (s < end && (*s++ != ' ' || s == end))
        return false; /* not a single space between two numbers */
    *v = neg ? -(int64_t)x : (int64_t)x;
    *p = s;
    return true;
}

int belt__broker_meta_parse(const char *meta, size_t len, belt_result *r,
                            bool *text)
{
    if (meta == NULL || len < 2 || meta[0] != '1' || meta[1] != ' ')
        return BELT_EINVAL;
    const char *p = meta + 2, *end = meta + len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL)
        return BELT_EINVAL;
    int status = -1;
    for (int st = BELT_JOB_OK; st <= BELT_JOB_CANCELED; st++) {
        const char *name = belt_job_status_name((belt_job_status)st);
        if (strlen(name) == (size_t)(sp - p) &&
            memcmp(name, p, (size_t)(sp - p)) == 0)
            status = st;
    }
    if (status < 0)
        return BELT_EINVAL;
    p = sp + 1;
    int64_t v[8];
    for (int i = 0; i < 8; i++)
        if (!take_int(&p, end, &v[i]))
            return BELT_EINVAL;
    if (p != end || v[0] < -1 || v[0] > 255 || v[1] < 0 || v[1] > 128 ||
        v[2] < 0 || v[2] > UINT32_MAX || v[7] < 0 || v[7] > 1)
        return BELT_EINVAL;
    r->status = (belt_job_status)status;
    r->exit_code = (int)v[0];
    r->signal = (int)v[1];
    r->attempts = (unsigned)v[2];
    r->queued_ns = v[3];
    r->started_ns = v[4];
    r->ended_ns = v[5];
    r->duration_ns = v[6];
    *text = v[7] != 0;
    return BELT_OK;
}
