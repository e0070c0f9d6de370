/*
 * keys_doc.c - the key reference, written from the key table (keys.c):
 * every key with its type, default, unit, bounds and reload behaviour, as
 * the Markdown that policy/README.md carries (`test_policy --keys-markdown`
 * prints it; a unit test fails when the README and the table differ).
 */
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

/* Writes `s` as a Markdown table cell: '|' would end the cell. */
static void keys_md_cell(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', out);
		fputc(*s, out);
	}
}

static void keys_md_type(FILE *out, const struct keys_def *k)
{
	char list[128];
	switch (k->type) {
	case KT_NAME:
		fputs("name", out);
		break;
	case KT_HOSTPORT:
		fputs("host:port", out);
		if (k->words)
			fprintf(out, " or `%s`", k->words);
		break;
	case KT_DURATION:
		fputs("duration", out);
		break;
	case KT_SIZE:
		fputs("size", out);
		break;
	case KT_UINT:
		fputs("integer", out);
		if (k->words)
			fprintf(out, " or `%s`", k->words);
		break;
	case KT_BOOL:
		fputs("bool", out);
		break;
	case KT_PERCENT:
		fputs("percent", out);
		break;
	case KT_ENUM:
		keys_words_list(k->words, "`, `", list, sizeof(list));
		fprintf(out, "one of `%s`", list);
		break;
	case KT_PATH:
		if (k->words == NULL) {
			fputs("absolute path", out);
			break;
		}
		keys_words_list(k->words, "`, `", list, sizeof(list));
		fprintf(out, "`%s` or absolute path", list);
		break;
	case KT_METHODS:
		fputs("method list", out);
		break;
	case KT_GLOB:
		fputs("glob pattern", out);
		break;
	case KT_PREFIX:
		fputs("path prefix", out);
		break;
	case KT_TTL:
		fputs("`off`, `origin` or duration", out);
		break;
	case KT_STATUSES:
		fputs("status list", out);
		break;
	case KT_STATUS_SET:
		fputs("status set", out);
		break;
	case KT_FLAGS:
		keys_words_list(k->words, "`, `", list, sizeof(list));
		fprintf(out, "list of `%s`, or `none`", list);
		break;
	case KT_CHAIN:
		keys_words_list(k->words, "`, `", list, sizeof(list));
		fprintf(out, "ordered list of `%s`, or `none`", list);
		break;
	case KT_FIELDS:
		fputs("list of field names (docs/access-log.md), or `all`", out);
		break;
	case KT_LINE:
		fputs("text line", out);
		break;
	case KT_SHED:
		fputs("list of `optional`, `normal`, each with an optional share (`normal 25%`), or `none`", out);
		break;
	case KT_COHORT:
		fputs("`address`, `header:NAME` or `cookie:NAME`", out);
		break;
	case KT_WINDOW:
		fputs("duration or `N calls`", out);
		break;
	case KT_HEADERS:
		fputs(k->words ? "header name list, or `none`" : "header name list", out);
		break;
	case KT_TAGS:
		fputs("tag list", out);
		break;
	case KT_HOSTPORTS:
		fputs("host:port list", out);
		break;
	case KT_TOPIC:
		fputs("topic name", out);
		break;
	case KT_INVALIDATIONS:
		fputs("invalidation list", out);
		break;
	case KT_TEXT:
		fputs("text", out);
		break;
	case KT_SECRET:
		fputs("secret text (masked by `check --print`)", out);
		break;
	}
}

static const char *keys_md_unit(const struct keys_def *k)
{
	if (k->unit != NULL)
		return k->unit;
	switch (k->type) {
	case KT_DURATION:
	case KT_TTL:
	case KT_WINDOW:
		return "ms, s, m, h";
	case KT_SIZE:
		return "B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)";
	case KT_PERCENT:
		return "%";
	default:
		return "";
	}
}

static void keys_md_bounds(FILE *out, const struct keys_def *k)
{
	if (k->type == KT_NAME)
		fprintf(out, "1-%zu of `A-Z a-z 0-9 _ . -`", k->size - 1);
	else if (k->min != NULL && k->max != NULL)
		fprintf(out, "`%s` - `%s`", k->min, k->max);
	else if (k->min != NULL)
		fprintf(out, "at least `%s`", k->min);
	else if (k->max != NULL)
		fprintf(out, "at most `%s`", k->max);
}

/* "required: one of `match`, `prefix`" for a key in a one_of group. */
static void keys_md_one_of(FILE *out, const struct keys_def *k)
{
	const char *sep = "required: one of ";
	size_t nkeys, group = 0;
	const struct keys_def *table = keys_table(&nkeys);
	for (size_t i = 0; i < nkeys; i++)
		group += table[i].one_of == k->one_of && strcmp(table[i].section, k->section) == 0;
	if (group == 1) {
		fputs("required", out);
		return;
	}
	for (size_t i = 0; i < nkeys; i++) {
		const struct keys_def *o = &table[i];
		if (o->one_of == k->one_of && strcmp(o->section, k->section) == 0) {
			fprintf(out, "%s`%s`", sep, o->name);
			sep = ", ";
		}
	}
}

void policy_keys_markdown(FILE *out)
{
	size_t nkeys, nsecs;
	const struct keys_def *table = keys_table(&nkeys);
	const struct keys_section *sections = keys_sections(&nsecs);
	for (size_t si = 0; si < nsecs; si++) {
		const struct keys_section *s = &sections[si];
		if (s->named)
			fprintf(out, "### [%s \"NAME\"]\n\n", s->name);
		else
			fprintf(out, "### [%s]\n\n", s->name);
		fprintf(out, "%s\n\n", s->doc);
		fputs("| key | type | default | unit | bounds | reload | description |\n", out);
		fputs("|---|---|---|---|---|---|---|\n", out);
		for (size_t i = 0; i < nkeys; i++) {
			const struct keys_def *k = &table[i];
			if (strcmp(k->section, s->name) != 0)
				continue;
			fprintf(out, "| `%s` | ", k->name);
			keys_md_type(out, k);
			fputs(" | ", out);
			if (k->def != NULL)
				fprintf(out, "`%s`", k->def);
			else if (k->one_of != 0)
				keys_md_one_of(out, k);
			fprintf(out, " | %s | ", keys_md_unit(k));
			keys_md_bounds(out, k);
			fprintf(out, " | %s | ", k->reload ? "yes" : "no, restart");
			keys_md_cell(out, k->doc);
			fputs(" |\n", out);
		}
		fputs("\n", out);
	}
}
