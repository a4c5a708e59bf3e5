/* validate.c: `belt validate CONFIG...`: load each config exactly as
 * `belt run` would (types, unknown keys, durations, worker count, policy,
 * duplicate ids, unknown and cyclic dependencies: belt/config.h) and say
 * whether it is good, without running anything.
 *
 * Output, one line per config: "jobs.json: ok (12 jobs)" on stdout, or the
 * loader's one-line error "jobs.json:14:9: jobs[3].timeout: expected a
 * duration like \"30s\"" on stderr.  Exit status 0 when every config is
 * good, 2 when any is not (the same status `belt run` gives a bad config),
 * so `belt validate` works as a pre-commit check.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "belt/config.h"
#include "cli/cli.h"
#include "cli/run.h"
#include "pipeline/pipeline.h"

static void validate_usage(FILE *out)
{
    fputs("usage: belt validate CONFIG...\n"
          "\n"
          "Checks each JSON job config (see belt.json(5)) without running\n"
          "anything: prints \"CONFIG: ok (N jobs)\", or the first error as\n"
          "FILE:LINE:COLUMN: JSON.PATH: message.  Pipeline configs (a\n"
          "\"pipeline\" key) are checked as `belt run` would load them:\n"
          "stage kinds, plugins and symbols, source and sink files.\n"
          "\n"
          "  -h, --help   show this help\n"
          "\n"
          "exit status: 0 every config is valid, 2 otherwise.\n",
          out);
}

int belt__cli_validate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            validate_usage(stdout);
            return 0;
        }
        return belt__cli_bad_option("validate", c, argv, opts);
    }
    if (optind >= argc) {
        fprintf(stderr, "belt validate: missing CONFIG; try 'belt validate "
                "--help'\n");
        return 2;
    }
    int status = 0;
    for (int i = optind; i < argc; i++) {
        if (belt__pipeline_is_config_file(argv[i])) {
            if (belt__cli_validate_pipeline(argv[i]) != 0)
                status = 2;
            continue;
        }
        belt_config_error err;
        memset(&err, 0, sizeof err);
        belt_config *cfg = belt_config_load(argv[i], &err);
        if (cfg == NULL) {
            char line[1400];
            fprintf(stderr, "%s\n",
                    belt_config_error_format(&err, line, sizeof line));
            status = 2;
            continue;
        }
        uint64_t n = belt_config_job_count(cfg);
        printf("%s: ok (%" PRIu64 " job%s)\n", argv[i], n, n == 1 ? "" : "s");
        belt_config_free(cfg);
    }
    if (fflush(stdout) != 0)
        status = status ? status : 1;
    return status;
}
