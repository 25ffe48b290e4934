package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// child is a process the harness started, in a process group of its own, so
// that stop ends it and anything it spawned (nginx's workers) by group, and
// a Ctrl-C at the terminal reaches only the harness, which stops it.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	quit   syscall.Signal // the graceful stop signal
	once   sync.Once
}

// start runs name with args and env (nil: the harness's environment),
// output appended to dir/logs/<log>.log.
func start(dir, log string, env []string, quit syscall.Signal, name string, args ...string) (*child, error) {
	logFile := filepath.Join(dir, "logs", log+".log")
	out, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(name, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", log, err)
	}
	p := &child{name: log, cmd: cmd, log: logFile, exited: make(chan struct{}), quit: quit}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// pid is the process's id.
func (p *child) pid() int { return p.cmd.Process.Pid }

// stop sends the graceful signal to the process, SIGKILL to its group if it
// has not exited within grace, and waits for it; a group member left behind
// (a worker) is killed too. Only the first call acts: once the group is
// gone its id may be another's.
func (p *child) stop(grace time.Duration) {
	if p == nil {
		return
	}
	p.once.Do(func() { p.end(grace) })
}

func (p *child) end(grace time.Duration) {
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(p.pid(), p.quit)
		select {
		case <-p.exited:
		case <-time.After(grace):
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
			<-p.exited
		}
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// waitFor polls ready every few milliseconds until it reports true, the
// process exits, ctx ends or timeout passes.
func (p *child) waitFor(ctx context.Context, timeout time.Duration, what string, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start; see %s", p.name, p.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not within %v; see %s", p.name, what, timeout, p.log)
		}
	}
	return nil
}

// httpOK reports whether GET url answers 200.
func httpOK(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// addr is "127.0.0.1:port".
func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// errStopped reports a fleet that was asked for after it was stopped.
var errStopped = errors.New("bench: the fleet is stopped")

// alive reports whether p was started and has not exited.
func alive(p *child) bool {
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the process (not its group) while it runs.
func (p *child) signal(sig syscall.Signal) error {
	if !alive(p) {
		return errExited
	}
	return syscall.Kill(p.pid(), sig)
}

// kill sends SIGKILL to the process's group and waits for it to exit.
func (p *child) kill() {
	if alive(p) {
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
	}
}

// errExited reports a signal to a process that has exited.
var errExited = errors.New("bench: the process has exited")
