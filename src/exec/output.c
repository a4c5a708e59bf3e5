/* exec/output.c: where an exec job's stdout and stderr go (the output modes
 * of job.h), one belt__sink per stream and attempt.
 *
 *   CAPTURE  a pipe; the wait loop reads it and keeps up to `limit` bytes.
 *            Beyond the limit it keeps reading and drops the bytes, so the
 *            child never blocks on a full pipe (a flood ends as fast as the
 *            child can write).
 *   LINES    a pipe; each read's complete lines go to belt's own fd 1 or 2
 *            in one write() (together with the partial line held from
 *            before), so lines of concurrent jobs never mix mid-line.  The
 *            held partial line is bounded (1 MiB; then written as is).
 *   FILES    <output_dir>/<sanitized id>.out|.err, opened by belt and given
 *            to the child; belt reads nothing.
 *   GROUP    an unlinked temporary file (O_TMPFILE, or mkostemp + unlink
 *            where the file system lacks it) given to the child and then to
 *            the result at offset 0.  It has no name at any moment the child
 *            runs, so a SIGKILLed belt leaves nothing behind.
 *   INHERIT  nothing: the child writes to belt's own fd.
 *   DISCARD  /dev/null.
 *
 * Every fd here is O_CLOEXEC: with many workers spawning at once, another
 * job's child must not inherit our pipe ends (it would hold them open).  The
 * spawn also closes every fd above 2 in the child (closefrom), belt and
 * braces.
 */
#include "exec/internal.h"

#include "belt/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define LINE_HOLD_MAX ((size_t)1 << 20)

void belt__sink_init(belt__sink *s, int stream)
{
    memset(s, 0, sizeof *s);
    s->stream = stream;
    s->mode = BELT_OUTPUT_INHERIT;
    s->child_fd = -1;
    s->read_fd = -1;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- opening ------------------------------------------------------------ */

static const char *stream_name(const belt__sink *s)
{
    return s->stream == 1 ? "stdout" : "stderr";
}

static int open_pipe(belt__sink *s, belt_result *r)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        belt__set_error(r, "cannot create a pipe for %s: %s", stream_name(s),
                        strerror(errno));
        return -1;
    }
    s->read_fd = belt__fd_above_stdio(p[0]);
    s->child_fd = belt__fd_above_stdio(p[1]);
    if (s->read_fd < 0 || s->child_fd < 0) {
        belt__set_error(r, "cannot create a pipe for %s: %s", stream_name(s),
                        strerror(errno));
        return -1;
    }
    int fl = fcntl(s->read_fd, F_GETFL);
    if (fl < 0 || fcntl(s->read_fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        belt__set_error(r, "cannot set up the %s pipe: %s", stream_name(s),
                        strerror(errno));
        return -1;
    }
    int sz = fcntl(s->read_fd, F_GETPIPE_SZ);
    s->pipe_size = sz > 0 ? (size_t)sz : (size_t)READ_CHUNK;
    return 0;
}

/* mkdir -p dir (mode 0755).  Concurrent workers may race to create the same
 * directories: EEXIST is success.  Returns 0 or -1 with errno set. */
static int make_dirs(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (p == NULL)
        return -1;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        if (p[i - 1] == '/')
            continue; /* "a//b" */
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            errno = e;
            return -1;
        }
        p[i] = c;
    }
    free(p);
    if (stat(dir, &st) != 0)
        return -1;
    return S_ISDIR(st.st_mode) ? 0 : (errno = ENOTDIR, -1);
}

/* The file name for a job id: [A-Za-z0-9._-] kept, other bytes and a leading
 * '.' become '_', at most 200 bytes; a NULL or empty id gives job-<seq>.
 * Returns a new string or NULL. */
static char *file_stem(const belt_job *job)
{
    char tmp[32];
    const char *id = job->id;
    if (id == NULL || *id == '\0') {
        snprintf(tmp, sizeof tmp, "job-%llu", (unsigned long long)job->seq);
        id = tmp;
    }
    size_t n = strlen(id);
    if (n > 200)
        n = 200;
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (c == '.' && i > 0);
        s[i] = ok ? (char)c : '_';
    }
    s[n] = '\0';
    return s;
}

static int open_file(belt__sink *s, const belt_job *job, belt_result *r)
{
    const char *dir = job->output_dir;
    if (dir == NULL || *dir == '\0') {
        belt__set_error(r, "output mode files needs an output directory");
        return -1;
    }
    if (make_dirs(dir) != 0) {
        belt__set_error(r, "cannot create output directory %s: %s", dir,
                        strerror(errno));
        return -1;
    }
    char *stem = file_stem(job);
    if (stem == NULL) {
        belt__set_error(r, "out of memory");
        return -1;
    }
    size_t n = strlen(dir) + strlen(stem) + 8;
    s->path = malloc(n);
    if (s->path == NULL) {
        free(stem);
        belt__set_error(r, "out of memory");
        return -1;
    }
    snprintf(s->path, n, "%s/%s.%s", dir, stem, s->stream == 1 ? "out" : "err");
    free(stem);
    s->child_fd = belt__fd_above_stdio(
        open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644));
    if (s->child_fd < 0) {
        belt__set_error(r, "cannot open output file %s: %s", s->path,
                        strerror(errno));
        return -1;
    }
    return 0;
}

/* An unlinked temporary file in $TMPDIR (or /tmp), open read-write. */
static int open_spool(belt__sink *s, belt_result *r)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* No O_TMPFILE on this file system: a named file, unlinked at once
         * (belt could be killed in that instant only). */
        size_t n = strlen(dir) + 32;
        char *tmpl = malloc(n);
        if (tmpl == NULL) {
            belt__set_error(r, "out of memory");
            return -1;
        }
        snprintf(tmpl, n, "%s/belt-spool-XXXXXX", dir);
        fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd >= 0)
            unlink(tmpl);
        free(tmpl);
    }
    fd = belt__fd_above_stdio(fd);
    if (fd < 0) {
        belt__set_error(r, "cannot create a temporary file in %s: %s", dir,
                        strerror(errno));
        return -1;
    }
    s->child_fd = fd;
    s->keep_child_fd = true;
    return 0;
}

int belt__sink_open(belt__sink *s, const belt_job *job, belt_result *r)
{
    s->mode = job->output;
    switch (job->output) {
    case BELT_OUTPUT_CAPTURE:
        s->limit = job->output_limit ? job->output_limit
                                     : BELT__DEFAULT_OUTPUT_LIMIT;
        return open_pipe(s, r);
    case BELT_OUTPUT_LINES:
        return open_pipe(s, r);
    case BELT_OUTPUT_FILES:
        return open_file(s, job, r);
    case BELT_OUTPUT_GROUP:
        return open_spool(s, r);
    case BELT_OUTPUT_INHERIT:
        return 0;
    case BELT_OUTPUT_DISCARD:
        s->child_fd = belt__fd_above_stdio(open("/dev/null", O_WRONLY | O_CLOEXEC));
        if (s->child_fd < 0) {
            belt__set_error(r, "cannot open /dev/null: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    belt__set_error(r, "unknown output mode %d", (int)job->output);
    return -1;
}

void belt__sink_spawned(belt__sink *s)
{
    if (!s->keep_child_fd)
        close_fd(&s->child_fd);
}

/* ---- reading ------------------------------------------------------------ */

/* Grows s->buf to hold `need` bytes (plus a NUL).  False when out of memory. */
static bool reserve(belt__sink *s, size_t need)
{
    if (need < s->cap)
        return true;
    size_t cap = s->cap ? s->cap : 4096;
    while (cap <= need)
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    if (s->mode == BELT_OUTPUT_CAPTURE && s->limit < SIZE_MAX && cap > s->limit + 1)
        cap = s->limit + 1;
    char *b = realloc(s->buf, cap);
    if (b == NULL)
        return false;
    s->buf = b;
    s->cap = cap;
    return true;
}

static void keep(belt__sink *s, const char *data, size_t n)
{
    size_t room = s->limit - s->len;
    size_t take = n < room ? n : room;
    if (take < n)
        s->truncated = true;
    if (take == 0)
        return;
    if (!reserve(s, s->len + take)) {
        s->truncated = true; /* out of memory: keep what we have */
        return;
    }
    memcpy(s->buf + s->len, data, take);
    s->len += take;
}

/* write() all of it to belt's own fd; one call unless the fd takes less.
 * A failing fd (EPIPE: nobody reads belt's output) stops the pass-through
 * for this stream; the job goes on. */
static void pass(belt__sink *s, const char *data, size_t n)
{
    /* belt's fd may be non-blocking: a full one is waited for (back-pressure
     * on this job, as a blocking fd would give). */
    if (!s->write_failed && belt__write_full(s->stream, data, n, -1) != BELT_OK)
        s->write_failed = true;
}

static void hold(belt__sink *s, const char *data, size_t n)
{
    if (n == 0)
        return;
    if (s->len + n > LINE_HOLD_MAX || !reserve(s, s->len + n)) {
        /* An over-long line (or no memory): write what is held, as is. */
        pass(s, s->buf, s->len);
        s->len = 0;
        if (n > LINE_HOLD_MAX || !reserve(s, n)) {
            pass(s, data, n);
            return;
        }
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void lines(belt__sink *s, const char *data, size_t n)
{
    const char *nl = memrchr(data, '\n', n);
    if (nl == NULL) {
        hold(s, data, n);
        return;
    }
    size_t whole = (size_t)(nl - data) + 1;
    if (s->len == 0) {
        pass(s, data, whole);
    } else if (reserve(s, s->len + whole)) {
        memcpy(s->buf + s->len, data, whole);
        pass(s, s->buf, s->len + whole);
        s->len = 0;
    } else {
        pass(s, s->buf, s->len);
        s->len = 0;
        pass(s, data, whole);
    }
    hold(s, data + whole, n - whole);
}

/* One read(); returns the bytes read, 0 at EOF or error (read_fd closed),
 * -1 when nothing is there now. */
static ssize_t read_once(belt__sink *s, size_t max)
{
    char tmp[READ_CHUNK];
    if (max > sizeof tmp)
        max = sizeof tmp;
    ssize_t n = read(s->read_fd, tmp, max);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return -1;
    if (n <= 0) {
        close_fd(&s->read_fd);
        return 0;
    }
    if (s->mode == BELT_OUTPUT_CAPTURE)
        keep(s, tmp, (size_t)n);
    else if (s->mode == BELT_OUTPUT_LINES)
        lines(s, tmp, (size_t)n);
    return n;
}

void belt__sink_read(belt__sink *s)
{
    if (s->read_fd >= 0)
        (void)read_once(s, READ_CHUNK);
}

void belt__sink_drain(belt__sink *s)
{
    size_t budget = s->pipe_size;
    while (s->read_fd >= 0 && budget > 0) {
        ssize_t n = read_once(s, budget);
        if (n <= 0)
            break;
        budget -= (size_t)n;
    }
    close_fd(&s->read_fd);
}

/* ---- handing over ------------------------------------------------------- */

void belt__sink_finish(belt__sink *s, belt_result *r)
{
    bool out = s->stream == 1;
    switch (s->mode) {
    case BELT_OUTPUT_CAPTURE: {
        if (!reserve(s, s->len)) {
            /* No room for the NUL: give up this stream's text. */
            free(s->buf);
            s->buf = NULL;
            s->len = s->cap = 0;
            s->truncated = true;
            break;
        }
        s->buf[s->len] = '\0';
        char **dst = out ? &r->out : &r->err;
        free(*dst);
        *dst = s->buf;
        *(out ? &r->out_len : &r->err_len) = s->len;
        *(out ? &r->out_truncated : &r->err_truncated) = s->truncated;
        s->buf = NULL;
        s->len = s->cap = 0;
        break;
    }
    case BELT_OUTPUT_LINES:
        pass(s, s->buf, s->len); /* the last, unterminated line */
        s->len = 0;
        break;
    case BELT_OUTPUT_FILES: {
        char **dst = out ? &r->out_path : &r->err_path;
        free(*dst);
        *dst = s->path;
        s->path = NULL;
        break;
    }
    case BELT_OUTPUT_GROUP:
        if (s->child_fd >= 0) {
            /* The child wrote through the same open file description. */
            (void)lseek(s->child_fd, 0, SEEK_SET);
            int *dst = out ? &r->out_fd : &r->err_fd;
            if (*dst >= 0)
                close(*dst);
            *dst = s->child_fd;
            s->child_fd = -1;
        }
        break;
    case BELT_OUTPUT_INHERIT:
    case BELT_OUTPUT_DISCARD:
        break;
    }
}

void belt__sink_close(belt__sink *s)
{
    close_fd(&s->read_fd);
    close_fd(&s->child_fd);
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
    free(s->path);
    s->path = NULL;
}
