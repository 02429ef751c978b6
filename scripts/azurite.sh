#!/usr/bin/env bash
# Starts and stops a local Azurite Table Storage emulator for tests and local
# mode.
#
#   scripts/azurite.sh start [--port N] [--in-memory] [--all] [--dir DIR]
#   scripts/azurite.sh stop  [--dir DIR]
#
# start prints the table endpoint (http://127.0.0.1:PORT/devstoreaccount1) as
# the last line on stdout; everything else goes to stderr, so
#   export AZURITE_TABLE_ENDPOINT="$(scripts/azurite.sh start --in-memory | tail -n1)"
# works. DIR (default .azurite in the repository root) holds azurite.log, pid,
# port and, without --in-memory, the data. stop kills only the process that
# start recorded in DIR/pid.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
	echo "usage: $0 start [--port N] [--in-memory] [--all] [--dir DIR]" >&2
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

# alive reports whether pid $1 is running and is an Azurite table server, so
# a recycled pid is never touched.
alive() {
	local pid=$1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	grep -q azurite "/proc/$pid/cmdline" 2>/dev/null
}

endpoint() { echo "http://127.0.0.1:$1/devstoreaccount1"; }

cmd=${1:-}
[[ -n $cmd ]] || usage
shift

port=""
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
if [[ -n $port ]] && ! [[ $port =~ ^[0-9]+$ && $port -ge 1 && $port -le 65535 ]]; then
	log "--port must be a number from 1 to 65535, got '$port'"
	exit 2
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

start() {
	local bin="$root/node_modules/.bin/azurite-table"
	if [[ ! -x $bin ]]; then
		log "installing Azurite (npm ci)"
		(cd "$root" && npm ci --no-audit --no-fund >&2)
	fi

	# A server this script started earlier in the same DIR is reused when no
	# port is asked for, so repeated starts do not pile up servers.
	if [[ -z $port && -f "$dir/pid" && -f "$dir/port" ]]; then
		local oldpid oldport
		oldpid=$(<"$dir/pid")
		oldport=$(<"$dir/port")
		if alive "$oldpid" && answers "$oldport"; then
			log "reusing the server started earlier (pid $oldpid, port $oldport)"
			endpoint "$oldport"
			return
		fi
	fi

	if [[ -z $port ]]; then
		port=$(free_port)
	elif answers "$port"; then
		log "something already answers on 127.0.0.1:$port; reusing it"
		endpoint "$port"
		return
	fi

	local args=(--tableHost 127.0.0.1 --tablePort "$port" --disableTelemetry --skipApiVersionCheck)
	if $all; then
		# The Functions host (func start) keeps timer locks and schedule
		# status in blobs of AzureWebJobsStorage: UseDevelopmentStorage=true
		# means blob 10000 and queue 10001 beside the table service.
		bin="$root/node_modules/.bin/azurite"
		args+=(--blobHost 127.0.0.1 --blobPort 10000 --queueHost 127.0.0.1 --queuePort 10001)
	fi
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

	local deadline=$((SECONDS + 30)) pid=""
	until answers "$port"; do
		[[ -z $pid && -s "$dir/pid" ]] && pid=$(<"$dir/pid")
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			log "Azurite exited during start-up; last lines of $dir/azurite.log:"
			tail -n 20 "$dir/azurite.log" >&2 || true
			rm -f "$dir/pid" "$dir/port"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "Azurite did not accept connections on port $port within 30 s; last lines of $dir/azurite.log:"
			tail -n 20 "$dir/azurite.log" >&2 || true
			[[ -n $pid ]] && alive "$pid" && kill "$pid" 2>/dev/null
			rm -f "$dir/pid" "$dir/port"
			exit 1
		fi
		sleep 0.2
	done
	log "started (pid $(<"$dir/pid"), port $port, log $dir/azurite.log)"
	endpoint "$port"
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
	rm -f "$dir/pid" "$dir/port"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
