/* config/load.c: loading and validating a JSON job config.
 *
 * The loader reads the whole text, parses it with jansson (duplicate keys
 * rejected, any top-level value accepted so that a non-object gets our own
 * message), and then validates in one pass that stops at the first error:
 *
 *   1. top-level keys (unknown ones get a "did you mean"), workers, policy,
 *      results, halt_on_error;
 *   2. "defaults", into a template of job values (env kept as a list);
 *   3. each job: its matrix first (the placeholders in its other strings
 *      depend on the matrix keys), then every key in document order, then
 *      the rules between keys (run xor argv, kind needs a duration, id
 *      uses every matrix key...).  Defaults are merged here: a job starts
 *      as a copy of the defaults; env entries it sets replace the default
 *      entry of the same name in place, new names are appended;
 *   4. ids: the id index over every expanded job (config/matrix.c) finds
 *      duplicates;
 *   5. dependencies: config/deps.c resolves every "after" pattern and
 *      looks for cycles.
 *
 * Errors come out as one line "source:line:col: path: text"
 * (config/locate.c).  The jansson tree is dropped before returning: the
 * config keeps only its templates (strings and matrix values), the
 * dependency groups, and a few top-level settings.  Invariants of a loaded
 * config: 1 <= njobs <= BELT_CONFIG_MAX_JOBS; templates cover the seqs in
 * order without gaps; every job id is distinct and non-empty; every
 * template has a kind whose required fields are set; the template graph of
 * "after" is acyclic.
 *
 * No global mutable state: the key tables are constant.
 */
#include "config/internal.h"

#include "belt/error.h"
#include "exec/exec.h"
#include "pool/policy.h"
#include "util/cpu.h"
#include "util/path.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the vocabulary ----------------------------------------------------- */

static const char *const top_keys[] = {
    "workers", "policy", "defaults", "jobs", "results", "halt_on_error",
    "description", "$schema", NULL
};

static const char *const job_keys[] = {
    "id", "description", "kind", "run", "argv", "env", "cwd", "stdin",
    "timeout", "kill_grace", "duration", "retries", "retry_delay",
    "retry_max_delay", "output", "output_limit", "output_dir", "after",
    "matrix", NULL
};

static const char *const default_keys[] = {
    "kind", "env", "cwd", "stdin", "timeout", "kill_grace", "duration",
    "retries", "retry_delay", "retry_max_delay", "output", "output_limit",
    "output_dir", NULL
};

/* Names other tools use for our keys: suggested before edit distance. */
static const belt__alias aliases[] = {
    { "depends_on", "after" }, { "depends", "after" }, { "needs", "after" },
    { "deps", "after" },       { "requires", "after" }, { "command", "run" },
    { "cmd", "run" },          { "script", "run" },     { "shell", "run" },
    { "args", "argv" },        { "name", "id" },        { "environment", "env" },
    { "workdir", "cwd" },      { "working_dir", "cwd" }, { "dir", "cwd" },
    { "directory", "cwd" },    { "retry", "retries" },  { "input", "stdin" },
    { "threads", "workers" },  { "concurrency", "workers" },
    { "parallel", "workers" }, { "parallelism", "workers" },
    { "sleep", "duration" },   { "type", "kind" },
};

#define MAX_RETRIES BELT_CONFIG_MAX_RETRIES
#define MAX_OUTPUT_LIMIT ((uint64_t)1 << 40)

/* ---- small helpers ------------------------------------------------------ */

static int list_index(const char *s, const char *const *list)
{
    for (int i = 0; list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return i;
    return -1;
}

static char *dup_str(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* Replaces *slot by a copy of s.  BELT_OK or BELT_ENOMEM. */
static int set_str(char **slot, const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        return BELT_ENOMEM;
    free(*slot);
    *slot = d;
    return BELT_OK;
}

/* Fails for an unknown key `key` of the object at p, suggesting a known one
 * from `allowed`. */
static int unknown_key(belt__lctx *c, const belt__jpath *p, const char *key,
                       const char *const *allowed)
{
    belt__jpath q = belt__jp_key(p, key);
    const char *hint = belt__key_hint(key, allowed, aliases,
                                      sizeof aliases / sizeof aliases[0]);
    return belt__fail_unknown(c, &q, true, "key", key, allowed, hint);
}

/* Fails for an unknown name in an enumeration (policy, kind, output). */
static int unknown_name(belt__lctx *c, const belt__jpath *p, const char *what,
                        const char *name, const char *const *names)
{
    return belt__fail_unknown(c, p, false, what, name, names, NULL);
}

static int want_string(belt__lctx *c, const belt__jpath *p, const json_t *v,
                       bool nonempty, const char **out)
{
    if (!json_is_string(v))
        return belt__fail(c, p, false, "expected a string (got %s)",
                          belt__jtype(v));
    if (nonempty && json_string_length(v) == 0)
        return belt__fail(c, p, false, "must not be empty");
    *out = json_string_value(v);
    return BELT_OK;
}

static int want_duration(belt__lctx *c, const belt__jpath *p, const json_t *v,
                         int64_t *ns)
{
    if (json_is_string(v)) {
        if (belt_parse_duration(json_string_value(v), ns) == BELT_OK)
            return BELT_OK;
    } else if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s >= 0 && s <= INT64_MAX / 1000000000) {
            *ns = (int64_t)s * 1000000000;
            return BELT_OK;
        }
    } else if (json_is_real(v)) {
        double s = json_real_value(v);
        if (s >= 0 && s * 1e9 < 9.2e18) {
            *ns = (int64_t)(s * 1e9);
            return BELT_OK;
        }
    }
    return belt__fail(c, p, false, "expected a duration like \"30s\"");
}

/* "1048576", "512KiB", "1MiB", "10MB", "1G": K, M, G and *iB are powers of
 * 1024, kB/KB, MB, GB powers of 1000. */
static bool parse_size(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    static const struct {
        const char *unit;
        uint64_t mul;
    } units[] = {
        { "", 1 },           { "B", 1 },
        { "K", 1ull << 10 }, { "k", 1ull << 10 }, { "KiB", 1ull << 10 },
        { "KB", 1000 },      { "kB", 1000 },
        { "M", 1ull << 20 }, { "MiB", 1ull << 20 }, { "MB", 1000000 },
        { "G", 1ull << 30 }, { "GiB", 1ull << 30 }, { "GB", 1000000000 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return false;
            *out = v * units[i].mul;
            return true;
        }
    }
    return false;
}

static int want_size(belt__lctx *c, const belt__jpath *p, const json_t *v,
                     size_t *out)
{
    uint64_t n = 0;
    bool ok = false;
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        n = (uint64_t)json_integer_value(v);
        ok = true;
    } else if (json_is_string(v)) {
        ok = parse_size(json_string_value(v), &n) && n > 0;
    }
    if (!ok)
        return belt__fail(c, p, false,
                          "expected a size like \"1MiB\" or a number of bytes");
    if (n > MAX_OUTPUT_LIMIT || n > SIZE_MAX)
        return belt__fail(c, p, false, "must be at most 1TiB");
    *out = (size_t)n;
    return BELT_OK;
}

/* Formats a matrix value (already type-checked) as text. */
static char *value_text(const json_t *v)
{
    char buf[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return strdup(json_string_value(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    case JSON_REAL: {
        double d = json_real_value(v);
        /* The shortest text that reads back as the same double. */
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        return strdup(buf);
    }
    case JSON_TRUE:
        return strdup("true");
    default:
        return strdup("false");
    }
}

/* ---- templates ---------------------------------------------------------- */

static void tpl_init(belt__tpl *t)
{
    memset(t, 0, sizeof *t);
    t->kind = BELT_JOB_EXEC;
    t->duration_ns = t->timeout_ns = t->kill_grace_ns = -1;
    t->retry_delay_ns = t->retry_max_delay_ns = -1;
    t->retries = -1;
    t->output = -1;
    t->npoints = 1;
}

static void free_strv(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void tpl_free(belt__tpl *t)
{
    free(t->id);
    free(t->id_prefix);
    free(t->run);
    free_strv(t->argv, t->argc);
    free_strv(t->env_names, t->nenv);
    free_strv(t->env_vals, t->nenv);
    free(t->cwd);
    free(t->stdin_path);
    free(t->output_dir);
    for (unsigned k = 0; k < t->nkeys; k++)
        free_strv(t->vals[k], t->nvals[k]);
    free_strv(t->keys, t->nkeys);
    free(t->vals);
    free(t->nvals);
    free(t->stride);
}

/* Sets env NAME to a copy of val: in place when NAME is there. */
static int env_set(belt__tpl *t, const char *name, const char *val)
{
    for (size_t i = 0; i < t->nenv; i++)
        if (strcmp(t->env_names[i], name) == 0)
            return set_str(&t->env_vals[i], val);
    char **n = realloc(t->env_names, (t->nenv + 1) * sizeof *n);
    if (n == NULL)
        return BELT_ENOMEM;
    t->env_names = n;
    char **v = realloc(t->env_vals, (t->nenv + 1) * sizeof *v);
    if (v == NULL)
        return BELT_ENOMEM;
    t->env_vals = v;
    n[t->nenv] = strdup(name);
    v[t->nenv] = strdup(val);
    if (n[t->nenv] == NULL || v[t->nenv] == NULL) {
        free(n[t->nenv]);
        free(v[t->nenv]);
        return BELT_ENOMEM;
    }
    t->nenv++;
    return BELT_OK;
}

/* Copies the defaults' values (not the job-only ones) into a fresh t. */
static int tpl_from_defaults(belt__tpl *t, const belt__tpl *d)
{
    tpl_init(t);
    t->kind = d->kind;
    t->duration_ns = d->duration_ns;
    t->timeout_ns = d->timeout_ns;
    t->kill_grace_ns = d->kill_grace_ns;
    t->retry_delay_ns = d->retry_delay_ns;
    t->retry_max_delay_ns = d->retry_max_delay_ns;
    t->retries = d->retries;
    t->output = d->output;
    t->output_limit = d->output_limit;
    t->cwd = dup_str(d->cwd);
    t->stdin_path = dup_str(d->stdin_path);
    t->output_dir = dup_str(d->output_dir);
    if ((d->cwd && !t->cwd) || (d->stdin_path && !t->stdin_path) ||
        (d->output_dir && !t->output_dir))
        return BELT_ENOMEM;
    for (size_t i = 0; i < d->nenv; i++)
        if (env_set(t, d->env_names[i], d->env_vals[i]) != BELT_OK)
            return BELT_ENOMEM;
    return BELT_OK;
}

/* Parses a key that both "defaults" and a job accept.  *handled is set
 * when key is one of them. */
static int parse_common(belt__lctx *c, const belt__jpath *p, const char *key,
                        json_t *v, belt__tpl *t, bool *handled)
{
    belt__jpath q = belt__jp_key(p, key);
    const char *s;
    int rc;
    *handled = true;
    if (strcmp(key, "kind") == 0) {
        if ((rc = want_string(c, &q, v, false, &s)) != BELT_OK)
            return rc;
        int k = list_index(s, belt__kind_names);
        if (k < 0)
            return unknown_name(c, &q, "kind", s, belt__kind_names);
        t->kind = (belt_job_kind)k;
        return BELT_OK;
    }
    if (strcmp(key, "env") == 0) {
        if (!json_is_object(v))
            return belt__fail(c, &q, false,
                              "expected an object of NAME: \"value\" (got %s)",
                              belt__jtype(v));
        const char *name;
        json_t *val;
        json_object_foreach(v, name, val) {
            belt__jpath e = belt__jp_key(&q, name);
            if (name[0] == '\0' || strchr(name, '=') != NULL)
                return belt__fail(c, &e, true,
                                  "invalid variable name \"%s\" (empty or with \"=\")",
                                  name);
            if (!json_is_string(val))
                return belt__fail(c, &e, false, "expected a string (got %s)",
                                  belt__jtype(val));
            if (env_set(t, name, json_string_value(val)) != BELT_OK)
                return belt__fail_oom(c->err);
        }
        return BELT_OK;
    }
    char **strs[] = { &t->cwd, &t->stdin_path, &t->output_dir };
    const char *strkeys[] = { "cwd", "stdin", "output_dir" };
    for (int i = 0; i < 3; i++) {
        if (strcmp(key, strkeys[i]) == 0) {
            if ((rc = want_string(c, &q, v, true, &s)) != BELT_OK)
                return rc;
            return set_str(strs[i], s) == BELT_OK ? BELT_OK
                                                  : belt__fail_oom(c->err);
        }
    }
    int64_t *durs[] = { &t->timeout_ns, &t->kill_grace_ns, &t->duration_ns,
                        &t->retry_delay_ns, &t->retry_max_delay_ns };
    const char *durkeys[] = { "timeout", "kill_grace", "duration",
                              "retry_delay", "retry_max_delay" };
    for (int i = 0; i < 5; i++)
        if (strcmp(key, durkeys[i]) == 0)
            return want_duration(c, &q, v, durs[i]);
    if (strcmp(key, "retries") == 0) {
        if (!json_is_integer(v))
            return belt__fail(c, &q, false, "expected an integer (got %s)",
                              belt__jtype(v));
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > MAX_RETRIES)
            return belt__fail(c, &q, false,
                              "must be between 0 and %d (got %" JSON_INTEGER_FORMAT ")",
                              MAX_RETRIES, n);
        t->retries = (int)n;
        return BELT_OK;
    }
    if (strcmp(key, "output") == 0) {
        if ((rc = want_string(c, &q, v, false, &s)) != BELT_OK)
            return rc;
        int k = list_index(s, belt__output_names);
        if (k < 0)
            return unknown_name(c, &q, "output mode", s, belt__output_names);
        t->output = k;
        return BELT_OK;
    }
    if (strcmp(key, "output_limit") == 0)
        return want_size(c, &q, v, &t->output_limit);
    *handled = false;
    return BELT_OK;
}

static int parse_defaults(belt__lctx *c, json_t *v, belt__tpl *d)
{
    belt__jpath p = belt__jp_key(NULL, "defaults");
    if (!json_is_object(v))
        return belt__fail(c, &p, false, "expected an object (got %s)",
                          belt__jtype(v));
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        if (!belt__in_list(key, default_keys)) {
            if (belt__in_list(key, job_keys)) {
                belt__jpath q = belt__jp_key(&p, key);
                return belt__fail(c, &q, true,
                                  "\"%s\" is not allowed in defaults (only in a job)",
                                  key);
            }
            return unknown_key(c, &p, key, default_keys);
        }
        bool handled;
        int rc = parse_common(c, &p, key, val, d, &handled);
        if (rc != BELT_OK)
            return rc;
    }
    return BELT_OK;
}

static int parse_matrix(belt__lctx *c, const belt__jpath *jp, json_t *m,
                        belt__tpl *t)
{
    belt__jpath p = belt__jp_key(jp, "matrix");
    if (!json_is_object(m))
        return belt__fail(c, &p, false,
                          "expected an object of name: [values] (got %s)",
                          belt__jtype(m));
    size_t n = json_object_size(m);
    if (n == 0)
        return belt__fail(c, &p, false, "must have at least one name");
    if (n > BELT__MAX_KEYS)
        return belt__fail(c, &p, false, "has %zu names (at most %d)", n,
                          BELT__MAX_KEYS);
    t->keys = calloc(n + 1, sizeof *t->keys); /* NULL-terminated */
    t->vals = calloc(n, sizeof *t->vals);
    t->nvals = calloc(n, sizeof *t->nvals);
    t->stride = calloc(n, sizeof *t->stride);
    if (!t->keys || !t->vals || !t->nvals || !t->stride)
        return belt__fail_oom(c->err);
    const char *key;
    json_t *arr;
    uint64_t points = 1;
    json_object_foreach(m, key, arr) {
        belt__jpath q = belt__jp_key(&p, key);
        char probe[3 + 64];
        size_t kl = strlen(key);
        bool ok = kl > 0 && kl <= 64;
        if (ok) {
            snprintf(probe, sizeof probe, "{%s}", key);
            ok = belt__placeholder_len(probe) == kl;
        }
        if (!ok)
            return belt__fail(c, &q, true,
                              "invalid matrix name \"%s\" (use letters, digits, \"_\" and \"-\")",
                              key);
        if (!json_is_array(arr))
            return belt__fail(c, &q, false,
                              "expected an array of values (got %s)",
                              belt__jtype(arr));
        size_t nv = json_array_size(arr);
        if (nv == 0)
            return belt__fail(c, &q, false, "must not be empty");
        unsigned k = t->nkeys;
        t->keys[k] = strdup(key);
        t->vals[k] = calloc(nv, sizeof(char *));
        if (t->keys[k] == NULL || t->vals[k] == NULL) {
            free(t->keys[k]);
            free(t->vals[k]);
            return belt__fail_oom(c->err);
        }
        t->nvals[k] = nv;
        t->nkeys++;
        for (size_t i = 0; i < nv; i++) {
            json_t *e = json_array_get(arr, i);
            if (!json_is_string(e) && !json_is_number(e) && !json_is_boolean(e)) {
                belt__jpath r = belt__jp_idx(&q, i);
                return belt__fail(c, &r, false,
                                  "expected a string, number or boolean (got %s)",
                                  belt__jtype(e));
            }
            if ((t->vals[k][i] = value_text(e)) == NULL)
                return belt__fail_oom(c->err);
        }
        if (points > BELT_CONFIG_MAX_JOBS / nv)
            return belt__fail(c, &p, false, "expands to more than %u jobs",
                              BELT_CONFIG_MAX_JOBS);
        points *= nv;
    }
    t->npoints = points;
    uint64_t stride = 1;
    for (unsigned k = t->nkeys; k-- > 0;) {
        t->stride[k] = stride;
        stride *= t->nvals[k];
    }
    return BELT_OK;
}

/* The literal text every id of t starts with. */
static char *id_prefix(const belt__tpl *t)
{
    belt__buf b = { 0 };
    if (t->id == NULL) {
        belt__buf_addf(&b, t->nkeys ? "job-%zu-" : "job-%zu", t->index);
    } else {
        for (const char *s = t->id; *s != '\0';) {
            if ((s[0] == '{' || s[0] == '}') && s[1] == s[0]) {
                belt__buf_addc(&b, s[0]);
                s += 2;
                continue;
            }
            if (s[0] == '{') {
                size_t n = belt__placeholder_len(s);
                if (n > 0 && belt__key_index(t, s + 1, n) >= 0)
                    break;
            }
            belt__buf_addc(&b, *s++);
        }
    }
    char *r = b.oom ? NULL : strdup(belt__buf_str(&b));
    belt__buf_free(&b);
    return r;
}

static bool has_control(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Finds the first "{name}" placeholder of str that names no matrix key of
 * t and fails with a hint at p.  shell: str is shell text or a path, where
 * "${name}" is the shell's and is left alone.  BELT_OK when there is none. */
static int check_placeholders(belt__lctx *c, const belt__jpath *p,
                              const belt__tpl *t, const char *str, bool shell)
{
    for (const char *s = str; *s != '\0'; s++) {
        if ((s[0] == '{' || s[0] == '}') && s[1] == s[0]) {
            s++;
            continue;
        }
        size_t n = s[0] == '{' ? belt__placeholder_len(s) : 0;
        if (n == 0 || belt__key_index(t, s + 1, n) >= 0 ||
            (shell && s > str && s[-1] == '$')) {
            s += n > 0 ? n + 1 : 0;
            continue;
        }
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)(n < 64 ? n : 64), s + 1);
        if (t->nkeys == 0)
            return belt__fail(c, p, false,
                              "unknown placeholder {%s}: the job has no matrix (write {{ and }} for literal braces)",
                              name);
        const char *hint = belt__suggest(name, (const char *const *)t->keys);
        if (hint != NULL)
            return belt__fail(c, p, false,
                              "unknown placeholder {%s} (did you mean {%s}?%s)",
                              name, hint,
                              shell ? "; write {{ and }} for literal braces"
                                    : "");
        belt__buf keys = { 0 };
        for (unsigned k = 0; k < t->nkeys; k++)
            belt__buf_addf(&keys, "%s{%s}", k ? ", " : "", t->keys[k]);
        int rc = belt__fail(c, p, false,
                            "unknown placeholder {%s} (matrix names: %s%s)",
                            name, belt__buf_str(&keys),
                            shell ? "; write {{ and }} for literal braces"
                                  : "");
        belt__buf_free(&keys);
        return rc;
    }
    return BELT_OK;
}

/* In a matrix job, "{name}" in run, argv, env values, cwd, stdin and
 * output_dir must name a matrix key (a typo would otherwise run with the
 * braces in it). */
static int check_matrix_use(belt__lctx *c, const belt__jpath *jp,
                            const belt__tpl *t)
{
    if (t->nkeys == 0)
        return BELT_OK;
    int rc;
    belt__jpath p;
    if (t->run != NULL) {
        p = belt__jp_key(jp, "run");
        if ((rc = check_placeholders(c, &p, t, t->run, true)) != BELT_OK)
            return rc;
    }
    belt__jpath a = belt__jp_key(jp, "argv");
    for (size_t k = 0; k < t->argc; k++) {
        p = belt__jp_idx(&a, k);
        if ((rc = check_placeholders(c, &p, t, t->argv[k], true)) != BELT_OK)
            return rc;
    }
    belt__jpath e = belt__jp_key(jp, "env");
    for (size_t k = 0; k < t->nenv; k++) {
        p = belt__jp_key(&e, t->env_names[k]);
        if ((rc = check_placeholders(c, &p, t, t->env_vals[k], true)) !=
            BELT_OK)
            return rc;
    }
    const char *strs[3] = { t->cwd, t->stdin_path, t->output_dir };
    const char *keys[3] = { "cwd", "stdin", "output_dir" };
    for (int k = 0; k < 3; k++) {
        if (strs[k] == NULL)
            continue;
        p = belt__jp_key(jp, keys[k]);
        if ((rc = check_placeholders(c, &p, t, strs[k], true)) != BELT_OK)
            return rc;
    }
    return BELT_OK;
}

/* Checks the placeholders of t's id against its matrix. */
static int check_id(belt__lctx *c, const belt__jpath *jp, belt__tpl *t)
{
    belt__jpath p = belt__jp_key(jp, "id");
    int rc = check_placeholders(c, &p, t, t->id, false);
    if (rc != BELT_OK)
        return rc;
    uint64_t used = belt__keys_used(t->id, t);
    for (unsigned k = 0; k < t->nkeys; k++)
        if (t->nvals[k] > 1 && !(used & ((uint64_t)1 << k)))
            return belt__fail(c, &p, false,
                              "does not use matrix name {%s}, so ids would repeat",
                              t->keys[k]);
    /* Ids end up in results, job logs and terminals: one line each. */
    if (has_control(t->id))
        return belt__fail(c, &p, false, "must not contain control characters");
    for (unsigned k = 0; k < t->nkeys; k++) {
        if (!(used & ((uint64_t)1 << k)))
            continue;
        for (size_t i = 0; i < t->nvals[k]; i++) {
            if (!has_control(t->vals[k][i]))
                continue;
            belt__jpath q = belt__jp_key(jp, "matrix");
            q = belt__jp_key(&q, t->keys[k]);
            q = belt__jp_idx(&q, i);
            return belt__fail(c, &q, false,
                              "a value used in the id must not contain control characters");
        }
    }
    return BELT_OK;
}

/* Adds the "after" patterns of job t (number ti) to cfg->deps. */
static int parse_after(belt__lctx *c, const belt__jpath *jp, json_t *v,
                       belt__tpl *t, size_t ti, size_t *cap)
{
    belt__jpath p = belt__jp_key(jp, "after");
    belt_config *cfg = c->cfg;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_array(v) && !json_is_string(v))
        return belt__fail(c, &p, false,
                          "expected an array of job ids (got %s)", belt__jtype(v));
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        belt__jpath q = json_is_array(v) ? belt__jp_idx(&p, i) : p;
        const char *s;
        int rc = want_string(c, &q, e, true, &s);
        if (rc != BELT_OK)
            return rc;
        if (cfg->ndeps == *cap) {
            size_t nc = *cap ? *cap * 2 : 8;
            belt__dep *d = realloc(cfg->deps, nc * sizeof *d);
            if (d == NULL)
                return belt__fail_oom(c->err);
            cfg->deps = d;
            *cap = nc;
        }
        belt__dep *d = &cfg->deps[cfg->ndeps];
        memset(d, 0, sizeof *d);
        if ((d->pattern = strdup(s)) == NULL)
            return belt__fail_oom(c->err);
        cfg->ndeps++;
        d->tpl = ti;
        d->item = i;
        d->keymask = belt__keys_used(s, t);
        d->nsub = 1;
        for (unsigned k = 0; k < t->nkeys; k++)
            if (d->keymask & ((uint64_t)1 << k))
                d->nsub *= t->nvals[k];
        t->ndep++;
    }
    return BELT_OK;
}

static int parse_job(belt__lctx *c, json_t *job, size_t i,
                     const belt__tpl *dflt, size_t *depcap)
{
    belt_config *cfg = c->cfg;
    belt__jpath jobs = belt__jp_key(NULL, "jobs");
    belt__jpath p = belt__jp_idx(&jobs, i);
    if (!json_is_object(job))
        return belt__fail(c, &p, false, "expected an object (got %s)",
                          belt__jtype(job));
    belt__tpl *t = &cfg->tpl[i];
    cfg->ntpl = i + 1; /* so that belt_config_free() frees it */
    if (tpl_from_defaults(t, dflt) != BELT_OK)
        return belt__fail_oom(c->err);
    t->index = i;
    t->dep0 = cfg->ndeps;

    const char *key;
    json_t *v;
    json_object_foreach(job, key, v)
        if (!belt__in_list(key, job_keys))
            return unknown_key(c, &p, key, job_keys);

    int rc;
    json_t *m = json_object_get(job, "matrix");
    if (m != NULL && (rc = parse_matrix(c, &p, m, t)) != BELT_OK)
        return rc;

    json_t *run = NULL, *argv = NULL, *dur = NULL;
    json_object_foreach(job, key, v) {
        belt__jpath q = belt__jp_key(&p, key);
        const char *s;
        bool handled;
        if ((rc = parse_common(c, &p, key, v, t, &handled)) != BELT_OK)
            return rc;
        if (handled) {
            if (strcmp(key, "duration") == 0)
                dur = v;
            continue;
        }
        if (strcmp(key, "id") == 0) {
            if ((rc = want_string(c, &q, v, true, &s)) != BELT_OK)
                return rc;
            if (set_str(&t->id, s) != BELT_OK)
                return belt__fail_oom(c->err);
        } else if (strcmp(key, "description") == 0) {
            if ((rc = want_string(c, &q, v, false, &s)) != BELT_OK)
                return rc;
        } else if (strcmp(key, "run") == 0) {
            if ((rc = want_string(c, &q, v, true, &s)) != BELT_OK)
                return rc;
            if (set_str(&t->run, s) != BELT_OK)
                return belt__fail_oom(c->err);
            run = v;
        } else if (strcmp(key, "argv") == 0) {
            if (!json_is_array(v))
                return belt__fail(c, &q, false,
                                  "expected an array of strings (got %s)",
                                  belt__jtype(v));
            size_t n = json_array_size(v);
            if (n == 0)
                return belt__fail(c, &q, false,
                                  "must not be empty (the program comes first)");
            if ((t->argv = calloc(n, sizeof *t->argv)) == NULL)
                return belt__fail_oom(c->err);
            for (size_t k = 0; k < n; k++) {
                belt__jpath r = belt__jp_idx(&q, k);
                if ((rc = want_string(c, &r, json_array_get(v, k), k == 0,
                                      &s)) != BELT_OK)
                    return rc;
                if ((t->argv[k] = strdup(s)) == NULL)
                    return belt__fail_oom(c->err);
                t->argc = k + 1;
            }
            argv = v;
        } else if (strcmp(key, "after") == 0) {
            if ((rc = parse_after(c, &p, v, t, i, depcap)) != BELT_OK)
                return rc;
        }
        /* "matrix" was parsed first. */
    }

    /* Rules between keys. */
    const char *kind = belt__kind_names[t->kind];
    if (t->kind == BELT_JOB_EXEC) {
        if (run != NULL && argv != NULL)
            return belt__fail(c, &p, false, "has both \"run\" and \"argv\" (use one)");
        if (run == NULL && argv == NULL)
            return belt__fail(c, &p, false,
                              "needs \"run\" (a shell command) or \"argv\" (a program and its arguments)");
    } else {
        if (run != NULL || argv != NULL) {
            belt__jpath q = belt__jp_key(&p, run != NULL ? "run" : "argv");
            return belt__fail(c, &q, false, "not allowed for kind \"%s\"", kind);
        }
    }
    if (t->kind == BELT_JOB_SLEEP || t->kind == BELT_JOB_SPIN) {
        if (t->duration_ns < 0)
            return belt__fail(c, &p, false, "kind \"%s\" needs a \"duration\"",
                              kind);
    } else if (dur != NULL) {
        belt__jpath q = belt__jp_key(&p, "duration");
        return belt__fail(c, &q, false,
                          "only for kind \"sleep\" or \"spin\" (this job is \"%s\")",
                          kind);
    }
    if (t->id != NULL && (rc = check_id(c, &p, t)) != BELT_OK)
        return rc;
    if ((rc = check_matrix_use(c, &p, t)) != BELT_OK)
        return rc;
    if ((t->id_prefix = id_prefix(t)) == NULL)
        return belt__fail_oom(c->err);
    return BELT_OK;
}

static int parse_workers(belt__lctx *c, json_t *v)
{
    belt_config *cfg = c->cfg;
    belt__jpath p = belt__jp_key(NULL, "workers");
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > BELT_CONFIG_MAX_WORKERS)
            return belt__fail(c, &p, false,
                              "must be between 1 and %d (got %" JSON_INTEGER_FORMAT ")",
                              BELT_CONFIG_MAX_WORKERS, n);
        cfg->workers = (int)n;
        return BELT_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = strlen(s);
        unsigned out;
        if (len > 1 && s[len - 1] == '%') {
            char *end;
            errno = 0;
            long pct = strtol(s, &end, 10);
            if (end == s + len - 1 && s[0] >= '0' && s[0] <= '9' && errno == 0) {
                if (pct < 1 || pct > 1000)
                    return belt__fail(c, &p, false,
                                      "a percentage must be between 1%% and 1000%% (got \"%s\")",
                                      s);
                cfg->workers = 1;
                cfg->workers_percent = (int)pct;
                return BELT_OK;
            }
        } else if (belt_parse_workers(s, 1, &out) == BELT_OK) {
            cfg->workers = strcmp(s, "0") == 0 ? 0 : (int)out;
            return BELT_OK;
        }
        return belt__fail(c, &p, false,
                          "expected a number of workers or a percentage of CPUs like \"50%%\" (got \"%s\")",
                          s);
    }
    return belt__fail(c, &p, false,
                      "expected a number of workers or a percentage of CPUs like \"50%%\" (got %s)",
                      belt__jtype(v));
}

static int parse_root(belt__lctx *c, json_t *root)
{
    belt_config *cfg = c->cfg;
    if (!json_is_object(root))
        return belt__fail(c, NULL, false,
                          "expected an object with \"jobs\" (got %s)",
                          belt__jtype(root));
    const char *key;
    json_t *v;
    /* The keys only an experiment config has: say what it is. */
    if (json_object_get(root, "arrival") != NULL ||
        json_object_get(root, "service") != NULL)
        return belt__fail(c, NULL, false,
                          "this is an experiment config (it has \"%s\"), not "
                          "a job config: run it with 'belt experiment %s'",
                          json_object_get(root, "arrival") ? "arrival"
                                                           : "service",
                          c->err->source);
    json_object_foreach(root, key, v)
        if (!belt__in_list(key, top_keys))
            return unknown_key(c, NULL, key, top_keys);

    int rc;
    const char *s;
    if ((v = json_object_get(root, "workers")) != NULL &&
        (rc = parse_workers(c, v)) != BELT_OK)
        return rc;
    if ((v = json_object_get(root, "policy")) != NULL) {
        belt__jpath p = belt__jp_key(NULL, "policy");
        if ((rc = want_string(c, &p, v, false, &s)) != BELT_OK)
            return rc;
        if (belt__policy_find(s) == NULL)
            return unknown_name(c, &p, "policy", s, belt__policy_names());
        if ((cfg->policy = strdup(s)) == NULL)
            return belt__fail_oom(c->err);
    }
    if ((v = json_object_get(root, "results")) != NULL) {
        belt__jpath p = belt__jp_key(NULL, "results");
        if ((rc = want_string(c, &p, v, true, &s)) != BELT_OK)
            return rc;
        if ((cfg->results = strdup(s)) == NULL)
            return belt__fail_oom(c->err);
    }
    if ((v = json_object_get(root, "halt_on_error")) != NULL) {
        belt__jpath p = belt__jp_key(NULL, "halt_on_error");
        if (!json_is_boolean(v))
            return belt__fail(c, &p, false, "expected true or false (got %s)",
                              belt__jtype(v));
        cfg->halt_on_error = json_is_true(v);
    }
    const char *strkeys[] = { "description", "$schema" };
    for (int i = 0; i < 2; i++) {
        if ((v = json_object_get(root, strkeys[i])) != NULL) {
            belt__jpath p = belt__jp_key(NULL, strkeys[i]);
            if ((rc = want_string(c, &p, v, false, &s)) != BELT_OK)
                return rc;
        }
    }

    belt__tpl dflt;
    tpl_init(&dflt);
    if ((v = json_object_get(root, "defaults")) != NULL &&
        (rc = parse_defaults(c, v, &dflt)) != BELT_OK) {
        tpl_free(&dflt);
        return rc;
    }

    json_t *jobs = json_object_get(root, "jobs");
    belt__jpath jp = belt__jp_key(NULL, "jobs");
    rc = BELT_OK;
    if (jobs == NULL)
        rc = belt__fail(c, NULL, false, "missing \"jobs\" (an array of jobs)");
    else if (!json_is_array(jobs))
        rc = belt__fail(c, &jp, false, "expected an array of jobs (got %s)",
                        belt__jtype(jobs));
    else if (json_array_size(jobs) == 0)
        rc = belt__fail(c, &jp, false, "must not be empty");
    if (rc != BELT_OK) {
        tpl_free(&dflt);
        return rc;
    }
    size_t n = json_array_size(jobs);
    cfg->tpl = calloc(n, sizeof *cfg->tpl);
    if (cfg->tpl == NULL) {
        tpl_free(&dflt);
        return belt__fail_oom(c->err);
    }
    size_t depcap = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < n && rc == BELT_OK; i++) {
        rc = parse_job(c, json_array_get(jobs, i), i, &dflt, &depcap);
        if (rc == BELT_OK) {
            belt__tpl *t = &cfg->tpl[i];
            t->first = total;
            total += t->npoints;
            if (total > BELT_CONFIG_MAX_JOBS)
                rc = belt__fail(c, &jp, false,
                                "expand to more than %u jobs in total",
                                BELT_CONFIG_MAX_JOBS);
        }
    }
    tpl_free(&dflt);
    cfg->njobs = total;
    return rc;
}

/* Reports the duplicate id of seq dup (first seen as seq orig). */
static int duplicate(belt__lctx *c, json_t *root, uint64_t dup, uint64_t orig)
{
    const belt_config *cfg = c->cfg;
    const belt__tpl *t = belt__tpl_of(cfg, dup);
    const belt__tpl *o = belt__tpl_of(cfg, orig);
    belt__buf id = { 0 };
    belt__seq_id(&id, cfg, dup);
    belt__jpath jobs = belt__jp_key(NULL, "jobs");
    belt__jpath p = belt__jp_idx(&jobs, t->index);
    json_t *job = json_array_get(json_object_get(root, "jobs"), t->index);
    if (json_object_get(job, "id") != NULL)
        p = belt__jp_key(&p, "id");
    int rc;
    if (t == o)
        rc = belt__fail(c, &p, false,
                        "duplicate id \"%s\" (its matrix repeats a value)",
                        belt__buf_str(&id));
    else
        rc = belt__fail(c, &p, false, "duplicate id \"%s\" (also jobs[%zu])",
                        belt__buf_str(&id), o->index);
    belt__buf_free(&id);
    return rc;
}

/* Loads from text[0..len) (NUL-terminated at len).  dir: the folder that
 * relative paths are taken from, or NULL. */
static belt_config *load_buf(const char *text, size_t len, const char *source,
                             const char *dir, belt_config_error *err)
{
    belt_config_error scratch;
    if (err == NULL)
        err = &scratch;
    belt__error_start(err, source, NULL);

    belt_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        snprintf(err->text, sizeof err->text, "out of memory");
        return NULL;
    }
    cfg->workers = -1;
    belt__lctx c = { text, len, err, cfg };
    if ((cfg->source = strdup(source)) == NULL ||
        (dir != NULL && (cfg->dir = strdup(dir)) == NULL)) {
        belt__fail_oom(c.err);
        belt_config_free(cfg);
        return NULL;
    }

    json_t *root = belt__json_parse(text, len, err);
    if (root == NULL) {
        belt_config_free(cfg);
        return NULL;
    }

    int rc = parse_root(&c, root);
    if (rc == BELT_OK) {
        belt__index ix;
        uint64_t dup = 0, orig = 0;
        rc = belt__index_build(cfg, &ix, &dup, &orig);
        if (rc == BELT_ECONFIG) {
            duplicate(&c, root, dup, orig);
        } else if (rc == BELT_ENOMEM) {
            belt__fail_oom(c.err);
        } else {
            rc = belt__deps_resolve(&c, &ix);
            belt__index_free(&ix);
        }
    }
    json_decref(root);
    /* "results" is the config folder's too ("-" is stdout) */
    if (rc == BELT_OK && cfg->results != NULL &&
        strcmp(cfg->results, "-") != 0 &&
        belt__path_resolve(&cfg->results, cfg->dir) != BELT_OK)
        rc = belt__fail_oom(c.err);
    if (rc != BELT_OK) {
        belt_config_free(cfg);
        return NULL;
    }
    return cfg;
}

belt_config *belt_config_load_string(const char *json, const char *source,
                                     belt_config_error *err)
{
    if (belt__config_string(json, &source, err) != BELT_OK)
        return NULL;
    return load_buf(json, strlen(json), source, NULL, err);
}

belt_config *belt_config_load(const char *path, belt_config_error *err)
{
    belt_config_error scratch;
    belt__buf b = { 0 };
    if (belt__config_read(path, &b, err ? err : &scratch) != BELT_OK)
        return NULL;
    /* The folder of path, or none for a bare name (the cwd already). */
    char *dir;
    if (belt__path_dir(path, &dir) != BELT_OK) {
        belt__buf_free(&b);
        if (err)
            belt__fail_oom(err);
        return NULL;
    }
    belt_config *cfg = load_buf(b.p != NULL ? b.p : "", b.len, path, dir, err);
    free(dir);
    belt__buf_free(&b);
    return cfg;
}

void belt_config_free(belt_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->dir);
    for (size_t i = 0; i < cfg->ntpl; i++)
        tpl_free(&cfg->tpl[i]);
    free(cfg->tpl);
    for (size_t i = 0; i < cfg->ndeps; i++)
        free(cfg->deps[i].pattern);
    free(cfg->deps);
    free(cfg->g_off);
    free(cfg->members);
    free(cfg->source);
    free(cfg->policy);
    free(cfg->results);
    free(cfg);
}

/* ---- accessors ---------------------------------------------------------- */

int belt_parse_workers(const char *text, unsigned ncpu, unsigned *out)
{
    if (text == NULL || ncpu == 0 || text[0] < '0' || text[0] > '9')
        return BELT_EINVAL;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0)
        return BELT_EINVAL;
    if (end[0] == '%' && end[1] == '\0') {
        if (v < 1 || v > 1000)
            return BELT_EINVAL;
        uint64_t n = (uint64_t)ncpu * (uint64_t)v / 100;
        if (n < 1)
            n = 1;
        if (n > BELT_CONFIG_MAX_WORKERS)
            n = BELT_CONFIG_MAX_WORKERS;
        *out = (unsigned)n;
        return BELT_OK;
    }
    if (*end != '\0' || v < 0 || v > BELT_CONFIG_MAX_WORKERS)
        return BELT_EINVAL;
    *out = v == 0 ? ncpu : (unsigned)v;
    return BELT_OK;
}

int belt_config_workers(const belt_config *cfg)
{
    if (cfg == NULL)
        return -1;
    if (cfg->workers_percent > 0) {
        unsigned out = 1;
        char text[16];
        snprintf(text, sizeof text, "%d%%", cfg->workers_percent);
        belt_parse_workers(text, belt__cpu_count(), &out);
        return (int)out;
    }
    return cfg->workers;
}

int belt_config_workers_percent(const belt_config *cfg)
{
    return cfg != NULL ? cfg->workers_percent : 0;
}

const char *belt_config_policy(const belt_config *cfg)
{
    return cfg != NULL ? cfg->policy : NULL;
}

const char *belt_config_results(const belt_config *cfg)
{
    return cfg != NULL ? cfg->results : NULL;
}

bool belt_config_halt_on_error(const belt_config *cfg)
{
    return cfg != NULL && cfg->halt_on_error;
}

uint64_t belt_config_job_count(const belt_config *cfg)
{
    return cfg != NULL ? cfg->njobs : 0;
}
