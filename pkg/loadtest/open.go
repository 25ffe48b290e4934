package loadtest

import (
	"context"
	"sync"
	"time"
)

// job is one scheduled request: the next turn of s, intended at offset at.
type job struct {
	s  *session
	at time.Duration
}

// runOpen is the open model. One scheduler goroutine walks the schedule —
// request i is intended at i/Rate after the start — and hands each request,
// with an idle conversation, to a pool of workers. The pool grows on demand up
// to min(Sessions, MaxInflight) goroutines, so no goroutine is started per
// request and idle ones are reused.
//
// At an intended time the scheduler may find no idle conversation (every one
// is waiting for its previous turn) or every worker busy (MaxInflight
// requests in flight). It then waits, and catches up as soon as it can: every
// overdue request goes out at once, its latency still timed from its intended
// time, and each that went out more than LateAfter behind counts as late. If
// the measured window ends while it waits, the rest of the window's schedule
// is counted as dropped.
func (r *runner) runOpen(ctx context.Context) {
	idle := make(chan *session, r.opts.Sessions)
	for range r.opts.Sessions {
		idle <- r.fresh()
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	workers, maxWorkers := 0, min(r.opts.Sessions, r.opts.MaxInflight)
	work := func(j job) {
		defer wg.Done()
		w := new(worker)
		for {
			r.do(ctx, w, j.s, j.at)
			idle <- r.renew(j.s)
			var ok bool
			if j, ok = <-jobs; !ok {
				return
			}
		}
	}

	end, stopEnd := r.after(r.to)
	defer stopEnd()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	perReq := float64(time.Second) / r.opts.Rate
	i := int64(0)
	at := time.Duration(0)
schedule:
	for ; ; i++ {
		at = time.Duration(float64(i) * perReq)
		if at >= r.to {
			break
		}
		if !sleep(ctx, timer, at-r.since(), nil) {
			break
		}
		measured := at >= r.from

		var s *session
		select {
		case s = <-idle:
		default:
			if measured {
				r.waitSession.Add(1)
			}
			select {
			case s = <-idle:
			case <-end:
				break schedule
			case <-ctx.Done():
				break schedule
			}
		}

		j := job{s: s, at: at}
		select {
		case jobs <- j:
			continue
		default:
		}
		if workers < maxWorkers {
			workers++
			wg.Add(1)
			go work(j)
			continue
		}
		if measured && maxWorkers == r.opts.MaxInflight {
			// (With fewer sessions than MaxInflight, a worker that just
			// handed back its session is a moment away from taking a job:
			// not a wait for the in-flight cap.)
			r.waitInflight.Add(1)
		}
		select {
		case jobs <- j:
		case <-end:
			idle <- s
			break schedule
		case <-ctx.Done():
			idle <- s
			break schedule
		}
	}
	close(jobs)
	if ctx.Err() == nil && at < r.to {
		// The window ended while the scheduler waited: the rest of its
		// schedule, from request i on, was never sent.
		var dropped int64
		for k := i; ; k++ {
			at := time.Duration(float64(k) * perReq)
			if at >= r.to {
				break
			}
			if at >= r.from {
				dropped++
			}
		}
		r.rec.drop(dropped)
	}
	wg.Wait()
}
