package dingtalk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/coder/websocket"
)

// DefaultAPIURL is DingTalk's Open API, where Stream connections open.
const DefaultAPIURL = "https://api.dingtalk.com"

// BotTopic is the Stream topic of robot messages.
const BotTopic = "/v1.0/im/bot/messages/get"

// Stream is DingTalk's Stream mode as an im.Link: the bot opens a
// connection with POST /v1.0/gateway/connections/open (Client ID and
// Secret, subscribing to BotTopic), dials the WebSocket endpoint it gets
// with the ticket, answers the gateway's SYSTEM ping, reconnects on its
// SYSTEM disconnect, and receives robot messages as CALLBACK frames whose
// data is the same JSON an HTTP callback carries. A CALLBACK is
// acknowledged only after the pipeline queued its job; one left
// unacknowledged (Redis down) is redelivered by DingTalk, possibly to
// another instance's connection. DingTalk spreads events over an app's
// connections, so the im.Every policy is the natural one.
type Stream struct {
	a        *Adapter
	apiURL   string
	clientID string
	ping     time.Duration
}

// Stream returns the adapter's Stream mode link for the app's Client ID
// (its Client Secret is Options.AppSecret); apiURL "" is DefaultAPIURL.
func (a *Adapter) Stream(apiURL, clientID string) *Stream {
	if apiURL == "" {
		apiURL = a.o.APIURL
	}
	return &Stream{a: a, apiURL: strings.TrimRight(apiURL, "/"), clientID: clientID, ping: 30 * time.Second}
}

// Platform is "dingtalk".
func (s *Stream) Platform() string { return im.DingTalk }

// frame is a Stream protocol message.
type frame struct {
	SpecVersion string            `json:"specVersion"`
	Type        string            `json:"type"`
	Headers     map[string]string `json:"headers"`
	Data        string            `json:"data"`
}

// ack answers a frame.
type ack struct {
	Code    int               `json:"code"`
	Headers map[string]string `json:"headers"`
	Message string            `json:"message"`
	Data    string            `json:"data"`
}

// open asks the gateway for a connection: the endpoint and its ticket.
func (s *Stream) open(ctx context.Context) (string, error) {
	body := map[string]any{
		"clientId": s.clientID, "clientSecret": s.a.o.AppSecret, "ua": "botfleet",
		"subscriptions": []map[string]string{{"type": "CALLBACK", "topic": BotTopic}},
	}
	var out struct {
		Endpoint string `json:"endpoint"`
		Ticket   string `json:"ticket"`
		Code     string `json:"code"`
		Message  string `json:"message"`
	}
	status, err := im.PostJSON(ctx, s.a.o.Client, s.apiURL+"/v1.0/gateway/connections/open", body, &out)
	if err != nil {
		return "", fmt.Errorf("dingtalk: open a Stream connection: %w", err)
	}
	if status != http.StatusOK || out.Endpoint == "" || out.Ticket == "" {
		return "", &im.StatusError{Platform: im.DingTalk, Status: status, Code: out.Code,
			Message: "gateway/connections/open: " + out.Message + " (check im.dingtalk.client_id and app_secret)"}
	}
	sep := "?"
	if strings.Contains(out.Endpoint, "?") {
		sep = "&"
	}
	return out.Endpoint + sep + "ticket=" + url.QueryEscape(out.Ticket), nil
}

// Run holds one Stream connection until ctx ends or it breaks.
func (s *Stream) Run(ctx context.Context, c *im.Conn) error {
	endpoint, err := s.open(ctx)
	if err != nil {
		return err
	}
	conn, _, err := websocket.Dial(ctx, endpoint, nil)
	if err != nil {
		return fmt.Errorf("dingtalk: dial the Stream endpoint: %w", err)
	}
	return c.ReadSocket(ctx, conn, "dingtalk: Stream", 4<<20, func(ctx context.Context, dead func(error)) {
		keepAlive(ctx, conn, s.ping, dead)
	}, func(ctx context.Context, _ websocket.MessageType, raw []byte) error {
		ack, err := handleFrame(ctx, c, raw)
		if errors.Is(err, errReconnect) {
			conn.Close(websocket.StatusNormalClosure, "gateway asked to reconnect")
			return err
		}
		if ack == nil {
			return nil
		}
		if err := conn.Write(ctx, websocket.MessageText, ack); err != nil {
			return fmt.Errorf("dingtalk: Stream acknowledge: %w", err)
		}
		return nil
	})
}

// errReconnect is the gateway's SYSTEM disconnect.
var errReconnect = errors.New("dingtalk: the gateway asked for a reconnect")

// handleFrame handles one Stream message, as raw from the socket: it hands
// a robot message to c and returns the acknowledgement to write — nil for a
// message that is not JSON (ignored) or a robot message the pipeline could
// not queue (left for DingTalk to redeliver) — or errReconnect.
func handleFrame(ctx context.Context, c *im.Conn, raw []byte) ([]byte, error) {
	var f frame
	if err := json.Unmarshal(raw, &f); err != nil {
		c.Logger().Warn("dingtalk: a Stream frame that is not JSON; ignored", "err", err)
		return nil, nil
	}
	topic := f.Headers["topic"]
	data := `{"response":null}`
	switch {
	case f.Type == "SYSTEM" && topic == "ping":
		data = f.Data
	case f.Type == "SYSTEM" && topic == "disconnect":
		return nil, errReconnect
	case f.Type == "CALLBACK" && topic == BotTopic:
		if _, err := c.Accept(ctx, []byte(f.Data)); im.IsTemporary(err) {
			return nil, nil
		}
	case f.Type == "EVENT":
		data = `{"status":"SUCCESS","message":"success"}`
	default:
		c.Logger().Warn("dingtalk: an unknown Stream frame; acknowledged", "type", f.Type, "topic", topic)
	}
	b, _ := json.Marshal(ack{Code: 200, Message: "OK", Data: data,
		Headers: map[string]string{"contentType": "application/json", "messageId": f.Headers["messageId"]}})
	return b, nil
}

// keepAlive pings the connection every d and ends it (dead) when a pong
// does not come back within d: a connection that died silently is noticed.
func keepAlive(ctx context.Context, conn *websocket.Conn, d time.Duration, dead func(error)) {
	pause.Every(ctx, d, func() bool {
		pctx, pcancel := context.WithTimeout(ctx, d)
		err := conn.Ping(pctx)
		pcancel()
		if err != nil && ctx.Err() == nil {
			dead(fmt.Errorf("ping: %w", err))
			return false
		}
		return true
	})
}

var _ im.Link = (*Stream)(nil)
