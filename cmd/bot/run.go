package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/cli"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/httpapi"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/proc"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/stream"
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/redis/go-redis/extra/redisprometheus/v9"
)

const usage = `Usage: bot [flags]

Runs one botfleet instance: POST /v1/chat, POST /webhook/<platform> with
its queue workers, GET /health, /ready, /metrics, and the admin console
/admin (with auth.admin_key); it heartbeats into the fleet registry.
Settings come from the --config file, then the environment (WEB_PORT,
INSTANCE_NAME, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB,
MODEL_ENDPOINT, MODEL_SERVICE_KEY, API_KEY, and BOT_SECTION_KEY for every
other key, e.g. BOT_LLM_PROVIDER=openai), then these flags.
config.example.yaml documents every key with its default.

Flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := cli.FlagSet("bot", usage, stderr)
	configFile := fs.String("config", getenv("BOT_CONFIG"), "YAML configuration `file` (default $BOT_CONFIG)")
	fs.Int("port", 8080, "listen `port` (server.port, WEB_PORT); 0 picks a free one")
	fs.String("addr-file", "", "write the address listened on to this `file` once listening (server.addr_file)")
	fs.String("log-level", "info", "log `level`: debug, info, warn or error (log.level)")
	fs.String("log-file", "", "write logs to this `file` instead of standard error (log.file)")
	if help, err := cli.Parse(fs, args[1:]); help || err != nil {
		return err
	}
	flagKeys := map[string]string{"port": "server.port", "addr-file": "server.addr_file", "log-level": "log.level", "log-file": "log.file"}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if k, ok := flagKeys[f.Name]; ok {
			set[k] = f.Value.String()
		}
	})
	cfg, err := config.Load(config.Sources{File: *configFile, Getenv: getenv, Flags: set})
	if err != nil {
		return err
	}
	ln, err := listen(cfg)
	if err != nil {
		return err
	}
	defer ln.Close()
	logOut, closeLog, err := openLog(cfg.Log.File, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	logger, err := telemetry.NewLogger(logOut, cfg.Log.Level, cfg.Log.Format, cfg.Server.InstanceName)
	if err != nil {
		return err
	}
	warnOpenSecrets(*configFile, cfg, logger)
	return serve(ctx, cfg, ln, logger)
}

// listen opens the API's listener first of all, so that with port 0 the
// instance is named after the port it got, and writes its address to
// server.addr_file when asked.
func listen(cfg *config.Config) (net.Listener, error) {
	addr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (is another instance on this port?)", addr, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if cfg.Server.InstanceName == "" {
		cfg.Server.InstanceName = "bot-instance-" + strconv.Itoa(port)
	}
	if f := cfg.Server.AddrFile; f != "" {
		if err := proc.WriteAddr(f, ln.Addr()); err != nil {
			ln.Close()
			return nil, fmt.Errorf("server.addr_file: %w", err)
		}
	}
	return ln, nil
}

// serve runs the instance on ln until ctx ends, then drains it.
func serve(ctx context.Context, cfg *config.Config, ln net.Listener, logger *slog.Logger) error {
	metrics := telemetry.NewMetrics(cfg.Server.InstanceName)
	tracing := cfg.Telemetry.OTLPEndpoint != ""
	stopTracing, err := telemetry.StartTracing(ctx, cfg.Telemetry.OTLPEndpoint, cfg.Telemetry.SampleRatio, cfg.Server.InstanceName)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			logger.Warn("tracing: flush at exit failed", "err", err)
		}
	}()
	rdb, err := newRedis(cfg.Redis, cfg.Server.InstanceName, tracing)
	if err != nil {
		return err
	}
	defer rdb.Close()
	metrics.Runtime.MustRegister(redisprometheus.NewCollector("botfleet", "redis", rdb))
	router, err := newBackend(cfg.LLM, logger, metrics.Registerer, tracing)
	if err != nil {
		return err
	}
	store := memory.New(ctx, rdb, memory.Options{
		Prefix: cfg.Redis.KeyPrefix, MaxEntries: cfg.Memory.MaxEntries, IdleTTL: cfg.Memory.IdleTTL,
		Lease: cfg.Memory.Lease, WaitTimeout: cfg.Memory.WaitTimeout, IdempotencyTTL: cfg.Memory.IdempotencyTTL,
		Registerer:   metrics.Registerer,
		WaitReplicas: cfg.Redis.WaitReplicas, WaitReplicasTimeout: cfg.Redis.WaitReplicasTimeout,
	})
	defer store.Close()
	var cacheTTL time.Duration
	if cfg.Cache.Enabled {
		cacheTTL = cfg.Cache.TTL
	}
	sc := cfg.Stream
	streams := stream.New(rdb, stream.Options{Prefix: cfg.Redis.KeyPrefix, TTL: sc.TTL, FlushInterval: sc.FlushInterval, StallAfter: sc.StallAfter})
	svc := chat.New(store, router, chat.Options{
		SystemPrompt: cfg.LLM.SystemPrompt, Model: router.Default(), CacheTTL: cacheTTL,
		DefaultScope: cfg.Memory.DefaultScope, Streams: streams, Instance: cfg.Server.InstanceName, Registerer: metrics.Registerer,
	})
	g := newGuards(cfg, rdb, logger, metrics.Registerer)
	defer g.auth.Close()
	ims := newIM(cfg, rdb, svc, logger, metrics, g.admitIM(cfg.RateLimit.PerConversation), tracing)
	reg := newRegistry(cfg, rdb)
	api := httpapi.New(httpapi.Deps{
		Logger: logger, Registerer: metrics.Registerer, Gatherer: metrics.Gatherer, Chat: svc,
		Ping:     store.Check,
		Breakers: router.Breakers, Instance: cfg.Server.InstanceName,
		Auth: g.auth, AuthDisabled: cfg.Auth.Disabled,
		Limiter: g.limiter, Limits: httpapi.Limits{PerIP: cfg.RateLimit.PerIP, PerKey: cfg.RateLimit.PerKey, TurnTokens: turnTokens(cfg)},
		TrustedProxies: g.proxies, CORSOrigins: cfg.Server.CORS.AllowOrigins, CORSMaxAge: cfg.Server.CORS.MaxAge, Filter: g.filter,
		MaxBodyBytes: cfg.Server.MaxBodyBytes, MaxWebhookBodyBytes: cfg.Server.MaxWebhookBodyBytes,
		MaxHeaderCount: cfg.Server.MaxHeaderCount, MaxMessageChars: cfg.Chat.MaxMessageChars,
		Pprof: cfg.Server.Pprof, Tracing: tracing, AccessLog: httpapi.AccessLog{Sample: cfg.Log.AccessSample, Slow: cfg.Log.AccessSlow}, Webhooks: ims.pipeline, Admin: newConsole(cfg, reg, ims, svc, g, logger), Models: router.Models,
		MetricsElsewhere: cfg.Server.MetricsListen != "", MetricsToken: cfg.Server.MetricsToken,
		Links: ims.healthLinks(), OneBotWS: ims.onebotWS,
		Stream: httpapi.StreamOptions{Heartbeat: sc.Heartbeat, WriteTimeout: sc.WriteTimeout, DetachOnDisconnect: sc.DetachOnDisconnect, MaxDuration: sc.MaxDuration},
	})

	srv := &http.Server{
		Handler:           api.Handler(),
		ReadTimeout:       cfg.Server.ReadTimeout,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		WriteTimeout:      cfg.Server.WriteTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	attrs := []any{"addr", ln.Addr().String(), "provider", cfg.LLM.Provider, "redis", cfg.Redis.Topology(), "redis_addrs", cfg.Redis.Endpoints(),
		"max_entries", cfg.Memory.MaxEntries, "auth", !cfg.Auth.Disabled}
	if cfg.LLM.Provider == "openai" {
		attrs = append(attrs, "model", cfg.LLM.Model, "endpoint", cfg.LLM.OpenAI.BaseURL)
	}
	attrs = append(attrs, "im", ims.pipeline.Enabled())
	logger.Info("serving", attrs...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if l := cfg.Server.MetricsListen; l != "" {
		mln, err := net.Listen("tcp", l)
		if err != nil {
			return fmt.Errorf("server.metrics_listen: %w", err)
		}
		msrv := &http.Server{Handler: api.Metrics(), ReadHeaderTimeout: cfg.Server.ReadTimeout}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		logger.Info("serving metrics", "addr", mln.Addr().String())
	}
	if ims.consumer != nil {
		if err := ims.consumer.Start(ctx); err != nil {
			logger.Warn("queue: cannot create the consumer group yet; the workers keep trying", "err", err)
		}
	}
	ims.links.Start(ctx)
	hb := startHeartbeat(reg.NewHeartbeat(registry.Source{
		Name: cfg.Server.InstanceName, Address: advertised(cfg, ln), Gatherer: metrics.Registry,
		Ready: store.Check, Draining: api.Draining, Breakers: router.Breakers,
		QueueWorkers: ims.workers(), Platforms: ims.pipeline.Enabled(), Links: ims.links.Summary,
	}, registry.HeartbeatOptions{Window: cfg.Registry.Window, Logger: logger}))
	defer hb.stop(logger)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("draining", "grace", cfg.Server.ShutdownGrace.String())
	api.Drain()
	hb.now()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace)
	defer cancel()
	// Links close first and release their leases, so that another instance
	// takes a `one` connection over while this one finishes its jobs.
	if err := ims.stopLinks(sctx); err != nil {
		logger.Warn("drain: links did not close in time", "err", err)
	}
	// Queue workers stop taking jobs and finish the ones they run, within the
	// same grace as HTTP requests; what is left stays pending for another
	// instance to reclaim.
	queueDrained := make(chan error, 1)
	go func() {
		if ims.consumer == nil {
			queueDrained <- nil
			return
		}
		queueDrained <- ims.consumer.Stop(sctx)
	}()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		<-queueDrained
		return fmt.Errorf("drain: in-flight requests did not finish within %s: %w", cfg.Server.ShutdownGrace, err)
	}
	if err := <-queueDrained; err != nil {
		logger.Warn("drain: queue jobs left for other instances", "err", err)
	}
	logger.Info("stopped")
	return nil
}

func openLog(path string, stderr io.Writer) (io.Writer, func(), error) {
	if path == "" {
		return stderr, func() {}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	return f, func() { f.Close() }, nil
}
