/* experiment/dist.h: service-time distributions for `belt experiment`
 * (simulated and live), parsed from the config, sampled with the policies'
 * xorshift64* generator (util/rng.h).  Internal: never installed.
 *
 * All times are seconds (doubles).  A belt__dist is a small value (no heap):
 * copy it freely.  Sampling reads only the dist and the caller's generator:
 * no global state, so the same dist, generator state and call sequence give
 * the same samples on every run.
 *
 *   kind         config                                          p[]
 *   constant     {"dist":"constant","value":"1ms"}                value
 *   uniform      {"dist":"uniform","min":"1ms","max":"3ms"}       min, max
 *   exponential  {"dist":"exponential","mean":"1ms"}              mean
 *   lognormal    {"dist":"lognormal","mean":"1ms","sigma":1.0}    mean, sigma,
 *                                                                 mu (derived)
 *   pareto       {"dist":"pareto","alpha":1.1,"min":"10us",      alpha, min,
 *                 "max":"100ms"}  (bounded Pareto; "bounded-pareto"     max,
 *                 is accepted too)                               1-(min/max)^a
 *   bimodal      {"dist":"bimodal","short":"1ms","long":"100ms", short, long,
 *                 "p_long":0.01}                                  p_long
 *
 * Durations are strings parsed by belt_parse_duration ("1ms", "250us",
 * "1.5s") or non-negative JSON numbers in seconds.  The lognormal is given
 * by its mean (not the mean of its logarithm) so that "mean" means the same
 * thing for every kind: mu = ln(mean) - sigma^2/2.
 */
#ifndef BELT_DIST_H
#define BELT_DIST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/rng.h"

typedef enum belt__dist_kind {
    BELT__DIST_CONSTANT = 0, /* p = {value} */
    BELT__DIST_UNIFORM,      /* p = {min, max}, min <= max */
    BELT__DIST_EXPONENTIAL,  /* p = {mean} */
    BELT__DIST_LOGNORMAL,    /* p = {mean, sigma, mu} */
    BELT__DIST_PARETO,       /* bounded: p = {alpha, min, max, derived} */
    BELT__DIST_BIMODAL       /* p = {short, long, p_long} */
} belt__dist_kind;

typedef struct belt__dist {
    belt__dist_kind kind;
    double p[4]; /* parameters as in the table above; set by belt__dist_init
                  * or belt__dist_from_json, which fill the derived ones */
} belt__dist;

/* Fills *d with a distribution of `kind` and parameters a, b, c (in the
 * order of the table above: constant(value), uniform(min, max),
 * exponential(mean), lognormal(mean, sigma), pareto(alpha, min, max),
 * bimodal(short, long, p_long); unused ones are ignored) and computes the
 * derived parameters.  Returns BELT_OK, or BELT_ECONFIG with a message in
 * msg (if msg_size > 0) naming the parameter ("alpha: must be > 0"; no
 * path prefix) when a parameter is out of range; *d is then untouched.
 * Ranges: times finite and >= 0 (exponential and lognormal mean > 0; pareto
 * 0 < min < max; uniform min <= max; bimodal short <= long), sigma >= 0,
 * alpha > 0, 0 <= p_long <= 1. */
int belt__dist_init(belt__dist *d, belt__dist_kind kind, double a, double b,
                    double c, char *msg, size_t msg_size);

/* Parses the config object `obj` (see the table above) into *d.  `path` is
 * the object's place in the config ("service"; NULL or "" for none) and
 * prefixes messages: "service.alpha: must be > 0", "service.dist: unknown
 * distribution \"foo\" (expected constant, uniform, ...)", "service.mean:
 * expected a duration like \"1ms\" or a number of seconds", "service: missing
 * \"mean\"", "service.foo: unknown key".  Returns BELT_OK, or BELT_ECONFIG
 * with the message in msg (*d untouched).  Can't run out of memory. */
int belt__dist_from_json(belt__dist *d, const json_t *obj, const char *path,
                         char *msg, size_t msg_size);

/* One sample (seconds, >= 0) drawn with r.  Exponential by inversion
 * (-mean * log(u)), lognormal by Box-Muller (one normal per call, two
 * uniforms), bounded Pareto by inversion, bimodal by one uniform.  d must
 * come from belt__dist_init/_from_json.  Can't fail. */
double belt__dist_sample(const belt__dist *d, belt__rng *r);

/* The distribution's mean E[S] in seconds.  Can't fail. */
double belt__dist_mean(const belt__dist *d);

/* Its variance Var[S] in seconds^2.  Can't fail. */
double belt__dist_var(const belt__dist *d);

/* Its squared coefficient of variation Var[S] / E[S]^2 (0 when the mean is
 * 0).  Can't fail. */
double belt__dist_scv(const belt__dist *d);

/* The kind's config name ("exponential", "pareto", ...); static storage.
 * "unknown" for an out-of-range kind.  Can't fail. */
const char *belt__dist_name(belt__dist_kind kind);

/* Writes a one-line description such as "exponential(mean=0.001)" or
 * "pareto(alpha=1.1,min=1e-05,max=0.1)" (times in seconds, %g) into buf
 * (NUL-terminated, truncated to size).  Returns what snprintf returns. */
int belt__dist_describe(const belt__dist *d, char *buf, size_t size);

#endif /* BELT_DIST_H */
