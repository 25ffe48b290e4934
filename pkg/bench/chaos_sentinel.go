package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/redis/go-redis/v9"
)

// The Sentinel scenario's own small fleet: a Redis master, one replica and
// three sentinels (quorum 2), two instances following the master through
// them (redis.master_name, redis.sentinels) behind an nginx of their own.
const (
	sentinelMaster    = "botfleet"
	sentinelDownAfter = 3 * time.Second
	sentinelInstances = 2
)

// sentinelFleet is that fleet; the load and the checker use it instead of
// the main one for the scenario.
type sentinelFleet struct {
	dir                  string
	masterPort, replPort int
	master, replica      *child
	sentinels            []*child
	sentinelPorts        []int
	bots                 []*child
	botPorts             []int
	rdb                  *redis.Client // follows the master
	mem                  *memory.Store
}

// startSentinelFleet brings it up under c's dir and points tr at it.
func (c *chaosRun) startSentinelFleet(ctx context.Context, tr *traffic) (_ *sentinelFleet, err error) {
	s := &sentinelFleet{dir: filepath.Join(c.o.Dir, "sentinel")}
	defer func() {
		if err != nil {
			c.stopSentinelFleet(s)
		}
	}()
	_ = os.RemoveAll(s.dir)
	if err := os.MkdirAll(filepath.Join(s.dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	ports := make([]int, 2+3+sentinelInstances+1)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	s.masterPort, s.replPort, s.sentinelPorts, s.botPorts = ports[0], ports[1], ports[2:5], ports[5:5+sentinelInstances]
	nginxPort := ports[len(ports)-1]
	data := func(name string, port int, extra ...string) (*child, error) {
		d := filepath.Join(s.dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		p, err := start(s.dir, name, nil, syscall.SIGTERM, "redis-server", append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--save", "", "--appendonly", "no", "--dir", d}, extra...)...)
		if err != nil {
			return nil, err
		}
		cl := redis.NewClient(&redis.Options{Addr: addr(port)})
		defer cl.Close()
		return p, p.waitFor(ctx, 10*time.Second, "PING", func() bool { return cl.Ping(ctx).Err() == nil })
	}
	if s.master, err = data("master", s.masterPort); err != nil {
		return nil, err
	}
	if s.replica, err = data("replica", s.replPort, "--replicaof", "127.0.0.1", strconv.Itoa(s.masterPort)); err != nil {
		return nil, err
	}
	for i, port := range s.sentinelPorts {
		conf := filepath.Join(s.dir, fmt.Sprintf("sentinel-%d.conf", i))
		lines := []string{"port " + strconv.Itoa(port), "bind 127.0.0.1", "dir " + s.dir,
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", sentinelMaster, s.masterPort),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", sentinelMaster, sentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s 10000", sentinelMaster),
			fmt.Sprintf("sentinel known-replica %s 127.0.0.1 %d", sentinelMaster, s.replPort)}
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
		p, err := start(s.dir, fmt.Sprintf("sentinel-%d", i), nil, syscall.SIGTERM, "redis-sentinel", conf)
		if err != nil {
			return nil, err
		}
		s.sentinels = append(s.sentinels, p)
	}
	sentinels := make([]string, len(s.sentinelPorts))
	for i, p := range s.sentinelPorts {
		sentinels[i] = addr(p)
	}
	// Every sentinel sees the master with its replica and the others.
	for _, sa := range sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sa})
		err := waitUntil(ctx, 30*time.Second, func() bool {
			m, err := sc.Master(ctx, sentinelMaster).Result()
			return err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
		})
		sc.Close()
		if err != nil {
			return nil, fmt.Errorf("sentinel %s does not see the master, its replica and the other sentinels: %w", sa, err)
		}
	}
	s.rdb = redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sentinelMaster, SentinelAddrs: sentinels})
	s.mem = memory.New(ctx, s.rdb, memory.Options{MaxEntries: chaosMaxEntries})
	cfg := c.f.config
	cfg.Env = append(append([]string{}, cfg.Env...), "BOT_REDIS_MASTER_NAME="+sentinelMaster, "BOT_REDIS_SENTINELS="+strings.Join(sentinels, ","))
	var prim []string
	for i, port := range s.botPorts {
		p, err := c.f.startBot(ctx, cfg, port, "sentinel-bot-"+strconv.Itoa(i))
		if err != nil {
			return nil, err
		}
		s.bots = append(s.bots, p)
		prim = append(prim, strconv.Itoa(port)+":1")
	}
	if err := c.f.startNginx(ctx, "sentinel", strings.Join(prim, " "), "", nginxPort); err != nil {
		return nil, err
	}
	tr.url, tr.svc, tr.sentinel = c.f.nginxURL("sentinel"), chat.New(s.mem, nil, chat.Options{}), s
	return s, nil
}

// failMaster kills -9 the master, waits until the sentinels have promoted
// the replica and the instances answer through it, and notes the
// replication lag at the kill and how long the failover took.
func (c *chaosRun) failMaster(ctx context.Context, s *sentinelFleet, tr *traffic) error {
	master := redis.NewClient(&redis.Options{Addr: addr(s.masterPort)})
	repl := redis.NewClient(&redis.Options{Addr: addr(s.replPort)})
	defer master.Close()
	defer repl.Close()
	mo, _ := replOffset(ctx, master, "master_repl_offset")
	ro, _ := replOffset(ctx, repl, "slave_repl_offset")
	s.master.kill()
	killed := time.Now()
	tr.killedAt = killed
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr(s.sentinelPorts[0])})
	defer sc.Close()
	if err := waitUntil(ctx, 60*time.Second, func() bool {
		a, err := sc.GetMasterAddrByName(ctx, sentinelMaster).Result()
		return err == nil && len(a) == 2 && a[1] == strconv.Itoa(s.replPort)
	}); err != nil {
		return fmt.Errorf("the sentinels did not promote the replica within 60 s: %w", err)
	}
	promoted := time.Since(killed)
	if err := waitUntil(ctx, 30*time.Second, func() bool { return s.rdb.Set(ctx, "chaos:sentinel:probe", 1, time.Minute).Err() == nil }); err != nil {
		return fmt.Errorf("no write through the sentinels after the promotion: %w", err)
	}
	tr.observe("master (port %d) killed with the replica %d bytes of replication stream behind (master_repl_offset %d, replica %d); "+
		"the sentinels promoted the replica %.1f s later (down-after-milliseconds %d)",
		s.masterPort, max(0, mo-ro), mo, ro, promoted.Seconds(), sentinelDownAfter.Milliseconds())
	return nil
}

func replOffset(ctx context.Context, cl *redis.Client, key string) (int64, error) {
	info, err := cl.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO replication: no " + key)
}

// stopSentinelFleet ends every process of s and its nginx.
func (c *chaosRun) stopSentinelFleet(s *sentinelFleet) {
	if p, ok := c.f.nginx["sentinel"]; ok {
		p.stop(5 * time.Second)
		delete(c.f.nginx, "sentinel")
	}
	for _, p := range s.bots {
		p.stop(10 * time.Second)
	}
	if s.mem != nil {
		_ = s.mem.Close()
	}
	if s.rdb != nil {
		s.rdb.Close()
	}
	for _, p := range append(s.sentinels, s.replica, s.master) {
		p.stop(5 * time.Second)
	}
}

// waitUntil polls cond every 100 ms until it holds or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", timeout)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}
