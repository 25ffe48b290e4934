package mockllm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/botfleet/botfleet/pkg/testenv"
)

var history = []Message{
	{Role: "system", Content: "be brief"},
	{Role: "user", Content: "hi"},
	{Role: "assistant", Content: "hello"},
	{Role: "user", Content: "how are you?"},
}

// historyDigest is the first 16 hex chars of
// printf 'system\0be brief\0user\0hi\0assistant\0hello\0user\0how are you?\0' | sha256sum
const historyDigest = "eabe631d4997822b"

func TestDigestAndReply(t *testing.T) {
	sum := sha256.Sum256([]byte("system\x00be brief\x00user\x00hi\x00assistant\x00hello\x00user\x00how are you?\x00"))
	want := hex.EncodeToString(sum[:])[:16]
	if want != historyDigest {
		t.Fatalf("test constant out of date: sha256 prefix %s, constant %s", want, historyDigest)
	}
	if got := Digest(history); got != want {
		t.Fatalf("Digest = %q, want %q", got, want)
	}
	if got, want := Reply(history), "mock n=4 h="+historyDigest+": how are you?"; got != want {
		t.Fatalf("Reply = %q, want %q", got, want)
	}
	if got, want := Reply(history), fmt.Sprintf("mock n=%d h=%s: %s", len(history), Digest(history), "how are you?"); got != want {
		t.Fatalf("Reply = %q, want %q", got, want)
	}

	// No user message: empty last.
	sys := []Message{{Role: "system", Content: "x"}}
	sum = sha256.Sum256([]byte("system\x00x\x00"))
	if got, want := Reply(sys), "mock n=1 h="+hex.EncodeToString(sum[:8])+": "; got != want {
		t.Fatalf("Reply = %q, want %q", got, want)
	}
	// Empty history.
	sum = sha256.Sum256(nil)
	if got, want := Reply(nil), "mock n=0 h="+hex.EncodeToString(sum[:8])+": "; got != want {
		t.Fatalf("Reply(nil) = %q, want %q", got, want)
	}

	// Truncation to 200 bytes on a rune boundary: "é" spans bytes 199-200.
	long := strings.Repeat("a", 199) + "é" + "tail"
	got := Reply([]Message{{Role: "user", Content: long}})
	if want := ": " + strings.Repeat("a", 199); !strings.HasSuffix(got, want) {
		t.Fatalf("Reply of a long message = %q, want suffix %q", got, want)
	}
	exact := strings.Repeat("b", 200)
	if got := Reply([]Message{{Role: "user", Content: exact + "c"}}); !strings.HasSuffix(got, ": "+exact) {
		t.Fatalf("Reply = %q, want it to end with 200 b's", got)
	}
}

func TestCountWords(t *testing.T) {
	for _, s := range []string{"", " ", "a", " a ", "a b\tc\nd", "héllo  wörld", "a\u00a0b", "x\u2003y\u3000z ", "\xff \xfe"} {
		if got, want := countWords(s), len(strings.Fields(s)); got != want {
			t.Errorf("countWords(%q) = %d, want %d", s, got, want)
		}
	}
}

// post sends body to the chat endpoint.
func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func newServer(t *testing.T, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	s := New(opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

const historyJSON = `[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},` +
	`{"role":"assistant","content":"hello"},{"role":"user","content":"how are you?"}]`

// objectJSON is the head of a completion and of a chunk.
type objectJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
}

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type completionJSON struct {
	objectJSON
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Token   string  `json:"token"`
				Logprob float64 `json:"logprob"`
				Bytes   []byte  `json:"-"`
			} `json:"content"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage usageJSON `json:"usage"`
}

func TestChatCompletion(t *testing.T) {
	s, srv := newServer(t, Options{})
	resp := post(t, srv.URL, `{"model":"","messages":`+historyJSON+`,"temperature":0.2,"max_tokens":50,"user":"u1"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var c completionJSON
	decode(t, resp, &c)
	want := "mock n=4 h=" + historyDigest + ": how are you?"
	if !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion" || c.Model != "mock-1" || c.Created == 0 {
		t.Errorf("head = %+v", c)
	}
	if len(c.Choices) != 1 || c.Choices[0].Index != 0 || c.Choices[0].Message.Role != "assistant" ||
		c.Choices[0].Message.Content != want || c.Choices[0].FinishReason != "stop" || c.Choices[0].Logprobs != nil {
		t.Fatalf("choices = %+v", c.Choices)
	}
	// prompt: "be brief" 2 + "hi" 1 + "hello" 1 + "how are you?" 3; reply: 3 + 3.
	if c.Usage.PromptTokens != 7 || c.Usage.CompletionTokens != 6 || c.Usage.TotalTokens != 13 {
		t.Errorf("usage = %+v", c.Usage)
	}
	if st := s.Stats(); st != (Stats{Calls: 1}) {
		t.Errorf("stats = %+v", st)
	}

	// The request's model is echoed; ids differ.
	var c2 completionJSON
	decode(t, post(t, srv.URL, `{"model":"gpt-x","messages":`+historyJSON+`}`), &c2)
	if c2.Model != "gpt-x" || c2.ID == c.ID {
		t.Errorf("model %q id %q (first id %q)", c2.Model, c2.ID, c.ID)
	}
}

func TestContentParts(t *testing.T) {
	_, srv := newServer(t, Options{Model: "m"})
	body := `{"messages":[{"role":"system","content":[{"type":"text","text":"be brief"}]},` +
		`{"role":"user","content":[{"type":"text","text":"hi"}]},` +
		`{"role":"assistant","content":null,"tool_calls":[]},` +
		`{"role":"user","content":[{"type":"text","text":"how "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"are you?"}]}]}`
	resp := post(t, srv.URL, body)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var c completionJSON
	decode(t, resp, &c)
	msgs := []Message{{"system", "be brief"}, {"user", "hi"}, {"assistant", ""}, {"user", "how are you?"}}
	if got, want := c.Choices[0].Message.Content, Reply(msgs); got != want {
		t.Fatalf("content = %q, want %q", got, want)
	}
	if c.Model != "m" {
		t.Errorf("model = %q", c.Model)
	}
}

func TestStringContentDecoding(t *testing.T) {
	_, srv := newServer(t, Options{})
	for raw, want := range map[string]string{
		`"plain"`:         "plain",
		`"esc\"aped\n"`:   "esc\"aped\n",
		`"\u00e9t\u00e9"`: "été",
		"\"bad\xffutf8\"": "bad\uFFFDutf8",
	} {
		var c completionJSON
		decode(t, post(t, srv.URL, `{"messages":[{"role":"user","content":`+raw+`}]}`), &c)
		if got, want := c.Choices[0].Message.Content, Reply([]Message{{"user", want}}); got != want {
			t.Errorf("content %s: reply %q, want %q", raw, got, want)
		}
	}
}

func TestLogprobs(t *testing.T) {
	_, srv := newServer(t, Options{})
	var c completionJSON
	decode(t, post(t, srv.URL, `{"model":"m","logprobs":true,"messages":[{"role":"user","content":"say \"ünï\" now"}]}`), &c)
	reply := c.Choices[0].Message.Content
	lp := c.Choices[0].Logprobs
	if lp == nil || len(lp.Content) != len(strings.Fields(reply)) {
		t.Fatalf("logprobs = %+v for %q", lp, reply)
	}
	for i, w := range strings.Fields(reply) {
		if lp.Content[i].Token != w || lp.Content[i].Logprob != -0.05 {
			t.Errorf("logprob %d = %+v, want token %q", i, lp.Content[i], w)
		}
	}
}

func assertError(t *testing.T, resp *http.Response, status int, typ string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var e struct {
		Error *struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	decode(t, resp, &e)
	if e.Error == nil || e.Error.Message == "" || e.Error.Type != typ || e.Error.Code == nil {
		t.Fatalf("error body = %+v", e.Error)
	}
}

func TestBadRequests(t *testing.T) {
	s, srv := newServer(t, Options{Faults: Faults{ErrorRate: 1}})
	for _, body := range []string{
		`{`,
		`{"messages":[]}`,
		`{"model":"m"}`,
		`{"messages":null}`,
		`{"messages":[{"role":"user","content":42}]}`,
		`{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}`,
		`{"messages":[{"role":"user","content":"x"}]} trailing`,
	} {
		t.Run(body, func(t *testing.T) {
			assertError(t, post(t, srv.URL, body), http.StatusBadRequest, "invalid_request_error")
		})
	}
	if st := s.Stats(); st.Calls != 7 || st.Errors != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestInjectedErrors(t *testing.T) {
	for _, tc := range []struct {
		status     int
		retryAfter string
		typ        string
	}{
		{0, "", "server_error"}, // default 500
		{429, "1", "requests"},
		{503, "1", "server_error"},
		{502, "", "server_error"},
		{400, "", "invalid_request_error"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			s, srv := newServer(t, Options{Faults: Faults{ErrorRate: 1, ErrorStatus: tc.status}})
			want := tc.status
			if want == 0 {
				want = 500
			}
			for _, stream := range []string{"false", "true"} {
				resp := post(t, srv.URL, `{"stream":`+stream+`,"messages":[{"role":"user","content":"x"}]}`)
				if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
					t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
				}
				assertError(t, resp, want, tc.typ)
			}
			if st := s.Stats(); st != (Stats{Calls: 2, Errors: 2}) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestErrorRateIsAProbability(t *testing.T) {
	s, srv := newServer(t, Options{Faults: Faults{ErrorRate: 0.5}, Seed: 42})
	const n = 200
	for range n {
		resp := post(t, srv.URL, `{"messages":[{"role":"user","content":"x"}]}`)
		io.Copy(io.Discard, resp.Body)
	}
	st := s.Stats()
	if st.Calls != n || st.Errors == 0 || st.Errors == n {
		t.Fatalf("stats = %+v, want some but not all errors", st)
	}
}

func TestLatency(t *testing.T) {
	const latency = 60 * time.Millisecond
	_, srv := newServer(t, Options{Faults: Faults{Latency: latency, Jitter: 5 * time.Millisecond}})
	start := time.Now()
	resp := post(t, srv.URL, `{"messages":[{"role":"user","content":"x"}]}`)
	io.Copy(io.Discard, resp.Body)
	if elapsed := time.Since(start); elapsed < latency {
		t.Fatalf("answered after %v, before the latency %v", elapsed, latency)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestLatencyHonoursCancellation(t *testing.T) {
	_, srv := newServer(t, Options{Faults: Faults{Latency: time.Hour}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"messages":[{"role":"user","content":"x"}]}`))
	_, err := http.DefaultClient.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// srv.Close in Cleanup blocks until the handler returns, which it does
	// only if it honours the cancellation.
}

func TestStatsAndReset(t *testing.T) {
	s, srv := newServer(t, Options{})
	for _, stream := range []string{"false", "true", "true"} {
		resp := post(t, srv.URL, `{"stream":`+stream+`,"messages":[{"role":"user","content":"x"}]}`)
		io.Copy(io.Discard, resp.Body)
	}
	var st Stats
	resp, err := http.Get(srv.URL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	decode(t, resp, &st)
	resp.Body.Close()
	if st != (Stats{Calls: 3, Streams: 2}) {
		t.Fatalf("stats = %+v", st)
	}
	resp, err = http.Post(srv.URL+"/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || s.Stats() != (Stats{}) {
		t.Fatalf("after reset: status %d stats %+v", resp.StatusCode, s.Stats())
	}
	s.Reset()
}

func do(t *testing.T, method, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestFaultsEndpoint(t *testing.T) {
	s, srv := newServer(t, Options{Faults: Faults{Latency: time.Millisecond}})
	var f map[string]any
	decode(t, do(t, http.MethodGet, srv.URL+"/faults", ""), &f)
	if f["latency_ms"] != 1.0 || f["jitter_ms"] != 0.0 || f["error_rate"] != 0.0 || f["error_status"] != 0.0 {
		t.Fatalf("GET /faults = %v", f)
	}

	// A partial update merges; error_status defaults to 500.
	resp := do(t, http.MethodPut, srv.URL+"/faults", `{"jitter_ms":2.5,"error_rate":0.25}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT status %d", resp.StatusCode)
	}
	want := Faults{Latency: time.Millisecond, Jitter: 2500 * time.Microsecond, ErrorRate: 0.25, ErrorStatus: 500}
	var got Faults
	decode(t, resp, &got)
	if got != want || s.Faults() != want {
		t.Fatalf("faults = %+v (server %+v), want %+v", got, s.Faults(), want)
	}
	resp = do(t, http.MethodPost, srv.URL+"/faults", `{"error_status":429}`)
	want.ErrorStatus = 429
	if resp.StatusCode != http.StatusOK || s.Faults() != want {
		t.Fatalf("POST: status %d faults %+v", resp.StatusCode, s.Faults())
	}

	for _, body := range []string{
		`{"error_rate":1.5}`,
		`{"error_rate":-0.1}`,
		`{"error_status":200}`,
		`{"error_status":600}`,
		`{"latency_ms":-1}`,
		`{"jitter_ms":-1}`,
		`{"latency_ms":1e300}`,
		`{"latncy_ms":5}`,
		`{"error_rate":"high"}`,
		`not json`,
	} {
		t.Run(body, func(t *testing.T) {
			assertError(t, do(t, http.MethodPut, srv.URL+"/faults", body), http.StatusBadRequest, "invalid_request_error")
			if s.Faults() != want {
				t.Fatalf("faults changed to %+v", s.Faults())
			}
		})
	}

	resp = do(t, http.MethodPut, srv.URL+"/faults", `{"latency_ms":0,"jitter_ms":0,"error_rate":0,"error_status":0}`)
	if resp.StatusCode != http.StatusOK || s.Faults() != (Faults{}) {
		t.Fatalf("clearing: status %d faults %+v", resp.StatusCode, s.Faults())
	}
}

func TestSetFaults(t *testing.T) {
	s := New(Options{})
	for _, f := range []Faults{
		{Latency: -1}, {Jitter: -1}, {ErrorRate: 2}, {ErrorRate: -1}, {ErrorStatus: 399}, {ErrorStatus: 600},
	} {
		if err := s.SetFaults(f); err == nil {
			t.Errorf("SetFaults(%+v) accepted", f)
		}
	}
	if err := s.SetFaults(Faults{ErrorRate: 1}); err != nil || s.Faults().ErrorStatus != 500 {
		t.Fatalf("err %v faults %+v", err, s.Faults())
	}
	if err := s.SetFaults(Faults{ErrorStatus: 503}); err != nil || s.Faults() != (Faults{ErrorStatus: 503}) {
		t.Fatalf("err %v faults %+v", err, s.Faults())
	}
	defer func() {
		if recover() == nil {
			t.Error("New with invalid faults did not panic")
		}
	}()
	New(Options{Faults: Faults{ErrorRate: 3}})
}

func TestAPIKey(t *testing.T) {
	_, srv := newServer(t, Options{APIKey: "sekret"})
	chat := `{"messages":[{"role":"user","content":"x"}]}`
	for _, authz := range []string{"", "Bearer wrong", "sekret", "Bearer sekret2"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(chat))
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		assertError(t, resp, http.StatusUnauthorized, "invalid_request_error")
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer sekret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with the key: status %d", resp.StatusCode)
	}
	if resp := do(t, http.MethodGet, srv.URL+"/health", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("/health needs no key, got %d", resp.StatusCode)
	}
}

func TestRoutes(t *testing.T) {
	_, srv := newServer(t, Options{Model: "mx"})

	resp := do(t, http.MethodGet, srv.URL+"/health", "")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != `{"status":"ok"}` {
		t.Fatalf("/health: %d %s", resp.StatusCode, b)
	}

	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	decode(t, do(t, http.MethodGet, srv.URL+"/v1/models", ""), &models)
	if models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != "mx" || models.Data[0].Object != "model" ||
		models.Data[0].Created == 0 || models.Data[0].OwnedBy != "botfleet-mock" {
		t.Fatalf("/v1/models = %+v", models)
	}
	if resp := do(t, http.MethodGet, srv.URL+"/v1/models/mx", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("/v1/models/mx: %d", resp.StatusCode)
	}
	assertError(t, do(t, http.MethodGet, srv.URL+"/v1/models/other", ""), http.StatusNotFound, "invalid_request_error")

	assertError(t, do(t, http.MethodGet, srv.URL+"/nope", ""), http.StatusNotFound, "invalid_request_error")
	for _, tc := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/chat/completions", "POST"},
		{http.MethodPost, "/v1/models", "GET, HEAD"},
		{http.MethodPost, "/health", "GET, HEAD"},
		{http.MethodDelete, "/stats", "GET, HEAD"},
		{http.MethodGet, "/reset", "POST"},
		{http.MethodDelete, "/faults", "GET, HEAD, PUT, POST"},
	} {
		resp := do(t, tc.method, srv.URL+tc.path, "")
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		assertError(t, resp, http.StatusMethodNotAllowed, "invalid_request_error")
	}
}

type chunkJSON struct {
	objectJSON
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageJSON `json:"usage"`
}

// readSSE reads the whole event stream, checking its framing, and returns
// the data payloads.
func readSSE(t *testing.T, r io.Reader) []string {
	t.Helper()
	var events []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line", line)
		}
		events = append(events, data)
		if !sc.Scan() || sc.Text() != "" {
			t.Fatalf("event %q not followed by an empty line", data)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

func TestStreamWireFormat(t *testing.T) {
	for _, includeUsage := range []bool{false, true} {
		t.Run(fmt.Sprint("include_usage=", includeUsage), func(t *testing.T) {
			s, srv := newServer(t, Options{})
			body := `{"model":"gpt-s","stream":true,"messages":` + historyJSON + `}`
			if includeUsage {
				body = `{"model":"gpt-s","stream":true,"stream_options":{"include_usage":true},"messages":` + historyJSON + `}`
			}
			resp := post(t, srv.URL, body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("Content-Type %q", ct)
			}
			events := readSSE(t, resp.Body)
			if len(events) < 4 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events = %q", events)
			}
			events = events[:len(events)-1]
			var usage *chunkJSON
			if includeUsage {
				var u chunkJSON
				if err := json.Unmarshal([]byte(events[len(events)-1]), &u); err != nil {
					t.Fatal(err)
				}
				if len(u.Choices) != 0 || u.Usage == nil || u.Usage.PromptTokens != 7 || u.Usage.CompletionTokens != 6 || u.Usage.TotalTokens != 13 {
					t.Fatalf("usage chunk = %s", events[len(events)-1])
				}
				usage = &u
				events = events[:len(events)-1]
			}

			var content strings.Builder
			var first chunkJSON
			deltas := 0
			for i, e := range events {
				var c chunkJSON
				if err := json.Unmarshal([]byte(e), &c); err != nil {
					t.Fatalf("chunk %d %q: %v", i, e, err)
				}
				if i == 0 {
					first = c
				}
				if c.ID != first.ID || !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion.chunk" ||
					c.Model != "gpt-s" || c.Created != first.Created || len(c.Choices) != 1 || c.Choices[0].Index != 0 {
					t.Fatalf("chunk %d = %s", i, e)
				}
				if includeUsage != strings.Contains(e, `"usage":null`) {
					t.Errorf("chunk %d usage field: %s", i, e)
				}
				ch := c.Choices[0]
				switch i {
				case 0:
					if ch.Delta.Role == nil || *ch.Delta.Role != "assistant" || ch.Delta.Content == nil || *ch.Delta.Content != "" || ch.FinishReason != nil {
						t.Fatalf("first chunk = %s", e)
					}
				case len(events) - 1:
					if ch.Delta.Role != nil || ch.Delta.Content != nil || ch.FinishReason == nil || *ch.FinishReason != "stop" {
						t.Fatalf("last chunk = %s", e)
					}
				default:
					if ch.Delta.Role != nil || ch.Delta.Content == nil || ch.FinishReason != nil {
						t.Fatalf("content chunk = %s", e)
					}
					content.WriteString(*ch.Delta.Content)
					deltas++
				}
			}
			if usage != nil && usage.ID != first.ID {
				t.Errorf("usage chunk id %q, want %q", usage.ID, first.ID)
			}
			if got, want := content.String(), Reply(history); got != want {
				t.Fatalf("reassembled %q, want %q", got, want)
			}
			if deltas < 2 || deltas > maxStreamDeltas {
				t.Errorf("%d content deltas", deltas)
			}
			if st := s.Stats(); st != (Stats{Calls: 1, Streams: 1}) {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestStreamSplitsExactly(t *testing.T) {
	// Odd whitespace and a long message still reassemble byte for byte.
	_, srv := newServer(t, Options{})
	text := "  lead  " + strings.Repeat("word\t", 30) + "日本語 end  "
	body, _ := json.Marshal(map[string]any{"stream": true, "messages": []Message{{Role: "user", Content: text}}})
	events := readSSE(t, post(t, srv.URL, string(body)).Body)
	var got strings.Builder
	for _, e := range events[:len(events)-1] {
		var c chunkJSON
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		if c.Choices[0].Delta.Content != nil {
			got.WriteString(*c.Choices[0].Delta.Content)
		}
	}
	if want := Reply([]Message{{Role: "user", Content: text}}); got.String() != want {
		t.Fatalf("reassembled %q, want %q", got.String(), want)
	}
}

func newClient(srv *httptest.Server, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(srv.URL + "/v1"), option.WithAPIKey("k")}, opts...)...)
}

var clientMessages = []openai.ChatCompletionMessageParamUnion{
	openai.SystemMessage("be brief"),
	openai.UserMessage("hi"),
	openai.AssistantMessage("hello"),
	openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.TextContentPart("how are you?")}),
}

func TestOpenAIClient(t *testing.T) {
	s, srv := newServer(t, Options{APIKey: "k"})
	client := newClient(srv)
	ctx := context.Background()
	want := "mock n=4 h=" + historyDigest + ": how are you?"

	res, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: clientMessages,
		Logprobs: openai.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Choices) != 1 || res.Choices[0].Message.Content != want || res.Choices[0].FinishReason != "stop" ||
		res.Model != "gpt-4o-mini" || res.Usage.TotalTokens != 13 || len(res.Choices[0].Logprobs.Content) != 6 {
		t.Fatalf("completion = %s", res.RawJSON())
	}

	for _, includeUsage := range []bool{false, true} {
		params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: clientMessages, Logprobs: openai.Bool(true)}
		if includeUsage {
			params.StreamOptions.IncludeUsage = openai.Bool(true)
		}
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		acc := openai.ChatCompletionAccumulator{}
		for stream.Next() {
			if !acc.AddChunk(stream.Current()) {
				t.Fatalf("accumulator rejected chunk %s", stream.Current().RawJSON())
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != want || acc.Choices[0].FinishReason != "stop" ||
			len(acc.Choices[0].Logprobs.Content) != 6 {
			t.Fatalf("accumulated = %+v", acc.ChatCompletion)
		}
		if includeUsage && acc.Usage.TotalTokens != 13 {
			t.Fatalf("accumulated usage = %+v", acc.Usage)
		}
	}
	if st := s.Stats(); st != (Stats{Calls: 3, Streams: 2}) {
		t.Errorf("stats = %+v", st)
	}

	models, err := client.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "mock-1" {
		t.Fatalf("models = %+v, %v", models, err)
	}

	// Injected errors reach the client as API errors.
	if err := s.SetFaults(Faults{ErrorRate: 1, ErrorStatus: 429}); err != nil {
		t.Fatal(err)
	}
	noRetry := newClient(srv, option.WithMaxRetries(0))
	_, err = noRetry.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "m", Messages: clientMessages})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" {
		t.Fatalf("err = %v", err)
	}
}

func TestConcurrent(t *testing.T) {
	s, srv := newServer(t, Options{Faults: Faults{ErrorRate: 0.3, Jitter: time.Millisecond}})
	var wg sync.WaitGroup
	const workers, each = 8, 25
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf(`{"stream":%t,"messages":[{"role":"user","content":"w%d i%d"}]}`, i%2 == 0, w, i)
				resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			_ = s.SetFaults(Faults{ErrorRate: 0.3, Jitter: time.Millisecond})
			_ = s.Stats()
		}
	})
	wg.Wait()
	if st := s.Stats(); st.Calls != workers*each {
		t.Fatalf("stats = %+v", st)
	}
}

// BenchmarkChatCompletion100 is the request the bench fleet's instances
// send at history 100: a system prompt, 100 entries and the message.
func BenchmarkChatCompletion100(b *testing.B) {
	var msgs strings.Builder
	msgs.WriteString(`[{"role":"system","content":"You are a helpful customer-service assistant."}`)
	for i := range 50 {
		fmt.Fprintf(&msgs, `,{"role":"user","content":"你们的营业时间是几点？ question %d"},{"role":"assistant","content":"mock n=%d h=0123456789abcdef: 你们的营业时间是几点？ question %d"}`, i, 2*i+2, i)
	}
	msgs.WriteString(`,{"role":"user","content":"Where is my parcel?"}]`)
	body := `{"model":"mock-1","messages":` + msgs.String() + `,"temperature":0.7,"max_tokens":512}`
	s := New(Options{})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}

func BenchmarkChatCompletion(b *testing.B) {
	for _, stream := range []bool{false, true} {
		b.Run(fmt.Sprint("stream=", stream), func(b *testing.B) {
			s := New(Options{})
			body := []byte(fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%t,"messages":%s}`, stream, historyJSON))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(string(body)))
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatal(w.Code)
					}
				}
			})
		})
	}
}

// dataEvents reads an SSE body's data lines until it ends.
func dataEvents(body io.Reader) (events []string, err error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			events = append(events, d)
		}
	}
	return events, sc.Err()
}

func TestStreamChunksDelayAndCut(t *testing.T) {
	s, srv := newServer(t, Options{Faults: Faults{Chunks: 6, ChunkDelay: 10 * time.Millisecond}})
	msg := `{"stream":true,"messages":[{"role":"user","content":"one two three four five six seven eight nine ten eleven twelve"}]}`
	resp := post(t, srv.URL, msg)
	events, err := dataEvents(resp.Body)
	resp.Body.Close()
	// role, 6 content chunks, finish, [DONE]
	if err != nil || len(events) != 9 || events[8] != "[DONE]" {
		t.Fatalf("%d events, %v: %q", len(events), err, events)
	}
	times := s.StreamTimes()
	if spread := time.Duration(times.LastChunk - times.FirstChunk); spread < 5*10*time.Millisecond {
		t.Fatalf("6 chunks 10ms apart spread over %v", spread)
	}

	if err := s.SetFaults(Faults{Chunks: 6, CutAfter: 2}); err != nil {
		t.Fatal(err)
	}
	resp = post(t, srv.URL, msg)
	events, err = dataEvents(resp.Body)
	resp.Body.Close()
	if err == nil || len(events) != 3 {
		t.Fatalf("a cut stream: %d events %q, err %v; want the role and 2 chunks, then a broken body", len(events), events, err)
	}

	if err := s.SetFaults(Faults{Chunks: 6, ChunkDelay: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(msg))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // the client goes away while the mock waits for its first chunk
	resp.Body.Close()
	if !testenv.Eventually(5*time.Second, func() bool { return s.Stats().Cancelled == 1 }) {
		t.Fatalf("stats %+v, want the cancelled call counted", s.Stats())
	}
}
