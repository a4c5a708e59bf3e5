/* app/broker/conn.c: one connection to Redis, and the commands both sides of
 * the broker need.
 *
 * A belt__broker wraps one blocking hiredis context with what it takes to
 * make it again: a copy of the URL and the timeout.  Connecting is
 * connect (with a timeout) -> AUTH (when there is a password) -> PING (so a
 * server that wants a password says NOAUTH now, not at the first real
 * command, and something that is not Redis fails now) -> SELECT (db != 0).
 * Error replies are mapped to messages a user can act on: WRONGPASS and
 * "invalid password" say the password was rejected, NOAUTH says one is
 * needed and where to put it.
 *
 * Broken connections.  hiredis marks a context unusable after any I/O or
 * protocol error (c->err stays set); this file mirrors that in `broken` and
 * every later command fails fast until belt__broker_reconnect() makes a new
 * context.  Server error replies (-ERR, -BUSYGROUP) are ordinary replies and
 * do not break anything.
 *
 * Reconnecting backs off exponentially: the first wait is 100 ms, doubled
 * after each failed try up to 5 s, each wait drawn uniformly from [d/2, d]
 * ("equal jitter", from the AWS Architecture Blog's "Exponential Backoff
 * and Jitter", as the executor's retries do) so that many workers do not
 * hammer a restarting server in lockstep.  The wait is a poll() on the
 * caller's stop descriptor with the delay as timeout: a stop request ends
 * it at once.
 *
 * Pipelining.  belt__broker_append() only formats a command into hiredis's
 * output buffer; the first belt__broker_get_reply() writes the whole buffer
 * and then reads replies in order, so N commands cost one round trip.
 * `pending` counts replies still owed; belt__broker_command() (which would
 * read the wrong reply) refuses to run while any are.
 *
 * The stream helpers (entry walking, XGROUP CREATE, batched XADD of jobs)
 * are here because both `belt worker` and `belt run --broker` use them.
 *
 * Thread-safety: none; a belt__broker belongs to one thread at a time (a
 * hiredis context is not thread-safe).  belt__broker_fd() exists so another
 * thread can shutdown() the socket to wake a blocked read; the owner must
 * then not be reconnecting concurrently (app/broker/worker.c guards that with
 * a mutex).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "util/rng.h"
#include "util/err.h"

struct belt__broker {
    redisContext *c;        /* NULL while disconnected */
    bool broken;            /* c (if any) is unusable */
    size_t pending;         /* appended commands whose reply is owed */
    belt__broker_url url;
    int64_t timeout_ns;     /* connect and command timeout */
    int64_t cur_timeout_ns; /* the socket's timeout now, -1 unknown */
    char *fmt;              /* belt__broker_append's RESP buffer */
    size_t fmt_cap;
    int64_t backoff_ns;     /* next reconnect delay (before jitter) */
    uint64_t rng;           /* splitmix64 state, for the jitter */
};

static struct timeval ns_to_tv(int64_t ns)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ns / 1000000000);
    tv.tv_usec = (suseconds_t)((ns % 1000000000) / 1000);
    return tv;
}

static bool starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

char *belt__broker_reply_error(const redisReply *r, const char *what,
                               char *msg, size_t n)
{
    if (msg == NULL || n == 0)
        return msg;
    if (r == NULL)
        belt__errf(msg, n, BELT_EIO, "%s: no reply", what);
    else if (r->type == REDIS_REPLY_ERROR)
        belt__errf(msg, n, BELT_EIO,
                   "%s: %s", what, r->str ? r->str : "error");
    else
        belt__errf(msg, n, BELT_EIO, "%s: unexpected reply (type %d)", what,
                   r->type);
    return msg;
}

/* Runs one command on a fresh context during the handshake. */
static redisReply *handshake_cmd(redisContext *c, int argc, const char **argv)
{
    return redisCommandArgv(c, argc, argv, NULL);
}

/* Connects, authenticates, checks and selects.  Returns the context or NULL
 * with the code in *rc and msg set. */
static redisContext *open_ctx(const belt__broker_url *u, int64_t timeout_ns,
                              int *rc, char *msg, size_t n)
{
    char where[400];
    belt__broker_url_describe(u, where, sizeof where);
    struct timeval tv = ns_to_tv(timeout_ns);
    redisContext *c = u->is_unix ? redisConnectUnixWithTimeout(u->path, tv)
                                 : redisConnectWithTimeout(u->host, u->port,
                                                           tv);
    if (c == NULL) {
        *rc = belt__errf(msg, n, BELT_ENOMEM,
                         "cannot connect to %s: out of memory", where);
        return NULL;
    }
    if (c->err) {
        *rc = belt__errf(msg, n, BELT_EIO,
                         "cannot connect to %s: %s", where, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        *rc = belt__errf(msg, n, BELT_EIO,
                         "cannot set a timeout on the connection to %s",
                         where);
        redisFree(c);
        return NULL;
    }
    redisReply *r;
    if (u->password[0] != '\0') {
        const char *argv[3] = { "AUTH", u->user, u->password };
        if (u->user[0] != '\0')
            r = handshake_cmd(c, 3, argv);
        else {
            argv[1] = u->password;
            r = handshake_cmd(c, 2, argv);
        }
        if (r == NULL)
            goto io_error;
        if (r->type == REDIS_REPLY_ERROR) {
            const char *e = r->str ? r->str : "";
            if (starts_with(e, "WRONGPASS") || strstr(e, "invalid password") ||
                strstr(e, "invalid username"))
                belt__errf(msg, n, BELT_EIO,
                           "%s: the password%s was rejected (%s)", where,
                           u->password_from_env ? " (from $"
                           BELT__BROKER_PASSWORD_ENV " or $"
                           BELT__BROKER_PASSWORD_ENV2 ")" : "", e);
            else if (strstr(e, "without any password configured") ||
                     strstr(e, "no password is set"))
                belt__errf(msg, n, BELT_EIO,
                           "%s: a password was given but the server "
                           "has none configured (%s)", where, e);
            else
                belt__errf(msg, n, BELT_EIO, "%s: AUTH failed: %s", where, e);
            *rc = starts_with(e, "LOADING") || starts_with(e, "BUSY")
                      ? BELT_EIO : BELT_ECONFIG;
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    {
        const char *argv[1] = { "PING" };
        r = handshake_cmd(c, 1, argv);
        if (r == NULL)
            goto io_error;
        if (r->type == REDIS_REPLY_ERROR) {
            const char *e = r->str ? r->str : "";
            /* NOAUTH will not go away by retrying; LOADING, BUSY and
             * the like will. */
            *rc = BELT_EIO;
            if (starts_with(e, "NOAUTH")) {
                *rc = belt__errf(msg, n, BELT_ECONFIG,
                                 "%s requires a password (NOAUTH): put it in "
                                 "the URL (redis://:PASSWORD@host:port) or in $"
                                 BELT__BROKER_PASSWORD_ENV, where);
            } else {
                belt__errf(msg, n, BELT_EIO, "%s: PING failed: %s", where, e);
            }
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (u->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        const char *argv[2] = { "SELECT", db };
        r = handshake_cmd(c, 2, argv);
        if (r == NULL)
            goto io_error;
        if (r->type == REDIS_REPLY_ERROR) {
            belt__errf(msg, n, BELT_EIO, "%s: SELECT %s failed: %s", where, db,
                       r->str ? r->str : "");
            freeReplyObject(r);
            *rc = BELT_ECONFIG;
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    *rc = BELT_OK;
    return c;

io_error:
    *rc = belt__errf(msg, n, BELT_EIO, "%s: %s (is it a Redis server?)", where,
                     c->errstr[0] ? c->errstr : "connection closed");
    redisFree(c);
    return NULL;
}

int belt__broker_connect(belt__broker **out, const belt__broker_url *url,
                         int64_t connect_timeout_ns, char *msg, size_t n)
{
    if (out == NULL || url == NULL) {
        return belt__errf(msg, n, BELT_EINVAL, "no broker URL");
    }
    belt__broker *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    b->url = *url;
    b->timeout_ns = connect_timeout_ns > 0 ? connect_timeout_ns
                                           : BELT__BROKER_CONNECT_TIMEOUT_NS;
    b->backoff_ns = BELT__BROKER_BACKOFF_FIRST_NS;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
             (uint64_t)(uintptr_t)b;
    int rc;
    b->c = open_ctx(&b->url, b->timeout_ns, &rc, msg, n);
    b->cur_timeout_ns = -1;
    if (b->c == NULL) {
        free(b);
        return rc;
    }
    *out = b;
    return BELT_OK;
}

void belt__broker_close(belt__broker *b)
{
    if (b == NULL)
        return;
    if (b->c != NULL)
        redisFree(b->c);
    free(b->fmt);
    free(b);
}

bool belt__broker_connected(const belt__broker *b)
{
    return b != NULL && b->c != NULL && !b->broken;
}

int belt__broker_fd(const belt__broker *b)
{
    if (!belt__broker_connected(b))
        return -1;
    return b->c->fd;
}

int belt__broker_reconnect(belt__broker *b, char *msg, size_t n)
{
    if (b == NULL)
        return BELT_EINVAL;
    if (b->c != NULL) {
        redisFree(b->c);
        b->c = NULL;
    }
    b->pending = 0;
    b->broken = true;
    int rc;
    b->c = open_ctx(&b->url, b->timeout_ns, &rc, msg, n);
    b->cur_timeout_ns = -1;
    if (b->c != NULL)
        b->broken = false;
    return rc;
}

int belt__broker_reconnect_backoff(belt__broker *b, int stop_fd, char *msg,
                                   size_t n)
{
    if (b == NULL)
        return BELT_EINVAL;
    int64_t d = BELT__BROKER_BACKOFF_FIRST_NS;
    for (;;) {
        int rc = belt__broker_reconnect(b, msg, n);
        if (rc == BELT_OK || rc == BELT_ECONFIG || rc == BELT_ENOMEM)
            return rc;
        int64_t wait = d / 2 + (int64_t)(belt__splitmix64(&b->rng) %
                                         (uint64_t)(d / 2 + 1));
        struct pollfd p = { .fd = stop_fd, .events = POLLIN };
        int r = poll(&p, stop_fd >= 0 ? 1 : 0, (int)(wait / 1000000));
        if (r > 0)
            return BELT_ECANCELED;
        if (r < 0 && errno != EINTR) {
            return belt__errf(msg, n, BELT_ESYS, "poll: %s", strerror(errno));
        }
        d = d * 2 > BELT__BROKER_BACKOFF_CAP_NS ? BELT__BROKER_BACKOFF_CAP_NS
                                                 : d * 2;
    }
}

int belt__broker_set_timeout(belt__broker *b, int64_t timeout_ns)
{
    if (!belt__broker_connected(b))
        return BELT_EIO;
    if (timeout_ns < 0)
        timeout_ns = 0;
    if (timeout_ns == b->cur_timeout_ns)
        return BELT_OK; /* two setsockopt() calls saved per read */
    struct timeval tv = ns_to_tv(timeout_ns);
    if (redisSetTimeout(b->c, tv) != REDIS_OK) {
        b->broken = true;
        return BELT_EIO;
    }
    b->cur_timeout_ns = timeout_ns;
    return BELT_OK;
}

static void lost(belt__broker *b, char *msg, size_t n)
{
    char where[400];
    belt__broker_url_describe(&b->url, where, sizeof where);
    const char *e = b->c && b->c->errstr[0] ? b->c->errstr
                                            : "connection closed";
    belt__errf(msg, n, BELT_EIO, "connection to %s lost: %s", where, e);
    b->broken = true;
    b->pending = 0;
}

redisReply *belt__broker_command(belt__broker *b, int argc, const char **argv,
                                 const size_t *lens, char *msg, size_t n)
{
    if (b == NULL || argc <= 0 || argv == NULL) {
        belt__errf(msg, n, BELT_EINVAL, "invalid command");
        return NULL;
    }
    if (!belt__broker_connected(b)) {
        belt__errf(msg, n, BELT_EIO, "not connected");
        return NULL;
    }
    if (b->pending != 0) {
        belt__errf(msg, n, BELT_EBUSY, "%zu pipelined replies not read",
                   b->pending);
        return NULL;
    }
    redisReply *r = redisCommandArgv(b->c, argc, argv, lens);
    if (r == NULL)
        lost(b, msg, n);
    return r;
}

/* Writes v in decimal at p; returns the end. */
static char *put_u(char *p, size_t v)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        *p++ = tmp[--k];
    return p;
}

/* The command in RESP ("*<argc>\r\n" and "$<len>\r\n<bytes>\r\n" per
 * argument) in b->fmt: what redisFormatCommandArgv makes, without its
 * sds reallocations and printf-style formatting per argument (a third of
 * the submitter's instructions in callgrind).  Returns the length, or 0
 * when memory runs out. */
static size_t format_resp(belt__broker *b, int argc, const char **argv,
                          const size_t *lens)
{
    size_t need = 16;
    for (int i = 0; i < argc; i++)
        need += (lens ? lens[i] : strlen(argv[i])) + 26;
    if (need > b->fmt_cap) {
        size_t cap = b->fmt_cap ? b->fmt_cap : 4096;
        while (cap < need)
            cap *= 2;
        char *f = realloc(b->fmt, cap);
        if (f == NULL)
            return 0;
        b->fmt = f;
        b->fmt_cap = cap;
    }
    char *p = b->fmt;
    *p++ = '*';
    p = put_u(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        *p++ = '$';
        p = put_u(p, len);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], len);
        p += len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - b->fmt);
}

int belt__broker_append(belt__broker *b, int argc, const char **argv,
                        const size_t *lens)
{
    if (b == NULL || argc <= 0 || argv == NULL)
        return BELT_EINVAL;
    if (!belt__broker_connected(b))
        return BELT_EIO;
    size_t len = format_resp(b, argc, argv, lens);
    if (len == 0)
        return BELT_ENOMEM;
    if (redisAppendFormattedCommand(b->c, b->fmt, len) != REDIS_OK) {
        if (b->c->err == REDIS_ERR_OOM)
            return BELT_ENOMEM;
        b->broken = true;
        return BELT_EIO;
    }
    b->pending++;
    return BELT_OK;
}

int belt__broker_get_reply(belt__broker *b, redisReply **out, char *msg,
                           size_t n)
{
    if (out != NULL)
        *out = NULL;
    if (b == NULL || out == NULL)
        return BELT_EINVAL;
    if (!belt__broker_connected(b)) {
        return belt__errf(msg, n, BELT_EIO, "not connected");
    }
    if (b->pending == 0) {
        return belt__errf(msg, n, BELT_EINVAL, "no reply pending");
    }
    void *r = NULL;
    if (redisGetReply(b->c, &r) != REDIS_OK || r == NULL) {
        lost(b, msg, n);
        return BELT_EIO;
    }
    b->pending--;
    *out = r;
    return BELT_OK;
}

size_t belt__broker_pending(const belt__broker *b)
{
    return b ? b->pending : 0;
}

int belt__broker_drain(belt__broker *b, char *msg, size_t n)
{
    int rc = BELT_OK;
    while (belt__broker_pending(b) > 0) {
        redisReply *r;
        if (belt__broker_get_reply(b, &r, rc == BELT_OK ? msg : NULL,
                                   rc == BELT_OK ? n : 0) != BELT_OK)
            return BELT_EIO;
        if (r->type == REDIS_REPLY_ERROR && rc == BELT_OK) {
            belt__broker_reply_error(r, "Redis", msg, n);
            rc = BELT_EBUSY;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* ---- argv builder ------------------------------------------------------ */

void belt__broker_cmd_init(belt__broker_cmd *c)
{
    memset(c, 0, sizeof *c);
}

void belt__broker_cmd_reset(belt__broker_cmd *c)
{
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
}

void belt__broker_cmd_free(belt__broker_cmd *c)
{
    if (c == NULL)
        return;
    belt__broker_cmd_reset(c);
    free(c->argv);
    free(c->lens);
    memset(c, 0, sizeof *c);
}

int belt__broker_cmd_add(belt__broker_cmd *c, const char *s, size_t len)
{
    if (c->argc == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        char **argv = realloc(c->argv, (size_t)cap * sizeof *argv);
        if (argv == NULL)
            return BELT_ENOMEM;
        c->argv = argv;
        size_t *lens = realloc(c->lens, (size_t)cap * sizeof *lens);
        if (lens == NULL)
            return BELT_ENOMEM;
        c->lens = lens;
        c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return BELT_ENOMEM;
    if (len > 0)
        memcpy(copy, s, len);
    copy[len] = '\0';
    c->argv[c->argc] = copy;
    c->lens[c->argc] = len;
    c->argc++;
    return BELT_OK;
}

int belt__broker_cmd_adds(belt__broker_cmd *c, const char *s)
{
    return belt__broker_cmd_add(c, s ? s : "", s ? strlen(s) : 0);
}

redisReply *belt__broker_cmd_run(belt__broker *b, const belt__broker_cmd *c,
                                 char *msg, size_t n)
{
    return belt__broker_command(b, c->argc, (const char **)c->argv, c->lens,
                                msg, n);
}

int belt__broker_cmd_append(belt__broker *b, const belt__broker_cmd *c)
{
    return belt__broker_append(b, c->argc, (const char **)c->argv, c->lens);
}

/* ---- keys -------------------------------------------------------------- */

int belt__broker_key(char *buf, size_t size, const char *ns,
                     const char *suffix)
{
    if (buf == NULL || size == 0)
        return BELT_EINVAL;
    int len = snprintf(buf, size, "%s:%s", ns ? ns : BELT__BROKER_DEFAULT_NS,
                       suffix ? suffix : "");
    if (len < 0 || (size_t)len >= size) {
        buf[0] = '\0';
        return BELT_EINVAL;
    }
    return BELT_OK;
}

int belt__broker_key_results(char *buf, size_t size, const char *ns,
                             const char *run)
{
    if (buf == NULL || size == 0)
        return BELT_EINVAL;
    int len = snprintf(buf, size, "%s:run:%s:results",
                       ns ? ns : BELT__BROKER_DEFAULT_NS, run ? run : "");
    if (len < 0 || (size_t)len >= size) {
        buf[0] = '\0';
        return BELT_EINVAL;
    }
    return BELT_OK;
}

/* ---- stream entries ---------------------------------------------------- */

const char *belt__broker_entry_get(const belt__broker_entry *e,
                                   const char *name, size_t *len)
{
    if (e == NULL || e->fields == NULL ||
        e->fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    const redisReply *f = e->fields;
    size_t to = e->to < f->elements ? e->to : f->elements;
    for (size_t i = e->from; i + 1 < to; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, name) == 0) {
            if (len != NULL)
                *len = v->len;
            return v->str;
        }
    }
    return NULL;
}

int belt__broker_entries(const redisReply *entries, belt__broker_entry *out,
                         size_t max)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < entries->elements && k < max; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            return -1;
        out[k].id = e->element[0]->str;
        out[k].fields = e->element[1]->type == REDIS_REPLY_ARRAY
                            ? e->element[1] : NULL;
        out[k].from = 0;
        out[k].to = out[k].fields ? out[k].fields->elements : 0;
        k++;
    }
    return (int)k;
}

size_t belt__broker_entry_records(const belt__broker_entry *e,
                                  belt__broker_entry *out, size_t max)
{
    if (e == NULL || max == 0)
        return 0;
    out[0] = *e;
    const redisReply *f = e->fields;
    if (f == NULL || f->type != REDIS_REPLY_ARRAY)
        return 1;
    size_t to = e->to < f->elements ? e->to : f->elements, k = 1;
    /* Record 0 starts at the first field, whatever it is; every later
     * "key" starts the next one. */
    for (size_t i = e->from + 2; i + 1 < to && k < max; i += 2) {
        const redisReply *name = f->element[i];
        if (name->type != REDIS_REPLY_STRING || strcmp(name->str, "key"))
            continue;
        out[k - 1].to = i;
        out[k] = *e;
        out[k].from = i;
        out[k].to = to;
        k++;
    }
    return k;
}

const redisReply *belt__broker_xread_entries(const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    return s->element[1];
}

/* ---- shared stream commands --------------------------------------------- */

int belt__broker_ensure_group(belt__broker *b, const char *ns,
                              const char *start_id, char *msg, size_t n)
{
    char key[512];
    if (belt__broker_key(key, sizeof key, ns, "jobs") != BELT_OK) {
        return belt__errf(msg, n, BELT_EINVAL, "namespace too long");
    }
    const char *argv[6] = { "XGROUP", "CREATE", key, BELT__BROKER_GROUP,
                            start_id ? start_id : "0", "MKSTREAM" };
    redisReply *r = belt__broker_command(b, 6, argv, NULL, msg, n);
    if (r == NULL)
        return BELT_EIO;
    int rc = BELT_OK;
    if (r->type == REDIS_REPLY_ERROR && !starts_with(r->str, "BUSYGROUP")) {
        belt__broker_reply_error(r, "XGROUP CREATE", msg, n);
        rc = BELT_EBUSY;
    }
    freeReplyObject(r);
    return rc;
}

/* Jobs per pipelined round trip: bounds the output buffer. */
#define XADD_CHUNK 512

/* Appends the XADD of one job (signed with mac unless NULL) to b's
 * pipeline.  BELT_OK, BELT_EINVAL (no id), BELT_ENOMEM, BELT_EIO. */
static int append_job(belt__broker *b, const char *key, const char *run,
                      const belt_job *job, const char *md,
                      belt__broker_mac *mac, char *msg, size_t n)
{
    if (job == NULL || job->id == NULL)
        return belt__errf(msg, n, BELT_EINVAL, "a job has no id");
    char *json = belt__broker_job_to_json(job);
    if (json == NULL)
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    const char *argv[13] = { "XADD", key, "*", "run", run, "key", job->id,
                             "job", json, "max_deliveries", md };
    int argc = 11;
    char sig[BELT__BROKER_SIG_LEN + 1];
    if (mac != NULL) {
        belt__broker_sign_fields(mac, BELT__BROKER_TAG_JOB, NULL, 8, argv + 3,
                                 NULL, sig);
        argv[argc++] = "sig";
        argv[argc++] = sig;
    }
    int rc = belt__broker_append(b, argc, argv, NULL);
    free(json);
    if (rc != BELT_OK)
        belt__errf(msg, n, rc, rc == BELT_ENOMEM ? "out of memory"
                                                 : "connection lost");
    return rc;
}

/* Checks the arguments both publishers share and fills key (512 bytes: the
 * job stream's name) and md (16: max_deliveries as text). */
static int jobs_args(const belt__broker *b, const char *run,
                     const belt_job *const *jobs, size_t count,
                     const char *ns, unsigned max_deliveries, char *key,
                     char *md, char *msg, size_t n)
{
    if (b == NULL || run == NULL || (jobs == NULL && count > 0)) {
        return belt__errf(msg, n, BELT_EINVAL, "invalid arguments");
    }
    if (belt__broker_key(key, 512, ns, "jobs") != BELT_OK) {
        return belt__errf(msg, n, BELT_EINVAL, "namespace too long");
    }
    snprintf(md, 16, "%u", max_deliveries ? max_deliveries
                           : BELT__BROKER_DEFAULT_MAX_DELIVERIES);
    return BELT_OK;
}

int belt__broker_xadd_jobs(belt__broker *b, const char *ns, const char *run,
                           const belt_job *const *jobs, size_t count,
                           unsigned max_deliveries, belt__broker_mac *mac,
                           belt__broker_id *ids, char *msg, size_t n)
{
    char key[512], md[16];
    int rc = jobs_args(b, run, jobs, count, ns, max_deliveries, key, md, msg,
                       n);
    if (rc != BELT_OK)
        return rc;
    for (size_t base = 0; base < count && rc == BELT_OK;
         base += XADD_CHUNK) {
        size_t end = count - base > XADD_CHUNK ? base + XADD_CHUNK : count;
        for (size_t i = base; i < end && rc == BELT_OK; i++)
            rc = append_job(b, key, run, jobs[i], md, mac, msg, n);
        /* Read every reply owed, even after an error, so the connection
         * stays usable. */
        size_t i = base;
        while (belt__broker_pending(b) > 0) {
            redisReply *r;
            if (belt__broker_get_reply(b, &r, msg, n) != BELT_OK)
                return BELT_EIO;
            if (r->type == REDIS_REPLY_ERROR) {
                if (rc == BELT_OK) {
                    belt__broker_reply_error(r, "XADD", msg, n);
                    rc = BELT_EBUSY;
                }
            } else if (ids != NULL && r->type == REDIS_REPLY_STRING) {
                snprintf(ids[i].s, sizeof ids[i].s, "%s", r->str);
            }
            freeReplyObject(r);
            i++;
        }
    }
    return rc;
}

int belt__broker_xadd_jobs_once(belt__broker *b, const char *ns,
                                const char *run, const belt_job *const *jobs,
                                size_t count, unsigned max_deliveries,
                                belt__broker_mac *mac, const char *mark_key,
                                const char *mark, int ttl_s,
                                belt__broker_id *ids, char *msg, size_t n)
{
    if (mark_key == NULL || mark == NULL)
        return belt__errf(msg, n, BELT_EINVAL, "invalid arguments");
    char key[512], md[16], ttl[16];
    int rc = jobs_args(b, run, jobs, count, ns, max_deliveries, key, md, msg,
                       n);
    if (rc != BELT_OK)
        return rc;
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *multi[1] = { "MULTI" }, *exec[1] = { "EXEC" };
    const char *set[5] = { "SET", mark_key, mark, "EX", ttl };
    rc = belt__broker_append(b, 1, multi, NULL);
    for (size_t i = 0; i < count && rc == BELT_OK; i++)
        rc = append_job(b, key, run, jobs[i], md, mac, msg, n);
    if (rc == BELT_OK)
        rc = belt__broker_append(b, 5, set, NULL);
    if (rc == BELT_OK)
        rc = belt__broker_append(b, 1, exec, NULL);
    else if (belt__broker_pending(b) > 0) {
        /* Not sent yet: no EXEC, so nothing of it will ever apply. */
        const char *discard[1] = { "DISCARD" };
        if (belt__broker_append(b, 1, discard, NULL) != BELT_OK)
            return BELT_EIO;
    }
    /* Replies: MULTI's, one QUEUED per command, then EXEC's array (or
     * DISCARD's OK). */
    int xrc = BELT_OK;
    while (belt__broker_pending(b) > 0) {
        redisReply *r;
        if (belt__broker_get_reply(b, &r, msg, n) != BELT_OK)
            return BELT_EIO;
        bool last = belt__broker_pending(b) == 0;
        if (r->type == REDIS_REPLY_ERROR && xrc == BELT_OK) {
            belt__broker_reply_error(r, last ? "EXEC" : "MULTI", msg, n);
            xrc = BELT_EBUSY;
        } else if (last && rc == BELT_OK && r->type == REDIS_REPLY_ARRAY &&
                   ids != NULL) {
            for (size_t i = 0; i < count && i < r->elements; i++)
                if (r->element[i]->type == REDIS_REPLY_STRING)
                    snprintf(ids[i].s, sizeof ids[i].s, "%s",
                             r->element[i]->str);
        } else if (last && rc == BELT_OK && r->type != REDIS_REPLY_ARRAY &&
                   xrc == BELT_OK) {
            belt__broker_reply_error(r, "EXEC", msg, n);
            xrc = BELT_EBUSY; /* nil: aborted */
        }
        freeReplyObject(r);
    }
    return rc != BELT_OK ? rc : xrc;
}

