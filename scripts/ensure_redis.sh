#!/usr/bin/env bash
# ensure_redis.sh — use the configured Redis if it answers, else start a
# local redis-server on that port with AOF persistence under ./data.
# Reads REDIS_HOST (default 127.0.0.1), REDIS_PORT (default 6379) and
# REDIS_PASSWORD. Prints the address in use.
set -euo pipefail
cd "$(dirname "$0")/.."

host=${REDIS_HOST:-127.0.0.1}
port=${REDIS_PORT:-6379}
auth=()
[ -n "${REDIS_PASSWORD:-}" ] && auth=(--no-auth-warning -a "$REDIS_PASSWORD")

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
mkdir -p data
pass=()
[ -n "${REDIS_PASSWORD:-}" ] && pass=(--requirepass "$REDIS_PASSWORD")
redis-server --bind 127.0.0.1 --port "$port" --dir "$PWD/data" --appendonly yes \
	--daemonize yes --pidfile "$PWD/data/redis_$port.pid" --logfile "$PWD/data/redis_$port.log" "${pass[@]}"
for _ in $(seq 50); do
	if ping; then
		echo "redis: started redis-server on $host:$port (data in ./data, pid $(cat "data/redis_$port.pid"))"
		exit 0
	fi
	sleep 0.1
done
echo "redis: redis-server did not come up on $port; see data/redis_$port.log" >&2
exit 1
