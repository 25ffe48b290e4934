package config

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/botfleet/botfleet/pkg/confparse"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/redis/go-redis/v9"
)

// The Redis topologies, as RedisConfig.Topology names them.
const (
	Standalone = "standalone"
	Sentinel   = "sentinel"
	Cluster    = "cluster"
)

// Topology is the deployment the keys describe: Cluster when addrs are
// set, Sentinel when master_name is, else a standalone server at host:port.
func (r RedisConfig) Topology() string {
	switch {
	case len(r.Addrs) > 0:
		return Cluster
	case r.MasterName != "":
		return Sentinel
	}
	return Standalone
}

// Endpoints are the addresses a client starts from: the Cluster's nodes,
// the sentinels, or host:port.
func (r RedisConfig) Endpoints() []string {
	switch r.Topology() {
	case Cluster:
		return r.Addrs
	case Sentinel:
		return r.Sentinels
	}
	return []string{net.JoinHostPort(r.Host, strconv.Itoa(r.Port))}
}

// TLSConfig returns the client TLS configuration of redis.tls, nil when
// TLS is off. Its errors name the key.
func (r RedisConfig) TLSConfig() (*tls.Config, error) {
	t := r.TLS
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file: no PEM certificate in %s", t.CAFile)
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("redis.tls.cert_file and redis.tls.key_file: set both for a client certificate, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// validateRedis checks the topology, addresses and TLS keys.
func (c *Config) validateRedis(bad func(key, format string, args ...any) error) error {
	r := c.Redis
	t := r.TLS
	switch {
	case r.Port < 1 || r.Port > 65535:
		return bad("redis.port", "must be 1..65535, got %d", r.Port)
	case r.DB < 0:
		return bad("redis.db", "must not be negative, got %d", r.DB)
	case len(r.Addrs) > 0 && r.MasterName != "":
		return bad("redis.addrs", "are a Cluster's nodes and redis.master_name a Sentinel master: set one; Sentinel's addresses go in redis.sentinels")
	case r.MasterName != "" && len(r.Sentinels) == 0:
		return bad("redis.sentinels", "required with redis.master_name: the sentinels' host:port addresses")
	case len(r.Sentinels) > 0 && r.MasterName == "":
		return bad("redis.master_name", "required with redis.sentinels: the name the sentinels monitor the master under")
	case (r.SentinelPassword != "" || r.SentinelUsername != "") && r.MasterName == "":
		return bad("redis.sentinel_password", "is for Sentinel: set redis.master_name and redis.sentinels, or drop it")
	case len(r.Addrs) > 0 && r.DB != 0:
		return bad("redis.db", "must be 0 on a Cluster (redis.addrs): Redis Cluster has only database 0, got %d", r.DB)
	case r.WaitReplicas < 0:
		return bad("redis.wait_replicas", "must not be negative, got %d", r.WaitReplicas)
	case r.WaitReplicasTimeout < 0:
		return bad("redis.wait_replicas_timeout", "must not be negative, got %v", r.WaitReplicasTimeout)
	case r.WaitReplicas > 0 && cmp.Or(r.WaitReplicasTimeout, memory.DefaultWaitReplicasTimeout) >= r.ReadTimeout:
		return bad("redis.wait_replicas_timeout", "must be shorter than redis.read_timeout (%v): the WAIT is read in the commit's round trip; got %v",
			r.ReadTimeout, cmp.Or(r.WaitReplicasTimeout, memory.DefaultWaitReplicasTimeout))
	case !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify):
		return bad("redis.tls.enabled", "is false but other redis.tls keys are set: set it to true, or drop them")
	}
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"redis.addrs", r.Addrs}, {"redis.sentinels", r.Sentinels}} {
		for _, a := range l.addrs {
			host, port, err := net.SplitHostPort(a)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n < 1 || n > 65535 {
				return bad(l.key, "%q is not a host:port address", a)
			}
		}
	}
	if _, err := r.TLSConfig(); err != nil {
		return fmt.Errorf("config: %s", confparse.OneLine(err))
	}
	return nil
}

// Options are the client options of the configured topology for a client
// named name; the bot and botctl share them. Its errors are TLSConfig's.
func (r RedisConfig) Options(name string) (*redis.UniversalOptions, error) {
	tlsConfig, err := r.TLSConfig()
	if err != nil {
		return nil, err
	}
	return &redis.UniversalOptions{
		Addrs:            r.Endpoints(),
		IsClusterMode:    r.Topology() == Cluster,
		MasterName:       r.MasterName,
		Username:         r.Username,
		Password:         r.Password,
		SentinelUsername: r.SentinelUsername,
		SentinelPassword: r.SentinelPassword,
		DB:               r.DB,
		TLSConfig:        tlsConfig,
		ClientName:       name,
		PoolSize:         r.PoolSize,
		DialTimeout:      r.DialTimeout,
		// One dial per attempt: while Redis is down a turn should fail
		// over (503, nginx tries the next instance) in milliseconds, not
		// after go-redis's default five dials per attempt.
		DialerRetries: 1,
		ReadTimeout:   r.ReadTimeout,
		WriteTimeout:  r.WriteTimeout,
		MaxRetries:    r.MaxRetries,
		// RESP2: the fleet uses no RESP3 push (no client-side caching), and
		// on RESP3 go-redis peeks for pushes before every command, a read
		// syscall each — 113 → 96 µs of client CPU for a turn's two round
		// trips (BENCHMARKS.md, findings).
		Protocol: 2,
	}, nil
}
