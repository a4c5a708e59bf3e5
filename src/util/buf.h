/* util/buf.h: a growable string buffer (jansson's strbuffer, Redis' sds).
 * Internal: never installed.
 *
 * A zeroed belt__buf is an empty buffer; belt__buf_free() returns it to
 * that state.  The contents are always NUL-terminated once anything was
 * added, and may hold NULs (use len).  Appends never fail: running out of
 * memory sets `oom`, after which appends do nothing, so a caller checks
 * once, at the end, instead of after every append.  One thread at a time.
 */
#ifndef BELT_UTIL_BUF_H
#define BELT_UTIL_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct belt__buf {
    char *p;          /* NULL until the first append; owned by the buffer */
    size_t len, cap;  /* bytes held (without the NUL), bytes allocated */
    bool oom;         /* an allocation failed: later appends do nothing */
} belt__buf;

/* Append n bytes of s / the string s / one byte / printf output. */
void belt__buf_add(belt__buf *b, const char *s, size_t n);
void belt__buf_adds(belt__buf *b, const char *s);
void belt__buf_addc(belt__buf *b, char c);
void belt__buf_addf(belt__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void belt__buf_vaddf(belt__buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Makes room for extra more bytes (and the NUL) in b.  False, with oom set,
 * when memory runs out or b->oom was already set. */
bool belt__buf_reserve(belt__buf *b, size_t extra);

/* Frees the memory and makes b an empty buffer again.  Can't fail. */
void belt__buf_free(belt__buf *b);

/* Appends what is left of f to b.  Returns 0, or the errno of a read error
 * (EIO when errno says nothing); running out of memory sets b->oom. */
int belt__buf_read(belt__buf *b, FILE *f);

/* Empties b, keeping its memory.  Can't fail. */
static inline void belt__buf_clear(belt__buf *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

/* The contents as a string ("" for a buffer never appended to). */
static inline const char *belt__buf_str(const belt__buf *b)
{
    return b->p != NULL ? b->p : "";
}

/* The growth rule of every buffer in belt: makes the malloc'd *buf (of
 * capacity *cap; NULL, 0 to start) hold at least need bytes, doubling from
 * 64.  Returns 0, or -1 when memory runs out (*buf and *cap unchanged,
 * still the caller's). */
int belt__reserve(char **buf, size_t *cap, size_t need);

#endif /* BELT_UTIL_BUF_H */
