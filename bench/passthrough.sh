#!/usr/bin/env bash
# levee pass-through against nginx proxy_pass and HAProxy, side by side in one
# run of ../shared/bench/peers.sh (same machine, same upstream, same wrk load,
# one worker each). Prints the peers' table, then levee's ratios.
#
#   bench/passthrough.sh                 DUR=8 CONN=50 BODY=1024 by default (peers.sh's knobs)
#   PEERS=/path/to/peers.sh bench/passthrough.sh
#
# Loopback only: ports 17001-17099.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
peers=${PEERS:-$here/../../shared/bench/peers.sh}
if [ ! -f "$peers" ]; then
	echo "passthrough: no peers script at $peers (set PEERS=/path/to/peers.sh)" >&2
	exit 1
fi

"$root/deploy/install-deps.sh" --bench
cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-release" --target levee

# peers.sh starts each target with `bash -c "exec CMD"`, so quote the paths.
levee_cmd="$(printf '%q' "$root/build-release/levee") --policy $(printf '%q' "$here/policies/passthrough.ini")"
levee_cmd+=" --upstream 127.0.0.1:17001 --listen 127.0.0.1:17040 --admin 127.0.0.1:17041"
export TARGETS="levee-pass|$levee_cmd|http://127.0.0.1:17040/x"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "passthrough: $(nproc) cores; DUR=${DUR:-8}s CONN=${CONN:-50} BODY=${BODY:-1024}"
bash "$peers" | tee "$out"

# Lines look like: "name   rps=12345.67   p50=1.02ms   p99=3.40ms   [non-2xx=N]".
awk '
function us(v) { # wrk latency ("850.00us", "1.23ms", "1.02s", "1.50m") in microseconds
	if (v ~ /us$/) return v + 0
	if (v ~ /ms$/) return v * 1000
	if (v ~ /m$/)  return v * 60e6
	if (v ~ /s$/)  return v * 1e6
	return -1
}
{
	for (i = 2; i <= NF; i++) {
		split($i, kv, "=")
		val[$1, kv[1]] = kv[2]
	}
}
function compare(peer) {
	if (val[peer, "rps"] == "" || val[peer, "rps"] + 0 == 0) {
		printf "%-36s no result for %s\n", "levee-pass / " peer ":", peer
		return
	}
	lp = us(val["levee-pass", "p99"]); pp = us(val[peer, "p99"])
	printf "%-36s rps %.2fx   p99 %s vs %s (%s)\n", "levee-pass / " peer ":",
		val["levee-pass", "rps"] / val[peer, "rps"], val["levee-pass", "p99"], val[peer, "p99"],
		(lp < 0 || pp < 0) ? "?" : (lp <= pp ? "no worse" : sprintf("%.2fx worse", lp / pp))
}
END {
	print ""
	if (val["levee-pass", "rps"] == "" || val["levee-pass", "rps"] + 0 == 0) {
		print "passthrough: levee-pass produced no result (did it start? try its command by hand)"
		exit 1
	}
	if (val["levee-pass", "non-2xx"] != "")
		print "passthrough: WARNING levee-pass answered non-2xx: " val["levee-pass", "non-2xx"]
	compare("nginx-proxy_pass")
	compare("haproxy")
	print "target: rps >= 1.15x nginx-proxy_pass, with p99 no worse"
}' "$out"
