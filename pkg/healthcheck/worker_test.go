package healthcheck

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// scriptProber fails or succeeds by a per-URL function of the call number
// (1-based) and records when it was called.
type scriptProber struct {
	mu    sync.Mutex
	fn    map[string]func(n int) error
	calls map[string][]time.Time
}

func newScriptProber() *scriptProber {
	return &scriptProber{fn: map[string]func(int) error{}, calls: map[string][]time.Time{}}
}

func (p *scriptProber) set(url string, fn func(n int) error) {
	p.mu.Lock()
	p.fn[url] = fn
	p.mu.Unlock()
}

func (p *scriptProber) Probe(_ context.Context, url string, _ time.Duration) error {
	p.mu.Lock()
	p.calls[url] = append(p.calls[url], time.Now())
	n := len(p.calls[url])
	fn := p.fn[url]
	p.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(n)
}

func (p *scriptProber) count(url string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls[url])
}

var errDown = errors.New("down")

func failFirst(k int) func(int) error {
	return func(n int) error {
		if n <= k {
			return errDown
		}
		return nil
	}
}

// collect returns a worker whose observations are collected.
func collectWorker(kind Kind, s Settings, p Prober) (*worker, *[]observation) {
	var obs []observation
	w := newWorker(kind, "http://t/health", s, p, func(o observation) { obs = append(obs, o) })
	return w, &obs
}

func reportedChanges(obs []observation) []Result {
	var out []Result
	for _, o := range obs {
		if o.changed {
			out = append(out, o.reported)
		}
	}
	return out
}

func TestWorkerFailureThreshold(t *testing.T) {
	s := DefaultSettings()
	s.FailureThreshold = 3
	ctx := context.Background()

	// Two failures with threshold 3 never report a failure.
	p := newScriptProber()
	p.set("http://t/health", func(n int) error {
		if n == 2 || n == 3 {
			return errDown
		}
		return nil
	})
	w, obs := collectWorker(Liveness, s, p)
	w.holdOnFailure = true
	for range 6 {
		w.probe(ctx)
	}
	if got := reportedChanges(*obs); len(got) != 1 || got[0] != ResultSuccess {
		t.Fatalf("2 failures with threshold 3: reported %v, want only [success]", got)
	}

	// Three do, once, and the worker then holds.
	p = newScriptProber()
	p.set("http://t/health", func(n int) error {
		if n >= 2 && n <= 4 {
			return errDown
		}
		return nil
	})
	w, obs = collectWorker(Liveness, s, p)
	w.holdOnFailure = true
	for range 8 {
		w.probe(ctx)
	}
	if got := reportedChanges(*obs); len(got) != 2 || got[1] != ResultFailure {
		t.Fatalf("3 failures with threshold 3: reported %v, want [success failure]", got)
	}
	if n := p.count("http://t/health"); n != 4 {
		t.Fatalf("worker probed %d times, want 4 (held after the failure)", n)
	}
	gen := w.generation()
	w.release()
	w.probe(ctx)
	last := (*obs)[len(*obs)-1]
	if !last.changed || last.reported != ResultSuccess || last.gen != gen+1 {
		t.Fatalf("after release: %+v", last)
	}
}

func TestWorkerSuccessThreshold(t *testing.T) {
	s := DefaultSettings()
	s.SuccessThreshold = 3
	s.FailureThreshold = 1
	p := newScriptProber()
	p.set("http://t/health", failFirst(1))
	w, obs := collectWorker(Readiness, s, p)
	for range 5 {
		w.probe(context.Background())
	}
	var states []Result
	for _, o := range *obs {
		states = append(states, o.reported)
	}
	want := []Result{ResultFailure, ResultFailure, ResultFailure, ResultSuccess, ResultSuccess}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("reported states %v, want %v", states, want)
		}
	}
}

func TestWorkerFirstProbeAfterInitialDelayWithJitter(t *testing.T) {
	for range 3 {
		s := DefaultSettings()
		s.InitialDelay, s.Jitter, s.Period = 100*time.Millisecond, 80*time.Millisecond, time.Hour
		p := newScriptProber()
		w, _ := collectWorker(Liveness, s, p)
		w.observe = func(observation) {}
		var jitter time.Duration
		w.jitter = func(max time.Duration) time.Duration {
			jitter = randomJitter(max)
			return jitter
		}
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		done := make(chan struct{})
		go func() { w.run(ctx); close(done) }()
		testenv.WaitFor(t, 10*time.Second, "the first probe", func() bool { return p.count("http://t/health") > 0 })
		cancel()
		<-done
		first := p.calls["http://t/health"][0].Sub(start)
		if jitter < 0 || jitter > s.Jitter {
			t.Fatalf("jitter %s outside 0..%s", jitter, s.Jitter)
		}
		if first < s.InitialDelay+jitter {
			t.Fatalf("first probe after %s, before initial delay %s + jitter %s", first, s.InitialDelay, jitter)
		}
		t.Logf("first probe after %s (initial delay %s + jitter %s)", first, s.InitialDelay, jitter)
	}
	seen := map[bool]bool{}
	for range 200 {
		d := randomJitter(10 * time.Millisecond)
		if d < 0 || d > 10*time.Millisecond {
			t.Fatalf("jitter %s out of range", d)
		}
		seen[d > 5*time.Millisecond] = true
	}
	if len(seen) != 2 || randomJitter(0) != 0 {
		t.Fatalf("jitter is not spread over its range")
	}
}

func TestBackoffDoublesCapsAndResets(t *testing.T) {
	b := NewBackoff(BackoffConfig{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond, ResetAfter: time.Second})
	now := time.Unix(1000, 0)
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next(now))
	}
	want := []time.Duration{100, 200, 400, 800, 800, 800}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
	// A healthy run shorter than reset_after does not reset.
	b.Healthy(now)
	if d := b.Next(now.Add(999 * time.Millisecond)); d != 800*time.Millisecond {
		t.Fatalf("after a short healthy run: %s", d)
	}
	// One of reset_after does.
	b.Healthy(now.Add(2 * time.Second))
	if c := b.Current(now.Add(3 * time.Second)); c != 0 {
		t.Fatalf("current after a long healthy run: %s", c)
	}
	if d := b.Next(now.Add(3 * time.Second)); d != 100*time.Millisecond {
		t.Fatalf("after a long healthy run: %s", d)
	}
	if d := b.Next(now.Add(3 * time.Second)); d != 200*time.Millisecond {
		t.Fatalf("second after reset: %s", d)
	}
	b.Reset()
	if d := b.Next(now); d != 100*time.Millisecond {
		t.Fatalf("after Reset: %s", d)
	}
}

func TestBudgetWindow(t *testing.T) {
	b := NewBudget(BudgetConfig{Restarts: 2, Window: time.Minute})
	now := time.Unix(1000, 0)
	for i := range 2 {
		if !b.Allow(now) {
			t.Fatalf("restart %d refused", i+1)
		}
		b.Record(now)
	}
	if b.Allow(now.Add(30 * time.Second)) {
		t.Fatal("third restart within the window allowed")
	}
	if !b.Allow(now.Add(time.Minute)) || b.InWindow(now.Add(time.Minute)) != 0 {
		t.Fatal("restarts older than the window still count")
	}
}
