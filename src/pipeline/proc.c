/* pipeline/proc.c: the processes of a pipeline: per-item and stream stage
 * programs, a command source, a command sink.
 *
 * Spawning is the executor's recipe (exec/spawn.c): posix_spawnp, the child
 * in its own process group (so that stopping it reaches its children),
 * default signal dispositions and an empty mask, only fds 0-2 inherited
 * (closefrom 3).  Pipes are made close-on-exec and our ends non-blocking;
 * every wait is a poll() that also watches the pipeline's NOW token, so a
 * stop wakes it at once.
 *
 * Finishing follows the executor's rule too: SIGKILL to the group *before*
 * reaping the leader (while it is unreaped its pid pins the group id, so
 * the kill cannot reach a stranger), then waitpid.  No child outlives
 * belt__proc_finish().
 */
#include "pipeline/internal.h"
#include "util/clock.h"
#include "util/fd.h"
#include "util/buf.h"
#include "util/shell.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PIPE_BYTES (1024 * 1024)

static const int default_signals[] = {
    SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2,
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* A pipe: both ends close-on-exec and above stdio; ours non-blocking. */
static int make_pipe(int fds[2], int ours)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    fds[0] = belt__fd_above_stdio(p[0]);
    fds[1] = belt__fd_above_stdio(p[1]);
    if (fds[0] < 0 || fds[1] < 0) {
        close_fd(&fds[0]);
        close_fd(&fds[1]);
        return -1;
    }
    /* A larger pipe means fewer, larger reads and writes on both sides:
     * fewer context switches, which are most of a stream stage's cost.
     * Best effort (the limit is /proc/sys/fs/pipe-max-size). */
    (void)fcntl(fds[0], F_SETPIPE_SZ, PIPE_BYTES);
    int fl = fcntl(fds[ours], F_GETFL);
    if (fl < 0 || fcntl(fds[ours], F_SETFL, fl | O_NONBLOCK) != 0) {
        close_fd(&fds[0]);
        close_fd(&fds[1]);
        return -1;
    }
    return 0;
}

int belt__proc_spawn(belt__proc *pr, char *const *argv, bool want_in,
                     bool want_out, bool keep_peek, char *msg, size_t size)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, devnull = -1;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc;
    pr->pid = -1;
    pr->pidfd = pr->in_fd = pr->out_fd = pr->peek_fd = -1;

    if (want_in ? make_pipe(in, 1) != 0
                : (devnull = belt__fd_above_stdio(
                       open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) {
        return belt__errf(msg, size, BELT_ESYS,
                          "cannot create a pipe: %s", strerror(errno));
    }
    if (want_out && make_pipe(out, 0) != 0) {
        snprintf(msg, size, "cannot create a pipe: %s", strerror(errno));
        close_fd(&in[0]);
        close_fd(&in[1]);
        close_fd(&devnull);
        return BELT_ESYS;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    for (size_t i = 0; i < sizeof default_signals / sizeof default_signals[0]; i++)
        sigaddset(&dfl, default_signals[i]);
    rc = posix_spawn_file_actions_adddup2(&fa, want_in ? in[0] : devnull, 0);
    if (rc == 0 && want_out)
        rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
                                               POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setpgroup(&at, 0);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &dfl);
    if (rc == 0) {
        rc = posix_spawnp(&pr->pid, argv[0], &fa, &at, argv, environ);
        if (rc == ENOENT)
            snprintf(msg, size, "command not found: %s", argv[0]);
        else if (rc == EACCES)
            snprintf(msg, size, "permission denied: %s", argv[0]);
        else if (rc != 0)
            snprintf(msg, size, "cannot run %s: %s", argv[0], strerror(rc));
    } else {
        snprintf(msg, size, "cannot set up the spawn: %s", strerror(rc));
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc == 0 && want_in && keep_peek) {
        pr->peek_fd = in[0];
        in[0] = -1;
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&devnull);
    if (rc != 0) {
        pr->pid = -1;
        close_fd(&in[1]);
        close_fd(&out[0]);
        return BELT_ESYS;
    }
    pr->in_fd = in[1];
    pr->out_fd = out[0];
    pr->pidfd = (int)syscall(SYS_pidfd_open, pr->pid, 0);
    if (pr->pidfd < 0) {
        snprintf(msg, size, "pidfd_open: %s (belt needs Linux 5.3 or later)",
                 strerror(errno));
        int ws;
        belt__proc_finish(pr, &ws);
        return BELT_ESYS;
    }
    return BELT_OK;
}

void belt__proc_finish(belt__proc *pr, int *wstatus)
{
    *wstatus = 0;
    close_fd(&pr->in_fd);
    close_fd(&pr->out_fd);
    close_fd(&pr->peek_fd);
    if (pr->pid > 0) {
        /* The leader is alive or a zombie: its pid pins the group id. */
        kill(-pr->pid, SIGKILL);
        while (waitpid(pr->pid, wstatus, 0) < 0 && errno == EINTR)
            ;
        pr->pid = -1;
    }
    close_fd(&pr->pidfd);
}

void belt__wstatus_text(int ws, char *buf, size_t size)
{
    if (WIFEXITED(ws))
        snprintf(buf, size, "exit %d", WEXITSTATUS(ws));
    else if (WIFSIGNALED(ws))
        snprintf(buf, size, "signal %d (%s)", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
    else
        snprintf(buf, size, "wait status %d", ws);
}

/* Appends t with every "{}" replaced by the item (quoted if asked). */
static void add_subst(belt__buf *b, const char *t, const char *item, size_t len,
                      bool quote)
{
    for (const char *s = t; *s != '\0'; s++) {
        if (item != NULL && s[0] == '{' && s[1] == '}') {
            if (quote)
                belt__sh_quote(b, item, len);
            else
                belt__buf_add(b, item, len);
            s++;
        } else {
            belt__buf_addc(b, *s);
        }
    }
}

char **belt__stage_argv(const belt__stage_config *sc, const char *item,
                        size_t len)
{
    /* Strings first (each NUL-terminated), then the pointer array. */
    belt__buf b = { 0 };
    size_t n = 0;
    if (sc->run != NULL) {
        belt__buf_add(&b, "sh\0-c\0", 6);
        add_subst(&b, sc->run, item, len, true);
        belt__buf_addc(&b, '\0');
        n = 3;
    } else {
        for (char **a = sc->argv; *a != NULL; a++, n++) {
            add_subst(&b, *a, item, len, false);
            belt__buf_addc(&b, '\0');
        }
    }
    if (b.oom) {
        belt__buf_free(&b);
        return NULL;
    }
    size_t ptrs = (n + 1) * sizeof(char *);
    char **argv = malloc(ptrs + b.len);
    if (argv == NULL) {
        belt__buf_free(&b);
        return NULL;
    }
    char *strs = (char *)argv + ptrs;
    memcpy(strs, b.p, b.len);
    belt__buf_free(&b);
    for (size_t i = 0; i < n; i++) {
        argv[i] = strs;
        strs += strlen(strs) + 1;
    }
    argv[n] = NULL;
    return argv;
}
