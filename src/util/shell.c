/* util/shell.c: words for /bin/sh (util/shell.h).
 *
 * Two quoting styles live here.  belt's own (belt__sh_quote, _word) puts
 * anything not obviously safe inside single quotes.  GNU parallel's
 * (belt__sh_quote_parallel) is what `belt run COMMAND ::: ARGS` uses, so
 * that its commands are byte for byte those parallel builds: it is
 * shell_quote_scalar_default() of /usr/bin/parallel (20221122), rewritten
 * here: an argument made only of [-_.+a-zA-Z0-9/] stays bare, the empty
 * one is '', anything else is wrapped in '...' with every ' replaced by
 * '"'"' (close the quote, a double-quoted ', reopen), and the empty ''
 * that this leaves at the front of "'x" or the end of "x'" is removed.
 */
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

bool belt__sh_parallel_bare(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == '+' || c == '/'))
            return false;
    }
    return n > 0;
}

void belt__sh_quote_parallel(belt__buf *b, const char *s, size_t n)
{
    if (n == 0) {
        belt__buf_add(b, "''", 2);
        return;
    }
    if (belt__sh_parallel_bare(s, n)) {
        belt__buf_add(b, s, n);
        return;
    }
    /* Worst case: every byte a quote (5 bytes each), plus the two ends. */
    if (n > (SIZE_MAX - 3) / 5 || !belt__buf_reserve(b, n * 5 + 2))
        return;
    char *start = b->p + b->len, *p = start;
    if (s[0] != '\'')          /* "'x...": the leading '' would be empty */
        *p++ = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\'') {
            *p++ = s[i];
            continue;
        }
        /* ' closes the quote (left out at the very start), "'" is the
         * quote itself, ' reopens (left out at the very end). */
        if (i > 0)
            *p++ = '\'';
        memcpy(p, "\"'\"", 3);
        p += 3;
        if (i + 1 < n)
            *p++ = '\'';
    }
    if (s[n - 1] != '\'')
        *p++ = '\'';
    *p = '\0';
    b->len += (size_t)(p - start);
}
