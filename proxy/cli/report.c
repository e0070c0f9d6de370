/*
 * report.c - see report.h.
 */
#include "cli/report.h"

#include <stdarg.h>
#include <string.h>

#include "cli/tool.h"

void report_init(struct report *r, FILE *f, bool json)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->json = json;
	r->first[0] = true;
	if (json)
		fputc('{', f);
}

void report_done(struct report *r)
{
	if (r->json)
		fputs("}\n", r->f);
}

static void indent(struct report *r)
{
	for (int i = 0; i < r->depth; i++)
		fputs("  ", r->f);
}

/* JSON: the comma and the key of the next member or element. */
static void json_key(struct report *r, const char *key)
{
	if (!r->first[r->depth])
		fputc(',', r->f);
	r->first[r->depth] = false;
	if (key) {
		tool_json(r->f, key);
		fputc(':', r->f);
	}
}

static void label(struct report *r, const char *key)
{
	for (const char *k = key; *k; k++)
		fputc(*k == '_' ? ' ' : *k, r->f);
}

static void push(struct report *r)
{
	if (r->depth + 1 < REPORT_DEPTH)
		r->depth++;
	r->first[r->depth] = true;
}

/* An object ('{') or a list ('[') under `key`; in text a heading. */
static void open_under(struct report *r, const char *key, char bracket)
{
	if (r->json) {
		json_key(r, key);
		fputc(bracket, r->f);
	} else {
		indent(r);
		label(r, key);
		fputs(":\n", r->f);
	}
	push(r);
}

static void close_with(struct report *r, char bracket)
{
	if (r->depth > 0)
		r->depth--;
	if (r->json)
		fputc(bracket, r->f);
}

void report_begin(struct report *r, const char *key)
{
	open_under(r, key, '{');
}

void report_end(struct report *r)
{
	close_with(r, '}');
}

void report_list(struct report *r, const char *key)
{
	open_under(r, key, '[');
}

void report_list_end(struct report *r)
{
	close_with(r, ']');
}

void report_item(struct report *r)
{
	if (r->json) {
		json_key(r, NULL);
		fputc('{', r->f);
	} else {
		indent(r);
		fputs("-", r->f);
		r->in_item = true;
	}
	push(r);
}

void report_item_end(struct report *r)
{
	if (r->depth > 0)
		r->depth--;
	if (r->json) {
		fputc('}', r->f);
	} else {
		fputc('\n', r->f);
		r->in_item = false;
	}
}

void report_strn(struct report *r, const char *key, const char *v, size_t n)
{
	if (r->json) {
		json_key(r, key);
		if (v)
			tool_json_str(r->f, v, n);
		else
			fputs("null", r->f);
		return;
	}
	if (r->in_item) {
		fprintf(r->f, " %s=", key);
	} else {
		indent(r);
		label(r, key);
		fputs(": ", r->f);
	}
	if (!v) {
		fputs("none", r->f);
	} else {
		/* bytes a terminal would not show (a cache key's separators) as \xNN */
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if (c < ' ' || c >= 0x7f || c == '\\')
				fprintf(r->f, "\\x%02x", c);
			else
				fputc(c, r->f);
		}
	}
	if (!r->in_item)
		fputc('\n', r->f);
}

void report_str(struct report *r, const char *key, const char *v)
{
	report_strn(r, key, v, v ? strlen(v) : 0);
}

void report_fmt(struct report *r, const char *key, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	report_str(r, key, buf);
}

void report_num(struct report *r, const char *key, double v)
{
	if (r->json) {
		json_key(r, key);
		fprintf(r->f, "%.15g", v);
		return;
	}
	char buf[64];
	snprintf(buf, sizeof(buf), "%.15g", v);
	report_str(r, key, buf);
}

void report_bool(struct report *r, const char *key, bool v)
{
	if (r->json) {
		json_key(r, key);
		fputs(v ? "true" : "false", r->f);
		return;
	}
	report_str(r, key, v ? "yes" : "no");
}

void report_note(struct report *r, const char *fmt, ...)
{
	if (r->json)
		return;
	va_list ap;
	indent(r);
	fputs("  (", r->f);
	va_start(ap, fmt);
	vfprintf(r->f, fmt, ap);
	va_end(ap);
	fputs(")\n", r->f);
}
