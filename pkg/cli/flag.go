package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// FlagSet returns an empty flag set named name that reports its errors on
// stderr and answers -h and --help with usage, then the flags' defaults.
func FlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses args, the command line after the command's name, into fs,
// which takes flags only: help is true after -h or --help (the usage is
// printed: run returns nil), and an argument that is not a flag is an
// error.
func Parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	return false, nil
}
