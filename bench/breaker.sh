#!/usr/bin/env bash
# What a closed circuit breaker costs on the hot path: levee pass-through
# with no protection and through a closed breaker plus a semaphore bulkhead,
# beside nginx proxy_pass, side by side in one run of
# ../shared/bench/peers.sh. Prints the peers' table, levee's ratios and the
# cost in microseconds per request.
#
#   bench/breaker.sh                    DUR=8 CONN=50 BODY=1024 by default (peers.sh's knobs)
#
# The outage case (an upstream failing for 20 s under 100 rps, levee and
# nginx side by side) is bench/outage.py.
#
# Loopback only: ports 17001-17099.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_prepare
bench_run "levee-pass|$here/policies/passthrough.ini|17040" \
	"levee-breaker|$here/policies/breaker_bulkhead.ini|17052"
bench_compare levee-breaker levee-pass nginx-proxy_pass "a closed breaker and a semaphore bulkhead cost <= 3% of pass-through rps"
awk '
	{ for (i = 2; i <= NF; i++) { split($i, kv, "="); val[$1, kv[1]] = kv[2] } }
	END {
		p = val["levee-pass", "rps"] + 0; r = val["levee-breaker", "rps"] + 0
		if (p && r) printf "%-36s %+.2f us per request\n", "levee-breaker cost:", 1e6 / r - 1e6 / p
	}' "$bench_out"
