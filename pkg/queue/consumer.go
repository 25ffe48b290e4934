package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/jonboulle/clockwork"
)

// ConsumerOptions tune a Consumer. Zero values take the defaults named;
// the defaults are applied here and nowhere else.
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
	// RetryBackoff is how long a failed job waits before it is retried; an
	// error that says when to try again (pkg/fault's RetryAfter, e.g. an
	// open circuit breaker's time left) waits that long instead, up to
	// ClaimIdle.
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
	// Clock times heartbeats, reclaims, job deadlines and pauses after
	// errors; nil is the real clock (tests inject a fake one). Idle times
	// and backoffs of pending jobs are kept by Redis, on its own clock.
	Clock clockwork.Clock
}

func (o *ConsumerOptions) setDefaults() {
	defaults.Fill(o, ConsumerOptions{Workers: 4, JobTimeout: 90 * time.Second, Block: time.Second, ClaimIdle: 30 * time.Second,
		RetryBackoff: 5 * time.Second, MaxDeliveries: 5, Logger: slog.New(slog.DiscardHandler), Clock: clockwork.NewRealClock()})
	if o.ReclaimInterval <= 0 {
		o.ReclaimInterval = o.ClaimIdle / 4
	}
	o.RetryBackoff = min(o.RetryBackoff, o.ClaimIdle)
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
	// jobs when the drain's grace is over, or at once on Abort.
	reads, jobs         context.Context
	cancelReads, cancel context.CancelFunc
	stopping            chan struct{}
	stopOnce            sync.Once
	claimed             chan *Job
	wg                  sync.WaitGroup
	takes               atomic.Uint64
	abandoned           atomic.Int64
	// held are the jobs this consumer's workers hold (running, or waiting
	// behind another job of their batch), by priority and id, so that a
	// reclaim does not hand one of them to a second worker here.
	held sync.Map
}

// NewConsumer returns a consumer of q that runs h; Start starts it.
func (q *Queue) NewConsumer(opts ConsumerOptions, h Handler) *Consumer {
	opts.setDefaults()
	return &Consumer{q: q, opts: opts, h: h, stopping: make(chan struct{}), claimed: make(chan *Job, opts.Workers)}
}

// Options returns the options in force, defaults filled in.
func (c *Consumer) Options() ConsumerOptions { return c.opts }

// Start creates the consumer group if needed and starts the workers and
// the reclaimer. They run until Stop or Abort. When Redis does not answer
// yet, the workers keep trying (and create the group when it answers); the
// error is returned for the caller to log.
func (c *Consumer) Start(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := c.q.ensureGroups(gctx)
	cancel()
	c.init(ctx)
	for range c.opts.Workers {
		c.wg.Add(1)
		go c.worker()
	}
	c.wg.Add(1)
	go c.reclaimer()
	return err
}

// Stop drains the consumer: no new job is taken, and the jobs it holds may
// finish until ctx ends; then they are cancelled and left pending, so that
// another instance reclaims them after ClaimIdle, and Stop says so in its
// error. An idle worker's blocking read is cancelled at once; should Redis
// have handed it a job in that instant, the job waits ClaimIdle and is
// reclaimed like one of a dead instance.
func (c *Consumer) Stop(ctx context.Context) error {
	c.beginStop()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.cancel()
		<-done
	}
	c.cancel()
	if n := c.abandoned.Load(); n > 0 {
		return fmt.Errorf("queue: %d jobs still running at the end of the drain's grace were abandoned to other instances", n)
	}
	return nil
}

// Abort stops the consumer at once, as if its instance had died: running
// jobs are cancelled and, like the jobs taken but not started, stay
// pending until another instance reclaims them after ClaimIdle. It returns
// when the workers have exited.
func (c *Consumer) Abort() {
	c.beginStop()
	c.cancel()
	c.wg.Wait()
}

// init makes the contexts that Stop and Abort end.
func (c *Consumer) init(ctx context.Context) {
	c.reads, c.cancelReads = context.WithCancel(context.WithoutCancel(ctx))
	c.jobs, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
}

func (c *Consumer) beginStop() {
	c.stopOnce.Do(func() { close(c.stopping); c.cancelReads() })
}

func (c *Consumer) isStopping() bool {
	select {
	case <-c.stopping:
		return true
	default:
		return false
	}
}

// sleep waits d on the consumer's clock, or until it stops.
func (c *Consumer) sleep(d time.Duration) {
	t := c.opts.Clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
	case <-c.stopping:
	}
}

// worker takes jobs and runs them, until the consumer stops.
func (c *Consumer) worker() {
	defer c.wg.Done()
	for !c.isStopping() && c.jobs.Err() == nil {
		c.runBatch(c.next())
	}
}

// runBatch runs jobs one after another: the rest of a batch waits behind
// the first, which is why every job is checked to be still this
// consumer's before it runs (see run). A drain finishes the batch; an
// Abort or the end of the grace leaves the rest pending.
func (c *Consumer) runBatch(jobs []*Job) {
	for _, j := range jobs {
		c.held.Store(j.key(), true)
	}
	for i, j := range jobs {
		if c.jobs.Err() != nil {
			for _, rest := range jobs[i:] {
				c.held.Delete(rest.key())
			}
			return
		}
		c.process(j)
		c.held.Delete(j.key())
	}
}
