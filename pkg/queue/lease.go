package queue

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A job's lease is its entry in the group's pending list: it stays this
// consumer's while its idle time is below ClaimIdle, after which another
// consumer's reclaim takes it over.

// touchScript: KEYS stream; ARGV group, consumer, id, idle ms. If the job
// is still pending with this consumer, set its idle time (0 for a
// heartbeat, more to make a failed job claimable after a backoff) without
// counting a delivery; returns 0 when another consumer owns it now.
var touchScript = redis.NewScript(`
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not p[1] or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
return 1
`)

// touch sets j's idle time if j is still this consumer's; owned is false
// when another consumer has it.
func (c *Consumer) touch(ctx context.Context, j *Job, idle time.Duration) (owned bool, err error) {
	n, err := touchScript.Run(ctx, c.q.rdb, []string{c.q.Stream(j.Priority)}, Group, c.opts.Name, j.ID, idle.Milliseconds()).Int()
	return n == 1, err
}

// heartbeat renews a running job's lease every ClaimIdle/3, and cancels
// the job when another consumer owns it now.
type heartbeat struct {
	stop, done chan struct{}
	lost       atomic.Bool
}

func (c *Consumer) startHeartbeat(ctx context.Context, cancel context.CancelFunc, j *Job) *heartbeat {
	h := &heartbeat{stop: make(chan struct{}), done: make(chan struct{})}
	t := c.opts.Clock.NewTicker(c.opts.ClaimIdle / 3)
	go func() {
		defer close(h.done)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-ctx.Done():
				return
			case <-t.Chan():
				tctx, tcancel := context.WithTimeout(ctx, c.opts.ClaimIdle/3)
				owned, err := c.touch(tctx, j, 0)
				tcancel()
				if err == nil && !owned {
					h.lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	return h
}

// end stops the heartbeat and reports whether the job was lost meanwhile.
func (h *heartbeat) end() (lost bool) {
	close(h.stop)
	<-h.done
	return h.lost.Load()
}
