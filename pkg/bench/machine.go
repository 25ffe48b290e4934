package bench

import (
	"context"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// newReport starts a report with the machine, the commit and the settings.
func newReport(ctx context.Context, o Options) *Report {
	rep := &Report{Schema: SchemaVersion, Generated: time.Now().UTC().Truncate(time.Second), Quick: o.Quick,
		Settings: Settings{
			StepS: o.Step.Seconds(), WarmupS: o.Warmup.Seconds(), PauseS: o.Pause.Seconds(),
			LadderStart: o.LadderStart, LadderFactor: o.LadderFactor, SLOP99MS: 50, MaxLate: o.MaxLate, Turns: o.Turns,
			MaxEntries: o.MaxEntries, SessionsPerRPS: o.SessionsPerRPS, Instances: o.Instances,
		},
		Searches: []Search{}, Overhead: []Overhead{}, Growth: []Growth{}, GoBenchmarks: []GoBenchmark{}, Notes: []string{},
	}
	rep.Machine, rep.Commit = machineOf(ctx, o.Root)
	return rep
}

// machineOf describes this machine and the commit of the repository at
// root.
func machineOf(ctx context.Context, root string) (Machine, Commit) {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if cpus, err := fs.CPUInfo(); err == nil && len(cpus) > 0 {
			m.CPUModel = cpus[0].ModelName
		}
		if mi, err := fs.Meminfo(); err == nil && mi.MemTotal != nil {
			m.MemoryBytes = *mi.MemTotal * 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.Redis, m.Nginx = versions(ctx)
	git := func(args ...string) string {
		c := exec.CommandContext(ctx, "git", args...)
		c.Dir = root
		out, _ := c.Output()
		return strings.TrimSpace(string(out))
	}
	return m, Commit{ID: git("rev-parse", "--short", "HEAD"), Dirty: git("status", "--porcelain") != ""}
}

// round rounds v to n decimals.
func round(v float64, n int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(n))
	return math.Round(v*p) / p
}

// ms is d in milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

// ratio is a/b, 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round(a/b, 3)
}
