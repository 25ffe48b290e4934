package llm_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
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

// recording remembers the prompts it was asked, then answers from inner.
type recording struct {
	llm.Backend
	calls atomic.Int64
	last  atomic.Pointer[llm.Request]
}

func (r *recording) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	r.calls.Add(1)
	r.last.Store(&req)
	return r.Backend.Complete(ctx, req)
}

func newRouter(t *testing.T, opts llm.RouterOptions) *llm.Router {
	t.Helper()
	r, err := llm.NewRouter(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func one(b llm.Backend) []llm.EndpointOptions { return []llm.EndpointOptions{{Backend: b}} }

func TestRouterFallsBackWhenTheModelFails(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	logger, logs := newLogger()
	r := newRouter(t, llm.RouterOptions{Logger: logger, Models: []llm.ModelOptions{
		{Name: "gpt", Endpoints: one(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1})), Fallbacks: []string{"builtin"}},
		{Name: "builtin", Endpoints: one(newBuiltin(t, llm.BuiltinOptions{}))},
	}})
	req := llm.Request{Messages: []llm.Message{user("我叫小明"), assistant("好"), user("今天天气？")}}
	res, err := r.Complete(context.Background(), req)
	if err != nil || res.Backend != "openai" {
		t.Fatalf("healthy model: %+v, %v; want the model's reply", res, err)
	}
	m.fail(t, http.StatusServiceUnavailable)
	res, err = r.Complete(context.Background(), req)
	if err != nil || res.Backend != "builtin" || !strings.Contains(res.Content, "第 2 条") || !strings.Contains(res.Content, "我叫小明") {
		t.Fatalf("failing model: %+v, %v; want the builtin's history-aware fallback", res, err)
	}
	if out := logs.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "model=gpt fallback=builtin") {
		t.Errorf("no warning logged:\n%s", out)
	}
}

func TestRouterSkipsTheFallbackWhenTheContextEnds(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1, Faults: mockllm.Faults{Latency: 5 * time.Second}})
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{
		{Name: "gpt", Endpoints: one(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL})), Fallbacks: []string{"builtin"}},
		{Name: "builtin", Endpoints: one(newBuiltin(t, llm.BuiltinOptions{}))},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel) // the caller gives up while the model is slow
	res, err := r.Complete(ctx, llm.Request{Messages: []llm.Message{user("hi there")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %+v, %v; want context.Canceled and no fallback", res, err)
	}
}

func TestRouterKeepsEveryFailure(t *testing.T) {
	perr := &llm.UnavailableError{Backend: "p", RetryAfter: time.Second, Err: errors.New("down")}
	ferr := &llm.UnavailableError{Backend: "f", RetryAfter: 2 * time.Second, Err: errors.New("also down")}
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{
		{Name: "p", Endpoints: one(failing{"p", perr}), Fallbacks: []string{"f"}},
		{Name: "f", Endpoints: one(failing{"f", ferr})},
	}})
	_, err := r.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("x")}})
	if !errors.Is(err, perr) || !errors.Is(err, ferr) || fault.Of(err).Status != 503 {
		t.Errorf("err = %v, want it to wrap both failures, a 503", err)
	}
}

func TestRouterBreakerOpensThenTheFallbackAnswers(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	m.fail(t, http.StatusInternalServerError)
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{
		{Name: "gpt", Endpoints: one(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1})),
			Breaker: llm.BreakerOptions{Failures: 2, OpenTimeout: time.Minute}, Fallbacks: []string{"builtin"}},
		{Name: "builtin", Endpoints: one(newBuiltin(t, llm.BuiltinOptions{}))},
	}})
	for range 5 {
		res, err := r.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("你好")}})
		if err != nil || res.Backend != "builtin" || res.Confidence != 0.98 {
			t.Fatalf("got %+v, %v; want the builtin greeting", res, err)
		}
	}
	if calls := m.Stats().Calls; calls != 2 {
		t.Errorf("mock calls = %d, want 2 (the breaker opened after 2 failures)", calls)
	}
	if got := r.Breakers(); got["gpt"] != "open" || got["builtin"] != "closed" {
		t.Errorf("breakers %v", got)
	}
}

func TestRouterPicksTheModel(t *testing.T) {
	a := &recording{Backend: newBuiltin(t, llm.BuiltinOptions{})}
	b := &recording{Backend: newBuiltin(t, llm.BuiltinOptions{})}
	r := newRouter(t, llm.RouterOptions{Default: "b", Models: []llm.ModelOptions{
		{Name: "a", Endpoints: one(a)}, {Name: "b", Endpoints: one(b)},
	}})
	msgs := []llm.Message{user("hi")}
	for _, name := range []string{"a", "", "b", "a"} {
		if _, err := r.Complete(context.Background(), llm.Request{Model: name, Messages: msgs}); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 2 || b.calls.Load() != 2 {
		t.Fatalf("a %d calls, b %d; want 2 each (the default is b)", a.calls.Load(), b.calls.Load())
	}
	_, err := r.Complete(context.Background(), llm.Request{Model: "gpt-9", Messages: msgs})
	if f := fault.Of(err); !errors.Is(err, llm.ErrModelNotFound) || f.Status != 404 || f.Code != "model_not_found" || !strings.Contains(f.Message, "gpt-9") {
		t.Fatalf("unknown model: %v (%+v)", err, f)
	}
	if got := r.Models(); len(got) != 2 || got[0].ID != "b" || r.Default() != "b" {
		t.Fatalf("models %+v", got)
	}
}

// Endpoints of one model share its traffic by weight; one that fails is
// cooled down (its breaker opens) while the others answer, and it is
// probed again after the breaker's open timeout.
func TestRouterBalancesEndpointsAndCoolsDownAFailingOne(t *testing.T) {
	good := newMock(t, mockllm.Options{Seed: 1})
	bad := newMock(t, mockllm.Options{Seed: 1})
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{{
		Name: "gpt",
		Endpoints: []llm.EndpointOptions{
			{Backend: newOpenAI(t, llm.OpenAIOptions{BaseURL: good.URL, Retries: -1}), Weight: 3},
			{Backend: newOpenAI(t, llm.OpenAIOptions{BaseURL: bad.URL, Retries: -1}), Weight: 1},
		},
		Breaker: llm.BreakerOptions{Failures: 2, OpenTimeout: 300 * time.Millisecond},
	}}})
	req := llm.Request{Messages: []llm.Message{user("hi")}}
	for range 400 {
		if _, err := r.Complete(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	g, b := good.Stats().Calls, bad.Stats().Calls
	if share := float64(b) / float64(g+b); share < 0.15 || share > 0.35 {
		t.Fatalf("weights 3:1 gave %d:%d calls", g, b)
	}
	bad.fail(t, http.StatusServiceUnavailable)
	for i := range 50 {
		if _, err := r.Complete(context.Background(), req); err != nil {
			t.Fatalf("call %d with one endpoint failing: %v", i, err)
		}
	}
	if state := r.Breakers()["gpt#2"]; state != "open" {
		t.Fatalf("the failing endpoint's breaker is %s, want open (%v)", state, r.Breakers())
	}
	before := bad.Stats().Calls
	if err := bad.SetFaults(mockllm.Faults{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Breakers()["gpt#2"] != "closed" {
		if time.Now().After(deadline) {
			t.Fatalf("the healed endpoint was never probed back in: %v", r.Breakers())
		}
		if _, err := r.Complete(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if bad.Stats().Calls == before {
		t.Fatal("no call reached the healed endpoint")
	}
}

// A streamed reply that fails after its first piece is not retried on a
// fallback: the client has part of it already.
func TestRouterNeverFallsBackMidStream(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{
		{Name: "gpt", Endpoints: one(newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1})), Fallbacks: []string{"builtin"}},
		{Name: "builtin", Endpoints: one(newBuiltin(t, llm.BuiltinOptions{}))},
	}})
	var pieces []string
	stop := errors.New("client went away")
	_, err := r.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("tell me a long story please")},
		Stream: func(d string) error {
			pieces = append(pieces, d)
			return stop
		}})
	if !errors.Is(err, stop) || len(pieces) != 1 {
		t.Fatalf("err %v after %d pieces; want the sink's error after 1", err, len(pieces))
	}
}

// A conversation longer than the model's window reaches it trimmed, the
// newest history kept; a message that alone does not fit is refused.
func TestRouterFitsThePromptToTheContextWindow(t *testing.T) {
	rec := &recording{Backend: newBuiltin(t, llm.BuiltinOptions{})}
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{{Name: "small", Endpoints: one(rec), ContextTokens: 200, MaxTokens: 50}}})
	msgs := []llm.Message{{Role: llm.RoleSystem, Content: "be brief"}}
	for i := range 40 {
		msgs = append(msgs, user(strings.Repeat("word ", 5)+string(rune('a'+i%26))), assistant("ok "+string(rune('a'+i%26))))
	}
	msgs = append(msgs, user("the newest question"))
	if _, err := r.Complete(context.Background(), llm.Request{Messages: msgs}); err != nil {
		t.Fatal(err)
	}
	sent := rec.last.Load().Messages
	if n := llm.PromptTokens(sent); n > 200-50 || len(sent) >= len(msgs) || len(sent) < 4 {
		t.Fatalf("sent %d of %d messages, %d tokens; want it trimmed under 150", len(sent), len(msgs), n)
	}
	if !reflect.DeepEqual(sent[0], msgs[0]) || !reflect.DeepEqual(sent[len(sent)-2:], msgs[len(msgs)-2:]) {
		t.Fatalf("trimmed wrongly: first %+v, last two %+v", sent[0], sent[len(sent)-2:])
	}
	_, err := r.Complete(context.Background(), llm.Request{Messages: []llm.Message{user(strings.Repeat("long text ", 200))}})
	if f := fault.Of(err); f.Code != "context_length_exceeded" || f.Status != 400 {
		t.Fatalf("oversized message: %v", err)
	}
}

func TestRouterStreamsTheBuiltinWordByWord(t *testing.T) {
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{{Name: "builtin", Endpoints: one(newBuiltin(t, llm.BuiltinOptions{}))}}})
	var pieces []string
	res, err := r.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("what is the capital of France")},
		Stream: func(d string) error { pieces = append(pieces, d); return nil }})
	if err != nil || len(pieces) < 3 || strings.Join(pieces, "") != res.Content {
		t.Fatalf("pieces %q, reply %q, %v", pieces, res.Content, err)
	}
}

// A user message's images reach a model that takes image input as
// OpenAI's image_url parts (data URLs) after its text; a model that does
// not gets the text alone; an image counts in the context window.
func TestRouterSendsImagesOnlyToModelsThatTakeThem(t *testing.T) {
	mock := newMock(t, mockllm.Options{})
	backend := newOpenAI(t, llm.OpenAIOptions{BaseURL: mock.URL})
	r := newRouter(t, llm.RouterOptions{Models: []llm.ModelOptions{
		{Name: "vision", Endpoints: one(backend), Images: true},
		{Name: "text", Endpoints: one(backend)},
		{Name: "small-vision", Endpoints: one(backend), Images: true, ContextTokens: 500},
	}})
	png := []byte("\x89PNG\r\n\x1a\nnot really an image")
	msg := llm.Message{Role: llm.RoleUser, Content: "what is in this picture?", Images: []llm.Image{{MIME: "image/png", Data: png}}}
	reply, err := r.Complete(context.Background(), llm.Request{Model: "vision", Messages: []llm.Message{msg}})
	if err != nil {
		t.Fatal(err)
	}
	want := "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	if st := mock.Stats(); st.Images != 1 || st.LastImage != want || !strings.HasSuffix(reply.Content, ": what is in this picture?") {
		t.Fatalf("the vision model got %d images, the last %q; replied %q", st.Images, st.LastImage, reply.Content)
	}
	if _, err := r.Complete(context.Background(), llm.Request{Model: "text", Messages: []llm.Message{msg}}); err != nil {
		t.Fatal(err)
	}
	sent := mock.requests()
	if st := mock.Stats(); st.Images != 1 || sent[len(sent)-1].Body.Messages[0].Content != "what is in this picture?" {
		t.Fatalf("the text model got images (%d in all) or lost the text: %+v", st.Images, sent[len(sent)-1].Body.Messages)
	}
	if _, err := r.Complete(context.Background(), llm.Request{Model: "small-vision", Messages: []llm.Message{msg}}); fault.Of(err).Code != "context_length_exceeded" {
		t.Fatalf("an image in a 500-token window: %v, want context_length_exceeded", err)
	}
}
