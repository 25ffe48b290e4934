package imtest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// sockets are the open event WebSockets of one app on a fake gateway
// (DingTalk's Stream, Feishu's long connection): both platforms send each
// event to one of an app's connections, in turn.
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

// pick is the connection the next event goes to, nil while none is open.
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

// every calls fn every d until ctx is done: the gateways' redelivery of
// unacknowledged events.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
