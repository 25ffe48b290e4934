package testenv

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Etcd is an etcd process (Debian's etcd-server) owned by one test, the
// store of a kube-apiserver.
type Etcd struct {
	// URL is the client URL, http://127.0.0.1:port.
	URL string
}

// StartEtcd starts a one-member etcd on free loopback ports with its data in
// a temporary folder, waits until it reports healthy, and stops it when the
// test ends.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	path := LookPath(t, "etcd")
	dir := t.TempDir()
	client := fmt.Sprintf("http://%s", Addr(FreePort(t)))
	peer := fmt.Sprintf("http://%s", Addr(FreePort(t)))
	var log Buffer
	cmd := exec.Command(path,
		"--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--initial-cluster-state", "new",
		"--log-level", "warn", "--logger", "zap")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := startGroup(cmd); err != nil {
		t.Fatalf("testenv: start etcd: %v", err)
	}
	t.Cleanup(func() { killGroup(cmd, syscall.SIGKILL) })
	err := waitHTTP(client+"/health", &http.Client{Timeout: time.Second}, 30*time.Second)
	if err != nil {
		t.Fatalf("testenv: etcd on %s: %v\n%s", client, err, log.String())
	}
	return &Etcd{URL: client}
}
