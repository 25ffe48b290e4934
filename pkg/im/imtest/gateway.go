package imtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/coder/websocket"
)

// gateway is what the DingTalk and Feishu fakes share: one app's event
// WebSockets (both platforms send each event to one of an app's
// connections, in turn), served until the test ends, and the redelivery of
// events not acknowledged within Redeliver.
type gateway struct {
	*record
	URL string
	// Redeliver is how long an event waits for its acknowledgement before
	// it goes again. Default 1s.
	Redeliver time.Duration

	ctx   context.Context
	seq   atomic.Int64
	pings atomic.Int64

	connMu sync.Mutex
	conns  []*websocket.Conn
	next   int
	opened atomic.Int64
}

// serve serves h on loopback until the test ends, and calls redeliver every
// Redeliver/2 meanwhile.
func (g *gateway) serve(t testing.TB, h http.Handler, redeliver func()) {
	g.record, g.Redeliver = newRecord(), time.Second
	ctx, cancel := context.WithCancel(context.Background())
	g.ctx = ctx
	// URL is set before the server starts, so that handlers reading it
	// (the endpoints handed out) race with nothing.
	srv := httptest.NewUnstartedServer(h)
	g.URL = "http://" + srv.Listener.Addr().String()
	srv.Start()
	t.Cleanup(func() { cancel(); srv.Close() })
	go g.every(redeliver)
}

// every calls fn every Redeliver/2 until the test ends.
func (g *gateway) every(fn func()) {
	pause.Every(g.ctx, g.Redeliver/2, func() bool { fn(); return true })
}

// join counts c opened and adds it; leave removes it.
func (g *gateway) join(c *websocket.Conn) (leave func()) {
	g.opened.Add(1)
	g.connMu.Lock()
	g.conns = append(g.conns, c)
	g.connMu.Unlock()
	return func() {
		g.connMu.Lock()
		g.conns = slices.DeleteFunc(g.conns, func(x *websocket.Conn) bool { return x == c })
		g.connMu.Unlock()
	}
}

// pick is the connection the next event goes to, nil while none is open.
func (g *gateway) pick() *websocket.Conn {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if len(g.conns) == 0 {
		return nil
	}
	c := g.conns[g.next%len(g.conns)]
	g.next++
	return c
}

// all is every open connection.
func (g *gateway) all() []*websocket.Conn {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	return slices.Clone(g.conns)
}

// Pings counts the pings answered; Opened the connections ever opened.
func (g *gateway) Pings() int64  { return g.pings.Load() }
func (g *gateway) Opened() int64 { return g.opened.Load() }

// Connections is the number of open connections.
func (g *gateway) Connections() int {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	return len(g.conns)
}
