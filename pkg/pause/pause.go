// Package pause is how the fleet's loops wait between tries: for a time,
// or until their context ends, whichever comes first (For), or on a
// ticker (Every). It is the one copy of what the IM links, the health
// checker's restarter, mockllm's faults and the retry and renewal loops
// each wrote as a select over a timer.
package pause

import (
	"context"
	"time"
)

// For waits d or until ctx ends, and reports whether ctx is still on:
// true when d passed (at once when d ≤ 0) before ctx ended.
func For(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Every calls f every d until ctx ends or f returns false: the loops that
// renew, ping or redeliver on a ticker.
func Every(ctx context.Context, d time.Duration, f func() bool) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !f() {
				return
			}
		}
	}
}
