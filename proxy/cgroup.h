/*
 * cgroup.h - reading the process's cgroup v2 limits from the files the
 * kernel exposes. Only the CPU quota for now (cpu.max); cpu.stat,
 * memory.current and memory.max, and the PSI files live in the same
 * directories and belong here when the load signals need them.
 *
 * A leaf: libc only, no event loop, no globals. Every path is given by the
 * caller, so the tests read fixture trees and nothing here assumes the
 * machine it runs on.
 */
#ifndef LEVEE_CGROUP_H
#define LEVEE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* Where the cgroup files are. NULL fields take the process's own:
 * /proc/self/cgroup and /proc/self/mountinfo. */
struct cgroup_paths {
	const char *self;      /* the process's cgroup, its "0::PATH" line */
	const char *mountinfo; /* where the cgroup2 hierarchy is mounted */
	/* When set, the directory that stands for the root of the cgroup2
	 * hierarchy instead of the mount mountinfo names (fixtures, unusual
	 * layouts); a process without a "0::" line is then taken to be in its
	 * root. */
	const char *root;
};

#define CGROUP_PATH_MAX 1024

/* The CPU quota of the process's cgroup: the tightest cpu.max of its cgroup
 * and of each ancestor up to the mount, since a child cannot use more than
 * its parent allows. */
struct cgroup_cpu {
	unsigned cpus;          /* ceil(quota / period), at least 1; 0: no quota */
	uint64_t quota_us, period_us; /* of the cpu.max that decided */
	char file[CGROUP_PATH_MAX];   /* that cpu.max; "" when none did */
	/* Why some of it could not be read ("" when all could): no cgroup v2,
	 * an unparsable cpu.max (which is then ignored). A reading that found
	 * nothing is no quota. */
	char why[CGROUP_PATH_MAX + 64];
};

/* Parses the text of a cpu.max file: "QUOTA PERIOD" in microseconds, or
 * "max PERIOD" for no quota (*quota_us = 0). */
int cgroup_parse_cpu_max(const char *text, uint64_t *quota_us, uint64_t *period_us) LV_WARN_UNUSED;

/* Fills <out>; never fails: what it cannot read is no quota, said in why. */
void cgroup_cpu_quota(const struct cgroup_paths *paths, struct cgroup_cpu *out);

#endif
