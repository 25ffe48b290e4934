package fleet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// scriptFleet is scripts/fleet.sh (what make fleet runs) on free ports with
// its own folders: what it starts, it must find, change and stop again.
type scriptFleet struct {
	t                       *testing.T
	ports                   []int
	nginx, redis, hc        int
	runDir, logDir, dataDir string
}

func newScriptFleet(t *testing.T, n int) *scriptFleet {
	dir := t.TempDir()
	f := &scriptFleet{t: t, runDir: filepath.Join(dir, "run"), logDir: filepath.Join(dir, "logs"), dataDir: filepath.Join(dir, "data")}
	seen := map[int]bool{}
	free := func() int {
		for {
			if p := testenv.FreePort(t); !seen[p] {
				seen[p] = true
				return p
			}
		}
	}
	for range n {
		f.ports = append(f.ports, free())
	}
	f.nginx, f.redis, f.hc = free(), free(), free()
	t.Cleanup(func() {
		if out, err := f.run("down"); err != nil {
			t.Logf("cleanup: fleet.sh down: %v\n%s", err, out)
		}
		testenv.CollectLogFiles(f.logDir)
		testenv.CollectLogFiles(filepath.Join(f.runDir, "nginx", "logs"))
	})
	return f
}

func (f *scriptFleet) env(extra ...string) []string {
	var ps []string
	for _, p := range f.ports {
		ps = append(ps, strconv.Itoa(p))
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "BOT_") && !strings.HasPrefix(k, "REDIS_") && k != "API_KEY" && k != "CONFIG" && k != "LISTEN" {
			env = append(env, kv)
		}
	}
	return append(append(env,
		"PORTS="+strings.Join(ps, " "), "LISTEN="+testenv.Addr(f.nginx), "HC_LISTEN="+testenv.Addr(f.hc),
		"REDIS_PORT="+strconv.Itoa(f.redis), "RUN_DIR="+f.runDir, "LOG_DIR="+f.logDir, "DATA_DIR="+f.dataDir,
		"BOT_BIN="+filepath.Join(binDir, "bot"), "HEALTHCHECKER_BIN="+filepath.Join(binDir, "healthchecker"),
		"CONFIG=", "API_KEY="+apiKey, "GRACE=10", "SETTLE=0"), extra...)
}

// run runs scripts/fleet.sh CMD (or another script with its path given).
func (f *scriptFleet) run(cmd string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	script, args := filepath.Join(root, "scripts", "fleet.sh"), []string{cmd}
	if strings.HasSuffix(cmd, ".sh") {
		script, args = filepath.Join(root, "scripts", cmd), nil
	}
	var env, rest []string
	for _, e := range extra {
		if strings.Contains(e, "=") {
			env = append(env, e)
		} else {
			rest = append(rest, e)
		}
	}
	c := exec.CommandContext(ctx, script, append(args, rest...)...)
	c.Env = f.env(env...)
	var b bytes.Buffer
	c.Stdout, c.Stderr = &b, &b
	err := c.Run()
	return b.String(), err
}

func (f *scriptFleet) must(cmd string, extra ...string) string {
	f.t.Helper()
	out, err := f.run(cmd, extra...)
	if err != nil {
		f.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}

func (f *scriptFleet) pid(name string) int {
	b, _ := os.ReadFile(filepath.Join(f.runDir, name))
	p, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return p
}

// nginxGroup is every live process of nginx's process group.
func (f *scriptFleet) nginxGroup() []string {
	out, _ := exec.Command(filepath.Join(binDir, "fleetctl"), "group", "--port", strconv.Itoa(f.nginx),
		filepath.Join(f.runDir, "nginx", "nginx.pid")).Output()
	return strings.Fields(string(out))
}

// The Redis a "make run" started (ensure_redis.sh) is the one the fleet
// uses, fleet-status names and fleet-down stops; a changed setting is
// applied to every instance by the next "up" (a rolling restart), and
// fleet-status shows a mixed fleet; a kill -9 of nginx's master leaves
// workers that status reports, up replaces and down stops.
func TestFleetScriptOwnsWhatItStarts(t *testing.T) {
	f := newScriptFleet(t, 2)
	f.must("ensure_redis.sh") // what make run does first
	f.must("up")
	status := f.must("status")
	if !strings.Contains(status, "started by make run or make fleet") {
		t.Errorf("fleet-status does not own the Redis make run started:\n%s", status)
	}

	// New settings reach every instance.
	before := []int{f.pid(fmt.Sprintf("instance_%d.pid", f.ports[0])), f.pid(fmt.Sprintf("instance_%d.pid", f.ports[1]))}
	out := f.must("up", "BOT_CHAT_MAX_MESSAGE_CHARS=20")
	t.Logf("up with a new setting:\n%s", out)
	for i, p := range f.ports {
		if now := f.pid(fmt.Sprintf("instance_%d.pid", p)); now == before[i] || now == 0 {
			t.Errorf("instance %d kept pid %d after its settings changed", p, before[i])
		}
		r := chatDirect(t, p, strings.Repeat("x", 30))
		if r != 413 {
			t.Errorf("instance %d answers a 30-character message %d; want 413 (chat.max_message_chars 20 applied)", p, r)
		}
	}
	if out := f.must("up", "BOT_CHAT_MAX_MESSAGE_CHARS=20"); strings.Contains(out, "rolling restart") {
		t.Errorf("up with the same settings restarted instances:\n%s", out)
	}
	// One instance replaced with other settings: status says mixed.
	p1 := strconv.Itoa(f.ports[1])
	f.must("stop_instances.sh", p1)
	f.must("start_multiple_instances.sh", p1, "BOT_CHAT_MAX_MESSAGE_CHARS=25")
	if out, err := f.run("status", "BOT_CHAT_MAX_MESSAGE_CHARS=20"); err == nil || !strings.Contains(out, "MIXED") {
		t.Errorf("fleet-status on a mixed fleet: %v\n%s", err, out)
	}
	if out, err := f.run("start_multiple_instances.sh", p1, "BOT_CHAT_MAX_MESSAGE_CHARS=20"); err == nil || !strings.Contains(out, "BOT_CHAT_MAX_MESSAGE_CHARS") {
		t.Errorf("start_multiple_instances.sh over an instance with other settings: %v\n%s", err, out)
	}
	f.must("up", "BOT_CHAT_MAX_MESSAGE_CHARS=20")

	// kill -9 of nginx's master: its workers go on serving.
	master := f.pid("nginx/nginx.pid")
	workers := f.nginxGroup()
	if master == 0 || len(workers) < 2 {
		t.Fatalf("nginx master %d, group %v", master, workers)
	}
	syscall.Kill(master, syscall.SIGKILL)
	if !testenv.Eventually(5*time.Second, func() bool { return !processAlive(master) }) || !listening(f.nginx) {
		t.Fatalf("after kill -9 of the master %d: alive %v, port %d listening %v", master, processAlive(master), f.nginx, listening(f.nginx))
	}
	if out, err := f.run("status", "BOT_CHAT_MAX_MESSAGE_CHARS=20"); err == nil || !strings.Contains(out, "ORPHANED") {
		t.Errorf("fleet-status after kill -9 of nginx's master: %v\n%s", err, out)
	}
	f.must("up", "BOT_CHAT_MAX_MESSAGE_CHARS=20")
	if m := f.pid("nginx/nginx.pid"); m == master || !processAlive(m) {
		t.Errorf("up did not replace the orphaned nginx (master %d, now %d)", master, m)
	}
	for _, w := range workers {
		if p, _ := strconv.Atoi(w); processAlive(p) {
			t.Errorf("up left the orphaned nginx worker %d running", p)
		}
	}
	master, workers = f.pid("nginx/nginx.pid"), f.nginxGroup()
	syscall.Kill(master, syscall.SIGKILL)
	testenv.Eventually(5*time.Second, func() bool { return !processAlive(master) })

	out = f.must("down")
	t.Logf("down:\n%s", out)
	for _, w := range workers {
		if p, _ := strconv.Atoi(w); p != master && processAlive(p) {
			t.Errorf("down left the orphaned nginx worker %d running", p)
		}
	}
	for _, p := range append([]int{f.nginx, f.redis, f.hc}, f.ports...) {
		if listening(p) {
			t.Errorf("after down, port %d is still taken", p)
		}
	}
}

// chatDirect posts message to the instance on port and returns the status.
func chatDirect(t *testing.T, port int, message string) int {
	t.Helper()
	out, err := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "10",
		fmt.Sprintf("http://127.0.0.1:%d/v1/chat", port), "-H", "Authorization: Bearer "+apiKey,
		"-H", "Content-Type: application/json", "-d", `{"message":"`+message+`"}`).Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	n, _ := strconv.Atoi(string(out))
	return n
}
