package healthcheck

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
)

// process is an instance process: one the checker started (a child, which
// it reaps) or one it adopted by pid (which it polls).
type process struct {
	pid   int
	child bool
	group bool          // pid leads its process group: signal the group
	done  chan struct{} // closed when the process has exited
	err   error         // the child's exit status, set before done closes
}

// startProcess starts spec in a session and process group of its own, so
// that it survives the checker and can be stopped as a group, and returns
// it with its launch record.
func startProcess(spec proc.Spec) (*process, proc.Record, error) {
	rec, cmd, err := proc.Start(spec)
	if err != nil {
		return nil, proc.Record{}, err
	}
	p := &process{pid: rec.PID, child: true, group: true, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, rec, nil
}

// adoptProcess watches a running process the checker did not start, by its
// identity, so a later process that reuses the pid is not taken for it.
func adoptProcess(id proc.Identity) *process {
	p := &process{pid: id.PID, group: proc.LeadsGroup(id.PID), done: make(chan struct{})}
	if id.PID <= 1 { // never signal init or everything
		close(p.done)
		return p
	}
	go func() {
		for proc.Same(id) {
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

// exitErr returns how a child exited (nil for status 0, a running process
// or an adopted one).
func (p *process) exitErr() error {
	if !p.exited() {
		return nil
	}
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

// environ returns the checker's environment with env (KEY=VALUE) added.
func environ(env []string) []string { return append(os.Environ(), env...) }
