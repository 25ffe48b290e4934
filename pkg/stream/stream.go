// Package stream keeps a streamed turn in Redis while it is made, so that
// a client that lost its connection resumes it on any instance, and others
// may follow it live: a Redis Stream per turn, written by the instance that
// runs the turn and read by whoever follows.
//
// The producer's own client gets every piece at once, straight from the
// backend; Redis gets them in batches (a Writer flushes every
// FlushInterval), so a streamed turn costs one write per batch, not per
// token, and a follower lags the producer by at most a batch. The end rides
// in the turn's commit round trip (Writer.End adds it to that pipeline).
//
// Each piece has an event id "<attempt>.<seq>": seq counts the pieces of
// one attempt from 1, and attempt counts the runs of the turn — a turn
// whose instance died is run again from the start by another one, as
// attempt 2, in the same stream. A follower that resumes after an id of an
// older attempt gets the newest attempt whole, announced by its start.
//
// Keys, for prefix "bf", conversation key "api:default:c2c:42", request id
// "api:default|k1" and the tenant's namespace "api:default":
//
//	bf:{api:default:c2c:42}:stream:api:default|k1   the Redis Stream (entries below), expiring TTL after its end
//	bf:{sx:api:default}:k1                          string: the conversation key, to find the stream by its
//	                                                client id (GET /v1/chat/streams/{id}); same TTL
//
// Entries, by their field t: "start" (attempt, meta: the caller's JSON),
// "p" (s: the first piece's seq, p: the pieces as a JSON array), "end"
// (result: the caller's JSON) and "error" (code, message).
//
// Errors: Redis failures wrap ErrUnavailable; a stream that is not there
// (never started, expired, or another tenant's) is ErrNotFound; Follow
// returns ErrStalled when the stream makes no progress for StallAfter.
package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/redis/go-redis/v9"
)

// Options tune a Store. Zero values take the defaults named.
type Options struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// TTL keeps a finished stream for resumes and replays. Default 10m.
	TTL time.Duration
	// FlushInterval is how long pieces wait to be written together.
	// Default 25ms.
	FlushInterval time.Duration
	// StallAfter is how long a follower waits for the stream to move
	// before it gives up with ErrStalled (the producer died: its turn is
	// taken over after the memory lease). Default 6s.
	StallAfter time.Duration
	// Block is how long one blocking read waits. Default 1s.
	Block time.Duration
}

// DefaultOptions are the values zero options take; the configuration's
// defaults are these too.
func DefaultOptions() Options {
	return Options{Prefix: keyspace.DefaultPrefix, TTL: 10 * time.Minute, FlushInterval: 25 * time.Millisecond, StallAfter: 6 * time.Second, Block: time.Second}
}

func (o *Options) setDefaults() { defaults.Fill(o, DefaultOptions()) }

var (
	// ErrUnavailable wraps every failure to reach Redis.
	ErrUnavailable = fault.New(http.StatusServiceUnavailable, "store_unavailable",
		"the stream store (Redis) is unavailable", fault.Retry(time.Second))
	// ErrNotFound is a stream that is not there: never started, expired, or
	// another tenant's.
	ErrNotFound = fault.New(http.StatusNotFound, "stream_not_found",
		"no such stream: it never started, it expired, or it is not yours")
	// ErrStalled is a stream that stopped moving: its producer died.
	ErrStalled = fault.New(http.StatusServiceUnavailable, "stream_interrupted",
		"the stream stopped: the instance producing it died; send the request again with the same Idempotency-Key to have it run again", fault.Retry(time.Second))
)

// Store is the fleet's turn streams in Redis. It is safe for concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	opts Options
}

// New returns a Store on rdb.
func New(rdb redis.UniversalClient, opts Options) *Store {
	opts.setDefaults()
	return &Store{rdb: rdb, opts: opts}
}

// Key names one turn's stream: its conversation's memory key, the turn's
// request id, and the client's own id with the tenant's namespace for the
// index.
type Key struct {
	Conversation string
	RequestID    string
	Namespace    string
	ClientID     string
}

func (s *Store) streamKey(k Key) string {
	return s.opts.Prefix + ":{" + k.Conversation + "}:stream:" + k.RequestID
}

func (s *Store) indexKey(namespace, clientID string) string {
	return s.opts.Prefix + ":{sx:" + namespace + "}:" + clientID
}

// Lookup finds a stream by the client's id within a tenant's namespace.
func (s *Store) Lookup(ctx context.Context, namespace, clientID string) (conversation string, err error) {
	conv, err := s.rdb.Get(ctx, s.indexKey(namespace, clientID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return conv, nil
}

// Event is one event of a stream, as a follower sees it.
type Event struct {
	// Kind is "start", "piece", "end" or "error".
	Kind string
	// ID is the event id: "<attempt>.<seq>" for a piece, "<attempt>.0" for
	// a start; the end's and error's ids follow the last piece's.
	ID string
	// Attempt is the run of the turn the event belongs to.
	Attempt int
	// Text is a piece's text.
	Text string
	// Data is the start's meta or the end's result, as the producer gave
	// them.
	Data []byte
	// Code and Message describe an error.
	Code, Message string
}

// ParseID splits an event id; ok is false for anything else.
func ParseID(id string) (attempt, seq int, ok bool) {
	a, q, found := strings.Cut(id, ".")
	if !found {
		return 0, 0, false
	}
	attempt, err1 := strconv.Atoi(a)
	seq, err2 := strconv.Atoi(q)
	return attempt, seq, err1 == nil && err2 == nil && attempt > 0 && seq >= 0
}

func eventID(attempt, seq int) string {
	return strconv.Itoa(attempt) + "." + strconv.Itoa(seq)
}

// startScript: KEYS stream, index; ARGV meta, ttl ms, conversation, with
// index. Adds the start of the next attempt and returns its number.
var startScript = redis.NewScript(`
local n = 1
local last = redis.call('XREVRANGE', KEYS[1], '+', '-')
for _, e in ipairs(last) do
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'attempt' then n = tonumber(f[i + 1]) + 1; break end
  end
  if n > 1 then break end
end
redis.call('XADD', KEYS[1], '*', 't', 'start', 'attempt', n, 'meta', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
`)

// Writer writes one attempt of a turn's stream. Its methods are for one
// goroutine.
type Writer struct {
	s       *Store
	key     string
	index   string
	attempt int
	seq     int

	mu      sync.Mutex
	pending []string
	first   int // seq of pending[0]
	flushed chan struct{}
	stop    chan struct{}
}

// Start begins the next attempt of a turn's stream with meta (the
// caller's JSON, handed to followers) and indexes it by the client's id.
// Stream and index live for TTL from here; End and Fail renew them.
func (s *Store) Start(ctx context.Context, k Key, meta []byte) (*Writer, error) {
	key := s.streamKey(k)
	pipe := s.rdb.Pipeline()
	n := startScript.Run(ctx, pipe, []string{key}, meta, s.opts.TTL.Milliseconds())
	if k.ClientID != "" {
		pipe.Set(ctx, s.indexKey(k.Namespace, k.ClientID), k.Conversation, s.opts.TTL)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			return s.startFull(ctx, k, meta)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	attempt, err := n.Int()
	if err != nil {
		return nil, fmt.Errorf("%w: start: %w", ErrUnavailable, err)
	}
	return s.newWriter(key, k, attempt), nil
}

// startFull is Start for a Redis that does not know the script yet.
func (s *Store) startFull(ctx context.Context, k Key, meta []byte) (*Writer, error) {
	key := s.streamKey(k)
	attempt, err := startScript.Run(ctx, s.rdb, []string{key}, meta, s.opts.TTL.Milliseconds()).Int()
	if err != nil {
		return nil, fmt.Errorf("%w: start: %w", ErrUnavailable, err)
	}
	if k.ClientID != "" {
		if err := s.rdb.Set(ctx, s.indexKey(k.Namespace, k.ClientID), k.Conversation, s.opts.TTL).Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return s.newWriter(key, k, attempt), nil
}

func (s *Store) newWriter(key string, k Key, attempt int) *Writer {
	w := &Writer{s: s, key: key, attempt: attempt, first: 1, flushed: make(chan struct{}), stop: make(chan struct{})}
	if k.ClientID != "" {
		w.index = s.indexKey(k.Namespace, k.ClientID)
	}
	go w.flusher()
	return w
}

// Attempt is this run's number.
func (w *Writer) Attempt() int { return w.attempt }

// StartID is the id of this attempt's start event.
func (w *Writer) StartID() string { return eventID(w.attempt, 0) }

// Piece queues a piece for the next batch and returns its event id.
func (w *Writer) Piece(text string) string {
	w.seq++
	w.mu.Lock()
	w.pending = append(w.pending, text)
	w.mu.Unlock()
	return eventID(w.attempt, w.seq)
}

// flusher writes the pending pieces every FlushInterval until End or
// Fail; while there are none for a third of StallAfter (a backend slow to
// begin), it writes a heartbeat, so that followers know the producer lives.
func (w *Writer) flusher() {
	defer close(w.flushed)
	t := time.NewTicker(w.s.opts.FlushInterval)
	defer t.Stop()
	wrote := time.Now()
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			pipe := w.s.rdb.Pipeline()
			n := w.take(ctx, pipe)
			if n == 0 && now.Sub(wrote) > w.s.opts.StallAfter/3 {
				pipe.XAdd(ctx, &redis.XAddArgs{Stream: w.key, Values: []any{"t", "hb"}})
			}
			if pipe.Len() > 0 {
				wrote = now
				if _, err := pipe.Exec(ctx); err == nil {
					w.written(n)
				} // else the batch stays pending: written with the next, or by End
			}
			cancel()
		}
	}
}

// take adds the pending pieces, if any, to pipe as one entry and returns
// how many; they stay pending until written reports them written.
func (w *Writer) take(ctx context.Context, pipe redis.Pipeliner) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 {
		return 0
	}
	b, _ := json.Marshal(w.pending)
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: w.key, Values: []any{"t", "p", "s", w.first, "p", b}})
	return len(w.pending)
}

// written drops the first n pending pieces, now in Redis.
func (w *Writer) written(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.first += n
	w.pending = append(w.pending[:0], w.pending[n:]...)
}

// halt stops the flusher and waits for its last write.
func (w *Writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.flushed
}

// End stops the writer and returns what ends the stream — the pieces not
// yet written, the end entry with result (the caller's JSON) and the
// stream's and index's TTL — to be added to the turn's commit pipeline.
func (w *Writer) End(result []byte) func(redis.Pipeliner) {
	w.halt()
	return func(pipe redis.Pipeliner) {
		ctx := context.Background()
		w.take(ctx, pipe)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: w.key, Values: []any{"t", "end", "result", result}})
		w.expire(ctx, pipe)
	}
}

// expire keeps the stream and its index for TTL from now.
func (w *Writer) expire(ctx context.Context, pipe redis.Pipeliner) {
	pipe.PExpire(ctx, w.key, w.s.opts.TTL)
	if w.index != "" {
		pipe.PExpire(ctx, w.index, w.s.opts.TTL)
	}
}

// Fail stops the writer and ends the stream with an error, so that
// followers stop waiting; best effort.
func (w *Writer) Fail(code, message string) {
	w.halt()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := w.s.rdb.Pipeline()
	w.take(ctx, pipe)
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: w.key, Values: []any{"t", "error", "code", code, "message", message}})
	w.expire(ctx, pipe)
	_, _ = pipe.Exec(ctx)
}
