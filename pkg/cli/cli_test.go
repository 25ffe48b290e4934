package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/cli"
)

// helperEnv names the run the test binary plays under cli.Main when it is
// started by the tests below.
const helperEnv = "CLI_TEST_RUN"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		cli.Main("demo", helperRuns[mode])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var helperRuns = map[string]func(context.Context, []string, func(string) string, io.Writer, io.Writer) error{
	"ok": func(_ context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
		fmt.Fprintln(stdout, strings.Join(args[1:], ","), getenv("CLI_TEST_VALUE"))
		return nil
	},
	"fail": func(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
		return errors.New("boom")
	},
	"code": func(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
		return fmt.Errorf("render: %w", cli.Exit(2, errors.New("bad template")))
	},
	"quiet": func(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
		return cli.Exit(3, nil)
	},
	"signal": func(ctx context.Context, _ []string, _ func(string) string, stdout, _ io.Writer) error {
		fmt.Fprintln(stdout, "ready")
		<-ctx.Done()
		fmt.Fprintln(stdout, "stopped")
		return nil
	},
}

// helper starts the test binary as a command whose main is
// cli.Main("demo", helperRuns[mode]).
func helper(t *testing.T, mode string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "CLI_TEST_VALUE=v")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	return cmd, &stderr
}

func TestMainExits(t *testing.T) {
	for _, tc := range []struct {
		mode           string
		code           int
		stdout, stderr string
	}{
		{"ok", 0, "a,b v\n", ""},
		{"fail", 1, "", "demo: boom\n"},
		{"code", 2, "", "demo: render: bad template\n"},
		{"quiet", 3, "", ""},
	} {
		cmd, stderr := helper(t, tc.mode, "a", "b")
		out, err := cmd.Output()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		if code != tc.code || string(out) != tc.stdout || stderr.String() != tc.stderr {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.mode, code, out, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
}

// TestMainCancelsOnSIGTERM: the signal ends run's context, and run's nil
// is exit 0.
func TestMainCancelsOnSIGTERM(t *testing.T) {
	cmd, stderr := helper(t, "signal")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("first line %q, %v", sc.Text(), sc.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !sc.Scan() || sc.Text() != "stopped" {
		t.Fatalf("after SIGTERM: %q, %v", sc.Text(), sc.Err())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, stderr %q", err, stderr)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{nil, 0, ""},
		{errors.New("x"), 1, "x"},
		{cli.Exit(3, nil), 3, ""},
		{fmt.Errorf("outer: %w", cli.Exit(2, errors.New("inner"))), 2, "outer: inner"},
		{exec.Command("false").Run(), 1, "exit status 1"}, // another kind of exit status is no code of Main's
	} {
		if got := cli.ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
		if tc.err != nil && tc.err.Error() != tc.msg {
			t.Errorf("message %q, want %q", tc.err.Error(), tc.msg)
		}
	}
	inner := errors.New("inner")
	if !errors.Is(cli.Exit(2, inner), inner) {
		t.Error("Exit hides its error from errors.Is")
	}
}

const usage = "Usage: demo [flags]\n\nFlags:\n"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		help   bool
		err    string   // a part of the error; "" for none
		stderr []string // parts of what is printed; nil for nothing
		name   string   // --name after a good parse
	}{
		{args: nil, name: "world"},
		{args: []string{"--name", "x", "-n", "3"}, name: "x"},
		{args: []string{"--help"}, help: true, stderr: []string{usage, "-name string", "whom to greet (default \"world\")"}},
		{args: []string{"-h"}, help: true, stderr: []string{usage, "-n int"}},
		{args: []string{"--name", "x", "extra", "more"}, err: `unexpected arguments ["extra" "more"] (see --help)`},
		{args: []string{"--nope"}, err: "flag provided but not defined: -nope", stderr: []string{"flag provided but not defined: -nope\n" + usage, "-name string"}},
		{args: []string{"-n", "many"}, err: `invalid value "many" for flag -n`, stderr: []string{usage}},
	} {
		var stderr bytes.Buffer
		fs := cli.FlagSet("demo", usage, &stderr)
		name := fs.String("name", "world", "whom to greet")
		fs.Int("n", 1, "how often")
		help, err := cli.Parse(fs, tc.args)
		if help != tc.help || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: help %v, err %v; want %v, %q", tc.args, help, err, tc.help, tc.err)
		}
		if tc.stderr == nil && stderr.Len() > 0 {
			t.Errorf("%q: printed %q, want nothing", tc.args, stderr.String())
		}
		for _, want := range tc.stderr {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, want, stderr.String())
			}
		}
		if tc.name != "" && *name != tc.name {
			t.Errorf("%q: --name %q, want %q", tc.args, *name, tc.name)
		}
	}
}
