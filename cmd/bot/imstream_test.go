package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im/feishu"
	"github.com/botfleet/botfleet/pkg/im/imtest"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// linkState is an instance's /health view of one IM link.
type linkState struct {
	Platform, Connections, State, Holder string
}

func links(t *testing.T, url string) []linkState {
	t.Helper()
	var h struct {
		Links []linkState `json:"im_links"`
	}
	if err := json.Unmarshal([]byte(getJSON(t, url+"/health")), &h); err != nil {
		t.Fatal(err)
	}
	return h.Links
}

// waitLink waits until the instance's link of platform is in state.
func waitLink(t *testing.T, url, platform, state string) {
	t.Helper()
	var seen []linkState
	reached := testenv.Eventually(20*time.Second, func() bool {
		seen = links(t, url)
		for _, l := range seen {
			if l.Platform == platform && l.State == state {
				return true
			}
		}
		return false
	})
	if !reached {
		t.Fatalf("%s: link %s never %s: %+v", url, platform, state, seen)
	}
}

// streamEnv is the environment common to the stream-mode tests.
func streamEnv(r *testenv.Redis, env map[string]string) map[string]string {
	return merge(env, redisEnv(r), map[string]string{
		"BOT_IM_LINK_LEASE": "1s", "BOT_QUEUE_BLOCK": "100ms", "BOT_QUEUE_CLAIM_IDLE": "1s",
		"BOT_QUEUE_RECLAIM_INTERVAL": "100ms", "BOT_QUEUE_RETRY_BACKOFF": "100ms",
	})
}

func telegramStreamEnv(f *imtest.Telegram) map[string]string {
	return map[string]string{"BOT_IM_TELEGRAM_MODE": "stream", "BOT_IM_TELEGRAM_BOT_TOKEN": tgToken,
		"BOT_IM_TELEGRAM_API_URL": f.URL, "BOT_IM_TELEGRAM_POLL_TIMEOUT": "2s"}
}

// answeredOnce waits until each of ids has a reply and checks that none
// has two.
func answeredOnce(t *testing.T, f interface {
	Wait(time.Duration, func([]imtest.Sent) bool) bool
	Sent() []imtest.Sent
}, ids []string) {
	t.Helper()
	ok := f.Wait(30*time.Second, func(sent []imtest.Sent) bool {
		got := map[string]bool{}
		for _, s := range sent {
			got[s.To] = true
		}
		for _, id := range ids {
			if !got[id] {
				return false
			}
		}
		return true
	})
	count := map[string]int{}
	for _, s := range f.Sent() {
		count[s.To]++
	}
	var missing, twice []string
	for _, id := range ids {
		switch {
		case count[id] == 0:
			missing = append(missing, id)
		case count[id] > 1:
			twice = append(twice, id)
		}
	}
	if !ok || len(missing) > 0 || len(twice) > 0 {
		t.Fatalf("of %d events: unanswered %v, answered more than once %v", len(ids), missing, twice)
	}
}

func TestIMTelegramLongPollingAnswersOnceAndRemembers(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewTelegram(t, tgToken, tgUsername)
	_, env := mockBackend(t, mockllm.Options{})
	env = merge(streamEnv(r, env), telegramStreamEnv(f))
	a := startBot(t, with(env, "INSTANCE_NAME", "a"))
	waitLink(t, a.url, "telegram", "connected")
	b := startBot(t, with(env, "INSTANCE_NAME", "b"))
	waitLink(t, b.url, "telegram", "standby")
	if l := links(t, b.url)[0]; l.Holder != "a" || l.Connections != "one" {
		t.Fatalf("b's view of the link: %+v", l)
	}
	f.Push(1, imtest.Message(1, 42, "hello over getUpdates"))
	answeredOnce(t, f, []string{"1"})
	if s := f.To("1")[0]; !strings.HasPrefix(s.Text, "mock n=2 ") || !strings.HasSuffix(s.Text, ": hello over getUpdates") || s.Chat != "42" {
		t.Fatalf("reply %+v", s)
	}
	// a drains: b takes the poll over at once, from the stored offset.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	f.Push(2, imtest.Message(2, 42, "and again"))
	waitLink(t, b.url, "telegram", "connected")
	answeredOnce(t, f, []string{"1", "2"})
	if s := f.To("2")[0]; !strings.HasPrefix(s.Text, "mock n=4 ") {
		t.Fatalf("memory did not continue: %q", s.Text)
	}
	// Updates getUpdates may return that are no message of ours, or
	// malformed: passed over (the offset moves past them), the next one
	// answered once.
	for id, junk := range map[int64]string{3: `{"update_id":3}`, 4: `{"update_id":4,"message":"not an object"}`,
		5: `{"update_id":5,"edited_message":{"message_id":1,"chat":{"id":42,"type":"private"},"text":"edited"}}`,
		6: `{"update_id":6,"message":{"message_id":6,"text":"no chat, no sender"}}`} {
		f.Push(id, junk)
	}
	f.Push(7, imtest.Message(7, 42, "after the odd ones"))
	answeredOnce(t, f, []string{"1", "2", "7"})
	if f.Conflicts() != 0 || f.Unconfirmed() != 0 {
		t.Fatalf("conflicts %d, unconfirmed updates %d", f.Conflicts(), f.Unconfirmed())
	}
	metrics := getJSON(t, b.url+"/metrics")
	for _, want := range []string{`botfleet_im_link_leader{instance="b",platform="telegram"} 1`, `botfleet_im_link_up{instance="b",platform="telegram"} 1`,
		`botfleet_im_link_events_total{instance="b",outcome="queued",platform="telegram"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The fleet registry (the console's Fleet view) shows the link too.
	reg := registry.New(r.Client(), registry.Options{})
	var seen map[string]string
	if !testenv.Eventually(20*time.Second, func() bool {
		fl, err := reg.Read(context.Background())
		for _, in := range fl.Instances {
			if err == nil && in.Name == "b" {
				seen = in.Links
			}
		}
		return seen["telegram"] == "connected b"
	}) {
		t.Fatalf("the registry shows b's links as %v, want telegram connected, held by b", seen)
	}
}

func TestIMTelegramPollerKilledUnderASteadyFlow(t *testing.T) {
	bin := buildKillableBot(t)
	r := testenv.StartRedis(t)
	f := imtest.NewTelegram(t, tgToken, tgUsername)
	_, env := mockBackend(t, mockllm.Options{})
	env = merge(streamEnv(r, env), telegramStreamEnv(f), map[string]string{"API_KEY": apiKey, "BOT_LOG_LEVEL": "warn"})
	cmd, url, _ := startProcess(t, bin, with(env, "INSTANCE_NAME", "doomed"))
	waitLink(t, url, "telegram", "connected")
	survivor := startBot(t, with(env, "INSTANCE_NAME", "survivor"))
	waitLink(t, survivor.url, "telegram", "standby")

	var ids []string
	push := func(n int) {
		id := int64(100 + n)
		f.Push(id, imtest.Message(id, 5000+id%7, fmt.Sprint("steady ", n)))
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	tick := time.NewTicker(50 * time.Millisecond) // the steady flow under test
	defer tick.Stop()
	took := make(chan time.Duration, 1)
	for n := range 80 {
		<-tick.C
		push(n)
		if n == 30 {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			go func() { waitLink(t, survivor.url, "telegram", "connected"); took <- time.Since(killed) }()
		}
	}
	d := <-took
	t.Logf("the survivor polled %v after the kill (lease 1s)", d.Round(time.Millisecond))
	if d > 5*time.Second { // the lease (1s) plus a standby's retry (lease/5), with room for a busy machine
		t.Errorf("takeover took %v, want within the lease plus a retry", d)
	}
	answeredOnce(t, f, ids)
	if f.Conflicts() != 0 {
		t.Fatalf("%d getUpdates calls overlapped another poller's", f.Conflicts())
	}
}

func onebotStreamEnv(extra ...string) map[string]string {
	env := map[string]string{"BOT_IM_ONEBOT_MODE": "stream", "BOT_IM_ONEBOT_ACCESS_TOKEN": obToken}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

func TestIMOneBotForwardEveryThreeInstancesAnswerEachEventOnce(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewOneBot(t, 10001, obToken)
	mock, env := mockBackend(t, mockllm.Options{})
	env = merge(streamEnv(r, env), onebotStreamEnv("BOT_IM_ONEBOT_WS_URL", f.URL))
	var bots []*instance
	for _, name := range []string{"a", "b", "c"} {
		bots = append(bots, startBot(t, with(env, "INSTANCE_NAME", name)))
		waitLink(t, bots[len(bots)-1].url, "onebot", "connected")
	}
	waitClients := func(n int) {
		t.Helper()
		if !testenv.Eventually(20*time.Second, func() bool { return f.Connections() == n }) {
			t.Fatalf("%d sockets connected, want %d", f.Connections(), n)
		}
	}
	waitClients(3)
	var ids []string
	for i := range 12 { // each of them reaches all three instances
		id := int64(500 + i)
		if i%3 == 0 {
			f.Push(imtest.GroupMessage(10001, id, 777, 42, fmt.Sprint("group ", i)))
		} else {
			f.Push(imtest.PrivateMessage(10001, id, 42, fmt.Sprint("private ", i)))
		}
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	answeredOnce(t, f, ids)
	// Frames a real connection may carry: broken JSON, events the bot does
	// not answer, an unknown post_type, a message without ids.
	for _, junk := range []string{`{not json`, `{"post_type":"meta_event","meta_event_type":"heartbeat","self_id":10001,"interval":5000}`,
		`{"post_type":"notice","notice_type":"group_increase","self_id":10001}`, `{"post_type":"wat","self_id":10001}`,
		`{"post_type":"message","message_type":"private","self_id":10001,"message":"no ids"}`, `[1,2,3]`} {
		f.Push(junk)
	}
	// A connection dropped mid-frame: that instance reconnects; the others
	// had the event.
	if !f.DropMidFrame() {
		t.Fatal("no socket to drop")
	}
	f.Push(imtest.PrivateMessage(10001, 600, 43, "after the drop"))
	ids = append(ids, "600")
	testenv.WaitFor(t, 20*time.Second, "the dropped instance to reconnect", func() bool { return f.Opened() >= 4 })
	waitClients(3)
	f.Push(imtest.PrivateMessage(10001, 601, 42, "once more"))
	ids = append(ids, "601")
	answeredOnce(t, f, ids)
	if s := f.To("601")[0]; !strings.HasPrefix(s.Text, "mock n=18 ") || s.Chat != "private:42" { // user 42's 9th private turn
		t.Fatalf("reply %+v: memory did not continue", s)
	}
	if g := f.To("500")[0]; g.Chat != "group:777" {
		t.Fatalf("group reply went to %s", g.Chat)
	}
	if f.Refused() != 0 {
		t.Fatalf("%d sockets refused: the access token was not sent", f.Refused())
	}
	if calls := mock.Stats().Calls; calls != int64(len(ids)) {
		t.Fatalf("backend called %d times for %d events", calls, len(ids))
	}
	dropped := 0
	for _, b := range bots {
		metrics := getJSON(t, b.url+"/metrics")
		if !strings.Contains(metrics, `outcome="rejected",platform="onebot"} `) {
			t.Errorf("%s: the junk frames were not counted as rejected", b.url)
		}
		if strings.Contains(metrics, `outcome="dropped",platform="onebot"} 1`) {
			dropped++
		}
	}
	if dropped != 1 {
		t.Errorf("%d instances counted a dropped link, want the 1 cut mid-frame", dropped)
	}
}

// renderNginx renders the fleet's nginx template for instances on ports,
// listening on a free port.
func renderNginx(t *testing.T, ports ...int) string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var primaries []string
	for _, p := range ports {
		primaries = append(primaries, strconv.Itoa(p))
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "render_nginx.sh"))
	cmd.Env = append(os.Environ(), "PRIMARIES="+strings.Join(primaries, " "), "BACKUPS=", "FLEETCTL="+toolPath(t, "fleetctl"),
		"LISTEN="+testenv.Addr(testenv.FreePort(t)), "WORKERS=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render nginx: %v", err)
	}
	return string(out)
}

// OneBot's forward WebSocket on split endpoints: events come on /event,
// the replies go as API calls on /api; two instances, each event answered
// once, memory continuing.
func TestIMOneBotForwardSplitEndpoints(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewOneBot(t, 10001, obToken)
	_, env := mockBackend(t, mockllm.Options{})
	env = merge(streamEnv(r, env), onebotStreamEnv("BOT_IM_ONEBOT_WS_URL", f.URL, "BOT_IM_ONEBOT_WS_ENDPOINTS", "split"))
	for _, name := range []string{"a", "b"} {
		waitLink(t, startBot(t, with(env, "INSTANCE_NAME", name)).url, "onebot", "connected")
	}
	testenv.WaitFor(t, 20*time.Second, "an /event socket per instance", func() bool { return f.Connections() == 2 })
	var ids []string
	for i := range 4 {
		id := int64(700 + i)
		f.Push(imtest.PrivateMessage(10001, id, 42, fmt.Sprint("split ", i)))
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	answeredOnce(t, f, ids)
	// The four turns of user 42, in whatever order the queue ran them, each
	// saw the ones before: prompts of 2, 4, 6 and 8 messages.
	var ns []string
	for _, id := range ids {
		s := f.To(id)[0]
		ns = append(ns, strings.Fields(s.Text)[1])
		if s.Chat != "private:42" {
			t.Fatalf("reply %+v went elsewhere", s)
		}
	}
	if slices.Sort(ns); strings.Join(ns, " ") != "n=2 n=4 n=6 n=8" {
		t.Fatalf("prompt sizes %v: memory did not continue", ns)
	}
	if onEvents, onAPI := f.Calls(); onEvents != 0 || onAPI < 4 {
		t.Fatalf("API calls: %d on the /event sockets, %d on /api; want every reply on /api", onEvents, onAPI)
	}
	if f.Refused() != 0 {
		t.Fatalf("%d sockets refused", f.Refused())
	}
}

func TestIMOneBotReverseWebSocketThroughNginx(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewOneBot(t, 10001, "")
	_, env := mockBackend(t, mockllm.Options{})
	env = merge(streamEnv(r, env), onebotStreamEnv())
	a := startBot(t, with(env, "INSTANCE_NAME", "a"))
	b := startBot(t, with(env, "INSTANCE_NAME", "b"))
	n := testenv.StartNginx(t, renderNginx(t, a.port(), b.port()))
	ws := "ws://" + n.Addrs[0] + "/onebot/v11/ws"

	// A wrong token is refused before the upgrade, as JSON.
	resp, err := http.Get(strings.Replace(ws, "ws://", "http://", 1) + "?access_token=guess")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("a wrong token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	f.DialReverse(ws, obToken)
	var holder, other *instance
	testenv.WaitFor(t, 20*time.Second, "the reverse socket to reach an instance", func() bool {
		for _, i := range []*instance{a, b} {
			if l := links(t, i.url); len(l) == 1 && l[0].State == "connected" {
				holder = i
			}
		}
		return holder != nil
	})
	other = map[*instance]*instance{a: b, b: a}[holder]
	if l := links(t, other.url); l[0].State != "listening" || l[0].Connections != "incoming" {
		t.Fatalf("the other instance's view: %+v", l)
	}
	// Both instances' workers take the jobs; the replies of the one
	// without the socket are relayed through Redis to the holder's socket.
	var ids []string
	for i := range 10 {
		id := int64(700 + i)
		f.Push(imtest.PrivateMessage(10001, id, 42+int64(i%2), fmt.Sprint("reverse ", i)))
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	answeredOnce(t, f, ids)
	// The holder drains: the implementation reconnects through nginx to the other.
	if err := holder.stop(); err != nil {
		t.Fatal(err)
	}
	f.Push(imtest.PrivateMessage(10001, 800, 42, "after the handover"))
	ids = append(ids, "800")
	answeredOnce(t, f, ids)
	waitLink(t, other.url, "onebot", "connected")
	if s := f.To("800")[0]; !strings.HasPrefix(s.Text, "mock n=12 ") {
		t.Fatalf("reply %q: memory did not continue", s.Text)
	}
}

func dingtalkStreamEnv(f *imtest.DingTalk, connections string) map[string]string {
	return map[string]string{"BOT_IM_DINGTALK_MODE": "stream", "BOT_IM_DINGTALK_CONNECTIONS": connections,
		"BOT_IM_DINGTALK_CLIENT_ID": "dingclient", "BOT_IM_DINGTALK_APP_SECRET": dtSecret,
		"BOT_IM_DINGTALK_API_URL": f.URL, "BOT_IM_DINGTALK_WEBHOOK_HOSTS": f.URL}
}

// dingtalkFleet starts a Redis, a fake DingTalk app and a mock backend,
// and returns them with the environment of instances that hold the app's
// Stream under policy connections, extra added.
func dingtalkFleet(t *testing.T, connections string, extra map[string]string) (*testenv.Redis, *imtest.DingTalk, map[string]string) {
	r := testenv.StartRedis(t)
	f := imtest.NewDingTalk(t, "dingclient", dtSecret)
	_, env := mockBackend(t, mockllm.Options{})
	return r, f, merge(streamEnv(r, env), dingtalkStreamEnv(f, connections), extra)
}

func TestIMDingTalkStreamEveryInstanceConnectsEachMessageAnsweredOnce(t *testing.T) {
	_, f, env := dingtalkFleet(t, "every", nil)
	a := startBot(t, with(env, "INSTANCE_NAME", "a"))
	b := startBot(t, with(env, "INSTANCE_NAME", "b"))
	waitLink(t, a.url, "dingtalk", "connected")
	waitLink(t, b.url, "dingtalk", "connected")
	var ids []string
	for i := range 10 { // spread over both connections
		id := fmt.Sprint("dmsg", i)
		f.Push(f.RobotMessage(id, fmt.Sprint("staff", i%3), fmt.Sprint("hello ", i)))
		ids = append(ids, id)
	}
	answeredOnce(t, f, ids)
	// The gateway asks both to reconnect (a DingTalk restart): they do,
	// and memory continues.
	opened := f.Opened()
	f.Disconnect()
	if !testenv.Eventually(20*time.Second, func() bool { return f.Opened() >= opened+2 && f.Connections() == 2 }) {
		t.Fatalf("reconnected %d of 2", f.Opened()-opened)
	}
	f.Push(f.RobotMessage("dmsg-after", "staff0", "after the restart"))
	answeredOnce(t, f, append(ids, "dmsg-after"))
	if s := f.To("dmsg-after")[0]; !strings.HasPrefix(s.Text, "mock n=10 ") {
		t.Fatalf("reply %q: memory did not continue", s.Text)
	}
	if f.Unacked() != 0 || f.Pings() < 2 || f.Acks() < int64(len(ids)+1) {
		t.Fatalf("unacked %d, acks %d, pings answered %d", f.Unacked(), f.Acks(), f.Pings())
	}
	// Frames a connection may carry that are not messages, or are broken:
	// survived, the connections kept, the next message answered once.
	for _, junk := range []string{`{not json`, `[1,2]`, `{"type":"WAT","headers":{"messageId":"j1"}}`,
		`{"specVersion":"1.0","type":"CALLBACK","headers":{"topic":"/v1.0/im/bot/messages/get","messageId":"j2"},"data":"{broken"}`,
		`{"specVersion":"1.0","type":"EVENT","headers":{"topic":"/unknown/topic","messageId":"j3"},"data":"{}"}`,
		`{"specVersion":"1.0","type":"SYSTEM","headers":{"topic":"no-such-system-topic","messageId":"j4"},"data":"{}"}`} {
		f.PushFrame(junk)
	}
	f.Push(f.RobotMessage("dmsg-after-junk", "staff1", "still there?"))
	answeredOnce(t, f, append(ids, "dmsg-after", "dmsg-after-junk"))
	if f.Connections() != 2 {
		t.Fatalf("%d connections after the junk frames, want both kept", f.Connections())
	}
}

// dingtalkSteadyFlow pushes 60 messages 30 ms apart (ids prefix0..59),
// runs fault after the 21st, and fails if two instances ever hold the one
// connection; it returns the ids.
func dingtalkSteadyFlow(t *testing.T, f *imtest.DingTalk, prefix string, fault func()) []string {
	t.Helper()
	var ids []string
	tick := time.NewTicker(30 * time.Millisecond) // the steady flow under test
	defer tick.Stop()
	for i := range 60 {
		<-tick.C
		id := fmt.Sprint(prefix, i)
		f.Push(f.RobotMessage(id, fmt.Sprint("staff", i%5), fmt.Sprint("steady ", i)))
		ids = append(ids, id)
		if i == 20 {
			fault()
		}
		if f.Connections() > 1 {
			t.Fatalf("two instances hold the one connection")
		}
	}
	return ids
}

func TestIMDingTalkStreamOneHolderDrainsUnderASteadyFlow(t *testing.T) {
	_, f, env := dingtalkFleet(t, "one", nil)
	a := startBot(t, with(env, "INSTANCE_NAME", "a"))
	waitLink(t, a.url, "dingtalk", "connected")
	b := startBot(t, with(env, "INSTANCE_NAME", "b"))
	waitLink(t, b.url, "dingtalk", "standby")
	ids := dingtalkSteadyFlow(t, f, "flow", func() {
		go a.stop() // the holder drains; messages meanwhile wait for redelivery
	})
	waitLink(t, b.url, "dingtalk", "connected")
	answeredOnce(t, f, ids)
	if f.Unacked() != 0 {
		t.Fatalf("%d messages never acknowledged", f.Unacked())
	}
}

// kill -9 of the instance holding DingTalk's one connection under a
// steady flow: the standby connects within the lease, the messages the
// dead holder never acknowledged come again by the gateway's redelivery,
// and every message is answered once.
func TestIMDingTalkStreamOneHolderKilledUnderASteadyFlow(t *testing.T) {
	bin := buildBot(t)
	_, f, env := dingtalkFleet(t, "one", map[string]string{"API_KEY": apiKey, "BOT_LOG_LEVEL": "warn"})
	cmd, url, _ := startProcess(t, bin, with(env, "INSTANCE_NAME", "doomed"))
	waitLink(t, url, "dingtalk", "connected")
	survivor := startBot(t, with(env, "INSTANCE_NAME", "survivor"))
	waitLink(t, survivor.url, "dingtalk", "standby")
	ids := dingtalkSteadyFlow(t, f, "killed-flow", func() {
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	})
	waitLink(t, survivor.url, "dingtalk", "connected")
	answeredOnce(t, f, ids)
	testenv.WaitFor(t, 30*time.Second, "every message acknowledged", func() bool { return f.Unacked() == 0 })
}

// A message that arrives while Redis is paused cannot be queued, so it is
// not acknowledged; once Redis is back the gateway's redelivery brings it
// again and it is answered once.
func TestIMDingTalkStreamAcknowledgesOnlyWhatIsQueued(t *testing.T) {
	r, f, env := dingtalkFleet(t, "every", map[string]string{"BOT_REDIS_READ_TIMEOUT": "500ms"})
	a := startBot(t, with(env, "INSTANCE_NAME", "a"))
	waitLink(t, a.url, "dingtalk", "connected")
	acked := f.Acks()
	r.Pause()
	f.Push(f.RobotMessage("while-paused", "staff1", "are you there?"))
	time.Sleep(3 * time.Second) // the outage under test: deliveries and redeliveries meet a Redis that does not answer
	if f.Acks() != acked || f.Unacked() != 1 {
		t.Fatalf("while Redis was paused %d acks were sent, %d messages left unacked; want none sent, one left", f.Acks()-acked, f.Unacked())
	}
	r.Resume()
	answeredOnce(t, f, []string{"while-paused"})
	testenv.WaitFor(t, 30*time.Second, "the message acknowledged", func() bool { return f.Unacked() == 0 })
}

func TestIMFeishuLongConnectionFragmentsAndBadFrames(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewFeishu(t, fsAppID, fsSecret)
	_, env := mockBackend(t, mockllm.Options{})
	env = merge(streamEnv(r, env), map[string]string{"BOT_IM_FEISHU_MODE": "stream", "BOT_IM_FEISHU_APP_ID": fsAppID,
		"BOT_IM_FEISHU_APP_SECRET": fsSecret, "BOT_IM_FEISHU_BASE_URL": f.URL})
	a := startBot(t, with(env, "INSTANCE_NAME", "a"))
	b := startBot(t, with(env, "INSTANCE_NAME", "b"))
	waitLink(t, a.url, "feishu", "connected")
	waitLink(t, b.url, "feishu", "connected")
	var ids []string
	for i := range 8 { // over both connections, some split in 3 frames
		f.Push(imtest.TextEvent(900+i, "u"+strconv.Itoa(i%2), fmt.Sprint("飞书 ", i)), 1+2*(i%2))
		ids = append(ids, fmt.Sprint("om_", 900+i))
	}
	answeredOnce(t, f, ids)
	// Bytes that are not a frame, a control frame of an unknown type, a
	// data frame of another type, an event type the bot does not answer.
	f.Send([]byte{0xff, 0xff, 0xff})
	unknown := feishu.Frame{Method: feishu.MethodControl, Headers: [][2]string{{"type", "wat"}}}
	f.Send(unknown.Marshal())
	f.Push(`{"schema":"2.0","header":{"event_id":"evx","event_type":"im.chat.member.bot.added_v1"},"event":{}}`, 1)
	f.Push(`{"schema":"1.0"}`, 2)
	f.Push(imtest.TextEvent(950, "u0", "after the junk"), 2)
	answeredOnce(t, f, append(ids, "om_950"))
	if s := f.To("om_950")[0]; !strings.HasPrefix(s.Text, "mock n=10 ") {
		t.Fatalf("reply %q: memory did not continue", s.Text)
	}
	if !testenv.Eventually(10*time.Second, func() bool { return f.Unacked() == 0 && f.Pings() > 0 }) {
		t.Fatalf("unacked %d, pings %d", f.Unacked(), f.Pings())
	}
	if f.Opened() != 2 {
		t.Fatalf("%d connections opened: a bad frame broke one", f.Opened())
	}
}

// Pictures are downloaded through the platform's API, size-limited and
// type-checked, and the one taken reaches the model (llm.images) as an
// image input; memory names the attachments.
func TestIMImagesAreDownloadedSizeLimitedAndTypeChecked(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewTelegram(t, tgToken, tgUsername)
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 200)...)
	f.File("small-png", png)
	f.File("huge-png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 5000)...))
	f.File("elf", append([]byte("\x7fELF"), make([]byte, 100)...))
	mock, env := mockBackend(t, mockllm.Options{})
	bot := startBot(t, merge(streamEnv(r, env), telegramStreamEnv(f), map[string]string{"BOT_IM_MEDIA_MAX_BYTES": "1000", "INSTANCE_NAME": "m",
		"BOT_LLM_IMAGES": "true"}))
	f.Push(1, imtest.Photo(1, 42, "what is this?", "thumb", "small-png"))
	f.Push(2, imtest.Photo(2, 43, "", "huge-png")) // an image alone, no caption: still answered
	f.Push(3, imtest.Photo(3, 44, "and this", "elf"))
	f.Push(4, imtest.Photo(4, 45, "gone", "no-such-file"))
	answeredOnce(t, f, []string{"1", "2", "3", "4"})
	if s := f.To("1")[0]; !strings.HasSuffix(s.Text, ": what is this?\n[the user sent 1 attachment(s)]") {
		t.Fatalf("reply %q", s.Text)
	}
	if s := f.To("2")[0]; !strings.HasSuffix(s.Text, ": [the user sent 1 attachment(s)]") {
		t.Fatalf("reply %q", s.Text)
	}
	// Only the picture taken went to the model, as itself.
	if st := mock.Stats(); st.Images != 1 || st.LastImage != "data:image/png;base64,"+base64.StdEncoding.EncodeToString(png) {
		t.Fatalf("the model got %d images, the last %.60q; want the small PNG", st.Images, st.LastImage)
	}
	metrics := getJSON(t, bot.url+"/metrics")
	for _, want := range []string{`botfleet_im_attachments_total{instance="m",outcome="taken",platform="telegram"} 1`,
		`botfleet_im_attachments_total{instance="m",outcome="refused",platform="telegram"} 2`, // too large, and not an accepted type
		`botfleet_im_attachments_total{instance="m",outcome="failed",platform="telegram"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// checkStreamed checks the streamed reply to update id: one message made,
// its edits in order (each a longer prefix of the reply, or the reply
// begun again), the last one the whole reply.
func checkStreamed(t *testing.T, f interface{ To(string) []imtest.Sent }, id string) imtest.Sent {
	t.Helper()
	made := f.To(id)
	if len(made) != 1 {
		t.Fatalf("%d messages made for update %s, want 1: %+v", len(made), id, made)
	}
	edits := f.To("edit:" + made[0].ID)
	if len(edits) == 0 {
		t.Fatalf("the reply to %s was never edited: not streamed", id)
	}
	final := edits[len(edits)-1].Text
	for _, e := range append(made, edits...) { // a rerun streams the same reply again, from its start
		if !strings.HasPrefix(final, e.Text) {
			t.Fatalf("%s %q is not the start of the reply %q", e.Kind, e.Text, final)
		}
	}
	return edits[len(edits)-1]
}

func TestIMTelegramStreamedReplyGrowsInOneMessage(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewTelegram(t, tgToken, tgUsername)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 8, ChunkDelay: 400 * time.Millisecond}})
	env = merge(streamEnv(r, env), telegramStreamEnv(f), map[string]string{"BOT_IM_STREAM_REPLIES": "true"})
	startBot(t, with(env, "INSTANCE_NAME", "a"))
	startBot(t, with(env, "INSTANCE_NAME", "b"))
	f.Push(1, imtest.Message(1, 42, "tell me a long story"))
	f.Wait(30*time.Second, func(s []imtest.Sent) bool {
		for _, x := range s {
			if strings.HasSuffix(x.Text, ": tell me a long story") && x.Kind == "editMessageText" {
				return true
			}
		}
		return false
	})
	last := checkStreamed(t, f, "1")
	if !strings.HasPrefix(last.Text, "mock n=2 ") || !strings.HasSuffix(last.Text, ": tell me a long story") {
		t.Fatalf("final text %q", last.Text)
	}
	if f.TooFast() != 0 {
		t.Fatalf("%d edits came faster than Telegram allows", f.TooFast())
	}
}

func TestIMTelegramStreamReclaimedMidwayEditsTheSameMessage(t *testing.T) {
	bin := buildKillableBot(t)
	r := testenv.StartRedis(t)
	f := imtest.NewTelegram(t, tgToken, tgUsername)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 10, ChunkDelay: 400 * time.Millisecond}})
	env = merge(streamEnv(r, env), telegramStreamEnv(f), reclaimEnv, map[string]string{"BOT_IM_STREAM_REPLIES": "true"})
	shown := killMidStream(t, bin, env, "telegram", f, func() { f.Push(1, imtest.Message(1, 42, "a reply cut in the middle")) })
	f.Wait(30*time.Second, func(s []imtest.Sent) bool {
		return len(s) > shown && strings.HasSuffix(s[len(s)-1].Text, ": a reply cut in the middle")
	})
	last := checkStreamed(t, f, "1")
	if !strings.HasSuffix(last.Text, ": a reply cut in the middle") {
		t.Fatalf("final text %q", last.Text)
	}
	t.Logf("%d edits of one message, %d of them before the kill", len(f.Sent())-1, shown-1)
	if f.TooFast() != 0 {
		t.Fatalf("%d edits came faster than Telegram allows", f.TooFast())
	}
}

func TestIMFeishuStreamedReplyIsOneCardUpdated(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewFeishu(t, fsAppID, fsSecret)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 8, ChunkDelay: 200 * time.Millisecond}})
	env = merge(streamEnv(r, env), map[string]string{"BOT_IM_FEISHU_MODE": "stream", "BOT_IM_FEISHU_APP_ID": fsAppID,
		"BOT_IM_FEISHU_APP_SECRET": fsSecret, "BOT_IM_FEISHU_BASE_URL": f.URL, "BOT_IM_STREAM_REPLIES": "true"})
	bot := startBot(t, env)
	waitLink(t, bot.url, "feishu", "connected")
	f.Push(imtest.TextEvent(1, "u1", "stream me a card"), 1)
	f.Wait(30*time.Second, func(s []imtest.Sent) bool {
		return len(s) > 1 && strings.HasSuffix(s[len(s)-1].Text, ": stream me a card")
	})
	last := checkStreamed(t, f, "om_1")
	if made := f.To("om_1")[0]; made.Kind != "interactive" || last.Kind != "update" || !strings.HasPrefix(last.Text, "mock n=2 ") {
		t.Fatalf("made %+v, last %+v", made, last)
	}
	if f.TooFast() != 0 {
		t.Fatalf("%d card updates came faster than Feishu allows", f.TooFast())
	}
}
