package healthcheck

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Kind is a probe kind.
type Kind string

// Probe kinds.
const (
	// Liveness probes decide restarts.
	Liveness Kind = "liveness"
	// Readiness probes are reported only.
	Readiness Kind = "readiness"
)

// Result is a probe result.
type Result string

// Probe results.
const (
	// ResultUnknown is the reported result before a threshold is reached.
	ResultUnknown Result = "unknown"
	// ResultSuccess is a successful probe.
	ResultSuccess Result = "success"
	// ResultFailure is a failed probe.
	ResultFailure Result = "failure"
)

// observation is one probe as a worker tells it to its target.
type observation struct {
	kind     Kind
	url      string
	at       time.Time
	latency  time.Duration
	result   Result // this probe's own result
	err      error
	failures int    // consecutive failed probes
	reported Result // the result after thresholds
	changed  bool   // reported changed with this probe
	gen      uint64 // the worker's generation (bumped by release)
}

// worker probes one URL of one target on a period, counts results in runs
// against the thresholds and tells every probe to observe. A liveness
// worker whose failure is acted on holds (stops probing) until release.
type worker struct {
	kind    Kind
	url     string
	s       Settings
	prober  Prober
	jitter  func(time.Duration) time.Duration
	observe func(observation)
	mu      sync.Mutex
	// holdOnFailure makes a reported failure hold the worker until
	// release (liveness with a restart strategy).
	holdOnFailure bool
	last          Result // last probe's result
	streak        int    // probes in a row with result last
	failures      int
	reported      Result
	onHold        bool
	gen           uint64
}

func newWorker(kind Kind, url string, s Settings, p Prober, observe func(observation)) *worker {
	return &worker{
		kind: kind, url: url, s: s, prober: p, observe: observe,
		jitter: randomJitter, last: ResultUnknown, reported: ResultUnknown,
	}
}

func randomJitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max + 1)
}

// run probes until ctx ends: first after InitialDelay plus a random jitter
// of up to Jitter, then every Period.
func (w *worker) run(ctx context.Context) {
	first := time.NewTimer(w.s.InitialDelay + w.jitter(w.s.Jitter))
	defer first.Stop()
	select {
	case <-ctx.Done():
		return
	case <-first.C:
	}
	tick := time.NewTicker(w.s.Period)
	defer tick.Stop()
	for {
		w.probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe runs one probe unless the worker is on hold.
func (w *worker) probe(ctx context.Context) {
	w.mu.Lock()
	held := w.onHold
	w.mu.Unlock()
	if held {
		return
	}
	start := time.Now()
	err := w.prober.Probe(ctx, w.url, w.s.Timeout)
	if ctx.Err() != nil {
		return
	}
	o := observation{kind: w.kind, url: w.url, at: start, latency: time.Since(start), result: ResultSuccess, err: err}
	if err != nil {
		o.result = ResultFailure
	}

	w.mu.Lock()
	if w.onHold { // held while probing: this result belongs to the old process
		w.mu.Unlock()
		return
	}
	if o.result == w.last {
		w.streak++
	} else {
		w.last, w.streak = o.result, 1
	}
	if o.result == ResultFailure {
		w.failures++
	} else {
		w.failures = 0
	}
	threshold := w.s.SuccessThreshold
	if o.result == ResultFailure {
		threshold = w.s.FailureThreshold
	}
	if w.streak >= threshold && w.reported != o.result {
		w.reported = o.result
		o.changed = true
	}
	if o.changed && o.result == ResultFailure && w.holdOnFailure {
		// As the kubelet does: hold until the restarter has acted, so a
		// failure is acted on once.
		w.onHold = true
		w.streak = 0
	}
	o.failures, o.reported, o.gen = w.failures, w.reported, w.gen
	w.mu.Unlock()
	w.observe(o)
}

// setHoldOnFailure sets whether a reported failure holds the worker (off
// while its target is failed: nobody would act on it).
func (w *worker) setHoldOnFailure(on bool) {
	w.mu.Lock()
	w.holdOnFailure = on
	w.mu.Unlock()
}

// setOnHold stops probing (until release), or resumes it keeping the runs
// and the reported result.
func (w *worker) setOnHold(on bool) {
	w.mu.Lock()
	w.onHold = on
	w.mu.Unlock()
}

// release resumes probing with fresh runs (the process is new) and bumps
// the generation, so observations from before are recognised as stale.
func (w *worker) release() {
	w.mu.Lock()
	w.onHold = false
	w.last, w.streak, w.failures, w.reported = ResultUnknown, 0, 0, ResultUnknown
	w.gen++
	w.mu.Unlock()
}

// generation returns the current generation.
func (w *worker) generation() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gen
}
