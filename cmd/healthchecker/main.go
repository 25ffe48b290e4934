// Command healthchecker is botfleet's health-checker daemon: it probes every
// bot instance's /health and /ready and restarts the instances whose
// liveness fails. Run it with --help for its flags;
// deploy/healthchecker.example.yaml documents the configuration.
package main

import "github.com/botfleet/botfleet/pkg/cli"

func main() { cli.Main("healthchecker", run) }
