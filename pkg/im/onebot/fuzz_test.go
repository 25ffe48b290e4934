package onebot

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/botfleet/botfleet/pkg/im"
)

// FuzzParse sends arbitrary bodies, correctly signed, and arbitrary
// signatures: nothing may panic, every refusal is an *im.Error, and a wrong
// signature never passes. CQ-code strings go through parseCQ.
func FuzzParse(f *testing.F) {
	a := New(Options{Secret: "fuzz-secret", APIURL: "http://127.0.0.1:1"})
	f.Add([]byte(`{"post_type":"message","message_type":"group","self_id":1,"message_id":2,"user_id":3,"group_id":4,"message":"[CQ:at,qq=1] hi&#91;x&#93;"}`), "sha1=00")
	f.Add([]byte(`{"post_type":"message","message_type":"private","self_id":1,"message_id":2,"user_id":3,"message":[{"type":"text","data":{"text":"hi"}}]}`), "")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		for _, s := range []string{Signature("fuzz-secret", body), sig} {
			in, err := a.Parse(context.Background(), http.Header{"X-Signature": {s}}, body)
			var ie *im.Error
			if err != nil && !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *im.Error", err)
			}
			if err == nil && s != Signature("fuzz-secret", body) {
				t.Fatalf("a wrong signature passed: %+v", in)
			}
		}
		_ = parseCQ(string(body))
	})
}
