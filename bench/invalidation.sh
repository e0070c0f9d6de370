#!/usr/bin/env bash
# Invalidation over a real Kafka broker: the latency from a write answered at
# levee A to levee B no longer serving the old entry (p50/p99, under a steady
# read load on B), and the cost of publishing on writes (POST throughput
# through levee with Kafka, without it, and through nginx proxy_pass).
#
#   bench/invalidation.sh     WRITES=300 DUR=8 CONN=50 READ_CONN=8; ports 17201-17208
#
# The broker is the tests' (tests/integration/kafka.py: KRaft, one node,
# jars from Maven Central); the upstream and nginx proxy_pass are nginx.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
"$root/deploy/install-deps.sh" --bench
"$root/deploy/install-kafka.sh" >/dev/null
cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-release" --target levee >/dev/null
exec python3 "$here/invalidation.py"
