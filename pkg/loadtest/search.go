package loadtest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
)

// Defaults of SearchOptions.
const (
	// DefaultSearchP99 is the rate search's latency objective.
	DefaultSearchP99 = 50 * time.Millisecond
	// DefaultSearchFactor is the ratio of one step's rate to the previous
	// one's in the default ladder.
	DefaultSearchFactor = 1.25
	// DefaultSearchMaxRate ends the default ladder.
	DefaultSearchMaxRate = 100000
	// DefaultMinAchieved is the least share of the offered rate a held step
	// must achieve.
	DefaultMinAchieved = 0.95
	// DefaultMaxLate is the largest share of late requests a held step may
	// have.
	DefaultMaxLate = 0.01
)

// SearchOptions configures Search: open-model steps at rising rates until
// one breaks the objective.
type SearchOptions struct {
	// Options is every step's run. Its Rate is the first step's when Rates is
	// empty; Users must be 0 (the search drives the open model). Each step
	// gets fresh conversations: a random session prefix of its own, or
	// Options.SessionPrefix followed by "s<step>-". A zero Seed is replaced by
	// one time-based seed shared by every step.
	Options Options
	// Rates is the ladder, in requests per second, ascending. Default:
	// Options.Rate × Factor^k for k = 0, 1, ... while at most MaxRate.
	Rates []float64
	// Factor is the default ladder's ratio, above 1. Default
	// DefaultSearchFactor.
	Factor float64
	// MaxRate ends the default ladder. Default DefaultSearchMaxRate.
	MaxRate float64
	// SessionsPerRPS, when positive, gives each step
	// max(ceil(rate × SessionsPerRPS), MinOpenSessions) conversations instead
	// of Options.Sessions, so every step's conversations run their turns at
	// the same pace (1/SessionsPerRPS turns per second each) and reach the
	// same history length.
	SessionsPerRPS float64
	// P99 is the highest 99th-percentile latency of a held step. Default
	// DefaultSearchP99.
	P99 time.Duration
	// MinAchieved is the least share of the offered rate a held step must
	// achieve. Default DefaultMinAchieved.
	MinAchieved float64
	// MaxLate is the largest share of a held step's requests that may go out
	// late. Default DefaultMaxLate.
	MaxLate float64
	// Pause is the idle time between steps, so one step's backlog does not
	// spill into the next. Default 0.
	Pause time.Duration
	// OnStep, when set, is called twice per step: with PhaseMeasure when its
	// warm-up ends (from a goroutine of its own, while the load runs) and
	// with PhaseDone after the step was judged. The search waits for the
	// PhaseMeasure call to return before it makes the PhaseDone call, and for
	// that one before the next step.
	OnStep func(StepEvent)
}

// Phases of a StepEvent.
const (
	// PhaseMeasure: the step's measured window begins.
	PhaseMeasure = "measure"
	// PhaseDone: the step ended and was judged.
	PhaseDone = "done"
)

// StepEvent tells SearchOptions.OnStep where the search is.
type StepEvent struct {
	// Index is the step's number, from 1.
	Index int
	// Rate is the step's offered rate.
	Rate float64
	// Phase is PhaseMeasure or PhaseDone.
	Phase string
	// Step is the judged step (PhaseDone only).
	Step *Step
}

// Step is one rate of a search and its verdict.
type Step struct {
	// Rate is the offered rate.
	Rate float64
	// Result is what the step measured.
	Result *Result
	// Held reports that the step met every objective.
	Held bool
	// Broken names the objectives the step broke, e.g. "p99 61ms > 50ms".
	Broken []string
}

// SearchResult is a finished (or interrupted) rate search.
type SearchResult struct {
	// Steps are the steps run, in order; every one but possibly the last
	// held.
	Steps []Step
	// MaxSustainedRPS is the highest offered rate that held; 0 when none did.
	MaxSustainedRPS float64
	// Best is the step of MaxSustainedRPS, nil when none held.
	Best *Step
	// Interrupted reports a search stopped by its context.
	Interrupted bool
	// P99, MinAchieved and MaxLate are the objectives the steps were judged
	// by.
	P99         time.Duration
	MinAchieved float64
	MaxLate     float64
}

// Validate reports every invalid field of o, its Options' included (as
// FieldErrors joined), or nil; o itself is not changed. Search applies the
// same checks.
func (o SearchOptions) Validate() error {
	if err := o.validate(); err != nil {
		return err
	}
	step := o.Options
	if l := o.Ladder(); len(l) > 0 {
		step.Rate = l[0]
	}
	return step.validate()
}

// validate checks o and fills in the defaults.
func (o *SearchOptions) validate() error {
	var fe fieldErrors
	if o.Options.Users > 0 {
		fe.add("Users", "must be 0: the rate search drives the open model")
	}
	o.Factor = cmp.Or(o.Factor, DefaultSearchFactor)
	o.MaxRate = cmp.Or(o.MaxRate, DefaultSearchMaxRate)
	o.P99 = cmp.Or(o.P99, DefaultSearchP99)
	o.MinAchieved = cmp.Or(o.MinAchieved, DefaultMinAchieved)
	o.MaxLate = cmp.Or(o.MaxLate, DefaultMaxLate)
	if !(o.Factor > 1) || math.IsInf(o.Factor, 0) {
		fe.add("Factor", "must be above 1, got %v", o.Factor)
	}
	if !(o.MaxRate > 0) || math.IsInf(o.MaxRate, 0) {
		fe.add("MaxRate", "must be positive, got %v", o.MaxRate)
	}
	if o.P99 < 0 {
		fe.add("P99", "must be positive, got %v", o.P99)
	}
	if !(o.MinAchieved > 0 && o.MinAchieved <= 1) {
		fe.add("MinAchieved", "must be in (0, 1], got %v", o.MinAchieved)
	}
	if !(o.MaxLate >= 0 && o.MaxLate <= 1) {
		fe.add("MaxLate", "must be in [0, 1], got %v", o.MaxLate)
	}
	if o.SessionsPerRPS < 0 || math.IsNaN(o.SessionsPerRPS) || math.IsInf(o.SessionsPerRPS, 0) {
		fe.add("SessionsPerRPS", "must not be negative, got %v", o.SessionsPerRPS)
	}
	if o.Pause < 0 {
		fe.add("Pause", "must not be negative, got %v", o.Pause)
	}
	if len(o.Rates) == 0 {
		if r := o.Options.Rate; !(r > 0) || math.IsInf(r, 0) {
			fe.add("Rate", "must be positive (the first step; or set {Rates}), got %v", r)
		} else if o.MaxRate > 0 && r > o.MaxRate {
			fe.add("Rate", "%v exceeds {MaxRate} %v", r, o.MaxRate)
		}
	}
	for i, r := range o.Rates {
		if !(r > 0) || math.IsInf(r, 0) {
			fe.add("Rates", ": %v is not a positive rate", r)
		} else if i > 0 && r <= o.Rates[i-1] {
			fe.add("Rates", "must ascend: %v after %v", r, o.Rates[i-1])
		}
	}
	return fe.err()
}

// Ladder returns the rates the search runs, unless a step breaks the
// objective first: Rates, or Options.Rate × Factor^k while at most MaxRate
// (rounded to whole requests per second from 20 req/s up).
func (o *SearchOptions) Ladder() []float64 {
	if len(o.Rates) > 0 {
		return o.Rates
	}
	factor, maxRate := o.Factor, o.MaxRate
	if factor <= 1 {
		factor = DefaultSearchFactor
	}
	if maxRate <= 0 {
		maxRate = DefaultSearchMaxRate
	}
	var rates []float64
	for k := 0; ; k++ {
		r := roundRate(o.Options.Rate * math.Pow(factor, float64(k)))
		if r > maxRate || len(rates) > 1000 {
			return rates
		}
		if len(rates) == 0 || r > rates[len(rates)-1] {
			rates = append(rates, r)
		}
	}
}

// roundRate rounds r to a whole number from 20 up, else to two decimals.
func roundRate(r float64) float64 {
	if r >= 20 {
		return math.Round(r)
	}
	return math.Round(r*100) / 100
}

// Search runs the rate search opts describes: one open-model run per rate
// of the ladder, each with its own warm-up, window and fresh conversations,
// until a step breaks the objective — its p99 latency above P99, any failed
// request, an achieved rate below MinAchieved of the offered one, or more
// than MaxLate of its requests late — or the ladder ends. It returns an
// error only for invalid options; when ctx ends the search, the result covers
// the steps completed and is marked Interrupted.
func Search(ctx context.Context, opts SearchOptions) (*SearchResult, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	base := opts.Options
	if base.Seed == 0 {
		base.Seed = time.Now().UnixNano()
	}
	sr := &SearchResult{P99: opts.P99, MinAchieved: opts.MinAchieved, MaxLate: opts.MaxLate}
	for i, rate := range opts.Ladder() {
		if i > 0 {
			pause.For(ctx, opts.Pause)
		}
		if ctx.Err() != nil {
			sr.Interrupted = true
			break
		}
		step := base
		step.Rate = rate
		if opts.SessionsPerRPS > 0 {
			step.Sessions = max(int(math.Ceil(rate*opts.SessionsPerRPS)), MinOpenSessions)
		}
		if base.SessionPrefix != "" {
			step.SessionPrefix = fmt.Sprintf("%ss%d-", base.SessionPrefix, i+1)
		}
		if err := step.validate(); err != nil {
			return nil, fmt.Errorf("step %d (%g req/s): %w", i+1, rate, err)
		}

		var measured sync.WaitGroup
		var timer *time.Timer
		if opts.OnStep != nil {
			measured.Add(1)
			timer = time.AfterFunc(step.Warmup, func() {
				defer measured.Done()
				opts.OnStep(StepEvent{Index: i + 1, Rate: rate, Phase: PhaseMeasure})
			})
		}
		res, err := Run(ctx, step)
		if timer != nil && timer.Stop() {
			measured.Done() // the run ended before its warm-up did
		}
		measured.Wait()
		if err != nil {
			return nil, fmt.Errorf("step %d (%g req/s): %w", i+1, rate, err)
		}
		if res.Interrupted {
			sr.Interrupted = true
			break
		}
		st := Step{Rate: rate, Result: res}
		st.Broken = opts.judge(res)
		st.Held = len(st.Broken) == 0
		sr.Steps = append(sr.Steps, st)
		if opts.OnStep != nil {
			opts.OnStep(StepEvent{Index: i + 1, Rate: rate, Phase: PhaseDone, Step: &sr.Steps[len(sr.Steps)-1]})
		}
		if !st.Held {
			break
		}
	}
	for k := range sr.Steps {
		if st := &sr.Steps[k]; st.Held && st.Rate > sr.MaxSustainedRPS {
			sr.MaxSustainedRPS, sr.Best = st.Rate, st
		}
	}
	return sr, nil
}

// judge names the objectives r breaks.
func (o *SearchOptions) judge(r *Result) []string {
	var broken []string
	if r.Succeeded == 0 {
		broken = append(broken, "nothing succeeded")
	} else if r.Latency.P99 > o.P99 {
		broken = append(broken, fmt.Sprintf("p99 %s > %s", fmtDuration(r.Latency.P99), fmtDuration(o.P99)))
	}
	if r.Failed > 0 {
		broken = append(broken, fmt.Sprintf("%d errors (%s)", r.Failed, r.ErrorCauses()))
	}
	if r.OfferedRPS > 0 && r.AchievedRPS < o.MinAchieved*r.OfferedRPS {
		broken = append(broken, fmt.Sprintf("achieved %.0f < %s of offered", r.AchievedRPS, fmtPercent(o.MinAchieved)))
	}
	if r.Requests > 0 && float64(r.Late) > o.MaxLate*float64(r.Requests) {
		broken = append(broken, fmt.Sprintf("late %s > %s", fmtPercent(float64(r.Late)/float64(r.Requests)), fmtPercent(o.MaxLate)))
	}
	return broken
}

// objective describes the objectives in words.
func (sr *SearchResult) objective() string {
	return fmt.Sprintf("p99 ≤ %s, no errors, achieved ≥ %s of offered, ≤ %s late",
		fmtDuration(sr.P99), fmtPercent(sr.MinAchieved), fmtPercent(sr.MaxLate))
}

// tableFormat lays out a row of the text table of steps.
const tableFormat = "%9s %9s %9s %9s %9s %9s %7s %6s  %s\n"

// WriteTableHeader writes the header of the text table of steps.
func WriteTableHeader(w io.Writer) error {
	_, err := fmt.Fprintf(w, tableFormat, "rate", "achieved", "p50", "p99", "p99.9", "max", "errors", "late", "held")
	return err
}

// WriteTableRow writes st as a row of the text table of steps.
func WriteTableRow(w io.Writer, st *Step) error {
	r := st.Result
	_, err := fmt.Fprintf(w, tableFormat, fmt.Sprintf("%g", st.Rate), fmt.Sprintf("%.1f", r.AchievedRPS),
		fmtDuration(r.Latency.P50), fmtDuration(r.Latency.P99), fmtDuration(r.Latency.P999), fmtDuration(r.Latency.Max),
		fmt.Sprint(r.Failed), fmt.Sprint(r.Late), held(st))
	return err
}

// held is a step's verdict in words.
func held(st *Step) string {
	if st.Held {
		return "yes"
	}
	return "no: " + strings.Join(st.Broken, "; ")
}

// WriteTable writes the steps as a text table followed by the verdict.
func (sr *SearchResult) WriteTable(w io.Writer) error {
	if err := WriteTableHeader(w); err != nil {
		return err
	}
	for k := range sr.Steps {
		if err := WriteTableRow(w, &sr.Steps[k]); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, sr.Verdict()+"\n")
	return err
}

// Verdict is one line: the highest rate that held and the objective.
func (sr *SearchResult) Verdict() string {
	var b strings.Builder
	if sr.Best != nil {
		fmt.Fprintf(&b, "max sustained: %g req/s (%s)", sr.MaxSustainedRPS, sr.objective())
	} else {
		fmt.Fprintf(&b, "max sustained: none — no step held (%s)", sr.objective())
	}
	switch {
	case sr.Interrupted:
		b.WriteString("; INTERRUPTED")
	case len(sr.Steps) > 0 && sr.Steps[len(sr.Steps)-1].Held:
		b.WriteString("; every step held: raise the ladder to find the limit")
	}
	return b.String()
}

// WriteMarkdown writes the steps as a Markdown table followed by the verdict.
func (sr *SearchResult) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("| offered req/s | achieved req/s | p50 | p99 | p99.9 | max | errors | late | held |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for k := range sr.Steps {
		st := &sr.Steps[k]
		r := st.Result
		errs := fmt.Sprint(r.Failed)
		if r.Failed > 0 {
			errs += " (" + r.ErrorCauses() + ")"
		}
		verdict := "yes"
		if !st.Held {
			verdict = "**no**: " + strings.Join(st.Broken, "; ")
		}
		fmt.Fprintf(&b, "| %g | %.0f | %s | %s | %s | %s | %s | %d | %s |\n", st.Rate, r.AchievedRPS,
			mdMS(r.Latency.P50), mdMS(r.Latency.P99), mdMS(r.Latency.P999), mdMS(r.Latency.Max), errs, r.Late, verdict)
	}
	b.WriteString("\n")
	if sr.Best != nil {
		fmt.Fprintf(&b, "Max sustained: **%g req/s** (%s).\n", sr.MaxSustainedRPS, sr.objective())
	} else {
		fmt.Fprintf(&b, "Max sustained: **none** — no step held (%s).\n", sr.objective())
	}
	if sr.Interrupted {
		b.WriteString("\nThe search was interrupted.\n")
	} else if len(sr.Steps) > 0 && sr.Steps[len(sr.Steps)-1].Held {
		b.WriteString("\nEvery step held: the limit is above the ladder's top.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdMS formats d in milliseconds for a Markdown table: "3.21 ms".
func mdMS(d time.Duration) string {
	v := float64(d) / 1e6
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

// jsonStep is a step in the search's JSON: the run's stable keys plus the
// verdict.
type jsonStep struct {
	jsonReport
	Held   bool     `json:"held"`
	Broken []string `json:"broken"`
}

// WriteJSON writes the search as one indented JSON object:
// {"steps": [...], "max_sustained_rps": N, ...}; each step has the keys of
// Result.WriteJSON plus "held" and "broken" (the objectives it broke).
func (sr *SearchResult) WriteJSON(w io.Writer) error {
	steps := make([]jsonStep, len(sr.Steps))
	for k, st := range sr.Steps {
		steps[k] = jsonStep{jsonReport: st.Result.report(), Held: st.Held, Broken: st.Broken}
		if steps[k].Broken == nil {
			steps[k].Broken = []string{}
		}
	}
	out := struct {
		Steps           []jsonStep `json:"steps"`
		MaxSustainedRPS float64    `json:"max_sustained_rps"`
		SLOP99MS        float64    `json:"slo_p99_ms"`
		MinAchieved     float64    `json:"min_achieved"`
		MaxLate         float64    `json:"max_late"`
		Interrupted     bool       `json:"interrupted"`
	}{steps, sr.MaxSustainedRPS, ms(sr.P99), sr.MinAchieved, sr.MaxLate, sr.Interrupted}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
