// Package fleet holds the local fleet's end-to-end tests: real
// redis-server, nginx (nginx/nginx.conf.tmpl rendered by
// scripts/render_nginx.sh) and bot binaries started by the scripts in
// scripts/ (start_multiple_instances.sh, stop_instances.sh,
// rolling_restart.sh) on free loopback ports, and `make fleet` on the
// default ports when they are free. The helpers they need live in the
// _test.go files beside them.
package fleet
