package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

// The dev overlay's Sentinel set, run the way its StatefulSet runs it:
// three "pods" on their own loopback addresses (127.0.0.11-13 stand for
// redis-N.redis), each the init script (redis-init.sh) and then
// redis-server and redis-sentinel on the configs it wrote. The first start
// makes the first pod master and the others its replicas; when the master
// dies the sentinels promote a replica; the dead pod, started again, asks
// the sentinels and rejoins as a replica of the new master.
func TestRedisSentinelSet(t *testing.T) {
	bins := map[string]string{}
	for _, name := range []string{"redis-server", "redis-sentinel", "redis-cli"} {
		bins[name] = testenv.LookPath(t, name)
	}
	port, sentinelPort := testenv.FreePort(t), testenv.FreePort(t)
	ips := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}
	pods := make([]*redisPod, len(ips))
	for i, ip := range ips {
		pods[i] = &redisPod{ip: ip, port: port, sentinelPort: sentinelPort, peers: ips, dir: t.TempDir(), bins: bins}
		t.Cleanup(pods[i].stop)
		// OrderedReady: each pod starts once the one before it is up.
		pods[i].start(t)
	}
	for i, p := range pods {
		want := "master"
		if i > 0 {
			want = "slave"
		}
		p.waitRole(t, want, ips[0])
	}
	for _, p := range pods {
		p.waitSentinelMaster(t, func(m string) bool { return m == ips[0] })
		// A sentinel learns the replicas from the master's INFO, every
		// 10s; one it does not know yet it would not move to the new
		// master.
		p.waitSentinelReplicas(t, len(ips)-1)
	}

	pods[0].stop()
	start := time.Now()
	var promoted string
	pods[1].waitSentinelMaster(t, func(m string) bool { promoted = m; return m == ips[1] || m == ips[2] })
	t.Logf("the sentinels promoted %s %v after the master died", promoted, time.Since(start).Round(100*time.Millisecond))
	for _, p := range pods[1:] {
		want := "slave"
		if p.ip == promoted {
			want = "master"
		}
		p.waitRole(t, want, promoted)
	}

	pods[0].start(t)
	if conf := readFile(t, filepath.Join(pods[0].dir, "conf/redis.conf")); !strings.Contains(conf, "replicaof "+promoted+" ") {
		t.Fatalf("the restarted pod's redis.conf does not follow the new master %s:\n%s", promoted, conf)
	}
	pods[0].waitRole(t, "slave", promoted)
}

// redisPod is one pod of the StatefulSet: its init script, then its two
// servers.
type redisPod struct {
	ip                 string
	port, sentinelPort int
	peers              []string
	dir                string
	bins               map[string]string
	procs              []*exec.Cmd
}

func (p *redisPod) start(t *testing.T) {
	t.Helper()
	for _, d := range []string{"conf", "data", "sentinel"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	init := exec.Command("sh", "../overlays/dev/redis-init.sh")
	init.Env = append(os.Environ(),
		"CONF="+filepath.Join(p.dir, "conf"), "SELF="+p.ip, "PEERS="+strings.Join(p.peers, " "),
		"PORT="+strconv.Itoa(p.port), "SENTINEL_PORT="+strconv.Itoa(p.sentinelPort), "BIND="+p.ip,
		"DATA="+filepath.Join(p.dir, "data"), "SENTINEL_DIR="+filepath.Join(p.dir, "sentinel"))
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("redis-init.sh on %s: %v\n%s", p.ip, err, out)
	}
	for _, c := range [][]string{
		{p.bins["redis-server"], filepath.Join(p.dir, "conf/redis.conf"), "--logfile", filepath.Join(p.dir, "redis.log")},
		{p.bins["redis-sentinel"], filepath.Join(p.dir, "conf/sentinel.conf"), "--logfile", filepath.Join(p.dir, "sentinel.log")},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p.procs = append(p.procs, cmd)
	}
	for _, port := range []int{p.port, p.sentinelPort} {
		c := redis.NewClient(&redis.Options{Addr: p.ip + ":" + strconv.Itoa(port), MaxRetries: -1})
		p.eventually(t, 10*time.Second, "PING on port "+strconv.Itoa(port), func(ctx context.Context) bool {
			return c.Ping(ctx).Err() == nil
		})
		c.Close()
	}
}

// stop kills the pod's servers, as a node failure would.
func (p *redisPod) stop() {
	for _, cmd := range p.procs {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	p.procs = nil
}

// waitRole waits until the pod's Redis is role (master, or slave with a
// working link to master).
func (p *redisPod) waitRole(t *testing.T, role, master string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: p.ip + ":" + strconv.Itoa(p.port)})
	defer c.Close()
	p.eventually(t, 30*time.Second, "role "+role+" of "+master, func(ctx context.Context) bool {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:"+role+"\r\n") {
			return false
		}
		return role == "master" || strings.Contains(info, "master_host:"+master+"\r\n") && strings.Contains(info, "master_link_status:up")
	})
}

// waitSentinelMaster waits until the pod's sentinel names a master that ok
// accepts.
func (p *redisPod) waitSentinelMaster(t *testing.T, ok func(string) bool) {
	t.Helper()
	s := redis.NewSentinelClient(&redis.Options{Addr: p.ip + ":" + strconv.Itoa(p.sentinelPort)})
	defer s.Close()
	p.eventually(t, 60*time.Second, "the sentinel's master", func(ctx context.Context) bool {
		addr, err := s.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && len(addr) == 2 && ok(addr[0])
	})
}

// waitSentinelReplicas waits until the pod's sentinel knows n replicas.
func (p *redisPod) waitSentinelReplicas(t *testing.T, n int) {
	t.Helper()
	s := redis.NewSentinelClient(&redis.Options{Addr: p.ip + ":" + strconv.Itoa(p.sentinelPort)})
	defer s.Close()
	p.eventually(t, 30*time.Second, strconv.Itoa(n)+" replicas known to the sentinel", func(ctx context.Context) bool {
		replicas, err := s.Replicas(ctx, "mymaster").Result()
		return err == nil && len(replicas) == n
	})
}

// eventually polls cond until it holds, failing the test with the pod's
// logs after timeout.
func (p *redisPod) eventually(t *testing.T, timeout time.Duration, what string, cond func(context.Context) bool) {
	t.Helper()
	held := testenv.Eventually(timeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return cond(ctx)
	})
	if !held {
		t.Fatalf("%s: no %s within %v\nredis.log:\n%s\nsentinel.log:\n%s", p.ip, what, timeout,
			readFile(t, filepath.Join(p.dir, "redis.log")), readFile(t, filepath.Join(p.dir, "sentinel.log")))
	}
}

func readFile(t *testing.T, name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
