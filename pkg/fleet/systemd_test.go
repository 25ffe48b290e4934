package fleet

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// systemdUnits are the units of deploy/systemd, as systemctl names them.
var systemdUnits = []string{"bot@8080.service", "botfleet-healthchecker.service"}

// The units pass systemd-analyze verify — no unknown or misplaced directive,
// every command present — and their sandbox rates "OK" (exposure at most 2
// of 10) in systemd-analyze security. Both run against a root folder that
// holds the units, the real binaries at /opt/botfleet/bin and the system's
// own unit files, so nothing of this machine's systemd is touched.
func TestSystemdUnits(t *testing.T) {
	analyze := testenv.LookPath(t, "systemd-analyze")
	unitDir := filepath.Join(root, "deploy/systemd")
	sysroot := systemdRoot(t, unitDir)
	args := append([]string{"verify", "--root=" + sysroot}, systemdUnits...)
	if out, err := exec.Command(analyze, args...).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range systemdUnits {
		out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", "--root="+sysroot, u).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze security %s: exposure above 2.0 (%v):\n%s", u, err, out)
		}
	}

	// The check can fail: a misspelt directive is reported.
	broken := t.TempDir()
	unit := string(repoFile(t, "deploy/systemd/bot@.service"))
	writeUnit(t, broken, "bot@.service", strings.Replace(unit, "ProtectHome=yes", "ProtectHomes=yes", 1))
	writeUnit(t, broken, "botfleet-healthchecker.service", string(repoFile(t, "deploy/systemd/botfleet-healthchecker.service")))
	out, _ := exec.Command(analyze, "verify", "--root="+systemdRoot(t, broken), "bot@8080.service").CombinedOutput()
	if !strings.Contains(string(out), "ProtectHomes") {
		t.Errorf("systemd-analyze verify accepted a misspelt directive:\n%s", out)
	}
}

// systemdRoot makes a root folder for systemd-analyze --root: the units of
// unitDir in /etc/systemd/system, the built bot and health checker in
// /opt/botfleet/bin, kill in /bin, and a copy of the system's unit files
// (the targets the units are ordered against).
func systemdRoot(t *testing.T, unitDir string) string {
	t.Helper()
	sysroot := t.TempDir()
	copyTree(t, "/usr/lib/systemd/system", filepath.Join(sysroot, "usr/lib/systemd/system"))
	copyTree(t, unitDir, filepath.Join(sysroot, "etc/systemd/system"))
	for dst, src := range map[string]string{
		"opt/botfleet/bin/bot":           filepath.Join(binDir, "bot"),
		"opt/botfleet/bin/healthchecker": filepath.Join(binDir, "healthchecker"),
		"bin/kill":                       testenv.LookPath(t, "kill"),
	} {
		copyFile(t, src, filepath.Join(sysroot, dst))
	}
	return sysroot
}

// copyTree copies the regular files and symlinks under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			copyFile(t, path, target)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

func writeUnit(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
