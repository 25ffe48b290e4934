package registry

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
)

// Checker is a health checker's record: its targets as it sees them.
type Checker struct {
	Name        string                     `json:"name"`
	Build       Build                      `json:"build"`
	StartedAt   time.Time                  `json:"started_at"`
	HeartbeatAt time.Time                  `json:"heartbeat_at"`
	Targets     []healthcheck.TargetStatus `json:"targets"`

	// Filled in by Read: Alive, and State alive, dead or stopped.
	Alive bool   `json:"alive"`
	State string `json:"state"`
}

// PublishChecker publishes a health checker's targets (one round trip);
// call it every Interval. goodbye marks the checker stopped.
func (r *Registry) PublishChecker(ctx context.Context, c Checker, goodbye bool) error {
	c.Build, c.State = CurrentBuild(), ""
	if goodbye {
		c.State = StateStopped
	}
	return r.publish(ctx, KindChecker, c.Name, c, goodbye)
}

// Fleet is the whole fleet as the registry holds it, pre-aggregated.
type Fleet struct {
	// Time is Redis's clock at the read.
	Time time.Time `json:"time"`
	// IntervalSeconds and TTLSeconds are the registry's heartbeat period
	// and liveness: a console polls at the interval.
	IntervalSeconds float64 `json:"interval_seconds"`
	TTLSeconds      float64 `json:"ttl_seconds"`
	// Instances are every instance, alive or not, by name.
	Instances []Instance `json:"instances"`
	// Checkers are the health checkers, by name.
	Checkers []Checker `json:"checkers"`
	// Totals sum the live instances.
	Totals Totals `json:"totals"`
	// Undecodable counts records that did not decode (another version's).
	Undecodable int `json:"undecodable,omitempty"`
}

// Totals are the fleet's numbers: counts of every instance, sums and
// percentiles of the live ones' traffic.
type Totals struct {
	Instances         int     `json:"instances"`
	Ready             int     `json:"ready"`
	Unready           int     `json:"unready"`
	Draining          int     `json:"draining"`
	Dead              int     `json:"dead"`
	Stopped           int     `json:"stopped"`
	InFlight          int     `json:"in_flight"`
	QueueWorkers      int     `json:"queue_workers"`
	TurnsPerSecond    float64 `json:"turns_per_second"`
	FailedPerSecond   float64 `json:"failed_per_second"`
	RequestsPerSecond float64 `json:"requests_per_second"`
	ErrorsPerSecond   float64 `json:"errors_per_second"`
	// ErrorRate is the share of API requests answered 5xx in the window.
	ErrorRate float64 `json:"error_rate"`
	Latency   Latency `json:"latency"`
	// OpenBreakers counts model endpoints whose breaker is open on some
	// live instance; FailedTargets the checkers' targets past their budget.
	OpenBreakers  int `json:"open_breakers"`
	FailedTargets int `json:"failed_targets"`
}

// Read returns the fleet in one round trip to Redis.
func (r *Registry) Read(ctx context.Context) (Fleet, error) {
	now, members, err := r.read(ctx)
	if err != nil {
		return Fleet{}, err
	}
	f := Fleet{Time: now, IntervalSeconds: r.opts.Interval.Seconds(), TTLSeconds: r.opts.TTL.Seconds(),
		Instances: []Instance{}, Checkers: []Checker{}}
	var duration, ttft Histogram
	for _, m := range members {
		switch m.kind {
		case KindInstance:
			var in Instance
			if json.Unmarshal(m.record, &in) != nil {
				f.Undecodable++
				continue
			}
			in.Alive, in.Deadline = m.alive, m.deadline
			if !in.Alive && in.State != StateStopped {
				in.State = StateDead
			}
			in.Latency = latencyOf(in.Traffic.Duration, in.Traffic.TTFT)
			if in.Alive {
				f.Totals.add(in)
				duration.merge(in.Traffic.Duration)
				ttft.merge(in.Traffic.TTFT)
			}
			f.Totals.count(in.State)
			f.Instances = append(f.Instances, in)
		case KindChecker:
			var c Checker
			if json.Unmarshal(m.record, &c) != nil {
				f.Undecodable++
				continue
			}
			c.Alive = m.alive
			switch {
			case m.alive:
				c.State = "alive"
			case c.State != StateStopped:
				c.State = StateDead
			}
			for _, t := range c.Targets {
				if c.Alive && t.State == healthcheck.StateFailed {
					f.Totals.FailedTargets++
				}
			}
			f.Checkers = append(f.Checkers, c)
		}
	}
	if f.Totals.RequestsPerSecond > 0 {
		f.Totals.ErrorRate = f.Totals.ErrorsPerSecond / f.Totals.RequestsPerSecond
	}
	f.Totals.Latency = latencyOf(duration, ttft)
	sort.Slice(f.Instances, func(i, j int) bool { return f.Instances[i].Name < f.Instances[j].Name })
	sort.Slice(f.Checkers, func(i, j int) bool { return f.Checkers[i].Name < f.Checkers[j].Name })
	return f, nil
}

// add sums a live instance's load.
func (t *Totals) add(in Instance) {
	t.InFlight += in.InFlight
	t.QueueWorkers += in.QueueWorkers
	t.TurnsPerSecond += in.Traffic.TurnsPerSecond
	t.FailedPerSecond += in.Traffic.FailedPerSecond
	t.RequestsPerSecond += in.Traffic.RequestsPerSecond
	t.ErrorsPerSecond += in.Traffic.ErrorsPerSecond
	for _, s := range in.Breakers {
		if s == "open" {
			t.OpenBreakers++
		}
	}
}

func (t *Totals) count(state string) {
	t.Instances++
	switch state {
	case StateReady:
		t.Ready++
	case StateUnready:
		t.Unready++
	case StateDraining:
		t.Draining++
	case StateDead:
		t.Dead++
	case StateStopped:
		t.Stopped++
	}
}
