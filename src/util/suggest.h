/* util/suggest.h: the closest known name to a mistyped one.  Internal:
 * never installed. */
#ifndef BELT_UTIL_SUGGEST_H
#define BELT_UTIL_SUGGEST_H

/* The candidate of the NULL-terminated list cands closest to word (optimal
 * string alignment distance, case ignored) if it is close enough to be a
 * plausible typo, else NULL.  Words or candidates of 64 characters or more
 * are never close.  Can't fail. */
const char *belt__suggest(const char *word, const char *const *cands);

#endif /* BELT_UTIL_SUGGEST_H */
