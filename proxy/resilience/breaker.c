/*
 * breaker.c - see breaker.h. Everything below the registry part runs with
 * b->lock held; a transition's log line is written after it is dropped.
 */
#include "resilience/breaker.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *const breaker_state_names[BRK__STATES] = {
#define BRK_NAME(e, tok) tok,
    BREAKER_STATES(BRK_NAME)
#undef BRK_NAME
};

static struct registry breakers = REGISTRY_INIT;

/* A transition's log line, written once the lock is dropped. */
struct brk_note {
	char line[256];
	bool warn;
};

/* ---- the window ---------------------------------------------------------- */

static uint64_t bucket_ms(const struct breaker *b)
{
	uint64_t ms = b->cfg.window.ms / BRK_BUCKETS;
	return ms ? ms : 1;
}

/* The window's totals at `now_ms`. */
static void window_sum(const struct breaker *b, uint64_t now_ms, uint64_t *calls, uint64_t *failures,
                       uint64_t *slow)
{
	if (b->cfg.window.calls) {
		*calls = b->ring_len;
		*failures = b->ring_failures;
		*slow = b->ring_slow;
		return;
	}
	uint64_t epoch = now_ms / bucket_ms(b);
	*calls = *failures = *slow = 0;
	for (unsigned i = 0; i < BRK_BUCKETS; i++) {
		const struct brk_bucket *k = &b->bucket[i];
		if (k->epoch + BRK_BUCKETS > epoch && k->epoch <= epoch) {
			*calls += k->calls;
			*failures += k->failures;
			*slow += k->slow;
		}
	}
}

static struct brk_bucket *window_bucket(struct breaker *b, uint64_t now_ms)
{
	uint64_t epoch = now_ms / bucket_ms(b);
	struct brk_bucket *k = &b->bucket[epoch % BRK_BUCKETS];
	if (k->epoch != epoch) {
		memset(k, 0, sizeof(*k));
		k->epoch = epoch;
	}
	return k;
}

static void window_add(struct breaker *b, bool failed, bool slow, uint64_t now_ms)
{
	if (!b->cfg.window.calls) {
		struct brk_bucket *k = window_bucket(b, now_ms);
		k->calls++;
		k->failures += failed;
		k->slow += slow;
		return;
	}
	if (!b->ring_cap)
		return; /* out of memory when it was sized: counts nothing */
	if (b->ring_len == b->ring_cap) {
		uint8_t old = b->ring[b->ring_pos];
		b->ring_failures -= old & 1u;
		b->ring_slow -= (old >> 1) & 1u;
	} else {
		b->ring_len++;
	}
	b->ring[b->ring_pos] = (uint8_t)((failed ? 1u : 0u) | (slow ? 2u : 0u));
	b->ring_pos = (b->ring_pos + 1) % b->ring_cap;
	b->ring_failures += failed;
	b->ring_slow += slow;
}

static void window_clear(struct breaker *b)
{
	memset(b->bucket, 0, sizeof(b->bucket));
	b->ring_len = b->ring_pos = 0;
	b->ring_failures = b->ring_slow = 0;
}

/* A ring of `cap` calls holding the newest of the old one's (false: out of
 * memory, the old one stays). */
static bool ring_resize(struct breaker *b, uint32_t cap)
{
	uint8_t *ring = calloc(cap, 1);
	if (!ring)
		return false;
	uint32_t keep = b->ring_len < cap ? b->ring_len : cap;
	uint64_t failures = 0, slow = 0;
	for (uint32_t i = 0; i < keep; i++) {
		/* the i-th newest of the old ring goes keep-1-i from the start */
		uint32_t from = (b->ring_pos + b->ring_cap - 1 - i) % b->ring_cap;
		uint8_t v = b->ring[from];
		ring[keep - 1 - i] = v;
		failures += v & 1u;
		slow += (v >> 1) & 1u;
	}
	free(b->ring);
	b->ring = ring;
	b->ring_cap = cap;
	b->ring_len = keep;
	b->ring_pos = keep % cap;
	b->ring_failures = failures;
	b->ring_slow = slow;
	return true;
}

/* ---- transitions ----------------------------------------------------------- */

static void set_reason(struct breaker *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct breaker *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->st.reason, sizeof(b->st.reason), fmt, ap);
	va_end(ap);
}

static void go(struct breaker *b, enum brk_state to, struct brk_note *note)
{
	enum brk_state from = b->state;
	b->state = to;
	b->gen++;
	b->st.transitions[to]++;
	if (note) {
		snprintf(note->line, sizeof(note->line), "breaker %s: %s -> %s: %s", b->named.name,
		         breaker_state_names[from], breaker_state_names[to], b->st.reason);
		note->warn = to == BRK_OPEN;
	}
}

static uint64_t open_for(const struct breaker *b)
{
	uint64_t ms = b->cfg.open_for_ms;
	if (b->cfg.open_for_max_ms <= ms)
		return ms;
	for (unsigned i = 1; i < b->trips && ms < b->cfg.open_for_max_ms; i++)
		ms *= 2;
	return ms < b->cfg.open_for_max_ms ? ms : b->cfg.open_for_max_ms;
}

/* Opens the breaker; the reason is set already, the duration is appended. */
static void trip(struct breaker *b, uint64_t now_ms, struct brk_note *note)
{
	b->trips++;
	uint64_t ms = open_for(b);
	b->open_until_ms = now_ms + ms;
	size_t n = strlen(b->st.reason);
	snprintf(b->st.reason + n, sizeof(b->st.reason) - n, "; open for %" PRIu64 "ms (trip %u)", ms, b->trips);
	go(b, BRK_OPEN, note);
}

static void to_half_open(struct breaker *b, struct brk_note *note)
{
	b->probes_out = b->probes_ok = 0;
	window_clear(b);
	go(b, BRK_HALF_OPEN, note);
}

static void to_closed(struct breaker *b, struct brk_note *note)
{
	b->trips = 0;
	go(b, BRK_CLOSED, note);
}

/* Time-driven transitions, at every admission and record. */
static void advance(struct breaker *b, uint64_t now_ms, struct brk_note *note)
{
	if (b->forced != BRK_FORCE_NONE && now_ms >= b->forced_until_ms) {
		int was = b->forced;
		b->forced = BRK_FORCE_NONE;
		if (was == BRK_FORCE_OPEN) {
			set_reason(b, "forced open ended: probing");
			to_half_open(b, note);
		}
		return;
	}
	if (b->forced != BRK_FORCE_NONE)
		return;
	if (b->state == BRK_OPEN && now_ms >= b->open_until_ms) {
		set_reason(b, "open_for passed: probing");
		to_half_open(b, note);
	} else if (b->state == BRK_RAMP && now_ms >= b->ramp_start_ms + b->cfg.ramp_ms) {
		set_reason(b, "ramp done");
		to_closed(b, note);
	}
}

/* Closed: trips when the window's figures reach a threshold. */
static void evaluate(struct breaker *b, uint64_t now_ms, struct brk_note *note)
{
	uint64_t calls, failures, slow;
	window_sum(b, now_ms, &calls, &failures, &slow);
	if (calls < b->cfg.min_requests || calls == 0)
		return;
	double fr = 100.0 * (double)failures / (double)calls, sr = 100.0 * (double)slow / (double)calls;
	if (fr >= b->cfg.failure_rate) {
		set_reason(b, "failure rate %.1f%% of %" PRIu64 " calls (failure_rate %.1f%%)", fr, calls,
		           b->cfg.failure_rate);
		trip(b, now_ms, note);
	} else if (b->cfg.slow_call_ms && sr >= b->cfg.slow_call_rate) {
		set_reason(b, "slow calls %.1f%% of %" PRIu64 " calls at %" PRIu64 "ms or more (slow_call_rate %.1f%%)",
		           sr, calls, b->cfg.slow_call_ms, b->cfg.slow_call_rate);
		trip(b, now_ms, note);
	}
}

static double ramp_share(const struct breaker *b, uint64_t now_ms)
{
	if (!b->cfg.ramp_ms)
		return 1.0;
	double f = (double)(now_ms - b->ramp_start_ms) / (double)b->cfg.ramp_ms;
	f = 0.1 + 0.9 * f;
	return f > 1.0 ? 1.0 : f;
}

static void emit(const struct brk_note *note)
{
	if (!note->line[0])
		return;
	if (note->warn)
		log_warn("%s", note->line);
	else
		log_info("%s", note->line);
}

/* ---- the state machine ------------------------------------------------------ */

enum brk_admit breaker_admit(struct breaker *b, uint64_t now_ms, struct brk_ticket *t)
{
	struct brk_note note = {"", false};
	enum brk_admit a = BRK_REJECT;
	pthread_mutex_lock(&b->lock);
	advance(b, now_ms, &note);
	if (b->forced == BRK_FORCE_OPEN) {
		a = BRK_REJECT;
	} else if (b->forced == BRK_FORCE_CLOSED) {
		a = BRK_PASS;
	} else {
		switch (b->state) {
		case BRK_CLOSED:
			a = BRK_PASS;
			break;
		case BRK_OPEN:
			a = BRK_REJECT;
			break;
		case BRK_HALF_OPEN:
			if (b->probes_out + b->probes_ok < b->cfg.half_open_probes) {
				b->probes_out++;
				a = BRK_PROBE;
			}
			break;
		case BRK_RAMP:
			b->ramp_acc += ramp_share(b, now_ms);
			if (b->ramp_acc >= 1.0) {
				b->ramp_acc -= 1.0;
				a = BRK_PASS;
			}
			break;
		}
	}
	if (a == BRK_PASS)
		b->st.passed++;
	else if (a == BRK_PROBE)
		b->st.probes++;
	else
		b->st.rejected++;
	t->gen = b->gen;
	t->kind = (uint8_t)a;
	t->state = (uint8_t)b->state;
	pthread_mutex_unlock(&b->lock);
	emit(&note);
	return a;
}

void breaker_record(struct breaker *b, const struct brk_ticket *t, enum brk_result res, uint64_t latency_ms,
                    uint64_t now_ms)
{
	if (t->kind == BRK_REJECT)
		return;
	struct brk_note note = {"", false};
	pthread_mutex_lock(&b->lock);
	advance(b, now_ms, &note);
	bool current = t->gen == b->gen;
	bool probe = t->kind == BRK_PROBE && current && b->state == BRK_HALF_OPEN;
	if (res == BRK_IGNORE) {
		b->st.ignored++;
		if (probe)
			b->probes_out--; /* its place goes to another probe */
		goto out;
	}
	bool failed = res == BRK_FAIL;
	bool slow = b->cfg.slow_call_ms && latency_ms >= b->cfg.slow_call_ms;
	if (failed)
		b->st.failed++;
	else
		b->st.ok++;
	b->st.slowed += slow;
	if (b->forced != BRK_FORCE_NONE) {
		if (b->forced == BRK_FORCE_CLOSED)
			window_add(b, failed, slow, now_ms);
		goto out;
	}
	switch (b->state) {
	case BRK_CLOSED:
		window_add(b, failed, slow, now_ms);
		evaluate(b, now_ms, &note);
		break;
	case BRK_OPEN:
		break; /* a straggler admitted before the trip */
	case BRK_HALF_OPEN:
		if (!probe)
			break;
		b->probes_out--;
		if (failed || slow) {
			set_reason(b, "a probe %s", failed ? "failed" : "was slow");
			trip(b, now_ms, &note);
			break;
		}
		window_add(b, false, false, now_ms);
		if (++b->probes_ok >= b->cfg.half_open_probes) {
			if (b->cfg.ramp_ms) {
				b->ramp_start_ms = now_ms;
				b->ramp_acc = 0;
				set_reason(b, "%u probes passed: ramping up over %" PRIu64 "ms", b->probes_ok, b->cfg.ramp_ms);
				go(b, BRK_RAMP, &note);
			} else {
				set_reason(b, "%u probes passed", b->probes_ok);
				to_closed(b, &note);
			}
		}
		break;
	case BRK_RAMP:
		window_add(b, failed, slow, now_ms);
		if ((failed || slow) && current) {
			set_reason(b, "a call %s during the ramp", failed ? "failed" : "was slow");
			trip(b, now_ms, &note);
		}
		break;
	}
out:
	pthread_mutex_unlock(&b->lock);
	emit(&note);
}

void breaker_force(struct breaker *b, enum brk_force f, uint64_t for_ms, uint64_t now_ms)
{
	struct brk_note note = {"", false};
	pthread_mutex_lock(&b->lock);
	if (f == BRK_FORCE_NONE) {
		if (b->forced != BRK_FORCE_NONE) {
			b->forced_until_ms = now_ms; /* ends it, the way its time running out does */
			advance(b, now_ms, &note);
			if (!note.line[0])
				snprintf(note.line, sizeof(note.line), "breaker %s: forcing cleared, %s", b->named.name,
				         breaker_state_names[b->state]);
		}
	} else {
		b->forced = f;
		b->forced_until_ms = now_ms + for_ms;
		if (f == BRK_FORCE_OPEN) {
			set_reason(b, "forced open by hand for %" PRIu64 "ms", for_ms);
			b->open_until_ms = b->forced_until_ms;
			go(b, BRK_OPEN, &note);
		} else {
			set_reason(b, "forced closed by hand for %" PRIu64 "ms", for_ms);
			go(b, BRK_CLOSED, &note);
		}
		note.warn = true;
	}
	pthread_mutex_unlock(&b->lock);
	emit(&note);
}

void breaker_stats(struct breaker *b, uint64_t now_ms, struct breaker_stats *out)
{
	struct brk_note note = {"", false};
	pthread_mutex_lock(&b->lock);
	advance(b, now_ms, &note);
	*out = b->st;
	out->state = b->state;
	out->forced = b->forced;
	out->forced_left_ms = b->forced != BRK_FORCE_NONE ? b->forced_until_ms - now_ms : 0;
	window_sum(b, now_ms, &out->calls, &out->failures, &out->slow);
	out->failure_rate = out->calls ? 100.0 * (double)out->failures / (double)out->calls : 0.0;
	out->slow_rate = out->calls ? 100.0 * (double)out->slow / (double)out->calls : 0.0;
	out->open_left_ms = b->state == BRK_OPEN && b->open_until_ms > now_ms ? b->open_until_ms - now_ms : 0;
	out->trips = b->trips;
	out->probes_out = b->probes_out;
	out->probes_ok = b->probes_ok;
	out->ramp_share = b->state == BRK_RAMP ? ramp_share(b, now_ms) : 0.0;
	pthread_mutex_unlock(&b->lock);
	emit(&note);
}

enum brk_result breaker_judge(const struct lv_breaker *cfg, unsigned failed_kind, unsigned status)
{
	if (failed_kind)
		return (cfg->failure_on & failed_kind) ? BRK_FAIL : BRK_OK;
	return status_set_has(&cfg->failure_statuses, status) ? BRK_FAIL : BRK_OK;
}

/* ---- the registry ------------------------------------------------------------ */

static struct named *breaker_make(const void *arg)
{
	const struct lv_breaker *cfg = arg;
	struct breaker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->cfg = *cfg;
	if (cfg->window.calls && !ring_resize(b, (uint32_t)cfg->window.calls)) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	set_reason(b, "new");
	return &b->named;
}

struct breaker *breaker_get(const struct lv_breaker *cfg)
{
	struct named *n = registry_get(&breakers, cfg->name, breaker_make, cfg);
	return n ? registry_of(n, struct breaker, named) : NULL;
}

void breaker_apply(struct breaker *b, const struct lv_breaker *cfg, uint64_t now_ms)
{
	pthread_mutex_lock(&b->lock);
	struct lv_window shape = b->cfg.window; /* what the window is now */
	if (cfg->window.calls && cfg->window.calls != shape.calls) {
		if (!shape.calls)
			window_clear(b); /* from a duration: the calls' order is gone, the ring starts empty */
		if (ring_resize(b, (uint32_t)cfg->window.calls))
			shape = cfg->window;
		else
			log_error("breaker %s: out of memory resizing its window; it keeps its old one", b->named.name);
	} else if (cfg->window.ms && cfg->window.ms != shape.ms) {
		uint64_t calls, failures, slow;
		window_sum(b, now_ms, &calls, &failures, &slow);
		window_clear(b);
		free(b->ring);
		b->ring = NULL;
		b->ring_cap = 0;
		b->cfg.window = shape = cfg->window; /* the new buckets' length */
		struct brk_bucket *k = window_bucket(b, now_ms);
		k->calls = (uint32_t)calls;
		k->failures = (uint32_t)failures;
		k->slow = (uint32_t)slow;
	}
	b->cfg = *cfg;
	b->cfg.window = shape;
	pthread_mutex_unlock(&b->lock);
}

void breaker_put(struct breaker *b)
{
	if (!b || !registry_put(&breakers, &b->named))
		return;
	pthread_mutex_destroy(&b->lock);
	free(b->ring);
	free(b);
}

/* ---- rendering ----------------------------------------------------------------- */

static void breaker_fill(struct named *n, void *out, void *arg)
{
	breaker_stats(registry_of(n, struct breaker, named), *(const uint64_t *)arg, out);
}

void breaker_render_prometheus(FILE *f, uint64_t now_ms)
{
	struct registry_snapshot snap;
	if (registry_snapshot(&breakers, sizeof(struct breaker_stats), breaker_fill, &now_ms, &snap) != LV_OK)
		return;
	size_t n = snap.n, i;
	const struct breaker_stats *st = snap.figures;
	const char **names = snap.names;
	fprintf(f, "# HELP levee_breaker_state The breaker's state: 1 for the state it is in\n"
	           "# TYPE levee_breaker_state gauge\n");
	for (i = 0; i < n; i++)
		for (int s = 0; s < BRK__STATES; s++)
			fprintf(f, "levee_breaker_state{breaker=\"%s\",state=\"%s\"} %d\n", names[i], breaker_state_names[s],
			        st[i].state == s);
	fprintf(f, "# HELP levee_breaker_forced 1 while the breaker is forced open or closed by hand\n"
	           "# TYPE levee_breaker_forced gauge\n");
	for (i = 0; i < n; i++)
		fprintf(f, "levee_breaker_forced{breaker=\"%s\"} %d\n", names[i], st[i].forced != BRK_FORCE_NONE);
	fprintf(f, "# HELP levee_breaker_transitions_total Transitions of the breaker, by the state entered\n"
	           "# TYPE levee_breaker_transitions_total counter\n");
	for (i = 0; i < n; i++)
		for (int s = 0; s < BRK__STATES; s++)
			fprintf(f, "levee_breaker_transitions_total{breaker=\"%s\",state=\"%s\"} %" PRIu64 "\n", names[i],
			        breaker_state_names[s], st[i].transitions[s]);
	static const struct {
		const char *metric, *help, *label, *value[3];
		size_t off[3];
	} families[] = {
	    {"levee_breaker_admissions_total", "Calls the breaker was asked about, by its answer", "answer",
	     {"pass", "probe", "reject"},
	     {offsetof(struct breaker_stats, passed), offsetof(struct breaker_stats, probes),
	      offsetof(struct breaker_stats, rejected)}},
	    {"levee_breaker_outcomes_total", "Outcomes the breaker counted, and those it ignored", "result",
	     {"success", "failure", "ignored"},
	     {offsetof(struct breaker_stats, ok), offsetof(struct breaker_stats, failed),
	      offsetof(struct breaker_stats, ignored)}},
	};
	for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", families[k].metric, families[k].help, families[k].metric);
		for (i = 0; i < n; i++)
			for (unsigned j = 0; j < 3; j++) {
				uint64_t v;
				memcpy(&v, (const char *)&st[i] + families[k].off[j], sizeof(v));
				fprintf(f, "%s{breaker=\"%s\",%s=\"%s\"} %" PRIu64 "\n", families[k].metric, names[i],
				        families[k].label, families[k].value[j], v);
			}
	}
	fprintf(f, "# HELP levee_breaker_slow_calls_total Calls at or over the breaker's slow_call\n"
	           "# TYPE levee_breaker_slow_calls_total counter\n");
	for (i = 0; i < n; i++)
		fprintf(f, "levee_breaker_slow_calls_total{breaker=\"%s\"} %" PRIu64 "\n", names[i], st[i].slowed);
	fprintf(f, "# HELP levee_breaker_window_calls Calls in the breaker's window now\n"
	           "# TYPE levee_breaker_window_calls gauge\n");
	for (i = 0; i < n; i++)
		fprintf(f, "levee_breaker_window_calls{breaker=\"%s\"} %" PRIu64 "\n", names[i], st[i].calls);
	fprintf(f, "# HELP levee_breaker_window_failure_ratio Failed share of the window's calls (0-1)\n"
	           "# TYPE levee_breaker_window_failure_ratio gauge\n");
	for (i = 0; i < n; i++)
		fprintf(f, "levee_breaker_window_failure_ratio{breaker=\"%s\"} %.4f\n", names[i], st[i].failure_rate / 100.0);
	fprintf(f, "# HELP levee_breaker_window_slow_ratio Slow share of the window's calls (0-1)\n"
	           "# TYPE levee_breaker_window_slow_ratio gauge\n");
	for (i = 0; i < n; i++)
		fprintf(f, "levee_breaker_window_slow_ratio{breaker=\"%s\"} %.4f\n", names[i], st[i].slow_rate / 100.0);
	registry_snapshot_done(&breakers, &snap);
}

/* `s` as a JSON string body: the reasons are levee's own text, but a name
 * could in principle hold nothing to escape; quotes and backslashes are
 * escaped anyway. */
static void json_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
}

void breaker_status_json(FILE *f, uint64_t now_ms)
{
	static const char *const forced[] = {"", "open", "closed"};
	pthread_mutex_lock(&breakers.lock);
	fputc('[', f);
	REGISTRY_EACH(&breakers, struct breaker, named, b) {
		struct breaker_stats s;
		breaker_stats(b, now_ms, &s);
		fprintf(f,
		        "%s{\"name\":\"%s\",\"state\":\"%s\",\"forced\":\"%s\",\"forced_left_ms\":%" PRIu64
		        ",\"window\":{\"calls\":%" PRIu64 ",\"failures\":%" PRIu64 ",\"slow\":%" PRIu64
		        ",\"failure_rate\":%.1f,\"slow_rate\":%.1f},\"open_left_ms\":%" PRIu64 ",\"trips\":%u,"
		        "\"probes_out\":%u,\"probes_ok\":%u,\"ramp_share\":%.2f,\"rejected\":%" PRIu64 ",\"reason\":\"",
		        &b->named == breakers.head ? "" : ",", b->named.name, breaker_state_names[s.state], forced[s.forced],
		        s.forced_left_ms, s.calls, s.failures, s.slow, s.failure_rate, s.slow_rate, s.open_left_ms, s.trips,
		        s.probes_out, s.probes_ok, s.ramp_share, s.rejected);
		json_text(f, s.reason);
		fputs("\"}", f);
	}
	fputc(']', f);
	pthread_mutex_unlock(&breakers.lock);
}
