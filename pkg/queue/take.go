package queue

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// order returns the streams in the order this take looks at them.
func (c *Consumer) order() []string {
	n := c.takes.Add(1)
	keys := make([]string, len(Priorities))
	fair := c.opts.FairEvery > 0 && n%uint64(c.opts.FairEvery) == 0
	for i, p := range Priorities {
		if fair {
			keys[len(keys)-1-i] = c.q.Stream(p)
		} else {
			keys[i] = c.q.Stream(p)
		}
	}
	return keys
}

// takeScript: KEYS the streams in the order to try; ARGV group, consumer.
// Takes one new job from the first stream that has one, without blocking.
var takeScript = redis.NewScript(`
for i = 1, #KEYS do
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[i], '>')
  if r then return {KEYS[i], r[1][2][1][1], r[1][2][1][2]} end
end
return false
`)

// next takes jobs: a reclaimed one first, else the first new job in
// priority order (one round trip), else what read returns within Block.
func (c *Consumer) next() []*Job {
	select {
	case j := <-c.claimed:
		return []*Job{j}
	default:
	}
	res, err := takeScript.Run(c.reads, c.q.rdb, c.order(), Group, c.opts.Name).Slice()
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		c.readFailed(err)
		return nil
	case len(res) == 3:
		stream, _ := res[0].(string)
		id, _ := res[1].(string)
		return []*Job{{ID: id, Priority: c.q.priorityOf(stream), Fields: pairs(res[2]), Deliveries: 1}}
	}
	return c.read(c.opts.Block)
}

// read waits up to block on all three streams and returns what they have —
// up to one new job per stream — most urgent first.
func (c *Consumer) read(block time.Duration) []*Job {
	streams := make([]string, 0, 2*len(Priorities))
	for _, p := range Priorities {
		streams = append(streams, c.q.Stream(p))
	}
	for range Priorities {
		streams = append(streams, ">")
	}
	xs, err := c.q.rdb.XReadGroup(c.reads, &redis.XReadGroupArgs{
		Group: Group, Consumer: c.opts.Name, Streams: streams, Count: 1, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		c.readFailed(err)
		return nil
	}
	var jobs []*Job
	for _, p := range Priorities {
		for _, x := range xs {
			if x.Stream != c.q.Stream(p) {
				continue
			}
			for _, m := range x.Messages {
				jobs = append(jobs, &Job{ID: m.ID, Priority: p, Fields: stringFields(m.Values), Deliveries: 1})
			}
		}
	}
	return jobs
}

// readFailed creates the group when Redis lost it (a flushed or failed-over
// Redis), else logs and waits a moment before the next read.
func (c *Consumer) readFailed(err error) {
	if c.isStopping() {
		return
	}
	if redis.HasErrorPrefix(err, "NOGROUP") {
		ctx, cancel := context.WithTimeout(c.reads, 2*time.Second)
		err = c.q.ensureGroups(ctx)
		cancel()
		if err == nil {
			return
		}
	}
	c.opts.Logger.Warn("queue: read failed", "err", err)
	c.sleep(500 * time.Millisecond)
}

func pairs(v any) map[string]string {
	arr, _ := v.([]any)
	out := make(map[string]string, len(arr)/2)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		out[k] = val
	}
	return out
}
