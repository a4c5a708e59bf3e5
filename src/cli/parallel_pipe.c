/* parallel_pipe.c: --pipe and --pipepart, GNU parallel's way of splitting
 * one big input into blocks of whole records, each given to a job on its
 * stdin.
 *
 * --pipe (parallel's spreadstdin, pass and pass_n) reads the input in
 * rounds.  Each round reads until the buffer holds a whole multiple of the
 * block size (or the input ends), then cuts the buffer after the *last*
 * record end in it (record end = --recend followed by --recstart; default a
 * newline); what follows the cut waits for the next round.  A round that
 * cuts nothing (a record longer than the block) grows the block size by
 * 1.3x + 1, up to 2 GiB - 1.  At the end of the input the rest is one last
 * block.  With -N n the cuts come after every n-th record end instead,
 * found as parallel's nindex() finds them (the first search starts at
 * byte 1, so a record end at byte 0 does not count), as many as the buffer
 * holds, each round.
 *
 * --pipepart -a FILE (find_split_positions) needs no reading of the data
 * it does not cut: block k starts where block k-1 ended, the next cut is
 * the first record end at or after start + block size, and the last block
 * ends at the end of the file.  A negative --block -n means n blocks per
 * job slot (block size = 1 + size / slots / n); the default is -10, and
 * -1 with --round-robin.
 *
 * A block reaches its job as a memfd (an anonymous file in RAM, or an
 * unlinked temporary file where memfd_create is missing): the job's
 * stdin_path is /proc/self/fd/N, which the executor opens in belt's own
 * process just before spawning, getting a fresh description of the same
 * file at offset 0.  The part of a --pipepart file is copied into it with
 * copy_file_range(2) (sendfile, read and write when that fails), so it
 * never passes through user space.
 *
 * --round-robin feeds up to `slots` long-lived jobs through pipes instead:
 * each block goes to the first job (in rotating order) whose pipe has
 * room, whole, so a job sees whole records (belt__par_rr_write).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "belt/error.h"
#include "cli/parallel.h"
#include "util/fd.h"

#define MAX_BLOCK ((int64_t)2147483647) /* parallel: 2^31 - 1 */

struct belt__par_blocks {
    int fd;
    int stop_fd;
    char *buf;
    size_t len, cap;
    size_t consumed;       /* handed out last time: dropped at the next call */
    int64_t bs;            /* the block size now */
    unsigned nrec;         /* -N */
    char *sep;             /* recend then recstart */
    size_t sep_len, re_len;
    bool eof, started, scanned, wrote, finished;
};

int belt__par_blocks_new(belt__par_blocks **out, int fd,
                         const belt__par_pipe_opts *o)
{
    belt__par_blocks *b = calloc(1, sizeof *b);
    if (b == NULL)
        return BELT_ENOMEM;
    b->fd = fd;
    b->stop_fd = o->stop_fd;
    b->bs = o->block > 0 ? (o->block > MAX_BLOCK ? MAX_BLOCK : o->block)
                         : 1024 * 1024;
    b->nrec = o->records;
    b->sep_len = o->recend_len + o->recstart_len;
    b->re_len = o->recend_len;
    if ((b->sep = malloc(b->sep_len + 1)) == NULL) {
        free(b);
        return BELT_ENOMEM;
    }
    memcpy(b->sep, o->recend, o->recend_len);
    memcpy(b->sep + o->recend_len, o->recstart, o->recstart_len);
    b->scanned = true;
    *out = b;
    return BELT_OK;
}

void belt__par_blocks_free(belt__par_blocks *b)
{
    if (b == NULL)
        return;
    free(b->sep);
    free(b->buf);
    free(b);
}

/* Perl's index(): the first sep at or after `from`, or -1. */
static long find_at(const char *buf, size_t len, const char *sep, size_t sl,
                    size_t from)
{
    if (from > len)
        return -1;
    if (sl == 0)
        return (long)from;
    const char *h = memmem(buf + from, len - from, sep, sl);
    return h ? (long)(h - buf) : -1;
}

/* Perl's rindex(): the last sep, or -1. */
static long find_last(const char *buf, size_t len, const char *sep, size_t sl)
{
    if (sl == 0)
        return (long)len;
    if (len < sl)
        return -1;
    for (size_t i = len - sl + 1; i-- > 0;)
        if (buf[i] == sep[0] && memcmp(buf + i, sep, sl) == 0)
            return (long)i;
    return -1;
}

/* Reads until the buffer holds a multiple of the block size, or to EOF. */
static int read_round(belt__par_blocks *b)
{
    size_t want = (size_t)b->bs - b->len % (size_t)b->bs;
    if (b->len + want + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->len + want + 1)
            nc *= 2;
        char *nb = realloc(b->buf, nc);
        if (nb == NULL)
            return BELT_ENOMEM;
        b->buf = nb;
        b->cap = nc;
    }
    while (want > 0) {
        if (b->stop_fd >= 0) {
            int rc = belt__wait_readable(b->fd, b->stop_fd);
            if (rc != BELT_OK)
                return rc;
        }
        ssize_t got = read(b->fd, b->buf + b->len, want);
        if (got < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (got < 0)
            return BELT_ESYS;
        if (got == 0) {
            b->eof = true;
            break;
        }
        b->len += (size_t)got;
        want -= (size_t)got;
    }
    return BELT_OK;
}

int belt__par_blocks_next(belt__par_blocks *b, const char **p, size_t *n)
{
    if (b->consumed > 0) {
        memmove(b->buf, b->buf + b->consumed, b->len - b->consumed);
        b->len -= b->consumed;
        b->consumed = 0;
    }
    for (;;) {
        if (!b->scanned) {
            size_t cut = 0;
            if (b->nrec > 0) {
                long i = 0;
                for (unsigned k = 0; k < b->nrec && i >= 0; k++)
                    i = find_at(b->buf, b->len, b->sep, b->sep_len,
                                (size_t)i + 1);
                if (i >= 0 && b->len > 0)
                    cut = (size_t)i + b->re_len;
                else
                    b->scanned = true;
            } else {
                b->scanned = true;
                if (!b->eof) {
                    long i = find_last(b->buf, b->len, b->sep, b->sep_len);
                    if (i >= 0)
                        cut = (size_t)i + b->re_len;
                }
            }
            if (cut > b->len)
                cut = b->len;
            if (cut > 0) {
                b->wrote = true;
                b->consumed = cut;
                *p = b->buf;
                *n = cut;
                return 1;
            }
            continue;
        }
        if (b->eof) {
            if (!b->finished && b->len > 0) {
                b->finished = true;
                b->consumed = b->len;
                *p = b->buf;
                *n = b->len;
                return 1;
            }
            return 0;
        }
        if (b->started && !b->wrote && b->bs < MAX_BLOCK) {
            int64_t nb = b->bs + (b->bs * 3 + 9) / 10 + 1; /* ceil(1.3x+1) */
            b->bs = nb > MAX_BLOCK ? MAX_BLOCK : nb;
        }
        int rc = read_round(b);
        if (rc != BELT_OK)
            return rc;
        b->started = true;
        b->scanned = false;
        b->wrote = false;
    }
}

/* ---- --pipepart --------------------------------------------------------- */

int belt__par_split_file(int fd, int64_t size, int64_t block,
                         const belt__par_pipe_opts *o, int64_t **pos,
                         size_t *npos)
{
    size_t cap = 16, n = 0;
    int64_t *v = malloc(cap * sizeof *v);
    char *sep = malloc(o->recend_len + o->recstart_len + 1);
    char *buf = NULL;
    size_t blen = 0, bcap = 0;
    int rc = BELT_ENOMEM;
    if (v == NULL || sep == NULL)
        goto fail;
    memcpy(sep, o->recend, o->recend_len);
    memcpy(sep + o->recend_len, o->recstart, o->recstart_len);
    size_t sl = o->recend_len + o->recstart_len;
    if (block < 1)
        block = 1;
    v[n++] = 0;
    for (int64_t p = block; p < size; p += block) {
        int64_t cut = -1;
        if (sl == 0) {
            cut = p;
        } else {
            blen = 0;
            for (;;) {
                if (blen + 131072 > bcap) {
                    size_t nc = bcap ? bcap * 2 : 262144;
                    char *nb = realloc(buf, nc);
                    if (nb == NULL)
                        goto fail;
                    buf = nb;
                    bcap = nc;
                }
                ssize_t got = pread(fd, buf + blen, 131072,
                                    (off_t)(p + (int64_t)blen));
                if (got < 0 && errno == EINTR)
                    continue;
                if (got < 0) {
                    rc = BELT_ESYS;
                    goto fail;
                }
                if (got == 0)
                    break;
                size_t from = blen >= sl ? blen - sl + 1 : 0;
                blen += (size_t)got;
                long i = find_at(buf, blen, sep, sl, from);
                if (i >= 0) {
                    cut = p + i + (int64_t)o->recend_len;
                    break;
                }
            }
        }
        if (cut < 0)
            continue;
        p = cut;
        if (n == cap) {
            cap *= 2;
            int64_t *nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL)
                goto fail;
            v = nv;
        }
        v[n++] = cut;
    }
    if (v[n - 1] != size) {
        if (n == cap) {
            int64_t *nv = realloc(v, (cap + 1) * sizeof *nv);
            if (nv == NULL)
                goto fail;
            v = nv;
        }
        v[n++] = size;
    }
    free(sep);
    free(buf);
    *pos = v;
    *npos = n;
    return BELT_OK;

fail:
    free(v);
    free(sep);
    free(buf);
    return rc;
}

/* ---- blocks as files ---------------------------------------------------- */

/* An anonymous file: a memfd, else an unlinked temporary file. */
static int anon_file(void)
{
    int fd = memfd_create("belt-block", MFD_CLOEXEC);
    if (fd >= 0 || errno != ENOSYS)
        return fd;
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/belt-block-XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

int belt__par_block_file(const char *p, size_t n)
{
    int fd = belt__fd_above_stdio(anon_file());
    if (fd < 0)
        return -1;
    if (n > 0 && belt__write_full(fd, p, n, -1) != BELT_OK) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int belt__par_part_file(int src, int64_t off, int64_t len)
{
    int fd = belt__fd_above_stdio(anon_file());
    if (fd < 0)
        return -1;
    off_t in = (off_t)off;
    int64_t left = len;
    bool try_cfr = true, try_sendfile = true;
    char *buf = NULL;
    while (left > 0) {
        ssize_t got = -1;
        size_t chunk = left > (1 << 30) ? (1 << 30) : (size_t)left;
        if (try_cfr) {
            got = copy_file_range(src, &in, fd, NULL, chunk, 0);
            if (got < 0 && errno != EINTR) {
                try_cfr = false;
                continue;
            }
        } else if (try_sendfile) {
            got = sendfile(fd, src, &in, chunk);
            if (got < 0 && errno != EINTR) {
                try_sendfile = false;
                continue;
            }
        } else {
            if (buf == NULL && (buf = malloc(1 << 16)) == NULL)
                goto fail;
            got = pread(src, buf, chunk < (1 << 16) ? chunk : (1 << 16), in);
            if (got > 0 && belt__write_full(fd, buf, (size_t)got, -1) != BELT_OK)
                goto fail;
            if (got > 0)
                in += got;
        }
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto fail;
        if (got == 0)
            break; /* the file shrank */
        left -= got;
    }
    free(buf);
    return fd;

fail:;
    int e = errno;
    free(buf);
    close(fd);
    errno = e;
    return -1;
}

/* ---- --round-robin ------------------------------------------------------ */

int belt__par_rr_write(const int *fds, size_t n, size_t *turn, bool *dead,
                       const char *p, size_t len, int stop_fd)
{
    struct pollfd pf[65];
    size_t map[65];
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < n && k < 64; i++) {
            size_t s = (*turn + i) % n;
            if (dead[s])
                continue;
            pf[k] = (struct pollfd){.fd = fds[s], .events = POLLOUT};
            map[k++] = s;
        }
        if (k == 0)
            return BELT_CLOSED;
        pf[k] = (struct pollfd){.fd = stop_fd, .events = POLLIN};
        int r = poll(pf, (nfds_t)k + (stop_fd >= 0), -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return BELT_ESYS;
        if (stop_fd >= 0 && pf[k].revents)
            return BELT_ECANCELED;
        size_t pick = SIZE_MAX;
        for (size_t i = 0; i < k; i++) {
            if (pf[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                dead[map[i]] = true;
                continue;
            }
            if ((pf[i].revents & POLLOUT) && pick == SIZE_MAX)
                pick = map[i];
        }
        if (pick == SIZE_MAX)
            continue;
        *turn = (pick + 1) % n;
        /* The whole block to this job (the fd is blocking: a full pipe
         * waits for the job to read, which it will, or die). */
        int rc = belt__write_full(fds[pick], p, len, stop_fd);
        if (rc == BELT_ECANCELED)
            return rc;
        if (rc != BELT_OK)
            dead[pick] = true; /* it went away: the rest of the block too */
        return BELT_OK;
    }
}
