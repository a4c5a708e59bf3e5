/* parallel_input.c: the arguments of `belt run COMMAND ...`: input sources
 * and the records they combine into, in GNU parallel's order.
 *
 * Sources (parallel's read_args_from_command_line and -a): each `::: a b`
 * is a list, each `:::: FILE` or `-a FILE` a file ("-": stdin), stdin when
 * there is none.  A source after `:::+` or `::::+` is linked to the one
 * before it: the two advance together, and stop with the shorter (as
 * parallel 20221122 does: its expand_combinations() keeps only combinations
 * where linked sources have the same index).
 *
 * Order.  Several sources make their cartesian product with the first
 * source outermost and the last one varying fastest ("::: a b ::: 1 2" is
 * a 1, a 2, b 1, b 2), which is the order parallel's MultifileQueue::nest_get
 * yields.  Linked sources form one "level" of that product.  The first level
 * is streamed, one item from each of its sources per record, so a million
 * lines on stdin run in bounded memory and start at once; the other levels
 * are read whole on the first call (their values are needed again for
 * every item of the first).  A source with no items at all counts as one
 * empty item when others have some (parallel's nest_get uses Arg->new("")
 * for it); when all are empty there is no record.
 *
 * Items end with the delimiter: newline, NUL with -0, or -d's string (any
 * length, escapes already turned into bytes).  The delimiter is removed; a
 * last item without one counts; with -r, items of only blanks are skipped.
 * With --colsep each item is split at every match of the separator (a Perl
 * regular expression in parallel; here a POSIX extended one, with \t \n \s
 * \d \w and their capitals translated, or a plain string when it holds no
 * special character), keeping empty fields, and each field is trimmed of
 * blanks at both ends (parallel sets --trim lr with --colsep).
 *
 * Reading waits with poll() on the input and on the caller's stop fd (an
 * eventfd), so the engine can stop the reading thread at any moment.
 *
 * Memory: the values of a record point into the readers' buffers, the
 * command line's words and the arrays of the later levels; they stay valid
 * until the next call.
 */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "belt/error.h"
#include "cli/parallel.h"
#include "util/err.h"
#include "util/fd.h"

/* ---- a reader: items of one file ---------------------------------------- */

struct reader {
    int fd;
    bool own;              /* close fd at the end */
    char *buf;             /* [start, len) not yet split */
    size_t start, len, cap;
    bool eof;
};

/* The next item into *p, *n (valid until the next call).  Returns 1, 0 at
 * the end, BELT_ESYS (errno) on a read error, BELT_ECANCELED when stop_fd
 * became readable, BELT_ENOMEM. */
static int reader_next(struct reader *r, const char *delim, size_t dl,
                       int stop_fd, const char **p, size_t *n)
{
    for (;;) {
        char *hit = NULL;
        if (r->len - r->start >= dl) {
            hit = dl == 1 ? memchr(r->buf + r->start, delim[0],
                                   r->len - r->start)
                          : memmem(r->buf + r->start, r->len - r->start,
                                   delim, dl);
        }
        if (hit != NULL) {
            *p = r->buf + r->start;
            *n = (size_t)(hit - *p);
            r->start = (size_t)(hit - r->buf) + dl;
            return 1;
        }
        if (r->eof) {
            if (r->len > r->start) {
                *p = r->buf + r->start;
                *n = r->len - r->start;
                r->start = r->len;
                return 1;
            }
            return 0;
        }
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->start = 0;
        }
        if (r->len == r->cap) {
            size_t nc = r->cap ? r->cap * 2 : 65536;
            char *nb = realloc(r->buf, nc);
            if (nb == NULL)
                return BELT_ENOMEM;
            r->buf = nb;
            r->cap = nc;
        }
        if (stop_fd >= 0) {
            int rc = belt__wait_readable(r->fd, stop_fd);
            if (rc != BELT_OK)
                return rc;
        }
        ssize_t got = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0)
            return BELT_ESYS;
        if (got == 0)
            r->eof = true;
        r->len += (size_t)got;
    }
}

/* ---- sources, levels, the product --------------------------------------- */

struct src {
    const belt__par_source *spec;
    struct reader rd;      /* file sources */
    size_t next;           /* list sources: the next value */
    bool gave;             /* produced an item already */
    /* later levels: every item, owned */
    belt__par_val *all;
    size_t nall, capall;
    char **owned;          /* the copies behind `all` */
};

struct level {
    size_t first, count;   /* sources [first, first + count) */
    size_t len;            /* later levels: items in the level */
    size_t idx;            /* later levels: the odometer digit */
};

struct belt__par_input {
    struct src *src;
    size_t nsrc;
    struct level *lev;
    size_t nlev;
    belt__par_input_opts o;
    bool started;          /* the later levels are read */
    bool have_first;       /* a first-level record is current */
    bool done;
    belt__par_val *cur;    /* the current first-level values, per source */
    belt__par_val *rec;    /* the record handed out */
    size_t nrec, caprec;
    regex_t re;
    bool have_re;
    char *literal;         /* --colsep without special characters */
    size_t literal_len;
};

/* One item of source s: 1, 0 at its end, or an error code. */
static int src_next(belt__par_input *in, struct src *s, belt__par_val *v)
{
    for (;;) {
        const char *p = NULL;
        size_t n = 0;
        if (s->spec->name == NULL) {
            if (s->next >= s->spec->nvals)
                return 0;
            p = s->spec->vals[s->next++];
            n = strlen(p);
        } else {
            int rc = reader_next(&s->rd, in->o.delim, in->o.delim_len,
                                 in->o.stop_fd, &p, &n);
            if (rc != 1)
                return rc;
        }
        if (in->o.skip_blank) {
            size_t i = 0;
            while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
                             p[i] == '\f' || p[i] == '\v' || p[i] == '\n'))
                i++;
            if (i == n)
                continue;
        }
        v->p = p;
        v->len = n;
        s->gave = true;
        return 1;
    }
}

/* Reads every item of s (a later level) into s->all. */
static int src_read_all(belt__par_input *in, struct src *s)
{
    for (;;) {
        belt__par_val v;
        int rc = src_next(in, s, &v);
        if (rc <= 0)
            return rc;
        if (s->nall == s->capall) {
            size_t nc = s->capall ? s->capall * 2 : 16;
            belt__par_val *na = realloc(s->all, nc * sizeof *na);
            char **no = realloc(s->owned, nc * sizeof *no);
            if (na) s->all = na;
            if (no) s->owned = no;
            if (na == NULL || no == NULL)
                return BELT_ENOMEM;
            s->capall = nc;
        }
        char *copy = malloc(v.len + 1);
        if (copy == NULL)
            return BELT_ENOMEM;
        memcpy(copy, v.p, v.len);
        copy[v.len] = '\0';
        s->owned[s->nall] = copy;
        s->all[s->nall++] = (belt__par_val){copy, v.len};
    }
}

/* Translates a Perl regular expression's common escapes into POSIX ERE. */
static char *perl_to_ere(const char *s)
{
    belt__buf b = {0};
    for (; *s; s++) {
        if (s[0] != '\\' || s[1] == '\0') {
            belt__buf_addc(&b, *s);
            continue;
        }
        s++;
        switch (*s) {
        case 't': belt__buf_addc(&b, '\t'); break;
        case 'n': belt__buf_addc(&b, '\n'); break;
        case 'r': belt__buf_addc(&b, '\r'); break;
        case 's': belt__buf_adds(&b, "[[:space:]]"); break;
        case 'S': belt__buf_adds(&b, "[^[:space:]]"); break;
        case 'd': belt__buf_adds(&b, "[0-9]"); break;
        case 'D': belt__buf_adds(&b, "[^0-9]"); break;
        case 'w': belt__buf_adds(&b, "[[:alnum:]_]"); break;
        case 'W': belt__buf_adds(&b, "[^[:alnum:]_]"); break;
        default:
            belt__buf_addc(&b, '\\');
            belt__buf_addc(&b, *s);
        }
    }
    if (b.oom) {
        belt__buf_free(&b);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

int belt__par_input_new(belt__par_input **out,
                        const belt__par_source *specs, size_t n,
                        const belt__par_input_opts *o, char *msg,
                        size_t msg_size)
{
    belt__par_input *in = calloc(1, sizeof *in);
    if (in == NULL)
        return belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
    int rc = BELT_ENOMEM;
    in->o = *o;
    in->nsrc = n;
    if ((in->src = calloc(n ? n : 1, sizeof *in->src)) == NULL ||
        (in->lev = calloc(n ? n : 1, sizeof *in->lev)) == NULL ||
        (in->cur = calloc(n ? n : 1, sizeof *in->cur)) == NULL)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        struct src *s = &in->src[i];
        s->spec = &specs[i];
        s->rd.fd = -1;
        if (specs[i].name == NULL)
            continue;
        if (strcmp(specs[i].name, "-") == 0) {
            s->rd.fd = STDIN_FILENO;
        } else {
            s->rd.fd = open(specs[i].name, O_RDONLY | O_CLOEXEC);
            if (s->rd.fd < 0) {
                rc = belt__errf(msg, msg_size, BELT_ESYS, "cannot open %s: %s",
                                specs[i].name, strerror(errno));
                goto fail;
            }
            s->rd.own = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || !specs[i].linked) {
            in->lev[in->nlev].first = i;
            in->lev[in->nlev].count = 0;
            in->nlev++;
        }
        in->lev[in->nlev - 1].count++;
    }
    if (o->colsep != NULL) {
        const char *special = "\\^$.[]|()*+?{}";
        if (strpbrk(o->colsep, special) == NULL && o->colsep[0] != '\0') {
            if ((in->literal = strdup(o->colsep)) == NULL)
                goto nomem;
            in->literal_len = strlen(in->literal);
        } else {
            char *ere = perl_to_ere(o->colsep);
            if (ere == NULL)
                goto nomem;
            int e = regcomp(&in->re, ere, REG_EXTENDED);
            free(ere);
            if (e != 0) {
                char why[128];
                regerror(e, &in->re, why, sizeof why);
                rc = belt__errf(msg, msg_size, BELT_EINVAL,
                                "--colsep: bad regular expression '%s': %s",
                                o->colsep, why);
                goto fail;
            }
            in->have_re = true;
        }
    }
    *out = in;
    return BELT_OK;

nomem:
    rc = belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
fail:
    belt__par_input_free(in);
    return rc;
}

void belt__par_input_free(belt__par_input *in)
{
    if (in == NULL)
        return;
    for (size_t i = 0; in->src && i < in->nsrc; i++) {
        struct src *s = &in->src[i];
        if (s->rd.own && s->rd.fd >= 0)
            close(s->rd.fd);
        free(s->rd.buf);
        for (size_t k = 0; k < s->nall; k++)
            free(s->owned[k]);
        free(s->owned);
        free(s->all);
    }
    if (in->have_re)
        regfree(&in->re);
    free(in->literal);
    free(in->src);
    free(in->lev);
    free(in->cur);
    free(in->rec);
    free(in);
}

bool belt__par_input_reads_fd(const belt__par_input *in, int fd)
{
    for (size_t i = 0; i < in->nsrc; i++)
        if (in->src[i].rd.fd == fd)
            return true;
    return false;
}

bool belt__par_input_may_block(const belt__par_input *in)
{
    for (size_t i = 0; i < in->nsrc; i++) {
        struct stat st;
        int fd = in->src[i].rd.fd;
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))
            return true;
    }
    return false;
}

static int rec_push(belt__par_input *in, belt__par_val v)
{
    if (in->nrec == in->caprec) {
        size_t nc = in->caprec ? in->caprec * 2 : 8;
        belt__par_val *nr = realloc(in->rec, nc * sizeof *nr);
        if (nr == NULL)
            return BELT_ENOMEM;
        in->rec = nr;
        in->caprec = nc;
    }
    in->rec[in->nrec++] = v;
    return BELT_OK;
}

static belt__par_val trim(belt__par_val v)
{
    while (v.len > 0 && strchr(" \t\n\r\f\v", v.p[0]) != NULL) {
        v.p++;
        v.len--;
    }
    while (v.len > 0 && strchr(" \t\n\r\f\v", v.p[v.len - 1]) != NULL)
        v.len--;
    return v;
}

/* Adds v to the record, split into columns with --colsep. */
static int add_value(belt__par_input *in, belt__par_val v)
{
    if (!in->literal && !in->have_re)
        return rec_push(in, v);
    if (v.len == 0)
        return rec_push(in, v);
    size_t at = 0;
    for (;;) {
        size_t ms = v.len, me = v.len;
        bool found = false;
        if (in->literal) {
            const char *h = at < v.len
                                ? memmem(v.p + at, v.len - at, in->literal,
                                         in->literal_len)
                                : NULL;
            if (h) {
                ms = (size_t)(h - v.p);
                me = ms + in->literal_len;
                found = true;
            }
        } else if (at <= v.len) {
            regmatch_t m[1];
            m[0].rm_so = (regoff_t)at;
            m[0].rm_eo = (regoff_t)v.len;
            if (regexec(&in->re, v.p, 1, m, REG_STARTEND | (at ? REG_NOTBOL : 0)) == 0 &&
                m[0].rm_eo > m[0].rm_so) {
                ms = (size_t)m[0].rm_so;
                me = (size_t)m[0].rm_eo;
                found = true;
            }
        }
        int rc = rec_push(in, trim((belt__par_val){v.p + at, ms - at}));
        if (rc != BELT_OK || !found)
            return rc;
        at = me;
    }
}

/* Reads the next first-level tuple into in->cur.  1, 0 at the end, or an
 * error code. */
static int next_first(belt__par_input *in, bool first_record)
{
    const struct level *l = &in->lev[0];
    int got = 0;
    for (size_t i = l->first; i < l->first + l->count; i++) {
        struct src *s = &in->src[i];
        int rc = src_next(in, s, &in->cur[i]);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (!first_record || s->gave)
                return 0;
            in->cur[i] = (belt__par_val){"", 0}; /* an empty source */
            continue;
        }
        got++;
    }
    return got > 0 || first_record ? 1 : 0;
}

/* Builds in->rec from the current first-level values and the odometer. */
static int build(belt__par_input *in)
{
    in->nrec = 0;
    int rc = BELT_OK;
    for (size_t lv = 0; lv < in->nlev && rc == BELT_OK; lv++) {
        const struct level *l = &in->lev[lv];
        for (size_t i = l->first; i < l->first + l->count && rc == BELT_OK;
             i++) {
            belt__par_val v = lv == 0 ? in->cur[i] : in->src[i].all[l->idx];
            rc = add_value(in, v);
        }
    }
    return rc;
}

int belt__par_input_next(belt__par_input *in, const belt__par_val **vals,
                         size_t *n)
{
    if (in->done)
        return 0;
    int rc;
    if (in->nsrc == 0) {
        in->done = true;
        return 0;
    }
    if (!in->started) {
        in->started = true;
        bool any = false;
        for (size_t lv = 1; lv < in->nlev; lv++) {
            struct level *l = &in->lev[lv];
            l->len = SIZE_MAX;
            for (size_t i = l->first; i < l->first + l->count; i++) {
                struct src *s = &in->src[i];
                if ((rc = src_read_all(in, s)) < 0)
                    return rc;
                if (s->nall == 0) {
                    /* an empty source: one empty item */
                    belt__par_val *na = realloc(s->all, sizeof *na);
                    char **no = realloc(s->owned, sizeof *no);
                    if (na) s->all = na;
                    if (no) s->owned = no;
                    char *e = calloc(1, 1);
                    if (na == NULL || no == NULL || e == NULL) {
                        free(e);
                        return BELT_ENOMEM;
                    }
                    s->owned[0] = e;
                    s->all[0] = (belt__par_val){e, 0};
                    s->nall = 1;
                    s->capall = 1;
                } else {
                    any = true;
                }
                if (s->nall < l->len)
                    l->len = s->nall;
            }
        }
        rc = next_first(in, true);
        if (rc < 0)
            return rc;
        bool first_any = false;
        for (size_t i = 0; i < in->lev[0].count; i++)
            first_any |= in->src[i].gave;
        if (rc == 0 || (!first_any && !any)) {
            in->done = true;
            return 0;
        }
        in->have_first = true;
    } else {
        /* Advance the odometer: the last level fastest. */
        size_t lv = in->nlev;
        while (lv-- > 1) {
            if (++in->lev[lv].idx < in->lev[lv].len)
                break;
            in->lev[lv].idx = 0;
        }
        if (lv == 0 || in->nlev == 1) {
            rc = next_first(in, false);
            if (rc <= 0) {
                in->done = rc == 0;
                return rc;
            }
        }
    }
    if ((rc = build(in)) != BELT_OK)
        return rc;
    *vals = in->rec;
    *n = in->nrec;
    return 1;
}
