/*
 * route_index.c - choosing a request's route without trying every route.
 *
 * The rule is the linear one (policy.h): the first route in file order whose
 * pattern and methods match wins. The index only decides which routes are
 * worth asking, so route_matches() stays the one definition of what a
 * pattern means.
 *
 * Every path a route matches starts with the route's literal: a prefix
 * route's whole pattern, or a glob's bytes before its first '*' (before it
 * the glob is literal bytes and '/', compared as they are). So the index is
 * a radix tree over the literals, built once per snapshot and read-only
 * afterwards: no lock, no allocation per request, shared by every worker.
 * Walking it along the path reaches exactly the routes whose literal the
 * path starts with (the candidates), each node holding the routes whose
 * literal ends there in ascending file order. They are asked in that order,
 * node by node, skipping any numbered at or after the best match so far, so
 * the answer is the lowest-numbered matching candidate: the linear scan's.
 *
 * Cost per request: the walk is at most one pass over the path, plus one
 * route_matches() per candidate below the winner. Policies where routes
 * fan out on literal bytes ("/api/users/" then a wildcard, "/static/",
 * "/v1/orders/" then a wildcard) give a handful of candidates whatever the
 * route count. Routes whose literal is short, such as thousands of patterns
 * that start with '/' and a wildcard segment, are all candidates for every
 * path and are tried in order as before: matching degrades to the linear
 * scan of those routes, never worse.
 *
 * Why not a segment trie with wildcard edges: it would answer those
 * wildcard-first patterns well too, but it must backtrack across wildcard,
 * literal and "a*b" edges and merge their answers in file order, a second
 * copy of the glob semantics that could drift from route_matches(). Literal
 * prefixes
 * keep the index obviously equal to the scan, which the unit tests check on
 * random and adversarial policies.
 */
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

struct route_node {
	const char *edge;        /* bytes from the parent to here, inside a route's pattern */
	uint32_t edge_len;       /* >= 1 except at the root */
	uint32_t child, nchild;  /* children: nodes[child, child + nchild), by edge[0] ascending */
	uint32_t first, nroutes; /* routes whose literal ends here: order[first, first + nroutes) */
};

struct route_index {
	const struct lv_route *routes;
	uint32_t *order;          /* route numbers, by literal and then by number */
	struct route_node *nodes; /* nodes[0] is the root, the empty literal */
	uint32_t nnodes;
};

struct route_key {
	const char *lit;
	uint32_t len;
	uint32_t id;
};

static int route_key_cmp(const void *a, const void *b)
{
	const struct route_key *x = a, *y = b;
	int c = memcmp(x->lit, y->lit, x->len < y->len ? x->len : y->len);
	if (c != 0)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Fills node `at` for keys[lo, hi), which all share their first `depth`
 * bytes. Those of length `depth` end here and, sorted, come first; the rest
 * split by their next byte into children, each placed where its keys stop
 * agreeing (the common prefix of a sorted run is that of its ends). Every
 * child so holds a route or branches, which bounds the tree at 2n + 1 nodes.
 * Recursion depth is at most the longest literal, under LV_PATH_MAX. */
static void route_index_fill(struct route_index *ix, const struct route_key *keys, uint32_t lo,
                             uint32_t hi, uint32_t depth, uint32_t at)
{
	uint32_t i = lo;
	while (i < hi && keys[i].len == depth)
		i++;
	ix->nodes[at].first = lo;
	ix->nodes[at].nroutes = i - lo;

	uint32_t nchild = 0;
	for (uint32_t g = i; g < hi; nchild++) {
		unsigned char c = (unsigned char)keys[g].lit[depth];
		while (g < hi && (unsigned char)keys[g].lit[depth] == c)
			g++;
	}
	uint32_t child = ix->nnodes;
	ix->nodes[at].child = child;
	ix->nodes[at].nchild = nchild;
	ix->nnodes += nchild;

	for (uint32_t g = i; g < hi; child++) {
		unsigned char c = (unsigned char)keys[g].lit[depth];
		uint32_t h = g;
		while (h < hi && (unsigned char)keys[h].lit[depth] == c)
			h++;
		const struct route_key *a = &keys[g], *z = &keys[h - 1];
		uint32_t common = depth + 1;
		while (common < a->len && common < z->len && a->lit[common] == z->lit[common])
			common++;
		ix->nodes[child].edge = a->lit + depth;
		ix->nodes[child].edge_len = common - depth;
		route_index_fill(ix, keys, g, h, common, child);
		g = h;
	}
}

int route_index_build(const struct lv_route *routes, size_t n, struct route_index **out)
{
	struct route_index *ix = calloc(1, sizeof(*ix));
	struct route_key *keys = calloc(n ? n : 1, sizeof(*keys));
	if (ix == NULL || keys == NULL || n > UINT32_MAX / 2 - 1)
		goto fail;
	ix->routes = routes;
	ix->order = calloc(n ? n : 1, sizeof(*ix->order));
	ix->nodes = calloc(2 * n + 1, sizeof(*ix->nodes));
	if (ix->order == NULL || ix->nodes == NULL)
		goto fail;

	for (size_t i = 0; i < n; i++) {
		const struct lv_route *r = &routes[i];
		const char *star = r->kind == LV_MATCH_GLOB ? memchr(r->pattern, '*', r->pattern_len) : NULL;
		keys[i].lit = r->pattern;
		keys[i].len = (uint32_t)(star ? (size_t)(star - r->pattern) : r->pattern_len);
		keys[i].id = (uint32_t)i;
	}
	qsort(keys, n, sizeof(*keys), route_key_cmp);
	for (size_t i = 0; i < n; i++)
		ix->order[i] = keys[i].id;
	ix->nnodes = 1;
	route_index_fill(ix, keys, 0, (uint32_t)n, 0, 0);
	free(keys);
	*out = ix;
	return LV_OK;
fail:
	free(keys);
	route_index_free(ix);
	return LV_ERR;
}

void route_index_free(struct route_index *ix)
{
	if (ix == NULL)
		return;
	free(ix->order);
	free(ix->nodes);
	free(ix);
}

/* The child of `nd` whose edge starts with byte `c`, or NULL. */
static const struct route_node *route_index_child(const struct route_index *ix,
                                                  const struct route_node *nd, unsigned char c)
{
	uint32_t lo = nd->child, hi = nd->child + nd->nchild;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		unsigned char e = (unsigned char)ix->nodes[mid].edge[0];
		if (e == c)
			return &ix->nodes[mid];
		if (e < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct lv_route *route_index_match(const struct route_index *ix, const char *path, size_t len,
                                         unsigned method_bit, struct lv_captures *caps)
{
	const struct route_node *nd = &ix->nodes[0];
	uint32_t best = UINT32_MAX;
	size_t at = 0;
	struct lv_captures got;

	for (;;) {
		for (uint32_t k = 0; k < nd->nroutes; k++) {
			uint32_t id = ix->order[nd->first + k];
			if (id >= best)
				break; /* ascending: the rest of this node comes after the winner */
			if (route_matches(&ix->routes[id], path, len, method_bit, caps ? &got : NULL)) {
				best = id;
				if (caps)
					*caps = got;
				break;
			}
		}
		if (at == len)
			break;
		nd = route_index_child(ix, nd, (unsigned char)path[at]);
		if (nd == NULL || len - at < nd->edge_len || memcmp(nd->edge, path + at, nd->edge_len) != 0)
			break;
		at += nd->edge_len;
	}
	return best == UINT32_MAX ? NULL : &ix->routes[best];
}
