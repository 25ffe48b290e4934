package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// startMock serves mockllm for the fleet's instances; failFirst answers
// that many calls with 503 before the mock answers.
func startMock(t *testing.T, faults mockllm.Faults, failFirst int64) (*mockllm.Server, string) {
	t.Helper()
	m := mockllm.New(mockllm.Options{Faults: faults, Seed: 1})
	var failed atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/chat/completions" && failed.Add(1) <= failFirst {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"message":"overloaded","type":"server_error"}}`, http.StatusServiceUnavailable)
			return
		}
		m.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return m, srv.URL + "/v1"
}

// mockEnv points a fleet's instances at the mock.
func mockEnv(url string, kv ...string) []string {
	return append([]string{"BOT_LLM_PROVIDER=openai", "MODEL_ENDPOINT=" + url, "BOT_LLM_MODEL=mock-1",
		"BOT_LLM_RETRIES=0", "BOT_CACHE_ENABLED=false", "BOT_STREAM_FLUSH_INTERVAL=10ms"}, kv...)
}

func (f *testFleet) history(t *testing.T, conv string) []memory.Entry {
	t.Helper()
	store := memory.New(context.Background(), f.Redis.Client(), memory.Options{})
	defer store.Close()
	h, err := store.History(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = "w" + strconv.Itoa(i)
	}
	return strings.Join(w, " ")
}

// The official openai-go client talks to the fleet through nginx as to
// OpenAI: the model list, plain and streamed completions with memory by
// user, OpenAI's errors as its error type, and its own retry of a 503.
func TestOpenAIGoClientThroughNginx(t *testing.T) {
	mock, url := startMock(t, mockllm.Faults{Chunks: 20, ChunkDelay: 50 * time.Millisecond}, 0)
	f := startFleet(t, []int{1, 1}, false, mockEnv(url)...)
	client := openai.NewClient(option.WithBaseURL(f.Nginx.URL("/v1/")), option.WithAPIKey(apiKey), option.WithMaxRetries(0))
	ctx := context.Background()

	models, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range models.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "mock-1,builtin" {
		t.Fatalf("models %v", ids)
	}

	ask := func(msg string) *openai.ChatCompletion {
		t.Helper()
		c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "mock-1", User: openai.String("sdk-user"),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(msg)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first, second := ask("hello"), ask("again")
	if !strings.HasPrefix(first.Choices[0].Message.Content, "mock n=2 ") || !strings.HasPrefix(second.Choices[0].Message.Content, "mock n=4 ") ||
		first.Usage.TotalTokens == 0 || second.Model != "mock-1" {
		t.Fatalf("memory by user: %q then %q", first.Choices[0].Message.Content, second.Choices[0].Message.Content)
	}

	// Streamed: the first piece arrives before the backend has sent its last,
	// and every piece in order.
	s := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model: "mock-1", User: openai.String("sdk-user"),
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(words(30))},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	var firstPiece time.Time
	pieces := 0
	for s.Next() {
		chunk := s.Current()
		acc.AddChunk(chunk)
		if len(chunk.Choices) > 0 && chunk.Choices[0].Delta.Content != "" {
			if pieces == 0 {
				firstPiece = time.Now()
			}
			pieces++
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	times := mock.StreamTimes()
	if !firstPiece.Before(time.Unix(0, times.LastChunk)) {
		t.Fatalf("the first piece reached the client at %v, after the backend's last one at %v: the stream was buffered",
			firstPiece, time.Unix(0, times.LastChunk))
	}
	t.Logf("first piece through nginx %v before the backend's last; %d pieces", time.Unix(0, times.LastChunk).Sub(firstPiece), pieces)
	h := f.history(t, "api:default:c2c:sdk-user")
	if pieces != 20 || len(h) != 6 || acc.Choices[0].Message.Content != h[5].Content || acc.Usage.TotalTokens == 0 {
		t.Fatalf("%d pieces reassembled to %q; memory holds %d entries, the last %q", pieces, acc.Choices[0].Message.Content, len(h), h[len(h)-1].Content)
	}

	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "gpt-9", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("unknown model: %v", err)
	}
}

// The SDK retries a 503 of the fleet by itself, after its Retry-After.
func TestOpenAIGoClientRetriesA503(t *testing.T) {
	mock, url := startMock(t, mockllm.Faults{}, 1)
	f := startFleet(t, []int{1}, false, mockEnv(url)...)
	client := openai.NewClient(option.WithBaseURL(f.Nginx.URL("/v1/")), option.WithAPIKey(apiKey), option.WithMaxRetries(2))
	c, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: "mock-1", User: openai.String("retry-user"), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err != nil || !strings.HasPrefix(c.Choices[0].Message.Content, "mock ") {
		t.Fatalf("%+v, %v", c, err)
	}
	if calls := mock.Stats().Calls; calls != 1 { // the first call was the 503, before the mock
		t.Fatalf("the mock answered %d calls, want 1 after the SDK's retry", calls)
	}
	if h := f.history(t, "api:default:c2c:retry-user"); len(h) != 2 {
		t.Fatalf("memory holds %d entries, want the one turn", len(h))
	}
}

// The SDK retries a 429 of the fleet's own rate limit by itself, after the
// Retry-After the fleet sent, and the turn is stored once.
func TestOpenAIGoClientRetriesA429(t *testing.T) {
	_, url := startMock(t, mockllm.Faults{}, 0)
	f := startFleet(t, []int{1}, false, mockEnv(url, "BOT_RATELIMIT_PER_KEY=1")...)
	var attempts []int // the status of each of the SDK's attempts
	record := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		res, err := next(r)
		if err == nil {
			attempts = append(attempts, res.StatusCode)
		}
		return res, err
	})
	ask := func(retries int, user string) error {
		client := openai.NewClient(option.WithBaseURL(f.Nginx.URL("/v1/")), option.WithAPIKey(apiKey), option.WithMaxRetries(retries), record)
		_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "mock-1", User: openai.String(user), Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		return err
	}
	// Without retries a request over the limit (one a second) is the SDK's
	// error with the fleet's status and code.
	var apiErr *openai.Error
	for i := 0; apiErr == nil; i++ {
		if i == 10 {
			t.Fatalf("ten requests in a row were all admitted under a limit of one a second: %v", attempts)
		}
		if err := ask(0, "limited"); err != nil && (!errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limited") {
			t.Fatalf("over the limit: %v, want the SDK's 429 error", err)
		}
	}
	// With retries the SDK waits out the Retry-After and succeeds; a call
	// whose first attempt came late enough to be admitted proves nothing,
	// so the next one is made at once.
	for i := 0; ; i++ {
		attempts = nil
		if err := ask(2, "retried-"+strconv.Itoa(i)); err != nil {
			t.Fatalf("with the SDK's retries: %v (attempts %v)", err, attempts)
		}
		if len(attempts) > 1 {
			if attempts[0] != 429 || attempts[len(attempts)-1] != 200 {
				t.Fatalf("the SDK's attempts: %v, want a 429 retried into a 200", attempts)
			}
			if h := f.history(t, "api:default:c2c:retried-"+strconv.Itoa(i)); len(h) != 2 {
				t.Fatalf("memory holds %d entries for the retried turn, want 2", len(h))
			}
			return
		}
		if i == 10 {
			t.Fatal("ten requests in a row were all admitted under a limit of one a second")
		}
	}
}

// npmOpenAI is the official openai npm package, installed once into the
// user's cache (from the npm registry) for the node tests.
func npmOpenAI(t *testing.T) string {
	t.Helper()
	testenv.LookPath(t, "node")
	testenv.LookPath(t, "npm")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "botfleet", "npm-openai")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openai", "package.json")); err == nil {
		return filepath.Join(dir, "node_modules")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("npm", "install", "--prefix", dir, "--no-audit", "--no-fund", "--silent", "openai@7").CombinedOutput()
	if err != nil {
		t.Fatalf("npm install openai: %v\n%s", err, out)
	}
	return filepath.Join(dir, "node_modules")
}

const nodeClient = `
const OpenAI = require('openai');
// Every attempt's status, the SDK's retries included (the fleet limits the
// key to one request a second, so the SDK meets 429s and retries them).
const attempts = [];
const counting = async (url, init) => { const r = await fetch(url, init); attempts.push(r.status); return r; };
const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.KEY, maxRetries: 3, fetch: counting });
(async () => {
  const out = {};
  out.models = (await client.models.list()).data.map(m => m.id);
  const plain = await client.chat.completions.create({ model: 'mock-1', user: 'node-user', messages: [{ role: 'user', content: 'hello' }] });
  out.plain = plain.choices[0].message.content;
  const stream = await client.chat.completions.create({ model: 'mock-1', user: 'node-user', stream: true,
    messages: [{ role: 'user', content: 'tell me more' }] });
  out.pieces = 0; out.streamed = '';
  for await (const chunk of stream) {
    const d = chunk.choices[0] && chunk.choices[0].delta.content;
    if (d) { out.pieces++; out.streamed += d; }
  }
  try {
    await client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] });
  } catch (e) {
    out.error = { name: e.constructor.name, status: e.status, code: e.code, type: e.type };
  }
  // A turn whose first attempt was limited and then retried by the SDK (a
  // turn admitted at once proves nothing, so the next is sent at once).
  for (out.retriedTurns = 1; out.retriedTurns <= 10; out.retriedTurns++) {
    const before = attempts.length;
    await client.chat.completions.create({ model: 'mock-1', user: 'node-retried', messages: [{ role: 'user', content: 'hi' }] });
    if (attempts.length - before > 1) { out.retried = attempts.slice(before); break; }
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(e); process.exit(1); });
`

// The official openai npm package, run by node, talks to the fleet
// through nginx unchanged, and retries the fleet's 429s by itself.
func TestOpenAINodeClientThroughNginx(t *testing.T) {
	modules := npmOpenAI(t)
	_, url := startMock(t, mockllm.Faults{Chunks: 5}, 0)
	f := startFleet(t, []int{1, 1}, false, mockEnv(url, "BOT_RATELIMIT_PER_KEY=1")...)
	script := filepath.Join(t.TempDir(), "client.js")
	if err := os.WriteFile(script, []byte(nodeClient), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "BASE_URL="+f.Nginx.URL("/v1"), "KEY="+apiKey)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("node: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got struct {
		Models   []string `json:"models"`
		Plain    string   `json:"plain"`
		Streamed string   `json:"streamed"`
		Pieces   int      `json:"pieces"`
		Retried  []int    `json:"retried"`
		Turns    int      `json:"retriedTurns"`
		Error    struct {
			Name   string `json:"name"`
			Status int    `json:"status"`
			Code   string `json:"code"`
			Type   string `json:"type"`
		} `json:"error"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	h := f.history(t, "api:default:c2c:node-user")
	if strings.Join(got.Models, ",") != "mock-1,builtin" || !strings.HasPrefix(got.Plain, "mock n=2 ") ||
		!strings.HasPrefix(got.Streamed, "mock n=4 ") || got.Pieces != 5 || len(h) != 4 || h[3].Content != got.Streamed {
		t.Fatalf("node client: %+v; memory %+v", got, h)
	}
	if got.Error.Name != "NotFoundError" || got.Error.Status != 404 || got.Error.Code != "model_not_found" || got.Error.Type != "invalid_request_error" {
		t.Fatalf("the SDK's error: %+v", got.Error)
	}
	if r := got.Retried; len(r) < 2 || r[0] != 429 || r[len(r)-1] != 200 {
		t.Fatalf("the SDK's attempts at a limited turn: %v, want a 429 retried into a 200", r)
	}
	if h := f.history(t, "api:default:c2c:node-retried"); len(h) != 2*got.Turns {
		t.Fatalf("memory holds %d entries after %d turns, want each turn once", len(h), got.Turns)
	}
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ ID, Name, Data string }

// readEvents sends what it reads of an SSE body to a channel, closed at
// its end.
func readEvents(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Data != "" || ev.Name != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	return ch
}

// openStream sends a streamed request and returns its events and a cancel.
func openStream(t *testing.T, method, url, body string, hdr ...string) (<-chan sseEvent, *http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		cancel()
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	t.Cleanup(cancel)
	return readEvents(resp.Body), resp, cancel
}

type doneEvent struct {
	Reply string `json:"reply"`
	Turn  int    `json:"turn"`
}

// collect reads deltas (their ids and text) until the done event, or
// until n deltas when n > 0.
func collect(t *testing.T, events <-chan sseEvent, n int) (ids []string, text string, done *doneEvent) {
	t.Helper()
	var b strings.Builder
	timeout := time.After(60 * time.Second) // guards a hang only
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return ids, b.String(), nil
			}
			switch ev.Name {
			case "delta":
				var d struct{ Delta string }
				_ = json.Unmarshal([]byte(ev.Data), &d)
				ids = append(ids, ev.ID)
				b.WriteString(d.Delta)
				if n > 0 && len(ids) == n {
					return ids, b.String(), nil
				}
			case "done":
				done = &doneEvent{}
				_ = json.Unmarshal([]byte(ev.Data), done)
				return ids, b.String(), done
			case "error":
				t.Fatalf("error event: %s", ev.Data)
			}
		case <-timeout:
			t.Fatal("no end of stream")
		}
	}
}

// A client that loses its stream after a few pieces reconnects to another
// instance with Last-Event-ID and gets exactly the pieces it missed, then
// the end; a second follower sees the same stream whole.
func TestStreamResumesOnAnotherInstance(t *testing.T) {
	_, url := startMock(t, mockllm.Faults{Chunks: 20, ChunkDelay: 50 * time.Millisecond}, 0)
	f := startFleet(t, []int{1, 1}, false, mockEnv(url)...)
	a, b := f.Members[0], f.Members[1]
	at := func(m member, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", m.Port, path) }
	body := fmt.Sprintf(`{"message":%q,"user_id":"resumer","stream":true}`, words(30))
	events, _, cancel := openStream(t, "POST", at(a, "/v1/chat"), body, "Idempotency-Key", "resume-1")
	firstIDs, firstText, _ := collect(t, events, 4)
	cancel() // the connection drops after four pieces

	events, _, _ = openStream(t, "GET", at(b, "/v1/chat/streams/resume-1"), "", "Last-Event-ID", firstIDs[len(firstIDs)-1])
	restIDs, restText, done := collect(t, events, 0)
	if done == nil {
		t.Fatal("the resumed stream did not end with done")
	}
	all := append(append([]string{}, firstIDs...), restIDs...)
	for i, id := range all {
		if id != fmt.Sprintf("1.%d", i+1) {
			t.Fatalf("piece %d has id %s: %v", i, id, all)
		}
	}
	h := f.history(t, "api:default:c2c:resumer")
	if len(all) != 20 || firstText+restText != done.Reply || len(h) != 2 || h[1].Content != done.Reply || done.Turn != 1 {
		t.Fatalf("%d pieces; reassembled %q, done %+v, memory %+v", len(all), firstText+restText, done, h)
	}

	events, _, _ = openStream(t, "GET", at(a, "/v1/chat/streams/resume-1"), "")
	ids, text, done2 := collect(t, events, 0)
	if len(ids) != 20 || text != done.Reply || done2 == nil {
		t.Fatalf("a second follower: %d pieces, %q", len(ids), text)
	}
	// The same request again with its key replays it, as a stream.
	events, _, _ = openStream(t, "POST", at(b, "/v1/chat"), body, "Idempotency-Key", "resume-1")
	_, text, done3 := collect(t, events, 0)
	if text != done.Reply || done3 == nil || done3.Turn != 1 || len(f.history(t, "api:default:c2c:resumer")) != 2 {
		t.Fatalf("the repeat: %q %+v", text, done3)
	}
}

// A client that goes away from /v1/chat/completions cancels the backend
// call (OpenAI's semantics, which a chat UI's stop button relies on):
// memory is unchanged and the conversation free for the next turn at once.
func TestCompletionsDisconnectCancelsTheBackend(t *testing.T) {
	mock, url := startMock(t, mockllm.Faults{Chunks: 10, ChunkDelay: 300 * time.Millisecond}, 0)
	f := startFleet(t, []int{1}, false, mockEnv(url)...)
	body := `{"model":"mock-1","user":"stopper","stream":true,"messages":[{"role":"user","content":"` + words(20) + `"}]}`
	events, _, cancel := openStream(t, "POST", f.Nginx.URL("/v1/chat/completions"), body)
	for pieces := 0; pieces < 2; {
		ev := <-events
		if strings.Contains(ev.Data, `"content":"w`) || strings.Contains(ev.Data, `"content":"mock`) {
			pieces++
		}
	}
	cancel() // the stop button
	if !testenv.Eventually(10*time.Second, func() bool { return mock.Stats().Cancelled >= 1 }) {
		t.Fatalf("the backend call was not cancelled: %+v", mock.Stats())
	}
	if h := f.history(t, "api:default:c2c:stopper"); len(h) != 0 {
		t.Fatalf("a cancelled turn was stored: %+v", h)
	}
	if err := mock.SetFaults(mockllm.Faults{}); err != nil {
		t.Fatal(err)
	}
	events, _, _ = openStream(t, "POST", f.Nginx.URL("/v1/chat"), `{"message":"next","user_id":"stopper","stream":true}`)
	if _, _, done := collect(t, events, 0); done == nil || done.Turn != 1 {
		t.Fatalf("the next turn: %+v, want turn 1", done)
	}
}

// kill -9 of the instance producing a stream: the client's retry with the
// same Idempotency-Key completes on another instance, and memory holds the
// turn exactly once.
func TestKillProducerMidStreamRetryCompletesOnce(t *testing.T) {
	_, url := startMock(t, mockllm.Faults{Chunks: 20, ChunkDelay: 100 * time.Millisecond}, 0)
	f := startFleet(t, []int{1, 1}, false, mockEnv(url, "BOT_MEMORY_LEASE=2s", "BOT_STREAM_STALL_AFTER=2s")...)
	body := `{"model":"mock-1","user":"victim","stream":true,"messages":[{"role":"user","content":"` + words(30) + `"}]}`
	events, resp, cancel := openStream(t, "POST", f.Nginx.URL("/v1/chat/completions"), body, "Idempotency-Key", "kill-1")
	producer := resp.Header.Get("X-Bot-Instance")
	for pieces := 0; pieces < 3; {
		if ev := <-events; strings.Contains(ev.Data, `"content":"`) && !strings.Contains(ev.Data, `"role"`) {
			pieces++
		}
	}
	var pid int
	for _, m := range f.Members {
		if m.Name() == producer {
			pid = f.Pid(m.Port)
		}
	}
	if pid == 0 {
		t.Fatalf("no pid for the producer %q", producer)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cancel()
	killed := time.Now()

	events, resp, _ = openStream(t, "POST", f.Nginx.URL("/v1/chat/completions"), body, "Idempotency-Key", "kill-1")
	if resp.Header.Get("X-Bot-Instance") == producer {
		t.Fatalf("the retry was answered by the dead instance %s", producer)
	}
	var text strings.Builder
	sawDone := false
	for ev := range events {
		if ev.Data == "[DONE]" {
			sawDone = true
			break
		}
		var ch struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Error *struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal([]byte(ev.Data), &ch)
		if ch.Error != nil {
			t.Fatalf("the retry failed: %s", ev.Data)
		}
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	t.Logf("the retry completed on %s %v after the kill", resp.Header.Get("X-Bot-Instance"), time.Since(killed).Round(time.Millisecond))
	h := f.history(t, "api:default:c2c:victim")
	if !sawDone || len(h) != 2 || h[1].Content != text.String() {
		t.Fatalf("done %v; streamed %q; memory %+v", sawDone, text.String(), h)
	}
}
