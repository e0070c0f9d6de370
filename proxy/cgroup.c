/*
 * cgroup.c - the process's cgroup v2 CPU quota and load signals (cgroup.h).
 *
 * The process's cgroup is the "0::PATH" line of /proc/self/cgroup (cgroup
 * v1 lines have a hierarchy number and controllers instead of "0:").
 * mountinfo names the cgroup2 mount and which directory of the hierarchy it
 * shows (its root field: "/" unless a container runtime bind-mounted a
 * subtree), so the cgroup's directory is the mount point plus PATH less that
 * root. Kubernetes sets the container's quota on its own cgroup and the
 * pod's on the parent, so every level up to the mount point is read and the
 * tightest wins; memory.max likewise.
 *
 * Every file is read whole into a bounded buffer and parsed strictly: a
 * number is digits only (no sign, no blank), so that a half-written or
 * foreign file is "cannot parse", never a wrong value.
 */
#include "cgroup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define CGROUP_LINE_MAX 4096

const char cgroup_no_v2[] = "no cgroup v2";
const char cgroup_missing[] = "no such file";
const char cgroup_unreadable[] = "cannot read";
const char cgroup_garbage[] = "cannot parse";
const char cgroup_no_field[] = "field missing";
const char cgroup_no_limit[] = "no limit";
const char cgroup_backwards[] = "counter went backwards";
const char cgroup_no_time[] = "no time elapsed";

/* A decimal number of <len> bytes, digits only, that fits 64 bits. */
static bool cgroup_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* The same, above zero. */
static bool cgroup_uint(const char *s, size_t len, uint64_t *out)
{
	return cgroup_u64(s, len, out) && *out > 0;
}

/* <file> whole into <buf> (NUL-terminated); NULL, or why not. A file that
 * does not fit is unparsable rather than cut where a number may be. */
static const char *cgroup_read(const char *file, char *buf, size_t cap)
{
	FILE *f = fopen(file, "re");
	if (f == NULL)
		return errno == ENOENT || errno == ENOTDIR ? cgroup_missing : cgroup_unreadable;
	size_t n = fread(buf, 1, cap - 1, f);
	bool err = ferror(f) != 0, more = n == cap - 1 && fgetc(f) != EOF;
	fclose(f);
	buf[n] = '\0';
	if (err)
		return cgroup_unreadable; /* EOPNOTSUPP: pressure files of a cgroup with PSI off */
	return more ? cgroup_garbage : NULL;
}

/* <dir>/<name> into <file>; false if it does not fit. */
static bool cgroup_join(char file[CGROUP_PATH_MAX], const char *dir, const char *name)
{
	return (size_t)snprintf(file, CGROUP_PATH_MAX, "%s/%s", dir, name) < CGROUP_PATH_MAX;
}

int cgroup_parse_cpu_max(const char *text, uint64_t *quota_us, uint64_t *period_us)
{
	/* exactly "QUOTA PERIOD" or "max PERIOD", then at most one newline */
	size_t len = strlen(text);
	if (len > 0 && text[len - 1] == '\n')
		len--;
	const char *sp = memchr(text, ' ', len);
	if (sp == NULL)
		return LV_ERR;
	size_t qlen = (size_t)(sp - text);
	if (!cgroup_uint(sp + 1, len - qlen - 1, period_us))
		return LV_ERR;
	if (qlen == 3 && memcmp(text, "max", 3) == 0) {
		*quota_us = 0;
		return LV_OK;
	}
	return cgroup_uint(text, qlen, quota_us) ? LV_OK : LV_ERR;
}

/* Adds a problem to out->why, keeping the first: later ones are rarely news. */
__attribute__((format(printf, 2, 3))) static void cgroup_why(struct cgroup_cpu *out, const char *fmt, ...)
{
	if (out->why[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out->why, sizeof(out->why), fmt, ap);
	va_end(ap);
}

/* One cpu.max of the walk: kept in <arg> (struct cgroup_cpu) when tighter. */
static void cgroup_take_cpu_max(const char *file, const char *text, const char *err, void *arg)
{
	struct cgroup_cpu *out = arg;
	uint64_t quota, period;
	if (err == cgroup_missing) /* the root cgroup has none; a child without a cpu controller neither */
		return;
	if (err != NULL && err != cgroup_garbage) {
		cgroup_why(out, "cannot read %s", file);
		return;
	}
	if (err != NULL || cgroup_parse_cpu_max(text, &quota, &period) != LV_OK) {
		cgroup_why(out, "cannot parse %s; its quota is ignored", file);
		return;
	}
	if (quota == 0)
		return;
	uint64_t cpus = quota / period + (quota % period != 0);
	if (cpus > 4096)
		cpus = 4096; /* more than any machine: the same as no quota for sizing */
	if (out->cpus != 0 && cpus >= out->cpus)
		return;
	out->cpus = (unsigned)cpus;
	out->quota_us = quota;
	out->period_us = period;
	snprintf(out->file, sizeof(out->file), "%s", file);
}

/* Hands each line of <file> to <take> until it returns true; false when
 * none did, or the file cannot be read. */
static bool cgroup_scan(const char *file, bool (*take)(char *line, void *arg), void *arg)
{
	FILE *f = fopen(file, "re");
	if (f == NULL)
		return false;
	char line[CGROUP_LINE_MAX];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		found = take(line, arg);
	}
	fclose(f);
	return found;
}

struct cgroup_buf {
	char *p, *p2; /* one or two results */
	size_t cap;
};

/* A "0::PATH" line of /proc/self/cgroup: PATH without a trailing '/'. */
static bool cgroup_take_self(char *line, void *arg)
{
	struct cgroup_buf *b = arg;
	if (strncmp(line, "0::", 3) != 0)
		return false;
	size_t len = strlen(line + 3);
	while (len > 0 && line[3 + len - 1] == '/')
		len--;
	if (len >= b->cap)
		return false;
	memcpy(b->p, line + 3, len);
	b->p[len] = '\0';
	return true;
}

/* Copies one mountinfo field, decoding the \ooo escapes the kernel writes
 * for blanks and backslashes; false if it does not fit. */
static bool cgroup_field(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3') {
			c = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
			i += 3;
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* A mountinfo line of the cgroup2 file system: its mount point into p, and
 * the directory of the hierarchy it shows into p2.
 * ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE ... */
static bool cgroup_take_mount(char *line, void *arg)
{
	struct cgroup_buf *b = arg;
	const char *sep = strstr(line, " - ");
	if (sep == NULL || strncmp(sep + 3, "cgroup2 ", 8) != 0)
		return false;
	const char *field[5];
	size_t flen[5];
	const char *p = line;
	int i = 0;
	for (; i < 5 && p < sep; i++) {
		field[i] = p;
		flen[i] = strcspn(p, " ");
		p += flen[i] + 1;
	}
	return i == 5 && cgroup_field(field[3], flen[3], b->p2, b->cap) && cgroup_field(field[4], flen[4], b->p, b->cap);
}

/* The process's cgroup directory into <dir> and the length of the mount
 * point that begins it into *mlen; NULL, or a why with its detail in <detail>. */
static const char *cgroup_locate(const struct cgroup_paths *paths, char dir[CGROUP_PATH_MAX], size_t *mlen,
                                 char *detail, size_t detail_cap)
{
	char mnt[CGROUP_PATH_MAX], root[CGROUP_PATH_MAX], self[CGROUP_PATH_MAX];
	const char *self_file = paths->self ? paths->self : "/proc/self/cgroup";

	bool in_v2 = cgroup_scan(self_file, cgroup_take_self, &(struct cgroup_buf){self, NULL, sizeof(self)});
	if (paths->root != NULL) {
		snprintf(mnt, sizeof(mnt), "%s", paths->root);
		root[0] = '\0';
		if (!in_v2)
			self[0] = '\0';
	} else if (!in_v2) {
		snprintf(detail, detail_cap, "%s has no cgroup v2 line", self_file);
		return cgroup_no_v2;
	} else if (!cgroup_scan(paths->mountinfo ? paths->mountinfo : "/proc/self/mountinfo", cgroup_take_mount,
	                        &(struct cgroup_buf){mnt, root, sizeof(mnt)})) {
		snprintf(detail, detail_cap, "no cgroup2 file system is mounted");
		return cgroup_no_v2;
	}
	/* the cgroup's place under the mount; outside what the mount shows
	 * (another namespace's view), only the mount itself can be read */
	size_t rlen = strlen(root);
	while (rlen > 0 && root[rlen - 1] == '/')
		rlen--;
	const char *rel = self;
	if (rlen > 0)
		rel = strncmp(self, root, rlen) == 0 && (self[rlen] == '/' || self[rlen] == '\0') ? self + rlen : "";
	*mlen = strlen(mnt);
	while (*mlen > 1 && mnt[*mlen - 1] == '/')
		mnt[--*mlen] = '\0';
	if ((size_t)snprintf(dir, CGROUP_PATH_MAX, "%s%s", mnt, rel) >= CGROUP_PATH_MAX) {
		snprintf(detail, detail_cap, "cgroup path too long: %s", self);
		return cgroup_unreadable;
	}
	return NULL;
}

typedef void cgroup_take_fn(const char *file, const char *text, const char *err, void *arg);

/* Reads <name> in <dir> and in each ancestor up to the mount point
 * (inclusive; the first <mlen> bytes of dir), handing each to <take> with
 * its text or why not. */
static void cgroup_walk(const char *cgdir, size_t mlen, const char *name, cgroup_take_fn *take, void *arg)
{
	char dir[CGROUP_PATH_MAX], file[CGROUP_PATH_MAX], text[128];
	snprintf(dir, sizeof(dir), "%s", cgdir);
	for (;;) {
		const char *err = cgroup_join(file, dir, name) ? cgroup_read(file, text, sizeof(text)) : cgroup_unreadable;
		take(file, text, err, arg);
		char *slash = strrchr(dir + mlen, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
	}
}

void cgroup_cpu_quota(const struct cgroup_paths *paths, struct cgroup_cpu *out)
{
	char dir[CGROUP_PATH_MAX];
	size_t mlen;
	memset(out, 0, sizeof(*out));
	if (cgroup_locate(paths, dir, &mlen, out->why, sizeof(out->why)) == NULL)
		cgroup_walk(dir, mlen, "cpu.max", cgroup_take_cpu_max, out);
}

/* The process's cgroup directory and <name> in it into <file>; NULL, or why not. */
static const char *cgroup_file(const struct cgroup_paths *paths, const char *name, char file[CGROUP_PATH_MAX],
                               char dir[CGROUP_PATH_MAX], size_t *mlen)
{
	char detail[CGROUP_PATH_MAX + 64]; /* for the CPU quota's why; the readers' file says enough */
	const char *why = cgroup_locate(paths, dir, mlen, detail, sizeof(detail));
	if (why == NULL && !cgroup_join(file, dir, name))
		why = cgroup_unreadable;
	if (why != NULL)
		file[0] = '\0';
	return why;
}

/* One "KEY VALUE" line of a flat-keyed file such as cpu.stat. */
struct cgroup_key {
	const char *name;
	uint64_t *value;
	bool seen;
};

/* Fills the values of <keys> from <text>; other keys are skipped. false if
 * a line of one of them is not a number. */
static bool cgroup_parse_keys(const char *text, struct cgroup_key *keys, size_t n)
{
	for (const char *line = text; *line != '\0';) {
		size_t len = strcspn(line, "\n");
		const char *sp = memchr(line, ' ', len);
		for (size_t i = 0; sp != NULL && i < n; i++) {
			size_t klen = (size_t)(sp - line);
			if (strlen(keys[i].name) != klen || memcmp(line, keys[i].name, klen) != 0)
				continue;
			if (!cgroup_u64(sp + 1, len - klen - 1, keys[i].value))
				return false;
			keys[i].seen = true;
		}
		line += len + (line[len] == '\n');
	}
	return true;
}

int cgroup_cpu_stat_read(const struct cgroup_paths *paths, struct cgroup_cpu_stat *out)
{
	char text[CGROUP_LINE_MAX];
	memset(out, 0, sizeof(*out));
	char dir[CGROUP_PATH_MAX];
	size_t mlen;
	out->why = cgroup_file(paths, "cpu.stat", out->file, dir, &mlen);
	if (out->why == NULL)
		out->why = cgroup_read(out->file, text, sizeof(text));
	if (out->why != NULL)
		return LV_ERR;
	struct cgroup_key keys[] = {
		{"usage_usec", &out->usage_usec, false},
		{"nr_periods", &out->nr_periods, false},
		{"nr_throttled", &out->nr_throttled, false},
		{"throttled_usec", &out->throttled_usec, false},
	};
	if (!cgroup_parse_keys(text, keys, sizeof(keys) / sizeof(keys[0])))
		out->why = cgroup_garbage;
	else if (!keys[0].seen)
		out->why = cgroup_no_field;
	if (out->why != NULL)
		return LV_ERR;
	out->throttling = keys[1].seen && keys[2].seen && keys[3].seen;
	return LV_OK;
}

/* How much <after> is above <before>; false if below. */
static bool cgroup_delta(uint64_t before, uint64_t after, uint64_t *d)
{
	*d = after - before;
	return after >= before;
}

int cgroup_cpu_throttle(const struct cgroup_cpu_stat *before, const struct cgroup_cpu_stat *after,
                        uint64_t elapsed_us, struct cgroup_throttle *out, const char **why)
{
	uint64_t periods, throttled, usec;
	if (before->why != NULL || after->why != NULL)
		*why = before->why ? before->why : after->why;
	else if (!before->throttling || !after->throttling)
		*why = cgroup_no_field;
	else if (elapsed_us == 0)
		*why = cgroup_no_time;
	else if (!cgroup_delta(before->nr_periods, after->nr_periods, &periods) ||
	         !cgroup_delta(before->nr_throttled, after->nr_throttled, &throttled) ||
	         !cgroup_delta(before->throttled_usec, after->throttled_usec, &usec) || throttled > periods)
		*why = cgroup_backwards;
	else {
		out->periods_pct = periods ? 100.0 * (double)throttled / (double)periods : 0.0;
		out->ms_per_s = (double)usec / (double)elapsed_us * 1000.0;
		*why = NULL;
		return LV_OK;
	}
	return LV_ERR;
}

/* One memory.max of the walk: kept in <arg> (struct cgroup_memory) when tighter. */
static void cgroup_take_memory_max(const char *file, const char *text, const char *err, void *arg)
{
	struct cgroup_memory *m = arg;
	uint64_t limit;
	if (err == cgroup_missing) /* the root cgroup has none */
		return;
	size_t len = err ? 0 : strlen(text);
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len == 3 && memcmp(text, "max", 3) == 0)
		return;
	if (err != NULL || !cgroup_u64(text, len, &limit)) {
		if (m->limit_why == cgroup_no_limit)
			m->limit_why = cgroup_garbage; /* said unless another limits */
		return;
	}
	if (m->limit_why == NULL && limit >= m->limit)
		return;
	m->limit = limit;
	m->limit_why = NULL;
	snprintf(m->limit_file, sizeof(m->limit_file), "%s", file);
}

int cgroup_memory_read(const struct cgroup_paths *paths, struct cgroup_memory *out)
{
	char text[128];
	size_t mlen;
	uint64_t current;
	memset(out, 0, sizeof(*out));
	out->limit_why = cgroup_no_limit;
	char dir[CGROUP_PATH_MAX];
	out->why = cgroup_file(paths, "memory.current", out->file, dir, &mlen);
	if (out->why != NULL)
		return LV_ERR;
	cgroup_walk(dir, mlen, "memory.max", cgroup_take_memory_max, out);
	out->why = cgroup_read(out->file, text, sizeof(text));
	if (out->why != NULL)
		return LV_ERR;
	size_t len = strlen(text);
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (!cgroup_u64(text, len, &current)) {
		out->why = cgroup_garbage;
		return LV_ERR;
	}
	out->current = current;
	return LV_OK;
}

int cgroup_memory_used_pct(const struct cgroup_memory *m, double *pct, const char **why)
{
	*why = m->why ? m->why : m->limit_why;
	if (*why == NULL && m->limit == 0)
		*why = cgroup_no_limit; /* memory.max 0 has no share to speak of */
	if (*why != NULL)
		return LV_ERR;
	*pct = 100.0 * (double)m->current / (double)m->limit;
	return LV_OK;
}

/* A PSI average, "D+.D+" (the kernel writes two decimals), into <out>;
 * the length it took, 0 if none. */
static size_t cgroup_decimal(const char *s, double *out)
{
	/* the digits as one integer, divided once: 0.75 is 75 / 100, exact */
	size_t i = 0, f;
	uint64_t v = 0, scale = 1;
	while (s[i] >= '0' && s[i] <= '9' && i < 6)
		v = v * 10 + (uint64_t)(s[i++] - '0');
	if (i == 0 || s[i] != '.')
		return 0;
	for (f = ++i; s[i] >= '0' && s[i] <= '9' && i - f < 6; i++, scale *= 10)
		v = v * 10 + (uint64_t)(s[i] - '0');
	if (i == f)
		return 0;
	*out = (double)v / (double)scale;
	return i;
}

/* "avg10=A avg60=A avg300=A total=N" of <len> bytes into <l>. */
static bool cgroup_psi_fields(const char *s, size_t len, struct cgroup_psi_line *l)
{
	static const char *const name[] = {"avg10=", "avg60=", "avg300="};
	double *avg[] = {&l->avg10, &l->avg60, &l->avg300};
	const char *end = s + len;
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(name[i]);
		if ((size_t)(end - s) < n || memcmp(s, name[i], n) != 0)
			return false;
		s += n;
		size_t d = cgroup_decimal(s, avg[i]);
		if (d == 0 || s + d >= end || s[d] != ' ' || *avg[i] > 100.0)
			return false;
		s += d + 1;
	}
	return (size_t)(end - s) > 6 && memcmp(s, "total=", 6) == 0 && cgroup_u64(s + 6, (size_t)(end - s) - 6, &l->total);
}

/* One line of <text> from *line: "NAME " then the fields; moves *line past it. */
static bool cgroup_psi_line(const char **line, const char *name, struct cgroup_psi_line *l)
{
	size_t len = strcspn(*line, "\n");
	bool ok = len > 5 && memcmp(*line, name, 5) == 0 && cgroup_psi_fields(*line + 5, len - 5, l);
	*line += len + ((*line)[len] == '\n');
	return ok;
}

int cgroup_parse_psi(const char *text, struct cgroup_psi *out)
{
	out->has_full = false;
	if (!cgroup_psi_line(&text, "some ", &out->some))
		return LV_ERR;
	if (*text == '\0')
		return LV_OK; /* cpu before Linux 5.13 */
	if (!cgroup_psi_line(&text, "full ", &out->full) || *text != '\0')
		return LV_ERR;
	out->has_full = true;
	return LV_OK;
}

int cgroup_psi_read(const struct cgroup_paths *paths, enum cgroup_psi_resource r, struct cgroup_psi *out)
{
	static const char *const name[] = {"cpu", "memory", "io"};
	char cgname[16], text[512], dir[CGROUP_PATH_MAX];
	size_t mlen;
	memset(out, 0, sizeof(*out));
	snprintf(cgname, sizeof(cgname), "%s.pressure", name[r]);
	out->source = CGROUP_PSI_CGROUP;
	out->why = cgroup_file(paths, cgname, out->file, dir, &mlen);
	if (out->why == NULL)
		out->why = cgroup_read(out->file, text, sizeof(text));
	if (out->why != NULL && out->why != cgroup_garbage) {
		/* the host's: no cgroup v2, no pressure files in it, or PSI off for it */
		out->source = CGROUP_PSI_HOST;
		if ((size_t)snprintf(out->file, sizeof(out->file), "%s/%s", paths->pressure ? paths->pressure : "/proc/pressure",
		                     name[r]) >= sizeof(out->file))
			out->why = cgroup_unreadable;
		else
			out->why = cgroup_read(out->file, text, sizeof(text));
	}
	if (out->why == NULL && cgroup_parse_psi(text, out) != LV_OK)
		out->why = cgroup_garbage;
	if (out->why == NULL)
		return LV_OK;
	out->source = CGROUP_PSI_NONE;
	return LV_ERR;
}

const char *cgroup_psi_source_name(enum cgroup_psi_source s)
{
	return s == CGROUP_PSI_CGROUP ? "cgroup" : s == CGROUP_PSI_HOST ? "host" : "none";
}

/* utime + stime of a /proc/PID/stat, in clock ticks. comm (field 2) is in
 * parentheses and may hold blanks and ')' itself, so fields count from the
 * last ')': state is the 3rd field, utime the 14th, stime the 15th. */
static bool cgroup_parse_stat(const char *text, uint64_t *ticks)
{
	const char *p = strrchr(text, ')');
	uint64_t utime, stime;
	if (p == NULL)
		return false;
	p++;
	for (int field = 2; field < 13; field++) {
		if (*p != ' ')
			return false;
		p += 1 + strcspn(p + 1, " \n");
	}
	size_t n;
	if (*p != ' ' || !cgroup_u64(p + 1, n = strcspn(p + 1, " \n"), &utime))
		return false;
	p += 1 + n;
	if (*p != ' ' || !cgroup_u64(p + 1, n = strcspn(p + 1, " \n"), &stime) || utime > UINT64_MAX - stime)
		return false;
	*ticks = utime + stime;
	return true;
}

int cgroup_self_cpu_read(const struct cgroup_paths *paths, struct cgroup_self_cpu *out)
{
	memset(out, 0, sizeof(*out));
	if (paths->stat == NULL) {
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru) != 0) {
			out->why = cgroup_unreadable;
			return LV_ERR;
		}
		out->cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
		              (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
		return LV_OK;
	}
	char text[CGROUP_LINE_MAX];
	uint64_t ticks;
	long hz = sysconf(_SC_CLK_TCK);
	out->why = cgroup_read(paths->stat, text, sizeof(text));
	if (out->why == NULL && (hz <= 0 || !cgroup_parse_stat(text, &ticks) || ticks > UINT64_MAX / 1000000))
		out->why = cgroup_garbage;
	if (out->why != NULL)
		return LV_ERR;
	out->cpu_us = ticks * 1000000 / (uint64_t)hz;
	return LV_OK;
}

int cgroup_self_cpu_pct(const struct cgroup_self_cpu *before, const struct cgroup_self_cpu *after,
                        uint64_t elapsed_us, double *pct, const char **why)
{
	uint64_t used;
	*why = before->why ? before->why : after->why;
	if (*why == NULL && elapsed_us == 0)
		*why = cgroup_no_time;
	if (*why == NULL && !cgroup_delta(before->cpu_us, after->cpu_us, &used))
		*why = cgroup_backwards;
	if (*why != NULL)
		return LV_ERR;
	*pct = 100.0 * (double)used / (double)elapsed_us;
	return LV_OK;
}
