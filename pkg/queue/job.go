package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"
)

// Job is one queued job as a worker sees it.
type Job struct {
	// ID is the stream entry id.
	ID string
	// Priority is the channel it came from.
	Priority Priority
	// Fields are what Enqueue stored.
	Fields map[string]string
	// Deliveries counts how often the job was handed to a worker, this time
	// included.
	Deliveries int64
}

// key names the job among every stream's.
func (j *Job) key() string { return string(j.Priority) + "/" + j.ID }

// Handler runs a job. It must return when ctx ends; a nil error finishes
// the job, an error retries it (or dead-letters it, see Permanent).
type Handler func(ctx context.Context, job *Job) error

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks an error that no retry can fix: the job goes to the
// dead-letter stream at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Outcomes of a job, as passed to ConsumerOptions.Observe.
const (
	OutcomeDone      = "done"      // finished and acknowledged
	OutcomeRetry     = "retry"     // failed; retried after RetryBackoff
	OutcomeDead      = "dead"      // moved to the dead-letter stream
	OutcomeAbandoned = "abandoned" // the instance stopped first; another one reclaims it
	OutcomeLost      = "lost"      // another instance reclaimed it meanwhile
)

func (c *Consumer) process(j *Job) {
	start := c.opts.Clock.Now()
	outcome := c.run(j)
	if c.opts.Observe != nil {
		c.opts.Observe(j.Priority, outcome, c.opts.Clock.Since(start))
	}
}

// run runs one job and returns its outcome. Whatever way the job came —
// a new one, one of a batch that waited behind another job of this worker,
// or a reclaimed one that waited for a worker — it first makes sure the job
// is still this consumer's (resetting its idle time), so that a job another
// instance reclaimed meanwhile is not run twice.
func (c *Consumer) run(j *Job) string {
	tctx, tcancel := context.WithTimeout(c.jobs, 2*time.Second)
	owned, err := c.touch(tctx, j, 0)
	tcancel()
	if err == nil && !owned {
		return OutcomeLost
	}
	if j.Deliveries > c.opts.MaxDeliveries {
		bg, bgCancel := context.WithTimeout(context.WithoutCancel(c.jobs), 5*time.Second)
		defer bgCancel()
		reason, _ := c.q.rdb.HGet(bg, c.q.errorsKey(), j.ID).Result()
		if reason == "" {
			reason = fmt.Sprintf("taken %d times without finishing: its instance died or stopped each time", j.Deliveries-1)
		}
		return c.dead(bg, j, reason, j.Deliveries-1)
	}
	ctx, cancel := clockwork.WithTimeout(c.jobs, c.opts.Clock, c.opts.JobTimeout)
	defer cancel()
	hb := c.startHeartbeat(ctx, cancel, j)
	err = c.call(ctx, j)
	lost := hb.end()
	// Acknowledge even when the drain's grace has just ended: the work is done.
	bg, bgCancel := context.WithTimeout(context.WithoutCancel(c.jobs), 5*time.Second)
	defer bgCancel()
	switch {
	case err == nil:
		if aerr := c.ack(bg, j); aerr != nil {
			c.opts.Logger.Warn("queue: ack failed; the job will be reclaimed and its handler must be idempotent", "id", j.ID, "err", aerr)
		}
		return OutcomeDone
	case c.jobs.Err() != nil:
		c.abandoned.Add(1)
		return OutcomeAbandoned
	case lost:
		return OutcomeLost
	case IsPermanent(err) || j.Deliveries >= c.opts.MaxDeliveries:
		return c.dead(bg, j, err.Error(), j.Deliveries)
	}
	c.opts.Logger.Warn("queue: job failed; retrying", "id", j.ID, "priority", j.Priority, "deliveries", j.Deliveries, "err", err)
	if err := c.q.rdb.HSet(bg, c.q.errorsKey(), j.ID, err.Error()).Err(); err != nil {
		c.opts.Logger.Warn("queue: could not record the failure", "id", j.ID, "err", err)
	}
	if _, terr := c.touch(bg, j, c.opts.ClaimIdle-c.retryWait(err)); terr != nil {
		c.opts.Logger.Warn("queue: could not schedule the retry; it runs after claim_idle", "id", j.ID, "err", terr)
	}
	return OutcomeRetry
}

// retryWait is how long a failed job waits: RetryBackoff, or the error's
// own Retry-After when longer (an open circuit breaker says when it will
// try again: retrying sooner only spends deliveries), at most ClaimIdle.
func (c *Consumer) retryWait(err error) time.Duration {
	return min(max(c.opts.RetryBackoff, fault.Of(err).RetryAfter), c.opts.ClaimIdle)
}

// call runs the handler, turning a panic into an error.
func (c *Consumer) call(ctx context.Context, j *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.h(ctx, j)
}

// ack finishes j: acknowledged, deleted from its stream, its last failure
// forgotten, in one transaction on the queue's slot.
func (c *Consumer) ack(ctx context.Context, j *Job) error {
	s := c.q.Stream(j.Priority)
	_, err := c.q.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, s, Group, j.ID)
		p.XDel(ctx, s, j.ID)
		p.HDel(ctx, c.q.errorsKey(), j.ID)
		return nil
	})
	return err
}
