// Package onebot is QQ through a OneBot v11 implementation (NapCat,
// Lagrange, go-cqhttp…): reverse HTTP POST, forward WebSocket (Forward)
// or reverse WebSocket (Reverse).
//
// In webhook mode the implementation POSTs each event with X-Signature:
// sha1=hex(HMAC-SHA1(key=secret, body)), and message events (private and
// group) are answered through the OneBot HTTP API's send_msg with its
// access token, not with the quick-operation response: the reply is made
// later by a queue worker, after the webhook has long answered (204, no
// quick operation). In stream mode events and API calls share the
// WebSocket: send_msg goes out with an echo and its answer comes back
// with it; a job on an instance without a socket relays the call through
// Redis to one that has (relay.go). The event id is self_id:message_id.
package onebot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/redis/go-redis/v9"
)

// Options configure the adapter.
type Options struct {
	// Secret verifies X-Signature (im.onebot.secret).
	Secret string
	// APIURL is the OneBot HTTP API, e.g. http://127.0.0.1:3000 (im.onebot.api_url).
	APIURL string
	// AccessToken is sent as "Authorization: Bearer" (im.onebot.access_token),
	// and required of a reverse WebSocket.
	AccessToken string
	Client      *http.Client
	// Stream sends API calls over the WebSockets (Forward, Reverse) instead
	// of the HTTP API: this instance's own socket, else relayed through
	// Redis to an instance that holds one.
	Stream bool
	// Redis relays API calls between instances, under Prefix (default "bf").
	Redis  redis.UniversalClient
	Prefix string
	// CallTimeout bounds an API call over a socket or the relay. Default 10s.
	CallTimeout time.Duration
}

// Adapter is the OneBot v11 platform.
type Adapter struct {
	o       Options
	socks   sockets
	closing context.Context
	close   context.CancelFunc
}

// New returns the adapter.
func New(o Options) *Adapter {
	o.APIURL = strings.TrimRight(o.APIURL, "/")
	if o.Client == nil {
		o.Client = im.NewHTTPClient(0)
	}
	if o.Prefix == "" {
		o.Prefix = keyspace.DefaultPrefix
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = im.DefaultSendTimeout
	}
	a := &Adapter{o: o}
	a.closing, a.close = context.WithCancel(context.Background())
	return a
}

// Close ends the reverse WebSockets (the implementation reconnects,
// through nginx, to another instance).
func (a *Adapter) Close() { a.close() }

// Platform is "onebot".
func (a *Adapter) Platform() string { return im.OneBot }

// Signature is the X-Signature header of body.
func Signature(secret string, body []byte) string {
	h := hmac.New(sha1.New, []byte(secret))
	h.Write(body)
	return "sha1=" + hex.EncodeToString(h.Sum(nil))
}

type segment struct {
	Type string            `json:"type"`
	Data map[string]any    `json:"data"`
	raw  map[string]string // string form, for CQ codes
}

func (s segment) get(k string) string {
	if v, ok := s.raw[k]; ok {
		return v
	}
	switch v := s.Data[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

type event struct {
	Time        int64           `json:"time"`
	SelfID      json.Number     `json:"self_id"`
	PostType    string          `json:"post_type"`
	MessageType string          `json:"message_type"`
	MessageID   json.Number     `json:"message_id"`
	UserID      json.Number     `json:"user_id"`
	GroupID     json.Number     `json:"group_id"`
	Message     json.RawMessage `json:"message"`
	Sender      struct {
		Nickname string `json:"nickname"`
		Card     string `json:"card"`
	} `json:"sender"`
}

// Parse verifies X-Signature and parses a message event.
func (a *Adapter) Parse(ctx context.Context, h http.Header, body []byte) (*im.Inbound, error) {
	sig := h.Get("X-Signature")
	if sig == "" {
		return nil, im.Unauthorized("X-Signature is required (set the same secret in the OneBot implementation)")
	}
	if !hmac.Equal([]byte(sig), []byte(Signature(a.o.Secret, body))) {
		return nil, im.Unauthorized("X-Signature does not match the body and im.onebot.secret")
	}
	return a.ParseEvent(ctx, body)
}

// ParseEvent parses an event: a verified HTTP POST body, or a frame of a
// forward or reverse WebSocket (authenticated by its access token).
func (a *Adapter) ParseEvent(_ context.Context, body []byte) (*im.Inbound, error) {
	var e event
	if err := im.DecodeNumbers(body, &e); err != nil {
		return nil, im.BadRequest("not a OneBot v11 event: %v", err)
	}
	ack := im.NoContent()
	if e.PostType != "message" || (e.MessageType != "private" && e.MessageType != "group") {
		return &im.Inbound{Response: ack}, nil // meta events, notices, requests
	}
	// The ids are integers (int64): every spelling of one is one id.
	var ids [4]string
	for i, n := range []json.Number{e.SelfID, e.MessageID, e.UserID, e.GroupID} {
		id, err := im.IntID(n)
		if err != nil {
			return nil, im.BadRequest("%v", err)
		}
		ids[i] = id
	}
	e.SelfID, e.MessageID, e.UserID, e.GroupID = json.Number(ids[0]), json.Number(ids[1]), json.Number(ids[2]), json.Number(ids[3])
	if e.SelfID == "" || e.MessageID == "" || e.UserID == "" || (e.MessageType == "group" && e.GroupID == "") {
		return nil, im.BadRequest("self_id, message_id, user_id (and group_id in a group) are required")
	}
	segs, err := segments(e.Message)
	if err != nil {
		return nil, im.BadRequest("message: %v", err)
	}
	m := &im.Message{
		Platform: im.OneBot, EventID: e.SelfID.String() + ":" + e.MessageID.String(),
		SenderID: e.UserID.String(), SenderName: e.Sender.Nickname, ChatType: im.Private, ChatID: e.UserID.String(),
		Timestamp: e.Time * 1000,
		Reply: map[string]string{"self_id": e.SelfID.String(), "message_type": e.MessageType,
			"user_id": e.UserID.String(), "group_id": e.GroupID.String(), "message_id": e.MessageID.String()},
	}
	if e.Sender.Card != "" {
		m.SenderName = e.Sender.Card
	}
	if e.MessageType == "group" {
		m.ChatType, m.ChatID = im.Group, e.GroupID.String()
	}
	var text strings.Builder
	for _, s := range segs {
		switch s.Type {
		case "text":
			text.WriteString(s.get("text"))
		case "at":
			qq := s.get("qq")
			if qq == e.SelfID.String() {
				m.Mentioned = true
				continue
			}
			m.Mentions = append(m.Mentions, qq)
			text.WriteString("@" + qq)
		case "image", "record", "video", "file":
			if u := s.get("url"); u != "" {
				m.MediaURLs = append(m.MediaURLs, u)
			} else if f := s.get("file"); f != "" {
				m.MediaURLs = append(m.MediaURLs, "onebot-file:"+f)
			}
		}
	}
	m.Text = strings.TrimSpace(text.String())
	return &im.Inbound{Message: m, Response: ack}, nil
}

// segments decodes a message in array form or as a CQ-code string.
func segments(raw json.RawMessage) ([]segment, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if raw[0] == '[' {
		var segs []segment
		err := im.DecodeNumbers(raw, &segs)
		return segs, err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return parseCQ(s), nil
}

var cqCode = regexp.MustCompile(`\[CQ:([a-zA-Z0-9_.-]+)((?:,[^,\]]*)*)\]`)

func unescape(s string, inParam bool) string {
	s = strings.NewReplacer("&#91;", "[", "&#93;", "]").Replace(s)
	if inParam {
		s = strings.ReplaceAll(s, "&#44;", ",")
	}
	return strings.ReplaceAll(s, "&amp;", "&")
}

// parseCQ splits a CQ-code string into segments.
func parseCQ(s string) []segment {
	var segs []segment
	last := 0
	for _, loc := range cqCode.FindAllStringSubmatchIndex(s, -1) {
		if loc[0] > last {
			segs = append(segs, segment{Type: "text", raw: map[string]string{"text": unescape(s[last:loc[0]], false)}})
		}
		seg := segment{Type: s[loc[2]:loc[3]], raw: map[string]string{}}
		for _, kv := range strings.Split(s[loc[4]:loc[5]], ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				seg.raw[k] = unescape(v, true)
			}
		}
		segs = append(segs, seg)
		last = loc[1]
	}
	if last < len(s) {
		segs = append(segs, segment{Type: "text", raw: map[string]string{"text": unescape(s[last:], false)}})
	}
	return segs
}

// Send answers with send_msg, quoting the message and mentioning the
// sender in a group, split at im.MaxOneBot on paragraph boundaries.
func (a *Adapter) Send(ctx context.Context, m *im.Message, text string) error {
	r := m.Reply
	for i, part := range im.Split(text, im.MaxOneBot) {
		var segs []map[string]any
		if i == 0 {
			segs = append(segs, map[string]any{"type": "reply", "data": map[string]string{"id": r["message_id"]}})
			if r["message_type"] == "group" {
				segs = append(segs, map[string]any{"type": "at", "data": map[string]string{"qq": r["user_id"]}})
			}
		}
		segs = append(segs, map[string]any{"type": "text", "data": map[string]string{"text": part}})
		body := map[string]any{"message_type": r["message_type"], "message": segs}
		if r["message_type"] == "group" {
			body["group_id"] = json.Number(r["group_id"])
		} else {
			body["user_id"] = json.Number(r["user_id"])
		}
		if err := a.sendMsg(ctx, r["self_id"], body); err != nil {
			return err
		}
	}
	return nil
}

func (a *Adapter) sendMsg(ctx context.Context, self string, body map[string]any) error {
	status, out, err := a.call(ctx, self, "send_msg", body)
	if err != nil {
		return err
	}
	// retcode 1 (status "async") means accepted for sending.
	if status < 300 && (out.RetCode == 0 || out.RetCode == 1) {
		return nil
	}
	serr := &im.StatusError{Platform: im.OneBot, Status: status, Code: strconv.Itoa(out.RetCode), Message: strings.TrimSpace(out.Message + " " + out.Wording)}
	if status < 300 {
		serr.Status = 502
		if out.RetCode == 100 || out.RetCode == 102 {
			return im.Permanent(fmt.Errorf("onebot: send_msg refused the request: %w", serr))
		}
	}
	return im.ClassifyStatus(serr)
}

// call runs an API action: over this instance's socket for self, else the
// relay (stream mode), else the HTTP API. It returns the HTTP status (200
// over a socket) and the answer.
func (a *Adapter) call(ctx context.Context, self, action string, params any) (int, apiResult, error) {
	if a.o.Stream {
		ctx, cancel := context.WithTimeout(ctx, a.o.CallTimeout)
		defer cancel()
		var r apiResult
		var err error
		if s := a.socks.get(self); s != nil {
			r, err = s.call(ctx, action, params)
		} else if a.o.Redis != nil {
			r, err = a.relay(ctx, self, action, params)
		} else {
			err = errNoSocket
		}
		return http.StatusOK, r, err
	}
	var headers []string
	if a.o.AccessToken != "" {
		headers = []string{"Authorization", "Bearer " + a.o.AccessToken}
	}
	var out apiResult
	status, err := im.PostJSON(ctx, a.o.Client, a.o.APIURL+"/"+action, params, &out, headers...)
	return status, out, err
}

var _ im.Adapter = (*Adapter)(nil)
