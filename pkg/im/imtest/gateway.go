package imtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/pause"
)

// gateway is what the DingTalk and Feishu fakes share: one app's event
// WebSockets (both platforms send each event to one of an app's
// connections, in turn: sockets.pick), served until the test ends, and the
// redelivery of events not acknowledged within Redeliver.
type gateway struct {
	*record
	URL string
	// Redeliver is how long an event waits for its acknowledgement before
	// it goes again. Default 1s.
	Redeliver time.Duration

	sockets
	ctx   context.Context
	seq   atomic.Int64
	pings atomic.Int64
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

// Pings counts the pings answered.
func (g *gateway) Pings() int64 { return g.pings.Load() }
