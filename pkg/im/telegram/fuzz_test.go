package telegram

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/botfleet/botfleet/pkg/im"
)

// FuzzParse sends arbitrary updates with the right secret token and
// arbitrary tokens: nothing may panic, every refusal is an *im.Error, and a
// wrong token never passes.
func FuzzParse(f *testing.F) {
	a := New(Options{BotToken: "1:x", SecretToken: "fuzz_secret", APIURL: "http://127.0.0.1:1", BotUsername: "fleet_bot"})
	f.Add([]byte(`{"update_id":1,"message":{"message_id":2,"from":{"id":3},"chat":{"id":-4,"type":"group"},"text":"@fleet_bot hi 😀","entities":[{"type":"mention","offset":0,"length":10}]}}`), "x")
	f.Add([]byte(`{"update_id":1,"message":{"message_id":2,"from":{"id":3},"chat":{"id":3,"type":"private"},"caption":"c","photo":[{"file_id":"f"}]}}`), "fuzz_secret")
	f.Fuzz(func(t *testing.T, body []byte, token string) {
		for _, tok := range []string{"fuzz_secret", token} {
			in, err := a.Parse(context.Background(), http.Header{"X-Telegram-Bot-Api-Secret-Token": {tok}}, body)
			var ie *im.Error
			if err != nil && !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *im.Error", err)
			}
			if err == nil && tok != "fuzz_secret" {
				t.Fatalf("a wrong secret token passed: %+v", in)
			}
		}
	})
}
