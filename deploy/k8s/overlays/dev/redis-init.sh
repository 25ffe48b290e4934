#!/bin/sh
# Writes this Redis pod's redis.conf and sentinel.conf into $CONF (the init
# container of the redis StatefulSet, redis-sentinel.yaml). The master is
# the one the sentinels name; when none answers (the set's first start) it
# is redis-0. Every address is a stable pod name (redis-N.redis), so a pod
# that comes back with a new IP keeps its place.
set -eu
CONF=${CONF:-/conf}
SVC=${SVC:-redis}
MASTER_NAME=${MASTER_NAME:-mymaster}
SELF="$HOSTNAME.$SVC"

master=""
for i in 0 1 2; do
	peer="redis-$i.$SVC"
	[ "$peer" = "$SELF" ] && continue
	if m=$(redis-cli -h "$peer" -p 26379 --raw sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null) && [ -n "$m" ]; then
		master=$(echo "$m" | head -n 1)
		break
	fi
done
[ -n "$master" ] || master="redis-0.$SVC"
echo "redis-init: $SELF, master $master"

cat >"$CONF/redis.conf" <<CONF
port 6379
bind * -::*
protected-mode no
dir /data
appendonly yes
replica-announce-ip $SELF
CONF
if [ "$master" != "$SELF" ]; then
	echo "replicaof $master 6379" >>"$CONF/redis.conf"
fi

# resolve-hostnames must come before monitor, which names a host.
cat >"$CONF/sentinel.conf" <<CONF
port 26379
bind * -::*
protected-mode no
dir /tmp
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SELF
sentinel monitor $MASTER_NAME $master 6379 2
sentinel down-after-milliseconds $MASTER_NAME 5000
sentinel failover-timeout $MASTER_NAME 30000
sentinel parallel-syncs $MASTER_NAME 1
CONF
