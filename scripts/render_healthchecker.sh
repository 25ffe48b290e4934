#!/usr/bin/env bash
# render_healthchecker.sh — the health checker's YAML for a list of local
# instances (pidfile strategy), as make fleet and bluegreen.sh run them.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

usage() {
	cat <<'EOF'
Usage: scripts/render_healthchecker.sh [-o FILE] PORT...

Writes bin/healthchecker's configuration for the local instances on PORT...
(started by scripts/start_multiple_instances.sh: pid files
run/instance_$PORT.pid, logs logs/instance_$PORT.log) to standard output or
FILE. LISTEN sets the checker's own address (default 127.0.0.1:9090; port
0 picks a free one), ADDR_FILE the file it writes the address it listens on
to (default none; fleetctl checker addr reads it);
REGISTRY_REDIS the Redis it publishes its targets to (default
REDIS_HOST:REDIS_PORT; empty for none); ALERT_WEBHOOK, ALERT_KIND (generic,
dingtalk or feishu) and ALERT_SECRET its alert robot (default none: alerts
are only logged); BOT_BIN, RUN_DIR and LOG_DIR as for
start_multiple_instances.sh.

  scripts/render_healthchecker.sh -o deploy/healthchecker.example.yaml 8080 8081 8082 8083
EOF
}

fail() {
	echo "render_healthchecker: $*" >&2
	exit 2
}

out=""
ports=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	-o)
		[ $# -ge 2 ] || fail "-o needs a file"
		out=$2
		shift 2
		;;
	*)
		if ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then fail "bad port '$1'"; fi
		ports+=("$1")
		shift
		;;
	esac
done
[ ${#ports[@]} -gt 0 ] || fail "no ports (see --help)"
listen=${LISTEN:-127.0.0.1:9090}
registry=${REGISTRY_REDIS-${REDIS_HOST:-127.0.0.1}:${REDIS_PORT:-6379}}
alert_kind=${ALERT_KIND:-generic}

render() {
	cat <<EOF
# botfleet health-checker for the local fleet: instances ${ports[*]} started by
# scripts/start_multiple_instances.sh (pid files run/instance_\$PORT.pid, logs
# logs/instance_\$PORT.log). Run from the repository root:
#   bin/healthchecker --config deploy/healthchecker.example.yaml
# Rendered by scripts/render_healthchecker.sh (make fleet and bluegreen.sh
# render run/healthchecker.yaml for the ports they run); edit the script.
# Durations are strings with a unit ("2s", "500ms"); unknown keys are errors.

listen: $listen     # GET /status (JSON) and /metrics (Prometheus); port 0: a free one
addr_file: "${ADDR_FILE:-}"              # gets the address listened on once listening (for port 0); empty: none
on_exit: leave             # SIGTERM: leave supervised instances running, or "stop" them

alert:
  webhook: "${ALERT_WEBHOOK:-}"              # POST here when a target is marked failed; empty: log only
  kind: $alert_kind            # generic | dingtalk | feishu (robot message format)
  secret: "${ALERT_SECRET:-}"               # robot signing secret (DingTalk / Feishu "signature" security)

registry:                  # publish the targets' states to the fleet registry (the console's health-checker view)
  redis: "$registry"   # the fleet's Redis, host:port; empty: publish nothing
  password: ""
  db: 0
  key_prefix: bf           # the instances' redis.key_prefix
  interval: 2s             # between publications
  name: healthchecker      # this checker's name in the registry

defaults:                  # every target inherits these and may override any of them
  period: 1s               # between probes
  timeout: 1s              # one probe; 2xx/3xx is success
  initial_delay: 1s        # before the first probe
  jitter: 500ms            # random extra delay before the first probe, 0..jitter
  failure_threshold: 3     # consecutive failures before liveness is failed (restart)
  success_threshold: 1     # consecutive successes before it is healthy again
  grace: 10s               # SIGTERM -> SIGKILL when stopping an instance
  startup_timeout: 30s     # after a restart, wait this long for /health (else a failed start)
  backoff:                 # CrashLoop: consecutive restarts wait initial, 2x, 4x ... up to max
    initial: 1s
    max: 60s
    reset_after: 120s      # a run healthy this long resets the delay
  budget:                  # more than \`restarts\` restarts within \`window\`: failed + alert
    restarts: 5
    window: 10m

targets:
EOF
	local p
	for p in "${ports[@]}"; do
		cat <<EOF
  - name: bot-$p
    liveness: http://127.0.0.1:$p/health     # restart on failure
    readiness: http://127.0.0.1:$p/ready     # reported only (a Redis outage never restarts anything)
    restart:
      strategy: pidfile                       # supervise | pidfile | command | none
      command: ["$BOT_BIN", "--port", "{{.Port}}"]
      env: {WEB_PORT: "$p", INSTANCE_NAME: "bot-instance-$p"}
      dir: "."
      log: $LOG_DIR/instance_$p.log
      pidfile: $RUN_DIR/instance_$p.pid
      # strategy command instead (systemd, docker): run: "systemctl restart bot@{{.Port}}"
EOF
	done
}

if [ -n "$out" ]; then
	tmp="$out.tmp.$$"
	render >"$tmp"
	mv -f "$tmp" "$out"
else
	render
fi
