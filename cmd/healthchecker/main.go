// Command healthchecker is botfleet's health-checker daemon: it probes every
// bot instance's /health and /ready and restarts the instances whose
// liveness fails. Run it with --help for its flags;
// deploy/healthchecker.example.yaml documents the configuration.
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
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "healthchecker:", err)
		os.Exit(1)
	}
}
