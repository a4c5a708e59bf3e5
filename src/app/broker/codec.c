/* app/broker/codec.c: a belt_job as JSON on the wire, and the result record a
 * worker publishes.
 *
 * Jobs.  Every field of belt_job except the caller's `user` pointer is
 * written as one JSON object with the field names of belt/job.h (id, kind,
 * run or argv, env, cwd, stdin_path, duration_ns, timeout_ns,
 * kill_grace_ns, retries, retry_delay_ns, retry_max_delay_ns, output,
 * output_limit, output_dir, seq).  Enumerations travel by name ("exec",
 * "capture"), not by number, so that two belt versions that number them
 * differently still agree, and a worker refuses a name it does not know
 * instead of running the wrong thing.  NULL strings are left out.  Nanosecond
 * times are JSON integers (64-bit; output_limit and seq are written as
 * int64_t, so a seq above INT64_MAX goes out negative and is refused by the
 * decoder).  Decoding is lenient about what is missing (belt_job_init()'s
 * defaults) and unknown keys (ignored: a newer submitter may add some),
 * strict about types, and refuses duplicate keys.
 *
 * The codec runs once per job on each side, so it is written for speed
 * (bench/codec_bench.c counts its instructions; jansson took ten to twenty
 * times as many):
 *
 *   Encoding writes the text directly, in two passes over the job: the
 *   first adds up an upper bound of the size (exact for the strings, 20
 *   bytes per integer) and checks that every string is valid UTF-8, the
 *   second writes into one malloc'd buffer.  The text is byte for byte what
 *   jansson 2.14's json_dumps(JSON_COMPACT) made of the same object, which
 *   the code did before: keys in the order above, no spaces, strings
 *   escaped as jansson's dump.c does (\" \\ \b \f \n \r \t, other control
 *   characters as \u00XX with upper-case hex, '/' and bytes >= 0x7F kept as
 *   they are) and refused (NULL) when not valid UTF-8 as json_string()
 *   refuses them (RFC 3629: no overlong forms, surrogates or values above
 *   U+10FFFF).  tests/unit/check_codec.c keeps the jansson encoder as an oracle.
 *
 *   Decoding first tries the fast path (app/broker/decode.c: a restricted
 *   parser for the shape the encoder writes, which gives up on anything
 *   else without side effects); then the jansson decoder here runs: it
 *   decides what is an error and words the message, so errors and
 *   leniency are jansson's exactly.
 *
 * A decoded job owns its strings: it is the first member of a
 * belt__wire_job (app/broker/codec.h) that also holds the arrays, so
 * belt__broker_job_free() can find them from the belt_job pointer.
 *
 * Results.  The record is exactly the JSON Lines object `belt run` writes
 * (src/app/report.c), so the submitter can write it through unchanged, with
 * the local pool's integer "worker" slot replaced by the broker worker's id
 * string and "host" and "delivery" added after it.  Rather than parse the
 * record back, the worker serialises a copy of the result with worker = -1,
 * which app/report.c writes as "worker":null, and splices the three keys in at
 * that spot.  This is safe: inside a JSON string every '"' is escaped, so the
 * byte sequence "worker":null can only be the key itself, and jansson (>=
 * 2.8) keeps keys in insertion order, so it comes before any user output.
 * The host and worker id strings are escaped by the same code as the jobs'.
 *
 * No state: pure functions over the caller's objects.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "app/broker/codec.h"
#include "app/report.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/err.h"


static char *put_lit(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

#define PUT(w, lit) put_lit((w), (lit), sizeof(lit) - 1)

/* ---- encoding ----------------------------------------------------------- */

/* Adds the written size of string s ("..." or nothing for NULL) to *size;
 * false when s is not valid UTF-8. */
static bool size_str(size_t *size, const char *s)
{
    if (s == NULL)
        return true;
    size_t n = belt__json_str_len(s);
    if (n == SIZE_MAX)
        return false;
    *size += n + 2;
    return true;
}

/* Adds the written size of a NULL-terminated string array's elements
 * ("a","b") to *size; false when one is not valid UTF-8. */
static bool size_strv(size_t *size, char *const *v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        if (!size_str(size, v[i]))
            return false;
        *size += 1; /* ',' */
    }
    return true;
}

static char *put_strv(char *w, char *const *v)
{
    *w++ = '[';
    for (size_t i = 0; v[i] != NULL; i++) {
        if (i > 0)
            *w++ = ',';
        w = belt__json_put_str(w, v[i]);
    }
    *w++ = ']';
    return w;
}

/* Every key with its punctuation, and the brackets: the fixed part of the
 * size bound. */
#define JOB_KEYS                                                             \
    "{\"id\":,\"kind\":,\"run\":,\"argv\":[],\"env\":[],\"cwd\":,"           \
    "\"stdin_path\":,\"duration_ns\":,\"timeout_ns\":,\"kill_grace_ns\":,"   \
    "\"retries\":,\"retry_delay_ns\":,\"retry_max_delay_ns\":,\"output\":,"  \
    "\"output_limit\":,\"output_dir\":,\"seq\":}"
#define JOB_INTS 8 /* integer values, at most 20 bytes each */

char *belt__broker_job_to_json(const belt_job *job)
{
    if (job == NULL)
        return NULL;
    const char *kind = belt_job_kind_name(job->kind);
    const char *output = belt_output_mode_name(job->output);
    size_t size = sizeof JOB_KEYS + JOB_INTS * 20 + strlen(kind) +
                  strlen(output) + 4;
    if (!size_str(&size, job->id) || !size_str(&size, job->run) ||
        !size_strv(&size, job->argv) || !size_strv(&size, job->env) ||
        !size_str(&size, job->cwd) || !size_str(&size, job->stdin_path) ||
        !size_str(&size, job->output_dir))
        return NULL;
    char *out = malloc(size);
    if (out == NULL)
        return NULL;
    char *w = out;
    *w++ = '{';
    if (job->id != NULL) {
        w = PUT(w, "\"id\":");
        w = belt__json_put_str(w, job->id);
        *w++ = ',';
    }
    w = PUT(w, "\"kind\":\"");
    w = put_lit(w, kind, strlen(kind));
    *w++ = '"';
    if (job->run != NULL) {
        w = PUT(w, ",\"run\":");
        w = belt__json_put_str(w, job->run);
    }
    if (job->argv != NULL) {
        w = PUT(w, ",\"argv\":");
        w = put_strv(w, job->argv);
    }
    if (job->env != NULL) {
        w = PUT(w, ",\"env\":");
        w = put_strv(w, job->env);
    }
    if (job->cwd != NULL) {
        w = PUT(w, ",\"cwd\":");
        w = belt__json_put_str(w, job->cwd);
    }
    if (job->stdin_path != NULL) {
        w = PUT(w, ",\"stdin_path\":");
        w = belt__json_put_str(w, job->stdin_path);
    }
    w = PUT(w, ",\"duration_ns\":");
    w = belt__put_i64(w, job->duration_ns);
    w = PUT(w, ",\"timeout_ns\":");
    w = belt__put_i64(w, job->timeout_ns);
    w = PUT(w, ",\"kill_grace_ns\":");
    w = belt__put_i64(w, job->kill_grace_ns);
    w = PUT(w, ",\"retries\":");
    w = belt__put_i64(w, (int64_t)job->retries);
    w = PUT(w, ",\"retry_delay_ns\":");
    w = belt__put_i64(w, job->retry_delay_ns);
    w = PUT(w, ",\"retry_max_delay_ns\":");
    w = belt__put_i64(w, job->retry_max_delay_ns);
    w = PUT(w, ",\"output\":\"");
    w = put_lit(w, output, strlen(output));
    *w++ = '"';
    w = PUT(w, ",\"output_limit\":");
    w = belt__put_i64(w, (int64_t)job->output_limit);
    if (job->output_dir != NULL) {
        w = PUT(w, ",\"output_dir\":");
        w = belt__json_put_str(w, job->output_dir);
    }
    w = PUT(w, ",\"seq\":");
    w = belt__put_i64(w, (int64_t)job->seq);
    *w++ = '}';
    *w = '\0';
    return out;
}

void belt__broker_job_free(belt_job *job)
{
    if (job == NULL)
        return;
    belt__wire_job *w = (belt__wire_job *)job;
    if (w->packed) {
        free(w);
        return;
    }
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

/* ---- decoding: the jansson path ----------------------------------------- */

/* Decoding helpers: each returns BELT_OK, BELT_EINVAL with msg set, or
 * BELT_ENOMEM. */

static int get_str(json_t *o, const char *k, char **out, char *msg, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return BELT_OK;
    if (!json_is_string(v)) {
        return belt__errf(msg, n, BELT_EINVAL,
                          "job JSON: \"%s\" must be a string", k);
    }
    *out = strdup(json_string_value(v));
    return *out == NULL ? BELT_ENOMEM : BELT_OK;
}

static int get_i64(json_t *o, const char *k, int64_t *out, char *msg,
                   size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return BELT_OK;
    if (!json_is_integer(v)) {
        return belt__errf(msg, n, BELT_EINVAL,
                          "job JSON: \"%s\" must be an integer", k);
    }
    *out = (int64_t)json_integer_value(v);
    return BELT_OK;
}

static int get_u64(json_t *o, const char *k, uint64_t *out, uint64_t max,
                   char *msg, size_t n)
{
    int64_t v = 0;
    json_t *j = json_object_get(o, k);
    if (j == NULL || json_is_null(j))
        return BELT_OK;
    int rc = get_i64(o, k, &v, msg, n);
    if (rc != BELT_OK)
        return rc;
    if (v < 0 || (uint64_t)v > max) {
        return belt__errf(msg, n, BELT_EINVAL,
                          "job JSON: \"%s\" out of range", k);
    }
    *out = (uint64_t)v;
    return BELT_OK;
}

static int get_name(json_t *o, const char *k, const char *const *names,
                    size_t count, int *out, char *msg, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return BELT_OK;
    if (json_is_string(v)) {
        for (size_t i = 0; i < count; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = (int)i;
                return BELT_OK;
            }
        }
    }
    belt__buf known = { 0 };
    for (size_t i = 0; i < count; i++) {
        belt__buf_addc(&known, ' ');
        belt__buf_adds(&known, names[i]);
    }
    int rc = belt__errf(msg, n, BELT_EINVAL,
                        "job JSON: unknown \"%s\" (this worker knows%s)", k,
                        belt__buf_str(&known));
    belt__buf_free(&known);
    return rc;
}

static int get_strv(json_t *o, const char *k, char ***out, char *msg,
                    size_t n)
{
    json_t *v = json_object_get(o, k);
    if (v == NULL || json_is_null(v))
        return BELT_OK;
    if (!json_is_array(v)) {
        return belt__errf(msg, n, BELT_EINVAL,
                          "job JSON: \"%s\" must be an array of strings", k);
    }
    size_t count = json_array_size(v);
    char **a = calloc(count + 1, sizeof *a);
    if (a == NULL)
        return BELT_ENOMEM;
    *out = a; /* freed with the job, also when partly filled */
    for (size_t i = 0; i < count; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            return belt__errf(msg, n, BELT_EINVAL,
                              "job JSON: \"%s\"[%zu] must be a string", k, i);
        }
        a[i] = strdup(json_string_value(e));
        if (a[i] == NULL)
            return BELT_ENOMEM;
    }
    return BELT_OK;
}

/* The decoder of every text the fast path gives up on: decides what is an
 * error and says so.  Arguments checked by the caller. */
static int decode_jansson(const char *text, belt_job **out, char *msg,
                          size_t n)
{
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL) {
        return belt__errf(msg, n, BELT_EINVAL,
                          "job JSON: %s (column %d)", err.text, err.column);
    }
    if (!json_is_object(o)) {
        json_decref(o);
        return belt__errf(msg, n, BELT_EINVAL, "job JSON: expected an object");
    }
    belt__wire_job *w = calloc(1, sizeof *w);
    if (w == NULL) {
        json_decref(o);
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    belt_job *j = &w->job;
    belt_job_init(j);
    int kind = (int)j->kind, output = (int)j->output;
    uint64_t retries = j->retries, limit = j->output_limit, seq = 0;
    int rc = get_str(o, "id", &w->id, msg, n);
    if (rc == BELT_OK) rc = get_name(o, "kind", belt__kind_names,
                               BELT__NKINDS,
                               &kind, msg, n);
    if (rc == BELT_OK) rc = get_str(o, "run", &w->run, msg, n);
    if (rc == BELT_OK) rc = get_strv(o, "argv", &w->argv, msg, n);
    if (rc == BELT_OK) rc = get_strv(o, "env", &w->env, msg, n);
    if (rc == BELT_OK) rc = get_str(o, "cwd", &w->cwd, msg, n);
    if (rc == BELT_OK) rc = get_str(o, "stdin_path", &w->stdin_path, msg, n);
    if (rc == BELT_OK) rc = get_i64(o, "duration_ns", &j->duration_ns, msg, n);
    if (rc == BELT_OK) rc = get_i64(o, "timeout_ns", &j->timeout_ns, msg, n);
    if (rc == BELT_OK) rc = get_i64(o, "kill_grace_ns", &j->kill_grace_ns, msg, n);
    if (rc == BELT_OK) rc = get_u64(o, "retries", &retries, UINT32_MAX, msg, n);
    if (rc == BELT_OK) rc = get_i64(o, "retry_delay_ns", &j->retry_delay_ns, msg, n);
    if (rc == BELT_OK) rc = get_i64(o, "retry_max_delay_ns",
                              &j->retry_max_delay_ns, msg, n);
    if (rc == BELT_OK) rc = get_name(o, "output", belt__output_names,
                               BELT__NOUTPUTS, &output, msg, n);
    if (rc == BELT_OK) rc = get_u64(o, "output_limit", &limit, SIZE_MAX, msg, n);
    if (rc == BELT_OK) rc = get_str(o, "output_dir", &w->output_dir, msg, n);
    if (rc == BELT_OK) rc = get_u64(o, "seq", &seq, UINT64_MAX, msg, n);
    json_decref(o);
    if (rc == BELT_OK && kind == BELT_JOB_EXEC && (w->run == NULL) ==
                                                (w->argv == NULL)) {
        rc = belt__errf(msg, n, BELT_EINVAL, "job JSON: an exec job needs "
                        "exactly one of \"run\" and \"argv\"");
    }
    if (rc != BELT_OK) {
        belt__broker_job_free(j);
        return rc == BELT_ENOMEM ? belt__errf(msg, n, rc,
                                              "out of memory") : rc;
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

int belt__broker_job_from_json(const char *text, belt_job **out, char *msg,
                               size_t n)
{
    char dummy[8];
    if (msg == NULL || n == 0) {
        msg = dummy;
        n = sizeof dummy;
    }
    msg[0] = '\0';
    if (text == NULL || out == NULL) {
        return belt__errf(msg, n, BELT_EINVAL, "no job JSON");
    }
    int rc = belt__broker_decode_fast(text, out);
    if (rc == BELT_ENOMEM) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    return rc == BELT_OK ? BELT_OK : decode_jansson(text, out, msg, n);
}

/* ---- result records ----------------------------------------------------- */

char *belt__broker_result_json(const belt_result *r, const char *host,
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
    const char *hs = host != NULL ? host : "";
    const char *ws = worker_id != NULL ? worker_id : "";
    const char *at = strstr(line, key);
    size_t hl = belt__json_str_len(hs), wl = belt__json_str_len(ws);
    char *out = NULL;
    if (at != NULL && hl != SIZE_MAX && wl != SIZE_MAX) {
        size_t head = (size_t)(at - line), klen = sizeof key - 1;
        size_t tail = line_len - head - klen;
        size_t total = head + sizeof "\"worker\":\"\",\"host\":\"\""
                       ",\"delivery\":" + 10 + wl + hl + tail;
        out = malloc(total);
        if (out != NULL) {
            char *w = put_lit(out, line, head);
            w = PUT(w, "\"worker\":");
            w = belt__json_put_str(w, ws);
            w = PUT(w, ",\"host\":");
            w = belt__json_put_str(w, hs);
            w = PUT(w, ",\"delivery\":");
            w = belt__put_i64(w, (int64_t)delivery);
            w = put_lit(w, at + klen, tail);
            *w = '\0';
            if (len != NULL)
                *len = (size_t)(w - out);
        }
    }
    free(line);
    return out;
}
