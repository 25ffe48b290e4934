package bench

import (
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSoakJudge(t *testing.T) {
	so := &Soak{WarmupS: 20}
	for i := range 10 {
		ts := float64(i * 10)
		so.Samples = append(so.Samples, SoakSample{TS: ts, RSSBytes: []int{50e6 + i*10e3, 50e6}, Goroutines: []int{40, 40},
			Sockets: []int{10, 10}, RedisUsedMemory: int64(1e6 * (1 + i)), RedisKeys: 100})
	}
	so.judge()
	if !so.Flat["rss"] || !so.Flat["goroutines"] || !so.Flat["redis_keys"] || so.Flat["redis_used_memory"] {
		t.Errorf("flat %v growth %v: RSS, goroutines and keys are flat, Redis memory grows", so.Flat, so.Growth)
	}
	// after warm-up: samples at 20..90 s; first three 3,4,5 MB, last three 8,9,10 MB
	if g := so.Growth["redis_used_memory"]; g < 1.24 || g > 1.26 {
		t.Errorf("Redis growth %v, want 1.25", g)
	}
	var b strings.Builder
	if _, err := so.Chart().WriteTo(&b); err != nil || strings.Count(b.String(), "<path") != 6 {
		t.Errorf("chart (%v): %d paths, want the flat line and 5 series", err, strings.Count(b.String(), "<path"))
	}
}

func TestReadProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cpu.pb.gz")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	spin(300 * time.Millisecond) // the thing under test: CPU to sample
	pprof.StopCPUProfile()
	f.Close()
	secs, top, err := readProfile(file, 5)
	if err != nil {
		t.Fatal(err)
	}
	if secs <= 0 || len(top) == 0 || top[0].FlatPct <= 0 || top[0].CumPct < top[0].FlatPct {
		t.Errorf("profile: %v s, top %+v", secs, top)
	}
	areas, err := byArea(file)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, v := range areas {
		sum += v
	}
	if sum < 99 || sum > 101 {
		t.Errorf("areas %v sum to %v%%, want 100", areas, sum)
	}
}

//go:noinline
func spin(d time.Duration) {
	end := time.Now().Add(d)
	x := 0
	for time.Now().Before(end) {
		for i := range 1000 {
			x += i * i
		}
	}
	_ = x
}

func TestGrowthVerdict(t *testing.T) {
	rep := &Report{Growth: []Growth{
		{History: 10, MessageBytes: 100, CPUUSPerTurn: 200}, {History: 100, MessageBytes: 100, CPUUSPerTurn: 290},
		{History: 1000, MessageBytes: 100, CPUUSPerTurn: 1190},
	}}
	v := growthVerdict(rep)
	if !strings.Contains(v, "1.00 µs more instance CPU per history entry from 10 to 100") || !strings.Contains(v, "linear") {
		t.Errorf("verdict %q", v)
	}
	rep.Growth[2].CPUUSPerTurn = 5000
	if v := growthVerdict(rep); !strings.Contains(v, "worse than linear") {
		t.Errorf("verdict %q", v)
	}
}

// The redis row reads pkg/capacity's benchmark output as go test prints it.
func TestRedisCapacityRead(t *testing.T) {
	out := `goos: linux
pkg: github.com/botfleet/botfleet/pkg/capacity
BenchmarkTurns/standalone-2         	    2000	    184055 ns/op	      2428 B/turn	         0.5192 busiest-master-cores	        75.63 redis-µs/turn	      6864 turns/s
--- BENCH: BenchmarkTurns/standalone-2
    capacity_test.go:38: 1 masters: 6864 turns/s (2000 in 291ms)
BenchmarkTurns/masters=1-2          	    2000	    195471 ns/op	      2452 B/turn	         0.4887 busiest-master-cores	        83.52 redis-µs/turn	      5851 turns/s
BenchmarkTurns/masters=3-2          	    2000	    279413 ns/op	      3439 B/turn	         0.1765 busiest-master-cores	       107.1 redis-µs/turn	      4810 turns/s
BenchmarkFootprint-2                	       1	  18481590 ns/op	     22880 B/conversation	       227.8 B/entry	       680.0 B/request
PASS
`
	var rc RedisCapacity
	rc.read([]byte(out), "capacity.txt")
	want := []Topology{
		{Name: "standalone", Masters: 1, TurnsPerSecond: 6864, RedisCPUUSPerTurn: 75.63, BusiestMasterCores: 0.5192, CeilingTurnsPerSecond: 13220, BytesPerTurn: 2428},
		{Name: "cluster, 1 master", Masters: 1, TurnsPerSecond: 5851, RedisCPUUSPerTurn: 83.52, BusiestMasterCores: 0.4887, CeilingTurnsPerSecond: 11973, BytesPerTurn: 2452},
		{Name: "cluster, 3 masters", Masters: 3, TurnsPerSecond: 4810, RedisCPUUSPerTurn: 107.1, BusiestMasterCores: 0.1765, CeilingTurnsPerSecond: 27252, BytesPerTurn: 3439},
	}
	if !slices.Equal(rc.Topologies, want) {
		t.Fatalf("topologies %+v, want %+v", rc.Topologies, want)
	}
	if rc.EntryBytes != 227.8 || rc.ConversationBytes != 22880 || rc.RequestBytes != 680 {
		t.Fatalf("footprint %+v", rc)
	}
}
