#!/usr/bin/env bash
# stop_instances.sh — stop bot instances by their pid files: SIGTERM (the
# bot drains), a grace period, then SIGKILL.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/stop_instances.sh [PORT...]

Stops the instances on the given ports (default: $PORTS, else every
run/instance_*.pid) by the pid in run/instance_$PORT.pid: SIGTERM — the
instance drains: /ready turns 503, its listener closes, in-flight turns
finish — then after GRACE seconds SIGKILL. Removes the pid files and their
launch records. All named instances are signalled at once. A pid file whose
pid is gone or is not the instance (bin/fleetctl pid: not the launch
record's process, nor the port's listener) is just removed; nothing is ever
killed by name.

Environment:
  PORTS    ports when none are given as arguments
  GRACE    seconds between SIGTERM and SIGKILL (default 20; the bot's
           server.shutdown_grace is 15s)
  RUN_DIR  pid files (default run)
EOF
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

grace=${GRACE:-20}
mapfile -t ports < <(running_ports "$@")
if [ ${#ports[@]} -eq 0 ]; then
	say "no instances (no pid files in $RUN_DIR)"
	exit 0
fi

pids=() names=()
for p in "${ports[@]}"; do
	pid=$(instance_pid "$p")
	if [ -z "$pid" ]; then
		say "instance $p is not running"
		continue
	fi
	kill -TERM "$pid" 2>/dev/null || true
	say "instance $p: SIGTERM (pid $pid), draining"
	pids+=("$pid") names+=("$p")
done

rc=0
for i in "${!pids[@]}"; do
	# stop_pid sends SIGTERM again (harmless) and escalates after the grace.
	stop_pid "${pids[$i]}" "$grace" "instance ${names[$i]}" || rc=1
	f=$(pidfile "${names[$i]}")
	rm -f "$f" "$f.json"
	say "instance ${names[$i]} stopped"
done
exit $rc
