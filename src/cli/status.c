/* status.c: `belt status --broker URL [--namespace P] [--json]`: what a
 * Redis broker holds for belt, read-only.
 *
 *   runs        <P>:runs, written by each `belt run --broker`: state
 *               (running, done, canceled), jobs, done, failed, host, times
 *   queue       <P>:jobs: XLEN (entries not yet acknowledged: waiting plus
 *               in flight, since workers delete what they acknowledge), and
 *               what is really there: the entries are read (XRANGE, up to
 *               SCAN_MAX) and counted as waiting when their id is above the
 *               group's last-delivered-id (XINFO GROUPS), in flight when
 *               not.  The group's own "lag" and "pending" are not used: lag
 *               goes stale when entries are deleted (a canceled run), and
 *               the pending list still names entries deleted while pending.
 *   in flight   XPENDING <P>:jobs workers - + (the extended form): delivered
 *               and not yet acknowledged, per worker (consumer), counting
 *               only entries that still exist
 *   dead        <P>:dead: XLEN and the last few entries (XREVRANGE) with
 *               their reasons
 *   workers     <P>:workers, the heartbeat hash: each worker's host, pid,
 *               slots, key id and when it was last seen; one not seen for
 *               STALE_S seconds is marked stale (killed without a goodbye)
 *
 * A run in state "running" whose submitter has not written its record for
 * STALE_S seconds is marked stale too (its submitter was killed: `belt run
 * --broker --resume` continues it, or its result stream expires).
 *
 * One connection, one command after another; the picture is not atomic (a
 * job may move between two reads).  --json prints one JSON object with the
 * same content (keys: broker, namespace, time, runs, queue, in_flight,
 * dead, workers) for scripts and tests.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "cli/cli.h"
#include "app/report.h"

#define DEAD_SHOWN 5     /* last dead letters listed */
#define STALE_S 60       /* a heartbeat older than this: stale */
#define RUNS_SHOWN 20    /* text: most recent runs listed */
#define SCAN_MAX 200000  /* queue entries read at most */
#define SCAN_CHUNK "2000"

static void status_usage(FILE *out)
{
    fputs(
        "usage: belt status --broker URL [--namespace P] [--json]\n"
        "\n"
        "Shows what the Redis broker at URL holds for belt: the runs of `belt\n"
        "run --broker` (state and job counts), the queue depth, the jobs in\n"
        "flight per worker, the dead-lettered jobs (with the last few reasons)\n"
        "and the live workers (from their heartbeats).  Reads only.\n"
        "\n"
        "options:\n"
        "      --broker URL     redis://[[user]:password@]host[:port][/db] or\n"
        "                       unix:///path/redis.sock (password also from\n"
        "                       $BELT_REDIS_PASSWORD)\n"
        "      --namespace P    prefix of the broker's keys (default \"belt\")\n"
        "      --json           one JSON object instead of text\n"
        "  -h, --help           show this help\n"
        "\n"
        "exit status: 0 shown, 1 a command failed, 2 usage error or the broker\n"
        "cannot be reached or refuses the password.  See belt-worker(1).\n",
        out);
}

struct st {
    belt__broker *b;
    char msg[600];
    int rc;                 /* first error */
};

/* Runs a command; NULL after recording the error. */
static redisReply *cmd(struct st *s, int argc, const char **argv)
{
    if (s->rc != BELT_OK)
        return NULL;
    redisReply *r = belt__broker_command(s->b, argc, argv, NULL, s->msg,
                                         sizeof s->msg);
    if (r == NULL) {
        s->rc = BELT_EIO;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* A key of another type, an old server: say so, go on. */
        char m[300];
        fprintf(stderr, "belt status: %s\n",
                belt__broker_reply_error(r, argv[0], m, sizeof m));
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static long long integer_of(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

static long long xlen(struct st *s, const char *key)
{
    const char *argv[] = {"XLEN", key};
    redisReply *r = cmd(s, 2, argv);
    long long n = integer_of(r);
    if (r)
        freeReplyObject(r);
    return n;
}

/* A hash of JSON values (HGETALL) as an array of objects, each with "id"
 * added.  Entries whose value is not a JSON object are kept as
 * {"id", "raw"}. */
static json_t *hash_objects(struct st *s, const char *key)
{
    json_t *arr = json_array();
    const char *argv[] = {"HGETALL", key};
    redisReply *r = cmd(s, 2, argv);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return arr;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        json_t *o = json_loadb(v->str, v->len, 0, NULL);
        if (!json_is_object(o)) {
            json_decref(o);
            o = json_object();
            json_object_set_new(o, "raw", json_stringn(v->str, v->len));
        }
        json_object_set_new(o, "id", json_stringn(k->str, k->len));
        json_array_append_new(arr, o);
    }
    freeReplyObject(r);
    return arr;
}

static long long jint(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? (long long)json_number_value(v) : 0;
}

static const char *jtext(const json_t *o, const char *key)
{
    const char *t = json_string_value(json_object_get(o, key));
    return t ? t : "-";
}

static int by_started_desc(const void *a, const void *b)
{
    long long x = jint(*(json_t *const *)a, "started");
    long long y = jint(*(json_t *const *)b, "started");
    return (x < y) - (x > y);
}

/* Sorts an array of objects by "started", newest first. */
static void sort_runs(json_t *runs)
{
    size_t n = json_array_size(runs);
    if (n < 2)
        return;
    json_t **v = malloc(n * sizeof *v);
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(runs, i));
    qsort(v, n, sizeof *v, by_started_desc);
    json_array_clear(runs);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(runs, v[i]);
    free(v);
}

/* A stream id as two numbers, for comparing. */
typedef struct sid {
    unsigned long long ms, seq;
} sid;

static bool parse_sid(const char *s, sid *out)
{
    return s != NULL && sscanf(s, "%llu-%llu", &out->ms, &out->seq) == 2;
}

static int sid_cmp(const sid *a, const sid *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* The entries of the job stream, as ids in order (the scan of the essay). */
typedef struct scan {
    sid *ids;
    size_t n, cap;
    bool truncated;    /* more than SCAN_MAX */
} scan;

static void scan_jobs(struct st *s, const char *key, scan *sc)
{
    char start[64] = "-";
    while (sc->n < SCAN_MAX) {
        const char *argv[] = {"XRANGE", key, start, "+", "COUNT", SCAN_CHUNK};
        redisReply *r = cmd(s, 6, argv);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return;
        }
        size_t got = r->elements;
        for (size_t i = 0; i < got; i++) {
            const redisReply *e = r->element[i];
            sid id;
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
                !parse_sid(e->element[0]->str, &id))
                continue;
            if (sc->n == sc->cap) {
                size_t cap = sc->cap ? 2 * sc->cap : 1024;
                sid *ni = realloc(sc->ids, cap * sizeof *ni);
                if (ni == NULL)
                    break;
                sc->ids = ni;
                sc->cap = cap;
            }
            sc->ids[sc->n++] = id;
            snprintf(start, sizeof start, "(%s", e->element[0]->str);
        }
        freeReplyObject(r);
        if (got < (size_t)atoi(SCAN_CHUNK))
            return;
    }
    sc->truncated = true;
}

static bool scan_has(const scan *sc, const sid *id)
{
    size_t lo = 0, hi = sc->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = sid_cmp(&sc->ids[mid], id);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* XINFO GROUPS: the "workers" group's last-delivered-id into *last; false
 * when there is no such group (then nothing was ever delivered). */
static bool last_delivered(struct st *s, const char *key, sid *last)
{
    const char *argv[] = {"XINFO", "GROUPS", key};
    redisReply *r = cmd(s, 3, argv);
    bool found = false;
    for (size_t g = 0; r && r->type == REDIS_REPLY_ARRAY && g < r->elements;
         g++) {
        const redisReply *gr = r->element[g];
        if (gr->type != REDIS_REPLY_ARRAY)
            continue;
        bool ours = false;
        sid id = {0, 0};
        bool have = false;
        for (size_t i = 0; i + 1 < gr->elements; i += 2) {
            const redisReply *k = gr->element[i], *v = gr->element[i + 1];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0)
                ours = v->type == REDIS_REPLY_STRING &&
                       strcmp(v->str, BELT__BROKER_GROUP) == 0;
            else if (strcmp(k->str, "last-delivered-id") == 0 &&
                     v->type == REDIS_REPLY_STRING)
                have = parse_sid(v->str, &id);
        }
        if (ours && have) {
            *last = id;
            found = true;
        }
    }
    if (r)
        freeReplyObject(r);
    return found;
}

/* The queue object (length, waiting, pending, truncated) and the in-flight
 * array, from one scan (see the essay). */
static void queue_info(struct st *s, const char *key, json_t *queue,
                       json_t **flight)
{
    *flight = json_array();
    long long len = xlen(s, key);
    json_object_set_new(queue, "length", json_integer(len));
    scan sc = {0};
    sid last = {0, 0};
    bool group = false;
    if (len > 0) {
        group = last_delivered(s, key, &last);
        scan_jobs(s, key, &sc);
    }
    long long waiting = 0, pending = 0;
    for (size_t i = 0; i < sc.n; i++) {
        if (!group || sid_cmp(&sc.ids[i], &last) > 0)
            waiting++;
        else
            pending++;
    }
    json_object_set_new(queue, "waiting", json_integer(waiting));
    json_object_set_new(queue, "pending", json_integer(pending));
    json_object_set_new(queue, "truncated", json_boolean(sc.truncated));
    if (pending > 0) {
        /* Per consumer, only entries that still exist. */
        char count[24];
        snprintf(count, sizeof count, "%d", SCAN_MAX);
        const char *argv[] = {"XPENDING", key, BELT__BROKER_GROUP, "-", "+",
                              count};
        redisReply *r = cmd(s, 6, argv);
        json_t *per = json_object();
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY &&
                           i < r->elements; i++) {
            const redisReply *p = r->element[i];
            sid id;
            if (p->type != REDIS_REPLY_ARRAY || p->elements < 2 ||
                p->element[1]->type != REDIS_REPLY_STRING ||
                !parse_sid(p->element[0]->str, &id) || !scan_has(&sc, &id))
                continue;
            const char *who = p->element[1]->str;
            json_object_set_new(per, who, json_integer(
                json_integer_value(json_object_get(per, who)) + 1));
        }
        if (r)
            freeReplyObject(r);
        const char *who;
        json_t *v;
        json_object_foreach(per, who, v) {
            json_t *o = json_object();
            json_object_set_new(o, "worker", json_string(who));
            json_object_set_new(o, "count", json_incref(v));
            json_array_append_new(*flight, o);
        }
        json_decref(per);
    }
    free(sc.ids);
}

/* The last DEAD_SHOWN entries of the dead-letter stream. */
static json_t *dead_last(struct st *s, const char *key)
{
    json_t *arr = json_array();
    char count[16];
    snprintf(count, sizeof count, "%d", DEAD_SHOWN);
    const char *argv[] = {"XREVRANGE", key, "+", "-", "COUNT", count};
    redisReply *r = cmd(s, 6, argv);
    if (r == NULL)
        return arr;
    belt__broker_entry es[DEAD_SHOWN];
    int n = belt__broker_entries(r, es, DEAD_SHOWN);
    static const char *const fields[] = {"run", "key", "reason",
                                         "deliveries", "worker"};
    for (int i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(es[i].id));
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
            size_t len = 0;
            const char *v = belt__broker_entry_get(&es[i], fields[f], &len);
            json_object_set_new(o, fields[f],
                                v ? json_stringn(v, len) : json_null());
        }
        json_array_append_new(arr, o);
    }
    freeReplyObject(r);
    return arr;
}

static void print_time(FILE *out, long long unix_s)
{
    char buf[48];
    if (unix_s <= 0) {
        fputs("-", out);
        return;
    }
    belt__format_time((int64_t)unix_s * 1000000000, buf, sizeof buf);
    buf[19] = '\0'; /* to the second */
    buf[10] = ' ';
    fprintf(out, "%s", buf);
}

static void print_text(FILE *out, const json_t *all)
{
    fprintf(out, "broker %s, namespace \"%s\"\n",
            jtext(all, "broker"), jtext(all, "namespace"));

    const json_t *runs = json_object_get(all, "runs");
    size_t nr = json_array_size(runs);
    fprintf(out, "\nruns: %zu\n", nr);
    if (nr > 0)
        fprintf(out, "  %-36s %-9s %7s %7s %7s  %-19s  %s\n", "RUN", "STATE",
                "JOBS", "DONE", "FAILED", "STARTED (UTC)", "HOST");
    for (size_t i = 0; i < nr && i < RUNS_SHOWN; i++) {
        const json_t *r = json_array_get(runs, i);
        fprintf(out, "  %-36s %-9s %7lld %7lld %7lld  ", jtext(r, "id"),
                json_is_true(json_object_get(r, "stale")) ? "stale"
                                                          : jtext(r, "state"),
                jint(r, "jobs"), jint(r, "done"), jint(r, "failed"));
        print_time(out, jint(r, "started"));
        fprintf(out, "  %s\n", jtext(r, "host"));
    }
    if (nr > RUNS_SHOWN)
        fprintf(out, "  ... and %zu older\n", nr - RUNS_SHOWN);

    const json_t *q = json_object_get(all, "queue");
    const json_t *w = json_object_get(q, "waiting");
    const json_t *p = json_object_get(q, "pending");
    fprintf(out, "\nqueue: %lld entr%s in %s:jobs", jint(q, "length"),
            jint(q, "length") == 1 ? "y" : "ies", jtext(all, "namespace"));
    if (json_is_integer(w))
        fprintf(out, ", %lld waiting", (long long)json_integer_value(w));
    if (json_is_integer(p))
        fprintf(out, ", %lld in flight", (long long)json_integer_value(p));
    if (json_is_true(json_object_get(q, "truncated")))
        fprintf(out, " (of the first %d)", SCAN_MAX);
    fputc('\n', out);

    const json_t *fl = json_object_get(all, "in_flight");
    if (json_array_size(fl) > 0) {
        fprintf(out, "in flight per worker:\n");
        for (size_t i = 0; i < json_array_size(fl); i++) {
            const json_t *o = json_array_get(fl, i);
            fprintf(out, "  %-40s %lld\n", jtext(o, "worker"),
                    jint(o, "count"));
        }
    }

    const json_t *d = json_object_get(all, "dead");
    fprintf(out, "\ndead letters: %lld\n", jint(d, "length"));
    const json_t *last = json_object_get(d, "last");
    for (size_t i = 0; i < json_array_size(last); i++) {
        const json_t *o = json_array_get(last, i);
        fprintf(out, "  %s (run %s, %s deliveries, last on %s): %s\n",
                jtext(o, "key"), jtext(o, "run"), jtext(o, "deliveries"),
                jtext(o, "worker"), jtext(o, "reason"));
    }

    const json_t *ws = json_object_get(all, "workers");
    size_t live = 0;
    for (size_t i = 0; i < json_array_size(ws); i++)
        live += !json_is_true(json_object_get(json_array_get(ws, i), "stale"));
    fprintf(out, "\nworkers: %zu live", live);
    if (json_array_size(ws) > live)
        fprintf(out, ", %zu stale (no heartbeat for %ds)",
                json_array_size(ws) - live, STALE_S);
    fputc('\n', out);
    for (size_t i = 0; i < json_array_size(ws); i++) {
        const json_t *o = json_array_get(ws, i);
        fprintf(out, "  %-40s %-20s slots %-4lld key %-8s seen %llds ago%s\n",
                jtext(o, "id"), jtext(o, "host"), jint(o, "slots"),
                jtext(o, "key"), jint(o, "age_s"),
                json_is_true(json_object_get(o, "stale")) ? " (stale)" : "");
    }
}

int belt__cli_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},
        {"namespace", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url_text = NULL, *ns = BELT__BROKER_DEFAULT_NS;
    bool as_json = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': url_text = optarg; break;
        case 'n': ns = optarg; break;
        case 'J': as_json = true; break;
        case 'h':
            status_usage(stdout);
            return 0;
        default:
            return belt__cli_bad_option("status", c, argv, opts);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "belt status: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (url_text == NULL) {
        fprintf(stderr, "belt status: --broker URL is required (e.g. "
                "redis://127.0.0.1:6379)\n");
        return 2;
    }
    belt__broker_url url;
    struct st s = {.rc = BELT_OK};
    if (belt__broker_url_parse(url_text, &url, s.msg, sizeof s.msg) !=
        BELT_OK) {
        fprintf(stderr, "belt status: --broker: %s\n", s.msg);
        return 2;
    }
    char k_jobs[300], k_dead[300], k_runs[300], k_workers[300];
    if (belt__broker_key(k_jobs, sizeof k_jobs, ns, "jobs") ||
        belt__broker_key(k_dead, sizeof k_dead, ns, "dead") ||
        belt__broker_key(k_runs, sizeof k_runs, ns, "runs") ||
        belt__broker_key(k_workers, sizeof k_workers, ns, "workers")) {
        fprintf(stderr, "belt status: --namespace: too long\n");
        return 2;
    }
    int rc = belt__broker_connect(&s.b, &url, 0, s.msg, sizeof s.msg);
    if (rc != BELT_OK) {
        fprintf(stderr, "belt status: --broker: %s\n", s.msg);
        return rc == BELT_ENOMEM ? 1 : 2;
    }

    char desc[400];
    long long now = (long long)time(NULL);
    json_t *all = json_object();
    json_object_set_new(all, "broker", json_string(
        belt__broker_url_describe(&url, desc, sizeof desc)));
    json_object_set_new(all, "namespace", json_string(ns));
    json_object_set_new(all, "time", json_integer(now));

    json_t *runs = hash_objects(&s, k_runs);
    sort_runs(runs);
    for (size_t i = 0; i < json_array_size(runs); i++) {
        json_t *o = json_array_get(runs, i);
        const char *state = json_string_value(json_object_get(o, "state"));
        long long seen = jint(o, "seen");
        bool stale = state && strcmp(state, "running") == 0 && seen > 0 &&
                     now - seen > STALE_S;
        json_object_set_new(o, "stale", json_boolean(stale));
    }
    json_object_set_new(all, "runs", runs);

    json_t *queue = json_object(), *flight;
    queue_info(&s, k_jobs, queue, &flight);
    json_object_set_new(all, "queue", queue);
    json_object_set_new(all, "in_flight", flight);

    json_t *dead = json_object();
    json_object_set_new(dead, "length", json_integer(xlen(&s, k_dead)));
    json_object_set_new(dead, "last", dead_last(&s, k_dead));
    json_object_set_new(all, "dead", dead);

    json_t *workers = hash_objects(&s, k_workers);
    for (size_t i = 0; i < json_array_size(workers); i++) {
        json_t *o = json_array_get(workers, i);
        long long seen = jint(o, "seen");
        long long age = seen > 0 && now > seen ? now - seen : 0;
        json_object_set_new(o, "age_s", json_integer(age));
        json_object_set_new(o, "stale", json_boolean(age > STALE_S));
    }
    json_object_set_new(all, "workers", workers);
    belt__broker_close(s.b);

    if (s.rc != BELT_OK) {
        fprintf(stderr, "belt status: --broker: %s\n", s.msg);
        json_decref(all);
        return 1;
    }
    int status = 0;
    if (as_json) {
        if (json_dumpf(all, stdout, JSON_COMPACT) != 0 ||
            fputc('\n', stdout) == EOF)
            status = 1;
    } else {
        print_text(stdout, all);
    }
    json_decref(all);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
