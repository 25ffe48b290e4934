package loadtest

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/jsonstr"
)

// TelegramPath is the telegram target's endpoint.
const TelegramPath = "/webhook/telegram"

// TelegramTarget drives the bot's Telegram webhook as Telegram would: POST
// /webhook/telegram with an update (a private text message; the session id
// picks the chat, a counter the update and message ids) and the
// X-Telegram-Bot-Api-Secret-Token header, expecting 200. It measures the
// webhook path — verification, fleet-wide dedup, enqueue — not the reply,
// which the queue's workers send later (see /admin/api/queues and the
// botfleet_queue_* metrics); continuity is not checked.
type TelegramTarget struct {
	url    string
	secret string
	base   int64
}

// NewTelegramTarget returns the telegram target of the bot at baseURL,
// sending secret (the bot's im.telegram.secret_token) with every update.
func NewTelegramTarget(baseURL, secret string) (*TelegramTarget, error) {
	base, err := serviceURL(baseURL)
	if err != nil {
		return nil, err
	}
	if secret == "" {
		return nil, fmt.Errorf("target telegram: --token must be the webhook's secret token (im.telegram.secret_token)")
	}
	// Update ids unique across runs, so the bot's dedup never drops a
	// request of a later run as a retry of an earlier one.
	return &TelegramTarget{url: base + TelegramPath, secret: secret, base: time.Now().UnixMilli() * 1000}, nil
}

// UpdateID is the update_id, and the message_id, of c's update: the run's
// requests get consecutive ids, so a fake platform can tell which update a
// reply (reply_parameters.message_id) answers.
func (t *TelegramTarget) UpdateID(c Call) int64 { return t.base + c.Seq }

// Name implements Target.
func (t *TelegramTarget) Name() string { return "telegram" }

// NewRequest implements Target.
func (t *TelegramTarget) NewRequest(ctx context.Context, c Call) (*http.Request, error) {
	id := strconv.FormatInt(t.UpdateID(c), 10)
	h := fnv.New32a()
	h.Write([]byte(c.SessionID))
	chat := strconv.FormatUint(uint64(h.Sum32())+1, 10)
	b := make([]byte, 0, 200+len(c.Message))
	b = append(b, `{"update_id":`...)
	b = append(b, id...)
	b = append(b, `,"message":{"message_id":`...)
	b = append(b, id...)
	b = append(b, `,"date":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	b = append(b, `,"chat":{"id":`...)
	b = append(b, chat...)
	b = append(b, `,"type":"private"},"from":{"id":`...)
	b = append(b, chat...)
	b = append(b, `,"is_bot":false,"first_name":"loadtest"},"text":`...)
	b = jsonstr.Append(b, c.Message)
	b = append(b, "}}"...)
	req, err := postJSON(ctx, t.url, "", b)
	if err != nil {
		return nil, err
	}
	req.Header["X-Telegram-Bot-Api-Secret-Token"] = []string{t.secret}
	return req, nil
}

// Check implements Target: 200 is success.
func (t *TelegramTarget) Check(status int, _ []byte) (Reply, error) {
	if status != http.StatusOK {
		return Reply{}, &StatusError{Code: status}
	}
	return Reply{}, nil
}
