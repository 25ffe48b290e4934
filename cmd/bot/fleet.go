package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/console"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

// newRegistry is the fleet registry on rdb.
func newRegistry(cfg *config.Config, rdb redis.UniversalClient) *registry.Registry {
	rc := cfg.Registry
	return registry.New(rdb, registry.Options{Prefix: cfg.Redis.KeyPrefix, Interval: rc.Interval, TTL: rc.TTL, Retain: rc.Retain})
}

// newConsole is /admin: the fleet from reg, the queue q, the conversations
// of svc, the keys of g, behind auth.admin_key (off without one).
func newConsole(cfg *config.Config, reg *registry.Registry, ims *imParts, svc *chat.Service, g *guards, logger *slog.Logger) func(*echo.Group) {
	opts := console.Options{
		SessionTTL: cfg.Console.SessionTTL, Fleet: reg, Queues: ims.queue, Conversations: svc,
		Keys: g.auth.Store(), TokenTTL: cfg.Auth.Token.TTL,
		Platforms: ims.pipeline.Enabled(), Logger: logger,
	}
	if g.limiter != nil {
		opts.Quotas = g.limiter
	}
	if key := cfg.Auth.AdminKey; key != "" {
		admin := console.AdminKey(key)
		opts.Authorize = func(r *http.Request) error {
			err := admin(r)
			var outcome error
			if err != nil {
				outcome = auth.ErrAdminRequired
			}
			g.auth.Count("admin", outcome)
			return err
		}
		opts.SessionSecret = console.SessionSecret(key)
	}
	return console.New(opts).Routes
}

// advertised is where the fleet reaches this instance: registry.address,
// else the listener's address with a wildcard host replaced by the
// hostname.
func advertised(cfg *config.Config, ln net.Listener) string {
	if a := cfg.Registry.Address; a != "" {
		return a
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// heartbeat runs the instance's heartbeat until stop, which says goodbye.
type heartbeat struct {
	hb     *registry.Heartbeat
	cancel context.CancelFunc
	done   chan struct{}
}

func startHeartbeat(hb *registry.Heartbeat) *heartbeat {
	ctx, cancel := context.WithCancel(context.Background())
	h := &heartbeat{hb: hb, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		hb.Run(ctx)
	}()
	return h
}

// now beats at once (the drain starts: the fleet sees it draining without
// waiting for the next beat).
func (h *heartbeat) now() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = h.hb.Beat(ctx)
}

// stop ends the heartbeats and publishes the goodbye: the fleet shows the
// instance stopped, not dead.
func (h *heartbeat) stop(logger *slog.Logger) {
	h.cancel()
	<-h.done
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.hb.Goodbye(ctx); err != nil {
		logger.Warn("registry: goodbye failed; the fleet sees this instance dead once its ttl passes", "err", err)
	}
}
