package healthcheck

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// fastSettings are small timings for tests.
func fastSettings() Settings {
	return Settings{
		Period: 20 * time.Millisecond, Timeout: 200 * time.Millisecond, InitialDelay: 10 * time.Millisecond, Jitter: 10 * time.Millisecond,
		FailureThreshold: 3, SuccessThreshold: 1, Grace: 2 * time.Second, StartupTimeout: 2 * time.Second,
		Backoff: BackoffConfig{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, ResetAfter: time.Minute},
		Budget:  BudgetConfig{Restarts: 5, Window: time.Minute},
	}
}

// testLogger writes the checker's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// checkerConfig is the default configuration for targets, without the
// /status listener.
func checkerConfig(targets ...Target) *Config {
	cfg := DefaultConfig()
	cfg.Listen = ""
	cfg.Targets = targets
	return cfg
}

// startChecker runs a Checker for cfg until the test ends (or stop is
// called) and returns it.
func startChecker(t *testing.T, cfg *Config, p Prober) (c *Checker, stop func()) {
	t.Helper()
	c, err := New(cfg, Options{Logger: testLogger(t), Prober: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return within 30s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func statusOf(c *Checker, name string) TargetStatus {
	for _, s := range c.Status() {
		if s.Name == name {
			return s
		}
	}
	return TargetStatus{}
}

// commandTarget restarts by appending a line to a file, so restarts are
// counted by an outside effect.
func commandTarget(t *testing.T, name, liveness string, s Settings) (Target, string) {
	marker := filepath.Join(t.TempDir(), "restarts")
	tg := NewTarget(name, liveness, s)
	tg.Restart = Restart{Strategy: StrategyCommand, Run: "echo {{.Name}} >> " + marker}
	return tg, marker
}

func lines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

func TestTwoFailuresDoNotRestartThreeDo(t *testing.T) {
	p := newScriptProber()
	p.set("http://a/health", func(n int) error {
		if n == 3 || n == 4 { // two in a row
			return errDown
		}
		return nil
	})
	p.set("http://b/health", func(n int) error {
		if n >= 3 && n <= 5 { // three in a row
			return errDown
		}
		return nil
	})
	a, markA := commandTarget(t, "a", "http://a/health", fastSettings())
	b, markB := commandTarget(t, "b", "http://b/health", fastSettings())
	cfg := checkerConfig(a, b)
	c, _ := startChecker(t, cfg, p)

	testenv.WaitFor(t, 10*time.Second, "b restarted once and healthy", func() bool {
		s := statusOf(c, "b")
		return s.Restarts.Total == 1 && s.State == StateHealthy
	})
	testenv.WaitFor(t, 10*time.Second, "a probed 20 times", func() bool { return p.count("http://a/health") >= 20 })
	if s := statusOf(c, "a"); s.Restarts.Total != 0 || s.State != StateHealthy || lines(markA) != 0 {
		t.Fatalf("a (2 failures, threshold 3) was restarted: %+v", s)
	}
	if n := lines(markB); n != 1 {
		t.Fatalf("b's restart command ran %d times, want 1", n)
	}
}

// A Redis outage makes /ready fail everywhere while /health stays 200: no
// restart may follow, however long it lasts.
func TestReadinessFailuresNeverRestart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			http.Error(w, `{"error":{"code":"unavailable","message":"redis: connection refused"}}`, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	s := fastSettings()
	s.FailureThreshold = 1
	tg, marker := commandTarget(t, "bot", srv.URL+"/health", s)
	tg.Readiness = srv.URL + "/ready"
	cfg := checkerConfig(tg)
	c, _ := startChecker(t, cfg, nil)

	testenv.WaitFor(t, 10*time.Second, "30 failed readiness probes", func() bool {
		s := statusOf(c, "bot")
		return s.Readiness != nil && s.Readiness.ConsecutiveFailures >= 30
	})
	st := statusOf(c, "bot")
	if st.Readiness.State != ResultFailure || !strings.Contains(st.Readiness.LastError, "503") {
		t.Fatalf("readiness: %+v", st.Readiness)
	}
	if st.State != StateHealthy || st.Liveness.State != ResultSuccess || st.Restarts.Total != 0 || lines(marker) != 0 {
		t.Fatalf("readiness failures restarted or unhealthy: %+v", st)
	}
}

// webhook is a fake alert receiver.
type webhook struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
	srv  *httptest.Server
}

func newWebhook(t *testing.T, reply string) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		w.reqs = append(w.reqs, r)
		w.body = append(w.body, b)
		w.mu.Unlock()
		rw.Header().Set("Content-Type", "application/json")
		rw.Write([]byte(reply))
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.reqs)
}

// hmacSHA256Base64 computes base64(HMAC-SHA256(key, msg)) independently of
// the package: with openssl when it exists, else crypto/hmac.
func hmacSHA256Base64(t *testing.T, key, msg string) string {
	if openssl, err := exec.LookPath("openssl"); err == nil {
		cmd := exec.Command(openssl, "dgst", "-sha256", "-hmac", key, "-binary")
		cmd.Stdin = strings.NewReader(msg)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("openssl: %v", err)
		}
		return base64.StdEncoding.EncodeToString(out)
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestBudgetMarksFailedAndAlertsOnce(t *testing.T) {
	for _, kind := range []string{AlertGeneric, AlertDingTalk, AlertFeishu} {
		t.Run(kind, func(t *testing.T) {
			reply := `{"errcode":0,"errmsg":"ok"}`
			if kind == AlertFeishu {
				reply = `{"code":0,"msg":"success"}`
			}
			hook := newWebhook(t, reply)
			p := newScriptProber()
			var healthy sync.Map
			p.set("http://x/health", func(int) error {
				if _, ok := healthy.Load("yes"); ok {
					return nil
				}
				return errDown
			})
			s := fastSettings()
			s.FailureThreshold = 1
			s.StartupTimeout = 50 * time.Millisecond
			s.Budget = BudgetConfig{Restarts: 3, Window: time.Minute}
			tg, marker := commandTarget(t, "bot-x", "http://x/health", s)
			cfg := checkerConfig(tg)
			cfg.Alert = Alert{Webhook: hook.srv.URL + "/robot/send?access_token=tok", Kind: kind, Secret: "SEC-test-secret"}
			c, _ := startChecker(t, cfg, p)

			testenv.WaitFor(t, 10*time.Second, "target failed and alert posted", func() bool {
				return statusOf(c, "bot-x").State == StateFailed && hook.count() >= 1
			})
			// Failures go on; no more restarts, no second alert.
			probes := p.count("http://x/health")
			testenv.WaitFor(t, 10*time.Second, "20 more probes", func() bool { return p.count("http://x/health") >= probes+20 })
			st := statusOf(c, "bot-x")
			if hook.count() != 1 || st.Restarts.Total != 3 || lines(marker) != 3 || st.State != StateFailed {
				t.Fatalf("alerts %d, restarts %d (command ran %d times), state %s; want 1 alert, 3 restarts, failed",
					hook.count(), st.Restarts.Total, lines(marker), st.State)
			}
			checkAlert(t, kind, cfg.Alert.Secret, hook.reqs[0], hook.body[0])

			// Healthy on its own: the failed state clears.
			healthy.Store("yes", true)
			testenv.WaitFor(t, 10*time.Second, "healthy again", func() bool { return statusOf(c, "bot-x").State == StateHealthy })
		})
	}
}

func checkAlert(t *testing.T, kind, secret string, r *http.Request, body []byte) {
	t.Helper()
	t.Logf("%s alert: %s %s", kind, r.URL, body)
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("alert request %s %s", r.Method, r.Header.Get("Content-Type"))
	}
	if r.URL.Query().Get("access_token") != "tok" {
		t.Fatalf("webhook query lost: %s", r.URL)
	}
	switch kind {
	case AlertGeneric:
		var ev AlertEvent
		if err := json.Unmarshal(body, &ev); err != nil || ev.Target != "bot-x" || ev.State != StateFailed || ev.Restarts != 3 || ev.Message == "" {
			t.Fatalf("generic body %s (%v)", body, err)
		}
	case AlertDingTalk:
		var m struct {
			MsgType string `json:"msgtype"`
			Text    struct {
				Content string `json:"content"`
			} `json:"text"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.MsgType != "text" || !strings.Contains(m.Text.Content, "bot-x") {
			t.Fatalf("dingtalk body %s (%v)", body, err)
		}
		ts := r.URL.Query().Get("timestamp")
		ms, err := strconv.ParseInt(ts, 10, 64)
		if err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Hour {
			t.Fatalf("dingtalk timestamp %q is not milliseconds now", ts)
		}
		// The raw query must carry the signature URL-encoded.
		if !strings.Contains(r.URL.RawQuery, "sign="+url.QueryEscape(r.URL.Query().Get("sign"))) {
			t.Fatalf("sign not URL-encoded in %q", r.URL.RawQuery)
		}
		want := hmacSHA256Base64(t, secret, ts+"\n"+secret)
		if got := r.URL.Query().Get("sign"); got != want {
			t.Fatalf("dingtalk sign %q, want %q", got, want)
		}
	case AlertFeishu:
		var m struct {
			Timestamp string `json:"timestamp"`
			Sign      string `json:"sign"`
			MsgType   string `json:"msg_type"`
			Content   struct {
				Text string `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.MsgType != "text" || !strings.Contains(m.Content.Text, "bot-x") {
			t.Fatalf("feishu body %s (%v)", body, err)
		}
		sec, err := strconv.ParseInt(m.Timestamp, 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Hour {
			t.Fatalf("feishu timestamp %q is not seconds now", m.Timestamp)
		}
		want := hmacSHA256Base64(t, m.Timestamp+"\n"+secret, "")
		if m.Sign != want {
			t.Fatalf("feishu sign %q, want %q", m.Sign, want)
		}
	}
}

func TestStatusAndMetricsEndpoints(t *testing.T) {
	p := newScriptProber()
	p.set("http://r/ready", func(int) error { return errDown })
	tg := NewTarget("bot-1", "http://l/health", fastSettings())
	tg.Readiness = "http://r/ready"
	cfg := DefaultConfig()
	cfg.Targets = []Target{tg}
	c, _ := startChecker(t, cfg, p)
	testenv.WaitFor(t, 10*time.Second, "healthy and unready", func() bool {
		s := statusOf(c, "bot-1")
		return s.State == StateHealthy && s.Readiness.State == ResultFailure
	})
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var rep StatusReport
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || len(rep.Targets) != 1 || rep.Targets[0].Name != "bot-1" || rep.Targets[0].State != StateHealthy ||
		rep.Targets[0].Liveness.LastProbe.IsZero() || rep.Targets[0].Backoff.Current != "0s" || rep.Targets[0].Restarts.Budget != 5 {
		t.Fatalf("status %+v (%v)", rep, err)
	}

	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`botfleet_healthcheck_probes_total{kind="liveness",result="success",target="bot-1"}`,
		`botfleet_healthcheck_probes_total{kind="readiness",result="failure",target="bot-1"}`,
		`botfleet_healthcheck_target_state{state="healthy",target="bot-1"} 1`,
		`botfleet_healthcheck_target_state{state="failed",target="bot-1"} 0`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestReloadAddsRemovesChanges(t *testing.T) {
	p := newScriptProber()
	s := fastSettings()
	cfg := checkerConfig(NewTarget("a", "http://a/health", s), NewTarget("b", "http://b/health", s))
	c, _ := startChecker(t, cfg, p)
	testenv.WaitFor(t, 10*time.Second, "both healthy", func() bool {
		return statusOf(c, "a").State == StateHealthy && statusOf(c, "b").State == StateHealthy
	})

	s2 := s
	s2.Period = 30 * time.Millisecond
	next := DefaultConfig()
	next.Listen = ""
	next.Targets = []Target{NewTarget("b", "http://b/health", s2), NewTarget("c", "http://c/health", s)}
	if err := c.Reload(next); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range c.Status() {
		names = append(names, st.Name)
	}
	if strings.Join(names, ",") != "b,c" {
		t.Fatalf("targets after reload: %v", names)
	}
	testenv.WaitFor(t, 10*time.Second, "c probed", func() bool { return statusOf(c, "c").State == StateHealthy })
	// c probes at a's period: while c is probed five more times, a removed
	// target still probed would be too.
	aProbes, cProbes := p.count("http://a/health"), p.count("http://c/health")
	testenv.WaitFor(t, 10*time.Second, "five more probes of c", func() bool { return p.count("http://c/health") >= cProbes+5 })
	if n := p.count("http://a/health"); n != aProbes {
		t.Fatalf("removed target a still probed (%d -> %d)", aProbes, n)
	}

	bad := DefaultConfig()
	bad.Targets = []Target{{Name: "z"}}
	if err := c.Reload(bad); err == nil || !strings.Contains(err.Error(), "liveness") {
		t.Fatalf("bad reload: %v", err)
	}
	if len(c.Status()) != 2 {
		t.Fatal("a bad reload changed the targets")
	}
}
