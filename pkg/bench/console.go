package bench

import (
	"context"
	"fmt"
	"math"

	"github.com/botfleet/botfleet/pkg/console"
	"github.com/botfleet/botfleet/pkg/loadtest"
)

// AdminKey is the bench fleet's auth.admin_key, the console row's login.
const AdminKey = "bench-admin-key-0123456789"

// console is the console row: the same open-model load at half the
// sustained rate three times over — without a console, with one open
// (console.Poll: logged in, polling /admin/api/fleet at the heartbeat
// interval as the page does), without again — so that the console's cost
// is the middle run against the two around it (drift shows as their
// difference).
func (r *run) console(ctx context.Context) error {
	rate, err := r.halfRate(ctx, "console")
	if err != nil {
		return err
	}
	if err := r.ensureBots(ctx, "openai"); err != nil {
		return err
	}
	c := &Console{RateRPS: rate}
	load := func(seed int64) (Latency, error) {
		res, err := loadtest.Run(ctx, loadtest.Options{URL: r.f.nginxURL("fleet"), Token: Key, Rate: rate, Duration: r.o.Step,
			Warmup: r.o.Warmup, Turns: r.o.Turns, Sessions: max(int(math.Ceil(rate*r.o.SessionsPerRPS)), loadtest.MinOpenSessions), Seed: seed})
		if err != nil {
			return Latency{}, err
		}
		return Latency{RPS: round(res.AchievedRPS, 1), P50MS: ms(res.Latency.P50), P99MS: ms(res.Latency.P99), Errors: res.Failed}, nil
	}
	if c.Before, err = load(11); err != nil {
		return err
	}
	pctx, stop := context.WithCancel(ctx)
	polled := make(chan error, 1)
	go func() {
		st, err := console.Poll(pctx, console.PollOptions{URL: r.f.nginxURL("fleet"), AdminKey: AdminKey})
		c.Polls, c.PollFailures, c.PollBytes = st.Polls, st.Failures, st.Bytes
		polled <- err
	}()
	c.With, err = load(12)
	stop()
	if perr := <-polled; perr != nil {
		return fmt.Errorf("console: %w", perr)
	}
	if err != nil {
		return err
	}
	if c.After, err = load(13); err != nil {
		return err
	}
	without := (c.Before.RPS + c.After.RPS) / 2
	c.RatioRPS = ratio(c.With.RPS, without)
	c.AddedP99MS = round(c.With.P99MS-(c.Before.P99MS+c.After.P99MS)/2, 3)
	c.NoiseP99MS = round(math.Abs(c.Before.P99MS-c.After.P99MS), 3)
	r.rep.Console = c
	r.logf("  console: %g turns/s; p99 without %.2f / %.2f ms, with %.2f ms (%d polls, %d failed)",
		rate, c.Before.P99MS, c.After.P99MS, c.With.P99MS, c.Polls, c.PollFailures)
	return nil
}

// halfRate is half the openai row's sustained rate (searched first if the
// run has none), or half its lowest step when none held; row names the
// caller in notes.
func (r *run) halfRate(ctx context.Context, row string) (float64, error) {
	s := r.searches["openai"]
	if s == nil {
		r.logf("%s: searching the sustained rate first (row openai)", row)
		if err := r.openai(ctx); err != nil {
			return 0, err
		}
		s = r.searches["openai"]
	}
	rate := math.Round(s.MaxSustainedRPS / 2)
	if rate == 0 && len(s.Steps) > 0 {
		rate = math.Round(s.Steps[0].RateRPS / 2)
		r.note("%s: no openai step held; it runs at half the lowest step, %g turns/s", row, rate)
	}
	if rate <= 0 {
		return 0, fmt.Errorf("no sustained rate to halve")
	}
	return rate, nil
}
