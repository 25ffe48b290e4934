package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// The local fleet's fixed ports (README, Makefile, nginx/nginx.conf,
// deploy/healthchecker.example.yaml).
var fleetPorts = []int{8080, 8081, 8082, 8083, 18789, 9090}

// TestMakeFleet runs the README's commands on a fresh checkout's default
// ports: make fleet (twice: it is idempotent), the curl line it prints,
// the README's own curl and bin/loadtest examples (checkReadmeCommands),
// make fleet-status, and make fleet-down, which must leave no process and
// no port behind. A port already taken (a developer's own fleet is
// running) fails it with what to do: it cannot check make fleet then.
func TestMakeFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make fleet builds and runs the whole fleet on the default ports")
	}
	var taken []string
	for _, p := range fleetPorts {
		if listening(p) {
			taken = append(taken, strconv.Itoa(p))
		}
	}
	if len(taken) > 0 {
		t.Fatalf("ports %s are taken (a local fleet running? make fleet-down stops it); make fleet needs 8080-8083, 18789 and 9090 free", strings.Join(taken, ", "))
	}
	testenv.LookPath(t, "make")
	redisWasUp := listening(6379)

	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range []string{"logs/healthchecker.log", "run/nginx/logs/error.log"} {
				b, _ := os.ReadFile(filepath.Join(root, l))
				t.Logf("%s:\n%s", l, b)
			}
		}
		if out, err := runMake("fleet-down"); err != nil {
			t.Logf("cleanup: make fleet-down: %v\n%s", err, out)
		}
	})

	out, err := runMake("fleet")
	if err != nil {
		t.Fatalf("make fleet: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "curl ") {
		t.Fatalf("make fleet's output does not end with a curl line:\n%s", out)
	}
	t.Logf("make fleet ended with: %s", last)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := exec.CommandContext(ctx, "bash", "-c", last).Output()
	if err != nil {
		t.Fatalf("the printed curl failed: %v", err)
	}
	var reply struct {
		Reply, Instance string
		Turn            int
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.Reply == "" || reply.Turn != 1 || !strings.HasPrefix(reply.Instance, "bot-instance-808") {
		t.Fatalf("the printed curl answered %q (%v); want a first-turn reply from an instance on 8080-8083", body, err)
	}

	checkReadmeCommands(t)

	pids := fleetPids(t)
	if len(pids) < 5 { // 4 instances + nginx (+ health checker, + Redis)
		t.Fatalf("make fleet left pid files for only %v", pids)
	}
	out2, err := runMake("fleet")
	if err != nil {
		t.Fatalf("make fleet, again: %v\n%s", err, out2)
	}
	if again := fleetPids(t); fmt.Sprint(again) != fmt.Sprint(pids) {
		t.Errorf("make fleet a second time changed the processes: %v, then %v", pids, again)
	}

	status, err := runMake("fleet-status")
	if err != nil {
		t.Errorf("make fleet-status: %v\n%s", err, status)
	}
	t.Logf("make fleet-status:\n%s", status)
	for _, part := range []string{"redis", "instance 8080", "instance 8081", "instance 8082", "instance 8083", "nginx", "healthchecker"} {
		found := false
		for _, line := range strings.Split(status, "\n") {
			if strings.HasPrefix(line, part+" ") {
				found = true
				if !strings.Contains(line, " up ") && !strings.Contains(line, "not built") {
					t.Errorf("fleet-status: %q is not up", line)
				}
			}
		}
		if !found {
			t.Errorf("fleet-status does not show %s", part)
		}
	}

	down, err := runMake("fleet-down")
	if err != nil {
		t.Fatalf("make fleet-down: %v\n%s", err, down)
	}
	t.Logf("make fleet-down:\n%s", down)
	for name, pid := range pids {
		if name == "redis" && redisWasUp {
			continue
		}
		if !testenv.Eventually(5*time.Second, func() bool { return !processAlive(pid) }) {
			t.Errorf("after make fleet-down, %s (pid %d) is still running", name, pid)
		}
	}
	ports := fleetPorts
	if !redisWasUp {
		ports = append(ports[:len(ports):len(ports)], 6379)
	}
	for _, p := range ports {
		if listening(p) {
			t.Errorf("after make fleet-down, port %d is still taken", p)
		}
	}
	left, _ := filepath.Glob(filepath.Join(root, "run", "*.pid"))
	if len(left) > 0 {
		t.Errorf("after make fleet-down, pid files are left: %v", left)
	}
}

// runMake runs make TARGET in the module root with a clean fleet
// environment (the Makefile's defaults: API_KEY dev-key, Redis on 6379).
func runMake(target string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", target)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BOT_"), strings.HasPrefix(k, "REDIS_"), strings.HasPrefix(k, "MAKE"),
			k == "API_KEY", k == "PORTS", k == "CONFIG", k == "LISTEN", k == "RUN_DIR", k == "LOG_DIR":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// fleetPids reads the local fleet's pid files: instances, nginx, the
// health checker, and the Redis make fleet started.
func fleetPids(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	read := func(name, file string) {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return
		}
		s := strings.TrimSpace(string(b))
		s = strings.TrimPrefix(strings.SplitN(s, "\n", 2)[0], "pid=")
		if pid, err := strconv.Atoi(s); err == nil {
			out[name] = pid
		}
	}
	for _, p := range []int{8080, 8081, 8082, 8083} {
		read(fmt.Sprintf("instance %d", p), fmt.Sprintf("run/instance_%d.pid", p))
	}
	read("nginx", "run/nginx/nginx.pid")
	read("healthchecker", "run/healthchecker.pid")
	read("redis", "run/fleet_redis")
	return out
}
