package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// KubeAPIServer is a kube-apiserver process owned by one test: the real API
// server, with its own etcd, validation and admission, and no controllers
// or nodes, so objects are stored but nothing runs them.
type KubeAPIServer struct {
	// URL is https://127.0.0.1:port.
	URL string
	// Token is a bearer token of a system:masters user.
	Token string
	// CAFile holds the server's self-signed certificate chain, to trust.
	CAFile string
}

// KubeAPIServerPath returns the kube-apiserver that the module under test
// declares as a tool (go.mod: tool k8s.io/kubernetes/cmd/kube-apiserver),
// built by the go command and kept in its build cache, so only the first
// run compiles it.
func KubeAPIServerPath(t testing.TB) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "-n", "kube-apiserver")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: build kube-apiserver (go tool -n kube-apiserver in %s): %v\n%s", root, err, out)
	}
	return strings.TrimSpace(string(out))
}

// StartKubeAPIServer starts kube-apiserver on a free loopback port against
// etcd, authenticating one static token and allowing it everything, waits
// until /readyz answers 200, and stops it when the test ends.
func StartKubeAPIServer(t testing.TB, etcd *Etcd) *KubeAPIServer {
	t.Helper()
	path := KubeAPIServerPath(t)
	dir := t.TempDir()
	token := randomHex(t)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, token+`,admin,admin,"system:masters"`+"\n")
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, string(ecKeyPEM(t)))
	port := FreePort(t)
	certDir := filepath.Join(dir, "certs")
	var log Buffer
	cmd := exec.Command(path,
		"--etcd-servers", etcd.URL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port), "--cert-dir", certDir,
		"--token-auth-file", tokens, "--authorization-mode", "AlwaysAllow",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "10.96.0.0/16",
		// No kubernetes Service endpoints: it would want a non-loopback address.
		"--endpoint-reconciler-type", "none",
		"--enable-priority-and-fairness=false", "--profiling=false")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := startGroup(cmd); err != nil {
		t.Fatalf("testenv: start kube-apiserver: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	s := &KubeAPIServer{URL: "https://" + Addr(port), Token: token, CAFile: filepath.Join(certDir, "apiserver.crt")}
	// The certificate appears once the server has made it; until then the
	// readiness probe cannot verify it, and answers nothing meaningful.
	var err error
	ready := Eventually(2*time.Minute, func() bool {
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("testenv: kube-apiserver exited (%v) before it was ready:\n%s", werr, tail(log.String(), 4000))
		default:
		}
		err = s.ready()
		return err == nil
	})
	if !ready {
		t.Fatalf("testenv: kube-apiserver on %s not ready within 2m: %v\n%s", s.URL, err, tail(log.String(), 4000))
	}
	return s
}

// ready reports nil once GET /readyz answers 200.
func (s *KubeAPIServer) ready() error {
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("no certificate in %s yet", s.CAFile)
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// waitHTTP polls url until it answers 200 or the timeout passes.
func waitHTTP(url string, c *http.Client, timeout time.Duration) error {
	return poll(timeout, func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
}

func ecKeyPEM(t testing.TB) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
