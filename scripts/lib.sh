# shellcheck shell=bash
# lib.sh — shared by the fleet scripts (sourced, not run). Paths are
# relative to the repository root, where every script cd's first.
#
#   BOT_BIN   the bot program (default bin/bot)
#   RUN_DIR   pid files and state (default run): run/instance_$PORT.pid
#   LOG_DIR   logs (default logs): logs/instance_$PORT.log

BOT_BIN=${BOT_BIN:-bin/bot}
RUN_DIR=${RUN_DIR:-run}
LOG_DIR=${LOG_DIR:-logs}
# shellcheck disable=SC2034 # used by the scripts that source this file
DEFAULT_PORTS="8080 8081 8082 8083"

say() { echo "${SCRIPT:-fleet}: $*"; }
warn() { echo "${SCRIPT:-fleet}: $*" >&2; }
die() {
	warn "$@"
	exit 1
}

pidfile() { echo "$RUN_DIR/instance_$1.pid"; }

# alive PID: the process exists (and is not a zombie).
alive() {
	[ -n "${1:-}" ] && [ -d "/proc/$1" ] || return 1
	local state
	state=$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# cmdline PID: the process's arguments separated by spaces.
cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true; }

# is_instance PID PORT: PID is alive and is a bot serving PORT (guards
# against a pid file whose pid was reused by another program).
is_instance() {
	alive "$1" || return 1
	local c
	c=" $(cmdline "$1")"
	[[ $c == *" --port $2 "* || $c == *" --port=$2 "* ]]
}

# instance_pid PORT: the pid of the running instance on PORT from its pid
# file, or nothing (removing a stale pid file).
instance_pid() {
	local f pid
	f=$(pidfile "$1")
	[ -f "$f" ] || return 0
	pid=$(tr -dc '0-9' <"$f")
	if is_instance "$pid" "$1"; then
		echo "$pid"
	else
		rm -f "$f"
	fi
}

# running_ports PORT...: the ports to act on, one per line: the arguments,
# else $PORTS, else those with a pid file in RUN_DIR.
running_ports() {
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@"
	elif [ -n "${PORTS:-}" ]; then
		local -a p
		read -r -a p <<<"$PORTS"
		printf '%s\n' "${p[@]}"
	else
		pidfile_ports
	fi
}

# pidfile_ports: the ports of every instance pid file in RUN_DIR.
pidfile_ports() {
	local f p
	for f in "$RUN_DIR"/instance_*.pid; do
		[ -e "$f" ] || continue
		p=${f##*/instance_}
		echo "${p%.pid}"
	done | sort -n
}

# listening PORT: something accepts TCP connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_owner PORT: a description of who listens on PORT, when ss can tell.
port_owner() {
	command -v ss >/dev/null 2>&1 || return 0
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1 || true
}

# http_status URL: the HTTP status code of a GET, 000 when nothing answers.
http_status() {
	curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# http_body URL: the body of a GET (empty when nothing answers).
http_body() { curl -s -m 2 "$1" 2>/dev/null || true; }

# stop_pid PID GRACE NAME: SIGTERM, up to GRACE seconds, then SIGKILL; waits
# until the process is gone.
stop_pid() {
	local pid=$1 grace=$2 name=$3 i
	alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	warn "$name (pid $pid) still running after ${grace}s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || return 0
		sleep 0.1
	done
	warn "$name (pid $pid) survived SIGKILL"
	return 1
}

need_curl() {
	command -v curl >/dev/null 2>&1 || die "curl is needed; install it: sudo apt-get install -y curl (or run scripts/install_deps.sh as root)"
}
