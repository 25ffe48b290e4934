package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/console"
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

Messages: short texts from a fixed list, or with --message-bytes N exactly N
bytes each (the text, a mark unique to the conversation and turn, filler), so
large messages can be measured and no response cache answers them.

Authentication: --token (default $API_KEY) is sent as "Authorization: Bearer";
against make fleet that is dev-key. The first 401 says so while the run goes on.

Only the measured window (--duration, after --warmup) is counted. Latency
percentiles are of successful requests; errors are counted by cause:
status_<code>, timeout, connection, continuity, decode, dropped.

Targets: chat (POST /v1/chat, the default; continuity checked through
"turn") and completions (POST /v1/chat/completions in the OpenAI wire format,
{"model": --model, "messages": [{"role":"user",...}], "user": <session id>};
success is 200 with choices[0].message.content; no turn, so no continuity
check). completions drives the bot's OpenAI-compatible endpoint or an
OpenAI-compatible backend such as mockllm directly; completions-stream the
same with "stream": true, success being every event read, no error event and
"data: [DONE]" last. telegram (POST
/webhook/telegram: a private text update per request, --token as the
webhook's secret token, im.telegram.secret_token) measures the bot's IM
webhook path — verify, dedup, enqueue; success is 200 — while the replies go
out from the queue afterwards (watch GET /admin/api/queues, or the console).

Rate search (--search): open-model steps at rising rates — --rates, or
--rate × --step-factor^k up to --max-rate — each with its own warm-up,
window and fresh sessions, until a step breaks the objective: p99 above
--slo-p99 (default 50ms here), any error, achieved below 95% of offered, or
more than 1% of requests late. Prints a table of the steps and the highest
rate that held; --json then holds {"steps": [<a run's object per step, plus
"held" and "broken">], "max_sustained_rps": N}, --markdown the table.
--sessions-per-rps F gives each step ceil(rate × F) sessions, so every step's
sessions run at the same pace (1/F turns/s each) and reach the same history
length. --step-cmd runs a shell command when each step's measured window
starts (LOADTEST_PHASE=measure, in the background of the load) and after it
was judged (LOADTEST_PHASE=done, LOADTEST_HELD=yes|no), with LOADTEST_STEP
and LOADTEST_RATE; make bench samples memory and profiles with it.

Exit status: 1 when an SLO flag is broken, no request succeeded, the run was
interrupted, or a flag is wrong; with --search, when no step held or the
search was interrupted.

Examples:
  loadtest --rate 500 --duration 30s --slo-p99 800ms --slo-error-rate 0.001
  loadtest --users 200 --think 1s --duration 1m --json out.json --html out.html
  loadtest --search --rates 500,1000,2000,4000 --duration 8s --warmup 2s --markdown steps.md
  loadtest --target completions --url http://127.0.0.1:9998 --search --rate 1000 --max-rate 20000
  loadtest --target telegram --token "$BOT_IM_TELEGRAM_SECRET_TOKEN" --rate 500 --duration 20s

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
	fs := cli.FlagSet("loadtest", usage, stderr)
	url := fs.String("url", loadtest.DefaultURL, "base `URL` of the service (an instance or nginx)")
	token := fs.String("token", "", "Bearer `token` (API key or access token) (default $API_KEY)")
	target := fs.String("target", "chat", "what to drive: "+strings.Join(loadtest.TargetNames(), ", ")+" (chat: POST /v1/chat; completions: POST /v1/chat/completions; completions-stream: the same streamed; telegram: POST /webhook/telegram)")
	model := fs.String("model", loadtest.DefaultModel, "completions target: the `model` to ask for")
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
	search := fs.Bool("search", false, "rate search: open-model steps at rising rates until one breaks the objective (see above)")
	rates := fs.String("rates", "", "search: the ladder, comma-separated ascending `req/s`, e.g. 500,1000,2000 (default: from --rate by --step-factor up to --max-rate)")
	factor := fs.Float64("step-factor", loadtest.DefaultSearchFactor, "search: ratio of one step's rate to the previous one's in the default ladder")
	maxRate := fs.Float64("max-rate", loadtest.DefaultSearchMaxRate, "search: the default ladder's highest `req/s`")
	perRPS := fs.Float64("sessions-per-rps", 0, "search: each step gets max(ceil(rate × `F`), 10) sessions instead of --sessions (0: --sessions or its default)")
	pause := fs.Duration("pause", time.Second, "search: idle time between steps")
	maxLate := fs.Float64("max-late", loadtest.DefaultMaxLate, "search: the largest `share` of a held step's requests that may go out late (over 10ms behind schedule)")
	mdFile := fs.String("markdown", "", "search: write the table of steps as Markdown to `FILE`")
	consoleKey := fs.String("console-key", "", "keep an admin console open on --url during the run, logged in with this admin `key` and polling /admin/api/fleet at the fleet's heartbeat interval as the page does: run with and without it to measure the console's cost")
	stepCmd := fs.String("step-cmd", "", "search: shell `command` run as each step's window starts and after it was judged (see above)")
	msgBytes := fs.Int("message-bytes", 0, "make every message exactly `N` bytes, unique to its conversation and turn (0: the short built-in texts)")
	if help, err := cli.Parse(fs, args); help || err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	// The flags' own rules: which flags go together, and what 0 means on
	// the command line. Every value is checked by package loadtest.
	var bad []string
	if set["rate"] && set["users"] {
		bad = append(bad, "--rate and --users are mutually exclusive: --rate drives the open model (a fixed arrival rate), --users the closed model (N users who wait for each answer)")
	}
	closed := set["users"]
	for _, z := range []struct {
		name string
		zero bool
		want string
	}{
		{"rate", *rate == 0, "must be positive"}, {"users", *users == 0, "must be at least 1"},
		{"duration", *duration == 0, "must be positive"}, {"timeout", *timeout == 0, "must be positive"},
		{"max-inflight", *maxInflight == 0, "must be at least 1"},
		{"step-factor", *factor == 0, "must be above 1"}, {"max-rate", *maxRate == 0, "must be positive"},
	} {
		// package loadtest reads a zero as "the default"; typed here, it is a mistake.
		if set[z.name] && z.zero {
			bad = append(bad, fmt.Sprintf("--%s %s, got 0", z.name, z.want))
		}
	}
	if *turns < 0 {
		bad = append(bad, fmt.Sprintf("--turns must not be negative, got %d (0: never replace a conversation)", *turns))
	}
	if *search {
		if closed {
			bad = append(bad, "--search drives the open model: drop --users")
		}
		if sloErr.set {
			bad = append(bad, "--slo-error-rate does not apply to --search: a step with any error breaks the objective")
		}
		if *htmlFile != "" {
			bad = append(bad, "--html does not apply to --search (use --json or --markdown)")
		}
	} else {
		for _, f := range []string{"rates", "step-factor", "max-rate", "sessions-per-rps", "pause", "max-late", "markdown", "step-cmd"} {
			if set[f] {
				bad = append(bad, "--"+f+" applies to --search only")
			}
		}
	}
	var ladder []float64
	if *rates != "" {
		for _, f := range strings.Split(*rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil {
				bad = append(bad, fmt.Sprintf("--rates: %q is not a positive rate", f))
				continue
			}
			ladder = append(ladder, v)
		}
	}
	if !set["token"] {
		*token = getenv("API_KEY")
	}
	tgt, err := loadtest.NewTargetConfig(*target, loadtest.TargetConfig{URL: *url, Token: *token, Model: *model})
	if err != nil {
		bad = append(bad, "--target/--url: "+err.Error())
	}

	opts := loadtest.Options{
		Target: tgt, URL: *url, Token: *token,
		Duration: *duration, Warmup: *warmup,
		Sessions: *sessions, Turns: *turns, Seed: *seed, SessionPrefix: *prefix,
		Timeout: *timeout, MaxInflight: *maxInflight, MessageBytes: *msgBytes,
		OnStatus: statusHint(*target, *token, stderr),
	}
	if opts.Turns == 0 {
		opts.Turns = -1 // never replace a conversation
	}
	if closed {
		opts.Users, opts.Think = *users, *think
	} else {
		opts.Rate, opts.Think = *rate, *think
	}
	slo := loadtest.SLO{P99: *sloP99, ErrorRate: sloErr.v, HasErrorRate: sloErr.set}
	so := loadtest.SearchOptions{
		Options: opts, Rates: ladder, Factor: *factor, MaxRate: *maxRate,
		SessionsPerRPS: *perRPS, P99: *sloP99, Pause: *pause, MaxLate: *maxLate,
	}
	if len(bad) == 0 {
		check := opts.Validate
		if *search {
			check = so.Validate
		}
		bad = append(bad, flagErrors(check(), slo.Validate())...)
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	if !*quiet && *token == "" {
		fmt.Fprintln(stderr, "loadtest: warning: no --token and $API_KEY is unset; requests carry no Authorization header")
	}
	if *consoleKey != "" {
		stopConsole := openConsole(ctx, *url, *consoleKey, *quiet, stderr)
		defer stopConsole()
	}
	if *search {
		return runSearch(ctx, so, *stepCmd, *quiet, *jsonFile, *mdFile, stdout, stderr)
	}

	var finishProgress func()
	if !*quiet {
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
		if err := loadtest.WriteFile(*jsonFile, res.WriteJSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if *htmlFile != "" {
		if err := loadtest.WriteFile(*htmlFile, res.WriteHTML); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}

	switch {
	case res.Interrupted:
		return fmt.Errorf("interrupted after %v of the measured window", res.Duration.Round(time.Millisecond))
	case res.Succeeded == 0:
		err := fmt.Errorf("no request succeeded (%d failed: %s)", res.Failed, res.ErrorCauses())
		if res.Errors["status_401"] > 0 {
			err = fmt.Errorf("%w; %s", err, tokenHint(*target, *token))
		}
		return err
	}
	return slo.Check(res)
}

// openConsole keeps a console open against url until the returned func
// is called, which reports what it did on stderr.
func openConsole(ctx context.Context, url, key string, quiet bool, stderr io.Writer) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err := console.Poll(ctx, console.PollOptions{URL: url, AdminKey: key})
		switch {
		case err != nil:
			fmt.Fprintf(stderr, "loadtest: console: %v\n", err)
		case !quiet:
			fmt.Fprintf(stderr, "loadtest: console open during the run: %d polls of /admin/api/fleet, %d failed, %d bytes\n", st.Polls, st.Failures, st.Bytes)
		}
	}()
	return func() { cancel(); <-done }
}

// runSearch runs a rate search, printing the table of steps on stdout as
// they finish, and writes the requested reports.
func runSearch(ctx context.Context, so loadtest.SearchOptions, stepCmd string, quiet bool, jsonFile, mdFile string, stdout, stderr io.Writer) error {
	ladder := so.Ladder()
	var finishProgress func()
	if !quiet {
		so.Options.Progress, so.Options.ProgressEvery, finishProgress = progress(stderr)
		fmt.Fprintf(stderr, "loadtest: rate search against %s, target %s: up to %d steps of %v after %v warm-up (%s)\n",
			so.Options.URL, so.Options.Target.Name(), len(ladder), so.Options.Duration, so.Options.Warmup, ladderText(ladder))
	}
	if err := loadtest.WriteTableHeader(stdout); err != nil {
		return err
	}
	so.OnStep = func(e loadtest.StepEvent) {
		if e.Phase == loadtest.PhaseDone {
			if finishProgress != nil {
				finishProgress()
			}
			loadtest.WriteTableRow(stdout, e.Step)
		} else if !quiet {
			finishProgress()
			fmt.Fprintf(stderr, "loadtest: step %d/%d: %g req/s, measuring\n", e.Index, len(ladder), e.Rate)
		}
		if stepCmd != "" {
			runStepCmd(ctx, stepCmd, e, stderr)
		}
	}
	sr, err := loadtest.Search(ctx, so)
	if finishProgress != nil {
		finishProgress()
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, sr.Verdict())
	if jsonFile != "" {
		if err := loadtest.WriteFile(jsonFile, sr.WriteJSON); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	if mdFile != "" {
		if err := loadtest.WriteFile(mdFile, sr.WriteMarkdown); err != nil {
			return fmt.Errorf("--markdown: %w", err)
		}
	}
	switch {
	case sr.Interrupted:
		return errors.New("rate search interrupted")
	case sr.Best == nil:
		return errors.New("rate search: no step held")
	}
	return nil
}

// ladderText abbreviates a ladder: "500, 625, ..., 9537 req/s".
func ladderText(l []float64) string {
	parts := make([]string, 0, 5)
	for i, r := range l {
		if len(l) > 6 && i == 3 {
			parts = append(parts, "…")
		}
		if len(l) > 6 && i >= 3 && i < len(l)-1 {
			continue
		}
		parts = append(parts, strconv.FormatFloat(r, 'g', -1, 64))
	}
	return strings.Join(parts, ", ") + " req/s"
}

// runStepCmd runs the --step-cmd hook for e with sh -c, its output on
// stderr; a failure is reported, not fatal.
func runStepCmd(ctx context.Context, cmd string, e loadtest.StepEvent, stderr io.Writer) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Env = append(os.Environ(),
		"LOADTEST_STEP="+strconv.Itoa(e.Index),
		"LOADTEST_RATE="+strconv.FormatFloat(e.Rate, 'g', -1, 64),
		"LOADTEST_PHASE="+e.Phase,
	)
	if e.Step != nil {
		h := "no"
		if e.Step.Held {
			h = "yes"
		}
		c.Env = append(c.Env, "LOADTEST_HELD="+h,
			"LOADTEST_ACHIEVED="+strconv.FormatFloat(e.Step.Result.AchievedRPS, 'f', 1, 64))
	}
	c.Stdout, c.Stderr = stderr, stderr
	if err := c.Run(); err != nil {
		fmt.Fprintf(stderr, "loadtest: --step-cmd (step %d, %s): %v\n", e.Index, e.Phase, err)
	}
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

// flagFor names the flag of each option field package loadtest checks.
var flagFor = map[string]string{
	"Rate": "--rate", "Users": "--users", "Think": "--think", "Duration": "--duration", "Warmup": "--warmup",
	"Sessions": "--sessions", "Turns": "--turns", "Seed": "--seed", "SessionPrefix": "--session-prefix",
	"Timeout": "--timeout", "MaxInflight": "--max-inflight", "URL": "--url", "MessageBytes": "--message-bytes",
	"Rates": "--rates", "Factor": "--step-factor", "MaxRate": "--max-rate", "SessionsPerRPS": "--sessions-per-rps",
	"Pause": "--pause", "MaxLate": "--max-late", "P99": "--slo-p99", "ErrorRate": "--slo-error-rate",
}

// flagErrors spells package loadtest's option errors in flags.
func flagErrors(errs ...error) []string {
	name := func(field string) string {
		if f, ok := flagFor[field]; ok {
			return f
		}
		return field
	}
	var out []string
	for _, err := range errs {
		fes := loadtest.FieldErrors(err)
		for _, fe := range fes {
			out = append(out, fe.Text(name))
		}
		if err != nil && len(fes) == 0 {
			out = append(out, err.Error())
		}
	}
	return out
}

// tokenHint says what a 401 wants.
func tokenHint(target, token string) string {
	switch {
	case target == "telegram":
		return "the telegram target sends --token as the webhook's secret token: pass the bot's im.telegram.secret_token (BOT_IM_TELEGRAM_SECRET_TOKEN)"
	case token == "":
		return "no API key was sent: pass --token KEY or set API_KEY (make fleet's key is dev-key)"
	default:
		return "the API key was refused: pass the service's key with --token KEY or API_KEY (make fleet's key is dev-key)"
	}
}

// statusHint explains the first 401 on stderr while the run goes on.
func statusHint(target, token string, stderr io.Writer) func(int) {
	var mu sync.Mutex
	return func(code int) {
		if code != http.StatusUnauthorized {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, "\nloadtest: 401 Unauthorized: %s\n", tokenHint(target, token))
	}
}
