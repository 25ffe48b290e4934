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

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
