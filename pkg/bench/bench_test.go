package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/testenv"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := testenv.BuildCommands(dir, "./cmd/bot", "./cmd/mockllm", "./cmd/fleetctl", "./cmd/healthchecker"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testOptions is a small, fast run: steps of 3 s (profiles of 2 s) at 100
// and 150 req/s.
func testOptions(t *testing.T, rows ...string) Options {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return Options{Root: root, Bin: binDir, Dir: t.TempDir(), Only: rows, Step: 3 * time.Second,
		Warmup: 200 * time.Millisecond, Pause: 100 * time.Millisecond, LadderStart: 100, LadderFactor: 1.5, MaxRate: 160,
		ColdStarts: 1, Users: 4}
}

// TestRunMeasuresTheFleet runs the baseline, openai, streaming, console and cold rows on a real
// fleet (redis-server, mockllm, two instances, three nginx servers): every
// step was measured, the openai row has its CPU per turn, cores and a CPU
// profile, and the report has the stable top-level keys.
func TestRunMeasuresTheFleet(t *testing.T) {
	o := testOptions(t, "baseline", "openai", "streaming", "console", "cold")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard, not a timing assertion
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Searches) != 2 {
		t.Fatalf("searches %+v, notes %v", rep.Searches, rep.Notes)
	}
	base, oa := rep.search("baseline"), rep.search("openai")
	for _, s := range []*Search{base, oa} {
		if len(s.Steps) == 0 || s.MeasuredAtRPS == 0 || s.MachineCPUUSPerRequest <= 0 || s.Cores["machine_busy"] <= 0 {
			t.Errorf("%s: steps %d, measured at %v, machine CPU per request %v, cores %v; notes %v",
				s.Name, len(s.Steps), s.MeasuredAtRPS, s.MachineCPUUSPerRequest, s.Cores, rep.Notes)
		}
	}
	if oa.CPUUSPerTurn <= 0 || oa.Cores["bots"] <= 0 || len(oa.RSSBytes) != 2 || oa.RSSBytes[0] <= 0 {
		t.Errorf("openai: CPU per turn %v, cores %v, RSS %v", oa.CPUUSPerTurn, oa.Cores, oa.RSSBytes)
	}
	if oa.Profile == "" || len(oa.Top) == 0 || oa.ProfileCPUUSPerTurn <= 0 || len(oa.CPUByArea) == 0 {
		t.Errorf("openai profile %q: top %v, %v µs per turn, areas %v", oa.Profile, oa.Top, oa.ProfileCPUUSPerTurn, oa.CPUByArea)
	}
	if base.RatioToBaseline != 1 || (oa.MaxSustainedRPS > 0 && oa.RatioToBaseline == 0) {
		t.Errorf("ratios: baseline %v, openai %v", base.RatioToBaseline, oa.RatioToBaseline)
	}
	if rep.ColdStart == nil || len(rep.ColdStart.StartsMS) != 1 || rep.ColdStart.MedianMS <= 0 {
		t.Errorf("cold start %+v", rep.ColdStart)
	}
	if rep.Commit.ID == "" || rep.Machine.CPUs == 0 || rep.Machine.Redis == "" || rep.Machine.Nginx == "" {
		t.Errorf("commit %+v machine %+v", rep.Commit, rep.Machine)
	}
	if _, err := os.Stat(filepath.Join(o.Dir, "search_openai.json")); err != nil {
		t.Errorf("the search's loadtest JSON: %v", err)
	}
	if len(rep.Streaming) != len(streamingConcurrency) {
		t.Fatalf("streaming rows %+v, notes %v", rep.Streaming, rep.Notes)
	}
	for _, s := range rep.Streaming {
		for _, l := range []StreamLatency{s.Direct, s.Fleet} {
			// Every piece mockllm sends reaches the client as a piece of its own.
			if l.Streams == 0 || l.Errors != 0 || l.Pieces != streamChunks*l.Streams || l.TTFTP50MS <= 0 || l.GapP50MS <= 0 {
				t.Errorf("streaming c=%d: %+v", s.Concurrency, l)
			}
		}
	}
	if c := rep.Console; c == nil || c.Polls == 0 || c.PollFailures != 0 || c.With.RPS == 0 || c.Before.RPS == 0 || c.After.RPS == 0 {
		t.Errorf("console row %+v, notes %v", c, rep.Notes)
	}
	var b strings.Builder
	if err := rep.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(b.String()), &top); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"cold_start", "commit", "console", "duration_s", "generated_at", "go_benchmarks", "growth", "machine", "notes",
		"overhead", "pending", "quick", "redis_capacity", "redis_round_trips", "scaling", "schema", "searches", "settings", "soak", "streaming", "users"}
	if !slices.Equal(keys, want) {
		t.Errorf("bench.json keys %v, want %v (README, Performance, documents them)", keys, want)
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Against the issue's targets", "### openai: nginx → bot → mockllm", "## Cold start to ready", "## Streaming: time to first piece and between pieces", "## The console's cost"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("BENCHMARKS.md lacks %q", want)
		}
	}
}

// testFleet starts a fleet of two instances' ports (no instance yet),
// stopped when the test ends.
func testFleet(t *testing.T) (Options, *fleet) {
	o := testOptions(t)
	o.defaults()
	f, err := startFleet(context.Background(), o.Root, o.Bin, o.Dir, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.stop)
	return o, f
}

// TestFleetStopsEveryProcess: stop ends every process the fleet started,
// nginx's workers included, and none outlives it.
func TestFleetStopsEveryProcess(t *testing.T) {
	_, f := testFleet(t)
	ctx := context.Background()
	if err := f.startBots(ctx, botConfig{Backend: "builtin", MaxEntries: 10}); err != nil {
		t.Fatal(err)
	}
	groups := map[int]bool{f.redis.pid(): true, f.mock.pid(): true}
	for _, p := range f.bots {
		groups[p.pid()] = true
	}
	for _, p := range f.nginx {
		groups[p.pid()] = true
	}
	members := func() []int {
		var out []int
		for g := range groups {
			m, _ := proc.Group(g)
			out = append(out, m...)
		}
		return out
	}
	before := members()
	if len(before) < len(groups)+3 { // each nginx has at least one worker
		t.Errorf("%d processes in the fleet's groups, want at least %d", len(before), len(groups)+3)
	}
	f.stop()
	if left := members(); len(left) > 0 {
		t.Errorf("processes left after stop: %v", left)
	}
}

// TestGrowthCell measures one cell of the growth table: the conversations
// are prefilled, every measured turn answers from the history.
func TestGrowthCell(t *testing.T) {
	o, f := testFleet(t)
	ctx := context.Background()
	r := &run{o: o, f: f, rep: &Report{}, searches: map[string]*Search{}}
	g, err := r.growthCell(ctx, 10, 100)
	if err != nil {
		t.Fatal(err)
	}
	if g.Errors != 0 || g.TurnsPerS <= 0 || g.CPUUSPerTurn <= 0 || g.MockCPUUSPerCall <= 0 || g.RedisBytesPerConversation <= 0 {
		t.Errorf("cell %+v", g)
	}
	// The instances keep exactly 10 entries: every conversation's history
	// list holds 10 after the run.
	keys, err := f.rdb.Keys(ctx, "*:msgs").Result()
	if err != nil || len(keys) != g.Users {
		t.Fatalf("history lists %v (%v), want %d", keys, err, g.Users)
	}
	for _, k := range keys {
		if n, _ := f.rdb.LLen(ctx, k).Result(); n != 10 {
			t.Errorf("%s holds %d entries, want 10", k, n)
		}
	}
}
