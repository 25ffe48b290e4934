package llm_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

func newLogger() (*slog.Logger, *testenv.Buffer) {
	lb := &testenv.Buffer{}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// transitions records OnStateChange calls.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) record(backend string, from, to llm.State) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.got = append(tr.got, fmt.Sprintf("%s:%s->%s", backend, from, to))
}

func (tr *transitions) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.Join(tr.got, " ")
}

func TestBreakerOpensFailsFastAndRecovers(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	m.fail(t, http.StatusInternalServerError)
	backend := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1})
	var tr transitions
	logger, logs := newLogger()
	const openTimeout = 200 * time.Millisecond
	b := llm.NewBreaker(backend, llm.BreakerOptions{
		Failures:      3,
		OpenTimeout:   openTimeout,
		OnStateChange: tr.record,
	}, logger)
	if b.Name() != "openai" {
		t.Errorf("Name() = %q, want the inner backend's", b.Name())
	}
	var _ llm.Backend = b
	req := llm.Request{Messages: []llm.Message{user("hi")}}
	ctx := context.Background()

	for i := range 3 {
		if b.State() != llm.StateClosed {
			t.Fatalf("state before failure %d = %v, want closed", i+1, b.State())
		}
		_, err := b.Complete(ctx, req)
		if !errors.Is(err, llm.ErrUnavailable) || errors.Is(err, llm.ErrBreakerOpen) {
			t.Fatalf("failure %d: err = %v, want the backend's own ErrUnavailable", i+1, err)
		}
	}
	if b.State() != llm.StateOpen {
		t.Fatalf("state after 3 failures = %v, want open", b.State())
	}
	if calls := m.Stats().Calls; calls != 3 {
		t.Fatalf("mock calls = %d, want 3", calls)
	}

	for range 5 {
		_, err := b.Complete(ctx, req)
		var ue *llm.UnavailableError
		if !errors.As(err, &ue) || !errors.Is(err, llm.ErrBreakerOpen) || !errors.Is(err, gobreaker.ErrOpenState) {
			t.Fatalf("open: err = %v, want an *UnavailableError wrapping ErrBreakerOpen", err)
		}
		if ue.Backend != "openai" || ue.RetryAfter < time.Second {
			t.Errorf("open: Backend/RetryAfter = %q/%v, want openai/>=1s", ue.Backend, ue.RetryAfter)
		}
	}
	if calls := m.Stats().Calls; calls != 3 {
		t.Errorf("mock calls while open = %d, want still 3", calls)
	}

	if err := m.SetFaults(mockllm.Faults{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the circuit to turn half-open after OpenTimeout", func() bool { return b.State() == llm.StateHalfOpen })
	r, err := b.Complete(ctx, req)
	if err != nil {
		t.Fatalf("after OpenTimeout with the mock healed: %v", err)
	}
	if r.Backend != "openai" || !strings.HasPrefix(r.Content, "mock ") {
		t.Errorf("reply %+v, want the mock's", r)
	}
	if b.State() != llm.StateClosed {
		t.Errorf("state after a successful probe = %v, want closed", b.State())
	}
	if want := "openai:closed->open openai:open->half-open openai:half-open->closed"; tr.String() != want {
		t.Errorf("transitions %q, want %q", tr.String(), want)
	}
	out := logs.String()
	for _, want := range []string{
		"level=WARN msg=\"llm: circuit breaker opened\" backend=openai from=closed to=open",
		"level=INFO msg=\"llm: circuit breaker state changed\" backend=openai from=open to=half-open",
		"level=INFO msg=\"llm: circuit breaker state changed\" backend=openai from=half-open to=closed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestBreakerHalfOpenFailureReopens(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	m.fail(t, http.StatusBadGateway)
	var tr transitions
	b := llm.NewBreaker(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1}),
		llm.BreakerOptions{Failures: 1, OpenTimeout: 100 * time.Millisecond, OnStateChange: tr.record}, nil)
	req := llm.Request{Messages: []llm.Message{user("hi")}}
	_, _ = b.Complete(context.Background(), req)
	testenv.WaitFor(t, 10*time.Second, "the circuit to turn half-open after OpenTimeout", func() bool { return b.State() == llm.StateHalfOpen })
	if _, err := b.Complete(context.Background(), req); errors.Is(err, llm.ErrBreakerOpen) || err == nil {
		t.Fatalf("probe: err = %v, want the backend's failure", err)
	}
	if b.State() != llm.StateOpen {
		t.Errorf("state after a failed probe = %v, want open", b.State())
	}
	if want := "openai:closed->open openai:open->half-open openai:half-open->open"; tr.String() != want {
		t.Errorf("transitions %q, want %q", tr.String(), want)
	}
	if calls := m.Stats().Calls; calls != 2 {
		t.Errorf("mock calls = %d, want 2", calls)
	}
}

func TestBreakerIgnoresCanceledAndRejected(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1, Faults: mockllm.Faults{Latency: 5 * time.Second}})
	b := llm.NewBreaker(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1}),
		llm.BreakerOptions{Failures: 2}, nil)
	req := llm.Request{Messages: []llm.Message{user("hi")}}

	for range 4 { // canceled mid-request: the client went away
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		if _, err := b.Complete(ctx, req); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	}
	if b.State() != llm.StateClosed {
		t.Fatalf("state after canceled calls = %v, want closed", b.State())
	}

	m.fail(t, http.StatusBadRequest)
	for range 4 {
		if _, err := b.Complete(context.Background(), req); !errors.Is(err, llm.ErrRejected) {
			t.Fatalf("err = %v, want ErrRejected", err)
		}
	}
	if b.State() != llm.StateClosed {
		t.Fatalf("state after 400s = %v, want closed", b.State())
	}

	// The caller's deadline running out does count: a hung backend looks like that.
	if err := m.SetFaults(mockllm.Faults{Latency: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := b.Complete(ctx, req)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	}
	if b.State() != llm.StateOpen {
		t.Errorf("state after 2 deadline failures = %v, want open", b.State())
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[llm.State]string{
		llm.StateClosed: "closed", llm.StateHalfOpen: "half-open", llm.StateOpen: "open", llm.State(9): "State(9)",
	} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
}
