#!/usr/bin/env bash
# ensure_redis.sh — use the configured Redis if it answers, else start a
# local redis-server on that port with AOF persistence under ./data.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/ensure_redis.sh [--marker FILE]

Uses the Redis at REDIS_HOST:REDIS_PORT (default 127.0.0.1:6379, with
REDIS_PASSWORD) if it answers PING; else, when that address is local, starts
a redis-server there (daemonized, AOF on, data, pid and log in $DATA_DIR,
default ./data) and waits until it answers. Prints the address in use.

  --marker FILE  when it starts a redis-server, write its pid and port to
                 FILE (default $RUN_DIR/fleet_redis, RUN_DIR default run):
                 make fleet-down stops the Redis it names — the one make run
                 or make fleet started — and no other
USAGE
}

marker=${RUN_DIR:-run}/fleet_redis
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	--marker)
		[ $# -ge 2 ] || {
			echo "ensure_redis: --marker needs a file" >&2
			exit 2
		}
		marker=$2
		shift 2
		;;
	*)
		echo "ensure_redis: unexpected argument $1 (see --help)" >&2
		exit 2
		;;
	esac
done
cd "$(dirname "$0")/.."

host=${REDIS_HOST:-127.0.0.1}
port=${REDIS_PORT:-6379}
auth=()
[ -n "${REDIS_PASSWORD:-}" ] && auth=(--no-auth-warning -a "$REDIS_PASSWORD")

if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
	echo "redis: redis-server/redis-cli not found; run scripts/install_deps.sh (as root), or: sudo apt-get install -y redis-server redis-tools" >&2
	exit 1
fi

ping() { redis-cli -h "$host" -p "$port" "${auth[@]}" ping 2>/dev/null | grep -q PONG; }

if ping; then
	echo "redis: using $host:$port"
	exit 0
fi
case "$host" in
127.0.0.1 | localhost | ::1) ;;
*)
	echo "redis: $host:$port does not answer, and it is not local, so I will not start one" >&2
	exit 1
	;;
esac
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	echo "redis: port $port is taken by a program that does not answer PING as Redis; set REDIS_PORT" >&2
	exit 1
fi
data=$(mkdir -p "${DATA_DIR:-data}" && cd "${DATA_DIR:-data}" && pwd)
pass=()
[ -n "${REDIS_PASSWORD:-}" ] && pass=(--requirepass "$REDIS_PASSWORD")
redis-server --bind 127.0.0.1 --port "$port" --dir "$data" --appendonly yes \
	--daemonize yes --pidfile "$data/redis_$port.pid" --logfile "$data/redis_$port.log" "${pass[@]}"
for _ in $(seq 50); do
	if ping; then
		pid=$(cat "$data/redis_$port.pid")
		mkdir -p "$(dirname "$marker")"
		printf 'pid=%s\nport=%s\n' "$pid" "$port" >"$marker"
		echo "redis: started redis-server on $host:$port (data in ./data, pid $pid; make fleet-down stops it)"
		exit 0
	fi
	sleep 0.1
done
echo "redis: redis-server did not come up on $port; see $data/redis_$port.log" >&2
exit 1
