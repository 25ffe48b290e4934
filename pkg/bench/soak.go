package bench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/plot"
)

// FlatGrowth is the growth after warm-up below which a soak series counts
// as flat.
const FlatGrowth = 0.05

// Soak is a long open-model run at half the sustained rate, sampled every
// few seconds.
type Soak struct {
	DurationS float64 `json:"duration_s"`
	RateRPS   float64 `json:"rate_rps"`
	EveryS    float64 `json:"every_s"`
	// WarmupS is the part of the run growth is not judged on.
	WarmupS     float64 `json:"warmup_s"`
	AchievedRPS float64 `json:"achieved_rps"`
	P99MS       float64 `json:"p99_ms"`
	Errors      int64   `json:"errors"`
	// Samples are the series, one point every EveryS.
	Samples []SoakSample `json:"samples"`
	// Growth is each series' growth from the first samples after warm-up
	// to the last ones (0.05 = 5%); Flat says which stayed below
	// FlatGrowth. Keys: rss, goroutines, sockets, redis_used_memory,
	// redis_keys.
	Growth map[string]float64 `json:"growth"`
	Flat   map[string]bool    `json:"flat"`
}

// SoakSample is one point of a soak; per-instance values are in instance
// order.
type SoakSample struct {
	TS              float64 `json:"t_s"`
	RSSBytes        []int   `json:"rss_bytes"`
	Goroutines      []int   `json:"goroutines"`
	Sockets         []int   `json:"sockets"`
	OpenFDs         []int   `json:"open_fds"`
	RedisUsedMemory int64   `json:"redis_used_memory"`
	RedisKeys       int64   `json:"redis_keys"`
}

// soak runs the soak row on fresh instances.
func (r *run) soak(ctx context.Context) error {
	rate := r.o.SoakRate
	if rate == 0 {
		var err error
		if rate, err = r.halfRate(ctx, "soak"); err != nil {
			return err
		}
	}
	if err := r.f.startBots(ctx, botConfig{Backend: "openai", MaxEntries: r.o.MaxEntries}); err != nil {
		return err
	}
	so, err := r.runSoak(ctx, rate)
	if so != nil {
		r.rep.Soak = so
	}
	return err
}

func (r *run) runSoak(ctx context.Context, rate float64) (*Soak, error) {
	d, every := r.o.SoakDuration, r.o.SoakEvery
	so := &Soak{DurationS: d.Seconds(), RateRPS: rate, EveryS: every.Seconds(),
		WarmupS: math.Min(60, d.Seconds()/5), Samples: []SoakSample{}}
	r.logf("soak: %g turns/s for %v, sampled every %v", rate, d, every)
	type outcome struct {
		res *loadtest.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := loadtest.Run(ctx, loadtest.Options{URL: r.f.nginxURL("fleet"), Token: Key, Rate: rate, Duration: d,
			Turns: r.o.Turns, Sessions: max(int(math.Ceil(rate*r.o.SessionsPerRPS)), loadtest.MinOpenSessions), Seed: 3})
		done <- outcome{res, err}
	}()
	start := time.Now()
	tick := time.NewTicker(every)
	defer tick.Stop()
	sample := func() {
		s, err := r.soakSample(ctx, time.Since(start))
		if err != nil {
			r.note("soak sample at %v: %v", time.Since(start).Round(time.Second), err)
			return
		}
		so.Samples = append(so.Samples, s)
	}
	sample()
	var out outcome
loop:
	for {
		select {
		case <-tick.C:
			sample()
		case out = <-done:
			break loop
		}
	}
	sample()
	if out.err != nil {
		return so, out.err
	}
	so.AchievedRPS, so.P99MS, so.Errors = round(out.res.AchievedRPS, 1), ms(out.res.Latency.P99), out.res.Failed
	so.judge()
	r.logf("soak: growth after warm-up %v", so.Growth)
	return so, nil
}

func (r *run) soakSample(ctx context.Context, at time.Duration) (SoakSample, error) {
	s := SoakSample{TS: round(at.Seconds(), 1)}
	for i, p := range r.f.bots {
		info, err := readProc(p.pid())
		if err != nil {
			return s, err
		}
		m, err := r.f.metrics(ctx, i)
		if err != nil {
			return s, err
		}
		s.RSSBytes = append(s.RSSBytes, info.RSS)
		s.Sockets = append(s.Sockets, info.Sockets)
		s.OpenFDs = append(s.OpenFDs, info.FDs)
		s.Goroutines = append(s.Goroutines, int(gauge(m, "go_goroutines")))
	}
	var err error
	s.RedisUsedMemory, s.RedisKeys, err = r.f.redisMemory(ctx)
	return s, err
}

// series are a soak's judged series: their key and value in a sample
// (instances summed).
var series = []struct {
	key, name, color string
	of               func(SoakSample) float64
}{
	{"rss", "instances' RSS", "#1565c0", func(s SoakSample) float64 { return sum(s.RSSBytes) }},
	{"goroutines", "goroutines", "#2e7d32", func(s SoakSample) float64 { return sum(s.Goroutines) }},
	{"sockets", "open sockets", "#6a1b9a", func(s SoakSample) float64 { return sum(s.Sockets) }},
	{"redis_used_memory", "Redis used_memory", "#e65100", func(s SoakSample) float64 { return float64(s.RedisUsedMemory) }},
	{"redis_keys", "Redis keys", "#c62828", func(s SoakSample) float64 { return float64(s.RedisKeys) }},
}

func sum(v []int) float64 {
	var s float64
	for _, x := range v {
		s += float64(x)
	}
	return s
}

// baseAndLast are the means of the first three samples after warm-up and
// of the last three.
func (so *Soak) baseAndLast(of func(SoakSample) float64) (base, last float64, ok bool) {
	var after []float64
	for _, s := range so.Samples {
		if s.TS >= so.WarmupS {
			after = append(after, of(s))
		}
	}
	if len(after) < 2 {
		return 0, 0, false
	}
	n := min(3, len(after)/2)
	mean := func(v []float64) float64 {
		var t float64
		for _, x := range v {
			t += x
		}
		return t / float64(len(v))
	}
	return mean(after[:n]), mean(after[len(after)-n:]), true
}

// judge fills in Growth and Flat.
func (so *Soak) judge() {
	so.Growth, so.Flat = map[string]float64{}, map[string]bool{}
	for _, s := range series {
		base, last, ok := so.baseAndLast(s.of)
		if !ok || base == 0 {
			continue
		}
		g := (last - base) / base
		so.Growth[s.key] = round(g, 3)
		so.Flat[s.key] = g < FlatGrowth
	}
}

// Chart plots every series relative to its value after warm-up (100%).
func (so *Soak) Chart() *plot.Chart {
	c := plot.New("Soak: each series relative to its value after warm-up (100% = flat)", "seconds", "% of the value after warm-up")
	if len(so.Samples) < 2 {
		c.Empty = "too few samples"
		return c
	}
	xs := make([]float64, len(so.Samples))
	for i, s := range so.Samples {
		xs[i] = s.TS
	}
	ys := map[string][]float64{}
	hi := 110.0
	for _, s := range series {
		base, _, ok := so.baseAndLast(s.of)
		if !ok || base == 0 {
			continue
		}
		for _, smp := range so.Samples {
			v := 100 * s.of(smp) / base
			ys[s.key] = append(ys[s.key], v)
			hi = math.Max(hi, v)
		}
	}
	sc := plot.Scale{X0: 0, X1: c.XAxis(xs[len(xs)-1]), Y0: 0, Y1: c.YAxis(hi)}
	c.AddLine(fmt.Sprintf("+%.0f%%: flat's limit", FlatGrowth*100), "#9e9e9e", "4 3", sc, []float64{0, sc.X1}, []float64{100 * (1 + FlatGrowth), 100 * (1 + FlatGrowth)}, nil)
	for _, s := range series {
		if v, ok := ys[s.key]; ok {
			c.AddLine(s.name, s.color, "", sc, xs, v, nil)
		}
	}
	return c
}
