package queue

import (
	"context"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// dead moves j to the dead-letter stream with reason and finishes it, in
// one transaction on the queue's slot.
func (c *Consumer) dead(ctx context.Context, j *Job, reason string, deliveries int64) string {
	values := make(map[string]any, len(j.Fields)+5)
	for k, v := range j.Fields {
		values[k] = v
	}
	values["dead_reason"] = reason
	values["dead_stream"] = string(j.Priority)
	values["dead_id"] = j.ID
	values["dead_deliveries"] = strconv.FormatInt(deliveries, 10)
	values["dead_consumer"] = c.opts.Name
	s := c.q.Stream(j.Priority)
	_, err := c.q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: c.q.DeadStream(), MaxLen: c.q.deadMaxLen, Approx: true, Values: values})
		p.XAck(ctx, s, Group, j.ID)
		p.XDel(ctx, s, j.ID)
		p.HDel(ctx, c.q.errorsKey(), j.ID)
		return nil
	})
	if err != nil {
		c.opts.Logger.Warn("queue: dead-lettering failed; the job will be reclaimed", "id", j.ID, "err", err)
		return OutcomeRetry
	}
	c.opts.Logger.Warn("queue: job dead-lettered", "id", j.ID, "priority", j.Priority, "deliveries", deliveries, "reason", reason)
	return OutcomeDead
}
