package testenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// TestMain builds cmd/fleetctl, which scripts/render_nginx.sh runs.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "testenv-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := testenv.BuildCommands(dir, "./cmd/fleetctl"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("FLEETCTL", filepath.Join(dir, "fleetctl"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
