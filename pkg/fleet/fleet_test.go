package fleet

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// TestLoadBalancing runs one fleet like the local one (weights 1, 1, 2 and
// a backup) and checks what nginx does with it: a conversation moves across
// instances without losing a turn, the weights hold, and the backup serves
// only when every primary is down.
func TestLoadBalancing(t *testing.T) {
	f := startFleet(t, []int{1, 1, 2}, true)
	prim, backup := f.Primaries(), f.Backup()

	t.Run("conversation across instances", func(t *testing.T) {
		session := newID()
		served := map[string]int{}
		for i := 1; i <= 12; i++ {
			r := f.MustChat(t, session, fmt.Sprintf("message %d", i))
			if r.Turn != i || r.SessionID != session {
				t.Fatalf("message %d: turn %d session %q, want turn %d of %q", i, r.Turn, r.SessionID, i, session)
			}
			served[r.Instance]++
		}
		if len(served) < 3 {
			t.Errorf("12 turns were served by %v; want at least 3 different instances", served)
		}
		if served[backup.Name()] > 0 {
			t.Errorf("the backup served %d turns while every primary was up", served[backup.Name()])
		}
		// The memory is one: the last reply recalls the previous message.
		t.Logf("served by %v", served)
	})

	t.Run("client retries stay idempotent", func(t *testing.T) {
		// A client's own retry, with the same Idempotency-Key or the same
		// X-Request-Id, lands on another instance (round robin) and replays
		// the stored reply instead of taking a second turn.
		for _, h := range []string{"Idempotency-Key", "X-Request-Id"} {
			session, key := newID(), "client-"+newID()
			var first chatReply
			for i := range 3 {
				r, err := f.Chat(session, "pay once", h, key)
				if err != nil || r.Status != http.StatusOK {
					t.Fatalf("%s attempt %d: %v %d %+v", h, i+1, err, r.Status, r.Error)
				}
				if i == 0 {
					first = r
					continue
				}
				if r.Turn != 1 || r.Reply != first.Reply || r.Header.Get("Idempotent-Replayed") != "true" {
					t.Errorf("%s attempt %d (on %s): turn %d replayed %q; want turn 1 replayed from the first attempt (on %s)",
						h, i+1, r.Instance, r.Turn, r.Header.Get("Idempotent-Replayed"), first.Instance)
				}
			}
			if r := f.MustChat(t, session, "next"); r.Turn != 2 {
				t.Errorf("%s: the turn after 3 attempts is %d, want 2", h, r.Turn)
			}
		}
	})

	t.Run("weights", func(t *testing.T) {
		const n = 400
		served := map[string]int{}
		for i := 0; i < n; i++ {
			served[f.MustChat(t, newID(), "hello").Instance]++
		}
		t.Logf("%d first turns of distinct sessions: %v", n, served)
		if served[backup.Name()] > 0 {
			t.Errorf("the backup served %d requests while every primary was up", served[backup.Name()])
		}
		heavy := served[prim[2].Name()]
		for _, m := range prim[:2] {
			light := served[m.Name()]
			if light == 0 {
				t.Fatalf("%s (weight 1) served nothing", m.Name())
			}
			ratio := float64(heavy) / float64(light)
			if ratio < 1.5 || ratio > 2.6 {
				t.Errorf("weight 2 served %d, %s (weight 1) %d: ratio %.2f, want about 2 (1.5–2.6)", heavy, m.Name(), light, ratio)
			}
		}
	})

	t.Run("backup only when every primary is down", func(t *testing.T) {
		f.Script("stop_instances.sh", f.ports(prim)...)
		session := newID()
		for i := 1; i <= 20; i++ {
			r := f.MustChat(t, session, fmt.Sprintf("message %d", i))
			if r.Instance != backup.Name() || r.Turn != i {
				t.Fatalf("with every primary down, message %d was turn %d served by %s; want turn %d by the backup %s",
					i, r.Turn, r.Instance, i, backup.Name())
			}
		}
		// With nothing left, nginx answers itself like an instance would:
		// 503, JSON, Retry-After.
		f.Script("stop_instances.sh", strconv.Itoa(backup.Port))
		for i := range 3 {
			r, err := f.Chat(session, "anyone?")
			if err != nil || r.Status != http.StatusServiceUnavailable || r.RetryAfter == "" || r.Error.Code != "unavailable" {
				t.Fatalf("with every instance down, attempt %d: %v %d Retry-After %q %+v; want nginx's 503 unavailable with Retry-After",
					i+1, err, r.Status, r.RetryAfter, r.Error)
			}
		}
		f.Script("start_multiple_instances.sh", f.ports(f.Members)...)
		// nginx tries a failed instance again after its fail_timeout (2s;
		// until then it answers 503 itself); then the backup gets nothing.
		quiet := 0
		ok := testenv.Eventually(30*time.Second, func() bool {
			r, err := f.Chat(session, "again")
			switch {
			case err != nil:
				t.Fatalf("chat: %v", err)
			case r.Status == http.StatusServiceUnavailable && r.Error.Code == "unavailable":
				return false
			case r.Status != http.StatusOK:
				t.Fatalf("chat: %d %+v", r.Status, r.Error)
			case r.Instance == backup.Name():
				quiet = 0
			default:
				quiet++
			}
			return quiet >= 20
		})
		if !ok {
			t.Fatalf("the backup kept serving after the primaries came back")
		}
	})
}

// TestKillPrimaryDuringStream kills (SIGKILL) a primary in the middle of a
// turn while one conversation streams turns through nginx. The LLM backend
// (the mock, 10ms per answer, in this process) holds turn 41 and names the
// instance that asked; the test kills that instance, so the kill is sure to
// hit a request in flight. nginx retries that request on another instance
// with the same X-Request-Id, which takes the dead holder's turn over after
// its lease instead of running it twice; nginx ejects the dead instance for
// the turns after. No request fails and the turns stay exactly 1..N.
func TestKillPrimaryDuringStream(t *testing.T) {
	const turns, trapped = 200, 41
	llm := startTrapLLM(t, 10*time.Millisecond, fmt.Sprintf("turn %d", trapped))
	f := startFleet(t, []int{1, 1, 2}, true,
		"BOT_LLM_PROVIDER=openai", "MODEL_ENDPOINT="+llm.URL, "MODEL_SERVICE_KEY="+modelKey, "BOT_LLM_MODEL=mock-1",
		"BOT_MEMORY_LEASE=2s")
	llm.Pids = func() []int {
		var pids []int
		for _, m := range f.Primaries() {
			pids = append(pids, f.Pid(m.Port))
		}
		return pids
	}
	names := map[int]member{}
	for _, m := range f.Primaries() {
		names[f.Pid(m.Port)] = m
	}

	stop := make(chan struct{})
	close(stop) // run exactly `turns` turns
	done := make(chan *stream, 1)
	go func() { done <- f.runStream(stop, turns, nil) }()
	var pid int
	select {
	case pid = <-llm.Caught:
	case s := <-done:
		t.Fatalf("the stream ended without turn %d reaching the LLM: %v", trapped, s.Errors)
	}
	victim, ok := names[pid]
	if !ok {
		t.Fatalf("could not tell which instance sent turn %d to the LLM (pid %d)", trapped, pid)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	s := <-done
	t.Logf("killed %s (pid %d, weight %d) while it held turn %d of %d", victim.Name(), pid, victim.Weight, trapped, turns)

	checkTurns(t, s)
	if len(s.Replies) != turns {
		t.Fatalf("%d replies, want %d", len(s.Replies), turns)
	}
	took := s.Replies[trapped-1]
	if took.Instance == victim.Name() {
		t.Errorf("turn %d was answered by the instance killed while holding it", trapped)
	}
	after := 0
	for _, r := range s.Replies {
		if r.Instance == victim.Name() && r.Sent.After(killed) {
			after++
		}
	}
	if after > 0 {
		t.Errorf("the killed instance served %d turns after it died", after)
	}
	if processAlive(pid) {
		t.Errorf("pid %d still alive after SIGKILL", pid)
	}
	// nginx logged the trapped request as tried on the dead instance first,
	// then on another one.
	retried := 0
	for _, line := range strings.Split(f.Nginx.AccessLog(), "\n") {
		if strings.Contains(line, "upstream=127.0.0.1:"+strconv.Itoa(victim.Port)+", ") {
			retried++
		}
	}
	if retried == 0 {
		t.Errorf("nginx's access log shows no request retried away from the killed instance:\n%s", f.Nginx.AccessLog())
	}
	var rest time.Duration
	for _, r := range s.Replies[trapped:] {
		rest = max(rest, r.Elapsed)
	}
	t.Logf("%d turns, 0 failed; turn %d answered by %s after %v (the next instance waited out the dead holder's 2s lease); slowest later turn %v; %d requests retried away from the dead instance",
		len(s.Replies), trapped, took.Instance, took.Elapsed.Round(time.Millisecond), rest.Round(time.Millisecond), retried)
}

// TestRollingRestartDuringStream runs scripts/rolling_restart.sh across
// every instance (backup included) while two conversations stream turns
// through nginx: every instance ends with a new pid, and no request fails.
func TestRollingRestartDuringStream(t *testing.T) {
	f := startFleet(t, []int{1, 1, 2}, true)
	before := map[int]int{}
	for _, m := range f.Members {
		before[m.Port] = f.Pid(m.Port)
	}
	stop := make(chan struct{})
	done := make(chan *stream, 2)
	progress := []chan int{make(chan int, 1), make(chan int, 1)}
	for _, p := range progress {
		go func() { done <- f.runStream(stop, 20, p) }()
	}
	start := time.Now()
	out := f.Script("rolling_restart.sh", append(f.ports(f.Members), "SETTLE=1")...)
	took := time.Since(start)
	// Some turns after the last restart too: five more of each stream (the
	// first turn received may predate the restart).
	for i, p := range progress {
		for range 6 {
			select {
			case <-p:
			case <-time.After(30 * time.Second):
				close(stop)
				t.Fatalf("stream %d made no progress after the rolling restart", i)
			}
		}
	}
	close(stop)
	total := 0
	for range 2 {
		s := <-done
		checkTurns(t, s)
		total += len(s.Replies)
	}
	for _, m := range f.Members {
		if p := f.Pid(m.Port); p == before[m.Port] || p == 0 || !processAlive(p) {
			t.Errorf("%s: pid %d before, %d after (alive %v); want a new live process", m.Name(), before[m.Port], p, processAlive(p))
		}
		if processAlive(before[m.Port]) {
			t.Errorf("%s: the old process %d is still alive", m.Name(), before[m.Port])
		}
	}
	t.Logf("rolling restart of %d instances took %v; %d turns in 2 conversations, 0 failed\n%s",
		len(f.Members), took.Round(time.Millisecond), total, out)
}

// TestRedisOutage stops Redis for a few seconds: chat answers 503 with
// Retry-After through nginx (after nginx has tried other instances, and
// also when it has none left to try), nothing hangs, no instance dies or is
// restarted by the health checker, and once Redis is back everything
// serves again without anyone's help.
func TestRedisOutage(t *testing.T) {
	f := startFleet(t, []int{1, 1, 2}, true)
	// With the health checker watching, the outage makes every instance
	// unready but must not make it restart anything.
	startHealthChecker(t, f)
	pids := map[int]int{}
	for _, m := range f.Members {
		pids[m.Port] = f.Pid(m.Port)
	}
	session := newID()
	f.MustChat(t, session, "before the outage")

	f.Redis.Stop()
	outage := time.Now()
	codes := map[string]int{}
	n := 0
	for time.Since(outage) < 3*time.Second || n < 2 {
		r, err := f.Chat(newID(), "during the outage")
		if err != nil {
			t.Fatalf("request %d during the outage: %v (it must end with a 503, not hang or break)", n, err)
		}
		if r.Status != http.StatusServiceUnavailable || r.RetryAfter == "" {
			t.Fatalf("request %d during the outage: %d Retry-After %q %+v; want 503 with Retry-After", n, r.Status, r.RetryAfter, r.Error)
		}
		if r.Error.Code == "" {
			t.Errorf("request %d during the outage: 503 without a JSON error code", n)
		}
		codes[r.Error.Code]++
		n++
		t.Logf("outage request %d: 503 %s, Retry-After %s, in %v", n, r.Error.Code, r.RetryAfter, r.Elapsed.Round(time.Millisecond))
	}
	t.Logf("during the outage: %d requests, all 503 with Retry-After, by error code %v", n, codes)

	f.Redis.Start()
	back := time.Now()
	var first chatReply
	if !testenv.Eventually(30*time.Second, func() bool {
		r, err := f.Chat(newID(), "after the outage")
		first = r
		return err == nil && r.Status == http.StatusOK
	}) {
		t.Fatalf("chat does not answer 200 within 30s of Redis coming back: %d %+v", first.Status, first.Error)
	}
	t.Logf("first 200 after Redis came back: %v", time.Since(back).Round(time.Millisecond))
	// Every primary serves again (nginx probes an ejected one after
	// fail_timeout), and every instance is ready.
	served := map[string]bool{}
	if !testenv.Eventually(30*time.Second, func() bool {
		served[f.MustChat(t, newID(), "hello").Instance] = true
		for _, m := range f.Primaries() {
			if !served[m.Name()] {
				return false
			}
		}
		return true
	}) {
		t.Errorf("after the outage only %v serve", served)
	}
	for _, m := range f.Members {
		// An instance whose Redis pool gave up dialing during the outage
		// dials again within a second (go-redis's retry), so readiness may
		// trail the first answers a little.
		status := 0
		if !testenv.Eventually(10*time.Second, func() bool {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", m.Port))
			if err != nil {
				return false
			}
			resp.Body.Close()
			status = resp.StatusCode
			return status == http.StatusOK
		}) {
			t.Errorf("%s /ready: %d 10s after Redis came back", m.Name(), status)
		}
		if p := f.Pid(m.Port); p != pids[m.Port] || !processAlive(p) {
			t.Errorf("%s: pid %d before the outage, %d after (alive %v): an outage of Redis must not kill or restart an instance",
				m.Name(), pids[m.Port], p, processAlive(p))
		}
	}
}

// TestBlueGreenDuringStream switches nginx from the blue set of instances to
// a green one with scripts/bluegreen.sh (start green, re-render the
// upstream, graceful reload, stop blue) and rolls back, while a
// conversation streams turns: no request fails, the turns stay 1..N, and
// after each switch only the live colour serves.
func TestBlueGreenDuringStream(t *testing.T) {
	f := startFleet(t, []int{1, 1, 2}, true)
	taken := map[int]bool{}
	for _, m := range f.Members {
		taken[m.Port] = true
	}
	var green []member
	for _, w := range []int{1, 1, 2, 0} {
		p := testenv.FreePort(t)
		for taken[p] { // a pick may repeat a port blue or an earlier green member holds
			p = testenv.FreePort(t)
		}
		taken[p] = true
		green = append(green, member{Port: p, Weight: w})
	}
	spec := func(ms []member) (prim, back string) {
		var ps, bs []string
		for _, m := range ms {
			if m.Weight > 0 {
				ps = append(ps, fmt.Sprintf("%d:%d", m.Port, m.Weight))
			} else {
				bs = append(bs, strconv.Itoa(m.Port))
			}
		}
		return strings.Join(ps, " "), strings.Join(bs, " ")
	}
	bp, bb := spec(f.Members)
	gp, gb := spec(green)
	env := []string{
		"BLUE_PRIMARIES=" + bp, "BLUE_BACKUPS=" + bb, "GREEN_PRIMARIES=" + gp, "GREEN_BACKUPS=" + gb,
		"NGINX_PREFIX=" + f.Nginx.Prefix, "NGINX_CONF=" + f.Nginx.Conf, "LISTEN=" + f.Nginx.Addrs[0],
		"NGINX=" + testenv.NginxPath(t),
	}
	names := func(ms []member) map[string]bool {
		out := map[string]bool{}
		for _, m := range ms {
			out[m.Name()] = true
		}
		return out
	}
	only := func(colour string, ms []member) {
		t.Helper()
		want := names(ms)
		for range 20 {
			if r := f.MustChat(t, newID(), "hello"); !want[r.Instance] {
				t.Fatalf("after the switch to %s, %s answered", colour, r.Instance)
			}
		}
	}

	// The health checker make fleet starts watches the live colour only:
	// bluegreen.sh re-renders its targets, so it does not bring the
	// stopped colour back.
	hc := startRenderedHealthChecker(t, f)
	watches := func(colour string, live, stopped []member) {
		t.Helper()
		status, _ := json.Marshal(hc.Status(t))
		for _, m := range live {
			if !strings.Contains(string(status), `"bot-`+strconv.Itoa(m.Port)+`"`) {
				t.Errorf("after the switch to %s the health checker does not watch %s: %s", colour, m.Name(), status)
			}
		}
		for _, m := range stopped {
			if strings.Contains(string(status), `"bot-`+strconv.Itoa(m.Port)+`"`) {
				t.Errorf("after the switch to %s the health checker still watches %s", colour, m.Name())
			}
		}
	}

	stop := make(chan struct{})
	done := make(chan *stream, 1)
	go func() { done <- f.runStream(stop, 20, nil) }()
	out := f.Script("bluegreen.sh", append([]string{"deploy", "green"}, env...)...)
	t.Logf("deploy green:\n%s", out)
	only("green", green)
	watches("green", green, f.Members)
	// Asserting an absence (no blue instance brought back), with no event
	// after it to wait for.
	time.Sleep(4 * time.Second) // bounds the observation window: longer than the checker takes to restart a failed target
	for _, m := range f.Members {
		if listening(m.Port) {
			t.Errorf("blue %s listens after the switch to green", m.Name())
		}
	}
	out = f.Script("bluegreen.sh", append([]string{"rollback"}, env...)...)
	t.Logf("rollback:\n%s", out)
	only("blue", f.Members)
	watches("blue", f.Members, green)
	close(stop)
	s := <-done
	checkTurns(t, s)
	t.Logf("%d turns across deploy and rollback, 0 failed", len(s.Replies))
	for _, m := range green {
		if listening(m.Port) {
			t.Errorf("green %s still listens after the rollback", m.Name())
		}
	}
}
