#!/usr/bin/env bash
# bluegreen.sh — blue-green deploys of the instance set behind nginx (seeds
# 000/001): start the other colour, switch nginx to it gracefully, stop the
# old colour; roll back the same way.
set -euo pipefail
# shellcheck disable=SC2034 # read by scripts/lib.sh
NEEDS_ARGS=1

usage() {
	cat <<'EOF'
Usage: scripts/bluegreen.sh deploy blue|green
       scripts/bluegreen.sh rollback
       scripts/bluegreen.sh status

deploy COLOUR  starts COLOUR's instances (scripts/start_multiple_instances.sh,
               waiting until ready), renders nginx's upstream for them
               (scripts/render_nginx.sh), checks it with nginx -t, reloads
               nginx gracefully (SIGHUP to the pid in its pid file; old
               workers finish their requests), waits until the old workers
               are gone, then stops the other colour's instances (SIGTERM
               drain). COLOUR must not be the live one.
rollback       deploys the colour that was live before.
status         the live colour and its instances.

The live colour is kept in run/bluegreen.state; without it blue is live
(make fleet starts blue).

Environment:
  BLUE_PRIMARIES   default "8080:1 8081:1 8082:2"   BLUE_BACKUPS   default "8083"
  GREEN_PRIMARIES  default "8090:1 8091:1 8092:2"   GREEN_BACKUPS  default "8093"
  NGINX_PREFIX     nginx's -p folder (default run/nginx)
  NGINX_CONF       the config nginx runs (default $NGINX_PREFIX/nginx.conf)
  NGINX_PID        its pid file (default $NGINX_PREFIX/nginx.pid)
  LISTEN           nginx's listener (default 127.0.0.1:18789)
  NGINX            the nginx program (default: nginx on PATH or /usr/sbin/nginx)
  and everything start_multiple_instances.sh takes (BOT_BIN, RUN_DIR, ...).
EOF
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

blue_primaries=${BLUE_PRIMARIES:-8080:1 8081:1 8082:2}
blue_backups=${BLUE_BACKUPS-8083}
green_primaries=${GREEN_PRIMARIES:-8090:1 8091:1 8092:2}
green_backups=${GREEN_BACKUPS-8093}
prefix=${NGINX_PREFIX:-run/nginx}
conf=${NGINX_CONF:-$prefix/nginx.conf}
nginx_pid=${NGINX_PID:-$prefix/nginx.pid}
listen=${LISTEN:-127.0.0.1:18789}
state="$RUN_DIR/bluegreen.state"

nginx_bin() {
	if [ -n "${NGINX:-}" ]; then
		echo "$NGINX"
	elif command -v nginx >/dev/null 2>&1; then
		command -v nginx
	elif [ -x /usr/sbin/nginx ]; then
		echo /usr/sbin/nginx
	else
		die "nginx not found; run scripts/install_deps.sh"
	fi
}

# ports_of "8080:1 host:8081:2 8083": the ports.
ports_of() {
	local e f
	for e in $1; do
		IFS=: read -r -a f <<<"$e"
		if [ ${#f[@]} -eq 3 ] || { [ ${#f[@]} -eq 2 ] && ! [[ ${f[0]} =~ ^[0-9]+$ ]]; }; then
			echo "${f[1]}"
		else
			echo "${f[0]}"
		fi
	done
}

colour_ports() {
	case "$1" in
	blue) ports_of "$blue_primaries $blue_backups" ;;
	green) ports_of "$green_primaries $green_backups" ;;
	esac
}

live() {
	local c=""
	[ -f "$state" ] && c=$(sed -n 's/^live=//p' "$state")
	echo "${c:-blue}"
}
previous() { if [ -f "$state" ]; then sed -n 's/^previous=//p' "$state"; fi; }
other() { if [ "$1" = blue ]; then echo green; else echo blue; fi; }

# workers: pids of nginx's master and workers (its process group).
workers() { fleetctl group --port "${listen##*:}" "$nginx_pid" 2>/dev/null | tr ' ' '\n'; }

deploy() {
	local to=$1 from
	from=$(live)
	[ "$to" = blue ] || [ "$to" = green ] || die "colour must be blue or green, got '$to'"
	[ "$to" != "$from" ] || die "$to is already live; deploy $(other "$to"), or roll back"
	local nginx master
	nginx=$(nginx_bin)
	master=""
	if [ -f "$nginx_pid" ]; then master=$(tr -dc '0-9' <"$nginx_pid"); fi
	alive "$master" || die "nginx is not running (no live pid in $nginx_pid); start the fleet first (make fleet)"

	local -a to_ports from_ports
	mapfile -t to_ports < <(colour_ports "$to")
	mapfile -t from_ports < <(colour_ports "$from")
	say "starting $to: ${to_ports[*]}"
	scripts/start_multiple_instances.sh "${to_ports[@]}" || die "$to did not come up ready; $from stays live (stop $to with scripts/stop_instances.sh ${to_ports[*]})"

	local p b
	if [ "$to" = blue ]; then p=$blue_primaries b=$blue_backups; else p=$green_primaries b=$green_backups; fi
	local new="$conf.new.$$"
	PRIMARIES=$p BACKUPS=$b LISTEN=$listen scripts/render_nginx.sh -o "$new"
	if ! "$nginx" -t -q -p "$prefix/" -c "$(cd "$(dirname "$new")" && pwd)/$(basename "$new")"; then
		rm -f "$new"
		die "the rendered config for $to fails nginx -t; $from stays live"
	fi
	cp -f "$conf" "$conf.$from" 2>/dev/null || true
	mv -f "$new" "$conf"

	local -a old
	mapfile -t old < <(workers | grep -vx "$master")
	kill -HUP "$master"
	say "nginx (pid $master) reloading: upstream now $to"
	# Old workers finish their requests and exit; until then they may still
	# send new requests to the old colour, so it stays up until they are gone.
	local i w left
	for ((i = 0; i < 300; i++)); do
		left=0
		for w in "${old[@]}"; do alive "$w" && left=1; done
		[ $left = 0 ] && break
		sleep 0.1
	done
	[ $left = 0 ] || warn "old nginx workers still finishing after 30s; stopping $from anyway (nginx retries on $to)"

	printf 'live=%s\nprevious=%s\n' "$to" "$from" >"$state"
	local hc="" hc_config="$RUN_DIR/healthchecker.yaml" listen_hc=""
	if [ -f "$hc_config" ] && [ -f "$RUN_DIR/healthchecker.pid" ]; then
		listen_hc=$(fleetctl checker addr --config "$hc_config" 2>/dev/null || true)
		hc=$(fleetctl pid --port "${listen_hc##*:}" "$RUN_DIR/healthchecker.pid" 2>/dev/null || true)
	fi
	if [ -n "$hc" ]; then
		# The checker make fleet started: watch the new colour before the
		# old one stops, so it does not restart the old one.
		LISTEN=$listen_hc scripts/render_healthchecker.sh -o "$hc_config" "${to_ports[@]}"
		kill -HUP "$hc"
		for ((i = 0; i < 50; i++)); do
			curl -fsS "http://$listen_hc/status" 2>/dev/null | grep -q "\"bot-${from_ports[0]}\"" || break
			sleep 0.1
		done
		say "health checker (pid $hc) now watches $to: ${to_ports[*]}"
	elif [ -f "$RUN_DIR/healthchecker.pid" ]; then
		warn "a health checker may probe the ports in its own config: point its targets at $to's ports and send it SIGHUP, or it restarts $from's instances"
	fi
	say "$to is live; stopping $from: ${from_ports[*]}"
	scripts/stop_instances.sh "${from_ports[@]}" >/dev/null || warn "some $from instances needed SIGKILL"
	say "done: $to live (${to_ports[*]}); roll back with: scripts/bluegreen.sh rollback"
}

case "$1" in
deploy)
	[ $# -eq 2 ] || die "usage: bluegreen.sh deploy blue|green"
	mkdir -p "$RUN_DIR"
	deploy "$2"
	;;
rollback)
	prev=$(previous)
	[ -n "$prev" ] || die "nothing to roll back to ($state names no previous colour)"
	say "rolling back to $prev"
	deploy "$prev"
	;;
status)
	c=$(live)
	echo "live: $c"
	for p in $(colour_ports "$c"); do
		pid=$(instance_pid "$p")
		echo "  instance $p: ${pid:+pid $pid }$(http_status "http://127.0.0.1:$p/ready" | sed 's/^200$/ready/;s/^000$/down/')"
	done
	;;
*) die "unknown command '$1' (see --help)" ;;
esac
