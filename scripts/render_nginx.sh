#!/usr/bin/env bash
# render_nginx.sh — render nginx/nginx.conf.tmpl for a list of bot instances.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/render_nginx.sh [-o FILE]

Renders nginx/nginx.conf.tmpl for any list of bot instances and writes it to
standard output (or FILE). Settings come from the environment:

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

Example (the committed local-fleet config):
  scripts/render_nginx.sh -o nginx/nginx.conf
EOF
}

out=""
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help)
		usage
		exit 0
		;;
	-o)
		[ $# -ge 2 ] || {
			echo "render_nginx: -o needs a file" >&2
			exit 2
		}
		out=$2
		shift 2
		;;
	*)
		echo "render_nginx: unexpected argument $1 (see --help)" >&2
		exit 2
		;;
	esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
tmpl="$root/nginx/nginx.conf.tmpl"

primaries=${PRIMARIES-8080:1 8081:1 8082:2}
backups=${BACKUPS-8083}
host=${HOST:-127.0.0.1}
listen=${LISTEN:-127.0.0.1:18789}
prefix=${PREFIX:-}
daemon=${DAEMON:-}
workers=${WORKERS:-auto}

fail() {
	echo "render_nginx: $*" >&2
	exit 2
}
isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
checkport() {
	if ! isnum "$1" || [ "$1" -lt 1 ] || [ "$1" -gt 65535 ]; then fail "bad port '$1' in '$2'"; fi
}

# server_line ENTRY KIND: one "server host:port ...;" line; KIND is primary or backup.
server_line() {
	local entry=$1 kind=$2 h=$host p w=1 has_w=no
	local -a f
	IFS=: read -r -a f <<<"$entry"
	case ${#f[@]} in
	1) p=${f[0]} ;;
	2) if isnum "${f[0]}"; then p=${f[0]} w=${f[1]} has_w=yes; else h=${f[0]} p=${f[1]}; fi ;;
	3) h=${f[0]} p=${f[1]} w=${f[2]} has_w=yes ;;
	*) fail "bad instance '$entry': want [host:]port[:weight]" ;;
	esac
	[ -n "$h" ] || fail "bad instance '$entry': empty host"
	checkport "$p" "$entry"
	if [ "$kind" = backup ]; then
		[ "$has_w" = no ] || fail "backup '$entry' takes no weight"
		printf '        server %s:%s backup max_fails=1 fail_timeout=2s;\n' "$h" "$p"
	else
		if ! isnum "$w" || [ "$w" -lt 1 ]; then fail "bad weight '$w' in '$entry'"; fi
		printf '        server %s:%s weight=%s max_fails=1 fail_timeout=2s;\n' "$h" "$p" "$w"
	fi
}

servers="" count=0
for e in $primaries; do
	servers+=$(server_line "$e" primary)$'\n'
	count=$((count + 1))
done
[ -n "$servers" ] || fail "PRIMARIES is empty: name at least one instance"
for e in $backups; do
	servers+=$(server_line "$e" backup)$'\n'
	count=$((count + 1))
done
tries=${TRIES:-$count}
[[ $tries =~ ^[0-9]+$ ]] || fail "bad TRIES '$tries'"
servers=${servers%$'\n'}

listen_re='^[^[:space:];]+$'
[[ $listen =~ $listen_re ]] || fail "bad LISTEN '$listen'"
[[ $workers =~ ^([0-9]+|auto)$ ]] || fail "bad WORKERS '$workers'"
case "$daemon" in
"") daemon_line="# daemon: nginx's default (on); add -g 'daemon off;' to stay in the foreground" ;;
on | off) daemon_line="daemon $daemon;" ;;
*) fail "DAEMON must be on, off or empty, got '$daemon'" ;;
esac
if [ -n "$prefix" ]; then
	case "$prefix" in
	*[[:space:]\;\'\"]*) fail "PREFIX must not contain spaces, quotes or ';'" ;;
	esac
	prefix="${prefix%/}/"
fi
generated="Rendered by scripts/render_nginx.sh from nginx/nginx.conf.tmpl (PRIMARIES=\"$primaries\" BACKUPS=\"$backups\" LISTEN=$listen); edit the template, not this file."

rendered=$(
	SERVERS=$servers PREFIX_V=$prefix LISTEN_V=$listen WORKERS_V=$workers TRIES_V=$tries DAEMON_V=$daemon_line GEN_V=$generated \
		awk '
		function sub_all(s, k, v) {
			# literal replacement: no regex or & in the value
			while ((i = index(s, k)) > 0) s = substr(s, 1, i - 1) v substr(s, i + length(k))
			return s
		}
		/^@@SERVERS@@$/ { print ENVIRON["SERVERS"]; next }
		{
			line = $0
			line = sub_all(line, "@@PREFIX@@", ENVIRON["PREFIX_V"])
			line = sub_all(line, "@@LISTEN@@", ENVIRON["LISTEN_V"])
			line = sub_all(line, "@@WORKERS@@", ENVIRON["WORKERS_V"])
			line = sub_all(line, "@@TRIES@@", ENVIRON["TRIES_V"])
			line = sub_all(line, "@@DAEMON@@", ENVIRON["DAEMON_V"])
			line = sub_all(line, "@@GENERATED@@", ENVIRON["GEN_V"])
			print line
		}' "$tmpl"
)

if [ -n "$out" ]; then
	mkdir -p "$(dirname "$out")"
	tmp="$out.tmp.$$"
	printf '%s\n' "$rendered" >"$tmp"
	mv -f "$tmp" "$out"
else
	printf '%s\n' "$rendered"
fi
