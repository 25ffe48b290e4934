package main

import (
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// newRedis returns the client of the configured topology — a standalone
// server, a Sentinel set or a Cluster — traced with OpenTelemetry when
// tracing is on.
func newRedis(c config.RedisConfig, instance string, tracing bool) (redis.UniversalClient, error) {
	tlsConfig, err := c.TLSConfig()
	if err != nil {
		return nil, err
	}
	opts := &redis.UniversalOptions{
		Addrs:            c.Endpoints(),
		IsClusterMode:    c.Topology() == config.Cluster,
		MasterName:       c.MasterName,
		Username:         c.Username,
		Password:         c.Password,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
		TLSConfig:        tlsConfig,
		ClientName:       instance,
		PoolSize:         c.PoolSize,
		DialTimeout:      c.DialTimeout,
		// One dial per attempt: while Redis is down a turn should fail
		// over (503, nginx tries the next instance) in milliseconds, not
		// after go-redis's default five dials per attempt.
		DialerRetries: 1,
		ReadTimeout:   c.ReadTimeout,
		WriteTimeout:  c.WriteTimeout,
		MaxRetries:    c.MaxRetries,
	}
	rdb := redis.NewUniversalClient(opts)
	if tracing {
		// Only when traces are exported: the hook formats every command
		// and walks the stack even for spans nobody records, a tenth of
		// a turn's CPU. Statements stay out of spans: they hold messages.
		_ = redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false))
	}
	return rdb, nil
}
