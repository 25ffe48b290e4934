// Package config loads a bot instance's configuration with viper: defaults,
// then a YAML file, then the environment, then command-line flags, each
// overriding the one before. Every key can be set in the environment as
// BOT_SECTION_KEY (llm.openai.base_url → BOT_LLM_OPENAI_BASE_URL); the seed
// deployment's names (WEB_PORT, INSTANCE_NAME, REDIS_HOST, REDIS_PORT,
// REDIS_PASSWORD, REDIS_DB, MODEL_ENDPOINT, MODEL_SERVICE_KEY, API_KEY) work
// too. config.example.yaml documents every key with its default.
package config

import (
	"time"

	"github.com/botfleet/botfleet/pkg/llm"
)

// Config is the whole configuration of a bot instance.
type Config struct {
	Server ServerConfig `mapstructure:"server"`
	Log    LogConfig    `mapstructure:"log"`
	Redis  RedisConfig  `mapstructure:"redis"`
	Auth   AuthConfig   `mapstructure:"auth"`
	Memory MemoryConfig `mapstructure:"memory"`
	Chat   ChatConfig   `mapstructure:"chat"`
	Cache  CacheConfig  `mapstructure:"cache"`
	LLM    LLMConfig    `mapstructure:"llm"`
	IM     IMConfig     `mapstructure:"im"`
	Queue  QueueConfig  `mapstructure:"queue"`
	Stream StreamConfig `mapstructure:"stream"`
	// RateLimit is the fleet-wide rate limits and quotas.
	RateLimit RateLimitConfig `mapstructure:"ratelimit"`
	// Filter is the content filter.
	Filter FilterConfig `mapstructure:"filter"`
	// Registry is this instance's heartbeat into the fleet registry.
	Registry RegistryConfig `mapstructure:"registry"`
	// Console is the admin console, /admin.
	Console ConsoleConfig `mapstructure:"console"`
	// Telemetry is trace export.
	Telemetry TelemetryConfig `mapstructure:"telemetry"`

	// FileSecrets are the secret keys (SecretKeys) that the YAML file set,
	// so that a world-readable file holding them can be warned about.
	FileSecrets []string `mapstructure:"-"`
}

// SecretKeys are the keys that hold secrets (and so do llm.models[]'s
// api_key and endpoints[].api_key): never logged, and a file holding one
// should be readable by its owner only.
var SecretKeys = []string{
	"redis.password", "server.metrics_token", "auth.api_key", "auth.api_keys", "auth.admin_key", "auth.token.secrets",
	"llm.openai.api_key", "im.dingtalk.app_secret", "im.feishu.app_secret", "im.feishu.verification_token",
	"im.feishu.encrypt_key", "im.onebot.secret", "im.onebot.access_token", "im.telegram.bot_token",
	"im.telegram.secret_token",
}

// TelemetryConfig is OpenTelemetry trace export.
type TelemetryConfig struct {
	// OTLPEndpoint is an OTLP/HTTP collector's base URL, e.g.
	// http://127.0.0.1:4318 (OTEL_EXPORTER_OTLP_ENDPOINT). Empty, the
	// default, turns tracing off and keeps it off the hot path.
	OTLPEndpoint string `mapstructure:"otlp_endpoint"`
	// SampleRatio is the share of new traces kept, 0..1. Default 1.
	SampleRatio float64 `mapstructure:"sample_ratio"`
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	// Host is the address to listen on. Default 127.0.0.1.
	Host string `mapstructure:"host"`
	// Port is the port to listen on (WEB_PORT); 0 picks a free one.
	// Default 8080.
	Port int `mapstructure:"port"`
	// AddrFile, when set, gets the address the instance listens on once it
	// does (for port 0).
	AddrFile string `mapstructure:"addr_file"`
	// InstanceName names the instance in replies, logs and metrics
	// (INSTANCE_NAME). Default bot-instance-<port>, the port it listens on.
	InstanceName string `mapstructure:"instance_name"`
	// MetricsListen, when set (host:port), serves /metrics there instead
	// of on the API's port. MetricsToken, when set, is the Bearer token
	// /metrics requires. Default: /metrics on the API's port, open (nginx
	// does not pass it on).
	MetricsListen string `mapstructure:"metrics_listen"`
	MetricsToken  string `mapstructure:"metrics_token"`
	// ShutdownGrace bounds the drain on SIGTERM. Default 15s.
	ShutdownGrace time.Duration `mapstructure:"shutdown_grace"`
	// ReadTimeout bounds reading a request. Default 10s.
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// ReadHeaderTimeout bounds reading a request's headers, against slow
	// clients holding connections (slowloris). Default 5s.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// WriteTimeout bounds writing a response, LLM time included. Default 90s.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 75s, longer
	// than nginx's upstream keepalive_timeout.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// MaxBodyBytes is the largest chat request body accepted. Default 65536.
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// MaxWebhookBodyBytes is the largest IM webhook body. Default 262144.
	MaxWebhookBodyBytes int64 `mapstructure:"max_webhook_body_bytes"`
	// MaxHeaderBytes bounds a request's header block. Default 32768.
	MaxHeaderBytes int `mapstructure:"max_header_bytes"`
	// MaxHeaderCount bounds the number of header fields. Default 100.
	MaxHeaderCount int `mapstructure:"max_header_count"`
	// TrustedProxies are the peers (addresses or CIDR prefixes) whose
	// X-Forwarded-For and X-Real-IP name the client; from anyone else those
	// headers are ignored. Default 127.0.0.1/32, ::1/128 (the local nginx).
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// CORS lets browser clients of other origins call the API.
	CORS CORSConfig `mapstructure:"cors"`
	// Pprof serves net/http/pprof under /debug/pprof/ (behind the API
	// key). Default false.
	Pprof bool `mapstructure:"pprof"`
}

// CORSConfig is cross-origin access for browser clients (seed 001 §5.2).
type CORSConfig struct {
	// AllowOrigins are the origins allowed, e.g. https://chat.example.com;
	// "*" allows any. Empty, the default, turns CORS off.
	AllowOrigins []string `mapstructure:"allow_origins"`
	// MaxAge is how long a browser may cache a preflight answer. Default 10m.
	MaxAge time.Duration `mapstructure:"max_age"`
}

// LogConfig is structured logging.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `mapstructure:"level"`
	// File is where logs go; empty means standard error.
	File string `mapstructure:"file"`
	// Format is json or text. Default json.
	Format string `mapstructure:"format"`
	// AccessSample is the share (0..1) of the requests that answered
	// below 400 within AccessSlow that get an access-log line ("http");
	// error answers and slow requests always do. Default 0: nginx logs
	// every request already, and a line per turn was a measurable part
	// of its CPU. 1 logs every request.
	AccessSample float64 `mapstructure:"access_sample"`
	// AccessSlow is how long a request may take before it is logged
	// whatever its status. Default 2s; 0 logs no request for being slow.
	AccessSlow time.Duration `mapstructure:"access_slow"`
}

// RedisConfig is the Redis that holds all shared state: a standalone
// server (host, port), a Sentinel set (master_name, sentinels) or a Cluster
// (addrs), see Topology.
type RedisConfig struct {
	// Host (REDIS_HOST), default 127.0.0.1, and Port (REDIS_PORT), default
	// 6379, name a standalone server.
	Host string `mapstructure:"host"`
	Port int    `mapstructure:"port"`
	// Addrs, when set, make a Redis Cluster client: the nodes it starts
	// from, host:port each (one is enough, it discovers the others).
	Addrs []string `mapstructure:"addrs"`
	// MasterName and Sentinels make a Sentinel client: the name the
	// sentinels monitor the master under, and their host:port addresses.
	MasterName string   `mapstructure:"master_name"`
	Sentinels  []string `mapstructure:"sentinels"`
	// Username (an ACL user; empty is "default") and Password
	// (REDIS_PASSWORD) of the data nodes.
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	// SentinelUsername and SentinelPassword are the sentinels' own, when
	// they require one (their requirepass); empty sends none.
	SentinelUsername string `mapstructure:"sentinel_username"`
	SentinelPassword string `mapstructure:"sentinel_password"`
	// DB (REDIS_DB, default 0); a Cluster has only 0.
	DB int `mapstructure:"db"`
	// TLS encrypts the connections to the data nodes and sentinels.
	TLS RedisTLSConfig `mapstructure:"tls"`
	// WaitReplicas, when above 0, makes a turn's commit wait (WAIT, in the
	// same round trip) until that many replicas hold it, and answers the
	// turn with an error when they do not within WaitReplicasTimeout: an
	// answered turn then survives a failover (see pkg/memory). Default 0.
	WaitReplicas int `mapstructure:"wait_replicas"`
	// WaitReplicasTimeout bounds that wait; 0 takes memory's default, 500ms.
	WaitReplicasTimeout time.Duration `mapstructure:"wait_replicas_timeout"`
	// KeyPrefix starts every key. Default bf.
	KeyPrefix string `mapstructure:"key_prefix"`
	// PoolSize is connections per node; 0 takes go-redis's 10 per CPU.
	PoolSize int `mapstructure:"pool_size"`
	// DialTimeout default 1s; ReadTimeout and WriteTimeout default 2s.
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// MaxRetries is how often a failed command is retried. Default 2.
	MaxRetries int `mapstructure:"max_retries"`
}

// RedisTLSConfig is TLS to Redis.
type RedisTLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `mapstructure:"enabled"`
	// CAFile is a PEM bundle of the CAs to trust; empty trusts the
	// system's.
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a client certificate (PEM) for servers
	// that require one (tls-auth-clients yes).
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName is the name the server's certificate must carry; empty
	// takes the host of the address dialled.
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify accepts any server certificate: for tests only,
	// never in production. Default false.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`
}

// AuthConfig is who may call the API.
type AuthConfig struct {
	// APIKey (API_KEY) and APIKeys are the accepted Bearer keys; at least
	// one is required unless Disabled.
	APIKey  string   `mapstructure:"api_key"`
	APIKeys []string `mapstructure:"api_keys"`
	// Disabled accepts every request without a key. Default false.
	Disabled bool `mapstructure:"disabled"`
	// AdminKey guards /admin/api/...; empty turns the admin API off.
	AdminKey string `mapstructure:"admin_key"`
	// CacheTTL bounds how long an instance uses a key record it read from
	// Redis (changes are pushed at once anyway). Default 30s.
	CacheTTL time.Duration `mapstructure:"cache_ttl"`
	// Token is access tokens (POST /auth/token).
	Token TokenConfig `mapstructure:"token"`
}

// TokenConfig is access tokens: JWTs issued for an API key.
type TokenConfig struct {
	// Secrets are "kid:secret" entries (each secret at least 32 bytes): the
	// first signs, all verify. Empty, the default, turns tokens off.
	Secrets []string `mapstructure:"secrets"`
	// TTL is a token's life. Default 15m.
	TTL time.Duration `mapstructure:"ttl"`
	// Issuer (iss) default botfleet; Audience (aud) default botfleet-api.
	Issuer   string `mapstructure:"issuer"`
	Audience string `mapstructure:"audience"`
	// Leeway absorbs clock skew between instances. Default 5s.
	Leeway time.Duration `mapstructure:"leeway"`
}

// RateLimitConfig is the fleet-wide limits, counted in Redis.
type RateLimitConfig struct {
	// Enabled default true.
	Enabled bool `mapstructure:"enabled"`
	// PerIP is requests per second per client IP (seed 000). Default 1000;
	// 0 turns it off.
	PerIP int `mapstructure:"per_ip"`
	// PerKey is requests per second per API key whose record sets none.
	// Default 0 (none).
	PerKey int `mapstructure:"per_key"`
	// PerConversation is IM messages per minute per conversation. Default 30.
	PerConversation int `mapstructure:"per_conversation"`
	// OnRedisError is closed (503 + Retry-After) or local (limit ÷
	// instances on each instance). Default closed.
	OnRedisError string `mapstructure:"on_redis_error"`
	// Instances is the fleet size the local fallback divides by. Default 4.
	Instances int `mapstructure:"instances"`
	// ReservationTTL frees the quota of a turn whose instance died; longer
	// than server.write_timeout. Default 2m.
	ReservationTTL time.Duration `mapstructure:"reservation_ttl"`
	// ReplyTokens is the reply part of a turn's token estimate when
	// llm.max_tokens is 0. Default 1024.
	ReplyTokens int `mapstructure:"reply_tokens"`
	// PromptTokens is the system prompt and history part of a turn's
	// token estimate: what a turn may add to its request beyond the
	// message. Default 2048.
	PromptTokens int `mapstructure:"prompt_tokens"`
}

// FilterConfig is the content filter (seed 002's sensitive-word audit).
type FilterConfig struct {
	// Words are matched case-insensitively anywhere in a message. Empty,
	// the default, turns the filter off.
	Words []string `mapstructure:"words"`
	// Action is block (refuse the message) or flag (answer it, log and
	// count it). Default block.
	Action string `mapstructure:"action"`
}

// RegistryConfig is the instance's heartbeat into the fleet registry
// (pkg/registry), which the console and the alerting read.
type RegistryConfig struct {
	// Interval is the time between heartbeats. Default 2s.
	Interval time.Duration `mapstructure:"interval"`
	// TTL is how long an instance without a heartbeat is still alive.
	// Default 6s; at least twice the interval.
	TTL time.Duration `mapstructure:"ttl"`
	// Retain is how long a dead or stopped instance is still shown.
	// Default 10m.
	Retain time.Duration `mapstructure:"retain"`
	// Window is the time the published rates and percentiles cover.
	// Default 1m.
	Window time.Duration `mapstructure:"window"`
	// Address is where the fleet reaches this instance; empty is the
	// listener's address, a wildcard host replaced by the hostname.
	Address string `mapstructure:"address"`
}

// ConsoleConfig is the admin console.
type ConsoleConfig struct {
	// SessionTTL is how long a console login lasts. Default 12h.
	SessionTTL time.Duration `mapstructure:"session_ttl"`
}

// MemoryConfig is conversation memory.
type MemoryConfig struct {
	// MaxEntries is how many entries a conversation keeps. Default 100.
	MaxEntries int `mapstructure:"max_entries"`
	// IdleTTL forgets a conversation untouched this long. Default 30m.
	IdleTTL time.Duration `mapstructure:"idle_ttl"`
	// DefaultScope is member, group or global. Default member.
	DefaultScope string `mapstructure:"default_scope"`
	// Lease is how long a crashed turn can hold its conversation. Default 5s.
	Lease time.Duration `mapstructure:"lease"`
	// WaitTimeout bounds waiting for a busy conversation. Default 30s.
	WaitTimeout time.Duration `mapstructure:"wait_timeout"`
	// IdempotencyTTL is how long a reply answers repeats of its request.
	// Default 24h.
	IdempotencyTTL time.Duration `mapstructure:"idempotency_ttl"`
}

// StreamConfig is streamed answers (Server-Sent Events) and their
// resumable copies in Redis.
type StreamConfig struct {
	// TTL keeps a finished stream for resumes. Default 10m.
	TTL time.Duration `mapstructure:"ttl"`
	// FlushInterval batches pieces into one Redis write. Default 25ms.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	// StallAfter: a followed stream silent this long lost its instance.
	// Default 6s.
	StallAfter time.Duration `mapstructure:"stall_after"`
	// Heartbeat is how long a stream may stay silent before a keep-alive
	// comment. Default 15s.
	Heartbeat time.Duration `mapstructure:"heartbeat"`
	// WriteTimeout bounds each write to the client. Default 30s.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// DetachOnDisconnect runs a /v1/chat stream's turn to its end when the
	// client goes away, so it can resume. Default true.
	DetachOnDisconnect bool `mapstructure:"detach_on_disconnect"`
	// MaxDuration bounds a detached turn. Default 10m.
	MaxDuration time.Duration `mapstructure:"max_duration"`
}

// ChatConfig is the chat API.
type ChatConfig struct {
	// MaxMessageChars is the longest message in characters. Default 4000.
	MaxMessageChars int `mapstructure:"max_message_chars"`
}

// CacheConfig is the first-turn response cache (seed 000).
type CacheConfig struct {
	// Enabled default true.
	Enabled bool `mapstructure:"enabled"`
	// TTL default 1h.
	TTL time.Duration `mapstructure:"ttl"`
}

// LLMConfig is the language-model backend.
type LLMConfig struct {
	// Provider is builtin or openai. Default builtin.
	Provider string `mapstructure:"provider"`
	// Fallback is the backend that answers when the provider cannot:
	// builtin, or empty for none (fail with 503). Default empty.
	Fallback string `mapstructure:"fallback"`
	// Model is the model name sent to the openai provider. Default gpt-4o-mini.
	Model string `mapstructure:"model"`
	// SystemPrompt starts every prompt.
	SystemPrompt string `mapstructure:"system_prompt"`
	// Temperature default 0.7 (0 is sent as 0); MaxTokens 0 leaves it to
	// the server.
	Temperature float64 `mapstructure:"temperature"`
	MaxTokens   int     `mapstructure:"max_tokens"`
	// ContextTokens is the seed model's context window; 0 sends the whole
	// history.
	ContextTokens int `mapstructure:"context_tokens"`
	// Images says the seed model takes image input: pictures from IM
	// platforms are sent to it. Default false: the text alone.
	Images bool `mapstructure:"images"`
	// Timeout is per attempt, default 30s; Retries default 3.
	Timeout time.Duration `mapstructure:"timeout"`
	Retries int           `mapstructure:"retries"`
	OpenAI  OpenAIConfig  `mapstructure:"openai"`
	Builtin BuiltinConfig `mapstructure:"builtin"`
	Breaker BreakerConfig `mapstructure:"breaker"`
	// Models are models beside the seed's one (YAML only).
	Models []ModelConfig `mapstructure:"models"`
	// DefaultModel is the model of a request that names none. Default: the
	// seed model (llm.model with provider openai, else builtin).
	DefaultModel string `mapstructure:"default_model"`
}

// ModelConfig is one model of llm.models. Unset fields take the llm
// section's values.
type ModelConfig struct {
	// Name is what clients ask for. Required.
	Name string `mapstructure:"name"`
	// Provider is openai (default) or builtin.
	Provider string `mapstructure:"provider"`
	// Upstream is the model name sent to the provider. Default Name.
	Upstream string `mapstructure:"upstream"`
	// BaseURL and APIKey name one endpoint; Endpoints several, balanced
	// by weight.
	BaseURL   string           `mapstructure:"base_url"`
	APIKey    string           `mapstructure:"api_key"`
	Endpoints []EndpointConfig `mapstructure:"endpoints"`
	// Temperature, Timeout and Retries override the llm section's.
	Temperature *float64      `mapstructure:"temperature"`
	Timeout     time.Duration `mapstructure:"timeout"`
	Retries     *int          `mapstructure:"retries"`
	// MaxTokens caps replies; ContextTokens is the context window.
	MaxTokens     int `mapstructure:"max_tokens"`
	ContextTokens int `mapstructure:"context_tokens"`
	// Images says the model takes image input.
	Images bool `mapstructure:"images"`
	// Fallbacks are models tried in order when this one is unavailable.
	Fallbacks []string `mapstructure:"fallbacks"`
	// Logprobs asks for token log-probabilities to compute confidence.
	Logprobs bool `mapstructure:"logprobs"`
}

// EndpointConfig is one base URL and key of a model.
type EndpointConfig struct {
	BaseURL string `mapstructure:"base_url"`
	APIKey  string `mapstructure:"api_key"`
	// Weight is its share of the model's traffic. Default 1.
	Weight int `mapstructure:"weight"`
}

// AllEndpoints are the model's endpoints: base_url/api_key first, then
// endpoints.
func (m ModelConfig) AllEndpoints() []EndpointConfig {
	var out []EndpointConfig
	if m.BaseURL != "" {
		out = append(out, EndpointConfig{BaseURL: m.BaseURL, APIKey: m.APIKey, Weight: 1})
	}
	return append(out, m.Endpoints...)
}

// OpenAIConfig is an OpenAI-compatible endpoint.
type OpenAIConfig struct {
	// BaseURL (MODEL_ENDPOINT), e.g. http://127.0.0.1:9998/v1.
	BaseURL string `mapstructure:"base_url"`
	// APIKey (MODEL_SERVICE_KEY).
	APIKey string `mapstructure:"api_key"`
	// Logprobs asks for token log-probabilities to compute confidence.
	Logprobs bool `mapstructure:"logprobs"`
}

// BuiltinConfig is the offline backend.
type BuiltinConfig struct {
	// FAQ are canned answers; default llm.DefaultFAQ.
	FAQ []llm.FAQ `mapstructure:"faq"`
	// FallbackTemplate answers what no FAQ matches; default llm.DefaultFallback.
	FallbackTemplate string `mapstructure:"fallback_template"`
	// FallbackConfidence default 0.5.
	FallbackConfidence float64 `mapstructure:"fallback_confidence"`
}

// BreakerConfig tunes the circuit breaker around the provider.
type BreakerConfig struct {
	// Failures in a row open it. Default 5.
	Failures uint32 `mapstructure:"failures"`
	// Interval resets the closed-state counts. Default 60s.
	Interval time.Duration `mapstructure:"interval"`
	// OpenTimeout is how long it stays open. Default 30s.
	OpenTimeout time.Duration `mapstructure:"open_timeout"`
	// HalfOpenRequests are let through to probe. Default 1.
	HalfOpenRequests uint32 `mapstructure:"half_open_requests"`
}

// IMConfig is the IM platforms' webhooks and their shared pipeline.
type IMConfig struct {
	// GroupScope is the memory scope of group chats: member (one memory per
	// member of a group) or group (one per group). Default member.
	GroupScope string `mapstructure:"group_scope"`
	// RequireMention answers group messages only when they mention the bot.
	// Default true.
	RequireMention bool `mapstructure:"require_mention"`
	// UrgentKeywords send a message to the urgent channel. Default 紧急, 重要, urgent.
	UrgentKeywords []string `mapstructure:"urgent_keywords"`
	// BatchPrefixes mark scheduled sends (text starting with one, stripped)
	// for the batch channel. Default [定时], [batch].
	BatchPrefixes []string `mapstructure:"batch_prefixes"`
	// BatchSenders are "<platform>:<sender id>" of scheduler accounts whose
	// messages all go to the batch channel.
	BatchSenders []string `mapstructure:"batch_senders"`
	// DedupTTL remembers event ids fleet-wide, longer than every platform's
	// retry window (Telegram keeps updates 24h). Default 25h.
	DedupTTL time.Duration `mapstructure:"dedup_ttl"`
	// SendTimeout bounds one platform API call. Default 10s.
	SendTimeout time.Duration `mapstructure:"send_timeout"`
	// SendLease is how long a worker holds the right to send one reply.
	// Default 30s.
	SendLease time.Duration `mapstructure:"send_lease"`
	// StreamReplies makes a reply appear and grow as the model streams it,
	// on platforms that let the bot edit its message (Telegram, Feishu,
	// DingTalk with im.dingtalk.card_template_id).
	// Default false.
	StreamReplies bool `mapstructure:"stream_replies"`
	// MediaMaxBytes is the largest image or file downloaded from a
	// message. Default 10485760 (10 MiB).
	MediaMaxBytes int64 `mapstructure:"media_max_bytes"`
	// MediaTypes are the content types taken, sniffed from the bytes.
	// Default image/png, image/jpeg, image/gif, image/webp, application/pdf, text/plain.
	MediaTypes []string `mapstructure:"media_types"`
	// LinkLease is how long the leader lease of a `connections: one` link
	// lasts unrenewed: a dead holder's connection moves to another
	// instance within it. Default 15s.
	LinkLease time.Duration `mapstructure:"link_lease"`

	DingTalk DingTalkConfig `mapstructure:"dingtalk"`
	Feishu   FeishuConfig   `mapstructure:"feishu"`
	OneBot   OneBotConfig   `mapstructure:"onebot"`
	Telegram TelegramConfig `mapstructure:"telegram"`
}

// DingTalkConfig is the DingTalk enterprise robot (HTTP callback or Stream mode).
type DingTalkConfig struct {
	// Mode is webhook (HTTP callbacks) or stream (Stream mode: the bot
	// dials DingTalk's gateway). Default webhook.
	Mode string `mapstructure:"mode"`
	// Connections is every (each instance holds a Stream connection;
	// DingTalk spreads events over them) or one. Default every.
	Connections string `mapstructure:"connections"`
	// ClientID is the app's Client ID (AppKey), required in stream mode.
	ClientID string `mapstructure:"client_id"`
	// AppSecret turns DingTalk on and verifies the sign header (the
	// Client Secret in stream mode).
	AppSecret string `mapstructure:"app_secret"`
	// APIURL is the Open API that opens Stream connections. Default
	// https://api.dingtalk.com.
	APIURL string `mapstructure:"api_url"`
	// WebhookHosts are the hosts a sessionWebhook may point at.
	// Default oapi.dingtalk.com, api.dingtalk.com.
	WebhookHosts []string `mapstructure:"webhook_hosts"`
	// CardTemplateID is an AI card template (DingTalk's card platform):
	// with it and im.stream_replies, replies stream into an AI card
	// (needs client_id). Empty: no streaming on DingTalk.
	CardTemplateID string `mapstructure:"card_template_id"`
	// CardContentKey is the template's streamed text variable. Default content.
	CardContentKey string `mapstructure:"card_content_key"`
}

// FeishuConfig is a Feishu/Lark app's event subscription.
type FeishuConfig struct {
	// Mode is webhook (events POSTed to the fleet) or stream (the long
	// connection: the bot dials Feishu's event WebSocket). Default webhook.
	Mode string `mapstructure:"mode"`
	// Connections is every (each instance holds a connection; Feishu
	// hands each event to one of them) or one. Default every.
	Connections string `mapstructure:"connections"`
	// AppID and AppSecret (which turns Feishu on) fetch the tenant token.
	AppID     string `mapstructure:"app_id"`
	AppSecret string `mapstructure:"app_secret"`
	// VerificationToken is required in webhook mode; EncryptKey makes events encrypted and signed.
	VerificationToken string `mapstructure:"verification_token"`
	EncryptKey        string `mapstructure:"encrypt_key"`
	// BaseURL is the Open API. Default https://open.feishu.cn.
	BaseURL string `mapstructure:"base_url"`
	// BotOpenID tells the bot's mention from others'; empty counts any mention.
	BotOpenID string `mapstructure:"bot_open_id"`
	// StreamCard is how a streamed reply's card grows: patch (an
	// interactive card updated with PATCH, needs no extra permission) or
	// cardkit (a CardKit streaming card: the typewriter effect, 10 updates
	// a second; needs cardkit:card:write and Feishu 7.20+). Default patch.
	StreamCard string `mapstructure:"stream_card"`
}

// OneBotConfig is QQ through OneBot v11: reverse HTTP POST, or forward
// and reverse WebSocket.
type OneBotConfig struct {
	// Mode is webhook (reverse HTTP POST) or stream (WebSocket: with
	// WSURL the bot dials the implementation, forward; without, the
	// implementation dials /onebot/v11/ws, reverse). Default webhook.
	Mode string `mapstructure:"mode"`
	// Connections is every (each instance holds a forward WebSocket;
	// each gets every event) or one. Default every.
	Connections string `mapstructure:"connections"`
	// WSURL is the implementation's forward WebSocket server, e.g.
	// ws://127.0.0.1:3001.
	WSURL string `mapstructure:"ws_url"`
	// WSEndpoints is universal (one socket at WSURL for events and API
	// calls) or split (WSURL/event and WSURL/api). Default universal.
	WSEndpoints string `mapstructure:"ws_endpoints"`
	// Secret turns webhook mode on and verifies X-Signature.
	Secret string `mapstructure:"secret"`
	// APIURL is the OneBot HTTP API (required with a secret); AccessToken
	// its token, and the WebSocket's (required for reverse WebSocket).
	APIURL      string `mapstructure:"api_url"`
	AccessToken string `mapstructure:"access_token"`
}

// TelegramConfig is a Telegram bot: webhook, or getUpdates long polling.
type TelegramConfig struct {
	// Mode is webhook (setWebhook) or stream (getUpdates long polling by
	// one instance of the fleet at a time; the offset is kept in Redis).
	// Default webhook.
	Mode string `mapstructure:"mode"`
	// PollTimeout is getUpdates' long-poll timeout. Default 25s.
	PollTimeout time.Duration `mapstructure:"poll_timeout"`
	// BotToken calls the Bot API (required; it turns stream mode on).
	BotToken string `mapstructure:"bot_token"`
	// SecretToken turns webhook mode on: setWebhook's secret_token.
	SecretToken string `mapstructure:"secret_token"`
	// APIURL is the Bot API. Default https://api.telegram.org.
	APIURL string `mapstructure:"api_url"`
	// BotUsername recognizes mentions in groups; empty asks getMe.
	BotUsername string `mapstructure:"bot_username"`
}

// QueueConfig is the Redis Streams job queue and this instance's workers.
type QueueConfig struct {
	// Workers run jobs concurrently on this instance. Default 4.
	Workers int `mapstructure:"workers"`
	// JobTimeout is each job's deadline. Default 90s.
	JobTimeout time.Duration `mapstructure:"job_timeout"`
	// Block is how long an idle worker waits on the streams per read. Default 1s.
	Block time.Duration `mapstructure:"block"`
	// ClaimIdle: a job without a heartbeat this long (its instance died) is
	// reclaimed by another instance. Default 30s.
	ClaimIdle time.Duration `mapstructure:"claim_idle"`
	// ReclaimInterval is how often idle jobs are looked for; 0 takes the
	// queue's default, ClaimIdle/4.
	ReclaimInterval time.Duration `mapstructure:"reclaim_interval"`
	// RetryBackoff is how long a failed job waits before its retry. Default 5s.
	RetryBackoff time.Duration `mapstructure:"retry_backoff"`
	// MaxDeliveries: a job tried this often goes to the dead-letter stream. Default 5.
	MaxDeliveries int `mapstructure:"max_deliveries"`
	// FairEvery: every n-th take looks at batch before normal before urgent,
	// so that urgent floods cannot starve the rest; 0 is strict priority. Default 0.
	FairEvery int `mapstructure:"fair_every"`
	// DeadMaxLen caps the dead-letter stream. Default 10000.
	DeadMaxLen int64 `mapstructure:"dead_max_len"`
}
