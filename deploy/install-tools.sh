#!/usr/bin/env bash
# Installs the tools the deployment tests use that Debian does not package,
# pinned, into one directory (default ~/.cache/levee/tools; LEVEE_TOOLS moves it):
#
#   bin/kubeconform                  Kubernetes schema validation (Go module proxy)
#   node/node_modules/playwright-core  drives Debian's chromium in the status page test (npm)
#
# Idempotent: a tool already there at its pinned version is left alone.
# Needs go and npm (present on the CI machines; the Go toolchain must be
# new enough for kubeconform, 1.22 or later).
set -euo pipefail

KUBECONFORM_VERSION=v0.8.0
PLAYWRIGHT_VERSION=1.64.1

tools=${LEVEE_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/levee/tools}
mkdir -p "$tools/bin" "$tools/node"

need() {
	command -v "$1" >/dev/null 2>&1 || {
		echo "install-tools: $1 is not installed; it is needed for $2" >&2
		exit 1
	}
}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

if ! stamp_ok "$tools/bin/.kubeconform-version" "$KUBECONFORM_VERSION" || [ ! -x "$tools/bin/kubeconform" ]; then
	need go kubeconform
	echo "install-tools: kubeconform $KUBECONFORM_VERSION"
	GOBIN="$tools/bin" GOFLAGS=-modcacherw go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
	echo "$KUBECONFORM_VERSION" >"$tools/bin/.kubeconform-version"
else
	echo "install-tools: kubeconform $KUBECONFORM_VERSION already installed"
fi

if ! stamp_ok "$tools/node/.playwright-version" "$PLAYWRIGHT_VERSION" || [ ! -d "$tools/node/node_modules/playwright-core" ]; then
	need npm playwright-core
	echo "install-tools: playwright-core $PLAYWRIGHT_VERSION"
	# playwright-core never downloads a browser: the test points it at /usr/bin/chromium
	npm install --prefix "$tools/node" --no-audit --no-fund --loglevel=error "playwright-core@$PLAYWRIGHT_VERSION"
	echo "$PLAYWRIGHT_VERSION" >"$tools/node/.playwright-version"
else
	echo "install-tools: playwright-core $PLAYWRIGHT_VERSION already installed"
fi
