/* util/json.h: JSON string bodies and UTF-8, written and read by hand where
 * jansson would cost too much (result records, the broker's wire format,
 * dead letters, error locations).  Internal: never installed.
 *
 * The writers produce exactly what jansson's json_dumps() writes for the
 * same string: valid UTF-8 kept as it is (DEL and '/' included), the short
 * escapes \" \\ \b \f \n \r \t, every other control character (NUL too) as
 * \u00XX with upper-case hex.  tests/unit/check_report.c and check_codec.c
 * compare them with jansson byte for byte.
 */
#ifndef BELT_UTIL_JSON_H
#define BELT_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* What each byte is inside a JSON string: written as it is (PLAIN; UTF8
 * after a UTF-8 check), as a two-byte escape (SHORT), as \u00XX
 * (UNICODE), or the end of a NUL-terminated string (END, the NUL byte
 * only).  A reader takes it the other way: PLAIN bytes stand for
 * themselves.  Ordered so that "class <= BELT__JC_UTF8" means "copied". */
enum {
    BELT__JC_PLAIN,
    BELT__JC_UTF8,
    BELT__JC_SHORT,
    BELT__JC_UNICODE,
    BELT__JC_END
};
extern const unsigned char belt__json_class[256];

/* The length of the valid UTF-8 sequence at s (of the n >= 1 bytes
 * available), or 0 when the bytes there are not one (overlong forms,
 * surrogates and values above U+10FFFF are invalid, as in RFC 3629 and
 * jansson).  NUL counts as valid (one byte); since NUL is no continuation
 * byte, a NUL-terminated string may pass n = 4 safely. */
size_t belt__utf8_len(const unsigned char *s, size_t n);

/* The bytes code point cp (<= U+10FFFF) takes in UTF-8: 1 to 4. */
size_t belt__utf8_size(uint32_t cp);

/* Writes cp (<= U+10FFFF) in UTF-8 at w; returns the end. */
char *belt__utf8_put(char *w, uint32_t cp);

/* Decodes the escape that starts at s, just after a backslash, reading no
 * further than end (NULL: s is NUL-terminated, and the NUL stops the
 * decoding): stores the code point in *cp (a \uD83D\uDE00 pair is
 * one) and returns the first byte after the escape, or NULL when it is no
 * valid JSON escape (unknown letter, bad hex, a lone or reversed
 * surrogate, end reached).  \u0000 is valid (*cp 0). */
const unsigned char *belt__json_unescape(const unsigned char *s,
                                         const unsigned char *end,
                                         uint32_t *cp);

/* Writes the escape of byte c (one that is not copied: a control
 * character, '"' or '\\') at w; returns the end (2 or 6 bytes later). */
char *belt__json_put_escape(char *w, unsigned char c);

/* Appends the n bytes at s as a JSON string, with its quotes, to b, each
 * byte of an invalid UTF-8 sequence replaced by U+FFFD (what jansson's
 * json_stringn would hold after such a repair).  Room is made for n + 2
 * bytes first and more only when an escape or a replacement needs it, and
 * runs of eight plain bytes are copied at a time.  Running out of memory
 * sets b->oom (util/buf.h). */
void belt__json_add_str(belt__buf *b, const char *s, size_t n);

/* The length of the NUL-terminated s written as a JSON string body
 * (without the quotes), or SIZE_MAX when s is not valid UTF-8. */
size_t belt__json_str_len(const char *s);

/* Writes the NUL-terminated s, valid UTF-8 (belt__json_str_len() said so),
 * as a JSON string with its quotes at w, which has room for
 * belt__json_str_len(s) + 2 bytes; returns the end. */
char *belt__json_put_str(char *w, const char *s);

/* Writes v in decimal (as printf's %lld, as jansson writes an integer) at
 * w, which has room for 20 bytes; returns the end. */
char *belt__put_i64(char *w, int64_t v);

#endif /* BELT_UTIL_JSON_H */
