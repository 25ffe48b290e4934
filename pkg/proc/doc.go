// Package proc identifies the local fleet's processes through /proc (read
// with prometheus/procfs) and owns the pid files that name them and the
// address files that say where they listen.
//
// A pid file holds one pid. Beside it, in PIDFILE.json (mode 0600: the
// environment may hold secrets), a Record says how that process was
// launched: its argv, its whole environment, its working directory, the
// file its output goes to, and its start time in clock ticks since boot.
// The record outlives the process, so whoever restarts it (the health
// checker) starts exactly what was started before, and the start time tells
// the process from a later one that reuses its pid.
//
// Find is the one check that a pid file names the process it claims to:
// the pid is alive and either its start time is the record's, or (a pid
// file without a record) it owns the listening socket of the given port.
// Anything else is ErrForeign and must not be signalled; a dead pid is
// ErrNotRunning.
//
// An address file holds the host:port a server listens on, written
// (atomically, like a pid file) once it does: with port 0 it is how the
// starter learns the port (WriteAddr, ReadAddr).
//
// Group lists a process group's live members (nginx's workers stay in their
// master's group after the master dies), ListenerPIDs the owners of a
// listening TCP port.
package proc
