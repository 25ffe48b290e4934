package healthcheck

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/confparse"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/botfleet/botfleet/pkg/proc"
)

// Restart strategies.
const (
	// StrategyNone only reports the target; nothing is ever restarted. It is
	// the strategy of a target without a restart section.
	StrategyNone = "none"
	// StrategySupervise starts the process itself, owns it, and restarts it
	// when its liveness fails or it exits.
	StrategySupervise = "supervise"
	// StrategyPIDFile stops the process named by a pid file (started by
	// someone else, e.g. start_multiple_instances.sh) and starts the
	// configured command, writing the new pid to the file.
	StrategyPIDFile = "pidfile"
	// StrategyCommand runs a shell command template, such as
	// "systemctl restart bot@{{.Port}}".
	StrategyCommand = "command"
)

// On-exit policies: what SIGTERM does to supervised instances.
const (
	// OnExitLeave leaves supervised instances running when the checker exits.
	OnExitLeave = "leave"
	// OnExitStop stops supervised instances gracefully when the checker exits.
	OnExitStop = "stop"
)

// Alert kinds: the body format of the alert webhook.
const (
	// AlertGeneric posts {"target", "state", "message", ...} as JSON.
	AlertGeneric = "generic"
	// AlertDingTalk posts a DingTalk robot text message, signed when a
	// secret is set.
	AlertDingTalk = "dingtalk"
	// AlertFeishu posts a Feishu (Lark) robot text message, signed when a
	// secret is set.
	AlertFeishu = "feishu"
)

// Config is the health-checker's configuration. LoadConfig reads it from a
// YAML file; DefaultConfig returns its defaults.
type Config struct {
	// Listen is the address of /status and /metrics. Default
	// "127.0.0.1:9090"; empty means do not listen.
	Listen string `yaml:"listen"`
	// AddrFile, when set, gets the address Listen is bound to once the
	// checker listens (for port 0: the port it got); written once at start,
	// a reload does not move it. Default empty: no file.
	AddrFile string `yaml:"addr_file"`
	// OnExit is what SIGTERM does to supervised instances: OnExitLeave
	// (default) or OnExitStop.
	OnExit string `yaml:"on_exit"`
	// Alert is where a target marked failed is reported.
	Alert Alert `yaml:"alert"`
	// Registry is where the checker publishes its targets' states for the
	// fleet's console (pkg/registry); off without a Redis address.
	Registry Registry `yaml:"registry"`
	// Defaults are the settings every target inherits.
	Defaults Settings `yaml:"-"`
	// Targets are the instances to check.
	Targets []Target `yaml:"-"`
}

// Alert configures the alert webhook.
type Alert struct {
	// Webhook is the URL the alert is POSTed to; empty (default) means the
	// alert is only logged.
	Webhook string `yaml:"webhook"`
	// Kind is the body format: AlertGeneric (default), AlertDingTalk or
	// AlertFeishu.
	Kind string `yaml:"kind"`
	// Secret is the robot's signing secret; empty (default) means unsigned.
	Secret string `yaml:"secret"`
}

// Registry is the fleet registry the checker publishes to.
type Registry struct {
	// Redis is the fleet's Redis, host:port; empty (default) publishes
	// nothing.
	Redis string `yaml:"redis"`
	// Password and DB of that Redis; KeyPrefix the fleet's key prefix
	// (redis.key_prefix of the instances, default "bf").
	Password  string `yaml:"password"`
	DB        int    `yaml:"db"`
	KeyPrefix string `yaml:"key_prefix"`
	// Interval is the time between publications. Default 2s.
	Interval confparse.Duration `yaml:"interval"`
	// Name names the checker in the registry. Default "healthchecker".
	Name string `yaml:"name"`
}

// Settings are the probe and restart settings of a target. Every target
// inherits Config.Defaults and may override any of them.
type Settings struct {
	// Period is the time between probes. Default 2s.
	Period time.Duration
	// Timeout bounds one probe. Default 1s.
	Timeout time.Duration
	// InitialDelay is the wait before the first probe. Default 1s.
	InitialDelay time.Duration
	// Jitter is the most random extra delay added before the first probe.
	// Default 500ms.
	Jitter time.Duration
	// FailureThreshold is how many consecutive failures mark a probe
	// failed. Default 3.
	FailureThreshold int
	// SuccessThreshold is how many consecutive successes mark a probe
	// succeeded. Default 1.
	SuccessThreshold int
	// Grace is the time between SIGTERM and SIGKILL when stopping an
	// instance. Default 10s.
	Grace time.Duration
	// StartupTimeout is how long, after a restart, liveness is held until
	// the new process answers; past it the start failed. Default 30s.
	StartupTimeout time.Duration
	// Backoff is the CrashLoop backoff between consecutive restarts.
	Backoff BackoffConfig
	// Budget caps restarts per window.
	Budget BudgetConfig
}

// BackoffConfig is the CrashLoop backoff: consecutive restarts wait
// Initial, 2×Initial, 4×Initial … up to Max; a run that stays healthy for
// ResetAfter resets it.
type BackoffConfig struct {
	// Initial is the delay before the first restart. Default 1s.
	Initial time.Duration
	// Max caps the delay. Default 60s.
	Max time.Duration
	// ResetAfter is how long a run must stay healthy to reset the delay.
	// Default 120s.
	ResetAfter time.Duration
}

// BudgetConfig is the restart budget: a target that needs more than
// Restarts restarts within Window is marked failed.
type BudgetConfig struct {
	// Restarts is the most restarts allowed within Window. Default 5.
	Restarts int
	// Window is the sliding window. Default 10m.
	Window time.Duration
}

// Target is one checked instance.
type Target struct {
	// Name identifies the target in logs, /status, metrics and templates.
	Name string
	// Liveness is the URL whose failure restarts the instance (required).
	Liveness string
	// Readiness is the URL reported as readiness; optional, never restarts.
	Readiness string
	// Restart is how the instance is restarted.
	Restart Restart
	// Settings are the probe and restart settings, Config.Defaults
	// overridden by the target's own keys.
	Settings
	// Port is the port of the Liveness URL (derived).
	Port int
}

// Restart says how a target is restarted. Relative paths (Command[0], Log,
// PIDFile) are relative to Dir, and Dir to the checker's working directory.
type Restart struct {
	// Strategy is StrategySupervise, StrategyPIDFile, StrategyCommand or
	// StrategyNone (the default: report only).
	Strategy string `yaml:"strategy"`
	// Command is the argv that starts the instance (supervise, pidfile);
	// every element, like every Env value, is a text/template with .Name
	// and .Port.
	Command []string `yaml:"command"`
	// Env is added to the checker's environment for the started process.
	Env map[string]string `yaml:"env"`
	// Dir is the working directory of the started process. Default ".".
	Dir string `yaml:"dir"`
	// Log is the file the process's stdout and stderr are appended to;
	// empty means discarded (the command strategy logs its output instead).
	Log string `yaml:"log"`
	// PIDFile holds the instance's pid (pidfile: required; supervise:
	// optional, lets a restarted checker adopt a running instance).
	PIDFile string `yaml:"pidfile"`
	// Run is the command strategy's shell template, run with sh -c.
	Run string `yaml:"run"`
}

// DefaultSettings returns the built-in defaults of Settings.
func DefaultSettings() Settings {
	return Settings{
		Period:           2 * time.Second,
		Timeout:          time.Second,
		InitialDelay:     time.Second,
		Jitter:           500 * time.Millisecond,
		FailureThreshold: 3,
		SuccessThreshold: 1,
		Grace:            10 * time.Second,
		StartupTimeout:   30 * time.Second,
		Backoff:          BackoffConfig{Initial: time.Second, Max: 60 * time.Second, ResetAfter: 120 * time.Second},
		Budget:           BudgetConfig{Restarts: 5, Window: 10 * time.Minute},
	}
}

// DefaultConfig returns a Config with every default and no targets.
func DefaultConfig() *Config {
	return &Config{
		Listen:   "127.0.0.1:9090",
		OnExit:   OnExitLeave,
		Alert:    Alert{Kind: AlertGeneric},
		Registry: Registry{KeyPrefix: keyspace.DefaultPrefix, Interval: confparse.Duration(2 * time.Second), Name: "healthchecker"},
		Defaults: DefaultSettings(),
	}
}

// NewTarget returns a target named name with the given liveness URL, the
// settings s and no restart (report only). Call Config.Validate after
// adding it.
func NewTarget(name, liveness string, s Settings) Target {
	port, _ := urlPort(liveness) // a bad URL is Validate's to report
	return Target{Name: name, Liveness: liveness, Settings: s, Port: port, Restart: Restart{Strategy: StrategyNone, Dir: "."}}
}

// LoadConfig reads the YAML file at path, applies the defaults and
// validates the result. Unknown keys and invalid values fail with one line
// naming the key.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: config %s: %s", path, confparse.OneLine(err))
	}
	c, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("healthcheck: config %s: %s", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("healthcheck: config %s: %w", path, err)
	}
	return c, nil
}

// Addr returns the address the checker that c configures serves /status
// on: the one in AddrFile once it has been written (with port 0 the only
// place the port is known), else Listen.
func (c *Config) Addr() string {
	if c.AddrFile != "" {
		if a, err := proc.ReadAddr(c.AddrFile); err == nil && a != "" {
			return a
		}
	}
	return c.Listen
}

// Validate checks c and returns an error naming the first bad key; it
// changes nothing. An empty OnExit, Alert.Kind, Restart.Strategy or
// Restart.Dir means its default.
func (c *Config) Validate() error {
	if c.OnExit != "" && c.OnExit != OnExitLeave && c.OnExit != OnExitStop {
		return fmt.Errorf("on_exit: must be %q or %q, got %q", OnExitLeave, OnExitStop, c.OnExit)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("listen: %q is not host:port", c.Listen)
		}
	} else if c.AddrFile != "" {
		return fmt.Errorf("addr_file: %q is set but listen is empty (nothing to listen on)", c.AddrFile)
	}
	switch c.Alert.Kind {
	case "", AlertGeneric, AlertDingTalk, AlertFeishu:
	default:
		return fmt.Errorf("alert.kind: must be one of generic, dingtalk, feishu, got %q", c.Alert.Kind)
	}
	if c.Alert.Webhook != "" {
		if u, err := url.Parse(c.Alert.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("alert.webhook: %q is not an http(s) URL", c.Alert.Webhook)
		}
	}
	if r := c.Registry; r.Redis != "" {
		if _, _, err := net.SplitHostPort(r.Redis); err != nil {
			return fmt.Errorf("registry.redis: %q is not host:port", r.Redis)
		}
		if time.Duration(r.Interval) < 100*time.Millisecond {
			return fmt.Errorf("registry.interval: must be at least 100ms, got %s", time.Duration(r.Interval))
		}
		if r.Name == "" || strings.ContainsAny(r.Name, " \t\n") {
			return fmt.Errorf("registry.name: a name without spaces is required, got %q", r.Name)
		}
	}
	if err := c.Defaults.validate("defaults"); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		key := fmt.Sprintf("targets[%d]", i)
		if t.Name != "" {
			key = fmt.Sprintf("targets[%d] (%s)", i, t.Name)
		}
		if err := t.validate(key); err != nil {
			return err
		}
		if seen[t.Name] {
			return fmt.Errorf("%s.name: duplicate name %q", key, t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

func (s Settings) validate(key string) error {
	durations := []struct {
		name string
		d    time.Duration
		min  time.Duration
	}{
		{"period", s.Period, time.Millisecond},
		{"timeout", s.Timeout, time.Millisecond},
		{"initial_delay", s.InitialDelay, 0},
		{"jitter", s.Jitter, 0},
		{"grace", s.Grace, 0},
		{"startup_timeout", s.StartupTimeout, time.Millisecond},
		{"backoff.initial", s.Backoff.Initial, 0},
		{"backoff.max", s.Backoff.Max, 0},
		{"backoff.reset_after", s.Backoff.ResetAfter, 0},
		{"budget.window", s.Budget.Window, time.Millisecond},
	}
	for _, d := range durations {
		if d.d < d.min {
			return fmt.Errorf("%s.%s: must be at least %s, got %s", key, d.name, d.min, d.d)
		}
	}
	if s.Backoff.Max < s.Backoff.Initial {
		return fmt.Errorf("%s.backoff.max: must be at least backoff.initial (%s), got %s", key, s.Backoff.Initial, s.Backoff.Max)
	}
	if s.FailureThreshold < 1 {
		return fmt.Errorf("%s.failure_threshold: must be at least 1, got %d", key, s.FailureThreshold)
	}
	if s.SuccessThreshold < 1 {
		return fmt.Errorf("%s.success_threshold: must be at least 1, got %d", key, s.SuccessThreshold)
	}
	if s.Budget.Restarts < 0 {
		return fmt.Errorf("%s.budget.restarts: must not be negative, got %d", key, s.Budget.Restarts)
	}
	return nil
}

func (t Target) validate(key string) error {
	if t.Name == "" {
		return fmt.Errorf("%s.name: required", key)
	}
	if t.Liveness == "" {
		return fmt.Errorf("%s.liveness: required (the /health URL)", key)
	}
	port, err := urlPort(t.Liveness)
	if err != nil {
		return fmt.Errorf("%s.liveness: %w", key, err)
	}
	if t.Port != port {
		return fmt.Errorf("%s.port: %d is not the liveness URL's port %d (make targets with NewTarget)", key, t.Port, port)
	}
	if t.Readiness != "" {
		if _, err := urlPort(t.Readiness); err != nil {
			return fmt.Errorf("%s.readiness: %w", key, err)
		}
	}
	if err := t.Settings.validate(key); err != nil {
		return err
	}
	r := t.Restart
	switch r.Strategy {
	case "", StrategyNone:
	case StrategySupervise:
		if len(r.Command) == 0 {
			return fmt.Errorf("%s.restart.command: required by strategy supervise", key)
		}
	case StrategyPIDFile:
		if len(r.Command) == 0 {
			return fmt.Errorf("%s.restart.command: required by strategy pidfile", key)
		}
		if r.PIDFile == "" {
			return fmt.Errorf("%s.restart.pidfile: required by strategy pidfile", key)
		}
	case StrategyCommand:
		if strings.TrimSpace(r.Run) == "" {
			return fmt.Errorf("%s.restart.run: required by strategy command", key)
		}
	default:
		return fmt.Errorf("%s.restart.strategy: must be one of supervise, pidfile, command, none, got %q", key, r.Strategy)
	}
	for i, a := range r.Command {
		if _, err := t.render(a); err != nil {
			return fmt.Errorf("%s.restart.command[%d]: %w", key, i, err)
		}
	}
	for k, v := range r.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%s.restart.env: bad variable name %q", key, k)
		}
		if _, err := t.render(v); err != nil {
			return fmt.Errorf("%s.restart.env.%s: %w", key, k, err)
		}
	}
	if r.Run != "" {
		if _, err := t.render(r.Run); err != nil {
			return fmt.Errorf("%s.restart.run: %w", key, err)
		}
	}
	return nil
}

// urlPort returns the port of an http(s) URL, defaulting by scheme.
func urlPort(raw string) (int, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, fmt.Errorf("%q is not an http(s) URL", raw)
	}
	p := u.Port()
	if p == "" {
		if u.Scheme == "https" {
			return 443, nil
		}
		return 80, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q has a bad port", raw)
	}
	return n, nil
}
