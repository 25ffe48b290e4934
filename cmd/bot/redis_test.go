package main

import (
	"fmt"
	"testing"

	"github.com/botfleet/botfleet/pkg/testenv"
)

// A bot reaches Redis over TLS with a client certificate and a password,
// and a Sentinel set whose sentinels and data nodes both require one.
func TestBotReachesProtectedRedis(t *testing.T) {
	for name, r := range map[string]func(t *testing.T) testenv.Topology{
		"tls": func(t *testing.T) testenv.Topology {
			return testenv.StartRedisWith(t, testenv.RedisOptions{TLS: true, Password: "data-pw"})
		},
		"sentinel with passwords": func(t *testing.T) testenv.Topology {
			return testenv.StartSentinel(t, testenv.SentinelOptions{Password: "data-pw", SentinelPassword: "sentinel-pw"})
		},
	} {
		t.Run(name, func(t *testing.T) {
			top := r(t)
			bot := startBot(t, redisEnv(top))
			for i := 1; i <= 2; i++ {
				if res := post(t, bot.url+"/v1/chat", chatBody("protected", fmt.Sprint("m", i))); res.status != 200 || res.Turn != i {
					t.Fatalf("turn %d: %d %+v", i, res.status, res.Error)
				}
			}
			if h := history(t, top, "api:default:session:protected"); len(h) != 4 {
				t.Fatalf("history holds %d entries, want 4", len(h))
			}
		})
	}
}
