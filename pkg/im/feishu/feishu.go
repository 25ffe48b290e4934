// Package feishu is a Feishu (Lark) app's event subscription v2, receiving
// im.message.receive_v1 and replying through the Open API.
//
// With an encrypt key configured, Feishu sends {"encrypt": base64(iv ||
// AES-256-CBC(key = SHA-256(encrypt_key), iv, PKCS#7(event)))} and signs
// each event with X-Lark-Signature = hex(SHA-256(X-Lark-Request-Timestamp +
// X-Lark-Request-Nonce + encrypt_key + raw body)); the url_verification
// challenge is not signed but carries the verification token, which every
// event must carry too. Replies go to POST
// /open-apis/im/v1/messages/:message_id/reply with a tenant_access_token
// that one instance fetches for the whole fleet and keeps in Redis until
// shortly before it expires; the reply's uuid, derived from the event id,
// lets Feishu drop a duplicate send.
package feishu

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

// DefaultBaseURL is Feishu's Open API.
const DefaultBaseURL = "https://open.feishu.cn"

// Options configure the adapter.
type Options struct {
	// AppID and AppSecret fetch the tenant_access_token.
	AppID, AppSecret string
	// VerificationToken is checked on every request.
	VerificationToken string
	// EncryptKey, when set, requires encrypted and signed events.
	EncryptKey string
	// BaseURL is the Open API; default DefaultBaseURL.
	BaseURL string
	// BotOpenID is the bot's open_id, to tell its mention from others'; empty
	// counts any mention as the bot's.
	BotOpenID string
	// MaxSkew refuses a signed request whose timestamp is further from now
	// (a replay after the dedup window). Default 24h.
	MaxSkew time.Duration
	// Redis caches the token for the fleet under Prefix.
	Redis  redis.UniversalClient
	Prefix string
	Client *http.Client
	Now    func() time.Time
}

// Adapter is the Feishu platform.
type Adapter struct {
	o      Options
	key    [32]byte
	leases *lease.Leases
	// fetches makes one token lookup per instance at a time.
	fetches singleflight.Group
}

// New returns the adapter.
func New(o Options) *Adapter {
	if o.BaseURL == "" {
		o.BaseURL = DefaultBaseURL
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.MaxSkew <= 0 {
		o.MaxSkew = 24 * time.Hour
	}
	if o.Prefix == "" {
		o.Prefix = keyspace.DefaultPrefix
	}
	if o.Client == nil {
		o.Client = im.NewHTTPClient(0)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Adapter{o: o, key: sha256.Sum256([]byte(o.EncryptKey)), leases: lease.New(o.Redis, lease.Options{})}
}

// Platform is "feishu".
func (a *Adapter) Platform() string { return im.Feishu }

// Signature is Feishu's X-Lark-Signature of a request.
func Signature(timestamp, nonce, encryptKey string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(timestamp + nonce + encryptKey))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Decrypt opens an "encrypt" payload.
func Decrypt(encryptKey, payload string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(raw) < 2*aes.BlockSize || len(raw)%aes.BlockSize != 0 {
		return nil, errors.New("not a whole number of AES blocks after the IV")
	}
	key := sha256.Sum256([]byte(encryptKey))
	block, _ := aes.NewCipher(key[:])
	out := make([]byte, len(raw)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, raw[:aes.BlockSize]).CryptBlocks(out, raw[aes.BlockSize:])
	n := int(out[len(out)-1])
	if n < 1 || n > aes.BlockSize || !bytes.Equal(out[len(out)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, errors.New("bad padding: wrong encrypt key?")
	}
	return out[:len(out)-n], nil
}

// Encrypt seals plaintext as Feishu does, with the given 16-byte IV.
func Encrypt(encryptKey string, plaintext, iv []byte) string {
	key := sha256.Sum256([]byte(encryptKey))
	block, _ := aes.NewCipher(key[:])
	n := aes.BlockSize - len(plaintext)%aes.BlockSize
	padded := append(append([]byte{}, plaintext...), bytes.Repeat([]byte{byte(n)}, n)...)
	out := make([]byte, aes.BlockSize+len(padded))
	copy(out, iv[:aes.BlockSize])
	cipher.NewCBCEncrypter(block, iv[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], padded)
	return base64.StdEncoding.EncodeToString(out)
}

type envelope struct {
	Encrypt   string `json:"encrypt"`
	Type      string `json:"type"`
	Challenge string `json:"challenge"`
	Token     string `json:"token"`
	Schema    string `json:"schema"`
	Header    *struct {
		EventID    string `json:"event_id"`
		Token      string `json:"token"`
		CreateTime string `json:"create_time"`
		EventType  string `json:"event_type"`
		AppID      string `json:"app_id"`
	} `json:"header"`
	Event json.RawMessage `json:"event"`
}

type userID struct {
	OpenID  string `json:"open_id"`
	UserID  string `json:"user_id"`
	UnionID string `json:"union_id"`
}

type messageEvent struct {
	Sender struct {
		SenderID   userID `json:"sender_id"`
		SenderType string `json:"sender_type"`
	} `json:"sender"`
	Message struct {
		MessageID   string `json:"message_id"`
		CreateTime  string `json:"create_time"`
		ChatID      string `json:"chat_id"`
		ChatType    string `json:"chat_type"`
		MessageType string `json:"message_type"`
		Content     string `json:"content"`
		Mentions    []struct {
			Key  string `json:"key"`
			ID   userID `json:"id"`
			Name string `json:"name"`
		} `json:"mentions"`
	} `json:"message"`
}

func (a *Adapter) tokenOK(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.o.VerificationToken)) == 1
}

// Parse decrypts, verifies and parses an event request.
func (a *Adapter) Parse(_ context.Context, h http.Header, body []byte) (*im.Inbound, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, im.BadRequest("not a Feishu event: %v", err)
	}
	if a.o.EncryptKey != "" {
		if env.Encrypt == "" {
			return nil, im.BadRequest("an encrypt payload is required (im.feishu.encrypt_key is set)")
		}
		var err error
		if env, err = a.decrypt(env); err != nil {
			return nil, err
		}
	} else if env.Encrypt != "" {
		return nil, im.BadRequest("the event is encrypted but im.feishu.encrypt_key is not set")
	}
	if env.Type == "url_verification" {
		if !a.tokenOK(env.Token) {
			return nil, im.Unauthorized("url_verification: wrong verification token")
		}
		b, _ := json.Marshal(map[string]string{"challenge": env.Challenge})
		return &im.Inbound{Response: im.JSON(string(b))}, nil
	}
	if a.o.EncryptKey != "" {
		ts, nonce, sig := h.Get("X-Lark-Request-Timestamp"), h.Get("X-Lark-Request-Nonce"), h.Get("X-Lark-Signature")
		if ts == "" || sig == "" {
			return nil, im.Unauthorized("X-Lark-Request-Timestamp and X-Lark-Signature are required")
		}
		if subtle.ConstantTimeCompare([]byte(sig), []byte(Signature(ts, nonce, a.o.EncryptKey, body))) != 1 {
			return nil, im.Unauthorized("X-Lark-Signature does not match")
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			return nil, im.Unauthorized("X-Lark-Request-Timestamp %q is not Unix seconds", ts)
		}
		if skew := a.o.Now().Sub(time.Unix(sec, 0)); skew > a.o.MaxSkew || skew < -a.o.MaxSkew {
			return nil, im.Forbidden("X-Lark-Request-Timestamp is %s away from now", skew.Round(time.Second))
		}
	}
	if env.Header == nil || env.Schema != "2.0" {
		return nil, im.BadRequest("only event subscription v2 (schema 2.0) is supported")
	}
	if !a.tokenOK(env.Header.Token) {
		return nil, im.Unauthorized("wrong verification token")
	}
	return a.parseEvent(env)
}

// decrypt opens an encrypted envelope.
func (a *Adapter) decrypt(env envelope) (envelope, error) {
	plain, err := Decrypt(a.o.EncryptKey, env.Encrypt)
	if err != nil {
		return envelope{}, im.Unauthorized("cannot decrypt the event: %v", err)
	}
	var out envelope
	if err := json.Unmarshal(plain, &out); err != nil {
		return envelope{}, im.BadRequest("the decrypted event is not JSON: %v", err)
	}
	return out, nil
}

// ParseEvent parses an event that came over the long connection (the
// connection is authenticated by the app's credentials, so no signature
// or token is checked), with the same parsing as the webhook path.
func (a *Adapter) ParseEvent(_ context.Context, body []byte) (*im.Inbound, error) {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, im.BadRequest("not a Feishu event: %v", err)
	}
	if env.Encrypt != "" && a.o.EncryptKey != "" {
		var err error
		if env, err = a.decrypt(env); err != nil {
			return nil, err
		}
	}
	if env.Header == nil || env.Schema != "2.0" {
		return nil, im.BadRequest("only event subscription v2 (schema 2.0) is supported")
	}
	return a.parseEvent(env)
}

// parseEvent parses a verified v2 event: im.message.receive_v1 into a
// Message, every other type into an acknowledgement.
func (a *Adapter) parseEvent(env envelope) (*im.Inbound, error) {
	ack := im.JSON(`{"msg":"success"}`)
	if env.Header.EventType != "im.message.receive_v1" {
		return &im.Inbound{Response: ack}, nil
	}
	var e messageEvent
	if err := json.Unmarshal(env.Event, &e); err != nil {
		return nil, im.BadRequest("im.message.receive_v1: %v", err)
	}
	if env.Header.EventID == "" || e.Message.MessageID == "" {
		return nil, im.BadRequest("header.event_id and event.message.message_id are required")
	}
	if e.Sender.SenderType != "" && e.Sender.SenderType != "user" {
		return &im.Inbound{Response: ack}, nil // another app's (or our own) message
	}
	m := &im.Message{
		Platform: im.Feishu, EventID: env.Header.EventID, SenderID: e.Sender.SenderID.OpenID,
		ChatType: im.Private, ChatID: e.Message.ChatID,
		Reply: map[string]string{"message_id": e.Message.MessageID, "chat_id": e.Message.ChatID},
	}
	m.Timestamp, _ = strconv.ParseInt(e.Message.CreateTime, 10, 64)
	if e.Message.ChatType == "group" {
		m.ChatType = im.Group
	}
	text := contentText(e.Message.MessageType, e.Message.Content, m)
	for _, men := range e.Message.Mentions {
		bot := a.o.BotOpenID == "" || men.ID.OpenID == a.o.BotOpenID
		if bot {
			m.Mentioned = true
			text = strings.ReplaceAll(text, men.Key, "")
			continue
		}
		m.Mentions = append(m.Mentions, men.ID.OpenID)
		text = strings.ReplaceAll(text, men.Key, "@"+men.Name)
	}
	m.Text = strings.TrimSpace(text)
	return &im.Inbound{Message: m, Response: ack}, nil
}

// contentText extracts the text of a message's content JSON and records
// its images in m.
func contentText(msgType, content string, m *im.Message) string {
	switch msgType {
	case "text":
		var c struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal([]byte(content), &c)
		return c.Text
	case "image":
		var c struct {
			ImageKey string `json:"image_key"`
		}
		if json.Unmarshal([]byte(content), &c) == nil && c.ImageKey != "" {
			m.MediaURLs = append(m.MediaURLs, "feishu-file:"+c.ImageKey)
		}
	case "post":
		var c struct {
			Title   string `json:"title"`
			Content [][]struct {
				Tag      string `json:"tag"`
				Text     string `json:"text"`
				UserID   string `json:"user_id"`
				ImageKey string `json:"image_key"`
			} `json:"content"`
		}
		_ = json.Unmarshal([]byte(content), &c)
		var b strings.Builder
		for _, line := range c.Content {
			for _, el := range line {
				switch el.Tag {
				case "text", "a":
					b.WriteString(el.Text)
				case "at":
					b.WriteString(el.UserID)
				case "img":
					m.MediaURLs = append(m.MediaURLs, "feishu-file:"+el.ImageKey)
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	return ""
}

// UUID is the reply's idempotency key for an event (at most 50 characters).
func UUID(eventID string) string {
	h := sha256.Sum256([]byte("botfleet:" + eventID))
	return hex.EncodeToString(h[:16])
}

// Send replies to the message: an interactive card with a markdown
// element when text has Markdown, else a text message; split at
// im.MaxFeishu on paragraph boundaries, each part with its own uuid (so a
// retry sends none twice); mentioning the sender in a group.
func (a *Adapter) Send(ctx context.Context, m *im.Message, text string) error {
	mention := ""
	if m.IsGroup() {
		mention = m.SenderID
	}
	for i, part := range im.Split(text, im.MaxFeishu) {
		uuid := UUID(m.EventID)
		if i > 0 {
			uuid = UUID(m.EventID + "#" + strconv.Itoa(i))
		}
		msgType, content := Content(part, mention)
		body := map[string]string{"content": content, "msg_type": msgType, "uuid": uuid}
		if err := a.reply(ctx, m.Reply["message_id"], body); err != nil {
			return err
		}
	}
	return nil
}

// Content is a reply's msg_type and content: "interactive" and a card
// whose markdown element holds text when it has Markdown, else "text";
// mentioning the user with open_id mention when not empty.
func Content(text, mention string) (string, string) {
	if im.HasMarkdown(text) {
		card, _ := json.Marshal(map[string]any{
			"config":   map[string]bool{"wide_screen_mode": true},
			"elements": []map[string]string{{"tag": "markdown", "content": withMention(text, mention)}},
		})
		return "interactive", string(card)
	}
	if mention != "" {
		text = `<at user_id="` + mention + `"></at> ` + text
	}
	content, _ := json.Marshal(map[string]string{"text": text})
	return "text", string(content)
}

// reply posts one reply.
func (a *Adapter) reply(ctx context.Context, messageID string, body map[string]string) error {
	_, err := a.api(ctx, http.MethodPost, "/open-apis/im/v1/messages/"+url.PathEscape(messageID)+"/reply", body)
	return err
}

// api calls an Open API method with the tenant token, refreshing it once
// when Feishu says it is invalid; it returns the answer's data.
func (a *Adapter) api(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	for attempt := 0; ; attempt++ {
		token, err := a.token(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		var out struct {
			Code int             `json:"code"`
			Msg  string          `json:"msg"`
			Data json.RawMessage `json:"data"`
		}
		status, err := im.CallJSON(ctx, a.o.Client, method, a.o.BaseURL+path, body, &out, "Authorization", "Bearer "+token)
		if err != nil {
			return nil, err
		}
		if status < 300 && out.Code == 0 {
			return out.Data, nil
		}
		if (out.Code == 99991663 || out.Code == 99991661 || out.Code == 99991668) && attempt == 0 {
			continue // the cached token is no longer valid: fetch another
		}
		serr := &im.StatusError{Platform: im.Feishu, Status: max(status, 400), Code: strconv.Itoa(out.Code), Message: out.Msg}
		if out.Code == 99991400 || out.Code == 230020 || out.Code == 230072 { // rate limited (app-wide, in this chat, this message)
			serr.Status = http.StatusTooManyRequests
		}
		return nil, im.ClassifyStatus(serr)
	}
}

// apiID is an api call whose data names what it made by one id field
// (message_id, card_id); an answer without it is an error.
func (a *Adapter) apiID(ctx context.Context, method, path string, body any, field string) (string, error) {
	data, err := a.api(ctx, method, path, body)
	if err != nil {
		return "", err
	}
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	id, _ := out[field].(string)
	if id == "" {
		return "", fmt.Errorf("feishu: %s gave no %s: %s", path, field, data)
	}
	return id, nil
}

func (a *Adapter) tokenKey() string { return a.o.Prefix + ":im:feishu:token:" + a.o.AppID }

// token returns the fleet's cached tenant_access_token, or fetches one.
// Within an instance concurrent callers share one lookup (singleflight);
// across the fleet one instance fetches, under a short lease, while the
// others wait for the token it caches. refresh drops a token Feishu
// called invalid first.
func (a *Adapter) token(ctx context.Context, refresh bool) (string, error) {
	if refresh {
		_ = a.o.Redis.Del(ctx, a.tokenKey()).Err()
	}
	ch := a.fetches.DoChan("token", func() (any, error) {
		return a.sharedToken(context.WithoutCancel(ctx))
	})
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-ch:
		tok, _ := r.Val.(string)
		return tok, r.Err
	}
}

// sharedToken reads the cached token, or takes the refresh lease and
// fetches it; after 3s without a token it fetches without the lease.
func (a *Adapter) sharedToken(ctx context.Context) (string, error) {
	key, owner := a.tokenKey(), lease.NewOwner()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	deadline := time.Now().Add(3 * time.Second)
	for {
		tok, err := a.o.Redis.Get(ctx, key).Result()
		if err == nil && tok != "" {
			return tok, nil
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return "", fmt.Errorf("feishu: token cache: %w", err)
		}
		locked, _, err := a.leases.Acquire(ctx, key+":lock", owner, 10*time.Second)
		if err != nil {
			return "", fmt.Errorf("feishu: token lock: %w", err)
		}
		if locked || time.Now().After(deadline) {
			tok, err := a.fetchToken(ctx)
			if locked {
				_ = a.leases.Release(ctx, key+":lock", owner)
			}
			return tok, err
		}
		if !pause.For(ctx, 50*time.Millisecond) {
			return "", ctx.Err()
		}
	}
}

func (a *Adapter) fetchToken(ctx context.Context) (string, error) {
	var out struct {
		Code   int    `json:"code"`
		Msg    string `json:"msg"`
		Token  string `json:"tenant_access_token"`
		Expire int64  `json:"expire"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, a.o.BaseURL+"/open-apis/auth/v3/tenant_access_token/internal",
		map[string]string{"app_id": a.o.AppID, "app_secret": a.o.AppSecret}, &out)
	if err != nil {
		return "", fmt.Errorf("feishu: tenant_access_token: %w", err)
	}
	if status >= 300 || out.Code != 0 || out.Token == "" {
		return "", &im.StatusError{Platform: im.Feishu, Status: max(status, 500), Code: strconv.Itoa(out.Code), Message: "tenant_access_token: " + out.Msg}
	}
	// Keep it until 5 minutes before Feishu's expiry (half its life when short).
	life := time.Duration(out.Expire) * time.Second
	if life > 10*time.Minute {
		life -= 5 * time.Minute
	} else {
		life /= 2
	}
	if life > 0 {
		_ = a.o.Redis.Set(ctx, a.tokenKey(), out.Token, life).Err()
	}
	return out.Token, nil
}

var _ im.Adapter = (*Adapter)(nil)
