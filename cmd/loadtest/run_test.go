package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chatServer is a minimal /v1/chat: it requires "Bearer key", numbers each
// session's turns and answers status(k) instead when that is not 0.
func chatServer(t *testing.T, status func(k int64) int) string {
	t.Helper()
	var k atomic.Int64
	var mu sync.Mutex
	turns := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer key" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"no"}}`)
			return
		}
		if st := status(k.Add(1)); st != 0 {
			w.WriteHeader(st)
			fmt.Fprint(w, `{"error":{"code":"x","message":"injected"}}`)
			return
		}
		var req struct {
			Message   string `json:"message"`
			SessionID string `json:"session_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Message == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mu.Lock()
		turns[req.SessionID]++
		n := turns[req.SessionID]
		mu.Unlock()
		fmt.Fprintf(w, `{"reply":"ok","confidence":1,"timestamp":1,"session_id":%q,"turn":%d,"instance":"t"}`, req.SessionID, n)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func ok(int64) int { return 0 }

// runCmd runs the command with args and $API_KEY=key, bounded by a hang
// guard (not a timing assertion).
func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	env := map[string]string{"API_KEY": "key"}
	err = run(ctx, append([]string{"loadtest"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestHelp(t *testing.T) {
	_, stderr, err := runCmd(t, "--help")
	if err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"Usage: loadtest", "--rate", "-users", "-think", "-slo-p99", "-json", "coordinated omission", "$API_KEY"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "10", "--users", "5"}, "--rate and --users are mutually exclusive"},
		{[]string{"--think", "1s"}, "--think applies to the closed model only"},
		{[]string{"--users", "0"}, "--users must be at least 1"},
		{[]string{"--rate", "0"}, "--rate must be positive"},
		{[]string{"--users", "4", "--sessions", "2"}, "--sessions (2) must be at least --users (4)"},
		{[]string{"--duration", "0s"}, "--duration must be positive"},
		{[]string{"--turns", "-1"}, "--turns must not be negative"},
		{[]string{"--slo-error-rate", "1.5"}, "--slo-error-rate must be a fraction in [0,1]"},
		{[]string{"--slo-error-rate", "x"}, "invalid value"},
		{[]string{"--target", "smtp"}, `unknown target "smtp" (known: chat, completions, completions-stream, telegram)`},
		{[]string{"--url", "localhost:8080"}, "want http://host"},
		{[]string{"--max-inflight", "0"}, "--max-inflight must be at least 1"},
		{[]string{"--users", "20", "--max-inflight", "10"}, "--users (20) exceeds --max-inflight (10)"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--search", "--users", "3"}, "--search drives the open model"},
		{[]string{"--search", "--slo-error-rate", "0"}, "--slo-error-rate does not apply to --search"},
		{[]string{"--search", "--rates", "100,50"}, "--rates must ascend"},
		{[]string{"--search", "--rates", "100,x"}, `--rates: "x" is not a positive rate`},
		{[]string{"--search", "--step-factor", "1"}, "--step-factor must be above 1"},
		{[]string{"--search", "--rate", "500", "--max-rate", "100"}, "--rate 500 exceeds --max-rate 100"},
		{[]string{"--rates", "100"}, "--rates applies to --search only"},
		{[]string{"--markdown", "x.md"}, "--markdown applies to --search only"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
	} {
		_, _, err := runCmd(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestRunWritesReports(t *testing.T) {
	dir := t.TempDir()
	jsonFile, htmlFile := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	stdout, stderr, err := runCmd(t, "--url", chatServer(t, ok), "--rate", "100", "--duration", "1s", "--warmup", "200ms",
		"--seed", "5", "--json", jsonFile, "--html", htmlFile, "--slo-p99", "5s", "--slo-error-rate", "0")
	if err != nil {
		t.Fatalf("run: %v\n%s%s", err, stdout, stderr)
	}
	for _, want := range []string{"open model", "requests    100: 100 succeeded, 0 failed", "p99", "continuity  100 checked, 0 broken", "seed 5"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "open model, 100 req/s") {
		t.Errorf("stderr: %s", stderr)
	}

	doc, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	want := []string{"achieved_rps", "continuity", "duration_s", "errors", "failed", "late", "latency_ms",
		"model", "offered_rps", "requests", "settings", "succeeded"}
	if !slices.Equal(ks, want) {
		t.Errorf("JSON keys %v, want %v", ks, want)
	}
	var r struct {
		Model      string           `json:"model"`
		Requests   int              `json:"requests"`
		Errors     map[string]int   `json:"errors"`
		Latency    map[string]any   `json:"latency_ms"`
		Continuity map[string]int   `json:"continuity"`
		Settings   map[string]any   `json:"settings"`
		Offered    float64          `json:"offered_rps"`
		Extra      map[string]int64 `json:"-"`
	}
	if err := json.Unmarshal(doc, &r); err != nil {
		t.Fatal(err)
	}
	if r.Model != "open" || r.Requests != 100 || r.Offered != 100 || len(r.Errors) != 0 || r.Continuity["checked"] != 100 {
		t.Errorf("JSON: %s", doc)
	}
	if _, leaked := r.Settings["token"]; leaked || strings.Contains(string(doc), "key") && strings.Contains(string(doc), `"key"`) {
		t.Errorf("the token leaked into the JSON: %s", doc)
	}

	page, err := os.ReadFile(htmlFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "src=", "href=", "url(", "@import"} {
		if bytes.Contains(bytes.ToLower(page), []byte(bad)) {
			t.Errorf("HTML contains %q", bad)
		}
	}
	if !bytes.Contains(page, []byte("<svg")) {
		t.Error("HTML has no chart")
	}
}

func TestClosedModel(t *testing.T) {
	stdout, _, err := runCmd(t, "--url", chatServer(t, ok), "--users", "3", "--think", "50ms", "--duration", "500ms", "--warmup", "0s", "--quiet")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "closed model") || !strings.Contains(stdout, "3 users, think 50ms") {
		t.Errorf("summary:\n%s", stdout)
	}
}

func TestSLOBroken(t *testing.T) {
	url := chatServer(t, ok)
	_, _, err := runCmd(t, "--url", url, "--rate", "50", "--duration", "500ms", "--warmup", "0s", "--quiet", "--slo-p99", "1ns")
	if err == nil || !strings.HasPrefix(err.Error(), "SLO broken: p99 ") || !strings.Contains(err.Error(), " > 1ns") {
		t.Errorf("p99 SLO: error %v", err)
	}

	every4th503 := func(k int64) int {
		if k%4 == 0 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	stdout, _, err := runCmd(t, "--url", chatServer(t, every4th503), "--rate", "50", "--duration", "1s", "--warmup", "0s", "--quiet",
		"--slo-error-rate", "0.01")
	if err == nil || !strings.Contains(err.Error(), "SLO broken: error rate") || !strings.Contains(err.Error(), "status_503") {
		t.Errorf("error-rate SLO: error %v", err)
	}
	if !strings.Contains(stdout, "status_503") {
		t.Errorf("summary lacks the errors by cause:\n%s", stdout)
	}
}

func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"loadtest", "--url", chatServer(t, ok), "--token", "key", "--rate", "50", "--duration", "1h", "--warmup", "0s"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("error %v, want interrupted", err)
	}
	if !strings.Contains(out.String(), "INTERRUPTED") {
		t.Errorf("summary:\n%s", out.String())
	}
}

// TestSearch runs a rate search against a server that answers slowly once
// its arrival rate passes 150 req/s: the table, the verdict, the JSON and
// Markdown reports and the step hook.
func TestSearch(t *testing.T) {
	// Above 150 req/s the server sheds load: a 503 for every other
	// conversation of the step (its session ids say which step it is,
	// "search-s<k>-..."), so the steps that break are the server's choice,
	// not this machine's load.
	inner := chatServer(t, ok)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var call struct {
			SessionID string `json:"session_id"`
		}
		_ = json.Unmarshal(body, &call)
		if strings.HasPrefix(call.SessionID, "search-s3-") || strings.HasPrefix(call.SessionID, "search-s4-") {
			if crc32.ChecksumIEEE([]byte(call.SessionID))%2 == 0 {
				w.Header().Set("Retry-After", "1")
				http.Error(w, `{"error":{"code":"overloaded","message":"shedding load"}}`, http.StatusServiceUnavailable)
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, inner+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(slow.Close)

	dir := t.TempDir()
	jsonFile, mdFile, hookLog := filepath.Join(dir, "s.json"), filepath.Join(dir, "s.md"), filepath.Join(dir, "hook.log")
	stdout, stderr, err := runCmd(t, "--url", slow.URL, "--search", "--rates", "50,100,400,800", "--duration", "800ms", "--warmup", "200ms", "--max-late", "1",
		"--session-prefix", "search-",
		"--pause", "0s", "--sessions-per-rps", "0.5", "--json", jsonFile, "--markdown", mdFile,
		"--step-cmd", `echo "$LOADTEST_STEP $LOADTEST_RATE $LOADTEST_PHASE $LOADTEST_HELD" >> `+hookLog)
	if err != nil {
		t.Fatalf("search: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("\n%s", stdout)
	for _, want := range []string{"rate  achieved", "p99.9", "max sustained: 100 req/s (p99 ≤ 50ms"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "\n      800 ") {
		t.Errorf("the search went on after a broken step:\n%s", stdout)
	}
	doc, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var js struct {
		Steps []struct {
			OfferedRPS float64 `json:"offered_rps"`
			Held       bool    `json:"held"`
			Settings   struct {
				Sessions int `json:"sessions"`
			} `json:"settings"`
		} `json:"steps"`
		MaxSustainedRPS float64 `json:"max_sustained_rps"`
	}
	if err := json.Unmarshal(doc, &js); err != nil {
		t.Fatal(err)
	}
	if js.MaxSustainedRPS != 100 || len(js.Steps) != 3 || js.Steps[2].Held || js.Steps[1].Settings.Sessions != 50 {
		t.Errorf("json: %s", doc)
	}
	md, err := os.ReadFile(mdFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| offered req/s |") || !strings.Contains(string(md), "Max sustained: **100 req/s**") {
		t.Errorf("markdown:\n%s", md)
	}
	hook, err := os.ReadFile(hookLog)
	if err != nil {
		t.Fatal(err)
	}
	want := "1 50 measure \n1 50 done yes\n2 100 measure \n2 100 done yes\n3 400 measure \n3 400 done no\n"
	if string(hook) != want {
		t.Errorf("hook log:\n%s\nwant:\n%s", hook, want)
	}
}

func TestSearchCompletions(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model    string `json:"model"`
			Messages []struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"messages"`
			User string `json:"user"`
		}
		if r.URL.Path != "/v1/chat/completions" || json.NewDecoder(r.Body).Decode(&req) != nil || req.Model != "m-2" || req.User == "" || len(req.Messages) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, `{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}`)
	}))
	t.Cleanup(srv.Close)
	out := filepath.Join(t.TempDir(), "search.json")
	stdout, _, err := runCmd(t, "--url", srv.URL, "--target", "completions", "--model", "m-2", "--search", "--rates", "20,40",
		"--duration", "300ms", "--warmup", "0s", "--pause", "0s", "--quiet", "--json", out)
	// Whether a step holds depends on the machine's timing (a request sent
	// late breaks it), so the test checks what does not: every request
	// reached the server in the completions wire format and was answered.
	var report struct {
		Steps []struct {
			OfferedRPS float64        `json:"offered_rps"`
			Requests   int            `json:"requests"`
			Errors     map[string]int `json:"errors"`
			Broken     []string       `json:"broken"`
		} `json:"steps"`
	}
	raw, rerr := os.ReadFile(out)
	if rerr != nil || json.Unmarshal(raw, &report) != nil || len(report.Steps) == 0 {
		t.Fatalf("search wrote no report (%v):\n%s", err, stdout)
	}
	if report.Steps[0].OfferedRPS != 20 {
		t.Fatalf("first step at %v req/s, want 20", report.Steps[0].OfferedRPS)
	}
	for i, st := range report.Steps {
		if st.Requests == 0 || len(st.Errors) > 0 {
			t.Fatalf("step %d: %d requests, errors %v:\n%s", i, st.Requests, st.Errors, stdout)
		}
	}
	if err != nil && !strings.Contains(stdout, "late") {
		t.Fatalf("search failed for another reason than lateness: %v\n%s", err, stdout)
	}
	if err == nil && !strings.Contains(stdout, "max sustained:") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

// TestUnauthorizedSaysWhichFlag: the first 401 names --token and API_KEY
// while the run goes on, and the final error repeats it; with a wrong
// token no request succeeds, and the run says so.
func TestUnauthorizedSaysWhichFlag(t *testing.T) {
	url := chatServer(t, ok)
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"loadtest", "--url", url, "--rate", "20", "--duration", "300ms", "--warmup", "0s", "--quiet"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "pass --token KEY or set API_KEY") {
		t.Errorf("error %v, want the hint", err)
	}
	if n := strings.Count(errOut.String(), "401 Unauthorized: no API key was sent: pass --token KEY or set API_KEY"); n != 1 {
		t.Errorf("stderr has the hint %d times, want once:\n%s", n, errOut.String())
	}
	_, stderr, err := runCmd(t, "--url", url, "--token", "wrong", "--rate", "20", "--duration", "300ms", "--warmup", "0s", "--quiet")
	if err == nil || !strings.Contains(err.Error(), "no request succeeded") || !strings.Contains(err.Error(), "status_401") {
		t.Errorf("a wrong token: error %v, want no request succeeded with status_401", err)
	}
	if !strings.Contains(stderr, "the API key was refused") {
		t.Errorf("a wrong token: stderr %q", stderr)
	}
}
