// Package pause is how the fleet's loops wait between tries: for a time,
// or until their context ends, whichever comes first. It is the one copy
// of what the IM links, the health checker's restarter, mockllm's faults
// and the retry loops each wrote as a select over a timer.
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
