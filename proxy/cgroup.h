/*
 * cgroup.h - reading the process's cgroup v2 limits and load from the files
 * the kernel exposes: the CPU quota (cpu.max), which sizes the workers, and
 * the load signals degradation tiers will read (docs/tiers.md, "Signals from
 * the container"): CPU throttling (cpu.stat), memory against its limit
 * (memory.current, memory.max), pressure (cpu/memory/io.pressure, or the
 * host's /proc/pressure), and levee's own CPU time.
 *
 * Each load reading fills a plain struct and returns LV_OK, or LV_ERR with
 * its why set to one of the reasons below: a signal that is not there is
 * "not available", never a zero that looks like a measurement. Counters
 * become rates in a delta function given two readings and the time between
 * them; a counter that went backwards (a cgroup recreated, a wrap) makes
 * that interval not available.
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
	/* The host-wide PSI directory, taken when the cgroup has no pressure
	 * files; NULL: /proc/pressure. */
	const char *pressure;
	/* A /proc/PID/stat file for levee's own CPU time; NULL: getrusage() of
	 * this process, which needs no /proc and counts in microseconds. */
	const char *stat;
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

/* Why a load reading is not available: constants, compared by pointer; the
 * text is for logs, with the reading's file when it has one. */
extern const char cgroup_no_v2[];      /* "no cgroup v2": no 0:: line, no cgroup2 mount */
extern const char cgroup_missing[];    /* "no such file" */
extern const char cgroup_unreadable[]; /* "cannot read" (a path too long, EACCES, ...) */
extern const char cgroup_garbage[];    /* "cannot parse" */
extern const char cgroup_no_field[];   /* "field missing" */
extern const char cgroup_no_limit[];   /* "no limit": memory.max is "max" all the way up */
extern const char cgroup_backwards[];  /* "counter went backwards" */
extern const char cgroup_no_time[];    /* "no time elapsed" */

/* cpu.stat of the process's cgroup, its counters since the cgroup began. */
struct cgroup_cpu_stat {
	uint64_t usage_usec;
	/* nr_periods, nr_throttled, throttled_usec: only with the cpu
	 * controller enabled for the cgroup; throttling says they were there */
	bool throttling;
	uint64_t nr_periods, nr_throttled, throttled_usec;
	const char *why; /* NULL when read */
	char file[CGROUP_PATH_MAX];
};

/* LV_ERR when there is no cpu.stat or no usage_usec in it. */
int cgroup_cpu_stat_read(const struct cgroup_paths *paths, struct cgroup_cpu_stat *out) LV_WARN_UNUSED;

struct cgroup_throttle {
	/* nr_throttled / nr_periods over the interval: the signal
	 * cgroup.cpu_throttled. 0 when no period began (an idle cgroup is not
	 * throttled). */
	double periods_pct;
	/* throttled_usec per second of <elapsed_us>, in milliseconds; the
	 * kernel sums it over CPUs, so a cgroup on several CPUs can exceed 1000. */
	double ms_per_s;
};

/* The throttling between two readings <elapsed_us> apart; LV_ERR (why in
 * *why) when either has no throttling counters, a counter went backwards, or
 * no time elapsed. */
int cgroup_cpu_throttle(const struct cgroup_cpu_stat *before, const struct cgroup_cpu_stat *after,
                        uint64_t elapsed_us, struct cgroup_throttle *out, const char **why) LV_WARN_UNUSED;

/* memory.current of the process's cgroup, against the tightest memory.max of
 * it and its ancestors up to the mount (as for cpu.max). */
struct cgroup_memory {
	uint64_t current; /* bytes: the signal memory.used */
	uint64_t limit;   /* bytes, when limit_why is NULL */
	/* NULL with a limit; else cgroup_no_limit, or cgroup_garbage when a
	 * memory.max could not be parsed (it is then ignored) and none other
	 * limits */
	const char *limit_why;
	char limit_file[CGROUP_PATH_MAX]; /* the memory.max that decided */
	const char *why;                  /* NULL when memory.current was read */
	char file[CGROUP_PATH_MAX];       /* that memory.current */
};

/* LV_ERR when memory.current cannot be read; the limit may still be absent. */
int cgroup_memory_read(const struct cgroup_paths *paths, struct cgroup_memory *out) LV_WARN_UNUSED;

/* current / limit in percent (above 100 while the kernel reclaims): the
 * signal cgroup.memory_used; LV_ERR without a reading or a limit. */
int cgroup_memory_used_pct(const struct cgroup_memory *m, double *pct, const char **why) LV_WARN_UNUSED;

/* Pressure stall information: the share of time some (or all: full) tasks
 * waited for the resource, in percent, over 10, 60 and 300 seconds. */
enum cgroup_psi_resource { CGROUP_PSI_CPU, CGROUP_PSI_MEMORY, CGROUP_PSI_IO };
enum cgroup_psi_source {
	CGROUP_PSI_NONE,   /* not read */
	CGROUP_PSI_CGROUP, /* the cgroup's own cpu/memory/io.pressure */
	CGROUP_PSI_HOST,   /* the cgroup had none: the host's, whole machine */
};

struct cgroup_psi_line {
	double avg10, avg60, avg300; /* percent */
	uint64_t total;              /* microseconds stalled, ever */
};

struct cgroup_psi {
	struct cgroup_psi_line some, full;
	/* the full line is absent from cpu.pressure before Linux 5.13 */
	bool has_full;
	enum cgroup_psi_source source;
	const char *why; /* NULL when read */
	char file[CGROUP_PATH_MAX];
};

/* Parses a pressure file's text: a "some" line, then optionally a "full"
 * line, each "avg10=A avg60=A avg300=A total=N". */
int cgroup_parse_psi(const char *text, struct cgroup_psi *out) LV_WARN_UNUSED;

/* The cgroup's pressure file for <r> or, when it has none (no cgroup v2, no
 * such file, unreadable), the host's; garbage in the cgroup's is an error,
 * not a reason to show the whole machine's. */
int cgroup_psi_read(const struct cgroup_paths *paths, enum cgroup_psi_resource r, struct cgroup_psi *out) LV_WARN_UNUSED;
const char *cgroup_psi_source_name(enum cgroup_psi_source s); /* "none", "cgroup", "host" */

/* levee's own CPU time, user and system, of all its threads. */
struct cgroup_self_cpu {
	uint64_t cpu_us; /* from clock ticks (sysconf(_SC_CLK_TCK)) with a stat file */
	const char *why; /* NULL when read */
};

int cgroup_self_cpu_read(const struct cgroup_paths *paths, struct cgroup_self_cpu *out) LV_WARN_UNUSED;

/* The CPU used between two readings <elapsed_us> apart in percent of one
 * CPU: the signal cpu. Several threads busy at once take it above 100 (up
 * to 100 times the CPUs). With a stat file the ticks make it coarse: 10 ms
 * at 100 Hz, so read it over a second or more. */
int cgroup_self_cpu_pct(const struct cgroup_self_cpu *before, const struct cgroup_self_cpu *after,
                        uint64_t elapsed_us, double *pct, const char **why) LV_WARN_UNUSED;

#endif
