package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/spf13/viper"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(Sources{Getenv: env(map[string]string{"API_KEY": "k"})})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Port != 8080 || c.Server.InstanceName != "bot-instance-8080" || c.Memory.MaxEntries != 100 ||
		c.Memory.IdleTTL != 30*time.Minute || c.LLM.Provider != "builtin" || c.Cache.TTL != time.Hour ||
		c.LLM.Timeout != 30*time.Second || c.LLM.Retries != 3 || len(c.LLM.Builtin.FAQ) == 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPrecedenceFileEnvFlags(t *testing.T) {
	file := testenv.WriteFile(t, "config.yaml", "server:\n  port: 9000\nmemory:\n  max_entries: 10\n  idle_ttl: 5m\nllm:\n  model: from-file\nauth:\n  api_key: filekey\n")
	c, err := Load(Sources{
		File: file,
		Getenv: env(map[string]string{
			"WEB_PORT": "9100", "BOT_MEMORY_MAX_ENTRIES": "20", "BOT_LLM_MODEL": "from-env",
			"REDIS_HOST": "10.0.0.9", "REDIS_PORT": "6390", "MODEL_ENDPOINT": "http://x/v1", "MODEL_SERVICE_KEY": "sk",
			"INSTANCE_NAME": "seed-name", "BOT_REDIS_ADDRS": "a:1,b:2",
		}),
		Flags: map[string]string{"server.port": "9200"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"flag beats env beats file", c.Server.Port, 9200},
		{"BOT_ env beats file", c.Memory.MaxEntries, 20},
		{"file beats default", c.Memory.IdleTTL, 5 * time.Minute},
		{"BOT_LLM_MODEL", c.LLM.Model, "from-env"},
		{"REDIS_HOST", c.Redis.Host, "10.0.0.9"},
		{"REDIS_PORT", c.Redis.Port, 6390},
		{"MODEL_ENDPOINT", c.LLM.OpenAI.BaseURL, "http://x/v1"},
		{"MODEL_SERVICE_KEY", c.LLM.OpenAI.APIKey, "sk"},
		{"INSTANCE_NAME", c.Server.InstanceName, "seed-name"},
		{"file api key", c.Auth.APIKey, "filekey"},
		{"list from env", strings.Join(c.Redis.Addrs, " "), "a:1 b:2"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestBadConfigIsOneClearLine(t *testing.T) {
	cases := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"no api key", "", map[string]string{}, "auth.api_key: required"},
		{"bad provider", "", map[string]string{"API_KEY": "k", "BOT_LLM_PROVIDER": "gpt"}, "llm.provider: must be one of"},
		{"openai without endpoint", "", map[string]string{"API_KEY": "k", "BOT_LLM_PROVIDER": "openai"}, "llm.openai.base_url: required"},
		{"bad port", "", map[string]string{"API_KEY": "k", "WEB_PORT": "70000"}, "server.port: must be 0..65535"},
		{"port not a number", "", map[string]string{"API_KEY": "k", "WEB_PORT": "eighty"}, "config: server.port: "},
		{"bare number duration", "llm:\n  timeout: 30000\n", map[string]string{"API_KEY": "k"}, "bare number"},
		{"bad duration", "", map[string]string{"API_KEY": "k", "BOT_LLM_TIMEOUT": "soon"}, `config: llm.timeout: "soon" is not a duration`},
		{"unknown key", "memroy:\n  max_entries: 3\n", map[string]string{"API_KEY": "k"}, "memroy.max_entries: unknown key"},
		{"bad yaml", "server: [\n", map[string]string{"API_KEY": "k"}, "config: read"},
		{"bad scope", "", map[string]string{"API_KEY": "k", "BOT_MEMORY_DEFAULT_SCOPE": "room"}, "memory.default_scope"},
		{"im group scope", "", map[string]string{"API_KEY": "k", "BOT_IM_GROUP_SCOPE": "global"}, "im.group_scope"},
		{"onebot without api", "", map[string]string{"API_KEY": "k", "BOT_IM_ONEBOT_SECRET": "s"}, "im.onebot.api_url: required"},
		{"feishu without token", "", map[string]string{"API_KEY": "k", "BOT_IM_FEISHU_APP_SECRET": "s", "BOT_IM_FEISHU_APP_ID": "a"}, "im.feishu.verification_token: required"},
		{"telegram secret chars", "", map[string]string{"API_KEY": "k", "BOT_IM_TELEGRAM_SECRET_TOKEN": "no spaces", "BOT_IM_TELEGRAM_BOT_TOKEN": "1:x"}, "im.telegram.secret_token"},
		{"telegram bad url", "", map[string]string{"API_KEY": "k", "BOT_IM_TELEGRAM_API_URL": "api.telegram.org"}, "im.telegram.api_url"},
		{"dingtalk card without client id", "", map[string]string{"API_KEY": "k", "BOT_IM_DINGTALK_APP_SECRET": "s", "BOT_IM_DINGTALK_CARD_TEMPLATE_ID": "tpl.schema"}, "im.dingtalk.client_id: required with im.dingtalk.card_template_id"},
		{"feishu stream card", "", map[string]string{"API_KEY": "k", "BOT_IM_FEISHU_STREAM_CARD": "typewriter"}, "im.feishu.stream_card"},
		{"no workers", "", map[string]string{"API_KEY": "k", "BOT_QUEUE_WORKERS": "0"}, "queue.workers"},
		{"backoff over claim idle", "", map[string]string{"API_KEY": "k", "BOT_QUEUE_RETRY_BACKOFF": "1m"}, "queue.retry_backoff"},
		{"db on a cluster", "", map[string]string{"API_KEY": "k", "BOT_REDIS_ADDRS": "a:1,b:2", "REDIS_DB": "3"}, "redis.db: must be 0 on a Cluster"},
		{"cluster and sentinel", "", map[string]string{"API_KEY": "k", "BOT_REDIS_ADDRS": "a:1", "BOT_REDIS_MASTER_NAME": "m"}, "redis.addrs: are a Cluster's nodes"},
		{"master without sentinels", "", map[string]string{"API_KEY": "k", "BOT_REDIS_MASTER_NAME": "m"}, "redis.sentinels: required with redis.master_name"},
		{"sentinels without master", "", map[string]string{"API_KEY": "k", "BOT_REDIS_SENTINELS": "s:26379"}, "redis.master_name: required"},
		{"sentinel password alone", "", map[string]string{"API_KEY": "k", "BOT_REDIS_SENTINEL_PASSWORD": "pw"}, "redis.sentinel_password: is for Sentinel"},
		{"bad address", "", map[string]string{"API_KEY": "k", "BOT_REDIS_ADDRS": "10.0.0.1"}, `redis.addrs: "10.0.0.1" is not a host:port`},
		{"bad sentinel port", "", map[string]string{"API_KEY": "k", "BOT_REDIS_MASTER_NAME": "m", "BOT_REDIS_SENTINELS": "s:0"}, `redis.sentinels: "s:0"`},
		{"wait longer than a read", "", map[string]string{"API_KEY": "k", "BOT_REDIS_WAIT_REPLICAS": "1", "BOT_REDIS_READ_TIMEOUT": "400ms"}, "redis.wait_replicas_timeout: must be shorter than redis.read_timeout (400ms)"},
		{"negative wait", "", map[string]string{"API_KEY": "k", "BOT_REDIS_WAIT_REPLICAS": "-1"}, "redis.wait_replicas"},
		{"tls keys while off", "", map[string]string{"API_KEY": "k", "BOT_REDIS_TLS_CA_FILE": "/etc/ca.pem"}, "redis.tls.enabled: is false"},
		{"tls ca missing", "", map[string]string{"API_KEY": "k", "BOT_REDIS_TLS_ENABLED": "true", "BOT_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, "redis.tls.ca_file: open /nonexistent/ca.pem"},
		{"tls cert without key", "", map[string]string{"API_KEY": "k", "BOT_REDIS_TLS_ENABLED": "true", "BOT_REDIS_TLS_CERT_FILE": "/c.pem"}, "set both"},
		{"negative reclaim", "", map[string]string{"API_KEY": "k", "BOT_QUEUE_RECLAIM_INTERVAL": "-1s"}, "queue.reclaim_interval"},
		{"bad trusted proxy", "", map[string]string{"API_KEY": "k", "BOT_SERVER_TRUSTED_PROXIES": "10.0.0.0/33"}, "server.trusted_proxies"},
		{"short token secret", "", map[string]string{"API_KEY": "k", "BOT_AUTH_TOKEN_SECRETS": "k1:tooshort"}, "auth.token.secrets: entry 1 (kid k1)"},
		{"admin key is an api key", "", map[string]string{"API_KEY": "same-key-0123456789", "BOT_AUTH_ADMIN_KEY": "same-key-0123456789"}, "auth.admin_key"},
		{"fallback", "", map[string]string{"API_KEY": "k", "BOT_RATELIMIT_ON_REDIS_ERROR": "open"}, "ratelimit.on_redis_error"},
		{"reservation shorter than a turn", "", map[string]string{"API_KEY": "k", "BOT_RATELIMIT_RESERVATION_TTL": "30s"}, "ratelimit.reservation_ttl"},
		{"empty filter word", "", map[string]string{"API_KEY": "k", "BOT_FILTER_WORDS": "bad, ,worse"}, "filter.words"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := Sources{Getenv: env(tc.env)}
			if tc.file != "" {
				src.File = testenv.WriteFile(t, "config.yaml", tc.file)
			}
			_, err := Load(src)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line containing %q", msg, tc.want)
			}
		})
	}
}

func TestRedisTopologies(t *testing.T) {
	ca := testenv.WriteFile(t, "config.yaml", "not a certificate")
	cases := []struct {
		name     string
		env      map[string]string
		topology string
		ends     string
	}{
		{"seed names", map[string]string{"REDIS_HOST": "10.0.0.9", "REDIS_PORT": "6390", "REDIS_PASSWORD": "pw", "REDIS_DB": "2"}, Standalone, "10.0.0.9:6390"},
		{"sentinel", map[string]string{"BOT_REDIS_MASTER_NAME": "mymaster", "BOT_REDIS_SENTINELS": "s1:26379,s2:26379", "BOT_REDIS_SENTINEL_PASSWORD": "spw", "REDIS_PASSWORD": "pw"}, Sentinel, "s1:26379 s2:26379"},
		{"cluster", map[string]string{"BOT_REDIS_ADDRS": "c1:7000,c2:7000,c3:7000"}, Cluster, "c1:7000 c2:7000 c3:7000"},
		{"one cluster endpoint", map[string]string{"BOT_REDIS_ADDRS": "clustercfg.example.com:6379", "BOT_REDIS_TLS_ENABLED": "true"}, Cluster, "clustercfg.example.com:6379"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["API_KEY"] = "k"
			c, err := Load(Sources{Getenv: env(tc.env)})
			if err != nil {
				t.Fatal(err)
			}
			if c.Redis.Topology() != tc.topology || strings.Join(c.Redis.Endpoints(), " ") != tc.ends {
				t.Fatalf("topology %s at %v, want %s at %s", c.Redis.Topology(), c.Redis.Endpoints(), tc.topology, tc.ends)
			}
		})
	}
	c, err := Load(Sources{Getenv: env(map[string]string{"API_KEY": "k", "BOT_REDIS_TLS_ENABLED": "true", "BOT_REDIS_TLS_SERVER_NAME": "redis.internal"})})
	if err != nil {
		t.Fatal(err)
	}
	if tc, err := c.Redis.TLSConfig(); err != nil || tc == nil || tc.ServerName != "redis.internal" || tc.InsecureSkipVerify {
		t.Fatalf("tls config %+v, %v", tc, err)
	}
	_, err = Load(Sources{Getenv: env(map[string]string{"API_KEY": "k", "BOT_REDIS_TLS_ENABLED": "true", "BOT_REDIS_TLS_CA_FILE": ca})})
	if err == nil || !strings.Contains(err.Error(), "redis.tls.ca_file: no PEM certificate") {
		t.Fatalf("a CA file without a certificate: %v", err)
	}
}

func TestIMListsFromEnv(t *testing.T) {
	c, err := Load(Sources{Getenv: env(map[string]string{"API_KEY": "k", "BOT_IM_URGENT_KEYWORDS": "紧急,加急", "BOT_QUEUE_CLAIM_IDLE": "10s"})})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.IM.UrgentKeywords, "|") != "紧急|加急" || c.Queue.ClaimIdle != 10*time.Second || !c.IM.RequireMention {
		t.Fatalf("im %+v queue %+v", c.IM, c.Queue)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(Sources{File: "../../config.example.yaml", Getenv: env(map[string]string{"API_KEY": "k"})})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Load(Sources{Getenv: env(map[string]string{"API_KEY": "k"})})
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("config.example.yaml must hold the defaults:\nexample %+v\ndefault %+v", c, d)
	}
	v := viper.New()
	v.SetConfigFile("../../config.example.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	for k := range defaults {
		if !v.InConfig(k) {
			t.Errorf("config.example.yaml does not document %s", k)
		}
	}
}

func TestModelsDecodeAndBadOnesNameTheirKey(t *testing.T) {
	f := testenv.WriteFile(t, "config.yaml", `
llm:
  provider: openai
  model: seed
  openai: {base_url: "http://127.0.0.1:1/v1"}
  default_model: ds
  models:
    - name: ds
      base_url: http://127.0.0.1:2/v1
      context_tokens: 1000
      temperature: 0
      fallbacks: [seed, builtin]
    - name: pool
      endpoints:
        - {base_url: "http://127.0.0.1:3/v1", api_key: a, weight: 2}
        - {base_url: "http://127.0.0.1:4/v1", api_key: b}
`)
	c, err := Load(Sources{File: f, Getenv: env(map[string]string{"API_KEY": "k"})})
	if err != nil {
		t.Fatal(err)
	}
	ds, pool := c.LLM.Models[0], c.LLM.Models[1]
	if c.LLM.DefaultModel != "ds" || ds.Provider != "openai" || ds.ContextTokens != 1000 || ds.Temperature == nil || *ds.Temperature != 0 ||
		len(ds.Fallbacks) != 2 || len(pool.AllEndpoints()) != 2 || pool.Endpoints[0].Weight != 2 {
		t.Fatalf("models %+v", c.LLM.Models)
	}
	for body, key := range map[string]string{
		"llm: {models: [{base_url: 'http://x/v1'}]}":                                              "llm.models[0].name",
		"llm: {models: [{name: a}]}":                                                              "llm.models[0].base_url",
		"llm: {models: [{name: a, provider: gpt, base_url: 'http://x/v1'}]}":                      "llm.models[0].provider",
		"llm: {models: [{name: a, base_url: 'ftp://x'}]}":                                         "llm.models[0].endpoints[0].base_url",
		"llm: {models: [{name: a, base_url: 'http://x/v1'}, {name: a, base_url: 'http://y/v1'}]}": "llm.models[1].name",
		"llm: {models: [{name: a, base_url: 'http://x/v1', colour: red}]}":                        "colour",
	} {
		_, err := Load(Sources{File: testenv.WriteFile(t, "config.yaml", body), Getenv: env(map[string]string{"API_KEY": "k"})})
		if err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line naming %s", body, err, key)
		}
	}
}

func TestSecretsInTheFileAreNamedAndNeverShown(t *testing.T) {
	file := testenv.WriteFile(t, "config.yaml", "auth:\n  api_key: file-secret-1\n  admin_key: \"\"\nim:\n  onebot:\n    secret: file-secret-2\n    api_url: http://127.0.0.1:3000\n")
	c, err := Load(Sources{File: file, Getenv: env(map[string]string{"BOT_AUTH_TOKEN_SECRETS": "k:" + strings.Repeat("s", 32)})})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.FileSecrets, ",") != "auth.api_key,im.onebot.secret" {
		t.Fatalf("file secrets %v", c.FileSecrets)
	}
	_, err = Load(Sources{File: file, Getenv: env(map[string]string{"BOT_AUTH_TOKEN_SECRETS": "k:file-secret-3"})})
	if err == nil || strings.Contains(err.Error(), "file-secret") {
		t.Fatalf("error %v must not show the secret", err)
	}
	if _, err := Load(Sources{Client: true}); err != nil {
		t.Fatalf("a client needs no API key: %v", err)
	}
}

func TestDurationsMustBePositive(t *testing.T) {
	for _, key := range []string{
		"server.shutdown_grace", "server.read_timeout", "server.write_timeout", "server.idle_timeout",
		"server.read_header_timeout", "server.cors.max_age", "auth.cache_ttl", "auth.token.ttl",
		"ratelimit.reservation_ttl", "redis.dial_timeout", "redis.read_timeout", "redis.write_timeout",
		"memory.idle_ttl", "memory.lease", "memory.wait_timeout", "memory.idempotency_ttl", "cache.ttl",
		"llm.timeout", "llm.breaker.interval", "llm.breaker.open_timeout", "im.dedup_ttl", "im.send_timeout",
		"im.send_lease", "im.link_lease", "im.telegram.poll_timeout", "queue.job_timeout", "queue.block",
		"queue.claim_idle", "queue.retry_backoff", "stream.ttl", "stream.flush_interval", "stream.stall_after",
		"stream.heartbeat", "stream.write_timeout", "stream.max_duration", "registry.interval", "registry.ttl",
		"registry.retain", "registry.window", "console.session_ttl",
	} {
		for _, d := range []string{"0s", "-1s"} {
			_, err := Load(Sources{Getenv: env(map[string]string{"API_KEY": "k", EnvNames(key)[0]: d})})
			want := "config: " + key + ": must be a positive duration, got " + d
			if err == nil || err.Error() != want {
				t.Errorf("%s %s: error %v, want %q", key, d, err, want)
			}
		}
	}
	zero := map[string]string{"API_KEY": "k"}
	for _, key := range zeroDurations {
		zero[EnvNames(key)[0]] = "0s"
	}
	if _, err := Load(Sources{Getenv: env(zero)}); err != nil {
		t.Errorf("0 for %v: %v", zeroDurations, err)
	}
}
