package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxLocal bounds the limiters kept for the local fallback; past it they
// start over (an outage long enough to see that many clients).
const maxLocal = 100000

// local is the FailLocal fallback: each limit divided by the number of
// instances, so that the fleet as a whole stays within it.
type local struct {
	instances int
	mu        sync.Mutex
	rates     map[string]*rate.Limiter
	flight    map[string]int
}

func newLocal(instances int) *local {
	return &local{instances: instances, rates: map[string]*rate.Limiter{}, flight: map[string]int{}}
}

// share is this instance's part of n, at least 1.
func (l *local) share(n int64) int64 { return max(1, n/int64(l.instances)) }

// limiter returns the token bucket for key holding n per period.
func (l *local) limiter(key string, n int64, per time.Duration) *rate.Limiter {
	lim, ok := l.rates[key]
	if !ok {
		if len(l.rates) >= maxLocal {
			l.rates = map[string]*rate.Limiter{}
		}
		s := l.share(n)
		lim = rate.NewLimiter(rate.Limit(float64(s)/per.Seconds()), int(s))
		l.rates[key] = lim
	}
	return lim
}

func (l *local) allow(key string, r Rate) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiter(key, int64(r.N), r.Per)
	d := Decision{Allowed: lim.Allow(), Local: true, Limit: l.share(int64(r.N)), Remaining: int64(math.Max(0, lim.Tokens()))}
	if !d.Allowed {
		d.RetryAfter = time.Duration(float64(time.Second) / float64(lim.Limit()))
	}
	return d
}

// reserve admits a turn of id under q's in-flight and tokens-per-minute
// limits (budgets never come here).
func (l *local) reserve(id string, q Quota, estimate int) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q.MaxInFlight > 0 && int64(l.flight[id]) >= l.share(int64(q.MaxInFlight)) {
		return Decision{Scope: "in_flight", Local: true, Limit: l.share(int64(q.MaxInFlight)), RetryAfter: time.Second}
	}
	if q.TokensPerMinute > 0 {
		lim := l.limiter("tpm:"+id, int64(q.TokensPerMinute), time.Minute)
		if lim.Tokens() <= 0 {
			return Decision{Scope: "tokens", Local: true, Limit: l.share(int64(q.TokensPerMinute)), RetryAfter: time.Second}
		}
		// May drive the bucket below zero, like the Redis script: the
		// next turn waits until it refills.
		lim.ReserveN(time.Now(), min(estimate, lim.Burst()))
	}
	if len(l.flight) >= maxLocal {
		l.flight = map[string]int{}
	}
	l.flight[id]++
	return Decision{Allowed: true, Scope: "quota", Local: true}
}

func (l *local) release(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flight[id] > 1 {
		l.flight[id]--
	} else {
		delete(l.flight, id)
	}
}
