package loadtest

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText writes the result as a human-readable summary.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	st := r.Settings
	fmt.Fprintf(&b, "loadtest: %s model, target %s at %s\n", r.Model, st.Target, st.URL)
	if r.Model == Open {
		fmt.Fprintf(&b, "  load        %g req/s for %s (warm-up %s), %d sessions × %s turns, seed %d\n",
			st.Rate, st.Duration, st.Warmup, st.Sessions, turns(st.Turns), st.Seed)
	} else {
		fmt.Fprintf(&b, "  load        %d users, think %s, for %s (warm-up %s), %d sessions × %s turns, seed %d\n",
			st.Users, st.Think, st.Duration, st.Warmup, st.Sessions, turns(st.Turns), st.Seed)
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "  INTERRUPTED after %s of the measured window\n", r.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  requests    %d: %d succeeded, %d failed (%s)", r.Requests, r.Succeeded, r.Failed, fmtPercent(r.ErrorRate()))
	if r.Model == Open {
		fmt.Fprintf(&b, ", %d late", r.Late)
		if r.WaitedForSession+r.WaitedForInflight > 0 {
			fmt.Fprintf(&b, " (waited for an idle session %d×, for a free in-flight slot %d×)", r.WaitedForSession, r.WaitedForInflight)
		}
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  throughput  offered %.1f req/s, achieved %.1f req/s\n", r.OfferedRPS, r.AchievedRPS)
	from := "intended send"
	if r.Model == Closed {
		from = "send"
	}
	if r.Succeeded > 0 {
		l := r.Latency
		fmt.Fprintf(&b, "  latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s  (successes, from %s)\n",
			fmtDuration(l.P50), fmtDuration(l.P90), fmtDuration(l.P99), fmtDuration(l.P999), fmtDuration(l.Max), fmtDuration(l.Mean), from)
	} else {
		b.WriteString("  latency     no successful request\n")
	}
	fmt.Fprintf(&b, "  errors      %s\n", r.ErrorCauses())
	if n := r.Failed - r.Errors[CauseDropped]; n > 0 {
		l := r.FailedLatency
		fmt.Fprintf(&b, "  failed in   p50 %s  p99 %s  max %s\n", fmtDuration(l.P50), fmtDuration(l.P99), fmtDuration(l.Max))
	}
	fmt.Fprintf(&b, "  continuity  %d checked, %d broken\n", r.Continuity.Checked, r.Continuity.Broken)
	_, err := io.WriteString(w, b.String())
	return err
}

// turns formats a Turns setting.
func turns(n int) string {
	if n < 0 {
		return "∞"
	}
	return fmt.Sprint(n)
}

// fmtDuration formats d with three significant digits: 850µs, 1.23ms, 912ms,
// 1.05s.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return trimZeros(fmt.Sprintf("%.*f", decimals(float64(d)/1e6), float64(d)/1e6)) + "ms"
	default:
		return trimZeros(fmt.Sprintf("%.*f", decimals(d.Seconds()), d.Seconds())) + "s"
	}
}

// decimals is the number of decimals that give v three significant digits.
func decimals(v float64) int {
	switch {
	case v >= 100:
		return 0
	case v >= 10:
		return 1
	default:
		return 2
	}
}

// trimZeros drops trailing zeros of a decimal fraction.
func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// fmtPercent formats a share as a percentage.
func fmtPercent(f float64) string {
	return trimZeros(fmt.Sprintf("%.2f", f*100)) + "%"
}
