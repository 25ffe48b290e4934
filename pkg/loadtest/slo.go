package loadtest

import (
	"fmt"
	"strings"
	"time"
)

// SLO is a service-level objective a result is judged by. The zero SLO
// checks nothing.
type SLO struct {
	// P99 is the highest acceptable 99th-percentile latency of the successful
	// requests; 0 does not check it.
	P99 time.Duration
	// ErrorRate is the highest acceptable share of failed requests, in
	// [0, 1]; checked only when HasErrorRate is set (so 0 can mean "no
	// errors at all").
	ErrorRate float64
	// HasErrorRate enables the ErrorRate check.
	HasErrorRate bool
}

// Validate reports the invalid fields of s (as FieldErrors joined), or nil.
func (s SLO) Validate() error {
	var fe fieldErrors
	if s.P99 < 0 {
		fe.add("P99", "must not be negative, got %v", s.P99)
	}
	if s.HasErrorRate && !(s.ErrorRate >= 0 && s.ErrorRate <= 1) {
		fe.add("ErrorRate", "must be a fraction in [0,1], got %v", s.ErrorRate)
	}
	return fe.err()
}

// Check returns an error naming every objective r breaks, e.g.
// "SLO broken: p99 912ms > 800ms; error rate 5.00% > 1.00%", or nil.
func (s SLO) Check(r *Result) error {
	var broken []string
	if s.P99 > 0 && r.Succeeded > 0 && r.Latency.P99 > s.P99 {
		broken = append(broken, fmt.Sprintf("p99 %s > %s", fmtDuration(r.Latency.P99), fmtDuration(s.P99)))
	}
	if s.HasErrorRate && r.ErrorRate() > s.ErrorRate {
		broken = append(broken, fmt.Sprintf("error rate %s > %s (%s)", fmtPercent(r.ErrorRate()), fmtPercent(s.ErrorRate), r.ErrorCauses()))
	}
	if len(broken) == 0 {
		return nil
	}
	return fmt.Errorf("SLO broken: %s", strings.Join(broken, "; "))
}
