#!/usr/bin/env bash
# levee answering mostly from Redis (L2) against nginx proxy_pass, in one run,
# on the same upstream and the same wrk load.
#
# A steady benchmark of one URL would measure L1: every L2 hit is also put in
# the in-process cache. So levee gets the smallest L1 (1 MiB) and wrk spreads
# its requests over $KEYS URLs (5000 by default, ~7.5 MB of entries), which
# are first warmed into Redis; most requests then miss L1 and hit L2. nginx
# proxy_pass gets the same URL spread. levee's metrics at the end say how many
# answers really came from L2.
#
#   bench/l2_hit.sh          DUR=8 CONN=50 KEYS=5000; loopback ports 17101-17110
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
DUR=${DUR:-8}; CONN=${CONN:-50}; KEYS=${KEYS:-5000}
"$root/deploy/install-deps.sh" --bench
cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-release" --target levee >/dev/null

D=$(mktemp -d -t l2bench.XXXX); chmod 755 "$D"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
mkdir -p "$D/up" "$D/px"
cat > "$D/up.conf" <<C
daemon off; worker_processes 1; pid $D/up.pid; error_log $D/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:17101 reuseport backlog=4096;
    location / { add_header Cache-Control "max-age=300"; return 200 "$body"; } } }
C
cat > "$D/px.conf" <<C
user root; daemon off; worker_processes 1; pid $D/px.pid; error_log $D/px.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream app { server 127.0.0.1:17101; keepalive 64; }
  server { listen 127.0.0.1:17102;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
cat > "$D/levee.ini" <<C
[levee]
workers = 1
access_log = off
[redis]
address = 127.0.0.1:17105
[cache]
memory = 1MiB
[route "all"]
prefix = /
cache_ttl = origin
C
cat > "$D/spread.lua" <<C
math.randomseed(os.time())
request = function() return wrk.format("GET", "/k/" .. math.random(1, $KEYS)) end
C
nginx -c "$D/up.conf" -p "$D/up" & pids+=($!)
nginx -c "$D/px.conf" -p "$D/px" & pids+=($!)
redis-server --port 17105 --bind 127.0.0.1 --save '' --appendonly no --dir "$D" >/dev/null & pids+=($!)
for _ in $(seq 100); do redis-cli -p 17105 ping >/dev/null 2>&1 && break; sleep 0.05; done
"$root/build-release/levee" --policy "$D/levee.ini" --upstream 127.0.0.1:17101 \
	--listen 127.0.0.1:17103 --admin 127.0.0.1:17104 2>"$D/levee.err" & pids+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:17104/readyz && break; sleep 0.05; done

# warm every URL into Redis (one request each, keep-alive)
python3 - "$KEYS" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", 17103)
for i in range(1, int(sys.argv[1]) + 1):
    c.request("GET", "/k/%d" % i); c.getresponse().read()
PY
m() { curl -s http://127.0.0.1:17104/metrics | awk -v k="$1" '$1==k{print $2}'; }
# hits of every route (the series carry a route label)
hits() { curl -s http://127.0.0.1:17104/metrics | awk '$1 ~ /^levee_cache_lookups_total\{.*result="hit"/ {s += $2} END {printf "%d\n", s}'; }
l2_before=$(m 'levee_cache_l2_operations_total{result="hit"}'); l1_before=$(hits)

run() { # name url
	out=$(wrk -t1 -c"$CONN" -d"${DUR}s" --latency -s "$D/spread.lua" "$2" 2>&1)
	rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
	printf '%-26s rps=%-10s p99=%s\n' "$1" "$rps" "$p99"
	echo "$rps" > "$D/$1.rps"
}
echo "l2_hit: $(nproc) cores; DUR=${DUR}s CONN=$CONN KEYS=$KEYS; commit $(git -C "$root" rev-parse --short HEAD)"
run nginx-proxy_pass http://127.0.0.1:17102/
run levee-l2 http://127.0.0.1:17103/
l2=$(( $(m 'levee_cache_l2_operations_total{result="hit"}' | cut -d. -f1) - ${l2_before%.*} ))
l1=$(( $(hits) - l1_before ))
echo "levee answers during the run: $l2 from L2 (then put in L1), $(( l1 - l2 )) from L1"
awk -v a="$(cat "$D/levee-l2.rps")" -v b="$(cat "$D/nginx-proxy_pass.rps")" \
	'BEGIN { printf "levee-l2 / nginx-proxy_pass: rps %.2fx (target >= 1.0x)\n", a / b }'
