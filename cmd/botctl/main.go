// Command botctl is the operator's CLI for a botfleet fleet: it manages API
// keys in the fleet's Redis with the same configuration as the bot (see
// --help).
package main

import "github.com/botfleet/botfleet/pkg/cli"

func main() { cli.Main("botctl", run) }
