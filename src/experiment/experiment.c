/* experiment/experiment.c: loading an experiment config and expanding its sweep.
 *
 * The steps (experiment/experiment.h has the config format):
 *
 *   1. Parse the text with jansson (duplicate keys rejected) into a tree;
 *      the root must be an object, and every top-level key known (else
 *      "did you mean").  The mode is the config's "mode" unless the command
 *      line overrides it.
 *   2. Live mode: every key of the "live" object replaces the top-level key
 *      of the same name (whole values: "live": {"service": ...} replaces the
 *      service object, it does not merge into it).  The replaced keys are
 *      remembered, so that an error in one is reported at live.<key>.
 *   3. Find the sweep axes, in document order: a list where one value is
 *      expected (experiment/experiment.h says where).  Each axis is a path into the
 *      (merged) tree and the list; an empty list is an error.
 *   4. For each point of the cartesian product (mixed radix, first axis
 *      most significant), read and validate every parameter.  A read goes
 *      through at(): it returns the value for this point (the axis item if
 *      the path is an axis) and the path to report errors at, in the file's
 *      own coordinates (live. prefix, [i] of the axis item).  So every value
 *      of every axis is validated before anything runs, and an error names
 *      the exact item: arrival.load[3].
 *
 * Errors are formatted by config/locate.c (belt__fail: line and column of
 * the offending value found again in the text).  The service object goes to
 * experiment/dist.c (belt__dist_from_json), whose message already names the
 * key; it is located at the service object.  A trace file is loaded here
 * (experiment/sim.c's loader), so a malformed line fails the config with its line number.
 *
 * Invariants of a loaded experiment: 1 <= npoints <= BELT__EXP_MAX_POINTS;
 * every point has a registered policy, 1 <= workers <= BELT_POOL_MAX_WORKERS,
 * a valid service distribution (or a loaded trace), a positive rate for
 * poisson/rate arrivals, and a finite run (jobs > 0 or a time cap).
 *
 * No global mutable state: the key tables are constant.
 */
#include "experiment/experiment.h"

#include "belt/error.h"
#include "belt/pool.h"
#include "config/jsonload.h"
#include "pool/policy.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the vocabulary ----------------------------------------------------- */

static const char *const top_keys[] = {
    "mode", "description", "$schema", "workers", "policy", "d", "arrival",
    "service", "speeds", "jobs", "max_time", "warmup", "seed", "repeat",
    "command", "spin", "live", NULL
};

/* What "live" may override: the top-level keys but these. */
static const char *const live_keys[] = {
    "workers", "policy", "d", "arrival", "service", "speeds", "jobs",
    "max_time", "warmup", "seed", "repeat", "command", "spin", NULL
};

static const char *const arrival_keys[] = { "process", "load", "rate", "file",
                                            NULL };

static const char *const process_names[] = { "poisson", "batch", "rate",
                                             "trace", NULL };

static const char *const mode_names[] = { "simulate", "live", NULL };

/* Top-level keys a list may sweep (besides "speeds" and "service"). */
static const char *const sweep_keys[] = { "workers", "policy", "d", "jobs",
                                          "max_time", "warmup", "seed", NULL };

/* Names people reach for: suggested before edit distance. */
static const belt__alias aliases[] = {
    { "duration", "max_time" }, { "time", "max_time" },
    { "threads", "workers" },   { "servers", "workers" },
    { "policies", "policy" },   { "dispatch", "policy" },
    { "arrivals", "arrival" },  { "services", "service" },
    { "speed", "speeds" },      { "repeats", "repeat" },
    { "runs", "repeat" },       { "n", "jobs" },
    { "count", "jobs" },        { "distribution", "service" },
};

/* Jobs when neither "jobs" nor "max_time" caps a run. */
#define DEFAULT_JOBS 100000u

/* Jobs admitted when only "max_time" caps a run: the simulator needs a
 * count; this one is never reached at a load below 1 in a sane time. */
#define UNCAPPED_JOBS 1000000000000ull

/* ---- the loader's state ------------------------------------------------- */

typedef struct axis {
    belt__jpath path;         /* in the merged tree: 1 or 2 keys */
    json_t *list;             /* borrowed from the tree */
    size_t n;
} axis;

typedef struct loader {
    belt__lctx c;             /* text, err; c.cfg unused (NULL) */
    json_t *root;             /* merged tree (own reference) */
    const char *from_live[32]; /* top-level keys that came from "live" */
    size_t nlive;
    axis ax[BELT__EXP_MAX_AXES];
    size_t nax;
    size_t digit[BELT__EXP_MAX_AXES]; /* the current point's digits */
    const char *dir;          /* directory of the config, for traces */
    const belt__exp_overrides *ov;
    belt__experiment *e;
} loader;

/* ---- small helpers ------------------------------------------------------ */

static bool jp_is_prefix(const belt__jpath *pre, const belt__jpath *p)
{
    if (pre->n > p->n)
        return false;
    for (int i = 0; i < pre->n; i++) {
        const char *a = pre->seg[i].key, *b = p->seg[i].key;
        if ((a == NULL) != (b == NULL))
            return false;
        if (a != NULL ? strcmp(a, b) != 0 : pre->seg[i].index != p->seg[i].index)
            return false;
    }
    return true;
}

/* Maps a path in the merged tree, for the current point, to the file's
 * coordinates: "[i]" after an axis's path, "live." before a key that came
 * from the live object. */
static belt__jpath file_path(const loader *L, const belt__jpath *p)
{
    belt__jpath q = p != NULL ? *p : (belt__jpath){ .n = 0 };
    for (size_t a = 0; a < L->nax; a++) {
        if (!jp_is_prefix(&L->ax[a].path, &q))
            continue;
        belt__jpath r = L->ax[a].path;
        r = belt__jp_idx(&r, L->digit[a]);
        for (int i = L->ax[a].path.n; i < q.n && r.n < 8; i++)
            r.seg[r.n++] = q.seg[i];
        q = r;
        break;
    }
    if (q.n > 0 && q.seg[0].key != NULL) {
        for (size_t i = 0; i < L->nlive; i++) {
            if (strcmp(L->from_live[i], q.seg[0].key) != 0)
                continue;
            belt__jpath r = belt__jp_key(NULL, "live");
            for (int j = 0; j < q.n && r.n < 8; j++)
                r.seg[r.n++] = q.seg[j];
            q = r;
            break;
        }
    }
    return q;
}

/* belt__fail at merged-tree path p (mapped for the current point). */
__attribute__((format(printf, 4, 5)))
static int fail(loader *L, const belt__jpath *p, bool at_key,
                const char *fmt, ...)
{
    belt__jpath q = file_path(L, p);
    char raw[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    return belt__fail(&L->c, &q, at_key, "%s", raw);
}

static int unknown_key(loader *L, const belt__jpath *obj, const char *key,
                       const char *const *allowed)
{
    belt__jpath q = belt__jp_key(obj, key);
    const char *hint = belt__key_hint(key, allowed, aliases,
                                      sizeof aliases / sizeof aliases[0]);
    char text[512];
    belt__unknown_text(text, sizeof text, "key", key, allowed, hint);
    return fail(L, &q, true, "%s", text);
}

static int unknown_name(loader *L, const belt__jpath *p, const char *what,
                        const char *name, const char *const *names)
{
    char text[512];
    belt__unknown_text(text, sizeof text, what, name, names, NULL);
    return fail(L, p, false, "%s", text);
}

/* The value at merged path (k1[.k2]) for the current point, or NULL when
 * absent; *path is set to the merged path (for fail()). */
static json_t *at(const loader *L, const char *k1, const char *k2,
                  belt__jpath *path)
{
    belt__jpath p = belt__jp_key(NULL, k1);
    if (k2 != NULL)
        p = belt__jp_key(&p, k2);
    *path = p;
    for (size_t a = 0; a < L->nax; a++) {
        const belt__jpath *ap = &L->ax[a].path;
        if (ap->n == p.n && jp_is_prefix(ap, &p))
            return json_array_get(L->ax[a].list, L->digit[a]);
    }
    json_t *v = json_object_get(L->root, k1);
    if (v != NULL && k2 != NULL) {
        /* k1 itself may be an axis of objects ("service": [...]). */
        for (size_t a = 0; a < L->nax; a++) {
            const belt__jpath *ap = &L->ax[a].path;
            if (ap->n == 1 && strcmp(ap->seg[0].key, k1) == 0)
                v = json_array_get(L->ax[a].list, L->digit[a]);
        }
        v = json_is_object(v) ? json_object_get(v, k2) : NULL;
    }
    return v;
}

static int want_uint(loader *L, const belt__jpath *p, const json_t *v,
                     uint64_t min, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v))
        return fail(L, p, false, "expected an integer (got %s)", belt__jtype(v));
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
        return fail(L, p, false,
                    "must be between %llu and %llu (got %" JSON_INTEGER_FORMAT ")",
                    (unsigned long long)min, (unsigned long long)max, x);
    *out = (uint64_t)x;
    return BELT_OK;
}

static int want_number(loader *L, const belt__jpath *p, const json_t *v,
                       double *out)
{
    if (!json_is_number(v))
        return fail(L, p, false, "expected a number (got %s)", belt__jtype(v));
    *out = json_number_value(v);
    if (!isfinite(*out))
        return fail(L, p, false, "must be finite");
    return BELT_OK;
}

static int want_seconds(loader *L, const belt__jpath *p, const json_t *v,
                        double *out)
{
    int64_t ns = 0;
    if (json_is_string(v) && belt_parse_duration(json_string_value(v), &ns) == BELT_OK) {
        *out = (double)ns / 1e9;
        return BELT_OK;
    }
    if (json_is_number(v) && json_number_value(v) >= 0 &&
        isfinite(json_number_value(v))) {
        *out = json_number_value(v);
        return BELT_OK;
    }
    return fail(L, p, false, "expected a duration like \"60s\" or a number of seconds");
}

/* ---- steps 1-3: keys, live, axes ---------------------------------------- */

static int check_keys(loader *L, json_t *obj, const belt__jpath *p,
                      const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!belt__in_list(key, allowed))
            return unknown_key(L, p, key, allowed);
    }
    return BELT_OK;
}

static int merge_live(loader *L)
{
    json_t *live = json_object_get(L->root, "live");
    if (live == NULL)
        return BELT_OK;
    belt__jpath p = belt__jp_key(NULL, "live");
    if (!json_is_object(live))
        return fail(L, &p, false, "expected an object (got %s)", belt__jtype(live));
    int rc = check_keys(L, live, &p, live_keys);
    if (rc != BELT_OK || L->e->mode != BELT__EXP_LIVE)
        return rc;
    json_incref(live);
    const char *key;
    json_t *v;
    json_object_foreach(live, key, v) {
        if (json_object_set(L->root, key, v) != 0) {
            json_decref(live);
            return belt__fail_oom(L->c.err);
        }
        /* Keys point into `live`, kept alive by the root below. */
        if (L->nlive < sizeof L->from_live / sizeof L->from_live[0])
            L->from_live[L->nlive++] = key;
    }
    json_decref(live);
    return BELT_OK;
}

static int add_axis(loader *L, const belt__jpath *p, json_t *list)
{
    if (json_array_size(list) == 0)
        return fail(L, p, false, "an empty list sweeps nothing (give at least one value)");
    if (L->nax == BELT__EXP_MAX_AXES)
        return fail(L, p, false, "too many swept parameters (at most %d)",
                    BELT__EXP_MAX_AXES);
    axis *a = &L->ax[L->nax++];
    a->path = *p;
    a->list = list;
    a->n = json_array_size(list);
    char name[64];
    belt__jpath_format(p, name, sizeof name);
    L->e->axis_name[L->e->naxes] = strdup(name);
    if (L->e->axis_name[L->e->naxes] == NULL)
        return belt__fail_oom(L->c.err);
    L->e->naxes++;
    return BELT_OK;
}

/* Walks the top-level keys in document order and records the axes. */
static int find_axes(loader *L)
{
    const char *key;
    json_t *v;
    json_object_foreach(L->root, key, v) {
        belt__jpath p = belt__jp_key(NULL, key);
        int rc = BELT_OK;
        if (belt__in_list(key, sweep_keys) && json_is_array(v)) {
            rc = add_axis(L, &p, v);
        } else if (strcmp(key, "speeds") == 0 && json_is_array(v) &&
                   json_is_array(json_array_get(v, 0))) {
            rc = add_axis(L, &p, v);
        } else if (strcmp(key, "service") == 0 && json_is_array(v)) {
            rc = add_axis(L, &p, v);
        } else if ((strcmp(key, "service") == 0 || strcmp(key, "arrival") == 0) &&
                   json_is_object(v)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                if (json_is_array(v2)) {
                    belt__jpath q = belt__jp_key(&p, k2);
                    if ((rc = add_axis(L, &q, v2)) != BELT_OK)
                        break;
                }
            }
        }
        if (rc != BELT_OK)
            return rc;
    }
    return BELT_OK;
}

/* ---- step 4: one point -------------------------------------------------- */

static int point_policy(loader *L, belt__exp_point *pt)
{
    belt__jpath p;
    json_t *v = at(L, "policy", NULL, &p);
    const char *name = "shared";
    if (v != NULL) {
        if (!json_is_string(v))
            return fail(L, &p, false, "expected a policy name (got %s)",
                        belt__jtype(v));
        name = json_string_value(v);
        if (belt__policy_find(name) == NULL)
            return unknown_name(L, &p, "policy", name, belt__policy_names());
    }
    pt->policy = strdup(name);
    return pt->policy != NULL ? BELT_OK : belt__fail_oom(L->c.err);
}

static int point_speeds(loader *L, belt__exp_point *pt)
{
    belt__jpath p;
    json_t *v = at(L, "speeds", NULL, &p);
    if (v == NULL)
        return BELT_OK;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(L, &p, false,
                    "expected a list of speed factors like [2, 1, 1, 1]");
    size_t n = json_array_size(v);
    if (n > pt->workers)
        return fail(L, &p, false, "has %zu speeds for %u workers", n,
                    pt->workers);
    pt->speeds = malloc(pt->workers * sizeof *pt->speeds);
    if (pt->speeds == NULL)
        return belt__fail_oom(L->c.err);
    for (size_t i = 0; i < n; i++) {
        belt__jpath q = belt__jp_idx(&p, i);
        double s;
        int rc = want_number(L, &q, json_array_get(v, i), &s);
        if (rc != BELT_OK)
            return rc;
        if (!(s > 0) || s > 1e6)
            return fail(L, &q, false, "a speed factor must be > 0 and at most 1e6 (got %g)", s);
        pt->speeds[i] = s;
    }
    /* A shorter list is a pattern repeated over the workers. */
    for (size_t i = n; i < pt->workers; i++)
        pt->speeds[i] = pt->speeds[i % n];
    return BELT_OK;
}

static int point_arrival(loader *L, belt__exp_point *pt, bool *have_load)
{
    belt__jpath p = belt__jp_key(NULL, "arrival");
    json_t *obj = json_object_get(L->root, "arrival");
    *have_load = false;
    if (obj == NULL)
        return fail(L, NULL, false,
                    "missing \"arrival\" (e.g. {\"process\": \"poisson\", \"load\": 0.5})");
    if (!json_is_object(obj))
        return fail(L, &p, false, "expected an object (got %s)", belt__jtype(obj));
    int rc = check_keys(L, obj, &p, arrival_keys);
    if (rc != BELT_OK)
        return rc;

    belt__jpath pp, pl, pr, pf;
    json_t *proc = at(L, "arrival", "process", &pp);
    json_t *load = at(L, "arrival", "load", &pl);
    json_t *rate = at(L, "arrival", "rate", &pr);
    json_t *file = at(L, "arrival", "file", &pf);
    int kind = BELT__ARRIVAL_POISSON;
    if (proc != NULL) {
        if (!json_is_string(proc))
            return fail(L, &pp, false, "expected a string (got %s)",
                        belt__jtype(proc));
        const char *s = json_string_value(proc);
        kind = -1;
        for (int i = 0; process_names[i] != NULL; i++)
            if (strcmp(s, process_names[i]) == 0)
                kind = i;
        if (kind < 0)
            return unknown_name(L, &pp, "arrival process", s, process_names);
    } else if (file != NULL) {
        kind = BELT__ARRIVAL_TRACE;
    }
    pt->arrival = (belt__arrival_kind)kind;

    if (kind == BELT__ARRIVAL_POISSON || kind == BELT__ARRIVAL_RATE) {
        if (load != NULL && rate != NULL)
            return fail(L, &pr, true, "has both \"load\" and \"rate\" (use one)");
        if (load == NULL && rate == NULL)
            return fail(L, &p, false, "process \"%s\" needs a \"load\" (utilisation, e.g. 0.9) or a \"rate\" (jobs per second)",
                        process_names[kind]);
        if (load != NULL) {
            if ((rc = want_number(L, &pl, load, &pt->load)) != BELT_OK)
                return rc;
            if (!(pt->load > 0))
                return fail(L, &pl, false, "must be > 0 (got %g)", pt->load);
            *have_load = true;
        } else {
            if ((rc = want_number(L, &pr, rate, &pt->rate)) != BELT_OK)
                return rc;
            if (!(pt->rate > 0))
                return fail(L, &pr, false, "must be > 0 jobs per second (got %g)",
                            pt->rate);
        }
        if (file != NULL)
            return fail(L, &pf, true, "\"file\" is for process \"trace\"");
    } else {
        if (load != NULL)
            return fail(L, &pl, true, "not allowed for process \"%s\"",
                        process_names[kind]);
        if (rate != NULL)
            return fail(L, &pr, true, "not allowed for process \"%s\"",
                        process_names[kind]);
    }
    if (kind == BELT__ARRIVAL_TRACE) {
        if (file == NULL)
            return fail(L, &p, false, "process \"trace\" needs a \"file\"");
        if (!json_is_string(file) || json_string_length(file) == 0)
            return fail(L, &pf, false, "expected a file name");
        const char *f = json_string_value(file);
        belt__buf b = { 0 };
        if (f[0] != '/' && L->dir != NULL) {
            belt__buf_adds(&b, L->dir);
            belt__buf_addc(&b, '/');
        }
        belt__buf_adds(&b, f);
        if (b.oom) {
            belt__buf_free(&b);
            return belt__fail_oom(L->c.err);
        }
        pt->trace_path = b.p;
        char msg[400];
        rc = belt__trace_load(pt->trace_path, &pt->trace, msg, sizeof msg);
        if (rc == BELT_ENOMEM)
            return belt__fail_oom(L->c.err);
        if (rc != BELT_OK)
            return fail(L, &pf, false, "%s", msg);
    }
    return BELT_OK;
}

static int point_service(loader *L, belt__exp_point *pt)
{
    belt__jpath p;
    json_t *svc = at(L, "service", NULL, &p);
    if (pt->arrival == BELT__ARRIVAL_TRACE) {
        if (svc != NULL)
            return fail(L, &p, true,
                        "a trace gives the service times (remove \"service\")");
        pt->service_text = strdup(pt->trace_path);
        return pt->service_text != NULL ? BELT_OK : belt__fail_oom(L->c.err);
    }
    if (svc == NULL)
        return fail(L, NULL, false,
                    "missing \"service\" (e.g. {\"dist\": \"exponential\", \"mean\": \"1ms\"})");
    if (!json_is_object(svc))
        return fail(L, &p, false, "expected a distribution object (got %s)",
                    belt__jtype(svc));
    /* Inner axes: a concrete copy with this point's items. */
    json_t *obj = json_copy(svc);
    if (obj == NULL)
        return belt__fail_oom(L->c.err);
    const char *key;
    json_t *v;
    json_object_foreach(svc, key, v) {
        belt__jpath q;
        json_t *item = at(L, "service", key, &q);
        if (item != v && json_object_set(obj, key, item) != 0) {
            json_decref(obj);
            return belt__fail_oom(L->c.err);
        }
    }
    char msg[400];
    int rc = belt__dist_from_json(&pt->service, obj, NULL, msg, sizeof msg);
    json_decref(obj);
    if (rc != BELT_OK) {
        /* experiment/dist.c's message starts with the key ("alpha: ..."):
         * point at that key's value when it is one. */
        char k[64];
        size_t n = strcspn(msg, ":");
        belt__jpath q = p;
        if (n < sizeof k && msg[n] == ':') {
            memcpy(k, msg, n);
            k[n] = '\0';
            if (json_object_get(svc, k) != NULL) {
                belt__jpath q2;
                (void)at(L, "service", k, &q2);
                q = q2;
                const char *rest = msg + n + 1;
                while (*rest == ' ')
                    rest++;
                return fail(L, &q, false, "%s", rest);
            }
        }
        return fail(L, &q, false, "%s", msg);
    }
    char d[200];
    belt__dist_describe(&pt->service, d, sizeof d);
    pt->service_text = strdup(d);
    return pt->service_text != NULL ? BELT_OK : belt__fail_oom(L->c.err);
}

static int point_caps(loader *L, belt__exp_point *pt, bool have_load)
{
    belt__jpath pj, pm, pw;
    json_t *jobs = at(L, "jobs", NULL, &pj);
    json_t *mt = at(L, "max_time", NULL, &pm);
    json_t *wu = at(L, "warmup", NULL, &pw);
    int rc;
    bool capped = false;
    if (jobs != NULL) {
        if ((rc = want_uint(L, &pj, jobs, 1, UINT64_C(10000000000), &pt->jobs)) != BELT_OK)
            return rc;
        capped = true;
    }
    if (mt != NULL) {
        if ((rc = want_seconds(L, &pm, mt, &pt->max_time)) != BELT_OK)
            return rc;
        if (!(pt->max_time > 0))
            return fail(L, &pm, false, "must be more than 0");
        capped = true;
    }
    if (L->ov->jobs > 0) {
        pt->jobs = L->ov->jobs;
        capped = true;
    }
    if (wu != NULL) {
        if ((rc = want_number(L, &pw, wu, &pt->warmup)) != BELT_OK)
            return rc;
        if (!(pt->warmup >= 0 && pt->warmup < 1))
            return fail(L, &pw, false,
                        "a fraction of the jobs in [0, 1) (got %g)", pt->warmup);
    }

    if (pt->arrival == BELT__ARRIVAL_TRACE) {
        if (pt->jobs == 0 || pt->jobs > pt->trace.n)
            pt->jobs = pt->trace.n;
        return BELT_OK;
    }
    if (pt->arrival == BELT__ARRIVAL_BATCH && pt->jobs == 0)
        return fail(L, NULL, false,
                    "batch arrivals need \"jobs\" (how many arrive at once)");
    if (pt->jobs == 0)
        pt->jobs = pt->max_time > 0 ? UNCAPPED_JOBS : DEFAULT_JOBS;

    /* Offered load: from the rate, or the rate from the load. */
    if (pt->arrival == BELT__ARRIVAL_POISSON || pt->arrival == BELT__ARRIVAL_RATE) {
        double one = belt__rate_for_load(1.0, &pt->service, pt->workers, pt->speeds);
        if (have_load)
            pt->rate = pt->load * one;
        else
            pt->load = one > 0 ? pt->rate / one : 0;
        if (!(pt->rate > 0))
            return fail(L, NULL, false,
                        "the service time is 0: a load gives no arrival rate (give \"rate\")");
        if (pt->load >= 1) {
            belt__jpath p;
            (void)at(L, "arrival", have_load ? "load" : "rate", &p);
            if (!capped)
                return fail(L, &p, false,
                            "load %.3g >= 1: the queue grows without bound; cap the run with \"jobs\" or \"max_time\"",
                            pt->load);
            pt->overload = true;
        }
    }
    return BELT_OK;
}

static int point_rest(loader *L, belt__exp_point *pt)
{
    belt__jpath p;
    json_t *v;
    uint64_t u;
    int rc;
    pt->seed = 1;
    if ((v = at(L, "seed", NULL, &p)) != NULL) {
        if ((rc = want_uint(L, &p, v, 0, INT64_MAX, &pt->seed)) != BELT_OK)
            return rc;
    }
    if (L->ov->have_seed)
        pt->seed = L->ov->seed;
    pt->repeat = 1;
    if ((v = at(L, "repeat", NULL, &p)) != NULL) {
        if ((rc = want_uint(L, &p, v, 1, BELT__EXP_MAX_REPEAT, &u)) != BELT_OK)
            return rc;
        pt->repeat = (unsigned)u;
    }
    if ((v = at(L, "d", NULL, &p)) != NULL) {
        if ((rc = want_uint(L, &p, v, 1, BELT_POOL_MAX_WORKERS, &u)) != BELT_OK)
            return rc;
        pt->d = (unsigned)u;
    }
    if ((v = at(L, "command", NULL, &p)) != NULL) {
        if (!json_is_string(v) || json_string_length(v) == 0)
            return fail(L, &p, false, "expected a shell command (a non-empty string)");
        if ((pt->command = strdup(json_string_value(v))) == NULL)
            return belt__fail_oom(L->c.err);
    }
    if ((v = at(L, "spin", NULL, &p)) != NULL) {
        if (!json_is_boolean(v))
            return fail(L, &p, false, "expected true or false (got %s)",
                        belt__jtype(v));
        pt->spin = json_is_true(v);
    }
    return BELT_OK;
}

static int load_point(loader *L, belt__exp_point *pt)
{
    belt__jpath p;
    json_t *v = at(L, "workers", NULL, &p);
    uint64_t w = 0;
    int rc;
    if (v == NULL)
        return fail(L, NULL, false, "missing \"workers\" (how many workers)");
    if (!json_is_integer(v))
        return fail(L, &p, false, "expected a number of workers (got %s)",
                    belt__jtype(v));
    if (json_integer_value(v) == 0)
        return fail(L, &p, false, "must be at least 1 (0 workers run nothing)");
    if ((rc = want_uint(L, &p, v, 1, BELT_POOL_MAX_WORKERS, &w)) != BELT_OK)
        return rc;
    pt->workers = (unsigned)w;
    bool have_load;
    if ((rc = point_policy(L, pt)) != BELT_OK ||
        (rc = point_speeds(L, pt)) != BELT_OK ||
        (rc = point_arrival(L, pt, &have_load)) != BELT_OK ||
        (rc = point_service(L, pt)) != BELT_OK ||
        (rc = point_caps(L, pt, have_load)) != BELT_OK ||
        (rc = point_rest(L, pt)) != BELT_OK)
        return rc;
    return BELT_OK;
}

static void point_free(belt__exp_point *pt)
{
    free(pt->policy);
    free(pt->trace_path);
    belt__trace_free(&pt->trace);
    free(pt->service_text);
    free(pt->speeds);
    free(pt->command);
}

static int add_warning(belt__experiment *e, const char *text)
{
    char **w = realloc(e->warnings, (e->nwarnings + 1) * sizeof *w);
    if (w == NULL)
        return BELT_ENOMEM;
    e->warnings = w;
    if ((w[e->nwarnings] = strdup(text)) == NULL)
        return BELT_ENOMEM;
    e->nwarnings++;
    return BELT_OK;
}

static int expand(loader *L)
{
    belt__experiment *e = L->e;
    uint64_t n = 1;
    for (size_t a = 0; a < L->nax; a++) {
        n *= L->ax[a].n;
        if (n > BELT__EXP_MAX_POINTS)
            return fail(L, &L->ax[a].path, false,
                        "the sweep has more than %u points", BELT__EXP_MAX_POINTS);
    }
    e->points = calloc(n, sizeof *e->points);
    if (e->points == NULL)
        return belt__fail_oom(L->c.err);
    for (size_t i = 0; i < (size_t)n; i++) {
        size_t rest = i;
        for (size_t a = L->nax; a-- > 0;) {
            L->digit[a] = rest % L->ax[a].n;
            rest /= L->ax[a].n;
        }
        belt__exp_point *pt = &e->points[i];
        pt->index = i;
        e->npoints = i + 1;
        int rc = load_point(L, pt);
        if (rc != BELT_OK)
            return rc;
        if (pt->overload) {
            char w[300];
            snprintf(w, sizeof w,
                     "warning: point %zu: load %.3g >= 1: the queue grows without bound; the run is capped at %s",
                     i + 1, pt->load,
                     pt->max_time > 0 ? "max_time" : "jobs");
            if (add_warning(e, w) != BELT_OK)
                return belt__fail_oom(L->c.err);
        }
    }
    return BELT_OK;
}

/* ---- entry points ------------------------------------------------------- */

void belt__exp_overrides_init(belt__exp_overrides *o)
{
    memset(o, 0, sizeof *o);
    o->mode = -1;
}

void belt__exp_workload(const belt__exp_point *pt, belt__workload *w)
{
    *w = (belt__workload){
        .arrival = pt->arrival,
        .rate = pt->rate,
        .service = pt->service,
        .trace = pt->arrival == BELT__ARRIVAL_TRACE ? &pt->trace : NULL,
        .jobs = pt->jobs,
        .max_time = pt->max_time,
        .warmup = pt->warmup,
    };
}

const char *belt__exp_mode_name(belt__exp_mode m)
{
    return m == BELT__EXP_LIVE ? "live" : "simulate";
}

void belt__experiment_free(belt__experiment *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->npoints; i++)
        point_free(&e->points[i]);
    free(e->points);
    for (size_t i = 0; i < e->naxes; i++)
        free(e->axis_name[i]);
    for (size_t i = 0; i < e->nwarnings; i++)
        free(e->warnings[i]);
    free(e->warnings);
    free(e->description);
    free(e->source);
    free(e);
}

static int parse_root(loader *L)
{
    json_t *root = L->root;
    if (!json_is_object(root))
        return fail(L, NULL, false, "expected an object (got %s)",
                    belt__jtype(root));
    int rc = check_keys(L, root, NULL, top_keys);
    if (rc != BELT_OK)
        return rc;
    belt__jpath p = belt__jp_key(NULL, "mode");
    json_t *m = json_object_get(root, "mode");
    if (m != NULL) {
        if (!json_is_string(m))
            return fail(L, &p, false, "expected \"live\" or \"simulate\" (got %s)",
                        belt__jtype(m));
        const char *s = json_string_value(m);
        if (strcmp(s, "live") == 0)
            L->e->mode = BELT__EXP_LIVE;
        else if (strcmp(s, "simulate") != 0)
            return unknown_name(L, &p, "mode", s, mode_names);
    }
    if (L->ov->mode >= 0)
        L->e->mode = (belt__exp_mode)L->ov->mode;
    json_t *d = json_object_get(root, "description");
    if (d != NULL) {
        p = belt__jp_key(NULL, "description");
        if (!json_is_string(d))
            return fail(L, &p, false, "expected a string (got %s)", belt__jtype(d));
        if ((L->e->description = strdup(json_string_value(d))) == NULL)
            return belt__fail_oom(L->c.err);
    }
    if ((rc = merge_live(L)) != BELT_OK || (rc = find_axes(L)) != BELT_OK)
        return rc;
    return expand(L);
}

static belt__experiment *load_text(const char *text, size_t len,
                                   const char *source, const char *dir,
                                   const belt__exp_overrides *ov,
                                   belt_config_error *err)
{
    belt_config_error scratch;
    if (err == NULL)
        err = &scratch;
    belt__error_start(err, source, NULL);
    belt__exp_overrides none;
    if (ov == NULL) {
        belt__exp_overrides_init(&none);
        ov = &none;
    }
    belt__experiment *e = calloc(1, sizeof *e);
    if (e == NULL || (e->source = strdup(source)) == NULL) {
        free(e);
        snprintf(err->text, sizeof err->text, "out of memory");
        return NULL;
    }
    json_t *root = belt__json_parse(text, len, err);
    if (root == NULL) {
        belt__experiment_free(e);
        return NULL;
    }
    loader L = { .c = { text, len, err, NULL }, .root = root, .dir = dir,
                 .ov = ov, .e = e };
    int rc = parse_root(&L);
    json_decref(root);
    if (rc != BELT_OK) {
        belt__experiment_free(e);
        return NULL;
    }
    return e;
}

belt__experiment *belt__experiment_load_string(const char *json,
                                               const char *source,
                                               const belt__exp_overrides *ov,
                                               belt_config_error *err)
{
    if (belt__config_string(json, &source, err) != BELT_OK)
        return NULL;
    return load_text(json, strlen(json), source, NULL, ov, err);
}

belt__experiment *belt__experiment_load(const char *path,
                                        const belt__exp_overrides *ov,
                                        belt_config_error *err)
{
    belt_config_error scratch;
    if (err == NULL)
        err = &scratch;
    belt__buf b = { 0 };
    if (belt__config_read(path, &b, err) != BELT_OK)
        return NULL;
    /* Trace files are relative to the config's directory. */
    char *dir = strdup(path);
    if (dir == NULL) {
        belt__buf_free(&b);
        snprintf(err->text, sizeof err->text, "out of memory");
        return NULL;
    }
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    belt__experiment *e = load_text(belt__buf_str(&b), b.len, path,
                                    slash != NULL ? (dir[0] ? dir : "/") : NULL,
                                    ov, err);
    free(dir);
    belt__buf_free(&b);
    return e;
}
