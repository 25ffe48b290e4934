package registry

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is the heartbeat's clock of rates, moved by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// instanceMetrics are the metrics of an instance, as pkg/chat and
// pkg/httpapi register them (the names and labels the heartbeat reads).
type instanceMetrics struct {
	reg      *prometheus.Registry
	turns    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	http     *prometheus.CounterVec
}

func newInstanceMetrics() *instanceMetrics {
	b := []float64{.01, .1, 1}
	m := &instanceMetrics{
		reg:      prometheus.NewRegistry(),
		turns:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricTurns}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricDuration, Buckets: b}, []string{"endpoint"}),
		ttft:     prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: metricTTFT, Buckets: b}, []string{"endpoint"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: metricInFlight}, []string{"endpoint"}),
		http:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricHTTP}, []string{"route", "method", "code"}),
	}
	m.reg.MustRegister(m.turns, m.duration, m.ttft, m.inFlight, m.http)
	return m
}

func TestHeartbeatsMakeTheFleet(t *testing.T) {
	r := testenv.StartRedis(t)
	reg := New(r.Client(), Options{Interval: time.Second, TTL: 3 * time.Second})
	ctx := context.Background()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	m := newInstanceMetrics()
	draining := false
	a := reg.NewHeartbeat(Source{
		Name: "bot-a", Address: "10.0.0.1:8080", Gatherer: m.reg, QueueWorkers: 4, Platforms: []string{"telegram"},
		Draining: func() bool { return draining },
		Breakers: func() map[string]string { return map[string]string{"gpt": "open", "builtin": "closed"} },
	}, HeartbeatOptions{Now: clock.now})
	b := reg.NewHeartbeat(Source{Name: "bot-b", Ready: func(context.Context) error { return errors.New("store_full: Redis is full") }},
		HeartbeatOptions{Now: clock.now})
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	// Ten seconds of traffic on a: 20 turns (2 failed), 20 API requests
	// (1 answered 503) and probes that do not count, 5 streamed.
	clock.t = clock.t.Add(10 * time.Second)
	m.turns.WithLabelValues("chat", "answered").Add(18)
	m.turns.WithLabelValues("chat", "failed").Add(2)
	m.http.WithLabelValues("/v1/chat", "POST", "200").Add(19)
	m.http.WithLabelValues("/v1/chat", "POST", "503").Add(1)
	m.http.WithLabelValues("/health", "GET", "200").Add(100)
	m.http.WithLabelValues("/admin/api/fleet", "GET", "500").Add(7)
	for i := range 20 {
		m.duration.WithLabelValues("chat").Observe(0.005 + float64(i/19)*0.5) // 19 fast, 1 slow
	}
	for range 5 {
		m.ttft.WithLabelValues("chat").Observe(0.05)
	}
	m.inFlight.WithLabelValues("chat").Set(3)
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := reg.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Instances) != 2 || f.Instances[0].Name != "bot-a" || f.Instances[1].Name != "bot-b" {
		t.Fatalf("instances: %+v", f.Instances)
	}
	in := f.Instances[0]
	tr := in.Traffic
	if !in.Alive || in.State != StateReady || in.Address != "10.0.0.1:8080" || in.QueueWorkers != 4 || in.InFlight != 3 ||
		in.Breakers["gpt"] != "open" || in.Build.Go == "" || in.MemoryBytes == 0 {
		t.Fatalf("bot-a: %+v", in)
	}
	if tr.WindowSeconds != 10 || tr.TurnsPerSecond != 2 || tr.FailedPerSecond != 0.2 || tr.RequestsPerSecond != 2 ||
		tr.ErrorsPerSecond != 0.1 || tr.Turns != 20 || tr.Duration.Count() != 20 || tr.TTFT.Count() != 5 {
		t.Fatalf("bot-a traffic: %+v", tr)
	}
	if in.Latency.P50 <= 0 || in.Latency.P50 > .01 || in.Latency.P99 <= .1 || in.Latency.P99 > 1 || in.Latency.TTFTP99 <= .01 || in.Latency.TTFTP99 > .1 {
		t.Fatalf("bot-a latency: %+v", in.Latency)
	}
	if bb := f.Instances[1]; bb.State != StateUnready || bb.Reason == "" {
		t.Fatalf("bot-b: %+v, want unready with its reason", bb)
	}
	tot := f.Totals
	if tot.Instances != 2 || tot.Ready != 1 || tot.Unready != 1 || tot.InFlight != 3 || tot.OpenBreakers != 1 ||
		tot.TurnsPerSecond != 2 || math.Abs(tot.ErrorRate-0.05) > 1e-9 || tot.Latency.P99 != in.Latency.P99 {
		t.Fatalf("totals: %+v", tot)
	}

	// Draining shows at the next beat; a goodbye makes it stopped, not dead.
	draining = true
	if err := a.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	if f, _ := reg.Read(ctx); f.Instances[0].State != StateDraining || f.Totals.Draining != 1 {
		t.Fatalf("draining: %+v", f.Instances[0])
	}
	if err := a.Goodbye(ctx); err != nil {
		t.Fatal(err)
	}
	f, _ = reg.Read(ctx)
	if a := f.Instances[0]; a.Alive || a.State != StateStopped || f.Totals.Stopped != 1 || f.Totals.InFlight != 0 {
		t.Fatalf("after goodbye: %+v %+v", a, f.Totals)
	}
}

// Turns served before the first beat (a slow start, or a first Gather
// racing the first turn) are in the first beat's window: it begins when
// the instance starts, its counters at zero.
func TestTheFirstBeatCountsTurnsServedBeforeIt(t *testing.T) {
	r := testenv.StartRedis(t)
	reg := New(r.Client(), Options{Interval: time.Second, TTL: 3 * time.Second})
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	m := newInstanceMetrics()
	h := reg.NewHeartbeat(Source{Name: "bot-a", Gatherer: m.reg}, HeartbeatOptions{Now: clock.now})
	m.turns.WithLabelValues("chat", "answered").Add(3)
	for range 3 {
		m.duration.WithLabelValues("chat").Observe(0.005)
	}
	clock.t = clock.t.Add(5 * time.Second)
	if err := h.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := reg.Read(context.Background())
	if err != nil || len(f.Instances) != 1 {
		t.Fatalf("read: %+v, %v", f, err)
	}
	if tr := f.Instances[0].Traffic; tr.WindowSeconds != 5 || tr.Turns != 3 || tr.Duration.Count() != 3 || tr.TurnsPerSecond != 0.6 {
		t.Fatalf("first beat's traffic %+v: want the 3 turns before it, timed, over the 5 s since the start", tr)
	}
}

// A member that stops beating is dead once its TTL has passed on Redis's
// clock, and forgotten once Retain has passed too.
func TestSilentMembersDieWithinTheTTL(t *testing.T) {
	r := testenv.StartRedis(t)
	reg := New(r.Client(), Options{Interval: 100 * time.Millisecond, TTL: 300 * time.Millisecond, Retain: 500 * time.Millisecond})
	ctx := context.Background()
	h := reg.NewHeartbeat(Source{Name: "bot-x"}, HeartbeatOptions{})
	if err := h.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	beat := time.Now()
	f, err := reg.Read(ctx)
	if err != nil || len(f.Instances) != 1 || !f.Instances[0].Alive {
		t.Fatalf("after a beat: %+v %v", f.Instances, err)
	}
	// What is under test is expiry on Redis's clock: wait for it.
	testenv.WaitFor(t, 5*time.Second, "bot-x to be dead", func() bool {
		f, err := reg.Read(ctx)
		return err == nil && len(f.Instances) == 1 && f.Instances[0].State == StateDead && f.Totals.Dead == 1
	})
	if d := time.Since(beat); d < 300*time.Millisecond {
		t.Fatalf("dead %v after its last beat, before its TTL", d)
	}
	if err := reg.PublishChecker(ctx, Checker{Name: "hc"}, false); err != nil { // prunes the long dead
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "bot-x to be forgotten", func() bool {
		_ = reg.PublishChecker(ctx, Checker{Name: "hc"}, false)
		f, err := reg.Read(ctx)
		return err == nil && len(f.Instances) == 0 && len(f.Checkers) == 1
	})
}

// The health checker's targets are in the fleet, and those past their
// restart budget are counted.
func TestCheckersPublishTheirTargets(t *testing.T) {
	r := testenv.StartRedis(t)
	reg := New(r.Client(), Options{})
	ctx := context.Background()
	targets := []healthcheck.TargetStatus{
		{Name: "bot-8080", Port: 8080, State: healthcheck.StateHealthy},
		{Name: "bot-8081", Port: 8081, State: healthcheck.StateFailed, Restarts: healthcheck.RestartStatus{Total: 5, InWindow: 5, Budget: 5}},
	}
	if err := reg.PublishChecker(ctx, Checker{Name: "hc-1", Targets: targets}, false); err != nil {
		t.Fatal(err)
	}
	f, err := reg.Read(ctx)
	if err != nil || len(f.Checkers) != 1 {
		t.Fatalf("%+v %v", f, err)
	}
	c := f.Checkers[0]
	if !c.Alive || c.State != "alive" || len(c.Targets) != 2 || c.Targets[1].Restarts.Total != 5 || f.Totals.FailedTargets != 1 {
		t.Fatalf("checker: %+v totals %+v", c, f.Totals)
	}
	if err := reg.PublishChecker(ctx, Checker{Name: "hc-1", Targets: targets}, true); err != nil {
		t.Fatal(err)
	}
	if f, _ := reg.Read(ctx); f.Checkers[0].State != StateStopped || f.Totals.FailedTargets != 0 {
		t.Fatalf("after goodbye: %+v", f.Checkers[0])
	}
}

// A read when Redis is down is ErrUnavailable.
func TestReadWithoutRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	reg := New(r.Client(), Options{})
	r.Stop()
	if _, err := reg.Read(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
}

func TestQuantileInterpolatesLikePrometheus(t *testing.T) {
	h := Histogram{Bounds: []float64{.1, .2, .4}, Counts: []uint64{50, 90, 100, 100}}
	for _, c := range []struct{ q, want float64 }{{.5, .1}, {.7, .15}, {.95, .3}, {.99, .38}} {
		if got := h.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%.2f = %v, want %v", c.q, got, c.want)
		}
	}
	past := Histogram{Bounds: []float64{.1}, Counts: []uint64{1, 10}}
	if got := past.Quantile(.99); got != .1 {
		t.Errorf("past the last bound: %v, want the last bound", got)
	}
	if got := (Histogram{}).Quantile(.5); got != 0 {
		t.Errorf("empty: %v", got)
	}
}
