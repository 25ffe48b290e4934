package pause_test

import (
	"context"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
)

func TestForEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan bool)
	go func() { done <- pause.For(ctx, time.Hour) }()
	cancel()
	select {
	case on := <-done:
		if on {
			t.Fatal("For reported its context on after it ended")
		}
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("For did not end with its context")
	}
	if pause.For(ctx, 0) {
		t.Fatal("For(0) of an ended context reported it on")
	}
}

func TestForWaitsItsTime(t *testing.T) {
	if !pause.For(context.Background(), 0) || !pause.For(context.Background(), time.Millisecond) {
		t.Fatal("For of a live context reported it ended")
	}
}

func TestEveryCallsUntilFSaysStop(t *testing.T) {
	n := 0
	pause.Every(context.Background(), time.Millisecond, func() bool { n++; return n < 3 })
	if n != 3 {
		t.Fatalf("f called %d times, want 3 (until it returned false)", n)
	}
}

func TestEveryEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		pause.Every(ctx, time.Hour, func() bool { t.Error("f called before its first tick"); return true })
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("Every did not end with its context")
	}
}
