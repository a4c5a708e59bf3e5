/* check_exec.c: unit tests of the executor (src/exec/exec.h: belt__exec_job,
 * the cancel token; include/belt/job.h: belt_run_job).
 *
 * TCases:
 *   process   exit codes, signals, missing executables (argv and run), bad
 *             cwd, env additions and overrides, stdin, fds the child sees
 *   output    CAPTURE (truncation under a flood), FILES, GROUP, LINES,
 *             INHERIT, DISCARD
 *   timeout   SIGTERM, SIGKILL after the grace, process groups and orphans
 *   retries   attempts, attempt_log, backoff bounds
 *   cancel    during a process, a backoff, a sleep, a spin; before start
 *   kinds     noop, sleep, spin, bad jobs, belt_run_job
 *   resources every fd closed and every child reaped; concurrent workers
 *
 * Each test runs in its own process (Check's fork mode) with a fresh
 * temporary directory.  Timing assertions are loose bounds only: "took at
 * least the timeout" and "finished well before the 10 s the job would
 * take".  The shell commands use /bin/sh, head, sleep, cat, yes.
 */
#include "test_util.h"

#include "belt/job.h"
#include "belt/pool.h"
#include "exec/exec.h"

#include <dirent.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmp[256];

static void setup(void)
{
    tu_reset_failures();
    snprintf(tmp, sizeof tmp, "/tmp/belt-check-exec-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    /* The test's realpath, for comparing with `pwd`. */
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(tmp, real));
    ck_assert_uint_lt(strlen(real), sizeof tmp);
    memcpy(tmp, real, strlen(real) + 1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(path);
    return 0;
}

static void teardown(void)
{
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmp/name in a static buffer (4 in rotation). */
static const char *path_in(const char *name)
{
    static char buf[4][PATH_MAX];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, PATH_MAX, "%s/%s", tmp, name);
    return b;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Whole file into a static buffer; returns its length, -1 if missing. */
static char file_buf[1 << 20];
static long read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    long n = 0;
    ssize_t k;
    while ((k = read(fd, file_buf + n, sizeof file_buf - 1 - (size_t)n)) > 0)
        n += k;
    close(fd);
    file_buf[n] = '\0';
    return n;
}

static long read_fd_all(int fd, char *buf, size_t size)
{
    long n = 0;
    ssize_t k;
    while ((size_t)n < size - 1 && (k = read(fd, buf + n, size - 1 - (size_t)n)) > 0)
        n += k;
    buf[n] = '\0';
    return n;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static int count_open_fds(void)
{
    return count_entries("/proc/self/fd") - 1; /* opendir's own fd */
}

/* True once pid is gone or a zombie (dead, maybe not yet reaped by init),
 * waiting up to `seconds` for it. */
static bool pid_dead(pid_t pid, double seconds)
{
    int64_t end = tu_now_ns() + (int64_t)(seconds * 1e9);
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    for (;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return true;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            return true;
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        if (rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'))
            return true;
        if (tu_now_ns() > end)
            return false;
        tu_sleep_ms(10); /* test only: waiting for an outside process */
    }
}

static pid_t read_pid(const char *path)
{
    ck_assert_int_gt(read_file(path), 0);
    return (pid_t)atoi(file_buf);
}

static belt_job run_job(const char *cmd)
{
    belt_job j;
    belt_job_init(&j);
    j.id = "t";
    j.run = cmd;
    return j;
}

static belt_result *exec(const belt_job *j)
{
    belt_result *r = belt__exec_job(j, 0, NULL);
    ck_assert_ptr_nonnull(r);
    return r;
}

static double secs_since(int64_t t0)
{
    return (double)(tu_now_ns() - t0) / 1e9;
}

/* Redirects our own fd `fd` to a file; returns the saved original. */
static int redirect_fd(int fd, const char *path)
{
    fflush(NULL);
    int saved = dup(fd);
    ck_assert_int_ge(saved, 0);
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ck_assert_int_ge(f, 0);
    ck_assert_int_eq(dup2(f, fd), fd);
    close(f);
    return saved;
}

static void restore_fd(int fd, int saved)
{
    ck_assert_int_eq(dup2(saved, fd), fd);
    close(saved);
}

/* ---- process ------------------------------------------------------------ */

START_TEST(test_exit_zero)
{
    belt_job j = run_job("exit 0");
    j.seq = 9;
    belt_result *r = belt__exec_job(&j, 7, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_int_eq(r->exit_code, 0);
    ck_assert_int_eq(r->signal, 0);
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_int_eq(r->worker, 7);
    ck_assert_uint_eq(r->seq, 9);
    ck_assert_ptr_eq(r->job, &j);
    ck_assert_ptr_null(r->error);
    ck_assert_ptr_nonnull(r->attempt_log);
    ck_assert_int_eq(r->attempt_log[0].status, BELT_JOB_OK);
    ck_assert_int_gt(r->started_ns, 0);
    ck_assert_int_ge(r->ended_ns, r->started_ns);
    ck_assert_int_eq(r->queued_ns, r->started_ns);
    ck_assert_int_gt(r->duration_ns, 0);
    ck_assert_int_eq(r->duration_ns, r->attempt_log[0].duration_ns);
    ck_assert_ptr_nonnull(r->out); /* CAPTURE: "" */
    ck_assert_uint_eq(r->out_len, 0);
    ck_assert_str_eq(r->out, "");
    belt_result_free(r);
}
END_TEST

START_TEST(test_exit_code)
{
    belt_job j = run_job("exit 3");
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->exit_code, 3);
    ck_assert_int_eq(r->signal, 0);
    ck_assert_ptr_null(r->error);
    belt_result_free(r);
}
END_TEST

START_TEST(test_argv_true_false)
{
    char *t[] = { "true", NULL }, *f[] = { "false", NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = t;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    belt_result_free(r);
    j.argv = f;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->exit_code, 1);
    belt_result_free(r);
}
END_TEST

START_TEST(test_argv_no_shell)
{
    /* Metacharacters reach the program as they are. */
    char *argv[] = { "printf", "%s|", "a b", "$HOME", "*;echo x", NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "a b|$HOME|*;echo x|");
    belt_result_free(r);
}
END_TEST

START_TEST(test_killed_by_signal)
{
    belt_job j = run_job("kill -9 $$");
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->signal, SIGKILL);
    ck_assert_int_eq(r->exit_code, -1);
    ck_assert_int_eq(r->attempt_log[0].signal, SIGKILL);
    belt_result_free(r);
}
END_TEST

START_TEST(test_signal_dispositions_reset)
{
    /* belt ignoring SIGPIPE/SIGINT must not leak into jobs. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    belt_job j = run_job("kill -PIPE $$; echo survived");
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->signal, SIGPIPE);
    belt_result_free(r);
    j = run_job("kill -TERM $$; echo survived");
    r = exec(&j);
    ck_assert_int_eq(r->signal, SIGTERM);
    belt_result_free(r);
    /* Own process group. */
    j = run_job("cut -d' ' -f5 /proc/$$/stat; echo $$");
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    int pgid = 0, pid = -1;
    ck_assert_int_eq(sscanf(r->out, "%d %d", &pgid, &pid), 2);
    ck_assert_int_eq(pgid, pid);
    belt_result_free(r);
}
END_TEST

START_TEST(test_missing_executable_argv)
{
    char *argv[] = { "belt-no-such-command-xyz", "arg", NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    j.retries = 3; /* ERROR is final: no retries */
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(r->error, "command not found: belt-no-such-command-xyz");
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_int_eq(r->exit_code, -1);
    belt_result_free(r);

    char *abs[] = { "/nonexistent/belt-tool", NULL };
    j.argv = abs;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_str_eq(r->error, "command not found: /nonexistent/belt-tool");
    belt_result_free(r);
}
END_TEST

START_TEST(test_not_executable)
{
    const char *p = path_in("plain.txt");
    write_file(p, "not a program\n");
    chmod(p, 0644);
    char *argv[] = { (char *)p, NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(r->error);
    /* root may pass the permission check and fail on the format instead */
    ck_assert_msg(strstr(r->error, p) != NULL, "error: %s", r->error);
    belt_result_free(r);
}
END_TEST

START_TEST(test_missing_executable_run)
{
    belt_job j = run_job("belt-no-such-command-xyz --flag");
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->exit_code, 127);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(r->error, "command not found (exit 127)");
    ck_assert_ptr_nonnull(strstr(r->err, "not found"));
    belt_result_free(r);
}
END_TEST

START_TEST(test_bad_cwd)
{
    char *argv[] = { "true", NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    j.cwd = "/nonexistent-belt/dir";
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_str_eq(r->error,
                     "cannot change directory to /nonexistent-belt/dir: "
                     "No such file or directory");
    belt_result_free(r);

    /* a file, not a directory */
    const char *f = path_in("file");
    write_file(f, "x");
    j.cwd = f;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(strstr(r->error, "Not a directory"));
    belt_result_free(r);
}
END_TEST

START_TEST(test_cwd)
{
    belt_job j = run_job("pwd");
    j.cwd = tmp;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    char want[PATH_MAX + 2];
    snprintf(want, sizeof want, "%s\n", tmp);
    ck_assert_str_eq(r->out, want);
    belt_result_free(r);

    /* relative argv[0] with a slash is found from the job's cwd */
    const char *s = path_in("hello.sh");
    write_file(s, "#!/bin/sh\necho hello from script\n");
    chmod(s, 0755);
    char *argv[] = { "./hello.sh", NULL };
    belt_job k;
    belt_job_init(&k);
    k.argv = argv;
    k.cwd = tmp;
    r = exec(&k);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "hello from script\n");
    belt_result_free(r);
}
END_TEST

START_TEST(test_env)
{
    setenv("BELT_T_INHERIT", "yes", 1);
    setenv("BELT_T_OVER", "old", 1);
    char *env[] = { "BELT_T_NEW=1", "BELT_T_OVER=new", "BELT_T_TWICE=a",
                    "BELT_T_TWICE=b", NULL };
    belt_job j = run_job("echo \"$BELT_T_INHERIT $BELT_T_OVER $BELT_T_NEW "
                         "$BELT_T_TWICE\"; env | grep -c '^BELT_T_OVER='; "
                         "env | grep -c '^BELT_T_TWICE='");
    j.env = env;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "yes new 1 b\n1\n1\n");
    belt_result_free(r);
    /* belt's own environment is untouched */
    ck_assert_str_eq(getenv("BELT_T_OVER"), "old");
    ck_assert_ptr_null(getenv("BELT_T_NEW"));
}
END_TEST

START_TEST(test_env_bad_entry)
{
    char *env[] = { "GOOD=1", "NOEQUALS", NULL };
    belt_job j = run_job("true");
    j.env = env;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_ptr_nonnull(strstr(r->error, "NOEQUALS"));
    belt_result_free(r);
}
END_TEST

START_TEST(test_stdin)
{
    const char *in = path_in("input.txt");
    write_file(in, "hello\nworld\n");
    char *argv[] = { "cat", NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    j.stdin_path = in;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "hello\nworld\n");
    belt_result_free(r);

    /* default: /dev/null, so cat ends at once */
    j.stdin_path = NULL;
    int64_t t0 = tu_now_ns();
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_uint_eq(r->out_len, 0);
    ck_assert(secs_since(t0) < 5.0);
    belt_result_free(r);

    j.stdin_path = path_in("missing.txt");
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(r->error);
    ck_assert_ptr_nonnull(strstr(r->error, "cannot open stdin"));
    belt_result_free(r);
}
END_TEST

START_TEST(test_bad_jobs)
{
    belt_job j;
    belt_job_init(&j); /* no command */
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_ptr_nonnull(r->error);
    belt_result_free(r);

    char *argv[] = { "true", NULL }, *empty[] = { "", NULL }, *none[] = { NULL };
    j.run = "true";
    j.argv = argv; /* both */
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_str_eq(r->error, "job has both run and argv");
    belt_result_free(r);

    j.run = NULL;
    j.argv = empty;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    belt_result_free(r);
    j.argv = none;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    belt_result_free(r);

    r = belt__exec_job(NULL, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    belt_result_free(r);
}
END_TEST

START_TEST(test_child_sees_only_stdio)
{
    /* An fd without O_CLOEXEC in belt must not reach the child. */
    int leak = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(leak, 3);
    belt_job j = run_job("ls /proc/$$/fd");
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    char *save = NULL;
    for (char *t = strtok_r(r->out, " \n", &save); t != NULL;
         t = strtok_r(NULL, " \n", &save)) {
        int fd = atoi(t);
        ck_assert_msg(fd <= 2, "child has fd %d open (%s)", fd, t);
    }
    belt_result_free(r);
    close(leak);
}
END_TEST

START_TEST(test_stdout_stderr_separate)
{
    belt_job j = run_job("echo out; echo err >&2; echo out2");
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "out\nout2\n");
    ck_assert_str_eq(r->err, "err\n");
    ck_assert(!r->out_truncated);
    ck_assert(!r->err_truncated);
    belt_result_free(r);
}
END_TEST

/* ---- output ------------------------------------------------------------- */

START_TEST(test_capture_flood_truncated)
{
    belt_job j = run_job("head -c 10000000 /dev/zero");
    j.output_limit = 1000;
    int64_t t0 = tu_now_ns();
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_uint_eq(r->out_len, 1000);
    ck_assert(r->out_truncated);
    ck_assert_uint_eq(r->err_len, 0);
    ck_assert(!r->err_truncated);
    ck_assert_int_eq(r->out[999], 0);
    ck_assert_int_eq(r->out[1000], 0);
    ck_assert_msg(secs_since(t0) < 10.0, "flood took %.1fs", secs_since(t0));
    belt_result_free(r);
}
END_TEST

START_TEST(test_capture_flood_both_streams)
{
    belt_job j = run_job("head -c 3000000 /dev/zero >&2 & "
                         "head -c 3000000 /dev/zero; wait; echo end >&2");
    j.output_limit = 100;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_uint_eq(r->out_len, 100);
    ck_assert_uint_eq(r->err_len, 100);
    ck_assert(r->out_truncated);
    ck_assert(r->err_truncated);
    belt_result_free(r);
}
END_TEST

START_TEST(test_capture_default_limit)
{
    belt_job j = run_job("head -c 2000000 /dev/zero | tr '\\0' x");
    j.output_limit = 0; /* 1 MiB */
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_uint_eq(r->out_len, 1u << 20);
    ck_assert(r->out_truncated);
    ck_assert_int_eq(r->out[0], 'x');
    ck_assert_int_eq(r->out[(1u << 20) - 1], 'x');
    belt_result_free(r);

    /* exactly at the limit: not truncated */
    j = run_job("printf abcde");
    j.output_limit = 5;
    r = exec(&j);
    ck_assert_str_eq(r->out, "abcde");
    ck_assert(!r->out_truncated);
    belt_result_free(r);
}
END_TEST

START_TEST(test_capture_binary)
{
    belt_job j = run_job("printf 'a\\000b'");
    belt_result *r = exec(&j);
    ck_assert_uint_eq(r->out_len, 3);
    ck_assert_int_eq(memcmp(r->out, "a\0b", 4), 0);
    belt_result_free(r);
}
END_TEST

START_TEST(test_files_mode)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/out/sub", tmp); /* created on demand */
    belt_job j = run_job("echo to-out; echo to-err >&2");
    j.id = "a/b c";
    j.output = BELT_OUTPUT_FILES;
    j.output_dir = dir;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_ptr_nonnull(r->out_path);
    ck_assert_ptr_nonnull(r->err_path);
    ck_assert_str_eq(r->out_path, path_in("out/sub/a_b_c.out"));
    ck_assert_str_eq(r->err_path, path_in("out/sub/a_b_c.err"));
    ck_assert_ptr_null(r->out);
    ck_assert_int_eq(r->out_fd, -1);
    ck_assert_int_eq(read_file(r->out_path), 7);
    ck_assert_str_eq(file_buf, "to-out\n");
    ck_assert_int_gt(read_file(r->err_path), 0);
    ck_assert_str_eq(file_buf, "to-err\n");
    belt_result_free(r);

    /* no id; a leading dot; the next run truncates */
    j.id = NULL;
    j.seq = 12;
    j.run = "echo second";
    r = exec(&j);
    ck_assert_str_eq(r->out_path, path_in("out/sub/job-12.out"));
    belt_result_free(r);
    j.id = "../escape";
    r = exec(&j);
    ck_assert_str_eq(r->out_path, path_in("out/sub/_._escape.out"));
    belt_result_free(r);
    j.id = ".hidden";
    r = exec(&j);
    ck_assert_str_eq(r->out_path, path_in("out/sub/_hidden.out"));
    belt_result_free(r);

    /* an output dir that can't be made */
    j.output_dir = "/proc/belt-cannot-exist/x";
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(strstr(r->error, "cannot create output directory"));
    belt_result_free(r);
}
END_TEST

START_TEST(test_group_mode)
{
    const char *spool = path_in("spool");
    ck_assert_int_eq(mkdir(spool, 0700), 0);
    setenv("TMPDIR", spool, 1);
    belt_job j = run_job("echo hi; echo there >&2; head -c 3000000 /dev/zero");
    j.output = BELT_OUTPUT_GROUP;
    j.output_limit = 10; /* no limit in GROUP mode */
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_int_ge(r->out_fd, 0);
    ck_assert_int_ge(r->err_fd, 0);
    ck_assert_ptr_null(r->out);
    ck_assert_int_eq(lseek(r->out_fd, 0, SEEK_CUR), 0);
    ck_assert_int_eq(count_entries(spool), 0); /* nothing with a name */
    static char big[3100000];
    long n = read_fd_all(r->out_fd, big, sizeof big);
    ck_assert_int_eq(n, 3 + 3000000);
    ck_assert_int_eq(memcmp(big, "hi\n", 3), 0);
    n = read_fd_all(r->err_fd, big, sizeof big);
    ck_assert_str_eq(big, "there\n");
    ck_assert_int_eq(fcntl(r->out_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    belt_result_free(r);
    ck_assert_int_eq(count_entries(spool), 0);

    setenv("TMPDIR", path_in("no-such-dir"), 1);
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(strstr(r->error, "temporary file"));
    belt_result_free(r);
}
END_TEST

struct lines_arg {
    char ch;
    belt_job job;
    char cmd[256];
    int status;
};

static void *lines_thread(void *p)
{
    struct lines_arg *a = p;
    belt_result *r = belt__exec_job(&a->job, 0, NULL);
    a->status = r != NULL ? (int)r->status : -1;
    if (r != NULL)
        TU_CHECK(r->out == NULL, "LINES mode captured output");
    belt_result_free(r);
    return NULL;
}

START_TEST(test_lines_mode_never_mixes)
{
    enum { NT = 3, LINES = 3000, WIDTH = 99 };
    const char *out = path_in("lines.out");
    int saved = redirect_fd(1, out);
    struct lines_arg a[NT];
    pthread_t th[NT];
    for (int i = 0; i < NT; i++) {
        a[i].ch = (char)('a' + i);
        /* `yes` writes big buffers: lines are split across writes */
        char word[WIDTH + 1];
        memset(word, a[i].ch, WIDTH);
        word[WIDTH] = '\0';
        snprintf(a[i].cmd, sizeof a[i].cmd, "yes %s | head -n %d", word, LINES);
        a[i].job = run_job(a[i].cmd);
        a[i].job.output = BELT_OUTPUT_LINES;
        tu_spawn(&th[i], lines_thread, &a[i]);
    }
    for (int i = 0; i < NT; i++)
        tu_join(th[i]);
    restore_fd(1, saved);
    tu_assert_threads_ok();
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(a[i].status, BELT_JOB_OK);

    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    char line[512];
    int count[NT] = { 0 };
    /* (no ck_assert per character: each one is a message to Check's parent) */
    bool bad = false;
    while (!bad && fgets(line, sizeof line, f) != NULL) {
        size_t n = strlen(line);
        int k = line[0] - 'a';
        bad = n != WIDTH + 1 || line[WIDTH] != '\n' || k < 0 || k >= NT;
        for (int c = 0; c < WIDTH && !bad; c++)
            bad = line[c] != line[0];
        if (!bad)
            count[k]++;
    }
    fclose(f);
    ck_assert_msg(!bad, "torn or mixed line: %s", line);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(count[i], LINES);
}
END_TEST

START_TEST(test_lines_mode_last_partial_line)
{
    const char *out = path_in("o.txt"), *err = path_in("e.txt");
    int so = redirect_fd(1, out);
    int se = redirect_fd(2, err);
    belt_job j = run_job("printf 'x\\ny'; printf 'e1\\ne2' >&2");
    j.output = BELT_OUTPUT_LINES;
    belt_result *r = belt__exec_job(&j, 0, NULL);
    restore_fd(2, se);
    restore_fd(1, so);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    belt_result_free(r);
    ck_assert_int_eq(read_file(out), 3);
    ck_assert_str_eq(file_buf, "x\ny");
    ck_assert_int_eq(read_file(err), 5);
    ck_assert_str_eq(file_buf, "e1\ne2");
}
END_TEST

START_TEST(test_inherit_and_discard)
{
    const char *out = path_in("inherit.txt");
    int so = redirect_fd(1, out);
    belt_job j = run_job("echo inherited");
    j.output = BELT_OUTPUT_INHERIT;
    belt_result *r = belt__exec_job(&j, 0, NULL);
    restore_fd(1, so);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_ptr_null(r->out);
    belt_result_free(r);
    ck_assert_int_gt(read_file(out), 0);
    ck_assert_str_eq(file_buf, "inherited\n");

    j = run_job("echo gone; echo gone >&2; head -c 1000000 /dev/zero");
    j.output = BELT_OUTPUT_DISCARD;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_ptr_null(r->out);
    ck_assert_ptr_null(r->err);
    ck_assert_int_eq(r->out_fd, -1);
    belt_result_free(r);
}
END_TEST

/* ---- timeout ------------------------------------------------------------ */

START_TEST(test_timeout)
{
    char *argv[] = { "sleep", "10", NULL };
    belt_job j;
    belt_job_init(&j);
    j.argv = argv;
    j.timeout_ns = 200 * TU_MS;
    int64_t t0 = tu_now_ns();
    belt_result *r = exec(&j);
    double s = secs_since(t0);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    ck_assert_int_eq(r->signal, SIGTERM);
    ck_assert_str_eq(r->error, "timed out after 200ms");
    ck_assert_msg(s >= 0.19 && s < 5.0, "took %.3fs", s);
    ck_assert_int_ge(r->duration_ns, 190 * TU_MS);
    belt_result_free(r);
}
END_TEST

START_TEST(test_timeout_term_trapped_gets_kill)
{
    /* 1 s: time for sh to set the trap even on a loaded machine */
    belt_job j = run_job("trap '' TERM; sleep 10; sleep 10");
    j.timeout_ns = TU_SEC;
    j.kill_grace_ns = 300 * TU_MS;
    int64_t t0 = tu_now_ns();
    belt_result *r = exec(&j);
    double s = secs_since(t0);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    ck_assert_int_eq(r->signal, SIGKILL);
    ck_assert_str_eq(r->error, "timed out after 1s");
    ck_assert_msg(s >= 1.25 && s < 10.0, "took %.3fs", s);
    belt_result_free(r);
}
END_TEST

START_TEST(test_timeout_no_grace)
{
    belt_job j = run_job("trap '' TERM; sleep 10");
    j.timeout_ns = 100 * TU_MS;
    j.kill_grace_ns = -1; /* SIGKILL at once, no SIGTERM */
    int64_t t0 = tu_now_ns();
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    ck_assert_int_eq(r->signal, SIGKILL);
    ck_assert(secs_since(t0) < 5.0);
    belt_result_free(r);
}
END_TEST

START_TEST(test_orphan_killed_after_exit)
{
    /* The child leaves a background process holding our stdout pipe. */
    char cmd[PATH_MAX + 64];
    const char *pidf = path_in("grandchild.pid");
    snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > %s; echo done", pidf);
    belt_job j = run_job(cmd);
    int64_t t0 = tu_now_ns();
    belt_result *r = exec(&j);
    double s = secs_since(t0);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "done\n");
    ck_assert_msg(s < 5.0, "waited %.1fs for the orphan", s);
    belt_result_free(r);
    pid_t gc = read_pid(pidf);
    ck_assert_int_gt(gc, 0);
    ck_assert_msg(pid_dead(gc, 5.0), "grandchild %d still alive", (int)gc);
}
END_TEST

START_TEST(test_orphan_killed_on_timeout)
{
    char cmd[PATH_MAX + 64];
    const char *pidf = path_in("grandchild.pid");
    snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > %s; sleep 30", pidf);
    belt_job j = run_job(cmd);
    j.timeout_ns = 200 * TU_MS;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    belt_result_free(r);
    pid_t gc = read_pid(pidf);
    ck_assert_msg(pid_dead(gc, 5.0), "grandchild %d still alive", (int)gc);
}
END_TEST

/* ---- retries ------------------------------------------------------------ */

START_TEST(test_retries_until_success)
{
    char cmd[PATH_MAX + 128];
    const char *cnt = path_in("counter");
    snprintf(cmd, sizeof cmd,
             "n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s; "
             "echo attempt $n; [ $n -ge 3 ] || exit 4",
             cnt, cnt);
    belt_job j = run_job(cmd);
    j.retries = 5;
    j.retry_delay_ns = 10 * TU_MS;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_uint_eq(r->attempts, 3);
    ck_assert_int_eq(r->attempt_log[0].status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->attempt_log[0].exit_code, 4);
    ck_assert_int_eq(r->attempt_log[1].status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->attempt_log[2].status, BELT_JOB_OK);
    ck_assert_int_eq(r->attempt_log[2].exit_code, 0);
    for (int i = 1; i < 3; i++)
        ck_assert_int_ge(r->attempt_log[i].started_ns, r->attempt_log[i - 1].ended_ns);
    ck_assert_int_eq(r->started_ns, r->attempt_log[0].started_ns);
    ck_assert_int_eq(r->ended_ns, r->attempt_log[2].ended_ns);
    ck_assert_str_eq(r->out, "attempt 3\n"); /* the last attempt's output */
    belt_result_free(r);
}
END_TEST

START_TEST(test_retries_exhausted)
{
    belt_job j = run_job("exit 2");
    j.retries = 2;
    j.retry_delay_ns = TU_MS;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_FAILED);
    ck_assert_int_eq(r->exit_code, 2);
    ck_assert_uint_eq(r->attempts, 3);
    belt_result_free(r);
}
END_TEST

START_TEST(test_retry_after_timeout)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_SLEEP;
    j.duration_ns = 10 * TU_SEC;
    j.timeout_ns = 20 * TU_MS;
    j.retries = 1;
    j.retry_delay_ns = 0;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    ck_assert_uint_eq(r->attempts, 2);
    ck_assert_int_eq(r->attempt_log[0].status, BELT_JOB_TIMEOUT);
    belt_result_free(r);
}
END_TEST

START_TEST(test_backoff_bounds)
{
    /* delays 100 ms then 200 ms with equal jitter: at least 50 + 100 ms */
    belt_job j = run_job("exit 1");
    j.retries = 2;
    j.retry_delay_ns = 100 * TU_MS;
    int64_t t0 = tu_now_ns();
    belt_result *r = exec(&j);
    double s = secs_since(t0);
    ck_assert_uint_eq(r->attempts, 3);
    ck_assert_msg(s >= 0.15 && s < 5.0, "took %.3fs", s);
    int64_t gap1 = r->attempt_log[1].started_ns - r->attempt_log[0].ended_ns;
    int64_t gap2 = r->attempt_log[2].started_ns - r->attempt_log[1].ended_ns;
    ck_assert_int_ge(gap1, 45 * TU_MS);
    ck_assert_int_ge(gap2, 95 * TU_MS);
    belt_result_free(r);

    /* the cap: a 10 s first delay capped at 40 ms */
    j.retries = 3;
    j.retry_delay_ns = 10 * TU_SEC;
    j.retry_max_delay_ns = 40 * TU_MS;
    t0 = tu_now_ns();
    r = exec(&j);
    s = secs_since(t0);
    ck_assert_uint_eq(r->attempts, 4);
    ck_assert_msg(s >= 0.06 && s < 5.0, "took %.3fs", s);
    belt_result_free(r);
}
END_TEST

/* ---- cancel ------------------------------------------------------------- */

struct canceller {
    belt__cancel *c;
    int64_t after_ms;
    const char *ready; /* first wait (up to 10 s) for this file, or NULL */
};

static void *cancel_later(void *p)
{
    struct canceller *k = p;
    /* Test only: waiting on an outside process, so a loaded machine can't
     * make the cancel arrive before the job got where the test wants it. */
    for (int i = 0; k->ready != NULL && i < 2000 && access(k->ready, F_OK) != 0; i++)
        tu_sleep_ms(5);
    tu_sleep_ms(k->after_ms);
    belt__cancel_fire(k->c);
    return NULL;
}

/* Runs j with a token fired after `ms`; returns the result and seconds. */
static belt_result *exec_cancel_after(const belt_job *j, const char *ready,
                                      int64_t ms, double *secs)
{
    belt__cancel c;
    ck_assert_rc(belt__cancel_init(&c), BELT_OK);
    struct canceller k = { &c, ms, ready };
    pthread_t th;
    int64_t t0 = tu_now_ns();
    tu_spawn(&th, cancel_later, &k);
    belt_result *r = belt__exec_job(j, 1, &c);
    *secs = secs_since(t0);
    tu_join(th);
    belt__cancel_destroy(&c);
    ck_assert_ptr_nonnull(r);
    return r;
}

START_TEST(test_cancel_token)
{
    belt__cancel c;
    ck_assert_rc(belt__cancel_init(&c), BELT_OK);
    ck_assert_int_ge(c.wake_fd, 0);
    ck_assert(!belt__cancel_fired(&c));
    ck_assert(!belt__cancel_fired(NULL));
    belt__cancel_fire(&c);
    belt__cancel_fire(&c); /* idempotent */
    ck_assert(belt__cancel_fired(&c));
    struct pollfd p = { .fd = c.wake_fd, .events = POLLIN };
    ck_assert_int_eq(poll(&p, 1, 0), 1); /* stays readable */
    ck_assert_int_eq(poll(&p, 1, 0), 1);
    belt__cancel_destroy(&c);
    ck_assert_int_eq(c.wake_fd, -1);
}
END_TEST

START_TEST(test_cancel_running_process)
{
    char cmd[PATH_MAX];
    const char *ready = path_in("ready");
    snprintf(cmd, sizeof cmd, "touch %s; exec sleep 10", ready);
    belt_job j = run_job(cmd);
    double s;
    belt_result *r = exec_cancel_after(&j, ready, 50, &s);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    ck_assert_int_eq(r->signal, SIGTERM);
    ck_assert_str_eq(r->error, "canceled");
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_msg(s < 5.0, "took %.1fs", s);
    belt_result_free(r);
}
END_TEST

START_TEST(test_cancel_term_trapped)
{
    char cmd[PATH_MAX];
    const char *ready = path_in("ready");
    snprintf(cmd, sizeof cmd, "trap '' TERM; touch %s; sleep 10; sleep 10", ready);
    belt_job j = run_job(cmd);
    j.kill_grace_ns = 300 * TU_MS;
    double s;
    belt_result *r = exec_cancel_after(&j, ready, 50, &s);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    ck_assert_int_eq(r->signal, SIGKILL);
    ck_assert_msg(s >= 0.35 && s < 10.0, "took %.3fs", s);
    belt_result_free(r);
}
END_TEST

START_TEST(test_cancel_during_backoff)
{
    char cmd[PATH_MAX];
    const char *ready = path_in("ready");
    snprintf(cmd, sizeof cmd, "touch %s; exit 1", ready);
    belt_job j = run_job(cmd);
    j.retries = 5;
    j.retry_delay_ns = 10 * TU_SEC;
    double s;
    belt_result *r = exec_cancel_after(&j, ready, 300, &s);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_int_eq(r->exit_code, 1);
    ck_assert_int_eq(r->attempt_log[0].status, BELT_JOB_FAILED);
    ck_assert_ptr_nonnull(strstr(r->error, "waiting to retry"));
    ck_assert_msg(s < 5.0, "took %.1fs", s);
    belt_result_free(r);
}
END_TEST

START_TEST(test_cancel_before_start)
{
    belt__cancel c;
    ck_assert_rc(belt__cancel_init(&c), BELT_OK);
    belt__cancel_fire(&c);
    belt_job j = run_job("echo should-not-run");
    belt_result *r = belt__exec_job(&j, 2, &c);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    ck_assert_uint_eq(r->attempts, 0);
    ck_assert_int_eq(r->worker, 2);
    ck_assert_ptr_nonnull(r->error);
    belt_result_free(r);
    belt__cancel_destroy(&c);
}
END_TEST

START_TEST(test_cancel_sleep_and_spin)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_SLEEP;
    j.duration_ns = 10 * TU_SEC;
    double s;
    belt_result *r = exec_cancel_after(&j, NULL, 100, &s);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_msg(s < 5.0, "sleep took %.1fs", s);
    belt_result_free(r);

    j.kind = BELT_JOB_SPIN;
    r = exec_cancel_after(&j, NULL, 100, &s);
    ck_assert_int_eq(r->status, BELT_JOB_CANCELED);
    ck_assert_msg(s < 5.0, "spin took %.1fs", s);
    belt_result_free(r);
}
END_TEST

START_TEST(test_queued_ns_kept)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_NOOP;
    belt_result *r = belt_result_new(&j);
    ck_assert_ptr_nonnull(r);
    r->queued_ns = 12345;
    belt__exec_job_into(r, &j, 4, NULL);
    ck_assert_int_eq(r->queued_ns, 12345);
    ck_assert_int_eq(r->worker, 4);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    belt_result_free(r);
}
END_TEST

/* ---- kinds -------------------------------------------------------------- */

START_TEST(test_noop)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_NOOP;
    belt_result *r = belt_run_job(&j, 3);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_int_eq(r->exit_code, 0);
    ck_assert_uint_eq(r->attempts, 1);
    ck_assert_int_eq(r->worker, 3);
    ck_assert_ptr_null(r->out);
    ck_assert_ptr_null(r->error);
    belt_result_free(r);
}
END_TEST

START_TEST(test_sleep_kind)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_SLEEP;
    j.duration_ns = 100 * TU_MS;
    for (int with_token = 0; with_token < 2; with_token++) {
        belt__cancel c;
        ck_assert_rc(belt__cancel_init(&c), BELT_OK);
        int64_t cpu0 = tu_thread_cpu_ns();
        belt_result *r = belt__exec_job(&j, 0, with_token ? &c : NULL);
        int64_t cpu = tu_thread_cpu_ns() - cpu0;
        ck_assert_int_eq(r->status, BELT_JOB_OK);
        ck_assert_int_ge(r->duration_ns, 100 * TU_MS);
        ck_assert_int_lt(r->duration_ns, 5 * TU_SEC);
        ck_assert_msg(cpu < 50 * TU_MS, "sleep used %lld ns of CPU", (long long)cpu);
        belt_result_free(r);
        belt__cancel_destroy(&c);
    }
    /* timeout before the end */
    j.duration_ns = 10 * TU_SEC;
    j.timeout_ns = 100 * TU_MS;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    ck_assert_str_eq(r->error, "timed out after 100ms");
    ck_assert_int_lt(r->duration_ns, 5 * TU_SEC);
    belt_result_free(r);
}
END_TEST

START_TEST(test_spin_kind)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_SPIN;
    j.duration_ns = 50 * TU_MS;
    int64_t cpu0 = tu_thread_cpu_ns();
    belt_result *r = exec(&j);
    int64_t cpu = tu_thread_cpu_ns() - cpu0;
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_msg(cpu >= 50 * TU_MS, "spin used only %lld ns of CPU", (long long)cpu);
    ck_assert_int_ge(r->duration_ns, 45 * TU_MS);
    belt_result_free(r);

    j.duration_ns = 10 * TU_SEC;
    j.timeout_ns = 50 * TU_MS;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_TIMEOUT);
    ck_assert_int_lt(r->duration_ns, 5 * TU_SEC);
    belt_result_free(r);
}
END_TEST

START_TEST(test_bad_kinds)
{
    belt_job j;
    belt_job_init(&j);
    j.kind = BELT_JOB_SLEEP;
    j.duration_ns = -1;
    belt_result *r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_uint_eq(r->attempts, 0);
    belt_result_free(r);
    j.kind = (belt_job_kind)42;
    r = exec(&j);
    ck_assert_int_eq(r->status, BELT_JOB_ERROR);
    ck_assert_ptr_nonnull(r->error);
    belt_result_free(r);
}
END_TEST

/* ---- resources ---------------------------------------------------------- */

START_TEST(test_no_fd_or_child_left)
{
    const char *spool = path_in("spool");
    ck_assert_int_eq(mkdir(spool, 0700), 0);
    setenv("TMPDIR", spool, 1);
    int before = count_open_fds();
    char *missing[] = { "belt-no-such-command-xyz", NULL };
    for (int round = 0; round < 3; round++) {
        belt_job j = run_job("echo x; echo y >&2");
        belt_result *r = exec(&j);
        belt_result_free(r);
        j.output = BELT_OUTPUT_FILES;
        j.output_dir = path_in("files");
        belt_result_free(exec(&j));
        j.output = BELT_OUTPUT_GROUP;
        belt_result_free(exec(&j));
        j.output = BELT_OUTPUT_DISCARD;
        belt_result_free(exec(&j));
        j = run_job("sleep 5");
        j.timeout_ns = 20 * TU_MS;
        belt_result_free(exec(&j));
        j = run_job("true");
        j.cwd = "/nonexistent-belt";
        belt_result_free(exec(&j));
        j = run_job(NULL);
        j.argv = missing;
        belt_result_free(exec(&j));
        j = run_job("true");
        j.stdin_path = "/nonexistent-belt";
        belt_result_free(exec(&j));
    }
    ck_assert_int_eq(count_open_fds(), before);
    /* every child reaped: none left to wait for */
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(count_entries(spool), 0);
}
END_TEST

struct worker_arg {
    int index;
    int n;
    belt__cancel *cancel;
};

static void *worker_thread(void *p)
{
    struct worker_arg *w = p;
    for (int i = 0; i < w->n; i++) {
        char cmd[64], want[64];
        snprintf(cmd, sizeof cmd, "echo w%d-%d", w->index, i);
        snprintf(want, sizeof want, "w%d-%d\n", w->index, i);
        belt_job j = run_job(cmd);
        belt_result *r = belt__exec_job(&j, w->index, w->cancel);
        if (!TU_CHECK(r != NULL, "no result"))
            continue;
        TU_CHECK(r->status == BELT_JOB_OK, "%s: status %s (%s)", cmd,
                 belt_job_status_name(r->status), r->error ? r->error : "");
        TU_CHECK(r->out != NULL && strcmp(r->out, want) == 0, "%s: got %s", cmd,
                 r->out ? r->out : "(null)");
        TU_CHECK(r->worker == w->index, "worker %d", r->worker);
        belt_result_free(r);
    }
    return NULL;
}

START_TEST(test_concurrent_workers)
{
    enum { NW = 4 };
    belt__cancel c;
    ck_assert_rc(belt__cancel_init(&c), BELT_OK);
    /* a long job holding its pipes while others spawn: its pipe ends must
     * not leak into their children (nor theirs into it) */
    struct worker_arg w[NW];
    pthread_t th[NW];
    int n = (int)tu_scaled(25, 5);
    for (int i = 0; i < NW; i++) {
        w[i] = (struct worker_arg){ i, n, &c };
        tu_spawn(&th[i], worker_thread, &w[i]);
    }
    belt_job slow = run_job("sleep 1; echo slow");
    int64_t t0 = tu_now_ns();
    belt_result *r = belt__exec_job(&slow, NW, &c);
    ck_assert_int_eq(r->status, BELT_JOB_OK);
    ck_assert_str_eq(r->out, "slow\n");
    belt_result_free(r);
    for (int i = 0; i < NW; i++)
        tu_join(th[i]);
    tu_assert_threads_ok();
    ck_assert(secs_since(t0) < 20.0);
    belt__cancel_destroy(&c);
}
END_TEST

static Suite *exec_suite(void)
{
    Suite *s = suite_create("exec");
    TCase *tc = tcase_create("process");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_exit_zero);
    tcase_add_test(tc, test_exit_code);
    tcase_add_test(tc, test_argv_true_false);
    tcase_add_test(tc, test_argv_no_shell);
    tcase_add_test(tc, test_killed_by_signal);
    tcase_add_test(tc, test_signal_dispositions_reset);
    tcase_add_test(tc, test_missing_executable_argv);
    tcase_add_test(tc, test_not_executable);
    tcase_add_test(tc, test_missing_executable_run);
    tcase_add_test(tc, test_bad_cwd);
    tcase_add_test(tc, test_cwd);
    tcase_add_test(tc, test_env);
    tcase_add_test(tc, test_env_bad_entry);
    tcase_add_test(tc, test_stdin);
    tcase_add_test(tc, test_bad_jobs);
    tcase_add_test(tc, test_child_sees_only_stdio);
    tcase_add_test(tc, test_stdout_stderr_separate);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_capture_flood_truncated);
    tcase_add_test(tc, test_capture_flood_both_streams);
    tcase_add_test(tc, test_capture_default_limit);
    tcase_add_test(tc, test_capture_binary);
    tcase_add_test(tc, test_files_mode);
    tcase_add_test(tc, test_group_mode);
    tcase_add_test(tc, test_lines_mode_never_mixes);
    tcase_add_test(tc, test_lines_mode_last_partial_line);
    tcase_add_test(tc, test_inherit_and_discard);
    suite_add_tcase(s, tc);

    tc = tcase_create("timeout");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_timeout_term_trapped_gets_kill);
    tcase_add_test(tc, test_timeout_no_grace);
    tcase_add_test(tc, test_orphan_killed_after_exit);
    tcase_add_test(tc, test_orphan_killed_on_timeout);
    suite_add_tcase(s, tc);

    tc = tcase_create("retries");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_retries_until_success);
    tcase_add_test(tc, test_retries_exhausted);
    tcase_add_test(tc, test_retry_after_timeout);
    tcase_add_test(tc, test_backoff_bounds);
    suite_add_tcase(s, tc);

    tc = tcase_create("cancel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_cancel_token);
    tcase_add_test(tc, test_cancel_running_process);
    tcase_add_test(tc, test_cancel_term_trapped);
    tcase_add_test(tc, test_cancel_during_backoff);
    tcase_add_test(tc, test_cancel_before_start);
    tcase_add_test(tc, test_cancel_sleep_and_spin);
    tcase_add_test(tc, test_queued_ns_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("kinds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(20));
    tcase_add_test(tc, test_noop);
    tcase_add_test(tc, test_sleep_kind);
    tcase_add_test(tc, test_spin_kind);
    tcase_add_test(tc, test_bad_kinds);
    suite_add_tcase(s, tc);

    tc = tcase_create("resources");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, tu_timeout(30));
    tcase_add_test(tc, test_no_fd_or_child_left);
    tcase_add_test(tc, test_concurrent_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(exec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
