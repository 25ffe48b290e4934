package memory

import "github.com/redis/go-redis/v9"

// KEYS of every script: queue, lease, msgs, meta, req (see keys.go).

// luaNow sets now to the Redis server's clock in ms, so that leases written
// by different instances compare on one clock.
const luaNow = `local tm = redis.call('TIME')
local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
`

// luaRelease pops the head (the caller's ticket) and wakes the next ticket.
// ARGV[1] is the ticket, channel the conversation's wake-up channel (a
// sharded channel on the conversation's slot, see waker.go).
const luaRelease = `redis.call('LPOP', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local nxt = redis.call('LINDEX', KEYS[1], 0)
if nxt then redis.call('SPUBLISH', channel, nxt) end
`

// acquire: ARGV ticket, lease ms, fingerprint, max entries, idle ms.
// Returns one of
//
//	{'done', turn, payload}        the request finished before: its stored reply
//	{'conflict'}                   the request id was used with another message
//	{'inflight', ms}               the request is in progress under another ticket
//	{'queued', ms}                 waiting behind the head, whose lease ends in ms
//	{'granted', turns, {entries}}  the caller holds the conversation
var acquireScript = redis.NewScript(luaNow + `
local ticket, lease, fp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local rec = redis.call('HMGET', KEYS[5], 'o', 'f', 't', 'r')
if rec[3] then
  if rec[2] ~= fp then return {'conflict'} end
  return {'done', rec[3], rec[4]}
end
if rec[1] and rec[1] ~= ticket then
  if rec[2] ~= fp then return {'conflict'} end
  redis.call('HSET', KEYS[5], 'w', '1')
  return {'inflight', redis.call('PTTL', KEYS[5])}
end
redis.call('HSET', KEYS[5], 'o', ticket, 'f', fp)
redis.call('PEXPIRE', KEYS[5], lease)
if redis.call('HSET', KEYS[2], ticket, now + lease) == 1 then
  redis.call('RPUSH', KEYS[1], ticket)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then
    redis.call('RPUSH', KEYS[1], ticket)
    head = ticket
  end
  if head == ticket then
    local n = redis.call('HGET', KEYS[4], 'n') or '0'
    return {'granted', n, redis.call('LRANGE', KEYS[3], -tonumber(ARGV[4]), -1)}
  end
  local exp = tonumber(redis.call('HGET', KEYS[2], head))
  if exp and exp > now then return {'queued', exp - now} end
  redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], head)
end
`)

// commit: ARGV ticket, user entry, assistant entry, turn, max entries,
// idle ms, idempotency ms, payload, channel.
// Returns {'ok'}, {'done', turn} when an earlier run of the same commit
// already wrote (a resend), or {'lost'} when the caller no longer holds the
// conversation.
var commitScript = redis.NewScript(`
local channel = ARGV[9]
local t = redis.call('HGET', KEYS[5], 't')
if t then return {'done', t} end
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then
  if redis.call('HGET', KEYS[5], 'o') == ARGV[1] then redis.call('DEL', KEYS[5]) end
  return {'lost'}
end
redis.call('RPUSH', KEYS[3], ARGV[2], ARGV[3])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
redis.call('PEXPIRE', KEYS[3], ARGV[6])
redis.call('HSET', KEYS[4], 'n', ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
local waiters = redis.call('HGET', KEYS[5], 'w')
redis.call('HDEL', KEYS[5], 'o', 'w')
redis.call('HSET', KEYS[5], 't', ARGV[4], 'r', ARGV[8])
redis.call('PEXPIRE', KEYS[5], ARGV[7])
if waiters then redis.call('SPUBLISH', channel, KEYS[5]) end
` + luaRelease + `
return {'ok'}
`)

// abort: ARGV ticket, channel. Leaves the queue and drops the request's
// in-progress mark, so that a repeat of the request may run.
var abortScript = redis.NewScript(`
local channel = ARGV[2]
local head = redis.call('LINDEX', KEYS[1], 0)
if redis.call('HGET', KEYS[5], 'o') == ARGV[1] then
  local waiters = redis.call('HGET', KEYS[5], 'w')
  redis.call('DEL', KEYS[5])
  if waiters then redis.call('SPUBLISH', channel, KEYS[5]) end
end
if head == ARGV[1] then
` + luaRelease + `
else
  redis.call('LREM', KEYS[1], 1, ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return {1}
`)

// renew: ARGV ticket, lease ms. Extends the holder's lease; returns 0 when
// the caller no longer holds the conversation.
var renewScript = redis.NewScript(luaNow + `
if redis.call('LINDEX', KEYS[1], 0) ~= ARGV[1] then return {0} end
redis.call('HSET', KEYS[2], ARGV[1], now + tonumber(ARGV[2]))
if redis.call('HGET', KEYS[5], 'o') == ARGV[1] then redis.call('PEXPIRE', KEYS[5], ARGV[2]) end
return {1}
`)

// confirm: no ARGV. Rewrites the request record's TTL unchanged: a write
// for the WAIT behind it to count (see Turn.confirm).
var confirmScript = redis.NewScript(`
local ttl = redis.call('PTTL', KEYS[5])
if ttl > 0 then redis.call('PEXPIRE', KEYS[5], ttl) end
return {1}
`)
