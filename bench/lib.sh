# Shared by the bench scripts: build levee, run ../shared/bench/peers.sh with
# levee targets added, and print levee's ratios to named peers.
# Source it; then call bench_run "name|policy|port" ... and bench_compare.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
peers=${PEERS:-$here/../../shared/bench/peers.sh}
bench_out=$(mktemp)
trap 'rm -f "$bench_out"' EXIT

bench_prepare() {
	if [ ! -f "$peers" ]; then
		echo "bench: no peers script at $peers (set PEERS=/path/to/peers.sh)" >&2
		exit 1
	fi
	"$root/deploy/install-deps.sh" --bench
	cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$root/build-release" --target levee
}

# bench_run "name|policy file|port[|path]" ...: one levee per spec, admin on
# port+1, loaded on `path` (default /x).
bench_run() {
	local spec name policy port path targets=""
	for spec in "$@"; do
		IFS='|' read -r name policy port path <<<"$spec"
		# peers.sh starts each target with `bash -c "exec CMD"`, so quote the paths.
		local cmd
		cmd="$(printf '%q' "$root/build-release/levee") --policy $(printf '%q' "$policy")"
		cmd+=" --upstream 127.0.0.1:17001 --listen 127.0.0.1:$port --admin 127.0.0.1:$((port + 1))"
		targets+="${targets:+;}$name|$cmd|http://127.0.0.1:$port${path:-/x}"
	done
	export TARGETS="$targets"
	echo "bench: $(nproc) cores; DUR=${DUR:-8}s CONN=${CONN:-50} BODY=${BODY:-1024}; commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null)"
	bash "$peers" | tee "$bench_out"
}

# bench_compare TARGET PEER [PEER...] "target text"
bench_compare() {
	local target=$1 goal=${*: -1}
	local peers_list=("${@:2:$#-2}")
	awk -v t="$target" -v goal="$goal" -v plist="${peers_list[*]}" '
	function us(v) { # wrk latency ("850.00us", "1.23ms", "1.02s") in microseconds
		if (v ~ /us$/) return v + 0
		if (v ~ /ms$/) return v * 1000
		if (v ~ /m$/)  return v * 60e6
		if (v ~ /s$/)  return v * 1e6
		return -1
	}
	{ for (i = 2; i <= NF; i++) { split($i, kv, "="); val[$1, kv[1]] = kv[2] } }
	END {
		print ""
		if (val[t, "rps"] == "" || val[t, "rps"] + 0 == 0) {
			print "bench: " t " produced no result (did it start? try its command by hand)"; exit 1
		}
		if (val[t, "non-2xx"] != "") print "bench: WARNING " t " answered non-2xx: " val[t, "non-2xx"]
		n = split(plist, ps, " ")
		for (k = 1; k <= n; k++) {
			p = ps[k]
			if (val[p, "rps"] == "" || val[p, "rps"] + 0 == 0) { printf "%-36s no result for %s\n", t " / " p ":", p; continue }
			lp = us(val[t, "p99"]); pp = us(val[p, "p99"])
			printf "%-36s rps %.2fx   p99 %s vs %s (%s)\n", t " / " p ":", val[t, "rps"] / val[p, "rps"],
				val[t, "p99"], val[p, "p99"], (lp < 0 || pp < 0) ? "?" : (lp <= pp ? "no worse" : sprintf("%.2fx worse", lp / pp))
		}
		print "target: " goal
	}' "$bench_out"
}

# callgrind_run DIR NAME PORT CMD...: CMD (a levee listening on PORT) under
# callgrind; wrk -t1 -c10 warms it for 3 s, then 10 s are counted
# (callgrind_control -z, then -d). Prints "REQUESTS FILE": the requests of
# the counted 10 s and callgrind's output for them.
callgrind_run() {
	local d=$1 name=$2 port=$3 v n out
	shift 3
	valgrind --tool=callgrind --callgrind-out-file="$d/cg.$name.%p" "$@" >/dev/null 2>"$d/vg.$name.err" &
	v=$!
	for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$port/x" && break; sleep 0.2; done
	wrk -t1 -c10 -d3s "http://127.0.0.1:$port/x" >/dev/null 2>&1
	callgrind_control -z "$v" >/dev/null 2>&1
	out=$(wrk -t1 -c10 -d10s "http://127.0.0.1:$port/x" 2>&1)
	n=$(awk '/requests in/{print $1}' <<<"$out")
	callgrind_control -d "$v" >/dev/null 2>&1
	kill "$v"
	wait "$v" 2>/dev/null || true
	echo "$n $(ls "$d"/cg."$name".*.1)"
}

# callgrind_total FILE: the instructions callgrind counted in FILE.
callgrind_total() {
	callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
