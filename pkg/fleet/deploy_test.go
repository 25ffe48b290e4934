package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
	"go.yaml.in/yaml/v3"
)

// dockerConfEnv renders nginx/docker.conf; docker-compose.yml says so too.
var dockerConfEnv = []string{
	"PRIMARIES=bot1:8080:1 bot2:8081:1 bot3:8082:2", "BACKUPS=bot4:8083",
	"LISTEN=18789", "PREFIX=/tmp/nginx/", "DAEMON=off",
}

func repoFile(t *testing.T, name string) []byte {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type composeFile struct {
	Services map[string]struct {
		Build       any               `yaml:"build"`
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   any               `yaml:"depends_on"`
		StopGrace   string            `yaml:"stop_grace_period"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

// The compose file runs the same fleet as nginx/docker.conf describes: four
// bots on their ports with the seed's variables, Redis with AOF, nginx with
// the rendered config.
func TestDockerCompose(t *testing.T) {
	var c composeFile
	if err := yaml.Unmarshal(repoFile(t, "docker-compose.yml"), &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	redis, ok := c.Services["redis"]
	if !ok || !strings.Contains(strings.Join(redis.Command, " "), "--appendonly yes") || len(redis.Volumes) == 0 {
		t.Fatalf("redis service must persist with AOF on a volume: %+v", redis)
	}
	conf := string(repoFile(t, "nginx/docker.conf"))
	for i, port := range []string{"8080", "8081", "8082", "8083"} {
		name := "bot" + string(rune('1'+i))
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("service %s missing", name)
		}
		env := s.Environment
		if s.Build == nil || env["WEB_PORT"] != port || env["INSTANCE_NAME"] != "bot-instance-"+port ||
			env["REDIS_HOST"] != "redis" || env["BOT_SERVER_HOST"] != "0.0.0.0" || env["API_KEY"] == "" || s.StopGrace == "" {
			t.Errorf("service %s: %+v", name, s)
		}
		if !strings.Contains(conf, "server "+name+":"+port+" ") {
			t.Errorf("nginx/docker.conf has no upstream server %s:%s", name, port)
		}
	}
	if !strings.Contains(conf, "server bot4:8083 backup") {
		t.Error("bot4 must be nginx's backup in nginx/docker.conf")
	}
	ngx := c.Services["nginx"]
	if len(ngx.Volumes) == 0 || !strings.HasPrefix(ngx.Volumes[0], "./nginx/docker.conf:") || len(ngx.Ports) == 0 || !strings.HasPrefix(ngx.Ports[0], "18789:") {
		t.Fatalf("nginx service must mount nginx/docker.conf and publish 18789: %+v", ngx)
	}
	root, _ := testenv.ModuleRoot()
	cmd := exec.Command(testenv.LookPath(t, "docker-compose"), "-f", filepath.Join(root, "docker-compose.yml"), "config", "-q")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}

// checkRendered fails unless scripts/<script> with args, in the
// environment env gives, prints the repository's file as it is; again
// says how to render it again.
func checkRendered(t *testing.T, file, again string, env func([]string) []string, script string, args ...string) {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(root, "scripts", script), args...)
	cmd.Env = env(os.Environ())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	if string(out) != string(repoFile(t, file)) {
		t.Fatalf("%s is stale: %s", file, again)
	}
}

// nginx/docker.conf is what the renderer makes of its settings.
func TestDockerNginxConfIsRendered(t *testing.T) {
	checkRendered(t, "nginx/docker.conf", "re-render it with the command in docker-compose.yml",
		func(env []string) []string { return append(env, dockerConfEnv...) }, "render_nginx.sh")
}

// deploy/healthchecker.example.yaml is what make fleet renders for 8080–8083.
func TestHealthCheckerExampleIsRendered(t *testing.T) {
	checkRendered(t, "deploy/healthchecker.example.yaml", "scripts/render_healthchecker.sh -o deploy/healthchecker.example.yaml 8080 8081 8082 8083",
		func(env []string) []string {
			env = append(env, "BOT_BIN=", "RUN_DIR=", "LOG_DIR=", "LISTEN=", "ADDR_FILE=", "REDIS_HOST=", "REDIS_PORT=")
			return slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "REGISTRY_REDIS=") })
		}, "render_healthchecker.sh", "8080", "8081", "8082", "8083")
}

// The Dockerfile builds every command with the module's Go and runs bot.
func TestDockerfile(t *testing.T) {
	df := string(repoFile(t, "Dockerfile"))
	gomod := string(repoFile(t, "go.mod"))
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if goVer == nil || !strings.Contains(df, "FROM golang:"+goVer[1]) {
		t.Errorf("Dockerfile must build with go %v from go.mod", goVer)
	}
	for _, want := range []string{"./cmd/...", `ENTRYPOINT ["bot"]`, "HEALTHCHECK", "/health", "STOPSIGNAL SIGTERM", "USER "} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	root, _ := testenv.ModuleRoot()
	for _, m := range regexp.MustCompile(`(?m)^COPY (?:--\S+ )?(.+) \S+$`).FindAllStringSubmatch(df, -1) {
		if strings.Contains(m[0], "--from=") {
			continue
		}
		for _, src := range strings.Fields(m[1]) {
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("Dockerfile copies %s, which does not exist", src)
			}
		}
	}
}
