#!/bin/sh
# Writes this Redis pod's redis.conf and sentinel.conf into $CONF (the init
# container of the redis StatefulSet, redis-sentinel.yaml). The master is
# the one the sentinels name; when none answers (the set's first start) it
# is the first peer, redis-0. Every address is a stable pod name
# (redis-N.redis), so a pod that comes back with a new IP keeps its place.
# The defaults are the StatefulSet's; the test of this script
# (deploy/k8s/check) runs three such "pods" on loopback addresses.
set -eu
CONF=${CONF:-/conf}
SVC=${SVC:-redis}
MASTER_NAME=${MASTER_NAME:-mymaster}
SELF=${SELF:-$HOSTNAME.$SVC}
PEERS=${PEERS:-redis-0.$SVC redis-1.$SVC redis-2.$SVC}
PORT=${PORT:-6379}
SENTINEL_PORT=${SENTINEL_PORT:-26379}
BIND=${BIND:-* -::*}
DATA=${DATA:-/data}
SENTINEL_DIR=${SENTINEL_DIR:-/tmp}

master=""
for peer in $PEERS; do
	[ "$peer" = "$SELF" ] && continue
	if m=$(redis-cli -h "$peer" -p "$SENTINEL_PORT" --raw sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null) && [ -n "$m" ]; then
		master=$(echo "$m" | head -n 1)
		break
	fi
done
if [ -z "$master" ]; then
	set -- $PEERS
	master=$1
fi
echo "redis-init: $SELF, master $master"

cat >"$CONF/redis.conf" <<CONF
port $PORT
bind $BIND
protected-mode no
dir $DATA
appendonly yes
replica-announce-ip $SELF
CONF
if [ "$master" != "$SELF" ]; then
	echo "replicaof $master $PORT" >>"$CONF/redis.conf"
fi

# resolve-hostnames must come before monitor, which names a host.
cat >"$CONF/sentinel.conf" <<CONF
port $SENTINEL_PORT
bind $BIND
protected-mode no
dir $SENTINEL_DIR
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SELF
sentinel monitor $MASTER_NAME $master $PORT 2
sentinel down-after-milliseconds $MASTER_NAME 5000
sentinel failover-timeout $MASTER_NAME 30000
sentinel parallel-syncs $MASTER_NAME 1
CONF
