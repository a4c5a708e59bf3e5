/* experiment/trace.c: loading workload traces for the experiment simulator
 * (experiment/sim.h, belt__trace_load).
 *
 * Format: one job per line, either CSV "arrival,service" or JSON Lines
 * {"arrival": .., "service": ..}; the first line that is neither blank nor a
 * '#' comment decides which ('{' starts JSON Lines).  In CSV, that first
 * line may be a header (its first field is not a time) and is then skipped.
 * A time is a number of seconds (strtod, whole field) or a duration string
 * for belt_parse_duration ("1.5ms"); CSV fields may be double-quoted.
 *
 * Errors name the file and 1-based line ("trace.csv:17: ..."), the way a
 * compiler does, so a user can jump to the bad line.
 *
 * Invariants of a loaded trace: n >= 1, arrival[] non-decreasing, every
 * time finite and >= 0.  The arrays grow by doubling while reading.
 */
#include "experiment/sim.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "belt/error.h"
#include "belt/job.h"

typedef struct loader {
    const char *path;
    unsigned long line;
    char *msg;
    size_t msg_size;
    belt__trace *t;
    size_t cap;
} loader;

static int lfail(loader *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lfail(loader *l, int code, const char *fmt, ...)
{
    if (l->msg != NULL && l->msg_size > 0) {
        int k = snprintf(l->msg, l->msg_size, "%s:%lu: ", l->path, l->line);
        if (k < 0)
            k = 0;
        if ((size_t)k < l->msg_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(l->msg + k, l->msg_size - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

/* Parses a time (seconds or duration) from text[0..len).  0 and *out, or
 * -1 when it is not a time. */
static int parse_time(const char *text, size_t len, double *out)
{
    char buf[128];
    while (len > 0 && (*text == ' ' || *text == '\t')) {
        text++;
        len--;
    }
    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf && *end == '\0' && errno == 0 && isfinite(v)) {
        *out = v;
        return 0;
    }
    int64_t ns;
    if (belt_parse_duration(buf, &ns) == BELT_OK) {
        *out = (double)ns * 1e-9;
        return 0;
    }
    return -1;
}

/* Appends one job after checking it. */
static int add_job(loader *l, double arrival, double service)
{
    belt__trace *t = l->t;
    if (arrival < 0.0)
        return lfail(l, BELT_ECONFIG, "arrival %g: must be >= 0", arrival);
    if (service < 0.0)
        return lfail(l, BELT_ECONFIG, "service %g: must be >= 0", service);
    if (t->n > 0 && arrival < t->arrival[t->n - 1])
        return lfail(l, BELT_ECONFIG,
                     "arrival %g is before the previous arrival %g "
                     "(arrivals must be non-decreasing)",
                     arrival, t->arrival[t->n - 1]);
    return belt__trace_append(t, &l->cap, arrival, service);
}

/* One CSV line (no newline).  `first`: it may be a header. */
static int csv_line(loader *l, const char *s, int first)
{
    const char *comma = strchr(s, ',');
    size_t fields = 1;
    for (const char *p = s; (p = strchr(p, ',')) != NULL; p++)
        fields++;
    double a, b;
    if (first && parse_time(s, comma ? (size_t)(comma - s) : strlen(s), &a))
        return BELT_OK; /* a header */
    if (fields != 2)
        return lfail(l, BELT_ECONFIG,
                     "expected 2 fields (arrival,service), got %zu", fields);
    if (parse_time(s, (size_t)(comma - s), &a))
        return lfail(l, BELT_ECONFIG,
                     "arrival: expected a number of seconds or a duration "
                     "like \"1ms\"");
    if (parse_time(comma + 1, strlen(comma + 1), &b))
        return lfail(l, BELT_ECONFIG,
                     "service: expected a number of seconds or a duration "
                     "like \"1ms\"");
    return add_job(l, a, b);
}

/* obj[key] as a time, for JSON Lines. */
static int json_time(loader *l, const json_t *obj, const char *key,
                     double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return lfail(l, BELT_ECONFIG, "missing \"%s\"", key);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return BELT_OK;
    }
    const char *str = json_string_value(v);
    if (str != NULL && parse_time(str, strlen(str), out) == 0)
        return BELT_OK;
    return lfail(l, BELT_ECONFIG,
                 "%s: expected a number of seconds or a duration like "
                 "\"1ms\"",
                 key);
}

static int jsonl_line(loader *l, const char *s)
{
    json_error_t err;
    json_t *obj = json_loads(s, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL)
        return lfail(l, BELT_ECONFIG, "invalid JSON: %s", err.text);
    int rc;
    double a = 0.0, b = 0.0;
    if (!json_is_object(obj))
        rc = lfail(l, BELT_ECONFIG,
                   "expected an object like {\"arrival\": 0.1, \"service\": "
                   "\"1ms\"}");
    else if ((rc = json_time(l, obj, "arrival", &a)) == BELT_OK &&
             (rc = json_time(l, obj, "service", &b)) == BELT_OK)
        rc = add_job(l, a, b);
    json_decref(obj);
    return rc;
}

int belt__trace_load(const char *path, belt__trace *t, char *msg,
                     size_t msg_size)
{
    if (t == NULL)
        return BELT_EINVAL;
    *t = (belt__trace){ 0 };
    if (path == NULL)
        return BELT_EINVAL;
    loader l = { .path = path, .msg = msg, .msg_size = msg_size, .t = t };
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        if (msg != NULL && msg_size > 0)
            snprintf(msg, msg_size, "%s: %s", path, strerror(e));
        return e == ENOENT ? BELT_ENOENT : BELT_EIO;
    }
    char *buf = NULL;
    size_t bufsize = 0;
    ssize_t len;
    int rc = BELT_OK, format = 0; /* 0 unknown, 1 CSV, 2 JSON Lines */
    errno = 0;
    while (rc == BELT_OK && (len = getline(&buf, &bufsize, f)) >= 0) {
        l.line++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        if ((size_t)len != strlen(buf)) {
            rc = lfail(&l, BELT_ECONFIG, "NUL byte in line");
            break;
        }
        const char *s = buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        int first = format == 0;
        if (first)
            format = *s == '{' ? 2 : 1;
        rc = format == 2 ? jsonl_line(&l, s) : csv_line(&l, s, first);
    }
    if (rc == BELT_OK && ferror(f)) {
        if (msg != NULL && msg_size > 0)
            snprintf(msg, msg_size, "%s: %s", path, strerror(errno));
        rc = BELT_EIO;
    }
    free(buf);
    fclose(f);
    if (rc == BELT_OK && t->n == 0) {
        if (msg != NULL && msg_size > 0)
            snprintf(msg, msg_size, "%s: no jobs in the trace", path);
        rc = BELT_ECONFIG;
    }
    if (rc == BELT_ENOMEM && msg != NULL && msg_size > 0)
        snprintf(msg, msg_size, "%s: out of memory", path);
    if (rc != BELT_OK)
        belt__trace_free(t);
    return rc;
}

int belt__trace_append(belt__trace *t, size_t *cap, double arrival,
                       double service)
{
    if (t->n == *cap) {
        size_t nc = *cap ? 2 * *cap : 1024;
        double *a = realloc(t->arrival, nc * sizeof *a);
        if (a == NULL)
            return BELT_ENOMEM;
        t->arrival = a;
        double *s = realloc(t->service, nc * sizeof *s);
        if (s == NULL)
            return BELT_ENOMEM;
        t->service = s;
        *cap = nc;
    }
    t->arrival[t->n] = arrival;
    t->service[t->n] = service;
    t->n++;
    return BELT_OK;
}

void belt__trace_free(belt__trace *t)
{
    if (t == NULL)
        return;
    free(t->arrival);
    free(t->service);
    *t = (belt__trace){ 0 };
}
