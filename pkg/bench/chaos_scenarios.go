package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/botfleet/botfleet/pkg/history"
	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/pause"
)

// sigCont resumes a stopped process.
const sigCont = syscall.SIGCONT

// scenario is one fault: run injects it into the running load and returns
// once it has ended (within about budget, the extra load time it gets).
type scenario struct {
	name, fault string
	// bound says why the fault makes some failures or losses unavoidable
	// and how many; empty when it makes none.
	bound string
	// allowBad, when set, is how many failures without Retry-After the
	// bound allows, from the measured row.
	allowBad func(*chaosRun, ScenarioResult) int
	budget   time.Duration
	run      func(ctx context.Context, c *chaosRun, tr *traffic) error
	// allowLost, when set, is how many acknowledged turns the bound
	// allows lost, from the history.
	allowLost func(*traffic) int
	// own, when set, brings up a fleet of the scenario's own before the
	// load (tr.url, tr.svc) and returns its stop.
	own func(ctx context.Context, c *chaosRun, tr *traffic) (func(), error)
	// after, when set, reads the finished history (the IM replies
	// settled) to add what the fault's own figures show to tr.observed.
	after func(c *chaosRun, tr *traffic, faultStart, faultEnd time.Time)
}

// ScenarioNames lists the scenarios in the order Chaos runs them.
func ScenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

// scenarios are make chaos's faults, in order.
var scenarios = []scenario{
	{name: "baseline", fault: "none: the control row", budget: 5 * time.Second,
		run: func(ctx context.Context, _ *chaosRun, _ *traffic) error { return sleep(ctx, 5*time.Second) }},
	{name: "kill-primary", fault: "kill -9 of one primary; the health checker restarts it", budget: 10 * time.Second,
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error { return c.killAndWait(ctx, 0) }},
	{name: "kill-all-primaries", fault: "kill -9 of every primary: the backup takes over until the health checker has restarted them", budget: 12 * time.Second,
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			primaries := make([]int, c.o.Instances)
			for i := range primaries {
				primaries[i] = i
			}
			return c.killAndWait(ctx, primaries...)
		}},
	{name: "kill-mid-stream", fault: "kill -9 of the instance serving an open streamed turn (its X-Bot-Instance header), after the stream's first chunk; streams are slowed to 4 chunks 600 ms apart meanwhile", budget: 10 * time.Second,
		bound: "A stream whose instance dies after its first chunk cannot be retried by nginx (the response has begun) and no error event can be sent by a dead process: " +
			"its client sees the connection cut (no status, so no Retry-After) and retries the turn itself; the other streams open on that instance fail the same way. " +
			"Not acknowledged, so nothing is owed in memory. Bound: every stream open at the kill, stream rate × 2.4 s + the aimed one.",
		allowBad: func(c *chaosRun, _ ScenarioResult) int { return int(c.o.StreamRate*slowStream.Seconds()) + 1 },
		run:      func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.killMidStream(ctx, tr) }},
	{name: "kill-im-job", fault: "kill -9 of the instance whose queue consumer holds a pending IM job (XPENDING names it), while the job waits on a 2 s LLM reply", budget: 12 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.killJobHolder(ctx, tr) },
		after: func(c *chaosRun, tr *traffic, _, _ time.Time) {
			if tr.aimedEvent != "" {
				tr.observe("after the reclaim (claim_idle 5 s), that event was answered %d× on the platform", c.tg.answered()[tr.aimedEvent])
			}
		}},
	{name: "rolling-restart", fault: "scripts/rolling_restart.sh of every instance (checker paused for each, SIGTERM, start, ready, 2 s to settle)", budget: 20 * time.Second,
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			// One port at a time (each instance's Redis proxy makes its
			// settings its own), with the script's own settle between.
			for i, p := range c.f.botPorts {
				if i > 0 {
					if err := sleep(ctx, 2*time.Second); err != nil {
						return err
					}
				}
				if err := c.f.script(ctx, "rolling_restart.sh", p); err != nil {
					return err
				}
			}
			return nil
		}},
	{name: "healthchecker-kill", fault: "kill -9 of the health checker for 5 s; started again, it adopts the running instances (none restarted)", budget: 8 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error {
			pids := make([]int, len(c.f.botPorts))
			for i := range pids {
				pids[i] = c.f.botPID(i)
			}
			c.f.checker.kill()
			if err := sleep(ctx, 5*time.Second); err != nil {
				return err
			}
			if err := c.f.startChecker(ctx); err != nil {
				return err
			}
			for i, old := range pids {
				if pid := c.f.botPID(i); pid != old {
					return fmt.Errorf("instance %d changed from pid %d to %d: restarted, not adopted", i, old, pid)
				}
			}
			tr.observe("the restarted checker adopted all %d instances (same pids, every target healthy)", len(pids))
			return nil
		}},
	{name: "crash-loop", fault: "the backup instance killed (-9) three times, each time as soon as it is ready again: the health checker's backoff grows", budget: 20 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error {
			b := len(c.f.botPorts) - 1
			var took []string
			for range 3 {
				killed := time.Now()
				pid, err := c.f.killBot(b)
				if err != nil {
					return err
				}
				if err := c.f.waitBot(ctx, b, pid, 30*time.Second); err != nil {
					return err
				}
				took = append(took, fmt.Sprintf("%.1f s", time.Since(killed).Seconds()))
			}
			t, err := c.target(c.f.botPorts[b])
			if err != nil {
				return err
			}
			tr.observe("back and ready after %s; the checker counts %d restarts (%d in its %s budget window of %d), next backoff %s",
				strings.Join(took, ", "), t.Restarts.Total, t.Restarts.InWindow, t.Restarts.Window, t.Restarts.Budget, t.Backoff.Current)
			return nil
		}},
	{name: "restart-budget", fault: "the backup instance killed (-9) each time the health checker has it back, until its restart budget (5 in 10 min) is spent: " +
		"the checker marks it failed, stops restarting it and alerts a DingTalk robot (a local fake that checks the signature); then the operator's fix: " +
		"the instance started with scripts/start_multiple_instances.sh and the checker restarted", budget: 40 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.exhaustBudget(ctx, tr) }},
	{name: "redis-kill", fault: "kill -9 of Redis; started again 3 s later from its AOF (appendfsync everysec)", budget: 8 * time.Second,
		bound: "While Redis is down every turn fails with 503 and Retry-After (nothing to lose: it was never acknowledged). " +
			"Redis writes the AOF before it replies, so a process kill loses no acknowledged turn; appendfsync everysec bounds " +
			"a machine crash's loss to the last second of writes, which a process kill does not test.",
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			c.f.redis.kill()
			if err := sleep(ctx, 3*time.Second); err != nil {
				return err
			}
			return c.f.startRedis(ctx)
		}},
	{name: "redis-pause", fault: "SIGSTOP of Redis for 5 s, then SIGCONT", budget: 6 * time.Second,
		bound: "Turns that reach Redis while it is stopped wait for the client's read timeout and fail with 503 and Retry-After.",
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			if err := c.f.redis.signal(syscall.SIGSTOP); err != nil {
				return err
			}
			err := sleep(ctx, 5*time.Second)
			if cerr := c.f.redis.signal(sigCont); cerr != nil {
				return cerr
			}
			return err
		}},
	{name: "redis-maxmemory", fault: "Redis at maxmemory with noeviction for 6 s: its limit set to half of what it uses, so every write is refused (OOM)", budget: 7 * time.Second,
		bound: "A turn cannot be recorded while Redis refuses writes: it fails with 503 and Retry-After, and nothing acknowledged is lost.",
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			rdb := c.f.rdb
			used, err := rdb.Info(ctx, "memory").Result()
			if err != nil {
				return err
			}
			var bytes int64
			for line := range strings.SplitSeq(used, "\r\n") {
				if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
					bytes, _ = strconv.ParseInt(v, 10, 64)
				}
			}
			if bytes == 0 {
				return errors.New("INFO memory: no used_memory")
			}
			if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
				return err
			}
			if err := rdb.ConfigSet(ctx, "maxmemory", strconv.FormatInt(bytes/2, 10)).Err(); err != nil {
				return err
			}
			perr := sleep(ctx, 6*time.Second)
			if err := rdb.ConfigSet(context.WithoutCancel(ctx), "maxmemory", "0").Err(); err != nil {
				return err
			}
			return perr
		}},
	{name: "redis-latency", fault: "every instance's Redis 50 ms away each way, 5 % of segments retransmitted (+200 ms), for 8 s (a TCP proxy in Go)", budget: 9 * time.Second,
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			for _, p := range c.f.proxies {
				p.set(50*time.Millisecond, 0.05, false)
			}
			err := sleep(ctx, 8*time.Second)
			for _, p := range c.f.proxies {
				p.set(0, 0, false)
			}
			return err
		}},
	{name: "redis-partition-one", fault: "one primary cut off from Redis for 8 s while nginx still sends it traffic (its proxy forwards nothing)", budget: 9 * time.Second,
		bound: "The cut-off instance answers 503 with Retry-After once its Redis client times out; nginx passes a 503 on to the next instance (proxy_next_upstream http_503), so clients see the retry's answer.",
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			p := c.f.proxies[c.f.botPorts[0]]
			p.set(0, 0, true)
			err := sleep(ctx, 8*time.Second)
			p.set(0, 0, false)
			return err
		}},
	{name: "llm-faults", fault: "mockllm answers 500 for 4 s, then 429 with Retry-After for 4 s, then hangs (60 s latency) for 4 s, then is well again", budget: 45 * time.Second,
		bound: "Turns whose every LLM attempt fails are answered 503 with Retry-After (no fallback model is configured); none is recorded. " +
			"The breaker opens after 5 failures and stays open for its open_timeout (30 s) after the LLM is well again: the load runs on 33 s past the fault to show the recovery.",
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			for _, f := range []string{`{"error_rate":1,"error_status":500}`, `{"error_rate":1,"error_status":429}`, `{"error_rate":0,"latency_ms":60000}`} {
				if err := c.f.setFaults(ctx, f); err != nil {
					return err
				}
				if err := sleep(ctx, 4*time.Second); err != nil {
					return err
				}
			}
			return c.f.setFaults(ctx, fmt.Sprintf(`{"latency_ms":%d,"error_rate":0}`, chaosLLMLatency))
			// The load goes on for the rest of the budget: the breaker's
			// open time.
		},
		// Webhooks need no LLM: nginx's second upstream keeps them flowing
		// while every instance answers turns 503.
		after: func(_ *chaosRun, tr *traffic, from, to time.Time) {
			tr.observe("%s", during("Telegram webhooks", tr.im, from, to))
		}},
	{name: "llm-slow", fault: "mockllm streams every reply in 5 chunks 2 s apart (10 s a reply) for 12 s; replies not streamed keep their 20 ms", budget: 14 * time.Second,
		bound: "A streamed reply slower than the instances' LLM deadline (BOT_LLM_TIMEOUT=3s an attempt, reading included) is cut at the deadline: its client gets an error event " +
			"at the end of a 200 stream (failed, not acknowledged, nothing recorded) instead of waiting 10 s.",
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			if err := c.f.setFaults(ctx, `{"chunks":5,"chunk_delay_ms":2000}`); err != nil {
				return err
			}
			perr := sleep(ctx, 12*time.Second)
			if err := c.f.setFaults(context.WithoutCancel(ctx), `{"chunks":0,"chunk_delay_ms":0}`); err != nil {
				return err
			}
			return perr
		},
		after: func(_ *chaosRun, tr *traffic, from, to time.Time) {
			tr.observe("%s", during("streamed turns", tr.stream, from, to))
		}},
	{name: "nginx-reload", fault: "nginx reloaded (SIGHUP) three times, 1 s apart", budget: 4 * time.Second,
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			for range 3 {
				if err := c.f.nginx["fleet"].signal(syscall.SIGHUP); err != nil {
					return err
				}
				if err := sleep(ctx, time.Second); err != nil {
					return err
				}
			}
			return nil
		}},
	{name: "nginx-kill", fault: "kill -9 of nginx (master and workers); started again 2 s later", budget: 4 * time.Second,
		bound: "With nginx gone nothing listens: requests in flight are reset and new ones are refused (connection errors, no status to carry a Retry-After) until it is back. " +
			"Bound: the offered rate × (the outage + 1 s for the requests in flight). " +
			"A turn cut off after the instance recorded it is kept though its client saw an error (recorded-but-failed).",
		allowBad: func(_ *chaosRun, r ScenarioResult) int { return int(r.OfferedRPS * (r.FaultS + 1)) },
		run: func(ctx context.Context, c *chaosRun, _ *traffic) error {
			c.f.nginx["fleet"].kill()
			if err := sleep(ctx, 2*time.Second); err != nil {
				return err
			}
			return c.f.runNginx(ctx, "fleet")
		}},
	{name: "clock-skew", fault: "an extra instance under faketime +1h (LD_PRELOAD libfaketime, FAKETIME=+1h) takes IM jobs from the fleet's queue for 8 s", budget: 10 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.skewOneClock(ctx, tr) }},
	{name: "im-send-fails", fault: "the Telegram API fails every reply's first two sendMessage calls (500) for 8 s, then accepts them", budget: 8 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error {
			before := c.tg.refusedTotal()
			c.tg.failSends(2)
			err := sleep(ctx, 8*time.Second)
			c.tg.failSends(0)
			n := c.tg.refusedTotal() - before
			if err == nil && n == 0 {
				return errors.New("no reply was sent while the platform failed them: the fault never applied")
			}
			tr.observe("the platform refused %d sendMessage calls", n)
			return err
		}},
	{name: "im-duplicate-10x", fault: "20 Telegram events, each delivered 10 times at once, spread over every instance", budget: 5 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.duplicateEvents(ctx, tr, 20, 10) }},
	{name: "sentinel-failover", fault: "on a fleet of its own (a Redis master, one replica and 3 sentinels; 2 instances with redis.sentinels behind their own nginx): kill -9 of the master; the sentinels promote the replica and the instances follow it", budget: 15 * time.Second,
		bound: "While no master serves (down-after-milliseconds 3 s, then the election), turns fail with 503 and Retry-After. " +
			"Replication is asynchronous (memory.wait_replicas 0, the default): a turn committed on the old master within the replication lag before its death is answered but missing after the failover, " +
			"and its number goes to the next turn (misnumbered). Bound: the turns acknowledged in the second before the kill; memory.wait_replicas 1 makes it zero.",
		own: func(ctx context.Context, c *chaosRun, tr *traffic) (func(), error) {
			s, err := c.startSentinelFleet(ctx, tr)
			if err != nil {
				return nil, err
			}
			return func() { c.stopSentinelFleet(s) }, nil
		},
		allowLost: func(tr *traffic) int {
			return acknowledgedIn(slices.Concat(tr.chat, tr.compl, tr.stream), tr.killedAt.Add(-time.Second), tr.killedAt)
		},
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.failMaster(ctx, tr.sentinel, tr) }},
	// Last: blue comes back without its Redis proxies (see blueGreen).
	{name: "blue-green", fault: "scripts/bluegreen.sh deploy green (as many new instances on free ports; nginx reloaded onto them, the health checker re-pointed, blue stopped), then scripts/bluegreen.sh rollback", budget: 10 * time.Second,
		run: func(ctx context.Context, c *chaosRun, tr *traffic) error { return c.blueGreen(ctx, tr) }},
}

// killAndWait sends SIGKILL to the instances and waits until the health
// checker has restarted each and it is ready.
func (c *chaosRun) killAndWait(ctx context.Context, instances ...int) error {
	pids := map[int]int{}
	for _, i := range instances {
		pid, err := c.f.killBot(i)
		if err != nil {
			return err
		}
		pids[i] = pid
	}
	for _, i := range instances {
		if err := c.f.waitBot(ctx, i, pids[i], 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// sleep waits d or until ctx ends (pause.For), and returns ctx's error
// when it ended first.
func sleep(ctx context.Context, d time.Duration) error {
	if !pause.For(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// duplicateEvents delivers events updates, each copies times at once,
// straight to the instances in turn (as a platform retrying on timeouts
// reaches different instances), recording every delivery in tr.im.
func (c *chaosRun) duplicateEvents(ctx context.Context, tr *traffic, events, copies int) error {
	rec := tr.add(&tr.im)
	client := &http.Client{Timeout: chaosTimeout}
	for e := range events {
		// Seqs far above the load's own, so the update ids never meet.
		call := loadtest.Call{SessionID: fmt.Sprintf("dup-%d", e), Turn: 1, Message: fmt.Sprintf("duplicate event %d", e), Seq: 1 << 40 * int64(e+1)}
		var wg sync.WaitGroup
		for k := range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := tr.telegram.NewRequest(ctx, call)
				if err != nil {
					return
				}
				u, _ := url.Parse(c.f.botURL((e + k) % len(c.f.botPorts)))
				req.URL.Host, req.Host = u.Host, u.Host
				r := loadtest.CallRecord{Call: call, Sent: time.Now()}
				resp, err := client.Do(req)
				r.Done = time.Now()
				switch {
				case err != nil:
					r.Cause = loadtest.CauseConnection
				default:
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					r.Status, r.RetryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
					if r.Status != http.StatusOK {
						r.Cause = fmt.Sprintf("status_%d", r.Status)
					}
				}
				rec(r)
			}()
		}
		wg.Wait()
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// during says how the calls (what: "streamed turns") sent in [from, to)
// ended and how long the longest took.
func during(what string, calls []loadtest.CallRecord, from, to time.Time) string {
	ok, failed := 0, 0
	var longest, longestFailed time.Duration
	for _, r := range calls {
		if r.Sent.Before(from) || !r.Sent.Before(to) {
			continue
		}
		d := r.Done.Sub(r.Sent)
		longest = max(longest, d)
		if history.Acknowledged(r) {
			ok++
		} else {
			failed++
			longestFailed = max(longestFailed, d)
		}
	}
	return fmt.Sprintf("%s sent during the fault: %d acknowledged, %d failed; the longest took %.1f s (the longest failed one %.1f s)",
		what, ok, failed, longest.Seconds(), longestFailed.Seconds())
}

// acknowledgedIn counts the calls acknowledged (their response ended) in
// [from, to).
func acknowledgedIn(calls []loadtest.CallRecord, from, to time.Time) int {
	n := 0
	for _, r := range calls {
		if history.Acknowledged(r) && !r.Done.Before(from) && r.Done.Before(to) {
			n++
		}
	}
	return n
}
