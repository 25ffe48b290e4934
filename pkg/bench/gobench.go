package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/perf/benchfmt"
)

// goBenchPackages are the packages of the turn path whose Go benchmarks the
// report shows.
var goBenchPackages = []string{"./cmd/bot", "./pkg/chat", "./pkg/memory", "./pkg/llm", "./pkg/mockllm", "./pkg/loadtest"}

// goBench runs the Go benchmarks (after the fleet is stopped, so they get
// the machine) and the test that counts a turn's Redis round trips.
func (r *run) goBench(ctx context.Context) error {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchmem"}
	if r.o.Quick {
		args = append(args, "-benchtime", "200x")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, goBenchPackages...)...)
	cmd.Dir = r.o.Root
	out, err := cmd.CombinedOutput()
	if werr := os.WriteFile(filepath.Join(r.o.Dir, "gobench.txt"), out, 0o644); werr != nil {
		return werr
	}
	rd := benchfmt.NewReader(bytes.NewReader(out), "gobench.txt")
	for rd.Scan() {
		res, ok := rd.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		b := GoBenchmark{Package: res.GetConfig("pkg"), Name: res.Name.String()}
		for _, v := range res.Values {
			switch v.Unit {
			case "sec/op":
				b.NsPerOp = round(v.Value*1e9, 0)
			case "B/op":
				b.BytesPerOp = v.Value
			case "allocs/op":
				b.AllocsPerOp = v.Value
			}
		}
		r.rep.GoBenchmarks = append(r.rep.GoBenchmarks, b)
	}
	if err != nil {
		return err
	}
	rt := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^TestTurnsAreTwoRoundTrips$", "./pkg/chat")
	rt.Dir = r.o.Root
	rtOut, rtErr := rt.CombinedOutput()
	_ = os.WriteFile(filepath.Join(r.o.Dir, "roundtrips.txt"), rtOut, 0o644)
	if rtErr != nil {
		r.note("TestTurnsAreTwoRoundTrips failed: see %s", filepath.Join(r.o.Dir, "roundtrips.txt"))
		return nil
	}
	r.rep.RedisRoundTrips = 2
	return nil
}
