package testenv

import (
	"testing"
	"time"
)

// pollEvery is how often WaitFor asks its condition again.
const pollEvery = 10 * time.Millisecond

// WaitFor asks cond until it holds, and fails the test when it still does
// not after timeout — the deadline only guards against a hang, it asserts
// no speed. what says what was waited for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("testenv: gave up waiting %v for %s", timeout, what)
	}
}

// Eventually asks cond until it holds or timeout passes, and reports
// whether it held.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}
