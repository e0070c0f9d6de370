/*
 * test_cgroup_signals.c - the load signals of cgroup.h (cpu.stat, memory,
 * PSI, levee's own CPU) against fixture trees each case writes into a temp
 * directory, then the rates from two readings; last, the real /proc of the
 * machine, only for parsing.
 */
#include <ftw.h>
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

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define FILES_MAX 8

/* A fixture: files (path relative to the temp dir, then their text) making
 * a cgroup2 hierarchy under "cg" with the process in "cg/pod/ctr" (self
 * says so), and the host's PSI under "pressure". */
struct file {
	const char *path, *text;
};

struct fixture {
	char dir[64];
	char self[96], root[96], pressure[96], stat[96];
	struct cgroup_paths paths;
};

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* mkdir -p of the directory part of <path>. */
static void make_parents(char *path)
{
	for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
}

static void fixture_make(struct fixture *fx, const struct file *files, size_t n)
{
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/levee-signals.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->self, sizeof(fx->self), "%s/self", fx->dir);
	snprintf(fx->root, sizeof(fx->root), "%s/cg", fx->dir);
	snprintf(fx->pressure, sizeof(fx->pressure), "%s/pressure", fx->dir);
	snprintf(fx->stat, sizeof(fx->stat), "%s/stat", fx->dir);
	write_text(fx->self, "0::/pod/ctr\n");
	char path[256];
	snprintf(path, sizeof(path), "%s/cg/pod/ctr/", fx->dir);
	make_parents(path);
	snprintf(path, sizeof(path), "%s/pressure/", fx->dir);
	make_parents(path);
	for (size_t i = 0; i < n && files[i].path != NULL; i++) {
		snprintf(path, sizeof(path), "%s/%s", fx->dir, files[i].path);
		make_parents(path);
		write_text(path, files[i].text);
	}
	fx->paths = (struct cgroup_paths){.self = fx->self, .root = fx->root, .pressure = fx->pressure, .stat = fx->stat};
}

/* A fixture with at most one file: <path> holding <text>, none if NULL. */
static void fixture_one(struct fixture *fx, const char *path, const char *text)
{
	struct file f[] = {{path, text}};
	fixture_make(fx, f, text ? 1 : 0);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fixture_remove(struct fixture *fx)
{
	assert_int_equal(nftw(fx->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* The reason's text for messages; "-" for none. */
static const char *why_text(const char *why)
{
	return why ? why : "-";
}

static const char full_stat[] = "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 50\n"
                                "nr_throttled 5\nthrottled_usec 20000\nnr_bursts 0\nburst_usec 0\n";

static void test_cpu_stat_read(void **state)
{
	(void)state;
	static const struct {
		const char *what, *text; /* text NULL: no cpu.stat */
		const char *why;         /* cgroup_... or NULL */
		bool throttling;
		uint64_t usage, periods, throttled, usec;
	} cases[] = {
		{"all there", full_stat, NULL, true, 1000, 50, 5, 20000},
		{"no cpu controller", "usage_usec 7\nuser_usec 4\nsystem_usec 3\n", NULL, false, 7, 0, 0, 0},
		{"no newline at the end", "usage_usec 7\nnr_periods 1\nnr_throttled 0\nthrottled_usec 0", NULL, true, 7,
		 1, 0, 0},
		{"missing", NULL, cgroup_missing, false, 0, 0, 0, 0},
		{"empty", "", cgroup_no_field, false, 0, 0, 0, 0},
		{"no usage_usec", "nr_periods 1\nnr_throttled 0\nthrottled_usec 0\n", cgroup_no_field, false, 0, 0, 0, 0},
		{"garbage value", "usage_usec lots\n", cgroup_garbage, false, 0, 0, 0, 0},
		{"negative", "usage_usec -1\n", cgroup_garbage, false, 0, 0, 0, 0},
		{"truncated in a number's key", "usage_usec 7\nnr_periods 9\nnr_thr", NULL, false, 7, 9, 0, 0},
		{"truncated after a key", "usage_usec 7\nnr_periods \n", cgroup_garbage, false, 0, 0, 0, 0},
		{"binary", "\x01\x02\xff", cgroup_no_field, false, 0, 0, 0, 0},
		{"the largest counter", "usage_usec 18446744073709551615\n", NULL, false, UINT64_MAX, 0, 0, 0},
		{"past 64 bits", "usage_usec 18446744073709551616\n", cgroup_garbage, false, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct fixture fx;
		fixture_one(&fx, "cg/pod/ctr/cpu.stat", cases[i].text);
		struct cgroup_cpu_stat s;
		int rc = cgroup_cpu_stat_read(&fx.paths, &s);
		fixture_remove(&fx);
		if ((rc == LV_OK) != (cases[i].why == NULL) || s.why != cases[i].why)
			fail_msg("%s: rc %d why %s, want %s", cases[i].what, rc, why_text(s.why), why_text(cases[i].why));
		if (rc == LV_OK && (s.throttling != cases[i].throttling || s.usage_usec != cases[i].usage ||
		                    s.nr_periods != cases[i].periods || s.nr_throttled != cases[i].throttled ||
		                    s.throttled_usec != cases[i].usec))
			fail_msg("%s: %d %llu %llu %llu %llu", cases[i].what, s.throttling, (unsigned long long)s.usage_usec,
			         (unsigned long long)s.nr_periods, (unsigned long long)s.nr_throttled,
			         (unsigned long long)s.throttled_usec);
		if (strstr(s.file, "/cg/pod/ctr/cpu.stat") == NULL)
			fail_msg("%s: file %s", cases[i].what, s.file);
	}

	/* not in cgroup v2 at all */
	struct cgroup_cpu_stat s;
	struct fixture fx;
	fixture_one(&fx, "cg/pod/ctr/cpu.stat", full_stat);
	write_text(fx.self, "3:cpu,cpuacct:/x\n");
	fx.paths.root = NULL;
	assert_int_equal(cgroup_cpu_stat_read(&fx.paths, &s), LV_ERR);
	assert_ptr_equal(s.why, cgroup_no_v2);
	assert_string_equal(s.file, "");
	fixture_remove(&fx);
}

static struct cgroup_cpu_stat stat_of(uint64_t periods, uint64_t throttled, uint64_t usec)
{
	return (struct cgroup_cpu_stat){.usage_usec = 1, .throttling = true, .nr_periods = periods,
	                                .nr_throttled = throttled, .throttled_usec = usec};
}

static void test_cpu_throttle(void **state)
{
	(void)state;
	const uint64_t big = UINT64_MAX - 1000;
	struct cgroup_cpu_stat no_ctl = {.usage_usec = 1}, unread = {.why = cgroup_missing};
	const struct {
		const char *what;
		struct cgroup_cpu_stat a, b;
		uint64_t elapsed_us;
		const char *why;
		double pct, ms_per_s;
	} cases[] = {
		{"a tenth of periods, 50ms a second", stat_of(100, 10, 1000), stat_of(110, 11, 51000), 1000000, NULL, 10,
		 50},
		{"none throttled", stat_of(100, 10, 1000), stat_of(200, 10, 1000), 2000000, NULL, 0, 0},
		{"all throttled, on 4 CPUs", stat_of(0, 0, 0), stat_of(10, 10, 4000000), 1000000, NULL, 100, 4000},
		{"idle: no period began", stat_of(7, 3, 9), stat_of(7, 3, 9), 1000000, NULL, 0, 0},
		{"near 64 bits", stat_of(big, big - 10, big - 5000), stat_of(big + 100, big + 40, big), 500000, NULL, 50,
		 10},
		{"periods went backwards", stat_of(100, 10, 1000), stat_of(99, 10, 1000), 1000000, cgroup_backwards, 0, 0},
		{"throttled went backwards", stat_of(100, 10, 1000), stat_of(110, 9, 1000), 1000000, cgroup_backwards, 0,
		 0},
		{"usec went backwards", stat_of(100, 10, 1000), stat_of(110, 10, 999), 1000000, cgroup_backwards, 0, 0},
		{"a recreated cgroup", stat_of(UINT64_MAX, 5, 5), stat_of(3, 1, 1), 1000000, cgroup_backwards, 0, 0},
		{"more throttled than periods", stat_of(100, 10, 0), stat_of(101, 12, 0), 1000000, cgroup_backwards, 0,
		 0},
		{"no time", stat_of(100, 10, 1000), stat_of(110, 11, 2000), 0, cgroup_no_time, 0, 0},
		{"no cpu controller", no_ctl, stat_of(1, 1, 1), 1000000, cgroup_no_field, 0, 0},
		{"a reading that failed", stat_of(1, 1, 1), unread, 1000000, cgroup_missing, 0, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct cgroup_throttle t = {-1, -1};
		const char *why = "unset";
		int rc = cgroup_cpu_throttle(&cases[i].a, &cases[i].b, cases[i].elapsed_us, &t, &why);
		if ((rc == LV_OK) != (cases[i].why == NULL) || why != cases[i].why)
			fail_msg("%s: rc %d why %s", cases[i].what, rc, why_text(why));
		if (rc == LV_OK && (t.periods_pct != cases[i].pct || t.ms_per_s != cases[i].ms_per_s))
			fail_msg("%s: %g%% %g ms/s", cases[i].what, t.periods_pct, t.ms_per_s);
	}
}

static void test_memory(void **state)
{
	(void)state;
	static const struct {
		const char *what;
		struct file files[4];
		const char *why, *limit_why;
		uint64_t current, limit;
		const char *limit_file; /* a suffix */
		double pct;
	} cases[] = {
		{"the cgroup's own limit",
		 {{"cg/pod/ctr/memory.current", "262144\n"}, {"cg/pod/ctr/memory.max", "1048576\n"}},
		 NULL, NULL, 262144, 1048576, "/cg/pod/ctr/memory.max", 25},
		{"the pod's is tighter",
		 {{"cg/pod/ctr/memory.current", "500\n"}, {"cg/pod/ctr/memory.max", "max\n"}, {"cg/pod/memory.max", "1000\n"}},
		 NULL, NULL, 500, 1000, "/cg/pod/memory.max", 50},
		{"the mount's counts too",
		 {{"cg/pod/ctr/memory.current", "500\n"}, {"cg/pod/memory.max", "4000\n"}, {"cg/memory.max", "2000"}},
		 NULL, NULL, 500, 2000, "/cg/memory.max", 25},
		{"max all the way up", {{"cg/pod/ctr/memory.current", "500\n"}, {"cg/pod/ctr/memory.max", "max\n"}}, NULL,
		 cgroup_no_limit, 500, 0, "", -1},
		{"no memory.max at all", {{"cg/pod/ctr/memory.current", "0\n"}}, NULL, cgroup_no_limit, 0, 0, "", -1},
		{"a garbage limit is ignored, and said",
		 {{"cg/pod/ctr/memory.current", "500\n"}, {"cg/pod/ctr/memory.max", "lots\n"}},
		 NULL, cgroup_garbage, 500, 0, "", -1},
		{"a garbage limit beside a good one",
		 {{"cg/pod/ctr/memory.current", "500\n"}, {"cg/pod/ctr/memory.max", "1k\n"}, {"cg/pod/memory.max", "1000\n"}},
		 NULL, NULL, 500, 1000, "/cg/pod/memory.max", 50},
		{"over the limit while reclaiming",
		 {{"cg/pod/ctr/memory.current", "1100\n"}, {"cg/pod/ctr/memory.max", "1000\n"}},
		 NULL, NULL, 1100, 1000, "/cg/pod/ctr/memory.max", 110},
		{"a limit of 0", {{"cg/pod/ctr/memory.current", "0\n"}, {"cg/pod/ctr/memory.max", "0\n"}}, NULL, NULL, 0, 0,
		 "/cg/pod/ctr/memory.max", -1},
		{"very large",
		 {{"cg/pod/ctr/memory.current", "9223372036854775807\n"}, {"cg/pod/ctr/memory.max", "18446744073709551614\n"}},
		 NULL, NULL, 9223372036854775807ull, 18446744073709551614ull, "/cg/pod/ctr/memory.max", 50},
		{"no memory.current", {{"cg/pod/ctr/memory.max", "1000\n"}}, cgroup_missing, NULL, 0, 1000,
		 "/cg/pod/ctr/memory.max", -1},
		{"garbage memory.current", {{"cg/pod/ctr/memory.current", "12 34\n"}}, cgroup_garbage, cgroup_no_limit, 0,
		 0, "", -1},
		{"truncated memory.current", {{"cg/pod/ctr/memory.current", ""}}, cgroup_garbage, cgroup_no_limit, 0, 0, "",
		 -1},
		{"memory.current past 64 bits", {{"cg/pod/ctr/memory.current", "99999999999999999999\n"}}, cgroup_garbage,
		 cgroup_no_limit, 0, 0, "", -1},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct fixture fx;
		fixture_make(&fx, cases[i].files, N(cases[i].files));
		struct cgroup_memory m;
		int rc = cgroup_memory_read(&fx.paths, &m);
		fixture_remove(&fx);
		const char *c = cases[i].what;
		if ((rc == LV_OK) != (cases[i].why == NULL) || m.why != cases[i].why || m.limit_why != cases[i].limit_why)
			fail_msg("%s: rc %d why %s limit_why %s", c, rc, why_text(m.why), why_text(m.limit_why));
		if (rc == LV_OK && m.current != cases[i].current)
			fail_msg("%s: current %llu", c, (unsigned long long)m.current);
		size_t n = strlen(m.limit_file), k = strlen(cases[i].limit_file);
		if (m.limit_why == NULL && (m.limit != cases[i].limit || n < k || strcmp(m.limit_file + n - k, cases[i].limit_file)))
			fail_msg("%s: limit %llu in %s", c, (unsigned long long)m.limit, m.limit_file);
		double pct = -1;
		const char *why;
		rc = cgroup_memory_used_pct(&m, &pct, &why);
		if ((rc == LV_OK) != (cases[i].pct >= 0) || (rc == LV_OK && (why != NULL || pct != cases[i].pct)) ||
		    (rc != LV_OK && why == NULL))
			fail_msg("%s: used %g%% rc %d why %s", c, pct, rc, why_text(why));
	}
}

static void test_parse_psi(void **state)
{
	(void)state;
	static const char some[] = "some avg10=1.50 avg60=2.25 avg300=0.00 total=12345\n";
	static const char full[] = "full avg10=0.75 avg60=100.00 avg300=0.01 total=18446744073709551615\n";
	char both[256], three[256], full_first[256], bad_full[256];
	snprintf(both, sizeof(both), "%s%s", some, full);
	snprintf(three, sizeof(three), "%s%s%s", some, full, full);
	snprintf(full_first, sizeof(full_first), "%s%s", full, some);
	snprintf(bad_full, sizeof(bad_full), "%sfull avg10=0.75 avg60=1.00\n", some);
	const struct {
		const char *text;
		bool ok, has_full;
	} cases[] = {
		{both, true, true},
		{some, true, false},
		{"some avg10=1.50 avg60=2.25 avg300=0.00 total=12345", true, false},
		{"", false, false},
		{"\n", false, false},
		{full, false, false},
		{full_first, false, false},
		{three, false, false},
		{bad_full, false, false},
		{"some avg10=1.50 avg60=2.25 avg300=0.00 total=\n", false, false},
		{"some avg10=1.50 avg60=2.25 avg300=0.00\n", false, false},
		{"some avg10=1.50 avg60=2.25 avg300=0.00 total=12 x\n", false, false},
		{"some avg10=1.50 avg60=2.25 avg3", false, false},
		{"some avg10=1,50 avg60=2.25 avg300=0.00 total=1\n", false, false},
		{"some avg10=1 avg60=2.25 avg300=0.00 total=1\n", false, false},
		{"some avg10=-1.00 avg60=2.25 avg300=0.00 total=1\n", false, false},
		{"some avg10=100.01 avg60=2.25 avg300=0.00 total=1\n", false, false},
		{"some avg60=2.25 avg10=1.50 avg300=0.00 total=1\n", false, false},
		{"some  avg10=1.50 avg60=2.25 avg300=0.00 total=1\n", false, false},
		{"some avg10=1.50 avg60=2.25 avg300=0.00 total=99999999999999999999\n", false, false},
		{"garbage\x01\xff", false, false},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct cgroup_psi p;
		memset(&p, 0, sizeof(p));
		int rc = cgroup_parse_psi(cases[i].text, &p);
		if ((rc == LV_OK) != cases[i].ok || (rc == LV_OK && p.has_full != cases[i].has_full))
			fail_msg("case %zu \"%s\": rc %d full %d", i, cases[i].text, rc, p.has_full);
	}
	struct cgroup_psi p;
	assert_int_equal(cgroup_parse_psi(both, &p), LV_OK);
	assert_true(p.some.avg10 == 1.5 && p.some.avg60 == 2.25 && p.some.avg300 == 0 && p.some.total == 12345);
	assert_true(p.full.avg10 == 0.75 && p.full.avg60 == 100 && p.full.avg300 > 0.0099 && p.full.avg300 < 0.0101);
	assert_true(p.full.total == UINT64_MAX);
}

static void test_psi_read(void **state)
{
	(void)state;
	static const char cg_cpu[] = "some avg10=10.00 avg60=0.00 avg300=0.00 total=1\n";
	static const char host_cpu[] = "some avg10=20.00 avg60=0.00 avg300=0.00 total=2\n"
	                               "full avg10=5.00 avg60=0.00 avg300=0.00 total=3\n";
	static const struct {
		const char *what;
		struct file files[2];
		bool v2;
		enum cgroup_psi_resource r;
		const char *why;
		enum cgroup_psi_source source;
		double some10;
		const char *file; /* a suffix */
	} cases[] = {
		{"the cgroup's", {{"cg/pod/ctr/cpu.pressure", cg_cpu}, {"pressure/cpu", host_cpu}}, true, CGROUP_PSI_CPU,
		 NULL, CGROUP_PSI_CGROUP, 10, "/cg/pod/ctr/cpu.pressure"},
		{"the host's when the cgroup has none", {{"pressure/cpu", host_cpu}}, true, CGROUP_PSI_CPU, NULL,
		 CGROUP_PSI_HOST, 20, "/pressure/cpu"},
		{"the host's without cgroup v2", {{"cg/pod/ctr/cpu.pressure", cg_cpu}, {"pressure/cpu", host_cpu}}, false,
		 CGROUP_PSI_CPU, NULL, CGROUP_PSI_HOST, 20, "/pressure/cpu"},
		{"memory", {{"cg/pod/ctr/memory.pressure", cg_cpu}}, true, CGROUP_PSI_MEMORY, NULL, CGROUP_PSI_CGROUP, 10,
		 "/cg/pod/ctr/memory.pressure"},
		{"io from the host", {{"pressure/io", host_cpu}}, true, CGROUP_PSI_IO, NULL, CGROUP_PSI_HOST, 20,
		 "/pressure/io"},
		{"neither", {{"pressure/cpu", host_cpu}}, true, CGROUP_PSI_IO, cgroup_missing, CGROUP_PSI_NONE, 0,
		 "/pressure/io"},
		{"garbage in the cgroup's is not the host's",
		 {{"cg/pod/ctr/cpu.pressure", "some avg10=\n"}, {"pressure/cpu", host_cpu}}, true, CGROUP_PSI_CPU,
		 cgroup_garbage, CGROUP_PSI_NONE, 0, "/cg/pod/ctr/cpu.pressure"},
		{"garbage in the host's", {{"pressure/cpu", "full avg10=1.00\n"}}, false, CGROUP_PSI_CPU, cgroup_garbage,
		 CGROUP_PSI_NONE, 0, "/pressure/cpu"},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct fixture fx;
		fixture_make(&fx, cases[i].files, N(cases[i].files));
		if (!cases[i].v2) {
			write_text(fx.self, "1:name=systemd:/x\n");
			fx.paths.root = NULL;
		}
		struct cgroup_psi p;
		int rc = cgroup_psi_read(&fx.paths, cases[i].r, &p);
		fixture_remove(&fx);
		size_t n = strlen(p.file), k = strlen(cases[i].file);
		if ((rc == LV_OK) != (cases[i].why == NULL) || p.why != cases[i].why || p.source != cases[i].source ||
		    (rc == LV_OK && p.some.avg10 != cases[i].some10) || n < k || strcmp(p.file + n - k, cases[i].file))
			fail_msg("%s: rc %d why %s source %s some10 %g file %s", cases[i].what, rc, why_text(p.why),
			         cgroup_psi_source_name(p.source), p.some.avg10, p.file);
	}
	assert_string_equal(cgroup_psi_source_name(CGROUP_PSI_HOST), "host");
	assert_string_equal(cgroup_psi_source_name(CGROUP_PSI_CGROUP), "cgroup");
	assert_string_equal(cgroup_psi_source_name(CGROUP_PSI_NONE), "none");
}

static void test_self_cpu(void **state)
{
	(void)state;
	long hz = sysconf(_SC_CLK_TCK);
	assert_true(hz > 0);
	static const struct {
		const char *what, *text;
		const char *why;
		uint64_t ticks;
	} cases[] = {
		{"plain", "42 (levee) S 1 42 42 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 5 0 100 0 0\n", NULL, 200},
		{"a comm with blanks and parens", "42 (lev ee) (x) R 1 42 42 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1\n", NULL, 10},
		{"the largest ticks", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 1000000000000 0 0 0\n", NULL, 1000000000000},
		{"cut before stime", "42 (levee) S 1 42 42 0 -1 4194560 500 0 0 0 150", cgroup_garbage, 0},
		{"no comm", "42 levee S 1 42 42 0 -1 4194560 500 0 0 0 150 50\n", cgroup_garbage, 0},
		{"a negative utime", "42 (levee) S 1 42 42 0 -1 4194560 500 0 0 0 -150 50\n", cgroup_garbage, 0},
		{"empty", "", cgroup_garbage, 0},
		{"missing", NULL, cgroup_missing, 0},
		{"past what microseconds hold", "1 (a) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 0\n", cgroup_garbage, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		struct fixture fx;
		fixture_one(&fx, "stat", cases[i].text);
		struct cgroup_self_cpu c;
		int rc = cgroup_self_cpu_read(&fx.paths, &c);
		fixture_remove(&fx);
		uint64_t want = cases[i].ticks * 1000000 / (uint64_t)hz;
		if ((rc == LV_OK) != (cases[i].why == NULL) || c.why != cases[i].why || (rc == LV_OK && c.cpu_us != want))
			fail_msg("%s: rc %d why %s us %llu", cases[i].what, rc, why_text(c.why), (unsigned long long)c.cpu_us);
	}

	const struct {
		const char *what;
		struct cgroup_self_cpu a, b;
		uint64_t elapsed_us;
		const char *why;
		double pct;
	} deltas[] = {
		{"half a CPU", {1000, NULL}, {501000, NULL}, 1000000, NULL, 50},
		{"idle", {1000, NULL}, {1000, NULL}, 1000000, NULL, 0},
		{"four threads busy", {0, NULL}, {2000000, NULL}, 500000, NULL, 400},
		{"near 64 bits", {UINT64_MAX - 100, NULL}, {UINT64_MAX, NULL}, 100, NULL, 100},
		{"backwards", {1000, NULL}, {999, NULL}, 1000000, cgroup_backwards, 0},
		{"no time", {1000, NULL}, {2000, NULL}, 0, cgroup_no_time, 0},
		{"a reading that failed", {0, cgroup_garbage}, {1000, NULL}, 1000000, cgroup_garbage, 0},
	};
	for (size_t i = 0; i < N(deltas); i++) {
		double pct = -1;
		const char *why = "unset";
		int rc = cgroup_self_cpu_pct(&deltas[i].a, &deltas[i].b, deltas[i].elapsed_us, &pct, &why);
		if ((rc == LV_OK) != (deltas[i].why == NULL) || why != deltas[i].why || (rc == LV_OK && pct != deltas[i].pct))
			fail_msg("%s: rc %d why %s pct %g", deltas[i].what, rc, why_text(why), pct);
	}
}

/* This machine's /proc: the values parse and hold together; no fixture. */
static void test_real_proc(void **state)
{
	(void)state;
	struct cgroup_paths own = {0}, proc_stat = {.stat = "/proc/self/stat"};
	struct cgroup_self_cpu a, b;
	assert_int_equal(cgroup_self_cpu_read(&own, &a), LV_OK);
	volatile uint64_t spin = 0;
	for (uint64_t i = 0; i < 20000000; i++)
		spin += i;
	assert_int_equal(cgroup_self_cpu_read(&own, &b), LV_OK);
	assert_true(b.cpu_us >= a.cpu_us);

	if (access("/proc/self/stat", R_OK) == 0) {
		assert_int_equal(cgroup_self_cpu_read(&proc_stat, &a), LV_OK);
		/* ticks round down: never above getrusage's microseconds */
		assert_int_equal(cgroup_self_cpu_read(&own, &b), LV_OK);
		assert_true(a.cpu_us <= b.cpu_us + 20000);
	}

	/* whichever source this machine offers (a cgroup v1 host: /proc/pressure) */
	static const enum cgroup_psi_resource rs[] = {CGROUP_PSI_CPU, CGROUP_PSI_MEMORY, CGROUP_PSI_IO};
	bool any = false;
	for (size_t i = 0; i < N(rs); i++) {
		struct cgroup_psi p;
		if (cgroup_psi_read(&own, rs[i], &p) != LV_OK) {
			assert_ptr_equal(p.source, CGROUP_PSI_NONE);
			assert_non_null(p.why);
			continue;
		}
		any = true;
		assert_true(p.source == CGROUP_PSI_CGROUP || p.source == CGROUP_PSI_HOST);
		assert_true(p.some.avg10 >= 0 && p.some.avg10 <= 100 && p.some.avg300 <= 100);
		if (p.has_full)
			assert_true(p.full.avg10 <= p.some.avg10 + 0.01 || rs[i] == CGROUP_PSI_CPU);
	}
	/* the cgroup readers either read or say why */
	struct cgroup_cpu_stat s;
	if (cgroup_cpu_stat_read(&own, &s) != LV_OK)
		assert_non_null(s.why);
	struct cgroup_memory m;
	if (cgroup_memory_read(&own, &m) != LV_OK)
		assert_non_null(m.why);
	if (!any)
		skip(); /* no PSI on this kernel */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpu_stat_read), cmocka_unit_test(test_cpu_throttle), cmocka_unit_test(test_memory),
		cmocka_unit_test(test_parse_psi),     cmocka_unit_test(test_psi_read),     cmocka_unit_test(test_self_cpu),
		cmocka_unit_test(test_real_proc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
