/*
 * cpus.c - the CPU budget behind `workers = auto` (cpus.h).
 *
 * A worker is a thread with its own event loop that wants a whole CPU. More
 * workers than the process may run at once only add context switches and
 * cache misses: under `taskset -c 0` two workers share one CPU, and with a
 * 100m limit on a 64-CPU node the kernel throttles 64 busy threads to a
 * tenth of one. The online CPU count knows neither, so the affinity mask
 * and the cgroup quota are read, and the smaller decides.
 */
#include "cpus.h"

#include <sched.h>
#include <stdio.h>
#include <unistd.h>

void cpus_budget(const struct cgroup_paths *paths, struct cpus *out)
{
	cpu_set_t set;
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	int mask = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
	out->affinity = mask > 0 ? (unsigned)mask : online > 0 ? (unsigned)online : 1;
	out->n = out->affinity;
	out->source = CPUS_AFFINITY;
	cgroup_cpu_quota(paths, &out->cgroup);
	if (out->cgroup.cpus != 0 && out->cgroup.cpus < out->n) {
		out->n = out->cgroup.cpus;
		out->source = CPUS_CGROUP;
	}
	if (out->n > CPUS_WORKERS_MAX)
		out->n = CPUS_WORKERS_MAX;
}

const char *cpus_source_name(enum cpus_source s)
{
	switch (s) {
	case CPUS_POLICY:
		return "policy";
	case CPUS_AFFINITY:
		return "affinity";
	case CPUS_CGROUP:
		return "cgroup";
	}
	return "?";
}

void cpus_describe(const struct cpus *c, char *buf, size_t cap)
{
	const struct cgroup_cpu *cg = &c->cgroup;
	if (c->source == CPUS_POLICY)
		snprintf(buf, cap, "%u, from the policy", c->n);
	else if (c->source == CPUS_CGROUP)
		snprintf(buf, cap, "%u, from the cgroup CPU quota (%llu/%llu us in %s; %u CPUs in the affinity mask)",
		         c->n, (unsigned long long)cg->quota_us, (unsigned long long)cg->period_us, cg->file,
		         c->affinity);
	else if (cg->cpus != 0)
		snprintf(buf, cap, "%u, from the affinity mask (the cgroup CPU quota in %s allows %u)", c->n, cg->file,
		         cg->cpus);
	else
		snprintf(buf, cap, "%u, from the affinity mask (no cgroup CPU quota%s%s)", c->n, cg->why[0] ? ": " : "",
		         cg->why);
}
