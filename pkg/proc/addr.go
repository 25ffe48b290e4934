package proc

import (
	"net"
	"os"
	"strings"
)

// WriteAddr writes addr, the address a process listens on, to path
// atomically: a server started on port 0 tells whoever started it the port
// it got (the bot's server.addr_file, the health checker's addr_file).
func WriteAddr(path string, addr net.Addr) error {
	return writeAtomic(path, []byte(addr.String()+"\n"), 0o644)
}

// ReadAddr returns the address WriteAddr wrote to path; os.ErrNotExist
// (wrapped) until it has.
func ReadAddr(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
