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
	rdb redis.UniversalClient
	// cluster is rdb when it is a Cluster client.
	cluster *redis.ClusterClient
	opts    Options
	waker   *waker
	ticket  string
	seq     atomic.Uint64
	metrics *metrics
}

// New returns a Store on rdb: a standalone, Sentinel (failover) or Cluster
// client of Redis 7.0 or newer. Close ends the wake-up subscriptions it
// makes while turns wait (rdb stays open). ctx is not used.
func New(_ context.Context, rdb redis.UniversalClient, opts Options) *Store {
	opts.setDefaults()
	var b [6]byte
	_, _ = rand.Read(b[:])
	s := &Store{rdb: rdb, opts: opts, waker: newWaker(rdb), ticket: hex.EncodeToString(b[:]) + "-", metrics: newMetrics(opts.Registerer)}
	s.cluster, _ = rdb.(*redis.ClusterClient)
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
	res, _, err := s.run(ctx, script, k, args, also, false)
	return res, err
}

// run is eval, and with wait also WAITs for Options.WaitReplicas replicas
// in the same round trip and returns how many confirmed. WAIT counts the
// writes of its own connection, so it must follow the script on one
// connection to the node that ran it: on a Cluster the pipeline goes to the
// master of the conversation's slot itself (a Cluster pipeline would route
// the keyless WAIT to any node), and also's commands, whose keys may live
// elsewhere, go in a Cluster pipeline of their own, sent at the same time.
func (s *Store) run(ctx context.Context, script *redis.Script, k *keys, args []any, also func(redis.Pipeliner), wait bool) ([]any, int64, error) {
	for full := false; ; full = true {
		pipe := s.rdb.Pipeline()
		var side redis.Pipeliner
		if wait && s.cluster != nil {
			node, err := s.cluster.MasterForKey(ctx, k[kQueue])
			if err != nil {
				return nil, 0, unavailable(ctx, err)
			}
			pipe = node.Pipeline()
			if also != nil {
				side = s.rdb.Pipeline()
				also(side)
			}
		} else if also != nil {
			also(pipe)
		}
		var cmd *redis.Cmd
		if full {
			cmd = script.Eval(ctx, pipe, k[:], args...)
		} else {
			cmd = script.EvalSha(ctx, pipe, k[:], args...)
		}
		var waited *redis.IntCmd
		if wait {
			waited = redis.NewIntCmd(ctx, "wait", s.opts.WaitReplicas, s.opts.WaitReplicasTimeout.Milliseconds())
			_ = pipe.Process(ctx, waited)
		}
		sideDone := make(chan struct{})
		if side != nil {
			go func() { _, _ = side.Exec(ctx); close(sideDone) }()
		} else {
			close(sideDone)
		}
		_, _ = pipe.Exec(ctx)
		<-sideDone
		err := cmd.Err()
		if err != nil && !full && redis.HasErrorPrefix(err, "NOSCRIPT") {
			continue
		}
		if err != nil {
			if wait && s.cluster != nil {
				// The node may have failed over or lost the slot: look again.
				s.cluster.ReloadState(ctx)
			}
			return nil, 0, unavailable(ctx, err)
		}
		res, err := cmd.Slice()
		if err != nil || len(res) == 0 {
			return nil, 0, fmt.Errorf("%w: unexpected script reply %v: %v", ErrUnavailable, res, err)
		}
		var replicas int64
		if waited != nil {
			replicas, _ = waited.Result()
		}
		return res, replicas, nil
	}
}

// unavailable wraps a failure to reach Redis, unless ctx ended.
func unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return storeError(err)
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
