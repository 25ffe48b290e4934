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

func TestUpdateIDSpellingsAreOneEvent(t *testing.T) {
	a := New(Options{SecretToken: "st", BotUsername: "fleet_bot"})
	for _, id := range []string{"77001", "77001.0", "7.7001e4"} {
		body := []byte(`{"update_id":` + id + `,"message":{"message_id":5,"from":{"id":7,"is_bot":false,"first_name":"A"},
			"chat":{"id":7.0,"type":"private"},"date":1700000000,"text":"hi"}}`)
		in, err := a.ParseEvent(context.Background(), body)
		if err != nil {
			t.Fatal(err)
		}
		if m := in.Message; m.Key() != "telegram:77001" || m.ChatID != "7" || m.Reply["chat_id"] != "7" {
			t.Fatalf("update_id %s: key %s chat %s", id, m.Key(), m.ChatID)
		}
	}
	if _, err := a.ParseEvent(context.Background(), []byte(`{"update_id":77001.5}`)); err == nil {
		t.Fatal("a fractional update_id was accepted")
	}
}
