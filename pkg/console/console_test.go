package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/console"
	"github.com/botfleet/botfleet/pkg/httpapi"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/queue"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/redis/go-redis/v9"
)

const (
	apiKey   = "an-ordinary-api-key"
	adminKey = "the-admin-key-0123456789"
)

// fixture is the console mounted in an instance's HTTP API, as cmd/bot
// mounts it, over a real Redis.
type fixture struct {
	srv   *httptest.Server
	rdb   *redis.Client
	chat  *chat.Service
	queue *queue.Queue
	reg   *registry.Registry
	auth  *auth.Authenticator
	logs  *testenv.Buffer
	now   time.Time
	// fleetPolls counts the GETs of /admin/api/fleet the server received.
	fleetPolls atomic.Int64
}

func newFixture(t *testing.T, admin bool) *fixture {
	t.Helper()
	r := testenv.StartRedis(t)
	rdb := r.Client()
	router := testenv.BuiltinRouter(t)
	store := memory.New(context.Background(), rdb, memory.Options{})
	t.Cleanup(func() { store.Close() })
	f := &fixture{rdb: rdb, chat: chat.New(store, router, chat.Options{Model: "builtin"}), queue: queue.New(rdb, "bf", 0),
		reg: registry.New(rdb, registry.Options{}), logs: &testenv.Buffer{}, now: time.Now()}
	logger := slog.New(slog.NewJSONHandler(f.logs, nil))
	authn := auth.New(rdb, auth.Options{Bootstrap: []string{apiKey}})
	t.Cleanup(func() { authn.Close() })
	f.auth = authn
	opts := console.Options{Fleet: f.reg, Queues: f.queue, Conversations: f.chat, Platforms: []string{"telegram"},
		Keys: authn.Store(), Quotas: ratelimit.New(rdb, ratelimit.Options{}), TokenTTL: time.Hour,
		Logger: logger, SessionTTL: time.Hour, Now: func() time.Time { return f.now }}
	if admin {
		opts.Authorize, opts.SessionSecret = console.AdminKey(adminKey), console.SessionSecret(adminKey)
	}
	api := httpapi.New(httpapi.Deps{Logger: logger, Instance: "t1", Auth: authn, MaxBodyBytes: 4096,
		Chat: f.chat, Admin: console.New(opts).Routes})
	h := api.Handler()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/admin/api/fleet" {
			f.fleetPolls.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code
}

// do sends a request with the client c and header name, value pairs.
func (f *fixture) do(t *testing.T, c *http.Client, method, path, body string, hdr ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

// login logs a browser (a client with a cookie jar) in and returns it with
// its session's CSRF token.
func (f *fixture) login(t *testing.T) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	a := f.do(t, c, "POST", "/admin/api/login", `{"key":"`+adminKey+`"}`, "Content-Type", "application/json")
	if a.status != 200 {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	var s struct {
		CSRFToken string `json:"csrf_token"`
	}
	if json.Unmarshal(a.body, &s) != nil || s.CSRFToken == "" {
		t.Fatalf("login answer %s", a.body)
	}
	ck := a.header.Get("Set-Cookie")
	for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/admin"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	return c, s.CSRFToken
}

// Every admin route refuses a request without the admin credential, the
// ordinary API key included; the page shell is public, and every answer
// carries the security headers.
func TestAdminWantsTheAdminCredential(t *testing.T) {
	f := newFixture(t, true)
	c := http.DefaultClient
	routes := []struct{ method, path string }{
		{"GET", "/admin/api/fleet"}, {"GET", "/admin/api/queues"}, {"GET", "/admin/api/session"},
		{"GET", "/admin/api/conversations?user_id=1"}, {"DELETE", "/admin/api/conversations?user_id=1"},
		{"POST", "/admin/api/queues/dead/1-1/requeue"}, {"DELETE", "/admin/api/queues/dead/1-1"}, {"POST", "/admin/api/logout"},
		{"GET", "/admin/api/keys"}, {"POST", "/admin/api/keys"}, {"GET", "/admin/api/keys/key_000000000000"},
		{"DELETE", "/admin/api/keys/key_000000000000"}, {"POST", "/admin/api/keys/key_000000000000/rotate"}, {"POST", "/admin/api/tokens/revoke"},
	}
	for _, r := range routes {
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer " + apiKey}, {"Authorization", "Bearer " + adminKey + "x"}} {
			a := f.do(t, c, r.method, r.path, "", hdr...)
			if a.status != 401 || a.code() != "admin_required" {
				t.Errorf("%s %s with %v: %d %s, want 401 admin_required", r.method, r.path, hdr, a.status, a.body)
			}
		}
	}
	a := f.do(t, c, "GET", "/admin/api/fleet", "", "Authorization", "Bearer "+adminKey)
	if a.status != 200 {
		t.Fatalf("fleet with the admin key: %d %s", a.status, a.body)
	}
	if a := f.do(t, c, "POST", "/admin/api/login", `{"key":"`+apiKey+`"}`); a.status != 401 {
		t.Errorf("login with an API key: %d %s", a.status, a.body)
	}
	page := f.do(t, c, "GET", "/admin/", "")
	if page.status != 200 || !strings.Contains(string(page.body), "<title>botfleet console</title>") {
		t.Fatalf("page: %d", page.status)
	}
	for _, p := range []string{"/admin/", "/admin/console.js", "/admin/api/fleet"} {
		h := f.do(t, c, "GET", p, "").header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: security headers missing: %v", p, h)
		}
	}
	if !strings.Contains(f.logs.String(), `"action":"login"`) {
		t.Errorf("the refused login is not audit-logged:\n%s", f.logs.String())
	}
}

func TestConsoleOffWithoutAnAdminKey(t *testing.T) {
	f := newFixture(t, false)
	for _, p := range []string{"/admin/", "/admin/api/fleet"} {
		if a := f.do(t, http.DefaultClient, "GET", p, "", "Authorization", "Bearer "+apiKey); a.status != 404 || a.code() != "admin_off" {
			t.Errorf("%s: %d %s, want 404 admin_off", p, a.status, a.body)
		}
	}
}

// A browser's session works on its cookie; its writes want the session's
// CSRF token and a same-origin request; a script's Bearer credential is
// no ambient authority and needs no token.
func TestSessionWritesWantTheCSRFToken(t *testing.T) {
	f := newFixture(t, true)
	browser, token := f.login(t)
	if a := f.do(t, browser, "GET", "/admin/api/fleet", ""); a.status != 200 {
		t.Fatalf("fleet with the session: %d %s", a.status, a.body)
	}
	clear := "/admin/api/conversations?session_id=s1"
	for name, hdr := range map[string][]string{
		"no token":     nil,
		"wrong token":  {"X-CSRF-Token", token + "x"},
		"cross-site":   {"X-CSRF-Token", token, "Sec-Fetch-Site", "cross-site"},
		"other origin": {"X-CSRF-Token", token, "Origin", "https://evil.example"},
	} {
		if a := f.do(t, browser, "DELETE", clear, "", hdr...); a.status != 403 || a.code() != "csrf_failed" {
			t.Errorf("%s: %d %s, want 403 csrf_failed", name, a.status, a.body)
		}
	}
	if a := f.do(t, browser, "DELETE", clear, "", "X-CSRF-Token", token, "Sec-Fetch-Site", "same-origin"); a.status != 200 {
		t.Fatalf("write with the token: %d %s", a.status, a.body)
	}
	if a := f.do(t, http.DefaultClient, "DELETE", clear, "", "Authorization", "Bearer "+adminKey); a.status != 200 {
		t.Fatalf("script write with the admin key: %d %s", a.status, a.body)
	}
	// A tampered cookie is refused.
	u, err := url.Parse(f.srv.URL + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	ck := browser.Jar.Cookies(u)[0]
	forged, _ := cookiejar.New(nil)
	forged.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value[:len(ck.Value)-2] + "AA", Path: "/admin"}})
	if a := f.do(t, &http.Client{Jar: forged}, "GET", "/admin/api/fleet", ""); a.status != 401 {
		t.Fatalf("tampered cookie: %d %s", a.status, a.body)
	}
	// The session ends at its TTL (the console's clock).
	f.now = f.now.Add(time.Hour + time.Minute)
	if a := f.do(t, browser, "GET", "/admin/api/fleet", ""); a.status != 401 {
		t.Fatalf("expired session: %d %s", a.status, a.body)
	}
}

// A conversation looked up by what names it shows its memory and turn
// count; clearing it is audit-logged, and the next turn is the first.
func TestConversationLookUpAndClear(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	for i, msg := range []string{"hello", "and again"} {
		if _, err := f.chat.Turn(ctx, chat.Request{SessionID: "ops-42", ID: string(rune('a' + i)), Message: msg}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.chat.Turn(ctx, chat.Request{Platform: "telegram", Scope: chat.ScopeMember, UserID: "7", GroupID: "g1", ID: "ev1", Message: "hi bot"}); err != nil {
		t.Fatal(err)
	}
	browser, token := f.login(t)
	a := f.do(t, browser, "GET", "/admin/api/conversations?session_id=ops-42", "")
	var v struct {
		Key     string         `json:"key"`
		Turns   int            `json:"turns"`
		TTL     float64        `json:"ttl_seconds"`
		Entries []memory.Entry `json:"entries"`
	}
	if a.status != 200 || json.Unmarshal(a.body, &v) != nil {
		t.Fatalf("look up: %d %s", a.status, a.body)
	}
	if v.Key != "api:default:session:ops-42" || v.Turns != 2 || len(v.Entries) != 4 || v.Entries[2].Content != "and again" || v.TTL <= 0 {
		t.Fatalf("conversation: %+v", v)
	}
	im := f.do(t, browser, "GET", "/admin/api/conversations?platform=telegram&user_id=7&group_id=g1", "")
	if im.status != 200 || !strings.Contains(string(im.body), `"key":"im:telegram:member:g1:7"`) || !strings.Contains(string(im.body), `"turns":1`) {
		t.Fatalf("IM chat: %d %s", im.status, im.body)
	}
	for _, bad := range []string{"", "?scope=member", "?scope=sideways&user_id=1", "?session_id=" + strings.Repeat("x", 300)} {
		if a := f.do(t, browser, "GET", "/admin/api/conversations"+bad, ""); a.status != 400 {
			t.Errorf("look up %q: %d %s, want 400", bad, a.status, a.body)
		}
	}
	a = f.do(t, browser, "DELETE", "/admin/api/conversations?session_id=ops-42", "", "X-CSRF-Token", token)
	if a.status != 200 || !strings.Contains(string(a.body), `"cleared":true`) {
		t.Fatalf("clear: %d %s", a.status, a.body)
	}
	if !strings.Contains(f.logs.String(), `"action":"clear_conversation"`) || !strings.Contains(f.logs.String(), `"target":"api:default:session:ops-42"`) {
		t.Fatalf("clear not audit-logged:\n%s", f.logs.String())
	}
	res, err := f.chat.Turn(ctx, chat.Request{SessionID: "ops-42", ID: "c", Message: "anyone?"})
	if err != nil || res.Turn != 1 {
		t.Fatalf("turn after the clear: %+v %v, want turn 1", res, err)
	}
}

// The queue view shows dead letters with their reasons; requeueing one
// puts its job back on its stream, dropping one deletes it, each
// audit-logged.
func TestDeadLettersRequeueAndDrop(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	var ids []string
	for _, ev := range []string{"ev-1", "ev-2"} {
		id, err := f.rdb.XAdd(ctx, &redis.XAddArgs{Stream: f.queue.DeadStream(), Values: map[string]any{
			"platform": "telegram", "event": ev, "msg": "{}", "dead_reason": "sendMessage: 400 chat not found",
			"dead_stream": "normal", "dead_deliveries": "5", "dead_id": "1-1",
		}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	browser, token := f.login(t)
	a := f.do(t, browser, "GET", "/admin/api/queues", "")
	var q struct {
		DeadLetters int64 `json:"dead_letters"`
		Streams     []queue.StreamStats
		Dead        []queue.DeadLetter
	}
	if a.status != 200 || json.Unmarshal(a.body, &q) != nil || q.DeadLetters != 2 || len(q.Streams) != 3 || q.Dead[0].Fields["dead_reason"] == "" {
		t.Fatalf("queues: %d %s", a.status, a.body)
	}
	if a := f.do(t, browser, "POST", "/admin/api/queues/dead/"+ids[0]+"/requeue", "", "X-CSRF-Token", token); a.status != 200 {
		t.Fatalf("requeue: %d %s", a.status, a.body)
	}
	jobs, err := f.queue.Peek(ctx, queue.Normal, 10)
	if err != nil || len(jobs) != 1 || jobs[0].Fields["event"] != "ev-1" || jobs[0].Fields["dead_reason"] != "" {
		t.Fatalf("normal stream after the requeue: %+v %v", jobs, err)
	}
	if a := f.do(t, browser, "POST", "/admin/api/queues/dead/"+ids[0]+"/requeue", "", "X-CSRF-Token", token); a.status != 404 || a.code() != "dead_letter_not_found" {
		t.Fatalf("second requeue: %d %s", a.status, a.body)
	}
	if a := f.do(t, browser, "DELETE", "/admin/api/queues/dead/"+ids[1], "", "X-CSRF-Token", token); a.status != 204 {
		t.Fatalf("drop: %d %s", a.status, a.body)
	}
	if st, _ := f.queue.Stats(ctx); st.DeadLetters != 0 {
		t.Fatalf("dead letters left: %d", st.DeadLetters)
	}
	for _, want := range []string{`"action":"requeue"`, `"action":"drop"`, `"principal":"session:`} {
		if !strings.Contains(f.logs.String(), want) {
			t.Errorf("audit log lacks %s:\n%s", want, f.logs.String())
		}
	}
}

// The fleet view is the registry's read.
func TestFleetIsTheRegistry(t *testing.T) {
	f := newFixture(t, true)
	hb := f.reg.NewHeartbeat(registry.Source{Name: "bot-1", Address: "127.0.0.1:1"}, registry.HeartbeatOptions{})
	if err := hb.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := f.do(t, http.DefaultClient, "GET", "/admin/api/fleet", "", "Authorization", "Bearer "+adminKey)
	var fl registry.Fleet
	if a.status != 200 || json.Unmarshal(a.body, &fl) != nil || len(fl.Instances) != 1 || fl.Instances[0].Name != "bot-1" || !fl.Instances[0].Alive {
		t.Fatalf("fleet: %d %s", a.status, a.body)
	}
}

// Poll keeps a console open as a browser would: logged in, polling the
// fleet; a wrong key fails at once.
func TestPollIsAnOpenConsole(t *testing.T) {
	f := newFixture(t, true)
	if _, err := console.Poll(context.Background(), console.PollOptions{URL: f.srv.URL, AdminKey: apiKey}); err == nil {
		t.Fatal("Poll with an API key: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan console.PollStats)
	go func() {
		st, err := console.Poll(ctx, console.PollOptions{URL: f.srv.URL, AdminKey: adminKey, Interval: 5 * time.Millisecond})
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	testenv.WaitFor(t, 10*time.Second, "the poller's login", func() bool { return strings.Contains(f.logs.String(), `"msg":"admin: login"`) })
	testenv.WaitFor(t, 10*time.Second, "three polls of /admin/api/fleet", func() bool { return f.fleetPolls.Load() >= 3 })
	cancel()
	st := <-done
	if st.Polls < 3 || st.Failures != 0 || st.Bytes == 0 {
		t.Fatalf("poll stats %+v", st)
	}
}
