/* cli.h: the subcommands of the belt program (internal, never installed).
 * Each takes the arguments after its own name (argv[0] is the subcommand's
 * name) and returns the process exit status. */
#ifndef BELT_CLI_H
#define BELT_CLI_H

#include <getopt.h>

/* belt bench chan [options]: the channel benchmark matrix (bench_chan.c). */
int belt__cli_bench_chan(int argc, char **argv);

/* belt run [options] CONFIG | COMMAND [::: ARGS]...: run the jobs of a
 * config, or a command per argument as GNU parallel does (run.c, quick.c,
 * parallel_*.c). */
int belt__cli_run(int argc, char **argv);

/* belt validate CONFIG...: check configs without running them
 * (validate.c). */
int belt__cli_validate(int argc, char **argv);

/* ---- added by later issues: one block per command ---- */

/* (experiment) */

/* belt experiment [options] CONFIG: a load-balancing experiment, live or
 * simulated (experiment/experiment.c). */
int belt__cli_experiment(int argc, char **argv);

/* (worker, status) */

/* belt worker --broker URL [options]: serve jobs from a Redis broker
 * (worker.c, engine in src/app/broker/worker.c). */
int belt__cli_worker(int argc, char **argv);

/* belt status --broker URL [--namespace P] [--json]: runs, queue depth, jobs
 * in flight per worker, dead letters and live workers of a Redis broker
 * (status.c). */
int belt__cli_status(int argc, char **argv);

/* (keygen) */

/* belt keygen [--force] [--add|--promote|--retire] [FILE]: writes or
 * changes the key file of the broker's signed jobs (keygen.c). */
int belt__cli_keygen(int argc, char **argv);

/* After getopt_long() returned c ('?' or ':') in subcommand cmd ("run",
 * "worker", ...): prints one line saying which option it refused and why,
 * with the closest of longopts (may be NULL) as a hint for an unknown long
 * option (cli/opts.c).  Returns 2, the usage-error exit status. */
int belt__cli_bad_option(const char *cmd, int c, char **argv,
                         const struct option *longopts);

#endif /* BELT_CLI_H */
