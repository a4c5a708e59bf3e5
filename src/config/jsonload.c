/* config/jsonload.c: what every JSON loader of belt shares (config/jsonload.h),
 * and turning a validation failure into one clear line.
 *
 * jansson gives line and column only for syntax errors: its values keep no
 * position.  For every other error we know the JSON path of the offending
 * value (jobs[3].timeout), so we find it again in the text: a small scanner
 * walks the (already valid) JSON, skipping values, decoding object keys to
 * compare them with the path's keys, and counting array items.  The config
 * is parsed with JSON_REJECT_DUPLICATES, so a key path names one place.
 * Columns count characters (UTF-8 lead bytes), as jansson's do, so both
 * kinds of error point the same way.
 *
 * Also here: the path builders and printer ("jobs[3].env.PATH", odd keys
 * as ["a b"]), the error formatter, the small helpers every JSON loader
 * (config/load.c, pipeline/config.c, experiment/experiment.c) shares to parse
 * its text and word its errors (type names, the "unknown key" text, with
 * a "did you mean" from util/suggest.h).
 */
#include "config/jsonload.h"
#include "util/json.h"

#include "belt/error.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ---- paths -------------------------------------------------------------- */

belt__jpath belt__jp_key(const belt__jpath *p, const char *key)
{
    belt__jpath q = p != NULL ? *p : (belt__jpath){ .n = 0 };
    if (q.n < (int)(sizeof q.seg / sizeof q.seg[0])) {
        q.seg[q.n].key = key;
        q.seg[q.n].index = 0;
        q.n++;
    }
    return q;
}

belt__jpath belt__jp_idx(const belt__jpath *p, size_t i)
{
    belt__jpath q = *p;
    if (q.n < (int)(sizeof q.seg / sizeof q.seg[0])) {
        q.seg[q.n].key = NULL;
        q.seg[q.n].index = i;
        q.n++;
    }
    return q;
}

static bool plain_key(const char *k)
{
    if (*k == '\0' || isdigit((unsigned char)*k))
        return false;
    for (; *k != '\0'; k++)
        if (!isalnum((unsigned char)*k) && *k != '_' && *k != '-' && *k != '$')
            return false;
    return true;
}

/* Appends s with control characters escaped (\n, \t, \xHH) so that a
 * message stays on one line. */
static void add_escaped(belt__buf *b, const char *s, bool quote)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            belt__buf_adds(b, "\\n");
        else if (c == '\t')
            belt__buf_adds(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            belt__buf_addf(b, "\\x%02x", c);
        else if (quote && (c == '"' || c == '\\')) {
            belt__buf_addc(b, '\\');
            belt__buf_addc(b, (char)c);
        } else
            belt__buf_addc(b, (char)c);
    }
}

void belt__jpath_format(const belt__jpath *p, char *buf, size_t size)
{
    belt__buf b = { 0 };
    for (int i = 0; p != NULL && i < p->n; i++) {
        const char *k = p->seg[i].key;
        if (k == NULL) {
            belt__buf_addf(&b, "[%zu]", p->seg[i].index);
        } else if (plain_key(k)) {
            if (i > 0)
                belt__buf_addc(&b, '.');
            belt__buf_adds(&b, k);
        } else {
            belt__buf_adds(&b, "[\"");
            add_escaped(&b, k, true);
            belt__buf_adds(&b, "\"]");
        }
    }
    if (size > 0)
        snprintf(buf, size, "%s", belt__buf_str(&b));
    belt__buf_free(&b);
}

/* ---- the scanner -------------------------------------------------------- */

typedef struct scan {
    const char *t;
    size_t n, i;
} scan;

static void ws(scan *s)
{
    while (s->i < s->n && (s->t[s->i] == ' ' || s->t[s->i] == '\t' ||
                           s->t[s->i] == '\n' || s->t[s->i] == '\r'))
        s->i++;
}

/* Reads the string at s->i (a '"'), decoding it into out when out is
 * non-NULL; leaves s->i after the closing quote. */
static void read_string(scan *s, belt__buf *out)
{
    s->i++;
    while (s->i < s->n && s->t[s->i] != '"') {
        char c = s->t[s->i];
        if (c != '\\') {
            if (out != NULL)
                belt__buf_addc(out, c);
            s->i++;
            continue;
        }
        /* The text is valid JSON (jansson parsed it), so the escape is
         * too; should it not be, its backslash and letter are skipped. */
        const unsigned char *at = (const unsigned char *)s->t + s->i + 1;
        const unsigned char *end = (const unsigned char *)s->t + s->n;
        uint32_t cp = 0;
        const unsigned char *next = belt__json_unescape(at, end, &cp);
        s->i = next != NULL ? (size_t)(next - (const unsigned char *)s->t)
                            : s->i + 2;
        if (out != NULL && next != NULL) {
            char u[4];
            belt__buf_add(out, u, (size_t)(belt__utf8_put(u, cp) - u));
        }
    }
    s->i++; /* the closing quote */
}

/* Skips the value at s->i. */
static void skip_value(scan *s)
{
    if (s->i >= s->n)
        return;
    char c = s->t[s->i];
    if (c == '"') {
        read_string(s, NULL);
        return;
    }
    if (c == '{' || c == '[') {
        size_t depth = 0;
        while (s->i < s->n) {
            c = s->t[s->i];
            if (c == '"') {
                read_string(s, NULL);
                continue;
            }
            s->i++;
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return;
            }
        }
        return;
    }
    while (s->i < s->n && strchr(",}] \t\r\n", s->t[s->i]) == NULL)
        s->i++;
}

/* Moves s->i to the value (or key) at p.  False if not found. */
static bool walk(scan *s, const belt__jpath *p, bool at_key)
{
    belt__buf key = { 0 };
    bool ok = true;
    ws(s);
    for (int d = 0; p != NULL && d < p->n && ok; d++) {
        bool last = d == p->n - 1;
        if (p->seg[d].key != NULL) {
            if (s->i >= s->n || s->t[s->i] != '{') {
                ok = false;
                break;
            }
            s->i++;
            for (;;) {
                ws(s);
                if (s->i >= s->n || s->t[s->i] != '"') {
                    ok = false;
                    break;
                }
                size_t key_at = s->i;
                belt__buf_clear(&key);
                read_string(s, &key);
                ws(s);
                if (s->i < s->n && s->t[s->i] == ':')
                    s->i++;
                ws(s);
                if (strcmp(belt__buf_str(&key), p->seg[d].key) == 0) {
                    if (last && at_key)
                        s->i = key_at;
                    break;
                }
                skip_value(s);
                ws(s);
                if (s->i < s->n && s->t[s->i] == ',')
                    s->i++;
            }
        } else {
            if (s->i >= s->n || s->t[s->i] != '[') {
                ok = false;
                break;
            }
            s->i++;
            for (size_t k = 0; k < p->seg[d].index && ok; k++) {
                ws(s);
                skip_value(s);
                ws(s);
                if (s->i < s->n && s->t[s->i] == ',')
                    s->i++;
                else
                    ok = false;
            }
            ws(s);
        }
    }
    belt__buf_free(&key);
    return ok && s->i < s->n;
}

void belt__json_locate(const char *text, size_t len, const belt__jpath *p,
                       bool at_key, int *line, int *column)
{
    *line = *column = 0;
    if (text == NULL)
        return;
    scan s = { text, len, 0 };
    if (!walk(&s, p, at_key))
        return;
    int l = 1, c = 1;
    for (size_t i = 0; i < s.i; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *column = c;
}

/* ---- wording shared by the loaders -------------------------------------- */

bool belt__in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

void belt__list_join(char *buf, size_t size, const char *const *list)
{
    belt__buf b = { 0 };
    for (size_t i = 0; list[i] != NULL; i++) {
        if (i > 0)
            belt__buf_adds(&b, ", ");
        belt__buf_adds(&b, list[i]);
    }
    if (size > 0)
        snprintf(buf, size, "%s", belt__buf_str(&b));
    belt__buf_free(&b);
}

const char *belt__jtype(const struct json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

const char *belt__key_hint(const char *key, const char *const *allowed,
                           const belt__alias *aliases, size_t naliases)
{
    const char *hint = NULL;
    for (size_t i = 0; i < naliases; i++)
        if (strcmp(aliases[i].alias, key) == 0 &&
            belt__in_list(aliases[i].key, allowed))
            hint = aliases[i].key;
    return hint != NULL ? hint : belt__suggest(key, allowed);
}

void belt__unknown_text(char *buf, size_t size, const char *what,
                        const char *name, const char *const *known,
                        const char *hint)
{
    if (hint == NULL)
        hint = belt__suggest(name, known);
    if (hint != NULL) {
        snprintf(buf, size, "unknown %s \"%s\" (did you mean \"%s\"?)", what,
                 name, hint);
        return;
    }
    char list[400];
    belt__list_join(list, sizeof list, known);
    snprintf(buf, size, "unknown %s \"%s\" (expected one of: %s)", what, name,
             list);
}

int belt__fail_unknown(belt__lctx *c, const belt__jpath *p, bool at_key,
                       const char *what, const char *name,
                       const char *const *known, const char *hint)
{
    char text[sizeof c->err->text];
    belt__unknown_text(text, sizeof text, what, name, known, hint);
    return belt__fail(c, p, at_key, "%s", text);
}

void belt__error_start(belt_config_error *e, const char *source,
                       const char *text)
{
    if (e == NULL)
        return;
    memset(e, 0, sizeof *e);
    snprintf(e->source, sizeof e->source, "%s", source);
    if (text != NULL)
        snprintf(e->text, sizeof e->text, "%s", text);
}

int belt__config_read(const char *path, belt__buf *b, belt_config_error *e)
{
    belt__error_start(e, path ? path : "<null>", NULL);
    if (path == NULL) {
        snprintf(e->text, sizeof e->text, "no config file given");
        return BELT_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(e->text, sizeof e->text, "cannot open: %s", strerror(errno));
        return BELT_ENOENT;
    }
    int rerr = belt__buf_read(b, f);
    fclose(f);
    if (rerr != 0 || b->oom) {
        bool oom = b->oom;
        snprintf(e->text, sizeof e->text, "cannot read: %s",
                 oom ? "out of memory" : strerror(rerr));
        belt__buf_free(b);
        return oom ? BELT_ENOMEM : BELT_ENOENT;
    }
    return BELT_OK;
}

int belt__config_string(const char *json, const char **source,
                        belt_config_error *e)
{
    if (*source == NULL)
        *source = "<string>";
    if (json != NULL)
        return BELT_OK;
    if (e != NULL)
        belt__error_start(e, *source, "no config text");
    return BELT_EINVAL;
}

struct json_t *belt__json_parse(const char *text, size_t len,
                                belt_config_error *e)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                              &jerr);
    if (root == NULL) {
        e->line = jerr.line > 0 ? jerr.line : 0;
        e->column = jerr.line > 0 && jerr.column > 0 ? jerr.column : 0;
        belt__error_text(e, jerr.text);
    }
    return root;
}

int belt__fail_oom(belt_config_error *e)
{
    if (e != NULL) {
        e->line = e->column = 0;
        e->path[0] = '\0';
        snprintf(e->text, sizeof e->text, "out of memory");
    }
    return BELT_ENOMEM;
}

/* ---- errors ------------------------------------------------------------- */

int belt__fail(belt__lctx *c, const belt__jpath *p, bool at_key,
               const char *fmt, ...)
{
    belt_config_error *e = c->err;
    if (e == NULL)
        return BELT_ECONFIG;
    /* An error about a key itself is printed at its object's path. */
    belt__jpath parent = p != NULL ? *p : (belt__jpath){ .n = 0 };
    if (at_key && parent.n > 0)
        parent.n--;
    belt__jpath_format(&parent, e->path, sizeof e->path);
    belt__json_locate(c->text, c->len, p, at_key, &e->line, &e->column);
    char raw[sizeof e->text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    belt__error_text(e, raw);
    return BELT_ECONFIG;
}

void belt__error_text(belt_config_error *e, const char *raw)
{
    belt__buf b = { 0 };
    add_escaped(&b, raw, false);
    snprintf(e->text, sizeof e->text, "%s", b.oom ? "out of memory" : belt__buf_str(&b));
    belt__buf_free(&b);
}

char *belt_config_error_format(const belt_config_error *err, char *buf,
                               size_t size)
{
    if (buf == NULL || size == 0)
        return buf;
    if (err == NULL) {
        snprintf(buf, size, "unknown error");
        return buf;
    }
    char pos[32] = "";
    if (err->line > 0 && err->column > 0)
        snprintf(pos, sizeof pos, ":%d:%d", err->line, err->column);
    else if (err->line > 0)
        snprintf(pos, sizeof pos, ":%d", err->line);
    snprintf(buf, size, "%s%s: %s%s%s", err->source, pos, err->path,
             err->path[0] != '\0' ? ": " : "", err->text);
    return buf;
}
