// Package memory keeps conversation memory in Redis and runs the fleet-wide
// part of a chat turn: request idempotency, one turn at a time per
// conversation in arrival order, and the history the turn answers from.
//
// A turn costs two round trips on the hot path: Store.Begin (one script:
// idempotency check, FIFO lock, history load) and Turn.Commit (one script:
// append, trim, refresh TTLs, record the reply, release the lock — and,
// with Options.WaitReplicas, the WAIT for the replicas in the same round
// trip). A turn that has to wait for its conversation pays more: it
// subscribes to the conversation's wake-up channel and asks again.
//
// It runs on a standalone Redis, a Sentinel set or a Cluster (Redis 7.0 or
// newer: the wake-ups are sharded pub/sub). Every key of one conversation,
// and its wake-up channel, shares a Redis Cluster hash tag, so each script
// touches a single slot. The layout, for prefix "bf" and conversation
// "c2c:42":
//
//	bf:{c2c:42}:msgs       list of entries ("u3:1795458811:text", see entry.go), oldest first, trimmed to MaxEntries
//	bf:{c2c:42}:meta       hash: n = number of the last committed turn
//	bf:{c2c:42}:queue      list of tickets waiting for the conversation; the head holds it
//	bf:{c2c:42}:lease      hash: ticket -> lease deadline (Redis server time, ms)
//	bf:{c2c:42}:req:<id>   hash: o = owner ticket while in progress, f = fingerprint,
//	                       w = someone waits, t = turn, r = stored reply once done
//	bf:{c2c:42}:wake       sharded pub/sub channel (SPUBLISH): a ticket that became the head,
//	                       or a request key that finished
//
// # Errors
//
// Begin and Commit return ErrUnavailable (wrapped with the cause) when
// Redis cannot be reached, ErrConflict for a request id reused with another
// message, ErrBusy or ErrInProgress after WaitTimeout, ErrLeaseLost when a
// turn lost its conversation before Commit (nothing was written), and
// ErrNotReplicated (an ErrUnavailable) when the replicas did not confirm a
// commit, or the context's error.
//
// # Across a failover
//
// Redis replicates asynchronously: a write the master acknowledged may not
// have reached the replica that Sentinel or Cluster promotes when the master
// dies, and go-redis resends a command whose reply was lost, perhaps to the
// new master. What the fleet guarantees then:
//
//   - Never doubled. Every script is idempotent under a resend (acquire by
//     its ticket, commit by the request's record, abort and renew by the
//     queue's head), and Redis replicates a script's writes as one
//     transaction, so a replica holds a turn wholly or not at all. A turn
//     is in memory at most once, and no two entries of a conversation share
//     a turn number and role.
//   - An answered turn may be lost, with WaitReplicas 0 (the default): a
//     turn committed on the old master in its last moments — within the
//     replication lag, typically under a millisecond — is answered but
//     missing after the failover. Its number is then given to the next
//     turn, and a repeat of its request id runs it again (a second backend
//     call) once its in-progress mark expires, instead of replaying it.
//   - With WaitReplicas N, a turn is answered only once N replicas hold it;
//     else Commit returns ErrNotReplicated and the caller answers an error
//     (the turn may still be in memory: a repeat of its request id replays
//     it if it stayed, or runs it again if it was lost). An answered turn
//     survives a failover whose promoted replica is one of those that
//     confirmed — Sentinel and Cluster promote the most up-to-date replica,
//     so with N equal to the number of replicas it always is. The price is
//     a wait for the slowest of N replicas on every commit, and no commit
//     at all while fewer than N are connected (after a failover, until the
//     failed node is back as a replica).
//   - One at a time, for what is written: a lease granted by the old master
//     and lost with it lets the next turn start beside the one that held
//     it, but only one of them commits (the other gets ErrLeaseLost).
//   - The failover window — from the master's death until the new master
//     serves (Sentinel's down-after-milliseconds or Cluster's
//     cluster-node-timeout, plus the election) — fails turns with
//     ErrUnavailable or ErrLeaseLost; waiting turns poll; afterwards the
//     same Store and client continue without a restart.
package memory

import (
	"fmt"
	"net/http"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/prometheus/client_golang/prometheus"
)

// Entry is one message in a conversation's memory.
type Entry struct {
	// Role is "user" or "assistant".
	Role string `json:"role"`
	// Content is the message text.
	Content string `json:"content"`
	// Turn is the 1-based number of the turn the entry belongs to.
	Turn int `json:"turn"`
	// Time is when the entry was written, in Unix seconds.
	Time int64 `json:"time"`
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
	// WaitReplicas, when above 0, makes Commit wait in its round trip
	// (WAIT) until that many replicas of the conversation's master hold
	// the turn, and return ErrNotReplicated when fewer do within
	// WaitReplicasTimeout: an answered turn then survives a failover.
	// Default 0: Commit returns once the master has it.
	WaitReplicas int
	// WaitReplicasTimeout bounds that wait; it must be shorter than the
	// client's read timeout. Default DefaultWaitReplicasTimeout.
	WaitReplicasTimeout time.Duration
	// Registerer, when set, gets the store's metrics (see metrics.go).
	Registerer prometheus.Registerer
}

// DefaultOptions are the values zero options take; the configuration's
// defaults are these too.
func DefaultOptions() Options {
	return Options{Prefix: keyspace.DefaultPrefix, MaxEntries: 100, IdleTTL: 30 * time.Minute, Lease: 5 * time.Second,
		WaitTimeout: 30 * time.Second, IdempotencyTTL: 24 * time.Hour}
}

// DefaultWaitReplicasTimeout is Options.WaitReplicasTimeout's default.
const DefaultWaitReplicasTimeout = 500 * time.Millisecond

func (o *Options) setDefaults() {
	defaults.Fill(o, DefaultOptions())
	if o.WaitReplicasTimeout <= 0 {
		o.WaitReplicasTimeout = DefaultWaitReplicasTimeout
	}
}

// The errors of Begin, Commit and History; each is classified (pkg/fault)
// with the status and code callers answer it with. Redis failures wrap
// ErrUnavailable, or ErrFull when Redis refuses writes at maxmemory.
var (
	// ErrUnavailable wraps every failure to reach Redis.
	ErrUnavailable = fault.New(http.StatusServiceUnavailable, "store_unavailable",
		"conversation memory (Redis) is unavailable", fault.Retry(time.Second))
	// ErrFull means Redis refused a write because it reached maxmemory
	// (with the noeviction policy): the store answers but cannot keep more.
	ErrFull = fault.New(http.StatusServiceUnavailable, "store_full",
		"conversation memory (Redis) is full: it refuses writes at maxmemory", fault.Retry(5*time.Second))
	// ErrConflict means the request id was used before with another message.
	ErrConflict = fault.New(http.StatusConflict, "idempotency_conflict",
		"this request id was already used with a different message")
	// ErrBusy means the conversation stayed held by other turns past WaitTimeout.
	ErrBusy = fault.New(http.StatusServiceUnavailable, "conversation_busy",
		"the conversation is busy; retry", fault.Retry(time.Second))
	// ErrInProgress means the same request stayed in progress elsewhere past WaitTimeout.
	ErrInProgress = fault.New(http.StatusConflict, "request_in_progress",
		"this request id is still being processed; retry later", fault.Retry(time.Second))
	// ErrLeaseLost means the turn's lease ran out before Commit and another
	// turn took the conversation; nothing was written.
	ErrLeaseLost = fault.New(http.StatusServiceUnavailable, "conversation_busy",
		"the turn lost its hold on the conversation before it could be stored; retry", fault.Retry(time.Second))
	// ErrNotReplicated means Commit wrote the turn on the master but fewer
	// than Options.WaitReplicas replicas confirmed it in time: it may be
	// lost in a failover. A repeat of the request replays it if it stayed,
	// or runs it again if it was lost. It wraps ErrUnavailable.
	ErrNotReplicated = fmt.Errorf("%w: turn not confirmed by enough replicas", ErrUnavailable)
)

// storeError wraps a Redis failure in ErrFull or ErrUnavailable.
func storeError(err error) error {
	if fault.RedisFull(err) {
		return fmt.Errorf("%w: %w", ErrFull, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
