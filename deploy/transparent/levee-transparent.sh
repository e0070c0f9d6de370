#!/bin/sh
# levee-transparent - the nat rules of levee's transparent mode.
#
# Usage: levee-transparent install|remove|status --app-ports PORT[,PORT...]
#            --levee-port PORT --uid UID [--outbound-local]
#
#   install   redirect the pod's inbound TCP connections for the app's
#             port(s) to levee's port; with --outbound-local also those of
#             the pod's other processes to a local address on those ports,
#             all but levee's own (its UID's), which must reach the app.
#             Idempotent: installing again leaves the same rules.
#   remove    take every rule and chain of this script away, so traffic
#             goes straight to the app again. Nothing installed is no error.
#   status    print the rules; exit 0 when installed (and, if ports are
#             given, installed for exactly them), 1 when not.
#
# Rules (iptables, nat table; docs/transparent.md draws the packet paths):
#   PREROUTING -p tcp -j LEVEE_INBOUND
#   LEVEE_INBOUND -p tcp --dport APP -j REDIRECT --to-ports LEVEE    (per APP)
#   and with --outbound-local:
#   OUTPUT -p tcp -j LEVEE_OUTPUT
#   LEVEE_OUTPUT -m owner --uid-owner UID -j RETURN
#   LEVEE_OUTPUT -p tcp -m addrtype --dst-type LOCAL --dport APP -j REDIRECT --to-ports LEVEE
#
# IPv4 only. Needs root with CAP_NET_ADMIN (the init container's). The
# iptables binary is $IPTABLES, default `iptables` (Debian's: nft backend).
# Exit status: 0 done (status: installed), 1 failed (status: not installed),
# 2 bad usage.
set -u

PROG=levee-transparent
IPTABLES=${IPTABLES:-iptables}
IN_CHAIN=LEVEE_INBOUND
OUT_CHAIN=LEVEE_OUTPUT
TAG=levee-transparent

die() {
	echo "$PROG: $*" >&2
	exit 1
}

usage_error() {
	echo "$PROG: $*" >&2
	echo "usage: $PROG install|remove|status --app-ports PORT[,PORT...] --levee-port PORT --uid UID [--outbound-local]" >&2
	exit 2
}

# valid_port TEXT: a decimal port 1-65535, written without leading zeros
valid_port() {
	case $1 in
	'' | 0* | *[!0-9]*) return 1 ;;
	esac
	[ ${#1} -le 5 ] && [ "$1" -le 65535 ]
}

action=
app_ports=
levee_port=
uid=
outbound_local=0
[ $# -ge 1 ] || usage_error "no action"
action=$1
shift
case $action in
install | remove | status) ;;
-h | --help)
	sed -n '2,28s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*) usage_error "unknown action '$action' (install, remove or status)" ;;
esac
while [ $# -gt 0 ]; do
	case $1 in
	--app-ports | --levee-port | --uid)
		[ $# -ge 2 ] || usage_error "$1 needs a value"
		case $1 in
		--app-ports) app_ports=$2 ;;
		--levee-port) levee_port=$2 ;;
		--uid) uid=$2 ;;
		esac
		shift 2
		;;
	--app-ports=*) app_ports=${1#*=}; shift ;;
	--levee-port=*) levee_port=${1#*=}; shift ;;
	--uid=*) uid=${1#*=}; shift ;;
	--outbound-local) outbound_local=1; shift ;;
	*) usage_error "unknown argument '$1'" ;;
	esac
done

# The arguments: required to install; status compares with them if given.
ports_list=
check_args() {
	[ -n "$app_ports" ] || usage_error "--app-ports is required"
	[ -n "$levee_port" ] || usage_error "--levee-port is required"
	[ -n "$uid" ] || usage_error "--uid is required (levee's own UID, whose traffic is never redirected)"
	valid_port "$levee_port" || usage_error "--levee-port: '$levee_port' is not a port (1-65535)"
	case $uid in
	'' | *[!0-9]*) usage_error "--uid: '$uid' is not a numeric UID" ;;
	esac
	[ "$uid" -ne 0 ] || usage_error "--uid 0: levee must not run as root, and root's traffic would never be redirected"
	case $app_ports in
	,* | *, | *,,*) usage_error "--app-ports: empty entry in '$app_ports'" ;;
	esac
	old_ifs=$IFS
	IFS=,
	for p in $app_ports; do
		valid_port "$p" || usage_error "--app-ports: '$p' is not a port (1-65535)"
		[ "$p" != "$levee_port" ] || usage_error "--app-ports: $p is levee's own port; it would redirect to itself"
		case " $ports_list " in
		*" $p "*) usage_error "--app-ports: $p is listed twice" ;;
		esac
		ports_list="$ports_list $p"
	done
	IFS=$old_ifs
}

need_iptables() {
	[ "$(id -u)" -eq 0 ] || die "must run as root (with CAP_NET_ADMIN) to change the nat table"
	command -v "$IPTABLES" >/dev/null 2>&1 ||
		die "$IPTABLES not found (Debian: apt-get install iptables; or set IPTABLES)"
	if ! err=$("$IPTABLES" -w 5 -t nat -S PREROUTING 2>&1 >/dev/null); then
		die "cannot read the nat table with $IPTABLES: $err"
	fi
}

ipt() {
	"$IPTABLES" -w 5 -t nat "$@"
}

# The rules of a chain as iptables -S prints them, without the -N line.
chain_rules() {
	ipt -S "$1" 2>/dev/null | grep -v "^-N "
}

chain_exists() {
	ipt -S "$1" >/dev/null 2>&1
}

# The rules this script wants in each chain, in iptables -S form.
want_inbound() {
	for p in $ports_list; do
		echo "-A $IN_CHAIN -p tcp -m tcp --dport $p -m comment --comment $TAG -j REDIRECT --to-ports $levee_port"
	done
}

want_outbound() {
	echo "-A $OUT_CHAIN -m owner --uid-owner $uid -m comment --comment $TAG -j RETURN"
	for p in $ports_list; do
		echo "-A $OUT_CHAIN -p tcp -m addrtype --dst-type LOCAL -m tcp --dport $p -m comment --comment $TAG -j REDIRECT --to-ports $levee_port"
	done
}

# fill_chain CHAIN RULES: the chain holds exactly RULES (created if new).
fill_chain() {
	chain_exists "$1" || ipt -N "$1" || die "cannot create chain $1"
	ipt -F "$1" || die "cannot flush chain $1"
	echo "$2" | while read -r line; do
		[ -n "$line" ] || continue
		# shellcheck disable=SC2086 # the rule's words, as iptables -S wrote them
		ipt $line || exit 1
	done || die "cannot fill chain $1"
}

# jump_add HOOK CHAIN: one jump from the built-in chain, added once.
jump_add() {
	ipt -C "$1" -p tcp -m comment --comment $TAG -j "$2" 2>/dev/null ||
		ipt -A "$1" -p tcp -m comment --comment $TAG -j "$2" || die "cannot add the jump from $1 to $2"
}

# jump_del HOOK CHAIN: every jump from the built-in chain to ours.
jump_del() {
	while ipt -C "$1" -p tcp -m comment --comment $TAG -j "$2" 2>/dev/null; do
		ipt -D "$1" -p tcp -m comment --comment $TAG -j "$2" || die "cannot delete the jump from $1 to $2"
	done
	# a jump written by hand, without our comment, would keep the chain
	# busy; deleted by its number, since its -S words may hold a quoted
	# comment with blanks that the shell would split
	while n=$(ipt -S "$1" | grep -v "^-P " | grep -n -e "-j $2\$" | head -n 1 | cut -d: -f1) && [ -n "$n" ]; do
		ipt -D "$1" "$n" || die "cannot delete a jump from $1 to $2"
	done
}

chain_del() {
	if chain_exists "$1"; then
		ipt -F "$1" && ipt -X "$1" || die "cannot delete chain $1"
	fi
}

do_install() {
	# the chains are filled before anything jumps to them, so a first
	# install never redirects through a half-written chain
	fill_chain $IN_CHAIN "$(want_inbound)"
	jump_add PREROUTING $IN_CHAIN
	if [ $outbound_local -eq 1 ]; then
		fill_chain $OUT_CHAIN "$(want_outbound)"
		jump_add OUTPUT $OUT_CHAIN
	else
		jump_del OUTPUT $OUT_CHAIN
		chain_del $OUT_CHAIN
	fi
	echo "$PROG: inbound tcp to port(s)$ports_list goes to levee on $levee_port" \
		"(uid $uid excluded$([ $outbound_local -eq 1 ] && echo ', local clients redirected too'))"
}

do_remove() {
	jump_del PREROUTING $IN_CHAIN
	jump_del OUTPUT $OUT_CHAIN
	chain_del $IN_CHAIN
	chain_del $OUT_CHAIN
	echo "$PROG: removed; traffic goes straight to the app"
}

do_status() {
	installed=0
	if chain_exists $IN_CHAIN && ipt -C PREROUTING -p tcp -m comment --comment $TAG -j $IN_CHAIN 2>/dev/null; then
		installed=1
	fi
	ipt -S PREROUTING | grep -e "-j $IN_CHAIN\$"
	chain_rules $IN_CHAIN
	ipt -S OUTPUT | grep -e "-j $OUT_CHAIN\$"
	chain_rules $OUT_CHAIN
	if [ $installed -eq 0 ]; then
		echo "$PROG: not installed" >&2
		return 1
	fi
	if [ -n "$app_ports$levee_port$uid" ]; then
		check_args
		have_out=0
		chain_exists $OUT_CHAIN && have_out=1
		if [ "$(chain_rules $IN_CHAIN)" != "$(want_inbound)" ] || [ $have_out -ne $outbound_local ] ||
			{ [ $outbound_local -eq 1 ] && [ "$(chain_rules $OUT_CHAIN)" != "$(want_outbound)" ]; }; then
			echo "$PROG: installed, but not as these arguments say" >&2
			return 1
		fi
	fi
	echo "$PROG: installed" >&2
	return 0
}

case $action in
install)
	check_args
	need_iptables
	do_install
	;;
remove)
	need_iptables
	do_remove
	;;
status)
	need_iptables
	do_status
	exit $?
	;;
esac
