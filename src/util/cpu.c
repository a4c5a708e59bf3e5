/* util/cpu.c: the CPU count (util/cpu.h). */
#include "util/cpu.h"

#include <limits.h>
#include <unistd.h>

unsigned belt__cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : n > (long)UINT_MAX ? UINT_MAX : (unsigned)n;
}
