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
