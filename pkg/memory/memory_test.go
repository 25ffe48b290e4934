package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

func newStore(t *testing.T, rdb redis.UniversalClient, opts Options) *Store {
	t.Helper()
	s := New(context.Background(), rdb, opts)
	t.Cleanup(func() { s.Close() })
	return s
}

func runTurn(t *testing.T, s *Store, conv, id, msg string) (*Turn, error) {
	t.Helper()
	ctx := context.Background()
	turn, err := s.Begin(ctx, Request{Conversation: conv, ID: id, Fingerprint: msg})
	if err != nil || turn.Replay != nil {
		return turn, err
	}
	reply := fmt.Sprintf("reply %d to %s (saw %d)", turn.Number, msg, len(turn.History))
	return turn, turn.Commit(ctx, msg, reply, time.Now(), []byte(reply), nil)
}

// begin begins turn id of conv (fingerprint "x").
func begin(t *testing.T, s *Store, conv, id string) *Turn {
	t.Helper()
	turn, err := s.Begin(context.Background(), Request{Conversation: conv, ID: id, Fingerprint: "x"})
	if err != nil {
		t.Fatal(err)
	}
	return turn
}

// The behaviour tests run on every topology: a standalone server, a
// 3-master Cluster and a Sentinel set, one deployment each, shared by the
// tests (each uses conversations of its own).
func TestOnEveryTopology(t *testing.T) {
	testenv.Suite(t,
		testenv.TopologyTest{Name: "TurnsContinueAndTrim", Run: testTurnsContinueAndTrim},
		testenv.TopologyTest{Name: "RepeatedRequestReplays", Run: testRepeatedRequestReplays},
		testenv.TopologyTest{Name: "ConcurrentRepeatRunsOnce", Run: testConcurrentRepeatRunsOnce},
		testenv.TopologyTest{Name: "TurnsRunOneAtATimeInOrder", Run: testTurnsRunOneAtATimeInOrder},
		testenv.TopologyTest{Name: "WaitersAreServedInArrivalOrder", Run: testWaitersAreServedInArrivalOrder},
		testenv.TopologyTest{Name: "DeadHolderBlocksAtMostTheLease", Run: testDeadHolderBlocksAtMostTheLease},
		testenv.TopologyTest{Name: "RenewalKeepsSlowTurnAlive", Run: testRenewalKeepsSlowTurnAlive},
		testenv.TopologyTest{Name: "AbortLetsTheRequestRunAgain", Run: testAbortLetsTheRequestRunAgain},
		testenv.TopologyTest{Name: "PeekAndPutShareTheRoundTrips", Run: testPeekAndPutShareTheRoundTrips},
		testenv.TopologyTest{Name: "ScriptsReloadAfterFlush", Run: testScriptsReloadAfterFlush},
		testenv.TopologyTest{Name: "TurnIsTwoRoundTrips", Run: testTurnIsTwoRoundTrips},
		testenv.TopologyTest{Name: "WakeUpsReachTheWaiter", Run: testWakeUpsReachTheWaiter},
	)
}

func testTurnsContinueAndTrim(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{MaxEntries: 6})
	for i := 1; i <= 5; i++ {
		turn, err := runTurn(t, s, "c2c:1", fmt.Sprint("req", i), fmt.Sprint("msg", i))
		if err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
		if turn.Number != i {
			t.Fatalf("turn %d got number %d", i, turn.Number)
		}
		if want := min(2*(i-1), 6); len(turn.History) != want {
			t.Fatalf("turn %d saw %d entries, want %d", i, len(turn.History), want)
		}
	}
	h, err := s.History(context.Background(), "c2c:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 6 {
		t.Fatalf("history holds %d entries, want 6", len(h))
	}
	for i, e := range h {
		wantTurn, wantRole := 3+i/2, []string{"user", "assistant"}[i%2]
		if e.Turn != wantTurn || e.Role != wantRole {
			t.Fatalf("entry %d = %+v, want turn %d role %s", i, e, wantTurn, wantRole)
		}
	}
	ttl := rdb.PTTL(context.Background(), s.HistoryKey("c2c:1")).Val()
	if ttl <= 0 || ttl > 30*time.Minute {
		t.Fatalf("history TTL %v, want the 30m idle TTL", ttl)
	}
}

func testRepeatedRequestReplays(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	first, err := runTurn(t, s, "c2c:2", "same", "hello")
	if err != nil {
		t.Fatal(err)
	}
	again, err := runTurn(t, s, "c2c:2", "same", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if again.Replay == nil || again.Replay.Turn != first.Number || string(again.Replay.Payload) != "reply 1 to hello (saw 0)" {
		t.Fatalf("repeat = %+v, want a replay of turn 1", again.Replay)
	}
	if _, err := runTurn(t, s, "c2c:2", "same", "other text"); !errors.Is(err, ErrConflict) {
		t.Fatalf("reuse with another message: err %v, want ErrConflict", err)
	}
	h, _ := s.History(context.Background(), "c2c:2")
	if len(h) != 2 {
		t.Fatalf("history holds %d entries, want 2", len(h))
	}
}

// Two stores stand for two instances; the same request reaches both at once.
func testConcurrentRepeatRunsOnce(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	stores := []*Store{newStore(t, rdb, Options{}), newStore(t, rdb, Options{})}
	var wg sync.WaitGroup
	payloads := make([]string, 8)
	var commits sync.Map
	for i := range payloads {
		wg.Go(func() {
			s := stores[i%2]
			turn, err := s.Begin(context.Background(), Request{Conversation: "c2c:3", ID: "dup", Fingerprint: "hi"})
			if err != nil {
				t.Error(err)
				return
			}
			if turn.Replay != nil {
				payloads[i] = string(turn.Replay.Payload)
				return
			}
			time.Sleep(50 * time.Millisecond) // the thing under test: a slow backend keeps the others waiting
			commits.Store(i, true)
			payloads[i] = fmt.Sprint("reply from ", i)
			if err := turn.Commit(context.Background(), "hi", payloads[i], time.Now(), []byte(payloads[i]), nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	commits.Range(func(any, any) bool { n++; return true })
	if n != 1 {
		t.Fatalf("%d commits, want 1", n)
	}
	for i, p := range payloads {
		if p != payloads[0] {
			t.Fatalf("request %d got %q, request 0 got %q", i, p, payloads[0])
		}
	}
	h, _ := stores[0].History(context.Background(), "c2c:3")
	if len(h) != 2 {
		t.Fatalf("history holds %d entries, want 2", len(h))
	}
}

func testTurnsRunOneAtATimeInOrder(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	stores := []*Store{newStore(t, rdb, Options{}), newStore(t, rdb, Options{})}
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	running := 0
	numbers := make(map[int]bool)
	for i := range n {
		wg.Go(func() {
			s := stores[i%2]
			ctx := context.Background()
			turn, err := s.Begin(ctx, Request{Conversation: "c2c:4", ID: fmt.Sprint(i), Fingerprint: fmt.Sprint(i)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			running++
			if running != 1 {
				t.Errorf("%d turns run at once", running)
			}
			if numbers[turn.Number] || len(turn.History) != 2*(turn.Number-1) {
				t.Errorf("turn %d: duplicate number or %d history entries", turn.Number, len(turn.History))
			}
			numbers[turn.Number] = true
			running--
			mu.Unlock()
			if err := turn.Commit(ctx, fmt.Sprint("q", i), fmt.Sprint("a", i), time.Now(), nil, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := 1; i <= n; i++ {
		if !numbers[i] {
			t.Fatalf("turn %d never ran", i)
		}
	}
}

func testWaitersAreServedInArrivalOrder(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	ctx := context.Background()
	holder := begin(t, s, "c2c:5", "first")
	order := make(chan int, 5)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			turn, err := s.Begin(ctx, Request{Conversation: "c2c:5", ID: fmt.Sprint(i), Fingerprint: "x"})
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			_ = turn.Commit(ctx, "q", "a", time.Now(), nil, nil)
		})
		waitForQueue(t, rdb, s, "c2c:5", int64(i+2)) // before the next one arrives
	}
	if err := holder.Commit(ctx, "q", "a", time.Now(), nil, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("waiter %d ran in place %d", got, want)
		}
		want++
	}
}

// abandon makes a turn behave as if its process had been killed: no more
// renewals, no commit, no abort.
func abandon(turn *Turn) {
	turn.mu.Lock()
	defer turn.mu.Unlock()
	turn.done = true
	turn.timer.Stop()
}

func testDeadHolderBlocksAtMostTheLease(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	const lease = 500 * time.Millisecond
	s := newStore(t, rdb, Options{Lease: lease, WaitTimeout: 20 * lease})
	dead := begin(t, s, "c2c:6", "killed")
	abandon(dead)
	start := time.Now()
	next, err := runTurn(t, s, "c2c:6", "next", "y")
	if err != nil {
		t.Fatalf("next turn after a dead holder: %v (waited %v)", err, time.Since(start))
	}
	t.Logf("next turn waited %v behind a dead holder (lease %v)", time.Since(start), lease)
	if next.Number != 1 {
		t.Fatalf("next turn is number %d, want 1: the dead turn wrote nothing", next.Number)
	}
	// The dead turn's request may be retried and now runs.
	retry, err := runTurn(t, s, "c2c:6", "killed", "x")
	if err != nil || retry.Replay != nil || retry.Number != 2 {
		t.Fatalf("retry of the dead request: %+v, %v; want a fresh turn 2", retry, err)
	}
}

func testRenewalKeepsSlowTurnAlive(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	const lease = 300 * time.Millisecond
	s := newStore(t, rdb, Options{Lease: lease})
	ctx := context.Background()
	slow := begin(t, s, "c2c:7", "slow")
	got := make(chan *Turn)
	go func() {
		turn, _ := runTurn(t, s, "c2c:7", "behind", "y")
		got <- turn
	}()
	// The lease runs out on Redis's clock (no clock to inject there) unless
	// the store renews it; only renewal keeps the turn.
	time.Sleep(4 * lease) // the thing under test: longer than the lease
	if err := slow.Commit(ctx, "x", "slow reply", time.Now(), nil, nil); err != nil {
		t.Fatalf("slow turn lost its lease: %v", err)
	}
	if turn := <-got; turn == nil || turn.Number != 2 {
		t.Fatalf("turn behind the slow one: %+v, want number 2", turn)
	}
}

func testAbortLetsTheRequestRunAgain(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	turn := begin(t, s, "c2c:8", "a")
	turn.Abort()
	again, err := runTurn(t, s, "c2c:8", "a", "x")
	if err != nil || again.Replay != nil || again.Number != 1 {
		t.Fatalf("after abort: %+v, %v; want a fresh turn 1", again, err)
	}
}

func testPeekAndPutShareTheRoundTrips(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	ctx := context.Background()
	rdb.Set(ctx, "cache:hello", "cached reply", time.Minute)
	turn, err := s.Begin(ctx, Request{Conversation: "c2c:9", ID: "p", Fingerprint: "x", Peek: "cache:hello"})
	if err != nil {
		t.Fatal(err)
	}
	if string(turn.Peeked) != "cached reply" {
		t.Fatalf("peeked %q", turn.Peeked)
	}
	if err := turn.Commit(ctx, "x", "y", time.Now(), nil, &Put{Key: "cache:new", Value: []byte("v"), TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if v := rdb.Get(ctx, "cache:new").Val(); v != "v" {
		t.Fatalf("put wrote %q", v)
	}
}

func testScriptsReloadAfterFlush(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	if _, err := runTurn(t, s, "c2c:10", "1", "x"); err != nil {
		t.Fatal(err)
	}
	rdb.ScriptFlush(context.Background())
	if turn, err := runTurn(t, s, "c2c:10", "2", "y"); err != nil || turn.Number != 2 {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v", turn, err)
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s := newStore(t, rdb, Options{})
	r.Stop()
	if _, err := runTurn(t, s, "c2c:11", "1", "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	r.Start()
	if turn, err := runTurn(t, s, "c2c:11", "1", "x"); err != nil || turn.Number != 1 {
		t.Fatalf("after Redis came back: %+v, %v", turn, err)
	}
}

// The hot path is two round trips: count the commands Redis ran.
func testTurnIsTwoRoundTrips(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	if _, err := runTurn(t, s, "c2c:12", "warm", "x"); err != nil { // loads the scripts
		t.Fatal(err)
	}
	calls := testenv.CountRoundTrips(rdb)
	if _, err := runTurn(t, s, "c2c:12", "counted", "y"); err != nil {
		t.Fatal(err)
	}
	if calls := calls.Load(); calls != 2 {
		t.Fatalf("a turn took %d round trips, want 2", calls)
	}
}

// A wake-up SPUBLISHed on a conversation's channel reaches the turns of
// this process that wait on it, on the node that holds the slot.
func testWakeUpsReachTheWaiter(t *testing.T, top testenv.Topology) {
	rdb := top.UniversalClient()
	s := newStore(t, rdb, Options{})
	ctx := context.Background()
	for _, conv := range []string{"c2c:w1", "c2c:w2", "group:w3"} {
		ch := s.wakeChannel(conv)
		a, b := s.waker.register("ticket-"+conv), s.waker.register("ticket-"+conv)
		release := s.waker.subscribe(ctx, ch)
		if err := rdb.SPublish(ctx, ch, "ticket-"+conv).Err(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []chan struct{}{a, b} {
			select {
			case <-c:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: the wake-up on %s never arrived", top.Name(), ch)
			}
		}
		release()
		s.waker.unregister("ticket-"+conv, a)
		s.waker.unregister("ticket-"+conv, b)
	}
	if n := len(s.waker.subs); n != 0 {
		t.Fatalf("%d subscriptions left after every waiter released", n)
	}
}

// Every script of the package runs on a real Cluster, and each keeps to
// its conversation's slot (Redis refuses a script that reaches across
// slots; testenv.SlotCheck also checks the keys it is given).
func TestScriptsStayOnOneSlot(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	rdb := c.Client()
	check := testenv.CheckSlots(t, rdb)
	const lease = 300 * time.Millisecond
	s := newStore(t, rdb, Options{Lease: lease})
	ctx := context.Background()
	for i := range 6 { // conversations on every master
		conv := fmt.Sprint("c2c:slot", i)
		holder, err := s.Begin(ctx, Request{Conversation: conv, ID: "hold", Fingerprint: "x", Peek: "bf:cache:elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		behind := make(chan error, 1)
		go func() { _, err := runTurn(t, s, conv, "behind", "y"); behind <- err }()
		waitForQueue(t, rdb, s, conv, 2)
		time.Sleep(lease) // the thing under test: the holder renews its lease meanwhile
		if err := holder.Commit(ctx, "x", "reply", time.Now(), []byte("r"), &Put{Key: "bf:cache:other", Value: []byte("v"), TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := <-behind; err != nil {
			t.Fatal(err)
		}
		aborted, err := s.Begin(ctx, Request{Conversation: conv, ID: "abort", Fingerprint: "z"})
		if err != nil {
			t.Fatal(err)
		}
		aborted.Abort()
	}
	for name, sc := range map[string]*redis.Script{"acquire": acquireScript, "commit": commitScript, "abort": abortScript, "renew": renewScript} {
		if !check.Ran(sc.Hash()) {
			t.Errorf("the %s script never ran on the Cluster", name)
		}
	}
}

// waitForQueue waits until conv's queue holds n tickets.
func waitForQueue(t *testing.T, rdb redis.UniversalClient, s *Store, conv string, n int64) {
	t.Helper()
	var queued int64
	if !testenv.Eventually(10*time.Second, func() bool {
		queued = rdb.LLen(context.Background(), s.keys(conv, "")[kQueue]).Val()
		return queued == n
	}) {
		t.Fatalf("%s never had %d tickets queued (last seen: %d)", conv, n, queued)
	}
}
