/* cli/opts.c: what every subcommand says about an option getopt_long()
 * refused, in one wording:
 *     belt CMD: option '--x' needs a value; try 'belt CMD --help'
 *     belt CMD: unknown option '--wokers' (did you mean '--workers'?);
 *     try 'belt CMD --help'
 * The hint is the closest long option (util/suggest.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/suggest.h"

int belt__cli_bad_option(const char *cmd, int c, char **argv,
                         const struct option *longopts)
{
    char word[300];
    if (optopt != 0 && optopt < 256)
        snprintf(word, sizeof word, "-%c", optopt);
    else
        snprintf(word, sizeof word, "%s", argv[optind - 1]);
    if (c == ':') {
        fprintf(stderr, "belt %s: option '%s' needs a value; try 'belt %s "
                "--help'\n", cmd, word, cmd);
        return 2;
    }
    char *eq = strchr(word, '=');
    if (eq != NULL)
        *eq = '\0';
    const char *hint = NULL;
    if (longopts != NULL && word[0] == '-' && word[1] == '-') {
        const char *names[256];
        size_t n = 0;
        for (const struct option *o = longopts; o->name != NULL && n < 255; o++)
            names[n++] = o->name;
        names[n] = NULL;
        hint = belt__suggest(word + 2, names);
    }
    if (hint != NULL)
        fprintf(stderr, "belt %s: unknown option '%s' (did you mean '--%s'?); "
                "try 'belt %s --help'\n", cmd, word, hint, cmd);
    else
        fprintf(stderr, "belt %s: unknown option '%s'; try 'belt %s --help'\n",
                cmd, word, cmd);
    return 2;
}
