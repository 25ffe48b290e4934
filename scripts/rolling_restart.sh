#!/usr/bin/env bash
# rolling_restart.sh — restart bot instances one at a time without
# dropping a request.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/rolling_restart.sh [PORT...]

Restarts the instances one at a time (default: $PORTS, else every
run/instance_*.pid, else 8080 8081 8082 8083), e.g. after make build:

  0. Pause the health checker's restarts of it (POST /pause on the checker
     of run/healthchecker.yaml, a 2-minute lease), so the checker does not
     restart it at the same time; resumed after step 2.
  1. SIGTERM by the pid file (scripts/stop_instances.sh): the instance
     drains — /ready turns 503, its listener closes, in-flight turns finish.
     nginx sends new requests, and retries any that hit the closing
     instance, to the others (proxy_next_upstream ... non_idempotent; the
     request id makes the retry safe).
  2. Start it again (scripts/start_multiple_instances.sh) and wait until
     it answers /health and /ready.
  3. Wait SETTLE seconds (default 2, nginx's fail_timeout) so nginx sends it
     traffic again before the next instance goes down.

Stops at the first instance that does not come back ready.

Environment: PORTS, SETTLE, GRACE, HEALTHCHECKER_CONFIG (default
run/healthchecker.yaml), and everything start_multiple_instances.sh
takes (BOT_BIN, CONFIG, RUN_DIR, LOG_DIR, API_KEY, REDIS_HOST, ...).
EOF
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

settle=${SETTLE:-2}
mapfile -t ports < <(running_ports "$@")
[ ${#ports[@]} -gt 0 ] || read -r -a ports <<<"$DEFAULT_PORTS"
[ -x "$BOT_BIN" ] || die "$BOT_BIN not found or not executable; run: make build"

n=0
for p in "${ports[@]}"; do
	n=$((n + 1))
	old=$(instance_pid "$p")
	say "[$n/${#ports[@]}] instance $p: restarting (pid ${old:-none})"
	checker pause "$p"
	scripts/stop_instances.sh "$p" >/dev/null
	if ! scripts/start_multiple_instances.sh "$p" >/dev/null; then
		checker resume "$p"
		die "instance $p did not come back ready; stopping the rollout here (see $LOG_DIR/instance_$p.log)"
	fi
	checker resume "$p"
	say "[$n/${#ports[@]}] instance $p: ready again (pid $(instance_pid "$p"))"
	if [ "$n" -lt ${#ports[@]} ]; then
		sleep "$settle"
	fi
done
say "restarted ${ports[*]}"
