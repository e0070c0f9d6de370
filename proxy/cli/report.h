/*
 * report.h - one report, written as text for people or as JSON for scripts
 * (`levee explain`): the caller says what, once, and the report says how.
 *
 * A report is objects of fields, and lists of items. In text an object is
 * a heading and its fields are indented lines `label: value` (the JSON key
 * with '_' as ' '); an item is one line, its fields `key=value`. In JSON
 * each is what it says.
 */
#ifndef LEVEE_CLI_REPORT_H
#define LEVEE_CLI_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#define REPORT_DEPTH 8

struct report {
	FILE *f;
	bool json;
	int depth;
	bool first[REPORT_DEPTH]; /* no field written yet at this depth */
	bool in_item;             /* text: fields go on the item's line */
};

void report_init(struct report *r, FILE *f, bool json);
void report_done(struct report *r);
/* An object under `key` (a heading in text). */
void report_begin(struct report *r, const char *key);
void report_end(struct report *r);
/* A list under `key`, and its items. */
void report_list(struct report *r, const char *key);
void report_list_end(struct report *r);
void report_item(struct report *r);
void report_item_end(struct report *r);
/* Fields. A NULL string is null in JSON and "none" in text. */
void report_str(struct report *r, const char *key, const char *v);
void report_strn(struct report *r, const char *key, const char *v, size_t n);
void report_fmt(struct report *r, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void report_num(struct report *r, const char *key, double v);
void report_bool(struct report *r, const char *key, bool v);
/* A string in text only (an explanation), left out of JSON. */
void report_note(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
