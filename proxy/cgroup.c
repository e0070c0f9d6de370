/*
 * cgroup.c - the process's cgroup v2 CPU quota (cgroup.h).
 *
 * The process's cgroup is the "0::PATH" line of /proc/self/cgroup (cgroup
 * v1 lines have a hierarchy number and controllers instead of "0:").
 * mountinfo names the cgroup2 mount and which directory of the hierarchy it
 * shows (its root field: "/" unless a container runtime bind-mounted a
 * subtree), so the cgroup's directory is the mount point plus PATH less that
 * root. Kubernetes sets the container's quota on its own cgroup and the
 * pod's on the parent, so every level up to the mount point is read and the
 * tightest wins.
 */
#include "cgroup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CGROUP_LINE_MAX 4096

/* A positive decimal number of <len> bytes, digits only. */
static bool cgroup_uint(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return v > 0;
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

/* Reads <dir>/cpu.max into <out> when it is tighter than what was found. */
static void cgroup_read_cpu_max(const char *dir, struct cgroup_cpu *out)
{
	char file[CGROUP_PATH_MAX], text[128];
	if ((size_t)snprintf(file, sizeof(file), "%s/cpu.max", dir) >= sizeof(file)) {
		cgroup_why(out, "cgroup path too long: %s", dir);
		return;
	}
	FILE *f = fopen(file, "re");
	if (f == NULL) {
		if (errno != ENOENT) /* the root cgroup has none; a child without a cpu controller neither */
			cgroup_why(out, "cannot read %s", file);
		return;
	}
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	uint64_t quota, period;
	if (cgroup_parse_cpu_max(text, &quota, &period) != LV_OK) {
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

void cgroup_cpu_quota(const struct cgroup_paths *paths, struct cgroup_cpu *out)
{
	char mnt[CGROUP_PATH_MAX], root[CGROUP_PATH_MAX], self[CGROUP_PATH_MAX], dir[CGROUP_PATH_MAX];
	const char *self_file = paths->self ? paths->self : "/proc/self/cgroup";
	memset(out, 0, sizeof(*out));

	bool in_v2 = cgroup_scan(self_file, cgroup_take_self, &(struct cgroup_buf){self, NULL, sizeof(self)});
	if (paths->root != NULL) {
		snprintf(mnt, sizeof(mnt), "%s", paths->root);
		root[0] = '\0';
		if (!in_v2)
			self[0] = '\0';
	} else if (!in_v2) {
		cgroup_why(out, "%s has no cgroup v2 line", self_file);
		return;
	} else if (!cgroup_scan(paths->mountinfo ? paths->mountinfo : "/proc/self/mountinfo", cgroup_take_mount,
	                        &(struct cgroup_buf){mnt, root, sizeof(mnt)})) {
		cgroup_why(out, "no cgroup2 file system is mounted");
		return;
	}
	/* the cgroup's place under the mount; outside what the mount shows
	 * (another namespace's view), only the mount itself can be read */
	size_t rlen = strlen(root);
	while (rlen > 0 && root[rlen - 1] == '/')
		rlen--;
	const char *rel = self;
	if (rlen > 0)
		rel = strncmp(self, root, rlen) == 0 && (self[rlen] == '/' || self[rlen] == '\0') ? self + rlen : "";
	size_t mlen = strlen(mnt);
	while (mlen > 1 && mnt[mlen - 1] == '/')
		mnt[--mlen] = '\0';
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", mnt, rel) >= sizeof(dir)) {
		cgroup_why(out, "cgroup path too long: %s", self);
		return;
	}
	/* from the cgroup up to the mount point, inclusive */
	for (;;) {
		cgroup_read_cpu_max(dir, out);
		char *slash = strrchr(dir + mlen, '/');
		if (slash == NULL)
			break;
		*slash = '\0';
	}
}
