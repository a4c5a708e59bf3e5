/* app/report.c: result records, the job log and summary statistics.
 *
 * Result records.  Each finished job becomes one JSON object on one line
 * (JSON Lines).  The record is the contract scripts read, so its shape
 * does not depend on what happened: the keys id, seq, status, exit_code,
 * signal, attempts, worker, queued, started, ended, duration_ms, stdout,
 * stderr, error and attempt_log are always there, with null where a value does
 * not apply (exit_code of a job killed by a signal, worker of a skipped job).
 * Optional keys appear only when they say something: stdout_path/stderr_path
 * (output sent to files) and stdout_truncated/stderr_truncated (capture limit
 * reached).  Times are ISO 8601 UTC with milliseconds, readable by people and
 * by `date -d`; durations are milliseconds with three decimals.  Captured
 * output is arbitrary bytes while JSON strings are Unicode, so invalid UTF-8
 * sequences are replaced by U+FFFD (as browsers and Python's errors="replace"
 * do) and NUL bytes are kept as \u0000: a record never fails to serialise
 * because of what a program printed.
 *
 * A record is written once per job, on the hot path of every worker, so it
 * is written straight into one growing buffer (usually a single malloc):
 * no jansson object, no allocation per field, no printf except for
 * durations above 10^12 us.  The bytes are exactly those jansson's
 * json_dumps(JSON_COMPACT | JSON_REAL_PRECISION(12)) gave for the same
 * object (the format predates this writer; tests/unit/check_report.c keeps
 * that jansson builder and compares the two on random results): keys in
 * insertion order, escapes \" \\ \b \f \n \r \t and \u00XX (upper-case
 * hex) for the other control characters, '/' and DEL and valid UTF-8 as
 * they are, reals as "%.12g" with ".0" added to whole numbers.  The
 * --dry-run job line is rarer and keeps the jansson builder.
 *
 * The job log reproduces GNU parallel's --joblog byte for byte in layout
 * (tab-separated, "%10.3f" runtime, newlines in the command written as NUL)
 * so that scripts written against parallel's log keep working.
 *
 * Statistics.  Percentiles over a million jobs must not need a million
 * samples, so durations go into a log-linear histogram in the manner of
 * HdrHistogram: values in microseconds; below 64 us one bucket per
 * microsecond, above that 32 buckets per power of two, so any value is known
 * to within 1/32 (about 3%) and the table has a fixed 1,920 buckets (15 KiB)
 * covering up to 2^63 us.  A quantile walks the buckets and reports the
 * midpoint of the one holding the requested rank.
 *
 * Nothing here keeps global state; every function either is pure or works on
 * an object the caller owns.
 */
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "app/report.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/shell.h"

/* ---- strings ----------------------------------------------------------- */

/* A JSON string holding the n bytes at s, with invalid UTF-8 replaced by
 * U+FFFD.  NULL when memory runs out. */
static json_t *json_bytes(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, l;
    while (i < n && (l = belt__utf8_len(u + i, n - i)) != 0)
        i += l;
    if (i == n)
        return json_stringn_nocheck(s, n);

    /* Each invalid byte (1 byte) becomes 3 bytes. */
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *buf = malloc(n * 3 + 1);
    if (buf == NULL)
        return NULL;
    size_t o = 0;
    i = 0;
    while (i < n) {
        l = belt__utf8_len(u + i, n - i);
        if (l == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, l);
            o += l;
            i += l;
        }
    }
    json_t *j = json_stringn_nocheck(buf, o);
    free(buf);
    return j;
}

static json_t *json_str_or_null(const char *s)
{
    return s ? json_bytes(s, strlen(s)) : json_null();
}

/* Milliseconds with three decimals (rounded to the microsecond). */
static json_t *json_ms(int64_t ns)
{
    int64_t us = ns >= 0 ? (ns + 500) / 1000 : (ns - 500) / 1000;
    return json_real((double)us / 1000.0);
}

/* Adds key: value to obj, taking the value's reference; a NULL value (out of
 * memory) or a failed set makes the whole build fail. */
static int set(json_t *obj, const char *key, json_t *value)
{
    if (value == NULL)
        return -1;
    return json_object_set_new_nocheck(obj, key, value);
}

/* Dumps obj compactly with a trailing newline.  Steals obj. */
static char *dump_line(json_t *obj, size_t *len)
{
    /* 12 significant digits: durations up to about 30 years keep their
     * three decimals, and 12.345 prints as 12.345, not 12.345000000000001. */
    char *s = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(obj);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (line == NULL) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return line;
}

/* ---- times ------------------------------------------------------------- */

/* Splits ns into whole seconds and milliseconds the way the record format
 * always has: truncating division, then a negative millisecond count is
 * borrowed from the seconds (so -1.5 ms is 23:59:59.999 of the day before,
 * but -0.5 ms is 00:00:00.000). */
static void split_ns(int64_t ns, int64_t *secs, int *ms)
{
    *secs = ns / 1000000000;
    *ms = (int)((ns % 1000000000) / 1000000);
    if (*ms < 0) {
        *ms += 1000;
        (*secs)--;
    }
}

static void put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* Writes "YYYY-MM-DDTHH:MM:SS" (SECOND_LEN bytes, no NUL) for secs since
 * the epoch into p without gmtime_r or snprintf.  The date comes from the
 * day count with Howard Hinnant's civil_from_days (proleptic Gregorian
 * calendar, the one gmtime_r uses; exact for any day count that fits), see
 * http://howardhinnant.github.io/date_algorithms.html#civil_from_days.
 * Returns false, writing nothing, when the year is outside 0..9999 (never
 * for an int64_t of nanoseconds: those span 1677..2262). */
#define SECOND_LEN 19
static bool iso_second(int64_t secs, char *p)
{
    int64_t days = secs / 86400;
    int sod = (int)(secs % 86400);
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    uint32_t doe = (uint32_t)(z - era * 146097);                /* [0, 146096] */
    uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);     /* [0, 365] */
    uint32_t mp = (5 * doy + 2) / 153;                          /* [0, 11] */
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);              /* [1, 31] */
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);               /* [1, 12] */
    int64_t year = (int64_t)yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999)
        return false;
    int y = (int)year;
    put2(p, y / 100);
    put2(p + 2, y % 100);
    p[4] = '-';
    put2(p + 5, month);
    p[7] = '-';
    put2(p + 8, day);
    p[10] = 'T';
    put2(p + 11, sod / 3600);
    p[13] = ':';
    put2(p + 14, sod / 60 % 60);
    p[16] = ':';
    put2(p + 17, sod % 60);
    return true;
}

/* Writes ".mmmZ" after a second's text. */
#define ISO_TIME_LEN (SECOND_LEN + 5)
static void iso_millis(int ms, char *p)
{
    p[0] = '.';
    p[1] = (char)('0' + ms / 100);
    put2(p + 2, ms % 100);
    p[4] = 'Z';
}

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" (ISO_TIME_LEN bytes, no NUL) for ns as
 * belt__format_time's snprintf would, or returns false (see iso_second). */
static bool iso_time(int64_t ns, char *p)
{
    int64_t secs;
    int ms;
    split_ns(ns, &secs, &ms);
    if (!iso_second(secs, p))
        return false;
    iso_millis(ms, p + SECOND_LEN);
    return true;
}

char *belt__format_time(int64_t ns, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    if (size > ISO_TIME_LEN && iso_time(ns, buf)) {
        buf[ISO_TIME_LEN] = '\0';
        return buf;
    }
    /* Short buffers (truncated as snprintf truncates) and years that do not
     * have four digits. */
    int64_t secs;
    int ms;
    split_ns(ns, &secs, &ms);
    time_t t = (time_t)secs;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "?");
        return buf;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ms);
    return buf;
}

/* ---- writing a record --------------------------------------------------- */

/* The record being written: a string buffer (util/buf.h).  Once memory
 * runs out b.oom is set and every later write is dropped, so the writers
 * need no error paths; the caller checks b.oom at the end. */
typedef struct rec {
    belt__buf b;
    /* The text of the second last written (a record's times are mostly in
     * the same second): valid when have_second. */
    bool have_second;
    int64_t second;
    char second_text[SECOND_LEN];
} rec;

/* Makes room for n more bytes.  False (and oom set) when there is none. */
static inline bool room(rec *o, size_t n)
{
    return belt__buf_reserve(&o->b, n);
}

static inline void put(rec *o, const char *s, size_t n)
{
    if (!room(o, n))
        return;
    memcpy(o->b.p + o->b.len, s, n);
    o->b.len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* A JSON integer as jansson prints json_int_t ("%lld"). */
static void put_int(rec *o, int64_t v)
{
    if (room(o, 20))
        o->b.len = (size_t)(belt__put_i64(o->b.p + o->b.len, v) - o->b.p);
}

/* A time as a JSON string, or null when ns <= 0 (not set). */
static void put_time(rec *o, int64_t ns)
{
    if (ns <= 0) {
        PUT_LIT(o, "null");
        return;
    }
    if (!room(o, ISO_TIME_LEN + 2))
        return;
    char *p = o->b.p + o->b.len;
    int64_t secs;
    int ms;
    split_ns(ns, &secs, &ms);
    if (!o->have_second || o->second != secs) {
        o->have_second = iso_second(secs, o->second_text);
        o->second = secs;
    }
    if (o->have_second) {
        p[0] = '"';
        memcpy(p + 1, o->second_text, SECOND_LEN);
        iso_millis(ms, p + 1 + SECOND_LEN);
        p[ISO_TIME_LEN + 1] = '"';
        o->b.len += ISO_TIME_LEN + 2;
        return;
    }
    char tmp[48];
    PUT_LIT(o, "\"");
    belt__format_time(ns, tmp, sizeof tmp);
    put(o, tmp, strlen(tmp));
    PUT_LIT(o, "\"");
}

/* ns as milliseconds rounded to the microsecond (halves away from zero),
 * printed as jansson prints that double with JSON_REAL_PRECISION(12): C's
 * "%.12g", then ".0" appended when there is neither '.' nor 'e', and the
 * exponent's '+' and leading zeros dropped (jansson's jsonp_dtostr).
 *
 * Below 10^12 us the microsecond count has at most 12 digits, so the double
 * us / 1000.0 is within half an ulp (about 1e-16 relative) of a decimal of at
 * most 12 significant digits and three decimals, and "%.12g" prints exactly
 * that decimal without its trailing zeros (plain notation: the exponent is
 * between -3 and 8).  That is written directly; larger magnitudes (more than
 * 11.5 days) take the snprintf path so rounding ties fall as glibc rounds
 * the binary value. */
static void put_ms(rec *o, int64_t ns)
{
    int64_t us = ns / 1000, rem = ns % 1000;
    us += rem >= 500 ? 1 : rem <= -500 ? -1 : 0;
    if (us > -1000000000000 && us < 1000000000000) {
        char tmp[24];
        char *end = tmp + sizeof tmp, *p = end;
        uint64_t u = us < 0 ? (uint64_t)-us : (uint64_t)us;
        unsigned frac = (unsigned)(u % 1000);
        u /= 1000;
        if (frac == 0) {
            *--p = '0';
        } else {
            int digits = 3;
            while (frac % 10 == 0) {
                frac /= 10;
                digits--;
            }
            while (digits-- > 0) {
                *--p = (char)('0' + frac % 10);
                frac /= 10;
            }
        }
        *--p = '.';
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u != 0);
        if (us < 0)
            *--p = '-';
        put(o, p, (size_t)(end - p));
        return;
    }
    char b[32];
    int n = snprintf(b, sizeof b, "%.12g", (double)us / 1000.0);
    if (n < 0 || (size_t)n >= sizeof b - 3) {
        o->b.oom = true; /* can't happen: at most 18 characters */
        return;
    }
    const char *point = localeconv()->decimal_point;
    char *at;
    if (*point != '.' && (at = strchr(b, *point)) != NULL)
        *at = '.';
    size_t len = (size_t)n;
    if (strchr(b, '.') == NULL && strchr(b, 'e') == NULL) {
        memcpy(b + len, ".0", 3);
        len += 2;
    }
    char *e = strchr(b, 'e');
    if (e != NULL) {
        char *start = e + 1, *digits = e + 2;
        if (*start == '-')
            start++;
        while (*digits == '0')
            digits++;
        if (digits != start) {
            memmove(start, digits, len - (size_t)(digits - b) + 1);
            len -= (size_t)(digits - start);
        }
    }
    put(o, b, len);
}

/* The ,"started":...,"ended":... pair of a result or an attempt. */
static void put_span(rec *o, int64_t started_ns, int64_t ended_ns)
{
    PUT_LIT(o, ",\"started\":");
    put_time(o, started_ns);
    PUT_LIT(o, ",\"ended\":");
    put_time(o, ended_ns);
}

/* n bytes at s as a string, or null when s is NULL. */
static void put_bytes_or_null(rec *o, const char *s, size_t n)
{
    if (s == NULL)
        PUT_LIT(o, "null");
    else
        belt__json_add_str(&o->b, s, n);
}

static void put_str_or_null(rec *o, const char *s)
{
    put_bytes_or_null(o, s, s ? strlen(s) : 0);
}

/* n as an integer when keep, else null. */
static void put_int_or_null(rec *o, int64_t n, bool keep)
{
    if (keep)
        put_int(o, n);
    else
        PUT_LIT(o, "null");
}

static void put_status(rec *o, belt_job_status st)
{
    /* The names are fixed ASCII words with nothing to escape. */
    const char *name = belt_job_status_name(st);
    PUT_LIT(o, "\"");
    put(o, name, strlen(name));
    PUT_LIT(o, "\"");
}

/* Saturating a + b, for size estimates. */
static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/* "status", "exit_code" and "signal" of a result or an attempt. */
static void put_outcome(rec *o, belt_job_status st, int exit_code, int sig)
{
    PUT_LIT(o, "\"status\":");
    put_status(o, st);
    PUT_LIT(o, ",\"exit_code\":");
    put_int_or_null(o, exit_code, exit_code >= 0);
    PUT_LIT(o, ",\"signal\":");
    put_int_or_null(o, sig, sig > 0);
}

/* What the job ran: ,"run":"..." or ,"argv":[...] (nothing for built-in
 * kinds), then the input arguments ,"args":[...] when there are any. */
static void put_command(rec *o, const belt_job *job, const char *run,
                        const belt__report_arg *args, size_t nargs)
{
    if (run != NULL) {
        PUT_LIT(o, ",\"run\":");
        belt__json_add_str(&o->b, run, strlen(run));
    } else if (job != NULL && job->kind == BELT_JOB_EXEC && job->run) {
        PUT_LIT(o, ",\"run\":");
        belt__json_add_str(&o->b, job->run, strlen(job->run));
    } else if (job != NULL && job->kind == BELT_JOB_EXEC && job->argv) {
        PUT_LIT(o, ",\"argv\":[");
        for (size_t i = 0; job->argv[i]; i++) {
            if (i > 0)
                PUT_LIT(o, ",");
            belt__json_add_str(&o->b, job->argv[i], strlen(job->argv[i]));
        }
        PUT_LIT(o, "]");
    }
    if (args == NULL)
        return;
    PUT_LIT(o, ",\"args\":[");
    for (size_t i = 0; i < nargs; i++) {
        if (i > 0)
            PUT_LIT(o, ",");
        belt__json_add_str(&o->b, args[i].p, args[i].len);
    }
    PUT_LIT(o, "]");
}

/* Writes the record of r, keys in the documented order (which is the order
 * the jansson object used to be built in, with run/argv and args added
 * after seq). */
static void put_result(rec *o, const belt_result *r, const char *run,
                       const belt__report_arg *args, size_t nargs)
{
    const char *id = r->job && r->job->id ? r->job->id : "";
    PUT_LIT(o, "{\"id\":");
    belt__json_add_str(&o->b, id, strlen(id));
    PUT_LIT(o, ",\"seq\":");
    put_int(o, (int64_t)r->seq);
    put_command(o, r->job, run, args, nargs);
    PUT_LIT(o, ",");
    put_outcome(o, r->status, r->exit_code, r->signal);
    PUT_LIT(o, ",\"attempts\":");
    put_int(o, r->attempts);
    PUT_LIT(o, ",\"worker\":");
    put_int_or_null(o, r->worker, r->worker >= 0);
    PUT_LIT(o, ",\"queued\":");
    put_time(o, r->queued_ns);
    put_span(o, r->started_ns, r->ended_ns);
    PUT_LIT(o, ",\"duration_ms\":");
    if (r->attempts > 0)
        put_ms(o, r->duration_ns);
    else
        PUT_LIT(o, "null");
    PUT_LIT(o, ",\"stdout\":");
    put_bytes_or_null(o, r->out, r->out_len);
    PUT_LIT(o, ",\"stderr\":");
    put_bytes_or_null(o, r->err, r->err_len);
    if (r->out_path) {
        PUT_LIT(o, ",\"stdout_path\":");
        put_str_or_null(o, r->out_path);
    }
    if (r->err_path) {
        PUT_LIT(o, ",\"stderr_path\":");
        put_str_or_null(o, r->err_path);
    }
    if (r->out_truncated)
        PUT_LIT(o, ",\"stdout_truncated\":true");
    if (r->err_truncated)
        PUT_LIT(o, ",\"stderr_truncated\":true");
    PUT_LIT(o, ",\"error\":");
    put_str_or_null(o, r->error);
    PUT_LIT(o, ",\"attempt_log\":[");
    for (unsigned i = 0; r->attempt_log && i < r->attempts && !o->b.oom; i++) {
        const belt_attempt *a = &r->attempt_log[i];
        if (i > 0)
            PUT_LIT(o, ",");
        PUT_LIT(o, "{");
        put_outcome(o, a->status, a->exit_code, a->signal);
        put_span(o, a->started_ns, a->ended_ns);
        PUT_LIT(o, ",\"duration_ms\":");
        put_ms(o, a->duration_ns);
        PUT_LIT(o, "}");
    }
    PUT_LIT(o, "]}\n");
}

int belt__report_result_append(char **buf, size_t *len, size_t *cap,
                               const belt_result *r)
{
    return belt__report_result_append_args(buf, len, cap, r, NULL, NULL, 0);
}

int belt__report_result_append_args(char **buf, size_t *len, size_t *cap,
                                    const belt_result *r, const char *run,
                                    const belt__report_arg *args,
                                    size_t nargs)
{
    /* About 280 bytes of keys and values, 150 per attempt, plus the
     * output and some escapes: usually one allocation, no copy. */
    size_t est = 320;
    if (r->attempt_log)
        est = add_sat(est, (size_t)r->attempts * 160);
    if (r->out)
        est = add_sat(est, add_sat(r->out_len, r->out_len / 8));
    if (r->err)
        est = add_sat(est, add_sat(r->err_len, r->err_len / 8));
    if (run || (r->job && r->job->run))
        est = add_sat(est, strlen(run ? run : r->job->run) + 16);
    for (size_t i = 0; args && i < nargs; i++)
        est = add_sat(est, args[i].len + 4);
    rec o = {.b = {.p = *buf, .len = *len, .cap = *cap}};
    if (room(&o, est))
        put_result(&o, r, run, args, nargs);
    if (!o.b.oom)
        o.b.oom = !room(&o, 1);
    /* The buffer may have moved even when it then ran out. */
    *buf = o.b.p;
    *cap = o.b.cap;
    if (o.b.oom) {
        if (*buf != NULL && *cap > *len)
            (*buf)[*len] = '\0';
        return -1;
    }
    o.b.p[o.b.len] = '\0';
    *len = o.b.len;
    return 0;
}

char *belt__report_result_line(const belt_result *r, size_t *len)
{
    return belt__report_result_line_args(r, NULL, NULL, 0, len);
}

char *belt__report_result_line_args(const belt_result *r, const char *run,
                                    const belt__report_arg *args,
                                    size_t nargs, size_t *len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (belt__report_result_append_args(&buf, &n, &cap, r, run, args,
                                        nargs) != 0) {
        free(buf);
        return NULL;
    }
    /* Give back a large overestimate (output full of escapes grew the
     * buffer by doubling); lines may wait in memory a while. */
    if (cap - n > 4096 && cap - n > n / 4) {
        char *shrunk = realloc(buf, n + 1);
        if (shrunk != NULL)
            buf = shrunk;
    }
    if (len)
        *len = n;
    return buf;
}

char *belt__report_job_line(const belt_job *job, size_t *len)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= set(o, "seq", json_integer((json_int_t)job->seq));
    rc |= set(o, "id", json_str_or_null(job->id));
    rc |= set(o, "kind", json_string(belt_job_kind_name(job->kind)));
    if (job->kind == BELT_JOB_EXEC) {
        if (job->run)
            rc |= set(o, "run", json_str_or_null(job->run));
        if (job->argv) {
            json_t *a = json_array();
            rc |= set(o, "argv", a);
            for (size_t i = 0; rc == 0 && job->argv[i]; i++)
                rc |= json_array_append_new(a, json_str_or_null(job->argv[i]));
        }
    } else if (job->kind != BELT_JOB_NOOP) {
        rc |= set(o, "duration_ms", json_ms(job->duration_ns));
    }
    if (job->env) {
        json_t *e = json_object();
        rc |= set(o, "env", e);
        for (size_t i = 0; rc == 0 && job->env[i]; i++) {
            const char *kv = job->env[i];
            const char *eq = strchr(kv, '=');
            char name[256];
            size_t nl = eq ? (size_t)(eq - kv) : strlen(kv);
            if (nl >= sizeof name)
                nl = sizeof name - 1;
            memcpy(name, kv, nl);
            name[nl] = '\0';
            rc |= set(e, name, json_str_or_null(eq ? eq + 1 : ""));
        }
    }
    if (job->cwd)
        rc |= set(o, "cwd", json_str_or_null(job->cwd));
    if (job->stdin_path)
        rc |= set(o, "stdin", json_str_or_null(job->stdin_path));
    rc |= set(o, "timeout_ms", job->timeout_ns > 0 ? json_ms(job->timeout_ns)
                                                   : json_null());
    rc |= set(o, "retries", json_integer(job->retries));
    rc |= set(o, "output", json_string(belt_output_mode_name(job->output)));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump_line(o, len);
}

char *belt__job_command(const belt_job *job)
{
    if (job->kind != BELT_JOB_EXEC) {
        char tmp[64], d[32];
        snprintf(tmp, sizeof tmp, "belt:%s%s%s", belt_job_kind_name(job->kind),
                 job->kind == BELT_JOB_NOOP ? "" : " ",
                 job->kind == BELT_JOB_NOOP
                     ? ""
                     : belt__report_duration(job->duration_ns, d, sizeof d));
        return strdup(tmp);
    }
    if (job->run)
        return strdup(job->run);
    if (job->argv == NULL)
        return strdup("");
    belt__buf b = { 0 };
    for (size_t i = 0; job->argv[i]; i++) {
        if (i > 0)
            belt__buf_addc(&b, ' ');
        belt__sh_word(&b, job->argv[i], strlen(job->argv[i]));
    }
    if (b.oom) {
        belt__buf_free(&b);
        return NULL;
    }
    return b.p != NULL ? b.p : strdup("");
}

/* ---- job log ----------------------------------------------------------- */

int belt__joblog_header(FILE *f)
{
    if (fputs("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\t"
              "Signal\tCommand\n", f) == EOF || fflush(f) != 0)
        return -1;
    return 0;
}

int belt__joblog_line(FILE *f, const belt_result *r, const char *command,
                      uint64_t receive_bytes)
{
    return belt__joblog_line_seq(f, r, r->seq + 1, command, receive_bytes);
}

int belt__joblog_line_seq(FILE *f, const belt_result *r, uint64_t seq,
                          const char *command, uint64_t receive_bytes)
{
    int64_t start = r->started_ns > 0 ? r->started_ns : r->queued_ns;
    int64_t runtime = r->ended_ns > r->started_ns && r->started_ns > 0
                          ? r->ended_ns - r->started_ns
                          : r->duration_ns;
    /* parallel's Exitval is $? >> 8: 0 for a job a signal killed, -1 when
     * parallel itself killed it (timeout, interrupt). */
    int exitval = r->exit_code;
    if (exitval < 0 && r->signal > 0 && r->status == BELT_JOB_FAILED)
        exitval = 0;
    if (fprintf(f, "%" PRIu64 "\t:\t%" PRId64 ".%03d\t%10.3f\t0\t%" PRIu64
                   "\t%d\t%d\t",
                seq, start / 1000000000,
                (int)(start % 1000000000 / 1000000), (double)runtime / 1e9,
                receive_bytes, exitval, r->signal) < 0)
        return -1;
    for (const char *c = command ? command : "-"; *c; c++)
        if (putc(*c == '\n' ? '\0' : *c, f) == EOF)
            return -1;
    if (putc('\n', f) == EOF || fflush(f) != 0)
        return -1;
    return 0;
}

/* ---- statistics -------------------------------------------------------- */

#define SUB_BITS 5                      /* 32 sub-buckets per power of two */
#define LINEAR 64                       /* one bucket per us below 64 us */
#define N_BUCKETS (LINEAR + 58 * (1 << SUB_BITS))

struct belt__runstats {
    uint64_t count[BELT_JOB_CANCELED + 1]; /* per status (resumed excluded) */
    uint64_t resumed;
    uint64_t total;
    uint64_t ran;                       /* results with attempts > 0 */
    uint64_t hist[N_BUCKETS];           /* durations of jobs that ran */
};

static unsigned bucket_of(uint64_t us)
{
    if (us < LINEAR)
        return (unsigned)us;
    unsigned msb = 63u - (unsigned)__builtin_clzll(us);   /* >= 6 */
    unsigned shift = msb - SUB_BITS;                       /* >= 1 */
    unsigned sub = (unsigned)(us >> shift) - (1u << SUB_BITS); /* 0..31 */
    unsigned b = LINEAR + (shift - 1) * (1u << SUB_BITS) + sub;
    return b < N_BUCKETS ? b : N_BUCKETS - 1;
}

/* Midpoint of bucket b, in microseconds. */
static double bucket_mid(unsigned b)
{
    if (b < LINEAR)
        return b + 0.5;
    unsigned shift = (b - LINEAR) / (1u << SUB_BITS) + 1;
    unsigned sub = (b - LINEAR) % (1u << SUB_BITS) + (1u << SUB_BITS);
    double unit = (double)(1ull << shift);
    return (double)sub * unit + unit / 2;
}

belt__runstats *belt__runstats_new(void)
{
    return calloc(1, sizeof(belt__runstats));
}

void belt__runstats_free(belt__runstats *s)
{
    free(s);
}

void belt__runstats_add(belt__runstats *s, const belt_result *r, bool resumed)
{
    s->total++;
    if (resumed)
        s->resumed++;
    else if ((unsigned)r->status <= BELT_JOB_CANCELED)
        s->count[r->status]++;
    if (r->attempts > 0) {
        s->ran++;
        int64_t d = r->duration_ns > 0 ? r->duration_ns : 0;
        s->hist[bucket_of((uint64_t)d / 1000)]++;
    }
}

uint64_t belt__runstats_count(const belt__runstats *s, belt_job_status st)
{
    return (unsigned)st <= BELT_JOB_CANCELED ? s->count[st] : 0;
}

uint64_t belt__runstats_resumed(const belt__runstats *s)
{
    return s->resumed;
}

uint64_t belt__runstats_total(const belt__runstats *s)
{
    return s->total;
}

uint64_t belt__runstats_unsuccessful(const belt__runstats *s)
{
    return s->total - s->resumed - s->count[BELT_JOB_OK];
}

int64_t belt__runstats_quantile(const belt__runstats *s, double p)
{
    if (s->ran == 0)
        return 0;
    if (p <= 0)
        p = 1e-9;
    if (p > 1)
        p = 1;
    double want = p * (double)s->ran;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < N_BUCKETS; b++) {
        seen += s->hist[b];
        if (seen >= rank)
            return (int64_t)(bucket_mid(b) * 1000.0);
    }
    return (int64_t)(bucket_mid(N_BUCKETS - 1) * 1000.0);
}

char *belt__report_duration(int64_t ns, char *buf, size_t size)
{
    if (ns < 0)
        ns = 0;
    double us = (double)ns / 1e3, ms = us / 1e3, s = ms / 1e3;
    if (us < 1000)
        snprintf(buf, size, "%.0fus", us);
    else if (ms < 10)
        snprintf(buf, size, "%.2fms", ms);
    else if (ms < 1000)
        snprintf(buf, size, "%.1fms", ms);
    else if (s < 60)
        snprintf(buf, size, "%.2fs", s);
    else if (s < 3600)
        snprintf(buf, size, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, size, "%dh%02dm", (int)(s / 3600),
                 (int)(s / 60) % 60);
    return buf;
}

void belt__runstats_summary(const belt__runstats *s, FILE *out, int64_t wall_ns,
                         const int64_t *busy_ns, unsigned workers)
{
    char wall[32];
    double secs = (double)wall_ns / 1e9;
    fprintf(out, "belt: %" PRIu64 " job%s in %s (%.1f jobs/s):", s->total,
            s->total == 1 ? "" : "s", belt__report_duration(wall_ns, wall,
                                                            sizeof wall),
            secs > 0 ? (double)s->total / secs : 0.0);
    fprintf(out, " %" PRIu64 " ok", s->count[BELT_JOB_OK]);
    for (int st = BELT_JOB_FAILED; st <= BELT_JOB_CANCELED; st++)
        if (s->count[st])
            fprintf(out, ", %" PRIu64 " %s", s->count[st],
                    belt_job_status_name((belt_job_status)st));
    if (s->resumed)
        fprintf(out, ", %" PRIu64 " resumed", s->resumed);
    fputc('\n', out);

    if (s->ran > 0) {
        char p50[32], p99[32];
        fprintf(out, "belt: job duration p50 %s, p99 %s\n",
                belt__report_duration(belt__runstats_quantile(s, 0.50), p50,
                                      sizeof p50),
                belt__report_duration(belt__runstats_quantile(s, 0.99), p99,
                                      sizeof p99));
    }

    if (busy_ns == NULL || workers == 0 || wall_ns <= 0)
        return;
    fprintf(out, "belt: worker busy:");
    if (workers <= 16) {
        for (unsigned i = 0; i < workers; i++)
            fprintf(out, " %u:%.0f%%", i,
                    100.0 * (double)busy_ns[i] / (double)wall_ns);
    } else {
        double min = 1e300, max = 0, sum = 0;
        for (unsigned i = 0; i < workers; i++) {
            double v = 100.0 * (double)busy_ns[i] / (double)wall_ns;
            min = v < min ? v : min;
            max = v > max ? v : max;
            sum += v;
        }
        fprintf(out, " min %.0f%%, mean %.0f%%, max %.0f%% over %u workers",
                min, sum / workers, max, workers);
    }
    fputc('\n', out);
}
