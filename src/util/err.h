/* util/err.h: belt's one internal error convention.  Internal: never
 * installed.  src/README.md says it in full; in short:
 *
 *   - A function that can fail returns an int: BELT_OK (0) or a negative
 *     BELT_E... code of belt/error.h.  One that returns a pointer returns
 *     NULL and its comment says which code that stands for.
 *   - When the caller can use words, the function also takes `char *msg,
 *     size_t msg_size` as its last two parameters (msg may be NULL, or
 *     msg_size 0: no words wanted) and, on failure only, writes one line
 *     there.  belt__errf() does both at once:
 *         return belt__errf(msg, msg_size, BELT_EINVAL, "bad port %s", p);
 *   - Where the public API has its own place for the words (a config
 *     loader's belt_config_error, a running pipeline's first failure), the
 *     code is still returned and the words go there, written the same way.
 *   - Library code never prints, exits or aborts.
 */
#ifndef BELT_UTIL_ERR_H
#define BELT_UTIL_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* Writes the formatted message into msg (cut to msg_size, always
 * NUL-terminated; nothing when msg is NULL or msg_size 0) and returns
 * code.  Can't fail. */
int belt__errf(char *msg, size_t msg_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same with a va_list. */
int belt__verrf(char *msg, size_t msg_size, int code, const char *fmt,
                va_list ap) __attribute__((format(printf, 4, 0)));

#endif /* BELT_UTIL_ERR_H */
