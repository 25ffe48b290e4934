package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

type collected struct {
	mu     sync.Mutex
	events []Event
}

func (c *collected) emit(e Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	return nil
}

func (c *collected) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, e := range c.events {
		switch e.Kind {
		case "piece":
			fmt.Fprintf(&b, "%s=%s ", e.ID, e.Text)
		default:
			fmt.Fprintf(&b, "%s:%s ", e.Kind, e.ID)
		}
	}
	return strings.TrimSpace(b.String())
}

func newStore(t *testing.T, opts Options) *Store {
	r := testenv.StartRedis(t)
	return New(r.Client(), opts)
}

// start begins the turn of key on s.
func start(t *testing.T, s *Store) *Writer {
	t.Helper()
	w, err := s.Start(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

var key = Key{Conversation: "api:default:c2c:1", RequestID: "api:default|k1", Namespace: "api:default", ClientID: "k1"}

// commit runs what End returns, as the turn's commit round trip would.
func commit(t *testing.T, s *Store, w *Writer, result string) {
	t.Helper()
	pipe := s.rdb.Pipeline()
	w.End([]byte(result))(pipe)
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestFollowReplaysAFinishedStreamAfterAnID(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	w, err := s.Start(ctx, key, []byte(`{"turn":1}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "b", "c", "d"} {
		w.Piece(p)
	}
	commit(t, s, w, `{"reply":"abcd"}`)
	for after, want := range map[string]string{
		"":     "start:1.0 1.1=a 1.2=b 1.3=c 1.4=d end:1.5",
		"1.0":  "1.1=a 1.2=b 1.3=c 1.4=d end:1.5",
		"1.2":  "1.3=c 1.4=d end:1.5",
		"1.4":  "end:1.5",
		"junk": "start:1.0 1.1=a 1.2=b 1.3=c 1.4=d end:1.5",
	} {
		var c collected
		end, err := s.Follow(ctx, key, after, c.emit)
		if err != nil || end.Kind != "end" || string(end.Data) != `{"reply":"abcd"}` || c.String() != want {
			t.Errorf("after %q: %q, end %+v, %v; want %q", after, c.String(), end, err, want)
		}
	}
	if conv, err := s.Lookup(ctx, "api:default", "k1"); err != nil || conv != key.Conversation {
		t.Fatalf("lookup: %q, %v", conv, err)
	}
	if _, err := s.Lookup(ctx, "api:other", "k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another tenant's lookup: %v", err)
	}
	if _, err := s.Follow(ctx, Key{Conversation: "api:default:c2c:2", RequestID: "x"}, "", (&collected{}).emit); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no stream: %v", err)
	}
}

// A follower on another instance sees the stream live, every piece in
// order, then its end.
func TestFollowIsLive(t *testing.T) {
	s := newStore(t, Options{FlushInterval: 5 * time.Millisecond})
	ctx := context.Background()
	w := start(t, s)
	w.Piece("first ")
	var c collected
	done := make(chan error, 1)
	go func() {
		_, err := s.Follow(ctx, key, "", c.emit)
		done <- err
	}()
	for i := range 20 {
		w.Piece(fmt.Sprint(i, " "))
	}
	if !testenv.Eventually(5*time.Second, func() bool { return strings.Contains(c.String(), "1.21=19") }) {
		t.Fatalf("the follower saw %q", c.String())
	}
	commit(t, s, w, `{}`)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := c.String()
	if !strings.HasPrefix(got, "start:1.0 1.1=first  1.2=0 ") || !strings.HasSuffix(got, "1.21=19  end:1.22") {
		t.Fatalf("followed %q", got)
	}
}

// A producer that died mid-stream: its partial reply is never passed on,
// and the next attempt of the turn is followed whole, from its start.
func TestFollowNeverRelaysADeadProducer(t *testing.T) {
	s := newStore(t, Options{StallAfter: 300 * time.Millisecond, Block: 50 * time.Millisecond, FlushInterval: 5 * time.Millisecond})
	ctx := context.Background()
	dead := start(t, s)
	dead.Piece("half a ")
	dead.Piece("reply")
	dead.halt() // the instance dies: nothing more is written, not even a heartbeat
	var c collected
	if _, err := s.Follow(ctx, key, "", c.emit); !errors.Is(err, ErrStalled) || c.String() != "" {
		t.Fatalf("a dead producer: %v, relayed %q", err, c.String())
	}
	again, err := s.Start(ctx, key, nil)
	if err != nil || again.Attempt() != 2 {
		t.Fatalf("the second run: attempt %d, %v", again.Attempt(), err)
	}
	again.Piece("whole ")
	again.Piece("reply")
	commit(t, s, again, `{}`)
	var d collected
	if _, err := s.Follow(ctx, key, "1.1", d.emit); err != nil || d.String() != "start:2.0 2.1=whole  2.2=reply end:2.3" {
		t.Fatalf("after the restart: %q, %v", d.String(), err)
	}
}

// A producer waiting on a slow backend keeps its followers with
// heartbeats.
func TestHeartbeatsKeepASlowProducerAlive(t *testing.T) {
	s := newStore(t, Options{StallAfter: 300 * time.Millisecond, Block: 50 * time.Millisecond, FlushInterval: 10 * time.Millisecond})
	ctx := context.Background()
	w := start(t, s)
	var c collected
	done := make(chan error, 1)
	go func() {
		_, err := s.Follow(ctx, key, "", c.emit)
		done <- err
	}()
	time.Sleep(time.Second) // the thing under test: a backend silent for three times StallAfter
	w.Piece("late")
	commit(t, s, w, `{}`)
	if err := <-done; err != nil || c.String() != "start:1.0 1.1=late end:1.2" {
		t.Fatalf("%q, %v", c.String(), err)
	}
}
