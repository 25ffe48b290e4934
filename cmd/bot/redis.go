package main

import (
	"net"
	"strconv"

	"github.com/botfleet/botfleet/pkg/config"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
)

// newRedis returns a standalone, Sentinel (master_name) or Cluster (several
// addrs) client, traced with OpenTelemetry when tracing is on.
func newRedis(c config.RedisConfig, instance string, tracing bool) redis.UniversalClient {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:       redisAddrs(c),
		MasterName:  c.MasterName,
		Password:    c.Password,
		DB:          c.DB,
		ClientName:  instance,
		PoolSize:    c.PoolSize,
		DialTimeout: c.DialTimeout,
		// One dial per attempt: while Redis is down a turn should fail
		// over (503, nginx tries the next instance) in milliseconds, not
		// after go-redis's default five dials per attempt.
		DialerRetries: 1,
		ReadTimeout:   c.ReadTimeout,
		WriteTimeout:  c.WriteTimeout,
		MaxRetries:    c.MaxRetries,
	})
	if tracing {
		// Only when traces are exported: the hook formats every command
		// and walks the stack even for spans nobody records, a tenth of
		// a turn's CPU. Statements stay out of spans: they hold messages.
		_ = redisotel.InstrumentTracing(rdb, redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false))
	}
	return rdb
}

func redisAddrs(c config.RedisConfig) []string {
	if len(c.Addrs) > 0 {
		return c.Addrs
	}
	return []string{net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
}
