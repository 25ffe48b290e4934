package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/testenv"
)

func noenv(string) string { return "" }

func TestHelpAndUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"healthchecker", "--help"}, noenv, &out, &errb); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage: healthchecker --config FILE", "--target", "-listen", "-addr-file", "-log-level", "SIGHUP", "on_exit"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, errb.String())
		}
	}
	cases := []struct {
		args []string
		want string
	}{
		{nil, "--config or --target is required"},
		{[]string{"--target", "nourl"}, "NAME=URL"},
		{[]string{"--target", "a=ftp://x"}, "liveness"},
		{[]string{"--config", "/nonexistent/hc.yaml"}, "/nonexistent/hc.yaml"},
		{[]string{"--target", "a=http://127.0.0.1:1/health", "extra"}, "unexpected argument"},
		{[]string{"--target", "a=http://127.0.0.1:1/health", "--log-level", "loud", "--listen", ""}, "log level"},
	}
	for _, tc := range cases {
		errb.Reset()
		err := run(context.Background(), append([]string{"healthchecker"}, tc.args...), noenv, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "hc.yaml")
	os.WriteFile(p, []byte("targets:\n  - name: a\n    liveness: http://127.0.0.1:1/health\n    restart: {strategy: supervise, comand: [x]}\n"), 0o644)
	err := run(context.Background(), []string{"healthchecker", "--config", p}, noenv, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "targets[0].restart.comand: unknown key") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("unknown key: %v", err)
	}
}

var serving = regexp.MustCompile(`"msg":"serving".*?"addr":"([^"]+)"`)

// startRun runs the command until the test ends and returns its /status URL.
func startRun(t *testing.T, args ...string) (base string, logs *testenv.Buffer, stop func() error) {
	t.Helper()
	logs = &testenv.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"healthchecker", "--listen", "127.0.0.1:0"}, args...), noenv, &bytes.Buffer{}, logs)
	}()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Errorf("run did not return")
			}
		})
		return runErr
	}
	t.Cleanup(func() { stop() })
	var m []string
	serves := testenv.Eventually(10*time.Second, func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, logs)
		default:
		}
		m = serving.FindStringSubmatch(logs.String())
		return m != nil
	})
	if !serves {
		t.Fatalf("no serving line:\n%s", logs)
	}
	return "http://" + m[1], logs, stop
}

func getStatus(t *testing.T, base string) healthcheck.StatusReport {
	t.Helper()
	resp, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep healthcheck.StatusReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestTargetFlagReportsOnly(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) }))
	defer down.Close()
	base, logs, stop := startRun(t, "--target", "up="+up.URL+"/health", "--target", "down="+down.URL+"/health", "--log-level", "debug")
	// Default settings: first probe after 1s + jitter, threshold 3 at 2s.
	testenv.WaitFor(t, 15*time.Second, "up healthy, down unhealthy", func() bool {
		rep := getStatus(t, base)
		return len(rep.Targets) == 2 && rep.Targets[0].State == healthcheck.StateHealthy && rep.Targets[1].State == healthcheck.StateUnhealthy
	})
	rep := getStatus(t, base)
	if d := rep.Targets[1]; d.Strategy != healthcheck.StrategyNone || d.Restarts.Total != 0 || !strings.Contains(d.Liveness.LastError, "500") {
		t.Fatalf("down: %+v", d)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(b.String(), `botfleet_healthcheck_target_state{state="unhealthy",target="down"} 1`) {
		t.Fatalf("metrics:\n%s", b.String())
	}
	if err := stop(); err != nil {
		t.Fatalf("run after cancel: %v\n%s", err, logs)
	}
}

// On port 0 the checker writes the address it got to addr_file (or
// --addr-file, which overrides it) once it listens: the one it logs and
// serves /status on.
func TestAddrFileNamesThePortListenedOn(t *testing.T) {
	dir := t.TempDir()
	fromConfig, fromFlag := filepath.Join(dir, "config.addr"), filepath.Join(dir, "run", "flag.addr")
	cfg := filepath.Join(dir, "hc.yaml")
	if err := os.WriteFile(cfg, []byte("listen: 127.0.0.1:9\naddr_file: "+fromConfig+"\ntargets:\n  - name: a\n    liveness: http://127.0.0.1:1/health\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		args       []string
	}{
		{"addr_file", fromConfig, []string{"--config", cfg}},
		{"--addr-file", fromFlag, []string{"--config", cfg, "--addr-file", fromFlag}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(fromConfig)
			base, logs, stop := startRun(t, tc.args...) // --listen 127.0.0.1:0
			addr, err := proc.ReadAddr(tc.file)
			if err != nil || "http://"+addr != base || strings.HasSuffix(addr, ":0") {
				t.Fatalf("%s holds %q (%v); the checker serves on %s\n%s", tc.file, addr, err, base, logs)
			}
			if got := getStatus(t, base); len(got.Targets) != 1 {
				t.Fatalf("status on the file's address: %+v", got)
			}
			if tc.file == fromFlag {
				if _, err := os.Stat(fromConfig); !os.IsNotExist(err) {
					t.Errorf("--addr-file given, yet the file's addr_file was written (%v)", err)
				}
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}

	err := run(context.Background(), []string{"healthchecker", "--config", cfg, "--listen", "127.0.0.1:0", "--addr-file", "/dev/null/addr"}, noenv, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "addr_file") {
		t.Fatalf("an addr file that cannot be written: %v, want an addr_file error", err)
	}
}

// SIGHUP is handled in run: it reloads the --config file.
func TestSIGHUPReloadsConfig(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	p := filepath.Join(t.TempDir(), "hc.yaml")
	write := func(names ...string) {
		var b strings.Builder
		b.WriteString("defaults: {period: 50ms, initial_delay: 10ms, jitter: 10ms}\ntargets:\n")
		for _, n := range names {
			b.WriteString("  - {name: " + n + ", liveness: '" + up.URL + "/health'}\n")
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a")
	base, logs, _ := startRun(t, "--config", p)
	names := func() string {
		var n []string
		for _, s := range getStatus(t, base).Targets {
			n = append(n, s.Name+":"+string(s.State))
		}
		return strings.Join(n, ",")
	}
	testenv.WaitFor(t, 15*time.Second, "a healthy", func() bool { return names() == "a:healthy" })

	write("b", "c")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "b and c after SIGHUP", func() bool { return names() == "b:healthy,c:healthy" })

	os.WriteFile(p, []byte("bogus: 1\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	testenv.WaitFor(t, 15*time.Second, "bad reload logged", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if names() != "b:healthy,c:healthy" {
		t.Fatalf("a bad reload changed the targets: %s", names())
	}
}
