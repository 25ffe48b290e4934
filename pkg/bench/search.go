package bench

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/loadtest"
)

// searchSpec is one sustained-rate search.
type searchSpec struct {
	name, path, target, nginx string
	backend                   string // "" for the baseline
	instances                 int
}

// stepMeasure is what the harness measured in one step of a search.
type stepMeasure struct {
	w           window
	profile     string
	profileSecs float64
	profTurns   float64
	rss         []int
}

// search runs a rate search with the fleet's instances as they run, the
// CPU of every component and (for bot searches) a CPU profile of the first
// instance in every step's measured window, and each instance's RSS at its
// end; what was measured at the highest step that held is reported.
func (r *run) search(ctx context.Context, sp searchSpec) (*Search, error) {
	o := r.o
	tgt, err := loadtest.NewTargetConfig(sp.target, loadtest.TargetConfig{URL: r.f.nginxURL(sp.nginx), Token: Key})
	if err != nil {
		return nil, err
	}
	turns := o.Turns
	if sp.backend == "" {
		turns = -1 // one conversation per session: the completions target has no turns
	}
	so := loadtest.SearchOptions{
		Options: loadtest.Options{Target: tgt, URL: r.f.nginxURL(sp.nginx), Token: Key, Rate: o.LadderStart,
			Duration: o.Step, Warmup: o.Warmup, Turns: turns, Seed: 1},
		Factor: o.LadderFactor, MaxRate: o.MaxRate, SessionsPerRPS: o.SessionsPerRPS, Pause: o.Pause, MaxLate: o.MaxLate,
	}
	profSecs := int(math.Max(1, math.Min(7, o.Step.Seconds()-1)))
	var mu sync.Mutex
	measures := map[int]*stepMeasure{}
	so.OnStep = func(e loadtest.StepEvent) {
		if e.Phase == loadtest.PhaseDone {
			mu.Lock()
			if m := measures[e.Index]; m != nil {
				m.rss = r.f.rss()
			}
			mu.Unlock()
			st := e.Step
			verdict := "held"
			if !st.Held {
				verdict = fmt.Sprintf("broke: %v", st.Broken)
			}
			r.logf("  %s %g req/s: achieved %.0f, p99 %v, %s", sp.name, st.Rate, st.Result.AchievedRPS, st.Result.Latency.P99.Round(10*time.Microsecond), verdict)
			return
		}
		m, err := r.measureStep(ctx, sp, e, profSecs)
		if err != nil {
			r.note("%s %g req/s: %v", sp.name, e.Rate, err)
			return
		}
		mu.Lock()
		measures[e.Index] = m
		mu.Unlock()
	}
	sr, err := loadtest.Search(ctx, so)
	// A machine busier than the ladder's start (other work on shared
	// cores): start again lower, twice at most.
	for tries := 0; err == nil && sr.Best == nil && !sr.Interrupted && tries < 2 && so.Options.Rate/4 >= 10; tries++ {
		r.note("%s: not even the first step (%g req/s) held; the search starts again at %g req/s", sp.name, so.Options.Rate, so.Options.Rate/4)
		so.Options.Rate /= 4
		mu.Lock()
		measures = map[int]*stepMeasure{}
		mu.Unlock()
		sr, err = loadtest.Search(ctx, so)
	}
	if err != nil {
		return nil, err
	}
	if err := loadtest.WriteFile(filepath.Join(o.Dir, "search_"+sp.name+".json"), sr.WriteJSON); err != nil {
		return nil, err
	}
	s := &Search{Name: sp.name, Path: sp.path, Target: sp.target, Backend: sp.backend, Instances: sp.instances,
		MaxSustainedRPS: sr.MaxSustainedRPS, Steps: []StepRow{}, Top: []TopFn{}, Cores: map[string]float64{}}
	// Measured at the highest step that held; when none did, at the first.
	at := 0
	for k, st := range sr.Steps {
		res := st.Result
		s.Steps = append(s.Steps, StepRow{RateRPS: st.Rate, AchievedRPS: round(res.AchievedRPS, 1),
			P50MS: ms(res.Latency.P50), P99MS: ms(res.Latency.P99), P999MS: ms(res.Latency.P999), MaxMS: ms(res.Latency.Max),
			Errors: res.Failed, Late: res.Late, Held: st.Held, Broken: append([]string{}, st.Broken...)})
		if sr.Best == &sr.Steps[k] {
			at = k
		}
	}
	if len(sr.Steps) > 0 {
		res := sr.Steps[at].Result
		s.MeasuredAtRPS, s.P50MS, s.P99MS = sr.Steps[at].Rate, ms(res.Latency.P50), ms(res.Latency.P99)
		mu.Lock()
		m := measures[at+1]
		mu.Unlock()
		if m != nil {
			r.fill(s, m)
		}
	}
	if base := r.searches["baseline"]; base != nil && sp.name != "baseline" {
		s.RatioToBaseline = ratio(s.MaxSustainedRPS, base.MaxSustainedRPS)
		s.RatioToBaselineCPU = ratio(s.MachineCPUUSPerRequest, base.MachineCPUUSPerRequest)
	} else if sp.name == "baseline" {
		s.RatioToBaseline, s.RatioToBaselineCPU = 1, 1
	}
	r.searches[sp.name] = s
	r.rep.Searches = append(r.rep.Searches, *s)
	if sr.Best == nil {
		return s, fmt.Errorf("%s: no step held", sp.name)
	}
	r.logf("%s: max sustained %g req/s", sp.name, s.MaxSustainedRPS)
	return s, nil
}

// measureStep runs while a step's measured window does: the counters at its
// start and end and, for a bot search, a CPU profile of the first instance.
func (r *run) measureStep(ctx context.Context, sp searchSpec, e loadtest.StepEvent, profSecs int) (*stepMeasure, error) {
	u0, err := r.f.usage(ctx)
	if err != nil {
		return nil, err
	}
	m := &stepMeasure{}
	var prof sync.WaitGroup
	var perr error
	if sp.backend != "" {
		m.profile = filepath.Join(r.o.Dir, fmt.Sprintf("cpu_%s_%g.pb.gz", sp.name, e.Rate))
		prof.Go(func() {
			m.profTurns, perr = r.f.cpuProfile(ctx, 0, profSecs, m.profile)
		})
	}
	// The counters again when the window ends (a little before, so the
	// load's tail is not counted against fewer turns).
	t := time.NewTimer(time.Until(u0.at.Add(r.o.Step - 100*time.Millisecond)))
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	u1, err := r.f.usage(ctx)
	prof.Wait()
	if err != nil {
		return nil, err
	}
	m.w = u1.since(u0)
	if perr != nil {
		m.profile = ""
		return m, fmt.Errorf("profile: %w", perr)
	}
	return m, nil
}

// fill puts a step's measurements into s.
func (r *run) fill(s *Search, m *stepMeasure) {
	w := m.w
	perReq := w.turns
	if s.Backend == "" {
		perReq = w.calls
	}
	if perReq > 0 {
		s.MachineCPUUSPerRequest = round(w.total()*1e6/perReq, 0)
		if s.Backend != "" {
			s.CPUUSPerTurn = round(w.bots()*1e6/perReq, 0)
		}
	}
	secs := w.secs
	s.Cores = map[string]float64{"bots": round(w.bots()/secs, 3), cNginx: round(w.cpu[cNginx]/secs, 3),
		cRedis: round(w.cpu[cRedis]/secs, 3), cMock: round(w.cpu[cMock]/secs, 3), cLoadgen: round(w.cpu[cLoadgen]/secs, 3),
		"machine_busy": round(w.busy/secs, 3), "steal": round(w.steal/secs, 3)}
	s.RSSBytes = m.rss
	if m.profile != "" {
		s.Profile = m.profile
		if cpu, top, err := readProfile(m.profile, 12); err == nil {
			s.Top = top
			if m.profTurns > 0 {
				s.ProfileCPUUSPerTurn = round(cpu*1e6/m.profTurns, 0)
			}
		} else {
			r.note("%s: reading the profile: %v", s.Name, err)
		}
		if a, err := byArea(m.profile); err == nil {
			s.CPUByArea = a
		}
	}
}

func (r *run) baseline(ctx context.Context) error {
	_, err := r.search(ctx, searchSpec{name: "baseline", path: "nginx → mockllm", target: "completions", nginx: "baseline"})
	return err
}

func (r *run) openai(ctx context.Context) error {
	return r.botSearch(ctx, "openai", "nginx → bot → mockllm")
}
func (r *run) builtin(ctx context.Context) error {
	return r.botSearch(ctx, "builtin", "nginx → bot (builtin)")
}

// botSearch restarts the instances with backend and searches through nginx.
func (r *run) botSearch(ctx context.Context, backend, path string) error {
	if err := r.f.startBots(ctx, botConfig{Backend: backend, MaxEntries: r.o.MaxEntries}); err != nil {
		return err
	}
	_, err := r.search(ctx, searchSpec{name: backend, path: path, target: "chat", nginx: "fleet", backend: backend, instances: r.o.Instances})
	return err
}

// scaling searches through nginx with one instance and compares it with
// the openai search's instances.
func (r *run) scaling(ctx context.Context) error {
	if err := r.ensureBots(ctx, "openai"); err != nil {
		return err
	}
	one, err := r.search(ctx, searchSpec{name: "openai_1_instance", path: "nginx → 1 bot → mockllm", target: "chat", nginx: "single",
		backend: "openai", instances: 1})
	if err != nil {
		return err
	}
	sc := &Scaling{OneInstanceRPS: one.MaxSustainedRPS,
		Caveat: fmt.Sprintf("everything shares this machine's %d cores: the load generator, nginx, Redis and mockllm take what a second instance would use, so this ratio is a floor for machines where instances get cores of their own", r.rep.Machine.CPUs)}
	if two := r.searches["openai"]; two != nil {
		sc.TwoInstancesRPS = two.MaxSustainedRPS
		sc.Ratio = ratio(two.MaxSustainedRPS, one.MaxSustainedRPS)
		if two.CPUUSPerTurn > 0 {
			sc.TurnsPerCoreS = round(1e6/two.CPUUSPerTurn, 0)
		}
		if two.MachineCPUUSPerRequest > 0 {
			sc.MachineTurnsPerCoreS = round(1e6/two.MachineCPUUSPerRequest, 0)
		}
	}
	r.rep.Scaling = sc
	return nil
}

// ensureBots starts the instances with backend unless they run with it.
func (r *run) ensureBots(ctx context.Context, backend string) error {
	if len(r.f.bots) == r.o.Instances && r.f.backend == backend {
		return nil
	}
	return r.f.startBots(ctx, botConfig{Backend: backend, MaxEntries: r.o.MaxEntries})
}
