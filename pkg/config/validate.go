package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// validate checks what the types cannot; its error names the key.
func (c *Config) validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	oneOf := func(key, got string, allowed ...string) error {
		if slices.Contains(allowed, got) {
			return nil
		}
		return bad(key, "must be one of %v, got %q", allowed, got)
	}
	durations := []struct {
		key string
		d   time.Duration
	}{
		{"server.shutdown_grace", c.Server.ShutdownGrace},
		{"server.read_timeout", c.Server.ReadTimeout},
		{"server.write_timeout", c.Server.WriteTimeout},
		{"server.idle_timeout", c.Server.IdleTimeout},
		{"redis.dial_timeout", c.Redis.DialTimeout},
		{"redis.read_timeout", c.Redis.ReadTimeout},
		{"redis.write_timeout", c.Redis.WriteTimeout},
		{"memory.idle_ttl", c.Memory.IdleTTL},
		{"memory.lease", c.Memory.Lease},
		{"memory.wait_timeout", c.Memory.WaitTimeout},
		{"memory.idempotency_ttl", c.Memory.IdempotencyTTL},
		{"cache.ttl", c.Cache.TTL},
		{"llm.timeout", c.LLM.Timeout},
		{"llm.breaker.interval", c.LLM.Breaker.Interval},
		{"llm.breaker.open_timeout", c.LLM.Breaker.OpenTimeout},
		{"im.dedup_ttl", c.IM.DedupTTL},
		{"im.send_timeout", c.IM.SendTimeout},
		{"im.send_lease", c.IM.SendLease},
		{"queue.job_timeout", c.Queue.JobTimeout},
		{"queue.block", c.Queue.Block},
		{"queue.claim_idle", c.Queue.ClaimIdle},
		{"queue.reclaim_interval", c.Queue.ReclaimInterval},
		{"queue.retry_backoff", c.Queue.RetryBackoff},
		{"stream.ttl", c.Stream.TTL},
		{"stream.flush_interval", c.Stream.FlushInterval},
		{"stream.stall_after", c.Stream.StallAfter},
		{"stream.heartbeat", c.Stream.Heartbeat},
		{"stream.write_timeout", c.Stream.WriteTimeout},
		{"stream.max_duration", c.Stream.MaxDuration},
		{"registry.interval", c.Registry.Interval},
		{"registry.ttl", c.Registry.TTL},
		{"registry.retain", c.Registry.Retain},
		{"registry.window", c.Registry.Window},
		{"console.session_ttl", c.Console.SessionTTL},
	}
	for _, p := range durations {
		if p.d <= 0 {
			return bad(p.key, "must be a positive duration, got %v", p.d)
		}
	}
	switch a := c.Auth; {
	case c.Registry.TTL < 2*c.Registry.Interval:
		return bad("registry.ttl", "must be at least twice registry.interval (%v), got %v", c.Registry.Interval, c.Registry.TTL)
	case a.AdminKey != "" && len(a.AdminKey) < 16:
		return bad("auth.admin_key", "must be at least 16 characters")
	case a.AdminKey != "" && (a.AdminKey == a.APIKey || slices.Contains(a.APIKeys, a.AdminKey)):
		return bad("auth.admin_key", "must differ from every API key")
	case c.Server.Port < 0 || c.Server.Port > 65535:
		return bad("server.port", "must be 0..65535 (0 picks a free port), got %d", c.Server.Port)
	case c.Redis.Port < 1 || c.Redis.Port > 65535:
		return bad("redis.port", "must be 1..65535, got %d", c.Redis.Port)
	case c.Redis.DB < 0:
		return bad("redis.db", "must not be negative, got %d", c.Redis.DB)
	case c.Server.MaxBodyBytes < 1024:
		return bad("server.max_body_bytes", "must be at least 1024, got %d", c.Server.MaxBodyBytes)
	case c.Memory.MaxEntries < 2:
		return bad("memory.max_entries", "must be at least 2, got %d", c.Memory.MaxEntries)
	case c.Chat.MaxMessageChars < 1:
		return bad("chat.max_message_chars", "must be positive, got %d", c.Chat.MaxMessageChars)
	case c.Telemetry.SampleRatio < 0 || c.Telemetry.SampleRatio > 1:
		return bad("telemetry.sample_ratio", "must be between 0 and 1, got %v", c.Telemetry.SampleRatio)
	case c.Telemetry.OTLPEndpoint != "" && !strings.HasPrefix(c.Telemetry.OTLPEndpoint, "http://") && !strings.HasPrefix(c.Telemetry.OTLPEndpoint, "https://"):
		return bad("telemetry.otlp_endpoint", "must be an http:// or https:// URL, got %q", c.Telemetry.OTLPEndpoint)
	case c.LLM.Temperature < 0 || c.LLM.Temperature > 2:
		return bad("llm.temperature", "must be between 0 and 2, got %v", c.LLM.Temperature)
	case c.LLM.Retries < 0:
		return bad("llm.retries", "must not be negative, got %d", c.LLM.Retries)
	case c.LLM.Breaker.Failures < 1:
		return bad("llm.breaker.failures", "must be at least 1")
	case c.LLM.Breaker.HalfOpenRequests < 1:
		return bad("llm.breaker.half_open_requests", "must be at least 1")
	case !c.Auth.Disabled && c.Auth.APIKey == "" && len(c.Auth.APIKeys) == 0:
		return bad("auth.api_key", "required: set API_KEY (or auth.api_keys, or auth.disabled: true for a closed network)")
	case c.LLM.Provider == "openai" && c.LLM.OpenAI.BaseURL == "":
		return bad("llm.openai.base_url", "required with provider openai: set MODEL_ENDPOINT, e.g. http://127.0.0.1:9998/v1")
	case c.LLM.Provider == "openai" && c.LLM.Model == "":
		return bad("llm.model", "required with provider openai")
	}
	if err := c.validateModels(bad); err != nil {
		return err
	}
	for _, err := range []error{
		oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"),
		oneOf("log.format", c.Log.Format, "json", "text"),
		oneOf("memory.default_scope", c.Memory.DefaultScope, "member", "group", "global"),
		oneOf("llm.provider", c.LLM.Provider, "builtin", "openai"),
		oneOf("llm.fallback", c.LLM.Fallback, "", "builtin"),
		oneOf("im.group_scope", c.IM.GroupScope, "member", "group"),
		c.validateIM(bad),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// validateModels checks llm.models: names, providers and endpoints (the
// router checks the fallbacks).
func (c *Config) validateModels(bad func(key, format string, args ...any) error) error {
	seen := map[string]bool{}
	if c.LLM.Provider == "openai" {
		seen[c.LLM.Model] = true
	}
	for i := range c.LLM.Models {
		m := &c.LLM.Models[i]
		key := fmt.Sprintf("llm.models[%d]", i)
		if m.Provider == "" {
			m.Provider = "openai"
		}
		switch {
		case m.Name == "":
			return bad(key+".name", "required")
		case seen[m.Name]:
			return bad(key+".name", "%q names two models", m.Name)
		case m.Provider != "openai" && m.Provider != "builtin":
			return bad(key+".provider", "must be openai or builtin, got %q", m.Provider)
		case m.Provider == "openai" && len(m.AllEndpoints()) == 0:
			return bad(key+".base_url", "required with provider openai (or give endpoints)")
		case m.Temperature != nil && (*m.Temperature < 0 || *m.Temperature > 2):
			return bad(key+".temperature", "must be between 0 and 2, got %v", *m.Temperature)
		case m.ContextTokens < 0 || m.MaxTokens < 0:
			return bad(key+".context_tokens", "must not be negative")
		}
		seen[m.Name] = true
		for j, ep := range m.AllEndpoints() {
			if p, err := url.Parse(ep.BaseURL); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return bad(fmt.Sprintf("%s.endpoints[%d].base_url", key, j), "must be an http(s) URL, got %q", ep.BaseURL)
			}
			if ep.Weight < 0 {
				return bad(fmt.Sprintf("%s.endpoints[%d].weight", key, j), "must not be negative, got %d", ep.Weight)
			}
		}
	}
	return nil
}

// validateIM checks the IM platforms and the queue.
func (c *Config) validateIM(bad func(key, format string, args ...any) error) error {
	im, q := c.IM, c.Queue
	urls := []struct{ key, v string }{
		{"im.feishu.base_url", im.Feishu.BaseURL}, {"im.telegram.api_url", im.Telegram.APIURL}, {"im.onebot.api_url", im.OneBot.APIURL},
	}
	for _, u := range urls {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return bad(u.key, "must be an http(s) URL, got %q", u.v)
		}
	}
	switch {
	case im.DedupTTL < time.Minute:
		return bad("im.dedup_ttl", "must be at least 1m (longer than the platforms' retry windows; 25h covers Telegram's 24h), got %v", im.DedupTTL)
	case im.SendLease <= im.SendTimeout:
		return bad("im.send_lease", "must be longer than im.send_timeout (%v), got %v", im.SendTimeout, im.SendLease)
	case q.JobTimeout <= im.SendLease:
		return bad("queue.job_timeout", "must be longer than im.send_lease (%v), so a job can outwait a dead sender's lease; got %v", im.SendLease, q.JobTimeout)
	case im.Feishu.AppSecret != "" && im.Feishu.AppID == "":
		return bad("im.feishu.app_id", "required with im.feishu.app_secret")
	case im.Feishu.AppSecret != "" && im.Feishu.VerificationToken == "":
		return bad("im.feishu.verification_token", "required with im.feishu.app_secret (the app's Events and Callbacks page shows it)")
	case im.Feishu.AppSecret != "" && im.Feishu.BaseURL == "":
		return bad("im.feishu.base_url", "required with im.feishu.app_secret")
	case im.OneBot.Secret != "" && im.OneBot.APIURL == "":
		return bad("im.onebot.api_url", "required with im.onebot.secret: the OneBot HTTP API that sends replies, e.g. http://127.0.0.1:3000")
	case im.Telegram.SecretToken != "" && im.Telegram.BotToken == "":
		return bad("im.telegram.bot_token", "required with im.telegram.secret_token")
	case im.Telegram.SecretToken != "" && im.Telegram.APIURL == "":
		return bad("im.telegram.api_url", "required with im.telegram.secret_token")
	case im.Telegram.SecretToken != "" && !telegramSecret(im.Telegram.SecretToken):
		return bad("im.telegram.secret_token", "must be 1 to 256 of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
	case q.Workers < 1:
		return bad("queue.workers", "must be at least 1, got %d", q.Workers)
	case q.MaxDeliveries < 1:
		return bad("queue.max_deliveries", "must be at least 1, got %d", q.MaxDeliveries)
	case q.FairEvery < 0:
		return bad("queue.fair_every", "must not be negative, got %d", q.FairEvery)
	case q.DeadMaxLen < 1:
		return bad("queue.dead_max_len", "must be at least 1, got %d", q.DeadMaxLen)
	case q.ClaimIdle < 3*q.Block/2:
		return bad("queue.claim_idle", "must be well above queue.block (%v), got %v", q.Block, q.ClaimIdle)
	case q.RetryBackoff > q.ClaimIdle:
		return bad("queue.retry_backoff", "must not exceed queue.claim_idle (%v), got %v", q.ClaimIdle, q.RetryBackoff)
	}
	return nil
}

func telegramSecret(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
