package telegram_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/im/imtest"
	"github.com/botfleet/botfleet/pkg/im/telegram"
)

func TestLongReplySplitOnParagraphs(t *testing.T) {
	f := imtest.NewTelegram(t, "1:T", "bot")
	a := telegram.New(telegram.Options{BotToken: "1:T", APIURL: f.URL})
	para := strings.Repeat("段落", 1000) // 2000 runes
	text := strings.Join([]string{para, para, para, para, para}, "\n\n")
	m := &im.Message{Platform: im.Telegram, EventID: "1", ChatType: im.Private, Reply: map[string]string{"chat_id": "42", "message_id": "9"}}
	if err := a.Send(context.Background(), m, text); err != nil {
		t.Fatal(err)
	}
	f.Wait(5*time.Second, func(s []imtest.Sent) bool { return len(s) == 3 })
	sent := f.Sent()
	if len(sent) != 3 {
		t.Fatalf("%d messages for 5 paragraphs of 2000 characters", len(sent))
	}
	var got []string
	for _, s := range sent {
		if n := utf8.RuneCountInString(s.Text); n > telegram.MaxText || s.To != "9" || s.Chat != "42" {
			t.Fatalf("a part of %d characters to %s in %s", n, s.To, s.Chat)
		}
		got = append(got, s.Text)
	}
	if strings.Join(got, "\n\n") != text {
		t.Fatal("the parts do not make the reply")
	}
}
