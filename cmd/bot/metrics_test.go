package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape returns an instance's /metrics as text and parsed.
func scrape(t *testing.T, url string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return string(raw), mfs
}

// value sums the series of name whose labels include want: a counter's or
// gauge's value, a histogram's count.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	var sum float64
	mf := mfs[name]
	if mf == nil {
		return 0
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// After a known number of turns — plain and streamed on both endpoints,
// and IM — every counter and histogram count is exactly that number,
// /metrics passes promtool check metrics, and the fleet registry's
// heartbeat reports the same turns.
func TestMetricsCountEveryTurnExactly(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	bot := startBot(t, merge(redisEnv(r), imEnv(f), map[string]string{
		"BOT_AUTH_ADMIN_KEY": adminKey, "BOT_REGISTRY_INTERVAL": "100ms", "BOT_REGISTRY_TTL": "30s", "BOT_REGISTRY_WINDOW": "10m", "INSTANCE_NAME": "metered",
	}))
	for i := range 3 { // plain /v1/chat: first turns, cache misses
		if res := post(t, bot.url+"/v1/chat", chatBody(fmt.Sprint("plain-", i), fmt.Sprint("plain question ", i))); res.status != 200 {
			t.Fatalf("plain turn %d: %d", i, res.status)
		}
	}
	for i := range 2 { // streamed /v1/chat
		body := fmt.Sprintf(`{"session_id":"streamed-%d","message":"streamed question %d","stream":true}`, i, i)
		if status, _, raw := send(t, bot.url+"/v1/chat", body); status != 200 || !strings.Contains(string(raw), "event: done") {
			t.Fatalf("streamed turn %d: %d %s", i, status, raw)
		}
	}
	for i, stream := range []bool{false, true} { // completions, with memory (user)
		body := fmt.Sprintf(`{"model":"builtin","user":"u%d","stream":%v,"messages":[{"role":"user","content":"completion %d"}]}`, i, stream, i)
		if status, _, raw := send(t, bot.url+"/v1/chat/completions", body); status != 200 {
			t.Fatalf("completion %d: %d %s", i, status, raw)
		}
	}
	// A repeat of a plain first message in a new conversation: a cache hit.
	if res := post(t, bot.url+"/v1/chat", chatBody("plain-again", "plain question 0")); res.status != 200 {
		t.Fatalf("cached turn: %d", res.status)
	}
	events := []ev{{n: nextN(), user: "3001", text: "im question one"}, {n: nextN(), user: "3002", text: "im question two"}}
	for _, e := range events {
		h, body := telegramEvent(f, e)
		if status, _, _ := deliver(t, bot.url, "telegram", h, body); status != 200 {
			t.Fatalf("webhook: %d", status)
		}
	}
	for _, e := range events {
		f.waitReply(t, "telegram", fmt.Sprint(e.n))
	}
	// The queue acknowledges a job after its reply: wait for both.
	var text string
	var mfs map[string]*dto.MetricFamily
	testenv.WaitFor(t, 10*time.Second, "both IM jobs done", func() bool {
		text, mfs = scrape(t, bot.url)
		return value(mfs, "botfleet_queue_jobs_total", "outcome", "done") == 2
	})

	want := []struct {
		name   string
		labels []string
		n      float64
	}{
		{"botfleet_chat_turns_total", []string{"endpoint", "chat", "outcome", "answered"}, 5},
		{"botfleet_chat_turns_total", []string{"endpoint", "chat", "outcome", "cached"}, 1},
		{"botfleet_chat_turns_total", []string{"endpoint", "completions", "outcome", "answered"}, 2},
		{"botfleet_chat_turns_total", []string{"endpoint", "im", "outcome", "answered"}, 2},
		{"botfleet_chat_turns_total", nil, 10},
		{"botfleet_chat_turn_failures_total", nil, 0},
		{"botfleet_chat_turn_duration_seconds", []string{"endpoint", "chat"}, 6},
		{"botfleet_chat_turn_duration_seconds", []string{"endpoint", "completions"}, 2},
		{"botfleet_chat_turn_duration_seconds", []string{"endpoint", "im"}, 2},
		{"botfleet_chat_time_to_first_token_seconds", []string{"endpoint", "chat"}, 2},
		{"botfleet_chat_time_to_first_token_seconds", []string{"endpoint", "completions"}, 1},
		{"botfleet_chat_turns_in_flight", nil, 0},
		{"botfleet_chat_cache_lookups_total", []string{"result", "miss"}, 6},
		{"botfleet_chat_cache_lookups_total", []string{"result", "hit"}, 1},
		{"botfleet_memory_lock_wait_seconds", []string{"outcome", "granted"}, 10},
		{"botfleet_memory_lock_wait_seconds", nil, 10},
		{"botfleet_llm_request_duration_seconds", []string{"model", "builtin", "outcome", "ok"}, 9},
		{"botfleet_llm_time_to_first_token_seconds", nil, 3},
		{"botfleet_http_requests_total", []string{"route", "/v1/chat", "code", "200"}, 6},
		{"botfleet_http_request_duration_seconds", []string{"route", "/v1/chat", "method", "POST", "code", "200"}, 6},
		{"botfleet_http_request_duration_seconds", []string{"route", "/v1/chat/completions", "code", "200"}, 2},
		{"botfleet_http_request_duration_seconds", []string{"route", "/webhook/:platform", "code", "200"}, 2},
		{"botfleet_im_webhooks_total", []string{"platform", "telegram", "outcome", "queued"}, 2},
		{"botfleet_im_replies_total", []string{"platform", "telegram", "outcome", "sent"}, 2},
		{"botfleet_queue_job_duration_seconds", nil, 2},
		{"botfleet_queue_depth", nil, 0},
	}
	for _, w := range want {
		if got := value(mfs, w.name, w.labels...); got != w.n {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.n)
		}
	}
	for _, name := range []string{"botfleet_redis_pool_conn_total_current", "botfleet_redis_pool_hit_total", "botfleet_redis_pool_timeout_total",
		"go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes", "botfleet_llm_breaker_state", "botfleet_memory_store_state"} {
		if mfs[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	promtool := testenv.LookPath(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	// The heartbeat reads the same counters (its window, 10m here, holds
	// every turn of the test however slow the machine).
	reg := registry.New(r.Client(), registry.Options{})
	var seen string
	if !testenv.Eventually(30*time.Second, func() bool {
		fl, err := reg.Read(context.Background())
		if err != nil || len(fl.Instances) != 1 {
			seen = fmt.Sprintf("%d instances, %v", len(fl.Instances), err)
			return false
		}
		in := fl.Instances[0]
		seen = fmt.Sprintf("turns %d, duration count %d, queue workers %d", in.Traffic.Turns, in.Traffic.Duration.Count(), in.QueueWorkers)
		return in.Traffic.Turns == 10 && in.Traffic.Duration.Count() == 10 && in.QueueWorkers == 4
	}) {
		t.Fatalf("the heartbeat does not report every turn: %s; want 10 turns, 10 timed, 4 queue workers", seen)
	}

	// A failed turn (a request id reused with another message) makes the
	// failure counters exist too, for the dashboard's check.
	if res := post(t, bot.url+"/v1/chat", chatBody("plain-0", "another message"), "Idempotency-Key", "reused"); res.status != 200 {
		t.Fatalf("turn: %d", res.status)
	}
	if res := post(t, bot.url+"/v1/chat", chatBody("plain-0", "yet another"), "Idempotency-Key", "reused"); res.status != 409 {
		t.Fatalf("reused key: %d, want 409", res.status)
	}
	_, mfs = scrape(t, bot.url)
	if got := value(mfs, "botfleet_chat_turn_failures_total", "code", "idempotency_conflict"); got != 1 {
		t.Errorf("failures: %v, want 1", got)
	}
	checkDashboardMetrics(t, mfs)
}

// checkDashboardMetrics fails when a Grafana panel or a Prometheus rule
// names a metric that neither an instance, the health checker nor a
// recording rule exports.
func checkDashboardMetrics(t *testing.T, bot map[string]*dto.MetricFamily) {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{"up": true}
	for name := range bot {
		known[name] = true
	}
	for name := range healthcheckerMetrics(t) {
		known[name] = true
	}
	files, _ := filepath.Glob(filepath.Join(root, "deploy/prometheus/rules/*.yml"))
	files = append(files, filepath.Join(root, "deploy/grafana/dashboards/botfleet.json"))
	var exprs []string
	record := regexp.MustCompile(`(?m)^\s*- record: (\S+)`)
	expr := regexp.MustCompile(`(?m)"?expr"?: "?(.+?)"?,?$`)
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range record.FindAllStringSubmatch(string(b), -1) {
			known[m[1]] = true
		}
		for _, m := range expr.FindAllStringSubmatch(string(b), -1) {
			exprs = append(exprs, m[1])
		}
	}
	if len(exprs) < 30 {
		t.Fatalf("found only %d expressions in %v", len(exprs), files)
	}
	metric := regexp.MustCompile(`\b(botfleet[:_][a-z0-9_:]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)
	for _, e := range exprs {
		for _, name := range metric.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && !known[name] {
					base = b
				}
			}
			if !known[base] {
				t.Errorf("%q names %s, which nothing exports", e, name)
			}
		}
	}
}

// healthcheckerMetrics are the names a health checker exports once it has
// probed and restarted a target.
func healthcheckerMetrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler()) // liveness fails: a restart
	defer srv.Close()
	cfg := healthcheck.DefaultConfig()
	cfg.Listen = ""
	s := cfg.Defaults
	s.InitialDelay, s.Jitter, s.Period, s.FailureThreshold, s.StartupTimeout = 0, 0, 10*time.Millisecond, 1, 50*time.Millisecond
	s.Backoff.Initial = 0
	tg := healthcheck.NewTarget("t", srv.URL+"/health", s)
	tg.Restart = healthcheck.Restart{Strategy: healthcheck.StrategyCommand, Run: "true", Dir: "."}
	cfg.Targets = []healthcheck.Target{tg}
	reg := prometheus.NewRegistry()
	c, err := healthcheck.New(cfg, healthcheck.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	mfs := map[string]*dto.MetricFamily{}
	testenv.WaitFor(t, 10*time.Second, "the health checker's metrics", func() bool {
		got, _ := reg.Gather()
		for _, mf := range got {
			mfs[mf.GetName()] = mf
		}
		return value(mfs, "botfleet_healthcheck_restarts_total") > 0
	})
	return mfs
}
