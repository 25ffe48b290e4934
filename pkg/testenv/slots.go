package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// SlotCheck watches a Cluster client and its nodes: it records each script that runs
// (EVAL, EVALSHA by its SHA1) and fails the test when a script's keys, or
// the first keys of the commands of one MULTI/EXEC transaction, span hash
// slots. Redis answers such a script, and go-redis such a transaction,
// with an error — which code that ignores a pipeline's errors would never
// show; here it fails the test.
type SlotCheck struct {
	t   testing.TB
	mu  sync.Mutex
	ran map[string]int
}

// CheckSlots starts watching c.
func CheckSlots(t testing.TB, c *redis.ClusterClient) *SlotCheck {
	s := &SlotCheck{t: t, ran: map[string]int{}}
	// On the Cluster client, which sees a transaction whole, and on each
	// node's, which see what callers send a node directly (a WAIT behind a
	// script must follow it on one connection).
	c.AddHook(s)
	c.OnNewNode(func(node *redis.Client) { node.AddHook(s) })
	_ = c.ForEachShard(context.Background(), func(_ context.Context, node *redis.Client) error {
		node.AddHook(s)
		return nil
	})
	return s
}

// Ran reports whether the script with this SHA1 ran on the Cluster.
func (s *SlotCheck) Ran(sha string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ran[sha] > 0
}

func (s *SlotCheck) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *SlotCheck) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.check([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

func (s *SlotCheck) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		s.check(cmds)
		return next(ctx, cmds)
	}
}

func (s *SlotCheck) check(cmds []redis.Cmder) {
	tx := len(cmds) > 0 && cmds[0].Name() == "multi"
	var txKeys []string
	for _, cmd := range cmds {
		args := cmd.Args()
		switch name := cmd.Name(); {
		case name == "eval" || name == "evalsha":
			var n int
			fmt.Sscan(fmt.Sprint(args[2]), &n)
			keys := make([]string, 0, n)
			for _, k := range args[3 : 3+n] {
				keys = append(keys, fmt.Sprint(k))
			}
			sha := fmt.Sprint(args[1])
			if name == "eval" {
				sha = redis.NewScript(sha).Hash()
			}
			s.mu.Lock()
			s.ran[sha]++
			s.mu.Unlock()
			s.sameSlot("script "+sha[:8], keys)
			if tx {
				txKeys = append(txKeys, keys...)
			}
		case tx && name != "multi" && name != "exec" && len(args) > 1:
			txKeys = append(txKeys, fmt.Sprint(args[1]))
		}
	}
	if tx {
		s.sameSlot("transaction", txKeys)
	}
}

func (s *SlotCheck) sameSlot(what string, keys []string) {
	for _, k := range keys {
		if Slot(k) != Slot(keys[0]) {
			s.t.Errorf("testenv: %s spans hash slots: %q is in slot %d, %q in %d", what, keys[0], Slot(keys[0]), k, Slot(k))
			return
		}
	}
}

// Slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag — the part between the first '{' and the next '}', when not empty —
// or of the whole key, modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
