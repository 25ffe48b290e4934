package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/go-json-experiment/json"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// FuzzChatBody decodes arbitrary chat bodies as POST /v1/chat does: every
// refusal is a 4xx.
func FuzzChatBody(f *testing.F) {
	s := &Server{deps: Deps{MaxBodyBytes: 4096, MaxMessageChars: 100}}
	e := echo.New()
	for _, b := range []string{`{"message":"你好"}`, `{"message":"x","session_id":"a{b}"}`, `{"message":"x","user_id":"u","group_id":"g","scope":"group"}`,
		`{"message":"\ud800"}`, `{"message":"x"} {}`, `{"Message":"x"}`, `{"message":"a","message":"b"}`, `[]`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/chat", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if _, err := decode[chatRequest](s, e.NewContext(req, httptest.NewRecorder())); err != nil {
			if st := fault.Of(err).Status; st < 400 || st >= 500 {
				t.Fatalf("refusal %v is a %d, not a 4xx", err, st)
			}
		}
	})
}

// FuzzCompletionsBody decodes arbitrary bodies as POST /v1/chat/completions
// does (lenient: unknown members ignored) and answers refusals through the
// error handler: nothing panics, an accepted body holds what valid promises
// (a last user message within the limits, parameters in range, its text the
// turn's message), and every refusal is a 4xx in OpenAI's error shape whose
// param, when named, begins the message.
func FuzzCompletionsBody(f *testing.F) {
	const maxChars = 100
	s := &Server{deps: Deps{MaxBodyBytes: 4096, MaxMessageChars: maxChars, Logger: slog.New(slog.DiscardHandler)}}
	e := echo.New()
	for _, b := range []string{
		`{"model":"mock-1","user":"u1","messages":[{"role":"user","content":"one"}]}`,
		`{"model":"mock-1","messages":[{"role":"system","content":"mine"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`,
		`{"messages":[{"role":"developer","content":"d"},{"role":"tool","content":null},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}]}`,
		`{"stream":true,"stream_options":{"include_usage":true},"stop":["a","b"],"temperature":0.5,"top_p":1,"max_tokens":5,"n":1,"messages":[{"role":"user","content":"x"}]}`,
		`{"stop":"\n","max_completion_tokens":0,"messages":[{"role":"user","content":"x"}]}`,
		`{"messages": [`, `{"messages":[],"user":"b"}`, `{"messages":[{"role":"wizard","content":"hi"}]}`,
		`{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"x"}]}`, `{"messages":[{"role":"user","content":42}]}`,
		`{"n":2,"temperature":3,"messages":[{"role":"user","content":"hi"}]}`, `{"Messages":[],"messages":[{"role":"user","content":"\ud800"}]}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		c.SetPath("/v1/chat/completions")
		r, err := decode[*completionRequest](s, c, lenient)
		if err == nil {
			checkCompletion(t, r, c, maxChars)
			return
		}
		s.handleError(err, c)
		if rec.Code < 400 || rec.Code >= 500 || rec.Code != fault.Of(err).Status {
			t.Fatalf("refusal %v answered %d", err, rec.Code)
		}
		var out openaiError
		if jerr := json.Unmarshal(rec.Body.Bytes(), &out); jerr != nil || out.Error.Message == "" || out.Error.Type != "invalid_request_error" || out.Error.Code == "" {
			t.Fatalf("refusal %v is not OpenAI-shaped: %s (%v)", err, rec.Body, jerr)
		}
		if p := out.Error.Param; p != nil && !strings.HasPrefix(out.Error.Message, *p+": ") {
			t.Fatalf("param %q does not begin %q", *p, out.Error.Message)
		}
	})
}

// checkCompletion asserts what an accepted completion request promises.
func checkCompletion(t *testing.T, r *completionRequest, c echo.Context, maxChars int) {
	t.Helper()
	last := len(r.Messages) - 1
	if last < 0 || len(r.text) != len(r.Messages) || r.Messages[last].Role != "user" {
		t.Fatalf("accepted without a last user message: %+v", r)
	}
	if m := r.text[last]; strings.TrimSpace(m) == "" || utf8.RuneCountInString(m) > maxChars || !utf8.ValidString(m) {
		t.Fatalf("accepted message %q", m)
	}
	if (r.N != nil && *r.N != 1) || (r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2)) ||
		(r.TopP != nil && (*r.TopP < 0 || *r.TopP > 1)) || len(r.stop) > 4 {
		t.Fatalf("accepted parameters out of range: %+v", r)
	}
	p := r.params()
	if (r.MaxTokens != nil || r.MaxCompletionTokens != nil) && p.MaxTokens < 1 {
		t.Fatalf("accepted max_tokens %d", p.MaxTokens)
	}
	cr := r.chatRequest(c, "id-1")
	if cr.Message != r.text[last] || cr.Model != r.Model || cr.Stateless != (r.User == "") || cr.UserID != r.User ||
		(cr.Stateless && cr.Prompt[len(cr.Prompt)-1].Content != cr.Message) {
		t.Fatalf("the turn %+v is not the request's", cr)
	}
}

// FuzzSessionIDs sends arbitrary Idempotency-Keys and session ids (as
// /v1/chat and X-Session-Id take them) through the id check and the
// conversation resolution, for two tenants: nothing panics, two tenants'
// conversations never meet, and a returned session_id names its
// conversation again.
func FuzzSessionIDs(f *testing.F) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}) // never reached: Resolve is pure
	store := memory.New(context.Background(), rdb, memory.Options{})
	f.Cleanup(func() { store.Close(); rdb.Close() })
	svc := chat.New(store, nil, chat.Options{})
	e := echo.New()
	f.Add("k1", "session-1", "c2c:1")
	f.Add("im:telegram:9", "member:g%3A1:u", "c2c:u")
	f.Add("", "global", "group:g")
	f.Fuzz(func(t *testing.T, idem, a, b string) {
		req := httptest.NewRequest("POST", "/v1/chat", nil)
		req.Header.Set("Idempotency-Key", idem)
		c := e.NewContext(req, httptest.NewRecorder())
		if id, err := idempotencyKey(c); err == nil && idem != "" && (id != idem || !validID(id, maxID)) {
			t.Fatalf("Idempotency-Key %q became %q", idem, id)
		}
		if !validID(a, maxSessionID) || !validID(b, maxSessionID) || strings.ContainsAny(a+b, "{}") {
			return // refused by chatRequest.valid
		}
		for _, tenants := range [][2]string{{"key_000000000001", "key_000000000002"}, {"", "key_000000000001"}} {
			ca, errA := svc.Resolve(chat.Request{Tenant: tenants[0], SessionID: a})
			cb, errB := svc.Resolve(chat.Request{Tenant: tenants[1], SessionID: b})
			if errA != nil || errB != nil {
				continue
			}
			if ca.Key == cb.Key {
				t.Fatalf("tenants %q and %q meet in %q", tenants[0], tenants[1], ca.Key)
			}
			again, err := svc.Resolve(chat.Request{Tenant: tenants[0], SessionID: ca.SessionID})
			if err != nil || again.Key != ca.Key {
				t.Fatalf("session_id %q names %q, not %q (%v)", ca.SessionID, again.Key, ca.Key, err)
			}
		}
	})
}
