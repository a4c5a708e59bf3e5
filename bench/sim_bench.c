/* sim_bench.c: throughput of belt's experiment simulator
 * (src/experiment/sim.c), in simulated jobs per second, for each dispatch policy.
 *
 * The target: at least 5 million jobs per second of wall time on
 * one core for random and power-of-two at 100 workers (10M jobs,
 * exponential service, load 0.9).  This program runs that configuration
 * for every registered policy (or those named with --policy) and prints one
 * CSV line per policy: jobs per second of wall time and of the thread's CPU
 * time (on a shared machine the CPU-time figure is the steadier one), plus
 * the mean sojourn time as a sanity check that the run did what it says.
 *
 *   sim_bench [--jobs N] [--workers N] [--load L] [--repeat R]
 *             [--policy NAME]...
 *
 * Built by `make` (bench/sim_bench in the build tree), run by
 * `scripts/bench sim`; not part of `make check`.  Exit status 1 if a run
 * fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "belt/error.h"
#include "experiment/sim.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr, "usage: sim_bench [--jobs N] [--workers N] [--load L] "
                    "[--repeat R] [--policy NAME]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    unsigned long long jobs = 10000000ull;
    unsigned workers = 100;
    double load = 0.9;
    int repeat = 1;
    const char *chosen[32];
    int nchosen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            return usage();
        const char *v = argv[++i];
        if (strcmp(a, "--jobs") == 0)
            jobs = strtoull(v, NULL, 10);
        else if (strcmp(a, "--workers") == 0)
            workers = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--load") == 0)
            load = strtod(v, NULL);
        else if (strcmp(a, "--repeat") == 0)
            repeat = atoi(v);
        else if (strcmp(a, "--policy") == 0 && nchosen < 32)
            chosen[nchosen++] = v;
        else
            return usage();
    }
    if (jobs == 0 || workers == 0 || !(load > 0.0) || repeat < 1)
        return usage();

    const char *const *names = belt__policy_names();
    if (nchosen == 0)
        for (; nchosen < 32 && names[nchosen] != NULL; nchosen++)
            chosen[nchosen] = names[nchosen];

    belt__workload w = { .arrival = BELT__ARRIVAL_POISSON,
                         .jobs = jobs,
                         .warmup = 0.1 };
    char msg[128];
    if (belt__dist_init(&w.service, BELT__DIST_EXPONENTIAL, 1e-3, 0, 0, msg,
                        sizeof msg) != BELT_OK) {
        fprintf(stderr, "sim_bench: %s\n", msg);
        return 1;
    }
    w.rate = belt__rate_for_load(load, &w.service, workers, NULL);

    int status = 0;
    printf("policy,workers,jobs,load,run,wall_s,cpu_s,jobs_per_s_wall,"
           "jobs_per_s_cpu,sojourn_mean_s\n");
    for (int k = 0; k < nchosen; k++) {
        const belt__policy *p = belt__policy_find(chosen[k]);
        if (p == NULL) {
            fprintf(stderr, "sim_bench: no policy \"%s\"\n", chosen[k]);
            status = 1;
            continue;
        }
        for (int r = 0; r < repeat; r++) {
            belt__point_result res;
            double w0 = clock_s(CLOCK_MONOTONIC);
            double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            int rc = belt__sim_run(p, NULL, workers, NULL, &w,
                                   (uint64_t)r + 1, &res);
            double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
            double wall = clock_s(CLOCK_MONOTONIC) - w0;
            if (rc != BELT_OK) {
                fprintf(stderr, "sim_bench: %s: %s\n", chosen[k],
                        belt_strerror(rc));
                status = 1;
                break;
            }
            printf("%s,%u,%llu,%.2f,%d,%.3f,%.3f,%.0f,%.0f,%.6g\n",
                   chosen[k], workers, (unsigned long long)res.jobs, load,
                   r + 1, wall, cpu, (double)res.jobs / wall,
                   (double)res.jobs / cpu, res.sojourn.mean);
            fflush(stdout);
            belt__point_result_free(&res);
        }
    }
    return status;
}
