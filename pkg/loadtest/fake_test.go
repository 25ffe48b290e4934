package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeChat is a double of the bot's POST /v1/chat: it numbers each session's
// turns as the bot does, and can misnumber turns, fail, delay or hold requests.
type fakeChat struct {
	token  string                        // required Bearer token, if set
	report func(n int) int               // maps the true turn to the reported one (nil: identity)
	status func(k int64) int             // status of the k-th request, 1-based (0: answer normally)
	delay  time.Duration                 // added before answering
	hold   func(arrival time.Time)       // called on arrival; may block
	log    func(session, message string) // sees every accepted call, in arrival order
	refuse func(session string) bool     // true: 503 with Retry-After (an overloaded server)

	k     atomic.Int64
	mu    sync.Mutex
	turns map[string]int
}

// unavailableEvery is a fakeChat status: every n-th request answered 503.
func unavailableEvery(n int64) func(k int64) int {
	return func(k int64) int {
		if k%n == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
}

func (f *fakeChat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrival := time.Now()
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"fake"}}`, code)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat" {
		fail(http.StatusNotFound, "not_found")
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		fail(http.StatusUnsupportedMediaType, "unsupported_media_type")
		return
	}
	if f.token != "" && r.Header.Get("Authorization") != "Bearer "+f.token {
		fail(http.StatusUnauthorized, "unauthorized")
		return
	}
	var req struct {
		Message   string `json:"message"`
		SessionID string `json:"session_id"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Message == "" || req.SessionID == "" {
		fail(http.StatusBadRequest, "bad_request")
		return
	}
	if f.refuse != nil && f.refuse(req.SessionID) {
		fail(http.StatusServiceUnavailable, "overloaded")
		return
	}
	k := f.k.Add(1)
	if f.status != nil {
		if st := f.status(k); st != 0 {
			fail(st, "injected")
			return
		}
	}
	if f.hold != nil {
		f.hold(arrival)
	}
	if f.delay > 0 {
		time.Sleep(f.delay) // the thing under test: a fake server's deliberate latency
	}
	f.mu.Lock()
	if f.turns == nil {
		f.turns = map[string]int{}
	}
	f.turns[req.SessionID]++
	n := f.turns[req.SessionID]
	if f.log != nil {
		f.log(req.SessionID, req.Message)
	}
	f.mu.Unlock()
	if f.report != nil {
		n = f.report(n)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"reply":"ok","confidence":0.9,"timestamp":%d,"session_id":%q,"turn":%d,"instance":"fake"}`,
		arrival.Unix(), req.SessionID, n)
}

// serve starts f and returns its base URL.
func serve(t *testing.T, f *fakeChat) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

// mustRun runs opts with a generous hang guard (not a timing assertion).
func mustRun(t *testing.T, opts Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Interrupted {
		t.Fatal("run interrupted by the hang guard")
	}
	if res.Succeeded+res.Failed != res.Requests {
		t.Errorf("succeeded %d + failed %d != requests %d", res.Succeeded, res.Failed, res.Requests)
	}
	var sum int64
	for _, n := range res.Errors {
		sum += n
	}
	if sum != res.Failed {
		t.Errorf("errors %v sum to %d, failed is %d", res.Errors, sum, res.Failed)
	}
	return res
}

// within reports whether got is within frac of want.
func within(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}

// serveHandler starts h and returns its base URL.
func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
