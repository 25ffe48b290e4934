package fleet

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
	"go.yaml.in/yaml/v3"
)

// The Prometheus configs, recording rules and alerts are valid, and the
// alerts do what they say (deploy/prometheus/tests: HighErrorRate at 2 %
// for 10 minutes and not at 0.5 %, AllPrimariesDown when only the backup
// serves, ...).
func TestPrometheusRules(t *testing.T) {
	promtool := testenv.LookPath(t, "promtool")
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

// The monitoring profile: Prometheus with the repository's config and
// rules, Grafana with its provisioned datasource and dashboard, neither
// started without --profile monitoring (docker-compose config, in
// TestDockerCompose, checks the whole file).
func TestMonitoringCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Profiles []string `yaml:"profiles"`
			Volumes  []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatal(err)
	}
	for name, s := range c.Services {
		monitoring := name == "prometheus" || name == "grafana"
		if monitoring != slices.Equal(s.Profiles, []string{"monitoring"}) {
			t.Errorf("service %s: profiles %v", name, s.Profiles)
		}
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s, which does not exist", name, src)
				}
			}
		}
	}
	for _, name := range []string{"prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no %s service", name)
		}
	}
	var ds struct {
		Datasources []struct{ UID, URL string } `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(repoFile(t, "deploy/grafana/provisioning/datasources/prometheus.yml"), &ds); err != nil || len(ds.Datasources) != 1 {
		t.Fatalf("datasource: %+v %v", ds, err)
	}
	d := dashboard(t)
	// The seeds' panels.
	for _, want := range []string{"Success rate", "P99", "Error rate", "Latency per instance", "Memory", "Redis connection", "Queue length", "first token", "breakers"} {
		found := false
		for _, p := range d.Panels {
			found = found || strings.Contains(p.Title, want)
			if p.Datasource.UID != ds.Datasources[0].UID {
				t.Errorf("panel %q uses datasource %q, not the provisioned %q", p.Title, p.Datasource.UID, ds.Datasources[0].UID)
			}
		}
		if !found {
			t.Errorf("the dashboard has no %q panel", want)
		}
	}
}

// grafanaDashboard is what the tests read of deploy/grafana's dashboard.
type grafanaDashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func dashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal(repoFile(t, "deploy/grafana/dashboards/botfleet.json"), &d); err != nil || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard: %v", err)
	}
	return d
}
