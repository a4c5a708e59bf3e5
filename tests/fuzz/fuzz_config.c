/* fuzz_config.c: libFuzzer target for the config loader and scheduler.
 *
 * Each input is taken as a config text (copied so that it is
 * NUL-terminated) and loaded with belt_config_load_string().  A failure
 * must give a one-line message that formats without overflow; a success
 * must give a config whose jobs can all be built, and whose scheduler,
 * driven to the end with every third job failing, hands out each job
 * exactly once (run or unrun) and finishes.  Large configs are only
 * partly walked so that one input stays fast.  Built by tests/fuzz/run.sh
 * with clang -fsanitize=fuzzer,address,undefined.
 */
#include "belt/config.h"
#include "belt/sched.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WALK_LIMIT 20000

static void drive(const belt_config *cfg)
{
    belt_sched *s = belt_sched_new(cfg, NULL, NULL);
    if (s == NULL)
        abort();
    uint64_t total = belt_config_job_count(cfg), seen = 0, steps = 0;
    const belt_job *q[8];
    unsigned n = 0;
    while (!belt_sched_finished(s)) {
        if (++steps > 4 * total + 16)
            abort(); /* no progress: the scheduler stalled */
        belt_result *u;
        while ((u = belt_sched_next_unrun(s)) != NULL) {
            if (u->error == NULL || strchr(u->error, '\n') != NULL)
                abort();
            seen++;
            belt_sched_done(s, u);
            belt_result_free(u);
        }
        const belt_job *j;
        while (n < 8 && (j = belt_sched_next(s)) != NULL)
            q[n++] = j;
        if (n == 0)
            continue;
        j = q[--n];
        belt_result *r = belt_result_new(j);
        if (r == NULL)
            abort();
        r->status = j->seq % 3 == 2 ? BELT_JOB_FAILED : BELT_JOB_OK;
        seen++;
        belt_sched_done(s, r);
        belt_result_free(r);
    }
    if (seen != total || belt_sched_running(s) != 0)
        abort();
    belt_sched_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    belt_config_error err;
    belt_config *cfg = belt_config_load_string(text, "fuzz.json", &err);
    if (cfg == NULL) {
        char line[1024];
        belt_config_error_format(&err, line, sizeof line);
        if (err.text[0] == '\0' || strchr(line, '\n') != NULL)
            abort();
    } else {
        uint64_t total = belt_config_job_count(cfg);
        if (total == 0)
            abort();
        for (uint64_t i = 0; i < total && i < WALK_LIMIT; i++) {
            belt_job *j = belt_config_job_at(cfg, i);
            if (j == NULL || j->id == NULL || j->id[0] == '\0' || j->seq != i)
                abort();
            belt_config_job_free(j);
        }
        if (total <= WALK_LIMIT)
            drive(cfg);
        belt_config_free(cfg);
    }
    free(text);
    return 0;
}
