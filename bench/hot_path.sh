#!/usr/bin/env bash
# Instructions per request on levee's hot path, this tree against an earlier
# commit, counted by callgrind (no other load on the machine changes them):
#
#   bench/hot_path.sh BASE_REV      e.g. bench/hot_path.sh 6d72b42
#
# Both trees are built as Release (BASE_REV in a temporary worktree). Each
# levee runs one worker under callgrind in front of nginx (a fixed 1 KiB
# answer); wrk -t1 -c10 warms it for 3 s, then 10 s are counted
# (callgrind_control -z, then -d). Three policies:
#   passthrough  bench/policies/passthrough.ini: no cache, no access log
#   logged       bench/policies/hot_log.ini: no cache, the access log to a file
#   l1-hit       bench/policies/hot_hit.ini: every request an L1 hit, logged
# Loopback ports 17501-17503.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
base=${1:?usage: bench/hot_path.sh BASE_REV}
for tool in valgrind callgrind_control callgrind_annotate wrk nginx; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (deploy/install-deps.sh --bench)" >&2; exit 1; }
done
d=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	git -C "$root" worktree remove --force "$d/base" >/dev/null 2>&1 || true
	rm -rf "$d" "$bench_out"
}
trap cleanup EXIT

build() { # build DIR SRC
	cmake -S "$2" -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build "$1" --target levee >/dev/null
}
git -C "$root" worktree add -q --detach "$d/base" "$base"
build "$d/build-base" "$d/base"
build "$root/build-release" "$root"

mkdir -p "$d/up"
body=$(head -c 1024 /dev/zero | tr '\0' x)
printf 'daemon off; worker_processes 1; pid %s/up.pid; error_log %s/up.err;\nevents { worker_connections 4096; }\nhttp { access_log off; keepalive_requests 1000000;\n  server { listen 127.0.0.1:17501 backlog=4096;\n    location / { return 200 "%s"; } } }\n' \
	"$d" "$d" "$body" >"$d/up.conf"
nginx -c "$d/up.conf" -p "$d/up" &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:17501/ && break; sleep 0.1; done

# count NAME BINARY POLICY: prints instructions per request
count() {
	local n f
	rm -f "$d/access.log"
	read -r n f < <(HOT_LOG="$d/access.log" callgrind_run "$d" "$1" 17502 "$2" --policy "$3" \
		--upstream 127.0.0.1:17501 --listen 127.0.0.1:17502 --admin 127.0.0.1:17503)
	echo $(($(callgrind_total "$f") / n))
}

echo "bench: instructions per request, $base against $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo +changes)"
printf '%-12s %12s %12s %8s\n' policy base this change
for spec in "passthrough|passthrough.ini" "logged|hot_log.ini" "l1-hit|hot_hit.ini"; do
	IFS='|' read -r name pol <<<"$spec"
	# the base may predate a policy's keys: it gets the same file
	a=$(count "$name-base" "$d/build-base/levee" "$here/policies/$pol")
	b=$(count "$name-this" "$root/build-release/levee" "$here/policies/$pol")
	printf '%-12s %12d %12d %+7.1f%%\n' "$name" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { print (b - a) * 100 / a }')"
done
