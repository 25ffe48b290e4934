package httpapi

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/labstack/echo/v4"
)

// FuzzChatBody decodes arbitrary chat bodies as POST /v1/chat does: every
// refusal is a 4xx *apiError, and what passes maps to a conversation or a
// chat.ErrInvalid.
func FuzzChatBody(f *testing.F) {
	s := &Server{deps: Deps{MaxBodyBytes: 4096, MaxMessageChars: 100, DefaultScope: chat.ScopeMember}}
	e := echo.New()
	for _, b := range []string{`{"message":"你好"}`, `{"message":"x","session_id":"a{b}"}`, `{"message":"x","user_id":"u","group_id":"g","scope":"group"}`,
		`{"message":"\ud800"}`, `{"message":"x"} {}`, `{"mesage":1}`, `[]`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/chat", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		c := e.NewContext(req, httptest.NewRecorder())
		r, err := decode[chatRequest](s, c)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status < 400 || ae.Status >= 500 {
				t.Fatalf("refusal %v is not a 4xx", err)
			}
			return
		}
		scope := r.Scope
		if scope == "" {
			scope = s.deps.DefaultScope
		}
		conv, err := chat.Conversation(scope, r.SessionID, r.UserID, r.GroupID)
		if err != nil && !errors.Is(err, chat.ErrInvalid) {
			t.Fatalf("conversation error %v", err)
		}
		if err == nil && strings.ContainsAny(conv, "{}") {
			t.Fatalf("conversation %q breaks the hash tag", conv)
		}
	})
}

// FuzzRequestIDs checks the id rule of Idempotency-Key, X-Request-Id and
// session ids, and that tenant namespacing never lets two tenants' (or a
// tenant's and the default tenant's) conversations meet.
func FuzzRequestIDs(f *testing.F) {
	e := echo.New()
	f.Add("k1", "session-1", "c2c:1")
	f.Add("", "t:key_000000000000:session:x", "t:")
	f.Fuzz(func(t *testing.T, id, a, b string) {
		if validID(id) {
			if len(id) > 128 || strings.ContainsAny(id, " \t\r\n\x00\x7f") {
				t.Fatalf("validID accepted %q", id)
			}
		}
		in := func(tenant, conv string) string {
			c := e.NewContext(httptest.NewRequest("GET", "/", nil), httptest.NewRecorder())
			c.SetRequest(c.Request().WithContext(auth.NewContext(c.Request().Context(), &auth.Principal{Tenant: tenant})))
			return tenantConversation(c, conv)
		}
		convA, errA := chat.Conversation(chat.ScopeMember, a, "", "")
		convB, errB := chat.Conversation(chat.ScopeMember, b, "", "")
		if errA != nil || errB != nil {
			return
		}
		for _, pair := range [][2]string{{"key_000000000001", "key_000000000002"}, {"", "key_000000000001"}} {
			if in(pair[0], convA) == in(pair[1], convB) {
				t.Fatalf("tenants %q and %q meet in %q", pair[0], pair[1], in(pair[0], convA))
			}
		}
	})
}
