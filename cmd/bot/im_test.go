package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im/dingtalk"
	"github.com/botfleet/botfleet/pkg/im/feishu"
	"github.com/botfleet/botfleet/pkg/im/imtest"
	"github.com/botfleet/botfleet/pkg/im/onebot"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// Secrets the fake platforms and the instances share.
const (
	dtSecret   = "dt-app-secret"
	fsAppID    = "cli_fleet"
	fsSecret   = "fs-app-secret"
	fsToken    = "fs-verification-token"
	fsKey      = "fs-encrypt-key"
	fsBotOpen  = "ou_bot"
	fsTenant   = "t-fleet-tenant-token"
	obSecret   = "ob-secret"
	obToken    = "ob-access-token"
	obSelf     = "10001"
	tgToken    = "123456:ABC-fleet"
	tgSecret   = "tg-secret_token"
	tgUsername = "fleet_bot"
)

// reply is one message a fake platform received from the bot.
type reply struct {
	platform string
	msg      string // the id of the message replied to
	chat     string // chat, group or user id where the platform names one
	text     string
	at       time.Time
}

// fakePlatforms serves DingTalk's session webhook, Feishu's token and reply
// APIs, the OneBot HTTP API and the Telegram Bot API, in their wire formats.
type fakePlatforms struct {
	*httptest.Server
	mu           sync.Mutex
	replies      []reply
	tokenFetches atomic.Int64
	feishuUUIDs  map[string]bool
	// gate, when set, holds every Telegram send until it is closed; held
	// is told when one is held.
	gate, held chan struct{}
}

// holdTelegram makes Telegram sends wait until release is called; held
// receives when one is waiting.
func (f *fakePlatforms) holdTelegram() (held <-chan struct{}, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.held = make(chan struct{}), make(chan struct{}, 1)
	gate := f.gate
	return f.held, func() { close(gate) }
}

func newFakePlatforms(t *testing.T) *fakePlatforms {
	f := &fakePlatforms{feishuUUIDs: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /robot/sendBySession", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			MsgType string `json:"msgtype"`
			Text    struct {
				Content string `json:"content"`
			} `json:"text"`
			At struct {
				AtUserIDs []string `json:"atUserIds"`
			} `json:"at"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.MsgType != "text" {
			t.Errorf("dingtalk: bad reply body: %v %+v", err, b)
		}
		f.add(reply{platform: "dingtalk", msg: r.URL.Query().Get("session"), chat: strings.Join(b.At.AtUserIDs, ","), text: b.Text.Content})
		io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	})
	mux.HandleFunc("POST /open-apis/auth/v3/tenant_access_token/internal", func(w http.ResponseWriter, r *http.Request) {
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["app_id"] != fsAppID || b["app_secret"] != fsSecret {
			io.WriteString(w, `{"code":10014,"msg":"app secret invalid"}`)
			return
		}
		f.tokenFetches.Add(1)
		fmt.Fprintf(w, `{"code":0,"msg":"ok","tenant_access_token":%q,"expire":7200}`, fsTenant)
	})
	mux.HandleFunc("POST /open-apis/im/v1/messages/{id}/reply", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+fsTenant {
			w.WriteHeader(400)
			io.WriteString(w, `{"code":99991663,"msg":"Invalid access token for authorization."}`)
			return
		}
		var b struct {
			Content string `json:"content"`
			MsgType string `json:"msg_type"`
			UUID    string `json:"uuid"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		var c struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal([]byte(b.Content), &c); err != nil || b.MsgType != "text" || b.UUID == "" || len(b.UUID) > 50 {
			t.Errorf("feishu: bad reply body %+v", b)
		}
		f.mu.Lock()
		dup := f.feishuUUIDs[b.UUID] // Feishu drops a repeated uuid
		f.feishuUUIDs[b.UUID] = true
		f.mu.Unlock()
		if !dup {
			rp := reply{platform: "feishu", msg: strings.TrimPrefix(r.PathValue("id"), "om_"), text: c.Text}
			if at, rest, ok := strings.Cut(c.Text, `"></at> `); ok && strings.HasPrefix(at, `<at user_id="`) { // a mention of the sender
				rp.chat, rp.text = strings.TrimPrefix(at, `<at user_id="`), rest
			}
			f.add(rp)
		}
		io.WriteString(w, `{"code":0,"msg":"success","data":{"message_id":"om_reply"}}`)
	})
	mux.HandleFunc("POST /onebot/send_msg", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+obToken {
			w.WriteHeader(401)
			return
		}
		var b imtest.SendMsg
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Errorf("onebot: %v", err)
		}
		s := b.Sent(false)
		f.add(reply{platform: "onebot", msg: s.To, chat: s.Chat, text: s.Text})
		io.WriteString(w, `{"status":"ok","retcode":0,"data":{"message_id":99}}`)
	})
	mux.HandleFunc("GET /bot"+tgToken+"/getMe", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"ok":true,"result":{"id":4242,"is_bot":true,"first_name":"Fleet","username":%q}}`, tgUsername)
	})
	mux.HandleFunc("POST /bot"+tgToken+"/sendMessage", func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			ChatID          json.Number `json:"chat_id"`
			Text            string      `json:"text"`
			ReplyParameters struct {
				MessageID json.Number `json:"message_id"`
			} `json:"reply_parameters"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Errorf("telegram: %v", err)
		}
		f.mu.Lock()
		gate, held := f.gate, f.held
		f.mu.Unlock()
		if gate != nil {
			select {
			case held <- struct{}{}:
			default:
			}
			<-gate
		}
		f.add(reply{platform: "telegram", msg: string(b.ReplyParameters.MessageID), chat: string(b.ChatID), text: b.Text})
		io.WriteString(w, `{"ok":true,"result":{"message_id":7}}`)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake platforms: unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(404)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakePlatforms) add(r reply) {
	r.at = time.Now()
	f.mu.Lock()
	f.replies = append(f.replies, r)
	f.mu.Unlock()
}

func (f *fakePlatforms) all() []reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]reply(nil), f.replies...)
}

// repliesTo returns the replies to message msg on platform.
func (f *fakePlatforms) repliesTo(platform, msg string) []reply {
	var out []reply
	for _, r := range f.all() {
		if r.platform == platform && r.msg == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitReply waits for the reply to message msg.
func (f *fakePlatforms) waitReply(t *testing.T, platform, msg string) reply {
	t.Helper()
	var rs []reply
	if !testenv.Eventually(20*time.Second, func() bool { rs = f.repliesTo(platform, msg); return len(rs) > 0 }) {
		t.Fatalf("%s: no reply to message %s; replies so far: %+v", platform, msg, f.all())
	}
	return rs[0]
}

// imEnv turns every platform on against the fakes, with short queue timings.
func imEnv(f *fakePlatforms) map[string]string {
	return map[string]string{
		"BOT_IM_DINGTALK_APP_SECRET": dtSecret, "BOT_IM_DINGTALK_WEBHOOK_HOSTS": f.URL,
		"BOT_IM_FEISHU_APP_ID": fsAppID, "BOT_IM_FEISHU_APP_SECRET": fsSecret, "BOT_IM_FEISHU_VERIFICATION_TOKEN": fsToken,
		"BOT_IM_FEISHU_ENCRYPT_KEY": fsKey, "BOT_IM_FEISHU_BASE_URL": f.URL, "BOT_IM_FEISHU_BOT_OPEN_ID": fsBotOpen,
		"BOT_IM_ONEBOT_SECRET": obSecret, "BOT_IM_ONEBOT_API_URL": f.URL + "/onebot", "BOT_IM_ONEBOT_ACCESS_TOKEN": obToken,
		"BOT_IM_TELEGRAM_BOT_TOKEN": tgToken, "BOT_IM_TELEGRAM_SECRET_TOKEN": tgSecret, "BOT_IM_TELEGRAM_API_URL": f.URL,
		"BOT_QUEUE_BLOCK": "100ms", "BOT_QUEUE_CLAIM_IDLE": "1s", "BOT_QUEUE_RECLAIM_INTERVAL": "100ms", "BOT_QUEUE_RETRY_BACKOFF": "100ms",
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// ev is one platform event to simulate.
type ev struct {
	n              int    // unique per event: message id, update id, event id
	user, chat     string // numeric for OneBot and Telegram
	text           string
	group, mention bool
}

// signed builds the platform's signed webhook request for e.
type signed func(f *fakePlatforms, e ev) (http.Header, []byte)

var platforms = []struct {
	name  string
	build signed
	conv  func(e ev) string // the memory key of a private conversation
	// toUser and toGroup are the reply's chat as the fake records it, for a
	// private message of user and a mention by user in group: where it went,
	// or whom it mentions; a nil toUser is not checked.
	toUser  func(user string) string
	toGroup func(user, group string) string
}{
	{"dingtalk", dingtalkEvent, func(e ev) string { return "im:dingtalk:c2c:" + e.user },
		nil, func(user, _ string) string { return user }},
	{"feishu", feishuEvent, func(e ev) string { return "im:feishu:c2c:ou_" + e.user },
		nil, func(user, _ string) string { return "ou_" + user }},
	{"onebot", onebotEvent, func(e ev) string { return "im:onebot:c2c:" + e.user },
		func(user string) string { return "private:" + user }, func(_, group string) string { return "group:" + group }},
	{"telegram", telegramEvent, func(e ev) string { return "im:telegram:c2c:" + e.user },
		func(user string) string { return user }, func(_, group string) string { return group }},
}

func dingtalkEvent(f *fakePlatforms, e ev) (http.Header, []byte) {
	now := time.Now().UnixMilli()
	typ := "1"
	if e.group {
		typ = "2"
	}
	body, _ := json.Marshal(map[string]any{
		"conversationId": "cid" + e.chat, "atUsers": []map[string]string{{"dingtalkId": "$:LWCP_v1:$bot"}},
		"chatbotCorpId": "dingcorp", "chatbotUserId": "$:LWCP_v1:$bot", "msgId": "msg" + strconv.Itoa(e.n),
		"senderNick": "user " + e.user, "isAdmin": false, "senderStaffId": e.user,
		"sessionWebhookExpiredTime": now + 20*60*1000, "createAt": now, "senderCorpId": "dingcorp",
		"conversationType": typ, "senderId": "$:LWCP_v1:$" + e.user, "isInAtList": e.mention,
		"sessionWebhook": f.URL + "/robot/sendBySession?session=" + strconv.Itoa(e.n),
		"text":           map[string]string{"content": " " + e.text}, "robotCode": "dingbot", "msgtype": "text",
	})
	ts := strconv.FormatInt(now, 10)
	h := http.Header{"Content-Type": {"application/json"}, "Timestamp": {ts}, "Sign": {dingtalk.Sign(ts, dtSecret)}}
	return h, body
}

func feishuEvent(f *fakePlatforms, e ev) (http.Header, []byte) {
	now := time.Now()
	chatType, content := "p2p", e.text
	var mentions []map[string]any
	if e.mention {
		content = "@_user_1 " + e.text
		mentions = append(mentions, map[string]any{"key": "@_user_1", "id": map[string]string{"open_id": fsBotOpen}, "name": "Fleet", "tenant_key": "tk"})
	}
	if e.group {
		chatType = "group"
	}
	text, _ := json.Marshal(map[string]string{"text": content})
	plain, _ := json.Marshal(map[string]any{
		"schema": "2.0",
		"header": map[string]string{"event_id": "ev" + strconv.Itoa(e.n), "token": fsToken, "create_time": strconv.FormatInt(now.UnixMilli(), 10),
			"event_type": "im.message.receive_v1", "tenant_key": "tk", "app_id": fsAppID},
		"event": map[string]any{
			"sender": map[string]any{"sender_id": map[string]string{"open_id": "ou_" + e.user, "union_id": "on_" + e.user}, "sender_type": "user", "tenant_key": "tk"},
			"message": map[string]any{"message_id": "om_" + strconv.Itoa(e.n), "create_time": strconv.FormatInt(now.UnixMilli(), 10),
				"chat_id": "oc_" + e.chat, "chat_type": chatType, "message_type": "text", "content": string(text), "mentions": mentions},
		},
	})
	iv := make([]byte, 16)
	_, _ = rand.Read(iv)
	body, _ := json.Marshal(map[string]string{"encrypt": feishu.Encrypt(fsKey, plain, iv)})
	ts, nonce := strconv.FormatInt(now.Unix(), 10), fmt.Sprint("nonce", e.n)
	h := http.Header{"Content-Type": {"application/json"}, "X-Lark-Request-Timestamp": {ts}, "X-Lark-Request-Nonce": {nonce},
		"X-Lark-Signature": {feishu.Signature(ts, nonce, fsKey, body)}}
	return h, body
}

func onebotEvent(_ *fakePlatforms, e ev) (http.Header, []byte) {
	segs := []map[string]any{}
	if e.mention {
		segs = append(segs, map[string]any{"type": "at", "data": map[string]string{"qq": obSelf}})
	}
	segs = append(segs, map[string]any{"type": "text", "data": map[string]string{"text": " " + e.text}})
	ev := map[string]any{"time": time.Now().Unix(), "self_id": json.Number(obSelf), "post_type": "message", "message_type": "private",
		"sub_type": "friend", "message_id": e.n, "user_id": json.Number(e.user), "message": segs, "raw_message": e.text, "font": 0,
		"sender": map[string]any{"user_id": json.Number(e.user), "nickname": "user"}}
	if e.group {
		ev["message_type"], ev["sub_type"], ev["group_id"] = "group", "normal", json.Number(e.chat)
	}
	body, _ := json.Marshal(ev)
	return http.Header{"Content-Type": {"application/json"}, "X-Self-Id": {obSelf}, "X-Signature": {onebot.Signature(obSecret, body)}}, body
}

func telegramEvent(_ *fakePlatforms, e ev) (http.Header, []byte) {
	text := e.text
	var ents []map[string]any
	if e.mention {
		text = "@" + tgUsername + " " + e.text
		ents = append(ents, map[string]any{"type": "mention", "offset": 0, "length": len(tgUsername) + 1})
	}
	chat := map[string]any{"id": json.Number(e.user), "type": "private", "first_name": "U"}
	if e.group {
		chat = map[string]any{"id": json.Number(e.chat), "type": "supergroup", "title": "G"}
	}
	body, _ := json.Marshal(map[string]any{"update_id": e.n, "message": map[string]any{
		"message_id": e.n, "from": map[string]any{"id": json.Number(e.user), "is_bot": false, "first_name": "U", "username": "u" + e.user},
		"chat": chat, "date": time.Now().Unix(), "text": text, "entities": ents,
	}})
	return http.Header{"Content-Type": {"application/json"}, "X-Telegram-Bot-Api-Secret-Token": {tgSecret}}, body
}

// deliver posts a webhook request and returns its status and how long the
// answer took.
func deliver(t *testing.T, url, platform string, h http.Header, body []byte) (int, time.Duration, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/webhook/"+platform, strings.NewReader(string(body)))
	for k, v := range h {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST /webhook/%s: %v", platform, err)
		return 0, 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, time.Since(start), string(b)
}

var eventSeq atomic.Int64

func nextN() int { return int(eventSeq.Add(1)) + 1000 }

func queued(t *testing.T, r testenv.Topology) int64 {
	t.Helper()
	var n int64
	for _, p := range []string{"urgent", "normal", "batch"} {
		l, err := r.UniversalClient().XLen(context.Background(), "bf:{q}:"+p).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += l
	}
	return n
}

func TestIMEachPlatformRepliesAndRemembers(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, r testenv.Topology) {
		f := newFakePlatforms(t)
		_, env := mockBackend(t, mockllm.Options{})
		env = merge(env, redisEnv(r), imEnv(f))
		a, b := startBot(t, merge(env, map[string]string{"INSTANCE_NAME": "a"})), startBot(t, merge(env, map[string]string{"INSTANCE_NAME": "b"}))
		for _, p := range platforms {
			t.Run(p.name, func(t *testing.T) {
				user := strconv.Itoa(700 + nextN())
				first := ev{n: nextN(), user: user, chat: user, text: "hello " + p.name}
				h, body := p.build(f, first)
				status, took, resp := deliver(t, a.url, p.name, h, body)
				t.Logf("%s webhook answered %d in %v", p.name, status, took)
				if status != 200 && status != 204 {
					t.Fatalf("webhook: %d %s", status, resp)
				}
				if took > time.Second {
					t.Errorf("webhook took %v; it must answer without waiting for the turn", took)
				}
				rep := f.waitReply(t, p.name, strconv.Itoa(first.n))
				if !strings.HasPrefix(rep.text, "mock n=2 ") || !strings.HasSuffix(rep.text, ": hello "+p.name) {
					t.Fatalf("first reply %q", rep.text)
				}
				if p.toUser != nil && rep.chat != p.toUser(user) {
					t.Fatalf("%s reply to chat %q, want %q", p.name, rep.chat, p.toUser(user))
				}
				second := ev{n: nextN(), user: user, chat: user, text: "again " + p.name}
				h, body = p.build(f, second)
				if status, _, resp := deliver(t, b.url, p.name, h, body); status >= 300 {
					t.Fatalf("second webhook: %d %s", status, resp)
				}
				rep = f.waitReply(t, p.name, strconv.Itoa(second.n))
				if !strings.HasPrefix(rep.text, "mock n=4 ") || !strings.HasSuffix(rep.text, ": again "+p.name) {
					t.Fatalf("second reply %q: memory did not continue", rep.text)
				}
				if h := history(t, r, p.conv(first)); len(h) != 4 {
					t.Fatalf("%s holds %d entries, want 4", p.conv(first), len(h))
				}

				group := strconv.Itoa(900 + nextN())
				quiet := ev{n: nextN(), user: user, chat: group, text: "talking among ourselves", group: true}
				h, body = p.build(f, quiet)
				if status, _, resp := deliver(t, a.url, p.name, h, body); status >= 300 {
					t.Fatalf("group webhook: %d %s", status, resp)
				}
				asked := ev{n: nextN(), user: user, chat: group, text: "what time is it", group: true, mention: true}
				h, body = p.build(f, asked)
				if status, _, resp := deliver(t, b.url, p.name, h, body); status >= 300 {
					t.Fatalf("group webhook: %d %s", status, resp)
				}
				rep = f.waitReply(t, p.name, strconv.Itoa(asked.n))
				if !strings.HasSuffix(rep.text, ": what time is it") || !strings.HasPrefix(rep.text, "mock n=2 ") {
					t.Fatalf("group reply %q: want the mention stripped, a fresh member memory", rep.text)
				}
				if len(f.repliesTo(p.name, strconv.Itoa(quiet.n))) != 0 {
					t.Fatal("answered a group message that did not mention the bot")
				}
				if want := p.toGroup(user, group); rep.chat != want {
					t.Fatalf("%s group reply to (or mentioning) %q, want %q", p.name, rep.chat, want)
				}
			})
		}
		if n := f.tokenFetches.Load(); n != 1 {
			t.Errorf("feishu tenant token fetched %d times by the fleet, want 1 (cached in Redis)", n)
		}
		metrics := getJSON(t, a.url+"/metrics")
		for _, want := range []string{`botfleet_im_webhooks_total{instance="a",outcome="queued",platform="telegram"}`, `botfleet_queue_depth{instance="a",priority="normal"} 0`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func TestIMSameEventThreeTimesAnswersOnce(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, r testenv.Topology) {
		f := newFakePlatforms(t)
		mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Latency: 50 * time.Millisecond}})
		env = merge(env, redisEnv(r), imEnv(f))
		bots := []*instance{startBot(t, env), startBot(t, env), startBot(t, env)}
		for _, p := range platforms {
			user := strconv.Itoa(500 + nextN())
			e := ev{n: nextN(), user: user, chat: user, text: "only once " + p.name}
			h, body := p.build(f, e)
			var wg sync.WaitGroup
			for _, bot := range bots { // concurrently, to three instances
				wg.Go(func() {
					if status, _, resp := deliver(t, bot.url, p.name, h, body); status >= 300 {
						t.Errorf("%s: %d %s", p.name, status, resp)
					}
				})
			}
			wg.Wait()
			f.waitReply(t, p.name, strconv.Itoa(e.n))
			for _, bot := range bots { // and again, one after another (a platform's retries)
				if status, _, resp := deliver(t, bot.url, p.name, h, body); status >= 300 {
					t.Errorf("%s retry: %d %s", p.name, status, resp)
				}
			}
		}
		// Every queued job finished (a job leaves the stream once answered):
		// a duplicate wrongly queued would have answered again by now.
		testenv.WaitFor(t, 20*time.Second, "every queued job to finish", func() bool { return queued(t, r) == 0 })
		for _, p := range platforms {
			n := 0
			for _, rep := range f.all() {
				if rep.platform == p.name {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s: %d replies for one event delivered 6 times, want 1", p.name, n)
			}
		}
		if calls := mock.Stats().Calls; calls != int64(len(platforms)) {
			t.Fatalf("backend called %d times for %d distinct events", calls, len(platforms))
		}
	})
}

func TestIMRejectsForgedRequestsAndQueuesNothing(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	mock, env := mockBackend(t, mockllm.Options{})
	bot := startBot(t, merge(env, redisEnv(r), imEnv(f)))
	e := ev{n: nextN(), user: "42", chat: "42", text: "forged"}
	tamper := func(build signed, change func(h http.Header, body []byte) []byte) func() (http.Header, []byte) {
		return func() (http.Header, []byte) {
			h, body := build(f, e)
			return h, change(h, body)
		}
	}
	stale := strconv.FormatInt(time.Now().Add(-2*time.Hour).UnixMilli(), 10)
	cases := []struct {
		name, platform string
		req            func() (http.Header, []byte)
		status         int
	}{
		{"dingtalk wrong sign", "dingtalk", tamper(dingtalkEvent, func(h http.Header, b []byte) []byte {
			h.Set("Sign", dingtalk.Sign(h.Get("Timestamp"), "other"))
			return b
		}), 401},
		{"dingtalk no sign", "dingtalk", tamper(dingtalkEvent, func(h http.Header, b []byte) []byte { h.Del("Sign"); return b }), 401},
		{"dingtalk stale timestamp", "dingtalk", tamper(dingtalkEvent, func(h http.Header, b []byte) []byte {
			h.Set("Timestamp", stale)
			h.Set("Sign", dingtalk.Sign(stale, dtSecret))
			return b
		}), 403},
		{"dingtalk foreign session webhook", "dingtalk", tamper(dingtalkEvent, func(h http.Header, b []byte) []byte {
			return []byte(strings.Replace(string(b), "127.0.0.1", "evil.example", 1))
		}), 403},
		{"dingtalk malformed", "dingtalk", tamper(dingtalkEvent, func(h http.Header, b []byte) []byte { return b[:len(b)/2] }), 400},
		{"feishu wrong signature", "feishu", tamper(feishuEvent, func(h http.Header, b []byte) []byte { h.Set("X-Lark-Signature", strings.Repeat("0", 64)); return b }), 401},
		{"feishu body changed", "feishu", tamper(feishuEvent, func(h http.Header, b []byte) []byte { return []byte(strings.Replace(string(b), `"}`, `A"}`, 1)) }), 401},
		{"feishu stale timestamp", "feishu", tamper(feishuEvent, func(h http.Header, b []byte) []byte {
			ts := strconv.FormatInt(time.Now().Add(-48*time.Hour).Unix(), 10)
			h.Set("X-Lark-Request-Timestamp", ts)
			h.Set("X-Lark-Signature", feishu.Signature(ts, h.Get("X-Lark-Request-Nonce"), fsKey, b))
			return b
		}), 403},
		{"feishu plain event without encryption", "feishu", tamper(feishuEvent, func(h http.Header, b []byte) []byte {
			return []byte(`{"schema":"2.0","header":{"token":"` + fsToken + `"}}`)
		}), 400},
		{"feishu wrong verification token", "feishu", func() (http.Header, []byte) {
			plain := `{"schema":"2.0","header":{"event_id":"x1","token":"wrong","event_type":"im.message.receive_v1"},"event":{}}`
			body, _ := json.Marshal(map[string]string{"encrypt": feishu.Encrypt(fsKey, []byte(plain), make([]byte, 16))})
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			return http.Header{"X-Lark-Request-Timestamp": {ts}, "X-Lark-Request-Nonce": {"n"}, "X-Lark-Signature": {feishu.Signature(ts, "n", fsKey, body)}}, body
		}, 401},
		{"feishu malformed", "feishu", func() (http.Header, []byte) { return http.Header{}, []byte(`{"encrypt":`) }, 400},
		{"onebot wrong signature", "onebot", tamper(onebotEvent, func(h http.Header, b []byte) []byte { h.Set("X-Signature", onebot.Signature("other", b)); return b }), 401},
		{"onebot no signature", "onebot", tamper(onebotEvent, func(h http.Header, b []byte) []byte { h.Del("X-Signature"); return b }), 401},
		{"onebot body changed", "onebot", tamper(onebotEvent, func(h http.Header, b []byte) []byte { return []byte(strings.Replace(string(b), "forged", "forgeD", 1)) }), 401},
		{"onebot malformed", "onebot", tamper(onebotEvent, func(h http.Header, b []byte) []byte {
			b = b[:len(b)-3]
			h.Set("X-Signature", onebot.Signature(obSecret, b))
			return b
		}), 400},
		{"telegram wrong secret token", "telegram", tamper(telegramEvent, func(h http.Header, b []byte) []byte { h.Set("X-Telegram-Bot-Api-Secret-Token", "guess"); return b }), 401},
		{"telegram no secret token", "telegram", tamper(telegramEvent, func(h http.Header, b []byte) []byte { h.Del("X-Telegram-Bot-Api-Secret-Token"); return b }), 401},
		{"telegram malformed", "telegram", tamper(telegramEvent, func(h http.Header, b []byte) []byte { return []byte(`{"update_id":`) }), 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, body := tc.req()
			status, _, resp := deliver(t, bot.url, tc.platform, h, body)
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if status != tc.status || json.Unmarshal([]byte(resp), &e) != nil || e.Error.Message == "" {
				t.Fatalf("got %d %s, want %d with a JSON error", status, resp, tc.status)
			}
		})
	}
	if n := queued(t, r); n != 0 {
		t.Fatalf("%d jobs queued by rejected requests", n)
	}
	// Feishu's url_verification challenge, encrypted, is answered at once.
	chal, _ := json.Marshal(map[string]string{"challenge": "ajls384kdjx98XX", "token": fsToken, "type": "url_verification"})
	body, _ := json.Marshal(map[string]string{"encrypt": feishu.Encrypt(fsKey, chal, make([]byte, 16))})
	if status, _, resp := deliver(t, bot.url, "feishu", http.Header{}, body); status != 200 || resp != `{"challenge":"ajls384kdjx98XX"}` {
		t.Fatalf("challenge: %d %s", status, resp)
	}
	chal, _ = json.Marshal(map[string]string{"challenge": "c2", "token": "wrong", "type": "url_verification"})
	body, _ = json.Marshal(map[string]string{"encrypt": feishu.Encrypt(fsKey, chal, make([]byte, 16))})
	if status, _, _ := deliver(t, bot.url, "feishu", http.Header{}, body); status != 401 {
		t.Fatalf("challenge with a wrong token: %d", status)
	}
	// No wait: a webhook answers once its job is queued, and a job stays in
	// the stream until it is answered; nothing queued now means no work.
	if len(f.all()) != 0 || mock.Stats().Calls != 0 || queued(t, r) != 0 {
		t.Fatalf("rejected requests caused work: replies %v, calls %d", f.all(), mock.Stats().Calls)
	}

	off := startBot(t, redisEnv(r))
	for _, p := range []string{"dingtalk", "feishu", "onebot", "telegram"} {
		status, _, resp := deliver(t, off.url, p, http.Header{"Content-Type": {"application/json"}}, []byte(`{}`))
		if status != 404 || !strings.Contains(resp, `"code":"platform_off"`) || !strings.Contains(resp, "im."+p) {
			t.Fatalf("%s off: %d %s", p, status, resp)
		}
	}
	if status, _, resp := deliver(t, bot.url, "wechat", http.Header{}, []byte(`{}`)); status != 404 || !strings.Contains(resp, `"error"`) {
		t.Fatalf("unknown platform: %d %s", status, resp)
	}
}

func TestIMJobAbandonedByADrainingInstanceIsFinishedByAnother(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	hung, hungEnv := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Latency: time.Hour}})
	healthy, okEnv := mockBackend(t, mockllm.Options{})
	base := merge(redisEnv(r), imEnv(f), map[string]string{"BOT_SERVER_SHUTDOWN_GRACE": "100ms"})
	a := startBot(t, merge(hungEnv, base, map[string]string{"INSTANCE_NAME": "a"}))
	e := ev{n: nextN(), user: "31337", chat: "31337", text: "are you there"}
	h, body := telegramEvent(f, e)
	if status, _, resp := deliver(t, a.url, "telegram", h, body); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	// a's worker is inside the turn, at the backend.
	testenv.WaitFor(t, 10*time.Second, "a to take the job", func() bool { return hung.Stats().Calls > 0 })
	b := startBot(t, merge(okEnv, base, map[string]string{"INSTANCE_NAME": "b"}))
	_ = b
	killed := time.Now()
	if err := a.stop(); err != nil { // the grace ends with the job unfinished: it is abandoned
		t.Fatalf("stop a: %v", err)
	}
	rep := f.waitReply(t, "telegram", strconv.Itoa(e.n))
	t.Logf("b answered %v after a stopped with the job unfinished", time.Since(killed).Round(time.Millisecond))
	if !strings.HasSuffix(rep.text, ": are you there") {
		t.Fatalf("reply %q", rep.text)
	}
	// Answered, the job leaves the stream: no instance can claim it again.
	testenv.WaitFor(t, 20*time.Second, "the answered job to leave the queue", func() bool { return queued(t, r) == 0 })
	if n := len(f.repliesTo("telegram", strconv.Itoa(e.n))); n != 1 {
		t.Fatalf("%d replies, want 1", n)
	}
	if hung.Stats().Calls != 1 || healthy.Stats().Calls != 1 || queued(t, r) != 0 {
		t.Fatalf("calls: hung %d healthy %d; queued %d", hung.Stats().Calls, healthy.Stats().Calls, queued(t, r))
	}
	if hist := history(t, r, "im:telegram:c2c:31337"); len(hist) != 2 {
		t.Fatalf("history %d entries, want 2", len(hist))
	}
}

func TestIMUrgentIsAnsweredBeforeQueuedNormalOnes(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, r testenv.Topology) {
		f := newFakePlatforms(t)
		_, env := mockBackend(t, mockllm.Options{})
		bot := startBot(t, merge(env, redisEnv(r), imEnv(f), map[string]string{"BOT_QUEUE_WORKERS": "1"}))
		held, release := f.holdTelegram()
		const normal = 15
		events := make([]ev, normal)
		for i := range events {
			events[i] = ev{n: nextN(), user: strconv.Itoa(8000 + i), text: fmt.Sprint("routine question ", i)}
			h, body := telegramEvent(f, events[i])
			if status, _, _ := deliver(t, bot.url, "telegram", h, body); status != 200 {
				t.Fatalf("normal %d: %d", i, status)
			}
			if i == 0 {
				<-held // the single worker is busy with the first: the others queue up behind it
			}
		}
		urgent := ev{n: nextN(), user: "9999", text: "紧急：生产数据库宕机了"}
		h, body := telegramEvent(f, urgent)
		if status, _, _ := deliver(t, bot.url, "telegram", h, body); status != 200 {
			t.Fatalf("urgent: %d", status)
		}
		release()
		if !testenv.Eventually(20*time.Second, func() bool { return len(f.all()) >= normal+1 }) {
			t.Fatalf("only %d replies", len(f.all()))
		}
		order := []string{}
		for _, rep := range f.all() {
			order = append(order, rep.msg)
		}
		if order[0] != strconv.Itoa(events[0].n) || order[1] != strconv.Itoa(urgent.n) {
			t.Fatalf("replies to %v: want the running one (%d), then the urgent one (%d) before the %d queued normal ones", order, events[0].n, urgent.n, normal-1)
		}
	})
}

func TestIMFailingJobEndsInDeadLetters(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 503}})
	bot := startBot(t, merge(env, redisEnv(r), imEnv(f), map[string]string{"BOT_QUEUE_MAX_DELIVERIES": "3", "INSTANCE_NAME": "dl", "BOT_AUTH_ADMIN_KEY": adminKey}))
	e := ev{n: nextN(), user: "666", text: "this will never work"}
	h, body := telegramEvent(f, e)
	if status, _, _ := deliver(t, bot.url, "telegram", h, body); status != 200 {
		t.Fatalf("webhook: %d", status)
	}
	var q struct {
		DeadLetters int64 `json:"dead_letters"`
		Dead        []struct {
			Fields map[string]string `json:"fields"`
		} `json:"dead"`
		Streams []struct {
			Priority string `json:"priority"`
			Depth    int64  `json:"depth"`
		} `json:"streams"`
	}
	dead := testenv.Eventually(20*time.Second, func() bool {
		req, _ := http.NewRequest("GET", bot.url+"/admin/api/queues", nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&q)
		resp.Body.Close()
		return q.DeadLetters == 1
	})
	if !dead {
		t.Fatalf("no dead letter: %+v", q)
	}
	dl := q.Dead[0].Fields
	if dl["dead_deliveries"] != "3" || dl["event"] != strconv.Itoa(e.n) || dl["platform"] != "telegram" || !strings.Contains(dl["dead_reason"], "unavailable") {
		t.Fatalf("dead letter %+v", dl)
	}
	t.Logf("dead letter reason: %s", dl["dead_reason"])
	if calls := mock.Stats().Calls; calls != 3 {
		t.Fatalf("backend called %d times, want 3", calls)
	}
	if len(f.all()) != 0 || queued(t, r) != 0 {
		t.Fatalf("replies %v, queued %d", f.all(), queued(t, r))
	}
	metrics := getJSON(t, bot.url+"/metrics")
	for _, want := range []string{`botfleet_queue_dead_letters{instance="dl"} 1`, `botfleet_queue_jobs_total{instance="dl",outcome="dead",priority="normal"} 1`,
		`botfleet_queue_jobs_total{instance="dl",outcome="retry",priority="normal"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// startProcess runs the bot binary with env on port 0, reads the address
// it bound from its server.addr_file and waits for /health; the process is
// killed when the test ends. Its output joins the run's logs
// (testenv.RunLog), which TestMain greps for secrets.
func startProcess(t *testing.T, bin string, env map[string]string) (*exec.Cmd, string, *testenv.Buffer) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "bot.addr")
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "WEB_PORT=0", "BOT_SERVER_ADDR_FILE=" + addrFile}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// At its most talkative, whatever the test asked: the run's leak check
	// greps every line (exec keeps the last of a repeated variable).
	cmd.Env = append(cmd.Env, "BOT_LOG_LEVEL=debug")
	logs := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = testenv.RunLog(), io.MultiWriter(logs, testenv.RunLog())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("logs of the process (pid %d):\n%s", cmd.Process.Pid, logs.String())
		}
	})
	var url string
	serves := testenv.Eventually(10*time.Second, func() bool {
		if url == "" {
			addr, err := proc.ReadAddr(addrFile)
			if err != nil {
				return false
			}
			url = "http://" + addr
		}
		resp, err := http.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	if !serves {
		t.Fatalf("the bot process never served:\n%s", logs.String())
	}
	return cmd, url, logs
}

// buildBot builds this command (without the race detector) for tests that
// need a real process to kill.
func buildBot(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bot")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// buildKillableBot is buildBot for a test that kills the bot process; in
// -short it skips the test.
func buildKillableBot(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and kills a bot process")
	}
	return buildBot(t)
}

func TestIMJobOfASIGKILLedInstanceIsFinishedOnceByAnother(t *testing.T) {
	bin := buildKillableBot(t)
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	hung, hungEnv := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Latency: time.Hour}})
	healthy, okEnv := mockBackend(t, mockllm.Options{})
	base := merge(redisEnv(r), imEnv(f), map[string]string{"BOT_MEMORY_LEASE": "1s", "API_KEY": apiKey, "BOT_LOG_LEVEL": "warn"})

	cmd, url, logs := startProcess(t, bin, merge(hungEnv, base, map[string]string{"INSTANCE_NAME": "doomed"}))
	e := ev{n: nextN(), user: "4040", chat: "4040", text: "still there?"}
	h, body := telegramEvent(f, e)
	if status, _, resp := deliver(t, url, "telegram", h, body); status != 200 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	// The process's worker is inside the turn.
	if !testenv.Eventually(10*time.Second, func() bool { return hung.Stats().Calls > 0 }) {
		t.Fatalf("the process never took the job:\n%s", logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed := time.Now()
	startBot(t, merge(okEnv, base, map[string]string{"INSTANCE_NAME": "survivor"}))
	rep := f.waitReply(t, "telegram", strconv.Itoa(e.n))
	t.Logf("the survivor answered %v after the SIGKILL", time.Since(killed).Round(time.Millisecond))
	if !strings.HasSuffix(rep.text, ": still there?") || !strings.HasPrefix(rep.text, "mock n=2 ") {
		t.Fatalf("reply %q", rep.text)
	}
	// Answered, the job leaves the stream: no instance can claim it again.
	testenv.WaitFor(t, 20*time.Second, "the answered job to leave the queue", func() bool { return queued(t, r) == 0 })
	if n := len(f.repliesTo("telegram", strconv.Itoa(e.n))); n != 1 || hung.Stats().Calls != 1 || healthy.Stats().Calls != 1 || queued(t, r) != 0 {
		t.Fatalf("replies %d, calls hung %d healthy %d, queued %d", n, hung.Stats().Calls, healthy.Stats().Calls, queued(t, r))
	}
	if hist := history(t, r, "im:telegram:c2c:4040"); len(hist) != 2 {
		t.Fatalf("history %d entries, want 2", len(hist))
	}
}

func TestIMDrainFinishesTheRunningJob(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Latency: 500 * time.Millisecond}})
	bot := startBot(t, merge(env, redisEnv(r), imEnv(f)))
	e := ev{n: nextN(), user: "77", text: "finish me before you go"}
	h, body := onebotEvent(f, e)
	if status, _, resp := deliver(t, bot.url, "onebot", h, body); status != 204 {
		t.Fatalf("webhook: %d %s", status, resp)
	}
	testenv.WaitFor(t, 10*time.Second, "the job to start", func() bool { return mock.Stats().Calls > 0 })
	if err := bot.stop(); err != nil { // SIGTERM: the drain waits for the job
		t.Fatalf("drain: %v", err)
	}
	if rs := f.repliesTo("onebot", strconv.Itoa(e.n)); len(rs) != 1 || !strings.HasSuffix(rs[0].text, ": finish me before you go") {
		t.Fatalf("after the drain: replies %+v", rs)
	}
	if n := queued(t, r); n != 0 {
		t.Fatalf("%d jobs left after the drain", n)
	}
}

func TestIMRedisOutageIsA503ThenWorkResumes(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	_, env := mockBackend(t, mockllm.Options{})
	bot := startBot(t, merge(env, redisEnv(r), imEnv(f)))
	r.Stop()
	e := ev{n: nextN(), user: "5003", text: "during the outage"}
	h, body := telegramEvent(f, e)
	status, _, resp := deliver(t, bot.url, "telegram", h, body)
	if status != 503 || !strings.Contains(resp, `"store_unavailable"`) {
		t.Fatalf("webhook without Redis: %d %s, want 503 so that the platform retries", status, resp)
	}
	r.Start() // a fresh, empty Redis: the workers recreate the consumer group
	recovered := testenv.Eventually(15*time.Second, func() bool {
		status, _, _ = deliver(t, bot.url, "telegram", h, body) // Telegram's retry
		return status == 200
	})
	if !recovered {
		t.Fatalf("webhook never recovered: %d", status)
	}
	rep := f.waitReply(t, "telegram", strconv.Itoa(e.n))
	if !strings.HasSuffix(rep.text, ": during the outage") {
		t.Fatalf("reply %q", rep.text)
	}
}
