#!/usr/bin/env bash
# Route matching cost against the number of routes: levee pass-through with
# 1, 250 and 4096 routes, the request matching the last route, one worker,
# side by side with nginx proxy_pass in one run of ../shared/bench/peers.sh.
# Prints the peers' table, then each levee's ratios to the 1-route levee and
# to nginx proxy_pass.
#
#   bench/route_count.sh                 DUR=8 CONN=50 BODY=1024 by default (peers.sh's knobs)
#
# The routes fan out on a literal segment (/api/rN/*) as a large policy's
# do, and the request (/api/items/42) matches only the last, so a scan
# would try every route first. The policies are generated here, not kept.
# Loopback only: ports 17001-17099 (levee on 17060-17065).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

policies=$(mktemp -d)
trap 'rm -rf "$policies" "$bench_out"' EXIT

# route_policy N: N routes, the last one /api/items/*.
route_policy() {
	local n=$1 f="$policies/routes-$1.ini"
	{
		printf '[levee]\nworkers = 1\naccess_log = off\n'
		for ((i = 0; i < n - 1; i++)); do
			printf '[route "r%d"]\nmatch = /api/r%d/*\n' "$i" "$i"
		done
		printf '[route "items"]\nmatch = /api/items/*\n'
	} >"$f"
	echo "$f"
}

bench_prepare
specs=()
port=17060
for n in 1 250 4096; do
	specs+=("levee-routes-$n|$(route_policy "$n")|$port|/api/items/42")
	port=$((port + 2))
done
bench_run "${specs[@]}"
bench_compare levee-routes-250 levee-routes-1 nginx-proxy_pass "rps within 5% of levee-routes-1"
bench_compare levee-routes-4096 levee-routes-1 nginx-proxy_pass "rps within 5% of levee-routes-1"
bench_compare levee-routes-1 nginx-proxy_pass "for scale: pass-through with one route"
