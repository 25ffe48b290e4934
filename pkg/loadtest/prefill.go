package loadtest

import (
	"context"
	"sync"
	"time"
)

// PrefillResult is what Prefill sent.
type PrefillResult struct {
	// Conversations is the number of conversations given turns.
	Conversations int
	// Requests counts the turns sent; Failed those that failed, by cause in
	// Errors (continuity errors included).
	Requests, Failed int64
	Errors           map[string]int64
	// Duration is how long it took.
	Duration time.Duration
}

// Prefill gives each of the first opts.Sessions conversations of a run
// turns more turns (after opts.StartTurn), one conversation's turns in
// order and up to opts.MaxInflight conversations at a time, as fast as the
// server answers; nothing is measured. A Run with the same options and
// StartTurn raised by turns then continues exactly these conversations, each
// with turns more turns of history: so a load test can measure turns that
// answer from a long history without waiting for it to grow. Seed and
// SessionPrefix must be set (the conversations are found again by them).
// It returns an error only for invalid options; failures are counted.
func Prefill(ctx context.Context, opts Options, turns int) (*PrefillResult, error) {
	var fe fieldErrors
	if opts.Seed == 0 {
		fe.add("Seed", "must be set for Prefill: Run finds the conversations again by it")
	}
	if opts.SessionPrefix == "" {
		fe.add("SessionPrefix", "must be set for Prefill: Run finds the conversations again by it")
	}
	if turns < 0 {
		fe.add("Turns", "of Prefill must not be negative, got %d", turns)
	}
	if len(fe) > 0 {
		return nil, fe.err()
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	r, err := newRunner(opts)
	if err != nil {
		return nil, err
	}
	res := &PrefillResult{Conversations: opts.Sessions, Errors: map[string]int64{}}
	r.start = time.Now()
	sessions := make(chan *session, opts.Sessions)
	for range opts.Sessions {
		sessions <- r.fresh()
	}
	close(sessions)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(opts.Sessions, opts.MaxInflight) {
		wg.Go(func() {
			w := new(worker)
			for s := range sessions {
				for range turns {
					o, ok := r.do(ctx, w, s, -time.Hour) // before the window: never measured
					if !ok {
						return
					}
					mu.Lock()
					res.Requests++
					if o.cause != "" {
						res.Failed++
						res.Errors[o.cause]++
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if r.own {
		r.client.CloseIdleConnections()
	}
	res.Duration = time.Since(r.start)
	return res, ctx.Err()
}
