/* config/matrix.c: lazy matrix expansion, placeholder substitution, job
 * building and the compact id index.
 *
 * A config never holds its expanded jobs.  Job number `seq` is found again
 * whenever it is needed: a binary search over the templates' first seqs
 * gives the template, seq - first is the point, and the point split in
 * mixed radix gives one digit per matrix key, the first key most
 * significant (so the first key varies slowest, as nested loops in key
 * order).  Substituting the digits' values into the template's strings
 * builds the job.  Cost: O(log templates + size of the job's strings) per
 * job, O(1) memory beyond the job itself.
 *
 * Substitution rules (config.h): "{{" -> "{", "}}" -> "}", "{name}" -> the
 * value when name is a matrix key, anything else copied as it is.  The
 * scanner is a single left-to-right pass, so "{{n}}" is the literal "{n}".
 *
 * A built job is one allocation: a belt__jobnode (two list links for the
 * scheduler, then the belt_job), the argv and env pointer arrays, and every
 * string, NUL-separated.  Freeing it is one free().
 *
 * The id index (see config/internal.h) maps ids to seqs with 8 bytes per
 * slot and no strings: equal fingerprints are confirmed by rebuilding the
 * candidate's id, so the index is exact.
 */
#include "config/internal.h"
#include "util/path.h"

#include "belt/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- templates and points ---------------------------------------------- */

const belt__tpl *belt__tpl_of(const belt_config *cfg, uint64_t seq)
{
    size_t lo = 0, hi = cfg->ntpl; /* answer in [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cfg->tpl[mid].first <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return &cfg->tpl[lo];
}

int belt__key_index(const belt__tpl *t, const char *name, size_t n)
{
    for (unsigned k = 0; k < t->nkeys; k++)
        if (strncmp(t->keys[k], name, n) == 0 && t->keys[k][n] == '\0')
            return (int)k;
    return -1;
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-';
}

size_t belt__placeholder_len(const char *s)
{
    size_t n = 0;
    while (name_char(s[1 + n]))
        n++;
    return (n > 0 && s[1 + n] == '}') ? n : 0;
}

void belt__digits(const belt__tpl *t, uint64_t point, size_t *digits)
{
    for (unsigned k = 0; k < t->nkeys; k++) {
        digits[k] = (size_t)(point / t->stride[k]);
        point %= t->stride[k];
    }
}

/* One step of the placeholder scanner over the template text at *s (not
 * at its end): a placeholder "{name}" naming a matrix key of t returns the
 * key's index; anything else returns -1 with the literal text it stands
 * for in *lit, *n ("{{" and "}}" stand for one brace).  Either way *s moves
 * past what was read.  The one definition of the rules of config.h. */
static int scan_step(const char **s, const belt__tpl *t, const char **lit,
                     size_t *n)
{
    const char *p = *s;
    size_t plain = strcspn(p, "{}");
    *lit = p;
    if (plain > 0) { /* a run of ordinary characters at once */
        *n = plain;
        *s = p + plain;
        return -1;
    }
    if (p[0] == p[1]) { /* "{{" or "}}" */
        *n = 1;
        *s = p + 2;
        return -1;
    }
    if (p[0] == '{') {
        size_t len = belt__placeholder_len(p);
        int k = len > 0 ? belt__key_index(t, p + 1, len) : -1;
        if (k >= 0) {
            *s = p + len + 2;
            return k;
        }
    }
    *n = 1;
    *s = p + 1;
    return -1;
}

void belt__subst(belt__buf *out, const char *tmpl, const belt__tpl *t,
                 const size_t *digits)
{
    const char *lit;
    size_t n;
    for (const char *s = tmpl; *s != '\0';) {
        int k = scan_step(&s, t, &lit, &n);
        if (k >= 0)
            belt__buf_adds(out, t->vals[k][digits[k]]);
        else
            belt__buf_add(out, lit, n);
    }
}

uint64_t belt__keys_used(const char *tmpl, const belt__tpl *t)
{
    uint64_t mask = 0;
    const char *lit;
    size_t n;
    for (const char *s = tmpl; *s != '\0';) {
        int k = scan_step(&s, t, &lit, &n);
        if (k >= 0)
            mask |= (uint64_t)1 << k;
    }
    return mask;
}

void belt__job_id(belt__buf *out, const belt__tpl *t, uint64_t point,
                  const size_t *digits)
{
    if (t->id != NULL)
        belt__subst(out, t->id, t, digits);
    else if (t->nkeys == 0)
        belt__buf_addf(out, "job-%zu", t->index);
    else
        belt__buf_addf(out, "job-%zu-%" PRIu64, t->index, point);
}

void belt__seq_id(belt__buf *out, const belt_config *cfg, uint64_t seq)
{
    const belt__tpl *t = belt__tpl_of(cfg, seq);
    size_t digits[BELT__MAX_KEYS];
    uint64_t point = seq - t->first;
    belt__digits(t, point, digits);
    belt__job_id(out, t, point, digits);
}

uint64_t belt__dep_sub(const belt__tpl *t, const belt__dep *d,
                       const size_t *digits)
{
    uint64_t s = 0;
    for (unsigned k = 0; k < t->nkeys; k++)
        if (d->keymask & ((uint64_t)1 << k))
            s = s * t->nvals[k] + digits[k];
    return s;
}

void belt__pit_start(belt__pit *it, const belt__tpl *t, uint64_t mask,
                     uint64_t sub)
{
    it->t = t;
    it->mask = mask;
    it->done = false;
    it->point = 0;
    /* Decode sub into the masked digits, last key least significant. */
    for (unsigned k = t->nkeys; k-- > 0;) {
        if (mask & ((uint64_t)1 << k)) {
            it->digits[k] = (size_t)(sub % t->nvals[k]);
            sub /= t->nvals[k];
        } else {
            it->digits[k] = 0;
        }
        it->point += it->digits[k] * t->stride[k];
    }
}

void belt__pit_next(belt__pit *it)
{
    const belt__tpl *t = it->t;
    /* An odometer over the free (unmasked) digits, last key fastest. */
    for (unsigned k = t->nkeys; k-- > 0;) {
        if (it->mask & ((uint64_t)1 << k))
            continue;
        if (it->digits[k] + 1 < t->nvals[k]) {
            it->digits[k]++;
            it->point += t->stride[k];
            return;
        }
        it->point -= it->digits[k] * t->stride[k];
        it->digits[k] = 0;
    }
    it->done = true;
}

/* ---- building jobs ------------------------------------------------------ */

belt__jobnode *belt__job_build(const belt_config *cfg, uint64_t seq)
{
    if (seq >= cfg->njobs)
        return NULL;
    const belt__tpl *t = belt__tpl_of(cfg, seq);
    uint64_t point = seq - t->first;
    size_t digits[BELT__MAX_KEYS];
    belt__digits(t, point, digits);

    /* Every string, NUL-separated, in this order: id, run, argv items,
     * env entries, cwd, stdin, output_dir (absent ones left out). */
    belt__buf b = { 0 };
    belt__job_id(&b, t, point, digits);
    belt__buf_addc(&b, '\0');
    if (t->run != NULL) {
        belt__subst(&b, t->run, t, digits);
        belt__buf_addc(&b, '\0');
    }
    for (size_t i = 0; i < t->argc; i++) {
        belt__subst(&b, t->argv[i], t, digits);
        belt__buf_addc(&b, '\0');
    }
    for (size_t i = 0; i < t->nenv; i++) {
        belt__buf_adds(&b, t->env_names[i]);
        belt__buf_addc(&b, '=');
        belt__subst(&b, t->env_vals[i], t, digits);
        belt__buf_addc(&b, '\0');
    }
    const char *opt[3] = { t->cwd, t->stdin_path, t->output_dir };
    for (int i = 0; i < 3; i++) {
        if (opt[i] != NULL) {
            /* Relative paths are the config folder's (belt.json(5)); the
             * test is on the substituted path: "{f}" may become "/x". */
            size_t start = b.len;
            belt__subst(&b, opt[i], t, digits);
            belt__path_resolve_buf(&b, start, cfg->dir);
            belt__buf_addc(&b, '\0');
        }
    }
    if (b.oom) {
        belt__buf_free(&b);
        return NULL;
    }

    size_t nptr = (t->argv ? t->argc + 1 : 0) + (t->nenv ? t->nenv + 1 : 0);
    size_t head = sizeof(belt__jobnode);
    head = (head + sizeof(char *) - 1) / sizeof(char *) * sizeof(char *);
    /* One block: the node, nptr pointers, then the strings they point at. */
    // cppcheck-suppress pointerSize ; sizeof(char *): an array of pointers
    char *mem = malloc(head + nptr * sizeof(char *) + b.len);
    if (mem == NULL) {
        belt__buf_free(&b);
        return NULL;
    }
    belt__jobnode *node = (belt__jobnode *)(void *)mem;
    char **ptr = (char **)(void *)(mem + head);
    char *str = (char *)(ptr + nptr);
    memcpy(str, b.p, b.len);
    belt__buf_free(&b);

    node->prev = node->next = NULL;
    node->owner = NULL;
    belt_job *j = &node->job;
    belt_job_init(j);
    char *p = str;
    j->id = str;
    p += strlen(p) + 1;
    if (t->run != NULL) {
        j->run = p;
        p += strlen(p) + 1;
    }
    if (t->argv != NULL) {
        for (size_t i = 0; i < t->argc; i++) {
            ptr[i] = p;
            p += strlen(p) + 1;
        }
        ptr[t->argc] = NULL;
        j->argv = ptr;
        ptr += t->argc + 1;
    }
    if (t->nenv > 0) {
        for (size_t i = 0; i < t->nenv; i++) {
            ptr[i] = p;
            p += strlen(p) + 1;
        }
        ptr[t->nenv] = NULL;
        j->env = ptr;
    }
    const char **dst[3] = { &j->cwd, &j->stdin_path, &j->output_dir };
    for (int i = 0; i < 3; i++) {
        if (opt[i] != NULL) {
            *dst[i] = p;
            p += strlen(p) + 1;
        }
    }

    j->kind = t->kind;
    if (t->kind == BELT_JOB_SLEEP || t->kind == BELT_JOB_SPIN)
        j->duration_ns = t->duration_ns >= 0 ? t->duration_ns : 0;
    if (t->timeout_ns >= 0)
        j->timeout_ns = t->timeout_ns;
    if (t->kill_grace_ns >= 0)
        j->kill_grace_ns = t->kill_grace_ns;
    if (t->retries >= 0)
        j->retries = (unsigned)t->retries;
    if (t->retry_delay_ns >= 0)
        j->retry_delay_ns = t->retry_delay_ns;
    if (t->retry_max_delay_ns >= 0)
        j->retry_max_delay_ns = t->retry_max_delay_ns;
    if (t->output >= 0)
        j->output = (belt_output_mode)t->output;
    if (t->output_limit > 0)
        j->output_limit = t->output_limit;
    j->seq = seq;
    j->user = NULL;
    return node;
}

belt_job *belt_config_job_at(const belt_config *cfg, uint64_t seq)
{
    if (cfg == NULL)
        return NULL;
    belt__jobnode *n = belt__job_build(cfg, seq);
    return n != NULL ? &n->job : NULL;
}

void belt_config_job_free(belt_job *job)
{
    if (job == NULL)
        return;
    free((char *)job - offsetof(belt__jobnode, job));
}

/* ---- the id index ------------------------------------------------------- */

/* Probes for id s[0..n) with hash h.  Returns the slot holding it (*found
 * true) or the empty slot where it would go (*found false). */
static uint64_t index_probe(const belt_config *cfg, belt__index *ix,
                            const char *s, size_t n, uint64_t h, bool *found)
{
    uint32_t fp = (uint32_t)(h >> 32);
    uint64_t i = h & ix->mask;
    for (;; i = (i + 1) & ix->mask) {
        uint64_t v = ix->slot[i];
        if (v == 0) {
            *found = false;
            return i;
        }
        if ((uint32_t)(v >> 32) != fp)
            continue;
        belt__buf_clear(&ix->tmp);
        belt__seq_id(&ix->tmp, cfg, (uint32_t)v - 1);
        if (ix->tmp.len == n && memcmp(ix->tmp.p, s, n) == 0) {
            *found = true;
            return i;
        }
    }
}

int belt__index_build(const belt_config *cfg, belt__index *ix, uint64_t *dup,
                      uint64_t *orig)
{
    memset(ix, 0, sizeof *ix);
    uint64_t cap = 16;
    while (cap < cfg->njobs + cfg->njobs / 3 + 1)
        cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    if (ix->slot == NULL)
        return BELT_ENOMEM;
    ix->mask = cap - 1;

    belt__buf id = { 0 };
    int rc = BELT_OK;
    for (size_t ti = 0; ti < cfg->ntpl && rc == BELT_OK; ti++) {
        const belt__tpl *t = &cfg->tpl[ti];
        belt__pit it;
        for (belt__pit_start(&it, t, 0, 0); !it.done; belt__pit_next(&it)) {
            belt__buf_clear(&id);
            belt__job_id(&id, t, it.point, it.digits);
            if (id.oom || ix->tmp.oom) {
                rc = BELT_ENOMEM;
                break;
            }
            bool found;
            uint64_t h = belt__hash(id.p, id.len);
            uint64_t i = index_probe(cfg, ix, id.p, id.len, h, &found);
            uint64_t seq = t->first + it.point;
            if (found) {
                if (dup != NULL)
                    *dup = seq;
                if (orig != NULL)
                    *orig = (uint32_t)ix->slot[i] - 1;
                rc = BELT_ECONFIG;
                break;
            }
            ix->slot[i] = (h >> 32 << 32) | (seq + 1);
        }
    }
    belt__buf_free(&id);
    if (rc != BELT_OK)
        belt__index_free(ix);
    return rc;
}

int64_t belt__index_find(const belt_config *cfg, belt__index *ix,
                         const char *s, size_t n)
{
    bool found;
    uint64_t i = index_probe(cfg, ix, s, n, belt__hash(s, n), &found);
    return found ? (int64_t)((uint32_t)ix->slot[i] - 1) : -1;
}

void belt__index_free(belt__index *ix)
{
    free(ix->slot);
    ix->slot = NULL;
    belt__buf_free(&ix->tmp);
}
