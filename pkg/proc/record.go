package proc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Record is how a process was launched, kept beside its pid file.
type Record struct {
	// PID and Start identify the process (see Identity).
	PID   int    `json:"pid"`
	Start uint64 `json:"start_ticks"`
	// Argv is its command line; Argv[0] as it was given.
	Argv []string `json:"argv"`
	// Env is its whole environment, KEY=VALUE.
	Env []string `json:"env"`
	// Dir is its absolute working directory.
	Dir string `json:"dir"`
	// Log is the file its stdout and stderr are appended to; empty means
	// discarded.
	Log string `json:"log,omitempty"`
	// Settings is a digest of what configures it, so that processes
	// launched alike can be told from ones launched otherwise; its meaning
	// is the launcher's (see cmd/fleetctl).
	Settings string `json:"settings,omitempty"`
}

// Identity returns the process the record names.
func (r Record) Identity() Identity { return Identity{PID: r.PID, Start: r.Start} }

// RecordPath is where the record of pidfile is kept.
func RecordPath(pidfile string) string { return pidfile + ".json" }

// ReadPID returns the pid in pidfile; 0 and no error when the file does not
// exist or is empty.
func ReadPID(pidfile string) (int, error) {
	b, err := os.ReadFile(pidfile)
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
		return 0, fmt.Errorf("pid file %s: bad pid %q", pidfile, s)
	}
	return pid, nil
}

// ReadRecord returns the record beside pidfile, whether or not its process
// still runs; os.ErrNotExist when there is none.
func ReadRecord(pidfile string) (Record, error) {
	b, err := os.ReadFile(RecordPath(pidfile))
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("launch record %s: %w", RecordPath(pidfile), err)
	}
	if r.PID <= 1 || len(r.Argv) == 0 {
		return Record{}, fmt.Errorf("launch record %s: no pid or argv", RecordPath(pidfile))
	}
	return r, nil
}

// Write writes the record beside pidfile, then the pid file, each
// atomically.
func (r Record) Write(pidfile string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(RecordPath(pidfile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return WritePID(pidfile, r.PID)
}

// WritePID writes pid to pidfile atomically, without a record.
func WritePID(pidfile string, pid int) error {
	if err := writeAtomic(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

// Remove removes pidfile and its record.
func Remove(pidfile string) {
	_ = os.Remove(pidfile)
	_ = os.Remove(RecordPath(pidfile))
}

// writeAtomic writes b to path through a temporary file beside it, so
// that a reader sees the old content or the new, never part of it.
func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Find returns the live process pidfile names, when it is the one the
// file was written for: the record beside it names the same pid and start
// time, or, without a matching record, the process listens on port (0:
// no port to check). It returns ErrNotRunning when the file names no live
// process and ErrForeign (with the pid) when it names another one.
func Find(pidfile string, port int) (Identity, error) {
	pid, err := ReadPID(pidfile)
	if err != nil {
		return Identity{}, err
	}
	id, err := Identify(pid)
	if err != nil {
		return Identity{}, ErrNotRunning
	}
	if r, err := ReadRecord(pidfile); err == nil && r.PID == pid {
		if r.Start == id.Start {
			return id, nil
		}
		return id, fmt.Errorf("%w: pid %d started at tick %d, not %d as launched", ErrForeign, pid, id.Start, r.Start)
	}
	if port > 0 && Listens(pid, port) {
		return id, nil
	}
	if port > 0 {
		return id, fmt.Errorf("%w: pid %d has no launch record and does not listen on port %d", ErrForeign, pid, port)
	}
	return id, fmt.Errorf("%w: pid %d has no launch record", ErrForeign, pid)
}
