/* cli.h: the subcommands of the belt program (internal, never installed).
 * Each takes the arguments after its own name (argv[0] is the subcommand's
 * name) and returns the process exit status. */
#ifndef BELT_CLI_H
#define BELT_CLI_H

/* belt bench chan [options]: the channel benchmark matrix (bench_chan.c). */
int belt__cli_bench_chan(int argc, char **argv);

/* belt run [options] CONFIG | --command CMD: run jobs (run.c, quick.c). */
int belt__cli_run(int argc, char **argv);

/* belt validate CONFIG...: check configs without running them
 * (validate.c). */
int belt__cli_validate(int argc, char **argv);

#endif /* BELT_CLI_H */
