package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// The session_id a scoped request gets back, sent back as its session_id,
// continues the same conversation.
func TestScopedSessionIDContinuesTheConversation(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	for _, body := range []string{
		`{"message":"one","user_id":"42"}`,
		`{"message":"one","user_id":"a:b","group_id":"g:1"}`,
		`{"message":"one","scope":"group","group_id":"room"}`,
	} {
		first := post(t, bot.url+"/v1/chat", body)
		if first.status != 200 || first.Turn != 1 {
			t.Fatalf("%s: %d %+v", body, first.status, first)
		}
		again := post(t, bot.url+"/v1/chat", chatBody(first.SessionID, "two"))
		if again.status != 200 || again.Turn != 2 || again.SessionID != first.SessionID || !strings.Contains(again.Reply, "one") {
			t.Fatalf("%s: session %q sent back: %d %+v", body, first.SessionID, again.status, again)
		}
	}
}

// No id a client of the HTTP API chooses reaches an IM user's memory, nor
// can a guessed request id — in any header that carries one — replay an IM
// reply or keep an IM event from being answered.
func TestHTTPCannotReachIMConversations(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	bot := startBot(t, merge(redisEnv(r), imEnv(f)))
	secret := ev{n: nextN(), user: "777", chat: "777", text: "my password is hunter2"}
	h, body := telegramEvent(f, secret)
	if status, _, resp := deliver(t, bot.url, "telegram", h, body); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	f.waitReply(t, "telegram", strconv.Itoa(secret.n))

	for _, user := range []string{"telegram:777", "777", "im:telegram:c2c:777"} {
		res := post(t, bot.url+"/v1/chat", `{"message":"what did I say?","user_id":"`+user+`"}`)
		if res.status != 200 || res.Turn != 1 || strings.Contains(res.Reply, "hunter2") {
			t.Fatalf("user_id %q: %d %+v", user, res.status, res)
		}
	}
	for _, session := range []string{"c2c:telegram:777", "im:telegram:c2c:777", "c2c:777"} {
		if res := post(t, bot.url+"/v1/chat", chatBody(session, "what did I say?")); res.status != 200 || strings.Contains(res.Reply, "hunter2") {
			t.Fatalf("session_id %q: %d %+v", session, res.status, res)
		}
	}
	if hist := history(t, r, "im:telegram:c2c:777"); len(hist) != 2 {
		t.Fatalf("the IM user's memory holds %d entries, want only its own 2", len(hist))
	}

	// A future update's id, forged through each header that carries a
	// request id, with the same text and with another.
	for i, header := range []string{"Idempotency-Key", "X-Request-Id"} {
		future := ev{n: nextN(), user: "778", chat: "778", text: "hello bot " + strconv.Itoa(i)}
		for _, id := range []string{"im:telegram:" + strconv.Itoa(future.n), strconv.Itoa(future.n), "telegram:" + strconv.Itoa(future.n)} {
			for _, text := range []string{future.text, "something else"} {
				// The same id with another text in one conversation is a 409, as always.
				res := post(t, bot.url+"/v1/chat", `{"message":"`+text+`","user_id":"telegram:778"}`, header, id)
				if res.status != 200 && res.status != 409 {
					t.Fatalf("%s %s: %d %+v", header, id, res.status, res)
				}
			}
		}
		h, body := telegramEvent(f, future)
		if status, _, _ := deliver(t, bot.url, "telegram", h, body); status != 200 {
			t.Fatalf("webhook %d: %d", future.n, status)
		}
		rep := f.waitReply(t, "telegram", strconv.Itoa(future.n))
		if !strings.Contains(rep.text, future.text) {
			t.Fatalf("the forged id changed the IM reply: %q", rep.text)
		}
	}
}

// The body of /v1/chat is read as sent: not as UTF-8 repaired with
// U+FFFD, not with member names in another case.
func TestChatBodyIsDecodedExactly(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	url := bot.url + "/v1/chat"
	for name, body := range map[string]string{
		"invalid UTF-8":      "{\"message\":\"bad \xff byte\",\"session_id\":\"u8\"}",
		"a name in caps":     `{"Message":"hi","session_id":"u8"}`,
		"a name in odd case": `{"message":"hi","Session_ID":"u8"}`,
		"a duplicate name":   `{"message":"hi","message":"again"}`,
		"trailing data":      `{"message":"hi"} {"message":"again"}`,
	} {
		if res := post(t, url, body); res.status != 400 || res.Error == nil {
			t.Errorf("%s: %d %+v", name, res.status, res.Error)
		}
	}
	if h := history(t, r, "api:default:session:u8"); len(h) != 0 {
		t.Fatalf("a refused body was stored: %+v", h)
	}
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		if res := post(t, url, chatBody("auth", "hi"), "Authorization", scheme+" "+apiKey); res.status != http.StatusOK {
			t.Errorf("Authorization: %s <key>: %d %+v", scheme, res.status, res.Error)
		}
	}
}
