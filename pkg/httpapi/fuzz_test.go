package httpapi

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/memory"
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
