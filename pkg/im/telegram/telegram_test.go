package telegram

import (
	"context"
	"net/http"
	"testing"
)

func TestParseMentionsInUTF16(t *testing.T) {
	a := New(Options{SecretToken: "st", BotUsername: "@fleet_bot"})
	h := http.Header{"X-Telegram-Bot-Api-Secret-Token": {"st"}}
	// "😀 @fleet_bot 紧急 /ask@fleet_bot": the emoji is two UTF-16 units.
	body := []byte(`{"update_id":9,"message":{"message_id":5,"from":{"id":7,"is_bot":false,"first_name":"A"},
		"chat":{"id":-1001,"type":"supergroup"},"date":1700000000,"text":"😀 @fleet_bot 紧急 /ask@fleet_bot",
		"entities":[{"type":"mention","offset":3,"length":10},{"type":"bot_command","offset":17,"length":14}]}}`)
	in, err := a.Parse(context.Background(), h, body)
	if err != nil {
		t.Fatal(err)
	}
	m := in.Message
	if !m.Mentioned || m.Text != "😀  紧急 /ask" || m.EventID != "9" || m.ChatID != "-1001" || !m.IsGroup() || m.Reply["message_id"] != "5" {
		t.Fatalf("%+v %q", m, m.Text)
	}
	if _, err := a.Parse(context.Background(), http.Header{"X-Telegram-Bot-Api-Secret-Token": {"sT"}}, body); err == nil {
		t.Fatal("wrong secret token accepted")
	}
	bot := []byte(`{"update_id":10,"message":{"message_id":6,"from":{"id":8,"is_bot":true,"first_name":"B"},"chat":{"id":1,"type":"private"},"text":"hi"}}`)
	if in, err := a.Parse(context.Background(), h, bot); err != nil || in.Message != nil {
		t.Fatalf("a bot's message: %v %+v", err, in)
	}
}
