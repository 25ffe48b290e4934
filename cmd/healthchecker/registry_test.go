package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// With registry.redis the checker's targets are in the fleet registry,
// and it says goodbye when it stops.
func TestTargetsArePublishedToTheRegistry(t *testing.T) {
	r := testenv.StartRedis(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer up.Close()
	cfg := filepath.Join(t.TempDir(), "hc.yaml")
	yaml := "registry:\n  redis: " + r.Addr + "\n  interval: 100ms\n  name: hc-test\n" +
		"defaults:\n  period: 50ms\n  initial_delay: 0s\n  jitter: 0s\n" +
		"targets:\n  - name: bot-up\n    liveness: " + up.URL + "/health\n  - name: bot-down\n    liveness: http://127.0.0.1:1/health\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	_, logs, stop := startRun(t, "--config", cfg)
	reg := registry.New(r.Client(), registry.Options{})
	states := func() map[string]healthcheck.State {
		f, err := reg.Read(context.Background())
		if err != nil || len(f.Checkers) != 1 || f.Checkers[0].Name != "hc-test" {
			return nil
		}
		out := map[string]healthcheck.State{"checker": healthcheck.State(f.Checkers[0].State)}
		for _, tg := range f.Checkers[0].Targets {
			out[tg.Name] = tg.State
		}
		return out
	}
	testenv.WaitFor(t, 10*time.Second, "the targets' states in the registry", func() bool {
		s := states()
		return s["checker"] == "alive" && s["bot-up"] == healthcheck.StateHealthy && s["bot-down"] == healthcheck.StateUnhealthy
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := states(); s["checker"] != registry.StateStopped {
		t.Fatalf("after stop: %v\n%s", s, logs)
	}
}
