package llm_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/mockllm"
)

// failing is a Backend that always fails with err.
type failing struct {
	name string
	err  error
}

func (f failing) Name() string { return f.name }
func (f failing) Complete(context.Context, llm.Request) (llm.Reply, error) {
	return llm.Reply{}, f.err
}

func TestFallbackAnswersWhenPrimaryFails(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	primary := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1})
	logger, logs := newLogger()
	b := llm.WithFallback(primary, newBuiltin(t, llm.BuiltinOptions{}), logger)
	if b.Name() != "openai" {
		t.Errorf("Name() = %q, want the primary's", b.Name())
	}
	req := llm.Request{Messages: []llm.Message{user("我叫小明"), assistant("好"), user("今天天气？")}}

	r, err := b.Complete(context.Background(), req)
	if err != nil || r.Backend != "openai" {
		t.Fatalf("healthy primary: %+v, %v; want the primary's reply", r, err)
	}

	m.fail(t, http.StatusServiceUnavailable)
	r, err = b.Complete(context.Background(), req)
	if err != nil {
		t.Fatalf("failing primary: %v", err)
	}
	if r.Backend != "builtin" || !strings.Contains(r.Content, "第 2 条") || !strings.Contains(r.Content, "我叫小明") {
		t.Errorf("failing primary: reply %+v, want the builtin's history-aware fallback", r)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "backend=openai fallback=builtin") {
		t.Errorf("no warning logged:\n%s", out)
	}
}

func TestFallbackSkippedWhenContextEnds(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1, Faults: mockllm.Faults{Latency: 5 * time.Second}})
	b := llm.WithFallback(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL}), newBuiltin(t, llm.BuiltinOptions{}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	r, err := b.Complete(ctx, llm.Request{Messages: []llm.Message{user("hi there")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %+v, %v; want context.Canceled and no fallback", r, err)
	}
}

func TestFallbackBothFail(t *testing.T) {
	perr := &llm.UnavailableError{Backend: "p", RetryAfter: time.Second, Err: errors.New("down")}
	ferr := errors.New("also down")
	b := llm.WithFallback(failing{"p", perr}, failing{"f", ferr}, nil)
	_, err := b.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("x")}})
	if !errors.Is(err, llm.ErrUnavailable) || !errors.Is(err, ferr) {
		t.Errorf("err = %v, want it to wrap both failures", err)
	}
}

func TestFallbackWithBreaker(t *testing.T) {
	// The production stack: breaker(openai) with the builtin as fallback.
	m := newMock(t, mockllm.Options{Seed: 1})
	m.fail(t, http.StatusInternalServerError)
	br := llm.NewBreaker(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1}),
		llm.BreakerOptions{Failures: 2, OpenTimeout: time.Minute}, nil)
	b := llm.WithFallback(br, newBuiltin(t, llm.BuiltinOptions{}), nil)
	for range 5 {
		r, err := b.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("你好")}})
		if err != nil || r.Backend != "builtin" || r.Confidence != 0.98 {
			t.Fatalf("got %+v, %v; want the builtin greeting", r, err)
		}
	}
	if calls := m.Stats().Calls; calls != 2 {
		t.Errorf("mock calls = %d, want 2 (the breaker opened after 2 failures)", calls)
	}
}
