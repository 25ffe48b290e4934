package healthcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/botfleet/botfleet/pkg/proc"
)

// recover restarts the instance: it holds liveness, waits out the backoff,
// stops and starts the instance and waits for it to answer, repeating on a
// failed start, until the instance is up, the budget is spent (the target
// is then marked failed and the alert fired) or ctx ends.
func (t *target) recover(ctx context.Context, reason string) {
	t.liveness.setOnHold(true)
	defer t.liveness.release()
	for {
		now := time.Now()
		t.mu.Lock()
		if !t.budget.Allow(now) {
			n := t.budget.InWindow(now)
			t.failed = true
			t.liveness.setHoldOnFailure(false) // watch on, without acting
			t.st.Backoff.NextRestart = time.Time{}
			t.setStateLocked(StateFailed)
			t.mu.Unlock()
			t.deps.metrics.alerts.WithLabelValues(t.cfg.Name).Inc()
			t.deps.alerter.fire(AlertEvent{
				Target: t.cfg.Name, State: StateFailed, Restarts: n, Window: t.cfg.Budget.Window.String(), Time: now.UTC(),
				Message: fmt.Sprintf("%s marked failed: %d restarts within %s did not keep it up (last: %s); no more restarts until it recovers or the checker is reloaded",
					t.cfg.Name, n, t.cfg.Budget.Window, reason),
			})
			return
		}
		delay := t.backoff.Next(now)
		t.st.Backoff.NextRestart = now.Add(delay).UTC()
		t.setStateLocked(StateBackoff)
		t.mu.Unlock()
		t.logger.Warn("restart scheduled", "reason", reason, "backoff", delay.String())
		if !pause.For(ctx, delay) {
			return
		}
		t.acting.Lock()
		if t.paused(t.now()) {
			t.acting.Unlock()
			t.logger.Info("restart dropped: restarts were paused during the backoff")
			t.mu.Lock()
			t.setStateLocked(StateUnhealthy)
			t.mu.Unlock()
			return
		}

		began := time.Now()
		t.mu.Lock()
		t.budget.Record(began)
		t.st.Restarts.Total++
		t.st.Restarts.Last, t.st.Restarts.LastReason = began.UTC(), reason
		t.st.Backoff.NextRestart = time.Time{}
		t.setStateLocked(StateRestarting)
		t.mu.Unlock()
		t.deps.metrics.restarts.WithLabelValues(t.cfg.Name).Inc()

		err := t.restartOnce(ctx)
		if err == nil {
			err = t.awaitStartup(ctx)
		}
		t.acting.Unlock()
		if ctx.Err() != nil {
			return
		}
		t.mu.Lock()
		t.st.Error = errString(err)
		if err == nil {
			t.setStateLocked(StateStarting)
		}
		t.mu.Unlock()
		if err == nil {
			t.logger.Info("restarted; liveness answers", "took", time.Since(began).String(), "pid", t.status().PID)
			return
		}
		t.logger.Warn("restart failed", "err", err, "took", time.Since(began).String())
		reason = "failed start: " + err.Error()
	}
}

// restartOnce stops the instance and starts a new one, by strategy.
func (t *target) restartOnce(ctx context.Context) error {
	r := t.cfg.Restart
	switch r.Strategy {
	case StrategySupervise:
		t.mu.Lock()
		old := t.proc
		t.mu.Unlock()
		if old != nil {
			if err := old.stop(t.cfg.Grace); err != nil {
				return err
			}
		}
		p, err := t.startProcess()
		if err != nil {
			return err
		}
		t.watchExit(ctx, p)
		return nil
	case StrategyPIDFile:
		// Stop the instance the pid file names, if it is the one that was
		// launched (or owns the port): never a pid someone else wrote.
		t.mu.Lock()
		old := t.proc
		t.mu.Unlock()
		id, err := t.find()
		switch {
		case err == nil && (old == nil || old.pid != id.PID):
			old = adoptProcess(id)
		case errors.Is(err, proc.ErrForeign):
			t.logger.Warn("the pid file names another process; leaving it alone", "err", err)
		case err != nil && !errors.Is(err, proc.ErrNotRunning):
			t.logger.Warn("ignoring bad pid file", "err", err)
		}
		if old != nil && !old.exited() {
			t.logger.Info("stopping", "pid", old.pid, "grace", t.cfg.Grace.String())
			if err := old.stop(t.cfg.Grace); err != nil {
				return err
			}
		}
		_, err = t.startProcess()
		return err
	case StrategyCommand:
		return t.runCommand(ctx)
	}
	return fmt.Errorf("strategy %q cannot restart", r.Strategy)
}

// find returns the live instance the target's pid file names (see
// proc.Find).
func (t *target) find() (proc.Identity, error) {
	if t.cfg.Restart.PIDFile == "" {
		return proc.Identity{}, proc.ErrNotRunning
	}
	return proc.Find(t.path(t.cfg.Restart.PIDFile), t.cfg.Port)
}

// launchSpec is what starts the instance: exactly what was launched
// before when its pid file has a launch record (argv, environment,
// working directory, log), else the configured command.
func (t *target) launchSpec() (proc.Spec, error) {
	r := t.cfg.Restart
	if r.PIDFile != "" {
		if rec, err := proc.ReadRecord(t.path(r.PIDFile)); err == nil {
			return rec.Spec(), nil
		} else if !errors.Is(err, os.ErrNotExist) {
			t.logger.Warn("ignoring the launch record; starting the configured command", "err", err)
		}
	}
	spec := proc.Spec{Dir: r.Dir, Log: t.path(r.Log)}
	for _, a := range r.Command {
		s, err := t.cfg.render(a)
		if err != nil {
			return proc.Spec{}, err
		}
		spec.Argv = append(spec.Argv, s)
	}
	var env []string
	for k, v := range r.Env {
		s, err := t.cfg.render(v)
		if err != nil {
			return proc.Spec{}, err
		}
		env = append(env, k+"="+s)
	}
	spec.Env = environ(env)
	return spec, nil
}

// startProcess starts the instance, records it as the target's process
// and writes its pid file and launch record.
func (t *target) startProcess() (*process, error) {
	spec, err := t.launchSpec()
	if err != nil {
		return nil, err
	}
	p, rec, err := startProcess(spec)
	if err != nil {
		return nil, err
	}
	t.setProc(p)
	if pf := t.cfg.Restart.PIDFile; pf != "" {
		if err := rec.Write(t.path(pf)); err != nil {
			t.logger.Error("cannot write pid file", "err", err)
		}
	}
	return p, nil
}

// runCommand runs the command strategy's shell template, within grace plus
// startup_timeout.
func (t *target) runCommand(ctx context.Context) error {
	script, err := t.cfg.render(t.cfg.Restart.Run)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Grace+t.cfg.StartupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Dir = t.cfg.Restart.Dir
	var env []string
	for k, v := range t.cfg.Restart.Env {
		s, err := t.cfg.render(v)
		if err != nil {
			return err
		}
		env = append(env, k+"="+s)
	}
	cmd.Env = environ(env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.logger.Info("running restart command", "run", script)
	err = cmd.Run()
	if o := strings.TrimSpace(out.String()); o != "" {
		if len(o) > 4000 {
			o = o[:4000] + "…"
		}
		t.logger.Info("restart command output", "output", o)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("restart command %q: timed out after %s", script, t.cfg.Grace+t.cfg.StartupTimeout)
		}
		return fmt.Errorf("restart command %q: %w", script, err)
	}
	return nil
}

// awaitStartup holds until the liveness URL answers, the new process exits,
// startup_timeout passes, or ctx ends.
func (t *target) awaitStartup(ctx context.Context) error {
	t.mu.Lock()
	p := t.proc
	t.mu.Unlock()
	if t.cfg.Restart.Strategy == StrategyCommand {
		p = nil
	}
	poll := min(t.cfg.Period, 250*time.Millisecond)
	deadline := time.Now().Add(t.cfg.StartupTimeout)
	var last error
	for {
		if p != nil && p.exited() {
			return fmt.Errorf("exited during startup (%s)", exitText(p))
		}
		timeout := min(t.cfg.Timeout, time.Until(deadline))
		if timeout > 0 {
			if last = t.deps.prober.Probe(ctx, t.cfg.Liveness, timeout); last == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Until(deadline) <= 0 {
			return fmt.Errorf("no answer within startup_timeout %s: %v", t.cfg.StartupTimeout, last)
		}
		var done <-chan struct{}
		if p != nil {
			done = p.done
		}
		tm := time.NewTimer(min(poll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-done:
		case <-tm.C:
		}
		tm.Stop()
	}
}

// render executes the restart template s (a Command element, an Env value
// or Run) with the target's .Name and .Port.
func (t Target) render(s string) (string, error) {
	tpl, err := template.New("").Option("missingkey=error").Parse(s)
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, struct {
		Name string
		Port int
	}{t.Name, t.Port}); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	return b.String(), nil
}
