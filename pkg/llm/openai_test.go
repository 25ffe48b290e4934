package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// sentRequest is what the backend put on the wire.
type sentRequest struct {
	Authorization string
	RetryCount    string
	Body          struct {
		Model       string   `json:"model"`
		Temperature *float64 `json:"temperature"`
		MaxTokens   *int64   `json:"max_tokens"`
		Logprobs    *bool    `json:"logprobs"`
		Messages    []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
}

// mockServer runs the project's mock LLM and records the requests reaching it.
type mockServer struct {
	*mockllm.Server
	URL string

	mu   sync.Mutex
	sent []sentRequest
}

func newMock(t *testing.T, opts mockllm.Options) *mockServer {
	t.Helper()
	m := &mockServer{Server: mockllm.New(opts)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var s sentRequest
		s.Authorization = r.Header.Get("Authorization")
		s.RetryCount = r.Header.Get("X-Stainless-Retry-Count")
		_ = json.Unmarshal(body, &s.Body)
		m.mu.Lock()
		m.sent = append(m.sent, s)
		m.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		m.Server.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.URL = srv.URL + "/v1"
	return m
}

func (m *mockServer) requests() []sentRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sentRequest(nil), m.sent...)
}

func (m *mockServer) fail(t *testing.T, status int) {
	t.Helper()
	if err := m.SetFaults(mockllm.Faults{ErrorRate: 1, ErrorStatus: status}); err != nil {
		t.Fatal(err)
	}
}

// failedComplete asks for one completion, with retries, of a mock that
// answers every call with status; it returns the mock and the error.
func failedComplete(t *testing.T, status, retries int) (*mockServer, error) {
	t.Helper()
	m := newMock(t, mockllm.Options{Seed: 1})
	m.fail(t, status)
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: retries})
	_, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("hi")}})
	return m, err
}

func newOpenAI(t *testing.T, opts llm.OpenAIOptions) *llm.OpenAI {
	t.Helper()
	if opts.Model == "" {
		opts.Model = "mock-test"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	o, err := llm.NewOpenAI(opts)
	if err != nil {
		t.Fatalf("NewOpenAI: %v", err)
	}
	return o
}

func ptr[T any](v T) *T { return &v }

func toMock(msgs []llm.Message) []mockllm.Message {
	out := make([]mockllm.Message, len(msgs))
	for i, m := range msgs {
		out[i] = mockllm.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

func TestOpenAIReplyAndRequest(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "must-not-leak")
	m := newMock(t, mockllm.Options{Seed: 1})
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Model: "qwen-test", MaxTokens: 64, Retries: -1})
	if o.Name() != "openai" {
		t.Errorf("Name() = %q, want openai", o.Name())
	}
	msgs := []llm.Message{
		system("你是 botfleet 助手"),
		user("我叫小明"), assistant("你好小明"),
		user("我叫什么？"),
	}
	r, err := o.Complete(context.Background(), llm.Request{Messages: msgs})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if want := mockllm.Reply(toMock(msgs)); r.Content != want {
		t.Errorf("Content = %q, want %q", r.Content, want)
	}
	if r.Backend != "openai" || r.Model != "qwen-test" || r.Confidence != 0.9 {
		t.Errorf("Backend/Model/Confidence = %q/%q/%v, want openai/qwen-test/0.9 (finish_reason stop)", r.Backend, r.Model, r.Confidence)
	}

	sent := m.requests()
	if len(sent) != 1 {
		t.Fatalf("%d requests reached the mock, want 1", len(sent))
	}
	s := sent[0]
	if s.Body.Model != "qwen-test" {
		t.Errorf("sent model %q, want qwen-test", s.Body.Model)
	}
	if s.Body.Temperature != nil {
		t.Errorf("sent temperature %v, want none (left to the server) when none is configured", *s.Body.Temperature)
	}
	if s.Body.MaxTokens == nil || *s.Body.MaxTokens != 64 {
		t.Errorf("sent max_tokens %v, want 64", s.Body.MaxTokens)
	}
	if s.Body.Logprobs != nil {
		t.Errorf("sent logprobs %v, want none", *s.Body.Logprobs)
	}
	if len(s.Body.Messages) != len(msgs) {
		t.Fatalf("sent %d messages, want %d", len(s.Body.Messages), len(msgs))
	}
	for i, m := range msgs {
		if got := s.Body.Messages[i]; got.Role != m.Role || got.Content != m.Content {
			t.Errorf("sent message %d = %+v, want %+v", i, got, m)
		}
	}
	if s.Authorization != "" {
		t.Errorf("sent Authorization %q with no APIKey configured, want none", s.Authorization)
	}
}

func TestOpenAITemperatureUnsetAndExplicit(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	for _, temp := range []*float64{nil, ptr(1.3), ptr(0.0)} {
		o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Temperature: temp, Retries: -1})
		if _, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	sent := m.requests()
	if sent[0].Body.Temperature != nil {
		t.Errorf("no Temperature sent %v, want unset", *sent[0].Body.Temperature)
	}
	if sent[1].Body.Temperature == nil || *sent[1].Body.Temperature != 1.3 {
		t.Errorf("Temperature 1.3 sent %v", sent[1].Body.Temperature)
	}
	if sent[2].Body.Temperature == nil || *sent[2].Body.Temperature != 0 {
		t.Errorf("Temperature 0 sent %v, want 0 (a zero one may mean)", sent[2].Body.Temperature)
	}
	if sent[0].Body.MaxTokens != nil {
		t.Errorf("MaxTokens 0 sent %v, want unset", *sent[0].Body.MaxTokens)
	}
}

func TestOpenAIAPIKey(t *testing.T) {
	m := newMock(t, mockllm.Options{APIKey: "sk-right", Seed: 1})
	req := llm.Request{Messages: []llm.Message{user("hi")}}

	good := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, APIKey: "sk-right", Retries: 2})
	if _, err := good.Complete(context.Background(), req); err != nil {
		t.Fatalf("right key: %v", err)
	}
	m.Reset()
	bad := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, APIKey: "sk-wrong", Retries: 2})
	_, err := bad.Complete(context.Background(), req)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong key: err = %v, want an *openai.Error with status 401", err)
	}
	if errors.Is(err, llm.ErrUnavailable) || !errors.Is(err, llm.ErrRejected) {
		t.Errorf("wrong key: err = %v, want ErrRejected and not ErrUnavailable", err)
	}
	if n := len(m.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (one per backend; 401 is not retried)", n)
	}
}

func TestOpenAIRetries503(t *testing.T) {
	m, err := failedComplete(t, http.StatusServiceUnavailable, 2)
	var ue *llm.UnavailableError
	if !errors.As(err, &ue) || !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("err = %v, want an *UnavailableError", err)
	}
	if ue.Backend != "openai" || ue.RetryAfter != time.Second { // the mock sends Retry-After: 1
		t.Errorf("Backend/RetryAfter = %q/%v, want openai/1s", ue.Backend, ue.RetryAfter)
	}
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("err = %v, want it to wrap the *openai.Error with status 503", err)
	}
	if st := m.Stats(); st.Calls != 3 || st.Errors != 3 {
		t.Errorf("mock stats %+v, want 3 calls and 3 errors (1 + 2 retries)", st)
	}
	var counts []string
	for _, s := range m.requests() {
		counts = append(counts, s.RetryCount)
	}
	if got := strings.Join(counts, ","); got != "0,1,2" {
		t.Errorf("X-Stainless-Retry-Count headers %s, want 0,1,2", got)
	}
}

func TestOpenAI400NotRetried(t *testing.T) {
	m, err := failedComplete(t, http.StatusBadRequest, 3)
	if err == nil {
		t.Fatal("no error")
	}
	if errors.Is(err, llm.ErrUnavailable) {
		t.Errorf("err = %v is ErrUnavailable, want not", err)
	}
	if !errors.Is(err, llm.ErrRejected) {
		t.Errorf("err = %v, want ErrRejected", err)
	}
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("err = %v, want an *openai.Error with status 400", err)
	}
	if calls := m.Stats().Calls; calls != 1 {
		t.Errorf("mock calls = %d, want 1 (400 is not retried)", calls)
	}
}

func TestOpenAILogprobsConfidence(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Logprobs: true, Retries: -1})
	r, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("how are you today")}})
	if err != nil {
		t.Fatal(err)
	}
	// The mock reports logprob -0.05 for every token.
	if want := math.Exp(-0.05); math.Abs(r.Confidence-want) > 1e-9 {
		t.Errorf("Confidence = %v, want exp(-0.05) = %v", r.Confidence, want)
	}
	if s := m.requests()[0]; s.Body.Logprobs == nil || !*s.Body.Logprobs {
		t.Errorf("logprobs not requested: %v", s.Body.Logprobs)
	}
}

func TestOpenAINetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/v1"
	srv.Close() // nothing listens there any more
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: url, Retries: -1})
	_, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("hi")}})
	var ue *llm.UnavailableError
	if !errors.As(err, &ue) || ue.RetryAfter != llm.DefaultRetryAfter {
		t.Fatalf("err = %v, want an *UnavailableError with RetryAfter %v", err, llm.DefaultRetryAfter)
	}
}

func TestOpenAITimeoutIsRetried(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1, Faults: mockllm.Faults{Latency: 2 * time.Second}})
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Timeout: 200 * time.Millisecond, Retries: 1})
	_, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("hi")}})
	if !errors.Is(err, llm.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if n := len(m.requests()); n != 2 {
		t.Errorf("%d attempts reached the mock, want 2 (a timed-out attempt is retried)", n)
	}
}

func TestOpenAIContextCanceled(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1, Faults: mockllm.Faults{Latency: 5 * time.Second}})
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // cancel once the request is in flight at the mock
		testenv.Eventually(10*time.Second, func() bool { return len(m.requests()) > 0 })
		cancel()
	}()
	_, err := o.Complete(ctx, llm.Request{Messages: []llm.Message{user("hi")}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if errors.Is(err, llm.ErrUnavailable) {
		t.Errorf("err = %v is ErrUnavailable, want only the context error", err)
	}
	if n := len(m.requests()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

func TestOpenAIEmptyChoices(t *testing.T) {
	// The mock always answers with a choice; this edge case needs a server
	// that answers with none.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[]}`)
	}))
	defer srv.Close()
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: srv.URL + "/v1", Retries: -1})
	_, err := o.Complete(context.Background(), llm.Request{Messages: []llm.Message{user("hi")}})
	if !errors.Is(err, llm.ErrEmptyResponse) {
		t.Fatalf("err = %v, want ErrEmptyResponse", err)
	}
}

func TestOpenAIInvalidRequest(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL})
	for _, req := range []llm.Request{{}, {Messages: []llm.Message{{Role: "tool", Content: "x"}}}} {
		if _, err := o.Complete(context.Background(), req); !errors.Is(err, llm.ErrRejected) {
			t.Errorf("%+v: err = %v, want ErrRejected", req, err)
		}
	}
	if n := len(m.requests()); n != 0 {
		t.Errorf("%d requests sent, want 0", n)
	}
}

func TestNewOpenAIValidation(t *testing.T) {
	tests := []struct {
		opts llm.OpenAIOptions
		want string
	}{
		{llm.OpenAIOptions{Model: "m"}, "llm.openai.base_url"},
		{llm.OpenAIOptions{BaseURL: "127.0.0.1:9998/v1", Model: "m"}, "llm.openai.base_url"},
		{llm.OpenAIOptions{BaseURL: "http://x/v1"}, "llm.openai.model"},
		{llm.OpenAIOptions{BaseURL: "http://x/v1", Model: "m", MaxTokens: -1}, "llm.openai.max_tokens"},
		{llm.OpenAIOptions{BaseURL: "http://x/v1", Model: "m", Timeout: -time.Second}, "llm.openai.timeout"},
		{llm.OpenAIOptions{BaseURL: "http://x/v1", Model: "m", Temperature: ptr(3.0)}, "llm.openai.temperature"},
	}
	for _, tt := range tests {
		if _, err := llm.NewOpenAI(tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want one naming %s", tt.opts, err, tt.want)
		}
	}
}

func TestOpenAIStreamsTheReply(t *testing.T) {
	m := newMock(t, mockllm.Options{Seed: 1})
	o := newOpenAI(t, llm.OpenAIOptions{BaseURL: m.URL, Retries: -1})
	msgs := []llm.Message{user("please tell me something about streams and rivers")}
	var pieces []string
	r, err := o.Complete(context.Background(), llm.Request{Messages: msgs, Stream: func(d string) error {
		pieces = append(pieces, d)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if want := mockllm.Reply(toMock(msgs)); r.Content != want || strings.Join(pieces, "") != want || len(pieces) < 2 {
		t.Fatalf("streamed %q into %q, want %q in pieces", pieces, r.Content, want)
	}
	if r.FinishReason != "stop" || r.Usage.CompletionTokens == 0 || r.Usage.PromptTokens == 0 {
		t.Fatalf("finish %q usage %+v", r.FinishReason, r.Usage)
	}
	if s := m.Stats(); s.Streams != 1 {
		t.Fatalf("mock saw %d streams, want 1", s.Streams)
	}
}
