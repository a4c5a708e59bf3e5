/* spawn_true.c: the process-creation floor for `scripts/bench run`.
 *
 * Runs a program (default `true`, found on PATH) N times with at most P
 * children alive at once, and does nothing else: no pool, no output
 * capture, no results.  `belt run -j P` on N `true` jobs can be no faster
 * than this, so spawn_true's wall time over belt's is the share of belt's
 * time that is process creation.
 *
 *   spawn_true [--jobs N] [-P P] [--fork] [PROGRAM]
 *
 * P threads (belt's worker threads, without the pool) take the next of the
 * N runs from a shared counter, start the child and wait for it with
 * waitpid(pid).  Children are started with posix_spawnp() (what belt's
 * executor uses; glibc does it with clone(CLONE_VM | CLONE_VFORK), which
 * blocks the calling thread until the child has exec'd: hence one thread
 * per concurrent child, as in belt), or with --fork, fork() and execvp()
 * (what xargs does, there from a single thread).  Stdin/stdout/stderr are
 * inherited.  Exit status 0 when every child exited 0, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int usage(void)
{
    fprintf(stderr, "usage: spawn_true [--jobs N] [-P P] [--fork] "
                    "[PROGRAM]\n");
    return 2;
}

/* Starts one child running argv; returns its pid, or -1 (errno set). */
static pid_t start(char **argv, int use_fork)
{
    if (use_fork) {
        pid_t pid = fork();
        if (pid == 0) {
            execvp(argv[0], argv);
            _exit(127);
        }
        return pid;
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

static char *child_argv[2];
static int use_fork;
static long n = 1000;
static atomic_long next_run, failed;

/* One thread: runs children one at a time until all N are taken. */
static void *runner(void *arg)
{
    (void)arg;
    while (atomic_fetch_add(&next_run, 1) < n) {
        int st;
        pid_t pid = start(child_argv, use_fork);
        if (pid < 0) {
            perror("spawn_true: starting a child");
            exit(1);
        }
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                perror("spawn_true: waitpid");
                exit(1);
            }
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            atomic_fetch_add(&failed, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long par = 4;
    child_argv[0] = "true";
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--jobs") == 0 || strcmp(argv[i], "-P") == 0) &&
            i + 1 < argc) {
            long v = strtol(argv[i + 1], NULL, 10);
            if (v < 1 || (argv[i][1] == 'P' && v > 1024))
                return usage();
            *(argv[i][1] == 'P' ? &par : &n) = v;
            i++;
        } else if (strcmp(argv[i], "--fork") == 0) {
            use_fork = 1;
        } else if (argv[i][0] != '-') {
            child_argv[0] = argv[i];
        } else {
            return usage();
        }
    }

    pthread_t t[1024];
    for (long i = 0; i < par; i++) {
        int rc = pthread_create(&t[i], NULL, runner, NULL);
        if (rc != 0) {
            fprintf(stderr, "spawn_true: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    for (long i = 0; i < par; i++)
        pthread_join(t[i], NULL);
    if (failed != 0) {
        fprintf(stderr, "spawn_true: %ld children failed\n", (long)failed);
        return 1;
    }
    return 0;
}
