package healthcheck

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options are a Checker's dependencies; every field is optional.
type Options struct {
	// Logger receives the checker's logs. Default: discard.
	Logger *slog.Logger
	// Prober probes the targets. Default: HTTPProber{}.
	Prober Prober
	// Registry receives the checker's metrics and is served at /metrics.
	// Default: a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// AlertClient posts alerts. Default: a client with a 5s timeout.
	AlertClient *http.Client
	// Now is the clock of pause leases. Default: time.Now.
	Now func() time.Time
}

// Checker checks every target of a Config and restarts the failed ones.
type Checker struct {
	logger   *slog.Logger
	registry *prometheus.Registry
	deps     deps
	now      func() time.Time

	mu      sync.Mutex
	cfg     *Config
	targets []*target
	ctx     context.Context // set while Run runs
	bg      sync.WaitGroup  // stops of removed supervised instances
}

// New returns a Checker for cfg, which it validates.
func New(cfg *Config, opts Options) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Prober == nil {
		opts.Prober = HTTPProber{}
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Checker{logger: opts.Logger, registry: opts.Registry, cfg: cfg, now: opts.Now}
	c.deps = deps{
		logger:  opts.Logger,
		prober:  opts.Prober,
		metrics: newMetrics(opts.Registry),
		alerter: newAlerter(cfg.Alert, opts.Logger, opts.AlertClient),
	}
	return c, nil
}

// Run checks the targets until ctx ends (SIGTERM), then stops the workers
// and, with on_exit "stop", the supervised instances; with "leave" they
// keep running. It returns nil after a clean shutdown.
func (c *Checker) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.ctx != nil {
		c.mu.Unlock()
		return errors.New("healthcheck: Run called twice")
	}
	c.ctx = ctx
	for _, tc := range c.cfg.Targets {
		t := newTarget(tc, c.deps, c.now)
		t.start(ctx, nil)
		c.targets = append(c.targets, t)
	}
	c.logger.Info("checking", "targets", len(c.targets), "on_exit", c.cfg.OnExit)
	c.mu.Unlock()

	<-ctx.Done()

	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	procs := make([]*process, len(c.targets))
	for i, t := range c.targets {
		wg.Go(func() { procs[i] = t.stop() })
	}
	wg.Wait()
	for i, t := range c.targets {
		p := procs[i]
		if t.cfg.Restart.Strategy != StrategySupervise || p == nil || p.exited() {
			continue
		}
		if c.cfg.OnExit == OnExitStop {
			wg.Go(func() {
				c.logger.Info("stopping supervised instance", "target", t.cfg.Name, "pid", p.pid, "grace", t.cfg.Grace.String())
				if err := p.stop(t.cfg.Grace); err != nil {
					c.logger.Error("stop failed", "target", t.cfg.Name, "err", err)
				}
			})
		} else {
			c.logger.Info("leaving supervised instance running", "target", t.cfg.Name, "pid", p.pid)
		}
	}
	wg.Wait()
	c.bg.Wait()
	c.deps.alerter.wait()
	c.logger.Info("stopped")
	return nil
}

// Reload applies cfg while Run runs (SIGHUP): added targets start, removed
// ones stop (a removed supervised instance is stopped gracefully), changed
// ones restart their workers keeping their instance, and unchanged ones
// leave a failed state. Listen cannot change without a restart.
func (c *Checker) Reload(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Listen != c.cfg.Listen {
		c.logger.Warn("listen changed; it takes effect at the next start", "listen", c.cfg.Listen, "new", cfg.Listen)
	}
	c.deps.alerter.setConfig(cfg.Alert)
	if c.ctx == nil || c.ctx.Err() != nil {
		c.cfg = cfg
		return nil
	}
	old := map[string]*target{}
	for _, t := range c.targets {
		old[t.cfg.Name] = t
	}
	var next []*target
	var added, removed, changed, kept int
	for _, tc := range cfg.Targets {
		t, ok := old[tc.Name]
		delete(old, tc.Name)
		switch {
		case ok && reflect.DeepEqual(t.cfg, tc):
			t.clearFailed()
			next = append(next, t)
			kept++
		case ok:
			p := t.stop()
			nt := newTarget(tc, c.deps, c.now)
			nt.start(c.ctx, p)
			next = append(next, nt)
			changed++
			c.logger.Info("target changed; workers restarted", "target", tc.Name)
		default:
			nt := newTarget(tc, c.deps, c.now)
			nt.start(c.ctx, nil)
			next = append(next, nt)
			added++
			c.logger.Info("target added", "target", tc.Name)
		}
	}
	for _, t := range c.targets {
		if _, gone := old[t.cfg.Name]; !gone {
			continue
		}
		removed++
		p := t.stop()
		c.deps.metrics.forget(t.cfg.Name)
		c.logger.Info("target removed", "target", t.cfg.Name)
		if t.cfg.Restart.Strategy == StrategySupervise && p != nil && !p.exited() {
			c.bg.Go(func() {
				c.logger.Info("stopping removed supervised instance", "target", t.cfg.Name, "pid", p.pid)
				if err := p.stop(t.cfg.Grace); err != nil {
					c.logger.Error("stop failed", "target", t.cfg.Name, "err", err)
				}
			})
		}
	}
	c.targets = next
	c.cfg = cfg
	c.logger.Info("reloaded", "added", added, "removed", removed, "changed", changed, "unchanged", kept)
	return nil
}

// Status returns every target's status, in configuration order.
func (c *Checker) Status() []TargetStatus {
	c.mu.Lock()
	targets := append([]*target(nil), c.targets...)
	c.mu.Unlock()
	out := make([]TargetStatus, 0, len(targets))
	for _, t := range targets {
		out = append(out, t.status())
	}
	return out
}

// Handler serves GET /status (JSON StatusReport), GET /metrics
// (Prometheus, the checker's own registry), and POST /pause and /resume
// (see Pause).
func (c *Checker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", c.serveStatus)
	mux.HandleFunc("POST /pause", c.servePause)
	mux.HandleFunc("POST /resume", c.servePause)
	mux.Handle("/metrics", promhttp.HandlerFor(c.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	return mux
}
