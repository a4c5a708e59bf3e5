/* util/shell.c: words for /bin/sh (util/shell.h). */
#include "util/shell.h"

#include <stdint.h>
#include <string.h>

void belt__sh_quote(belt__buf *b, const char *s, size_t n)
{
    /* Room for the worst case at once: every byte a quote. */
    if (n > (SIZE_MAX - 2) / 4 || !belt__buf_reserve(b, n * 4 + 2))
        return;
    char *p = b->p + b->len;
    *p++ = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'') {
            memcpy(p, "'\\''", 4);
            p += 4;
        } else {
            *p++ = s[i];
        }
    }
    *p++ = '\'';
    *p = '\0';
    b->len = (size_t)(p - b->p);
}

bool belt__sh_plain(const char *s, size_t n)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-_./=:,+@%";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || strchr(safe, s[i]) == NULL)
            return false;
    return true;
}

void belt__sh_word(belt__buf *b, const char *s, size_t n)
{
    if (belt__sh_plain(s, n))
        belt__buf_add(b, s, n);
    else
        belt__sh_quote(b, s, n);
}
