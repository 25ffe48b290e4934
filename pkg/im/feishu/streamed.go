package feishu

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
)

// A streamed reply (im.Editor) is an interactive card whose markdown
// element grows: made as a reply with the event's uuid, then updated with
// PATCH /open-apis/im/v1/messages/:message_id.

// card is a streamed reply's card: a markdown element, updatable.
func card(text, mention string) string {
	b, _ := json.Marshal(map[string]any{
		"config":   map[string]bool{"wide_screen_mode": true, "update_multi": true},
		"elements": []map[string]string{{"tag": "markdown", "content": withMention(text, mention)}},
	})
	return string(b)
}

// withMention starts a card's markdown with the @ of open_id mention, when not empty.
func withMention(text, mention string) string {
	if mention == "" {
		return text
	}
	return "<at id=" + mention + "></at> " + text
}

func mentionOf(m *im.Message) string {
	if m.IsGroup() {
		return m.SenderID
	}
	return ""
}

// Begin replies with the card and returns its message_id.
func (a *Adapter) Begin(ctx context.Context, m *im.Message, text string) (string, error) {
	return a.apiID(ctx, http.MethodPost, "/open-apis/im/v1/messages/"+url.PathEscape(m.Reply["message_id"])+"/reply",
		map[string]string{"msg_type": "interactive", "content": card(text, mentionOf(m)), "uuid": UUID(m.EventID + "#stream")}, "message_id")
}

// Edit updates the card.
func (a *Adapter) Edit(ctx context.Context, m *im.Message, id, text string) error {
	_, err := a.api(ctx, http.MethodPatch, "/open-apis/im/v1/messages/"+url.PathEscape(id), map[string]string{"content": card(text, mentionOf(m))})
	return err
}

// EditEvery keeps under Feishu's 5 updates a second of one message.
func (a *Adapter) EditEvery() time.Duration { return 500 * time.Millisecond }

// MaxText is what one card takes.
func (a *Adapter) MaxText() int { return im.MaxFeishu }

var _ im.Editor = (*Adapter)(nil)
