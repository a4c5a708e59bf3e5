/* check_codec.c: the broker's job codec (src/app/broker/codec.c) against the
 * jansson code it replaced.
 *
 * The codec used to build a jansson object to encode a job and to parse
 * the text with json_loads() to decode one; it now writes the text itself
 * and decodes the encoder's shape with a small parser, falling back to the
 * jansson decoder for anything else.  That old code is kept here verbatim
 * (oracle_*) and every test is differential: same bytes, same return code,
 * same message, same job fields.
 *
 * TCases:
 *   encode   seeded pseudo-random jobs of every kind and output mode (also
 *            out of range: "unknown"), each string field present or NULL,
 *            argv/env NULL, empty or long, strings with quotes,
 *            backslashes, slashes, every control character, DEL, multi-byte
 *            UTF-8 at the edges of each length and invalid UTF-8 (overlong,
 *            surrogate, above U+10FFFF, truncated, stray continuation: the
 *            encoders must both fail), integers at the int64 edges, seq,
 *            output_limit and retries over their whole range
 *   decode   the encoder's texts; the same jobs written "wild" (keys
 *            shuffled, whitespace, \u escapes with either hex case,
 *            surrogate pairs, \/, explicit nulls), with unknown keys,
 *            duplicate keys, values of the wrong type, floats, big numbers,
 *            \u0000 and lone surrogates; and mutated texts (truncated,
 *            bytes replaced, inserted or deleted).  Both decoders must
 *            agree on the code, on the message (also with tiny or no
 *            message buffers) and on every field
 *   fast     texts the fast path is meant for do take it: a job it decodes
 *            is one block, its strings back to back (id, run, argv, env,
 *            cwd, stdin_path, output_dir), which the jansson path (one
 *            strdup each) never gives
 *   cases    a fixed list of edge cases (numbers at the int64 edges, -0,
 *            leading zeros, exponents, escapes in keys, non-objects,
 *            trailing bytes, ...)
 *   result   belt__broker_result_json() against the old json_dumps splice,
 *            random host and worker id strings (invalid UTF-8: NULL)
 */
#include <check.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "belt/job.h"
#include "app/broker/broker.h"
#include "app/report.h"
/* test_util.h has helpers for threaded tests that this file does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test_util.h"
#pragma GCC diagnostic pop

/* ---- the oracle: app/broker/codec.c before it stopped using jansson ----- */

typedef struct oracle_wire {
    belt_job job;
    char *id, *run, *cwd, *stdin_path, *output_dir;
    char **argv, **env;
} oracle_wire;

static const char *const kind_names[] = { "exec", "sleep", "spin", "noop" };
static const char *const output_names[] = { "capture", "files", "group",
                                            "lines", "inherit", "discard" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int oracle_set(json_t *o, const char *k, json_t *v)
{
    return json_object_set_new(o, k, v) == 0 && v != NULL ? 0 : -1;
}

static int oracle_set_str(json_t *o, const char *k, const char *s)
{
    return s == NULL ? 0 : oracle_set(o, k, json_string(s));
}

static json_t *str_array(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && v[i] != NULL; i++) {
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static char *oracle_to_json(const belt_job *job)
{
    if (job == NULL)
        return NULL;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= oracle_set_str(o, "id", job->id);
    rc |= oracle_set(o, "kind",
                     json_string((size_t)job->kind < COUNT(kind_names)
                                     ? kind_names[job->kind] : "unknown"));
    rc |= oracle_set_str(o, "run", job->run);
    if (job->argv != NULL)
        rc |= oracle_set(o, "argv", str_array(job->argv));
    if (job->env != NULL)
        rc |= oracle_set(o, "env", str_array(job->env));
    rc |= oracle_set_str(o, "cwd", job->cwd);
    rc |= oracle_set_str(o, "stdin_path", job->stdin_path);
    rc |= oracle_set(o, "duration_ns", json_integer(job->duration_ns));
    rc |= oracle_set(o, "timeout_ns", json_integer(job->timeout_ns));
    rc |= oracle_set(o, "kill_grace_ns", json_integer(job->kill_grace_ns));
    rc |= oracle_set(o, "retries", json_integer(job->retries));
    rc |= oracle_set(o, "retry_delay_ns", json_integer(job->retry_delay_ns));
    rc |= oracle_set(o, "retry_max_delay_ns",
                     json_integer(job->retry_max_delay_ns));
    rc |= oracle_set(o, "output",
              json_string((size_t)job->output < COUNT(output_names)
                              ? output_names[job->output] : "unknown"));
    rc |= oracle_set(o, "output_limit",
                     json_integer((json_int_t)job->output_limit));
    rc |= oracle_set_str(o, "output_dir", job->output_dir);
    rc |= oracle_set(o, "seq", json_integer((json_int_t)job->seq));
    char *s = rc == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static void oracle_free(belt_job *job)
{
    if (job == NULL)
        return;
    oracle_wire *w = (oracle_wire *)job;
    free(w->id);
    free(w->run);
    free(w->cwd);
    free(w->stdin_path);
    free(w->output_dir);
    for (size_t i = 0; w->argv != NULL && w->argv[i] != NULL; i++)
        free(w->argv[i]);
    free(w->argv);
    for (size_t i = 0; w->env != NULL && w->env[i] != NULL; i++)
        free(w->env[i]);
    free(w->env);
    free(w);
}

static int get_str(json_t *o, const char *k, char **out, char *msg, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        snprintf(msg, n, "job JSON: \"%s\" must be a string", k);
        return -1;
    }
    *out = strdup(json_string_value(v));
    return *out == NULL ? -2 : 0;
}

static int get_i64(json_t *o, const char *k, int64_t *out, char *msg,
                   size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v)) {
        snprintf(msg, n, "job JSON: \"%s\" must be an integer", k);
        return -1;
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int get_u64(json_t *o, const char *k, uint64_t *out, uint64_t max,
                   char *msg, size_t n)
{
    int64_t v = 0;
    json_t *j = json_object_get(o, k);
    if (j == NULL || json_is_null(j))
        return 0;
    if (get_i64(o, k, &v, msg, n) != 0)
        return -1;
    if (v < 0 || (uint64_t)v > max) {
        snprintf(msg, n, "job JSON: \"%s\" out of range", k);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

static int get_name(json_t *o, const char *k, const char *const *names,
                    size_t count, int *out, char *msg, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        for (size_t i = 0; i < count; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = (int)i;
                return 0;
            }
        }
    }
    snprintf(msg, n, "job JSON: unknown \"%s\" (this worker knows", k);
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(msg);
        snprintf(msg + len, n > len ? n - len : 0, " %s", names[i]);
    }
    size_t len = strlen(msg);
    snprintf(msg + len, n > len ? n - len : 0, ")");
    return -1;
}

static int get_strv(json_t *o, const char *k, char ***out, char *msg,
                    size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v)) {
        snprintf(msg, n, "job JSON: \"%s\" must be an array of strings", k);
        return -1;
    }
    size_t count = json_array_size(v);
    char **a = calloc(count + 1, sizeof *a);
    if (a == NULL)
        return -2;
    *out = a; /* freed with the job, also when partly filled */
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            snprintf(msg, n, "job JSON: \"%s\"[%zu] must be a string", k, i);
            return -1;
        }
        a[i] = strdup(json_string_value(e));
        if (a[i] == NULL)
            return -2;
    }
    return 0;
}

static int oracle_from_json(const char *text, belt_job **out, char *msg,
                            size_t n)
{
    char dummy[8];
    if (msg == NULL || n == 0) {
        msg = dummy;
        n = sizeof dummy;
    }
    msg[0] = '\0';
    if (text == NULL || out == NULL) {
        snprintf(msg, n, "no job JSON");
        return BELT_EINVAL;
    }
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL) {
        snprintf(msg, n, "job JSON: %s (column %d)", err.text, err.column);
        return BELT_EINVAL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(msg, n, "job JSON: expected an object");
        return BELT_EINVAL;
    }
    oracle_wire *w = calloc(1, sizeof *w);
    if (w == NULL) {
        json_decref(o);
        snprintf(msg, n, "out of memory");
        return BELT_ENOMEM;
    }
    belt_job *j = &w->job;
    belt_job_init(j);
    int kind = (int)j->kind, output = (int)j->output;
    uint64_t retries = j->retries, limit = j->output_limit, seq = 0;
    int rc = 0;
    rc = get_str(o, "id", &w->id, msg, n);
    if (rc == 0) rc = get_name(o, "kind", kind_names, COUNT(kind_names),
                               &kind, msg, n);
    if (rc == 0) rc = get_str(o, "run", &w->run, msg, n);
    if (rc == 0) rc = get_strv(o, "argv", &w->argv, msg, n);
    if (rc == 0) rc = get_strv(o, "env", &w->env, msg, n);
    if (rc == 0) rc = get_str(o, "cwd", &w->cwd, msg, n);
    if (rc == 0) rc = get_str(o, "stdin_path", &w->stdin_path, msg, n);
    if (rc == 0) rc = get_i64(o, "duration_ns", &j->duration_ns, msg, n);
    if (rc == 0) rc = get_i64(o, "timeout_ns", &j->timeout_ns, msg, n);
    if (rc == 0) rc = get_i64(o, "kill_grace_ns", &j->kill_grace_ns, msg, n);
    if (rc == 0) rc = get_u64(o, "retries", &retries, UINT32_MAX, msg, n);
    if (rc == 0) rc = get_i64(o, "retry_delay_ns", &j->retry_delay_ns, msg, n);
    if (rc == 0) rc = get_i64(o, "retry_max_delay_ns",
                              &j->retry_max_delay_ns, msg, n);
    if (rc == 0) rc = get_name(o, "output", output_names, COUNT(output_names),
                               &output, msg, n);
    if (rc == 0) rc = get_u64(o, "output_limit", &limit, SIZE_MAX, msg, n);
    if (rc == 0) rc = get_str(o, "output_dir", &w->output_dir, msg, n);
    if (rc == 0) rc = get_u64(o, "seq", &seq, UINT64_MAX, msg, n);
    json_decref(o);
    if (rc == 0 && kind == BELT_JOB_EXEC && (w->run == NULL) ==
                                                (w->argv == NULL)) {
        snprintf(msg, n, "job JSON: an exec job needs exactly one of "
                 "\"run\" and \"argv\"");
        rc = -1;
    }
    if (rc != 0) {
        oracle_free(j);
        if (rc == -2) {
            snprintf(msg, n, "out of memory");
            return BELT_ENOMEM;
        }
        return BELT_EINVAL;
    }
    j->id = w->id;
    j->kind = (belt_job_kind)kind;
    j->run = w->run;
    j->argv = w->argv;
    j->env = w->env;
    j->cwd = w->cwd;
    j->stdin_path = w->stdin_path;
    j->retries = (unsigned)retries;
    j->output = (belt_output_mode)output;
    j->output_limit = (size_t)limit;
    j->output_dir = w->output_dir;
    j->seq = seq;
    *out = j;
    return BELT_OK;
}

static char *oracle_result_json(const belt_result *r, const char *host,
                                const char *worker_id, unsigned delivery,
                                size_t *len)
{
    if (r == NULL)
        return NULL;
    belt_result copy = *r; /* shallow: only `worker` differs */
    copy.worker = -1;
    size_t line_len;
    char *line = belt__report_result_line(&copy, &line_len);
    if (line == NULL)
        return NULL;
    while (line_len > 0 && line[line_len - 1] == '\n')
        line[--line_len] = '\0';
    static const char key[] = "\"worker\":null";
    char *at = strstr(line, key);
    json_t *h = json_string(host ? host : "");
    json_t *w = json_string(worker_id ? worker_id : "");
    char *hs = h ? json_dumps(h, JSON_ENCODE_ANY) : NULL;
    char *ws = w ? json_dumps(w, JSON_ENCODE_ANY) : NULL;
    json_decref(h);
    json_decref(w);
    char *out = NULL;
    if (at != NULL && hs != NULL && ws != NULL) {
        char mid[64];
        snprintf(mid, sizeof mid, ",\"delivery\":%u", delivery);
        size_t head = (size_t)(at - line), klen = sizeof key - 1;
        size_t total = line_len - klen + strlen("\"worker\":") + strlen(ws) +
                       strlen(",\"host\":") + strlen(hs) + strlen(mid);
        out = malloc(total + 1);
        if (out != NULL) {
            int k = snprintf(out, total + 1, "%.*s\"worker\":%s,\"host\":%s%s%s",
                             (int)head, line, ws, hs, mid, at + klen);
            if (len != NULL)
                *len = (size_t)k;
        }
    }
    free(hs);
    free(ws);
    free(line);
    return out;
}

/* ---- random jobs -------------------------------------------------------- */

static uint64_t rnd(uint64_t *st)
{
    return tu_rand(st);
}

static unsigned below(uint64_t *st, unsigned n)
{
    return (unsigned)(rnd(st) % n);
}

static bool chance(uint64_t *st, unsigned percent)
{
    return below(st, 100) < percent;
}

/* Pieces strings are made of.  Valid ones: ASCII, escapes, UTF-8 at the
 * edges of each sequence length.  Invalid ones: what json_string()
 * refuses. */
static const char *const valid_pieces[] = {
    "a", "Z", "0", " ", "job", "/", "//", "\"", "\\", "\\\\", "\"\\\"",
    "\x01", "\x07", "\b", "\t", "\n", "\x0b", "\f", "\r", "\x0e", "\x1b",
    "\x1f", "\x7f", "\xc2\x80", "\xc3\xa9", "\xdf\xbf", "\xe0\xa0\x80",
    "\xe2\x82\xac", "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbf",
    "\xf0\x90\x80\x80", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
    "null", "{", "}", "[", "]", ",", ":", "\\u00e9", "-1", "1e5",
};
static const char *const invalid_pieces[] = {
    "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2" "a", "\xe0\x80\x80",
    "\xe0\x9f\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xe2\x82",
    "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8",
    "\xfe", "\xff", "\xf0\x9f\x98", "\xe2\x82" "a",
};

/* Storage for one random job's strings. */
typedef struct gen {
    char buf[32768];
    size_t used;
    char *argv[20], *env[20];
    bool invalid; /* some string is not valid UTF-8 */
} gen;

static char *gen_str(uint64_t *st, gen *g, bool allow_invalid)
{
    if (g->used >= sizeof g->buf - 1) { /* full: "" */
        g->buf[sizeof g->buf - 1] = '\0';
        return g->buf + sizeof g->buf - 1;
    }
    char *s = g->buf + g->used;
    size_t room = sizeof g->buf - g->used - 1, n = 0;
    unsigned pieces = chance(st, 2) ? 400 : below(st, 24);
    bool bad = allow_invalid && chance(st, 4);
    unsigned bad_at = bad ? below(st, pieces + 1) : UINT32_MAX;
    for (unsigned i = 0; i <= pieces; i++) {
        const char *p;
        if (i == bad_at) {
            p = invalid_pieces[below(st, COUNT(invalid_pieces))];
            g->invalid = true;
        } else if (i == pieces) {
            break;
        } else if (chance(st, 60)) {
            static const char alnum[] = "abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                        "-_.=/ %";
            char c[2] = { alnum[below(st, sizeof alnum - 1)], 0 };
            size_t l = strlen(c);
            if (n + l <= room) {
                memcpy(s + n, c, l);
                n += l;
            }
            continue;
        } else {
            p = valid_pieces[below(st, COUNT(valid_pieces))];
        }
        size_t l = strlen(p);
        if (n + l <= room) {
            memcpy(s + n, p, l);
            n += l;
        }
    }
    s[n] = '\0';
    g->used += n + 1;
    return s;
}

static int64_t gen_i64(uint64_t *st)
{
    switch (below(st, 10)) {
    case 0: return 0;
    case 1: return -1;
    case 2: return INT64_MAX;
    case 3: return INT64_MIN;
    case 4: return (int64_t)below(st, 1000);
    case 5: return -(int64_t)below(st, 1000000);
    case 6: return (int64_t)(rnd(st) >> below(st, 64));
    case 7: return INT64_C(30000000000);
    default: return (int64_t)rnd(st);
    }
}

static uint64_t gen_u64(uint64_t *st)
{
    switch (below(st, 8)) {
    case 0: return 0;
    case 1: return UINT64_MAX;
    case 2: return (uint64_t)INT64_MAX;
    case 3: return (uint64_t)INT64_MAX + 1;
    case 4: return below(st, 100000);
    case 5: return rnd(st) >> below(st, 64);
    default: return rnd(st);
    }
}

static char **gen_strv(uint64_t *st, gen *g, char **v, bool allow_invalid)
{
    unsigned n = chance(st, 10) ? 0 : below(st, 19);
    for (unsigned i = 0; i < n; i++)
        v[i] = gen_str(st, g, allow_invalid);
    v[n] = NULL;
    return v;
}

/* A random job (strings in g).  allow_invalid: some strings may be invalid
 * UTF-8 (g->invalid says so). */
static void gen_job(uint64_t *st, gen *g, belt_job *j, bool allow_invalid)
{
    g->used = 0;
    g->invalid = false;
    belt_job_init(j);
    j->kind = chance(st, 3) ? (belt_job_kind)(4 + below(st, 3))
                            : (belt_job_kind)below(st, 4);
    j->id = chance(st, 85) ? gen_str(st, g, allow_invalid) : NULL;
    /* exec: usually exactly one of run and argv; sometimes both/none */
    unsigned shape = below(st, 10);
    j->run = shape < 5 || shape == 8 ? gen_str(st, g, allow_invalid) : NULL;
    j->argv = (shape >= 5 && shape < 8) || shape == 8
                  ? gen_strv(st, g, g->argv, allow_invalid) : NULL;
    j->env = chance(st, 40) ? gen_strv(st, g, g->env, allow_invalid) : NULL;
    j->cwd = chance(st, 30) ? gen_str(st, g, allow_invalid) : NULL;
    j->stdin_path = chance(st, 20) ? gen_str(st, g, allow_invalid) : NULL;
    if (chance(st, 50)) {
        j->duration_ns = gen_i64(st);
        j->timeout_ns = gen_i64(st);
        j->kill_grace_ns = gen_i64(st);
        j->retry_delay_ns = gen_i64(st);
        j->retry_max_delay_ns = gen_i64(st);
    }
    if (chance(st, 50))
        j->retries = chance(st, 20) ? UINT32_MAX : (unsigned)rnd(st);
    j->output = chance(st, 3) ? (belt_output_mode)(6 + below(st, 3))
                              : (belt_output_mode)below(st, 6);
    if (chance(st, 50))
        j->output_limit = (size_t)gen_u64(st);
    j->output_dir = chance(st, 20) ? gen_str(st, g, allow_invalid) : NULL;
    j->seq = chance(st, 70) ? gen_u64(st) : below(st, 1000);
}

/* ---- comparing ---------------------------------------------------------- */

static bool same_cstr(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_strv(char *const *a, char *const *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    size_t i = 0;
    for (; a[i] != NULL && b[i] != NULL; i++) {
        if (strcmp(a[i], b[i]) != 0)
            return false;
    }
    return a[i] == NULL && b[i] == NULL;
}

static void same_job(const belt_job *a, const belt_job *b, const char *text)
{
    ck_assert_msg(same_cstr(a->id, b->id), "id differs: %s", text);
    ck_assert_msg(a->kind == b->kind, "kind differs: %s", text);
    ck_assert_msg(same_cstr(a->run, b->run), "run differs: %s", text);
    ck_assert_msg(same_strv(a->argv, b->argv), "argv differs: %s", text);
    ck_assert_msg(same_strv(a->env, b->env), "env differs: %s", text);
    ck_assert_msg(same_cstr(a->cwd, b->cwd), "cwd differs: %s", text);
    ck_assert_msg(same_cstr(a->stdin_path, b->stdin_path),
                  "stdin_path differs: %s", text);
    ck_assert_msg(a->duration_ns == b->duration_ns, "duration: %s", text);
    ck_assert_msg(a->timeout_ns == b->timeout_ns, "timeout: %s", text);
    ck_assert_msg(a->kill_grace_ns == b->kill_grace_ns, "grace: %s", text);
    ck_assert_msg(a->retries == b->retries, "retries: %s", text);
    ck_assert_msg(a->retry_delay_ns == b->retry_delay_ns, "delay: %s", text);
    ck_assert_msg(a->retry_max_delay_ns == b->retry_max_delay_ns,
                  "max delay: %s", text);
    ck_assert_msg(a->output == b->output, "output differs: %s", text);
    ck_assert_msg(a->output_limit == b->output_limit, "limit: %s", text);
    ck_assert_msg(same_cstr(a->output_dir, b->output_dir),
                  "output_dir differs: %s", text);
    ck_assert_msg(a->seq == b->seq, "seq differs: %s", text);
    ck_assert_msg(a->user == NULL && b->user == NULL, "user: %s", text);
}

/* The layout of a job the fast path made: its strings back to back in the
 * order it copies them.  Returns how many strings were checked (a job with
 * fewer than two proves nothing) or -1 when two are not adjacent. */
static int packed_strings(const belt_job *j)
{
    const char *order[64];
    size_t n = 0;
    order[n++] = j->id;
    order[n++] = j->run;
    for (size_t i = 0; j->argv != NULL && j->argv[i] != NULL && n < 40; i++)
        order[n++] = j->argv[i];
    for (size_t i = 0; j->env != NULL && j->env[i] != NULL && n < 60; i++)
        order[n++] = j->env[i];
    order[n++] = j->cwd;
    order[n++] = j->stdin_path;
    order[n++] = j->output_dir;
    const char *prev = NULL;
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        if (order[i] == NULL)
            continue;
        if (prev != NULL && order[i] != prev + strlen(prev) + 1)
            return -1;
        prev = order[i];
        count++;
    }
    return count;
}

/* Decodes text with both decoders and checks they agree.  Returns the code;
 * with want_fast, also checks that the fast path decoded it. */
static int same_decode(const char *text, bool want_fast, uint64_t *st)
{
    char m1[512], m2[512];
    size_t n = sizeof m1;
    if (st != NULL && chance(st, 10))
        n = below(st, 40); /* truncated (0: no message) */
    belt_job *a = NULL, *b = NULL;
    memset(m1, 'x', sizeof m1);
    memset(m2, 'x', sizeof m2);
    int r1 = belt__broker_job_from_json(text, &a, n > 0 ? m1 : NULL, n);
    int r2 = oracle_from_json(text, &b, n > 0 ? m2 : NULL, n);
    ck_assert_msg(r1 == r2, "codes %d vs %d: %s", r1, r2, text);
    if (n > 0)
        ck_assert_msg(strcmp(m1, m2) == 0, "messages \"%s\" vs \"%s\": %s",
                      m1, m2, text);
    if (r1 == BELT_OK) {
        ck_assert_ptr_nonnull(a);
        same_job(a, b, text);
        if (want_fast)
            ck_assert_msg(packed_strings(a) >= 0, "slow path: %s", text);
    } else {
        ck_assert_ptr_null(a);
        ck_assert_msg(!want_fast, "fast path text refused: %s: %s", text,
                      n > 0 ? m1 : "");
    }
    belt__broker_job_free(a);
    oracle_free(b);
    return r1;
}

/* ---- a "wild" writer: the same job as other valid (or not) JSON --------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        ck_assert_ptr_nonnull(b->s);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_addf(sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_addf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_adds(b, tmp);
}

static void add_ws(uint64_t *st, sbuf *b, unsigned percent)
{
    static const char *const spaces[] = { " ", "\t", "\n", "\r", "  ",
                                          "\r\n" };
    if (chance(st, percent))
        sb_adds(b, spaces[below(st, COUNT(spaces))]);
}

/* Writes s as a JSON string; clean: only escapes jansson accepts, each
 * character raw or escaped at random; else also lone surrogates and
 * \u0000 now and then. */
static void wild_str(uint64_t *st, sbuf *b, const char *str, bool clean)
{
    const unsigned char *s = (const unsigned char *)str;
    bool esc = chance(st, 40);
    sb_adds(b, "\"");
    while (*s != '\0') {
        uint32_t cp;
        size_t len;
        if (*s < 0x80) {
            cp = *s;
            len = 1;
        } else if (*s >= 0xC2 && *s < 0xE0 && (s[1] & 0xC0) == 0x80) {
            cp = (uint32_t)(*s & 0x1F) << 6 | (s[1] & 0x3F);
            len = 2;
        } else if (*s >= 0xE0 && *s < 0xF0 && (s[1] & 0xC0) == 0x80 &&
                   (s[2] & 0xC0) == 0x80) {
            cp = (uint32_t)(*s & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 |
                 (s[2] & 0x3F);
            len = 3;
        } else if (*s >= 0xF0 && (s[1] & 0xC0) == 0x80 &&
                   (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) {
            cp = (uint32_t)(*s & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                 (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
            len = 4;
        } else { /* invalid: as it is */
            sb_add(b, (const char *)s, 1);
            s++;
            continue;
        }
        bool must = cp < 0x20 || cp == '"' || cp == '\\';
        if (!must && !(esc && chance(st, 50))) {
            sb_add(b, (const char *)s, len);
        } else if (cp == '/' && chance(st, 50)) {
            sb_adds(b, "\\/");
        } else if (cp == '\n' && chance(st, 50)) {
            sb_adds(b, "\\n");
        } else if ((cp == '"' || cp == '\\') && chance(st, 70)) {
            char e[3] = { '\\', (char)cp, 0 };
            sb_adds(b, e);
        } else if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            sb_addf(b, chance(st, 50) ? "\\u%04x\\u%04x" : "\\u%04X\\u%04X",
                    0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
        } else {
            sb_addf(b, chance(st, 50) ? "\\u%04x" : "\\u%04X", cp);
        }
        s += len;
        if (!clean && chance(st, 2)) {
            static const char *const bad[] = { "\\ud800", "\\udc00",
                                               "\\u0000", "\\ud83d\\u0041",
                                               "\\ude00\\ud83d", "\\x",
                                               "\\u12", "\\U00e9" };
            sb_adds(b, bad[below(st, COUNT(bad))]);
        }
    }
    sb_adds(b, "\"");
}

/* A value of some other type, or something that is no value at all. */
static const char *const odd_values[] = {
    "1.5", "1e3", "-0.0", "1E+2", "true", "false", "{}", "{\"a\":1}", "[]",
    "[1]", "[\"a\",1]", "[null]", "[[\"a\"]]", "\"exec\"", "\"x\"", "0",
    "-1", "99999999999999999999", "-99999999999999999999",
    "9223372036854775808", "-9223372036854775809", "01", "-", "nul",
    "nulll", "\"\\u0000\"", "4294967296", "18446744073709551615", "NaN",
};

/* Writes job j as a JSON object.  clean: valid JSON of the encoder's shape
 * (keys shuffled, whitespace, escapes, nulls for what is missing): the fast
 * path must take it.  Otherwise also unknown and duplicate keys and odd
 * values. */
static void wild_job(uint64_t *st, sbuf *b, const belt_job *j, bool clean)
{
    char nums[8][24];
    const char *keys[24];
    int kinds[24]; /* 0 string, 1 strv, 2 raw */
    const void *vals[24];
    size_t n = 0;
#define ADD(k, t, v)                                                         \
    do {                                                                     \
        keys[n] = (k);                                                       \
        kinds[n] = (t);                                                      \
        vals[n] = (v);                                                       \
        n++;                                                                 \
    } while (0)
    unsigned ws_pct = chance(st, 50) ? 0 : 30;
    /* names as the encoder writes them: the fast path takes no escapes in
     * them (nor does it need to) */
    char kind[32], output[32];
    snprintf(kind, sizeof kind, "\"%s\"", (size_t)j->kind < COUNT(kind_names)
             ? kind_names[j->kind] : "unknown");
    snprintf(output, sizeof output, "\"%s\"",
             (size_t)j->output < COUNT(output_names)
                 ? output_names[j->output] : "unknown");
    snprintf(nums[0], sizeof nums[0], "%" PRId64, j->duration_ns);
    snprintf(nums[1], sizeof nums[1], "%" PRId64, j->timeout_ns);
    snprintf(nums[2], sizeof nums[2], "%" PRId64, j->kill_grace_ns);
    snprintf(nums[3], sizeof nums[3], "%u", j->retries);
    snprintf(nums[4], sizeof nums[4], "%" PRId64, j->retry_delay_ns);
    snprintf(nums[5], sizeof nums[5], "%" PRId64, j->retry_max_delay_ns);
    snprintf(nums[6], sizeof nums[6], "%" PRId64, (int64_t)j->output_limit);
    snprintf(nums[7], sizeof nums[7], "%" PRId64, (int64_t)j->seq);
    if (j->id != NULL || chance(st, 20))
        ADD("id", 0, j->id);
    ADD("kind", 2, kind);
    if (j->run != NULL || chance(st, 20))
        ADD("run", 0, j->run);
    if (j->argv != NULL || chance(st, 20))
        ADD("argv", 1, j->argv);
    if (j->env != NULL || chance(st, 20))
        ADD("env", 1, j->env);
    if (j->cwd != NULL || chance(st, 20))
        ADD("cwd", 0, j->cwd);
    if (j->stdin_path != NULL || chance(st, 20))
        ADD("stdin_path", 0, j->stdin_path);
    static const char *const num_keys[] = {
        "duration_ns", "timeout_ns", "kill_grace_ns", "retries",
        "retry_delay_ns", "retry_max_delay_ns", "output_limit", "seq" };
    for (int i = 0; i < 8; i++) {
        if (!chance(st, 10))
            ADD(num_keys[i], 2, chance(st, 5) ? "null" : nums[i]);
    }
    ADD("output", 2, output);
    if (j->output_dir != NULL || chance(st, 20))
        ADD("output_dir", 0, j->output_dir);
    if (!clean) {
        static const char *const extra_keys[] = {
            "id", "kind", "run", "argv", "env", "cwd", "stdin_path", "seq",
            "output", "output_limit", "retries", "future", "", "Id",
            "seq ", "k\\u0069nd", "i\\u0064", "\xc3\xa9" };
        unsigned extras = 1 + below(st, 2);
        for (unsigned i = 0; i < extras && n < 24; i++) {
            const char *v = odd_values[below(st, COUNT(odd_values))];
            ADD(extra_keys[below(st, COUNT(extra_keys))], 2, v);
        }
        if (chance(st, 50) && n > 0) { /* a value of the wrong type */
            size_t i = below(st, (unsigned)n);
            kinds[i] = 2;
            vals[i] = odd_values[below(st, COUNT(odd_values))];
        }
    }
#undef ADD
    for (size_t i = n; i > 1; i--) { /* shuffle */
        if (!chance(st, 50))
            break;
        size_t k = below(st, (unsigned)i);
        const char *tk = keys[i - 1];
        int tt = kinds[i - 1];
        const void *tv = vals[i - 1];
        keys[i - 1] = keys[k];
        kinds[i - 1] = kinds[k];
        vals[i - 1] = vals[k];
        keys[k] = tk;
        kinds[k] = tt;
        vals[k] = tv;
    }
    add_ws(st, b, ws_pct);
    sb_adds(b, "{");
    for (size_t i = 0; i < n; i++) {
        add_ws(st, b, ws_pct);
        if (i > 0) {
            sb_adds(b, ",");
            add_ws(st, b, ws_pct);
        }
        /* keys as they are (some extra keys carry their own escapes) */
        sb_adds(b, "\"");
        sb_adds(b, keys[i]);
        sb_adds(b, "\"");
        add_ws(st, b, ws_pct);
        sb_adds(b, ":");
        add_ws(st, b, ws_pct);
        if (kinds[i] == 2) {
            sb_adds(b, (const char *)vals[i]);
        } else if (vals[i] == NULL) {
            sb_adds(b, "null");
        } else if (kinds[i] == 0) {
            wild_str(st, b, (const char *)vals[i], clean);
        } else {
            char *const *v = (char *const *)vals[i];
            sb_adds(b, "[");
            for (size_t e = 0; v[e] != NULL; e++) {
                add_ws(st, b, ws_pct);
                if (e > 0) {
                    sb_adds(b, ",");
                    add_ws(st, b, ws_pct);
                }
                wild_str(st, b, v[e], clean);
            }
            add_ws(st, b, ws_pct);
            sb_adds(b, "]");
        }
    }
    add_ws(st, b, ws_pct);
    sb_adds(b, "}");
    add_ws(st, b, ws_pct);
}

/* ---- mutations ---------------------------------------------------------- */

static const char *const snippets[] = {
    "null", "1.5", "[1]", "{}", "\"x\"", " ", ",", ":", "\\u00e9",
    "\\ud83d\\ude00", "\\ud83d", "\\u0000", "\\/", "-0", "00", "1e3", "true",
    "\"", "\\", "}", "]", "{", "[", "\xc3", "\x80", "\x01", "\n", "9",
    ",\"x\":1", ",\"seq\":1", ",\"id\":\"d\"",
};

/* A copy of text changed at random (caller frees). */
static char *mutate(uint64_t *st, const char *text)
{
    size_t len = strlen(text);
    sbuf b = { 0 };
    size_t at = len > 0 ? below(st, (unsigned)len) : 0;
    switch (below(st, 4)) {
    case 0: /* truncate */
        sb_add(&b, text, at);
        break;
    case 1: { /* replace one byte */
        static const char bytes[] = "\"\\,:{}[] 09-.enux\x80\xc3\x01\n\t";
        char c = chance(st, 70) ? bytes[below(st, sizeof bytes - 1)]
                                : (char)(1 + below(st, 255));
        sb_add(&b, text, at);
        sb_add(&b, &c, 1);
        if (at < len)
            sb_adds(&b, text + at + 1);
        break;
    }
    case 2: /* insert a snippet */
        sb_add(&b, text, at);
        sb_adds(&b, snippets[below(st, COUNT(snippets))]);
        sb_adds(&b, text + at);
        break;
    default: { /* delete a range */
        size_t n = 1 + below(st, 8);
        sb_add(&b, text, at);
        if (at + n < len)
            sb_adds(&b, text + at + n);
        break;
    }
    }
    if (b.s == NULL)
        sb_adds(&b, "");
    return b.s;
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(test_encode_random)
{
    uint64_t st = 0xC0DEC0DEull;
    static gen g;
    long n = tu_scaled(20000, 1000);
    long invalid = 0;
    for (long i = 0; i < n; i++) {
        belt_job j;
        gen_job(&st, &g, &j, true);
        char *want = oracle_to_json(&j);
        char *got = belt__broker_job_to_json(&j);
        if (want == NULL) {
            ck_assert_msg(g.invalid, "oracle failed on a valid job %ld", i);
            ck_assert_msg(got == NULL, "job %ld: encoded %s, jansson refused "
                          "it", i, got);
            invalid++;
        } else {
            ck_assert_msg(got != NULL, "job %ld: refused, jansson gave %s", i,
                          want);
            ck_assert_msg(strcmp(got, want) == 0, "job %ld:\n got %s\nwant %s",
                          i, got, want);
        }
        free(want);
        free(got);
    }
    /* the generator does make both kinds */
    ck_assert_int_gt(invalid, n / 50);
    ck_assert_int_lt(invalid, n / 2);
    ck_assert_ptr_null(belt__broker_job_to_json(NULL));
}
END_TEST

START_TEST(test_encode_every_byte)
{
    /* each byte value alone, after ASCII and before ASCII */
    for (unsigned c = 1; c < 256; c++) {
        char s[4][8];
        snprintf(s[0], sizeof s[0], "%c", c);
        snprintf(s[1], sizeof s[1], "a%c", c);
        snprintf(s[2], sizeof s[2], "%cb", c);
        snprintf(s[3], sizeof s[3], "\xc3\xa9%c\xc3\xa9", c);
        for (int k = 0; k < 4; k++) {
            belt_job j;
            belt_job_init(&j);
            j.id = s[k];
            j.run = "x";
            char *want = oracle_to_json(&j);
            char *got = belt__broker_job_to_json(&j);
            ck_assert_msg((want == NULL) == (got == NULL), "byte 0x%02x", c);
            if (want != NULL)
                ck_assert_msg(strcmp(want, got) == 0, "byte 0x%02x: %s vs %s",
                              c, got, want);
            same_decode(want != NULL ? want : "{}", want != NULL, NULL);
            free(want);
            free(got);
        }
    }
}
END_TEST

START_TEST(test_decode_random)
{
    uint64_t st = 0xDEC0DEull;
    static gen g;
    long n = tu_scaled(4000, 200);
    long ok = 0, failed = 0;
    for (long i = 0; i < n; i++) {
        belt_job j;
        gen_job(&st, &g, &j, true);
        char *text = oracle_to_json(&j);
        if (text == NULL) { /* invalid UTF-8: as raw bytes in a text */
            sbuf b = { 0 };
            wild_job(&st, &b, &j, true);
            same_decode(b.s, false, &st);
            free(b.s);
            continue;
        }
        /* the encoder's text: fast path whenever it decodes at all */
        char m[256];
        belt_job *d = NULL;
        int rc = oracle_from_json(text, &d, m, sizeof m);
        oracle_free(d);
        same_decode(text, rc == BELT_OK, &st);
        if (rc == BELT_OK)
            ok++;
        else
            failed++;
        for (int k = 0; k < 3; k++) {
            char *bad = mutate(&st, text);
            same_decode(bad, false, &st);
            if (chance(&st, 30)) { /* mutate again */
                char *worse = mutate(&st, bad);
                same_decode(worse, false, &st);
                free(worse);
            }
            free(bad);
        }
        free(text);
    }
    /* both outcomes are exercised */
    ck_assert_int_gt(ok, n / 6);
    ck_assert_int_gt(failed, n / 20);
}
END_TEST

START_TEST(test_decode_wild)
{
    uint64_t st = 0x3117Dull;
    static gen g;
    long n = tu_scaled(4000, 200);
    long fast = 0;
    for (long i = 0; i < n; i++) {
        belt_job j;
        gen_job(&st, &g, &j, false);
        /* clean: same job, other valid JSON */
        sbuf b = { 0 };
        wild_job(&st, &b, &j, true);
        char m[256];
        belt_job *d = NULL;
        int rc = oracle_from_json(b.s, &d, m, sizeof m);
        oracle_free(d);
        if (same_decode(b.s, rc == BELT_OK, &st) == BELT_OK)
            fast++;
        free(b.s);
        /* unknown and duplicate keys, odd values, bad escapes */
        sbuf w = { 0 };
        wild_job(&st, &w, &j, false);
        same_decode(w.s, false, &st);
        char *bad = mutate(&st, w.s);
        same_decode(bad, false, &st);
        free(bad);
        free(w.s);
    }
    ck_assert_int_gt(fast, n / 6);
}
END_TEST

/* Every job the fast path decodes is packed, and the check can tell. */
START_TEST(test_fast_layout)
{
    char *argv[] = { "printf", "%s\\n", "a b", NULL };
    char *env[] = { "A=1", "B=\xc3\xa9", NULL };
    belt_job j;
    belt_job_init(&j);
    j.id = "j1";
    j.argv = argv;
    j.env = env;
    j.cwd = "/tmp";
    j.stdin_path = "/dev/null";
    j.output_dir = "out";
    char *text = belt__broker_job_to_json(&j);
    ck_assert_ptr_nonnull(text);
    belt_job *d = NULL;
    ck_assert_int_eq(belt__broker_job_from_json(text, &d, NULL, 0), BELT_OK);
    ck_assert_int_eq(packed_strings(d), 9);
    belt__broker_job_free(d);
    /* the same with an unknown key goes the jansson way: not packed */
    size_t len = strlen(text);
    text[len - 1] = '\0';
    char *slow = malloc(len + 16);
    ck_assert_ptr_nonnull(slow);
    snprintf(slow, len + 16, "%s,\"new\":1}", text);
    ck_assert_int_eq(belt__broker_job_from_json(slow, &d, NULL, 0), BELT_OK);
    ck_assert_int_eq(packed_strings(d), -1);
    ck_assert_str_eq(d->argv[1], "%s\\n");
    ck_assert_str_eq(d->env[1], "B=\xc3\xa9");
    belt__broker_job_free(d);
    free(slow);
    free(text);
}
END_TEST

START_TEST(test_decode_cases)
{
    static const char *const cases[] = {
        "", " ", "{", "}", "[]", "null", "1", "\"x\"", "{}", " {} ",
        "{\"kind\":\"noop\"}", " \t\r\n{\"kind\" : \"noop\" } \n",
        "{\"kind\":\"noop\"} x", "{\"kind\":\"noop\"}}",
        "{\"kind\":\"noop\",}",
        "{,\"kind\":\"noop\"}", "{\"kind\":\"noop\"",
        "{\"kind\":\"noop\",\"kind\":\"noop\"}",
        "{\"kind\":null,\"run\":\"x\"}", "{\"run\":\"x\"}",
        "{\"argv\":[]}", "{\"argv\":[],\"run\":\"x\"}", "{\"argv\":null}",
        "{\"argv\":[\"a\",]}", "{\"argv\":[,\"a\"]}", "{\"argv\":[\"a\"  ]}",
        "{\"argv\":[ \"a\" , \"b\" ]}", "{\"argv\":[\"a\",null]}",
        "{\"argv\":[\"a\",1]}", "{\"argv\":\"a\"}", "{\"argv\":{}}",
        "{\"env\":[],\"run\":\"x\"}", "{\"env\":[\"A=1\"],\"run\":\"x\"}",
        "{\"kind\":\"noop\",\"seq\":9223372036854775807}",
        "{\"kind\":\"noop\",\"seq\":9223372036854775808}",
        "{\"kind\":\"noop\",\"seq\":-1}", "{\"kind\":\"noop\",\"seq\":-0}",
        "{\"kind\":\"noop\",\"seq\":0}", "{\"kind\":\"noop\",\"seq\":00}",
        "{\"kind\":\"noop\",\"seq\":01}", "{\"kind\":\"noop\",\"seq\":1.0}",
        "{\"kind\":\"noop\",\"seq\":1e3}", "{\"kind\":\"noop\",\"seq\":1E3}",
        "{\"kind\":\"noop\",\"seq\":-}", "{\"kind\":\"noop\",\"seq\":+1}",
        "{\"kind\":\"noop\",\"seq\":1x}", "{\"kind\":\"noop\",\"seq\":\"1\"}",
        "{\"kind\":\"noop\",\"duration_ns\":-9223372036854775808}",
        "{\"kind\":\"noop\",\"duration_ns\":-9223372036854775809}",
        "{\"kind\":\"noop\",\"duration_ns\":9223372036854775807}",
        "{\"kind\":\"noop\",\"duration_ns\":12345678901234567890}",
        "{\"kind\":\"noop\",\"duration_ns\":123456789012345678901}",
        "{\"kind\":\"noop\",\"duration_ns\":0000000000000000000001}",
        "{\"kind\":\"noop\",\"retries\":4294967295}",
        "{\"kind\":\"noop\",\"retries\":4294967296}",
        "{\"kind\":\"noop\",\"retries\":-1}",
        "{\"kind\":\"noop\",\"output_limit\":9223372036854775807}",
        "{\"kind\":\"noop\",\"output_limit\":-9223372036854775808}",
        "{\"kind\":\"noop\",\"output\":\"files\"}",
        "{\"kind\":\"noop\",\"output\":\"File\"}",
        "{\"kind\":\"noop\",\"output\":\"fil\\u0065s\"}",
        "{\"kind\":\"noop\",\"output\":\"files\\u0000\"}",
        "{\"kind\":\"noop\",\"output\":7}",
        "{\"kind\":\"noop\",\"output\":null}",
        "{\"kind\":\"n\\u006fop\"}", "{\"k\\u0069nd\":\"noop\"}",
        "{\"kind\":\"nope\"}", "{\"kind\":\"unknown\",\"run\":\"x\"}",
        "{\"kind\":\"noop\",\"id\":\"\\u00e9\"}",
        "{\"kind\":\"noop\",\"id\":\"\\u00E9\\u20ac\\uFFFF\"}",
        "{\"kind\":\"noop\",\"id\":\"\\ud83d\\ude00\"}",
        "{\"kind\":\"noop\",\"id\":\"\\uD83D\\uDE00\"}",
        "{\"kind\":\"noop\",\"id\":\"\\ud83d\"}",
        "{\"kind\":\"noop\",\"id\":\"\\ud83dx\"}",
        "{\"kind\":\"noop\",\"id\":\"\\ud83d\\u0041\"}",
        "{\"kind\":\"noop\",\"id\":\"\\ude00\\ud83d\"}",
        "{\"kind\":\"noop\",\"id\":\"\\udbff\\udfff\"}",
        "{\"kind\":\"noop\",\"id\":\"\\u0000\"}",
        "{\"kind\":\"noop\",\"id\":\"\\u0001\\u001F\\u007f\"}",
        "{\"kind\":\"noop\",\"id\":\"\\u12\"}",
        "{\"kind\":\"noop\",\"id\":\"\\u12g4\"}",
        "{\"kind\":\"noop\",\"id\":\"\\x41\"}",
        "{\"kind\":\"noop\",\"id\":\"\\/\\\\\\\"\\b\\f\\n\\r\\t\"}",
        "{\"kind\":\"noop\",\"id\":\"a\tb\"}",
        "{\"kind\":\"noop\",\"id\":\"a\x7f" "b\"}",
        "{\"kind\":\"noop\",\"id\":\"\xc3\xa9\"}",
        "{\"kind\":\"noop\",\"id\":\"\xc3\"}",
        "{\"kind\":\"noop\",\"id\":\"\xed\xa0\x80\"}",
        "{\"kind\":\"noop\",\"id\":\"\xf4\x90\x80\x80\"}",
        "{\"kind\":\"noop\",\"id\":\"\xc0\xaf\"}",
        "{\"kind\":\"noop\",\"id\":\"abc",
        "{\"kind\":\"noop\",\"id\":\"abc\\",
        "{\"kind\":\"noop\",\"id\":\"abc\\u00",
        "{\"kind\":\"noop\",\"id\":1}", "{\"kind\":\"noop\",\"id\":null}",
        "{\"kind\":\"noop\",\"id\":true}", "{\"kind\":\"noop\",\"id\":nul}",
        "{\"kind\":\"noop\",\"id\":nulls}", "{\"kind\":\"noop\",\"id\":NULL}",
        "{\"kind\":\"noop\",\"cwd\":\"\",\"stdin_path\":\"\"}",
        "{\"kind\":\"noop\",\"future\":{\"a\":[1,2,{}]}}",
        "{\"kind\":\"noop\",\"\":1}", "{\"kind\":\"noop\",\"\\u0000\":1}",
        "\xef\xbb\xbf{\"kind\":\"noop\"}", "{\"kind\":\"noop\"}\xc3",
        "{'kind':'noop'}", "{kind:\"noop\"}", "{\"kind\"\"noop\"}",
        "{\"kind\":\"noop\" \"seq\":1}",
        "{\"kind\":\"exec\",\"run\":\"x\",\"argv\":[\"x\"]}",
        "{\"kind\":\"exec\",\"run\":null,\"argv\":[\"x\"]}",
        "{\"kind\":\"exec\",\"run\":\"\"}",
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        same_decode(cases[i], false, NULL);
    /* and the ones that must take the fast path */
    static const char *const fast[] = {
        "{\"kind\":\"noop\",\"id\":\"x\",\"cwd\":\"y\"}",
        " {\"cwd\" : \"y\" ,\n\"id\":\"x\",\"kind\":\"noop\"}\n",
        "{\"id\":\"\\u00e9\\ud83d\\ude00\\/\",\"run\":\"\\\"\\\\\"}",
        "{\"id\":\"a\",\"argv\":[],\"env\":[\"A=1\",\"B\"]}",
        "{\"id\":\"a\",\"run\":\"b\",\"seq\":18,\"duration_ns\":-0,"
        "\"timeout_ns\":-9223372036854775808,"
        "\"kill_grace_ns\":9223372036854775807,\"retries\":4294967295,"
        "\"output\":\"discard\",\"output_limit\":null}",
    };
    for (size_t i = 0; i < COUNT(fast); i++)
        same_decode(fast[i], true, NULL);
    /* arguments */
    belt_job *d = NULL;
    char m1[64], m2[64];
    ck_assert_int_eq(belt__broker_job_from_json(NULL, &d, m1, sizeof m1),
                     oracle_from_json(NULL, &d, m2, sizeof m2));
    ck_assert_str_eq(m1, m2);
    ck_assert_int_eq(belt__broker_job_from_json("{}", NULL, m1, sizeof m1),
                     BELT_EINVAL);
    ck_assert_ptr_null(d);
    belt__broker_job_free(NULL);
}
END_TEST

START_TEST(test_result_random)
{
    uint64_t st = 0x4E5017ull;
    static gen g;
    long n = tu_scaled(2000, 100);
    long refused = 0;
    for (long i = 0; i < n; i++) {
        belt_job j;
        gen_job(&st, &g, &j, false);
        belt_result *r = belt_result_new(&j);
        ck_assert_ptr_nonnull(r);
        r->status = (belt_job_status)below(&st, 6);
        r->exit_code = (int)below(&st, 3) - 1;
        r->worker = (int)below(&st, 8);
        r->started_ns = (int64_t)(rnd(&st) >> 2);
        r->ended_ns = r->started_ns + (int64_t)below(&st, 1000000);
        if (chance(&st, 30)) {
            r->out = strdup("\"worker\":null in the output");
            ck_assert_ptr_nonnull(r->out);
            r->out_len = strlen(r->out);
        }
        g.invalid = false; /* the job's strings stay in g */
        const char *host = chance(&st, 10) ? NULL : gen_str(&st, &g, true);
        const char *wid = chance(&st, 10) ? NULL : gen_str(&st, &g, true);
        unsigned delivery = chance(&st, 10) ? UINT32_MAX : below(&st, 10);
        size_t l1 = 0, l2 = 0;
        char *want = oracle_result_json(r, host, wid, delivery, &l2);
        char *got = belt__broker_result_json(r, host, wid, delivery, &l1);
        ck_assert_msg((want == NULL) == (got == NULL), "result %ld", i);
        if (want != NULL) {
            ck_assert_str_eq(got, want);
            ck_assert_uint_eq(l1, l2);
            ck_assert_uint_eq(l1, strlen(got));
        } else {
            ck_assert(g.invalid);
            refused++;
        }
        free(want);
        free(got);
        belt_result_free(r);
    }
    ck_assert_int_gt(refused, 0);
    ck_assert_ptr_null(belt__broker_result_json(NULL, "h", "w", 1, NULL));
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("encode");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_encode_random);
    tcase_add_test(tc, test_encode_every_byte);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_decode_random);
    tcase_add_test(tc, test_decode_wild);
    suite_add_tcase(s, tc);
    tc = tcase_create("fast");
    tcase_add_test(tc, test_fast_layout);
    suite_add_tcase(s, tc);
    tc = tcase_create("cases");
    tcase_add_test(tc, test_decode_cases);
    suite_add_tcase(s, tc);
    tc = tcase_create("result");
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_result_random);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(codec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
