package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeCommands returns the shell commands of the README's sh blocks under
// the heading that starts with section, "\"-continued lines joined and
// comments dropped.
func readmeCommands(t *testing.T, section string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in, block, cont := false, false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.HasPrefix(line[3:], section)
		case in && strings.HasPrefix(line, "```"):
			block = !block && line == "```sh"
		case in && block:
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if rest, ok := strings.CutSuffix(line, `\`); ok {
				cont += rest + " "
				continue
			}
			cmds = append(cmds, cont+line)
			cont = ""
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("README: no sh commands under %q", section)
	}
	return cmds
}

// bounded rewrites a loadtest command's durations so the test stays short;
// everything else runs as the README writes it.
var durationFlag = regexp.MustCompile(`--(duration|warmup) [0-9a-z]+`)

// checkReadmeCommands runs, against the fleet make fleet started, the
// README's first chat (its curl) and every bin/loadtest example of "Load
// testing", as written but for shorter durations, in a folder of the
// test's (they write their reports there).
func checkReadmeCommands(t *testing.T) {
	var curl string
	for _, c := range readmeCommands(t, "Quick start") {
		if strings.HasPrefix(c, "curl ") {
			curl = c
			break
		}
	}
	if curl == "" {
		t.Fatal("README's quick start has no curl line")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := exec.CommandContext(ctx, "bash", "-c", curl).Output()
	var reply struct {
		Reply string
		Turn  int
	}
	if err != nil || json.Unmarshal(body, &reply) != nil || reply.Reply != "您好，请问有什么可以帮您？" || reply.Turn != 1 {
		t.Fatalf("README's curl: %q, %v; want the seed's greeting at turn 1", body, err)
	}
	dir := t.TempDir()
	n := 0
	for _, c := range readmeCommands(t, "Load testing") {
		if !strings.HasPrefix(c, "bin/loadtest ") {
			continue
		}
		n++
		c = durationFlag.ReplaceAllStringFunc(c, func(f string) string {
			if strings.HasPrefix(f, "--warmup") {
				return "--warmup 0s"
			}
			return "--duration 2s"
		})
		c = filepath.Join(root, "bin", "loadtest") + strings.TrimPrefix(c, "bin/loadtest")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "bash", "-c", c)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil || strings.Contains(string(out), "status_401") {
			t.Errorf("README's %q: %v\n%s", c, err, out)
		}
	}
	if n < 3 {
		t.Fatalf("README's load testing has %d bin/loadtest examples, want its 3", n)
	}
	for _, report := range []string{"out.json", "out.html", "steps.md"} {
		if _, err := os.Stat(filepath.Join(dir, report)); err != nil {
			t.Errorf("README's loadtest examples wrote no %s", report)
		}
	}
}
