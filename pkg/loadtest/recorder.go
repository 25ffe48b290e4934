package loadtest

import (
	"math"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry: 1 µs to 60 s with 3 significant digits.
const (
	histMin    = 1                // µs
	histMax    = 60 * 1000 * 1000 // µs
	histDigits = 3
)

// Error causes besides "status_<code>".
const (
	CauseTimeout    = "timeout"    // the request's Timeout expired
	CauseConnection = "connection" // dial, write or read failed
	CauseContinuity = "continuity" // a 2xx reply whose turn repeats, skips or goes back
	CauseDecode     = "decode"     // a 2xx reply the target could not read
	CauseDropped    = "dropped"    // open model: never sent, the window ended first
)

// outcome is one measured request's result.
type outcome struct {
	latency time.Duration // intended (open) or actual (closed) send to end of the response
	done    time.Duration // completion, since the start of the measured window
	cause   string        // "" on success
	verdict verdict
	late    bool
}

// recorder accumulates the measured requests. Workers record concurrently; one
// mutex keeps it simple and is far from the bottleneck at tens of thousands
// of requests per second.
type recorder struct {
	mu                                sync.Mutex
	ok, bad, win                      *hdrhistogram.Histogram
	requests, succeeded, failed, late int64
	checked, broken                   int64
	errors                            map[string]int64
	series                            []Point
	winSec, winOK, winErr             int64
}

func newRecorder() *recorder {
	return &recorder{
		ok:     hdrhistogram.New(histMin, histMax, histDigits),
		bad:    hdrhistogram.New(histMin, histMax, histDigits),
		win:    hdrhistogram.New(histMin, histMax, histDigits),
		errors: map[string]int64{},
	}
}

// micros converts d to a value the histograms accept, clamped to their range.
func micros(d time.Duration) int64 {
	return min(max(d.Microseconds(), histMin), histMax)
}

// record adds one measured request.
func (r *recorder) record(o outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if o.late {
		r.late++
	}
	if o.verdict != unchecked {
		r.checked++
		if o.verdict == broken {
			r.broken++
		}
	}
	r.roll(int64(max(o.done, 0) / time.Second))
	us := micros(o.latency)
	if o.cause == "" {
		r.succeeded++
		r.winOK++
		_ = r.ok.RecordValue(us)
		_ = r.win.RecordValue(us)
		return
	}
	r.failed++
	r.winErr++
	r.errors[o.cause]++
	_ = r.bad.RecordValue(us)
}

// drop counts n measured requests that were never sent.
func (r *recorder) drop(n int64) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests += n
	r.failed += n
	r.errors[CauseDropped] += n
}

// roll moves the per-second window forward to second sec, closing the
// seconds in between. A completion recorded a little after the window moved
// on counts in the current one.
func (r *recorder) roll(sec int64) {
	for r.winSec < sec {
		r.flush()
		r.winSec++
	}
}

// flush appends the current second's point and resets its window.
func (r *recorder) flush() {
	p := Point{Second: r.winSec, Succeeded: r.winOK, Errors: r.winErr}
	if r.winOK > 0 {
		p.P50 = time.Duration(r.win.ValueAtQuantile(50)) * time.Microsecond
		p.P99 = time.Duration(r.win.ValueAtQuantile(99)) * time.Microsecond
		p.Max = time.Duration(r.win.Max()) * time.Microsecond
	}
	r.series = append(r.series, p)
	r.win.Reset()
	r.winOK, r.winErr = 0, 0
}

// snapshot returns the running totals for progress reports.
func (r *recorder) snapshot() (requests, succeeded, failed, late int64, p99 time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.succeeded > 0 {
		p99 = time.Duration(r.ok.ValueAtQuantile(99)) * time.Microsecond
	}
	return r.requests, r.succeeded, r.failed, r.late, p99
}

// finish closes the time series (at least seconds whole seconds long) and
// fills in res's measurements.
func (r *recorder) finish(res *Result, seconds int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.roll(seconds - 1)
	r.flush()
	res.Requests, res.Succeeded, res.Failed, res.Late = r.requests, r.succeeded, r.failed, r.late
	res.Errors = make(map[string]int64, len(r.errors))
	for k, v := range r.errors {
		res.Errors[k] = v
	}
	res.Continuity = Continuity{Checked: r.checked, Broken: r.broken}
	res.Latency = latencyOf(r.ok)
	res.FailedLatency = latencyOf(r.bad)
	res.Series = r.series
	res.Percentiles = percentilesOf(r.ok)
	res.Buckets = bucketsOf(r.ok, 40)
}

// latencyOf summarizes h (in µs).
func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Latency{
		P50:  us(h.ValueAtQuantile(50)),
		P90:  us(h.ValueAtQuantile(90)),
		P99:  us(h.ValueAtQuantile(99)),
		P999: us(h.ValueAtQuantile(99.9)),
		Max:  us(h.Max()),
		Mean: time.Duration(h.Mean() * float64(time.Microsecond)),
	}
}

// percentilesOf returns the latency at percentiles spread evenly on a "nines"
// scale (0, 90, 99, 99.9, ...) up to the resolution the sample count allows.
func percentilesOf(h *hdrhistogram.Histogram) []Quantile {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	const steps = 10 // points per nine
	maxNines := math.Min(5, math.Log10(float64(n)))
	var qs []Quantile
	for k := 0; float64(k) <= maxNines*steps; k++ {
		p := 100 * (1 - math.Pow(10, -float64(k)/steps))
		qs = append(qs, Quantile{Percentile: p, Latency: time.Duration(h.ValueAtQuantile(p)) * time.Microsecond})
	}
	return append(qs, Quantile{Percentile: 100, Latency: time.Duration(h.Max()) * time.Microsecond})
}

// bucketsOf regroups h's counts into at most n buckets of equal width on a
// logarithmic scale between its minimum and maximum.
func bucketsOf(h *hdrhistogram.Histogram, n int) []Bucket {
	if h.TotalCount() == 0 {
		return nil
	}
	lo, hi := float64(max(h.Min(), 1)), float64(max(h.Max(), 1))
	if hi <= lo {
		d := time.Duration(h.Min()) * time.Microsecond
		return []Bucket{{From: d, To: d, Count: h.TotalCount()}}
	}
	hi++ // the maximum falls inside the last bucket
	ratio := math.Log(hi / lo)
	bs := make([]Bucket, n)
	for i := range bs {
		bs[i].From = time.Duration(lo*math.Exp(ratio*float64(i)/float64(n))) * time.Microsecond
		bs[i].To = time.Duration(lo*math.Exp(ratio*float64(i+1)/float64(n))) * time.Microsecond
	}
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		v := float64(min(max(bar.From, int64(lo)), int64(hi)))
		i := int(math.Log(v/lo) / ratio * float64(n))
		bs[min(max(i, 0), n-1)].Count += bar.Count
	}
	return bs
}
