package proc

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// sleeper starts a process that lives until the test ends.
func sleeper(t *testing.T, pgroup bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if pgroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestStartWritesARecordThatFindTrusts(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "run", "x.pid")
	rec, cmd, err := Start(Spec{Argv: []string{"sleep", "600"}, Env: []string{"A=1"}, Dir: dir, Log: "logs/x.out", Settings: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := rec.Write(pidfile); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(RecordPath(pidfile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("record %v mode %v; want 0600 (it holds the environment)", err, fi.Mode())
	}
	got, err := ReadRecord(pidfile)
	if err != nil || got.PID != cmd.Process.Pid || got.Start == 0 || got.Dir != dir || got.Log != filepath.Join(dir, "logs/x.out") ||
		!slices.Equal(got.Env, []string{"A=1"}) || got.Settings != "s1" {
		t.Fatalf("record %+v (%v)", got, err)
	}
	id, err := Find(pidfile, 0)
	if err != nil || id.PID != cmd.Process.Pid || id.PGID != id.PID {
		t.Fatalf("Find: %+v %v; want the launched pid leading its own group", id, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := Find(pidfile, 0); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Find after exit: %v, want ErrNotRunning", err)
	}
	if _, err := ReadRecord(pidfile); err != nil {
		t.Fatalf("the record must outlive its process: %v", err)
	}
}

func TestFindRefusesAForeignPid(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "x.pid")
	rec, cmd, err := Start(Spec{Argv: []string{"sleep", "600"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := rec.Write(pidfile); err != nil {
		t.Fatal(err)
	}
	// Someone writes an unrelated pid over the pid file: the record
	// names another pid, so nothing vouches for it.
	other := sleeper(t, false)
	if err := WritePID(pidfile, other.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(pidfile, 0); !errors.Is(err, ErrForeign) {
		t.Fatalf("foreign pid: %v, want ErrForeign", err)
	}
	// The record's pid reused by a later process: the start time differs.
	oid, err := Identify(other.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	rec.PID, rec.Start = oid.PID, oid.Start+100
	if err := rec.Write(pidfile); err != nil {
		t.Fatal(err)
	}
	if _, err := Find(pidfile, 0); !errors.Is(err, ErrForeign) {
		t.Fatalf("reused pid: %v, want ErrForeign", err)
	}
}

func TestFindWithoutRecordTrustsTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pidfile := filepath.Join(t.TempDir(), "x.pid")
	WritePID(pidfile, os.Getpid())
	if id, err := Find(pidfile, port); err != nil || id.PID != os.Getpid() {
		t.Fatalf("the listener of port %d: %+v %v", port, id, err)
	}
	pids, err := ListenerPIDs(port)
	if err != nil || !slices.Equal(pids, []int{os.Getpid()}) {
		t.Fatalf("ListenerPIDs(%d) = %v %v", port, pids, err)
	}
	other := sleeper(t, false)
	WritePID(pidfile, other.Process.Pid)
	if _, err := Find(pidfile, port); !errors.Is(err, ErrForeign) {
		t.Fatalf("a process that does not listen on %d: %v, want ErrForeign", port, err)
	}
}

func TestGroupListsLiveMembers(t *testing.T) {
	leader := sleeper(t, true)
	pgid := leader.Process.Pid
	// A second member of the leader's group.
	member := exec.Command("sleep", "600")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: pgid}
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Process.Kill(); member.Wait() })
	got, _ := Group(pgid)
	if !slices.Equal(got, []int{pgid, member.Process.Pid}) {
		t.Fatalf("Group(%d) = %v", pgid, got)
	}
	// The leader dies; its group lives on in the member.
	leader.Process.Kill()
	leader.Wait()
	if got, _ := Group(pgid); !slices.Equal(got, []int{member.Process.Pid}) {
		t.Fatalf("Group(%d) after the leader died = %v, want the orphan %d", pgid, got, member.Process.Pid)
	}
	if Alive(pgid) || !Alive(member.Process.Pid) {
		t.Fatal("Alive")
	}
}

func TestAddrFileNamesTheBoundPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	path := filepath.Join(t.TempDir(), "run", "x.addr")
	if _, err := ReadAddr(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadAddr before WriteAddr: %v, want os.ErrNotExist", err)
	}
	if err := WriteAddr(path, ln.Addr()); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAddr(path)
	if err != nil || got != ln.Addr().String() || strings.HasSuffix(got, ":0") {
		t.Fatalf("ReadAddr = %q, %v; want %s", got, err, ln.Addr())
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}
}
