package healthcheck

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// targetSource is a tiny instance: GET /health and /ready answer 200 with
// the pid; SIGTERM exits 0. The port comes from --port or $WEB_PORT.
const targetSource = `package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	port := flag.String("port", os.Getenv("WEB_PORT"), "port")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	h := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"pid\":%d,\"instance\":%q}\n", os.Getpid(), os.Getenv("INSTANCE_NAME"))
	}
	http.HandleFunc("/health", h)
	http.HandleFunc("/ready", h)
	srv := &http.Server{Addr: "127.0.0.1:" + *port}
	go func() {
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
	}()
	fmt.Println("serving on", *port, "as", os.Getenv("INSTANCE_NAME"))
	<-ctx.Done()
	srv.Shutdown(context.Background())
	fmt.Println("stopped")
}
`

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// targetBinary builds targetSource once per test run.
func targetBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hc-target-")
		if err != nil {
			buildErr = err
			return
		}
		src := filepath.Join(dir, "main.go")
		if buildErr = os.WriteFile(src, []byte(targetSource), 0o644); buildErr != nil {
			return
		}
		buildBin = filepath.Join(dir, "target")
		cmd := exec.Command("go", "build", "-o", buildBin, src)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func healthy(port int) bool {
	return HTTPProber{}.Probe(context.Background(), "http://127.0.0.1:"+strconv.Itoa(port)+"/health", 500*time.Millisecond) == nil
}

// killGroup ends a process group left behind, by pid, at cleanup.
func killGroup(t *testing.T, pid int) {
	if pid <= 1 {
		return
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	testenv.Eventually(5*time.Second, func() bool { return !alive(pid) })
}

// processSettings are small timings for tests with real processes.
func processSettings() Settings {
	return Settings{
		Period: 100 * time.Millisecond, Timeout: 500 * time.Millisecond, InitialDelay: 100 * time.Millisecond, Jitter: 50 * time.Millisecond,
		FailureThreshold: 2, SuccessThreshold: 1, Grace: 3 * time.Second, StartupTimeout: 10 * time.Second,
		Backoff: BackoffConfig{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond, ResetAfter: time.Minute},
		Budget:  BudgetConfig{Restarts: 5, Window: time.Minute},
	}
}

func supervisedTarget(t *testing.T, bin string, port int) Target {
	dir := t.TempDir()
	tg := NewTarget("bot-"+strconv.Itoa(port), "http://127.0.0.1:"+strconv.Itoa(port)+"/health", processSettings())
	tg.Restart = Restart{
		Strategy: StrategySupervise,
		Command:  []string{bin, "--port", "{{.Port}}"},
		Env:      map[string]string{"INSTANCE_NAME": "bot-instance-{{.Port}}"},
		Dir:      dir,
		Log:      "logs/instance.log",
	}
	return tg
}

// waitUp waits until the target is healthy with a live pid and returns it.
func waitUp(t *testing.T, c *Checker, name string, port int, not int) int {
	t.Helper()
	var pid int
	testenv.WaitFor(t, 20*time.Second, name+" up with a new pid", func() bool {
		s := statusOf(c, name)
		pid = s.PID
		return s.State == StateHealthy && pid > 0 && pid != not && alive(pid) && healthy(port)
	})
	return pid
}

// startSupervised runs a checker supervising one instance of bin on a free
// port, with on_exit onExit, and waits until the instance is up.
func startSupervised(t *testing.T, bin, onExit string) (c *Checker, stop func(), tg Target, port, pid int) {
	t.Helper()
	port = freePort(t)
	tg = supervisedTarget(t, bin, port)
	cfg := checkerConfig(tg)
	cfg.OnExit = onExit
	c, stop = startChecker(t, cfg, nil)
	pid = waitUp(t, c, tg.Name, port, 0)
	t.Cleanup(func() { killGroup(t, pid) })
	return c, stop, tg, port, pid
}

func TestSuperviseRestartsAfterKill9(t *testing.T) {
	c, stop, tg, port, pid := startSupervised(t, targetBinary(t), OnExitStop)

	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid2 := waitUp(t, c, tg.Name, port, pid)
	t.Cleanup(func() { killGroup(t, pid2) })
	t.Logf("kill -9 of pid %d -> pid %d answering /health after %s", pid, pid2, time.Since(killed))
	st := statusOf(c, tg.Name)
	if st.Restarts.Total != 1 || !strings.Contains(st.Restarts.LastReason, "exited") {
		t.Fatalf("restarts %+v", st.Restarts)
	}
	logb, _ := os.ReadFile(filepath.Join(tg.Restart.Dir, "logs/instance.log"))
	if strings.Count(string(logb), "serving on "+strconv.Itoa(port)+" as bot-instance-"+strconv.Itoa(port)) != 2 {
		t.Fatalf("instance log:\n%s", logb)
	}
	stop()
	if alive(pid2) {
		t.Fatalf("on_exit stop left pid %d running", pid2)
	}
	if logb, _ = os.ReadFile(filepath.Join(tg.Restart.Dir, "logs/instance.log")); !strings.HasSuffix(string(logb), "stopped\n") {
		t.Fatalf("instance was not stopped gracefully (SIGTERM):\n%s", logb)
	}
}

func TestPIDFileRestartsViaCommand(t *testing.T) {
	bin := targetBinary(t)
	port := freePort(t)
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "run", "instance.pid")

	// Started by "the script": its own process group and pid file.
	cmd := exec.Command(bin, "--port", strconv.Itoa(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() { killGroup(t, pid); <-waited })
	if err := writePIDFile(pidfile, pid); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "script's instance up", func() bool { return healthy(port) })

	tg := NewTarget("bot", "http://127.0.0.1:"+strconv.Itoa(port)+"/health", processSettings())
	tg.Restart = Restart{
		Strategy: StrategyPIDFile, Command: []string{bin, "--port", "{{.Port}}"}, Dir: dir,
		Log: "logs/instance.log", PIDFile: "run/instance.pid",
	}
	cfg := checkerConfig(tg)
	c, _ := startChecker(t, cfg, nil)
	testenv.WaitFor(t, 10*time.Second, "healthy with the script's pid", func() bool {
		s := statusOf(c, "bot")
		return s.State == StateHealthy && s.PID == pid
	})

	killed := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	<-waited
	var pid2 int
	testenv.WaitFor(t, 20*time.Second, "restarted with a new pid in the pid file", func() bool {
		pid2, _ = readPIDFile(pidfile)
		return pid2 > 0 && pid2 != pid && alive(pid2) && healthy(port) && statusOf(c, "bot").State == StateHealthy
	})
	t.Cleanup(func() { killGroup(t, pid2) })
	t.Logf("kill -9 of pid %d -> pid %d (from the pid file) answering /health after %s", pid, pid2, time.Since(killed))
	if st := statusOf(c, "bot"); st.Restarts.Total != 1 || st.PID != pid2 {
		t.Fatalf("status %+v", st)
	}
}

func TestCrashLoopBacksOffThenFails(t *testing.T) {
	hook := newWebhook(t, `{}`)
	dir := t.TempDir()
	starts := filepath.Join(dir, "starts")
	port := freePort(t) // nothing listens here
	tg := NewTarget("crasher", "http://127.0.0.1:"+strconv.Itoa(port)+"/health", processSettings())
	tg.Restart = Restart{
		Strategy: StrategySupervise,
		Command:  []string{"sh", "-c", "date +%s%N >> " + starts + "; exit 1"},
		Dir:      dir,
	}
	cfg := checkerConfig(tg)
	cfg.Alert = Alert{Webhook: hook.srv.URL, Kind: AlertGeneric}
	c, _ := startChecker(t, cfg, nil)

	testenv.WaitFor(t, 30*time.Second, "failed with an alert", func() bool {
		return statusOf(c, "crasher").State == StateFailed && hook.count() == 1
	})
	// The checker watches on without acting: ten more failed probes (a
	// second, past the longest backoff) and still no restart.
	failures := statusOf(c, "crasher").Liveness.ConsecutiveFailures
	testenv.WaitFor(t, 30*time.Second, "ten more failed probes of the failed target", func() bool {
		return statusOf(c, "crasher").Liveness.ConsecutiveFailures >= failures+10
	})
	b, err := os.ReadFile(starts)
	if err != nil {
		t.Fatal(err)
	}
	var at []time.Time
	for _, f := range strings.Fields(string(b)) {
		ns, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			t.Fatalf("starts file: %q", b)
		}
		at = append(at, time.Unix(0, ns))
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]).Round(time.Millisecond))
	}
	t.Logf("%d starts, gaps %v", len(at), gaps)
	// The first start plus the budget's 5 restarts.
	if len(at) != 6 || hook.count() != 1 {
		t.Fatalf("%d starts and %d alerts, want 6 and 1", len(at), hook.count())
	}
	want := []time.Duration{100, 200, 400, 800, 800}
	for i, g := range gaps {
		if g < want[i]*time.Millisecond {
			t.Errorf("gap %d is %s, shorter than its backoff %dms", i, g, want[i])
		}
		if i > 0 && i < 4 && g <= gaps[i-1] {
			t.Errorf("gap %d (%s) did not grow from %s", i, g, gaps[i-1])
		}
	}
	if st := statusOf(c, "crasher"); st.Restarts.Total != 5 || st.Restarts.InWindow != 5 || st.Backoff.Current != "800ms" {
		t.Errorf("status %+v", st)
	}
}

func TestOnExitLeaveAndStop(t *testing.T) {
	bin := targetBinary(t)
	for _, onExit := range []string{OnExitLeave, OnExitStop} {
		t.Run(onExit, func(t *testing.T) {
			_, stop, _, port, pid := startSupervised(t, bin, onExit)
			stop() // as SIGTERM does
			switch onExit {
			case OnExitLeave:
				if !alive(pid) || !healthy(port) {
					t.Fatalf("on_exit leave: pid %d not left serving", pid)
				}
			case OnExitStop:
				if alive(pid) {
					t.Fatalf("on_exit stop: pid %d still alive", pid)
				}
			}
		})
	}
}

func TestReloadStopsRemovedSupervisedAndClearsFailed(t *testing.T) {
	bin := targetBinary(t)
	port := freePort(t)
	sup := supervisedTarget(t, bin, port)
	s := fastSettings()
	s.FailureThreshold, s.StartupTimeout = 1, 50*time.Millisecond
	s.Budget = BudgetConfig{Restarts: 1, Window: time.Minute}
	down, marker := commandTarget(t, "down", "http://127.0.0.1:"+strconv.Itoa(freePort(t))+"/health", s)
	cfg := checkerConfig(sup, down)
	c, _ := startChecker(t, cfg, nil)
	pid := waitUp(t, c, sup.Name, port, 0)
	t.Cleanup(func() { killGroup(t, pid) })
	testenv.WaitFor(t, 10*time.Second, "down failed", func() bool { return statusOf(c, "down").State == StateFailed })
	if n := lines(marker); n != 1 {
		t.Fatalf("down restarted %d times, want 1", n)
	}

	next := DefaultConfig()
	next.Listen = ""
	next.Targets = []Target{down}
	if err := c.Reload(next); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "removed supervised instance stopped", func() bool { return !alive(pid) })
	// The reload cleared the failed state: restarts are allowed again.
	testenv.WaitFor(t, 10*time.Second, "down restarted after the reload", func() bool { return lines(marker) >= 2 })
	testenv.WaitFor(t, 10*time.Second, "down failed again", func() bool { return statusOf(c, "down").State == StateFailed })
}

// The pid file helpers the tests use are pkg/proc's.
var (
	alive        = proc.Alive
	readPIDFile  = proc.ReadPID
	writePIDFile = proc.WritePID
)

// launched starts the test instance as the fleet's scripts do (proc.Start
// and a launch record beside the pid file) with argv, env and dir of its
// own, and returns its pid.
func launched(t *testing.T, pidfile string, spec proc.Spec) int {
	t.Helper()
	rec, cmd, err := proc.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reap it when it is killed
	t.Cleanup(func() { killGroup(t, rec.PID) })
	if err := rec.Write(pidfile); err != nil {
		t.Fatal(err)
	}
	return rec.PID
}

func cmdline(pid int) string { return strings.Join(proc.Cmdline(pid), " ") }

// A restart brings the instance back with exactly the command line,
// environment and working directory it was launched with, not the ones in
// the checker's configuration.
func TestPIDFileRestartKeepsTheLaunchSpec(t *testing.T) {
	bin := targetBinary(t)
	port := freePort(t)
	dir, work := t.TempDir(), t.TempDir()
	pidfile := filepath.Join(dir, "run", "instance.pid")
	ps := strconv.Itoa(port)
	pid := launched(t, pidfile, proc.Spec{
		Argv: []string{bin, "--port", ps}, Dir: work, Log: filepath.Join(dir, "instance.out"),
		Env: append(os.Environ(), "INSTANCE_NAME=as-launched", "WEB_PORT=1"),
	})
	testenv.WaitFor(t, 10*time.Second, "launched instance up", func() bool { return healthy(port) })

	tg := NewTarget("bot", "http://127.0.0.1:"+ps+"/health", processSettings())
	tg.Restart = Restart{
		Strategy: StrategyPIDFile, Command: []string{bin, "--port", "{{.Port}}"}, Dir: dir,
		Env: map[string]string{"INSTANCE_NAME": "from-the-checker-config"}, PIDFile: "run/instance.pid",
	}
	cfg := checkerConfig(tg)
	c, _ := startChecker(t, cfg, nil)
	testenv.WaitFor(t, 10*time.Second, "adopted", func() bool { return statusOf(c, "bot").PID == pid })

	syscall.Kill(pid, syscall.SIGKILL)
	var pid2 int
	testenv.WaitFor(t, 20*time.Second, "restarted", func() bool {
		pid2, _ = readPIDFile(pidfile)
		return pid2 != pid && alive(pid2) && healthy(port)
	})
	t.Cleanup(func() { killGroup(t, pid2) })
	if got, want := cmdline(pid2), bin+" --port "+ps; got != want {
		t.Errorf("restarted as %q, want %q", got, want)
	}
	env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid2))
	if !strings.Contains("\x00"+string(env)+"\x00", "\x00INSTANCE_NAME=as-launched\x00") || strings.Contains(string(env), "from-the-checker-config") {
		t.Errorf("restarted without its launch environment: %q", env)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid2)); cwd != work {
		t.Errorf("restarted in %q, want %q", cwd, work)
	}
	if out, _ := os.ReadFile(filepath.Join(dir, "instance.out")); strings.Count(string(out), "as bot-instance") != 0 || strings.Count(string(out), "as as-launched") != 2 {
		t.Errorf("its output did not go on in the launch log:\n%s", out)
	}
	if rec, err := proc.ReadRecord(pidfile); err != nil || rec.PID != pid2 || rec.Dir != work {
		t.Errorf("new launch record %+v %v", rec, err)
	}
}

// A pid file that names an unrelated process (written over it, or a reused
// pid) is never signalled: the instance is started again beside it.
func TestPIDFileForeignPIDIsLeftAlone(t *testing.T) {
	bin := targetBinary(t)
	port := freePort(t)
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "instance.pid")
	ps := strconv.Itoa(port)
	pid := launched(t, pidfile, proc.Spec{Argv: []string{bin, "--port", ps}, Dir: dir})
	testenv.WaitFor(t, 10*time.Second, "launched instance up", func() bool { return healthy(port) })

	tg := NewTarget("bot", "http://127.0.0.1:"+ps+"/health", processSettings())
	tg.Restart = Restart{Strategy: StrategyPIDFile, Command: []string{bin, "--port", "{{.Port}}"}, Dir: dir, PIDFile: "instance.pid"}
	cfg := checkerConfig(tg)
	c, _ := startChecker(t, cfg, nil)
	testenv.WaitFor(t, 10*time.Second, "adopted", func() bool { return statusOf(c, "bot").PID == pid })

	// An unrelated process's pid lands in the instance's pid file (it has
	// a process group of its own, as the instance had), then the instance
	// dies.
	foreign := exec.Command("sleep", "600")
	foreign.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { foreign.Process.Kill(); foreign.Wait() })
	if err := writePIDFile(pidfile, foreign.Process.Pid); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	var pid2 int
	testenv.WaitFor(t, 20*time.Second, "restarted beside the foreign process", func() bool {
		pid2, _ = readPIDFile(pidfile)
		return pid2 != foreign.Process.Pid && alive(pid2) && healthy(port)
	})
	t.Cleanup(func() { killGroup(t, pid2) })
	if !alive(foreign.Process.Pid) {
		t.Fatalf("the foreign pid %d in the pid file was killed", foreign.Process.Pid)
	}
	if st := statusOf(c, "bot"); st.PID == foreign.Process.Pid {
		t.Errorf("status reports the foreign pid %d as the instance", st.PID)
	}
}
