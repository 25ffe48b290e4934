package imtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// OneBot is a fake OneBot v11 implementation logged in as one QQ account:
// a forward WebSocket server (universal at /, split at /event and /api)
// that sends every event to every connected client, as OneBot does, and a
// reverse WebSocket client (DialReverse). API calls (send_msg,
// get_login_info) are answered with their echo.
type OneBot struct {
	*record
	// URL is the forward server, ws://127.0.0.1:port.
	URL   string
	self  int64
	token string

	// sockets are those that receive events (Connections), under mu
	// with the backlog: events pushed while no reverse socket was open.
	sockets
	mu      sync.Mutex
	backlog []string
	reverse bool
	ctx     context.Context

	refused atomic.Int64
	// calls counts the API calls by the kind of socket they came on:
	// [0] one that carries events (universal or /event), [1] /api.
	calls [2]atomic.Int64
	msgID atomic.Int64
}

// NewOneBot serves the forward WebSocket of account self, requiring token
// (none if empty), until the test ends.
func NewOneBot(t testing.TB, self int64, token string) *OneBot {
	ctx, cancel := context.WithCancel(context.Background())
	f := &OneBot{record: newRecord(), self: self, token: token, ctx: ctx}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() { cancel(); srv.Close() })
	f.URL = "ws" + strings.TrimPrefix(srv.URL, "http")
	return f
}

// Calls counts the API calls that came on sockets carrying events
// (universal or split /event) and on split /api sockets.
func (f *OneBot) Calls() (onEvents, onAPI int64) { return f.calls[0].Load(), f.calls[1].Load() }

// Refused counts connections refused for a wrong or missing access token.
func (f *OneBot) Refused() int64 { return f.refused.Load() }

func (f *OneBot) serve(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("access_token")
	if h := r.Header.Get("Authorization"); h != "" {
		tok = strings.TrimPrefix(h, "Bearer ")
	}
	if f.token != "" && tok != f.token {
		f.refused.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	f.handle(c, r.URL.Path != "/api")
}

// handle serves one socket: API calls in, events out when events is set.
func (f *OneBot) handle(c *websocket.Conn, events bool) {
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	if events {
		f.mu.Lock()
		leave := f.join(c)
		backlog := f.backlog
		f.backlog = nil
		f.mu.Unlock()
		for _, e := range backlog {
			_ = c.Write(f.ctx, websocket.MessageText, []byte(e))
		}
		defer leave()
	}
	for {
		_, frame, err := c.Read(f.ctx)
		if err != nil {
			return
		}
		var call struct {
			Action string          `json:"action"`
			Params json.RawMessage `json:"params"`
			Echo   json.RawMessage `json:"echo"`
		}
		if json.Unmarshal(frame, &call) != nil {
			continue
		}
		if events {
			f.calls[0].Add(1)
		} else {
			f.calls[1].Add(1)
		}
		data, retcode := f.api(call.Action, call.Params)
		out, _ := json.Marshal(map[string]any{"status": map[bool]string{true: "ok", false: "failed"}[retcode == 0],
			"retcode": retcode, "data": data, "echo": call.Echo})
		_ = c.Write(f.ctx, websocket.MessageText, out)
	}
}

func (f *OneBot) api(action string, params json.RawMessage) (any, int) {
	switch action {
	case "get_login_info":
		return map[string]any{"user_id": f.self, "nickname": "fleet"}, 0
	case "send_msg":
		var p SendMsg
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, 100
		}
		s := p.Sent(true)
		s.Kind, s.Body = "send_msg", params
		f.add(s)
		return map[string]any{"message_id": f.msgID.Add(1)}, 0
	}
	return nil, 1404
}

// SendMsg is the params of OneBot's send_msg action: an API call's over a
// WebSocket, the body of the HTTP API's POST /send_msg.
type SendMsg struct {
	MessageType string      `json:"message_type"`
	UserID      json.Number `json:"user_id"`
	GroupID     json.Number `json:"group_id"`
	Message     []struct {
		Type string            `json:"type"`
		Data map[string]string `json:"data"`
	} `json:"message"`
}

// Sent is the message p sends: Chat "<message_type>:<user or group>", To
// the message its reply segment quotes, Text its text segments' — with
// each at segment as "@<qq> " where it stands when mentions is set.
func (p *SendMsg) Sent(mentions bool) Sent {
	s := Sent{Chat: p.MessageType + ":" + string(p.UserID) + string(p.GroupID)}
	for _, seg := range p.Message {
		switch {
		case seg.Type == "reply":
			s.To = seg.Data["id"]
		case seg.Type == "text":
			s.Text += seg.Data["text"]
		case seg.Type == "at" && mentions:
			s.Text += "@" + seg.Data["qq"] + " "
		}
	}
	return s
}

// Push sends an event frame to every socket that receives events; with a
// reverse client and no socket open it is kept until one opens.
func (f *OneBot) Push(event string) {
	f.mu.Lock()
	clients := f.all()
	if len(clients) == 0 && f.reverse {
		f.backlog = append(f.backlog, event)
	}
	f.mu.Unlock()
	for _, c := range clients {
		_ = c.Write(f.ctx, websocket.MessageText, []byte(event))
	}
}

// DropMidFrame sends the first part of a long frame to one event socket
// and then cuts its connection, as a network failure would.
func (f *OneBot) DropMidFrame() bool {
	victim := f.pick()
	if victim == nil {
		return false
	}
	w, err := victim.Writer(f.ctx, websocket.MessageText)
	if err == nil {
		_, _ = w.Write([]byte(`{"post_type":"message","message_type":"private","raw_message":"` + strings.Repeat("x", 64<<10)))
	}
	victim.CloseNow() // the rest of the frame never comes
	return true
}

// DialReverse connects to the bot's reverse WebSocket at url (ws://…/onebot/v11/ws)
// with the access token, and reconnects whenever the socket ends, until
// the test ends.
func (f *OneBot) DialReverse(url, token string) {
	f.mu.Lock()
	f.reverse = true
	f.mu.Unlock()
	go func() {
		for f.ctx.Err() == nil {
			h := http.Header{"X-Self-Id": {fmt.Sprint(f.self)}, "X-Client-Role": {"Universal"}, "Authorization": {"Bearer " + token}}
			c, _, err := websocket.Dial(f.ctx, url, &websocket.DialOptions{HTTPHeader: h})
			if err == nil {
				f.handle(c, true)
			}
			select {
			case <-f.ctx.Done():
			case <-time.After(100 * time.Millisecond): // the implementation's reconnect interval
			}
		}
	}()
}

// PrivateMessage is a private message event from user to account self.
func PrivateMessage(self, id, user int64, text string) string {
	b, _ := json.Marshal(map[string]any{"time": time.Now().Unix(), "self_id": self, "post_type": "message", "message_type": "private",
		"sub_type": "friend", "message_id": id, "user_id": user, "message": []map[string]any{{"type": "text", "data": map[string]string{"text": text}}},
		"raw_message": text, "font": 0, "sender": map[string]any{"user_id": user, "nickname": "u"}})
	return string(b)
}

// GroupMessage is a group message event that mentions account self.
func GroupMessage(self, id, group, user int64, text string) string {
	b, _ := json.Marshal(map[string]any{"time": time.Now().Unix(), "self_id": self, "post_type": "message", "message_type": "group",
		"sub_type": "normal", "message_id": id, "group_id": group, "user_id": user,
		"message":     []map[string]any{{"type": "at", "data": map[string]string{"qq": fmt.Sprint(self)}}, {"type": "text", "data": map[string]string{"text": " " + text}}},
		"raw_message": text, "font": 0, "sender": map[string]any{"user_id": user, "nickname": "u", "card": "member"}})
	return string(b)
}
