package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/loadtest"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/redis/go-redis/v9"
)

// Aimed kills: the instance to kill is the one doing the work the fault is
// about, as the fleet itself names it (the X-Bot-Instance header of an
// open stream, the consumer of a pending IM job), not a random one.

// instanceRE finds the port in an instance's name (bot-instance-8081, as
// scripts/start_multiple_instances.sh names them) or in its queue
// consumer's (bot-instance-8081-1f2e3d4c, queue.NewConsumerName).
var instanceRE = regexp.MustCompile(`instance-(\d+)(?:-[0-9a-f]{8})?$`)

// instanceOf is the index in botPorts of the instance name names, or -1.
func (c *chaosRun) instanceOf(name string) int {
	m := instanceRE.FindStringSubmatch(name)
	if m == nil {
		return -1
	}
	port, _ := strconv.Atoi(m[1])
	return slices.Index(c.f.botPorts, port)
}

// slowStreams makes every streamed reply 4 chunks 600 ms apart (slowStream,
// under the instances' 3 s LLM deadline), so a stream is open long enough
// to kill its instance while the client reads it.
const (
	slowStreams = `{"chunks":4,"chunk_delay_ms":600}`
	slowStream  = 2400 * time.Millisecond
)

// killMidStream opens a streamed turn through nginx, kills -9 the instance
// that serves it (its X-Bot-Instance header) once the first chunk has
// arrived, reads on to see what the client gets, then retries the turn
// with the same Idempotency-Key as a client would. Both attempts go into
// the history.
func (c *chaosRun) killMidStream(ctx context.Context, tr *traffic) error {
	if err := c.f.setFaults(ctx, slowStreams); err != nil {
		return err
	}
	defer c.f.setFaults(context.WithoutCancel(ctx), `{"chunks":0,"chunk_delay_ms":0}`)
	target, err := loadtest.NewTarget("completions-stream", c.f.nginxURL("fleet"), Key)
	if err != nil {
		return err
	}
	rec := tr.add(&tr.stream)
	call := loadtest.Call{SessionID: "aimed-stream", Turn: 1, Message: fmt.Sprintf("aimed stream turn %d", time.Now().UnixNano())}
	key := "aimed-stream-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	send := func() (*http.Response, loadtest.CallRecord, error) {
		req, err := target.NewRequest(ctx, call)
		if err != nil {
			return nil, loadtest.CallRecord{}, err
		}
		req.Header.Set("Idempotency-Key", key)
		r := loadtest.CallRecord{Call: call, Sent: time.Now()}
		resp, err := (&http.Client{Timeout: chaosTimeout}).Do(req)
		if err != nil {
			r.Done, r.Cause = time.Now(), loadtest.CauseConnection
			rec(r)
			return nil, r, err
		}
		r.Status, r.RetryAfter, r.RequestID = resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Request-Id")
		return resp, r, nil
	}
	resp, r, err := send()
	if err != nil {
		return fmt.Errorf("the aimed stream: %w", err)
	}
	served := resp.Header.Get("X-Bot-Instance")
	i := c.instanceOf(served)
	if i < 0 {
		resp.Body.Close()
		return fmt.Errorf("the aimed stream's X-Bot-Instance %q names no instance of the fleet", served)
	}
	// Read up to the first content chunk, kill, read on.
	sc := bufio.NewScanner(resp.Body)
	var body strings.Builder
	chunks, pid := 0, 0
	for sc.Scan() {
		line := sc.Text()
		body.WriteString(line + "\n")
		if strings.HasPrefix(line, "data: {") && strings.Contains(line, `"content":"`) && !strings.Contains(line, `"content":""`) {
			chunks++
			if pid == 0 {
				if pid, err = c.f.killBot(i); err != nil {
					resp.Body.Close()
					return err
				}
			}
		}
	}
	readErr := sc.Err()
	resp.Body.Close()
	r.Done = time.Now()
	_, checkErr := target.Check(r.Status, []byte(body.String()))
	seen := "the stream ended cleanly (the kill came too late)"
	switch {
	case readErr != nil:
		// As the load generator records a body cut off: no status.
		r.Status, r.Cause, seen = 0, loadtest.CauseConnection, "the connection was cut ("+readErr.Error()+")"
	case checkErr != nil:
		r.Cause, seen = loadtest.CauseDecode, "the stream ended without [DONE]: "+checkErr.Error()
	}
	rec(r)
	if pid == 0 {
		return errors.New("the aimed stream sent no content chunk: nothing was killed")
	}
	// The client's retry, same Idempotency-Key.
	resp2, r2, err := send()
	retry := "no answer: " + fmt.Sprint(err)
	if err == nil {
		b, rerr := io.ReadAll(resp2.Body)
		resp2.Body.Close()
		r2.Done = time.Now()
		if _, cerr := target.Check(r2.Status, b); rerr != nil || cerr != nil {
			r2.Cause = loadtest.CauseDecode
			if r2.Status != http.StatusOK {
				r2.Cause = "status_" + strconv.Itoa(r2.Status)
			}
		}
		rec(r2)
		retry = fmt.Sprintf("%d from %s after %.1f s", r2.Status, resp2.Header.Get("X-Bot-Instance"), r2.Done.Sub(r2.Sent).Seconds())
	}
	tr.observe("the aimed stream was served by %s (pid %d), killed after its first chunk; content chunks the client got: %d, then %s; "+
		"its retry with the same Idempotency-Key: %s", served, pid, chunks, seen, retry)
	return c.f.waitBot(ctx, i, pid, 30*time.Second)
}

// slowJobs makes every LLM reply take 2 s (under the 3 s deadline), so an
// IM job stays pending with its consumer long enough to be found.
const slowJobs = `{"latency_ms":2000}`

// killJobHolder finds an IM job pending with an instance's consumer (the
// queue's own record of who holds it), kills -9 that instance while the
// job runs, and notes which event the job was for; the checker then
// requires it answered once (another instance reclaims it after
// claim_idle).
func (c *chaosRun) killJobHolder(ctx context.Context, tr *traffic) error {
	if err := c.f.setFaults(ctx, slowJobs); err != nil {
		return err
	}
	defer c.f.setFaults(context.WithoutCancel(ctx), fmt.Sprintf(`{"latency_ms":%d}`, chaosLLMLatency))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range queue.Priorities {
			stream := c.queue.Stream(p)
			pend, err := c.f.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: queue.Group, Start: "-", End: "+", Count: 20}).Result()
			if err != nil && !errors.Is(err, redis.Nil) && !strings.Contains(err.Error(), "NOGROUP") {
				return err
			}
			for _, e := range pend {
				i := c.instanceOf(e.Consumer)
				if i < 0 {
					continue
				}
				event := ""
				if msgs, err := c.f.rdb.XRange(ctx, stream, e.ID, e.ID).Result(); err == nil && len(msgs) == 1 {
					event = fmt.Sprint(msgs[0].Values["event"])
				}
				pid, err := c.f.killBot(i)
				if err != nil {
					return err
				}
				killed := time.Now()
				if err := c.f.waitBot(ctx, i, pid, 30*time.Second); err != nil {
					return err
				}
				tr.aimedEvent = event
				tr.observe("IM job %s (Telegram event %s) was pending with consumer %s, %d ms into its delivery %d; its instance (pid %d) was killed; back after %.1f s",
					e.ID, event, e.Consumer, e.Idle.Milliseconds(), e.RetryCount, pid, time.Since(killed).Seconds())
				return nil
			}
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("no IM job was pending with an instance within 10 s")
}
