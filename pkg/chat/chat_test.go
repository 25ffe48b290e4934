package chat

import (
	"context"
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
	for _, tc := range []struct{ scope, session, user, group, want string }{
		{ScopeMember, "", "42", "", "c2c:42"},
		{ScopeMember, "", "42", "g", "member:g:42"},
		{ScopeGroup, "", "42", "g", "group:g"},
		{ScopeGlobal, "", "", "", "global"},
		{ScopeGroup, "s1", "42", "g", "session:s1"},
	} {
		if got, err := Conversation(tc.scope, tc.session, tc.user, tc.group); err != nil || got != tc.want {
			t.Errorf("%+v: got %q, %v", tc, got, err)
		}
	}
	if _, err := Conversation(ScopeGroup, "", "u", ""); err == nil {
		t.Error("group scope without a group: no error")
	}
}

func TestFirstTurnCache(t *testing.T) {
	b := &countingBackend{}
	s, _ := newService(t, b, Options{CacheTTL: 60e9, Model: "m", SystemPrompt: "p"}, memory.Options{})
	ctx := context.Background()
	first, err := s.Turn(ctx, Request{Conversation: "c2c:1", ID: "a", Message: "What  is Redis?"})
	if err != nil {
		t.Fatal(err)
	}
	// Another conversation's first turn with the same normalized text is served from the cache ...
	hit, err := s.Turn(ctx, Request{Conversation: "c2c:2", ID: "b", Message: "what is redis?"})
	if err != nil || hit.Backend != "cache" || hit.Reply != first.Reply || hit.Turn != 1 || b.calls != 1 {
		t.Fatalf("cache hit: %+v, %v, calls %d", hit, err, b.calls)
	}
	// ... and still lands in its memory; a later turn is never cached.
	next, err := s.Turn(ctx, Request{Conversation: "c2c:2", ID: "c", Message: "what is redis?"})
	if err != nil || next.Backend != "counting" || next.Reply != "saw 4" || b.calls != 2 {
		t.Fatalf("second turn: %+v, %v, calls %d", next, err, b.calls)
	}
	h, _ := s.History(ctx, "c2c:2")
	if len(h) != 4 || !strings.Contains(h[1].Content, "saw") {
		t.Fatalf("history: %+v", h)
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
		_, _ = s.Turn(ctx, Request{Conversation: "c2c:p", ID: "boom", Message: "first"})
	}()
	res, err := s.Turn(ctx, Request{Conversation: "c2c:p", ID: "next", Message: "second"})
	if err != nil || res.Turn != 1 || res.Reply != "fine" {
		t.Fatalf("turn after a panic: %+v, %v", res, err)
	}
}

// With the cache on, a first turn (cache read and write included) and a
// later turn are both two Redis round trips.
func TestTurnsAreTwoRoundTrips(t *testing.T) {
	s, rdb := newService(t, &countingBackend{}, Options{CacheTTL: 60e9}, memory.Options{})
	ctx := context.Background()
	if _, err := s.Turn(ctx, Request{Conversation: "warm", ID: "w", Message: "load the scripts"}); err != nil {
		t.Fatal(err)
	}
	calls := testenv.CountRoundTrips(rdb)
	for i, msg := range []string{"first turn, cache miss", "second turn"} {
		calls.Store(0)
		if _, err := s.Turn(ctx, Request{Conversation: "c2c:rt", ID: fmt.Sprint(i), Message: msg}); err != nil {
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
				if _, err := s.Turn(ctx, Request{Conversation: conv, ID: fmt.Sprint("warm", i), Message: strings.Repeat("word ", 20)}); err != nil {
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
				if _, err := s.Turn(ctx, Request{Conversation: c, ID: fmt.Sprint("r", i), Message: msg}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
