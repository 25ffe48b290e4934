package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOpenModelKeepsItsRate(t *testing.T) {
	f := &fakeChat{token: "k"}
	res := mustRun(t, Options{URL: serve(t, f), Token: "k", Rate: 200, Duration: 2 * time.Second, Seed: 1})
	t.Logf("requests %d, achieved %.1f/s, late %d, p99 %v", res.Requests, res.AchievedRPS, res.Late, res.Latency.P99)
	if res.Model != Open || res.OfferedRPS != 200 {
		t.Errorf("model %s offered %v, want open 200", res.Model, res.OfferedRPS)
	}
	if res.Requests < 360 || res.Requests > 440 {
		t.Errorf("requests = %d, want about 400", res.Requests)
	}
	if res.Failed != 0 {
		t.Errorf("failed %d: %v", res.Failed, res.Errors)
	}
	if !within(res.AchievedRPS, res.OfferedRPS, 0.1) {
		t.Errorf("achieved %.1f req/s, offered %.1f", res.AchievedRPS, res.OfferedRPS)
	}
	if res.Continuity.Checked != res.Succeeded || res.Continuity.Broken != 0 {
		t.Errorf("continuity %+v, succeeded %d", res.Continuity, res.Succeeded)
	}
	if got := f.k.Load(); got < res.Requests {
		t.Errorf("server saw %d requests, result says %d", got, res.Requests)
	}
	if len(res.Series) < 2 {
		t.Errorf("series has %d points, want one per second", len(res.Series))
	}
}

func TestWarmupIsExcluded(t *testing.T) {
	f := &fakeChat{}
	res := mustRun(t, Options{URL: serve(t, f), Rate: 100, Warmup: time.Second, Duration: time.Second})
	if res.Requests < 80 || res.Requests > 120 {
		t.Errorf("requests = %d, want about 100 (the warm-up's 100 excluded)", res.Requests)
	}
	if sent := f.k.Load(); sent < 180 {
		t.Errorf("server saw %d requests, want about 200 (warm-up included)", sent)
	}
}

// TestCoordinatedOmission pauses the server for a second: every request that
// arrives in [1s, 2s) after the first one is held until 2s. The requests
// intended during the pause must show up as latencies of up to a second, and
// the rate must not drop.
func TestCoordinatedOmission(t *testing.T) {
	var once sync.Once
	var pauseFrom, pauseTo time.Time
	f := &fakeChat{hold: func(arrival time.Time) {
		once.Do(func() {
			pauseFrom = arrival.Add(time.Second)
			pauseTo = pauseFrom.Add(time.Second)
		})
		if !arrival.Before(pauseFrom) && arrival.Before(pauseTo) {
			time.Sleep(time.Until(pauseTo)) // the thing under test: the server's pause the generator must not omit
		}
	}}
	res := mustRun(t, Options{URL: serve(t, f), Rate: 200, Duration: 3 * time.Second, Sessions: 1000, Seed: 2})
	l := res.Latency
	t.Logf("requests %d achieved %.1f late %d p50 %v p90 %v p99 %v max %v", res.Requests, res.AchievedRPS, res.Late, l.P50, l.P90, l.P99, l.Max)
	if res.Failed != 0 {
		t.Errorf("failed %d: %v", res.Failed, res.Errors)
	}
	if l.P99 < 800*time.Millisecond {
		t.Errorf("p99 = %v, want ≥ 800ms: the pause is hidden", l.P99)
	}
	if l.Max < 900*time.Millisecond || l.Max > 2*time.Second {
		t.Errorf("max = %v, want about 1s", l.Max)
	}
	if l.P50 > 500*time.Millisecond {
		t.Errorf("p50 = %v: only a third of the requests were scheduled during the pause", l.P50)
	}
	if res.Requests < 540 || res.Requests > 660 {
		t.Errorf("requests = %d, want about 600: the pause must not lower the offered rate", res.Requests)
	}
	if !within(res.AchievedRPS, 200, 0.1) {
		t.Errorf("achieved %.1f req/s, want about 200", res.AchievedRPS)
	}
	// Some second of the series shows the pause as a p99 of nearly a second.
	var worst time.Duration
	for _, p := range res.Series {
		worst = max(worst, p.P99)
	}
	if worst < 800*time.Millisecond {
		t.Errorf("no second of the series has a p99 near 1s: %+v", res.Series)
	}
}

// TestAllSessionsBusy gives the open model fewer sessions than the load
// needs: the requests that found no idle session are late, those never sent
// are dropped, and none disappears.
func TestAllSessionsBusy(t *testing.T) {
	f := &fakeChat{delay: 100 * time.Millisecond}
	res := mustRun(t, Options{URL: serve(t, f), Rate: 200, Duration: 2 * time.Second, Sessions: 5})
	t.Logf("requests %d succeeded %d late %d waits %d/%d errors %v p99 %v", res.Requests, res.Succeeded, res.Late,
		res.WaitedForSession, res.WaitedForInflight, res.Errors, res.Latency.P99)
	if res.Requests < 360 || res.Requests > 440 {
		t.Errorf("requests = %d, want about 400 (sent or dropped)", res.Requests)
	}
	if res.WaitedForSession == 0 || res.Late == 0 {
		t.Errorf("waited for a session %d times, late %d; want both > 0", res.WaitedForSession, res.Late)
	}
	if res.Errors[CauseDropped] == 0 {
		t.Errorf("errors %v: want dropped requests (5 sessions × 10 turns/s cannot carry 200/s)", res.Errors)
	}
	if res.Succeeded > 5*2*10+10 {
		t.Errorf("succeeded %d: 5 sessions at 100ms per turn cannot do more than ~100 in 2s", res.Succeeded)
	}
	if res.Latency.P99 < 500*time.Millisecond {
		t.Errorf("p99 = %v: waiting for a session must be charged to latency", res.Latency.P99)
	}
}

func TestMaxInflight(t *testing.T) {
	f := &fakeChat{delay: 50 * time.Millisecond}
	var peak, cur int64
	var mu sync.Mutex
	f.hold = func(time.Time) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // the thing under test: a slow server that keeps requests in flight
		mu.Lock()
		cur--
		mu.Unlock()
	}
	res := mustRun(t, Options{URL: serve(t, f), Rate: 100, Duration: time.Second, Sessions: 100, MaxInflight: 3})
	if peak > 3 {
		t.Errorf("server saw %d requests at once, MaxInflight is 3", peak)
	}
	if res.WaitedForInflight == 0 || res.Late == 0 {
		t.Errorf("waited for in-flight slot %d times, late %d; want both > 0", res.WaitedForInflight, res.Late)
	}
}

func TestContinuity(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		report func(n int) int
	}{
		{"correct", nil},
		{"skip", func(n int) int { // 1 2 4 5 6 ...
			if n >= 3 {
				return n + 1
			}
			return n
		}},
		{"repeat", func(n int) int { // 1 2 2 3 4 ...
			if n >= 3 {
				return n - 1
			}
			return n
		}},
		{"back", func(n int) int { // 1 2 3 1 2 3 ...
			if n >= 4 {
				return n - 3
			}
			return n
		}},
		{"restart", func(n int) int { return 1 }}, // every turn is 1
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeChat{report: c.report}
			res := mustRun(t, Options{URL: serve(t, f), Rate: 100, Duration: time.Second, Sessions: 5, Turns: 8})
			t.Logf("requests %d continuity %+v errors %v", res.Requests, res.Continuity, res.Errors)
			if res.Continuity.Checked != res.Requests {
				t.Errorf("checked %d of %d requests", res.Continuity.Checked, res.Requests)
			}
			if res.Continuity.Broken != res.Errors[CauseContinuity] {
				t.Errorf("broken %d, continuity errors %d", res.Continuity.Broken, res.Errors[CauseContinuity])
			}
			if c.report == nil {
				if res.Continuity.Broken != 0 || res.Failed != 0 {
					t.Errorf("a correct server broke continuity: %+v %v", res.Continuity, res.Errors)
				}
				return
			}
			if res.Continuity.Broken == 0 {
				t.Errorf("a %s was not detected", c.name)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	t.Parallel()
	check := func(s *session, turn int, want verdict) {
		t.Helper()
		last := s.last
		if got := s.observe(Reply{Turn: turn}); got != want {
			t.Errorf("turn %d after last %d: verdict %d, want %d", turn, last, got, want)
		}
	}
	s := &session{id: "a"}
	check(s, 1, continuous)
	check(s, 2, continuous)
	check(s, 2, broken) // repeat
	check(s, 3, continuous)
	check(s, 5, broken) // skip
	check(s, 6, continuous)
	check(s, 4, broken) // back
	check(s, 5, continuous)
	s.failed(false) // a 503: the turn was not recorded
	check(s, 6, continuous)
	s.failed(true) // a timeout: maybe recorded
	check(s, 8, continuous)
	s.failed(true)
	check(s, 9, continuous)
	s.failed(true)
	check(s, 12, broken) // at most one turn may be lost per ambiguous failure
	if got := s.observe(Reply{Turn: 0}); got != unchecked {
		t.Errorf("turn 0: verdict %d, want unchecked", got)
	}
	if got := s.observe(Reply{Turn: 13, SessionID: "b"}); got != broken {
		t.Errorf("another session's reply: verdict %d, want broken", got)
	}
	if got := (&session{id: "c"}).observe(Reply{Turn: 2}); got != broken {
		t.Errorf("a fresh session's first turn 2: verdict %d, want broken", got)
	}
}

func TestClosedModelThinks(t *testing.T) {
	t.Parallel()
	url := serve(t, &fakeChat{})
	busy := mustRun(t, Options{URL: url, Users: 2, Duration: time.Second})
	thinking := mustRun(t, Options{URL: url, Users: 2, Think: 100 * time.Millisecond, Duration: time.Second})
	t.Logf("without think %d requests, with 100ms think %d", busy.Requests, thinking.Requests)
	if busy.Model != Closed || thinking.Settings.Users != 2 {
		t.Errorf("model %s users %d", busy.Model, thinking.Settings.Users)
	}
	if thinking.Requests >= busy.Requests {
		t.Errorf("think time did not slow the users: %d requests with, %d without", thinking.Requests, busy.Requests)
	}
	// Each user sends at most one request per think time (plus the first).
	if thinking.Requests > 2*(10+1) {
		t.Errorf("%d requests by 2 users thinking 100ms in 1s", thinking.Requests)
	}
	if thinking.Requests < 4 || thinking.Failed != 0 || thinking.Continuity.Broken != 0 {
		t.Errorf("thinking users: %d requests, errors %v, continuity %+v", thinking.Requests, thinking.Errors, thinking.Continuity)
	}
	if !within(thinking.OfferedRPS, float64(thinking.Requests), 0.01) {
		t.Errorf("closed model offered %.1f req/s, sent %d in 1s", thinking.OfferedRPS, thinking.Requests)
	}
}

func TestClosedModelUsesItsSessionsInOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string][]int{}
	f := &fakeChat{}
	f.log = func(session, _ string) {
		mu.Lock()
		defer mu.Unlock()
		seen[session] = append(seen[session], len(seen[session])+1)
	}
	res := mustRun(t, Options{URL: serve(t, f), Users: 4, Sessions: 8, Turns: 3, Duration: 500 * time.Millisecond})
	if res.Continuity.Broken != 0 || res.Failed != 0 {
		t.Fatalf("continuity %+v errors %v", res.Continuity, res.Errors)
	}
	for s, turns := range seen {
		if len(turns) > 3 {
			t.Errorf("session %s ran %d turns, Turns is 3", s, len(turns))
		}
	}
	if len(seen) <= 8 {
		t.Errorf("%d sessions seen: finished conversations were not replaced", len(seen))
	}
}

func TestErrorsByCause(t *testing.T) {
	t.Parallel()
	f := &fakeChat{status: unavailableEvery(5)}
	res := mustRun(t, Options{URL: serve(t, f), Rate: 100, Duration: time.Second, Seed: 3})
	if res.Errors["status_503"] == 0 {
		t.Fatalf("errors %v, want status_503", res.Errors)
	}
	if r := res.ErrorRate(); r < 0.1 || r > 0.3 {
		t.Errorf("error rate %.3f, want about 0.2", r)
	}
	// A 503 does not record the turn, so the next turn continues.
	if res.Continuity.Broken != 0 {
		t.Errorf("continuity %+v after 503s", res.Continuity)
	}
	if err := (SLO{HasErrorRate: true, ErrorRate: 0.01}).Check(res); err == nil || !strings.Contains(err.Error(), "error rate") {
		t.Errorf("SLO check = %v, want an error rate breach", err)
	}
}

func TestTimeoutAndConnectionErrors(t *testing.T) {
	t.Parallel()
	t.Run("timeout", func(t *testing.T) {
		f := &fakeChat{delay: 300 * time.Millisecond}
		res := mustRun(t, Options{URL: serve(t, f), Rate: 20, Duration: 500 * time.Millisecond, Timeout: 50 * time.Millisecond})
		if res.Errors[CauseTimeout] == 0 || res.Succeeded != 0 {
			t.Errorf("errors %v succeeded %d, want only timeouts", res.Errors, res.Succeeded)
		}
	})
	t.Run("connection", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String()
		ln.Close() // nothing listens there now
		res := mustRun(t, Options{URL: url, Rate: 20, Duration: 300 * time.Millisecond})
		if res.Errors[CauseConnection] == 0 || res.Succeeded != 0 {
			t.Errorf("errors %v succeeded %d, want only connection errors", res.Errors, res.Succeeded)
		}
	})
	t.Run("decode", func(t *testing.T) {
		srv := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) })
		res := mustRun(t, Options{URL: serveHandler(t, srv), Rate: 20, Duration: 300 * time.Millisecond})
		if res.Errors[CauseDecode] == 0 || res.Succeeded != 0 {
			t.Errorf("errors %v, want decode errors", res.Errors)
		}
	})
}

func TestSLO(t *testing.T) {
	t.Parallel()
	r := &Result{Requests: 100, Succeeded: 95, Failed: 5, Errors: map[string]int64{"status_503": 5},
		Latency: Latency{P99: 912 * time.Millisecond}}
	if err := (SLO{}).Check(r); err != nil {
		t.Errorf("zero SLO: %v", err)
	}
	err := SLO{P99: 800 * time.Millisecond}.Check(r)
	if err == nil || err.Error() != "SLO broken: p99 912ms > 800ms" {
		t.Errorf("p99 SLO: %v", err)
	}
	if err := (SLO{P99: time.Second, HasErrorRate: true, ErrorRate: 0.05}).Check(r); err != nil {
		t.Errorf("SLO met: %v", err)
	}
	err = SLO{P99: 800 * time.Millisecond, HasErrorRate: true}.Check(r)
	if err == nil || !strings.Contains(err.Error(), "p99 912ms > 800ms; error rate 5% > 0% (status_503 5)") {
		t.Errorf("both broken: %v", err)
	}
}

func TestJSONKeys(t *testing.T) {
	t.Parallel()
	res := mustRun(t, Options{URL: serve(t, &fakeChat{}), Rate: 50, Duration: 500 * time.Millisecond, Seed: 7})
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	checkJSONKeys(t, buf.Bytes())
	var m struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m.Settings["seed"] != float64(7) || m.Settings["duration"] != "500ms" {
		t.Errorf("settings = %v", m.Settings)
	}
}

// checkJSONKeys checks a WriteJSON document's keys are exactly the stable
// ones.
func checkJSONKeys(t *testing.T, doc []byte) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("%v in %s", err, doc)
	}
	want := []string{"achieved_rps", "continuity", "duration_s", "errors", "failed", "late", "latency_ms",
		"model", "offered_rps", "requests", "settings", "succeeded"}
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	var lat, cont map[string]json.RawMessage
	_ = json.Unmarshal(m["latency_ms"], &lat)
	_ = json.Unmarshal(m["continuity"], &cont)
	if got := keys(lat); !slices.Equal(got, []string{"max", "p50", "p90", "p99", "p999"}) {
		t.Errorf("latency_ms keys %v", got)
	}
	if got := keys(cont); !slices.Equal(got, []string{"broken", "checked"}) {
		t.Errorf("continuity keys %v", got)
	}
	var errs map[string]int64
	if err := json.Unmarshal(m["errors"], &errs); err != nil || errs == nil {
		t.Errorf("errors = %s, want an object", m["errors"])
	}
}

func keys(m map[string]json.RawMessage) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestHTMLIsSelfContained(t *testing.T) {
	t.Parallel()
	res := mustRun(t, Options{URL: serve(t, &fakeChat{}), Rate: 100, Duration: 2 * time.Second})
	var buf bytes.Buffer
	if err := res.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, buf.String())
	// Empty results render too.
	buf.Reset()
	if err := (&Result{Model: Open}).WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	checkHTML(t, buf.String())
}

// checkHTML checks a WriteHTML page is self-contained and has its charts.
func checkHTML(t *testing.T, page string) {
	t.Helper()
	for _, bad := range []string{"<script", "<link", "src=", "href=", "@import", "url(", "<iframe", "<img"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page contains %q: not self-contained", bad)
		}
	}
	if n := strings.Count(page, "<svg"); n != 4 {
		t.Errorf("page has %d charts, want 4", n)
	}
	if !strings.Contains(page, "p99") || !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Error("page lacks the summary")
	}
}

func TestSeedReproducesSessionsAndMessages(t *testing.T) {
	t.Parallel()
	calls := func(seed int64) []string {
		var mu sync.Mutex
		var log []string
		f := &fakeChat{log: func(s, m string) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, s+" "+m)
		}}
		mustRun(t, Options{URL: serve(t, f), Users: 1, Sessions: 3, Turns: 4, Duration: 300 * time.Millisecond,
			Seed: seed, SessionPrefix: "t-"})
		return log
	}
	a, b, c := calls(42), calls(42), calls(43)
	n := min(len(a), len(b), len(c), 30)
	if n < 10 {
		t.Fatalf("only %d calls", n)
	}
	if !slices.Equal(a[:n], b[:n]) {
		t.Errorf("same seed, different calls:\n%v\n%v", a[:n], b[:n])
	}
	if slices.Equal(a[:n], c[:n]) {
		t.Errorf("different seeds, same calls: %v", a[:n])
	}
	// Session ids default to a fresh prefix per run.
	g1, g2 := sessionIDs{seed: 1}, sessionIDs{seed: 1}
	if g1.newSession(0).id != g2.newSession(0).id {
		t.Error("same prefix and seed, different ids")
	}
	r1, _ := newRunner(Options{Seed: 1})
	r2, _ := newRunner(Options{Seed: 1})
	if r1.fresh().id == r2.fresh().id {
		t.Error("two runs share session ids: their sessions would not start at turn 1")
	}
}

func TestInterrupt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	res, err := Run(ctx, Options{URL: serve(t, &fakeChat{delay: 20 * time.Millisecond}), Rate: 100, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Duration >= time.Minute {
		t.Errorf("interrupted %v duration %v", res.Interrupted, res.Duration)
	}
	if res.Errors[CauseDropped] != 0 {
		t.Errorf("an interrupted run counted dropped requests: %v", res.Errors)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{}, "set Rate"},
		{Options{Rate: 10, Users: 2}, "mutually exclusive"},
		{Options{Rate: 10, Think: time.Second}, "closed model only"},
		{Options{Users: 4, Sessions: 2}, "at least Users"},
		{Options{Rate: -1}, "positive"},
		{Options{Rate: 1, URL: "ftp://x"}, "want http"},
	} {
		_, err := Run(context.Background(), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.opts, err, c.want)
		}
	}
	o := Options{Rate: 250}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	if o.Sessions != 250 || o.Turns != DefaultTurns || o.Duration != DefaultDuration || o.MaxInflight != DefaultMaxInflight || o.Target == nil {
		t.Errorf("defaults not applied: %+v", o)
	}
}

func TestFmtDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0", 850 * time.Microsecond: "850µs", 1230 * time.Microsecond: "1.23ms",
		912 * time.Millisecond: "912ms", 1050 * time.Millisecond: "1.05s", 12 * time.Second: "12s",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSnapshotString(t *testing.T) {
	t.Parallel()
	s := Snapshot{Elapsed: 3 * time.Second, Total: 12 * time.Second, Model: Open, Requests: 600, Succeeded: 598, Failed: 2,
		RecentRPS: 200, P99: 4100 * time.Microsecond, Inflight: 3}
	if got, want := s.String(), "[  3.0s/12.0s] 600 req: 598 ok, 2 failed, 0 late | 200 req/s | p99 4.1ms | in flight 3"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	s = Snapshot{Elapsed: 500 * time.Millisecond, Total: 2 * time.Second, Warmup: true, WarmedUp: 7}
	if got := s.String(); !strings.Contains(got, "warming up: 7 req") {
		t.Errorf("warm-up line %q", got)
	}
}

func TestOnCallSeesEveryRequest(t *testing.T) {
	t.Parallel()
	f := &fakeChat{status: unavailableEvery(4)}
	var mu sync.Mutex
	var calls []CallRecord
	res := mustRun(t, Options{URL: serve(t, f), Rate: 50, Warmup: 200 * time.Millisecond, Duration: 500 * time.Millisecond, Seed: 5,
		OnCall: func(c CallRecord) { mu.Lock(); calls = append(calls, c); mu.Unlock() }})
	if int64(len(calls)) < res.Requests {
		t.Fatalf("OnCall saw %d requests, the result counts %d measured ones", len(calls), res.Requests)
	}
	seqs := map[int64]bool{}
	var failed, ok int
	for _, c := range calls {
		if c.Seq < 1 || seqs[c.Seq] {
			t.Fatalf("Seq %d repeats or is not positive", c.Seq)
		}
		seqs[c.Seq] = true
		if c.Done.Before(c.Sent) || c.Message == "" || c.SessionID == "" {
			t.Fatalf("record %+v", c)
		}
		switch {
		case c.Status == http.StatusServiceUnavailable:
			failed++
			if c.Cause != "status_503" || c.RetryAfter != "1" || c.OK() {
				t.Fatalf("503 recorded as %+v", c)
			}
		case c.Status == http.StatusOK:
			ok++
			if !c.OK() || c.Reply.Turn < 1 {
				t.Fatalf("200 recorded as %+v", c)
			}
		default:
			t.Fatalf("status %d", c.Status)
		}
	}
	if failed == 0 || ok == 0 {
		t.Fatalf("%d ok, %d failed: want both", ok, failed)
	}
}
