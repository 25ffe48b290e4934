package fleet

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// The secrets the package's tests configure. TestMain greps the logs of
// every process the run started — instances, health checkers, nginx — for
// each of them (testenv.CheckSecrets).
const (
	apiKey   = "fleet-test-key"
	adminKey = "fleet-admin-key-0123456789"
	tgToken  = "123:fleet-telegram-token"
	tgSecret = "fleet-telegram-secret"
	modelKey = "fleet-model-service-key"
)

var (
	root   string // the module root, where scripts/ is
	binDir string // bot, fleetctl and healthchecker built once for the package
)

func TestMain(m *testing.M) {
	testenv.NoteSecret(apiKey, adminKey, tgToken, tgSecret, modelKey)
	os.Exit(testenv.CheckSecrets(testMain(m), os.Stderr))
}

func testMain(m *testing.M) int {
	var err error
	root, err = testenv.ModuleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 1
	}
	binDir, err = os.MkdirTemp("", "botfleet-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// Every test that needs the health checker fails when it does not
	// build: no test runs without what it claims to check.
	if err := testenv.BuildCommands(binDir, "./cmd/bot", "./cmd/fleetctl", "./cmd/healthchecker"); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 1
	}
	// The scripts find fleetctl here (they would take bin/fleetctl).
	os.Setenv("FLEETCTL", filepath.Join(binDir, "fleetctl"))
	return m.Run()
}

// member is one instance of a test fleet.
type member struct {
	Port   int
	Weight int // 0 for the backup
}

// Name is the instance name the bot reports: bot-instance-$PORT.
func (m member) Name() string { return "bot-instance-" + strconv.Itoa(m.Port) }

// testFleet is redis-server + bot instances started by the scripts + nginx,
// all on free loopback ports, owned by one test.
type testFleet struct {
	t        *testing.T
	Redis    *testenv.Redis
	Members  []member // primaries in order, then the backup if any
	Nginx    *testenv.Nginx
	runDir   string
	logDir   string
	extraEnv []string
	client   *http.Client
}

// startFleet starts Redis, one instance per weight (primaries) plus a backup
// when backup is set, and nginx in front of them. env (KEY=VALUE) is added
// to the instances' environment.
func startFleet(t *testing.T, weights []int, backup bool, env ...string) *testFleet {
	t.Helper()
	dir := t.TempDir()
	f := &testFleet{
		t: t, Redis: testenv.StartRedis(t), extraEnv: env,
		runDir: filepath.Join(dir, "run"), logDir: filepath.Join(dir, "logs"),
		// The timeout only guards against a hang; the tests assert no time.
		client: &http.Client{Timeout: 60 * time.Second},
	}
	seen := map[int]bool{}
	port := func() int {
		for {
			p := testenv.FreePort(t)
			if !seen[p] {
				seen[p] = true
				return p
			}
		}
	}
	for _, w := range weights {
		f.Members = append(f.Members, member{Port: port(), Weight: w})
	}
	if backup {
		f.Members = append(f.Members, member{Port: port()})
	}
	t.Cleanup(f.stopAll) // after nginx (cleanups run last-in first-out)
	f.Script("start_multiple_instances.sh", f.ports(f.Members)...)

	var prim, back []string
	for _, m := range f.Members {
		if m.Weight > 0 {
			prim = append(prim, fmt.Sprintf("%d:%d", m.Port, m.Weight))
		} else {
			back = append(back, strconv.Itoa(m.Port))
		}
	}
	conf := f.Script("render_nginx.sh", "PRIMARIES="+strings.Join(prim, " "), "BACKUPS="+strings.Join(back, " "),
		"LISTEN="+testenv.Addr(port()))
	f.Nginx = testenv.StartNginx(t, conf)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx error log:\n%s", f.Nginx.ErrorLog())
		}
	})
	return f
}

func (f *testFleet) ports(ms []member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, strconv.Itoa(m.Port))
	}
	return out
}

// Primaries returns the members with a weight.
func (f *testFleet) Primaries() []member {
	var out []member
	for _, m := range f.Members {
		if m.Weight > 0 {
			out = append(out, m)
		}
	}
	return out
}

// Backup returns the backup member (Port 0 when there is none).
func (f *testFleet) Backup() member {
	for _, m := range f.Members {
		if m.Weight == 0 {
			return m
		}
	}
	return member{}
}

// env is the environment of every script: the fleet's folders, Redis and
// key, and nothing of the developer's own fleet settings.
func (f *testFleet) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BOT_"), strings.HasPrefix(k, "REDIS_"), k == "API_KEY", k == "PORTS",
			k == "CONFIG", k == "WEB_PORT", k == "INSTANCE_NAME", k == "LISTEN", k == "ADDR_FILE", k == "PREFIX",
			k == "PRIMARIES", k == "BACKUPS", k == "DAEMON", k == "GRACE", k == "SETTLE":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"BOT_BIN="+filepath.Join(binDir, "bot"), "RUN_DIR="+f.runDir, "LOG_DIR="+f.logDir, "CONFIG=",
		"REDIS_HOST=127.0.0.1", "REDIS_PORT="+strconv.Itoa(f.Redis.Port), "API_KEY="+apiKey,
		"GRACE=10", "BOT_LOG_FORMAT=text",
		// Every client of these tests is 127.0.0.1: a sequential stream can
		// outrun the per-IP limit (1000/s), which is not under test here.
		"BOT_RATELIMIT_PER_IP=0")
	return append(env, f.extraEnv...)
}

// Script runs scripts/NAME with args; arguments of the form KEY=VALUE are
// added to its environment instead. It fails the test when the script
// fails, and returns its standard output.
func (f *testFleet) Script(name string, args ...string) string {
	f.t.Helper()
	out, err := f.script(name, args...)
	if err != nil {
		f.t.Fatalf("scripts/%s %v: %v", name, args, err)
	}
	return out
}

func (f *testFleet) script(name string, args ...string) (string, error) {
	env := f.env()
	var argv []string
	for _, a := range args {
		if strings.Contains(a, "=") {
			env = append(env, a)
		} else {
			argv = append(argv, a)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", name), argv...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Pid returns the pid in the instance's pid file (0 when there is none).
func (f *testFleet) Pid(port int) int {
	b, err := os.ReadFile(filepath.Join(f.runDir, fmt.Sprintf("instance_%d.pid", port)))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stopAll stops every instance with stop_instances.sh, then SIGKILLs any
// pid a pid file still names, so that no test leaves a process behind; the
// instances' logs join the run's (testenv.RunLog).
func (f *testFleet) stopAll() {
	if _, err := f.script("stop_instances.sh", "GRACE=5"); err != nil {
		f.t.Logf("stop_instances.sh: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(f.runDir, "instance_*.pid"))
	for _, file := range files {
		b, _ := os.ReadFile(file)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	testenv.CollectLogFiles(f.logDir)
	if f.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(f.logDir, "*"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			f.t.Logf("%s:\n%s", filepath.Base(l), b)
		}
	}
}

// chatReply is POST /v1/chat's answer, or its error.
type chatReply struct {
	Status     int
	Header     http.Header
	Reply      string `json:"reply"`
	SessionID  string `json:"session_id"`
	Turn       int    `json:"turn"`
	Instance   string `json:"instance"`
	Error      struct{ Code, Message string }
	RetryAfter string
	Sent       time.Time // when the request was sent
	Elapsed    time.Duration
}

// Chat sends one message through nginx. hdr are extra header name, value
// pairs. A transport error is returned as an error (Status 0).
func (f *testFleet) Chat(session, message string, hdr ...string) (chatReply, error) {
	body, _ := json.Marshal(map[string]string{"message": message, "session_id": session})
	if session == "" {
		body, _ = json.Marshal(map[string]string{"message": message})
	}
	req, err := http.NewRequest(http.MethodPost, f.Nginx.URL("/v1/chat"), bytes.NewReader(body))
	if err != nil {
		return chatReply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		return chatReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return chatReply{}, err
	}
	r := chatReply{Status: resp.StatusCode, Header: resp.Header, RetryAfter: resp.Header.Get("Retry-After"), Sent: start, Elapsed: time.Since(start)}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &r); err != nil {
			return r, fmt.Errorf("decode %q: %v", b, err)
		}
	} else if err := json.Unmarshal(b, &e); err == nil {
		r.Error = e.Error
	} else {
		r.Error.Message = string(b)
	}
	return r, nil
}

// MustChat sends one message and fails t unless it is answered 200.
func (f *testFleet) MustChat(t *testing.T, session, message string) chatReply {
	t.Helper()
	r, err := f.Chat(session, message)
	if err != nil {
		t.Fatalf("chat: %v", err)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("chat: %d %+v", r.Status, r.Error)
	}
	return r
}

// stream sends sequential turns of one conversation through nginx until
// stop is closed (and at least min turns were sent), and reports every
// answer in order.
type stream struct {
	Session string
	Replies []chatReply
	Errors  []string // transport errors and non-200 answers, with the turn
}

func (f *testFleet) runStream(stop <-chan struct{}, min int, progress chan<- int) *stream {
	s := &stream{Session: newID()}
	for i := 1; ; i++ {
		if i > min {
			select {
			case <-stop:
				return s
			default:
			}
		}
		// An Idempotency-Key per turn, as a well-behaved client sends:
		// with it net/http safely resends a POST whose keep-alive
		// connection nginx closed under it (a reload), and the bot
		// answers a resend without running the turn twice.
		r, err := f.Chat(s.Session, fmt.Sprintf("turn %d", i), "Idempotency-Key", fmt.Sprintf("%s-%d", s.Session, i))
		switch {
		case err != nil:
			s.Errors = append(s.Errors, fmt.Sprintf("turn %d: %v", i, err))
		case r.Status != http.StatusOK:
			s.Errors = append(s.Errors, fmt.Sprintf("turn %d: %d %s %s", i, r.Status, r.Error.Code, r.Error.Message))
		default:
			s.Replies = append(s.Replies, r)
		}
		if progress != nil {
			select {
			case progress <- i:
			default:
			}
		}
	}
}

// checkTurns fails the test unless the stream got no error and its turns
// are exactly 1..N in order.
func checkTurns(t *testing.T, s *stream) {
	t.Helper()
	if len(s.Errors) > 0 {
		t.Errorf("%d failed requests, want 0: %v", len(s.Errors), s.Errors)
	}
	for i, r := range s.Replies {
		if r.Turn != i+1 {
			t.Errorf("reply %d has turn %d (instance %s); want turns exactly 1..%d, no gap or repeat",
				i+1, r.Turn, r.Instance, len(s.Replies))
			return
		}
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// listening reports whether something accepts connections on 127.0.0.1:port.
func listening(port int) bool {
	c, err := net.DialTimeout("tcp", testenv.Addr(port), 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// processAlive reports whether pid is a live (not zombie) process.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && !bytes.HasPrefix(bytes.TrimSpace(b[i+1:]), []byte("Z"))
}
