package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// redisCapacity runs pkg/capacity's benchmarks (each topology started by
// the benchmark on loopback, the fleet stopped) with a fixed count of
// turns and reads their figures.
func (r *run) redisCapacity(ctx context.Context) error {
	turns := 20000
	if r.o.Quick {
		turns = 2000
	}
	rc := &RedisCapacity{Turns: turns}
	for _, b := range []struct{ bench, count string }{
		{"^BenchmarkTurns$", strconv.Itoa(turns) + "x"}, {"^BenchmarkFootprint$", "1x"},
	} {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", b.bench, "-benchtime", b.count, "./pkg/capacity")
		cmd.Dir = r.o.Root
		out, err := cmd.CombinedOutput()
		name := "capacity_" + strings.Trim(b.bench, "^$") + ".txt"
		if werr := os.WriteFile(filepath.Join(r.o.Dir, name), out, 0o644); werr != nil {
			return werr
		}
		if err != nil {
			return fmt.Errorf("%s: %v (see %s)", b.bench, err, filepath.Join(r.o.Dir, name))
		}
		rc.read(out, name)
	}
	if len(rc.Topologies) == 0 {
		return fmt.Errorf("pkg/capacity printed no BenchmarkTurns result")
	}
	r.rep.Redis = rc
	return nil
}

// read adds the results of pkg/capacity's benchmarks printed in out.
func (rc *RedisCapacity) read(out []byte, name string) {
	rd := benchfmt.NewReader(bytes.NewReader(out), name)
	for rd.Scan() {
		res, ok := rd.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		switch string(res.Name.Base()) { // benchfmt drops the "Benchmark" prefix
		case "Footprint":
			rc.EntryBytes, _ = res.Value("B/entry")
			rc.ConversationBytes, _ = res.Value("B/conversation")
			rc.RequestBytes, _ = res.Value("B/request")
		case "Turns":
			rc.Topologies = append(rc.Topologies, topology(res))
		}
	}
}

// topology reads one BenchmarkTurns/<name> result ("standalone",
// "masters=N").
func topology(res *benchfmt.Result) Topology {
	var t Topology
	_, parts := res.Name.Parts()
	for _, p := range parts {
		if name, ok := strings.CutPrefix(string(p), "/"); ok && t.Name == "" {
			t.Name = name
		}
	}
	t.Masters = 1
	if n, ok := strings.CutPrefix(t.Name, "masters="); ok {
		t.Masters, _ = strconv.Atoi(n)
		t.Name = "cluster, " + n + " masters"
		if t.Masters == 1 {
			t.Name = "cluster, 1 master"
		}
	}
	t.TurnsPerSecond, _ = res.Value("turns/s")
	t.RedisCPUUSPerTurn, _ = res.Value("redis-µs/turn")
	t.BusiestMasterCores, _ = res.Value("busiest-master-cores")
	t.BytesPerTurn, _ = res.Value("B/turn")
	if t.BusiestMasterCores > 0 {
		t.CeilingTurnsPerSecond = round(t.TurnsPerSecond/t.BusiestMasterCores, 0)
	}
	return t
}
