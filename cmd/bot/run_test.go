package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/httpapi"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

const (
	apiKey = "test-key"
)

// instance is a bot started through run, as main would.
type instance struct {
	url  string
	stop func() error
	logs *testenv.Buffer
}

// port is the instance's TCP port.
func (i *instance) port() int {
	p, _ := strconv.Atoi(i.url[strings.LastIndexByte(i.url, ':')+1:])
	return p
}

// startBot runs an instance with env on a port of its own choosing (port 0,
// the address read back from server.addr_file), waits for /health and
// stops it when the test ends.
func startBot(t testing.TB, env map[string]string) *instance {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	full := map[string]string{"WEB_PORT": "0", "BOT_SERVER_ADDR_FILE": addrFile, "API_KEY": apiKey, "BOT_LOG_LEVEL": "warn"}
	for k, v := range env {
		full[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.Buffer{}
	args := []string{"bot"}
	if f := full["test.config"]; f != "" {
		args = append(args, "--config", f)
	}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, func(k string) string { return full[k] }, io.Discard, io.MultiWriter(logs, testenv.RunLog()))
	}()
	inst := &instance{logs: logs}
	var once sync.Once
	var stopErr error
	inst.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() {
		_ = inst.stop()
		if t.Failed() {
			t.Logf("logs of the instance on %s:\n%s", inst.url, logs.String())
		}
	})
	testenv.WaitFor(t, 10*time.Second, "the bot to serve /health", func() bool {
		select {
		case err := <-done:
			t.Fatalf("bot exited before serving: %v", err)
		default:
		}
		if inst.url == "" {
			b, err := os.ReadFile(addrFile)
			if err != nil {
				return false
			}
			inst.url = "http://" + strings.TrimSpace(string(b))
		}
		resp, err := http.Get(inst.url + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return inst
}

// chatReply is POST /v1/chat's answer, or its error.
type chatReply struct {
	httpapi.ChatResponse
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	status int
	header http.Header
}

// send sends body to url with the API key and the given extra header
// name, value pairs (an empty value removes the header), and returns the
// answer's status, headers and body.
func send(t *testing.T, url, body string, headers ...string) (int, http.Header, []byte) {
	t.Helper()
	req := testenv.JSONRequest(t, "POST", url, apiKey, body, headers...)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST %s: %v", url, err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// post sends body to url with the API key and the given extra headers.
func post(t *testing.T, url, body string, headers ...string) chatReply {
	t.Helper()
	status, header, raw := send(t, url, body, headers...)
	var r chatReply
	if status != 0 {
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Errorf("POST %s: status %d, body %q is not JSON", url, status, raw)
		}
	}
	r.status, r.header = status, header
	return r
}

func chatBody(session, msg string) string {
	b, _ := json.Marshal(map[string]string{"session_id": session, "message": msg})
	return string(b)
}

// mockBackend serves mockllm and returns the env that points a bot at it.
func mockBackend(t *testing.T, opts mockllm.Options) (*mockllm.Server, map[string]string) {
	srv := mockllm.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, map[string]string{
		"BOT_LLM_PROVIDER": "openai", "MODEL_ENDPOINT": hs.URL + "/v1", "BOT_LLM_MODEL": "mock-1",
		"BOT_LLM_RETRIES": "0", "BOT_CACHE_ENABLED": "false",
	}
}

// with returns env with the key, value pairs kv added.
// llmBot starts a bot on a Redis of its own, the answer cache off, whose
// config file's llm section is llm — each %[1]s in it the endpoint of a
// mock backend run with opts.
func llmBot(t *testing.T, opts mockllm.Options, llm string) (*instance, *mockllm.Server, *testenv.Redis) {
	t.Helper()
	r := testenv.StartRedis(t)
	mock, env := mockBackend(t, opts)
	conf := testenv.WriteFile(t, "config.yaml", "llm:"+fmt.Sprintf(llm, env["MODEL_ENDPOINT"]))
	return startBot(t, merge(redisEnv(r), map[string]string{"BOT_CONFIG": conf, "BOT_CACHE_ENABLED": "false"})), mock, r
}

func with(env map[string]string, kv ...string) map[string]string {
	add := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		add[kv[i]] = kv[i+1]
	}
	return merge(env, add)
}

// redisEnv is a bot's configuration for the Redis of r: the seed names for
// a standalone server, redis.addrs or redis.master_name + sentinels.
func redisEnv(r testenv.Topology) map[string]string { return r.Env() }

func history(t *testing.T, r testenv.Topology, conv string) []memory.Entry {
	t.Helper()
	store := memory.New(context.Background(), r.UniversalClient(), memory.Options{})
	defer store.Close()
	h, err := store.History(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestConversationContinuesAcrossInstances(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, r testenv.Topology) {
		a := startBot(t, with(redisEnv(r), "INSTANCE_NAME", "a"))
		b := startBot(t, with(redisEnv(r), "INSTANCE_NAME", "b"))
		for i := 1; i <= 6; i++ {
			inst := []*instance{a, b}[i%2]
			res := post(t, inst.url+"/v1/chat", chatBody("alt", fmt.Sprint("message ", i)))
			if res.status != 200 || res.Turn != i || res.SessionID != "alt" || res.Instance != []string{"a", "b"}[i%2] {
				t.Fatalf("turn %d: %+v", i, res)
			}
			if i > 1 && !strings.Contains(res.Reply, fmt.Sprint("message ", i-1)) {
				t.Fatalf("turn %d reply %q does not recall the previous message", i, res.Reply)
			}
		}
		h := history(t, r, "api:default:session:alt")
		if len(h) != 12 {
			t.Fatalf("history holds %d entries, want 12", len(h))
		}
		for i, e := range h {
			if e.Turn != i/2+1 || e.Role != []string{"user", "assistant"}[i%2] {
				t.Fatalf("entry %d: %+v", i, e)
			}
		}
		first := post(t, a.url+"/v1/chat", `{"message":"你好"}`)
		if first.status != 200 || first.Reply != "您好，请问有什么可以帮您？" || first.Confidence != 0.98 || first.Turn != 1 || first.SessionID == "" {
			t.Fatalf("seed example: %+v", first)
		}
	})
}

func TestConcurrentTurnsOfOneConversation(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, r testenv.Topology) {
		mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Jitter: 5 * time.Millisecond}})
		env = merge(with(env, "BOT_LLM_SYSTEM_PROMPT", "be brief"), redisEnv(r))
		bots := []*instance{startBot(t, env), startBot(t, env)}
		const n = 50
		turns := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				res := post(t, bots[i%2].url+"/v1/chat", chatBody("busy", fmt.Sprint("question ", i)))
				if res.status != 200 {
					t.Errorf("request %d: %d %+v", i, res.status, res.Error)
				}
				turns[i] = res.Turn
			})
		}
		wg.Wait()
		seen := map[int]bool{}
		for _, turn := range turns {
			seen[turn] = true
		}
		for i := 1; i <= n; i++ {
			if !seen[i] {
				t.Fatalf("turn %d missing from the replies: %v", i, turns)
			}
		}
		h := history(t, r, "api:default:session:busy")
		if len(h) != 2*n {
			t.Fatalf("history holds %d entries, want %d", len(h), 2*n)
		}
		prompt := []mockllm.Message{{Role: "system", Content: "be brief"}}
		for i := 0; i < len(h); i += 2 {
			q, a := h[i], h[i+1]
			if q.Role != "user" || a.Role != "assistant" || q.Turn != i/2+1 || a.Turn != q.Turn {
				t.Fatalf("entries %d,%d: %+v %+v", i, i+1, q, a)
			}
			prompt = append(prompt, mockllm.Message{Role: "user", Content: q.Content})
			if want := mockllm.Reply(prompt); a.Content != want {
				t.Fatalf("turn %d: backend answered %q, but with the whole history it answers %q", q.Turn, a.Content, want)
			}
			prompt = append(prompt, mockllm.Message{Role: "assistant", Content: a.Content})
		}
		if calls := mock.Stats().Calls; calls != n {
			t.Fatalf("backend saw %d calls, want %d", calls, n)
		}
	})
}

func TestRepeatedRequestIDRunsOnce(t *testing.T) {
	testenv.EachTopology(t, func(t *testing.T, r testenv.Topology) {
		mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Latency: 100 * time.Millisecond}})
		env = merge(env, redisEnv(r))
		bots := []*instance{startBot(t, env), startBot(t, env)}

		first := post(t, bots[0].url+"/v1/chat", chatBody("idem", "hello"), "Idempotency-Key", "k1")
		again := post(t, bots[1].url+"/v1/chat", chatBody("idem", "hello"), "Idempotency-Key", "k1")
		if first.status != 200 || again.status != 200 || again.Reply != first.Reply || again.Turn != 1 || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("sequential repeat: %+v then %+v", first, again)
		}
		replies := make([]chatReply, 6)
		var wg sync.WaitGroup
		for i := range replies {
			wg.Go(func() {
				// nginx's X-Request-Id is the id when there is no Idempotency-Key.
				replies[i] = post(t, bots[i%2].url+"/v1/chat", chatBody("idem", "again"), "X-Request-Id", "nginx-req-7")
			})
		}
		wg.Wait()
		for i, res := range replies {
			if res.status != 200 || res.Reply != replies[0].Reply || res.Turn != 2 {
				t.Fatalf("concurrent repeat %d: %+v, first %+v", i, res, replies[0])
			}
		}
		if calls := mock.Stats().Calls; calls != 2 {
			t.Fatalf("backend called %d times for 2 distinct requests", calls)
		}
		if h := history(t, r, "api:default:session:idem"); len(h) != 4 {
			t.Fatalf("history holds %d entries, want 4", len(h))
		}
		if res := post(t, bots[0].url+"/v1/chat", chatBody("idem", "changed"), "Idempotency-Key", "k1"); res.status != 409 {
			t.Fatalf("key reused with another message: %d, want 409", res.status)
		}
	})
}

func TestBreakerOpensFailsFastAndCloses(t *testing.T) {
	r := testenv.StartRedis(t)
	mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 500}})
	bot := startBot(t, with(merge(env, redisEnv(r)),
		"BOT_LLM_BREAKER_FAILURES", "3", "BOT_LLM_BREAKER_OPEN_TIMEOUT", "1s"))
	for i := range 3 {
		if res := post(t, bot.url+"/v1/chat", chatBody("br", fmt.Sprint("m", i))); res.status != 503 || res.header.Get("Retry-After") == "" {
			t.Fatalf("failing backend, call %d: %d %v", i, res.status, res.header)
		}
	}
	before := mock.Stats().Calls
	res := post(t, bot.url+"/v1/chat", chatBody("br", "fast"))
	if res.status != 503 || res.Error == nil || res.Error.Code != "backend_unavailable" || res.header.Get("Retry-After") == "" {
		t.Fatalf("open breaker: %d %+v", res.status, res.Error)
	}
	if after := mock.Stats().Calls; after != before {
		t.Fatalf("open breaker let %d calls through", after-before)
	}
	health := getJSON(t, bot.url+"/health")
	if !strings.Contains(health, `"mock-1":"open"`) {
		t.Fatalf("/health does not show the open breaker: %s", health)
	}
	if err := mock.SetFaults(mockllm.Faults{}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the breaker's open timeout to pass (half-open in /health)", func() bool {
		return strings.Contains(getJSON(t, bot.url+"/health"), `"mock-1":"half-open"`)
	})
	if res := post(t, bot.url+"/v1/chat", chatBody("br", "healed")); res.status != 200 {
		t.Fatalf("the half-open breaker's probe after the backend healed: %d %+v", res.status, res.Error)
	}
	if health := getJSON(t, bot.url+"/health"); !strings.Contains(health, `"mock-1":"closed"`) {
		t.Fatalf("breaker not closed: %s", health)
	}
}

func TestFallbackAnswersWhenBackendFails(t *testing.T) {
	r := testenv.StartRedis(t)
	_, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{ErrorRate: 1, ErrorStatus: 503}})
	bot := startBot(t, with(merge(env, redisEnv(r)), "BOT_LLM_FALLBACK", "builtin"))
	res := post(t, bot.url+"/v1/chat", chatBody("fb", "你好"))
	if res.status != 200 || res.Reply != "您好，请问有什么可以帮您？" || res.header.Get("X-Bot-Backend") != "builtin" {
		t.Fatalf("fallback: %d %+v %v", res.status, res, res.header)
	}
}

func getJSON(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestBadInputGetsAClearJSONError(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_CHAT_MAX_MESSAGE_CHARS", "10", "BOT_SERVER_MAX_BODY_BYTES", "2048"))
	url := bot.url + "/v1/chat"
	cases := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"no token", chatBody("s", "hi"), []string{"Authorization", ""}, 401, "missing_token"},
		{"wrong token", chatBody("s", "hi"), []string{"Authorization", "Bearer nope"}, 401, "invalid_token"},
		{"malformed JSON", `{"message": "hi"`, nil, 400, "invalid_json"},
		{"unknown field", `{"mesage": "hi"}`, nil, 400, "invalid_json"},
		{"wrong content type", chatBody("s", "hi"), []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"empty message", chatBody("s", "  "), nil, 400, "invalid_request"},
		{"over-long message", chatBody("s", strings.Repeat("长", 11)), nil, 413, "message_too_long"},
		{"body over the limit", chatBody("s", strings.Repeat("x", 4096)), nil, 413, "too_large"},
		{"bad session id", chatBody("a{b}", "hi"), nil, 400, "invalid_request"},
		{"bad scope", `{"message":"hi","scope":"room","user_id":"u"}`, nil, 400, "invalid_request"},
		{"group scope without group", `{"message":"hi","scope":"group"}`, nil, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := post(t, url, tc.body, tc.headers...)
			if res.status != tc.status || res.Error == nil || res.Error.Code != tc.code || res.Error.Message == "" {
				t.Fatalf("got %d %+v, want %d %s", res.status, res.Error, tc.status, tc.code)
			}
		})
	}
	if res := post(t, bot.url+"/v1/nope", "{}"); res.status != 404 || res.Error == nil {
		t.Fatalf("unknown route: %d %+v", res.status, res.Error)
	}
	if res := post(t, url, chatBody("s", "still fine")); res.status != 200 {
		t.Fatalf("instance broken after bad input: %d %+v", res.status, res.Error)
	}
}

func TestScopesMapToConversations(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	url := bot.url + "/v1/chat"
	for _, tc := range []struct{ body, conv string }{
		{`{"message":"a","user_id":"42"}`, "c2c:42"},
		{`{"message":"a","user_id":"42","group_id":"g1"}`, "member:g1:42"},
		{`{"message":"a","user_id":"42","group_id":"g1","scope":"group"}`, "group:g1"},
		{`{"message":"a","scope":"global"}`, "global"},
	} {
		if res := post(t, url, tc.body); res.status != 200 || res.SessionID != tc.conv {
			t.Fatalf("%s: %d %+v, want conversation %s", tc.body, res.status, res, tc.conv)
		}
		if h := history(t, r, "api:default:"+tc.conv); len(h) != 2 {
			t.Fatalf("%s: %d entries under %s", tc.body, len(h), tc.conv)
		}
	}
}

func TestRedisOutageIsA503AndHeals(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	if res := post(t, bot.url+"/v1/chat", chatBody("out", "before")); res.status != 200 {
		t.Fatalf("before the outage: %d", res.status)
	}
	r.Stop()
	if s := status(t, bot.url+"/health"); s != 200 {
		t.Fatalf("/health during the outage: %d, want 200", s)
	}
	if s := status(t, bot.url+"/ready"); s != 503 {
		t.Fatalf("/ready during the outage: %d, want 503", s)
	}
	res := post(t, bot.url+"/v1/chat", chatBody("out", "during"))
	if res.status != 503 || res.header.Get("Retry-After") == "" || res.Error == nil || res.Error.Code != "store_unavailable" {
		t.Fatalf("chat during the outage: %d %+v %v", res.status, res.Error, res.header)
	}
	r.Start()
	testenv.WaitFor(t, 10*time.Second, "/ready to recover", func() bool { return status(t, bot.url+"/ready") == 200 })
	if res := post(t, bot.url+"/v1/chat", chatBody("out2", "after")); res.status != 200 {
		t.Fatalf("after the outage: %d %+v", res.status, res.Error)
	}
}

func TestDrainFinishesInFlightTurns(t *testing.T) {
	r := testenv.StartRedis(t)
	mock, env := mockBackend(t, mockllm.Options{Faults: mockllm.Faults{Latency: 500 * time.Millisecond}})
	bot := startBot(t, merge(env, redisEnv(r)))
	got := make(chan chatReply)
	go func() { got <- post(t, bot.url+"/v1/chat", chatBody("drain", "slow one")) }()
	testenv.WaitFor(t, 10*time.Second, "the turn to reach the backend", func() bool { return mock.Stats().Calls > 0 })
	stopped := make(chan error)
	go func() { stopped <- bot.stop() }()
	if res := <-got; res.status != 200 || res.Turn != 1 {
		t.Fatalf("in-flight turn during drain: %d %+v", res.status, res.Error)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("run after drain: %v, want nil", err)
	}
	if _, err := http.Get(bot.url + "/health"); err == nil {
		t.Fatal("still listening after drain")
	}
}

func TestBadConfigFailsAtStart(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"bot"}, func(k string) string {
		return map[string]string{"API_KEY": "k", "BOT_LLM_PROVIDER": "gpt5"}[k]
	}, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "llm.provider") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming llm.provider", err)
	}
	if err := run(context.Background(), []string{"bot", "--help"}, func(string) string { return "" }, io.Discard, &stderr); err != nil {
		t.Fatalf("--help: %v", err)
	}
	if !strings.Contains(stderr.String(), "--config") && !strings.Contains(stderr.String(), "-config") {
		t.Fatalf("--help printed %q", stderr.String())
	}
}

// A Redis at maxmemory (noeviction) is not a dead one: turns fail with
// their own code, readiness and the metrics say "full", and all heals when
// memory is freed.
func TestRedisAtMaxmemoryIsStoreFull(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	if res := post(t, bot.url+"/v1/chat", chatBody("full", "before")); res.status != 200 {
		t.Fatalf("before: %d %+v", res.status, res.Error)
	}
	ctx := context.Background()
	rdb := r.Client()
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	res := post(t, bot.url+"/v1/chat", chatBody("full", "during"))
	if res.status != 503 || res.Error == nil || res.Error.Code != "store_full" || res.header.Get("Retry-After") == "" {
		t.Fatalf("chat at maxmemory: %d %+v", res.status, res.Error)
	}
	if body := getJSON(t, bot.url+"/ready"); !strings.Contains(body, `"store_full"`) {
		t.Fatalf("/ready at maxmemory: %s", body)
	}
	if m := getJSON(t, bot.url+"/metrics"); !strings.Contains(m, `botfleet_memory_store_state{instance="bot-instance-`) || !regexpFull.MatchString(m) {
		t.Fatalf("/metrics does not show the full store:\n%s", grepLines(m, "store_state"))
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if s := status(t, bot.url+"/ready"); s != 200 {
		t.Fatalf("/ready after memory was freed: %d", s)
	}
	if res := post(t, bot.url+"/v1/chat", chatBody("full", "after")); res.status != 200 || res.Turn != 2 {
		t.Fatalf("after: %d %+v", res.status, res.Error)
	}
}

var regexpFull = regexp.MustCompile(`botfleet_memory_store_state\{instance="[^"]+",state="full"\} 1`)

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
