// Command fleetctl is what the fleet's shell scripts ask when they need
// more than starting and stopping a process: it launches a process with a
// launch record beside its pid file, tells whether a pid file names the
// process it claims to, finds nginx's processes by their process group,
// compares an instance's settings with the ones it would get now, renders
// nginx's configuration and pauses the health checker's restarts. Run it
// with --help for its subcommands.
package main

import "github.com/botfleet/botfleet/pkg/cli"

func main() { cli.Main("fleetctl", run) }
