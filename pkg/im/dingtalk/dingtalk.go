// Package dingtalk is the DingTalk enterprise robot in HTTP callback mode.
//
// DingTalk POSTs each message to the callback URL with the headers
// timestamp (Unix ms) and sign = Base64(HMAC-SHA256(key=appSecret,
// timestamp+"\n"+appSecret)). The signature covers the timestamp only, not
// the body, so the adapter also refuses a timestamp more than an hour away
// and a sessionWebhook outside the allowed hosts (a forged body must not
// make the bot POST elsewhere), and the pipeline dedups msgId fleet-wide.
// The reply goes by POST to the event's sessionWebhook before
// sessionWebhookExpiredTime.
package dingtalk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
)

// DefaultWebhookHosts are the hosts DingTalk's sessionWebhook URLs use.
var DefaultWebhookHosts = []string{"oapi.dingtalk.com", "api.dingtalk.com"}

// Options configure the adapter.
type Options struct {
	// AppSecret is the robot application's AppSecret (im.dingtalk.app_secret).
	AppSecret string
	// WebhookHosts are the hosts a sessionWebhook may point at; default
	// DefaultWebhookHosts (im.dingtalk.webhook_hosts).
	WebhookHosts []string
	// MaxSkew is how far the timestamp may be from now. Default 1h.
	MaxSkew time.Duration
	// ClientID (AppKey) and APIURL (default DefaultAPIURL) fetch the
	// access token that downloads received images.
	ClientID string
	APIURL   string
	// Client calls the session webhook.
	Client *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Adapter is the DingTalk platform.
type Adapter struct {
	o     Options
	token accessToken
}

// New returns the adapter.
func New(o Options) *Adapter {
	if len(o.WebhookHosts) == 0 {
		o.WebhookHosts = DefaultWebhookHosts
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = time.Hour
	}
	if o.Client == nil {
		o.Client = im.NewHTTPClient(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	o.APIURL = strings.TrimRight(o.APIURL, "/")
	return &Adapter{o: o}
}

// Platform is "dingtalk".
func (a *Adapter) Platform() string { return im.DingTalk }

// Sign is DingTalk's signature of timestamp (Unix ms, as sent).
func Sign(timestamp, appSecret string) string {
	h := hmac.New(sha256.New, []byte(appSecret))
	h.Write([]byte(timestamp + "\n" + appSecret))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// event is the callback body.
type event struct {
	MsgID            string `json:"msgId"`
	MsgType          string `json:"msgtype"`
	CreateAt         int64  `json:"createAt"`
	ConversationType string `json:"conversationType"`
	ConversationID   string `json:"conversationId"`
	SenderID         string `json:"senderId"`
	SenderStaffID    string `json:"senderStaffId"`
	SenderNick       string `json:"senderNick"`
	ChatbotUserID    string `json:"chatbotUserId"`
	IsInAtList       bool   `json:"isInAtList"`
	AtUsers          []struct {
		DingtalkID string `json:"dingtalkId"`
		StaffID    string `json:"staffId"`
	} `json:"atUsers"`
	RobotCode                 string `json:"robotCode"`
	SessionWebhook            string `json:"sessionWebhook"`
	SessionWebhookExpiredTime int64  `json:"sessionWebhookExpiredTime"`
	Text                      struct {
		Content string `json:"content"`
	} `json:"text"`
	Content struct {
		DownloadCode string `json:"downloadCode"`
		RichText     []struct {
			Text         string `json:"text"`
			DownloadCode string `json:"downloadCode"`
		} `json:"richText"`
	} `json:"content"`
}

// Parse verifies the timestamp and sign headers and parses the message.
func (a *Adapter) Parse(ctx context.Context, h http.Header, body []byte) (*im.Inbound, error) {
	ts, sign := h.Get("timestamp"), h.Get("sign")
	if ts == "" || sign == "" {
		return nil, im.Unauthorized("the timestamp and sign headers are required")
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, im.Unauthorized("timestamp %q is not Unix milliseconds", ts)
	}
	if !hmac.Equal([]byte(sign), []byte(Sign(ts, a.o.AppSecret))) {
		return nil, im.Unauthorized("the sign header does not match the timestamp and im.dingtalk.app_secret")
	}
	if skew := a.o.Now().Sub(time.UnixMilli(ms)); skew > a.o.MaxSkew || skew < -a.o.MaxSkew {
		return nil, im.Forbidden("timestamp is %s away from now; at most %s is accepted", skew.Round(time.Second), a.o.MaxSkew)
	}
	return a.ParseEvent(ctx, body)
}

// ParseEvent parses a robot message: a verified callback's body, or a
// Stream mode CALLBACK frame's data.
func (a *Adapter) ParseEvent(_ context.Context, body []byte) (*im.Inbound, error) {
	var e event
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, im.BadRequest("not a DingTalk robot message: %v", err)
	}
	if e.MsgID == "" || e.ConversationID == "" || (e.SenderStaffID == "" && e.SenderID == "") {
		return nil, im.BadRequest("msgId, conversationId and senderStaffId/senderId are required")
	}
	ack := im.Response{Status: http.StatusOK}
	if e.SessionWebhook == "" {
		return nil, im.BadRequest("sessionWebhook is required to reply")
	}
	if !a.allowedWebhook(e.SessionWebhook) {
		return nil, im.Forbidden("sessionWebhook %q is not https on an allowed host (im.dingtalk.webhook_hosts)", e.SessionWebhook)
	}
	m := &im.Message{
		Platform: im.DingTalk, EventID: e.MsgID, SenderName: e.SenderNick,
		SenderID: e.SenderStaffID, ChatID: e.ConversationID, ChatType: im.Private,
		Timestamp: e.CreateAt,
		Reply: map[string]string{
			"session_webhook":         e.SessionWebhook,
			"session_webhook_expires": strconv.FormatInt(e.SessionWebhookExpiredTime, 10),
			"sender_staff_id":         e.SenderStaffID,
			"robot_code":              e.RobotCode,
		},
	}
	if m.SenderID == "" {
		m.SenderID = e.SenderID
	}
	if e.ConversationType == "2" {
		m.ChatType, m.Mentioned = im.Group, e.IsInAtList
	}
	for _, u := range e.AtUsers {
		if u.StaffID != "" {
			m.Mentions = append(m.Mentions, u.StaffID)
		} else if u.DingtalkID != "" && u.DingtalkID != e.ChatbotUserID {
			m.Mentions = append(m.Mentions, u.DingtalkID)
		}
	}
	switch e.MsgType {
	case "text":
		m.Text = e.Text.Content // DingTalk removes the @robot from it
	case "richText":
		var parts []string
		for _, r := range e.Content.RichText {
			if r.Text != "" {
				parts = append(parts, r.Text)
			}
			if r.DownloadCode != "" {
				m.MediaURLs = append(m.MediaURLs, "dingtalk-file:"+r.DownloadCode)
			}
		}
		m.Text = strings.Join(parts, "")
	case "picture":
		if e.Content.DownloadCode != "" {
			m.MediaURLs = append(m.MediaURLs, "dingtalk-file:"+e.Content.DownloadCode)
		}
	}
	m.Text = strings.TrimSpace(m.Text)
	return &im.Inbound{Message: m, Response: ack}, nil
}

// allowedWebhook reports whether a sessionWebhook may be POSTed to: https
// on the default port of an allowed host, or an exact origin listed as
// scheme://host:port (a local fake platform).
func (a *Adapter) allowedWebhook(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Host == "" {
		return false
	}
	for _, h := range a.o.WebhookHosts {
		if o, err := url.Parse(h); err == nil && o.Scheme != "" && o.Host != "" {
			if u.Scheme == o.Scheme && strings.EqualFold(u.Host, o.Host) {
				return true
			}
			continue
		}
		if u.Scheme == "https" && (strings.EqualFold(u.Host, h) || strings.EqualFold(u.Host, h+":443")) {
			return true
		}
	}
	return false
}

// Send posts text to the event's session webhook: as a markdown message
// when it has formatting, else as text; split at im.MaxDingTalk on
// paragraph boundaries; mentioning the sender in a group.
func (a *Adapter) Send(ctx context.Context, m *im.Message, text string) error {
	hook := m.Reply["session_webhook"]
	if exp, _ := strconv.ParseInt(m.Reply["session_webhook_expires"], 10, 64); exp > 0 && !a.o.Now().Before(time.UnixMilli(exp)) {
		return im.Permanent(fmt.Errorf("dingtalk: the session webhook expired at %s", time.UnixMilli(exp).UTC().Format(time.RFC3339)))
	}
	staff := m.Reply["sender_staff_id"]
	if !m.IsGroup() {
		staff = ""
	}
	for _, part := range im.Split(text, im.MaxDingTalk) {
		if err := a.post(ctx, hook, Message(part, staff)); err != nil {
			return err
		}
	}
	return nil
}

// Message is the session webhook body of a reply: msgtype markdown
// (title, text) when text has Markdown, else text (content); mentioning
// staff (a staffId) when not empty — in markdown the @ must stand in the
// text as well as in at.atUserIds.
func Message(text, staff string) map[string]any {
	body := map[string]any{"msgtype": "text", "text": map[string]string{"content": text}}
	if im.HasMarkdown(text) {
		md := text
		if staff != "" {
			md = "@" + staff + " " + text
		}
		body = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": title(text), "text": md}}
	}
	if staff != "" {
		body["at"] = map[string]any{"atUserIds": []string{staff}, "isAtAll": false}
	}
	return body
}

// title is a markdown message's notification title: its first line, bare.
func title(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.TrimSpace(strings.Trim(line, "#*`>-_[] "))
	if r := []rune(line); len(r) > 30 {
		line = string(r[:30]) + "…"
	}
	if line == "" {
		line = "回复"
	}
	return line
}

func (a *Adapter) post(ctx context.Context, hook string, body map[string]any) error {
	var out struct {
		ErrCode int    `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, hook, body, &out)
	if err != nil {
		return err
	}
	if status >= 300 || out.ErrCode != 0 {
		serr := &im.StatusError{Platform: im.DingTalk, Status: status, Code: strconv.Itoa(out.ErrCode), Message: out.ErrMsg}
		if status < 300 {
			// 130101: sending too fast; -1: system busy. Others will not heal.
			if out.ErrCode == 130101 || out.ErrCode == -1 {
				return serr
			}
			return im.Permanent(serr)
		}
		return im.ClassifyStatus(serr)
	}
	return nil
}

var _ im.Adapter = (*Adapter)(nil)
