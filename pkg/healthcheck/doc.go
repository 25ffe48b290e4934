// Package healthcheck is the botfleet health-checker: it probes every bot
// instance's /health (liveness) and /ready (readiness) endpoints and restarts
// the instances whose liveness fails, in the mould of the kubelet prober.
//
// One worker goroutine per target and probe kind probes on a period, the
// first probe after the initial delay plus a random jitter. Results are
// counted in runs: a target's reported result changes only after
// FailureThreshold consecutive failures or SuccessThreshold consecutive
// successes. Workers only observe; a separate per-target restarter acts on a
// liveness failure (or, under the supervise strategy, on the process exiting):
// it waits out a CrashLoop-style backoff, stops the old process gracefully,
// starts a new one and holds liveness probing until the new process answers.
// Readiness is reported only and never restarts anything, so an outage of a
// shared dependency (Redis) that makes every instance unready cannot cause a
// restart storm. Past its restart budget a target is marked failed and an
// alert is sent.
//
// A Checker runs all targets from a Config (LoadConfig reads the YAML file),
// serves /status and /metrics through Handler, and reloads a changed Config
// with Reload.
package healthcheck
