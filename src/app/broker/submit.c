/* app/broker/submit.c: the submitter of a run through Redis Streams (the Redis
 * side of `belt run --broker`; the CLI loop is src/cli/run_broker.c).  Like
 * the rest of the broker it is compiled into the program, not libbelt.
 *
 * Publishing.  The owner thread hands over batches of ready jobs; each batch
 * is one pipelined round trip of XADD <ns>:jobs (app/broker/broker.h's
 * belt__broker_xadd_jobs), so the cost per job is one command in Redis and
 * a share of one network round trip, not one round trip each.  Before a
 * batch is sent its keys go into the in-flight table, so a result that
 * comes back before the XADD replies are read is still recognised.  When
 * the connection breaks half-way, the replies read so far say which jobs
 * are known to be in the stream; the caller publishes the rest again later.
 * A job whose XADD reached Redis but whose reply was lost is then in the
 * stream twice: it may run twice, and the second result is dropped below.
 *
 * Collecting.  The collector thread reads the run's result stream with
 * XREAD COUNT c BLOCK t from its own cursor (the id of the last entry it
 * read; no consumer group: there is exactly one reader), and deletes what
 * it read with XDEL, pipelined in front of the next XREAD (one round trip
 * per batch).  After a reconnect it reads again from the cursor: an entry
 * read but not yet deleted is read twice, and deduplicated.  With Redis
 * persisting every write (AOF, appendfsync always) a restart loses nothing:
 * every result a worker published is in the stream until we delete it.
 *
 * Deduplication ("first terminal result wins").  The in-flight table maps
 * each job key (its id, unique within a run) to the caller's job pointer
 * and the job's stream id.  collect() hands out a result only if it finds
 * the key, and removes it in the same critical section; a later result for
 * the same key (redelivery after a visibility timeout whose first worker
 * was alive after all, a job published twice) finds nothing and is
 * counted as a duplicate.
 *
 * Dead letters.  A worker that gives up on a job (more deliveries than
 * max_deliveries) XADDs it to <ns>:dead and mirrors it to the run's result
 * stream, normally as an ordinary result record with status "error".  An
 * entry with only `key`, `reason` and `deliveries` is accepted too and
 * turned into the same ERROR result here.
 *
 * Stopping.  wake() sets an atomic flag, writes a byte to the stop pipe
 * (ending a reconnect backoff, which waits in poll() on it) and XADDs an
 * entry with a single `stop` field to the result stream, which ends a
 * blocked XREAD at once; should that XADD fail, the XREAD ends by its block
 * timeout.
 *
 * Threads and locks: `own` is used only by the owner thread, `col` and the
 * cursor/pending-XDEL state only by the collector.  `mu` guards the in-flight
 * table (both threads).  `stopping` and `duplicates` are atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "belt/error.h"
#include "app/broker/submit.h"
#include "util/hash.h"
#include "util/err.h"

#define BLOCK_MS 2000          /* XREAD BLOCK: at most this long per call */
#define DEL_MAX 1024           /* ids deleted per XDEL */
#define PROGRESS_EVERY_NS 1000000000LL
#define CANCELED_TTL_S "600"

/* ---- the in-flight table -------------------------------------------------
 * Open addressing, linear probing, tombstones; grown (and cleaned of
 * tombstones) at 50% occupancy.  Keys are owned copies. */

struct slot {
    char *key;               /* NULL: empty; TOMB: deleted */
    uint64_t h;
    const belt_job *orig;
    belt__broker_id id;      /* stream id in <ns>:jobs, "" if unknown */
};

static char tomb_mark;
#define TOMB (&tomb_mark)

struct table {
    struct slot *s;
    size_t cap, used, live; /* used counts tombstones too */
};

static int table_grow(struct table *t)
{
    /* Sized for what is live (tombstones are dropped): at most a quarter
     * full afterwards, so the table stays bounded by the jobs in flight. */
    size_t ncap = 1024;
    while (ncap < (t->live + 1) * 4)
        ncap *= 2;
    struct slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return BELT_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        struct slot *o = &t->s[i];
        if (o->key == NULL || o->key == TOMB)
            continue;
        size_t j = o->h & (ncap - 1);
        while (ns[j].key != NULL)
            j = (j + 1) & (ncap - 1);
        ns[j] = *o;
    }
    free(t->s);
    t->s = ns;
    t->cap = ncap;
    t->used = t->live;
    return BELT_OK;
}

/* The slot holding key, or NULL. */
static struct slot *table_find(struct table *t, const char *key, uint64_t h)
{
    if (t->cap == 0)
        return NULL;
    for (size_t j = h & (t->cap - 1);; j = (j + 1) & (t->cap - 1)) {
        struct slot *x = &t->s[j];
        if (x->key == NULL)
            return NULL;
        if (x->key != TOMB && x->h == h && strcmp(x->key, key) == 0)
            return x;
    }
}

/* Inserts or updates key -> orig. */
static int table_put(struct table *t, const char *key, const belt_job *orig)
{
    uint64_t h = belt__hash(key, strlen(key));
    struct slot *x = table_find(t, key, h);
    if (x) {
        x->orig = orig;
        return BELT_OK;
    }
    if ((t->used + 1) * 2 > t->cap && table_grow(t) != BELT_OK)
        return BELT_ENOMEM;
    char *k = strdup(key);
    if (k == NULL)
        return BELT_ENOMEM;
    size_t j = h & (t->cap - 1);
    while (t->s[j].key != NULL && t->s[j].key != TOMB)
        j = (j + 1) & (t->cap - 1);
    if (t->s[j].key == NULL)
        t->used++;
    t->s[j] = (struct slot){.key = k, .h = h, .orig = orig};
    t->live++;
    return BELT_OK;
}

static void table_remove(struct table *t, struct slot *x)
{
    free(x->key);
    x->key = TOMB;
    x->orig = NULL;
    t->live--;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->s[i].key != TOMB)
            free(t->s[i].key);
    free(t->s);
    memset(t, 0, sizeof *t);
}

/* ---- the submitter ------------------------------------------------------ */

struct belt__submit {
    belt__broker_url url;
    char ns[128];
    char run[320];
    char host[256];
    char k_jobs[400], k_results[600], k_runs[400];
    unsigned max_deliveries;
    uint64_t total;
    int64_t started_s;

    belt__broker *own;          /* owner thread */
    int64_t last_progress_ns;   /* owner thread */

    belt__broker *col;          /* collector thread */
    char cursor[48];            /* collector: last id read */
    belt__broker_cmd del;       /* collector: XDEL of entries read */
    int stop_pipe[2];

    pthread_mutex_t mu;         /* guards `inflight` */
    struct table inflight;

    atomic_bool stopping;
    atomic_uint_least64_t duplicates;
};

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

/* HSET <ns>:runs <run> {...}.  Owner thread. */
static int write_run(belt__submit *s, const char *state, uint64_t done,
                     uint64_t failed, bool finished, char *msg, size_t n)
{
    json_t *o = json_object();
    if (o == NULL)
        return BELT_ENOMEM;
    json_object_set_new(o, "started", json_integer(s->started_s));
    json_object_set_new(o, "jobs", json_integer((json_int_t)s->total));
    json_object_set_new(o, "done", json_integer((json_int_t)done));
    json_object_set_new(o, "failed", json_integer((json_int_t)failed));
    json_object_set_new(o, "host", json_string(s->host));
    json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
    json_object_set_new(o, "state", json_string(state));
    if (finished)
        json_object_set_new(o, "finished", json_integer(unix_now()));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return BELT_ENOMEM;
    const char *argv[] = {"HSET", s->k_runs, s->run, text};
    redisReply *r = belt__broker_command(s->own, 4, argv, NULL, msg, n);
    free(text);
    if (r == NULL)
        return BELT_EIO;
    int rc = BELT_OK;
    if (r->type == REDIS_REPLY_ERROR) {
        belt__broker_reply_error(r, "HSET", msg, n);
        rc = BELT_EBUSY;
    }
    freeReplyObject(r);
    return rc;
}

int belt__submit_open(belt__submit **out, const belt__submit_options *o,
                      char *msg, size_t n)
{
    if (o == NULL || o->url == NULL) {
        return belt__errf(msg, n, BELT_EINVAL, "no broker URL");
    }
    belt__submit *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    s->url = *o->url;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    snprintf(s->ns, sizeof s->ns, "%s", o->ns ? o->ns : BELT__BROKER_DEFAULT_NS);
    s->max_deliveries = o->max_deliveries ? o->max_deliveries
                                          : BELT__BROKER_DEFAULT_MAX_DELIVERIES;
    s->total = o->total;
    s->started_s = unix_now();
    if (gethostname(s->host, sizeof s->host - 1) != 0)
        snprintf(s->host, sizeof s->host, "localhost");
    snprintf(s->run, sizeof s->run, "%lld-%s-%ld", (long long)s->started_s,
             s->host, (long)getpid());
    snprintf(s->cursor, sizeof s->cursor, "0-0");
    belt__broker_cmd_init(&s->del);
    atomic_init(&s->stopping, false);
    atomic_init(&s->duplicates, 0);
    pthread_mutex_init(&s->mu, NULL);

    int rc;
    if ((o->ns && strlen(o->ns) >= sizeof s->ns) ||
        belt__broker_key(s->k_jobs, sizeof s->k_jobs, s->ns, "jobs") ||
        belt__broker_key(s->k_runs, sizeof s->k_runs, s->ns, "runs") ||
        belt__broker_key_results(s->k_results, sizeof s->k_results, s->ns,
                                 s->run)) {
        rc = belt__errf(msg, n, BELT_EINVAL, "namespace too long");
        goto fail;
    }
    if (pipe(s->stop_pipe) != 0) {
        rc = belt__errf(msg, n, BELT_ESYS,
                        "cannot make a pipe: %s", strerror(errno));
        goto fail;
    }
    (void)fcntl(s->stop_pipe[0], F_SETFD, FD_CLOEXEC);
    (void)fcntl(s->stop_pipe[1], F_SETFD, FD_CLOEXEC);
    rc = belt__broker_connect(&s->own, &s->url, o->connect_timeout_ns, msg, n);
    if (rc != BELT_OK)
        goto fail;
    rc = belt__broker_connect(&s->col, &s->url, o->connect_timeout_ns, msg, n);
    if (rc != BELT_OK)
        goto fail;
    rc = belt__broker_ensure_group(s->own, s->ns, "0", msg, n);
    if (rc != BELT_OK)
        goto fail;
    rc = write_run(s, "running", 0, 0, false, msg, n);
    if (rc != BELT_OK)
        goto fail;
    /* Create the result stream now (one `open` entry, skipped by collect),
     * so that workers can XADD with NOMKSTREAM: a late result after the
     * stream was deleted at the end then re-creates nothing. */
    const char *mk[] = {"XADD", s->k_results, "*", "open", "1"};
    redisReply *r = belt__broker_command(s->own, 5, mk, NULL, msg, n);
    if (r == NULL) {
        rc = BELT_EIO;
        goto fail;
    }
    freeReplyObject(r);
    *out = s;
    return BELT_OK;
fail:
    belt__submit_close(s);
    return rc;
}

const char *belt__submit_run_id(const belt__submit *s)
{
    return s->run;
}

/* ---- publishing --------------------------------------------------------- */

int belt__submit_publish(belt__submit *s, const belt_job *const *jobs,
                         const belt_job *const *orig, size_t count,
                         size_t *published, char *msg, size_t n)
{
    *published = 0;
    if (count == 0)
        return BELT_OK;
    for (size_t i = 0; i < count; i++)
        if (jobs[i]->id == NULL || jobs[i]->id[0] == '\0') {
            return belt__errf(msg, n, BELT_EINVAL,
                              "a job without an id cannot be published");
        }
    belt__broker_id *ids = calloc(count, sizeof *ids);
    if (ids == NULL) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    int rc = BELT_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < count && rc == BELT_OK; i++)
        rc = table_put(&s->inflight, jobs[i]->id, orig[i]);
    pthread_mutex_unlock(&s->mu);
    if (rc != BELT_OK) {
        snprintf(msg, n, "out of memory");
        free(ids);
        return rc;
    }
    if (!belt__broker_connected(s->own)) {
        rc = belt__broker_reconnect(s->own, msg, n);
        if (rc != BELT_OK) {
            free(ids);
            return rc;
        }
    }
    rc = belt__broker_xadd_jobs(s->own, s->ns, s->run, jobs, count,
                                s->max_deliveries, ids, msg, n);
    size_t k = 0;
    while (k < count && ids[k].s[0] != '\0')
        k++;
    if (rc == BELT_OK)
        k = count;
    /* Remember the stream ids (for XDEL on cancel). */
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < k; i++) {
        struct slot *x = table_find(&s->inflight, jobs[i]->id,
                                    belt__hash(jobs[i]->id,
                                               strlen(jobs[i]->id)));
        if (x)
            x->id = ids[i];
    }
    pthread_mutex_unlock(&s->mu);
    free(ids);
    *published = k;
    return rc;
}

/* ---- collecting: decoding a result record ------------------------------- */

static belt_job_status status_of(const char *name)
{
    for (int st = BELT_JOB_OK; st <= BELT_JOB_CANCELED; st++)
        if (name && strcmp(name, belt_job_status_name((belt_job_status)st)) == 0)
            return (belt_job_status)st;
    return BELT_JOB_ERROR;
}

/* "2025-01-31T12:00:00.123Z" -> ns since the epoch; 0 if not that shape. */
static int64_t parse_time(const json_t *v)
{
    const char *t = json_string_value(v);
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof tm);
    if (t == NULL || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                            &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t secs = timegm(&tm);
    return (int64_t)secs * 1000000000 + (int64_t)ms * 1000000;
}

static int64_t ms_to_ns(const json_t *v)
{
    return json_is_number(v) ? (int64_t)(json_number_value(v) * 1e6) : 0;
}

/* A copy of a JSON string value (with its length), or NULL. */
static char *copy_string(const json_t *v, size_t *len)
{
    if (!json_is_string(v))
        return NULL;
    size_t l = json_string_length(v);
    char *p = malloc(l + 1);
    if (p) {
        memcpy(p, json_string_value(v), l);
        p[l] = '\0';
        if (len)
            *len = l;
    }
    return p;
}

/* Fills r from a result record.  Returns false if text is not a JSON
 * object (r is then left as belt_result_new() made it). */
static bool decode_result(belt_result *r, const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return false;
    }
    r->status = status_of(json_string_value(json_object_get(o, "status")));
    json_t *v = json_object_get(o, "exit_code");
    r->exit_code = json_is_integer(v) ? (int)json_integer_value(v) : -1;
    v = json_object_get(o, "signal");
    r->signal = json_is_integer(v) ? (int)json_integer_value(v) : 0;
    v = json_object_get(o, "attempts");
    r->attempts = json_is_integer(v) ? (unsigned)json_integer_value(v) : 0;
    r->queued_ns = parse_time(json_object_get(o, "queued"));
    r->started_ns = parse_time(json_object_get(o, "started"));
    r->ended_ns = parse_time(json_object_get(o, "ended"));
    r->duration_ns = ms_to_ns(json_object_get(o, "duration_ms"));
    r->error = copy_string(json_object_get(o, "error"), NULL);
    r->out = copy_string(json_object_get(o, "stdout"), &r->out_len);
    r->err = copy_string(json_object_get(o, "stderr"), &r->err_len);
    json_decref(o);
    return true;
}

/* Makes the item for one entry of the result stream whose key was in
 * flight (orig).  NULL when memory runs out. */
static belt__submit_item *make_item(const belt__broker_entry *e,
                                    const belt_job *orig)
{
    belt__submit_item *it = calloc(1, sizeof *it);
    belt_result *r = it ? belt_result_new(orig) : NULL;
    if (r == NULL) {
        free(it);
        return NULL;
    }
    it->job = orig;
    it->r = r;
    r->job = orig;
    size_t len = 0, mlen = 0;
    const char *rec = belt__broker_entry_get(e, "result", &len);
    const char *meta = belt__broker_entry_get(e, "meta", &mlen);
    bool text = true;
    if (rec && ((meta && belt__broker_meta_parse(meta, mlen, r, &text) ==
                             BELT_OK && !text) ||
                decode_result(r, rec, len))) {
        it->line = malloc(len + 2);
        if (it->line == NULL) {
            belt__submit_item_free(it, true);
            return NULL;
        }
        memcpy(it->line, rec, len);
        it->line[len] = '\n';
        it->line[len + 1] = '\0';
        it->len = len + 1;
        return it;
    }
    /* A bare dead letter, or a record we cannot read: an ERROR result that
     * the caller serialises itself. */
    char buf[600];
    const char *reason = belt__broker_entry_get(e, "reason", NULL);
    const char *deliveries = belt__broker_entry_get(e, "deliveries", NULL);
    if (rec)
        snprintf(buf, sizeof buf, "unreadable result record from a worker");
    else if (reason)
        snprintf(buf, sizeof buf, "dead-lettered after %s deliveries: %s",
                 deliveries ? deliveries : "?", reason);
    else
        snprintf(buf, sizeof buf, "result entry without a record");
    r->status = BELT_JOB_ERROR;
    r->error = strdup(buf);
    return it;
}

void belt__submit_item_free(belt__submit_item *it, bool with_result)
{
    if (it == NULL)
        return;
    if (with_result)
        belt_result_free(it->r);
    free(it->line);
    free(it);
}

/* ---- collecting --------------------------------------------------------- */

/* Starts a fresh XDEL command for the result stream. */
static int del_start(belt__submit *s)
{
    belt__broker_cmd_reset(&s->del);
    if (belt__broker_cmd_adds(&s->del, "XDEL") != BELT_OK ||
        belt__broker_cmd_adds(&s->del, s->k_results) != BELT_OK)
        return BELT_ENOMEM;
    return BELT_OK;
}

/* One round trip: the pending XDEL (if any) and XREAD.  Returns the XREAD
 * reply or NULL (connection broken; msg). */
static redisReply *read_batch(belt__submit *s, size_t max, char *msg,
                              size_t n)
{
    char count[24], block[24];
    snprintf(count, sizeof count, "%zu", max);
    snprintf(block, sizeof block, "%d", BLOCK_MS);
    const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block,
                          "STREAMS", s->k_results, s->cursor};
    bool with_del = s->del.argc > 2;
    if (belt__broker_set_timeout(s->col, (int64_t)(BLOCK_MS + 10000) *
                                             1000000) != BELT_OK) {
        snprintf(msg, n, "connection lost");
        return NULL;
    }
    if ((with_del && belt__broker_cmd_append(s->col, &s->del) != BELT_OK) ||
        belt__broker_append(s->col, 8, argv, NULL) != BELT_OK) {
        belt__broker_drain(s->col, msg, n);
        return NULL;
    }
    redisReply *r = NULL;
    if (with_del) {
        if (belt__broker_get_reply(s->col, &r, msg, n) != BELT_OK) {
            belt__broker_drain(s->col, msg, n);
            return NULL;
        }
        /* An error reply (say, the stream was deleted) is harmless. */
        freeReplyObject(r);
        (void)del_start(s);
    }
    r = NULL;
    if (belt__broker_get_reply(s->col, &r, msg, n) != BELT_OK)
        return NULL;
    return r;
}

/* Turns one record of a result entry into an item in out[*got] (the caller
 * makes room for BELT__BROKER_RECORDS_MAX per entry).  A record for a job
 * no longer in flight is a duplicate (counted); one without a key, our own
 * stop entry or junk, is skipped.  BELT_OK or BELT_ENOMEM. */
static int take_record(belt__submit *s, const belt__broker_entry *e,
                       belt__submit_item **out, size_t *got)
{
    const char *key = belt__broker_entry_get(e, "key", NULL);
    if (key == NULL)
        return BELT_OK;
    uint64_t h = belt__hash(key, strlen(key));
    pthread_mutex_lock(&s->mu);
    struct slot *x = table_find(&s->inflight, key, h);
    const belt_job *orig = x ? x->orig : NULL;
    if (x)
        table_remove(&s->inflight, x);
    pthread_mutex_unlock(&s->mu);
    if (orig == NULL) {
        atomic_fetch_add(&s->duplicates, 1);
        return BELT_OK;
    }
    belt__submit_item *it = make_item(e, orig);
    if (it == NULL) {
        /* Put the key back so a redelivery is not lost as a duplicate. */
        pthread_mutex_lock(&s->mu);
        (void)table_put(&s->inflight, key, orig);
        pthread_mutex_unlock(&s->mu);
        return BELT_ENOMEM;
    }
    out[(*got)++] = it;
    return BELT_OK;
}

int belt__submit_collect(belt__submit *s, belt__submit_item **out,
                         size_t max, size_t *got, char *msg, size_t n)
{
    *got = 0;
    if (max < BELT__BROKER_RECORDS_MAX) {
        return belt__errf(msg, n, BELT_EINVAL,
                          "collect: room for fewer results than an entry "
                          "holds");
    }
    if (s->del.argc == 0 && del_start(s) != BELT_OK) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    for (;;) {
        if (atomic_load(&s->stopping))
            return BELT_ECANCELED;
        if (!belt__broker_connected(s->col)) {
            int rc = belt__broker_reconnect_backoff(s->col, s->stop_pipe[0],
                                                    msg, n);
            if (rc != BELT_OK)
                return rc;
        }
        /* An entry holds up to BELT__BROKER_RECORDS_MAX records. */
        size_t entries = max / BELT__BROKER_RECORDS_MAX;
        redisReply *r = read_batch(s, entries ? entries : 1, msg, n);
        if (r == NULL)
            continue; /* broken: reconnect and read again from the cursor */
        if (r->type == REDIS_REPLY_ERROR) {
            char m[300];
            belt__broker_reply_error(r, "XREAD", m, sizeof m);
            freeReplyObject(r);
            return belt__errf(msg, n, BELT_EBUSY, "%s", m);
        }
        const redisReply *arr = belt__broker_xread_entries(r);
        size_t ne = arr ? arr->elements : 0;
        belt__broker_entry *es = ne ? calloc(ne, sizeof *es) : NULL;
        int k = es ? belt__broker_entries(arr, es, ne) : 0;
        int rc = BELT_OK;
        belt__broker_entry recs[BELT__BROKER_RECORDS_MAX];
        for (int i = 0; i < k && rc == BELT_OK; i++) {
            const belt__broker_entry *en = &es[i];
            snprintf(s->cursor, sizeof s->cursor, "%s", en->id);
            if (belt__broker_cmd_adds(&s->del, en->id) != BELT_OK) {
                rc = BELT_ENOMEM;
                break;
            }
            size_t nrec = belt__broker_entry_records(
                en, recs, BELT__BROKER_RECORDS_MAX);
            for (size_t j = 0; j < nrec && rc == BELT_OK; j++)
                rc = take_record(s, &recs[j], out, got);
        }
        free(es);
        freeReplyObject(r);
        if (rc != BELT_OK) {
            return belt__errf(msg, n, rc, "out of memory");
        }
        if (*got > 0 || k > 0)
            return BELT_OK;
        /* Timed out empty (or only our stop entry): look at the flag. */
    }
}

/* ---- the owner's other calls ------------------------------------------ */

void belt__submit_wake(belt__submit *s)
{
    atomic_store(&s->stopping, true);
    if (s->stop_pipe[1] >= 0) {
        char b = 1;
        ssize_t w = write(s->stop_pipe[1], &b, 1);
        (void)w;
    }
    if (s->own && belt__broker_connected(s->own)) {
        const char *argv[] = {"XADD", s->k_results, "*", "stop", "1"};
        char m[200];
        redisReply *r = belt__broker_command(s->own, 5, argv, NULL, m,
                                             sizeof m);
        if (r)
            freeReplyObject(r);
    }
}

void belt__submit_progress(belt__submit *s, uint64_t done, uint64_t failed,
                           int64_t now_ns)
{
    if (now_ns - s->last_progress_ns < PROGRESS_EVERY_NS ||
        !belt__broker_connected(s->own))
        return;
    s->last_progress_ns = now_ns;
    char m[200];
    (void)write_run(s, "running", done, failed, false, m, sizeof m);
}

size_t belt__submit_cancel(belt__submit *s,
                           void (*fn)(void *ctx, const belt_job *orig),
                           void *ctx)
{
    belt__broker_cmd c;
    belt__broker_cmd_init(&c);
    size_t count = 0;
    char m[200];
    bool ok = belt__broker_connected(s->own) ||
              belt__broker_reconnect(s->own, m, sizeof m) == BELT_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->inflight.cap; i++) {
        struct slot *x = &s->inflight.s[i];
        if (x->key == NULL || x->key == TOMB)
            continue;
        if (ok && x->id.s[0]) {
            if (c.argc == 0) {
                (void)belt__broker_cmd_adds(&c, "XDEL");
                (void)belt__broker_cmd_adds(&c, s->k_jobs);
            }
            (void)belt__broker_cmd_adds(&c, x->id.s);
            if (c.argc >= 2 + DEL_MAX) {
                redisReply *r = belt__broker_cmd_run(s->own, &c, m, sizeof m);
                ok = r != NULL;
                if (r)
                    freeReplyObject(r);
                belt__broker_cmd_reset(&c);
            }
        }
        fn(ctx, x->orig);
        table_remove(&s->inflight, x);
        count++;
    }
    pthread_mutex_unlock(&s->mu);
    if (ok && c.argc > 2) {
        redisReply *r = belt__broker_cmd_run(s->own, &c, m, sizeof m);
        if (r)
            freeReplyObject(r);
    }
    belt__broker_cmd_free(&c);
    return count;
}

int belt__submit_finish(belt__submit *s, const char *state, uint64_t done,
                        uint64_t failed, char *msg, size_t n)
{
    if (!belt__broker_connected(s->own)) {
        int rc = belt__broker_reconnect(s->own, msg, n);
        if (rc != BELT_OK)
            return rc;
    }
    int rc = write_run(s, state, done, failed, true, msg, n);
    if (rc != BELT_OK)
        return rc;
    bool canceled = strcmp(state, "done") != 0;
    const char *del[] = {"DEL", s->k_results};
    const char *exp[] = {"EXPIRE", s->k_results, CANCELED_TTL_S};
    redisReply *r = canceled
                        ? belt__broker_command(s->own, 3, exp, NULL, msg, n)
                        : belt__broker_command(s->own, 2, del, NULL, msg, n);
    if (r == NULL)
        return BELT_EIO;
    if (r->type == REDIS_REPLY_ERROR) {
        belt__broker_reply_error(r, del[0], msg, n);
        rc = BELT_EBUSY;
    }
    freeReplyObject(r);
    return rc;
}

uint64_t belt__submit_duplicates(const belt__submit *s)
{
    return atomic_load(&s->duplicates);
}

void belt__submit_close(belt__submit *s)
{
    if (s == NULL)
        return;
    belt__broker_close(s->own);
    belt__broker_close(s->col);
    belt__broker_cmd_free(&s->del);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    table_free(&s->inflight);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
