/*
 * tool.h - what the tools of proxy/cli/ share: loading a policy the way
 * `levee check` does, and writing JSON strings.
 */
#ifndef LEVEE_CLI_TOOL_H
#define LEVEE_CLI_TOOL_H

#include <stdio.h>

#include "policy.h"

/* Exit statuses of the tools (cli.h). */
enum { TOOL_OK = 0, TOOL_INVALID = 1, TOOL_USAGE = 2 };

/* Loads `path` into *out, or writes its `levee check` lines (file:line:
 * [section] key: reason) to stderr and returns LV_ERR. Warnings are
 * written too, but do not fail it. */
int tool_load(const char *path, struct lv_policy **out) LV_WARN_UNUSED;

/* `n` bytes of `s` as a JSON string, quotes included. */
void tool_json_str(FILE *f, const char *s, size_t n);
/* The same for a NUL-terminated string; NULL is written as null. */
void tool_json(FILE *f, const char *s);

/* A usage error of `tool`: the message, then the tool's usage line;
 * returns TOOL_USAGE. */
int tool_usage_error(const char *tool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
