package fleet

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// The Prometheus configs, recording rules and alerts are valid, and the
// alerts do what they say (deploy/prometheus/tests: HighErrorRate at 2 %
// for 10 minutes and not at 0.5 %, AllPrimariesDown when only the backup
// serves, ...).
func TestPrometheusRules(t *testing.T) {
	promtool := testenv.Program(t, "promtool", "prometheus")
	dir := filepath.Join(root, "deploy", "prometheus")
	rules, _ := filepath.Glob(filepath.Join(dir, "rules", "*.yml"))
	tests, _ := filepath.Glob(filepath.Join(dir, "tests", "*.yml"))
	if len(rules) < 2 || len(tests) == 0 {
		t.Fatalf("rules %v, tests %v", rules, tests)
	}
	for _, args := range [][]string{
		append([]string{"check", "rules"}, rules...),
		{"check", "config", filepath.Join(dir, "prometheus.yml")},
		{"check", "config", filepath.Join(dir, "prometheus.compose.yml")},
		append([]string{"test", "rules"}, tests...),
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
