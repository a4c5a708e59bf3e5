/* config/internal.h: what the config loader (config/load.c), the matrix
 * expander (config/matrix.c), the dependency resolver (config/deps.c), the
 * error locator (config/locate.c) and the scheduler (config/sched.c) share.
 * Internal: never installed; every name is belt__.
 *
 * The loaded config is a list of job templates (belt__tpl), each covering
 * the seqs [first, first + npoints).  A seq is decoded into a template (by
 * binary search on `first`) and a point; a point into one digit per matrix
 * key (mixed radix, first key most significant).  Everything a job needs is
 * rebuilt from (template, digits) on demand, so memory does not grow with
 * the number of points.
 *
 * Dependencies are stored per "group".  Each "after" pattern of a template
 * is a belt__dep; the pattern uses a subset K of the template's matrix keys
 * (a bit mask), so it takes one concrete value per "sub-point" (one choice
 * of digits for the keys in K; nsub of them, 1 when K is empty).  Group
 * group0 + s holds the sorted seqs the concrete pattern of sub-point s
 * matches; every point of the template whose K-digits are s waits for all of
 * them.  So a job waits for exactly one group per pattern of its template,
 * "fetch-*" costs one group however many points wait on it, and
 * "fetch-{n}" costs one group (of one member) per value of n.
 */
#ifndef BELT_CONFIG_INTERNAL_H
#define BELT_CONFIG_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "belt/config.h"
#include "config/jsonload.h"
#include "util/buf.h"
#include "util/hash.h"

/* At most this many matrix keys per job (they index a 64-bit mask). */
#define BELT__MAX_KEYS 32

/* Work allowed to resolve "after" patterns (fnmatch calls plus dependency
 * edges stored) before the config is rejected as too costly. */
#define BELT__DEP_BUDGET 20000000u

/* ---- templates -------------------------------------------------------- */

/* One entry of "jobs", with the defaults merged in.  Strings are templates
 * (placeholders not yet substituted).  -1 / NULL / 0 means "not set": the
 * job keeps belt_job_init()'s value. */
typedef struct belt__tpl {
    size_t index;             /* position in "jobs" */
    char *id;                 /* id template as written; NULL: derived */
    char *id_prefix;          /* literal text every id of it starts with */
    belt_job_kind kind;
    char *run;                /* NULL: none */
    char **argv;              /* argc items; NULL: none */
    size_t argc;
    char **env_names;         /* nenv names and value templates */
    char **env_vals;
    size_t nenv;
    char *cwd, *stdin_path, *output_dir;
    int64_t duration_ns, timeout_ns, kill_grace_ns;
    int64_t retry_delay_ns, retry_max_delay_ns;
    int retries;              /* -1: not set */
    int output;               /* -1: not set, else a belt_output_mode */
    size_t output_limit;      /* 0: not set */
    unsigned nkeys;           /* matrix keys, in JSON order */
    char **keys;
    size_t *nvals;            /* values per key (>= 1) */
    char ***vals;             /* each value as text */
    uint64_t *stride;         /* point = sum of digit[k] * stride[k] */
    uint64_t npoints;         /* product of nvals (1 without a matrix) */
    uint64_t first;           /* seq of point 0 */
    size_t dep0, ndep;        /* its patterns: cfg->deps[dep0 .. +ndep) */
} belt__tpl;

/* One "after" pattern of a template (see the top of this file). */
typedef struct belt__dep {
    size_t tpl;               /* index into cfg->tpl */
    size_t item;              /* index in the job's "after" array */
    char *pattern;            /* as written */
    uint64_t keymask;         /* matrix keys it uses (bit k: key k) */
    uint64_t nsub;            /* sub-points: product of their nvals */
    uint32_t group0;          /* its groups: group0 .. group0 + nsub - 1 */
} belt__dep;

struct belt_config {
    char *source;
    char *dir;                /* the config file's folder when it has one
                               * ("configs" for configs/x.json), or NULL:
                               * relative cwd, stdin and output_dir values
                               * (after substitution) and "results" are
                               * taken from there */
    int workers;              /* -1 unset, 0 all CPUs, else the count */
    int workers_percent;      /* > 0: "workers" was this percentage */
    char *policy, *results;
    bool halt_on_error;
    belt__tpl *tpl;
    size_t ntpl;
    uint64_t njobs;
    belt__dep *deps;
    size_t ndeps;
    uint32_t ngroups;
    uint32_t *g_off;          /* ngroups + 1 offsets into members */
    uint32_t *members;        /* seqs, sorted within a group */
};

/* The template seq belongs to (seq < cfg->njobs).  O(log ntpl). */
const belt__tpl *belt__tpl_of(const belt_config *cfg, uint64_t seq);

/* Index of t's matrix key named name[0..n), or -1. */
int belt__key_index(const belt__tpl *t, const char *name, size_t n);

/* Length of the placeholder name when s (s[0] == '{') starts "{name}" with
 * name made of letters, digits, '_' and '-'; else 0. */
size_t belt__placeholder_len(const char *s);

/* Splits point into t's digits (nkeys of them). */
void belt__digits(const belt__tpl *t, uint64_t point, size_t *digits);

/* Appends tmpl with t's placeholders substituted by the values of the point
 * whose digits are given (see config.h for the rules). */
void belt__subst(belt__buf *out, const char *tmpl, const belt__tpl *t,
                 const size_t *digits);

/* Mask of t's matrix keys that tmpl uses. */
uint64_t belt__keys_used(const char *tmpl, const belt__tpl *t);

/* Appends the id of t's point (digits as from belt__digits). */
void belt__job_id(belt__buf *out, const belt__tpl *t, uint64_t point,
                  const size_t *digits);

/* Appends the id of job seq. */
void belt__seq_id(belt__buf *out, const belt_config *cfg, uint64_t seq);

/* The sub-point of dep d for the point with these digits of template t. */
uint64_t belt__dep_sub(const belt__tpl *t, const belt__dep *d,
                       const size_t *digits);

/* Iterates over the points of template t whose keymask digits are those of
 * sub-point sub:  for (belt__pit_start(&it, t, mask, sub); !it.done;
 * belt__pit_next(&it)) use(it.point, it.digits). */
typedef struct belt__pit {
    const belt__tpl *t;
    uint64_t mask;
    uint64_t point;
    bool done;
    size_t digits[BELT__MAX_KEYS];
} belt__pit;

void belt__pit_start(belt__pit *it, const belt__tpl *t, uint64_t mask,
                     uint64_t sub);
void belt__pit_next(belt__pit *it);

/* Builds job seq (see belt_config_job_at); NULL when memory runs out.  The
 * job sits inside a belt__jobnode whose links the scheduler uses. */
typedef struct belt__jobnode {
    struct belt__jobnode *prev, *next;
    const void *owner;        /* the scheduler it is out from, or NULL */
    belt_job job;
} belt__jobnode;

belt__jobnode *belt__job_build(const belt_config *cfg, uint64_t seq);

/* ---- the id index: every job id, compactly ---------------------------- */

/* Open addressing with linear probing.  A slot is 8 bytes: the high 32 bits
 * of the id's hash (a fingerprint) and seq + 1 (0: empty).  No id string is
 * stored: on a fingerprint match the candidate's id is rebuilt from its seq
 * and compared, so a hash collision can never merge two ids.  Slots are a
 * power of two at least 4/3 of the jobs: 11 to 22 bytes per job (16 MiB
 * for 1,000,000 jobs), and only while the index lives. */
typedef struct belt__index {
    uint64_t *slot;
    uint64_t mask;
    belt__buf tmp;
} belt__index;

/* Builds the index over every job of cfg.  Returns BELT_OK; BELT_ECONFIG
 * when two jobs have the same id (*dup is the later seq, *orig the first);
 * BELT_ENOMEM.  On failure the index is freed. */
int belt__index_build(const belt_config *cfg, belt__index *ix, uint64_t *dup,
                      uint64_t *orig);

/* The seq of the job with id s[0..n), or -1. */
int64_t belt__index_find(const belt_config *cfg, belt__index *ix,
                         const char *s, size_t n);

void belt__index_free(belt__index *ix);

/* config/deps.c: resolves every "after" pattern into groups and checks
 * for unknown dependencies and cycles.  ix indexes every job.  Returns
 * BELT_OK, BELT_ECONFIG (c->err filled) or BELT_ENOMEM. */
int belt__deps_resolve(belt__lctx *c, belt__index *ix);

#endif /* BELT_CONFIG_INTERNAL_H */
