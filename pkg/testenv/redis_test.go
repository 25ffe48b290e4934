package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestTopologiesServeWritesAndReads(t *testing.T) {
	EachTopology(t, func(t *testing.T, top Topology) {
		c := top.UniversalClient()
		ctx := context.Background()
		for i := range 20 {
			key := fmt.Sprint("k", i)
			if err := c.Set(ctx, key, i, time.Minute).Err(); err != nil {
				t.Fatalf("%s: set %s: %v", top.Name(), key, err)
			}
			if v, err := c.Get(ctx, key).Int(); err != nil || v != i {
				t.Fatalf("%s: get %s = %d, %v", top.Name(), key, v, err)
			}
		}
	})
}

func TestTLSServerNeedsTheClientCertificate(t *testing.T) {
	r := StartRedisWith(t, RedisOptions{TLS: true, Password: "pw"})
	if err := r.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	plain := redis.NewClient(&redis.Options{Addr: r.Addr, Password: "pw", MaxRetries: -1})
	defer plain.Close()
	if err := plain.Ping(context.Background()).Err(); err == nil {
		t.Fatal("a plain-text client was answered by the TLS-only server")
	}
	cfg := r.TLS.ClientConfig(t)
	cfg.Certificates = nil
	anon := redis.NewClient(&redis.Options{Addr: r.Addr, Password: "pw", MaxRetries: -1, TLSConfig: cfg})
	defer anon.Close()
	if err := anon.Ping(context.Background()).Err(); err == nil {
		t.Fatal("a client without a certificate was answered")
	}
}

func TestSlotMatchesRedis(t *testing.T) {
	c := StartCluster(t, ClusterOptions{Masters: 1})
	for _, key := range []string{"", "a", "bf:{c2c:42}:msgs", "{}x", "x{}{y}", "{user1000}.following", "foo{bar}{zap}", "多字节"} {
		want, err := c.Masters[0].command("cluster", "keyslot", key).Int()
		if err != nil {
			t.Fatal(err)
		}
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, Redis says %d", key, got, want)
		}
	}
}

// errorRecorder is a testing.TB that keeps Errorf's messages.
type errorRecorder struct {
	testing.TB
	errs []string
}

func (r *errorRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestSlotCheckCatchesACrossSlotTransaction(t *testing.T) {
	c := StartCluster(t, ClusterOptions{Masters: 1})
	rdb := c.Client()
	rec := &errorRecorder{TB: t}
	check := CheckSlots(rec, rdb)
	ctx := context.Background()
	script := redis.NewScript(`return redis.call('SET', KEYS[1], ARGV[1])`)
	if err := script.Run(ctx, rdb, []string{"{a}x"}, "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{a}y", 1, 0)
		p.Set(ctx, "{a}z", 1, 0)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rec.errs) != 0 || !check.Ran(script.Hash()) {
		t.Fatalf("one-slot work: errors %v, script seen %v", rec.errs, check.Ran(script.Hash()))
	}
	_, _ = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{a}y", 1, 0)
		p.Set(ctx, "{b}y", 1, 0)
		return nil
	})
	if len(rec.errs) == 0 {
		t.Fatal("a transaction over two slots went unnoticed")
	}
}
