package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/bench"
)

func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"bench"}, args...), func(string) string { return "" }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestHelpAndBadFlags(t *testing.T) {
	_, stderr, err := runCmd(t, "--help")
	if err != nil || !strings.Contains(stderr, "bench soak") || !strings.Contains(stderr, "-quick") || !strings.Contains(stderr, "overhead") {
		t.Errorf("--help: %v\n%s", err, stderr)
	}
	_, stderr, err = runCmd(t, "chaos", "--help")
	if err != nil || !strings.Contains(stderr, "kill-all-primaries") || !strings.Contains(stderr, "-scenario") {
		t.Errorf("chaos --help: %v\n%s", err, stderr)
	}
	for args, want := range map[string]string{
		"--only nope":             `unknown row "nope"`,
		"extra":                   "unexpected arguments",
		"soak --duration 0s":      "--duration must be positive",
		"--factor 1":              "LadderFactor must be above 1",
		"report --json /nonexist": "no such file",
		"chaos --scenario nope":   `unknown scenario "nope"`,
		"chaos extra":             "unexpected arguments",
		"chaos --chat-rate -1":    "rates must be positive",
	} {
		if _, _, err := runCmd(t, strings.Fields(args)...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", args, err, want)
		}
	}
}

// TestReportRewritesTheMarkdown: bench report renders BENCHMARKS.md and the
// soak plot from a bench.json alone.
func TestReportRewritesTheMarkdown(t *testing.T) {
	dir := t.TempDir()
	rep := &bench.Report{Schema: bench.SchemaVersion, Commit: bench.Commit{ID: "abc1234"},
		Searches: []bench.Search{{Name: "baseline", Path: "nginx → mockllm", MaxSustainedRPS: 8000, RatioToBaseline: 1}},
		Soak: &bench.Soak{DurationS: 60, RateRPS: 400, EveryS: 10, WarmupS: 12, Samples: []bench.SoakSample{
			{TS: 0, RSSBytes: []int{50e6}, RedisUsedMemory: 1e6, RedisKeys: 10},
			{TS: 20, RSSBytes: []int{51e6}, RedisUsedMemory: 2e6, RedisKeys: 20},
			{TS: 40, RSSBytes: []int{51e6}, RedisUsedMemory: 3e6, RedisKeys: 30},
			{TS: 60, RSSBytes: []int{51e6}, RedisUsedMemory: 4e6, RedisKeys: 40},
		}}}
	jsonFile := filepath.Join(dir, "bench.json")
	f, err := os.Create(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	md, svg := filepath.Join(dir, "B.md"), filepath.Join(dir, "B-soak.svg")
	if _, stderr, err := runCmd(t, "report", "--json", jsonFile, "--out", md, "--svg", svg, "--dir", dir); err != nil {
		t.Fatalf("report: %v\n%s", err, stderr)
	}
	doc, _ := os.ReadFile(md)
	for _, want := range []string{"from commit `abc1234`", "| baseline: nginx → mockllm | 8000 |", "![soak](B-soak.svg)", "## Soak"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, doc)
		}
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("soak plot: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "soak.html")); err != nil || !bytes.Contains(b, []byte("<svg")) {
		t.Errorf("soak page: %v", err)
	}
}
