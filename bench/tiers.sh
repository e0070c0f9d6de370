#!/usr/bin/env bash
# Degradation tiers, two figures:
#
# 1. Overload (bench/tiers.py): 3x a fragile origin's capacity for 20 s,
#    20% critical / 30% normal / 50% optional, open loop, through nginx
#    proxy_pass, HAProxy (maxconn = the origin's 4 workers, timeout queue
#    1s), levee with a bulkhead alone and levee with tiers: the critical
#    route's success and p99, and goodput.
# 2. The hot path: levee pass-through with two tiers evaluated every 100 ms
#    tick and never in force (bench/policies/tiers_on.ini) against the same
#    without tiers (tiers_off.ini), one worker each, interleaved twice in one
#    run of ../shared/bench/peers.sh, beside nginx proxy_pass.
#
#   bench/tiers.sh             SECONDS_OVERLOAD=20, DUR=8 CONN=50 BODY=1024 (peers.sh's knobs)
#   SKIP_OVERLOAD=1 bench/tiers.sh      the hot path only
#
# Loopback only: ports 17001-17099 (peers.sh; levee on 17070-17077) and
# 17401-17416 (tiers.py).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_prepare
if [ -z "${SKIP_OVERLOAD:-}" ]; then
	python3 "$here/tiers.py" --levee "$root/build-release/levee" --seconds "${SECONDS_OVERLOAD:-20}"
	echo
fi
bench_run "levee-notiers|$here/policies/tiers_off.ini|17070" \
	"levee-tiers|$here/policies/tiers_on.ini|17072" \
	"levee-notiers-2|$here/policies/tiers_off.ini|17074" \
	"levee-tiers-2|$here/policies/tiers_on.ini|17076"
bench_compare levee-tiers levee-notiers nginx-proxy_pass "tier evaluation costs <= 2% of pass-through rps"
awk '
	{ for (i = 2; i <= NF; i++) { split($i, kv, "="); val[$1, kv[1]] = kv[2] } }
	END {
		a = val["levee-notiers", "rps"] + val["levee-notiers-2", "rps"]
		b = val["levee-tiers", "rps"] + val["levee-tiers-2", "rps"]
		if (a && b) printf "%-36s %.3fx (mean of two interleaved runs each); %+.2f us per request\n",
			"levee-tiers / levee-notiers:", b / a, 2e6 / b - 2e6 / a
	}' "$bench_out"
