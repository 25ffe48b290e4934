package loadtest

import (
	"fmt"
	"time"
)

// Snapshot is a running load test's state, passed to Options.Progress.
type Snapshot struct {
	// Elapsed is the time since the run started (warm-up included).
	Elapsed time.Duration
	// Total is the run's planned length, warm-up plus the measured window.
	Total time.Duration
	// Warmup reports that the run is still warming up.
	Warmup bool
	// Model is the run's load model.
	Model Model
	// WarmedUp counts the warm-up requests completed.
	WarmedUp int64
	// Requests, Succeeded, Failed and Late are the measured window's counts
	// so far (Result's fields of the same names).
	Requests, Succeeded, Failed, Late int64
	// Inflight is the number of requests waiting for an answer.
	Inflight int64
	// RecentRPS is the requests completed (answered or failed, warm-up
	// included) per second since the previous snapshot.
	RecentRPS float64
	// P99 is the successful requests' 99th-percentile latency so far.
	P99 time.Duration
}

// String formats s as one progress line, e.g.
// "[ 3.0s/12.0s] 600 req: 598 ok, 2 failed, 0 late | 200 req/s | p99 4.1ms | in flight 3".
func (s Snapshot) String() string {
	clock := fmt.Sprintf("[%5.1fs/%.1fs]", s.Elapsed.Seconds(), s.Total.Seconds())
	if s.Warmup {
		return fmt.Sprintf("%s warming up: %d req | in flight %d", clock, s.WarmedUp, s.Inflight)
	}
	line := fmt.Sprintf("%s %d req: %d ok, %d failed", clock, s.Requests, s.Succeeded, s.Failed)
	if s.Model == Open {
		line += fmt.Sprintf(", %d late", s.Late)
	}
	p99 := "-"
	if s.Succeeded > 0 {
		p99 = fmtDuration(s.P99)
	}
	return line + fmt.Sprintf(" | %.0f req/s | p99 %s | in flight %d", s.RecentRPS, p99, s.Inflight)
}
