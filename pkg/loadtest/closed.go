package loadtest

import (
	"context"
	"sync"
	"time"
)

// runClosed is the closed model: Users goroutines, each owning every Users-th
// conversation. A user sends the next turn of its conversations in
// round-robin, waits for the answer, thinks for Think and repeats until the
// measured window ends; a request started in the window counts, wherever it
// completes. Latency is timed from the actual send (a closed model has no
// schedule to fall behind).
func (r *runner) runClosed(ctx context.Context) {
	sessions := make([]*session, r.opts.Sessions)
	for k := range sessions {
		sessions[k] = r.fresh()
	}
	end, stopEnd := r.after(r.to)
	defer stopEnd()
	var wg sync.WaitGroup
	for u := range r.opts.Users {
		var mine []*session
		for k := u; k < len(sessions); k += r.opts.Users {
			mine = append(mine, sessions[k])
		}
		wg.Go(func() {
			w := new(worker)
			t := time.NewTimer(time.Hour)
			t.Stop()
			for k := 0; ; k++ {
				at := r.since()
				if at >= r.to || ctx.Err() != nil {
					return
				}
				s := mine[k%len(mine)]
				r.do(ctx, w, s, at)
				mine[k%len(mine)] = r.renew(s)
				if !sleep(ctx, t, r.opts.Think, end) {
					return
				}
			}
		})
	}
	wg.Wait()
}
