package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key is the API key of the bench fleet's instances.
const Key = "bench-key"

// fleet is the bench fleet: its own redis-server without persistence,
// mockllm with zero latency, bot instances on ports picked at start, and
// nginx servers rendered from nginx/nginx.conf.tmpl by
// scripts/render_nginx.sh: "fleet" in front of every instance, "single" in
// front of the first one only, and "baseline" in front of mockllm alone
// (scripts/render_nginx.sh, that is bin/fleetctl render-nginx).
// Every process runs in a process group of its own and is stopped by it.
type fleet struct {
	root, dir, bin string

	opts      fleetOptions
	redis     *child
	redisPort int
	rdb       *redis.Client
	mock      *child
	mockPort  int
	botPorts  []int // the primaries', then the backups'
	bots      []*child
	coldPort  int
	nginx     map[string]*child
	nginxPort map[string]int
	client    *http.Client
	backend   string // the running instances' backend
	config    botConfig
	checker   *child // the health checker of a supervised fleet
	hcPort    int
	proxies   map[int]*tcpProxy // instance port -> its way to Redis (fleetOptions.RedisProxies)
}

// fleetOptions shape a fleet.
type fleetOptions struct {
	// Instances is the number of primaries; Backups the backup
	// instances behind them (nginx's backup servers in "fleet").
	Instances, Backups int
	// AOF runs Redis with its append-only file (appendfsync everysec), so
	// that a Redis killed and started again keeps what it had, up to the
	// last second of writes.
	AOF bool
	// FleetOnly starts nginx's "fleet" server, not "single" and "baseline".
	FleetOnly bool
	// Supervised runs the instances as make fleet does, under the health
	// checker (see supervised.go).
	Supervised bool
	// RedisProxies puts a tcpProxy between each instance and Redis, to
	// slow down or cut one instance's (or every instance's) Redis.
	RedisProxies bool
	// CheckerEnv is added to scripts/render_healthchecker.sh's
	// environment (its alert robot: ALERT_WEBHOOK, ...).
	CheckerEnv []string
}

// botConfig is how the instances run.
type botConfig struct {
	// Backend is the LLM provider: "openai" (to mockllm) or "builtin".
	Backend string
	// MaxEntries is memory.max_entries.
	MaxEntries int
	// Env is added to every instance's environment (BOT_* settings).
	Env []string
}

// startFleet brings up Redis, mockllm and the nginx servers; the instances
// start with startBots. root is the repository (scripts/, nginx/), bin
// holds bot and mockllm, dir the logs and nginx prefixes.
func startFleet(ctx context.Context, root, bin, dir string, instances int) (*fleet, error) {
	return startFleetWith(ctx, root, bin, dir, fleetOptions{Instances: instances})
}

// startFleetWith is startFleet shaped by o.
func startFleetWith(ctx context.Context, root, bin, dir string, o fleetOptions) (_ *fleet, err error) {
	instances := o.Instances + o.Backups
	f := &fleet{root: root, dir: dir, bin: bin, opts: o, nginx: map[string]*child{}, nginxPort: map[string]int{},
		client: &http.Client{Timeout: 2 * time.Second}}
	defer func() {
		if err != nil {
			f.stop()
		}
	}()
	for _, d := range []string{dir, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ports := make([]int, 3+instances+3+1)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	f.redisPort, f.mockPort, f.coldPort, f.botPorts = ports[0], ports[1], ports[2], ports[3:3+instances]
	np := ports[3+instances : 3+instances+3]
	f.hcPort = ports[len(ports)-1]

	f.rdb = redis.NewClient(&redis.Options{Addr: addr(f.redisPort)})
	if err := f.startRedis(ctx); err != nil {
		return nil, err
	}
	if o.RedisProxies {
		f.proxies = map[int]*tcpProxy{}
		for _, port := range f.botPorts {
			if f.proxies[port], err = startProxy(addr(f.redisPort)); err != nil {
				return nil, err
			}
		}
	}
	f.mock, err = start(dir, "mockllm", nil, syscall.SIGTERM, filepath.Join(bin, "mockllm"), "--addr", addr(f.mockPort), "--latency", "0")
	if err != nil {
		return nil, fmt.Errorf("%w (build it: make build)", err)
	}
	if err := f.mock.waitFor(ctx, 10*time.Second, "/health", func() bool { return httpOK(f.client, f.mockURL()+"/health") }); err != nil {
		return nil, err
	}
	var all, backups []string
	for _, p := range f.botPorts[:o.Instances] {
		all = append(all, strconv.Itoa(p)+":1")
	}
	for _, p := range f.botPorts[o.Instances:] {
		backups = append(backups, strconv.Itoa(p))
	}
	servers := []struct{ name, prim, backups string }{
		{"fleet", strings.Join(all, " "), strings.Join(backups, " ")},
		{"single", strconv.Itoa(f.botPorts[0]) + ":1", ""},
		{"baseline", strconv.Itoa(f.mockPort) + ":1", ""},
	}
	if o.FleetOnly {
		servers = servers[:1]
	}
	for i, n := range servers {
		if err := f.startNginx(ctx, n.name, n.prim, n.backups, np[i]); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// startRedis starts redis-server on the fleet's port and data dir (again,
// after a kill: with AOF it loads its append-only file) and waits for PING.
func (f *fleet) startRedis(ctx context.Context) error {
	aof := []string{"--appendonly", "no"}
	if f.opts.AOF {
		aof = []string{"--appendonly", "yes", "--appendfsync", "everysec"}
	}
	p, err := start(f.dir, "redis", nil, syscall.SIGTERM, "redis-server", append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(f.redisPort),
		"--save", "", "--dir", f.dir, "--daemonize", "no"}, aof...)...)
	if err != nil {
		return fmt.Errorf("%w (install it: sudo scripts/install_deps.sh)", err)
	}
	f.redis = p
	return p.waitFor(ctx, 30*time.Second, "PING", func() bool { return f.rdb.Ping(ctx).Err() == nil })
}

// nginxPath finds nginx on PATH or in Debian's /usr/sbin.
func nginxPath() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", fmt.Errorf("nginx not found on PATH nor in /usr/sbin; install it: sudo scripts/install_deps.sh")
}

// startNginx renders the template for primaries and backups and runs nginx on port in
// the foreground from the prefix dir/nginx-NAME.
func (f *fleet) startNginx(ctx context.Context, name, primaries, backups string, port int) error {
	prefix := filepath.Join(f.dir, "nginx-"+name)
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return err
	}
	conf := filepath.Join(prefix, "nginx.conf")
	render := exec.CommandContext(ctx, filepath.Join(f.root, "scripts", "render_nginx.sh"), "-o", conf)
	render.Env = append(os.Environ(), "PRIMARIES="+primaries, "BACKUPS="+backups, "LISTEN="+addr(port), "DAEMON=",
		"FLEETCTL="+filepath.Join(f.bin, "fleetctl"))
	if out, err := render.CombinedOutput(); err != nil {
		return fmt.Errorf("render nginx (%s): %v\n%s", name, err, out)
	}
	f.nginxPort[name] = port
	return f.runNginx(ctx, name)
}

// runNginx (re)starts the nginx server name from its rendered prefix and
// waits until it answers /health.
func (f *fleet) runNginx(ctx context.Context, name string) error {
	bin, err := nginxPath()
	if err != nil {
		return err
	}
	prefix := filepath.Join(f.dir, "nginx-"+name)
	p, err := start(f.dir, "nginx-"+name, nil, syscall.SIGQUIT, bin, "-p", prefix+"/", "-c", filepath.Join(prefix, "nginx.conf"), "-g", "daemon off;")
	if err != nil {
		return err
	}
	f.nginx[name] = p
	return p.waitFor(ctx, 10*time.Second, "listening", func() bool { return httpOK(f.client, f.nginxURL(name)+"/health") })
}

func (f *fleet) mockURL() string             { return "http://" + addr(f.mockPort) }
func (f *fleet) nginxURL(name string) string { return "http://" + addr(f.nginxPort[name]) }
func (f *fleet) botURL(i int) string         { return "http://" + addr(f.botPorts[i]) }

// setFaults replaces mockllm's injected faults (its PUT /faults).
func (f *fleet) setFaults(ctx context.Context, faults string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, f.mockURL()+"/faults", strings.NewReader(faults))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := f.client.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("mockllm PUT /faults %s: %s", faults, res.Status)
	}
	return nil
}

// botEnv is an instance's whole environment: nothing of the harness's own
// (a developer's BOT_* or config file must not change the bench).
func (f *fleet) botEnv(c botConfig, port int) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"API_KEY=" + Key, "BOT_AUTH_ADMIN_KEY=" + AdminKey, "REDIS_HOST=127.0.0.1", "REDIS_PORT=" + strconv.Itoa(f.redisPortFor(port)),
		"WEB_PORT=" + strconv.Itoa(port), "INSTANCE_NAME=bench-" + strconv.Itoa(port),
		"BOT_SERVER_PPROF=true", "BOT_LLM_PROVIDER=" + c.Backend,
		"BOT_MEMORY_MAX_ENTRIES=" + strconv.Itoa(c.MaxEntries),
		// The load generator is one client address: the fleet's per-IP
		// limit (ratelimit.per_ip, 1000/s) would cap every row above it.
		"BOT_RATELIMIT_PER_IP=0",
		// The growth rows send 10 KB messages.
		"BOT_CHAT_MAX_MESSAGE_CHARS=" + strconv.Itoa(maxMessageChars),
	}
	env = append(env, c.Env...)
	if c.Backend == "openai" {
		env = append(env, "MODEL_ENDPOINT="+f.mockURL()+"/v1", "MODEL_SERVICE_KEY=bench", "BOT_LLM_MODEL=mock-1")
	}
	return env
}

// redisPortFor is the Redis port of the instance on port: its proxy's, or
// Redis's own.
func (f *fleet) redisPortFor(port int) int {
	if p, ok := f.proxies[port]; ok {
		return p.port()
	}
	return f.redisPort
}

// maxMessageChars is the instances' chat.max_message_chars: room for the
// largest message a row sends.
const maxMessageChars = 20000

// startBot starts one instance on port and waits for /ready.
func (f *fleet) startBot(ctx context.Context, c botConfig, port int, log string) (*child, error) {
	p, err := start(f.dir, log, f.botEnv(c, port), syscall.SIGTERM, filepath.Join(f.bin, "bot"),
		"--port", strconv.Itoa(port), "--log-level", "warn")
	if err != nil {
		return nil, fmt.Errorf("%w (build it: make build)", err)
	}
	url := "http://" + addr(port) + "/ready"
	if err := p.waitFor(ctx, 15*time.Second, "/ready", func() bool { return httpOK(f.client, url) }); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return p, nil
}

// startBots (re)starts the instances with c on an empty Redis.
func (f *fleet) startBots(ctx context.Context, c botConfig) error {
	if f.rdb == nil {
		return errStopped
	}
	f.stopBots()
	if err := f.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	f.backend, f.config = c.Backend, c
	if f.opts.Supervised {
		return f.startSupervised(ctx)
	}
	for i, port := range f.botPorts {
		p, err := f.startBot(ctx, c, port, "bot-"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		f.bots = append(f.bots, p)
	}
	return nil
}

func (f *fleet) stopBots() {
	if f.opts.Supervised && f.config.Backend != "" {
		f.stopSupervised()
	}
	for _, p := range f.bots {
		p.stop(10 * time.Second)
	}
	f.bots = nil
}

// stop ends every process of the fleet.
func (f *fleet) stop() {
	f.stopBots()
	for _, p := range f.nginx {
		p.stop(5 * time.Second)
	}
	f.mock.stop(5 * time.Second)
	for _, p := range f.proxies {
		p.stop()
	}
	if f.rdb != nil {
		f.rdb.Close()
		f.rdb = nil
	}
	f.redis.stop(5 * time.Second)
}

// versions are the servers' version lines.
func versions(ctx context.Context) (redisV, nginxV string) {
	if out, err := exec.CommandContext(ctx, "redis-server", "--version").Output(); err == nil {
		for _, w := range strings.Fields(string(out)) {
			if v, ok := strings.CutPrefix(w, "v="); ok {
				redisV = v
			}
		}
	}
	if bin, err := nginxPath(); err == nil {
		if out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput(); err == nil {
			nginxV = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: "))
		}
	}
	return redisV, nginxV
}
