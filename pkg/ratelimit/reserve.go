package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Quota is a key's limits on its turns; zero fields are no limit.
type Quota struct {
	// MaxInFlight bounds concurrent turns.
	MaxInFlight int
	// TokensPerMinute bounds the tokens turns use per minute.
	TokensPerMinute int
	// Budget bounds the tokens turns use in the key's whole life.
	Budget int64
}

// IsZero reports whether q limits nothing.
func (q Quota) IsZero() bool { return q == Quota{} }

// Tokens estimates the tokens of text for reservations and settlement
// while the backend reports no usage: a token per four ASCII bytes and
// one per other character (CJK text is about one token a character).
func Tokens(text string) int {
	ascii, other := 0, 0
	for _, r := range text {
		if r < utf8.RuneSelf {
			ascii++
		} else {
			other++
		}
	}
	return (ascii+3)/4 + other
}

// KEYS of both scripts: flight, res, done, tpm, budget.
const luaQuotaNow = `local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`

// reserve: ARGV id, estimate, ttl ms, max in flight, tpm, budget.
// Returns {'ok'} or {scope, limit, retry ms}; scope in_flight, tokens, budget.
var reserveScript = redis.NewScript(luaQuotaNow + `
local id, est, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local maxf, tpm, budget = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if redis.call('HEXISTS', KEYS[2], id) == 1 then return {'ok'} end
-- Reservations whose instance died before settling: freed, never spent.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, d in ipairs(dead) do
  local e = tonumber(redis.call('HGET', KEYS[2], d) or '0')
  redis.call('HDEL', KEYS[2], d)
  redis.call('HINCRBY', KEYS[5], 'reserved', -e)
end
if #dead > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
if maxf > 0 and redis.call('ZCARD', KEYS[1]) >= maxf then
  return {'in_flight', maxf, 1000}
end
local tokens = 0
if tpm > 0 then
  local b = redis.call('HMGET', KEYS[4], 't', 'ts')
  tokens = tonumber(b[1]) or tpm
  tokens = math.min(tpm, tokens + (now - (tonumber(b[2]) or now)) * tpm / 60000)
  if tokens < 1 then return {'tokens', tpm, math.ceil((1 - tokens) * 60000 / tpm)} end
end
if budget > 0 then
  local s = redis.call('HMGET', KEYS[5], 'spent', 'reserved')
  if (tonumber(s[1]) or 0) + (tonumber(s[2]) or 0) >= budget then return {'budget', budget, 0} end
end
redis.call('ZADD', KEYS[1], now + ttl, id)
redis.call('HSET', KEYS[2], id, est)
redis.call('HINCRBY', KEYS[5], 'reserved', est)
if tpm > 0 then
  redis.call('HSET', KEYS[4], 't', tostring(tokens - est), 'ts', now)
  redis.call('PEXPIRE', KEYS[4], 120000)
end
redis.call('PEXPIRE', KEYS[1], 2 * ttl)
redis.call('PEXPIRE', KEYS[2], 2 * ttl)
return {'ok'}
`)

// settle: ARGV id, used, ttl ms, tpm. Frees the reservation, returns what
// was reserved beyond the real use to the minute bucket and adds the use
// to the spend; a resent settle changes nothing.
var settleScript = redis.NewScript(luaQuotaNow + `
local id, used, ttl, tpm = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('ZSCORE', KEYS[3], id) then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + 2 * ttl, id)
redis.call('PEXPIRE', KEYS[3], 2 * ttl)
redis.call('ZREM', KEYS[1], id)
local est = tonumber(redis.call('HGET', KEYS[2], id) or '-1')
if est >= 0 then
  redis.call('HDEL', KEYS[2], id)
  redis.call('HINCRBY', KEYS[5], 'reserved', -est)
  if tpm > 0 then
    local b = redis.call('HMGET', KEYS[4], 't', 'ts')
    local t = tonumber(b[1]) or tpm
    t = math.min(tpm, t + (now - (tonumber(b[2]) or now)) * tpm / 60000 + est - used)
    redis.call('HSET', KEYS[4], 't', tostring(t), 'ts', now)
    redis.call('PEXPIRE', KEYS[4], 120000)
  end
end
redis.call('HINCRBY', KEYS[5], 'spent', used)
return 1
`)

func (l *Limiter) quotaKeys(id string) []string {
	base := l.opts.Prefix + ":{rlq:" + tag(id) + "}:"
	return []string{base + "flight", base + "res", base + "done", base + "tpm", base + "budget"}
}

// Reservation is an admitted turn's hold on its key's quota.
type Reservation struct {
	l        *Limiter
	id, res  string
	q        Quota
	estimate int
	local    bool
}

// Reserve admits a turn of key id under q, reserving estimate tokens. A
// refused turn gets a nil Reservation and the Decision that tells why.
// Settle every Reservation when the turn ends.
func (l *Limiter) Reserve(ctx context.Context, id string, q Quota, estimate int) (r *Reservation, d Decision, err error) {
	d = Decision{Allowed: true, Scope: "quota"}
	if q.IsZero() {
		return nil, d, nil
	}
	defer func() { l.count(d, err) }()
	var b [8]byte
	_, _ = rand.Read(b[:])
	r = &Reservation{l: l, id: id, res: hex.EncodeToString(b[:]), q: q, estimate: estimate}
	v, err := reserveScript.Run(ctx, l.rdb, l.quotaKeys(id), r.res, estimate, l.opts.ReservationTTL.Milliseconds(),
		q.MaxInFlight, q.TokensPerMinute, q.Budget).Slice()
	if err == nil {
		return decideQuota(r, v)
	}
	if ctx.Err() != nil {
		return nil, d, ctx.Err()
	}
	l.warn("quota", err)
	if l.opts.Fallback != FailLocal || q.Budget > 0 {
		return nil, Decision{Scope: "quota"}, refusal(err)
	}
	d = l.local.reserve(id, q, estimate)
	if !d.Allowed {
		return nil, d, nil
	}
	r.local = true
	return r, d, nil
}

// decideQuota reads the reserve script's answer.
func decideQuota(r *Reservation, v []any) (*Reservation, Decision, error) {
	scope, _ := v[0].(string)
	if scope == "ok" {
		return r, Decision{Allowed: true, Scope: "quota"}, nil
	}
	if len(v) < 3 {
		return nil, Decision{Scope: "quota"}, fmt.Errorf("ratelimit: unexpected script reply %v", v)
	}
	limit, _ := v[1].(int64)
	retry, _ := v[2].(int64)
	d := Decision{Scope: scope, Limit: limit, RetryAfter: time.Duration(retry) * time.Millisecond, Exhausted: scope == "budget"}
	d.Reset = d.RetryAfter
	return nil, d, nil
}

// Settle ends the turn: it frees its in-flight slot and charges used
// tokens in place of the estimate. Safe on a nil Reservation and to call
// more than once.
func (r *Reservation) Settle(ctx context.Context, used int) error {
	if r == nil {
		return nil
	}
	if r.local {
		r.l.local.release(r.id)
		r.local, r.l = false, nil
		return nil
	}
	if r.l == nil {
		return nil
	}
	l := r.l
	err := settleScript.Run(context.WithoutCancel(ctx), l.rdb, l.quotaKeys(r.id), r.res, used,
		l.opts.ReservationTTL.Milliseconds(), r.q.TokensPerMinute).Err()
	if err != nil {
		l.opts.Logger.Warn("ratelimit: settle failed; the reservation expires by itself", "err", err)
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.l = nil
	return nil
}

// Usage is a key's quota use now.
type Usage struct {
	// Spent and Reserved are budget tokens: settled, and held by turns in flight.
	Spent, Reserved int64
	// InFlight counts turns holding a reservation.
	InFlight int64
}

// Usage reads key id's quota use.
func (l *Limiter) Usage(ctx context.Context, id string) (Usage, error) {
	k := l.quotaKeys(id)
	var flight *redis.IntCmd
	var budget *redis.SliceCmd
	_, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		flight = p.ZCard(ctx, k[0])
		budget = p.HMGet(ctx, k[4], "spent", "reserved")
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	u := Usage{InFlight: flight.Val()}
	var b struct {
		Spent    int64 `redis:"spent"`
		Reserved int64 `redis:"reserved"`
	}
	if err := budget.Scan(&b); err != nil {
		return Usage{}, fmt.Errorf("ratelimit: usage of %s: %w", id, err)
	}
	u.Spent, u.Reserved = b.Spent, b.Reserved
	return u, nil
}
