/*
 * expr.c - the expression language of degradation tiers: a lexer, a
 * recursive-descent parser that type-checks as it goes and emits postfix
 * code, the evaluator of that code, and the canonical rendering.
 *
 * Invariants of a parsed expression (struct expr):
 *   - ops[] is postfix: every op pops its operands and pushes one value, so
 *     the program leaves exactly one value, the answer, and never needs more
 *     than `stack` slots (at most EXPR_STACK_MAX, checked at parse time);
 *   - every value on the stack that an AND, OR or NOT sees is 0 or 1;
 *   - ops[i].start is the index of the first op of the subtree whose root
 *     is ops[i], so the operands of a binary op at i are the subtrees ending
 *     at i - 1 and at ops[i - 1].start - 1; expr_render() walks them;
 *   - every leaf (a number, a signal, true, false) keeps where its text is
 *     in e->text, the expression's own copy of what it was parsed from.
 * The parser needs no allocation until it has succeeded: it emits into a
 * buffer on its stack, which is large enough since no token emits more than
 * one op.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "expr.h"
#include "policy_internal.h"

/* The deepest the evaluation stack can go: each of the EXPR_DEPTH_MAX + 1
 * nesting levels holds at most an OR's, an AND's and a comparison's left
 * operand while its right one is evaluated. */
#define EXPR_STACK_MAX (3 * (EXPR_DEPTH_MAX + 1) + 2)

#define EXPR_NUM_MAX 64 /* bytes of a number with its unit */

enum expr_code {
	OP_NUM,  /* push num (a number, or true and false as 1 and 0) */
	OP_SIG,  /* push signals[sig] */
	OP_FLAG, /* push signals[sig] > 0: a flag used as a condition */
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_EQ,
	OP_NE,
	OP_NOT,
	OP_AND,
	OP_OR,
};

struct expr_op {
	uint8_t code;     /* enum expr_code */
	uint16_t start;   /* first op of this op's subtree */
	uint16_t off, len; /* leaves: the token in the text */
	union {
		double num;
		uint32_t sig;
	} u;
};

struct expr {
	uint16_t nops;
	uint16_t stack;
	const char *text; /* NUL-terminated, inside this allocation */
	struct expr_op ops[];
};

/* ---- tokens ------------------------------------------------------------ */

enum expr_tok_kind {
	T_END,
	T_LPAREN,
	T_RPAREN,
	T_CMP,
	T_AND,
	T_OR,
	T_NOT,
	T_TRUE,
	T_FALSE,
	T_NUM,
	T_NAME,
};

struct expr_tok {
	enum expr_tok_kind kind;
	size_t off, len;
	enum expr_code cmp; /* T_CMP */
};

static const struct {
	const char *word;
	enum expr_tok_kind kind;
} expr_keywords[] = {
	{"and", T_AND}, {"or", T_OR}, {"not", T_NOT}, {"true", T_TRUE}, {"false", T_FALSE},
};

static const char *const expr_cmp_names[] = {
	[OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">", [OP_GE] = ">=", [OP_EQ] = "==", [OP_NE] = "!=",
};

static const char *const expr_kind_names[] = {
	[EXPR_COUNT] = "a count",       [EXPR_DURATION] = "a duration", [EXPR_SIZE] = "a size",
	[EXPR_PERCENT] = "a percentage", [EXPR_FLAG] = "a flag",
};

/* An example of a number of each kind, for the hints. */
static const char *const expr_kind_example[] = {
	[EXPR_COUNT] = "100",     [EXPR_DURATION] = "300ms", [EXPR_SIZE] = "64MiB",
	[EXPR_PERCENT] = "80%",   [EXPR_FLAG] = "",
};

/* ---- the parser -------------------------------------------------------- */

struct expr_parser {
	const char *text;
	size_t len;
	const struct expr_signals *sig;
	struct expr_tok tok;  /* the current token */
	struct expr_tok prev; /* the one before it; kind T_END at the start */
	bool have_prev;
	int depth;            /* '(' and 'not' open around the current token */
	int sp, sp_max;       /* the evaluation stack as the code so far leaves it */
	size_t nops;
	struct expr_op ops[EXPR_TEXT_MAX + 1];
	struct expr_error *err;
};

/* Records the error at byte `off` of the text and returns LV_ERR. */
static int expr_fail(struct expr_parser *p, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int expr_fail(struct expr_parser *p, size_t off, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	p->err->column = (int)off + 1;
	vsnprintf(p->err->message, sizeof(p->err->message), fmt, ap);
	va_end(ap);
	return LV_ERR;
}

/* A token's text for messages, cut at 40 bytes: "%.*s" with these two. */
#define TOK_SHOWN(t) (int)((t).len > 40 ? 40 : (t).len), p->text + (t).off

static bool expr_name_start(unsigned char c)
{
	return isalpha(c) || c == '_';
}

static bool expr_name_byte(unsigned char c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-';
}

/* Reads the token at `off` into p->tok. The operators of other languages
 * are refused with the word to write instead. */
static int expr_lex(struct expr_parser *p, size_t off)
{
	const char *s = p->text;
	while (off < p->len && (s[off] == ' ' || s[off] == '\t'))
		off++;
	struct expr_tok t = {.kind = T_END, .off = off, .len = 0};
	unsigned char c = (unsigned char)s[off];
	size_t end = off + 1;

	if (off >= p->len) {
		t.kind = T_END;
		end = off;
	} else if (c == '(' || c == ')') {
		t.kind = c == '(' ? T_LPAREN : T_RPAREN;
	} else if (c == '<' || c == '>') {
		bool eq = s[off + 1] == '=';
		t.kind = T_CMP;
		t.cmp = c == '<' ? (eq ? OP_LE : OP_LT) : (eq ? OP_GE : OP_GT);
		end += eq;
	} else if ((c == '=' || c == '!') && s[off + 1] == '=') {
		t.kind = T_CMP;
		t.cmp = c == '=' ? OP_EQ : OP_NE;
		end++;
	} else if (c == '=') {
		return expr_fail(p, off, "'=' does not compare: write '=='");
	} else if (c == '!') {
		return expr_fail(p, off, "write 'not' instead of '!'");
	} else if (c == '&') {
		return expr_fail(p, off, "write 'and' instead of '%s'", s[off + 1] == '&' ? "&&" : "&");
	} else if (c == '|') {
		return expr_fail(p, off, "write 'or' instead of '%s'", s[off + 1] == '|' ? "||" : "|");
	} else if (isdigit(c)) {
		/* digits and dots, then a unit: letters or one '%' ("5%and" is
		 * "5%" and "and") */
		t.kind = T_NUM;
		while (isdigit((unsigned char)s[end]) || s[end] == '.')
			end++;
		while (isalpha((unsigned char)s[end]))
			end++;
		end += s[end] == '%';
	} else if (expr_name_start(c)) {
		t.kind = T_NAME;
		while (expr_name_byte((unsigned char)s[end]))
			end++;
		size_t n = end - off;
		for (size_t i = 0; i < sizeof(expr_keywords) / sizeof(expr_keywords[0]); i++) {
			const char *w = expr_keywords[i].word;
			if (strlen(w) != n || strncasecmp(s + off, w, n) != 0)
				continue;
			if (memcmp(s + off, w, n) != 0)
				return expr_fail(p, off, "keywords are lowercase: write '%s' instead of '%.*s'",
				                 w, (int)n, s + off);
			t.kind = expr_keywords[i].kind;
		}
	} else if (isgraph(c)) {
		return expr_fail(p, off, "unexpected character '%c'", c);
	} else {
		return expr_fail(p, off, "unexpected byte 0x%02x", c);
	}
	t.len = end - off;
	p->tok = t;
	return LV_OK;
}

/* Moves to the next token. */
static int expr_next(struct expr_parser *p)
{
	p->prev = p->tok;
	p->have_prev = true;
	return expr_lex(p, p->tok.off + p->tok.len);
}

/* Appends one op whose subtree starts at `start`, keeping track of the
 * stack it needs: `pushes` is its net effect (+1 for a leaf, -1 for a
 * binary op, 0 for not). */
static void expr_emit(struct expr_parser *p, struct expr_op op, int pushes)
{
	op.start = (uint16_t)(pushes > 0 ? p->nops : op.start);
	p->ops[p->nops++] = op;
	p->sp += pushes;
	if (p->sp > p->sp_max)
		p->sp_max = p->sp;
}

static void expr_emit_unary(struct expr_parser *p, enum expr_code code)
{
	struct expr_op op = {.code = (uint8_t)code, .start = p->ops[p->nops - 1].start};
	expr_emit(p, op, 0);
}

static void expr_emit_binary(struct expr_parser *p, enum expr_code code)
{
	size_t left = (size_t)p->ops[p->nops - 1].start - 1;
	struct expr_op op = {.code = (uint8_t)code, .start = p->ops[left].start};
	expr_emit(p, op, -1);
}

/* One side of a comparison, read but not yet emitted: a flag must become an
 * OP_FLAG, and a comparison's check needs both sides. */
struct expr_side {
	struct expr_tok tok;
	bool is_signal;
	enum expr_kind kind;
	uint32_t sig;
	double num;
	bool bare; /* a number without a unit */
};

/* The current token as a C string in buf[size]; `what` names it in the
 * error for one too long. */
static int expr_tok_copy(struct expr_parser *p, char *buf, size_t size, const char *what)
{
	const struct expr_tok *t = &p->tok;
	if (t->len >= size)
		return expr_fail(p, t->off, "%s longer than %zu bytes", what, size - 1);
	memcpy(buf, p->text + t->off, t->len);
	buf[t->len] = '\0';
	return LV_OK;
}

static int expr_signal(struct expr_parser *p, struct expr_side *side)
{
	const struct expr_tok *t = &p->tok;
	char name[EXPR_NAME_MAX];
	if (expr_tok_copy(p, name, sizeof(name), "signal name") != LV_OK)
		return LV_ERR;
	for (size_t i = 0; i < p->sig->n; i++) {
		if (strcmp(p->sig->v[i].name, name) == 0) {
			side->is_signal = true;
			side->kind = p->sig->v[i].kind;
			side->sig = (uint32_t)i;
			return LV_OK;
		}
	}
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	for (size_t i = 0; i < p->sig->n; i++)
		keys_suggest_consider(name, p->sig->v[i].name, &best, &bestd);
	if (best != NULL)
		return expr_fail(p, t->off, "unknown signal '%s' (did you mean '%s'?)", name, best);
	return expr_fail(p, t->off, "unknown signal '%s'", name);
}

static int expr_number(struct expr_parser *p, struct expr_side *side)
{
	const struct expr_tok *t = &p->tok;
	char num[EXPR_NUM_MAX];
	if (expr_tok_copy(p, num, sizeof(num), "number") != LV_OK)
		return LV_ERR;
	enum value_qty q;
	const char *why;
	if (value_quantity(num, &q, &side->num, &why) != LV_OK)
		return expr_fail(p, t->off, "bad number '%s': %s", num, why);
	static const enum expr_kind kinds[] = {
		[VQ_NUMBER] = EXPR_COUNT, [VQ_DURATION] = EXPR_DURATION,
		[VQ_SIZE] = EXPR_SIZE,    [VQ_PERCENT] = EXPR_PERCENT,
	};
	side->is_signal = false;
	side->kind = kinds[q];
	side->bare = q == VQ_NUMBER;
	return LV_OK;
}

/* Reads the current token, a name or a number, as a side of a comparison. */
static int expr_side(struct expr_parser *p, struct expr_side *side)
{
	memset(side, 0, sizeof(*side));
	side->tok = p->tok;
	int rc = p->tok.kind == T_NAME ? expr_signal(p, side) : expr_number(p, side);
	if (rc != LV_OK)
		return rc;
	return expr_next(p);
}

static void expr_emit_side(struct expr_parser *p, const struct expr_side *s, enum expr_code sig_code)
{
	struct expr_op op = {.off = (uint16_t)s->tok.off, .len = (uint16_t)s->tok.len};
	if (s->is_signal) {
		op.code = (uint8_t)sig_code;
		op.u.sig = s->sig;
	} else {
		op.code = OP_NUM;
		op.u.num = s->num;
	}
	expr_emit(p, op, 1);
}

static int expr_flag_compared(struct expr_parser *p, const struct expr_side *s)
{
	return expr_fail(p, s->tok.off,
	                 "%.*s is a flag: use it as a condition by itself ('%.*s' or 'not %.*s')",
	                 TOK_SHOWN(s->tok), TOK_SHOWN(s->tok), TOK_SHOWN(s->tok));
}

/* Whether two sides may be compared: the same kind, with a bare number
 * meaning whatever the signal's kind is when it is 0. */
static int expr_check_kinds(struct expr_parser *p, const struct expr_side *l, const struct expr_side *r)
{
	if (!l->is_signal && !r->is_signal)
		return expr_fail(p, l->tok.off, "both sides are numbers: a comparison needs a signal on one side");
	const struct expr_side *sig = l->is_signal ? l : r;
	const struct expr_side *other = sig == l ? r : l;
	if (other->kind == sig->kind)
		return LV_OK;
	if (!other->is_signal && other->bare) {
		if (other->num == 0)
			return LV_OK;
		return expr_fail(p, other->tok.off, "a number needs a unit here: %.*s what? (%.*s is %s, e.g. %s)",
		                 TOK_SHOWN(other->tok), TOK_SHOWN(sig->tok), expr_kind_names[sig->kind],
		                 expr_kind_example[sig->kind]);
	}
	return expr_fail(p, other->tok.off, "%.*s is %s; %.*s is %s", TOK_SHOWN(sig->tok),
	                 expr_kind_names[sig->kind], TOK_SHOWN(other->tok), expr_kind_names[other->kind]);
}

/* comparison = value cmp value | flag-signal */
static int expr_comparison(struct expr_parser *p)
{
	struct expr_side l, r;
	if (expr_side(p, &l) != LV_OK)
		return LV_ERR;
	if (l.is_signal && l.kind == EXPR_FLAG) {
		if (p->tok.kind == T_CMP)
			return expr_flag_compared(p, &l);
		expr_emit_side(p, &l, OP_FLAG);
		return LV_OK;
	}
	if (p->tok.kind != T_CMP)
		return expr_fail(p, p->tok.off, "expected a comparison operator after '%.*s'", TOK_SHOWN(l.tok));
	struct expr_tok op = p->tok;
	if (expr_next(p) != LV_OK)
		return LV_ERR;
	if (p->tok.kind != T_NAME && p->tok.kind != T_NUM)
		return expr_fail(p, p->tok.off, "expected a number or a signal after '%s'", expr_cmp_names[op.cmp]);
	if (expr_side(p, &r) != LV_OK)
		return LV_ERR;
	if (r.is_signal && r.kind == EXPR_FLAG)
		return expr_flag_compared(p, &r);
	if (expr_check_kinds(p, &l, &r) != LV_OK)
		return LV_ERR;
	if (p->tok.kind == T_CMP)
		return expr_fail(p, p->tok.off, "comparisons do not chain: join two with 'and' (a < b and b < c)");
	expr_emit_side(p, &l, OP_SIG);
	expr_emit_side(p, &r, OP_SIG);
	expr_emit_binary(p, op.cmp);
	return LV_OK;
}

static int expr_or(struct expr_parser *p);

/* Enters one more level of '(' or 'not' at the current token. */
static int expr_deeper(struct expr_parser *p)
{
	if (++p->depth > EXPR_DEPTH_MAX)
		return expr_fail(p, p->tok.off, "nested deeper than %d levels of '(' and 'not'", EXPR_DEPTH_MAX);
	return LV_OK;
}

/* The error for a token that cannot start a condition. */
static int expr_want_condition(struct expr_parser *p)
{
	const struct expr_tok *t = &p->tok;
	if (t->kind == T_RPAREN && p->depth == 0)
		return expr_fail(p, t->off, "unbalanced ')'");
	if (!p->have_prev)
		return t->kind == T_END ? expr_fail(p, t->off, "empty expression: expected a condition")
		                        : expr_fail(p, t->off, "expected a condition, found '%.*s'", TOK_SHOWN(*t));
	if (t->kind == T_END)
		return expr_fail(p, t->off, "expected a condition after '%.*s'", TOK_SHOWN(p->prev));
	return expr_fail(p, t->off, "expected a condition after '%.*s', found '%.*s'", TOK_SHOWN(p->prev),
	                 TOK_SHOWN(*t));
}

/* atom = "(" or ")" | "true" | "false" | comparison */
static int expr_atom(struct expr_parser *p)
{
	struct expr_tok t = p->tok;
	switch (t.kind) {
	case T_LPAREN:
		if (expr_deeper(p) != LV_OK || expr_next(p) != LV_OK || expr_or(p) != LV_OK)
			return LV_ERR;
		if (p->tok.kind == T_END)
			return expr_fail(p, p->tok.off, "missing ')' to close the '(' at column %zu", t.off + 1);
		if (p->tok.kind != T_RPAREN)
			return expr_fail(p, p->tok.off, "expected 'and', 'or' or ')' after '%.*s', found '%.*s'",
			                 TOK_SHOWN(p->prev), TOK_SHOWN(p->tok));
		p->depth--;
		return expr_next(p);
	case T_TRUE:
	case T_FALSE: {
		struct expr_op op = {.code = OP_NUM, .off = (uint16_t)t.off, .len = (uint16_t)t.len,
		                     .u.num = t.kind == T_TRUE};
		expr_emit(p, op, 1);
		return expr_next(p);
	}
	case T_NAME:
	case T_NUM:
		return expr_comparison(p);
	default:
		return expr_want_condition(p);
	}
}

/* not = "not" not | atom */
static int expr_not(struct expr_parser *p)
{
	if (p->tok.kind != T_NOT)
		return expr_atom(p);
	if (expr_deeper(p) != LV_OK || expr_next(p) != LV_OK || expr_not(p) != LV_OK)
		return LV_ERR;
	p->depth--;
	expr_emit_unary(p, OP_NOT);
	return LV_OK;
}

/* One level of left-associative binary operator: `word` between `operand`s. */
static int expr_chain(struct expr_parser *p, enum expr_tok_kind word, enum expr_code code,
                      int (*operand)(struct expr_parser *))
{
	if (operand(p) != LV_OK)
		return LV_ERR;
	while (p->tok.kind == word) {
		if (expr_next(p) != LV_OK || operand(p) != LV_OK)
			return LV_ERR;
		expr_emit_binary(p, code);
	}
	return LV_OK;
}

static int expr_and(struct expr_parser *p)
{
	return expr_chain(p, T_AND, OP_AND, expr_not);
}

static int expr_or(struct expr_parser *p)
{
	return expr_chain(p, T_OR, OP_OR, expr_and);
}

int expr_parse(const char *text, const struct expr_signals *sig, struct expr **out,
               struct expr_error *err)
{
	size_t len = strnlen(text, EXPR_TEXT_MAX + 1);
	struct expr_parser *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		err->column = 1;
		snprintf(err->message, sizeof(err->message), "out of memory");
		return LV_ERR;
	}
	p->text = text;
	p->len = len;
	p->sig = sig;
	p->err = err;
	int rc = LV_ERR;
	if (len > EXPR_TEXT_MAX) {
		expr_fail(p, EXPR_TEXT_MAX, "expression longer than %d bytes", EXPR_TEXT_MAX);
		goto out;
	}
	if (expr_lex(p, 0) != LV_OK || expr_or(p) != LV_OK)
		goto out;
	if (p->tok.kind == T_RPAREN) {
		expr_fail(p, p->tok.off, "unbalanced ')'");
		goto out;
	}
	if (p->tok.kind != T_END) {
		expr_fail(p, p->tok.off, "expected 'and', 'or' or the end after '%.*s', found '%.*s'",
		          TOK_SHOWN(p->prev), TOK_SHOWN(p->tok));
		goto out;
	}
	if (p->sp != 1 || p->sp_max > EXPR_STACK_MAX) { /* cannot happen: see EXPR_STACK_MAX */
		expr_fail(p, 0, "expression too complex");
		goto out;
	}
	struct expr *e = malloc(sizeof(*e) + p->nops * sizeof(e->ops[0]) + len + 1);
	if (e == NULL) {
		expr_fail(p, 0, "out of memory");
		goto out;
	}
	e->nops = (uint16_t)p->nops;
	e->stack = (uint16_t)p->sp_max;
	memcpy(e->ops, p->ops, p->nops * sizeof(e->ops[0]));
	char *copy = (char *)(e->ops + p->nops);
	memcpy(copy, text, len + 1);
	e->text = copy;
	*out = e;
	rc = LV_OK;
out:
	free(p);
	return rc;
}

void expr_free(struct expr *e)
{
	free(e);
}

/* ---- evaluation -------------------------------------------------------- */

bool expr_eval(const struct expr *e, const double *signals)
{
	double st[EXPR_STACK_MAX];
	size_t sp = 0;
	for (size_t i = 0; i < e->nops; i++) {
		const struct expr_op *o = &e->ops[i];
		double b;
		switch ((enum expr_code)o->code) {
		case OP_NUM:
			st[sp++] = o->u.num;
			continue;
		case OP_SIG:
			st[sp++] = signals[o->u.sig];
			continue;
		case OP_FLAG:
			st[sp++] = signals[o->u.sig] > 0; /* NaN: false */
			continue;
		case OP_NOT:
			st[sp - 1] = st[sp - 1] == 0;
			continue;
		default:
			break;
		}
		b = st[--sp];
		double a = st[sp - 1];
		switch ((enum expr_code)o->code) {
		case OP_LT: st[sp - 1] = a < b; break;
		case OP_LE: st[sp - 1] = a <= b; break;
		case OP_GT: st[sp - 1] = a > b; break;
		case OP_GE: st[sp - 1] = a >= b; break;
		case OP_EQ: st[sp - 1] = a == b; break;
		case OP_NE: st[sp - 1] = a != b && a == a && b == b; break; /* NaN: false too */
		case OP_AND: st[sp - 1] = a != 0 && b != 0; break;
		case OP_OR: st[sp - 1] = a != 0 || b != 0; break;
		default: break;
		}
	}
	return st[0] != 0;
}

void expr_mark_signals(const struct expr *e, bool *used)
{
	for (size_t i = 0; i < e->nops; i++)
		if (e->ops[i].code == OP_SIG || e->ops[i].code == OP_FLAG)
			used[e->ops[i].u.sig] = true;
}

/* ---- rendering --------------------------------------------------------- */

struct expr_out {
	char *buf;
	size_t size, len;
};

static void expr_put(struct expr_out *o, const char *s, size_t n)
{
	if (o->len < o->size) {
		size_t room = o->size - 1 - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void expr_puts(struct expr_out *o, const char *s)
{
	expr_put(o, s, strlen(s));
}

/* How tightly an op binds: a child that binds less than its parent is
 * written in parentheses. */
static int expr_prec(const struct expr_op *op)
{
	switch ((enum expr_code)op->code) {
	case OP_OR: return 1;
	case OP_AND: return 2;
	case OP_NOT: return 3;
	default: return 4;
	}
}

static void expr_render_op(const struct expr *e, size_t i, struct expr_out *o);

/* An 'and' inside an 'or' is written in parentheses too, which precedence
 * does not need but a reader does. */
static void expr_render_child(const struct expr *e, size_t parent, size_t child, struct expr_out *o)
{
	int prec = expr_prec(&e->ops[child]);
	bool paren = prec < expr_prec(&e->ops[parent]) ||
	             (e->ops[parent].code == OP_OR && e->ops[child].code == OP_AND);
	if (paren)
		expr_puts(o, "(");
	expr_render_op(e, child, o);
	if (paren)
		expr_puts(o, ")");
}

static void expr_render_op(const struct expr *e, size_t i, struct expr_out *o)
{
	const struct expr_op *op = &e->ops[i];
	switch ((enum expr_code)op->code) {
	case OP_NUM:
	case OP_SIG:
	case OP_FLAG:
		expr_put(o, e->text + op->off, op->len);
		return;
	case OP_NOT:
		expr_puts(o, "not ");
		expr_render_child(e, i, i - 1, o);
		return;
	default:
		break;
	}
	size_t right = i - 1, left = (size_t)e->ops[right].start - 1;
	expr_render_child(e, i, left, o);
	expr_puts(o, " ");
	expr_puts(o, op->code == OP_AND ? "and" : op->code == OP_OR ? "or" : expr_cmp_names[op->code]);
	expr_puts(o, " ");
	expr_render_child(e, i, right, o);
}

size_t expr_render(const struct expr *e, char *buf, size_t size)
{
	struct expr_out o = {.buf = buf, .size = size, .len = 0};
	expr_render_op(e, (size_t)e->nops - 1, &o);
	if (size > 0)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return o.len;
}
