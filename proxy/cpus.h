/*
 * cpus.h - how many CPUs this process may use, for `workers = auto`: the
 * CPUs its affinity mask allows (taskset, cpuset) and its cgroup CPU quota
 * (a container's CPU limit), whichever is fewer. A leaf, like cgroup.h.
 */
#ifndef LEVEE_CPUS_H
#define LEVEE_CPUS_H

#include "cgroup.h"

enum cpus_source {
	CPUS_POLICY,   /* [levee] workers said how many: nothing was measured */
	CPUS_AFFINITY, /* the affinity mask (or, without one, the CPUs online) */
	CPUS_CGROUP,   /* the cgroup's cpu.max quota */
};

/* The most workers levee runs, as [levee] workers bounds them. */
#define CPUS_WORKERS_MAX 256

struct cpus {
	unsigned n;               /* what decided: at least 1, at most CPUS_WORKERS_MAX */
	enum cpus_source source;
	unsigned affinity;        /* CPUs in the affinity mask */
	struct cgroup_cpu cgroup; /* cgroup.cpus is 0 without a quota */
};

/* Measures the budget, with the cgroup files at <paths>. */
void cpus_budget(const struct cgroup_paths *paths, struct cpus *out);

/* "affinity", "cgroup" or "policy", for /status. */
const char *cpus_source_name(enum cpus_source s);

/* One line for the start-up log, e.g. "1, from the cgroup CPU quota
 * (50000/100000 us in /sys/fs/cgroup/cpu.max; 2 CPUs in the affinity mask)". */
void cpus_describe(const struct cpus *c, char *buf, size_t cap);

#endif
