package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/bench"
	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/loadtest"
)

const usage = `Usage: bench [flags]          (make bench: make build, then this)
       bench soak [flags]     (make soak)
       bench report [flags]   write --out (and --svg) again from --json, measuring nothing
       bench chaos [flags]    (make chaos) faults under load, the history checked: CHAOS.md, chaos.json

bench brings up a throwaway bench fleet on free loopback ports — its own
redis-server without persistence, bin/mockllm with zero latency, bot
instances and nginx servers rendered from nginx/nginx.conf.tmpl by
scripts/render_nginx.sh — measures it row by row and writes BENCHMARKS.md
and bench.json (keys in the README, Performance). Every process it starts
runs in a process group of its own and is stopped by it when the run ends,
fails or is interrupted (Ctrl-C). Raw results (every search's loadtest JSON,
CPU profiles, logs) stay in --dir.

Rows, in order (--only picks some):
  baseline  rate search: nginx -> mockllm, POST /v1/chat/completions
  openai    rate search: nginx -> 2 instances (backend openai) -> mockllm,
            with the CPU of every process and a CPU profile of the first
            instance in every step, RSS at its end
  scaling   the same through nginx -> 1 instance: the ratio, turns/s per core
  users     200 closed-model users, continuity checked
  soak      half the openai rate for --soak (RSS, goroutines, sockets,
            Redis used_memory and keys every --soak-every)
  overhead  the same closed-model load straight at mockllm and through
            the fleet at 1, 8, 64 and 256 users: P50/P99 added
  growth    CPU per turn, P99 and Redis bytes per conversation at history
            0, 10, 100, 1000 and messages of 100 B and 10 KB
  builtin   rate search: nginx -> 2 instances (backend builtin)
  cold      exec to the first 200 on /ready, median of 5
  go        the Go benchmarks of the turn path and the round-trip test

A step of a search holds when p99 <= 50ms, no request failed, >= 95% of the
offered rate was achieved and <= 1% of requests went out late.

bench soak runs the soak alone for --duration (default 10m; hours are
fine) at --rate (default: half the sustained rate of an openai search it
runs first) and writes soak.md, soak.json, soak.html (with the plots) and
soak.svg into --dir.

Flags:
`

// run parses the flags, runs the bench or the soak and writes the reports.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		args = args[1:]
	}
	sub := ""
	if len(args) > 0 && args[0] == "chaos" {
		return runChaos(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "soak" || args[0] == "report") {
		sub, args = args[0], args[1:]
	}
	soak := sub == "soak"
	fs := cli.FlagSet(strings.TrimSpace("bench "+sub), usage, stderr)
	quick := fs.Bool("quick", false, "a smoke run of about two minutes: 2 s steps, a coarse ladder, a 20 s soak")
	only := fs.String("only", "", "run only these `rows`, comma-separated (see above)")
	dir := fs.String("dir", "run/bench", "`folder` of the raw results, profiles, logs and nginx prefixes")
	bin := fs.String("bin", "bin", "`folder` of the bot and mockllm programs (make build)")
	out, jsonFile := reportFlags(fs, "BENCHMARKS.md", "bench.json")
	svgFile := fs.String("svg", "BENCHMARKS-soak.svg", "write the soak's plot to `FILE` (linked from the Markdown report)")
	soakFor := fs.Duration("soak", 0, "the soak row's length (default 2m, quick 20s)")
	every := fs.Duration("soak-every", 0, "the soak's sampling interval (default 10s, quick 5s)")
	rate := fs.Float64("rate", 0, "the soak's rate in turns/s (default: half the openai search's sustained rate)")
	step := fs.Duration("step", 0, "a search step's measured window (default 8s, quick 2s)")
	startRate := fs.Float64("start", 0, "every search's first rate in req/s (default 1000, quick 500)")
	factor := fs.Float64("factor", 0, "ratio of one step's rate to the previous one's (default 1.15, quick 1.5)")
	maxRate := fs.Float64("max-rate", 0, "the ladders' highest rate (default 40000)")
	maxLate := fs.Float64("max-late", 0, "the largest `share` of a held step's requests that may go out late (default 0.01; the report marks more)")
	var duration *time.Duration
	if soak {
		duration = fs.Duration("duration", 10*time.Minute, "how long the soak runs")
		*out, *jsonFile, *svgFile = "", "", ""
	}
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	o := bench.Options{Quick: *quick, Dir: *dir, Bin: *bin, SoakDuration: *soakFor, SoakEvery: *every, SoakRate: *rate, Log: stderr,
		Step: *step, LadderStart: *startRate, LadderFactor: *factor, MaxRate: *maxRate, MaxLate: *maxLate}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	if soak {
		o.Only, o.SoakDuration = []string{"soak"}, *duration
		if *duration <= 0 {
			return fmt.Errorf("--duration must be positive, got %v", *duration)
		}
		*out, *jsonFile, *svgFile = filepath.Join(*dir, "soak.md"), filepath.Join(*dir, "soak.json"), filepath.Join(*dir, "soak.svg")
	}
	if sub == "report" {
		rep, err := bench.ReadReport(*jsonFile)
		if err != nil {
			return err
		}
		return write(rep, *out, "", *svgFile, *dir)
	}
	rep, err := bench.Run(ctx, o)
	if rep == nil {
		return err
	}
	if werr := write(rep, *out, *jsonFile, *svgFile, *dir); werr != nil {
		return werr
	}
	fmt.Fprintf(stdout, "bench: wrote %s and %s in %.0f s\n", *out, *jsonFile, rep.DurationS)
	for _, n := range rep.Notes {
		fmt.Fprintln(stdout, "bench: note:", n)
	}
	return err
}

// write writes the reports (jsonFile empty: not that one); the soak's
// plot and page only when there was a soak.
func write(rep *bench.Report, out, jsonFile, svgFile, dir string) error {
	svgLink := ""
	if rep.Soak != nil && svgFile != "" {
		if err := writeReport(svgFile, func(w io.Writer) error { _, err := rep.Soak.Chart().WriteTo(w); return err }); err != nil {
			return fmt.Errorf("--svg: %w", err)
		}
		if rel, err := filepath.Rel(filepath.Dir(out), svgFile); err == nil {
			svgLink = rel
		}
	}
	if err := writeReport(out, func(w io.Writer) error { return rep.WriteMarkdown(w, svgLink) }); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if jsonFile != "" {
		if err := writeReport(jsonFile, rep.WriteJSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if rep.Soak != nil {
		html := filepath.Join(dir, "soak.html")
		if err := writeReport(html, rep.WriteSoakHTML); err != nil {
			return fmt.Errorf("soak report: %w", err)
		}
	}
	return nil
}

// reportFlags declares --out and --json, the files of the Markdown and the
// machine-readable report, with these defaults.
func reportFlags(fs *flag.FlagSet, markdown, json string) (out, jsonFile *string) {
	return fs.String("out", markdown, "write the Markdown report to `FILE`"),
		fs.String("json", json, "write the machine-readable report to `FILE`")
}

// writeReport writes name (making its folder) with write.
func writeReport(name string, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return loadtest.WriteFile(name, write)
}
