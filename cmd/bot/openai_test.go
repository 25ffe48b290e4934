package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// completionReply is an OpenAI chat completion, or its error.
type completionReply struct {
	ID      string                        `json:"id"`
	Object  string                        `json:"object"`
	Model   string                        `json:"model"`
	Choices []openai.ChatCompletionChoice `json:"choices"`
	Usage   openai.CompletionUsage        `json:"usage"`
	Error   *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
	status int
	header http.Header
}

func (r completionReply) content() string {
	if len(r.Choices) == 0 {
		return ""
	}
	return r.Choices[0].Message.Content
}

func complete(t *testing.T, url, body string, headers ...string) completionReply {
	t.Helper()
	status, header, raw := send(t, url+"/v1/chat/completions", body, headers...)
	var r completionReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("status %d, body %q is not JSON", status, raw)
	}
	r.status, r.header = status, header
	return r
}

// seen reads how many messages the mock saw from its reply.
var seenRE = regexp.MustCompile(`^mock n=(\d+) `)

func seen(t *testing.T, reply string) int {
	t.Helper()
	m := seenRE.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("reply %q is not the mock's", reply)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// With user, the conversation lives in the fleet's memory: the client may
// send only the new message, or the whole transcript, which is not stored
// twice; without user or X-Session-Id the call is stateless.
func TestCompletionsKeepMemoryByUser(t *testing.T) {
	r := testenv.StartRedis(t)
	mock, env := mockBackend(t, mockllm.Options{})
	bot := startBot(t, merge(env, redisEnv(r), map[string]string{"BOT_LLM_SYSTEM_PROMPT": "be brief"}))
	first := complete(t, bot.url, `{"model":"mock-1","user":"u1","messages":[{"role":"user","content":"one"}]}`)
	if first.status != 200 || first.Object != "chat.completion" || first.Model != "mock-1" || seen(t, first.content()) != 2 ||
		first.Choices[0].FinishReason != "stop" || first.Usage.TotalTokens == 0 || !strings.HasPrefix(first.ID, "chatcmpl-") {
		t.Fatalf("first: %+v", first)
	}
	transcript := fmt.Sprintf(`{"model":"mock-1","user":"u1","messages":[{"role":"user","content":"one"},{"role":"assistant","content":%q},{"role":"user","content":"two"}]}`, first.content())
	second := complete(t, bot.url, transcript)
	if second.status != 200 || seen(t, second.content()) != 4 {
		t.Fatalf("second (the whole transcript): %+v", second)
	}
	third := complete(t, bot.url, `{"model":"mock-1","user":"u1","messages":[{"role":"user","content":"three"}]}`)
	if third.status != 200 || seen(t, third.content()) != 6 {
		t.Fatalf("third (only the new message): %+v", third)
	}
	h := history(t, r, "api:default:c2c:u1")
	if len(h) != 6 || h[0].Content != "one" || h[2].Content != "two" || h[4].Content != "three" {
		t.Fatalf("memory holds %+v", h)
	}
	// The same conversation through /v1/chat, and by X-Session-Id.
	if res := post(t, bot.url+"/v1/chat", `{"message":"four","user_id":"u1"}`); res.status != 200 || res.Turn != 4 {
		t.Fatalf("/v1/chat on the same user: %d %+v", res.status, res)
	}
	if res := complete(t, bot.url, `{"messages":[{"role":"user","content":"hi"}]}`, "X-Session-Id", "sess-9"); res.status != 200 || seen(t, res.content()) != 2 {
		t.Fatalf("X-Session-Id: %+v", res)
	}

	before := r.Client().DBSize(t.Context()).Val()
	stateless := complete(t, bot.url, `{"model":"mock-1","messages":[{"role":"system","content":"mine"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`)
	if stateless.status != 200 || seen(t, stateless.content()) != 4 {
		t.Fatalf("stateless: %+v", stateless)
	}
	if after := r.Client().DBSize(t.Context()).Val(); after != before {
		t.Fatalf("a stateless call wrote %d keys", after-before)
	}
	calls := mock.Stats().Calls
	for range 2 {
		res := complete(t, bot.url, `{"messages":[{"role":"user","content":"again"}]}`, "Idempotency-Key", "st-1")
		if res.status != 200 || seen(t, res.content()) != 1 {
			t.Fatalf("stateless with a key: %+v", res)
		}
	}
	if got := mock.Stats().Calls - calls; got != 1 {
		t.Fatalf("a repeated stateless request reached the backend %d times", got)
	}
}

// Bad requests get OpenAI's error shape with the right status, type,
// param and code, and store nothing.
func TestCompletionsRefuseBadInputInOpenAIShape(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, merge(redisEnv(r), map[string]string{"BOT_CHAT_MAX_MESSAGE_CHARS": "20", "BOT_SERVER_MAX_BODY_BYTES": "2048"}))
	for _, tc := range []struct {
		name, body     string
		headers        []string
		status         int
		typ, code, par string
	}{
		{"malformed", `{"messages": [`, nil, 400, "invalid_request_error", "invalid_request", ""},
		{"unknown model", `{"model":"gpt-9","user":"b","messages":[{"role":"user","content":"hi"}]}`, nil, 404, "invalid_request_error", "model_not_found", ""},
		{"no messages", `{"messages":[],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "messages"},
		{"wrong role", `{"messages":[{"role":"wizard","content":"hi"}],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "messages[0].role"},
		{"last not the user's", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x"}],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "messages[1].role"},
		{"empty message", `{"messages":[{"role":"user","content":"  "}],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "messages[0].content"},
		{"content of another type", `{"messages":[{"role":"user","content":42}],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "messages[0].content"},
		{"message too long", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 30) + `"}],"user":"b"}`, nil, 413, "invalid_request_error", "message_too_long", "messages[0].content"},
		{"body too large", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 4000) + `"}],"user":"b"}`, nil, 413, "invalid_request_error", "too_large", ""},
		{"two choices", `{"n":2,"messages":[{"role":"user","content":"hi"}],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "n"},
		{"temperature out of range", `{"temperature":3,"messages":[{"role":"user","content":"hi"}],"user":"b"}`, nil, 400, "invalid_request_error", "invalid_request", "temperature"},
		{"no key", `{"messages":[{"role":"user","content":"hi"}],"user":"b"}`, []string{"Authorization", ""}, 401, "authentication_error", "invalid_api_key", ""},
		{"wrong key", `{"messages":[{"role":"user","content":"hi"}],"user":"b"}`, []string{"Authorization", "Bearer nope"}, 401, "authentication_error", "invalid_api_key", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := complete(t, bot.url, tc.body, tc.headers...)
			e := res.Error
			if res.status != tc.status || e == nil || e.Type != tc.typ || e.Code != tc.code || e.Message == "" {
				t.Fatalf("got %d %+v, want %d %s %s", res.status, e, tc.status, tc.typ, tc.code)
			}
			if tc.par == "" && e.Param != nil || tc.par != "" && (e.Param == nil || *e.Param != tc.par) {
				t.Fatalf("param %v, want %q", e.Param, tc.par)
			}
			if res.header.Get("X-Request-Id") == "" || res.header.Get("X-Should-Retry") != "false" {
				t.Fatalf("headers %v", res.header)
			}
		})
	}
	if h := history(t, r, "api:default:c2c:b"); len(h) != 0 {
		t.Fatalf("a refused request was stored: %+v", h)
	}
	for _, id := range []string{"never-was", "a%20b", strings.Repeat("x", 200)} {
		req, _ := http.NewRequest("GET", bot.url+"/v1/chat/streams/"+id, nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 && resp.StatusCode != 400 || !strings.Contains(string(body), `"error"`) {
			t.Fatalf("stream %q: %d %s", id, resp.StatusCode, body)
		}
	}
	if res := complete(t, bot.url, `{"messages":[{"role":"user","content":"fine"}],"user":"b"}`); res.status != 200 {
		t.Fatalf("after bad input: %+v", res)
	}
}

// A conversation longer than a model's context window reaches the model
// trimmed to fit, while Redis keeps the whole history.
func TestContextWindowTrimsThePromptNotTheMemory(t *testing.T) {
	bot, _, r := llmBot(t, mockllm.Options{}, `
  models:
    - name: small
      base_url: %s
      context_tokens: 400
      max_tokens: 50
`)
	sentence := strings.Repeat("a fairly long sentence of words ", 4)
	var last completionReply
	for i := range 12 {
		last = complete(t, bot.url, fmt.Sprintf(`{"model":"small","user":"long","messages":[{"role":"user","content":"%s %d"}]}`, sentence, i))
		if last.status != 200 {
			t.Fatalf("turn %d: %+v", i, last)
		}
	}
	if n := seen(t, last.content()); n >= 2*12 || n < 3 {
		t.Fatalf("the model saw %d messages of a conversation of 24; want it trimmed", n)
	}
	if h := history(t, r, "api:default:c2c:long"); len(h) != 24 {
		t.Fatalf("memory holds %d entries, want all 24", len(h))
	}
	huge := complete(t, bot.url, fmt.Sprintf(`{"model":"small","user":"long","messages":[{"role":"user","content":"%s"}]}`, strings.Repeat("word ", 500)))
	if huge.status != 400 || huge.Error == nil || huge.Error.Code != "context_length_exceeded" {
		t.Fatalf("a message larger than the window: %+v", huge)
	}
}

// A model whose backend fails is answered by its fallback with no error to
// the client, and gets its traffic back once it heals (after its breaker's
// half-open probe).
func TestFallbackModelAnswersAndTheModelComesBack(t *testing.T) {
	bot, mock, _ := llmBot(t, mockllm.Options{Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 503}}, `
  retries: 0
  breaker: {failures: 2, open_timeout: 1s}
  models:
    - name: flaky
      base_url: %s
      fallbacks: [builtin]
`)
	for i := range 4 {
		res := complete(t, bot.url, fmt.Sprintf(`{"model":"flaky","user":"fb","messages":[{"role":"user","content":"q%d"}]}`, i))
		if res.status != 200 || res.header.Get("X-Bot-Backend") != "builtin" {
			t.Fatalf("request %d while flaky fails: %+v", i, res)
		}
	}
	if calls := mock.Stats().Calls; calls != 2 {
		t.Fatalf("flaky got %d calls, want 2 (its breaker opened)", calls)
	}
	if err := mock.SetFaults(mockllm.Faults{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the breaker's open timeout to pass (half-open in /health)", func() bool {
		return strings.Contains(getJSON(t, bot.url+"/health"), `"flaky":"half-open"`)
	})
	if res := complete(t, bot.url, `{"model":"flaky","user":"fb","messages":[{"role":"user","content":"healed"}]}`); res.status != 200 || res.header.Get("X-Bot-Backend") != "openai" {
		t.Fatalf("the half-open breaker's probe after healing: %+v, want the healed model", res)
	}
	if m := getJSON(t, bot.url+"/health"); !strings.Contains(m, `"flaky":"closed"`) {
		t.Fatalf("/health: %s", m)
	}
}
