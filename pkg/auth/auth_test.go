package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/botfleet/botfleet/pkg/testenv"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jonboulle/clockwork"
	"github.com/redis/go-redis/v9"
)

var (
	local   = netip.MustParseAddr("127.0.0.1")
	secretA = Secret{ID: "a", Key: []byte(strings.Repeat("A", 32))}
	secretB = Secret{ID: "b", Key: []byte(strings.Repeat("B", 32))}
)

// instance starts an Authenticator and waits until its cache is live.
func instance(t *testing.T, rdb redis.UniversalClient, opts Options) *Authenticator {
	t.Helper()
	a := New(rdb, opts)
	t.Cleanup(func() { a.Close() })
	waitLive(t, a, true)
	return a
}

func waitLive(t *testing.T, a *Authenticator, want bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("authenticator live = %v", want), func() bool { return a.Live() == want })
}

func TestRevocationReachesEveryInstanceBeforeRevokeReturns(t *testing.T) {
	r := testenv.StartRedis(t)
	a := instance(t, r.Client(), Options{Instance: "a"})
	b := instance(t, r.Client(), Options{Instance: "b"})
	store := NewStore(r.Client(), StoreOptions{})
	ctx := context.Background()
	secret, k, err := store.Create(ctx, Spec{Name: "ci", Owner: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "bf_") || len(secret) != 67 || !k.Expires.Equal(k.Created.Add(MaxTTL)) {
		t.Fatalf("secret %d chars, key %+v", len(secret), k)
	}
	for _, inst := range []*Authenticator{a, b} {
		p, err := inst.Authenticate(ctx, secret, local)
		if err != nil || p.Tenant != k.ID || p.KeyID != k.ID || p.Kind != KindKey || p.Name != "ci" {
			t.Fatalf("before revocation: %+v, %v", p, err)
		}
	}
	// Both instances now answer from their caches (no Redis round trip) ...
	_, prop, err := store.Revoke(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if prop.Instances != 2 || !prop.Complete() {
		t.Fatalf("propagation %+v, want 2 instances acknowledged", prop)
	}
	t.Logf("revocation acknowledged by %d instances in %v", prop.Acked, prop.Elapsed)
	// ... and still refuse the key on the very next request.
	for _, inst := range []*Authenticator{a, b} {
		if _, err := inst.Authenticate(ctx, secret, local); !errors.Is(err, ErrKeyRevoked) {
			t.Fatalf("after revocation: %v, want a refusal", err)
		}
	}
	got, err := store.Get(ctx, k.ID)
	if err != nil || got.Revoked.IsZero() {
		t.Fatalf("revoked record: %+v, %v", got, err)
	}
}

func TestCacheSavesRoundTripsAndStartsOverAfterARedisRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := r.Client()
	a := instance(t, rdb, Options{})
	ctx := context.Background()
	secret, _, err := NewStore(rdb, StoreOptions{}).Create(ctx, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, secret, local); err != nil {
		t.Fatal(err)
	}
	calls := testenv.CountRoundTrips(rdb)
	for range 10 {
		if _, err := a.Authenticate(ctx, secret, local); err != nil {
			t.Fatal(err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("%d round trips for 10 cached checks, want 0", n)
	}
	r.Stop()
	waitLive(t, a, false)
	if _, err := a.Authenticate(ctx, secret, local); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redis down, cache off: %v, want ErrUnavailable", err)
	}
	r.Start()
	waitLive(t, a, true)
	// The restarted Redis lost the key (no persistence in tests): the
	// instance must not answer from what it cached before.
	if _, err := a.Authenticate(ctx, secret, local); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("after the restart: %v, want ErrInvalidKey", err)
	}
}

func TestExpiryAllowListAndSpec(t *testing.T) {
	r := testenv.StartRedis(t)
	c := clockwork.NewFakeClockAt(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	a := instance(t, r.Client(), Options{Now: c.Now, CacheTTL: time.Hour})
	store := NewStore(r.Client(), StoreOptions{Now: c.Now})
	ctx := context.Background()
	if _, _, err := store.Create(ctx, Spec{TTL: MaxTTL + time.Hour}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("91 days: %v, want ErrInvalidSpec", err)
	}
	if _, _, err := store.Create(ctx, Spec{AllowIPs: []string{"10.0.0.300"}}); !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("bad address: %v", err)
	}
	secret, _, err := store.Create(ctx, Spec{TTL: time.Hour, AllowIPs: []string{"10.0.0.0/8", "192.168.1.7"}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]error{"10.1.2.3": nil, "192.168.1.7": nil, "192.168.1.8": ErrIPNotAllowed, "::ffff:10.0.0.1": nil} {
		if _, err := a.Authenticate(ctx, secret, netip.MustParseAddr(ip)); !errors.Is(err, want) {
			t.Errorf("from %s: %v, want %v", ip, err, want)
		}
	}
	c.Advance(time.Hour)
	if _, err := a.Authenticate(ctx, secret, netip.MustParseAddr("10.1.2.3")); !errors.Is(err, ErrKeyExpired) {
		t.Fatalf("an hour later: %v, want ErrKeyExpired", err)
	}
}

func TestBootstrapKeysAndMalformedCredentials(t *testing.T) {
	r := testenv.StartRedis(t)
	rdb := r.Client()
	a := instance(t, rdb, Options{Bootstrap: []string{"", "legacy-key", "second"}})
	ctx := context.Background()
	p, err := a.Authenticate(ctx, "legacy-key", local)
	if err != nil || p.Kind != KindBootstrap || p.Tenant != "" {
		t.Fatalf("bootstrap key: %+v, %v", p, err)
	}
	calls := testenv.CountRoundTrips(rdb)
	for cred, want := range map[string]error{
		"": ErrMissing, "legacy-ke": ErrInvalidKey, "bf_short": ErrInvalidKey, "x.y.z": ErrTokensOff,
		"bf_" + strings.Repeat("0", 64): ErrInvalidKey,
	} {
		if _, err := a.Authenticate(ctx, cred, local); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", cred, err, want)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d round trips: only the well-formed unknown key should reach Redis", n)
	}
}

func TestRotateKeepsTheTenant(t *testing.T) {
	r := testenv.StartRedis(t)
	a := instance(t, r.Client(), Options{})
	store := NewStore(r.Client(), StoreOptions{})
	ctx := context.Background()
	old, k, err := store.Create(ctx, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, old, local); err != nil {
		t.Fatal(err)
	}
	fresh, _, prop, err := store.Rotate(ctx, k.ID, 0)
	if err != nil || !prop.Complete() {
		t.Fatalf("rotate: %+v %v", prop, err)
	}
	if _, err := a.Authenticate(ctx, old, local); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("old secret after rotation: %v", err)
	}
	p, err := a.Authenticate(ctx, fresh, local)
	if err != nil || p.Tenant != k.ID {
		t.Fatalf("new secret: %+v %v", p, err)
	}
	again, _, _, err := store.Rotate(ctx, k.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fresh, again} {
		if _, err := a.Authenticate(ctx, s, local); err != nil {
			t.Fatalf("within the grace period: %v", err)
		}
	}
	if ttl := r.Client().PTTL(ctx, store.hashKey(Hash(fresh))).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("old hash TTL %v, want the one-minute grace", ttl)
	}
}

// forge signs claims with method and key, with kid.
func forge(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.RegisteredClaims) string {
	t.Helper()
	j := jwt.NewWithClaims(method, claims)
	if kid != "" {
		j.Header["kid"] = kid
	}
	s, err := j.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokensIssueUseExpireRotateRevoke(t *testing.T) {
	r := testenv.StartRedis(t)
	c := clockwork.NewFakeClockAt(time.Now().Truncate(time.Second))
	tok := TokenOptions{Secrets: []Secret{secretA}, TTL: 10 * time.Minute}
	a := instance(t, r.Client(), Options{Now: c.Now, Token: tok, Instance: "a"})
	b := instance(t, r.Client(), Options{Now: c.Now, Token: tok, Instance: "b"})
	store := NewStore(r.Client(), StoreOptions{Now: c.Now})
	ctx := context.Background()
	secret, k, err := store.Create(ctx, Spec{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(ctx, secret, local)
	if err != nil {
		t.Fatal(err)
	}
	token, err := a.Issue(p, 0)
	if err != nil || !token.Expires.Equal(c.Now().Add(10*time.Minute)) {
		t.Fatalf("issue: %+v %v", token, err)
	}
	// Used on another instance, as the key would be.
	tp, err := b.Authenticate(ctx, token.Value, local)
	if err != nil || tp.Kind != KindToken || tp.Tenant != k.ID || tp.TokenID != token.ID {
		t.Fatalf("token on b: %+v %v", tp, err)
	}
	if _, err := b.Issue(tp, 0); !errors.Is(err, ErrNotAKey) {
		t.Fatalf("a token from a token: %v", err)
	}

	now := c.Now()
	valid := jwt.RegisteredClaims{Issuer: "botfleet", Audience: jwt.ClaimStrings{"botfleet-api"}, Subject: k.ID, ID: newTokenID(),
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}
	with := func(f func(*jwt.RegisteredClaims)) jwt.RegisteredClaims {
		cl := valid
		f(&cl)
		return cl
	}
	none := forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "a", valid)
	refusals := []struct {
		name  string
		token string
		want  *Error
	}{
		{"alg none", none, ErrAlgorithm},
		{"alg none, signature stripped", strings.TrimSuffix(none, "."), ErrMalformed},
		{"HS384 with the same secret", forge(t, jwt.SigningMethodHS384, secretA.Key, "a", valid), ErrAlgorithm},
		{"unknown kid", forge(t, jwt.SigningMethodHS256, secretB.Key, "b", valid), ErrUnknownKID},
		{"no kid", forge(t, jwt.SigningMethodHS256, secretA.Key, "", valid), ErrUnknownKID},
		{"kid a, signed with b", forge(t, jwt.SigningMethodHS256, secretB.Key, "a", valid), ErrSignature},
		{"wrong audience", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} })), ErrAudience},
		{"wrong issuer", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.Issuer = "evil" })), ErrIssuer},
		{"not yet valid", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) })), ErrNotYetValid},
		{"issued in the future", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) })), ErrNotYetValid},
		{"no expiry", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil })), ErrClaims},
		{"no jti", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.ID = "" })), ErrClaims},
		{"unknown key", forge(t, jwt.SigningMethodHS256, secretA.Key, "a", with(func(c *jwt.RegisteredClaims) { c.Subject = "key_000000000000" })), ErrKeyRevoked},
		{"tampered payload", token.Value[:strings.IndexByte(token.Value, '.')+1] + "e30" + token.Value[strings.LastIndexByte(token.Value, '.'):], ErrSignature},
	}
	for _, tc := range refusals {
		if _, err := b.Authenticate(ctx, tc.token, local); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := b.Authenticate(ctx, forge(t, jwt.SigningMethodHS256, secretA.Key, "a", valid), local); err != nil {
		t.Fatalf("the control token is refused: %v", err)
	}

	// Rotation: b signs with a new secret first; a token signed with the
	// old one stays valid while the old secret is listed.
	rotated := TokenOptions{Secrets: []Secret{secretB, secretA}, TTL: 10 * time.Minute}
	b2 := instance(t, r.Client(), Options{Now: c.Now, Token: rotated})
	newer, err := b2.Issue(p, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{token.Value, newer.Value} {
		if _, err := b2.Authenticate(ctx, v, local); err != nil {
			t.Fatalf("during rotation: %v", err)
		}
	}
	retired := instance(t, r.Client(), Options{Now: c.Now, Token: TokenOptions{Secrets: []Secret{secretB}}})
	if _, err := retired.Authenticate(ctx, token.Value, local); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("after the old secret is dropped: %v", err)
	}

	// Revoking one token leaves the key and its other tokens alone.
	prop, err := store.RevokeToken(ctx, token.ID, token.Expires)
	if err != nil || prop.Instances < 2 || !prop.Complete() {
		t.Fatalf("revoke token: %+v %v", prop, err)
	}
	if _, err := b.Authenticate(ctx, token.Value, local); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
	if _, err := b2.Authenticate(ctx, newer.Value, local); err != nil {
		t.Fatalf("another token of the key: %v", err)
	}
	// A fresh instance learns the revoked tokens when it subscribes.
	late := instance(t, r.Client(), Options{Now: c.Now, Token: tok})
	if _, err := late.Authenticate(ctx, token.Value, local); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked token on a new instance: %v", err)
	}

	// Expiry.
	c.Advance(10*time.Minute + time.Second)
	if _, err := b2.Authenticate(ctx, newer.Value, local); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired: %v", err)
	}
	c.Advance(-10 * time.Minute)

	// Revoking the key kills its tokens.
	if _, _, err := store.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.Authenticate(ctx, newer.Value, local); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("token of a revoked key: %v", err)
	}
}

func TestTokenForABootstrapKey(t *testing.T) {
	r := testenv.StartRedis(t)
	tok := TokenOptions{Secrets: []Secret{secretA}}
	a := instance(t, r.Client(), Options{Bootstrap: []string{"legacy"}, Token: tok})
	ctx := context.Background()
	p, _ := a.Authenticate(ctx, "legacy", local)
	token, err := a.Issue(p, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := a.Authenticate(ctx, token.Value, local)
	if err != nil || tp.Tenant != "" || tp.Kind != KindToken {
		t.Fatalf("bootstrap token: %+v %v", tp, err)
	}
	gone := instance(t, r.Client(), Options{Bootstrap: []string{"other"}, Token: tok})
	if _, err := gone.Authenticate(ctx, token.Value, local); !errors.Is(err, ErrKeyRevoked) {
		t.Fatalf("token of a bootstrap key no longer configured: %v", err)
	}
}

func TestParseSecrets(t *testing.T) {
	if s, err := ParseSecrets([]string{"k1:" + strings.Repeat("x", 32), "k0:" + strings.Repeat("y", 40)}); err != nil || len(s) != 2 || s[0].ID != "k1" {
		t.Fatalf("%+v %v", s, err)
	}
	for _, bad := range [][]string{{"nokid"}, {"k:short"}, {":" + strings.Repeat("x", 32)}, {"k:" + strings.Repeat("x", 32), "k:" + strings.Repeat("y", 32)}} {
		if _, err := ParseSecrets(bad); err == nil || strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
