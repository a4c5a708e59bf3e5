/* report_bench.c: cost of one result record (belt__report_result_line).
 *
 * Builds one realistic result and serialises it N times, moving its times
 * forward by 137 us per call (so consecutive records mostly fall in the same
 * second, as they do when a worker runs short jobs), and frees each line.
 * Two shapes:
 *   noop   a `noop` job: no process, so stdout/stderr null, one attempt;
 *   out1k  an exec job that printed 1 KiB of ordinary text (ASCII lines with
 *          a few quotes, tabs and a UTF-8 character) and nothing on stderr.
 *
 * Meant for instruction counts, not wall time:
 *   valgrind --tool=callgrind --toggle-collect=belt__report_result_line \
 *       bench/report_bench noop 10000
 * then divide the Ir total by N.  Without valgrind it prints ns per call,
 * which on a shared machine is only indicative.  Not installed, not run by
 * `make check`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt/job.h"
#include "app/report.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *shape = argc > 1 ? argv[1] : "noop";
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 100000;
    bool out1k = strcmp(shape, "out1k") == 0;
    if (!out1k && strcmp(shape, "noop") != 0) {
        fprintf(stderr, "usage: report_bench noop|out1k [N]\n");
        return 2;
    }

    belt_job job;
    belt_job_init(&job);
    job.id = "job-00042";
    job.kind = out1k ? BELT_JOB_EXEC : BELT_JOB_NOOP;
    job.run = out1k ? "./gen" : NULL;
    belt_result *r = belt_result_new(&job);
    belt_attempt *a = calloc(1, sizeof *a);
    if (r == NULL || a == NULL)
        return 1;
    r->seq = 42;
    r->status = BELT_JOB_OK;
    r->exit_code = 0;
    r->attempts = 1;
    r->worker = 1;
    r->attempt_log = a;
    a->status = BELT_JOB_OK;
    a->exit_code = 0;
    if (out1k) {
        static const char text[] =
            "compiling \"src/report.c\"\tok (caf\xc3\xa9) 12.5 ms\n";
        size_t tl = sizeof text - 1;
        r->out = malloc(1025);
        r->err = strdup("");
        if (r->out == NULL || r->err == NULL)
            return 1;
        for (size_t i = 0; i < 1024; i++)
            r->out[i] = text[i % tl];
        r->out[1023] = '\n';
        r->out[1024] = '\0';
        r->out_len = 1024;
    }

    int64_t t = 1763900000123456789LL;
    size_t total = 0;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        r->queued_ns = t;
        r->started_ns = t + 21000;
        r->duration_ns = out1k ? 1834567 : 2345;
        r->ended_ns = r->started_ns + r->duration_ns;
        a->started_ns = r->started_ns;
        a->ended_ns = r->ended_ns;
        a->duration_ns = r->duration_ns;
        size_t len;
        char *line = belt__report_result_line(r, &len);
        if (line == NULL)
            return 1;
        total += len;
        free(line);
        t += 137000;
    }
    int64_t t1 = now_ns();
    printf("%s: %ld records, %zu bytes, %.1f ns/record\n", shape, n, total,
           n > 0 ? (double)(t1 - t0) / (double)n : 0.0);
    belt_result_free(r);
    return 0;
}
