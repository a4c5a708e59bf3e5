/* util/cpu.h: how many CPUs there are.  Internal: never installed. */
#ifndef BELT_UTIL_CPU_H
#define BELT_UTIL_CPU_H

/* The number of online CPUs (sysconf(_SC_NPROCESSORS_ONLN)), at least 1:
 * what "workers": 0, "100%" and a pool of 0 workers mean.  Can't fail. */
unsigned belt__cpu_count(void);

#endif /* BELT_UTIL_CPU_H */
