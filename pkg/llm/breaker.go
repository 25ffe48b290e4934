package llm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Defaults of BreakerOptions.
const (
	// DefaultBreakerFailures is the default BreakerOptions.Failures.
	DefaultBreakerFailures = 5
	// DefaultBreakerInterval is the default BreakerOptions.Interval.
	DefaultBreakerInterval = 60 * time.Second
	// DefaultBreakerOpenTimeout is the default BreakerOptions.OpenTimeout.
	DefaultBreakerOpenTimeout = 30 * time.Second
	// DefaultBreakerHalfOpenRequests is the default BreakerOptions.HalfOpenRequests.
	DefaultBreakerHalfOpenRequests = 1
)

// State is the state of a Breaker's circuit.
type State int

// Circuit states.
const (
	// StateClosed lets every call through and counts failures.
	StateClosed State = iota
	// StateHalfOpen lets a few probe calls through after OpenTimeout.
	StateHalfOpen
	// StateOpen refuses every call without calling the backend.
	StateOpen
)

// String returns "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	default:
		return fmt.Sprintf("State(%d)", int(s))
	}
}

func stateOf(s gobreaker.State) State {
	switch s {
	case gobreaker.StateHalfOpen:
		return StateHalfOpen
	case gobreaker.StateOpen:
		return StateOpen
	default:
		return StateClosed
	}
}

// BreakerOptions configures a Breaker.
type BreakerOptions struct {
	// Failures is how many consecutive failures open the circuit.
	// Default (0): 5.
	Failures uint32
	// Interval is how often the closed circuit's counters are reset.
	// Default (0): 60s.
	Interval time.Duration
	// OpenTimeout is how long the circuit stays open before it lets probe
	// calls through (half-open). Default (0): 30s.
	OpenTimeout time.Duration
	// HalfOpenRequests is how many probe calls the half-open circuit lets
	// through; that many consecutive successes close it, one failure opens it
	// again. Default (0): 1.
	HalfOpenRequests uint32
	// OnStateChange, if set, is called on every state change, e.g. for
	// metrics. It runs synchronously while the circuit's lock is held, in
	// the order the changes happen: it must be quick and must not call the
	// Breaker.
	OnStateChange func(backend string, from, to State)
}

// Breaker is a Backend that guards another Backend with a circuit breaker
// (github.com/sony/gobreaker/v2, one per process). It is safe for concurrent
// use.
//
// A call counts as a failure when it returns an error other than
// context.Canceled and ErrRejected: ErrUnavailable errors, the caller's
// deadline running out (a hung backend shows up this way), malformed
// responses and errors of unknown kind. context.Canceled (the client went
// away) is not counted at all, and ErrRejected (the backend answered, it just
// refused this request, e.g. HTTP 400 or 401) counts as a success.
//
// While the circuit is open, and while it is half-open with all probe calls
// in flight, Complete returns an *UnavailableError wrapping ErrBreakerOpen
// (and gobreaker.ErrOpenState or gobreaker.ErrTooManyRequests) without calling
// the backend; its RetryAfter is the time left until the circuit turns
// half-open, at least one second.
type Breaker struct {
	inner     Backend
	cb        *gobreaker.CircuitBreaker[Reply]
	timeout   time.Duration
	openUntil atomic.Int64 // UnixNano at which the circuit turns half-open
}

// NewBreaker wraps b in a circuit breaker. Every state change is logged to
// logger (Warn when opening, Info otherwise); a nil logger means
// slog.Default().
func NewBreaker(b Backend, opts BreakerOptions, logger *slog.Logger) *Breaker {
	if logger == nil {
		logger = slog.Default()
	}
	failures := opts.Failures
	if failures == 0 {
		failures = DefaultBreakerFailures
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultBreakerInterval
	}
	timeout := opts.OpenTimeout
	if timeout <= 0 {
		timeout = DefaultBreakerOpenTimeout
	}
	halfOpen := opts.HalfOpenRequests
	if halfOpen == 0 {
		halfOpen = DefaultBreakerHalfOpenRequests
	}

	br := &Breaker{inner: b, timeout: timeout}
	name := b.Name()
	br.cb = gobreaker.NewCircuitBreaker[Reply](gobreaker.Settings{
		Name:        name,
		MaxRequests: halfOpen,
		Interval:    interval,
		Timeout:     timeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, ErrRejected)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			f, t := stateOf(from), stateOf(to)
			if t == StateOpen {
				br.openUntil.Store(time.Now().Add(timeout).UnixNano())
				logger.Warn("llm: circuit breaker opened", "backend", name, "from", f.String(), "to", t.String(), "open_for", timeout)
			} else {
				logger.Info("llm: circuit breaker state changed", "backend", name, "from", f.String(), "to", t.String())
			}
			if opts.OnStateChange != nil {
				opts.OnStateChange(name, f, t)
			}
		},
	})
	return br
}

// Name returns the wrapped backend's name.
func (b *Breaker) Name() string { return b.inner.Name() }

// State returns the circuit's current state.
func (b *Breaker) State() State { return stateOf(b.cb.State()) }

// Complete calls the wrapped backend unless the circuit is open.
func (b *Breaker) Complete(ctx context.Context, req Request) (Reply, error) {
	called := false
	reply, err := b.cb.Execute(func() (Reply, error) {
		called = true
		return b.inner.Complete(ctx, req)
	})
	if err != nil && !called { // refused: gobreaker.ErrOpenState or ErrTooManyRequests

		wait := time.Until(time.Unix(0, b.openUntil.Load()))
		if wait < time.Second {
			wait = time.Second
		}
		return Reply{}, &UnavailableError{
			Backend:    b.Name(),
			RetryAfter: wait,
			Err:        fmt.Errorf("%w: %w", ErrBreakerOpen, err),
		}
	}
	return reply, err
}
