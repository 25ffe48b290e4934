package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/history"
	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
)

// ChaosOptions configure Chaos. Zero fields take the defaults named on
// each.
type ChaosOptions struct {
	// Root, Bin as in Options. Dir holds the logs and nginx prefixes;
	// default Root/run/chaos.
	Root, Bin, Dir string
	// Quick shortens every scenario: 3 s of load before the fault and 5 s
	// after it (default 8 s and 10 s).
	Quick bool
	// Only runs these scenarios (names from Scenarios); default all.
	Only []string
	// Instances and Backups are the fleet's primaries and backups.
	// Default 3 and 1.
	Instances, Backups int
	// ChatRate, CompletionsRate, StreamRate and TelegramRate are the
	// open-model rates of the four loads: POST /v1/chat, POST
	// /v1/chat/completions, the same with "stream": true, and Telegram
	// webhook events. Default 30, 10, 5 and 10 req/s.
	ChatRate, CompletionsRate, StreamRate, TelegramRate float64
	// Before and After are the load before the fault and after it ends.
	Before, After time.Duration
	// Log gets progress lines; nil discards them.
	Log io.Writer
}

func (o *ChaosOptions) defaults() {
	paths(&o.Root, &o.Bin, &o.Dir, "chaos")
	d := ChaosOptions{Instances: 3, Backups: 1, ChatRate: 30, CompletionsRate: 10, StreamRate: 5, TelegramRate: 10,
		Before: 8 * time.Second, After: 10 * time.Second, Log: io.Discard}
	if o.Quick {
		d.Before, d.After = 3*time.Second, 5*time.Second
	}
	defaults.Fill(o, d)
}

// Settings of the chaos fleet and its load, the same in every scenario.
const (
	// chaosMessageBytes makes every message unique to its conversation and
	// turn, so the checker finds each in memory.
	chaosMessageBytes = 48
	// chaosTurns × 2 entries fit in chaosMaxEntries: nothing is trimmed.
	chaosTurns      = 10
	chaosMaxEntries = 100
	// chaosTimeout bounds a request: past it the client gives up (a bad
	// failure). Above the instances' LLM budget (3 tries of 3 s).
	chaosTimeout = 30 * time.Second
	// chaosLLMLatency is mockllm's latency between faults: turns are in
	// flight when an instance dies.
	chaosLLMLatency = 20
	// imSettle bounds the wait for the queue to send the replies of the
	// events it took after the load ends; imQuiet ends it early when no
	// reply came for that long (longer than a job's retry backoff).
	imSettle = 60 * time.Second
	imQuiet  = 12 * time.Second
)

// chaosEnv is the instances' settings beyond the bench's: the fake
// Telegram, and an LLM budget shorter than a client's patience.
// A killed instance's IM jobs are reclaimed after 5 s (default 30 s) so
// that a scenario sees them answered; with that, 10 deliveries (default 5)
// keep a job's retries (each waits out the error's Retry-After, at most
// claim_idle) longer than the LLM breaker's 30 s open time, as the
// defaults do (5 × 30 s).
var chaosEnv = []string{"BOT_LLM_TIMEOUT=3s", "BOT_QUEUE_CLAIM_IDLE=5s", "BOT_QUEUE_MAX_DELIVERIES=10"}

// chaosRun is one make chaos.
type chaosRun struct {
	o     ChaosOptions
	f     *fleet
	tg    *fakeTelegram
	robot *fakeRobot // the health checker's alert webhook
	svc   *chat.Service
	mem   *memory.Store
	queue *queue.Queue // the instances' IM queue, for its dead letters
}

// Chaos brings up the chaos fleet, runs the scenarios and returns the
// report; an error only when the fleet could not start (a scenario that
// fails is a row with its Error).
func Chaos(ctx context.Context, o ChaosOptions) (*ChaosReport, error) {
	o.defaults()
	for _, n := range o.Only {
		if !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.name == n }) {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", n, strings.Join(ScenarioNames(), ", "))
		}
	}
	started := time.Now()
	rep := &ChaosReport{Schema: ChaosSchemaVersion, Generated: started.UTC().Truncate(time.Second), Quick: o.Quick, Notes: []string{}}
	rep.Machine, rep.Commit = machineOf(ctx, o.Root)
	rep.Settings = ChaosSettings{Instances: o.Instances, Backups: o.Backups, ChatRPS: o.ChatRate, CompletionsRPS: o.CompletionsRate, StreamRPS: o.StreamRate,
		TelegramRPS: o.TelegramRate, BeforeS: o.Before.Seconds(), AfterS: o.After.Seconds(), TimeoutS: chaosTimeout.Seconds(),
		Turns: chaosTurns, MaxEntries: chaosMaxEntries, LLMLatencyMS: chaosLLMLatency, Env: chaosEnv}
	c, err := startChaos(ctx, o)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	for _, s := range scenarios {
		if len(o.Only) > 0 && !slices.Contains(o.Only, s.name) {
			continue
		}
		fmt.Fprintf(o.Log, "chaos: scenario %s: %s\n", s.name, s.fault)
		res := c.scenario(ctx, s)
		rep.Scenarios = append(rep.Scenarios, res)
		fmt.Fprintf(o.Log, "chaos: %s: %s\n", s.name, res.summary())
		if ctx.Err() != nil {
			rep.Notes = append(rep.Notes, "interrupted in scenario "+s.name)
			break
		}
	}
	rep.DurationS = round(time.Since(started).Seconds(), 1)
	return rep, nil
}

// startChaos starts the fake Telegram and the fleet: Redis with AOF,
// mockllm, the primaries and backups behind nginx.
func startChaos(ctx context.Context, o ChaosOptions) (_ *chaosRun, err error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(o.Dir)
	if err != nil {
		return nil, err
	}
	c := &chaosRun{o: o}
	defer func() {
		if err != nil {
			c.stop()
		}
		unlock()
	}()
	// A fresh AOF: the previous run's data must not load.
	_ = os.RemoveAll(filepath.Join(o.Dir, "appendonlydir"))
	if err := clean(o.Dir); err != nil {
		return nil, err
	}
	if c.tg, err = startFakeTelegram(); err != nil {
		return nil, err
	}
	if c.robot, err = startFakeRobot(); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "chaos: fleet: redis-server (AOF), mockllm, %d primaries + %d backup, nginx (logs in %s)\n",
		o.Instances, o.Backups, filepath.Join(o.Dir, "logs"))
	if c.f, err = startFleetWith(ctx, o.Root, o.Bin, o.Dir, fleetOptions{Instances: o.Instances, Backups: o.Backups, AOF: true, FleetOnly: true, Supervised: true, RedisProxies: true,
		CheckerEnv: []string{"ALERT_WEBHOOK=" + c.robot.webhook(), "ALERT_KIND=dingtalk", "ALERT_SECRET=" + robotSecret}}); err != nil {
		return nil, err
	}
	if err := c.f.startBots(ctx, botConfig{Backend: "openai", MaxEntries: chaosMaxEntries, Env: append(slices.Clone(chaosEnv), c.tg.env()...)}); err != nil {
		return nil, err
	}
	c.mem = memory.New(ctx, c.f.rdb, memory.Options{MaxEntries: chaosMaxEntries})
	c.svc = chat.New(c.mem, nil, chat.Options{})
	c.queue = queue.New(c.f.rdb, c.mem.Options().Prefix, 0)
	return c, nil
}

func (c *chaosRun) stop() {
	if c.mem != nil {
		_ = c.mem.Close()
	}
	if c.f != nil {
		c.f.stop()
	}
	if c.tg != nil {
		c.tg.stop()
	}
	if c.robot != nil {
		c.robot.stop()
	}
}

// traffic is one scenario's history: every request of its loads.
type traffic struct {
	mu                  sync.Mutex
	chat, compl, stream []loadtest.CallRecord
	im                  []loadtest.CallRecord
	telegram            *loadtest.TelegramTarget
	observed            []string // what the fault saw, in words
	// aimedEvent is the IM event whose job an aimed kill interrupted
	// (killJobHolder).
	aimedEvent string
	// url and svc, when set, are the nginx the load goes to and the
	// memory the checker reads, of a scenario's own fleet (sentinel).
	url      string
	svc      *chat.Service
	sentinel *sentinelFleet
	killedAt time.Time
}

// observe notes what the fault saw for the report.
func (t *traffic) observe(format string, args ...any) {
	t.mu.Lock()
	t.observed = append(t.observed, fmt.Sprintf(format, args...))
	t.mu.Unlock()
}

func (t *traffic) add(dst *[]loadtest.CallRecord) func(loadtest.CallRecord) {
	return func(c loadtest.CallRecord) {
		t.mu.Lock()
		*dst = append(*dst, c)
		t.mu.Unlock()
	}
}

// load drives the four open-model loads through nginx for d and returns
// their history.
func (c *chaosRun) load(ctx context.Context, tr *traffic, d time.Duration) error {
	url := c.f.nginxURL("fleet")
	if tr.url != "" {
		url = tr.url
	}
	chatT, err := loadtest.NewTarget("chat", url, Key)
	if err != nil {
		return err
	}
	complT, err := loadtest.NewTarget("completions", url, Key)
	if err != nil {
		return err
	}
	streamT, err := loadtest.NewTarget("completions-stream", url, Key)
	if err != nil {
		return err
	}
	if tr.telegram, err = loadtest.NewTelegramTarget(url, telegramSecret); err != nil {
		return err
	}
	runs := []struct {
		t    loadtest.Target
		rate float64
		dst  *[]loadtest.CallRecord
	}{{chatT, c.o.ChatRate, &tr.chat}, {complT, c.o.CompletionsRate, &tr.compl}, {streamT, c.o.StreamRate, &tr.stream},
		{tr.telegram, c.o.TelegramRate, &tr.im}}
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = loadtest.Run(ctx, loadtest.Options{Target: r.t, URL: url, Rate: r.rate, Duration: d, Turns: chaosTurns,
				MessageBytes: chaosMessageBytes, Timeout: chaosTimeout, OnCall: tr.add(r.dst)})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// scenario runs s: the loads for Before + the fault + After, the fault
// injected Before into them; then it waits for the IM replies, checks the
// history and puts the fleet back as it was.
func (c *chaosRun) scenario(ctx context.Context, s scenario) ScenarioResult {
	res := ScenarioResult{Name: s.name, Fault: s.fault, Bound: s.bound, Failed: map[string]int{},
		OfferedRPS: c.o.ChatRate + c.o.CompletionsRate + c.o.StreamRate + c.o.TelegramRate}
	if err := c.heal(ctx); err != nil {
		res.Error = "the fleet could not be made whole before the scenario: " + err.Error()
		return res
	}
	tr := &traffic{}
	if s.own != nil {
		stop, err := s.own(ctx, c, tr)
		if err != nil {
			res.Error = "the scenario's own fleet did not start: " + err.Error()
			return res
		}
		defer stop()
	}
	deadBefore := c.deadLetters(ctx)
	start := time.Now()
	var faultStart, faultEnd time.Time
	var faultErr error
	loadDone := make(chan error, 1)
	go func() { loadDone <- c.load(ctx, tr, c.o.Before+s.budget+c.o.After) }()
	select {
	case <-time.After(c.o.Before):
	case <-ctx.Done():
	}
	faultStart = time.Now()
	if ctx.Err() == nil {
		faultErr = s.run(ctx, c, tr)
	}
	faultEnd = time.Now()
	if err := <-loadDone; err != nil {
		res.Error = "load: " + err.Error()
		return res
	}
	res.Observed = tr.observed
	res.FaultS = round(faultEnd.Sub(faultStart).Seconds(), 1)
	res.LoadS = round(time.Since(start).Seconds(), 1)
	if faultErr != nil {
		res.Error = "fault: " + faultErr.Error()
	}
	// The fleet must be whole to read the history back and to send the
	// replies of the events it holds.
	if err := c.heal(ctx); err != nil {
		res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + "the fleet did not come back: " + err.Error()
		return res
	}
	c.settleIM(ctx, tr)
	if s.after != nil {
		s.after(c, tr, faultStart, faultEnd)
	}
	res.Observed = tr.observed
	res.DeadLettered = c.deadLetters(ctx) - deadBefore
	allowed, allowedLost := 0, 0
	if s.allowBad != nil {
		allowed = s.allowBad(c, res)
	}
	if s.allowLost != nil {
		allowedLost = s.allowLost(tr)
	}
	c.judge(ctx, &res, tr, faultStart, faultEnd, allowed, allowedLost)
	return res
}

// heal puts the fleet back: Redis up, mockllm without faults, the health
// checker, nginx and every instance running and ready, a turn answered.
func (c *chaosRun) heal(ctx context.Context) error {
	f := c.f
	if !alive(f.redis) {
		if err := f.startRedis(ctx); err != nil {
			return err
		}
	}
	_ = f.redis.signal(sigCont)
	_ = f.rdb.ConfigSet(ctx, "maxmemory", "0").Err()
	for _, p := range f.proxies {
		p.set(0, 0, false)
	}
	if err := c.f.setFaults(ctx, fmt.Sprintf(`{"latency_ms":%d,"jitter_ms":0,"error_rate":0,"error_status":500,"chunks":0,"chunk_delay_ms":0,"cut_after":0}`, chaosLLMLatency)); err != nil {
		return err
	}
	if !alive(f.checker) {
		if err := f.startChecker(ctx); err != nil {
			return err
		}
	}
	if p := f.nginx["fleet"]; !alive(p) {
		if err := f.runNginx(ctx, "fleet"); err != nil {
			return err
		}
	}
	// The health checker brings back any instance that is down.
	for i := range f.botPorts {
		if err := f.waitBot(ctx, i, -1, 30*time.Second); err != nil {
			return err
		}
	}
	return c.probe(ctx)
}

// probeTimeout bounds the wait for a turn to succeed again: longer than
// the LLM breaker's open_timeout (30 s).
const probeTimeout = 60 * time.Second

// probe sends turns through nginx until one is answered 200: the whole
// path (nginx, an instance, Redis, the LLM and its breaker) serves again.
func (c *chaosRun) probe(ctx context.Context) error {
	deadline := time.Now().Add(probeTimeout)
	last := "no answer"
	for n := 0; time.Now().Before(deadline); n++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.f.nginxURL("fleet")+loadtest.ChatPath,
			strings.NewReader(fmt.Sprintf(`{"message":"probe %d","session_id":"chaos-probe"}`, n)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+Key)
		resp, err := c.f.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("no turn succeeded through nginx within %v (last: %s)", probeTimeout, last)
}

// deadLetters is the IM queue's dead-letter stream's length (0 when
// unreadable).
func (c *chaosRun) deadLetters(ctx context.Context) int {
	n, _ := c.f.rdb.XLen(ctx, c.queue.DeadStream()).Result()
	return int(n)
}

// settleIM waits until every acknowledged event of tr was answered, or no
// answer came for imQuiet, or imSettle passed.
func (c *chaosRun) settleIM(ctx context.Context, tr *traffic) {
	deadline := time.Now().Add(imSettle)
	last, quiet := c.tg.total(), time.Now()
	for time.Now().Before(deadline) && time.Since(quiet) < imQuiet {
		answers := c.tg.answered()
		r := history.CheckIM(tr.im, c.eventOf(tr), answers)
		if r.Answered0 == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		if n := c.tg.total(); n != last {
			last, quiet = n, time.Now()
		}
	}
}

// eventOf names an IM call's event by its message_id (what replies quote).
func (c *chaosRun) eventOf(tr *traffic) func(loadtest.CallRecord) string {
	return func(r loadtest.CallRecord) string { return fmt.Sprint(tr.telegram.UpdateID(r.Call)) }
}

// judge checks tr's history and fills in res.
// allowedBad is how many failures without Retry-After the fault makes
// unavoidable, allowedLost how many acknowledged turns (lost, or numbered
// anew after one was lost) (the scenario's bounds; 0 for none).
func (c *chaosRun) judge(ctx context.Context, res *ScenarioResult, tr *traffic, faultStart, faultEnd time.Time, allowedBad, allowedLost int) {
	svc := c.svc
	if tr.svc != nil {
		svc = tr.svc
	}
	chatRep, err := history.Check(ctx, tr.chat, history.ChatSource(svc, false))
	if err != nil {
		res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + err.Error()
		return
	}
	complRep, err := history.Check(ctx, slices.Concat(tr.compl, tr.stream), history.ChatSource(svc, true))
	if err != nil {
		res.Error = strings.TrimPrefix(res.Error+"; ", "; ") + err.Error()
		return
	}
	// Webhook calls are judged by their failures here (their memory is
	// the platform's chat, checked by the answers).
	imRep, _ := history.Check(ctx, tr.im, func(context.Context, string) ([]memory.Entry, error) { return nil, nil })
	res.IM = history.CheckIM(tr.im, c.eventOf(tr), c.tg.answered())
	for _, r := range []history.Report{chatRep, complRep} {
		res.Lost += r.Lost
		res.Duplicated += r.Duplicated
		res.Reordered += r.Reordered
		res.Misnumbered += r.Misnumbered
		res.RecordedFailed += r.RecordedFailed
		res.Examples = append(res.Examples, r.Examples...)
	}
	res.BadByCause = map[string]int{}
	for _, r := range []history.Report{chatRep, complRep, imRep} {
		res.Requests += r.Requests
		res.Acknowledged += r.Acknowledged
		res.Bad += r.Bad
		for k, v := range r.Failed {
			res.Failed[k] += v
		}
		for k, v := range r.BadByCause {
			res.BadByCause[k] += v
		}
	}
	res.Examples = append(res.Examples, res.IM.Examples...)
	all := slices.Concat(tr.chat, tr.compl, tr.stream, tr.im)
	res.P99DuringMS = p99(all, faultStart, faultEnd)
	res.P99AfterMS = p99(all, faultEnd, time.Now())
	var lastFail time.Time
	for _, r := range all {
		if !history.Acknowledged(r) && r.Done.After(lastFail) {
			lastFail = r.Done
		}
	}
	if lastFail.After(faultEnd) {
		res.RecoverS = round(lastFail.Sub(faultEnd).Seconds(), 1)
	}
	res.AllowedBad, res.AllowedLost = allowedBad, allowedLost
	res.Held, res.Verdict = verdict(*res)
}

// verdict judges a row from its figures and bounds (AllowedBad,
// AllowedLost): held when nothing failed without Retry-After and nothing
// was lost, doubled, misordered or left unanswered; within bound when
// failures without Retry-After and lost turns stay within the bounds and
// nothing was doubled or left unanswered; else not held.
func verdict(r ScenarioResult) (held bool, v string) {
	lost := r.Lost + r.Reordered + r.Misnumbered
	intact := r.Duplicated == 0 && r.IM.Clean() && r.Error == ""
	switch {
	case intact && lost == 0 && r.Bad == 0:
		return true, VerdictHeld
	case intact && r.Bad <= r.AllowedBad && lost <= r.AllowedLost:
		return false, VerdictWithinBound
	}
	return false, VerdictBroken
}

// p99 is the 99th percentile, in ms, of the successful calls sent in
// [from, to) (send to end of response); 0 when none.
func p99(calls []loadtest.CallRecord, from, to time.Time) float64 {
	var ds []time.Duration
	for _, c := range calls {
		if history.Acknowledged(c) && !c.Sent.Before(from) && c.Sent.Before(to) {
			ds = append(ds, c.Done.Sub(c.Sent))
		}
	}
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ms(ds[min(len(ds)-1, int(float64(len(ds))*0.99))])
}
