// Package ratelimit enforces fleet-wide rate limits and quotas in Redis:
// every admission is one atomic script on Redis's clock, so a limit holds
// exactly across any number of instances (no local state is read, no
// per-instance count can multiply it).
//
//   - Rates (requests per second or minute per client IP, per key, per IM
//     conversation) are GCRA, by github.com/go-redis/redis_rate/v10: a
//     limit of N per period admits bursts of up to N and refills
//     continuously, so in any window of length d at most N + N·d/period
//     requests pass.
//   - Quotas per key — concurrent in-flight turns, tokens per minute and a
//     lifetime token budget — are one Lua script (reserve.go): a turn
//     reserves an estimate up front (prompt + max_tokens) and settles it
//     against the real usage when it ends. A turn is admitted while
//     something is left, so the budget is overspent by at most one
//     reservation. A reservation whose instance died expires after
//     ReservationTTL and leaves no spend behind.
//
// Keys, for prefix "bf" (redis_rate adds its "rate:" in front):
//
//	rate:bf:{rl:<scope>:<id>}      GCRA state of one rate limit (scope ip, key, rpm, conversation)
//	bf:{rlq:<id>}:flight           sorted set: reservation id -> expiry (Redis ms): in-flight turns
//	bf:{rlq:<id>}:res              hash: reservation id -> reserved tokens
//	bf:{rlq:<id>}:done             sorted set: settled reservation ids -> expiry (a resent settle is a no-op)
//	bf:{rlq:<id>}:tpm              hash: t = tokens left in the minute bucket, ts = its time (Redis ms)
//	bf:{rlq:<id>}:budget           hash: spent = settled tokens, reserved = tokens of live reservations
//
// # Errors
//
// When Redis cannot be reached (or is full) the Fallback decides:
// FailClosed returns ErrUnavailable or ErrFull (answer 503 with
// Retry-After); FailLocal limits on this
// instance to limit ÷ Instances (Decision.Local), except token budgets,
// which cannot be accounted without Redis and return ErrUnavailable. Limits
// never multiply and an outage is never an internal error.
package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// What to do while Redis is unreachable.
const (
	FailClosed = "closed"
	FailLocal  = "local"
)

// ErrUnavailable means the limit could not be checked: Redis is
// unreachable and the fallback is FailClosed (or the limit is a budget).
var ErrUnavailable = fault.New(http.StatusServiceUnavailable, "store_unavailable",
	"rate limits cannot be checked: Redis is unavailable", fault.Retry(time.Second))

// ErrFull is ErrUnavailable's case of a Redis at maxmemory (noeviction),
// which refuses the admissions' writes.
var ErrFull = fault.New(http.StatusServiceUnavailable, "store_full",
	"rate limits cannot be recorded: Redis is full (maxmemory)", fault.Retry(time.Second))

// refusal is the error of a failed admission under FailClosed.
func refusal(cause error) error {
	if fault.RedisFull(cause) {
		return errors.Join(ErrFull, cause)
	}
	return errors.Join(ErrUnavailable, cause)
}

// Rate is N requests per Per, in bursts of up to N; N = 0 is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// PerSecond and PerMinute make rates.
func PerSecond(n int) Rate { return Rate{N: n, Per: time.Second} }

// PerMinute is n requests a minute.
func PerMinute(n int) Rate { return Rate{N: n, Per: time.Minute} }

// Decision is the outcome of one admission.
type Decision struct {
	Allowed bool
	// Scope names the limit decided on: ip, key, rpm, conversation,
	// in_flight, tokens, budget.
	Scope string
	// Limit is the limit's size (requests, turns or tokens), Remaining
	// what is left of it now.
	Limit, Remaining int64
	// Reset is when Remaining is back to Limit; RetryAfter, when refused,
	// when to try again.
	Reset, RetryAfter time.Duration
	// Exhausted: a budget, not a rate, is used up; retrying will not help.
	Exhausted bool
	// Local: decided by this instance alone because Redis is unreachable.
	Local bool
}

// Options tune a Limiter. Zero values take the defaults named.
type Options struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// Fallback is FailClosed (the default) or FailLocal.
	Fallback string
	// Instances divides limits under FailLocal. Default 1.
	Instances int
	// ReservationTTL is how long a reservation lives without being
	// settled: longer than any turn. Default 2m.
	ReservationTTL time.Duration
	// Logger default discards.
	Logger *slog.Logger
	// Registerer takes the package's metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	defaults.Fill(o, Options{Prefix: keyspace.DefaultPrefix, Fallback: FailClosed, Instances: 1, ReservationTTL: 2 * time.Minute,
		Logger: slog.New(slog.DiscardHandler)})
}

// Limiter admits requests. It is safe for concurrent use.
type Limiter struct {
	rdb       redis.UniversalClient
	gcra      *redis_rate.Limiter
	opts      Options
	local     *local
	decisions *prometheus.CounterVec
	warned    atomic.Int64
}

// warn logs that Redis is unreachable, at most every 10 seconds.
func (l *Limiter) warn(scope string, err error) {
	now := time.Now().UnixMilli()
	if last := l.warned.Load(); now-last < 10000 || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.opts.Logger.Warn("ratelimit: redis unreachable", "fallback", l.opts.Fallback, "scope", scope, "err", err)
}

// New returns a Limiter on rdb.
func New(rdb redis.UniversalClient, opts Options) *Limiter {
	opts.setDefaults()
	l := &Limiter{rdb: rdb, gcra: redis_rate.NewLimiter(rdb), opts: opts, local: newLocal(opts.Instances)}
	l.decisions = telemetry.NewVecs(opts.Registerer).Counter("botfleet_ratelimit_decisions_total",
		"Admissions by scope (ip, key, rpm, conversation, in_flight, tokens, budget) and outcome (allowed, limited, unavailable, local_allowed, local_limited).", "scope", "outcome")
	return l
}

// Fallback returns the configured fallback.
func (l *Limiter) Fallback() string { return l.opts.Fallback }

func (l *Limiter) count(d Decision, err error) {
	outcome := "allowed"
	switch {
	case err != nil:
		outcome = "unavailable"
	case d.Local && d.Allowed:
		outcome = "local_allowed"
	case d.Local:
		outcome = "local_limited"
	case !d.Allowed:
		outcome = "limited"
	}
	l.decisions.WithLabelValues(d.Scope, outcome).Inc()
}

// tag makes id safe inside a hash tag.
func tag(id string) string {
	return strings.NewReplacer("{", "_", "}", "_").Replace(id)
}

// Allow admits one request of id under rate r in scope (ip, key,
// conversation...).
func (l *Limiter) Allow(ctx context.Context, scope, id string, r Rate) (d Decision, err error) {
	d = Decision{Allowed: true, Scope: scope}
	if r.N <= 0 {
		return d, nil
	}
	defer func() { l.count(d, err) }()
	res, err := l.gcra.Allow(ctx, l.opts.Prefix+":{rl:"+scope+":"+tag(id)+"}", redis_rate.Limit{Rate: r.N, Burst: r.N, Period: r.Per})
	if err == nil {
		d.Allowed, d.Limit, d.Remaining, d.Reset = res.Allowed > 0, int64(r.N), int64(res.Remaining), max(res.ResetAfter, 0)
		if !d.Allowed {
			d.RetryAfter = res.RetryAfter
		}
		return d, nil
	}
	if ctx.Err() != nil {
		return d, ctx.Err()
	}
	return l.fallback(scope, id, r, err)
}

// fallback decides locally, or refuses, when Redis failed with cause.
func (l *Limiter) fallback(scope, id string, r Rate, cause error) (Decision, error) {
	l.warn(scope, cause)
	d := Decision{Scope: scope}
	if l.opts.Fallback != FailLocal {
		return d, refusal(cause)
	}
	return l.local.allow(scope+":"+id, r), nil
}
