// Package capacity measures what chat turns cost Redis, the inputs of the
// capacity model in the README: the turns per second a deployment takes,
// the Redis CPU a turn costs (summed over the masters, from INFO cpu) and
// how it spreads over them, the memory a turn adds, and the bytes a stored
// conversation and a finished request keep (MEMORY USAGE).
//
// Run drives memory.Store the way pkg/chat does — Begin, then Commit with
// the reply and its payload, two round trips — from several Stores at
// once, as several instances would, with no backend: besides Redis, only
// the client's own work counts. The bench harness calls Run and Footprint
// (or the package's benchmarks, see capacity_test.go) against any
// standalone server, Sentinel master or Cluster.
package capacity

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/memory"
	"github.com/redis/go-redis/v9"
)

// Options shape a Run. Zero values take the defaults named.
type Options struct {
	// NewClient returns a client of the deployment, one per instance.
	// Required.
	NewClient func() redis.UniversalClient
	// Instances are the Stores turns go through. Default 4.
	Instances int
	// Concurrency is the number of turns in flight. Default 64.
	Concurrency int
	// Conversations are spread over the Cluster's slots; with the default
	// 256 and 20000 turns their histories fill up to MaxEntries early in
	// the run, as in a long-running fleet. Default 256.
	Conversations int
	// Turns is how many turns to run. Default 20000.
	Turns int
	// MessageBytes and ReplyBytes size the user message and the reply.
	// Default 100 and 300 (a reply's stored payload is the reply and
	// about 80 bytes of JSON around it).
	MessageBytes, ReplyBytes int
	// Memory tunes the Stores. MaxEntries defaults to memory's 100.
	Memory memory.Options
}

func (o *Options) setDefaults() {
	defaults.Fill(o, Options{Instances: 4, Concurrency: 64, Conversations: 256, Turns: 20000, MessageBytes: 100, ReplyBytes: 300})
}

// messages are a turn's user message, reply and stored payload (the
// reply's JSON as pkg/chat stores it).
func (o *Options) messages() (user, reply string, payload []byte) {
	user, reply = strings.Repeat("q", o.MessageBytes), strings.Repeat("a", o.ReplyBytes)
	return user, reply, []byte(`{"reply":"` + reply + `","confidence":0.9,"timestamp":1795000000,"backend":"builtin"}`)
}

// Report is what a Run measured.
type Report struct {
	// Masters is the number of masters the turns were spread over.
	Masters int
	// Turns ran in Elapsed: TurnsPerSecond.
	Turns          int
	Elapsed        time.Duration
	TurnsPerSecond float64
	// RedisCPUPerTurn is the masters' CPU time (user + system) per turn.
	RedisCPUPerTurn time.Duration
	// BusiestMaster is the CPU the busiest master used during the run, in
	// cores (1 = one core saturated).
	BusiestMaster float64
	// MasterShares are the masters' shares of the Redis CPU, most first.
	MasterShares []float64
	// MemoryPerTurn is used_memory's growth per turn, summed over the
	// masters: the entries, and the request's record kept for the
	// idempotency TTL.
	MemoryPerTurn float64
}

func (r Report) String() string {
	shares := make([]string, len(r.MasterShares))
	for i, s := range r.MasterShares {
		shares[i] = fmt.Sprintf("%.0f%%", 100*s)
	}
	return fmt.Sprintf("%d masters: %.0f turns/s (%d in %v), Redis CPU %.1f µs/turn, busiest master %.2f cores, shares %s, %.0f B/turn",
		r.Masters, r.TurnsPerSecond, r.Turns, r.Elapsed.Round(time.Millisecond), float64(r.RedisCPUPerTurn.Nanoseconds())/1e3,
		r.BusiestMaster, strings.Join(shares, " "), r.MemoryPerTurn)
}

// Run runs o.Turns turns and reports their cost.
func Run(ctx context.Context, o Options) (Report, error) {
	o.setDefaults()
	if o.NewClient == nil {
		return Report{}, errors.New("capacity: Options.NewClient is required")
	}
	stores := make([]*memory.Store, o.Instances)
	for i := range stores {
		rdb := o.NewClient()
		defer rdb.Close()
		stores[i] = memory.New(ctx, rdb, o.Memory)
		defer stores[i].Close()
	}
	probe := o.NewClient()
	defer probe.Close()
	user, reply, payload := o.messages()
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	// Warm up: every master has the scripts, every instance its connections.
	for _, s := range stores {
		for c := range min(o.Conversations, 64) {
			if err := turn(ctx, s, fmt.Sprintf("cap:%s:%d", run, c), "warm-"+strconv.Itoa(c), user, reply, payload); err != nil {
				return Report{}, err
			}
		}
	}
	before, err := usage(ctx, probe)
	if err != nil {
		return Report{}, err
	}
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.Concurrency {
		wg.Go(func() {
			s := stores[w%len(stores)]
			for {
				i := int(next.Add(1))
				if i > o.Turns || ctx.Err() != nil {
					return
				}
				// A worker keeps to its conversations, so that no two
				// turns of one conversation wait for each other.
				conv := fmt.Sprintf("cap:%s:%d", run, w+o.Concurrency*(i%max(1, o.Conversations/o.Concurrency)))
				if err := turn(ctx, s, conv, strconv.Itoa(i), user, reply, payload); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return Report{}, firstErr
	}
	after, err := usage(ctx, probe)
	if err != nil {
		return Report{}, err
	}
	r := Report{Masters: len(after), Turns: o.Turns, Elapsed: elapsed, TurnsPerSecond: float64(o.Turns) / elapsed.Seconds()}
	var cpu, mem float64
	for addr, a := range after {
		b := before[addr]
		d := a.cpu - b.cpu
		cpu += d
		mem += float64(a.memory - b.memory)
		r.BusiestMaster = max(r.BusiestMaster, d/elapsed.Seconds())
		r.MasterShares = append(r.MasterShares, d)
	}
	for i := range r.MasterShares {
		r.MasterShares[i] /= cpu
	}
	slices.Sort(r.MasterShares)
	slices.Reverse(r.MasterShares)
	r.RedisCPUPerTurn = time.Duration(cpu / float64(o.Turns) * 1e9)
	r.MemoryPerTurn = mem / float64(o.Turns)
	return r, nil
}

// turn is the Redis side of one chat turn; the fingerprint has the size
// of pkg/chat's (an FNV-64 in base 36).
func turn(ctx context.Context, s *memory.Store, conv, id, user, reply string, payload []byte) error {
	t, err := s.Begin(ctx, memory.Request{Conversation: conv, ID: id, Fingerprint: "1n2z8qk4bx0y9"})
	if err != nil {
		return err
	}
	if t.Replay != nil {
		return nil
	}
	return t.Commit(ctx, user, reply, time.Now(), payload, nil)
}

// Footprint is the memory that stored state keeps, from MEMORY USAGE.
type Footprint struct {
	// EntryBytes is one history entry, and ConversationBytes a
	// conversation's history at MaxEntries entries (plus its meta hash).
	EntryBytes        float64
	ConversationBytes int64
	MaxEntries        int
	// RequestBytes is one finished request's record, kept for the
	// idempotency TTL (24 h by default) to answer its repeats.
	RequestBytes int64
}

// MeasureFootprint fills one conversation to o.Memory.MaxEntries entries
// with o's message and reply sizes and measures it.
func MeasureFootprint(ctx context.Context, o Options) (Footprint, error) {
	o.setDefaults()
	if o.NewClient == nil {
		return Footprint{}, errors.New("capacity: Options.NewClient is required")
	}
	rdb := o.NewClient()
	defer rdb.Close()
	s := memory.New(ctx, rdb, o.Memory)
	defer s.Close()
	entries := s.Options().MaxEntries
	user, reply, payload := o.messages()
	conv := "cap:footprint:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range (entries + 1) / 2 {
		if err := turn(ctx, s, conv, strconv.Itoa(i), user, reply, payload); err != nil {
			return Footprint{}, err
		}
	}
	msgs := s.HistoryKey(conv)
	base := strings.TrimSuffix(msgs, "msgs")
	var f Footprint
	var err error
	memoryUsage := func(key string) int64 {
		n, e := rdb.MemoryUsage(ctx, key, 0).Result()
		if e != nil && err == nil {
			err = fmt.Errorf("capacity: MEMORY USAGE %s: %w", key, e)
		}
		return n
	}
	n, lerr := rdb.LLen(ctx, msgs).Result()
	if lerr != nil {
		return Footprint{}, lerr
	}
	list := memoryUsage(msgs)
	f.ConversationBytes = list + memoryUsage(base+"meta")
	f.EntryBytes = float64(list) / float64(n)
	f.MaxEntries = int(n)
	f.RequestBytes = memoryUsage(base + "req:0")
	return f, err
}

type nodeUsage struct {
	cpu    float64 // seconds, user + system
	memory int64   // used_memory
}

// usage reads INFO of every master, by address.
func usage(ctx context.Context, rdb redis.UniversalClient) (map[string]nodeUsage, error) {
	out := map[string]nodeUsage{}
	var mu sync.Mutex
	read := func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "cpu", "memory").Result()
		if err != nil {
			return err
		}
		var u nodeUsage
		for _, line := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "used_cpu_sys", "used_cpu_user":
				f, _ := strconv.ParseFloat(v, 64)
				u.cpu += f
			case "used_memory":
				u.memory, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		mu.Lock()
		out[c.Options().Addr] = u
		mu.Unlock()
		return nil
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, read)
	case *redis.Client:
		err = read(ctx, c)
	default:
		err = fmt.Errorf("capacity: cannot read INFO through a %T", rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("capacity: INFO: %w", err)
	}
	return out, nil
}
