package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/history"
	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// replays is how many acknowledged turns the broken client sends again.
const replays = 8

// replay is a broken client: it sends the first acknowledged chat turns of
// tr again through nginx, with their own request id (fresh false: an
// honest retry, which idempotency must absorb) or a fresh one (fresh true:
// a client that retries without its key, which the fleet cannot tell from
// a new turn — the history must show every one of them doubled).
func replay(fresh bool) func(ctx context.Context, c *chaosRun, tr *traffic) error {
	return func(ctx context.Context, c *chaosRun, tr *traffic) error {
		var picked []loadtest.CallRecord
		enough := testenv.Eventually(10*time.Second, func() bool {
			picked = picked[:0]
			tr.mu.Lock()
			defer tr.mu.Unlock()
			for _, r := range tr.chat {
				if history.Acknowledged(r) && len(picked) < replays {
					picked = append(picked, r)
				}
			}
			return len(picked) == replays
		})
		if !enough {
			return fmt.Errorf("only %d acknowledged turns to replay", len(picked))
		}
		for i, r := range picked {
			id := r.RequestID
			if fresh {
				id = fmt.Sprintf("replay-%d-%d", time.Now().UnixNano(), i)
			}
			body := fmt.Sprintf(`{"message":%q,"session_id":%q}`, r.Message, r.SessionID)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.f.nginxURL("fleet")+loadtest.ChatPath, strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+Key)
			req.Header.Set("X-Request-Id", id)
			resp, err := c.f.client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("replay of %s: %s", r.RequestID, resp.Status)
			}
		}
		return nil
	}
}

// TestChaosCheckerSeesDoubledTurns runs two scenarios on a real chaos
// fleet (redis-server with AOF, mockllm, an instance and a backup behind
// nginx, the fake Telegram) under the usual three loads: a client that
// retries acknowledged turns with their request ids leaves the history
// clean, and one that retries them with fresh ids makes the report show
// every one of them doubled — the checker reads the fleet's real memory.
func TestChaosCheckerSeesDoubledTurns(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	o := ChaosOptions{Root: root, Bin: binDir, Dir: t.TempDir(), Instances: 1, Backups: 1, ChatRate: 20, CompletionsRate: 5, TelegramRate: 5,
		Before: time.Second, After: time.Second}
	o.defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard, not a timing assertion
	defer cancel()
	c, err := startChaos(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()

	honest := c.scenario(ctx, scenario{name: "replay-same-ids", fault: "replays with the same request ids", run: replay(false)})
	if honest.Error != "" || honest.Verdict != VerdictHeld || honest.Duplicated != 0 || honest.Acknowledged == 0 || honest.IM.Answered1 == 0 {
		t.Fatalf("replays with their own ids: %+v", honest)
	}
	broken := c.scenario(ctx, scenario{name: "replay-fresh-ids", fault: "replays with fresh request ids", run: replay(true)})
	if broken.Error != "" || broken.Duplicated != replays || broken.Verdict != VerdictBroken || broken.Lost != 0 {
		t.Fatalf("replays with fresh ids: duplicated %d (want %d), verdict %q, lost %d, error %q",
			broken.Duplicated, replays, broken.Verdict, broken.Lost, broken.Error)
	}
	rep := &ChaosReport{Scenarios: []ScenarioResult{honest, broken}}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	row := fmt.Sprintf("| replay-fresh-ids | %.0f | %d | 0 | 0 | %d | 0 |", broken.OfferedRPS, broken.Requests, replays)
	if !strings.Contains(md.String(), row) || !strings.Contains(md.String(), "duplicated: ") {
		t.Fatalf("CHAOS.md lacks the doubled row %q or its examples:\n%s", row, md.String())
	}
}

// TestChaosReportKeys: chaos.json's keys are the README's, and CHAOS.md
// marks a broken row and states a bound with its figure.
func TestChaosReportKeys(t *testing.T) {
	rep := &ChaosReport{Schema: ChaosSchemaVersion, Scenarios: []ScenarioResult{
		{Name: "nginx-kill", Failed: map[string]int{"connection": 40}, Bad: 40, AllowedBad: 60, Verdict: VerdictWithinBound, Bound: "nothing listens."},
		{Name: "broken", Failed: map[string]int{}, Lost: 2, Verdict: VerdictBroken, P99AfterMS: 12},
		{Name: "failover", Failed: map[string]int{}, Lost: 1, Misnumbered: 1, AllowedLost: 5, Verdict: VerdictWithinBound, Bound: "async replication."},
	}}
	var js strings.Builder
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Scenarios []map[string]any `json:"scenarios"`
	}
	if err := json.Unmarshal([]byte(js.String()), &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "offered_rps", "requests", "failed", "failed_without_retry_after", "lost", "duplicated", "reordered",
		"im", "p99_during_ms", "p99_after_ms", "recover_s", "verdict", "dead_lettered"} {
		if _, ok := doc.Scenarios[0][k]; !ok {
			t.Errorf("chaos.json scenario lacks %q", k)
		}
	}
	if im, _ := doc.Scenarios[0]["im"].(map[string]any); im == nil || im["answered_0"] == nil || im["answered_2"] == nil {
		t.Errorf("chaos.json im = %v", doc.Scenarios[0]["im"])
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| within bound |", "| **not held** |", "Here: at most 60; measured 40.", "| — | 12 ms |",
		"Lost (with misnumbered and reordered): at most 5; measured 2."} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("CHAOS.md lacks %q", want)
		}
	}
}

// TestVerdict: the bounds let through only what they name.
func TestVerdict(t *testing.T) {
	for _, c := range []struct {
		name string
		r    ScenarioResult
		want string
	}{
		{"clean", ScenarioResult{}, VerdictHeld},
		{"failed with Retry-After only", ScenarioResult{Failed: map[string]int{"status_503": 9}}, VerdictHeld},
		{"bad within bound", ScenarioResult{Bad: 3, AllowedBad: 3}, VerdictWithinBound},
		{"bad past bound", ScenarioResult{Bad: 4, AllowedBad: 3}, VerdictBroken},
		{"bad without a bound", ScenarioResult{Bad: 1}, VerdictBroken},
		{"lost within bound", ScenarioResult{Lost: 1, Misnumbered: 1, AllowedLost: 2}, VerdictWithinBound},
		{"lost past bound", ScenarioResult{Lost: 2, Misnumbered: 1, AllowedLost: 2}, VerdictBroken},
		{"lost without a bound", ScenarioResult{Lost: 1, AllowedBad: 5}, VerdictBroken},
		{"doubled never within bound", ScenarioResult{Duplicated: 1, AllowedLost: 5, AllowedBad: 5}, VerdictBroken},
		{"unanswered event", ScenarioResult{IM: history.IMReport{Answered0: 1}, AllowedLost: 5}, VerdictBroken},
		{"error", ScenarioResult{Error: "fault: x"}, VerdictBroken},
	} {
		held, got := verdict(c.r)
		if got != c.want || held != (c.want == VerdictHeld) {
			t.Errorf("%s: verdict = %v, %q; want %q", c.name, held, got, c.want)
		}
	}
}
