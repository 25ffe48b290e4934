package imtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im/feishu"
	"github.com/coder/websocket"
)

// Feishu is a fake Feishu Open Platform for one app: the long
// connection's POST /callback/ws/endpoint and its WebSocket of pbbp2
// frames (pong to ping with a client config; each event to one
// connection, split in parts when asked; sent again until a response
// frame with code 200 comes), and the tenant token and reply APIs.
type Feishu struct {
	gateway
	app, sec string

	mu      sync.Mutex
	unacked map[string]pushed
	uuids   map[string]string
	updated map[string]time.Time
	tooFast atomic.Int64

	kitCards   map[string]*CardKitCard
	outOfOrder atomic.Int64
}

type pushed struct {
	event string
	parts int
	at    time.Time
}

// NewFeishu serves the app appID with secret until the test ends.
func NewFeishu(t testing.TB, appID, secret string) *Feishu {
	f := &Feishu{app: appID, sec: secret, unacked: map[string]pushed{}, uuids: map[string]string{}, updated: map[string]time.Time{},
		kitCards: map[string]*CardKitCard{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /callback/ws/endpoint", f.endpoint)
	mux.HandleFunc("GET /ws", f.ws)
	mux.HandleFunc("POST /open-apis/auth/v3/tenant_access_token/internal", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"code":0,"msg":"ok","tenant_access_token":"t-fake","expire":7200}`)
	})
	mux.HandleFunc("POST /open-apis/im/v1/messages/{id}/reply", f.reply)
	mux.HandleFunc("PATCH /open-apis/im/v1/messages/{id}", f.update)
	mux.HandleFunc("POST /open-apis/cardkit/v1/cards", f.createCard)
	mux.HandleFunc("PUT /open-apis/cardkit/v1/cards/{card_id}/elements/{element_id}/content", f.elementContent)
	mux.HandleFunc("PATCH /open-apis/cardkit/v1/cards/{card_id}/settings", f.cardSettings)
	f.serve(t, mux, f.redeliver)
	return f
}

// Unacked counts the events not answered with code 200 yet.
func (f *Feishu) Unacked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.unacked)
}

func (f *Feishu) endpoint(w http.ResponseWriter, r *http.Request) {
	var b struct{ AppID, AppSecret string }
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.AppID != f.app || b.AppSecret != f.sec {
		io.WriteString(w, `{"code":1000040343,"msg":"app_id or app_secret is invalid"}`)
		return
	}
	u := "ws" + strings.TrimPrefix(f.URL, "http") + "/ws?device_id=dev" + strconv.FormatInt(f.seq.Add(1), 10) + "&service_id=33"
	fmt.Fprintf(w, `{"code":0,"msg":"ok","data":{"URL":%q,"ClientConfig":{"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30,"PingInterval":1}}}`, u)
}

func (f *Feishu) ws(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	defer f.join(c)()
	for {
		_, raw, err := c.Read(f.ctx)
		if err != nil {
			return
		}
		fr, err := feishu.UnmarshalFrame(raw)
		if err != nil {
			continue
		}
		switch {
		case fr.Method == feishu.MethodControl && fr.Header("type") == "ping" && fr.Service == 33:
			f.pings.Add(1)
			pong := feishu.Frame{Service: 33, Method: feishu.MethodControl, Headers: [][2]string{{"type", "pong"}},
				Payload: []byte(`{"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30,"PingInterval":1}`)}
			_ = c.Write(f.ctx, websocket.MessageBinary, pong.Marshal())
		case fr.Method == feishu.MethodData && fr.Header("biz_rt") != "":
			var resp struct {
				Code int `json:"code"`
			}
			if json.Unmarshal(fr.Payload, &resp) == nil && resp.Code == 200 {
				f.mu.Lock()
				delete(f.unacked, fr.Header("message_id"))
				f.mu.Unlock()
			}
		}
	}
}

// Push sends an event (the JSON of a v2 event, as the webhook carries it)
// to one connection, split in parts frames, until it is answered.
func (f *Feishu) Push(event string, parts int) {
	id := "msg-" + strconv.FormatInt(f.seq.Add(1), 10)
	f.mu.Lock()
	f.unacked[id] = pushed{event, max(parts, 1), time.Now()}
	f.mu.Unlock()
	f.deliver(id, event, max(parts, 1))
}

// Send writes raw bytes as one binary message to every connection (a
// frame that is not pbbp2, a frame of an unknown type…).
func (f *Feishu) Send(raw []byte) {
	for _, c := range f.all() {
		_ = c.Write(f.ctx, websocket.MessageBinary, raw)
	}
}

func (f *Feishu) deliver(id, event string, parts int) {
	c := f.pick()
	if c == nil {
		return // redelivered once a connection is open
	}
	size := (len(event) + parts - 1) / parts
	for i := range parts {
		part := event[min(i*size, len(event)):min((i+1)*size, len(event))]
		fr := feishu.Frame{SeqID: uint64(i), LogID: 1, Service: 33, Method: feishu.MethodData, Payload: []byte(part),
			Headers: [][2]string{{"type", "event"}, {"message_id", id}, {"sum", strconv.Itoa(parts)}, {"seq", strconv.Itoa(i)}, {"trace_id", "tr-" + id}}}
		_ = c.Write(f.ctx, websocket.MessageBinary, fr.Marshal())
	}
}

// redeliver is the gateway's redelivery: an event unanswered for
// Redeliver since it last went goes again.
func (f *Feishu) redeliver() {
	f.mu.Lock()
	due := map[string]pushed{}
	for id, p := range f.unacked {
		if time.Since(p.at) >= f.Redeliver {
			p.at = time.Now()
			f.unacked[id] = p
			due[id] = p
		}
	}
	f.mu.Unlock()
	for id, p := range due {
		f.deliver(id, p.event, p.parts)
	}
}

func (f *Feishu) reply(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var b struct {
		Content string `json:"content"`
		MsgType string `json:"msg_type"`
		UUID    string `json:"uuid"`
	}
	if r.Header.Get("Authorization") != "Bearer t-fake" || json.Unmarshal(raw, &b) != nil {
		w.WriteHeader(400)
		io.WriteString(w, `{"code":99991663,"msg":"Invalid access token for authorization."}`)
		return
	}
	f.mu.Lock()
	id, dup := f.uuids[b.UUID] // Feishu drops a repeated uuid, and answers with the first message
	if !dup {
		id = "om_r" + strconv.FormatInt(f.seq.Add(1), 10)
		f.uuids[b.UUID] = id
	}
	f.mu.Unlock()
	text := contentText(b.MsgType, b.Content)
	if card := cardRef(b.Content); card != "" && !dup {
		var ok bool
		if text, ok = f.sendCard(card, id); !ok {
			w.WriteHeader(400)
			fsAnswer(w, 230099, "Failed to create card content", nil)
			return
		}
	}
	if !dup {
		f.add(Sent{To: r.PathValue("id"), ID: id, Text: text, Kind: b.MsgType, Body: raw})
	}
	fmt.Fprintf(w, `{"code":0,"msg":"success","data":{"message_id":%q}}`, id)
}

// update is PATCH /open-apis/im/v1/messages/{id}: a card's new content,
// at most 5 a second per message (more are refused, and counted).
func (f *Feishu) update(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var b struct {
		Content string `json:"content"`
	}
	if r.Header.Get("Authorization") != "Bearer t-fake" || json.Unmarshal(raw, &b) != nil {
		w.WriteHeader(400)
		io.WriteString(w, `{"code":99991663,"msg":"Invalid access token for authorization."}`)
		return
	}
	id := r.PathValue("id")
	f.mu.Lock()
	fast := time.Since(f.updated[id]) < 200*time.Millisecond
	if !fast {
		f.updated[id] = time.Now()
	}
	f.mu.Unlock()
	if fast {
		f.tooFast.Add(1)
		io.WriteString(w, `{"code":230072,"msg":"The message is updated too frequently."}`)
		return
	}
	f.add(Sent{To: "edit:" + id, ID: id, Text: contentText("interactive", b.Content), Kind: "update", Body: raw})
	io.WriteString(w, `{"code":0,"msg":"success","data":{}}`)
}

// TooFast counts card updates refused for coming faster than 5 a second.
func (f *Feishu) TooFast() int64 { return f.tooFast.Load() }

// contentText is the text of a message's content: a text message's text,
// a card's markdown elements.
func contentText(msgType, content string) string {
	switch msgType {
	case "text":
		var c struct {
			Text string `json:"text"`
		}
		if json.Unmarshal([]byte(content), &c) == nil {
			return c.Text
		}
	case "interactive":
		var c struct {
			Elements []struct {
				Tag     string `json:"tag"`
				Content string `json:"content"`
			} `json:"elements"`
		}
		if json.Unmarshal([]byte(content), &c) == nil {
			var parts []string
			for _, e := range c.Elements {
				if e.Tag == "markdown" {
					parts = append(parts, e.Content)
				}
			}
			return strings.Join(parts, "\n")
		}
	}
	return content
}

// TextEvent is an im.message.receive_v1 event: a private text message
// from user, message id om_<n>.
func TextEvent(n int, user, text string) string {
	content, _ := json.Marshal(map[string]string{"text": text})
	b, _ := json.Marshal(map[string]any{
		"schema": "2.0",
		"header": map[string]string{"event_id": fmt.Sprint("ev", n), "create_time": fmt.Sprint(time.Now().UnixMilli()),
			"event_type": "im.message.receive_v1", "tenant_key": "tk", "app_id": "cli_fleet"},
		"event": map[string]any{
			"sender": map[string]any{"sender_id": map[string]string{"open_id": "ou_" + user}, "sender_type": "user", "tenant_key": "tk"},
			"message": map[string]any{"message_id": fmt.Sprint("om_", n), "create_time": fmt.Sprint(time.Now().UnixMilli()),
				"chat_id": "oc_" + user, "chat_type": "p2p", "message_type": "text", "content": string(content)},
		},
	})
	return string(b)
}
