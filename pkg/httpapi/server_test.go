package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/httpapi"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

const key = "test-key"

// newAPI serves the API over a real Redis with the builtin model; change
// edits its Deps first.
func newAPI(t *testing.T, change func(*httpapi.Deps)) (*httptest.Server, *testenv.Redis) {
	t.Helper()
	r := testenv.StartRedis(t)
	router := testenv.BuiltinRouter(t)
	// No retries and a short dial, as an instance configures its client:
	// a dead Redis is a 503 at once.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	store := memory.New(context.Background(), rdb, memory.Options{})
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	authn := auth.New(rdb, auth.Options{Bootstrap: []string{key}})
	t.Cleanup(func() { authn.Close() })
	deps := httpapi.Deps{
		Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg,
		Chat: chat.New(store, router, chat.Options{Model: "builtin"}), Ping: store.Check, Breakers: router.Breakers,
		Instance: "t1", Auth: authn, MaxBodyBytes: 2048, MaxMessageChars: 100, Models: router.Models,
		Stream: httpapi.StreamOptions{Heartbeat: time.Second, WriteTimeout: time.Second, MaxDuration: time.Minute},
	}
	if change != nil {
		change(&deps)
	}
	srv := httptest.NewServer(httpapi.New(deps).Handler())
	t.Cleanup(srv.Close)
	return srv, r
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) errorCode() string {
	e, _ := a.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func do(t *testing.T, method, url, body string, headers ...string) answer {
	t.Helper()
	req := testenv.JSONRequest(t, method, url, key, body, headers...)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func TestRoutesAnswerJSON(t *testing.T) {
	srv, _ := newAPI(t, nil)
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/v1/chat", `{"message":"hi"}`, 200, ""},
		{"GET", "/v1/chat", "", 404, "not_found"}, // echo: a group with middleware answers other methods 404
		{"POST", "/v1/nope", "{}", 404, "not_found"},
		{"GET", "/nowhere", "", 404, "not_found"},
		{"GET", "/health", "", 200, ""},
		{"GET", "/ready", "", 200, ""},
		{"GET", "/v1/models", "", 200, ""},
		{"POST", "/webhook/telegram", "{}", 404, "platform_off"},
	} {
		a := do(t, tc.method, srv.URL+tc.path, tc.body)
		if a.status != tc.status || a.errorCode() != tc.code || a.body == nil {
			t.Errorf("%s %s: %d %v, want %d %q", tc.method, tc.path, a.status, a.body, tc.status, tc.code)
		}
		if a.header.Get("X-Request-Id") == "" || a.header.Get("X-Bot-Instance") != "t1" {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, a.header)
		}
	}
}

func TestAuth(t *testing.T) {
	srv, _ := newAPI(t, nil)
	for _, tc := range []struct {
		authz  string
		status int
		code   string
	}{
		{"", 401, "missing_token"},
		{"Bearer", 401, "missing_token"},
		{"Basic " + key, 401, "missing_token"},
		{"Bearer wrong", 401, "invalid_token"},
		{"Bearer " + key, 200, ""},
		{"bearer " + key, 200, ""},
		{"BEARER  " + key, 200, ""},
	} {
		a := do(t, "POST", srv.URL+"/v1/chat", `{"message":"hi"}`, "Authorization", tc.authz)
		if a.status != tc.status || a.errorCode() != tc.code {
			t.Errorf("Authorization %q: %d %v", tc.authz, a.status, a.body)
		}
		if tc.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: no WWW-Authenticate", tc.authz)
		}
	}
	open, _ := newAPI(t, func(d *httpapi.Deps) { d.AuthDisabled = true })
	if a := do(t, "POST", open.URL+"/v1/chat", `{"message":"hi"}`, "Authorization", ""); a.status != 200 {
		t.Errorf("auth disabled: %d %v", a.status, a.body)
	}
}

func TestLimitsAndDecoding(t *testing.T) {
	srv, _ := newAPI(t, nil)
	for _, tc := range []struct {
		name, body string
		headers    []string
		status     int
		code       string
	}{
		{"body over the limit", `{"message":"` + strings.Repeat("x", 3000) + `"}`, nil, 413, "too_large"},
		{"message over the limit", `{"message":"` + strings.Repeat("x", 101) + `"}`, nil, 413, "message_too_long"},
		{"another content type", `{"message":"hi"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"unknown member", `{"message":"hi","colour":"red"}`, nil, 400, "invalid_json"},
		{"member in caps", `{"Message":"hi"}`, nil, 400, "invalid_json"},
		{"not UTF-8", "{\"message\":\"\xff\"}", nil, 400, "invalid_request"},
		{"bad Idempotency-Key", `{"message":"hi"}`, []string{"Idempotency-Key", strings.Repeat("k", 200)}, 400, "invalid_request"},
		{"bad user id", `{"message":"hi","user_id":"a b"}`, nil, 400, "invalid_request"},
	} {
		a := do(t, "POST", srv.URL+"/v1/chat", tc.body, tc.headers...)
		if a.status != tc.status || a.errorCode() != tc.code {
			t.Errorf("%s: %d %v, want %d %s", tc.name, a.status, a.body, tc.status, tc.code)
		}
	}
}

// A store that does not answer is a 503 with Retry-After, on the chat
// route and on readiness, and never on liveness.
func TestUnavailableStoreIs503WithRetryAfter(t *testing.T) {
	srv, r := newAPI(t, nil)
	r.Stop()
	for _, path := range []string{"/v1/chat", "/ready"} {
		method := map[string]string{"/v1/chat": "POST", "/ready": "GET"}[path]
		a := do(t, method, srv.URL+path, `{"message":"hi"}`)
		if a.status != 503 || a.errorCode() != "store_unavailable" || a.header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %v %v", path, a.status, a.body, a.header)
		}
	}
	if a := do(t, "GET", srv.URL+"/health", ""); a.status != 200 {
		t.Errorf("/health with Redis down: %d", a.status)
	}
	a := do(t, "POST", srv.URL+"/v1/chat/completions", `{"user":"u","messages":[{"role":"user","content":"hi"}]}`)
	e, _ := a.body["error"].(map[string]any)
	if a.status != 503 || e["type"] != "server_error" || e["code"] != "store_unavailable" ||
		a.header.Get("Retry-After-Ms") == "" || a.header.Get("X-Should-Retry") != "true" {
		t.Errorf("completions: %d %v %v", a.status, a.body, a.header)
	}
}

func TestMetricsBehindAToken(t *testing.T) {
	srv, _ := newAPI(t, func(d *httpapi.Deps) { d.MetricsToken = "scrape" })
	if a := do(t, "GET", srv.URL+"/metrics", "", "Authorization", ""); a.status != 401 {
		t.Errorf("/metrics without the token: %d", a.status)
	}
	if a := do(t, "GET", srv.URL+"/metrics", "", "Authorization", "Bearer "+key); a.status != 401 {
		t.Errorf("/metrics with the API key: %d", a.status)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer scrape")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "botfleet_http_requests_total") {
		t.Errorf("/metrics with the token: %d", resp.StatusCode)
	}
	off, _ := newAPI(t, func(d *httpapi.Deps) { d.MetricsElsewhere = true })
	if a := do(t, "GET", off.URL+"/metrics", ""); a.status != 404 {
		t.Errorf("/metrics served elsewhere: %d on the API port", a.status)
	}
}

// TestAccessLog: by default only error answers get an "http" line (nginx
// logs every request); Sample 1 logs every request, Slow a slow one.
func TestAccessLog(t *testing.T) {
	for _, c := range []struct {
		name   string
		access httpapi.AccessLog
		want   []string // paths with an "http" line, in order
	}{
		{"default: errors only", httpapi.AccessLog{}, []string{"/v1/nothing-here"}},
		{"sample 1: every request", httpapi.AccessLog{Sample: 1}, []string{"/v1/models", "/v1/nothing-here"}},
		{"slow from 1ns: every request", httpapi.AccessLog{Slow: time.Nanosecond}, []string{"/v1/models", "/v1/nothing-here"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &testenv.Buffer{}
			srv, _ := newAPI(t, func(d *httpapi.Deps) {
				d.Logger = slog.New(slog.NewJSONHandler(logs, nil))
				d.AccessLog = c.access
			})
			if a := do(t, "GET", srv.URL+"/v1/models", ""); a.status != http.StatusOK {
				t.Fatalf("GET /v1/models: %d", a.status)
			}
			if a := do(t, "GET", srv.URL+"/v1/nothing-here", ""); a.status != http.StatusNotFound {
				t.Fatalf("GET /v1/nothing-here: %d", a.status)
			}
			var got []string
			for line := range strings.Lines(logs.String()) {
				var v struct{ Msg, Path string }
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if v.Msg == "http" {
					got = append(got, v.Path)
				}
			}
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Errorf("access-log lines of %v, want %v", got, c.want)
			}
		})
	}
}
