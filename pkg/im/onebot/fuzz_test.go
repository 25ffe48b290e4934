package onebot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/im/imtest"
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

// FuzzSocketFrame hands arbitrary WebSocket text frames, twice each, to the
// socket's frame handler while a call waits for echo "bf-1", with the
// pipeline queueing, refusing or unable to queue: nothing panics or blocks
// (a repeated answer must not stop the reader), an event reaches the
// pipeline as sent and never a caller, an answer reaches only the caller of
// its echo, and only an event the pipeline could not queue ends the socket.
func FuzzSocketFrame(f *testing.F) {
	f.Add([]byte(`{"status":"ok","retcode":0,"data":{"user_id":10001,"nickname":"bot"},"echo":"bf-1"}`), uint8(0))
	f.Add([]byte(`{"status":"failed","retcode":100,"data":null,"message":"no","echo":{"seq":1}}`), uint8(0))
	f.Add([]byte(imtest.PrivateMessage(10001, 7, 42, "hi")), uint8(0))
	f.Add([]byte(imtest.GroupMessage(10001, 8, 9, 42, "hi")), uint8(2))
	f.Add([]byte(`{"time":1,"self_id":10001,"post_type":"meta_event","meta_event_type":"heartbeat","interval":5000}`), uint8(1))
	f.Add([]byte(`{"post_type":1}`), uint8(0))
	f.Add([]byte(`{"post_type":"message","message_type":"private","raw_message":"xx`), uint8(0))
	fails := []error{nil, &im.Error{Status: 400, Code: "bad_event", Message: "refused"}, errors.New("redis: connection refused")}
	in := &imtest.Inlet{}
	c := in.Conn(im.OneBot)
	f.Fuzz(func(t *testing.T, frame []byte, fail uint8) {
		in.Fail = fails[int(fail)%len(fails)]
		ch := make(chan apiResult, 1)
		s := &socket{waiting: map[string]chan apiResult{"bf-1": ch}, closed: make(chan struct{})}
		var head struct {
			PostType string `json:"post_type"`
			Echo     string `json:"echo"`
		}
		isJSON := json.Valid(frame)
		headErr := json.Unmarshal(frame, &head)
		for range 2 {
			err := s.handle(context.Background(), c, frame)
			event := isJSON && head.PostType != ""
			if (err != nil) != (event && im.IsTemporary(in.Fail)) {
				t.Fatalf("frame %q (pipeline %v): %v", frame, in.Fail, err)
			}
		}
		bodies := in.Bodies()
		switch {
		case !isJSON && len(bodies) > 0:
			t.Fatalf("a frame that is not JSON reached the pipeline: %q", frame)
		case isJSON && head.PostType != "" && (len(bodies) != 2 || !bytes.Equal(bodies[0], frame) || len(ch) > 0):
			t.Fatalf("event %q: the pipeline got %q, the caller %d answers", frame, bodies, len(ch))
		case head.PostType == "" && len(bodies) > 0:
			t.Fatalf("an answer reached the pipeline: %q", frame)
		case headErr == nil && head.PostType == "" && head.Echo == "bf-1" && len(ch) != 1:
			t.Fatalf("the answer %q did not reach its caller", frame)
		}
		if len(ch) == 1 {
			var want apiResult
			_ = json.Unmarshal(frame, &want)
			if got := <-ch; !reflect.DeepEqual(got, want) {
				t.Fatalf("the caller got %+v of %q", got, frame)
			}
		}
	})
}
