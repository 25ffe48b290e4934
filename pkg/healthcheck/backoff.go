package healthcheck

import (
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Backoff is the CrashLoop backoff of one target: consecutive restarts wait
// Initial, 2×Initial, 4×Initial … up to Max (cenkalti/backoff's exponential
// backoff without randomisation); a run that stayed healthy for ResetAfter
// starts over at Initial. Time is passed in, so tests run it on their own
// clock. It is not safe for concurrent use.
type Backoff struct {
	cfg          BackoffConfig
	exp          *backoff.ExponentialBackOff
	healthySince time.Time // when the current run became healthy; zero if not
	current      time.Duration
}

// NewBackoff returns a Backoff with the given settings.
func NewBackoff(cfg BackoffConfig) *Backoff {
	exp := &backoff.ExponentialBackOff{
		InitialInterval: cfg.Initial, Multiplier: 2, MaxInterval: cfg.Max, RandomizationFactor: 0,
	}
	exp.Reset()
	return &Backoff{cfg: cfg, exp: exp}
}

// Next returns how long to wait before the restart that is about to happen
// at now, and counts it.
func (b *Backoff) Next(now time.Time) time.Duration {
	if b.resetDue(now) {
		b.exp.Reset()
	}
	b.healthySince = time.Time{}
	b.current = min(b.exp.NextBackOff(), b.cfg.Max)
	return b.current
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
	b.exp.Reset()
	b.healthySince, b.current = time.Time{}, 0
}

// Current returns the delay of the last restart, or 0 after a reset,
// including one earned by a long enough healthy run as of now.
func (b *Backoff) Current(now time.Time) time.Duration {
	if b.resetDue(now) {
		return 0
	}
	return b.current
}

func (b *Backoff) resetDue(now time.Time) bool {
	return !b.healthySince.IsZero() && now.Sub(b.healthySince) >= b.cfg.ResetAfter
}
