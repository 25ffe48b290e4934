package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sentinel is a Redis Sentinel set owned by one test, on loopback: data
// nodes (Data[0] starts as the master, the others as its replicas) watched
// by redis-sentinel processes.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the master under.
	MasterName string
	Data       []*Redis
	Sentinels  []*Redis

	t                          testing.TB
	password, sentinelPassword string
}

// SentinelOptions shape a Sentinel set. Zero values take the defaults named.
type SentinelOptions struct {
	// Replicas is the number of replicas. Default 1.
	Replicas int
	// Sentinels is the number of sentinels; a majority is the quorum.
	// Default 3.
	Sentinels int
	// DownAfter is down-after-milliseconds: how long the master may not
	// answer before the sentinels fail it over. Default 5s, so that a
	// loaded test machine does not fail the master over by mistake.
	DownAfter time.Duration
	// Password protects the data nodes (requirepass, masterauth).
	Password string
	// SentinelPassword protects the sentinels (requirepass, sentinel-pass).
	// Both are noted as secrets no log may hold (NoteSecret).
	SentinelPassword string
}

// StartSentinel starts the master, its replicas and the sentinels, and
// waits until every sentinel sees the master, all its replicas and every
// other sentinel. Everything is killed when the test ends.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Sentinels <= 0 {
		o.Sentinels = 3
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 5 * time.Second
	}
	s := &Sentinel{MasterName: "botfleet", t: t, password: o.Password, sentinelPassword: o.SentinelPassword}
	NoteSecret(o.SentinelPassword)
	master := StartRedisWith(t, RedisOptions{Password: o.Password})
	s.Data = append(s.Data, master)
	for range o.Replicas {
		s.Data = append(s.Data, StartRedisWith(t, RedisOptions{Password: o.Password,
			Args: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}}))
	}
	s.wait("the replicas to sync", func() error {
		if n := master.Replicated(o.Replicas); n != o.Replicas {
			return fmt.Errorf("master streams to %d of %d replicas: %s", n, o.Replicas, master.text("info", "replication"))
		}
		for _, r := range s.Data[1:] {
			if info := r.text("info", "replication"); !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("replica %s: %s", r.Addr, info)
			}
		}
		return nil
	})
	// Each sentinel is told the others and the replicas up front, so that
	// it does not wait for their hello messages and INFO refreshes. The
	// failover timeout is long enough that a second sentinel does not
	// start a failover of its own while the first one's completes on a
	// loaded machine (with 3 s, one in a dozen failovers was doubled), and
	// short enough that a split vote is retried within a test's patience.
	failoverTimeout := max(3*o.DownAfter, 10*time.Second)
	ids := make([]string, o.Sentinels)
	for i := range o.Sentinels {
		s.Sentinels = append(s.Sentinels, newRedis(t, "redis-sentinel"))
		var id [20]byte
		_, _ = rand.Read(id[:])
		ids[i] = hex.EncodeToString(id[:])
	}
	for i, r := range s.Sentinels {
		conf := []string{
			"port " + strconv.Itoa(r.Port), "bind 127.0.0.1", "dir " + r.dir,
			"logfile " + filepath.Join(r.dir, "redis.log"), "sentinel myid " + ids[i],
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", s.MasterName, master.Port, o.Sentinels/2+1),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", s.MasterName, o.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", s.MasterName, failoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", s.MasterName),
		}
		for _, d := range s.Data[1:] {
			conf = append(conf, fmt.Sprintf("sentinel known-replica %s 127.0.0.1 %d", s.MasterName, d.Port))
		}
		for j, other := range s.Sentinels {
			if j != i {
				conf = append(conf, fmt.Sprintf("sentinel known-sentinel %s 127.0.0.1 %d %s", s.MasterName, other.Port, ids[j]))
			}
		}
		if o.Password != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", s.MasterName, o.Password))
		}
		if o.SentinelPassword != "" {
			conf = append(conf, "requirepass "+o.SentinelPassword, "sentinel sentinel-pass "+o.SentinelPassword)
			r.opts.Password = o.SentinelPassword
		}
		file := filepath.Join(r.dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		r.argv = []string{file}
		r.Start()
	}
	s.wait("every sentinel to see the master, its replicas and the other sentinels", func() error {
		for _, sn := range s.Sentinels {
			m, err := sn.command("sentinel", "master", s.MasterName).Result()
			if err != nil {
				return err
			}
			f := fields(m)
			if f["flags"] != "master" || f["num-slaves"] != strconv.Itoa(o.Replicas) || f["num-other-sentinels"] != strconv.Itoa(o.Sentinels-1) {
				return fmt.Errorf("sentinel %s sees %v", sn.Addr, f)
			}
		}
		return nil
	})
	return s
}

// SentinelAddrs are the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string { return addrs(s.Sentinels) }

// Client returns a client that follows the master through the sentinels,
// closed when the test ends.
func (s *Sentinel) Client() *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs(),
		Password: s.password, SentinelPassword: s.sentinelPassword,
	})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Name is "sentinel".
func (s *Sentinel) Name() string { return "sentinel" }

// UniversalClient is Client.
func (s *Sentinel) UniversalClient() redis.UniversalClient { return s.Client() }

// Env is the bot's configuration for this set: redis.master_name,
// redis.sentinels and the passwords.
func (s *Sentinel) Env() map[string]string {
	env := map[string]string{"BOT_REDIS_MASTER_NAME": s.MasterName, "BOT_REDIS_SENTINELS": strings.Join(s.SentinelAddrs(), ",")}
	if s.password != "" {
		env["REDIS_PASSWORD"] = s.password
	}
	if s.sentinelPassword != "" {
		env["BOT_REDIS_SENTINEL_PASSWORD"] = s.sentinelPassword
	}
	return env
}

// Master returns the data node every live sentinel names as the master,
// once that node also reports the master role, waiting up to timeout; not
// is a node it must not be (the master that was stopped), or nil.
func (s *Sentinel) Master(not *Redis, timeout time.Duration) *Redis {
	s.t.Helper()
	var master *Redis
	err := poll(timeout, func() error {
		master = nil
		addr := ""
		for _, sn := range s.Sentinels {
			if !sn.running() {
				continue
			}
			v, err := sn.command("sentinel", "get-master-addr-by-name", s.MasterName).StringSlice()
			if err != nil || len(v) != 2 {
				return fmt.Errorf("sentinel %s: %v %v", sn.Addr, v, err)
			}
			a := v[0] + ":" + v[1]
			if addr != "" && a != addr {
				return fmt.Errorf("sentinels disagree: %s and %s", addr, a)
			}
			addr = a
		}
		for _, d := range s.Data {
			if d.Addr == addr && d != not && strings.HasPrefix(d.text("role"), "[master") {
				master = d
				return nil
			}
		}
		return fmt.Errorf("the sentinels name %s, not yet a serving master other than the stopped one", addr)
	})
	if err != nil {
		s.t.Fatalf("testenv: sentinel master: %v", err)
	}
	return master
}

func (s *Sentinel) wait(what string, cond func() error) {
	s.t.Helper()
	if err := poll(30*time.Second, cond); err != nil {
		s.t.Fatalf("testenv: sentinel: waiting for %s: %v", what, err)
	}
}

// fields turns a reply of name, value pairs (RESP2 list or RESP3 map)
// into a map.
func fields(v any) map[string]string {
	out := map[string]string{}
	switch m := v.(type) {
	case map[any]any:
		for k, val := range m {
			out[fmt.Sprint(k)] = fmt.Sprint(val)
		}
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			out[fmt.Sprint(m[i])] = fmt.Sprint(m[i+1])
		}
	}
	return out
}
