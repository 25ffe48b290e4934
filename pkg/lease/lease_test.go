package lease_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/jonboulle/clockwork"
)

func TestOwnerChecked(t *testing.T) {
	r := testenv.StartRedis(t)
	c := clockwork.NewFakeClockAt(time.Unix(1_800_000_000, 0))
	rdb := r.Client()
	trips := testenv.CountRoundTrips(rdb)
	l := lease.New(rdb, lease.Options{Clock: c.Now})
	ctx := context.Background()
	const key, ttl = "bf:test:lease", time.Hour // the key's real expiry outlasts the test

	ok, st, err := l.Acquire(ctx, key, "a", ttl)
	if err != nil || !ok || st.Owner != "a" || st.Remaining != ttl {
		t.Fatalf("a acquires a free lease: %v %+v %v", ok, st, err)
	}
	c.Advance(10 * time.Minute)
	before := trips.Load() // the first call loaded the script
	if ok, st, _ := l.Acquire(ctx, key, "b", ttl); ok || st.Owner != "a" || st.Remaining != 50*time.Minute {
		t.Fatalf("b takes a held lease: %v %+v", ok, st)
	}
	if n := trips.Load() - before; n != 1 {
		t.Fatalf("Acquire took %d round trips, want 1", n)
	}
	if err := l.Renew(ctx, key, "b", ttl); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("b renews a's lease: %v", err)
	}
	if err := l.Release(ctx, key, "b"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("b releases a's lease: %v", err)
	}
	if err := l.Renew(ctx, key, "a", ttl); err != nil {
		t.Fatal(err)
	}
	c.Advance(ttl - time.Millisecond)
	if st, _ := l.Holder(ctx, key); st.Owner != "a" || st.Remaining != time.Millisecond {
		t.Fatalf("renewed from 10m: %+v", st)
	}
	c.Advance(time.Millisecond) // a's lease ends: it is lost, not renewable
	if st, _ := l.Holder(ctx, key); st.Owner != "" {
		t.Fatalf("an ended lease is held: %+v", st)
	}
	if err := l.Renew(ctx, key, "a", ttl); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("a renews its ended lease: %v", err)
	}
	if ok, _, _ := l.Acquire(ctx, key, "b", ttl); !ok {
		t.Fatal("b cannot take an ended lease")
	}
	if err := l.Release(ctx, key, "a"); !errors.Is(err, lease.ErrNotHeld) {
		t.Fatalf("a's late release: %v", err)
	}
	if st, _ := l.Holder(ctx, key); st.Owner != "b" {
		t.Fatalf("a's late release touched b's lease: %+v", st)
	}
	if err := l.Release(ctx, key, "b"); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("a released lease left its key")
	}
}

func TestRedisClockExpiresTheKey(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := r.Client()
	l := lease.New(rdb, lease.Options{})
	ctx := context.Background()
	if ok, _, err := l.Acquire(ctx, "k", "a", 30*time.Second); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ttl, _ := rdb.PTTL(ctx, "k").Result(); ttl <= 29*time.Second || ttl > 30*time.Second {
		t.Fatalf("key ttl %v, want the lease's 30s", ttl)
	}
	st, _ := l.Holder(ctx, "k")
	if st.Owner != "a" || st.Remaining <= 29*time.Second {
		t.Fatalf("%+v", st)
	}
	r.Stop()
	if _, _, err := l.Acquire(ctx, "k", "a", time.Second); !errors.Is(err, lease.ErrUnavailable) {
		t.Fatalf("without Redis: %v", err)
	}
}

func TestOneOwnerUnderContention(t *testing.T) {
	r := testenv.StartRedis(t)
	l := lease.New(r.Client(), lease.Options{})
	var winners atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if ok, _, err := l.Acquire(context.Background(), "k", lease.NewOwner(), time.Minute); err == nil && ok {
				winners.Add(1)
			}
		})
	}
	wg.Wait()
	if winners.Load() != 1 {
		t.Fatalf("%d owners", winners.Load())
	}
}
