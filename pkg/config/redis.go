package config

import (
	"net"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Addresses are the Redis servers: Addrs, or Host:Port.
func (c RedisConfig) Addresses() []string {
	if len(c.Addrs) > 0 {
		return c.Addrs
	}
	return []string{net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
}

// Options are the client options of a standalone, Sentinel (master_name) or
// Cluster (several addrs) client named name; the bot and botctl share them.
func (c RedisConfig) Options(name string) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:       c.Addresses(),
		MasterName:  c.MasterName,
		Password:    c.Password,
		DB:          c.DB,
		ClientName:  name,
		PoolSize:    c.PoolSize,
		DialTimeout: c.DialTimeout,
		// One dial per attempt: while Redis is down a turn should fail
		// over (503, nginx tries the next instance) in milliseconds, not
		// after go-redis's default five dials per attempt.
		DialerRetries: 1,
		ReadTimeout:   c.ReadTimeout,
		WriteTimeout:  c.WriteTimeout,
		MaxRetries:    c.MaxRetries,
	}
}
