package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

func newQueue(t *testing.T) *Queue {
	t.Helper()
	r := testenv.StartRedis(t)
	return New(r.Client(), "bf", 0)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func start(t *testing.T, q *Queue, opts ConsumerOptions, h Handler) *Consumer {
	t.Helper()
	if opts.Name == "" {
		opts.Name = NewConsumerName("test")
	}
	c := q.NewConsumer(opts, h)
	err := c.Start(context.Background())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func enqueue(t *testing.T, q *Queue, p Priority, key string) string {
	t.Helper()
	id, dup, err := q.Enqueue(context.Background(), p, key, time.Hour, map[string]string{"key": key})
	if err != nil || dup {
		t.Fatalf("enqueue %s: %v dup=%v", key, err, dup)
	}
	return id
}

func stats(t *testing.T, q *Queue) Stats {
	t.Helper()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func depth(st Stats) (n int64) {
	for _, s := range st.Streams {
		n += s.Depth
	}
	return n
}

func TestEnqueueDedupsFleetWide(t *testing.T) {
	q := newQueue(t)
	ctx := context.Background()
	q2 := New(q.rdb, "bf", 0) // another instance's view
	if _, dup, err := q.Enqueue(ctx, Normal, "tg:1", time.Hour, map[string]string{"a": "1"}); err != nil || dup {
		t.Fatalf("first: %v %v", dup, err)
	}
	var dups atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, dup, err := q2.Enqueue(ctx, Urgent, "tg:1", time.Hour, map[string]string{"a": "1"})
			if err != nil {
				t.Error(err)
			}
			if dup {
				dups.Add(1)
			}
		}()
	}
	wg.Wait()
	if dups.Load() != 8 {
		t.Fatalf("%d of 8 repeats were seen as duplicates", dups.Load())
	}
	if d := depth(stats(t, q)); d != 1 {
		t.Fatalf("depth %d, want 1", d)
	}
	if _, _, err := q.Enqueue(ctx, "vip", "x", time.Hour, nil); err == nil {
		t.Fatal("unknown priority accepted")
	}
}

func TestUrgentBeforeNormalBeforeBatch(t *testing.T) {
	q := newQueue(t)
	if err := q.ensureGroups(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		enqueue(t, q, Batch, fmt.Sprint("b", i))
	}
	for i := range 5 {
		enqueue(t, q, Normal, fmt.Sprint("n", i))
	}
	enqueue(t, q, Urgent, "u0")
	var mu sync.Mutex
	var order []string
	start(t, q, ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond}, func(ctx context.Context, j *Job) error {
		mu.Lock()
		order = append(order, j.Fields["key"])
		mu.Unlock()
		return nil
	})
	waitFor(t, "11 jobs", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 11 })
	want := []string{"u0", "n0", "n1", "n2", "n3", "n4", "b0", "b1", "b2", "b3", "b4"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	waitFor(t, "empty streams", func() bool { return depth(stats(t, q)) == 0 })
}

func TestKilledConsumerJobIsReclaimedAndFinishedOnce(t *testing.T) {
	q := newQueue(t)
	opts := ConsumerOptions{Workers: 2, Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond, ReclaimInterval: 50 * time.Millisecond}
	started := make(chan struct{}, 1)
	optsA := opts
	optsA.Name = "a"
	a := start(t, q, optsA, func(ctx context.Context, j *Job) error {
		started <- struct{}{}
		<-ctx.Done() // hangs until the instance dies
		return ctx.Err()
	})
	enqueue(t, q, Normal, "job")
	<-started
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Stop(dead); err != nil { // hard stop: the job stays pending with a
		t.Fatal(err)
	}
	var runs atomic.Int64
	var deliveries atomic.Int64
	optsB := opts
	optsB.Name = "b"
	start(t, q, optsB, func(ctx context.Context, j *Job) error {
		runs.Add(1)
		deliveries.Store(j.Deliveries)
		return nil
	})
	waitFor(t, "the job to be finished by b", func() bool { return runs.Load() == 1 && depth(stats(t, q)) == 0 })
	time.Sleep(600 * time.Millisecond) // two claim-idle periods: nothing runs it again
	if runs.Load() != 1 || deliveries.Load() != 2 {
		t.Fatalf("runs %d deliveries %d, want 1 run on the 2nd delivery", runs.Load(), deliveries.Load())
	}
}

func TestHeartbeatKeepsALongJobFromBeingReclaimed(t *testing.T) {
	q := newQueue(t)
	var runs atomic.Int64
	h := func(ctx context.Context, j *Job) error {
		runs.Add(1)
		select {
		case <-time.After(time.Second): // > 3 × ClaimIdle
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	opts := ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond, ReclaimInterval: 50 * time.Millisecond}
	start(t, q, opts, h)
	enqueue(t, q, Normal, "long")
	waitFor(t, "the job to start", func() bool { return runs.Load() == 1 })
	start(t, q, opts, h)
	waitFor(t, "the job to finish", func() bool { return depth(stats(t, q)) == 0 })
	if runs.Load() != 1 {
		t.Fatalf("a running job was reclaimed: %d runs", runs.Load())
	}
}

func TestFailingJobEndsInDeadLetters(t *testing.T) {
	q := newQueue(t)
	var runs atomic.Int64
	start(t, q, ConsumerOptions{Workers: 2, Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond,
		ReclaimInterval: 30 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, MaxDeliveries: 3},
		func(ctx context.Context, j *Job) error {
			runs.Add(1)
			return fmt.Errorf("backend said no (try %d)", j.Deliveries)
		})
	enqueue(t, q, Urgent, "doomed")
	waitFor(t, "a dead letter", func() bool { return stats(t, q).DeadLetters == 1 })
	dl, err := q.DeadLetters(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	f := dl[0].Fields
	if f["key"] != "doomed" || f["dead_reason"] != "backend said no (try 3)" || f["dead_deliveries"] != "3" || f["dead_stream"] != "urgent" {
		t.Fatalf("dead letter %+v", f)
	}
	if runs.Load() != 3 {
		t.Fatalf("handler ran %d times, want 3", runs.Load())
	}
	if st := stats(t, q); depth(st) != 0 || st.Streams[0].Pending != 0 {
		t.Fatalf("stats after dead-lettering: %+v", st)
	}
	if n, _ := q.rdb.HLen(context.Background(), q.errorsKey()).Result(); n != 0 {
		t.Fatalf("errors hash keeps %d entries", n)
	}
}

func TestPermanentErrorIsDeadAtOnce(t *testing.T) {
	q := newQueue(t)
	var runs atomic.Int64
	start(t, q, ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond}, func(ctx context.Context, j *Job) error {
		runs.Add(1)
		return Permanent(errors.New("session webhook expired"))
	})
	enqueue(t, q, Normal, "p")
	waitFor(t, "a dead letter", func() bool { return stats(t, q).DeadLetters == 1 })
	if runs.Load() != 1 {
		t.Fatalf("runs %d", runs.Load())
	}
}

func TestDrainFinishesInFlightJobs(t *testing.T) {
	q := newQueue(t)
	var done atomic.Int64
	started := make(chan struct{}, 1)
	c := start(t, q, ConsumerOptions{Workers: 1, Block: time.Second}, func(ctx context.Context, j *Job) error {
		started <- struct{}{}
		time.Sleep(200 * time.Millisecond)
		done.Add(1)
		return nil
	})
	enqueue(t, q, Normal, "in-flight")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("drain took %v", time.Since(t0))
	if done.Load() != 1 || depth(stats(t, q)) != 0 {
		t.Fatalf("in-flight job not finished by the drain: done %d, %+v", done.Load(), stats(t, q))
	}
	enqueue(t, q, Normal, "after")
	time.Sleep(100 * time.Millisecond)
	if done.Load() != 1 {
		t.Fatal("a stopped consumer took a job")
	}
}

func TestFairEveryLetsBatchThroughAnUrgentFlood(t *testing.T) {
	q := newQueue(t)
	if err := q.ensureGroups(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		enqueue(t, q, Urgent, fmt.Sprint("u", i))
	}
	enqueue(t, q, Batch, "b0")
	var mu sync.Mutex
	var order []string
	start(t, q, ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond, FairEvery: 2}, func(ctx context.Context, j *Job) error {
		mu.Lock()
		order = append(order, j.Fields["key"])
		mu.Unlock()
		return nil
	})
	waitFor(t, "5 jobs", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 5 })
	if fmt.Sprint(order) != "[u0 b0 u1 u2 u3]" {
		t.Fatalf("order %v: every 2nd take should look at batch first", order)
	}
}
