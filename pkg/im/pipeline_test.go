package im

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

type countingBackend struct{ calls atomic.Int64 }

func (b *countingBackend) Name() string { return "counting" }
func (b *countingBackend) Complete(_ context.Context, r llm.Request) (llm.Reply, error) {
	n := b.calls.Add(1)
	return llm.Reply{Content: fmt.Sprintf("reply %d to %s (%d messages)", n, r.Messages[len(r.Messages)-1].Content, len(r.Messages)), Backend: "counting"}, nil
}

// fakeAdapter parses a JSON Message as is and records sends; failSends
// makes the next sends fail.
type fakeAdapter struct {
	mu        sync.Mutex
	sent      []string
	failSends int
}

func (a *fakeAdapter) Platform() string { return Telegram }
func (a *fakeAdapter) Parse(_ context.Context, _ http.Header, body []byte) (*Inbound, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, BadRequest("%v", err)
	}
	return &Inbound{Message: &m, Response: Response{Status: 200}}, nil
}
func (a *fakeAdapter) Send(_ context.Context, m *Message, text string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failSends > 0 {
		a.failSends--
		return errors.New("platform timed out")
	}
	a.sent = append(a.sent, text)
	return nil
}

func setup(t *testing.T, opts Options) (*Pipeline, *queue.Queue, *countingBackend, *fakeAdapter) {
	return setupOn(t, testenv.StartRedis(t).Client(), opts)
}

// setupOn is setup on the Redis of rdb.
func setupOn(t *testing.T, rdb redis.UniversalClient, opts Options) (*Pipeline, *queue.Queue, *countingBackend, *fakeAdapter) {
	store := memory.New(context.Background(), rdb, memory.Options{})
	t.Cleanup(func() { store.Close() })
	b := &countingBackend{}
	svc := chat.New(store, b, chat.Options{})
	q := queue.New(rdb, "bf", 0)
	a := &fakeAdapter{}
	return NewPipeline(rdb, q, svc, []Adapter{a}, opts, nil), q, b, a
}

func webhook(t *testing.T, p *Pipeline, m Message) {
	t.Helper()
	body, _ := json.Marshal(m)
	if _, err := p.Webhook(context.Background(), Telegram, nil, body); err != nil {
		t.Fatal(err)
	}
}

// jobs lists the queued jobs, most urgent first, without taking them.
func jobs(t *testing.T, q *queue.Queue) []*queue.Job {
	t.Helper()
	var out []*queue.Job
	for _, p := range queue.Priorities {
		js, err := q.Peek(context.Background(), p, 100)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, js...)
	}
	return out
}

func TestClassifyAndScope(t *testing.T) {
	p, q, _, _ := setup(t, Options{RequireMention: true, GroupScope: chat.ScopeGroup,
		UrgentKeywords: []string{"紧急", "URGENT"}, BatchPrefixes: []string{"[定时]"}, BatchSenders: []string{"telegram:cron"}})
	webhook(t, p, Message{Platform: Telegram, EventID: "1", SenderID: "u", ChatType: Private, ChatID: "u", Text: "这个很紧急"})
	webhook(t, p, Message{Platform: Telegram, EventID: "2", SenderID: "u", ChatType: Group, ChatID: "g{1}", Text: "urgent please", Mentioned: true})
	webhook(t, p, Message{Platform: Telegram, EventID: "3", SenderID: "u", ChatType: Group, ChatID: "g", Text: "not for the bot"})
	webhook(t, p, Message{Platform: Telegram, EventID: "4", SenderID: "u", ChatType: Private, ChatID: "u", Text: "[定时] 日报 紧急"})
	webhook(t, p, Message{Platform: Telegram, EventID: "5", SenderID: "cron", ChatType: Private, ChatID: "cron", Text: "weekly report"})
	webhook(t, p, Message{Platform: Telegram, EventID: "6", SenderID: "u", ChatType: Private, ChatID: "u", Text: "hello"})
	got := map[string]string{}
	for _, j := range jobs(t, q) {
		var m Message
		_ = json.Unmarshal([]byte(j.Fields["msg"]), &m)
		got[m.EventID] = fmt.Sprintf("%s %s %s", j.Priority, m.Conversation, m.Text)
	}
	want := map[string]string{
		"1": "urgent im:telegram:c2c:u 这个很紧急",
		"2": "urgent im:telegram:group:g%7B1%7D urgent please",
		"4": "batch im:telegram:c2c:u 日报 紧急",
		"5": "batch im:telegram:c2c:cron weekly report",
		"6": "normal im:telegram:c2c:u hello",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

func TestReRunAfterAFailedSendReplaysTheTurnAndSendsOnce(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, top testenv.Topology) {
		testReRunAfterAFailedSend(t, top.UniversalClient())
	})
}

func testReRunAfterAFailedSend(t *testing.T, rdb redis.UniversalClient) {
	p, q, b, a := setupOn(t, rdb, Options{})
	webhook(t, p, Message{Platform: Telegram, EventID: "77", SenderID: "u", ChatType: Private, ChatID: "u", Text: "hi"})
	js := jobs(t, q)
	if len(js) != 1 {
		t.Fatalf("%d jobs", len(js))
	}
	a.failSends = 1
	if err := p.Handle(context.Background(), js[0]); err == nil {
		t.Fatal("a failed send did not fail the job")
	}
	if err := p.Handle(context.Background(), js[0]); err != nil { // the retry, on any instance
		t.Fatal(err)
	}
	if err := p.Handle(context.Background(), js[0]); err != nil { // a reclaim after the send
		t.Fatal(err)
	}
	if b.calls.Load() != 1 || len(a.sent) != 1 || a.sent[0] != "reply 1 to hi (1 messages)" {
		t.Fatalf("backend calls %d, sent %q", b.calls.Load(), a.sent)
	}
}

func TestSendWaitsForAnotherWorkersMark(t *testing.T) {
	p, q, _, a := setup(t, Options{})
	ctx := context.Background()
	webhook(t, p, Message{Platform: Telegram, EventID: "dead-sender", SenderID: "u1", ChatType: Private, ChatID: "u1", Text: "one"})
	webhook(t, p, Message{Platform: Telegram, EventID: "live-sender", SenderID: "u2", ChatType: Private, ChatID: "u2", Text: "two"})
	js := jobs(t, q)
	// A worker died mid-send: its mark stays until its lease ends, then this one sends.
	p.leases.Acquire(ctx, "bf:im:sending:telegram:dead-sender", "gone", 300*time.Millisecond)
	start := time.Now()
	if err := p.Handle(ctx, js[0]); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond || len(a.sent) != 1 {
		t.Fatalf("waited %v, sent %q", waited, a.sent)
	}
	// A live worker is sending: this one waits for its "sent" and sends nothing.
	p.leases.Acquire(ctx, "bf:im:sending:telegram:live-sender", "busy", time.Minute)
	go func() {
		time.Sleep(200 * time.Millisecond) // the thing under test: the other worker still sends while Handle waits
		p.rdb.Set(ctx, "bf:im:sent:telegram:live-sender", "sent", time.Hour)
	}()
	if err := p.Handle(ctx, js[1]); err != nil {
		t.Fatal(err)
	}
	if len(a.sent) != 1 {
		t.Fatalf("sent %q", a.sent)
	}
	// Within a deadline shorter than the other worker's lease, the job fails and is retried.
	p.rdb.Del(ctx, "bf:im:sent:telegram:live-sender") // "busy" still holds the lease
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := p.Handle(dctx, js[1]); !errors.Is(err, ErrSendInProgress) {
		t.Fatalf("err %v", err)
	}
}
