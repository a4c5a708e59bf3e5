/* pool/policy/registry.c: the registry of dispatch policies.
 *
 * What it is for: turning a policy name from a config or the command line
 * ("shared", "round-robin", ...) into the policy's vtable (pool/policy.h), and
 * listing the names for help texts and error messages ("did you mean").
 *
 * Algorithm: a linear search of a constant table; there are a handful of
 * policies and a lookup happens once per pool or per sweep point.
 *
 * Invariants: every entry has a unique name; the table and the name list are
 * in the same order and are both constant (no mutable state, no locks).
 * No aliases: the CLI checks names against belt_pool_policy_names(), so an
 * unlisted spelling ("jiq") would pass a config and fail `belt run`.  A
 * new policy is one file defining one `const belt__policy`, one extern in
 * pool/policy.h and one line in each table below.
 */
#include "pool/policy.h"

#include <string.h>

static const belt__policy *const policies[] = {
    &belt__policy_shared,       &belt__policy_round_robin,
    &belt__policy_random,       &belt__policy_least_loaded,
    &belt__policy_power_of_two, &belt__policy_power_of_d,
    &belt__policy_jiq,          &belt__policy_work_stealing,
};

/* Kept in step with policies[] (checked by check_policy). */
static const char *const names[] = {
    "shared",       "round-robin", "random", "least-loaded",
    "power-of-two", "power-of-d",  "join-idle-queue", "work-stealing",
    NULL,
};

_Static_assert(sizeof policies / sizeof policies[0] + 1 ==
                   sizeof names / sizeof names[0],
               "policies[] and names[] must list the same policies");

const belt__policy *belt__policy_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++)
        if (strcmp(policies[i]->name, name) == 0)
            return policies[i];
    return NULL;
}

const char *const *belt__policy_names(void)
{
    return names;
}
