// Command bot is one instance of the botfleet chat-bot fleet: the chat API
// over conversation memory shared in Redis. Run it with --help for its
// flags; config.example.yaml documents every setting.
package main

import "github.com/botfleet/botfleet/pkg/cli"

func main() { cli.Main("bot", run) }
