package im

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// streamingBackend streams pieces, then answers err (nil: the pieces' reply).
type streamingBackend struct {
	pieces []string
	err    error
}

func (b *streamingBackend) Name() string { return "streaming" }
func (b *streamingBackend) Complete(_ context.Context, r llm.Request) (llm.Reply, error) {
	for _, p := range b.pieces {
		if r.Stream != nil {
			if err := r.Stream(p); err != nil {
				return llm.Reply{}, err
			}
		}
	}
	if b.err != nil {
		return llm.Reply{}, b.err
	}
	return llm.Reply{Content: strings.Join(b.pieces, ""), Backend: "streaming"}, nil
}

// finishingAdapter is a Finisher that records its calls, in order.
type finishingAdapter struct {
	fakeAdapter
	calls   []string
	maxText int
}

func (a *finishingAdapter) Begin(_ context.Context, _ *Message, text string) (string, error) {
	a.calls = append(a.calls, "begin "+text)
	return "card-1", nil
}
func (a *finishingAdapter) Edit(_ context.Context, _ *Message, id, text string) error {
	a.calls = append(a.calls, "edit "+id+" "+text)
	return nil
}
func (a *finishingAdapter) Finish(_ context.Context, _ *Message, id, text string) error {
	a.calls = append(a.calls, "finish "+id+" "+text)
	return nil
}
func (a *finishingAdapter) Fail(_ context.Context, _ *Message, id, text string) error {
	a.calls = append(a.calls, "fail "+id+" "+text)
	return nil
}
func (a *finishingAdapter) EditEvery() time.Duration { return 0 }
func (a *finishingAdapter) MaxText() int             { return a.maxText }

// streamTurn runs one streamed job of a Finisher taking maxText over
// backend b and returns the job's error and the adapter's calls (its
// plain sends as "send <text>").
func streamTurn(t *testing.T, b llm.Backend, maxText int) (error, []string) {
	rdb := testenv.StartRedis(t).Client()
	store := memory.New(context.Background(), rdb, memory.Options{})
	t.Cleanup(func() { store.Close() })
	q := queue.New(rdb, "bf", 0)
	a := &finishingAdapter{maxText: maxText}
	p := NewPipeline(rdb, q, chat.New(store, b, chat.Options{}), []Adapter{a}, Options{StreamReplies: true}, nil)
	webhook(t, p, Message{Platform: Telegram, EventID: "s1", SenderID: "u", ChatType: Private, ChatID: "u", Text: "hi"})
	js := jobs(t, q)
	if len(js) != 1 {
		t.Fatalf("%d jobs", len(js))
	}
	err := p.Handle(context.Background(), js[0])
	for _, sent := range a.sent {
		a.calls = append(a.calls, "send "+sent)
	}
	return err, a.calls
}

// A Finisher's message is finished once, or failed with its turn; a reply
// longer than the card is finished with the first part and the rest sent
// as plain replies (not a second Begin, which would name the same card).
func TestStreamedFinisher(t *testing.T) {
	for _, c := range []struct {
		name      string
		backend   *streamingBackend
		maxText   int
		permanent bool // the job's error: a permanent failure, else none
		want      string
	}{
		{"IsFinishedOnce", &streamingBackend{pieces: []string{"one ", "two"}}, 100, false,
			"begin one |edit card-1 one two|finish card-1 one two"},
		{"FailsWithItsTurn", &streamingBackend{pieces: []string{"half "}, err: fault.New(http.StatusBadRequest, "refused", "the model refused the prompt")}, 100, true,
			"begin half |fail card-1 half "},
		{"SendsTheRestAsReplies", &streamingBackend{pieces: []string{"first part\n\n", "second part"}}, 15, false,
			"begin first part\n\n|finish card-1 first part|send second part"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err, calls := streamTurn(t, c.backend, c.maxText)
			if c.permanent && !queue.IsPermanent(err) {
				t.Fatalf("err %v, want a permanent failure", err)
			}
			if !c.permanent && err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(calls, "|"); got != c.want {
				t.Fatalf("calls %q, want %q", got, c.want)
			}
		})
	}
}
