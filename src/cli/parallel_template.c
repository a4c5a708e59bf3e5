/* parallel_template.c: the command template of `belt run COMMAND ...`: which
 * replacement strings it holds, and the command one job runs.
 *
 * This follows GNU parallel 20221122 (/usr/bin/parallel), rewritten from its
 * rules rather than its code: CommandLineQueue::new (finding replacement
 * strings and appending {} when there is none),
 * CommandLine::replace_placeholders (the expansion), Arg::replace and the
 * default --rpl table of init_globals (what each string means), and
 * shell_quote_scalar_default (util/shell.c, belt__sh_quote_parallel).
 *
 * Compiling.  The command's words are joined with separators (parallel's
 * "\0spc"), and each word is cut into tokens: a replacement string, one
 * whitespace character (a word may hold spaces: 'echo {} | wc'), or a run of
 * other text.  An empty word is an empty text token, so it still prints as
 * '' under -q.  Replacement strings are found left to right, the longest
 * that matches first; "{3}", "{3.}", "{-1/}" are the positional forms of
 * the strings that start with '{'.  {#} and {%} behave as parallel's do,
 * whose definitions begin with "1 " and so count as positional: each
 * appears once, never once per argument.  With no replacement string at
 * all, a separator and {} are appended (parallel: "push @command, {}").
 *
 * Quoting.  An argument is quoted (parallel's rule: bare when safe) unless
 * the command *starts* with a replacement string, before any blank or '='
 * ("{} ::: 'echo a'", or no command: the input is the command, and quoting
 * it would break it); -q instead leaves the arguments alone and quotes each
 * whole word of the result.
 *
 * Expanding.  Without context replace, a non-positional replacement string
 * becomes all the job's arguments, each a word of its own (-m, -n 2: "x{}y"
 * gives "xa by").  With context replace (-X, -N) the whole blank-delimited
 * group of tokens around it is repeated once per argument ("xay xby").  The
 * result is a list of words ("quote groups", split at the separators) that
 * are joined with single spaces; with -q each is quoted as a whole.
 *
 * The values: {.} drops what follows the last '.' when no '/' follows it
 * (s:\.[^/.]*$::), {/} drops everything up to the last '/' of the first
 * line that holds one (s:.*\/:: where '.' does not match a newline), {//}
 * is Perl's File::Basename::dirname ("a" gives ".", "/a" gives "/",
 * "a/b/" gives "a"), {/.} is {/} then {.}.
 *
 * A template is immutable once made: the input thread and the engine may
 * expand it at the same time.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "belt/job.h"
#include "cli/parallel.h"
#include "util/shell.h"

enum tok_type {
    T_TEXT,   /* text[off, off+len) */
    T_SPACE,  /* one whitespace character text[off] */
    T_SEP,    /* between two words of the command */
    T_RPL     /* a replacement string */
};

struct tok {
    enum tok_type type;
    belt__rpl_kind kind; /* T_RPL */
    long pos;            /* T_RPL: 0, or 1-based (negative: from the end) */
    size_t off, len;     /* T_TEXT, T_SPACE */
};

struct belt__par_tpl {
    char *text;          /* the words, back to back */
    struct tok *tok;
    size_t ntok;
    unsigned flags;
    bool quote_args;     /* arguments quoted one by one */
    bool uses[BELT__RPL_N];
};

const belt__par_val belt__par_noarg[1] = {{"", 0}};

void belt__par_names_default(belt__par_names *n)
{
    static const char *const def[BELT__RPL_N] = {
        "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", "{%}",
    };
    for (int i = 0; i < BELT__RPL_N; i++)
        n->s[i] = def[i];
}

/* Perl's \s. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
}

/* Whether a replacement string starts at s (of n bytes left): its kind,
 * position and length.  The longest match wins. */
static bool match_rpl(const char *s, size_t n, const belt__par_names *names,
                      belt__rpl_kind *kind, long *pos, size_t *len)
{
    size_t best = 0;
    for (int k = 0; k < BELT__RPL_N; k++) {
        const char *r = names->s[k];
        size_t rl = strlen(r);
        if (rl == 0 || rl > n || rl <= best || memcmp(s, r, rl) != 0)
            continue;
        best = rl;
        *kind = (belt__rpl_kind)k;
        *pos = 0;
    }
    /* Positional: '{' [-]digits blanks* and the rest of a '{...}' string. */
    if (n >= 3 && s[0] == '{') {
        size_t i = 1;
        if (s[i] == '-')
            i++;
        size_t d0 = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i > d0) {
            errno = 0;
            long p = strtol(s + 1, NULL, 10);
            size_t j = i;
            while (j < n && is_space(s[j]))
                j++;
            for (int k = 0; k < BELT__RPL_N; k++) {
                const char *r = names->s[k];
                size_t rl = strlen(r);
                if (rl < 2 || r[0] != '{' || r[rl - 1] != '}' ||
                    k == BELT__RPL_SEQ || k == BELT__RPL_SLOT)
                    continue;
                size_t tail = rl - 1; /* r without its '{' */
                if (j + tail > n || memcmp(s + j, r + 1, tail) != 0)
                    continue;
                /* {0} is {} (parallel: a position of 0 is no position) */
                if (j + tail > best && errno == 0) {
                    best = j + tail;
                    *kind = (belt__rpl_kind)k;
                    *pos = p;
                }
            }
        }
    }
    *len = best;
    return best > 0;
}

static int push_tok(belt__par_tpl *t, size_t *cap, struct tok tk)
{
    if (t->ntok == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct tok *nt = realloc(t->tok, nc * sizeof *nt);
        if (nt == NULL)
            return BELT_ENOMEM;
        t->tok = nt;
        *cap = nc;
    }
    t->tok[t->ntok++] = tk;
    return BELT_OK;
}

int belt__par_tpl_new(belt__par_tpl **out, char *const *words, size_t nwords,
                      const belt__par_names *names, unsigned flags)
{
    belt__par_tpl *t = calloc(1, sizeof *t);
    if (t == NULL)
        return BELT_ENOMEM;
    t->flags = flags;
    size_t total = 1;
    for (size_t w = 0; w < nwords; w++)
        total += strlen(words[w]);
    if ((t->text = malloc(total)) == NULL)
        goto nomem;
    size_t cap = 0, off = 0;
    bool any_rpl = false;
    for (size_t w = 0; w < nwords; w++) {
        if (w > 0 && push_tok(t, &cap, (struct tok){.type = T_SEP}))
            goto nomem;
        const char *s = words[w];
        size_t n = strlen(s);
        memcpy(t->text + off, s, n);
        if (n == 0 &&
            push_tok(t, &cap, (struct tok){.type = T_TEXT, .off = off}))
            goto nomem;
        size_t i = 0;
        while (i < n) {
            struct tok tk = {.type = T_TEXT, .off = off + i};
            size_t ml;
            if (match_rpl(s + i, n - i, names, &tk.kind, &tk.pos, &ml)) {
                tk.type = T_RPL;
                t->uses[tk.kind] = true;
                any_rpl = true;
                i += ml;
            } else if (is_space(s[i])) {
                tk.type = T_SPACE;
                tk.len = 1;
                i++;
            } else {
                size_t j = i + 1;
                belt__rpl_kind k;
                long p;
                while (j < n && !is_space(s[j]) &&
                       !match_rpl(s + j, n - j, names, &k, &p, &ml))
                    j++;
                tk.len = j - i;
                i = j;
            }
            if (push_tok(t, &cap, tk))
                goto nomem;
        }
        off += n;
    }
    t->text[off] = '\0';
    if (!any_rpl && !(flags & BELT__TPL_NO_APPEND)) {
        if ((nwords > 0 && push_tok(t, &cap, (struct tok){.type = T_SEP})) ||
            push_tok(t, &cap, (struct tok){.type = T_RPL,
                                            .kind = BELT__RPL_ARG}))
            goto nomem;
        t->uses[BELT__RPL_ARG] = true;
    }
    /* The command starts with a replacement string (parallel's test is
     * /^[^ \t\n=]*\257</ on the words joined with spaces): the input is
     * (part of) the command, and is not quoted. */
    t->quote_args = !(flags & (BELT__TPL_QUOTE_ALL | BELT__TPL_RAW));
    for (size_t i = 0; i < t->ntok && t->quote_args; i++) {
        const struct tok *tk = &t->tok[i];
        if (tk->type == T_RPL) {
            t->quote_args = false;
            break;
        }
        if (tk->type == T_SEP)
            break;
        if (tk->type == T_SPACE) {
            char c = t->text[tk->off];
            if (c == ' ' || c == '\t' || c == '\n')
                break;
        }
        if (tk->type == T_TEXT && memchr(t->text + tk->off, '=', tk->len))
            break;
    }
    *out = t;
    return BELT_OK;

nomem:
    belt__par_tpl_free(t);
    return BELT_ENOMEM;
}

void belt__par_tpl_free(belt__par_tpl *t)
{
    if (t == NULL)
        return;
    free(t->text);
    free(t->tok);
    free(t);
}

bool belt__par_tpl_uses(const belt__par_tpl *t, belt__rpl_kind k)
{
    return t->uses[k];
}

bool belt__par_tpl_quotes_args(const belt__par_tpl *t)
{
    return t->quote_args;
}

/* ---- values --------------------------------------------------------------- */

/* s:.*\/:: -- where '.' does not match a newline: the first '/' decides
 * the line, and the match runs to the last '/' of that line. */
static void strip_dir(const char **s, size_t *n, char **keep_tail,
                      size_t *tail_len)
{
    const char *p = *s, *first = memchr(p, '/', *n);
    *keep_tail = NULL;
    *tail_len = 0;
    if (first == NULL)
        return;
    const char *line = first;
    while (line > p && line[-1] != '\n')
        line--;
    const char *end = memchr(first, '\n', *n - (size_t)(first - p));
    if (end == NULL)
        end = p + *n;
    const char *last = first;
    for (const char *q = first; q < end; q++)
        if (*q == '/')
            last = q;
    /* What is left: p[0, line) and (last, n). */
    if (line == p) {
        *n -= (size_t)(last + 1 - p);
        *s = last + 1;
    } else {
        *keep_tail = (char *)(last + 1);
        *tail_len = *n - (size_t)(last + 1 - p);
        *n = (size_t)(line - p);
    }
}

/* s:\.[^/.]*$:: -- the last '.', when no '/' follows it. */
static size_t strip_ext(const char *s, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (s[i] == '/')
            return n;
        if (s[i] == '.')
            return i;
    }
    return n;
}

/* File::Basename's _strip_trailing_sep: trailing '/'s, keeping one byte. */
static size_t strip_slashes(const char *s, size_t n)
{
    while (n > 1 && s[n - 1] == '/')
        n--;
    return n;
}

/* File::Basename::dirname for Unix. */
static void dirname_of(belt__buf *out, const char *s, size_t n)
{
    /* fileparse: the directory is up to the last '/' ("./" when none). */
    size_t slash = n;
    for (size_t i = n; i-- > 0;)
        if (s[i] == '/') {
            slash = i;
            break;
        }
    const char *dir = slash < n ? s : "./";
    size_t dl = slash < n ? slash + 1 : 2;
    bool base_empty = slash < n ? slash + 1 == n : n == 0;
    dl = strip_slashes(dir, dl);
    if (base_empty) {
        /* fileparse of the directory again */
        size_t s2 = dl;
        for (size_t i = dl; i-- > 0;)
            if (dir[i] == '/') {
                s2 = i;
                break;
            }
        if (s2 < dl) {
            dl = strip_slashes(dir, s2 + 1);
        } else {
            dir = ".";
            dl = 1;
        }
    }
    belt__buf_add(out, dir, dl);
}

void belt__par_value(belt__buf *out, belt__rpl_kind k, const char *s,
                     size_t n)
{
    char *tail = NULL;
    size_t tl = 0;
    switch (k) {
    case BELT__RPL_NOEXT:
        belt__buf_add(out, s, strip_ext(s, n));
        return;
    case BELT__RPL_BASE:
    case BELT__RPL_BASENOEXT:
        strip_dir(&s, &n, &tail, &tl);
        if (tail == NULL) {
            belt__buf_add(out, s, k == BELT__RPL_BASE ? n : strip_ext(s, n));
            return;
        }
        /* A '/' on a later line: the kept head, then the tail (rare). */
        if (k == BELT__RPL_BASE) {
            belt__buf_add(out, s, n);
            belt__buf_add(out, tail, tl);
        } else {
            size_t start = out->len;
            belt__buf_add(out, s, n);
            belt__buf_add(out, tail, tl);
            if (!out->oom) {
                size_t cut = strip_ext(out->p + start, out->len - start);
                out->len = start + cut;
                out->p[out->len] = '\0';
            }
        }
        return;
    case BELT__RPL_DIR:
        dirname_of(out, s, n);
        return;
    default:
        belt__buf_add(out, s, n);
        return;
    }
}

/* ---- expanding --------------------------------------------------------------- */

/* The quote groups being built: the current one in g, finished ones in
 * out, joined by spaces. */
struct qs {
    const belt__par_tpl *t;
    belt__buf *out;
    belt__buf g;        /* the current group */
    belt__buf v;        /* scratch for one value */
    bool g_has;         /* the current group holds something (even "") */
    bool any;           /* a group went out already */
    const belt__par_val *args;
    size_t nargs;
    bool noarg;         /* -N0: normal replacement strings give nothing */
    uint64_t seq;
    unsigned slot;
};

static void q_text(struct qs *q, const char *p, size_t n)
{
    belt__buf_add(&q->g, p, n);
    q->g_has = true;
}

/* A separator: the current group is finished. */
static void q_sep(struct qs *q)
{
    if (q->t->flags & BELT__TPL_QUOTE_ALL) {
        if (q->g_has) {
            if (q->any)
                belt__buf_addc(q->out, ' ');
            belt__sh_quote_parallel(q->out, belt__buf_str(&q->g), q->g.len);
            q->any = true;
        }
    } else {
        if (q->any)
            belt__buf_addc(q->out, ' ');
        belt__buf_add(q->out, belt__buf_str(&q->g), q->g.len);
        q->any = true;
    }
    if (q->g.oom)
        q->out->oom = true;
    belt__buf_clear(&q->g);
    q->g_has = false;
}

/* The value of a replacement token for argument a, quoted if need be. */
static void q_value(struct qs *q, const struct tok *tk, belt__par_val a)
{
    char num[24];
    const char *p = a.p;
    size_t n = a.len;
    belt__buf_clear(&q->v);
    if (tk->kind == BELT__RPL_SEQ || tk->kind == BELT__RPL_SLOT) {
        int l = snprintf(num, sizeof num, "%" PRIu64,
                         tk->kind == BELT__RPL_SEQ ? q->seq
                                                   : (uint64_t)q->slot);
        p = num;
        n = (size_t)l;
    } else if (tk->kind != BELT__RPL_ARG) {
        belt__par_value(&q->v, tk->kind, a.p, a.len);
        p = belt__buf_str(&q->v);
        n = q->v.len;
        if (q->v.oom)
            q->out->oom = true;
    }
    if (q->t->quote_args)
        belt__sh_quote_parallel(&q->g, p, n);
    else
        belt__buf_add(&q->g, p, n);
    q->g_has = true;
}

/* A token that appears once: positional (or {#}, {%}: the first argument). */
static void q_once(struct qs *q, const struct tok *tk)
{
    long pos = tk->kind == BELT__RPL_SEQ || tk->kind == BELT__RPL_SLOT
                   ? 1 : tk->pos;
    long idx = pos > 0 ? pos - 1 : (long)q->nargs + pos;
    if (idx >= 0 && (size_t)idx < q->nargs)
        q_value(q, tk, q->args[idx]);
    else
        q_text(q, "", 0);
}

static bool once(const struct tok *tk)
{
    return tk->pos != 0 || tk->kind == BELT__RPL_SEQ ||
           tk->kind == BELT__RPL_SLOT;
}

static void expand_plain(struct qs *q)
{
    const belt__par_tpl *t = q->t;
    for (size_t i = 0; i < t->ntok; i++) {
        const struct tok *tk = &t->tok[i];
        switch (tk->type) {
        case T_TEXT:
        case T_SPACE:
            q_text(q, t->text + tk->off, tk->len);
            break;
        case T_SEP:
            q_sep(q);
            break;
        case T_RPL:
            if (once(tk)) {
                q_once(q, tk);
                break;
            }
            if (q->noarg)
                break;
            for (size_t a = 0; a < q->nargs; a++) {
                if (a > 0)
                    q_sep(q);
                q_value(q, tk, q->args[a]);
            }
            break;
        }
    }
}

/* One context group, tokens [from, to). */
static void expand_group(struct qs *q, size_t from, size_t to)
{
    const belt__par_tpl *t = q->t;
    bool has_rpl = false;
    for (size_t i = from; i < to; i++)
        has_rpl |= t->tok[i].type == T_RPL;
    for (size_t a = 0; a < q->nargs; a++) {
        bool normal = false;
        if (a > 0)
            q_sep(q);
        for (size_t i = from; i < to; i++) {
            const struct tok *tk = &t->tok[i];
            if (tk->type != T_RPL) {
                q_text(q, t->text + tk->off, tk->len);
            } else if (once(tk)) {
                q_once(q, tk);
            } else if (!q->noarg) {
                q_value(q, tk, q->args[a]);
                normal = true;
            }
        }
        if (!has_rpl || !normal)
            break;
    }
}

static void expand_context(struct qs *q)
{
    const belt__par_tpl *t = q->t;
    size_t from = 0;
    for (size_t i = 0; i <= t->ntok; i++) {
        const struct tok *tk = i < t->ntok ? &t->tok[i] : NULL;
        char c = tk && tk->type == T_SPACE ? t->text[tk->off] : 0;
        if (tk && tk->type != T_SEP && c != ' ' && c != '\t')
            continue;
        expand_group(q, from, i);
        from = i;
        if (tk == NULL)
            break;
        if (tk->type == T_SEP) {
            q_sep(q);
            from = i + 1;
        } else if (c == ' ') {
            q_text(q, " ", 1);
            from = i + 1;
        }
        /* A tab is the first token of the next group, as in parallel. */
    }
}

void belt__par_expand(const belt__par_tpl *t, const belt__par_val *args,
                      size_t nargs, uint64_t seq, unsigned slot,
                      belt__buf *out)
{
    static const belt__par_val empty = {"", 0};
    struct qs q = {
        .t = t, .out = out, .args = nargs ? args : &empty,
        .nargs = nargs ? nargs : 1, .seq = seq, .slot = slot,
        .noarg = args == belt__par_noarg,
    };
    if (t->flags & BELT__TPL_CONTEXT)
        expand_context(&q);
    else
        expand_plain(&q);
    q_sep(&q); /* the end */
    if (q.g.oom || q.v.oom)
        out->oom = true;
    belt__buf_free(&q.g);
    belt__buf_free(&q.v);
}

size_t belt__par_arg_cost(const belt__par_tpl *t, belt__par_val v)
{
    belt__buf b = {0};
    size_t cost = 0;
    bool context = t->flags & BELT__TPL_CONTEXT;
    size_t group_text = 0;
    bool group_rpl = false;
    for (size_t i = 0; i <= t->ntok; i++) {
        const struct tok *tk = i < t->ntok ? &t->tok[i] : NULL;
        bool end_group = tk == NULL || tk->type == T_SEP ||
                         (tk->type == T_SPACE &&
                          (t->text[tk->off] == ' ' ||
                           t->text[tk->off] == '\t'));
        if (context && end_group) {
            if (group_rpl)
                cost += group_text + 1;
            group_text = 0;
            group_rpl = false;
        }
        if (tk == NULL)
            break;
        if (tk->type == T_TEXT || tk->type == T_SPACE) {
            group_text += tk->len;
            continue;
        }
        if (tk->type != T_RPL || once(tk))
            continue;
        belt__buf_clear(&b);
        belt__par_value(&b, tk->kind, v.p, v.len);
        size_t l = b.len;
        if (t->quote_args) {
            belt__buf vb = {0};
            belt__sh_quote_parallel(&vb, belt__buf_str(&b), b.len);
            l = vb.len;
            belt__buf_free(&vb);
        }
        if (context) {
            group_text += l;
            group_rpl = true;
        } else {
            cost += l + 1;
        }
    }
    belt__buf_free(&b);
    return cost;
}

/* ---- sizes, durations, escapes ---------------------------------------------- */

int belt__par_parse_size(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return BELT_EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || isnan(v))
        return BELT_EINVAL;
    double mult = 1;
    if (*end != '\0') {
        static const char units[] = "kmgtpe";
        const char *u = strchr(units, tolower((unsigned char)*end));
        if (u == NULL)
            return BELT_EINVAL;
        int power = (int)(u - units) + 1;
        bool binary = isupper((unsigned char)*end) ||
                      (end[1] == 'i' || end[1] == 'I');
        for (int i = 0; i < power; i++)
            mult *= binary ? 1024.0 : 1000.0;
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end != '\0')
            return BELT_EINVAL;
    }
    v *= mult;
    if (v > 9.2e18 || v < -9.2e18)
        return BELT_EINVAL;
    *out = (int64_t)v;
    return BELT_OK;
}

int belt__par_parse_duration(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return BELT_EINVAL;
    if (belt_parse_duration(s, out) == BELT_OK)
        return BELT_OK;
    /* parallel's multiply_time_units: d, h, m, s, and a bare number of
     * seconds at the end ("1m30" is 90 s). */
    double total = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno != 0 || v < 0 || isnan(v))
            return BELT_EINVAL;
        double unit = 1;
        switch (tolower((unsigned char)*end)) {
        case 'd': unit = 86400; end++; break;
        case 'h': unit = 3600; end++; break;
        case 'm': unit = 60; end++; break;
        case 's': unit = 1; end++; break;
        case '\0': break;
        default: return BELT_EINVAL;
        }
        total += v * unit;
        p = end;
    }
    if (total * 1e9 > 9.2e18)
        return BELT_EINVAL;
    *out = (int64_t)(total * 1e9);
    return BELT_OK;
}

void belt__par_unescape(belt__buf *out, const char *s, bool record)
{
    while (*s) {
        if (s[0] != '\\' || s[1] == '\0') {
            belt__buf_addc(out, *s++);
            continue;
        }
        char c = s[1];
        char r = 0;
        bool known = true;
        switch (c) {
        case 'n': r = '\n'; break;
        case 't': r = '\t'; break;
        case 'r': r = '\r'; break;
        default: known = false;
        }
        if (known) {
            belt__buf_addc(out, r);
            s += 2;
            continue;
        }
        if (record) {
            if (c == '0' || c == '\'' || c == '"' || c == '\\') {
                belt__buf_addc(out, c == '0' ? '\0' : c);
                s += 2;
            } else {
                belt__buf_addc(out, *s++);
            }
            continue;
        }
        /* printf's octal: \NNN (three digits) or \N (one) */
        if (c >= '0' && c <= '7') {
            int n = 0, v = 0;
            while (n < 3 && s[1 + n] >= '0' && s[1 + n] <= '7') {
                v = v * 8 + (s[1 + n] - '0');
                n++;
            }
            if (n == 2) { /* parallel takes \NNN or \N, not \NN */
                n = 1;
                v = c - '0';
            }
            belt__buf_addc(out, (char)v);
            s += 1 + n;
            continue;
        }
        belt__buf_addc(out, *s++);
    }
}
