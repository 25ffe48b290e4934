package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// The secrets every test of the package configures; those a test creates
// (keys, tokens) it notes itself (testenv.NoteSecret). TestMain greps the
// logs of the whole run — in-process instances, bot processes, nginx — for
// every one.
func init() {
	testenv.NoteSecret(apiKey, adminKey, tokenSecret, dtSecret, fsSecret, fsToken, fsKey, obSecret, obToken, tgToken, tgSecret)
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
	code := testenv.CheckSecrets(m.Run(), os.Stderr)
	if tools.dir != "" {
		os.RemoveAll(tools.dir)
	}
	os.Exit(code)
}
