package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/mockllm"
)

// stepOf is the 1-based search step a session id belongs to: every step
// starts conversations of its own, "<prefix>s<k>-...".
func stepOf(prefix, session string) int {
	rest, ok := strings.CutPrefix(session, prefix+"s")
	if !ok {
		return 0
	}
	k, _ := strconv.Atoi(rest[:strings.IndexByte(rest, '-')])
	return k
}

// TestSearchFindsTheCapacity drives, with the default ladder, a server
// that sheds load (503 for every other conversation) in a step offered
// above its capacity of 300 req/s — it knows a request's step by its
// session id — so the course
// of the search is the server's, not this machine's load: it must run the
// steps that hold, stop at the first that breaks and report the one below
// it. The latency and lateness objectives have judge's own test; here they
// are set out of reach.
func TestSearchFindsTheCapacity(t *testing.T) {
	const capRate, prefix = 300, "search-"
	ladder := []float64{100, 150, 225, 338, 506, 759, 1139, 1709}
	f := &fakeChat{refuse: func(session string) bool {
		k := stepOf(prefix, session)
		return k > 0 && ladder[k-1] > capRate && crc32.ChecksumIEEE([]byte(session))%2 == 0
	}}
	var events []string
	var mu sync.Mutex
	opts := SearchOptions{
		Options: Options{URL: serve(t, f), Rate: 100, Warmup: 200 * time.Millisecond, Duration: 1500 * time.Millisecond, Turns: -1, Seed: 7,
			SessionPrefix: prefix},
		Factor:      1.5,
		MaxRate:     2000,
		P99:         time.Minute,
		MaxLate:     1,
		MinAchieved: 0.01,
		OnStep: func(e StepEvent) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, e.Phase)
			if e.Phase == PhaseDone && e.Step == nil {
				t.Error("done event without its step")
			}
		},
	}
	if got := opts.Ladder(); !slices.Equal(got, ladder) {
		t.Fatalf("ladder %v, want %v", got, ladder)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sr, err := Search(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := sr.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if sr.Interrupted {
		t.Fatal("interrupted")
	}
	if sr.MaxSustainedRPS != 225 || len(sr.Steps) != 4 {
		t.Errorf("max sustained %v req/s after %d steps, want 225 after 4 (the first above %v breaks)", sr.MaxSustainedRPS, len(sr.Steps), capRate)
	}
	last := sr.Steps[len(sr.Steps)-1]
	if last.Held {
		t.Fatalf("the search ran the whole ladder: no step broke")
	}
	for _, st := range sr.Steps[:len(sr.Steps)-1] {
		if !st.Held {
			t.Errorf("step %v broke (%v) but the search went on", st.Rate, st.Broken)
		}
	}
	if last.Rate != 338 || len(last.Broken) == 0 || !strings.Contains(strings.Join(last.Broken, "; "), "errors (status_503") {
		t.Errorf("broke at %v req/s (%v), want 338 on its errors", last.Rate, last.Broken)
	}
	if sr.Best == nil || sr.Best.Rate != sr.MaxSustainedRPS {
		t.Errorf("best step %+v, max sustained %v", sr.Best, sr.MaxSustainedRPS)
	}
	// Every step starts fresh conversations: continuity holds in each.
	for _, st := range sr.Steps {
		if st.Result.Continuity.Broken != 0 || st.Result.Continuity.Checked == 0 {
			t.Errorf("step %v: continuity %+v", st.Rate, st.Result.Continuity)
		}
		if st.Result.Settings.Rate != st.Rate || st.Result.OfferedRPS != st.Rate {
			t.Errorf("step %v ran at %v", st.Rate, st.Result.Settings.Rate)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2*len(sr.Steps) {
		t.Errorf("events %v for %d steps", events, len(sr.Steps))
	}
	for k := 0; k+1 < len(events); k += 2 {
		if events[k] != PhaseMeasure || events[k+1] != PhaseDone {
			t.Errorf("events %v: want measure, done per step", events)
			break
		}
	}
}

// TestSearchStopsOnErrors: one failed request breaks a step, whatever its
// latency.
func TestSearchStopsOnErrors(t *testing.T) {
	var fail sync.Mutex
	failing := false
	f := &fakeChat{status: func(int64) int {
		fail.Lock()
		defer fail.Unlock()
		if failing {
			return http.StatusInternalServerError
		}
		return 0
	}}
	opts := SearchOptions{
		Options: Options{URL: serve(t, f), Duration: 300 * time.Millisecond, SessionPrefix: "fixed-"},
		Rates:   []float64{50, 100, 200},
		P99:     time.Minute, // only the injected errors may break a step here,
		MaxLate: 0.5,         // not a loaded machine's latency
		OnStep: func(e StepEvent) {
			if e.Phase == PhaseDone && e.Index == 1 {
				fail.Lock()
				failing = true
				fail.Unlock()
			}
		},
	}
	sr, err := Search(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Steps) != 2 || !sr.Steps[0].Held || sr.Steps[1].Held {
		t.Fatalf("steps %+v: want 50 held, 100 broken, 200 not run", sr.Steps)
	}
	if sr.MaxSustainedRPS != 50 {
		t.Errorf("max sustained %v, want 50", sr.MaxSustainedRPS)
	}
	if b := strings.Join(sr.Steps[1].Broken, "; "); !strings.Contains(b, "errors (status_500") {
		t.Errorf("broken %q, want the errors named", b)
	}
	// A fixed session prefix gets a per-step suffix, so steps do not share
	// conversations.
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.turns {
		if !strings.HasPrefix(id, "fixed-s1-") && !strings.HasPrefix(id, "fixed-s2-") {
			t.Errorf("session id %q lacks the step's prefix", id)
		}
	}
}

func TestSearchJudge(t *testing.T) {
	o := SearchOptions{Options: Options{Rate: 1}}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	ok := &Result{OfferedRPS: 1000, AchievedRPS: 990, Requests: 8000, Succeeded: 8000, Latency: Latency{P99: 40 * time.Millisecond}}
	if b := o.judge(ok); len(b) != 0 {
		t.Errorf("a good step broke: %v", b)
	}
	bad := &Result{OfferedRPS: 1000, AchievedRPS: 900, Requests: 8000, Succeeded: 7999, Failed: 1,
		Errors: map[string]int64{"timeout": 1}, Late: 100, Latency: Latency{P99: 60 * time.Millisecond}}
	got := strings.Join(o.judge(bad), "; ")
	for _, want := range []string{"p99 60ms > 50ms", "1 errors (timeout 1)", "achieved 900 < 95% of offered", "late 1.25% > 1%"} {
		if !strings.Contains(got, want) {
			t.Errorf("judge = %q, want %q in it", got, want)
		}
	}
}

func TestSearchOptionsValidate(t *testing.T) {
	for _, o := range []SearchOptions{
		{Options: Options{Users: 3}},
		{Options: Options{}},
		{Options: Options{Rate: 10}, Factor: 1},
		{Rates: []float64{10, 5}},
		{Rates: []float64{-1}},
		{Options: Options{Rate: 10}, MaxRate: 5},
		{Options: Options{Rate: 10}, MinAchieved: 2},
	} {
		if err := o.validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestSearchReports(t *testing.T) {
	res := func(rate, p99ms float64) *Result {
		return &Result{Model: Open, OfferedRPS: rate, AchievedRPS: rate, Requests: 10, Succeeded: 10,
			Latency: Latency{P50: time.Millisecond, P99: time.Duration(p99ms * 1e6), P999: 70 * time.Millisecond, Max: 80 * time.Millisecond}}
	}
	sr := &SearchResult{
		Steps: []Step{
			{Rate: 500, Result: res(500, 3), Held: true},
			{Rate: 625, Result: res(625, 61), Broken: []string{"p99 61ms > 50ms"}},
		},
		MaxSustainedRPS: 500, P99: 50 * time.Millisecond, MinAchieved: 0.95, MaxLate: 0.01,
	}
	sr.Best = &sr.Steps[0]
	var js bytes.Buffer
	if err := sr.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Steps           []map[string]json.RawMessage `json:"steps"`
		MaxSustainedRPS float64                      `json:"max_sustained_rps"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.MaxSustainedRPS != 500 || len(doc.Steps) != 2 {
		t.Fatalf("json %s", js.String())
	}
	for _, st := range doc.Steps {
		for _, k := range []string{"held", "broken"} {
			if _, ok := st[k]; !ok {
				t.Errorf("step lacks %s: %v", k, keys(st))
			}
			delete(st, k)
		}
		rest, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		checkJSONKeys(t, rest) // the rest: a run's keys
	}
	var md bytes.Buffer
	if err := sr.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| offered req/s |", "| 500 | 500 | 1.00 ms | 3.00 ms | 70.0 ms | 80.0 ms | 0 | 0 | yes |",
		"**no**: p99 61ms > 50ms", "Max sustained: **500 req/s**"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var txt bytes.Buffer
	if err := sr.WriteTable(&txt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), "max sustained: 500 req/s") || !strings.Contains(txt.String(), "p99.9") {
		t.Errorf("table:\n%s", txt.String())
	}
}

// TestCompletionsTargetAgainstMockLLM drives the real mock backend: the
// request is valid OpenAI wire format and the answer passes the check.
func TestCompletionsTargetAgainstMockLLM(t *testing.T) {
	srv := httptest.NewServer(mockllm.New(mockllm.Options{APIKey: "sk"}))
	t.Cleanup(srv.Close)
	tgt, err := NewTargetConfig("completions", TargetConfig{URL: srv.URL + "/v1/", Token: "sk", Model: "mock-1"})
	if err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, Options{Target: tgt, URL: srv.URL, Rate: 100, Duration: 500 * time.Millisecond})
	if res.Failed != 0 || res.Succeeded == 0 {
		t.Fatalf("failed %d (%s), succeeded %d", res.Failed, res.ErrorCauses(), res.Succeeded)
	}
	if res.Continuity.Checked != 0 || res.Settings.Target != "completions" {
		t.Errorf("continuity %+v (want unchecked), target %q", res.Continuity, res.Settings.Target)
	}
	// A wrong key is a 401, counted by status.
	bad, _ := NewCompletionsTarget(srv.URL, "wrong", "")
	res = mustRun(t, Options{Target: bad, URL: srv.URL, Rate: 50, Duration: 200 * time.Millisecond})
	if res.Succeeded != 0 || res.Errors["status_401"] == 0 {
		t.Errorf("wrong key: %v", res.Errors)
	}
}

func TestCompletionsTarget(t *testing.T) {
	tgt, err := NewCompletionsTarget("http://h:1", "k", "")
	if err != nil {
		t.Fatal(err)
	}
	req, err := tgt.NewRequest(context.Background(), Call{SessionID: "s-1", Turn: 2, Message: `say "hi"`})
	if err != nil {
		t.Fatal(err)
	}
	if req.URL.String() != "http://h:1/v1/chat/completions" || req.Header.Get("Authorization") != "Bearer k" {
		t.Errorf("request %s %v", req.URL, req.Header)
	}
	var body struct {
		Model    string `json:"model"`
		Messages []struct {
			Role, Content string
		} `json:"messages"`
		User string `json:"user"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Model != DefaultModel || len(body.Messages) != 1 || body.Messages[0].Role != "user" ||
		body.Messages[0].Content != `say "hi"` || body.User != "s-1" {
		t.Errorf("body %+v", body)
	}
	for _, c := range []struct {
		status int
		body   string
		ok     bool
	}{
		{200, `{"choices":[{"message":{"role":"assistant","content":"x"}}]}`, true},
		{200, `{"choices":[{"message":{"role":"assistant","content":""}}]}`, true},
		{200, `{"choices":[]}`, false},
		{200, `{"choices":[{"message":{"role":"assistant"}}]}`, false},
		{200, `not json`, false},
		{503, `{}`, false},
	} {
		rep, err := tgt.Check(c.status, []byte(c.body))
		if (err == nil) != c.ok || rep.Turn != 0 {
			t.Errorf("Check(%d, %s) = %+v, %v; want ok %v", c.status, c.body, rep, err, c.ok)
		}
	}
	if _, err := NewTarget("nope", "http://h", ""); err == nil || !strings.Contains(err.Error(), "completions") {
		t.Errorf("unknown target error %v should list completions", err)
	}
}

// TestStreamTargetAgainstMockLLM drives mockllm's real streams: whole
// streams pass, streams cut before [DONE] fail.
func TestStreamTargetAgainstMockLLM(t *testing.T) {
	m := mockllm.New(mockllm.Options{})
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	tgt, err := NewTargetConfig("completions-stream", TargetConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	res := mustRun(t, Options{Target: tgt, URL: srv.URL, Rate: 50, Duration: 300 * time.Millisecond})
	if res.Failed != 0 || res.Succeeded == 0 || res.Settings.Target != "completions-stream" {
		t.Fatalf("failed %d (%s), succeeded %d, target %q", res.Failed, res.ErrorCauses(), res.Succeeded, res.Settings.Target)
	}
	if err := m.SetFaults(mockllm.Faults{CutAfter: 1, Chunks: 3}); err != nil {
		t.Fatal(err)
	}
	res = mustRun(t, Options{Target: tgt, URL: srv.URL, Rate: 50, Duration: 300 * time.Millisecond})
	if res.Succeeded != 0 || res.Failed == 0 {
		t.Fatalf("cut streams: succeeded %d, errors %v", res.Succeeded, res.Errors)
	}
	for _, body := range []string{"data: {\"choices\":[{}]}\n\n", "data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n", "data: [DONE]\n\n"} {
		if _, err := tgt.Check(200, []byte(body)); err == nil {
			t.Errorf("stream %q accepted", body)
		}
	}
	if _, err := tgt.Check(200, []byte("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n")); err != nil {
		t.Errorf("a whole stream refused: %v", err)
	}
}
