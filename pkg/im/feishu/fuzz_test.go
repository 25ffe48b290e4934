package feishu

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
)

// FuzzParse encrypts and signs arbitrary events as Feishu does, and also
// sends arbitrary bodies and signatures: nothing may panic, every refusal
// is an *im.Error, and a wrong signature never yields a message. Decrypt gets
// arbitrary payloads.
func FuzzParse(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	const key, token = "fuzz-encrypt-key", "fuzz-token"
	a := New(Options{AppID: "cli", AppSecret: "s", VerificationToken: token, EncryptKey: key, Now: func() time.Time { return now }})
	f.Add([]byte(`{"schema":"2.0","header":{"event_id":"e","token":"fuzz-token","event_type":"im.message.receive_v1"},"event":{"sender":{"sender_id":{"open_id":"ou"},"sender_type":"user"},"message":{"message_id":"om","chat_id":"oc","chat_type":"group","message_type":"text","content":"{\"text\":\"@_user_1 hi\"}","mentions":[{"key":"@_user_1","id":{"open_id":"ou_bot"}}]}}}`), "sig")
	f.Add([]byte(`{"type":"url_verification","challenge":"c","token":"fuzz-token"}`), "")
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Fuzz(func(t *testing.T, event []byte, sig string) {
		body := []byte(`{"encrypt":"` + Encrypt(key, event, []byte("0123456789abcdef")) + `"}`)
		for _, c := range []struct {
			body []byte
			sig  string
		}{{body, Signature(ts, "n", key, body)}, {event, sig}, {body, sig}} {
			h := http.Header{"X-Lark-Request-Timestamp": {ts}, "X-Lark-Request-Nonce": {"n"}, "X-Lark-Signature": {c.sig}}
			in, err := a.Parse(context.Background(), h, c.body)
			var ie *im.Error
			if err != nil && !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *im.Error", err)
			}
			// Only the url_verification challenge (answered, never queued)
			// comes without a signature, as Feishu sends it.
			if err == nil && in.Message != nil && c.sig != Signature(ts, "n", key, c.body) {
				t.Fatalf("a wrong signature passed: %+v", in.Message)
			}
		}
		_, _ = Decrypt(key, string(event))
	})
}
