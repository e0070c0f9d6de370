#!/usr/bin/env bash
# levee answering from its in-process cache (L1) against Varnish and nginx
# proxy_cache hits, side by side in one run of ../shared/bench/peers.sh. The
# upstream sends Cache-Control: max-age=300, so every peer stores the answer
# after the first request; levee obeys it with cache_ttl = origin.
#
#   bench/cache_hit.sh                   DUR=8 CONN=50 BODY=1024 by default
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_prepare
bench_run "levee-l1-hit|$here/policies/cache_hit.ini|17042"
bench_compare levee-l1-hit varnish-hit nginx-cache-hit "rps >= 1.3x varnish-hit and >= nginx-cache-hit"
