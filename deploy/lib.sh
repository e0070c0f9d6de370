# deploy/lib.sh - shell helpers shared by the deploy/ scripts (sourced).

# as_root CMD...: runs CMD as root: directly when root, else through sudo.
# The caller sets SCRIPT (its name) for the error message.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "${SCRIPT:-deploy}: need root or sudo to run: $*" >&2
		exit 1
	fi
}
