package queue

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// reclaimScript: KEYS stream; ARGV group, consumer, min idle ms, count.
// Claims jobs idle for at least min idle (their instance died, or they
// failed and waited their backoff) and returns each with its delivery
// count: {{id, {field, value, ...}, deliveries}, ...}.
var reclaimScript = redis.NewScript(`
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local out = {}
for _, e in ipairs(r[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    out[#out + 1] = {e[1], e[2], n}
  end
end
return out
`)

// reclaimer hands jobs whose holder died (or whose backoff is over) to the
// workers, most urgent first, every ReclaimInterval.
func (c *Consumer) reclaimer() {
	defer c.wg.Done()
	for {
		c.reclaim()
		c.sleep(c.opts.ReclaimInterval)
		if c.isStopping() {
			return
		}
	}
}

func (c *Consumer) reclaim() {
	for _, p := range Priorities {
		room := cap(c.claimed) - len(c.claimed)
		if room <= 0 || c.isStopping() {
			return
		}
		ctx, cancel := context.WithTimeout(c.reads, 2*time.Second)
		res, err := reclaimScript.Run(ctx, c.q.rdb, []string{c.q.Stream(p)}, Group, c.opts.Name, c.opts.ClaimIdle.Milliseconds(), room).Slice()
		cancel()
		if err != nil {
			if !c.isStopping() && !errors.Is(err, redis.Nil) {
				c.opts.Logger.Warn("queue: reclaim failed", "stream", c.q.Stream(p), "err", err)
			}
			continue
		}
		for _, r := range res {
			e, _ := r.([]any)
			if len(e) != 3 {
				continue
			}
			id, _ := e[0].(string)
			n, _ := e[2].(int64)
			j := &Job{ID: id, Priority: p, Fields: pairs(e[1]), Deliveries: n}
			if _, ok := c.held.LoadOrStore(j.key(), true); ok {
				// A job of ours whose heartbeat came late: it runs (or
				// waits for a worker) here already; the claim only renewed it.
				continue
			}
			c.opts.Logger.Info("queue: reclaimed a job", "id", id, "priority", p, "deliveries", n)
			select {
			case c.claimed <- j:
			case <-c.stopping:
				return
			}
		}
	}
}
