/* exec/spawn.c: one attempt of an exec job: spawn, wait, stop, reap.
 *
 * Spawning: posix_spawn (glibc's is clone(CLONE_VM | CLONE_VFORK) + exec,
 * and it reports exec failures such as ENOENT synchronously).  Everything
 * that can fail for reasons other than the command itself is done in the
 * parent first, so that a spawn error can be blamed on the command: stdin
 * is opened here (a missing stdin_path is "cannot open stdin"), cwd is
 * opened and checked here and entered in the child with fchdir (a missing
 * cwd is "cannot change directory to X", never "command not found").
 *
 * Waiting: one ppoll() over
 *     the child's pidfd  (readable when it has exited: a zombie),
 *     its stdout/stderr pipes (CAPTURE, LINES) while they are open,
 *     the cancel token's eventfd (until cancel is acted on),
 * with a timeout that is the next deadline: the job's timeout, or the end
 * of the kill grace once SIGTERM was sent.  No busy-waiting, no sleeping.
 *
 * Stopping (timeout or cancel): SIGTERM to the process group (the group id
 * is the child's pid: POSIX_SPAWN_SETPGROUP with 0), then SIGKILL to the
 * group at the end of the grace period if the child has not exited.
 *
 * After the child exits: SIGKILL to what is left of its group *before*
 * reaping it.  Until it is reaped the zombie holds its pid, so the group id
 * can't have been reused by another job's process group and the kill can't
 * hit a stranger.  Then waitpid(pid), then the pipes are drained of what is
 * already in them without waiting for EOF: a background process that
 * escaped the kill (setsid) and holds the pipe open can't keep the job
 * running.  The direct child's own output is complete by then (its writes
 * finished before it exited).
 */
#include "exec/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Signals the child gets with their default action whatever belt did with
 * them (belt ignores or handles these; SIG_IGN would survive exec).  HUP is
 * not here, so that `nohup belt` protects its jobs too. */
static const int default_signals[] = {
    SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2,
};

/* ---- the command -------------------------------------------------------- */

/* "NAME=..." names are equal (both up to their '='). */
static bool same_name(const char *a, const char *b)
{
    while (*a != '\0' && *a != '=' && *a == *b) {
        a++;
        b++;
    }
    return (*a == '=' || *a == '\0') && (*b == '=' || *b == '\0');
}

int belt__cmd_prepare(belt__cmd *c, const belt_job *job, belt_result *r)
{
    memset(c, 0, sizeof *c);
    if (job->run != NULL && job->argv != NULL) {
        belt__set_error(r, "job has both run and argv");
        return -1;
    }
    if (job->run != NULL) {
        c->sh_argv[0] = "sh";
        c->sh_argv[1] = "-c";
        c->sh_argv[2] = (char *)job->run; /* posix_spawn does not write it */
        c->sh_argv[3] = NULL;
        c->argv = c->sh_argv;
        c->path = "/bin/sh";
        c->via_shell = true;
    } else if (job->argv != NULL && job->argv[0] != NULL) {
        if (job->argv[0][0] == '\0') {
            belt__set_error(r, "empty command (argv[0] is \"\")");
            return -1;
        }
        c->argv = job->argv;
        c->path = job->argv[0];
        c->use_path = true;
    } else {
        belt__set_error(r, "job has no command (run or argv)");
        return -1;
    }

    c->envp = environ;
    if (job->env == NULL || job->env[0] == NULL)
        return 0;
    size_t ne = 0, nj = 0;
    for (char **e = environ; e != NULL && *e != NULL; e++)
        ne++;
    for (char *const *j = job->env; *j != NULL; j++, nj++) {
        const char *eq = strchr(*j, '=');
        if (eq == NULL || eq == *j) {
            belt__set_error(r, "invalid env entry \"%s\" (expected NAME=value)", *j);
            return -1;
        }
    }
    char **envp = malloc((ne + nj + 1) * sizeof *envp);
    if (envp == NULL) {
        belt__set_error(r, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nj && !replaced; j++)
            replaced = same_name(environ[i], job->env[j]);
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < nj; j++) {
        bool later = false; /* a later entry of the same name wins */
        for (size_t l = j + 1; l < nj && !later; l++)
            later = same_name(job->env[j], job->env[l]);
        if (!later)
            envp[k++] = job->env[j];
    }
    envp[k] = NULL;
    c->envp = envp;
    c->owns_envp = true;
    return 0;
}

void belt__cmd_release(belt__cmd *c)
{
    if (c->owns_envp)
        free(c->envp);
    c->envp = NULL;
    c->owns_envp = false;
}

/* ---- spawning ----------------------------------------------------------- */

static void spawn_error(belt_result *r, const belt__cmd *c, int err)
{
    switch (err) {
    case ENOENT:
        belt__set_error(r, "command not found: %s", c->path);
        break;
    case EACCES:
        belt__set_error(r, "permission denied: %s", c->path);
        break;
    default:
        belt__set_error(r, "cannot run %s: %s", c->path, strerror(err));
        break;
    }
}

/* Sets up file actions and attributes.  Returns 0 or an errno value. */
static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at,
                       int stdin_fd, int out_fd, int err_fd, int dir_fd)
{
    int rc;
    if ((rc = posix_spawn_file_actions_adddup2(fa, stdin_fd, 0)) != 0)
        return rc;
    if (out_fd >= 0 && (rc = posix_spawn_file_actions_adddup2(fa, out_fd, 1)) != 0)
        return rc;
    if (err_fd >= 0 && (rc = posix_spawn_file_actions_adddup2(fa, err_fd, 2)) != 0)
        return rc;
    if (dir_fd >= 0 && (rc = posix_spawn_file_actions_addfchdir_np(fa, dir_fd)) != 0)
        return rc;
    /* Only 0, 1, 2 survive in the child, whatever another thread of the
     * program opened without O_CLOEXEC. */
    if ((rc = posix_spawn_file_actions_addclosefrom_np(fa, 3)) != 0)
        return rc;

    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    for (size_t i = 0; i < sizeof default_signals / sizeof default_signals[0]; i++)
        sigaddset(&dfl, default_signals[i]);
    if ((rc = posix_spawnattr_setflags(at, POSIX_SPAWN_SETPGROUP |
                                               POSIX_SPAWN_SETSIGMASK |
                                               POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setpgroup(at, 0)) != 0 ||
        (rc = posix_spawnattr_setsigmask(at, &none)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(at, &dfl)) != 0)
        return rc;
    return 0;
}

/* ---- waiting ------------------------------------------------------------ */

enum stop_reason { STOP_NONE, STOP_TIMEOUT, STOP_CANCEL };

/* waitpid() through EINTR.  Returns 0 or an errno value. */
static int reap(pid_t pid, int *wstatus)
{
    for (;;) {
        if (waitpid(pid, wstatus, 0) == pid)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

/* Waits for child `pid` while moving its output, stops it on timeout or
 * cancel, reaps it, and fills a's status and r->error. */
static void wait_child(pid_t pid, const belt_job *job, const belt__cmd *cmd,
                       belt__cancel *cancel, belt__sink *out, belt__sink *err,
                       int64_t t0, belt_result *r, belt_attempt *a)
{
    int wstatus = 0, rc;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        int e = errno;
        kill(-pid, SIGKILL);
        (void)reap(pid, &wstatus);
        belt__set_error(r, "pidfd_open: %s (belt needs Linux 5.3 or later)",
                        strerror(e));
        a->status = BELT_JOB_ERROR;
        return;
    }

    int64_t deadline = job->timeout_ns > 0 ? belt__add_sat(t0, job->timeout_ns)
                                           : INT64_MAX;
    int64_t grace = job->kill_grace_ns == 0 ? BELT__DEFAULT_KILL_GRACE_NS
                                            : job->kill_grace_ns;
    enum stop_reason reason = STOP_NONE;
    int64_t kill_at = INT64_MAX; /* when SIGKILL follows SIGTERM */
    bool killed = false, exited = false, poll_failed = false;
    int poll_errno = 0;
    bool watch_cancel = cancel != NULL && cancel->wake_fd >= 0;

    while (!exited) {
        struct pollfd p[4];
        int n = 0, i_out = -1, i_err = -1;
        p[n++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
        if (out->read_fd >= 0) {
            i_out = n;
            p[n++] = (struct pollfd){ .fd = out->read_fd, .events = POLLIN };
        }
        if (err->read_fd >= 0) {
            i_err = n;
            p[n++] = (struct pollfd){ .fd = err->read_fd, .events = POLLIN };
        }
        if (watch_cancel && reason == STOP_NONE) {
            p[n++] = (struct pollfd){ .fd = cancel->wake_fd, .events = POLLIN };
        }
        int64_t wake_at = reason == STOP_NONE ? deadline
                          : killed            ? INT64_MAX
                                              : kill_at;
        struct timespec ts, *tsp = NULL;
        if (wake_at != INT64_MAX) {
            ts = belt__timespec(wake_at - belt__now_mono());
            tsp = &ts;
        }
        int k = ppoll(p, (nfds_t)n, tsp, NULL);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            /* Can't wait (ENOMEM): stop the job rather than spin. */
            poll_failed = true;
            poll_errno = errno;
            kill(-pid, SIGKILL);
            break;
        }
        if (i_out >= 0 && p[i_out].revents != 0)
            belt__sink_read(out);
        if (i_err >= 0 && p[i_err].revents != 0)
            belt__sink_read(err);
        if (p[0].revents != 0)
            exited = true;
        int64_t now = belt__now_mono();
        if (!exited && reason == STOP_NONE) {
            /* The flag, not revents, decides: the eventfd only wakes us. */
            if (belt__cancel_fired(cancel))
                reason = STOP_CANCEL;
            else if (now >= deadline)
                reason = STOP_TIMEOUT;
            if (reason != STOP_NONE) {
                if (grace < 0) {
                    kill(-pid, SIGKILL);
                    killed = true;
                } else {
                    kill(-pid, SIGTERM);
                    kill_at = belt__add_sat(now, grace);
                }
            }
        } else if (!exited && !killed && now >= kill_at) {
            kill(-pid, SIGKILL);
            killed = true;
        }
    }

    /* The child is a zombie (or was just sent SIGKILL): its pid still pins
     * the group id, so this reaches only the job's own leftovers. */
    kill(-pid, SIGKILL);
    rc = reap(pid, &wstatus);
    close(pidfd);
    belt__sink_drain(out);
    belt__sink_drain(err);

    if (rc != 0) {
        belt__set_error(r, "cannot reap the child: %s (is SIGCHLD ignored?)",
                        strerror(rc));
        a->status = BELT_JOB_ERROR;
        return;
    }
    a->exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    a->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
    if (poll_failed) {
        a->status = BELT_JOB_ERROR;
        belt__set_error(r, "poll: %s", strerror(poll_errno));
    } else if (reason == STOP_TIMEOUT) {
        char d[32];
        belt__format_duration(job->timeout_ns, d, sizeof d);
        a->status = BELT_JOB_TIMEOUT;
        belt__set_error(r, "timed out after %s", d);
    } else if (reason == STOP_CANCEL) {
        a->status = BELT_JOB_CANCELED;
        belt__set_error(r, "canceled");
    } else if (WIFEXITED(wstatus) && a->exit_code == 0) {
        a->status = BELT_JOB_OK;
    } else {
        a->status = BELT_JOB_FAILED;
        if (cmd->via_shell && a->exit_code == 127)
            belt__set_error(r, "command not found (exit 127)");
    }
}

/* ---- one attempt -------------------------------------------------------- */

void belt__exec_attempt(const belt_job *job, const belt__cmd *cmd,
                        belt__cancel *cancel, belt_result *r, belt_attempt *a)
{
    int stdin_fd = -1, dir_fd = -1;
    belt__sink out, err;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    bool fa_ok = false, at_ok = false;
    int rc;

    belt__sink_init(&out, 1);
    belt__sink_init(&err, 2);
    a->status = BELT_JOB_ERROR;
    a->exit_code = -1;
    a->signal = 0;
    a->started_ns = belt__now_real();
    int64_t t0 = belt__now_mono();

    if (belt__cancel_fired(cancel)) {
        a->status = BELT_JOB_CANCELED;
        belt__set_error(r, "canceled");
        goto done;
    }

    const char *in = job->stdin_path != NULL ? job->stdin_path : "/dev/null";
    stdin_fd = belt__fd_above_stdio(open(in, O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (stdin_fd < 0) {
        belt__set_error(r, "cannot open stdin %s: %s", in, strerror(errno));
        goto done;
    }
    if (job->cwd != NULL) {
        dir_fd = belt__fd_above_stdio(
            open(job->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (dir_fd < 0 || faccessat(AT_FDCWD, job->cwd, X_OK, AT_EACCESS) != 0) {
            belt__set_error(r, "cannot change directory to %s: %s", job->cwd,
                            strerror(errno));
            goto done;
        }
    }
    if (belt__sink_open(&out, job, r) != 0 || belt__sink_open(&err, job, r) != 0)
        goto done;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        belt__set_error(r, "cannot set up the spawn: %s", strerror(rc));
        goto done;
    }
    fa_ok = true;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        belt__set_error(r, "cannot set up the spawn: %s", strerror(rc));
        goto done;
    }
    at_ok = true;
    rc = spawn_setup(&fa, &at, stdin_fd, out.child_fd, err.child_fd, dir_fd);
    if (rc != 0) {
        belt__set_error(r, "cannot set up the spawn: %s", strerror(rc));
        goto done;
    }

    pid_t pid;
    rc = cmd->use_path
             ? posix_spawnp(&pid, cmd->path, &fa, &at, cmd->argv, cmd->envp)
             : posix_spawn(&pid, cmd->path, &fa, &at, cmd->argv, cmd->envp);
    if (rc != 0) {
        spawn_error(r, cmd, rc);
        goto done;
    }
    /* The child has its copies now. */
    close(stdin_fd);
    stdin_fd = -1;
    if (dir_fd >= 0) {
        close(dir_fd);
        dir_fd = -1;
    }
    belt__sink_spawned(&out);
    belt__sink_spawned(&err);

    wait_child(pid, job, cmd, cancel, &out, &err, t0, r, a);
    belt__sink_finish(&out, r);
    belt__sink_finish(&err, r);

done:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (at_ok)
        posix_spawnattr_destroy(&at);
    if (stdin_fd >= 0)
        close(stdin_fd);
    if (dir_fd >= 0)
        close(dir_fd);
    belt__sink_close(&out);
    belt__sink_close(&err);
    a->ended_ns = belt__now_real();
    a->duration_ns = belt__now_mono() - t0;
}
