package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"
)

// The queue's tests run on every topology, one deployment each shared by
// the tests; each test has a key prefix of its own.
func TestOnEveryTopology(t *testing.T) {
	testenv.Suite(t,
		testenv.TopologyTest{Name: "EnqueueDedupsFleetWide", Run: testEnqueueDedupsFleetWide},
		testenv.TopologyTest{Name: "UrgentBeforeNormalBeforeBatch", Run: testUrgentBeforeNormalBeforeBatch},
		testenv.TopologyTest{Name: "KilledConsumerJobIsReclaimedAndFinishedOnce", Run: testKilledConsumerJobIsReclaimedAndFinishedOnce},
		testenv.TopologyTest{Name: "HeartbeatKeepsALongJobFromBeingReclaimed", Run: testHeartbeatKeepsALongJobFromBeingReclaimed},
		testenv.TopologyTest{Name: "BatchJobHeldPastClaimIdleIsNotRunTwice", Run: testBatchJobHeldPastClaimIdleIsNotRunTwice},
		testenv.TopologyTest{Name: "FailingJobEndsInDeadLetters", Run: testFailingJobEndsInDeadLetters},
		testenv.TopologyTest{Name: "PermanentErrorIsDeadAtOnce", Run: testPermanentErrorIsDeadAtOnce},
		testenv.TopologyTest{Name: "RetryWaitsOutTheErrorsRetryAfter", Run: testRetryWaitsOutTheErrorsRetryAfter},
		testenv.TopologyTest{Name: "DrainFinishesInFlightJobs", Run: testDrainFinishesInFlightJobs},
		testenv.TopologyTest{Name: "DrainPastItsGraceAbandonsTheJob", Run: testDrainPastItsGraceAbandonsTheJob},
		testenv.TopologyTest{Name: "FairEveryLetsBatchThroughAnUrgentFlood", Run: testFairEveryLetsBatchThroughAnUrgentFlood},
	)
}

// newQueue returns a queue under a prefix of the test's own.
func newQueue(t *testing.T, top testenv.Topology) *Queue {
	t.Helper()
	prefix := "q" + strings.ReplaceAll(t.Name()[strings.LastIndexByte(t.Name(), '/')+1:], "_", "")
	return New(top.UniversalClient(), prefix, 0)
}

// newGroupedQueue is newQueue with its consumer groups made, as a
// consumer's Start makes them, for tests that enqueue before any consumer.
func newGroupedQueue(t *testing.T, top testenv.Topology) *Queue {
	t.Helper()
	q := newQueue(t, top)
	if err := q.ensureGroups(context.Background()); err != nil {
		t.Fatal(err)
	}
	return q
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

// pending returns who holds job id of p and how long it has been idle, or
// "" when nobody does.
func pending(t *testing.T, q *Queue, p Priority, id string) (consumer string, idle time.Duration) {
	t.Helper()
	ps, err := q.rdb.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: q.Stream(p), Group: Group, Start: id, End: id, Count: 1}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 {
		return "", 0
	}
	return ps[0].Consumer, ps[0].Idle
}

// age makes job id of p look idle for d on Redis's clock, its holder
// unchanged — as if d had passed without a heartbeat.
func age(t *testing.T, q *Queue, p Priority, id string, d time.Duration) {
	t.Helper()
	holder, _ := pending(t, q, p, id)
	err := q.rdb.Do(context.Background(), "xclaim", q.Stream(p), Group, holder, 0, id, "IDLE", d.Milliseconds(), "JUSTID").Err()
	if err != nil {
		t.Fatal(err)
	}
}

// blockUntil waits until clock has n timers and tickers waiting.
func blockUntil(t *testing.T, clock *clockwork.FakeClock, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := clock.BlockUntilContext(ctx, n); err != nil {
		t.Fatalf("the consumer never had %d timers waiting: %v", n, err)
	}
}

func testEnqueueDedupsFleetWide(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	ctx := context.Background()
	q2 := New(top.UniversalClient(), q.prefix, 0) // another instance's view
	if _, dup, err := q.Enqueue(ctx, Normal, "tg:1", time.Hour, map[string]string{"a": "1"}); err != nil || dup {
		t.Fatalf("first: %v %v", dup, err)
	}
	var dups atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, dup, err := q2.Enqueue(ctx, Urgent, "tg:1", time.Hour, map[string]string{"a": "1"})
			if err != nil {
				t.Error(err)
			}
			if dup {
				dups.Add(1)
			}
		})
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

func testUrgentBeforeNormalBeforeBatch(t *testing.T, top testenv.Topology) {
	q := newGroupedQueue(t, top)
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
	testenv.WaitFor(t, 15*time.Second, "11 jobs", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 11 })
	want := []string{"u0", "n0", "n1", "n2", "n3", "n4", "b0", "b1", "b2", "b3", "b4"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	testenv.WaitFor(t, 15*time.Second, "empty streams", func() bool { return depth(stats(t, q)) == 0 })
}

func testKilledConsumerJobIsReclaimedAndFinishedOnce(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	clock := clockwork.NewFakeClock()
	opts := ConsumerOptions{Workers: 2, Block: 50 * time.Millisecond, Clock: clock}
	started := make(chan struct{}, 1)
	optsA := opts
	optsA.Name = "a"
	a := start(t, q, optsA, func(ctx context.Context, j *Job) error {
		started <- struct{}{}
		<-ctx.Done() // hangs until the instance dies
		return ctx.Err()
	})
	id := enqueue(t, q, Normal, "job")
	<-started
	a.Abort() // as if a died: the job stays pending with a
	if holder, _ := pending(t, q, Normal, id); holder != "a" {
		t.Fatalf("after the abort the job is held by %q, want a", holder)
	}
	var runs, deliveries atomic.Int64
	optsB := opts
	optsB.Name, optsB.Clock = "b", clockwork.NewFakeClock()
	start(t, q, optsB, func(ctx context.Context, j *Job) error {
		runs.Add(1)
		deliveries.Store(j.Deliveries)
		return nil
	})
	age(t, q, Normal, id, a.Options().ClaimIdle) // a's heartbeats stopped claim_idle ago
	blockUntil(t, optsB.Clock.(*clockwork.FakeClock), 1)
	optsB.Clock.(*clockwork.FakeClock).Advance(a.Options().ReclaimInterval)
	testenv.WaitFor(t, 15*time.Second, "the job to be finished by b", func() bool { return runs.Load() == 1 && depth(stats(t, q)) == 0 })
	if holder, _ := pending(t, q, Normal, id); runs.Load() != 1 || deliveries.Load() != 2 || holder != "" {
		t.Fatalf("runs %d deliveries %d, pending with %q; want 1 run on the 2nd delivery, nothing pending", runs.Load(), deliveries.Load(), holder)
	}
}

func testHeartbeatKeepsALongJobFromBeingReclaimed(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	var runs atomic.Int64
	release := make(chan struct{})
	h := func(ctx context.Context, j *Job) error {
		runs.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	clockA := clockwork.NewFakeClock()
	a := start(t, q, ConsumerOptions{Name: "a", Workers: 1, Block: 50 * time.Millisecond, Clock: clockA}, h)
	id := enqueue(t, q, Normal, "long")
	testenv.WaitFor(t, 15*time.Second, "the job to start", func() bool { return runs.Load() == 1 })
	claimIdle := a.Options().ClaimIdle
	age(t, q, Normal, id, claimIdle) // claim_idle has passed on Redis's clock ...
	blockUntil(t, clockA, 3)         // (a's reclaimer, the job's deadline and its heartbeat)
	clockA.Advance(claimIdle / 3)    // ... and a's heartbeat is due
	testenv.WaitFor(t, 15*time.Second, "the heartbeat to renew the job", func() bool { _, idle := pending(t, q, Normal, id); return idle < claimIdle })
	clockB := clockwork.NewFakeClock()
	start(t, q, ConsumerOptions{Name: "b", Workers: 1, Block: 50 * time.Millisecond, Clock: clockB}, h)
	blockUntil(t, clockB, 1) // b's first reclaim has run
	if holder, _ := pending(t, q, Normal, id); holder != "a" || runs.Load() != 1 {
		t.Fatalf("a running job was reclaimed: held by %q, %d runs", holder, runs.Load())
	}
	close(release)
	testenv.WaitFor(t, 15*time.Second, "the job to finish", func() bool { return depth(stats(t, q)) == 0 })
	if runs.Load() != 1 {
		t.Fatalf("%d runs, want 1", runs.Load())
	}
}

// Issue 14: a job that arrived in the same XREADGROUP reply as another
// waits behind it without a heartbeat; when another instance reclaims it
// meanwhile, the first instance must not run it too.
func testBatchJobHeldPastClaimIdleIsNotRunTwice(t *testing.T, top testenv.Topology) {
	q := newGroupedQueue(t, top)
	ctx := context.Background()
	release := make(chan struct{})
	var ranByA, ranByB sync.Map
	var outcomes []string
	a := q.NewConsumer(ConsumerOptions{Name: "a", Clock: clockwork.NewFakeClock(),
		Observe: func(p Priority, outcome string, _ time.Duration) { outcomes = append(outcomes, string(p)+" "+outcome) }},
		func(ctx context.Context, j *Job) error {
			ranByA.Store(j.Fields["key"], true)
			if j.Fields["key"] == "first" {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil
		})
	a.init(ctx)
	t.Cleanup(a.Abort)
	enqueue(t, q, Urgent, "first")
	second := enqueue(t, q, Normal, "second")
	batch := a.read(-1) // one XREADGROUP over the three streams, as a worker's
	if len(batch) != 2 {
		t.Fatalf("the read returned %d jobs, want both", len(batch))
	}
	ran := make(chan struct{})
	go func() { a.runBatch(batch); close(ran) }()
	testenv.WaitFor(t, 15*time.Second, "a to run the first", func() bool { _, ok := ranByA.Load("first"); return ok })
	age(t, q, Normal, second, a.Options().ClaimIdle) // the second waited past claim_idle
	start(t, q, ConsumerOptions{Name: "b", Workers: 1, Block: 50 * time.Millisecond, Clock: clockwork.NewFakeClock()},
		func(ctx context.Context, j *Job) error { ranByB.Store(j.Fields["key"], true); return nil })
	testenv.WaitFor(t, 15*time.Second, "b to reclaim and run the second", func() bool { _, ok := ranByB.Load("second"); return ok })
	close(release)
	<-ran
	if _, ok := ranByA.Load("second"); ok || fmt.Sprint(outcomes) != "[urgent done normal lost]" {
		t.Fatalf("a's outcomes %v (ran the second: %v), want the second lost to b and not run", outcomes, ok)
	}
	testenv.WaitFor(t, 15*time.Second, "empty streams", func() bool { return depth(stats(t, q)) == 0 })
}

func testFailingJobEndsInDeadLetters(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	var runs atomic.Int64
	start(t, q, ConsumerOptions{Workers: 2, Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond,
		ReclaimInterval: 30 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, MaxDeliveries: 3},
		func(ctx context.Context, j *Job) error {
			runs.Add(1)
			return fmt.Errorf("backend said no (try %d)", j.Deliveries)
		})
	enqueue(t, q, Urgent, "doomed")
	testenv.WaitFor(t, 15*time.Second, "a dead letter", func() bool { return stats(t, q).DeadLetters == 1 })
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

// A job failing with an error that says when to try again (an open
// breaker) is retried no sooner than that, not after RetryBackoff: its
// deliveries last as long as the outage they wait out. (A lower bound only:
// a loaded machine can make the retry later, never earlier.)
func testRetryWaitsOutTheErrorsRetryAfter(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	const retryAfter = 600 * time.Millisecond
	var runs []time.Time
	var mu sync.Mutex
	start(t, q, ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond, ClaimIdle: 2 * time.Second,
		ReclaimInterval: 30 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, MaxDeliveries: 3},
		func(ctx context.Context, j *Job) error {
			mu.Lock()
			defer mu.Unlock()
			runs = append(runs, time.Now())
			if len(runs) == 1 {
				return fault.New(http.StatusServiceUnavailable, "backend_unavailable", "breaker open", fault.Retry(retryAfter))
			}
			return nil
		})
	enqueue(t, q, Urgent, "waits")
	testenv.WaitFor(t, 15*time.Second, "the retry", func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if gap := runs[1].Sub(runs[0]); gap < retryAfter {
		t.Fatalf("retried after %v, before the error's Retry-After %v", gap, retryAfter)
	}
}

func testPermanentErrorIsDeadAtOnce(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	var runs atomic.Int64
	start(t, q, ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond}, func(ctx context.Context, j *Job) error {
		runs.Add(1)
		return Permanent(errors.New("session webhook expired"))
	})
	enqueue(t, q, Normal, "p")
	testenv.WaitFor(t, 15*time.Second, "a dead letter", func() bool { return stats(t, q).DeadLetters == 1 })
	if runs.Load() != 1 {
		t.Fatalf("runs %d", runs.Load())
	}
}

func testDrainFinishesInFlightJobs(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	var done atomic.Int64
	started, release := make(chan struct{}, 1), make(chan struct{})
	c := start(t, q, ConsumerOptions{Workers: 1, Block: time.Second}, func(ctx context.Context, j *Job) error {
		started <- struct{}{}
		<-release
		done.Add(1)
		return nil
	})
	enqueue(t, q, Normal, "in-flight")
	<-started
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopped <- c.Stop(ctx)
	}()
	testenv.WaitFor(t, 15*time.Second, "the drain to begin", c.isStopping)
	close(release) // the job finishes during the drain
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if done.Load() != 1 || depth(stats(t, q)) != 0 {
		t.Fatalf("in-flight job not finished by the drain: done %d, %+v", done.Load(), stats(t, q))
	}
	enqueue(t, q, Normal, "after")
	if st := stats(t, q); done.Load() != 1 || st.Streams[1].Pending != 0 || st.Streams[1].Lag != 1 {
		t.Fatalf("a stopped consumer took a job: done %d, %+v", done.Load(), st)
	}
}

func testDrainPastItsGraceAbandonsTheJob(t *testing.T, top testenv.Topology) {
	q := newQueue(t, top)
	started := make(chan struct{}, 1)
	var outcome atomic.Value
	c := start(t, q, ConsumerOptions{Name: "slow", Workers: 1, Block: time.Second,
		Observe: func(_ Priority, o string, _ time.Duration) { outcome.Store(o) }},
		func(ctx context.Context, j *Job) error {
			started <- struct{}{}
			<-ctx.Done() // longer than any grace
			return ctx.Err()
		})
	id := enqueue(t, q, Normal, "slow")
	<-started
	ended, cancel := context.WithCancel(context.Background())
	cancel() // no grace at all
	err := c.Stop(ended)
	if err == nil || !strings.Contains(err.Error(), "1 jobs still running") {
		t.Fatalf("Stop: %v, want the abandoned job named", err)
	}
	if holder, _ := pending(t, q, Normal, id); holder != "slow" || outcome.Load() != OutcomeAbandoned {
		t.Fatalf("the job is held by %q with outcome %v, want still pending with the stopped consumer, abandoned", holder, outcome.Load())
	}
}

func testFairEveryLetsBatchThroughAnUrgentFlood(t *testing.T, top testenv.Topology) {
	q := newGroupedQueue(t, top)
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
	testenv.WaitFor(t, 15*time.Second, "5 jobs", func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 5 })
	if fmt.Sprint(order) != "[u0 b0 u1 u2 u3]" {
		t.Fatalf("order %v: every 2nd take should look at batch first", order)
	}
}

// Every script of the queue runs on a real Cluster and keeps to the
// queue's slot (Redis refuses one that reaches across slots).
func TestScriptsStayOnOneSlot(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	rdb := c.Client()
	check := testenv.CheckSlots(t, rdb)
	q := New(rdb, "bf", 0)
	var runs atomic.Int64
	start(t, q, ConsumerOptions{Workers: 1, Block: 50 * time.Millisecond, ClaimIdle: 300 * time.Millisecond,
		ReclaimInterval: 30 * time.Millisecond, RetryBackoff: 20 * time.Millisecond},
		func(ctx context.Context, j *Job) error {
			if runs.Add(1) == 1 {
				return errors.New("fail once: a retry is scheduled (touch) and reclaimed")
			}
			return nil
		})
	enqueue(t, q, Normal, "slots")
	testenv.WaitFor(t, 15*time.Second, "the retried job to finish", func() bool { return runs.Load() == 2 && depth(stats(t, q)) == 0 })
	for name, sc := range map[string]*redis.Script{"enqueue": enqueueScript, "take": takeScript, "touch": touchScript, "reclaim": reclaimScript} {
		if !check.Ran(sc.Hash()) {
			t.Errorf("the %s script never ran on the Cluster", name)
		}
	}
}
