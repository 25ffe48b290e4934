package dingtalk

import (
	"context"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// openssl computes a vector independently of the code under test.
func openssl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	testenv.LookPath(t, "openssl")
	cmd := exec.Command("sh", "-c", strings.Join(args, " "))
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func TestSignMatchesOpenSSL(t *testing.T) {
	ts, secret := "1700000000000", "SECf0e5a9c1d3"
	want := openssl(t, ts+"\n"+secret, "openssl dgst -sha256 -hmac '"+secret+"' -binary | base64")
	if got := Sign(ts, secret); got != want {
		t.Fatalf("Sign = %s, openssl says %s", got, want)
	}
}

func TestParse(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	a := New(Options{AppSecret: "s", Now: func() time.Time { return now }})
	body := `{"msgId":"m1","msgtype":"text","conversationType":"2","conversationId":"cid1","senderStaffId":"u1","senderId":"$:x",
		"isInAtList":true,"chatbotUserId":"$:bot","atUsers":[{"dingtalkId":"$:bot"},{"dingtalkId":"$:o","staffId":"u2"}],
		"sessionWebhook":"https://oapi.dingtalk.com/robot/sendBySession?session=abc","sessionWebhookExpiredTime":1700001200000,
		"createAt":1700000000000,"text":{"content":" 紧急 help "}}`
	sign := func(ms int64) http.Header {
		ts := strconv.FormatInt(ms, 10)
		return http.Header{"Timestamp": {ts}, "Sign": {Sign(ts, "s")}}
	}
	in, err := a.Parse(context.Background(), sign(now.UnixMilli()-30*60*1000), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	m := in.Message
	if m.EventID != "m1" || m.SenderID != "u1" || m.ChatID != "cid1" || !m.IsGroup() || !m.Mentioned || m.Text != "紧急 help" ||
		m.Reply["session_webhook_expires"] != "1700001200000" || strings.Join(m.Mentions, ",") != "u2" {
		t.Fatalf("%+v", m)
	}
	if _, err := a.Parse(context.Background(), sign(now.UnixMilli()-61*60*1000), []byte(body)); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("a timestamp over an hour old: %v", err)
	}
	if _, err := a.Parse(context.Background(), sign(now.UnixMilli()+61*60*1000), []byte(body)); err == nil {
		t.Fatal("a timestamp over an hour ahead was accepted")
	}
}

func TestSessionWebhookMustBeHTTPSOnTheDefaultPortOfAnAllowedHost(t *testing.T) {
	a := New(Options{AppSecret: "s", WebhookHosts: []string{"oapi.dingtalk.com", "http://127.0.0.1:8089"}})
	event := func(hook string) []byte {
		return []byte(`{"msgId":"m1","msgtype":"text","conversationType":"1","conversationId":"cid1","senderStaffId":"u1",
			"sessionWebhook":"` + hook + `","text":{"content":"hi"}}`)
	}
	for hook, ok := range map[string]bool{
		"https://oapi.dingtalk.com/robot/sendBySession?session=a":     true,
		"https://oapi.dingtalk.com:443/robot/sendBySession?session=a": true,
		"https://OAPI.dingtalk.com/robot/sendBySession":               true,
		"http://127.0.0.1:8089/robot/sendBySession":                   true, // an origin listed exactly
		"http://oapi.dingtalk.com:6379/x":                             false,
		"http://oapi.dingtalk.com/robot/sendBySession":                false,
		"https://oapi.dingtalk.com:8443/robot/sendBySession":          false,
		"https://user@oapi.dingtalk.com/robot/sendBySession":          false,
		"https://oapi.dingtalk.com.evil.example/x":                    false,
		"https://127.0.0.1:8089/robot/sendBySession":                  false,
		"http://127.0.0.1:8090/robot/sendBySession":                   false,
		"http://127.0.0.1/robot/sendBySession":                        false,
	} {
		_, err := a.ParseEvent(context.Background(), event(hook))
		if (err == nil) != ok {
			t.Errorf("%s: accepted %v, want %v (%v)", hook, err == nil, ok, err)
		}
	}
}
