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

/* Appends s[0..n) quoted exactly as GNU parallel quotes an argument for a
 * Bourne shell (shell_quote_scalar_default in /usr/bin/parallel): bare
 * when every byte is a letter, a digit or one of -_.+/ ; '' when empty;
 * otherwise inside single quotes with each ' written as '"'"', and a ''
 * left at either end by that dropped ("'a" becomes "'"'a'").  So
 * `belt run --dry-run` prints the bytes `parallel --dry-run` prints.
 * Running out of memory sets b->oom. */
void belt__sh_quote_parallel(belt__buf *b, const char *s, size_t n);

/* Whether belt__sh_quote_parallel() leaves s[0..n) bare.  Can't fail. */
bool belt__sh_parallel_bare(const char *s, size_t n);

#endif /* BELT_UTIL_SHELL_H */
