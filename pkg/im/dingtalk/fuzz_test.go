package dingtalk

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
)

// FuzzParse sends arbitrary bodies, correctly signed, and arbitrary sign
// headers: nothing may panic, every refusal is an *im.Error (a 4xx, never a
// 500), and a wrong sign never passes.
func FuzzParse(f *testing.F) {
	now := time.UnixMilli(1_800_000_000_000)
	a := New(Options{AppSecret: "fuzz-secret", Now: func() time.Time { return now }})
	ts := strconv.FormatInt(now.UnixMilli(), 10)
	f.Add([]byte(`{"msgId":"m1","msgtype":"text","text":{"content":"hi"},"conversationType":"2","conversationId":"c","senderStaffId":"s","isInAtList":true,"sessionWebhook":"https://oapi.dingtalk.com/robot/sendBySession?session=x"}`), ts, "")
	f.Add([]byte(`{"msgtype":"richText","content":{"richText":[{"text":"a"},{"downloadCode":"d"}]}}`), "0", "x")
	f.Fuzz(func(t *testing.T, body []byte, stamp, sign string) {
		for _, h := range []http.Header{
			{"Timestamp": {ts}, "Sign": {Sign(ts, "fuzz-secret")}},
			{"Timestamp": {stamp}, "Sign": {sign}},
		} {
			in, err := a.Parse(context.Background(), h, body)
			var ie *im.Error
			if err != nil && !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *im.Error", err)
			}
			if err == nil && h.Get("Sign") != Sign(h.Get("Timestamp"), "fuzz-secret") {
				t.Fatalf("a wrong sign passed: %+v", in)
			}
		}
	})
}
