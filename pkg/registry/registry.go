// Package registry is the fleet's view of itself, kept in Redis: every bot
// instance heartbeats a record of its state (Heartbeat), the health
// checker publishes its targets' states (PublishChecker), and Read returns
// the whole fleet, pre-aggregated, in one round trip — so a console that
// polls it costs the fleet one Redis script per poll whatever its size, and
// never a request to an instance.
//
// A member is alive while its heartbeats keep coming: each one moves its
// deadline TTL ahead on Redis's clock. A member whose deadline passed (its
// process died, or cannot reach Redis) is reported dead — or stopped, when
// it said goodbye on a graceful exit — for Retain, and then forgotten.
//
// Keys, for prefix "bf" (one Redis Cluster slot, hash tag {fleet}, so
// that one script reads them all):
//
//	bf:{fleet}:members      sorted set: member id -> its deadline (Redis time, ms)
//	bf:{fleet}:m:<id>       the member's last record (JSON), kept TTL+Retain
//
// Member ids are "instance:<name>" and "checker:<name>".
//
// Errors: a Redis failure is ErrUnavailable (503, store_unavailable),
// classified with pkg/fault; a record that does not decode is skipped and
// counted in Fleet.Undecodable, never an error of the whole read.
package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/fault"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/redis/go-redis/v9"
)

// Options tune a Registry. Zero values take the defaults named.
type Options struct {
	// Prefix starts every key. Default "bf".
	Prefix string
	// Interval is the time between heartbeats. Default 2s.
	Interval time.Duration
	// TTL is how long a member stays alive without a heartbeat: a few
	// heartbeats. Default 3 × Interval.
	TTL time.Duration
	// Retain is how long a dead or stopped member is still reported.
	// Default 10m.
	Retain time.Duration
}

// DefaultOptions are the values zero options take; the configuration's
// defaults are these too.
func DefaultOptions() Options {
	return Options{Prefix: keyspace.DefaultPrefix, Interval: 2 * time.Second, TTL: 6 * time.Second, Retain: 10 * time.Minute}
}

func (o *Options) setDefaults() {
	d := DefaultOptions()
	if o.Interval > 0 {
		d.TTL = 3 * o.Interval
	}
	defaults.Fill(o, d)
}

// ErrUnavailable wraps every failure to reach Redis.
var ErrUnavailable = fault.New(http.StatusServiceUnavailable, "store_unavailable",
	"the fleet registry (Redis) is unavailable", fault.Retry(time.Second))

// Registry reads and writes the fleet's records. It is safe for
// concurrent use.
type Registry struct {
	rdb     redis.UniversalClient
	opts    Options
	members string
	record  string // the record keys' prefix
}

// New returns the registry on rdb.
func New(rdb redis.UniversalClient, opts Options) *Registry {
	opts.setDefaults()
	base := opts.Prefix + ":{fleet}:"
	return &Registry{rdb: rdb, opts: opts, members: base + "members", record: base + "m:"}
}

// Options returns the options in force, defaults filled in.
func (r *Registry) Options() Options { return r.opts }

// Member kinds, the first part of a member id.
const (
	KindInstance = "instance"
	KindChecker  = "checker"
)

// publishScript: KEYS members, record; ARGV id, JSON, ttl ms, retain ms.
// Stores the record and moves the member's deadline ttl ahead of Redis's
// clock (a ttl of 0 marks it gone now: a goodbye), and forgets members
// dead for longer than retain. Returns Redis's time in ms.
var publishScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, retain = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl + retain)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - retain)
redis.call('PEXPIRE', KEYS[1], ttl + retain)
return now
`)

// readScript: KEYS members; ARGV the record keys' prefix. Returns Redis's
// time in ms, then id, deadline, record for every member (record "" when
// it expired).
var readScript = redis.NewScript(`
local t = redis.call('TIME')
local out = {tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))}
local ids = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('GET', ARGV[1] .. ids[i]) or ''
end
return out
`)

// publish stores rec as member kind:name, alive for the TTL (or gone at
// once when goodbye is set), in one round trip.
func (r *Registry) publish(ctx context.Context, kind, name string, rec any, goodbye bool) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("registry: encode %s %s: %w", kind, name, err)
	}
	id := kind + ":" + name
	ttl := r.opts.TTL.Milliseconds()
	if goodbye {
		ttl = 0
	}
	err = publishScript.Run(ctx, r.rdb, []string{r.members, r.record + id}, id, b, ttl, r.opts.Retain.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("%w: publish %s: %w", ErrUnavailable, id, err)
	}
	return nil
}

// member is one entry of a read: its id, whether it is alive and its
// record.
type member struct {
	kind, name string
	alive      bool
	deadline   time.Time
	record     []byte
}

// read returns Redis's time and every member, in one round trip.
func (r *Registry) read(ctx context.Context) (time.Time, []member, error) {
	res, err := readScript.Run(ctx, r.rdb, []string{r.members}, r.record).StringSlice()
	if err != nil || len(res) == 0 {
		return time.Time{}, nil, fmt.Errorf("%w: read: %v", ErrUnavailable, err)
	}
	nowMS, _ := strconv.ParseInt(res[0], 10, 64)
	now := time.UnixMilli(nowMS)
	var out []member
	for i := 1; i+2 < len(res); i += 3 {
		id, score, rec := res[i], res[i+1], res[i+2]
		kind, name, ok := cut(id)
		if !ok || rec == "" {
			continue
		}
		dl, _ := strconv.ParseFloat(score, 64)
		out = append(out, member{kind: kind, name: name, alive: int64(dl) > nowMS, deadline: time.UnixMilli(int64(dl)), record: []byte(rec)})
	}
	return now, out, nil
}

func cut(id string) (kind, name string, ok bool) {
	kind, name, ok = strings.Cut(id, ":")
	return kind, name, ok && kind != "" && name != ""
}
