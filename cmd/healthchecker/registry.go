package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/botfleet/botfleet/pkg/healthcheck"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/redis/go-redis/v9"
)

// publish puts the checker's targets into the fleet registry every
// interval until ctx ends, then says goodbye; it returns when it has.
// Without registry.redis it returns at once.
func publish(ctx context.Context, cfg healthcheck.Registry, checker *healthcheck.Checker, logger *slog.Logger) {
	if cfg.Redis == "" {
		return
	}
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis, Password: cfg.Password, DB: cfg.DB, ClientName: cfg.Name,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 1})
	defer rdb.Close()
	interval := time.Duration(cfg.Interval)
	reg := registry.New(rdb, registry.Options{Prefix: cfg.KeyPrefix, Interval: interval})
	started := time.Now()
	failing := false
	beat := func(ctx context.Context, goodbye bool) {
		err := reg.PublishChecker(ctx, registry.Checker{Name: cfg.Name, StartedAt: started, HeartbeatAt: time.Now(), Targets: checker.Status()}, goodbye)
		switch {
		case err != nil && !failing:
			logger.Warn("registry: cannot publish the targets; the console shows this checker dead until it can", "redis", cfg.Redis, "err", err)
		case err == nil && failing:
			logger.Info("registry: publishing again", "redis", cfg.Redis)
		}
		failing = err != nil
	}
	logger.Info("registry: publishing the targets", "redis", cfg.Redis, "name", cfg.Name, "interval", interval.String())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		beat(ctx, false)
		select {
		case <-ctx.Done():
			bye, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			beat(bye, true)
			return
		case <-t.C:
		}
	}
}
