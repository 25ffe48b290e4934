# shellcheck shell=bash
# lib.sh — shared by the fleet scripts (sourced, not run). Paths are
# relative to the repository root, where every script cd's first.
#
#   BOT_BIN   the bot program (default bin/bot)
#   FLEETCTL  the fleetctl program (default bin/fleetctl)
#   RUN_DIR   pid files and state (default run): run/instance_$PORT.pid
#   LOG_DIR   logs (default logs): logs/instance_$PORT.log

BOT_BIN=${BOT_BIN:-bin/bot}
FLEETCTL=${FLEETCTL:-bin/fleetctl}
RUN_DIR=${RUN_DIR:-run}
LOG_DIR=${LOG_DIR:-logs}
# shellcheck disable=SC2034 # used by the scripts that source this file
DEFAULT_PORTS="8080 8081 8082 8083"
# The health checker's configuration (make fleet renders it).
HC_CONFIG=${HEALTHCHECKER_CONFIG:-$RUN_DIR/healthchecker.yaml}

# A script that defines usage before sourcing this file answers -h and
# --help with it; one that sets NEEDS_ARGS also prints it, and exits 2,
# when run without arguments.
if declare -F usage >/dev/null; then
	case "${1:-}" in
	-h | --help)
		usage
		exit 0
		;;
	"")
		if [ -n "${NEEDS_ARGS:-}" ]; then
			usage
			exit 2
		fi
		;;
	esac
fi

# SCRIPT names the script in its messages: its file name without .sh.
SCRIPT=$(basename "$0" .sh)
say() { echo "$SCRIPT: $*"; }
warn() { echo "$SCRIPT: $*" >&2; }
die() {
	warn "$@"
	exit 1
}

pidfile() { echo "$RUN_DIR/instance_$1.pid"; }

# fleetctl ARGS...: bin/fleetctl, which does what is more than starting and
# stopping (pid file records, process groups, settings, rendering).
fleetctl() {
	[ -x "$FLEETCTL" ] || die "$FLEETCTL not found; run: make build"
	"$FLEETCTL" "$@"
}

# alive PID: the process exists (and is not a zombie).
alive() {
	[ -n "${1:-}" ] || return 1
	local state
	state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[ -n "$state" ] && [[ $state != Z* ]]
}

# instance_pid PORT: the pid of the running instance on PORT from its pid
# file, verified by fleetctl (its launch record, or the port's listener),
# or nothing; a pid file naming no live instance is removed (its launch
# record stays, for the health checker to restart from).
instance_pid() {
	local f rc=0
	f=$(pidfile "$1")
	[ -f "$f" ] || return 0
	fleetctl pid --port "$1" "$f" 2>/dev/null || rc=$?
	case $rc in
	0) ;;
	3)
		warn "$f names pid $(tr -dc '0-9' <"$f"), which is not the instance on port $1; ignoring it"
		rm -f "$f"
		;;
	*) rm -f "$f" ;;
	esac
}

# checker pause|resume PORT...: pause (or resume) the health checker's
# restarts of the instances on PORT... while a script works on them, so the
# two never act on one instance at once. No checker: nothing to do.
checker() {
	[ -f "$HC_CONFIG" ] || return 0
	fleetctl checker "$1" --config "$HC_CONFIG" "${@:2}" >/dev/null ||
		warn "could not $1 the health checker's restarts of ${*:2}"
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

# port_owner PORT: the pids listening on PORT, when fleetctl can tell.
port_owner() {
	local pids
	pids=$(fleetctl owner "$1" 2>/dev/null) || return 0
	echo "pid $pids"
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
