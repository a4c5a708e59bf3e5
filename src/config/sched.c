/* config/sched.c: the dependency scheduler: which job runs next, which will not.
 *
 * Per job the scheduler keeps one byte: a phase and a status.
 *
 *   UNSEEN    not yet reached by the cursor, undecided
 *   WAITING   passed by the cursor, waiting for a dependency group
 *   READY     passed by the cursor, then its last group was satisfied: in
 *             the ready heap
 *   SKIP      decided not to run (a dependency failed); in the unrun heap
 *             if behind the cursor
 *   RESUMED   already ok in the resume file; same
 *   OUT       handed out to run       UNRUN_OUT  handed out as unrun result
 *   DONE      recorded by belt_sched_done(); the status says how it ended
 *
 * Jobs are met in expansion order by a cursor.  A job at the cursor whose
 * groups are all satisfied is handed out at once; one that waits is marked
 * WAITING and the cursor moves on.  A waiting job is woken when its last
 * group is satisfied and goes to the ready heap (a min-heap of seqs), so
 * belt_sched_next() always hands out the lowest ready seq: heap entries are
 * below the cursor, the cursor's job below everything after it.
 *
 * Dependencies come from the config's groups (config/internal.h): a job
 * waits for exactly one group per "after" pattern of its template.  Per
 * group the scheduler keeps a counter of members not yet ok, or, once a
 * member failed, G_FAILED | that member's seq (the cause, for the skip
 * message).  A reverse index (CSR: rev_off, rev) lists the groups each job
 * is a member of.  When a job ends ok, each of its groups is decremented;
 * a group reaching 0 wakes its points (found by iterating the template's
 * points with the group's digits fixed).  When a job ends otherwise (or is
 * skipped), each of its groups fails and every undecided point in it is
 * skipped, transitively, through a work list.  Skipping is decided at once
 * and reported later, lowest seq first, through the unrun heap.
 *
 * Invariants: a job is in at most one heap, once; every heap entry is below
 * the cursor; a READY or WAITING job has every group it waits for not
 * failed (a failure skips it first); a job in a group whose counter is > 0
 * cannot be READY.  Because the template graph is acyclic, when nothing is
 * out and no unrun result is pending, some job is ready or all are done: the
 * dispatch loop in config.h cannot stall.
 *
 * Memory per job: 1 byte, plus with dependencies 4 bytes of reverse-index
 * offset and up to 12 bytes of heap and work-list room (allocated with
 * malloc, so only pages actually used become resident); per dependency
 * edge 4 bytes; per group 4 bytes.  Jobs themselves exist only while out:
 * built on hand-out, freed by belt_sched_done().
 */
#include "config/internal.h"

#include "belt/error.h"
#include "belt/sched.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    PH_UNSEEN = 0,
    PH_WAITING,
    PH_READY,
    PH_SKIP,
    PH_RESUMED,
    PH_OUT,
    PH_UNRUN_OUT,
    PH_DONE
};

#define PHASE(x) ((x) & 15)
#define STATUS(x) ((belt_job_status)((x) >> 4))
#define MK(ph, st) ((uint8_t)((ph) | ((unsigned)(st) << 4)))
#define G_FAILED 0x80000000u

typedef struct heap {
    uint32_t *v;
    size_t n;
} heap;

struct belt_sched {
    const belt_config *cfg;
    uint64_t n;
    uint8_t *st;             /* per job: phase | status << 4 */
    uint32_t *g_state;       /* per group: members not yet ok, or G_FAILED|cause */
    uint32_t *rev_off;       /* n + 1: groups of job j are rev[rev_off[j]..] */
    uint32_t *rev;
    uint64_t cursor;         /* jobs below it have been classified */
    heap ready, unrun;       /* capacity n each (only when there are deps) */
    uint32_t *work;          /* skip cascade work list, capacity n */
    uint64_t out, ndone;
    bool halt_on_error;
    bool canceled;
    const char *cancel_why;  /* cancel_copy, or "canceled" */
    char *cancel_copy;
    uint64_t cancel_pos;     /* cancel mode: jobs below it handed out */
    char *resume_path;
    belt__jobnode outlist;   /* sentinel of the jobs out */
    belt__buf scratch;
};

/* ---- heaps -------------------------------------------------------------- */

static void heap_push(heap *h, uint32_t x)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p] <= x)
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static void heap_pop(heap *h)
{
    uint32_t x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c])
            c++;
        if (x <= h->v[c])
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = x;
}

/* ---- dependency state --------------------------------------------------- */

static const belt__dep *dep_of_group(const belt_config *cfg, uint32_t g)
{
    size_t lo = 0, hi = cfg->ndeps;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (cfg->deps[mid].group0 <= g)
            lo = mid;
        else
            hi = mid;
    }
    return &cfg->deps[lo];
}

/* True when every group the point (of t, with these digits) waits for is
 * satisfied. */
static bool groups_ok(const belt_sched *s, const belt__tpl *t,
                      const size_t *digits)
{
    for (size_t i = 0; i < t->ndep; i++) {
        const belt__dep *d = &s->cfg->deps[t->dep0 + i];
        if (s->g_state[d->group0 + belt__dep_sub(t, d, digits)] != 0)
            return false;
    }
    return true;
}

static bool ready_now(const belt_sched *s, uint64_t seq)
{
    if (s->g_state == NULL)
        return true;
    const belt__tpl *t = belt__tpl_of(s->cfg, seq);
    if (t->ndep == 0)
        return true;
    size_t digits[BELT__MAX_KEYS];
    belt__digits(t, seq - t->first, digits);
    return groups_ok(s, t, digits);
}

/* Starts it over the points that wait on group g; returns their
 * template. */
static const belt__tpl *group_points(const belt_sched *s, uint32_t g,
                                     belt__pit *it)
{
    const belt__dep *d = dep_of_group(s->cfg, g);
    const belt__tpl *t = &s->cfg->tpl[d->tpl];
    belt__pit_start(it, t, d->keymask, g - d->group0);
    return t;
}

/* Job u ended ok (or was ok in the resume file). */
static void finish_ok(belt_sched *s, uint32_t u)
{
    if (s->g_state == NULL)
        return;
    for (uint32_t k = s->rev_off[u]; k < s->rev_off[u + 1]; k++) {
        uint32_t g = s->rev[k];
        if ((s->g_state[g] & G_FAILED) || --s->g_state[g] != 0)
            continue;
        /* Group satisfied: wake its waiting points that now are ready. */
        belt__pit it;
        for (const belt__tpl *t = group_points(s, g, &it); !it.done;
             belt__pit_next(&it)) {
            uint64_t j = t->first + it.point;
            if (PHASE(s->st[j]) == PH_WAITING && groups_ok(s, t, it.digits) &&
                !s->canceled) {
                s->st[j] = MK(PH_READY, 0);
                heap_push(&s->ready, (uint32_t)j);
            }
        }
    }
}

/* Job u0 did not succeed (or was skipped): skip its dependents, and
 * theirs. */
static void finish_fail(belt_sched *s, uint32_t u0)
{
    if (s->g_state == NULL)
        return;
    size_t nwork = 0;
    s->work[nwork++] = u0;
    while (nwork > 0) {
        uint32_t u = s->work[--nwork];
        for (uint32_t k = s->rev_off[u]; k < s->rev_off[u + 1]; k++) {
            uint32_t g = s->rev[k];
            if (s->g_state[g] & G_FAILED)
                continue;
            s->g_state[g] = G_FAILED | u;
            belt__pit it;
            for (const belt__tpl *t = group_points(s, g, &it); !it.done;
                 belt__pit_next(&it)) {
                uint64_t j = t->first + it.point;
                int ph = PHASE(s->st[j]);
                if (ph != PH_UNSEEN && ph != PH_WAITING)
                    continue; /* decided already (READY cannot be here) */
                s->st[j] = MK(PH_SKIP, BELT_JOB_SKIPPED);
                if (ph == PH_WAITING && !s->canceled)
                    heap_push(&s->unrun, (uint32_t)j);
                s->work[nwork++] = (uint32_t)j;
            }
        }
    }
}

/* ---- handing out -------------------------------------------------------- */

static void link_out(belt_sched *s, belt__jobnode *node)
{
    node->owner = s;
    node->next = s->outlist.next;
    node->prev = &s->outlist;
    s->outlist.next->prev = node;
    s->outlist.next = node;
    s->out++;
}

static void unlink_free(belt__jobnode *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    free(node);
}

static const belt_job *hand_out(belt_sched *s, uint64_t seq,
                                belt__jobnode *node)
{
    s->st[seq] = MK(PH_OUT, 0);
    link_out(s, node);
    return &node->job;
}

/* The reason job seq (SKIP) was skipped, into s->scratch. */
static void skip_reason(belt_sched *s, uint64_t seq)
{
    belt__buf_clear(&s->scratch);
    const belt__tpl *t = belt__tpl_of(s->cfg, seq);
    size_t digits[BELT__MAX_KEYS];
    belt__digits(t, seq - t->first, digits);
    for (size_t i = 0; i < t->ndep && s->g_state != NULL; i++) {
        const belt__dep *d = &s->cfg->deps[t->dep0 + i];
        uint32_t g = s->g_state[d->group0 + belt__dep_sub(t, d, digits)];
        if (!(g & G_FAILED))
            continue;
        uint32_t u = g & ~G_FAILED;
        belt__buf_adds(&s->scratch, "dependency \"");
        belt__seq_id(&s->scratch, s->cfg, u);
        belt__buf_addf(&s->scratch, "\" failed (status %s)",
                       belt_job_status_name(STATUS(s->st[u])));
        return;
    }
    belt__buf_adds(&s->scratch, "skipped");
}

/* Builds the unrun result of job seq with status `status` and error text
 * `why`, and hands it out.  NULL when memory runs out (nothing changed). */
static belt_result *unrun_result(belt_sched *s, uint64_t seq,
                                 belt_job_status status, const char *why)
{
    belt__jobnode *node = belt__job_build(s->cfg, seq);
    if (node == NULL)
        return NULL;
    belt_result *r = belt_result_new(&node->job);
    char *err = strdup(why);
    if (r == NULL || err == NULL) {
        free(err);
        belt_result_free(r);
        free(node);
        return NULL;
    }
    r->status = status;
    r->attempts = 0;
    r->error = err;
    s->st[seq] = MK(PH_UNRUN_OUT, status);
    link_out(s, node);
    return r;
}

/* The unrun result of decided job seq (SKIP or RESUMED). */
static belt_result *decided_result(belt_sched *s, uint64_t seq)
{
    if (PHASE(s->st[seq]) == PH_RESUMED) {
        belt__buf_clear(&s->scratch);
        belt__buf_adds(&s->scratch, BELT_SCHED_RESUMED_PREFIX);
        belt__buf_adds(&s->scratch, s->resume_path);
    } else {
        skip_reason(s, seq);
    }
    if (s->scratch.oom) {
        belt__buf_free(&s->scratch);
        return NULL;
    }
    return unrun_result(s, seq, BELT_JOB_SKIPPED, s->scratch.p);
}

const belt_job *belt_sched_next(belt_sched *s)
{
    if (s == NULL || s->canceled)
        return NULL;
    for (;;) {
        if (s->ready.n > 0) {
            uint32_t seq = s->ready.v[0];
            belt__jobnode *node = belt__job_build(s->cfg, seq);
            if (node == NULL)
                return NULL;
            heap_pop(&s->ready);
            return hand_out(s, seq, node);
        }
        if (s->cursor >= s->n)
            return NULL;
        uint64_t seq = s->cursor;
        int ph = PHASE(s->st[seq]);
        if (ph == PH_UNSEEN) {
            if (ready_now(s, seq)) {
                belt__jobnode *node = belt__job_build(s->cfg, seq);
                if (node == NULL)
                    return NULL;
                s->cursor++;
                return hand_out(s, seq, node);
            }
            s->st[seq] = MK(PH_WAITING, 0);
        } else if (ph == PH_SKIP || ph == PH_RESUMED) {
            heap_push(&s->unrun, (uint32_t)seq);
        }
        s->cursor++;
    }
}

static belt_result *cancel_next(belt_sched *s)
{
    while (s->cancel_pos < s->n) {
        uint64_t seq = s->cancel_pos;
        int ph = PHASE(s->st[seq]);
        belt_result *r = NULL;
        if (ph == PH_UNSEEN || ph == PH_WAITING || ph == PH_READY)
            r = unrun_result(s, seq, BELT_JOB_CANCELED, s->cancel_why);
        else if (ph == PH_SKIP || ph == PH_RESUMED)
            r = decided_result(s, seq);
        else {
            s->cancel_pos++;
            continue;
        }
        if (r != NULL)
            s->cancel_pos++;
        return r;
    }
    return NULL;
}

belt_result *belt_sched_next_unrun(belt_sched *s)
{
    if (s == NULL)
        return NULL;
    if (s->canceled)
        return cancel_next(s);
    for (;;) {
        if (s->unrun.n > 0) {
            belt_result *r = decided_result(s, s->unrun.v[0]);
            if (r != NULL)
                heap_pop(&s->unrun);
            return r;
        }
        if (s->cursor >= s->n)
            return NULL;
        uint64_t seq = s->cursor;
        int ph = PHASE(s->st[seq]);
        if (ph == PH_SKIP || ph == PH_RESUMED) {
            belt_result *r = decided_result(s, seq);
            if (r != NULL)
                s->cursor++;
            return r;
        }
        if (ph == PH_UNSEEN && !ready_now(s, seq)) {
            s->st[seq] = MK(PH_WAITING, 0);
            s->cursor++;
            continue;
        }
        return NULL; /* a ready job: belt_sched_next()'s */
    }
}

void belt_sched_cancel(belt_sched *s, const char *why)
{
    if (s == NULL || s->canceled)
        return;
    s->canceled = true;
    s->cancel_copy = why != NULL ? strdup(why) : NULL;
    s->cancel_why = s->cancel_copy != NULL ? s->cancel_copy : "canceled";
    /* The scan from 0 (cancel_next) replaces both heaps. */
    s->ready.n = 0;
    s->unrun.n = 0;
}

void belt_sched_done(belt_sched *s, const belt_result *r)
{
    if (s == NULL || r == NULL || r->job == NULL || r->seq >= s->n)
        return;
    uint64_t seq = r->seq;
    int ph = PHASE(s->st[seq]);
    if (ph != PH_OUT && ph != PH_UNRUN_OUT)
        return;
    belt__jobnode *node =
        (belt__jobnode *)(void *)((char *)(void *)(uintptr_t)r->job -
                                  offsetof(belt__jobnode, job));
    if (node->owner != s || node->job.seq != seq)
        return;
    s->out--;
    s->ndone++;
    if (ph == PH_UNRUN_OUT) {
        s->st[seq] = MK(PH_DONE, STATUS(s->st[seq]));
        unlink_free(node);
        return;
    }
    belt_job_status status = r->status;
    if ((unsigned)status > BELT_JOB_CANCELED)
        status = BELT_JOB_ERROR;
    s->st[seq] = MK(PH_DONE, status);
    if (status == BELT_JOB_OK) {
        unlink_free(node);
        finish_ok(s, (uint32_t)seq);
        return;
    }
    if (s->halt_on_error && !s->canceled) {
        belt__buf why = { 0 };
        belt__buf_addf(&why, "halted after \"%s\" failed (status %s)",
                       node->job.id, belt_job_status_name(status));
        finish_fail(s, (uint32_t)seq);
        belt_sched_cancel(s, why.oom ? NULL : why.p);
        belt__buf_free(&why);
    } else {
        finish_fail(s, (uint32_t)seq);
    }
    unlink_free(node);
}

bool belt_sched_finished(const belt_sched *s)
{
    return s == NULL || s->ndone == s->n;
}

uint64_t belt_sched_running(const belt_sched *s)
{
    return s != NULL ? s->out : 0;
}

/* ---- creation ----------------------------------------------------------- */

/* Does this results line say the job is ok? */
static const char *ok_id(json_t *o)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    const char *st = json_string_value(json_object_get(o, "status"));
    const char *e = json_string_value(json_object_get(o, "error"));
    if (id == NULL || st == NULL)
        return NULL;
    if (strcmp(st, "ok") == 0)
        return id;
    if (strcmp(st, "skipped") == 0 && e != NULL &&
        strncmp(e, BELT_SCHED_RESUMED_PREFIX,
                strlen(BELT_SCHED_RESUMED_PREFIX)) == 0)
        return id;
    return NULL;
}

/* Marks the jobs the resume file says are ok.  BELT_OK, BELT_ESYS (errno
 * kept), BELT_ENOMEM, or BELT_EINVAL with *bad_line set: a line that is
 * not a result record (a JSON object with string "id" and "status"), so a
 * file that is not belt's results (a job log, a config) is never taken as
 * "nothing done yet".  A last line without its newline that does not parse
 * is the trace of an interrupted write and is ignored; a missing file means
 * nothing was done. */
static int read_resume(belt_sched *s, const char *path, uint64_t *bad_line)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? BELT_OK : BELT_ESYS;
    belt__index ix;
    int rc = belt__index_build(s->cfg, &ix, NULL, NULL);
    if (rc != BELT_OK) {
        fclose(f);
        return BELT_ENOMEM;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    errno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        size_t len = (size_t)n;
        bool whole = line[len - 1] == '\n';
        if (len == 1 && whole)
            continue; /* an empty line */
        json_t *o = json_loadb(line, len, 0, NULL);
        if (o == NULL || !json_is_object(o) ||
            !json_is_string(json_object_get(o, "id")) ||
            !json_is_string(json_object_get(o, "status"))) {
            json_decref(o);
            if (!whole && o == NULL)
                break;
            *bad_line = lineno;
            rc = BELT_EINVAL;
            break;
        }
        const char *id = ok_id(o);
        if (id != NULL) {
            int64_t seq = belt__index_find(s->cfg, &ix, id, strlen(id));
            if (seq >= 0)
                s->st[seq] = MK(PH_RESUMED, BELT_JOB_OK);
        }
        json_decref(o);
        errno = 0;
    }
    if (rc == BELT_OK && ferror(f))
        rc = errno == ENOMEM ? BELT_ENOMEM : BELT_ESYS;
    if (ix.tmp.oom)
        rc = BELT_ENOMEM;
    int saved = errno;
    free(line);
    fclose(f);
    belt__index_free(&ix);
    errno = saved;
    return rc;
}

belt_sched *belt_sched_new(const belt_config *cfg,
                           const belt_sched_options *opt,
                           belt_config_error *err)
{
    if (cfg == NULL) {
        belt__error_start(err, "<sched>", "no config");
        return NULL;
    }
    belt_sched *s = calloc(1, sizeof *s);
    if (s == NULL) {
        belt__error_start(err, cfg->source, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->n = cfg->njobs;
    s->outlist.next = s->outlist.prev = &s->outlist;
    s->halt_on_error = cfg->halt_on_error || (opt != NULL && opt->halt_on_error);
    const char *resume = opt != NULL ? opt->resume_path : NULL;
    /* Every allocation failure goes to `nomem`: belt_sched_free() releases
     * whatever was made. */
    if ((s->st = calloc(s->n, 1)) == NULL)
        goto nomem;
    if (resume != NULL && (s->resume_path = strdup(resume)) == NULL)
        goto nomem;
    if (cfg->ngroups > 0 || resume != NULL) {
        /* Room for every job in each heap: pushes cannot fail. */
        if ((s->ready.v = malloc(s->n * sizeof(uint32_t))) == NULL ||
            (s->unrun.v = malloc(s->n * sizeof(uint32_t))) == NULL)
            goto nomem;
    }
    if (cfg->ngroups > 0) {
        uint32_t nm = cfg->g_off[cfg->ngroups];
        if ((s->g_state = malloc(cfg->ngroups * sizeof(uint32_t))) == NULL ||
            (s->rev_off = calloc(s->n + 1, sizeof(uint32_t))) == NULL ||
            (s->rev = malloc((nm ? nm : 1) * sizeof(uint32_t))) == NULL ||
            (s->work = malloc(s->n * sizeof(uint32_t))) == NULL)
            goto nomem;
        /* Reverse index: count, prefix-sum to ends, fill backwards so each
         * rev_off[j] ends at its start. */
        for (uint32_t g = 0; g < cfg->ngroups; g++) {
            s->g_state[g] = cfg->g_off[g + 1] - cfg->g_off[g];
            for (uint32_t k = cfg->g_off[g]; k < cfg->g_off[g + 1]; k++)
                s->rev_off[cfg->members[k]]++;
        }
        uint32_t sum = 0;
        for (uint64_t j = 0; j <= s->n; j++) {
            sum += s->rev_off[j];
            s->rev_off[j] = sum;
        }
        for (uint32_t g = cfg->ngroups; g-- > 0;)
            for (uint32_t k = cfg->g_off[g + 1]; k-- > cfg->g_off[g];)
                s->rev[--s->rev_off[cfg->members[k]]] = g;
    }
    if (resume != NULL) {
        uint64_t bad = 0;
        int rc = read_resume(s, resume, &bad);
        if (rc != BELT_OK) {
            char text[300];
            if (rc == BELT_EINVAL)
                snprintf(text, sizeof text, "line %llu is not a result line "
                         "of belt run (--resume takes the results file of an "
                         "earlier run)", (unsigned long long)bad);
            else
                snprintf(text, sizeof text, "cannot read the resume file: %s",
                         rc == BELT_ENOMEM ? "out of memory"
                                           : strerror(errno));
            belt__error_start(err, resume, text);
            goto fail;
        }
        for (uint64_t j = 0; j < s->n; j++)
            if (PHASE(s->st[j]) == PH_RESUMED)
                finish_ok(s, (uint32_t)j);
    }
    return s;

nomem:
    belt__error_start(err, cfg->source, "out of memory");
fail:
    belt_sched_free(s);
    return NULL;
}

void belt_sched_free(belt_sched *s)
{
    if (s == NULL)
        return;
    while (s->outlist.next != &s->outlist && s->outlist.next != NULL)
        unlink_free(s->outlist.next);
    free(s->st);
    free(s->g_state);
    free(s->rev_off);
    free(s->rev);
    free(s->ready.v);
    free(s->unrun.v);
    free(s->work);
    free(s->cancel_copy);
    free(s->resume_path);
    belt__buf_free(&s->scratch);
    free(s);
}
