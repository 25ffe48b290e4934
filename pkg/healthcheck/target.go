package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
)

// eventKind is what the restarter of a target is told.
type eventKind int

const (
	evLivenessFailed  eventKind = iota // liveness reached its failure threshold
	evLivenessHealthy                  // liveness reached its success threshold
	evExited                           // a supervised process exited
)

type event struct {
	kind eventKind
	gen  uint64   // the liveness worker's generation (liveness events)
	proc *process // the process that exited (evExited)
	err  string   // the last probe error (evLivenessFailed)
}

// deps are what every target shares.
type deps struct {
	logger  *slog.Logger
	prober  Prober
	metrics *metrics
	alerter *alerter
}

// target runs one configured target: a liveness worker, an optional
// readiness worker (the observers), and a restarter goroutine (the actor)
// that owns the instance process, the backoff and the budget.
type target struct {
	cfg    Target
	deps   deps
	logger *slog.Logger
	now    func() time.Time // the pause lease's clock

	liveness  *worker
	readiness *worker
	events    chan event
	reset     chan struct{} // a reload asks to clear a failed state

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// acting is held while the restarter stops or starts the instance, so
	// that Pause can wait for it.
	acting sync.Mutex

	mu          sync.Mutex // guards everything below
	pausedUntil time.Time  // no restarts before this (Pause)
	st          TargetStatus
	proc        *process
	backoff     *Backoff
	budget      *Budget
	failed      bool
}

func newTarget(cfg Target, d deps, now func() time.Time) *target {
	if cfg.Restart.Strategy == "" {
		cfg.Restart.Strategy = StrategyNone
	}
	t := &target{
		cfg:     cfg,
		deps:    d,
		now:     now,
		logger:  d.logger.With("target", cfg.Name),
		events:  make(chan event, 16),
		reset:   make(chan struct{}, 1),
		backoff: NewBackoff(cfg.Backoff),
		budget:  NewBudget(cfg.Budget),
	}
	since := time.Now().UTC()
	t.st = TargetStatus{
		Name: cfg.Name, Strategy: cfg.Restart.Strategy, Port: cfg.Port, State: StateStarting, Since: since,
		Liveness: ProbeStatus{URL: cfg.Liveness, State: ResultUnknown},
		Restarts: RestartStatus{Budget: cfg.Budget.Restarts, Window: cfg.Budget.Window.String()},
		Backoff:  BackoffStatus{Current: "0s"},
	}
	t.liveness = newWorker(Liveness, cfg.Liveness, cfg.Settings, d.prober, t.observe)
	t.liveness.holdOnFailure = cfg.Restart.Strategy != StrategyNone
	if cfg.Readiness != "" {
		t.st.Readiness = &ProbeStatus{URL: cfg.Readiness, State: ResultUnknown}
		t.readiness = newWorker(Readiness, cfg.Readiness, cfg.Settings, d.prober, t.observe)
	}
	d.metrics.setState(cfg.Name, StateStarting)
	return t
}

// start runs the target's goroutines until stop. initial is a process
// handed over from the target's previous configuration, or nil.
func (t *target) start(parent context.Context, initial *process) {
	t.ctx, t.cancel = context.WithCancel(parent)
	t.wg.Go(func() { t.liveness.run(t.ctx) })
	t.wg.Go(func() { t.restarter(t.ctx, initial) })
	if t.readiness != nil {
		t.wg.Go(func() { t.readiness.run(t.ctx) })
	}
}

// stop ends the target's goroutines and returns its process (left running),
// if any.
func (t *target) stop() *process {
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.proc
}

// clearFailed asks the restarter to leave a failed state (on reload).
func (t *target) clearFailed() {
	select {
	case t.reset <- struct{}{}:
	default:
	}
}

// observe is called by the workers after every probe.
func (t *target) observe(o observation) {
	t.deps.metrics.probes.WithLabelValues(t.cfg.Name, string(o.kind), string(o.result)).Inc()
	t.mu.Lock()
	ps := &t.st.Liveness
	if o.kind == Readiness {
		ps = t.st.Readiness
	}
	ps.LastProbe, ps.LastResult, ps.LastError = o.at.UTC(), o.result, ""
	if o.err != nil {
		ps.LastError = o.err.Error()
	}
	ps.LastLatencyMS = float64(o.latency.Microseconds()) / 1000
	ps.ConsecutiveFailures = o.failures
	ps.State = o.reported
	t.mu.Unlock()

	if o.changed {
		lvl := slog.LevelInfo
		if o.result == ResultFailure {
			lvl = slog.LevelWarn
		}
		t.logger.Log(t.ctx, lvl, string(o.kind)+" "+string(o.result), "url", o.url,
			"consecutive_failures", o.failures, "err", errString(o.err))
	}
	if o.kind != Liveness || !o.changed {
		return // readiness is reported only: it never reaches the restarter
	}
	ev := event{kind: evLivenessHealthy, gen: o.gen}
	if o.result == ResultFailure {
		ev = event{kind: evLivenessFailed, gen: o.gen, err: errString(o.err)}
	}
	select {
	case t.events <- ev:
	case <-t.ctx.Done():
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// setState sets the target's state; call with t.mu held.
func (t *target) setStateLocked(s State) {
	if t.st.State == s {
		return
	}
	t.logger.Debug("state", "from", string(t.st.State), "to", string(s))
	t.st.State, t.st.Since = s, time.Now().UTC()
	t.deps.metrics.setState(t.cfg.Name, s)
}

// status returns a snapshot of the target's status.
func (t *target) status() TargetStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	s := t.st
	if s.Readiness != nil {
		r := *s.Readiness
		s.Readiness = &r
	}
	s.Restarts.InWindow = t.budget.InWindow(now)
	s.Backoff.Current = t.backoff.Current(now).String()
	if t.proc != nil && !t.proc.exited() {
		s.PID = t.proc.pid
	}
	if t.cfg.Restart.Strategy == StrategyPIDFile {
		if id, err := t.find(); err == nil {
			s.PID = id.PID
		}
	}
	return s
}

// path resolves a restart path relative to Restart.Dir.
func (t *target) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(t.cfg.Restart.Dir, p)
}

// restarter is the target's actor: it starts a supervised instance, then
// acts on liveness failures and process exits until ctx ends.
func (t *target) restarter(ctx context.Context, initial *process) {
	switch t.cfg.Restart.Strategy {
	case StrategySupervise:
		t.superviseStart(ctx, initial)
	case StrategyPIDFile:
		if initial != nil && !initial.exited() {
			t.setProc(initial)
		} else if id, err := t.find(); err == nil {
			t.setProc(adoptProcess(id))
		} else if errors.Is(err, proc.ErrForeign) {
			t.logger.Warn("the pid file names another process; it will not be signalled", "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.reset:
			t.onReset(ctx)
		case ev := <-t.events:
			t.handle(ctx, ev)
		}
	}
}

func (t *target) handle(ctx context.Context, ev event) {
	switch ev.kind {
	case evLivenessFailed:
		if ev.gen != t.liveness.generation() {
			return // from before the last restart
		}
		t.mu.Lock()
		failed := t.failed
		if !failed {
			t.setStateLocked(StateUnhealthy)
		}
		t.mu.Unlock()
		if failed || t.cfg.Restart.Strategy == StrategyNone {
			t.liveness.setOnHold(false) // keep watching: it may recover on its own
			return
		}
		if t.paused(t.now()) {
			// A script works on the instance: watch with fresh runs, so a
			// failure that outlasts the pause is reported (and acted on)
			// again.
			t.logger.Info("liveness failed while restarts are paused; not restarting", "err", ev.err)
			t.liveness.release()
			return
		}
		t.recover(ctx, "liveness failed: "+ev.err)
	case evLivenessHealthy:
		if ev.gen != t.liveness.generation() {
			return
		}
		t.mu.Lock()
		t.backoff.Healthy(time.Now())
		wasFailed := t.failed
		if wasFailed {
			t.failed = false
			t.budget.Reset()
			t.backoff.Reset()
			t.st.Error = ""
			t.liveness.setHoldOnFailure(true)
		}
		t.setStateLocked(StateHealthy)
		t.mu.Unlock()
		if wasFailed {
			t.logger.Warn("failed target is healthy again on its own; restarts allowed again")
		}
	case evExited:
		t.mu.Lock()
		current := ev.proc == t.proc
		failed := t.failed
		t.mu.Unlock()
		if !current {
			return // a process the restarter replaced or stopped itself
		}
		t.logger.Warn("instance exited", "pid", ev.proc.pid, "status", errString(ev.proc.exitErr()))
		if failed || t.paused(t.now()) {
			return
		}
		t.recover(ctx, fmt.Sprintf("exited (%s)", exitText(ev.proc)))
	}
}

func exitText(p *process) string {
	if err := p.exitErr(); err != nil {
		return err.Error()
	}
	return "status 0"
}

// onReset clears a failed state after a reload.
func (t *target) onReset(ctx context.Context) {
	t.mu.Lock()
	wasFailed := t.failed
	t.failed = false
	t.budget.Reset()
	t.backoff.Reset()
	dead := t.proc == nil || t.proc.exited()
	if wasFailed {
		t.st.Error = ""
		t.setStateLocked(StateStarting)
	}
	t.mu.Unlock()
	if !wasFailed {
		return
	}
	t.logger.Info("reload cleared the failed state")
	t.liveness.setHoldOnFailure(true)
	t.liveness.release()
	if t.cfg.Restart.Strategy == StrategySupervise && dead {
		t.recover(ctx, "reload of a failed target")
	}
}

func (t *target) setProc(p *process) {
	t.mu.Lock()
	t.proc = p
	t.mu.Unlock()
}

// superviseStart starts the supervised instance, or takes over one that is
// already running (handed over by a reload, or named by a live pid file).
func (t *target) superviseStart(ctx context.Context, initial *process) {
	if initial != nil && !initial.exited() {
		t.setProc(initial)
		t.watchExit(ctx, initial)
		return
	}
	if id, err := t.find(); err == nil {
		p := adoptProcess(id)
		t.setProc(p)
		t.watchExit(ctx, p)
		t.logger.Info("adopted running instance from its pid file", "pid", id.PID)
		return
	}
	if err := t.deps.prober.Probe(ctx, t.cfg.Liveness, t.cfg.Timeout); err == nil {
		t.logger.Warn("something already answers on the liveness URL; not starting a second copy (it is restarted if it fails)",
			"url", t.cfg.Liveness)
		return
	}
	p, err := t.startProcess()
	if err != nil {
		t.logger.Error("start failed", "err", err)
		t.mu.Lock()
		t.st.Error = err.Error()
		t.mu.Unlock()
		t.recover(ctx, "start failed: "+err.Error())
		return
	}
	t.logger.Info("started", "pid", p.pid)
	t.watchExit(ctx, p)
}

// watchExit tells the restarter when p exits.
func (t *target) watchExit(ctx context.Context, p *process) {
	t.wg.Go(func() {
		select {
		case <-p.done:
			select {
			case t.events <- event{kind: evExited, proc: p}:
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
	})
}
