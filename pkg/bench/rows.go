package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/botfleet/botfleet/pkg/loadtest"
)

// users is the seeds' JMeter test: Users closed-model users through nginx,
// no think time, continuity checked on every reply.
func (r *run) users(ctx context.Context) error {
	if err := r.ensureBots(ctx, "openai"); err != nil {
		return err
	}
	res, err := loadtest.Run(ctx, loadtest.Options{URL: r.f.nginxURL("fleet"), Token: Key, Users: r.o.Users,
		Duration: r.o.Step, Warmup: r.o.Warmup, Turns: r.o.Turns, Seed: 2})
	if err != nil {
		return err
	}
	if err := loadtest.WriteFile(filepath.Join(r.o.Dir, "users.json"), res.WriteJSON); err != nil {
		return err
	}
	u := &Users{Users: r.o.Users, TurnsPerS: round(res.AchievedRPS, 1), P50MS: ms(res.Latency.P50), P90MS: ms(res.Latency.P90),
		P99MS: ms(res.Latency.P99), P999MS: ms(res.Latency.P999), MeanMS: ms(res.Latency.Mean), Requests: res.Requests,
		Errors: res.Errors, ContinuityBroken: res.Continuity.Broken}
	if base := r.searches["baseline"]; base != nil {
		u.RatioToBaseline = ratio(res.AchievedRPS, base.MaxSustainedRPS)
	}
	r.rep.Users = u
	r.logf("users: %d users, %.0f turns/s, p99 %v, %d continuity errors", r.o.Users, res.AchievedRPS, res.Latency.P99, res.Continuity.Broken)
	return nil
}

// overheadConcurrency are the overhead table's concurrencies.
var overheadConcurrency = []int{1, 8, 64, 256}

// overhead is BerriAI/ai-gateway-bench's method: the same closed-model load
// (N users, no think time, 100-byte messages unique per request) straight at
// mockllm and through nginx → bot → mockllm; what the fleet adds is the
// difference. Each fleet request is the first turn of a fresh conversation
// (history 0), so mockllm does the same work both ways; the growth table
// covers longer histories.
func (r *run) overhead(ctx context.Context) error {
	if err := r.ensureBots(ctx, "openai"); err != nil {
		return err
	}
	dur, warm := r.o.Step/2, r.o.Warmup
	var floorP99 float64
	for _, c := range overheadConcurrency {
		direct, err := loadtest.NewTargetConfig("completions", loadtest.TargetConfig{URL: r.f.mockURL()})
		if err != nil {
			return err
		}
		run := func(tgt loadtest.Target, url string) (Latency, error) {
			res, err := loadtest.Run(ctx, loadtest.Options{Target: tgt, URL: url, Token: Key, Users: c, Duration: dur, Warmup: warm,
				Turns: 1, MessageBytes: 100, Seed: int64(c)})
			if err != nil {
				return Latency{}, err
			}
			return Latency{RPS: round(res.AchievedRPS, 1), P50MS: ms(res.Latency.P50), P99MS: ms(res.Latency.P99), Errors: res.Failed}, nil
		}
		d, err := run(direct, r.f.mockURL())
		if err != nil {
			return err
		}
		fl, err := run(nil, r.f.nginxURL("fleet"))
		if err != nil {
			return err
		}
		if c == 1 {
			floorP99 = d.P99MS
		}
		row := Overhead{Concurrency: c, Direct: d, Fleet: fl, AddedP50MS: round(fl.P50MS-d.P50MS, 3),
			AddedP99MS: round(fl.P99MS-d.P99MS, 3), RatioRPS: ratio(fl.RPS, d.RPS), Controlled: d.P99MS <= 2*floorP99}
		r.rep.Overhead = append(r.rep.Overhead, row)
		r.logf("  overhead c=%d: direct %.0f/s p50 %.2f p99 %.2f ms; fleet %.0f/s p50 %.2f p99 %.2f ms", c, d.RPS, d.P50MS, d.P99MS, fl.RPS, fl.P50MS, fl.P99MS)
	}
	return nil
}

// cold times Instances fresh instances from exec to the first 200 on
// /ready (Redis reachable), polled every millisecond over a raw TCP
// connection; the median is reported.
func (r *run) cold(ctx context.Context) error {
	var starts []float64
	for k := range r.o.ColdStarts {
		t0 := time.Now()
		p, err := start(r.f.dir, "cold", r.f.botEnv(botConfig{Backend: "openai", MaxEntries: r.o.MaxEntries}, r.f.coldPort), syscall.SIGTERM,
			filepath.Join(r.f.bin, "bot"), "--port", fmt.Sprint(r.f.coldPort), "--log-level", "warn")
		if err != nil {
			return err
		}
		err = p.waitFor(ctx, 10*time.Second, "/ready", func() bool { return readyProbe(addr(r.f.coldPort)) })
		el := time.Since(t0)
		p.stop(5 * time.Second)
		if err != nil {
			return fmt.Errorf("cold start %d: %w", k+1, err)
		}
		starts = append(starts, round(float64(el)/1e6, 1))
	}
	sorted := slices.Clone(starts)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		med = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	r.rep.ColdStart = &ColdStart{StartsMS: starts, MedianMS: round(med, 1)}
	r.logf("cold start: %v ms, median %.1f ms", starts, med)
	return nil
}

// readyProbe is one GET /ready over a fresh connection: true on 200.
func readyProbe(a string) bool {
	c, err := net.DialTimeout("tcp", a, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "GET /ready HTTP/1.0\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	buf := make([]byte, 12)
	n, _ := io.ReadFull(c, buf)
	return n == 12 && string(buf[9:12]) == "200"
}
