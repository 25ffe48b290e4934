package memory

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// waker delivers the scripts' wake-ups (a ticket that became the head, or
// a request key that finished) to the goroutines waiting on them in this
// process. The scripts SPUBLISH them on the conversation's own sharded
// channel, bf:{c2c:42}:wake: it hashes to the conversation's slot, so a
// script may publish on it at all (a Cluster script may only touch its own
// slot), and only the shard that holds the conversation carries it, to the
// one instance whose turn waits. A classic PUBLISH on one fleet-wide
// channel is copied to every other node of a Cluster and delivered to
// every instance: BenchmarkWakeUpFanOut, 3 masters and 4 instances on
// loopback, measured 52-56 µs of Redis CPU and 2 cluster-bus messages per
// wake-up for PUBLISH against 29-39 µs and none for SPUBLISH, a gap that
// grows with both the masters and the instances.
//
// A conversation's channel is subscribed only while a turn of this process
// waits on it: on a Cluster each on a subscription of its own, on the node
// that holds the slot; elsewhere all on one connection. A lost wake-up only
// costs a poll interval: waiters always wait with a timeout and then ask
// Redis again.
type waker struct {
	rdb     redis.UniversalClient
	cluster bool

	mu sync.Mutex
	// waiting are the channels to signal for a payload (several turns may
	// wait on the same request key).
	waiting map[string]map[chan struct{}]bool
	subs    map[string]*subscription
	// shared carries every channel when not on a Cluster.
	shared *redis.PubSub
}

// subscription is one channel's, shared by this process's waiters on it.
type subscription struct {
	refs      int
	ps        *redis.PubSub
	ready     chan struct{} // closed when Redis confirmed it
	confirmed bool
}

func newWaker(rdb redis.UniversalClient) *waker {
	_, cluster := rdb.(*redis.ClusterClient)
	return &waker{rdb: rdb, cluster: cluster, waiting: map[string]map[chan struct{}]bool{}, subs: map[string]*subscription{}}
}

// subscribeWait bounds how long subscribe waits for Redis to confirm.
const subscribeWait = time.Second

// subscribe makes sure channel is subscribed and returns once Redis has
// confirmed it (or after subscribeWait, or when ctx ends: the waiter then
// relies on polling). The caller calls release when it stops waiting.
func (w *waker) subscribe(ctx context.Context, channel string) (release func()) {
	w.mu.Lock()
	s := w.subs[channel]
	fresh := s == nil
	if fresh {
		s = &subscription{ready: make(chan struct{})}
		w.subs[channel] = s
		if !w.cluster {
			if w.shared == nil {
				w.shared = w.rdb.SSubscribe(context.Background())
				go w.run(w.shared)
			}
			s.ps = w.shared
			// Under the lock, so that a SUNSUBSCRIBE of the channel's
			// previous subscription cannot overtake this SSUBSCRIBE.
			_ = s.ps.SSubscribe(ctx, channel)
		}
	}
	s.refs++
	w.mu.Unlock()
	if fresh && w.cluster {
		// A connection to the node that holds the channel's slot; dialled
		// outside the lock, so that waiters of other conversations do not
		// queue behind it.
		ps := w.rdb.SSubscribe(ctx, channel)
		w.mu.Lock()
		s.ps = ps
		w.mu.Unlock()
		go w.run(ps)
	}
	t := time.NewTimer(subscribeWait)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-t.C:
	case <-ctx.Done():
	}
	return func() { w.release(channel, s) }
}

func (w *waker) release(channel string, s *subscription) {
	w.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last {
		delete(w.subs, channel)
	}
	if last && !w.cluster {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.ps.SUnsubscribe(ctx, channel)
		cancel()
	}
	w.mu.Unlock()
	if last && w.cluster {
		_ = s.ps.Close()
	}
}

// run delivers what one subscription receives until it is closed.
func (w *waker) run(ps *redis.PubSub) {
	for m := range ps.ChannelWithSubscriptions() {
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind != "ssubscribe" {
				continue
			}
			w.mu.Lock()
			if s := w.subs[m.Channel]; s != nil && !s.confirmed {
				s.confirmed = true
				close(s.ready)
			}
			w.mu.Unlock()
		case *redis.Message:
			w.mu.Lock()
			for c := range w.waiting[m.Payload] {
				select {
				case c <- struct{}{}:
				default:
				}
			}
			w.mu.Unlock()
		}
	}
}

// register returns a channel that is signalled when key is published; the
// caller ends that with unregister.
func (w *waker) register(key string) chan struct{} {
	c := make(chan struct{}, 1)
	w.mu.Lock()
	if w.waiting[key] == nil {
		w.waiting[key] = map[chan struct{}]bool{}
	}
	w.waiting[key][c] = true
	w.mu.Unlock()
	return c
}

func (w *waker) unregister(key string, c chan struct{}) {
	w.mu.Lock()
	delete(w.waiting[key], c)
	if len(w.waiting[key]) == 0 {
		delete(w.waiting, key)
	}
	w.mu.Unlock()
}

// close ends every subscription.
func (w *waker) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch, s := range w.subs {
		if s.ps != nil && s.ps != w.shared {
			_ = s.ps.Close()
		}
		delete(w.subs, ch)
	}
	if w.shared != nil {
		return w.shared.Close()
	}
	return nil
}
