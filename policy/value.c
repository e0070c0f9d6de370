/*
 * value.c - parsers for the value syntaxes of the policy file, ${VAR}
 * expansion, and the diagnostics list.
 *
 * The parsers are strict on purpose: an operator editing a policy during an
 * incident should get an error for "5 s", "1.5s" or "64kb", not a silently
 * different number. They never trim whitespace (inih already did) and never
 * depend on the locale.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy_internal.h"

/* ---- diagnostics ------------------------------------------------------- */

/* Appends one formatted line to a list of `d`. On out of memory the line is
 * lost, the caller's status is not. */
static void diag_vpush(char ***lines, size_t *n, size_t *cap, const char *fmt, va_list ap)
{
	va_list again;
	va_copy(again, ap);
	int len = vsnprintf(NULL, 0, fmt, ap);
	if (len < 0)
		goto out;
	if (*n == *cap) {
		size_t grown_cap = *cap ? *cap * 2 : 8;
		char **grown = realloc(*lines, grown_cap * sizeof(*grown));
		if (grown == NULL)
			goto out;
		*lines = grown;
		*cap = grown_cap;
	}
	char *line = malloc((size_t)len + 1);
	if (line == NULL)
		goto out;
	vsnprintf(line, (size_t)len + 1, fmt, again);
	(*lines)[(*n)++] = line;
out:
	va_end(again);
}

void diag_add(struct lv_diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vpush(&d->lines, &d->n, &d->cap, fmt, ap);
	va_end(ap);
}

void diag_warn(struct lv_diag *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vpush(&d->warnings, &d->nwarn, &d->capwarn, fmt, ap);
	va_end(ap);
}

void diag_drop_warnings(struct lv_diag *d, size_t keep)
{
	while (d->nwarn > keep)
		free(d->warnings[--d->nwarn]);
}

void diag_free(struct lv_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	d->lines = NULL;
	d->n = d->cap = 0;
	diag_drop_warnings(d, 0);
	free(d->warnings);
	d->warnings = NULL;
	d->capwarn = 0;
}

/* ---- methods ----------------------------------------------------------- */

static const struct {
	const char *name;
	size_t len;
	unsigned bit;
} value_methods[] = {
	{"GET", 3, LV_M_GET},         {"HEAD", 4, LV_M_HEAD},     {"POST", 4, LV_M_POST},
	{"PUT", 3, LV_M_PUT},         {"PATCH", 5, LV_M_PATCH},   {"DELETE", 6, LV_M_DELETE},
	{"OPTIONS", 7, LV_M_OPTIONS}, {"TRACE", 5, LV_M_TRACE},
};

const char *policy_method_name(unsigned bit)
{
	for (size_t i = 0; i < sizeof(value_methods) / sizeof(value_methods[0]); i++)
		if (value_methods[i].bit == bit)
			return value_methods[i].name;
	return NULL;
}

/* Method names are case-sensitive (RFC 9110 9.1), so "get" is LV_M_OTHER. */
unsigned policy_method_bit(const char *method, size_t len)
{
	for (size_t i = 0; i < sizeof(value_methods) / sizeof(value_methods[0]); i++)
		if (len == value_methods[i].len && memcmp(method, value_methods[i].name, len) == 0)
			return value_methods[i].bit;
	return LV_M_OTHER;
}

/* ---- numbers ----------------------------------------------------------- */

/* Reads the leading decimal digits of `s` into *out; *end points after them. */
static int value_digits(const char *s, uint64_t *out, const char **end, const char **why)
{
	if (*s == '\0') {
		*why = "empty value";
		return LV_ERR;
	}
	if (!isdigit((unsigned char)*s)) {
		*why = *s == '-' ? "must not be negative" : "expected a number";
		return LV_ERR;
	}
	uint64_t n = 0;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (n > (UINT64_MAX - d) / 10) {
			*why = "number too large";
			return LV_ERR;
		}
		n = n * 10 + d;
	}
	*out = n;
	*end = s;
	return LV_OK;
}

struct value_unit {
	const char *name;
	uint64_t mult;
};

/* Applies the unit written after a number; `none` is the message for a bare
 * number other than 0 (NULL when a bare number is fine). */
static int value_scaled(const char *s, const struct value_unit *units, size_t nunits,
                        const char *none, const char *unknown, uint64_t *out, const char **why)
{
	uint64_t n;
	const char *end;
	if (value_digits(s, &n, &end, why) != LV_OK)
		return LV_ERR;
	if (*end == '.' || *end == ',') {
		*why = "must be a whole number (use a smaller unit instead of a fraction)";
		return LV_ERR;
	}
	uint64_t mult = 1;
	if (*end == '\0') {
		if (n != 0 && none != NULL) {
			*why = none;
			return LV_ERR;
		}
	} else {
		size_t i;
		for (i = 0; i < nunits; i++)
			if (strcmp(end, units[i].name) == 0)
				break;
		if (i == nunits) {
			*why = unknown;
			return LV_ERR;
		}
		mult = units[i].mult;
	}
	if (n > UINT64_MAX / mult) {
		*why = "number too large";
		return LV_ERR;
	}
	*out = n * mult;
	return LV_OK;
}

int value_duration_ms(const char *s, uint64_t *out_ms, const char **why)
{
	static const struct value_unit units[] = {
		{"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000},
	};
	return value_scaled(s, units, sizeof(units) / sizeof(units[0]),
	                    "missing unit (write e.g. 250ms, 5s, 2m or 1h)",
	                    "unknown unit (use ms, s, m or h, e.g. 250ms)", out_ms, why);
}

static const struct value_unit value_size_units[] = {
	{"B", 1},
	{"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}, {"TiB", 1ull << 40},
	{"KB", 1000ull},     {"MB", 1000ull * 1000},
	{"GB", 1000ull * 1000 * 1000}, {"TB", 1000ull * 1000 * 1000 * 1000},
};
#define VALUE_SIZE_UNITS (sizeof(value_size_units) / sizeof(value_size_units[0]))

int value_size_bytes(const char *s, uint64_t *out, const char **why)
{
	return value_scaled(s, value_size_units, VALUE_SIZE_UNITS, NULL,
	                    "unknown unit (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)", out, why);
}

int value_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out, const char **why)
{
	uint64_t n;
	const char *end;
	if (value_digits(s, &n, &end, why) != LV_OK)
		return LV_ERR;
	if (*end != '\0') {
		*why = "expected a whole number";
		return LV_ERR;
	}
	if (n < min || n > max) {
		*why = "out of range";
		return LV_ERR;
	}
	*out = n;
	return LV_OK;
}

/* A decimal "12" or "12.5" at the start of `s` into *out; *end points after
 * it. The whole part is exact up to 2^53; the fraction is read digit by
 * digit, so "0.1" is the double nearest 0.1 give or take an ulp. */
static int value_decimal(const char *s, double *out, const char **end, const char **why)
{
	uint64_t whole;
	const char *p;
	if (value_digits(s, &whole, &p, why) != LV_OK)
		return LV_ERR;
	double v = (double)whole;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p)) {
			*why = "expected digits after '.'";
			return LV_ERR;
		}
		double scale = 0.1;
		for (; isdigit((unsigned char)*p); p++, scale /= 10)
			v += (*p - '0') * scale;
	}
	*out = v;
	*end = p;
	return LV_OK;
}

/* "50%", "12.5%": at most 100, written with a '%' so that "0.5" is never
 * mistaken for a fraction. */
int value_percent(const char *s, double *out, const char **why)
{
	double v;
	const char *p;
	if (value_decimal(s, &v, &p, why) != LV_OK)
		return LV_ERR;
	if (*p != '%' || p[1] != '\0') {
		*why = *p == '\0' ? "missing '%' (write e.g. 50%)" : "expected a percentage like 50% or 12.5%";
		return LV_ERR;
	}
	if (v > 100.0) {
		*why = "must be at most 100%";
		return LV_ERR;
	}
	*out = v;
	return LV_OK;
}

/* Durations in expressions may be finer than the policy keys' milliseconds:
 * a queue's p99 is often well under one. */
static const struct value_unit value_ns_units[] = {
	{"ns", 1},
	{"us", 1000},
	{"ms", 1000 * 1000},
	{"s", 1000ull * 1000 * 1000},
	{"m", 60ull * 1000 * 1000 * 1000},
	{"h", 3600ull * 1000 * 1000 * 1000},
};
#define VALUE_NS_UNITS (sizeof(value_ns_units) / sizeof(value_ns_units[0]))

static bool value_unit_known(const struct value_unit *units, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(units[i].name, name) == 0)
			return true;
	return false;
}

int value_quantity(const char *s, enum value_qty *kind, double *out, const char **why)
{
	const char *unit = s;
	while (isdigit((unsigned char)*unit) || *unit == '.')
		unit++;
	if (*unit == '%') {
		/* above 100 is a condition's right: levee's cpu counts every CPU
		 * (four busy threads make 400%), memory against its limit can pass
		 * 100 while the kernel reclaims */
		*kind = VQ_PERCENT;
		const char *p;
		double v;
		if (value_decimal(s, &v, &p, why) != LV_OK)
			return LV_ERR;
		if (p[1] != '\0') {
			*why = "expected a percentage like 50% or 12.5%";
			return LV_ERR;
		}
		if (v > 1e6) {
			*why = "must be at most 1000000%";
			return LV_ERR;
		}
		*out = v;
		return LV_OK;
	}
	uint64_t n;
	if (value_unit_known(value_ns_units, VALUE_NS_UNITS, unit)) {
		*kind = VQ_DURATION;
		if (value_scaled(s, value_ns_units, VALUE_NS_UNITS, NULL, NULL, &n, why) != LV_OK)
			return LV_ERR;
		*out = (double)n / 1e6;
		return LV_OK;
	}
	if (value_unit_known(value_size_units, VALUE_SIZE_UNITS, unit)) {
		*kind = VQ_SIZE;
		if (value_size_bytes(s, &n, why) != LV_OK)
			return LV_ERR;
		*out = (double)n;
		return LV_OK;
	}
	if (*unit != '\0') {
		*why = "unknown unit (durations: ns, us, ms, s, m, h; sizes: B, KiB, MiB, GiB, TiB, "
		       "KB, MB, GB, TB; or %)";
		return LV_ERR;
	}
	*kind = VQ_NUMBER;
	const char *end;
	double v;
	if (value_decimal(s, &v, &end, why) != LV_OK)
		return LV_ERR;
	if (*end != '\0') {
		*why = "expected a number like 12 or 0.5";
		return LV_ERR;
	}
	*out = v;
	return LV_OK;
}

int value_bool(const char *s, bool *out, const char **why)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return LV_OK;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return LV_OK;
		}
	}
	*why = *s == '\0' ? "empty value" : "expected true or false (also yes/no, on/off, 1/0)";
	return LV_ERR;
}

/* ---- host:port --------------------------------------------------------- */

static int value_port(const char *s, uint16_t *out, const char **why)
{
	uint64_t n;
	const char *ignored;
	if (value_uint(s, 1, 65535, &n, &ignored) != LV_OK) {
		*why = *s == '\0' ? "missing port after ':'" : "port must be a number from 1 to 65535";
		return LV_ERR;
	}
	*out = (uint16_t)n;
	return LV_OK;
}

/* A DNS name or an IPv4 address. Anything made only of digits and dots must
 * be a valid IPv4 address, so that "10.0.0.300" is an error here rather than
 * a DNS lookup failure at start-up. A name's labels and length are bounded
 * as DNS bounds them (RFC 1035), since no resolver could ever answer for a
 * longer one. */
int value_host(const char *h, const char **why)
{
	bool numeric = true;
	size_t label = 0;
	for (const char *p = h; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!isalnum(c) && c != '.' && c != '-' && c != '_') {
			*why = "bad character in host name";
			return LV_ERR;
		}
		if (!isdigit(c) && c != '.')
			numeric = false;
		label = c == '.' ? 0 : label + 1;
		if (label > 63) {
			*why = "host name label longer than 63 characters";
			return LV_ERR;
		}
	}
	if (h[0] == '.' || h[0] == '-' || strstr(h, "..") != NULL) {
		*why = "bad host name";
		return LV_ERR;
	}
	if (strlen(h) > 253) {
		*why = "host name longer than 253 characters";
		return LV_ERR;
	}
	struct in_addr a4;
	if (numeric && inet_pton(AF_INET, h, &a4) != 1) {
		*why = "bad IPv4 address";
		return LV_ERR;
	}
	return LV_OK;
}

int value_hostport(const char *s, struct lv_hostport *out, const char **why)
{
	struct lv_hostport hp;
	memset(&hp, 0, sizeof(hp));
	const char *host, *port;
	size_t hlen;

	if (*s == '\0') {
		*why = "empty value";
		return LV_ERR;
	}
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL) {
			*why = "missing ']' after IPv6 address";
			return LV_ERR;
		}
		if (close[1] != ':') {
			*why = "missing :PORT after ']' (write e.g. [::1]:8080)";
			return LV_ERR;
		}
		host = s + 1;
		hlen = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL) {
			*why = "missing :PORT (write HOST:PORT, e.g. 127.0.0.1:8080)";
			return LV_ERR;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			*why = "an IPv6 address needs brackets (write e.g. [::1]:8080)";
			return LV_ERR;
		}
		host = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
	}
	if (hlen == 0) {
		*why = "missing host (write 0.0.0.0:PORT for every address)";
		return LV_ERR;
	}
	if (hlen >= sizeof(hp.host)) {
		*why = "host name too long";
		return LV_ERR;
	}
	memcpy(hp.host, host, hlen);
	if (*s == '[') {
		struct in6_addr a6;
		if (inet_pton(AF_INET6, hp.host, &a6) != 1) {
			*why = "bad IPv6 address";
			return LV_ERR;
		}
	} else if (value_host(hp.host, why) != LV_OK) {
		return LV_ERR;
	}
	if (value_port(port, &hp.port, why) != LV_OK)
		return LV_ERR;
	*out = hp;
	return LV_OK;
}

/* ---- ${VAR} expansion -------------------------------------------------- */

#define VALUE_ENV_NAME_MAX 128

/* The reason for an unset variable names the variable, so it cannot be a
 * string literal; it lives here and stays valid until this thread's next
 * call of value_expand_env(). */
static _Thread_local char value_env_why[VALUE_ENV_NAME_MAX * 2 + 96];

int value_expand_env(const char *in, char *out, size_t outsz, const char **why)
{
	size_t o = 0;
	const char *p = in;

	if (outsz == 0) {
		*why = "value too long after ${VAR} expansion";
		return LV_ERR;
	}
	while (*p != '\0') {
		const char *chunk = p;
		size_t clen = 1;

		if (*p != '$') {
			p++;
		} else if (p[1] == '$') {
			p += 2; /* "$$" is one literal '$' */
		} else if (p[1] != '{') {
			*why = "a '$' must start ${NAME} or be doubled as $$";
			return LV_ERR;
		} else {
			const char *name = p + 2, *q = name;
			if (*q == '\0') {
				*why = "unterminated ${ (missing '}')";
				return LV_ERR;
			}
			if (!isalpha((unsigned char)*q) && *q != '_') {
				*why = *q == '}' ? "empty variable name in ${}"
				                 : "variable names are letters, digits and '_' (not starting with a digit)";
				return LV_ERR;
			}
			while (isalnum((unsigned char)*q) || *q == '_')
				q++;
			size_t nlen = (size_t)(q - name);
			const char *def = NULL;
			size_t dlen = 0;
			if (*q == '}') {
				p = q + 1;
			} else if (q[0] == ':' && q[1] == '-') {
				def = q + 2;
				const char *close = strchr(def, '}');
				if (close == NULL) {
					*why = "unterminated ${ (missing '}')";
					return LV_ERR;
				}
				dlen = (size_t)(close - def);
				p = close + 1;
			} else if (*q == '\0') {
				*why = "unterminated ${ (missing '}')";
				return LV_ERR;
			} else {
				*why = "expected ${NAME} or ${NAME:-default}";
				return LV_ERR;
			}
			if (nlen >= VALUE_ENV_NAME_MAX) {
				*why = "variable name too long";
				return LV_ERR;
			}
			char vname[VALUE_ENV_NAME_MAX];
			memcpy(vname, name, nlen);
			vname[nlen] = '\0';
			const char *val = getenv(vname);
			/* As in the shell, ":-" also replaces a variable set to "". */
			if ((val == NULL || *val == '\0') && def != NULL) {
				chunk = def;
				clen = dlen;
			} else if (val == NULL) {
				snprintf(value_env_why, sizeof(value_env_why),
				         "environment variable %s is not set (give a default with ${%s:-VALUE})",
				         vname, vname);
				*why = value_env_why;
				return LV_ERR;
			} else {
				chunk = val;
				clen = strlen(val);
			}
		}
		if (clen >= outsz - o) {
			*why = "value too long after ${VAR} expansion";
			return LV_ERR;
		}
		memcpy(out + o, chunk, clen);
		o += clen;
	}
	out[o] = '\0';
	return LV_OK;
}

bool value_host_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

bool value_host_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

bool value_hostport_overlap(const struct lv_hostport *a, const struct lv_hostport *b)
{
	return a->port == b->port &&
	       (strcmp(a->host, b->host) == 0 || value_host_wildcard(a->host) || value_host_wildcard(b->host));
}
