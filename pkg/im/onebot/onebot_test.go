package onebot

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

func TestSignatureMatchesOpenSSL(t *testing.T) {
	testenv.LookPath(t, "openssl")
	body := `{"post_type":"message","message":"你好"}`
	cmd := exec.Command("sh", "-c", "openssl dgst -sha1 -hmac 'sekrit' | sed 's/^.*= //'")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Signature("sekrit", []byte(body)), "sha1="+strings.TrimSpace(string(out)); got != want {
		t.Fatalf("Signature = %s, openssl says %s", got, want)
	}
}

func TestParseCQStringAndArray(t *testing.T) {
	a := New(Options{Secret: "s", APIURL: "http://x"})
	for _, msg := range []string{
		`"[CQ:at,qq=10001] 查一下 [CQ:image,file=a.jpg,url=https://img/a.jpg&amp;x=1] 价格&#91;1&#93;"`,
		`[{"type":"at","data":{"qq":"10001"}},{"type":"text","data":{"text":" 查一下 "}},{"type":"image","data":{"file":"a.jpg","url":"https://img/a.jpg&x=1"}},{"type":"text","data":{"text":" 价格[1]"}}]`,
	} {
		body := []byte(`{"time":1700000000,"self_id":10001,"post_type":"message","message_type":"group","sub_type":"normal",` +
			`"message_id":-2147000001,"group_id":123456789012,"user_id":42,"message":` + msg + `,"sender":{"nickname":"n","card":"c"}}`)
		in, err := a.Parse(context.Background(), http.Header{"X-Signature": {Signature("s", body)}}, body)
		if err != nil {
			t.Fatal(err)
		}
		m := in.Message
		if m.EventID != "10001:-2147000001" || m.ChatID != "123456789012" || !m.Mentioned || m.Text != "查一下  价格[1]" ||
			len(m.MediaURLs) != 1 || m.MediaURLs[0] != "https://img/a.jpg&x=1" || m.SenderName != "c" {
			t.Fatalf("%s: %+v", msg, m)
		}
		if in.Response.Status != http.StatusNoContent {
			t.Fatalf("ack %+v, want 204 (no quick operation)", in.Response)
		}
	}
	meta := []byte(`{"post_type":"meta_event","meta_event_type":"heartbeat","self_id":10001}`)
	if in, err := a.Parse(context.Background(), http.Header{"X-Signature": {Signature("s", meta)}}, meta); err != nil || in.Message != nil {
		t.Fatalf("heartbeat: %v %+v", err, in)
	}
}

func TestIDSpellingsAreOneEvent(t *testing.T) {
	a := New(Options{})
	for _, n := range [][2]string{{"10001", "555"}, {"10001.0", "5.55e2"}, {"1.0001e4", "555.0"}} {
		body := []byte(`{"self_id":` + n[0] + `,"post_type":"message","message_type":"private","message_id":` + n[1] +
			`,"user_id":4.2e1,"message":"hi"}`)
		in, err := a.ParseEvent(context.Background(), body)
		if err != nil {
			t.Fatal(err)
		}
		if m := in.Message; m.Key() != "onebot:10001:555" || m.SenderID != "42" || m.Reply["user_id"] != "42" {
			t.Fatalf("%v: %+v", n, m)
		}
	}
	if _, err := a.ParseEvent(context.Background(), []byte(`{"self_id":1,"post_type":"message","message_type":"private","message_id":1.5,"user_id":2}`)); err == nil {
		t.Fatal("a fractional message_id was accepted")
	}
}
