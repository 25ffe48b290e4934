package healthcheck

import (
	"encoding/json"
	"net/http"
	"time"
)

// State is a target's state as /status reports it.
type State string

// Target states.
const (
	// StateStarting: no liveness result yet (just started or restarted).
	StateStarting State = "starting"
	// StateHealthy: liveness succeeded.
	StateHealthy State = "healthy"
	// StateUnhealthy: liveness failed and no restart is (yet) under way.
	StateUnhealthy State = "unhealthy"
	// StateRestarting: the instance is being stopped, started, or waited
	// for after its start.
	StateRestarting State = "restarting"
	// StateBackoff: a restart waits out its CrashLoop backoff.
	StateBackoff State = "backoff"
	// StateFailed: past the restart budget; no more restarts until a
	// reload or until the target becomes healthy on its own.
	StateFailed State = "failed"
)

// States lists every State.
var States = []State{StateStarting, StateHealthy, StateUnhealthy, StateRestarting, StateBackoff, StateFailed}

// ProbeStatus is the last known state of one probe kind of a target.
type ProbeStatus struct {
	// URL is the probed URL.
	URL string `json:"url"`
	// State is the result after thresholds: unknown, success or failure.
	State Result `json:"state"`
	// LastProbe is when the last probe started.
	LastProbe time.Time `json:"last_probe,omitzero"`
	// LastResult is the last probe's own result.
	LastResult Result `json:"last_result,omitempty"`
	// LastError is why the last probe failed.
	LastError string `json:"last_error,omitempty"`
	// LastLatencyMS is how long the last probe took, in milliseconds.
	LastLatencyMS float64 `json:"last_latency_ms"`
	// ConsecutiveFailures counts failed probes in a row.
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// RestartStatus counts a target's restarts.
type RestartStatus struct {
	// Total is every restart since the checker started.
	Total int `json:"total"`
	// InWindow is the restarts within the budget window.
	InWindow int `json:"in_window"`
	// Budget is the most restarts allowed within the window.
	Budget int `json:"budget"`
	// Window is the budget window.
	Window string `json:"window"`
	// Last is when the last restart happened.
	Last time.Time `json:"last,omitzero"`
	// LastReason is why.
	LastReason string `json:"last_reason,omitempty"`
}

// BackoffStatus is a target's CrashLoop backoff.
type BackoffStatus struct {
	// Current is the delay of the last restart ("0s" after a reset).
	Current string `json:"current"`
	// NextRestart is the earliest time the pending restart may happen.
	NextRestart time.Time `json:"next_restart,omitzero"`
}

// TargetStatus is one target in /status.
type TargetStatus struct {
	// Name is the target's name.
	Name string `json:"name"`
	// Strategy is its restart strategy.
	Strategy string `json:"strategy"`
	// Port is the port of its liveness URL.
	Port int `json:"port"`
	// State is its state.
	State State `json:"state"`
	// Since is when it entered State.
	Since time.Time `json:"since"`
	// Liveness is its liveness probe.
	Liveness ProbeStatus `json:"liveness"`
	// Readiness is its readiness probe, if it has one.
	Readiness *ProbeStatus `json:"readiness,omitempty"`
	// Restarts counts its restarts.
	Restarts RestartStatus `json:"restarts"`
	// Backoff is its CrashLoop backoff.
	Backoff BackoffStatus `json:"backoff"`
	// PID is the instance's pid when known.
	PID int `json:"pid,omitempty"`
	// PausedUntil is when a Pause of its restarts ends.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// Error is the last restart error.
	Error string `json:"error,omitempty"`
}

// StatusReport is the /status document.
type StatusReport struct {
	// Time is when the report was made.
	Time time.Time `json:"time"`
	// Targets are every target, in configuration order.
	Targets []TargetStatus `json:"targets"`
}

func (c *Checker) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, `{"error":{"code":"method_not_allowed","message":"use GET"}}`, http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(StatusReport{Time: time.Now().UTC(), Targets: c.Status()})
}
