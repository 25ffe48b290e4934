package registry_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

type turnKey struct{}

// turnTrips counts the round trips made for a context marked as a turn's.
type turnTrips struct{ n *atomic.Int64 }

func (turnTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h turnTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(turnKey{}) != nil {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h turnTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(turnKey{}) != nil {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// With the heartbeat beating as fast as it can on the same Redis client
// and gathering the turn's own metrics, a chat turn is still two round
// trips: the registry and the metrics add none to it.
func TestHeartbeatsAddNoRoundTripToATurn(t *testing.T) {
	rdb := testenv.StartRedis(t).Client()
	trips := turnTrips{new(atomic.Int64)}
	all := testenv.CountRoundTrips(rdb)
	rdb.AddHook(trips)
	metrics := prometheus.NewRegistry()
	store := memory.New(context.Background(), rdb, memory.Options{Registerer: metrics})
	t.Cleanup(func() { store.Close() })
	builtin, err := llm.NewBuiltin(llm.BuiltinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc := chat.New(store, builtin, chat.Options{CacheTTL: time.Minute, Registerer: metrics})
	reg := registry.New(rdb, registry.Options{Interval: time.Millisecond, TTL: time.Second})
	hb := reg.NewHeartbeat(registry.Source{Name: "bot", Gatherer: metrics, Ready: store.Check}, registry.HeartbeatOptions{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); hb.Run(ctx) }()
	defer func() { stop(); <-done }()
	turn := context.WithValue(context.Background(), turnKey{}, true)
	if _, err := svc.Turn(turn, chat.Request{UserID: "rt", ID: "warm", Message: "load the scripts"}); err != nil {
		t.Fatal(err)
	}
	before := all.Load()
	for i := range 20 {
		trips.n.Store(0)
		if _, err := svc.Turn(turn, chat.Request{UserID: "rt", ID: fmt.Sprint(i), Message: fmt.Sprint("turn ", i)}); err != nil {
			t.Fatal(err)
		}
		if n := trips.n.Load(); n != 2 {
			t.Fatalf("turn %d: %d round trips, want 2", i, n)
		}
	}
	if all.Load()-before <= 40 {
		t.Fatalf("the heartbeat made no round trip of its own meanwhile (%d in all): it was not running", all.Load()-before)
	}
}
