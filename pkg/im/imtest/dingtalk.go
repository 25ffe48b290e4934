package imtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// DingTalk is a fake DingTalk Stream gateway for one app: POST
// /v1.0/gateway/connections/open hands out tickets, /connect takes the
// WebSocket, and every pushed robot message goes as a CALLBACK frame to
// one connection (round robin, as DingTalk spreads an app's events); a
// message not acknowledged within Redeliver goes again, to the next
// connection. Replies come to the session webhook
// /robot/sendBySession?session=<msgId>.
type DingTalk struct {
	gateway
	id, sec string

	mu      sync.Mutex
	tickets map[string]bool
	unacked map[string]string // frame messageId → data
	acks    atomic.Int64

	// CardTemplate is the AI card template the app has, CardKey its
	// streamed variable; defaults "tpl-ai.schema" and "content".
	CardTemplate, CardKey string
	cards                 map[string]*Card
	guids                 map[string]bool
	calls                 []time.Time
	tooFast, recreated    atomic.Int64
}

// NewDingTalk serves the gateway of the app with clientID and secret until
// the test ends.
func NewDingTalk(t testing.TB, clientID, secret string) *DingTalk {
	f := &DingTalk{id: clientID, sec: secret, tickets: map[string]bool{}, unacked: map[string]string{},
		CardTemplate: "tpl-ai.schema", CardKey: "content", cards: map[string]*Card{}, guids: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1.0/gateway/connections/open", f.open)
	mux.HandleFunc("GET /connect", f.connect)
	mux.HandleFunc("POST /robot/sendBySession", f.session)
	mux.HandleFunc("POST /v1.0/oauth2/accessToken", f.token)
	mux.HandleFunc("POST /v1.0/card/instances/createAndDeliver", f.createAndDeliver)
	mux.HandleFunc("PUT /v1.0/card/streaming", f.streaming)
	f.serve(t, mux, f.redeliver())
	return f
}

// Acks counts the CALLBACK frames acknowledged.
func (f *DingTalk) Acks() int64 { return f.acks.Load() }

func (f *DingTalk) open(w http.ResponseWriter, r *http.Request) {
	var b struct {
		ClientID      string `json:"clientId"`
		ClientSecret  string `json:"clientSecret"`
		Subscriptions []struct{ Type, Topic string }
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.ClientID != f.id || b.ClientSecret != f.sec {
		w.WriteHeader(401)
		io.WriteString(w, `{"code":"InvalidAuthentication","message":"clientId or clientSecret is wrong"}`)
		return
	}
	ticket := fmt.Sprint("ticket-", f.seq.Add(1))
	f.mu.Lock()
	f.tickets[ticket] = true
	f.mu.Unlock()
	fmt.Fprintf(w, `{"endpoint":%q,"ticket":%q}`, "ws"+strings.TrimPrefix(f.URL, "http")+"/connect", ticket)
}

func (f *DingTalk) connect(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	ok := f.tickets[r.URL.Query().Get("ticket")]
	delete(f.tickets, r.URL.Query().Get("ticket"))
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(403)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	defer f.join(c)()
	f.system(c, "ping", `{"opaque":"p1"}`)
	for {
		_, raw, err := c.Read(f.ctx)
		if err != nil {
			return
		}
		var a struct {
			Code    int               `json:"code"`
			Headers map[string]string `json:"headers"`
			Data    string            `json:"data"`
		}
		if json.Unmarshal(raw, &a) != nil || a.Code != 200 {
			continue
		}
		id := a.Headers["messageId"]
		f.mu.Lock()
		_, pending := f.unacked[id]
		delete(f.unacked, id)
		f.mu.Unlock()
		switch {
		case pending:
			f.acks.Add(1)
		case strings.HasPrefix(id, "ping-") && a.Data == `{"opaque":"p1"}`:
			f.pings.Add(1)
		}
	}
}

func (f *DingTalk) system(c *websocket.Conn, topic, data string) {
	b, _ := json.Marshal(map[string]any{"specVersion": "1.0", "type": "SYSTEM", "data": data,
		"headers": map[string]string{"topic": topic, "messageId": topic + "-" + fmt.Sprint(f.seq.Add(1)), "contentType": "application/json"}})
	_ = c.Write(f.ctx, websocket.MessageText, b)
}

// Disconnect sends every connection the gateway's SYSTEM disconnect.
func (f *DingTalk) Disconnect() {
	for _, c := range f.all() {
		f.system(c, "disconnect", `{"reason":"server restart"}`)
	}
}

// Push delivers a robot message (the JSON of an HTTP callback body) as a
// CALLBACK frame, and again until it is acknowledged.
func (f *DingTalk) Push(data string) {
	id := fmt.Sprint("cb-", f.seq.Add(1))
	f.mu.Lock()
	f.unacked[id] = data
	f.mu.Unlock()
	f.deliver(id, data)
}

// PushFrame writes frame as it is to every open connection: for frames a
// real connection may carry that are not messages, or are broken.
func (f *DingTalk) PushFrame(frame string) {
	for _, c := range f.all() {
		_ = c.Write(f.ctx, websocket.MessageText, []byte(frame))
	}
}

func (f *DingTalk) deliver(id, data string) {
	c := f.pick()
	if c == nil {
		return // redelivered once a connection is open
	}
	b, _ := json.Marshal(map[string]any{"specVersion": "1.0", "type": "CALLBACK", "data": data,
		"headers": map[string]string{"topic": "/v1.0/im/bot/messages/get", "messageId": id, "contentType": "application/json",
			"time": fmt.Sprint(time.Now().UnixMilli()), "appId": "app-1"}})
	_ = c.Write(f.ctx, websocket.MessageText, b)
}

// redeliver is the gateway's redelivery: a message unacknowledged for
// Redeliver since a tick first saw it goes again.
func (f *DingTalk) redeliver() func() {
	sent := map[string]time.Time{}
	return func() {
		f.mu.Lock()
		due := map[string]string{}
		for id, data := range f.unacked {
			if at, ok := sent[id]; !ok {
				sent[id] = time.Now()
			} else if time.Since(at) >= f.Redeliver {
				due[id] = data
				sent[id] = time.Now()
			}
		}
		f.mu.Unlock()
		for id, data := range due {
			f.deliver(id, data)
		}
	}
}

// Unacked counts the pushed messages not acknowledged yet.
func (f *DingTalk) Unacked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.unacked)
}

func (f *DingTalk) session(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var b struct {
		MsgType  string `json:"msgtype"`
		Text     struct{ Content string }
		Markdown struct{ Title, Text string }
		At       struct {
			AtUserIDs []string `json:"atUserIds"`
		} `json:"at"`
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		w.WriteHeader(400)
		return
	}
	text := b.Text.Content
	if b.MsgType == "markdown" {
		text = b.Markdown.Text
	}
	f.add(Sent{To: r.URL.Query().Get("session"), Chat: strings.Join(b.At.AtUserIDs, ","), Text: text, Kind: b.MsgType, Body: raw})
	io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
}

// RobotMessage is a robot message from staff user in a private chat,
// replying through this fake's session webhook (or in an AI card).
func (f *DingTalk) RobotMessage(msgID, user, text string) string {
	now := time.Now().UnixMilli()
	b, _ := json.Marshal(map[string]any{
		"conversationId": "cid" + user, "chatbotCorpId": "dingcorp", "chatbotUserId": "$:LWCP_v1:$bot", "msgId": msgID,
		"senderNick": "user " + user, "senderStaffId": user, "senderId": "$:LWCP_v1:$" + user, "conversationType": "1",
		"sessionWebhookExpiredTime": now + 20*60*1000, "createAt": now, "isInAtList": true,
		"sessionWebhook": f.URL + "/robot/sendBySession?session=" + msgID, "robotCode": "dingbot", "msgtype": "text",
		"text": map[string]string{"content": text},
	})
	return string(b)
}
