/* check_broker.c: the Redis broker's pieces (src/broker*.c).
 *
 *   url     URL parsing: the accepted forms, typos refused with the expected
 *           forms in the message, the password from the environment
 *   codec   belt_job <-> JSON round trip of every field, decoding errors,
 *           the published result record, key names
 *   redis   the worker engine against a real redis-server (started by each
 *           test on a unix socket in a temporary directory, no
 *           persistence): every job answered once and acked and deleted;
 *           an entry abandoned by a dead consumer reclaimed, one delivered
 *           too often dead-lettered; a graceful stop finishing the running
 *           job; Redis dying mid-job and coming back; connection errors
 *           (no server, wrong or missing password).
 *           Without redis-server in PATH these tests pass with a note.
 *   sign    key files (what is refused and why), the signature over an
 *           entry's fields against an HMAC computed apart (the framing is
 *           the wire format), every change to a signed entry detected
 *           (a job's fields, a result entry's records, the run bound in),
 *           both keys of a rotation accepted, a worker that refuses
 *           unsigned and forged jobs and never runs them.
 */
#include <check.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "test_util.h"

/* ---- url ---------------------------------------------------------------- */

static void parse_ok(const char *text, belt__broker_url *u)
{
    char msg[300];
    int rc = belt__broker_url_parse(text, u, msg, sizeof msg);
    ck_assert_msg(rc == BELT_OK, "%s: %s", text, msg);
}

START_TEST(test_url_forms)
{
    unsetenv("BELT_REDIS_PASSWORD");
    unsetenv("REDISCLI_AUTH");
    belt__broker_url u;
    parse_ok("redis://localhost", &u);
    ck_assert(!u.is_unix);
    ck_assert_str_eq(u.host, "localhost");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);
    ck_assert_str_eq(u.password, "");
    ck_assert_str_eq(u.user, "");

    parse_ok("redis://:secret@10.0.0.5:6380/2", &u);
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 2);
    ck_assert_str_eq(u.password, "secret");
    ck_assert_str_eq(u.user, "");
    ck_assert(!u.password_from_env);

    parse_ok("redis://alice:p%40ss%3Aw@h:1/", &u);
    ck_assert_str_eq(u.user, "alice");
    ck_assert_str_eq(u.password, "p@ss:w");
    ck_assert_int_eq(u.port, 1);
    ck_assert_int_eq(u.db, 0);

    parse_ok("redis://justpw@h", &u); /* as redis-cli: the password */
    ck_assert_str_eq(u.password, "justpw");
    ck_assert_str_eq(u.user, "");

    parse_ok("redis://[::1]:7000/1", &u);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 1);

    parse_ok("unix:///run/redis/redis.sock", &u);
    ck_assert(u.is_unix);
    ck_assert_str_eq(u.path, "/run/redis/redis.sock");
    ck_assert_int_eq(u.db, 0);

    parse_ok("unix:///tmp/r.sock?db=3&password=pw", &u);
    ck_assert(u.is_unix);
    ck_assert_str_eq(u.path, "/tmp/r.sock");
    ck_assert_int_eq(u.db, 3);
    ck_assert_str_eq(u.password, "pw");

    char buf[300];
    parse_ok("redis://:secret@h:6380/2", &u);
    belt__broker_url_describe(&u, buf, sizeof buf);
    ck_assert_str_eq(buf, "redis://h:6380/2");
    ck_assert_ptr_null(strstr(buf, "secret"));
    parse_ok("redis://[::1]", &u);
    ck_assert_str_eq(belt__broker_url_describe(&u, buf, sizeof buf),
                     "redis://[::1]:6379/0");
    parse_ok("unix:///tmp/r.sock?db=3", &u);
    ck_assert_str_eq(belt__broker_url_describe(&u, buf, sizeof buf),
                     "unix:///tmp/r.sock?db=3");
}
END_TEST

START_TEST(test_url_typos)
{
    static const struct {
        const char *url, *want; /* want: a piece of the message */
    } cases[] = {
        { "redis:/host", "expected redis://host:port or unix:///path" },
        { "http://host:6379", "expected redis://host:port or unix:///path" },
        { "host:6379", "expected redis://host:port or unix:///path" },
        { "redis//host", "expected redis://host:port or unix:///path" },
        { "", "expected redis://host:port or unix:///path" },
        { "redis://", "no host name" },
        { "redis://:pw@", "no host name" },
        { "redis://h:0", "bad port" },
        { "redis://h:99999", "bad port" },
        { "redis://h:63a9", "bad port" },
        { "redis://h:", "bad port" },
        { "redis://h/x", "bad database number" },
        { "redis://h:6379?db=1", "unexpected" },
        { "redis://[::1", "missing ']'" },
        { "redis://:p%4@h", "bad password" },
        { "rediss://h", "TLS" },
        { "unix://relative/r.sock", "must be absolute" },
        { "unix:///r.sock?db=x", "bad db number" },
        { "unix:///r.sock?foo=1", "unknown query parameter" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        belt__broker_url u;
        char msg[300] = "";
        int rc = belt__broker_url_parse(cases[i].url, &u, msg, sizeof msg);
        ck_assert_msg(rc == BELT_EINVAL, "%s: accepted", cases[i].url);
        ck_assert_msg(strstr(msg, cases[i].want) != NULL,
                      "%s: message \"%s\" lacks \"%s\"", cases[i].url, msg,
                      cases[i].want);
    }
    char msg[64];
    ck_assert_int_eq(belt__broker_url_parse(NULL, NULL, msg, sizeof msg),
                     BELT_EINVAL);
}
END_TEST

START_TEST(test_url_env_password)
{
    belt__broker_url u;
    unsetenv("BELT_REDIS_PASSWORD");
    setenv("REDISCLI_AUTH", "fromcli", 1);
    parse_ok("redis://h", &u);
    ck_assert_str_eq(u.password, "fromcli");
    ck_assert(u.password_from_env);

    setenv("BELT_REDIS_PASSWORD", "frombelt", 1);
    parse_ok("redis://h", &u);
    ck_assert_str_eq(u.password, "frombelt");
    parse_ok("unix:///s.sock", &u);
    ck_assert_str_eq(u.password, "frombelt");

    parse_ok("redis://:inurl@h", &u); /* the URL wins */
    ck_assert_str_eq(u.password, "inurl");
    ck_assert(!u.password_from_env);

    setenv("BELT_REDIS_PASSWORD", "", 1); /* empty: next variable */
    parse_ok("redis://h", &u);
    ck_assert_str_eq(u.password, "fromcli");
    unsetenv("REDISCLI_AUTH");
    parse_ok("redis://h", &u);
    ck_assert_str_eq(u.password, "");
    ck_assert(!u.password_from_env);
}
END_TEST

/* ---- codec -------------------------------------------------------------- */

static belt_job *roundtrip(const belt_job *j)
{
    char *s = belt__broker_job_to_json(j);
    ck_assert_ptr_nonnull(s);
    belt_job *out = NULL;
    char msg[300];
    int rc = belt__broker_job_from_json(s, &out, msg, sizeof msg);
    ck_assert_msg(rc == BELT_OK, "%s: %s", s, msg);
    free(s);
    return out;
}

START_TEST(test_codec_roundtrip)
{
    char *argv[] = { "printf", "%s\n", "a b", "\xc3\xa9", NULL };
    char *env[] = { "A=1", "B=two words", NULL };
    belt_job j;
    belt_job_init(&j);
    j.id = "job \"1\"";
    j.kind = BELT_JOB_EXEC;
    j.argv = argv;
    j.env = env;
    j.cwd = "/tmp";
    j.stdin_path = "/dev/null";
    j.duration_ns = 12345;
    j.timeout_ns = INT64_C(30000000000);
    j.kill_grace_ns = -1;
    j.retries = 7;
    j.retry_delay_ns = 250000000;
    j.retry_max_delay_ns = INT64_C(9000000000);
    j.output = BELT_OUTPUT_FILES;
    j.output_limit = 4096;
    j.output_dir = "out dir";
    j.seq = UINT64_C(1) << 40;
    j.user = &j; /* not sent */
    belt_job *d = roundtrip(&j);
    ck_assert_str_eq(d->id, j.id);
    ck_assert_int_eq(d->kind, BELT_JOB_EXEC);
    ck_assert_ptr_null(d->run);
    for (int i = 0; argv[i]; i++)
        ck_assert_str_eq(d->argv[i], argv[i]);
    ck_assert_ptr_null(d->argv[4]);
    ck_assert_str_eq(d->env[0], "A=1");
    ck_assert_str_eq(d->env[1], "B=two words");
    ck_assert_ptr_null(d->env[2]);
    ck_assert_str_eq(d->cwd, "/tmp");
    ck_assert_str_eq(d->stdin_path, "/dev/null");
    ck_assert(d->duration_ns == 12345);
    ck_assert(d->timeout_ns == INT64_C(30000000000));
    ck_assert(d->kill_grace_ns == -1);
    ck_assert_uint_eq(d->retries, 7);
    ck_assert(d->retry_delay_ns == 250000000);
    ck_assert(d->retry_max_delay_ns == INT64_C(9000000000));
    ck_assert_int_eq(d->output, BELT_OUTPUT_FILES);
    ck_assert_uint_eq(d->output_limit, 4096);
    ck_assert_str_eq(d->output_dir, "out dir");
    ck_assert(d->seq == UINT64_C(1) << 40);
    ck_assert_ptr_null(d->user);
    belt__broker_job_free(d);

    /* run form, and every kind and output mode by name */
    static const belt_job_kind kinds[] = { BELT_JOB_EXEC, BELT_JOB_SLEEP,
                                           BELT_JOB_SPIN, BELT_JOB_NOOP };
    for (int k = 0; k < 4; k++) {
        for (int o = BELT_OUTPUT_CAPTURE; o <= BELT_OUTPUT_DISCARD; o++) {
            belt_job_init(&j);
            j.id = "r";
            j.kind = kinds[k];
            j.run = kinds[k] == BELT_JOB_EXEC ? "echo hi" : NULL;
            j.output = (belt_output_mode)o;
            d = roundtrip(&j);
            ck_assert_int_eq(d->kind, kinds[k]);
            ck_assert_int_eq(d->output, o);
            if (j.run)
                ck_assert_str_eq(d->run, "echo hi");
            else
                ck_assert_ptr_null(d->run);
            ck_assert_ptr_null(d->argv);
            ck_assert_ptr_null(d->env);
            ck_assert_ptr_null(d->cwd);
            ck_assert_ptr_null(d->output_dir);
            belt__broker_job_free(d);
        }
    }
    belt__broker_job_free(NULL);
}
END_TEST

START_TEST(test_codec_defaults_and_errors)
{
    belt_job *d = NULL, def;
    belt_job_init(&def);
    char msg[300];
    ck_assert_int_eq(belt__broker_job_from_json(
                         "{\"id\":\"x\",\"run\":\"true\",\"new_key\":1}", &d,
                         msg, sizeof msg), BELT_OK);
    ck_assert_str_eq(d->id, "x");
    ck_assert_int_eq(d->kind, def.kind);
    ck_assert(d->kill_grace_ns == def.kill_grace_ns);
    ck_assert(d->retry_delay_ns == def.retry_delay_ns);
    ck_assert(d->retry_max_delay_ns == def.retry_max_delay_ns);
    ck_assert_uint_eq(d->output_limit, def.output_limit);
    ck_assert_int_eq(d->output, def.output);
    belt__broker_job_free(d);

    static const struct {
        const char *json, *want;
    } bad[] = {
        { "not json", "job JSON" },
        { "[1]", "expected an object" },
        { "{\"run\":1}", "\"run\" must be a string" },
        { "{\"run\":\"x\",\"timeout_ns\":\"5\"}", "\"timeout_ns\" must be an "
          "integer" },
        { "{\"run\":\"x\",\"retries\":-1}", "\"retries\" out of range" },
        { "{\"run\":\"x\",\"kind\":\"teleport\"}", "unknown \"kind\"" },
        { "{\"run\":\"x\",\"output\":\"printer\"}", "unknown \"output\"" },
        { "{\"argv\":[\"a\",2]}", "\"argv\"[1] must be a string" },
        { "{\"env\":\"A=1\",\"run\":\"x\"}", "\"env\" must be an array" },
        { "{\"id\":\"x\"}", "exactly one of" },
        { "{\"run\":\"x\",\"argv\":[\"y\"]}", "exactly one of" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = NULL;
        msg[0] = '\0';
        int rc = belt__broker_job_from_json(bad[i].json, &d, msg, sizeof msg);
        ck_assert_msg(rc == BELT_EINVAL, "%s accepted", bad[i].json);
        ck_assert_ptr_null(d);
        ck_assert_msg(strstr(msg, bad[i].want) != NULL,
                      "%s: \"%s\" lacks \"%s\"", bad[i].json, msg,
                      bad[i].want);
    }
}
END_TEST

START_TEST(test_codec_result)
{
    belt_job j;
    belt_job_init(&j);
    j.id = "k1";
    j.run = "echo";
    belt_result *r = belt_result_new(&j);
    ck_assert_ptr_nonnull(r);
    r->status = BELT_JOB_OK;
    r->exit_code = 0;
    r->attempts = 0;
    r->worker = 3;
    r->out = strdup("\"worker\":null inside output");
    r->out_len = strlen(r->out);
    size_t len = 0;
    char *s = belt__broker_result_json(r, "host\"x", "host\"x:42", 2, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(len, strlen(s));
    json_error_t e;
    json_t *o = json_loads(s, 0, &e);
    ck_assert_msg(o != NULL, "%s: %s", s, e.text);
    ck_assert_str_eq(json_string_value(json_object_get(o, "worker")),
                     "host\"x:42");
    ck_assert_str_eq(json_string_value(json_object_get(o, "host")),
                     "host\"x");
    ck_assert_int_eq(json_integer_value(json_object_get(o, "delivery")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), "k1");
    ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "ok");
    ck_assert_str_eq(json_string_value(json_object_get(o, "stdout")),
                     "\"worker\":null inside output");
    ck_assert_ptr_nonnull(json_object_get(o, "attempt_log"));
    ck_assert_ptr_null(strchr(s, '\n'));
    json_decref(o);
    free(s);
    belt_result_free(r);
}
END_TEST

START_TEST(test_keys)
{
    char buf[64];
    ck_assert_int_eq(belt__broker_key(buf, sizeof buf, NULL, "jobs"),
                     BELT_OK);
    ck_assert_str_eq(buf, "belt:jobs");
    ck_assert_int_eq(belt__broker_key(buf, sizeof buf, "p", "dead"), BELT_OK);
    ck_assert_str_eq(buf, "p:dead");
    ck_assert_int_eq(belt__broker_key_results(buf, sizeof buf, "p", "r1"),
                     BELT_OK);
    ck_assert_str_eq(buf, "p:run:r1:results");
    char small[8];
    ck_assert_int_eq(belt__broker_key(small, sizeof small, "toolong", "jobs"),
                     BELT_EINVAL);
    ck_assert_str_eq(small, "");
}
END_TEST

START_TEST(test_meta_roundtrip)
{
    belt_job job;
    belt_job_init(&job);
    job.id = "m";
    belt_result *r = belt_result_new(&job);
    ck_assert_ptr_nonnull(r);
    r->status = BELT_JOB_TIMEOUT;
    r->exit_code = -1;
    r->signal = 9;
    r->attempts = 3;
    r->queued_ns = INT64_C(1700000000123456789);
    r->started_ns = INT64_C(1700000000223456789);
    r->ended_ns = INT64_C(1700000001223456789);
    r->duration_ns = INT64_C(999999999);
    char meta[200];
    ck_assert_int_eq(belt__broker_meta_format(r, meta, sizeof meta), BELT_OK);
    belt_result back;
    memset(&back, 0, sizeof back);
    bool text = true;
    ck_assert_int_eq(belt__broker_meta_parse(meta, strlen(meta), &back,
                                             &text), BELT_OK);
    ck_assert(!text);
    ck_assert_int_eq(back.status, BELT_JOB_TIMEOUT);
    ck_assert_int_eq(back.exit_code, -1);
    ck_assert_int_eq(back.signal, 9);
    ck_assert_uint_eq(back.attempts, 3);
    ck_assert(back.queued_ns == r->queued_ns);
    ck_assert(back.started_ns == r->started_ns);
    ck_assert(back.ended_ns == r->ended_ns);
    ck_assert(back.duration_ns == r->duration_ns);
    /* Text the submitter needs: said so. */
    r->error = strdup("boom");
    ck_assert_int_eq(belt__broker_meta_format(r, meta, sizeof meta), BELT_OK);
    ck_assert_int_eq(belt__broker_meta_parse(meta, strlen(meta), &back,
                                             &text), BELT_OK);
    ck_assert(text);
    /* Too small a buffer, and what a parser must refuse (r untouched). */
    ck_assert_int_eq(belt__broker_meta_format(r, meta, 10), BELT_EINVAL);
    static const char *const bad[] = {
        "", "1", "2 ok 0 0 1 0 0 0 0 0", "1 fine 0 0 1 0 0 0 0 0",
        "1 ok 0 0 1 0 0 0 0", "1 ok 0 0 1 0 0 0 0 0 0", "1 ok 0 0 1 0 0 0 0 2",
        "1 ok x 0 1 0 0 0 0 0", "1 ok 0 0 1 0 0 0 0 0 ", "1 ok  0 0 1 0 0 0 0 0",
        "1 ok 0 0 1 99999999999999999999 0 0 0 0", "1 ok 256 0 1 0 0 0 0 0",
        "1 ok 0 -1 1 0 0 0 0 0", "1 ok 0 0 -1 0 0 0 0 0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&back, 0, sizeof back);
        ck_assert_msg(belt__broker_meta_parse(bad[i], strlen(bad[i]), &back,
                                              &text) == BELT_EINVAL,
                      "accepted '%s'", bad[i]);
        ck_assert_int_eq(back.attempts, 0);
    }
    belt_result_free(r);
}
END_TEST

/* A fake entry reply: fields given as a NULL-terminated name/value list. */
static redisReply *fake_fields(const char *const *kv)
{
    size_t n = 0;
    while (kv[n])
        n++;
    redisReply *a = calloc(1, sizeof *a);
    a->type = REDIS_REPLY_ARRAY;
    a->elements = n;
    a->element = calloc(n, sizeof *a->element);
    for (size_t i = 0; i < n; i++) {
        redisReply *e = calloc(1, sizeof *e);
        e->type = REDIS_REPLY_STRING;
        e->str = (char *)kv[i];
        e->len = strlen(kv[i]);
        a->element[i] = e;
    }
    return a;
}

static void fake_free(redisReply *a)
{
    for (size_t i = 0; i < a->elements; i++)
        free(a->element[i]);
    free(a->element);
    free(a);
}

START_TEST(test_entry_records)
{
    static const char *const three[] = { "key", "a", "meta", "ma", "result",
        "ra", "key", "b", "result", "rb", "key", "c", "meta", "mc", "result",
        "rc", NULL };
    redisReply *f = fake_fields(three);
    belt__broker_entry e = { "1-0", f, 0, f->elements }, rec[4];
    ck_assert_uint_eq(belt__broker_entry_records(&e, rec, 4), 3);
    static const char *const want[3][3] = { { "a", "ma", "ra" },
                                            { "b", NULL, "rb" },
                                            { "c", "mc", "rc" } };
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(rec[i].id, "1-0");
        ck_assert_str_eq(belt__broker_entry_get(&rec[i], "key", NULL),
                         want[i][0]);
        const char *m = belt__broker_entry_get(&rec[i], "meta", NULL);
        if (want[i][1])
            ck_assert_str_eq(m, want[i][1]);
        else
            ck_assert_ptr_null(m); /* not the next record's */
        ck_assert_str_eq(belt__broker_entry_get(&rec[i], "result", NULL),
                         want[i][2]);
    }
    /* Room for two: the second view runs to the end (its own fields come
     * first, so lookups still find them). */
    ck_assert_uint_eq(belt__broker_entry_records(&e, rec, 2), 2);
    ck_assert_str_eq(belt__broker_entry_get(&rec[1], "key", NULL), "b");
    fake_free(f);

    /* One record in the old layout, a dead letter and our stop entry. */
    static const char *const dead[] = { "key", "d", "reason", "crash",
                                        "deliveries", "3", NULL };
    f = fake_fields(dead);
    e = (belt__broker_entry){ "2-0", f, 0, f->elements };
    ck_assert_uint_eq(belt__broker_entry_records(&e, rec, 4), 1);
    ck_assert_str_eq(belt__broker_entry_get(&rec[0], "reason", NULL),
                     "crash");
    fake_free(f);
    static const char *const stop[] = { "stop", "1", NULL };
    f = fake_fields(stop);
    e = (belt__broker_entry){ "3-0", f, 0, f->elements };
    ck_assert_uint_eq(belt__broker_entry_records(&e, rec, 4), 1);
    ck_assert_ptr_null(belt__broker_entry_get(&rec[0], "key", NULL));
    fake_free(f);
}
END_TEST

/* ---- redis -------------------------------------------------------------- */

typedef struct server {
    char dir[64], sock[128];
    pid_t pid;
} server;

/* redis-server somewhere in $PATH (looked up without a shell: on a
 * loaded machine starting one costs tenths of a second). */
static bool have_redis(void)
{
    const char *path = getenv("PATH");
    char dir[4096], file[4200];
    while (path != NULL && *path != '\0') {
        size_t len = strcspn(path, ":");
        snprintf(dir, sizeof dir, "%.*s", (int)len, path);
        snprintf(file, sizeof file, "%s/redis-server", dir[0] ? dir : ".");
        if (access(file, X_OK) == 0)
            return true;
        path += len + (path[len] == ':');
    }
    return false;
}

/* Spawns redis-server on s->sock and waits (up to 10 s) until it
 * answers.  `password` may be NULL. */
static void server_spawn(server *s, const char *password)
{
    const char *args[16] = { "redis-server", "--port", "0", "--unixsocket",
                             s->sock, "--dir", s->dir, "--save", "",
                             "--appendonly", "no", "--logfile",
                             "redis.log" };
    int n = 13;
    if (password) {
        args[n++] = "--requirepass";
        args[n++] = password;
    }
    args[n] = NULL;
    /* fork + PR_SET_PDEATHSIG rather than posix_spawn: a failing test
     * (its process exits) must not leave the server running. */
    pid_t parent = getpid();
    s->pid = fork();
    ck_assert_int_ge(s->pid, 0);
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execvp("redis-server", (char **)args);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        struct stat st;
        if (stat(s->sock, &st) == 0) {
            redisContext *c = redisConnectUnix(s->sock);
            bool ok = c != NULL && c->err == 0;
            if (c)
                redisFree(c);
            if (ok)
                return;
        }
        tu_sleep_ms(20);
    }
    ck_abort_msg("redis-server did not come up");
}

/* Starts redis-server on a unix socket in a fresh directory. */
static void server_start(server *s, const char *password)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/belt-check-broker.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    server_spawn(s, password);
}

static void server_stop(server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    static const char *const files[] = { "redis.sock", "redis.log" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char f[200];
        snprintf(f, sizeof f, "%s/%s", s->dir, files[i]);
        unlink(f);
    }
    ck_assert_int_eq(rmdir(s->dir), 0);
}

static belt__broker *connect_to(const server *s)
{
    belt__broker_url u;
    char url[200], msg[300];
    snprintf(url, sizeof url, "unix://%s", s->sock);
    ck_assert_int_eq(belt__broker_url_parse(url, &u, msg, sizeof msg),
                     BELT_OK);
    belt__broker *b = NULL;
    int rc = belt__broker_connect(&b, &u, 0, msg, sizeof msg);
    ck_assert_msg(rc == BELT_OK, "%s", msg);
    return b;
}

static long long cmd_int(belt__broker *b, int argc, const char **argv)
{
    redisReply *r = belt__broker_command(b, argc, argv, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer; /* XPENDING summary: count first */
    freeReplyObject(r);
    return v;
}

typedef struct running {
    belt__broker_worker *w;
    pthread_t th;
    int rc;
    char msg[300];
} running;

static void *run_worker(void *arg)
{
    running *r = arg;
    r->rc = belt__broker_worker_run(r->w, r->msg, sizeof r->msg);
    TU_CHECK(r->rc == BELT_OK, "worker run: %s", r->msg);
    return NULL;
}

static void worker_start(running *r, const server *s, unsigned slots,
                         int64_t visibility_ns)
{
    belt__broker_url u;
    char url[200];
    snprintf(url, sizeof url, "unix://%s", s->sock);
    ck_assert_int_eq(belt__broker_url_parse(url, &u, r->msg, sizeof r->msg),
                     BELT_OK);
    belt__broker_worker_options o;
    belt__broker_worker_options_init(&o);
    o.url = &u;
    o.slots = slots;
    o.visibility_ns = visibility_ns;
    o.id = "w1";
    int rc = belt__broker_worker_create(&r->w, &o, r->msg, sizeof r->msg);
    ck_assert_msg(rc == BELT_OK, "%s", r->msg);
    tu_reset_failures();
    ck_assert_int_eq(pthread_create(&r->th, NULL, run_worker, r), 0);
}

static void worker_stop(running *r)
{
    belt__broker_worker_stop(r->w);
    pthread_join(r->th, NULL);
    tu_assert_threads_ok();
    belt__broker_worker_free(r->w);
}

/* Reads the result stream from the start until `want` entries (or 30 s);
 * returns a JSON object key -> array of result objects. */
static json_t *collect(belt__broker *b, const char *run, int want)
{
    char key[200], last[64] = "0-0";
    belt__broker_key_results(key, sizeof key, NULL, run);
    json_t *by_key = json_object();
    int got = 0;
    int64_t deadline = tu_now_ns() + (int64_t)tu_timeout(30) * 1000000000;
    while (got < want && tu_now_ns() < deadline) {
        const char *argv[6] = { "XREAD", "BLOCK", "200", "STREAMS", key,
                                last };
        redisReply *r = belt__broker_command(b, 6, argv, NULL, NULL, 0);
        ck_assert_ptr_nonnull(r);
        const redisReply *es = belt__broker_xread_entries(r);
        belt__broker_entry e[64];
        int k = es ? belt__broker_entries(es, e, 64) : 0;
        for (int i = 0; i < k; i++) {
            belt__broker_entry rec[BELT__BROKER_RECORDS_MAX];
            size_t nrec = belt__broker_entry_records(&e[i], rec,
                                                     BELT__BROKER_RECORDS_MAX);
            for (size_t j = 0; j < nrec; j++) {
                size_t mlen = 0;
                const char *res = belt__broker_entry_get(&rec[j], "result",
                                                         NULL);
                const char *kk = belt__broker_entry_get(&rec[j], "key", NULL);
                const char *meta = belt__broker_entry_get(&rec[j], "meta",
                                                          &mlen);
                if (kk == NULL)
                    continue; /* the stream's `open` entry */
                ck_assert_ptr_nonnull(res);
                json_t *o = json_loads(res, 0, NULL);
                ck_assert_ptr_nonnull(o);
                /* The numbers beside the record agree with it. */
                belt_result m;
                memset(&m, 0, sizeof m);
                bool text = false;
                const char *err = json_string_value(json_object_get(o,
                                                                    "error"));
                if (meta == NULL && err != NULL &&
                    strncmp(err, "dead-lettered", 13) == 0) {
                    /* The reader's dead-letter record: no numbers. */
                    meta = "1 error -1 0 0 0 0 0 0 1";
                    mlen = strlen(meta);
                }
                ck_assert_ptr_nonnull(meta);
                ck_assert_int_eq(belt__broker_meta_parse(meta, mlen, &m,
                                                         &text), BELT_OK);
                ck_assert_str_eq(belt_job_status_name(m.status),
                                 json_string_value(json_object_get(o,
                                                                   "status")));
                ck_assert_int_eq(m.attempts, json_integer_value(
                                                 json_object_get(o, "attempts")));
                json_t *out = json_object_get(o, "stdout");
                if (json_is_string(out) && json_string_length(out) > 0)
                    ck_assert(text);
                json_t *a = json_object_get(by_key, kk);
                if (a == NULL) {
                    a = json_array();
                    json_object_set_new(by_key, kk, a);
                }
                json_array_append_new(a, o);
                got++;
            }
            snprintf(last, sizeof last, "%s", e[i].id);
        }
        freeReplyObject(r);
    }
    return by_key;
}

/* Makes run's result stream, as a submitter does: workers skip the jobs of
 * a run without one. */
static void open_run(belt__broker *b, const char *run)
{
    char key[200];
    belt__broker_key_results(key, sizeof key, NULL, run);
    const char *argv[5] = { "XADD", key, "*", "open", "1" };
    redisReply *r = belt__broker_command(b, 5, argv, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
}

/* Expects the result of job `key` in run `run`: status ok, stdout `out`. */
static void expect_ok(belt__broker *b, const char *run, const char *key,
                      const char *out)
{
    json_t *res = collect(b, run, 1);
    json_t *o = json_array_get(json_object_get(res, key), 0);
    ck_assert_msg(o != NULL, "no result for %s", key);
    ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "ok");
    ck_assert_str_eq(json_string_value(json_object_get(o, "stdout")), out);
    json_decref(res);
}

START_TEST(test_worker_runs_jobs)
{
    if (!have_redis()) {
        fprintf(stderr, "check_broker: no redis-server: redis tests pass "
                "without running\n");
        return;
    }
    server s = { .pid = 0 };
    server_start(&s, NULL);
    belt__broker *b = connect_to(&s);
    ck_assert_int_eq(belt__broker_ensure_group(b, NULL, "0", NULL, 0),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_ensure_group(b, NULL, "0", NULL, 0),
                     BELT_OK); /* BUSYGROUP is fine */
    enum { N = 40 };
    belt_job jobs[N];
    const belt_job *ptrs[N];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        belt_job_init(&jobs[i]);
        snprintf(ids[i], sizeof ids[i], "j%d", i);
        jobs[i].id = ids[i];
        if (i % 4 == 0)
            jobs[i].run = "echo out-$((6 * 7))";
        else
            jobs[i].kind = BELT_JOB_NOOP;
        jobs[i].seq = (uint64_t)i;
        ptrs[i] = &jobs[i];
    }
    belt__broker_id sids[N];
    char msg[300];
    open_run(b, "run1");
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, "run1", ptrs, N, 0,
                                            NULL, sids, msg, sizeof msg),
                     BELT_OK);
    ck_assert(strchr(sids[N - 1].s, '-') != NULL);
    running w;
    worker_start(&w, &s, 3, 0);
    json_t *res = collect(b, "run1", N);
    ck_assert_uint_eq(json_object_size(res), N);
    for (int i = 0; i < N; i++) {
        json_t *a = json_object_get(res, ids[i]);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_eq(json_array_size(a), 1);
        json_t *o = json_array_get(a, 0);
        ck_assert_str_eq(json_string_value(json_object_get(o, "status")),
                         "ok");
        ck_assert_str_eq(json_string_value(json_object_get(o, "worker")),
                         "w1");
        ck_assert_int_eq(json_integer_value(json_object_get(o, "delivery")),
                         1);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "seq")), i);
        if (i % 4 == 0)
            ck_assert_str_eq(json_string_value(json_object_get(o, "stdout")),
                             "out-42\n");
    }
    json_decref(res);
    /* The publisher acks and deletes after publishing: wait for it. */
    const char *xlen[2] = { "XLEN", "belt:jobs" };
    const char *pend[3] = { "XPENDING", "belt:jobs", "workers" };
    for (int i = 0; i < 500 && cmd_int(b, 2, xlen) != 0; i++)
        tu_sleep_ms(10);
    ck_assert_int_eq(cmd_int(b, 2, xlen), 0);
    ck_assert_int_eq(cmd_int(b, 3, pend), 0);
    const char *hex[3] = { "HEXISTS", "belt:workers", "w1" };
    ck_assert_int_eq(cmd_int(b, 3, hex), 1); /* heartbeat */
    worker_stop(&w);
    ck_assert_int_eq(cmd_int(b, 3, hex), 0); /* gone on a clean exit */
    belt__broker_close(b);
    server_stop(&s);
}
END_TEST

/* Reads every new entry of belt:jobs as consumer "ghost", which then
 * "dies": the entries stay pending under its name. */
static void ghost_takes_all(belt__broker *b)
{
    const char *argv[9] = { "XREADGROUP", "GROUP", "workers", "ghost",
                            "COUNT", "100", "STREAMS", "belt:jobs", ">" };
    redisReply *r = belt__broker_command(b, 9, argv, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
}

START_TEST(test_worker_reclaims_and_dead_letters)
{
    if (!have_redis())
        return;
    server s = { .pid = 0 };
    server_start(&s, NULL);
    belt__broker *b = connect_to(&s);
    ck_assert_int_eq(belt__broker_ensure_group(b, NULL, "0", NULL, 0),
                     BELT_OK);
    belt_job a, d;
    belt_job_init(&a);
    a.id = "again";
    a.run = "echo second";
    belt_job_init(&d);
    d.id = "doomed";
    d.run = "echo never";
    const belt_job *ptrs[2] = { &a, &d };
    belt__broker_id sids[2];
    open_run(b, "run2");
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, "run2", ptrs, 2, 3, NULL,
                                            sids, NULL, 0), BELT_OK);
    ghost_takes_all(b);
    /* "doomed" has been delivered 5 times already (max_deliveries 3). */
    const char *cl[9] = { "XCLAIM", "belt:jobs", "workers", "ghost", "0",
                          sids[1].s, "RETRYCOUNT", "5", "JUSTID" };
    redisReply *r = belt__broker_command(b, 9, cl, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);

    running w;
    worker_start(&w, &s, 2, INT64_C(200000000)); /* visibility 200 ms */
    json_t *res = collect(b, "run2", 2);
    json_t *ra = json_array_get(json_object_get(res, "again"), 0);
    json_t *rd = json_array_get(json_object_get(res, "doomed"), 0);
    ck_assert_ptr_nonnull(ra);
    ck_assert_ptr_nonnull(rd);
    ck_assert_str_eq(json_string_value(json_object_get(ra, "status")), "ok");
    ck_assert_int_eq(json_integer_value(json_object_get(ra, "delivery")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(ra, "stdout")),
                     "second\n");
    ck_assert_str_eq(json_string_value(json_object_get(rd, "status")),
                     "error");
    const char *err = json_string_value(json_object_get(rd, "error"));
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, "dead-lettered after 5 deliveries", 32) == 0,
                  "%s", err);
    json_decref(res);
    const char *dl[2] = { "XLEN", "belt:dead" };
    ck_assert_int_eq(cmd_int(b, 2, dl), 1);
    worker_stop(&w);
    belt__broker_close(b);
    server_stop(&s);
}
END_TEST

/* Starts a server, a one-slot worker and job `id` (command `cmd`) of run
 * `run`; returns a connection once the worker has taken the job (it is
 * pending) and its command has started (a marker file it makes first):
 * pending alone may mean the worker's XREADGROUP reply is still in flight,
 * and a stop then would leave the entry pending for another worker, as
 * the worker's essay says, instead of running it. */
static belt__broker *one_job_taken(server *s, running *w, const char *run,
                                   const char *id, const char *cmd)
{
    server_start(s, NULL);
    belt__broker *b = connect_to(s);
    ck_assert_int_eq(belt__broker_ensure_group(b, NULL, "0", NULL, 0),
                     BELT_OK);
    worker_start(w, s, 1, 0);
    char marker[128], full[512];
    snprintf(marker, sizeof marker, "/tmp/belt-check-broker-%d-%s",
             (int)getpid(), id);
    unlink(marker);
    snprintf(full, sizeof full, ": > %s; %s", marker, cmd);
    belt_job j;
    belt_job_init(&j);
    j.id = id;
    j.run = full;
    const belt_job *ptrs[1] = { &j };
    open_run(b, run);
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, run, ptrs, 1, 0, NULL,
                                            NULL, NULL, 0), BELT_OK);
    const char *pend[3] = { "XPENDING", "belt:jobs", "workers" };
    for (int i = 0; i < 1000 && cmd_int(b, 3, pend) != 1; i++)
        tu_sleep_ms(5);
    ck_assert_int_eq(cmd_int(b, 3, pend), 1);
    for (int i = 0; i < 2000 && access(marker, F_OK) != 0; i++)
        tu_sleep_ms(5);
    ck_assert_msg(access(marker, F_OK) == 0, "job %s did not start", id);
    unlink(marker);
    return b;
}

START_TEST(test_worker_graceful_stop)
{
    if (!have_redis())
        return;
    server s = { .pid = 0 };
    running w;
    belt__broker *b = one_job_taken(&s, &w, "run3", "slow",
                                    "sleep 0.3; echo finished");
    const char *pend[3] = { "XPENDING", "belt:jobs", "workers" };
    worker_stop(&w); /* returns after publishing and acking */
    ck_assert_int_eq(cmd_int(b, 3, pend), 0);
    expect_ok(b, "run3", "slow", "finished\n");
    belt__broker_close(b);
    server_stop(&s);
}
END_TEST

/* Redis dies while a job runs and comes back (empty: no persistence here):
 * the worker reconnects, publishes the result it kept (which goes nowhere:
 * the run's result stream went with the data, and results never re-create
 * one), recreates the consumer group and serves new jobs. */
START_TEST(test_worker_reconnects)
{
    if (!have_redis())
        return;
    server s = { .pid = 0 };
    running w;
    belt__broker *b = one_job_taken(&s, &w, "run4", "through",
                                    "sleep 0.5; echo survived");
    belt__broker_close(b);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    unlink(s.sock);
    tu_sleep_ms(700); /* the job ends while Redis is down */
    server_spawn(&s, NULL);
    b = connect_to(&s);
    /* and it serves again (the group was made anew) */
    belt_job j2;
    belt_job_init(&j2);
    j2.id = "after";
    j2.run = "echo again";
    const belt_job *ptrs2[1] = { &j2 };
    for (int i = 0; i < 1000; i++) { /* the group may not be back yet */
        const char *ex[2] = { "EXISTS", "belt:jobs" };
        if (cmd_int(b, 2, ex) == 1)
            break;
        tu_sleep_ms(5);
    }
    open_run(b, "run5");
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, "run5", ptrs2, 1, 0,
                                            NULL, NULL, NULL, 0), BELT_OK);
    expect_ok(b, "run5", "after", "again\n");
    const char *ex4[2] = { "EXISTS", "belt:run:run4:results" };
    ck_assert_int_eq(cmd_int(b, 2, ex4), 0); /* NOMKSTREAM */
    belt__broker_worker_stop(w.w); /* stats once it has returned */
    pthread_join(w.th, NULL);
    tu_assert_threads_ok();
    belt__broker_worker_stats st;
    belt__broker_worker_get_stats(w.w, &st);
    ck_assert_uint_ge(st.reconnects, 1);
    /* run4's job: its entry went with Redis' data, so the publish script
     * drops its result (superseded; counted once the publisher got
     * through, which under load may be after the stop); run5's was
     * published. */
    ck_assert_uint_ge(st.done, 1);
    ck_assert_uint_le(st.done + st.superseded, 2);
    belt__broker_worker_free(w.w);
    belt__broker_close(b);
    server_stop(&s);
}
END_TEST

START_TEST(test_connect_errors)
{
    if (!have_redis())
        return;
    belt__broker_url u;
    belt__broker *b = NULL;
    char msg[400];
    ck_assert_int_eq(belt__broker_url_parse("unix:///nonexistent/r.sock", &u,
                                            msg, sizeof msg), BELT_OK);
    ck_assert_int_eq(belt__broker_connect(&b, &u, 0, msg, sizeof msg),
                     BELT_EIO);
    ck_assert_ptr_null(b);
    ck_assert_msg(strstr(msg, "cannot connect to unix:///nonexistent/r.sock")
                  != NULL, "%s", msg);

    server s = { .pid = 0 };
    server_start(&s, "sesame");
    char url[200];
    unsetenv("BELT_REDIS_PASSWORD");
    unsetenv("REDISCLI_AUTH");
    snprintf(url, sizeof url, "unix://%s", s.sock);
    ck_assert_int_eq(belt__broker_url_parse(url, &u, msg, sizeof msg),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_connect(&b, &u, 0, msg, sizeof msg),
                     BELT_ECONFIG);
    ck_assert_msg(strstr(msg, "requires a password (NOAUTH)") != NULL, "%s",
                  msg);
    snprintf(url, sizeof url, "unix://%s?password=wrong", s.sock);
    ck_assert_int_eq(belt__broker_url_parse(url, &u, msg, sizeof msg),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_connect(&b, &u, 0, msg, sizeof msg),
                     BELT_ECONFIG);
    ck_assert_msg(strstr(msg, "password was rejected") != NULL, "%s", msg);
    ck_assert_ptr_null(strstr(msg, "wrong"));
    setenv("BELT_REDIS_PASSWORD", "sesame", 1);
    snprintf(url, sizeof url, "unix://%s", s.sock);
    ck_assert_int_eq(belt__broker_url_parse(url, &u, msg, sizeof msg),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_connect(&b, &u, 0, msg, sizeof msg),
                     BELT_OK);
    const char *ping[1] = { "PING" };
    redisReply *r = belt__broker_command(b, 1, ping, NULL, msg, sizeof msg);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r->str, "PONG");
    freeReplyObject(r);
    belt__broker_close(b);
    server_stop(&s);
}
END_TEST

/* ---- sign --------------------------------------------------------------- */

/* Writes text to a fresh file with mode `mode`; returns its path (static). */
static const char *key_file(const char *text, mode_t mode)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/belt-check-key.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    ck_assert_int_eq(fchmod(fd, mode), 0);
    close(fd);
    return path;
}

#define K1 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define K2 "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff00112233445566778899aabbccddeeff"

/* Loads the key file text (mode 0600) into *k. */
static void load_keys(const char *text, belt__broker_keys *k)
{
    char msg[600];
    const char *p = key_file(text, 0600);
    int rc = belt__broker_keys_load(k, p, msg, sizeof msg);
    unlink(p);
    ck_assert_msg(rc == BELT_OK, "%s", msg);
}

static void load_fails(const char *text, mode_t mode, int code,
                       const char *want)
{
    belt__broker_keys k;
    char msg[600];
    const char *p = key_file(text, mode);
    int rc = belt__broker_keys_load(&k, p, msg, sizeof msg);
    unlink(p);
    ck_assert_int_eq(rc, code);
    ck_assert_msg(strstr(msg, want) != NULL, "%s: want '%s'", msg, want);
    ck_assert_uint_eq(k.count, 0);
}

START_TEST(test_key_files)
{
    belt__broker_keys k;
    char msg[600];
    load_keys("# a comment\n\n  " K1 "  \r\n" K2 "\n", &k);
    ck_assert_uint_eq(k.count, 2);
    ck_assert_uint_eq(k.key[0][1], 1);
    ck_assert_uint_eq(k.key[1][0], 0xf0);
    ck_assert_uint_eq(strlen(k.id[0]), BELT__BROKER_KID_HEX);
    ck_assert_str_ne(k.id[0], k.id[1]);
    belt__broker_keys_wipe(&k);
    ck_assert_uint_eq(k.count, 0);

    load_fails(K1 "\n", 0644, BELT_ECONFIG, "chmod 600");
    load_fails(K1 "\n", 0660, BELT_ECONFIG, "mode 0660");
    load_fails("# nothing\n", 0600, BELT_ECONFIG, "no key");
    load_fails(K1 "0\n", 0600, BELT_ECONFIG, ":1: not a key");
    load_fails("hello\n", 0600, BELT_ECONFIG, ":1: not a key");
    load_fails(K1 "\n" K2 "\n" K1 "\n", 0600, BELT_ECONFIG, ":3: ");
    ck_assert_int_eq(belt__broker_keys_load(&k, "/nonexistent/key", msg,
                                            sizeof msg), BELT_ESYS);
    ck_assert_msg(strstr(msg, "/nonexistent/key") != NULL, "%s", msg);

    /* save -> load: the same keys; mode 0600; no overwrite unless asked */
    belt__broker_keys a;
    memset(&a, 0, sizeof a);
    unsigned char raw[BELT__BROKER_KEY_BYTES];
    ck_assert_int_eq(belt__broker_keys_generate(raw, msg, sizeof msg),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_keys_add(&a, raw, msg, sizeof msg), BELT_OK);
    char path[64] = "/tmp/belt-check-keys.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(path));
    char file[100];
    snprintf(file, sizeof file, "%s/k", path);
    ck_assert_int_eq(belt__broker_keys_save(&a, file, false, msg, sizeof msg),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_keys_save(&a, file, false, msg, sizeof msg),
                     BELT_EBUSY);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(belt__broker_keys_load(&k, file, msg, sizeof msg),
                     BELT_OK);
    ck_assert_uint_eq(k.count, 1);
    ck_assert(memcmp(k.key[0], raw, sizeof raw) == 0);
    ck_assert_str_eq(k.id[0], a.id[0]);
    unlink(file);
    rmdir(path);
}
END_TEST

/* A fake entry view over fields f[0..n) (name, value, ...). */
typedef struct fake {
    redisReply top, *el[40], els[40];
    belt__broker_entry e;
} fake;

static void fake_entry(fake *x, int n, const char *const *f)
{
    memset(x, 0, sizeof *x);
    x->top.type = REDIS_REPLY_ARRAY;
    x->top.elements = (size_t)n;
    x->top.element = x->el;
    for (int i = 0; i < n; i++) {
        x->els[i].type = REDIS_REPLY_STRING;
        x->els[i].str = (char *)f[i];
        x->els[i].len = strlen(f[i]);
        x->el[i] = &x->els[i];
    }
    x->e.id = "1-1";
    x->e.fields = &x->top;
    x->e.from = 0;
    x->e.to = (size_t)n;
}

static void be32(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

START_TEST(test_sign_entries)
{
    belt__broker_keys k1, k21;
    char msg[600];
    load_keys(K1 "\n", &k1);
    load_keys(K2 "\n" K1 "\n", &k21); /* rotated: K2 signs, K1 accepted */
    belt__broker_mac *m1, *m21;
    ck_assert_int_eq(belt__broker_mac_new(&m1, &k1, msg, sizeof msg), BELT_OK);
    ck_assert_int_eq(belt__broker_mac_new(&m21, &k21, msg, sizeof msg),
                     BELT_OK);

    const char *f[10] = { "run", "R1", "key", "job-7", "job",
                          "{\"id\":\"job-7\",\"run\":\"true\"}",
                          "max_deliveries", "3", "sig", "" };
    char sig[BELT__BROKER_SIG_LEN + 1];
    belt__broker_sign_fields(m1, BELT__BROKER_TAG_JOB, NULL, 8, f, NULL, sig);
    ck_assert_uint_eq(strlen(sig), BELT__BROKER_SIG_LEN);
    ck_assert(strncmp(sig, k1.id[0], BELT__BROKER_KID_HEX) == 0);
    ck_assert_int_eq(sig[BELT__BROKER_KID_HEX], '.');

    /* The framing, computed apart: HMAC-SHA256(K1, item(tag) item(name)
     * item(value)...), item(x) = 4-byte big-endian length, then x. */
    unsigned char buf[512], key[32], mac[32];
    size_t len = 0;
    const char *items[9] = { BELT__BROKER_TAG_JOB, f[0], f[1], f[2], f[3],
                             f[4], f[5], f[6], f[7] };
    for (int i = 0; i < 9; i++) {
        be32(buf + len, strlen(items[i]));
        memcpy(buf + len + 4, items[i], strlen(items[i]));
        len += 4 + strlen(items[i]);
    }
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)i;
    size_t mlen = 0;
    ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key,
                                    32, buf, len, mac, 32, &mlen));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    ck_assert_str_eq(sig + BELT__BROKER_KID_HEX + 1, hex);

    f[9] = sig;
    fake x;
    fake_entry(&x, 10, f);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg), BELT_OK);
    /* the rotated keyring accepts what K1 signed */
    ck_assert_int_eq(belt__broker_verify_entry(m21, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg), BELT_OK);
    /* ... but K1 alone not what the rotated one signs with K2 (named in
     * the message) */
    char sig2[BELT__BROKER_SIG_LEN + 1];
    belt__broker_sign_fields(m21, BELT__BROKER_TAG_JOB, NULL, 8, f, NULL, sig2);
    const char *f2[10];
    memcpy(f2, f, sizeof f2);
    f2[9] = sig2;
    fake_entry(&x, 10, f2);
    ck_assert_int_eq(belt__broker_verify_entry(m21, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg), BELT_OK);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    ck_assert_msg(strstr(msg, k21.id[0]) && strstr(msg, "not in this key"),
                  "%s", msg);

    /* Every change is caught: a value, a name, the run (a replay into
     * another run), the order, a field added, the kind of entry. */
    const char *changes[][2] = { { "max_deliveries", "9" }, { "run", "R2" },
                                 { "job", "{\"id\":\"job-7\",\"run\":\"rm\"}" } };
    for (size_t c = 0; c < sizeof changes / sizeof changes[0]; c++) {
        const char *g[10];
        memcpy(g, f, sizeof g);
        for (int i = 0; i < 8; i += 2)
            if (strcmp(g[i], changes[c][0]) == 0)
                g[i + 1] = changes[c][1];
        fake_entry(&x, 10, g);
        ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB,
                                                   NULL, &x.e, msg, sizeof msg),
                         BELT_EINVAL);
        ck_assert_msg(strstr(msg, "bad signature") != NULL, "%s", msg);
    }
    const char *swapped[10] = { "key", "job-7", "run", "R1", "job", f[5],
                                "max_deliveries", "3", "sig", sig };
    fake_entry(&x, 10, swapped);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    const char *more[12] = { f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7],
                             "x", "y", "sig", sig };
    fake_entry(&x, 12, more);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    fake_entry(&x, 10, f);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_RESULT,
                                               "R1", &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    /* unsigned, and a sig field that is no signature */
    fake_entry(&x, 8, f);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    ck_assert_msg(strstr(msg, "not signed") != NULL, "%s", msg);
    f2[9] = "garbage";
    fake_entry(&x, 10, f2);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_JOB, NULL,
                                               &x.e, msg, sizeof msg),
                     BELT_EINVAL);

    /* Results are bound to the run of their stream, all records at once. */
    const char *r[14] = { "key", "a", "meta", "1 ok", "result", "{}", "key",
                          "b", "meta", "1 ok", "result", "{}", "sig", "" };
    belt__broker_sign_fields(m1, BELT__BROKER_TAG_RESULT, "R1", 12, r, NULL,
                             sig);
    r[13] = sig;
    fake_entry(&x, 14, r);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_RESULT,
                                               "R1", &x.e, msg, sizeof msg),
                     BELT_OK);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_RESULT,
                                               "R2", &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    r[7] = "c"; /* a record passed off for another job */
    fake_entry(&x, 14, r);
    ck_assert_int_eq(belt__broker_verify_entry(m1, BELT__BROKER_TAG_RESULT,
                                               "R1", &x.e, msg, sizeof msg),
                     BELT_EINVAL);
    belt__broker_mac_free(m1);
    belt__broker_mac_free(m21);
    belt__broker_keys_wipe(&k1);
    belt__broker_keys_wipe(&k21);
}
END_TEST

/* A keyed worker: a signed job runs; an unsigned one and one whose
 * signature was made with another key or no longer matches (the job was
 * changed) never run, and are dead-lettered with the reason; the run hears
 * of each refusal. */
START_TEST(test_worker_refuses_forged_jobs)
{
    if (!have_redis())
        return;
    server s = { .pid = 0 };
    server_start(&s, NULL);
    belt__broker *b = connect_to(&s);
    ck_assert_int_eq(belt__broker_ensure_group(b, NULL, "0", NULL, 0),
                     BELT_OK);
    belt__broker_keys k1, k2;
    char msg[600];
    load_keys(K1 "\n", &k1);
    load_keys(K2 "\n", &k2);
    belt__broker_mac *m1, *m2;
    ck_assert_int_eq(belt__broker_mac_new(&m1, &k1, msg, sizeof msg), BELT_OK);
    ck_assert_int_eq(belt__broker_mac_new(&m2, &k2, msg, sizeof msg), BELT_OK);
    char marker[128];
    snprintf(marker, sizeof marker, "%s/pwned", s.dir);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "touch %s", marker);
    belt_job good, bad;
    belt_job_init(&good);
    good.id = "good";
    good.run = "echo signed";
    belt_job_init(&bad);
    bad.id = "evil";
    bad.run = cmd;
    const belt_job *pg[1] = { &good }, *pb[1] = { &bad };
    open_run(b, "runS");
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, "runS", pb, 1, 0, NULL,
                                            NULL, msg, sizeof msg), BELT_OK);
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, "runS", pb, 1, 0, m2,
                                            NULL, msg, sizeof msg), BELT_OK);
    /* signed with K1, then the job changed on the way */
    char json[300];
    snprintf(json, sizeof json, "{\"id\":\"evil\",\"run\":\"%s\"}", cmd);
    const char *f[8] = { "run", "runS", "key", "evil", "job",
                         "{\"id\":\"evil\",\"run\":\"true\"}",
                         "max_deliveries", "3" };
    char sig[BELT__BROKER_SIG_LEN + 1];
    belt__broker_sign_fields(m1, BELT__BROKER_TAG_JOB, NULL, 8, f, NULL, sig);
    const char *x[13] = { "XADD", "belt:jobs", "*", "run", "runS", "key",
                          "evil", "job", json, "max_deliveries", "3", "sig",
                          sig };
    redisReply *r = belt__broker_command(b, 13, x, NULL, NULL, 0);
    ck_assert_ptr_nonnull(r);
    freeReplyObject(r);
    ck_assert_int_eq(belt__broker_xadd_jobs(b, NULL, "runS", pg, 1, 0, m1,
                                            NULL, msg, sizeof msg), BELT_OK);

    belt__broker_url u;
    char url[200];
    snprintf(url, sizeof url, "unix://%s", s.sock);
    ck_assert_int_eq(belt__broker_url_parse(url, &u, msg, sizeof msg),
                     BELT_OK);
    belt__broker_worker_options o;
    belt__broker_worker_options_init(&o);
    o.url = &u;
    o.slots = 2;
    o.id = "w1";
    o.keys = &k1;
    running w;
    ck_assert_int_eq(belt__broker_worker_create(&w.w, &o, w.msg,
                                                sizeof w.msg), BELT_OK);
    tu_reset_failures();
    ck_assert_int_eq(pthread_create(&w.th, NULL, run_worker, &w), 0);
    expect_ok(b, "runS", "good", "signed\n");
    const char *dl[2] = { "XLEN", "belt:dead" };
    for (int i = 0; i < 1000 && cmd_int(b, 2, dl) < 3; i++)
        tu_sleep_ms(5);
    ck_assert_int_eq(cmd_int(b, 2, dl), 3);
    belt__broker_worker_stop(w.w); /* stats once it has returned */
    pthread_join(w.th, NULL);
    tu_assert_threads_ok();
    ck_assert_int_ne(access(marker, F_OK), 0); /* never ran */
    /* the reasons, in P:dead and in the run's notes */
    const char *xr[4] = { "XRANGE", "belt:dead", "-", "+" };
    r = belt__broker_command(b, 4, xr, NULL, NULL, 0);
    belt__broker_entry es[3];
    ck_assert_int_eq(belt__broker_entries(r, es, 3), 3);
    const char *want[3] = { "not signed", "not in this key file",
                            "bad signature" };
    for (int i = 0; i < 3; i++) {
        const char *why = belt__broker_entry_get(&es[i], "reason", NULL);
        ck_assert_msg(why && strstr(why, want[i]), "%s", why ? why : "-");
    }
    freeReplyObject(r);
    const char *notes[4] = { "XRANGE", "belt:run:runS:results", "-", "+" };
    r = belt__broker_command(b, 4, notes, NULL, NULL, 0);
    int refused = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *fl = r->element[i]->element[1];
        refused += fl->elements >= 2 && strcmp(fl->element[0]->str,
                                               "refused") == 0;
    }
    ck_assert_int_eq(refused, 3);
    freeReplyObject(r);
    belt__broker_worker_stats st;
    belt__broker_worker_get_stats(w.w, &st);
    ck_assert_uint_eq(st.refused, 3);
    belt__broker_worker_free(w.w);
    belt__broker_mac_free(m1);
    belt__broker_mac_free(m2);
    belt__broker_keys_wipe(&k1);
    belt__broker_keys_wipe(&k2);
    belt__broker_close(b);
    server_stop(&s);
}
END_TEST

static Suite *broker_suite(void)
{
    Suite *s = suite_create("broker");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, test_url_forms);
    tcase_add_test(tc, test_url_typos);
    tcase_add_test(tc, test_url_env_password);
    suite_add_tcase(s, tc);
    tc = tcase_create("codec");
    tcase_add_test(tc, test_codec_roundtrip);
    tcase_add_test(tc, test_codec_defaults_and_errors);
    tcase_add_test(tc, test_codec_result);
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_meta_roundtrip);
    tcase_add_test(tc, test_entry_records);
    suite_add_tcase(s, tc);
    tc = tcase_create("redis");
    tcase_set_timeout(tc, tu_timeout(60));
    tcase_add_test(tc, test_worker_runs_jobs);
    tcase_add_test(tc, test_worker_reclaims_and_dead_letters);
    tcase_add_test(tc, test_worker_graceful_stop);
    tcase_add_test(tc, test_worker_reconnects);
    tcase_add_test(tc, test_connect_errors);
    tcase_add_test(tc, test_worker_refuses_forged_jobs);
    suite_add_tcase(s, tc);
    tc = tcase_create("sign");
    tcase_add_test(tc, test_key_files);
    tcase_add_test(tc, test_sign_entries);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a closed socket: EPIPE */
    SRunner *sr = srunner_create(broker_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
