package proc

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/prometheus/procfs"
)

// tcpListen is the LISTEN state in /proc/net/tcp's st column.
const tcpListen = 0x0A

// ListenerPIDs returns the processes that hold a listening TCP socket
// (IPv4 or IPv6) on port, ascending. Sockets of other users' processes are
// found only with the rights to read their file descriptors.
func ListenerPIDs(port int) ([]int, error) {
	f, err := fs()
	if err != nil {
		return nil, fmt.Errorf("proc: %w", err)
	}
	inodes := map[string]bool{}
	for _, read := range []func() (procfs.NetTCP, error){f.NetTCP, f.NetTCP6} {
		lines, err := read()
		if err != nil {
			continue // no IPv6, say
		}
		for _, l := range lines {
			if l.St == tcpListen && l.LocalPort == uint64(port) {
				inodes["socket:["+strconv.FormatUint(l.Inode, 10)+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil, nil
	}
	return pids(f, func(p procfs.Proc) bool {
		targets, err := p.FileDescriptorTargets()
		return err == nil && slices.ContainsFunc(targets, func(t string) bool { return inodes[t] })
	})
}

// Listens reports whether pid holds a listening socket on port.
func Listens(pid, port int) bool {
	pids, err := ListenerPIDs(port)
	return err == nil && slices.Contains(pids, pid)
}
