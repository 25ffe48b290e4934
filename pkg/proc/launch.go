package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Spec is what to launch.
type Spec struct {
	// Argv is the command line (required).
	Argv []string
	// Env is the whole environment; nil means the caller's.
	Env []string
	// Dir is the working directory; empty means the caller's.
	Dir string
	// Log receives stdout and stderr, appended; empty discards them.
	Log string
	// Settings is stored in the record as it is.
	Settings string
}

// Start starts spec in a session and process group of its own (so that it
// outlives the caller and its terminal, and can be stopped as a group) and
// returns its record, with an absolute Dir and Log. The caller owns cmd: it
// must Wait for it (or exit, leaving the process to init).
func Start(spec Spec) (Record, *exec.Cmd, error) {
	if len(spec.Argv) == 0 {
		return Record{}, nil, errors.New("start: empty command")
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return Record{}, nil, fmt.Errorf("start: %w", err)
	}
	env := spec.Env
	if env == nil {
		env = os.Environ()
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	rec := Record{Argv: spec.Argv, Env: env, Dir: dir, Settings: spec.Settings}
	if spec.Log != "" {
		rec.Log = spec.Log
		if !filepath.IsAbs(rec.Log) {
			rec.Log = filepath.Join(dir, rec.Log)
		}
		if err := os.MkdirAll(filepath.Dir(rec.Log), 0o755); err != nil {
			return Record{}, nil, fmt.Errorf("start: log: %w", err)
		}
		f, err := os.OpenFile(rec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return Record{}, nil, fmt.Errorf("start: log: %w", err)
		}
		defer f.Close() // the child has its own copy
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return Record{}, nil, fmt.Errorf("start %s: %w", spec.Argv[0], err)
	}
	rec.PID = cmd.Process.Pid
	// The child exists from here on (a zombie at worst until reaped), so
	// its start time can be read even if it has already exited.
	if st, err := startTicks(rec.PID); err == nil {
		rec.Start = st
	}
	return rec, cmd, nil
}

// Spec returns the spec that launches r's command again.
func (r Record) Spec() Spec {
	return Spec{Argv: r.Argv, Env: r.Env, Dir: r.Dir, Log: r.Log, Settings: r.Settings}
}

// startTicks reads pid's start time, zombie or not.
func startTicks(pid int) (uint64, error) {
	f, err := fs()
	if err != nil {
		return 0, err
	}
	p, err := f.Proc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.Starttime, nil
}
