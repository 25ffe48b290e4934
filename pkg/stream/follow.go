package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Follow sends the events of a turn's stream that come after the event id
// after ("" for all) to emit — what is there, then live as it grows —
// until its end or error event, which it sends too and returns. Of an
// older attempt than the newest, the newest is sent whole, from its start.
//
// Of a stream still being written, nothing is sent until its producer
// shows it lives — an entry written after Follow began (a batch of
// pieces, or its heartbeat) — so that a dead producer's partial reply is
// never passed on: Follow returns ErrStalled without sending anything,
// and the caller may run the turn again from the start.
//
// It returns ErrNotFound when there is no stream, ErrStalled when it stops
// moving for StallAfter, emit's error, or the context's.
func (s *Store) Follow(ctx context.Context, k Key, after string, emit func(Event) error) (Event, error) {
	f := follower{s: s, key: s.streamKey(k), emit: emit, cursor: "0"}
	f.afterAttempt, f.afterSeq, _ = ParseID(after)
	moved := time.Now()
	var held []redis.XMessage // entries read before the producer showed it lives
	for first := true; ; first = false {
		var entries []redis.XMessage
		var err error
		if first {
			entries, err = s.rdb.XRange(ctx, f.key, "-", "+").Result()
			if err == nil && len(entries) == 0 {
				return Event{}, ErrNotFound
			}
		} else {
			var res []redis.XStream
			res, err = s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{f.key, f.cursor}, Block: s.opts.Block}).Result()
			if len(res) > 0 {
				entries = res[0].Messages
			}
			if errors.Is(err, redis.Nil) {
				err = nil
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			return Event{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if first {
			f.newest = newestAttempt(entries)
			if !ended(entries) {
				held = entries
				f.cursor = entries[len(entries)-1].ID
				continue
			}
		} else if held != nil && len(entries) > 0 {
			entries, held = append(held, entries...), nil
		}
		for _, e := range entries {
			f.cursor = e.ID
			end, err := f.entry(e)
			if err != nil || end != nil {
				if end == nil {
					end = &Event{}
				}
				return *end, err
			}
		}
		if len(entries) > 0 {
			moved = time.Now()
		} else if time.Since(moved) > s.opts.StallAfter {
			return Event{}, ErrStalled
		}
	}
}

// follower turns stream entries into the events a caller wants.
type follower struct {
	s      *Store
	key    string
	emit   func(Event) error
	cursor string
	// newest is the newest attempt in the stream when following began;
	// older attempts' entries are skipped.
	newest int
	// attempt is the attempt whose entries are being read.
	attempt int
	// afterAttempt.afterSeq is the last event the caller has seen.
	afterAttempt, afterSeq int
}

// entry handles one entry; it returns the end or error event when the
// stream is over.
func (f *follower) entry(e redis.XMessage) (*Event, error) {
	field := func(name string) string { v, _ := e.Values[name].(string); return v }
	switch field("t") {
	case "start":
		f.attempt, _ = strconv.Atoi(field("attempt"))
		if f.attempt < f.newest {
			return nil, nil
		}
		if f.attempt == f.afterAttempt {
			return nil, nil // the caller has seen this start
		}
		f.afterSeq = 0
		return nil, f.emit(Event{Kind: "start", ID: eventID(f.attempt, 0), Attempt: f.attempt, Data: []byte(field("meta"))})
	case "p":
		if f.attempt < f.newest {
			return nil, nil
		}
		var pieces []string
		if err := json.Unmarshal([]byte(field("p")), &pieces); err != nil {
			return nil, fmt.Errorf("stream: entry %s of %s: %w", e.ID, f.key, err)
		}
		seq, _ := strconv.Atoi(field("s"))
		for i, p := range pieces {
			n := seq + i
			if f.attempt == f.afterAttempt && n <= f.afterSeq {
				continue
			}
			if err := f.emit(Event{Kind: "piece", ID: eventID(f.attempt, n), Attempt: f.attempt, Text: p}); err != nil {
				return nil, err
			}
		}
		f.last(seq + len(pieces) - 1)
	case "end":
		if f.attempt < f.newest {
			return nil, nil
		}
		ev := Event{Kind: "end", ID: eventID(f.attempt, f.lastSeq()+1), Attempt: f.attempt, Data: []byte(field("result"))}
		return &ev, f.emit(ev)
	case "error":
		if f.attempt < f.newest {
			return nil, nil
		}
		ev := Event{Kind: "error", ID: eventID(f.attempt, f.lastSeq()+1), Attempt: f.attempt, Code: field("code"), Message: field("message")}
		return &ev, f.emit(ev)
	}
	return nil, nil
}

func (f *follower) last(seq int) {
	if seq > f.afterSeq || f.attempt != f.afterAttempt {
		f.afterAttempt, f.afterSeq = f.attempt, seq
	}
}

func (f *follower) lastSeq() int {
	if f.attempt == f.afterAttempt {
		return f.afterSeq
	}
	return 0
}

// ended reports whether the last entry ends the stream.
func ended(entries []redis.XMessage) bool {
	t, _ := entries[len(entries)-1].Values["t"].(string)
	return t == "end" || t == "error"
}

// newestAttempt is the number of the stream's last start entry.
func newestAttempt(entries []redis.XMessage) int {
	for i := len(entries) - 1; i >= 0; i-- {
		if t, _ := entries[i].Values["t"].(string); t == "start" {
			n, _ := strconv.Atoi(entries[i].Values["attempt"].(string))
			return n
		}
	}
	return 0
}
