#!/usr/bin/env bash
# Installs what levee needs to build and test, from Debian 12 packages, plus
# a Kafka broker's jars from Maven Central (deploy/install-kafka.sh).
#
#   deploy/install-deps.sh            build + test dependencies
#   deploy/install-deps.sh --build    build dependencies only (deploy/demo.sh)
#   deploy/install-deps.sh --no-kafka build and unit-test dependencies only: no Kafka broker, no
#                                     deployment-test tools (deploy/Dockerfile)
#   deploy/install-deps.sh --bench    also the benchmark peers (nginx, HAProxy, Varnish, wrk)
#   deploy/install-deps.sh --list ... prints the Debian packages those options select, one a
#                                     line, and installs nothing (tests/deploy reads it)
#
# Idempotent: when everything is already installed it does nothing, so
# tests/run and deploy/demo.sh call it on every run. Uses sudo only when not root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Build: compiler, CMake/Ninja, and the C libraries levee links (llhttp comes as
# C sources in node-llhttp). clang and libclang-rt-14-dev give libFuzzer.
build_packages=(
	build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
	libevent-dev node-llhttp libhiredis-dev librdkafka-dev libinih-dev
)
# Tests: cmocka for unit tests; real Redis and Sentinel, pytest (with xdist,
# which spreads them over processes) and curl for the integration tests;
# procps for ps/pgrep in test helpers.
test_packages=(
	libcmocka-dev redis-server redis-sentinel python3 python3-pytest python3-pytest-xdist curl procps
)
# The integration tests' Kafka: a JRE to run the broker, Maven to fetch it
# (install-kafka.sh) and kcat as the tests' Kafka client.
kafka_packages=(default-jre-headless maven kcat)
# Deployment and operations tests: kubectl (kustomize), promtool (from
# prometheus), iptables and iproute2 for transparent mode in network
# namespaces, chromium for the status page, PyYAML to read manifests. The
# tools Debian lacks (kubeconform, playwright-core) come from install-tools.sh.
# kubectl from Debian's kubernetes-client unless some kubectl is already
# installed (the two packages both own /usr/bin/kubectl).
ops_packages=(prometheus iptables iproute2 chromium python3-yaml)
command -v kubectl >/dev/null 2>&1 || ops_packages+=(kubernetes-client)
# Benchmarks only: the peers that ../shared/bench/peers.sh runs levee against.
bench_packages=(nginx-light haproxy varnish wrk)

usage() {
	sed -n '2,13s/^# \{0,1\}//p' "$0"
}

SCRIPT=install-deps
# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
	local bench=0 build_only=0 kafka=1 list=0 arg
	for arg in "$@"; do
		case "$arg" in
		--bench) bench=1 ;;
		--list) list=1 ;;
		--build) build_only=1 ;;
		--no-kafka) kafka=0 ;;
		-h | --help) usage; exit 0 ;;
		*) echo "install-deps: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
		esac
	done

	local pkgs=("${build_packages[@]}")
	if [ "$build_only" -eq 0 ]; then
		pkgs+=("${test_packages[@]}")
		[ "$kafka" -eq 1 ] && pkgs+=("${kafka_packages[@]}" "${ops_packages[@]}")
		[ "$bench" -eq 1 ] && pkgs+=("${bench_packages[@]}")
	fi
	if [ "$list" -eq 1 ]; then
		printf '%s\n' "${pkgs[@]}"
		return
	fi
	install_debian_packages "${pkgs[@]}"
	[ "$build_only" -eq 0 ] || return 0
	# The integration tests' Kafka broker (Maven Central, cached in the
	# user's ~/.cache; does nothing when already there).
	[ "$kafka" -eq 0 ] || bash "$(dirname "${BASH_SOURCE[0]}")/install-kafka.sh"
	# kubeconform and playwright-core, pinned (~/.cache/levee/tools)
	[ "$kafka" -eq 0 ] || bash "$(dirname "${BASH_SOURCE[0]}")/install-tools.sh"
}

main "$@"
