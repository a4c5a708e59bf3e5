/* app/broker/broker.h: belt across machines, with Redis Streams as the job
 * channel. Internal (belt__ names, never installed); used by `belt worker`,
 * `belt run --broker` and `belt status`.  The wire protocol (keys, fields,
 * consumer group, delivery counts, dead letters) is described in
 * doc/belt-worker.1 (BROKER, KEYS) and in the essay of src/app/broker/worker.c; in short, with the
 * namespace prefix P (default "belt"):
 *
 *   P:jobs                 stream of jobs, consumer group "workers"; fields
 *                          run, key, job (JSON, see the codec),
 *                          max_deliveries, and sig (the signature:
 *                          app/broker/sign.c) unless --insecure
 *   P:run:<run>:results    one stream per run; per record the fields key,
 *                          meta (numbers: app/broker/meta.c), result (the JSON
 *                          Lines record of `belt run` plus "host", "worker"
 *                          (worker id string) and "delivery"); a worker
 *                          packs up to BELT__BROKER_RECORDS_MAX records
 *                          into one entry, signed as a whole (a last field
 *                          sig).  Also a worker's note
 *                          that it refused a job (fields refused, reason,
 *                          worker).  Exists while the run does: made by the
 *                          submitter, with an expiry renewed while it runs,
 *                          deleted at its end; workers skip the jobs of a
 *                          run whose stream is gone
 *   P:run:<run>:pub        the submitter's publish mark (see
 *                          belt__broker_xadd_jobs_once)
 *   P:dead                 dead letters; fields run, key, job, reason,
 *                          deliveries, worker
 *   P:runs                 hash run id -> JSON (written by the submitter)
 *   P:workers              hash worker id -> JSON heartbeat
 *
 * Files: app/broker/url.c (URL parsing), app/broker/conn.c (the connection:
 * connect, AUTH, SELECT, reconnect with backoff, commands, pipelining, the
 * shared stream commands), app/broker/codec.c (belt_job <-> JSON, result
 * records), app/broker/meta.c (a result's numbers as text),
 * app/broker/sign.c (keys and signatures), app/broker/worker.c (the worker
 * engine), app/broker/submit.c (the submitter, submit.h).
 *
 * hiredis: only the API that 0.14 and 1.x share is used (redisConnect*
 * WithTimeout, redisCommandArgv, redisAppendCommandArgv, redisGetReply,
 * freeReplyObject, redisSetTimeout; RESP2 replies).  A hiredis context is not
 * thread-safe: one belt__broker per thread.
 *
 * Errors: functions return BELT_OK or a negative BELT_E... code and, when
 * they take (msg, n), write one human-readable sentence (no trailing
 * newline, no "belt:" prefix) into msg on failure.  Codes:
 *   BELT_EINVAL   bad arguments, a malformed URL or JSON
 *   BELT_ECONFIG  the server rejected the configuration: wrong password
 *                 (WRONGPASS, NOAUTH, "invalid password"), bad db number
 *   BELT_EIO      the server is unreachable, refused the connection, timed
 *                 out, or the connection broke (reconnecting may help)
 *   BELT_ENOMEM   out of memory
 *   BELT_EBUSY    (only where said) an unexpected server error reply
 * Nothing here prints, exits or keeps global state.
 */
#ifndef BELT_BROKER_H
#define BELT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "belt/job.h"

/* ---- defaults and names ------------------------------------------------ */

#define BELT__BROKER_DEFAULT_NS "belt"
#define BELT__BROKER_GROUP "workers"
#define BELT__BROKER_DEFAULT_PORT 6379
#define BELT__BROKER_DEFAULT_MAX_DELIVERIES 3u
#define BELT__BROKER_DEFAULT_VISIBILITY_NS (30 * INT64_C(1000000000))
#define BELT__BROKER_CONNECT_TIMEOUT_NS (5 * INT64_C(1000000000))
/* Reconnect backoff: first delay, doubled after each failed try up to the
 * cap, "equal jitter" (uniform in [d/2, d]). */
#define BELT__BROKER_BACKOFF_FIRST_NS (100 * INT64_C(1000000))
#define BELT__BROKER_BACKOFF_CAP_NS (5 * INT64_C(1000000000))

/* Environment variables read for the password when the URL has none, in
 * this order. */
#define BELT__BROKER_PASSWORD_ENV "BELT_REDIS_PASSWORD"
#define BELT__BROKER_PASSWORD_ENV2 "REDISCLI_AUTH"

/* ---- URL (app/broker/url.c) --------------------------------------------- */

typedef struct belt__broker_url {
    bool is_unix;        /* unix:///path */
    char host[256];      /* TCP: host name or address ("[::1]" -> "::1") */
    char path[108];      /* unix: socket path (sun_path size) */
    int port;            /* TCP: 1..65535, default 6379 */
    int db;              /* SELECT db: 0 unless /db or ?db=N */
    char user[128];      /* ACL user, "" for none (AUTH password only) */
    char password[512];  /* "" for none */
    bool password_from_env; /* the password came from the environment */
} belt__broker_url;

/* Parses
 *     redis://[[user]:password@]host[:port][/db]
 *     redis://[user:password@][ipv6]:port[/db]
 *     unix:///path/to/redis.sock[?db=N]   (also ?password=... &user=...)
 * into *out (fully overwritten).  Percent-escapes (%40 for '@', ...) in
 * user and password are decoded.  When the URL has no password, it is taken
 * from $BELT_REDIS_PASSWORD, else $REDISCLI_AUTH (if set and not empty).
 * Returns BELT_OK, or BELT_EINVAL with msg saying what is wrong (e.g.
 * "\"redis:/host\": expected redis://host:port or unix:///path", "port
 * 99999 out of range 1..65535"); *out is then unspecified.  Never touches
 * the network. */
int belt__broker_url_parse(const char *url, belt__broker_url *out, char *msg,
                           size_t n);

/* Writes a printable form of url without the password ("redis://h:6379/0",
 * "unix:///run/redis.sock") into buf (always NUL-terminated when size > 0).
 * Returns buf.  Can't fail. */
char *belt__broker_url_describe(const belt__broker_url *url, char *buf,
                                size_t size);

/* ---- connection (app/broker/conn.c) ------------------------------------- */

/* One connection to Redis: a hiredis context plus what is needed to make it
 * again (a copy of the URL).  Not thread-safe: one per thread. */
typedef struct belt__broker belt__broker;

/* Connects to url (copied), with connect_timeout_ns (<= 0: 5 s) for the
 * TCP/unix connect and as the read/write timeout of ordinary commands (a
 * blocking XREADGROUP/XREAD is given its own, longer timeout), then AUTH
 * (when a password is set) and SELECT (when db != 0).  On success stores the
 * connection in *out and returns BELT_OK.  On failure nothing is allocated,
 * *out is untouched and msg says why:
 *   BELT_EIO     "cannot connect to redis://h:6379: Connection refused"
 *   BELT_ECONFIG "redis://h:6379: the password was rejected (WRONGPASS ...)",
 *                "redis://h:6379 requires a password (NOAUTH): set it in
 *                 the URL or in $BELT_REDIS_PASSWORD", "SELECT 99: ..."
 *   BELT_ENOMEM */
int belt__broker_connect(belt__broker **out, const belt__broker_url *url,
                         int64_t connect_timeout_ns, char *msg, size_t n);

/* Closes the connection and frees b.  NULL is a no-op. */
void belt__broker_close(belt__broker *b);

/* True while the connection is believed good: false after any I/O or
 * protocol error (the context is then unusable until a reconnect).  Server
 * error replies (e.g. BUSYGROUP) do not break the connection. */
bool belt__broker_connected(const belt__broker *b);

/* The file descriptor of the current connection, or -1 when disconnected.
 * The owner thread may hand it to another thread, which may shutdown(fd,
 * SHUT_RDWR) it to wake a blocking read (the owner then sees an I/O error);
 * they must agree that the owner does not reconnect meanwhile (see
 * app/broker/worker.c).  Owner thread only, like every call here. */
int belt__broker_fd(const belt__broker *b);

/* One reconnect attempt: drops the current context (any pipelined replies
 * not yet read are lost) and connects again as belt__broker_connect() does.
 * Returns its codes; on failure b stays disconnected and may be retried. */
int belt__broker_reconnect(belt__broker *b, char *msg, size_t n);

/* Reconnects with exponential backoff (BELT__BROKER_BACKOFF_FIRST_NS,
 * doubling to BELT__BROKER_BACKOFF_CAP_NS, equal jitter), waiting between
 * tries in poll() on stop_fd (an eventfd or pipe; -1: none), not by
 * sleeping blind.  Returns BELT_OK once connected, BELT_ECANCELED as soon as
 * stop_fd is readable (b stays disconnected), or BELT_ECONFIG when the
 * server answers but rejects the password/db (retrying will not help); msg
 * holds the last error. */
int belt__broker_reconnect_backoff(belt__broker *b, int stop_fd, char *msg,
                                   size_t n);

/* Sets the read timeout of the connection for following commands
 * (<= 0: none, block forever).  BELT_OK, or BELT_EIO when disconnected. */
int belt__broker_set_timeout(belt__broker *b, int64_t timeout_ns);

/* Runs one command (argc arguments; lens may be NULL for NUL-terminated
 * arguments) and returns its reply, owned by the caller (freeReplyObject()),
 * which may be a REDIS_REPLY_ERROR.  Returns NULL on an I/O or protocol
 * error (the connection is then marked broken; msg says why).  Must not be
 * called while pipelined replies are pending. */
redisReply *belt__broker_command(belt__broker *b, int argc, const char **argv,
                                 const size_t *lens, char *msg, size_t n);

/* Pipelining: append queues a command in the output buffer (nothing is
 * sent); get_reply sends what is queued (on its first call) and reads the
 * next reply in order.  Every appended command must have its reply read
 * before belt__broker_command() is used again.  append returns BELT_OK or
 * BELT_ENOMEM/BELT_EIO; get_reply stores the reply (caller frees) in *out and
 * returns BELT_OK, or BELT_EIO (connection broken, *out NULL). */
int belt__broker_append(belt__broker *b, int argc, const char **argv,
                        const size_t *lens);
int belt__broker_get_reply(belt__broker *b, redisReply **out, char *msg,
                           size_t n);

/* Number of appended commands whose reply has not been read yet. */
size_t belt__broker_pending(const belt__broker *b);

/* Reads and frees every pending reply.  Returns BELT_OK if all were read
 * and none was an error reply; BELT_EBUSY (first error reply text in msg)
 * if some was an error; BELT_EIO if the connection broke. */
int belt__broker_drain(belt__broker *b, char *msg, size_t n);

/* A growing argument vector for one command, so callers need not count.
 * Strings are copied.  init/reset can't fail; add/addf return BELT_OK or
 * BELT_ENOMEM (the vector is unchanged). */
typedef struct belt__broker_cmd {
    int argc, cap;
    char **argv;
    size_t *lens;
} belt__broker_cmd;
void belt__broker_cmd_init(belt__broker_cmd *c);
void belt__broker_cmd_reset(belt__broker_cmd *c); /* argc = 0, keeps memory */
void belt__broker_cmd_free(belt__broker_cmd *c);
int belt__broker_cmd_add(belt__broker_cmd *c, const char *s, size_t len);
int belt__broker_cmd_adds(belt__broker_cmd *c, const char *s); /* strlen */
/* belt__broker_command() / belt__broker_append() with c's arguments. */
redisReply *belt__broker_cmd_run(belt__broker *b, const belt__broker_cmd *c,
                                 char *msg, size_t n);
int belt__broker_cmd_append(belt__broker *b, const belt__broker_cmd *c);

/* Copies a reply's error text (or describes an unexpected reply type) into
 * msg, prefixed by what ("XADD: ERR ...").  Returns msg.  Can't fail. */
char *belt__broker_reply_error(const redisReply *r, const char *what,
                               char *msg, size_t n);

/* ---- keys (app/broker/conn.c) ------------------------------------------- */

/* Writes "<ns>:<suffix>" (ns NULL: "belt") into buf.  Returns BELT_OK, or
 * BELT_EINVAL when it does not fit (buf then holds "").  Typical suffixes:
 * "jobs", "dead", "runs", "workers". */
int belt__broker_key(char *buf, size_t size, const char *ns,
                     const char *suffix);
/* Writes "<ns>:run:<run>:results".  Same returns. */
int belt__broker_key_results(char *buf, size_t size, const char *ns,
                             const char *run);

/* ---- stream entries (app/broker/conn.c) --------------------------------- */

/* A stream entry seen through a reply: pointers into the reply, valid while
 * the reply lives.  fields is the flat [name, value, name, value...] array
 * reply, or NULL for an entry deleted while pending (XAUTOCLAIM of 6.2). */
typedef struct belt__broker_entry {
    const char *id;
    const redisReply *fields;
    size_t from, to;  /* the view: fields->element[from..to) */
} belt__broker_entry;

/* The value of field `name` of e (and its length in *len, may be NULL), or
 * NULL when absent.  Can't fail. */
const char *belt__broker_entry_get(const belt__broker_entry *e,
                                   const char *name, size_t *len);

/* Most result records a worker packs into one entry of a result stream. */
#define BELT__BROKER_RECORDS_MAX 64

/* Result entries may carry several records (BELT__BROKER_RECORDS_MAX),
 * each a run of fields that starts with "key".  Stores up to max views of
 * e, one per record, in out (same id), and returns how many; an entry
 * without "key" fields is one record.  Can't fail. */
size_t belt__broker_entry_records(const belt__broker_entry *e,
                                  belt__broker_entry *out, size_t max);

/* Walks an array reply of entries ([[id, [f, v, ...]], ...], as found in
 * XRANGE, XREAD/XREADGROUP (per stream) and XAUTOCLAIM replies): stores up
 * to max entries in out and returns how many, or -1 when the reply does not
 * have that shape.  The entries point into `entries`. */
int belt__broker_entries(const redisReply *entries, belt__broker_entry *out,
                         size_t max);

/* For an XREAD/XREADGROUP reply: the entries array of the first stream, or
 * NULL for a nil reply (BLOCK timed out) or any other shape. */
const redisReply *belt__broker_xread_entries(const redisReply *r);

/* ---- shared stream commands (app/broker/conn.c) ------------------------- */

/* XGROUP CREATE <ns>:jobs workers <start_id> MKSTREAM (start_id NULL: "0");
 * an existing group (BUSYGROUP) is success.  BELT_OK, BELT_EIO, or
 * BELT_EBUSY for another error reply. */
int belt__broker_ensure_group(belt__broker *b, const char *ns,
                              const char *start_id, char *msg, size_t n);

/* Publishes count jobs of run `run` to <ns>:jobs in one pipelined round
 * trip: XADD <ns>:jobs * run R key <job id> job <JSON> max_deliveries M for
 * each (the job's id must be set and unique within the run), signed with
 * mac's signing key (fields kid and sig, see belt__broker_sign_fields())
 * unless mac is NULL (unsigned: --insecure).  When ids is
 * not NULL, stores each entry's stream id in ids[i] (for XDEL on cancel).
 * Returns BELT_OK when every XADD succeeded; BELT_EIO when the connection
 * broke (some jobs may have been added: the caller reconnects and decides);
 * BELT_EBUSY for an error reply; BELT_ENOMEM; BELT_EINVAL for a job without
 * id. */
typedef struct belt__broker_id {
    char s[48]; /* "<ms>-<seq>" */
} belt__broker_id;
typedef struct belt__broker_mac belt__broker_mac; /* app/broker/sign.c */
int belt__broker_xadd_jobs(belt__broker *b, const char *ns, const char *run,
                           const belt_job *const *jobs, size_t count,
                           unsigned max_deliveries, belt__broker_mac *mac,
                           belt__broker_id *ids, char *msg, size_t n);

/* The same, once: the XADDs and `SET mark_key mark EX ttl_s` in one
 * transaction (MULTI/EXEC), so that either every job of the call is in the
 * stream and mark_key holds mark, or nothing is.  A caller that lost the
 * connection before the reply reads mark_key to learn which, and never
 * publishes a job twice.  Returns as belt__broker_xadd_jobs() (BELT_EIO:
 * look at mark_key; BELT_EBUSY: the transaction was refused, nothing
 * applied). */
int belt__broker_xadd_jobs_once(belt__broker *b, const char *ns,
                                const char *run, const belt_job *const *jobs,
                                size_t count, unsigned max_deliveries,
                                belt__broker_mac *mac, const char *mark_key,
                                const char *mark, int ttl_s,
                                belt__broker_id *ids, char *msg, size_t n);

/* ---- codec (app/broker/codec.c) ----------------------------------------- */

/* Serialises every field of job except `user` as one compact JSON object:
 * id, kind ("exec", "sleep", "spin", "noop"), run or argv, env, cwd,
 * stdin_path, duration_ns, timeout_ns, kill_grace_ns, retries,
 * retry_delay_ns, retry_max_delay_ns, output ("capture", "files", "group",
 * "lines", "inherit", "discard"), output_limit, output_dir, seq.  Absent
 * (NULL) strings are left out.  Returns a malloc'd NUL-terminated string the
 * caller frees, or NULL when memory runs out or a string is not valid UTF-8
 * (JSON cannot carry it). */
char *belt__broker_job_to_json(const belt_job *job);

/* Parses text (as made by belt__broker_job_to_json(); unknown keys are
 * ignored, missing ones get belt_job_init()'s defaults) into a new job that
 * owns all its strings; free it with belt__broker_job_free().  `user` is
 * NULL.  Returns BELT_OK with *out set, or BELT_EINVAL (msg says which key
 * is wrong) / BELT_ENOMEM with *out untouched. */
int belt__broker_job_from_json(const char *text, belt_job **out, char *msg,
                               size_t n);

/* Frees a job made by belt__broker_job_from_json().  NULL is a no-op. */
void belt__broker_job_free(belt_job *job);

/* The result record a worker publishes: belt__report_result_line(r) (the
 * JSON Lines object of `belt run`, without its newline) with "worker"
 * replaced by the worker id string and "host" and "delivery" added.
 * Returns a malloc'd string (length in *len, may be NULL) or NULL when
 * memory runs out. */
char *belt__broker_result_json(const belt_result *r, const char *host,
                               const char *worker_id, unsigned delivery,
                               size_t *len);

/* ---- result numbers beside the record (app/broker/meta.c) --------------- */

/* Writes r's status, exit code, signal, attempts, times and whether it
 * carries text (stdout, stderr, error) as the short "meta" field of a result
 * entry.  BELT_OK, or BELT_EINVAL when buf is too small (200 bytes
 * always do). */
int belt__broker_meta_format(const belt_result *r, char *buf, size_t n);

/* Reads a "meta" field into r (status, exit_code, signal, attempts,
 * queued_ns, started_ns, ended_ns, duration_ns) and *text.  BELT_OK, or
 * BELT_EINVAL (r untouched) when meta is not one this version knows: the
 * caller then parses the record instead. */
int belt__broker_meta_parse(const char *meta, size_t len, belt_result *r,
                            bool *text);

/* ---- keys and signatures (app/broker/sign.c) ---------------------------- */

/* Jobs and results are signed with HMAC-SHA256 (the essay of sign.c says
 * what is covered and why).  A key file holds one or two keys: the first
 * signs, each verifies. */
#define BELT__BROKER_KEY_ENV "BELT_KEY_FILE"
#define BELT__BROKER_KEYS_MAX 2
#define BELT__BROKER_KEY_BYTES 32
#define BELT__BROKER_KID_HEX 8   /* a key id: 8 hex digits */
#define BELT__BROKER_SIG_HEX 64  /* a tag: 64 hex digits */
#define BELT__BROKER_SIG_LEN (BELT__BROKER_KID_HEX + 1 + BELT__BROKER_SIG_HEX)
                                 /* the "sig" field: "<kid>.<tag>" */
#define BELT__BROKER_TAG_JOB "belt-job-1"
#define BELT__BROKER_TAG_RESULT "belt-result-1"

typedef struct belt__broker_keys {
    unsigned count;                  /* 0..2; key[0] signs */
    unsigned char key[BELT__BROKER_KEYS_MAX][BELT__BROKER_KEY_BYTES];
    char id[BELT__BROKER_KEYS_MAX][BELT__BROKER_KID_HEX + 1];
} belt__broker_keys;

/* Reads the key file at path into *out (overwritten).  Refuses a file that
 * is not a regular file, that group or others may access (mode & 077), that
 * holds no key, more than two, or a line that is neither a comment nor 64
 * hex digits.  BELT_OK; BELT_ESYS (cannot open or read it: errno set, msg
 * says which file and why), BELT_ECONFIG (not a usable key file: msg says
 * what to do), BELT_ENOMEM.  On failure *out holds no key. */
int belt__broker_keys_load(belt__broker_keys *out, const char *path,
                           char *msg, size_t n);

/* Appends key (copied) to k, with its id.  BELT_OK, BELT_EBUSY (k holds two
 * already), BELT_ENOMEM (libcrypto has no HMAC). */
int belt__broker_keys_add(belt__broker_keys *k, const unsigned char *key,
                          char *msg, size_t n);

/* Fills key with 32 bytes from libcrypto's random generator (RAND_bytes).
 * BELT_OK or BELT_ESYS. */
int belt__broker_keys_generate(unsigned char key[BELT__BROKER_KEY_BYTES],
                               char *msg, size_t n);

/* Writes k to path as a key file with mode 0600: to a temporary file beside
 * it, fsync'd, then renamed over path, so a reader never sees half a file.
 * Unless replace, an existing path is BELT_EBUSY.  BELT_OK, BELT_ESYS (msg
 * says which call failed), BELT_EINVAL (no key). */
int belt__broker_keys_save(const belt__broker_keys *k, const char *path,
                           bool replace, char *msg, size_t n);

/* The key a command uses: the file key_file (--key-file; NULL: the file
 * named by $BELT_KEY_FILE), or none with insecure (--insecure, which then
 * must be said: the caller warns).  Into *out (overwritten; count 0 for
 * none).  BELT_OK; BELT_EINVAL (both given), BELT_ECONFIG (no key and no
 * --insecure: msg says how to make one, or an unusable key file), BELT_ESYS
 * (the file cannot be read); msg names the option or variable. */
int belt__broker_keys_choose(belt__broker_keys *out, const char *key_file,
                             bool insecure, char *msg, size_t n);

/* The warning a command prints once when it runs with --insecure. */
#define BELT__BROKER_INSECURE_WARNING                                        \
    "warning: --insecure: jobs and results are not signed; anyone who can "  \
    "write to this Redis can run commands on every worker"

/* Wipes the key bytes of k (k->count becomes 0).  Can't fail. */
void belt__broker_keys_wipe(belt__broker_keys *k);

/* belt__broker_mac (declared above): one thread's HMAC contexts, one per
 * key of a keyring (keyed once).  Not thread-safe: each thread that signs or
 * verifies makes its own. */

/* Makes the contexts for k's keys (k may be wiped afterwards).  BELT_OK with
 * *out set; BELT_EINVAL (k empty), BELT_ENOMEM (out of memory, or no HMAC in
 * libcrypto). */
int belt__broker_mac_new(belt__broker_mac **out, const belt__broker_keys *k,
                         char *msg, size_t n);

/* Frees m (and the keyed contexts).  NULL is a no-op. */
void belt__broker_mac_free(belt__broker_mac *m);

/* The id of the signing key (8 hex digits), valid while m lives. */
const char *belt__broker_mac_kid(const belt__broker_mac *m);

/* Signs the fields of a stream entry: f[0..count) are name, value, name,
 * value... (lens: their lengths, or NULL for NUL-terminated strings), a
 * field named "sig" skipped; tag says what kind of entry
 * (BELT__BROKER_TAG_JOB, ..._RESULT); run (NULL: none) is bound in for
 * entries that do not carry it.  Writes "<key id>.<64 hex digits>" and a
 * NUL (BELT__BROKER_SIG_LEN + 1 bytes) into sig; the caller adds it to the
 * entry as the field "sig".  Can't fail. */
void belt__broker_sign_fields(belt__broker_mac *m, const char *tag,
                              const char *run, int count,
                              const char *const *f, const size_t *lens,
                              char sig[BELT__BROKER_SIG_LEN + 1]);

/* Checks the "sig" field of the entry view e against its other
 * fields (as belt__broker_sign_fields() signed them, with the same tag and
 * run).  BELT_OK, or BELT_EINVAL with why saying what is wrong: not signed,
 * signed with a key this keyring does not hold (both ids named), or a bad
 * signature (changed or forged). */
int belt__broker_verify_entry(belt__broker_mac *m, const char *tag,
                              const char *run, const belt__broker_entry *e,
                              char *why, size_t n);

/* ---- the worker engine (app/broker/worker.c) ---------------------------- */

typedef struct belt__broker_worker belt__broker_worker;

typedef struct belt__broker_worker_options {
    const belt__broker_url *url; /* required; copied */
    const char *ns;              /* NULL: "belt"; copied */
    unsigned slots;              /* jobs run at once (pool workers); 0: CPUs */
    unsigned prefetch;           /* jobs read beyond the free slots and kept
                                  * queued in the pool (helps tiny jobs), or
                                  * BELT__BROKER_PREFETCH_AUTO (the default):
                                  * about 20 ms of work per slot by the
                                  * recent mean job time, at most 1024 */
    int64_t visibility_ns;       /* <= 0: 30 s */
    unsigned max_deliveries;     /* for entries without a max_deliveries
                                  * field; 0: 3 */
    const char *id;              /* consumer name; NULL: "<host>:<pid>" */
    const belt__broker_keys *keys; /* jobs must be signed with one of these
                                  * (copied); NULL or none: --insecure, run
                                  * whatever comes */
    int64_t connect_timeout_ns;  /* <= 0: 5 s */
    /* Optional progress messages (connected, lost, reconnected,
     * dead-lettered...): called from the worker's threads, one sentence
     * without newline.  NULL: none. */
    void (*log)(void *ctx, const char *msg);
    void *log_ctx;
} belt__broker_worker_options;

#define BELT__BROKER_PREFETCH_AUTO UINT32_MAX

/* Fills o with the defaults (url NULL).  Can't fail. */
void belt__broker_worker_options_init(belt__broker_worker_options *o);

/* Connects (two connections: reader and publisher), creates the consumer
 * group if missing, and prepares (no thread runs yet).  Startup errors come
 * here, with belt__broker_connect()'s codes and messages.  On success stores
 * the worker in *out. */
int belt__broker_worker_create(belt__broker_worker **out,
                               const belt__broker_worker_options *o,
                               char *msg, size_t n);

/* Runs the worker loop in the calling thread (it starts the pool and the
 * publisher thread and joins them before returning) until
 * belt__broker_worker_stop() is called: then reads no more jobs, lets the
 * running ones finish, publishes and acknowledges their results, removes
 * its heartbeat, and returns BELT_OK.  A lost connection is retried with
 * backoff (finished results are kept and published after the reconnect).
 * Returns BELT_ECONFIG when a reconnect is refused for good (password
 * changed), BELT_ESYS/BELT_ENOMEM when a thread, pool or memory could not be
 * had; msg says why.  Call once. */
int belt__broker_worker_run(belt__broker_worker *w, char *msg, size_t n);

/* Asks the loop to stop gracefully (see above).  Thread-safe, idempotent,
 * may be called before or during belt__broker_worker_run().  Not
 * async-signal-safe (call it from a signal thread). */
void belt__broker_worker_stop(belt__broker_worker *w);

/* Gives up: as stop, and from now on no result is published or
 * acknowledged (not even of jobs that finish well), so every job read and
 * not yet acknowledged stays pending and is redelivered elsewhere after the
 * visibility timeout.  Does not block.  Thread-safe, idempotent. */
void belt__broker_worker_abandon(belt__broker_worker *w);

/* Stops at once: abandon(), then the running jobs are canceled (process
 * groups get SIGTERM, then SIGKILL after their grace period; blocks until
 * they are reaped).  A caller that kills the jobs' processes itself calls
 * abandon() first, so that no result of a killed job is published.
 * Thread-safe, idempotent. */
void belt__broker_worker_kill(belt__broker_worker *w);

/* Counters, readable at any time: jobs run and published, dead-lettered,
 * reclaimed (taken over from other consumers), reconnects. */
typedef struct belt__broker_worker_stats {
    uint64_t done, dead, reclaimed, reconnects;
    uint64_t refused;  /* not run: signature missing or wrong (dead-lettered) */
    uint64_t skipped;  /* not run: their run was over */
    uint64_t superseded; /* run, result not published: another worker had
                        * taken the job over meanwhile (its result counts) */
} belt__broker_worker_stats;
void belt__broker_worker_get_stats(belt__broker_worker *w,
                                   belt__broker_worker_stats *s);

/* The id of the key that signs this worker's results, or NULL when it runs
 * without keys (valid until free). */
const char *belt__broker_worker_kid(const belt__broker_worker *w);

/* The consumer name in use (valid until free). */
const char *belt__broker_worker_id(const belt__broker_worker *w);

/* Frees w (after run returned, or if it never ran).  NULL is a no-op. */
void belt__broker_worker_free(belt__broker_worker *w);

#endif /* BELT_BROKER_H */
