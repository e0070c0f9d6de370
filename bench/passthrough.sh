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
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_prepare
bench_run "levee-pass|$here/policies/passthrough.ini|17040"
bench_compare levee-pass nginx-proxy_pass haproxy "rps >= 1.15x nginx-proxy_pass, with p99 no worse"
