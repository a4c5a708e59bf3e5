/* keygen.c: `belt keygen FILE`: a new key for the broker's signed jobs, and
 * the three steps of changing a key without stopping anything.
 *
 * A key file (app/broker/sign.c) holds one or two keys; the first signs and
 * every one is accepted.  Changing the key of a cluster:
 *
 *   belt keygen --add FILE      adds a new key as the second one (accepted,
 *                               not yet used): copy FILE to every machine
 *   belt keygen --promote FILE  swaps them: the new key signs, the old one
 *                               is still accepted: copy FILE everywhere
 *   belt keygen --retire FILE   drops the old key: copy FILE everywhere
 *
 * Between two steps, every machine accepts what every other one signs.
 * Files are written with mode 0600 through a temporary file and a rename
 * (belt__broker_keys_save).  The key itself is never printed; its id is.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "belt/error.h"
#include "app/broker/broker.h"
#include "cli/cli.h"

static void keygen_usage(FILE *out)
{
    fputs(
        "usage: belt keygen [--force] [FILE]\n"
        "       belt keygen --add | --promote | --retire [FILE]\n"
        "\n"
        "Writes a new key for signing the jobs and results of `belt run --broker`\n"
        "and `belt worker` (HMAC-SHA256, 32 random bytes) to FILE, with mode 0600.\n"
        "FILE defaults to $BELT_KEY_FILE.  Give the same file to the submitter and\n"
        "every worker (--key-file FILE or BELT_KEY_FILE).\n"
        "\n"
        "options:\n"
        "  -f, --force      replace FILE if it exists\n"
        "      --add        add a new key to FILE as its second key: accepted, not\n"
        "                   yet signing (step 1 of changing the key)\n"
        "      --promote    swap FILE's keys: the second one signs, the first is\n"
        "                   still accepted (step 2)\n"
        "      --retire     drop FILE's second key (step 3)\n"
        "  -h, --help       show this help\n"
        "\n"
        "Copy FILE to every machine after each step.  exit status: 0 written,\n"
        "1 the file could not be written, 2 usage error or a bad key file.\n"
        "See belt-worker(1), SIGNED JOBS.\n",
        out);
}

enum { OPT_ADD = 256, OPT_PROMOTE, OPT_RETIRE };

int belt__cli_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"add", no_argument, NULL, OPT_ADD},
        {"promote", no_argument, NULL, OPT_PROMOTE},
        {"retire", no_argument, NULL, OPT_RETIRE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool force = false;
    int step = 0;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":fh", opts, NULL)) != -1) {
        switch (c) {
        case 'f': force = true; break;
        case OPT_ADD: case OPT_PROMOTE: case OPT_RETIRE:
            if (step != 0 && step != c) {
                fprintf(stderr, "belt keygen: one of --add, --promote and "
                        "--retire at a time\n");
                return 2;
            }
            step = c;
            break;
        case 'h': keygen_usage(stdout); return 0;
        default: return belt__cli_bad_option("keygen", c, argv, opts);
        }
    }
    const char *path = optind < argc ? argv[optind] : getenv(BELT__BROKER_KEY_ENV);
    if (optind + 1 < argc) {
        fprintf(stderr, "belt keygen: one FILE at a time, got '%s' and '%s'\n",
                argv[optind], argv[optind + 1]);
        return 2;
    }
    if (path == NULL || path[0] == '\0') {
        fprintf(stderr, "belt keygen: which file? give FILE or set $"
                BELT__BROKER_KEY_ENV "; try 'belt keygen --help'\n");
        return 2;
    }
    if (force && step != 0) {
        fprintf(stderr, "belt keygen: --force only applies when making a new "
                "file\n");
        return 2;
    }

    char msg[600];
    belt__broker_keys k;
    memset(&k, 0, sizeof k);
    unsigned char key[BELT__BROKER_KEY_BYTES];
    int rc = BELT_OK, status = 0;
    const char *what = "";
    if (step != 0) {
        rc = belt__broker_keys_load(&k, path, msg, sizeof msg);
        if (rc != BELT_OK) {
            fprintf(stderr, "belt keygen: %s\n", msg);
            return 2;
        }
    }
    switch (step) {
    case 0:
    case OPT_ADD:
        if (step == OPT_ADD && k.count >= BELT__BROKER_KEYS_MAX) {
            fprintf(stderr, "belt keygen: %s holds two keys already: finish "
                    "the change first (--promote, then --retire)\n", path);
            status = 2;
            goto out;
        }
        rc = belt__broker_keys_generate(key, msg, sizeof msg);
        if (rc == BELT_OK)
            rc = belt__broker_keys_add(&k, key, msg, sizeof msg);
        memset(key, 0, sizeof key);
        what = step == 0 ? "a new key" : "a second key (accepted, not signing "
                                         "yet)";
        break;
    case OPT_PROMOTE:
        if (k.count < 2) {
            fprintf(stderr, "belt keygen: %s holds one key: nothing to promote "
                    "(--add a key first)\n", path);
            status = 2;
            goto out;
        }
        memcpy(key, k.key[0], sizeof key);
        memcpy(k.key[0], k.key[1], sizeof key);
        memcpy(k.key[1], key, sizeof key);
        memset(key, 0, sizeof key);
        {
            char id[sizeof k.id[0]];
            memcpy(id, k.id[0], sizeof id);
            memcpy(k.id[0], k.id[1], sizeof id);
            memcpy(k.id[1], id, sizeof id);
        }
        what = "its second key as the signing key (the other still accepted)";
        break;
    case OPT_RETIRE:
        if (k.count < 2) {
            fprintf(stderr, "belt keygen: %s holds one key: nothing to retire\n",
                    path);
            status = 2;
            goto out;
        }
        memset(k.key[1], 0, sizeof k.key[1]);
        k.count = 1;
        what = "only its signing key";
        break;
    }
    if (rc == BELT_OK)
        rc = belt__broker_keys_save(&k, path, force || step != 0, msg,
                                    sizeof msg);
    if (rc != BELT_OK) {
        fprintf(stderr, "belt keygen: %s\n", msg);
        status = rc == BELT_EBUSY ? 2 : 1;
        goto out;
    }
    printf("belt keygen: %s: %s; signing key %s%s%s (mode 0600)\n", path, what,
           k.id[0], k.count > 1 ? ", also accepted " : "",
           k.count > 1 ? k.id[1] : "");
out:
    belt__broker_keys_wipe(&k);
    return status;
}
