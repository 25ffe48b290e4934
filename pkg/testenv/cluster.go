package testenv

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of redis-server processes owned by one test,
// on loopback: Masters serve the 16384 slots in equal ranges, Replicas[i]
// replicate Masters[i].
type Cluster struct {
	Masters  []*Redis
	Replicas [][]*Redis

	t testing.TB
}

// ClusterOptions shape a Cluster. Zero values take the defaults named.
type ClusterOptions struct {
	// Masters is the number of masters. Default 3.
	Masters int
	// Replicas is the number of replicas of each master. Default 0.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a master may be
	// unreachable before its replica takes over. Default 5s, so that a
	// loaded test machine does not fail a master over by mistake.
	NodeTimeout time.Duration
}

// StartCluster starts the nodes, assigns the slots (CLUSTER ADDSLOTSRANGE),
// joins them (CLUSTER MEET), attaches the replicas (CLUSTER REPLICATE) and
// waits until every node reports cluster_state:ok with its replicas in
// sync. The nodes are killed when the test ends.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Masters <= 0 {
		o.Masters = 3
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = 5 * time.Second
	}
	node := func() *Redis {
		return StartRedisWith(t, RedisOptions{Args: []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
		}})
	}
	c := &Cluster{t: t}
	for range o.Masters {
		c.Masters = append(c.Masters, node())
		var rs []*Redis
		for range o.Replicas {
			rs = append(rs, node())
		}
		c.Replicas = append(c.Replicas, rs)
	}
	ctx := context.Background()
	per := 16384 / o.Masters
	for i, m := range c.Masters {
		lo, hi := i*per, (i+1)*per-1
		if i == o.Masters-1 {
			hi = 16383
		}
		c.do(m, "cluster", "addslotsrange", lo, hi)
	}
	all := c.Nodes()
	for _, n := range all[1:] {
		c.do(all[0], "cluster", "meet", "127.0.0.1", n.Port)
	}
	c.wait("every node to know every other", func() error {
		for _, n := range all {
			nodes := n.text("cluster", "nodes")
			if strings.Count(nodes, "\n") < len(all) || strings.Contains(nodes, "handshake") {
				return fmt.Errorf("%s knows:\n%s", n.Addr, nodes)
			}
		}
		return nil
	})
	for i, rs := range c.Replicas {
		id := c.Masters[i].text("cluster", "myid")
		for _, r := range rs {
			c.do(r, "cluster", "replicate", id)
		}
	}
	c.wait("replicas in sync and cluster_state:ok everywhere", func() error {
		for i, rs := range c.Replicas {
			if n := c.Masters[i].Replicated(len(rs)); n != len(rs) {
				return fmt.Errorf("master %s streams to %d of its %d replicas", c.Masters[i].Addr, n, len(rs))
			}
		}
		return c.healthy(ctx)
	})
	return c
}

// Nodes returns every node, masters first.
func (c *Cluster) Nodes() []*Redis {
	out := append([]*Redis(nil), c.Masters...)
	for _, rs := range c.Replicas {
		out = append(out, rs...)
	}
	return out
}

// Addrs are the masters' addresses, the seeds a client starts from.
func (c *Cluster) Addrs() []string { return addrs(c.Masters) }

// Client returns a Cluster client, closed when the test ends.
func (c *Cluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	c.t.Cleanup(func() { cc.Close() })
	return cc
}

// Name is "cluster".
func (c *Cluster) Name() string { return "cluster" }

// UniversalClient is Client.
func (c *Cluster) UniversalClient() redis.UniversalClient { return c.Client() }

// Env is the bot's configuration for this Cluster: redis.addrs.
func (c *Cluster) Env() map[string]string {
	return map[string]string{"BOT_REDIS_ADDRS": strings.Join(c.Addrs(), ",")}
}

// MasterOf returns the node that serves key now.
func (c *Cluster) MasterOf(key string) *Redis {
	c.t.Helper()
	cc := c.Client()
	m, err := cc.MasterForKey(context.Background(), key)
	if err != nil {
		c.t.Fatalf("testenv: master of %q: %v", key, err)
	}
	for _, n := range c.Nodes() {
		if n.Addr == m.Options().Addr {
			return n
		}
	}
	c.t.Fatalf("testenv: master of %q is %s, not a node of this cluster", key, m.Options().Addr)
	return nil
}

// Promoted waits until one of the replicas of master i serves as master
// and every live node reports cluster_state:ok again (after master i was
// stopped), and returns it.
func (c *Cluster) Promoted(i int, timeout time.Duration) *Redis {
	c.t.Helper()
	var promoted *Redis
	err := poll(timeout, func() error {
		promoted = nil
		for _, r := range c.Replicas[i] {
			if strings.HasPrefix(r.text("role"), "[master") {
				promoted = r
			}
		}
		if promoted == nil {
			return fmt.Errorf("no replica of %s is master yet", c.Masters[i].Addr)
		}
		return c.healthy(context.Background())
	})
	if err != nil {
		c.t.Fatalf("testenv: failover of master %d: %v", i, err)
	}
	return promoted
}

// healthy reports whether every live node sees cluster_state:ok.
func (c *Cluster) healthy(ctx context.Context) error {
	for _, n := range c.Nodes() {
		if !n.running() {
			continue
		}
		if info := n.text("cluster", "info"); !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: %s", n.Addr, info)
		}
	}
	return nil
}

func (c *Cluster) wait(what string, cond func() error) {
	c.t.Helper()
	if err := poll(30*time.Second, cond); err != nil {
		c.t.Fatalf("testenv: cluster: waiting for %s: %v", what, err)
	}
}

// do runs a command on one node and fails the test on an error.
func (c *Cluster) do(n *Redis, args ...any) {
	c.t.Helper()
	if err := n.command(args...).Err(); err != nil {
		c.t.Fatalf("testenv: %s %v: %v", n.Addr, args, err)
	}
}
