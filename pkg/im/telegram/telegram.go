// Package telegram is a Telegram bot behind the Bot API's webhook.
//
// setWebhook's secret_token comes back in every update's
// X-Telegram-Bot-Api-Secret-Token header; updates are deduped on
// update_id, and replies go through sendMessage, quoting the message.
// In groups the bot is mentioned by @username (a mention entity, or a
// /command@username), a text_mention of the bot, or a reply to one of its
// messages; the username comes from im.telegram.bot_username or, when
// that is empty, from getMe on first need.
package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/botfleet/botfleet/pkg/im"
)

// DefaultAPIURL is the Bot API.
const DefaultAPIURL = "https://api.telegram.org"

// MaxText is the longest message text Telegram takes.
const MaxText = 4096

// Options configure the adapter.
type Options struct {
	// BotToken is BotFather's token (im.telegram.bot_token).
	BotToken string
	// SecretToken is setWebhook's secret_token (im.telegram.secret_token).
	SecretToken string
	// APIURL is the Bot API; default DefaultAPIURL.
	APIURL string
	// BotUsername is the bot's @username without the @; empty asks getMe.
	BotUsername string
	Client      *http.Client
}

// Adapter is the Telegram platform.
type Adapter struct {
	o  Options
	mu sync.Mutex
	me *user
	// failedAt stops asking getMe on every group message while it fails.
	failedAt time.Time
}

// New returns the adapter.
func New(o Options) *Adapter {
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	o.APIURL = strings.TrimRight(o.APIURL, "/")
	o.BotUsername = strings.TrimPrefix(o.BotUsername, "@")
	if o.Client == nil {
		o.Client = im.NewHTTPClient(0)
	}
	a := &Adapter{o: o}
	if o.BotUsername != "" {
		a.me = &user{Username: o.BotUsername}
	}
	return a
}

// Platform is "telegram".
func (a *Adapter) Platform() string { return im.Telegram }

type user struct {
	ID        int64  `json:"id"`
	IsBot     bool   `json:"is_bot"`
	FirstName string `json:"first_name"`
	Username  string `json:"username"`
}

type entity struct {
	Type   string `json:"type"`
	Offset int    `json:"offset"`
	Length int    `json:"length"`
	User   *user  `json:"user"`
}

type message struct {
	MessageID int64 `json:"message_id"`
	From      *user `json:"from"`
	Chat      struct {
		ID   json.Number `json:"id"`
		Type string      `json:"type"`
	} `json:"chat"`
	Date            int64    `json:"date"`
	Text            string   `json:"text"`
	Caption         string   `json:"caption"`
	Entities        []entity `json:"entities"`
	CaptionEntities []entity `json:"caption_entities"`
	Photo           []struct {
		FileID string `json:"file_id"`
	} `json:"photo"`
	Document *struct {
		FileID string `json:"file_id"`
	} `json:"document"`
	ReplyToMessage *struct {
		From *user `json:"from"`
	} `json:"reply_to_message"`
}

type update struct {
	UpdateID json.Number `json:"update_id"`
	Message  *message    `json:"message"`
}

// Parse checks the secret token and parses an update.
func (a *Adapter) Parse(ctx context.Context, h http.Header, body []byte) (*im.Inbound, error) {
	got := h.Get("X-Telegram-Bot-Api-Secret-Token")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(a.o.SecretToken)) != 1 {
		return nil, im.Unauthorized("X-Telegram-Bot-Api-Secret-Token is missing or wrong")
	}
	return a.ParseEvent(ctx, body)
}

// ParseEvent parses an update: a verified webhook body, or one update of
// a getUpdates answer.
func (a *Adapter) ParseEvent(ctx context.Context, body []byte) (*im.Inbound, error) {
	var u update
	if err := im.DecodeNumbers(body, &u); err != nil {
		return nil, im.BadRequest("not a Telegram update: %v", err)
	}
	// update_id and chat ids are integers: every spelling of one is one id.
	updateID, err := im.IntID(u.UpdateID)
	if err != nil || updateID == "" {
		return nil, im.BadRequest("update_id must be an integer: %v", err)
	}
	ack := im.Response{Status: http.StatusOK}
	msg := u.Message
	if msg == nil || msg.From == nil || msg.From.IsBot {
		return &im.Inbound{Response: ack}, nil // edits, channel posts, other bots
	}
	chatID, err := im.IntID(msg.Chat.ID)
	if err != nil || chatID == "" || msg.MessageID == 0 {
		return nil, im.BadRequest("message.chat.id and message.message_id are required integers")
	}
	m := &im.Message{
		Platform: im.Telegram, EventID: updateID,
		SenderID: strconv.FormatInt(msg.From.ID, 10), SenderName: msg.From.Username,
		ChatType: im.Private, ChatID: chatID, Timestamp: msg.Date * 1000,
		Reply: map[string]string{"chat_id": chatID, "message_id": strconv.FormatInt(msg.MessageID, 10)},
	}
	if m.SenderName == "" {
		m.SenderName = msg.From.FirstName
	}
	if msg.Chat.Type == "group" || msg.Chat.Type == "supergroup" {
		m.ChatType = im.Group
	}
	text, ents := msg.Text, msg.Entities
	if text == "" {
		text, ents = msg.Caption, msg.CaptionEntities
	}
	if len(msg.Photo) > 0 {
		m.MediaURLs = append(m.MediaURLs, "telegram-file:"+msg.Photo[len(msg.Photo)-1].FileID)
	}
	if msg.Document != nil {
		m.MediaURLs = append(m.MediaURLs, "telegram-file:"+msg.Document.FileID)
	}
	var me *user
	if m.IsGroup() {
		me = a.bot(ctx)
	}
	runes := utf16.Encode([]rune(text))
	var cut [][2]int // UTF-16 ranges of the bot's mentions, to strip
	for _, e := range ents {
		if e.Offset < 0 || e.Length <= 0 || e.Offset+e.Length > len(runes) {
			continue
		}
		part := string(utf16.Decode(runes[e.Offset : e.Offset+e.Length]))
		switch e.Type {
		case "mention":
			if me != nil && strings.EqualFold(part, "@"+me.Username) {
				m.Mentioned = true
				cut = append(cut, [2]int{e.Offset, e.Offset + e.Length})
			} else {
				m.Mentions = append(m.Mentions, strings.TrimPrefix(part, "@"))
			}
		case "text_mention":
			if e.User != nil {
				if me != nil && e.User.ID == me.ID && me.ID != 0 {
					m.Mentioned = true
				} else {
					m.Mentions = append(m.Mentions, strconv.FormatInt(e.User.ID, 10))
				}
			}
		case "bot_command":
			if me != nil && strings.HasSuffix(strings.ToLower(part), "@"+strings.ToLower(me.Username)) {
				m.Mentioned = true
				at := e.Offset + e.Length - len(utf16.Encode([]rune("@"+me.Username)))
				cut = append(cut, [2]int{at, e.Offset + e.Length})
			}
		}
	}
	if r := msg.ReplyToMessage; r != nil && r.From != nil && me != nil && r.From.IsBot && strings.EqualFold(r.From.Username, me.Username) {
		m.Mentioned = true
	}
	for i := len(cut) - 1; i >= 0; i-- { // entities come in order; strip from the end
		runes = append(runes[:cut[i][0]:cut[i][0]], runes[cut[i][1]:]...)
	}
	m.Text = strings.TrimSpace(string(utf16.Decode(runes)))
	return &im.Inbound{Message: m, Response: ack}, nil
}

// bot returns the bot's user, from config or getMe (cached once it works).
func (a *Adapter) bot(ctx context.Context) *user {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.me != nil {
		return a.me
	}
	if time.Since(a.failedAt) < time.Minute {
		return nil
	}
	var out struct {
		OK     bool `json:"ok"`
		Result user `json:"result"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, a.o.APIURL+"/bot"+a.o.BotToken+"/getMe", nil, &out)
	if err != nil || status != http.StatusOK || !out.OK || out.Result.Username == "" {
		a.failedAt = time.Now()
		return nil
	}
	a.me = &out.Result
	return a.me
}

// Send answers with sendMessage, quoting the message (which notifies its
// sender in a group), split at MaxText on paragraph boundaries.
func (a *Adapter) Send(ctx context.Context, m *im.Message, text string) error {
	msgID, _ := strconv.ParseInt(m.Reply["message_id"], 10, 64)
	for _, part := range im.Split(text, MaxText) {
		body := map[string]any{
			"chat_id": json.Number(m.Reply["chat_id"]),
			"text":    part,
			"reply_parameters": map[string]any{
				"message_id": msgID, "allow_sending_without_reply": true,
			},
		}
		if _, err := a.call(ctx, "sendMessage", body); err != nil {
			return err
		}
	}
	return nil
}

// Begin sends text as a streamed reply's message, quoting the message
// answered, and returns its message_id.
func (a *Adapter) Begin(ctx context.Context, m *im.Message, text string) (string, error) {
	msgID, _ := strconv.ParseInt(m.Reply["message_id"], 10, 64)
	sent, err := a.call(ctx, "sendMessage", map[string]any{
		"chat_id": json.Number(m.Reply["chat_id"]), "text": text,
		"reply_parameters": map[string]any{"message_id": msgID, "allow_sending_without_reply": true},
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(sent.MessageID, 10), nil
}

// Edit replaces a streamed reply's text with editMessageText; the same
// text again is not an error.
func (a *Adapter) Edit(ctx context.Context, m *im.Message, id, text string) error {
	_, err := a.call(ctx, "editMessageText", map[string]any{"chat_id": json.Number(m.Reply["chat_id"]), "message_id": json.Number(id), "text": text})
	var serr *im.StatusError
	if errors.As(err, &serr) && strings.Contains(serr.Message, "message is not modified") {
		return nil
	}
	return err
}

// EditEvery is one edit a second: Telegram's rate limit for a chat.
func (a *Adapter) EditEvery() time.Duration { return time.Second }

// MaxText is sendMessage's limit.
func (a *Adapter) MaxText() int { return MaxText }

// call posts a Bot API method and judges its answer; it returns the sent
// message of methods that send one.
func (a *Adapter) call(ctx context.Context, method string, body any) (sentMessage, error) {
	var out struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"` // a Message, or true

		ErrorCode   int    `json:"error_code"`
		Description string `json:"description"`
		Parameters  *struct {
			RetryAfter int `json:"retry_after"`
		} `json:"parameters"`
	}
	status, err := im.PostJSON(ctx, a.o.Client, a.o.APIURL+"/bot"+a.o.BotToken+"/"+method, body, &out)
	if err != nil {
		// The URL holds the bot token: keep it out of errors and logs.
		msg := strings.ReplaceAll(err.Error(), a.o.BotToken, "<token>")
		var terr interface{ Timeout() bool }
		if errors.As(err, &terr) && terr.Timeout() {
			msg += " (it may have been delivered)"
		}
		return sentMessage{}, fmt.Errorf("telegram: %s: %s", method, msg)
	}
	if status == http.StatusOK && out.OK {
		var sent sentMessage
		_ = json.Unmarshal(out.Result, &sent)
		return sent, nil
	}
	return sentMessage{}, im.ClassifyStatus(&im.StatusError{Platform: im.Telegram, Status: max(status, out.ErrorCode), Code: strconv.Itoa(out.ErrorCode), Message: out.Description})
}

// sentMessage is the part of a sent Message the bot reads back.
type sentMessage struct {
	MessageID int64 `json:"message_id"`
}

var _ im.Editor = (*Adapter)(nil)

var _ im.Adapter = (*Adapter)(nil)
