package config

import (
	"fmt"
	"slices"
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
	}
	for _, p := range durations {
		if p.d <= 0 {
			return bad(p.key, "must be a positive duration, got %v", p.d)
		}
	}
	switch {
	case c.Server.Port < 1 || c.Server.Port > 65535:
		return bad("server.port", "must be 1..65535, got %d", c.Server.Port)
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
	for _, err := range []error{
		oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"),
		oneOf("log.format", c.Log.Format, "json", "text"),
		oneOf("memory.default_scope", c.Memory.DefaultScope, "member", "group", "global"),
		oneOf("llm.provider", c.LLM.Provider, "builtin", "openai"),
		oneOf("llm.fallback", c.LLM.Fallback, "", "builtin"),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}
