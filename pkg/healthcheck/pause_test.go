package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// clock is a settable clock for pause leases.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// While a script has paused a target, a liveness failure restarts nothing;
// once the lease has run out on the checker's clock, it does.
func TestPauseLeaseHoldsRestartsUntilItEnds(t *testing.T) {
	var down atomic.Bool
	p := newScriptProber() // nothing listens on 18080: the prober answers
	tg, marker := commandTarget(t, "bot-p", "http://127.0.0.1:18080/health", fastSettings())
	p.set(tg.Liveness, func(int) error {
		if down.Load() {
			return errDown
		}
		return nil
	})
	cfg := checkerConfig(tg)
	clk := &clock{t: time.Unix(1_000_000, 0)}
	c, err := New(cfg, Options{Logger: testLogger(t), Prober: p, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitFor(t, 10*time.Second, "healthy", func() bool { return statusOf(c, "bot-p").State == StateHealthy })

	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	post := func(path string) int {
		resp, err := http.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{
		"/pause?port=18080&for=1m": 200, "/pause?port=18080": 400, "/pause?for=1m": 400,
		"/pause?port=1&for=1m": 404, "/pause?port=18080&for=2h": 404,
	} {
		if got := post(path); got != want {
			t.Errorf("POST %s: %d, want %d", path, got, want)
		}
	}
	if st := statusOf(c, "bot-p"); !st.PausedUntil.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("paused_until %v, want %v", st.PausedUntil, clk.Now().Add(time.Minute))
	}

	down.Store(true)
	probes := p.count(tg.Liveness)
	testenv.WaitFor(t, 10*time.Second, "30 failed probes while paused", func() bool { return p.count(tg.Liveness) >= probes+30 })
	if n := lines(marker); n != 0 {
		t.Fatalf("restarted %d times while paused", n)
	}
	clk.Add(time.Minute) // the lease runs out
	testenv.WaitFor(t, 10*time.Second, "restarted after the lease ended", func() bool { return lines(marker) >= 1 })

	// Resume ends a pause at once.
	if _, err := c.Pause("bot-p", 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := post("/resume?target=bot-p"); got != 200 || !statusOf(c, "bot-p").PausedUntil.IsZero() {
		t.Fatalf("resume: %d, paused_until %v", got, statusOf(c, "bot-p").PausedUntil)
	}
	if _, err := c.Pause("nobody", 0, time.Minute); err == nil || !strings.Contains(err.Error(), "no target") {
		t.Fatalf("pause of an unknown target: %v", err)
	}
}
