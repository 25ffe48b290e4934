package config

import (
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/auth"
)

// validate checks what the types cannot; its error names the key. A
// client (botctl) needs no credential of its own.
func (c *Config) validate(client bool) error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	oneOf := func(key, got string, allowed ...string) error {
		if slices.Contains(allowed, got) {
			return nil
		}
		return bad(key, "must be one of %v, got %q", allowed, got)
	}
	if err := positiveDurations(reflect.ValueOf(*c), "", bad); err != nil {
		return err
	}
	// Counts and sizes: a least value each (0: must not be negative).
	counts := []struct {
		key      string
		n, least int64
	}{
		{"server.max_body_bytes", c.Server.MaxBodyBytes, 1024},
		{"memory.max_entries", int64(c.Memory.MaxEntries), 2},
		{"chat.max_message_chars", int64(c.Chat.MaxMessageChars), 1},
		{"llm.retries", int64(c.LLM.Retries), 0},
		{"llm.breaker.failures", int64(c.LLM.Breaker.Failures), 1},
		{"llm.breaker.half_open_requests", int64(c.LLM.Breaker.HalfOpenRequests), 1},
		{"im.media_max_bytes", c.IM.MediaMaxBytes, 1},
		{"queue.workers", int64(c.Queue.Workers), 1},
		{"queue.max_deliveries", int64(c.Queue.MaxDeliveries), 1},
		{"queue.fair_every", int64(c.Queue.FairEvery), 0},
		{"queue.dead_max_len", c.Queue.DeadMaxLen, 1},
		{"server.max_webhook_body_bytes", c.Server.MaxWebhookBodyBytes, 1024},
		{"server.max_header_bytes", int64(c.Server.MaxHeaderBytes), 4096},
		{"server.max_header_count", int64(c.Server.MaxHeaderCount), 16},
		{"ratelimit.instances", int64(c.RateLimit.Instances), 1},
		{"ratelimit.reply_tokens", int64(c.RateLimit.ReplyTokens), 1},
		{"ratelimit.prompt_tokens", int64(c.RateLimit.PromptTokens), 0},
	}
	for _, p := range counts {
		switch {
		case p.n >= p.least:
		case p.least == 0:
			return bad(p.key, "must not be negative, got %d", p.n)
		default:
			return bad(p.key, "must be at least %d, got %d", p.least, p.n)
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
	case c.Log.AccessSample < 0 || c.Log.AccessSample > 1:
		return bad("log.access_sample", "must be between 0 and 1, got %v", c.Log.AccessSample)
	case c.Log.AccessSlow < 0:
		return bad("log.access_slow", "must not be negative, got %v", c.Log.AccessSlow)
	case c.Telemetry.SampleRatio < 0 || c.Telemetry.SampleRatio > 1:
		return bad("telemetry.sample_ratio", "must be between 0 and 1, got %v", c.Telemetry.SampleRatio)
	case c.Telemetry.OTLPEndpoint != "" && !strings.HasPrefix(c.Telemetry.OTLPEndpoint, "http://") && !strings.HasPrefix(c.Telemetry.OTLPEndpoint, "https://"):
		return bad("telemetry.otlp_endpoint", "must be an http:// or https:// URL, got %q", c.Telemetry.OTLPEndpoint)
	case c.LLM.Temperature < 0 || c.LLM.Temperature > 2:
		return bad("llm.temperature", "must be between 0 and 2, got %v", c.LLM.Temperature)
	case !client && !c.Auth.Disabled && c.Auth.APIKey == "" && len(c.Auth.APIKeys) == 0:
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
		oneOf("im.dingtalk.mode", c.IM.DingTalk.Mode, "webhook", "stream"),
		oneOf("im.feishu.mode", c.IM.Feishu.Mode, "webhook", "stream"),
		oneOf("im.onebot.mode", c.IM.OneBot.Mode, "webhook", "stream"),
		oneOf("im.telegram.mode", c.IM.Telegram.Mode, "webhook", "stream"),
		oneOf("im.dingtalk.connections", c.IM.DingTalk.Connections, "every", "one"),
		oneOf("im.feishu.connections", c.IM.Feishu.Connections, "every", "one"),
		oneOf("im.feishu.stream_card", c.IM.Feishu.StreamCard, "patch", "cardkit"),
		oneOf("im.onebot.connections", c.IM.OneBot.Connections, "every", "one"),
		oneOf("im.onebot.ws_endpoints", c.IM.OneBot.WSEndpoints, "universal", "split"),
		c.validateRedis(bad),
		oneOf("ratelimit.on_redis_error", c.RateLimit.OnRedisError, "closed", "local"),
		oneOf("filter.action", c.Filter.Action, "block", "flag"),
		c.validateIM(bad),
		c.validateEdge(bad),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// zeroDurations are the duration keys where 0 means something (off, or a
// package's default); each has its own check against a negative value.
var zeroDurations = []string{"log.access_slow", "redis.wait_replicas_timeout", "auth.token.leeway", "queue.reclaim_interval"}

// positiveDurations checks that every duration of the section v, keyed
// under prefix, is positive but for zeroDurations, in declaration order;
// lists (llm.models) are not entered.
func positiveDurations(v reflect.Value, prefix string, bad func(key, format string, args ...any) error) error {
	for f, fv := range v.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		switch d, ok := fv.Interface().(time.Duration); {
		case ok && d <= 0 && !slices.Contains(zeroDurations, key):
			return bad(key, "must be a positive duration, got %v", d)
		case fv.Kind() == reflect.Struct:
			if err := positiveDurations(fv, key+".", bad); err != nil {
				return err
			}
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
			if !httpURL(ep.BaseURL) {
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
		{"im.dingtalk.api_url", im.DingTalk.APIURL},
	}
	for _, u := range urls {
		if u.v != "" && !httpURL(u.v) {
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
	case im.Feishu.AppSecret != "" && im.Feishu.Mode == "webhook" && im.Feishu.VerificationToken == "":
		return bad("im.feishu.verification_token", "required with im.feishu.app_secret in webhook mode (the app's Events and Callbacks page shows it)")
	case im.DingTalk.Mode == "stream" && (im.DingTalk.ClientID == "" || im.DingTalk.AppSecret == ""):
		return bad("im.dingtalk.client_id", "stream mode needs the app's Client ID (AppKey) and im.dingtalk.app_secret (Client Secret)")
	case im.DingTalk.CardTemplateID != "" && im.DingTalk.ClientID == "":
		return bad("im.dingtalk.client_id", "required with im.dingtalk.card_template_id (the card API takes the app's access token)")
	case im.DingTalk.CardTemplateID != "" && im.DingTalk.CardContentKey == "":
		return bad("im.dingtalk.card_content_key", "required with im.dingtalk.card_template_id: the template's streamed text variable")
	case im.Feishu.Mode == "stream" && (im.Feishu.AppID == "" || im.Feishu.AppSecret == ""):
		return bad("im.feishu.app_id", "stream mode needs im.feishu.app_id and im.feishu.app_secret")
	case im.OneBot.Mode == "stream" && im.OneBot.WSURL == "" && im.OneBot.AccessToken == "":
		return bad("im.onebot.access_token", "stream mode needs im.onebot.ws_url (forward WebSocket: the bot dials it) or im.onebot.access_token (reverse WebSocket: the implementation dials /onebot/v11/ws with it)")
	case im.OneBot.WSURL != "" && !strings.HasPrefix(im.OneBot.WSURL, "ws://") && !strings.HasPrefix(im.OneBot.WSURL, "wss://"):
		return bad("im.onebot.ws_url", "must be a ws:// or wss:// URL, got %q", im.OneBot.WSURL)
	case im.Telegram.Mode == "stream" && im.Telegram.BotToken == "":
		return bad("im.telegram.bot_token", "required in stream mode (getUpdates)")
	case im.Telegram.Mode == "stream" && im.Telegram.APIURL == "":
		return bad("im.telegram.api_url", "required in stream mode")
	case im.LinkLease < 300*time.Millisecond:
		return bad("im.link_lease", "must be at least 300ms, got %v", im.LinkLease)
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
	case q.ReclaimInterval < 0:
		return bad("queue.reclaim_interval", "must not be negative (0 is claim_idle/4), got %v", q.ReclaimInterval)
	case q.ClaimIdle < 3*q.Block/2:
		return bad("queue.claim_idle", "must be well above queue.block (%v), got %v", q.Block, q.ClaimIdle)
	case q.RetryBackoff > q.ClaimIdle:
		return bad("queue.retry_backoff", "must not exceed queue.claim_idle (%v), got %v", q.ClaimIdle, q.RetryBackoff)
	}
	return nil
}

// httpURL reports whether s is an absolute http or https URL.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
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

// validateEdge checks the listener's limits, auth and the rate limits.
func (c *Config) validateEdge(bad func(key, format string, args ...any) error) error {
	s, a, r := c.Server, c.Auth, c.RateLimit
	for _, p := range s.TrustedProxies {
		if _, err := auth.ParsePrefix(p); err != nil {
			return bad("server.trusted_proxies", "%v", err)
		}
	}
	if _, err := auth.ParseSecrets(a.Token.Secrets); err != nil {
		return bad("auth.token.secrets", "%v", err)
	}
	switch {
	case a.Token.Leeway < 0:
		return bad("auth.token.leeway", "must not be negative, got %v", a.Token.Leeway)
	case r.PerIP < 0 || r.PerKey < 0 || r.PerConversation < 0:
		return bad("ratelimit", "per_ip, per_key and per_conversation must not be negative")
	case r.ReservationTTL <= s.WriteTimeout:
		return bad("ratelimit.reservation_ttl", "must be longer than server.write_timeout (%v), the longest turn; got %v", s.WriteTimeout, r.ReservationTTL)
	}
	for _, w := range c.Filter.Words {
		if strings.TrimSpace(w) == "" {
			return bad("filter.words", "an empty word would match every message")
		}
	}
	return nil
}
