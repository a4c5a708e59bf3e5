/* main.c: the belt program's entry point: global options and dispatch.
 *
 * belt is one program with subcommands, git-style:
 *
 *   belt run jobs.json         run the jobs of a config (or a pipeline
 *                              config) on a worker pool, or a command per
 *                              argument as GNU parallel runs it
 *   belt validate jobs.json    check a config, report the first error
 *   belt experiment exp.json   a load-balancing experiment
 *   belt worker --broker URL   serve jobs from a Redis broker
 *   belt status --broker URL   what a Redis broker holds
 *   belt bench chan [opts]     the channel benchmark matrix
 *
 * This file only parses what comes before the subcommand (--help, --version)
 * and finds the subcommand in one table, `commands` below.  A command is one
 * word ("run") or a group and a word ("bench chan"); its handler receives the
 * arguments from its own last word on, so argv[0] is "run" or "chan", the way
 * main() receives its own name.  Handlers live in their own files, are
 * declared in cli.h, and return the exit status.  A table entry whose handler
 * is still NULL is listed in --help but answers "not implemented yet".
 *
 * Exit statuses: 0 success, 1 the command failed, 2 a usage error (unknown
 * subcommand, bad option); handlers keep to the same convention.
 *
 * To add a command: write its handler, declare it in cli.h, add one row to
 * `commands`.
 */
#include <stdio.h>
#include <string.h>

#include "belt.h"
#include "cli/cli.h"

typedef int belt__cli_fn(int argc, char **argv);

struct belt__cli_cmd {
    const char *group;   /* first word for a two-word command, else NULL */
    const char *name;    /* the (last) word that selects the command */
    const char *args;    /* argument synopsis for --help */
    const char *summary; /* one line for --help */
    belt__cli_fn *fn;    /* NULL: listed, but not implemented yet */
};

static const struct belt__cli_cmd commands[] = {
    { NULL, "run", "<jobs.json> | <cmd>...",
      "run a config's jobs, or a command per argument as GNU parallel does",
      belt__cli_run },
    { NULL, "validate", "<jobs.json>",
      "check a config and report the first error", belt__cli_validate },
    { NULL, "experiment", "<exp.json>",
      "run a load-balancing experiment, live or simulated",
      belt__cli_experiment },
    { NULL, "worker", "--broker URL",
      "serve jobs from a Redis broker on this machine", belt__cli_worker },
    { NULL, "status", "--broker URL",
      "show the runs, queues and workers of a Redis broker",
      belt__cli_status },
    { NULL, "keygen", "[FILE]",
      "write a new key for signed broker jobs", belt__cli_keygen },
    { "bench", "chan", "[options]",
      "channel throughput benchmark (see --help)",
      belt__cli_bench_chan },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "usage: belt <command> [arguments]\n"
            "       belt --help | --version\n"
            "\n"
            "belt runs jobs on a pool of workers, fed through channels.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct belt__cli_cmd *c = &commands[i];
        char head[64];
        snprintf(head, sizeof head, "%s%s%s %s",
                 c->group ? c->group : "", c->group ? " " : "", c->name,
                 c->args);
        fprintf(out, "  %-26s %s%s\n", head, c->summary,
                c->fn ? "" : " (not implemented yet)");
    }
    fprintf(out,
            "\n"
            "options:\n"
            "  -h, --help                 show this help\n"
            "  --version                  show the version\n"
            "\n"
            "Each command has --help; the manual is belt(1), with a page per\n"
            "command: belt-run(1), belt-experiment(1), belt-worker(1).\n");
}

/* True when some command belongs to group `word`. */
static int is_group(const char *word)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].group && strcmp(commands[i].group, word) == 0)
            return 1;
    return 0;
}

/* Lists the commands of a group on stderr, after a usage error in it. */
static void group_usage(const char *group)
{
    fprintf(stderr, "belt %s: commands are:", group);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (commands[i].group && strcmp(commands[i].group, group) == 0)
            fprintf(stderr, " %s", commands[i].name);
    fprintf(stderr, "\n");
}

static int dispatch(const struct belt__cli_cmd *c, int argc, char **argv)
{
    if (c->fn == NULL) {
        fprintf(stderr, "belt: '%s%s%s' is not implemented yet\n",
                c->group ? c->group : "", c->group ? " " : "", c->name);
        return 1;
    }
    return c->fn(argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *word = argv[1];

    if (strcmp(word, "-h") == 0 || strcmp(word, "--help") == 0 ||
        strcmp(word, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(word, "--version") == 0) {
        printf("belt %s\n", belt_version());
        return 0;
    }
    if (word[0] == '-') {
        fprintf(stderr, "belt: unknown option '%s' (try 'belt --help')\n",
                word);
        return 2;
    }

    if (is_group(word)) {
        if (argc < 3) {
            fprintf(stderr, "belt %s: missing command\n", word);
            group_usage(word);
            return 2;
        }
        for (size_t i = 0; i < N_COMMANDS; i++) {
            const struct belt__cli_cmd *c = &commands[i];
            if (c->group && strcmp(c->group, word) == 0 &&
                strcmp(c->name, argv[2]) == 0)
                return dispatch(c, argc - 2, argv + 2);
        }
        fprintf(stderr, "belt %s: unknown command '%s'\n", word, argv[2]);
        group_usage(word);
        return 2;
    }

    for (size_t i = 0; i < N_COMMANDS; i++) {
        const struct belt__cli_cmd *c = &commands[i];
        if (c->group == NULL && strcmp(c->name, word) == 0)
            return dispatch(c, argc - 1, argv + 1);
    }
    fprintf(stderr, "belt: unknown command '%s' (try 'belt --help')\n", word);
    return 2;
}
