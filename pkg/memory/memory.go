// Package memory keeps conversation memory in Redis and runs the fleet-wide
// part of a chat turn: request idempotency, one turn at a time per
// conversation in arrival order, and the history the turn answers from.
//
// A turn costs two round trips on the hot path: Store.Begin (one script:
// idempotency check, FIFO lock, history load) and Turn.Commit (one script:
// append, trim, refresh TTLs, record the reply, release the lock).
//
// Every key of one conversation shares a Redis Cluster hash tag, so the
// scripts touch a single slot. The layout, for prefix "bf" and conversation
// "c2c:42":
//
//	bf:{c2c:42}:msgs       list of entries ("u3:1795458811:text", see entry.go), oldest first, trimmed to MaxEntries
//	bf:{c2c:42}:meta       hash: n = number of the last committed turn
//	bf:{c2c:42}:queue      list of tickets waiting for the conversation; the head holds it
//	bf:{c2c:42}:lease      hash: ticket -> lease deadline (Redis server time, ms)
//	bf:{c2c:42}:req:<id>   hash: o = owner ticket while in progress, f = fingerprint,
//	                       w = someone waits, t = turn, r = stored reply once done
package memory

import (
	"errors"
	"time"
)

// Entry is one message in a conversation's memory.
type Entry struct {
	// Role is "user" or "assistant".
	Role string
	// Content is the message text.
	Content string
	// Turn is the 1-based number of the turn the entry belongs to.
	Turn int
	// Time is when the entry was written, in Unix seconds.
	Time int64
}

// Record is the stored outcome of a finished request.
type Record struct {
	// Turn is the number the request's turn got.
	Turn int
	// Payload is what the caller stored with Commit, returned as is.
	Payload []byte
}

// Options tune a Store. Zero values take the defaults named on each field.
type Options struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// MaxEntries is how many entries a conversation keeps. Default 100.
	MaxEntries int
	// IdleTTL is how long an untouched conversation is kept. Default 30m.
	IdleTTL time.Duration
	// Lease is how long a turn holds its conversation without renewing; a
	// holder that dies blocks the conversation for at most this long.
	// The holder renews it every Lease/3. Default 5s.
	Lease time.Duration
	// WaitTimeout bounds how long Begin waits for the conversation or for
	// the same request in progress elsewhere. Default 30s.
	WaitTimeout time.Duration
	// IdempotencyTTL is how long a finished request's reply is kept to
	// answer a repeat of it. Default 24h.
	IdempotencyTTL time.Duration
}

func (o *Options) setDefaults() {
	if o.Prefix == "" {
		o.Prefix = "bf"
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = 30 * time.Minute
	}
	if o.Lease <= 0 {
		o.Lease = 5 * time.Second
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 30 * time.Second
	}
	if o.IdempotencyTTL <= 0 {
		o.IdempotencyTTL = 24 * time.Hour
	}
}

var (
	// ErrUnavailable wraps every failure to reach Redis.
	ErrUnavailable = errors.New("memory: redis unavailable")
	// ErrConflict means the request id was used before with another message.
	ErrConflict = errors.New("memory: request id reused with a different message")
	// ErrBusy means the conversation stayed held by other turns past WaitTimeout.
	ErrBusy = errors.New("memory: conversation busy")
	// ErrInProgress means the same request stayed in progress elsewhere past WaitTimeout.
	ErrInProgress = errors.New("memory: request in progress elsewhere")
	// ErrLeaseLost means the turn's lease ran out before Commit and another
	// turn took the conversation; nothing was written.
	ErrLeaseLost = errors.New("memory: lease lost before commit")
)
