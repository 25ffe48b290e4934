#!/usr/bin/env bash
# start_multiple_instances.sh — start bot instances in the background, one
# per port (seed 003's script, with pid files, health waits and checks).
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/start_multiple_instances.sh [PORT...]

Starts one detached bot instance per port (default: $PORTS, else
8080 8081 8082 8083), each with WEB_PORT=$PORT and
INSTANCE_NAME=bot-instance-$PORT, --config config.yaml when it exists, and
--log-file logs/instance_$PORT.log. Writes run/instance_$PORT.pid, waits
until every instance answers /health and then /ready (Redis reachable).

Each instance is launched by bin/fleetctl, which writes beside its pid file
the launch record (argv, environment, working directory, start time, a
digest of its settings) that the health checker restarts it from.

Running it again is safe: an instance whose pid file names a live bot is
left alone when it runs with the settings it would get now (command line,
the bot's variables, the config file's content). One that runs with other
settings is refused with the names of what differs, or with
ON_CHANGE=restart (make fleet) restarted one at a time to apply them
(scripts/rolling_restart.sh). It fails with a clear message when the binary
is missing, a port is taken by another program, an instance exits at start,
or Redis does not answer (the instances then keep running and turn ready
once it does).

Environment:
  PORTS        ports when none are given as arguments
  BOT_BIN      bot program (default bin/bot; build it with make build)
  CONFIG       config file; unset: config.yaml if present; empty: none
  LOG_LEVEL    --log-level (default info)
  RUN_DIR      pid files (default run)      LOG_DIR  logs (default logs)
  HEALTH_WAIT  seconds to wait for /health (default 15)
  READY_WAIT   seconds to wait for /ready (default 10)
  ON_CHANGE    refuse (default) or restart: what to do with a running
               instance whose settings differ from these
  API_KEY, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, BOT_* ... are passed on
  to the instances.
EOF
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ports=("$@")
if [ ${#ports[@]} -eq 0 ]; then
	read -r -a ports <<<"${PORTS:-$DEFAULT_PORTS}"
fi
for p in "${ports[@]}"; do
	if ! [[ $p =~ ^[0-9]+$ ]] || [ "$p" -lt 1 ] || [ "$p" -gt 65535 ]; then die "bad port '$p' (see --help)"; fi
done
health_wait=${HEALTH_WAIT:-15}
ready_wait=${READY_WAIT:-10}
log_level=${LOG_LEVEL:-info}
if [ -z "${CONFIG+set}" ]; then
	CONFIG=""
	[ -f config.yaml ] && CONFIG=config.yaml
fi
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "config file $CONFIG not found"

[ -x "$BOT_BIN" ] || die "$BOT_BIN not found or not executable; run: make build"
need_curl
mkdir -p "$RUN_DIR" "$LOG_DIR"

# args_for PORT: the bot's command line for the instance on PORT.
args_for() {
	local a=("$BOT_BIN")
	[ -n "$CONFIG" ] && a+=(--config "$CONFIG")
	a+=(--port "$1" --log-level "$log_level" --log-file "$LOG_DIR/instance_$1.log")
	printf '%s\n' "${a[@]}"
}

# Which instances need starting, and can they?
todo=() changed=()
for p in "${ports[@]}"; do
	pid=$(instance_pid "$p")
	if [ -n "$pid" ]; then
		mapfile -t argv < <(args_for "$p")
		rc=0
		diff=$(WEB_PORT=$p INSTANCE_NAME=bot-instance-$p fleetctl changed --pidfile "$(pidfile "$p")" --port "$p" -- "${argv[@]}") || rc=$?
		if [ $rc = 3 ]; then
			say "instance $p (pid $pid) runs with other settings: $diff"
			changed+=("$p")
		else
			say "instance $p already running (pid $pid)"
		fi
		continue
	fi
	if listening "$p"; then
		owner=$(port_owner "$p")
		die "port $p is taken by another program${owner:+ ($owner)}; stop it or choose other PORTS"
	fi
	todo+=("$p")
done

# Fail before starting anything when the Redis the instances will use (from
# the environment; a config file may name another, then /ready tells) is down.
if [ ${#todo[@]} -gt 0 ] && [ -z "$CONFIG" ] && command -v redis-cli >/dev/null 2>&1; then
	rhost=${REDIS_HOST:-127.0.0.1} rport=${REDIS_PORT:-6379}
	auth=()
	[ -n "${REDIS_PASSWORD:-}" ] && auth=(--no-auth-warning -a "$REDIS_PASSWORD")
	if ! redis-cli -h "$rhost" -p "$rport" "${auth[@]}" ping 2>/dev/null | grep -q PONG; then
		die "Redis at $rhost:$rport does not answer; start it (scripts/ensure_redis.sh) or set REDIS_HOST/REDIS_PORT"
	fi
fi

if [ ${#changed[@]} -gt 0 ] && [ "${ON_CHANGE:-refuse}" != restart ]; then
	die "instances ${changed[*]} run with other settings than these; apply them one at a time with: scripts/rolling_restart.sh ${changed[*]} (make fleet does), or keep the old ones by running with the settings they were started with"
fi

started=()
for p in "${todo[@]}"; do
	mapfile -t argv < <(args_for "$p")
	# Its own session and process group, so the instance outlives this
	# shell and a terminal's hangup; stdout/stderr (start errors) go to .out.
	pid=$(WEB_PORT=$p INSTANCE_NAME=bot-instance-$p fleetctl launch --port "$p" \
		--pidfile "$(pidfile "$p")" --log "$LOG_DIR/instance_$p.out" -- "${argv[@]}")
	say "instance $p starting (pid $pid, log $LOG_DIR/instance_$p.log)"
	started+=("$p")
done
if [ ${#changed[@]} -gt 0 ]; then
	say "applying the new settings to ${changed[*]}: rolling restart"
	scripts/rolling_restart.sh "${changed[@]}"
fi
[ ${#started[@]} -gt 0 ] || exit 0

failed=0
for p in "${started[@]}"; do
	pid=$(instance_pid "$p")
	ok=no
	for ((i = 0; i < health_wait * 10; i++)); do
		if ! alive "$pid"; then
			break
		fi
		if [ "$(http_status "http://127.0.0.1:$p/health")" = 200 ]; then
			ok=yes
			break
		fi
		sleep 0.1
	done
	if [ $ok = no ]; then
		if alive "$pid"; then
			warn "instance $p (pid $pid) does not answer /health after ${health_wait}s; see $LOG_DIR/instance_$p.log"
		else
			rm -f "$(pidfile "$p")"
			warn "instance $p exited at start:"
			tail -n 5 "$LOG_DIR/instance_$p.out" "$LOG_DIR/instance_$p.log" 2>/dev/null | sed 's/^/    /' >&2 || true
		fi
		failed=1
	fi
done
[ $failed = 0 ] || exit 1

for p in "${started[@]}"; do
	status=000
	for ((i = 0; i < ready_wait * 10; i++)); do
		status=$(http_status "http://127.0.0.1:$p/ready")
		[ "$status" = 200 ] && break
		sleep 0.1
	done
	if [ "$status" != 200 ]; then
		body=$(http_body "http://127.0.0.1:$p/ready")
		case "$body" in
		*store_unavailable*) warn "instance $p is up but Redis is unreachable: $body" ;;
		*) warn "instance $p is up but not ready ($status): $body" ;;
		esac
		failed=1
	fi
done
if [ $failed = 1 ]; then
	die "not every instance is ready; they keep running and turn ready when Redis answers (stop them with scripts/stop_instances.sh)"
fi
say "instances ${started[*]} ready"
