package queue

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// A dead letter requeued runs again on its own stream with its own fields;
// one dropped is gone; both refuse an id that is not there.
func TestRequeueAndDropDeadLetters(t *testing.T) {
	q := newQueue(t, testenv.StartTopology(t, "standalone"))
	ctx := context.Background()
	var fail atomic.Bool
	fail.Store(true)
	ran := make(chan *Job, 4)
	start(t, q, ConsumerOptions{Workers: 1}, func(ctx context.Context, j *Job) error {
		if fail.Load() {
			return Permanent(errors.New("the platform refused it"))
		}
		ran <- j
		return nil
	})
	enqueue(t, q, Urgent, "first")
	enqueue(t, q, Batch, "second")
	var dead []DeadLetter
	testenv.WaitFor(t, 15*time.Second, "two dead letters", func() bool {
		var err error
		dead, err = q.DeadLetters(ctx, 10)
		return err == nil && len(dead) == 2
	})
	if dead[0].Fields["dead_reason"] == "" || dead[0].Fields["dead_stream"] != "urgent" {
		t.Fatalf("dead letter without its reason or stream: %+v", dead[0])
	}
	fail.Store(false)
	p, id, err := q.Requeue(ctx, dead[0].ID)
	if err != nil || p != Urgent || id == "" {
		t.Fatalf("requeue: %v %q %v", p, id, err)
	}
	j := <-ran
	if j.Priority != Urgent || j.Fields["key"] != "first" || len(j.Fields) != 1 || j.Deliveries != 1 {
		t.Fatalf("requeued job ran as %+v, want the urgent job with its own fields only, first delivery", j)
	}
	if _, _, err := q.Requeue(ctx, dead[0].ID); !errors.Is(err, ErrNoDeadLetter) {
		t.Fatalf("second requeue: %v, want ErrNoDeadLetter", err)
	}
	if err := q.Drop(ctx, dead[1].ID); err != nil {
		t.Fatalf("drop: %v", err)
	}
	if err := q.Drop(ctx, dead[1].ID); !errors.Is(err, ErrNoDeadLetter) {
		t.Fatalf("second drop: %v, want ErrNoDeadLetter", err)
	}
	for _, bad := range []string{"not-an-id", "0-1"} {
		if _, _, err := q.Requeue(ctx, bad); !errors.Is(err, ErrNoDeadLetter) {
			t.Errorf("requeue %q: %v, want ErrNoDeadLetter", bad, err)
		}
		if err := q.Drop(ctx, bad); !errors.Is(err, ErrNoDeadLetter) {
			t.Errorf("drop %q: %v, want ErrNoDeadLetter", bad, err)
		}
	}
	if st := stats(t, q); st.DeadLetters != 0 {
		t.Fatalf("dead letters left: %d", st.DeadLetters)
	}
}
