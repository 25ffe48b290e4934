package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. Only requests of the measured window count
// (warm-up excluded): in the open model those intended in it, in the closed
// model those started in it, wherever they completed.
type Result struct {
	// Model is the load model of the run.
	Model Model
	// OfferedRPS is the request rate asked of the server: Options.Rate in the
	// open model; in the closed model the requests the users sent per second
	// of the window.
	OfferedRPS float64
	// AchievedRPS is the successful requests per second of the window.
	AchievedRPS float64
	// Requests counts the measured requests: Succeeded + Failed, dropped ones
	// included.
	Requests int64
	// Succeeded counts the requests answered with success and a continuous
	// turn.
	Succeeded int64
	// Failed counts the other requests; Errors breaks them down by cause.
	Failed int64
	// Errors counts failures by cause: "status_<code>", CauseTimeout,
	// CauseConnection, CauseContinuity, CauseDecode, CauseDropped.
	Errors map[string]int64
	// Latency summarizes the successful requests' latency, timed in the open
	// model from each request's intended send time (so queueing in the
	// generator and a stalled server are both charged), in the closed model
	// from its actual send. Failed requests are kept out of it, so a fast
	// error cannot make latency look better; FailedLatency has theirs.
	Latency Latency
	// FailedLatency summarizes the failed requests' latency (dropped ones
	// excluded: they have none).
	FailedLatency Latency
	// Continuity counts the turn checks.
	Continuity Continuity
	// Late counts the open model's requests that went out more than
	// Options.LateAfter after their intended time: no conversation was idle,
	// MaxInflight requests were in flight, or the generator itself fell
	// behind. Their latency still runs from the intended time.
	Late int64
	// WaitedForSession and WaitedForInflight count the times the open model's
	// scheduler found no idle conversation, or MaxInflight requests in flight,
	// at a request's intended time (measured window only). They explain Late.
	WaitedForSession, WaitedForInflight int64
	// Duration is the measured window's length (shorter when interrupted).
	Duration time.Duration
	// Interrupted reports a run stopped early by its context; requests in
	// flight then are not counted.
	Interrupted bool
	// Settings are the run's effective settings.
	Settings Settings
	// Series has one point per second of the window, by completion time.
	Series []Point
	// Percentiles is the successful requests' latency distribution, from the
	// 0th percentile through as many nines as the sample supports to the
	// maximum.
	Percentiles []Quantile
	// Buckets is the successful requests' latency histogram on a logarithmic
	// scale.
	Buckets []Bucket
}

// Latency is a latency distribution's summary.
type Latency struct {
	// P50, P90, P99 and P999 are the 50th, 90th, 99th and 99.9th percentiles.
	P50, P90, P99, P999 time.Duration
	// Max is the largest latency seen.
	Max time.Duration
	// Mean is the average.
	Mean time.Duration
}

// Continuity counts checks of the reply's turn against the conversation.
type Continuity struct {
	// Checked counts replies whose turn was checked.
	Checked int64
	// Broken counts those whose turn repeated, skipped or went back.
	Broken int64
}

// Point is one second of the measured window, by completion time.
type Point struct {
	// Second is the window's second, from 0.
	Second int64
	// Succeeded counts the successful requests completed in it: the achieved
	// rate of that second.
	Succeeded int64
	// Errors counts the failed requests completed in it.
	Errors int64
	// P50, P99 and Max summarize its successful requests' latency (zero when
	// none succeeded).
	P50, P99, Max time.Duration
}

// Quantile is one point of a latency distribution.
type Quantile struct {
	// Percentile is in [0, 100].
	Percentile float64
	// Latency is the latency at that percentile.
	Latency time.Duration
}

// Bucket is one bar of a latency histogram.
type Bucket struct {
	// From and To bound the bar's latencies, [From, To).
	From, To time.Duration
	// Count is the number of latencies in it.
	Count int64
}

// Settings are a run's effective settings, as reported.
type Settings struct {
	// URL is the service's base URL.
	URL string `json:"url"`
	// Target is the target's name.
	Target string `json:"target"`
	// Rate is the open model's arrival rate (0 in the closed model).
	Rate float64 `json:"rate,omitempty"`
	// Users is the closed model's number of users (0 in the open model).
	Users int `json:"users,omitempty"`
	// Think is the closed model's think time.
	Think time.Duration `json:"-"`
	// Duration is the measured window's planned length.
	Duration time.Duration `json:"-"`
	// Warmup is the warm-up's length.
	Warmup time.Duration `json:"-"`
	// Sessions is the number of conversations in use at once.
	Sessions int `json:"sessions"`
	// Turns is the length of a conversation (negative: unlimited).
	Turns int `json:"turns"`
	// Seed is the effective seed of message texts and session ids.
	Seed int64 `json:"seed"`
	// Timeout is the per-request timeout.
	Timeout time.Duration `json:"-"`
	// MaxInflight is the cap on requests in flight.
	MaxInflight int `json:"max_inflight"`
	// SLO is the objective the result is judged by, if any.
	SLO SLO `json:"-"`
}

// MarshalJSON writes durations as Go duration strings ("1.5s").
func (s Settings) MarshalJSON() ([]byte, error) {
	type plain Settings
	out := struct {
		plain
		Think        string   `json:"think,omitempty"`
		Duration     string   `json:"duration"`
		Warmup       string   `json:"warmup"`
		Timeout      string   `json:"timeout"`
		SLOP99       string   `json:"slo_p99,omitempty"`
		SLOErrorRate *float64 `json:"slo_error_rate,omitempty"`
	}{plain: plain(s), Duration: s.Duration.String(), Warmup: s.Warmup.String(), Timeout: s.Timeout.String()}
	if s.Think > 0 {
		out.Think = s.Think.String()
	}
	if s.SLO.P99 > 0 {
		out.SLOP99 = s.SLO.P99.String()
	}
	if s.SLO.HasErrorRate {
		out.SLOErrorRate = &s.SLO.ErrorRate
	}
	return json.Marshal(out)
}

// ErrorRate is the failed share of the requests (0 when there were none).
func (r *Result) ErrorRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Failed) / float64(r.Requests)
}

// ErrorCauses lists the error causes with their counts, most frequent first,
// e.g. "status_503 12, timeout 3"; "none" when there were none.
func (r *Result) ErrorCauses() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	causes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		causes = append(causes, c)
	}
	slices.SortFunc(causes, func(a, b string) int {
		if d := r.Errors[b] - r.Errors[a]; d != 0 {
			return int(min(max(d, -1), 1))
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(causes))
	for i, c := range causes {
		parts[i] = fmt.Sprintf("%s %d", c, r.Errors[c])
	}
	return strings.Join(parts, ", ")
}

// jsonReport is the stable JSON form of a Result.
type jsonReport struct {
	OfferedRPS  float64          `json:"offered_rps"`
	AchievedRPS float64          `json:"achieved_rps"`
	Requests    int64            `json:"requests"`
	Succeeded   int64            `json:"succeeded"`
	Failed      int64            `json:"failed"`
	Errors      map[string]int64 `json:"errors"`
	LatencyMS   jsonLatency      `json:"latency_ms"`
	Continuity  jsonContinuity   `json:"continuity"`
	Late        int64            `json:"late"`
	DurationS   float64          `json:"duration_s"`
	Model       Model            `json:"model"`
	Settings    Settings         `json:"settings"`
}

type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

type jsonContinuity struct {
	Checked int64 `json:"checked"`
	Broken  int64 `json:"broken"`
}

// ms converts d to milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// round3 rounds f to 3 decimals.
func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// WriteJSON writes the result as one indented JSON object with the stable
// keys offered_rps, achieved_rps, requests, succeeded, failed, errors (cause
// → count), latency_ms {p50, p90, p99, p999, max} (successful requests),
// continuity {checked, broken}, late, duration_s, model ("open" or "closed")
// and settings.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.report())
}

// report is r's stable JSON form.
func (r *Result) report() jsonReport {
	errs := r.Errors
	if errs == nil {
		errs = map[string]int64{}
	}
	return jsonReport{
		OfferedRPS:  round3(r.OfferedRPS),
		AchievedRPS: round3(r.AchievedRPS),
		Requests:    r.Requests,
		Succeeded:   r.Succeeded,
		Failed:      r.Failed,
		Errors:      errs,
		LatencyMS: jsonLatency{
			P50: ms(r.Latency.P50), P90: ms(r.Latency.P90), P99: ms(r.Latency.P99),
			P999: ms(r.Latency.P999), Max: ms(r.Latency.Max),
		},
		Continuity: jsonContinuity{Checked: r.Continuity.Checked, Broken: r.Continuity.Broken},
		Late:       r.Late,
		DurationS:  round3(r.Duration.Seconds()),
		Model:      r.Model,
		Settings:   r.Settings,
	}
}

// WriteFile writes a report to name with write, atomically: into a
// temporary file beside it, renamed over name once complete, so a reader
// never sees half a report.
func WriteFile(name string, write func(io.Writer) error) error {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, name)
}
