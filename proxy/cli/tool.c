/*
 * tool.c - see tool.h.
 */
#include "cli/tool.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "log.h"

int tool_load(const char *path, struct lv_policy **out)
{
	struct lv_diag d = {0};
	int rc = policy_load_file(path, NULL, out, &d);
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.lines[i]);
	for (size_t i = 0; i < d.nwarn; i++)
		fprintf(stderr, "%s\n", d.warnings[i]);
	diag_free(&d);
	return rc;
}

void tool_json_str(FILE *f, const char *s, size_t n)
{
	char buf[512];
	fputc('"', f);
	/* in pieces: json_escape writes at most 6 bytes for one */
	for (size_t i = 0; i < n; i += sizeof(buf) / 6) {
		size_t m = n - i < sizeof(buf) / 6 ? n - i : sizeof(buf) / 6;
		fwrite(buf, 1, json_escape(buf, s + i, m), f);
	}
	fputc('"', f);
}

void tool_json(FILE *f, const char *s)
{
	if (s)
		tool_json_str(f, s, strlen(s));
	else
		fputs("null", f);
}

int tool_usage_error(const char *tool, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "levee %s: ", tool);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_usage(stderr);
	return TOOL_USAGE;
}

void cli_usage(FILE *f)
{
	fputs("       levee check --print [--defaults] FILE      the resolved policy, secrets masked\n"
	      "       levee diff [--json] OLD NEW                what reloading NEW over OLD would do\n"
	      "       levee explain [--json] [--from ADDR] FILE METHOD URL [\"Name: value\"...]\n"
	      "                                                  what that request would meet under FILE\n",
	      f);
}
