package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/botfleet/botfleet/pkg/bench"
	"github.com/botfleet/botfleet/pkg/cli"
)

const chaosUsage = `Usage: bench chaos [flags]    (make chaos: make build, then this)

bench chaos brings up a throwaway chaos fleet on free loopback ports —
redis-server with AOF (appendfsync everysec), bin/mockllm, 3 primaries and
1 backup bot instance behind nginx rendered from nginx/nginx.conf.tmpl,
started by scripts/start_multiple_instances.sh and watched by
bin/healthchecker as make fleet runs them, a fake Telegram Bot API — and runs each scenario: a steady open-model load
(POST /v1/chat, POST /v1/chat/completions plain and streamed, Telegram
webhook events) with
one fault injected and ended, then the whole history checked (package
history): every acknowledged turn in memory exactly once and in order,
every IM event answered once, every failure answered with Retry-After.
It writes CHAOS.md and chaos.json; logs stay in --dir.

Scenarios, in order (--scenario picks some):
`

// runChaos is bench chaos.
func runChaos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet("bench chaos", chaosUsage+"  "+strings.Join(bench.ScenarioNames(), "\n  ")+"\n\nFlags:\n", stderr)
	quick := fs.Bool("quick", false, "3 s of load before each fault and 5 s after it (default 8 s and 10 s)")
	only := fs.String("scenario", "", "run only these `scenarios`, comma-separated (see above)")
	dir := fs.String("dir", "run/chaos", "`folder` of the logs, nginx's prefix and Redis's AOF")
	bin := fs.String("bin", "bin", "`folder` of the bot, mockllm and fleetctl programs (make build)")
	out, jsonFile := reportFlags(fs, "CHAOS.md", "chaos.json")
	chatRate := fs.Float64("chat-rate", 0, "POST /v1/chat req/s (default 30)")
	complRate := fs.Float64("completions-rate", 0, "POST /v1/chat/completions req/s (default 10)")
	streamRate := fs.Float64("stream-rate", 0, "POST /v1/chat/completions with stream: true, req/s (default 5)")
	tgRate := fs.Float64("telegram-rate", 0, "Telegram webhook events/s (default 10)")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	for _, r := range []float64{*chatRate, *complRate, *streamRate, *tgRate} {
		if r < 0 {
			return fmt.Errorf("rates must be positive, got %v", r)
		}
	}
	o := bench.ChaosOptions{Quick: *quick, Dir: *dir, Bin: *bin, Log: stderr, ChatRate: *chatRate, CompletionsRate: *complRate, StreamRate: *streamRate, TelegramRate: *tgRate}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	rep, err := bench.Chaos(ctx, o)
	if err != nil {
		return err
	}
	if err := writeReport(*out, rep.WriteMarkdown); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := writeReport(*jsonFile, rep.WriteJSON); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	held := 0
	for _, s := range rep.Scenarios {
		if s.Held {
			held++
		}
	}
	fmt.Fprintf(stdout, "bench chaos: %d of %d scenarios held; wrote %s and %s in %.0f s\n", held, len(rep.Scenarios), *out, *jsonFile, rep.DurationS)
	return nil
}
