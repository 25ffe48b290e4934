package chat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

// countingBackend answers with the number of messages it saw.
type countingBackend struct{ calls int }

func (b *countingBackend) Name() string { return "counting" }
func (b *countingBackend) Complete(_ context.Context, r llm.Request) (llm.Reply, error) {
	b.calls++
	return llm.Reply{Content: fmt.Sprintf("saw %d", len(r.Messages)), Confidence: 0.9, Backend: "counting"}, nil
}

func newService(t testing.TB, b Backend, opts Options, mem memory.Options) (*Service, *redis.Client) {
	rdb := testenv.StartRedis(t).Client()
	store := memory.New(context.Background(), rdb, mem)
	t.Cleanup(func() { store.Close() })
	return New(store, b, opts), rdb
}

func TestConversationKeys(t *testing.T) {
	s, _ := newService(t, &countingBackend{}, Options{}, memory.Options{})
	for _, tc := range []struct {
		r            Request
		key, session string
	}{
		{Request{Scope: ScopeMember, UserID: "42"}, "api:default:c2c:42", "c2c:42"},
		{Request{Scope: ScopeMember, UserID: "42", GroupID: "g"}, "api:default:member:g:42", "member:g:42"},
		{Request{Scope: ScopeGroup, UserID: "42", GroupID: "g"}, "api:default:group:g", "group:g"},
		{Request{Scope: ScopeGlobal}, "api:default:global", "global"},
		{Request{Scope: ScopeGroup, SessionID: "s1", UserID: "42", GroupID: "g"}, "api:default:session:s1", "s1"},
		{Request{UserID: "42"}, "api:default:c2c:42", "c2c:42"},
		{Request{Tenant: "k1", UserID: "42"}, "api:k1:c2c:42", "c2c:42"},
		{Request{Platform: "telegram", Scope: ScopeMember, UserID: "42"}, "im:telegram:c2c:42", ""},
		{Request{Platform: "telegram", Scope: ScopeGroup, UserID: "42", GroupID: "-100"}, "im:telegram:group:-100", ""},
	} {
		c, err := s.Resolve(tc.r)
		if err != nil || c.Key != tc.key || c.SessionID != tc.session {
			t.Errorf("%+v: got %+v, %v; want %s, session %q", tc.r, c, err, tc.key, tc.session)
		}
	}
	for _, bad := range []Request{{Scope: ScopeGroup, UserID: "u"}, {Scope: "room", UserID: "u"}, {Scope: ScopeMember, GroupID: "g"}} {
		if _, err := s.Resolve(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	if c, err := s.Resolve(Request{}); err != nil || !strings.HasPrefix(c.Key, "api:default:session:") || c.SessionID == "" {
		t.Errorf("a request naming nothing starts a new session: %+v, %v", c, err)
	}
}

// The session id Resolve returns, sent back as the session id, names the
// same conversation — whatever the ids hold.
func TestSessionIDNamesTheConversationAgain(t *testing.T) {
	s, _ := newService(t, &countingBackend{}, Options{}, memory.Options{})
	for _, r := range []Request{
		{UserID: "42"}, {UserID: "a:b", GroupID: "c%3Ad"}, {Scope: ScopeGroup, GroupID: "x:y"}, {Scope: ScopeGlobal},
		{SessionID: "plain"}, {UserID: "global"}, {UserID: "%"},
	} {
		first, err := s.Resolve(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := s.Resolve(Request{SessionID: first.SessionID})
		if err != nil || again.Key != first.Key {
			t.Errorf("%+v: session %q gives %+v, %v; want key %s", r, first.SessionID, again, err, first.Key)
		}
	}
}

// No two different (tenant or platform, scope, session, group, user)
// tuples share a key, however their ids are chosen.
func TestConversationKeysNeverCollide(t *testing.T) {
	s, _ := newService(t, &countingBackend{}, Options{}, memory.Options{})
	ids := []string{"", "a", "b", "a:b", "b:c", "c", "a:b:c", "%", "%25", "%3A", ":", "::", "{x}", "x}", "global",
		"c2c", "member:a", "group:a", "session:a", "api", "im:telegram", "telegram:777", "é", "a b"}
	tenants := []string{"", "default", "k1", "k1:x", "im", "im:telegram"}
	platforms := []string{"", "telegram", "onebot"}
	scopes := []string{ScopeMember, ScopeGroup, ScopeGlobal}
	seen := map[string]tuple{}
	n := 0
	for _, tn := range tenants {
		for _, pf := range platforms {
			for _, sc := range scopes {
				for _, g := range ids {
					for _, u := range ids {
						for _, sess := range []string{"", u} {
							tp := tuple{tn, pf, sc, sess, g, u}
							c, err := s.Resolve(Request{Tenant: tn, Platform: pf, Scope: sc, SessionID: sess, GroupID: g, UserID: u})
							if err != nil {
								continue
							}
							if strings.ContainsAny(c.Key, "{}") {
								t.Fatalf("%+v: key %q holds a hash-tag brace", tp, c.Key)
							}
							n++
							if prev, ok := seen[c.Key]; ok && !sameConversation(prev, tp) {
								t.Fatalf("%+v and %+v share the key %q", prev, tp, c.Key)
							}
							seen[c.Key] = tp
						}
					}
				}
			}
		}
	}
	if n < 10000 {
		t.Fatalf("only %d tuples resolved", n)
	}
}

type tuple struct{ tenant, platform, scope, session, group, user string }

// sameConversation tells tuples that name one conversation on purpose:
// the tenant is ignored on IM (the platform is the tenant), "" is the
// default tenant, a session wins over the scope and its ids, and the ids a
// scope does not use do not matter, nor does a session id that spells out
// a scoped conversation's path (that is its session id).
func sameConversation(a, b tuple) bool {
	norm := func(t tuple) tuple {
		if t.platform != "" {
			t.tenant = ""
		} else if t.tenant == "" {
			t.tenant = DefaultTenant
		}
		if t.session != "" && t.platform == "" {
			if sc, u, g, ok := parsePath(t.session); ok {
				t.scope, t.session, t.user, t.group = sc, "", u, g
			}
		}
		if t.platform != "" {
			t.session = ""
		}
		switch {
		case t.session != "":
			t.scope, t.group, t.user = "", "", ""
		case t.scope == ScopeGroup:
			t.user = ""
		case t.scope == ScopeGlobal:
			t.group, t.user = "", ""
		}
		return t
	}
	return norm(a) == norm(b)
}

func TestFirstTurnCache(t *testing.T) {
	b := &countingBackend{}
	s, _ := newService(t, b, Options{CacheTTL: 60e9, Model: "m", SystemPrompt: "p"}, memory.Options{})
	ctx := context.Background()
	first, err := s.Turn(ctx, Request{UserID: "1", ID: "a", Message: "What is Redis?"})
	if err != nil {
		t.Fatal(err)
	}
	// Another conversation's first turn with the same text is served from the cache ...
	hit, err := s.Turn(ctx, Request{UserID: "2", ID: "b", Message: " What is Redis? "})
	if err != nil || hit.Backend != "cache" || hit.Reply != first.Reply || hit.Turn != 1 || b.calls != 1 {
		t.Fatalf("cache hit: %+v, %v, calls %d", hit, err, b.calls)
	}
	// ... and still lands in its memory; a later turn is never cached.
	next, err := s.Turn(ctx, Request{UserID: "2", ID: "c", Message: "What is Redis?"})
	if err != nil || next.Backend != "counting" || next.Reply != "saw 4" || b.calls != 2 {
		t.Fatalf("second turn: %+v, %v, calls %d", next, err, b.calls)
	}
	h, _ := s.History(ctx, Request{UserID: "2"})
	if len(h) != 4 || !strings.Contains(h[1].Content, "saw") {
		t.Fatalf("history: %+v", h)
	}
}

// echoBackend quotes the message it answers, as a real model may.
type echoBackend struct{ calls int }

func (b *echoBackend) Name() string { return "echo" }
func (b *echoBackend) Complete(_ context.Context, r llm.Request) (llm.Reply, error) {
	b.calls++
	return llm.Reply{Content: "you said: " + r.Messages[len(r.Messages)-1].Content, Backend: "echo"}, nil
}

// The cache never hands a caller a reply made from a message the caller
// did not send: not for text that differs in case or inner spaces, not to
// another tenant, not across the HTTP API and an IM platform.
func TestCacheNeverAnswersWithAnotherMessage(t *testing.T) {
	b := &echoBackend{}
	s, _ := newService(t, b, Options{CacheTTL: 60e9}, memory.Options{})
	ctx := context.Background()
	if _, err := s.Turn(ctx, Request{UserID: "alice", Message: "Secret Plan Alpha"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Request{
		{UserID: "bob", Message: "secret   plan alpha"},
		{UserID: "bob", Message: "secret plan alpha"},
		{Tenant: "other", UserID: "carol", Message: "Secret Plan Alpha"},
		{Platform: "telegram", Scope: ScopeMember, UserID: "dave", ID: "1", Message: "Secret Plan Alpha"},
	} {
		res, err := s.Turn(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if res.Backend == "cache" || res.Reply != "you said: "+r.Message {
			t.Fatalf("%+v answered %+v", r, res)
		}
	}
	if b.calls != 5 {
		t.Fatalf("backend calls %d, want 5", b.calls)
	}
}

// A request id chosen by a client never meets an IM event's: a forged
// "im:telegram:6001" neither replays the IM reply nor blocks the event.
func TestClientRequestIDsNeverMeetPlatformIDs(t *testing.T) {
	b := &echoBackend{}
	s, _ := newService(t, b, Options{}, memory.Options{})
	ctx := context.Background()
	if _, err := s.Turn(ctx, Request{UserID: "telegram:777", ID: "6001", Message: "forged"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Turn(ctx, Request{Platform: "telegram", Scope: ScopeMember, UserID: "777", ID: "6001", Message: "my password is hunter2"})
	if err != nil || res.Replayed || res.Turn != 1 || res.Reply != "you said: my password is hunter2" {
		t.Fatalf("the IM event after a forged id: %+v, %v", res, err)
	}
	h, _ := s.History(ctx, Request{UserID: "telegram:777"})
	if len(h) != 2 || strings.Contains(h[0].Content+h[1].Content, "hunter2") {
		t.Fatalf("the HTTP conversation holds %+v", h)
	}
}

// panickyBackend panics on its first call, then answers.
type panickyBackend struct{ calls int }

func (b *panickyBackend) Name() string { return "panicky" }
func (b *panickyBackend) Complete(_ context.Context, r llm.Request) (llm.Reply, error) {
	b.calls++
	if b.calls == 1 {
		panic("backend bug")
	}
	return llm.Reply{Content: "fine", Backend: "panicky"}, nil
}

// A turn whose backend panics (the HTTP layer recovers it) gives its
// conversation up at once: the next turn neither waits for a lease that is
// renewed forever nor finds anything written.
func TestPanickingTurnFreesTheConversation(t *testing.T) {
	s, _ := newService(t, &panickyBackend{}, Options{}, memory.Options{WaitTimeout: 2 * time.Second})
	ctx := context.Background()
	func() {
		defer func() { _ = recover() }()
		_, _ = s.Turn(ctx, Request{UserID: "p", ID: "boom", Message: "first"})
	}()
	res, err := s.Turn(ctx, Request{UserID: "p", ID: "next", Message: "second"})
	if err != nil || res.Turn != 1 || res.Reply != "fine" {
		t.Fatalf("turn after a panic: %+v, %v", res, err)
	}
}

// With the cache on, a first turn (cache read and write included) and a
// later turn are both two Redis round trips.
func TestTurnsAreTwoRoundTrips(t *testing.T) {
	s, rdb := newService(t, &countingBackend{}, Options{CacheTTL: 60e9}, memory.Options{})
	ctx := context.Background()
	if _, err := s.Turn(ctx, Request{SessionID: "warm", ID: "w", Message: "load the scripts"}); err != nil {
		t.Fatal(err)
	}
	calls := testenv.CountRoundTrips(rdb)
	for i, msg := range []string{"first turn, cache miss", "second turn"} {
		calls.Store(0)
		if _, err := s.Turn(ctx, Request{UserID: "rt", ID: fmt.Sprint(i), Message: msg}); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n != 2 {
			t.Fatalf("%s: %d round trips, want 2", msg, n)
		}
	}
}

func BenchmarkTurn(b *testing.B) {
	// The history stays at its size: memory keeps exactly that many entries.
	for _, history := range []int{0, 20, 100} {
		b.Run(fmt.Sprintf("history=%d", history), func(b *testing.B) {
			backend := &countingBackend{}
			s, _ := newService(b, backend, Options{SystemPrompt: "be brief"}, memory.Options{MaxEntries: max(history, 2)})
			ctx := context.Background()
			conv := "bench:" + fmt.Sprint(history)
			for i := range history / 2 {
				if _, err := s.Turn(ctx, Request{SessionID: conv, ID: fmt.Sprint("warm", i), Message: strings.Repeat("word ", 20)}); err != nil {
					b.Fatal(err)
				}
			}
			msg := strings.Repeat("word ", 20)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := conv
				if history == 0 {
					c = fmt.Sprint("bench:new:", i)
				}
				if _, err := s.Turn(ctx, Request{SessionID: c, ID: fmt.Sprint("r", i), Message: msg}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
