package main

import (
	"context"
	"log/slog"
	"net/netip"
	"os"

	"github.com/botfleet/botfleet/pkg/auth"
	"github.com/botfleet/botfleet/pkg/config"
	"github.com/botfleet/botfleet/pkg/contentfilter"
	"github.com/botfleet/botfleet/pkg/im"
	"github.com/botfleet/botfleet/pkg/ratelimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// guards are who may call the instance and how much: keys and tokens, the
// rate limits and quotas, the content filter.
type guards struct {
	auth    *auth.Authenticator
	limiter *ratelimit.Limiter // nil when ratelimit.enabled is false
	filter  *contentfilter.Filter
	proxies []netip.Prefix
}

func newGuards(cfg *config.Config, rdb redis.UniversalClient, logger *slog.Logger, reg prometheus.Registerer) *guards {
	// Both were validated by config.Load.
	secrets, _ := auth.ParseSecrets(cfg.Auth.Token.Secrets)
	g := &guards{
		auth: auth.New(rdb, auth.Options{
			Prefix: cfg.Redis.KeyPrefix, Instance: cfg.Server.InstanceName,
			Bootstrap: append([]string{cfg.Auth.APIKey}, cfg.Auth.APIKeys...), CacheTTL: cfg.Auth.CacheTTL,
			Token: auth.TokenOptions{Secrets: secrets, Issuer: cfg.Auth.Token.Issuer, Audience: cfg.Auth.Token.Audience,
				TTL: cfg.Auth.Token.TTL, Leeway: cfg.Auth.Token.Leeway},
			Logger: logger, Registerer: reg,
		}),
		filter: contentfilter.New(contentfilter.Options{Words: cfg.Filter.Words, Action: cfg.Filter.Action, Registerer: reg}),
	}
	for _, p := range cfg.Server.TrustedProxies {
		prefix, _ := auth.ParsePrefix(p)
		g.proxies = append(g.proxies, prefix)
	}
	if rl := cfg.RateLimit; rl.Enabled {
		g.limiter = ratelimit.New(rdb, ratelimit.Options{
			Prefix: cfg.Redis.KeyPrefix, Fallback: rl.OnRedisError, Instances: rl.Instances,
			ReservationTTL: rl.ReservationTTL, Logger: logger, Registerer: reg,
		})
	}
	return g
}

// turnTokens is a turn's token estimate beyond its request body: the
// system prompt and history, and the reply.
func turnTokens(cfg *config.Config) int {
	reply := cfg.RateLimit.ReplyTokens
	if cfg.LLM.MaxTokens > 0 {
		reply = cfg.LLM.MaxTokens
	}
	return cfg.RateLimit.PromptTokens + reply
}

// admitIM limits IM messages per conversation and screens them.
func (g *guards) admitIM(perMinute int) func(ctx context.Context, m *im.Message) (string, error) {
	return func(ctx context.Context, m *im.Message) (string, error) {
		if v := g.filter.Check(m.Platform, m.Text); v.Blocked {
			return "blocked", nil
		}
		if g.limiter == nil {
			return "", nil
		}
		// The conversation's key starts with its platform (im:<platform>:…),
		// the IM tenant. Redis down: ratelimit's ErrUnavailable, a 503 the
		// platform retries.
		d, err := g.limiter.Allow(ctx, "conversation", m.Conversation, ratelimit.PerMinute(perMinute))
		if err != nil {
			return "", err
		}
		if !d.Allowed {
			return "limited", nil
		}
		return "", nil
	}
}

// warnOpenSecrets warns when the config file holds secrets and anyone on
// the machine may read it.
func warnOpenSecrets(path string, cfg *config.Config, logger *slog.Logger) {
	if path == "" || len(cfg.FileSecrets) == 0 {
		return
	}
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o004 != 0 {
		logger.Warn("config file holds secrets and is world-readable; run chmod 600 on it", "file", path,
			"mode", fi.Mode().Perm().String(), "secrets", cfg.FileSecrets)
	}
}
