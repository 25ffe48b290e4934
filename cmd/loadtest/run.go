package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/botfleet/botfleet/pkg/loadtest"
)

const usage = `Usage: loadtest [flags]

loadtest drives a botfleet service with conversations and reports honest
latency percentiles, throughput and errors by cause.

Load models (pick one):
  open    --rate R: R requests/s arrive on a fixed schedule whatever the server
          does. Latency is timed from each request's intended send time, so a
          stalled server is charged for its whole delay (coordinated omission
          corrected, as wrk2 does). Requests that could not go out on time (no
          idle session, --max-inflight reached) are reported as late; those
          still unsent when the window ends count as failed ("dropped").
  closed  --users N [--think T]: N users each send a turn, wait for the
          answer, think for T and repeat (JMeter-style). Latency is timed
          from the actual send.

Conversations: --sessions sessions are in use at once; a session's next turn
is sent only after its previous one was answered, and after --turns turns a
fresh session (a new id) takes its place. Every reply's "turn" must be the
previous one plus one (1 for a fresh session); a turn that repeats, skips or
goes back is a continuity error. --seed makes message texts and session ids
reproducible (ids also need the same --session-prefix; by default each run
gets a random prefix so its sessions are fresh).

Only the measured window (--duration, after --warmup) is counted. Latency
percentiles are of successful requests; errors are counted by cause:
status_<code>, timeout, connection, continuity, decode, dropped.

Exit status: 1 when an SLO flag is broken, no request succeeded, the run was
interrupted, or a flag is wrong.

Examples:
  loadtest --rate 500 --duration 30s --slo-p99 800ms --slo-error-rate 0.001
  loadtest --users 200 --think 1s --duration 1m --json out.json --html out.html

Flags:
`

// optFloat is a float flag that remembers whether it was set.
type optFloat struct {
	v   float64
	set bool
}

func (f *optFloat) String() string {
	if f == nil || !f.set {
		return ""
	}
	return strconv.FormatFloat(f.v, 'g', -1, 64)
}

func (f *optFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	f.v, f.set = v, true
	return nil
}

// run parses the flags, runs the load test, prints its summary on stdout and
// writes the requested reports. It returns an error when the flags are wrong,
// an SLO is broken, nothing succeeded or ctx ended the run early.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		args = args[1:]
	}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	url := fs.String("url", loadtest.DefaultURL, "base `URL` of the service (an instance or nginx)")
	token := fs.String("token", "", "Bearer `token` (API key or access token) (default $API_KEY)")
	target := fs.String("target", "chat", "what to drive: "+strings.Join(loadtest.TargetNames(), ", ")+" (chat: POST /v1/chat)")
	rate := fs.Float64("rate", 100, "open model: arrival rate in `req/s` (mutually exclusive with --users)")
	users := fs.Int("users", 0, "closed model: `N` concurrent users (mutually exclusive with --rate)")
	think := fs.Duration("think", 0, "closed model: a user's pause between an answer and its next request")
	duration := fs.Duration("duration", loadtest.DefaultDuration, "length of the measured window")
	warmup := fs.Duration("warmup", time.Second, "load before the measured window, not counted")
	sessions := fs.Int("sessions", 0, "conversations in use at once (default: open max(rate, 10), closed --users)")
	turns := fs.Int("turns", loadtest.DefaultTurns, "turns of a conversation before a fresh one replaces it (0: never)")
	seed := fs.Int64("seed", 0, "seed of message texts and session ids (0: time-based, printed in the summary)")
	prefix := fs.String("session-prefix", "", "start of every session id (default lt-<random>-: fresh sessions each run)")
	timeout := fs.Duration("timeout", loadtest.DefaultTimeout, "per-request timeout, from its send to the end of its answer")
	maxInflight := fs.Int("max-inflight", loadtest.DefaultMaxInflight, "most requests waiting for an answer at once")
	jsonFile := fs.String("json", "", "write the result as JSON to `FILE`")
	htmlFile := fs.String("html", "", "write a self-contained HTML report with charts to `FILE`")
	sloP99 := fs.Duration("slo-p99", 0, "fail when the successful requests' p99 latency exceeds this (0: no check)")
	var sloErr optFloat
	fs.Var(&sloErr, "slo-error-rate", "fail when the failed share of requests exceeds this `fraction` in [0,1], e.g. 0.01 (default: no check)")
	quiet := fs.Bool("quiet", false, "no progress output on stderr (the summary still goes to stdout)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var bad []string
	if fs.NArg() > 0 {
		bad = append(bad, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if set["rate"] && set["users"] {
		bad = append(bad, "--rate and --users are mutually exclusive: --rate drives the open model (a fixed arrival rate), --users the closed model (N users who wait for each answer)")
	}
	closed := set["users"]
	switch {
	case closed && *users < 1:
		bad = append(bad, fmt.Sprintf("--users must be at least 1, got %d", *users))
	case !closed && !(*rate > 0):
		bad = append(bad, fmt.Sprintf("--rate must be positive, got %v", *rate))
	}
	if set["think"] && !closed {
		bad = append(bad, "--think applies to the closed model only: use it with --users")
	}
	if *think < 0 {
		bad = append(bad, fmt.Sprintf("--think must not be negative, got %v", *think))
	}
	if *duration <= 0 {
		bad = append(bad, fmt.Sprintf("--duration must be positive, got %v", *duration))
	}
	if *warmup < 0 {
		bad = append(bad, fmt.Sprintf("--warmup must not be negative, got %v", *warmup))
	}
	if *sessions < 0 {
		bad = append(bad, fmt.Sprintf("--sessions must be positive, got %d", *sessions))
	}
	if closed && *sessions > 0 && *sessions < *users {
		bad = append(bad, fmt.Sprintf("--sessions (%d) must be at least --users (%d): each user needs a session of its own", *sessions, *users))
	}
	if *turns < 0 {
		bad = append(bad, fmt.Sprintf("--turns must not be negative, got %d", *turns))
	}
	if *timeout <= 0 {
		bad = append(bad, fmt.Sprintf("--timeout must be positive, got %v", *timeout))
	}
	if *maxInflight < 1 {
		bad = append(bad, fmt.Sprintf("--max-inflight must be at least 1, got %d", *maxInflight))
	} else if closed && *users > *maxInflight {
		bad = append(bad, fmt.Sprintf("--users (%d) exceeds --max-inflight (%d)", *users, *maxInflight))
	}
	if *sloP99 < 0 {
		bad = append(bad, fmt.Sprintf("--slo-p99 must not be negative, got %v", *sloP99))
	}
	if sloErr.set && !(sloErr.v >= 0 && sloErr.v <= 1) {
		bad = append(bad, fmt.Sprintf("--slo-error-rate must be a fraction in [0,1], got %v", sloErr.v))
	}
	if !set["token"] {
		*token = getenv("API_KEY")
	}
	tgt, err := loadtest.NewTarget(*target, *url, *token)
	if err != nil {
		bad = append(bad, "--target/--url: "+err.Error())
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}

	opts := loadtest.Options{
		Target: tgt, URL: *url, Token: *token,
		Duration: *duration, Warmup: *warmup,
		Sessions: *sessions, Turns: *turns, Seed: *seed, SessionPrefix: *prefix,
		Timeout: *timeout, MaxInflight: *maxInflight,
	}
	if opts.Turns == 0 {
		opts.Turns = -1 // never replace a conversation
	}
	if closed {
		opts.Users, opts.Think = *users, *think
	} else {
		opts.Rate = *rate
	}
	slo := loadtest.SLO{P99: *sloP99, ErrorRate: sloErr.v, HasErrorRate: sloErr.set}

	var finishProgress func()
	if !*quiet {
		if *token == "" {
			fmt.Fprintln(stderr, "loadtest: warning: no --token and $API_KEY is unset; requests carry no Authorization header")
		}
		opts.Progress, opts.ProgressEvery, finishProgress = progress(stderr)
		if closed {
			fmt.Fprintf(stderr, "loadtest: closed model, %d users (think %v) for %v after %v warm-up against %s\n", *users, *think, *duration, *warmup, *url)
		} else {
			fmt.Fprintf(stderr, "loadtest: open model, %g req/s for %v after %v warm-up against %s\n", *rate, *duration, *warmup, *url)
		}
	}
	res, err := loadtest.Run(ctx, opts)
	if finishProgress != nil {
		finishProgress()
	}
	if err != nil {
		return err
	}
	res.Settings.SLO = slo

	if err := res.WriteText(stdout); err != nil {
		return err
	}
	if *jsonFile != "" {
		if err := writeFile(*jsonFile, res.WriteJSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if *htmlFile != "" {
		if err := writeFile(*htmlFile, res.WriteHTML); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}

	switch {
	case res.Interrupted:
		return fmt.Errorf("interrupted after %v of the measured window", res.Duration.Round(time.Millisecond))
	case res.Succeeded == 0:
		return fmt.Errorf("no request succeeded (%d failed: %s)", res.Failed, res.ErrorCauses())
	}
	return slo.Check(res)
}

// progress returns the Progress callback and its interval for stderr: a line
// rewritten in place every second on a terminal, a plain line every five
// seconds otherwise; finish ends the in-place line.
func progress(stderr io.Writer) (report func(loadtest.Snapshot), every time.Duration, finish func()) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return func(s loadtest.Snapshot) { fmt.Fprintln(stderr, s) }, 5 * time.Second, func() {}
	}
	var mu sync.Mutex
	drawn := false
	report = func(s loadtest.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "\r%s\x1b[K", s)
		drawn = true
	}
	finish = func() {
		mu.Lock()
		defer mu.Unlock()
		if drawn {
			fmt.Fprint(stderr, "\r\x1b[K")
		}
	}
	return report, time.Second, finish
}

// writeFile creates name and writes it with write.
func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
