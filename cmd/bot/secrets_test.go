package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// allLogs collects the logs of every instance of the test run; TestMain
// greps them for every secret the run configured or created.
var allLogs testenv.Buffer

var secrets = struct {
	mu   sync.Mutex
	list []string
}{list: []string{apiKey, adminKey, tokenSecret, dtSecret, fsSecret, fsToken, fsKey, obSecret, obToken, tgToken, tgSecret}}

// noteSecret adds a secret (a created key, an issued token) to the grep.
func noteSecret(s string) {
	secrets.mu.Lock()
	secrets.list = append(secrets.list, s)
	secrets.mu.Unlock()
}

// leaked returns the secrets that appear in logs, masked.
func leaked(logs string) []string {
	secrets.mu.Lock()
	defer secrets.mu.Unlock()
	var out []string
	for _, s := range secrets.list {
		if s != "" && strings.Contains(logs, s) {
			out = append(out, s[:min(4, len(s))]+"…")
		}
	}
	return out
}

// tools are the module's other commands the tests run (botctl, and
// fleetctl under scripts/render_nginx.sh), built on first use, once.
var tools struct {
	once sync.Once
	dir  string
	err  error
}

// toolPath returns the path of the command name ("botctl", "fleetctl").
func toolPath(t *testing.T, name string) string {
	t.Helper()
	tools.once.Do(func() {
		if tools.dir, tools.err = os.MkdirTemp("", "bot-tools"); tools.err == nil {
			tools.err = testenv.BuildCommands(tools.dir, "./cmd/botctl", "./cmd/fleetctl")
		}
	})
	if tools.err != nil {
		t.Fatal(tools.err)
	}
	return filepath.Join(tools.dir, name)
}

// runBotctl runs bin/botctl against r with args and returns its output.
func runBotctl(t *testing.T, r *testenv.Redis, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(toolPath(t, "botctl"), args...)
	cmd.Env = append(os.Environ(), "REDIS_HOST=127.0.0.1", fmt.Sprintf("REDIS_PORT=%d", r.Port))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if l := leaked(allLogs.String()); len(l) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: secrets in the logs of the test run: %v\n", l)
			code = 1
		} else {
			fmt.Printf("no secret in %d bytes of instance logs\n", len(allLogs.String()))
		}
	}
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}
