#!/usr/bin/env bash
# install_deps.sh — make sure the system programs botfleet needs are here,
# from Debian's packages (see --help). As root it installs what is missing;
# otherwise it prints the exact command to run and fails.
set -euo pipefail

case "${1:-}" in
-h | --help)
	cat <<'EOF2'
Usage: scripts/install_deps.sh [--tests]

Makes sure the programs botfleet needs are installed, from Debian's
packages: redis-server, redis-cli and redis-sentinel (shared memory), nginx
(the fleet's load balancer), curl (the scripts' probes), etcd (the store of
the kube-apiserver that checks deploy/k8s), systemd-analyze (the units'
check) and faketime (make chaos's clock-skew row). Go 1.26+ must be on PATH.

  --tests   also what only the tests run: promtool (prometheus; the alert
            rules), chromium (the console in a real browser), node and npm
            (the official openai npm client), docker-compose (the compose
            file's check) and openssl (the IM signatures' independent
            vectors)

As root it installs what is missing (apt-get); otherwise it prints the exact
command to run and exits 1. Nothing missing: it exits 0 silently.
make deps, make run and make bench run it first; make test runs it with --tests.
EOF2
	exit 0
	;;
"" | --tests) ;;
*)
	echo "install_deps: unexpected argument $1 (see --help)" >&2
	exit 2
	;;
esac

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v faketime >/dev/null 2>&1 || need+=(faketime)
if [ "${1:-}" = --tests ]; then
	command -v promtool >/dev/null 2>&1 || need+=(prometheus)
	command -v chromium >/dev/null 2>&1 || need+=(chromium)
	command -v node >/dev/null 2>&1 || need+=(nodejs)
	command -v npm >/dev/null 2>&1 || need+=(npm)
	command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
	command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi

if ! command -v go >/dev/null 2>&1; then
	echo "install_deps: Go is not on PATH; install Go 1.26 or newer (https://go.dev/doc/install)" >&2
	exit 1
fi
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install_deps: missing ${need[*]}; run:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
	exit 1
fi
echo "install_deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
