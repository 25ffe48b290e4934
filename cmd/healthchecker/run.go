package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/telemetry"
)

const usage = `Usage: healthchecker --config FILE [flags]
       healthchecker --target NAME=URL [--target NAME=URL ...] [flags]

Probes every target's liveness URL (/health) and readiness URL (/ready) on a
period and restarts the instances whose liveness fails, with CrashLoop
backoff and a restart budget; past the budget a target is marked failed and
an alert is sent. Readiness is reported only and never restarts anything.

Serves GET /status (JSON: every target's state, last probe, restarts,
backoff) and GET /metrics (Prometheus) on --listen; with port 0 it picks a
free port, logs it and, with --addr-file (addr_file), writes the address
to that file once listening.

Signals: SIGHUP reloads the --config file (added targets start, removed ones
stop, changed ones restart their workers, failed ones may restart again);
SIGTERM or SIGINT stops checking and, by the file's on_exit, leaves
supervised instances running ("leave", the default) or stops them ("stop").

With registry.redis set, the targets' states are published every
registry.interval into the fleet registry in Redis, where the instances'
console (/admin) shows them.

The configuration format is documented in deploy/healthchecker.example.yaml;
restart strategies are supervise, pidfile, command and none.

Examples:
  healthchecker --config deploy/healthchecker.example.yaml
  healthchecker --target bot-8080=http://127.0.0.1:8080/health --listen 127.0.0.1:9091
  healthchecker --config hc.yaml --listen 127.0.0.1:0 --addr-file run/healthchecker.addr
  curl -s 127.0.0.1:9090/status

Flags:
`

// targetFlags collects repeated --target name=URL flags.
type targetFlags []string

func (t *targetFlags) String() string { return strings.Join(*t, ",") }

func (t *targetFlags) Set(s string) error {
	name, u, ok := strings.Cut(s, "=")
	if !ok || name == "" || u == "" {
		return fmt.Errorf("want NAME=URL, got %q", s)
	}
	*t = append(*t, s)
	return nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet("healthchecker", usage, stderr)
	configFile := fs.String("config", getenv("HEALTHCHECKER_CONFIG"), "YAML configuration `file` (default $HEALTHCHECKER_CONFIG); required unless --target is given")
	var targets targetFlags
	fs.Var(&targets, "target", "add a report-only liveness target `NAME=URL` (repeatable; never restarted)")
	listen := fs.String("listen", "", "`address` of /status and /metrics, overriding the file's listen (default 127.0.0.1:9090; port 0 picks a free one)")
	addrFile := fs.String("addr-file", "", "write the address listened on to this `file` once listening, overriding the file's addr_file")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	if help, err := cli.Parse(fs, args[1:]); help || err != nil {
		return err
	}
	if *configFile == "" && len(targets) == 0 {
		fs.Usage()
		return errors.New("--config or --target is required")
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	load := func() (*healthcheck.Config, error) {
		cfg := healthcheck.DefaultConfig()
		if *configFile != "" {
			var err error
			if cfg, err = healthcheck.LoadConfig(*configFile); err != nil {
				return nil, err
			}
		}
		for _, s := range targets {
			name, u, _ := strings.Cut(s, "=")
			cfg.Targets = append(cfg.Targets, healthcheck.NewTarget(name, u, cfg.Defaults))
		}
		if set["listen"] {
			cfg.Listen = *listen
		}
		if set["addr-file"] {
			cfg.AddrFile = *addrFile
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	logger, err := telemetry.NewLogger(stderr, strings.ToLower(*logLevel), "json", "healthchecker")
	if err != nil {
		return err
	}
	checker, err := healthcheck.New(cfg, healthcheck.Options{Logger: logger})
	if err != nil {
		return err
	}

	// Registered before anything is announced, so a SIGHUP never finds the
	// default action (exit) in place.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var srv *http.Server
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (is another healthchecker running?)", cfg.Listen, err)
		}
		if cfg.AddrFile != "" {
			if err := proc.WriteAddr(cfg.AddrFile, ln.Addr()); err != nil {
				ln.Close()
				return fmt.Errorf("addr_file: %w", err)
			}
		}
		srv = &http.Server{
			Handler:           checker.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		logger.Info("serving", "addr", ln.Addr().String(), "status", "http://"+ln.Addr().String()+"/status")
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serve", "err", err)
			}
		}()
	}

	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("SIGHUP: reloading", "config", *configFile)
				next, err := load()
				if err == nil {
					err = checker.Reload(next)
				}
				if err != nil {
					logger.Error("reload failed; keeping the running configuration", "err", err)
				}
			}
		}
	}()

	published := make(chan struct{})
	go func() {
		defer close(published)
		publish(ctx, cfg.Registry, checker, logger)
	}()
	err = checker.Run(ctx)
	<-published
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return err
}
