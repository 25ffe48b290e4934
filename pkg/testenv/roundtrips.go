package testenv

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// CountRoundTrips counts from now on every round trip c makes to a Redis
// server: a command or a whole pipeline counts one. On a Cluster it counts
// per node: a pipeline whose commands live on two nodes is two round trips,
// sent in parallel. The client's own upkeep (CLUSTER SLOTS, COMMAND) is
// not counted.
func CountRoundTrips(c redis.UniversalClient) *atomic.Int64 {
	h := roundTrips{new(atomic.Int64)}
	if cc, ok := c.(*redis.ClusterClient); ok {
		cc.OnNewNode(func(node *redis.Client) { node.AddHook(h) })
		_ = cc.ForEachShard(context.Background(), func(_ context.Context, node *redis.Client) error {
			node.AddHook(h)
			return nil
		})
		return h.n
	}
	c.AddHook(h)
	return h.n
}

type roundTrips struct{ n *atomic.Int64 }

func (roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n != "cluster" && n != "command" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}
