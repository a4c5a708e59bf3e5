/* run_signal.c: what `belt run` does on SIGINT and SIGTERM.
 *
 * The promise (belt-run(1), SIGNALS): the first SIGINT or SIGTERM stops
 * dispatching, terminates the running jobs' process groups, writes their
 * results and exits 130 or 143; a second one kills the jobs' process groups
 * with SIGKILL and exits at once.  No orphan processes remain either way.
 *
 * Design: the classic self-pipe.  The handler only write()s the signal
 * number as one byte to a pipe (async-signal-safe, errno saved); a dedicated
 * thread waits in poll() on the other end and does the real work in
 * ordinary thread context.  The signals are blocked in every other thread
 * belt starts after belt__sig_start() (the pool's workers), so the kernel
 * delivers them to the signal thread, the one thread that is always
 * waiting for them.  On the first signal it records the number in an
 * atomic and sends a NULL element on the engine's results channel: the
 * engine is always waiting on that channel (never in a blocking submit, see
 * run.c), so it wakes at once, stops dispatching and calls belt_pool_cancel()
 * itself.  On the second signal the thread cannot rely on the engine (it may
 * be inside belt_pool_cancel(), waiting out a job's kill grace period), so it
 * sends SIGKILL to the process group of every child of belt (each job runs in
 * its own group whose id is the child's pid: belt/job.h) and calls _exit().
 * The children are found in /proc (ppid field of /proc/PID/stat): the pool
 * has no call that hands out its children's pids.
 *
 * A repeat of the first signal within BELT__SIG_REPEAT_NS of it is the same stop
 * request, not a second one: GNU timeout(1) forwards every signal it gets
 * twice, to its child and then to its process group, so `kill -INT` of a
 * `timeout belt run ...` reaches belt twice within microseconds.  The
 * handler stamps each signal with CLOCK_MONOTONIC (async-signal-safe) and
 * writes signal and stamp as one message; a pipe write of fewer than
 * PIPE_BUF bytes is atomic, so the thread always reads whole messages and
 * judges by when the signal arrived, not by when it got to read it.
 *
 * Handlers are reset to the default by exec, and the executor gives every
 * job an empty signal mask, so jobs see neither the handlers nor the mask.
 *
 * SIGPIPE gets a handler that does nothing: a write to a closed pipe (belt
 * run --results - | head) then fails with EPIPE and belt stops in order,
 * instead of dying on the spot and leaving its jobs running.
 *
 * Global state: a signal handler receives no context pointer, so the write
 * end of the pipe lives in one file-static int, set before the handlers are
 * installed and reset after they are removed.  Everything else is in the
 * belt__sig object owned by the engine.  Only one belt__sig may exist at a
 * time (belt runs one engine per process).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "belt/chan.h"
#include "belt/job.h"
#include "cli/run.h"
#include "util/clock.h"

/* What the handler writes: one message per signal; signo 0 stops the
 * thread (belt__sig_stop). */
struct sig_msg {
    int64_t ns;
    int signo;
};

struct belt__sig {
    int rfd, wfd;                 /* the self-pipe */
    pthread_t thread;
    sigset_t old_mask;            /* the starting thread's mask */
    belt_chan *wake;              /* own reference */
    _Atomic int first;            /* first signal caught, or 0 */
    struct sigaction old_int, old_term, old_pipe;
};

/* The write end of the self-pipe, for the handler (see the essay). */
static int sig_pipe_wfd = -1;

static void on_signal(int signo)
{
    int saved = errno;
    struct sig_msg m = {belt__now_mono(), signo};
    if (sig_pipe_wfd >= 0) {
        ssize_t n = write(sig_pipe_wfd, &m, sizeof m);
        (void)n; /* pipe full: a signal is already pending anyway */
    }
    errno = saved;
}

static void on_sigpipe(int signo)
{
    (void)signo;
}

void belt__kill_children(void)
{
    pid_t self = getpid(), mygroup = getpgrp();
    DIR *d = opendir("/proc");
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        /* "pid (comm) state ppid pgrp ...": comm may hold spaces and
         * parentheses, so parse from the last ')'. */
        char *p = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (p == NULL || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
            continue;
        if (ppid != self)
            continue;
        pid_t pid = (pid_t)atol(e->d_name);
        if (pgrp > 1 && pgrp != mygroup)
            kill(-pgrp, SIGKILL);
        kill(pid, SIGKILL);
    }
    closedir(d);
}

static void *sig_thread(void *arg)
{
    belt__sig *s = arg;
    int count = 0;
    struct sig_msg first = {0, 0};
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    for (;;) {
        /* poll() first: sanitizer runtimes deliver a signal at once only
         * to a thread blocked in a call they know blocks. */
        struct pollfd pf = {.fd = s->rfd, .events = POLLIN};
        if (poll(&pf, 1, -1) < 0 && errno != EINTR)
            break;
        struct sig_msg m;
        ssize_t n = read(s->rfd, &m, sizeof m);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n != (ssize_t)sizeof m || m.signo == 0)
            break; /* belt__sig_stop() */
        if (count > 0 && m.signo == first.signo &&
            m.ns - first.ns < BELT__SIG_REPEAT_NS)
            continue; /* the same request, forwarded twice (see above) */
        if (++count == 1) {
            first = m;
            atomic_store(&s->first, m.signo);
            belt_result *wake = NULL;
            belt_chan_send(s->wake, &wake);
            continue;
        }
        /* Second signal: kill now.  Two passes: a shell job may be between
         * fork and exec of a new child when the first pass runs. */
        static const char msg[] = "\nbelt: second signal, killing jobs\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        belt__kill_children();
        belt__kill_children();
        _exit(128 + atomic_load(&s->first));
    }
    return NULL;
}

int belt__sig_start(belt__sig **out, belt_chan *wake)
{
    belt__sig *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        free(s);
        return -1;
    }
    s->rfd = fds[0];
    s->wfd = fds[1];
    /* The handler must never block: a full pipe means signals are already
     * waiting to be read. */
    fcntl(s->wfd, F_SETFL, fcntl(s->wfd, F_GETFL) | O_NONBLOCK);
    fcntl(s->rfd, F_SETFL, fcntl(s->rfd, F_GETFL) | O_NONBLOCK);
    s->wake = belt_chan_ref(wake);
    atomic_init(&s->first, 0);

    /* Steer SIGINT/SIGTERM to the signal thread: block them here (threads
     * started from now on, such as the pool's workers, inherit the mask)
     * and unblock them in the signal thread.  Jobs get an empty mask from
     * the executor. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &s->old_mask);

    int err = pthread_create(&s->thread, NULL, sig_thread, s);
    if (err != 0) {
        pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL);
        close(s->rfd);
        close(s->wfd);
        belt_chan_free(s->wake);
        free(s);
        errno = err;
        return -1;
    }

    sig_pipe_wfd = s->wfd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &s->old_int);
    sigaction(SIGTERM, &sa, &s->old_term);
    sa.sa_handler = on_sigpipe;
    sigaction(SIGPIPE, &sa, &s->old_pipe);
    *out = s;
    return 0;
}

int belt__sig_caught(belt__sig *s)
{
    return s ? atomic_load(&s->first) : 0;
}

void belt__sig_stop(belt__sig *s)
{
    if (s == NULL)
        return;
    /* Keep catching SIGINT/SIGTERM until the thread is gone, so a late
     * signal is still turned into a byte rather than killing belt halfway
     * through its last writes; then restore. */
    struct sig_msg stop = {0, 0};
    while (write(s->wfd, &stop, sizeof stop) < 0 && errno == EINTR)
        ;
    pthread_join(s->thread, NULL);
    sigaction(SIGINT, &s->old_int, NULL);
    sigaction(SIGTERM, &s->old_term, NULL);
    sigaction(SIGPIPE, &s->old_pipe, NULL);
    pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL);
    sig_pipe_wfd = -1;
    close(s->rfd);
    close(s->wfd);
    belt_chan_free(s->wake);
    free(s);
}
