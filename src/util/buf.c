/* util/buf.c: the growable string buffer (util/buf.h).  Capacity doubles
 * from 64 bytes, so n appends cost O(n) amortised copies. */
#include "util/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int belt__reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    char *nb = realloc(*buf, ncap);
    if (nb == NULL)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

bool belt__buf_reserve(belt__buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (b->cap - b->len > extra)
        return true;
    if (extra > SIZE_MAX - b->len - 1 ||
        belt__reserve(&b->p, &b->cap, b->len + extra + 1) != 0) {
        b->oom = true;
        return false;
    }
    return true;
}

void belt__buf_add(belt__buf *b, const char *s, size_t n)
{
    if (!belt__buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void belt__buf_adds(belt__buf *b, const char *s)
{
    belt__buf_add(b, s, strlen(s));
}

void belt__buf_addc(belt__buf *b, char c)
{
    belt__buf_add(b, &c, 1);
}

void belt__buf_vaddf(belt__buf *b, const char *fmt, va_list ap)
{
    char small[128];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= 0 && (size_t)n < sizeof small)
        belt__buf_add(b, small, (size_t)n);
    else if (n >= 0 && belt__buf_reserve(b, (size_t)n)) {
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void belt__buf_addf(belt__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    belt__buf_vaddf(b, fmt, ap);
    va_end(ap);
}

int belt__buf_read(belt__buf *b, FILE *f)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        belt__buf_add(b, chunk, n);
    return ferror(f) ? (errno != 0 ? errno : EIO) : 0;
}

void belt__buf_free(belt__buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

