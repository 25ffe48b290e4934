// Package cli is how botfleet's commands start and end, in the shape of Mat
// Ryer's services: a command's main is one call,
//
//	func main() { cli.Main("bot", run) }
//
// and everything else lives in run(ctx, args, getenv, stdout, stderr),
// which tests drive. run builds its flags with FlagSet and reads them with
// Parse, so that every command answers --help, a bad flag and a stray
// argument alike.
//
// # Errors
//
// Main exits 0 when run returns nil. Otherwise it prints "<name>: <err>"
// on standard error and exits 1; an error made by Exit (anywhere in the
// chain) exits with its code instead, and prints nothing when it carries no
// message. ExitCode tells the code Main exits with for an error.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run with the process's arguments, environment and output,
// under a context that SIGINT or SIGTERM cancels, and exits as the package
// comment says.
func Main(name string, run func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	// Signals are the process's own again before it reports and exits
	// (os.Exit would skip a deferred stop): a second Ctrl-C ends it at once.
	stop()
	if err == nil {
		return
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, name+":", msg)
	}
	os.Exit(ExitCode(err))
}

// exitError is an error with the code Main exits with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// Exit returns an error that makes Main print err (nothing when err is
// nil) and exit with code, e.g. a status that answers a question:
// Exit(1, nil) for "not running".
func Exit(code int, err error) error { return &exitError{code, err} }

// ExitCode is the code Main exits with after err: 0 for nil, the code of
// the first Exit error in err's chain, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return 1
}
