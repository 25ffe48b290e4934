package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// healthChecker is a bin/healthchecker process watching a test fleet with
// the pidfile strategy, like deploy/healthchecker.example.yaml does for the
// local fleet.
type healthChecker struct {
	// Addr is where it listens: on port 0, read back from addrFile.
	Addr     string
	addrFile string
	Pid      int
	Log      *testenv.Buffer
}

// newHealthChecker returns a health checker to run, with its address file
// in a temporary directory.
func newHealthChecker(t *testing.T) *healthChecker {
	return &healthChecker{addrFile: filepath.Join(t.TempDir(), "healthchecker.addr"), Log: &testenv.Buffer{}}
}

// startHealthChecker writes a configuration for every member of f (fast
// probes: every 300ms, 2 failures restart) and runs the health checker; it
// is stopped (SIGTERM, leaving the instances) before the fleet when the test
// ends.
func startHealthChecker(t *testing.T, f *testFleet) *healthChecker {
	t.Helper()
	h := newHealthChecker(t)
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\naddr_file: %q\non_exit: leave\n", h.addrFile)
	b.WriteString(`defaults:
  period: 300ms
  timeout: 500ms
  initial_delay: 0s
  jitter: 100ms
  failure_threshold: 2
  success_threshold: 1
  grace: 5s
  startup_timeout: 15s
  backoff: {initial: 200ms, max: 2s, reset_after: 60s}
  budget: {restarts: 5, window: 10m}
targets:
`)
	for _, m := range f.Members {
		fmt.Fprintf(&b, `  - name: bot-%[1]d
    liveness: http://127.0.0.1:%[1]d/health
    readiness: http://127.0.0.1:%[1]d/ready
    restart:
      strategy: pidfile
      command: [%[2]q, "--port", "{{.Port}}", "--log-file", %[3]q]
      env: {WEB_PORT: "%[1]d", INSTANCE_NAME: "bot-instance-%[1]d"}
      log: %[4]q
      pidfile: %[5]q
`, m.Port, filepath.Join(binDir, "bot"), filepath.Join(f.logDir, fmt.Sprintf("instance_%d.log", m.Port)),
			filepath.Join(f.logDir, fmt.Sprintf("instance_%d.out", m.Port)), filepath.Join(f.runDir, fmt.Sprintf("instance_%d.pid", m.Port)))
	}
	conf := filepath.Join(t.TempDir(), "healthchecker.yaml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return runHealthChecker(t, f, h, conf)
}

// startRenderedHealthChecker runs the health checker as make fleet does:
// with the configuration scripts/render_healthchecker.sh writes to
// RUN_DIR/healthchecker.yaml for the fleet's ports.
func startRenderedHealthChecker(t *testing.T, f *testFleet) *healthChecker {
	t.Helper()
	h := newHealthChecker(t)
	conf := filepath.Join(f.runDir, "healthchecker.yaml")
	args := []string{"-o", conf, "LISTEN=127.0.0.1:0", "ADDR_FILE=" + h.addrFile}
	for _, m := range f.Members {
		args = append(args, strconv.Itoa(m.Port))
	}
	f.Script("render_healthchecker.sh", args...)
	runHealthChecker(t, f, h, conf)
	if err := os.WriteFile(filepath.Join(f.runDir, "healthchecker.pid"), []byte(strconv.Itoa(h.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// runHealthChecker runs bin/healthchecker with conf and args until the
// test ends (SIGTERM, leaving the instances, before the fleet stops), and
// waits until it serves /status on the address it writes to h.addrFile.
func runHealthChecker(t *testing.T, f *testFleet, h *healthChecker, conf string, args ...string) *healthChecker {
	t.Helper()
	text, _ := os.ReadFile(conf)
	cmd := exec.Command(filepath.Join(binDir, "healthchecker"), append([]string{"--config", conf}, args...)...)
	cmd.Env = f.env()
	cmd.Stdout = io.MultiWriter(h.Log, testenv.RunLog())
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.Pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("health checker log:\n%s", h.Log.String())
		}
	})
	if !testenv.Eventually(10*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		if h.Addr == "" {
			a, err := proc.ReadAddr(h.addrFile)
			if err != nil {
				return false
			}
			h.Addr = a
		}
		resp, err := http.Get("http://" + h.Addr + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("the health checker does not serve /status:\n%s\nconfig:\n%s", h.Log.String(), text)
	}
	select {
	case <-exited:
		t.Fatalf("the health checker exited at start:\n%s\nconfig:\n%s", h.Log.String(), text)
	default:
	}
	return h
}

// Status returns the health checker's /status, decoded loosely.
func (h *healthChecker) Status(t *testing.T) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.Addr+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("health checker /status: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("health checker /status: %v", err)
	}
	return out
}

// TestHealthCheckerRevivesKilledInstance kills (SIGKILL) a primary while a
// conversation streams through nginx and the health checker watches the
// fleet: no request fails, and the health checker has the instance serving
// again (new pid in its pid file, /ready 200, traffic from nginx); the test
// prints how long that took.
func TestHealthCheckerRevivesKilledInstance(t *testing.T) {
	f := startFleet(t, []int{1, 1, 2}, true)
	h := startHealthChecker(t, f)
	victim := f.Primaries()[0]
	pid := f.Pid(victim.Port)

	stop := make(chan struct{})
	done := make(chan *stream, 1)
	progress := make(chan int, 1)
	go func() { done <- f.runStream(stop, 20, progress) }()
	for i := range progress {
		if i >= 20 {
			break
		}
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var newPid int
	ok := testenv.Eventually(60*time.Second, func() bool {
		newPid = f.Pid(victim.Port)
		if newPid == 0 || newPid == pid || !processAlive(newPid) {
			return false
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", victim.Port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	revived := time.Since(killed)
	if !ok {
		close(stop)
		<-done
		t.Fatalf("the health checker did not bring %s back within 60s (pid file says %d)", victim.Name(), newPid)
	}
	t.Logf("health checker: %s killed (pid %d), serving again as pid %d after %v", victim.Name(), pid, newPid, revived.Round(time.Millisecond))

	// nginx sends it traffic again once its fail_timeout has passed.
	if !testenv.Eventually(30*time.Second, func() bool {
		return f.MustChat(t, newID(), "hello").Instance == victim.Name()
	}) {
		t.Errorf("nginx does not send the revived %s any traffic", victim.Name())
	}
	close(stop)
	s := <-done
	checkTurns(t, s)
	t.Logf("%d turns during the kill and the restart, 0 failed", len(s.Replies))
	st, _ := json.Marshal(h.Status(t))
	if !strings.Contains(string(st), fmt.Sprintf(`"port":%d`, victim.Port)) {
		t.Errorf("the health checker's /status does not show port %d: %s", victim.Port, st)
	}
}
