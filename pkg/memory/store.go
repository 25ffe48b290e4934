package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Store is conversation memory in Redis, shared by every instance of the
// fleet. It is safe for concurrent use.
type Store struct {
	rdb     redis.UniversalClient
	opts    Options
	channel string
	waker   *waker
	ticket  string
	seq     atomic.Uint64
	metrics *metrics
}

// New returns a Store on rdb. It subscribes to the fleet's wake-up channel;
// Close ends that subscription (rdb stays open).
func New(ctx context.Context, rdb redis.UniversalClient, opts Options) *Store {
	opts.setDefaults()
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := &Store{rdb: rdb, opts: opts, channel: opts.Prefix + ":wake", ticket: hex.EncodeToString(b[:]) + "-", metrics: newMetrics(opts.Registerer)}
	s.waker = newWaker(rdb.Subscribe(ctx, s.channel))
	return s
}

// Options returns the options in force, defaults filled in.
func (s *Store) Options() Options { return s.opts }

// Close ends the wake-up subscription.
func (s *Store) Close() error { return s.waker.close() }

// History returns the entries a conversation keeps, oldest first.
func (s *Store) History(ctx context.Context, conversation string) ([]Entry, error) {
	raw, err := s.rdb.LRange(ctx, s.HistoryKey(conversation), 0, -1).Result()
	if err != nil {
		return nil, storeError(err)
	}
	entries := make([]Entry, len(raw))
	for i, r := range raw {
		if err := decodeEntry(r, &entries[i]); err != nil {
			return nil, fmt.Errorf("memory: entry %d of %s: %w", i, conversation, err)
		}
	}
	return entries, nil
}

func (s *Store) newTicket() string {
	return s.ticket + strconv.FormatUint(s.seq.Add(1), 36)
}

// eval runs script, and the commands also adds, in one round trip. A
// script that the server does not know (a restarted Redis) is sent again
// in full.
func (s *Store) eval(ctx context.Context, script *redis.Script, k *keys, args []any, also func(redis.Pipeliner)) ([]any, error) {
	for full := false; ; full = true {
		pipe := s.rdb.Pipeline()
		var cmd *redis.Cmd
		if full {
			cmd = script.Eval(ctx, pipe, k[:], args...)
		} else {
			cmd = script.EvalSha(ctx, pipe, k[:], args...)
		}
		if also != nil {
			also(pipe)
		}
		_, _ = pipe.Exec(ctx)
		err := cmd.Err()
		if err != nil && !full && redis.HasErrorPrefix(err, "NOSCRIPT") {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, storeError(err)
		}
		res, err := cmd.Slice()
		if err != nil || len(res) == 0 {
			return nil, fmt.Errorf("%w: unexpected script reply %v: %v", ErrUnavailable, res, err)
		}
		return res, nil
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}
