// Command bench is make bench and make soak: it brings up a throwaway bench
// fleet on free loopback ports (its own redis-server, mockllm, bot
// instances and nginx rendered from nginx/nginx.conf.tmpl), measures it row
// by row and writes BENCHMARKS.md and bench.json. See package
// github.com/botfleet/botfleet/pkg/bench.
//
// Usage:
//
//	bench [--quick] [--only ROW,...] [--out BENCHMARKS.md] [--json bench.json] [--svg BENCHMARKS-soak.svg]
//	bench soak [--duration 10m] [--every 10s] [--rate R] [--dir run/bench]
package main

import "github.com/botfleet/botfleet/pkg/cli"

func main() { cli.Main("bench", run) }
