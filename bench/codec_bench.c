/* codec_bench.c: cost of the broker's job codec (src/app/broker/codec.c).
 *
 * Encodes (belt__broker_job_to_json) or decodes (belt__broker_job_from_json)
 * one job N times, freeing each product.  Two job shapes:
 *   noop   a `noop` job with an id and a sequence number, everything else at
 *          belt_job_init()'s defaults (what `belt run --broker` sends for a
 *          config of noop jobs);
 *   exec   an exec job with a 100-byte shell command and 3 env entries.
 * and one more operation:
 *   result belt__broker_result_json() of a noop job's result (includes the
 *          report line, which src/app/report.c makes).
 *
 * Meant for instruction counts, not wall time:
 *   valgrind --tool=callgrind --toggle-collect=belt__broker_job_to_json \
 *       bench/codec_bench encode noop 10000
 *   (decode: --toggle-collect=belt__broker_job_from_json; result:
 *   --toggle-collect=belt__broker_result_json)
 * then divide the Ir total by N.  Without valgrind it prints ns per call,
 * which on a shared machine is only indicative.  Not installed, not run by
 * `make check`; built with the rest (build/bench/codec_bench).  To compare
 * another version of app/broker/codec.c, build it by hand, e.g.
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -I/usr/include/hiredis \
 *       bench/codec_bench.c old/broker_codec.c src/app/report.c \
 *       build/src/.libs/libbelt_core.a -ljansson -lpthread -lm -o cb
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt/job.h"
#include "app/broker/broker.h"

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *op = argc > 1 ? argv[1] : "encode";
    const char *shape = argc > 2 ? argv[2] : "noop";
    long n = argc > 3 ? strtol(argv[3], NULL, 10) : 100000;
    int enc = strcmp(op, "encode") == 0, dec = strcmp(op, "decode") == 0;
    int res = strcmp(op, "result") == 0;
    int exec = strcmp(shape, "exec") == 0;
    if ((!enc && !dec && !res) || (!exec && strcmp(shape, "noop") != 0) ||
        n <= 0) {
        fprintf(stderr, "usage: codec_bench encode|decode|result "
                        "noop|exec [N]\n");
        return 2;
    }
    static char *const env[] = { "PATH=/usr/local/bin:/usr/bin:/bin",
                                 "LANG=C.UTF-8", "BELT_SEED=12345", NULL };
    belt_job job;
    belt_job_init(&job);
    job.id = "job-123456";
    job.seq = 123456;
    if (exec) {
        /* 100 bytes exactly */
        job.run = "cd /srv/data && ./process --input batch-0042.csv "
                  "--output out/batch-0042.json --threads 12 --verbose";
        job.env = env;
        job.timeout_ns = 60 * INT64_C(1000000000);
    } else {
        job.kind = BELT_JOB_NOOP;
    }
    char *text = belt__broker_job_to_json(&job);
    if (text == NULL) {
        fprintf(stderr, "codec_bench: cannot encode\n");
        return 1;
    }
    belt_result r;
    memset(&r, 0, sizeof r);
    r.job = &job;
    r.seq = job.seq;
    r.status = BELT_JOB_OK;
    r.attempts = 1;
    r.exit_code = 0;
    r.started_ns = INT64_C(1790000000000000000);
    r.ended_ns = r.started_ns + 12345;
    r.duration_ns = 12345;
    r.queued_ns = r.started_ns;
    r.out_fd = r.err_fd = -1;
    belt_attempt a = { BELT_JOB_OK, 0, 0, r.started_ns, r.ended_ns, 12345 };
    r.attempt_log = &a;

    char msg[256];
    size_t sink = 0;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (enc) {
            char *s = belt__broker_job_to_json(&job);
            sink += s != NULL ? strlen(s) : 0;
            free(s);
        } else if (dec) {
            belt_job *d = NULL;
            if (belt__broker_job_from_json(text, &d, msg, sizeof msg) != 0) {
                fprintf(stderr, "codec_bench: %s\n", msg);
                return 1;
            }
            sink += d->seq;
            belt__broker_job_free(d);
        } else {
            size_t len = 0;
            char *s = belt__broker_result_json(&r, "host-1", "host-1:4242",
                                               1, &len);
            sink += len;
            free(s);
        }
    }
    int64_t t1 = now_ns();
    printf("%s %s: %ld calls, %.1f ns/call (%zu bytes of job JSON, sink %zu)"
           "\n", op, shape, n, (double)(t1 - t0) / (double)n, strlen(text),
           sink);
    free(text);
    return 0;
}
