package feishu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/coder/websocket"
)

// Socket is Feishu's long connection (event subscription over WebSocket)
// as an im.Link. The bot asks POST /callback/ws/endpoint with its AppID
// and AppSecret for a WebSocket URL (its service_id in the query) and a
// client config, dials it, and exchanges pbbp2 Frames (frame.go) in
// binary messages: a control frame with header type=ping every
// PingInterval (the pong carries a new client config), and data frames
// with headers type (event, card), message_id, sum, seq, trace_id — a
// payload split in sum parts is put back together by message_id and seq
// before it is parsed, by the webhook path's code (im.message.receive_v1).
// Each data frame is answered with a response frame, the same headers
// plus biz_rt and a JSON payload {"code":200,…} once the job is queued, or
// code 500 when it could not be (Feishu sends it again). Feishu hands each
// event to one of an app's connections, so the im.Every policy fits.
type Socket struct {
	a *Adapter

	mu    sync.Mutex
	parts map[string][][]byte // message_id → payload parts by seq
}

// Socket returns the adapter's long-connection link.
func (a *Adapter) Socket() *Socket { return &Socket{a: a, parts: map[string][][]byte{}} }

// Platform is "feishu".
func (s *Socket) Platform() string { return im.Feishu }

type clientConfig struct {
	ReconnectCount    int `json:"ReconnectCount"`
	ReconnectInterval int `json:"ReconnectInterval"`
	ReconnectNonce    int `json:"ReconnectNonce"`
	PingInterval      int `json:"PingInterval"`
}

// endpoint asks for a WebSocket URL.
func (s *Socket) endpoint(ctx context.Context) (string, clientConfig, error) {
	var out struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			URL          string       `json:"URL"`
			ClientConfig clientConfig `json:"ClientConfig"`
		} `json:"data"`
	}
	status, err := im.PostJSON(ctx, s.a.o.Client, s.a.o.BaseURL+"/callback/ws/endpoint",
		map[string]string{"AppID": s.a.o.AppID, "AppSecret": s.a.o.AppSecret}, &out, "locale", "zh")
	if err != nil {
		return "", clientConfig{}, fmt.Errorf("feishu: ws endpoint: %w", err)
	}
	if status != http.StatusOK || out.Code != 0 || out.Data.URL == "" {
		return "", clientConfig{}, &im.StatusError{Platform: im.Feishu, Status: status, Code: strconv.Itoa(out.Code),
			Message: "callback/ws/endpoint: " + out.Msg + " (check im.feishu.app_id and app_secret, and that the app subscribes by long connection)"}
	}
	return out.Data.URL, out.Data.ClientConfig, nil
}

// Run holds one long connection until ctx ends or it breaks.
func (s *Socket) Run(ctx context.Context, c *im.Conn) error {
	raw, cfg, err := s.endpoint(ctx)
	if err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("feishu: ws endpoint URL %q: %w", raw, err)
	}
	service, _ := strconv.ParseInt(u.Query().Get("service_id"), 10, 32)
	conn, resp, err := websocket.Dial(ctx, raw, nil)
	if err != nil {
		if resp != nil && resp.Header.Get("Handshake-Msg") != "" {
			return fmt.Errorf("feishu: ws handshake refused: %s (%s)", resp.Header.Get("Handshake-Msg"), resp.Header.Get("Handshake-Autherrcode"))
		}
		return fmt.Errorf("feishu: dial the ws endpoint: %w", err)
	}
	interval := make(chan time.Duration, 1)
	return c.ReadSocket(ctx, conn, "feishu: ws", 8<<20, func(ctx context.Context, _ func(error)) {
		s.ping(ctx, conn, int32(service), seconds(cfg.PingInterval), interval)
	}, func(ctx context.Context, typ websocket.MessageType, msg []byte) error {
		if typ != websocket.MessageBinary {
			c.Logger().Warn("feishu: a text message on the long connection; ignored")
			return nil
		}
		f, err := UnmarshalFrame(msg)
		if err != nil {
			c.Logger().Warn("feishu: a frame that is not pbbp2; ignored", "err", err)
			return nil
		}
		if f.Method != MethodControl {
			return s.data(ctx, conn, f, c)
		}
		if f.Header("type") == "pong" && len(f.Payload) > 0 {
			var cc clientConfig
			if json.Unmarshal(f.Payload, &cc) == nil && cc.PingInterval > 0 {
				select {
				case interval <- seconds(cc.PingInterval):
				default:
				}
			}
		}
		return nil
	})
}

func seconds(n int) time.Duration {
	if n <= 0 {
		return 2 * time.Minute
	}
	return time.Duration(n) * time.Second
}

// ping sends a ping control frame every interval (updated by pongs).
func (s *Socket) ping(ctx context.Context, conn *websocket.Conn, service int32, every time.Duration, interval <-chan time.Duration) {
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case every = <-interval:
		case <-t.C:
			f := Frame{Service: service, Method: MethodControl, Headers: [][2]string{{"type", "ping"}}}
			if err := conn.Write(ctx, websocket.MessageBinary, f.Marshal()); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
		t.Reset(every)
	}
}

// data handles a data frame: it puts a split payload together, hands an
// event to the pipeline and answers the frame.
func (s *Socket) data(ctx context.Context, conn *websocket.Conn, f *Frame, c *im.Conn) error {
	payload, whole := s.assemble(f)
	if !whole {
		return nil
	}
	start := time.Now()
	code := http.StatusOK
	switch f.Header("type") {
	case "event":
		if _, err := c.Accept(ctx, payload); im.IsTemporary(err) {
			code = http.StatusInternalServerError // not queued: Feishu sends it again
		}
	default: // card callbacks and types to come: acknowledged, not handled
		c.Logger().Info("feishu: a data frame that is not an event; acknowledged", "type", f.Header("type"))
	}
	body, _ := json.Marshal(map[string]any{"code": code, "headers": map[string]string{}, "data": nil})
	resp := *f
	resp.Headers = append(append([][2]string{}, f.Headers...), [2]string{"biz_rt", strconv.FormatInt(time.Since(start).Milliseconds(), 10)})
	resp.Payload = body
	if err := conn.Write(ctx, websocket.MessageBinary, resp.Marshal()); err != nil {
		return fmt.Errorf("feishu: ws answer: %w", err)
	}
	return nil
}

// assemble collects the parts of a payload split over sum frames; it
// returns the whole payload once every part came.
func (s *Socket) assemble(f *Frame) ([]byte, bool) {
	sum, _ := strconv.Atoi(f.Header("sum"))
	if sum <= 1 {
		return f.Payload, true
	}
	seq, err := strconv.Atoi(f.Header("seq"))
	if err != nil || seq < 0 || seq >= sum || sum > 1024 {
		return nil, false
	}
	id := f.Header("message_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := s.parts[id]
	if len(parts) != sum {
		if len(s.parts) >= 256 { // parts of payloads whose rest never came
			clear(s.parts)
		}
		parts = make([][]byte, sum)
		s.parts[id] = parts
	}
	parts[seq] = f.Payload
	for _, p := range parts {
		if p == nil {
			return nil, false
		}
	}
	delete(s.parts, id)
	return bytes.Join(parts, nil), true
}

var _ im.Link = (*Socket)(nil)
