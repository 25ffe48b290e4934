package ratelimit

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

// two returns two limiters, as two instances would have, on one Redis.
func two(t *testing.T, r *testenv.Redis, opts Options) (*Limiter, *Limiter) {
	return New(r.Client(), opts), New(r.Client(), opts)
}

func TestRateHoldsAcrossInstances(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := two(t, r, Options{})
	ctx := context.Background()
	const n = 50
	// Warm the script cache so that the burst is not spread by a first load.
	if _, err := a.Allow(ctx, "key", "warm", PerSecond(n)); err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 3 * n {
		wg.Go(func() {
			d, err := []*Limiter{a, b}[i%2].Allow(ctx, "key", "k1", PerSecond(n))
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			} else if d.RetryAfter <= 0 || d.Remaining != 0 || d.Limit != n {
				t.Errorf("refusal without its numbers: %+v", d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// GCRA: the burst of n, plus what refilled while the requests came in.
	tolerance := int64(float64(n)*elapsed.Seconds()) + 1
	got := allowed.Load()
	t.Logf("%d of %d requests over two instances in %v admitted; limit %d/s, tolerance +%d", got, 3*n, elapsed, n, tolerance)
	if got < n || got > n+tolerance {
		t.Fatalf("%d admitted, want %d (+%d refilled during the %v burst)", got, n, tolerance, elapsed)
	}
}

func TestBudgetIsNeverOverspentByMoreThanOneReservation(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := two(t, r, Options{})
	ctx := context.Background()
	const budget, estimate = 20000, 500
	q := Quota{Budget: budget}
	var spent atomic.Int64
	var refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 40 {
		wg.Go(func() {
			l := []*Limiter{a, b}[w%2]
			for {
				res, d, err := l.Reserve(ctx, "k1", q, estimate)
				if err != nil {
					t.Error(err)
					return
				}
				if !d.Allowed {
					if d.Scope != "budget" || !d.Exhausted {
						t.Errorf("refusal %+v, want an exhausted budget", d)
					}
					refused.Add(1)
					return
				}
				used := 100 + rand.IntN(estimate-100+1)
				spent.Add(int64(used))
				if err := res.Settle(ctx, used); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	u, err := a.Usage(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("budget %d: spent %d over two instances and 40 workers (reservation %d)", budget, spent.Load(), estimate)
	if u.Spent != spent.Load() || u.Reserved != 0 || u.InFlight != 0 {
		t.Fatalf("usage %+v, but the workers spent %d", u, spent.Load())
	}
	if u.Spent > budget+estimate || u.Spent < budget {
		t.Fatalf("spent %d of a %d budget: want within one reservation (%d) above it", u.Spent, budget, estimate)
	}
	if refused.Load() != 40 {
		t.Fatalf("%d workers saw the budget refusal, want 40", refused.Load())
	}
}

func TestInFlightAndTokensPerMinute(t *testing.T) {
	r := testenv.StartRedis(t)
	l := New(r.Client(), Options{})
	ctx := context.Background()
	q := Quota{MaxInFlight: 2}
	r1, _, _ := l.Reserve(ctx, "f", q, 10)
	r2, _, _ := l.Reserve(ctx, "f", q, 10)
	if _, d, err := l.Reserve(ctx, "f", q, 10); err != nil || d.Allowed || d.Scope != "in_flight" || d.Limit != 2 || d.Exhausted {
		t.Fatalf("third concurrent turn: %+v %v", d, err)
	}
	if err := r1.Settle(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if res, d, _ := l.Reserve(ctx, "f", q, 10); !d.Allowed {
		t.Fatalf("after one settled: %+v", d)
	} else {
		_ = res.Settle(ctx, 5)
	}
	_ = r2.Settle(ctx, 5)

	tq := Quota{TokensPerMinute: 1000}
	first, d1, _ := l.Reserve(ctx, "t", tq, 600)
	_, d2, _ := l.Reserve(ctx, "t", tq, 600) // 400 left: admitted, the bucket goes below zero
	_, d3, _ := l.Reserve(ctx, "t", tq, 600)
	if !d1.Allowed || !d2.Allowed || d3.Allowed || d3.Scope != "tokens" || d3.RetryAfter <= 0 || d3.Exhausted {
		t.Fatalf("tokens per minute: %+v %+v %+v", d1, d2, d3)
	}
	// The first turn used 100 of its 600: 500 go back to the bucket.
	if err := first.Settle(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if _, d, _ := l.Reserve(ctx, "t", tq, 600); !d.Allowed {
		t.Fatalf("after the refund: %+v", d)
	}
}

func TestAReservationWhoseInstanceDiedLeavesNoSpend(t *testing.T) {
	r := testenv.StartRedis(t)
	l := New(r.Client(), Options{ReservationTTL: 300 * time.Millisecond})
	ctx := context.Background()
	q := Quota{MaxInFlight: 1, Budget: 1000}
	if _, d, err := l.Reserve(ctx, "dead", q, 800); err != nil || !d.Allowed {
		t.Fatalf("%+v %v", d, err)
	} // never settled: its instance died
	if _, d, _ := l.Reserve(ctx, "dead", q, 800); d.Allowed {
		t.Fatal("a second turn while the dead one holds the slot")
	}
	var res *Reservation
	testenv.WaitFor(t, 10*time.Second, "the dead instance's reservation to expire", func() bool {
		r, d, err := l.Reserve(ctx, "dead", q, 800)
		if err != nil {
			t.Fatal(err)
		}
		res = r
		return d.Allowed
	})
	u, _ := l.Usage(ctx, "dead")
	if u.Spent != 0 || u.Reserved != 800 {
		t.Fatalf("after the dead reservation expired: %+v, want nothing spent and only the new 800 reserved", u)
	}
	_ = res.Settle(ctx, 10)
}

func TestSettleIsIdempotentAndEachAdmissionOneRoundTrip(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := r.Client()
	l := New(rdb, Options{})
	ctx := context.Background()
	q := Quota{MaxInFlight: 5, TokensPerMinute: 100000, Budget: 100000}
	warm, _, _ := l.Reserve(ctx, "rt", q, 1)
	_ = warm.Settle(ctx, 1)
	_, _ = l.Allow(ctx, "ip", "1.2.3.4", PerSecond(10))
	calls := testenv.CountRoundTrips(rdb)
	if _, err := l.Allow(ctx, "ip", "1.2.3.4", PerSecond(10)); err != nil {
		t.Fatal(err)
	}
	res, _, err := l.Reserve(ctx, "rt", q, 300)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Settle(ctx, 200); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("allow + reserve + settle took %d round trips, want 3", n)
	}
	// A settle resent by the client (its reply lost) charges nothing more.
	resent := *res
	resent.l = l
	if err := resent.Settle(ctx, 200); err != nil {
		t.Fatal(err)
	}
	if u, _ := l.Usage(ctx, "rt"); u.Spent != 201 {
		t.Fatalf("spent %d, want 201", u.Spent)
	}
}

func TestRedisDown(t *testing.T) {
	r := testenv.StartRedis(t)
	// As the bot's client: one dial, no retries, so that a refusal is fast.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	closed := New(rdb, Options{})
	local := New(rdb, Options{Fallback: FailLocal, Instances: 2})
	ctx := context.Background()
	r.Stop()
	if _, err := closed.Allow(ctx, "ip", "x", PerSecond(10)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("fail closed: %v", err)
	}
	if _, _, err := closed.Reserve(ctx, "k", Quota{MaxInFlight: 1}, 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("fail closed, quota: %v", err)
	}
	allowed := 0
	for range 20 {
		d, err := local.Allow(ctx, "ip", "x", PerSecond(10))
		if err != nil || !d.Local {
			t.Fatalf("fail local: %+v %v", d, err)
		}
		if d.Allowed {
			allowed++
		}
	}
	// The burst: this instance's share, 10 ÷ 2 (plus a refill at most).
	if allowed < 5 || allowed > 6 {
		t.Fatalf("local fallback admitted %d of 20 at 10/s over 2 instances, want 5", allowed)
	}
	q := Quota{MaxInFlight: 4}
	var held []*Reservation
	for i := range 3 {
		res, d, err := local.Reserve(ctx, "k", q, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := i < 2; d.Allowed != want {
			t.Fatalf("local in-flight turn %d: %+v, want allowed=%v (4 ÷ 2 instances)", i, d, want)
		}
		held = append(held, res)
	}
	_ = held[0].Settle(ctx, 1)
	if _, d, _ := local.Reserve(ctx, "k", q, 1); !d.Allowed {
		t.Fatalf("after a local settle: %+v", d)
	}
	if _, _, err := local.Reserve(ctx, "k", Quota{Budget: 100}, 1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a budget without Redis: %v, want ErrUnavailable", err)
	}
}

func TestTokens(t *testing.T) {
	for s, want := range map[string]int{"": 0, "hello world!": 3, "你好": 2, "hi 你好": 3} {
		if got := Tokens(s); got != want {
			t.Errorf("Tokens(%q) = %d, want %d", s, got, want)
		}
	}
}
