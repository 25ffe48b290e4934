package imtest

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// sockets are a fake's open event WebSockets, and the count of those ever
// opened.
type sockets struct {
	mu     sync.Mutex
	conns  []*websocket.Conn
	next   int
	opened atomic.Int64
}

// join counts c opened and adds it; leave removes it.
func (s *sockets) join(c *websocket.Conn) (leave func()) {
	s.opened.Add(1)
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.conns = slices.DeleteFunc(s.conns, func(x *websocket.Conn) bool { return x == c })
		s.mu.Unlock()
	}
}

// pick is the connection the next event goes to, in turn; nil while none
// is open.
func (s *sockets) pick() *websocket.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil
	}
	c := s.conns[s.next%len(s.conns)]
	s.next++
	return c
}

// all is every open connection.
func (s *sockets) all() []*websocket.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.conns)
}

// Opened counts the connections ever opened.
func (s *sockets) Opened() int64 { return s.opened.Load() }

// Connections is the number of open connections.
func (s *sockets) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
