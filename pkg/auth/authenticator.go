package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/botfleet/botfleet/pkg/telemetry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"
)

// Options tune an Authenticator. Zero values take the defaults named.
type Options struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// Instance names this instance in revocation acknowledgements.
	Instance string
	// Bootstrap are keys from the configuration (API_KEY, auth.api_keys):
	// always valid, of the default tenant "".
	Bootstrap []string
	// Token configures access tokens.
	Token TokenOptions
	// CacheTTL bounds how long a key record read from Redis is used
	// without reading it again. Default 30s.
	CacheTTL time.Duration
	// CacheSize bounds the cached records; past it the cache starts over.
	// Default 100000.
	CacheSize int
	// Now is the clock of expiry checks and tokens. Default time.Now.
	Now func() time.Time
	// Logger default discards.
	Logger *slog.Logger
	// Registerer takes the package's metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *Options) setDefaults() {
	defaults.Fill(o, Options{Prefix: keyspace.DefaultPrefix, CacheTTL: 30 * time.Second, CacheSize: 100000, Now: time.Now,
		Logger: slog.New(slog.DiscardHandler)})
	o.Token.setDefaults()
}

type bootKey struct {
	hash [sha256.Size]byte
	id   string
}

type cached struct {
	key *Key
	at  time.Time
}

// Authenticator checks credentials on one instance. It is safe for
// concurrent use.
type Authenticator struct {
	store *Store
	rdb   redis.UniversalClient
	opts  Options
	boot  []bootKey
	total *prometheus.CounterVec

	mu sync.Mutex
	// live: the events subscription is up and the revoked tokens are
	// loaded, so the cache may be used.
	live   bool
	gen    uint64
	byHash map[string]cached
	byID   map[string]cached
	jti    map[string]int64

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an Authenticator reading keys from rdb, listening for
// revocations until Close.
func New(rdb redis.UniversalClient, opts Options) *Authenticator {
	opts.setDefaults()
	a := &Authenticator{
		store: NewStore(rdb, StoreOptions{Prefix: opts.Prefix, Now: opts.Now}),
		rdb:   rdb, opts: opts,
		byHash: map[string]cached{}, byID: map[string]cached{}, jti: map[string]int64{},
		done: make(chan struct{}),
	}
	for _, k := range opts.Bootstrap {
		if k == "" {
			continue
		}
		h := sha256.Sum256([]byte(k))
		a.boot = append(a.boot, bootKey{hash: h, id: "bootstrap-" + hex.EncodeToString(h[:6])})
	}
	a.total = telemetry.NewVecs(opts.Registerer).Counter("botfleet_auth_total", "Credential checks by kind (bootstrap, key, token, admin) and outcome (ok or the refusal's code).", "kind", "outcome")
	promauto.With(opts.Registerer).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "botfleet_auth_cache_live", Help: "1 while the key cache is in use (its revocation subscription is up), else 0.",
	}, func() float64 {
		if a.Live() {
			return 1
		}
		return 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.listen(ctx)
	return a
}

// Store returns the key store the Authenticator reads.
func (a *Authenticator) Store() *Store { return a.store }

// Close ends the revocation subscription.
func (a *Authenticator) Close() error {
	a.cancel()
	<-a.done
	return nil
}

// Live reports whether revocations are being received, so that the key
// cache is in use.
func (a *Authenticator) Live() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.live
}

// TokensOn reports whether access tokens can be issued.
func (a *Authenticator) TokensOn() bool { return len(a.opts.Token.Secrets) > 0 }

// Count records a credential check in the metrics.
func (a *Authenticator) Count(kind string, err error) {
	outcome := "ok"
	var e *Error
	if errors.As(err, &e) {
		outcome = e.Code
	} else if err != nil {
		outcome = "error"
	}
	a.total.WithLabelValues(kind, outcome).Inc()
}

// Authenticate checks a Bearer credential — a bootstrap key, a managed key
// or an access token — used from ip.
func (a *Authenticator) Authenticate(ctx context.Context, credential string, ip netip.Addr) (*Principal, error) {
	p, kind, err := a.authenticate(ctx, credential, ip)
	a.Count(kind, err)
	return p, err
}

func (a *Authenticator) authenticate(ctx context.Context, credential string, ip netip.Addr) (*Principal, string, error) {
	if credential == "" {
		return nil, KindKey, ErrMissing
	}
	if id, ok := a.bootstrap(credential); ok {
		return &Principal{Kind: KindBootstrap, KeyID: id}, KindBootstrap, nil
	}
	if wellFormed(credential) {
		k, err := a.key(ctx, Hash(credential), "")
		if err != nil {
			return nil, KindKey, err
		}
		if err := k.check(a.opts.Now(), ip); err != nil {
			return nil, KindKey, err
		}
		return k.principal(), KindKey, nil
	}
	if strings.Contains(credential, ".") {
		p, err := a.token(ctx, credential, ip)
		return p, KindToken, err
	}
	return nil, KindKey, ErrInvalidKey
}

// bootstrap finds credential among the bootstrap keys, comparing with every
// one in constant time.
func (a *Authenticator) bootstrap(credential string) (string, bool) {
	h := sha256.Sum256([]byte(credential))
	found := ""
	for _, b := range a.boot {
		if subtle.ConstantTimeCompare(h[:], b.hash[:]) == 1 {
			found = b.id
		}
	}
	return found, found != ""
}

// Issue returns an access token for p, a key's principal, living ttl (0:
// the configured TTL; never longer, nor past the key's expiry).
func (a *Authenticator) Issue(p *Principal, ttl time.Duration) (Token, error) {
	if p.Kind != KindKey && p.Kind != KindBootstrap {
		return Token{}, ErrNotAKey
	}
	if ttl <= 0 || ttl > a.opts.Token.TTL {
		ttl = a.opts.Token.TTL
	}
	now := a.opts.Now()
	if !p.Expires.IsZero() && p.Expires.Sub(now) < ttl {
		ttl = p.Expires.Sub(now)
	}
	return a.opts.Token.sign(p.KeyID, now, ttl)
}

func (a *Authenticator) token(ctx context.Context, raw string, ip netip.Addr) (*Principal, error) {
	claims, err := a.opts.Token.parse(raw, a.opts.Now)
	if err != nil {
		return nil, err
	}
	revoked, err := a.tokenRevoked(ctx, claims.ID)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, ErrTokenRevoked
	}
	var p *Principal
	if strings.HasPrefix(claims.Subject, "bootstrap-") {
		for _, b := range a.boot {
			if b.id == claims.Subject {
				p = &Principal{Kind: KindToken, KeyID: b.id}
			}
		}
		if p == nil {
			return nil, ErrKeyRevoked.with("the key this access token was issued for is no longer configured")
		}
	} else {
		k, err := a.key(ctx, "", claims.Subject)
		if errors.Is(err, ErrInvalidKey) {
			return nil, ErrKeyRevoked.with("the key this access token was issued for no longer exists")
		}
		if err != nil {
			return nil, err
		}
		if err := k.check(a.opts.Now(), ip); err != nil {
			return nil, err
		}
		p = k.principal()
		p.Kind = KindToken
	}
	p.TokenID, p.Expires = claims.ID, claims.ExpiresAt.Time
	return p, nil
}

// key returns the record of the key with hash (or id), from the cache when
// it is live and fresh.
func (a *Authenticator) key(ctx context.Context, hash, id string) (*Key, error) {
	now := a.opts.Now()
	a.mu.Lock()
	c, ok := a.byHash[hash]
	if hash == "" {
		c, ok = a.byID[id]
	}
	live, gen := a.live, a.gen
	a.mu.Unlock()
	if live && ok && now.Sub(c.at) < a.opts.CacheTTL {
		return c.key, nil
	}
	var k *Key
	var err error
	if hash != "" {
		k, err = a.store.byHash(ctx, hash)
	} else {
		k, err = a.store.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			err = ErrInvalidKey
		}
	}
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.live && a.gen == gen {
		if len(a.byHash)+len(a.byID) >= a.opts.CacheSize {
			a.byHash, a.byID = map[string]cached{}, map[string]cached{}
		}
		e := cached{key: k, at: now}
		if hash != "" {
			a.byHash[hash] = e
		} else {
			a.byID[id] = e
		}
	}
	return k, nil
}

func (a *Authenticator) tokenRevoked(ctx context.Context, jti string) (bool, error) {
	a.mu.Lock()
	live := a.live
	_, revoked := a.jti[jti]
	a.mu.Unlock()
	if live {
		return revoked, nil
	}
	return a.store.tokenRevoked(ctx, jti)
}

// listen follows the events channel: a (re)subscription starts the cache
// over, an event drops what it names and is acknowledged.
func (a *Authenticator) listen(ctx context.Context) {
	defer close(a.done)
	ps := a.rdb.Subscribe(ctx, a.store.events())
	defer ps.Close()
	subscribed := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if ctx.Err() != nil {
			return
		}
		var ne net.Error
		switch m := msg.(type) {
		case *redis.Subscription:
			subscribed = m.Kind == "subscribe"
			a.reset(ctx, subscribed)
		case *redis.Message:
			a.handle(ctx, m.Payload)
		case nil:
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet: check the connection, and retry a reset that failed.
				if subscribed && !a.Live() {
					a.reset(ctx, true)
				}
				_ = ps.Ping(ctx)
				continue
			}
			if subscribed {
				a.opts.Logger.Warn("auth: revocation subscription lost; reading keys from Redis until it is back", "err", err)
			}
			subscribed = false
			a.reset(ctx, false)
			if !pause.For(ctx, 200*time.Millisecond) { // back off before the reconnect
				return
			}
		}
	}
}

// reset empties the cache; when subscribed it loads the revoked tokens and
// turns the cache on.
func (a *Authenticator) reset(ctx context.Context, subscribed bool) {
	var jti map[string]int64
	if subscribed {
		var err error
		if jti, err = a.store.revokedTokens(ctx); err != nil {
			subscribed = false
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	a.byHash, a.byID = map[string]cached{}, map[string]cached{}
	a.live = subscribed
	if jti != nil {
		a.jti = jti
	}
}

// handle applies "key <id> <ack>" or "jti <jti> <exp ms> <ack>" and
// acknowledges it.
func (a *Authenticator) handle(ctx context.Context, payload string) {
	f := strings.Fields(payload)
	if len(f) < 3 {
		return
	}
	a.mu.Lock()
	a.gen++
	switch {
	case f[0] == "key":
		delete(a.byID, f[1])
		for h, c := range a.byHash {
			if c.key.ID == f[1] {
				delete(a.byHash, h)
			}
		}
	case f[0] == "jti" && len(f) == 4:
		exp, _ := strconv.ParseInt(f[2], 10, 64)
		now := a.opts.Now().UnixMilli()
		for j, e := range a.jti {
			if e < now {
				delete(a.jti, j)
			}
		}
		a.jti[f[1]] = exp
	}
	a.mu.Unlock()
	_ = a.rdb.Publish(ctx, a.store.ackChannel(f[len(f)-1]), a.opts.Instance).Err()
}
