package proc

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/prometheus/procfs"
)

// Identity is a process as /proc shows it.
type Identity struct {
	// PID is the process id.
	PID int
	// PGID is its process group.
	PGID int
	// Start is when it started, in clock ticks since boot: with PID it
	// names one process, whatever later reuses the pid.
	Start uint64
}

// Errors of Find and Identify.
var (
	// ErrNotRunning: no live process has the pid (or the pid file is
	// missing or empty).
	ErrNotRunning = errors.New("not running")
	// ErrForeign: the pid is alive but is not the process the pid file
	// was written for.
	ErrForeign = errors.New("pid belongs to another process")
)

func fs() (procfs.FS, error) { return procfs.NewDefaultFS() }

// Identify returns the identity of the live process pid, ErrNotRunning when
// there is none or it is a zombie.
func Identify(pid int) (Identity, error) {
	if pid <= 0 {
		return Identity{}, ErrNotRunning
	}
	f, err := fs()
	if err != nil {
		return Identity{}, fmt.Errorf("proc: %w", err)
	}
	p, err := f.Proc(pid)
	if err != nil {
		return Identity{}, ErrNotRunning
	}
	st, err := p.Stat()
	if err != nil {
		return Identity{}, ErrNotRunning
	}
	if dead(st) {
		return Identity{}, ErrNotRunning
	}
	return Identity{PID: pid, PGID: st.PGRP, Start: st.Starttime}, nil
}

// Alive reports whether pid is a live (not zombie) process.
func Alive(pid int) bool {
	_, err := Identify(pid)
	return err == nil
}

// Same reports whether the process id.PID is still the one id names.
func Same(id Identity) bool {
	now, err := Identify(id.PID)
	return err == nil && now.Start == id.Start
}

// LeadsGroup reports whether pid leads a process group other than the
// caller's, so that signalling the group reaches its children too.
func LeadsGroup(pid int) bool {
	pgid, err := syscall.Getpgid(pid)
	return err == nil && pgid == pid && pgid != syscall.Getpgrp()
}

// Group returns the live members of process group pgid, ascending.
func Group(pgid int) ([]int, error) {
	if pgid <= 1 {
		return nil, nil
	}
	f, err := fs()
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	return pids(f, func(p procfs.Proc) bool {
		st, err := p.Stat()
		return err == nil && st.PGRP == pgid && !dead(st)
	})
}

// pids returns the processes that match, ascending.
func pids(f procfs.FS, match func(procfs.Proc) bool) ([]int, error) {
	all, err := f.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	var out []int
	for _, p := range all {
		if match(p) {
			out = append(out, p.PID)
		}
	}
	slices.Sort(out)
	return out, nil
}

// dead reports whether st is a zombie's or a dying process's.
func dead(st procfs.ProcStat) bool { return st.State == "Z" || st.State == "X" }

// Cmdline returns pid's arguments, nil when it cannot be read.
func Cmdline(pid int) []string {
	f, err := fs()
	if err != nil {
		return nil
	}
	p, err := f.Proc(pid)
	if err != nil {
		return nil
	}
	c, _ := p.CmdLine()
	return c
}
