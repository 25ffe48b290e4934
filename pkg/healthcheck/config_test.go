package healthcheck

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/testenv"
)

func TestLoadConfigInheritsAndOverrides(t *testing.T) {
	p := testenv.WriteFile(t, "hc.yaml", `
listen: 127.0.0.1:9191
on_exit: stop
alert: {webhook: "http://127.0.0.1:1/hook", kind: dingtalk, secret: s3cr3t}
defaults:
  period: 500ms
  failure_threshold: 4
  backoff: {initial: 200ms}
targets:
  - name: a
    liveness: http://127.0.0.1:8080/health
    readiness: http://127.0.0.1:8080/ready
    period: 100ms
    backoff: {max: 5s}
    restart:
      strategy: supervise
      command: ["bin/bot", "--port", "{{.Port}}"]
      env: {WEB_PORT: "{{.Port}}", Mixed_Case: x}
  - name: b
    liveness: http://127.0.0.1:8081/health
`)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9191" || c.OnExit != OnExitStop || c.Alert.Kind != AlertDingTalk || c.Alert.Secret != "s3cr3t" {
		t.Fatalf("top level: %+v", c)
	}
	if len(c.Targets) != 2 {
		t.Fatalf("targets: %d", len(c.Targets))
	}
	a, b := c.Targets[0], c.Targets[1]
	if a.Period != 100*time.Millisecond || a.FailureThreshold != 4 || a.Timeout != time.Second {
		t.Errorf("a settings: %+v", a.Settings)
	}
	if a.Backoff.Initial != 200*time.Millisecond || a.Backoff.Max != 5*time.Second || a.Backoff.ResetAfter != 120*time.Second {
		t.Errorf("a backoff: %+v", a.Backoff)
	}
	if b.Period != 500*time.Millisecond || b.Backoff.Max != 60*time.Second || b.Restart.Strategy != StrategyNone {
		t.Errorf("b: %+v", b)
	}
	if a.Port != 8080 || b.Port != 8081 {
		t.Errorf("ports %d %d", a.Port, b.Port)
	}
	if a.Restart.Env["WEB_PORT"] != "{{.Port}}" || a.Restart.Env["Mixed_Case"] != "x" {
		t.Errorf("env keys lost their case: %v", a.Restart.Env)
	}
	if got, _ := a.render(a.Restart.Command[2]); got != "8080" {
		t.Errorf("template: %q", got)
	}
}

// With listen on port 0, Addr is listen until the checker has written the
// address it got to addr_file, and that address after.
func TestAddrIsTheAddrFilesOnceWritten(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "hc.addr")
	c, err := LoadConfig(testenv.WriteFile(t, "hc.yaml", "listen: 127.0.0.1:0\naddr_file: "+addrFile+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.AddrFile != addrFile || c.Addr() != "127.0.0.1:0" {
		t.Fatalf("addr_file %q, Addr %q before the file is written", c.AddrFile, c.Addr())
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := proc.WriteAddr(addrFile, ln.Addr()); err != nil {
		t.Fatal(err)
	}
	if got := c.Addr(); got != ln.Addr().String() {
		t.Fatalf("Addr %q, want the bound %s", got, ln.Addr())
	}
	if c := DefaultConfig(); c.Addr() != "127.0.0.1:9090" {
		t.Fatalf("without addr_file Addr is %q, want listen", c.Addr())
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"listen: x\nbogus: 1\n", "bogus"},
		{"defaults: {peroid: 2s}\n", "defaults.peroid: unknown key"},
		{"targets: [{name: a, liveness: 'http://h:1/health', restart: {strategi: pidfile}}]\n", "strategi"},
		{"targets: [{name: a, liveness: 'http://h:1/health', perod: 1s}]\n", "targets[0].perod: unknown key"},
		{"targets: [{name: a}]\n", "targets[0] (a).liveness: required"},
		{"targets: [{name: a, liveness: 'ftp://h/x'}]\n", "targets[0] (a).liveness"},
		{"targets: [{name: a, liveness: 'http://h:1/health', restart: {strategy: magic}}]\n", "restart.strategy: must be one of"},
		{"targets: [{name: a, liveness: 'http://h:1/health', restart: {strategy: supervise}}]\n", "restart.command: required by strategy supervise"},
		{"targets: [{name: a, liveness: 'http://h:1/health', restart: {strategy: pidfile, command: [x]}}]\n", "restart.pidfile: required"},
		{"targets: [{name: a, liveness: 'http://h:1/health', restart: {strategy: command}}]\n", "restart.run: required"},
		{"targets: [{name: a, liveness: 'http://h:1/health', failure_threshold: 0}]\n", "failure_threshold: must be at least 1"},
		{"defaults: {success_threshold: 0}\n", "defaults.success_threshold: must be at least 1"},
		{"defaults: {period: 2}\n", "bare number"},
		{"defaults: {backoff: {initial: 2s, max: 1s}}\n", "backoff.max"},
		{"on_exit: kill\n", "on_exit"},
		{"listen: ''\naddr_file: run/hc.addr\n", "addr_file: \"run/hc.addr\" is set but listen is empty"},
		{"alert: {kind: slack}\n", "alert.kind"},
		{"targets: [{name: a, liveness: 'http://h:1/health'}, {name: a, liveness: 'http://h:2/health'}]\n", "duplicate name"},
		{"targets: [{name: a, liveness: 'http://h:1/health', restart: {strategy: supervise, command: ['{{.Nope}}']}}]\n", "command[0]"},
	}
	for _, tc := range cases {
		_, err := LoadConfig(testenv.WriteFile(t, "hc.yaml", tc.yaml))
		if err == nil {
			t.Errorf("%q: no error", tc.yaml)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q, want one line containing %q", tc.yaml, err, tc.want)
		}
	}
}

// TestExampleConfigAndUnits parses deploy/healthchecker.example.yaml with
// the loader and checks the systemd units' key lines.
func TestExampleConfigAndUnits(t *testing.T) {
	root := filepath.Join("..", "..")
	c, err := LoadConfig(filepath.Join(root, "deploy", "healthchecker.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9090" || c.AddrFile != "" || c.OnExit != OnExitLeave {
		t.Errorf("listen %q addr_file %q on_exit %q", c.Listen, c.AddrFile, c.OnExit)
	}
	if len(c.Targets) != 4 {
		t.Fatalf("want 4 targets, got %d", len(c.Targets))
	}
	for i, tg := range c.Targets {
		port := 8080 + i
		ps := strconv.Itoa(port)
		if tg.Port != port || tg.Restart.Strategy != StrategyPIDFile {
			t.Errorf("%s: port %d strategy %s", tg.Name, tg.Port, tg.Restart.Strategy)
		}
		if tg.Restart.PIDFile != "run/instance_"+ps+".pid" || tg.Restart.Log != "logs/instance_"+ps+".log" {
			t.Errorf("%s: pidfile %q log %q", tg.Name, tg.Restart.PIDFile, tg.Restart.Log)
		}
		var argv []string
		for _, a := range tg.Restart.Command {
			s, err := tg.render(a)
			if err != nil {
				t.Fatal(err)
			}
			argv = append(argv, s)
		}
		if strings.Join(argv, " ") != "bin/bot --port "+ps {
			t.Errorf("%s: command %q", tg.Name, argv)
		}
		if tg.Restart.Env["WEB_PORT"] != ps || tg.Restart.Env["INSTANCE_NAME"] != "bot-instance-"+ps {
			t.Errorf("%s: env %v", tg.Name, tg.Restart.Env)
		}
		if tg.Readiness == "" {
			t.Errorf("%s: no readiness", tg.Name)
		}
	}

	units := map[string][]string{
		"botfleet-healthchecker.service": {
			"Type=simple", "Restart=always", "ExecReload=/bin/kill -HUP $MAINPID",
			"ExecStart=/opt/botfleet/bin/healthchecker --config /etc/botfleet/healthchecker.yaml", "KillMode=process",
		},
		"bot@.service": {
			"Environment=WEB_PORT=%i", "Environment=INSTANCE_NAME=bot-instance-%i", "KillSignal=SIGTERM",
			"EnvironmentFile=-/etc/botfleet/bot.env", "TimeoutStopSec=",
		},
	}
	for name, want := range units {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			lines[strings.TrimSpace(l)] = true
		}
		for _, w := range want {
			found := lines[w]
			if strings.HasSuffix(w, "=") {
				found = strings.Contains(string(b), "\n"+w)
			}
			if !found {
				t.Errorf("%s: missing line %q", name, w)
			}
		}
		if name == "bot@.service" {
			// The bot drains within 15s; systemd must wait longer before SIGKILL.
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "TimeoutStopSec="); ok {
					if d, err := time.ParseDuration(strings.TrimSpace(v) + "s"); err != nil || d <= 15*time.Second {
						t.Errorf("TimeoutStopSec=%s does not cover the 15s shutdown grace", v)
					}
				}
			}
		}
		verifyUnit(t, name, b)
	}
}

// verifyUnit runs systemd-analyze verify on a copy of the unit whose
// binaries point at an existing executable, when systemd-analyze exists.
func verifyUnit(t *testing.T, name string, unit []byte) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze not on PATH; %s not verified", name)
		return
	}
	s := strings.NewReplacer("/opt/botfleet/bin/healthchecker", "/bin/true", "/opt/botfleet/bin/bot", "/bin/true").Replace(string(unit))
	file := name
	if strings.HasSuffix(name, "@.service") {
		file = strings.TrimSuffix(name, "@.service") + "@8080.service"
	}
	p := filepath.Join(t.TempDir(), file)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	var problems []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// The build host has no botfleet user or network-online target;
		// those are facts of the machine, not of the unit.
		if l == "" || strings.Contains(l, "network-online") || strings.Contains(l, "redis-server.service") {
			continue
		}
		problems = append(problems, l)
	}
	if err != nil || len(problems) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", file, err, strings.Join(problems, "\n"))
	}
}
