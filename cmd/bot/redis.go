package main

import (
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// newRedis returns the configured client, traced with OpenTelemetry when
// tracing is on.
func newRedis(c config.RedisConfig, instance string, tracing bool) redis.UniversalClient {
	rdb := redis.NewUniversalClient(c.Options(instance))
	if tracing {
		// Only when traces are exported: the hook formats every command
		// and walks the stack even for spans nobody records, a tenth of
		// a turn's CPU. Statements stay out of spans: they hold messages.
		_ = redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false))
	}
	return rdb
}
