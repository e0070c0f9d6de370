#!/usr/bin/env bash
# Installs what levee needs to build and test, from Debian 12 packages only.
#
#   deploy/install-deps.sh            build + test dependencies
#   deploy/install-deps.sh --bench    also the benchmark peers (nginx, HAProxy, Varnish, wrk)
#
# Idempotent: when every package is already installed it does nothing, so
# tests/run and deploy/demo.sh call it on every run. Uses sudo only when not root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Build: compiler, CMake/Ninja, and the C libraries levee links (llhttp comes as
# C sources in node-llhttp). clang and libclang-rt-14-dev give libFuzzer.
build_packages=(
	build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
	libevent-dev node-llhttp libhiredis-dev librdkafka-dev libinih-dev
)
# Tests: cmocka for unit tests; real Redis and Sentinel, pytest and curl for
# the integration tests; procps for ps/pgrep in test helpers.
test_packages=(
	libcmocka-dev redis-server redis-sentinel python3 python3-pytest curl procps
)
# Benchmarks only: the peers that ../shared/bench/peers.sh runs levee against.
bench_packages=(nginx-light haproxy varnish wrk)

usage() {
	sed -n '2,8s/^# \{0,1\}//p' "$0"
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "install-deps: need root or sudo to run: $*" >&2
		exit 1
	fi
}

# Prints the packages of "$@" that are not fully installed ("ii" in dpkg).
missing_packages() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || echo "$p"
	done
}

install_debian_packages() {
	local missing
	mapfile -t missing < <(missing_packages "$@")
	if [ "${#missing[@]}" -eq 0 ]; then
		echo "install-deps: all ${#} Debian packages already installed"
		return 0
	fi
	echo "install-deps: installing ${missing[*]}"
	# Another apt/dpkg may be running (unattended upgrades on a new machine):
	# wait for its lock rather than fail.
	local apt_opts=(-o DPkg::Lock::Timeout=600 -q)
	# A package left unpacked but unconfigured is "installed" to apt but not
	# usable; finish any interrupted dpkg run first.
	if [ -n "$(as_root dpkg --audit 2>/dev/null)" ]; then
		as_root dpkg --configure -a
	fi
	as_root apt-get "${apt_opts[@]}" update
	as_root apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
}

main() {
	local bench=0 arg
	for arg in "$@"; do
		case "$arg" in
		--bench) bench=1 ;;
		-h | --help) usage; exit 0 ;;
		*) echo "install-deps: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
		esac
	done

	local pkgs=("${build_packages[@]}" "${test_packages[@]}")
	[ "$bench" -eq 1 ] && pkgs+=("${bench_packages[@]}")
	install_debian_packages "${pkgs[@]}"
}

main "$@"
