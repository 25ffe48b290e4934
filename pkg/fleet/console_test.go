package fleet

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/chromedp/chromedp"
)

// browser is headless Chromium (Debian's chromium) driven by chromedp, with
// a fresh profile, screenshots saved under dir.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	exe := testenv.LookPath(t, "chromium")
	// The flags /work/.library/env/machines/go.md names: as root, no
	// sandbox; and nothing that reaches for the network.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1440, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium does not start: %v", err)
	}
	return &browser{t: t, ctx: ctx, dir: t.TempDir()}
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// eval returns what the JavaScript expression js evaluates to.
func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+js+`)`))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", js, err)
	}
	return out
}

// waitFor evaluates js until it is "true"; what says what is waited for.
func (b *browser) waitFor(timeout time.Duration, what, js string) {
	b.t.Helper()
	if !testenv.Eventually(timeout, func() bool { return b.eval(js) == "true" }) {
		b.screenshot("failed")
		b.t.Fatalf("gave up waiting %v for %s; the page says %q", timeout, what, b.eval(`document.getElementById("status").textContent + " | " + document.getElementById("login-error").textContent`))
	}
}

// screenshot saves the page as name.png under the test's folder, and
// under $BOTFLEET_SCREENSHOTS too when set (docs/console-*.png in the
// README come from there).
func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	for _, dir := range []string{b.dir, os.Getenv("BOTFLEET_SCREENSHOTS")} {
		if dir == "" {
			continue
		}
		file := filepath.Join(dir, "console-"+name+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot: %s", file)
	}
}

// fakeTelegram is the Bot API's sendMessage: refusing (400) until told to
// accept, counting what it accepted.
type fakeTelegram struct {
	accept atomic.Bool
	sent   atomic.Int64
}

func (f *fakeTelegram) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if !f.accept.Load() {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}`)
		return
	}
	f.sent.Add(1)
	fmt.Fprint(w, `{"ok":true,"result":{"message_id":1,"date":1700000000,"chat":{"id":42,"type":"private"}}}`)
}

// startChecker runs the health checker on the fleet's instances (report
// only), publishing to the fleet's registry, until the test ends; it
// listens on a port of its own choosing (port 0, --addr-file).
func startChecker(t *testing.T, f *testFleet) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\nregistry:\n  redis: %s\n  interval: 200ms\n  name: hc-console\n", f.Redis.Addr)
	b.WriteString("defaults:\n  period: 200ms\n  initial_delay: 0s\n  jitter: 0s\n  failure_threshold: 2\ntargets:\n")
	for _, m := range f.Members {
		fmt.Fprintf(&b, "  - name: bot-%d\n    liveness: http://127.0.0.1:%d/health\n    readiness: http://127.0.0.1:%d/ready\n", m.Port, m.Port, m.Port)
	}
	cfg := filepath.Join(t.TempDir(), "hc.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHealthChecker(t)
	runHealthChecker(t, f, h, cfg, "--addr-file", h.addrFile)
}

// The console in a real browser, through nginx, on a running fleet: log
// in, see every instance and the health checker's view, kill one and
// watch it turn dead, look up a conversation made through the API and
// clear it, requeue a dead letter, make an API key, use it and revoke it.
func TestConsoleInABrowser(t *testing.T) {
	b := startBrowser(t)
	tg := &fakeTelegram{}
	tgSrv := httptest.NewServer(tg)
	defer tgSrv.Close()
	const interval, ttl = 200 * time.Millisecond, time.Second
	f := startFleet(t, []int{1, 1}, true,
		"BOT_AUTH_ADMIN_KEY="+adminKey, "BOT_REGISTRY_INTERVAL="+interval.String(), "BOT_REGISTRY_TTL="+ttl.String(),
		"BOT_IM_TELEGRAM_BOT_TOKEN="+tgToken, "BOT_IM_TELEGRAM_SECRET_TOKEN="+tgSecret, "BOT_IM_TELEGRAM_API_URL="+tgSrv.URL,
		"BOT_QUEUE_BLOCK=100ms", "BOT_QUEUE_MAX_DELIVERIES=1")
	startChecker(t, f)

	// Log in.
	b.run(chromedp.Navigate(f.Nginx.URL("/admin/")), chromedp.WaitVisible(chromedp.CSS("#login-key")))
	b.screenshot("login")
	b.run(chromedp.SendKeys(chromedp.CSS("#login-key"), "not-the-key-"+apiKey), chromedp.Click(chromedp.CSS("#login-form button")))
	b.waitFor(10*time.Second, "the refused login's message", `document.getElementById("login-error").textContent.includes("admin credential")`)
	b.run(chromedp.Evaluate[chromedp.Void](`document.getElementById("login-key").value = ""`), chromedp.SendKeys(chromedp.CSS("#login-key"), adminKey),
		chromedp.Click(chromedp.CSS("#login-form button")))
	b.waitFor(15*time.Second, "the fleet view after the login", `!document.getElementById("view-fleet").hidden`)

	// Every instance, ready; the health checker's view of them.
	rowState := func(name string) string {
		return `(document.querySelector('#instances tr[data-instance="` + name + `"] td.state') || {}).textContent`
	}
	for _, m := range f.Members {
		b.waitFor(15*time.Second, m.Name()+" ready in the console", rowState(m.Name())+` === "ready"`)
	}
	if n := b.eval(`document.querySelectorAll("#instances tbody tr").length`); n != strconv.Itoa(len(f.Members)) {
		t.Fatalf("%s instances shown, want %d", n, len(f.Members))
	}
	b.waitFor(15*time.Second, "the health checker's targets", `document.querySelectorAll('[data-checker="hc-console"] tr[data-target].state-healthy').length === `+strconv.Itoa(len(f.Members)))
	b.screenshot("fleet")

	// Kill one: it turns dead once its TTL has passed; the checker sees it fail.
	victim := f.Primaries()[1]
	killed := time.Now()
	if err := syscall.Kill(f.Pid(victim.Port), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.waitFor(30*time.Second, victim.Name()+" dead in the console", rowState(victim.Name())+` === "dead"`)
	t.Logf("%s shown dead %v after kill -9 (registry ttl %v, heartbeat %v, the page polls every heartbeat)",
		victim.Name(), time.Since(killed).Round(10*time.Millisecond), ttl, interval)
	b.waitFor(15*time.Second, "the checker's view of the dead target", `!!document.querySelector('[data-checker="hc-console"] tr[data-target="bot-`+strconv.Itoa(victim.Port)+`"].state-unhealthy')`)
	if got := b.eval(rowState(f.Primaries()[0].Name())); got != "ready" {
		t.Fatalf("the other primary is %q", got)
	}
	b.screenshot("fleet-dead")

	// Traffic, from the instances' own counters.
	for i := range 5 {
		f.MustChat(t, "traffic", fmt.Sprint("traffic turn ", i))
	}
	b.run(chromedp.Click(chromedp.CSS(`#nav a[data-view="traffic"]`)), chromedp.WaitVisible(chromedp.CSS("#view-traffic")))
	b.waitFor(15*time.Second, "the five turns in the traffic view",
		`[...document.querySelectorAll("#traffic tbody tr")].reduce((n, r) => n + Number(r.lastChild.textContent), 0) >= 5 && document.getElementById("traffic-cards").textContent.includes("ms")`)
	b.screenshot("traffic")

	// A conversation made through the API: look it up, clear it.
	f.MustChat(t, "browser-conv", "first message")
	f.MustChat(t, "browser-conv", "second message")
	b.run(chromedp.Click(chromedp.CSS(`#nav a[data-view="conversations"]`)), chromedp.WaitVisible(chromedp.CSS("#lookup")),
		chromedp.SendKeys(chromedp.CSS("#lookup-session"), "browser-conv"), chromedp.Click(chromedp.CSS("#lookup button")))
	b.waitFor(10*time.Second, "the conversation's two turns", `document.getElementById("conv-turns").textContent === "2"`)
	if got := b.eval(`document.querySelectorAll("#conv-entries li").length`); got != "4" {
		t.Fatalf("%s entries shown, want 4", got)
	}
	if got := b.eval(`document.getElementById("conv-key").textContent`); got != "api:default:session:browser-conv" {
		t.Fatalf("key %q", got)
	}
	b.screenshot("conversation")
	b.run(chromedp.Click(chromedp.CSS("#conv-clear")), chromedp.Click(chromedp.CSS("#conv-clear"))) // the second click confirms
	b.waitFor(10*time.Second, "the cleared conversation", `document.getElementById("conv-turns").textContent === "0"`)
	if r := f.MustChat(t, "browser-conv", "after the clear"); r.Turn != 1 {
		t.Fatalf("the turn after the clear is %d, want 1", r.Turn)
	}

	// A dead letter (the platform refuses the reply): requeue it once the
	// platform accepts.
	if status, _ := telegramUpdate(t, f, 4242, "a reply the platform refuses"); status != 200 {
		t.Fatalf("webhook: %d", status)
	}
	b.run(chromedp.Click(chromedp.CSS(`#nav a[data-view="queues"]`)), chromedp.WaitVisible(chromedp.CSS("#view-queues")))
	b.waitFor(30*time.Second, "the dead letter with its reason", `[...document.querySelectorAll("#dead tbody tr")].some(r => r.textContent.includes("chat not found"))`)
	b.screenshot("queues")
	tg.accept.Store(true)
	b.run(chromedp.Click(chromedp.CSS("#dead tbody tr button.requeue")))
	b.waitFor(15*time.Second, "the dead letter gone", `document.querySelectorAll("#dead tbody tr").length === 0`)
	testenv.WaitFor(t, 30*time.Second, "the requeued job's reply", func() bool { return tg.sent.Load() == 1 })
	if !strings.Contains(b.eval(`document.getElementById("status").textContent`), "requeued") {
		t.Errorf("no confirmation of the requeue on the page")
	}

	// A key made in the page: its secret, shown once, serves a turn
	// through the fleet; revoked in the page, it is refused everywhere.
	b.run(chromedp.Click(chromedp.CSS(`#nav a[data-view="keys"]`)), chromedp.WaitVisible(chromedp.CSS("#key-form")),
		chromedp.SendKeys(chromedp.CSS("#key-name"), "browser test"), chromedp.SendKeys(chromedp.CSS("#key-owner"), "team-ops"),
		chromedp.SendKeys(chromedp.CSS("#key-expires"), "30d"), chromedp.SendKeys(chromedp.CSS("#key-ips"), "127.0.0.1"),
		chromedp.SendKeys(chromedp.CSS("#key-rps"), "50"), chromedp.SendKeys(chromedp.CSS("#key-in-flight"), "4"),
		chromedp.Click(chromedp.CSS("#key-form button")))
	b.waitFor(15*time.Second, "the new key's secret", `document.getElementById("secret-value").textContent.startsWith("bf_") && !document.getElementById("secret").hidden`)
	secret := b.eval(`document.getElementById("secret-value").textContent`)
	id := b.eval(`document.getElementById("secret-key").textContent`)
	keyRow := `document.querySelector('` + keyCSS(id) + `')`
	b.waitFor(10*time.Second, "the new key in the list", `!!`+keyRow+` && `+keyRow+`.querySelector("td.state").textContent === "active"`)
	if got := b.eval(keyRow + `.textContent`); !strings.Contains(got, "team-ops") || !strings.Contains(got, "50/s · 4 in flight") || !strings.Contains(got, "127.0.0.1/32") {
		t.Fatalf("the key's row: %q", got)
	}
	b.screenshot("keys-created")
	r, err := f.Chat("keys-conv", "hello with a key made in the console", "Authorization", "Bearer "+secret)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("a turn with the console's key: %+v %v", r, err)
	}
	b.run(chromedp.Click(chromedp.CSS("#secret-done")))
	if got := b.eval(`document.getElementById("secret").hidden + " " + document.documentElement.outerHTML.includes(` + strconv.Quote(secret) + `)`); got != "true false" {
		t.Fatalf("after dismissal, hidden and in the page: %s", got)
	}
	b.run(chromedp.Click(chromedp.CSS(keyCSS(id)+" button.danger:last-child")), chromedp.Click(chromedp.CSS(keyCSS(id)+" button.danger:last-child"))) // the second click confirms
	b.waitFor(15*time.Second, "the key revoked in the list", keyRow+`.querySelector("td.state").textContent === "revoked"`)
	if got := b.eval(`document.getElementById("status").textContent`); !strings.Contains(got, "revoked "+id) {
		t.Errorf("no confirmation of the revocation on the page: %q", got)
	}
	b.screenshot("keys")
	r, err = f.Chat("keys-conv", "and after the revocation", "Authorization", "Bearer "+secret)
	if err != nil || r.Status != http.StatusUnauthorized || r.Error.Code != "key_revoked" {
		t.Fatalf("a turn with the revoked key: %+v %v, want 401 key_revoked", r, err)
	}
}

// keyCSS selects the Keys view's row of key id.
func keyCSS(id string) string { return `#keys tr[data-key-id="` + id + `"]` }
