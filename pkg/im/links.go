package im

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botfleet/botfleet/pkg/defaults"
	"github.com/botfleet/botfleet/pkg/keyspace"
	"github.com/botfleet/botfleet/pkg/lease"
	"github.com/botfleet/botfleet/pkg/pause"
	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Connection policies: who in the fleet holds a platform's link.
const (
	// Every instance holds its own connection; the fleet-wide dedup makes
	// an event delivered to several of them harmless.
	Every = "every"
	// One instance holds the connection, under a leader lease in Redis
	// that it renews; when it dies or drains, another takes over within
	// the lease.
	One = "one"
)

// Link states, as /health shows them.
const (
	StateConnecting = "connecting" // dialling, or waiting out a backoff
	StateConnected  = "connected"
	StateStandby    = "standby"   // a `one` link another instance holds
	StateListening  = "listening" // an inbound link with no connection open
	StateStopped    = "stopped"
)

// Incoming is the policy shown for a connection the platform opens
// (OneBot's reverse WebSocket): whichever instance it lands on holds it.
const Incoming = "incoming"

// LinksOptions tune Links. Zero values take the defaults named.
type LinksOptions struct {
	// Prefix starts the lease keys: <prefix>:im:link:<platform>. Default "bf".
	Prefix string
	// Instance names this instance as a lease holder in /health.
	Instance string
	// Lease is how long a `one` link's leader lease lasts unrenewed: a dead
	// holder's link moves within it. Renewed every Lease/3. Default 15s.
	Lease time.Duration
	// Backoff makes the reconnect backoff of one link. Default exponential
	// from 500ms to 30s (cenkalti/backoff/v5).
	Backoff func() backoff.BackOff
	// Clock is the lease clock (pkg/lease); nil is Redis's.
	Clock func() time.Time
	// Logger logs connections; nil discards.
	Logger *slog.Logger
	// Registerer takes the links' metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *LinksOptions) setDefaults() {
	defaults.Fill(o, LinksOptions{Prefix: keyspace.DefaultPrefix, Lease: 15 * time.Second, Backoff: func() backoff.BackOff {
		b := backoff.NewExponentialBackOff()
		b.MaxInterval = 30 * time.Second
		return b
	}, Logger: slog.New(slog.DiscardHandler)})
}

// LinkState is one link's state on this instance.
type LinkState struct {
	Platform string `json:"platform"`
	// Connections is the policy: every or one.
	Connections string `json:"connections"`
	// State is connecting, connected, standby or stopped.
	State string `json:"state"`
	// Holder is the instance holding a `one` link's lease, when known.
	Holder string `json:"holder,omitempty"`
	// Since is when State began.
	Since time.Time `json:"since"`
	// Connects counts the connections made.
	Connects int64 `json:"connects"`
	// LastError is why the last connection ended, if it failed.
	LastError string `json:"last_error,omitempty"`
}

// Links runs this instance's links, each under its policy, and hands
// their events to the pipeline. Stop hands `one` links over.
type Links struct {
	inlet  Inlet
	leases *lease.Leases
	opts   LinksOptions
	owner  string
	m      *linkMetrics

	mu     sync.Mutex
	links  []*heldLink
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type heldLink struct {
	link   Link
	policy string
	mu     sync.Mutex
	st     LinkState
}

// NewLinks returns an empty set of links feeding inlet.
func NewLinks(rdb redis.UniversalClient, inlet Inlet, o LinksOptions) *Links {
	o.setDefaults()
	return &Links{
		inlet: inlet, leases: lease.New(rdb, lease.Options{Clock: o.Clock}), opts: o,
		owner: o.Instance + "/" + lease.NewOwner(), m: newLinkMetrics(o.Registerer),
	}
}

// Add adds a link with its policy (Every or One), before Start.
func (l *Links) Add(link Link, policy string) {
	l.links = append(l.links, &heldLink{link: link, policy: policy,
		st: LinkState{Platform: link.Platform(), Connections: policy, State: StateStopped, Since: time.Now()}})
}

// Incoming registers a connection that the platform opens to this
// instance (OneBot's reverse WebSocket) and returns the Conn its handler
// hands events to; the link shows connected while one is open.
func (l *Links) Incoming(platform string) *Conn {
	h := &heldLink{policy: Incoming, st: LinkState{Platform: platform, Connections: Incoming, State: StateListening, Since: time.Now()}}
	l.links = append(l.links, h)
	var open atomic.Int64
	return &Conn{platform: platform, inlet: l.inlet, log: l.opts.Logger.With("platform", platform, "connections", Incoming),
		up: func() {
			if open.Add(1) == 1 {
				l.set(h, StateConnected, "")
			}
		},
		down: func() {
			if open.Add(-1) == 0 {
				l.set(h, StateListening, "")
			}
		},
		counted: func(outcome string) { l.m.events.WithLabelValues(platform, outcome).Inc() },
	}
}

// Len is the number of links.
func (l *Links) Len() int { return len(l.links) }

// Start runs every link until Stop.
func (l *Links) Start(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx, l.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, h := range l.links {
		if h.link == nil {
			continue // inbound: its handler runs it
		}
		l.wg.Go(func() {
			if h.policy == One {
				l.leader(ctx, h)
			} else {
				l.every(ctx, h)
			}
			l.set(h, StateStopped, "")
		})
	}
}

// Stop closes every link and releases the leases of `one` links, so that
// another instance takes them over at once; it waits until they are
// closed or ctx ends.
func (l *Links) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel := l.cancel
	l.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("im: links still closing: %w", ctx.Err())
	}
}

// States returns every link's state on this instance, for /health.
func (l *Links) States() []LinkState {
	out := make([]LinkState, len(l.links))
	for i, h := range l.links {
		h.mu.Lock()
		out[i] = h.st
		h.mu.Unlock()
	}
	return out
}

// Summary is States as the fleet registry shows them: platform → state,
// with a `one` link's holder after a space ("standby a").
func (l *Links) Summary() map[string]string {
	states := l.States()
	if len(states) == 0 {
		return nil
	}
	out := make(map[string]string, len(states))
	for _, st := range states {
		out[st.Platform] = strings.TrimSpace(st.State + " " + st.Holder)
	}
	return out
}

func (l *Links) set(h *heldLink, state, holder string) {
	h.mu.Lock()
	if h.st.State != state {
		h.st.Since = time.Now()
	}
	h.st.State, h.st.Holder = state, holder
	if state == StateConnected {
		h.st.Connects++
	}
	h.mu.Unlock()
	l.m.state(h.st.Platform, state)
}

// failed records why the link ended; it returns how long it had been
// connected (0 if it never was).
func (l *Links) failed(h *heldLink, err error) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.st.LastError = err.Error()
	if h.st.State != StateConnected {
		return 0
	}
	return time.Since(h.st.Since)
}

// every runs the link on this instance for as long as ctx lasts.
func (l *Links) every(ctx context.Context, h *heldLink) {
	l.connect(ctx, h, "")
}

// connect runs the link, reconnecting after a backoff, until ctx ends.
// holder is this instance's lease owner for a `one` link.
func (l *Links) connect(ctx context.Context, h *heldLink, holder string) {
	b := l.opts.Backoff()
	log := l.opts.Logger.With("platform", h.st.Platform, "connections", h.policy)
	for ctx.Err() == nil {
		l.set(h, StateConnecting, holder)
		c := &Conn{platform: h.st.Platform, inlet: l.inlet, log: log,
			up: func() {
				l.set(h, StateConnected, holder)
				l.m.connects.WithLabelValues(h.st.Platform, "ok").Inc()
				log.Info("im: link connected")
			},
			counted: func(outcome string) { l.m.events.WithLabelValues(h.st.Platform, outcome).Inc() },
		}
		err := h.link.Run(ctx, c)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("the connection ended")
		}
		if l.failed(h, err) > time.Minute {
			b.Reset() // it held a while: start the backoff over
		}
		l.m.connects.WithLabelValues(h.st.Platform, "dropped").Inc()
		wait := b.NextBackOff()
		log.Warn("im: link down; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		if !pause.For(ctx, wait) {
			return
		}
	}
}

// leader competes for the link's lease and runs the link while it holds
// it. The link's context ends before the lease can run out unrenewed, so
// two instances never hold the connection at once; on the way out the
// lease is released for another instance to take at once.
func (l *Links) leader(ctx context.Context, h *heldLink) {
	key := l.opts.Prefix + ":im:link:" + h.st.Platform
	ttl := l.opts.Lease
	log := l.opts.Logger.With("platform", h.st.Platform, "connections", One)
	for ctx.Err() == nil {
		start := time.Now()
		ok, st, err := l.leases.Acquire(ctx, key, l.owner, ttl)
		if err != nil || !ok {
			if err != nil {
				l.failed(h, err)
			}
			l.set(h, StateStandby, ownerInstance(st.Owner))
			l.m.leader.WithLabelValues(h.st.Platform).Set(0)
			if !pause.For(ctx, ttl/5) {
				return
			}
			continue
		}
		log.Info("im: link lease taken", "lease", ttl.String())
		l.m.leader.WithLabelValues(h.st.Platform).Set(1)
		lctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			defer cancel()
			l.keep(lctx, key, start, log)
		})
		l.connect(lctx, h, ownerInstance(l.owner))
		cancel()
		wg.Wait()
		l.m.leader.WithLabelValues(h.st.Platform).Set(0)
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = l.leases.Release(rctx, key, l.owner)
		rcancel()
		log.Info("im: link lease released")
	}
}

// keep renews the lease every ttl/3 until ctx ends; it returns (and so
// ends the link) when the lease is lost, or when it could not be renewed
// and three quarters of its time since the last renewal have passed.
func (l *Links) keep(ctx context.Context, key string, renewed time.Time, log *slog.Logger) {
	ttl := l.opts.Lease
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		valid := time.Until(renewed.Add(ttl * 3 / 4))
		deadline := time.NewTimer(valid)
		select {
		case <-ctx.Done():
			deadline.Stop()
			return
		case <-deadline.C:
			log.Warn("im: link lease could not be renewed in time; closing the link")
			return
		case <-t.C:
			deadline.Stop()
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, ttl/3)
			err := l.leases.Renew(rctx, key, l.owner, ttl)
			cancel()
			switch {
			case err == nil:
				renewed = start
			case errors.Is(err, lease.ErrNotHeld):
				log.Warn("im: link lease lost; closing the link")
				return
			default:
				log.Warn("im: link lease renewal failed", "err", err)
			}
		}
	}
}

// ownerInstance is the instance part of a lease owner token.
func ownerInstance(owner string) string {
	for i := len(owner) - 1; i >= 0; i-- {
		if owner[i] == '/' {
			return owner[:i]
		}
	}
	return owner
}
