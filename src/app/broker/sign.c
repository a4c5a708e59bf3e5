/* app/broker/sign.c: keys, and HMAC-SHA256 signatures over stream entries.
 *
 * Why.  Whoever can write to <ns>:jobs can make every worker run a shell
 * command.  A Redis password is one secret shared by many programs and
 * machines; the key here is a second one, held only by the submitters and
 * the workers.  Every job entry carries an HMAC-SHA256 tag made with it, and
 * every result entry a tag made by the worker that ran the jobs; a worker
 * runs no job whose tag it cannot verify, and a submitter takes no result
 * whose tag it cannot verify.  (Celery signs messages for the same reason;
 * the construction is RFC 2104's HMAC with SHA-256, computed by OpenSSL's
 * libcrypto, never by code of ours.)
 *
 * What a tag covers.  Every field of the entry, in order, except the one
 * that carries the tag itself ("sig": the signing key's id, a dot, and 64
 * hex digits), each name and value prefixed by its length (4 bytes,
 * big-endian), so that no two different entries feed the MAC the same
 * bytes; in front of them a tag word that says what kind of
 * entry it is ("belt-job-1", "belt-result-1"), so that a job's tag can never
 * pass for a result's, and, for result entries, the run id of the stream
 * they were written to (a job entry carries its run id as a field).  A job
 * entry's fields are its run id, job key, the whole job (JSON) and its
 * max_deliveries; a result entry's are, per record (up to 64 in an entry),
 * the job key, the meta numbers and the whole result record, which holds
 * the delivery number.  So
 * a captured job cannot be replayed into another run, nor a result passed
 * off for another job, run or delivery; see the README's threat model for
 * what a key does not protect.
 *
 * Keys.  A key file holds one or two keys, each 32 random bytes written as
 * 64 hex digits on a line of its own ('#' lines are comments).  The first
 * key signs; every key verifies, so a key can be changed without stopping
 * anything: add the new key as the second line everywhere, then swap the
 * lines, then drop the old one (`belt keygen --add`, `--promote`,
 * `--retire`).  Each key has an id, the first 4 bytes of HMAC(key,
 * "belt-key-id") in hex, which entries carry in "sig" so that a verifier
 * picks the key at once and can say which key an entry was signed with.  A
 * key file that others may read is refused, as ssh refuses such keys.
 *
 * Speed.  OpenSSL's EVP_MAC_init() with the key once, then per message
 * EVP_MAC_init(ctx, NULL, 0, NULL), which restarts from the hashed inner
 * and outer pads instead of hashing the key again: about 0.3 us per tag
 * plus under a nanosecond per byte here (SHA instructions).  An EVP_MAC_CTX
 * is not thread-safe: every thread that signs or verifies has its own
 * belt__broker_mac.
 *
 * Comparisons of tags are constant-time (CRYPTO_memcmp).  Key bytes are
 * wiped (OPENSSL_cleanse) when a keyring is freed or wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "util/err.h"

#define KEY_FILE_MAX 4096 /* a key file is a few lines */

static const char hexdig[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One-shot HMAC-SHA256 (key ids only: not on any hot path). */
static int hmac_once(const unsigned char *key, const void *msg, size_t len,
                     unsigned char out[32])
{
    size_t olen = 0;
    return EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key,
                     BELT__BROKER_KEY_BYTES, msg, len, out, 32, &olen) ? 0
                                                                       : -1;
}

static int key_id(const unsigned char *key, char id[BELT__BROKER_KID_HEX + 1])
{
    unsigned char d[32];
    static const char what[] = "belt-key-id";
    if (hmac_once(key, what, sizeof what - 1, d) != 0)
        return -1;
    to_hex(d, BELT__BROKER_KID_HEX / 2, id);
    OPENSSL_cleanse(d, sizeof d);
    return 0;
}

/* ---- keyrings ------------------------------------------------------------ */

void belt__broker_keys_wipe(belt__broker_keys *k)
{
    if (k != NULL)
        OPENSSL_cleanse(k, sizeof *k);
}

int belt__broker_keys_add(belt__broker_keys *k, const unsigned char *key,
                          char *msg, size_t n)
{
    if (k->count >= BELT__BROKER_KEYS_MAX) {
        return belt__errf(msg, n, BELT_EBUSY, "a key file holds at most %d "
                          "keys", BELT__BROKER_KEYS_MAX);
    }
    memcpy(k->key[k->count], key, BELT__BROKER_KEY_BYTES);
    if (key_id(key, k->id[k->count]) != 0) {
        OPENSSL_cleanse(k->key[k->count], BELT__BROKER_KEY_BYTES);
        return belt__errf(msg, n, BELT_ENOMEM, "HMAC-SHA256 is not available "
                          "from libcrypto");
    }
    k->count++;
    return BELT_OK;
}

int belt__broker_keys_generate(unsigned char key[BELT__BROKER_KEY_BYTES],
                               char *msg, size_t n)
{
    if (RAND_bytes(key, BELT__BROKER_KEY_BYTES) != 1) {
        return belt__errf(msg, n, BELT_ESYS, "no random bytes from libcrypto's "
                          "generator");
    }
    return BELT_OK;
}

/* Parses the text of a key file into k (count 0 on entry). */
static int parse_keys(belt__broker_keys *k, const char *path, char *text,
                      char *msg, size_t n)
{
    unsigned lineno = 0;
    for (char *line = text; line != NULL;) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        lineno++;
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' ||
                           line[len - 1] == '\t'))
            line[--len] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        len = strlen(p);
        if (len > 0 && *p != '#') {
            unsigned char key[BELT__BROKER_KEY_BYTES];
            bool ok = len == 2 * BELT__BROKER_KEY_BYTES;
            for (size_t i = 0; ok && i < BELT__BROKER_KEY_BYTES; i++) {
                int hi = hex_val(p[2 * i]), lo = hex_val(p[2 * i + 1]);
                ok = hi >= 0 && lo >= 0;
                key[i] = (unsigned char)(hi << 4 | (lo & 15));
            }
            if (!ok) {
                OPENSSL_cleanse(key, sizeof key);
                return belt__errf(msg, n, BELT_ECONFIG,
                                  "%s:%u: not a key (expected %d hex digits; "
                                  "make one with belt keygen)", path, lineno,
                                  2 * BELT__BROKER_KEY_BYTES);
            }
            char m[128];
            int rc = belt__broker_keys_add(k, key, m, sizeof m);
            OPENSSL_cleanse(key, sizeof key);
            if (rc != BELT_OK)
                return belt__errf(msg, n, rc == BELT_EBUSY ? BELT_ECONFIG : rc,
                                  "%s:%u: %s", path, lineno, m);
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    if (k->count == 0) {
        return belt__errf(msg, n, BELT_ECONFIG, "%s: no key in the file (make "
                          "one with belt keygen)", path);
    }
    return BELT_OK;
}

int belt__broker_keys_load(belt__broker_keys *out, const char *path,
                           char *msg, size_t n)
{
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return belt__errf(msg, n, BELT_ESYS, "cannot read the key file %s: %s",
                          path, strerror(errno));
    }
    char text[KEY_FILE_MAX + 1];
    struct stat st;
    int rc = BELT_OK;
    if (fstat(fd, &st) != 0) {
        rc = belt__errf(msg, n, BELT_ESYS, "cannot read the key file %s: %s",
                        path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = belt__errf(msg, n, BELT_ECONFIG, "the key file %s is not a "
                        "regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        rc = belt__errf(msg, n, BELT_ECONFIG, "the key file %s may be read or "
                        "written by others (mode %04o): chmod 600 %s",
                        path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fd, text + got, KEY_FILE_MAX + 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = belt__errf(msg, n, BELT_ESYS, "cannot read the key file %s: "
                            "%s", path, strerror(errno));
            goto out;
        }
        if (k == 0)
            break;
        got += (size_t)k;
        if (got > KEY_FILE_MAX) {
            rc = belt__errf(msg, n, BELT_ECONFIG, "%s: too long for a key file "
                            "(more than %d bytes)", path, KEY_FILE_MAX);
            goto out;
        }
    }
    text[got] = '\0';
    if (memchr(text, '\0', got) != NULL) {
        rc = belt__errf(msg, n, BELT_ECONFIG, "%s: not a key file (binary)",
                        path);
        goto out;
    }
    rc = parse_keys(out, path, text, msg, n);
out:
    OPENSSL_cleanse(text, sizeof text);
    close(fd);
    if (rc != BELT_OK)
        belt__broker_keys_wipe(out);
    return rc;
}

int belt__broker_keys_save(const belt__broker_keys *k, const char *path,
                           bool replace, char *msg, size_t n)
{
    if (k->count == 0 || k->count > BELT__BROKER_KEYS_MAX) {
        return belt__errf(msg, n, BELT_EINVAL, "no key to write");
    }
    if (!replace && access(path, F_OK) == 0) {
        return belt__errf(msg, n, BELT_EBUSY, "%s exists (--force replaces it, "
                          "--add adds a second key to it)", path);
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >=
        (int)sizeof tmp) {
        return belt__errf(msg, n, BELT_EINVAL, "path too long: %s", path);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                  0600);
    if (fd < 0) {
        return belt__errf(msg, n, BELT_ESYS, "cannot create %s: %s", tmp,
                          strerror(errno));
    }
    char text[1024];
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int len = snprintf(text, sizeof text,
                       "# belt broker keys (HMAC-SHA256), written by belt "
                       "keygen on %s.\n"
                       "# The first key signs, every key is accepted (two "
                       "while a key is changed).\n"
                       "# Keep this file secret (mode 0600); the submitters "
                       "and every worker need it.\n", stamp);
    for (unsigned i = 0; i < k->count; i++) {
        char hex[2 * BELT__BROKER_KEY_BYTES + 1];
        to_hex(k->key[i], BELT__BROKER_KEY_BYTES, hex);
        len += snprintf(text + len, sizeof text - (size_t)len,
                        "# key %s%s\n%s\n", k->id[i],
                        i == 0 ? " (signs)" : " (accepted)", hex);
        OPENSSL_cleanse(hex, sizeof hex);
    }
    int rc = BELT_OK;
    size_t off = 0;
    while (off < (size_t)len) {
        ssize_t w = write(fd, text + off, (size_t)len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = belt__errf(msg, n, BELT_ESYS, "cannot write %s: %s", tmp,
                            strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    OPENSSL_cleanse(text, sizeof text);
    /* The umask may have taken bits away, never added any: 0600 stays. */
    if (rc == BELT_OK && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
        rc = belt__errf(msg, n, BELT_ESYS, "cannot write %s: %s", tmp,
                        strerror(errno));
    if (close(fd) != 0 && rc == BELT_OK)
        rc = belt__errf(msg, n, BELT_ESYS, "cannot write %s: %s", tmp,
                        strerror(errno));
    if (rc == BELT_OK && rename(tmp, path) != 0)
        rc = belt__errf(msg, n, BELT_ESYS, "cannot rename %s to %s: %s", tmp,
                        path, strerror(errno));
    if (rc != BELT_OK)
        unlink(tmp);
    return rc;
}

/* ---- MAC contexts --------------------------------------------------------- */

/* Bytes of framed message gathered before they go to EVP_MAC_update():
 * each call into a provider costs about as much as hashing 100 bytes, so a
 * message of a few hundred bytes goes in one or two calls, not twenty. */
#define MAC_BUF 4096

struct belt__broker_mac {
    EVP_MAC *alg;
    EVP_MAC_CTX *ctx[BELT__BROKER_KEYS_MAX];
    char id[BELT__BROKER_KEYS_MAX][BELT__BROKER_KID_HEX + 1];
    unsigned count;
    EVP_MAC_CTX *cur; /* the context of the message being made */
    size_t used;      /* bytes in buf not yet given to cur */
    unsigned char buf[MAC_BUF];
};

void belt__broker_mac_free(belt__broker_mac *m)
{
    if (m == NULL)
        return;
    for (unsigned i = 0; i < BELT__BROKER_KEYS_MAX; i++)
        EVP_MAC_CTX_free(m->ctx[i]);
    EVP_MAC_free(m->alg);
    free(m);
}

int belt__broker_mac_new(belt__broker_mac **out, const belt__broker_keys *k,
                         char *msg, size_t n)
{
    if (k == NULL || k->count == 0) {
        return belt__errf(msg, n, BELT_EINVAL, "no key");
    }
    belt__broker_mac *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    m->alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (m->alg == NULL)
        goto fail;
    char digest[] = "SHA256";
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    for (unsigned i = 0; i < k->count; i++) {
        m->ctx[i] = EVP_MAC_CTX_new(m->alg);
        if (m->ctx[i] == NULL ||
            EVP_MAC_init(m->ctx[i], k->key[i], BELT__BROKER_KEY_BYTES,
                         params) != 1)
            goto fail;
        memcpy(m->id[i], k->id[i], sizeof m->id[i]);
    }
    m->count = k->count;
    *out = m;
    return BELT_OK;
fail:
    belt__broker_mac_free(m);
    return belt__errf(msg, n, BELT_ENOMEM, "HMAC-SHA256 is not available from "
                      "libcrypto (or out of memory)");
}

const char *belt__broker_mac_kid(const belt__broker_mac *m)
{
    return m->id[0];
}

static void flush(belt__broker_mac *m)
{
    if (m->used > 0)
        EVP_MAC_update(m->cur, m->buf, m->used);
    m->used = 0;
}

/* Feeds one length-prefixed item to the current message (through buf). */
static void add_item(belt__broker_mac *m, const void *p, size_t len)
{
    if (m->used + 4 + len > MAC_BUF)
        flush(m);
    unsigned char *w = m->buf + m->used;
    w[0] = (unsigned char)(len >> 24);
    w[1] = (unsigned char)(len >> 16);
    w[2] = (unsigned char)(len >> 8);
    w[3] = (unsigned char)len;
    m->used += 4;
    if (len == 0)
        return;
    if (4 + len > MAC_BUF) { /* a large item goes straight in */
        flush(m);
        EVP_MAC_update(m->cur, p, len);
        return;
    }
    memcpy(m->buf + m->used, p, len);
    m->used += len;
}

/* Starts a message with key `which`: the tag word and, if any, the run. */
static void begin(belt__broker_mac *m, unsigned which, const char *tag,
                  const char *run)
{
    m->cur = m->ctx[which];
    m->used = 0;
    EVP_MAC_init(m->cur, NULL, 0, NULL);
    add_item(m, tag, strlen(tag));
    if (run != NULL)
        add_item(m, run, strlen(run));
}

static void finish(belt__broker_mac *m, unsigned char out[32])
{
    size_t olen = 0;
    flush(m);
    if (EVP_MAC_final(m->cur, out, &olen, 32) != 1 || olen != 32)
        memset(out, 0, 32); /* never a valid tag of a message */
}

static bool skipped(const char *name, size_t len)
{
    return len == 3 && memcmp(name, "sig", 3) == 0;
}

void belt__broker_sign_fields(belt__broker_mac *m, const char *tag,
                              const char *run, int count,
                              const char *const *f, const size_t *lens,
                              char sig[BELT__BROKER_SIG_LEN + 1])
{
    begin(m, 0, tag, run);
    for (int i = 0; i + 1 < count; i += 2) {
        size_t nl = lens ? lens[i] : strlen(f[i]);
        if (skipped(f[i], nl))
            continue;
        add_item(m, f[i], nl);
        add_item(m, f[i + 1], lens ? lens[i + 1] : strlen(f[i + 1]));
    }
    unsigned char d[32];
    finish(m, d);
    memcpy(sig, m->id[0], BELT__BROKER_KID_HEX);
    sig[BELT__BROKER_KID_HEX] = '.';
    to_hex(d, sizeof d, sig + BELT__BROKER_KID_HEX + 1);
}

int belt__broker_verify_entry(belt__broker_mac *m, const char *tag,
                              const char *run, const belt__broker_entry *e,
                              char *why, size_t n)
{
    if (e->fields == NULL || e->fields->type != REDIS_REPLY_ARRAY) {
        return belt__errf(why, n, BELT_EINVAL, "entry without fields");
    }
    size_t sl = 0;
    const char *sig = belt__broker_entry_get(e, "sig", &sl);
    const char *dot = sig ? memchr(sig, '.', sl) : NULL;
    size_t kl = dot ? (size_t)(dot - sig) : 0;
    const char *kid = sig;
    if (sig == NULL || dot == NULL) {
        return belt__errf(why, n, BELT_EINVAL, "not signed (this side holds "
                          "key %s; the sender runs without --key-file?)",
                          m->id[0]);
    }
    int which = -1;
    for (unsigned i = 0; i < m->count; i++)
        if (kl == BELT__BROKER_KID_HEX && memcmp(kid, m->id[i], kl) == 0)
            which = (int)i;
    if (which < 0) {
        return belt__errf(why, n, BELT_EINVAL, "signed with key %.*s, which "
                          "is not in this key file (it has %s%s%s)",
                          kl <= 16 ? (int)kl : 16, kid, m->id[0],
                          m->count > 1 ? " and " : "",
                          m->count > 1 ? m->id[1] : "");
    }
    begin(m, (unsigned)which, tag, run);
    const redisReply *f = e->fields;
    size_t to = e->to < f->elements ? e->to : f->elements;
    for (size_t i = e->from; i + 1 < to; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            return belt__errf(why, n, BELT_EINVAL, "malformed entry");
        }
        if (skipped(k->str, k->len))
            continue;
        add_item(m, k->str, k->len);
        add_item(m, v->str, v->len);
    }
    unsigned char d[32];
    char hex[BELT__BROKER_SIG_HEX + 1];
    finish(m, d);
    to_hex(d, sizeof d, hex);
    if (sl != BELT__BROKER_SIG_LEN ||
        CRYPTO_memcmp(hex, dot + 1, BELT__BROKER_SIG_HEX) != 0) {
        return belt__errf(why, n, BELT_EINVAL, "bad signature (key %s): the "
                          "entry was changed or forged", m->id[which]);
    }
    return BELT_OK;
}

/* ---- the command line's choice ------------------------------------------ */

int belt__broker_keys_choose(belt__broker_keys *out, const char *key_file,
                             bool insecure, char *msg, size_t n)
{
    memset(out, 0, sizeof *out);
    if (key_file != NULL && insecure) {
        return belt__errf(msg, n, BELT_EINVAL, "--key-file and --insecure "
                          "contradict each other: give one");
    }
    if (insecure)
        return BELT_OK;
    const char *path = key_file;
    const char *from = "--key-file";
    if (path == NULL) {
        path = getenv(BELT__BROKER_KEY_ENV);
        from = "$" BELT__BROKER_KEY_ENV;
    }
    if (path == NULL || path[0] == '\0') {
        return belt__errf(msg, n, BELT_ECONFIG, "no key: broker jobs are "
                          "signed; give --key-file FILE or set $"
                          BELT__BROKER_KEY_ENV " (make a key with `belt "
                          "keygen FILE`), or --insecure to run unsigned "
                          "jobs");
    }
    char m[700];
    int rc = belt__broker_keys_load(out, path, m, sizeof m);
    if (rc != BELT_OK)
        return belt__errf(msg, n, rc, "%s: %s", from, m);
    return BELT_OK;
}
