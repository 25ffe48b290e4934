package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// A Redis failover during a steady stream of chat turns over two
// instances: errors only inside the failover window, no turn doubled in
// memory, the fleet recovers by itself, and what was lost is what the
// memory package documents — with wait_replicas 0 only turns answered in
// the old master's last moments, with wait_replicas 1 none.
func TestFailoverDuringChatTurns(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a Redis master and waits for the failover")
	}
	// fail cuts the replicas off (paused, their links to the master
	// closed: they fall behind, as on a congested network), kills the
	// master, resumes the replicas, waits for promote to return the new
	// master and for it to stream to wait replicas, and returns the time
	// of the kill and of the new master's serving.
	fail := func(t *testing.T, master *Redis, replicas []*Redis, promote func() *Redis, wait int, more ...*Redis) (killed, served time.Time) {
		t.Cleanup(func() {
			if t.Failed() {
				for _, r := range append(append(replicas, master), more...) {
					t.Logf("log of %s:\n%s", r.Addr, r.Log())
				}
			}
		})
		for _, r := range replicas {
			r.Pause()
		}
		if err := master.Client().Do(context.Background(), "client", "kill", "type", "replica").Err(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(replicaLag) // the thing under test: writes the replicas will never see
		master.Stop()
		killed = time.Now()
		for _, r := range replicas {
			r.Resume()
		}
		promoted := promote()
		served = time.Now()
		testenv.WaitFor(t, time.Minute, "the new master's replicas", func() bool { return promoted.Replicated(wait) >= wait })
		return killed, served
	}
	cases := []struct {
		name  string
		wait  int
		start func(t *testing.T, wait int) (testenv.Topology, func() (killed, served time.Time))
	}{
		{"sentinel/wait_replicas=0", 0, func(t *testing.T, wait int) (testenv.Topology, func() (time.Time, time.Time)) {
			s := testenv.StartSentinel(t, testenv.SentinelOptions{DownAfter: 2 * time.Second})
			return s, func() (time.Time, time.Time) {
				return fail(t, s.Data[0], s.Data[1:], func() *Redis { return s.Master(s.Data[0], time.Minute) }, wait, s.Sentinels...)
			}
		}},
		{"sentinel/wait_replicas=1", 1, func(t *testing.T, wait int) (testenv.Topology, func() (time.Time, time.Time)) {
			// Two replicas: the promoted one keeps one to confirm commits.
			s := testenv.StartSentinel(t, testenv.SentinelOptions{Replicas: 2, DownAfter: 2 * time.Second})
			return s, func() (time.Time, time.Time) {
				return fail(t, s.Data[0], s.Data[1:], func() *Redis { return s.Master(s.Data[0], time.Minute) }, wait, s.Sentinels...)
			}
		}},
		{"cluster/wait_replicas=0", 0, func(t *testing.T, wait int) (testenv.Topology, func() (time.Time, time.Time)) {
			c := testenv.StartCluster(t, testenv.ClusterOptions{Replicas: 1, NodeTimeout: time.Second})
			return c, func() (time.Time, time.Time) {
				return fail(t, c.Masters[0], c.Replicas[0], func() *Redis { return c.Promoted(0, time.Minute) }, wait)
			}
		}},
		{"cluster/wait_replicas=1", 1, func(t *testing.T, wait int) (testenv.Topology, func() (time.Time, time.Time)) {
			c := testenv.StartCluster(t, testenv.ClusterOptions{Replicas: 2, NodeTimeout: time.Second})
			return c, func() (time.Time, time.Time) {
				return fail(t, c.Masters[0], c.Replicas[0], func() *Redis { return c.Promoted(0, time.Minute) }, wait)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			top, kill := tc.start(t, tc.wait)
			streamThroughFailover(t, top, kill, tc.wait)
		})
	}
}

// replicaLag is how far the replicas fall behind before the master dies.
const replicaLag = 300 * time.Millisecond

// Redis is a server of the test's topology.
type Redis = testenv.Redis

// attempt is one try of a chat request.
type attempt struct {
	conv, key, msg string
	status, turn   int
	code           string
	at             time.Time // when the answer came
}

// streamThroughFailover runs conversations of sequential turns against
// two instances, kills the master with kill (which returns when the
// topology serves again, with wait_replicas replicas), streams on for a
// while and checks the outcome.
func streamThroughFailover(t *testing.T, top testenv.Topology, kill func() (killed, served time.Time), waitReplicas int) {
	env := with(redisEnv(top), "BOT_MEMORY_LEASE", "1s", "BOT_MEMORY_MAX_ENTRIES", "100000",
		"BOT_REDIS_WAIT_REPLICAS", strconv.Itoa(waitReplicas))
	bots := []*instance{startBot(t, with(env, "INSTANCE_NAME", "a")), startBot(t, with(env, "INSTANCE_NAME", "b"))}
	const convs = 6
	var (
		mu       sync.Mutex
		attempts []attempt
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for c := range convs {
		wg.Go(func() {
			conv := fmt.Sprint("fo", c)
			for k := 0; ; k++ {
				a := attempt{conv: conv, key: fmt.Sprintf("%s-%d", conv, k), msg: fmt.Sprintf("%s message %d", conv, k)}
				for try := 0; ; try++ { // a client retries with the same key until answered
					select {
					case <-stop:
						return
					default:
					}
					res := post(t, bots[(k+try)%2].url+"/v1/chat", chatBody(conv, a.msg), "Idempotency-Key", a.key)
					a.status, a.turn, a.at, a.code = res.status, res.Turn, time.Now(), ""
					if res.Error != nil {
						a.code = res.Error.Code
					}
					mu.Lock()
					attempts = append(attempts, a)
					mu.Unlock()
					if res.status == 200 {
						break
					}
					time.Sleep(20 * time.Millisecond) // the thing under test: a client's pause before its retry
				}
				time.Sleep(10 * time.Millisecond) // the thing under test: the stream's pace
			}
		})
	}
	successes := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range attempts {
			if a.status == 200 {
				n++
			}
		}
		return n
	}
	testenv.WaitFor(t, time.Minute, "a steady stream", func() bool { return successes() >= 20*convs })
	lagFrom := time.Now()
	killed, served := kill()
	switched := time.Now()
	t.Logf("replicas cut off at -%v, master killed at +0, a replica promoted at +%v, with %d replicas at +%v",
		killed.Sub(lagFrom).Round(time.Millisecond), served.Sub(killed).Round(time.Millisecond), waitReplicas, switched.Sub(killed).Round(time.Millisecond))
	recovered := successes()
	testenv.WaitFor(t, time.Minute, "the stream to go on after the failover", func() bool { return successes() >= recovered+20*convs })
	// More of the stream, in which a late error would show: 40 more answered
	// turns per conversation (about a second).
	more := successes()
	testenv.WaitFor(t, time.Minute, "40 more answered turns per conversation", func() bool { return successes() >= more+40*convs })
	close(stop)
	wg.Wait()

	// Errors only inside the failover window, and answered as retryable.
	var firstErr, lastErr time.Time
	errs := map[string]int{}
	for _, a := range attempts {
		if a.status == 200 {
			continue
		}
		errs[fmt.Sprint(a.status, " ", a.code)]++
		if firstErr.IsZero() || a.at.Before(firstErr) {
			firstErr = a.at
		}
		if a.at.After(lastErr) {
			lastErr = a.at
		}
		if a.status != 503 && a.status != 409 {
			t.Errorf("%s: %d %s: not a retryable answer", a.key, a.status, a.code)
		}
	}
	if len(errs) > 0 {
		t.Logf("failover window: errors from +%v to +%v (%v long): %v", firstErr.Sub(killed).Round(time.Millisecond),
			lastErr.Sub(killed).Round(time.Millisecond), lastErr.Sub(firstErr).Round(time.Millisecond), errs)
		if firstErr.Before(lagFrom) || lastErr.After(switched.Add(2*time.Second)) {
			t.Errorf("errors outside the failover window: from the replicas' pause to +%v and 2 s for the clients to follow", switched.Sub(killed).Round(time.Millisecond))
		}
	} else {
		t.Log("failover window: no request failed")
	}

	// Memory: every turn once, in order; what was answered is there, or
	// was lost as documented.
	answered := map[string]attempt{}
	for _, a := range attempts {
		if a.status == 200 {
			answered[a.msg] = a
		}
	}
	var lost []attempt
	for c := range convs {
		conv := fmt.Sprint("fo", c)
		h := history(t, top, "api:default:session:"+conv)
		seen := map[string]bool{}
		for i, e := range h {
			if e.Turn != i/2+1 || e.Role != []string{"user", "assistant"}[i%2] {
				t.Fatalf("%s entry %d is turn %d %s: turns doubled or out of order", conv, i, e.Turn, e.Role)
			}
			if e.Role == "user" {
				if seen[e.Content] {
					t.Fatalf("%s holds %q twice", conv, e.Content)
				}
				seen[e.Content] = true
			}
		}
		for msg, a := range answered {
			if a.conv == conv && !seen[msg] {
				lost = append(lost, a)
			}
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].at.Before(lost[j].at) })
	if len(lost) == 0 {
		t.Logf("%d turns answered, none lost in the failover", len(answered))
	} else {
		t.Logf("%d turns answered, %d of them lost in the failover, answered from %+v to %+v", len(answered), len(lost),
			lost[0].at.Sub(killed).Round(time.Millisecond), lost[len(lost)-1].at.Sub(killed).Round(time.Millisecond))
	}
	for _, a := range lost {
		if waitReplicas > 0 {
			t.Errorf("%s (turn %d) was answered at %+v and lost, though wait_replicas %d confirmed it", a.key, a.turn, a.at.Sub(killed), waitReplicas)
		} else if a.at.Before(lagFrom.Add(-100*time.Millisecond)) || a.at.After(killed.Add(time.Second)) {
			t.Errorf("%s (turn %d) was answered at %+v and lost: only turns the replicas had not seen when the master died may be", a.key, a.turn, a.at.Sub(killed))
		}
	}
}
