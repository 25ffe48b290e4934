package dingtalk

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/im/imtest"
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

// FuzzStreamFrame hands arbitrary Stream messages to the frame handler, with
// the pipeline queueing, refusing or unable to queue: nothing panics, only a
// robot message's data reaches the pipeline, every acknowledgement is
// DingTalk's (code 200, the frame's messageId, a ping's own data), and a
// robot message the pipeline could not queue is never acknowledged.
func FuzzStreamFrame(f *testing.F) {
	frameOf := func(typ, topic, id, data string) []byte {
		b, _ := json.Marshal(map[string]any{"specVersion": "1.0", "type": typ, "data": data,
			"headers": map[string]string{"topic": topic, "messageId": id, "contentType": "application/json", "appId": "app-1"}})
		return b
	}
	f.Add(frameOf("SYSTEM", "ping", "ping-1", `{"opaque":"p1"}`), uint8(0))
	f.Add(frameOf("SYSTEM", "disconnect", "disconnect-2", `{"reason":"server restart"}`), uint8(0))
	f.Add(frameOf("CALLBACK", BotTopic, "cb-3", `{"msgId":"m1","msgtype":"text","text":{"content":"hi"},"conversationType":"1","conversationId":"c","senderStaffId":"s"}`), uint8(2))
	f.Add(frameOf("EVENT", "chat_update", "ev-4", `{}`), uint8(1))
	f.Add([]byte(`{"type":"CALLBACK","headers":{"topic":1}}`), uint8(0))
	f.Add([]byte(`not json`), uint8(0))
	fails := []error{nil, &im.Error{Status: 400, Code: "bad_event", Message: "refused"}, errors.New("redis: connection refused")}
	in := &imtest.Inlet{}
	c := in.Conn(im.DingTalk)
	f.Fuzz(func(t *testing.T, raw []byte, fail uint8) {
		in.Fail = fails[int(fail)%len(fails)]
		reply, err := handleFrame(context.Background(), c, raw)
		bodies := in.Bodies()
		var fr frame
		if json.Unmarshal(raw, &fr) != nil {
			if reply != nil || err != nil || len(bodies) > 0 {
				t.Fatalf("a message that is not a frame was answered %q (%v), queued %d", reply, err, len(bodies))
			}
			return
		}
		robot := fr.Type == "CALLBACK" && fr.Headers["topic"] == BotTopic
		if robot != (len(bodies) == 1) || len(bodies) > 1 || (robot && string(bodies[0]) != fr.Data) {
			t.Fatalf("frame %+v handed the pipeline %q", fr, bodies)
		}
		if disconnect := fr.Type == "SYSTEM" && fr.Headers["topic"] == "disconnect"; disconnect != errors.Is(err, errReconnect) || (err != nil && !disconnect) {
			t.Fatalf("frame %+v: %v", fr, err)
		}
		if unqueued := robot && im.IsTemporary(in.Fail); (reply == nil) != (unqueued || err != nil) {
			t.Fatalf("frame %+v (pipeline %v) answered %q", fr, in.Fail, reply)
		}
		if reply == nil {
			return
		}
		var a ack
		if err := json.Unmarshal(reply, &a); err != nil || a.Code != 200 || a.Headers["messageId"] != fr.Headers["messageId"] ||
			(fr.Type == "SYSTEM" && fr.Headers["topic"] == "ping" && a.Data != fr.Data) {
			t.Fatalf("frame %+v acknowledged with %s (%v)", fr, reply, err)
		}
	})
}
