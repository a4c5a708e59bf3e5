/* report.c: result records, the job log and summary statistics.
 *
 * Result records.  Each finished job becomes one JSON object on one line
 * (JSON Lines), built with jansson and dumped compactly.  The record is the
 * contract scripts read, so its shape does not depend on what happened: the
 * keys id, seq, status, exit_code, signal, attempts, worker, queued, started,
 * ended, duration_ms, stdout, stderr, error and attempt_log are always there,
 * with null where a value does not apply (exit_code of a job killed by a
 * signal, worker of a skipped job).  Optional keys appear only when they say
 * something: stdout_path/stderr_path (output sent to files) and
 * stdout_truncated/stderr_truncated (capture limit reached).  Times are ISO
 * 8601 UTC with milliseconds, readable by people and by `date -d`; durations
 * are milliseconds with three decimals.  Captured output is arbitrary bytes
 * while JSON strings are Unicode, so invalid UTF-8 sequences are replaced by
 * U+FFFD (as browsers and Python's errors="replace" do) and NUL bytes are
 * kept as \u0000: a record never fails to serialise because of what a
 * program printed.
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
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "report.h"

/* ---- strings ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and values above U+10FFFF are invalid, as in
 * RFC 3629).  NUL counts as valid (one byte). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON string holding the n bytes at s, with invalid UTF-8 replaced by
 * U+FFFD.  NULL when memory runs out. */
static json_t *json_bytes(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, l;
    while (i < n && (l = utf8_seq_len(u + i, n - i)) != 0)
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
        l = utf8_seq_len(u + i, n - i);
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

char *belt__format_time(int64_t ns, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    time_t secs = (time_t)(ns / 1000000000);
    int ms = (int)((ns % 1000000000) / 1000000);
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL) {
        snprintf(buf, size, "?");
        return buf;
    }
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, ms);
    return buf;
}

static json_t *json_time(int64_t ns)
{
    char buf[48];
    if (ns <= 0)
        return json_null();
    return json_string(belt__format_time(ns, buf, sizeof buf));
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

static json_t *json_exit_code(int exit_code)
{
    return exit_code >= 0 ? json_integer(exit_code) : json_null();
}

static json_t *json_signal(int sig)
{
    return sig > 0 ? json_integer(sig) : json_null();
}

char *belt__report_result_line(const belt_result *r, size_t *len)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    const char *id = r->job && r->job->id ? r->job->id : "";
    bool ran = r->attempts > 0;
    int rc = 0;
    rc |= set(o, "id", json_bytes(id, strlen(id)));
    rc |= set(o, "seq", json_integer((json_int_t)r->seq));
    rc |= set(o, "status", json_string(belt_job_status_name(r->status)));
    rc |= set(o, "exit_code", json_exit_code(r->exit_code));
    rc |= set(o, "signal", json_signal(r->signal));
    rc |= set(o, "attempts", json_integer(r->attempts));
    rc |= set(o, "worker", r->worker >= 0 ? json_integer(r->worker)
                                          : json_null());
    rc |= set(o, "queued", json_time(r->queued_ns));
    rc |= set(o, "started", json_time(r->started_ns));
    rc |= set(o, "ended", json_time(r->ended_ns));
    rc |= set(o, "duration_ms", ran ? json_ms(r->duration_ns) : json_null());
    rc |= set(o, "stdout", r->out ? json_bytes(r->out, r->out_len)
                                  : json_null());
    rc |= set(o, "stderr", r->err ? json_bytes(r->err, r->err_len)
                                  : json_null());
    if (r->out_path)
        rc |= set(o, "stdout_path", json_str_or_null(r->out_path));
    if (r->err_path)
        rc |= set(o, "stderr_path", json_str_or_null(r->err_path));
    if (r->out_truncated)
        rc |= set(o, "stdout_truncated", json_true());
    if (r->err_truncated)
        rc |= set(o, "stderr_truncated", json_true());
    rc |= set(o, "error", json_str_or_null(r->error));

    json_t *log = json_array();
    rc |= set(o, "attempt_log", log);
    for (unsigned i = 0; rc == 0 && log && r->attempt_log &&
                         i < r->attempts; i++) {
        const belt_attempt *a = &r->attempt_log[i];
        json_t *ao = json_object();
        if (ao == NULL || json_array_append_new(log, ao) != 0) {
            rc = -1;
            break;
        }
        rc |= set(ao, "status", json_string(belt_job_status_name(a->status)));
        rc |= set(ao, "exit_code", json_exit_code(a->exit_code));
        rc |= set(ao, "signal", json_signal(a->signal));
        rc |= set(ao, "started", json_time(a->started_ns));
        rc |= set(ao, "ended", json_time(a->ended_ns));
        rc |= set(ao, "duration_ms", json_ms(a->duration_ns));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump_line(o, len);
}

static const char *kind_name(belt_job_kind k)
{
    switch (k) {
    case BELT_JOB_EXEC: return "exec";
    case BELT_JOB_SLEEP: return "sleep";
    case BELT_JOB_SPIN: return "spin";
    case BELT_JOB_NOOP: return "noop";
    }
    return "unknown";
}

static const char *output_name(belt_output_mode m)
{
    switch (m) {
    case BELT_OUTPUT_CAPTURE: return "capture";
    case BELT_OUTPUT_FILES: return "files";
    case BELT_OUTPUT_GROUP: return "group";
    case BELT_OUTPUT_LINES: return "lines";
    case BELT_OUTPUT_INHERIT: return "inherit";
    case BELT_OUTPUT_DISCARD: return "discard";
    }
    return "unknown";
}

char *belt__report_job_line(const belt_job *job, size_t *len)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= set(o, "seq", json_integer((json_int_t)job->seq));
    rc |= set(o, "id", json_str_or_null(job->id));
    rc |= set(o, "kind", json_string(kind_name(job->kind)));
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
    rc |= set(o, "output", json_string(output_name(job->output)));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return dump_line(o, len);
}

int belt__reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    char *nb = realloc(*buf, ncap);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

int belt__shell_quote_append(char **buf, size_t *len, size_t *cap,
                             const char *arg, size_t arg_len)
{
    /* Worst case: every byte is a quote (4 bytes), plus two quotes, NUL. */
    if (arg_len > (SIZE_MAX - *len - 3) / 4)
        return -1;
    if (belt__reserve(buf, cap, *len + arg_len * 4 + 3) != 0)
        return -1;
    char *p = *buf + *len;
    *p++ = '\'';
    for (size_t i = 0; i < arg_len; i++) {
        if (arg[i] == '\'') {
            memcpy(p, "'\\''", 4);
            p += 4;
        } else {
            *p++ = arg[i];
        }
    }
    *p++ = '\'';
    *p = '\0';
    *len = (size_t)(p - *buf);
    return 0;
}

/* True when s needs no quoting for /bin/sh. */
static bool shell_plain(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789-_./=:,+@%", *s))
            return false;
    return true;
}

char *belt__job_command(const belt_job *job)
{
    char tmp[64];
    if (job->kind != BELT_JOB_EXEC) {
        char d[32];
        snprintf(tmp, sizeof tmp, "belt:%s%s%s", kind_name(job->kind),
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
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; job->argv[i]; i++) {
        const char *a = job->argv[i];
        size_t al = strlen(a);
        /* Room for a separator and the plain form. */
        if (belt__reserve(&buf, &cap, len + al + 2) != 0) {
            free(buf);
            return NULL;
        }
        if (i > 0)
            buf[len++] = ' ';
        buf[len] = '\0';
        if (shell_plain(a)) {
            memcpy(buf + len, a, al + 1);
            len += al;
        } else if (belt__shell_quote_append(&buf, &len, &cap, a, al) != 0) {
            free(buf);
            return NULL;
        }
    }
    return buf ? buf : strdup("");
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
    int64_t start = r->started_ns > 0 ? r->started_ns : r->queued_ns;
    int64_t runtime = r->ended_ns > r->started_ns && r->started_ns > 0
                          ? r->ended_ns - r->started_ns
                          : r->duration_ns;
    if (fprintf(f, "%" PRIu64 "\t:\t%" PRId64 ".%03d\t%10.3f\t0\t%" PRIu64
                   "\t%d\t%d\t",
                r->seq + 1, start / 1000000000,
                (int)(start % 1000000000 / 1000000), (double)runtime / 1e9,
                receive_bytes, r->exit_code, r->signal) < 0)
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

struct belt__stats {
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

belt__stats *belt__stats_new(void)
{
    return calloc(1, sizeof(belt__stats));
}

void belt__stats_free(belt__stats *s)
{
    free(s);
}

void belt__stats_add(belt__stats *s, const belt_result *r, bool resumed)
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

uint64_t belt__stats_count(const belt__stats *s, belt_job_status st)
{
    return (unsigned)st <= BELT_JOB_CANCELED ? s->count[st] : 0;
}

uint64_t belt__stats_resumed(const belt__stats *s)
{
    return s->resumed;
}

uint64_t belt__stats_total(const belt__stats *s)
{
    return s->total;
}

uint64_t belt__stats_unsuccessful(const belt__stats *s)
{
    return s->total - s->resumed - s->count[BELT_JOB_OK];
}

int64_t belt__stats_quantile(const belt__stats *s, double p)
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

void belt__stats_summary(const belt__stats *s, FILE *out, int64_t wall_ns,
                         const int64_t *busy_ns, unsigned workers)
{
    char wall[32], p50[32], p99[32];
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

    if (s->ran > 0)
        fprintf(out, "belt: job duration p50 %s, p99 %s\n",
                belt__report_duration(belt__stats_quantile(s, 0.50), p50,
                                      sizeof p50),
                belt__report_duration(belt__stats_quantile(s, 0.99), p99,
                                      sizeof p99));

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
