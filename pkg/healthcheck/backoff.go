package healthcheck

import "time"

// Backoff is the CrashLoop backoff of one target: consecutive restarts wait
// Initial, 2×Initial, 4×Initial … up to Max; a run that stayed healthy for
// ResetAfter starts over at Initial. It is not safe for concurrent use.
type Backoff struct {
	cfg          BackoffConfig
	consecutive  int       // restarts since the last reset
	healthySince time.Time // when the current run became healthy; zero if not
	current      time.Duration
}

// NewBackoff returns a Backoff with the given settings.
func NewBackoff(cfg BackoffConfig) *Backoff { return &Backoff{cfg: cfg} }

// Next returns how long to wait before the restart that is about to happen
// at now, and counts it.
func (b *Backoff) Next(now time.Time) time.Duration {
	if !b.healthySince.IsZero() && now.Sub(b.healthySince) >= b.cfg.ResetAfter {
		b.consecutive = 0
	}
	b.healthySince = time.Time{}
	d := b.cfg.Initial
	for i := 0; i < b.consecutive && d < b.cfg.Max; i++ {
		d *= 2
	}
	if d > b.cfg.Max {
		d = b.cfg.Max
	}
	b.consecutive++
	b.current = d
	return d
}

// Healthy records that the target became healthy at now; if it stays so
// for ResetAfter the next restart waits only Initial.
func (b *Backoff) Healthy(now time.Time) {
	if b.healthySince.IsZero() {
		b.healthySince = now
	}
}

// Reset starts over at Initial.
func (b *Backoff) Reset() {
	b.consecutive, b.healthySince, b.current = 0, time.Time{}, 0
}

// Current returns the delay of the last restart, or 0 after a reset,
// including one earned by a long enough healthy run as of now.
func (b *Backoff) Current(now time.Time) time.Duration {
	if !b.healthySince.IsZero() && now.Sub(b.healthySince) >= b.cfg.ResetAfter {
		return 0
	}
	return b.current
}
