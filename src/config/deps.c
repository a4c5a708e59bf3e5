/* config/deps.c: resolving "after" patterns into dependency groups, and
 * finding cycles.
 *
 * For every pattern d of template T, and every sub-point s of d (one choice
 * of values for the matrix keys the pattern uses; see config/internal.h),
 * the concrete pattern is built and matched against the expanded ids:
 *
 *   - without glob characters (* ? [ \) it is an exact id: one lookup in
 *     the id index, O(1);
 *   - with them, fnmatch(3) runs over the ids of every other template.  A
 *     template is skipped at once when the pattern's literal prefix (up to
 *     its first glob character) and the template's literal id prefix (up to
 *     its first placeholder) disagree, so "fetch-*" does not scan a
 *     1,000,000-point "build-{n}".
 *
 * The matches, sorted by seq (templates in order, points in order), become
 * group d.group0 + s.  Every pattern must match some job.  The work (ids
 * compared plus edges stored) is capped by BELT__DEP_BUDGET so that a
 * pathological config fails with a message instead of taking hours.
 *
 * A glob never matches its own template's ids (so "build-*" in "build-all"
 * does not wait for itself, and a matrix is never asked to wait for its own
 * points); an exact id naming its own template is a cycle.
 *
 * Cycles are looked for on the template graph (T -> U when some point of T
 * waits for some job of U): that graph is small (one node per entry of
 * "jobs"), and it is acyclic if and only if no job can wait for itself
 * through templates.  It is stricter than the job graph (it would reject a
 * matrix whose points wait for each other in order), which keeps every rule
 * checkable in time linear in the jobs.  Depth-first search with three
 * colours; the first back edge found gives the cycle, printed with each
 * template's id as written (or jobs[i] for a derived id).
 */
#include "config/internal.h"

#include "belt/error.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* A growable array of uint32_t. */
typedef struct u32vec {
    uint32_t *v;
    size_t n, cap;
} u32vec;

static bool vec_push(u32vec *a, uint32_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint32_t *v = realloc(a->v, cap * sizeof *v);
        if (v == NULL)
            return false;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return true;
}

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[\\") != NULL;
}

/* May some id of u match pattern pat?  False only when the literal
 * prefixes differ. */
static bool prefix_ok(const char *pat, const belt__tpl *u)
{
    size_t lit = strcspn(pat, "*?[\\");
    size_t ul = strlen(u->id_prefix);
    size_t n = lit < ul ? lit : ul;
    return memcmp(pat, u->id_prefix, n) == 0;
}

/* Name of a template for cycle messages. */
static void tpl_name(belt__buf *b, const belt__tpl *t)
{
    if (t->id != NULL)
        belt__buf_adds(b, t->id);
    else
        belt__buf_addf(b, "jobs[%zu]", t->index);
}

typedef struct edge {
    uint32_t from, to;
} edge;

static int edge_cmp(const void *a, const void *b)
{
    const edge *x = a, *y = b;
    if (x->from != y->from)
        return x->from < y->from ? -1 : 1;
    return x->to < y->to ? -1 : x->to > y->to;
}

/* Depth-first search for a cycle in the template graph.  Returns BELT_OK,
 * BELT_ECONFIG (reported) or BELT_ENOMEM. */
static int find_cycle(belt__lctx *c, edge *e, size_t ne)
{
    const belt_config *cfg = c->cfg;
    size_t n = cfg->ntpl;
    size_t *off = calloc(n + 1, sizeof *off);
    unsigned char *colour = calloc(n, 1); /* 0 white, 1 grey, 2 black */
    size_t *stack = malloc(n * sizeof *stack); /* nodes on the path */
    size_t *next = malloc(n * sizeof *next);   /* next edge per node */
    int rc = BELT_OK;
    if (!off || !colour || !stack || !next) {
        rc = BELT_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < ne; i++)
        off[e[i].from + 1]++;
    for (size_t i = 0; i < n; i++)
        off[i + 1] += off[i];

    for (size_t root = 0; root < n && rc == BELT_OK; root++) {
        if (colour[root] != 0)
            continue;
        size_t depth = 0;
        stack[depth] = root;
        next[root] = off[root];
        colour[root] = 1;
        depth = 1;
        while (depth > 0 && rc == BELT_OK) {
            size_t u = stack[depth - 1];
            if (next[u] == off[u + 1]) {
                colour[u] = 2;
                depth--;
                continue;
            }
            size_t v = e[next[u]++].to;
            if (colour[v] == 0) {
                colour[v] = 1;
                next[v] = off[v];
                stack[depth++] = v;
            } else if (colour[v] == 1) {
                belt__buf b = { 0 };
                size_t k = depth;
                while (k > 0 && stack[k - 1] != v)
                    k--;
                for (size_t i = k - 1; i < depth; i++) {
                    tpl_name(&b, &cfg->tpl[stack[i]]);
                    belt__buf_adds(&b, " -> ");
                }
                tpl_name(&b, &cfg->tpl[v]);
                belt__jpath p = { .n = 1 };
                p.seg[0].key = "jobs";
                rc = b.oom ? BELT_ENOMEM
                           : belt__fail(c, &p, false, "dependency cycle: %s",
                                        belt__buf_str(&b));
                belt__buf_free(&b);
            }
        }
    }
out:
    free(off);
    free(colour);
    free(stack);
    free(next);
    return rc;
}

int belt__deps_resolve(belt__lctx *c, belt__index *ix)
{
    belt_config *cfg = c->cfg;
    u32vec off = { 0 }, mem = { 0 };
    edge *edges = NULL;
    size_t nedges = 0, capedges = 0;
    belt__buf pat = { 0 }, id = { 0 };
    uint64_t budget = BELT__DEP_BUDGET;
    int rc = BELT_OK;

    if (cfg->ndeps == 0)
        return BELT_OK;
    if (!vec_push(&off, 0))
        return BELT_ENOMEM;

    for (size_t di = 0; di < cfg->ndeps && rc == BELT_OK; di++) {
        belt__dep *d = &cfg->deps[di];
        const belt__tpl *t = &cfg->tpl[d->tpl];
        belt__jpath p = { .n = 3 };
        p.seg[0].key = "jobs";
        p.seg[1].key = NULL;
        p.seg[1].index = t->index;
        p.seg[2].key = "after";
        d->group0 = (uint32_t)(off.n - 1);
        if (d->nsub > budget) {
            rc = belt__fail(c, &p, false,
                            "\"%s\" needs too many dependency groups (over %u); use fewer placeholders",
                            d->pattern, BELT__DEP_BUDGET);
            break;
        }
        budget -= d->nsub;
        uint32_t last_to = UINT32_MAX;
        for (uint64_t s = 0; s < d->nsub && rc == BELT_OK; s++) {
            belt__pit it;
            belt__pit_start(&it, t, d->keymask, s);
            belt__buf_clear(&pat);
            belt__subst(&pat, d->pattern, t, it.digits);
            if (pat.oom) {
                rc = BELT_ENOMEM;
                break;
            }
            size_t start = mem.n;
            bool self = false; /* a glob matched t's own ids */
            if (!has_glob(pat.p)) {
                int64_t seq = belt__index_find(cfg, ix, pat.p, pat.len);
                if (ix->tmp.oom) {
                    rc = BELT_ENOMEM;
                    break;
                }
                if (seq >= 0 && (uint64_t)seq >= t->first &&
                    (uint64_t)seq < t->first + t->npoints) {
                    belt__buf b = { 0 };
                    tpl_name(&b, t);
                    belt__buf_adds(&b, " -> ");
                    tpl_name(&b, t);
                    belt__jpath q = { .n = 1 };
                    q.seg[0].key = "jobs";
                    rc = b.oom ? BELT_ENOMEM
                               : belt__fail(c, &q, false, "dependency cycle: %s",
                                            belt__buf_str(&b));
                    belt__buf_free(&b);
                    break;
                }
                if (seq >= 0 && !vec_push(&mem, (uint32_t)seq)) {
                    rc = BELT_ENOMEM;
                    break;
                }
            } else {
                /* Other templates first; its own only to explain an
                 * empty result (ui == ntpl stands for t). */
                for (size_t ui = 0; ui <= cfg->ntpl && rc == BELT_OK; ui++) {
                    const belt__tpl *u = ui < cfg->ntpl ? &cfg->tpl[ui] : t;
                    if (ui < cfg->ntpl ? u == t : mem.n > start)
                        continue;
                    if (!prefix_ok(pat.p, u))
                        continue;
                    belt__pit ut;
                    for (belt__pit_start(&ut, u, 0, 0); !ut.done;
                         belt__pit_next(&ut)) {
                        if (budget == 0) {
                            rc = belt__fail(c, &p, false,
                                            "resolving \"%s\" takes too much work (over %u comparisons); use exact ids or fewer placeholders",
                                            d->pattern, BELT__DEP_BUDGET);
                            break;
                        }
                        budget--;
                        belt__buf_clear(&id);
                        belt__job_id(&id, u, ut.point, ut.digits);
                        if (id.oom) {
                            rc = BELT_ENOMEM;
                            break;
                        }
                        if (fnmatch(pat.p, id.p, 0) != 0)
                            continue;
                        if (u == t) {
                            self = true;
                            break; /* never matches its own ids */
                        }
                        if (!vec_push(&mem, (uint32_t)(u->first + ut.point))) {
                            rc = BELT_ENOMEM;
                            break;
                        }
                    }
                }
            }
            if (rc != BELT_OK)
                break;
            if (mem.n == start) {
                const char *why = self ? " (a pattern never matches its own job)" : "";
                if (strcmp(pat.p, d->pattern) != 0)
                    rc = belt__fail(c, &p, false,
                                    "\"%s\" (from \"%s\") matches no job%s",
                                    pat.p, d->pattern, why);
                else
                    rc = belt__fail(c, &p, false, "\"%s\" matches no job%s",
                                    pat.p, why);
                break;
            }
            uint64_t added = mem.n - start;
            if (added > budget) {
                rc = belt__fail(c, &p, false,
                                "\"%s\" gives too many dependencies (over %u); use narrower patterns",
                                d->pattern, BELT__DEP_BUDGET);
                break;
            }
            budget -= added;
            if (!vec_push(&off, (uint32_t)mem.n)) {
                rc = BELT_ENOMEM;
                break;
            }
            /* Template edges; members are sorted, so one per run. */
            const belt__tpl *u = NULL;
            for (size_t k = start; k < mem.n; k++) {
                uint32_t m = mem.v[k];
                if (u != NULL && m >= u->first && m < u->first + u->npoints)
                    continue;
                u = belt__tpl_of(cfg, m);
                uint32_t to = (uint32_t)(u - cfg->tpl);
                if (to == last_to)
                    continue;
                last_to = to;
                if (nedges == capedges) {
                    size_t nc = capedges ? capedges * 2 : 64;
                    edge *ne = realloc(edges, nc * sizeof *ne);
                    if (ne == NULL) {
                        rc = BELT_ENOMEM;
                        break;
                    }
                    edges = ne;
                    capedges = nc;
                }
                edges[nedges].from = (uint32_t)d->tpl;
                edges[nedges].to = to;
                nedges++;
            }
        }
    }

    if (rc == BELT_OK && nedges > 0) {
        qsort(edges, nedges, sizeof *edges, edge_cmp);
        size_t w = 0;
        for (size_t i = 0; i < nedges; i++)
            if (w == 0 || edge_cmp(&edges[w - 1], &edges[i]) != 0)
                edges[w++] = edges[i];
        rc = find_cycle(c, edges, w);
    }
    free(edges);
    belt__buf_free(&pat);
    belt__buf_free(&id);
    if (rc == BELT_OK) {
        cfg->ngroups = (uint32_t)(off.n - 1);
        cfg->g_off = off.v;
        cfg->members = mem.v;
        return BELT_OK;
    }
    free(off.v);
    free(mem.v);
    if (rc == BELT_ENOMEM && c->err != NULL) {
        c->err->line = c->err->column = 0;
        c->err->path[0] = '\0';
        strcpy(c->err->text, "out of memory");
    }
    return rc;
}
