// Command botctl is the operator's CLI for a botfleet fleet: it manages API
// keys in the fleet's Redis with the same configuration as the bot (see
// --help).
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
		fmt.Fprintln(os.Stderr, "botctl:", err)
		os.Exit(1)
	}
}
