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
#    without tiers (tiers_off.ini), one worker each, three pairs interleaved
#    in one run of ../shared/bench/peers.sh, beside nginx proxy_pass.
#
#   bench/tiers.sh             SECONDS_OVERLOAD=20, DUR=8 CONN=50 BODY=1024 (peers.sh's knobs)
#   SKIP_OVERLOAD=1 bench/tiers.sh      the hot path only
#   SKIP_PEERS=1                        without the peers.sh run (CPU per request only)
#   ROUNDS=4 HOT_DUR=5                  the CPU-per-request rounds
#
# Loopback only: ports 17001-17099 (peers.sh; levee on 17070-17081) and
# 17401-17416 (tiers.py).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_prepare
if [ -z "${SKIP_OVERLOAD:-}" ]; then
	python3 "$here/tiers.py" --levee "$root/build-release/levee" --seconds "${SECONDS_OVERLOAD:-20}"
	echo
fi
if [ -z "${SKIP_PEERS:-}" ]; then
	# Three pairs, interleaved: one run swings by several percent on this machine
	# (more when it is shared), and the difference sought is a percent or two.
	specs=()
	for i in 1 2 3; do
		specs+=("levee-notiers-$i|$here/policies/tiers_off.ini|$((17066 + 4 * i))")
		specs+=("levee-tiers-$i|$here/policies/tiers_on.ini|$((17068 + 4 * i))")
	done
	bench_run "${specs[@]}"
	bench_compare levee-tiers-1 levee-notiers-1 nginx-proxy_pass "tier evaluation costs <= 2% of pass-through rps"
	awk '
		{ for (i = 2; i <= NF; i++) { split($i, kv, "="); val[$1, kv[1]] = kv[2] } }
		END {
			for (i = 1; i <= 3; i++) {
				a = val["levee-notiers-" i, "rps"]; b = val["levee-tiers-" i, "rps"]
				if (a && b) printf "pair %d: levee-tiers / levee-notiers %.3fx\n", i, b / a
				sa += a; sb += b
			}
			if (sa && sb) printf "%-36s %.3fx (sums of the three pairs); %+.2f us per request\n",
				"levee-tiers / levee-notiers:", sb / sa, 3e6 / sb - 3e6 / sa
		}' "$bench_out"
fi

# CPU per request, the figure a shared machine disturbs least: throughput
# moves with whatever else runs, but the CPU time levee spends per request
# (all its threads, from /proc/PID/task/*/schedstat, in ns) much less. Own
# upstream (as peers.sh's) and the two levees on 17082-17086; ROUNDS
# interleaved wrk runs of HOT_DUR seconds each.
cpu_ns() { # pid: CPU time of all its threads, in ns
	cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'
}
hot_cpu() {
	local d pids=() name port pid out n c0 c1 spec r
	d=$(mktemp -d -t tiers-hot.XXXX)
	mkdir -p "$d/up"
	printf 'daemon off; worker_processes 1; pid %s/up.pid; error_log %s/up.err;\nevents { worker_connections 4096; }\nhttp { access_log off; keepalive_requests 1000000;\n  server { listen 127.0.0.1:17082 backlog=4096;\n    location / { return 200 "%s"; } } }\n' \
		"$d" "$d" "$(head -c "${BODY:-1024}" /dev/zero | tr '\0' x)" >"$d/up.conf"
	nginx -c "$d/up.conf" -p "$d/up" & pids+=($!)
	"$root/build-release/levee" --policy "$here/policies/tiers_off.ini" --upstream 127.0.0.1:17082 \
		--listen 127.0.0.1:17083 --admin 127.0.0.1:17084 >/dev/null 2>&1 & pids+=($!)
	local p_off=$!
	"$root/build-release/levee" --policy "$here/policies/tiers_on.ini" --upstream 127.0.0.1:17082 \
		--listen 127.0.0.1:17085 --admin 127.0.0.1:17086 >/dev/null 2>&1 & pids+=($!)
	local p_on=$!
	for port in 17082 17083 17085; do
		for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/x" && break; sleep 0.1; done
	done
	echo "bench: CPU per request, ${ROUNDS:-4} interleaved rounds of ${HOT_DUR:-5} s, wrk -t1 -c${CONN:-50}"
	for r in $(seq "${ROUNDS:-4}"); do
		for spec in "levee-notiers|17083|$p_off" "levee-tiers|17085|$p_on"; do
			IFS='|' read -r name port pid <<<"$spec"
			c0=$(cpu_ns "$pid")
			out=$(wrk -t1 -c"${CONN:-50}" -d"${HOT_DUR:-5}s" "http://127.0.0.1:$port/x" 2>&1)
			c1=$(cpu_ns "$pid")
			n=$(awk '/requests in/{print $1}' <<<"$out")
			printf '%-16s round %d rps=%-10s cpu_ns_per_req=%s\n' "$name" "$r" \
				"$(awk '/Requests\/sec/{print $2}' <<<"$out")" "$(( (c1 - c0) / n ))"
		done
	done | tee "$d/cpu.out"
	awk '{ split($4, kv, "="); split($5, cv, "="); rps[$1] += kv[2]; cpu[$1] += cv[2]; k[$1]++ }
		END {
			printf "%-36s rps %.3fx, CPU per request %.0f vs %.0f ns (%+.1f%%)\n", "levee-tiers / levee-notiers:",
				rps["levee-tiers"] / rps["levee-notiers"], cpu["levee-tiers"] / k["levee-tiers"],
				cpu["levee-notiers"] / k["levee-notiers"],
				100 * (cpu["levee-tiers"] / cpu["levee-notiers"] - 1)
		}' "$d/cpu.out"
	curl -s http://127.0.0.1:17086/metrics | grep -E '^levee_tier_(level|transitions_total)' | tr '\n' ' '
	echo "(levee-tiers: level and transitions at the end)"
	if command -v valgrind >/dev/null && [ -z "${SKIP_CALLGRIND:-}" ]; then
		hot_callgrind "$d"
	fi
	kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	rm -rf "$d"
}
# Instructions per request, which no other load on the machine changes:
# each levee under callgrind, 10 s of wrk -c10 counted after 3 s of warm-up
# (callgrind_control -z, then -d). The tick's own instructions (inclusive
# cost of tick(), about 10 per second of wall time, and callgrind slows the
# requests 50-fold, not the ticks) are shown apart and taken out of the
# per-request figure; what is left is what tiers add to a request.
hot_callgrind() {
	local d=$1 pol n f tot tk name
	echo "bench: instructions per request (callgrind, wrk -t1 -c10 -d10s after a 3 s warm-up)"
	for pol in tiers_off tiers_on; do
		read -r n f < <(callgrind_run "$d" "$pol" 17087 "$root/build-release/levee" \
			--policy "$here/policies/$pol.ini" --upstream 127.0.0.1:17082 --listen 127.0.0.1:17087 \
			--admin 127.0.0.1:17088)
		tot=$(callgrind_total "$f")
		tk=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null | awk '$NF ~ /levee\]$/ && $(NF-1) == "???:tick" { gsub(",", "", $1); print $1 }')
		name=levee-notiers
		[ "$pol" = tiers_on ] && name=levee-tiers
		printf '%-16s requests=%s instructions_per_request=%d tick_instructions=%s (excluded)\n' \
			"$name" "$n" "$(( (tot - ${tk:-0}) / n ))" "${tk:-0}"
	done
}

hot_cpu
