package testenv

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// leaks is this test binary's leak check: the secrets its tests configured
// or created, and the logs of everything they ran — in-process instances,
// the processes they started, nginx — for TestMain to grep (CheckSecrets).
// It is one per test binary, as a test run is.
var leaks struct {
	mu      sync.Mutex
	secrets []string
	logs    Buffer
}

// NoteSecret adds secrets (a configured key, a created one, an issued
// token) to those no log of the run may hold; "" is ignored. StartRedisWith
// and StartSentinel note their passwords themselves.
func NoteSecret(secrets ...string) {
	leaks.mu.Lock()
	defer leaks.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			leaks.secrets = append(leaks.secrets, s)
		}
	}
}

// RunLog is where the logs of the run go: give it (with io.MultiWriter) to
// every instance and process a test starts. StartNginx copies its logs in.
func RunLog() io.Writer { return &leaks.logs }

// CollectLogFiles copies every file under dir (a log folder of processes
// that have stopped) into the run's logs.
func CollectLogFiles(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			_, _ = leaks.logs.Write(b)
		}
		return nil
	})
}

// Leaked returns the noted secrets that appear in logs, each masked to its
// first 4 characters.
func Leaked(logs string) []string {
	leaks.mu.Lock()
	defer leaks.mu.Unlock()
	var out []string
	for _, s := range leaks.secrets {
		if strings.Contains(logs, s) {
			out = append(out, s[:min(4, len(s))]+"…")
		}
	}
	return out
}

// CheckSecrets is for TestMain, with m.Run's code: a run that passed fails
// (1) when a noted secret appears anywhere in the run's logs. It tells out
// which (masked), or how many bytes of logs it checked for how many secrets.
func CheckSecrets(code int, out io.Writer) int {
	if code != 0 {
		return code
	}
	logs := leaks.logs.String()
	if l := Leaked(logs); len(l) > 0 {
		fmt.Fprintf(out, "FAIL: secrets in the logs of the test run: %v\n", l)
		return 1
	}
	leaks.mu.Lock()
	n := len(leaks.secrets)
	leaks.mu.Unlock()
	fmt.Fprintf(out, "no secret (of %d) in %d bytes of logs of the run\n", n, len(logs))
	return 0
}
