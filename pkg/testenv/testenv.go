// Package testenv starts the real servers that integration tests run
// against — redis-server (standalone, TLS, a Cluster, a Sentinel set with
// redis-sentinel) and nginx — on free loopback ports, with their data in
// t.TempDir(), and stops them by process group when the test ends.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns "127.0.0.1:port".
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// LookPath returns the path of a program the tests need, or fails the test
// with the command that installs it.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testenv: %s not found on PATH; install what the tests need with: sudo scripts/install_deps.sh --tests (make test runs it)", name)
	}
	return p
}

// startGroup starts cmd in a process group of its own, so that killGroup
// ends it and anything it spawned.
func startGroup(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

// killGroup sends sig to cmd's process group and waits for cmd to exit.
func killGroup(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	_ = cmd.Wait()
}

// WriteFile writes body to the file name in a new t.TempDir() and returns
// its path: a test's config file.
func WriteFile(t testing.TB, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}
