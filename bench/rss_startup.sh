#!/usr/bin/env bash
# levee's start-up time (exec -> /readyz 200, median of 5) and its RSS with
# 1000 idle keep-alive connections open. Builds Release into build-release/
# first. Loopback only: ports 17150-17152. Extra arguments go to
# bench/rss_startup.py (--policy FILE, --runs N, --conns N).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

"$root/deploy/install-deps.sh"
cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build-release" --target levee

exec python3 "$here/rss_startup.py" --levee "$root/build-release/levee" "$@"
