/* app/broker/url.c: parsing the --broker URL.
 *
 * Two forms, those redis-cli -u and the Redis client libraries accept:
 *
 *     redis://[[user]:password@]host[:port][/db]
 *     unix:///path/to/redis.sock[?db=N][&user=U][&password=P]
 *
 * The userinfo follows redis-cli (parseRedisUri in redis-cli.c): "a:b@" is
 * user a with password b, ":b@" or "b@" is password b for the default user;
 * user and password are percent-decoded (so a password may hold '@', ':' or
 * '/' written as %40, %3A, %2F).  An IPv6 address is written in brackets.
 * A URL without a password takes it from $BELT_REDIS_PASSWORD, else
 * $REDISCLI_AUTH (redis-cli's own variable), so it need not appear on a
 * command line where `ps` shows it.
 *
 * Anything else is refused with a message that shows the expected forms,
 * because the usual mistakes are typos ("redis:/host", "redis//host",
 * "http://host", a bare "host:6379") and should not turn into "cannot
 * connect" later.  TLS (rediss://) is refused by name: the hiredis API belt
 * codes to has no TLS.
 *
 * Pure functions over the caller's buffers; getenv() is the only outside
 * input.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "util/err.h"

#define EXPECTED "expected redis://host:port or unix:///path"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into dst (size bytes).  0, or -1 when it does
 * not fit or holds a bad escape. */
static int pct_decode(char *dst, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval((unsigned char)s[i + 1]);
            int lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (o + 1 >= size)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

/* Parses a decimal number s[0..len) in [lo, hi] into *out; 0 or -1. */
static int parse_num(const char *s, size_t len, long lo, long hi, int *out)
{
    if (len == 0 || len > 9)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int copy_part(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size)
        return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* unix:///path[?query]: query holds db=N, user=U, password=P joined by &. */
static int parse_unix(const char *url, const char *rest, belt__broker_url *out,
                      char *msg, size_t n)
{
    out->is_unix = true;
    if (rest[0] != '/')
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": %s (the socket path must be absolute: "
                          "unix:///path/redis.sock)", url, EXPECTED);
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen >= sizeof out->path)
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": socket path too long%s", url, "");
    if (pct_decode(out->path, sizeof out->path, rest, plen) != 0)
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": bad %%-escape in the socket path%s",
                          url, "");
    if (q == NULL)
        return BELT_OK;
    const char *p = q + 1;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq == NULL)
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": bad query (expected ?db=N)%s", url,
                              "");
        size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
        const char *v = eq + 1;
        if (klen == 2 && memcmp(p, "db", 2) == 0) {
            if (parse_num(v, vlen, 0, 1000000, &out->db) != 0)
                return belt__errf(msg, n, BELT_EINVAL,
                                  "\"%s\": bad db number (expected ?db=N)%s",
                                  url, "");
        } else if (klen == 8 && memcmp(p, "password", 8) == 0) {
            if (pct_decode(out->password, sizeof out->password, v, vlen) != 0)
                return belt__errf(msg, n, BELT_EINVAL,
                                  "\"%s\": bad password%s", url, "");
        } else if (klen == 4 && memcmp(p, "user", 4) == 0) {
            if (pct_decode(out->user, sizeof out->user, v, vlen) != 0)
                return belt__errf(msg, n, BELT_EINVAL,
                                  "\"%s\": bad user name%s", url, "");
        } else {
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": unknown query parameter (db, user "
                              "and password are known)%s", url, "");
        }
        p += len + (amp ? 1 : 0);
    }
    return BELT_OK;
}

static int parse_tcp(const char *url, const char *rest, belt__broker_url *out,
                     char *msg, size_t n)
{
    /* authority: up to the first '/', '?' or '#' */
    size_t alen = strcspn(rest, "/?#");
    const char *auth = rest;
    const char *tail = rest + alen;
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (auth[i] == '@')
            at = auth + i; /* the last '@': a password may hold raw '@' */
    const char *hostp = auth;
    if (at != NULL) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *pw = auth;
        if (colon != NULL) {
            if (pct_decode(out->user, sizeof out->user, auth,
                           (size_t)(colon - auth)) != 0)
                return belt__errf(msg, n, BELT_EINVAL,
                                  "\"%s\": bad user name (too long or a "
                                  "bad %%-escape)%s", url, "");
            pw = colon + 1;
        }
        if (pct_decode(out->password, sizeof out->password, pw,
                       (size_t)(at - pw)) != 0)
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": bad password (too long or a bad "
                              "%%-escape)%s", url, "");
        hostp = at + 1;
    }
    size_t hlen = (size_t)(auth + alen - hostp);
    const char *portp = NULL;
    size_t portlen = 0;
    if (hlen > 0 && hostp[0] == '[') {
        const char *close = memchr(hostp, ']', hlen);
        if (close == NULL)
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": missing ']' after the IPv6 "
                              "address%s", url, "");
        if (copy_part(out->host, sizeof out->host, hostp + 1,
                      (size_t)(close - hostp - 1)) != 0)
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": host name too long%s", url, "");
        const char *after = close + 1;
        size_t left = (size_t)(auth + alen - after);
        if (left > 0) {
            if (after[0] != ':')
                return belt__errf(msg, n, BELT_EINVAL,
                                  "\"%s\": %s", url, EXPECTED);
            portp = after + 1;
            portlen = left - 1;
        }
    } else {
        const char *colon = memchr(hostp, ':', hlen);
        size_t len = colon ? (size_t)(colon - hostp) : hlen;
        if (copy_part(out->host, sizeof out->host, hostp, len) != 0)
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": host name too long%s", url, "");
        if (colon != NULL) {
            portp = colon + 1;
            portlen = hlen - len - 1;
        }
    }
    if (out->host[0] == '\0')
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": no host name (%s)", url, EXPECTED);
    for (const char *h = out->host; *h; h++)
        if (isspace((unsigned char)*h) || *h == '@')
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": bad host name (%s)", url, EXPECTED);
    if (portp != NULL &&
        parse_num(portp, portlen, 1, 65535, &out->port) != 0)
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": bad port (a number in 1..65535 after "
                          "the host; %s)", url, EXPECTED);
    if (tail[0] == '/') {
        const char *db = tail + 1;
        size_t len = strlen(db);
        if (len > 0 && parse_num(db, len, 0, 1000000, &out->db) != 0)
            return belt__errf(msg, n, BELT_EINVAL,
                              "\"%s\": bad database number after the '/' "
                              "(redis://host:port/N)%s", url, "");
    } else if (tail[0] != '\0') {
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": unexpected \"%s\" (query parameters are "
                          "for unix:// URLs)", url, tail);
    }
    return BELT_OK;
}

int belt__broker_url_parse(const char *url, belt__broker_url *out, char *msg,
                           size_t n)
{
    if (msg != NULL && n > 0)
        msg[0] = '\0';
    if (out == NULL)
        return belt__errf(msg, n, BELT_EINVAL, "no broker URL%s%s", "", "");
    memset(out, 0, sizeof *out);
    out->port = BELT__BROKER_DEFAULT_PORT;
    if (url == NULL || url[0] == '\0')
        return belt__errf(msg, n, BELT_EINVAL,
                          "empty broker URL: %s%s", EXPECTED, "");
    int rc;
    if (strncmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url, url + 8, out, msg, n);
    else if (strncmp(url, "unix://", 7) == 0)
        rc = parse_unix(url, url + 7, out, msg, n);
    else if (strncmp(url, "rediss://", 9) == 0)
        return belt__errf(msg, n, BELT_EINVAL,
                          "\"%s\": TLS (rediss://) is not supported; %s",
                          url, EXPECTED);
    else
        return belt__errf(msg, n, BELT_EINVAL, "\"%s\": %s", url, EXPECTED);
    if (rc != BELT_OK)
        return rc;
    if (out->password[0] == '\0') {
        const char *env = getenv(BELT__BROKER_PASSWORD_ENV);
        if (env == NULL || env[0] == '\0')
            env = getenv(BELT__BROKER_PASSWORD_ENV2);
        if (env != NULL && env[0] != '\0') {
            if (strlen(env) >= sizeof out->password)
                return belt__errf(msg, n, BELT_EINVAL,
                                  "$%s: password too long%s",
                                  BELT__BROKER_PASSWORD_ENV, "");
            strcpy(out->password, env);
            out->password_from_env = true;
        }
    }
    return BELT_OK;
}

char *belt__broker_url_describe(const belt__broker_url *url, char *buf,
                                size_t size)
{
    if (buf == NULL || size == 0)
        return buf;
    if (url == NULL) {
        snprintf(buf, size, "(no broker)");
    } else if (url->is_unix) {
        if (url->db != 0)
            snprintf(buf, size, "unix://%s?db=%d", url->path, url->db);
        else
            snprintf(buf, size, "unix://%s", url->path);
    } else {
        bool v6 = strchr(url->host, ':') != NULL;
        snprintf(buf, size, "redis://%s%s%s:%d/%d", v6 ? "[" : "", url->host,
                 v6 ? "]" : "", url->port, url->db);
    }
    return buf;
}
