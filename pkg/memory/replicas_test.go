package memory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

// With WaitReplicas a commit waits for the replicas in its own round trip,
// and says so when they do not confirm: the turn is written, and a repeat
// of the request replays it once the replicas have it.
func TestWaitReplicasConfirmsTheCommit(t *testing.T) {
	type setup struct {
		rdb redis.UniversalClient
		// replica is the replica of the conversation's master.
		replica func(conv string) *testenv.Redis
		check   *testenv.SlotCheck
	}
	setups := map[string]func(t *testing.T) setup{
		"sentinel": func(t *testing.T) setup {
			s := testenv.StartSentinel(t, testenv.SentinelOptions{})
			return setup{s.Client(), func(string) *testenv.Redis { return s.Data[1] }, nil}
		},
		"cluster": func(t *testing.T) setup {
			c := testenv.StartCluster(t, testenv.ClusterOptions{Replicas: 1})
			rdb := c.Client()
			return setup{rdb, func(conv string) *testenv.Redis {
				m := c.MasterOf("bf:{" + conv + "}:queue")
				for i, mm := range c.Masters {
					if mm == m {
						return c.Replicas[i][0]
					}
				}
				return nil
			}, testenv.CheckSlots(t, rdb)}
		},
	}
	for name, start := range setups {
		t.Run(name, func(t *testing.T) {
			su := start(t)
			s := newStore(t, su.rdb, Options{WaitReplicas: 1, WaitReplicasTimeout: 200 * time.Millisecond})
			ctx := context.Background()
			if _, err := runTurn(t, s, "c2c:w", "warm", "x"); err != nil {
				t.Fatal(err)
			}
			calls := testenv.CountRoundTrips(su.rdb)
			if _, err := runTurn(t, s, "c2c:w", "counted", "y"); err != nil {
				t.Fatal(err)
			}
			if n := calls.Load(); n != 2 {
				t.Fatalf("a turn with wait_replicas took %d round trips, want 2", n)
			}
			turn, err := s.Begin(ctx, Request{Conversation: "c2c:w", ID: "put", Fingerprint: "z"})
			if err != nil {
				t.Fatal(err)
			}
			if err := turn.Commit(ctx, "z", "a", time.Now(), nil, &Put{Key: "bf:cache:wait", Value: []byte("v"), TTL: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if v := su.rdb.Get(ctx, "bf:cache:wait").Val(); v != "v" {
				t.Fatalf("the put beside a waiting commit wrote %q", v)
			}
			replica := su.replica("c2c:w")
			replica.Stop()
			_, err = runTurn(t, s, "c2c:w", "unconfirmed", "u")
			if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("commit with the replica down: %v, want ErrNotReplicated", err)
			}
			if _, err := s.Begin(ctx, Request{Conversation: "c2c:w", ID: "unconfirmed", Fingerprint: "u"}); !errors.Is(err, ErrNotReplicated) {
				t.Fatalf("repeat of the unconfirmed request, replica still down: %v, want ErrNotReplicated, not an unconfirmed replay", err)
			}
			replica.Start()
			deadline := time.Now().Add(30 * time.Second)
			for {
				again, err := s.Begin(ctx, Request{Conversation: "c2c:w", ID: "unconfirmed", Fingerprint: "u"})
				if err == nil {
					if again.Replay == nil || again.Replay.Turn != 4 {
						t.Fatalf("repeat of the unconfirmed request: %+v; want a replay of turn 4", again)
					}
					break
				}
				if !errors.Is(err, ErrNotReplicated) || time.Now().After(deadline) {
					t.Fatalf("repeat once the replica is back: %v", err)
				}
			}
			if su.check != nil {
				for name, sc := range map[string]*redis.Script{"acquire": acquireScript, "commit": commitScript, "confirm": confirmScript} {
					if !su.check.Ran(sc.Hash()) {
						t.Errorf("the %s script never ran on the Cluster", name)
					}
				}
			}
		})
	}
}

// BenchmarkCommitWaitReplicas is the cost of redis.wait_replicas: a turn
// (Begin + Commit) on a master with one replica, on loopback, without and
// with WAIT 1 in the commit's round trip.
func BenchmarkCommitWaitReplicas(b *testing.B) {
	master := testenv.StartRedis(b)
	testenv.StartRedisWith(b, testenv.RedisOptions{Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}})
	rdb := master.Client()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Wait(context.Background(), 1, 100*time.Millisecond).Val() < 1 {
		if time.Now().After(deadline) {
			b.Fatal("the replica never connected")
		}
	}
	for _, n := range []int{0, 1} {
		b.Run(fmt.Sprint("wait_replicas=", n), func(b *testing.B) {
			s := New(context.Background(), rdb, Options{WaitReplicas: n})
			defer s.Close()
			ctx := context.Background()
			conv := fmt.Sprintf("c2c:bench%d-%d", n, time.Now().UnixNano())
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				turn, err := s.Begin(ctx, Request{Conversation: conv, ID: strconv.Itoa(i), Fingerprint: "m"})
				if err != nil {
					b.Fatal(err)
				}
				if err := turn.Commit(ctx, "question", "answer", time.Now(), []byte("{}"), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
