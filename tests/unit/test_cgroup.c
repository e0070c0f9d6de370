/*
 * test_cgroup.c - the cgroup v2 CPU quota reader against fixture trees
 * (tests/unit/data/cgroup/README.md): cpu.max parsing, the walk from the
 * process's cgroup up to the mount, mountinfo, and what is not there. Then
 * the CPU budget that workers = auto takes from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup.h"
#include "cpus.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define DATA LEVEE_SOURCE_DIR "/tests/unit/data/cgroup"
#define TREE DATA "/tree"

static void test_parse_cpu_max(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		bool ok;
		uint64_t quota, period;
	} cases[] = {
		{"max 100000\n", true, 0, 100000},
		{"max 100000", true, 0, 100000},
		{"50000 100000\n", true, 50000, 100000},
		{"150000 100000\n", true, 150000, 100000},
		{"1 1000\n", true, 1, 1000},
		{"", false, 0, 0},
		{"\n", false, 0, 0},
		{"max\n", false, 0, 0},
		{"50000\n", false, 0, 0},
		{"fifty 100000\n", false, 0, 0},
		{"-1 100000\n", false, 0, 0},
		{"+1 100000\n", false, 0, 0},
		{"0 100000\n", false, 0, 0},
		{"50000 0\n", false, 0, 0},
		{"50000 -100000\n", false, 0, 0},
		{"50000  100000\n", false, 0, 0},
		{"50000 100000 7\n", false, 0, 0},
		{"50000 100000\n\n", false, 0, 0},
		{" 50000 100000\n", false, 0, 0},
		{"99999999999999999999 100000\n", false, 0, 0},
		{"MAX 100000\n", false, 0, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		uint64_t q = 7, p = 7;
		int rc = cgroup_parse_cpu_max(cases[i].text, &q, &p);
		if ((rc == LV_OK) != cases[i].ok)
			fail_msg("\"%s\": rc %d", cases[i].text, rc);
		if (cases[i].ok && (q != cases[i].quota || p != cases[i].period))
			fail_msg("\"%s\": %llu/%llu", cases[i].text, (unsigned long long)q, (unsigned long long)p);
	}
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One reading: the quota in CPUs, the cpu.max that decided (a suffix; ""
 * none) and a piece of why ("" none). */
struct quota_case {
	const char *what;
	struct cgroup_paths paths;
	unsigned cpus;
	const char *file;
	const char *why;
};

static void expect_quota(const struct quota_case *c)
{
	struct cgroup_cpu q;
	memset(&q, 0xee, sizeof(q));
	cgroup_cpu_quota(&c->paths, &q);
	bool file_ok = c->file[0] ? ends_with(q.file, c->file) : q.file[0] == '\0';
	bool why_ok = c->why[0] ? strstr(q.why, c->why) != NULL : q.why[0] == '\0';
	if (q.cpus != c->cpus || !file_ok || !why_ok)
		fail_msg("%s: cpus %u file \"%s\" why \"%s\"; want %u \"...%s\" \"%s\"", c->what, q.cpus, q.file, q.why,
		         c->cpus, c->file, c->why);
}

static void test_quota_fixtures(void **state)
{
	(void)state;
	static const struct quota_case cases[] = {
		{"no quota", {.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/max"}, 0, "", ""},
		{"half a CPU is one worker", {.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/half"}, 1, "/half/cpu.max", ""},
		{"one and a half is two", {.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/one_and_half"}, 2, "/one_and_half/cpu.max", ""},
		{"no cpu.max file", {.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/missing"}, 0, "", ""},
		{"a hierarchy that is not there", {.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/nosuch"}, 0, "", ""},
		{"garbage is ignored, and said", {.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/garbage"}, 0, "",
		 "cannot parse " TREE "/garbage/cpu.max; its quota is ignored"},
		/* the walk from the cgroup up: ctr 3, pod1 2, kubepods max, root 1 */
		{"the tightest ancestor wins", {.self = DATA "/self/v2", .mountinfo = NULL, .root = TREE "/nested"}, 1, "/nested/cpu.max", ""},
		{"the tightest child wins", {.self = DATA "/self/v2", .mountinfo = NULL, .root = TREE "/tight"}, 1, "/tight/kubepods/pod1/ctr/cpu.max", ""},
		{"v1 lines are skipped", {.self = DATA "/self/hybrid", .mountinfo = NULL, .root = TREE "/nested"}, 1, "/nested/cpu.max", ""},
		{"a cgroup the tree lacks: its ancestors", {.self = DATA "/self/v2", .mountinfo = NULL, .root = TREE "/nested/kubepods/pod1"}, 2,
		 "/pod1/cpu.max", ""},
		{"no v2 line with a given root: the root", {.self = DATA "/self/v1", .mountinfo = NULL, .root = TREE "/half"}, 1, "/half/cpu.max", ""},
		{"no v2 line", {.self = DATA "/self/v1", .mountinfo = NULL, .root = NULL}, 0, "", "has no cgroup v2 line"},
		{"no /proc", {.self = DATA "/self/nosuch", .mountinfo = NULL, .root = NULL}, 0, "", "has no cgroup v2 line"},
	};
	for (size_t i = 0; i < N(cases); i++)
		expect_quota(&cases[i]);
}

/* Writes <text> into a new file under <dir>; returns its path (static). */
static const char *write_file(const char *dir, const char *name, const char *text)
{
	static char path[2][1024];
	static int turn;
	char *p = path[turn++ % 2];
	snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* mountinfo, as the kernel writes it, naming the fixture trees. */
static void test_quota_mountinfo(void **state)
{
	(void)state;
	char tmp[] = "/tmp/levee cgroup.XXXXXX"; /* a blank, which mountinfo writes as \040 */
	assert_non_null(mkdtemp(tmp));
	char line[4096];
	static const char v1[] = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n";

	snprintf(line, sizeof(line), "%s41 31 0:38 / %s rw,relatime shared:9 - cgroup2 cgroup2 rw\n", v1, TREE "/nested");
	const char *mi = write_file(tmp, "mountinfo-root", line);
	expect_quota(&(struct quota_case){"the hierarchy's root mounted", {.self = DATA "/self/v2", .mountinfo = mi, .root = NULL}, 1,
	                                  "/nested/cpu.max", ""});

	/* a runtime that bind-mounts the pod's subtree: the walk stops there */
	snprintf(line, sizeof(line), "41 31 0:38 /kubepods/pod1 %s rw - cgroup2 cgroup2 rw\n",
	         TREE "/nested/kubepods/pod1");
	mi = write_file(tmp, "mountinfo-pod", line);
	expect_quota(&(struct quota_case){"a subtree mounted", {.self = DATA "/self/v2", .mountinfo = mi, .root = NULL}, 2, "/pod1/cpu.max", ""});

	snprintf(line, sizeof(line), "41 31 0:38 /kubepods/pod1/ctr %s rw - cgroup2 cgroup2 rw\n",
	         TREE "/nested/kubepods/pod1/ctr");
	mi = write_file(tmp, "mountinfo-ctr", line);
	expect_quota(&(struct quota_case){"the container's own", {.self = DATA "/self/v2", .mountinfo = mi, .root = NULL}, 3, "/ctr/cpu.max", ""});

	/* the cgroup is outside what the mount shows: only the mount is read */
	snprintf(line, sizeof(line), "41 31 0:38 /other %s rw - cgroup2 cgroup2 rw\n", TREE "/half");
	mi = write_file(tmp, "mountinfo-other", line);
	expect_quota(&(struct quota_case){"elsewhere", {.self = DATA "/self/v2", .mountinfo = mi, .root = NULL}, 1, "/half/cpu.max", ""});

	mi = write_file(tmp, "mountinfo-v1", v1);
	expect_quota(&(struct quota_case){"v1 only", {.self = DATA "/self/v2", .mountinfo = mi, .root = NULL}, 0, "",
	                                  "no cgroup2 file system is mounted"});

	/* a mount point with a blank in it */
	write_file(tmp, "cpu.max", "250000 100000\n");
	snprintf(line, sizeof(line), "41 31 0:38 / /tmp/levee\\040cgroup.%s rw - cgroup2 cgroup2 rw\n", tmp + 18);
	mi = write_file(tmp, "mountinfo-blank", line);
	char file[sizeof(tmp) + 16];
	snprintf(file, sizeof(file), "%s/cpu.max", tmp);
	expect_quota(&(struct quota_case){"escaped mount point", {.self = DATA "/self/root", .mountinfo = mi, .root = NULL}, 3, file, ""});

	static const char *const made[] = {"mountinfo-root", "mountinfo-pod", "mountinfo-ctr", "mountinfo-other",
	                                   "mountinfo-v1", "cpu.max", "mountinfo-blank"};
	for (size_t i = 0; i < N(made); i++) {
		snprintf(line, sizeof(line), "%s/%s", tmp, made[i]);
		unlink(line);
	}
	rmdir(tmp);
}

/* workers = auto: the affinity mask or the quota, whichever is fewer. */
static void test_budget(void **state)
{
	(void)state;
	struct cpus c;
	char text[2 * CGROUP_PATH_MAX];

	cpus_budget(&(struct cgroup_paths){.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/max"}, &c);
	assert_true(c.affinity >= 1);
	assert_int_equal(c.n, c.affinity);
	assert_int_equal(c.source, CPUS_AFFINITY);
	cpus_describe(&c, text, sizeof(text));
	assert_non_null(strstr(text, "from the affinity mask (no cgroup CPU quota)"));

	cpus_budget(&(struct cgroup_paths){.self = DATA "/self/root", .mountinfo = NULL, .root = TREE "/half"}, &c);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.source, c.affinity > 1 ? CPUS_CGROUP : CPUS_AFFINITY);
	cpus_describe(&c, text, sizeof(text));
	if (c.affinity > 1)
		assert_non_null(strstr(text, "1, from the cgroup CPU quota (50000/100000 us in " TREE "/half/cpu.max; "));

	/* a quota above the mask: the mask decides, and the quota is named */
	cpus_budget(&(struct cgroup_paths){.self = DATA "/self/v2", .mountinfo = NULL, .root = TREE "/nested/kubepods/pod1/ctr"}, &c);
	if (c.affinity <= 3) {
		assert_int_equal(c.source, CPUS_AFFINITY);
		cpus_describe(&c, text, sizeof(text));
		assert_non_null(strstr(text, "the cgroup CPU quota in " TREE "/nested/kubepods/pod1/ctr/cpu.max allows 3"));
	}
	assert_string_equal(cpus_source_name(CPUS_CGROUP), "cgroup");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cpu_max),
		cmocka_unit_test(test_quota_fixtures),
		cmocka_unit_test(test_quota_mountinfo),
		cmocka_unit_test(test_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
