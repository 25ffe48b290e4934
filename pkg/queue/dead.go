package queue

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/botfleet/botfleet/pkg/fault"
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

// ErrNoDeadLetter is a requeue or drop of a dead letter that is not (or no
// longer) there.
var ErrNoDeadLetter = fault.New(http.StatusNotFound, "dead_letter_not_found", "no such dead letter (requeued or dropped already?)")

// requeueScript: KEYS dead, urgent, normal, batch; ARGV entry id. Moves a
// dead letter back to the stream it died on, its dead_* fields left out,
// in one step: it is either requeued or still dead, never both or lost.
var requeueScript = redis.NewScript(`
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return false end
local f, fields, target = e[1][2], {}, nil
for i = 1, #f, 2 do
  if f[i] == 'dead_stream' then
    target = f[i + 1]
  elseif string.sub(f[i], 1, 5) ~= 'dead_' then
    fields[#fields + 1] = f[i]
    fields[#fields + 1] = f[i + 1]
  end
end
local keys = {urgent = KEYS[2], normal = KEYS[3], batch = KEYS[4]}
if keys[target] == nil or #fields == 0 then return redis.error_reply('ERR dead letter without a stream or fields') end
local id = redis.call('XADD', keys[target], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return {target, id}
`)

// Requeue moves dead letter id back to its priority's stream as a new
// job, with the fields it was enqueued with; the workers run it again from
// its first delivery. It returns the priority and the new entry id.
func (q *Queue) Requeue(ctx context.Context, id string) (Priority, string, error) {
	if !entryID(id) {
		return "", "", ErrNoDeadLetter
	}
	keys := []string{q.DeadStream(), q.Stream(Urgent), q.Stream(Normal), q.Stream(Batch)}
	res, err := requeueScript.Run(ctx, q.rdb, keys, id).StringSlice()
	switch {
	case errors.Is(err, redis.Nil):
		return "", "", ErrNoDeadLetter
	case err != nil:
		return "", "", storeError("requeue", err)
	case len(res) != 2:
		return "", "", fmt.Errorf("%w: requeue: unexpected reply %v", ErrUnavailable, res)
	}
	return Priority(res[0]), res[1], nil
}

// Drop deletes dead letter id.
func (q *Queue) Drop(ctx context.Context, id string) error {
	if !entryID(id) {
		return ErrNoDeadLetter
	}
	n, err := q.rdb.XDel(ctx, q.DeadStream(), id).Result()
	switch {
	case err != nil:
		return storeError("drop", err)
	case n == 0:
		return ErrNoDeadLetter
	}
	return nil
}

// entryID tells a stream entry id, <ms>-<seq>.
func entryID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	_, err1 := strconv.ParseUint(ms, 10, 64)
	_, err2 := strconv.ParseUint(seq, 10, 64)
	return ok && err1 == nil && err2 == nil
}
