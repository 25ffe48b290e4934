package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/testenv"
)

// rawExchange writes req on a fresh connection (while already reading, so
// that an early answer is not lost) and returns the response.
func rawExchange(t *testing.T, addr string, req ...[]byte) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type answer struct {
		resp *http.Response
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			got <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		got <- answer{resp: resp, body: string(b)}
	}()
	for _, part := range req {
		if _, err := conn.Write(part); err != nil {
			break // the server may answer and stop reading first
		}
	}
	select {
	case a := <-got:
		if a.err != nil {
			t.Fatalf("no answer: %v", a.err)
		}
		return a.resp, a.body
	case <-time.After(20 * time.Second):
		t.Fatal("no answer within 20s")
	}
	return nil, ""
}

func hostOf(url string) string { return strings.TrimPrefix(url, "http://") }

func TestHeaderLimits(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	addr := hostOf(bot.url)
	big := "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"
	if resp, _ := rawExchange(t, addr, []byte(big)); resp.StatusCode != 431 {
		t.Fatalf("1 MB header: %d, want 431", resp.StatusCode)
	}
	// withHeaders is a GET /health with n header fields named by format.
	withHeaders := func(n int, format string) []byte {
		var b strings.Builder
		b.WriteString("GET /health HTTP/1.1\r\nHost: x\r\n")
		for i := range n {
			fmt.Fprintf(&b, format+": v\r\n", i)
		}
		b.WriteString("\r\n")
		return []byte(b.String())
	}
	if resp, _ := rawExchange(t, addr, withHeaders(10000, "X-H%d")); resp.StatusCode != 431 {
		t.Fatalf("10,000 headers: %d, want 431", resp.StatusCode)
	}
	// Few bytes but more fields than server.max_header_count: our own 431.
	resp, body := rawExchange(t, addr, withHeaders(150, "X-%d"))
	if resp.StatusCode != 431 || !strings.Contains(body, `"too_many_headers"`) {
		t.Fatalf("150 header fields: %d %s", resp.StatusCode, body)
	}
	if s := status(t, bot.url+"/health"); s != 200 {
		t.Fatalf("after the header floods: %d", s)
	}
}

// A body over the limit gets its 413 JSON even from a client that writes
// the whole body before it reads the answer (no connection reset).
func TestOversizedBodyIsAnsweredNotReset(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, redisEnv(r))
	addr := hostOf(bot.url)
	body := []byte(`{"message":"` + strings.Repeat("x", 3<<20) + `"}`)
	head := "POST /v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + apiKey + "\r\nContent-Type: application/json\r\n"
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Write everything first, as the clients that got resets did.
	if _, err := conn.Write([]byte(head + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatalf("writing the 3 MB body: %v (the instance stopped reading)", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 413 || !strings.Contains(string(raw), `"too_large"`) {
		t.Fatalf("3 MB body: %d %s", resp.StatusCode, raw)
	}
	// Chunked: no Content-Length, the limit is hit while decoding.
	chunked := []byte(head + "Transfer-Encoding: chunked\r\n\r\n")
	chunks := [][]byte{chunked}
	for i := 0; i < len(body); i += 64 << 10 {
		part := body[i:min(i+64<<10, len(body))]
		chunks = append(chunks, fmt.Appendf(nil, "%x\r\n%s\r\n", len(part), part))
	}
	chunks = append(chunks, []byte("0\r\n\r\n"))
	if resp, b := rawExchange(t, addr, chunks...); resp.StatusCode != 413 || !strings.Contains(b, `"too_large"`) {
		t.Fatalf("3 MB chunked body: %d %s", resp.StatusCode, b)
	}
}

func TestSlowlorisDoesNotStarveChat(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_SERVER_READ_HEADER_TIMEOUT", "2s"))
	addr := hostOf(bot.url)
	const slow = 200
	var wg sync.WaitGroup
	var cut atomic.Int64
	stop := make(chan struct{})
	for range slow {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer conn.Close()
			// The thing under test: a client trickling its headers.
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			_, _ = conn.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n"))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := fmt.Fprintf(conn, "X-Slow-%d: a\r\n", i); err != nil {
					cut.Add(1) // the instance hung up on it
					return
				}
			}
		})
	}
	for i := range 30 {
		if res := post(t, bot.url+"/v1/chat", chatBody("slowloris", fmt.Sprint("turn ", i)), "Idempotency-Key", fmt.Sprint("sl", i)); res.status != 200 {
			t.Fatalf("chat during the slowloris: %d %+v", res.status, res.Error)
		}
	}
	testenv.Eventually(20*time.Second, func() bool { return cut.Load() >= slow })
	close(stop)
	wg.Wait()
	t.Logf("30 chat turns served while %d slow connections trickled headers; %d were cut by read_header_timeout", slow, cut.Load())
	if cut.Load() < slow {
		t.Fatalf("only %d of %d slow connections were cut", cut.Load(), slow)
	}
}

func TestCORSPreflightAndExposedHeaders(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_SERVER_CORS_ALLOW_ORIGINS", "https://app.example"))
	pre, _ := http.NewRequest("OPTIONS", bot.url+"/v1/chat", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,content-type,idempotency-key")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || h.Get("Access-Control-Max-Age") != "600" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	res := post(t, bot.url+"/v1/chat", chatBody("cors", "hi"), "Origin", "https://app.example")
	if res.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(res.header.Get("Access-Control-Expose-Headers"), "RateLimit-Remaining") {
		t.Fatalf("CORS answer headers: %v", res.header)
	}
	if res := post(t, bot.url+"/v1/chat", chatBody("cors", "hi"), "Origin", "https://evil.example"); res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("another origin allowed: %v", res.header)
	}
}

func TestContentFilterBlocksAndCounts(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_FILTER_WORDS", "forbidden,敏感词"))
	for msg, want := range map[string]int{"this is FORBIDDEN": 400, "含有敏感词": 400, "all fine": 200} {
		res := post(t, bot.url+"/v1/chat", chatBody("filter", msg))
		if res.status != want || want == 400 && res.Error.Code != "content_blocked" {
			t.Fatalf("%q: %d %+v", msg, res.status, res.Error)
		}
	}
	if m := getJSON(t, bot.url+"/metrics"); !hasMetric(m, "botfleet_content_filter_total", "2", `action="block"`, `source="http"`) {
		t.Fatalf("metrics lack the two blocks")
	}
}

func TestLogsEscapeControlCharacters(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_LOG_LEVEL", "info"))
	req, _ := http.NewRequest("GET", bot.url+"/v1/%0Afake%20line%1B%5B31m", nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	logs := bot.logs.String()
	if strings.Contains(logs, "\x1b") {
		t.Fatal("a raw escape character reached the logs")
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("log line is not one JSON object: %q", line)
		}
		if p, _ := v["path"].(string); p == "/v1/\nfake line\x1b[31m" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no escaped log line of the request:\n%s", logs)
	}
}

func TestWorldReadableConfigWithSecretsWarns(t *testing.T) {
	r := testenv.StartRedis(t)
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte("auth:\n  admin_key: "+adminKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	open := startBot(t, with(redisEnv(r), "test.config", file))
	if logs := open.logs.String(); !strings.Contains(logs, "world-readable") || !strings.Contains(logs, "auth.admin_key") {
		t.Fatalf("no warning for a world-readable file with a secret:\n%s", logs)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	closed := startBot(t, with(redisEnv(r), "test.config", file))
	if strings.Contains(closed.logs.String(), "world-readable") {
		t.Fatal("a warning for a file only its owner reads")
	}
}

// TestSecretsStayOutOfDebugLogs runs an instance at debug level with every
// secret configured through the paths that log most; TestMain checks the
// whole run the same way.
func TestSecretsStayOutOfDebugLogs(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	_, env := mockBackend(t, mockllm.Options{})
	bot := startBot(t, merge(env, guardEnv(r), imEnv(f), map[string]string{"BOT_LOG_LEVEL": "debug", "MODEL_SERVICE_KEY": "model-service-key-secret"}))
	testenv.NoteSecret("model-service-key-secret")
	secret, k := createKey(t, r, auth.Spec{AllowIPs: []string{"10.0.0.1"}})
	for _, cred := range []string{secret, secret + "x", apiKey + "x", "bf_" + strings.Repeat("f", 64), adminKey} {
		post(t, bot.url+"/v1/chat", chatBody("sec", "hi"), bearerOf(cred)...)
	}
	_, token, _ := tokenFor(t, bot.url, apiKey)
	post(t, bot.url+"/v1/chat", chatBody("sec", "hi"), bearerOf(token)...)
	post(t, bot.url+"/v1/chat", chatBody("sec", "hi"), bearerOf(token+"x")...)
	adminDo(t, "DELETE", bot.url+"/admin/api/keys/"+k.ID, "", 200, nil)
	e := ev{n: nextN(), user: "77", text: "hi"}
	h, body := telegramEvent(f, e)
	deliver(t, bot.url, "telegram", h, body)
	h.Set("X-Telegram-Bot-Api-Secret-Token", tgSecret+"x")
	deliver(t, bot.url, "telegram", h, body)
	f.waitReply(t, "telegram", strconv.Itoa(e.n))
	if l := testenv.Leaked(bot.logs.String()); len(l) > 0 {
		t.Fatalf("secrets in the debug logs: %v", l)
	}
	if !strings.Contains(bot.logs.String(), `"level":"DEBUG"`) && !strings.Contains(bot.logs.String(), `"level":"INFO"`) {
		t.Fatal("the instance logged nothing: the grep proves nothing")
	}
}

func TestRedisStoppedFallsBackAsConfigured(t *testing.T) {
	r := testenv.StartRedis(t)
	closed := startBot(t, guardEnv(r))
	local := startBot(t, with(guardEnv(r), "BOT_RATELIMIT_ON_REDIS_ERROR", "local", "BOT_RATELIMIT_INSTANCES", "2", "BOT_RATELIMIT_PER_IP", "10"))
	r.Stop()
	// Fail closed: 503 with Retry-After, never a 500.
	if status, code, _ := tokenFor(t, closed.url, apiKey); status != 503 || code != "store_unavailable" {
		t.Fatalf("fail closed: %d %s", status, code)
	}
	// Local: this instance's share of the per-IP limit, 10 ÷ 2 a second,
	// plus what refills while the failing Redis calls are retried.
	got := map[int]int{}
	start := time.Now()
	for range 20 {
		status, _, _ := tokenFor(t, local.url, apiKey)
		got[status]++
	}
	refill := int(5*time.Since(start).Seconds()) + 1
	t.Logf("local fallback: %v in %v", got, time.Since(start))
	if got[200] < 5 || got[200] > 5+refill || got[429]+got[200] != 20 {
		t.Fatalf("local fallback: %v, want 5 (+%d refilled) admitted and the rest 429", got, refill)
	}
	res := post(t, closed.url+"/v1/chat", chatBody("down", "hi"))
	if res.status != 503 || res.header.Get("Retry-After") == "" {
		t.Fatalf("chat while Redis is down: %d %v", res.status, res.header)
	}
	for _, b := range []*instance{closed, local} {
		if s := status(t, b.url+"/health"); s != 200 {
			t.Fatalf("instance unhealthy after the outage: %d", s)
		}
	}
}

// postFrom is post from the loopback address src (127.0.0.2, …) rather
// than 127.0.0.1; it swaps http.DefaultClient, so nothing else may send
// meanwhile.
func postFrom(t *testing.T, src, url, body string, headers ...string) chatReply {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	old := http.DefaultClient
	http.DefaultClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	defer func() { http.DefaultClient = old }()
	return post(t, url, body, headers...)
}

// TestIPAllowListThroughNginx: a key allowed only from 127.0.0.2 works
// through nginx (which the instance trusts for X-Forwarded-For) from there
// and from nowhere else; a client that is not nginx cannot claim the
// address with a spoofed header.
func TestIPAllowListThroughNginx(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_SERVER_TRUSTED_PROXIES", "127.0.0.1/32", "BOT_LOG_LEVEL", "info", "BOT_LOG_ACCESS_SAMPLE", "1"))
	n := testenv.StartNginx(t, renderNginx(t, bot.port()))
	secret, _ := createKey(t, r, auth.Spec{AllowIPs: []string{"127.0.0.2"}})
	from := func(src, url string, hdr ...string) chatReply {
		t.Helper()
		return postFrom(t, src, url, chatBody("allow", "hi "+src), append(bearerOf(secret), hdr...)...)
	}
	if res := from("127.0.0.2", n.URL("/v1/chat")); res.status != 200 {
		t.Fatalf("through nginx from the allowed address: %d %+v", res.status, res.Error)
	}
	if res := from("127.0.0.3", n.URL("/v1/chat")); res.status != 403 || res.Error.Code != "ip_not_allowed" {
		t.Fatalf("through nginx from another address: %d %+v", res.status, res.Error)
	}
	for _, h := range [][]string{{"X-Forwarded-For", "127.0.0.2"}, {"X-Real-IP", "127.0.0.2"}} {
		if res := from("127.0.0.3", bot.url+"/v1/chat", h...); res.status != 403 {
			t.Fatalf("straight to the instance with a spoofed %s: %d, want 403", h[0], res.status)
		}
	}
	// A client's own X-Forwarded-For through nginx is only a prefix: nginx appends the real peer.
	if res := from("127.0.0.3", n.URL("/v1/chat"), "X-Forwarded-For", "127.0.0.2"); res.status != 403 {
		t.Fatalf("through nginx with a spoofed X-Forwarded-For: %d, want 403", res.status)
	}
	if logs := bot.logs.String(); !strings.Contains(logs, `"remote":"127.0.0.2"`) || !strings.Contains(logs, `"remote":"127.0.0.3"`) {
		t.Fatalf("the logs do not name the clients' addresses:\n%s", logs)
	}
}

// IM messages are limited per conversation and screened like chat ones.
func TestIMConversationLimitAndFilter(t *testing.T) {
	r := testenv.StartRedis(t)
	f := newFakePlatforms(t)
	_, env := mockBackend(t, mockllm.Options{})
	bot := startBot(t, merge(env, redisEnv(r), imEnv(f), map[string]string{"BOT_RATELIMIT_PER_CONVERSATION": "2", "BOT_FILTER_WORDS": "forbidden"}))
	var sent []ev
	for i, text := range []string{"one", "two", "three", "something forbidden"} {
		e := ev{n: nextN(), user: "9001", text: text}
		if i == 3 {
			e.user = "9002" // another conversation, under its limit
		}
		h, body := telegramEvent(f, e)
		if status, _, resp := deliver(t, bot.url, "telegram", h, body); status != 200 {
			t.Fatalf("%s: %d %s", text, status, resp)
		}
		sent = append(sent, e)
	}
	for _, e := range sent[:2] {
		f.waitReply(t, "telegram", strconv.Itoa(e.n))
	}
	m := getJSON(t, bot.url+"/metrics")
	for _, want := range [][]string{
		{"botfleet_im_webhooks_total", `outcome="limited"`, `platform="telegram"`},
		{"botfleet_im_webhooks_total", `outcome="blocked"`, `platform="telegram"`},
		{"botfleet_content_filter_total", `action="block"`, `source="telegram"`},
	} {
		if !hasMetric(m, want[0], "1", want[1:]...) {
			t.Errorf("metrics lack %v = 1", want)
		}
	}
	for _, e := range sent[2:] {
		if rs := f.repliesTo("telegram", strconv.Itoa(e.n)); len(rs) != 0 {
			t.Fatalf("a dropped message was answered: %+v", rs)
		}
	}
}

// hasMetric reports whether the exposition m has a sample of name with
// all the labels and the value.
func hasMetric(m, name, value string, labels ...string) bool {
	for _, line := range strings.Split(m, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok || !strings.HasSuffix(rest, "} "+value) {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(rest, l)
		}
		if all {
			return true
		}
	}
	return false
}
