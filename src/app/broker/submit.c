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
 * read; no consumer group: there is exactly one reader).  It trims the
 * stream (XTRIM MINID, pipelined in front of the next XREAD: one round trip
 * per batch) only up to the last entry whose results the owner says are
 * written to the results file (belt__submit_written), so a result leaves
 * Redis only once it is on disk: a submitter killed at any moment loses
 * nothing, and `--resume` reads what it had not written yet.  After a
 * reconnect it reads again from the cursor: an entry read twice is
 * deduplicated.  With Redis persisting every write (AOF, appendfsync
 * always) a restart loses nothing either.
 *
 * Signatures (app/broker/sign.c).  With keys, every job published is
 * signed, and a result entry (workers sign each, all its records) is taken
 * only if a key of ours verifies it, bound to this run id; one that does
 * not is refused and counted, and its jobs end as errors that say so
 * (waiting for a result that may never come would hang the run: a worker
 * with another key).
 * A worker that refused a job (its signature did not verify there) says so
 * in an unsigned note (fields refused, reason, worker): the job then ends
 * as an error with that reason rather than waiting forever.  A forged note
 * can only fail a job, which someone who can write to Redis could do anyway
 * by deleting it.
 *
 * Clean-up.  The result stream is made at open with an expiry of
 * BELT__SUBMIT_RESULTS_TTL_S, renewed with every progress record (once a
 * second), and deleted by finish(), also for a canceled run.  A run whose
 * submitter crashed keeps it until it expires; workers skip the jobs of a
 * run whose stream is gone.
 *
 * Resume (o->resume).  A run whose submitter was killed still has jobs in
 * <ns>:jobs, results in its stream that were never written, and results
 * written but not yet trimmed.  open() finds that run in <ns>:runs (same
 * host and results file, submitter process gone, stream still there),
 * takes over its id, and once scans <ns>:jobs for its entries and its
 * stream for result keys: those jobs are "expected" (in the table with no
 * orig).  publish() does not send an expected job again; a result that
 * comes for an expected job before the scheduler hands that job over is
 * kept in its slot ("early") and made ready when it is handed over
 * (take_ready()).  Trimming waits while early results are kept.  So no job
 * is published twice across a crash, which is what lets a result's
 * delivery number bound how often the job ran.
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
 * Threads and locks: `own` and `mac_own` are used only by the owner thread,
 * `col`, `mac_col`, the cursor and the trim state only by the collector.
 * `mu` guards the in-flight table, the ready list, the written/handed entry
 * ids and the refusal reason (both threads).  `stopping`, `duplicates` and
 * `refused` are atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
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
#define SCAN_COUNT "1000"      /* entries per XRANGE of a resume scan */

/* ---- the in-flight table -------------------------------------------------
 * Open addressing, linear probing, tombstones; grown (and cleaned of
 * tombstones) at 50% occupancy.  Keys are owned copies. */

/* A result that came for an expected job before it was handed over:
 * copies of what make_item() needs. */
struct early {
    char *rec, *meta, *error;
    size_t len, mlen;
    belt__broker_id entry;
};

struct slot {
    char *key;               /* NULL: empty; TOMB: deleted */
    uint64_t h;
    const belt_job *orig;    /* NULL: expected (an adopted run's job, not
                              * handed over yet) */
    belt__broker_id id;      /* stream id in <ns>:jobs, "" if unknown */
    struct early *early;     /* expected, and its result came */
    uint64_t batch;          /* the publish transaction that sent it, while
                              * its outcome is unknown (see publish) */
};

static void early_free(struct early *e)
{
    if (e == NULL)
        return;
    free(e->rec);
    free(e->meta);
    free(e->error);
    free(e);
}

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
    early_free(x->early);
    x->early = NULL;
    x->key = TOMB;
    x->orig = NULL;
    t->live--;
}

static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->cap; i++)
        if (t->s[i].key != TOMB) {
            free(t->s[i].key);
            early_free(t->s[i].early);
        }
    free(t->s);
    memset(t, 0, sizeof *t);
}

/* ---- the submitter ------------------------------------------------------ */

struct belt__submit {
    belt__broker_url url;
    char ns[128];
    char run[320];
    char host[256];
    char k_jobs[400], k_results[600], k_runs[400], k_workers[400];
    char k_pub[620];            /* <ns>:run:<run>:pub, the publish mark */
    char *results_path, *config_path;
    unsigned max_deliveries;
    uint64_t total;
    int64_t started_s;
    bool adopted;               /* continues a crashed run */
    uint64_t adopted_pending;   /* its jobs found out at open */

    belt__broker *own;          /* owner thread */
    belt__broker_mac *mac_own;  /* owner thread: signs jobs (NULL: none) */
    int64_t last_progress_ns;   /* owner thread */
    uint64_t batch_seq;         /* owner: publish transactions so far */
    uint64_t unconfirmed;       /* owner: the one whose reply was lost */

    belt__broker *col;          /* collector thread */
    belt__broker_mac *mac_col;  /* collector: verifies results */
    char cursor[48];            /* collector: last id read */
    char trimmed[48];           /* collector: last trim point sent */
    int stop_pipe[2];

    pthread_mutex_t mu;         /* guards the rest of this block */
    struct table inflight;
    size_t early_count;         /* slots holding an early result */
    belt__submit_item **ready;  /* made ready by publish() */
    size_t nready, ready_cap;
    belt__broker_id handed;     /* entry of the last entry_last item made */
    belt__broker_id written;    /* the owner's belt__submit_written() */
    char refused_why[300];      /* the first refusal */

    atomic_bool stopping;
    atomic_uint_least64_t duplicates;
    atomic_uint_least64_t refused;
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
    json_object_set_new(o, "seen", json_integer(unix_now()));
    if (s->results_path)
        json_object_set_new(o, "results", json_string(s->results_path));
    if (s->config_path)
        json_object_set_new(o, "config", json_string(s->config_path));
    if (finished)
        json_object_set_new(o, "finished", json_integer(unix_now()));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (text == NULL)
        return BELT_ENOMEM;
    const char *argv[] = {"HSET", s->k_runs, s->run, text};
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", BELT__SUBMIT_RESULTS_TTL_S);
    const char *exp[] = {"EXPIRE", s->k_results, ttl};
    int rc = belt__broker_append(s->own, 4, argv, NULL);
    free(text);
    /* A running run's stream lives on while its submitter does. */
    if (rc == BELT_OK && !finished)
        rc = belt__broker_append(s->own, 3, exp, NULL);
    if (rc == BELT_OK)
        rc = belt__broker_drain(s->own, msg, n);
    else
        (void)belt__broker_drain(s->own, NULL, 0);
    return rc;
}

/* ---- resume: the crashed run to continue --------------------------------- */

/* Whether the process pid of this host may still be a submitter. */
static bool pid_alive(long pid)
{
    if (pid <= 0 || pid == (long)getpid())
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Looks in <ns>:runs for the run to continue (see belt__submit_open()):
 * copies its id into s->run and returns 1, 0 when there is none, or a
 * negative code with msg. */
static int find_run(belt__submit *s, char *msg, size_t n)
{
    const char *argv[] = {"HGETALL", s->k_runs};
    redisReply *r = belt__broker_command(s->own, 2, argv, NULL, msg, n);
    if (r == NULL)
        return BELT_EIO;
    int found = 0;
    long long best = -1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements;
         i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            k->len >= sizeof s->run)
            continue;
        json_t *o = json_loadb(v->str, v->len, 0, NULL);
        const char *state = json_string_value(json_object_get(o, "state"));
        const char *host = json_string_value(json_object_get(o, "host"));
        const char *res = json_string_value(json_object_get(o, "results"));
        json_t *pid = json_object_get(o, "pid");
        long long started = json_integer_value(json_object_get(o, "started"));
        bool match = state && strcmp(state, "running") == 0 && host &&
                     strcmp(host, s->host) == 0 && res &&
                     strcmp(res, s->results_path) == 0;
        if (match && pid_alive((long)json_integer_value(pid))) {
            found = belt__errf(msg, n, BELT_EBUSY, "run %s, with the same "
                               "results file, is still running (pid %lld)",
                               k->str, (long long)json_integer_value(pid));
            json_decref(o);
            break;
        }
        if (match && started > best) {
            best = started;
            snprintf(s->run, sizeof s->run, "%s", k->str);
            s->started_s = started;
            found = 1;
        }
        json_decref(o);
    }
    freeReplyObject(r);
    return found;
}

/* Marks key expected (an adopted run's job that is out), with its entry id
 * in <ns>:jobs when it is known (id: NULL), for a cancel. */
static int expect_key(belt__submit *s, const char *key, const char *id)
{
    uint64_t h = belt__hash(key, strlen(key));
    struct slot *x = table_find(&s->inflight, key, h);
    if (x == NULL) {
        int rc = table_put(&s->inflight, key, NULL);
        if (rc != BELT_OK)
            return rc;
        s->adopted_pending++;
        x = table_find(&s->inflight, key, h);
    }
    if (id != NULL)
        snprintf(x->id.s, sizeof x->id.s, "%s", id);
    return BELT_OK;
}

/* One resume scan: every entry of stream `key` (XRANGE in chunks); for a
 * job stream only the entries of this run.  The keys of the jobs and of
 * the results (and refusal notes) found are marked expected.  Entries that
 * do not verify are left out (forged ones must not stop a job from being
 * published).  Owner thread, before the collector starts. */
static int scan_stream(belt__submit *s, const char *key, bool jobs,
                       char *msg, size_t n)
{
    char start[64] = "-";
    for (;;) {
        const char *argv[] = {"XRANGE", key, start, "+", "COUNT", SCAN_COUNT};
        redisReply *r = belt__broker_command(s->own, 6, argv, NULL, msg, n);
        if (r == NULL)
            return BELT_EIO;
        belt__broker_entry *es = r->type == REDIS_REPLY_ARRAY && r->elements
                                     ? calloc(r->elements, sizeof *es) : NULL;
        int k = es ? belt__broker_entries(r, es, r->elements) : 0;
        int rc = BELT_OK;
        for (int i = 0; i < k && rc == BELT_OK; i++) {
            const belt__broker_entry *e = &es[i];
            snprintf(start, sizeof start, "(%s", e->id);
            char why[300];
            if (jobs) {
                const char *run = belt__broker_entry_get(e, "run", NULL);
                const char *jk = belt__broker_entry_get(e, "key", NULL);
                if (run == NULL || jk == NULL || strcmp(run, s->run) != 0 ||
                    (s->mac_own != NULL &&
                     belt__broker_verify_entry(s->mac_own, BELT__BROKER_TAG_JOB,
                                               NULL, e, why, sizeof why)))
                    continue;
                rc = expect_key(s, jk, e->id);
                continue;
            }
            const char *note = belt__broker_entry_get(e, "refused", NULL);
            if (note != NULL) {
                rc = expect_key(s, note, NULL);
                continue;
            }
            if (belt__broker_entry_get(e, "key", NULL) == NULL ||
                (s->mac_own != NULL &&
                 belt__broker_verify_entry(s->mac_own, BELT__BROKER_TAG_RESULT,
                                           s->run, e, why, sizeof why)))
                continue;
            belt__broker_entry recs[BELT__BROKER_RECORDS_MAX];
            size_t nrec = belt__broker_entry_records(e, recs,
                                                     BELT__BROKER_RECORDS_MAX);
            for (size_t j = 0; j < nrec && rc == BELT_OK; j++) {
                const char *rk = belt__broker_entry_get(&recs[j], "key", NULL);
                if (rk != NULL)
                    rc = expect_key(s, rk, NULL);
            }
        }
        size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        free(es);
        freeReplyObject(r);
        if (rc != BELT_OK)
            return belt__errf(msg, n, rc, "out of memory");
        if (got < (size_t)atoi(SCAN_COUNT))
            return BELT_OK;
    }
}

/* Continues the run found by find_run(): the scans, then the run's record.
 * BELT_OK, 1 when its stream is gone (expired: start a new run instead),
 * or a negative code with msg. */
static int adopt(belt__submit *s, char *msg, size_t n)
{
    if (belt__broker_key_results(s->k_results, sizeof s->k_results, s->ns,
                                 s->run) != BELT_OK)
        return 1;
    const char *ex[] = {"EXISTS", s->k_results};
    redisReply *r = belt__broker_command(s->own, 2, ex, NULL, msg, n);
    if (r == NULL)
        return BELT_EIO;
    bool exists = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    if (!exists)
        return 1;
    /* Jobs first, then results: a job that moves from one to the other
     * meanwhile is seen in at least one of them. */
    int rc = scan_stream(s, s->k_jobs, true, msg, n);
    if (rc == BELT_OK)
        rc = scan_stream(s, s->k_results, false, msg, n);
    if (rc == BELT_OK)
        s->adopted = true;
    return rc;
}

/* The publish mark's key, beside the result stream's. */
static void set_pub_key(belt__submit *s)
{
    snprintf(s->k_pub, sizeof s->k_pub, "%s:run:%s:pub", s->ns, s->run);
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
    if (o->results_path)
        s->results_path = strdup(o->results_path);
    if (o->config_path)
        s->config_path = strdup(o->config_path);
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
    atomic_init(&s->stopping, false);
    atomic_init(&s->duplicates, 0);
    atomic_init(&s->refused, 0);
    pthread_mutex_init(&s->mu, NULL);

    int rc;
    if ((o->ns && strlen(o->ns) >= sizeof s->ns) ||
        belt__broker_key(s->k_jobs, sizeof s->k_jobs, s->ns, "jobs") ||
        belt__broker_key(s->k_runs, sizeof s->k_runs, s->ns, "runs") ||
        belt__broker_key(s->k_workers, sizeof s->k_workers, s->ns,
                         "workers") ||
        belt__broker_key_results(s->k_results, sizeof s->k_results, s->ns,
                                 s->run)) {
        rc = belt__errf(msg, n, BELT_EINVAL, "namespace too long");
        goto fail;
    }
    if ((o->results_path && s->results_path == NULL) ||
        (o->config_path && s->config_path == NULL)) {
        rc = belt__errf(msg, n, BELT_ENOMEM, "out of memory");
        goto fail;
    }
    if (o->keys != NULL && o->keys->count > 0) {
        rc = belt__broker_mac_new(&s->mac_own, o->keys, msg, n);
        if (rc == BELT_OK)
            rc = belt__broker_mac_new(&s->mac_col, o->keys, msg, n);
        if (rc != BELT_OK)
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
    if (o->resume && s->results_path != NULL) {
        char fresh[sizeof s->run];
        memcpy(fresh, s->run, sizeof fresh);
        int64_t started = s->started_s;
        rc = find_run(s, msg, n);
        if (rc == 1)
            rc = adopt(s, msg, n);
        if (rc == 1 || (rc == BELT_OK && !s->adopted)) {
            /* No run to continue (or its stream expired): a new one. */
            memcpy(s->run, fresh, sizeof fresh);
            s->started_s = started;
            table_free(&s->inflight);
            s->adopted_pending = 0;
            rc = belt__broker_key_results(s->k_results, sizeof s->k_results,
                                          s->ns, s->run);
        }
        if (rc != BELT_OK)
            goto fail;
    }
    set_pub_key(s);
    if (!s->adopted) {
        /* Create the result stream now (one `open` entry, skipped by
         * collect), so that workers can XADD with NOMKSTREAM: a late
         * result after the stream was deleted at the end re-creates
         * nothing, and workers know the run is live while it exists. */
        const char *mk[] = {"XADD", s->k_results, "*", "open", "1"};
        redisReply *r = belt__broker_command(s->own, 5, mk, NULL, msg, n);
        if (r == NULL) {
            rc = BELT_EIO;
            goto fail;
        }
        freeReplyObject(r);
    }
    rc = write_run(s, "running", 0, 0, false, msg, n);
    if (rc != BELT_OK)
        goto fail;
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

bool belt__submit_adopted(const belt__submit *s, uint64_t *pending)
{
    if (pending != NULL)
        *pending = s->adopted_pending;
    return s->adopted;
}

/* ---- publishing --------------------------------------------------------- */

static int ready_early(belt__submit *s, struct slot *x);

/* Whether the transaction s->unconfirmed applied (its mark is in Redis):
 * 1 yes, 0 no, BELT_EIO. */
static int batch_applied(belt__submit *s, char *msg, size_t n)
{
    const char *argv[] = {"GET", s->k_pub};
    redisReply *r = belt__broker_command(s->own, 2, argv, NULL, msg, n);
    if (r == NULL)
        return BELT_EIO;
    int yes = r->type == REDIS_REPLY_STRING &&
              strtoull(r->str, NULL, 10) == s->unconfirmed;
    freeReplyObject(r);
    return yes;
}

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
    /* send[i]: jobs[i] goes out (an adopted run's jobs that are out
     * already do not). */
    bool *send = calloc(count, sizeof *send);
    const belt_job **out = calloc(count, sizeof *out);
    if (send == NULL || out == NULL) {
        free(send);
        free(out);
        free(ids);
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    int rc = BELT_OK;
    size_t nsend = 0;
    /* The last transaction's reply was lost: did it apply?  Its jobs are
     * then in the stream and must not go out again. */
    int applied = 0;
    if (s->unconfirmed != 0) {
        if (!belt__broker_connected(s->own))
            rc = belt__broker_reconnect(s->own, msg, n);
        applied = rc == BELT_OK ? batch_applied(s, msg, n) : rc;
        if (applied < 0) {
            free(send);
            free(out);
            free(ids);
            return applied;
        }
    }
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < count && rc == BELT_OK; i++) {
        struct slot *x = s->adopted || s->unconfirmed != 0
            ? table_find(&s->inflight, jobs[i]->id,
                         belt__hash(jobs[i]->id, strlen(jobs[i]->id)))
            : NULL;
        if (x != NULL && s->unconfirmed != 0 && x->batch == s->unconfirmed) {
            x->batch = 0;
            x->orig = orig[i];
            if (applied)
                continue; /* published by the lost transaction */
        }
        if (x != NULL && x->orig == NULL) {
            x->orig = orig[i];
            if (x->early != NULL) {
                rc = ready_early(s, x);
                if (rc != BELT_OK)
                    x->orig = NULL;
            }
            continue;
        }
        send[i] = true;
        out[nsend++] = jobs[i];
        rc = table_put(&s->inflight, jobs[i]->id, orig[i]);
    }
    s->unconfirmed = 0;
    uint64_t batch = ++s->batch_seq;
    for (size_t i = 0; i < nsend && rc == BELT_OK; i++) {
        struct slot *x = table_find(&s->inflight, out[i]->id,
                                    belt__hash(out[i]->id,
                                               strlen(out[i]->id)));
        if (x != NULL)
            x->batch = batch;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc != BELT_OK) {
        snprintf(msg, n, "out of memory");
        free(send);
        free(out);
        free(ids);
        return rc;
    }
    if (nsend == 0) {
        free(send);
        free(out);
        free(ids);
        *published = count;
        return BELT_OK;
    }
    if (!belt__broker_connected(s->own))
        rc = belt__broker_reconnect(s->own, msg, n);
    char mark[24];
    snprintf(mark, sizeof mark, "%" PRIu64, batch);
    if (rc == BELT_OK)
        rc = belt__broker_xadd_jobs_once(s->own, s->ns, s->run, out, nsend,
                                         s->max_deliveries, s->mac_own,
                                         s->k_pub, mark,
                                         BELT__SUBMIT_RESULTS_TTL_S, ids, msg,
                                         n);
    /* All or nothing: on success remember the stream ids (for XDEL on
     * cancel); a lost reply leaves the outcome to the next call. */
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < nsend; i++) {
        struct slot *x = table_find(&s->inflight, out[i]->id,
                                    belt__hash(out[i]->id,
                                               strlen(out[i]->id)));
        if (x != NULL && rc == BELT_OK) {
            x->id = ids[i];
            x->batch = 0;
        } else if (x != NULL && rc != BELT_EIO) {
            x->batch = 0; /* refused whole: nothing applied */
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == BELT_EIO)
        s->unconfirmed = batch;
    /* Known in the stream: every job before the first one sent. */
    size_t pub = 0;
    while (pub < count && !send[pub])
        pub++;
    free(send);
    free(out);
    free(ids);
    *published = rc == BELT_OK ? count : pub;
    return rc;
}

void belt__submit_forget(belt__submit *s, const char *key)
{
    if (!s->adopted || key == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    struct slot *x = table_find(&s->inflight, key, belt__hash(key,
                                                              strlen(key)));
    if (x != NULL && x->orig == NULL) {
        if (x->early != NULL)
            s->early_count--;
        table_remove(&s->inflight, x);
    }
    pthread_mutex_unlock(&s->mu);
}

size_t belt__submit_take_ready(belt__submit *s, belt__submit_item **out,
                               size_t max)
{
    pthread_mutex_lock(&s->mu);
    size_t k = s->nready < max ? s->nready : max;
    if (k == 0) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    memcpy(out, s->ready, k * sizeof *out);
    memmove(s->ready, s->ready + k, (s->nready - k) * sizeof *s->ready);
    s->nready -= k;
    pthread_mutex_unlock(&s->mu);
    return k;
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

/* Makes the item for a result whose key was in flight (orig): rec (the
 * record, may be NULL) and meta (may be NULL), or the text of an error
 * result (error, used when rec is NULL).  NULL when memory runs out. */
static belt__submit_item *make_item(const belt_job *orig, const char *rec,
                                    size_t len, const char *meta, size_t mlen,
                                    const char *error)
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
    /* A bare dead letter, a refusal, or a record we cannot read: an ERROR
     * result that the caller serialises itself. */
    r->status = BELT_JOB_ERROR;
    r->error = strdup(rec ? "unreadable result record from a worker"
                      : error ? error : "result entry without a record");
    return it;
}

/* The error text of a record without a result (a bare dead letter or a
 * worker's refusal note) into buf; "" when it is neither. */
static void record_error(const belt__broker_entry *e, char *buf, size_t n)
{
    const char *reason = belt__broker_entry_get(e, "reason", NULL);
    const char *deliveries = belt__broker_entry_get(e, "deliveries", NULL);
    const char *worker = belt__broker_entry_get(e, "worker", NULL);
    buf[0] = '\0';
    if (belt__broker_entry_get(e, "refused", NULL) != NULL)
        snprintf(buf, n, "refused by worker %s: %s", worker ? worker : "?",
                 reason ? reason : "?");
    else if (reason)
        snprintf(buf, n, "dead-lettered after %s deliveries: %s",
                 deliveries ? deliveries : "?", reason);
}

static char *dup_n(const char *p, size_t len)
{
    char *d = malloc(len + 1);
    if (d != NULL) {
        memcpy(d, p, len);
        d[len] = '\0';
    }
    return d;
}

/* Caller holds mu.  x (expected, now with orig) has an early result: makes
 * its item, appends it to the ready list and removes x.  BELT_OK or
 * BELT_ENOMEM (x untouched). */
static int ready_early(belt__submit *s, struct slot *x)
{
    if (s->nready == s->ready_cap) {
        size_t cap = s->ready_cap ? 2 * s->ready_cap : 64;
        belt__submit_item **nr = realloc(s->ready, cap * sizeof *nr);
        if (nr == NULL)
            return BELT_ENOMEM;
        s->ready = nr;
        s->ready_cap = cap;
    }
    struct early *e = x->early;
    belt__submit_item *it = make_item(x->orig, e->rec, e->len, e->meta,
                                      e->mlen, e->error);
    if (it == NULL)
        return BELT_ENOMEM;
    it->entry = e->entry;
    it->entry_last = false; /* trimming waits for early_count == 0 */
    s->ready[s->nready++] = it;
    s->early_count--;
    table_remove(&s->inflight, x);
    return BELT_OK;
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

/* "ms-seq" -> "ms-(seq+1)": the first id after id (XTRIM MINID keeps ids at
 * or above it).  False when id is not of that shape. */
static bool next_id(const char *id, char *out, size_t n)
{
    unsigned long long ms, seq;
    char tail;
    if (sscanf(id, "%llu-%llu%c", &ms, &seq, &tail) != 2)
        return false;
    snprintf(out, n, "%llu-%llu", ms, seq + 1);
    return true;
}

/* Collector.  Where the stream may be trimmed to now (inclusive), into
 * out ("" for nowhere new): up to the last entry whose items are all
 * written, or to everything read when every item made is written (the
 * entries after it made none).  Nothing while early results are kept. */
static void trim_point(belt__submit *s, char *out, size_t n)
{
    out[0] = '\0';
    pthread_mutex_lock(&s->mu);
    if (s->early_count == 0) {
        const char *to = strcmp(s->written.s, s->handed.s) == 0 ? s->cursor
                                                                : s->written.s;
        if (to[0] != '\0' && strcmp(to, "0-0") != 0 &&
            strcmp(to, s->trimmed) != 0)
            snprintf(out, n, "%s", to);
    }
    pthread_mutex_unlock(&s->mu);
}

/* One round trip: the XTRIM due (if any) and XREAD.  Returns the XREAD
 * reply or NULL (connection broken; msg). */
static redisReply *read_batch(belt__submit *s, size_t max, char *msg,
                              size_t n)
{
    char count[24], block[24], to[48], minid[48];
    snprintf(count, sizeof count, "%zu", max);
    snprintf(block, sizeof block, "%d", BLOCK_MS);
    const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block,
                          "STREAMS", s->k_results, s->cursor};
    trim_point(s, to, sizeof to);
    bool with_trim = to[0] != '\0' && next_id(to, minid, sizeof minid);
    if (belt__broker_set_timeout(s->col, (int64_t)(BLOCK_MS + 10000) *
                                             1000000) != BELT_OK) {
        snprintf(msg, n, "connection lost");
        return NULL;
    }
    const char *trim[] = {"XTRIM", s->k_results, "MINID", minid};
    if ((with_trim && belt__broker_append(s->col, 4, trim, NULL) != BELT_OK) ||
        belt__broker_append(s->col, 8, argv, NULL) != BELT_OK) {
        belt__broker_drain(s->col, msg, n);
        return NULL;
    }
    redisReply *r = NULL;
    if (with_trim) {
        if (belt__broker_get_reply(s->col, &r, msg, n) != BELT_OK) {
            belt__broker_drain(s->col, msg, n);
            return NULL;
        }
        /* An error reply (say, the stream expired) is harmless. */
        if (r->type != REDIS_REPLY_ERROR)
            snprintf(s->trimmed, sizeof s->trimmed, "%s", to);
        freeReplyObject(r);
    }
    r = NULL;
    if (belt__broker_get_reply(s->col, &r, msg, n) != BELT_OK)
        return NULL;
    return r;
}

/* Turns one record of a result entry into an item in out[*got] (the caller
 * makes room for BELT__BROKER_RECORDS_MAX per entry).  A record for a job
 * no longer in flight is a duplicate (counted); one for an expected job
 * not handed over yet is kept in its slot; one without a key (our own
 * `open` and `stop` entries, junk) is skipped.  BELT_OK or BELT_ENOMEM. */
static int take_record(belt__submit *s, const belt__broker_entry *e,
                       belt__submit_item **out, size_t *got)
{
    const char *key = belt__broker_entry_get(e, "key", NULL);
    if (key == NULL)
        key = belt__broker_entry_get(e, "refused", NULL);
    if (key == NULL)
        return BELT_OK;
    size_t len = 0, mlen = 0;
    const char *rec = belt__broker_entry_get(e, "result", &len);
    const char *meta = belt__broker_entry_get(e, "meta", &mlen);
    char error[600];
    record_error(e, error, sizeof error);
    uint64_t h = belt__hash(key, strlen(key));
    pthread_mutex_lock(&s->mu);
    struct slot *x = table_find(&s->inflight, key, h);
    if (x != NULL && x->orig == NULL) {
        /* Expected: keep it until publish() hands the job over. */
        int rc = BELT_OK;
        if (x->early == NULL) {
            struct early *ea = calloc(1, sizeof *ea);
            if (ea != NULL) {
                ea->rec = rec ? dup_n(rec, len) : NULL;
                ea->meta = meta ? dup_n(meta, mlen) : NULL;
                ea->error = error[0] ? strdup(error) : NULL;
                ea->len = len;
                ea->mlen = mlen;
                snprintf(ea->entry.s, sizeof ea->entry.s, "%s", e->id);
            }
            if (ea == NULL || (rec && ea->rec == NULL) ||
                (meta && ea->meta == NULL) || (error[0] && ea->error == NULL)) {
                early_free(ea);
                rc = BELT_ENOMEM;
            } else {
                x->early = ea;
                s->early_count++;
            }
        } else {
            atomic_fetch_add(&s->duplicates, 1);
        }
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    const belt_job *orig = x ? x->orig : NULL;
    if (x)
        table_remove(&s->inflight, x);
    pthread_mutex_unlock(&s->mu);
    if (orig == NULL) {
        atomic_fetch_add(&s->duplicates, 1);
        return BELT_OK;
    }
    belt__submit_item *it = make_item(orig, rec, len, meta, mlen,
                                      error[0] ? error : NULL);
    if (it == NULL) {
        /* Put the key back so a redelivery is not lost as a duplicate. */
        pthread_mutex_lock(&s->mu);
        (void)table_put(&s->inflight, key, orig);
        pthread_mutex_unlock(&s->mu);
        return BELT_ENOMEM;
    }
    snprintf(it->entry.s, sizeof it->entry.s, "%s", e->id);
    out[(*got)++] = it;
    return BELT_OK;
}

/* Collector.  A record of a result entry that was refused (why): its job,
 * if in flight, ends as an error that says so, rather than waiting for a
 * result that may never come (see the essay).  BELT_OK or BELT_ENOMEM. */
static int take_refused(belt__submit *s, const belt__broker_entry *rec,
                        const char *why, belt__submit_item **out,
                        size_t *got)
{
    const char *key = belt__broker_entry_get(rec, "key", NULL);
    if (key == NULL)
        return BELT_OK;
    pthread_mutex_lock(&s->mu);
    struct slot *x = table_find(&s->inflight, key,
                                belt__hash(key, strlen(key)));
    const belt_job *orig = x ? x->orig : NULL;
    if (orig != NULL)
        table_remove(&s->inflight, x);
    pthread_mutex_unlock(&s->mu);
    if (orig == NULL)
        return BELT_OK;
    char error[400];
    snprintf(error, sizeof error, "its result was refused: %s", why);
    belt__submit_item *it = make_item(orig, NULL, 0, NULL, 0, error);
    if (it == NULL) {
        pthread_mutex_lock(&s->mu);
        (void)table_put(&s->inflight, key, orig);
        pthread_mutex_unlock(&s->mu);
        return BELT_ENOMEM;
    }
    snprintf(it->entry.s, sizeof it->entry.s, "%s", rec->id);
    out[(*got)++] = it;
    return BELT_OK;
}

/* Collector.  With keys: whether the result entry e (workers sign each
 * entry, all its records) is signed by a key of ours (a refusal note is not
 * signed: see the essay).  A refused entry is counted and its reason kept
 * in why. */
static bool entry_trusted(belt__submit *s, const belt__broker_entry *e,
                          char *why, size_t n)
{
    if (s->mac_col == NULL || e->fields == NULL ||
        belt__broker_entry_get(e, "refused", NULL) != NULL ||
        belt__broker_entry_get(e, "key", NULL) == NULL)
        return true;
    if (belt__broker_verify_entry(s->mac_col, BELT__BROKER_TAG_RESULT, s->run,
                                  e, why, n) == BELT_OK)
        return true;
    if (atomic_fetch_add(&s->refused, 1) == 0) {
        pthread_mutex_lock(&s->mu);
        snprintf(s->refused_why, sizeof s->refused_why, "%s", why);
        pthread_mutex_unlock(&s->mu);
    }
    return false;
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
            size_t before = *got;
            char why[300];
            bool trusted = entry_trusted(s, en, why, sizeof why);
            size_t nrec = belt__broker_entry_records(en, recs,
                                                     BELT__BROKER_RECORDS_MAX);
            for (size_t j = 0; j < nrec && rc == BELT_OK; j++)
                rc = trusted ? take_record(s, &recs[j], out, got)
                             : take_refused(s, &recs[j], why, out, got);
            if (rc != BELT_OK)
                break;
            pthread_mutex_lock(&s->mu);
            snprintf(s->cursor, sizeof s->cursor, "%s", en->id);
            if (*got > before) {
                out[*got - 1]->entry_last = true;
                snprintf(s->handed.s, sizeof s->handed.s, "%s", en->id);
            }
            pthread_mutex_unlock(&s->mu);
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

void belt__submit_written(belt__submit *s, const belt__broker_id *entry)
{
    pthread_mutex_lock(&s->mu);
    s->written = *entry;
    pthread_mutex_unlock(&s->mu);
}

uint64_t belt__submit_refused(belt__submit *s, char *why, size_t n)
{
    uint64_t k = atomic_load(&s->refused);
    if (k > 0 && why != NULL && n > 0) {
        pthread_mutex_lock(&s->mu);
        snprintf(why, n, "%s", s->refused_why);
        pthread_mutex_unlock(&s->mu);
    }
    return k;
}

int belt__submit_workers(belt__submit *s, int64_t max_age_s, size_t *live,
                         char *msg, size_t n)
{
    *live = 0;
    if (!belt__broker_connected(s->own))
        return belt__errf(msg, n, BELT_EIO, "not connected");
    const char *argv[] = {"HVALS", s->k_workers};
    redisReply *r = belt__broker_command(s->own, 2, argv, NULL, msg, n);
    if (r == NULL)
        return BELT_EIO;
    int64_t now = unix_now();
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *v = r->element[i];
        if (v->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(v->str, v->len, 0, NULL);
        json_t *seen = json_object_get(o, "seen");
        if (json_is_integer(seen) && now - json_integer_value(seen) <= max_age_s)
            (*live)++;
        json_decref(o);
    }
    freeReplyObject(r);
    return BELT_OK;
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
        if (x->orig != NULL) { /* else expected, never handed over */
            fn(ctx, x->orig);
            count++;
        } else if (x->early != NULL) {
            s->early_count--;
        }
        table_remove(&s->inflight, x);
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
    const char *del[] = {"DEL", s->k_results, s->k_pub};
    redisReply *r = belt__broker_command(s->own, 3, del, NULL, msg, n);
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
    belt__broker_mac_free(s->mac_own);
    belt__broker_mac_free(s->mac_col);
    for (size_t i = 0; i < s->nready; i++)
        belt__submit_item_free(s->ready[i], true);
    free(s->ready);
    free(s->results_path);
    free(s->config_path);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    table_free(&s->inflight);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
