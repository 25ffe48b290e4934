package main

import (
	"context"
	"errors"

	"github.com/botfleet/botfleet/pkg/config"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// newRedis returns the client of the configured topology — a standalone
// server, a Sentinel set or a Cluster — traced with OpenTelemetry when
// tracing is on.
func newRedis(c config.RedisConfig, instance string, tracing bool) (redis.UniversalClient, error) {
	opts, err := c.Options(instance)
	if err != nil {
		return nil, err
	}
	rdb := redis.NewUniversalClient(opts)
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		cc.AddHook(reloadOnNetError{cc})
	}
	if tracing {
		// Only when traces are exported: the hook formats every command
		// and walks the stack even for spans nobody records, a tenth of
		// a turn's CPU. Statements stay out of spans: they hold messages.
		_ = redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false))
	}
	return rdb, nil
}

// reloadOnNetError makes a Cluster client look its slots up again when a
// node cannot be reached. go-redis reloads them on MOVED, READONLY or
// CLUSTERDOWN, but not when a dead master refuses connections, so after a
// failover it went on dialling the dead master until something else made
// it reload: in TestFailoverDuringChatTurns/cluster the conversations of
// the failed shard kept failing about 2.4 s after their replica had been
// promoted. ReloadState is lazy and rate-limited (one reload per 200 ms).
type reloadOnNetError struct{ c *redis.ClusterClient }

func (reloadOnNetError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnNetError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { return h.check(ctx, next(ctx, cmd)) }
}

func (h reloadOnNetError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { return h.check(ctx, next(ctx, cmds)) }
}

func (h reloadOnNetError) check(ctx context.Context, err error) error {
	var reply redis.Error
	if err != nil && !errors.As(err, &reply) && ctx.Err() == nil {
		h.c.ReloadState(ctx)
	}
	return err
}
