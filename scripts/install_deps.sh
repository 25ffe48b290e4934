#!/usr/bin/env bash
# install_deps.sh — make sure the system programs botfleet needs are here:
# redis-server (shared memory), redis-sentinel (the Sentinel tests), nginx (the fleet's load balancer) and curl
# (the fleet scripts' probes), from
# Debian's packages. As root it installs what is missing; otherwise it
# prints the exact command to run and fails.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v curl >/dev/null 2>&1 || need+=(curl)

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
