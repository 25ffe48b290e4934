package fleet

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// Issue 14: a test waits on events or conditions, never with a sleep; a
// time.Sleep in a test is only ever the thing under test (a slow fake
// server, a window an absence is observed in) and says so in a comment on
// its line.
func TestSleepsInTestsSayWhy(t *testing.T) {
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	needle := "time." + "Sleep(" // spelled apart, so that this file is not a hit
	seen := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "run" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			code, comment, _ := strings.Cut(sc.Text(), "//")
			if !strings.Contains(code, needle) {
				continue
			}
			seen++
			if strings.TrimSpace(comment) == "" {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d: a time.Sleep without a comment saying it is the thing under test", rel, n)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen == 0 {
		t.Fatal("no time.Sleep found at all: the walk did not reach the tests")
	}
}
