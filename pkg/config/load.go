package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/chat"
	"github.com/botfleet/botfleet/pkg/confparse"
	"github.com/botfleet/botfleet/pkg/llm"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/botfleet/botfleet/pkg/registry"
	"github.com/botfleet/botfleet/pkg/stream"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// seedEnv maps keys to the seed deployment's environment names. The
// BOT_SECTION_KEY name of a key wins over its seed name when both are set.
var seedEnv = map[string]string{
	"server.port":             "WEB_PORT",
	"server.instance_name":    "INSTANCE_NAME",
	"redis.host":              "REDIS_HOST",
	"redis.port":              "REDIS_PORT",
	"redis.password":          "REDIS_PASSWORD",
	"redis.db":                "REDIS_DB",
	"llm.openai.base_url":     "MODEL_ENDPOINT",
	"llm.openai.api_key":      "MODEL_SERVICE_KEY",
	"auth.api_key":            "API_KEY",
	"telemetry.otlp_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
}

// The packages' own defaults, which the configuration's are.
var (
	mem     = memory.DefaultOptions()
	streams = stream.DefaultOptions()
	fleet   = registry.DefaultOptions()
)

// defaults are every key with its default value; a key that is not here is
// unknown and rejected. Where a package has a default of its own, the
// value here is that default, so that the two cannot drift.
var defaults = map[string]any{
	"server.host":           "127.0.0.1",
	"server.port":           8080,
	"server.addr_file":      "",
	"server.metrics_listen": "",
	"server.metrics_token":  "",
	"server.instance_name":  "",
	"server.shutdown_grace": "15s",
	"server.read_timeout":   "10s",
	"server.write_timeout":  "90s",
	"server.idle_timeout":   "75s",
	"server.max_body_bytes": 65536,
	"server.pprof":          false,

	"server.read_header_timeout":    "5s",
	"server.max_webhook_body_bytes": 262144,
	"server.max_header_bytes":       32768,
	"server.max_header_count":       100,
	"server.trusted_proxies":        []string{"127.0.0.1/32", "::1/128"},
	"server.cors.allow_origins":     []string{},
	"server.cors.max_age":           "10m",

	"log.level":  "info",
	"log.file":   "",
	"log.format": "json",

	"log.access_sample": 0.0,
	"log.access_slow":   "2s",

	"telemetry.otlp_endpoint": "",
	"telemetry.sample_ratio":  1.0,

	"redis.host":                     "127.0.0.1",
	"redis.port":                     6379,
	"redis.addrs":                    []string{},
	"redis.master_name":              "",
	"redis.sentinels":                []string{},
	"redis.username":                 "",
	"redis.password":                 "",
	"redis.sentinel_username":        "",
	"redis.sentinel_password":        "",
	"redis.db":                       0,
	"redis.tls.enabled":              false,
	"redis.tls.ca_file":              "",
	"redis.tls.cert_file":            "",
	"redis.tls.key_file":             "",
	"redis.tls.server_name":          "",
	"redis.tls.insecure_skip_verify": false,
	"redis.wait_replicas":            0,
	"redis.wait_replicas_timeout":    "0s",
	"redis.key_prefix":               mem.Prefix,
	"redis.pool_size":                0,
	"redis.dial_timeout":             "1s",
	"redis.read_timeout":             "2s",
	"redis.write_timeout":            "2s",
	"redis.max_retries":              2,

	"auth.api_key":   "",
	"auth.api_keys":  []string{},
	"auth.disabled":  false,
	"auth.admin_key": "",

	"auth.cache_ttl":      "30s",
	"auth.token.secrets":  []string{},
	"auth.token.ttl":      "15m",
	"auth.token.issuer":   "botfleet",
	"auth.token.audience": "botfleet-api",
	"auth.token.leeway":   "5s",

	"ratelimit.enabled":          true,
	"ratelimit.per_ip":           1000,
	"ratelimit.per_key":          0,
	"ratelimit.per_conversation": 30,
	"ratelimit.on_redis_error":   "closed",
	"ratelimit.instances":        4,
	"ratelimit.reservation_ttl":  "2m",
	"ratelimit.reply_tokens":     1024,
	"ratelimit.prompt_tokens":    2048,

	"filter.words":  []string{},
	"filter.action": "block",

	"memory.max_entries":     mem.MaxEntries,
	"memory.idle_ttl":        mem.IdleTTL.String(),
	"memory.default_scope":   chat.ScopeMember,
	"memory.lease":           mem.Lease.String(),
	"memory.wait_timeout":    mem.WaitTimeout.String(),
	"memory.idempotency_ttl": mem.IdempotencyTTL.String(),

	"chat.max_message_chars": 4000,

	"cache.enabled": true,
	"cache.ttl":     "1h",

	"llm.provider":                    "builtin",
	"llm.fallback":                    "",
	"llm.model":                       "gpt-4o-mini",
	"llm.system_prompt":               "You are botfleet, a helpful assistant. Answer briefly and in the user's language.",
	"llm.temperature":                 0.7,
	"llm.max_tokens":                  0,
	"llm.context_tokens":              0,
	"llm.images":                      false,
	"llm.models":                      []map[string]any{},
	"llm.default_model":               "",
	"llm.timeout":                     llm.DefaultOpenAITimeout.String(),
	"llm.retries":                     llm.DefaultRetries,
	"llm.openai.base_url":             "",
	"llm.openai.api_key":              "",
	"llm.openai.logprobs":             false,
	"llm.builtin.faq":                 llm.DefaultFAQ,
	"llm.builtin.fallback_template":   llm.DefaultFallback,
	"llm.builtin.fallback_confidence": llm.DefaultFallbackConfidence,
	"llm.breaker.failures":            llm.DefaultBreakerFailures,
	"llm.breaker.interval":            llm.DefaultBreakerInterval.String(),
	"llm.breaker.open_timeout":        llm.DefaultBreakerOpenTimeout.String(),
	"llm.breaker.half_open_requests":  llm.DefaultBreakerHalfOpenRequests,

	"im.group_scope":               "member",
	"im.require_mention":           true,
	"im.urgent_keywords":           []string{"紧急", "重要", "urgent"},
	"im.batch_prefixes":            []string{"[定时]", "[batch]"},
	"im.batch_senders":             []string{},
	"im.dedup_ttl":                 "25h",
	"im.send_timeout":              "10s",
	"im.send_lease":                "30s",
	"im.link_lease":                "15s",
	"im.media_max_bytes":           10485760,
	"im.stream_replies":            false,
	"im.media_types":               []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"},
	"im.dingtalk.mode":             "webhook",
	"im.dingtalk.connections":      "every",
	"im.dingtalk.client_id":        "",
	"im.dingtalk.app_secret":       "",
	"im.dingtalk.api_url":          "https://api.dingtalk.com",
	"im.dingtalk.webhook_hosts":    []string{"oapi.dingtalk.com", "api.dingtalk.com"},
	"im.dingtalk.card_template_id": "",
	"im.dingtalk.card_content_key": "content",
	"im.feishu.mode":               "webhook",
	"im.feishu.connections":        "every",
	"im.feishu.app_id":             "",
	"im.feishu.app_secret":         "",
	"im.feishu.verification_token": "",
	"im.feishu.encrypt_key":        "",
	"im.feishu.base_url":           "https://open.feishu.cn",
	"im.feishu.bot_open_id":        "",
	"im.feishu.stream_card":        "patch",
	"im.onebot.mode":               "webhook",
	"im.onebot.connections":        "every",
	"im.onebot.ws_url":             "",
	"im.onebot.ws_endpoints":       "universal",
	"im.onebot.secret":             "",
	"im.onebot.api_url":            "",
	"im.onebot.access_token":       "",
	"im.telegram.mode":             "webhook",
	"im.telegram.poll_timeout":     "25s",
	"im.telegram.bot_token":        "",
	"im.telegram.secret_token":     "",
	"im.telegram.api_url":          "https://api.telegram.org",
	"im.telegram.bot_username":     "",

	"stream.ttl":                  streams.TTL.String(),
	"stream.flush_interval":       streams.FlushInterval.String(),
	"stream.stall_after":          streams.StallAfter.String(),
	"stream.heartbeat":            "15s",
	"stream.write_timeout":        "30s",
	"stream.detach_on_disconnect": true,
	"stream.max_duration":         "10m",

	"queue.workers":          4,
	"queue.job_timeout":      "90s",
	"queue.block":            "1s",
	"queue.claim_idle":       "30s",
	"queue.reclaim_interval": "0s",
	"queue.retry_backoff":    "5s",
	"queue.max_deliveries":   5,
	"queue.fair_every":       0,
	"queue.dead_max_len":     10000,

	"registry.interval": fleet.Interval.String(),
	"registry.ttl":      fleet.TTL.String(),
	"registry.retain":   fleet.Retain.String(),
	"registry.window":   "1m",
	"registry.address":  "",

	"console.session_ttl": "12h",
}

// modelKeyRE finds a non-empty api_key in llm.models as fmt prints it.
var modelKeyRE = regexp.MustCompile(`api_key:[^\s\]]`)

// Sources are where Load reads from, lowest precedence first.
type Sources struct {
	// File is a YAML file; empty means none.
	File string
	// Getenv looks up environment variables; nil means none.
	Getenv func(string) string
	// Flags are values given on the command line, by key.
	Flags map[string]string
	// Client is set by tools that only talk to Redis (botctl): the checks
	// of what a serving instance needs (a credential) are skipped.
	Client bool
}

// Load reads the configuration from src and validates it. Its error is one
// line that names the key and the problem.
func Load(src Sources) (*Config, error) {
	v := viper.New()
	var fileSecrets []string
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	if src.File != "" {
		v.SetConfigFile(src.File)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: read %s: %s", src.File, confparse.OneLine(err))
		}
		for _, k := range v.AllKeys() {
			if _, ok := defaults[k]; !ok && !underList(k) {
				return nil, fmt.Errorf("config: %s: unknown key in %s", k, src.File)
			}
		}
		for _, k := range SecretKeys {
			if s := v.GetStringSlice(k); v.InConfig(k) && len(s) > 0 && s[0] != "" {
				fileSecrets = append(fileSecrets, k)
			}
		}
		if modelKeyRE.MatchString(fmt.Sprint(v.Get("llm.models"))) {
			fileSecrets = append(fileSecrets, "llm.models[].api_key")
		}
	}
	if src.Getenv != nil {
		for k := range defaults {
			for _, name := range EnvNames(k) {
				if val := src.Getenv(name); val != "" {
					v.Set(k, val)
					break
				}
			}
		}
	}
	for k, val := range src.Flags {
		v.Set(k, val)
	}
	var c Config
	// ErrorUnused refuses unknown keys inside lists of maps (llm.models),
	// which the key check above cannot see.
	err := v.Unmarshal(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		durations,
		mapstructure.StringToSliceHookFunc(","),
	)), func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = true })
	if err != nil {
		return nil, fmt.Errorf("config: %s", decodeError(err))
	}
	c.FileSecrets = fileSecrets
	c.Log.Level = strings.ToLower(c.Log.Level)
	if c.Server.InstanceName == "" && c.Server.Port != 0 {
		c.Server.InstanceName = "bot-instance-" + strconv.Itoa(c.Server.Port)
	}
	if err := c.validate(src.Client); err != nil {
		return nil, err
	}
	return &c, nil
}

// EnvNames returns the environment variables that set key, the first
// winning: BOT_SECTION_KEY, then the seed name if the key has one.
func EnvNames(key string) []string {
	names := []string{"BOT_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))}
	if s, ok := seedEnv[key]; ok {
		names = append(names, s)
	}
	return names
}

// underList reports whether k lies inside a list-of-maps key (the FAQ),
// whose inner keys viper may report.
func underList(k string) bool {
	return strings.HasPrefix(k, "llm.builtin.faq.") || strings.HasPrefix(k, "llm.models.")
}

// durations decodes a time.Duration with confparse.ParseDuration.
func durations(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	return confparse.ParseDuration(data)
}

// decodeError turns mapstructure's "decoding failed ...: 'llm.timeout' msg"
// into "llm.timeout: msg", on one line.
func decodeError(err error) string {
	msg := confparse.OneLine(err)
	if _, rest, ok := strings.Cut(msg, "error(s): "); ok {
		msg = rest
	}
	if rest, ok := strings.CutPrefix(msg, "'"); ok {
		if key, why, ok := strings.Cut(rest, "' "); ok {
			return key + ": " + why
		}
	}
	return msg
}

// Variables returns every environment variable that Load reads, sorted:
// the BOT_SECTION_KEY name of every key and the seed names.
func Variables() []string {
	var out []string
	for k := range defaults {
		out = append(out, EnvNames(k)...)
	}
	slices.Sort(out)
	return out
}
