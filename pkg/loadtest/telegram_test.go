package loadtest

import (
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/botfleet/botfleet/pkg/im/telegram"
)

// The telegram target's updates are what the bot's own Telegram adapter
// accepts: the secret token checks out, the text comes through, a session
// keeps its chat and every request is a new update.
func TestTelegramTargetSpeaksTheWebhookFormat(t *testing.T) {
	tgt, err := NewTargetConfig("telegram", TargetConfig{URL: "http://127.0.0.1:1", Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	adapter := telegram.New(telegram.Options{SecretToken: "s3cret", BotUsername: "botfleet_bot"})
	events := map[string]bool{}
	chats := map[string]string{}
	for i, c := range []Call{
		{SessionID: "a", Turn: 1, Message: `hello "there"`, Seq: 1},
		{SessionID: "b", Turn: 1, Message: "你好", Seq: 2},
		{SessionID: "a", Turn: 2, Message: "again", Seq: 3},
	} {
		req, err := tgt.NewRequest(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if req.URL.Path != TelegramPath {
			t.Fatalf("path %s", req.URL.Path)
		}
		body, _ := io.ReadAll(req.Body)
		in, err := adapter.Parse(context.Background(), req.Header, body)
		if err != nil || in.Message == nil {
			t.Fatalf("call %d: the Telegram adapter refused %s: %v", i, body, err)
		}
		m := in.Message
		if m.Text != c.Message || events[m.EventID] {
			t.Fatalf("call %d: text %q, event %s (seen %v)", i, m.Text, m.EventID, events[m.EventID])
		}
		events[m.EventID] = true
		if id := tgt.(*TelegramTarget).UpdateID(c); m.Reply["message_id"] != strconv.FormatInt(id, 10) {
			t.Fatalf("call %d: message_id %s, UpdateID says %d", i, m.Reply["message_id"], id)
		}
		if prev, ok := chats[c.SessionID]; ok && prev != m.ChatID {
			t.Fatalf("session %s moved from chat %s to %s", c.SessionID, prev, m.ChatID)
		}
		chats[c.SessionID] = m.ChatID
	}
	if chats["a"] == chats["b"] {
		t.Fatalf("two sessions share chat %s", chats["a"])
	}
	if _, err := NewTargetConfig("telegram", TargetConfig{URL: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("telegram target without a secret token: no error")
	}
	if _, err := tgt.Check(200, nil); err != nil {
		t.Fatalf("200: %v", err)
	}
	if _, err := tgt.Check(401, nil); err == nil {
		t.Fatal("401 accepted")
	}
}
