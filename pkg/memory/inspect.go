package memory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Info is what a conversation holds, as an operator looks at it.
type Info struct {
	// Entries are its memory, oldest first.
	Entries []Entry `json:"entries"`
	// Turns is the number of its last committed turn.
	Turns int `json:"turns"`
	// TTL is how long it is kept if no turn touches it; 0 when it holds
	// nothing.
	TTL time.Duration `json:"ttl"`
	// Waiting counts the turns queued for it, the one running included.
	Waiting int64 `json:"waiting"`
}

// Inspect returns what a conversation holds, in one round trip. It
// changes nothing: the idle TTL is not refreshed.
func (s *Store) Inspect(ctx context.Context, conversation string) (Info, error) {
	k := s.keys(conversation, "")
	pipe := s.rdb.Pipeline()
	msgs := pipe.LRange(ctx, k[kMsgs], 0, -1)
	turns := pipe.HGet(ctx, k[kMeta], "n")
	ttl := pipe.PTTL(ctx, k[kMsgs])
	waiting := pipe.LLen(ctx, k[kQueue])
	_, _ = pipe.Exec(ctx)
	var info Info
	raw, err := msgs.Result()
	if err != nil {
		return info, storeError(err)
	}
	info.Entries = make([]Entry, len(raw))
	for i, r := range raw {
		if err := decodeEntry(r, &info.Entries[i]); err != nil {
			return info, fmt.Errorf("memory: entry %d of %s: %w", i, conversation, err)
		}
	}
	if n, err := turns.Int(); err == nil {
		info.Turns = n
	} else if !errors.Is(err, redis.Nil) {
		return info, storeError(err)
	}
	if d, err := ttl.Result(); err == nil && d > 0 {
		info.TTL = d
	}
	info.Waiting, _ = waiting.Result()
	return info, nil
}

// Clear forgets a conversation's memory and turn count, in one round trip;
// it reports whether there was anything to forget. Request records stay,
// so a repeat of a finished request still replays its reply, and a turn
// running meanwhile commits after the clear.
func (s *Store) Clear(ctx context.Context, conversation string) (bool, error) {
	k := s.keys(conversation, "")
	n, err := s.rdb.Del(ctx, k[kMsgs], k[kMeta]).Result()
	if err != nil {
		return false, storeError(err)
	}
	return n > 0, nil
}
