/* app/broker/worker.c: the worker engine of `belt worker`: jobs from a Redis
 * stream, run on a local belt pool, results back to Redis.
 *
 * Protocol (namespace P, consumer group "workers", see app/broker/broker.h): a
 * submitter XADDs jobs to P:jobs; every worker process is one consumer of
 * the group, named by its id ("<host>:<pid>").  Redis keeps, per delivered
 * entry, its consumer, idle time and delivery count in the group's pending
 * entries list (PEL); an entry leaves the PEL only when acknowledged.  That
 * gives at-least-once delivery: a worker acknowledges (XACK) a job in the
 * same atomic step that puts its result on the run's result stream (a Lua
 * script, see publish_lua), so a job whose worker dies stays pending, and
 * after the visibility timeout another worker takes it over (XAUTOCLAIM,
 * which also counts the delivery) and runs it again.  The script publishes
 * a result only while its entry is still pending with this worker at the
 * delivery it ran (a fence: a worker that stalled past its visibility
 * timeout and lost the job does not publish), so the result a run keeps is
 * always the latest delivery's, and a job never ran more times than that
 * result's delivery number says.  An entry delivered more than
 * max_deliveries times is not run again: it is copied to P:dead and its run
 * gets an "error" result saying so.  Acked entries are deleted (XDEL) so
 * P:jobs holds only what is queued or running; result entries are trimmed
 * by the submitter once it has written them.
 *
 * Screening (screen()): before an entry becomes a task, its signature is
 * checked when the worker has keys (app/broker/sign.c); one that does not
 * verify (unsigned, another key, changed) is never run: it is copied to
 * P:dead with the reason, its run is told in an unsigned note, and it is
 * acked and deleted.  Then its run must still be live: its result stream
 * must exist (looked at once per LIVE_RECHECK_NS per run); a job of a
 * finished or canceled run, or one replayed into it, is acked and deleted
 * unrun.  Results are signed entry by entry (up to 64 records each).
 *
 * Threads and connections.  A hiredis context is not thread-safe, so each
 * thread that talks to Redis has its own connection:
 *
 *   reader     (the thread that calls belt__broker_worker_run; connection
 *              `rd`): waits until slots are free, XREADGROUP ... COUNT
 *              <free> BLOCK <ms> for new jobs, decodes them, submits them
 *              to the pool; also, when due, the heartbeat (HSET P:workers),
 *              the claim refresh of jobs running here (a Lua script doing
 *              XCLAIM ... 0 id JUSTID for each id still pending with this
 *              worker, every visibility/3, so long jobs are not taken over
 *              while this worker lives, and jobs another worker took over
 *              are not taken back) and the reclaim of jobs abandoned
 *              elsewhere (XAUTOCLAIM, every visibility/2, then XPENDING for
 *              their delivery counts; dead letters).
 *   pool       belt_pool with `slots` worker threads, the same executor as
 *              local mode; results go to an unbounded channel.
 *   publisher  (connection `pub`): takes every result waiting on the
 *              channel (belt_chan_recv_many: one wait, a whole batch) and
 *              sends, in one pipelined round trip, one publish script call
 *              per result entry (up to 64 records of one run, signed
 *              together: their XADD, XACK and XDEL).  Round trips grow
 *              with batches, not jobs.
 *
 * Read-ahead.  COUNT is the free slots plus a read-ahead, fixed
 * (--prefetch) or automatic (current_cap()): about 20 ms of queued work
 * per slot by the mean job time, none before the first result and none
 * after 40 ms idle, so tiny jobs travel in batches of hundreds while long
 * ones are taken one per free slot and stay available to other workers.
 *
 * Nothing busy-waits.  The reader waits either in XREADGROUP's BLOCK (the
 * server wakes it when a job arrives) or, when all slots are taken, on a
 * condition variable that the publisher signals after each ack; both waits
 * end by the next periodic deadline (heartbeat, refresh, reclaim) at the
 * latest.  The publisher waits on the results channel.  Reconnect backoff
 * waits in poll() on an eventfd that stop/kill make readable.
 *
 * Stopping.  stop() sets `stopping`, makes stop_fd readable, wakes the
 * condition variable and, if the reader is blocked in XREADGROUP, shuts its
 * socket down (shutdown(2) is the one portable way to end another thread's
 * blocking read; entries that the interrupted XREADGROUP had taken stay
 * pending and are reclaimed elsewhere after the visibility timeout).  The
 * reader then shuts the pool down gracefully (running and queued jobs
 * finish), closes the results channel, and joins the publisher, which
 * publishes and acks everything and then ends on the closed channel;
 * last, the heartbeat entry is deleted.  abandon() is stop() plus `killed`:
 * from then on the publisher drops results instead of publishing them, so
 * every entry not yet acknowledged stays pending and is redelivered;
 * kill() is abandon() plus belt_pool_cancel().  A publisher that lost its
 * connection keeps its batch and republishes it after reconnecting (a result
 * may then be written twice: the submitter keeps the first one per job); while
 * stopping it goes on trying until abandon().
 *
 * Locking.  `mu` guards inflight, the in-flight list, rd_blocking and the
 * ordering of shutdown(2) against the reader's reconnects (the reader only
 * replaces its connection while rd_blocking is false, and stop() only
 * touches the socket while it is true).  `stopping`, `killed` and the
 * counters are atomics.  Tasks are owned by whoever holds them: the reader
 * until belt_pool_submit() accepts them, then the result (task == r->user)
 * until the publisher frees both.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "belt/chan.h"
#include "belt/error.h"
#include "belt/pool.h"
#include "app/broker/broker.h"
#include "util/clock.h"
#include "util/cpu.h"
#include "util/err.h"

#define HEARTBEAT_NS (2 * INT64_C(1000000000))
#define BATCH_MAX 512 /* results per publisher round trip */
#define READ_MAX 512  /* entries per XREADGROUP / XAUTOCLAIM */
#define PREFETCH_AUTO_MAX 1024u
#define PREFETCH_AUTO_TARGET_NS (20 * INT64_C(1000000))
#define PREFETCH_STALE_NS (2 * PREFETCH_AUTO_TARGET_NS)
#define LIVE_CACHE 8          /* runs whose liveness is remembered */
#define LIVE_RECHECK_NS (200 * INT64_C(1000000))

typedef struct task {
    belt_job *job;        /* decoded from the entry (owned) */
    belt__broker_id id;   /* entry id in P:jobs */
    char *run, *key;      /* owned */
    unsigned delivery;    /* 1 = first delivery */
    struct task *prev, *next; /* in-flight list, guarded by mu */
} task;

struct belt__broker_worker {
    /* configuration: set by create, read-only afterwards */
    belt__broker_url url;
    char *ns, *id;
    char host[256];
    unsigned slots, max_deliveries;
    unsigned prefetch;   /* fixed read-ahead, or BELT__BROKER_PREFETCH_AUTO */
    unsigned cap_max;    /* most tasks ever in flight (pool queue size) */
    int64_t visibility_ns, started_s;
    char jobs_key[512], dead_key[512], workers_key[512];
    void (*log)(void *ctx, const char *msg);
    void *log_ctx;

    belt__broker *rd;    /* reader thread only */
    belt__broker *pub;   /* publisher thread only */
    belt_pool *pool;
    belt_chan *results;  /* belt_result *, unbounded */
    int stop_fd;         /* eventfd: readable once stop() ran */
    int kill_fd;         /* eventfd: readable once kill() ran */

    pthread_mutex_t mu;
    pthread_cond_t cv;   /* inflight dropped, or stopping (CLOCK_MONOTONIC) */
    unsigned inflight;   /* mu: tasks read and not yet acked */
    task *list;          /* mu: in-flight tasks (for the claim refresh) */
    bool rd_blocking;    /* mu: reader is inside XREADGROUP BLOCK ... */
    int rd_fd;           /* mu: ... on this socket (for stop()) */
    bool running;        /* mu: run() was called */

    _Atomic bool stopping, killed;
    _Atomic uint64_t done, dead, reclaimed, reconnects, refused, skipped,
        superseded;
    _Atomic int64_t avg_job_ns; /* publisher: EWMA of job times, 1/8 weight;
                                 * -1 until the first result */
    _Atomic int64_t last_result_ns; /* publisher: monotonic time of the last
                                     * result taken */
    char autoclaim_cursor[48]; /* reader only */
    belt__broker_mac *mac_rd;  /* reader only: verifies jobs, signs dead
                                * letters' results; NULL: --insecure */
    belt__broker_mac *mac_pub; /* publisher only: signs results */
    struct live {              /* reader only: runs whose result stream was
                                * looked at lately (run_live()) */
        char run[320];
        bool live;
        int64_t at_ns;
    } lives[LIVE_CACHE];
    unsigned lives_next;
    int fatal;           /* publisher: BELT_ECONFIG when it gave up */
    char fatal_msg[512];
};

static void logf_(belt__broker_worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void logf_(belt__broker_worker *w, const char *fmt, ...)
{
    if (w->log == NULL)
        return;
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w->log(w->log_ctx, buf);
}

static void task_free(task *t)
{
    if (t == NULL)
        return;
    belt__broker_job_free(t->job);
    free(t->run);
    free(t->key);
    free(t);
}

void belt__broker_worker_options_init(belt__broker_worker_options *o)
{
    memset(o, 0, sizeof *o);
    o->prefetch = BELT__BROKER_PREFETCH_AUTO;
}

/* ---- create / free ------------------------------------------------------ */

int belt__broker_worker_create(belt__broker_worker **out,
                               const belt__broker_worker_options *o,
                               char *msg, size_t n)
{
    if (out == NULL || o == NULL || o->url == NULL) {
        return belt__errf(msg, n, BELT_EINVAL, "no broker URL");
    }
    belt__broker_worker *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    w->stop_fd = w->kill_fd = w->rd_fd = -1;
    w->url = *o->url;
    w->log = o->log;
    w->log_ctx = o->log_ctx;
    w->slots = o->slots;
    if (w->slots == 0)
        w->slots = belt__cpu_count();
    if (w->slots > BELT_POOL_MAX_WORKERS ||
        (o->prefetch > 1000000 && o->prefetch != BELT__BROKER_PREFETCH_AUTO)) {
        snprintf(msg, n, "too many slots");
        free(w);
        return BELT_EINVAL;
    }
    w->prefetch = o->prefetch;
    w->cap_max = w->slots + (o->prefetch == BELT__BROKER_PREFETCH_AUTO
                                 ? PREFETCH_AUTO_MAX : o->prefetch);
    w->max_deliveries = o->max_deliveries ? o->max_deliveries
                                          : BELT__BROKER_DEFAULT_MAX_DELIVERIES;
    w->visibility_ns = o->visibility_ns > 0 ? o->visibility_ns
                                            : BELT__BROKER_DEFAULT_VISIBILITY_NS;
    if (w->visibility_ns < INT64_C(3000000)) /* XCLAIM idle is in ms */
        w->visibility_ns = INT64_C(3000000);
    if (gethostname(w->host, sizeof w->host) != 0)
        snprintf(w->host, sizeof w->host, "localhost");
    w->host[sizeof w->host - 1] = '\0';
    char idbuf[300];
    snprintf(idbuf, sizeof idbuf, "%s:%ld", w->host, (long)getpid());
    w->ns = strdup(o->ns ? o->ns : BELT__BROKER_DEFAULT_NS);
    w->id = strdup(o->id ? o->id : idbuf);
    w->started_s = (int64_t)time(NULL);
    /* Until a job has finished here, no read-ahead: a job that kills its
     * worker must not take unrelated jobs with it. */
    atomic_store(&w->avg_job_ns, -1);
    snprintf(w->autoclaim_cursor, sizeof w->autoclaim_cursor, "0-0");
    int rc = BELT_ENOMEM;
    if (w->ns == NULL || w->id == NULL) {
        snprintf(msg, n, "out of memory");
        goto fail;
    }
    rc = BELT_EINVAL;
    if (belt__broker_key(w->jobs_key, sizeof w->jobs_key, w->ns, "jobs") ||
        belt__broker_key(w->dead_key, sizeof w->dead_key, w->ns, "dead") ||
        belt__broker_key(w->workers_key, sizeof w->workers_key, w->ns,
                         "workers")) {
        snprintf(msg, n, "namespace too long");
        goto fail;
    }
    rc = BELT_ESYS;
    w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    w->kill_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->stop_fd < 0 || w->kill_fd < 0) {
        snprintf(msg, n, "eventfd: %s", strerror(errno));
        goto fail;
    }
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        snprintf(msg, n, "cannot create a condition variable");
        goto fail;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int e1 = pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (e1 != 0) {
        snprintf(msg, n, "cannot create a condition variable");
        goto fail;
    }
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        pthread_cond_destroy(&w->cv);
        snprintf(msg, n, "cannot create a mutex");
        goto fail;
    }
    if (o->keys != NULL && o->keys->count > 0) {
        rc = belt__broker_mac_new(&w->mac_rd, o->keys, msg, n);
        if (rc == BELT_OK)
            rc = belt__broker_mac_new(&w->mac_pub, o->keys, msg, n);
        if (rc != BELT_OK) {
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            goto fail;
        }
    }
    rc = belt__broker_connect(&w->rd, &w->url, o->connect_timeout_ns, msg, n);
    if (rc == BELT_OK)
        rc = belt__broker_connect(&w->pub, &w->url, o->connect_timeout_ns,
                                  msg, n);
    if (rc == BELT_OK)
        rc = belt__broker_ensure_group(w->rd, w->ns, "0", msg, n);
    if (rc != BELT_OK) {
        belt__broker_close(w->rd);
        belt__broker_close(w->pub);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        goto fail;
    }
    *out = w;
    return BELT_OK;

fail:
    belt__broker_mac_free(w->mac_rd);
    belt__broker_mac_free(w->mac_pub);
    if (w->stop_fd >= 0)
        close(w->stop_fd);
    if (w->kill_fd >= 0)
        close(w->kill_fd);
    free(w->ns);
    free(w->id);
    free(w);
    return rc;
}

void belt__broker_worker_free(belt__broker_worker *w)
{
    if (w == NULL)
        return;
    belt__broker_close(w->rd);
    belt__broker_close(w->pub);
    belt__broker_mac_free(w->mac_rd);
    belt__broker_mac_free(w->mac_pub);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    close(w->stop_fd);
    close(w->kill_fd);
    free(w->ns);
    free(w->id);
    free(w);
}

const char *belt__broker_worker_id(const belt__broker_worker *w)
{
    return w ? w->id : NULL;
}

void belt__broker_worker_get_stats(belt__broker_worker *w,
                                   belt__broker_worker_stats *s)
{
    s->done = atomic_load(&w->done);
    s->dead = atomic_load(&w->dead);
    s->reclaimed = atomic_load(&w->reclaimed);
    s->reconnects = atomic_load(&w->reconnects);
    s->refused = atomic_load(&w->refused);
    s->skipped = atomic_load(&w->skipped);
    s->superseded = atomic_load(&w->superseded);
}

const char *belt__broker_worker_kid(const belt__broker_worker *w)
{
    return w->mac_rd ? belt__broker_mac_kid(w->mac_rd) : NULL;
}

static void fire(int fd)
{
    uint64_t one = 1;
    ssize_t k = write(fd, &one, sizeof one);
    (void)k; /* an eventfd write of 1 only fails on overflow: still readable */
}

/* Waits *delay_ns (then doubles it, up to the backoff cap) or until fd is
 * readable: true if it is.  For error replies that a reconnect would not
 * cure (LOADING, a full server): back off without reconnecting. */
static bool pause_backoff(int fd, int64_t *delay_ns)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, (int)(*delay_ns / 1000000));
    *delay_ns = *delay_ns * 2 > BELT__BROKER_BACKOFF_CAP_NS
                    ? BELT__BROKER_BACKOFF_CAP_NS : *delay_ns * 2;
    return r > 0;
}

void belt__broker_worker_stop(belt__broker_worker *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stopping, true);
    fire(w->stop_fd);
    pthread_mutex_lock(&w->mu);
    if (w->rd_blocking && w->rd_fd >= 0) {
        /* Ends the reader's XREADGROUP BLOCK now (see the essay).  The
         * socket stays open while rd_blocking is true. */
        shutdown(w->rd_fd, SHUT_RDWR);
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void belt__broker_worker_abandon(belt__broker_worker *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->killed, true);
    fire(w->kill_fd);
    belt__broker_worker_stop(w);
}

void belt__broker_worker_kill(belt__broker_worker *w)
{
    if (w == NULL)
        return;
    belt__broker_worker_abandon(w);
    /* Under mu, so run() cannot free the pool meanwhile.  Cancel joins the
     * pool's threads, which never take mu, so this cannot deadlock. */
    pthread_mutex_lock(&w->mu);
    if (w->running)
        belt_pool_cancel(w->pool);
    pthread_mutex_unlock(&w->mu);
}

/* ---- in-flight bookkeeping ---------------------------------------------- */

/* Caller holds mu. */
static void list_add(belt__broker_worker *w, task *t)
{
    t->prev = NULL;
    t->next = w->list;
    if (w->list)
        w->list->prev = t;
    w->list = t;
}

/* Caller holds mu. */
static void list_remove(belt__broker_worker *w, task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else if (w->list == t)
        w->list = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

/* Caller holds mu. */
static bool list_has(const belt__broker_worker *w, const char *id)
{
    for (const task *t = w->list; t; t = t->next)
        if (strcmp(t->id.s, id) == 0)
            return true;
    return false;
}

/* The publisher is done with `count` tasks (acked, or dropped). */
static void release(belt__broker_worker *w, task **ts, size_t count)
{
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < count; i++) {
        if (ts[i] == NULL)
            continue;
        list_remove(w, ts[i]);
        w->inflight--;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Counts t as in flight (until the publisher releases it). */
static void track(belt__broker_worker *w, task *t)
{
    pthread_mutex_lock(&w->mu);
    w->inflight++;
    list_add(w, t);
    pthread_mutex_unlock(&w->mu);
}

/* Answers a tracked task without running it: a result with `status` and
 * error `why` goes to the publisher like any other. */
static void answer_here(belt__broker_worker *w, task *t,
                        belt_job_status status, const char *why)
{
    belt_result *r = belt_result_new(t->job);
    if (r != NULL) {
        r->status = status;
        r->error = strdup(why);
        if (belt_chan_send(w->results, &r) == BELT_OK)
            return;
        belt_result_free(r);
    }
    task *one[1] = { t };
    release(w, one, 1);
    task_free(t);
}

/* Hands a task to the pool; when the pool will not take it (stopping), its
 * result is made here so it is still answered. */
static void dispatch(belt__broker_worker *w, task *t)
{
    track(w, t);
    if (belt_pool_submit(w->pool, t->job) != BELT_OK)
        answer_here(w, t, BELT_JOB_CANCELED, "worker stopping");
}

/* A task that could not be decoded: answered at once with an error result.
 * The result needs a job (for its id): a noop job named by the key. */
static void dispatch_error(belt__broker_worker *w, task *t, const char *why)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "id", t->key, "kind", "noop",
                          "output", "discard");
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char m[64];
    int rc = json ? belt__broker_job_from_json(json, &t->job, m, sizeof m)
                  : BELT_ENOMEM;
    free(json);
    if (rc != BELT_OK) {
        task_free(t); /* out of memory: the entry stays pending */
        return;
    }
    t->job->user = t;
    track(w, t);
    answer_here(w, t, BELT_JOB_ERROR, why);
}

/* ---- the publisher ------------------------------------------------------ */

/* One record's arguments in the publish script: entry id, delivery, then
 * the values of its fields key, meta and result (the script adds the
 * names); after the last record the entry's signature, a name and a
 * value. */
#define REC_ARGS 5
#define ARGS_MAX (13 + REC_ARGS * BELT__BROKER_RECORDS_MAX > 3 + BATCH_MAX \
                      ? 13 + REC_ARGS * BELT__BROKER_RECORDS_MAX : 3 + BATCH_MAX)

enum { REC_PENDING, REC_PUBLISHED, REC_SUPERSEDED };

typedef struct batch {
    size_t count;
    belt_result *r[BATCH_MAX];
    task *t[BATCH_MAX];
    char *json[BATCH_MAX];
    size_t json_len[BATCH_MAX];
    char meta[BATCH_MAX][200];
    char delivery[BATCH_MAX][12];
    unsigned char state[BATCH_MAX];   /* REC_... */
    /* The script calls of one round trip: their records, in order. */
    size_t call_first[BATCH_MAX], call_n[BATCH_MAX];
    size_t rec[BATCH_MAX];
    char sig[BATCH_MAX][BELT__BROKER_SIG_LEN + 1];
    /* One command's arguments, pointing into the batch and the tasks. */
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
} batch;

/* Bytes of records packed into one result entry at most (a record with a
 * large output goes alone). */
#define ENTRY_BYTES_MAX (256 * 1024)

/* The publish script (Lua, run atomically by Redis).  If every record's job
 * entry is still pending with this worker at the delivery the worker ran
 * (one XPENDING over the records' id range, filtered to this consumer: a
 * call from Lua costs several microseconds, one per record would be most
 * of Redis' time),
 * the records go into one XADD to the run's result stream (NOMKSTREAM, with
 * the entry's signature last) and the entries are acknowledged and
 * deleted; otherwise nothing is done and the ids of the entries taken over
 * meanwhile (a reclaim after a stall, a Redis restart that aged the claims)
 * are returned, and the worker sends the others again without them.  The
 * new owner's result is the one that counts.  Result and ack are one step:
 * a result in the stream always means its job is acknowledged, so a job
 * never runs again once its result is published, and the result a run
 * keeps is from the latest delivery (no job ran more times than that
 * result's delivery number).  KEYS: jobs stream, result stream.  ARGV:
 * group, consumer, records, lowest and highest entry id, most entries
 * pending here, then per record: entry id, delivery, key, meta, result;
 * then the trailing fields (the signature).  Returns the number of records
 * published, or the array of ids lost. */
static const char publish_lua[] =
    "local g, me, r = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local own = {}\n"
    "for _, e in ipairs(redis.call('XPENDING', KEYS[1], g, ARGV[4], ARGV[5],"
    " ARGV[6], me)) do own[e[1]] = e[4] end\n"
    "local lost, fields, ids, pos, n = {}, {}, {}, 7, 0\n"
    "for i = 1, r do\n"
    "  local id = ARGV[pos]\n"
    "  if own[id] ~= tonumber(ARGV[pos + 1]) then lost[#lost + 1] = id end\n"
    "  fields[n + 1] = 'key'; fields[n + 2] = ARGV[pos + 2]\n"
    "  fields[n + 3] = 'meta'; fields[n + 4] = ARGV[pos + 3]\n"
    "  fields[n + 5] = 'result'; fields[n + 6] = ARGV[pos + 4]\n"
    "  n = n + 6\n"
    "  ids[i] = id\n"
    "  pos = pos + 5\n"
    "end\n"
    "if #lost > 0 then return lost end\n"
    "for j = pos, #ARGV do n = n + 1; fields[n] = ARGV[j] end\n"
    "redis.call('XADD', KEYS[2], 'NOMKSTREAM', '*', unpack(fields))\n"
    "redis.call('XACK', KEYS[1], g, unpack(ids))\n"
    "redis.call('XDEL', KEYS[1], unpack(ids))\n"
    "return r\n";

/* Compares two stream ids ("ms-seq") as numbers. */
static int id_cmp(const char *a, const char *b)
{
    unsigned long long am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%llu-%llu", &am, &as);
    sscanf(b, "%llu-%llu", &bm, &bs);
    if (am != bm)
        return am < bm ? -1 : 1;
    return (as > bs) - (as < bs);
}

/* Appends one publish script call for the records rec[0..nrec) (of one
 * run, whose result stream is rkey), signed as one entry.  BELT_OK or
 * BELT_EIO. */
static int append_call(belt__broker_worker *w, batch *b, const char *rkey,
                       const char *run, const size_t *rec, size_t nrec,
                       char *sig)
{
    char nr[16], most[16];
    snprintf(nr, sizeof nr, "%zu", nrec);
    snprintf(most, sizeof most, "%u", w->cap_max + BATCH_MAX);
    const char *lo = b->t[rec[0]]->id.s, *hi = lo;
    for (size_t j = 1; j < nrec; j++) {
        const char *id = b->t[rec[j]]->id.s;
        if (id_cmp(id, lo) < 0)
            lo = id;
        if (id_cmp(id, hi) > 0)
            hi = id;
    }
    const char *head[11] = { "EVAL", publish_lua, "2", w->jobs_key, rkey,
                             BELT__BROKER_GROUP, w->id, nr, lo, hi, most };
    int argc = 0;
    for (int k = 0; k < 11; k++) {
        b->argv[argc] = head[k];
        b->lens[argc++] = strlen(head[k]);
    }
    for (size_t j = 0; j < nrec; j++) {
        size_t i = rec[j];
        task *t = b->t[i];
        snprintf(b->delivery[i], sizeof b->delivery[i], "%u", t->delivery);
        const char *f[REC_ARGS] = { t->id.s, b->delivery[i], t->key,
                                    b->meta[i], b->json[i] };
        size_t fl[REC_ARGS] = { strlen(t->id.s), strlen(b->delivery[i]),
                                strlen(t->key), strlen(b->meta[i]),
                                b->json_len[i] };
        memcpy(&b->argv[argc], f, sizeof f);
        memcpy(&b->lens[argc], fl, sizeof fl);
        argc += REC_ARGS;
    }
    if (w->mac_pub != NULL) {
        /* The fields of every record, in order, as the script writes
         * them, bound to the run (sign.c). */
        const char *sf[6 * BELT__BROKER_RECORDS_MAX];
        size_t sl[6 * BELT__BROKER_RECORDS_MAX];
        for (size_t j = 0; j < nrec; j++) {
            const char *const *v = &b->argv[11 + REC_ARGS * j + 2];
            const size_t *vl = &b->lens[11 + REC_ARGS * j + 2];
            const char *names[3] = { "key", "meta", "result" };
            for (int k = 0; k < 3; k++) {
                sf[6 * j + 2 * k] = names[k];
                sl[6 * j + 2 * k] = strlen(names[k]);
                sf[6 * j + 2 * k + 1] = v[k];
                sl[6 * j + 2 * k + 1] = vl[k];
            }
        }
        belt__broker_sign_fields(w->mac_pub, BELT__BROKER_TAG_RESULT, run,
                                 (int)(6 * nrec), sf, sl, sig);
        b->argv[argc] = "sig";
        b->lens[argc++] = 3;
        b->argv[argc] = sig;
        b->lens[argc++] = BELT__BROKER_SIG_LEN;
    }
    return belt__broker_append(w->pub, argc, b->argv, b->lens) == BELT_OK
               ? BELT_OK : BELT_EIO;
}

/* Sends the batch's pending records, one script call per result entry, in
 * one round trip, until none is lost to a take-over.  Consecutive results
 * of one run share an entry (up to BELT__BROKER_RECORDS_MAX records or
 * ENTRY_BYTES_MAX bytes): one entry to add, read and delete instead of one
 * per job.  Marks records REC_PUBLISHED or REC_SUPERSEDED.  BELT_OK,
 * BELT_EIO (connection lost: reconnect and retry) or BELT_EBUSY (an error
 * reply: retry later). */
static int publish_batch(belt__broker_worker *w, batch *b, char *msg,
                         size_t n)
{
    char rkey[600];
    for (size_t i = 0; i < b->count; i++)
        if (b->state[i] == REC_PENDING &&
            (b->json[i] == NULL ||
             belt__broker_key_results(rkey, sizeof rkey, w->ns,
                                      b->t[i]->run) != 0))
            b->state[i] = REC_SUPERSEDED; /* no record, or no such run */
    for (;;) {
        size_t calls = 0, nrec = 0, i = 0;
        while (i < b->count) {
            if (b->state[i] != REC_PENDING) {
                i++;
                continue;
            }
            const char *run = b->t[i]->run;
            (void)belt__broker_key_results(rkey, sizeof rkey, w->ns, run);
            size_t first = nrec, bytes = 0;
            for (; i < b->count && nrec - first < BELT__BROKER_RECORDS_MAX;
                 i++) {
                if (b->state[i] != REC_PENDING)
                    continue;
                if (strcmp(b->t[i]->run, run) != 0 ||
                    (nrec > first && bytes + b->json_len[i] > ENTRY_BYTES_MAX))
                    break;
                b->rec[nrec++] = i;
                bytes += b->json_len[i];
            }
            b->call_first[calls] = first;
            b->call_n[calls] = nrec - first;
            if (append_call(w, b, rkey, run, &b->rec[first], nrec - first,
                            b->sig[calls]) != BELT_OK)
                return BELT_EIO;
            calls++;
        }
        if (calls == 0)
            return BELT_OK;
        int rc = BELT_OK;
        bool lost = false;
        for (size_t c = 0; c < calls; c++) {
            redisReply *r;
            if (belt__broker_get_reply(w->pub, &r, msg, n) != BELT_OK)
                return BELT_EIO;
            const size_t *rec = &b->rec[b->call_first[c]];
            if (r->type == REDIS_REPLY_INTEGER) {
                for (size_t j = 0; j < b->call_n[c]; j++)
                    b->state[rec[j]] = REC_PUBLISHED;
            } else if (r->type == REDIS_REPLY_ARRAY) {
                lost = true;
                for (size_t k = 0; k < r->elements; k++)
                    for (size_t j = 0; j < b->call_n[c]; j++)
                        if (r->element[k]->type == REDIS_REPLY_STRING &&
                            strcmp(r->element[k]->str,
                                   b->t[rec[j]]->id.s) == 0)
                            b->state[rec[j]] = REC_SUPERSEDED;
            } else if (rc == BELT_OK) {
                belt__broker_reply_error(r, "publishing results", msg, n);
                rc = BELT_EBUSY;
            }
            freeReplyObject(r);
        }
        if (rc != BELT_OK || !lost)
            return rc;
    }
}

static void *publisher_main(void *arg)
{
    belt__broker_worker *w = arg;
    batch *b = calloc(1, sizeof *b);
    if (b == NULL) {
        w->fatal = BELT_ENOMEM;
        snprintf(w->fatal_msg, sizeof w->fatal_msg, "out of memory");
        belt__broker_worker_kill(w);
    }
    char msg[512];
    for (;;) {
        belt_result *rs[BATCH_MAX];
        int got = belt_chan_recv_many(w->results, rs, BATCH_MAX, -1);
        if (got <= 0)
            break; /* closed and drained */
        if (b == NULL) { /* out of memory earlier: drop */
            for (int i = 0; i < got; i++) {
                task *t = rs[i]->user;
                belt_result_free(rs[i]);
                task *one[1] = { t };
                release(w, one, 1);
                task_free(t);
            }
            continue;
        }
        b->count = 0;
        for (int i = 0; i < got; i++) {
            task *t = rs[i]->user;
            if (atomic_load(&w->killed)) {
                /* Not published, not acked: redelivered elsewhere. */
                belt_result_free(rs[i]);
                task *one[1] = { t };
                release(w, one, 1);
                task_free(t);
                continue;
            }
            int64_t avg = atomic_load(&w->avg_job_ns);
            int64_t took = rs[i]->attempts > 0 ? rs[i]->duration_ns : 0;
            atomic_store(&w->avg_job_ns, avg < 0 ? took
                                                 : avg + (took - avg) / 8);
            atomic_store(&w->last_result_ns, belt__now_mono());
            size_t k = b->count++;
            b->r[k] = rs[i];
            b->t[k] = t;
            b->state[k] = REC_PENDING;
            b->json[k] = belt__broker_result_json(rs[i], w->host, w->id,
                                                  t->delivery,
                                                  &b->json_len[k]);
            if (belt__broker_meta_format(rs[i], b->meta[k],
                                         sizeof b->meta[k]) != BELT_OK)
                b->meta[k][0] = '\0'; /* the submitter reads the record */
        }
        int64_t delay = BELT__BROKER_BACKOFF_FIRST_NS;
        bool published = false;
        while (b->count > 0) {
            int prc = BELT_EIO;
            snprintf(msg, sizeof msg, "not connected");
            if (belt__broker_connected(w->pub))
                prc = publish_batch(w, b, msg, sizeof msg);
            published = prc == BELT_OK;
            if (published || atomic_load(&w->killed))
                break;
            if (prc == BELT_EBUSY) {
                logf_(w, "publishing results: %s; retrying", msg);
                if (pause_backoff(w->kill_fd, &delay))
                    break;
                continue;
            }
            logf_(w, "publishing results: %s; reconnecting", msg);
            int rc = belt__broker_reconnect_backoff(w->pub, w->kill_fd, msg,
                                                    sizeof msg);
            if (rc == BELT_OK) {
                atomic_fetch_add(&w->reconnects, 1);
                logf_(w, "reconnected (publisher)");
            } else if (rc != BELT_ECANCELED) {
                w->fatal = rc;
                snprintf(w->fatal_msg, sizeof w->fatal_msg, "%s", msg);
                belt__broker_worker_kill(w);
                break;
            }
        }
        for (size_t i = 0; i < b->count; i++) {
            belt_result_free(b->r[i]);
            free(b->json[i]);
        }
        if (published) {
            size_t npub = 0;
            for (size_t i = 0; i < b->count; i++)
                npub += b->state[i] == REC_PUBLISHED;
            atomic_fetch_add(&w->done, npub);
            atomic_fetch_add(&w->superseded, b->count - npub);
        }
        release(w, b->t, b->count);
        for (size_t i = 0; i < b->count; i++)
            task_free(b->t[i]);
        b->count = 0;
    }
    free(b);
    return NULL;
}

/* ---- the reader --------------------------------------------------------- */

/* Makes a task from an entry; NULL when the entry is unusable (then it is
 * acked and deleted by the caller).  *why gets the decode error, if any. */
static task *task_from_entry(const belt__broker_entry *e, unsigned delivery,
                             char *why, size_t n)
{
    why[0] = '\0';
    const char *run = belt__broker_entry_get(e, "run", NULL);
    const char *key = belt__broker_entry_get(e, "key", NULL);
    const char *job = belt__broker_entry_get(e, "job", NULL);
    if (run == NULL || key == NULL)
        return NULL;
    task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    snprintf(t->id.s, sizeof t->id.s, "%s", e->id);
    t->run = strdup(run);
    t->key = strdup(key);
    t->delivery = delivery;
    if (t->run == NULL || t->key == NULL) {
        task_free(t);
        return NULL;
    }
    if (job == NULL) {
        snprintf(why, n, "entry has no job");
        return t;
    }
    char m[256];
    if (belt__broker_job_from_json(job, &t->job, m, sizeof m) != BELT_OK) {
        snprintf(why, n, "cannot decode the job: %s", m);
        t->job = NULL;
        return t;
    }
    t->job->user = t;
    return t;
}

/* Whether run's result stream exists, that is whether its submitter is
 * still there to take results (or will come back: a crashed run's stream
 * expires, see app/broker/submit.c).  Remembered for LIVE_RECHECK_NS.
 * 1 live, 0 over, BELT_EIO. */
static int run_live(belt__broker_worker *w, const char *run)
{
    int64_t now = belt__now_mono();
    struct live *hit = NULL;
    for (unsigned i = 0; i < LIVE_CACHE; i++)
        if (strcmp(w->lives[i].run, run) == 0)
            hit = &w->lives[i];
    if (hit != NULL && now - hit->at_ns < LIVE_RECHECK_NS)
        return hit->live;
    char rkey[600];
    if (belt__broker_key_results(rkey, sizeof rkey, w->ns, run) != BELT_OK ||
        strlen(run) >= sizeof hit->run)
        return 0; /* no such run can exist */
    const char *argv[2] = { "EXISTS", rkey };
    redisReply *r = belt__broker_command(w->rd, 2, argv, NULL, NULL, 0);
    if (r == NULL)
        return BELT_EIO;
    bool live = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    if (hit == NULL) {
        hit = &w->lives[w->lives_next];
        w->lives_next = (w->lives_next + 1) % LIVE_CACHE;
        snprintf(hit->run, sizeof hit->run, "%s", run);
    }
    hit->live = live;
    hit->at_ns = now;
    return live;
}

/* Refuses an entry whose signature does not verify: never runs it, copies it
 * to P:dead with the reason, tells its run (if that run exists: an unsigned
 * note, which the submitter turns into an error result for the job), acks
 * and deletes it, in one round trip.  BELT_OK or BELT_EIO. */
static int refuse(belt__broker_worker *w, const belt__broker_entry *e,
                  unsigned delivery, const char *why)
{
    const char *run = belt__broker_entry_get(e, "run", NULL);
    const char *key = belt__broker_entry_get(e, "key", NULL);
    const char *job = belt__broker_entry_get(e, "job", NULL);
    char reason[420], dels[16], rkey[600];
    snprintf(reason, sizeof reason, "refused: %s", why);
    snprintf(dels, sizeof dels, "%u", delivery);
    const char *a1[15] = { "XADD", w->dead_key, "*", "run", run ? run : "",
                           "key", key ? key : "", "job", job ? job : "",
                           "reason", reason, "deliveries", dels, "worker",
                           w->id };
    belt__broker_append(w->rd, 15, a1, NULL);
    if (run != NULL && key != NULL &&
        belt__broker_key_results(rkey, sizeof rkey, w->ns, run) == BELT_OK) {
        const char *a2[10] = { "XADD", rkey, "NOMKSTREAM", "*", "refused", key,
                               "reason", reason, "worker", w->id };
        belt__broker_append(w->rd, 10, a2, NULL);
    }
    const char *a3[4] = { "XACK", w->jobs_key, BELT__BROKER_GROUP, e->id };
    belt__broker_append(w->rd, 4, a3, NULL);
    const char *a4[3] = { "XDEL", w->jobs_key, e->id };
    belt__broker_append(w->rd, 3, a4, NULL);
    if (belt__broker_drain(w->rd, NULL, 0) == BELT_EIO)
        return BELT_EIO;
    atomic_fetch_add(&w->refused, 1);
    logf_(w, "refused %s (run %s, job %s): %s", e->id, run ? run : "?",
          key ? key : "?", why);
    return BELT_OK;
}

/* What the reader does with an entry of P:jobs, before anything else. */
enum { SCREEN_RUN, SCREEN_DROP, SCREEN_DONE };

/* Screens an entry: SCREEN_RUN when it may become a task; SCREEN_DROP when
 * it is to be acked and deleted unread (deleted while pending, no run, or
 * its run is over: a finished or canceled run, or a job replayed into one);
 * SCREEN_DONE when it was refused here (its signature, see refuse()).
 * BELT_EIO when the connection broke. */
static int screen(belt__broker_worker *w, const belt__broker_entry *e,
                  unsigned delivery)
{
    if (e->fields == NULL)
        return SCREEN_DROP;
    char why[400];
    if (w->mac_rd != NULL &&
        belt__broker_verify_entry(w->mac_rd, BELT__BROKER_TAG_JOB, NULL, e,
                                  why, sizeof why) != BELT_OK) {
        int rc = refuse(w, e, delivery, why);
        return rc == BELT_OK ? SCREEN_DONE : rc;
    }
    const char *run = belt__broker_entry_get(e, "run", NULL);
    if (run == NULL)
        return SCREEN_DROP;
    int live = run_live(w, run);
    if (live < 0)
        return live;
    if (!live) {
        atomic_fetch_add(&w->skipped, 1);
        logf_(w, "skipped %s (run %s): the run is over (its result stream is "
              "gone)", e->id, run);
        return SCREEN_DROP;
    }
    return SCREEN_RUN;
}

static void take(belt__broker_worker *w, task *t, const char *why)
{
    if (t->job == NULL)
        dispatch_error(w, t, why[0] ? why : "bad job entry");
    else
        dispatch(w, t);
}

/* Acks and deletes entries nobody can answer (no run or key). */
static void drop_entries(belt__broker_worker *w, const char *const *ids,
                         size_t count)
{
    if (count == 0)
        return;
    belt__broker_cmd c;
    belt__broker_cmd_init(&c);
    for (int pass = 0; pass < 2; pass++) {
        belt__broker_cmd_reset(&c);
        int rc = belt__broker_cmd_adds(&c, pass == 0 ? "XACK" : "XDEL");
        rc |= belt__broker_cmd_adds(&c, w->jobs_key);
        if (pass == 0)
            rc |= belt__broker_cmd_adds(&c, BELT__BROKER_GROUP);
        for (size_t i = 0; i < count; i++)
            rc |= belt__broker_cmd_adds(&c, ids[i]);
        if (rc == BELT_OK)
            belt__broker_cmd_append(w->rd, &c);
    }
    belt__broker_drain(w->rd, NULL, 0);
    belt__broker_cmd_free(&c);
    logf_(w, "dropped %zu malformed entries of %s", count, w->jobs_key);
}

/* Heartbeat: HSET P:workers <id> {...}. */
static int heartbeat(belt__broker_worker *w, unsigned inflight)
{
    char json[1024];
    json_t *o = json_pack("{s:s,s:s?,s:I,s:I,s:I,s:I,s:I,s:I}", "host",
                          w->host, "key", belt__broker_worker_kid(w),
                          "pid", (json_int_t)getpid(),
                          "slots", (json_int_t)w->slots,
                          "started", (json_int_t)w->started_s,
                          "seen", (json_int_t)time(NULL),
                          "running", (json_int_t)inflight,
                          "done", (json_int_t)atomic_load(&w->done));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    snprintf(json, sizeof json, "%s", s ? s : "{}");
    free(s);
    const char *argv[4] = { "HSET", w->workers_key, w->id, json };
    redisReply *r = belt__broker_command(w->rd, 4, argv, NULL, NULL, 0);
    if (r == NULL)
        return BELT_EIO;
    freeReplyObject(r);
    return BELT_OK;
}

/* The claim refresh script: resets the idle time of each entry given that
 * is still pending with this consumer (XCLAIM ... 0 JUSTID, which neither
 * counts a delivery nor needs the entry to exist), and leaves alone those
 * another worker took over: a plain XCLAIM would take them back.  KEYS:
 * jobs stream.  ARGV: group, consumer, ids. */
static const char refresh_lua[] =
    "local n = 0\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1,"
    " ARGV[2])\n"
    "  if p[1] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Claim refresh: resets the idle time of every entry running here. */
static int refresh_claims(belt__broker_worker *w)
{
    belt__broker_cmd c;
    belt__broker_cmd_init(&c);
    int rc = belt__broker_cmd_adds(&c, "EVAL");
    rc |= belt__broker_cmd_adds(&c, refresh_lua);
    rc |= belt__broker_cmd_adds(&c, "1");
    rc |= belt__broker_cmd_adds(&c, w->jobs_key);
    rc |= belt__broker_cmd_adds(&c, BELT__BROKER_GROUP);
    rc |= belt__broker_cmd_adds(&c, w->id);
    size_t ids = 0;
    pthread_mutex_lock(&w->mu);
    for (const task *t = w->list; t && rc == BELT_OK; t = t->next, ids++)
        rc |= belt__broker_cmd_adds(&c, t->id.s);
    pthread_mutex_unlock(&w->mu);
    if (rc != BELT_OK || ids == 0) {
        belt__broker_cmd_free(&c);
        return rc == BELT_OK ? BELT_OK : BELT_ENOMEM;
    }
    redisReply *r = belt__broker_cmd_run(w->rd, &c, NULL, 0);
    belt__broker_cmd_free(&c);
    if (r == NULL)
        return BELT_EIO;
    if (r->type == REDIS_REPLY_ERROR)
        logf_(w, "claim refresh: %s", r->str);
    freeReplyObject(r);
    return BELT_OK;
}

/* Moves an entry that was delivered too often to P:dead, answers its run
 * with an error result, acks and deletes it (one pipelined round trip). */
static int dead_letter(belt__broker_worker *w, const belt__broker_entry *e,
                       unsigned deliveries, unsigned max)
{
    const char *run = belt__broker_entry_get(e, "run", NULL);
    const char *key = belt__broker_entry_get(e, "key", NULL);
    const char *job = belt__broker_entry_get(e, "job", NULL);
    char reason[200], dels[16];
    snprintf(reason, sizeof reason, "the workers that took it did not "
             "acknowledge it within the visibility timeout (max_deliveries "
             "%u): they died or lost their connection", max);
    snprintf(dels, sizeof dels, "%u", deliveries - 1);
    const char *argv[15] = { "XADD", w->dead_key, "*", "run", run ? run : "",
                             "key", key ? key : "", "job", job ? job : "",
                             "reason", reason, "deliveries", dels, "worker",
                             w->id };
    belt__broker_append(w->rd, 15, argv, NULL);
    if (run != NULL && key != NULL) {
        char rkey[600], err[300], m[64];
        snprintf(err, sizeof err, "dead-lettered after %u deliveries: %s",
                 deliveries - 1, reason);
        belt_job *j = NULL;
        if (job == NULL ||
            belt__broker_job_from_json(job, &j, m, sizeof m) != BELT_OK)
            j = NULL;
        belt_job stub;
        belt_job_init(&stub);
        stub.id = key;
        belt_result *r = belt_result_new(j ? j : &stub);
        char *json = NULL;
        size_t len = 0;
        if (r != NULL) {
            r->status = BELT_JOB_ERROR;
            r->error = strdup(err);
            json = belt__broker_result_json(r, w->host, w->id,
                                            deliveries, &len);
            belt_result_free(r);
        }
        belt__broker_job_free(j);
        if (json != NULL &&
            belt__broker_key_results(rkey, sizeof rkey, w->ns, run) == 0) {
            char sig[BELT__BROKER_SIG_LEN + 1];
            const char *a2[10] = { "XADD", rkey, "NOMKSTREAM", "*", "key",
                                   key, "result", json };
            int argc = 8;
            if (w->mac_rd != NULL) {
                belt__broker_sign_fields(w->mac_rd, BELT__BROKER_TAG_RESULT,
                                         run, 4, a2 + 4, NULL, sig);
                a2[argc++] = "sig";
                a2[argc++] = sig;
            }
            belt__broker_append(w->rd, argc, a2, NULL);
        }
        free(json);
    }
    const char *a3[4] = { "XACK", w->jobs_key, BELT__BROKER_GROUP, e->id };
    belt__broker_append(w->rd, 4, a3, NULL);
    const char *a4[3] = { "XDEL", w->jobs_key, e->id };
    belt__broker_append(w->rd, 3, a4, NULL);
    int rc = belt__broker_drain(w->rd, NULL, 0);
    if (rc == BELT_EIO)
        return rc;
    atomic_fetch_add(&w->dead, 1);
    logf_(w, "dead-lettered %s (run %s, job %s) after %u deliveries", e->id,
          run ? run : "?", key ? key : "?", deliveries - 1);
    return BELT_OK;
}

/* Reclaim: takes over up to `free_slots` entries idle for longer than the
 * visibility timeout (XAUTOCLAIM), reads their delivery counts (XPENDING,
 * pipelined), then runs or dead-letters each.  BELT_OK or BELT_EIO. */
static int reclaim(belt__broker_worker *w, unsigned free_slots)
{
    char ms[32], count[16];
    snprintf(ms, sizeof ms, "%" PRId64, w->visibility_ns / 1000000);
    snprintf(count, sizeof count, "%u",
             free_slots < READ_MAX ? free_slots : READ_MAX);
    const char *argv[9] = { "XAUTOCLAIM", w->jobs_key, BELT__BROKER_GROUP,
                            w->id, ms, w->autoclaim_cursor, "COUNT", count };
    redisReply *r = belt__broker_command(w->rd, 8, argv, NULL, NULL, 0);
    if (r == NULL)
        return BELT_EIO;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        /* e.g. NOGROUP after a restart without persistence, or a Redis
         * older than 6.2: nothing to reclaim now. */
        if (r->type == REDIS_REPLY_ERROR)
            logf_(w, "XAUTOCLAIM: %s", r->str);
        freeReplyObject(r);
        return BELT_OK;
    }
    snprintf(w->autoclaim_cursor, sizeof w->autoclaim_cursor, "%s",
             r->element[0]->str);
    belt__broker_entry es[READ_MAX];
    int k = belt__broker_entries(r->element[1], es, READ_MAX);
    if (k <= 0) {
        freeReplyObject(r);
        return BELT_OK;
    }
    /* Delivery counts, one XPENDING per entry, pipelined. */
    for (int i = 0; i < k; i++) {
        const char *a[6] = { "XPENDING", w->jobs_key, BELT__BROKER_GROUP,
                             es[i].id, es[i].id, "1" };
        if (belt__broker_append(w->rd, 6, a, NULL) != BELT_OK) {
            freeReplyObject(r);
            return BELT_EIO;
        }
    }
    unsigned counts[READ_MAX];
    for (int i = 0; i < k; i++) {
        redisReply *p;
        if (belt__broker_get_reply(w->rd, &p, NULL, 0) != BELT_OK) {
            freeReplyObject(r);
            return BELT_EIO;
        }
        counts[i] = 2; /* at least: one delivery elsewhere, this one */
        if (p->type == REDIS_REPLY_ARRAY && p->elements == 1 &&
            p->element[0]->type == REDIS_REPLY_ARRAY &&
            p->element[0]->elements == 4 &&
            p->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
            counts[i] = (unsigned)p->element[0]->element[3]->integer;
        freeReplyObject(p);
    }
    const char *dropped[READ_MAX];
    size_t ndropped = 0;
    int rc = BELT_OK;
    for (int i = 0; i < k && rc == BELT_OK; i++) {
        pthread_mutex_lock(&w->mu);
        bool mine = list_has(w, es[i].id);
        pthread_mutex_unlock(&w->mu);
        if (mine)
            continue; /* running here: the claim only refreshed it */
        int sc = screen(w, &es[i], counts[i]);
        if (sc < 0) {
            rc = sc;
            break;
        }
        if (sc == SCREEN_DROP)
            dropped[ndropped++] = es[i].id;
        if (sc != SCREEN_RUN)
            continue;
        unsigned max = w->max_deliveries;
        const char *mds = belt__broker_entry_get(&es[i], "max_deliveries",
                                                 NULL);
        if (mds != NULL && atoi(mds) > 0)
            max = (unsigned)atoi(mds);
        if (counts[i] > max) {
            rc = dead_letter(w, &es[i], counts[i], max);
            continue;
        }
        char why[300];
        task *t = task_from_entry(&es[i], counts[i], why, sizeof why);
        if (t == NULL) {
            dropped[ndropped++] = es[i].id;
            continue;
        }
        atomic_fetch_add(&w->reclaimed, 1);
        logf_(w, "reclaimed %s (job %s, delivery %u)", es[i].id, t->key,
              counts[i]);
        take(w, t, why);
    }
    if (rc == BELT_OK)
        drop_entries(w, dropped, ndropped);
    freeReplyObject(r);
    return rc;
}

/* One XREADGROUP for up to free_slots new entries, blocking up to block_ns.
 * BELT_OK (maybe nothing read), BELT_EIO (connection lost, or interrupted by
 * stop()), BELT_EBUSY (an error reply; msg says which). */
static int read_new(belt__broker_worker *w, unsigned free_slots,
                    int64_t block_ns, char *msg, size_t n)
{
    char count[16], block[32];
    if (free_slots > READ_MAX)
        free_slots = READ_MAX;
    snprintf(count, sizeof count, "%u", free_slots);
    int64_t block_ms = block_ns / 1000000;
    if (block_ms < 1)
        block_ms = 1; /* BLOCK 0 would wait forever */
    snprintf(block, sizeof block, "%" PRId64, block_ms);
    const char *argv[10] = { "XREADGROUP", "GROUP", BELT__BROKER_GROUP,
                             w->id, "COUNT", count, "BLOCK", block,
                             "STREAMS", w->jobs_key };
    const char *argv2[11];
    memcpy(argv2, argv, sizeof argv);
    argv2[10] = ">";
    belt__broker_set_timeout(w->rd, block_ms * 1000000 +
                                        BELT__BROKER_CONNECT_TIMEOUT_NS);
    pthread_mutex_lock(&w->mu);
    bool stop = atomic_load(&w->stopping);
    w->rd_blocking = !stop;
    w->rd_fd = belt__broker_fd(w->rd);
    pthread_mutex_unlock(&w->mu);
    if (stop)
        return BELT_OK;
    redisReply *r = belt__broker_command(w->rd, 11, argv2, NULL, msg, n);
    pthread_mutex_lock(&w->mu);
    w->rd_blocking = false;
    w->rd_fd = -1;
    pthread_mutex_unlock(&w->mu);
    belt__broker_set_timeout(w->rd, BELT__BROKER_CONNECT_TIMEOUT_NS);
    if (r == NULL)
        return BELT_EIO;
    if (r->type == REDIS_REPLY_ERROR) {
        belt__broker_reply_error(r, "XREADGROUP", msg, n);
        bool nogroup = strncmp(r->str, "NOGROUP", 7) == 0;
        freeReplyObject(r);
        if (nogroup) /* Redis lost its data: make the group again */
            return belt__broker_ensure_group(w->rd, w->ns, "0", msg, n) ==
                           BELT_EIO ? BELT_EIO : BELT_OK;
        return BELT_EBUSY;
    }
    const redisReply *entries = belt__broker_xread_entries(r);
    belt__broker_entry es[READ_MAX];
    int k = entries ? belt__broker_entries(entries, es, free_slots) : 0;
    const char *dropped[READ_MAX];
    size_t ndropped = 0;
    int rc = BELT_OK;
    for (int i = 0; i < k; i++) {
        char why[300];
        int sc = rc == BELT_OK ? screen(w, &es[i], 1) : rc;
        if (sc < 0) {
            /* Connection lost: the rest stay pending, and are reclaimed
             * here or elsewhere after the visibility timeout. */
            rc = sc;
            continue;
        }
        if (sc == SCREEN_DONE)
            continue;
        task *t = sc == SCREEN_RUN ? task_from_entry(&es[i], 1, why,
                                                     sizeof why) : NULL;
        if (t == NULL)
            dropped[ndropped++] = es[i].id;
        else
            take(w, t, why);
    }
    if (rc == BELT_OK)
        drop_entries(w, dropped, ndropped);
    freeReplyObject(r);
    return rc;
}

/* How many tasks may be in flight now: the slots plus the read-ahead.  The
 * automatic read-ahead keeps about PREFETCH_AUTO_TARGET_NS of queued work
 * per slot, going by the recent mean job time (an exponentially weighted
 * moving average kept by the publisher): none for jobs of 20 ms or more
 * per slot, up to PREFETCH_AUTO_MAX for tiny ones, whose throughput depends
 * on reading and acknowledging in large batches. */
static unsigned current_cap(belt__broker_worker *w)
{
    if (w->prefetch != BELT__BROKER_PREFETCH_AUTO)
        return w->slots + w->prefetch;
    int64_t avg = atomic_load(&w->avg_job_ns);
    if (avg < 0)
        return w->slots; /* no job finished yet */
    /* Idle for a while: the mean is stale (the next jobs may be long ones
     * after short ones), so start again without read-ahead.  Caller holds
     * mu (inflight). */
    if (w->inflight == 0 &&
        belt__now_mono() - atomic_load(&w->last_result_ns) > PREFETCH_STALE_NS)
        return w->slots;
    if (avg < 1000)
        avg = 1000;
    int64_t extra = (int64_t)w->slots * PREFETCH_AUTO_TARGET_NS / avg;
    if (extra > PREFETCH_AUTO_MAX)
        extra = PREFETCH_AUTO_MAX;
    return w->slots + (unsigned)extra;
}

/* Waits while no slot is free, until `deadline` (monotonic ns) or stop.
 * Returns the number of free slots. */
static unsigned wait_slots(belt__broker_worker *w, int64_t deadline,
                           unsigned *inflight)
{
    pthread_mutex_lock(&w->mu);
    unsigned cap = current_cap(w);
    while (w->inflight >= cap && !atomic_load(&w->stopping)) {
        int64_t now = belt__now_mono();
        if (now >= deadline)
            break;
        struct timespec ts;
        belt__deadline(&ts, deadline - now);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
    unsigned free_slots = w->inflight < cap ? cap - w->inflight : 0;
    *inflight = w->inflight;
    pthread_mutex_unlock(&w->mu);
    return free_slots;
}

/* After a lost connection: reconnect the reader, unless stopping.
 * BELT_OK, BELT_ECANCELED (stop requested) or BELT_ECONFIG. */
static int reader_reconnect(belt__broker_worker *w, const char *why,
                            char *msg, size_t n)
{
    if (atomic_load(&w->stopping))
        return BELT_ECANCELED;
    logf_(w, "%s; reconnecting", why);
    int rc = belt__broker_reconnect_backoff(w->rd, w->stop_fd, msg, n);
    if (rc == BELT_OK) {
        atomic_fetch_add(&w->reconnects, 1);
        logf_(w, "reconnected");
        rc = belt__broker_ensure_group(w->rd, w->ns, "0", msg, n);
        if (rc == BELT_EBUSY)
            rc = BELT_OK; /* logged by the next failing read */
    }
    return rc == BELT_EIO ? BELT_OK : rc; /* EIO: the loop tries again */
}

/* The reader loop; returns BELT_OK when stopped, or a fatal code. */
static int reader_loop(belt__broker_worker *w, char *msg, size_t n)
{
    int64_t now = belt__now_mono();
    int64_t next_hb = now, next_refresh = now + w->visibility_ns / 3;
    int64_t next_reclaim = now; /* at start: orphans of a crashed worker */
    char err[512];
    int64_t busy_delay = BELT__BROKER_BACKOFF_FIRST_NS;
    while (!atomic_load(&w->stopping)) {
        int rc = BELT_OK;
        err[0] = '\0';
        unsigned inflight;
        int64_t deadline = next_hb < next_refresh ? next_hb : next_refresh;
        if (next_reclaim < deadline)
            deadline = next_reclaim;
        unsigned free_slots = wait_slots(w, deadline, &inflight);
        if (atomic_load(&w->stopping))
            break;
        now = belt__now_mono();
        if (now >= next_hb) {
            rc = heartbeat(w, inflight);
            next_hb = now + HEARTBEAT_NS;
        }
        if (rc == BELT_OK && now >= next_refresh) {
            rc = refresh_claims(w);
            next_refresh = now + w->visibility_ns / 3;
        }
        if (rc == BELT_OK && now >= next_reclaim && free_slots > 0) {
            rc = reclaim(w, free_slots);
            next_reclaim = now + w->visibility_ns / 2;
            free_slots = wait_slots(w, 0, &inflight);
        }
        if (rc == BELT_OK && free_slots > 0) {
            deadline = next_hb < next_refresh ? next_hb : next_refresh;
            if (next_reclaim < deadline)
                deadline = next_reclaim;
            /* Idle with read-ahead allowed: block only until it expires
             * (current_cap()), so a new batch is not read on a stale mean.
             * Once per idle period, not a loop: after that the cap is the
             * slots until a job finishes. */
            int64_t stale = atomic_load(&w->last_result_ns) +
                            PREFETCH_STALE_NS + 1000000;
            if (inflight == 0 && free_slots > w->slots && stale < deadline)
                deadline = stale;
            int64_t block = deadline - belt__now_mono();
            rc = read_new(w, free_slots, block, err, sizeof err);
        }
        if (rc == BELT_OK) {
            busy_delay = BELT__BROKER_BACKOFF_FIRST_NS;
            continue;
        }
        if (atomic_load(&w->stopping))
            break;
        if (rc == BELT_EBUSY) { /* an error reply: back off, keep going */
            logf_(w, "%s; retrying", err);
            if (pause_backoff(w->stop_fd, &busy_delay))
                break;
            continue;
        }
        if (rc != BELT_EIO) {
            return belt__errf(msg, n, rc, "%s", belt_strerror(rc));
        }
        if (err[0] == '\0')
            snprintf(err, sizeof err, "connection to Redis lost");
        rc = reader_reconnect(w, err, msg, n);
        err[0] = '\0';
        if (rc == BELT_ECANCELED)
            break;
        if (rc != BELT_OK)
            return rc;
    }
    return BELT_OK;
}

int belt__broker_worker_run(belt__broker_worker *w, char *msg, size_t n)
{
    if (w == NULL)
        return BELT_EINVAL;
    w->results = belt_chan_unbounded(sizeof(belt_result *));
    if (w->results == NULL) {
        return belt__errf(msg, n, BELT_ENOMEM, "out of memory");
    }
    belt_pool_options po;
    belt_pool_options_init(&po);
    po.workers = w->slots;
    po.queue_capacity = w->cap_max + 1;
    belt_pool *pool;
    int rc = belt_pool_create(&pool, &po, w->results);
    if (rc != BELT_OK) {
        snprintf(msg, n, "cannot start the pool: %s", belt_strerror(rc));
        belt_chan_free(w->results);
        return rc;
    }
    pthread_t pub;
    int e = pthread_create(&pub, NULL, publisher_main, w);
    if (e != 0) {
        snprintf(msg, n, "cannot start a thread: %s", strerror(e));
        belt_pool_free(pool);
        belt_chan_free(w->results);
        return BELT_ESYS;
    }
    pthread_mutex_lock(&w->mu);
    w->pool = pool;
    w->running = true;
    pthread_mutex_unlock(&w->mu);
    if (atomic_load(&w->killed))
        belt_pool_cancel(pool);

    char where[400];
    logf_(w, "worker %s serving %s on %s with %u slots",
          w->id, w->jobs_key, belt__broker_url_describe(&w->url, where,
                                                       sizeof where),
          w->slots);
    rc = reader_loop(w, msg, n);
    if (rc != BELT_OK)
        belt__broker_worker_kill(w);

    /* Stop: finish what runs (or cancel it after kill()), then let the
     * publisher publish and ack everything and end on the closed channel. */
    belt_pool_shutdown(pool);
    belt_chan_close(w->results);
    pthread_join(pub, NULL);
    pthread_mutex_lock(&w->mu);
    w->running = false;
    w->pool = NULL;
    pthread_mutex_unlock(&w->mu);
    belt_pool_free(pool);
    belt_chan_free(w->results);
    w->results = NULL;
    if (rc == BELT_OK && w->fatal != 0) {
        rc = w->fatal;
        snprintf(msg, n, "%s", w->fatal_msg);
    }

    /* Leave the worker table (the reader's connection may have been shut
     * down by stop(): one fresh try). */
    if (!atomic_load(&w->killed) || rc == BELT_OK) {
        char m[256];
        if (!belt__broker_connected(w->rd))
            belt__broker_reconnect(w->rd, m, sizeof m);
        const char *argv[3] = { "HDEL", w->workers_key, w->id };
        redisReply *r = belt__broker_command(w->rd, 3, argv, NULL, m,
                                             sizeof m);
        if (r != NULL)
            freeReplyObject(r);
    }
    return rc;
}
