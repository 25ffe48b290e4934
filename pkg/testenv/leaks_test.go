package testenv_test

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

func TestLeakedFindsNotedSecretsInLogsAndLogFiles(t *testing.T) {
	testenv.NoteSecret("leak-check-secret-1", "")
	if l := testenv.Leaked("level=INFO msg=ok key=bf_…"); len(l) > 0 {
		t.Fatalf("clean logs leak %v", l)
	}
	if l := testenv.Leaked(`level=WARN msg="auth" key=leak-check-secret-1`); !slices.Equal(l, []string{"leak…"}) {
		t.Fatalf("leaked %v, want the secret, masked", l)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "instance.log"), []byte("token leak-check-secret-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.CollectLogFiles(dir)
	if testenv.CheckSecrets(0, io.Discard) != 1 {
		t.Fatal("CheckSecrets passed a run whose log file holds a noted secret")
	}
	if testenv.CheckSecrets(3, io.Discard) != 3 {
		t.Fatal("CheckSecrets changed a failed run's code")
	}
}
