package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Run generates the load opts describe and returns what it measured. It
// returns an error only for invalid options; a failing server shows in the
// Result. When ctx is done the run stops early: requests in flight are
// abandoned and the Result, marked Interrupted, covers what completed.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	return r.run(ctx), nil
}

// runner is one run's state, shared by its scheduler and workers.
type runner struct {
	opts   Options
	client *http.Client
	own    bool // the runner made client, and closes its idle connections at the end
	rec    *recorder
	ids    sessionIDs
	status statusOnce
	nextID atomic.Int64 // the next fresh session's ordinal
	seq    atomic.Int64 // the last request's Call.Seq

	start time.Time     // time zero: the warm-up begins
	from  time.Duration // the measured window is [from, to) since start
	to    time.Duration

	inflight  atomic.Int64 // requests waiting for an answer
	warmSent  atomic.Int64 // warm-up requests completed
	completed atomic.Int64 // requests answered or failed, warm-up included

	waitSession, waitInflight atomic.Int64 // open model: the scheduler had to wait
}

func newRunner(opts Options) (*runner, error) {
	if opts.Seed == 0 {
		opts.Seed = time.Now().UnixNano()
	}
	if opts.SessionPrefix == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		opts.SessionPrefix = "lt-" + hex.EncodeToString(b[:]) + "-"
	}
	client := opts.Client
	if client == nil {
		client = NewClient(opts.concurrency())
	}
	return &runner{
		opts:   opts,
		client: client,
		own:    opts.Client == nil,
		rec:    newRecorder(),
		ids:    newSessionIDs(opts.SessionPrefix, opts.Seed, opts.MessageBytes),
		status: statusOnce{report: opts.OnStatus},
		from:   opts.Warmup,
		to:     opts.Warmup + opts.Duration,
	}, nil
}

// run drives the load and assembles the result.
func (r *runner) run(ctx context.Context) *Result {
	r.start = time.Now()
	stopProgress := r.progress()
	if r.opts.Model() == Open {
		r.runOpen(ctx)
	} else {
		r.runClosed(ctx)
	}
	stopProgress()
	if r.own {
		// Leave no idle keep-alive connection behind: a rate search runs
		// step after step, each with a client of its own.
		r.client.CloseIdleConnections()
	}
	return r.result(ctx.Err() != nil)
}

// since is the time elapsed since the run's start.
func (r *runner) since() time.Duration { return time.Since(r.start) }

// fresh returns a new conversation; the first Sessions of a run start at
// Options.StartTurn.
func (r *runner) fresh() *session {
	n := r.nextID.Add(1) - 1
	s := r.ids.newSession(n)
	if n < int64(r.opts.Sessions) {
		s.sent, s.last = r.opts.StartTurn, r.opts.StartTurn
	}
	return s
}

// renew returns s, or a fresh conversation in its place once s has run its
// turns.
func (r *runner) renew(s *session) *session {
	if r.opts.Turns > 0 && s.sent >= r.opts.Turns {
		return r.fresh()
	}
	return s
}

// worker holds one sending goroutine's reusable buffer.
type worker struct {
	buf bytes.Buffer
}

// do sends the next turn of s, intended at offset intended since the start,
// waits for its answer, checks it and records it if it belongs to the
// measured window. It returns the outcome; ok is false when ctx ended the
// request (neither a success nor a failure).
func (r *runner) do(ctx context.Context, w *worker, s *session, intended time.Duration) (o outcome, ok bool) {
	s.sent++
	call := Call{SessionID: s.id, Turn: s.sent, Message: r.ids.message(s, s.sent), Seq: r.seq.Add(1)}
	measured := intended >= r.from && intended < r.to

	r.inflight.Add(1)
	defer r.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	sent := r.since()
	status, header, err := r.send(rctx, w, call)
	end := r.since()
	if ctx.Err() != nil {
		return o, false // interrupted: neither a success nor the server's fault
	}
	var reply Reply

	o = outcome{latency: end - intended, done: end - r.from, late: sent-intended > r.opts.LateAfter}
	switch {
	case err != nil:
		o.cause = CauseConnection
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			o.cause = CauseTimeout
		}
		s.failed(true)
	default:
		var err error
		reply, err = r.opts.Target.Check(status, w.buf.Bytes())
		var se *StatusError
		switch {
		case errors.As(err, &se):
			o.cause = "status_" + strconv.Itoa(se.Code)
			r.status.seen(se.Code)
			// A 4xx or 503 is answered before the turn is recorded; other
			// statuses (a proxy's 502 or 504) may come after it was.
			s.failed(!(se.Code >= 400 && se.Code < 500 || se.Code == http.StatusServiceUnavailable))
		case err != nil:
			o.cause = CauseDecode
			s.failed(true)
		default:
			o.verdict = s.observe(reply)
			if o.verdict == broken {
				o.cause = CauseContinuity
			}
		}
	}
	r.completed.Add(1)
	if r.opts.OnCall != nil {
		r.opts.OnCall(CallRecord{
			Call: call, Sent: r.start.Add(sent), Done: r.start.Add(end), Status: status, Cause: o.cause,
			RetryAfter: header.Get("Retry-After"), RequestID: header.Get("X-Request-Id"), Reply: reply,
		})
	}
	if measured {
		r.rec.record(o)
	} else {
		r.warmSent.Add(1)
	}
	return o, true
}

// send performs call and reads the whole response body into w.buf.
func (r *runner) send(ctx context.Context, w *worker, call Call) (int, http.Header, error) {
	req, err := r.opts.Target.NewRequest(ctx, call)
	if err != nil {
		return 0, nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	w.buf.Reset()
	if _, err := w.buf.ReadFrom(resp.Body); err != nil {
		return 0, resp.Header, err
	}
	return resp.StatusCode, resp.Header, nil
}

// sleep waits for d or until done is closed or ctx is done; it reports
// whether the full d passed.
func sleep(ctx context.Context, t *time.Timer, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t.Reset(d)
	select {
	case <-t.C:
		return true
	case <-done:
	case <-ctx.Done():
	}
	t.Stop()
	return false
}

// after returns a channel closed when the run reaches offset at.
func (r *runner) after(at time.Duration) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	t := time.AfterFunc(time.Until(r.start.Add(at)), func() { close(ch) })
	return ch, func() { t.Stop() }
}

// progress calls Options.Progress periodically until the returned function
// is called.
func (r *runner) progress() (stop func()) {
	if r.opts.Progress == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.opts.ProgressEvery)
		defer t.Stop()
		var lastDone int64
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				s := r.snapshot()
				done := r.completed.Load()
				if dt := now.Sub(last).Seconds(); dt > 0 {
					s.RecentRPS = float64(done-lastDone) / dt
				}
				lastDone, last = done, now
				r.opts.Progress(s)
			}
		}
	}()
	return func() { close(quit); <-done }
}

// snapshot returns the run's state so far.
func (r *runner) snapshot() Snapshot {
	s := Snapshot{
		Elapsed:  r.since(),
		Total:    r.to,
		Warmup:   r.since() < r.from,
		Model:    r.opts.Model(),
		Inflight: r.inflight.Load(),
		WarmedUp: r.warmSent.Load(),
	}
	s.Requests, s.Succeeded, s.Failed, s.Late, s.P99 = r.rec.snapshot()
	return s
}

// result assembles the Result after the load stopped.
func (r *runner) result(interrupted bool) *Result {
	res := &Result{
		Model:             r.opts.Model(),
		Duration:          r.opts.Duration,
		Interrupted:       interrupted,
		WaitedForSession:  r.waitSession.Load(),
		WaitedForInflight: r.waitInflight.Load(),
		Settings: Settings{
			URL: r.opts.URL, Target: r.opts.Target.Name(), Rate: r.opts.Rate, Users: r.opts.Users,
			Think: r.opts.Think, Duration: r.opts.Duration, Warmup: r.opts.Warmup,
			Sessions: r.opts.Sessions, Turns: r.opts.Turns, Seed: r.opts.Seed,
			Timeout: r.opts.Timeout, MaxInflight: r.opts.MaxInflight,
		},
	}
	if interrupted {
		res.Duration = min(max(r.since()-r.from, 0), r.opts.Duration)
	}
	r.rec.finish(res, int64(math.Ceil(res.Duration.Seconds())))
	if secs := res.Duration.Seconds(); secs > 0 {
		res.AchievedRPS = float64(res.Succeeded) / secs
		if res.Model == Closed {
			res.OfferedRPS = float64(res.Requests) / secs
		}
	}
	if res.Model == Open {
		res.OfferedRPS = r.opts.Rate
	}
	return res
}

// statusOnce calls report once per status code.
type statusOnce struct {
	report func(code int)
	mu     sync.Mutex
	codes  map[int]bool
}

func (s *statusOnce) seen(code int) {
	if s.report == nil {
		return
	}
	s.mu.Lock()
	first := !s.codes[code]
	if first {
		if s.codes == nil {
			s.codes = map[int]bool{}
		}
		s.codes[code] = true
	}
	s.mu.Unlock()
	if first {
		s.report(code)
	}
}
