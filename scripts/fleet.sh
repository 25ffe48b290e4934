#!/usr/bin/env bash
# fleet.sh — the local fleet behind make fleet / fleet-down / fleet-status.
set -euo pipefail
# shellcheck disable=SC2034 # read by scripts/lib.sh
NEEDS_ARGS=1

usage() {
	cat <<'EOF'
Usage: scripts/fleet.sh up|down|status

up      (make fleet) Redis — the configured one if it answers, else a local
        redis-server with AOF under ./data — then the instances
        (scripts/start_multiple_instances.sh), nginx on $LISTEN from the
        prefix run/nginx, and bin/healthchecker when it is built. Idempotent:
        parts already running are left alone. Ends with a curl line for a
        first chat through nginx.
        Instances that run with other settings than the current ones
        (BOT_*, REDIS_*, MODEL_*, API_KEY, CONFIG and its content) are
        restarted one at a time to apply them (scripts/rolling_restart.sh).
down    (make fleet-down) stops the health checker, nginx (its master and
        workers: its pid file's process group, also when the master was
        killed), every instance with a pid file, and the Redis that
        scripts/ensure_redis.sh started (make run, make fleet; only that one).
status  (make fleet-status) every part with its pid and state, each
        instance's settings digest; exits 1 when a part is down, nginx's
        workers outlived their master, or the instances differ in settings.

Environment:
  PORTS          instances (default "8080 8081 8082 8083"; the last is the
                 backup, the others weigh 1, 1, 2, ... as in nginx/nginx.conf)
  LISTEN         nginx's listener (default 127.0.0.1:18789)
  API_KEY        the instances' key (default dev-key)
  REDIS_HOST, REDIS_PORT, REDIS_PASSWORD  the Redis to use or start
  HEALTHCHECKER_CONFIG  the checker's config (default: run/healthchecker.yaml,
                 rendered for PORTS by scripts/render_healthchecker.sh)
  HC_LISTEN      the rendered checker's address (default 127.0.0.1:9090)
  RUN_DIR, LOG_DIR, BOT_BIN, CONFIG as in start_multiple_instances.sh
EOF
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

export API_KEY=${API_KEY:-dev-key}
read -r -a ports <<<"${PORTS:-$DEFAULT_PORTS}"
listen=${LISTEN:-127.0.0.1:18789}
redis_host=${REDIS_HOST:-127.0.0.1}
redis_port=${REDIS_PORT:-6379}
prefix="$RUN_DIR/nginx"
nginx_pidfile="$prefix/nginx.pid"
redis_marker="$RUN_DIR/fleet_redis"
hc_bin=${HEALTHCHECKER_BIN:-bin/healthchecker}
# Without HEALTHCHECKER_CONFIG the checker watches exactly the fleet's
# ports: run/healthchecker.yaml, rendered at start (bluegreen.sh renders it
# again for the colour it makes live).
hc_config=$HC_CONFIG
hc_pidfile="$RUN_DIR/healthchecker.pid"
hc_listen=${HC_LISTEN:-127.0.0.1:9090}
if [ -f "$hc_config" ]; then
	hc_listen=$(fleetctl checker addr --config "$hc_config" 2>/dev/null || echo "$hc_listen")
fi
nginx_port=${listen##*:}

nginx_bin() {
	if command -v nginx >/dev/null 2>&1; then
		command -v nginx
	elif [ -x /usr/sbin/nginx ]; then
		echo /usr/sbin/nginx
	fi
}

# pid_in FILE [PORT]: the live pid FILE names when it is the process that
# was launched (or PORT's listener), or nothing.
pid_in() {
	[ -f "$1" ] || return 0
	fleetctl pid ${2:+--port "$2"} "$1" 2>/dev/null || true
}

# nginx_pids: every live process of the nginx the pid file names — the
# master and its workers, which stay in the master's process group (and
# keep serving) when the master is killed.
nginx_pids() { fleetctl group --port "$nginx_port" "$nginx_pidfile" 2>/dev/null || true; }

# stop_nginx: SIGQUIT to the master (graceful: workers finish their
# requests), or to the orphaned workers when it is gone; then SIGKILL to
# whatever of the group is left.
stop_nginx() {
	local pid pgid i left
	pgid=$(tr -dc '0-9' <"$nginx_pidfile" 2>/dev/null || true)
	left=$(nginx_pids)
	[ -n "$left" ] || return 0
	pid=$(pid_in "$nginx_pidfile" "$nginx_port")
	if [ -n "$pid" ]; then
		kill -QUIT "$pid" 2>/dev/null || true
	else
		kill -QUIT -- "-$pgid" 2>/dev/null || true
	fi
	for ((i = 0; i < 100; i++)); do
		[ -n "$(nginx_pids)" ] || return 0
		sleep 0.1
	done
	warn "nginx (pids $(nginx_pids)) still running after 10s; sending SIGKILL"
	kill -KILL -- "-$pgid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		[ -n "$(nginx_pids)" ] || return 0
		sleep 0.1
	done
	return 1
}

# primaries/backups for render_nginx.sh: the last port is the backup.
upstreams() {
	local n=${#ports[@]} i w prim=() back=()
	if [ "$n" -eq 1 ]; then
		prim=("${ports[0]}:1")
	else
		for ((i = 0; i < n - 1; i++)); do
			w=1
			[ $i -eq 2 ] && w=2
			prim+=("${ports[$i]}:$w")
		done
		back=("${ports[$((n - 1))]}")
	fi
	echo "${prim[*]}|${back[*]}"
}

# marker_port: the port of the Redis ensure_redis.sh started (its marker).
marker_port() { grep -o '^port=[0-9]*' "$redis_marker" 2>/dev/null | cut -d= -f2; }

# redis_pid: the pid of the Redis the project started, verified as the
# listener of its port, or nothing.
redis_pid() {
	local port
	port=$(marker_port)
	[ -n "$port" ] || return 0
	pid_in "${DATA_DIR:-data}/redis_$port.pid" "$port"
}

redis_ping() {
	local auth=()
	[ -n "${REDIS_PASSWORD:-}" ] && auth=(--no-auth-warning -a "$REDIS_PASSWORD")
	redis-cli -h "$redis_host" -p "$redis_port" "${auth[@]}" ping 2>/dev/null | grep -q PONG
}

up() {
	[ -x "$BOT_BIN" ] || die "$BOT_BIN not found; run: make build"
	scripts/install_deps.sh
	mkdir -p "$RUN_DIR" "$LOG_DIR" "$prefix/logs"

	# Redis
	scripts/ensure_redis.sh

	# Instances; running ones with other settings get a rolling restart.
	PORTS="${ports[*]}" ON_CHANGE=restart scripts/start_multiple_instances.sh

	# nginx
	local nginx pid
	nginx=$(nginx_bin)
	[ -n "$nginx" ] || die "nginx not found; run scripts/install_deps.sh as root"
	pid=$(pid_in "$nginx_pidfile" "$nginx_port")
	if [ -z "$pid" ] && [ -n "$(nginx_pids)" ]; then
		warn "nginx's master is gone but its workers (pids $(nginx_pids)) still serve $listen; stopping them"
		stop_nginx || die "nginx's orphaned workers do not stop: $(nginx_pids)"
	fi
	if [ -n "$pid" ]; then
		say "nginx already running (pid $pid) on $listen"
	else
		local host_port=$nginx_port
		if listening "$host_port"; then
			owner=$(port_owner "$host_port")
			die "port $host_port (nginx's listener) is taken by another program${owner:+ ($owner)}"
		fi
		local u
		u=$(upstreams)
		rm -f "$RUN_DIR/bluegreen.state"
		PRIMARIES=${u%%|*} BACKUPS=${u#*|} LISTEN=$listen scripts/render_nginx.sh -o "$prefix/nginx.conf"
		local aprefix
		aprefix=$(cd "$prefix" && pwd)
		"$nginx" -q -p "$aprefix/" -c "$aprefix/nginx.conf" ||
			die "nginx did not start; see $prefix/logs/error.log"
		for ((i = 0; i < 50; i++)); do
			[ -n "$(pid_in "$nginx_pidfile" "$host_port")" ] && break
			sleep 0.1
		done
		pid=$(pid_in "$nginx_pidfile" "$host_port")
		[ -n "$pid" ] || die "nginx did not start; see $prefix/logs/error.log"
		say "nginx started (pid $pid) on $listen, config $prefix/nginx.conf"
	fi

	# Health checker
	if [ -z "${HEALTHCHECKER_CONFIG:-}" ] && [ -z "$(pid_in "$hc_pidfile")" ]; then
		LISTEN=$hc_listen scripts/render_healthchecker.sh -o "$hc_config" "${ports[@]}"
	fi
	if [ ! -x "$hc_bin" ]; then
		say "health checker: $hc_bin not built; skipped"
	elif [ ! -f "$hc_config" ]; then
		say "health checker: $hc_config missing; skipped"
	else
		pid=$(pid_in "$hc_pidfile")
		if [ -n "$pid" ]; then
			say "health checker already running (pid $pid)"
		else
			pid=$(fleetctl launch --pidfile "$hc_pidfile" --log "$LOG_DIR/healthchecker.log" -- "$hc_bin" --config "$hc_config")
			for ((i = 0; i < 50; i++)); do
				alive "$pid" || break
				[ "$(http_status "http://$hc_listen/status")" = 200 ] && break
				sleep 0.1
			done
			if ! alive "$pid"; then
				rm -f "$hc_pidfile" "$hc_pidfile.json"
				tail -n 5 "$LOG_DIR/healthchecker.log" | sed 's/^/    /' >&2
				die "health checker exited at start; see $LOG_DIR/healthchecker.log"
			fi
			say "health checker started (pid $pid), status at http://$hc_listen/status"
		fi
	fi

	# A first chat through nginx proves the whole path.
	local curl_line reply
	curl_line="curl -s http://$listen/v1/chat -H 'Authorization: Bearer $API_KEY' -H 'Content-Type: application/json' -d '{\"message\":\"你好\"}'"
	reply=""
	for ((i = 0; i < 50; i++)); do
		reply=$(curl -s -m 5 "http://$listen/v1/chat" -H "Authorization: Bearer $API_KEY" \
			-H 'Content-Type: application/json' -d '{"message":"你好"}' 2>/dev/null || true)
		case "$reply" in *'"reply"'*) break ;; esac
		sleep 0.1
	done
	case "$reply" in
	*'"reply"'*) say "up: a first chat through nginx answered $reply" ;;
	*) die "the fleet is up but a chat through nginx failed: ${reply:-no answer}" ;;
	esac
	echo "try:"
	echo "$curl_line"
}

down() {
	local pid rc=0
	pid=$(pid_in "$hc_pidfile")
	if [ -n "$pid" ]; then
		stop_pid "$pid" 15 "health checker" || rc=1
		say "health checker stopped"
	fi
	rm -f "$hc_pidfile" "$hc_pidfile.json"

	if [ -n "$(nginx_pids)" ]; then
		stop_nginx || rc=1
		say "nginx stopped"
	fi
	rm -f "$nginx_pidfile" "$RUN_DIR/bluegreen.state"

	scripts/stop_instances.sh || rc=1

	if [ -f "$redis_marker" ]; then
		local rpid rport
		rpid=$(redis_pid)
		rport=$(marker_port)
		if [ -n "$rpid" ]; then
			# SIGTERM: redis-server flushes its AOF and exits.
			stop_pid "$rpid" 15 redis-server || rc=1
			say "redis-server stopped (pid $rpid, port $rport; data stays in ./data)"
		fi
		rm -f "$redis_marker"
	fi
	[ $rc = 0 ] && say "down"
	return $rc
}

status() {
	local rc=0 pid s h r
	if redis_ping; then
		if [ -n "$(redis_pid)" ]; then
			s="up (pid $(redis_pid), started by make run or make fleet, data in ./data; make fleet-down stops it)"
		else
			s="up (not started by this project: make fleet-down leaves it)"
		fi
	else
		s="DOWN"
		rc=1
	fi
	printf '%-22s %-22s %s\n' "redis" "$redis_host:$redis_port" "$s"

	local -a all
	mapfile -t all < <({
		printf '%s\n' "${ports[@]}"
		pidfile_ports
	} | sort -nu)
	local -A digests=()
	local d
	for p in "${all[@]}"; do
		pid=$(instance_pid "$p")
		h=$(http_status "http://127.0.0.1:$p/health")
		r=$(http_status "http://127.0.0.1:$p/ready")
		d=""
		if [ -n "$pid" ]; then
			d=$(fleetctl settings "$(pidfile "$p")")
			digests[$d]+="$p "
		fi
		if [ -n "$pid" ] && [ "$h" = 200 ] && [ "$r" = 200 ]; then
			s="up (pid $pid) health ok, ready ok, settings $d"
		elif [ -n "$pid" ]; then
			s="UNHEALTHY (pid $pid) health $h, ready $r"
			rc=1
		else
			s="DOWN (no live pid in $(pidfile "$p"))"
			[ "$h" = 000 ] || s="$s, but something answers /health with $h"
			rc=1
		fi
		printf '%-22s %-22s %s\n' "instance $p" "127.0.0.1:$p" "$s"
	done
	if [ ${#digests[@]} -gt 1 ]; then
		s="MIXED: the instances run with different settings:"
		for d in "${!digests[@]}"; do s+=" $d (${digests[$d]% })"; done
		printf '%-22s %-22s %s\n' "settings" "" "$s; make fleet applies the current ones to all"
		rc=1
	fi

	pid=$(pid_in "$nginx_pidfile" "$nginx_port")
	local group
	group=$(nginx_pids)
	if [ -z "$pid" ] && [ -n "$group" ]; then
		s="ORPHANED: the master is gone, its workers (pids $group) still serve; make fleet-down stops them, make fleet replaces them"
		rc=1
	elif [ -n "$pid" ] && [ "$(http_status "http://$listen/health")" = 200 ]; then
		local servers
		servers=$(fleetctl upstream "$prefix/nginx.conf")
		s="up (pid $pid) upstream: $servers"
	elif [ -n "$pid" ]; then
		s="UNHEALTHY (pid $pid) /health does not answer"
		rc=1
	else
		s="DOWN"
		rc=1
	fi
	printf '%-22s %-22s %s\n' "nginx" "$listen" "$s"

	if [ ! -x "$hc_bin" ]; then
		s="not built"
	else
		pid=$(pid_in "$hc_pidfile")
		if [ -n "$pid" ] && [ "$(http_status "http://$hc_listen/status")" = 200 ]; then
			s="up (pid $pid) http://$hc_listen/status"
		elif [ -n "$pid" ]; then
			s="UNHEALTHY (pid $pid) /status does not answer"
			rc=1
		else
			s="DOWN"
			rc=1
		fi
	fi
	printf '%-22s %-22s %s\n' "healthchecker" "$hc_listen" "$s"
	return $rc
}

case "$1" in
up) up ;;
down) down ;;
status) status ;;
*) die "unknown command '$1' (see --help)" ;;
esac
