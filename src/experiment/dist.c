/* experiment/dist.c: service-time distributions (experiment/dist.h):
 * validation, parsing from the config, sampling, moments.
 *
 * Sampling algorithms (all from one belt__rng, uniforms in (0, 1] so that
 * logarithms are finite):
 *   exponential   inversion, -mean * ln(u)
 *   uniform       min + (max - min) * u
 *   lognormal     exp(mu + sigma * z), z standard normal by Box-Muller
 *                 (Box and Muller, 1958), one normal per call (the second of
 *                 the pair is dropped: no hidden state, so a dist stays a
 *                 plain value)
 *   bounded       inversion of F(x) = (1 - (L/x)^a) / (1 - (L/H)^a) on
 *   Pareto        [L, H]: x = L * (1 - u (1 - (L/H)^a))^(-1/a)
 *                 (Harchol-Balter's bounded Pareto, e.g. "Task assignment
 *                 with unknown duration", JACM 2002)
 *   bimodal       long with probability p_long, else short
 *
 * Moments are closed forms; the bounded Pareto's k-th moment is
 *   E[X^k] = a L^a / (1 - (L/H)^a) * (L^(k-a) - H^(k-a)) / (a - k)   (k != a)
 *          = a L^a / (1 - (L/H)^a) * ln(H / L)                       (k == a)
 *
 * Invariant: a belt__dist built by belt__dist_init has valid parameters and
 * its derived ones filled (lognormal mu, Pareto 1 - (L/H)^a), so sampling
 * never checks anything.
 */
#include "experiment/dist.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "belt/error.h"
#include "belt/job.h"
#include "util/err.h"

static const char *const kind_names[] = {
    "constant", "uniform", "exponential", "lognormal", "pareto", "bimodal",
};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])

/* The config keys of each kind, in the order of belt__dist_init's a, b, c
 * ("value" and "mean" are both accepted for constant: see keys_alias). */
static const char *const kind_keys[NKINDS][3] = {
    { "value", NULL, NULL },     { "min", "max", NULL },
    { "mean", NULL, NULL },      { "mean", "sigma", NULL },
    { "alpha", "min", "max" },   { "short", "long", "p_long" },
};

/* Whether key k of a kind is a time (duration) or a plain number. */
static int key_is_time(const char *key)
{
    return strcmp(key, "sigma") != 0 && strcmp(key, "alpha") != 0 &&
           strcmp(key, "p_long") != 0;
}

const char *belt__dist_name(belt__dist_kind kind)
{
    return (unsigned)kind < NKINDS ? kind_names[kind] : "unknown";
}

int belt__dist_init(belt__dist *d, belt__dist_kind kind, double a, double b,
                    double c, char *msg, size_t msg_size)
{
    belt__dist t = { .kind = kind, .p = { a, b, c, 0.0 } };
    if ((unsigned)kind >= NKINDS)
        return belt__errf(msg, msg_size, BELT_ECONFIG,
                          "dist: unknown kind %d", (int)kind);
    const char *const *keys = kind_keys[kind];
    for (int i = 0; i < 3 && keys[i] != NULL; i++) {
        double v = t.p[i];
        if (!isfinite(v))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "%s: must be a finite number", keys[i]);
        if (key_is_time(keys[i]) && v < 0.0)
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "%s: must be >= 0", keys[i]);
    }
    switch (kind) {
    case BELT__DIST_CONSTANT:
        break;
    case BELT__DIST_UNIFORM:
        if (b < a)
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "max: must be >= min");
        break;
    case BELT__DIST_EXPONENTIAL:
        if (!(a > 0.0))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "mean: must be > 0");
        break;
    case BELT__DIST_LOGNORMAL:
        if (!(a > 0.0))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "mean: must be > 0");
        if (b < 0.0)
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "sigma: must be >= 0");
        if (b > 10.0)
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "sigma: must be <= 10");
        t.p[2] = log(a) - b * b / 2.0;
        break;
    case BELT__DIST_PARETO:
        if (!(a > 0.0))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "alpha: must be > 0");
        if (!(b > 0.0))
            return belt__errf(msg, msg_size, BELT_ECONFIG, "min: must be > 0");
        if (!(c > b))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "max: must be > min");
        t.p[3] = 1.0 - pow(b / c, a);
        if (!(t.p[3] > 0.0))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "max: too close to min for alpha (empty range)");
        break;
    case BELT__DIST_BIMODAL:
        if (b < a)
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "long: must be >= short");
        if (!(c >= 0.0 && c <= 1.0))
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "p_long: must be in [0, 1]");
        break;
    }
    *d = t;
    return BELT_OK;
}

/* Reads obj[key] as seconds (duration string or number) or, for non-time
 * keys, as a number.  0 and *out set, or BELT_ECONFIG. */
static int get_param(const json_t *obj, const char *path, const char *key,
                     double *out, char *msg, size_t size)
{
    const json_t *v = json_object_get(obj, key);
    const char *sep = *path ? "." : "";
    if (v == NULL)
        return belt__errf(msg, size, BELT_ECONFIG, "%s%smissing \"%s\"", path,
                          *path ? ": " : "", key);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return BELT_OK;
    }
    if (json_is_string(v) && key_is_time(key)) {
        int64_t ns;
        if (belt_parse_duration(json_string_value(v), &ns) == BELT_OK) {
            *out = (double)ns * 1e-9;
            return BELT_OK;
        }
    }
    if (key_is_time(key))
        return belt__errf(msg, size, BELT_ECONFIG,
                          "%s%s%s: expected a duration like \"1ms\" or a number of "
                          "seconds",
                          path, sep, key);
    return belt__errf(msg, size, BELT_ECONFIG,
                      "%s%s%s: expected a number", path, sep, key);
}

int belt__dist_from_json(belt__dist *d, const json_t *obj, const char *path,
                         char *msg, size_t msg_size)
{
    if (path == NULL)
        path = "";
    const char *sep = *path ? "." : "";
    if (!json_is_object(obj))
        return belt__errf(msg, msg_size, BELT_ECONFIG,
                          "%s%sexpected an object like "
                          "{\"dist\": \"exponential\", \"mean\": \"1ms\"}",
                          path, *path ? ": " : "");
    const json_t *jk = json_object_get(obj, "dist");
    if (jk == NULL)
        return belt__errf(msg, msg_size, BELT_ECONFIG,
                          "%s%smissing \"dist\"", path,
                          *path ? ": " : "");
    const char *name = json_string_value(jk);
    if (name == NULL)
        return belt__errf(msg, msg_size, BELT_ECONFIG,
                          "%s%sdist: expected a string", path, sep);
    unsigned kind = 0;
    while (kind < NKINDS && strcmp(kind_names[kind], name) != 0)
        kind++;
    if (kind == NKINDS && strcmp(name, "bounded-pareto") == 0)
        kind = BELT__DIST_PARETO;
    if (kind == NKINDS)
        return belt__errf(msg, msg_size, BELT_ECONFIG,
                          "%s%sdist: unknown distribution \"%s\" (expected "
                          "constant, uniform, exponential, lognormal, pareto, "
                          "bounded-pareto or bimodal)",
                          path, sep, name);

    const char *keys[3];
    memcpy(keys, kind_keys[kind], sizeof keys);
    /* constant: "value", or "mean" as an alias (not both). */
    if (kind == BELT__DIST_CONSTANT && json_object_get(obj, "value") == NULL &&
        json_object_get(obj, "mean") != NULL)
        keys[0] = "mean";

    /* Reject keys this kind does not take (typos would be silent). */
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        int ok = strcmp(key, "dist") == 0;
        for (int i = 0; i < 3 && !ok; i++)
            ok = keys[i] != NULL && strcmp(keys[i], key) == 0;
        if (!ok) {
            char expect[64] = "";
            for (int i = 0; i < 3 && keys[i] != NULL; i++) {
                size_t l = strlen(expect);
                snprintf(expect + l, sizeof expect - l, "%s%s",
                         i ? ", " : "", keys[i]);
            }
            return belt__errf(msg, msg_size, BELT_ECONFIG,
                              "%s%s%s: unknown key for %s (expected %s)", path, sep,
                              key, kind_names[kind], expect);
        }
    }

    double p[3] = { 0.0, 0.0, 0.0 };
    for (int i = 0; i < 3 && keys[i] != NULL; i++) {
        int rc = get_param(obj, path, keys[i], &p[i], msg, msg_size);
        if (rc != BELT_OK)
            return rc;
    }
    char inner[192];
    int rc = belt__dist_init(d, (belt__dist_kind)kind, p[0], p[1], p[2], inner,
                             sizeof inner);
    if (rc != BELT_OK)
        return belt__errf(msg, msg_size, BELT_ECONFIG,
                          "%s%s%s", path, sep, inner);
    return BELT_OK;
}

double belt__dist_sample(const belt__dist *d, belt__rng *r)
{
    switch (d->kind) {
    case BELT__DIST_CONSTANT:
        return d->p[0];
    case BELT__DIST_UNIFORM:
        return d->p[0] + (d->p[1] - d->p[0]) * belt__rng_unit(r);
    case BELT__DIST_EXPONENTIAL:
        return -d->p[0] * log(belt__rng_unit(r));
    case BELT__DIST_LOGNORMAL: {
        double u1 = belt__rng_unit(r), u2 = belt__rng_unit(r);
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        return exp(d->p[2] + d->p[1] * z);
    }
    case BELT__DIST_PARETO: {
        double u = belt__rng_unit(r);
        double x = d->p[1] * pow(1.0 - u * d->p[3], -1.0 / d->p[0]);
        return x < d->p[2] ? x : d->p[2]; /* rounding past H */
    }
    case BELT__DIST_BIMODAL:
        return belt__rng_unit(r) <= d->p[2] ? d->p[1] : d->p[0];
    }
    return 0.0;
}

/* E[X^k] of the bounded Pareto d (k = 1 or 2). */
static double pareto_moment(const belt__dist *d, double k)
{
    double a = d->p[0], lo = d->p[1], hi = d->p[2];
    double c = a * pow(lo, a) / d->p[3];
    if (fabs(k - a) < 1e-12)
        return c * log(hi / lo);
    return c * (pow(lo, k - a) - pow(hi, k - a)) / (a - k);
}

double belt__dist_mean(const belt__dist *d)
{
    switch (d->kind) {
    case BELT__DIST_CONSTANT:
        return d->p[0];
    case BELT__DIST_UNIFORM:
        return (d->p[0] + d->p[1]) / 2.0;
    case BELT__DIST_EXPONENTIAL:
    case BELT__DIST_LOGNORMAL:
        return d->p[0];
    case BELT__DIST_PARETO:
        return pareto_moment(d, 1.0);
    case BELT__DIST_BIMODAL:
        return (1.0 - d->p[2]) * d->p[0] + d->p[2] * d->p[1];
    }
    return 0.0;
}

double belt__dist_var(const belt__dist *d)
{
    double m = belt__dist_mean(d), w;
    switch (d->kind) {
    case BELT__DIST_CONSTANT:
        return 0.0;
    case BELT__DIST_UNIFORM:
        w = d->p[1] - d->p[0];
        return w * w / 12.0;
    case BELT__DIST_EXPONENTIAL:
        return m * m;
    case BELT__DIST_LOGNORMAL:
        return expm1(d->p[1] * d->p[1]) * m * m;
    case BELT__DIST_PARETO:
        w = pareto_moment(d, 2.0) - m * m;
        return w > 0.0 ? w : 0.0;
    case BELT__DIST_BIMODAL:
        w = (1.0 - d->p[2]) * d->p[0] * d->p[0] +
            d->p[2] * d->p[1] * d->p[1] - m * m;
        return w > 0.0 ? w : 0.0;
    }
    return 0.0;
}

double belt__dist_scv(const belt__dist *d)
{
    double m = belt__dist_mean(d);
    return m > 0.0 ? belt__dist_var(d) / (m * m) : 0.0;
}

int belt__dist_describe(const belt__dist *d, char *buf, size_t size)
{
    const char *name = belt__dist_name(d->kind);
    if ((unsigned)d->kind >= NKINDS)
        return snprintf(buf, size, "%s", name);
    const char *const *keys = kind_keys[d->kind];
    int n = snprintf(buf, size, "%s(", name);
    for (int i = 0; i < 3 && keys[i] != NULL; i++) {
        size_t at = n > 0 && (size_t)n < size ? (size_t)n : size;
        n += snprintf(buf + at, size - at, "%s%s=%g", i ? "," : "", keys[i],
                      d->p[i]);
    }
    size_t at = n > 0 && (size_t)n < size ? (size_t)n : size;
    n += snprintf(buf + at, size - at, ")");
    return n;
}
