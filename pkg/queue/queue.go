// Package queue is the fleet's durable job queue: three Redis Streams, one
// per priority (urgent, normal, batch), read by every instance's workers in
// one consumer group. A job survives the death of the instance that took
// it: it stays in the group's pending list until it is acknowledged, and
// another instance reclaims it (XAUTOCLAIM) once it has been idle for
// ClaimIdle. A job that keeps failing goes to a dead-letter stream with its
// reason.
//
// Keys, for prefix "bf" (all on one Redis Cluster slot, hash tag {q}, so
// that one XREADGROUP can block on the three streams and one script can
// dedup and enqueue):
//
//	bf:{q}:urgent bf:{q}:normal bf:{q}:batch   the streams; a finished job is XACKed and XDELed
//	bf:{q}:dead                                 dead letters: the job's fields plus reason, stream, deliveries
//	bf:{q}:errors                               hash: entry id -> last failure, while the job is retried
//	bf:{q}:seen:<key>                           dedup marks written by Enqueue (SET NX with a TTL)
package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/redis/go-redis/v9"
)

// Priority is a job's channel.
type Priority string

// The three channels, most urgent first.
const (
	Urgent Priority = "urgent"
	Normal Priority = "normal"
	Batch  Priority = "batch"
)

// Priorities are the channels in the order workers take them.
var Priorities = []Priority{Urgent, Normal, Batch}

// Valid reports whether p is one of the three channels.
func (p Priority) Valid() bool { return p == Urgent || p == Normal || p == Batch }

// Group is the consumer group every instance reads in.
const Group = "botfleet"

// The queue's errors, classified (pkg/fault) for the webhook's answer:
// Redis failures wrap ErrUnavailable, or ErrFull when Redis refuses writes
// at maxmemory.
var (
	// ErrUnavailable wraps every failure to reach Redis.
	ErrUnavailable = fault.New(http.StatusServiceUnavailable, "store_unavailable",
		"the job queue (Redis) is unavailable", fault.Retry(time.Second))
	// ErrFull means Redis refused to queue a job at maxmemory.
	ErrFull = fault.New(http.StatusServiceUnavailable, "store_full",
		"the job queue (Redis) is full: it refuses writes at maxmemory", fault.Retry(5*time.Second))
)

// storeError wraps a Redis failure of op in ErrFull or ErrUnavailable.
func storeError(op string, err error) error {
	if fault.RedisFull(err) {
		return fmt.Errorf("%w: %s: %w", ErrFull, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// Queue is the fleet's queue in Redis. It is safe for concurrent use.
type Queue struct {
	rdb    redis.UniversalClient
	prefix string
	// DeadMaxLen caps the dead-letter stream (approximately).
	deadMaxLen int64
}

// New returns the queue under prefix (e.g. "bf") on rdb. deadMaxLen caps
// the dead-letter stream; 0 means 10000.
func New(rdb redis.UniversalClient, prefix string, deadMaxLen int64) *Queue {
	if prefix == "" {
		prefix = keyspace.DefaultPrefix
	}
	if deadMaxLen <= 0 {
		deadMaxLen = 10000
	}
	return &Queue{rdb: rdb, prefix: prefix, deadMaxLen: deadMaxLen}
}

// Stream returns the key of a priority's stream.
func (q *Queue) Stream(p Priority) string { return q.prefix + ":{q}:" + string(p) }

// DeadStream returns the key of the dead-letter stream.
func (q *Queue) DeadStream() string { return q.prefix + ":{q}:dead" }

func (q *Queue) errorsKey() string { return q.prefix + ":{q}:errors" }

func (q *Queue) seenKey(key string) string { return q.prefix + ":{q}:seen:" + key }

// priorityOf maps a stream key back to its priority.
func (q *Queue) priorityOf(stream string) Priority {
	return Priority(stream[strings.LastIndexByte(stream, ':')+1:])
}

// enqueueScript: KEYS seen, stream; ARGV ttl ms, then field, value pairs.
// Marks the dedup key and adds the job in one step, so a job is either
// queued and marked or neither: a platform's retry after a failed XADD is
// not mistaken for a duplicate.
var enqueueScript = redis.NewScript(`
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) == false then return false end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
return redis.call('XADD', KEYS[2], '*', unpack(fields))
`)

// Enqueue adds a job with fields to p's stream unless dedupKey was enqueued
// in the last dedupTTL, anywhere in the fleet. It returns the entry id, or
// duplicate true and no id.
func (q *Queue) Enqueue(ctx context.Context, p Priority, dedupKey string, dedupTTL time.Duration, fields map[string]string) (id string, duplicate bool, err error) {
	if !p.Valid() {
		return "", false, fmt.Errorf("queue: unknown priority %q", p)
	}
	args := make([]any, 0, 1+2*len(fields))
	args = append(args, dedupTTL.Milliseconds())
	for k, v := range fields {
		args = append(args, k, v)
	}
	res, err := enqueueScript.Run(ctx, q.rdb, []string{q.seenKey(dedupKey), q.Stream(p)}, args...).Result()
	if errors.Is(err, redis.Nil) {
		return "", true, nil
	}
	if err != nil {
		return "", false, storeError("enqueue", err)
	}
	id, _ = res.(string)
	return id, false, nil
}

// ensureGroups creates the consumer group on every stream (and the streams).
func (q *Queue) ensureGroups(ctx context.Context) error {
	for _, p := range Priorities {
		err := q.rdb.XGroupCreateMkStream(ctx, q.Stream(p), Group, "0").Err()
		if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			return storeError("create group on "+q.Stream(p), err)
		}
	}
	return nil
}

// StreamStats describe one priority's stream.
type StreamStats struct {
	Priority Priority `json:"priority"`
	// Depth is the number of unfinished jobs: waiting plus in progress
	// (finished jobs are deleted from the stream).
	Depth int64 `json:"depth"`
	// Pending is the number of jobs taken by a worker and not finished.
	Pending int64 `json:"pending"`
	// Lag is the number of jobs no worker has taken yet (Depth - Pending:
	// finished jobs are deleted, so the stream holds only these two kinds).
	Lag int64 `json:"lag"`
	// OldestAgeSeconds is the age of the oldest unfinished job, 0 if none.
	OldestAgeSeconds float64 `json:"oldest_age_seconds"`
}

// Stats are the whole queue's numbers, for /metrics and /admin/api/queues.
type Stats struct {
	Streams     []StreamStats `json:"streams"`
	DeadLetters int64         `json:"dead_letters"`
}

// Stats reads the queue's depth, pending jobs, lag, oldest age and dead
// letters in one round trip.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	pipe := q.rdb.Pipeline()
	type cmds struct {
		xlen   *redis.IntCmd
		groups *redis.XInfoGroupsCmd
		oldest *redis.XMessageSliceCmd
	}
	cs := make([]cmds, len(Priorities))
	for i, p := range Priorities {
		s := q.Stream(p)
		cs[i] = cmds{pipe.XLen(ctx, s), pipe.XInfoGroups(ctx, s), pipe.XRangeN(ctx, s, "-", "+", 1)}
	}
	dead := pipe.XLen(ctx, q.DeadStream())
	_, _ = pipe.Exec(ctx)
	now := time.Now()
	var st Stats
	for i, p := range Priorities {
		ss := StreamStats{Priority: p}
		n, err := cs[i].xlen.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return Stats{}, storeError("stats", err)
		}
		ss.Depth = n
		if groups, err := cs[i].groups.Result(); err == nil {
			for _, g := range groups {
				if g.Name == Group {
					ss.Pending = g.Pending
				}
			}
		}
		ss.Lag = max(0, ss.Depth-ss.Pending)
		if msgs, err := cs[i].oldest.Result(); err == nil && len(msgs) > 0 {
			if ms, ok := idTime(msgs[0].ID); ok {
				ss.OldestAgeSeconds = max(0, now.Sub(ms).Seconds())
			}
		}
		st.Streams = append(st.Streams, ss)
	}
	st.DeadLetters, _ = dead.Result()
	return st, nil
}

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
}

// DeadLetters returns up to n dead letters, oldest first.
func (q *Queue) DeadLetters(ctx context.Context, n int64) ([]DeadLetter, error) {
	msgs, err := q.rdb.XRangeN(ctx, q.DeadStream(), "-", "+", n).Result()
	if err != nil {
		return nil, storeError("dead letters", err)
	}
	out := make([]DeadLetter, len(msgs))
	for i, m := range msgs {
		out[i] = DeadLetter{ID: m.ID, Fields: stringFields(m.Values)}
	}
	return out, nil
}

// idTime is the time a stream entry id was made.
func idTime(id string) (time.Time, bool) {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(n), true
}

func stringFields(values map[string]any) map[string]string {
	out := make(map[string]string, len(values))
	for k, v := range values {
		s, _ := v.(string)
		out[k] = s
	}
	return out
}

// Peek returns up to n jobs of p's stream, oldest first, without taking them.
func (q *Queue) Peek(ctx context.Context, p Priority, n int64) ([]*Job, error) {
	msgs, err := q.rdb.XRangeN(ctx, q.Stream(p), "-", "+", n).Result()
	if err != nil {
		return nil, storeError("peek", err)
	}
	out := make([]*Job, len(msgs))
	for i, m := range msgs {
		out[i] = &Job{ID: m.ID, Priority: p, Fields: stringFields(m.Values)}
	}
	return out, nil
}
