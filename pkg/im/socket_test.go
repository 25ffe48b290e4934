package im

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// gateway accepts one WebSocket and holds it open, reading nothing (so it
// answers no ping), until the test ends.
func gateway(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		<-done
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

func dial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// A keep-alive that finds the connection dead ends ReadSocket with its
// error, so the link reconnects saying why, not as a clean stop.
func TestReadSocketEndsWithTheKeepAlivesError(t *testing.T) {
	noPong := errors.New("ping: no pong")
	up := 0
	c := &Conn{up: func() { up++ }}
	err := c.ReadSocket(context.Background(), dial(t, gateway(t)), "test: ws", 1<<10,
		func(ctx context.Context, dead func(error)) { dead(noPong) },
		func(context.Context, websocket.MessageType, []byte) error {
			t.Error("a message from a gateway that sends none")
			return nil
		})
	if !errors.Is(err, noPong) || !strings.Contains(err.Error(), "test: ws keep-alive") {
		t.Fatalf("ReadSocket = %v, want the keep-alive's error", err)
	}
	if up != 1 {
		t.Fatalf("Connected %d times, want 1", up)
	}
}

// The bot stopping (its context ending) is a clean close: nil.
func TestReadSocketReturnsNilWhenTheBotStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{up: func() {}}
	err := c.ReadSocket(ctx, dial(t, gateway(t)), "test: ws", 1<<10,
		func(context.Context, func(error)) { cancel() },
		func(context.Context, websocket.MessageType, []byte) error { return nil })
	if err != nil {
		t.Fatalf("ReadSocket = %v after the bot stopped, want nil", err)
	}
}
