/* util/shell.h: writing words for /bin/sh.  Internal: never installed. */
#ifndef BELT_UTIL_SHELL_H
#define BELT_UTIL_SHELL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

/* Appends s[0..n) to b as one /bin/sh word inside single quotes, each '
 * written as '\'' (POSIX sh, 2.2.2: nothing is special between single
 * quotes).  Running out of memory sets b->oom. */
void belt__sh_quote(belt__buf *b, const char *s, size_t n);

/* Whether s[0..n) is one /bin/sh word as it is: not empty, and made only
 * of letters, digits and -_./=:,+@% (no quoting, globbing, expansion or
 * word splitting can touch it).  Can't fail. */
bool belt__sh_plain(const char *s, size_t n);

/* Appends s[0..n) bare when belt__sh_plain(), else belt__sh_quote()d. */
void belt__sh_word(belt__buf *b, const char *s, size_t n);

#endif /* BELT_UTIL_SHELL_H */
