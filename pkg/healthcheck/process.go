package healthcheck

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is an instance process: one the checker started (a child, which
// it reaps) or one it adopted by pid (which it polls).
type process struct {
	pid   int
	child bool
	group bool          // pid leads its process group: signal the group
	done  chan struct{} // closed when the process has exited
	mu    sync.Mutex
	err   error // the child's exit status, once done
}

// startSpec is how to start a process.
type startSpec struct {
	argv []string
	env  []string // added to the checker's environment
	dir  string
	log  string // file for stdout and stderr, appended; "" discards
}

// startProcess starts spec in its own process group (Setpgid), so that it
// survives the checker and can be stopped as a group.
func startProcess(spec startSpec) (*process, error) {
	if len(spec.argv) == 0 {
		return nil, errors.New("start: empty command")
	}
	cmd := exec.Command(spec.argv[0], spec.argv[1:]...)
	cmd.Dir = spec.dir
	cmd.Env = append(os.Environ(), spec.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.log != "" {
		if err := os.MkdirAll(filepath.Dir(spec.log), 0o755); err != nil {
			return nil, fmt.Errorf("start: log: %w", err)
		}
		f, err := os.OpenFile(spec.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("start: log: %w", err)
		}
		defer f.Close() // the child has its own copy
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.argv[0], err)
	}
	p := &process{pid: cmd.Process.Pid, child: true, group: true, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// adoptProcess watches a running process the checker did not start.
func adoptProcess(pid int) *process {
	p := &process{pid: pid, group: leadsGroup(pid), done: make(chan struct{})}
	if pid <= 1 { // never signal init or everything
		close(p.done)
		return p
	}
	go func() {
		for alive(pid) {
			time.Sleep(100 * time.Millisecond)
		}
		close(p.done)
	}()
	return p
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr returns how a child exited (nil for status 0 or an adopted one).
func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stop stops the process gracefully: SIGTERM to its process group, up to
// grace to exit, then SIGKILL to the group.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		p.signal(syscall.SIGKILL) // leftovers of the group, if any
		return nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop pid %d: %w", p.pid, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		p.signal(syscall.SIGKILL)
		return nil
	case <-t.C:
	}
	if err := p.signal(syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill pid %d: %w", p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("pid %d still alive 5s after SIGKILL", p.pid)
	}
}

// signal sends sig to the process's group when it leads one, else to the
// process alone.
func (p *process) signal(sig syscall.Signal) error {
	if p.pid <= 1 {
		return fmt.Errorf("refusing to signal pid %d", p.pid)
	}
	if p.group {
		return syscall.Kill(-p.pid, sig)
	}
	return syscall.Kill(p.pid, sig)
}

// leadsGroup reports whether pid leads its own process group, other than
// the checker's.
func leadsGroup(pid int) bool {
	pgid, err := syscall.Getpgid(pid)
	return err == nil && pgid == pid && pgid != syscall.Getpgrp()
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// readPIDFile returns the pid in path, 0 if the file does not exist.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return 0, nil
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("pid file %s: bad pid %q", path, s)
	}
	return pid, nil
}

// writePIDFile writes pid to path atomically.
func writePIDFile(path string, pid int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}
