/*
 * print.c - `levee check --print [--defaults] FILE`: the policy as levee
 * resolved it, ${VAR} expanded from this environment, as an INI file that
 * levee loads again to the same policy.
 *
 * Without --defaults only the keys whose value is not their default are
 * written (and every named section, so that an all-default bulkhead still
 * exists); with it, every key. Secrets (keys of type secret in the key
 * table) are written as LV_SECRET_MASK, which a secret key refuses: a
 * printed file with a masked secret does not load until the secret is put
 * back, and its first lines say so.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tool.h"

struct print_ctx {
	FILE *out;
	bool defaults;
	char header[LV_NAME_MAX * 2 + 16];
	bool header_due;
	char masked[512];                /* "[kafka] sasl_password, ..." */
	size_t nmasked;
};

static void print_header(struct print_ctx *c)
{
	if (c->header_due) {
		fputs(c->header, c->out);
		c->header_due = false;
	}
}

static void print_kv(const struct lv_keyval *kv, void *arg)
{
	struct print_ctx *c = arg;
	if (!kv->key) {
		if (kv->instance)
			snprintf(c->header, sizeof(c->header), "\n[%s \"%s\"]\n", kv->section, kv->instance);
		else
			snprintf(c->header, sizeof(c->header), "\n[%s]\n", kv->section);
		c->header_due = true;
		if (kv->instance) /* a named section exists by its header alone */
			print_header(c);
		return;
	}
	if (kv->is_default && !c->defaults)
		return;
	print_header(c);
	fprintf(c->out, "%s = %s\n", kv->key, kv->value);
	if (kv->secret && strcmp(kv->value, LV_SECRET_MASK) == 0) {
		size_t o = strlen(c->masked);
		snprintf(c->masked + o, sizeof(c->masked) - o, "%s[%s] %s", c->nmasked ? ", " : "", kv->section, kv->key);
		c->nmasked++;
	}
}

int cli_check_print(int argc, char **argv)
{
	const char *path = NULL;
	bool print = false, defaults = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--print") == 0)
			print = true;
		else if (strcmp(argv[i], "--defaults") == 0)
			defaults = true;
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			return tool_usage_error("check", "unknown option %s", argv[i]);
		else if (path)
			return tool_usage_error("check", "one policy FILE only (got %s and %s)", path, argv[i]);
		else
			path = argv[i];
	}
	if (!print)
		return tool_usage_error("check", "--defaults goes with --print");
	if (!path)
		return tool_usage_error("check", "--print needs a policy FILE");

	struct lv_policy *p;
	if (tool_load(path, &p) != LV_OK)
		return TOOL_INVALID;
	char *body = NULL;
	size_t blen = 0;
	struct print_ctx c = {.defaults = defaults};
	c.out = open_memstream(&body, &blen);
	char err[512];
	int rc = c.out ? policy_walk(p, LV_WALK_MASK, print_kv, &c, err, sizeof(err)) : LV_ERR;
	if (c.out)
		fclose(c.out);
	else
		snprintf(err, sizeof(err), "out of memory");
	if (rc != LV_OK) {
		fprintf(stderr, "levee check --print: %s: %s\n", path, err);
		free(body);
		policy_unref(p);
		return TOOL_INVALID;
	}
	printf("; levee check --print: %s (checksum %s), ${VAR} expanded from this environment\n", path,
	       p->checksum);
	printf(defaults ? "; every key, defaults included\n"
	                : "; keys at their default are left out (--print --defaults writes them)\n");
	if (c.nmasked)
		printf("; SECRETS MASKED: %s. This file does not load until each %s is replaced by the secret\n"
		       "; or by ${VAR}.\n",
		       c.masked, LV_SECRET_MASK);
	fwrite(body, 1, blen, stdout);
	free(body);
	policy_unref(p);
	return TOOL_OK;
}
