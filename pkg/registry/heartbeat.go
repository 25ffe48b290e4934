package registry

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instance states, as the registry reports them.
const (
	StateReady    = "ready"    // serving, and its store answers
	StateUnready  = "unready"  // serving, but its store check fails (Reason says why)
	StateDraining = "draining" // shutting down: finishing what it runs, taking nothing new
	StateStopped  = "stopped"  // said goodbye on a graceful exit
	StateDead     = "dead"     // no heartbeat within the TTL
)

// Source is what an instance's heartbeat reports and where it reads it.
// Every field but Name is optional.
type Source struct {
	// Name is the instance's name. Required.
	Name string
	// Address is where the instance listens (host:port).
	Address string
	// Gatherer holds the instance's own metrics, read for its traffic
	// (pkg/chat's turns, pkg/httpapi's requests). It is gathered at every
	// heartbeat, so it should not hold collectors that do I/O.
	Gatherer prometheus.Gatherer
	// Ready tells whether the instance can take a turn (its store answers
	// and is not full).
	Ready func(context.Context) error
	// Draining tells the instance is shutting down.
	Draining func() bool
	// Breakers reports each model endpoint's circuit state.
	Breakers func() map[string]string
	// QueueWorkers is how many queue workers the instance runs.
	QueueWorkers int
	// Platforms are the IM platforms it serves.
	Platforms []string
	// Links reports its IM long connections: platform → state
	// (connecting, connected, standby, stopped), with the holder of a
	// `one` link after a space, e.g. "standby a".
	Links func() map[string]string
}

// Instance is one instance's record.
type Instance struct {
	Name         string            `json:"name"`
	Address      string            `json:"address,omitempty"`
	Build        Build             `json:"build"`
	StartedAt    time.Time         `json:"started_at"`
	HeartbeatAt  time.Time         `json:"heartbeat_at"`
	State        string            `json:"state"`
	Reason       string            `json:"reason,omitempty"`
	InFlight     int               `json:"in_flight"`
	Breakers     map[string]string `json:"breakers,omitempty"`
	QueueWorkers int               `json:"queue_workers"`
	Platforms    []string          `json:"platforms,omitempty"`
	Links        map[string]string `json:"im_links,omitempty"`
	MemoryBytes  uint64            `json:"memory_bytes"`
	Goroutines   int               `json:"goroutines"`
	Traffic      Traffic           `json:"traffic"`

	// Filled in by Read.
	Alive    bool      `json:"alive"`
	Deadline time.Time `json:"deadline"`
	Latency  Latency   `json:"latency"`
}

// Latency are an instance's (or the fleet's) percentiles over the window,
// in seconds.
type Latency struct {
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	TTFTP50 float64 `json:"ttft_p50"`
	TTFTP99 float64 `json:"ttft_p99"`
}

func latencyOf(d, ttft Histogram) Latency {
	return Latency{P50: d.Quantile(.5), P99: d.Quantile(.99), TTFTP50: ttft.Quantile(.5), TTFTP99: ttft.Quantile(.99)}
}

// HeartbeatOptions tune a Heartbeat. Zero values take the defaults named.
type HeartbeatOptions struct {
	// Window is the time the reported rates and distributions cover.
	// Default 1m.
	Window time.Duration
	// Now is the clock of the rates. Default time.Now.
	Now func() time.Time
	// Logger logs failed heartbeats (once per outage); nil discards.
	Logger *slog.Logger
}

// Heartbeat publishes an instance's record every Interval.
type Heartbeat struct {
	r       *Registry
	src     Source
	opts    HeartbeatOptions
	started time.Time

	mu      sync.Mutex
	history []counters // oldest first, spanning at most the window
	failing bool
}

// NewHeartbeat returns the heartbeat of the instance src describes; Run
// runs it.
func (r *Registry) NewHeartbeat(src Source, opts HeartbeatOptions) *Heartbeat {
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// The counters start at zero with the instance: the first beat's
	// window begins then, not at the first beat, so that turns served
	// before it (a slow start) are in its distributions too.
	started := opts.Now()
	return &Heartbeat{r: r, src: src, opts: opts, started: started, history: []counters{{at: started}}}
}

// Run beats at once and then every Interval until ctx ends. It never
// touches a turn: its Redis round trips are its own, one per beat (and
// the Ready check's).
func (h *Heartbeat) Run(ctx context.Context) {
	t := time.NewTicker(h.r.opts.Interval)
	defer t.Stop()
	for {
		_ = h.Beat(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Beat publishes the instance's record now.
func (h *Heartbeat) Beat(ctx context.Context) error {
	rec := h.record(ctx)
	err := h.r.publish(ctx, KindInstance, h.src.Name, rec, false)
	h.logOutage(err)
	return err
}

// Goodbye publishes the instance's last record, state stopped: it is no
// longer alive, and shown as stopped (not dead) for Retain.
func (h *Heartbeat) Goodbye(ctx context.Context) error {
	rec := h.record(ctx)
	rec.State, rec.Reason = StateStopped, ""
	return h.r.publish(ctx, KindInstance, h.src.Name, rec, true)
}

func (h *Heartbeat) logOutage(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err != nil && !h.failing:
		h.opts.Logger.Warn("registry: heartbeat failed; the fleet sees this instance as dead until one succeeds", "err", err)
	case err == nil && h.failing:
		h.opts.Logger.Info("registry: heartbeats resumed")
	}
	h.failing = err != nil
}

// record is the instance's record now.
func (h *Heartbeat) record(ctx context.Context) Instance {
	now := h.opts.Now()
	rec := Instance{
		Name: h.src.Name, Address: h.src.Address, Build: CurrentBuild(), StartedAt: h.started, HeartbeatAt: now,
		State: StateReady, QueueWorkers: h.src.QueueWorkers, Platforms: h.src.Platforms,
	}
	switch {
	case h.src.Draining != nil && h.src.Draining():
		rec.State = StateDraining
	case h.src.Ready != nil:
		if err := h.src.Ready(ctx); err != nil {
			rec.State, rec.Reason = StateUnready, err.Error()
		}
	}
	if h.src.Breakers != nil {
		rec.Breakers = h.src.Breakers()
	}
	if h.src.Links != nil {
		rec.Links = h.src.Links()
	}
	rec.MemoryBytes, rec.Goroutines = goMemory(), runtime.NumGoroutine()
	if h.src.Gatherer != nil {
		if c, err := gather(h.src.Gatherer, now); err == nil {
			rec.InFlight = int(c.inFlight)
			rec.Traffic = c.traffic(h.remember(c))
		}
	}
	return rec
}

// remember adds c to the window's history and returns the oldest state
// within the window, to compute rates against.
func (h *Heartbeat) remember(c counters) counters {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.history = append(h.history, c)
	for len(h.history) > 2 && c.at.Sub(h.history[1].at) >= h.opts.Window {
		h.history = h.history[1:]
	}
	return h.history[0]
}

// goMemory is the memory the Go runtime holds from the system.
func goMemory() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
