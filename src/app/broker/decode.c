/* app/broker/decode.c: the fast path of the broker's job decoder.
 *
 * belt__broker_job_from_json() (app/broker/codec.c) first calls
 * belt__broker_decode_fast(), a restricted parser for exactly the shape the
 * encoder writes: one flat object whose keys are the known names without
 * escapes, each at most once, and whose values are strings, integers (no
 * fraction or exponent, within int64_t), null or arrays of strings, with
 * the types and ranges the decoder accepts.  Two passes: the first
 * validates everything and adds up the string bytes, the second copies the
 * strings into the same single allocation as the job (a `packed`
 * belt__wire_job).  Anything else makes it give up without side effects,
 * and the jansson decoder decides what is an error and words the message;
 * the fast path only ever succeeds with the job the jansson path would
 * have made (tests/unit/check_codec.c checks both against the old decoder).
 * jansson took about twenty times the instructions (bench/codec_bench.c).
 *
 * No state: pure functions over the caller's text.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "app/broker/codec.h"
#include "app/report.h"
#include "util/json.h"

/* ---- decoding: the fast path -------------------------------------------- */

/* The keys the fast path knows, in the order the encoder writes them. */
enum { F_ID, F_KIND, F_RUN, F_ARGV, F_ENV, F_CWD, F_STDIN, F_DURATION,
       F_TIMEOUT, F_GRACE, F_RETRIES, F_RDELAY, F_RMAX, F_OUTPUT, F_LIMIT,
       F_ODIR, F_SEQ, F_COUNT };
enum { T_STR, T_STRV, T_NAME, T_I64, T_U64 };

#define FIELD(name, type) { name, sizeof(name) - 1, type }
static const struct field {
    const char *name;
    unsigned char len, type;
} fields[F_COUNT] = {
    FIELD("id", T_STR), FIELD("kind", T_NAME), FIELD("run", T_STR),
    FIELD("argv", T_STRV), FIELD("env", T_STRV), FIELD("cwd", T_STR),
    FIELD("stdin_path", T_STR), FIELD("duration_ns", T_I64),
    FIELD("timeout_ns", T_I64), FIELD("kill_grace_ns", T_I64),
    FIELD("retries", T_U64), FIELD("retry_delay_ns", T_I64),
    FIELD("retry_max_delay_ns", T_I64), FIELD("output", T_NAME),
    FIELD("output_limit", T_U64), FIELD("output_dir", T_STR),
    FIELD("seq", T_U64),
};

/* What the first pass found.  at[f]: for T_STR the first byte after the
 * opening quote, for T_STRV the '[', NULL when the key is missing or null.
 * len[f]: T_STR decoded length, T_STRV element count.  raw[f]: T_STR bytes
 * between the quotes (== len: no escapes).  num[f]: integers and name
 * indexes, valid when present[f]. */
typedef struct scan {
    const char *at[F_COUNT];
    size_t len[F_COUNT], raw[F_COUNT];
    int64_t num[F_COUNT];
    bool present[F_COUNT];
    size_t bytes; /* string bytes with their NULs */
} scan;

static inline const char *skip_ws(const char *p)
{
    while ((unsigned char)*p <= ' ' &&
           (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* If the text at p starts with the NUL-terminated s, the byte after it;
 * else NULL.  Reads no byte past a NUL of p. */
static inline const char *skip_prefix(const char *p, const char *s)
{
    while (*s != '\0' && *p == *s) {
        p++;
        s++;
    }
    return *s == '\0' ? p : NULL;
}

/* The escape sequence at s (just after the backslash), as
 * belt__json_unescape() decodes it, except that \u0000 is left to jansson
 * too (a string of ours never holds a NUL). */
static const unsigned char *unescape(const unsigned char *s, uint32_t *cp)
{
    s = belt__json_unescape(s, NULL, cp);
    return s != NULL && *cp != 0 ? s : NULL;
}

/* Scans the string body at *pp (after the opening quote): on success moves
 * *pp past the closing quote, stores the decoded length in *len and
 * returns 0; -1 when the fast path gives up (see unescape(), a control
 * character, invalid UTF-8, no closing quote). */
static int scan_string(const char **pp, size_t *len)
{
    const unsigned char *s = (const unsigned char *)*pp;
    size_t n = 0;
    for (;;) {
        const unsigned char *run = s;
        while (belt__json_class[*s] == BELT__JC_PLAIN)
            s++;
        n += (size_t)(s - run);
        unsigned c = *s;
        if (c == '"') {
            break;
        } else if (c == '\\') {
            uint32_t cp;
            s = unescape(s + 1, &cp);
            if (s == NULL)
                return -1;
            n += belt__utf8_size(cp);
        } else if (c < 0x20) {
            return -1; /* also the end of the text */
        } else {
            size_t k = belt__utf8_len(s, 4);
            if (k == 0)
                return -1;
            s += k;
            n += k;
        }
    }
    *pp = (const char *)s + 1;
    *len = n;
    return 0;
}

/* Copies the string body at *pp (scanned: valid) decoded into w with a NUL,
 * moves *pp past the closing quote; returns the byte after the NUL. */
static char *copy_string(const char **pp, char *w)
{
    const unsigned char *s = (const unsigned char *)*pp;
    for (;;) {
        const unsigned char *run = s;
        while (belt__json_class[*s] <= BELT__JC_UTF8) /* scanned: no control byte */
            s++;
        memcpy(w, run, (size_t)(s - run));
        w += s - run;
        if (*s == '"')
            break;
        uint32_t cp = 0;
        s = unescape(s + 1, &cp);
        w = belt__utf8_put(w, cp);
    }
    *pp = (const char *)s + 1;
    *w++ = '\0';
    return w;
}

/* Scans an integer as jansson reads one (-?(0|[1-9][0-9]*)) within
 * int64_t; -1 (give up) for anything else, fractions and exponents
 * included. */
static int scan_int(const char **pp, int64_t *out)
{
    const char *p = *pp;
    bool neg = *p == '-';
    if (neg)
        p++;
    const char *digits = p;
    uint64_t v = 0; /* wraps past 20 digits: refused below */
    if (*p == '0') {
        p++;
    } else {
        while ((unsigned)(*p - '0') < 10)
            v = v * 10 + (uint64_t)(*p++ - '0');
    }
    if (p == digits || p - digits > 19 || (unsigned)(*p - '0') < 10 ||
        *p == '.' || *p == 'e' || *p == 'E')
        return -1;
    if (v > (uint64_t)INT64_MAX + neg)
        return -1;
    *out = !neg ? (int64_t)v : v == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                                            : -(int64_t)v;
    *pp = p;
    return 0;
}

/* Reads the key whose body starts at *pp (after its opening quote; the
 * text ends at end) and moves *pp past its closing quote.  Returns the
 * field's index, or -1 for an unknown key or one with an escape.  The
 * fields are tried from hint (the one after the previous key) on, so that
 * the encoder's order, with some keys left out, costs one memcmp and a few
 * one-byte tests. */
static int scan_key(const char **pp, const char *end, int hint)
{
    const char *p = *pp;
    size_t avail = (size_t)(end - p);
    int f = hint < F_COUNT ? hint : 0;
    for (int i = 0; i < F_COUNT; i++) {
        size_t len = fields[f].len;
        if (avail > len && p[len] == '"' &&
            memcmp(p, fields[f].name, len) == 0) {
            *pp = p + len + 1;
            return f;
        }
        f = f + 1 < F_COUNT ? f + 1 : 0;
    }
    return -1;
}

/* Scans the value of field f at p; returns the byte after it or NULL to
 * give up. */
static const char *scan_value(const char *p, int f, scan *sc)
{
    int type = fields[f].type;
    if (*p == 'n') {
        const char *e = skip_prefix(p, "null");
        sc->at[f] = NULL;
        return e;
    }
    sc->present[f] = true;
    switch (type) {
    case T_STR: {
        if (*p != '"')
            return NULL;
        sc->at[f] = ++p;
        if (scan_string(&p, &sc->len[f]) != 0)
            return NULL;
        sc->raw[f] = (size_t)(p - 1 - sc->at[f]);
        sc->bytes += sc->len[f] + 1;
        return p;
    }
    case T_STRV: {
        if (*p != '[')
            return NULL;
        sc->at[f] = p;
        p = skip_ws(p + 1);
        size_t count = 0;
        if (*p != ']') {
            for (;;) {
                size_t len;
                if (*p != '"')
                    return NULL;
                p++;
                if (scan_string(&p, &len) != 0)
                    return NULL;
                sc->bytes += len + 1;
                count++;
                p = skip_ws(p);
                if (*p == ']')
                    break;
                if (*p != ',')
                    return NULL;
                p = skip_ws(p + 1);
            }
        }
        sc->len[f] = count;
        return p + 1;
    }
    case T_NAME: {
        const char *const *names =
            f == F_KIND ? belt__kind_names : belt__output_names;
        size_t count = f == F_KIND ? BELT__NKINDS
                                   : BELT__NOUTPUTS;
        if (*p != '"')
            return NULL;
        for (size_t i = 0; i < count; i++) {
            const char *e = skip_prefix(p + 1, names[i]);
            if (e != NULL && *e == '"') {
                sc->num[f] = (int64_t)i;
                return e + 1;
            }
        }
        return NULL; /* unknown, or escaped: jansson words the error */
    }
    default: {
        if (scan_int(&p, &sc->num[f]) != 0)
            return NULL;
        if (type == T_U64) {
            uint64_t max = f == F_RETRIES ? UINT32_MAX
                         : f == F_LIMIT ? SIZE_MAX : UINT64_MAX;
            if (sc->num[f] < 0 || (uint64_t)sc->num[f] > max)
                return NULL;
        }
        return p;
    }
    }
}

/* Copies the array at p (scanned: valid, count elements) into v (count + 1
 * pointers, NULL-terminated), its strings at w; returns the byte after the
 * last NUL. */
static char *copy_strv(const char *p, char **v, size_t count, char *w)
{
    p = skip_ws(p + 1); /* after the '[' */
    for (size_t i = 0; i < count; i++) {
        p++; /* the opening quote */
        v[i] = w;
        w = copy_string(&p, w);
        p = skip_ws(p);
        if (*p == ',')
            p = skip_ws(p + 1);
    }
    v[count] = NULL;
    return w;
}

/* Copies a T_STR field's string (scanned) to w; returns the byte after its
 * NUL. */
static char *copy_field(const scan *sc, int f, char *w)
{
    const char *p = sc->at[f];
    if (sc->raw[f] == sc->len[f]) { /* no escapes */
        memcpy(w, p, sc->len[f]);
        w[sc->len[f]] = '\0';
        return w + sc->len[f] + 1;
    }
    return copy_string(&p, w);
}

/* The fast path: returns BELT_OK with *out set, BELT_ENOMEM, or 1 when it
 * gives up (see the essay); then nothing is allocated and *out is
 * untouched. */
int belt__broker_decode_fast(const char *text, belt_job **out)
{
    scan sc;
    memset(&sc, 0, sizeof sc);
    const char *end = text + strlen(text);
    const char *p = skip_ws(text);
    if (*p != '{')
        return 1;
    p = skip_ws(p + 1);
    if (*p != '}') {
        uint32_t seen = 0; /* bit f: key f was read */
        int hint = 0;
        for (;;) {
            if (*p != '"')
                return 1;
            p++;
            int f = scan_key(&p, end, hint);
            if (f < 0 || (seen & UINT32_C(1) << f) != 0)
                return 1; /* unknown (jansson ignores it) or duplicate */
            seen |= UINT32_C(1) << f;
            hint = f + 1;
            p = skip_ws(p);
            if (*p != ':')
                return 1;
            p = scan_value(skip_ws(p + 1), f, &sc);
            if (p == NULL)
                return 1;
            p = skip_ws(p);
            if (*p == '}')
                break;
            if (*p != ',')
                return 1;
            p = skip_ws(p + 1);
        }
    }
    if (*skip_ws(p + 1) != '\0')
        return 1;
    bool exec = !sc.present[F_KIND] || sc.num[F_KIND] == BELT_JOB_EXEC;
    if (exec && (sc.at[F_RUN] == NULL) == (sc.at[F_ARGV] == NULL))
        return 1;

    size_t nargv = sc.at[F_ARGV] != NULL ? sc.len[F_ARGV] + 1 : 0;
    size_t nenv = sc.at[F_ENV] != NULL ? sc.len[F_ENV] + 1 : 0;
    belt__wire_job *w = malloc(sizeof *w + (nargv + nenv) * sizeof(char *) +
                         sc.bytes);
    if (w == NULL)
        return BELT_ENOMEM;
    memset(w, 0, sizeof *w);
    w->packed = true;
    char **ptrs = (char **)(w + 1);
    char *s = (char *)(ptrs + nargv + nenv);
    if (sc.at[F_ID] != NULL) {
        w->id = s;
        s = copy_field(&sc, F_ID, s);
    }
    if (sc.at[F_RUN] != NULL) {
        w->run = s;
        s = copy_field(&sc, F_RUN, s);
    }
    if (nargv > 0) {
        w->argv = ptrs;
        s = copy_strv(sc.at[F_ARGV], ptrs, sc.len[F_ARGV], s);
    }
    if (nenv > 0) {
        w->env = ptrs + nargv;
        s = copy_strv(sc.at[F_ENV], w->env, sc.len[F_ENV], s);
    }
    if (sc.at[F_CWD] != NULL) {
        w->cwd = s;
        s = copy_field(&sc, F_CWD, s);
    }
    if (sc.at[F_STDIN] != NULL) {
        w->stdin_path = s;
        s = copy_field(&sc, F_STDIN, s);
    }
    if (sc.at[F_ODIR] != NULL) {
        w->output_dir = s;
        copy_field(&sc, F_ODIR, s);
    }

    belt_job *j = &w->job;
    belt_job_init(j);
    j->id = w->id;
    j->run = w->run;
    j->argv = w->argv;
    j->env = w->env;
    j->cwd = w->cwd;
    j->stdin_path = w->stdin_path;
    j->output_dir = w->output_dir;
    if (sc.present[F_KIND])
        j->kind = (belt_job_kind)sc.num[F_KIND];
    if (sc.present[F_OUTPUT])
        j->output = (belt_output_mode)sc.num[F_OUTPUT];
    if (sc.present[F_DURATION])
        j->duration_ns = sc.num[F_DURATION];
    if (sc.present[F_TIMEOUT])
        j->timeout_ns = sc.num[F_TIMEOUT];
    if (sc.present[F_GRACE])
        j->kill_grace_ns = sc.num[F_GRACE];
    if (sc.present[F_RETRIES])
        j->retries = (unsigned)sc.num[F_RETRIES];
    if (sc.present[F_RDELAY])
        j->retry_delay_ns = sc.num[F_RDELAY];
    if (sc.present[F_RMAX])
        j->retry_max_delay_ns = sc.num[F_RMAX];
    if (sc.present[F_LIMIT])
        j->output_limit = (size_t)sc.num[F_LIMIT];
    if (sc.present[F_SEQ])
        j->seq = (uint64_t)sc.num[F_SEQ];
    *out = j;
    return BELT_OK;
}

