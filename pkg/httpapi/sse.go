package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// errClientGone is a streamed response whose client went away.
var errClientGone = errors.New("httpapi: the client went away")

// sse writes a Server-Sent Events response. Nothing is sent until the first
// event (or a heartbeat), so that a turn that fails before its reply
// begins is still answered with an ordinary error status. Each write
// carries its own deadline (server.write_timeout would cut a long stream),
// is flushed at once, and a heartbeat comment keeps idle connections (and
// nginx's read timeout) alive while the backend is slow.
type sse struct {
	w        http.ResponseWriter
	rc       *http.ResponseController
	deadline time.Duration

	mu      sync.Mutex
	started bool
	gone    bool
	last    time.Time
	buf     bytes.Buffer
	stop    chan struct{}
	stopped sync.Once
}

// newSSE prepares c's response for events; heartbeat is how long it may
// stay silent, writeTimeout bounds each write.
func newSSE(c echo.Context, heartbeat, writeTimeout time.Duration) *sse {
	w := c.Response()
	s := &sse{w: w, rc: http.NewResponseController(w), deadline: writeTimeout, stop: make(chan struct{}), last: time.Now()}
	go s.heartbeats(heartbeat)
	return s
}

func (s *sse) heartbeats(every time.Duration) {
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.mu.Lock()
			if now.Sub(s.last) >= every {
				s.write([]byte(": keep-alive\n\n"))
			}
			s.mu.Unlock()
		}
	}
}

// event writes one event: its id (when not empty), its name (when not
// empty) and data.
func (s *sse) event(id, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if id != "" {
		s.buf.WriteString("id: " + id + "\n")
	}
	if name != "" {
		s.buf.WriteString("event: " + name + "\n")
	}
	s.buf.WriteString("data: ")
	s.buf.Write(data)
	s.buf.WriteString("\n\n")
	return s.write(s.buf.Bytes())
}

// write sends b, headers first; s.mu is held.
func (s *sse) write(b []byte) error {
	if s.gone {
		return errClientGone
	}
	if !s.started {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: pass every event on at once
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.deadline))
	if _, err := s.w.Write(b); err != nil {
		s.gone = true
		return errClientGone
	}
	if err := s.rc.Flush(); err != nil {
		s.gone = true
		return errClientGone
	}
	s.last = time.Now()
	return nil
}

// Started reports whether anything was sent: an error must then be an
// event, not a status.
func (s *sse) Started() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// close stops the heartbeats.
func (s *sse) close() { s.stopped.Do(func() { close(s.stop) }) }
