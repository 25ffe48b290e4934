#!/usr/bin/env bash
# fleet.sh — the local fleet behind make fleet / fleet-down / fleet-status.
set -euo pipefail
SCRIPT=fleet

usage() {
	cat <<'EOF'
Usage: scripts/fleet.sh up|down|status

up      (make fleet) Redis — the configured one if it answers, else a local
        redis-server with AOF under ./data — then the instances
        (scripts/start_multiple_instances.sh), nginx on $LISTEN from the
        prefix run/nginx, and bin/healthchecker when it is built. Idempotent:
        parts already running are left alone. Ends with a curl line for a
        first chat through nginx.
down    (make fleet-down) stops the health checker, nginx, every instance
        with a pid file, and the Redis that "up" started (only that one).
status  (make fleet-status) every part with its pid and state; exits 1
        when a part is down.

Environment:
  PORTS          instances (default "8080 8081 8082 8083"; the last is the
                 backup, the others weigh 1, 1, 2, ... as in nginx/nginx.conf)
  LISTEN         nginx's listener (default 127.0.0.1:18789)
  API_KEY        the instances' key (default dev-key)
  REDIS_HOST, REDIS_PORT, REDIS_PASSWORD  the Redis to use or start
  HEALTHCHECKER_CONFIG  the checker's config (default: run/healthchecker.yaml,
                 rendered for PORTS by scripts/render_healthchecker.sh)
  RUN_DIR, LOG_DIR, BOT_BIN, CONFIG as in start_multiple_instances.sh
EOF
}

case "${1:-}" in -h | --help | "")
	usage
	[ -n "${1:-}" ] || exit 2
	exit 0
	;;
esac
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
hc_config=${HEALTHCHECKER_CONFIG:-$RUN_DIR/healthchecker.yaml}
hc_pidfile="$RUN_DIR/healthchecker.pid"
hc_listen=127.0.0.1:9090
if [ -f "$hc_config" ]; then
	l=$(sed -n 's/^listen:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$hc_config" | head -1)
	[ -z "$l" ] || hc_listen=$l
fi

nginx_bin() {
	if command -v nginx >/dev/null 2>&1; then
		command -v nginx
	elif [ -x /usr/sbin/nginx ]; then
		echo /usr/sbin/nginx
	fi
}

# pid_in FILE: the live pid in FILE, or nothing.
pid_in() {
	local pid
	[ -f "$1" ] || return 0
	pid=$(tr -dc '0-9' <"$1")
	if alive "$pid"; then echo "$pid"; fi
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
	scripts/ensure_redis.sh --marker "$redis_marker"

	# Instances
	PORTS="${ports[*]}" scripts/start_multiple_instances.sh

	# nginx
	local nginx pid
	nginx=$(nginx_bin)
	[ -n "$nginx" ] || die "nginx not found; run scripts/install_deps.sh as root"
	pid=$(pid_in "$nginx_pidfile")
	if [ -n "$pid" ]; then
		say "nginx already running (pid $pid) on $listen"
	else
		local host_port=${listen##*:}
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
			[ -n "$(pid_in "$nginx_pidfile")" ] && listening "$host_port" && break
			sleep 0.1
		done
		pid=$(pid_in "$nginx_pidfile")
		[ -n "$pid" ] || die "nginx did not start; see $prefix/logs/error.log"
		say "nginx started (pid $pid) on $listen, config $prefix/nginx.conf"
	fi

	# Health checker
	if [ -z "${HEALTHCHECKER_CONFIG:-}" ] && [ -z "$(pid_in "$hc_pidfile")" ]; then
		scripts/render_healthchecker.sh -o "$hc_config" "${ports[@]}"
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
			setsid nohup "$hc_bin" --config "$hc_config" </dev/null >>"$LOG_DIR/healthchecker.log" 2>&1 &
			echo $! >"$hc_pidfile"
			pid=$!
			for ((i = 0; i < 50; i++)); do
				alive "$pid" || break
				[ "$(http_status "http://$hc_listen/status")" = 200 ] && break
				sleep 0.1
			done
			if ! alive "$pid"; then
				rm -f "$hc_pidfile"
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
	rm -f "$hc_pidfile"

	pid=$(pid_in "$nginx_pidfile")
	if [ -n "$pid" ]; then
		# SIGQUIT: graceful; workers finish their requests.
		kill -QUIT "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		stop_pid "$pid" 5 nginx || rc=1
		say "nginx stopped"
	fi
	rm -f "$nginx_pidfile" "$RUN_DIR/bluegreen.state"

	scripts/stop_instances.sh || rc=1

	if [ -f "$redis_marker" ]; then
		local rpid rport
		rpid=$(sed -n 's/^pid=//p' "$redis_marker")
		rport=$(sed -n 's/^port=//p' "$redis_marker")
		if alive "$rpid" && [[ " $(cmdline "$rpid") " == *redis-server*":$rport"* ]]; then
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
		if [ -f "$redis_marker" ]; then
			s="up (pid $(sed -n 's/^pid=//p' "$redis_marker"), started by make fleet, data in ./data)"
		else
			s="up (not started by make fleet)"
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
	for p in "${all[@]}"; do
		pid=$(instance_pid "$p")
		h=$(http_status "http://127.0.0.1:$p/health")
		r=$(http_status "http://127.0.0.1:$p/ready")
		if [ -n "$pid" ] && [ "$h" = 200 ] && [ "$r" = 200 ]; then
			s="up (pid $pid) health ok, ready ok"
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

	pid=$(pid_in "$nginx_pidfile")
	if [ -n "$pid" ] && [ "$(http_status "http://$listen/health")" = 200 ]; then
		local servers
		servers=$(sed -n 's/^ *server \([^ ]*\) \([^ ]*\) .*/\1 \2/p' "$prefix/nginx.conf" | sed 's/^127\.0\.0\.1://' | paste -sd, - | sed 's/,/, /g')
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
