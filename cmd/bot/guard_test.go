package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/mockllm"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/botfleet/botfleet/pkg/testenv"
)

const (
	adminKey    = "admin-key-0123456789abcdef"
	tokenSecret = "token-secret-0123456789abcdef-0123456789"
)

// guardEnv turns on the admin API and access tokens.
func guardEnv(r *testenv.Redis) map[string]string {
	return with(redisEnv(r), "BOT_AUTH_ADMIN_KEY", adminKey, "BOT_AUTH_TOKEN_SECRETS", "t1:"+tokenSecret)
}

// createKey makes a managed key in r's Redis.
func createKey(t *testing.T, r *testenv.Redis, spec auth.Spec) (string, *auth.Key) {
	t.Helper()
	secret, k, err := auth.NewStore(r.Client(), auth.StoreOptions{}).Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	testenv.NoteSecret(secret)
	return secret, k
}

func bearerOf(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

func TestKeyRateLimitHoldsAcrossInstances(t *testing.T) {
	r := testenv.StartRedis(t)
	bots := []*instance{startBot(t, redisEnv(r)), startBot(t, redisEnv(r))}
	const n = 10
	secret, _ := createKey(t, r, auth.Spec{Name: "limited", Limits: auth.Limits{RequestsPerSecond: n}})
	burst(t, n, func(i int) chatReply {
		return post(t, bots[i%2].url+"/v1/chat", chatBody(fmt.Sprint("rl", i), "hi"), bearerOf(secret)...)
	})
}

// The per-IP limit (ratelimit.per_ip) is the fleet's, in Redis: one client
// address spreading 3N requests over two instances within a second gets N
// (± what refills meanwhile) and 429s with Retry-After and RateLimit-*
// headers for the rest; another address (127.0.0.2) is not touched by it.
func TestIPRateLimitHoldsAcrossInstances(t *testing.T) {
	r := testenv.StartRedis(t)
	const n = 10
	env := with(redisEnv(r), "BOT_RATELIMIT_PER_IP", strconv.Itoa(n))
	bots := []*instance{startBot(t, env), startBot(t, env)}
	burst(t, n, func(i int) chatReply {
		return post(t, bots[i%2].url+"/v1/chat", chatBody(fmt.Sprint("ip", i), "hi"))
	})
	for i := range n {
		res := postFrom(t, "127.0.0.2", bots[i%2].url+"/v1/chat", chatBody(fmt.Sprint("other", i), "hi"))
		if res.status != 200 || res.header.Get("RateLimit-Limit") != strconv.Itoa(n) || res.header.Get("RateLimit-Remaining") == "" {
			t.Fatalf("request %d from 127.0.0.2 after 127.0.0.1 went over the limit: %d %+v %v", i, res.status, res.Error, res.header)
		}
	}
}

// burst sends 3n requests at once (send(i) sends the i-th) under a limit of
// n a second: n of them, plus what refills while they arrive, are admitted
// with RateLimit-* headers, the rest refused 429 rate_limited with
// Retry-After, RateLimit-Remaining 0 and no x-should-retry (a rate, not a
// budget).
func burst(t *testing.T, n int, send func(i int) chatReply) {
	t.Helper()
	var ok atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 3 * n {
		wg.Go(func() {
			res := send(i)
			h := res.header
			switch res.status {
			case 200:
				ok.Add(1)
				if h.Get("RateLimit-Limit") != strconv.Itoa(n) || h.Get("RateLimit-Remaining") == "" || h.Get("RateLimit-Reset") == "" {
					t.Errorf("admitted without RateLimit headers: %v", h)
				}
			case 429:
				ra, _ := strconv.Atoi(h.Get("Retry-After"))
				if res.Error == nil || res.Error.Code != "rate_limited" || ra < 1 || h.Get("RateLimit-Limit") != strconv.Itoa(n) ||
					h.Get("RateLimit-Remaining") != "0" || h.Get("RateLimit-Reset") == "" || h.Get("x-should-retry") != "" {
					t.Errorf("429 without its headers: %+v %v", res.Error, h)
				}
			default:
				t.Errorf("status %d %+v", res.status, res.Error)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// GCRA admits the burst of n plus what refills while the requests arrive.
	tolerance := int64(float64(n)*elapsed.Seconds()) + 1
	t.Logf("%d of %d requests over two instances in %v admitted at %d/s (tolerance +%d)", ok.Load(), 3*n, elapsed, n, tolerance)
	if got := ok.Load(); got < int64(n) || got > int64(n)+tolerance {
		t.Fatalf("%d admitted, want %d +%d", got, n, tolerance)
	}
}

func TestTokenBudgetAcrossInstances(t *testing.T) {
	r := testenv.StartRedis(t)
	// A reservation covers what a turn uses: its body, 200 tokens of
	// system prompt and history, and a 200-token reply.
	env := with(redisEnv(r), "BOT_RATELIMIT_PROMPT_TOKENS", "200", "BOT_RATELIMIT_REPLY_TOKENS", "200", "BOT_CACHE_ENABLED", "false")
	a, b := startBot(t, env), startBot(t, env)
	const budget = 2000
	secret, k := createKey(t, r, auth.Spec{Limits: auth.Limits{TokenBudget: budget}})
	var wg sync.WaitGroup
	var exhausted atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				res := post(t, []*instance{a, b}[w%2].url+"/v1/chat", chatBody(fmt.Sprintf("b%d-%d", w, i), "tell me something about budgets"), bearerOf(secret)...)
				if res.status == 429 {
					if res.Error.Code != "budget_exhausted" || res.header.Get("x-should-retry") != "false" {
						t.Errorf("budget refusal: %+v %v", res.Error, res.header)
					}
					exhausted.Add(1)
					return
				}
				if res.status != 200 {
					t.Errorf("status %d %+v", res.status, res.Error)
					return
				}
			}
		})
	}
	wg.Wait()
	u, err := ratelimit.New(r.Client(), ratelimit.Options{}).Usage(context.Background(), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	reservation := int64(ratelimit.Tokens(chatBody("b15-999", "tell me something about budgets")) + 400)
	t.Logf("budget %d: spent %d over two instances (one reservation is %d tokens)", budget, u.Spent, reservation)
	if u.Spent > budget+reservation || u.Spent < budget-reservation || u.Reserved != 0 || exhausted.Load() != 16 {
		t.Fatalf("usage %+v after %d refusals: want spend within one reservation of %d", u, exhausted.Load(), budget)
	}
}

func TestBotctlRevocationIsRefusedEverywhereOnTheNextRequest(t *testing.T) {
	r := testenv.StartRedis(t)
	bots := []*instance{startBot(t, redisEnv(r)), startBot(t, redisEnv(r))}
	out, err := runBotctl(t, r, "keys", "create", "--name", "ci", "--owner", "ops", "--expires", "30d", "--json")
	if err != nil {
		t.Fatalf("botctl keys create: %v\n%s", err, out)
	}
	var created struct {
		Key    auth.Key `json:"key"`
		Secret string   `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Secret, "bf_") {
		t.Fatalf("botctl output %q: %v", out, err)
	}
	testenv.NoteSecret(created.Secret)
	for i, b := range bots {
		if res := post(t, b.url+"/v1/chat", chatBody("rv", fmt.Sprint("before ", i)), bearerOf(created.Secret)...); res.status != 200 {
			t.Fatalf("before revocation on %s: %d %+v", b.url, res.status, res.Error)
		}
	}
	out, err = runBotctl(t, r, "keys", "revoke", created.Key.ID)
	if err != nil || !strings.Contains(out, "confirmed by 2 of 2 instances") {
		t.Fatalf("botctl keys revoke: %v\n%s", err, out)
	}
	t.Logf("botctl: %s", strings.TrimSpace(out))
	for _, b := range bots {
		if res := post(t, b.url+"/v1/chat", chatBody("rv", "after"), bearerOf(created.Secret)...); res.status != 401 || res.Error.Code != "key_revoked" {
			t.Fatalf("the very next request on %s: %d %+v, want 401 key_revoked", b.url, res.status, res.Error)
		}
	}
	out, err = runBotctl(t, r, "keys", "list")
	if err != nil || !strings.Contains(out, created.Key.ID) || !strings.Contains(out, "revoked") {
		t.Fatalf("botctl keys list: %v\n%s", err, out)
	}
}

// TestTenantsCannotReadEachOther has two keys name the same session_id,
// user and Idempotency-Key: neither sees the other's memory or replies.
func TestTenantsCannotReadEachOther(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_CACHE_ENABLED", "false"))
	alice, _ := createKey(t, r, auth.Spec{Name: "alice"})
	bob, _ := createKey(t, r, auth.Spec{Name: "bob"})
	url := bot.url + "/v1/chat"
	first := post(t, url, chatBody("shared", "alice's secret plan"), append(bearerOf(alice), "Idempotency-Key", "same-id")...)
	if first.status != 200 || first.Turn != 1 {
		t.Fatalf("alice: %d %+v", first.status, first)
	}
	// The same session, Idempotency-Key and message: a replay of alice's
	// reply if the keys shared a namespace.
	res := post(t, url, chatBody("shared", "alice's secret plan"), append(bearerOf(bob), "Idempotency-Key", "same-id")...)
	if res.status != 200 || res.Turn != 1 || res.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("bob with alice's session and request id: %d %+v %v", res.status, res, res.header)
	}
	// The same request id with another message: a 409 if shared.
	if res := post(t, url, chatBody("s2", "something else"), append(bearerOf(bob), "Idempotency-Key", "same-id")...); res.status != 200 {
		t.Fatalf("bob reusing alice's request id: %d %+v", res.status, res.Error)
	}
	// Alice's memory, asked for by bob by her session id and by her user.
	post(t, url, chatBody("alice-only", "alice's secret plan"), bearerOf(alice)...)
	post(t, url, `{"message":"alice's secret plan","user_id":"u1"}`, bearerOf(alice)...)
	for _, body := range []string{chatBody("alice-only", "what did I say before?"), `{"message":"what did I say before?","user_id":"u1"}`} {
		res := post(t, url, body, bearerOf(bob)...)
		if res.status != 200 || res.Turn != 1 || strings.Contains(res.Reply, "secret plan") {
			t.Fatalf("bob %s: %+v", body, res)
		}
	}
	// Alice's user u1 is hers alone too, and the bootstrap key's "shared" is another conversation again.
	if res := post(t, url, `{"message":"mine","user_id":"u1"}`, bearerOf(alice)...); res.status != 200 || res.Turn != 2 || res.SessionID != "c2c:u1" {
		t.Fatalf("alice's u1: %+v", res)
	}
	if res := post(t, url, chatBody("shared", "bootstrap")); res.status != 200 || res.Turn != 1 {
		t.Fatalf("bootstrap key in session shared: %+v", res)
	}
	// Alice still has her own conversation with both turns of hers.
	if res := post(t, url, chatBody("shared", "again"), bearerOf(alice)...); res.Turn != 2 {
		t.Fatalf("alice's second turn: %+v", res)
	}
}

// A streamed turn is its key's own: another key naming its stream id gets
// 404, as for a stream that never was; its own key reads it back whole.
func TestStreamsAreTheirKeysOwn(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, with(redisEnv(r), "BOT_CACHE_ENABLED", "false"))
	alice, _ := createKey(t, r, auth.Spec{Name: "alice"})
	bob, _ := createKey(t, r, auth.Spec{Name: "bob"})
	body := `{"session_id":"streamed","message":"alice's streamed secret","stream":true}`
	if status, _, raw := send(t, bot.url+"/v1/chat", body, append(bearerOf(alice), "Idempotency-Key", "alice-stream")...); status != 200 || !strings.Contains(string(raw), "event: done") {
		t.Fatalf("alice's streamed turn: %d %s", status, raw)
	}
	read := func(secret string) (int, string) {
		req, _ := http.NewRequest("GET", bot.url+"/v1/chat/streams/alice-stream", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if status, raw := read(bob); status != 404 || strings.Contains(raw, "alice") || !strings.Contains(raw, `"error"`) {
		t.Fatalf("bob reading alice's stream: %d %s", status, raw)
	}
	if status, raw := read(alice); status != 200 || !strings.Contains(raw, "event: done") {
		t.Fatalf("alice reading her stream back: %d %s", status, raw)
	}
}

func tokenFor(t *testing.T, url, secret string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/auth/token", nil)
	req.Header.Set("Authorization", "bearer "+secret) // the scheme is case-insensitive
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"access_token"`
		ID    string `json:"token_id"`
		Type  string `json:"token_type"`
		In    int    `json:"expires_in"`
		Error struct{ Code string }
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &body)
	if resp.StatusCode == 200 {
		testenv.NoteSecret(body.Token)
		if body.Type != "Bearer" || body.In < 890 || body.In > 900 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("token answer %s %v", raw, resp.Header)
		}
		return 200, body.Token, body.ID
	}
	return resp.StatusCode, body.Error.Code, ""
}

func TestAccessTokensOverHTTP(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := startBot(t, guardEnv(r)), startBot(t, guardEnv(r))
	secret, k := createKey(t, r, auth.Spec{})
	status, token, jti := tokenFor(t, a.url, secret)
	if status != 200 {
		t.Fatalf("POST /auth/token: %d %s", status, token)
	}
	if res := post(t, b.url+"/v1/chat", chatBody("tok", "hi"), "Authorization", "BEARER "+token); res.status != 200 {
		t.Fatalf("token on another instance: %d %+v", res.status, res.Error)
	}
	if status, code, _ := tokenFor(t, a.url, token); status != 403 || code != "api_key_required" {
		t.Fatalf("a token for a token: %d %s", status, code)
	}
	i := len(token) - 10 // inside the signature
	tampered := token[:i] + map[bool]string{true: "B", false: "A"}[token[i] == 'A'] + token[i+1:]
	if res := post(t, b.url+"/v1/chat", chatBody("tok", "hi"), bearerOf(tampered)...); res.status != 401 || res.Error.Code != "token_signature" {
		t.Fatalf("tampered token: %d %+v", res.status, res.Error)
	}
	// Revoking the one token over the admin API.
	adminPost(t, a.url+"/admin/api/tokens/revoke", `{"token_id":"`+jti+`"}`, 200)
	if res := post(t, b.url+"/v1/chat", chatBody("tok", "hi"), bearerOf(token)...); res.status != 401 || res.Error.Code != "token_revoked" {
		t.Fatalf("revoked token: %d %+v", res.status, res.Error)
	}
	_, token2, _ := tokenFor(t, a.url, secret)
	if _, _, err := auth.NewStore(r.Client(), auth.StoreOptions{}).Revoke(context.Background(), k.ID); err != nil {
		t.Fatal(err)
	}
	if res := post(t, b.url+"/v1/chat", chatBody("tok", "hi"), bearerOf(token2)...); res.status != 401 || res.Error.Code != "key_revoked" {
		t.Fatalf("token of a revoked key: %d %+v", res.status, res.Error)
	}
	// The bootstrap API_KEY gets tokens too; without secrets tokens are off.
	if status, _, _ := tokenFor(t, a.url, apiKey); status != 200 {
		t.Fatalf("token for API_KEY: %d", status)
	}
	plain := startBot(t, redisEnv(r))
	if status, code, _ := tokenFor(t, plain.url, apiKey); status != 404 || code != "tokens_off" {
		t.Fatalf("tokens without secrets: %d %s", status, code)
	}
}

// adminDo sends an admin API request with the admin key and decodes the
// JSON answer into out (when not nil), checking the status and headers.
func adminDo(t *testing.T, method, url, body string, want int, out any) http.Header {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, url, raw, err)
		}
	}
	return resp.Header
}

func adminPost(t *testing.T, url, body string, want int) {
	t.Helper()
	adminDo(t, "POST", url, body, want, nil)
}

func TestAdminKeysAPI(t *testing.T) {
	r := testenv.StartRedis(t)
	bot := startBot(t, guardEnv(r))
	api := bot.url + "/admin/api/keys"
	var created struct {
		Key    auth.Key `json:"key"`
		Secret string   `json:"secret"`
	}
	h := adminDo(t, "POST", api, `{"name":"web","owner":"team","expires_in":"7d","allow_ips":["127.0.0.1"],"limits":{"rps":5,"in_flight":2}}`, 201, &created)
	testenv.NoteSecret(created.Secret)
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
		"Content-Security-Policy": "default-src 'none'", "Referrer-Policy": "no-referrer"} {
		if !strings.HasPrefix(h.Get(k), v) {
			t.Errorf("admin answer header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if created.Key.Limits.RequestsPerSecond != 5 || created.Key.Expires.Sub(created.Key.Created) != 7*24*time.Hour {
		t.Fatalf("created %+v", created.Key)
	}
	if res := post(t, bot.url+"/v1/chat", chatBody("adm", "hi"), bearerOf(created.Secret)...); res.status != 200 {
		t.Fatalf("the new key: %d %+v", res.status, res.Error)
	}
	var list struct{ Keys []auth.Key }
	adminDo(t, "GET", api, "", 200, &list)
	if len(list.Keys) != 1 || list.Keys[0].ID != created.Key.ID {
		t.Fatalf("list %+v", list)
	}
	var shown struct {
		ID    string
		Usage *ratelimit.Usage
	}
	adminDo(t, "GET", api+"/"+created.Key.ID, "", 200, &shown)
	if shown.ID != created.Key.ID || shown.Usage == nil {
		t.Fatalf("show %+v", shown)
	}
	var rotated struct {
		Secret      string
		Propagation auth.Propagation
	}
	adminDo(t, "POST", api+"/"+created.Key.ID+"/rotate", "", 200, &rotated)
	testenv.NoteSecret(rotated.Secret)
	if res := post(t, bot.url+"/v1/chat", chatBody("adm", "hi"), bearerOf(created.Secret)...); res.status != 401 {
		t.Fatalf("old secret after rotation: %d", res.status)
	}
	if res := post(t, bot.url+"/v1/chat", chatBody("adm", "hi"), bearerOf(rotated.Secret)...); res.status != 200 || res.Turn != 2 {
		t.Fatalf("rotated secret keeps the tenant: %+v", res)
	}
	var revoked struct{ Propagation auth.Propagation }
	adminDo(t, "DELETE", api+"/"+created.Key.ID, "", 200, &revoked)
	if revoked.Propagation.Instances != 1 || !revoked.Propagation.Complete() {
		t.Fatalf("revocation %+v", revoked)
	}
	adminDo(t, "GET", api+"/key_000000000000", "", 404, nil)
	adminDo(t, "POST", api, `{"expires_in":"91d"}`, 400, nil)
	for _, cred := range []string{"", apiKey, adminKey + "x"} {
		req, _ := http.NewRequest("GET", api, nil)
		req.Header.Set("Authorization", "Bearer "+cred)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("admin API with %q: %d", cred[:min(len(cred), 4)], resp.StatusCode)
		}
	}
	off := startBot(t, redisEnv(r))
	if s := status(t, off.url+"/admin/api/keys"); s != 404 {
		t.Fatalf("admin API without an admin key: %d, want 404", s)
	}
}

// A key allowed only model small gets small on both chat APIs, and for big a
// 403 model_not_allowed — OpenAI-shaped on /v1/chat/completions, before any
// stream begins — that reaches no model and stores nothing; the bootstrap
// key, which names no models, may use big.
func TestKeyAllowedModelsRefuseTheOthers(t *testing.T) {
	bot, mock, r := llmBot(t, mockllm.Options{}, `
  models:
    - name: small
      base_url: %[1]s
    - name: big
      base_url: %[1]s
`)
	secret, _ := createKey(t, r, auth.Spec{Name: "small-only", Models: []string{"small"}})
	key := bearerOf(secret)
	completion := func(model string, stream bool) string {
		return fmt.Sprintf(`{"model":%q,"stream":%t,"user":"m1","messages":[{"role":"user","content":"hi"}]}`, model, stream)
	}
	if res := complete(t, bot.url, completion("small", false), key...); res.status != 200 || res.Model != "small" || seen(t, res.content()) != 2 {
		t.Fatalf("small: %d %+v", res.status, res)
	}
	calls := mock.Stats().Calls
	for _, stream := range []bool{false, true} {
		res := complete(t, bot.url, completion("big", stream), key...)
		if e := res.Error; res.status != 403 || e == nil || e.Type != "permission_error" || e.Code != "model_not_allowed" ||
			!strings.Contains(e.Message, "model") || res.header.Get("X-Should-Retry") != "false" {
			t.Fatalf("big (stream %t): %d %+v %v", stream, res.status, e, res.header)
		}
	}
	chat := post(t, bot.url+"/v1/chat", `{"message":"hi","session_id":"m2","model":"big"}`, key...)
	if chat.status != 403 || chat.Error == nil || chat.Error.Code != "model_not_allowed" {
		t.Fatalf("/v1/chat with big: %d %+v", chat.status, chat.Error)
	}
	if got := mock.Stats().Calls; got != calls {
		t.Fatalf("refused requests reached the model: %d calls, want %d", got, calls)
	}
	// Nothing stored: the next turns are the conversations' first and second.
	if res := complete(t, bot.url, completion("small", false), key...); res.status != 200 || seen(t, res.content()) != 4 {
		t.Fatalf("small after big: %d %+v", res.status, res)
	}
	if res := post(t, bot.url+"/v1/chat", `{"message":"hi","session_id":"m2","model":"small"}`, key...); res.status != 200 || res.Turn != 1 {
		t.Fatalf("/v1/chat with small after big: %d %+v", res.status, res)
	}
	if res := complete(t, bot.url, completion("big", false)); res.status != 200 || res.Model != "big" {
		t.Fatalf("the bootstrap key with big: %d %+v", res.status, res)
	}
}
