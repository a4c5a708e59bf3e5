/* util/suggest.c: "did you mean" (util/suggest.h).
 *
 * The distance is the optimal string alignment distance: Levenshtein's
 * insertions, deletions and substitutions plus transpositions of adjacent
 * characters (Damerau's restricted form), by the usual dynamic programme
 * over a (n+1) x (m+1) table, case ignored.  A candidate is offered only
 * when its distance is small for the word's length (1 up to 3 characters,
 * 2 up to 8, 3 beyond) and smaller than the word itself, so that "x" never
 * suggests "y".
 */
#include "util/suggest.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#define SUGGEST_MAX 64

static size_t osa(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n >= SUGGEST_MAX || m >= SUGGEST_MAX)
        return SIZE_MAX;
    size_t d[SUGGEST_MAX + 1][SUGGEST_MAX + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++) {
        for (size_t j = 1; j <= m; j++) {
            char x = (char)tolower((unsigned char)a[i - 1]);
            char y = (char)tolower((unsigned char)b[j - 1]);
            size_t cost = x == y ? 0 : 1;
            size_t v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 &&
                x == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == y &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

const char *belt__suggest(const char *word, const char *const *cands)
{
    size_t len = strlen(word);
    size_t limit = len <= 3 ? 1 : len <= 8 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; cands[i] != NULL; i++) {
        size_t d = osa(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return (best != NULL && best_d <= limit && best_d < len) ? best : NULL;
}
