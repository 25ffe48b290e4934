package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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

// ConsumerOptions tune a Consumer. Zero values take the defaults named.
type ConsumerOptions struct {
	// Name is the consumer's name in the group; make it unique per
	// process (NewConsumerName). Required.
	Name string
	// Workers run jobs concurrently. Default 4.
	Workers int
	// JobTimeout is each job's deadline. Default 90s.
	JobTimeout time.Duration
	// Block is how long an idle worker waits on the streams per read.
	// Default 1s.
	Block time.Duration
	// ClaimIdle is how long a job may go without a heartbeat before another
	// consumer reclaims it. A running job's heartbeat resets it every
	// ClaimIdle/3, so it only expires when the instance died. Default 30s.
	ClaimIdle time.Duration
	// ReclaimInterval is how often idle jobs are looked for. Default
	// ClaimIdle/4.
	ReclaimInterval time.Duration
	// RetryBackoff is how long a failed job waits before it is retried.
	// Default 5s; at most ClaimIdle.
	RetryBackoff time.Duration
	// MaxDeliveries is how many times a job is tried before it goes to the
	// dead-letter stream. Default 5.
	MaxDeliveries int64
	// FairEvery makes every FairEvery-th take look at batch, then normal,
	// then urgent, so a flood of urgent jobs cannot starve the others
	// completely; 0 means strict priority. Default 0.
	FairEvery int
	// Logger logs failures; nil discards.
	Logger *slog.Logger
	// Observe, when set, is told every job's outcome and run time.
	Observe func(p Priority, outcome string, elapsed time.Duration)
}

func (o *ConsumerOptions) setDefaults() {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = 90 * time.Second
	}
	if o.Block <= 0 {
		o.Block = time.Second
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	if o.ReclaimInterval <= 0 {
		o.ReclaimInterval = o.ClaimIdle / 4
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 5 * time.Second
	}
	o.RetryBackoff = min(o.RetryBackoff, o.ClaimIdle)
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 5
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// NewConsumerName returns instance plus a random suffix, unique per process.
func NewConsumerName(instance string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return instance + "-" + hex.EncodeToString(b[:])
}

// Consumer runs a process's workers in the fleet's consumer group.
type Consumer struct {
	q    *Queue
	opts ConsumerOptions
	h    Handler

	// reads ends blocking reads when the consumer stops; jobs ends running
	// jobs when the drain's grace is over (or at once on a hard stop).
	reads, jobs         context.Context
	cancelReads, cancel context.CancelFunc
	stopping            chan struct{}
	stopOnce            sync.Once
	claimed             chan *Job
	wg                  sync.WaitGroup
	takes               atomic.Uint64
}

// NewConsumer returns a consumer of q that runs h; Start starts it.
func (q *Queue) NewConsumer(opts ConsumerOptions, h Handler) *Consumer {
	opts.setDefaults()
	return &Consumer{q: q, opts: opts, h: h, stopping: make(chan struct{}), claimed: make(chan *Job, opts.Workers)}
}

// Options returns the options in force, defaults filled in.
func (c *Consumer) Options() ConsumerOptions { return c.opts }

// Start creates the consumer group if needed and starts the workers and
// the reclaimer. They run until Stop. When Redis does not answer yet, the
// workers keep trying (and create the group when it answers); the error is
// returned for the caller to log.
func (c *Consumer) Start(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := c.q.ensureGroups(gctx)
	cancel()
	c.reads, c.cancelReads = context.WithCancel(context.WithoutCancel(ctx))
	c.jobs, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range c.opts.Workers {
		c.wg.Add(1)
		go c.worker()
	}
	c.wg.Add(1)
	go c.reclaimer()
	return err
}

// Stop drains the consumer: no new job is taken, and running jobs may
// finish until ctx ends; then they are cancelled and left pending, so that
// another instance reclaims them after ClaimIdle. It returns an error when
// jobs had to be abandoned. A ctx that has already ended is a hard stop,
// as if the instance died (tests use it). An idle worker's blocking read is
// cancelled at once; should Redis have handed it a job in that instant, the
// job waits ClaimIdle and is reclaimed like one of a dead instance.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stopping); c.cancelReads() })
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	if ctx.Err() != nil {
		c.cancel()
		<-done
		return nil
	}
	select {
	case <-done:
		c.cancel()
		return nil
	case <-ctx.Done():
		c.cancel()
		<-done
		return fmt.Errorf("queue: jobs still running after the grace were abandoned to other instances: %w", ctx.Err())
	}
}

func (c *Consumer) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// sleep waits d or until the consumer stops.
func (c *Consumer) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.stopping:
	}
}

func (c *Consumer) worker() {
	defer c.wg.Done()
	var backlog []*Job
	for {
		var job *Job
		if len(backlog) > 0 {
			job, backlog = backlog[0], backlog[1:]
		} else {
			if c.isStopping() {
				return
			}
			var jobs []*Job
			jobs = c.next()
			if len(jobs) == 0 {
				continue
			}
			job, backlog = jobs[0], jobs[1:]
		}
		c.process(job)
	}
}

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
// priority order (one round trip), else it blocks up to Block on all three
// streams and returns what arrived, most urgent first.
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
	streams := make([]string, 0, 2*len(Priorities))
	for _, p := range Priorities {
		streams = append(streams, c.q.Stream(p))
	}
	for range Priorities {
		streams = append(streams, ">")
	}
	xs, err := c.q.rdb.XReadGroup(c.reads, &redis.XReadGroupArgs{
		Group: Group, Consumer: c.opts.Name, Streams: streams, Count: 1, Block: c.opts.Block,
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

func (c *Consumer) touch(ctx context.Context, j *Job, idle time.Duration) (owned bool, err error) {
	n, err := touchScript.Run(ctx, c.q.rdb, []string{c.q.Stream(j.Priority)}, Group, c.opts.Name, j.ID, idle.Milliseconds()).Int()
	return n == 1, err
}

func (c *Consumer) process(j *Job) {
	start := time.Now()
	outcome := c.run(j)
	if c.opts.Observe != nil {
		c.opts.Observe(j.Priority, outcome, time.Since(start))
	}
}

func (c *Consumer) run(j *Job) string {
	if j.Deliveries > 1 {
		// A reclaimed job waited in c.claimed; make sure it is still ours.
		tctx, tcancel := context.WithTimeout(c.jobs, 2*time.Second)
		owned, err := c.touch(tctx, j, 0)
		tcancel()
		if err == nil && !owned {
			return OutcomeLost
		}
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
	ctx, cancel := context.WithTimeout(c.jobs, c.opts.JobTimeout)
	defer cancel()
	var lost atomic.Bool
	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(c.opts.ClaimIdle / 3)
		defer t.Stop()
		for {
			select {
			case <-hbStop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				tctx, tcancel := context.WithTimeout(ctx, c.opts.ClaimIdle/3)
				owned, err := c.touch(tctx, j, 0)
				tcancel()
				if err == nil && !owned {
					lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	err := c.call(ctx, j)
	close(hbStop)
	<-hbDone
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
		return OutcomeAbandoned
	case lost.Load():
		return OutcomeLost
	case IsPermanent(err) || j.Deliveries >= c.opts.MaxDeliveries:
		return c.dead(bg, j, err.Error(), j.Deliveries)
	}
	c.opts.Logger.Warn("queue: job failed; retrying", "id", j.ID, "priority", j.Priority, "deliveries", j.Deliveries, "err", err)
	pipe := c.q.rdb.Pipeline()
	pipe.HSet(bg, c.q.errorsKey(), j.ID, err.Error())
	_, _ = pipe.Exec(bg)
	if _, terr := c.touch(bg, j, c.opts.ClaimIdle-c.opts.RetryBackoff); terr != nil {
		c.opts.Logger.Warn("queue: could not schedule the retry; it runs after claim_idle", "id", j.ID, "err", terr)
	}
	return OutcomeRetry
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

// dead moves j to the dead-letter stream with reason and finishes it.
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
// workers, most urgent first.
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
			c.opts.Logger.Info("queue: reclaimed a job", "id", id, "priority", p, "deliveries", n)
			select {
			case c.claimed <- j:
			case <-c.stopping:
				return
			}
		}
	}
}
