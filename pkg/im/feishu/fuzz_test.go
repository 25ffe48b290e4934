package feishu

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
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

// FuzzFrame decodes arbitrary long-connection messages as Socket.Run does,
// and the same bytes with real protobuf (the pbbp2 descriptor): nothing
// panics, both accept the same messages and read the same fields, a decoded
// frame encodes back to itself, and putting split payloads together keeps
// every part within the frame's own sum.
func FuzzFrame(f *testing.F) {
	md := pbbp2(f)
	pong := Frame{Service: 33, Method: MethodControl, Headers: [][2]string{{"type", "pong"}},
		Payload: []byte(`{"ReconnectCount":-1,"ReconnectInterval":120,"ReconnectNonce":30,"PingInterval":1}`)}
	event := `{"schema":"2.0","header":{"event_id":"e","event_type":"im.message.receive_v1"},"event":{"message":{"message_id":"om","chat_id":"oc","chat_type":"p2p","message_type":"text","content":"{\"text\":\"hi\"}"}}}`
	seeds := []Frame{pong, {Service: 33, Method: MethodControl, Headers: [][2]string{{"type", "ping"}}},
		{SeqID: 7, LogID: 1 << 40, Service: 33, Method: MethodData, PayloadType: "json", LogIDNew: "l-1",
			Headers: [][2]string{{"type", "event"}, {"message_id", "m1"}, {"sum", "2"}, {"seq", "1"}}, Payload: []byte(`{"a":1}`)}}
	for i, part := range []string{event[:100], event[100:]} {
		seeds = append(seeds, Frame{SeqID: uint64(i), LogID: 1, Service: 33, Method: MethodData, Payload: []byte(part),
			Headers: [][2]string{{"type", "event"}, {"message_id", "msg-1"}, {"sum", "2"}, {"seq", strconv.Itoa(i)}, {"trace_id", "tr-msg-1"}}})
	}
	for _, s := range seeds {
		f.Add(s.Marshal())
	}
	f.Add([]byte{0x0a, 0xff})                         // truncated
	f.Add([]byte{0x08, 0x01, 0x5b, 0x08, 0x01, 0x5c}) // an unknown group
	f.Add([]byte{0x2a, 0x02, 0x08, 0x01})             // a header whose key is a varint
	field := func(m *dynamicpb.Message, name string) protoreflect.Value {
		return m.Get(md.Fields().ByName(protoreflect.Name(name)))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, err := UnmarshalFrame(raw)
		m := dynamicpb.NewMessage(md)
		perr := proto.UnmarshalOptions{AllowPartial: true}.Unmarshal(raw, m)
		if (err == nil) != (perr == nil) {
			t.Fatalf("frame.go says %v, protobuf %v", err, perr)
		}
		if err != nil {
			return
		}
		hs := field(m, "headers").List()
		if fr.SeqID != field(m, "SeqID").Uint() || fr.LogID != field(m, "LogID").Uint() || int64(fr.Service) != field(m, "service").Int() ||
			int64(fr.Method) != field(m, "method").Int() || fr.PayloadType != field(m, "payload_type").String() ||
			fr.PayloadEncoding != field(m, "payload_encoding").String() || fr.LogIDNew != field(m, "LogIDNew").String() ||
			!bytes.Equal(fr.Payload, field(m, "payload").Bytes()) || len(fr.Headers) != hs.Len() {
			t.Fatalf("frame.go read %+v, protobuf %v", fr, m)
		}
		hd := md.Fields().ByName("headers").Message().Fields()
		for i, h := range fr.Headers {
			ph := hs.Get(i).Message()
			if h[0] != ph.Get(hd.ByName("key")).String() || h[1] != ph.Get(hd.ByName("value")).String() {
				t.Fatalf("header %d: frame.go read %q, protobuf %v", i, h, ph)
			}
		}
		again, err := UnmarshalFrame(fr.Marshal())
		if err != nil || !reflect.DeepEqual(again, fr) {
			t.Fatalf("%+v encoded back as %+v (%v)", fr, again, err)
		}
		s := &Socket{parts: map[string][][]byte{}}
		payload, whole := s.assemble(fr)
		if sum, _ := strconv.Atoi(fr.Header("sum")); sum <= 1 && (!whole || !bytes.Equal(payload, fr.Payload)) {
			t.Fatalf("a whole frame's payload came back as %q, %v", payload, whole)
		}
		for _, parts := range s.parts {
			if sum, _ := strconv.Atoi(fr.Header("sum")); len(parts) != sum {
				t.Fatalf("%d parts kept for a sum of %d", len(parts), sum)
			}
		}
	})
}
