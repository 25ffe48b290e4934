package main

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/im/dingtalk"
	"github.com/botfleet/botfleet/pkg/im/imtest"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// sender is a fake platform's record of what the bot sent it.
type sender interface {
	Wait(time.Duration, func([]imtest.Sent) bool) bool
	Sent() []imtest.Sent
	To(string) []imtest.Sent
	Problems() []string
}

// waitKind waits until a send of kind (a card's finalize, its settings)
// went to to.
func waitKind(t *testing.T, f sender, to, kind string) {
	t.Helper()
	if !f.Wait(30*time.Second, func(sent []imtest.Sent) bool {
		return slices.ContainsFunc(sent, func(s imtest.Sent) bool { return s.To == to && s.Kind == kind })
	}) {
		t.Fatalf("no %s sent to %s: %+v", kind, to, f.Sent())
	}
}

// reclaimEnv is what killMidStream's instances add: short leases, so that
// the survivor reclaims the job soon; the doomed one runs as a process.
var reclaimEnv = map[string]string{"API_KEY": apiKey, "BOT_MEMORY_LEASE": "1s", "BOT_IM_SEND_TIMEOUT": "500ms",
	"BOT_IM_SEND_LEASE": "1s", "BOT_LOG_LEVEL": "warn"}

// killMidStream starts an instance (its link of platform connected),
// pushes an event, kill -9s the instance once the reply's message was made
// and edited once, and starts a survivor to reclaim the job; it returns
// how many sends the platform had from the dead instance.
func killMidStream(t *testing.T, bin string, env map[string]string, platform string, f sender, push func()) int {
	t.Helper()
	cmd, url, _ := startProcess(t, bin, with(env, "INSTANCE_NAME", "doomed"))
	waitLink(t, url, platform, "connected")
	push()
	if !f.Wait(20*time.Second, func(s []imtest.Sent) bool { return len(s) >= 2 }) { // made, and edited once
		t.Fatalf("the doomed instance never streamed: %+v", f.Sent())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	shown := len(f.Sent())
	startBot(t, with(env, "INSTANCE_NAME", "survivor"))
	return shown
}

// noProblems fails on the protocol violations the fake platform saw.
func noProblems(t *testing.T, f sender) {
	t.Helper()
	if p := f.Problems(); len(p) > 0 {
		t.Fatalf("the platform saw %d protocol violations: %q", len(p), p)
	}
}

func dingtalkCardEnv(r *testenv.Redis, f *imtest.DingTalk, env map[string]string) map[string]string {
	return merge(streamEnv(r, env), dingtalkStreamEnv(f, "every"), map[string]string{
		"BOT_IM_STREAM_REPLIES": "true", "BOT_IM_DINGTALK_CARD_TEMPLATE_ID": f.CardTemplate,
	})
}

// checkAICard checks the AI card of event msgID: made once, streamed in
// order, finalized exactly once and within DingTalk's rate limits; it
// returns the final text.
func checkAICard(t *testing.T, f *imtest.DingTalk, msgID string) string {
	t.Helper()
	id := dingtalk.OutTrackID(msgID)
	last := checkStreamed(t, f, id)
	var card *imtest.Card
	for _, c := range f.Cards() {
		if c.OutTrackID == id {
			card = &c
		}
	}
	if card == nil || card.Finalized != 1 || card.Errored != 0 || last.Kind != "finalize" || card.Text != last.Text || card.Updates < 2 {
		t.Fatalf("card %+v, last update %+v: want streamed, then finalized once by the last update", card, last)
	}
	if f.TooFast() != 0 {
		t.Fatalf("%d card updates came faster than DingTalk allows", f.TooFast())
	}
	noProblems(t, f)
	return last.Text
}

func TestIMDingTalkAICardStreamsAndFinalizesOnce(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewDingTalk(t, "dingclient", dtSecret)
	mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 6, ChunkDelay: 400 * time.Millisecond}})
	env = dingtalkCardEnv(r, f, env)
	for _, name := range []string{"a", "b"} {
		waitLink(t, startBot(t, with(env, "INSTANCE_NAME", name)).url, "dingtalk", "connected")
	}
	f.Push(f.RobotMessage("card1", "staff7", "stream me an AI card"))
	waitKind(t, f, "edit:"+dingtalk.OutTrackID("card1"), "finalize")
	if text := checkAICard(t, f, "card1"); !strings.HasPrefix(text, "mock n=2 ") || !strings.HasSuffix(text, ": stream me an AI card") {
		t.Fatalf("final text %q", text)
	}
	// A later message of the same user: its own card, memory continued.
	f.Push(f.RobotMessage("card2", "staff7", "and once more"))
	waitKind(t, f, "edit:"+dingtalk.OutTrackID("card2"), "finalize")
	if text := checkAICard(t, f, "card2"); !strings.HasPrefix(text, "mock n=4 ") {
		t.Fatalf("final text %q: memory did not continue", text)
	}
	if len(f.Cards()) != 2 || f.Recreated() != 0 || mock.Stats().Calls != 2 {
		t.Fatalf("%d cards (%d made again), %d model calls for 2 messages", len(f.Cards()), f.Recreated(), mock.Stats().Calls)
	}
	if hooks := f.To("card1"); len(hooks) != 0 {
		t.Fatalf("the streamed reply also went by the session webhook: %+v", hooks)
	}
}

func TestIMDingTalkAICardReclaimedMidwayStreamsTheSameCard(t *testing.T) {
	bin := buildBot(t)
	r := testenv.StartRedis(t)
	f := imtest.NewDingTalk(t, "dingclient", dtSecret)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 10, ChunkDelay: 400 * time.Millisecond}})
	env = merge(dingtalkCardEnv(r, f, env), reclaimEnv)
	shown := killMidStream(t, bin, env, "dingtalk", f, func() { f.Push(f.RobotMessage("cut1", "staff8", "a card cut in the middle")) })
	waitKind(t, f, "edit:"+dingtalk.OutTrackID("cut1"), "finalize")
	if text := checkAICard(t, f, "cut1"); !strings.HasSuffix(text, ": a card cut in the middle") {
		t.Fatalf("final text %q", text)
	}
	if len(f.Cards()) != 1 {
		t.Fatalf("%d cards made for one message", len(f.Cards()))
	}
	t.Logf("%d sends to one card, %d of them before the kill; %d createAndDeliver refused (a kill before the draft was recorded)", len(f.Sent()), shown, f.Recreated())
}

func feishuCardKitEnv(r *testenv.Redis, f *imtest.Feishu, env map[string]string) map[string]string {
	return merge(streamEnv(r, env), map[string]string{"BOT_IM_FEISHU_MODE": "stream", "BOT_IM_FEISHU_APP_ID": fsAppID,
		"BOT_IM_FEISHU_APP_SECRET": fsSecret, "BOT_IM_FEISHU_BASE_URL": f.URL, "BOT_IM_STREAM_REPLIES": "true",
		"BOT_IM_FEISHU_STREAM_CARD": "cardkit"})
}

// waitClosed waits until the card replying to message id had its settings changed.
func waitClosed(t *testing.T, f *imtest.Feishu, id string) {
	t.Helper()
	testenv.WaitFor(t, 30*time.Second, "the reply to "+id, func() bool { return len(f.To(id)) > 0 })
	waitKind(t, f, "settings:"+f.To(id)[0].ID, "settings")
}

// checkCardKit checks the CardKit card replying to message id: one card
// entity sent once, its element streamed in order with growing
// sequences, streaming mode turned off exactly once, within the rate
// limit; it returns the final text.
func checkCardKit(t *testing.T, f *imtest.Feishu, id string) string {
	t.Helper()
	last := checkStreamed(t, f, id)
	var card *imtest.CardKitCard
	for _, c := range f.CardKitCards() {
		if c.MessageID == last.ID {
			card = &c
		}
	}
	if card == nil || card.Closes != 1 || card.Streaming || card.Elements["reply"] != last.Text || len(card.Sequences) < 3 {
		t.Fatalf("card %+v, last update %+v: want streamed, then streaming turned off once, showing the last update", card, last)
	}
	if !slices.IsSorted(card.Sequences) || len(slices.Compact(slices.Clone(card.Sequences))) != len(card.Sequences) {
		t.Fatalf("sequences %v do not grow", card.Sequences)
	}
	if f.TooFast() != 0 || f.OutOfOrder() != 0 {
		t.Fatalf("%d card operations too fast, %d out of order", f.TooFast(), f.OutOfOrder())
	}
	noProblems(t, f)
	return last.Text
}

func TestIMFeishuCardKitStreamsAndClosesOnce(t *testing.T) {
	r := testenv.StartRedis(t)
	f := imtest.NewFeishu(t, fsAppID, fsSecret)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 8, ChunkDelay: 200 * time.Millisecond}})
	env = feishuCardKitEnv(r, f, env)
	for _, name := range []string{"a", "b"} {
		waitLink(t, startBot(t, with(env, "INSTANCE_NAME", name)).url, "feishu", "connected")
	}
	f.Push(imtest.TextEvent(1, "u1", "stream me a CardKit card"), 1)
	waitClosed(t, f, "om_1")
	if text := checkCardKit(t, f, "om_1"); !strings.HasPrefix(text, "mock n=2 ") || !strings.HasSuffix(text, ": stream me a CardKit card") {
		t.Fatalf("final text %q", text)
	}
	f.Push(imtest.TextEvent(2, "u1", "again"), 1)
	waitClosed(t, f, "om_2")
	if text := checkCardKit(t, f, "om_2"); !strings.HasPrefix(text, "mock n=4 ") {
		t.Fatalf("final text %q: memory did not continue", text)
	}
	if n := len(f.CardKitCards()); n != 2 {
		t.Fatalf("%d card entities for 2 replies", n)
	}
}

func TestIMFeishuCardKitReclaimedMidwayKeepsTheCardAndItsSequence(t *testing.T) {
	bin := buildBot(t)
	r := testenv.StartRedis(t)
	f := imtest.NewFeishu(t, fsAppID, fsSecret)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Chunks: 10, ChunkDelay: 400 * time.Millisecond}})
	env = merge(feishuCardKitEnv(r, f, env), reclaimEnv)
	shown := killMidStream(t, bin, env, "feishu", f, func() { f.Push(imtest.TextEvent(5, "u5", "a card cut in the middle"), 1) })
	waitClosed(t, f, "om_5")
	if text := checkCardKit(t, f, "om_5"); !strings.HasSuffix(text, ": a card cut in the middle") {
		t.Fatalf("final text %q", text)
	}
	if n := len(f.CardKitCards()); n != 1 {
		t.Fatalf("%d card entities for one reply", n)
	}
	t.Logf("%d sends, %d of them before the kill; sequences %v", len(f.Sent()), shown, f.CardKitCards()[0].Sequences)
}
