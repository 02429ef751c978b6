#!/usr/bin/env bash
# Starts and stops a local Azurite (Table and Queue Storage emulator) for
# tests and local mode.
#
#   scripts/azurite.sh start [--port N] [--queue-port N] [--in-memory] [--all] [--dir DIR]
#   scripts/azurite.sh stop  [--dir DIR]
#
# --port is the table service's, --queue-port the queue service's; each is a
# free port when not given. start prints the queue endpoint and then the
# table endpoint (http://127.0.0.1:PORT/devstoreaccount1) as the last two
# lines on stdout; everything else goes to stderr, so
#   export AZURITE_TABLE_ENDPOINT="$(scripts/azurite.sh start --in-memory | tail -n1)"
# works as before. --all puts the blob service on 10000 and the queue service
# on 10001, where UseDevelopmentStorage=true looks for them (func start needs
# blobs); otherwise the blob service, which nothing here uses, takes a free
# port. DIR (default .azurite in the repository root) holds azurite.log, pid,
# port, queue-port and, without --in-memory, the data. stop kills only the
# process that start recorded in DIR/pid.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
	echo "usage: $0 start [--port N] [--queue-port N] [--in-memory] [--all] [--dir DIR]" >&2
	echo "       $0 stop [--dir DIR]" >&2
	exit 2
}

log() { echo "azurite: $*" >&2; }

# answers reports whether something accepts TCP connections on 127.0.0.1:$1.
answers() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# alive reports whether pid $1 is running and is an Azurite server, so
# a recycled pid is never touched.
alive() {
	local pid=$1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -q azurite "/proc/$pid/cmdline" 2>/dev/null
}

endpoint() { echo "http://127.0.0.1:$1/devstoreaccount1"; }

# endpoints prints what start promises: the queue endpoint (port $2), then
# the table endpoint (port $1) last.
endpoints() {
	endpoint "$2"
	endpoint "$1"
}

valid_port() { [[ $1 =~ ^[0-9]+$ && $1 -ge 1 && $1 -le 65535 ]]; }

cmd=${1:-}
[[ -n $cmd ]] || usage
shift

port=""
queue_port=""
in_memory=false
all=false
dir="$root/.azurite"
while [[ $# -gt 0 ]]; do
	case $1 in
	--port)
		[[ $# -ge 2 ]] || usage
		port=$2
		shift 2
		;;
	--port=*)
		port=${1#--port=}
		shift
		;;
	--queue-port)
		[[ $# -ge 2 ]] || usage
		queue_port=$2
		shift 2
		;;
	--queue-port=*)
		queue_port=${1#--queue-port=}
		shift
		;;
	--in-memory)
		in_memory=true
		shift
		;;
	--all)
		all=true
		shift
		;;
	--dir)
		[[ $# -ge 2 ]] || usage
		dir=$2
		shift 2
		;;
	--dir=*)
		dir=${1#--dir=}
		shift
		;;
	*)
		log "unknown argument: $1"
		usage
		;;
	esac
done
if [[ -n $port ]] && ! valid_port "$port"; then
	log "--port must be a number from 1 to 65535, got '$port'"
	exit 2
fi
if [[ -n $queue_port ]] && ! valid_port "$queue_port"; then
	log "--queue-port must be a number from 1 to 65535, got '$queue_port'"
	exit 2
fi
if $all; then
	if [[ -n $queue_port && $queue_port != 10001 ]]; then
		log "--all puts the queue service on 10001 (UseDevelopmentStorage=true), not $queue_port"
		exit 2
	fi
	queue_port=10001
fi
if [[ -n $port && $port == "$queue_port" ]]; then
	log "--port and --queue-port must differ"
	exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

start() {
	local bin="$root/node_modules/.bin/azurite"
	if [[ ! -x $bin ]]; then
		log "installing Azurite (npm ci)"
		(cd "$root" && npm ci --no-audit --no-fund >&2)
	fi

	# A server this script started earlier in the same DIR is reused when no
	# port is asked for (or the same ones are), so repeated starts do not
	# pile up servers. One from before the queue service (no queue-port
	# file), or without the blob service that --all needs, is not reused.
	if [[ -f "$dir/pid" && -f "$dir/port" && -f "$dir/queue-port" ]]; then
		local oldpid oldport oldqueue
		oldpid=$(<"$dir/pid")
		oldport=$(<"$dir/port")
		oldqueue=$(<"$dir/queue-port")
		if [[ ${port:-$oldport} == "$oldport" && ${queue_port:-$oldqueue} == "$oldqueue" ]] &&
			alive "$oldpid" && answers "$oldport" && answers "$oldqueue" && { ! $all || answers 10000; }; then
			log "reusing the server started earlier (pid $oldpid, table port $oldport, queue port $oldqueue)"
			endpoints "$oldport" "$oldqueue"
			return
		fi
	fi
	# Our own earlier server in the way of what is asked for now (other
	# ports, or --all after a start without it) is replaced, not reused.
	if [[ -f "$dir/pid" ]] && alive "$(<"$dir/pid")"; then
		log "the server started earlier does not fit (--port/--queue-port/--all); restarting it"
		stop
	fi

	if [[ -n $port ]] && answers "$port"; then
		# Another emulator (the VS Code extension, a container) already
		# serves the table port; its queue service, if any, is its affair.
		queue_port=${queue_port:-10001}
		log "something already answers on 127.0.0.1:$port; reusing it"
		answers "$queue_port" || log "warning: nothing answers on the queue port 127.0.0.1:$queue_port"
		endpoints "$port" "$queue_port"
		return
	fi
	[[ -n $port ]] || port=$(free_port)
	if [[ -z $queue_port ]]; then
		queue_port=$(free_port)
		while [[ $queue_port == "$port" ]]; do queue_port=$(free_port); done
	elif answers "$queue_port"; then
		log "something already answers on the queue port 127.0.0.1:$queue_port; stop it or choose another --queue-port"
		exit 1
	fi

	local blob_port
	if $all; then
		# The Functions host (func start) keeps timer locks and schedule
		# status in blobs of AzureWebJobsStorage: UseDevelopmentStorage=true
		# means blob 10000 and queue 10001 beside the table service.
		blob_port=10000
	else
		blob_port=$(free_port)
		while [[ $blob_port == "$port" || $blob_port == "$queue_port" ]]; do blob_port=$(free_port); done
	fi
	local args=(--tableHost 127.0.0.1 --tablePort "$port" --queueHost 127.0.0.1 --queuePort "$queue_port"
		--blobHost 127.0.0.1 --blobPort "$blob_port" --disableTelemetry --skipApiVersionCheck)
	if $in_memory; then
		args+=(--inMemoryPersistence)
	else
		mkdir -p "$dir/data"
		args+=(--location "$dir/data")
	fi

	# The inner bash records its own pid and then becomes Azurite through
	# exec, so the pid file names the server whether or not setsid forks.
	rm -f "$dir/pid"
	# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
	setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' azurite "$dir/pid" "$bin" "${args[@]}" \
		>"$dir/azurite.log" 2>&1 </dev/null &
	echo "$port" >"$dir/port"
	echo "$queue_port" >"$dir/queue-port"

	local deadline=$((SECONDS + 30)) pid=""
	until answers "$port" && answers "$queue_port"; do
		[[ -z $pid && -s "$dir/pid" ]] && pid=$(<"$dir/pid")
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			log "Azurite exited during start-up; last lines of $dir/azurite.log:"
			tail -n 20 "$dir/azurite.log" >&2 || true
			rm -f "$dir/pid" "$dir/port" "$dir/queue-port"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "Azurite did not accept connections on ports $port and $queue_port within 30 s; last lines of $dir/azurite.log:"
			tail -n 20 "$dir/azurite.log" >&2 || true
			[[ -n $pid ]] && alive "$pid" && kill "$pid" 2>/dev/null
			rm -f "$dir/pid" "$dir/port" "$dir/queue-port"
			exit 1
		fi
		sleep 0.2
	done
	log "started (pid $(<"$dir/pid"), table port $port, queue port $queue_port, log $dir/azurite.log)"
	endpoints "$port" "$queue_port"
}

stop() {
	if [[ ! -f "$dir/pid" ]]; then
		log "not running (no $dir/pid)"
		return
	fi
	local pid
	pid=$(<"$dir/pid")
	if alive "$pid"; then
		kill "$pid"
		local i
		for ((i = 0; i < 50; i++)); do
			alive "$pid" || break
			sleep 0.2
		done
		if alive "$pid"; then
			log "pid $pid ignored SIGTERM; sending SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
		log "stopped (pid $pid)"
	else
		log "pid $pid is no longer running"
	fi
	rm -f "$dir/pid" "$dir/port" "$dir/queue-port"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
