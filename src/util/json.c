/* util/json.c: JSON string bodies and UTF-8 (util/json.h).
 *
 * Writing follows jansson's dump.c (dump_string): valid UTF-8 copied,
 * seven short escapes, other control bytes as \u00XX.  The escape of each
 * byte comes from one 256-entry class table, shared with the readers so
 * that writer and reader cannot disagree about which bytes stand for
 * themselves.  belt__json_add_str() skips eight plain bytes at a time with
 * the "has a byte less than n" and "has a zero byte" word tests of Sean
 * Anderson's Bit Twiddling Hacks.  Reading follows RFC 8259 section 7:
 * \uXXXX escapes, surrogate pairs combined, lone surrogates refused.
 */
#include "util/json.h"

#include <string.h>

#define R4(c) c, c, c, c
#define R16(c) R4(c), R4(c), R4(c), R4(c)
const unsigned char belt__json_class[256] = {
    /* 0x00 */ BELT__JC_END, BELT__JC_UNICODE, BELT__JC_UNICODE,
               BELT__JC_UNICODE, R4(BELT__JC_UNICODE),
    /* 0x08 */ BELT__JC_SHORT, BELT__JC_SHORT, BELT__JC_SHORT,       /* \b \t \n */
               BELT__JC_UNICODE, BELT__JC_SHORT, BELT__JC_SHORT,     /* \f \r */
               BELT__JC_UNICODE, BELT__JC_UNICODE,
    /* 0x10 */ R16(BELT__JC_UNICODE),
    /* 0x20 */ BELT__JC_PLAIN, BELT__JC_PLAIN, BELT__JC_SHORT,        /* '"' */
               BELT__JC_PLAIN, R4(BELT__JC_PLAIN),
    /* 0x28 */ R4(BELT__JC_PLAIN), R4(BELT__JC_PLAIN),
    /* 0x30 */ R16(BELT__JC_PLAIN), R16(BELT__JC_PLAIN),
    /* 0x50 */ R4(BELT__JC_PLAIN), R4(BELT__JC_PLAIN), R4(BELT__JC_PLAIN),
    /* 0x5C */ BELT__JC_SHORT, BELT__JC_PLAIN, BELT__JC_PLAIN,       /* '\\' */
               BELT__JC_PLAIN,
    /* 0x60 */ R16(BELT__JC_PLAIN), R16(BELT__JC_PLAIN),             /* DEL kept */
    /* 0x80 */ R16(BELT__JC_UTF8), R16(BELT__JC_UTF8), R16(BELT__JC_UTF8),
               R16(BELT__JC_UTF8),
    /* 0xC0 */ R16(BELT__JC_UTF8), R16(BELT__JC_UTF8), R16(BELT__JC_UTF8),
               R16(BELT__JC_UTF8),
};
#undef R4
#undef R16

/* ---- UTF-8 -------------------------------------------------------------- */

size_t belt__utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t belt__utf8_size(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

char *belt__utf8_put(char *w, uint32_t cp)
{
    if (cp < 0x80) {
        *w++ = (char)cp;
    } else if (cp < 0x800) {
        *w++ = (char)(0xC0 | cp >> 6);
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | cp >> 12);
        *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *w++ = (char)(0xF0 | cp >> 18);
        *w++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *w++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    return w;
}

/* ---- reading escapes ---------------------------------------------------- */

/* The four hex digits at s[0..4) into *out; -1 if one is not a hex digit
 * (so a NUL stops it before it reads past the end of a string). */
static int hex4(const unsigned char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

const unsigned char *belt__json_unescape(const unsigned char *s,
                                         const unsigned char *end,
                                         uint32_t *cp)
{
    if (end != NULL && s >= end)
        return NULL;
    switch (*s) {
    case '"': case '\\': case '/': *cp = *s; return s + 1;
    case 'b': *cp = '\b'; return s + 1;
    case 'f': *cp = '\f'; return s + 1;
    case 'n': *cp = '\n'; return s + 1;
    case 'r': *cp = '\r'; return s + 1;
    case 't': *cp = '\t'; return s + 1;
    case 'u': break;
    default: return NULL;
    }
    uint32_t v, lo;
    if ((end != NULL && end - s < 5) || hex4(s + 1, &v) != 0 ||
        (v >= 0xDC00 && v <= 0xDFFF))
        return NULL;
    s += 5;
    if (v >= 0xD800 && v <= 0xDBFF) {
        if ((end != NULL && end - s < 6) || s[0] != '\\' || s[1] != 'u' ||
            hex4(s + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return NULL;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        s += 6;
    }
    *cp = v;
    return s;
}

/* ---- writing ------------------------------------------------------------ */

char *belt__json_put_escape(char *w, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    *w++ = '\\';
    switch (c) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '\b': *w++ = 'b'; break;
    case '\f': *w++ = 'f'; break;
    case '\n': *w++ = 'n'; break;
    case '\r': *w++ = 'r'; break;
    case '\t': *w++ = 't'; break;
    default:
        *w++ = 'u';
        *w++ = '0';
        *w++ = '0';
        *w++ = hex[c >> 4];
        *w++ = hex[c & 15];
    }
    return w;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* A mask with the high bit set in each of the 8 bytes of w that is not
 * PLAIN (below 0x20, '"', '\\', 0x80 and above).  A borrow only starts at
 * a byte that matches, so the mask is never zero when one does, and its
 * lowest-addressed bit on a little-endian machine is a byte that matches
 * (higher bytes can be false positives, and on a big-endian machine lower
 * ones: harmless, the caller then looks at such a byte and copies it). */
static inline uint64_t special_mask(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
    return (w | ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) |
            ((b - ONES) & ~b)) & HIGHS;
}

/* Index (0..7, in memory order) of the first byte flagged in a non-zero
 * special_mask. */
static inline size_t first_flagged(uint64_t m)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (size_t)__builtin_clzll(m) / 8;
#else
    return (size_t)__builtin_ctzll(m) / 8;
#endif
}

/* Room is made for the quotes and every byte copied once; an escape or a
 * replacement, which writes more than it reads, first makes room for its
 * extra bytes plus everything still to come, so `d` never passes the end. */
void belt__json_add_str(belt__buf *o, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n > SIZE_MAX - 2 || !belt__buf_reserve(o, n + 2))
        return;
    char *d = o->p + o->len;
    *d++ = '"';
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            /* Eight bytes at a time up to the first one that needs a look
             * (storing all eight is safe: there is room for n - i). */
            uint64_t w;
            memcpy(&w, u + i, 8);
            memcpy(d, &w, 8);
            uint64_t m = special_mask(w);
            if (m == 0) {
                d += 8;
                i += 8;
                continue;
            }
            size_t f = first_flagged(m);
            d += f;
            i += f;
        }
        unsigned char c = u[i], k = belt__json_class[c];
        if (k == BELT__JC_PLAIN) {
            *d++ = (char)c;
            i++;
            continue;
        }
        if (k == BELT__JC_UTF8) {
            if (c >= 0xC2 && c <= 0xDF && i + 1 < n &&
                (u[i + 1] & 0xC0) == 0x80) {
                /* Two-byte sequences (Latin, Greek, Cyrillic...) inline. */
                d[0] = (char)c;
                d[1] = (char)u[i + 1];
                d += 2;
                i += 2;
                continue;
            }
            size_t l = belt__utf8_len(u + i, n - i);
            if (l != 0) {
                memcpy(d, u + i, l);
                d += l;
                i += l;
                continue;
            }
        }
        /* Writes up to 6 bytes for 1: room for that and the rest. */
        o->len = (size_t)(d - o->p);
        if (!belt__buf_reserve(o, 6 + (n - i - 1) + 1))
            return;
        d = o->p + o->len;
        i++;
        if (k == BELT__JC_UTF8) {
            memcpy(d, "\xEF\xBF\xBD", 3);
            d += 3;
        } else {
            d = belt__json_put_escape(d, c); /* NUL (END) too: \u0000 */
        }
    }
    *d++ = '"';
    *d = '\0';
    o->len = (size_t)(d - o->p);
}

size_t belt__json_str_len(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t len = 0;
    for (;;) {
        const unsigned char *run = s;
        while (belt__json_class[*s] == BELT__JC_PLAIN)
            s++;
        len += (size_t)(s - run);
        switch (belt__json_class[*s]) {
        case BELT__JC_END:
            return len;
        case BELT__JC_SHORT:
            len += 2;
            s++;
            break;
        case BELT__JC_UNICODE:
            len += 6;
            s++;
            break;
        default: {
            size_t n = belt__utf8_len(s, 4);
            if (n == 0)
                return SIZE_MAX;
            len += n;
            s += n;
        }
        }
    }
}

char *belt__json_put_str(char *w, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    *w++ = '"';
    for (;;) {
        const unsigned char *run = s;
        while (belt__json_class[*s] <= BELT__JC_UTF8)
            s++;
        memcpy(w, run, (size_t)(s - run));
        w += s - run;
        unsigned char c = *s++;
        if (c == 0)
            break;
        w = belt__json_put_escape(w, c);
    }
    *w++ = '"';
    return w;
}

char *belt__put_i64(char *w, int64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021"
        "222324252627282930313233343536373839404142434445464748495051525354"
        "555657585960616263646566676869707172737475767778798081828384858687"
        "888990919293949596979899";
    char tmp[20];
    size_t n = sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (v < 0)
        *w++ = '-';
    if (u < 10) {
        *w++ = (char)('0' + u);
        return w;
    }
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        tmp[--n] = pairs[d + 1];
        tmp[--n] = pairs[d];
    }
    if (u >= 10) {
        tmp[--n] = pairs[u * 2 + 1];
        tmp[--n] = pairs[u * 2];
    } else {
        tmp[--n] = (char)('0' + u);
    }
    memcpy(w, tmp + n, sizeof tmp - n);
    return w + (sizeof tmp - n);
}
