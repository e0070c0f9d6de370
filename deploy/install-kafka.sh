#!/usr/bin/env bash
# Fetches a real Apache Kafka broker (the jars of kafka_2.13 3.9.1 and its
# runtime dependencies) from Maven Central for levee's integration tests.
#
#   deploy/install-kafka.sh    installs into $LEVEE_KAFKA_LIBS,
#                              default ~/.cache/levee/kafka-3.9.1/libs
#
# No Docker and no tarball: Maven resolves deploy/kafka/pom.xml and copies the
# jars; tests/integration/kafka.py runs them with `java -cp 'libs/*'`.
# Idempotent: when the libs directory already holds the kafka_2.13 jar it does
# nothing. The jars land in a temporary sibling directory that is renamed into
# place only once complete, so an interrupted download never looks installed.
# Installs java and maven from Debian when missing (sudo only when not root).
set -Eeuo pipefail
export DEBIAN_FRONTEND=noninteractive

# Keep in step with <kafka.version> in deploy/kafka/pom.xml and the default in
# tests/integration/kafka.py.
KAFKA_VERSION=3.9.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/kafka/pom.xml"
LIBS="${LEVEE_KAFKA_LIBS:-$HOME/.cache/levee/kafka-$KAFKA_VERSION/libs}"

usage() {
	sed -n '2,13s/^# \{0,1\}//p' "$0"
}

SCRIPT=install-kafka
# shellcheck source=deploy/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The broker needs a JRE at test time and Maven only here; a fresh CI machine
# may have neither (install-deps.sh lists both, but this script also runs alone).
ensure_tools() {
	local missing=()
	command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
	command -v mvn >/dev/null 2>&1 || missing+=(maven)
	[ "${#missing[@]}" -eq 0 ] && return 0
	echo "install-kafka: installing ${missing[*]}"
	local apt_opts=(-o DPkg::Lock::Timeout=600 -q)
	as_root apt-get "${apt_opts[@]}" update
	as_root apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}"
}

installed() {
	[ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]
}

main() {
	case "${1:-}" in
	"") ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install-kafka: unknown argument: $1" >&2; usage >&2; exit 2 ;;
	esac

	if installed; then
		echo "install-kafka: Kafka $KAFKA_VERSION already in $LIBS"
		return 0
	fi
	ensure_tools

	local parent tmp
	parent="$(dirname "$LIBS")"
	mkdir -p "$parent"
	# Same filesystem as $LIBS, so the final mv is a rename.
	tmp="$(mktemp -d "$parent/.libs.XXXXXX")"
	# shellcheck disable=SC2064  # expand $tmp now: it is local
	trap "rm -rf '$tmp'" EXIT

	echo "install-kafka: fetching Kafka $KAFKA_VERSION from Maven Central"
	# -q still prints errors; keep the output in a file and show it on failure
	# (Maven 3.8 also writes stray colour escapes even with -B).
	if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
		cat "$tmp/mvn.log" >&2
		echo "install-kafka: mvn failed" >&2
		exit 1
	fi
	if [ ! -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
		echo "install-kafka: mvn succeeded but kafka_2.13-$KAFKA_VERSION.jar is missing" >&2
		ls "$tmp/libs" >&2 || true
		exit 1
	fi

	# Whatever sits at $LIBS without the kafka jar is not an install (left by
	# hand, or another layout): replace it. mv -T renames, and fails rather
	# than nest the directory if a concurrent run got there first.
	rm -rf "$LIBS"
	if ! mv -T "$tmp/libs" "$LIBS" 2>/dev/null && ! installed; then
		echo "install-kafka: could not move the jars into $LIBS" >&2
		exit 1
	fi
	echo "install-kafka: Kafka $KAFKA_VERSION installed in $LIBS ($(find "$LIBS" -name '*.jar' | wc -l) jars)"
}

main "$@"
