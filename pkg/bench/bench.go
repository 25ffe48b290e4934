package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/proc"
)

// Rows are the rows Run knows, in the order it runs them.
var Rows = []string{"baseline", "openai", "scaling", "users", "soak", "overhead", "streaming", "console", "growth", "builtin", "cold", "go", "redis"}

// afterFleet are the rows that run once the bench fleet is stopped, so
// that they get the machine.
var afterFleet = []string{"go", "redis"}

// Options configure Run. Zero fields take the defaults of a full run, or of
// a quick one when Quick is set.
type Options struct {
	// Root is the repository: scripts/render_nginx.sh, nginx/ and the Go
	// packages of the benchmarks. Default ".".
	Root string
	// Bin holds the bot and mockllm programs. Default Root/bin.
	Bin string
	// Dir holds the raw results, profiles, logs and nginx prefixes.
	// Default Root/run/bench.
	Dir string
	// Quick is a smoke run of about a minute and a half: short steps, a
	// coarse ladder, a short soak, the heaviest growth cell skipped.
	Quick bool
	// Only runs these rows (names from Rows); default every row.
	Only []string
	// Instances is the fleet's size. Default 2.
	Instances int
	// Step, Warmup and Pause are a search step's measured window, its
	// warm-up and the idle time between steps. Default 8s, 2s, 1s (quick
	// 2s, 500ms, 500ms).
	Step, Warmup, Pause time.Duration
	// LadderStart, LadderFactor and MaxRate make every search's ladder.
	// Default 1000 req/s × 1.15 up to 40000 (quick × 1.5).
	LadderStart, LadderFactor, MaxRate float64
	// Turns is a bot search's conversation length and MaxEntries the
	// instances' memory.max_entries. Default 60 and 100.
	Turns, MaxEntries int
	// SessionsPerRPS gives each step ceil(rate × it) conversations.
	// Default 0.1.
	SessionsPerRPS float64
	// MaxLate is the largest share of a held step's requests that may go
	// out late (more than 10 ms behind schedule). Default loadtest's, 1 %;
	// on cores other work keeps busy the load generator itself falls
	// behind, and a run may allow more (the report says so).
	MaxLate float64
	// Users is the closed-model row's users. Default 200.
	Users int
	// ColdStarts is how many cold starts are timed. Default 5 (quick 3).
	ColdStarts int
	// SoakDuration and SoakEvery are the soak's length and its sampling
	// interval. Default 2m and 10s (quick 20s and 5s); make soak runs 10m.
	SoakDuration, SoakEvery time.Duration
	// SoakRate is the soak's rate; default half the openai search's
	// sustained rate (searched first when that row is not run).
	SoakRate float64
	// Log gets a line per step and row. Default io.Discard.
	Log io.Writer
}

func (o *Options) defaults() {
	paths(&o.Root, &o.Bin, &o.Dir, "bench")
	d := Options{Instances: 2, Step: 8 * time.Second, Warmup: 2 * time.Second, Pause: time.Second,
		LadderStart: 1000, LadderFactor: 1.15, MaxRate: 40000, Turns: 60, MaxEntries: 100, SessionsPerRPS: 0.1,
		MaxLate: loadtest.DefaultMaxLate, Users: 200, ColdStarts: 5, SoakDuration: 2 * time.Minute, SoakEvery: 10 * time.Second,
		Log: io.Discard}
	if o.Quick {
		d.Step, d.Warmup, d.Pause = 2*time.Second, 500*time.Millisecond, 500*time.Millisecond
		d.LadderStart, d.LadderFactor, d.ColdStarts = 500, 1.5, 3
		d.SoakDuration, d.SoakEvery = 20*time.Second, 5*time.Second
	}
	defaults.Fill(o, d)
}

// Validate reports invalid options.
func (o Options) Validate() error {
	var errs []error
	for _, r := range o.Only {
		if !slices.Contains(Rows, r) {
			errs = append(errs, fmt.Errorf("unknown row %q (known: %s)", r, strings.Join(Rows, ", ")))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Step", o.Step}, {"Warmup", o.Warmup}, {"Pause", o.Pause}, {"SoakDuration", o.SoakDuration}, {"SoakEvery", o.SoakEvery}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", d.name, d.v))
		}
	}
	if o.LadderFactor != 0 && !(o.LadderFactor > 1) {
		errs = append(errs, fmt.Errorf("LadderFactor must be above 1, got %v", o.LadderFactor))
	}
	if o.Instances < 0 || o.Instances == 1 {
		errs = append(errs, fmt.Errorf("Instances must be at least 2 (the scaling row compares 1 with them), got %d", o.Instances))
	}
	if o.MaxLate < 0 || o.MaxLate > 1 {
		errs = append(errs, fmt.Errorf("MaxLate must be in [0, 1], got %v", o.MaxLate))
	}
	if o.SoakRate < 0 {
		errs = append(errs, fmt.Errorf("SoakRate must not be negative, got %v", o.SoakRate))
	}
	return errors.Join(errs...)
}

// run is one run's state.
type run struct {
	o   Options
	f   *fleet
	rep *Report
	// searches by name, for the rows that build on one.
	searches map[string]*Search
}

func (r *run) logf(format string, a ...any) { fmt.Fprintf(r.o.Log, "bench: "+format+"\n", a...) }

func (r *run) note(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.rep.Notes = append(r.rep.Notes, msg)
	r.logf("%s", msg)
}

// wants reports whether row runs.
func (r *run) wants(row string) bool { return len(r.o.Only) == 0 || slices.Contains(r.o.Only, row) }

// Run brings up the bench fleet, runs the rows and returns the report; the
// fleet is torn down before the Go benchmarks and on every way out. A row
// that fails is noted in the report and the next one runs; ctx ending
// stops the run (the report then covers what finished).
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.defaults()
	begin := time.Now()
	r := &run{o: o, rep: newReport(ctx, o), searches: map[string]*Search{}}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(o.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := clean(o.Dir); err != nil {
		return nil, err
	}

	fleetRows := slices.ContainsFunc(Rows, func(row string) bool { return !slices.Contains(afterFleet, row) && r.wants(row) })
	if fleetRows {
		r.logf("bench fleet: redis-server, mockllm, %d instances, nginx (logs in %s)", o.Instances, filepath.Join(o.Dir, "logs"))
		r.f, err = startFleet(ctx, o.Root, o.Bin, o.Dir, o.Instances)
		if err != nil {
			return nil, err
		}
		defer func() { r.f.stop() }()
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"baseline", r.baseline}, {"openai", r.openai}, {"scaling", r.scaling}, {"users", r.users},
		{"soak", r.soak}, {"overhead", r.overhead}, {"streaming", r.streaming}, {"console", r.console}, {"growth", r.growth}, {"builtin", r.builtin}, {"cold", r.cold},
	}
	for _, s := range steps {
		if !r.wants(s.name) {
			continue
		}
		r.logf("row %s", s.name)
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				r.note("interrupted in row %s", s.name)
				break
			}
			r.note("row %s failed: %v", s.name, err)
		}
	}
	if r.f != nil {
		r.f.stop()
	}
	if r.wants("go") && ctx.Err() == nil {
		r.logf("row go: the Go benchmarks of the turn path (the fleet is stopped)")
		if err := r.goBench(ctx); err != nil {
			r.note("row go failed: %v", err)
		}
	}
	if r.wants("redis") && ctx.Err() == nil {
		r.logf("row redis: chat turns on Redis standalone and on Clusters of 1, 2 and 3 masters (pkg/capacity)")
		if err := r.redisCapacity(ctx); err != nil {
			r.note("row redis failed: %v", err)
		}
	}
	r.rep.Pending = pending
	r.rep.DurationS = round(time.Since(begin).Seconds(), 0)
	return r.rep, ctx.Err()
}

// pending are the rows that land with work still to come; each becomes a
// function in the steps of Run, with its fields in Report, when it does.
var pending []Pending

// paths defaults a harness's repository root to ".", bin to root/bin and
// dir to root/run/<name>, and makes each absolute: nginx resolves -c
// against its prefix.
func paths(root, bin, dir *string, name string) {
	if *root == "" {
		*root = "."
	}
	if *bin == "" {
		*bin = filepath.Join(*root, "bin")
	}
	if *dir == "" {
		*dir = filepath.Join(*root, "run", name)
	}
	for _, p := range []*string{root, bin, dir} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
}

// lock makes dir the run's own; a second harness on the same dir is
// refused while the first one's pid lives.
func lock(dir string) (func(), error) {
	file := filepath.Join(dir, "bench.pid")
	if b, err := os.ReadFile(file); err == nil {
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid != os.Getpid() && proc.Alive(pid) {
			return nil, fmt.Errorf("another bench (pid %d) is running in %s; wait for it or stop it (kill %d)", pid, dir, pid)
		}
	}
	if err := os.WriteFile(file, []byte(fmt.Sprintln(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	return func() { os.Remove(file) }, nil
}

// clean removes the previous run's raw results (nginx's access logs grow by
// tens of megabytes a run).
func clean(dir string) error {
	for _, pat := range []string{"*.json", "*.pb.gz", "*.txt", "logs/*.log", "nginx-*/logs/*.log"} {
		files, _ := filepath.Glob(filepath.Join(dir, pat))
		for _, f := range files {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	return nil
}
