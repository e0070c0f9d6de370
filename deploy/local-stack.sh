#!/usr/bin/env bash
# The whole stack on loopback, without Docker: the demo service, Redis, a
# Kafka broker (one KRaft node, from install-kafka.sh's jars) and two levee
# replicas sharing them, so a write through one purges the other's cache
# through Kafka.
#
#   deploy/local-stack.sh up       start everything, wait until it is ready, print what to try
#   deploy/local-stack.sh status   what runs, on which ports
#   deploy/local-stack.sh down     stop everything (SIGTERM, then SIGKILL), by PID
#
# Ports are free ones picked at `up`, or LEVEE_STACK_<NAME>_PORT for NAME in
# DEMO REDIS KAFKA KAFKA_CONTROLLER LEVEE_A ADMIN_A LEVEE_B ADMIN_B.
# State (PIDs, logs, data) lives in $LEVEE_STACK_DIR, default ./.local-stack.
# `down` waits LEVEE_STACK_STOP_TIMEOUT seconds (20) after SIGTERM, then SIGKILLs.
# levee is $LEVEE_BIN, default build-release/levee (built when missing).
# Policy: deploy/local-stack.ini. Needs redis-server, kcat, java, curl.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK_DIR=${LEVEE_STACK_DIR:-$root/.local-stack}
KAFKA_VERSION=3.9.1 # as in install-kafka.sh
KAFKA_LIBS=${LEVEE_KAFKA_LIBS:-$HOME/.cache/levee/kafka-$KAFKA_VERSION/libs}
POLICY=$root/deploy/local-stack.ini
TOPIC=levee.invalidations
READY_TIMEOUT=${LEVEE_STACK_TIMEOUT:-90} # seconds, for each component
STOP_TIMEOUT=${LEVEE_STACK_STOP_TIMEOUT:-20} # seconds of SIGTERM before SIGKILL
# Start order; `down` stops in reverse.
COMPONENTS=(demo redis kafka levee-a levee-b)
PORT_NAMES=(DEMO REDIS KAFKA KAFKA_CONTROLLER LEVEE_A ADMIN_A LEVEE_B ADMIN_B)

say() { echo "local-stack: $*"; }
die() {
	echo "local-stack: $*" >&2
	exit 1
}

usage() {
	sed -n '2,17s/^# \{0,1\}//p' "$0"
}

# ------------------------------------------------------------ processes

# A process is ours when its PID file names it and the kernel's start time
# for that PID is the one recorded: a PID reused by another program is
# never signalled. A zombie (dead, not yet reaped by its parent) is gone.
starttime() {
	# Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces.
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086 # split into fields on purpose
	set -- $stat
	[ "$1" != Z ] || return 1
	echo "${20}"
}

pid_of() {
	local f=$STACK_DIR/$1.pid pid start now
	[ -f "$f" ] || return 1
	read -r pid start <"$f" || return 1
	[ -n "$pid" ] && [ -n "$start" ] || return 1
	now=$(starttime "$pid") && [ "$now" = "$start" ] || return 1
	echo "$pid"
}

# launch NAME CMD...: runs CMD in the background with its output in
# NAME.log, and records its PID and start time in NAME.pid.
launch() {
	local name=$1
	shift
	# A non-interactive shell starts background jobs with SIGINT ignored:
	# a Ctrl-C during `up` reaches only the script, whose trap then stops
	# the components in order, as `down` does.
	# fd 3 is the script's stderr (main): a component holding it would keep
	# the caller of `up` waiting for the end of that output.
	"$@" </dev/null >>"$STACK_DIR/$name.log" 2>&1 3>&- &
	local pid=$! start
	# Gone already (exited at once): "-" never matches, so it reads as stopped.
	start=$(starttime "$pid") || start=-
	echo "$pid $start" >"$STACK_DIR/$name.pid"
}

# wait_ready NAME WHAT CHECK...: polls CHECK until it succeeds; fails with
# the log's tail when NAME exits or READY_TIMEOUT passes.
wait_ready() {
	local name=$1 what=$2 deadline=$((SECONDS + READY_TIMEOUT))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ! pid_of "$name" >/dev/null; then
			tail -n 30 "$STACK_DIR/$name.log" >&2 || true
			die "$name exited before $what (log: $STACK_DIR/$name.log)"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			tail -n 30 "$STACK_DIR/$name.log" >&2 || true
			die "$name: no $what after ${READY_TIMEOUT}s (log: $STACK_DIR/$name.log)"
		fi
		sleep 0.1
	done
}

stop_one() {
	local name=$1 pid deadline
	if ! pid=$(pid_of "$name"); then
		rm -f "$STACK_DIR/$name.pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + STOP_TIMEOUT))
	while pid_of "$name" >/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
		sleep 0.1
	done
	if pid_of "$name" >/dev/null; then
		say "$name (pid $pid) still runs after ${STOP_TIMEOUT}s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		deadline=$((SECONDS + 10))
		while pid_of "$name" >/dev/null; do
			if [ "$SECONDS" -ge "$deadline" ]; then
				echo "local-stack: $name (pid $pid) survived SIGKILL for 10s; left running" >&2
				return 1
			fi
			sleep 0.05
		done
	fi
	rm -f "$STACK_DIR/$name.pid"
	say "stopped $name (pid $pid)"
}

# ---------------------------------------------------------------- ports

port_free() {
	python3 -c 'import socket,sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

pick_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Fills stack.env with every port: given, or free and not picked twice.
choose_ports() {
	local name var port taken=" "
	: >"$STACK_DIR/stack.env"
	for name in "${PORT_NAMES[@]}"; do
		var=LEVEE_STACK_${name}_PORT
		port=${!var:-}
		if [ -n "$port" ]; then
			[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] ||
				die "$var=$port: not a port number"
			port_free "$port" || die "$var=$port: the port is in use"
		else
			port=$(pick_port)
			while [[ "$taken" == *" $port "* ]]; do port=$(pick_port); done
		fi
		[[ "$taken" == *" $port "* ]] && die "$var=$port: that port is already given to another component"
		taken+="$port "
		echo "$var=$port" >>"$STACK_DIR/stack.env"
	done
	echo "LEVEE_STACK_LEVEE_BIN=$LEVEE_BIN" >>"$STACK_DIR/stack.env"
}

load_env() {
	[ -f "$STACK_DIR/stack.env" ] || return 1
	# shellcheck disable=SC1091 # written by choose_ports
	source "$STACK_DIR/stack.env"
}

# ------------------------------------------------------------ components

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

start_demo() {
	launch demo python3 "$root/deploy/demo_service.py" --host 127.0.0.1 --port "$LEVEE_STACK_DEMO_PORT"
	wait_ready demo "answer on :$LEVEE_STACK_DEMO_PORT" http_ok "http://127.0.0.1:$LEVEE_STACK_DEMO_PORT/_demo/mode"
}

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$LEVEE_STACK_REDIS_PORT" ping)" = PONG ]; }

start_redis() {
	mkdir -p "$STACK_DIR/redis"
	launch redis redis-server --bind 127.0.0.1 --port "$LEVEE_STACK_REDIS_PORT" --save "" \
		--appendonly no --dir "$STACK_DIR/redis"
	wait_ready redis "PONG on :$LEVEE_STACK_REDIS_PORT" redis_ping
}

# The JVM command line, as an array: `launch` must run java itself, not a
# shell function around it, for its PID to be the broker's.
kafka_java() {
	# C1 only and the serial collector: a broker for a demo on a small machine
	# starts in seconds and needs no more (as tests/integration/kafka.py).
	java_cmd=(java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData
		-Djava.awt.headless=true "-Dlog4j.configuration=file:$STACK_DIR/kafka/log4j.properties"
		-cp "$KAFKA_LIBS/*" "$@")
}

kafka_config() {
	local k=$STACK_DIR/kafka
	mkdir -p "$k"
	cat >"$k/server.properties" <<EOF
# written by deploy/local-stack.sh: one KRaft node, broker and controller
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$LEVEE_STACK_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$LEVEE_STACK_KAFKA_PORT,CONTROLLER://127.0.0.1:$LEVEE_STACK_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$LEVEE_STACK_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$k/data
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
log.cleaner.dedupe.buffer.size=16777216
EOF
	cat >"$k/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$k/broker.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
}

kafka_lists_broker() {
	kcat -b "127.0.0.1:$LEVEE_STACK_KAFKA_PORT" -L -m 3 2>/dev/null | grep -q '^ *1 brokers:'
}

# The topic with all three partitions led: kcat's metadata request for it
# creates it (auto.create.topics.enable), as a producer's first send would;
# the consumers must not subscribe before it exists.
kafka_topic_ready() {
	local md
	md=$(kcat -b "127.0.0.1:$LEVEE_STACK_KAFKA_PORT" -L -t "$TOPIC" -m 3 2>/dev/null) || return 1
	grep -q "topic \"$TOPIC\" with 3 partitions" <<<"$md" && ! grep -q 'leader -1' <<<"$md"
}

start_kafka() {
	[ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || bash "$root/deploy/install-kafka.sh"
	kafka_config
	if [ ! -f "$STACK_DIR/kafka/data/meta.properties" ]; then
		local id
		kafka_java kafka.tools.StorageTool random-uuid
		id=$("${java_cmd[@]}" 2>>"$STACK_DIR/kafka.log") || die "kafka random-uuid failed (log: $STACK_DIR/kafka.log)"
		kafka_java kafka.tools.StorageTool format -t "$id" -c "$STACK_DIR/kafka/server.properties"
		"${java_cmd[@]}" >>"$STACK_DIR/kafka.log" 2>&1 ||
			die "kafka storage format failed (log: $STACK_DIR/kafka.log)"
	fi
	kafka_java kafka.Kafka "$STACK_DIR/kafka/server.properties"
	launch kafka "${java_cmd[@]}"
	wait_ready kafka "broker on :$LEVEE_STACK_KAFKA_PORT" kafka_lists_broker
	wait_ready kafka "topic $TOPIC with its partitions led" kafka_topic_ready
}

levee_synced() {
	# Ready (policy loaded, upstream reachable) and consuming, caught up.
	http_ok "http://127.0.0.1:$1/readyz" &&
		curl -fsS --max-time 2 "http://127.0.0.1:$1/status" | grep -q '"cache":"normal"'
}

start_levee() {
	local name=$1 listen=$2 admin=$3
	mkdir -p "$STACK_DIR/$name"
	launch "$name" env POD_NAME="$name" LEVEE_STACK_OUTBOX="$STACK_DIR/$name/outbox" \
		LEVEE_STACK_DEMO_PORT="$LEVEE_STACK_DEMO_PORT" LEVEE_STACK_REDIS_PORT="$LEVEE_STACK_REDIS_PORT" \
		LEVEE_STACK_KAFKA_PORT="$LEVEE_STACK_KAFKA_PORT" \
		"$LEVEE_BIN" --policy "$POLICY" --listen "127.0.0.1:$listen" --admin "127.0.0.1:$admin"
	wait_ready "$name" "readiness and a caught-up consumer on admin :$admin" levee_synced "$admin"
}

# ------------------------------------------------------------- commands

find_levee() {
	if [ -n "${LEVEE_BIN:-}" ]; then
		[ -x "$LEVEE_BIN" ] || die "LEVEE_BIN=$LEVEE_BIN is not an executable"
		return
	fi
	LEVEE_BIN=$root/build-release/levee
	if [ ! -x "$LEVEE_BIN" ]; then
		say "building $LEVEE_BIN"
		"$root/deploy/install-deps.sh" --build
		cmake -S "$root" -B "$root/build-release" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
		cmake --build "$root/build-release" --target levee
	fi
}

running() {
	local c
	for c in "${COMPONENTS[@]}"; do
		pid_of "$c" >/dev/null && return 0
	done
	return 1
}

# The EXIT trap of `up`. A signal's trap may run while a readiness check
# has its output sent to /dev/null, so this writes to the script's own
# stderr, saved as fd 3 by main.
up_failed() {
	local rc=$?
	echo "local-stack: up failed; stopping what started" >&3
	cmd_down >&3 2>&3 || true
	exit "$rc"
}

cmd_up() {
	local tool
	for tool in curl redis-server redis-cli kcat java python3; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool is missing: run deploy/install-deps.sh"
	done
	mkdir -p "$STACK_DIR"
	running && die "already up (deploy/local-stack.sh status; down first)"
	find_levee
	LEVEE_BIN=$(cd "$(dirname "$LEVEE_BIN")" && pwd)/$(basename "$LEVEE_BIN")
	rm -rf "$STACK_DIR/redis" "$STACK_DIR/kafka" "$STACK_DIR/levee-a" "$STACK_DIR/levee-b" "$STACK_DIR"/*.log
	choose_ports
	load_env
	# Whatever fails from here (die exits, or a Ctrl-C) leaves nothing running.
	trap up_failed EXIT
	trap 'exit 130' INT TERM
	env LEVEE_STACK_DEMO_PORT=1 LEVEE_STACK_REDIS_PORT=1 LEVEE_STACK_KAFKA_PORT=1 POD_NAME=check \
		LEVEE_STACK_OUTBOX=/nonexistent "$LEVEE_BIN" check "$POLICY" >/dev/null ||
		die "$POLICY does not pass levee check"
	start_demo
	say "demo service on 127.0.0.1:$LEVEE_STACK_DEMO_PORT"
	start_redis
	say "redis on 127.0.0.1:$LEVEE_STACK_REDIS_PORT"
	start_kafka
	say "kafka on 127.0.0.1:$LEVEE_STACK_KAFKA_PORT, topic $TOPIC"
	start_levee levee-a "$LEVEE_STACK_LEVEE_A_PORT" "$LEVEE_STACK_ADMIN_A_PORT"
	say "levee-a on 127.0.0.1:$LEVEE_STACK_LEVEE_A_PORT (admin :$LEVEE_STACK_ADMIN_A_PORT)"
	start_levee levee-b "$LEVEE_STACK_LEVEE_B_PORT" "$LEVEE_STACK_ADMIN_B_PORT"
	say "levee-b on 127.0.0.1:$LEVEE_STACK_LEVEE_B_PORT (admin :$LEVEE_STACK_ADMIN_B_PORT)"
	trap - EXIT INT TERM
	print_try | tee "$STACK_DIR/try.txt"
}

# What to try. tests/deploy/test_local_stack.py runs these lines ("$ "
# commands) and checks each prints what its "=> " line says. Clients name
# the service by one Host, as they would through a Service or a load
# balancer: the Host is part of the cache key, so every replica then holds
# the same entry and a purge from one reaches all.
print_try() {
	local a=127.0.0.1:$LEVEE_STACK_LEVEE_A_PORT b=127.0.0.1:$LEVEE_STACK_LEVEE_B_PORT
	local adm=127.0.0.1:$LEVEE_STACK_ADMIN_A_PORT demo=127.0.0.1:$LEVEE_STACK_DEMO_PORT
	local cache="-s -H 'Host: demo' -o /dev/null -w '%{http_code} %header{cache-status}\\n'"
	local refusal="-s -H 'Host: demo' -o /dev/null -w '%{http_code} %header{x-levee-reason}\\n'"
	cat <<EOF

local-stack: up. State and logs in $STACK_DIR. Try:

1. The cache: levee-a stores the user, then answers it without the service
   (each answer also says ttl=N, the seconds of freshness it has left).
  \$ curl $cache http://$a/api/users/1
  => 200 levee; fwd=miss; fwd-status=200; stored
  \$ curl $cache http://$a/api/users/1
  => 200 levee; hit

2. Invalidation through Kafka: levee-b finds the user in Redis and keeps it
   in its own memory; a write through levee-a purges Redis and, through
   Kafka, levee-b's copy (within milliseconds): levee-b shows the new name.
  \$ curl $cache http://$b/api/users/1
  => 200 levee; hit; detail=l2
  \$ curl $cache http://$b/api/users/1
  => 200 levee; hit
  \$ curl -s -H 'Host: demo' -o /dev/null -w '%{http_code}\\n' -X PUT -d '{"name": "Ada L."}' http://$a/api/users/1
  => 200
  \$ curl -s -H 'Host: demo' http://$b/api/users/1 | grep '"name"'
  => "name": "Ada L."

3. A breaker trips: the service fails for 30s; after 5 calls, most of them
   failed, the breaker "users" opens and levee answers 503 without asking
   the service, while what is cached still answers (for its 30s).
  \$ curl $cache http://$a/api/users/2
  => 200 levee; fwd=miss; fwd-status=200; stored
  \$ curl -s -X POST 'http://$demo/_demo/fail?for=30' | grep fail_for_s
  => "fail_for_s": 30
  \$ for i in 1 2 3 4 5 6 7 8; do curl $refusal http://$a/api/users/new-\$i; done | sort | uniq -c
  => 503 breaker-open; breaker=users
  \$ curl -s http://$adm/status | grep -o '"name":"users","state":"[a-z_]*"'
  => "name":"users","state":"open"
  \$ curl $cache http://$a/api/users/2
  => 200 levee; hit
  \$ curl -s -X POST http://$demo/_demo/normal | grep fail_for_s
  => "fail_for_s": 0.0

4. A tier engages: answers slower than 500ms put levee in tier "busy", which
   sheds the optional route (/) and keeps the critical one (/api/users/*).
  \$ curl -s -X POST 'http://$demo/_demo/slow?ms=700&for=30' | grep slow_ms
  => "slow_ms": 700
  \$ for i in 1 2 3; do curl $refusal http://$a/; done
  => 200
  \$ curl -s http://$adm/tiers | grep -o '"tier":"[a-z]*"' | head -1
  => "tier":"busy"
  \$ curl $refusal http://$a/
  => 503 tier-shed; tier=busy
  \$ curl $refusal http://$a/api/users/2
  => 200
  \$ curl -s -X POST http://$demo/_demo/normal | grep slow_ms
  => "slow_ms": 0

5. A purge by hand, as another system or an operator publishes one
   (docs/invalidation-message.md): the service changes behind levee's back,
   levee-b keeps the old copy until the message arrives.
  \$ curl -s -o /dev/null -w '%{http_code}\\n' -X PUT -d '{"name": "Linus"}' http://$demo/api/users/7
  => 201
  \$ curl $cache http://$b/api/users/7
  => 200 levee; fwd=miss; fwd-status=200; stored
  \$ curl -s -o /dev/null -w '%{http_code}\\n' -X PUT -d '{"name": "Torvalds"}' http://$demo/api/users/7
  => 200
  \$ curl -s -H 'Host: demo' http://$b/api/users/7 | grep '"name"'
  => "name": "Linus"
  \$ printf '%s' '{"v":1,"id":"by-hand-'"\$(date +%s%N)"'","service":"demo","keys":["/api/users/7"]}' | kcat -P -b 127.0.0.1:$LEVEE_STACK_KAFKA_PORT -t $TOPIC -k 'demo|key|/api/users/7' -H levee-service=demo && echo sent
  => sent
  \$ curl -s -H 'Host: demo' http://$b/api/users/7 | grep '"name"'
  => "name": "Torvalds"

Admin: http://$adm/status /metrics /tiers (levee-b: :$LEVEE_STACK_ADMIN_B_PORT).
These lines are in $STACK_DIR/try.txt. Stop everything: deploy/local-stack.sh down
EOF
}

cmd_status() {
	load_env || {
		say "not up (no $STACK_DIR/stack.env)"
		return 3
	}
	local c pid up=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(pid_of "$c"); then
			echo "$c: running, pid $pid"
			up=$((up + 1))
		else
			echo "$c: stopped"
		fi
	done
	echo "ports: demo $LEVEE_STACK_DEMO_PORT, redis $LEVEE_STACK_REDIS_PORT, kafka $LEVEE_STACK_KAFKA_PORT," \
		"levee-a $LEVEE_STACK_LEVEE_A_PORT (admin $LEVEE_STACK_ADMIN_A_PORT)," \
		"levee-b $LEVEE_STACK_LEVEE_B_PORT (admin $LEVEE_STACK_ADMIN_B_PORT)"
	# The LSB status codes: 0 all running, 3 nothing running, 1 some.
	[ "$up" -eq "${#COMPONENTS[@]}" ] && return 0
	[ "$up" -eq 0 ] && return 3
	return 1
}

cmd_down() {
	[ -d "$STACK_DIR" ] || {
		say "nothing to stop ($STACK_DIR does not exist)"
		return 0
	}
	# Each component is stopped even when one before it could not be.
	local i rc=0
	for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
		stop_one "${COMPONENTS[$i]}" || rc=1
	done
	return "$rc"
}

main() {
	exec 3>&2
	[[ "$READY_TIMEOUT" =~ ^[0-9]+$ ]] || die "LEVEE_STACK_TIMEOUT=$READY_TIMEOUT: not a number of seconds"
	[[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "LEVEE_STACK_STOP_TIMEOUT=$STOP_TIMEOUT: not a number of seconds"
	case "${1:-}" in
	up) cmd_up ;;
	down) cmd_down ;;
	status) cmd_status ;;
	-h | --help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

main "$@"
