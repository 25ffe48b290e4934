package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/redis/go-redis/v9"
)

// StoreOptions tune a Store. Zero values take the defaults named.
type StoreOptions struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// AckTimeout bounds the wait for the instances' acknowledgements of a
	// revocation. Default 2s.
	AckTimeout time.Duration
	// Now is the clock of creation and expiry times. Default time.Now.
	Now func() time.Time
}

// Store manages the keys in Redis: botctl and the admin API use it, and
// every instance's Authenticator reads through it.
type Store struct {
	rdb  redis.UniversalClient
	opts StoreOptions
}

// NewStore returns the key store on rdb.
func NewStore(rdb redis.UniversalClient, opts StoreOptions) *Store {
	if opts.Prefix == "" {
		opts.Prefix = keyspace.DefaultPrefix
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{rdb: rdb, opts: opts}
}

func (s *Store) keyKey(id string) string      { return s.opts.Prefix + ":{auth}:key:" + id }
func (s *Store) hashKey(hash string) string   { return s.opts.Prefix + ":{auth}:hash:" + hash }
func (s *Store) listKey() string              { return s.opts.Prefix + ":{auth}:keys" }
func (s *Store) jtiKey() string               { return s.opts.Prefix + ":{auth}:jti" }
func (s *Store) events() string               { return s.opts.Prefix + ":auth:events" }
func (s *Store) ackChannel(ack string) string { return s.opts.Prefix + ":auth:ack:" + ack }

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Propagation is how a change reached the fleet: Instances subscribed
// instances got it, Acked of them confirmed within Elapsed.
type Propagation struct {
	Instances int64         `json:"instances"`
	Acked     int64         `json:"acked"`
	Elapsed   time.Duration `json:"elapsed_ns"`
}

// Complete reports whether every subscribed instance confirmed.
func (p Propagation) Complete() bool { return p.Acked >= p.Instances }

// Create makes a new key from spec and returns its secret, which is shown
// only now.
func (s *Store) Create(ctx context.Context, spec Spec) (string, *Key, error) {
	k, err := spec.key(newKeyID(), s.opts.Now())
	if err != nil {
		return "", nil, err
	}
	secret, hash := newSecret()
	k.hash = hash
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.keyKey(k.ID), k.fields()...)
		p.Set(ctx, s.hashKey(hash), k.ID, 0)
		p.ZAdd(ctx, s.listKey(), redis.Z{Score: float64(k.Created.UnixMilli()), Member: k.ID})
		return nil
	})
	if err != nil {
		return "", nil, unavailable(err)
	}
	return secret, k, nil
}

// Get returns the key with id, revoked or not.
func (s *Store) Get(ctx context.Context, id string) (*Key, error) {
	if !validKeyID(id) {
		return nil, ErrNotFound.with(fmt.Sprintf("%q is not a key id (key_ and 12 hex digits)", id))
	}
	h, err := s.rdb.HGetAll(ctx, s.keyKey(id)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound.with("no key " + id)
	}
	return decodeKey(h)
}

// List returns every key, oldest first.
func (s *Store) List(ctx context.Context) ([]*Key, error) {
	ids, err := s.rdb.ZRange(ctx, s.listKey(), 0, -1).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.HGetAll(ctx, s.keyKey(id))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	out := make([]*Key, 0, len(cmds))
	for _, c := range cmds {
		h := c.(*redis.MapStringStringCmd).Val()
		if len(h) == 0 {
			continue
		}
		k, err := decodeKey(h)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// byHash returns the key whose secret has hash, or ErrInvalidKey.
func (s *Store) byHash(ctx context.Context, hash string) (*Key, error) {
	id, err := s.rdb.Get(ctx, s.hashKey(hash)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrInvalidKey
	}
	if err != nil {
		return nil, unavailable(err)
	}
	k, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidKey
	}
	return k, err
}

// Revoke ends the key and every access token issued for it, on every
// instance, and waits for the instances to confirm.
func (s *Store) Revoke(ctx context.Context, id string) (*Key, Propagation, error) {
	k, err := s.Get(ctx, id)
	if err != nil {
		return nil, Propagation{}, err
	}
	if k.Revoked.IsZero() {
		// The hash keeps naming the key, so that its secret is refused as
		// revoked rather than unknown.
		k.Revoked = s.opts.Now()
		if err := s.rdb.HSet(ctx, s.keyKey(id), "revoked", k.Revoked.UnixMilli()).Err(); err != nil {
			return nil, Propagation{}, unavailable(err)
		}
	}
	prop, err := s.publish(ctx, "key "+id)
	return k, prop, err
}

// Rotate gives the key a new secret, keeping its id (and so its tenant,
// conversations and limits). The old secret keeps working for grace (0:
// not at all).
func (s *Store) Rotate(ctx context.Context, id string, grace time.Duration) (string, *Key, Propagation, error) {
	k, err := s.Get(ctx, id)
	if err != nil {
		return "", nil, Propagation{}, err
	}
	if !k.Revoked.IsZero() {
		return "", nil, Propagation{}, ErrKeyRevoked.with("key " + id + " is revoked; create a new one")
	}
	secret, hash := newSecret()
	old := k.hash
	k.hash = hash
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.hashKey(hash), id, 0)
		p.HSet(ctx, s.keyKey(id), "hash", hash)
		if grace > 0 {
			p.PExpire(ctx, s.hashKey(old), grace)
		} else {
			p.Del(ctx, s.hashKey(old))
		}
		return nil
	})
	if err != nil {
		return "", nil, Propagation{}, unavailable(err)
	}
	prop, err := s.publish(ctx, "key "+id)
	return secret, k, prop, err
}

// RevokeToken ends the access token with id jti (valid until exp) on every
// instance.
func (s *Store) RevokeToken(ctx context.Context, jti string, exp time.Time) (Propagation, error) {
	if !validTokenID(jti) {
		return Propagation{}, ErrMalformed.with(fmt.Sprintf("%q is not a token id", jti))
	}
	now := s.opts.Now().UnixMilli()
	_, err := s.rdb.TxPipelined(context.WithoutCancel(ctx), func(p redis.Pipeliner) error {
		p.ZAdd(ctx, s.jtiKey(), redis.Z{Score: float64(exp.UnixMilli()), Member: jti})
		p.ZRemRangeByScore(ctx, s.jtiKey(), "-inf", strconv.FormatInt(now, 10))
		return nil
	})
	if err != nil {
		return Propagation{}, unavailable(err)
	}
	return s.publish(ctx, "jti "+jti+" "+strconv.FormatInt(exp.UnixMilli(), 10))
}

// revokedTokens returns the revoked token ids that have not expired, with
// their expiry in Unix ms.
func (s *Store) revokedTokens(ctx context.Context) (map[string]int64, error) {
	now := strconv.FormatInt(s.opts.Now().UnixMilli(), 10)
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.jtiKey(), &redis.ZRangeBy{Min: now, Max: "+inf"}).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	out := make(map[string]int64, len(zs))
	for _, z := range zs {
		out[z.Member.(string)] = int64(z.Score)
	}
	return out, nil
}

// tokenRevoked asks Redis whether jti is revoked.
func (s *Store) tokenRevoked(ctx context.Context, jti string) (bool, error) {
	err := s.rdb.ZScore(ctx, s.jtiKey(), jti).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable(err)
	}
	return true, nil
}

// publish announces event to every instance and waits until each that got
// it has acknowledged, or AckTimeout.
func (s *Store) publish(ctx context.Context, event string) (Propagation, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	ack := hex.EncodeToString(b[:])
	ps := s.rdb.Subscribe(ctx, s.ackChannel(ack))
	defer ps.Close()
	if _, err := ps.ReceiveTimeout(ctx, s.opts.AckTimeout); err != nil {
		return Propagation{}, unavailable(err)
	}
	acks := ps.Channel()
	start := time.Now()
	n, err := s.rdb.Publish(ctx, s.events(), event+" "+ack).Result()
	if err != nil {
		return Propagation{}, unavailable(err)
	}
	p := Propagation{Instances: n}
	timeout := time.NewTimer(s.opts.AckTimeout)
	defer timeout.Stop()
	for p.Acked < n {
		select {
		case <-acks:
			p.Acked++
		case <-timeout.C:
			p.Elapsed = time.Since(start)
			return p, nil
		case <-ctx.Done():
			p.Elapsed = time.Since(start)
			return p, ctx.Err()
		}
	}
	p.Elapsed = time.Since(start)
	return p, nil
}
