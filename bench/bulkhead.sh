#!/usr/bin/env bash
# What a bulkhead costs: levee pass-through with no bulkhead, through a
# semaphore bulkhead and through a thread bulkhead, beside nginx proxy_pass,
# side by side in one run of ../shared/bench/peers.sh. Prints the peers'
# table, levee's ratios, and the cost of each bulkhead in microseconds per
# request (1/rps with it minus 1/rps without: the listener worker is the
# bottleneck in all three).
#
#   bench/bulkhead.sh                    DUR=8 CONN=50 BODY=1024 by default (peers.sh's knobs)
#
# Loopback only: ports 17001-17099.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_prepare
bench_run "levee-pass|$here/policies/passthrough.ini|17040" \
	"levee-bh-semaphore|$here/policies/bulkhead_semaphore.ini|17044" \
	"levee-bh-thread|$here/policies/bulkhead_thread.ini|17048"
bench_compare levee-pass nginx-proxy_pass "pass-through: no regression past 3% from the last recorded ratio"
bench_compare levee-bh-semaphore levee-pass nginx-proxy_pass "a bulkhead costs <= 3% of pass-through rps"
bench_compare levee-bh-thread levee-pass nginx-proxy_pass "(thread: two hand-offs per request; measured, no target)"
awk '
	{ for (i = 2; i <= NF; i++) { split($i, kv, "="); val[$1, kv[1]] = kv[2] } }
	END {
		p = val["levee-pass", "rps"] + 0
		if (!p) exit
		for (k = 1; k <= 2; k++) {
			t = k == 1 ? "levee-bh-semaphore" : "levee-bh-thread"
			r = val[t, "rps"] + 0
			if (r) printf "%-36s %+.2f us per request\n", t " cost:", 1e6 / r - 1e6 / p
		}
	}' "$bench_out"
