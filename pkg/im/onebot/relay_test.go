package onebot

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/coder/websocket"
)

// A call relayed to the socket holder and already on the wire when a
// drain ends the holder's socket context is answered, not given up: the
// caller would retry a message the implementation may have sent.
func TestARelayedCallOnTheWireOutlivesADrain(t *testing.T) {
	r := testenv.StartRedis(t)
	onWire, answer := make(chan struct{}), make(chan struct{})
	impl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, frame, err := c.Read(req.Context())
		if err != nil {
			return
		}
		var call struct {
			Echo json.RawMessage `json:"echo"`
		}
		_ = json.Unmarshal(frame, &call)
		close(onWire)
		<-answer // the message went out; its answer comes after the drain began
		_ = c.Write(req.Context(), websocket.MessageText, []byte(`{"status":"ok","retcode":0,"data":{"message_id":7},"echo":`+string(call.Echo)+`}`))
		_, _, _ = c.Read(req.Context()) // until the bot closes
	}))
	defer impl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard, not a timing assertion
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(impl.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	a := New(Options{Redis: r.Client(), CallTimeout: 10 * time.Second})
	s := newSocket(conn)
	held, drain := context.WithCancel(ctx)
	defer drain()
	go func() { _ = s.read(held, nil) }() // only answers arrive: no event reaches the nil Conn
	go a.serveRelay(held, "10001", s, slog.New(slog.DiscardHandler))

	type result struct {
		r   apiResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		res, err := a.relay(ctx, "10001", "send_msg", map[string]any{"user_id": 42, "message": "hi"})
		got <- result{res, err}
	}()
	select {
	case <-onWire:
	case <-ctx.Done():
		t.Fatal("the relayed call never reached the implementation")
	}
	drain()
	close(answer)
	select {
	case g := <-got:
		if g.err != nil || g.r.RetCode != 0 || g.r.Status != "ok" {
			t.Fatalf("relayed send_msg: %+v, %v; want the implementation's answer", g.r, g.err)
		}
	case <-ctx.Done():
		t.Fatal("the relayed call was never answered")
	}
}
