/* pipeline/config.c: loading and checking a pipeline config (the format is
 * described at the top of pipeline/pipeline.h).
 *
 * One pass over the jansson tree that stops at the first error, as the job
 * loader (config/load.c) does, and with its error machinery: belt__fail()
 * locates the offending value or key in the text (config/locate.c) and
 * belt__suggest() finds a "did you mean".  After the tree has been read,
 * the checks that look at the world run in order: the source file can be
 * read, every plugin loads with its symbol and ABI constant (the library is
 * dlopen()ed and closed again: this runs its constructors, as running it
 * would), every grep pattern compiles, the sink and dead-letter files can
 * be written.  So `belt validate` and `belt run` reject a config before
 * anything runs.
 *
 * No global mutable state: the key tables are constant.
 */
#include "config/jsonload.h"
#include "pipeline/internal.h"
#include "util/path.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const root_keys[] = { "pipeline", "description", "$schema",
                                         NULL };
static const char *const pipe_keys[] = {
    "source", "stages", "sink", "ordered", "reorder_window", "halt_on_error",
    "dead_letter", "batch", "description", NULL
};
static const char *const source_keys[] = { "file", "command", "stdin", "range",
                                           NULL };
static const char *const range_keys[] = { "from", "to", "step", NULL };
static const char *const sink_keys[] = { "file", "stdout", "command", NULL };
static const char *const stage_keys[] = {
    "name", "description", "workers", "capacity", "run", "argv", "mode",
    "timeout", "stall_timeout", "plugin", "symbol", "arg", "builtin",
    "pattern", "invert", "every", "rate", "seed", NULL
};
static const char *const mode_names[] = { "per-item", "stream", NULL };
/* Indexed by belt__builtin. */
static const char *const builtin_names[] = { "identity", "grep", "sample",
                                             NULL };
/* What a stage needs one of. */
static const char *const kind_keys[] = { "run", "argv", "plugin", "builtin",
                                         NULL };

/* ---- small helpers ------------------------------------------------------ */

/* Checks that every key of object o (at p) is in allowed. */
static int check_keys(belt__lctx *c, const belt__jpath *p, json_t *o,
                      const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i] != NULL && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (ok)
            continue;
        belt__jpath q = belt__jp_key(p, key);
        const char *hint = belt__suggest(key, allowed);
        if (hint == NULL && (strcmp(key, "kind") == 0 || strcmp(key, "type") == 0))
            hint = "mode";
        if (hint == NULL && (strcmp(key, "command") == 0 || strcmp(key, "cmd") == 0))
            hint = "run";
        return belt__fail_unknown(c, &q, true, "key", key, allowed, hint);
    }
    return BELT_OK;
}

static int unknown_name(belt__lctx *c, const belt__jpath *p, const char *what,
                        const char *name, const char *const *names)
{
    return belt__fail_unknown(c, p, false, what, name, names, NULL);
}

static int list_index(const char *s, const char *const *list)
{
    for (int i = 0; list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return i;
    return -1;
}

/* Copies the string at key of o (at p) into *out; absent leaves *out. */
static int get_str(belt__lctx *c, const belt__jpath *p, json_t *o,
                   const char *key, bool nonempty, char **out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return BELT_OK;
    belt__jpath q = belt__jp_key(p, key);
    if (!json_is_string(v))
        return belt__fail(c, &q, false, "expected a string (got %s)",
                          belt__jtype(v));
    if (nonempty && json_string_length(v) == 0)
        return belt__fail(c, &q, false, "must not be empty");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return belt__fail(c, &q, false, "must not contain a NUL character");
    free(*out);
    if ((*out = strdup(json_string_value(v))) == NULL)
        return belt__fail_oom(c->err);
    return BELT_OK;
}

static int get_bool(belt__lctx *c, const belt__jpath *p, json_t *o,
                    const char *key, bool *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return BELT_OK;
    if (!json_is_boolean(v)) {
        belt__jpath q = belt__jp_key(p, key);
        return belt__fail(c, &q, false, "expected true or false (got %s)",
                          belt__jtype(v));
    }
    *out = json_is_true(v);
    return BELT_OK;
}

/* An integer in [lo, hi] at key (absent leaves *out). */
static int get_int(belt__lctx *c, const belt__jpath *p, json_t *o,
                   const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return BELT_OK;
    belt__jpath q = belt__jp_key(p, key);
    if (!json_is_integer(v))
        return belt__fail(c, &q, false, "expected an integer (got %s)",
                          belt__jtype(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return belt__fail(c, &q, false, "must be between %lld and %lld (got %lld)",
                          (long long)lo, (long long)hi, (long long)x);
    *out = (int64_t)x;
    return BELT_OK;
}

static int get_duration(belt__lctx *c, const belt__jpath *p, json_t *o,
                        const char *key, int64_t *ns)
{
    json_t *v = json_object_get(o, key);
    if (v == NULL)
        return BELT_OK;
    belt__jpath q = belt__jp_key(p, key);
    if (json_is_string(v) && belt_parse_duration(json_string_value(v), ns) == BELT_OK)
        return BELT_OK;
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= INT64_MAX / 1000000000) {
        *ns = (int64_t)json_integer_value(v) * 1000000000;
        return BELT_OK;
    }
    if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 9.2e9) {
        *ns = (int64_t)(json_real_value(v) * 1e9);
        return BELT_OK;
    }
    return belt__fail(c, &q, false, "expected a duration like \"30s\"");
}

/* ---- the parts ---------------------------------------------------------- */

/* The one key of an object that must have exactly one of `keys`. */
static int one_of(belt__lctx *c, const belt__jpath *p, json_t *o,
                  const char *const *keys, const char *what, int *which)
{
    *which = -1;
    for (int i = 0; keys[i] != NULL; i++) {
        if (json_object_get(o, keys[i]) == NULL)
            continue;
        if (*which >= 0) {
            belt__jpath q = belt__jp_key(p, keys[i]);
            return belt__fail(c, &q, true, "%s has both \"%s\" and \"%s\" (give one)",
                              what, keys[*which], keys[i]);
        }
        *which = i;
    }
    if (*which < 0) {
        char known[200];
        belt__list_join(known, sizeof known, keys);
        return belt__fail(c, p, false, "%s needs one of: %s", what, known);
    }
    return BELT_OK;
}

/* o's key (present) is a boolean that may only be true: a source or sink
 * named by a flag ({"stdin": true}). */
static int get_true(belt__lctx *c, const belt__jpath *p, json_t *o,
                    const char *key)
{
    bool yes = false;
    int rc = get_bool(c, p, o, key, &yes);
    if (rc != BELT_OK || yes)
        return rc;
    belt__jpath q = belt__jp_key(p, key);
    return belt__fail(c, &q, false, "must be true (or leave it out)");
}

static int parse_source(belt__lctx *c, json_t *v, belt__pipeline_config *pc)
{
    belt__jpath p = belt__jp_key(NULL, "pipeline");
    p = belt__jp_key(&p, "source");
    int which, rc;
    if (v == NULL) {
        belt__jpath q = belt__jp_key(NULL, "pipeline");
        return belt__fail(c, &q, false, "missing \"source\" (a file, command, "
                                        "stdin or range)");
    }
    if (!json_is_object(v))
        return belt__fail(c, &p, false, "expected an object (got %s)",
                          belt__jtype(v));
    if ((rc = check_keys(c, &p, v, source_keys)) != BELT_OK ||
        (rc = one_of(c, &p, v, source_keys, "source", &which)) != BELT_OK)
        return rc;
    switch (which) {
    case 0:
        pc->src = BELT__SRC_FILE;
        return get_str(c, &p, v, "file", true, &pc->src_path);
    case 1:
        pc->src = BELT__SRC_COMMAND;
        return get_str(c, &p, v, "command", true, &pc->src_command);
    case 2: {
        if ((rc = get_true(c, &p, v, "stdin")) != BELT_OK)
            return rc;
        pc->src = BELT__SRC_STDIN;
        return BELT_OK;
    }
    default: {
        json_t *r = json_object_get(v, "range");
        belt__jpath q = belt__jp_key(&p, "range");
        if (!json_is_object(r))
            return belt__fail(c, &q, false,
                              "expected an object like {\"from\": 1, \"to\": 100}");
        if ((rc = check_keys(c, &q, r, range_keys)) != BELT_OK)
            return rc;
        if (json_object_get(r, "to") == NULL)
            return belt__fail(c, &q, false, "missing \"to\" (the last number)");
        pc->src = BELT__SRC_RANGE;
        pc->range_from = 0;
        pc->range_step = 1;
        const int64_t lim = INT64_MAX / 4;
        if ((rc = get_int(c, &q, r, "from", -lim, lim, &pc->range_from)) != BELT_OK ||
            (rc = get_int(c, &q, r, "to", -lim, lim, &pc->range_to)) != BELT_OK ||
            (rc = get_int(c, &q, r, "step", 1, lim, &pc->range_step)) != BELT_OK)
            return rc;
        return BELT_OK;
    }
    }
}

static int parse_sink(belt__lctx *c, json_t *v, belt__pipeline_config *pc)
{
    belt__jpath p = belt__jp_key(NULL, "pipeline");
    p = belt__jp_key(&p, "sink");
    int which, rc;
    pc->sink = BELT__SNK_STDOUT;
    if (v == NULL)
        return BELT_OK;
    if (!json_is_object(v))
        return belt__fail(c, &p, false, "expected an object (got %s)",
                          belt__jtype(v));
    if ((rc = check_keys(c, &p, v, sink_keys)) != BELT_OK ||
        (rc = one_of(c, &p, v, sink_keys, "sink", &which)) != BELT_OK)
        return rc;
    switch (which) {
    case 0:
        pc->sink = BELT__SNK_FILE;
        return get_str(c, &p, v, "file", true, &pc->sink_path);
    case 1: {
        if ((rc = get_true(c, &p, v, "stdout")) != BELT_OK)
            return rc;
        return BELT_OK;
    }
    default:
        pc->sink = BELT__SNK_COMMAND;
        return get_str(c, &p, v, "command", true, &pc->sink_command);
    }
}

static int parse_argv(belt__lctx *c, const belt__jpath *p, json_t *a,
                      char ***out)
{
    if (!json_is_array(a) || json_array_size(a) == 0)
        return belt__fail(c, p, false, "expected a non-empty array of strings");
    size_t n = json_array_size(a);
    char **v = calloc(n + 1, sizeof *v);
    if (v == NULL)
        return belt__fail_oom(c->err);
    *out = v;
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(a, i);
        belt__jpath q = belt__jp_idx(p, i);
        if (!json_is_string(s))
            return belt__fail(c, &q, false, "expected a string (got %s)",
                              belt__jtype(s));
        if (i == 0 && json_string_length(s) == 0)
            return belt__fail(c, &q, false, "the program name must not be empty");
        if ((v[i] = strdup(json_string_value(s))) == NULL)
            return belt__fail_oom(c->err);
    }
    return BELT_OK;
}

/* Fails for a key that makes no sense for the stage's kind. */
static int not_for(belt__lctx *c, const belt__jpath *p, json_t *o,
                   const char *const *keys, const char *kind)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (json_object_get(o, keys[i]) != NULL) {
            belt__jpath q = belt__jp_key(p, keys[i]);
            return belt__fail(c, &q, true, "\"%s\" does not apply to a %s stage",
                              keys[i], kind);
        }
    }
    return BELT_OK;
}

static const char *const cmd_only[] = { "mode", "timeout", "stall_timeout", NULL };
static const char *const plugin_only[] = { "symbol", "arg", NULL };
static const char *const builtin_only[] = { "pattern", "invert", "every",
                                            "rate", "seed", NULL };

static int parse_builtin(belt__lctx *c, const belt__jpath *p, json_t *o,
                         belt__stage_config *s)
{
    int rc;
    belt__jpath q = belt__jp_key(p, "builtin");
    json_t *b = json_object_get(o, "builtin");
    if (!json_is_string(b))
        return belt__fail(c, &q, false, "expected a string (got %s)",
                          belt__jtype(b));
    int k = list_index(json_string_value(b), builtin_names);
    if (k < 0)
        return unknown_name(c, &q, "builtin stage", json_string_value(b),
                            builtin_names);
    s->builtin = (belt__builtin)k;
    static const char *const g_keys[] = { "rate", "every", "seed", NULL };
    static const char *const s_keys[] = { "pattern", "invert", NULL };
    static const char *const i_keys[] = { "pattern", "invert", "every", "rate",
                                          "seed", NULL };
    switch (s->builtin) {
    case BELT__BI_IDENTITY:
        return not_for(c, p, o, i_keys, "builtin identity");
    case BELT__BI_GREP: {
        if ((rc = not_for(c, p, o, g_keys, "builtin grep")) != BELT_OK ||
            (rc = get_str(c, p, o, "pattern", false, &s->pattern)) != BELT_OK ||
            (rc = get_bool(c, p, o, "invert", &s->invert)) != BELT_OK)
            return rc;
        if (s->pattern == NULL)
            return belt__fail(c, p, false, "a grep stage needs \"pattern\" "
                                           "(an extended regular expression)");
        char msg[256];
        if (belt__grep_check(s->pattern, msg, sizeof msg) != BELT_OK) {
            belt__jpath pq = belt__jp_key(p, "pattern");
            return belt__fail(c, &pq, false, "bad regular expression: %s", msg);
        }
        return BELT_OK;
    }
    default: {
        if ((rc = not_for(c, p, o, s_keys, "builtin sample")) != BELT_OK)
            return rc;
        json_t *every = json_object_get(o, "every"), *rate = json_object_get(o, "rate");
        if ((every == NULL) == (rate == NULL))
            return belt__fail(c, p, false, "a sample stage needs one of \"every\" "
                                           "(keep 1 in N) and \"rate\" (a probability)");
        int64_t e = 0, seed = 1;
        if ((rc = get_int(c, p, o, "every", 1, INT64_MAX, &e)) != BELT_OK ||
            (rc = get_int(c, p, o, "seed", 0, INT64_MAX, &seed)) != BELT_OK)
            return rc;
        s->every = (uint64_t)e;
        s->seed = (uint64_t)seed;
        if (rate != NULL) {
            belt__jpath rq = belt__jp_key(p, "rate");
            if (!json_is_number(rate) || !(json_number_value(rate) > 0) ||
                json_number_value(rate) > 1)
                return belt__fail(c, &rq, false, "expected a number in (0, 1]");
            s->rate = json_number_value(rate);
        }
        return BELT_OK;
    }
    }
}

static int parse_stage(belt__lctx *c, json_t *o, size_t i,
                       belt__stage_config *s)
{
    belt__jpath p = belt__jp_key(NULL, "pipeline");
    p = belt__jp_key(&p, "stages");
    p = belt__jp_idx(&p, i);
    int rc, which;
    if (!json_is_object(o))
        return belt__fail(c, &p, false, "expected a stage object (got %s)",
                          belt__jtype(o));
    if ((rc = check_keys(c, &p, o, stage_keys)) != BELT_OK)
        return rc;
    if (json_object_get(o, "mode") != NULL && json_object_get(o, "run") == NULL &&
        json_object_get(o, "argv") == NULL && json_object_get(o, "plugin") == NULL &&
        json_object_get(o, "builtin") == NULL) {
        /* "mode" alone: check its value first, for a better message. */
        belt__jpath q = belt__jp_key(&p, "mode");
        json_t *m = json_object_get(o, "mode");
        if (json_is_string(m) && list_index(json_string_value(m), mode_names) < 0)
            return unknown_name(c, &q, "stage mode", json_string_value(m), mode_names);
    }
    if ((rc = one_of(c, &p, o, kind_keys, "a stage", &which)) != BELT_OK)
        return rc;
    if ((rc = get_str(c, &p, o, "name", true, &s->name)) != BELT_OK)
        return rc;
    if (s->name == NULL) {
        char buf[32];
        snprintf(buf, sizeof buf, "stage%zu", i + 1);
        if ((s->name = strdup(buf)) == NULL)
            return belt__fail_oom(c->err);
    }
    int64_t w = 1, cap = -1;
    if ((rc = get_int(c, &p, o, "workers", 1, BELT__PIPE_MAX_WORKERS, &w)) != BELT_OK ||
        (rc = get_int(c, &p, o, "capacity", 0, BELT__PIPE_MAX_CAPACITY, &cap)) != BELT_OK)
        return rc;
    s->workers = (int)w;
    s->capacity = (size_t)cap; /* -1: the kind's default, set below */
    s->stall_ns = BELT__PIPE_DEFAULT_STALL_NS;

    if (which <= 1) { /* run or argv */
        if ((rc = not_for(c, &p, o, plugin_only, "command")) != BELT_OK ||
            (rc = not_for(c, &p, o, builtin_only, "command")) != BELT_OK)
            return rc;
        if (which == 0) {
            if ((rc = get_str(c, &p, o, "run", true, &s->run)) != BELT_OK)
                return rc;
        } else {
            belt__jpath q = belt__jp_key(&p, "argv");
            if ((rc = parse_argv(c, &q, json_object_get(o, "argv"), &s->argv)) != BELT_OK)
                return rc;
        }
        s->kind = BELT__STAGE_ITEM;
        json_t *m = json_object_get(o, "mode");
        if (m != NULL) {
            belt__jpath q = belt__jp_key(&p, "mode");
            if (!json_is_string(m))
                return belt__fail(c, &q, false, "expected a string (got %s)",
                                  belt__jtype(m));
            int k = list_index(json_string_value(m), mode_names);
            if (k < 0)
                return unknown_name(c, &q, "stage mode", json_string_value(m),
                                    mode_names);
            s->kind = k == 0 ? BELT__STAGE_ITEM : BELT__STAGE_STREAM;
        }
        if ((rc = get_duration(c, &p, o, "timeout", &s->timeout_ns)) != BELT_OK ||
            (rc = get_duration(c, &p, o, "stall_timeout", &s->stall_ns)) != BELT_OK)
            return rc;
        if (s->kind == BELT__STAGE_STREAM && json_object_get(o, "timeout") != NULL) {
            belt__jpath q = belt__jp_key(&p, "timeout");
            return belt__fail(c, &q, true, "\"timeout\" applies to per-item stages; "
                                           "a stream stage has \"stall_timeout\"");
        }
        if (s->kind == BELT__STAGE_ITEM && json_object_get(o, "stall_timeout") != NULL) {
            belt__jpath q = belt__jp_key(&p, "stall_timeout");
            return belt__fail(c, &q, true, "\"stall_timeout\" applies to stream stages");
        }
        return BELT_OK;
    }
    if ((rc = not_for(c, &p, o, cmd_only, which == 2 ? "plugin" : "builtin")) != BELT_OK)
        return rc;
    if (which == 2) {
        if ((rc = not_for(c, &p, o, builtin_only, "plugin")) != BELT_OK ||
            (rc = get_str(c, &p, o, "plugin", true, &s->plugin)) != BELT_OK ||
            (rc = get_str(c, &p, o, "symbol", true, &s->symbol)) != BELT_OK ||
            (rc = get_str(c, &p, o, "arg", false, &s->arg)) != BELT_OK)
            return rc;
        if (s->symbol == NULL)
            return belt__fail(c, &p, false, "a plugin stage needs \"symbol\" "
                                            "(the stage function's name)");
        s->kind = BELT__STAGE_PLUGIN;
        return BELT_OK;
    }
    if ((rc = not_for(c, &p, o, plugin_only, "builtin")) != BELT_OK)
        return rc;
    s->kind = BELT__STAGE_BUILTIN;
    return parse_builtin(c, &p, o, s);
}

/* ---- checks against the world ------------------------------------------- */

/* Can `path` be created or written?  Fills why on failure. */
static bool writable(const char *path, char *why, size_t size)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(why, size, "is a directory");
            return false;
        }
        if (access(path, W_OK) != 0) {
            snprintf(why, size, "%s", strerror(errno));
            return false;
        }
        return true;
    }
    if (errno != ENOENT) {
        snprintf(why, size, "%s", strerror(errno));
        return false;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, size, "directory %.300s does not exist", dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(why, size, "directory %.300s: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

static int check_world(belt__lctx *c, json_t *pipe, belt__pipeline_config *pc)
{
    belt__jpath p = belt__jp_key(NULL, "pipeline");
    char why[512];
    if (pc->src == BELT__SRC_FILE) {
        belt__jpath q = belt__jp_key(&p, "source");
        q = belt__jp_key(&q, "file");
        struct stat st;
        if (access(pc->src_path, R_OK) != 0)
            return belt__fail(c, &q, false, "cannot read source file %s: %s",
                              pc->src_path, strerror(errno));
        if (stat(pc->src_path, &st) == 0 && S_ISDIR(st.st_mode))
            return belt__fail(c, &q, false, "source %s is a directory", pc->src_path);
    }
    json_t *stages = json_object_get(pipe, "stages");
    for (size_t i = 0; i < pc->nstages; i++) {
        belt__stage_config *s = &pc->stages[i];
        if (s->kind != BELT__STAGE_PLUGIN)
            continue;
        belt__jpath q = belt__jp_key(&p, "stages");
        q = belt__jp_idx(&q, i);
        belt__fnstage fs;
        if (belt__plugin_load(s, &fs, why, sizeof why) != BELT_OK) {
            json_t *st = json_array_get(stages, i);
            const char *at = strstr(why, "symbol") != NULL ? "symbol" : "plugin";
            if (json_object_get(st, at) != NULL)
                q = belt__jp_key(&q, at);
            return belt__fail(c, &q, false, "stage %s: %s", s->name, why);
        }
        belt__plugin_unload(&fs);
    }
    if (pc->sink == BELT__SNK_FILE && !writable(pc->sink_path, why, sizeof why)) {
        belt__jpath q = belt__jp_key(&p, "sink");
        q = belt__jp_key(&q, "file");
        return belt__fail(c, &q, false, "cannot write sink file %s: %s",
                          pc->sink_path, why);
    }
    if (!writable(pc->dead_letter, why, sizeof why)) {
        belt__jpath q = belt__jp_key(&p, "dead_letter");
        return belt__fail(c, json_object_get(pipe, "dead_letter") ? &q : &p, false,
                          "cannot write dead-letter file %s: %s", pc->dead_letter,
                          why);
    }
    return BELT_OK;
}

/* ---- the whole ---------------------------------------------------------- */

static int parse_pipeline(belt__lctx *c, json_t *root, belt__pipeline_config *pc,
                          const char *dir)
{
    int rc;
    if (!json_is_object(root))
        return belt__fail(c, NULL, false, "expected an object with a \"pipeline\" "
                                          "key (got %s)", belt__jtype(root));
    if ((rc = check_keys(c, NULL, root, root_keys)) != BELT_OK)
        return rc;
    json_t *pipe = json_object_get(root, "pipeline");
    belt__jpath p = belt__jp_key(NULL, "pipeline");
    if (pipe == NULL)
        return belt__fail(c, NULL, false, "missing \"pipeline\"");
    if (!json_is_object(pipe))
        return belt__fail(c, &p, false, "expected an object (got %s)",
                          belt__jtype(pipe));
    if ((rc = check_keys(c, &p, pipe, pipe_keys)) != BELT_OK)
        return rc;
    if ((rc = parse_source(c, json_object_get(pipe, "source"), pc)) != BELT_OK ||
        (rc = parse_sink(c, json_object_get(pipe, "sink"), pc)) != BELT_OK)
        return rc;
    /* Files named in the config are in its folder (belt-pipeline(5)). */
    if (belt__path_resolve(&pc->src_path, dir) != BELT_OK ||
        belt__path_resolve(&pc->sink_path, dir) != BELT_OK)
        return belt__fail_oom(c->err);
    int64_t window = BELT__PIPE_DEFAULT_WINDOW, batch = BELT__PIPE_DEFAULT_BATCH;
    if ((rc = get_bool(c, &p, pipe, "ordered", &pc->ordered)) != BELT_OK ||
        (rc = get_bool(c, &p, pipe, "halt_on_error", &pc->halt_on_error)) != BELT_OK ||
        (rc = get_int(c, &p, pipe, "reorder_window", 0, 1 << 20, &window)) != BELT_OK ||
        (rc = get_int(c, &p, pipe, "batch", 1, 65536, &batch)) != BELT_OK ||
        (rc = get_str(c, &p, pipe, "dead_letter", true, &pc->dead_letter)) != BELT_OK)
        return rc;
    pc->reorder_window = (size_t)window;
    pc->batch = (size_t)batch;
    if (pc->ordered && window == 0) {
        belt__jpath q = belt__jp_key(&p, "reorder_window");
        return belt__fail(c, &q, false, "must be at least 1 with \"ordered\": true "
                                        "(a window of 0 could never release a "
                                        "batch: the pipeline would deadlock)");
    }

    json_t *stages = json_object_get(pipe, "stages");
    belt__jpath sp = belt__jp_key(&p, "stages");
    if (stages == NULL)
        return belt__fail(c, &p, false, "missing \"stages\" (a list of stages)");
    if (!json_is_array(stages) || json_array_size(stages) == 0)
        return belt__fail(c, &sp, false, "expected a non-empty array of stages");
    if (json_array_size(stages) > BELT__PIPE_MAX_STAGES)
        return belt__fail(c, &sp, false, "at most %d stages", BELT__PIPE_MAX_STAGES);
    pc->nstages = json_array_size(stages);
    if ((pc->stages = calloc(pc->nstages, sizeof *pc->stages)) == NULL) {
        pc->nstages = 0;
        return belt__fail_oom(c->err);
    }
    for (size_t i = 0; i < pc->nstages; i++) {
        if ((rc = parse_stage(c, json_array_get(stages, i), i, &pc->stages[i])) != BELT_OK)
            return rc;
        /* A plugin given as a path (not a bare name dlopen() searches
         * for) is in the config's folder too. */
        if (pc->stages[i].plugin != NULL && strchr(pc->stages[i].plugin, '/') &&
            belt__path_resolve(&pc->stages[i].plugin, dir) != BELT_OK)
            return belt__fail_oom(c->err);
        if (pc->stages[i].capacity == (size_t)-1)
            pc->stages[i].capacity = pc->stages[i].kind == BELT__STAGE_ITEM
                                         ? BELT__PIPE_DEFAULT_CAPACITY
                                         : BELT__PIPE_DEFAULT_CAPACITY_FAST;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(pc->stages[j].name, pc->stages[i].name) == 0) {
                belt__jpath q = belt__jp_idx(&sp, i);
                if (json_object_get(json_array_get(stages, i), "name") != NULL)
                    q = belt__jp_key(&q, "name");
                return belt__fail(c, &q, false, "stage name \"%s\" is used twice "
                                                "(stages[%zu] has it too)",
                                  pc->stages[i].name, j);
            }
        }
        if (pc->ordered && pc->stages[i].kind == BELT__STAGE_STREAM &&
            pc->stages[i].workers > 1) {
            belt__jpath q = belt__jp_idx(&sp, i);
            q = belt__jp_key(&q, "workers");
            return belt__fail(c, &q, false,
                              "an ordered pipeline's stream stage must have 1 "
                              "worker (a stream program's output lines are not "
                              "tied to its input lines, so order across workers "
                              "cannot be restored); use \"mode\": \"per-item\" "
                              "or \"ordered\": false");
        }
    }
    if (pc->dead_letter == NULL) {
        belt__buf b = { 0 };
        if (pc->sink == BELT__SNK_FILE) {
            belt__buf_adds(&b, pc->sink_path);
            belt__buf_adds(&b, ".dead.jsonl");
        } else {
            belt__buf_adds(&b, "belt-dead-letters.jsonl");
        }
        if (b.oom || (pc->dead_letter = strdup(belt__buf_str(&b))) == NULL) {
            belt__buf_free(&b);
            return belt__fail_oom(c->err);
        }
        belt__buf_free(&b);
    } else if (belt__path_resolve(&pc->dead_letter, dir) != BELT_OK) {
        return belt__fail_oom(c->err);
    }
    return check_world(c, pipe, pc);
}

void belt__pipeline_config_free(belt__pipeline_config *pc)
{
    if (pc == NULL)
        return;
    for (size_t i = 0; i < pc->nstages; i++) {
        belt__stage_config *s = &pc->stages[i];
        free(s->name);
        free(s->run);
        if (s->argv != NULL)
            for (char **a = s->argv; *a != NULL; a++)
                free(*a);
        free(s->argv);
        free(s->plugin);
        free(s->symbol);
        free(s->arg);
        free(s->pattern);
    }
    free(pc->stages);
    free(pc->source_name);
    free(pc->src_path);
    free(pc->src_command);
    free(pc->sink_path);
    free(pc->sink_command);
    free(pc->dead_letter);
    free(pc);
}

static int load_buf(const char *text, size_t len, const char *source,
                    const char *dir, belt__pipeline_config **out,
                    belt_config_error *err)
{
    belt_config_error scratch;
    if (err == NULL)
        err = &scratch;
    belt__error_start(err, source, NULL);
    *out = NULL;
    belt__lctx c = { text, len, err, NULL };
    belt__pipeline_config *pc = calloc(1, sizeof *pc);
    if (pc == NULL || (pc->source_name = strdup(source)) == NULL) {
        free(pc);
        return belt__fail_oom(c.err);
    }
    json_t *root = belt__json_parse(text, len, err);
    if (root == NULL) {
        belt__pipeline_config_free(pc);
        return BELT_ECONFIG;
    }
    int rc = parse_pipeline(&c, root, pc, dir);
    json_decref(root);
    if (rc != BELT_OK) {
        belt__pipeline_config_free(pc);
        return rc;
    }
    *out = pc;
    return BELT_OK;
}

int belt__pipeline_load_string(const char *json, const char *source,
                               belt__pipeline_config **out,
                               belt_config_error *err)
{
    *out = NULL;
    int rc = belt__config_string(json, &source, err);
    return rc != BELT_OK ? rc
                         : load_buf(json, strlen(json), source, NULL, out, err);
}

int belt__pipeline_load(const char *path, belt__pipeline_config **out,
                        belt_config_error *err)
{
    *out = NULL;
    belt_config_error scratch;
    belt__buf b = { 0 };
    int e = belt__config_read(path, &b, err ? err : &scratch);
    if (e != BELT_OK)
        return e;
    char *dir;
    if (belt__path_dir(path, &dir) != BELT_OK) {
        belt__buf_free(&b);
        return err ? belt__fail_oom(err) : BELT_ENOMEM;
    }
    int rc = load_buf(belt__buf_str(&b), b.len, path, dir, out, err);
    free(dir);
    belt__buf_free(&b);
    return rc;
}

bool belt__pipeline_is_config(const char *text, size_t len)
{
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    bool yes = json_is_object(root) && json_object_get(root, "pipeline") != NULL;
    json_decref(root);
    return yes;
}

bool belt__pipeline_is_config_file(const char *path)
{
    belt__buf b = { 0 };
    belt_config_error scratch;
    bool yes = belt__config_read(path, &b, &scratch) == BELT_OK &&
               belt__pipeline_is_config(belt__buf_str(&b), b.len);
    belt__buf_free(&b);
    return yes;
}

const char *belt__stage_kind_name(const belt__stage_config *s)
{
    switch (s->kind) {
    case BELT__STAGE_ITEM: return "per-item";
    case BELT__STAGE_STREAM: return "stream";
    case BELT__STAGE_PLUGIN: return "plugin";
    default: return builtin_names[s->builtin];
    }
}
