package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/proc"
)

const usage = `Usage: fleetctl COMMAND [flags] [args]

The local fleet's process bookkeeping, for scripts/*.sh (logic in Go, the
scripts only start and stop). Pid files are pkg/proc's: PIDFILE holds the
pid, PIDFILE.json the launch record (argv, environment, working directory,
log, start time, settings digest; mode 0600).

Commands:
  launch --pidfile F [--log F] [--port P] -- ARGV...
        start ARGV detached (own session and process group, stdin
        /dev/null, output appended to --log) with this environment; write F
        and its launch record; print the pid. --port P: the instance's port,
        which the settings digest leaves out.
  pid [--port P] PIDFILE
        print the pid PIDFILE names when it is that process (its record's
        start time, or without a record the listener of port P); exit 1
        when it is not running, 3 when the pid is another process's.
  group --port P PIDFILE
        print the live members of the process group PIDFILE names (nginx's
        master and workers, also once the master is dead), when one of them
        listens on P; exit 1 when there are none.
  owner PORT
        print the pids listening on PORT; exit 1 when there are none.
  settings PIDFILE...
        print each pid file's settings digest ("-" without a record).
  changed --pidfile F --port P -- ARGV...
        compare what F's instance was launched with to ARGV with this
        environment: exit 0 when alike, 3 when they differ (the differing
        settings on stdout, names only), 1 without a record.
  render-nginx [-o FILE]
        render nginx/nginx.conf.tmpl (see scripts/render_nginx.sh --help).
  upstream NGINX_CONF
        print the servers of a rendered nginx.conf's upstream, once each
        ("8080 weight=1, ..., 8083 backup").
  checker addr|pause|resume --config FILE [--for D] [PORT...]
        the health checker of FILE: its address (addr_file's, once written,
        else listen's); pause its restarts of
        PORT's targets for D (default 2m), or resume them. Without a
        checker answering, pause and resume say so and exit 0.
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 || args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) < 2 {
			return cli.Exit(2, errors.New("a command is required"))
		}
		return nil
	}
	cmd, rest := args[1], args[2:]
	fs := flag.NewFlagSet("fleetctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	pidfile := fs.String("pidfile", "", "pid `file`")
	port := fs.Int("port", 0, "the instance's or listener's `port`")
	logFile := fs.String("log", "", "output `file`")
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	config := fs.String("config", "", "the health checker's config `file`")
	pauseFor := fs.Duration("for", defaultPause, "how long to pause")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return cli.Exit(2, err)
	}
	a := fs.Args()
	if cmd == "checker" && len(a) > 0 { // checker ACTION [flags] [PORT...]
		if err := fs.Parse(a[1:]); err != nil {
			return cli.Exit(2, err)
		}
		a = append([]string{a[0]}, fs.Args()...)
	}
	switch cmd {
	case "launch":
		return launch(*pidfile, *logFile, *port, a, os.Environ(), stdout)
	case "pid":
		if len(a) != 1 {
			return cli.Exit(2, errors.New("pid: want one PIDFILE"))
		}
		id, err := proc.Find(a[0], *port)
		return printPID(id, err, stdout)
	case "group":
		if len(a) != 1 || *port == 0 {
			return cli.Exit(2, errors.New("group: want --port P and one PIDFILE"))
		}
		return group(a[0], *port, stdout)
	case "owner":
		if len(a) != 1 {
			return cli.Exit(2, errors.New("owner: want one PORT"))
		}
		p, err := strconv.Atoi(a[0])
		if err != nil {
			return cli.Exit(2, fmt.Errorf("owner: bad port %q", a[0]))
		}
		pids, err := proc.ListenerPIDs(p)
		return printPIDs(pids, err, stdout)
	case "settings":
		for _, f := range a {
			d := "-"
			if r, err := proc.ReadRecord(f); err == nil && r.Settings != "" {
				d = r.Settings
			}
			fmt.Fprintln(stdout, d)
		}
		return nil
	case "changed":
		return changed(*pidfile, *port, a, os.Environ(), stdout)
	case "render-nginx":
		return renderNginx(getenv, *out, stdout)
	case "upstream":
		if len(a) != 1 {
			return cli.Exit(2, errors.New("upstream: want one NGINX_CONF"))
		}
		servers, err := upstreamServers(a[0])
		if err != nil {
			return cli.Exit(1, fmt.Errorf("upstream: %w", err))
		}
		fmt.Fprintln(stdout, servers)
		return nil
	case "checker":
		return checker(ctx, a, *config, *pauseFor, stdout)
	}
	return cli.Exit(2, fmt.Errorf("unknown command %q (see --help)", cmd))
}

func printPID(id proc.Identity, err error, stdout io.Writer) error {
	switch {
	case err == nil:
		fmt.Fprintln(stdout, id.PID)
		return nil
	case errors.Is(err, proc.ErrNotRunning):
		return cli.Exit(1, nil)
	case errors.Is(err, proc.ErrForeign):
		return cli.Exit(3, err)
	}
	return cli.Exit(2, err)
}

func printPIDs(pids []int, err error, stdout io.Writer) error {
	if err != nil {
		return cli.Exit(2, err)
	}
	if len(pids) == 0 {
		return cli.Exit(1, nil)
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	fmt.Fprintln(stdout, strings.Join(s, " "))
	return nil
}

// group prints the live members of the process group pidfile names, when
// one of them listens on port (so a group that is not nginx's is never
// taken for it).
func group(pidfile string, port int, stdout io.Writer) error {
	pid, err := proc.ReadPID(pidfile)
	if err != nil {
		return cli.Exit(2, err)
	}
	members, err := proc.Group(pid)
	if err != nil {
		return cli.Exit(2, err)
	}
	listeners, err := proc.ListenerPIDs(port)
	if err != nil {
		return cli.Exit(2, err)
	}
	for _, m := range members {
		for _, l := range listeners {
			if m == l {
				return printPIDs(members, nil, stdout)
			}
		}
	}
	return cli.Exit(1, nil)
}
