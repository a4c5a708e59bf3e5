/* broker_codec.c: a belt_job as JSON on the wire, and the result record a
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
 * times are JSON integers (jansson's json_int_t is 64-bit).  Decoding is
 * lenient about what is missing (belt_job_init()'s defaults) and unknown
 * keys (ignored: a newer submitter may add some), strict about types.
 *
 * A decoded job owns its strings: it is the first member of a `wire_job`
 * that also holds the arrays, so belt__broker_job_free() can find them from
 * the belt_job pointer.
 *
 * Results.  The record is exactly the JSON Lines object `belt run` writes
 * (src/report.c), so the submitter can write it through unchanged, with the
 * local pool's integer "worker" slot replaced by the broker worker's id
 * string and "host" and "delivery" added after it.  Rather than parse the
 * record back, the worker serialises a copy of the result with worker = -1,
 * which report.c writes as "worker":null, and splices the three keys in at
 * that spot.  This is safe: inside a JSON string every '"' is escaped, so the
 * byte sequence "worker":null can only be the key itself, and jansson (>=
 * 2.8) keeps keys in insertion order, so it comes before any user output.
 *
 * No state: pure functions over the caller's objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "belt/error.h"
#include "broker.h"
#include "report.h"

typedef struct wire_job {
    belt_job job;     /* first: a belt_job * is a wire_job * */
    char *id, *run, *cwd, *stdin_path, *output_dir;
    char **argv, **env; /* NULL-terminated, each string owned */
} wire_job;

static const char *const kind_names[] = { "exec", "sleep", "spin", "noop" };
static const char *const output_names[] = { "capture", "files", "group",
                                            "lines", "inherit", "discard" };

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int set(json_t *o, const char *k, json_t *v)
{
    return json_object_set_new(o, k, v) == 0 && v != NULL ? 0 : -1;
}

static int set_str(json_t *o, const char *k, const char *s)
{
    return s == NULL ? 0 : set(o, k, json_string(s));
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

char *belt__broker_job_to_json(const belt_job *job)
{
    if (job == NULL)
        return NULL;
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= set_str(o, "id", job->id);
    rc |= set(o, "kind", json_string((size_t)job->kind < COUNT(kind_names)
                                         ? kind_names[job->kind] : "unknown"));
    rc |= set_str(o, "run", job->run);
    if (job->argv != NULL)
        rc |= set(o, "argv", str_array(job->argv));
    if (job->env != NULL)
        rc |= set(o, "env", str_array(job->env));
    rc |= set_str(o, "cwd", job->cwd);
    rc |= set_str(o, "stdin_path", job->stdin_path);
    rc |= set(o, "duration_ns", json_integer(job->duration_ns));
    rc |= set(o, "timeout_ns", json_integer(job->timeout_ns));
    rc |= set(o, "kill_grace_ns", json_integer(job->kill_grace_ns));
    rc |= set(o, "retries", json_integer(job->retries));
    rc |= set(o, "retry_delay_ns", json_integer(job->retry_delay_ns));
    rc |= set(o, "retry_max_delay_ns", json_integer(job->retry_max_delay_ns));
    rc |= set(o, "output",
              json_string((size_t)job->output < COUNT(output_names)
                              ? output_names[job->output] : "unknown"));
    rc |= set(o, "output_limit", json_integer((json_int_t)job->output_limit));
    rc |= set_str(o, "output_dir", job->output_dir);
    rc |= set(o, "seq", json_integer((json_int_t)job->seq));
    char *s = rc == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void belt__broker_job_free(belt_job *job)
{
    if (job == NULL)
        return;
    wire_job *w = (wire_job *)job;
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

/* Decoding helpers: each returns 0, or -1 with msg set (BELT_EINVAL) or -2
 * (out of memory). */

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
    wire_job *w = calloc(1, sizeof *w);
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
        belt__broker_job_free(j);
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
