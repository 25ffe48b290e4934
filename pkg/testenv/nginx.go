package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nginxPlaces are where distributions put nginx when it is not on PATH
// (Debian's /usr/sbin is not on an ordinary user's PATH).
var nginxPlaces = []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx", "/sbin/nginx"}

// NginxPath returns the nginx program, from PATH or its usual places, or
// fails the test with the command that installs it.
func NginxPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range nginxPlaces {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("testenv: nginx not found on PATH nor in %v; install it with: sudo scripts/install_deps.sh (or apt-get install nginx)", nginxPlaces)
	return ""
}

// Nginx is an nginx master process owned by one test, running in the
// foreground from a prefix folder in t.TempDir().
type Nginx struct {
	// Prefix is nginx's -p folder: relative paths in the configuration
	// (pid, logs/, *_temp) are under it.
	Prefix string
	// Conf is the configuration file, inside Prefix.
	Conf string
	// Addrs are the host:port of the configuration's listen directives.
	Addrs []string

	t    testing.TB
	path string
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *Buffer
	// exited is closed when the master has exited and been reaped.
	exited chan struct{}
}

var listenRE = regexp.MustCompile(`(?m)^\s*listen\s+([^\s;]+:\d+)`)

// NginxPrefix makes a prefix folder for nginx in t.TempDir(), with the
// logs/ folder the configurations need. When the tests run as root nginx's
// workers run as nobody, so the folder is opened up for them to enter.
func NginxPrefix(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatalf("testenv: nginx prefix: %v", err)
	}
	if os.Geteuid() == 0 {
		// t.TempDir() folders are 0700; the workers need to reach the temp
		// folders nginx makes (and chowns) inside.
		for d := dir; d != os.TempDir() && d != "/" && strings.HasPrefix(d, os.TempDir()); d = filepath.Dir(d) {
			_ = os.Chmod(d, 0o755)
		}
	}
	return dir
}

// NginxTest runs `nginx -t` on the configuration text conf from a fresh
// prefix folder and returns its output and whether the test passed.
func NginxTest(t testing.TB, conf string) (string, error) {
	t.Helper()
	prefix := NginxPrefix(t)
	file := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatalf("testenv: write nginx.conf: %v", err)
	}
	return nginxTest(NginxPath(t), prefix, file)
}

func nginxTest(path, prefix, file string) (string, error) {
	out, err := exec.Command(path, "-t", "-q", "-p", prefix+"/", "-c", file).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("nginx -t: %v", err)
	}
	return string(out), nil
}

// StartNginx writes the configuration text conf into a fresh prefix folder,
// checks it with `nginx -t`, starts `nginx -p prefix -c conf -g 'daemon
// off;'` in a process group of its own, waits until every `listen host:port`
// of conf accepts connections, and stops it when the test ends. conf must
// not set the daemon directive (render it with DAEMON empty); its relative
// paths are under the prefix. Its logs join the run's (RunLog) at the end.
func StartNginx(t testing.TB, conf string) *Nginx {
	t.Helper()
	n := &Nginx{t: t, path: NginxPath(t), Prefix: NginxPrefix(t), out: &Buffer{}}
	// After Stop, before the prefix goes: its logs join the run's (RunLog).
	t.Cleanup(func() { CollectLogFiles(filepath.Join(n.Prefix, "logs")) })
	n.Conf = filepath.Join(n.Prefix, "nginx.conf")
	for _, m := range listenRE.FindAllStringSubmatch(conf, -1) {
		n.Addrs = append(n.Addrs, m[1])
	}
	n.write(conf)
	if out, err := nginxTest(n.path, n.Prefix, n.Conf); err != nil {
		t.Fatalf("testenv: %v\n%s\n%s", err, out, conf)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd := exec.Command(n.path, "-p", n.Prefix+"/", "-c", n.Conf, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := startGroup(cmd); err != nil {
		t.Fatalf("testenv: start nginx: %v", err)
	}
	n.cmd = cmd
	t.Cleanup(n.Stop)
	exited := make(chan struct{})
	n.exited = exited
	go func() {
		// Wait reaps the master; Stop waits on this channel instead.
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range n.Addrs {
		accepts := Eventually(time.Until(deadline), func() bool {
			select {
			case <-exited:
				t.Fatalf("testenv: nginx exited at start: %s\n%s", n.out.String(), n.ErrorLog())
			default:
			}
			return dialable(a)
		})
		if !accepts {
			t.Fatalf("testenv: nginx does not accept on %s: %s\n%s", a, n.out.String(), n.ErrorLog())
		}
	}
	return n
}

func (n *Nginx) write(conf string) {
	n.t.Helper()
	if err := os.WriteFile(n.Conf, []byte(conf), 0o644); err != nil {
		n.t.Fatalf("testenv: write nginx.conf: %v", err)
	}
}

// Pid is the master process's id.
func (n *Nginx) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Reload replaces the configuration with conf (when not empty), checks it
// with `nginx -t`, sends the master SIGHUP and waits until the old workers
// have been replaced by new ones, so that only the new configuration serves.
func (n *Nginx) Reload(conf string) {
	n.t.Helper()
	if conf != "" {
		n.write(conf)
	}
	if out, err := nginxTest(n.path, n.Prefix, n.Conf); err != nil {
		n.t.Fatalf("testenv: reload: %v\n%s", err, out)
	}
	pid := n.Pid()
	if pid == 0 {
		n.t.Fatalf("testenv: reload: nginx is not running")
	}
	before := children(pid)
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		n.t.Fatalf("testenv: reload: %v", err)
	}
	// Old and new workers both accept for a moment; the new configuration
	// is the only one served once every old worker has exited (they finish
	// their in-flight requests first).
	var fresh, old int
	replaced := Eventually(15*time.Second, func() bool {
		fresh, old = 0, 0
		for c := range children(pid) {
			if before[c] {
				old++
			} else {
				fresh++
			}
		}
		return fresh > 0 && old == 0
	})
	if !replaced {
		n.t.Fatalf("testenv: reload: after SIGHUP, %d new and %d old nginx workers\n%s", fresh, old, n.ErrorLog())
	}
}

// Stop sends the master SIGQUIT (graceful), then SIGKILL to its group if
// it has not exited within 5 seconds, and waits for it.
func (n *Nginx) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return
	}
	_ = syscall.Kill(n.cmd.Process.Pid, syscall.SIGQUIT)
	select {
	case <-n.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.exited
	}
	// Workers are in the master's group; make sure none outlives it.
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	n.cmd = nil
}

// ErrorLog returns logs/error.log under the prefix.
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Prefix, "logs", "error.log"))
	return string(b)
}

// AccessLog returns logs/access.log under the prefix.
func (n *Nginx) AccessLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Prefix, "logs", "access.log"))
	return string(b)
}

// URL returns "http://" + the first listen address + path.
func (n *Nginx) URL(path string) string { return "http://" + n.Addrs[0] + path }

func dialable(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// children returns the pids whose parent is pid, from /proc.
func children(pid int) map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out[c] = true
		}
	}
	return out
}
