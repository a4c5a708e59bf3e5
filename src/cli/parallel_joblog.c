/* parallel_joblog.c: reading a GNU parallel job log back, for --resume,
 * --resume-failed and --retry-failed (parallel's open_joblog).
 *
 * The log is the --joblog format (app/report.c writes it): a header line,
 * then one tab-separated line per finished job, "Seq Host Starttime
 * JobRuntime Send Receive Exitval Signal Command", the command's newlines
 * written as NUL bytes.  A job counts as done when its Seq has a line
 * (--resume), or a line with Exitval and Signal both 0 (--resume-failed,
 * --retry-failed); --retry-failed also takes the command of each job that
 * failed from its last line, to run it again as it was.
 *
 * As in parallel: a missing log means nothing was done yet; a log that
 * exists but cannot be read, or a line that is not a job line, is an error
 * that names the file (parallel: "Format of 'FILE' is wrong"), never taken
 * as "nothing done".  The done set is a bitmap over Seq.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "cli/parallel.h"
#include "util/err.h"

struct belt__par_joblog {
    unsigned char *done;   /* bit per seq */
    uint64_t nbits;
    char **cmd;            /* --retry-failed: cmd[seq - 1], or NULL */
    uint64_t ncmd;
    uint64_t max_seq;
};

static int set_bit(belt__par_joblog *j, uint64_t seq)
{
    if (seq >= j->nbits) {
        uint64_t nb = j->nbits ? j->nbits : 1024;
        while (nb <= seq)
            nb *= 2;
        unsigned char *d = realloc(j->done, (size_t)(nb / 8));
        if (d == NULL)
            return BELT_ENOMEM;
        memset(d + j->nbits / 8, 0, (size_t)((nb - j->nbits) / 8));
        j->done = d;
        j->nbits = nb;
    }
    j->done[seq / 8] |= (unsigned char)(1u << (seq % 8));
    return BELT_OK;
}

bool belt__par_joblog_done(const belt__par_joblog *j, uint64_t seq)
{
    return j != NULL && seq < j->nbits &&
           (j->done[seq / 8] & (1u << (seq % 8))) != 0;
}

static int set_cmd(belt__par_joblog *j, uint64_t seq, const char *c,
                   size_t n)
{
    if (seq > j->ncmd) {
        uint64_t nc = j->ncmd ? j->ncmd : 64;
        while (nc < seq)
            nc *= 2;
        char **v = realloc(j->cmd, (size_t)nc * sizeof *v);
        if (v == NULL)
            return BELT_ENOMEM;
        memset(v + j->ncmd, 0, (size_t)(nc - j->ncmd) * sizeof *v);
        j->cmd = v;
        j->ncmd = nc;
    }
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return BELT_ENOMEM;
    for (size_t i = 0; i < n; i++)
        copy[i] = c[i] == '\0' ? '\n' : c[i];
    copy[n] = '\0';
    free(j->cmd[seq - 1]);
    j->cmd[seq - 1] = copy;
    return BELT_OK;
}

/* Splits line[0..n) at tabs into at most 9 fields.  Returns the count. */
static int fields(const char *line, size_t n, const char **f, size_t *fl)
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && k < 9; i++) {
        if (i == n || (line[i] == '\t' && k < 8)) {
            f[k] = line + start;
            fl[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

static bool is_int(const char *s, size_t n, bool sign)
{
    size_t i = 0;
    if (sign && n > 0 && s[0] == '-')
        i = 1;
    if (i == n)
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int belt__par_joblog_read(belt__par_joblog **out, const char *path,
                          bool only_ok, bool want_commands, char *msg,
                          size_t msg_size)
{
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (errno == ENOENT)
            return BELT_OK; /* nothing done yet */
        return belt__errf(msg, msg_size, BELT_ESYS,
                          "cannot read the job log %s: %s", path,
                          strerror(errno));
    }
    belt__par_joblog *j = calloc(1, sizeof *j);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0;
    int rc = BELT_OK;
    if (j == NULL) {
        rc = belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
        goto out;
    }
    errno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        size_t len = (size_t)n;
        if (line[len - 1] == '\n')
            len--;
        const char *fv[9];
        size_t fl[9];
        int k = fields(line, len, fv, fl);
        if (lineno == 1 && k >= 1 && fl[0] == 3 && memcmp(fv[0], "Seq", 3) == 0)
            continue; /* the header */
        if (k < 9 || !is_int(fv[0], fl[0], false) ||
            !is_int(fv[6], fl[6], true) || !is_int(fv[7], fl[7], true)) {
            rc = belt__errf(msg, msg_size, BELT_EINVAL,
                            "%s:%llu: not a job log line (the format of "
                            "--joblog is wrong)", path,
                            (unsigned long long)lineno);
            goto out;
        }
        uint64_t seq = strtoull(fv[0], NULL, 10);
        bool ok = fl[6] == 1 && fv[6][0] == '0' && fl[7] == 1 &&
                  fv[7][0] == '0';
        if (seq > j->max_seq)
            j->max_seq = seq;
        if ((!only_ok || ok) && (rc = set_bit(j, seq)) != BELT_OK)
            goto oom;
        if (want_commands && seq > 0 && !ok &&
            (rc = set_cmd(j, seq, fv[8], fl[8])) != BELT_OK)
            goto oom;
        errno = 0;
    }
    if (ferror(f)) {
        rc = belt__errf(msg, msg_size, BELT_ESYS,
                        "cannot read the job log %s: %s", path,
                        strerror(errno ? errno : EIO));
        goto out;
    }
    *out = j;
    j = NULL;
    goto out;
oom:
    rc = belt__errf(msg, msg_size, BELT_ENOMEM, "out of memory");
out:
    free(line);
    fclose(f);
    belt__par_joblog_free(j);
    return rc;
}

uint64_t belt__par_joblog_max_seq(const belt__par_joblog *j)
{
    return j ? j->max_seq : 0;
}

const char *belt__par_joblog_command(const belt__par_joblog *j, uint64_t seq)
{
    if (j == NULL || seq == 0 || seq > j->ncmd)
        return NULL;
    return j->cmd[seq - 1];
}

void belt__par_joblog_free(belt__par_joblog *j)
{
    if (j == NULL)
        return;
    for (uint64_t i = 0; i < j->ncmd; i++)
        free(j->cmd[i]);
    free(j->cmd);
    free(j->done);
    free(j);
}
