/*
 * cli.h - the tools ops run beside levee, not levee itself: what a request
 * would meet (explain.c), what a policy change would do (diff.c), and the
 * resolved policy (print.c). Each reads policy files and the process's
 * environment, runs no event loop, and returns an exit status:
 *
 *   0  as documented per tool (docs/cli.md);
 *   1  a policy file is invalid (its `levee check` lines on stderr), or,
 *      for diff, the policies differ;
 *   2  the command line is wrong (a message on stderr).
 *
 * `argv` holds the tool's own arguments, after "levee TOOL".
 */
#ifndef LEVEE_CLI_H
#define LEVEE_CLI_H

#include <stdio.h>

int cli_check_print(int argc, char **argv);
int cli_diff(int argc, char **argv);
int cli_explain(int argc, char **argv);

/* The tools' lines of `levee --help`. */
void cli_usage(FILE *f);

#endif
