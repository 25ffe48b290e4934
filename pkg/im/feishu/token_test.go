package feishu

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// tokenServer is Feishu's tenant_access_token endpoint; each answer takes
// delay, so that callers overlap.
func tokenServer(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/open-apis/auth/v3/tenant_access_token/internal" {
			w.WriteHeader(404)
			return
		}
		time.Sleep(delay) // a slow fake server: the thing under test is who waits for it
		fmt.Fprintf(w, `{"code":0,"msg":"ok","tenant_access_token":"t-%d","expire":7200}`, n.Add(1))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestTokenFetchedOnceByTheFleet(t *testing.T) {
	r := testenv.StartRedis(t)
	srv, fetches := tokenServer(t, 200*time.Millisecond)
	var wg sync.WaitGroup
	tokens := make(chan string, 40)
	for range 2 { // two instances
		a := New(Options{AppID: "cli", AppSecret: "s", BaseURL: srv.URL, Redis: r.Client()})
		for range 20 {
			wg.Go(func() {
				tok, err := a.token(context.Background(), false)
				if err != nil {
					t.Error(err)
				}
				tokens <- tok
			})
		}
	}
	wg.Wait()
	close(tokens)
	for tok := range tokens {
		if tok != "t-1" {
			t.Fatalf("token %q", tok)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches by 40 callers on two instances, want 1", n)
	}
}

func TestTokenLockIsReleasedOnlyByItsOwner(t *testing.T) {
	r := testenv.StartRedis(t)
	srv, _ := tokenServer(t, 0)
	a := New(Options{AppID: "cli", AppSecret: "s", BaseURL: srv.URL, Redis: r.Client()})
	ctx := context.Background()
	l := lease.New(r.Client(), lease.Options{})
	// Another instance holds the refresh lock and is slow: after its 3s
	// this one fetches on its own, and must leave the other's lock alone.
	if ok, _, err := l.Acquire(ctx, a.tokenKey()+":lock", "other", time.Minute); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if tok, err := a.token(ctx, false); err != nil || tok != "t-1" {
		t.Fatal(tok, err)
	}
	if st, _ := l.Holder(ctx, a.tokenKey()+":lock"); st.Owner != "other" {
		t.Fatalf("the other instance's lock was released: %+v", st)
	}
}
