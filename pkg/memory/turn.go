package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Request names the turn Begin starts.
type Request struct {
	// Conversation is the conversation key, e.g. "c2c:42"; it must not
	// contain '{' or '}'.
	Conversation string
	// ID is the request id that makes the turn idempotent.
	ID string
	// Fingerprint identifies the request's content; a repeat of ID with
	// another fingerprint is ErrConflict.
	Fingerprint string
	// Peek, when set, is a key read in Begin's round trip (the response
	// cache); its value is in Turn.Peeked.
	Peek string
	// Follow makes Begin return at once, with Turn.InProgress set, when
	// the same request is in progress elsewhere, instead of waiting for it:
	// for a caller that can follow its progress (a streamed turn).
	Follow bool
}

// Put is a key written in Commit's round trip (the response cache).
type Put struct {
	Key   string
	Value []byte
	TTL   time.Duration
}

// Turn is a turn that Begin started: either a replay of a finished request
// (Replay set, nothing held) or the right to run the conversation's next
// turn, which the caller ends with Commit or Abort.
type Turn struct {
	// Replay is the stored outcome when the request finished before.
	Replay *Record
	// History is the conversation's memory, oldest first.
	History []Entry
	// Number is this turn's 1-based number in the conversation.
	Number int
	// Peeked is the value of Request.Peek, nil when absent.
	Peeked []byte
	// InProgress is true when, with Request.Follow, the request is in
	// progress elsewhere; nothing is held.
	InProgress bool

	s      *Store
	k      keys
	wake   string
	ticket string

	mu    sync.Mutex
	done  bool
	timer *time.Timer
}

// Begin waits until the request may run — in arrival order behind the
// conversation's other turns, across the fleet — and returns its Turn with
// the conversation's history. A request that finished before returns at
// once with Replay set; one in progress elsewhere is waited for and then
// replayed, or taken over if its holder died.
func (s *Store) Begin(ctx context.Context, r Request) (*Turn, error) {
	ctx, span := tracer.Start(ctx, "memory.begin")
	start := time.Now()
	t, polls, err := s.begin(ctx, r)
	s.metrics.waited(span, t, err, polls, time.Since(start))
	return t, err
}

// begin is Begin; it also returns how many times it asked Redis.
func (s *Store) begin(ctx context.Context, r Request) (_ *Turn, polls int, _ error) {
	t := &Turn{s: s, k: s.keys(r.Conversation, r.ID), wake: s.wakeChannel(r.Conversation), ticket: s.newTicket()}
	wake := s.waker.register(t.ticket)
	defer s.waker.unregister(t.ticket, wake)
	var reqWake chan struct{}
	var release func()
	defer func() {
		if release != nil {
			release()
		}
	}()
	deadline := time.NewTimer(s.opts.WaitTimeout)
	defer deadline.Stop()
	args := []any{t.ticket, s.opts.Lease.Milliseconds(), r.Fingerprint, s.opts.MaxEntries, s.opts.IdleTTL.Milliseconds()}
	peek := r.Peek
	for {
		var peeked *redis.StringCmd
		var also func(redis.Pipeliner)
		if peek != "" {
			also = func(p redis.Pipeliner) { peeked = p.Get(ctx, peek) }
		}
		res, err := s.eval(ctx, acquireScript, &t.k, args, also)
		polls++
		if err != nil {
			t.abortQuietly()
			return nil, polls, err
		}
		if peeked != nil {
			if b, err := peeked.Bytes(); err == nil {
				t.Peeked = b
			}
			peek = ""
		}
		var wait time.Duration
		switch str(res[0]) {
		case "granted":
			if len(res) < 3 {
				return nil, polls, fmt.Errorf("%w: short acquire reply", ErrUnavailable)
			}
			raw, _ := res[2].([]any)
			t.History = make([]Entry, len(raw))
			for i, e := range raw {
				if err := decodeEntry(str(e), &t.History[i]); err != nil {
					t.abortQuietly()
					return nil, polls, fmt.Errorf("memory: entry %d of %s: %w", i, r.Conversation, err)
				}
			}
			t.Number = int(num(res[1])) + 1
			t.timer = time.AfterFunc(s.opts.Lease/3, t.renew)
			return t, polls, nil
		case "done":
			if err := t.confirm(ctx); err != nil {
				return nil, polls, err
			}
			return &Turn{Replay: &Record{Turn: int(num(res[1])), Payload: []byte(str(res[2]))}}, polls, nil
		case "conflict":
			t.abortQuietly()
			return nil, polls, ErrConflict
		case "inflight":
			if r.Follow {
				return &Turn{InProgress: true}, polls, nil
			}
			if reqWake == nil {
				reqWake = s.waker.register(t.k[kReq])
				defer s.waker.unregister(t.k[kReq], reqWake)
			}
			wait = min(time.Duration(num(res[1]))*time.Millisecond+5*time.Millisecond, s.opts.Lease/3)
		case "queued":
			wait = min(time.Duration(num(res[1]))*time.Millisecond+5*time.Millisecond, s.opts.Lease/3)
		default:
			return nil, polls, fmt.Errorf("%w: unexpected acquire reply %q", ErrUnavailable, str(res[0]))
		}
		if release == nil {
			// The first wait: listen for the conversation's wake-ups, then
			// ask again at once, so that a release between the two is not
			// missed. Only a turn that waits pays these round trips.
			release = s.waker.subscribe(ctx, t.wake)
			continue
		}
		poll := time.NewTimer(wait)
		select {
		case <-wake:
		case <-reqWake:
		case <-poll.C:
		case <-deadline.C:
			poll.Stop()
			t.abortQuietly()
			if str(res[0]) == "inflight" {
				return nil, polls, ErrInProgress
			}
			return nil, polls, ErrBusy
		case <-ctx.Done():
			poll.Stop()
			t.abortQuietly()
			return nil, polls, ctx.Err()
		}
		poll.Stop()
	}
}

// Commit appends the user message and the reply as this turn's entries,
// trims the history to MaxEntries, refreshes the conversation's idle TTL,
// stores payload as the request's outcome and releases the conversation to
// the next turn — in one round trip, together with put when it is not nil,
// the commands each also adds (a streamed turn's last pieces), and with
// Options.WaitReplicas the WAIT for the replicas (ErrNotReplicated when
// too few confirm). A resent Commit (a lost reply) writes nothing twice.
func (t *Turn) Commit(ctx context.Context, user, assistant string, at time.Time, payload []byte, put *Put, also ...func(redis.Pipeliner)) error {
	if !t.finish() {
		return ErrLeaseLost
	}
	ts := at.Unix()
	u := appendEntry(make([]byte, 0, 24+len(user)), 'u', t.Number, ts, user)
	a := appendEntry(make([]byte, 0, 24+len(assistant)), 'a', t.Number, ts, assistant)
	o := t.s.opts
	args := []any{t.ticket, u, a, t.Number, o.MaxEntries, o.IdleTTL.Milliseconds(), o.IdempotencyTTL.Milliseconds(), payload, t.wake}
	extra := func(p redis.Pipeliner) {
		if put != nil {
			p.Set(ctx, put.Key, put.Value, put.TTL)
		}
		for _, f := range also {
			f(p)
		}
	}
	res, replicas, err := t.s.run(ctx, commitScript, &t.k, args, extra, o.WaitReplicas > 0)
	switch {
	case err != nil:
		return err
	case str(res[0]) == "lost":
		return ErrLeaseLost
	case replicas < int64(o.WaitReplicas):
		return fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, replicas, o.WaitReplicas, o.WaitReplicasTimeout)
	}
	return nil
}

// Abort gives the conversation up without writing: the next turn runs, and
// a repeat of this request may run again. It does nothing after Commit and
// for a replay, so callers may defer it.
func (t *Turn) Abort() {
	if t.finish() {
		t.abortQuietly()
	}
}

func (t *Turn) abortQuietly() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = t.s.eval(ctx, abortScript, &t.k, []any{t.ticket, t.wake}, nil)
}

// confirm makes sure, with Options.WaitReplicas, that the replicas hold
// the finished request Begin is about to replay: its commit may have been
// answered ErrNotReplicated, and a replay must not hand out a turn that a
// failover could still lose. One more round trip, on replays only: a write
// and the WAIT that counts it (replication is one ordered stream, so a
// replica that has this write has the commit before it).
func (t *Turn) confirm(ctx context.Context) error {
	o := t.s.opts
	if o.WaitReplicas <= 0 {
		return nil
	}
	_, replicas, err := t.s.run(ctx, confirmScript, &t.k, nil, nil, true)
	switch {
	case err != nil:
		return err
	case replicas < int64(o.WaitReplicas):
		return fmt.Errorf("%w: the replayed turn: %d of %d within %v", ErrNotReplicated, replicas, o.WaitReplicas, o.WaitReplicasTimeout)
	}
	return nil
}

// finish stops lease renewal; it reports false when the turn had already
// finished or lost its lease.
func (t *Turn) finish() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done || t.timer == nil {
		return false
	}
	t.done = true
	t.timer.Stop()
	return true
}

// renew extends the lease while the turn runs (from a timer every Lease/3).
func (t *Turn) renew() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.s.opts.Lease/3)
	defer cancel()
	res, err := t.s.eval(ctx, renewScript, &t.k, []any{t.ticket, t.s.opts.Lease.Milliseconds()}, nil)
	if err == nil && num(res[0]) == 0 {
		t.done = true
		return
	}
	t.timer.Reset(t.s.opts.Lease / 3)
}
