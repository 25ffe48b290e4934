// Package lease is the fleet's one lock primitive: a named lease in Redis,
// held by one owner at a time until it ends, acquired, renewed and
// released only by its owner. The IM send mark, the Feishu token refresh
// and the leader of a `one` IM connection all take one.
//
// Every decision is one script on the lease's key, on Redis's clock (TIME
// inside the script), so instances with skewed clocks agree on who holds
// it and when it ends; Options.Clock replaces that clock in tests.
//
// Key layout: the caller names the key (e.g. bf:im:sending:telegram:77001);
// it holds a hash
//
//	owner    the holder's token (NewOwner)
//	expires  the lease's end, Unix ms on the lease clock
//
// and expires (PEXPIRE) with the lease, so an abandoned lease leaves
// nothing behind. A lease whose end has passed is free, whether or not the
// key is still there.
//
// Errors: every failure to reach Redis wraps ErrUnavailable; Renew and
// Release by a caller that no longer holds the lease return ErrNotHeld.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrUnavailable wraps every failure to reach Redis.
	ErrUnavailable = errors.New("lease: redis unavailable")
	// ErrNotHeld means the caller's lease ended or another owner holds it.
	ErrNotHeld = errors.New("lease: not held by this owner")
)

// Options tune Leases. The zero value is ready for production.
type Options struct {
	// Clock, when set, is the lease clock instead of Redis's TIME: tests
	// advance it to end a lease without waiting. The key's own expiry
	// stays in real time (the lease's ttl), so a test's ttl must outlast
	// the test. Default nil (Redis's clock).
	Clock func() time.Time
}

// Leases takes leases on one Redis. It is safe for concurrent use.
type Leases struct {
	rdb   redis.UniversalClient
	clock func() time.Time
}

// New returns Leases on rdb.
func New(rdb redis.UniversalClient, o Options) *Leases {
	return &Leases{rdb: rdb, clock: o.Clock}
}

// NewOwner returns a random owner token.
func NewOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// State is who holds a lease and for how much longer.
type State struct {
	// Owner is the holder's token; empty when the lease is free.
	Owner string
	// Remaining is the time left to the holder, 0 when free.
	Remaining time.Duration
}

// luaNow sets now: ARGV[1] when the caller passes a clock, else Redis's
// TIME in ms. Every script takes the clock as ARGV[1].
const luaNow = `local now = tonumber(ARGV[1])
if not now then
  local tm = redis.call('TIME')
  now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
end
local h = redis.call('HMGET', KEYS[1], 'owner', 'expires')
local held = h[1] and tonumber(h[2]) and tonumber(h[2]) > now
`

// luaGrant writes the lease to ARGV[2] for ARGV[3] ms and returns it.
const luaGrant = `redis.call('HSET', KEYS[1], 'owner', ARGV[2], 'expires', now + tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {ARGV[2], tonumber(ARGV[3])}
`

// luaHolder returns the current holder and its remaining ms, or no owner and 0.
const luaHolder = `if held then return {h[1], tonumber(h[2]) - now} end
return {'', 0}
`

// acquireScript: ARGV clock, owner, ttl ms. Grants the lease when it is
// free or already the owner's; returns the holder and its remaining ms.
var acquireScript = redis.NewScript(luaNow + `if held and h[1] ~= ARGV[2] then return {h[1], tonumber(h[2]) - now} end
` + luaGrant)

// renewScript: ARGV clock, owner, ttl ms. Extends the owner's running lease.
var renewScript = redis.NewScript(luaNow + `if not held or h[1] ~= ARGV[2] then ` + luaHolder + ` end
` + luaGrant)

// releaseScript: ARGV clock, owner. Ends the owner's lease; returns 1, or
// 0 when the owner does not hold it.
var releaseScript = redis.NewScript(luaNow + `if held and h[1] == ARGV[2] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`)

// holderScript: ARGV clock.
var holderScript = redis.NewScript(luaNow + luaHolder)

func (l *Leases) now() string {
	if l.clock == nil {
		return ""
	}
	return fmt.Sprint(l.clock().UnixMilli())
}

func (l *Leases) state(ctx context.Context, s *redis.Script, key string, args ...any) (State, error) {
	res, err := s.Run(ctx, l.rdb, []string{key}, append([]any{l.now()}, args...)...).Slice()
	if err != nil {
		return State{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, key, err)
	}
	owner, _ := res[0].(string)
	ms, _ := res[1].(int64)
	return State{Owner: owner, Remaining: time.Duration(ms) * time.Millisecond}, nil
}

// Acquire takes the lease on key for owner for ttl when it is free (or
// renews it when owner holds it already). It returns whether owner holds
// it now, and the holder's state either way.
func (l *Leases) Acquire(ctx context.Context, key, owner string, ttl time.Duration) (bool, State, error) {
	st, err := l.state(ctx, acquireScript, key, owner, ttl.Milliseconds())
	return err == nil && st.Owner == owner, st, err
}

// Renew extends owner's lease on key to ttl from now; ErrNotHeld when the
// lease ended or another owner took it.
func (l *Leases) Renew(ctx context.Context, key, owner string, ttl time.Duration) error {
	st, err := l.state(ctx, renewScript, key, owner, ttl.Milliseconds())
	if err != nil {
		return err
	}
	if st.Owner != owner {
		return ErrNotHeld
	}
	return nil
}

// Release ends owner's lease on key at once; ErrNotHeld when owner does
// not hold it (it ended, or another owner holds it: that one is untouched).
func (l *Leases) Release(ctx context.Context, key, owner string) error {
	n, err := releaseScript.Run(ctx, l.rdb, []string{key}, l.now(), owner).Int()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, key, err)
	}
	if n == 0 {
		return ErrNotHeld
	}
	return nil
}

// Holder returns who holds the lease on key.
func (l *Leases) Holder(ctx context.Context, key string) (State, error) {
	return l.state(ctx, holderScript, key)
}
