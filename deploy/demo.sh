#!/usr/bin/env bash
# Runs levee in front of a small demo service, all on loopback:
#
#   demo service   127.0.0.1:8080    deploy/demo_service.py (JSON API, no caching headers)
#   levee traffic  127.0.0.1:15001   -> 127.0.0.1:8080
#   levee admin    127.0.0.1:15000   /healthz /readyz /metrics /status
#
# Installs dependencies and builds a Release binary (build-release/) first.
# levee runs with deploy/demo.ini: the in-process cache only, no Redis, no Kafka.
# Ctrl-C stops both.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/deploy/install-deps.sh" --build
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release --target levee

service_pid=""
levee_pid=""
# shellcheck disable=SC2317 # called from the traps below
stop() {
	trap - INT TERM EXIT
	# SIGTERM makes levee drain; it exits as soon as no connection is left.
	if [ -n "$levee_pid" ]; then kill -TERM "$levee_pid" 2>/dev/null || true; fi
	if [ -n "$service_pid" ]; then kill -TERM "$service_pid" 2>/dev/null || true; fi
	wait 2>/dev/null || true
	echo "demo: stopped"
}
trap 'stop; exit 130' INT TERM
trap stop EXIT

python3 "$root/deploy/demo_service.py" --host 127.0.0.1 --port 8080 &
service_pid=$!
for _ in $(seq 50); do
	curl -s -o /dev/null http://127.0.0.1:8080/ && break
	kill -0 "$service_pid" 2>/dev/null || { echo "demo: the demo service did not start (is port 8080 taken?)" >&2; exit 1; }
	sleep 0.1
done

cat <<'MSG'

demo: levee on http://127.0.0.1:15001 in front of the demo service on :8080. Try, in another terminal:

  curl -i http://127.0.0.1:15001/api/users/1      # Cache-Status: levee; fwd=miss; fwd-status=200; stored; ttl=30
  curl -i http://127.0.0.1:15001/api/users/1      # Cache-Status: levee; hit; ttl=29 (the service is not asked)
  curl -i -X PUT -d '{"name": "Ada L."}' http://127.0.0.1:15001/api/users/1   # the write purges the entry
  curl -i http://127.0.0.1:15001/api/users/1      # a miss again, with the new name
  curl -i http://127.0.0.1:15001/                 # not a cached route: plain pass-through
  curl -s http://127.0.0.1:15000/metrics | grep '^levee_'           # admin: /healthz /readyz /metrics /status
  curl -s http://127.0.0.1:15000/status
  curl -s -X POST 'http://127.0.0.1:15000/tier?force=busy&for=1m'   # force the degradation tier "busy"
  curl -i http://127.0.0.1:15001/                 # 503 tier-shed: an optional route; /api/users/1 still answers

Ctrl-C stops levee and the demo service.

MSG

"$root/build-release/levee" --policy "$root/deploy/demo.ini" \
	--upstream 127.0.0.1:8080 --listen 127.0.0.1:15001 --admin 127.0.0.1:15000 &
levee_pid=$!
# A non-interactive shell starts background jobs with SIGINT ignored, so Ctrl-C
# reaches only this script; its trap turns that into SIGTERM (drain) for both.
rc=0
wait "$levee_pid" || rc=$?
levee_pid=""
echo "demo: levee exited with status $rc"
exit "$rc"
