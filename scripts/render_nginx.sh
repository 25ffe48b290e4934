#!/usr/bin/env bash
# render_nginx.sh — render nginx/nginx.conf.tmpl for a list of bot instances
# (bin/fleetctl render-nginx does the work).
set -euo pipefail

usage() {
	cat <<'EOF2'
Usage: scripts/render_nginx.sh [-o FILE]

Renders nginx/nginx.conf.tmpl (a Go text/template) for any list of bot
instances and writes it to standard output (or FILE). Settings come from the
environment:

  PRIMARIES  instances that share the load, "[host:]port[:weight]" separated
             by spaces (default "8080:1 8081:1 8082:2")
  BACKUPS    backup instances, "[host:]port", used only while every primary
             is out (default "8083"; empty for none)
  HOST       host of entries that name none (default 127.0.0.1)
  LISTEN     nginx's public listener (default 127.0.0.1:18789)
  PREFIX     folder for the pid file, logs/ and temp folders; empty (the
             default) writes paths relative to nginx's -p prefix
  DAEMON     on or off writes a "daemon" directive; empty (the default)
             leaves nginx's default (on), so -g 'daemon off;' works
  WORKERS    worker_processes (default auto)
  TRIES      proxy_next_upstream_tries (default: the number of instances,
             so one request may try each once and reach the backup)
  FLEETCTL   the fleetctl program (default bin/fleetctl; make build)

Example (the committed local-fleet config):
  scripts/render_nginx.sh -o nginx/nginx.conf
EOF2
}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
fleetctl render-nginx "$@" || die "rendering failed (see the line above)"
